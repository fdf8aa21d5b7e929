//! NEON kernels for Arm (issue 13), after ggml's (ggml-cpu/arch/arm/quants.c): signed bytes
//! multiplied four at a time into i32 lanes — with `sdot` where the CPU has the dot-product
//! extension (ARMv8.2 dotprod: Cortex-A55 and later big cores, Apple M1+, Neoverse), else with
//! `smull` + pairwise adds (Cortex-A53, the Pi 3, low-end phones) — scaled and summed in f32.
//!
//! Every kernel is written once, generic over `DOT`, and compiled twice: inside a
//! `#[target_feature(enable = "dotprod")]` entry point with `DOT = true`, and inside a plain one
//! (NEON is baseline on aarch64) with `DOT = false`; `super::dotprod()` picks at run time.
//! Rust 1.95 stable does not expose `vdotq_s32` (unstable `stdarch_neon_dotprod`), so `sdot`
//! is written as inline assembly, which stable accepts in a function compiled with the feature.
//!
//! Weight values are brought into signed bytes: Q8_0 as stored, Q4_0/Q4_1/Q5_0 as their
//! unsigned codes (0..15, 0..31; the offset comes back through the activations' sums as on
//! x86), Q4_K its 0..15 codes with per-sub-block scales, Q6_K its codes minus 32 (−32..31).
//! The eight-row repacked Q4_0/Q4_1/Q5_0 blocks (packed.rs) suit `sdot`'s lane layout exactly:
//! 16 bytes hold four rows' four elements, and one four-byte activation word, broadcast, meets
//! all four rows in one instruction.

use std::arch::aarch64::*;
use std::arch::asm;

use super::packed::{BlockQ4_0x8, BlockQ4_1x8, BlockQ5_0x8};
use super::{
    BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8_0, BlockQ8_1, BlockQ8K,
    WeightBlock, h,
};

/// `sdot`: acc.lane[j] += Σ_{l<4} a[4j + l] · b[4j + l]. A function of its own with the
/// feature, so the assembler accepts the instruction wherever it is emitted.
#[target_feature(enable = "dotprod")]
#[inline]
unsafe fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: the caller has checked the CPU has dotprod; the instruction touches registers only.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// acc.lane[j] += Σ_{l<4} a[4j + l] · b[4j + l]: `sdot` when `DOT`, else NEON multiplies.
#[inline(always)]
unsafe fn dot4<const DOT: bool>(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    if DOT {
        // SAFETY: only reached from the dotprod entry points (the CPU has it).
        unsafe { sdot(acc, a, b) }
    } else {
        // Byte products fit i16 (|q| ≤ 128 · 127 on either side); two pairwise widening adds
        // then gather each lane's four.
        unsafe {
            let lo = vpaddlq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)));
            let hi = vpaddlq_s16(vmull_high_s8(a, b));
            vaddq_s32(acc, vpaddq_s32(lo, hi))
        }
    }
}

#[inline(always)]
unsafe fn load16(p: &[i8]) -> int8x16_t {
    debug_assert!(p.len() >= 16);
    unsafe { vld1q_s8(p.as_ptr()) }
}

#[inline(always)]
unsafe fn load16u(p: &[u8]) -> uint8x16_t {
    debug_assert!(p.len() >= 16);
    unsafe { vld1q_u8(p.as_ptr()) }
}

/// The two nibble halves of 16 bytes as signed bytes (low nibbles, high nibbles).
#[inline(always)]
unsafe fn nibbles(q: uint8x16_t) -> (int8x16_t, int8x16_t) {
    unsafe {
        let m = vdupq_n_u8(0x0f);
        (
            vreinterpretq_s8_u8(vandq_u8(q, m)),
            vreinterpretq_s8_u8(vshrq_n_u8(q, 4)),
        )
    }
}

/// A block type's NEON product with its activation block: Σ over the block, scaled.
pub trait Neon: WeightBlock {
    /// # Safety
    /// NEON (baseline on aarch64), and dotprod when `DOT`.
    unsafe fn block<const DOT: bool>(w: &Self, a: &Self::Act) -> f32;
}

/// Σ q_w·q_a over a 32-element block of signed-byte weight codes `lo` (elements 0..16) and
/// `hi` (16..32).
#[inline(always)]
unsafe fn isum32<const DOT: bool>(lo: int8x16_t, hi: int8x16_t, a: &BlockQ8_1) -> i32 {
    unsafe {
        let acc = dot4::<DOT>(vdupq_n_s32(0), lo, load16(&a.qs[..16]));
        vaddvq_s32(dot4::<DOT>(acc, hi, load16(&a.qs[16..])))
    }
}

