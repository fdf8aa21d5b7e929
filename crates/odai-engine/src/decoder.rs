//! odai's own decoder-only forward pass on its kernels (issues 7 and 13): llama, qwen2, qwen3,
//! gemma3 and phi3, the differences between them read from the file's metadata (arch.rs).
//! Weights are mapped from the GGUF file — read in place, or repacked eight rows at a time
//! (kernels/packed.rs) with the mapped pages released — activations quantized once per matmul,
//! a KV cache laid out per layer and KV head so attention reads contiguous rows, and no
//! allocation in the decode loop once the scratch buffers have grown. A file it cannot compute
//! faithfully (other tensor types, mixture of experts, a tensor the pass would ignore) goes to
//! candle's implementation instead; `ODAI_ENGINE=candle` forces that.
//!
//! The computation follows llama.cpp's graphs (llama.cpp/src/models/{llama,qwen2,qwen3,gemma3,
//! phi3}.cpp): RMSNorm (x / √(mean x² + ε) · w); q, k, v projections (fused in phi3, with
//! biases where the file has them); per-head RMS norms of q and k (qwen3, gemma3); RoPE on
//! adjacent pairs (llama, ggml mode 0 — the layout GGUF's converter permutes llama's q/k into)
//! or on halves (NEOX, the rest), with Llama 3's per-frequency factors and linear position
//! scaling; grouped-query attention, causal, and windowed on gemma3's sliding-window layers;
//! norms after attention and after the feed-forward (gemma3); a gated feed-forward, silu or
//! GELU-tanh (gemma3), gate and up fused in phi3; gemma3's √n_embd embedding scale; final
//! logit soft-capping where the file sets it.

use super::arch::{self, Act, Rope, Spec};
use super::attention;
use super::gguf::{GgmlDType, Gguf};
use super::kernels::packed::{
    self, BlockQ4_0x8, BlockQ4_1x8, BlockQ4Kx8, BlockQ5_0x8, BlockQ8_0x8, Packed8,
};
use super::kernels::{
    self, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8_0, BlockQ8_1, BlockQ8K,
    Disjoint, WeightBlock, matmul_share as share,
};
use super::kv::{KvCache, KvTypes};
use super::mapped::Mapped;
use super::team::Team;

/// Why a model goes to candle rather than this engine (not an error: candle runs it).
#[derive(Debug)]
pub struct Unsupported(pub String);

/// Positions the KV cache holds at first; it doubles as a sequence grows (amortised copying,
/// and no gigabytes reserved for a 128k-context model that runs 200 tokens).
const KV_START: usize = 256;

/// The most positions one pass through the layers computes at once unless
/// [`Decoder::set_ubatch`] says otherwise: llama.cpp's default `n_ubatch`. A longer prompt runs
/// in micro-batches of this many, so the per-pass buffers (the FFN's two rows of
/// `feed_forward_length` floats per position the largest: 512 MiB at 8,192 × 4,096 positions)
/// stay bounded; above a few dozen rows the matrix kernels are compute-bound, so the weights
/// read once per micro-batch cost nothing measurable.
pub const UBATCH_DEFAULT: usize = 512;

/// The weight types this engine's kernels multiply.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Q4_0,
    /// Q4_0, Q4_1 and Q5_0 repacked at load, eight rows interleaved (kernels/packed.rs).
    Q4_0x8,
    Q4_1x8,
    Q5_0x8,
    /// Q8_0 repacked where the CPU has VNNI (AVX-VNNI or AVX512-VNNI).
    Q8_0x8,
    Q4Kx8,
    Q4_1,
    Q5_0,
    Q8_0,
    Q4K,
    Q6K,
}

impl Kind {
    fn of(t: GgmlDType) -> Option<Kind> {
        Some(match t {
            GgmlDType::Q4_0 => Kind::Q4_0,
            GgmlDType::Q4_1 => Kind::Q4_1,
            GgmlDType::Q5_0 => Kind::Q5_0,
            GgmlDType::Q8_0 => Kind::Q8_0,
            GgmlDType::Q4K => Kind::Q4K,
            GgmlDType::Q6K => Kind::Q6K,
            _ => return None,
        })
    }

    fn elems(self) -> usize {
        match self {
            Kind::Q4K | Kind::Q6K => kernels::QK_K,
            _ => kernels::QK,
        }
    }

    /// Bytes per block of a kind as the file stores it (before any repacking).
    fn block_bytes(self) -> usize {
        use std::mem::size_of;
        match self {
            Kind::Q4_0 => size_of::<BlockQ4_0>(),
            Kind::Q4_1 => size_of::<BlockQ4_1>(),
            Kind::Q5_0 => size_of::<BlockQ5_0>(),
            Kind::Q8_0 => size_of::<BlockQ8_0>(),
            Kind::Q4K => size_of::<BlockQ4K>(),
            Kind::Q6K => size_of::<BlockQ6K>(),
            packed => unreachable!("{packed:?} exists only after load's repacking"),
        }
    }
}

/// A quantized matrix inside the mapping: `rows` rows of `cols` elements.
struct QMat {
    kind: Kind,
    ptr: *const u8,
    rows: usize,
    cols: usize,
}

// SAFETY: points into the read-only mapping the model owns.
unsafe impl Send for QMat {}
unsafe impl Sync for QMat {}

/// Activation buffers, one per partner format, reused across matmuls: `prepare` quantizes an
/// input once for every format the matrices about to read it need.
#[derive(Default)]
struct Acts {
    q8_1: Vec<BlockQ8_1>,
    q8k: Vec<BlockQ8K>,
}

