//! GGUF reader: validates everything before allocating for it, then hands out zero-copy
//! tensor views into the memory map.

use std::collections::HashMap;
use std::path::Path;

use orcinus_quant::GgmlType;

use super::value::{Array, Metadata, Value, ValueType};
use super::{DEFAULT_ALIGNMENT, GGUF_MAGIC, KEY_ALIGNMENT, MAX_DIMS};
use crate::error::{Error, GgufErrorKind as K, Result};

/// Deepest metadata array nesting accepted (real files use at most 2).
pub const MAX_ARRAY_DEPTH: usize = 8;

/// Where a tensor lives and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name (e.g. `blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions in GGUF (`ne`) order: `ne[0]` is the row length (contiguous).
    pub ne: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
    /// Bytes of data (`ty` × `ne`).
    pub size: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.ne.iter().product()
    }

    /// Shape in numpy/row-major order (`ne` reversed).
    pub fn shape_row_major(&self) -> Vec<u64> {
        self.ne.iter().rev().copied().collect()
    }
}

/// The parsed header of a GGUF file: everything but the tensor data.
#[derive(Debug, Clone)]
pub struct Header {
    /// GGUF version (2 or 3).
    pub version: u32,
    /// Metadata key/values in file order.
    pub metadata: Metadata,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Alignment of tensor data (`general.alignment`, default 32).
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
}

/// A bounds-checked little-endian cursor. Every read checks the bytes left first.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn left(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8]> {
        if n > self.left() {
            return Err(K::Truncated {
                what,
                needed: n,
                available: self.left(),
            }
            .at(self.pos as u64));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn arr<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        Ok(self
            .take(N as u64, what)?
            .try_into()
            .expect("length checked"))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr(what)?))
    }

    /// Checks that `count` items of at least `min_size` bytes each can fit in what is left.
    fn check_count(&self, count: u64, min_size: u64, what: &'static str) -> Result<usize> {
        if count.checked_mul(min_size).is_none_or(|b| b > self.left()) {
            return Err(K::CountTooLarge {
                what,
                count,
                available: self.left(),
            }
            .at(self.pos as u64));
        }
        Ok(count as usize)
    }

    fn string(&mut self, what: &'static str) -> Result<String> {
        let start = self.pos as u64;
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| K::InvalidUtf8(what).at(start))
    }

    fn value_type(&mut self) -> Result<ValueType> {
        let at = self.pos as u64;
        let id = self.u32("value type")?;
        ValueType::from_id(id).ok_or_else(|| K::UnknownValueType(id).at(at))
    }

    fn value(&mut self, ty: ValueType, depth: usize) -> Result<Value> {
        const W: &str = "metadata value";
        Ok(match ty {
            ValueType::U8 => Value::U8(self.arr::<1>(W)?[0]),
            ValueType::I8 => Value::I8(self.arr::<1>(W)?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.arr(W)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.arr(W)?)),
            ValueType::U32 => Value::U32(self.u32(W)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.arr(W)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.arr(W)?)),
            ValueType::U64 => Value::U64(self.u64(W)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.arr(W)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.arr(W)?)),
            ValueType::Bool => {
                let at = self.pos as u64;
                match self.arr::<1>(W)?[0] {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    b => return Err(K::InvalidBool(b).at(at)),
                }
            }
            ValueType::String => Value::String(self.string("string value")?),
            ValueType::Array => Value::Array(self.array(depth + 1)?),
        })
    }

    fn array(&mut self, depth: usize) -> Result<Array> {
        if depth > MAX_ARRAY_DEPTH {
            return Err(K::NestingTooDeep(MAX_ARRAY_DEPTH).at(self.pos as u64));
        }
        let ty = self.value_type()?;
        let count = self.u64("array length")?;
        let n = self.check_count(count, ty.min_size(), "array element")?;
        // Fixed-size elements: one bounds check, then a typed copy.
        macro_rules! fixed {
            ($v:ident, $t:ty) => {{
                const S: usize = std::mem::size_of::<$t>();
                let bytes = self.take((n * S) as u64, "array data")?;
                Array::$v(
                    bytes
                        .chunks_exact(S)
                        .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
                        .collect(),
                )
            }};
        }
        Ok(match ty {
            ValueType::U8 => Array::U8(self.take(n as u64, "array data")?.to_vec()),
            ValueType::I8 => fixed!(I8, i8),
            ValueType::U16 => fixed!(U16, u16),
            ValueType::I16 => fixed!(I16, i16),
            ValueType::U32 => fixed!(U32, u32),
            ValueType::I32 => fixed!(I32, i32),
            ValueType::F32 => fixed!(F32, f32),
            ValueType::U64 => fixed!(U64, u64),
            ValueType::I64 => fixed!(I64, i64),
            ValueType::F64 => fixed!(F64, f64),
            ValueType::Bool => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    match self.value(ValueType::Bool, depth)? {
                        Value::Bool(b) => v.push(b),
                        _ => unreachable!("bool read returns bool"),
                    }
                }
                Array::Bool(v)
            }
            ValueType::String => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.string("array string")?);
                }
                Array::String(v)
            }
            ValueType::Array => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.array(depth + 1)?);
                }
                Array::Array(v)
            }
        })
    }
}

