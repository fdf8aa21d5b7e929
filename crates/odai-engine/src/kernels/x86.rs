//! AVX2 kernels, after ggml's (ggml-cpu/arch/x86/quants.c): 32 products at a time with
//! `maddubs` (unsigned × signed bytes → 16-bit pairs), widened with `madd`, scaled and
//! accumulated in f32 with FMA. Callers check AVX2, FMA and F16C at run time.
//!
//! Each block type supplies one `Tile` (a weight block unpacked once, then its product with an
//! activation block); `dot_tile` runs it over R weight rows × C activation rows at once. For
//! prefill that unpacks each weight block once for C tokens and keeps R·C independent
//! accumulator chains in flight (one chain is bound by its latency: perf showed about 8 cycles a
//! block); decode uses R = C = 1, a single stream the prefetcher follows best.
//!
//! The helpers are `#[inline(always)]` without target features of their own: they are compiled
//! inside the `#[target_feature]` entry points that inline them, the pattern the memchr crate
//! uses for its generic SIMD code.

use super::{
    BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8_0, BlockQ8_1, BlockQ8K, QK,
    WeightBlock,
};
use std::arch::x86_64::*;

/// An f16 scale to f32 with F16C (one instruction, not half's software path).
#[inline(always)]
unsafe fn f16(bits: u16) -> f32 {
    unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits)))) }
}

#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    unsafe {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

#[inline(always)]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    unsafe {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }
}

/// 32 bytes from `p`, which must hold at least 32.
#[inline(always)]
unsafe fn load32(p: &[i8]) -> __m256i {
    debug_assert!(p.len() >= 32);
    unsafe { _mm256_loadu_si256(p.as_ptr().cast()) }
}

/// The 32 nibbles of a 32-element block as bytes, element order: low nibbles then high.
#[inline(always)]
unsafe fn nibbles(qs: &[u8; QK / 2]) -> __m256i {
    unsafe {
        let b = _mm_loadu_si128(qs.as_ptr().cast());
        let mask = _mm_set1_epi8(0x0f);
        let lo = _mm_and_si128(b, mask);
        let hi = _mm_and_si128(_mm_srli_epi16(b, 4), mask);
        _mm256_set_m128i(hi, lo)
    }
}

/// Σ x·y over 32 unsigned × signed bytes, as 8 i32 lanes.
#[inline(always)]
unsafe fn dot_u8i8(x: __m256i, y: __m256i) -> __m256i {
    unsafe { _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1)) }
}

/// `vpdpbusd` (unsigned × signed bytes, four pairs summed into each i32 lane): the VEX form
/// (AVX-VNNI: Alder Lake+, Zen 5) when `V` is 1, the EVEX form on the same 256-bit registers
/// (AVX512-VNNI with AVX512VL: Ice Lake+, Sapphire Rapids, Zen 4) when `V` is 2. The caller's
/// target features must match.
#[inline(always)]
unsafe fn dpbusd<const V: u8>(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    unsafe {
        if V == 2 {
            _mm256_dpbusd_epi32(acc, a, b)
        } else {
            _mm256_dpbusd_avx_epi32(acc, a, b)
        }
    }
}

/// A block type's SIMD dot product in two halves, so that a tile of R weight rows × C
/// activation rows does the weight half once per weight block and the pair half R·C times.
pub trait Tile: WeightBlock {
    /// A weight block made ready to meet activations (unpacked bytes, f32 scales).
    type Prep: Copy;
    /// # Safety
    /// The CPU has AVX2, FMA and F16C.
    unsafe fn prep(w: &Self) -> Self::Prep;
    /// Adds the prepared block's product with `a` into the vector accumulator, or (terms that
    /// are one scalar per block, like Q4_1's offset) into `extra`.
    ///
    /// # Safety
    /// As `prep`.
    unsafe fn apply(p: &Self::Prep, a: &Self::Act, acc: &mut __m256, extra: &mut f32);
}

