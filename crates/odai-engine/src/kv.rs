//! The KV cache: every layer's keys and values for each KV head (a "slab"), in the element type a
//! run asks for — llama.cpp's `-ctk`/`-ctv` types, with its default, f16 — laid out for the tiled
//! attention of [`crate::attention`].
//!
//! Layout, per slab: keys transposed within a tile of [`TILE`] positions (`[tile][dim][lane]`), so
//! a query's scores against a tile are `head_dim` multiply-adds of one 8-lane vector with no
//! horizontal sum; values row by row (`[position][dim]`), so the weighted sum is a multiply-add of
//! each value row into the output. Attention widens one tile of each to f32 per block of queries
//! ([`KvCache::widen_tile`]), so the type changes what a step reads, not the arithmetic after.
//!
//! The quantized types are ggml's blocks (ggml-quants.c, `quantize_row_q8_0`/`_q4_0`): 32
//! consecutive dims of one position share an f16 scale `d`; q8_0 holds round(x/d) with
//! d = max|x|/127, q4_0 holds min(15, trunc(x/d + 8.5)) with d = (the x of largest |x|)/−8, so
//! each element dequantizes to q·d (q8_0) or (q − 8)·d (q4_0) exactly as llama.cpp's cache
//! would hold it. Keys keep the tile transposition: q8_0 values at the f16 cache's index, q4_0
//! values two lanes a byte (`[tile][dim][4]`: lane j in byte j mod 4, low nibble for lanes 0–3),
//! scales `[tile][block][lane]`; values keep ggml's own block layout, scales `[position][block]`.
//!
//! A quantized side is rotated first, as llama.cpp 0.3.36 rotates it (llama-kv-cache.cpp,
//! `attn_rot_k`/`attn_rot_v`; llama-graph.cpp `build_attn`): an orthonormal Walsh–Hadamard
//! transform over blocks of the head (keys: the largest power of two from 64 that divides the
//! head; values: 64), so a channel's outlier is spread over its block before 32 elements share a
//! 4- or 8-bit scale. Rotating both q and k leaves q·k unchanged, and the transform is its own
//! inverse, so attention rotates each query in ([`KvCache::rot_k`]) and its output back out
//! ([`KvCache::rot_v`]). Measured on SmolLM2-135M (KL divergence against the f16 cache, 20
//! windows of 512 tokens of Moby-Dick): q4_0 0.168 without the rotation, 0.064 with it (llama.cpp
//! 0.060); q8_0 0.0048 and 0.0042 (llama.cpp 0.0042).

use half::f16;
use serde::{Deserialize, Serialize};

/// Key positions per tile: one 8-lane vector of scores (AVX2's f32×8; two NEON registers).
pub const TILE: usize = 8;

/// Elements per quantized block (ggml's QK8_0 and QK4_0).
pub const BLOCK: usize = 32;

/// The element type of the keys or the values, named as llama.cpp names them.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum KvType {
    #[serde(rename = "f32")]
    F32,
    /// llama.cpp's default, and odai's.
    #[default]
    #[serde(rename = "f16")]
    F16,
    #[serde(rename = "q8_0")]
    Q8_0,
    #[serde(rename = "q4_0")]
    Q4_0,
}

impl KvType {
    pub const ALL: [KvType; 4] = [KvType::F32, KvType::F16, KvType::Q8_0, KvType::Q4_0];

    pub fn name(self) -> &'static str {
        match self {
            KvType::F32 => "f32",
            KvType::F16 => "f16",
            KvType::Q8_0 => "q8_0",
            KvType::Q4_0 => "q4_0",
        }
    }

    /// Parses a name as `-ctk` takes it (case-insensitive).
    pub fn parse(s: &str) -> Result<KvType, String> {
        KvType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown KV cache type {s:?}: choose one of {}",
                    KvType::ALL.map(KvType::name).join(", ")
                )
            })
    }

    /// Bytes `n` elements take (`n` a multiple of [`BLOCK`] for the quantized types): 4 and 2
    /// each for f32 and f16; a 2-byte scale and 32 or 16 bytes per block of 32 for q8_0 and q4_0.
    pub fn bytes(self, n: u64) -> u64 {
        match self {
            KvType::F32 => 4 * n,
            KvType::F16 => 2 * n,
            KvType::Q8_0 => n.div_ceil(BLOCK as u64) * 34,
            KvType::Q4_0 => n.div_ceil(BLOCK as u64) * 18,
        }
    }

    fn quantized(self) -> bool {
        matches!(self, KvType::Q8_0 | KvType::Q4_0)
    }
}

