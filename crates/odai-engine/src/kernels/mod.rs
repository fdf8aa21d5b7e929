//! Quantized dot-product and matrix kernels for odai's own CPU path (issue 7): weights in
//! ggml's block formats, activations quantized once per matmul to 8-bit blocks, integer SIMD dot
//! products (AVX2 on x86-64, chosen at run time; a scalar path everywhere else), and rows split
//! across threads. Each SIMD kernel is tested against the scalar one; `benches/kernels.rs`
//! measures them at decode (m = 1) and prefill shapes.
//!
//! Block layouts follow ggml (ggml-common.h). 32-weight blocks: Q4_0 holds element j in the low
//! nibble of byte j and element j + 16 in its high nibble, value (q − 8)·d; Q4_1 the same nibbles
//! with value q·d + m; Q5_0 adds a fifth bit per element from `qh` (bit j for element j), value
//! (q − 16)·d; Q8_0 one signed byte per element, value q·d. 256-weight super-blocks (K-quants):
//! Q4_K has eight 32-element sub-blocks with 6-bit scales and mins; Q6_K sixteen 16-element
//! groups with 8-bit scales, 6-bit values offset by 32. Dequantization follows ggml's
//! `dequantize_row_*` (ggml-quants.c).

#[cfg(target_arch = "aarch64")]
mod aarch64;
pub mod packed;
#[cfg(target_arch = "x86_64")]
mod x86;

use half::f16;

/// Elements per block of the 32-element formats.
pub const QK: usize = 32;
/// Elements per K-quant super-block.
pub const QK_K: usize = 256;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct BlockQ4_0 {
    pub d: u16,
    pub qs: [u8; QK / 2],
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct BlockQ4_1 {
    pub d: u16,
    pub m: u16,
    pub qs: [u8; QK / 2],
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct BlockQ5_0 {
    pub d: u16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; QK],
}

#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ4K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; 12],
    pub qs: [u8; QK_K / 2],
}

#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: u16,
}

/// Activations for the 32-element weight types: 32 signed bytes, an f32 scale (ggml keeps f16
/// here; f32 spares a conversion per block in the inner loop), and `s` = d·Σq, which carries a
/// weight type's offset (Q4_1's m, Q4_0's −8, a repacked block's bias) through the dot product
/// (ggml's block_q8_1).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct BlockQ8_1 {
    pub d: f32,
    pub s: f32,
    pub qs: [i8; QK],
}

/// Activations for K-quant weights (ggml's block_q8_K): 256 signed bytes, an f32 scale and the
/// sums of each 16 bytes, which carry Q4_K's mins and Q6_K's offset of 32 through the product.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}

impl Default for BlockQ8K {
    fn default() -> Self {
        BlockQ8K {
            d: 0.0,
            qs: [0; QK_K],
            bsums: [0; QK_K / 16],
        }
    }
}