/// Parses and validates the header of a GGUF file held in `buf` (the whole file).
///
/// Every count and length is checked against the bytes left before anything is allocated for
/// it; tensor data ranges are checked to lie inside `buf`, be aligned, not overlap, and match
/// type × shape.
pub fn parse_header(buf: &[u8]) -> Result<Header> {
    let mut c = Cursor { buf, pos: 0 };
    let magic: [u8; 4] = c.arr("magic")?;
    if magic != GGUF_MAGIC {
        return Err(K::BadMagic(magic).at(0));
    }
    let version = c.u32("version")?;
    if !(2..=3).contains(&version) {
        let swapped = version.swap_bytes();
        if (1..=3).contains(&swapped) {
            return Err(K::BigEndian(swapped).at(4));
        }
        return Err(K::UnsupportedVersion(version).at(4));
    }
    let n_tensors = c.u64("tensor count")?;
    let n_kv = c.u64("metadata count")?;
    // A key/value takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at least
    // 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset).
    let n_kv = c.check_count(n_kv, 13, "metadata key/value")?;
    let n_tensors = c.check_count(n_tensors, 24, "tensor info")?;

    let mut metadata = Metadata::new();
    for _ in 0..n_kv {
        let at = c.pos as u64;
        let key = c.string("metadata key")?;
        let ty = c.value_type()?;
        let value = c.value(ty, 0)?;
        if metadata.contains(&key) {
            return Err(K::DuplicateKey(key).at(at));
        }
        metadata.insert(key, value);
    }

    let alignment = match metadata.get(KEY_ALIGNMENT) {
        None => DEFAULT_ALIGNMENT,
        Some(Value::U32(a)) if a.is_power_of_two() && *a <= 65536 => u64::from(*a),
        Some(v) => {
            let a = v.as_i128().unwrap_or(-1);
            return Err(K::BadAlignment(a.max(0) as u64).at(c.pos as u64));
        }
    };

    let mut tensors = Vec::with_capacity(n_tensors);
    let mut names: HashMap<String, ()> = HashMap::with_capacity(n_tensors);
    for _ in 0..n_tensors {
        let at = c.pos as u64;
        let name = c.string("tensor name")?;
        let n_dims = c.u32("tensor dimension count")?;
        if n_dims as usize > MAX_DIMS {
            return Err(K::TooManyDims { name, n_dims }.at(at));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            ne.push(c.u64("tensor dimension")?);
        }
        let type_at = c.pos as u64;
        let id = c.u32("tensor type")?;
        let ty = GgmlType::from_id(id).map_err(|_| {
            K::UnsupportedQuant {
                id,
                name: name.clone(),
            }
            .at(type_at)
        })?;
        let offset = c.u64("tensor offset")?;
        let bad = |why| {
            K::BadShape {
                name: name.clone(),
                ne: ne.clone(),
                ty: ty.name(),
                why,
            }
            .at(at)
        };
        let n_el = ne
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| bad("element count overflows"))?;
        let row = ne.first().copied().unwrap_or(1);
        if row % ty.block_size() as u64 != 0 {
            return Err(bad("row length is not a multiple of the block size"));
        }
        let size = (n_el / ty.block_size() as u64)
            .checked_mul(ty.type_size() as u64)
            .ok_or_else(|| bad("byte size overflows"))?;
        if offset % alignment != 0 {
            return Err(K::Misaligned {
                name,
                offset,
                alignment,
            }
            .at(at));
        }
        if names.insert(name.clone(), ()).is_some() {
            return Err(K::DuplicateTensor(name).at(at));
        }
        tensors.push(TensorInfo {
            name,
            ne,
            ty,
            offset,
            size,
        });
    }

    let data_offset = (c.pos as u64).next_multiple_of(alignment);
    let file_len = buf.len() as u64;
    for t in &tensors {
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.size));
        match (start, end) {
            (Some(_), Some(end)) if end <= file_len => {}
            _ => {
                return Err(K::OutOfBounds {
                    name: t.name.clone(),
                    start: data_offset.saturating_add(t.offset),
                    end: data_offset.saturating_add(t.offset).saturating_add(t.size),
                    file_len,
                }
                .at(c.pos as u64))
            }
        }
    }
    let mut order: Vec<&TensorInfo> = tensors.iter().filter(|t| t.size > 0).collect();
    order.sort_by_key(|t| t.offset);
    for w in order.windows(2) {
        if w[0].offset + w[0].size > w[1].offset {
            return Err(
                K::Overlap(w[0].name.clone(), w[1].name.clone()).at(data_offset + w[1].offset)
            );
        }
    }

    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}

