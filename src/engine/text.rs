//! Text ↔ token ids: gpt2-style BPE vocabularies through candle's GGUF tokenizer support
//! (candle-core `quantized::tokenizer`), split as llama.cpp splits them ([`super::pretok`]);
//! SentencePiece BPE vocabularies (`llama`: Llama 2, Mistral, Phi-3, Gemma) through
//! [`super::spm`] and unigram ones (`t5`) through [`super::ugm`], llama.cpp's algorithms.

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::SplitDelimiterBehavior;
use tokenizers::models::ModelWrapper;
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};

use super::gguf::Gguf;

/// A model's tokenizer.
pub struct Tokenizer {
    imp: Imp,
    /// The vocabulary type and how it is read, for people (`odai model tokenize`).
    about: String,
}

enum Imp {
    /// A gpt2-style byte-level BPE vocabulary (tokenizers' BPE, as candle builds it).
    Bpe(Box<tokenizers::Tokenizer>),
    /// A SentencePiece BPE vocabulary.
    Spm(Box<super::spm::Spm>),
    /// A SentencePiece unigram vocabulary.
    Ugm(Box<super::ugm::Ugm>),
}

/// The model's tokenizer; `Err` says why there is none (a vocabulary type or pre-tokenizer odai
/// does not read).
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
    super::spm::Spm::new(pieces, scores, types, add_space_prefix).map(|s| Tokenizer {
        imp: Imp::Spm(Box::new(s)),
        about: "SentencePiece BPE (tokenizer model `llama`)".into(),
    })
}

/// A SentencePiece unigram vocabulary from what llama.cpp reads for tokenizer model `t5`: the
/// arrays, `add_space_prefix` and `remove_extra_whitespaces` (both false where absent),
/// `precompiled_charsmap`, and `unknown_token_id` (2 where absent).
fn ugm_from(content: &Content) -> Result<Tokenizer, String> {
    let pieces = array(content, "tokenizer.ggml.tokens", |v| {
        v.to_string().ok().cloned()
    });
    let scores = array(content, "tokenizer.ggml.scores", |v| v.to_f32().ok());
    let types = array(content, "tokenizer.ggml.token_type", |v| v.to_i32().ok());
    let flag = |key: &str| {
        content
            .metadata
            .get(key)
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false)
    };
    // Written as an array of bytes (gguf-py writes i8 or u8).
    let charsmap = array(
        content,
        "tokenizer.ggml.precompiled_charsmap",
        |v| match v {
            Value::U8(b) => Some(*b),
            Value::I8(b) => Some(*b as u8),
            _ => None,
        },
    );
    let unknown_id = content
        .metadata
        .get("tokenizer.ggml.unknown_token_id")
        .and_then(|v| v.to_u32().ok())
        .unwrap_or(2);
    let settings = super::ugm::Settings {
        add_space_prefix: flag("tokenizer.ggml.add_space_prefix"),
        remove_extra_whitespaces: flag("tokenizer.ggml.remove_extra_whitespaces"),
        charsmap,
        unknown_id,
    };
    super::ugm::Ugm::new(pieces, scores, types, settings).map(|u| Tokenizer {
        imp: Imp::Ugm(Box::new(u)),
        about: "SentencePiece unigram (tokenizer model `t5`)".into(),
    })
}

/// The tokenizer of `g` from candle's reading of the same header (candle builds it from its own
/// type).
pub fn tokenizer_from(g: &Gguf, content: &Content) -> Result<Tokenizer, String> {
    match g.string("tokenizer.ggml.model") {
        Some("llama") => return spm_from(content),
        Some("t5") => return ugm_from(content),
        _ => {}
    }
    // candle's message alone: its backtrace (RUST_BACKTRACE) is not the user's error.
    let mut tok =
        tokenizers::Tokenizer::from_gguf(content).map_err(|e| super::candle_message(&e))?;
    let name = g.string("tokenizer.ggml.pre");
    let pre = super::pretok::bpe(name).ok_or_else(|| {
        format!(
            "unsupported pre-tokenizer `{}` (tokenizer.ggml.pre) of a gpt2 BPE vocabulary",
            name.unwrap_or_default()
        )
    })?;
    // candle's pipelines know two names and add a prefix space (or NFC) elsewhere; llama.cpp
    // splits with the family's expressions, then maps bytes, and normalizes nothing.
    let mut steps = Vec::with_capacity(pre.regexes.len() + 1);
    for r in pre.regexes {
        let split = Split::new(
            SplitPattern::Regex((*r).to_owned()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| format!("pre-tokenizer expression {r:?}: {e}"))?;
        steps.push(PreTokenizerWrapper::Split(split));
    }
    steps.push(PreTokenizerWrapper::ByteLevel(ByteLevel::new(
        false, true, false,
    )));
    tok.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(Sequence::new(steps))));
    tok.with_normalizer(None::<NormalizerWrapper>)
        .map_err(|e| e.to_string())?;
    if pre.ignore_merges
        && let ModelWrapper::BPE(bpe) = tok.get_model()
    {
        let mut bpe = bpe.clone();
        bpe.ignore_merges = true;
        tok.with_model(bpe);
    }
    Ok(Tokenizer {
        imp: Imp::Bpe(Box::new(tok)),
        about: format!(
            "gpt2 byte-level BPE, pre-tokenizer `{}`",
            name.unwrap_or("default")
        ),
    })
}

/// Token ids of `text`, without BOS (as the reference engine is run).
pub fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>, String> {
    match &tok.imp {
        Imp::Bpe(t) => t
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| e.to_string()),
        Imp::Spm(s) => Ok(s.encode(text)),
        Imp::Ugm(u) => Ok(u.encode(text)),
    }
}

pub fn decode(tok: &Tokenizer, ids: &[u32]) -> Option<String> {
    match &tok.imp {
        Imp::Bpe(t) => t.decode(ids, false).ok(),
        Imp::Spm(s) => Some(s.decode(ids)),
        Imp::Ugm(u) => Some(u.decode(ids)),
    }
}

/// The vocabulary piece of `id` as the GGUF stores it; `None` past the vocabulary.
pub fn piece(tok: &Tokenizer, id: u32) -> Option<String> {
    match &tok.imp {
        Imp::Bpe(t) => t.id_to_token(id),
        Imp::Spm(s) => s.piece(id).map(str::to_owned),
        Imp::Ugm(u) => u.piece(id).map(str::to_owned),
    }
}

/// The vocabulary type and how odai reads it, e.g. "gpt2 byte-level BPE, pre-tokenizer `smollm`".
pub fn describe(tok: &Tokenizer) -> String {
    tok.about.clone()
}
