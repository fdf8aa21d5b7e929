//! Synthetic models: GGUF files with random weights in the exact shape of real model families,
//! so a team can ask "would a 3B Q4 model run here?" without obtaining weights. Quantized blocks
//! are written directly with sane scales (no float quantization pass); norm weights lie near 1
//! and biases near 0, so activations stay finite. Files are cached under the user's cache directory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::rng::Rng;

/// The shape of a real model family (from each model's published config.json).
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    pub name: &'static str,
    pub arch: &'static str,
    pub n_layer: u64,
    pub n_embd: u64,
    pub n_head: u64,
    pub n_kv_head: u64,
    /// Per-head dimension (n_embd / n_head in most families; Gemma 3 sets its own).
    pub head_dim: u64,
    pub ffn: u64,
    pub vocab: u64,
    pub context: u64,
    pub rope_theta: f32,
    pub rms_eps: f32,
    /// Output projection shares the token embedding (no `output.weight`).
    pub tied: bool,
    pub bos: Option<u32>,
    /// Sliding-window attention span of the local layers (gemma3), 0 for none.
    pub sliding_window: u64,
}

/// A small model of `arch`'s shape for tests: two layers, 256 wide (a whole Q4_K block per
/// row), a 320-token vocabulary; gemma3 with a sliding window of 4.
pub fn small(arch: &'static str) -> Preset {
    Preset {
        name: "tiny",
        arch,
        n_layer: 2,
        n_embd: 256,
        n_head: 4,
        n_kv_head: 2,
        head_dim: 64,
        ffn: 512,
        vocab: 320,
        context: 128,
        rope_theta: 10_000.0,
        rms_eps: 1e-5,
        tied: arch != "phi3",
        bos: Some(1),
        sliding_window: if arch == "gemma3" { 4 } else { 0 },
    }
}

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "smollm2-135m",
        arch: "llama",
        n_layer: 30,
        n_embd: 576,
        n_head: 9,
        n_kv_head: 3,
        head_dim: 64,
        ffn: 1536,
        vocab: 49152,
        context: 8192,
        rope_theta: 100_000.0,
        rms_eps: 1e-5,
        tied: true,
        bos: Some(1),
        sliding_window: 0,
    },
    Preset {
        name: "qwen2.5-0.5b",
        arch: "qwen2",
        n_layer: 24,
        n_embd: 896,
        n_head: 14,
        n_kv_head: 2,
        head_dim: 64,
        ffn: 4864,
        vocab: 151_936,
        context: 32_768,
        rope_theta: 1_000_000.0,
        rms_eps: 1e-6,
        tied: true,
        bos: None,
        sliding_window: 0,
    },
    Preset {
        name: "qwen3-0.6b",
        arch: "qwen3",
        n_layer: 28,
        n_embd: 1024,
        n_head: 16,
        n_kv_head: 8,
        head_dim: 128,
        ffn: 3072,
        vocab: 151_936,
        context: 40_960,
        rope_theta: 1_000_000.0,
        rms_eps: 1e-6,
        tied: true,
        bos: None,
        sliding_window: 0,
    },
    Preset {
        name: "llama-3.2-1b",
        arch: "llama",
        n_layer: 16,
        n_embd: 2048,
        n_head: 32,
        n_kv_head: 8,
        head_dim: 64,
        ffn: 8192,
        vocab: 128_256,
        context: 131_072,
        rope_theta: 500_000.0,
        rms_eps: 1e-5,
        tied: true,
        bos: Some(128_000),
        sliding_window: 0,
    },
    Preset {
        name: "tinyllama-1.1b",
        arch: "llama",
        n_layer: 22,
        n_embd: 2048,
        n_head: 32,
        n_kv_head: 4,
        head_dim: 64,
        ffn: 5632,
        vocab: 32_000,
        context: 2048,
        rope_theta: 10_000.0,
        rms_eps: 1e-5,
        tied: false,
        bos: Some(1),
        sliding_window: 0,
    },
    Preset {
        name: "llama-3.2-3b",
        arch: "llama",
        n_layer: 28,
        n_embd: 3072,
        n_head: 24,
        n_kv_head: 8,
        head_dim: 128,
        ffn: 8192,
        vocab: 128_256,
        context: 131_072,
        rope_theta: 500_000.0,
        rms_eps: 1e-5,
        tied: true,
        bos: Some(128_000),
        sliding_window: 0,
    },
    Preset {
        name: "phi-3-mini",
        arch: "phi3",
        n_layer: 32,
        n_embd: 3072,
        n_head: 32,
        n_kv_head: 32,
        head_dim: 96,
        ffn: 8192,
        vocab: 32_064,
        context: 4096,
        rope_theta: 10_000.0,
        rms_eps: 1e-5,
        tied: false,
        bos: Some(1),
        sliding_window: 0,
    },
    Preset {
        name: "gemma-3-1b",
        arch: "gemma3",
        n_layer: 26,
        n_embd: 1152,
        n_head: 4,
        n_kv_head: 1,
        head_dim: 256,
        ffn: 6912,
        vocab: 262_144,
        context: 32_768,
        rope_theta: 1_000_000.0,
        rms_eps: 1e-6,
        tied: true,
        bos: Some(2),
        sliding_window: 512,
    },
    Preset {
        name: "llama-3.1-8b",
        arch: "llama",
        n_layer: 32,
        n_embd: 4096,
        n_head: 32,
        n_kv_head: 8,
        head_dim: 128,
        ffn: 14_336,
        vocab: 128_256,
        context: 131_072,
        rope_theta: 500_000.0,
        rms_eps: 1e-5,
        tied: false,
        bos: Some(128_000),
        sliding_window: 0,
    },
    // Not a real family: a 2-layer llama of 0.1 M parameters that loads and runs in
    // milliseconds. It measures odai's own harness (processes, protocol, transports), so farm
    // dry runs and tests are fast; its figures say nothing about a model.
    Preset {
        name: "toy",
        arch: "llama",
        n_layer: 2,
        n_embd: 64,
        n_head: 4,
        n_kv_head: 2,
        head_dim: 16,
        ffn: 128,
        vocab: 512,
        context: 2048,
        rope_theta: 10_000.0,
        rms_eps: 1e-5,
        tied: true,
        bos: Some(1),
        sliding_window: 0,
    },
];