enum Storage {
    /// The file mapped: its pages are the page cache's.
    Mmap(memmap2::Mmap),
    /// The file read into an anonymous mapping ([`File::read`]).
    Anon(memmap2::Mmap),
    Owned(Vec<u8>),
}

/// Bytes per read by [`File::read`] (also its progress step).
const READ_CHUNK: usize = 16 << 20;

/// An open GGUF file: validated header plus its bytes, memory-mapped ([`File::open`]) or read
/// into memory ([`File::read`], [`File::from_bytes`]).
///
/// `File` is `Send + Sync`; tensor views borrow from it without copying.
pub struct File {
    storage: Storage,
    header: Header,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("File")
            .field("version", &self.header.version)
            .field("n_kv", &self.header.metadata.len())
            .field("n_tensors", &self.header.tensors.len())
            .finish()
    }
}

/// A zero-copy view of one tensor's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Tensor<'a> {
    /// Where it lives and what it is.
    pub info: &'a TensorInfo,
    /// Its bytes, `info.size` long, borrowed from the map.
    pub data: &'a [u8],
}

impl Tensor<'_> {
    /// Dequantizes the whole tensor to f32 (GGUF order: `ne[0]` contiguous).
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let n = usize::try_from(self.info.n_elements())
            .map_err(|_| orcinus_quant::QuantError::Overflow)?;
        let mut out = vec![0f32; n];
        self.info.ty.dequantize(self.data, &mut out)?;
        Ok(out)
    }

    /// The data viewed as blocks of type `B` (`None` if `B` is not this tensor's block type's
    /// size or the bytes are not aligned for it).
    pub fn blocks<B: bytemuck::Pod>(&self) -> Option<&[B]> {
        if std::mem::size_of::<B>() != self.info.ty.type_size() {
            return None;
        }
        bytemuck::try_cast_slice(self.data).ok()
    }
}

