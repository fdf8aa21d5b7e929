//! Causal attention over the KV cache, tiled: flash attention's online softmax (Dao et al. 2022,
//! "FlashAttention", Algorithm 1; Milakov & Gimelshein 2018, "Online normalizer calculation for
//! softmax"). Each query keeps a running maximum, a running sum and its output, and walks the
//! keys a tile of [`TILE`] positions at a time, so no row of scores as long as the context — and
//! no prompt × context matrix — is ever held, and one tile of keys and values, loaded once, serves
//! every query of a block (the heads that share a KV head, over several positions).
//!
//! The cache is laid out for the two products: keys transposed within a tile (`[tile][dim][lane]`)
//! so a query's scores against a tile are `head_dim` multiply-adds of one 8-lane vector with no
//! horizontal sum, values row by row (`[position][dim]`) so the weighted sum is a multiply-add of
//! each value row into the output.

/// Key positions per tile: one 8-lane vector of scores (AVX2's f32×8; two NEON registers).
pub const TILE: usize = 8;

/// Every layer's keys and values, for each KV head (a "slab"): `cap` positions, a multiple of
/// [`TILE`].
#[derive(Default)]
pub struct KvCache {
    k: Vec<f32>,
    v: Vec<f32>,
    cap: usize,
    hd: usize,
    slabs: usize,
}

impl KvCache {
    pub fn new(slabs: usize, head_dim: usize) -> KvCache {
        KvCache {
            k: Vec::new(),
            v: Vec::new(),
            cap: 0,
            hd: head_dim,
            slabs,
        }
    }

    /// Positions it holds room for.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Makes room for `cap` positions (rounded up to whole tiles), keeping what it holds.
    pub fn grow(&mut self, cap: usize) {
        let cap = cap.div_ceil(TILE) * TILE;
        if cap <= self.cap {
            return;
        }
        let (old, new) = (self.cap * self.hd, cap * self.hd);
        for cache in [&mut self.k, &mut self.v] {
            // Whole tiles keep their layout: a slab's first `old` floats are its first tiles.
            let mut grown = vec![0f32; self.slabs * new];
            for s in 0..self.slabs {
                grown[s * new..s * new + old].copy_from_slice(&cache[s * old..(s + 1) * old]);
            }
            *cache = grown;
        }
        self.cap = cap;
    }

    /// Bytes it holds per element of a key or a value (f32).
    pub const BYTES_PER_ELEMENT: usize = 4;

    /// Writes the key and value of position `pos` of `slab`.
    pub fn store(&mut self, slab: usize, pos: usize, k: &[f32], v: &[f32]) {
        let hd = self.hd;
        let at = slab * self.cap * hd + (pos / TILE) * TILE * hd;
        let lane = pos % TILE;
        for (d, &x) in k[..hd].iter().enumerate() {
            self.k[at + d * TILE + lane] = x;
        }
        let row = at + lane * hd;
        self.v[row..row + hd].copy_from_slice(&v[..hd]);
    }

    fn slab(&self, slab: usize) -> (&[f32], &[f32]) {
        let n = self.cap * self.hd;
        (
            &self.k[slab * n..(slab + 1) * n],
            &self.v[slab * n..(slab + 1) * n],
        )
    }
}

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
    let (keys, vals) = cache.slab(slab);
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        return unsafe { attend_avx2(keys, vals, cache.hd, rows, scale, out) };
    }
    attend_with::<{ cfg!(target_arch = "aarch64") }>(keys, vals, cache.hd, rows, scale, out);
}

/// The same code, compiled for AVX2 and FMA: its 8-lane loops become single instructions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_avx2(
    keys: &[f32],
    vals: &[f32],
    hd: usize,
    rows: &[Row],
    scale: f32,
    out: &mut [f32],
) {
    attend_with::<true>(keys, vals, hd, rows, scale, out);
}

/// `a * b + c`, fused where the target has it (`FMA`: one rounding, one instruction), else
/// plain (a fused multiply-add in software would be a library call per element).
#[inline(always)]
fn fma<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

