//! What a decoder-only architecture computes, read from a GGUF's metadata (issue 13): the
//! handful of ways llama, qwen2, qwen3, gemma3 and phi3 differ — RoPE layout, per-head q/k
//! norms, post-norms, the feed-forward's activation, embedding scale, sliding-window layers,
//! logit soft-capping. Every number comes from the file (`<arch>.*` keys); only the *kind* of
//! computation is per family, and it follows llama.cpp's graph for that family
//! (llama.cpp/src/models/<arch>.cpp, the llama-cpp-sys-2 0.1.160 sources): a file whose
//! metadata asks for something this engine does not compute (YaRN or LongRoPE scaling, partial
//! rotary dimensions, per-layer head counts) is refused with the reason, and candle runs it.

use super::gguf::{Gguf, Value};

/// How RoPE pairs a head's dimensions (ggml's rope modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rope {
    /// Adjacent pairs (2i, 2i + 1): ggml mode 0, LLAMA_ROPE_TYPE_NORM (llama).
    Norm,
    /// Halves (i, i + d/2): ggml mode 2, LLAMA_ROPE_TYPE_NEOX (qwen2, qwen3, gemma3, phi3).
    Neox,
}

/// The feed-forward's gate activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// silu(gate) · up.
    Silu,
    /// gelu(gate) · up, ggml's tanh approximation (gemma3's LLM_FFN_GELU).
    GeluTanh,
}

/// Positions and frequency scale of one set of layers' RoPE.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeBase {
    pub theta: f32,
    /// Linear position scale (1 / rope.scaling.factor), llama.cpp's freq_scale.
    pub scale: f32,
}

/// Sliding-window attention (llama.cpp's LLAMA_SWA_TYPE_STANDARD): a query at p1 sees keys at
/// p0 with p1 − p0 < `window`, on the layers `layers` marks.
#[derive(Clone, Debug, PartialEq)]
pub struct Swa {
    pub window: usize,
    pub layers: Vec<bool>,
    /// RoPE of the sliding-window layers (`rope.freq_base_swa`, default 10 000 as llama.cpp's).
    pub rope: RopeBase,
}

/// Everything about a file's computation that is not a tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub arch: String,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub ctx: usize,
    pub eps: f32,
    pub rope: Rope,
    pub rope_base: RopeBase,
    pub act: Act,
    /// Token embeddings are multiplied by this (gemma3: √n_embd).
    pub embd_scale: f32,
    /// Attention scores are q·k times this.
    pub attn_scale: f32,
    /// q and k are RMS-normed per head before RoPE (qwen3, gemma3).
    pub qk_norm: bool,
    /// RMS norms after attention and after the feed-forward, before each residual add (gemma3).
    pub post_norms: bool,
    /// q, k and v come from one fused matrix (phi3's attn_qkv).
    pub fused_qkv: bool,
    /// gate and up come from one fused matrix, gate first (phi3's ffn_up, LLM_FFN_SWIGLU).
    pub fused_gate_up: bool,
    pub swa: Option<Swa>,
    /// Final logits become c·tanh(logits / c) (`final_logit_softcapping`).
    pub softcap: Option<f32>,
}

/// The architectures this engine computes.
pub const ARCHS: &[&str] = &["llama", "qwen2", "qwen3", "gemma3", "phi3"];

fn refuse<T>(why: impl Into<String>) -> Result<T, String> {
    Err(why.into())
}

