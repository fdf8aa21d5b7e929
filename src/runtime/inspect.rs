//! What a tensor model file holds, read from the file itself (no runtime needed): operator counts
//! and parameters of an ONNX protobuf or a TF Lite flatbuffer. Both formats are read by hand, on
//! the few fields this needs, bounds-checked at every step: the generated-code crates for each
//! schema (prost + onnx.proto, flatbuffers + schema.fbs) would bring build steps and thousands of
//! lines for five fields each, and a malformed file must be an error, never a panic.
//!
//! Formats: onnx/onnx.proto3 (ModelProto, GraphProto, NodeProto, TensorProto, AttributeProto);
//! tensorflow/lite/schema/schema.fbs (Model, OperatorCode, SubGraph, Operator, Tensor, Buffer);
//! the wire formats: protobuf's encoding guide, flatbuffers' internals.

use std::collections::BTreeMap;

use serde::Serialize;

/// A tensor model's contents.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Contents {
    /// `onnx` or `tflite`.
    pub format: String,
    /// ONNX: producer and its version, IR version and opsets; TF Lite: schema version and the
    /// description the converter wrote.
    pub producer: Option<String>,
    pub format_version: Option<String>,
    /// Operators by type (an ONNX node's `domain:op_type` outside the default domain), counted in
    /// every (sub)graph.
    pub operators: BTreeMap<String, u64>,
    pub operator_total: u64,
    /// Elements of the stored weights (ONNX initializers; TF Lite tensors with a buffer).
    pub parameters: u64,
    pub parameter_bytes: u64,
}

// ---- protobuf -------------------------------------------------------------------------------

struct Pb<'a> {
    b: &'a [u8],
    at: usize,
}

enum Val<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> Pb<'a> {
    fn new(b: &'a [u8]) -> Self {
        Pb { b, at: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.at).ok_or("a varint runs past the end")?;
            self.at += 1;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a varint longer than 10 bytes".into())
    }

    /// The next field: its number and value; `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Val<'a>)>, String> {
        if self.at >= self.b.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let v = match key & 7 {
            0 => Val::Varint(self.varint()?),
            1 => self.skip(8)?,
            5 => self.skip(4)?,
            2 => {
                let n = self.varint()? as usize;
                let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
                let end = end.ok_or("a length-delimited field runs past the end")?;
                let s = &self.b[self.at..end];
                self.at = end;
                Val::Bytes(s)
            }
            w => return Err(format!("wire type {w} (groups are not ONNX)")),
        };
        Ok(Some((key >> 3, v)))
    }

    fn skip(&mut self, n: usize) -> Result<Val<'a>, String> {
        if self.at + n > self.b.len() {
            return Err("a fixed-width field runs past the end".into());
        }
        self.at += n;
        Ok(Val::Fixed)
    }
}

/// Bytes per element of ONNX's TensorProto.DataType, in bits (4-bit types are half a byte).
fn onnx_bits(dt: u64) -> u64 {
    match dt {
        2 | 3 | 9 | 17..=20 => 8,
        4 | 5 | 10 | 16 => 16,
        1 | 6 | 12 => 32,
        7 | 11 | 13 | 14 => 64,
        15 => 128,
        21..=23 => 4,
        _ => 0,
    }
}

/// A stored tensor (TensorProto: dims 1, data_type 2) counted as parameters.
fn onnx_tensor(t: &[u8], c: &mut Contents) -> Result<(), String> {
    let (mut n, mut dt) = (1u64, 0u64);
    let mut q = Pb::new(t);
    while let Some((f, v)) = q.field()? {
        match (f, v) {
            (1, Val::Varint(d)) => n = n.saturating_mul(d),
            (1, Val::Bytes(packed)) => {
                let mut r = Pb::new(packed);
                while r.at < packed.len() {
                    n = n.saturating_mul(r.varint()?);
                }
            }
            (2, Val::Varint(d)) => dt = d,
            _ => {}
        }
    }
    c.parameters = c.parameters.saturating_add(n);
    c.parameter_bytes = c
        .parameter_bytes
        .saturating_add(n.saturating_mul(onnx_bits(dt)) / 8);
    Ok(())
}

