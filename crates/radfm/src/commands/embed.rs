//! `radfm embed`: a frozen image encoder over a dataset.
//!
//! The dataset streams through `radfm_data::reader` (batches, every frame);
//! each frame is preprocessed the way the checkpoint expects
//! (`radfm_data::preprocess`: the HF processor's steps, or the run's), encoded,
//! pooled; a multi-frame image's embedding is the mean of its frames'. Items
//! that cannot be read are logged by key and left out; the rest go on.
//!
//! EMB/ gets `embeddings.npy` (float32, N x D), `index.jsonl` (row i
//! describes row i) and `embed.json` (model, checksum, preprocessing,
//! pooling, dataset fingerprint), each written atomically; `embed.json` last.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::tensor::{Tensor, TensorData};
use radfm_data::preprocess::{Frames, Preprocess};
use radfm_data::reader::{Reader, Record};
use rayon::prelude::*;
use serde_json::json;
use sha2::Digest;

use crate::cli::{Device, EmbedArgs, PoolingArg, SplitArg};

/// A run directory holds its encoder in `model/`; any other directory is the model itself.
pub fn model_dir(dir: &Path) -> PathBuf {
    let inner = dir.join("model");
    if !dir.join("model.safetensors").is_file() && inner.join("config.json").is_file() {
        inner
    } else {
        dir.to_path_buf()
    }
}

/// The preprocessing of the checkpoint in `dir`, checked against the encoder's channels.
pub fn preprocessing(
    dir: &Path,
    config: &serde_json::Value,
    channels: usize,
    image_size: usize,
) -> anyhow::Result<Preprocess> {
    // a radfm encoder trains on pretrain's steps, unless it was fine-tuned from a
    // Hugging Face checkpoint, whose processor config it then keeps beside it
    let p =
        if config["model_type"] == "radfm_vit" && !dir.join("preprocessor_config.json").is_file() {
            Preprocess::radfm(
                image_size,
                "radfm run config (pretrain's resize and (x - 0.5) / 0.25)",
            )
        } else {
            let path = dir.join("preprocessor_config.json");
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                "{}: the model's preprocessing cannot be determined: no preprocessor_config.json \
                 (a Hugging Face image model ships one; copy it from the model's repository)",
                dir.display()
            )
            })?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", path.display()))?;
            Preprocess::from_hf(&v, "preprocessor_config.json").map_err(|e| {
                anyhow::anyhow!(
                    "{}: the model's preprocessing cannot be determined: {e}",
                    path.display()
                )
            })?
        };
    if p.channels != channels {
        bail!(
            "{}: the preprocessing gives {} channels but the encoder takes {channels}",
            dir.display(),
            p.channels
        );
    }
    Ok(p)
}

pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One index line.
pub fn index_line(r: &Record) -> serde_json::Value {
    let labels: serde_json::Map<String, serde_json::Value> = r
        .labels
        .iter()
        .flatten()
        .map(|(o, v)| (o.as_str().to_string(), json!(v)))
        .collect();
    json!({
        "id": r.sop_uid,
        "patient_id": r.patient_key,
        "study_instance_uid": r.study_uid,
        "split": r.split,
        "labels": labels,
        "labeled": r.labels.is_some(),
        "sex": r.sex,
        "age": r.age_years,
        "site": r.site,
        "view": r.view,
    })
}

/// How a dataset streams through an encoder.
pub struct Streaming<'a> {
    /// images per forward pass
    pub batch: usize,
    /// decoding and preprocessing threads (None: all cores)
    pub jobs: Option<usize>,
    pub quiet: bool,
    pub device: &'a burn::tensor::Device,
}

/// The embeddings of a dataset's images: `rows` is `kept.len() x dim`, row j
/// belonging to record `kept[j]`.
pub struct Embedded {
    pub rows: Vec<f32>,
    pub dim: usize,
    pub kept: Vec<usize>,
    pub failed: usize,
}

