// Matrix multiply throughput (`odai probe --gpu-check`): C = A·B, n×n row-major, n a multiple of
// the tile. The classic shared-memory tiling with register blocking (as in Volkov & Demmel 2008
// and the CUDA SGEMM tutorials): a {TS}×{TS} workgroup computes a TILE×TILE block of C, each
// invocation a 4×4 patch, stepping through K in slices of KT staged in workgroup memory.
// `{T}` is f32 or f16 (then `{ENABLE}` is `enable f16;`); the host fills in every `{…}`.
{ENABLE}

const TS: u32 = {TS}u;
const TILE: u32 = {TS}u * 4u;
const KT: u32 = 16u;
// Elements of each staged tile every invocation loads: TILE·KT / TS².
const LOADS: u32 = 64u / {TS}u;

struct Params {
    n: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<{T}>;
@group(0) @binding(2) var<storage, read> B: array<{T}>;
@group(0) @binding(3) var<storage, read_write> C: array<{T}>;

// As holds A's block transposed (k-major) so an invocation's four rows are contiguous.
var<workgroup> As: array<{T}, {TILE_KT}>;
var<workgroup> Bs: array<{T}, {TILE_KT}>;

@compute @workgroup_size({TS}, {TS})
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let n = p.n;
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let tid = lid.y * TS + lid.x;
    var acc0 = vec4<{T}>();
    var acc1 = vec4<{T}>();
    var acc2 = vec4<{T}>();
    var acc3 = vec4<{T}>();
    for (var k0 = 0u; k0 < n; k0 += KT) {
        for (var l = 0u; l < LOADS; l++) {
            let e = tid + l * TS * TS;
            let ar = e / KT;
            let ak = e % KT;
            As[ak * TILE + ar] = A[(row0 + ar) * n + k0 + ak];
            let bk = e / TILE;
            let bc = e % TILE;
            Bs[bk * TILE + bc] = B[(k0 + bk) * n + col0 + bc];
        }
        workgroupBarrier();
        for (var k = 0u; k < KT; k++) {
            let ab = k * TILE + lid.y * 4u;
            let bb = k * TILE + lid.x * 4u;
            let bv = vec4<{T}>(Bs[bb], Bs[bb + 1u], Bs[bb + 2u], Bs[bb + 3u]);
            acc0 = fma(vec4<{T}>(As[ab]), bv, acc0);
            acc1 = fma(vec4<{T}>(As[ab + 1u]), bv, acc1);
            acc2 = fma(vec4<{T}>(As[ab + 2u]), bv, acc2);
            acc3 = fma(vec4<{T}>(As[ab + 3u]), bv, acc3);
        }
        workgroupBarrier();
    }
    let r = row0 + lid.y * 4u;
    let c = col0 + lid.x * 4u;
    store(r, c, n, acc0);
    store(r + 1u, c, n, acc1);
    store(r + 2u, c, n, acc2);
    store(r + 3u, c, n, acc3);
}

fn store(r: u32, c: u32, n: u32, v: vec4<{T}>) {
    let o = r * n + c;
    C[o] = v.x;
    C[o + 1u] = v.y;
    C[o + 2u] = v.z;
    C[o + 3u] = v.w;
}