impl Acts {
    fn prepare(&mut self, x: &[f32], mats: &[&QMat]) {
        let (mut q8_1, mut q8k) = (false, false);
        for w in mats {
            match w.kind {
                Kind::Q4_0 | Kind::Q4_1 | Kind::Q5_0 | Kind::Q8_0 => q8_1 = true,
                Kind::Q4_0x8 | Kind::Q4_1x8 | Kind::Q5_0x8 | Kind::Q8_0x8 => q8_1 = true,
                Kind::Q4K | Kind::Q6K | Kind::Q4Kx8 => q8k = true,
            }
        }
        if q8_1 {
            kernels::quantize_q8_1_into(x, &mut self.q8_1);
        }
        if q8k {
            kernels::quantize_q8k_into(x, &mut self.q8k);
        }
    }
}

/// An activation format `Acts` holds: where to find the prepared blocks.
trait Prepared: Sized {
    fn of(a: &Acts) -> &[Self];
}

impl Prepared for BlockQ8_1 {
    fn of(a: &Acts) -> &[Self] {
        &a.q8_1
    }
}

impl Prepared for BlockQ8K {
    fn of(a: &Acts) -> &[Self] {
        &a.q8k
    }
}

impl QMat {
    fn blocks<B: WeightBlock>(&self) -> &[B] {
        let n = self.rows * self.cols / B::ELEMS;
        // SAFETY: load checked that the tensor lies inside the mapping, is aligned for the
        // block type matching `kind`, and that rows × cols is a whole number of blocks.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<B>(), n) }
    }

    /// Member `id` of `size`'s share of y (m × rows) = x · Wᵀ, x prepared in `a`.
    ///
    /// # Safety
    /// As [`kernels::matmul_share`]: one round, distinct ids, `y` not otherwise in use.
    unsafe fn share(&self, a: &Acts, m: usize, y: &Disjoint, id: usize, size: usize) {
        // SAFETY (every arm): forwarded from the caller.
        unsafe {
            match self.kind {
                Kind::Q4_0 => self.rows_share::<BlockQ4_0>(a, m, y, id, size),
                Kind::Q4_1 => self.rows_share::<BlockQ4_1>(a, m, y, id, size),
                Kind::Q5_0 => self.rows_share::<BlockQ5_0>(a, m, y, id, size),
                Kind::Q8_0 => self.rows_share::<BlockQ8_0>(a, m, y, id, size),
                Kind::Q4K => self.rows_share::<BlockQ4K>(a, m, y, id, size),
                Kind::Q6K => self.rows_share::<BlockQ6K>(a, m, y, id, size),
                Kind::Q4_0x8 => self.packed_share::<BlockQ4_0x8>(a, m, y, id, size),
                Kind::Q4_1x8 => self.packed_share::<BlockQ4_1x8>(a, m, y, id, size),
                Kind::Q5_0x8 => self.packed_share::<BlockQ5_0x8>(a, m, y, id, size),
                Kind::Q8_0x8 => self.packed_share::<BlockQ8_0x8>(a, m, y, id, size),
                Kind::Q4Kx8 => self.packed_share::<BlockQ4Kx8>(a, m, y, id, size),
            }
        }
    }

    /// [`share`](Self::share) for a matrix read row by row as `B`.
    ///
    /// # Safety
    /// As `share`.
    unsafe fn rows_share<B: WeightBlock>(
        &self,
        a: &Acts,
        m: usize,
        y: &Disjoint,
        id: usize,
        size: usize,
    ) where
        B::Act: Prepared,
    {
        let x = &B::Act::of(a)[..m * self.cols / B::ELEMS];
        // SAFETY: forwarded from the caller.
        unsafe { share::<B>(self.blocks(), self.rows, x, m, y, id, size) }
    }

    /// [`share`](Self::share) for a matrix repacked as `P`.
    ///
    /// # Safety
    /// As `share`.
    unsafe fn packed_share<P: Packed8>(
        &self,
        a: &Acts,
        m: usize,
        y: &Disjoint,
        id: usize,
        size: usize,
    ) where
        packed::Act<P>: Prepared,
    {
        let x = &packed::Act::<P>::of(a)[..m * self.cols / <P::Row as WeightBlock>::ELEMS];
        // SAFETY: forwarded from the caller.
        unsafe { packed::matmul_share(self.packed::<P>(), self.rows, x, m, y, id, size) }
    }

