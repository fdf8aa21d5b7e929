//! ONNX Runtime as a runtime for tensor models, through `ort` with its library opened at run time
//! (`load-dynamic`): `--runtime-lib PATH`, else `ORT_DYLIB_PATH`, else `libonnxruntime.so` on the
//! loader's search path. The PyPI wheel `onnxruntime` ships one
//! (`onnxruntime/capi/libonnxruntime.so.<version>`). Execution providers (`cpu`, and `xnnpack`,
//! `nnapi`, `coreml`, `qnn`, `cuda` where the library has them) are asked for by name; one the
//! library lacks is an error naming what it has, never a silent fall-back to the CPU.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::ep;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{DynTensor, TensorElementType, ValueType};

use crate::error::Error;
use crate::runtime::tensor::{DType, Dim, Signature, Tensor, TensorSpec};
use crate::runtime::{LoadOptions, Runtime, RuntimeInfo};

/// The providers `--provider` accepts for ONNX Runtime, in the order `--help` lists them.
pub const PROVIDERS: &[&str] = &["cpu", "xnnpack", "nnapi", "coreml", "qnn", "cuda"];

/// What to install when no library is found.
pub const INSTALL_HINT: &str = "install it with `pip install onnxruntime==1.32.0` and point odai at \
its library: ORT_DYLIB_PATH=$(python3 -c 'import onnxruntime,glob,os; \
print(glob.glob(os.path.dirname(onnxruntime.__file__)+\"/capi/libonnxruntime.so*\")[0])'), or \
--runtime-lib PATH";

struct Loaded {
    env: ort::environment::Environment,
    path: PathBuf,
    version: String,
}

/// The process's ONNX Runtime: loaded once (ort keeps one library per process), so a second
/// `--runtime-lib` in the same process is refused rather than silently ignored.
static LOADED: OnceLock<Result<Loaded, String>> = OnceLock::new();

/// The library to open: the one given, else `ORT_DYLIB_PATH`, else the platform's name for the
/// loader's search path.
pub fn library_path(given: Option<&Path>) -> PathBuf {
    if let Some(p) = given {
        return p.to_owned();
    }
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(format!(
            "{}onnxruntime{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )),
    }
}

fn load_library(given: Option<&Path>) -> Result<&'static Loaded, Error> {
    let path = library_path(given);
    let loaded = LOADED.get_or_init(|| {
        if path.components().count() > 1 && !path.exists() {
            return Err(format!(
                "ONNX Runtime's library {} does not exist: {INSTALL_HINT}",
                path.display()
            ));
        }
        let builder = ort::init_from(&path).map_err(|e| {
            format!(
                "ONNX Runtime's library {} could not be opened ({e}): {INSTALL_HINT}",
                path.display()
            )
        })?;
        let env = builder
            .with_name("odai")
            .build()
            .map_err(|e| format!("ONNX Runtime {} did not start: {e}", path.display()))?;
        Ok(Loaded {
            env,
            path: path.clone(),
            version: library_version(&path).unwrap_or_else(|| version_of(ort::info())),
        })
    });
    match loaded {
        Ok(l) if given.is_some() && l.path != path => Err(Error::Invalid {
            flag: "--runtime-lib".into(),
            problem: format!(
                "this process already opened ONNX Runtime from {}; one library per process",
                l.path.display()
            ),
        }),
        Ok(l) => Ok(l),
        Err(e) => Err(Error::Runtime {
            runtime: "onnxruntime".into(),
            problem: e.clone(),
        }),
    }
}

/// The library's own version (`OrtGetApiBase()->GetVersionString()`, onnxruntime_c_api.h): the
/// build string of release wheels says `git-branch=HEAD`. The library is opened a second time
/// by path, which the loader answers with the handle ort already holds.
fn library_version(path: &Path) -> Option<String> {
    // SAFETY: the library is already loaded (initialisers ran); the symbol has the C API's type.
    unsafe {
        let lib = libloading::Library::new(path).ok()?;
        let base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
            lib.get(b"OrtGetApiBase\0").ok()?;
        let base = base();
        if base.is_null() {
            return None;
        }
        let v = ((*base).GetVersionString)();
        (!v.is_null()).then(|| std::ffi::CStr::from_ptr(v).to_string_lossy().into_owned())
    }
}