/// Σ over the blocks for every pair of R weight rows and C activation rows: R·C independent
/// accumulators (`C = 1` is the matrix-vector case).
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_tile<B: Tile, const R: usize, const C: usize>(
    w: [&[B]; R],
    a: [&[B::Act]; C],
) -> [[f32; C]; R] {
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let mut extra = [[0f32; C]; R];
    let n = a.first().map_or(0, |a| a.len());
    assert!(
        w.iter().all(|w| w.len() >= n),
        "a weight row is shorter than the activations"
    );
    assert!(
        a.iter().all(|a| a.len() >= n),
        "activation rows differ in length"
    );
    for b in 0..n {
        for r in 0..R {
            // SAFETY: this function's target features; b < n ≤ every row's length.
            unsafe {
                let p = B::prep(w[r].get_unchecked(b));
                for c in 0..C {
                    B::apply(&p, a[c].get_unchecked(b), &mut acc[r][c], &mut extra[r][c]);
                }
            }
        }
    }
    // SAFETY: this function's target features.
    std::array::from_fn(|r| std::array::from_fn(|c| unsafe { hsum(acc[r][c]) } + extra[r][c]))
}

/// One weight row against one activation row (decode), blocks taken four at a time into four
/// accumulators: a single chain is bound by its FMA and scalar-add latency, not by the work.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_row<B: Tile>(w: &[B], a: &[B::Act]) -> f32 {
    const U: usize = 4;
    assert!(
        w.len() >= a.len(),
        "the weight row is shorter than the activations"
    );
    let mut acc = [_mm256_setzero_ps(); U];
    let mut extra = [0f32; U];
    let whole = a.len() / U * U;
    for b in (0..whole).step_by(U) {
        for u in 0..U {
            // SAFETY: this function's target features; b + u < whole ≤ both lengths.
            unsafe {
                let p = B::prep(w.get_unchecked(b + u));
                B::apply(&p, a.get_unchecked(b + u), &mut acc[u], &mut extra[u]);
            }
        }
    }
    for b in whole..a.len() {
        // SAFETY: as above, b < a.len() ≤ w.len().
        unsafe {
            let p = B::prep(w.get_unchecked(b));
            B::apply(&p, a.get_unchecked(b), &mut acc[0], &mut extra[0]);
        }
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    // SAFETY: this function's target features.
    (unsafe { hsum(v) }) + (extra[0] + extra[1]) + (extra[2] + extra[3])
}

impl Tile for BlockQ8_0 {
    /// |q|, q (whose signs move onto the activations), d.
    type Prep = (__m256i, __m256i, f32);
    #[inline(always)]
    unsafe fn prep(w: &Self) -> Self::Prep {
        unsafe {
            let x = load32(&w.qs);
            (_mm256_sign_epi8(x, x), x, f16(w.d))
        }
    }
    #[inline(always)]
    unsafe fn apply(p: &Self::Prep, a: &BlockQ8_1, acc: &mut __m256, _: &mut f32) {
        unsafe {
            let sy = _mm256_sign_epi8(load32(&a.qs), p.1);
            let sums = _mm256_cvtepi32_ps(dot_u8i8(p.0, sy));
            *acc = _mm256_fmadd_ps(_mm256_set1_ps(p.2 * a.d), sums, *acc);
        }
    }
}

impl Tile for BlockQ4_0 {
    /// The nibbles as unsigned bytes (0..15) and d; the −8 comes back through the
    /// activations' sums.
    type Prep = (__m256i, f32);
    #[inline(always)]
    unsafe fn prep(w: &Self) -> Self::Prep {
        unsafe { (nibbles(&w.qs), f16(w.d)) }
    }
    #[inline(always)]
    unsafe fn apply(p: &Self::Prep, a: &BlockQ8_1, acc: &mut __m256, extra: &mut f32) {
        unsafe {
            let sums = _mm256_cvtepi32_ps(dot_u8i8(p.0, load32(&a.qs)));
            *acc = _mm256_fmadd_ps(_mm256_set1_ps(p.1 * a.d), sums, *acc);
            *extra -= 8.0 * p.1 * a.s;
        }
    }
}

