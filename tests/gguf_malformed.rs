//! A corpus of malformed GGUF files, generated here. Each must give a typed error — never a
//! panic, an abort or an allocation sized by a hostile count.

use orcinus::gguf::{parse_header, Array, File, Metadata, TensorSpec, Value, Writer};
use orcinus::quant::GgmlType;
use orcinus::{Error, GgufErrorKind as K};
use rand::{Rng, SeedableRng};

/// A valid small file: a few metadata types and three tensors.
fn valid_file() -> Vec<u8> {
    let mut md = Metadata::new();
    md.insert("general.architecture", Value::String("llama".into()));
    md.insert("x.count", Value::U32(3));
    md.insert(
        "x.list",
        Value::Array(Array::String(vec!["a".into(), "bc".into()])),
    );
    md.insert(
        "x.nested",
        Value::Array(Array::Array(vec![Array::F32(vec![1.0])])),
    );
    let specs = vec![
        TensorSpec::new("a", &[32, 2], GgmlType::Q8_0),
        TensorSpec::new("b", &[4], GgmlType::F32),
        TensorSpec::new("c", &[256], GgmlType::Q4K),
    ];
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out, &md, &specs).unwrap();
    for s in &specs {
        w.write_tensor_data(&vec![0u8; s.size().unwrap() as usize])
            .unwrap();
    }
    w.finish().unwrap();
    out
}

fn kind(r: Result<orcinus::gguf::Header, Error>) -> (u64, K) {
    match r {
        Err(Error::Gguf { offset, kind }) => (offset, kind),
        Err(e) => panic!("expected a GGUF error, got {e}"),
        Ok(_) => panic!("malformed file was accepted"),
    }
}

/// Raw little-endian GGUF builder for hand-made headers.
#[derive(Default)]
struct Raw(Vec<u8>);
impl Raw {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, s: &[u8]) -> &mut Self {
        self.u64(s.len() as u64).bytes(s)
    }
    /// A tensor info.
    fn tensor(&mut self, name: &str, ne: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name.as_bytes()).u32(ne.len() as u32);
        for &d in ne {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    /// Pads to 32 and appends `n` data bytes.
    fn data(&mut self, n: usize) -> &mut Self {
        while !self.0.len().is_multiple_of(32) {
            self.0.push(0);
        }
        self.0.extend(std::iter::repeat_n(0u8, n));
        self
    }
    fn parse(&self) -> (u64, K) {
        kind(parse_header(&self.0))
    }
}

#[test]
fn valid_file_parses() {
    let f = File::from_bytes(valid_file()).unwrap();
    assert_eq!(f.tensor_infos().len(), 3);
    assert_eq!(f.metadata().get_u32("x.count").unwrap(), 3);
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = valid_file();
    for n in 0..bytes.len() {
        match parse_header(&bytes[..n]) {
            Err(Error::Gguf { offset, .. }) => {
                assert!(offset <= n as u64, "offset {offset} past end {n}")
            }
            Err(e) => panic!("truncation at {n}: unexpected error {e}"),
            Ok(_) => panic!("truncation at {n} of {} accepted", bytes.len()),
        }
    }
    assert!(parse_header(&bytes).is_ok());
}

#[test]
fn bad_magic_v1_big_endian_and_future_versions() {
    assert!(matches!(
        Raw(b"GGML\x03\0\0\0".to_vec()).parse().1,
        K::BadMagic(_)
    ));
    assert_eq!(Raw::header(1, 0, 0).parse().1, K::UnsupportedVersion(1));
    assert_eq!(Raw::header(4, 0, 0).parse().1, K::UnsupportedVersion(4));
    let mut be = Raw(b"GGUF".to_vec());
    be.bytes(&3u32.to_be_bytes())
        .bytes(&0u64.to_be_bytes())
        .bytes(&0u64.to_be_bytes());
    assert_eq!(be.parse(), (4, K::BigEndian(3)));
    let e = parse_header(&be.0).unwrap_err().to_string();
    assert!(e.contains("big-endian"), "{e}");
}

