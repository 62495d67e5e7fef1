//! A classifier directory: an image encoder and one logistic head per
//! observation, as `radfm probe --export` and `radfm finetune` write it.
//!
//! ```text
//! DIR/classifier.json   format "radfm-classifier-1": the preprocessing, the
//!                       pooling, and per observation P = sigmoid(coef . e + intercept)
//!                       on the image's embedding e (a multi-frame image: the
//!                       mean of its frames' embeddings)
//! DIR/encoder/          the encoder (full fine-tuning, a probe, a merged LoRA)
//! DIR/adapter/          or a PEFT LoRA adapter over the base model named in
//!                       classifier.json "base" {"path", "sha256"}
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::tensor::{Device, Tensor};
use radfm_data::preprocess::Preprocess;
use radfm_model::vit::Vit;

pub const FORMAT: &str = "radfm-classifier-1";

pub struct Classifier {
    pub dir: PathBuf,
    pub meta: serde_json::Value,
    pub encoder: Vit,
    pub prep: Preprocess,
    /// pooled, cls or mean
    pub pooling: String,
    pub observations: Vec<String>,
    /// per observation: (coef, intercept)
    pub heads: Vec<(Vec<f32>, f32)>,
}

/// A fresh staging directory beside `dir` (`DIR.export-tmp`), where a
/// classifier directory is assembled before [`commit`] puts it in place.
pub fn stage(dir: &Path) -> anyhow::Result<PathBuf> {
    let tmp = dir.with_extension("export-tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    Ok(tmp)
}

/// Write `classifier.json` into the staged `tmp` and rename it to `dir`,
/// replacing what was there: `dir` is the old directory or the new one,
/// never a mixture.
pub fn commit(tmp: &Path, dir: &Path, meta: &serde_json::Value) -> anyhow::Result<()> {
    radfm_core::write_atomic(
        &tmp.join("classifier.json"),
        serde_json::to_string_pretty(meta)?.as_bytes(),
    )?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("replacing {}", dir.display()))?;
    }
    std::fs::rename(tmp, dir).with_context(|| format!("writing {}", dir.display()))?;
    Ok(())
}

/// sha256 of a checkpoint directory's weights: `model.safetensors`, or every
/// `*.safetensors` file in name order.
pub fn weights_sha256(dir: &Path) -> anyhow::Result<String> {
    let one = dir.join("model.safetensors");
    if one.is_file() {
        return crate::commands::embed::sha256_file(&one);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no *.safetensors weights", dir.display());
    }
    let parts: Vec<String> = files
        .iter()
        .map(|f| crate::commands::embed::sha256_file(f))
        .collect::<anyhow::Result<_>>()?;
    Ok(parts.join("+"))
}

/// The preprocessing of an encoder directory (see `embed::preprocessing`).
pub fn encoder_preprocessing(dir: &Path) -> anyhow::Result<(Preprocess, serde_json::Value)> {
    let config = radfm_model::hf::read_config(dir)?;
    let enc = radfm_model::hf::image_encoder_config(dir)
        .with_context(|| format!("{}: not an image encoder radfm can load", dir.display()))?;
    let p = crate::commands::embed::preprocessing(dir, &config, enc.num_channels, enc.image_size)?;
    Ok((p, config))
}

/// The steps of a preprocessing, without where they were read from.
pub fn steps(describe: &serde_json::Value) -> serde_json::Value {
    let mut v = describe.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("source");
    }
    v
}

/// Check that an adapter's base is the model at `base`: radfm's recorded checksum,
/// and PEFT's `base_model_name_or_path` where it names a local directory.
pub fn check_adapter_base(
    adapter: &radfm_model::lora::PeftAdapter,
    base: &Path,
) -> anyhow::Result<()> {
    if let Some(want) = adapter.base_sha256() {
        let have = weights_sha256(base)?;
        if have != want {
            bail!(
                "{}: the adapter was trained on a base model with sha256 {}, but {} has {}: \
                 pass the base it was trained on",
                adapter.dir.display(),
                &want[..want.len().min(16)],
                base.display(),
                &have[..have.len().min(16)]
            );
        }
    }
    if let Some(name) = adapter.base_model() {
        let named = Path::new(name);
        if named.is_dir() {
            let same = match (named.canonicalize(), base.canonicalize()) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            };
            if !same && weights_sha256(named).ok() != weights_sha256(base).ok() {
                bail!(
                    "{}: base_model_name_or_path is {name}, whose weights differ from those of {}",
                    adapter.dir.display(),
                    base.display()
                );
            }
        } else {
            let cfg = radfm_model::hf::read_config(base)?;
            if let Some(own) = cfg["_name_or_path"].as_str().filter(|s| !s.is_empty()) {
                if own != name && !own.ends_with(&format!("/{name}")) {
                    bail!(
                        "{}: the adapter's base_model_name_or_path is {name}, but {} is {own}",
                        adapter.dir.display(),
                        base.display()
                    );
                }
            }
        }
    }
    Ok(())
}