fn onnx_graph(g: &[u8], c: &mut Contents, depth: u32) -> Result<(), String> {
    if depth > 64 {
        return Err("subgraphs nested more than 64 deep".into());
    }
    let mut p = Pb::new(g);
    while let Some((f, v)) = p.field()? {
        match (f, v) {
            (1, Val::Bytes(node)) => {
                let (mut op, mut domain) = (String::new(), String::new());
                let mut q = Pb::new(node);
                while let Some((f, v)) = q.field()? {
                    match (f, v) {
                        (4, Val::Bytes(s)) => op = String::from_utf8_lossy(s).into_owned(),
                        (7, Val::Bytes(s)) => domain = String::from_utf8_lossy(s).into_owned(),
                        (5, Val::Bytes(attr)) => {
                            // If/Loop/Scan bodies: AttributeProto.g (6) and .graphs (11).
                            let mut a = Pb::new(attr);
                            while let Some((f, v)) = a.field()? {
                                match (f, v) {
                                    (6 | 11, Val::Bytes(sub)) => onnx_graph(sub, c, depth + 1)?,
                                    // A Constant node's value (AttributeProto.t): exporters such
                                    // as spox store weights this way, not as initializers.
                                    (5, Val::Bytes(t)) => onnx_tensor(t, c)?,
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
                let name = if domain.is_empty() || domain == "ai.onnx" {
                    op
                } else {
                    format!("{domain}:{op}")
                };
                *c.operators.entry(name).or_default() += 1;
                c.operator_total += 1;
            }
            (5, Val::Bytes(t)) => onnx_tensor(t, c)?,
            _ => {}
        }
    }
    Ok(())
}

/// An ONNX model's contents.
pub fn onnx(bytes: &[u8]) -> Result<Contents, String> {
    let mut c = Contents {
        format: "onnx".into(),
        ..Default::default()
    };
    let (mut ir, mut producer, mut version, mut opsets, mut graph) =
        (None, None, None, Vec::new(), None);
    let mut p = Pb::new(bytes);
    while let Some((f, v)) = p.field()? {
        match (f, v) {
            (1, Val::Varint(v)) => ir = Some(v),
            (2, Val::Bytes(s)) => producer = Some(String::from_utf8_lossy(s).into_owned()),
            (3, Val::Bytes(s)) => version = Some(String::from_utf8_lossy(s).into_owned()),
            (7, Val::Bytes(g)) => graph = Some(g),
            (8, Val::Bytes(o)) => {
                let (mut domain, mut v) = (String::new(), 0);
                let mut q = Pb::new(o);
                while let Some((f, val)) = q.field()? {
                    match (f, val) {
                        (1, Val::Bytes(s)) => domain = String::from_utf8_lossy(s).into_owned(),
                        (2, Val::Varint(n)) => v = n,
                        _ => {}
                    }
                }
                opsets.push(if domain.is_empty() {
                    format!("opset {v}")
                } else {
                    format!("{domain} {v}")
                });
            }
            _ => {}
        }
    }
    let graph = graph.ok_or("no graph (field 7 of ModelProto): not an ONNX model")?;
    onnx_graph(graph, &mut c, 0)?;
    c.producer = producer.map(|p| match version {
        Some(v) if !v.is_empty() => format!("{p} {v}"),
        _ => p,
    });
    c.format_version = ir.map(|ir| {
        let mut s = format!("IR {ir}");
        if !opsets.is_empty() {
            s.push_str(&format!(", {}", opsets.join(", ")));
        }
        s
    });
    Ok(c)
}

// ---- flatbuffers ----------------------------------------------------------------------------

struct Fb<'a>(&'a [u8]);

impl Fb<'_> {
    fn u32_at(&self, at: usize) -> Result<u32, String> {
        let s = self
            .0
            .get(at..at.checked_add(4).ok_or("offset overflow")?)
            .ok_or_else(|| format!("offset {at} is past the end"))?;
        Ok(u32::from_le_bytes(s.try_into().unwrap()))
    }

    fn u16_at(&self, at: usize) -> Result<u16, String> {
        let s = self
            .0
            .get(at..at + 2)
            .ok_or_else(|| format!("offset {at} is past the end"))?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }

    /// Where field `i` of the table at `t` is stored, if present.
    fn field(&self, t: usize, i: usize) -> Result<Option<usize>, String> {
        let soff = self.u32_at(t)? as i32 as i64;
        let vt = t as i64 - soff;
        if vt < 0 {
            return Err("a vtable before the start".into());
        }
        let vt = vt as usize;
        let vt_size = self.u16_at(vt)? as usize;
        let slot = 4 + 2 * i;
        if slot + 2 > vt_size {
            return Ok(None);
        }
        let off = self.u16_at(vt + slot)? as usize;
        Ok((off != 0).then_some(t + off))
    }

    /// The target of the offset stored at `at`.
    fn deref(&self, at: usize) -> Result<usize, String> {
        at.checked_add(self.u32_at(at)? as usize)
            .filter(|&p| p < self.0.len())
            .ok_or_else(|| format!("an offset at {at} points past the end"))
    }

    /// A vector field: (first element's position, length).
    fn vector(&self, t: usize, i: usize) -> Result<(usize, usize), String> {
        match self.field(t, i)? {
            None => Ok((0, 0)),
            Some(at) => {
                let v = self.deref(at)?;
                let n = self.u32_at(v)? as usize;
                if n > self.0.len() {
                    return Err(format!("a vector of {n} elements in a smaller file"));
                }
                Ok((v + 4, n))
            }
        }
    }

    fn table_in(&self, (start, n): (usize, usize), k: usize) -> Result<usize, String> {
        debug_assert!(k < n);
        self.deref(start + 4 * k)
    }

    fn string(&self, t: usize, i: usize) -> Result<Option<String>, String> {
        let (start, n) = self.vector(t, i)?;
        if n == 0 {
            return Ok(None);
        }
        let s = self
            .0
            .get(start..start + n)
            .ok_or("a string runs past the end")?;
        Ok(Some(String::from_utf8_lossy(s).into_owned()))
    }

    fn scalar_i32(&self, t: usize, i: usize) -> Result<Option<i32>, String> {
        Ok(match self.field(t, i)? {
            Some(at) => Some(self.u32_at(at)? as i32),
            None => None,
        })
    }
}

/// TF Lite's BuiltinOperator names by code (schema.fbs; 127 is a placeholder that makes
/// larger codes live in `builtin_code`).
const TFLITE_OPS: &[&str] = &[
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE",
    "DEQUANTIZE",
    "EMBEDDING_LOOKUP",
    "FLOOR",
    "FULLY_CONNECTED",
    "HASHTABLE_LOOKUP",
    "L2_NORMALIZATION",
    "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION",
    "LOGISTIC",
    "LSH_PROJECTION",
    "LSTM",
    "MAX_POOL_2D",
    "MUL",
    "RELU",
    "RELU_N1_TO_1",
    "RELU6",
    "RESHAPE",
    "RESIZE_BILINEAR",
    "RNN",
    "SOFTMAX",
    "SPACE_TO_DEPTH",
    "SVDF",
    "TANH",
    "CONCAT_EMBEDDINGS",
    "SKIP_GRAM",
    "CALL",
    "CUSTOM",
    "EMBEDDING_LOOKUP_SPARSE",
    "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN",
    "GATHER",
    "BATCH_TO_SPACE_ND",
    "SPACE_TO_BATCH_ND",
    "TRANSPOSE",
    "MEAN",
    "SUB",
    "DIV",
    "SQUEEZE",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "STRIDED_SLICE",
    "BIDIRECTIONAL_SEQUENCE_RNN",
    "EXP",
    "TOPK_V2",
    "SPLIT",
    "LOG_SOFTMAX",
    "DELEGATE",
    "BIDIRECTIONAL_SEQUENCE_LSTM",
    "CAST",
    "PRELU",
    "MAXIMUM",
    "ARG_MAX",
    "MINIMUM",
    "LESS",
    "NEG",
    "PADV2",
    "GREATER",
    "GREATER_EQUAL",
    "LESS_EQUAL",
    "SELECT",
    "SLICE",
    "SIN",
    "TRANSPOSE_CONV",
    "SPARSE_TO_DENSE",
    "TILE",
    "EXPAND_DIMS",
    "EQUAL",
    "NOT_EQUAL",
    "LOG",
    "SUM",
    "SQRT",
    "RSQRT",
    "SHAPE",
    "POW",
    "ARG_MIN",
    "FAKE_QUANT",
    "REDUCE_PROD",
    "REDUCE_MAX",
    "PACK",
    "LOGICAL_OR",
    "ONE_HOT",
    "LOGICAL_AND",
    "LOGICAL_NOT",
    "UNPACK",
    "REDUCE_MIN",
    "FLOOR_DIV",
    "REDUCE_ANY",
    "SQUARE",
    "ZEROS_LIKE",
    "FILL",
    "FLOOR_MOD",
    "RANGE",
    "RESIZE_NEAREST_NEIGHBOR",
    "LEAKY_RELU",
    "SQUARED_DIFFERENCE",
    "MIRROR_PAD",
    "ABS",
    "SPLIT_V",
    "UNIQUE",
    "CEIL",
    "REVERSE_V2",
    "ADD_N",
    "GATHER_ND",
    "COS",
    "WHERE",
    "RANK",
    "ELU",
    "REVERSE_SEQUENCE",
    "MATRIX_DIAG",
    "QUANTIZE",
    "MATRIX_SET_DIAG",
    "ROUND",
    "HARD_SWISH",
    "IF",
    "WHILE",
    "NON_MAX_SUPPRESSION_V4",
    "NON_MAX_SUPPRESSION_V5",
    "SCATTER_ND",
    "SELECT_V2",
    "DENSIFY",
    "SEGMENT_SUM",
    "BATCH_MATMUL",
    "PLACEHOLDER_FOR_GREATER_OP_CODES",
    "CUMSUM",
    "CALL_ONCE",
    "BROADCAST_TO",
    "RFFT2D",
    "CONV_3D",
    "IMAG",
    "REAL",
    "COMPLEX_ABS",
    "HASHTABLE",
    "HASHTABLE_FIND",
    "HASHTABLE_IMPORT",
    "HASHTABLE_SIZE",
    "REDUCE_ALL",
    "CONV_3D_TRANSPOSE",
    "VAR_HANDLE",
    "READ_VARIABLE",
    "ASSIGN_VARIABLE",
    "BROADCAST_ARGS",
    "RANDOM_STANDARD_NORMAL",
    "BUCKETIZE",
    "RANDOM_UNIFORM",
    "MULTINOMIAL",
    "GELU",
    "DYNAMIC_UPDATE_SLICE",
    "RELU_0_TO_1",
    "UNSORTED_SEGMENT_PROD",
    "UNSORTED_SEGMENT_MAX",
    "UNSORTED_SEGMENT_SUM",
    "ATAN2",
    "UNSORTED_SEGMENT_MIN",
    "SIGN",
    "BITCAST",
    "BITWISE_XOR",
    "RIGHT_SHIFT",
];

/// A TF Lite model's contents.
pub fn tflite(bytes: &[u8]) -> Result<Contents, String> {
    if bytes.len() < 8 {
        return Err("shorter than a flatbuffer header".into());
    }
    let fb = Fb(bytes);
    let model = fb.deref(0)?;
    let mut c = Contents {
        format: "tflite".into(),
        ..Default::default()
    };
    c.format_version = fb.scalar_i32(model, 0)?.map(|v| format!("schema {v}"));
    c.producer = fb.string(model, 3)?;
    let codes = fb.vector(model, 1)?;
    let mut names = Vec::with_capacity(codes.1);
    for k in 0..codes.1 {
        let oc = fb.table_in(codes, k)?;
        let deprecated = match fb.field(oc, 0)? {
            Some(at) => *bytes.get(at).ok_or("past the end")? as i8 as i32,
            None => 0,
        };
        let builtin = fb.scalar_i32(oc, 3)?.unwrap_or(0);
        let code = deprecated.max(builtin);
        names.push(if code == 32 {
            fb.string(oc, 1)?
                .map_or("CUSTOM".into(), |n| format!("CUSTOM:{n}"))
        } else {
            TFLITE_OPS
                .get(code as usize)
                .map_or_else(|| format!("BUILTIN_{code}"), |n| (*n).to_owned())
        });
    }
    let buffers = fb.vector(model, 4)?;
    let mut buffer_bytes = vec![0u64; buffers.1];
    for (k, slot) in buffer_bytes.iter_mut().enumerate() {
        let b = fb.table_in(buffers, k)?;
        let (_, n) = fb.vector(b, 0)?;
        // Models over 2 GB keep weights after the flatbuffer: offset (1) and size (2).
        let size = match fb.field(b, 2)? {
            Some(at) => u64::from(fb.u32_at(at)?) | (u64::from(fb.u32_at(at + 4)?) << 32),
            None => 0,
        };
        *slot = (n as u64).max(size);
    }
    // Saturating: a buffer's size field is the file's word, and may be anything (fuzz finding 1).
    c.parameter_bytes = buffer_bytes.iter().fold(0u64, |a, &b| a.saturating_add(b));
    let subgraphs = fb.vector(model, 2)?;
    for s in 0..subgraphs.1 {
        let sg = fb.table_in(subgraphs, s)?;
        let ops = fb.vector(sg, 3)?;
        for k in 0..ops.1 {
            let op = fb.table_in(ops, k)?;
            let idx = fb.scalar_i32(op, 0)?.unwrap_or(0) as usize;
            let name = names
                .get(idx)
                .cloned()
                .ok_or_else(|| format!("operator {k} names opcode {idx} of {}", names.len()))?;
            *c.operators.entry(name).or_default() += 1;
            c.operator_total += 1;
        }
        let tensors = fb.vector(sg, 0)?;
        for k in 0..tensors.1 {
            let t = fb.table_in(tensors, k)?;
            let buf = fb.scalar_i32(t, 2)?.unwrap_or(0) as usize;
            if buf == 0 || buffer_bytes.get(buf).copied().unwrap_or(0) == 0 {
                continue;
            }
            let (start, n) = fb.vector(t, 0)?;
            let mut elems = 1u64;
            for d in 0..n {
                elems = elems.saturating_mul(fb.u32_at(start + 4 * d)? as i32 as u64);
            }
            c.parameters = c.parameters.saturating_add(elems);
        }
    }
    Ok(c)
}

/// The declared shapes (Tensor.shape_signature, -1 for a dynamic dim; else Tensor.shape) of the
/// main subgraph's inputs, in order: the C API shows only current dims.
pub fn tflite_input_shapes(bytes: &[u8]) -> Result<Vec<Vec<i32>>, String> {
    if bytes.len() < 8 {
        return Err("shorter than a flatbuffer header".into());
    }
    let fb = Fb(bytes);
    let model = fb.deref(0)?;
    let subgraphs = fb.vector(model, 2)?;
    if subgraphs.1 == 0 {
        return Ok(Vec::new());
    }
    let sg = fb.table_in(subgraphs, 0)?;
    let tensors = fb.vector(sg, 0)?;
    let (start, n) = fb.vector(sg, 1)?;
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let idx = fb.u32_at(start + 4 * k)? as usize;
        if idx >= tensors.1 {
            return Err(format!("input {k} names tensor {idx} of {}", tensors.1));
        }
        let t = fb.table_in(tensors, idx)?;
        let (mut vs, mut vn) = fb.vector(t, 7)?;
        if vn == 0 {
            (vs, vn) = fb.vector(t, 0)?;
        }
        out.push(
            (0..vn)
                .map(|d| fb.u32_at(vs + 4 * d).map(|x| x as i32))
                .collect::<Result<_, _>>()?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_fields_are_read_and_truncation_is_an_error() {
        // ModelProto { ir_version: 8, graph: { node: { op_type: "Relu" } } }
        let node = [0x22, 4, b'R', b'e', b'l', b'u'];
        let mut graph = vec![0x0a, node.len() as u8];
        graph.extend(node);
        let mut model = vec![0x08, 8, 0x3a, graph.len() as u8];
        model.extend(&graph);
        let c = onnx(&model).unwrap();
        assert_eq!(c.operators.get("Relu"), Some(&1));
        assert_eq!(c.format_version.as_deref(), Some("IR 8"));
        assert!(onnx(&model[..model.len() - 2]).is_err());
        assert_eq!(
            onnx(&[0x08, 8]).unwrap_err(),
            "no graph (field 7 of ModelProto): not an ONNX model"
        );
    }

    #[test]
    fn flatbuffer_garbage_is_an_error_not_a_panic() {
        assert!(tflite(b"tiny").is_err());
        assert!(tflite(&[0xff; 64]).is_err());
        let mut b = vec![0u8; 32];
        b[0] = 200;
        assert!(tflite(&b).is_err());
    }
}

#[cfg(test)]
mod regression {
    #[test]
    fn regression_fuzz_finding_1_is_an_answer_not_a_crash() {
        // Found by the fuzz smoke (target tensor_file): a Buffer whose `size` field is near
        // u64::MAX overflowed the sum of parameter bytes.
        let b = include_bytes!("../../tests/data/fuzz/tensor-file-fuzz-1.tflite");
        let _ = super::tflite(b);
        let _ = super::tflite_input_shapes(b);
        let _ = super::onnx(b);
        let _ = crate::runtime::tensor::parse_npy(b);
    }
}
