//! TensorFlow Lite as a runtime for tensor models, through its C API
//! (tensorflow/lite/core/c/c_api.h) opened at run time: `--runtime-lib PATH`, else
//! `ODAI_TFLITE_LIB`, else `libtensorflowlite_c.so` on the loader's search path. The PyPI wheels
//! `pymicro-wakeword` and `pyopen-wakeword` ship one (`*/lib/libtensorflowlite_c.so`, TF Lite
//! 2.17). Bound by hand with libloading rather than a -sys crate: the tflite crates build
//! TensorFlow from source (hours, and a download), and odai needs two dozen functions.
//!
//! Delegates: `default` is the interpreter as the C API makes it (TF Lite itself applies XNNPACK
//! to float graphs it can), `xnnpack` asks for the XNNPACK delegate explicitly with the run's
//! thread count.

use std::ffi::{CStr, CString, c_char, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::Error;
use crate::runtime::tensor::{DType, Dim, Signature, Tensor, TensorSpec};
use crate::runtime::{LoadOptions, Runtime, RuntimeInfo};

/// The delegates `--provider` accepts for TF Lite.
pub const PROVIDERS: &[&str] = &["default", "xnnpack"];

pub const INSTALL_HINT: &str = "install a wheel that ships it (`pip install pymicro-wakeword==2.5.0`, \
glibc >= 2.35) and point odai at it: ODAI_TFLITE_LIB=$(python3 -c 'import pymicro_wakeword,os; \
print(os.path.dirname(pymicro_wakeword.__file__)+\"/lib/libtensorflowlite_c.so\")'), or \
--runtime-lib PATH";

type Status = i32;
const OK: Status = 0;

/// TfLiteXNNPackDelegateOptions is returned by value and has grown fields across releases; it
/// is received into a buffer larger than any release's struct (the C ABIs odai targets return
/// structs this size through a caller-provided pointer, so the callee writes only its own size),
/// and only `num_threads`, its first field in every release, is set.
#[repr(C, align(8))]
struct XnnOptions([u8; 256]);

#[allow(non_snake_case)]
struct Api {
    _lib: libloading::Library,
    path: PathBuf,
    TfLiteVersion: unsafe extern "C" fn() -> *const c_char,
    TfLiteModelCreateFromFile: unsafe extern "C" fn(*const c_char) -> *mut c_void,
    TfLiteModelDelete: unsafe extern "C" fn(*mut c_void),
    TfLiteInterpreterOptionsCreate: unsafe extern "C" fn() -> *mut c_void,
    TfLiteInterpreterOptionsDelete: unsafe extern "C" fn(*mut c_void),
    TfLiteInterpreterOptionsSetNumThreads: unsafe extern "C" fn(*mut c_void, i32),
    TfLiteInterpreterOptionsAddDelegate: unsafe extern "C" fn(*mut c_void, *mut c_void),
    TfLiteInterpreterCreate: unsafe extern "C" fn(*const c_void, *const c_void) -> *mut c_void,
    TfLiteInterpreterDelete: unsafe extern "C" fn(*mut c_void),
    TfLiteInterpreterAllocateTensors: unsafe extern "C" fn(*mut c_void) -> Status,
    TfLiteInterpreterResizeInputTensor:
        unsafe extern "C" fn(*mut c_void, i32, *const i32, i32) -> Status,
    TfLiteInterpreterGetInputTensorCount: unsafe extern "C" fn(*const c_void) -> i32,
    TfLiteInterpreterGetInputTensor: unsafe extern "C" fn(*const c_void, i32) -> *mut c_void,
    TfLiteInterpreterGetOutputTensorCount: unsafe extern "C" fn(*const c_void) -> i32,
    TfLiteInterpreterGetOutputTensor: unsafe extern "C" fn(*const c_void, i32) -> *const c_void,
    TfLiteInterpreterInvoke: unsafe extern "C" fn(*mut c_void) -> Status,
    TfLiteTensorType: unsafe extern "C" fn(*const c_void) -> i32,
    TfLiteTensorNumDims: unsafe extern "C" fn(*const c_void) -> i32,
    TfLiteTensorDim: unsafe extern "C" fn(*const c_void, i32) -> i32,
    TfLiteTensorByteSize: unsafe extern "C" fn(*const c_void) -> usize,
    TfLiteTensorName: unsafe extern "C" fn(*const c_void) -> *const c_char,
    TfLiteTensorCopyFromBuffer: unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> Status,
    TfLiteTensorCopyToBuffer: unsafe extern "C" fn(*const c_void, *mut c_void, usize) -> Status,
    TfLiteXNNPackDelegateOptionsDefault: unsafe extern "C" fn() -> XnnOptions,
    TfLiteXNNPackDelegateCreate: unsafe extern "C" fn(*const XnnOptions) -> *mut c_void,
    TfLiteXNNPackDelegateDelete: unsafe extern "C" fn(*mut c_void),
}

static API: OnceLock<Result<Api, String>> = OnceLock::new();

pub fn library_path(given: Option<&Path>) -> PathBuf {
    if let Some(p) = given {
        return p.to_owned();
    }
    match std::env::var_os("ODAI_TFLITE_LIB") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(format!(
            "{}tensorflowlite_c{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )),
    }
}

fn open(path: &Path) -> Result<Api, String> {
    if path.components().count() > 1 && !path.exists() {
        return Err(format!(
            "TensorFlow Lite's library {} does not exist: {INSTALL_HINT}",
            path.display()
        ));
    }
    // SAFETY: opening a library runs its initialisers; libtensorflowlite_c's are TF Lite's own.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| {
        format!(
            "TensorFlow Lite's library {} could not be opened ({e}): {INSTALL_HINT}",
            path.display()
        )
    })?;
    macro_rules! sym {
        ($name:ident) => {
            // SAFETY: the symbol's type is the C API's declaration of it (c_api.h, 2.17).
            *unsafe { lib.get(concat!(stringify!($name), "\0").as_bytes()) }.map_err(|e| {
                format!(
                    "{} is not TensorFlow Lite's C library (no {}: {e})",
                    path.display(),
                    stringify!($name)
                )
            })?
        };
    }
    Ok(Api {
        TfLiteVersion: sym!(TfLiteVersion),
        TfLiteModelCreateFromFile: sym!(TfLiteModelCreateFromFile),
        TfLiteModelDelete: sym!(TfLiteModelDelete),
        TfLiteInterpreterOptionsCreate: sym!(TfLiteInterpreterOptionsCreate),
        TfLiteInterpreterOptionsDelete: sym!(TfLiteInterpreterOptionsDelete),
        TfLiteInterpreterOptionsSetNumThreads: sym!(TfLiteInterpreterOptionsSetNumThreads),
        TfLiteInterpreterOptionsAddDelegate: sym!(TfLiteInterpreterOptionsAddDelegate),
        TfLiteInterpreterCreate: sym!(TfLiteInterpreterCreate),
        TfLiteInterpreterDelete: sym!(TfLiteInterpreterDelete),
        TfLiteInterpreterAllocateTensors: sym!(TfLiteInterpreterAllocateTensors),
        TfLiteInterpreterResizeInputTensor: sym!(TfLiteInterpreterResizeInputTensor),
        TfLiteInterpreterGetInputTensorCount: sym!(TfLiteInterpreterGetInputTensorCount),
        TfLiteInterpreterGetInputTensor: sym!(TfLiteInterpreterGetInputTensor),
        TfLiteInterpreterGetOutputTensorCount: sym!(TfLiteInterpreterGetOutputTensorCount),
        TfLiteInterpreterGetOutputTensor: sym!(TfLiteInterpreterGetOutputTensor),
        TfLiteInterpreterInvoke: sym!(TfLiteInterpreterInvoke),
        TfLiteTensorType: sym!(TfLiteTensorType),
        TfLiteTensorNumDims: sym!(TfLiteTensorNumDims),
        TfLiteTensorDim: sym!(TfLiteTensorDim),
        TfLiteTensorByteSize: sym!(TfLiteTensorByteSize),
        TfLiteTensorName: sym!(TfLiteTensorName),
        TfLiteTensorCopyFromBuffer: sym!(TfLiteTensorCopyFromBuffer),
        TfLiteTensorCopyToBuffer: sym!(TfLiteTensorCopyToBuffer),
        TfLiteXNNPackDelegateOptionsDefault: sym!(TfLiteXNNPackDelegateOptionsDefault),
        TfLiteXNNPackDelegateCreate: sym!(TfLiteXNNPackDelegateCreate),
        TfLiteXNNPackDelegateDelete: sym!(TfLiteXNNPackDelegateDelete),
        path: path.to_owned(),
        _lib: lib,
    })
}