impl std::fmt::Display for KvType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The keys' type and the values' (`-ctk`, `-ctv`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KvTypes {
    pub k: KvType,
    pub v: KvType,
}

impl KvTypes {
    pub fn both(t: KvType) -> KvTypes {
        KvTypes { k: t, v: t }
    }

    /// Bytes one position takes in one slab: a key and a value of `head_dim` elements.
    pub fn bytes_per_slab_position(self, head_dim: u64) -> u64 {
        self.k.bytes(head_dim) + self.v.bytes(head_dim)
    }

    /// `TYPE` (keys and values) or `K/V` (`q8_0/f16`), as [`KvTypes::label`] writes them.
    pub fn parse(s: &str) -> Result<KvTypes, String> {
        match s.split_once('/') {
            None => Ok(KvTypes::both(KvType::parse(s)?)),
            Some((k, v)) => Ok(KvTypes {
                k: KvType::parse(k)?,
                v: KvType::parse(v)?,
            }),
        }
    }

    /// `f16`, or `q8_0/f16` where keys and values differ.
    pub fn label(self) -> String {
        if self.k == self.v {
            self.k.name().into()
        } else {
            format!("{}/{}", self.k, self.v)
        }
    }
}

/// One side's elements, by type (per slab `cap` positions, laid out as the module says).
enum Store {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Q8 { q: Vec<i8>, d: Vec<f16> },
    Q4 { q: Vec<u8>, d: Vec<f16> },
}

impl Store {
    fn new(t: KvType) -> Store {
        match t {
            KvType::F32 => Store::F32(Vec::new()),
            KvType::F16 => Store::F16(Vec::new()),
            KvType::Q8_0 => Store::Q8 {
                q: Vec::new(),
                d: Vec::new(),
            },
            KvType::Q4_0 => Store::Q4 {
                q: Vec::new(),
                d: Vec::new(),
            },
        }
    }

    /// Keeps each slab's first `old` positions in room for `new` (`per` elements a position).
    fn grow(&mut self, slabs: usize, old: usize, new: usize, hd: usize) {
        fn regrow<T: Copy + Default>(v: &mut Vec<T>, slabs: usize, old: usize, new: usize) {
            // Whole tiles keep their layout: a slab's first `old` elements are its first tiles.
            let mut grown = vec![T::default(); slabs * new];
            for s in 0..slabs {
                grown[s * new..s * new + old].copy_from_slice(&v[s * old..(s + 1) * old]);
            }
            *v = grown;
        }
        let blocks = hd / BLOCK;
        match self {
            Store::F32(v) => regrow(v, slabs, old * hd, new * hd),
            Store::F16(v) => regrow(v, slabs, old * hd, new * hd),
            Store::Q8 { q, d } => {
                regrow(q, slabs, old * hd, new * hd);
                regrow(d, slabs, old * blocks, new * blocks);
            }
            Store::Q4 { q, d } => {
                regrow(q, slabs, old * hd / 2, new * hd / 2);
                regrow(d, slabs, old * blocks, new * blocks);
            }
        }
    }
}

/// ggml's q8_0 block: the scale and the 32 values (`quantize_row_q8_0`; its SIMD paths round
/// to nearest, ties to even).
fn q8_block(x: &[f32]) -> (f16, [i8; BLOCK]) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0i8; BLOCK];
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v * id).round_ties_even() as i8;
    }
    (f16::from_f32(d), q)
}

