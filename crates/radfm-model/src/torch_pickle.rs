//! A reader for PyTorch checkpoints (`torch.save`'s zip format: `.bin`,
//! `.pt`, `.pth`) that never executes pickled code.
//!
//! A checkpoint is a zip archive holding `*/data.pkl`, a pickle of the state
//! dict, and `*/data/<key>`, the raw bytes of each storage. Python's unpickler
//! runs whatever callables the pickle names; this one interprets the opcodes
//! itself and recognises only the names a state dict needs:
//! `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
//! `torch._utils._rebuild_parameter` and the storage types. A pickle that
//! names anything else needs code execution to load, and is refused with
//! the name it asked for. Legacy (pre-1.6, non-zip) and TorchScript files
//! are refused too.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::train::Arrays;
use crate::ModelError;

#[derive(Debug, Clone)]
enum V {
    None,
    /// a bool, float or bytes value: never part of a tensor's description
    Scalar,
    Int(i64),
    Str(String),
    Tuple(Vec<V>),
    List(Vec<V>),
    Dict(Vec<(V, V)>),
    Global(String),
    /// a storage: element type and the archive key of its bytes
    Storage(Dtype, String),
    Tensor {
        dtype: Dtype,
        key: String,
        offset: usize,
        size: Vec<usize>,
        stride: Vec<usize>,
    },
    Mark,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dtype {
    F32,
    F16,
    Bf16,
    F64,
    I64,
    I32,
    U8,
    Bool,
}

impl Dtype {
    fn of_storage(name: &str) -> Option<Dtype> {
        Some(match name {
            "FloatStorage" => Dtype::F32,
            "HalfStorage" => Dtype::F16,
            "BFloat16Storage" => Dtype::Bf16,
            "DoubleStorage" => Dtype::F64,
            "LongStorage" => Dtype::I64,
            "IntStorage" => Dtype::I32,
            "ByteStorage" => Dtype::U8,
            "BoolStorage" => Dtype::Bool,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::U8 | Dtype::Bool => 1,
        }
    }

    fn read(self, b: &[u8]) -> f32 {
        match self {
            Dtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Dtype::F16 => crate::weights::f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
            Dtype::Bf16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16),
            Dtype::F64 => f64::from_le_bytes(b[..8].try_into().unwrap()) as f32,
            Dtype::I64 => i64::from_le_bytes(b[..8].try_into().unwrap()) as f32,
            Dtype::I32 => i32::from_le_bytes(b[..4].try_into().unwrap()) as f32,
            Dtype::U8 | Dtype::Bool => b[0] as f32,
        }
    }
}

/// The globals a state dict may name; anything else is code.
fn allowed(name: &str) -> bool {
    matches!(
        name,
        "collections.OrderedDict"
            | "torch._utils._rebuild_tensor_v2"
            | "torch._utils._rebuild_parameter"
            | "torch._utils._rebuild_parameter_with_state"
    ) || name
        .strip_prefix("torch.")
        .is_some_and(|s| Dtype::of_storage(s).is_some())
}

fn refuse(path: &Path, why: impl std::fmt::Display) -> ModelError {
    ModelError::Format(format!("{}: {why}", path.display()))
}

struct Machine<'a> {
    data: &'a [u8],
    at: usize,
    stack: Vec<V>,
    memo: BTreeMap<u32, V>,
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.at + n > self.data.len() {
            return Err("the pickle ends early".into());
        }
        let s = &self.data[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn line(&mut self) -> Result<String, String> {
        let rest = &self.data[self.at..];
        let end = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or("an unterminated line in the pickle")?;
        self.at += end + 1;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }
    fn pop(&mut self) -> Result<V, String> {
        self.stack
            .pop()
            .ok_or_else(|| "the pickle's stack is empty".into())
    }
    /// Everything above the topmost mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<V>, String> {
        let m = self
            .stack
            .iter()
            .rposition(|v| matches!(v, V::Mark))
            .ok_or("no mark on the pickle's stack")?;
        let items = self.stack.split_off(m + 1);
        self.stack.pop();
        Ok(items)
    }
    fn global(&mut self, name: String) -> Result<V, String> {
        if allowed(&name) {
            Ok(V::Global(name))
        } else {
            Err(format!(
                "loading it needs code execution: the pickle calls {name}, which radfm does not \
                 run (only plain state dicts of tensors are read; re-save the weights with \
                 safetensors)"
            ))
        }
    }