/// `1.32.0` from ONNX Runtime's build string (`ORT Build Info: git-branch=rel-1.32.0, …`).
fn version_of(info: &str) -> String {
    info.split([',', ' '])
        .find_map(|f| f.strip_prefix("git-branch=rel-"))
        .map(str::to_owned)
        .unwrap_or_else(|| "unknown".into())
}

fn dtype(t: TensorElementType) -> DType {
    use TensorElementType as T;
    match t {
        T::Float32 => DType::F32,
        T::Float16 => DType::F16,
        T::Bfloat16 => DType::Bf16,
        T::Float64 => DType::F64,
        T::Int8 => DType::I8,
        T::Uint8 => DType::U8,
        T::Int16 => DType::I16,
        T::Uint16 => DType::U16,
        T::Int32 => DType::I32,
        T::Uint32 => DType::U32,
        T::Int64 => DType::I64,
        T::Uint64 => DType::U64,
        T::Bool => DType::Bool,
        T::String => DType::String,
        _ => DType::Other,
    }
}

fn element_type(d: DType) -> Option<TensorElementType> {
    use TensorElementType as T;
    Some(match d {
        DType::F32 => T::Float32,
        DType::F16 => T::Float16,
        DType::Bf16 => T::Bfloat16,
        DType::F64 => T::Float64,
        DType::I8 => T::Int8,
        DType::U8 => T::Uint8,
        DType::I16 => T::Int16,
        DType::U16 => T::Uint16,
        DType::I32 => T::Int32,
        DType::U32 => T::Uint32,
        DType::I64 => T::Int64,
        DType::U64 => T::Uint64,
        DType::Bool => T::Bool,
        DType::String | DType::Other => return None,
    })
}

fn spec(name: &str, ty: &ValueType) -> TensorSpec {
    match ty {
        ValueType::Tensor {
            ty,
            shape,
            dimension_symbols,
        } => TensorSpec {
            name: name.into(),
            dtype: dtype(*ty),
            shape: shape
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    if d >= 0 {
                        Dim::Fixed(d as u64)
                    } else {
                        match dimension_symbols.get(i) {
                            Some(s) if !s.is_empty() => Dim::Symbolic(s.clone()),
                            _ => Dim::Symbolic("?".into()),
                        }
                    }
                })
                .collect(),
        },
        // Sequences, maps and optionals are listed, but odai cannot feed them.
        _ => TensorSpec {
            name: name.into(),
            dtype: DType::Other,
            shape: Vec::new(),
        },
    }
}

/// A model loaded in ONNX Runtime.
pub struct OrtRuntime {
    session: Session,
    signature: Signature,
    threads: u32,
    provider: String,
    version: String,
}

