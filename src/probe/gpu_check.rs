//! `odai probe --gpu-check`: what one wgpu adapter can really do, through WGSL compute shaders
//! (src/probe/shaders/). A listing says a GPU exists; this says whether it computes right and how
//! fast: a functional check the host verifies exactly, STREAM copy/triad bandwidth, f32 and f16
//! matrix-multiply throughput, dispatch round-trip latency and the largest buffer it hands out.
//!
//! Times are host wall-clock from `Queue::submit` to `Device::poll` returning: what an app waits
//! for, portable to every backend (timestamp queries are an optional feature, missing on GL).
//! Each figure is the best of several submissions, STREAM's convention; a submission repeats its
//! dispatch until it lasts long enough for the clock (`TARGET_SUBMIT`). Every figure's results
//! are read back and checked, so a driver that is fast and wrong fails the check.
//!
//! Errors are wgpu's own: the uncaptured-error handler and the device-lost callback collect them,
//! and the first one becomes the check's `error`; an adapter that fails is never a GPU path
//! (probe::class).

use std::borrow::Cow;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sysroot::Reading;

const FUNCTIONAL_WGSL: &str = include_str!("shaders/functional.wgsl");
const STREAM_WGSL: &str = include_str!("shaders/stream.wgsl");
const MATMUL_WGSL: &str = include_str!("shaders/matmul.wgsl");
const TOUCH_WGSL: &str = include_str!("shaders/touch.wgsl");

/// Each STREAM array: three of them (192 MiB) exceed the last-level cache of current GPUs
/// (an H100's L2 is 50 MB, a RTX 4090's 72 MB), so the figure is device memory, not cache.
const STREAM_ARRAY_BYTES: u64 = 64 << 20;
/// A submission is repeated until it lasts this long, so the clock's resolution and the
/// submit/wait overhead are small beside it.
const TARGET_SUBMIT: Duration = Duration::from_millis(30);
/// Most dispatches one submission repeats: a very fast device stops here rather than encoding
/// thousands.
const MAX_REPEATS: u32 = 256;
/// Timed submissions per figure; the best counts.
const REPS: usize = 5;
/// The matrix multiply grows from 256 until one dispatch lasts this long, up to `MATMUL_MAX_N`.
const MATMUL_MIN_DISPATCH: Duration = Duration::from_millis(10);
/// Above 2048 an f16 sum of ±1 products is no longer exact (f16 holds every integer to 2048),
/// and the check verifies exactly.
const MATMUL_MAX_N: u32 = 2048;
/// Round trips timed for dispatch latency, after `LATENCY_WARMUP` untimed ones.
const LATENCY_SAMPLES: usize = 30;
const LATENCY_WARMUP: usize = 3;
/// How long one wait on the GPU may take before the check calls it hung.
const WAIT_LIMIT: Duration = Duration::from_secs(30);
const MIB: u64 = 1 << 20;
/// How long one adapter's whole check may take by default before it is called hung
/// (`probe --gpu-check-timeout`): software rasterisers take seconds, a GPU well under one.
pub const ADAPTER_LIMIT: Duration = Duration::from_secs(120);

/// What the check found on one adapter (docs/probe-json.md, `gpus[].check`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GpuCheck {
    /// `passed`: every step ran without a wgpu error and every result was verified.
    pub status: Status,
    /// Why it failed: wgpu's error (on one line), or the first wrong value a shader wrote.
    pub error: Option<String>,
    /// What the functional check verified.
    pub functional: Reading<String>,
    pub copy_gb_s: Reading<f64>,
    pub triad_gb_s: Reading<f64>,
    /// Size of each STREAM array.
    pub stream_array_bytes: u64,
    pub matmul_f32_gflop_s: Reading<f64>,
    pub matmul_f16_gflop_s: Reading<f64>,
    /// The matrix size the throughput figures were measured at (n×n·n×n).
    pub matmul_n: Reading<u32>,
    /// Submit-to-completion of one tiny dispatch: median and 95th percentile, microseconds.
    pub dispatch_p50_us: Reading<f64>,
    pub dispatch_p95_us: Reading<f64>,
    /// The largest buffer the device created whose first and last words a shader then wrote and
    /// the host read back. Drivers that commit memory lazily (software rasterisers, some
    /// unified-memory devices) may promise more than they can back: an upper bound there.
    pub largest_buffer_bytes: Reading<u64>,
    /// wgpu features the check used or reports: `shader-f16`, `timestamp-query`.
    pub features: Vec<String>,
    pub limits: Limits,
    /// How long the check took.
    pub seconds: f64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    Failed,
}