#[test]
fn huge_counts_do_not_allocate() {
    assert!(
        matches!(Raw::header(3, 1 << 60, 0).parse().1, K::CountTooLarge { count, .. } if count == 1 << 60)
    );
    assert!(matches!(
        Raw::header(3, 0, 1 << 60).parse().1,
        K::CountTooLarge { .. }
    ));
    assert!(matches!(
        Raw::header(3, u64::MAX, u64::MAX).parse().1,
        K::CountTooLarge { .. }
    ));
    // A 2^40-byte key.
    let mut r = Raw::header(3, 0, 1);
    r.u64(1 << 40).bytes(&[b'a'; 64]);
    assert!(matches!(r.parse().1, K::Truncated { needed, .. } if needed == 1 << 40));
    // A 2^40-byte string value.
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(8).u64(1 << 40);
    assert!(matches!(r.parse().1, K::Truncated { .. }));
    // Arrays claiming 2^60 elements of each type.
    for ty in 0..13u32 {
        let mut r = Raw::header(3, 0, 1);
        r.str(b"k").u32(9).u32(ty).u64(1 << 60).bytes(&[0; 64]);
        assert!(
            matches!(r.parse().1, K::CountTooLarge { .. }),
            "array of type {ty}"
        );
    }
    // A tensor with 2^62 x 2^62 elements.
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[1 << 62, 1 << 62], 0, 0);
    assert!(matches!(r.parse().1, K::BadShape { .. }));
    // A tensor whose size fits u64 but not the file.
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[1 << 20, 1 << 20], 0, 0).data(64);
    assert!(matches!(r.parse().1, K::OutOfBounds { .. }));
}

#[test]
fn wrong_value_types() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(13).u32(0);
    assert_eq!(r.parse().1, K::UnknownValueType(13));
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(9).u32(99).u64(0);
    assert_eq!(r.parse().1, K::UnknownValueType(99));
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(7).bytes(&[2]);
    assert_eq!(r.parse().1, K::InvalidBool(2));
    // general.alignment of the wrong type, zero, or not a power of two.
    let mut r = Raw::header(3, 0, 1);
    r.str(b"general.alignment").u32(8).str(b"32");
    assert!(matches!(r.parse().1, K::BadAlignment(_)));
    for a in [0u32, 3, 48, 1 << 31] {
        let mut r = Raw::header(3, 0, 1);
        r.str(b"general.alignment").u32(4).u32(a);
        assert!(matches!(r.parse().1, K::BadAlignment(_)), "alignment {a}");
    }
    // Duplicate keys.
    let mut r = Raw::header(3, 0, 2);
    r.str(b"k").u32(4).u32(1).str(b"k").u32(4).u32(2);
    assert_eq!(r.parse().1, K::DuplicateKey("k".into()));
}

#[test]
fn typed_accessors_report_missing_and_wrong_types() {
    let f = File::from_bytes(valid_file()).unwrap();
    let md = f.metadata();
    assert!(matches!(md.get_u32("nope"), Err(Error::MissingKey(k)) if k == "nope"));
    assert!(matches!(
        md.get_str("x.count"),
        Err(Error::WrongType { .. })
    ));
    assert!(matches!(
        md.get_arr::<f32>("x.list"),
        Err(Error::WrongType { .. })
    ));
    assert_eq!(md.get_arr::<String>("x.list").unwrap(), ["a", "bc"]);
    assert_eq!(md.get_u64("x.count").unwrap(), 3);
    assert!(matches!(
        md.get_f32("general.architecture"),
        Err(Error::WrongType { .. })
    ));
    assert_eq!(md.optional("nope", Metadata::get_u32).unwrap(), None);
}

#[test]
fn deeply_nested_arrays_are_refused() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(9);
    for _ in 0..10_000 {
        r.u32(9).u64(1);
    }
    r.u32(4).u64(0);
    assert!(matches!(r.parse().1, K::NestingTooDeep(_)));
}