pub(crate) fn h(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// Round to nearest, ties to even, for |v| < 2²²: adding 1.5·2²³ pushes the fraction out of
/// the mantissa (ggml's nearest_int). `f32::round` is a libm call on baseline x86-64 (no SSE4.1)
/// and was visible in prefill profiles; this is two adds and vectorizes.
fn nearest(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// Quantizes `x` to signed bytes in `qs`: d = max|x| / 127, round to nearest. Returns d.
fn quantize_block(x: &[f32], qs: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (q, v) in qs.iter_mut().zip(x) {
        *q = nearest(v * inv) as i8;
    }
    d
}

/// Floats to Q8_0 weight blocks (`x.len()` a multiple of 32).
pub fn quantize_q8_0(x: &[f32]) -> Vec<BlockQ8_0> {
    x.chunks_exact(QK)
        .map(|c| {
            let mut qs = [0i8; QK];
            let d = quantize_block(c, &mut qs);
            BlockQ8_0 {
                d: f16::from_f32(d).to_bits(),
                qs,
            }
        })
        .collect()
}

/// Activations to Q8_1 blocks (`x.len()` a multiple of 32).
pub fn quantize_q8_1_into(x: &[f32], out: &mut Vec<BlockQ8_1>) {
    out.clear();
    out.extend(x.chunks_exact(QK).map(|c| {
        let mut b = BlockQ8_1::default();
        b.d = quantize_block(c, &mut b.qs);
        let sum: i32 = b.qs.iter().map(|&q| i32::from(q)).sum();
        b.s = b.d * sum as f32;
        b
    }));
}

/// Activations to Q8_1 blocks.
pub fn quantize_q8_1(x: &[f32]) -> Vec<BlockQ8_1> {
    let mut v = Vec::new();
    quantize_q8_1_into(x, &mut v);
    v
}

/// Activations to Q8_K super-blocks (`x.len()` a multiple of 256).
pub fn quantize_q8k_into(x: &[f32], out: &mut Vec<BlockQ8K>) {
    out.clear();
    out.extend(x.chunks_exact(QK_K).map(|c| {
        let mut b = BlockQ8K::default();
        b.d = quantize_block(c, &mut b.qs);
        for (s, g) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
            *s = g.iter().map(|&q| i16::from(q)).sum();
        }
        b
    }));
}

/// Q4_K's 6-bit scale and min of sub-block `j` (ggml's get_scale_min_k4).
fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// `dot_n` for a block type: the SIMD kernel where the CPU has one, else the scalar path.
macro_rules! simd_dots {
    () => {
        fn dot_tile<const R: usize, const C: usize>(
            w: [&[Self]; R],
            a: [&[Self::Act]; C],
        ) -> [[f32; C]; R] {
            #[cfg(target_arch = "x86_64")]
            if avx2() {
                // SAFETY: AVX2, FMA and F16C were detected at run time.
                return unsafe { x86::dot_tile(w, a) };
            }
            #[cfg(target_arch = "aarch64")]
            {
                if dotprod() {
                    // SAFETY: the dot-product extension was detected at run time.
                    return unsafe { aarch64::dot_tile_dotprod(w, a) };
                }
                return aarch64::dot_tile_neon(w, a);
            }
            #[allow(unreachable_code)]
            std::array::from_fn(|r| std::array::from_fn(|c| Self::dot_scalar(w[r], a[c])))
        }
        fn dot(w: &[Self], a: &[Self::Act]) -> f32 {
            #[cfg(target_arch = "x86_64")]
            if avx2() {
                // SAFETY: AVX2, FMA and F16C were detected at run time.
                return unsafe { x86::dot_row(w, a) };
            }
            #[cfg(target_arch = "aarch64")]
            {
                if dotprod() {
                    // SAFETY: the dot-product extension was detected at run time.
                    return unsafe { aarch64::dot_tile_dotprod([w], [a])[0][0] };
                }
                return aarch64::dot_tile_neon([w], [a])[0][0];
            }
            #[allow(unreachable_code)]
            Self::dot_scalar(w, a)
        }
    };
}

/// A weight block type: how many elements it holds, the activation blocks its dot product
/// takes, and its dequantization (embedding rows, tests).
pub trait WeightBlock: Copy + Send + Sync + 'static {
    /// Elements per block.
    const ELEMS: usize;
    type Act: Copy + Send + Sync + Default;
    /// Activations in this weight type's partner format, into a reused buffer.
    fn quantize_act_into(x: &[f32], out: &mut Vec<Self::Act>);
    /// Activations in this weight type's partner format.
    fn quantize_act(x: &[f32]) -> Vec<Self::Act> {
        let mut v = Vec::new();
        Self::quantize_act_into(x, &mut v);
        v
    }
    /// Σ over the blocks, the portable path.
    fn dot_scalar(w: &[Self], a: &[Self::Act]) -> f32;
    /// Σ over the blocks for every pair of R weight rows and C activation rows, the fastest
    /// path this CPU has (see x86.rs).
    fn dot_tile<const R: usize, const C: usize>(
        w: [&[Self]; R],
        a: [&[Self::Act]; C],
    ) -> [[f32; C]; R];
    /// Σ over the blocks of one row.
    fn dot(w: &[Self], a: &[Self::Act]) -> f32 {
        Self::dot_tile([w], [a])[0][0]
    }
    /// The block's `ELEMS` floats, appended to `out`.
    fn dequantize(&self, out: &mut Vec<f32>);
}