/// Tensor types synthetic models can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quant {
    Q4_0,
    Q8_0,
    Q4K,
    F16,
}

impl Quant {
    pub const ALL: [Quant; 4] = [Quant::Q4_0, Quant::Q8_0, Quant::Q4K, Quant::F16];

    pub fn name(self) -> &'static str {
        match self {
            Quant::Q4_0 => "q4_0",
            Quant::Q8_0 => "q8_0",
            Quant::Q4K => "q4_k",
            Quant::F16 => "f16",
        }
    }

    pub fn parse(s: &str) -> Option<Quant> {
        Quant::ALL
            .into_iter()
            .find(|q| q.name().eq_ignore_ascii_case(s))
    }

    /// ggml type id (ggml.h `enum ggml_type`).
    fn ggml_type(self) -> u32 {
        match self {
            Quant::Q4_0 => 2,
            Quant::Q8_0 => 8,
            Quant::Q4K => 12,
            Quant::F16 => 1,
        }
    }

    /// (elements per block, bytes per block), per ggml-common.h.
    fn block(self) -> (u64, u64) {
        match self {
            Quant::Q4_0 => (32, 18),
            Quant::Q8_0 => (32, 34),
            Quant::Q4K => (256, 144),
            Quant::F16 => (1, 2),
        }
    }
}

pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// Parses `PRESET[:QUANT]` (default quant Q4_0), with errors that name `flag` and list what
/// exists.
pub fn parse_spec(spec: &str, flag: &str) -> Result<(&'static Preset, Quant), Error> {
    let (name, quant) = spec.split_once(':').unwrap_or((spec, "q4_0"));
    let invalid = |problem: String| Error::Invalid {
        flag: flag.into(),
        problem,
    };
    let p = preset(name).ok_or_else(|| {
        invalid(format!(
            "no preset {name:?} (presets: {})",
            PRESETS
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let q = Quant::parse(quant).ok_or_else(|| {
        invalid(format!(
            "no quantization {quant:?} (choose: {})",
            Quant::ALL.map(|q| q.name()).join(", ")
        ))
    })?;
    Ok((p, q))
}

/// Bumped whenever the generator's output changes, so stale cached files are not reused.
const GENERATOR_VERSION: u32 = 2;

/// `$ODAI_CACHE_DIR`, else `$XDG_CACHE_HOME/odai`, else `~/.cache/odai` (XDG Base Directory).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ODAI_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("odai");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache/odai")
}

/// The cached synthetic file for `preset` at `quant`, written first if missing.
pub fn cached(preset: &Preset, quant: Quant) -> Result<PathBuf, Error> {
    let io = |file: &Path, what: &str, e: std::io::Error| Error::Model {
        file: file.to_owned(),
        problem: format!("{what}: {e}"),
    };
    let dir = cache_dir().join("synthetic");
    let path = dir.join(format!(
        "{}-{}-v{GENERATOR_VERSION}.gguf",
        preset.name,
        quant.name()
    ));
    if !path.is_file() {
        std::fs::create_dir_all(&dir)
            .map_err(|e| io(&dir, "cannot create the cache directory", e))?;
        // Written under a name of this process's own and renamed into place: workers of several
        // simulated devices on one machine may make the same model at once, and none may load
        // another's half-written file.
        let tmp = dir.join(format!(".{}.{}.tmp", preset.name, std::process::id()));
        write(preset, quant, &tmp)?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&tmp, "cannot move it into place", e))?;
    }
    Ok(path)
}

enum Fill {
    /// Random weights with this standard deviation.
    Random(f32),
    /// F32 values uniform in centre ± half: norm weights near 1 and small biases, so a pass
    /// that skipped a norm's weight or a bias computes visibly different logits (tests compare
    /// odai's passes with llama.cpp's on these files).
    Uniform { centre: f32, half: f32 },
}

struct TensorSpec {
    name: String,
    /// ggml order: innermost (row length) first.
    dims: Vec<u64>,
    quant: Option<Quant>,
    fill: Fill,
}

impl TensorSpec {
    fn elems(&self) -> u64 {
        self.dims.iter().product()
    }

    fn ggml_type(&self) -> u32 {
        self.quant.map_or(0, Quant::ggml_type)
    }

    fn bytes(&self) -> u64 {
        match self.quant {
            None => self.elems() * 4,
            Some(q) => {
                let (per, size) = q.block();
                self.elems() / per * size
            }
        }
    }
}

/// The tensors of `p`, named as llama.cpp's converters name them.
fn tensors(p: &Preset, quant: Quant) -> Vec<TensorSpec> {
    let head_dim = p.head_dim;
    let q_dim = p.n_head * head_dim;
    let kv_dim = p.n_kv_head * head_dim;
    // K-quants need rows that are whole 256-element super-blocks; llama.cpp falls back to
    // another type for the rest, and so does odai (Q8_0).
    let q_for = |row: u64| {
        let (per, _) = quant.block();
        if row.is_multiple_of(per) {
            quant
        } else {
            Quant::Q8_0
        }
    };
    let weight = |name: String, row: u64, rows: u64| TensorSpec {
        name,
        dims: vec![row, rows],
        quant: Some(q_for(row)),
        fill: Fill::Random(1.0 / (row as f32).sqrt()),
    };
    let norm = |name: String, n: u64| TensorSpec {
        name,
        dims: vec![n],
        quant: None,
        fill: Fill::Uniform {
            centre: 1.0,
            half: 0.25,
        },
    };
    let mut out = vec![TensorSpec {
        name: "token_embd.weight".into(),
        dims: vec![p.n_embd, p.vocab],
        quant: Some(q_for(p.n_embd)),
        fill: Fill::Random(0.02),
    }];
    for l in 0..p.n_layer {
        let b = |s: &str| format!("blk.{l}.{s}");
        out.push(norm(b("attn_norm.weight"), p.n_embd));
        if p.arch == "phi3" {
            out.push(weight(b("attn_qkv.weight"), p.n_embd, q_dim + 2 * kv_dim));
        } else {
            out.push(weight(b("attn_q.weight"), p.n_embd, q_dim));
            out.push(weight(b("attn_k.weight"), p.n_embd, kv_dim));
            out.push(weight(b("attn_v.weight"), p.n_embd, kv_dim));
        }
        if p.arch == "qwen2" {
            for (t, n) in [
                ("attn_q.bias", q_dim),
                ("attn_k.bias", kv_dim),
                ("attn_v.bias", kv_dim),
            ] {
                out.push(TensorSpec {
                    name: b(t),
                    dims: vec![n],
                    quant: None,
                    fill: Fill::Uniform {
                        centre: 0.0,
                        half: 0.5,
                    },
                });
            }
        }
        if p.arch == "qwen3" || p.arch == "gemma3" {
            out.push(norm(b("attn_q_norm.weight"), head_dim));
            out.push(norm(b("attn_k_norm.weight"), head_dim));
        }
        out.push(weight(b("attn_output.weight"), q_dim, p.n_embd));
        if p.arch == "gemma3" {
            out.push(norm(b("post_attention_norm.weight"), p.n_embd));
            out.push(norm(b("post_ffw_norm.weight"), p.n_embd));
        }
        out.push(norm(b("ffn_norm.weight"), p.n_embd));
        if p.arch == "phi3" {
            // Gate and up projections fused, as phi3 GGUFs store them.
            out.push(weight(b("ffn_up.weight"), p.n_embd, 2 * p.ffn));
        } else {
            out.push(weight(b("ffn_gate.weight"), p.n_embd, p.ffn));
            out.push(weight(b("ffn_up.weight"), p.n_embd, p.ffn));
        }
        out.push(weight(b("ffn_down.weight"), p.ffn, p.n_embd));
    }
    out.push(norm("output_norm.weight".into(), p.n_embd));
    if !p.tied {
        out.push(weight("output.weight".into(), p.n_embd, p.vocab));
    }
    out
}

/// GGUF metadata value, per the GGUF spec (ggml docs/gguf.md).
enum Meta {
    U32(u32),
    F32(f32),
    Str(String),
    /// A token list of this many entries (see `token_text`).
    Tokens(u64),
}

/// Token `i` of a synthetic vocabulary: SentencePiece's specials, the 256 byte tokens, then
/// unique placeholders. llama.cpp refuses a GGUF without a vocabulary (`tokenizer.ggml.model`
/// and a token list as long as the embedding), so synthetic models carry this one: the same
/// file then runs on odai and on llama.cpp (scripts/bench-vs-llamacpp.sh).
///
/// Phi-3 files carry `<|endoftext|>` too: llama.cpp's vocabulary loader looks it up by text in
/// any model whose name says phi-3, and fails the load without it (llama-vocab.cpp).
fn token_text(arch: &str, i: u64) -> String {
    match i {
        0 => "<unk>".into(),
        1 => "<s>".into(),
        2 => "</s>".into(),
        3..=258 => format!("<0x{:02X}>", i - 3),
        259 if arch == "phi3" => "<|endoftext|>".into(),
        _ => format!("\u{2581}t{i}"),
    }
}

fn metadata(p: &Preset, quant: Quant) -> Vec<(String, Meta)> {
    let a = p.arch;
    let head_dim = p.head_dim;
    let mut m = vec![
        ("general.architecture".to_owned(), Meta::Str(a.into())),
        (
            "general.name".into(),
            Meta::Str(format!("odai synthetic {} {}", p.name, quant.name())),
        ),
        ("general.alignment".into(), Meta::U32(ALIGNMENT as u32)),
        (format!("{a}.context_length"), Meta::U32(p.context as u32)),
        (format!("{a}.embedding_length"), Meta::U32(p.n_embd as u32)),
        (format!("{a}.block_count"), Meta::U32(p.n_layer as u32)),
        (format!("{a}.feed_forward_length"), Meta::U32(p.ffn as u32)),
        (
            format!("{a}.attention.head_count"),
            Meta::U32(p.n_head as u32),
        ),
        (
            format!("{a}.attention.head_count_kv"),
            Meta::U32(p.n_kv_head as u32),
        ),
        (
            format!("{a}.attention.key_length"),
            Meta::U32(head_dim as u32),
        ),
        (
            format!("{a}.attention.value_length"),
            Meta::U32(head_dim as u32),
        ),
        (
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Meta::F32(p.rms_eps),
        ),
        (format!("{a}.rope.freq_base"), Meta::F32(p.rope_theta)),
        (
            format!("{a}.rope.dimension_count"),
            Meta::U32(head_dim as u32),
        ),
        (format!("{a}.vocab_size"), Meta::U32(p.vocab as u32)),
    ];
    if a == "gemma3" {
        // Gemma 3 alternates local (sliding-window) and global attention layers.
        // llama.cpp reads the local layers' RoPE base from rope.freq_base_swa (default 10 000,
        // Gemma 3's local base).
        m.push((
            format!("{a}.attention.sliding_window"),
            Meta::U32(p.sliding_window as u32),
        ));
        m.push((format!("{a}.rope.freq_base_swa"), Meta::F32(10_000.0)));
    }
    m.push(("tokenizer.ggml.model".into(), Meta::Str("llama".into())));
    m.push(("tokenizer.ggml.tokens".into(), Meta::Tokens(p.vocab)));
    if let Some(bos) = p.bos {
        m.push(("tokenizer.ggml.bos_token_id".into(), Meta::U32(bos)));
    }
    m
}

const ALIGNMENT: u64 = 32;

fn put_str(w: &mut impl Write, s: &str) -> std::io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

/// Writes the synthetic model to `path` (through a `.part` file of this process renamed at the
/// end, so an interrupted write never leaves a file that looks complete, and two processes
/// filling the same cache entry at once each rename a whole file).
pub fn write(p: &Preset, quant: Quant, path: &Path) -> Result<(), Error> {
    let part = path.with_extension(format!("gguf.{}.part", std::process::id()));
    let io_err = |e: std::io::Error| Error::Model {
        file: path.to_owned(),
        problem: format!("cannot write it: {e}"),
    };
    let specs = tensors(p, quant);
    let meta = metadata(p, quant);
    let file = File::create(&part).map_err(io_err)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut header = Vec::new();
    header.extend(b"GGUF");
    header.extend(3u32.to_le_bytes());
    header.extend((specs.len() as u64).to_le_bytes());
    header.extend((meta.len() as u64).to_le_bytes());
    for (k, v) in &meta {
        put_str(&mut header, k).map_err(io_err)?;
        match v {
            Meta::U32(x) => {
                header.extend(4u32.to_le_bytes());
                header.extend(x.to_le_bytes());
            }
            Meta::F32(x) => {
                header.extend(6u32.to_le_bytes());
                header.extend(x.to_le_bytes());
            }
            Meta::Str(s) => {
                header.extend(8u32.to_le_bytes());
                put_str(&mut header, s).map_err(io_err)?;
            }
            // GGUF array: type 9, element type 8 (string), count, elements.
            Meta::Tokens(n) => {
                header.extend(9u32.to_le_bytes());
                header.extend(8u32.to_le_bytes());
                header.extend(n.to_le_bytes());
                for i in 0..*n {
                    put_str(&mut header, &token_text(p.arch, i)).map_err(io_err)?;
                }
            }
        }
    }
    let mut offset = 0u64;
    for t in &specs {
        put_str(&mut header, &t.name).map_err(io_err)?;
        header.extend((t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            header.extend(d.to_le_bytes());
        }
        header.extend(t.ggml_type().to_le_bytes());
        header.extend(offset.to_le_bytes());
        offset += t.bytes().next_multiple_of(ALIGNMENT);
    }
    // Tensor data starts aligned, and each tensor is padded to the alignment.
    let pad = |len: usize| vec![0u8; (len as u64).next_multiple_of(ALIGNMENT) as usize - len];
    w.write_all(&header).map_err(io_err)?;
    w.write_all(&pad(header.len())).map_err(io_err)?;

    let seed = p.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = Rng::new(seed ^ quant.ggml_type() as u64);
    let mut buf = Vec::new();
    for t in &specs {
        fill_tensor(t, &mut rng, &mut buf);
        w.write_all(&buf).map_err(io_err)?;
        w.write_all(&pad(buf.len())).map_err(io_err)?;
    }
    w.flush().map_err(io_err)?;
    w.into_inner()
        .map_err(|e| io_err(e.into_error()))?
        .sync_all()
        .map_err(io_err)?;
    std::fs::rename(&part, path).map_err(io_err)
}

fn f16(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_le_bytes()
}

/// The tensor's bytes into `buf`: blocks laid out per ggml-common.h.
fn fill_tensor(t: &TensorSpec, rng: &mut Rng, buf: &mut Vec<u8>) {
    buf.clear();
    let n = t.elems() as usize;
    let sigma = match t.fill {
        Fill::Uniform { centre, half } => {
            buf.extend((0..n).flat_map(|_| {
                let u = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
                (centre + (2.0 * u - 1.0) * half).to_le_bytes()
            }));
            return;
        }
        Fill::Random(s) => s,
    };
    let Some(q) = t.quant else {
        buf.resize(n * 4, 0);
        return;
    };
    let (per, size) = q.block();
    let blocks = n / per as usize;
    buf.resize(blocks * size as usize, 0);
    match q {
        // block_q4_0 { half d; uint8 qs[16] }: x = d * (q - 8), q uniform in 0..15 (std 4.6).
        Quant::Q4_0 => {
            let d = f16(sigma / 4.6);
            for b in buf.chunks_exact_mut(18) {
                b[..2].copy_from_slice(&d);
                rng.fill(&mut b[2..]);
            }
        }
        // block_q8_0 { half d; int8 qs[32] }: x = d * q, q uniform in -128..127 (std 73.9).
        Quant::Q8_0 => {
            let d = f16(sigma / 73.9);
            for b in buf.chunks_exact_mut(34) {
                b[..2].copy_from_slice(&d);
                rng.fill(&mut b[2..]);
            }
        }
        // block_q4_K { half d; half dmin; uint8 scales[12]; uint8 qs[128] }:
        // x = d * sc * q - dmin * m. Every sub-block gets sc = m = 32 (6 bits, packed as
        // ggml's get_scale_min_k4 reads them); dmin = 7.5 d centres q in 0..15 on zero.
        Quant::Q4K => {
            let d = sigma / (32.0 * 4.6);
            let (dh, mh) = (f16(d), f16(7.5 * d));
            let scales = [0xA0, 0xA0, 0xA0, 0xA0, 0xA0, 0xA0, 0xA0, 0xA0, 0, 0, 0, 0];
            for b in buf.chunks_exact_mut(144) {
                b[..2].copy_from_slice(&dh);
                b[2..4].copy_from_slice(&mh);
                b[4..16].copy_from_slice(&scales);
                rng.fill(&mut b[16..]);
            }
        }
        // Uniform in [-a, a] has std a / sqrt(3).
        Quant::F16 => {
            let a = sigma * 3f32.sqrt();
            for e in buf.chunks_exact_mut(2) {
                let u = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
                e.copy_from_slice(&f16((2.0 * u - 1.0) * a));
            }
        }
    }
}

/// What `odai model inspect` would say of the synthetic file, without writing it.
pub fn model_info(p: &Preset, quant: Quant) -> crate::gguf::ModelInfo {
    use crate::gguf::{ModelInfo, TypeBytes};
    let specs = tensors(p, quant);
    let mut tensor_types = std::collections::BTreeMap::new();
    // GGUF's names of the tensor types.
    let type_name = |q: Option<Quant>| match q {
        None => "F32",
        Some(Quant::Q4_0) => "Q4_0",
        Some(Quant::Q8_0) => "Q8_0",
        Some(Quant::Q4K) => "Q4_K",
        Some(Quant::F16) => "F16",
    };
    for (i, t) in specs.iter().enumerate() {
        // The embedding is the first tensor.
        tensor_types
            .entry(type_name(t.quant).to_owned())
            .or_insert_with(TypeBytes::default)
            .add(t.bytes(), i == 0);
    }
    let weight_bytes: u64 = specs.iter().map(TensorSpec::bytes).sum();
    let embedding = specs[0].bytes();
    ModelInfo {
        file: format!("synthetic:{}:{}", p.name, quant.name()),
        file_size_bytes: weight_bytes,
        architecture: p.arch.into(),
        name: Some(format!("odai synthetic {} {}", p.name, quant.name())),
        parameters: specs.iter().map(TensorSpec::elems).sum(),
        quant: tensor_types
            .iter()
            .max_by_key(|(_, t)| t.bytes)
            .map(|(k, _)| k.clone())
            .unwrap_or_default(),
        tensor_types,
        weight_bytes,
        decode_weight_bytes: if p.tied {
            weight_bytes
        } else {
            weight_bytes - embedding
        },
        context_length: Some(p.context),
        n_layers: p.n_layer,
        n_embd: p.n_embd,
        n_heads: p.n_head,
        n_kv_heads: p.n_kv_head,
        head_dim: p.head_dim,
        feed_forward_length: Some(p.ffn),
        vocab_size: Some(p.vocab),
        bos_token_id: p.bos.map(u64::from),
        eos_token_id: None,
        tokenizer: Some("llama".into()),
        token_embd_bytes: embedding,
        token_embd_type: type_name(specs[0].quant).into(),
        output_tied: p.tied,
    }
}

/// Parameters of a preset, counted from its tensors.
pub fn parameter_count(p: &Preset) -> u64 {
    tensors(p, Quant::F16).iter().map(TensorSpec::elems).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: llama.cpp refused synthetic files ("key not found in model:
    /// tokenizer.ggml.model"); they now carry a vocabulary as long as the embedding, of unique
    /// tokens.
    #[test]
    fn synthetic_files_carry_a_vocabulary_llama_cpp_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        let p = preset("smollm2-135m").unwrap();
        write(p, Quant::Q8_0, &path).unwrap();
        let g = crate::gguf::Gguf::open(&path).unwrap();
        assert_eq!(g.string("tokenizer.ggml.model"), Some("llama"));
        let Some(crate::gguf::Value::Array(tokens)) = g.get("tokenizer.ggml.tokens") else {
            panic!("no token list");
        };
        assert_eq!(tokens.len() as u64, p.vocab);
        let texts: std::collections::HashSet<&str> =
            tokens.iter().map(|t| t.as_str().unwrap()).collect();
        assert_eq!(texts.len(), tokens.len(), "token texts are unique");
        assert!(texts.contains("<0x0A>"), "byte tokens for SentencePiece");
    }

    #[test]
    fn preset_parameter_counts_match_the_families() {
        for (name, lo, hi) in [
            ("smollm2-135m", 134.0, 136.0),
            ("llama-3.2-1b", 1230.0, 1240.0),
            ("tinyllama-1.1b", 1095.0, 1105.0),
            ("phi-3-mini", 3750.0, 3830.0),
            ("llama-3.1-8b", 8000.0, 8050.0),
            ("gemma-3-1b", 995.0, 1005.0),
            ("qwen3-0.6b", 590.0, 600.0),
        ] {
            let m = parameter_count(preset(name).unwrap()) as f64 / 1e6;
            assert!((lo..hi).contains(&m), "{name}: {m} M");
        }
    }

    #[test]
    fn specs_parse_with_default_quant_and_name_what_exists() {
        let (p, q) = parse_spec("llama-3.2-1b", "--synthetic").unwrap();
        assert_eq!((p.name, q), ("llama-3.2-1b", Quant::Q4_0));
        assert_eq!(
            parse_spec("smollm2-135m:Q4_K", "--synthetic").unwrap().1,
            Quant::Q4K
        );
        let e = parse_spec("gpt-5:q4_0", "--synthetic")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--synthetic: no preset \"gpt-5\" (presets: smollm2-135m,"),
            "{e}"
        );
        let e = parse_spec("smollm2-135m:q3", "--synthetic")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--synthetic: no quantization \"q3\" (choose: q4_0, q8_0, q4_k, f16)"
        );
    }
}
