//! The GGUF reader and writer against an independent implementation: the Python `gguf`
//! package (GGUFReader + gguf.quants.dequantize), on the real SmolLM2 file and on files our
//! writer and quantizer make.

mod common;

use std::path::Path;

use orcinus::gguf::{Array, File, Metadata, TensorSpec, Value, Writer};
use orcinus::quant::GgmlType;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as Json};

/// Our metadata as gguf_ref.py prints it: `{"type": [ids...], "value": ...}`.
fn value_json(v: &Value) -> (Vec<u32>, Json) {
    fn arr(a: &Array) -> (Vec<u32>, Json) {
        let mut types = vec![9, a.elem_type() as u32];
        let items: Vec<Json> = match a {
            Array::U8(v) => v.iter().map(|x| json!(x)).collect(),
            Array::I8(v) => v.iter().map(|x| json!(x)).collect(),
            Array::U16(v) => v.iter().map(|x| json!(x)).collect(),
            Array::I16(v) => v.iter().map(|x| json!(x)).collect(),
            Array::U32(v) => v.iter().map(|x| json!(x)).collect(),
            Array::I32(v) => v.iter().map(|x| json!(x)).collect(),
            Array::F32(v) => v.iter().map(|&x| json!(f64::from(x))).collect(),
            Array::Bool(v) => v.iter().map(|x| json!(x)).collect(),
            Array::String(v) => v.iter().map(|x| json!(x)).collect(),
            Array::U64(v) => v.iter().map(|x| json!(x)).collect(),
            Array::I64(v) => v.iter().map(|x| json!(x)).collect(),
            Array::F64(v) => v.iter().map(|x| json!(x)).collect(),
            Array::Array(v) => {
                // gguf-py reports the element type of the first sub-array only.
                if let Some(first) = v.first() {
                    types = vec![9];
                    types.extend(arr(first).0);
                }
                // ... and its `contents()` flattens nested arrays into one list.
                v.iter()
                    .flat_map(|x| match arr(x).1 {
                        Json::Array(items) => items,
                        other => vec![other],
                    })
                    .collect()
            }
        };
        if a.is_empty() {
            // gguf-py cannot see the element type of an empty array.
            types.truncate(1);
        }
        (types, Json::Array(items))
    }
    match v {
        Value::Array(a) => arr(a),
        Value::F32(x) => (vec![6], json!(f64::from(*x))),
        Value::F64(x) => (vec![12], json!(x)),
        Value::String(s) => (vec![8], json!(s)),
        Value::Bool(b) => (vec![7], json!(b)),
        Value::U64(x) => (vec![10], json!(x)),
        Value::I64(x) => (vec![11], json!(x)),
        other => (
            vec![other.ty() as u32],
            json!(other.as_i128().unwrap() as i64),
        ),
    }
}