impl File {
    /// Memory-maps and validates the GGUF file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let f = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
        // SAFETY: the map is read-only and private to this process. Another process truncating
        // or rewriting the file while it is mapped would be undefined behaviour; as for every
        // mmap-based model loader, users must not modify a model file while it is loaded.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(path.display(), e))?;
        // Linux: ask for transparent huge pages. Where the file is not yet cached, the page
        // cache then reads it in 2 MiB folios that are mapped whole: decode streams every
        // weight per token, and on the development machine a file mapped that way reads at
        // ~15-19 GB/s against ~13 in 4 KiB pages. Only a hint: ignored where unsupported.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        Self::from_storage(Storage::Mmap(map))
    }

    /// Reads the GGUF file at `path` into anonymous memory and validates it: `--no-mmap`.
    ///
    /// The bytes are the process's own (its resident set holds the whole file; the page cache
    /// copy can be dropped by the OS), in transparent huge pages where Linux gives them
    /// whatever the state of the page cache: a file mapped by [`File::open`] is only in 2 MiB
    /// pages as far as the page cache holds it in large folios, and a cache filled by the
    /// file's writer holds small ones. `progress(done, total)` is called as bytes arrive.
    ///
    /// A file larger than the memory Linux reports available is refused
    /// ([`Error::OutOfMemory`]) before anything is allocated; [`File::open`] maps it instead.
    pub fn read(path: impl AsRef<Path>, progress: &mut dyn FnMut(u64, u64)) -> Result<Self> {
        let path = path.as_ref();
        let io = |e| Error::io(path.display(), e);
        let f = std::fs::File::open(path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        if let Some(avail) = available_memory() {
            if len > avail {
                return Err(Error::OutOfMemory(format!(
                    "{} bytes to read {} into memory: {} bytes are available (load it mapped, without --no-mmap)",
                    len,
                    path.display(),
                    avail
                )));
            }
        }
        let n = usize::try_from(len).map_err(|_| {
            Error::OutOfMemory(format!(
                "{len} bytes: more than this platform's address space"
            ))
        })?;
        if n == 0 {
            return Self::from_storage(Storage::Owned(Vec::new()));
        }
        let mut map = memmap2::MmapMut::map_anon(n)
            .map_err(|e| Error::io(format!("allocating {n} bytes for {}", path.display()), e))?;
        // Only a hint: the pages fault in as 2 MiB ones where transparent huge pages are on.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        progress(0, len);
        read_chunks(&f, &mut map, READ_CHUNK, &mut |done| {
            progress(done as u64, len)
        })
        .map_err(io)?;
        let map = map.make_read_only().map_err(io)?;
        Self::from_storage(Storage::Anon(map))
    }

    /// Locks the file's bytes in RAM (`mlock`: `--mlock`), so that the OS never evicts a
    /// weight page under memory pressure and generation never waits on the disk. Faults every
    /// page in first, so this takes as long as reading the file once.
    ///
    /// Fails with [`Error::Io`] where the OS refuses (on Linux, a locked-memory limit below
    /// the file's size: `ulimit -l`). Bytes given to [`File::from_bytes`] are the caller's
    /// own buffer and are left as they are (`Ok`).
    pub fn lock(&self) -> Result<()> {
        let res = match &self.storage {
            Storage::Mmap(m) | Storage::Anon(m) => m.lock(),
            Storage::Owned(_) => Ok(()),
        };
        res.map_err(|e| {
            Error::io(
                format!(
                    "cannot lock the model's {} bytes in memory (mlock; raise the locked-memory limit, `ulimit -l`, or run without --mlock)",
                    self.len()
                ),
                e,
            )
        })
    }

    /// The share of the file's resident bytes that this process maps with 2 MiB pages, from
    /// `/proc/self/smaps` (`FilePmdMapped` of a mapped file, `AnonHugePages` of a read one,
    /// over `Rss`); `None` where the OS does not say, for bytes given to [`File::from_bytes`],
    /// or when nothing is resident. Generation reads every weight once per token: on the
    /// development machine a 7B model decoded ~10% slower from a cache of 4 KiB pages.
    pub fn huge_page_share(&self) -> Option<f64> {
        let (start, field) = match &self.storage {
            Storage::Mmap(m) => (m.as_ptr() as usize, "FilePmdMapped:"),
            Storage::Anon(m) => (m.as_ptr() as usize, "AnonHugePages:"),
            Storage::Owned(_) => return None,
        };
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        huge_page_share_in(&smaps, start, start + self.bytes().len(), field)
    }

    /// Validates a GGUF file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::from_storage(Storage::Owned(bytes))
    }

    fn from_storage(storage: Storage) -> Result<Self> {
        let bytes: &[u8] = match &storage {
            Storage::Mmap(m) | Storage::Anon(m) => m,
            Storage::Owned(v) => v,
        };
        let header = parse_header(bytes)?;
        let by_name = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(File {
            storage,
            header,
            by_name,
        })
    }

    /// All the file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Mmap(m) | Storage::Anon(m) => m,
            Storage::Owned(v) => v,
        }
    }

    /// Drops the pages of `data`, a slice of this file (e.g. a tensor's `data`), from the
    /// process's resident set (best effort; nothing for a file read into memory, whose pages
    /// are its only copy, or a slice of something else). A pass that reads each tensor once,
    /// as the quantizer does, then keeps about one tensor resident whatever the file's size.
    /// Reading the bytes again re-reads them from the file.
    pub fn release(&self, data: &[u8]) {
        #[cfg(unix)]
        if let Storage::Mmap(m) = &self.storage {
            let start = (data.as_ptr() as usize).wrapping_sub(m.as_ptr() as usize);
            if start <= m.len() && data.len() <= m.len() - start && !data.is_empty() {
                // SAFETY: a read-only private mapping of a file this process never writes,
                // so its pages are never dirty: MADV_DONTNEED only discards clean copies, and
                // a later access (through any slice still borrowed) faults the same file
                // contents back in. memmap2 aligns the range to pages.
                let _ = unsafe {
                    m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, data.len())
                };
            }
        }
        #[cfg(not(unix))]
        let _ = data;
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// GGUF version.
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// Metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    /// Tensor infos in file order.
    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    /// File size in bytes.
    pub fn len(&self) -> u64 {
        self.bytes().len() as u64
    }

    /// Whether the file is empty (never true for a valid file).
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Result<Tensor<'_>> {
        let &i = self
            .by_name
            .get(name)
            .ok_or_else(|| Error::TensorNotFound(name.to_string()))?;
        Ok(self.tensor_at(i))
    }

    /// Every tensor, in file order.
    pub fn tensors(&self) -> impl Iterator<Item = Tensor<'_>> {
        (0..self.header.tensors.len()).map(|i| self.tensor_at(i))
    }

    fn tensor_at(&self, i: usize) -> Tensor<'_> {
        let info = &self.header.tensors[i];
        // Ranges were validated against the file length in `parse_header`.
        let start = (self.header.data_offset + info.offset) as usize;
        Tensor {
            info,
            data: &self.bytes()[start..start + info.size as usize],
        }
    }
}

