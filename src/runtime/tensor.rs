//! Tensor models — wake word, voice activity, classifiers — as ONNX Runtime and TensorFlow Lite
//! run them: a model's [`Signature`] (inputs and outputs, dtypes, shapes with symbolic dims
//! named), [`Tensor`]s as raw bytes in the machine's byte order (what both C APIs copy in and
//! out), and the inputs a benchmark feeds: seeded random tensors of the model's shapes, a
//! constant (`sr=16000`), or a recorded `.npy` file.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// An element type, named as numpy names it (`f32`, `i64`…).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F16,
    Bf16,
    F64,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    Bool,
    /// Strings: listed by inspection, but odai cannot make or feed them.
    String,
    /// A type odai does not handle (complex, 4-bit, 8-bit floats, resources…).
    Other,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
            DType::F64 => "f64",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I16 => "i16",
            DType::U16 => "u16",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::I64 => "i64",
            DType::U64 => "u64",
            DType::Bool => "bool",
            DType::String => "string",
            DType::Other => "other",
        }
    }

    /// Bytes per element; `None` for strings and types odai does not handle.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F16 | DType::Bf16 | DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::String | DType::Other => return None,
        })
    }

    /// numpy's `descr` for this type in this machine's byte order (the `.npy` header's).
    fn npy_descr(self) -> Option<&'static str> {
        let little = cfg!(target_endian = "little");
        Some(match (self, little) {
            (DType::I8, _) => "|i1",
            (DType::U8, _) => "|u1",
            (DType::Bool, _) => "|b1",
            (DType::F16, true) => "<f2",
            (DType::F32, true) => "<f4",
            (DType::F64, true) => "<f8",
            (DType::I16, true) => "<i2",
            (DType::U16, true) => "<u2",
            (DType::I32, true) => "<i4",
            (DType::U32, true) => "<u4",
            (DType::I64, true) => "<i8",
            (DType::U64, true) => "<u8",
            (DType::F16, false) => ">f2",
            (DType::F32, false) => ">f4",
            (DType::F64, false) => ">f8",
            (DType::I16, false) => ">i2",
            (DType::U16, false) => ">u2",
            (DType::I32, false) => ">i4",
            (DType::U32, false) => ">u4",
            (DType::I64, false) => ">i8",
            (DType::U64, false) => ">u8",
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One dimension of a declared shape: a size, or a symbolic one (`batch`; `?` when unnamed),
/// which a benchmark must be told (`--shape input=1x512`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(u64),
    Symbolic(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(s) => f.write_str(s),
        }
    }
}

/// An input or output as the model declares it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

impl fmt::Display for TensorSpec {
    /// `input f32[batch,?]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.shape.iter().map(Dim::to_string).collect();
        write!(f, "{} {}[{}]", self.name, self.dtype, dims.join(","))
    }
}