impl Tile for BlockQ4_1 {
    /// The nibbles (0..15), d and m.
    type Prep = (__m256i, f32, f32);
    #[inline(always)]
    unsafe fn prep(w: &Self) -> Self::Prep {
        unsafe { (nibbles(&w.qs), f16(w.d), f16(w.m)) }
    }
    #[inline(always)]
    unsafe fn apply(p: &Self::Prep, a: &BlockQ8_1, acc: &mut __m256, extra: &mut f32) {
        unsafe {
            let sums = _mm256_cvtepi32_ps(dot_u8i8(p.0, load32(&a.qs)));
            *acc = _mm256_fmadd_ps(_mm256_set1_ps(p.1 * a.d), sums, *acc);
            *extra += p.2 * a.s;
        }
    }
}

/// Q5_0's fifth bits as bytes: 0xff where bit j of `qh` is set (ggml's bytes_from_bits_32).
#[inline(always)]
unsafe fn bytes_from_bits(qh: [u8; 4]) -> __m256i {
    unsafe {
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
}

impl Tile for BlockQ5_0 {
    /// The five-bit values as unsigned bytes (0..31) and d; the −16 comes back through the
    /// activations' sums.
    type Prep = (__m256i, f32);
    #[inline(always)]
    unsafe fn prep(w: &Self) -> Self::Prep {
        unsafe {
            let fifth = _mm256_and_si256(bytes_from_bits(w.qh), _mm256_set1_epi8(0x10));
            (_mm256_or_si256(nibbles(&w.qs), fifth), f16(w.d))
        }
    }
    #[inline(always)]
    unsafe fn apply(p: &Self::Prep, a: &BlockQ8_1, acc: &mut __m256, extra: &mut f32) {
        unsafe {
            let sums = _mm256_cvtepi32_ps(dot_u8i8(p.0, load32(&a.qs)));
            *acc = _mm256_fmadd_ps(_mm256_set1_ps(p.1 * a.d), sums, *acc);
            *extra -= 16.0 * p.1 * a.s;
        }
    }
}

/// K-quant super-blocks are unpacked inside `apply`: a 256-element block's bytes do not fit the
/// registers a tile would need to keep them.
impl Tile for BlockQ4K {
    type Prep = *const BlockQ4K;
    #[inline(always)]
    unsafe fn prep(w: &Self) -> Self::Prep {
        w
    }
    #[inline(always)]
    unsafe fn apply(w: &Self::Prep, a: &BlockQ8K, acc: &mut __m256, extra: &mut f32) {
        unsafe {
            let w = &**w;
            let mask = _mm256_set1_epi8(0x0f);
            let mut sumi = _mm256_setzero_si256();
            let mut mins = 0i32;
            for chunk in 0..4 {
                let (s1, m1) = super::scale_min_k4(2 * chunk, &w.scales);
                let (s2, m2) = super::scale_min_k4(2 * chunk + 1, &w.scales);
                let q = _mm256_loadu_si256(w.qs.as_ptr().add(32 * chunk).cast());
                let lo = _mm256_and_si256(q, mask);
                let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask);
                let e = 64 * chunk;
                let plo = _mm256_maddubs_epi16(lo, load32(&a.qs[e..]));
                let phi = _mm256_maddubs_epi16(hi, load32(&a.qs[e + 32..]));
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
            *acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), *acc);
            *extra -= f16(w.dmin) * a.d * mins as f32;
        }
    }
}