fn api(given: Option<&Path>) -> Result<&'static Api, Error> {
    let path = library_path(given);
    match API.get_or_init(|| open(&path)) {
        Ok(a) if given.is_some() && a.path != path => Err(Error::Invalid {
            flag: "--runtime-lib".into(),
            problem: format!(
                "this process already opened TensorFlow Lite from {}; one library per process",
                a.path.display()
            ),
        }),
        Ok(a) => Ok(a),
        Err(e) => Err(Error::Runtime {
            runtime: "tflite".into(),
            problem: e.clone(),
        }),
    }
}

/// TfLiteType (tensorflow/lite/core/c/c_api_types.h).
fn dtype(t: i32) -> DType {
    match t {
        1 => DType::F32,
        2 => DType::I32,
        3 => DType::U8,
        4 => DType::I64,
        5 => DType::String,
        6 => DType::Bool,
        7 => DType::I16,
        9 => DType::I8,
        10 => DType::F16,
        11 => DType::F64,
        13 => DType::U64,
        16 => DType::U32,
        17 => DType::U16,
        19 => DType::Bf16,
        _ => DType::Other,
    }
}

/// A model loaded in a TF Lite interpreter.
pub struct TfliteRuntime {
    api: &'static Api,
    model: *mut c_void,
    interpreter: *mut c_void,
    delegate: *mut c_void,
    signature: Signature,
    /// The inputs' declared shapes from the flatbuffer (-1: dynamic).
    declared: Vec<Vec<i32>>,
    allocated: bool,
    threads: u32,
    provider: String,
    version: String,
}