impl Spec {
    /// Reads the spec of `g`; the error says why the engine cannot compute this file faithfully.
    pub fn read(g: &Gguf) -> Result<Spec, String> {
        let Some(arch) = g.string("general.architecture") else {
            return refuse("no general.architecture");
        };
        if !ARCHS.contains(&arch) {
            return refuse(format!(
                "architecture {arch} is not one odai's engine computes"
            ));
        }
        let key = |k: &str| format!("{arch}.{k}");
        let uint = |k: &str| g.uint(&key(k)).map(|v| v as usize);
        let float = |k: &str| g.get(&key(k)).and_then(Value::to_f32);
        if uint("expert_count").unwrap_or(0) > 0 {
            return refuse("mixture of experts");
        }
        // Per-layer arrays (head counts, feed-forward sizes that vary by layer) read as None here.
        let (Some(n_layer), Some(n_embd), Some(n_head)) = (
            uint("block_count"),
            uint("embedding_length"),
            uint("attention.head_count"),
        ) else {
            return refuse(
                "incomplete or per-layer hyperparameters (block_count, embedding_length, attention.head_count)",
            );
        };
        let n_kv_head = uint("attention.head_count_kv").unwrap_or(n_head);
        if n_layer == 0 || n_embd == 0 || n_head == 0 || n_kv_head == 0 {
            return refuse("zero layers, width or heads");
        }
        if !n_head.is_multiple_of(n_kv_head) {
            return refuse(format!(
                "{n_head} query heads do not share {n_kv_head} KV heads evenly"
            ));
        }
        // llama.cpp: n_embd_head_k = attention.key_length, else n_embd / n_head.
        let head_dim = uint("attention.key_length").unwrap_or(n_embd / n_head);
        if uint("attention.value_length").unwrap_or(head_dim) != head_dim {
            return refuse("key and value head sizes differ");
        }
        if uint("rope.dimension_count").unwrap_or(head_dim) != head_dim {
            return refuse("partial rotary dimensions (rope.dimension_count < head size)");
        }
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return refuse("odd head dimension");
        }
        // llama.cpp's default scaling type is linear; a factor of 0 means none.
        match g.string(&key("rope.scaling.type")).unwrap_or("linear") {
            "linear" | "none" => {}
            other => return refuse(format!("{other} RoPE scaling")),
        }
        let factor = float("rope.scaling.factor")
            .or_else(|| float("rope.scale_linear"))
            .unwrap_or(0.0);
        let rope_base = RopeBase {
            theta: float("rope.freq_base").unwrap_or(10_000.0),
            scale: if factor == 0.0 { 1.0 } else { 1.0 / factor },
        };
        let eps = float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5);
        let ctx = uint("context_length").unwrap_or(4096);
        let gemma = arch == "gemma3";
        let swa = match (gemma, uint("attention.sliding_window")) {
            // llama.cpp's gemma3: every sixth layer global unless the file says otherwise
            // (attention.sliding_window_pattern), local layers on their own RoPE base. Its phi3
            // turns sliding windows off (llama.cpp PR 13676), and so does odai, to match.
            (true, Some(window)) if window > 0 => {
                let pattern = uint("attention.sliding_window_pattern").unwrap_or(6);
                if g.get(&key("attention.sliding_window_pattern"))
                    .is_some_and(|v| matches!(v, Value::Array(_)))
                {
                    return refuse("a per-layer sliding-window pattern");
                }
                Some(Swa {
                    window,
                    layers: (0..n_layer)
                        .map(|il| pattern == 0 || il % pattern < pattern - 1)
                        .collect(),
                    rope: RopeBase {
                        theta: float("rope.freq_base_swa").unwrap_or(10_000.0),
                        scale: 1.0,
                    },
                })
            }
            _ => None,
        };
        // gemma3's query scale (llama.cpp after gemma_pytorch config.py): 1/√(n_embd / n_head)
        // for the 27B model (62 layers), 1/√head_dim otherwise.
        let attn_scale = if gemma && n_layer == 62 {
            1.0 / ((n_embd / n_head) as f32).sqrt()
        } else {
            1.0 / (head_dim as f32).sqrt()
        };
        let softcap = float("final_logit_softcapping").filter(|&c| c > 0.0);
        Ok(Spec {
            arch: arch.to_owned(),
            n_layer,
            n_embd,
            n_head,
            n_kv_head,
            head_dim,
            ctx,
            eps,
            rope: if arch == "llama" {
                Rope::Norm
            } else {
                Rope::Neox
            },
            rope_base,
            act: if gemma { Act::GeluTanh } else { Act::Silu },
            embd_scale: if gemma { (n_embd as f32).sqrt() } else { 1.0 },
            attn_scale,
            qk_norm: matches!(arch, "qwen3" | "gemma3"),
            post_norms: gemma,
            fused_qkv: arch == "phi3",
            fused_gate_up: arch == "phi3",
            swa,
            softcap,
        })
    }

    /// The RoPE of layer `il`.
    pub fn rope_of(&self, il: usize) -> RopeBase {
        match &self.swa {
            Some(s) if s.layers[il] => s.rope,
            _ => self.rope_base,
        }
    }

    /// The first key position a query at `p` sees on layer `il`.
    pub fn first_key(&self, il: usize, p: usize) -> usize {
        match &self.swa {
            Some(s) if s.layers[il] => (p + 1).saturating_sub(s.window),
            _ => 0,
        }
    }
}

/// ggml's GELU, tanh approximation: ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (ggml-cpu vec.h).
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + 0.044_715 * x * x)).tanh())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_tanh_matches_known_values() {
        // Reference values of the tanh approximation (PyTorch gelu(approximate="tanh")).
        for (x, y) in [
            (0.0, 0.0),
            (1.0, 0.841_192),
            (-1.0, -0.158_808),
            (3.0, 2.996_363),
        ] {
            assert!(
                (gelu_tanh(x) - y).abs() < 1e-5,
                "gelu({x}) = {}",
                gelu_tanh(x)
            );
        }
    }

    #[test]
    fn sliding_window_sees_the_last_window_positions_on_local_layers_only() {
        let spec = Spec {
            arch: "gemma3".into(),
            n_layer: 7,
            n_embd: 8,
            n_head: 1,
            n_kv_head: 1,
            head_dim: 8,
            ctx: 64,
            eps: 1e-6,
            rope: Rope::Neox,
            rope_base: RopeBase {
                theta: 1e6,
                scale: 1.0,
            },
            act: Act::GeluTanh,
            embd_scale: 1.0,
            attn_scale: 1.0,
            qk_norm: true,
            post_norms: true,
            fused_qkv: false,
            fused_gate_up: false,
            swa: Some(Swa {
                window: 4,
                layers: (0..7).map(|il| il % 6 < 5).collect(),
                rope: RopeBase {
                    theta: 1e4,
                    scale: 1.0,
                },
            }),
            softcap: None,
        };
        // p1 − p0 ≥ window is masked: position 10 sees 7..=10.
        assert_eq!(spec.first_key(0, 10), 7);
        assert_eq!(spec.first_key(0, 2), 0);
        assert_eq!(spec.first_key(5, 10), 0, "layer 5 is global");
        assert_eq!(spec.rope_of(5).theta, 1e6);
        assert_eq!(spec.rope_of(6).theta, 1e4);
    }
}
