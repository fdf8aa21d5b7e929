//! A GGUF file's header, read (`file`) and checked: validation with errors that name the file and
//! say what to do, metadata helpers, and the model facts odai needs (architecture, shape, sizes,
//! the memory a run will take).

mod file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
pub use file::{Content, GgmlDType, ReadError, TensorInfo, Value};

/// Architectures the engine runs, by `general.architecture`.
pub const SUPPORTED_ARCHS: &[&str] = &["llama", "qwen2", "qwen3", "phi3", "gemma3"];

/// Tensor types odai reads (ggml type ids per ggml.h): candle loads them all; the engine runs
/// the ones `decoder` has kernels for.
pub const SUPPORTED_TYPES: &str =
    "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K";

/// An opened, validated GGUF header.
pub struct Gguf {
    pub path: PathBuf,
    pub file_size: u64,
    pub content: Content,
}

fn model_error(path: &Path, problem: impl Into<String>) -> Error {
    Error::Model {
        file: path.to_owned(),
        problem: problem.into(),
    }
}

impl Gguf {
    /// Opens `path` and reads its header; checks that every tensor's data lies inside the file.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let meta = std::fs::metadata(path).map_err(|e| {
            model_error(
                path,
                match e.kind() {
                    std::io::ErrorKind::NotFound => "no such file".to_owned(),
                    _ => format!("cannot read it: {e}"),
                },
            )
        })?;
        if meta.is_dir() {
            return Err(model_error(
                path,
                "is a directory, not a GGUF file (pass the .gguf file inside it)",
            ));
        }
        // Checked before the open: opening a FIFO blocks until a writer comes.
        if !meta.is_file() {
            return Err(model_error(
                path,
                "is not a regular file (a FIFO, a device or a socket): give a GGUF file",
            ));
        }
        let map = crate::mapped::Mapped::open(path, false)
            .map_err(|e| model_error(path, format!("cannot open it: {e}")))?;
        Self::parse(path, map.bytes())
    }

    /// The header and tensor table of a GGUF file's bytes (`path` names it in errors); checks
    /// that every tensor's data lies inside them. What `open` runs on the mapped file, and what
    /// the fuzz target feeds arbitrary bytes.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, Error> {
        let content = Content::read(bytes).map_err(|e| match e {
            ReadError::Magic(_) => model_error(
                path,
                format!("is not a GGUF file ({e}); odai reads GGUF v1-v3 models"),
            ),
            ReadError::UnknownType { .. } => model_error(
                path,
                format!("uses a tensor type this engine cannot load ({e}); supported: {SUPPORTED_TYPES}"),
            ),
            ReadError::Corrupt(_) => model_error(
                path,
                format!("is not a readable GGUF file ({e}); it may be truncated or corrupt — fetch it again"),
            ),
        })?;
        let file_size = bytes.len() as u64;
        for (name, info) in &content.tensor_infos {
            // The dimensions come from the file: their product may overflow (found by the
            // `gguf` fuzz target), and a block type's tensor must hold whole blocks. Checked
            // here once, so every later `elem_count` of this content is safe.
            let dims = &info.dims;
            let elems = dims
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .filter(|&e| e % info.ggml_dtype.block_size() == 0)
                .ok_or_else(|| {
                    model_error(
                        path,
                        format!(
                            "is corrupt: tensor {name} has an impossible shape {dims:?} for {} — fetch it again",
                            type_name(info.ggml_dtype)
                        ),
                    )
                })?;
            let bytes = (elems / info.ggml_dtype.block_size())
                .checked_mul(info.ggml_dtype.type_size())
                .map_or(u64::MAX, |b| b as u64);
            let end = content
                .tensor_data_offset
                .saturating_add(info.offset)
                .saturating_add(bytes);
            if end > file_size {
                return Err(model_error(
                    path,
                    format!(
                        "is truncated: tensor {name} ends at byte {end} but the file has {file_size} bytes — fetch it again"
                    ),
                ));
            }
        }
        Ok(Gguf {
            path: path.to_owned(),
            file_size,
            content,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    pub fn string(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn uint(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            Value::U8(v) => Some(*v as u64),
            Value::U16(v) => Some(*v as u64),
            Value::U32(v) => Some(*v as u64),
            Value::U64(v) => Some(*v),
            Value::I8(v) => u64::try_from(*v).ok(),
            Value::I16(v) => u64::try_from(*v).ok(),
            Value::I32(v) => u64::try_from(*v).ok(),
            Value::I64(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// `general.architecture`, checked against what the engine runs.
    pub fn architecture(&self) -> Result<String, Error> {
        let arch = self.string("general.architecture").ok_or_else(|| {
            model_error(
                &self.path,
                "has no general.architecture: not a model GGUF odai can run",
            )
        })?;
        if !SUPPORTED_ARCHS.contains(&arch) {
            return Err(model_error(
                &self.path,
                format!(
                    "architecture {arch:?} is not supported (supported: {})",
                    SUPPORTED_ARCHS.join(", ")
                ),
            ));
        }
        Ok(arch.to_owned())
    }

    /// `<arch>.<key>` as an integer.
    pub fn arch_uint(&self, arch: &str, key: &str) -> Option<u64> {
        self.uint(&format!("{arch}.{key}"))
    }

    /// Vocabulary size: the token list's length, else `<arch>.vocab_size`, else the embedding rows.
    pub fn vocab_size(&self, arch: &str) -> Option<u64> {
        if let Some(Value::Array(tokens)) = self.get("tokenizer.ggml.tokens") {
            return Some(tokens.len() as u64);
        }
        self.arch_uint(arch, "vocab_size").or_else(|| {
            self.content
                .tensor_infos
                .get("token_embd.weight")
                .and_then(|t| t.dims.first())
                .map(|&d| d as u64)
        })
    }
}

/// Bytes a tensor of `elems` elements of `dtype` occupies.
pub fn tensor_bytes(dtype: GgmlDType, elems: usize) -> u64 {
    (elems / dtype.block_size() * dtype.type_size()) as u64
}

/// ggml's name for a tensor type (`Q4_K`, not candle's `Q4K`).
pub fn type_name(dtype: GgmlDType) -> &'static str {
    match dtype {
        GgmlDType::F32 => "F32",
        GgmlDType::F16 => "F16",
        GgmlDType::BF16 => "BF16",
        GgmlDType::Q4_0 => "Q4_0",
        GgmlDType::Q4_1 => "Q4_1",
        GgmlDType::Q5_0 => "Q5_0",
        GgmlDType::Q5_1 => "Q5_1",
        GgmlDType::Q8_0 => "Q8_0",
        GgmlDType::Q8_1 => "Q8_1",
        GgmlDType::Q2K => "Q2_K",
        GgmlDType::Q3K => "Q3_K",
        GgmlDType::Q4K => "Q4_K",
        GgmlDType::Q5K => "Q5_K",
        GgmlDType::Q6K => "Q6_K",
        GgmlDType::Q8K => "Q8_K",
    }
}

/// What `odai model inspect` reports, and what memory-fit checks and rooflines use.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    pub file: String,
    pub file_size_bytes: u64,
    pub architecture: String,
    pub name: Option<String>,
    pub parameters: u64,
    /// The type most weight bytes are stored in (the file's "quantization").
    pub quant: String,
    /// Bytes and tensor count per tensor type.
    pub tensor_types: BTreeMap<String, TypeBytes>,
    pub weight_bytes: u64,
    /// Weight bytes one decoded token reads: every tensor but an untied token embedding (of
    /// which a token reads one row).
    pub decode_weight_bytes: u64,
    pub context_length: Option<u64>,
    pub n_layers: u64,
    pub n_embd: u64,
    pub n_heads: u64,
    pub n_kv_heads: u64,
    pub head_dim: u64,
    pub feed_forward_length: Option<u64>,
    pub vocab_size: Option<u64>,
    pub bos_token_id: Option<u64>,
    pub eos_token_id: Option<u64>,
    pub tokenizer: Option<String>,
    /// The token embedding table's bytes, and whether the output projection is tied to it (no
    /// `output.weight`): runtimes hold these differently (candle dequantizes the table to f32,
    /// llama.cpp packs a tied output as a second copy).
    #[serde(default)]
    pub token_embd_bytes: u64,
    #[serde(default)]
    pub token_embd_type: String,
    #[serde(default)]
    pub output_tied: bool,
}

impl TypeBytes {
    /// Counts one tensor of `bytes`; the token embedding counts in the totals, not among the
    /// largest matrices (it is read a row at a time, repacked only as a tied output, which the
    /// runtimes size apart through `token_embd_bytes`).
    pub fn add(&mut self, bytes: u64, embedding: bool) {
        self.tensors += 1;
        self.bytes += bytes;
        if embedding {
            return;
        }
        if bytes > self.largest_bytes {
            self.second_bytes = self.largest_bytes;
            self.largest_bytes = bytes;
        } else if bytes > self.second_bytes {
            self.second_bytes = bytes;
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TypeBytes {
    pub tensors: u64,
    pub bytes: u64,
    /// The largest and second-largest tensor of the type, the token embedding aside: what a
    /// runtime repacking matrices two at a time holds twice at the peak of its load.
    #[serde(default)]
    pub largest_bytes: u64,
    #[serde(default)]
    pub second_bytes: u64,
}

impl ModelInfo {
    pub fn from_gguf(g: &Gguf) -> Result<Self, Error> {
        let arch = g.architecture()?;
        let need = |key: &str| {
            g.arch_uint(&arch, key).ok_or_else(|| {
                model_error(&g.path, format!("is missing {arch}.{key} in its metadata"))
            })
        };
        let n_layers = need("block_count")?;
        let n_embd = need("embedding_length")?;
        let n_heads = need("attention.head_count")?;
        let n_kv_heads = g
            .arch_uint(&arch, "attention.head_count_kv")
            .unwrap_or(n_heads);
        let head_dim = g
            .arch_uint(&arch, "attention.key_length")
            .unwrap_or(n_embd / n_heads.max(1));
        let mut tensor_types: BTreeMap<String, TypeBytes> = BTreeMap::new();
        let mut parameters = 0u64;
        let mut weight_bytes = 0u64;
        for (name, info) in &g.content.tensor_infos {
            let elems = info.elem_count();
            let bytes = tensor_bytes(info.ggml_dtype, elems);
            parameters += elems as u64;
            weight_bytes += bytes;
            tensor_types
                .entry(type_name(info.ggml_dtype).to_owned())
                .or_default()
                .add(bytes, name == "token_embd.weight");
        }
        let embd = g.content.tensor_infos.get("token_embd.weight");
        let token_embd_bytes = embd.map_or(0, |t| tensor_bytes(t.ggml_dtype, t.elem_count()));
        let token_embd_type = embd.map_or(String::new(), |t| type_name(t.ggml_dtype).to_owned());
        let output_tied = !g.content.tensor_infos.contains_key("output.weight");
        let untied_embedding = if output_tied { 0 } else { token_embd_bytes };
        let quant = tensor_types
            .iter()
            .max_by_key(|(_, t)| t.bytes)
            .map(|(k, _)| k.clone())
            .unwrap_or_default();
        Ok(ModelInfo {
            file: g.path.display().to_string(),
            file_size_bytes: g.file_size,
            name: g.string("general.name").map(str::to_owned),
            parameters,
            quant,
            tensor_types,
            weight_bytes,
            decode_weight_bytes: weight_bytes - untied_embedding,
            context_length: g.arch_uint(&arch, "context_length"),
            n_layers,
            n_embd,
            n_heads,
            n_kv_heads,
            head_dim,
            feed_forward_length: g.arch_uint(&arch, "feed_forward_length"),
            vocab_size: g.vocab_size(&arch),
            bos_token_id: g.uint("tokenizer.ggml.bos_token_id"),
            eos_token_id: g.uint("tokenizer.ggml.eos_token_id"),
            tokenizer: g.string("tokenizer.ggml.model").map(str::to_owned),
            architecture: arch,
            token_embd_bytes,
            token_embd_type,
            output_tied,
        })
    }

    /// KV cache bytes per position with keys and values in `types`: per layer, per KV head.
    pub fn kv_bytes_per_position(&self, types: crate::kv::KvTypes) -> u64 {
        self.n_layers * self.n_kv_heads * types.bytes_per_slab_position(self.head_dim)
    }

    /// KV cache bytes at `context` tokens in `types` (the roofline's bytes per token read).
    pub fn kv_cache_bytes(&self, context: u64, types: crate::kv::KvTypes) -> u64 {
        context * self.kv_bytes_per_position(types)
    }
}

/// What a runtime holds while it runs a model, by part, and the peak (odai's runtime::memory
/// builds it for each runtime: docs/bench-json.md, `memory_needs`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MemoryNeeds {
    pub context: u64,
    /// The runtime the figure is for (`odai`, `candle`, `llama.cpp`); empty in results from
    /// before estimates were per runtime.
    #[serde(default)]
    pub runtime: String,
    /// The model file's bytes resident as the file: mapped (odai's engine and llama.cpp map it
    /// by default), or read into memory where `mmap` is false.
    #[serde(default)]
    pub mapped_bytes: u64,
    /// Whether the estimate sized the file mapped (true) or read into memory (`--mmap 0`);
    /// null for candle (it reads every tensor) and in results from before it was a knob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mmap: Option<bool>,
    /// Weight bytes copied into the process: repacked matrices (and, while a load repacks, the
    /// copies in flight beside the mapped bytes they replace), candle's read and dequantized
    /// tensors.
    #[serde(default)]
    pub copied_bytes: u64,
    /// `mapped_bytes + copied_bytes`.
    pub weights_bytes: u64,
    pub kv_cache_bytes: u64,
    /// The KV cache's types the estimate sized (`f16`, `q8_0`, `q8_0/f16`); null in results
    /// from before it was recorded.
    #[serde(default)]
    pub kv_cache: Option<String>,
    /// Activations, logits and the runtime's compute buffers.
    pub working_bytes: u64,
    /// The process itself: odai's code, its libraries and thread stacks.
    #[serde(default)]
    pub overhead_bytes: u64,
    /// The peak: the larger of the load (weights with the copies in flight) and the run
    /// (weights, KV cache, working memory), plus the process.
    pub total_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GGUF v3 file of one F32 tensor of shape `dims` and `data` bytes after the header.
    fn one_tensor(dims: &[u64], data: usize) -> Vec<u8> {
        with_alignment(dims, data, None)
    }

    /// The same, with a `general.alignment` (u32) entry when `alignment` is given.
    fn with_alignment(dims: &[u64], data: usize, alignment: Option<u32>) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes()); // tensors
        b.extend_from_slice(&u64::from(alignment.is_some()).to_le_bytes()); // metadata pairs
        if let Some(a) = alignment {
            let key = b"general.alignment";
            b.extend_from_slice(&(key.len() as u64).to_le_bytes());
            b.extend_from_slice(key);
            b.extend_from_slice(&4u32.to_le_bytes()); // UINT32
            b.extend_from_slice(&a.to_le_bytes());
        }
        b.extend_from_slice(&1u64.to_le_bytes());
        b.push(b'w');
        b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(&0u32.to_le_bytes()); // F32
        b.extend_from_slice(&0u64.to_le_bytes()); // offset
        b.resize(b.len().div_ceil(32) * 32 + data, 0);
        b
    }

    #[test]
    fn regression_fuzz_gguf_shape_overflow_is_an_error_not_a_panic() {
        // Found by the `gguf` fuzz target: dimensions whose product overflows usize panicked
        // (debug) or wrapped (release) in the bounds check.
        let path = Path::new("x.gguf");
        let e = Gguf::parse(path, &one_tensor(&[1 << 40, 1 << 40], 64))
            .err()
            .expect("refused");
        assert_eq!(
            e.to_string(),
            "x.gguf: is corrupt: tensor w has an impossible shape [1099511627776, 1099511627776] for F32 — fetch it again"
        );
        // A sound file of the same layout parses.
        assert!(Gguf::parse(path, &one_tensor(&[4, 4], 64)).is_ok());
        // Past the end of the file: truncated.
        let e = Gguf::parse(path, &one_tensor(&[1 << 20], 64))
            .err()
            .expect("refused");
        assert!(
            e.to_string()
                .contains("is truncated: tensor w ends at byte"),
            "{e}"
        );
    }

    #[test]
    fn regression_fuzz_gguf_zero_alignment_is_an_error_not_a_panic() {
        // Found by the `gguf` fuzz target: candle's reader divided by `general.alignment`.
        let e = Gguf::parse(Path::new("x.gguf"), &with_alignment(&[4, 4], 64, Some(0)))
            .err()
            .expect("refused");
        assert_eq!(
            e.to_string(),
            "x.gguf: is not a readable GGUF file (gguf: general.alignment is 0: it must be a power of two); it may be truncated or corrupt — fetch it again"
        );
        assert!(Gguf::parse(Path::new("x.gguf"), &with_alignment(&[4, 4], 64, Some(32))).is_ok());
    }
}
