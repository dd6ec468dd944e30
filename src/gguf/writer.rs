//! Streaming GGUF writer: header, metadata and tensor infos first, then each tensor's data in
//! order, padded to the alignment. Memory use is bounded by what the caller passes in one call.

use std::io::Write;

use orcinus_quant::GgmlType;

use super::value::{Array, Metadata, Value};
use super::{DEFAULT_ALIGNMENT, GGUF_MAGIC, KEY_ALIGNMENT, MAX_DIMS};
use crate::error::{Error, Result};

/// A tensor the writer will write: name, `ne` (GGUF order) and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Tensor name.
    pub name: String,
    /// Dimensions, GGUF order (`ne[0]` contiguous).
    pub ne: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
}

impl TensorSpec {
    /// A spec.
    pub fn new(name: impl Into<String>, ne: &[u64], ty: GgmlType) -> Self {
        TensorSpec {
            name: name.into(),
            ne: ne.to_vec(),
            ty,
        }
    }

    /// Bytes of data this tensor takes.
    pub fn size(&self) -> Result<u64> {
        if self.ne.len() > MAX_DIMS {
            return Err(Error::Writer(format!(
                "`{}` has more than 4 dims",
                self.name
            )));
        }
        let n: u64 = self
            .ne
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| Error::Writer(format!("`{}`: element count overflows", self.name)))?;
        if self.ne.first().copied().unwrap_or(1) % self.ty.block_size() as u64 != 0 {
            return Err(Error::Writer(format!(
                "`{}`: row length {} is not a multiple of {}'s block size {}",
                self.name,
                self.ne[0],
                self.ty,
                self.ty.block_size()
            )));
        }
        Ok(n / self.ty.block_size() as u64 * self.ty.type_size() as u64)
    }
}

/// Writes a GGUF v3 file to `W` in one pass.
///
/// ```
/// use orcinus::gguf::{Metadata, TensorSpec, Value, Writer};
/// use orcinus::quant::GgmlType;
/// let mut md = Metadata::new();
/// md.insert("general.architecture", Value::String("llama".into()));
/// let specs = vec![TensorSpec::new("w", &[4, 2], GgmlType::F32)];
/// let mut out = Vec::new();
/// let mut w = Writer::new(&mut out, &md, &specs).unwrap();
/// let data: Vec<u8> = (0..8).flat_map(|i| (i as f32).to_le_bytes()).collect();
/// w.write_tensor_data(&data).unwrap();
/// w.finish().unwrap();
/// let f = orcinus::gguf::File::from_bytes(out).unwrap();
/// assert_eq!(f.tensor("w").unwrap().to_f32().unwrap()[5], 5.0);
/// ```
pub struct Writer<W: Write> {
    out: W,
    alignment: u64,
    specs: Vec<(TensorSpec, u64)>,
    /// Index of the tensor being written and bytes of it written so far.
    current: usize,
    written_in_current: u64,
    pos: u64,
}

impl<W: Write> Writer<W> {
    /// Writes the header, `metadata` and the infos of `tensors` (whose data must then be
    /// written in this order). `general.alignment` in `metadata`, if present, sets the alignment.
    pub fn new(out: W, metadata: &Metadata, tensors: &[TensorSpec]) -> Result<Self> {
        let alignment = match metadata.get(KEY_ALIGNMENT) {
            None => DEFAULT_ALIGNMENT,
            Some(Value::U32(a)) if a.is_power_of_two() => u64::from(*a),
            Some(_) => {
                return Err(Error::Writer(
                    "general.alignment must be a power-of-two uint32".into(),
                ))
            }
        };
        let mut names = std::collections::HashSet::new();
        let mut specs = Vec::with_capacity(tensors.len());
        let mut offset = 0u64;
        for t in tensors {
            if !names.insert(t.name.as_str()) {
                return Err(Error::Writer(format!("duplicate tensor name `{}`", t.name)));
            }
            let size = t.size()?;
            specs.push((t.clone(), offset));
            offset = (offset + size).next_multiple_of(alignment);
        }
        let mut w = Writer {
            out,
            alignment,
            specs,
            current: 0,
            written_in_current: 0,
            pos: 0,
        };
        w.put(&GGUF_MAGIC)?;
        w.put(&3u32.to_le_bytes())?;
        w.put(&(tensors.len() as u64).to_le_bytes())?;
        w.put(&(metadata.len() as u64).to_le_bytes())?;
        for (k, v) in metadata.iter() {
            w.put_str(k)?;
            w.put(&(v.ty() as u32).to_le_bytes())?;
            w.put_value(v)?;
        }
        for i in 0..w.specs.len() {
            let (spec, off) = w.specs[i].clone();
            w.put_str(&spec.name)?;
            w.put(&(spec.ne.len() as u32).to_le_bytes())?;
            for d in &spec.ne {
                w.put(&d.to_le_bytes())?;
            }
            w.put(&spec.ty.id().to_le_bytes())?;
            w.put(&off.to_le_bytes())?;
        }
        w.pad()?;
        w.skip_empty();
        Ok(w)
    }

    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.out
            .write_all(b)
            .map_err(|e| Error::io("writing GGUF", e))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn put_str(&mut self, s: &str) -> Result<()> {
        self.put(&(s.len() as u64).to_le_bytes())?;
        self.put(s.as_bytes())
    }

