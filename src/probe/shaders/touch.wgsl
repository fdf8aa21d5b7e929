// One invocation adds 1 to the first word of the bound range: dispatch round-trip latency (the
// count proves every dispatch ran, in order) and the ends of the largest buffer (`odai probe
// --gpu-check`), where wgpu zero-fills only the bound range before first use.

@group(0) @binding(0) var<storage, read_write> d: array<u32>;

@compute @workgroup_size(1)
fn main() {
    d[0] = d[0] + 1u;
}