impl Tile for BlockQ6K {
    type Prep = *const BlockQ6K;
    #[inline(always)]
    unsafe fn prep(w: &Self) -> Self::Prep {
        w
    }
    #[inline(always)]
    unsafe fn apply(w: &Self::Prep, a: &BlockQ8K, _: &mut __m256, extra: &mut f32) {
        unsafe {
            let w = &**w;
            let m4 = _mm256_set1_epi8(0x0f);
            let m2 = _mm256_set1_epi8(3);
            let mut sumi = _mm256_setzero_si256();
            for half in 0..2 {
                let ql0 = _mm256_loadu_si256(w.ql.as_ptr().add(64 * half).cast());
                let ql1 = _mm256_loadu_si256(w.ql.as_ptr().add(64 * half + 32).cast());
                let qh = _mm256_loadu_si256(w.qh.as_ptr().add(32 * half).cast());
                let hb = |s: __m256i| _mm256_slli_epi16(_mm256_and_si256(s, m2), 4);
                let q = [
                    _mm256_or_si256(_mm256_and_si256(ql0, m4), hb(qh)),
                    _mm256_or_si256(_mm256_and_si256(ql1, m4), hb(_mm256_srli_epi16(qh, 2))),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                        hb(_mm256_srli_epi16(qh, 4)),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                        hb(_mm256_srli_epi16(qh, 6)),
                    ),
                ];
                for (k, q) in q.into_iter().enumerate() {
                    let e = 128 * half + 32 * k;
                    let g = e / 16;
                    // Values 0..63 (the −32 comes back through the block sums below).
                    let p = _mm256_maddubs_epi16(q, load32(&a.qs[e..]));
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
            *extra += f16(w.d) * a.d * total as f32;
        }
    }
}

/// Blocks per row of a packed kernel's operands: the activations' length, which every weight
/// and activation row must reach.
fn group_len<W, A>(w: &[W], a: &[&[A]]) -> usize {
    let n = a.first().map_or(0, |a| a.len());
    assert!(
        w.len() >= n && a.iter().all(|a| a.len() >= n),
        "rows of unequal length"
    );
    n
}

/// C accumulators of eight row lanes, stored.
#[inline(always)]
unsafe fn lanes<const C: usize>(acc: [__m256; C]) -> [[f32; 8]; C] {
    std::array::from_fn(|c| {
        let mut out = [0f32; 8];
        // SAFETY: 8 writable floats; the caller has AVX.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), acc[c]) };
        out
    })
}

/// A repacked eight-row type (kernels/packed.rs) as the AVX2 kernel sees it.
pub trait X8: super::packed::Packed8 {
    /// `maddubs` outputs summed in i16 before widening: each is at most 2 · qmax · 127, so 8
    /// for 4-bit values (30480) and 4 for 5-bit ones (31496).
    const GROUP: usize;
    /// The eight vectors of unsigned values: v[k] elements 4k..4k+4 of all rows, v[4 + k]
    /// elements 16+4k..16+4k+4.
    unsafe fn unpack(&self, v: &mut [__m256i; 8]);
    /// The eight rows' scale and (Q4_1) offset.
    unsafe fn scales(&self) -> (__m256, __m256);
    /// Adds the eight rows' block products, `sums` = Σ q·y per row, into `acc`.
    unsafe fn fold(dw: __m256, aux: __m256, sums: __m256, a: &BlockQ8_1, acc: &mut __m256);
}

#[inline(always)]
unsafe fn unpack_nibbles(qs: &[u8; 128], v: &mut [__m256i; 8]) {
    unsafe {
        let mask = _mm256_set1_epi8(0x0f);
        for k in 0..4 {
            let raw = _mm256_loadu_si256(qs.as_ptr().add(32 * k).cast());
            v[k] = _mm256_and_si256(raw, mask);
            v[4 + k] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
        }
    }
}

#[inline(always)]
unsafe fn cvt8(h: &[u16; 8]) -> __m256 {
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(h.as_ptr().cast())) }
}

impl X8 for super::packed::BlockQ4_0x8 {
    const GROUP: usize = 8;
    #[inline(always)]
    unsafe fn unpack(&self, v: &mut [__m256i; 8]) {
        unsafe { unpack_nibbles(&self.qs, v) }
    }
    #[inline(always)]
    unsafe fn scales(&self) -> (__m256, __m256) {
        unsafe { (cvt8(&self.d), _mm256_setzero_ps()) }
    }
    #[inline(always)]
    unsafe fn fold(dw: __m256, _: __m256, sums: __m256, a: &BlockQ8_1, acc: &mut __m256) {
        // d_w · (d_a · Σ q·y − 8 · s_a), s_a = d_a · Σ y: values are q − 8.
        unsafe {
            let inner = _mm256_fmsub_ps(_mm256_set1_ps(a.d), sums, _mm256_set1_ps(8.0 * a.s));
            *acc = _mm256_fmadd_ps(dw, inner, *acc);
        }
    }
}