    fn packed<P: Packed8>(&self) -> &[P] {
        let n = self.rows / 8 * (self.cols / <P::Row as WeightBlock>::ELEMS);
        // SAFETY: `repack` pointed ptr at a Vec of exactly n blocks of P that the model owns
        // (kind says which P).
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<P>(), n) }
    }

    fn packed_row<P: Packed8>(&self, r: usize, out: &mut Vec<f32>) {
        let per = self.cols / <P::Row as WeightBlock>::ELEMS;
        for b in &self.packed::<P>()[r / 8 * per..(r / 8 + 1) * per] {
            b.row(r % 8).dequantize(out);
        }
    }

    /// Repacks a Q4_0, Q4_1, Q5_0, Q4_K (or, with VNNI, Q8_0) matrix whose rows come in eights into `store` (which must
    /// outlive self), and returns the mapped bytes (address, length) it no longer reads.
    fn repack(
        &mut self,
        store: &mut Vec<Box<dyn std::any::Any + Send + Sync>>,
    ) -> Option<(usize, usize)> {
        fn go<P: Packed8>(
            m: &mut QMat,
            kind: Kind,
            store: &mut Vec<Box<dyn std::any::Any + Send + Sync>>,
        ) -> (usize, usize) {
            let per = m.cols / <P::Row as WeightBlock>::ELEMS;
            let packed = packed::repack::<P>(m.blocks::<P::Row>(), m.rows, per);
            let old = (m.ptr as usize, m.rows * per * std::mem::size_of::<P::Row>());
            m.ptr = packed.as_ptr().cast();
            m.kind = kind;
            // The Vec's buffer does not move when the Vec itself is moved into the store.
            store.push(Box::new(packed));
            old
        }
        if !self.rows.is_multiple_of(8) {
            return None;
        }
        // Repacked only where the packed layout has a SIMD kernel (kernels::packs_*).
        let p32 = kernels::packs_32();
        Some(match self.kind {
            Kind::Q4_0 if p32 => go::<BlockQ4_0x8>(self, Kind::Q4_0x8, store),
            Kind::Q4_1 if p32 => go::<BlockQ4_1x8>(self, Kind::Q4_1x8, store),
            Kind::Q5_0 if p32 => go::<BlockQ5_0x8>(self, Kind::Q5_0x8, store),
            Kind::Q4K if kernels::packs_q4_k() => go::<BlockQ4Kx8>(self, Kind::Q4Kx8, store),
            Kind::Q8_0 if kernels::packs_q8_0() => go::<BlockQ8_0x8>(self, Kind::Q8_0x8, store),
            _ => return None,
        })
    }

    /// The output rows member `id` of `size` computes in `share`.
    fn rows_of(&self, id: usize, size: usize) -> std::ops::Range<usize> {
        kernels::share_rows(self.rows, id, size)
    }

    /// Row `r` as floats, into `out` (cleared first).
    fn row(&self, r: usize, out: &mut Vec<f32>) {
        fn deq<B: WeightBlock>(m: &QMat, r: usize, out: &mut Vec<f32>) {
            let per = m.cols / B::ELEMS;
            for b in &m.blocks::<B>()[r * per..(r + 1) * per] {
                b.dequantize(out);
            }
        }
        out.clear();
        match self.kind {
            Kind::Q4_0 => deq::<BlockQ4_0>(self, r, out),
            Kind::Q4_0x8 => self.packed_row::<BlockQ4_0x8>(r, out),
            Kind::Q4_1x8 => self.packed_row::<BlockQ4_1x8>(r, out),
            Kind::Q5_0x8 => self.packed_row::<BlockQ5_0x8>(r, out),
            Kind::Q8_0x8 => self.packed_row::<BlockQ8_0x8>(r, out),
            Kind::Q4Kx8 => self.packed_row::<BlockQ4Kx8>(r, out),
            Kind::Q4_1 => deq::<BlockQ4_1>(self, r, out),
            Kind::Q5_0 => deq::<BlockQ5_0>(self, r, out),
            Kind::Q8_0 => deq::<BlockQ8_0>(self, r, out),
            Kind::Q4K => deq::<BlockQ4K>(self, r, out),
            Kind::Q6K => deq::<BlockQ6K>(self, r, out),
        }
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: QMat,
    wk: QMat,
    wv: QMat,
    /// q, k, v biases (qwen2; any file that has them).
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    /// Per-head RMS norm weights of q and k (qwen3, gemma3).
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    wo: QMat,
    /// gemma3's norms of the attention and feed-forward outputs.
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    gate: QMat,
    up: QMat,
    down: QMat,
    post_ffn_norm: Option<Vec<f32>>,
}

/// Per-pass buffers, grown to the longest batch seen and then reused.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    xn: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    o: Vec<f32>,
    g: Vec<f32>,
    u: Vec<f32>,
    /// RoPE angles of the batch's positions: one table per RoPE base (global, sliding-window).
    cos: [Vec<f32>; 2],
    sin: [Vec<f32>; 2],
    row: Vec<f32>,
    acts: Acts,
}

/// A loaded decoder-only model on odai's kernels.
pub struct Decoder {
    spec: Spec,
    ffn: usize,
    vocab: usize,
    embd: QMat,
    output: QMat,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    /// RoPE inverse frequencies (scaled by the layer set's linear factor): [global, sliding].
    inv_freq: [Vec<f32>; 2],
    /// K and V per layer and KV head (slab `layer * n_kv_head + head`), laid out for
    /// [`attention::attend`].
    kv: KvCache,
    s: Scratch,
    team: Team,
    /// The most positions one pass computes ([`UBATCH_DEFAULT`]).
    ubatch: usize,
    /// Whether the weights are the file's pages (mapped) or read into anonymous memory.
    mapped: bool,
    /// Repacked matrices (the Kind::*x8 matrices point into them).
    _packed: Vec<Box<dyn std::any::Any + Send + Sync>>,
    // Last: the tensors above point into it.
    _map: Mapped,
}

fn unsupported<T>(why: impl Into<String>) -> Result<T, Unsupported> {
    Err(Unsupported(why.into()))
}

/// The file's tensors, looked up by name; remembers which the pass uses, so a file carrying a
/// tensor the pass would ignore (a bias, a rope factor table, an extra head) is refused rather
/// than run wrong.
struct Tensors<'a> {
    g: &'a Gguf,
    map: &'a Mapped,
    used: std::cell::RefCell<std::collections::HashSet<String>>,
}

