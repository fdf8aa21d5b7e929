//! Causal attention over the KV cache, tiled: flash attention's online softmax (Dao et al. 2022,
//! "FlashAttention", Algorithm 1; Milakov & Gimelshein 2018, "Online normalizer calculation for
//! softmax"). Each query keeps a running maximum, a running sum and its output, and walks the
//! keys a tile of [`TILE`] positions at a time, so no row of scores as long as the context — and
//! no prompt × context matrix — is ever held, and one tile of keys and values, loaded once, serves
//! every query of a block (the heads that share a KV head, over several positions).
//!
//! The cache ([`crate::kv`]) is laid out for the two products, in the type the run chose (f16 by
//! default, as llama.cpp's); a tile is widened to f32 once per block of queries (F16C on x86,
//! NEON's fcvtl on Arm, through `half`), and everything after runs in f32.

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::kv::{self, KvCache, TILE};

/// One query: its vector and the keys it sees, `first..end` (causal, and windowed on
/// sliding-window layers).
#[derive(Clone, Copy)]
pub struct Row<'a> {
    pub q: &'a [f32],
    pub first: usize,
    pub end: usize,
}

/// Attention of `rows` (queries of one KV head) over `slab`'s keys and values, scores scaled by
/// `scale`: row `i`'s output in `out[i * head_dim..]`.
pub fn attend(cache: &KvCache, slab: usize, rows: &[Row], scale: f32, out: &mut [f32]) {
    // Quantized keys are stored rotated (`kv.rs`): each query is rotated alike, so q·k is the
    // same product.
    let rotated: Vec<Vec<f32>>;
    let rows_k: Vec<Row>;
    let rows = if cache.rot_k() > 0 {
        rotated = rotated_queries(cache, rows);
        rows_k = rows
            .iter()
            .zip(&rotated)
            .map(|(r, q)| Row { q, ..*r })
            .collect();
        &rows_k[..]
    } else {
        rows
    };
    attend_rotated(cache, slab, rows, scale, out);
    // Rotated values give a rotated output: the transform is its own inverse.
    if cache.rot_v() > 0 {
        let hd = cache.head_dim();
        for o in out[..rows.len() * hd].chunks_exact_mut(hd) {
            kv::rotate(o, cache.rot_v());
        }
    }
}

/// Each row's query rotated as the cache's keys are.
fn rotated_queries(cache: &KvCache, rows: &[Row]) -> Vec<Vec<f32>> {
    rows.iter()
        .map(|r| {
            let mut q = r.q[..cache.head_dim()].to_vec();
            kv::rotate(&mut q, cache.rot_k());
            q
        })
        .collect()
}

/// [`attend`] in the cache's own (rotated) space, on this CPU's kernels.
fn attend_rotated(cache: &KvCache, slab: usize, rows: &[Row], scale: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::avx2() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked just above).
        return unsafe { x86::attend(cache, slab, rows, scale, out) };
    }
    attend_with::<Portable<{ cfg!(target_arch = "aarch64") }>>(cache, slab, rows, scale, out);
}

/// The two steps a CPU's code does: widen a tile to f32, and one row against one tile.
trait Kernel {
    fn widen(from: &[f16], to: &mut [f32]);
    fn row_tile(t: RowTile);
}

/// Portable code: NEON on aarch64 through LLVM's vectoriser (`FMA`: fused multiply-adds).
struct Portable<const FMA: bool>;

impl<const FMA: bool> Kernel for Portable<FMA> {
    #[inline(always)]
    fn widen(from: &[f16], to: &mut [f32]) {
        from.convert_to_f32_slice(to);
    }
    #[inline(always)]
    fn row_tile(t: RowTile) {
        row_tile::<FMA>(t);
    }
}

/// One query row against one tile: what [`row_tile`] (and its AVX2 twin) updates.
pub(crate) struct RowTile<'a> {
    q: &'a [f32],
    /// The tile's keys (`[dim][lane]`) and values (`[lane][dim]`), widened to f32.
    kt: &'a [f32],
    vt: &'a [f32],
    scale: f32,
    /// The lanes this row sees: `live.0..live.1`.
    live: (usize, usize),
    /// The running maximum and sum of the row's exponentials.
    state: &'a mut (f32, f32),
    out: &'a mut [f32],
}