impl X8 for super::packed::BlockQ4_1x8 {
    const GROUP: usize = 8;
    #[inline(always)]
    unsafe fn unpack(&self, v: &mut [__m256i; 8]) {
        unsafe { unpack_nibbles(&self.qs, v) }
    }
    #[inline(always)]
    unsafe fn scales(&self) -> (__m256, __m256) {
        unsafe { (cvt8(&self.d), cvt8(&self.m)) }
    }
    #[inline(always)]
    unsafe fn fold(dw: __m256, mw: __m256, sums: __m256, a: &BlockQ8_1, acc: &mut __m256) {
        // d_w · d_a · Σ q·y + m_w · s_a: values are d·q + m.
        unsafe {
            let t = _mm256_fmadd_ps(dw, _mm256_mul_ps(_mm256_set1_ps(a.d), sums), *acc);
            *acc = _mm256_fmadd_ps(mw, _mm256_set1_ps(a.s), t);
        }
    }
}

impl X8 for super::packed::BlockQ5_0x8 {
    const GROUP: usize = 4;
    #[inline(always)]
    unsafe fn unpack(&self, v: &mut [__m256i; 8]) {
        unsafe {
            unpack_nibbles(&self.qs, v);
            let qh = _mm256_loadu_si256(self.qh.as_ptr().cast());
            let bit4 = _mm256_set1_epi8(0x10);
            for k in 0..4 {
                // Bit 2k of each byte (low element's fifth bit) and bit 2k + 1 (high's) to bit 4.
                let t = match k {
                    0 => qh,
                    1 => _mm256_srli_epi16(qh, 2),
                    2 => _mm256_srli_epi16(qh, 4),
                    _ => _mm256_srli_epi16(qh, 6),
                };
                let lo = _mm256_and_si256(_mm256_slli_epi16(t, 4), bit4);
                let hi = _mm256_and_si256(_mm256_slli_epi16(t, 3), bit4);
                v[k] = _mm256_or_si256(v[k], lo);
                v[4 + k] = _mm256_or_si256(v[4 + k], hi);
            }
        }
    }
    #[inline(always)]
    unsafe fn scales(&self) -> (__m256, __m256) {
        unsafe { (cvt8(&self.d), _mm256_setzero_ps()) }
    }
    #[inline(always)]
    unsafe fn fold(dw: __m256, _: __m256, sums: __m256, a: &BlockQ8_1, acc: &mut __m256) {
        // Values are q − 16.
        unsafe {
            let inner = _mm256_fmsub_ps(_mm256_set1_ps(a.d), sums, _mm256_set1_ps(16.0 * a.s));
            *acc = _mm256_fmadd_ps(dw, inner, *acc);
        }
    }
}

/// Eight repacked rows against C activation rows. Per block: the rows' values are unpacked once;
/// per activation row, eight 4-byte broadcasts meet them in `maddubs`, summed in i16 (see
/// `X8::GROUP`), widened, and scaled by the eight row scales at once.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_x8<P: X8, const C: usize>(w: &[P], a: [&[BlockQ8_1]; C]) -> [[f32; 8]; C] {
    // SAFETY: this function's target features.
    unsafe { x8::<P, C, 0>(w, a) }
}