impl Tensors<'_> {
    fn has(&self, name: &str) -> bool {
        self.g.content.tensor_infos.contains_key(name)
    }

    fn raw(&self, name: &str) -> Result<(GgmlDType, Vec<usize>, *const u8), Unsupported> {
        let c = &self.g.content;
        let Some(info) = c.tensor_infos.get(name) else {
            return unsupported(format!("no tensor {name}"));
        };
        let start = c.tensor_data_offset as usize + info.offset as usize;
        let bytes = super::gguf::tensor_bytes(info.ggml_dtype, info.elem_count()) as usize;
        if start + bytes > self.map.len {
            return unsupported(format!("{name} lies outside the file"));
        }
        self.used.borrow_mut().insert(name.to_owned());
        // SAFETY: start + bytes ≤ len, checked above.
        let ptr = unsafe { self.map.ptr.add(start) };
        Ok((info.ggml_dtype, info.dims.clone(), ptr))
    }

    /// `rows` × `cols` quantized weights.
    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<QMat, Unsupported> {
        let (t, dims, ptr) = self.raw(name)?;
        let Some(kind) = Kind::of(t) else {
            return unsupported(format!("{name} is {t:?}"));
        };
        if dims != [rows, cols] || !cols.is_multiple_of(kind.elems()) {
            return unsupported(format!(
                "{name} has shape {dims:?}, expected [{rows}, {cols}]"
            ));
        }
        // Weight blocks hold u16 fields: 2-byte alignment is what their slices need.
        if !(ptr as usize).is_multiple_of(2) {
            return unsupported(format!("{name} is not aligned"));
        }
        Ok(QMat {
            kind,
            ptr,
            rows,
            cols,
        })
    }

    /// A fused matrix split by rows into parts of `rows` rows each (phi3's attn_qkv, its
    /// gate-and-up ffn_up): each part points into the same mapping, so nothing is copied.
    fn split(&self, name: &str, rows: &[usize], cols: usize) -> Result<Vec<QMat>, Unsupported> {
        let whole = self.matrix(name, rows.iter().sum(), cols)?;
        let row_bytes = cols / whole.kind.elems() * whole.kind.block_bytes();
        let mut at = 0;
        Ok(rows
            .iter()
            .map(|&r| {
                // SAFETY: the parts tile the matrix checked above.
                let ptr = unsafe { whole.ptr.add(at * row_bytes) };
                at += r;
                QMat {
                    kind: whole.kind,
                    ptr,
                    rows: r,
                    cols,
                }
            })
            .collect())
    }

    /// An F32 vector of `n`.
    fn vector(&self, name: &str, n: usize) -> Result<Vec<f32>, Unsupported> {
        let (t, dims, ptr) = self.raw(name)?;
        if t != GgmlDType::F32 || dims != [n] {
            return unsupported(format!("{name} is {t:?} {dims:?}, expected F32 [{n}]"));
        }
        // SAFETY: n f32 values inside the mapping (checked by `raw`); read unaligned.
        Ok((0..n)
            .map(|i| unsafe { ptr.cast::<f32>().add(i).read_unaligned() })
            .collect())
    }

    /// The vector if the file has it.
    fn optional(&self, name: &str, n: usize) -> Result<Option<Vec<f32>>, Unsupported> {
        if self.has(name) {
            self.vector(name, n).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The first tensor of the file the pass does not use.
    fn unused(&self) -> Option<String> {
        let used = self.used.borrow();
        let mut names: Vec<&String> = self.g.content.tensor_infos.keys().collect();
        names.sort();
        names.into_iter().find(|n| !used.contains(*n)).cloned()
    }
}

impl Decoder {
    /// Maps `g`'s file and checks every tensor; `Unsupported` says why candle must run it.
    pub fn load(g: &Gguf) -> Result<Decoder, Unsupported> {
        Self::load_with(g, true)
    }

    /// As [`Decoder::load`]; `mmap` false reads the file into the process's own memory instead
    /// of mapping it (llama.cpp's `--mmap 0`: [`Mapped::read`]).
    pub fn load_with(g: &Gguf, mmap: bool) -> Result<Decoder, Unsupported> {
        let spec = Spec::read(g).map_err(Unsupported)?;
        let (n_embd, hd) = (spec.n_embd, spec.head_dim);
        let map = if mmap {
            Mapped::open(&g.path, true).map_err(|e| Unsupported(format!("cannot map: {e}")))?
        } else {
            Mapped::read(&g.path).map_err(|e| Unsupported(format!("cannot read: {e}")))?
        };
        let t = Tensors {
            g,
            map: &map,
            used: Default::default(),
        };
        let c = &g.content;
        let q_dim = spec.n_head * hd;
        let kv_dim = spec.n_kv_head * hd;
        let vocab = c
            .tensor_infos
            .get("token_embd.weight")
            .and_then(|t| t.dims.first().copied())
            .unwrap_or(0);
        let embd = t.matrix("token_embd.weight", vocab, n_embd)?;
        let output = if t.has("output.weight") {
            t.matrix("output.weight", vocab, n_embd)?
        } else {
            t.matrix("token_embd.weight", vocab, n_embd)?
        };
        let ffn = c
            .tensor_infos
            .get("blk.0.ffn_down.weight")
            .and_then(|t| t.dims.get(1).copied())
            .unwrap_or(0);
        let mut layers = Vec::with_capacity(spec.n_layer);
        for i in 0..spec.n_layer {
            let p = |s: &str| format!("blk.{i}.{s}.weight");
            let bias = |s: &str| format!("blk.{i}.{s}.bias");
            let [wq, wk, wv]: [QMat; 3] = if spec.fused_qkv {
                t.split(&p("attn_qkv"), &[q_dim, kv_dim, kv_dim], n_embd)?
                    .try_into()
                    .map_err(|_| Unsupported("attn_qkv split".into()))?
            } else {
                [
                    t.matrix(&p("attn_q"), q_dim, n_embd)?,
                    t.matrix(&p("attn_k"), kv_dim, n_embd)?,
                    t.matrix(&p("attn_v"), kv_dim, n_embd)?,
                ]
            };
            let [gate, up]: [QMat; 2] = if spec.fused_gate_up {
                t.split(&p("ffn_up"), &[ffn, ffn], n_embd)?
                    .try_into()
                    .map_err(|_| Unsupported("ffn_up split".into()))?
            } else {
                [
                    t.matrix(&p("ffn_gate"), ffn, n_embd)?,
                    t.matrix(&p("ffn_up"), ffn, n_embd)?,
                ]
            };
            let (q_norm, k_norm) = if spec.qk_norm {
                (
                    Some(t.vector(&p("attn_q_norm"), hd)?),
                    Some(t.vector(&p("attn_k_norm"), hd)?),
                )
            } else {
                (None, None)
            };
            let (post_attn_norm, post_ffn_norm) = if spec.post_norms {
                (
                    Some(t.vector(&p("post_attention_norm"), n_embd)?),
                    Some(t.vector(&p("post_ffw_norm"), n_embd)?),
                )
            } else {
                (None, None)
            };
            layers.push(Layer {
                attn_norm: t.vector(&p("attn_norm"), n_embd)?,
                wq,
                wk,
                wv,
                bq: t.optional(&bias("attn_q"), q_dim)?,
                bk: t.optional(&bias("attn_k"), kv_dim)?,
                bv: t.optional(&bias("attn_v"), kv_dim)?,
                q_norm,
                k_norm,
                wo: t.matrix(&p("attn_output"), n_embd, q_dim)?,
                post_attn_norm,
                ffn_norm: t.vector(&p("ffn_norm"), n_embd)?,
                gate,
                up,
                down: t.matrix(&p("ffn_down"), n_embd, ffn)?,
                post_ffn_norm,
            });
        }
        let output_norm = t.vector("output_norm.weight", n_embd)?;
        let freqs = |base: arch::RopeBase| -> Vec<f32> {
            (0..hd / 2)
                .map(|i| base.scale * base.theta.powf(-2.0 * i as f32 / hd as f32))
                .collect()
        };
        let mut global = freqs(spec.rope_base);
        // Llama 3's per-frequency factors divide the global frequencies (ggml_rope_ext's
        // freq_factors).
        if spec.arch == "llama" && t.has("rope_freqs.weight") {
            let factors = t.vector("rope_freqs.weight", hd / 2)?;
            for (f, k) in global.iter_mut().zip(factors) {
                *f /= k;
            }
        }
        let sliding = spec
            .swa
            .as_ref()
            .map_or_else(|| global.clone(), |s| freqs(s.rope));
        if let Some(name) = t.unused() {
            return unsupported(format!(
                "it has {name}, which odai's {} pass does not compute",
                spec.arch
            ));
        }
        drop(t);
        // Q4_0, Q4_1 and Q5_0 matrices are repacked eight rows at a time (llama.cpp repacks
        // Q4_0 at load the same way); the
        // mapped pages they came from are handed back, so resident memory does not double.
        // The embedding stays as mapped: it is read a row at a time.
        // Matrices repack independently: on rayon's pool (sized by --threads, like the team).
        use rayon::prelude::*;
        let mut output = output;
        let tied = output.ptr == embd.ptr;
        // (matrix, whether its mapped bytes may be released)
        let mut mats: Vec<(&mut QMat, bool)> = layers
            .iter_mut()
            .flat_map(|l| {
                [
                    &mut l.wq,
                    &mut l.wk,
                    &mut l.wv,
                    &mut l.wo,
                    &mut l.gate,
                    &mut l.up,
                    &mut l.down,
                ]
            })
            .map(|w| (w, true))
            .collect();
        mats.push((&mut output, true));
        // Each matrix's mapped pages go as soon as its packed copy exists, so the peak resident
        // memory of a load is not file + copy (a Q8_0 model peaked at 281 MiB for 145 MiB).
        let map_ref = &map;
        let packed: Vec<_> = mats
            .par_iter_mut()
            .flat_map_iter(|(w, release)| {
                let mut store = Vec::new();
                if let Some((addr, len)) = w.repack(&mut store).filter(|_| *release) {
                    map_ref.release(addr, len);
                }
                store
            })
            .collect();
        // An output matrix tied to the embedding is packed too (the per-token matvec over the
        // vocabulary is the largest); the embedding then reads its rows from the packed copy,
        // so the mapped bytes go and resident memory does not hold both.
        let embd = if tied {
            QMat {
                kind: output.kind,
                ptr: output.ptr,
                rows: output.rows,
                cols: output.cols,
            }
        } else {
            embd
        };
        let kv = KvCache::new(
            spec.n_layer * spec.n_kv_head,
            spec.head_dim,
            KvTypes::default(),
        )
        .map_err(Unsupported)?;
        Ok(Decoder {
            spec,
            ffn,
            vocab,
            embd,
            output,
            output_norm,
            layers,
            inv_freq: [global, sliding],
            kv,
            s: Scratch::default(),
            _packed: packed,
            // candle and the bench size the process's parallelism through rayon's pool
            // (RAYON_NUM_THREADS); the team takes the same count.
            team: Team::new(rayon::current_num_threads()),
            ubatch: UBATCH_DEFAULT,
            mapped: mmap,
            _map: map,
        })
    }

    /// The architecture this model computes.
    pub fn arch(&self) -> &str {
        &self.spec.arch
    }

    /// The KV cache's element types: f16 keys and values unless [`Decoder::set_kv_types`] chose
    /// others.
    pub fn kv_types(&self) -> KvTypes {
        self.kv.types()
    }

    /// Keeps keys and values in `types` from now on (llama.cpp's `-ctk`/`-ctv`); a change starts
    /// an empty cache, so it forgets the sequence. Refused where the head size does not fit the
    /// quantized types' blocks.
    pub fn set_kv_types(&mut self, types: KvTypes) -> Result<(), String> {
        if types != self.kv.types() {
            let sp = &self.spec;
            self.kv = KvCache::new(sp.n_layer * sp.n_kv_head, sp.head_dim, types)?;
        }
        Ok(())
    }

    /// The most positions one pass through the layers computes at once.
    pub fn ubatch(&self) -> usize {
        self.ubatch
    }

    /// Runs prompts in micro-batches of at most `n` positions (llama.cpp's `-ub`): the
    /// per-pass buffers hold `n` rows. Logits do not depend on it beyond rounding.
    pub fn set_ubatch(&mut self, n: usize) {
        self.ubatch = n.max(1);
    }

    /// Whether the weights are the file's mapped pages (else read into the process's memory).
    pub fn mapped(&self) -> bool {
        self.mapped
    }

    /// Forgets the sequence; the next forward starts at position 0.
    pub fn reset(&mut self) {
        // The cache keeps its size: positions are overwritten before they are read.
    }

    /// Makes room for `need` positions, keeping what the cache holds.
    fn grow_kv(&mut self, need: usize) {
        let have = self.kv.cap();
        if need <= have {
            return;
        }
        let cap = need
            .max(have * 2)
            .max(KV_START)
            .min(self.spec.ctx.max(need));
        self.kv.grow(cap);
    }

    /// Runs `tokens` at positions `pos..pos + len`; returns the last position's logits.
    pub fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, String> {
        self.forward_rows(tokens, pos, tokens.len().saturating_sub(1))
    }

    /// Runs `tokens` at positions `pos..pos + len`; returns the logits of rows `first..len`
    /// (row-major, `vocab` each): perplexity and KL divergence score every position of a window's
    /// second half, in one pass.
    pub fn forward_rows(
        &mut self,
        tokens: &[u32],
        pos: usize,
        first: usize,
    ) -> Result<Vec<f32>, String> {
        let m = tokens.len();
        if first >= m.max(1) {
            return Err(format!("no logits asked for: row {first} of {m}"));
        }
        if m == 0 {
            return Err("no tokens to run".into());
        }
        if pos + m > self.spec.ctx {
            return Err(format!(
                "position {} is past the model's context length {}",
                pos + m,
                self.spec.ctx
            ));
        }
        if let Some(t) = tokens.iter().find(|&&t| t as usize >= self.vocab) {
            return Err(format!(
                "token id {t} is outside the vocabulary ({})",
                self.vocab
            ));
        }
        // The cache grows once for the whole prompt, not once per micro-batch (each growth
        // holds the old and the new cache at once).
        self.grow_kv(pos + m);
        let step = self.ubatch;
        if m <= step {
            // One micro-batch (every decode step): its logits as they are, not copied.
            return Ok(self.pass(tokens, pos, first));
        }
        let mut logits = Vec::with_capacity((m - first) * self.vocab);
        for at in (0..m).step_by(step) {
            let end = (at + step).min(m);
            // Rows of this micro-batch whose logits were asked for: none before `first`.
            let rows_from = first.max(at).min(end) - at;
            logits.extend(self.pass(&tokens[at..end], pos + at, rows_from));
        }
        Ok(logits)
    }

    /// One pass through the layers for `tokens` at `pos..`, checked and with the cache grown
    /// by the caller; returns the logits of rows `first..` (none when `first` is the length).
    fn pass(&mut self, tokens: &[u32], pos: usize, first: usize) -> Vec<f32> {
        let m = tokens.len();
        let sp = &self.spec;
        let (d, hd, ffn) = (sp.n_embd, sp.head_dim, self.ffn);
        let (q_dim, kv_dim) = (sp.n_head * hd, sp.n_kv_head * hd);
        let team = &self.team;
        let size = team.size();
        let s = &mut self.s;
        for (buf, n) in [
            (&mut s.x, m * d),
            (&mut s.xn, m * d),
            (&mut s.q, m * q_dim),
            (&mut s.k, m * kv_dim),
            (&mut s.v, m * kv_dim),
            (&mut s.att, m * q_dim),
            (&mut s.o, m * d),
            (&mut s.g, m * ffn),
            (&mut s.u, m * ffn),
        ] {
            buf.resize(n, 0.0);
        }
        for buf in s.cos.iter_mut().chain(s.sin.iter_mut()) {
            buf.resize(m * hd / 2, 0.0);
        }

        for (t, &tok) in tokens.iter().enumerate() {
            self.embd.row(tok as usize, &mut s.row);
            let x = &mut s.x[t * d..(t + 1) * d];
            x.copy_from_slice(&s.row);
            if sp.embd_scale != 1.0 {
                x.iter_mut().for_each(|v| *v *= sp.embd_scale);
            }
            for (set, freqs) in self.inv_freq.iter().enumerate() {
                for (i, &f) in freqs.iter().enumerate() {
                    let (sin, cos) = ((pos + t) as f32 * f).sin_cos();
                    s.cos[set][t * hd / 2 + i] = cos;
                    s.sin[set][t * hd / 2 + i] = sin;
                }
            }
        }

        let scale = sp.attn_scale;
        let group = sp.n_head / sp.n_kv_head;
        // Queries per block of attention: the heads of one KV head over enough positions to
        // make about 32 rows, each tile of keys and values loaded once for all of them.
        let block = (32 / group).max(1);
        let blocks = m.div_ceil(block);
        for (li, l) in self.layers.iter().enumerate() {
            rms_norm(&s.x, &l.attn_norm, sp.eps, &mut s.xn);
            s.acts.prepare(&s.xn[..m * d], &[&l.wq, &l.wk, &l.wv]);
            {
                let (q, k, v) = (
                    Disjoint::new(&mut s.q),
                    Disjoint::new(&mut s.k),
                    Disjoint::new(&mut s.v),
                );
                let acts = &s.acts;
                // SAFETY: one round, each member its own id, for each output.
                team.run(&|id| unsafe {
                    l.wq.share(acts, m, &q, id, size);
                    l.wk.share(acts, m, &k, id, size);
                    l.wv.share(acts, m, &v, id, size);
                });
            }
            for (buf, b) in [(&mut s.q, &l.bq), (&mut s.k, &l.bk), (&mut s.v, &l.bv)] {
                if let Some(b) = b {
                    for row in buf.chunks_exact_mut(b.len()) {
                        row.iter_mut().zip(b).for_each(|(x, b)| *x += b);
                    }
                }
            }
            for (buf, w) in [(&mut s.q, &l.q_norm), (&mut s.k, &l.k_norm)] {
                if let Some(w) = w {
                    rms_norm_in_place(buf, w, sp.eps);
                }
            }
            let set = usize::from(sp.rope_of(li) != sp.rope_base);
            let (cos, sin) = (&s.cos[set], &s.sin[set]);
            rope(sp.rope, &mut s.q, hd, cos, sin);
            rope(sp.rope, &mut s.k, hd, cos, sin);
            for t in 0..m {
                for h in 0..sp.n_kv_head {
                    let src = t * kv_dim + h * hd;
                    self.kv.store(
                        li * sp.n_kv_head + h,
                        pos + t,
                        &s.k[src..src + hd],
                        &s.v[src..src + hd],
                    );
                }
            }
            {
                let att = Disjoint::new(&mut s.att);
                let (kv, q) = (&self.kv, &s.q);
                team.run(&|id| {
                    let mut rows = Vec::with_capacity(block * group);
                    let mut out = vec![0f32; block * group * hd];
                    // (block, KV head) pairs dealt out in turn: later positions see more keys,
                    // and turns spread them over the team.
                    for item in (id..blocks * sp.n_kv_head).step_by(size) {
                        let (b, g) = (item / sp.n_kv_head, item % sp.n_kv_head);
                        let tokens = b * block..((b + 1) * block).min(m);
                        rows.clear();
                        for t in tokens.clone() {
                            for h in g * group..(g + 1) * group {
                                rows.push(attention::Row {
                                    q: &q[t * q_dim + h * hd..][..hd],
                                    first: sp.first_key(li, pos + t),
                                    end: pos + t + 1,
                                });
                            }
                        }
                        attention::attend(kv, li * sp.n_kv_head + g, &rows, scale, &mut out);
                        for (i, t) in tokens.enumerate() {
                            let at = t * q_dim + g * group * hd;
                            // SAFETY: (token, KV head) belongs to this member alone.
                            let dst = unsafe { att.range(at..at + group * hd) };
                            dst.copy_from_slice(&out[i * group * hd..(i + 1) * group * hd]);
                        }
                    }
                });
            }
            s.acts.prepare(&s.att[..m * q_dim], &[&l.wo]);
            {
                let o = Disjoint::new(&mut s.o);
                let acts = &s.acts;
                // SAFETY: one round, distinct ids.
                team.run(&|id| unsafe { l.wo.share(acts, m, &o, id, size) });
            }
            if let Some(w) = &l.post_attn_norm {
                rms_norm_in_place(&mut s.o, w, sp.eps);
            }
            for (x, o) in s.x.iter_mut().zip(&s.o) {
                *x += o;
            }
            rms_norm(&s.x, &l.ffn_norm, sp.eps, &mut s.xn);
            s.acts.prepare(&s.xn[..m * d], &[&l.gate, &l.up]);
            {
                let (g, u) = (Disjoint::new(&mut s.g), Disjoint::new(&mut s.u));
                let acts = &s.acts;
                let act = sp.act;
                // SAFETY: one round, distinct ids, for each output; then each member gates the
                // rows it computed (the same share as the matmul's), so no barrier is needed.
                team.run(&|id| unsafe {
                    l.gate.share(acts, m, &g, id, size);
                    l.up.share(acts, m, &u, id, size);
                    let mine = l.gate.rows_of(id, size);
                    for t in 0..m {
                        let r = t * ffn + mine.start..t * ffn + mine.end;
                        let (gs, us) = (g.range(r.clone()), u.range(r));
                        match act {
                            Act::Silu => {
                                for (g, u) in gs.iter_mut().zip(us.iter()) {
                                    *g = *g / (1.0 + (-*g).exp()) * u;
                                }
                            }
                            Act::GeluTanh => {
                                for (g, u) in gs.iter_mut().zip(us.iter()) {
                                    *g = arch::gelu_tanh(*g) * u;
                                }
                            }
                        }
                    }
                });
            }
            s.acts.prepare(&s.g[..m * ffn], &[&l.down]);
            {
                let o = Disjoint::new(&mut s.o);
                let acts = &s.acts;
                // SAFETY: one round, distinct ids.
                team.run(&|id| unsafe { l.down.share(acts, m, &o, id, size) });
            }
            if let Some(w) = &l.post_ffn_norm {
                rms_norm_in_place(&mut s.o, w, sp.eps);
            }
            for (x, o) in s.x.iter_mut().zip(&s.o) {
                *x += o;
            }
        }
        // Only the rows asked for run through the output matrix (the largest): one, when
        // generating; none for a micro-batch before the first row asked.
        let rows = m - first;
        if rows == 0 {
            return Vec::new();
        }
        rms_norm(
            &s.x[first * d..m * d],
            &self.output_norm,
            sp.eps,
            &mut s.xn[..rows * d],
        );
        s.acts.prepare(&s.xn[..rows * d], &[&self.output]);
        let mut logits = vec![0f32; rows * self.vocab];
        {
            let y = Disjoint::new(&mut logits);
            let (acts, out) = (&s.acts, &self.output);
            // SAFETY: one round, distinct ids.
            team.run(&|id| unsafe { out.share(acts, rows, &y, id, size) });
        }
        if let Some(c) = sp.softcap {
            logits.iter_mut().for_each(|v| *v = c * (*v / c).tanh());
        }
        // A NaN or ∞ in the hidden state (weights that hold NaN, an overflow) would vanish in
        // the int8 quantization of the activations above (a NaN's amax is skipped, and it
        // rounds to 0), leaving finite logits of nothing: they are NaN instead, as they are on
        // every runtime that multiplies in floats, so the caller can tell.
        if s.xn[..rows * d].iter().any(|v| !v.is_finite()) {
            logits.fill(f32::NAN);
        }
        logits
    }
}

/// RMSNorm of each `w.len()`-long piece of `x`, in place (per-head q/k norms, post-norms).
fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let n = w.len();
    for xr in x.chunks_exact_mut(n) {
        let inv = 1.0 / (dot(xr, xr) / n as f32 + eps).sqrt();
        xr.iter_mut().zip(w).for_each(|(v, g)| *v *= inv * g);
    }
}

