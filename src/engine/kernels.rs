//! Quantized dot-product and matrix-vector kernels for odai's own CPU path (issue 7): weights in
//! ggml's block formats, activations quantized once per matmul to 8-bit blocks, integer SIMD dot
//! products (AVX2 on x86-64, chosen at run time; a scalar path everywhere else), and rows split
//! across threads. Each SIMD kernel is tested against the scalar one; `benches/kernels.rs`
//! measures them at decode (m = 1) and prefill shapes.
//!
//! Block layouts follow ggml (ggml-common.h): 32 weights per block; Q4_0 holds element j in the
//! low nibble of byte j and element j + 16 in its high nibble, value (q − 8)·d; Q4_1 the same
//! nibbles with value q·d + m; Q8_0 one signed byte per element, value q·d.

use half::f16;

pub const QK: usize = 32;

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
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; QK],
}

/// Activations for Q4_0 and Q8_0 weights: 32 signed bytes and an f32 scale (ggml keeps f16
/// here; f32 spares a conversion per block in the inner loop).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct BlockQ8 {
    pub d: f32,
    pub qs: [i8; QK],
}

/// Activations for Q4_1 weights: Q8 plus `s` = d·Σq, which carries the weights' offset `m`
/// through the dot product (ggml's block_q8_1, with f32 scales).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct BlockQ8_1 {
    pub d: f32,
    pub s: f32,
    pub qs: [i8; QK],
}

fn h(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// Quantizes one block of 32 floats to signed bytes: d = max|x| / 127 (round to nearest).
fn quantize_block(x: &[f32]) -> (f32, [i8; QK]) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; QK];
    for (q, v) in qs.iter_mut().zip(x) {
        *q = (v * inv).round() as i8;
    }
    (d, qs)
}

/// Activations to Q8 blocks (`x.len()` a multiple of 32).
pub fn quantize_q8(x: &[f32]) -> Vec<BlockQ8> {
    x.chunks_exact(QK)
        .map(|c| {
            let (d, qs) = quantize_block(c);
            BlockQ8 { d, qs }
        })
        .collect()
}

/// Floats to Q8_0 weight blocks (`x.len()` a multiple of 32).
pub fn quantize_q8_0(x: &[f32]) -> Vec<BlockQ8_0> {
    x.chunks_exact(QK)
        .map(|c| {
            let (d, qs) = quantize_block(c);
            BlockQ8_0 {
                d: f16::from_f32(d).to_bits(),
                qs,
            }
        })
        .collect()
}

/// Activations to Q8_1 blocks (`x.len()` a multiple of 32).
pub fn quantize_q8_1(x: &[f32]) -> Vec<BlockQ8_1> {
    x.chunks_exact(QK)
        .map(|c| {
            let (d, qs) = quantize_block(c);
            let sum: i32 = qs.iter().map(|&q| i32::from(q)).sum();
            BlockQ8_1 {
                d,
                s: d * sum as f32,
                qs,
            }
        })
        .collect()
}

/// A weight block type and the activation blocks its dot product takes.
pub trait WeightBlock: Copy + Send + Sync {
    type Act: Copy + Send + Sync;
    /// Activations in this weight type's partner format.
    fn quantize_act(x: &[f32]) -> Vec<Self::Act>;
    /// Σ over the blocks, the portable path.
    fn dot_scalar(w: &[Self], a: &[Self::Act]) -> f32;
    /// Σ over the blocks, the fastest path this CPU has.
    fn dot(w: &[Self], a: &[Self::Act]) -> f32;
}

impl WeightBlock for BlockQ8_0 {
    type Act = BlockQ8;
    fn quantize_act(x: &[f32]) -> Vec<BlockQ8> {
        quantize_q8(x)
    }
    fn dot_scalar(w: &[Self], a: &[BlockQ8]) -> f32 {
        w.iter()
            .zip(a)
            .map(|(w, a)| {
                let s: i32 =
                    w.qs.iter()
                        .zip(&a.qs)
                        .map(|(&x, &y)| i32::from(x) * i32::from(y))
                        .sum();
                h(w.d) * a.d * s as f32
            })
            .sum()
    }
    fn dot(w: &[Self], a: &[BlockQ8]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: AVX2, FMA and F16C were detected at run time.
            return unsafe { x86::dot_q8_0(w, a) };
        }
        Self::dot_scalar(w, a)
    }
}