/// ggml's q4_0 block (`quantize_row_q4_0_ref`): the scale and the 32 values, 0..=15 each (the
/// stored nibble; the value is nibble − 8).
fn q4_block(x: &[f32]) -> (f16, [u8; BLOCK]) {
    // The element of largest magnitude, with its sign: d maps it to −8 exactly.
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0u8; BLOCK];
    for (q, &v) in q.iter_mut().zip(x) {
        // `as i8` truncates toward zero (and saturates), as the C cast.
        *q = ((v * id + 8.5) as i8).min(15) as u8;
    }
    (f16::from_f32(d), q)
}

/// The orthonormal Walsh–Hadamard transform of `x` (its length a power of two), in place: the
/// butterflies of Sylvester's construction, scaled by 1/√n, so applying it twice gives `x` back.
pub(crate) fn hadamard(x: &mut [f32]) {
    let n = x.len();
    debug_assert!(n.is_power_of_two());
    let mut h = 1;
    while h < n {
        for i in (0..n).step_by(2 * h) {
            for j in i..i + h {
                let (a, b) = (x[j], x[j + h]);
                x[j] = a + b;
                x[j + h] = a - b;
            }
        }
        h *= 2;
    }
    let scale = 1.0 / (n as f32).sqrt();
    x.iter_mut().for_each(|v| *v *= scale);
}

/// `x` rotated block by block (`block` elements each; 0: left as it is).
pub(crate) fn rotate(x: &mut [f32], block: usize) {
    if block > 0 {
        x.chunks_exact_mut(block).for_each(hadamard);
    }
}

/// llama.cpp's rotation blocks for a head of `hd` (0: none): a quantized side of a head that is
/// a multiple of 64; keys over the largest power of two from 64 that divides the head, values
/// over 64.
fn rotations(types: KvTypes, hd: usize) -> (usize, usize) {
    let fits = hd.is_multiple_of(64);
    let k = if types.k.quantized() && fits {
        let mut n = 64;
        while hd.is_multiple_of(2 * n) {
            n *= 2;
        }
        n
    } else {
        0
    };
    let v = if types.v.quantized() && fits { 64 } else { 0 };
    (k, v)
}

/// The largest head a quantized cache takes (Gemma 3's is 256): a tile's scales widen on the
/// stack.
const MAX_HEAD: usize = 512;

/// Every layer's keys and values, for each KV head (a slab): `cap` positions, a multiple of
/// [`TILE`].
pub struct KvCache {
    k: Store,
    v: Store,
    types: KvTypes,
    /// Rotation blocks of the keys and values (0: not rotated).
    rot: (usize, usize),
    cap: usize,
    hd: usize,
    slabs: usize,
}

impl KvCache {
    /// An empty cache of `slabs` slabs of `head_dim`-element keys and values. The quantized
    /// types need `head_dim` a multiple of 32 (their block), as llama.cpp's do.
    pub fn new(slabs: usize, head_dim: usize, types: KvTypes) -> Result<KvCache, String> {
        for (side, t) in [("keys", types.k), ("values", types.v)] {
            if t.quantized() && (!head_dim.is_multiple_of(BLOCK) || head_dim > MAX_HEAD) {
                return Err(format!(
                    "a {t} KV cache needs the head size a multiple of {BLOCK} up to {MAX_HEAD}, \
                     and this model's is {head_dim}: choose f16 or f32 for the {side}"
                ));
            }
        }
        Ok(KvCache {
            k: Store::new(types.k),
            v: Store::new(types.v),
            types,
            rot: rotations(types, head_dim),
            cap: 0,
            hd: head_dim,
            slabs,
        })
    }

    pub fn types(&self) -> KvTypes {
        self.types
    }

    pub fn head_dim(&self) -> usize {
        self.hd
    }

    /// The block the keys are rotated over (0: not rotated): a query must be rotated alike.
    pub fn rot_k(&self) -> usize {
        self.rot.0
    }

    /// The block the values are rotated over (0: not rotated): attention's output must be
    /// rotated back alike.
    pub fn rot_v(&self) -> usize {
        self.rot.1
    }

