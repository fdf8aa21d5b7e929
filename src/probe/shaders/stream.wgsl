// Device memory bandwidth (`odai probe --gpu-check`): McCalpin's STREAM copy (c = a) and triad
// (a = b + s·c) over vec4<f32> arrays, one element per invocation. A 2-D grid of workgroups
// covers arrays longer than one dimension allows; `row` is the invocations per grid row.
// `{WG}` (the workgroup size) is filled in by the host from the adapter's limits.

struct Params {
    n: u32,
    row: u32,
    s: f32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

// a[i] = (f, f+1, f+2, f+3) with f = i mod 1024 (exact in f32), b = 1, c = 2.
@compute @workgroup_size({WG})
fn fill(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if i >= p.n {
        return;
    }
    let f = f32(i % 1024u);
    a[i] = vec4<f32>(f, f + 1.0, f + 2.0, f + 3.0);
    b[i] = vec4<f32>(1.0);
    c[i] = vec4<f32>(2.0);
}

@compute @workgroup_size({WG})
fn copy(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if i >= p.n {
        return;
    }
    c[i] = a[i];
}

@compute @workgroup_size({WG})
fn triad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if i >= p.n {
        return;
    }
    a[i] = b[i] + p.s * c[i];
}
