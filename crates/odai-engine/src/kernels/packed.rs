//! Weights repacked at load eight rows at a time (after llama.cpp's block_q4_0x8,
//! ggml-cpu/repack.cpp, with our own byte order), for the 32-element 4- and 5-bit types: Q4_0,
//! Q4_1 and Q5_0. Block b of rows 8g..8g+8 holds the eight rows' scales side by side and their
//! nibbles interleaved: byte 32k + 4i + l is byte 4k + l of row i's block, so one 32-byte load,
//! masked, holds elements 4k..4k+4 of all eight rows (low nibbles) and elements 16+4k..16+4k+4
//! (high nibbles). One 4-byte activation broadcast then serves eight rows, the eight row sums
//! come out in the eight lanes of one register, and the eight scales convert in one instruction:
//! about a third of the work per weight of the row-at-a-time kernels (Q4_0 decode 176 → ~390
//! tok/s on SmolLM2-135M, 2 threads).

use super::{
    BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ8_0, BlockQ8_1, BlockQ8K, Disjoint, QK,
    WeightBlock, share_rows,
};

/// Q4_0, eight rows.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ4_0x8 {
    pub d: [u16; 8],
    pub qs: [u8; 128],
}

/// Q4_1, eight rows.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ4_1x8 {
    pub d: [u16; 8],
    pub m: [u16; 8],
    pub qs: [u8; 128],
}

/// Q5_0, eight rows. The fifth bits are regrouped to match the nibbles: bit 2k of byte 4i + l is
/// the fifth bit of row i's element 4k + l, bit 2k + 1 that of element 16 + 4k + l.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ5_0x8 {
    pub d: [u16; 8],
    pub qh: [u8; 32],
    pub qs: [u8; 128],
}

/// Q8_0, eight rows, for CPUs with VNNI (AVX-VNNI or AVX512-VNNI): byte 32k + 4i + l is row i's
/// element 4k + l, stored offset-binary (q + 128) so `vpdpbusd` (unsigned × signed bytes into
/// i32, no 16-bit stage to overflow) takes it as its unsigned side; the +128 comes back through
/// the activations' sums. Without VNNI, Q8_0 stays in rows (maddubs would saturate).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ8_0x8 {
    pub d: [u16; 8],
    pub qs: [u8; 256],
}

impl Packed8 for BlockQ8_0x8 {
    type Row = BlockQ8_0;
    fn pack(rows: [&BlockQ8_0; 8]) -> Self {
        let mut qs = [0u8; 256];
        for (i, r) in rows.iter().enumerate() {
            for k in 0..8 {
                let four = [
                    r.qs[4 * k],
                    r.qs[4 * k + 1],
                    r.qs[4 * k + 2],
                    r.qs[4 * k + 3],
                ];
                let word = u32::from_ne_bytes(four.map(|q| q as u8)) ^ 0x8080_8080;
                qs[32 * k + 4 * i..32 * k + 4 * i + 4].copy_from_slice(&word.to_ne_bytes());
            }
        }
        BlockQ8_0x8 {
            d: rows.map(|r| r.d),
            qs,
        }
    }
    fn row(&self, i: usize) -> BlockQ8_0 {
        BlockQ8_0 {
            d: self.d[i],
            qs: std::array::from_fn(|e| (self.qs[32 * (e / 4) + 4 * i + e % 4] ^ 0x80) as i8),
        }
    }
    fn dot<const C: usize>(w: &[Self], a: [&[BlockQ8_1]; C]) -> [[f32; 8]; C] {
        #[cfg(target_arch = "x86_64")]
        if super::vnni() {
            // SAFETY: AVX2, FMA, F16C and VNNI (kernels::vnni) were detected at run time.
            return unsafe { super::x86::dot_q8_0x8(w, a) };
        }
        dot_scalar(w, a)
    }
}

