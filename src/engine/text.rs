//! Text ↔ token ids: gpt2-style BPE vocabularies through candle's GGUF tokenizer support
//! (candle-core `quantized::tokenizer`), with the pre-tokenizer corrected to what llama.cpp does;
//! SentencePiece vocabularies (`llama`: Llama 2, Mistral, Phi-3, Gemma) through [`super::spm`],
//! llama.cpp's algorithm.

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;

use super::gguf::Gguf;

/// A model's tokenizer.
pub enum Tokenizer {
    /// A gpt2-style byte-level BPE vocabulary (tokenizers' BPE, as candle builds it).
    Bpe(Box<tokenizers::Tokenizer>),
    /// A SentencePiece vocabulary.
    Spm(Box<super::spm::Spm>),
}

/// The model's tokenizer; `Err` says why there is none (a vocabulary type odai does not read).
///
/// candle's default gpt2 pipeline adds a prefix space ("The" → " The"), which llama.cpp does not;
/// `smollm` vocabularies also split digits one by one (llama.cpp's LLAMA_VOCAB_PRE_TYPE_SMOLLM,
/// and SmolLM2's own tokenizer.json).
pub fn tokenizer(g: &Gguf) -> Result<Tokenizer, String> {
    let (content, _) = super::candle_content(&g.path).map_err(|e| e.to_string())?;
    tokenizer_from(g, &content)
}

/// A GGUF metadata array, each element through `get` (empty where absent or of another type).
fn array<T>(
    content: &Content,
    key: &str,
    get: impl Fn(&candle_core::quantized::gguf_file::Value) -> Option<T>,
) -> Vec<T> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_vec().ok())
        .map(|v| v.iter().filter_map(&get).collect())
        .unwrap_or_default()
}

/// A SentencePiece vocabulary from the GGUF arrays llama.cpp reads (`tokenizer.ggml.tokens`,
/// `.scores`, `.token_type`, `.add_space_prefix`).
fn spm_from(content: &Content) -> Result<Tokenizer, String> {
    let pieces = array(content, "tokenizer.ggml.tokens", |v| {
        v.to_string().ok().cloned()
    });
    let scores = array(content, "tokenizer.ggml.scores", |v| v.to_f32().ok());
    let types = array(content, "tokenizer.ggml.token_type", |v| v.to_i32().ok());
    let add_space_prefix = content
        .metadata
        .get("tokenizer.ggml.add_space_prefix")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(true);
    super::spm::Spm::new(pieces, scores, types, add_space_prefix)
        .map(|s| Tokenizer::Spm(Box::new(s)))
}

/// The tokenizer of `g` from candle's reading of the same header (candle builds it from its own
/// type).
pub fn tokenizer_from(g: &Gguf, content: &Content) -> Result<Tokenizer, String> {
    if g.string("tokenizer.ggml.model") == Some("llama") {
        return spm_from(content);
    }
    // candle's message alone: its backtrace (RUST_BACKTRACE) is not the user's error.
    let mut tok =
        tokenizers::Tokenizer::from_gguf(content).map_err(|e| super::candle_message(&e))?;
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
    Ok(Tokenizer::Bpe(Box::new(tok)))
}

/// Token ids of `text`, without BOS (as the reference engine is run).
pub fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>, String> {
    match tok {
        Tokenizer::Bpe(t) => t
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| e.to_string()),
        Tokenizer::Spm(s) => Ok(s.encode(text)),
    }
}

pub fn decode(tok: &Tokenizer, ids: &[u32]) -> Option<String> {
    match tok {
        Tokenizer::Bpe(t) => t.decode(ids, false).ok(),
        Tokenizer::Spm(s) => Some(s.decode(ids)),
    }
}