/// [`dot_x8`] with AVX-VNNI: `vpdpbusd` multiplies and sums four byte pairs straight into i32
/// lanes, replacing each `maddubs` + i16 add (and the widening) — about a third fewer
/// instructions per block in prefill. Two accumulator chains hide its latency.
///
/// # Safety
/// `super::vnni()` is true.
pub unsafe fn dot_x8_vnni<P: X8, const C: usize>(w: &[P], a: [&[BlockQ8_1]; C]) -> [[f32; 8]; C] {
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    fn vex<P: X8, const C: usize>(w: &[P], a: [&[BlockQ8_1]; C]) -> [[f32; 8]; C] {
        // SAFETY: this function's target features.
        unsafe { x8::<P, C, 1>(w, a) }
    }
    #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
    fn evex<P: X8, const C: usize>(w: &[P], a: [&[BlockQ8_1]; C]) -> [[f32; 8]; C] {
        // SAFETY: this function's target features.
        unsafe { x8::<P, C, 2>(w, a) }
    }
    // SAFETY: vnni() said one of the two is here.
    unsafe {
        if super::avxvnni() {
            vex(w, a)
        } else {
            evex(w, a)
        }
    }
}

/// The body of all three: `V` picks the inner product (0 `maddubs`, else [`dpbusd`]; the caller
/// has the features it needs).
#[inline(always)]
unsafe fn x8<P: X8, const C: usize, const V: u8>(w: &[P], a: [&[BlockQ8_1]; C]) -> [[f32; 8]; C] {
    let n = group_len(w, &a);
    // SAFETY: the caller has AVX2 (and AVX-VNNI when VNNI).
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); C];
        for b in 0..n {
            // b < n ≤ every length; loads stay inside the blocks.
            let blk = w.get_unchecked(b);
            let mut v = [_mm256_setzero_si256(); 8];
            blk.unpack(&mut v);
            let (dw, aux) = blk.scales();
            for c in 0..C {
                let ab = a[c].get_unchecked(b);
                let y = ab.qs.as_ptr();
                // v[j] holds elements 4j.. (j < 4) or 16 + 4(j − 4).. of every row.
                let bcast = |j: usize| {
                    let at = if j < 4 { 4 * j } else { 16 + 4 * (j - 4) };
                    _mm256_set1_epi32(y.add(at).cast::<i32>().read_unaligned())
                };
                let sums = if V > 0 {
                    let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                    for k in 0..4 {
                        lo = dpbusd::<V>(lo, v[k], bcast(k));
                        hi = dpbusd::<V>(hi, v[4 + k], bcast(4 + k));
                    }
                    _mm256_add_epi32(lo, hi)
                } else {
                    let (mut s32, mut s16) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                    for (j, vj) in v.iter().enumerate() {
                        s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(*vj, bcast(j)));
                        if (j + 1) % P::GROUP == 0 {
                            s32 = _mm256_add_epi32(s32, _mm256_madd_epi16(s16, ones));
                            s16 = _mm256_setzero_si256();
                        }
                    }
                    s32
                };
                P::fold(dw, aux, _mm256_cvtepi32_ps(sums), ab, &mut acc[c]);
            }
        }
        lanes(acc)
    }
}

/// Eight repacked Q8_0 rows (offset-binary) against C activation rows with VNNI: per
/// activation row, eight `vpdpbusd` on two independent chains.
///
/// # Safety
/// `super::vnni()` is true.
pub unsafe fn dot_q8_0x8<const C: usize>(
    w: &[super::packed::BlockQ8_0x8],
    a: [&[BlockQ8_1]; C],
) -> [[f32; 8]; C] {
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    fn vex<const C: usize>(
        w: &[super::packed::BlockQ8_0x8],
        a: [&[BlockQ8_1]; C],
    ) -> [[f32; 8]; C] {
        // SAFETY: this function's target features.
        unsafe { q8_0x8::<C, 1>(w, a) }
    }
    #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
    fn evex<const C: usize>(
        w: &[super::packed::BlockQ8_0x8],
        a: [&[BlockQ8_1]; C],
    ) -> [[f32; 8]; C] {
        // SAFETY: this function's target features.
        unsafe { q8_0x8::<C, 2>(w, a) }
    }
    // SAFETY: vnni() said one of the two is here.
    unsafe {
        if super::avxvnni() {
            vex(w, a)
        } else {
            evex(w, a)
        }
    }
}