/// Q4_K, eight rows of one super-block. The nibbles interleave per 32-byte chunk as above
/// (byte 256c + 32k + 4i + l is row i's qs[32c + 4k + l]: low nibbles are sub-block 2c, high
/// nibbles sub-block 2c + 1); the 6-bit scales and mins are unpacked and transposed
/// (`sc[j][i]` is row i's scale of sub-block j), so eight rows' scales load as one vector.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ4Kx8 {
    pub d: [u16; 8],
    pub dmin: [u16; 8],
    pub sc: [[u8; 8]; 8],
    pub mn: [[u8; 8]; 8],
    pub qs: [u8; 1024],
}

impl Packed8 for BlockQ4Kx8 {
    type Row = BlockQ4K;
    fn pack(rows: [&BlockQ4K; 8]) -> Self {
        let mut b = BlockQ4Kx8 {
            d: rows.map(|r| r.d),
            dmin: rows.map(|r| r.dmin),
            sc: [[0; 8]; 8],
            mn: [[0; 8]; 8],
            qs: [0; 1024],
        };
        for (i, r) in rows.iter().enumerate() {
            for j in 0..8 {
                let (s, m) = super::scale_min_k4(j, &r.scales);
                b.sc[j][i] = s;
                b.mn[j][i] = m;
            }
            for c in 0..4 {
                for k in 0..8 {
                    let at = 256 * c + 32 * k + 4 * i;
                    b.qs[at..at + 4].copy_from_slice(&r.qs[32 * c + 4 * k..32 * c + 4 * k + 4]);
                }
            }
        }
        b
    }
    fn row(&self, i: usize) -> BlockQ4K {
        // The inverse of get_scale_min_k4's 12-byte packing.
        let (s, m) = (|j: usize| self.sc[j][i], |j: usize| self.mn[j][i]);
        let mut scales = [0u8; 12];
        for j in 0..4 {
            scales[j] = s(j) | ((s(j + 4) >> 4) << 6);
            scales[j + 4] = m(j) | ((m(j + 4) >> 4) << 6);
            scales[j + 8] = (s(j + 4) & 0x0f) | ((m(j + 4) & 0x0f) << 4);
        }
        BlockQ4K {
            d: self.d[i],
            dmin: self.dmin[i],
            scales,
            qs: std::array::from_fn(|e| {
                let (c, k, l) = (e / 32, (e % 32) / 4, e % 4);
                self.qs[256 * c + 32 * k + 4 * i + l]
            }),
        }
    }
    fn dot<const C: usize>(w: &[Self], a: [&[BlockQ8K]; C]) -> [[f32; 8]; C] {
        #[cfg(target_arch = "x86_64")]
        {
            if super::vnni() {
                // SAFETY: AVX2, FMA, F16C and VNNI (kernels::vnni) were detected at run time.
                return unsafe { super::x86::dot_q4_kx8_vnni(w, a) };
            }
            if super::avx2() {
                // SAFETY: AVX2, FMA and F16C were detected at run time.
                return unsafe { super::x86::dot_q4_kx8(w, a) };
            }
        }
        dot_scalar(w, a)
    }
}

/// A repacked eight-row block type and the row type it came from.
pub trait Packed8: Copy + Send + Sync + 'static {
    type Row: WeightBlock;
    /// Block b of eight rows.
    fn pack(rows: [&Self::Row; 8]) -> Self;
    /// Row i's block, unpacked (the scalar path, dequantization, tests).
    fn row(&self, i: usize) -> Self::Row;
    /// The eight rows against C activation rows, the fastest path this CPU has.
    fn dot<const C: usize>(w: &[Self], a: [&[Act<Self>]; C]) -> [[f32; 8]; C];
}

/// The activation blocks a packed type's rows take.
pub type Act<P> = <<P as Packed8>::Row as WeightBlock>::Act;