    /// Positions it holds room for.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Bytes it holds.
    pub fn bytes(&self) -> u64 {
        (self.slabs * self.cap) as u64 * self.types.bytes_per_slab_position(self.hd as u64)
    }

    /// Makes room for `cap` positions (rounded up to whole tiles), keeping what it holds.
    pub fn grow(&mut self, cap: usize) {
        let cap = cap.div_ceil(TILE) * TILE;
        if cap <= self.cap {
            return;
        }
        self.k.grow(self.slabs, self.cap, cap, self.hd);
        self.v.grow(self.slabs, self.cap, cap, self.hd);
        self.cap = cap;
    }

    /// Writes the key and value of position `pos` of `slab`, in the cache's types (f16 rounded
    /// to nearest, ties to even: F16C's and ggml's rounding).
    pub fn store(&mut self, slab: usize, pos: usize, k: &[f32], v: &[f32]) {
        let (hd, cap) = (self.hd, self.cap);
        let (mut kr, mut vr) = ([0f32; MAX_HEAD], [0f32; MAX_HEAD]);
        let k = if self.rot.0 > 0 {
            kr[..hd].copy_from_slice(&k[..hd]);
            rotate(&mut kr[..hd], self.rot.0);
            &kr[..hd]
        } else {
            &k[..hd]
        };
        let v = if self.rot.1 > 0 {
            vr[..hd].copy_from_slice(&v[..hd]);
            rotate(&mut vr[..hd], self.rot.1);
            &vr[..hd]
        } else {
            &v[..hd]
        };
        let (tile, lane) = (pos / TILE, pos % TILE);
        // Keys: element d of this position at `[tile][d][lane]`.
        let at = slab * cap * hd + tile * TILE * hd;
        let blocks = hd / BLOCK;
        let scales = slab * cap * blocks + tile * TILE * blocks;
        match &mut self.k {
            Store::F32(s) => k
                .iter()
                .enumerate()
                .for_each(|(d, &x)| s[at + d * TILE + lane] = x),
            Store::F16(s) => k
                .iter()
                .enumerate()
                .for_each(|(d, &x)| s[at + d * TILE + lane] = f16::from_f32(x)),
            Store::Q8 { q, d } => {
                for (b, x) in k.chunks_exact(BLOCK).enumerate() {
                    let (scale, vals) = q8_block(x);
                    d[scales + b * TILE + lane] = scale;
                    for (i, &v) in vals.iter().enumerate() {
                        q[at + (b * BLOCK + i) * TILE + lane] = v;
                    }
                }
            }
            Store::Q4 { q, d } => {
                let at = at / 2;
                let (byte, shift) = (lane % 4, 4 * (lane / 4));
                for (b, x) in k.chunks_exact(BLOCK).enumerate() {
                    let (scale, vals) = q4_block(x);
                    d[scales + b * TILE + lane] = scale;
                    for (i, &v) in vals.iter().enumerate() {
                        let cell = &mut q[at + (b * BLOCK + i) * 4 + byte];
                        *cell = (*cell & !(0xF << shift)) | (v << shift);
                    }
                }
            }
        }
        // Values: the position's row.
        let row = (slab * cap + pos) * hd;
        let scales = (slab * cap + pos) * blocks;
        match &mut self.v {
            Store::F32(s) => s[row..row + hd].copy_from_slice(v),
            Store::F16(s) => {
                use half::slice::HalfFloatSliceExt;
                s[row..row + hd].convert_from_f32_slice(v);
            }
            Store::Q8 { q, d } => {
                for (b, x) in v.chunks_exact(BLOCK).enumerate() {
                    let (scale, vals) = q8_block(x);
                    d[scales + b] = scale;
                    q[row + b * BLOCK..row + (b + 1) * BLOCK].copy_from_slice(&vals);
                }
            }
            Store::Q4 { q, d } => {
                let row = row / 2;
                for (b, x) in v.chunks_exact(BLOCK).enumerate() {
                    let (scale, vals) = q4_block(x);
                    d[scales + b] = scale;
                    // ggml's block: byte i holds element i (low nibble) and i + 16 (high).
                    for i in 0..BLOCK / 2 {
                        q[row + b * BLOCK / 2 + i] = vals[i] | (vals[i + BLOCK / 2] << 4);
                    }
                }
            }
        }
    }