/// A model's inputs and outputs, in the order the runtime takes and gives them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// A tensor's values as raw bytes in the machine's byte order, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Tensor {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// Every element as an f64 (for checking outputs: a probability, a score); `None` for a type
    /// odai does not read.
    pub fn values_f64(&self) -> Option<Vec<f64>> {
        let d = &self.data;
        macro_rules! each {
            ($t:ty, $n:expr) => {
                d.chunks_exact($n)
                    .map(|c| <$t>::from_ne_bytes(c.try_into().unwrap()) as f64)
                    .collect()
            };
        }
        Some(match self.dtype {
            DType::F32 => each!(f32, 4),
            DType::F64 => each!(f64, 8),
            DType::I8 => d.iter().map(|&b| b as i8 as f64).collect(),
            DType::U8 | DType::Bool => d.iter().map(|&b| b as f64).collect(),
            DType::I16 => each!(i16, 2),
            DType::U16 => each!(u16, 2),
            DType::I32 => each!(i32, 4),
            DType::U32 => each!(u32, 4),
            DType::I64 => each!(i64, 8),
            DType::U64 => each!(u64, 8),
            DType::F16 => d
                .chunks_exact(2)
                .map(|c| half::f16::from_ne_bytes([c[0], c[1]]).to_f64())
                .collect(),
            DType::Bf16 => d
                .chunks_exact(2)
                .map(|c| half::bf16::from_ne_bytes([c[0], c[1]]).to_f64())
                .collect(),
            DType::String | DType::Other => return None,
        })
    }

    /// A tensor of `dtype` and `shape` with every element `value` (a constant input such as a
    /// sample rate), or why not.
    pub fn filled(name: &str, dtype: DType, shape: &[usize], value: f64) -> Result<Tensor, String> {
        let one: Vec<u8> = match dtype {
            DType::F32 => (value as f32).to_ne_bytes().to_vec(),
            DType::F64 => value.to_ne_bytes().to_vec(),
            DType::F16 => half::f16::from_f64(value).to_ne_bytes().to_vec(),
            DType::Bf16 => half::bf16::from_f64(value).to_ne_bytes().to_vec(),
            DType::I8 => (value as i8).to_ne_bytes().to_vec(),
            DType::U8 => (value as u8).to_ne_bytes().to_vec(),
            DType::Bool => vec![(value != 0.0) as u8],
            DType::I16 => (value as i16).to_ne_bytes().to_vec(),
            DType::U16 => (value as u16).to_ne_bytes().to_vec(),
            DType::I32 => (value as i32).to_ne_bytes().to_vec(),
            DType::U32 => (value as u32).to_ne_bytes().to_vec(),
            DType::I64 => (value as i64).to_ne_bytes().to_vec(),
            DType::U64 => (value as u64).to_ne_bytes().to_vec(),
            DType::String | DType::Other => {
                return Err(format!("odai cannot make {dtype} tensors"));
            }
        };
        let n: usize = shape.iter().product();
        Ok(Tensor {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            data: one.repeat(n),
        })
    }

    /// Seeded random values: floats uniform in [-1, 1) (audio samples, normalised pixels),
    /// integers uniform in 0..=255 for wider types (byte- and token-like inputs, as magika's), the
    /// whole range for 8-bit ones (quantised tensors), booleans either way.
    pub fn random(
        name: &str,
        dtype: DType,
        shape: &[usize],
        rng: &mut Rng,
    ) -> Result<Tensor, String> {
        let n: usize = shape.iter().product();
        let size = dtype
            .size()
            .ok_or_else(|| format!("odai cannot make {dtype} tensors"))?;
        let mut data = Vec::with_capacity(n * size);
        for _ in 0..n {
            let r = rng.below(1 << 24) as f64 / (1u64 << 24) as f64;
            let f = 2.0 * r - 1.0;
            let byte = rng.below(256);
            match dtype {
                DType::F32 => data.extend((f as f32).to_ne_bytes()),
                DType::F64 => data.extend(f.to_ne_bytes()),
                DType::F16 => data.extend(half::f16::from_f64(f).to_ne_bytes()),
                DType::Bf16 => data.extend(half::bf16::from_f64(f).to_ne_bytes()),
                DType::I8 | DType::U8 => data.push(byte as u8),
                DType::Bool => data.push((byte & 1) as u8),
                DType::I16 => data.extend((byte as i16).to_ne_bytes()),
                DType::U16 => data.extend((byte as u16).to_ne_bytes()),
                DType::I32 => data.extend((byte as i32).to_ne_bytes()),
                DType::U32 => data.extend((byte as u32).to_ne_bytes()),
                DType::I64 => data.extend((byte as i64).to_ne_bytes()),
                DType::U64 => data.extend(byte.to_ne_bytes()),
                DType::String | DType::Other => unreachable!("no size"),
            }
        }
        Ok(Tensor {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            data,
        })
    }

    /// Writes this tensor as a `.npy` file (version 1.0), so a run's inputs and outputs can be
    /// looked at in numpy.
    pub fn to_npy(&self) -> Result<Vec<u8>, String> {
        let descr = self
            .dtype
            .npy_descr()
            .ok_or_else(|| format!(".npy has no {} type", self.dtype))?;
        let dims: Vec<String> = self.shape.iter().map(usize::to_string).collect();
        let shape = match dims.len() {
            1 => format!("({},)", dims[0]),
            _ => format!("({})", dims.join(", ")),
        };
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        // The header is padded with spaces to a multiple of 64 bytes, ending in '\n'.
        let unpadded = 10 + header.len() + 1;
        header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(&self.data);
        Ok(out)
    }
}