#[inline(always)]
fn attend_with<K: Kernel>(cache: &KvCache, slab: usize, rows: &[Row], scale: f32, out: &mut [f32]) {
    let hd = cache.head_dim();
    let n = rows.len();
    let out = &mut out[..n * hd];
    out.fill(0.0);
    let (Some(lo), Some(hi)) = (
        rows.iter().map(|r| r.first).min(),
        rows.iter().map(|r| r.end).max(),
    ) else {
        return;
    };
    // Running maximum and sum of each row's exponentials.
    let mut state = vec![(f32::NEG_INFINITY, 0f32); n];
    // The tile's keys and values widened to f32, once for every row of the block.
    let (mut kt, mut vt) = (vec![0f32; TILE * hd], vec![0f32; TILE * hd]);
    for tile in lo / TILE..hi.div_ceil(TILE) {
        let base = tile * TILE;
        cache.widen_tile(slab, tile, &mut kt, &mut vt, K::widen);
        for ((r, st), o) in rows.iter().zip(&mut state).zip(out.chunks_exact_mut(hd)) {
            if r.end <= base || r.first >= base + TILE {
                continue;
            }
            K::row_tile(RowTile {
                q: &r.q[..hd],
                kt: &kt,
                vt: &vt,
                scale,
                live: (r.first.saturating_sub(base), (r.end - base).min(TILE)),
                state: st,
                out: o,
            });
        }
    }
    for (o, &(_, l)) in out.chunks_exact_mut(hd).zip(&state) {
        if l > 0.0 {
            let inv = 1.0 / l;
            o.iter_mut().for_each(|x| *x *= inv);
        }
    }
}

/// `a * b + c`, fused where the target has it (`FMA`: one rounding, one instruction), else
/// plain (a fused multiply-add in software would be a library call per element).
#[inline(always)]
fn fma<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// The scores of a row against a tile, the online-softmax update, and the weighted values added
/// into its output: portable code (NEON on aarch64 through LLVM's vectoriser).
fn row_tile<const FMA: bool>(t: RowTile) {
    let hd = t.q.len();
    let mut s = [0f32; TILE];
    for (d, &qd) in t.q.iter().enumerate() {
        let k = &t.kt[d * TILE..(d + 1) * TILE];
        for j in 0..TILE {
            s[j] = fma::<FMA>(qd, k[j], s[j]);
        }
    }
    let (lo, hi) = t.live;
    let mut top = f32::NEG_INFINITY;
    for (j, v) in s.iter_mut().enumerate() {
        *v *= t.scale;
        if (lo..hi).contains(&j) {
            top = top.max(*v);
        }
    }
    let (m_old, l_old) = *t.state;
    let m = m_old.max(top);
    let mut x = [0f32; TILE];
    for j in 0..TILE {
        x[j] = s[j] - m;
    }
    let mut w = exp8(x);
    for (j, v) in w.iter_mut().enumerate() {
        if !(lo..hi).contains(&j) {
            *v = 0.0;
        }
    }
    // The output so far was weighted against the old maximum.
    let corr = (m_old - m).exp();
    *t.state = (m, l_old * corr + w.iter().sum::<f32>());
    for (c, o) in t.out.iter_mut().enumerate() {
        let mut acc = *o * corr;
        for (j, &wj) in w.iter().enumerate() {
            acc = fma::<FMA>(wj, t.vt[j * hd + c], acc);
        }
        *o = acc;
    }
}