/// Interleaves 16 nibble bytes of eight rows (see the module comment).
fn interleave(qs: [&[u8; QK / 2]; 8]) -> [u8; 128] {
    let mut out = [0u8; 128];
    for (i, q) in qs.iter().enumerate() {
        for k in 0..4 {
            out[32 * k + 4 * i..32 * k + 4 * i + 4].copy_from_slice(&q[4 * k..4 * k + 4]);
        }
    }
    out
}

fn deinterleave(qs: &[u8; 128], i: usize) -> [u8; QK / 2] {
    std::array::from_fn(|j| qs[32 * (j / 4) + 4 * i + j % 4])
}

/// The scalar path: each row unpacked and dotted on its own.
fn dot_scalar<P: Packed8, const C: usize>(w: &[P], a: [&[Act<P>]; C]) -> [[f32; 8]; C] {
    std::array::from_fn(|c| {
        std::array::from_fn(|i| {
            let row: Vec<P::Row> = w.iter().map(|b| b.row(i)).collect();
            P::Row::dot_scalar(&row, a[c])
        })
    })
}

macro_rules! packed_dot {
    () => {
        fn dot<const C: usize>(w: &[Self], a: [&[BlockQ8_1]; C]) -> [[f32; 8]; C] {
            #[cfg(target_arch = "x86_64")]
            {
                if super::vnni() {
                    // SAFETY: AVX2, FMA, F16C and VNNI (kernels::vnni) were detected at run time.
                    return unsafe { super::x86::dot_x8_vnni(w, a) };
                }
                if super::avx2() {
                    // SAFETY: AVX2, FMA and F16C were detected at run time.
                    return unsafe { super::x86::dot_x8(w, a) };
                }
            }
            #[cfg(target_arch = "aarch64")]
            {
                if super::dotprod() {
                    // SAFETY: the dot-product extension was detected at run time.
                    return unsafe { super::aarch64::dot_x8_dotprod(w, a) };
                }
                return super::aarch64::dot_x8_neon(w, a);
            }
            #[allow(unreachable_code)]
            dot_scalar(w, a)
        }
    };
}

impl Packed8 for BlockQ4_0x8 {
    type Row = BlockQ4_0;
    fn pack(rows: [&BlockQ4_0; 8]) -> Self {
        BlockQ4_0x8 {
            d: rows.map(|r| r.d),
            qs: interleave(rows.map(|r| &r.qs)),
        }
    }
    fn row(&self, i: usize) -> BlockQ4_0 {
        BlockQ4_0 {
            d: self.d[i],
            qs: deinterleave(&self.qs, i),
        }
    }
    packed_dot!();
}

impl Packed8 for BlockQ4_1x8 {
    type Row = BlockQ4_1;
    fn pack(rows: [&BlockQ4_1; 8]) -> Self {
        BlockQ4_1x8 {
            d: rows.map(|r| r.d),
            m: rows.map(|r| r.m),
            qs: interleave(rows.map(|r| &r.qs)),
        }
    }
    fn row(&self, i: usize) -> BlockQ4_1 {
        BlockQ4_1 {
            d: self.d[i],
            m: self.m[i],
            qs: deinterleave(&self.qs, i),
        }
    }
    packed_dot!();
}

impl Packed8 for BlockQ5_0x8 {
    type Row = BlockQ5_0;
    fn pack(rows: [&BlockQ5_0; 8]) -> Self {
        let mut qh = [0u8; 32];
        for (i, r) in rows.iter().enumerate() {
            let bits = u32::from_le_bytes(r.qh);
            for k in 0..4 {
                for l in 0..4 {
                    let lo = (bits >> (4 * k + l)) & 1;
                    let hi = (bits >> (16 + 4 * k + l)) & 1;
                    qh[4 * i + l] |= ((lo << (2 * k)) | (hi << (2 * k + 1))) as u8;
                }
            }
        }
        BlockQ5_0x8 {
            d: rows.map(|r| r.d),
            qh,
            qs: interleave(rows.map(|r| &r.qs)),
        }
    }
    fn row(&self, i: usize) -> BlockQ5_0 {
        let mut bits = 0u32;
        for k in 0..4 {
            for l in 0..4 {
                let b = u32::from(self.qh[4 * i + l]);
                bits |= ((b >> (2 * k)) & 1) << (4 * k + l);
                bits |= ((b >> (2 * k + 1)) & 1) << (16 + 4 * k + l);
            }
        }
        BlockQ5_0 {
            d: self.d[i],
            qh: bits.to_le_bytes(),
            qs: deinterleave(&self.qs, i),
        }
    }
    packed_dot!();
}