    fn put_value(&mut self, v: &Value) -> Result<()> {
        match v {
            Value::U8(x) => self.put(&[*x]),
            Value::I8(x) => self.put(&x.to_le_bytes()),
            Value::U16(x) => self.put(&x.to_le_bytes()),
            Value::I16(x) => self.put(&x.to_le_bytes()),
            Value::U32(x) => self.put(&x.to_le_bytes()),
            Value::I32(x) => self.put(&x.to_le_bytes()),
            Value::F32(x) => self.put(&x.to_le_bytes()),
            Value::Bool(x) => self.put(&[*x as u8]),
            Value::String(s) => self.put_str(s),
            Value::Array(a) => self.put_array(a),
            Value::U64(x) => self.put(&x.to_le_bytes()),
            Value::I64(x) => self.put(&x.to_le_bytes()),
            Value::F64(x) => self.put(&x.to_le_bytes()),
        }
    }

    fn put_array(&mut self, a: &Array) -> Result<()> {
        self.put(&(a.elem_type() as u32).to_le_bytes())?;
        self.put(&(a.len() as u64).to_le_bytes())?;
        macro_rules! each {
            ($v:expr) => {{
                for x in $v {
                    self.put(&x.to_le_bytes())?;
                }
                Ok(())
            }};
        }
        match a {
            Array::U8(v) => self.put(v),
            Array::I8(v) => each!(v),
            Array::U16(v) => each!(v),
            Array::I16(v) => each!(v),
            Array::U32(v) => each!(v),
            Array::I32(v) => each!(v),
            Array::F32(v) => each!(v),
            Array::U64(v) => each!(v),
            Array::I64(v) => each!(v),
            Array::F64(v) => each!(v),
            Array::Bool(v) => {
                for &x in v {
                    self.put(&[x as u8])?;
                }
                Ok(())
            }
            Array::String(v) => {
                for s in v {
                    self.put_str(s)?;
                }
                Ok(())
            }
            Array::Array(v) => {
                for x in v {
                    self.put_array(x)?;
                }
                Ok(())
            }
        }
    }

    fn pad(&mut self) -> Result<()> {
        let target = self.pos.next_multiple_of(self.alignment);
        let zeros = [0u8; 64];
        while self.pos < target {
            let n = ((target - self.pos) as usize).min(zeros.len());
            self.put(&zeros[..n])?;
        }
        Ok(())
    }

    /// Moves past tensors of size zero.
    fn skip_empty(&mut self) {
        while self.current < self.specs.len() && self.specs[self.current].0.ne.contains(&0) {
            self.current += 1;
        }
    }

    /// The next tensor whose data is expected, if any.
    pub fn next_tensor(&self) -> Option<&TensorSpec> {
        self.specs.get(self.current).map(|(s, _)| s)
    }

    /// Appends bytes of the current tensor's data. A tensor's data may come in several
    /// chunks; when it is complete the writer pads and moves to the next tensor.
    pub fn write_data(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let Some((spec, _)) = self.specs.get(self.current) else {
                return Err(Error::Writer("more data than the tensors declared".into()));
            };
            let size = spec.size()?;
            let take = ((size - self.written_in_current) as usize).min(bytes.len());
            let (now, rest) = bytes.split_at(take);
            self.put(now)?;
            self.written_in_current += take as u64;
            bytes = rest;
            if self.written_in_current == size {
                self.current += 1;
                self.written_in_current = 0;
                if self.current < self.specs.len() {
                    self.pad()?;
                }
                self.skip_empty();
            }
        }
        Ok(())
    }

    /// Writes the whole data of the current tensor; `bytes.len()` must be its size.
    pub fn write_tensor_data(&mut self, bytes: &[u8]) -> Result<()> {
        let Some((spec, _)) = self.specs.get(self.current) else {
            return Err(Error::Writer("no tensor left to write".into()));
        };
        let size = spec.size()?;
        if self.written_in_current != 0 || bytes.len() as u64 != size {
            return Err(Error::Writer(format!(
                "`{}` takes {} bytes, got {}",
                spec.name,
                size,
                bytes.len()
            )));
        }
        self.write_data(bytes)
    }

    /// Checks every tensor was written in full, flushes, and returns the output.
    pub fn finish(mut self) -> Result<W> {
        if let Some((spec, _)) = self.specs.get(self.current) {
            return Err(Error::Writer(format!(
                "data of `{}` and later tensors missing",
                spec.name
            )));
        }
        self.out.flush().map_err(|e| Error::io("writing GGUF", e))?;
        Ok(self.out)
    }
}
