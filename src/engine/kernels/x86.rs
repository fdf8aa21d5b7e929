//! AVX2 kernels, after ggml's (ggml-cpu/arch/x86/quants.c): 32 products at a time with
//! `maddubs` (unsigned × signed bytes → 16-bit pairs), widened with `madd`, scaled and
//! accumulated in f32 with FMA. Callers check AVX2, FMA and F16C at run time.

use super::{
    BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8, BlockQ8_0, BlockQ8_1, BlockQ8K,
    QK,
};
use std::arch::x86_64::*;

/// An f16 scale to f32 with F16C (one instruction, not half's software path).
#[target_feature(enable = "avx2,fma,f16c")]
fn f16(bits: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2")]
fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

#[target_feature(enable = "avx2")]
fn load32i(p: &[i8]) -> __m256i {
    assert!(p.len() >= 32);
    // SAFETY: checked above: 32 readable bytes.
    unsafe { _mm256_loadu_si256(p.as_ptr().cast()) }
}

/// The 32 nibbles of a 32-element block as bytes, element order: low nibbles then high.
#[target_feature(enable = "avx2")]
fn nibbles(qs: &[u8; QK / 2]) -> __m256i {
    // SAFETY: 16 readable bytes.
    let b = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
    let mask = _mm_set1_epi8(0x0f);
    let lo = _mm_and_si128(b, mask);
    let hi = _mm_and_si128(_mm_srli_epi16(b, 4), mask);
    _mm256_set_m128i(hi, lo)
}

/// Σ x·y over 32 unsigned × signed bytes, as 8 i32 lanes.
#[target_feature(enable = "avx2")]
fn dot_u8i8(x: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1))
}