/// A `.npy` file's array (numpy's format, NEP 1: magic, version, a Python-literal header dict,
/// then the data): hand-read because odai needs the raw bytes of any dtype, handed unchanged to
/// the runtime, where numpy crates deserialize into typed vectors.
pub fn read_npy(path: &Path) -> Result<Tensor, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_npy(&bytes).map_err(|e| format!("{}: not a .npy array odai reads: {e}", path.display()))
}

pub fn parse_npy(bytes: &[u8]) -> Result<Tensor, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("no .npy magic (\\x93NUMPY)".into());
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("format version {v} is not 1, 2 or 3")),
    };
    let header = bytes
        .get(start..start.saturating_add(len))
        .ok_or("the header runs past the end of the file")?;
    let header = std::str::from_utf8(header).map_err(|_| "the header is not text")?;
    let field = |key: &str| -> Result<&str, String> {
        let at = header
            .find(&format!("'{key}'"))
            .ok_or_else(|| format!("the header has no '{key}'"))?;
        let rest = header[at + key.len() + 2..].trim_start();
        rest.strip_prefix(':')
            .map(str::trim_start)
            .ok_or_else(|| format!("the header's '{key}' has no value"))
    };
    let descr = field("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or("the header's 'descr' is not a string")?;
    if field("fortran_order")?.starts_with("True") {
        return Err(
            "Fortran-ordered arrays are not read: save it with np.ascontiguousarray".into(),
        );
    }
    let shape = field("shape")?;
    let shape = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("the header's 'shape' is not a tuple")?;
    let shape = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("shape dimension {s:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dtype = [
        DType::I8,
        DType::U8,
        DType::Bool,
        DType::F16,
        DType::F32,
        DType::F64,
        DType::I16,
        DType::U16,
        DType::I32,
        DType::U32,
        DType::I64,
        DType::U64,
    ]
    .into_iter()
    .find(|d| d.npy_descr() == Some(descr) || (d.size() == Some(1) && descr.ends_with(&d.npy_descr().unwrap()[1..])))
    .ok_or_else(|| {
        format!("dtype {descr:?} is not one odai reads in this byte order (f16/f32/f64, 8 to 64-bit integers, bool)")
    })?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.size().unwrap()))
        .ok_or("the shape overflows")?;
    let data = &bytes[start + len..];
    if data.len() != n {
        return Err(format!(
            "shape {shape:?} of {dtype} needs {n} bytes of data, the file has {}",
            data.len()
        ));
    }
    Ok(Tensor {
        name: String::new(),
        dtype,
        shape,
        data: data.to_vec(),
    })
}

/// Where an input's values come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum InputSource {
    /// Seeded random values of the model's shape.
    Random,
    /// Every element this value (`sr=16000`).
    Constant { value: f64 },
    /// A recorded array: the input's shape (fed every frame), or frames × the input's shape
    /// (frame k is fed on inference k, cycling).
    Npy { path: PathBuf },
    /// The previous model's output of this dtype and size (a pipeline's stage).
    Pipe { from: String },
}

/// `NAME=VALUE` or `NAME=FILE.npy` (`--input`): the input and where its values come from.
pub fn parse_input_arg(s: &str) -> Result<(String, InputSource), String> {
    let (name, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE or NAME=FILE.npy"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{s:?} has no input name before '='"));
    }
    let v = v.trim();
    if let Ok(value) = v.parse::<f64>() {
        return Ok((name.into(), InputSource::Constant { value }));
    }
    if v.ends_with(".npy") {
        return Ok((name.into(), InputSource::Npy { path: v.into() }));
    }
    Err(format!(
        "{s:?}: the value is neither a number nor a .npy file"
    ))
}

/// `NAME=1x512` (`--shape`): an input's whole shape.
pub fn parse_shape_arg(s: &str) -> Result<(String, Vec<usize>), String> {
    let (name, dims) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=DIMS (e.g. input=1x512)"))?;
    let dims = dims
        .trim()
        .split(['x', ','])
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .map_err(|_| format!("{s:?}: dimension {d:?} is not a whole number"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name.trim().into(), dims))
}