    /// Tile `tile` of `slab` widened to f32: keys into `kt` (`[dim][lane]`), values into `vt`
    /// (`[lane][dim]`). `f16s` converts f16 to f32 (the caller's SIMD path); the rest is plain
    /// code the caller's target features vectorise (it is inlined into each kernel).
    #[inline(always)]
    pub(crate) fn widen_tile(
        &self,
        slab: usize,
        tile: usize,
        kt: &mut [f32],
        vt: &mut [f32],
        f16s: impl Fn(&[f16], &mut [f32]),
    ) {
        let (hd, cap) = (self.hd, self.cap);
        let n = TILE * hd;
        let (kt, vt) = (&mut kt[..n], &mut vt[..n]);
        // Both sides' tile starts at the same element: TILE positions of hd each.
        let at = slab * cap * hd + tile * n;
        let blocks = hd / BLOCK;
        let scales = (slab * cap + tile * TILE) * blocks;
        let mut ds = [0f32; TILE * MAX_HEAD / BLOCK];
        match &self.k {
            Store::F32(s) => kt.copy_from_slice(&s[at..at + n]),
            Store::F16(s) => f16s(&s[at..at + n], kt),
            Store::Q8 { q, d } => {
                let ds = &mut ds[..TILE * blocks];
                f16s(&d[scales..scales + TILE * blocks], ds);
                let q = &q[at..at + n];
                for (dim, (out, q)) in kt
                    .chunks_exact_mut(TILE)
                    .zip(q.chunks_exact(TILE))
                    .enumerate()
                {
                    let s = &ds[dim / BLOCK * TILE..][..TILE];
                    for j in 0..TILE {
                        out[j] = f32::from(q[j]) * s[j];
                    }
                }
            }
            Store::Q4 { q, d } => {
                let ds = &mut ds[..TILE * blocks];
                f16s(&d[scales..scales + TILE * blocks], ds);
                let q = &q[at / 2..(at + n) / 2];
                for (dim, (out, q)) in kt.chunks_exact_mut(TILE).zip(q.chunks_exact(4)).enumerate()
                {
                    let s = &ds[dim / BLOCK * TILE..][..TILE];
                    for j in 0..TILE {
                        let nib = (q[j % 4] >> (4 * (j / 4))) & 0xF;
                        out[j] = (i32::from(nib) - 8) as f32 * s[j];
                    }
                }
            }
        }
        match &self.v {
            Store::F32(s) => vt.copy_from_slice(&s[at..at + n]),
            Store::F16(s) => f16s(&s[at..at + n], vt),
            Store::Q8 { q, d } => {
                let ds = &mut ds[..TILE * blocks];
                f16s(&d[scales..scales + TILE * blocks], ds);
                for ((out, q), s) in vt
                    .chunks_exact_mut(BLOCK)
                    .zip(q[at..at + n].chunks_exact(BLOCK))
                    .zip(ds.iter())
                {
                    for i in 0..BLOCK {
                        out[i] = f32::from(q[i]) * s;
                    }
                }
            }
            Store::Q4 { q, d } => {
                let ds = &mut ds[..TILE * blocks];
                f16s(&d[scales..scales + TILE * blocks], ds);
                for ((out, q), s) in vt
                    .chunks_exact_mut(BLOCK)
                    .zip(q[at / 2..(at + n) / 2].chunks_exact(BLOCK / 2))
                    .zip(ds.iter())
                {
                    for i in 0..BLOCK / 2 {
                        out[i] = (i32::from(q[i] & 0xF) - 8) as f32 * s;
                        out[i + BLOCK / 2] = (i32::from(q[i] >> 4) - 8) as f32 * s;
                    }
                }
            }
        }
    }
}

