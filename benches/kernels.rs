//! Quantized matrix-vector kernels (src/engine/kernels.rs) at SmolLM2-135M's shapes: decode
//! (m = 1, one matvec per weight) and prefill (m = 64 rows of activations against the same
//! weights), per block type, on 1 and 2 threads. Speed targets live here, not in tests.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use half::f16;
use odai::engine::kernels::{self, BlockQ4_0, BlockQ4_1, BlockQ8_0, QK, WeightBlock};

/// ffn_up of SmolLM2-135M: 1536 rows of 576.
const ROWS: usize = 1536;
const COLS: usize = 576;

fn activations(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

fn q4_0() -> Vec<BlockQ4_0> {
    (0..ROWS * COLS / QK)
        .map(|i| BlockQ4_0 {
            d: f16::from_f32(0.02).to_bits(),
            qs: std::array::from_fn(|j| (i * 31 + j * 7) as u8),
        })
        .collect()
}

fn bench_type<B: WeightBlock>(c: &mut Criterion, name: &str, w: &[B]) {
    let mut g = c.benchmark_group(format!("matvec_{name}"));
    g.throughput(Throughput::Bytes(std::mem::size_of_val(w) as u64));
    let x = activations(COLS, 1);
    let xq = B::quantize_act(&x);
    let mut y = vec![0f32; ROWS];
    for threads in [1, 2] {
        g.bench_with_input(BenchmarkId::new("decode_m1", threads), &threads, |b, &t| {
            b.iter(|| kernels::matvec(w, ROWS, &xq, &mut y, t))
        });
    }
    // Prefill: 64 activation rows, each quantized once and multiplied by the whole matrix.
    let xs: Vec<Vec<B::Act>> = (0..64)
        .map(|r| B::quantize_act(&activations(COLS, r)))
        .collect();
    g.throughput(Throughput::Bytes(64 * std::mem::size_of_val(w) as u64));
    g.bench_function("prefill_m64_2_threads", |b| {
        b.iter(|| {
            for xq in &xs {
                kernels::matvec(w, ROWS, xq, &mut y, 2);
            }
        })
    });
    g.finish();
}

fn kernels(c: &mut Criterion) {
    let w4 = q4_0();
    bench_type(c, "q4_0", &w4);
    let w41: Vec<BlockQ4_1> = w4
        .iter()
        .map(|b| BlockQ4_1 {
            d: b.d,
            m: f16::from_f32(-0.1).to_bits(),
            qs: b.qs,
        })
        .collect();
    bench_type(c, "q4_1", &w41);
    let w8: Vec<BlockQ8_0> = kernels::quantize_q8_0(&activations(ROWS * COLS, 9));
    bench_type(c, "q8_0", &w8);
    // The same shape through candle's quantized matmul (what odai's engine runs today), for
    // the baseline: weights quantized by candle from the same floats' distribution.
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
    c.bench_function("quantize_q8_576", |b| {
        let x = activations(COLS, 3);
        b.iter(|| kernels::quantize_q8_0(&x))
    });
}

criterion_group!(benches, kernels);
criterion_main!(benches);
