// The functional check (`odai probe --gpu-check`): float, integer and workgroup work whose every
// result the host recomputes exactly. y = 3x + y (saxpy on small integers, exact in f32), a
// xorshift32 hash of each index (Marsaglia 2003, shifts 13/17/5: integer shifts and xor), and a
// per-workgroup wrapping sum of those hashes through workgroup memory and a barrier.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> h: array<u32>;
@group(0) @binding(3) var<storage, read_write> sums: array<u32>;

var<workgroup> lane: array<u32, 64>;

@compute @workgroup_size(64)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wg: vec3<u32>,
) {
    let i = gid.x;
    y[i] = 3.0 * x[i] + y[i];
    var s = i + 1u;
    s = s ^ (s << 13u);
    s = s ^ (s >> 17u);
    s = s ^ (s << 5u);
    h[i] = s;
    lane[li] = s;
    workgroupBarrier();
    if li == 0u {
        var total = 0u;
        for (var k = 0u; k < 64u; k++) {
            total += lane[k];
        }
        sums[wg.x] = total;
    }
}