/// Fills `buf` with the first `buf.len()` bytes of `f`, in `chunk`-byte pieces, calling
/// `progress(bytes done)` as they arrive. On Unix the chunks are shared, alternately, by up to
/// four threads (positioned reads): the first touch of fresh memory (zeroing each page as it
/// faults in) costs more than the copy on some VMs (88% of a 4.4 GB read here), and it runs
/// in the faulting thread. A file that shrank since its size was read is an error
/// (`UnexpectedEof`), not zeros.
fn read_chunks(
    f: &std::fs::File,
    buf: &mut [u8],
    chunk: usize,
    progress: &mut dyn FnMut(usize),
) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let done = AtomicUsize::new(0);
        // Chunk `i` goes to thread `i % threads`; thread 0 is this one, which reports.
        let mut parts: Vec<Vec<(usize, &mut [u8])>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, c) in buf.chunks_mut(chunk).enumerate() {
            parts[i % threads].push((i * chunk, c));
        }
        let read = |part: Vec<(usize, &mut [u8])>, report: &mut dyn FnMut(usize)| {
            for (at, c) in part {
                f.read_exact_at(c, at as u64)?;
                report(done.fetch_add(c.len(), Ordering::Relaxed) + c.len());
            }
            Ok::<(), std::io::Error>(())
        };
        let mut parts = parts.into_iter();
        let mine = parts.next().unwrap_or_default();
        std::thread::scope(|s| {
            let workers: Vec<_> = parts.map(|p| s.spawn(|| read(p, &mut |_| {}))).collect();
            let first = read(mine, progress);
            // Every thread is joined before an error is returned.
            let rest: Vec<std::io::Result<()>> = workers
                .into_iter()
                .map(|w| match w.join() {
                    Ok(r) => r,
                    Err(e) => std::panic::resume_unwind(e),
                })
                .collect();
            first.and(rest.into_iter().collect::<std::io::Result<()>>())
        })?;
        progress(buf.len());
        Ok(())
    }
    #[cfg(not(unix))]
    {
        use std::io::Read;
        let mut f = f;
        let mut done = 0;
        for c in buf.chunks_mut(chunk) {
            f.read_exact(c)?;
            done += c.len();
            progress(done);
        }
        Ok(())
    }
}

