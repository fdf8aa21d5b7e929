//! Text ↔ token ids through candle's GGUF tokenizer support (candle-core `quantized::tokenizer`),
//! with the pre-tokenizer corrected to what llama.cpp does for gpt2-style vocabularies.

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;

use super::gguf::Gguf;

pub use tokenizers::Tokenizer;

/// The model's tokenizer; `Err` says why there is none (e.g. not a gpt2 BPE vocabulary).
///
/// candle's default gpt2 pipeline adds a prefix space ("The" → " The"), which llama.cpp does not;
/// `smollm` vocabularies also split digits one by one (llama.cpp's LLAMA_VOCAB_PRE_TYPE_SMOLLM,
/// and SmolLM2's own tokenizer.json).
pub fn tokenizer(g: &Gguf) -> Result<Tokenizer, String> {
    let (content, _) = super::candle_content(&g.path).map_err(|e| e.to_string())?;
    tokenizer_from(g, &content)
}

/// The tokenizer of `g` from candle's reading of the same header (candle builds it from its own
/// type).
pub fn tokenizer_from(g: &Gguf, content: &Content) -> Result<Tokenizer, String> {
    let mut tok = Tokenizer::from_gguf(content).map_err(|e| e.to_string())?;
    let byte_level = ByteLevel::new(false, true, true);
    match g.string("tokenizer.ggml.pre").unwrap_or("gpt2") {
        "smollm" => {
            let seq = Sequence::new(vec![
                PreTokenizerWrapper::Digits(Digits::new(true)),
                PreTokenizerWrapper::ByteLevel(byte_level),
            ]);
            tok.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(seq)));
        }
        "gpt2" | "default" => {
            tok.with_pre_tokenizer(Some(PreTokenizerWrapper::ByteLevel(byte_level)));
        }
        _ => {}
    }
    Ok(tok)
}

/// Token ids of `text`, without BOS (as the reference engine is run).
pub fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>, String> {
    tok.encode(text, false)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| e.to_string())
}

pub fn decode(tok: &Tokenizer, ids: &[u32]) -> Option<String> {
    tok.decode(ids, false).ok()
}