/// RMSNorm of each row of `x` (rows of `w.len()`), into `out`.
fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let n = w.len();
    for (xr, or) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let ms = dot(xr, xr) / n as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for ((o, &v), &g) in or.iter_mut().zip(xr).zip(w) {
            *o = v * inv * g;
        }
    }
}

/// Rotates every head of every row by the row's angles: adjacent pairs (ggml rope mode 0) or
/// halves (NEOX, mode 2: element i pairs with i + d/2).
fn rope(mode: Rope, x: &mut [f32], hd: usize, cos: &[f32], sin: &[f32]) {
    let half = hd / 2;
    let rows = cos.len() / half;
    let per_row = x.len() / rows;
    for (t, row) in x.chunks_exact_mut(per_row).enumerate() {
        let (c, s) = (&cos[t * half..][..half], &sin[t * half..][..half]);
        for head in row.chunks_exact_mut(hd) {
            match mode {
                Rope::Norm => {
                    for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                        let (a, b) = (pair[0], pair[1]);
                        pair[0] = a * c[i] - b * s[i];
                        pair[1] = a * s[i] + b * c[i];
                    }
                }
                Rope::Neox => {
                    let (lo, hi) = head.split_at_mut(half);
                    for i in 0..half {
                        let (a, b) = (lo[i], hi[i]);
                        lo[i] = a * c[i] - b * s[i];
                        hi[i] = a * s[i] + b * c[i];
                    }
                }
            }
        }
    }
}

