//! The `tojson` filter as Hugging Face's chat templates see it: Python's
//! `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
//!
//! minijinja's built-in `tojson` escapes `<`, `>`, `&` and `'` for HTML and uses other
//! separators, so tool schemas would reach the model as different text than under
//! `transformers`. This writes what Python writes: `", "` and `": "` separators (`","` once
//! `indent` is given), maps in insertion order, floats as Python's `repr` (`1.0`, `1e-05`,
//! `1e+20`), `NaN`/`Infinity`, and with `ensure_ascii=True` every character outside
//! `' '..='~'` as `\uXXXX` (UTF-16 units, lowercase hex).

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, State, Value};

/// Deepest nesting `tojson` writes (templates cannot build cycles, but can build deep values).
const MAX_DEPTH: usize = 128;

/// How `json.dumps` was asked to write.
struct Style {
    ensure_ascii: bool,
    /// Indent unit; `None` writes everything on one line.
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
    /// Output bigger than this is an error (the template's output limit).
    max_len: usize,
}

/// The filter, writing at most `max_len` bytes.
pub(super) fn filter(
    max_len: usize,
) -> impl Fn(&State, &Value, Kwargs) -> Result<Value, Error> + Send + Sync + 'static {
    move |state, value, kwargs| {
        let indent = match kwargs.get::<Option<Value>>("indent")? {
            None => None,
            Some(v) if v.is_none() => None,
            Some(v) if v.kind() == ValueKind::String => Some(v.as_str().unwrap_or("").to_string()),
            Some(v) => {
                let n = usize::try_from(v)?;
                if n > 64 {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson indent > 64",
                    ));
                }
                Some(" ".repeat(n))
            }
        };
        let (item_sep, key_sep) = match kwargs.get::<Option<Value>>("separators")? {
            Some(v) if !v.is_none() => {
                let item = v.get_item(&Value::from(0))?;
                let key = v.get_item(&Value::from(1))?;
                match (item.as_str(), key.as_str()) {
                    (Some(i), Some(k)) if i.len() <= 64 && k.len() <= 64 => {
                        (i.to_string(), k.to_string())
                    }
                    _ => {
                        return Err(Error::new(
                            ErrorKind::InvalidOperation,
                            "tojson separators must be two short strings",
                        ))
                    }
                }
            }
            _ if indent.is_some() => (",".into(), ": ".into()),
            _ => (", ".into(), ": ".into()),
        };
        let style = Style {
            ensure_ascii: kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false),
            indent,
            item_sep,
            key_sep,
            sort_keys: kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
            max_len,
        };
        kwargs.assert_all_used()?;
        let mut out = String::new();
        write_value(&mut out, value, &style, 0)?;
        // Serializing walks the whole value: charge like minijinja's own `tojson` does
        // (16 units of 1/64 fuel per byte).
        state.consume_fuel(out.len() as u64 / 4)?;
        Ok(Value::from_safe_string(out))
    }
}

fn too_long(out: &str, style: &Style) -> Result<(), Error> {
    if out.len() > style.max_len {
        Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson output longer than {} bytes", style.max_len),
        ))
    } else {
        Ok(())
    }
}

fn newline(out: &mut String, style: &Style, depth: usize) {
    if let Some(unit) = &style.indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(unit);
        }
    }
}

fn write_value(out: &mut String, v: &Value, style: &Style, depth: usize) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson: value nested deeper than {MAX_DEPTH}"),
        ));
    }
    too_long(out, style)?;
    match v.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => write_number(out, v),
        ValueKind::String => write_str(out, v.as_str().unwrap_or(""), style.ensure_ascii),
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            let mut first = true;
            for item in v.try_iter()? {
                if !first {
                    out.push_str(&style.item_sep);
                }
                first = false;
                newline(out, style, depth + 1);
                write_value(out, &item, style, depth + 1)?;
            }
            if !first {
                newline(out, style, depth);
            }
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<(String, Value)> = Vec::new();
            for k in v.try_iter()? {
                keys.push((key_string(&k)?, k));
            }
            if style.sort_keys {
                keys.sort_by(|a, b| a.0.cmp(&b.0));
            }
            out.push('{');
            for (i, (ks, k)) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(&style.item_sep);
                }
                newline(out, style, depth + 1);
                write_str(out, ks, style.ensure_ascii);
                out.push_str(&style.key_sep);
                write_value(out, &v.get_item(k)?, style, depth + 1)?;
            }
            if !keys.is_empty() {
                newline(out, style, depth);
            }
            out.push('}');
        }
        kind => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson: a value of kind {kind} is not JSON serializable"),
            ))
        }
    }
    too_long(out, style)
}

/// A map key as Python's `json.dumps` writes it (str, int, float, bool and None keys).
fn key_string(k: &Value) -> Result<String, Error> {
    Ok(match k.kind() {
        ValueKind::String => k.as_str().unwrap_or("").to_string(),
        ValueKind::Number => {
            let mut s = String::new();
            write_number(&mut s, k);
            s
        }
        ValueKind::Bool => (if k.is_true() { "true" } else { "false" }).to_string(),
        ValueKind::None => "null".to_string(),
        kind => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson: keys must be str, int, float, bool or None, not {kind}"),
            ))
        }
    })
}

fn write_number(out: &mut String, v: &Value) {
    if v.is_integer() {
        out.push_str(&v.to_string());
    } else {
        match f64::try_from(v.clone()) {
            Ok(x) => out.push_str(&py_float_repr(x)),
            Err(_) => out.push_str(&v.to_string()),
        }
    }
}

/// Python's `repr(float)` as `json.dumps` writes it.
pub(super) fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, like Python's repr.
    let e = format!("{x:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let mut s = String::from(sign);
        if exp < 0 {
            s.push_str("0.");
            for _ in 0..(-exp - 1) {
                s.push('0');
            }
            s.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() > int_len {
                s.push_str(&digits[..int_len]);
                s.push('.');
                s.push_str(&digits[int_len..]);
            } else {
                s.push_str(&digits);
                for _ in digits.len()..int_len {
                    s.push('0');
                }
                s.push_str(".0");
            }
        }
        s
    } else {
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exp.abs())
    }
}

fn write_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && !(' '..='~').contains(&c)) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_python_repr() {
        // Expected strings are Python 3's repr() of the same doubles.
        let cases = [
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (123456.789, "123456.789"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e300, "1.5e+300"),
            (-1.25e-7, "-1.25e-07"),
            (-0.0, "-0.0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (x, want) in cases {
            assert_eq!(py_float_repr(x), want, "{x:e}");
        }
    }

    #[test]
    fn strings_like_python() {
        let mut s = String::new();
        write_str(&mut s, "a\"\\\n\u{1}é😀\u{7f}", false);
        assert_eq!(s, "\"a\\\"\\\\\\n\\u0001é😀\u{7f}\"");
        s.clear();
        write_str(&mut s, "é😀\u{7f}~", true);
        assert_eq!(s, "\"\\u00e9\\ud83d\\ude00\\u007f~\"");
    }
}