/// The wgpu limits that bound compute work, as the adapter reports them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    pub max_buffer_size_bytes: u64,
    pub max_storage_buffer_binding_size_bytes: u64,
    pub max_compute_workgroup_storage_size_bytes: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_size: [u32; 3],
    pub max_compute_workgroups_per_dimension: u32,
}

impl Limits {
    pub fn of(l: &wgpu::Limits) -> Self {
        Limits {
            max_buffer_size_bytes: l.max_buffer_size,
            max_storage_buffer_binding_size_bytes: l.max_storage_buffer_binding_size,
            max_compute_workgroup_storage_size_bytes: l.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroup_size: [
                l.max_compute_workgroup_size_x,
                l.max_compute_workgroup_size_y,
                l.max_compute_workgroup_size_z,
            ],
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
        }
    }
}

impl GpuCheck {
    pub fn passed(&self) -> bool {
        self.status == Status::Passed
    }

    /// A check that could not run at all: the adapter fails with `error`.
    pub fn failed(limits: Limits, error: String, seconds: f64) -> Self {
        let why = format!("not measured: {error}");
        GpuCheck {
            status: Status::Failed,
            error: Some(error),
            functional: Reading::unavailable(why.clone()),
            copy_gb_s: Reading::unavailable(why.clone()),
            triad_gb_s: Reading::unavailable(why.clone()),
            stream_array_bytes: 0,
            matmul_f32_gflop_s: Reading::unavailable(why.clone()),
            matmul_f16_gflop_s: Reading::unavailable(why.clone()),
            matmul_n: Reading::unavailable(why.clone()),
            dispatch_p50_us: Reading::unavailable(why.clone()),
            dispatch_p95_us: Reading::unavailable(why.clone()),
            largest_buffer_bytes: Reading::unavailable(why),
            features: Vec::new(),
            limits,
            seconds,
        }
    }
}

/// The share of the device's memory headroom one adapter's check may allocate: an integrated
/// GPU's buffers come out of the same RAM a phone's apps live in, and the largest-buffer probe
/// would otherwise climb to the driver's `max_buffer_size` (gigabytes on llvmpipe and many iGPUs).
pub const MEMORY_SHARE: f64 = 0.25;

/// Runs the whole check on `adapter`, allocating at most `memory_budget` bytes in one buffer
/// (`None`: the adapter's own limits). Never panics on a driver's error: that is the result.
pub fn run(adapter: &wgpu::Adapter, memory_budget: Option<u64>) -> GpuCheck {
    let started = Instant::now();
    let limits = Limits::of(&adapter.limits());
    let gpu = match Gpu::open(adapter, memory_budget) {
        Ok(g) => g,
        Err(e) => return GpuCheck::failed(limits, e, started.elapsed().as_secs_f64()),
    };
    let mut steps = Steps {
        adapter: adapter.get_info().name,
        at: Instant::now(),
        first: None,
    };
    let functional = steps.keep("functional", gpu.functional());
    if !functional.is_value() {
        let mut c = GpuCheck::failed(limits, steps.first.unwrap_or_default(), 0.0);
        c.functional = functional;
        c.features = gpu.feature_names();
        c.seconds = started.elapsed().as_secs_f64();
        return c;
    }
    let stream = steps.keep("stream", gpu.stream());
    let mm32 = steps.keep("matmul f32", gpu.matmul(false));
    let matmul_f16_gflop_s = if gpu.f16 {
        steps.keep("matmul f16", gpu.matmul(true)).map(|(g, _)| g)
    } else {
        Reading::unavailable("not supported: the adapter lacks wgpu's shader-f16 feature")
    };
    let latency = steps.keep("dispatch latency", gpu.dispatch_latency());
    let largest_buffer_bytes = steps.keep("largest buffer", gpu.largest_buffer());
    GpuCheck {
        status: if steps.first.is_none() {
            Status::Passed
        } else {
            Status::Failed
        },
        error: steps.first,
        functional,
        copy_gb_s: stream.clone().map(|s| s.0),
        triad_gb_s: stream.map(|s| s.1),
        stream_array_bytes: gpu.stream_array_bytes(),
        matmul_f32_gflop_s: mm32.clone().map(|m| m.0),
        matmul_n: mm32.map(|m| m.1),
        matmul_f16_gflop_s,
        dispatch_p50_us: latency.clone().map(|l| l.0),
        dispatch_p95_us: latency.map(|l| l.1),
        largest_buffer_bytes,
        features: gpu.feature_names(),
        limits,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// The steps' results as readings; the first failure is the check's error.
struct Steps {
    adapter: String,
    /// When the step being kept started: each step is logged with its time (`-vv`).
    at: Instant,
    first: Option<String>,
}

impl Steps {
    fn keep<T>(&mut self, step: &str, r: Result<T, String>) -> Reading<T> {
        log::debug!(
            "gpu-check {}: {step} {} in {:.2} s",
            self.adapter,
            if r.is_ok() { "done" } else { "failed" },
            self.at.elapsed().as_secs_f64()
        );
        self.at = Instant::now();
        match r {
            Ok(v) => Reading::Value(v),
            Err(e) => {
                let why = format!("failed: {e}");
                self.first.get_or_insert(e);
                Reading::unavailable(why)
            }
        }
    }
}

/// wgpu's messages span lines ("Validation Error\n\nCaused by:\n  In …"): one line for a
/// report cell, the parts joined with ": ".
pub fn one_line(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            // "Caused by:" already ends with its colon.
            out.push_str(if out.ends_with(':') { " " } else { ": " });
        }
        out.push_str(line);
    }
    out
}

