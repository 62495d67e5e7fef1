//! NumPy `.npy` (format version 1.0) writing and reading: the interchange
//! format for decoded arrays, readable with `numpy.load`.

use std::io::{self, Read, Write};

/// Serialise an array to `.npy` bytes. `descr` is a NumPy dtype string such as `<f4`.
pub fn to_bytes(descr: &str, shape: &[usize], data_le: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data_le.len() + 128);
    write(&mut out, descr, shape, data_le).expect("writing to a Vec cannot fail");
    out
}

pub fn write<W: Write>(mut w: W, descr: &str, shape: &[usize], data_le: &[u8]) -> io::Result<()> {
    let shape_str = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_str}, }}");
    // magic(6) + version(2) + len(2) + header + '\n' must be a multiple of 64
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.div_ceil(64) * 64 - total));
    header.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    w.write_all(data_le)
}

/// Write a float32 array.
pub fn f32_bytes(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let raw: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    to_bytes("<f4", shape, &raw)
}

/// The longest header [`Npy::read`] accepts.
const MAX_HEADER: usize = 1 << 20;

/// Bytes per value of the dtypes [`Npy::to_f64`] reads.
fn item_size(descr: &str) -> Option<usize> {
    match descr {
        "|u1" | "<u1" | "|i1" | "<i1" => Some(1),
        "<u2" | "<i2" => Some(2),
        "<u4" | "<i4" | "<f4" => Some(4),
        "<i8" | "<f8" => Some(8),
        _ => None,
    }
}

/// A parsed `.npy` file (little-endian or single-byte dtypes only). Its data
/// holds exactly the values its shape says, for the dtypes it knows.
#[derive(Debug, Clone, PartialEq)]
pub struct Npy {
    pub descr: String,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Npy {
    pub fn read<R: Read>(mut r: R) -> io::Result<Npy> {
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic[..6] != b"\x93NUMPY" {
            return Err(bad("not an .npy file"));
        }
        if !(1..=3).contains(&magic[6]) {
            return Err(bad("unknown .npy format version"));
        }
        let hlen = if magic[6] == 1 {
            let mut l = [0u8; 2];
            r.read_exact(&mut l)?;
            u16::from_le_bytes(l) as usize
        } else {
            let mut l = [0u8; 4];
            r.read_exact(&mut l)?;
            u32::from_le_bytes(l) as usize
        };
        // a header is a short Python dict; a huge declared length is corruption
        // (a 168-byte file once asked for 4 GB here; found by fuzzing)
        if hlen > MAX_HEADER {
            return Err(bad("header length is implausible"));
        }
        let mut h = vec![0u8; hlen];
        r.read_exact(&mut h)?;
        let h = String::from_utf8_lossy(&h).to_string();
        let field = |key: &str| -> Option<String> {
            let i = h.find(key)? + key.len();
            let rest = h[i..].trim_start_matches([':', ' ', '\'']);
            Some(rest.to_string())
        };
        let descr = field("'descr'")
            .and_then(|s| s.split('\'').next().map(|s| s.to_string()))
            .ok_or_else(|| bad("no descr"))?;
        if field("'fortran_order'").is_some_and(|s| s.starts_with("True")) {
            return Err(bad("fortran order not supported"));
        }
        let shape_s = field("'shape'").ok_or_else(|| bad("no shape"))?;
        let inner = shape_s
            .trim_start_matches('(')
            .split(')')
            .next()
            .unwrap_or_default()
            .to_string();
        let shape = inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<usize>().map_err(|_| bad("bad shape")))
            .collect::<io::Result<Vec<_>>>()?;
        let mut data = Vec::new();
        r.read_to_end(&mut data)?;
        if let Some(size) = item_size(&descr) {
            let need = shape
                .iter()
                .try_fold(size, |a, &d| a.checked_mul(d))
                .ok_or_else(|| bad("shape overflows"))?;
            if data.len() != need {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "data is {} bytes, but shape {:?} of {descr} needs {need}",
                        data.len(),
                        shape
                    ),
                ));
            }
        }
        Ok(Npy { descr, shape, data })
    }

    /// Values as f32 (float32 data directly, other dtypes through
    /// [`Npy::to_f64`]); empty for a dtype that is not read.
    pub fn to_f32(&self) -> Vec<f32> {
        if self.descr == "<f4" {
            return self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
        }
        self.to_f64().into_iter().map(|v| v as f32).collect()
    }

    /// Whether the values are floating point (float32 or float64).
    pub fn is_float(&self) -> bool {
        matches!(self.descr.as_str(), "<f4" | "<f8")
    }

    /// Values as f64, for the dtypes this project writes.
    pub fn to_f64(&self) -> Vec<f64> {
        let d = &self.data;
        match self.descr.as_str() {
            "|u1" | "<u1" => d.iter().map(|&x| x as f64).collect(),
            "|i1" | "<i1" => d.iter().map(|&x| x as i8 as f64).collect(),
            "<u2" => d
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as f64)
                .collect(),
            "<i2" => d
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f64)
                .collect(),
            "<u4" => d
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            "<i4" => d
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            "<i8" => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
                .collect(),
            "<f4" => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            "<f8" => d
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_files_are_errors() {
        let good = f32_bytes(&[2, 3], &[0.0; 6]);
        assert!(Npy::read(&good[..]).is_ok());
        // data shorter or longer than the shape
        assert!(Npy::read(&good[..good.len() - 4]).is_err());
        let mut long = good.clone();
        long.extend([0; 4]);
        let e = Npy::read(&long[..]).unwrap_err().to_string();
        assert!(e.contains("needs 24"), "{e}");
        // an unknown version, or a header length of 4 GB (found by fuzzing)
        let mut v = good.clone();
        v[6] = 0xff;
        assert!(Npy::read(&v[..]).is_err());
        let mut h = b"\x93NUMPY\x02\x00".to_vec();
        h.extend(u32::MAX.to_le_bytes());
        assert!(Npy::read(&h[..])
            .unwrap_err()
            .to_string()
            .contains("implausible"));
        // a shape whose size overflows
        let huge = to_bytes("<f4", &[usize::MAX, 2], &[]);
        assert!(Npy::read(&huge[..]).is_err());
    }

    #[test]
    fn int64_values() {
        let raw: Vec<u8> = [-3i64, 0, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        let n = Npy::read(&to_bytes("<i8", &[3], &raw)[..]).unwrap();
        assert_eq!(n.to_f64(), vec![-3.0, 0.0, 7.0]);
    }

    #[test]
    fn header_is_64_aligned_and_round_trips() {
        let b = f32_bytes(&[1, 2, 3, 1], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let n = Npy::read(&b[..]).unwrap();
        assert_eq!(n.descr, "<f4");
        assert_eq!(n.shape, vec![1, 2, 3, 1]);
        assert_eq!(n.to_f64(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }
}