impl OrtRuntime {
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<OrtRuntime, Error> {
        let lib = load_library(opts.library.as_deref())?;
        let provider = opts.provider.clone().unwrap_or_else(|| "cpu".into());
        let fail = |e: String| Error::Runtime {
            runtime: "onnxruntime".into(),
            problem: e,
        };
        let mut b = Session::builder(&lib.env)
            .map_err(|e| fail(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| fail(e.to_string()))?;
        // One intra-op pool of the asked size and no inter-op parallelism: the run's thread
        // count is the model's, as for every other runtime.
        if let Some(t) = opts.threads {
            b = b
                .with_intra_threads(t as usize)
                .map_err(|e| fail(e.to_string()))?;
        }
        b = b.with_inter_threads(1).map_err(|e| fail(e.to_string()))?;
        if opts.no_spin {
            b = b
                .with_intra_op_spinning(false)
                .map_err(|e| fail(e.to_string()))?;
        }
        let eps = match provider.as_str() {
            "cpu" => vec![ep::CPU::default().build().error_on_failure()],
            "xnnpack" => vec![ep::XNNPACK::default().build().error_on_failure()],
            "nnapi" => vec![ep::NNAPI::default().build().error_on_failure()],
            "coreml" => vec![ep::CoreML::default().build().error_on_failure()],
            "qnn" => vec![ep::QNN::default().build().error_on_failure()],
            "cuda" => vec![ep::CUDA::default().build().error_on_failure()],
            other => {
                return Err(Error::Invalid {
                    flag: "--provider".into(),
                    problem: format!(
                        "{other:?} is not an ONNX Runtime execution provider odai knows: choose \
                         one of {}",
                        PROVIDERS.join(", ")
                    ),
                });
            }
        };
        b = b.with_execution_providers(eps).map_err(|e| {
            fail(format!(
                "execution provider {provider} is not available in {} ({e}); it has: {}",
                lib.path.display(),
                available_providers().join(", ")
            ))
        })?;
        let session = b.commit_from_file(path).map_err(|e| Error::Model {
            file: path.to_owned(),
            problem: format!("ONNX Runtime cannot load it: {e}"),
        })?;
        let signature = Signature {
            inputs: session
                .inputs()
                .iter()
                .map(|o| spec(o.name(), o.dtype()))
                .collect(),
            outputs: session
                .outputs()
                .iter()
                .map(|o| spec(o.name(), o.dtype()))
                .collect(),
        };
        Ok(OrtRuntime {
            session,
            signature,
            threads: opts.threads.unwrap_or(0),
            provider,
            version: lib.version.clone(),
        })
    }
}

/// The execution providers the loaded library has (ONNX Runtime's names, shortened:
/// `CPUExecutionProvider` → `cpu`).
pub fn available_providers() -> Vec<String> {
    // ort exposes no list; each known provider is asked for in turn.
    use ep::ExecutionProvider;
    let mut out = Vec::new();
    type Check = fn() -> ort::Result<bool>;
    let checks: [(&str, Check); 6] = [
        ("cpu", ep::CPU::is_available),
        ("xnnpack", ep::XNNPACK::is_available),
        ("nnapi", ep::NNAPI::is_available),
        ("coreml", ep::CoreML::is_available),
        ("qnn", ep::QNN::is_available),
        ("cuda", ep::CUDA::is_available),
    ];
    for (name, check) in checks {
        if check().unwrap_or(false) {
            out.push(name.to_owned());
        }
    }
    out
}

impl Runtime for OrtRuntime {
    fn info(&self) -> RuntimeInfo {
        RuntimeInfo {
            runtime: "onnxruntime".into(),
            runtime_version: self.version.clone(),
            backend: self.provider.clone(),
        }
    }

    fn threads(&self) -> u32 {
        self.threads
    }

    fn signature(&self) -> Option<&Signature> {
        Some(&self.signature)
    }

    fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
        let mut values = Vec::with_capacity(inputs.len());
        for t in inputs {
            let ty = element_type(t.dtype)
                .ok_or_else(|| format!("input {}: odai cannot feed {} tensors", t.name, t.dtype))?;
            let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
            let mut v = DynTensor::new(self.session.allocator(), ty, shape)
                .map_err(|e| format!("input {}: {e}", t.name))?;
            let dst = v.data_ptr_mut().cast::<u8>();
            if !t.data.is_empty() {
                // SAFETY: ONNX Runtime allocated elements × size bytes on the CPU for this dtype
                // and shape, which is what `t.data` holds (checked when the tensor was made).
                unsafe { std::ptr::copy_nonoverlapping(t.data.as_ptr(), dst, t.data.len()) };
            }
            values.push((t.name.as_str(), v));
        }
        let outputs = self.session.run(values).map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(outputs.len());
        for (name, value) in outputs.iter() {
            let ValueType::Tensor { ty, shape, .. } = value.dtype() else {
                return Err(format!("output {name} is not a tensor"));
            };
            let dt = dtype(*ty);
            let size = dt
                .size()
                .ok_or_else(|| format!("output {name}: odai cannot read {dt} tensors"))?;
            let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
            let n: usize = dims.iter().product::<usize>() * size;
            let tensor = value
                .downcast::<ort::value::DynTensorValueType>()
                .map_err(|e| format!("output {name}: {e}"))?;
            let src = tensor.data_ptr().cast::<u8>();
            let data = if n == 0 {
                Vec::new()
            } else {
                // SAFETY: a CPU tensor of `dims` × `size` bytes, alive while `outputs` is.
                unsafe { std::slice::from_raw_parts(src, n) }.to_vec()
            };
            out.push(Tensor {
                name: name.to_owned(),
                dtype: dt,
                shape: dims,
                data,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_is_read_from_the_build_string() {
        assert_eq!(
            super::version_of("ORT Build Info: git-branch=rel-1.32.0, git-commit-id=abc"),
            "1.32.0"
        );
        assert_eq!(super::version_of("something else"), "unknown");
    }
}