/// Compares everything gguf-py sees in `path` with what Orcinus reads and dequantizes.
fn assert_same_as_gguf_py(path: &Path) {
    let ours = File::open(path).unwrap();
    let theirs = common::py_describe(path);
    assert_eq!(theirs["version"], json!(ours.version()));

    let md = theirs["metadata"].as_array().unwrap();
    let our_keys: Vec<&str> = ours.metadata().iter().map(|(k, _)| k).collect();
    let their_keys: Vec<&str> = md.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(our_keys, their_keys, "metadata keys / order");
    for ((k, v), e) in ours.metadata().iter().zip(md) {
        let (types, value) = value_json(v);
        assert_eq!(e["type"], json!(types), "type of {k}");
        assert_eq!(e["value"], value, "value of {k}");
    }

    let tensors = theirs["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), ours.tensor_infos().len());
    let mut checked = 0;
    for (t, p) in ours.tensors().zip(tensors) {
        let name = &t.info.name;
        assert_eq!(p["name"], json!(name));
        assert_eq!(p["type"], json!(t.info.ty.name()), "{name}");
        assert_eq!(p["ne"], json!(t.info.ne), "{name}");
        assert_eq!(
            p["offset"],
            json!(ours.header().data_offset + t.info.offset),
            "{name}"
        );
        assert_eq!(p["bytes"], json!(t.info.size), "{name}");
        let deq = t.to_f32().unwrap();
        assert_eq!(
            p["sha256"].as_str().unwrap(),
            common::sha256_f32(&deq),
            "dequantized {name} ({}) differs from gguf.quants.dequantize (float bits)",
            t.info.ty
        );
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn real_smollm2_q4_1_matches_gguf_py_bit_exact() {
    let path = common::smollm2();
    let f = File::open(&path).unwrap();
    let types: std::collections::BTreeSet<_> = f.tensor_infos().iter().map(|t| t.ty).collect();
    assert!(types.contains(&GgmlType::Q4_1), "{types:?}");
    assert_same_as_gguf_py(&path);
}

/// Rewriting the real file with our writer gives the same bytes (same layout rules as gguf-py).
#[test]
fn writer_reproduces_real_file_bytes() {
    let path = common::smollm2();
    let f = File::open(&path).unwrap();
    let specs: Vec<TensorSpec> = f
        .tensor_infos()
        .iter()
        .map(|t| TensorSpec::new(&t.name, &t.ne, t.ty))
        .collect();
    let mut out = Vec::with_capacity(f.len() as usize);
    let mut w = Writer::new(&mut out, f.metadata(), &specs).unwrap();
    for t in f.tensors() {
        // Chunked writes exercise the streaming path.
        for c in t.data.chunks(100_003) {
            w.write_data(c).unwrap();
        }
    }
    w.finish().unwrap();
    assert_eq!(out.len(), f.bytes().len());
    assert!(out == f.bytes(), "rewritten file differs");
}

fn all_value_types() -> Metadata {
    let mut md = Metadata::new();
    md.insert("general.architecture", Value::String("llama".into()));
    md.insert("t.u8", Value::U8(255));
    md.insert("t.i8", Value::I8(-128));
    md.insert("t.u16", Value::U16(65535));
    md.insert("t.i16", Value::I16(-32768));
    md.insert("t.u32", Value::U32(u32::MAX));
    md.insert("t.i32", Value::I32(i32::MIN));
    md.insert("t.f32", Value::F32(0.1));
    md.insert("t.bool", Value::Bool(true));
    md.insert(
        "t.string",
        Value::String("héllo 世界 🦀\n\t\"quoted\"".into()),
    );
    md.insert("t.u64", Value::U64(u64::MAX));
    md.insert("t.i64", Value::I64(i64::MIN));
    md.insert("t.f64", Value::F64(-1.0e300));
    md.insert("t.empty_string", Value::String(String::new()));
    md.insert("t.arr_u8", Value::Array(Array::U8(vec![0, 1, 255])));
    md.insert("t.arr_i32", Value::Array(Array::I32(vec![-1, 0, 1])));
    md.insert("t.arr_f32", Value::Array(Array::F32(vec![1.5, -0.25])));
    md.insert("t.arr_bool", Value::Array(Array::Bool(vec![true, false])));
    md.insert(
        "t.arr_str",
        Value::Array(Array::String(vec!["a".into(), "".into(), "ü".into()])),
    );
    md.insert("t.arr_u64", Value::Array(Array::U64(vec![1 << 40])));
    md.insert("t.arr_f64", Value::Array(Array::F64(vec![2.5])));
    md.insert("t.arr_empty", Value::Array(Array::I16(vec![])));
    md.insert(
        "t.arr_arr",
        Value::Array(Array::Array(vec![
            Array::U32(vec![1, 2, 3]),
            Array::U32(vec![]),
            Array::U32(vec![4]),
        ])),
    );
    md
}

/// Quantizes `x` to `ty` with our reference quantizer.
fn quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.row_bytes(x.len()).unwrap()];
    ty.quantize(x, &mut out).unwrap();
    out
}

/// Writes a file whose 2-D tensors are `tensors` (name, ne, f32 data) quantized to `ty`.
fn write_model(path: &Path, md: &Metadata, tensors: &[(String, Vec<u64>, Vec<f32>)], ty: GgmlType) {
    let pick = |ne: &[u64]| if ne.len() >= 2 { ty } else { GgmlType::F32 };
    let specs: Vec<TensorSpec> = tensors
        .iter()
        .map(|(n, ne, _)| TensorSpec::new(n, ne, pick(ne)))
        .collect();
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = Writer::new(file, md, &specs).unwrap();
    for (_, ne, x) in tensors {
        w.write_tensor_data(&quantize(pick(ne), x)).unwrap();
    }
    w.finish().unwrap();
}

/// Files our writer + quantizer make from the dequantized SmolLM2 weights load in GGUFReader and
/// dequantize in gguf-py to exactly our floats.
#[test]
fn quantized_smollm2_files_match_gguf_py() {
    let f = File::open(common::smollm2()).unwrap();
    let mut md = all_value_types();
    for (k, v) in f.metadata().iter() {
        md.insert(k, v.clone());
    }
    // Four layers plus the globals keep the test quick; every tensor shape of the model is there.
    let keep = |n: &str| {
        !n.starts_with("blk.")
            || ["blk.0.", "blk.1.", "blk.2.", "blk.29."]
                .iter()
                .any(|p| n.starts_with(p))
    };
    let tensors: Vec<(String, Vec<u64>, Vec<f32>)> = f
        .tensors()
        .filter(|t| keep(&t.info.name))
        .map(|t| (t.info.name.clone(), t.info.ne.clone(), t.to_f32().unwrap()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for ty in [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
    ] {
        let path = dir.path().join(format!("smollm2-{ty}.gguf"));
        write_model(&path, &md, &tensors, ty);
        assert_same_as_gguf_py(&path);
    }
    // K-quants need rows that are multiples of 256: only ffn_down (1536 wide) qualifies.
    let down: Vec<_> = tensors
        .iter()
        .filter(|t| t.0.ends_with("ffn_down.weight"))
        .cloned()
        .collect();
    assert_eq!(down.len(), 4);
    for ty in [
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
    ] {
        let path = dir.path().join(format!("smollm2-ffn_down-{ty}.gguf"));
        write_model(&path, &md, &down, ty);
        assert_same_as_gguf_py(&path);
    }
}

/// A random-weight model with 256-multiple widths covers the K-quants on every tensor.
#[test]
fn random_model_k_quants_match_gguf_py() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut md = Metadata::new();
    md.insert("general.architecture", Value::String("llama".into()));
    let shapes: [(&str, &[u64]); 5] = [
        ("token_embd.weight", &[256, 64]),
        ("blk.0.attn_q.weight", &[256, 256]),
        ("blk.0.ffn_down.weight", &[512, 256]),
        ("blk.0.ffn_up.weight", &[256, 512]),
        ("blk.0.attn_norm.weight", &[256]),
    ];
    let tensors: Vec<(String, Vec<u64>, Vec<f32>)> = shapes
        .iter()
        .enumerate()
        .map(|(i, (n, ne))| {
            let len = ne.iter().product::<u64>() as usize;
            let scale = 10f32.powi(i as i32 - 2);
            let x = (0..len)
                .map(|_| {
                    // A mix of gaussian-like values and rare outliers.
                    let g: f32 = (0..4).map(|_| rng.gen::<f32>() - 0.5).sum();
                    if rng.gen_ratio(1, 200) {
                        g * 20.0 * scale
                    } else {
                        g * scale
                    }
                })
                .collect();
            (n.to_string(), ne.to_vec(), x)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for ty in [
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
        GgmlType::Q4_0,
        GgmlType::Q8_0,
        GgmlType::F16,
        GgmlType::BF16,
    ] {
        let path = dir.path().join(format!("random-{ty}.gguf"));
        write_model(&path, &md, &tensors, ty);
        assert_same_as_gguf_py(&path);
    }
}

#[test]
fn writer_metadata_of_every_type_reads_back_in_gguf_py() {
    let md = all_value_types();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.gguf");
    let specs = vec![TensorSpec::new("x", &[32, 2], GgmlType::Q8_0)];
    let file = std::fs::File::create(&path).unwrap();
    let mut w = Writer::new(file, &md, &specs).unwrap();
    w.write_tensor_data(&quantize(GgmlType::Q8_0, &[0.5; 64]))
        .unwrap();
    w.finish().unwrap();
    assert_same_as_gguf_py(&path);
    // And our own reader gives back exactly what we wrote.
    let f = File::open(&path).unwrap();
    assert_eq!(f.metadata(), &md);
}