impl Neon for BlockQ8_0 {
    #[inline(always)]
    unsafe fn block<const DOT: bool>(w: &Self, a: &BlockQ8_1) -> f32 {
        unsafe {
            let s = isum32::<DOT>(load16(&w.qs[..16]), load16(&w.qs[16..]), a);
            h(w.d) * a.d * s as f32
        }
    }
}

impl Neon for BlockQ4_0 {
    #[inline(always)]
    unsafe fn block<const DOT: bool>(w: &Self, a: &BlockQ8_1) -> f32 {
        unsafe {
            let (lo, hi) = nibbles(load16u(&w.qs));
            // Codes 0..15 stand for q − 8: d·(d_a·Σ code·y − 8·s_a).
            let d = h(w.d);
            d * (a.d * isum32::<DOT>(lo, hi, a) as f32 - 8.0 * a.s)
        }
    }
}

impl Neon for BlockQ4_1 {
    #[inline(always)]
    unsafe fn block<const DOT: bool>(w: &Self, a: &BlockQ8_1) -> f32 {
        unsafe {
            let (lo, hi) = nibbles(load16u(&w.qs));
            h(w.d) * a.d * isum32::<DOT>(lo, hi, a) as f32 + h(w.m) * a.s
        }
    }
}

/// 0x10 in byte j of 16 where bit j of `bits` is set.
#[inline(always)]
unsafe fn fifth_bits(bits: u16) -> uint8x16_t {
    unsafe {
        let [b0, b1] = bits.to_le_bytes();
        let bytes = vcombine_u8(vdup_n_u8(b0), vdup_n_u8(b1));
        let which = vld1q_u8([1u8, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128].as_ptr());
        vandq_u8(vtstq_u8(bytes, which), vdupq_n_u8(0x10))
    }
}

impl Neon for BlockQ5_0 {
    #[inline(always)]
    unsafe fn block<const DOT: bool>(w: &Self, a: &BlockQ8_1) -> f32 {
        unsafe {
            let q = load16u(&w.qs);
            let m = vdupq_n_u8(0x0f);
            let qh = u32::from_le_bytes(w.qh);
            let lo = vorrq_u8(vandq_u8(q, m), fifth_bits(qh as u16));
            let hi = vorrq_u8(vshrq_n_u8(q, 4), fifth_bits((qh >> 16) as u16));
            let s = isum32::<DOT>(vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi), a);
            // Codes 0..31 stand for q − 16.
            h(w.d) * (a.d * s as f32 - 16.0 * a.s)
        }
    }
}

impl Neon for BlockQ4K {
    #[inline(always)]
    unsafe fn block<const DOT: bool>(w: &Self, a: &BlockQ8K) -> f32 {
        unsafe {
            let (mut sumi, mut mins) = (0i32, 0i32);
            for chunk in 0..4 {
                // Bytes 32c..32c+32: low nibbles are sub-block 2c, high nibbles 2c + 1.
                let (s1, m1) = super::scale_min_k4(2 * chunk, &w.scales);
                let (s2, m2) = super::scale_min_k4(2 * chunk + 1, &w.scales);
                let e = 64 * chunk;
                let (lo0, hi0) = nibbles(load16u(&w.qs[32 * chunk..]));
                let (lo1, hi1) = nibbles(load16u(&w.qs[32 * chunk + 16..]));
                let z = vdupq_n_s32(0);
                let pl = dot4::<DOT>(
                    dot4::<DOT>(z, lo0, load16(&a.qs[e..])),
                    lo1,
                    load16(&a.qs[e + 16..]),
                );
                let ph = dot4::<DOT>(
                    dot4::<DOT>(z, hi0, load16(&a.qs[e + 32..])),
                    hi1,
                    load16(&a.qs[e + 48..]),
                );
                sumi += i32::from(s1) * vaddvq_s32(pl) + i32::from(s2) * vaddvq_s32(ph);
                let b = &a.bsums[4 * chunk..4 * chunk + 4];
                mins += i32::from(m1) * (i32::from(b[0]) + i32::from(b[1]))
                    + i32::from(m2) * (i32::from(b[2]) + i32::from(b[3]));
            }
            a.d * (h(w.d) * sumi as f32 - h(w.dmin) * mins as f32)
        }
    }
}