    fn run(&mut self) -> Result<V, String> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.take(8)?; // FRAME
                }
                b'.' => return self.pop(),
                b'}' => self.stack.push(V::Dict(Vec::new())),
                b']' => self.stack.push(V::List(Vec::new())),
                b')' => self.stack.push(V::Tuple(Vec::new())),
                b'(' => self.stack.push(V::Mark),
                b'N' => self.stack.push(V::None),
                0x88 | 0x89 => self.stack.push(V::Scalar),
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.stack.push(V::Int(v));
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.stack.push(V::Int(v));
                }
                b'M' => {
                    let b = self.take(2)?;
                    self.stack
                        .push(V::Int(u16::from_le_bytes([b[0], b[1]]) as i64));
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    if n > 8 {
                        return Err("an integer wider than 64 bits".into());
                    }
                    let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        [0xffu8; 8]
                    } else {
                        [0u8; 8]
                    };
                    buf[..n].copy_from_slice(b);
                    self.stack.push(V::Int(i64::from_le_bytes(buf)));
                }
                b'G' => {
                    self.take(8)?;
                    self.stack.push(V::Scalar);
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32()? as usize,
                        0x8c => self.u8()? as usize,
                        _ => {
                            let b = self.take(8)?;
                            u64::from_le_bytes(b.try_into().unwrap()) as usize
                        }
                    };
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.stack.push(V::Str(s));
                }
                b'C' | b'B' => {
                    let n = if op == b'C' {
                        self.u8()? as usize
                    } else {
                        self.u32()? as usize
                    };
                    self.take(n)?;
                    self.stack.push(V::Scalar);
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(V::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("the pickle's stack is too short for a tuple".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(V::Tuple(items));
                }
                b'q' | b'r' => {
                    let k = if op == b'q' {
                        self.u8()? as u32
                    } else {
                        self.u32()?
                    };
                    let top = self.stack.last().ok_or("nothing to memoise")?.clone();
                    self.memo.insert(k, top);
                }
                0x94 => {
                    let k = self.memo.len() as u32;
                    let top = self.stack.last().ok_or("nothing to memoise")?.clone();
                    self.memo.insert(k, top);
                }
                b'h' | b'j' => {
                    let k = if op == b'h' {
                        self.u8()? as u32
                    } else {
                        self.u32()?
                    };
                    let v = self.memo.get(&k).ok_or("an unknown memo key")?.clone();
                    self.stack.push(v);
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.stack.last_mut() {
                        Some(V::Dict(d)) => d.push((k, v)),
                        _ => return Err("SETITEM on something that is not a dict".into()),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let Some(V::Dict(d)) = self.stack.last_mut() else {
                        return Err("SETITEMS on something that is not a dict".into());
                    };
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        d.push((k, v));
                    }
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.stack.last_mut() {
                        Some(V::List(l)) => l.push(v),
                        _ => return Err("APPEND on something that is not a list".into()),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.stack.last_mut() {
                        Some(V::List(l)) => l.extend(items),
                        _ => return Err("APPENDS on something that is not a list".into()),
                    }
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.global(format!("{module}.{name}"))?;
                    self.stack.push(g);
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (V::Str(m), V::Str(n)) => {
                            let g = self.global(format!("{m}.{n}"))?;
                            self.stack.push(g);
                        }
                        _ => return Err("STACK_GLOBAL without two strings".into()),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(persistent(pid)?);
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    self.stack.push(reduce(f, args)?);
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    self.stack.push(reduce(cls, args)?);
                }
                b'b' => {
                    // BUILD: an OrderedDict's or a parameter's state, not needed
                    self.pop()?;
                }
                other => {
                    return Err(format!(
                        "pickle opcode 0x{other:02x} is not part of a plain state dict"
                    ))
                }
            }
        }
    }
}

/// `('storage', <storage type>, key, location, numel)`.
fn persistent(pid: V) -> Result<V, String> {
    let V::Tuple(t) = pid else {
        return Err("a persistent id that is not a tuple".into());
    };
    match t.as_slice() {
        [V::Str(kind), V::Global(ty), V::Str(key), ..] if kind == "storage" => {
            let dtype = ty
                .strip_prefix("torch.")
                .and_then(Dtype::of_storage)
                .ok_or_else(|| format!("storage type {ty} is not read"))?;
            Ok(V::Storage(dtype, key.clone()))
        }
        _ => Err("a persistent id that is not a storage".into()),
    }
}

fn ints(v: &V) -> Result<Vec<usize>, String> {
    match v {
        V::Tuple(t) | V::List(t) => t
            .iter()
            .map(|x| match x {
                V::Int(i) if *i >= 0 => Ok(*i as usize),
                _ => Err("a tensor size that is not a non-negative integer".to_string()),
            })
            .collect(),
        _ => Err("a tensor size that is not a tuple".into()),
    }
}

fn reduce(f: V, args: V) -> Result<V, String> {
    let V::Global(name) = f else {
        return Err("a call of something that is not a known function".into());
    };
    let V::Tuple(a) = args else {
        return Err(format!("{name} called without a tuple of arguments"));
    };
    match name.as_str() {
        "collections.OrderedDict" => Ok(V::Dict(Vec::new())),
        "torch._utils._rebuild_tensor_v2" => match a.as_slice() {
            [V::Storage(dtype, key), V::Int(offset), size, stride, ..] => Ok(V::Tensor {
                dtype: *dtype,
                key: key.clone(),
                offset: *offset as usize,
                size: ints(size)?,
                stride: ints(stride)?,
            }),
            _ => Err("_rebuild_tensor_v2 with unexpected arguments".into()),
        },
        "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => a
            .into_iter()
            .next()
            .ok_or_else(|| "_rebuild_parameter without a tensor".into()),
        other => Err(format!("{other} cannot be called")),
    }
}

