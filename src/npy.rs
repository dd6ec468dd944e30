//! Minimal `.npy` (NumPy format 1.0) writer for little-endian float32 arrays.

use std::io::Write;

use crate::error::{Error, Result};

/// Writes `data` as a C-order `<f4` array of `shape` to `out`.
pub fn write_f32<W: Write>(mut out: W, shape: &[u64], data: &[f32]) -> Result<()> {
    let n: u64 = shape.iter().product();
    if n != data.len() as u64 {
        return Err(Error::ShapeMismatch {
            name: "npy".into(),
            expected: shape.to_vec(),
            found: vec![data.len() as u64],
        });
    }
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_str = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_str}, }}");
    // Magic (6) + version (2) + header length (2) + header + '\n' is a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    let io = |e| Error::io("writing .npy", e);
    out.write_all(b"\x93NUMPY\x01\x00").map_err(io)?;
    out.write_all(&(header.len() as u16).to_le_bytes())
        .map_err(io)?;
    out.write_all(header.as_bytes()).map_err(io)?;
    let mut buf = Vec::with_capacity(64 * 1024);
    for chunk in data.chunks(16 * 1024) {
        buf.clear();
        for v in chunk {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        out.write_all(&buf).map_err(io)?;
    }
    out.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_is_aligned() {
        let mut v = Vec::new();
        super::write_f32(&mut v, &[2, 3], &[0.0; 6]).unwrap();
        let hlen = u16::from_le_bytes([v[8], v[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        assert_eq!(v.len(), 10 + hlen + 24);
        assert!(std::str::from_utf8(&v[10..10 + hlen])
            .unwrap()
            .contains("'shape': (2, 3)"));
        assert!(super::write_f32(&mut v, &[2, 2], &[0.0; 6]).is_err());
    }
}