impl Neon for BlockQ6K {
    #[inline(always)]
    unsafe fn block<const DOT: bool>(w: &Self, a: &BlockQ8K) -> f32 {
        unsafe {
            let m4 = vdupq_n_u8(0x0f);
            let m2 = vdupq_n_u8(3);
            let off = vdupq_n_s8(32);
            let mut sumi = 0i32;
            for half in 0..2 {
                for part in 0..2 {
                    // Sixteen of the 32 positions l of this half at a time.
                    let l = 16 * part;
                    let ql0 = load16u(&w.ql[64 * half + l..]);
                    let ql1 = load16u(&w.ql[64 * half + 32 + l..]);
                    let qh = load16u(&w.qh[32 * half + l..]);
                    let hb = |s: uint8x16_t| vshlq_n_u8(vandq_u8(s, m2), 4);
                    // Quarter k holds elements 128·half + 32k + l (ggml's dequantize_row_q6_K).
                    let q = [
                        vorrq_u8(vandq_u8(ql0, m4), hb(qh)),
                        vorrq_u8(vandq_u8(ql1, m4), hb(vshrq_n_u8(qh, 2))),
                        vorrq_u8(vshrq_n_u8(ql0, 4), hb(vshrq_n_u8(qh, 4))),
                        vorrq_u8(vshrq_n_u8(ql1, 4), hb(vshrq_n_u8(qh, 6))),
                    ];
                    for (k, q) in q.into_iter().enumerate() {
                        let e = 128 * half + 32 * k + l;
                        let v = vsubq_s8(vreinterpretq_s8_u8(q), off);
                        let p = dot4::<DOT>(vdupq_n_s32(0), v, load16(&a.qs[e..]));
                        sumi += i32::from(w.scales[e / 16]) * vaddvq_s32(p);
                    }
                }
            }
            h(w.d) * a.d * sumi as f32
        }
    }
}