/// [`row_tile`] in AVX2 and FMA intrinsics: LLVM did not vectorise the portable code well
/// enough (measured: 4 rows over 2,048 positions took 320 µs, ~7× the instruction count).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Kernel, KvCache, Row, RowTile, TILE, attend_with};
    use half::f16;
    use std::arch::x86_64::*;

    struct Avx2;

    impl Kernel for Avx2 {
        #[inline(always)]
        fn widen(from: &[f16], to: &mut [f32]) {
            // SAFETY: only reached through `attend`, whose caller checked AVX2 and F16C.
            unsafe { widen(from, to) }
        }
        #[inline(always)]
        fn row_tile(t: RowTile) {
            // SAFETY: as above.
            unsafe { row_tile(t) }
        }
    }

    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn attend(
        cache: &KvCache,
        slab: usize,
        rows: &[Row],
        scale: f32,
        out: &mut [f32],
    ) {
        attend_with::<Avx2>(cache, slab, rows, scale, out);
    }

    /// f16 to f32, eight at a time (`vcvtph2ps`). `half`'s slice conversion took 44 % of a
    /// decode step's attention: a call and a dispatch per eight values.
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn widen(from: &[f16], to: &mut [f32]) {
        let n = from.len().min(to.len());
        let (src, dst) = (from.as_ptr().cast::<u16>(), to.as_mut_ptr());
        let mut i = 0;
        // SAFETY: i + 8 <= n, within both slices.
        unsafe {
            while i + 8 <= n {
                let h = _mm_loadu_si128(src.add(i).cast());
                _mm256_storeu_ps(dst.add(i), _mm256_cvtph_ps(h));
                i += 8;
            }
        }
        for j in i..n {
            to[j] = from[j].to_f32();
        }
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn row_tile(t: RowTile) {
        let hd = t.q.len();
        let (q, kt, vt) = (t.q.as_ptr(), t.kt.as_ptr(), t.vt.as_ptr());
        // Four chains of multiply-adds, so each waits on the others' latency less.
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut d = 0;
        // SAFETY (every pointer below): kt holds hd × TILE floats, vt TILE × hd, q hd, out hd.
        unsafe {
            while d + 4 <= hd {
                for (i, a) in acc.iter_mut().enumerate() {
                    let k = _mm256_loadu_ps(kt.add((d + i) * TILE));
                    *a = _mm256_fmadd_ps(_mm256_set1_ps(*q.add(d + i)), k, *a);
                }
                d += 4;
            }
            while d < hd {
                let k = _mm256_loadu_ps(kt.add(d * TILE));
                acc[0] = _mm256_fmadd_ps(_mm256_set1_ps(*q.add(d)), k, acc[0]);
                d += 1;
            }
        }
        let s = _mm256_mul_ps(
            _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])),
            _mm256_set1_ps(t.scale),
        );
        // The lanes this row sees, as a mask.
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let (lo, hi) = t.live;
        let live = _mm256_and_si256(
            _mm256_cmpgt_epi32(lane, _mm256_set1_epi32(lo as i32 - 1)),
            _mm256_cmpgt_epi32(_mm256_set1_epi32(hi as i32), lane),
        );
        let live = _mm256_castsi256_ps(live);
        let s = _mm256_blendv_ps(_mm256_set1_ps(f32::NEG_INFINITY), s, live);
        let top = hmax(s);
        let (m_old, l_old) = *t.state;
        let m = m_old.max(top);
        let w = _mm256_and_ps(exp8(_mm256_sub_ps(s, _mm256_set1_ps(m))), live);
        let corr = (m_old - m).exp();
        *t.state = (m, l_old * corr + hsum(w));
        let mut wj = [0f32; TILE];
        // SAFETY: wj holds TILE floats.
        unsafe { _mm256_storeu_ps(wj.as_mut_ptr(), w) };
        let corr = _mm256_set1_ps(corr);
        let o = t.out.as_mut_ptr();
        let mut c = 0;
        // SAFETY: as above.
        unsafe {
            while c + 8 <= hd {
                let mut a = _mm256_mul_ps(_mm256_loadu_ps(o.add(c)), corr);
                for (j, &w) in wj.iter().enumerate() {
                    a = _mm256_fmadd_ps(_mm256_set1_ps(w), _mm256_loadu_ps(vt.add(j * hd + c)), a);
                }
                _mm256_storeu_ps(o.add(c), a);
                c += 8;
            }
        }
        let corr = _mm256_cvtss_f32(corr);
        for c in c..hd {
            let mut a = t.out[c] * corr;
            for (j, &w) in wj.iter().enumerate() {
                a = w.mul_add(t.vt[j * hd + c], a);
            }
            t.out[c] = a;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn hmax(v: __m256) -> f32 {
        let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
        _mm_cvtss_f32(m)
    }

    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// [`super::exp8`] in AVX2: the same constants, the same steps.
    #[target_feature(enable = "avx2,fma")]
    fn exp8(x: __m256) -> __m256 {
        let floor = _mm256_set1_ps(-87.0);
        let under = _mm256_cmp_ps(x, floor, _CMP_LE_OQ);
        let x = _mm256_max_ps(x, floor);
        let n = _mm256_floor_ps(_mm256_fmadd_ps(
            x,
            _mm256_set1_ps(std::f32::consts::LOG2_E),
            _mm256_set1_ps(0.5),
        ));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(super::LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(super::LN2_LO), r);
        let mut p = _mm256_set1_ps(super::EXP_POLY[0]);
        for &c in &super::EXP_POLY[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let e = _mm256_add_ps(
            _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r),
            _mm256_set1_ps(1.0),
        );
        let two_n = _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_max_epi32(
                _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
                _mm256_setzero_si256(),
            ),
            23,
        ));
        _mm256_andnot_ps(under, _mm256_mul_ps(e, two_n))
    }
}

