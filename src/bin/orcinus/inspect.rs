//! `orcinus inspect` and `orcinus tensor`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use orcinus::gguf::{Array, File, Value};
use orcinus::quant::GgmlType;
use serde_json::{json, Value as Json};

/// Arrays longer than this are summarised in the text output.
const SHOWN_ITEMS: usize = 8;

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

fn value_text(v: &Value, full: bool) -> String {
    match v {
        Value::String(s) => format!("{:?}", truncate(s, if full { usize::MAX } else { 200 })),
        Value::Array(a) => array_text(a, full),
        Value::F32(x) => format!("{x}"),
        Value::F64(x) => format!("{x}"),
        Value::Bool(b) => format!("{b}"),
        other => other.as_i128().map(|i| i.to_string()).unwrap_or_default(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

fn array_items(a: &Array) -> Vec<Value> {
    match a {
        Array::U8(v) => v.iter().map(|&x| Value::U8(x)).collect(),
        Array::I8(v) => v.iter().map(|&x| Value::I8(x)).collect(),
        Array::U16(v) => v.iter().map(|&x| Value::U16(x)).collect(),
        Array::I16(v) => v.iter().map(|&x| Value::I16(x)).collect(),
        Array::U32(v) => v.iter().map(|&x| Value::U32(x)).collect(),
        Array::I32(v) => v.iter().map(|&x| Value::I32(x)).collect(),
        Array::F32(v) => v.iter().map(|&x| Value::F32(x)).collect(),
        Array::Bool(v) => v.iter().map(|&x| Value::Bool(x)).collect(),
        Array::String(v) => v.iter().map(|x| Value::String(x.clone())).collect(),
        Array::Array(v) => v.iter().map(|x| Value::Array(x.clone())).collect(),
        Array::U64(v) => v.iter().map(|&x| Value::U64(x)).collect(),
        Array::I64(v) => v.iter().map(|&x| Value::I64(x)).collect(),
        Array::F64(v) => v.iter().map(|&x| Value::F64(x)).collect(),
    }
}

fn array_text(a: &Array, full: bool) -> String {
    let shown = if full {
        a.len()
    } else {
        a.len().min(SHOWN_ITEMS)
    };
    let items: Vec<String> = array_items(a)
        .iter()
        .take(shown)
        .map(|v| value_text(v, full))
        .collect();
    let more = if shown < a.len() {
        format!(", … {} more", a.len() - shown)
    } else {
        String::new()
    };
    format!(
        "[{}; {}] [{}{}]",
        a.elem_type(),
        a.len(),
        items.join(", "),
        more
    )
}

fn value_json(v: &Value) -> Json {
    match v {
        Value::String(s) => Json::String(s.clone()),
        Value::Array(a) => Json::Array(array_items(a).iter().map(value_json).collect()),
        Value::F32(x) => {
            serde_json::Number::from_f64(f64::from(*x)).map_or(Json::Null, Json::Number)
        }
        Value::F64(x) => serde_json::Number::from_f64(*x).map_or(Json::Null, Json::Number),
        Value::Bool(b) => Json::Bool(*b),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        other => json!(other.as_i128().unwrap_or_default() as i64),
    }
}

struct Summary {
    architecture: Option<String>,
    n_params: u64,
    tensor_bytes: u64,
    mix: BTreeMap<GgmlType, (usize, u64, u64)>,
}

fn summarise(f: &File) -> Summary {
    let mut mix: BTreeMap<GgmlType, (usize, u64, u64)> = BTreeMap::new();
    let (mut n_params, mut tensor_bytes) = (0u64, 0u64);
    for t in f.tensor_infos() {
        let e = mix.entry(t.ty).or_default();
        e.0 += 1;
        e.1 += t.size;
        e.2 += t.n_elements();
        n_params += t.n_elements();
        tensor_bytes += t.size;
    }
    Summary {
        architecture: f
            .metadata()
            .get_str("general.architecture")
            .ok()
            .map(str::to_owned),
        n_params,
        tensor_bytes,
        mix,
    }
}

fn bpw(bytes: u64, params: u64) -> f64 {
    if params == 0 {
        0.0
    } else {
        bytes as f64 * 8.0 / params as f64
    }
}

/// Renders the report for `path`.
pub fn inspect(path: &Path, as_json: bool, full: bool) -> anyhow::Result<String> {
    let f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    render(&f, &path.display().to_string(), as_json, full)
}

/// Renders the report for an open file (`label` names it in the text output).
pub fn render(f: &File, label: &str, as_json: bool, full: bool) -> anyhow::Result<String> {
    let s = summarise(f);
    if as_json {
        let metadata: serde_json::Map<String, Json> = f
            .metadata()
            .iter()
            .map(|(k, v)| (k.to_string(), value_json(v)))
            .collect();
        let tensors: Vec<Json> = f
            .tensor_infos()
            .iter()
            .map(|t| {
                json!({"name": t.name, "type": t.ty.name(), "shape": t.ne, "offset": t.offset, "bytes": t.size})
            })
            .collect();
        let mix: serde_json::Map<String, Json> = s
            .mix
            .iter()
            .map(|(ty, (n, b, p))| {
                (
                    ty.name().to_string(),
                    json!({"tensors": n, "bytes": b, "params": p}),
                )
            })
            .collect();
        let out = json!({
            "version": f.version(),
            "file_size": f.len(),
            "data_offset": f.header().data_offset,
            "alignment": f.header().alignment,
            "metadata": metadata,
            "tensors": tensors,
            "summary": {
                "architecture": s.architecture,
                "n_params": s.n_params,
                "tensor_bytes": s.tensor_bytes,
                "bits_per_weight": bpw(s.tensor_bytes, s.n_params),
                "types": mix,
            }
        });
        return Ok(serde_json::to_string_pretty(&out)? + "\n");
    }

    let mut o = String::new();
    writeln!(
        o,
        "{}: GGUF v{}, {} ({} bytes), {} metadata keys, {} tensors, alignment {}",
        label,
        f.version(),
        human_bytes(f.len()),
        f.len(),
        f.metadata().len(),
        f.tensor_infos().len(),
        f.header().alignment
    )?;
    writeln!(o, "\nmetadata:")?;
    for (k, v) in f.metadata().iter() {
        writeln!(o, "  {k:<40} {:<8} {}", v.ty(), value_text(v, full))?;
    }
    writeln!(o, "\ntensors:")?;
    let w = f
        .tensor_infos()
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        o,
        "  {:<w$}  {:<5}  {:<24}  {:>12}  {:>12}",
        "name", "type", "ne", "offset", "bytes"
    )?;
    for t in f.tensor_infos() {
        let ne =
            t.ne.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" x ");
        writeln!(
            o,
            "  {:<w$}  {:<5}  {:<24}  {:>12}  {:>12}",
            t.name,
            t.ty.name(),
            ne,
            t.offset,
            t.size
        )?;
    }
    writeln!(o, "\nsummary:")?;
    writeln!(
        o,
        "  architecture    {}",
        s.architecture.as_deref().unwrap_or("(none)")
    )?;
    writeln!(
        o,
        "  parameters      {} ({:.2} M)",
        s.n_params,
        s.n_params as f64 / 1e6
    )?;
    writeln!(
        o,
        "  tensor data     {} ({})",
        s.tensor_bytes,
        human_bytes(s.tensor_bytes)
    )?;
    writeln!(
        o,
        "  bits per weight {:.3}",
        bpw(s.tensor_bytes, s.n_params)
    )?;
    writeln!(
        o,
        "  file size       {} ({})",
        f.len(),
        human_bytes(f.len())
    )?;
    writeln!(o, "  quant mix:")?;
    for (ty, (n, b, p)) in &s.mix {
        writeln!(
            o,
            "    {:<5} {:>4} tensors  {:>12} bytes ({:>10})  {:>6.2}% of params",
            ty.name(),
            n,
            b,
            human_bytes(*b),
            100.0 * *p as f64 / s.n_params.max(1) as f64
        )?;
    }
    Ok(o)
}

/// `orcinus tensor`: dequantize `name` and write it as `.npy`.
pub fn tensor_to_npy(path: &Path, name: &str, out: &Path) -> anyhow::Result<()> {
    let f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let t = f.tensor(name)?;
    let data = t.to_f32()?;
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    orcinus::npy::write_f32(
        std::io::BufWriter::new(file),
        &t.info.shape_row_major(),
        &data,
    )?;
    Ok(())
}