/// Marsaglia's xorshift32 (shifts 13, 17, 5), as functional.wgsl computes it.
fn xorshift32(mut s: u32) -> u32 {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    s
}

/// The value of `sorted` at quantile `q` (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The integer matrices the multiply is checked with: exact in f32 (|sum| ≤ 4n < 2^24) and,
/// with values in {-1, 0, 1}, in f16 for n ≤ 2048.
fn matrix_value(half: bool, i: u32, k: u32, salt: u32) -> i32 {
    let h = i
        .wrapping_mul(7)
        .wrapping_add(k.wrapping_mul(3))
        .wrapping_add(salt);
    if half {
        (h % 3) as i32 - 1
    } else {
        (h % 5) as i32 - 2
    }
}

/// f16 bits of a small integer (|v| ≤ 2048), and back: exact for what the check uses.
fn f16_bits(v: i32) -> u16 {
    half::f16::from_f32(v as f32).to_bits()
}

fn f16_value(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// The grid of workgroups covering `items` with `wg` invocations each: (x, y) within the
/// per-dimension limit, and invocations per grid row.
fn grid(items: u64, wg: u32, max_per_dim: u32) -> (u32, u32, u32) {
    let groups = items.div_ceil(u64::from(wg)).max(1);
    let x = groups.min(u64::from(max_per_dim.max(1))) as u32;
    let y = groups.div_ceil(u64::from(x)) as u32;
    (x, y, x * wg)
}

struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    errors: Arc<Mutex<Vec<String>>>,
    limits: wgpu::Limits,
    /// The most one buffer of the check may hold ([`MEMORY_SHARE`] of the headroom), never
    /// above the adapter's own limit.
    budget: u64,
    f16: bool,
    timestamps: bool,
}

#[derive(Clone, Copy)]
enum Slot {
    Uniform,
    Read,
    ReadWrite,
}

