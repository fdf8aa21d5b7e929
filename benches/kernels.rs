//! Quantized matrix kernels (crates/odai-engine/src/kernels) at SmolLM2-135M's ffn_up shape: decode (m = 1,
//! one matrix-vector product per weight) and prefill (m = 64 activation rows against the same
//! weights), per block type, row by row and repacked eight rows at a time (kernels/packed.rs),
//! on a team of 1 and 2 threads; candle's quantized matmul on the same shape for the baseline.
//! Speed targets live here, not in tests.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use half::f16;
use odai::engine::kernels::packed::{self, Packed8};
use odai::engine::kernels::{
    self, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8_0, QK, QK_K, WeightBlock,
};
use odai::engine::team::Team;

/// ffn_down's row length would do as well; ffn_up of SmolLM2-135M: 1536 rows of 576. K-quants
/// need rows of whole 256-element super-blocks: they use 1536 rows of 1536 (a 1B model's shape
/// class).
const ROWS: usize = 1536;
const COLS: usize = 576;
const COLS_K: usize = 1536;
const PREFILL: usize = 64;

fn activations(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

fn byte(i: usize, j: usize) -> u8 {
    (i * 31 + j * 7) as u8
}

fn bench_type<B: WeightBlock>(c: &mut Criterion, name: &str, w: &[B], cols: usize) {
    let mut g = c.benchmark_group(format!("matmul_{name}"));
    let mut y = vec![0f32; ROWS * PREFILL];
    let x1 = B::quantize_act(&activations(cols, 1));
    let xm = B::quantize_act(&activations(cols * PREFILL, 2));
    for threads in [1, 2] {
        let team = Team::new(threads);
        g.throughput(Throughput::Bytes(std::mem::size_of_val(w) as u64));
        g.bench_with_input(BenchmarkId::new("decode_m1", threads), &threads, |b, _| {
            b.iter(|| kernels::matvec(w, ROWS, &x1, &mut y[..ROWS], &team))
        });
        g.throughput(Throughput::Elements(PREFILL as u64));
        g.bench_with_input(
            BenchmarkId::new("prefill_m64", threads),
            &threads,
            |b, _| b.iter(|| kernels::matmul(w, ROWS, &xm, PREFILL, &mut y, &team)),
        );
    }
    g.finish();
}

/// The same matrix repacked eight rows at a time (what odai's engine runs for this type).
fn bench_packed<P: Packed8>(c: &mut Criterion, name: &str, w: &[P::Row], cols: usize) {
    let per = cols / <P::Row as WeightBlock>::ELEMS;
    let w = packed::repack::<P>(w, ROWS, per);
    let mut g = c.benchmark_group(format!("packed_{name}"));
    let mut y = vec![0f32; ROWS * PREFILL];
    let x1 = P::Row::quantize_act(&activations(cols, 1));
    let xm = P::Row::quantize_act(&activations(cols * PREFILL, 2));
    for threads in [1, 2] {
        let team = Team::new(threads);
        g.throughput(Throughput::Bytes(std::mem::size_of_val(&w[..]) as u64));
        g.bench_with_input(BenchmarkId::new("decode_m1", threads), &threads, |b, _| {
            b.iter(|| packed::matmul(&w, ROWS, &x1, 1, &mut y[..ROWS], &team))
        });
        g.throughput(Throughput::Elements(PREFILL as u64));
        g.bench_with_input(
            BenchmarkId::new("prefill_m64", threads),
            &threads,
            |b, _| b.iter(|| packed::matmul(&w, ROWS, &xm, PREFILL, &mut y, &team)),
        );
    }
    g.finish();
}

fn kernels(c: &mut Criterion) {
    let blocks = ROWS * COLS / QK;
    let w4: Vec<BlockQ4_0> = (0..blocks)
        .map(|i| BlockQ4_0 {
            d: f16::from_f32(0.02).to_bits(),
            qs: std::array::from_fn(|j| byte(i, j)),
        })
        .collect();
    bench_type(c, "q4_0", &w4, COLS);
    bench_packed::<packed::BlockQ4_0x8>(c, "q4_0x8", &w4, COLS);
    let w41: Vec<BlockQ4_1> = w4
        .iter()
        .map(|b| BlockQ4_1 {
            d: b.d,
            m: f16::from_f32(-0.1).to_bits(),
            qs: b.qs,
        })
        .collect();
    bench_type(c, "q4_1", &w41, COLS);
    bench_packed::<packed::BlockQ4_1x8>(c, "q4_1x8", &w41, COLS);
    let w5: Vec<BlockQ5_0> = w4
        .iter()
        .enumerate()
        .map(|(i, b)| BlockQ5_0 {
            d: b.d,
            qh: std::array::from_fn(|j| byte(i, j + 3)),
            qs: b.qs,
        })
        .collect();
    bench_type(c, "q5_0", &w5, COLS);
    bench_packed::<packed::BlockQ5_0x8>(c, "q5_0x8", &w5, COLS);
    let w8: Vec<BlockQ8_0> = kernels::quantize_q8_0(&activations(ROWS * COLS, 9));
    bench_type(c, "q8_0", &w8, COLS);
    // Repacked Q8_0 runs on AVX-VNNI; elsewhere this measures the scalar fallback.
    bench_packed::<packed::BlockQ8_0x8>(c, "q8_0x8", &w8, COLS);
    let supers = ROWS * COLS_K / QK_K;
    let wk4: Vec<BlockQ4K> = (0..supers)
        .map(|i| BlockQ4K {
            d: f16::from_f32(0.002).to_bits(),
            dmin: f16::from_f32(0.001).to_bits(),
            scales: std::array::from_fn(|j| byte(i, j)),
            qs: std::array::from_fn(|j| byte(i, j + 1)),
        })
        .collect();
    bench_type(c, "q4_k", &wk4, COLS_K);
    bench_packed::<packed::BlockQ4Kx8>(c, "q4_kx8", &wk4, COLS_K);
    let wk6: Vec<BlockQ6K> = (0..supers)
        .map(|i| BlockQ6K {
            ql: std::array::from_fn(|j| byte(i, j)),
            qh: std::array::from_fn(|j| byte(i, j + 5)),
            scales: std::array::from_fn(|j| byte(i, j) as i8 / 4),
            d: f16::from_f32(0.002).to_bits(),
        })
        .collect();
    bench_type(c, "q6_k", &wk6, COLS_K);
    // The same shape through candle's quantized matmul (the engine for what odai's own path
    // does not run), for the baseline: weights quantized by candle from similar floats.
    {
        use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
        use candle_core::{Device, Module, Tensor};
        let dev = Device::Cpu;
        let wf = Tensor::from_vec(activations(ROWS * COLS, 5), (ROWS, COLS), &dev).unwrap();
        let x = Tensor::from_vec(activations(COLS, 1), (1, COLS), &dev).unwrap();
        let mut g = c.benchmark_group("candle_matvec_decode_m1");
        for (name, dtype) in [
            ("q4_0", GgmlDType::Q4_0),
            ("q4_1", GgmlDType::Q4_1),
            ("q8_0", GgmlDType::Q8_0),
        ] {
            let mm = QMatMul::from_qtensor(QTensor::quantize(&wf, dtype).unwrap()).unwrap();
            g.bench_function(name, |b| b.iter(|| mm.forward(&x).unwrap()));
        }
        g.finish();
    }
    c.bench_function("quantize_q8_1_576", |b| {
        let x = activations(COLS, 3);
        let mut out = Vec::new();
        b.iter(|| kernels::quantize_q8_1_into(&x, &mut out))
    });
}

/// Tiled attention (crates/odai-engine/src/attention.rs) at the 1B Llama's head shape (64-dim
/// heads, four query heads per KV head): a decode step's four rows, and a prefill block's 32
/// rows, over a context of 512, 2,048 and 4,096 positions, one thread, for each KV cache type
/// (`f16/rows4/2048`). Throughput is the cache's bytes (keys and values) each call reads: the
/// figure to hold against the machine's memory bandwidth at depth.
fn attention(c: &mut Criterion) {
    use odai::engine::attention::{self, Row};
    use odai::engine::kv::{KvCache, KvType, KvTypes};
    const HD: usize = 64;
    let mut g = c.benchmark_group("attention");
    for t in [KvType::F32, KvType::F16, KvType::Q8_0, KvType::Q4_0] {
        for depth in [512, 2048, 4096] {
            let mut cache = KvCache::new(1, HD, KvTypes::both(t)).unwrap();
            cache.grow(depth);
            for p in 0..depth {
                cache.store(
                    0,
                    p,
                    &activations(HD, p as u32),
                    &activations(HD, !(p as u32)),
                );
            }
            let qs: Vec<Vec<f32>> = (0..32).map(|i| activations(HD, 1000 + i)).collect();
            let mut out = vec![0f32; 32 * HD];
            g.throughput(Throughput::Bytes(cache.bytes()));
            for rows in [4, 32] {
                let rs: Vec<Row> = qs[..rows]
                    .iter()
                    .map(|q| Row {
                        q,
                        first: 0,
                        end: depth,
                    })
                    .collect();
                g.bench_with_input(
                    BenchmarkId::new(format!("{t}/rows{rows}"), depth),
                    &depth,
                    |b, _| b.iter(|| attention::attend(&cache, 0, &rs, 0.125, &mut out)),
                );
            }
        }
    }
    g.finish();
}

criterion_group!(benches, kernels, attention);
criterion_main!(benches);