impl WeightBlock for BlockQ4_0 {
    type Act = BlockQ8;
    fn quantize_act(x: &[f32]) -> Vec<BlockQ8> {
        quantize_q8(x)
    }
    fn dot_scalar(w: &[Self], a: &[BlockQ8]) -> f32 {
        w.iter()
            .zip(a)
            .map(|(w, a)| {
                let mut s = 0i32;
                for j in 0..QK / 2 {
                    let lo = i32::from(w.qs[j] & 0x0f) - 8;
                    let hi = i32::from(w.qs[j] >> 4) - 8;
                    s += lo * i32::from(a.qs[j]) + hi * i32::from(a.qs[j + QK / 2]);
                }
                h(w.d) * a.d * s as f32
            })
            .sum()
    }
    fn dot(w: &[Self], a: &[BlockQ8]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: AVX2, FMA and F16C were detected at run time.
            return unsafe { x86::dot_q4_0(w, a) };
        }
        Self::dot_scalar(w, a)
    }
}

impl WeightBlock for BlockQ4_1 {
    type Act = BlockQ8_1;
    fn quantize_act(x: &[f32]) -> Vec<BlockQ8_1> {
        quantize_q8_1(x)
    }
    fn dot_scalar(w: &[Self], a: &[BlockQ8_1]) -> f32 {
        w.iter()
            .zip(a)
            .map(|(w, a)| {
                let mut s = 0i32;
                for j in 0..QK / 2 {
                    s += i32::from(w.qs[j] & 0x0f) * i32::from(a.qs[j])
                        + i32::from(w.qs[j] >> 4) * i32::from(a.qs[j + QK / 2]);
                }
                h(w.d) * a.d * s as f32 + h(w.m) * a.s
            })
            .sum()
    }
    fn dot(w: &[Self], a: &[BlockQ8_1]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: AVX2, FMA and F16C were detected at run time.
            return unsafe { x86::dot_q4_1(w, a) };
        }
        Self::dot_scalar(w, a)
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    // std caches the CPUID answer; this is a load and a test.
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// y = W·x for a row-major matrix of `rows` rows of blocks, x already quantized; rows split
/// across `threads` (decode is one matrix-vector product per weight: rows are the parallelism).
pub fn matvec<B: WeightBlock>(w: &[B], rows: usize, x: &[B::Act], y: &mut [f32], threads: usize) {
    let per_row = x.len();
    assert_eq!(w.len(), rows * per_row, "weights are rows × blocks per row");
    assert_eq!(y.len(), rows);
    let threads = threads.clamp(1, rows.max(1));
    let row = |r: usize| B::dot(&w[r * per_row..(r + 1) * per_row], x);
    if threads == 1 {
        for (r, out) in y.iter_mut().enumerate() {
            *out = row(r);
        }
        return;
    }
    // rayon's pool is already running (candle uses it): no thread is started per call, which
    // at decode sizes (tens of microseconds) would cost as much as the work.
    use rayon::prelude::*;
    let chunk = rows.div_ceil(threads);
    y.par_chunks_mut(chunk).enumerate().for_each(|(i, ys)| {
        for (k, out) in ys.iter_mut().enumerate() {
            *out = row(i * chunk + k);
        }
    });
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX2 kernels, after ggml's (ggml-cpu/arch/x86/quants.c): 32 products per block with
    //! `maddubs` (unsigned × signed bytes → 16-bit pairs), widened with `madd`, scaled and
    //! accumulated in f32 with FMA.
    use super::{BlockQ4_0, BlockQ4_1, BlockQ8, BlockQ8_0, BlockQ8_1, QK};
    use std::arch::x86_64::*;

    /// An f16 scale to f32 with F16C (one instruction, not half's software path).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn f16(bits: u16) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// The 32 nibbles of a Q4 block as bytes, element order: low nibbles then high nibbles.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn nibbles(qs: &[u8; QK / 2]) -> __m256i {
        // SAFETY: 16 readable bytes.
        let b = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
        let mask = _mm_set1_epi8(0x0f);
        let lo = _mm_and_si128(b, mask);
        let hi = _mm_and_si128(_mm_srli_epi16(b, 4), mask);
        _mm256_set_m128i(hi, lo)
    }