#[inline(always)]
unsafe fn row<B: Neon, const DOT: bool>(w: &[B], a: &[B::Act]) -> f32 {
    assert!(
        w.len() >= a.len(),
        "the weight row is shorter than the activations"
    );
    // Four partial sums: one chain would be bound by its add latency.
    let mut acc = [0f32; 4];
    for (i, (w, a)) in w.iter().zip(a).enumerate() {
        // SAFETY: forwarded from the entry point.
        acc[i % 4] += unsafe { B::block::<DOT>(w, a) };
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

#[inline(always)]
unsafe fn tile<B: Neon, const DOT: bool, const R: usize, const C: usize>(
    w: [&[B]; R],
    a: [&[B::Act]; C],
) -> [[f32; C]; R] {
    // SAFETY: forwarded from the entry point.
    std::array::from_fn(|r| std::array::from_fn(|c| unsafe { row::<B, DOT>(w[r], a[c]) }))
}

/// Σ over the blocks for every pair of R weight rows and C activation rows, with `sdot`.
///
/// # Safety
/// The CPU has the dot-product extension.
#[target_feature(enable = "dotprod")]
pub unsafe fn dot_tile_dotprod<B: Neon, const R: usize, const C: usize>(
    w: [&[B]; R],
    a: [&[B::Act]; C],
) -> [[f32; C]; R] {
    unsafe { tile::<B, true, R, C>(w, a) }
}

/// As [`dot_tile_dotprod`], on plain NEON.
pub fn dot_tile_neon<B: Neon, const R: usize, const C: usize>(
    w: [&[B]; R],
    a: [&[B::Act]; C],
) -> [[f32; C]; R] {
    // SAFETY: NEON is baseline on aarch64; DOT = false uses no dotprod instruction.
    unsafe { tile::<B, false, R, C>(w, a) }
}

/// A repacked eight-row type as the NEON kernel sees it.
pub trait NeonX8: super::packed::Packed8 {
    /// For k in 0..4, rows 0..4 and rows 4..8 (`[k][half]`): the codes of elements 4k..4k+4
    /// (`.0`) and 16+4k..16+4k+4 (`.1`), four bytes per row.
    unsafe fn codes(&self, k: usize, half: usize) -> (int8x16_t, int8x16_t);
    /// Adds row i's block product, `sum` = Σ code·y, into `acc`.
    fn fold(&self, i: usize, sum: i32, a: &BlockQ8_1) -> f32;
}

impl NeonX8 for BlockQ4_0x8 {
    #[inline(always)]
    unsafe fn codes(&self, k: usize, half: usize) -> (int8x16_t, int8x16_t) {
        unsafe { nibbles(load16u(&self.qs[32 * k + 16 * half..])) }
    }
    #[inline(always)]
    fn fold(&self, i: usize, sum: i32, a: &BlockQ8_1) -> f32 {
        h(self.d[i]) * (a.d * sum as f32 - 8.0 * a.s)
    }
}

impl NeonX8 for BlockQ4_1x8 {
    #[inline(always)]
    unsafe fn codes(&self, k: usize, half: usize) -> (int8x16_t, int8x16_t) {
        unsafe { nibbles(load16u(&self.qs[32 * k + 16 * half..])) }
    }
    #[inline(always)]
    fn fold(&self, i: usize, sum: i32, a: &BlockQ8_1) -> f32 {
        h(self.d[i]) * a.d * sum as f32 + h(self.m[i]) * a.s
    }
}

impl NeonX8 for BlockQ5_0x8 {
    #[inline(always)]
    unsafe fn codes(&self, k: usize, half: usize) -> (int8x16_t, int8x16_t) {
        unsafe {
            let (lo, hi) = nibbles(load16u(&self.qs[32 * k + 16 * half..]));
            // Byte 4i + l of qh: bit 2k is element 4k + l's fifth bit, bit 2k + 1 element
            // 16 + 4k + l's (packed.rs); the 16 bytes of this half line up with the nibbles.
            let qh = load16u(&self.qh[16 * half..]);
            let one = vdupq_n_u8(1);
            let bit = |shift: i8| vshlq_n_u8(vandq_u8(vshlq_u8(qh, vdupq_n_s8(-shift)), one), 4);
            (
                vorrq_s8(lo, vreinterpretq_s8_u8(bit(2 * k as i8))),
                vorrq_s8(hi, vreinterpretq_s8_u8(bit(2 * k as i8 + 1))),
            )
        }
    }
    #[inline(always)]
    fn fold(&self, i: usize, sum: i32, a: &BlockQ8_1) -> f32 {
        h(self.d[i]) * (a.d * sum as f32 - 16.0 * a.s)
    }
}

#[inline(always)]
unsafe fn x8<P: NeonX8<Row: WeightBlock<Act = BlockQ8_1>>, const DOT: bool, const C: usize>(
    w: &[P],
    a: [&[BlockQ8_1]; C],
) -> [[f32; 8]; C] {
    let n = a.first().map_or(0, |a| a.len());
    assert!(
        w.len() >= n && a.iter().all(|a| a.len() >= n),
        "rows of unequal length"
    );
    let mut out = [[0f32; 8]; C];
    for b in 0..n {
        let wb = &w[b];
        // SAFETY: forwarded from the entry point; b < n ≤ every row's length.
        unsafe {
            for c in 0..C {
                let ab = &a[c][b];
                let word = |e: usize| {
                    vreinterpretq_s8_s32(vdupq_n_s32(i32::from_le_bytes([
                        ab.qs[e] as u8,
                        ab.qs[e + 1] as u8,
                        ab.qs[e + 2] as u8,
                        ab.qs[e + 3] as u8,
                    ])))
                };
                let mut acc = [vdupq_n_s32(0); 2];
                for k in 0..4 {
                    let (ylo, yhi) = (word(4 * k), word(16 + 4 * k));
                    for (half, acc) in acc.iter_mut().enumerate() {
                        let (lo, hi) = wb.codes(k, half);
                        *acc = dot4::<DOT>(dot4::<DOT>(*acc, lo, ylo), hi, yhi);
                    }
                }
                let mut sums = [0i32; 8];
                vst1q_s32(sums.as_mut_ptr(), acc[0]);
                vst1q_s32(sums.as_mut_ptr().add(4), acc[1]);
                for (i, s) in sums.into_iter().enumerate() {
                    out[c][i] += wb.fold(i, s, ab);
                }
            }
        }
    }
    out
}

/// Eight repacked rows against C activation rows, with `sdot`.
///
/// # Safety
/// The CPU has the dot-product extension.
#[target_feature(enable = "dotprod")]
pub unsafe fn dot_x8_dotprod<P: NeonX8<Row: WeightBlock<Act = BlockQ8_1>>, const C: usize>(
    w: &[P],
    a: [&[BlockQ8_1]; C],
) -> [[f32; 8]; C] {
    unsafe { x8::<P, true, C>(w, a) }
}

/// As [`dot_x8_dotprod`], on plain NEON.
pub fn dot_x8_neon<P: NeonX8<Row: WeightBlock<Act = BlockQ8_1>>, const C: usize>(
    w: &[P],
    a: [&[BlockQ8_1]; C],
) -> [[f32; 8]; C] {
    // SAFETY: NEON is baseline on aarch64; DOT = false uses no dotprod instruction.
    unsafe { x8::<P, false, C>(w, a) }
}

#[cfg(test)]
mod tests {
    //! The dispatching tests (kernels/mod.rs, packed.rs) check whichever path this CPU takes
    //! against the scalar reference; under qemu that is dotprod with QEMU_CPU=max and plain NEON
    //! with QEMU_CPU=cortex-a53 (scripts/test.sh runs both). Here the two paths also meet each
    //! other directly, wherever the CPU has dotprod.
    use super::super::tests::{close, floats, q4_0, q4_1_like, q4_k, q5_0_like, q6_k, q8_0_raw};
    use super::*;
    use crate::kernels::packed::{Packed8, repack};
    use crate::rng::Rng;

    fn agree<B: Neon + std::fmt::Debug>(w: &[B], x: &[f32]) {
        let a = B::quantize_act(x);
        let plain = dot_tile_neon::<B, 1, 1>([w], [&a])[0][0];
        let scalar = B::dot_scalar(w, &a);
        assert!(
            close(plain, scalar),
            "{}: neon {plain} vs scalar {scalar}",
            std::any::type_name::<B>()
        );
        if super::super::dotprod() {
            // SAFETY: detected just above.
            let dot = unsafe { dot_tile_dotprod::<B, 1, 1>([w], [&a]) }[0][0];
            assert!(
                close(dot, scalar),
                "{}: sdot {dot} vs scalar {scalar}",
                std::any::type_name::<B>()
            );
        }
    }

    #[test]
    fn neon_and_dotprod_rows_equal_the_scalar_path() {
        let mut rng = Rng::new(13);
        for blocks in [1, 5, 16] {
            let x = floats(&mut rng, blocks * 32);
            let w4 = q4_0(&mut rng, blocks);
            agree(&w4, &x);
            agree(&q8_0_raw(&mut rng, blocks), &x);
            agree(&q4_1_like(&mut rng, &w4), &x);
            agree(&q5_0_like(&mut rng, &w4), &x);
        }
        for supers in [1, 3] {
            let x = floats(&mut rng, supers * 256);
            agree(&q4_k(&mut rng, supers), &x);
            agree(&q6_k(&mut rng, supers), &x);
        }
    }

    fn agree_x8<P>(rows: &[P::Row], per_row: usize, x: &[f32])
    where
        P: NeonX8 + Packed8<Row: WeightBlock<Act = BlockQ8_1>>,
    {
        let packed = repack::<P>(rows, 8, per_row);
        let a = <P::Row as WeightBlock>::quantize_act(x);
        let plain = dot_x8_neon::<P, 1>(&packed, [&a])[0];
        for (i, &v) in plain.iter().enumerate() {
            let want = P::Row::dot_scalar(&rows[i * per_row..(i + 1) * per_row], &a);
            assert!(close(v, want), "row {i}: neon {v} vs scalar {want}");
        }
        if super::super::dotprod() {
            // SAFETY: detected just above.
            let dot = unsafe { dot_x8_dotprod::<P, 1>(&packed, [&a]) }[0];
            for (i, (&d, &p)) in dot.iter().zip(&plain).enumerate() {
                assert!(close(d, p), "row {i}: sdot {d} vs neon {p}");
            }
        }
    }

    #[test]
    fn neon_and_dotprod_packed_rows_equal_the_scalar_path() {
        let mut rng = Rng::new(17);
        let per_row = 3;
        let x = floats(&mut rng, per_row * 32);
        let w4 = q4_0(&mut rng, 8 * per_row);
        agree_x8::<BlockQ4_0x8>(&w4, per_row, &x);
        agree_x8::<BlockQ4_1x8>(&q4_1_like(&mut rng, &w4), per_row, &x);
        agree_x8::<BlockQ5_0x8>(&q5_0_like(&mut rng, &w4), per_row, &x);
    }
}
