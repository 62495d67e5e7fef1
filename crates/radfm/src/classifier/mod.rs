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
//! DIR/reference/        inputs.npy: synthetic grey images (display units, no
//!                       patient's pixels), outputs.json: the scores this model
//!                       gave them at export, manifest.json: every file's sha256
//! ```
//!
//! Per observation, `operating_point.threshold` is where a finding is called
//! present (`P >= threshold`): the threshold of greatest Youden's J on the
//! validation split at export. A directory written before radfm recorded
//! operating points is read with 0.5 for every observation, with a warning.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::tensor::{Device, Tensor};
use radfm_data::preprocess::Preprocess;
use radfm_dicom::sr::Algorithm;
use radfm_model::vit::Vit;

pub mod reference;

pub use reference::{manifest, manifest_sha256};

pub const FORMAT: &str = "radfm-classifier-1";

pub struct Classifier {
    pub dir: PathBuf,
    pub meta: serde_json::Value,
    pub device: Device,
    pub encoder: Vit,
    pub prep: Preprocess,
    /// pooled, cls or mean
    pub pooling: String,
    pub observations: Vec<String>,
    /// per observation: (coef, intercept)
    pub heads: Vec<(Vec<f32>, f32)>,
    /// per observation: P >= threshold is a finding present
    pub thresholds: Vec<f64>,
    /// observations without a recorded operating point (read as 0.5)
    pub default_thresholds: Vec<String>,
    /// what names the model in its outputs: name, version, and sha256 over
    /// [`manifest`] (every file's path and sha256, `reference/manifest.json` aside)
    pub identity: Algorithm,
}

/// Why one image could not be scored.
#[derive(Debug)]
pub enum ImageError {
    /// not an image radfm can decode (no pixels, an unsupported encoding)
    NoImage(String),
    /// the model failed on it
    Model(anyhow::Error),
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageError::NoImage(e) => write!(f, "no image to score: {e}"),
            ImageError::Model(e) => write!(f, "the model failed: {e:#}"),
        }
    }
}

impl std::error::Error for ImageError {}