#[inline(always)]
unsafe fn q8_0x8<const C: usize, const V: u8>(
    w: &[super::packed::BlockQ8_0x8],
    a: [&[BlockQ8_1]; C],
) -> [[f32; 8]; C] {
    let n = group_len(w, &a);
    // SAFETY: the caller has AVX2.
    let mut acc = unsafe { [_mm256_setzero_ps(); C] };
    for b in 0..n {
        // SAFETY: b < n ≤ every length; loads stay inside the blocks.
        unsafe {
            let blk = w.get_unchecked(b);
            let v: [__m256i; 8] =
                std::array::from_fn(|k| _mm256_loadu_si256(blk.qs.as_ptr().add(32 * k).cast()));
            let dw = cvt8(&blk.d);
            for c in 0..C {
                let ab = a[c].get_unchecked(b);
                let y = ab.qs.as_ptr();
                let bcast =
                    |k: usize| _mm256_set1_epi32(y.add(4 * k).cast::<i32>().read_unaligned());
                let mut even = _mm256_setzero_si256();
                let mut odd = _mm256_setzero_si256();
                for k in (0..8).step_by(2) {
                    even = dpbusd::<V>(even, v[k], bcast(k));
                    odd = dpbusd::<V>(odd, v[k + 1], bcast(k + 1));
                }
                let sums = _mm256_cvtepi32_ps(_mm256_add_epi32(even, odd));
                // Values were stored as q + 128.
                let inner =
                    _mm256_fmsub_ps(_mm256_set1_ps(ab.d), sums, _mm256_set1_ps(128.0 * ab.s));
                acc[c] = _mm256_fmadd_ps(dw, inner, acc[c]);
            }
        }
    }
    // SAFETY: the caller has AVX2.
    unsafe { lanes(acc) }
}

/// Eight rows' 6-bit values of one sub-block as i16 pairs (v, v) per row lane, for `madd`.
#[inline(always)]
unsafe fn pairs8(v: &[u8; 8]) -> __m256i {
    unsafe {
        let x = _mm256_cvtepu8_epi32(_mm_loadl_epi64(v.as_ptr().cast()));
        _mm256_or_si256(x, _mm256_slli_epi32(x, 16))
    }
}

/// Eight repacked Q4_K rows against C activation rows (Q8_K). Per 32-byte chunk, the nibbles
/// are unpacked once; per activation row, eight broadcasts per sub-block meet them in `maddubs`
/// (i16 sums ≤ 30480), and one `madd` with the eight rows' scales widens and scales them. The
/// mins meet the activations' 32-element sums in four more `madd`s.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q4_kx8<const C: usize>(
    w: &[super::packed::BlockQ4Kx8],
    a: [&[BlockQ8K]; C],
) -> [[f32; 8]; C] {
    // SAFETY: this function's target features.
    unsafe { q4_kx8::<C, 0>(w, a) }
}

/// [`dot_q4_kx8`] with VNNI: per sub-block, eight `vpdpbusd` into i32 and one multiply by
/// the rows' scales replace the `maddubs`/i16-add chain.
///
/// # Safety
/// `super::vnni()` is true.
pub unsafe fn dot_q4_kx8_vnni<const C: usize>(
    w: &[super::packed::BlockQ4Kx8],
    a: [&[BlockQ8K]; C],
) -> [[f32; 8]; C] {
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    fn vex<const C: usize>(w: &[super::packed::BlockQ4Kx8], a: [&[BlockQ8K]; C]) -> [[f32; 8]; C] {
        // SAFETY: this function's target features.
        unsafe { q4_kx8::<C, 1>(w, a) }
    }
    #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
    fn evex<const C: usize>(w: &[super::packed::BlockQ4Kx8], a: [&[BlockQ8K]; C]) -> [[f32; 8]; C] {
        // SAFETY: this function's target features.
        unsafe { q4_kx8::<C, 2>(w, a) }
    }
    // SAFETY: vnni() said one of the two is here.
    unsafe {
        if super::avxvnni() {
            vex(w, a)
        } else {
            evex(w, a)
        }
    }
}