/// Σ x·y over equal-length signed byte slices.
fn idot(x: impl IntoIterator<Item = i32>, y: &[i8]) -> i32 {
    x.into_iter().zip(y).map(|(a, &b)| a * i32::from(b)).sum()
}

/// Element j (0..32) of a block's 16 nibble bytes: low nibbles are elements 0..16, high
/// nibbles 16..32 (ggml's order).
fn nibble(qs: &[u8; QK / 2], j: usize) -> i32 {
    let b = qs[j % 16];
    i32::from(if j < 16 { b & 0x0f } else { b >> 4 })
}

/// The 32-element types, whose element values are d·q + m: q from `values`, m zero but for
/// Q4_1. The `block32!` impl of WeightBlock is written once from these.
trait Block32 {
    fn scale(&self) -> u16;
    fn offset(&self) -> f32 {
        0.0
    }
    fn values(&self) -> [i32; QK];
}

impl Block32 for BlockQ8_0 {
    fn scale(&self) -> u16 {
        self.d
    }
    fn values(&self) -> [i32; QK] {
        self.qs.map(i32::from)
    }
}

impl Block32 for BlockQ4_0 {
    fn scale(&self) -> u16 {
        self.d
    }
    fn values(&self) -> [i32; QK] {
        std::array::from_fn(|j| nibble(&self.qs, j) - 8)
    }
}

impl Block32 for BlockQ4_1 {
    fn scale(&self) -> u16 {
        self.d
    }
    fn offset(&self) -> f32 {
        h(self.m)
    }
    fn values(&self) -> [i32; QK] {
        std::array::from_fn(|j| nibble(&self.qs, j))
    }
}

impl Block32 for BlockQ5_0 {
    fn scale(&self) -> u16 {
        self.d
    }
    fn values(&self) -> [i32; QK] {
        let qh = u32::from_le_bytes(self.qh);
        std::array::from_fn(|j| (nibble(&self.qs, j) | (((qh >> j) & 1) << 4) as i32) - 16)
    }
}

/// WeightBlock for a `Block32` type: Q8_1 activations (whose sum `s` carries the offset m).
macro_rules! block32 {
    ($t:ty) => {
        impl WeightBlock for $t {
            const ELEMS: usize = QK;
            type Act = BlockQ8_1;
            fn quantize_act_into(x: &[f32], out: &mut Vec<BlockQ8_1>) {
                quantize_q8_1_into(x, out)
            }
            fn dot_scalar(w: &[Self], a: &[BlockQ8_1]) -> f32 {
                w.iter()
                    .zip(a)
                    .map(|(w, a)| {
                        h(w.scale()) * a.d * idot(w.values(), &a.qs) as f32 + w.offset() * a.s
                    })
                    .sum()
            }
            simd_dots!();
            fn dequantize(&self, out: &mut Vec<f32>) {
                let (d, m) = (h(self.scale()), self.offset());
                out.extend(self.values().map(|q| q as f32 * d + m));
            }
        }
    };
}

block32!(BlockQ8_0);
block32!(BlockQ4_0);
block32!(BlockQ4_1);
block32!(BlockQ5_0);

impl BlockQ4K {
    /// Element values 0..15 and, per 32-element sub-block, (scale, min).
    fn parts(&self) -> ([i32; QK_K], [(i32, i32); 8]) {
        let q = std::array::from_fn(|e| {
            let (chunk, k) = (e / 64, e % 64);
            let b = self.qs[chunk * 32 + k % 32];
            i32::from(if k < 32 { b & 0x0f } else { b >> 4 })
        });
        let sm = std::array::from_fn(|j| {
            let (s, m) = scale_min_k4(j, &self.scales);
            (i32::from(s), i32::from(m))
        });
        (q, sm)
    }
}