/// The threshold used where classifier.json records no operating point.
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// An observation's `operating_point` in classifier.json: the Youden point
/// found on `split`, or null (read back as the default threshold).
pub fn operating_point_json(
    op: Option<&radfm_eval::metrics::OperatingPoint>,
    split: &str,
) -> serde_json::Value {
    match op {
        Some(p) => serde_json::json!({
            "threshold": p.threshold,
            "method": "Youden's J on the validation split",
            "on": split,
            "sensitivity": p.sensitivity,
            "specificity": p.specificity,
        }),
        None => serde_json::Value::Null,
    }
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
///
/// Before the rename the staged directory is opened as a classifier and its
/// `reference/` written: the scores it gives the reference inputs and the
/// manifest of its files, which `radfm verify` checks.
pub fn commit(tmp: &Path, dir: &Path, meta: &serde_json::Value) -> anyhow::Result<()> {
    radfm_core::write_atomic(
        &tmp.join("classifier.json"),
        serde_json::to_string_pretty(meta)?.as_bytes(),
    )?;
    let clf = Classifier::open(tmp, &burn::tensor::Device::flex())
        .with_context(|| format!("reading back {}", tmp.display()))?;
    reference::write(tmp, &clf)?;
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
        let (mut thresholds, mut default_thresholds) = (Vec::new(), Vec::new());
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
            match h["operating_point"]["threshold"].as_f64() {
                Some(t) if (0.0..=1.0).contains(&t) => thresholds.push(t),
                Some(t) => bail!(
                    "{}: the operating point of {obs} is {t}, outside [0, 1]",
                    path.display()
                ),
                None => {
                    thresholds.push(DEFAULT_THRESHOLD);
                    default_thresholds.push(obs.clone());
                }
            }
            observations.push(obs.clone());
            heads.push((coef, b));
        }
        let files = manifest(dir)?;
        let identity = Algorithm {
            name: meta["name"].as_str().map_or_else(
                || format!("radfm-{}", meta["kind"].as_str().unwrap_or("probe")),
                str::to_string,
            ),
            version: meta["version"]
                .as_str()
                .or(meta["radfm_version"].as_str())
                .unwrap_or(env!("CARGO_PKG_VERSION"))
                .to_string(),
            sha256: manifest_sha256(&files),
        };
        Ok(Classifier {
            dir: dir.to_path_buf(),
            pooling: meta["pooling"].as_str().unwrap_or("pooled").to_string(),
            meta,
            device: device.clone(),
            encoder,
            prep,
            observations,
            heads,
            thresholds,
            default_thresholds,
            identity,
        })
    }

    /// A warning for observations read with the default threshold, if any.
    pub fn threshold_warning(&self) -> Option<String> {
        (!self.default_thresholds.is_empty()).then(|| {
            format!(
                "{}: no operating point recorded for {} (an older export, or one class only on validation): {DEFAULT_THRESHOLD} is used; \
                 export again to choose them on the validation split",
                self.dir.display(),
                self.default_thresholds.join(", ")
            )
        })
    }

    /// P(observation) for one parsed DICOM file, through the DICOM display
    /// pipeline and the model's own preprocessing; a multi-frame image's
    /// embedding is the mean of its frames'. One image per forward pass, so
    /// every caller (predict, sr, serve, pacs sync) gets the same numbers.
    pub fn predict_file(
        &self,
        file: &radfm_dicom::read::DicomFile,
    ) -> Result<Vec<f64>, ImageError> {
        let (frames, rows, cols) = self.prepare(file)?;
        self.predict_frames(frames, rows, cols)
            .map_err(ImageError::Model)
    }

    /// A file's frames through the display pipeline and the model's
    /// preprocessing, with the source's rows and columns.
    fn prepare(
        &self,
        file: &radfm_dicom::read::DicomFile,
    ) -> Result<(Vec<Vec<f32>>, usize, usize), ImageError> {
        let (_, px) = radfm_data::reader::dicom_file_pixels(file).map_err(ImageError::NoImage)?;
        let frames = self.prep.frames(&px).map_err(ImageError::NoImage)?;
        let [_, rows, cols, _] = px.shape;
        Ok((frames, rows, cols))
    }

    /// [`Classifier::predict_file`] of several files in one forward pass
    /// (files whose frames have another size than the first's go one by one).
    pub fn predict_files(
        &self,
        files: &[&radfm_dicom::read::DicomFile],
    ) -> Vec<Result<Vec<f64>, ImageError>> {
        let prepared: Vec<Result<(Vec<Vec<f32>>, (usize, usize)), ImageError>> = files
            .iter()
            .map(|f| {
                let (frames, rows, cols) = self.prepare(f)?;
                Ok((frames, self.prep.output_size(rows, cols)))
            })
            .collect();
        let size = prepared
            .iter()
            .find_map(|p| p.as_ref().ok().map(|(_, s)| *s));
        let together: Vec<usize> = (0..files.len())
            .filter(|&i| matches!(&prepared[i], Ok((f, s)) if Some(*s) == size && !f.is_empty()))
            .collect();
        let mut out: Vec<Option<Result<Vec<f64>, ImageError>>> =
            (0..files.len()).map(|_| None).collect();
        if let (Some((h, w)), false) = (size, together.is_empty()) {
            let mut flat = Vec::new();
            let mut counts = Vec::new();
            for &i in &together {
                let Ok((frames, _)) = &prepared[i] else {
                    unreachable!()
                };
                counts.push(frames.len());
                for f in frames {
                    flat.extend_from_slice(f);
                }
            }
            let n: usize = counts.iter().sum();
            let x = Tensor::<4>::from_data(
                burn::tensor::TensorData::new(flat, [n, self.prep.channels, h, w]),
                &self.device,
            );
            // one thread per batch: the server runs one batch per worker
            match self.embed(x, 1) {
                Ok(e) => {
                    let mut at = 0;
                    for (&i, &c) in together.iter().zip(&counts) {
                        let d = e[at].len();
                        let mean: Vec<f32> = (0..d)
                            .map(|j| e[at..at + c].iter().map(|r| r[j]).sum::<f32>() / c as f32)
                            .collect();
                        at += c;
                        out[i] = Some(Ok(self.scores(&mean)));
                    }
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    for &i in &together {
                        out[i] = Some(Err(ImageError::Model(anyhow::anyhow!("{msg}"))));
                    }
                }
            }
        }
        out.into_iter()
            .zip(prepared)
            .zip(files)
            .map(|((done, prep), f)| match (done, prep) {
                (Some(r), _) => r,
                (None, Err(e)) => Err(e),
                (None, Ok(_)) => self.predict_file(f),
            })
            .collect()
    }

    /// P(observation) for one image given as preprocessed frames of an image of `rows` x `cols`.
    fn predict_frames(
        &self,
        frames: Vec<Vec<f32>>,
        rows: usize,
        cols: usize,
    ) -> anyhow::Result<Vec<f64>> {
        let nf = frames.len();
        if nf == 0 {
            bail!("no frames");
        }
        let (h, w) = self.prep.output_size(rows, cols);
        let x = Tensor::<4>::from_data(
            burn::tensor::TensorData::new(frames.concat(), [nf, self.prep.channels, h, w]),
            &self.device,
        );
        let e = self.embed(x, 1)?;
        let d = e[0].len();
        let mean: Vec<f32> = (0..d)
            .map(|j| e.iter().map(|r| r[j]).sum::<f32>() / nf as f32)
            .collect();
        Ok(self.scores(&mean))
    }

    /// P(observation) for a grey image in display units (0 black, 1 white).
    pub fn predict_grey(&self, grey: &[f32], rows: usize, cols: usize) -> anyhow::Result<Vec<f64>> {
        let x = self
            .prep
            .apply(grey, rows, cols)
            .map_err(anyhow::Error::msg)?;
        self.predict_frames(vec![x], rows, cols)
    }

    /// The model card: what the model is, what it was trained on, and how it
    /// calls a finding, as `radfm card --json` prints it and `GET /v1/model` serves it.
    pub fn card(&self) -> serde_json::Value {
        let m = &self.meta;
        let observations: serde_json::Map<String, serde_json::Value> = self
            .observations
            .iter()
            .zip(&self.thresholds)
            .map(|(o, t)| {
                let h = &m["observations"][o];
                let op = &h["operating_point"];
                (
                    o.clone(),
                    serde_json::json!({
                        "threshold": t,
                        "chosen_by": if op.is_null() { serde_json::json!("default (no operating point recorded)") } else { op["method"].clone() },
                        "val_sensitivity": op["sensitivity"],
                        "val_specificity": op["specificity"],
                        "n_train": h["n_train"],
                        "n_positive": h["n_positive"],
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "format": "radfm-model-card-1",
            "name": self.identity.name,
            "version": self.identity.version,
            "sha256": self.identity.sha256,
            "kind": m["kind"].as_str().unwrap_or("probe"),
            "method": m["method"],
            "architecture": {
                "encoder": "ViT",
                "hidden_size": self.encoder.config.hidden_size,
                "layers": self.encoder.config.num_hidden_layers,
                "image_size": self.encoder.config.image_size,
                "patch_size": self.encoder.config.patch_size,
                "adapter": if m["adapter"].is_string() && !m["encoder"].is_string() { m["lora"].clone() } else { serde_json::Value::Null },
            },
            "input": {
                "accepts": "one DICOM Part-10 image (any transfer syntax radfm decodes), through the DICOM display pipeline",
                "preprocessing": steps(&self.prep.describe()),
                "pooling": self.pooling,
                "frames": "a multi-frame image's embedding is the mean of its frames' embeddings",
            },
            "training": {
                "labels": m["labels"],
                "uncertain": m["uncertain"],
                "selected": m["selected"],
                "base": m["base"],
            },
            "output": "per observation P(present) in [0, 1]; present when P >= threshold",
            "observations": observations,
            "intended_use": "research and evaluation of chest radiograph findings next to a PACS; not a medical device, not for diagnosis without a radiologist",
            "limitations": [
                "weak labels from report text (CheXpert-style rules) unless trained with --labels",
                "operating points were chosen on the validation split of the training data: check them on local data before use",
                "inputs unlike the training data (other views, modalities, sites, paediatric images) are not detected",
            ],
            "radfm_version": env!("CARGO_PKG_VERSION"),
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

impl radfm_serve::Model for Classifier {
    fn algorithm(&self) -> &Algorithm {
        &self.identity
    }

    fn card(&self) -> serde_json::Value {
        Classifier::card(self)
    }

    fn observations(&self) -> &[String] {
        &self.observations
    }

    fn thresholds(&self) -> &[f64] {
        &self.thresholds
    }

    fn score(
        &self,
        file: &radfm_dicom::read::DicomFile,
    ) -> Result<Vec<f64>, radfm_serve::ScoreError> {
        self.predict_file(file).map_err(score_error)
    }

    fn score_batch(
        &self,
        files: &[&radfm_dicom::read::DicomFile],
    ) -> Vec<Result<Vec<f64>, radfm_serve::ScoreError>> {
        self.predict_files(files)
            .into_iter()
            .map(|r| r.map_err(score_error))
            .collect()
    }
}

fn score_error(e: ImageError) -> radfm_serve::ScoreError {
    match e {
        ImageError::NoImage(m) => radfm_serve::ScoreError::NoImage(m),
        ImageError::Model(e) => radfm_serve::ScoreError::Failed(format!("{e:#}")),
    }
}

/// Open a classifier directory for deployment, printing the threshold
/// warning an older export gets.
pub fn open_for_use(dir: &Path, device: &Device) -> anyhow::Result<Classifier> {
    let clf = Classifier::open(dir, device)?;
    if let Some(w) = clf.threshold_warning() {
        eprintln!("warning: {w}");
    }
    Ok(clf)
}