impl Classifier {
    pub fn open(dir: &Path, device: &Device) -> anyhow::Result<Classifier> {
        let path = dir.join("classifier.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: not a classifier directory (no classifier.json; made by `radfm finetune` or `radfm probe --export`)",
                dir.display()
            )
        })?;
        let meta: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        if meta["format"] != FORMAT {
            bail!(
                "{}: format {} is not {FORMAT}",
                path.display(),
                meta["format"]
            );
        }
        let (encoder, enc_dir) = match (meta["encoder"].as_str(), meta["adapter"].as_str()) {
            (Some(e), _) => {
                let d = dir.join(e);
                let vit = radfm_model::hf::load_image_encoder(&d, device)
                    .with_context(|| format!("loading {}", d.display()))?;
                (vit, d)
            }
            (None, Some(a)) => {
                let base = PathBuf::from(meta["base"]["path"].as_str().with_context(|| {
                    format!(
                        "{}: an adapter without its base model's path",
                        path.display()
                    )
                })?);
                let vit = radfm_model::hf::load_image_encoder(&base, device).with_context(|| {
                    format!(
                        "{}: loading the base model {} (move it back, or merge the adapter with `radfm finetune --merge`)",
                        dir.display(),
                        base.display()
                    )
                })?;
                let ad = radfm_model::lora::read_peft(&dir.join(a), &vit.config)?;
                check_adapter_base(&ad, &base)?;
                (radfm_model::lora::apply_peft(vit, &ad, device)?, base)
            }
            (None, None) => bail!(
                "{}: names neither an encoder nor an adapter",
                path.display()
            ),
        };
        let (prep, _) = encoder_preprocessing(&enc_dir)?;
        if !meta["preprocessing"].is_null()
            && steps(&meta["preprocessing"]) != steps(&prep.describe())
        {
            bail!(
                "{}: the preprocessing it was trained with differs from its encoder's ({})",
                path.display(),
                enc_dir.display()
            );
        }
        let heads_json = meta["observations"]
            .as_object()
            .with_context(|| format!("{}: no \"observations\"", path.display()))?;
        let d = encoder.config.hidden_size;
        let (mut observations, mut heads) = (Vec::new(), Vec::new());
        for (obs, h) in heads_json {
            let coef: Vec<f32> = h["coef"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_f64())
                        .map(|v| v as f32)
                        .collect()
                })
                .unwrap_or_default();
            if coef.len() != d {
                bail!(
                    "{}: the head of {obs} has {} weights, the encoder gives {d} features",
                    path.display(),
                    coef.len()
                );
            }
            let b = h["intercept"].as_f64().with_context(|| {
                format!("{}: the head of {obs} has no intercept", path.display())
            })? as f32;
            observations.push(obs.clone());
            heads.push((coef, b));
        }
        Ok(Classifier {
            dir: dir.to_path_buf(),
            pooling: meta["pooling"].as_str().unwrap_or("pooled").to_string(),
            meta,
            encoder,
            prep,
            observations,
            heads,
        })
    }

    /// The embeddings `[batch, dim]` of preprocessed frames, by the directory's pooling.
    pub fn embed(&self, x: Tensor<4>, parts: usize) -> anyhow::Result<Vec<Vec<f32>>> {
        let out = self.encoder.forward_parts(x, parts)?;
        let pooled: Tensor<2> = match self.pooling.as_str() {
            "pooled" => out.pooled,
            "cls" => {
                let [b, _, d] = out.last_hidden_state.dims();
                out.last_hidden_state
                    .slice([0..b, 0..1, 0..d])
                    .reshape([b, d])
            }
            "mean" => {
                let [b, t, d] = out.last_hidden_state.dims();
                let skip = 1 + self.encoder.config.num_register_tokens;
                out.last_hidden_state
                    .slice([0..b, skip..t, 0..d])
                    .mean_dim(1)
                    .reshape([b, d])
            }
            other => bail!("{}: unknown pooling {other:?}", self.dir.display()),
        };
        let d = pooled.dims()[1];
        let v: Vec<f32> = pooled
            .into_data()
            .try_to_vec()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(v.chunks_exact(d).map(<[f32]>::to_vec).collect())
    }

    /// P(observation) for one image's embedding.
    pub fn scores(&self, e: &[f32]) -> Vec<f64> {
        self.heads
            .iter()
            .map(|(w, b)| {
                let z: f64 = w
                    .iter()
                    .zip(e)
                    .map(|(a, x)| f64::from(*a) * f64::from(*x))
                    .sum::<f64>()
                    + f64::from(*b);
                1.0 / (1.0 + (-z).exp())
            })
            .collect()
    }
}