/// Bytes of memory Linux reports available (`MemAvailable`), `None` elsewhere.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `field` (in kB) over `Rss:` summed across the mappings of `smaps` that overlap
/// `start..end`, or `None` when none of them has resident bytes.
fn huge_page_share_in(smaps: &str, start: usize, end: usize, field: &str) -> Option<f64> {
    let (mut rss, mut huge, mut inside) = (0u64, 0u64, false);
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if !first.ends_with(':') {
            // A mapping's header: `start-end perms offset dev inode [path]`.
            let range = first.split_once('-').and_then(|(a, b)| {
                Some((
                    usize::from_str_radix(a, 16).ok()?,
                    usize::from_str_radix(b, 16).ok()?,
                ))
            });
            inside = range.is_some_and(|(a, b)| a < end && start < b);
            continue;
        }
        if !inside {
            continue;
        }
        let kib = words
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if first == "Rss:" {
            rss += kib;
        } else if first == field {
            huge += kib;
        }
    }
    (rss > 0).then(|| huge as f64 / rss as f64)
}

#[cfg(test)]
mod tests {
    use super::{huge_page_share_in, read_chunks};

    /// Many chunks over the threads, an uneven tail: the file's bytes, progress rising to the
    /// end; a buffer longer than the file is an error.
    #[test]
    fn chunked_read_gives_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        let data: Vec<u8> = (0..100_003u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let mut buf = vec![0u8; data.len()];
        let mut seen = Vec::new();
        read_chunks(&f, &mut buf, 4096, &mut |d| seen.push(d)).unwrap();
        assert!(buf == data, "the bytes differ");
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        assert_eq!(seen.last(), Some(&data.len()));
        let mut long = vec![0u8; data.len() + 1];
        let e = read_chunks(&f, &mut long, 4096, &mut |_| {}).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    const SMAPS: &str = "\
7f0000000000-7f0000400000 r--s 00000000 fd:01 42 /models/a.gguf
Size:               4096 kB
Rss:                4096 kB
FilePmdMapped:      2048 kB
AnonHugePages:         0 kB
VmFlags: rd sh mr mw me ms hg
7f0000400000-7f0000600000 rw-p 00000000 00:00 0
Size:               2048 kB
Rss:                2048 kB
FilePmdMapped:         0 kB
AnonHugePages:      2048 kB
VmFlags: rd wr mr mw me ac hg
";

    /// Only the mappings over the range count, and only the field asked for.
    #[test]
    fn smaps_share_of_a_range() {
        let s = |a, b, f| huge_page_share_in(SMAPS, a, b, f);
        assert_eq!(
            s(0x7f00_0000_1000, 0x7f00_0000_2000, "FilePmdMapped:"),
            Some(0.5)
        );
        assert_eq!(
            s(0x7f00_0040_0000, 0x7f00_0060_0000, "AnonHugePages:"),
            Some(1.0)
        );
        assert_eq!(
            s(0x7f00_0040_0000, 0x7f00_0060_0000, "FilePmdMapped:"),
            Some(0.0)
        );
        // Both mappings: 2048 of 6144 kB in file huge pages.
        let both = s(0x7f00_0000_0000, 0x7f00_0060_0000, "FilePmdMapped:").unwrap();
        assert!((both - 1.0 / 3.0).abs() < 1e-12, "{both}");
        assert_eq!(
            s(0x1000, 0x2000, "FilePmdMapped:"),
            None,
            "no mapping there"
        );
        assert_eq!(
            s(0x7f00_0060_0000, 0x7f00_0070_0000, "AnonHugePages:"),
            None
        );
    }
}
