//! odai's own tokenizer against llama.cpp's: SentencePiece vocabularies (Gemma 3's, from the
//! test model) tokenized by `odai generate --prompt` must give the ids llama-server's /tokenize
//! gives, on text that is not only ASCII: whitespace runs, tabs, newlines, CRLF, accents, CJK,
//! Hangul, Cyrillic, Greek, Arabic, Hebrew, Devanagari, emoji with modifiers and flags, and the
//! chat template's special pieces.

use crate::common::servers::{LlamaServer, llama_server_bin};
use crate::common::{self, odai};
use serde_json::{Value, json};

const TEXTS: &[&str] = &[
    "The capital of France is",
    "  Hello\tworld\n\nnew  line   spaces ",
    "Grüße aus München! Ça va? Señor niño — ¿qué tal?",
    "日本語のテキストと中文混合，还有한국어도 있습니다。",
    "Emoji: 😀🚀👍🏽 and 🇫🇷 flags, math ∑∫√ and arrows →⇒",
    "Привет, мир! Ελληνικά. العربية עברית हिन्दी",
    "code:\n\tfor i in range(10):\n\t\tprint(i)  # comment\r\n",
    "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
];

/// The prompt ids `odai generate` fed the model.
fn odai_ids(model: &std::path::Path, text: &str) -> Vec<u64> {
    let out = odai()
        .arg("generate")
        .arg("-m")
        .arg(model)
        .args(["--prompt", text, "-n", "1", "--format", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_str(&common::ok(&out)).unwrap();
    v["prompt_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn regression_sentencepiece_prompts_get_llama_cpps_ids() {
    // Found in review: Gemma, Llama 2/TinyLlama, Phi-3 and Mistral vocabularies were refused
    // ("unsupported tokenizer model `llama`"), so `generate --prompt` and `quality` failed on
    // model families the README lists.
    let model = common::fetch_model("gemma3-270m");
    let Some(bin) = llama_server_bin() else {
        // Without llama-server there is no reference; odai must still tokenize.
        assert!(!odai_ids(&model, TEXTS[0]).is_empty());
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = LlamaServer::start(&bin, &model, dir.path(), None);
    let mut differ = Vec::new();
    for text in TEXTS {
        let reference: Vec<u64> = server
            .post_json("/tokenize", &json!({"content": text, "add_special": false}))["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        let ours = odai_ids(&model, text);
        if ours != reference {
            differ.push(format!(
                "{text:?}:\n  llama.cpp {reference:?}\n  odai      {ours:?}"
            ));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

#[test]
fn regression_candle_errors_are_one_line_whatever_rust_backtrace_says() {
    // Found in review: with RUST_BACKTRACE=1 (set on many CI machines) the one-line error for a
    // vocabulary candle cannot build carried candle's 44-line backtrace. A copy of the test
    // model whose tokenizer.ggml.model says `bert` (a type candle refuses) shows it.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(common::fetch_model("smollm2")).unwrap();
    let key = b"tokenizer.ggml.model";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("the key")
        + key.len();
    // The key, then its type (u32: 8, a string) and the string's length (u64: 4): "gpt2".
    let value = at + 4 + 8;
    assert_eq!(&bytes[value..value + 4], b"gpt2");
    bytes[value..value + 4].copy_from_slice(b"bert");
    let model = dir.path().join("bert-vocab.gguf");
    std::fs::write(&model, bytes).unwrap();
    let out = odai()
        .env("RUST_BACKTRACE", "1")
        .arg("generate")
        .arg("-m")
        .arg(&model)
        .args(["--prompt", "hi", "-n", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "odai: error: {}: cannot tokenize --prompt: unsupported tokenizer model `bert`; give \
             --prompt-ids instead\n",
            model.display()
        )
    );
}