impl Drop for TfliteRuntime {
    fn drop(&mut self) {
        // SAFETY: pointers this struct created and owns; the interpreter goes before the
        // delegate and model it uses (c_api.h: both must outlive it).
        unsafe {
            (self.api.TfLiteInterpreterDelete)(self.interpreter);
            if !self.delegate.is_null() {
                (self.api.TfLiteXNNPackDelegateDelete)(self.delegate);
            }
            (self.api.TfLiteModelDelete)(self.model);
        }
    }
}

/// A tensor's current dims (no allocation beyond the Vec: called per input per inference).
///
/// # Safety
/// `t` is a live TfLiteTensor of an interpreter.
unsafe fn dims_of(api: &Api, t: *const c_void) -> Vec<usize> {
    unsafe {
        (0..(api.TfLiteTensorNumDims)(t))
            .map(|i| (api.TfLiteTensorDim)(t, i).max(0) as usize)
            .collect()
    }
}

/// A tensor's name, dtype and current dims.
///
/// # Safety
/// `t` is a live TfLiteTensor of an interpreter.
unsafe fn describe(api: &Api, t: *const c_void) -> (String, DType, Vec<usize>) {
    unsafe {
        let name = (api.TfLiteTensorName)(t);
        let name = if name.is_null() {
            String::new()
        } else {
            CStr::from_ptr(name).to_string_lossy().into_owned()
        };
        (name, dtype((api.TfLiteTensorType)(t)), dims_of(api, t))
    }
}