impl WeightBlock for BlockQ4K {
    const ELEMS: usize = QK_K;
    type Act = BlockQ8K;
    fn quantize_act_into(x: &[f32], out: &mut Vec<BlockQ8K>) {
        quantize_q8k_into(x, out)
    }
    fn dot_scalar(w: &[Self], a: &[BlockQ8K]) -> f32 {
        w.iter()
            .zip(a)
            .map(|(w, a)| {
                let (q, sm) = w.parts();
                let (mut sumi, mut mins) = (0i32, 0i32);
                for (j, &(s, m)) in sm.iter().enumerate() {
                    let r = j * 32..j * 32 + 32;
                    sumi += s * idot(q[r.clone()].iter().copied(), &a.qs[r]);
                    mins += m * (i32::from(a.bsums[2 * j]) + i32::from(a.bsums[2 * j + 1]));
                }
                a.d * (h(w.d) * sumi as f32 - h(w.dmin) * mins as f32)
            })
            .sum()
    }
    simd_dots!();
    fn dequantize(&self, out: &mut Vec<f32>) {
        let (q, sm) = self.parts();
        let (d, dmin) = (h(self.d), h(self.dmin));
        out.extend(q.iter().enumerate().map(|(e, &v)| {
            let (s, m) = sm[e / 32];
            d * s as f32 * v as f32 - dmin * m as f32
        }));
    }
}

impl BlockQ6K {
    /// Element values −32..31 (ggml's dequantize_row_q6_K order).
    fn values(&self) -> [i32; QK_K] {
        std::array::from_fn(|e| {
            let (half, k) = (e / 128, e % 128);
            let (quarter, l) = (k / 32, k % 32);
            let ql = self.ql[half * 64 + l + 32 * (quarter & 1)];
            let lo = if quarter < 2 { ql & 0x0f } else { ql >> 4 };
            let hi = (self.qh[half * 32 + l] >> (2 * quarter)) & 3;
            i32::from(lo | (hi << 4)) - 32
        })
    }
}