/// ln 2 in two parts (Cody and Waite), so n·ln 2 is exact for the n an f32 exponent takes.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes' minimax polynomial for (e^r − 1 − r) / r², |r| ≤ ½ln 2, highest degree first.
const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// e^x of 8 lanes at once, for x ≤ 0 (scores less their maximum): Cephes' expf — x = n·ln 2 + r
/// with |r| ≤ ½ln 2, e^r by its degree-6 minimax polynomial, 2^n by the exponent bits. Relative
/// error below 2·10⁻⁷; anything at or below −87 (e⁻⁸⁷ ≈ 1.6·10⁻³⁸: an underflow, or a masked
/// −∞) is 0.
#[inline(always)]
fn exp8(x: [f32; TILE]) -> [f32; TILE] {
    let mut out = [0f32; TILE];
    for j in 0..TILE {
        let x = x[j].max(-87.0);
        let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
        let r = x - n * LN2_HI - n * LN2_LO;
        let mut p = EXP_POLY[0];
        for &c in &EXP_POLY[1..] {
            p = p * r + c;
        }
        let e = p * r * r + r + 1.0;
        // 2^n for n in −126..=0: the exponent field alone.
        let two_n = f32::from_bits(((n as i32 + 127).max(0) as u32) << 23);
        out[j] = if x <= -87.0 { 0.0 } else { e * two_n };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{KvType, KvTypes, held};

    /// Attention as written in the paper: scores, softmax, weighted sum, in f64.
    fn reference(keys: &[Vec<f32>], vals: &[Vec<f32>], r: &Row, scale: f32) -> Vec<f32> {
        let scores: Vec<f64> = (r.first..r.end)
            .map(|j| {
                keys[j]
                    .iter()
                    .zip(r.q)
                    .map(|(k, q)| f64::from(*k) * f64::from(*q))
                    .sum::<f64>()
                    * f64::from(scale)
            })
            .collect();
        let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let sum: f64 = w.iter().sum();
        let hd = r.q.len();
        (0..hd)
            .map(|d| {
                (r.first..r.end)
                    .zip(&w)
                    .map(|(j, w)| w * f64::from(vals[j][d]))
                    .sum::<f64>() as f32
                    / sum as f32
            })
            .collect()
    }

    fn noise(seed: u64, n: usize) -> Vec<f32> {
        // Uniform in [−2, 2): scores spread enough that the softmax is far from flat.
        let mut rng = crate::rng::Rng::new(seed);
        (0..n)
            .map(|_| (rng.below(1 << 20) as f32 / (1 << 18) as f32) - 2.0)
            .collect()
    }

    #[test]
    fn tiled_attention_matches_the_definition() {
        // Head sizes of the architectures the engine runs (64, 96, 128, 256) and one that is no
        // multiple of the tile (f32 and f16 only: the quantized types need whole blocks); spans
        // that start and end mid-tile, a window, one key; every cache type.
        for t in KvType::ALL {
            for hd in [64, 96, 128, 256, 20] {
                let types = KvTypes::both(t);
                let Ok(mut cache) = KvCache::new(3, hd, types) else {
                    assert!(hd % 32 != 0);
                    continue;
                };
                check(&mut cache, hd, t);
            }
        }
        // Keys and values of different types.
        let types = KvTypes {
            k: KvType::Q8_0,
            v: KvType::F16,
        };
        check(&mut KvCache::new(3, 64, types).unwrap(), 64, KvType::Q8_0);
    }

    /// Attention on `cache` against the definition over what it holds (keys and values rounded
    /// to its types), and the portable path against the one this CPU takes.
    fn check(cache: &mut KvCache, hd: usize, label: KvType) {
        let len = 53;
        cache.grow(10);
        let keys: Vec<Vec<f32>> = (0..len).map(|p| noise(p as u64, hd)).collect();
        let vals: Vec<Vec<f32>> = (0..len).map(|p| noise(1000 + p as u64, hd)).collect();
        for p in 0..len {
            // Grown mid-way: what it held stays.
            cache.grow(p + 1);
            cache.store(1, p, &keys[p], &vals[p]);
        }
        let qs: Vec<Vec<f32>> = (0..5).map(|i| noise(5000 + i, hd)).collect();
        let spans = [(0, 53), (0, 1), (3, 20), (17, 18), (40, 53)];
        let rows: Vec<Row> = qs
            .iter()
            .zip(spans)
            .map(|(q, (first, end))| Row { q, first, end })
            .collect();
        let scale = 1.0 / (hd as f32).sqrt();
        let mut out = vec![f32::NAN; rows.len() * hd];
        attend(cache, 1, &rows, scale, &mut out);
        let types = cache.types();
        let hk: Vec<Vec<f32>> = keys
            .iter()
            .map(|k| held(types.k, k, cache.rot_k()))
            .collect();
        let hv: Vec<Vec<f32>> = vals
            .iter()
            .map(|v| held(types.v, v, cache.rot_v()))
            .collect();
        for (i, r) in rows.iter().enumerate() {
            let want = reference(&hk, &hv, r, scale);
            for (a, b) in out[i * hd..(i + 1) * hd].iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{label} hd {hd} row {i}: {a} vs {b}"
                );
            }
        }
        // The generic path gives the same figures as the one this CPU takes (in the cache's
        // rotated space: the rows as `attend` rotates them).
        let mut fast = vec![0f32; rows.len() * hd];
        let mut plain = vec![0f32; rows.len() * hd];
        let rq = rotated_queries(cache, &rows);
        let rrows: Vec<Row> = rows.iter().zip(&rq).map(|(r, q)| Row { q, ..*r }).collect();
        attend_rotated(cache, 1, &rrows, scale, &mut fast);
        attend_with::<Portable<false>>(cache, 1, &rrows, scale, &mut plain);
        for (a, b) in fast.iter().zip(&plain) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{label} hd {hd}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn exp8_is_expf_to_within_its_rounding() {
        let xs: Vec<f32> = (0..2000).map(|i| -(i as f32) * 0.0437).collect();
        for c in xs.chunks_exact(TILE) {
            let got = exp8(c.try_into().unwrap());
            for (x, g) in c.iter().zip(got) {
                let want = f64::from(*x).exp();
                assert!(
                    (f64::from(g) - want).abs() <= 4e-7 * want + 1.7e-38,
                    "{x}: {g} vs {want}"
                );
            }
        }
        assert_eq!(exp8([f32::NEG_INFINITY; TILE]), [0.0; TILE]);
        assert_eq!(exp8([0.0; TILE]), [1.0; TILE]);
    }
}
