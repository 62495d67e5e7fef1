//! `radfm zeroshot`: classification from text prompts with a CLIP model.
//!
//! Per observation, each side's class embedding is the normalised mean of
//! the normalised text embeddings of every (template, phrase) prompt; an
//! image's probability is the paired softmax of its cosines with the two
//! sides at temperature 1 (CheXzero) or the model's own
//! (`radfm_model::zeroshot`). `--ensemble` averages the probabilities of
//! several checkpoints. PRED.jsonl lines are `radfm evaluate`'s format, each
//! naming the prompt set; PRED.meta.json records the models, their checksums,
//! the prompt set and the rule.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::tensor::{Tensor, TensorData};
use radfm_core::npy::Npy;
use radfm_data::preprocess::Preprocess;
use radfm_data::reader::Reader;
use radfm_model::dual::DualEncoder;
use radfm_model::zeroshot::{Classes, PromptSet};
use serde_json::json;
use sha2::Digest;

use crate::cli::{Device, TemperatureArg, ZeroshotArgs};
use crate::commands::embed::{self, Embedded, Streaming};

/// A CLIP model opened from a run directory or a model directory.
pub struct Opened {
    pub dir: PathBuf,
    pub model: DualEncoder,
    /// sha256 over the model's weight files
    pub sha256: String,
}

pub fn open_model(path: &Path, dev: &burn::tensor::Device) -> anyhow::Result<Opened> {
    let dir = embed::model_dir(path);
    // the checksum is read beside the loading
    let (model, sums) = std::thread::scope(|s| {
        let hashing = s.spawn(|| -> anyhow::Result<Vec<(PathBuf, String)>> {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            if let Some(t) = radfm_model::dual::run_text_dir(&dir, &serde_json::Value::Null) {
                files.extend(
                    std::fs::read_dir(t)
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e.ok().map(|e| e.path())),
                );
            }
            files
                .into_iter()
                .filter(|p| {
                    p.extension()
                        .is_some_and(|x| x == "safetensors" || x == "bin" || x == "pt")
                })
                .map(|p| Ok((p.clone(), embed::sha256_file(&p)?)))
                .collect()
        });
        let model = DualEncoder::open(&dir, dev);
        (model, hashing.join().expect("hashing thread"))
    });
    let model = model.with_context(|| format!("loading {}", path.display()))?;
    let sums = sums?;
    let mut h = sha2::Sha256::new();
    for f in &model.files {
        let sum = match sums.iter().find(|(p, _)| p == f) {
            Some((_, s)) => s.clone(),
            None => embed::sha256_file(f)?,
        };
        h.update(sum.as_bytes());
    }
    let sha256 = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Opened { dir, model, sha256 })
}

impl Opened {
    /// The model's image preprocessing.
    pub fn preprocessing(&self) -> anyhow::Result<Preprocess> {
        let v = &self.model.vision.config;
        match &self.model.processor {
            Some(p) => Preprocess::from_hf(p, "open_clip_config.json's preprocess_cfg")
                .map_err(|e| anyhow::anyhow!("{}: {e}", self.dir.display())),
            None => {
                let cfg = radfm_model::hf::read_config(&self.dir)?;
                embed::preprocessing(&self.dir, &cfg, v.num_channels, v.image_size)
            }
        }
    }

    /// Normalised embeddings of preprocessed images.
    pub fn embed(&self, x: Tensor<4>, device: Device) -> anyhow::Result<Tensor<2>> {
        let n = x.dims()[0];
        let parts = if device == Device::Cpu {
            radfm_model::train::default_parts(n)
        } else {
            1
        };
        Ok(self.model.embed_images(x, parts)?)
    }

    /// Normalised embeddings of a dataset's images, each preprocessed as the model expects.
    pub fn embed_dataset(
        &self,
        reader: &Reader,
        s: &Streaming,
        device: Device,
    ) -> anyhow::Result<Embedded> {
        let prep = self.preprocessing()?;
        embed::embed_images(
            reader,
            &prep,
            self.model.vision.config.image_size,
            s,
            &mut |x| self.embed(x, device),
        )
    }

    /// The model in words, for outputs.
    pub fn describe(&self) -> serde_json::Value {
        json!({
            "path": self.dir.display().to_string(),
            "kind": self.model.kind,
            "sha256": self.sha256,
            "context_length": self.model.context_length,
            "logit_scale": self.model.logit_scale,
            "embedding_dim": self.model.dim(),
        })
    }