#[inline(always)]
fn attend_with<const FMA: bool>(
    keys: &[f32],
    vals: &[f32],
    hd: usize,
    rows: &[Row],
    scale: f32,
    out: &mut [f32],
) {
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
    for tile in lo / TILE..hi.div_ceil(TILE) {
        let base = tile * TILE;
        let kt = &keys[base * hd..(base + TILE) * hd];
        let vt = &vals[base * hd..(base + TILE) * hd];
        for (i, r) in rows.iter().enumerate() {
            if r.end <= base || r.first >= base + TILE {
                continue;
            }
            // Two chains of multiply-adds, so each waits on the other's latency less.
            let (mut s, mut s2) = ([0f32; TILE], [0f32; TILE]);
            let q = &r.q[..hd];
            let mut d = 0;
            while d + 2 <= hd {
                let (a, b) = (q[d], q[d + 1]);
                let (k0, k1) = (
                    &kt[d * TILE..(d + 1) * TILE],
                    &kt[(d + 1) * TILE..(d + 2) * TILE],
                );
                for j in 0..TILE {
                    s[j] = fma::<FMA>(a, k0[j], s[j]);
                    s2[j] = fma::<FMA>(b, k1[j], s2[j]);
                }
                d += 2;
            }
            if d < hd {
                let k0 = &kt[d * TILE..(d + 1) * TILE];
                for j in 0..TILE {
                    s[j] = fma::<FMA>(q[d], k0[j], s[j]);
                }
            }
            let mut live = [true; TILE];
            let mut top = f32::NEG_INFINITY;
            for j in 0..TILE {
                s[j] = (s[j] + s2[j]) * scale;
                live[j] = base + j >= r.first && base + j < r.end;
                if live[j] {
                    top = top.max(s[j]);
                }
            }
            let (m_old, l_old) = state[i];
            let m = m_old.max(top);
            let mut p = [0f32; TILE];
            for j in 0..TILE {
                p[j] = s[j] - m;
            }
            let p = exp8(p);
            let mut sum = 0f32;
            let mut w = [0f32; TILE];
            for j in 0..TILE {
                w[j] = if live[j] { p[j] } else { 0.0 };
                sum += w[j];
            }
            // The output so far was weighted against the old maximum.
            let corr = (m_old - m).exp();
            state[i] = (m, l_old * corr + sum);
            let o = &mut out[i * hd..(i + 1) * hd];
            if corr != 1.0 {
                o.iter_mut().for_each(|x| *x *= corr);
            }
            let mut chunks = o.chunks_exact_mut(TILE);
            let mut c = 0;
            for oc in &mut chunks {
                let mut acc = [0f32; TILE];
                acc.copy_from_slice(oc);
                for (j, &wj) in w.iter().enumerate() {
                    let v = &vt[j * hd + c..j * hd + c + TILE];
                    for e in 0..TILE {
                        acc[e] = fma::<FMA>(wj, v[e], acc[e]);
                    }
                }
                oc.copy_from_slice(&acc);
                c += TILE;
            }
            for (e, x) in chunks.into_remainder().iter_mut().enumerate() {
                for (j, &wj) in w.iter().enumerate() {
                    *x = fma::<FMA>(wj, vt[j * hd + c + e], *x);
                }
            }
        }
    }
    for (o, &(_, l)) in out.chunks_exact_mut(hd).zip(&state) {
        if l > 0.0 {
            let inv = 1.0 / l;
            o.iter_mut().for_each(|x| *x *= inv);
        }
    }
}

/// e^x of 8 lanes at once, for x ≤ 0 (scores less their maximum): Cephes' expf — x = n·ln 2 + r
/// with |r| ≤ ½ln 2, e^r by its degree-6 minimax polynomial, 2^n by the exponent bits. Relative
/// error below 2·10⁻⁷; anything at or below −87 (e⁻⁸⁷ ≈ 1.6·10⁻³⁸: an underflow, or a masked
/// −∞) is 0.
#[inline(always)]
fn exp8(x: [f32; TILE]) -> [f32; TILE] {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let mut out = [0f32; TILE];
    for j in 0..TILE {
        let x = x[j].max(-87.0);
        let n = (x * LOG2E + 0.5).floor();
        let r = x - n * LN2_HI - n * LN2_LO;
        let mut p = 1.987_569_1e-4_f32;
        p = p * r + 1.398_199_9e-3;
        p = p * r + 8.333_452e-3;
        p = p * r + 4.166_579_6e-2;
        p = p * r + 1.666_666_5e-1;
        p = p * r + 0.5;
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
        // multiple of the tile; spans that start and end mid-tile, a window, one key.
        for hd in [64, 96, 128, 256, 20] {
            let (slabs, len) = (3, 53);
            let mut cache = KvCache::new(slabs, hd);
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
            attend(&cache, 1, &rows, scale, &mut out);
            for (i, r) in rows.iter().enumerate() {
                let want = reference(&keys, &vals, r, scale);
                for (a, b) in out[i * hd..(i + 1) * hd].iter().zip(&want) {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "hd {hd} row {i}: {a} vs {b}"
                    );
                }
            }
            // The generic path gives the same figures as the one this CPU takes.
            let (k, v) = cache.slab(1);
            let mut plain = vec![0f32; rows.len() * hd];
            attend_with::<false>(k, v, hd, &rows, scale, &mut plain);
            for (a, b) in out.iter().zip(&plain) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "hd {hd}: {a} vs {b}"
                );
            }
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