/// Every record of `reader` decoded, preprocessed by `prep` (every frame, in
/// parallel) and encoded by `encode` (`[frames, C, H, W]` to `[frames, D]`); a
/// multi-frame image's embedding is the mean of its frames'. An image that
/// cannot be read, or whose embedding is not finite, is logged by its key and
/// left out; the rest go on.
pub fn embed_images(
    reader: &Reader,
    prep: &Preprocess,
    image_size: usize,
    s: &Streaming,
    encode: &mut dyn FnMut(Tensor<4>) -> anyhow::Result<Tensor<2>>,
) -> anyhow::Result<Embedded> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(s.jobs.unwrap_or(0))
        .build()?;
    let (c, (h, w)) = (prep.channels, prep.output_size(image_size, image_size));
    let pb = if s.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        crate::progress::bar(reader.records().len() as u64, "images")
    };
    let mut rows: Vec<f32> = Vec::new();
    let mut kept: Vec<usize> = Vec::new();
    let mut dim = 0;
    let mut failed = 0usize;
    let records = reader.records();
    reader.stream::<anyhow::Error>(s.batch, &mut |items| {
        let count = items.len() as u64;
        // preprocess every frame of every image, in parallel
        let prepared: Vec<(usize, Frames)> = pool.install(|| {
            items
                .into_par_iter()
                .map(|(i, px)| {
                    let frames = px.and_then(|p| prep.frames(&p));
                    (i, frames)
                })
                .collect()
        });
        let mut batch: Vec<f32> = Vec::new();
        let mut owners: Vec<(usize, usize)> = Vec::new(); // (record, frames)
        for (i, frames) in prepared {
            match frames {
                Ok(frames) if frames.iter().all(|f| f.len() == c * h * w) => {
                    owners.push((i, frames.len()));
                    batch.extend(frames.into_iter().flatten());
                }
                Ok(_) => {
                    failed += 1;
                    tracing::warn!(
                        "image {}: preprocessed to the wrong size for the encoder; left out",
                        records[i].key
                    );
                }
                Err(why) => {
                    failed += 1;
                    tracing::warn!("image {}: {why}; left out", records[i].key);
                }
            }
        }
        let n_frames: usize = owners.iter().map(|o| o.1).sum();
        if n_frames > 0 {
            let x = Tensor::<4>::from_data(TensorData::new(batch, [n_frames, c, h, w]), s.device);
            let pooled = encode(x)?;
            let d = pooled.dims()[1];
            dim = d;
            let values: Vec<f32> = pooled
                .into_data()
                .try_to_vec()
                .map_err(|e| anyhow::anyhow!("reading the embeddings: {e:?}"))?;
            let mut at = 0;
            for (i, frames) in owners {
                // a multi-frame image: the mean of its frames' embeddings
                let mut mean = vec![0f32; d];
                for f in 0..frames {
                    for (m, v) in mean.iter_mut().zip(&values[(at + f) * d..(at + f + 1) * d]) {
                        *m += v / frames as f32;
                    }
                }
                at += frames;
                if let Some(k) = mean.iter().position(|v| !v.is_finite()) {
                    failed += 1;
                    tracing::warn!(
                        "image {}: embedding value {k} is not finite; left out",
                        records[i].key
                    );
                    continue;
                }
                rows.extend(mean);
                kept.push(i);
            }
        }
        pb.inc(count);
        Ok(())
    })?;
    pb.finish_and_clear();
    if kept.is_empty() {
        bail!("no image could be embedded ({failed} failed; see the warnings)");
    }
    Ok(Embedded {
        rows,
        dim,
        kept,
        failed,
    })
}

/// Keep the images of `split` (all for `SplitArg::All`), or say why none are left.
pub fn select_split(reader: &mut Reader, data: &Path, split: SplitArg) -> anyhow::Result<()> {
    let total = reader.records().len();
    let want = match split {
        SplitArg::All => None,
        s => Some(s.as_str()),
    };
    reader.retain(|r| r.kind == "image" && want.is_none_or(|w| r.split.as_deref() == Some(w)));
    if reader.records().is_empty() {
        bail!(
            "{}: no images to embed ({} in the catalog{})",
            data.display(),
            total,
            match want {
                Some(s) => format!(", none in split '{s}'; run `radfm split` first?"),
                None => String::new(),
            }
        );
    }
    Ok(())
}