    /// Text embeddings, saying once when texts were cut at the context length.
    pub fn embed_texts(&self, texts: &[&str], what: &str) -> anyhow::Result<Vec<Vec<f32>>> {
        let (emb, truncated) = self.model.embed_texts(texts, 64)?;
        if truncated > 0 {
            eprintln!(
                "warning: {truncated} of {} {what} are longer than the model's context of {} tokens \
                 ({}); they were truncated",
                texts.len(),
                self.model.context_length,
                self.dir.display()
            );
        }
        Ok(emb)
    }
}

/// `--prompts`: a file, a shipped set's name, or the default set.
pub fn prompt_set(arg: Option<&str>) -> anyhow::Result<PromptSet> {
    match arg {
        None => Ok(PromptSet::shipped(radfm_model::zeroshot::DEFAULT).expect("shipped")),
        Some(path) => {
            // a shipped set's name, unless a file of that name is there
            if !Path::new(path).exists() {
                if let Some(set) = PromptSet::shipped(path) {
                    return Ok(set);
                }
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--prompts {path}: cannot read it"))?;
            Ok(PromptSet::parse(&text, path)?)
        }
    }
}

/// Preprocessed images from `--input` (float32 N x C x H x W) and their ids.
fn input_images(x: &Path, ids: Option<&Path>) -> anyhow::Result<(Npy, Vec<String>)> {
    let n = Npy::read(
        std::fs::File::open(x).with_context(|| format!("--input {}: cannot open", x.display()))?,
    )
    .with_context(|| format!("--input {}", x.display()))?;
    if !n.is_float() {
        bail!(
            "--input {}: dtype {}, expected float32 preprocessed images",
            x.display(),
            n.descr
        );
    }
    if n.shape.len() != 4 {
        bail!(
            "--input {}: shape {:?}, expected (N, C, H, W) preprocessed images",
            x.display(),
            n.shape
        );
    }
    let rows = n.shape[0];
    let ids = match ids {
        None => (0..rows).map(|i| i.to_string()).collect(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("--ids {}: cannot read", p.display()))?;
            let ids: Vec<String> = text.lines().map(str::to_string).collect();
            if ids.len() != rows {
                bail!(
                    "--ids {}: {} lines for {rows} images in --input",
                    p.display(),
                    ids.len()
                );
            }
            ids
        }
    };
    Ok((n, ids))
}