impl Gpu {
    fn open(adapter: &wgpu::Adapter, memory_budget: Option<u64>) -> Result<Gpu, String> {
        let f16 = adapter.features().contains(wgpu::Features::SHADER_F16);
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("odai gpu-check"),
            required_features: if f16 {
                wgpu::Features::SHADER_F16
            } else {
                wgpu::Features::empty()
            },
            // The adapter's own limits, so the largest buffer is the device's, not WebGPU's
            // portable default (256 MiB).
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| format!("wgpu cannot open the device: {}", one_line(&e.to_string())))?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(one_line(&e.to_string()));
        }));
        let lost = errors.clone();
        device.set_device_lost_callback(move |reason, message| {
            // Dropping the device at the end of the check reports `Destroyed`: not an error.
            if reason != wgpu::DeviceLostReason::Destroyed {
                lost.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("device lost: {}", one_line(&message)));
            }
        });
        let budget = memory_budget
            .unwrap_or(u64::MAX)
            .min(limits.max_buffer_size);
        Ok(Gpu {
            device,
            queue,
            errors,
            limits,
            budget,
            f16,
            timestamps: adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY),
        })
    }

    fn feature_names(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.f16 {
            f.push("shader-f16".to_owned());
        }
        if self.timestamps {
            f.push("timestamp-query".to_owned());
        }
        f
    }

    /// The first error wgpu reported since the last call, if any.
    fn take_error(&self) -> Result<(), String> {
        let mut errs = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        let first = errs.first().cloned();
        errs.clear();
        first.map_or(Ok(()), Err)
    }

    fn module(&self, label: &str, source: String) -> wgpu::ShaderModule {
        self.device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(Cow::Owned(source)),
            })
    }

    fn layout(&self, slots: &[Slot]) -> wgpu::BindGroupLayout {
        let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match s {
                        Slot::Uniform => wgpu::BufferBindingType::Uniform,
                        Slot::Read => wgpu::BufferBindingType::Storage { read_only: true },
                        Slot::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        self.device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: None,
                entries: &entries,
            })
    }

    fn pipeline(
        &self,
        layout: &wgpu::BindGroupLayout,
        module: &wgpu::ShaderModule,
        entry: &str,
    ) -> wgpu::ComputePipeline {
        let pl = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: None,
                bind_group_layouts: &[Some(layout)],
                immediate_size: 0,
            });
        self.device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pl),
                module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
    }

    fn bind(
        &self,
        layout: &wgpu::BindGroupLayout,
        buffers: &[wgpu::BufferBinding<'_>],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(b.clone()),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout,
            entries: &entries,
        })
    }

    /// A bind group of whole buffers, bound in order.
    fn bind_whole(
        &self,
        layout: &wgpu::BindGroupLayout,
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let whole: Vec<wgpu::BufferBinding> = buffers
            .iter()
            .map(|b| b.as_entire_buffer_binding())
            .collect();
        self.bind(layout, &whole)
    }

    fn buffer(&self, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage,
            mapped_at_creation: false,
        })
    }

    fn storage(&self, size: u64) -> wgpu::Buffer {
        self.buffer(
            size,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        )
    }

    fn uniform(&self, bytes: &[u8]) -> wgpu::Buffer {
        let b = self.buffer(
            bytes.len() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        self.queue.write_buffer(&b, 0, bytes);
        b
    }

    /// Submits `cmd` and waits for it; the time from submit to completion.
    fn submit(&self, cmd: wgpu::CommandBuffer) -> Result<Duration, String> {
        let t0 = Instant::now();
        let index = self.queue.submit([cmd]);
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: Some(WAIT_LIMIT),
            })
            .map_err(|e| match e {
                wgpu::PollError::Timeout => format!(
                    "the GPU did not finish within {} s (a hung driver?)",
                    WAIT_LIMIT.as_secs()
                ),
                e => format!("waiting for the GPU: {}", one_line(&e.to_string())),
            })?;
        let took = t0.elapsed();
        self.take_error()?;
        Ok(took)
    }

    /// `repeats` dispatches of `pipeline` over a `groups` grid in one pass, submitted and waited
    /// for.
    fn dispatch(
        &self,
        pipeline: &wgpu::ComputePipeline,
        bind: &wgpu::BindGroup,
        groups: (u32, u32),
        repeats: u32,
    ) -> Result<Duration, String> {
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, bind, &[]);
            for _ in 0..repeats {
                pass.dispatch_workgroups(groups.0, groups.1, 1);
            }
        }
        let cmd = enc.finish();
        self.take_error()?;
        self.submit(cmd)
    }

    /// The best time of one dispatch: an untimed first run (pipeline compilation, first touch of
    /// memory), then `REPS` submissions of enough repeats to last `TARGET_SUBMIT`.
    fn best_time(
        &self,
        pipeline: &wgpu::ComputePipeline,
        bind: &wgpu::BindGroup,
        groups: (u32, u32),
    ) -> Result<f64, String> {
        let first = self.dispatch(pipeline, bind, groups, 1)?;
        let once = self.dispatch(pipeline, bind, groups, 1)?.min(first);
        let repeats = (TARGET_SUBMIT.as_secs_f64() / once.as_secs_f64().max(1e-6))
            .ceil()
            .clamp(1.0, f64::from(MAX_REPEATS)) as u32;
        let mut best = f64::INFINITY;
        for _ in 0..REPS {
            let t = self.dispatch(pipeline, bind, groups, repeats)?;
            best = best.min(t.as_secs_f64() / f64::from(repeats));
        }
        Ok(best)
    }

    /// Bytes `[offset, offset + len)` of `src`, copied to a mappable buffer and read.
    fn read(&self, src: &wgpu::Buffer, ranges: &[(u64, u64)]) -> Result<Vec<Vec<u8>>, String> {
        let total: u64 = ranges.iter().map(|r| r.1).sum();
        let staging = self.buffer(
            total.max(4),
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let mut enc = self.device.create_command_encoder(&Default::default());
        let mut at = 0;
        for &(offset, len) in ranges {
            enc.copy_buffer_to_buffer(src, offset, &staging, at, len);
            at += len;
        }
        self.submit(enc.finish())?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(WAIT_LIMIT),
            })
            .map_err(|e| format!("mapping a result: {}", one_line(&e.to_string())))?;
        rx.recv_timeout(Duration::from_secs(1))
            .map_err(|_| "mapping a result: wgpu never answered".to_owned())?
            .map_err(|e| format!("mapping a result: {}", one_line(&e.to_string())))?;
        self.take_error()?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| format!("mapping a result: {}", one_line(&e.to_string())))?;
        let mut out = Vec::with_capacity(ranges.len());
        let mut at = 0usize;
        for &(_, len) in ranges {
            out.push(view[at..at + len as usize].to_vec());
            at += len as usize;
        }
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// saxpy, xorshift32 and workgroup sums over 64 Ki invocations, every value checked.
    fn functional(&self) -> Result<String, String> {
        const N: u32 = 64 * 1024;
        let bytes = u64::from(N) * 4;
        let x: Vec<u8> = (0..N)
            .flat_map(|i| ((i % 1000) as f32).to_le_bytes())
            .collect();
        let y0: Vec<u8> = (0..N)
            .flat_map(|i| ((i % 7) as f32).to_le_bytes())
            .collect();
        let (bx, by, bh) = (
            self.storage(bytes),
            self.storage(bytes),
            self.storage(bytes),
        );
        let bs = self.storage(u64::from(N / 64) * 4);
        self.queue.write_buffer(&bx, 0, &x);
        self.queue.write_buffer(&by, 0, &y0);
        let layout = self.layout(&[
            Slot::Read,
            Slot::ReadWrite,
            Slot::ReadWrite,
            Slot::ReadWrite,
        ]);
        let module = self.module("functional", FUNCTIONAL_WGSL.to_owned());
        let pipeline = self.pipeline(&layout, &module, "main");
        let bind = self.bind_whole(&layout, &[&bx, &by, &bh, &bs]);
        self.take_error()?;
        self.dispatch(&pipeline, &bind, (N / 64, 1), 1)?;
        let y = &self.read(&by, &[(0, bytes)])?[0];
        let h = &self.read(&bh, &[(0, bytes)])?[0];
        let s = &self.read(&bs, &[(0, u64::from(N / 64) * 4)])?[0];
        let word = |b: &[u8], i: usize| u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
        for i in 0..N as usize {
            let want = 3.0 * (i % 1000) as f32 + (i % 7) as f32;
            let got = f32::from_bits(word(y, i));
            if got != want {
                return Err(format!(
                    "wrong result: saxpy y[{i}] = {got}, expected {want}"
                ));
            }
            let want = xorshift32(i as u32 + 1);
            if word(h, i) != want {
                return Err(format!(
                    "wrong result: xorshift32 h[{i}] = {:#010x}, expected {want:#010x}",
                    word(h, i)
                ));
            }
        }
        for g in 0..(N / 64) as usize {
            let want = (0..64).fold(0u32, |acc, l| {
                acc.wrapping_add(xorshift32((g * 64 + l) as u32 + 1))
            });
            if word(s, g) != want {
                return Err(format!(
                    "wrong result: workgroup sum {g} = {:#010x}, expected {want:#010x}",
                    word(s, g)
                ));
            }
        }
        Ok(format!(
            "{N} saxpy values, {N} xorshift32 hashes and {} workgroup sums exact",
            N / 64
        ))
    }

    fn workgroup_size(&self) -> u32 {
        256.min(self.limits.max_compute_invocations_per_workgroup)
            .min(self.limits.max_compute_workgroup_size_x)
            .max(1)
    }

    fn stream_array_bytes(&self) -> u64 {
        // Three arrays live at once: together within the budget.
        let cap = STREAM_ARRAY_BYTES
            .min(self.limits.max_storage_buffer_binding_size)
            .min(self.limits.max_buffer_size)
            .min(self.budget / 3);
        cap / 16 * 16
    }

    /// STREAM copy and triad, GB/s (10⁹ bytes, as STREAM counts: copy moves 2 arrays, triad 3).
    fn stream(&self) -> Result<(f64, f64), String> {
        let bytes = self.stream_array_bytes();
        if bytes < 16 {
            return Err("the adapter's storage binding limit is below one vec4".into());
        }
        let n = bytes / 16;
        let wg = self.workgroup_size();
        let (gx, gy, row) = grid(n, wg, self.limits.max_compute_workgroups_per_dimension);
        let mut params = Vec::new();
        params.extend_from_slice(&(n as u32).to_le_bytes());
        params.extend_from_slice(&row.to_le_bytes());
        params.extend_from_slice(&3.0f32.to_le_bytes());
        params.extend_from_slice(&0u32.to_le_bytes());
        let p = self.uniform(&params);
        let (a, b, c) = (
            self.storage(bytes),
            self.storage(bytes),
            self.storage(bytes),
        );
        let layout = self.layout(&[
            Slot::Uniform,
            Slot::ReadWrite,
            Slot::ReadWrite,
            Slot::ReadWrite,
        ]);
        let module = self.module("stream", STREAM_WGSL.replace("{WG}", &wg.to_string()));
        let fill = self.pipeline(&layout, &module, "fill");
        let copy = self.pipeline(&layout, &module, "copy");
        let triad = self.pipeline(&layout, &module, "triad");
        let bind = self.bind_whole(&layout, &[&p, &a, &b, &c]);
        self.take_error()?;
        self.dispatch(&fill, &bind, (gx, gy), 1)?;
        let t_copy = self.best_time(&copy, &bind, (gx, gy))?;
        // Check the ends and the middle: c = a = (f, f+1, f+2, f+3), f = i mod 1024.
        let samples = [0, n / 2, n - 1];
        let filled = |i: u64, lane: u64| ((i % 1024) + lane) as f32;
        let got = self.read(&c, &samples.map(|i| (i * 16, 16)))?;
        check_vec4("copy", &samples, &got, filled)?;
        let t_triad = self.best_time(&triad, &bind, (gx, gy))?;
        let got = self.read(&a, &samples.map(|i| (i * 16, 16)))?;
        check_vec4("triad", &samples, &got, |i, l| 1.0 + 3.0 * filled(i, l))?;
        let gb = bytes as f64 / 1e9;
        Ok((2.0 * gb / t_copy, 3.0 * gb / t_triad))
    }

    /// GFLOP/s (2n³ per multiply) and n: the matrix grows until one dispatch is long enough to
    /// time, then the best of `REPS`; sampled entries of C are checked exactly.
    fn matmul(&self, half: bool) -> Result<(f64, u32), String> {
        let l = &self.limits;
        let ts: u32 = if l.max_compute_invocations_per_workgroup >= 256
            && l.max_compute_workgroup_size_x >= 16
            && l.max_compute_workgroup_size_y >= 16
        {
            16
        } else {
            8
        };
        let tile = 4 * ts;
        let elem: u64 = if half { 2 } else { 4 };
        let source = MATMUL_WGSL
            .replace("{ENABLE}", if half { "enable f16;" } else { "" })
            .replace("{TILE_KT}", &(tile * 16).to_string())
            .replace("{TS}", &ts.to_string())
            .replace("{T}", if half { "f16" } else { "f32" });
        let layout = self.layout(&[Slot::Uniform, Slot::Read, Slot::Read, Slot::ReadWrite]);
        let module = self.module(if half { "matmul-f16" } else { "matmul-f32" }, source);
        let pipeline = self.pipeline(&layout, &module, "main");
        self.take_error()?;
        let mut n = 256u32.max(tile);
        loop {
            let bytes = u64::from(n) * u64::from(n) * elem;
            if bytes > l.max_storage_buffer_binding_size || bytes > l.max_buffer_size {
                return Err(format!(
                    "a {n}×{n} matrix exceeds the adapter's storage binding limit"
                ));
            }
            let salt_a = 0;
            let salt_b = 11;
            let host = |salt: u32| -> Vec<u8> {
                let mut v = Vec::with_capacity(bytes as usize);
                for i in 0..n {
                    for k in 0..n {
                        let x = matrix_value(half, i, k, salt);
                        if half {
                            v.extend_from_slice(&f16_bits(x).to_le_bytes());
                        } else {
                            v.extend_from_slice(&(x as f32).to_le_bytes());
                        }
                    }
                }
                v
            };
            let (a, b, c) = (
                self.storage(bytes),
                self.storage(bytes),
                self.storage(bytes),
            );
            self.queue.write_buffer(&a, 0, &host(salt_a));
            self.queue.write_buffer(&b, 0, &host(salt_b));
            let mut params = n.to_le_bytes().to_vec();
            params.resize(16, 0);
            let p = self.uniform(&params);
            let bind = self.bind_whole(&layout, &[&p, &a, &b, &c]);
            let groups = (n / tile, n / tile);
            let first = self.dispatch(&pipeline, &bind, groups, 1)?;
            let once = self.dispatch(&pipeline, &bind, groups, 1)?.min(first);
            // Three matrices live at once; the next size's must fit the budget too.
            let next_fits = 3 * 4 * bytes <= self.budget;
            if once < MATMUL_MIN_DISPATCH && n < MATMUL_MAX_N && next_fits {
                n *= 2;
                continue;
            }
            let t = self.best_time(&pipeline, &bind, groups)?;
            // Sixteen entries spread over C, the corners among them.
            let picks: Vec<(u32, u32)> = (0..16u32)
                .map(|s| ((s * 7919) % n, (s * 104_729 + s / 4) % n))
                .chain([(0, 0), (n - 1, n - 1), (0, n - 1), (n - 1, 0)])
                .collect();
            let ranges: Vec<(u64, u64)> = picks
                .iter()
                .map(|&(i, j)| {
                    // Copies move whole 4-byte words: an f16 entry is read with its neighbour.
                    let off = (u64::from(i) * u64::from(n) + u64::from(j)) * elem;
                    (off / 4 * 4, 4)
                })
                .collect();
            let got = self.read(&c, &ranges)?;
            for (k, &(i, j)) in picks.iter().enumerate() {
                let want: i64 = (0..n)
                    .map(|kk| {
                        i64::from(matrix_value(half, i, kk, salt_a))
                            * i64::from(matrix_value(half, kk, j, salt_b))
                    })
                    .sum();
                let w = &got[k];
                let value = if half {
                    let off = ((u64::from(i) * u64::from(n) + u64::from(j)) * elem % 4) as usize;
                    f16_value(u16::from_le_bytes([w[off], w[off + 1]]))
                } else {
                    f32::from_le_bytes([w[0], w[1], w[2], w[3]])
                };
                if value != want as f32 {
                    return Err(format!(
                        "wrong result: {} matmul C[{i}][{j}] = {value}, expected {want} (n = {n})",
                        if half { "f16" } else { "f32" }
                    ));
                }
            }
            return Ok((2.0 * f64::from(n).powi(3) / t / 1e9, n));
        }
    }

    /// Submit-to-completion of a one-invocation dispatch, microseconds: (median, p95). The
    /// counter it increments proves every dispatch ran.
    fn dispatch_latency(&self) -> Result<(f64, f64), String> {
        let buf = self.storage(256);
        let layout = self.layout(&[Slot::ReadWrite]);
        let module = self.module("touch", TOUCH_WGSL.to_owned());
        let pipeline = self.pipeline(&layout, &module, "main");
        let bind = self.bind_whole(&layout, &[&buf]);
        self.take_error()?;
        let mut us = Vec::with_capacity(LATENCY_SAMPLES);
        for k in 0..LATENCY_WARMUP + LATENCY_SAMPLES {
            let t = self.dispatch(&pipeline, &bind, (1, 1), 1)?;
            if k >= LATENCY_WARMUP {
                us.push(t.as_secs_f64() * 1e6);
            }
        }
        let count = u32::from_le_bytes(self.read(&buf, &[(0, 4)])?[0][..4].try_into().unwrap());
        let want = (LATENCY_WARMUP + LATENCY_SAMPLES) as u32;
        if count != want {
            return Err(format!(
                "wrong result: {want} dispatches counted to {count}"
            ));
        }
        us.sort_by(f64::total_cmp);
        Ok((percentile(&us, 0.5), percentile(&us, 0.95)))
    }

    /// Halves from the adapter's `max_buffer_size` (or the check's memory budget, the smaller)
    /// until a buffer is created and usable, then narrows the gap above it to within 1/16.
    fn largest_buffer(&self) -> Result<u64, String> {
        let cap = self.budget / MIB * MIB;
        if cap < MIB {
            return Err(format!(
                "the adapter's max_buffer_size or the check's memory budget ({} bytes) is below 1 \
                 MiB",
                self.budget
            ));
        }
        let mut size = cap;
        loop {
            if self.buffer_fits(size)? {
                break;
            }
            size = size / 2 / MIB * MIB;
            if size < MIB {
                return Err("not even a 1 MiB buffer could be allocated".into());
            }
        }
        let (mut lo, mut hi) = (size, (size * 2).min(cap + MIB));
        while hi - lo > (lo / 16).max(MIB) {
            let mid = (lo + (hi - lo) / 2) / MIB * MIB;
            if mid <= lo {
                break;
            }
            if self.buffer_fits(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Whether a buffer of `size` bytes can be created and its first and last words written by a
    /// shader and read back. Out-of-memory is `false`; any other wgpu error is the check's.
    fn buffer_fits(&self, size: u64) -> Result<bool, String> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let invalid = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let buf = self.buffer(
            size,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        );
        let layout = self.layout(&[Slot::ReadWrite]);
        let module = self.module("touch", TOUCH_WGSL.to_owned());
        let pipeline = self.pipeline(&layout, &module, "main");
        // The last 256 bytes: a storage offset must be a multiple of the adapter's alignment
        // (at most 256); `size` is whole MiB.
        let last = size - 256;
        let ends = [0, last];
        let binds: Vec<wgpu::BindGroup> = ends
            .iter()
            .map(|&offset| {
                self.bind(
                    &layout,
                    &[wgpu::BufferBinding {
                        buffer: &buf,
                        offset,
                        size: NonZeroU64::new(256),
                    }],
                )
            })
            .collect();
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(&pipeline);
            for b in &binds {
                pass.set_bind_group(0, b, &[]);
                pass.dispatch_workgroups(1, 1, 1);
            }
        }
        let index = self.queue.submit([enc.finish()]);
        let waited = self.device.poll(wgpu::PollType::Wait {
            submission_index: Some(index),
            timeout: Some(WAIT_LIMIT),
        });
        let invalid = pollster::block_on(invalid.pop());
        let oom = pollster::block_on(oom.pop());
        if let Some(e) = oom {
            drop(e);
            buf.destroy();
            return Ok(false);
        }
        if let Some(e) = invalid {
            buf.destroy();
            let text = one_line(&e.to_string());
            // An invalid buffer (its allocation failed) surfaces as a validation error where it
            // is used; wgpu names the memory in it.
            if text.to_lowercase().contains("memory") {
                return Ok(false);
            }
            return Err(text);
        }
        waited.map_err(|e| format!("waiting for the GPU: {}", one_line(&e.to_string())))?;
        let got = self.read(&buf, &ends.map(|o| (o, 4)))?;
        buf.destroy();
        for (k, w) in got.iter().enumerate() {
            let v = u32::from_le_bytes(w[..4].try_into().unwrap());
            if v != 1 {
                return Err(format!(
                    "wrong result: word {} of a {size}-byte buffer is {v}, expected 1",
                    ends[k] / 4
                ));
            }
        }
        Ok(true)
    }
}