impl WeightBlock for BlockQ6K {
    const ELEMS: usize = QK_K;
    type Act = BlockQ8K;
    fn quantize_act_into(x: &[f32], out: &mut Vec<BlockQ8K>) {
        quantize_q8k_into(x, out)
    }
    fn dot_scalar(w: &[Self], a: &[BlockQ8K]) -> f32 {
        w.iter()
            .zip(a)
            .map(|(w, a)| {
                let q = w.values();
                let sumi: i32 = (0..16)
                    .map(|g| {
                        let r = g * 16..g * 16 + 16;
                        i32::from(w.scales[g]) * idot(q[r.clone()].iter().copied(), &a.qs[r])
                    })
                    .sum();
                h(w.d) * a.d * sumi as f32
            })
            .sum()
    }
    simd_dots!();
    fn dequantize(&self, out: &mut Vec<f32>) {
        let d = h(self.d);
        out.extend(
            self.values()
                .iter()
                .enumerate()
                .map(|(e, &v)| d * f32::from(self.scales[e / 16]) * v as f32),
        );
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2() -> bool {
    // std caches the CPUID answer; this is a load and a test.
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// `vpdpbusd` on 256-bit registers, for the repacked kernels (and repacked Q8_0): AVX-VNNI
/// (Alder Lake+, Zen 5) or AVX512-VNNI with AVX512VL (Ice Lake+, Sapphire Rapids, Zen 4).
#[cfg(target_arch = "x86_64")]
pub(crate) fn vnni() -> bool {
    avx2()
        && (avxvnni()
            || (is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl")))
}

/// AVX-VNNI's VEX encoding (else [`vnni`] means the EVEX one).
#[cfg(target_arch = "x86_64")]
pub(crate) fn avxvnni() -> bool {
    is_x86_feature_detected!("avxvnni")
}

/// The Arm dot-product extension (`sdot`, ARMv8.2+: Cortex-A55/A76 and later, Apple M1+); the
/// Cortex-A53 of the Pi 3 and low-end phones lacks it and takes the plain NEON path.
#[cfg(target_arch = "aarch64")]
pub fn dotprod() -> bool {
    // std caches the answer (HWCAP on Linux and Android, sysctl on macOS).
    std::arch::is_aarch64_feature_detected!("dotprod")
}

/// Whether repacked Q8_0 has its kernel here.
pub fn packs_q8_0() -> bool {
    #[cfg(target_arch = "x86_64")]
    return vnni();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether repacked Q4_0, Q4_1 and Q5_0 have SIMD kernels here (AVX2, NEON); elsewhere the
/// matrices stay in rows, which the scalar path reads faster than packed blocks.
pub fn packs_32() -> bool {
    #[cfg(target_arch = "x86_64")]
    return avx2();
    #[cfg(target_arch = "aarch64")]
    return true;
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    false
}

/// Whether repacked Q4_K has its kernel here (AVX2 only: on NEON Q4_K stays in rows).
pub fn packs_q4_k() -> bool {
    #[cfg(target_arch = "x86_64")]
    return avx2();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether this CPU has SIMD kernels here (odai's engine is only chosen where it does: its
/// scalar path is slower than candle's SIMD): AVX2 on x86-64, NEON (baseline) on aarch64.
pub fn has_simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    return avx2();
    #[cfg(target_arch = "aarch64")]
    return true;
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    false
}

/// The SIMD path the kernels take on this CPU.
pub fn simd_path() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if vnni() {
            return "avx2+vnni";
        }
        if avx2() {
            return "avx2";
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if dotprod() {
            return "neon+dotprod";
        }
        return "neon";
    }
    #[allow(unreachable_code)]
    "scalar"
}

/// An output buffer that a team's members write in disjoint ranges (rows of a matmul, heads
/// of attention) without each holding a `&mut` to the whole.
pub struct Disjoint<'a> {
    ptr: *mut f32,
    len: usize,
    _buf: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: a Disjoint only hands out ranges through `range`, whose contract is that no two
// threads hold overlapping ranges at once.
unsafe impl Send for Disjoint<'_> {}
unsafe impl Sync for Disjoint<'_> {}

impl<'a> Disjoint<'a> {
    pub fn new(buf: &'a mut [f32]) -> Disjoint<'a> {
        Disjoint {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            _buf: std::marker::PhantomData,
        }
    }

    /// The elements `r` of the buffer.
    ///
    /// # Safety
    /// No other live slice from this buffer may overlap `r` (each team member takes its own
    /// share).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn range(&self, r: std::ops::Range<usize>) -> &mut [f32] {
        assert!(
            r.start <= r.end && r.end <= self.len,
            "range outside the buffer"
        );
        // SAFETY: inside the buffer (checked); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r.start), r.end - r.start) }
    }
}

/// Output rows per unit of work: 16 f32 = one 64-byte cache line, so members never write the
/// same line.
const ROW_ALIGN: usize = 16;

/// The output rows member `id` of `size` computes in [`matmul_share`].
pub fn share_rows(rows: usize, id: usize, size: usize) -> std::ops::Range<usize> {
    super::team::share(rows, id, size, ROW_ALIGN)
}

/// Member `id` of `size`'s share of Y = X·Wᵀ for `m` activation rows: `w` is `rows` rows of
/// blocks, `x` the m rows already quantized (each `w.len() / rows` blocks), and `y[t·rows + r]`
/// gets row r's product with activation row t. Each member keeps one weight row hot while it
/// meets every activation row (the prefill case); m = 1 is decode's matvec.
///
/// # Safety
/// Every member of one round passes the same `size` and a different `id`, and nothing else
/// touches `y` meanwhile (the shares are then disjoint).
pub unsafe fn matmul_share<B: WeightBlock>(
    w: &[B],
    rows: usize,
    x: &[B::Act],
    m: usize,
    y: &Disjoint,
    id: usize,
    size: usize,
) {
    let per_row = w.len() / rows;
    assert_eq!(w.len(), rows * per_row, "weights are rows × blocks per row");
    assert_eq!(x.len(), m * per_row, "activations are m × blocks per row");
    let mine = share_rows(rows, id, size);
    if mine.is_empty() {
        return;
    }
    let row = |r: usize| &w[r * per_row..(r + 1) * per_row];
    let act = |t: usize| &x[t * per_row..(t + 1) * per_row];
    // SAFETY (every `y.range` below): this member's rows of one output row; shares are
    // disjoint by the contract.
    if m == 1 {
        // Decode: a row at a time, one sequential stream (measured twice as fast as four
        // interleaved rows: the hardware prefetcher follows it).
        let out = unsafe { y.range(mine.clone()) };
        for (o, r) in out.iter_mut().zip(mine) {
            *o = B::dot(row(r), act(0));
        }
        return;
    }
    // Prefill: tiles of 4 weight rows × 2 activation rows; the 4 rows stay in L1 while all m
    // activation rows pass.
    let mut r = mine.start;
    while r < mine.end {
        if mine.end - r < 4 {
            for t in 0..m {
                let out = unsafe { y.range(t * rows + r..t * rows + mine.end) };
                for (k, o) in out.iter_mut().enumerate() {
                    *o = B::dot(row(r + k), act(t));
                }
            }
            break;
        }
        let w4 = [row(r), row(r + 1), row(r + 2), row(r + 3)];
        let mut t = 0;
        while t < m {
            if m - t >= 2 {
                let v = B::dot_tile(w4, [act(t), act(t + 1)]);
                for (c, tc) in [t, t + 1].into_iter().enumerate() {
                    let out = unsafe { y.range(tc * rows + r..tc * rows + r + 4) };
                    for (o, vk) in out.iter_mut().zip(&v) {
                        *o = vk[c];
                    }
                }
                t += 2;
            } else {
                let v = B::dot_tile(w4, [act(t)]);
                let out = unsafe { y.range(t * rows + r..t * rows + r + 4) };
                for (k, o) in out.iter_mut().enumerate() {
                    *o = v[k][0];
                }
                t += 1;
            }
        }
        r += 4;
    }
}

/// Y = X·Wᵀ on a whole team (see [`matmul_share`]).
pub fn matmul<B: WeightBlock>(
    w: &[B],
    rows: usize,
    x: &[B::Act],
    m: usize,
    y: &mut [f32],
    team: &super::team::Team,
) {
    assert!(rows > 0 && m > 0);
    assert_eq!(y.len(), m * rows);
    let y = Disjoint::new(y);
    let size = team.size();
    // SAFETY: one round, each member its own id.
    team.run(&|id| unsafe { matmul_share(w, rows, x, m, &y, id, size) });
}

/// y = W·x, the decode case of [`matmul`].
pub fn matvec<B: WeightBlock>(
    w: &[B],
    rows: usize,
    x: &[B::Act],
    y: &mut [f32],
    team: &super::team::Team,
) {
    matmul(w, rows, x, 1, y, team)
}

#[cfg(test)]
mod tests {
    //! (Its generators and `close` serve packed.rs's tests too.)
    use super::*;
    use crate::rng::Rng;
    use crate::team::Team;

    pub(super) fn floats(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| (rng.below(2001) as f32 - 1000.0) / 250.0)
            .collect()
    }

    pub(super) fn scale(rng: &mut Rng) -> u16 {
        f16::from_f32(0.01 + rng.below(100) as f32 / 1000.0).to_bits()
    }

    pub(super) fn bytes<const N: usize>(rng: &mut Rng) -> [u8; N] {
        std::array::from_fn(|_| rng.below(256) as u8)
    }

    pub(super) fn q4_0(rng: &mut Rng, n: usize) -> Vec<BlockQ4_0> {
        (0..n)
            .map(|_| BlockQ4_0 {
                d: scale(rng),
                qs: bytes(rng),
            })
            .collect()
    }

    pub(super) fn q4_k(rng: &mut Rng, n: usize) -> Vec<BlockQ4K> {
        (0..n)
            .map(|_| BlockQ4K {
                d: scale(rng),
                dmin: scale(rng),
                scales: bytes(rng),
                qs: bytes(rng),
            })
            .collect()
    }

    /// Q4_1 blocks with `w4`'s scales and nibbles and random offsets.
    pub(super) fn q4_1_like(rng: &mut Rng, w4: &[BlockQ4_0]) -> Vec<BlockQ4_1> {
        w4.iter()
            .map(|b| BlockQ4_1 {
                d: b.d,
                m: scale(rng),
                qs: b.qs,
            })
            .collect()
    }

    /// Q5_0 blocks with `w4`'s scales and nibbles and random fifth bits.
    pub(super) fn q5_0_like(rng: &mut Rng, w4: &[BlockQ4_0]) -> Vec<BlockQ5_0> {
        w4.iter()
            .map(|b| BlockQ5_0 {
                d: b.d,
                qh: bytes(rng),
                qs: b.qs,
            })
            .collect()
    }

    /// Q8_0 blocks of random bytes, −128 included (quantize_q8_0 never writes it; synthetic
    /// files do).
    pub(super) fn q8_0_raw(rng: &mut Rng, n: usize) -> Vec<BlockQ8_0> {
        (0..n)
            .map(|_| BlockQ8_0 {
                d: scale(rng),
                qs: bytes::<32>(rng).map(|b| b as i8),
            })
            .collect()
    }

    pub(super) fn q6_k(rng: &mut Rng, n: usize) -> Vec<BlockQ6K> {
        (0..n)
            .map(|_| BlockQ6K {
                ql: bytes(rng),
                qh: bytes(rng),
                scales: bytes::<16>(rng).map(|b| b as i8),
                d: scale(rng),
            })
            .collect()
    }

    pub(super) fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-3 * (1.0 + a.abs().max(b.abs()))
    }

    /// The SIMD dot equals the scalar one, and both equal the float dot of the dequantized
    /// weights with the dequantized activations (so the scalar path is checked too).
    fn check<B: WeightBlock + std::fmt::Debug>(
        w: &[B],
        x: &[f32],
        deq_act: impl Fn(&B::Act) -> Vec<f32>,
    ) {
        let a = B::quantize_act(x);
        let (fast, slow) = (B::dot(w, &a), B::dot_scalar(w, &a));
        assert!(
            close(fast, slow),
            "{}: simd {fast} vs scalar {slow}",
            std::any::type_name::<B>()
        );
        let mut wf = Vec::new();
        for b in w {
            b.dequantize(&mut wf);
        }
        let af: Vec<f32> = a.iter().flat_map(&deq_act).collect();
        let exact: f32 = wf.iter().zip(&af).map(|(p, q)| p * q).sum();
        let mag: f32 = wf.iter().zip(&af).map(|(p, q)| (p * q).abs()).sum();
        assert!(
            (slow - exact).abs() <= 1e-4 * (1.0 + mag),
            "{}: scalar {slow} vs dequantized {exact}",
            std::any::type_name::<B>()
        );
    }

    fn q8(a: &BlockQ8_1) -> Vec<f32> {
        a.qs.iter().map(|&q| f32::from(q) * a.d).collect()
    }

    #[test]
    fn simd_dots_equal_the_scalar_and_dequantized_references() {
        let mut rng = Rng::new(7);
        for blocks in [1, 3, 18, 48] {
            let x = floats(&mut rng, blocks * QK);
            let w4 = q4_0(&mut rng, blocks);
            check(&w4, &x, |a: &BlockQ8_1| {
                a.qs.iter().map(|&q| f32::from(q) * a.d).collect()
            });
            check(&quantize_q8_0(&floats(&mut rng, blocks * QK)), &x, q8);
            check(&q8_0_raw(&mut rng, blocks), &x, q8);
            let w41 = q4_1_like(&mut rng, &w4);
            check(&w41, &x, |a: &BlockQ8_1| {
                a.qs.iter().map(|&q| f32::from(q) * a.d).collect()
            });
            let w5 = q5_0_like(&mut rng, &w4);
            check(&w5, &x, |a: &BlockQ8_1| {
                a.qs.iter().map(|&q| f32::from(q) * a.d).collect()
            });
        }
        let q8k = |a: &BlockQ8K| a.qs.iter().map(|&q| f32::from(q) * a.d).collect::<Vec<_>>();
        for supers in [1, 2, 6] {
            let x = floats(&mut rng, supers * QK_K);
            check(&q4_k(&mut rng, supers), &x, q8k);
            check(&q6_k(&mut rng, supers), &x, q8k);
        }
    }

    /// scripts/test.sh runs the suite on emulated Arm cores with and without dotprod, and says
    /// which path each must take: a path quietly not taken (a detection gone wrong, a scalar
    /// fallback) fails here rather than passing on the wrong kernels.
    #[test]
    fn the_simd_path_is_the_one_the_test_script_expects() {
        if let Ok(want) = std::env::var("ODAI_EXPECT_SIMD") {
            assert_eq!(simd_path(), want);
        }
    }

    #[test]
    fn nearest_rounds_half_to_even_like_ggml() {
        for (v, r) in [
            (0.5, 0.0),
            (1.5, 2.0),
            (-2.5, -2.0),
            (126.6, 127.0),
            (-0.49, 0.0),
        ] {
            assert_eq!(nearest(v), r, "{v}");
        }
    }

    #[test]
    fn q8k_block_sums_are_the_sums_of_their_bytes() {
        let mut rng = Rng::new(5);
        let a = &quantize_q8k_into_vec(&floats(&mut rng, QK_K))[0];
        for g in 0..16 {
            let s: i16 = a.qs[g * 16..g * 16 + 16]
                .iter()
                .map(|&q| i16::from(q))
                .sum();
            assert_eq!(a.bsums[g], s);
        }
    }

    fn quantize_q8k_into_vec(x: &[f32]) -> Vec<BlockQ8K> {
        let mut v = Vec::new();
        quantize_q8k_into(x, &mut v);
        v
    }

    /// The quantized dot product is the float dot product of the dequantized weights, up to the
    /// activations' 8-bit rounding.
    #[test]
    fn quantized_dots_track_the_float_dot() {
        let mut rng = Rng::new(11);
        let blocks = 24;
        let x = floats(&mut rng, blocks * QK);
        let w = q4_0(&mut rng, blocks);
        let mut deq = Vec::new();
        for b in &w {
            b.dequantize(&mut deq);
        }
        let exact: f32 = deq.iter().zip(&x).map(|(a, b)| a * b).sum();
        let got = BlockQ4_0::dot(&w, &quantize_q8_1(&x));
        let scale: f32 = deq.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum();
        assert!((got - exact).abs() < 0.01 * scale, "{got} vs {exact}");
    }

    #[test]
    fn matmul_splits_rows_across_threads_and_tiles_without_changing_them() {
        let mut rng = Rng::new(3);
        let (rows, blocks, m) = (70, 6, 5);
        let w = q4_0(&mut rng, rows * blocks);
        let x = quantize_q8_1(&floats(&mut rng, m * blocks * QK));
        let mut one = vec![0f32; rows * m];
        let mut three = vec![0f32; rows * m];
        matmul(&w, rows, &x, m, &mut one, &Team::new(1));
        matmul(&w, rows, &x, m, &mut three, &Team::new(3));
        assert_eq!(one, three);
        // Prefill tiles and the decode row kernel sum blocks in different orders: equal up to
        // float rounding.
        for t in 0..m {
            for r in 0..rows {
                let row = &w[r * blocks..(r + 1) * blocks];
                let dot = BlockQ4_0::dot(row, &x[t * blocks..(t + 1) * blocks]);
                assert!(close(one[t * rows + r], dot), "row {r} token {t}");
            }
        }
        let mut y = vec![0f32; rows];
        matvec(&w, rows, &x[..blocks], &mut y, &Team::new(2));
        assert!(y.iter().zip(&one[..rows]).all(|(a, b)| close(*a, *b)));
    }
}
