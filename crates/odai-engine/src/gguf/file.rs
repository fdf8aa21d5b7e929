//! The GGUF container, read from bytes: header, metadata, tensor table. Format per ggml's
//! `docs/gguf.md` (v1 with 32-bit counts and lengths, v2 and v3 with 64-bit ones, little-endian):
//! magic `GGUF`, version, tensor count, metadata count, then `key, type, value` entries, then
//! per tensor `name, n_dims, dims (innermost first), ggml type, offset`, then the data, aligned to
//! `general.alignment` (32 by default).
//!
//! Written for odai rather than taken from a GGUF crate so the engine needs nothing but the bytes,
//! and so that every count and length the file declares is checked against the bytes that are
//! left before anything is allocated: a hostile header is an error, never an allocation of what
//! it claims or a panic (the `gguf` fuzz target feeds this reader arbitrary bytes).

use std::collections::HashMap;
use std::fmt;

/// GGML's limit on tensor dimensions (GGML_MAX_DIMS).
const MAX_DIMS: u32 = 4;
/// Arrays of arrays are legal; deeper than this is an attack, not a model.
const MAX_DEPTH: usize = 8;

/// A ggml tensor type odai can read (type ids per ggml.h's `enum ggml_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlDType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
}

impl GgmlDType {
    /// The type of ggml id `id`, if it is one odai reads.
    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            9 => Self::Q8_1,
            10 => Self::Q2K,
            11 => Self::Q3K,
            12 => Self::Q4K,
            13 => Self::Q5K,
            14 => Self::Q6K,
            15 => Self::Q8K,
            30 => Self::BF16,
            _ => return None,
        })
    }

    /// Elements per block (QK4_0 … QK_K in ggml-common.h).
    pub fn block_size(self) -> usize {
        match self {
            Self::F32 | Self::F16 | Self::BF16 => 1,
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q5_1 | Self::Q8_0 | Self::Q8_1 => 32,
            Self::Q2K | Self::Q3K | Self::Q4K | Self::Q5K | Self::Q6K | Self::Q8K => 256,
        }
    }

    /// Bytes per block (sizeof(block_q4_0) … in ggml-common.h).
    pub fn type_size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q5_1 => 24,
            Self::Q8_0 => 34,
            Self::Q8_1 => 36,
            Self::Q2K => 84,
            Self::Q3K => 110,
            Self::Q4K => 144,
            Self::Q5K => 176,
            Self::Q6K => 210,
            Self::Q8K => 292,
        }
    }
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn to_f32(&self) -> Option<f32> {
        match self {
            Value::F32(v) => Some(*v),
            _ => None,
        }
    }
}

/// A tensor's entry in the table. `dims` are outermost first (rows, then columns), the reverse
/// of the file's order, as candle and the kernels index them.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub ggml_dtype: GgmlDType,
    pub dims: Vec<usize>,
    /// Bytes from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// The element count; the reader has checked that the product does not overflow.
    pub fn elem_count(&self) -> usize {
        self.dims.iter().product()
    }
}

/// A GGUF file's header and tensor table.
#[derive(Clone, Debug, Default)]
pub struct Content {
    pub version: u32,
    pub metadata: HashMap<String, Value>,
    pub tensor_infos: HashMap<String, TensorInfo>,
    /// Where the data section starts, from the start of the file.
    pub tensor_data_offset: u64,
}

/// Why a header cannot be read; the text goes into odai's one-line error.
#[derive(Clone, Debug, PartialEq)]
pub enum ReadError {
    /// Not a GGUF file at all.
    Magic(u32),
    /// A tensor of a type odai does not read (ggml type id).
    UnknownType { tensor: String, id: u32 },
    /// Anything else: truncated, inconsistent or hostile.
    Corrupt(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Magic(m) => write!(f, "unknown magic 0x{m:08x}"),
            ReadError::UnknownType { tensor, id } => write!(f, "tensor {tensor} is ggml type {id}"),
            ReadError::Corrupt(why) => write!(f, "gguf: {why}"),
        }
    }
}

fn corrupt<T>(why: impl Into<String>) -> Result<T, ReadError> {
    Err(ReadError::Corrupt(why.into()))
}