/// `rows` rows (a multiple of 8) of `per_row` blocks, repacked: group g's blocks are
/// `out[g·per_row..(g+1)·per_row]`.
pub fn repack<P: Packed8>(w: &[P::Row], rows: usize, per_row: usize) -> Vec<P> {
    assert!(rows.is_multiple_of(8) && w.len() == rows * per_row);
    let mut out: Vec<P> = Vec::with_capacity(w.len() / 8);
    huge_pages(
        out.as_mut_ptr().cast(),
        out.capacity() * std::mem::size_of::<P>(),
    );
    for g in 0..rows / 8 {
        let group = &w[8 * g * per_row..8 * (g + 1) * per_row];
        for b in 0..per_row {
            out.push(P::pack(std::array::from_fn(|i| &group[i * per_row + b])));
        }
    }
    out
}

/// Asks for transparent huge pages on a fresh buffer before it is filled: a 2 MiB page faults
/// once where 4 KiB pages fault 512 times (page faults were a quarter of load in perf). A hint:
/// kernels without THP, or with it off, ignore it.
fn huge_pages(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: an allocation this function's caller owns; MADV_HUGEPAGE changes no contents.
    unsafe {
        crate::mapped::advise_inside(ptr as usize, len, 2 << 20, libc::MADV_HUGEPAGE)
    };
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

/// Member `id` of `size`'s share of Y = X·Wᵀ for repacked weights (see
/// [`super::matmul_share`]): four activation rows at a time meet each group's unpacked block.
///
/// # Safety
/// As [`super::matmul_share`].
pub unsafe fn matmul_share<P: Packed8>(
    w: &[P],
    rows: usize,
    x: &[Act<P>],
    m: usize,
    y: &Disjoint,
    id: usize,
    size: usize,
) {
    let per_row = w.len() * 8 / rows;
    assert_eq!(
        w.len() * 8,
        rows * per_row,
        "weights are rows/8 groups × blocks"
    );
    assert_eq!(x.len(), m * per_row, "activations are m × blocks per row");
    let mine = share_rows(rows, id, size);
    let act = |t: usize| &x[t * per_row..(t + 1) * per_row];
    for g in mine.start / 8..mine.end.div_ceil(8) {
        let wg = &w[g * per_row..(g + 1) * per_row];
        let r = 8 * g;
        // SAFETY (each `y.range`): this member's rows of one output row; shares are disjoint
        // and whole groups of 8 (share_rows aligns to 16).
        let mut t = 0;
        while t < m {
            if m - t >= 4 {
                let v = P::dot(wg, [act(t), act(t + 1), act(t + 2), act(t + 3)]);
                for (c, vc) in v.iter().enumerate() {
                    unsafe { y.range((t + c) * rows + r..(t + c) * rows + r + 8) }
                        .copy_from_slice(vc);
                }
                t += 4;
            } else {
                let [v] = P::dot(wg, [act(t)]);
                unsafe { y.range(t * rows + r..t * rows + r + 8) }.copy_from_slice(&v);
                t += 1;
            }
        }
    }
}

/// Y = X·Wᵀ for repacked weights on a whole team (see [`matmul_share`]).
pub fn matmul<P: Packed8>(
    w: &[P],
    rows: usize,
    x: &[Act<P>],
    m: usize,
    y: &mut [f32],
    team: &crate::team::Team,
) {
    assert!(rows > 0 && m > 0);
    assert_eq!(y.len(), m * rows);
    let y = Disjoint::new(y);
    let size = team.size();
    // SAFETY: one round, each member its own id.
    team.run(&|id| unsafe { matmul_share(w, rows, x, m, &y, id, size) });
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "x86_64")]
    use super::super::tests::q4_0;
    use super::super::tests::{bytes, close, floats, q4_k, scale};
    use super::*;
    use crate::rng::Rng;
    use half::f16;

    /// Repacking keeps every row (round trip), and the packed kernel (SIMD and scalar) equals
    /// the plain row dot, for one activation row and for four.
    fn check<P: Packed8<Row = R> + std::fmt::Debug, R>(make: impl Fn(&mut Rng) -> R)
    where
        R: WeightBlock<Act = BlockQ8_1> + PartialEq + std::fmt::Debug,
    {
        let mut rng = Rng::new(17);
        let (rows, per_row) = (16, 18);
        let w: Vec<P::Row> = (0..rows * per_row).map(|_| make(&mut rng)).collect();
        let packed = repack::<P>(&w, rows, per_row);
        let xs: Vec<Vec<BlockQ8_1>> = (0..4)
            .map(|_| {
                let x = floats(&mut rng, per_row * QK);
                super::super::quantize_q8_1(&x)
            })
            .collect();
        for g in 0..rows / 8 {
            let wg = &packed[g * per_row..(g + 1) * per_row];
            let all = [&xs[0][..], &xs[1][..], &xs[2][..], &xs[3][..]];
            let (one, four, slow) = (P::dot(wg, [all[0]]), P::dot(wg, all), dot_scalar(wg, all));
            for i in 0..8 {
                let r = 8 * g + i;
                let row = &w[r * per_row..(r + 1) * per_row];
                for (b, orig) in row.iter().enumerate() {
                    assert_eq!(&wg[b].row(i), orig, "row {r} block {b} round trip");
                }
                assert!(close(one[0][i], P::Row::dot_scalar(row, &xs[0])), "row {r}");
                for c in 0..4 {
                    let want = P::Row::dot_scalar(row, &xs[c]);
                    assert!(
                        close(four[c][i], want),
                        "row {r} act {c}: {} vs {want}",
                        four[c][i]
                    );
                    assert!(close(slow[c][i], want), "row {r} act {c} (scalar)");
                }
            }
        }
    }

    /// On a VNNI CPU `dot` takes the VNNI kernel: the plain AVX2 one must still agree with it
    /// (it is what CPUs without VNNI run).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_and_vnni_packed_kernels_agree() {
        fn both<P: super::super::x86::X8<Row = R>, R: WeightBlock<Act = BlockQ8_1>>(
            w: &[P],
            a: &[BlockQ8_1],
        ) {
            if !super::super::avx2() {
                return;
            }
            // SAFETY: AVX2, FMA and F16C were detected.
            let plain = unsafe { super::super::x86::dot_x8(w, [a]) };
            let slow = dot_scalar(w, [a]);
            for i in 0..8 {
                assert!(
                    close(plain[0][i], slow[0][i]),
                    "lane {i}: {} vs {}",
                    plain[0][i],
                    slow[0][i]
                );
            }
            if super::super::vnni() {
                // SAFETY: VNNI (kernels::vnni) was detected too.
                let fast = unsafe { super::super::x86::dot_x8_vnni(w, [a]) };
                assert_eq!(fast, plain, "integer sums, same float steps");
            }
        }
        let mut rng = Rng::new(29);
        let per = 6;
        let x = floats(&mut rng, per * QK);
        let a = super::super::quantize_q8_1(&x);
        let q4 = q4_0(&mut rng, 8 * per);
        both(&repack::<BlockQ4_0x8>(&q4, 8, per), &a);
        let q41 = super::super::tests::q4_1_like(&mut rng, &q4);
        both(&repack::<BlockQ4_1x8>(&q41, 8, per), &a);
        let q5: Vec<BlockQ5_0> = q4
            .iter()
            .map(|b| BlockQ5_0 {
                d: b.d,
                qh: bytes(&mut rng),
                qs: b.qs,
            })
            .collect();
        both(&repack::<BlockQ5_0x8>(&q5, 8, per), &a);
        if super::super::vnni() {
            let qk = q4_k(&mut rng, 8 * 2);
            let packed = repack::<BlockQ4Kx8>(&qk, 8, 2);
            let x = floats(&mut rng, 2 * 256);
            let mut ak = Vec::new();
            super::super::quantize_q8k_into(&x, &mut ak);
            // SAFETY: AVX2, FMA, F16C and VNNI were detected.
            let (plain, fast) = unsafe {
                (
                    super::super::x86::dot_q4_kx8(&packed, [&ak[..]]),
                    super::super::x86::dot_q4_kx8_vnni(&packed, [&ak[..]]),
                )
            };
            assert_eq!(plain, fast, "Q4_K: integer sums, same float steps");
        }
    }

    #[test]
    fn packed_q4_0_equals_the_plain_rows() {
        check::<BlockQ4_0x8, _>(|rng| BlockQ4_0 {
            d: scale(rng),
            qs: bytes(rng),
        });
    }

    #[test]
    fn packed_q4_1_equals_the_plain_rows() {
        check::<BlockQ4_1x8, _>(|rng| BlockQ4_1 {
            d: scale(rng),
            m: f16::from_f32(-0.05 * rng.below(3) as f32).to_bits(),
            qs: bytes(rng),
        });
    }

    #[test]
    fn packed_q4_k_equals_the_plain_rows() {
        let mut rng = Rng::new(23);
        let (rows, per_row) = (16, 3);
        let w = q4_k(&mut rng, rows * per_row);
        let packed = repack::<BlockQ4Kx8>(&w, rows, per_row);
        let xs: Vec<Vec<BlockQ8K>> = (0..4)
            .map(|_| {
                let x = floats(&mut rng, per_row * 256);
                let mut v = Vec::new();
                super::super::quantize_q8k_into(&x, &mut v);
                v
            })
            .collect();
        for g in 0..rows / 8 {
            let wg = &packed[g * per_row..(g + 1) * per_row];
            let all = [&xs[0][..], &xs[1][..], &xs[2][..], &xs[3][..]];
            let (one, four) = (BlockQ4Kx8::dot(wg, [all[0]]), BlockQ4Kx8::dot(wg, all));
            for i in 0..8 {
                let r = 8 * g + i;
                let row = &w[r * per_row..(r + 1) * per_row];
                for (b, orig) in row.iter().enumerate() {
                    assert_eq!(&wg[b].row(i), orig, "row {r} block {b} round trip");
                }
                assert!(
                    close(one[0][i], BlockQ4K::dot_scalar(row, &xs[0])),
                    "row {r}"
                );
                for c in 0..4 {
                    let want = BlockQ4K::dot_scalar(row, &xs[c]);
                    assert!(
                        close(four[c][i], want),
                        "row {r} act {c}: {} vs {want}",
                        four[c][i]
                    );
                }
            }
        }
    }

    #[test]
    fn packed_q8_0_equals_the_plain_rows() {
        check::<BlockQ8_0x8, _>(|rng| BlockQ8_0 {
            d: scale(rng),
            qs: bytes::<32>(rng).map(|b| b as i8),
        });
    }

    #[test]
    fn packed_q5_0_equals_the_plain_rows() {
        check::<BlockQ5_0x8, _>(|rng| BlockQ5_0 {
            d: scale(rng),
            qh: bytes(rng),
            qs: bytes(rng),
        });
    }
}