pub fn run(a: EmbedArgs) -> anyhow::Result<()> {
    let dir = model_dir(&a.model);
    let config = radfm_model::hf::read_config(&dir)
        .with_context(|| format!("reading the model in {}", a.model.display()))?;
    let vit_config = radfm_model::hf::image_encoder_config(&dir)
        .with_context(|| format!("{}: not an image encoder radfm can load", dir.display()))?;
    let prep = preprocessing(
        &dir,
        &config,
        vit_config.num_channels,
        vit_config.image_size,
    )?;
    let dev = radfm_model::device(a.device.as_str())?;
    let vit = radfm_model::hf::load_image_encoder(&dir, &dev)
        .with_context(|| format!("loading {}", dir.display()))?;
    let mut reader = Reader::open(&a.data)?;
    select_split(&mut reader, &a.data, a.split)?;
    let skip = 1 + vit_config.num_register_tokens;
    let parts_for = |n: usize| {
        if a.device == Device::Cpu {
            radfm_model::train::default_parts(n)
        } else {
            1
        }
    };
    let Embedded {
        rows,
        dim,
        kept,
        failed,
    } = embed_images(
        &reader,
        &prep,
        vit_config.image_size,
        &Streaming {
            batch: a.batch,
            jobs: a.jobs,
            quiet: a.quiet,
            device: &dev,
        },
        &mut |x| {
            let n = x.dims()[0];
            let out = vit.forward_parts(x, parts_for(n))?;
            Ok(match a.pooling {
                PoolingArg::Pooled => out.pooled,
                PoolingArg::Cls => {
                    let [b, _, d] = out.last_hidden_state.dims();
                    out.last_hidden_state
                        .slice([0..b, 0..1, 0..d])
                        .reshape([b, d])
                }
                PoolingArg::Mean => {
                    let [b, t, d] = out.last_hidden_state.dims();
                    out.last_hidden_state
                        .slice([0..b, skip..t, 0..d])
                        .mean_dim(1)
                        .reshape([b, d])
                }
            })
        },
    )?;
    let records = reader.records();
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let n = kept.len();
    radfm_core::atomic::write_atomic(
        &a.out.join("embeddings.npy"),
        &radfm_core::npy::f32_bytes(&[n, dim], &rows),
    )
    .with_context(|| format!("writing {}", a.out.join("embeddings.npy").display()))?;
    let mut index = String::new();
    let used: Vec<&Record> = kept.iter().map(|&i| &records[i]).collect();
    for r in &used {
        index.push_str(&index_line(r).to_string());
        index.push('\n');
    }
    radfm_core::atomic::write_atomic(&a.out.join("index.jsonl"), index.as_bytes())
        .with_context(|| format!("writing {}", a.out.join("index.jsonl").display()))?;
    let weights = dir.join("model.safetensors");
    let meta = json!({
        "model": {
            "path": dir.display().to_string(),
            "kind": if config["model_type"] == "radfm_vit" { "radfm run" } else { "hugging face" },
            "config": vit_config,
            "sha256": if weights.is_file() { json!(sha256_file(&weights)?) } else { json!(null) },
        },
        "preprocessing": prep.describe(),
        "pooling": a.pooling.as_str(),
        "frames": "a multi-frame image's embedding is the mean of its frames' embeddings",
        "dataset": {
            "images": n,
            "left_out": failed,
            "split": a.split.as_str(),
            "fingerprint": radfm_data::reader::fingerprint(used.iter().copied()),
            "labeler": radfm_data::catalog::Catalog::open(&a.data)?.meta("labeler")?,
        },
        "embeddings": {"rows": n, "dim": dim, "dtype": "float32"},
        "radfm_version": env!("CARGO_PKG_VERSION"),
    });
    radfm_core::atomic::write_atomic(
        &a.out.join("embed.json"),
        serde_json::to_string_pretty(&meta)?.as_bytes(),
    )
    .with_context(|| format!("writing {}", a.out.join("embed.json").display()))?;
    eprintln!(
        "{n} images -> {} [{n}, {dim}]{}",
        a.out.display(),
        if failed > 0 {
            format!("; {failed} left out (see the warnings)")
        } else {
            String::new()
        }
    );
    Ok(())
}