pub fn run(a: ZeroshotArgs) -> anyhow::Result<()> {
    let set = prompt_set(a.prompts.as_deref())?;
    let dev = radfm_model::device(a.device.as_str())?;
    let mut models = vec![open_model(&a.model, &dev)?];
    for d in &a.ensemble {
        models.push(open_model(d, &dev).with_context(|| "--ensemble")?);
    }
    // every model's class embeddings and temperature
    let texts = Classes::texts(&set);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut classes = Vec::new();
    for m in &models {
        let emb = m.embed_texts(&refs, &format!("prompt set {}'s prompts", set.name))?;
        let tau = match a.temperature {
            TemperatureArg::One => 1.0,
            TemperatureArg::Model => 1.0 / m.model.logit_scale.exp(),
        };
        classes.push((Classes::from_embeddings(&set, &emb), tau));
    }
    // every model's image embeddings, by image id
    let (ids, per_model, dataset) = match (&a.input, &a.data) {
        (Some(x), _) => {
            let (n, ids) = input_images(x, a.ids.as_deref())?;
            let s = n.shape.clone();
            let v: Vec<f32> = n.to_f32();
            let per_image = s[1] * s[2] * s[3];
            let mut per_model = Vec::new();
            for m in &models {
                let c = m.model.vision.config.num_channels;
                if s[1] != c {
                    bail!(
                        "--input {}: {} channels, but {} takes {c}",
                        x.display(),
                        s[1],
                        m.dir.display()
                    );
                }
                let mut rows = Vec::with_capacity(s[0]);
                for chunk in v.chunks(per_image * a.batch) {
                    let b = chunk.len() / per_image;
                    let t = Tensor::<4>::from_data(
                        TensorData::new(chunk.to_vec(), [b, s[1], s[2], s[3]]),
                        &dev,
                    );
                    let e: Vec<f32> = m
                        .embed(t, a.device)
                        .with_context(|| format!("--input {}", x.display()))?
                        .into_data()
                        .try_to_vec()
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                    rows.extend(e.chunks_exact(m.model.dim()).map(<[f32]>::to_vec));
                }
                per_model.push((0..s[0]).zip(rows).collect::<HashMap<usize, Vec<f32>>>());
            }
            let order: Vec<usize> = (0..s[0]).collect();
            (
                order
                    .into_iter()
                    .map(|i| (i, ids[i].clone()))
                    .collect::<Vec<_>>(),
                per_model,
                json!({"input": x.display().to_string(), "images": s[0]}),
            )
        }
        (None, Some(data)) => {
            let mut reader = Reader::open(data)?;
            embed::select_split(&mut reader, data, a.split)?;
            let mut per_model = Vec::new();
            let mut failed = 0;
            for m in &models {
                let Embedded {
                    rows,
                    dim,
                    kept,
                    failed: f,
                } = m.embed_dataset(
                    &reader,
                    &Streaming {
                        batch: a.batch,
                        jobs: a.jobs,
                        quiet: a.quiet,
                        device: &dev,
                    },
                    a.device,
                )?;
                failed = failed.max(f);
                per_model.push(
                    kept.into_iter()
                        .zip(rows.chunks_exact(dim).map(<[f32]>::to_vec))
                        .collect::<HashMap<usize, Vec<f32>>>(),
                );
            }
            let records = reader.records();
            // an image every model embedded
            let ids: Vec<(usize, String)> = (0..records.len())
                .filter(|i| per_model.iter().all(|m| m.contains_key(i)))
                .map(|i| (i, records[i].sop_uid.clone()))
                .collect();
            let meta = json!({
                "split": a.split.as_str(),
                "images": ids.len(),
                "left_out": failed,
                "fingerprint": radfm_data::reader::fingerprint(ids.iter().map(|(i, _)| &records[*i])),
            });
            (ids, per_model, meta)
        }
        (None, None) => bail!("give --data DATASET or --input X.npy"),
    };
    let prompts = json!({"name": set.name, "version": set.version});
    let mut out = String::new();
    for (i, id) in &ids {
        let mut mean = vec![0f64; set.observations.len()];
        for ((c, tau), emb) in classes.iter().zip(&per_model) {
            for (m, p) in mean.iter_mut().zip(c.score(&emb[i], *tau)) {
                *m += p / models.len() as f64;
            }
        }
        let scores: serde_json::Map<String, serde_json::Value> = set
            .observations
            .keys()
            .zip(mean)
            .map(|(o, p)| (o.clone(), json!(p)))
            .collect();
        out.push_str(&json!({"id": id, "scores": scores, "prompts": prompts}).to_string());
        out.push('\n');
    }
    if let Some(dir) = a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    radfm_core::atomic::write_atomic(&a.out, out.as_bytes())
        .with_context(|| format!("writing {}", a.out.display()))?;
    let meta = json!({
        "models": models.iter().zip(&classes).map(|(m, (_, tau))| {
            let mut d = m.describe();
            d["temperature"] = json!(tau);
            d
        }).collect::<Vec<_>>(),
        "prompts": set,
        "rule": "per observation and side, the L2-normalised mean of the L2-normalised text \
                 embeddings of every template filled with every phrase; p = exp(s_pos/t) / \
                 (exp(s_pos/t) + exp(s_neg/t)) with s the cosines of the normalised image \
                 embedding; an ensemble averages p over its models",
        "temperature": a.temperature.as_str(),
        "data": dataset,
        "radfm_version": env!("CARGO_PKG_VERSION"),
    });
    let meta_path = a.out.with_extension("meta.json");
    radfm_core::atomic::write_atomic(&meta_path, serde_json::to_string_pretty(&meta)?.as_bytes())
        .with_context(|| format!("writing {}", meta_path.display()))?;
    eprintln!(
        "{} images scored on {} observations with prompt set {} v{} ({} model{}) -> {}",
        ids.len(),
        set.observations.len(),
        set.name,
        set.version,
        models.len(),
        if models.len() == 1 { "" } else { "s" },
        a.out.display()
    );
    Ok(())
}
