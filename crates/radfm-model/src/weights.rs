//! Reading checkpoint tensors from safetensors files into burn tensors, by
//! name, with a record of which names were used: a loader that leaves a
//! tensor of the checkpoint behind is a loader with a bug, and says so.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

use crate::ModelError;

/// The tensors of one checkpoint, as f32 host arrays, keyed by name. Reading a
/// tensor takes it out, so what is left at the end is what no one read.
pub struct Weights {
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    source: String,
}

pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // subnormal: renormalise
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

impl Weights {
    /// Read every `*.safetensors` file of a directory (sharded checkpoints
    /// included), or one file.
    pub fn open(path: &Path) -> Result<Weights, ModelError> {
        let files: Vec<std::path::PathBuf> = if path.is_dir() {
            let mut v: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| ModelError::io(path, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                .filter(|p| {
                    // our own checkpoints keep optimizer state beside the model
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("optimizer"))
                })
                .collect();
            v.sort();
            v
        } else {
            vec![path.to_path_buf()]
        };
        if files.is_empty() {
            return Err(ModelError::Format(format!(
                "{}: no .safetensors file (PyTorch .bin checkpoints are not read: convert them with save_pretrained(safe_serialization=True))",
                path.display()
            )));
        }
        let mut tensors = BTreeMap::new();
        for f in &files {
            // mapped, not read: the file's pages come from the page cache, and
            // only the f32 copies are new memory
            let file = std::fs::File::open(f).map_err(|e| ModelError::io(f, e))?;
            // SAFETY: the map is read-only and dropped before this function
            // returns; a file changed underneath would give wrong weights, not UB
            // beyond what reading it would
            let bytes = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::io(f, e))?;
            let st = safetensors::SafeTensors::deserialize(&bytes)
                .map_err(|e| ModelError::Format(format!("{}: {e}", f.display())))?;
            for (name, view) in st.tensors() {
                let data = view.data();
                let values: Vec<f32> = match view.dtype() {
                    safetensors::Dtype::F32 => data
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                    safetensors::Dtype::F16 => data
                        .chunks_exact(2)
                        .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                        .collect(),
                    safetensors::Dtype::BF16 => data
                        .chunks_exact(2)
                        .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                        .collect(),
                    safetensors::Dtype::F64 => data
                        .chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                        .collect(),
                    safetensors::Dtype::I64 => data
                        .chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
                        .collect(),
                    other => {
                        return Err(ModelError::Format(format!(
                            "{}: tensor {name} has dtype {other:?}, which is not read",
                            f.display()
                        )))
                    }
                };
                tensors.insert(name.to_string(), (view.shape().to_vec(), values));
            }
        }
        Ok(Weights {
            tensors,
            source: path.display().to_string(),
        })
    }

    /// From in-memory arrays (tests, and our own checkpoints).
    pub fn from_map(tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>, source: &str) -> Weights {
        Weights {
            tensors,
            source: source.to_string(),
        }
    }

    /// Whether `name` is there and not yet read.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Names not yet read.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Take the raw array of `name` with its shape (each tensor is read once).
    pub fn raw(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f32>), ModelError> {
        self.tensors
            .remove(name)
            .ok_or_else(|| ModelError::Missing(self.source.clone(), name.to_string()))
    }

    /// `name` as a tensor of rank `D`, reshaped to `shape` (same element count).
    pub fn tensor<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>, ModelError> {
        let (have, values) = self.raw(name)?;
        if have.iter().product::<usize>() != shape.iter().product::<usize>() {
            return Err(ModelError::Shape(format!(
                "{}: tensor {name} has shape {have:?}, expected {shape:?}",
                self.source
            )));
        }
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// Names never read: for a strict load, these are an error.
    pub fn unused(&self, ignore: impl Fn(&str) -> bool) -> Vec<String> {
        self.tensors
            .keys()
            .filter(|k| !ignore(k))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

    #[test]
    fn half_precision() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
