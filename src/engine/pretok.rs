//! The pre-tokenizers of gpt2-style BPE vocabularies, by the name GGUF stores in
//! `tokenizer.ggml.pre`: the regular expressions llama.cpp splits a text with before the merges
//! (`llm_tokenizer_bpe`'s table and the name → type chain of `llama_vocab::impl::load`,
//! llama-vocab.cpp, llama.cpp as vendored by llama-cpp-python 0.3.36), each from the model
//! family's own tokenizer.json, with `(?i:…)` spelled out as llama.cpp does (its regex engine has
//! no case-insensitive groups, and `(?i:'s)` would also match the long s `'ſ`).
//!
//! Each expression in turn splits every piece the previous ones left, keeping matches and the
//! text between them as pieces (tokenizers' `Split` with `Isolated`); the pieces are then mapped
//! to gpt2's byte alphabet and merged one by one. `ignore_merges`: a piece that is a vocabulary
//! entry as a whole is that entry, without merging (llama.cpp's `ignore_merges`, Llama 3's
//! tokenizer.json).
//!
//! Families whose split needs code of its own in llama.cpp (kimi-k2, afmoe, superbpe, tiny_aya's
//! digit grouping, tekken and gpt-4o's case classes, jais-2, chameleon) or that are not
//! byte-level (gemma4, sarvam-moe, whitespace) are not listed: odai refuses them rather than give
//! ids llama.cpp would not.

/// How a gpt2 BPE vocabulary splits a text before merging.
pub(crate) struct Pre {
    pub regexes: &'static [&'static str],
    pub ignore_merges: bool,
}

/// The pre-tokenizer named `pre`; `None` for a name odai does not know. A vocabulary without
/// the key (GGUF files older than the key) gets llama.cpp's default, as llama.cpp does.
pub(crate) fn bpe(pre: Option<&str>) -> Option<Pre> {
    let (regexes, ignore_merges) = match pre.unwrap_or("default") {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => (LLAMA3, true),
        "dbrx" | "smaug-bpe" | "chatglm-bpe" => (LLAMA3, false),
        "glm4" | "glm5" => (LLAMA3, true),
        "deepseek-llm" => (DEEPSEEK_LLM, false),
        "deepseek-v3" | "hunyuan-dense" | "joyai-llm" | "hy_v4" => (DEEPSEEK3, false),
        "spark2_5" => (SPARK2_5, false),
        "deepseek-coder" => (DEEPSEEK_CODER, false),
        "falcon" => (FALCON, false),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b"
        | "mellum2" => (STARCODER, false),
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "modern-bert" | "jina-v1-en" | "jina-v2-code" | "roberta-bpe"
        | "exaone4" | "mpt" | "olmo" | "jais" | "trillion" | "granite-docling" => (GPT2, false),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "stablelm2" | "hunyuan"
        | "solar-open" | "megrez" | "grok-2" => (QWEN2, false),
        "qwen35" => (QWEN35, false),
        "poro-chat" | "bloom" | "gpt3-finnish" => (BLOOM, false),
        "viking" => (VIKING, false),
        "bailingmoe" | "bailingmoe2" | "llada-moe" => (BAILINGMOE, false),
        "seed-coder" => (SEED_CODER, false),
        "ufakzeka" => (UFAKZEKA, false),
        "laguna" => (LAGUNA, false),
        "exaone-moe" => (EXAONE_MOE, false),
        "minicpm5" => (MINICPM5, true),
        "default" => (DEFAULT, false),
        _ => return None,
    };
    Some(Pre {
        regexes,
        ignore_merges,
    })
}

const LLAMA3: &[&str] = &[
    r##"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const DEEPSEEK_LLM: &[&str] = &[
    r##"[\r\n]"##,
    r##"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+"##,
    r##"\s?[!-/:-~！-／：-～‘-‟　-。]+"##,
    r##"\s+$"##,
    r##"[一-龥ࠀ-一가-퟿]+"##,
    r##"\p{N}+"##,
];
const DEEPSEEK3: &[&str] = &[
    r##"\p{N}{1,3}"##,
    r##"[一-龥぀-ゟ゠-ヿ]+"##,
    r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const SPARK2_5: &[&str] = &[
    r##"\p{N}{1,3}"##,
    r##"[一-龥぀-ゟ゠-ヿ]+"##,
    r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+"##,
    r##"\p{N}"##,
];
const DEEPSEEK_CODER: &[&str] = &[
    r##"[\r\n]"##,
    r##"\s?\p{L}+"##,
    r##"\s?\p{P}+"##,
    r##"[一-龥ࠀ-一가-퟿]+"##,
    r##"\p{N}"##,
];
const FALCON: &[&str] = &[
    r##"[\p{P}\$\+<=>\^~\|`]+"##,
    r##"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"##,
    r##"[0-9][0-9][0-9]"##,
];
const STARCODER: &[&str] = &[
    r##"\p{N}"##,
    r##"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"##,
];
const GPT2: &[&str] =
    &[r##"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"##];
const QWEN2: &[&str] = &[
    r##"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const QWEN35: &[&str] = &[
    r##"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const BLOOM: &[&str] = &[r##" ?[^(\s|.,!?…。，、।۔،)]+"##];
const VIKING: &[&str] = &[r##" ?[^(\s|.,!?…。，、।۔،)]+"##, r##"\p{N}"##];
const BAILINGMOE: &[&str] = &[
    r##"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"##,
];
const SEED_CODER: &[&str] = &[
    r##"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const UFAKZEKA: &[&str] =
    &[r##"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##];
const LAGUNA: &[&str] = &[
    r##"[^\n]+|[\n]+"##,
    r##"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const EXAONE_MOE: &[&str] = &[
    r##"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+"##,
];
const MINICPM5: &[&str] = &[
    r##"\p{N}{1,3}"##,
    r##"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const DEFAULT: &[&str] = &[
    r##"[\p{P}\$\+<=>\^~\|]+"##,
    r##"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"##,
    r##"\p{N}+"##,
    r##"[0-9][0-9][0-9]"##,
];

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::SplitDelimiterBehavior;
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};

    #[test]
    fn every_expression_compiles() {
        // A pattern fancy-regex cannot read would only show on a model of that family.
        for name in [
            "llama-bpe",
            "deepseek-llm",
            "deepseek-v3",
            "spark2_5",
            "deepseek-coder",
            "falcon",
            "starcoder",
            "gpt-2",
            "qwen2",
            "qwen35",
            "bloom",
            "viking",
            "bailingmoe",
            "seed-coder",
            "ufakzeka",
            "laguna",
            "exaone-moe",
            "minicpm5",
            "default",
        ] {
            for r in bpe(Some(name)).unwrap().regexes {
                let split = Split::new(
                    SplitPattern::Regex((*r).to_owned()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                );
                assert!(split.is_ok(), "{name}: {r}");
            }
        }
        assert!(bpe(Some("kimi-k2")).is_none());
        assert_eq!(bpe(None).unwrap().regexes, DEFAULT);
    }
}