/// Flatten nested dicts of tensors into `prefix.key` names.
fn collect(v: V, prefix: &str, out: &mut Vec<(String, V)>) {
    match v {
        V::Dict(items) => {
            for (k, v) in items {
                let k = match k {
                    V::Str(s) => s,
                    V::Int(i) => i.to_string(),
                    _ => continue,
                };
                let name = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}.{k}")
                };
                collect(v, &name, out);
            }
        }
        t @ V::Tensor { .. } => out.push((prefix.to_string(), t)),
        // numbers, strings and the like (epochs, hyperparameters): not weights
        V::None
        | V::Scalar
        | V::Int(_)
        | V::Str(_)
        | V::Tuple(_)
        | V::List(_)
        | V::Global(_)
        | V::Storage(..)
        | V::Mark => {}
    }
}

/// Every tensor of a `torch.save` zip file, as f32 arrays by name. A state
/// dict saved under a key (`{"state_dict": ..}`, `{"model": ..}`) or with
/// DataParallel's `module.` prefix is unwrapped.
pub fn read(path: &Path) -> Result<Arrays, ModelError> {
    let file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|_| {
        refuse(
            path,
            "not a zip-format PyTorch checkpoint (files from PyTorch before 1.6 and other \
             pickles are not read; re-save the weights with safetensors)",
        )
    })?;
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    if names.iter().any(|n| n.ends_with("constants.pkl")) {
        return Err(refuse(
            path,
            "a TorchScript archive: loading it runs its code, which radfm does not do; save \
             model.state_dict() with safetensors instead",
        ));
    }
    let pkl = names
        .iter()
        .find(|n| n.ends_with("data.pkl"))
        .ok_or_else(|| refuse(path, "no data.pkl in the archive"))?
        .clone();
    let root = pkl.trim_end_matches("data.pkl").to_string();
    let mut bytes = Vec::new();
    zip.by_name(&pkl)
        .and_then(|mut f| f.read_to_end(&mut bytes).map_err(Into::into))
        .map_err(|e| refuse(path, e))?;
    let mut m = Machine {
        data: &bytes,
        at: 0,
        stack: Vec::new(),
        memo: BTreeMap::new(),
    };
    let top = m.run().map_err(|e| refuse(path, e))?;
    let mut found = Vec::new();
    collect(top, "", &mut found);
    if found.is_empty() {
        return Err(refuse(path, "no tensors in the checkpoint"));
    }
    // unwrap a state dict saved under one key, or with `module.`
    for wrap in ["state_dict.", "model.", "module."] {
        if found.iter().all(|(k, _)| k.starts_with(wrap)) {
            for (k, _) in found.iter_mut() {
                *k = k[wrap.len()..].to_string();
            }
        }
    }
    let mut storages: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut out = Arrays::new();
    for (name, t) in found {
        let V::Tensor {
            dtype,
            key,
            offset,
            size,
            stride,
        } = t
        else {
            unreachable!("only tensors are collected")
        };
        if !storages.contains_key(&key) {
            let entry = format!("{root}data/{key}");
            let mut b = Vec::new();
            zip.by_name(&entry)
                .and_then(|mut f| f.read_to_end(&mut b).map_err(Into::into))
                .map_err(|e| refuse(path, format!("storage {entry}: {e}")))?;
            storages.insert(key.clone(), b);
        }
        let raw = &storages[&key];
        let n: usize = size.iter().product();
        let es = dtype.size();
        // row-major strides: one slice of the storage
        let mut contiguous = true;
        let mut expect = 1;
        for (d, st) in size.iter().zip(&stride).rev() {
            if *d != 1 && *st != expect {
                contiguous = false;
            }
            expect *= d;
        }
        if contiguous {
            let b = raw
                .get(offset * es..(offset + n) * es)
                .ok_or_else(|| refuse(path, format!("tensor {name} reaches past its storage")))?;
            out.insert(
                name,
                (size, b.chunks_exact(es).map(|c| dtype.read(c)).collect()),
            );
            continue;
        }
        let mut values = Vec::with_capacity(n);
        let mut idx = vec![0usize; size.len()];
        for _ in 0..n {
            let at = offset + idx.iter().zip(&stride).map(|(i, s)| i * s).sum::<usize>();
            let b = raw
                .get(at * es..(at + 1) * es)
                .ok_or_else(|| refuse(path, format!("tensor {name} reaches past its storage")))?;
            values.push(dtype.read(b));
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                if idx[d] < size[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        out.insert(name, (size, values));
    }
    Ok(out)
}