/// The body of both: `V` picks the inner product (the caller has the features it needs).
#[inline(always)]
unsafe fn q4_kx8<const C: usize, const V: u8>(
    w: &[super::packed::BlockQ4Kx8],
    a: [&[BlockQ8K]; C],
) -> [[f32; 8]; C] {
    let n = group_len(w, &a);
    // SAFETY: the caller has AVX2.
    let (mask, mut acc) = unsafe { (_mm256_set1_epi8(0x0f), [_mm256_setzero_ps(); C]) };
    for b in 0..n {
        // SAFETY: b < n ≤ every length; loads stay inside the blocks.
        unsafe {
            let blk = w.get_unchecked(b);
            let mut sumi = [_mm256_setzero_si256(); C];
            for ch in 0..4 {
                let raw: [__m256i; 8] = std::array::from_fn(|k| {
                    _mm256_loadu_si256(blk.qs.as_ptr().add(256 * ch + 32 * k).cast())
                });
                let lo = raw.map(|r| _mm256_and_si256(r, mask));
                let hi = raw.map(|r| _mm256_and_si256(_mm256_srli_epi16(r, 4), mask));
                let (s_lo, s_hi) = (pairs8(&blk.sc[2 * ch]), pairs8(&blk.sc[2 * ch + 1]));
                for c in 0..C {
                    let y = a[c].get_unchecked(b).qs.as_ptr().add(64 * ch);
                    let bcast =
                        |at: usize| _mm256_set1_epi32(y.add(at).cast::<i32>().read_unaligned());
                    if V > 0 {
                        let mut p = _mm256_setzero_si256();
                        let mut q = _mm256_setzero_si256();
                        for k in 0..8 {
                            p = dpbusd::<V>(p, lo[k], bcast(4 * k));
                            q = dpbusd::<V>(q, hi[k], bcast(32 + 4 * k));
                        }
                        // The scale pairs' low halves are the scales themselves.
                        let (sl, sh) = (_mm256_srli_epi32(s_lo, 16), _mm256_srli_epi32(s_hi, 16));
                        sumi[c] = _mm256_add_epi32(sumi[c], _mm256_mullo_epi32(p, sl));
                        sumi[c] = _mm256_add_epi32(sumi[c], _mm256_mullo_epi32(q, sh));
                    } else {
                        let mut p = _mm256_maddubs_epi16(lo[0], bcast(0));
                        let mut q = _mm256_maddubs_epi16(hi[0], bcast(32));
                        for k in 1..8 {
                            p = _mm256_add_epi16(p, _mm256_maddubs_epi16(lo[k], bcast(4 * k)));
                            q = _mm256_add_epi16(q, _mm256_maddubs_epi16(hi[k], bcast(32 + 4 * k)));
                        }
                        sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(p, s_lo));
                        sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(q, s_hi));
                    }
                }
            }
            let dw = cvt8(&blk.d);
            let dmw = cvt8(&blk.dmin);
            let mins: [__m256i; 4] = std::array::from_fn(|p| {
                let m0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(blk.mn[2 * p].as_ptr().cast()));
                let m1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(blk.mn[2 * p + 1].as_ptr().cast()));
                _mm256_or_si256(m0, _mm256_slli_epi32(m1, 16))
            });
            for c in 0..C {
                let ab = a[c].get_unchecked(b);
                let bs = |j: usize| ab.bsums[2 * j].wrapping_add(ab.bsums[2 * j + 1]) as u16;
                let mut msum = _mm256_setzero_si256();
                for (p, mp) in mins.iter().enumerate() {
                    let pair = i32::from(bs(2 * p)) | (i32::from(bs(2 * p + 1)) << 16);
                    msum = _mm256_add_epi32(msum, _mm256_madd_epi16(*mp, _mm256_set1_epi32(pair)));
                }
                // d_a · (d_w · Σ sc·Σq·y − dmin_w · Σ m·Σy)
                let t = _mm256_fmsub_ps(
                    dw,
                    _mm256_cvtepi32_ps(sumi[c]),
                    _mm256_mul_ps(dmw, _mm256_cvtepi32_ps(msum)),
                );
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(ab.d), t, acc[c]);
            }
        }
    }
    // SAFETY: the caller has AVX2.
    unsafe { lanes(acc) }
}