fn check_vec4(
    what: &str,
    samples: &[u64],
    got: &[Vec<u8>],
    want: impl Fn(u64, u64) -> f32,
) -> Result<(), String> {
    for (k, &i) in samples.iter().enumerate() {
        for lane in 0..4u64 {
            let o = lane as usize * 4;
            let v = f32::from_le_bytes(got[k][o..o + 4].try_into().unwrap());
            let w = want(i, lane);
            if v != w {
                return Err(format!(
                    "wrong result: {what} element {i} lane {lane} = {v}, expected {w}"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wgpu_errors_are_put_on_one_line() {
        assert_eq!(
            one_line(
                "Validation Error\n\nCaused by:\n    In Device::create_buffer\n      too big\n"
            ),
            "Validation Error: Caused by: In Device::create_buffer: too big"
        );
    }

    #[test]
    fn xorshift32_is_marsaglias() {
        // Marsaglia (2003), "Xorshift RNGs": the 13/17/5 generator from seed 1.
        assert_eq!(xorshift32(1), 270_369);
        assert_eq!(xorshift32(270_369), 67_634_689);
    }

    #[test]
    fn the_grid_covers_every_item_within_the_dimension_limit() {
        assert_eq!(grid(1000, 256, 65_535), (4, 1, 1024));
        let (x, y, row) = grid(20_000_000, 256, 65_535);
        assert!(x <= 65_535 && u64::from(row) * u64::from(y) >= 20_000_000);
        assert_eq!(grid(0, 64, 65_535), (1, 1, 64));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 10.0);
        assert_eq!(percentile(&v, 0.95), 19.0);
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
    }

    #[test]
    fn the_check_matrices_are_exact_in_their_types() {
        // f16 ±1 sums up to 2048 and f32 sums of products ≤ 4 up to 4·2048 are exact integers.
        assert_eq!(f16_value(f16_bits(2048)), 2048.0);
        assert_eq!(f16_value(f16_bits(-2047)), -2047.0);
        for i in 0..50 {
            assert!((-1..=1).contains(&matrix_value(true, i, i * 3, 11)));
            assert!((-2..=2).contains(&matrix_value(false, i, i * 5, 0)));
        }
    }
}