/// Σ a·b with eight partial sums, so the compiler can keep it in vector registers.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{self, Quant};

    /// Every architecture's small synthetic model, at every quantization the kernels cover, loads
    /// on this engine and runs a prompt and a decode step after it with finite logits of the
    /// vocabulary's size; after `reset` the same prompt gives the same logits (nothing of the
    /// first sequence leaks into the next). On whatever kernels this CPU takes: the aarch64
    /// stage runs it on a dotprod core and on a Cortex-A53, where candle cannot run to compare.
    #[test]
    fn every_architecture_runs_and_reset_starts_afresh() {
        assert!(
            crate::kernels::has_simd(),
            "the engine's kernels need AVX2 (x86-64) or NEON (aarch64)"
        );
        for arch in ["llama", "qwen2", "qwen3", "phi3", "gemma3"] {
            let shape = synth::small(arch);
            for quant in [Quant::Q4_0, Quant::Q8_0, Quant::Q4K] {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("tiny.gguf");
                synth::write(&shape, quant, &path).unwrap();
                let g = Gguf::open(&path).unwrap();
                let mut d = Decoder::load(&g)
                    .unwrap_or_else(|e| panic!("{arch} {quant:?}: not taken: {}", e.0));
                let prompt = [1, 17, 42, 99, 7, 250];
                let first = d.forward(&prompt, 0).unwrap();
                assert_eq!(first.len(), 320, "{arch} {quant:?}");
                assert!(first.iter().all(|v| v.is_finite()), "{arch} {quant:?}");
                let next = crate::argmax(&first);
                let step = d.forward(&[next], prompt.len()).unwrap();
                assert!(step.iter().all(|v| v.is_finite()), "{arch} {quant:?}");
                d.reset();
                assert_eq!(d.forward(&prompt, 0).unwrap(), first, "{arch} {quant:?}");
            }
        }
    }
    /// A prompt run in micro-batches (`-ub`), on weights read into memory (`--mmap 0`), gives
    /// the logits one pass over the mapped file gives: every row's arithmetic is its own, so
    /// they are equal to the bit. gemma3's sliding window and llama's global attention both
    /// cross micro-batch borders here (a prompt of 40 in pieces of 7).
    #[test]
    fn micro_batches_and_a_read_file_give_the_logits_of_one_pass_over_the_mapping() {
        for arch in ["llama", "gemma3"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tiny.gguf");
            synth::write(&synth::small(arch), Quant::Q4_0, &path).unwrap();
            let g = Gguf::open(&path).unwrap();
            let prompt: Vec<u32> = (0..40).map(|i| (i * 37 + 11) % 300).collect();
            let mut whole = Decoder::load_with(&g, true).unwrap();
            assert_eq!((whole.ubatch(), whole.mapped()), (UBATCH_DEFAULT, true));
            let mut pieces = Decoder::load_with(&g, false).unwrap();
            pieces.set_ubatch(7);
            assert_eq!((pieces.ubatch(), pieces.mapped()), (7, false));
            for first in [0, 5, 39] {
                let a = whole.forward_rows(&prompt, 0, first).unwrap();
                let b = pieces.forward_rows(&prompt, 0, first).unwrap();
                assert_eq!(a.len(), (40 - first) * 320, "{arch} from {first}");
                assert!(a == b, "{arch}: rows from {first} differ");
            }
            // And a decode step after the micro-batched prompt reads the cache they wrote.
            assert!(whole.forward(&[3], 40).unwrap() == pieces.forward(&[3], 40).unwrap());
        }
    }

    #[test]
    fn regression_nan_in_the_hidden_state_reaches_the_logits() {
        // Found in review: a model whose weights hold NaN benchmarked like any other. The int8
        // quantization of the activations turned the NaN hidden state into zeros, and the
        // logits came out finite (all 0): nothing downstream could tell.
        let shape = synth::small("llama");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        synth::write(&shape, Quant::Q8_0, &path).unwrap();
        let mut d = Decoder::load(&Gguf::open(&path).unwrap()).unwrap();
        d.output_norm[0] = f32::NAN;
        let logits = d.forward(&[1, 17, 42], 0).unwrap();
        assert!(logits.iter().all(|v| v.is_nan()));
    }
}