/// `x` as a cache of type `t` holds it, read back as attention sees it: rotated, stored, read
/// back and rotated back (`rot`: the block, 0 for none) (tests).
#[cfg(test)]
pub(crate) fn held(t: KvType, x: &[f32], rot: usize) -> Vec<f32> {
    let mut r = x.to_vec();
    rotate(&mut r, rot);
    let mut out = stored(t, &r);
    rotate(&mut out, rot);
    out
}

/// `x` stored in type `t` and read back, as a tile widens it (tests).
#[cfg(test)]
pub(crate) fn stored(t: KvType, x: &[f32]) -> Vec<f32> {
    match t {
        KvType::F32 => x.to_vec(),
        KvType::F16 => x.iter().map(|v| f16::from_f32(*v).to_f32()).collect(),
        KvType::Q8_0 => x
            .chunks(BLOCK)
            .flat_map(|b| {
                let (d, q) = q8_block(b);
                q.map(|q| f32::from(q) * d.to_f32())
            })
            .collect(),
        KvType::Q4_0 => x
            .chunks(BLOCK)
            .flat_map(|b| {
                let (d, q) = q4_block(b);
                q.map(|q| (i32::from(q) - 8) as f32 * d.to_f32())
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_types_parse_by_llama_cpps_names_and_say_the_choices() {
        for t in KvType::ALL {
            assert_eq!(KvType::parse(t.name()), Ok(t));
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", t.name())
            );
        }
        assert_eq!(KvType::parse("Q8_0"), Ok(KvType::Q8_0));
        assert_eq!(
            KvType::parse("q5_1").unwrap_err(),
            "unknown KV cache type \"q5_1\": choose one of f32, f16, q8_0, q4_0"
        );
        assert_eq!(KvType::default(), KvType::F16);
    }

    #[test]
    fn sizes_follow_ggml_blocks() {
        // The 1B Llama's head (64 dims): llama.cpp's f16 cache 128 bytes a key, q8_0 68, q4_0 36.
        assert_eq!(KvType::F32.bytes(64), 256);
        assert_eq!(KvType::F16.bytes(64), 128);
        assert_eq!(KvType::Q8_0.bytes(64), 68);
        assert_eq!(KvType::Q4_0.bytes(64), 36);
        let t = KvTypes {
            k: KvType::Q8_0,
            v: KvType::F16,
        };
        assert_eq!(t.bytes_per_slab_position(64), 68 + 128);
        assert_eq!(t.label(), "q8_0/f16");
        assert_eq!(KvTypes::both(KvType::Q4_0).label(), "q4_0");
        assert_eq!(KvTypes::parse("q8_0/f16"), Ok(t));
        assert_eq!(KvTypes::parse("q4_0"), Ok(KvTypes::both(KvType::Q4_0)));
        assert!(KvTypes::parse("q8_0/bf16").is_err());
    }

    #[test]
    fn the_rotation_is_orthonormal_and_its_own_inverse_and_blocks_follow_llama_cpp() {
        let x: Vec<f32> = (0..128).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        let mut y = x.clone();
        rotate(&mut y, 64);
        let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>();
        assert!((norm(&x) - norm(&y)).abs() < 1e-3 * norm(&x));
        // One outlier channel spreads over its whole block: what makes a shared scale fit.
        let mut spike = vec![0f32; 64];
        spike[5] = 8.0;
        hadamard(&mut spike);
        assert!(
            spike.iter().all(|v| (v.abs() - 1.0).abs() < 1e-6),
            "{spike:?}"
        );
        rotate(&mut y, 64);
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 1e-5);
        }
        let q8 = KvTypes::both(KvType::Q8_0);
        assert_eq!(rotations(q8, 64), (64, 64));
        assert_eq!(rotations(q8, 128), (128, 64));
        assert_eq!(rotations(q8, 256), (256, 64));
        // A head that is no multiple of 64 (phi3's 96) is not rotated, nor is an f16 side.
        assert_eq!(rotations(q8, 96), (0, 0));
        let mixed = KvTypes {
            k: KvType::Q4_0,
            v: KvType::F16,
        };
        assert_eq!(rotations(mixed, 128), (128, 0));
        assert_eq!(rotations(KvTypes::default(), 128), (0, 0));
    }

    #[test]
    fn blocks_round_as_ggml_does() {
        let x: Vec<f32> = (0..32).map(|i| (i as f32 - 12.5) * 0.37).collect();
        let (d, q) = q8_block(&x);
        // max |x| = 18.5·0.37 at i = 31 → 127.
        assert_eq!(q[31], 127);
        assert_eq!(d, f16::from_f32(18.5 * 0.37 / 127.0));
        for (v, q) in x.iter().zip(q) {
            assert!((f32::from(q) * d.to_f32() - v).abs() <= d.to_f32() * 0.51);
        }
        let (d, q) = q4_block(&x);
        // The largest magnitude (+6.845) maps to −8, stored 0; the other end clamps at 15.
        assert_eq!(q[31], 0);
        assert_eq!(d, f16::from_f32(18.5 * 0.37 / -8.0));
        assert!(q.iter().all(|&n| n <= 15));
        for (v, q) in x.iter().zip(q) {
            assert!(((i32::from(q) - 8) as f32 * d.to_f32() - v).abs() <= d.to_f32().abs() * 0.51);
        }
        // All zeros: a zero scale, every value the midpoint (q8_0's 0, q4_0's 8).
        assert_eq!(q8_block(&[0.0; 32]), (f16::ZERO, [0; 32]));
        assert_eq!(q4_block(&[0.0; 32]), (f16::ZERO, [8; 32]));
    }

    /// What a tile widens to is what was stored, dequantized: keys transposed, values by row,
    /// for every type, after the cache grew past what it held.
    #[test]
    fn a_tile_widens_to_what_was_stored() {
        let hd = 64;
        let key = |p: usize, d: usize| ((p * 7 + d * 3) % 23) as f32 * 0.25 - 2.5;
        let val = |p: usize, d: usize| ((p * 5 + d * 11) % 19) as f32 * -0.3 + 2.0;
        for t in KvType::ALL {
            let mut c = KvCache::new(3, hd, KvTypes::both(t)).unwrap();
            c.grow(8);
            for p in 0..20 {
                c.grow(p + 1);
                let (k, v): (Vec<f32>, Vec<f32>) = (0..hd).map(|d| (key(p, d), val(p, d))).unzip();
                c.store(2, p, &k, &v);
            }
            assert_eq!(c.cap(), 24);
            let (mut kt, mut vt) = (vec![0f32; TILE * hd], vec![0f32; TILE * hd]);
            c.widen_tile(2, 1, &mut kt, &mut vt, |a, b| {
                a.iter()
                    .zip(b.iter_mut())
                    .for_each(|(a, b)| *b = a.to_f32());
            });
            // Each position's key and value, as the type holds them (rotated, where quantized:
            // 64-dim heads rotate keys and values over 64).
            let rot = if t.quantized() { 64 } else { 0 };
            assert_eq!((c.rot_k(), c.rot_v()), (rot, rot));
            let held = |x: Vec<f32>| {
                let mut r = x;
                rotate(&mut r, rot);
                stored(t, &r)
            };
            for lane in 0..TILE {
                let p = TILE + lane;
                let k = held((0..hd).map(|d| key(p, d)).collect());
                let v = held((0..hd).map(|d| val(p, d)).collect());
                for d in 0..hd {
                    assert_eq!(kt[d * TILE + lane], k[d], "{t} key {p} dim {d}");
                    assert_eq!(vt[lane * hd + d], v[d], "{t} value {p} dim {d}");
                }
            }
        }
        assert_eq!(
            KvCache::new(1, 20, KvTypes::both(KvType::Q8_0))
                .err()
                .unwrap(),
            "a q8_0 KV cache needs the head size a multiple of 32 up to 512, and this model's \
             is 20: choose f16 or f32 for the keys"
        );
    }
}