impl TfliteRuntime {
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<TfliteRuntime, Error> {
        let api = api(opts.library.as_deref())?;
        let provider = opts.provider.clone().unwrap_or_else(|| "default".into());
        if !PROVIDERS.contains(&provider.as_str()) {
            return Err(Error::Invalid {
                flag: "--provider".into(),
                problem: format!(
                    "{provider:?} is not a TF Lite delegate odai knows: choose one of {}",
                    PROVIDERS.join(", ")
                ),
            });
        }
        let model_err = |problem: String| Error::Model {
            file: path.to_owned(),
            problem,
        };
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| model_err("the path has a NUL byte".into()))?;
        // SAFETY: C API calls with pointers checked for null before use; every object created
        // here is owned by the returned struct (or freed on the error paths).
        unsafe {
            let model = (api.TfLiteModelCreateFromFile)(c_path.as_ptr());
            if model.is_null() {
                return Err(model_err(
                    "TensorFlow Lite cannot load it (not a .tflite flatbuffer, or corrupt)".into(),
                ));
            }
            let options = (api.TfLiteInterpreterOptionsCreate)();
            if let Some(t) = opts.threads {
                (api.TfLiteInterpreterOptionsSetNumThreads)(options, t as i32);
            }
            let mut delegate = std::ptr::null_mut();
            if provider == "xnnpack" {
                let mut o = (api.TfLiteXNNPackDelegateOptionsDefault)();
                let threads = opts.threads.unwrap_or(1) as i32;
                o.0[..4].copy_from_slice(&threads.to_ne_bytes());
                delegate = (api.TfLiteXNNPackDelegateCreate)(&o);
                if delegate.is_null() {
                    (api.TfLiteInterpreterOptionsDelete)(options);
                    (api.TfLiteModelDelete)(model);
                    return Err(Error::Runtime {
                        runtime: "tflite".into(),
                        problem: "the XNNPACK delegate could not be created".into(),
                    });
                }
                (api.TfLiteInterpreterOptionsAddDelegate)(options, delegate);
            }
            let interpreter = (api.TfLiteInterpreterCreate)(model, options);
            (api.TfLiteInterpreterOptionsDelete)(options);
            if interpreter.is_null() {
                if !delegate.is_null() {
                    (api.TfLiteXNNPackDelegateDelete)(delegate);
                }
                (api.TfLiteModelDelete)(model);
                return Err(model_err(
                    "TensorFlow Lite cannot build an interpreter for it (an operator this library \
                     lacks, or a delegate that refused the graph: see the lines above)"
                        .into(),
                ));
            }
            let mut rt = TfliteRuntime {
                api,
                model,
                interpreter,
                delegate,
                signature: Signature::default(),
                declared: Vec::new(),
                allocated: false,
                threads: opts.threads.unwrap_or(1),
                provider,
                version: CStr::from_ptr((api.TfLiteVersion)())
                    .to_string_lossy()
                    .into_owned(),
            };
            // Shapes given for inputs (--shape) are set before the first allocation: a model with
            // a dynamic input (openWakeWord's melspectrogram) cannot allocate at its placeholder
            // shape, and an interpreter whose allocation failed does not recover.
            for i in 0..(api.TfLiteInterpreterGetInputTensorCount)(interpreter) {
                let t = (api.TfLiteInterpreterGetInputTensor)(interpreter, i);
                let (name, _, _) = describe(api, t);
                if let Some((_, dims)) = opts.shapes.iter().find(|(n, _)| *n == name) {
                    let d: Vec<i32> = dims.iter().map(|&x| x as i32).collect();
                    if (api.TfLiteInterpreterResizeInputTensor)(
                        interpreter,
                        i,
                        d.as_ptr(),
                        d.len() as i32,
                    ) != OK
                    {
                        return Err(model_err(format!(
                            "input {name} cannot take shape {dims:?}"
                        )));
                    }
                }
            }
            // An input still dynamic (no --shape for it) cannot allocate at its placeholder
            // shape: allocation waits for the first inference's shapes, and the signature says
            // which dim is dynamic.
            rt.declared = std::fs::read(path)
                .ok()
                .and_then(|b| super::inspect::tflite_input_shapes(&b).ok())
                .unwrap_or_default();
            let dynamic = rt.declared.iter().enumerate().any(|(i, d)| {
                d.contains(&-1) && {
                    let t = (api.TfLiteInterpreterGetInputTensor)(interpreter, i as i32);
                    let (name, _, _) = describe(api, t);
                    !opts.shapes.iter().any(|(n, _)| *n == name)
                }
            });
            rt.allocated = !dynamic && (api.TfLiteInterpreterAllocateTensors)(interpreter) == OK;
            rt.signature = rt.read_signature();
            Ok(rt)
        }
    }

    fn read_signature(&self) -> Signature {
        let a = self.api;
        let spec = |t: *const c_void| {
            // SAFETY: a live tensor of this interpreter.
            let (name, dtype, dims) = unsafe { describe(a, t) };
            // The C API gives current dims only; a dynamic dim (-1 in the flatbuffer's
            // shape_signature) reads as its placeholder, 1, until resized (--shape).
            let shape = dims.into_iter().map(|d| Dim::Fixed(d as u64)).collect();
            TensorSpec { name, dtype, shape }
        };
        // SAFETY: indices below the interpreter's own counts.
        unsafe {
            Signature {
                inputs: (0..(a.TfLiteInterpreterGetInputTensorCount)(self.interpreter))
                    .map(|i| {
                        let mut s = spec((a.TfLiteInterpreterGetInputTensor)(self.interpreter, i));
                        if let Some(d) = self.declared.get(i as usize)
                            && d.len() == s.shape.len()
                        {
                            for (dim, &decl) in s.shape.iter_mut().zip(d) {
                                if decl < 0 {
                                    *dim = Dim::Symbolic("?".into());
                                }
                            }
                        }
                        s
                    })
                    .collect(),
                outputs: (0..(a.TfLiteInterpreterGetOutputTensorCount)(self.interpreter))
                    .map(|i| spec((a.TfLiteInterpreterGetOutputTensor)(self.interpreter, i)))
                    .collect(),
            }
        }
    }
}