/// A cursor over the file's bytes that refuses to read past the end.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    /// v1 files use 32-bit counts and string lengths.
    wide: bool,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ReadError> {
        if n > self.remaining() {
            return corrupt(format!(
                "the file ends inside {what} (at byte {}, {n} bytes needed)",
                self.at
            ));
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ReadError> {
        Ok(self.take(N, what)?.try_into().expect("N bytes taken"))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ReadError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, ReadError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A count or length: u32 in v1, u64 after.
    fn len(&mut self, what: &str) -> Result<u64, ReadError> {
        if self.wide {
            self.u64(what)
        } else {
            self.u32(what).map(u64::from)
        }
    }

    fn string(&mut self, what: &str) -> Result<String, ReadError> {
        let len = self.len(what)?;
        if len > self.remaining() as u64 {
            return corrupt(format!(
                "{what} is {len} bytes long, only {} remaining",
                self.remaining()
            ));
        }
        let bytes = self.take(len as usize, what)?;
        // Lossy, as llama.cpp reads them: a vocabulary may hold byte tokens that are not UTF-8.
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn value(&mut self, ty: u32, depth: usize, key: &str) -> Result<Value, ReadError> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>(key)?[0]),
            1 => Value::I8(self.array::<1>(key)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array(key)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(key)?)),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(i32::from_le_bytes(self.array(key)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(key)?)),
            7 => match self.array::<1>(key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return corrupt(format!("{key}: a bool of {b}")),
            },
            8 => Value::String(self.string(key)?),
            9 => {
                if depth >= MAX_DEPTH {
                    return corrupt(format!("{key}: arrays nested deeper than {MAX_DEPTH}"));
                }
                let ty = self.u32(key)?;
                let n = self.len(key)?;
                // Every element takes at least one byte: a count past the bytes left is a lie,
                // refused before anything is allocated for it.
                if n > self.remaining() as u64 {
                    return corrupt(format!(
                        "{key}: an array of {n} elements, only {} bytes remaining",
                        self.remaining()
                    ));
                }
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(ty, depth + 1, key)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(i64::from_le_bytes(self.array(key)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(key)?)),
            t => return corrupt(format!("{key}: unknown value type {t}")),
        })
    }
}

impl Content {
    /// Reads the header and tensor table at the start of `bytes` (the whole file: the data
    /// section's offset is checked against its length by the caller).
    pub fn read(bytes: &[u8]) -> Result<Content, ReadError> {
        let mut c = Cursor {
            bytes,
            at: 0,
            wide: true,
        };
        if bytes.len() < 4 {
            return corrupt(format!(
                "{} bytes: too short for a GGUF header",
                bytes.len()
            ));
        }
        let magic = c.u32("the magic")?;
        // "GGUF" read as a little-endian u32.
        if magic != 0x4655_4747 {
            return Err(ReadError::Magic(magic));
        }
        let version = c.u32("the version")?;
        match version {
            1 => c.wide = false,
            2 | 3 => {}
            v => return corrupt(format!("unsupported GGUF version {v} (odai reads 1 to 3)")),
        }
        let tensor_count = c.len("the tensor count")?;
        let metadata_count = c.len("the metadata count")?;
        // The least each entry can take: a metadata entry a key length, a type and one byte; a
        // tensor a name length, n_dims, a type and an offset.
        let prefix = if c.wide { 8 } else { 4 };
        let needed = metadata_count
            .saturating_mul(prefix + 4 + 1)
            .saturating_add(tensor_count.saturating_mul(prefix + 4 + 4 + 8));
        if needed > c.remaining() as u64 {
            return corrupt(format!(
                "header declares {tensor_count} tensors and {metadata_count} metadata entries, \
                 needs at least {needed} bytes, only {} remaining",
                c.remaining()
            ));
        }
        let mut metadata = HashMap::with_capacity(metadata_count as usize);
        for _ in 0..metadata_count {
            let key = c.string("a metadata key")?;
            let ty = c.u32(&key)?;
            let value = c.value(ty, 0, &key)?;
            metadata.insert(key, value);
        }
        let mut tensor_infos = HashMap::with_capacity(tensor_count as usize);
        for _ in 0..tensor_count {
            let name = c.string("a tensor name")?;
            let n_dims = c.u32(&name)?;
            if n_dims > MAX_DIMS {
                return corrupt(format!(
                    "tensor {name} has {n_dims} dimensions (ggml has at most {MAX_DIMS})"
                ));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                let d = c.u64(&name)?;
                let Ok(d) = usize::try_from(d) else {
                    return corrupt(format!("tensor {name} has a dimension of {d}"));
                };
                dims.push(d);
            }
            dims.reverse();
            let id = c.u32(&name)?;
            let Some(ggml_dtype) = GgmlDType::from_id(id) else {
                return Err(ReadError::UnknownType { tensor: name, id });
            };
            let offset = c.u64(&name)?;
            tensor_infos.insert(
                name,
                TensorInfo {
                    ggml_dtype,
                    dims,
                    offset,
                },
            );
        }
        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(Value::U32(a)) if *a > 0 && a.is_power_of_two() => u64::from(*a),
            Some(Value::U32(a)) => {
                return corrupt(format!(
                    "general.alignment is {a}: it must be a power of two"
                ));
            }
            Some(_) => return corrupt("general.alignment is not a u32"),
        };
        let tensor_data_offset = (c.at as u64).div_ceil(alignment) * alignment;
        Ok(Content {
            version,
            metadata,
            tensor_infos,
            tensor_data_offset,
        })
    }
}