/// The concrete shape of `spec` for a run: its fixed dims, with symbolic ones from `--shape`.
pub fn resolve_shape(spec: &TensorSpec, given: Option<&[usize]>) -> Result<Vec<usize>, String> {
    match given {
        Some(dims) => {
            if dims.len() != spec.shape.len() {
                return Err(format!(
                    "--shape {}: {} dims given, the model's input {spec} has {}",
                    spec.name,
                    dims.len(),
                    spec.shape.len()
                ));
            }
            for (d, want) in dims.iter().zip(&spec.shape) {
                if let Dim::Fixed(w) = want
                    && *w != *d as u64
                {
                    return Err(format!(
                        "--shape {}: {d} where the model's input {spec} fixes {w}",
                        spec.name
                    ));
                }
            }
            Ok(dims.to_vec())
        }
        None => spec
            .shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => Ok(*n as usize),
                Dim::Symbolic(s) => Err(format!(
                    "the model's input {spec} has a symbolic dimension {s}: give its shape with \
                     --shape {}=…",
                    spec.name
                )),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trips_and_bad_files_say_why() {
        let t = Tensor {
            name: String::new(),
            dtype: DType::F32,
            shape: vec![2, 3],
            data: (0..6).flat_map(|i| (i as f32).to_ne_bytes()).collect(),
        };
        let bytes = t.to_npy().unwrap();
        assert_eq!(bytes.len() % 64, 24, "header padded to 64: {}", bytes.len());
        assert_eq!(parse_npy(&bytes).unwrap(), t);
        let one = Tensor {
            shape: vec![6],
            ..t.clone()
        };
        assert_eq!(parse_npy(&one.to_npy().unwrap()).unwrap(), one);
        assert_eq!(
            parse_npy(b"hello world").unwrap_err(),
            "no .npy magic (\\x93NUMPY)"
        );
        let short = &bytes[..bytes.len() - 4];
        assert_eq!(
            parse_npy(short).unwrap_err(),
            "shape [2, 3] of f32 needs 24 bytes of data, the file has 20"
        );
        let fortran = String::from_utf8_lossy(&bytes).replace("False", "True ");
        assert!(parse_npy(fortran.as_bytes()).is_err());
    }

    #[test]
    fn shapes_resolve_symbolic_dims_only_from_what_is_given() {
        let spec = TensorSpec {
            name: "input".into(),
            dtype: DType::F32,
            shape: vec![Dim::Symbolic("batch".into()), Dim::Fixed(512)],
        };
        assert_eq!(
            resolve_shape(&spec, None).unwrap_err(),
            "the model's input input f32[batch,512] has a symbolic dimension batch: give its \
             shape with --shape input=…"
        );
        assert_eq!(resolve_shape(&spec, Some(&[1, 512])).unwrap(), vec![1, 512]);
        assert!(
            resolve_shape(&spec, Some(&[1, 256]))
                .unwrap_err()
                .contains("fixes 512")
        );
        assert!(
            resolve_shape(&spec, Some(&[512]))
                .unwrap_err()
                .contains("1 dims given")
        );
        assert_eq!(
            parse_shape_arg("input=1x512").unwrap(),
            ("input".into(), vec![1, 512])
        );
        assert!(parse_shape_arg("input=1xa").is_err());
    }

    #[test]
    fn inputs_parse_constants_and_files() {
        assert_eq!(
            parse_input_arg("sr=16000").unwrap(),
            ("sr".into(), InputSource::Constant { value: 16000.0 })
        );
        assert_eq!(
            parse_input_arg("audio=clip.npy").unwrap(),
            (
                "audio".into(),
                InputSource::Npy {
                    path: "clip.npy".into()
                }
            )
        );
        assert!(parse_input_arg("=1").is_err());
        assert!(parse_input_arg("x=hello").is_err());
    }

    #[test]
    fn random_and_filled_tensors_have_the_shape_and_range() {
        let mut rng = Rng::new(1);
        let t = Tensor::random("x", DType::F32, &[4, 8], &mut rng).unwrap();
        let v = t.values_f64().unwrap();
        assert_eq!(v.len(), 32);
        assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
        assert!(v.iter().any(|&x| x != v[0]), "not constant");
        let i = Tensor::random("i", DType::I32, &[100], &mut rng).unwrap();
        assert!(
            i.values_f64()
                .unwrap()
                .iter()
                .all(|x| (0.0..256.0).contains(x))
        );
        let sr = Tensor::filled("sr", DType::I64, &[], 16000.0).unwrap();
        assert_eq!(sr.values_f64().unwrap(), vec![16000.0]);
        assert!(Tensor::random("s", DType::String, &[1], &mut rng).is_err());
    }
}