    /// Σ x·y over 32 signed bytes each, as 8 i32 lanes converted to f32.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_i8(x: __m256i, y: __m256i) -> __m256 {
        // maddubs needs an unsigned left side: |x|, with x's sign moved onto y.
        let ax = _mm256_sign_epi8(x, x);
        let sy = _mm256_sign_epi8(y, x);
        let pairs = _mm256_maddubs_epi16(ax, sy);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8_0(w: &[BlockQ8_0], a: &[BlockQ8]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (w, a) in w.iter().zip(a) {
            // SAFETY: 32 readable bytes in each block.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_si256(w.qs.as_ptr().cast()),
                    _mm256_loadu_si256(a.qs.as_ptr().cast()),
                )
            };
            let d = _mm256_set1_ps(f16(w.d) * a.d);
            acc = _mm256_fmadd_ps(d, unsafe { dot_i8(x, y) }, acc);
        }
        unsafe { hsum(acc) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_0(w: &[BlockQ4_0], a: &[BlockQ8]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let eight = _mm256_set1_epi8(8);
        for (w, a) in w.iter().zip(a) {
            let x = _mm256_sub_epi8(unsafe { nibbles(&w.qs) }, eight);
            // SAFETY: 32 readable bytes.
            let y = unsafe { _mm256_loadu_si256(a.qs.as_ptr().cast()) };
            let d = _mm256_set1_ps(f16(w.d) * a.d);
            acc = _mm256_fmadd_ps(d, unsafe { dot_i8(x, y) }, acc);
        }
        unsafe { hsum(acc) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_1(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut offset = 0f32;
        for (w, a) in w.iter().zip(a) {
            // Nibbles are 0..15: already the unsigned side maddubs wants.
            let x = unsafe { nibbles(&w.qs) };
            // SAFETY: 32 readable bytes.
            let y = unsafe { _mm256_loadu_si256(a.qs.as_ptr().cast()) };
            let pairs = _mm256_maddubs_epi16(x, y);
            let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(w.d) * a.d), sums, acc);
            offset += f16(w.m) * a.s;
        }
        (unsafe { hsum(acc) }) + offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn floats(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| (rng.below(2001) as f32 - 1000.0) / 250.0)
            .collect()
    }

    fn q4_0(rng: &mut Rng, n: usize) -> Vec<BlockQ4_0> {
        (0..n)
            .map(|_| BlockQ4_0 {
                d: f16::from_f32(0.01 + rng.below(100) as f32 / 1000.0).to_bits(),
                qs: std::array::from_fn(|_| rng.below(256) as u8),
            })
            .collect()
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-3 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn simd_dots_equal_the_scalar_reference() {
        let mut rng = Rng::new(7);
        for blocks in [1, 3, 18, 48] {
            let x = floats(&mut rng, blocks * QK);
            let w4 = q4_0(&mut rng, blocks);
            let a8 = quantize_q8(&x);
            assert!(close(
                BlockQ4_0::dot(&w4, &a8),
                BlockQ4_0::dot_scalar(&w4, &a8)
            ));
            let w8: Vec<BlockQ8_0> = quantize_q8_0(&floats(&mut rng, blocks * QK));
            assert!(close(
                BlockQ8_0::dot(&w8, &a8),
                BlockQ8_0::dot_scalar(&w8, &a8)
            ));
            let w41: Vec<BlockQ4_1> = w4
                .iter()
                .map(|b| BlockQ4_1 {
                    d: b.d,
                    m: f16::from_f32(-0.05).to_bits(),
                    qs: b.qs,
                })
                .collect();
            let a81 = quantize_q8_1(&x);
            assert!(close(
                BlockQ4_1::dot(&w41, &a81),
                BlockQ4_1::dot_scalar(&w41, &a81)
            ));
        }
    }

    /// The quantized dot product is the float dot product of the dequantized weights, up to the
    /// activations' 8-bit rounding.
    #[test]
    fn quantized_dots_track_the_float_dot() {
        let mut rng = Rng::new(11);
        let blocks = 24;
        let x = floats(&mut rng, blocks * QK);
        let w = q4_0(&mut rng, blocks);
        let deq: Vec<f32> = w
            .iter()
            .flat_map(|b| {
                let d = h(b.d);
                let lo = b.qs.map(|q| (f32::from(q & 0x0f) - 8.0) * d);
                let hi = b.qs.map(|q| (f32::from(q >> 4) - 8.0) * d);
                lo.into_iter().chain(hi)
            })
            .collect();
        let exact: f32 = deq.iter().zip(&x).map(|(a, b)| a * b).sum();
        let got = BlockQ4_0::dot(&w, &quantize_q8(&x));
        let scale: f32 = deq.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum();
        assert!((got - exact).abs() < 0.01 * scale, "{got} vs {exact}");
    }

    #[test]
    fn matvec_splits_rows_across_threads_without_changing_them() {
        let mut rng = Rng::new(3);
        let (rows, blocks) = (37, 6);
        let w = q4_0(&mut rng, rows * blocks);
        let x = quantize_q8(&floats(&mut rng, blocks * QK));
        let mut one = vec![0f32; rows];
        let mut three = vec![0f32; rows];
        matvec(&w, rows, &x, &mut one, 1);
        matvec(&w, rows, &x, &mut three, 3);
        assert_eq!(one, three);
        assert_eq!(one[5], BlockQ4_0::dot(&w[5 * blocks..6 * blocks], &x));
    }
}