impl Runtime for TfliteRuntime {
    fn info(&self) -> RuntimeInfo {
        RuntimeInfo {
            runtime: "tflite".into(),
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
        let a = self.api;
        // SAFETY: tensors fetched from this interpreter by index below its counts; buffers are
        // checked against the tensor's byte size before each copy.
        unsafe {
            let count = (a.TfLiteInterpreterGetInputTensorCount)(self.interpreter);
            if inputs.len() != count as usize {
                return Err(format!(
                    "{} inputs given, the model takes {count}",
                    inputs.len()
                ));
            }
            let mut resized = false;
            for (i, t) in inputs.iter().enumerate() {
                let tensor = (a.TfLiteInterpreterGetInputTensor)(self.interpreter, i as i32);
                if dims_of(a, tensor) != t.shape {
                    let d: Vec<i32> = t.shape.iter().map(|&d| d as i32).collect();
                    if (a.TfLiteInterpreterResizeInputTensor)(
                        self.interpreter,
                        i as i32,
                        d.as_ptr(),
                        d.len() as i32,
                    ) != OK
                    {
                        return Err(format!("input {}: cannot resize to {:?}", t.name, t.shape));
                    }
                    resized = true;
                }
            }
            if resized || !self.allocated {
                self.allocated = (a.TfLiteInterpreterAllocateTensors)(self.interpreter) == OK;
                if !self.allocated {
                    return Err(
                        "TensorFlow Lite could not allocate tensors for the new shapes".into(),
                    );
                }
                self.signature = self.read_signature();
            }
            for (i, t) in inputs.iter().enumerate() {
                let tensor = (a.TfLiteInterpreterGetInputTensor)(self.interpreter, i as i32);
                let want = (a.TfLiteTensorByteSize)(tensor);
                if want != t.data.len() {
                    return Err(format!(
                        "input {}: {} bytes given, the tensor holds {want}",
                        t.name,
                        t.data.len()
                    ));
                }
                if (a.TfLiteTensorCopyFromBuffer)(tensor, t.data.as_ptr().cast(), want) != OK {
                    return Err(format!("input {}: copy failed", t.name));
                }
            }
            if (a.TfLiteInterpreterInvoke)(self.interpreter) != OK {
                return Err("TensorFlow Lite's Invoke failed (its message is on stderr)".into());
            }
            let mut out = Vec::new();
            for i in 0..(a.TfLiteInterpreterGetOutputTensorCount)(self.interpreter) {
                let tensor = (a.TfLiteInterpreterGetOutputTensor)(self.interpreter, i);
                let (name, dtype, shape) = describe(a, tensor);
                let mut data = vec![0u8; (a.TfLiteTensorByteSize)(tensor)];
                if !data.is_empty()
                    && (a.TfLiteTensorCopyToBuffer)(tensor, data.as_mut_ptr().cast(), data.len())
                        != OK
                {
                    return Err(format!("output {name}: copy failed"));
                }
                out.push(Tensor {
                    name,
                    dtype,
                    shape,
                    data,
                });
            }
            Ok(out)
        }
    }
}