#[test]
fn non_utf8_strings() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k\xff").u32(4).u32(1);
    assert!(matches!(r.parse().1, K::InvalidUtf8(_)));
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(8).str(b"\xc3\x28");
    assert!(matches!(r.parse().1, K::InvalidUtf8(_)));
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k")
        .u32(9)
        .u32(8)
        .u64(2)
        .str(b"ok")
        .str(b"\xed\xa0\x80");
    assert!(matches!(r.parse().1, K::InvalidUtf8(_)));
    let mut r = Raw::header(3, 1, 0);
    r.str(b"\x80t").u32(1).u64(4).u32(0).u64(0).data(16);
    assert!(matches!(r.parse().1, K::InvalidUtf8(_)));
}

#[test]
fn bad_tensor_infos() {
    let one = |name: &str, ne: &[u64], ty: u32, off: u64, data: usize| {
        let mut r = Raw::header(3, 1, 0);
        r.tensor(name, ne, ty, off).data(data);
        r.parse().1
    };
    // The well-formed version of the one-tensor file parses.
    let mut ok = Raw::header(3, 1, 0);
    ok.tensor("t", &[4], 0, 0).data(16);
    assert!(parse_header(&ok.0).is_ok());
    assert!(matches!(
        one("t", &[4], 0, 5, 64),
        K::Misaligned { offset: 5, .. }
    ));
    assert!(matches!(one("t", &[4], 0, 64, 64), K::OutOfBounds { .. }));
    assert!(matches!(
        one("t", &[4], 0, u64::MAX - 31, 64),
        K::Misaligned { .. } | K::OutOfBounds { .. }
    ));
    assert!(matches!(
        one("t", &[4], 0, (u64::MAX / 32) * 32, 64),
        K::OutOfBounds { .. }
    ));
    assert!(matches!(
        one("t", &[1, 1, 1, 1, 1], 0, 0, 64),
        K::TooManyDims { n_dims: 5, .. }
    ));
    assert!(matches!(
        one("t", &[32], 4, 0, 64),
        K::UnsupportedQuant { id: 4, .. }
    ));
    assert!(matches!(
        one("t", &[32], 1000, 0, 64),
        K::UnsupportedQuant { id: 1000, .. }
    ));
    assert!(matches!(one("t", &[31, 2], 8, 0, 128), K::BadShape { .. }));
    assert!(matches!(one("t", &[128], 12, 0, 512), K::BadShape { .. }));
    // Overlap and duplicates.
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[16], 0, 0)
        .tensor("b", &[16], 0, 32)
        .data(128);
    assert!(matches!(r.parse().1, K::Overlap(a, b) if a == "a" && b == "b"));
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[8], 0, 0).tensor("a", &[8], 0, 32).data(128);
    assert_eq!(r.parse().1, K::DuplicateTensor("a".into()));
    // The same two tensors without overlap are fine.
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[8], 0, 0).tensor("b", &[8], 0, 32).data(64);
    assert!(parse_header(&r.0).is_ok());
}

#[test]
fn random_corruptions_never_panic() {
    let base = valid_file();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut errors = 0;
    for _ in 0..20_000 {
        let mut b = base.clone();
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..b.len());
            b[i] = match rng.gen_range(0..3) {
                0 => rng.gen(),
                1 => b[i] ^ (1 << rng.gen_range(0..8)),
                _ => 0xff,
            };
        }
        if rng.gen_ratio(1, 10) {
            b.truncate(rng.gen_range(0..b.len()));
        }
        match File::from_bytes(b) {
            Ok(f) => {
                // Whatever parses must be usable without panicking.
                for t in f.tensors() {
                    let _ = t.to_f32();
                }
            }
            Err(Error::Gguf { .. }) => errors += 1,
            Err(e) => panic!("unexpected error type: {e}"),
        }
    }
    assert!(errors > 1000, "only {errors} corruptions detected");
}