/// Σ x·y over 32 signed bytes each, as 8 i32 lanes converted to f32.
#[target_feature(enable = "avx2")]
fn dot_i8(x: __m256i, y: __m256i) -> __m256 {
    // maddubs needs an unsigned left side: |x|, with x's sign moved onto y.
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    _mm256_cvtepi32_ps(dot_u8i8(ax, sy))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q8_0(w: &[BlockQ8_0], a: &[BlockQ8]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (w, a) in w.iter().zip(a) {
        let d = _mm256_set1_ps(f16(w.d) * a.d);
        acc = _mm256_fmadd_ps(d, dot_i8(load32i(&w.qs), load32i(&a.qs)), acc);
    }
    hsum(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q4_0(w: &[BlockQ4_0], a: &[BlockQ8]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let eight = _mm256_set1_epi8(8);
    for (w, a) in w.iter().zip(a) {
        let x = _mm256_sub_epi8(nibbles(&w.qs), eight);
        let d = _mm256_set1_ps(f16(w.d) * a.d);
        acc = _mm256_fmadd_ps(d, dot_i8(x, load32i(&a.qs)), acc);
    }
    hsum(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q4_1(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut offset = 0f32;
    for (w, a) in w.iter().zip(a) {
        // Nibbles are 0..15: already the unsigned side maddubs wants.
        let sums = _mm256_cvtepi32_ps(dot_u8i8(nibbles(&w.qs), load32i(&a.qs)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(w.d) * a.d), sums, acc);
        offset += f16(w.m) * a.s;
    }
    hsum(acc) + offset
}

/// Q5_0's fifth bits as bytes: 0xff where bit j of `qh` is set (ggml's bytes_from_bits_32).
#[target_feature(enable = "avx2")]
fn bytes_from_bits(qh: [u8; 4]) -> __m256i {
    let x = i32::from_le_bytes(qh);
    let shuf = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x), shuf);
    // Each byte lane keeps all bits but its own: it is all ones only if its bit was set.
    let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe));
    _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q5_0(w: &[BlockQ5_0], a: &[BlockQ8]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let high = _mm256_set1_epi8(0xf0u8 as i8);
    for (w, a) in w.iter().zip(a) {
        // q − 16 = q | 0xf0 (as i8) when the fifth bit is clear, and q when it is set.
        let x = _mm256_or_si256(
            nibbles(&w.qs),
            _mm256_andnot_si256(bytes_from_bits(w.qh), high),
        );
        let d = _mm256_set1_ps(f16(w.d) * a.d);
        acc = _mm256_fmadd_ps(d, dot_i8(x, load32i(&a.qs)), acc);
    }
    hsum(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q4_k(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins_acc = 0f32;
    let mask = _mm256_set1_epi8(0x0f);
    for (w, a) in w.iter().zip(a) {
        let mut sumi = _mm256_setzero_si256();
        let mut mins = 0i32;
        for chunk in 0..4 {
            let (s1, m1) = super::scale_min_k4(2 * chunk, &w.scales);
            let (s2, m2) = super::scale_min_k4(2 * chunk + 1, &w.scales);
            // SAFETY: 32 readable bytes at offset 32·chunk of 128.
            let q = unsafe { _mm256_loadu_si256(w.qs.as_ptr().add(32 * chunk).cast()) };
            let lo = _mm256_and_si256(q, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask);
            let e = 64 * chunk;
            let plo = _mm256_maddubs_epi16(lo, load32i(&a.qs[e..]));
            let phi = _mm256_maddubs_epi16(hi, load32i(&a.qs[e + 32..]));
            sumi = _mm256_add_epi32(
                sumi,
                _mm256_madd_epi16(plo, _mm256_set1_epi16(i16::from(s1))),
            );
            sumi = _mm256_add_epi32(
                sumi,
                _mm256_madd_epi16(phi, _mm256_set1_epi16(i16::from(s2))),
            );
            let b = &a.bsums[4 * chunk..4 * chunk + 4];
            mins += i32::from(m1) * (i32::from(b[0]) + i32::from(b[1]))
                + i32::from(m2) * (i32::from(b[2]) + i32::from(b[3]));
        }
        let d = f16(w.d) * a.d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        mins_acc += f16(w.dmin) * a.d * mins as f32;
    }
    hsum(acc) - mins_acc
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q6_k(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0f32;
    let m4 = _mm256_set1_epi8(0x0f);
    let m2 = _mm256_set1_epi8(3);
    for (w, a) in w.iter().zip(a) {
        let mut sumi = _mm256_setzero_si256();
        for half in 0..2 {
            // SAFETY: 64 bytes of ql and 32 of qh at these offsets lie inside the block.
            let (ql0, ql1, qh) = unsafe {
                (
                    _mm256_loadu_si256(w.ql.as_ptr().add(64 * half).cast()),
                    _mm256_loadu_si256(w.ql.as_ptr().add(64 * half + 32).cast()),
                    _mm256_loadu_si256(w.qh.as_ptr().add(32 * half).cast()),
                )
            };
            let hbits = |shift: i32| -> __m256i {
                let s = match shift {
                    0 => qh,
                    2 => _mm256_srli_epi16(qh, 2),
                    4 => _mm256_srli_epi16(qh, 4),
                    _ => _mm256_srli_epi16(qh, 6),
                };
                _mm256_slli_epi16(_mm256_and_si256(s, m2), 4)
            };
            let q = [
                _mm256_or_si256(_mm256_and_si256(ql0, m4), hbits(0)),
                _mm256_or_si256(_mm256_and_si256(ql1, m4), hbits(2)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), hbits(4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), hbits(6)),
            ];
            for (k, q) in q.into_iter().enumerate() {
                let e = 128 * half + 32 * k;
                let g = e / 16;
                // Values 0..63 (the −32 comes back through the block sums below).
                let p = _mm256_maddubs_epi16(q, load32i(&a.qs[e..]));
                let sc = _mm256_set_m128i(
                    _mm_set1_epi16(i16::from(w.scales[g + 1])),
                    _mm_set1_epi16(i16::from(w.scales[g])),
                );
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sc));
            }
        }
        let offset: i32 = w
            .scales
            .iter()
            .zip(&a.bsums)
            .map(|(&s, &b)| i32::from(s) * i32::from(b))
            .sum();
        let total = hsum_i32(sumi) - 32 * offset;
        acc += f16(w.d) * a.d * total as f32;
    }
    acc
}
