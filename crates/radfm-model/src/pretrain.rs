//! A pretraining run: its directory, the step loop, checkpoints and resume.
//!
//! ```text
//! RUN/config.json             everything resolved
//! RUN/metrics.jsonl           one line per step: step, loss, lr, grad_norm, images_per_s
//! RUN/checkpoints/step-NNNNNNNN/{model,optimizer}.safetensors + state.json
//! RUN/model/                  the encoder, loadable by `radfm model run`
//! ```
//!
//! Every batch and every mask is a function of (seed, step) alone, and the
//! optimizer state is saved with the weights, so a run resumed from a
//! checkpoint continues exactly: on CPU its loss curve and final weights equal
//! those of an uninterrupted run, bit for bit.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::augment::Augment;
use crate::clip::{clip_loss, ClipTrain, ClipTrainConfig};
use crate::mae::{Mae, MaeConfig};
use crate::train::{
    load_params, loss_grads, named_params, parallel_grads_coupled, parallel_part_grads,
    save_safetensors, split_rows, AdamW, AdamWConfig, Schedule,
};
use crate::vit::{Vit, VitConfig};
use crate::weights::Weights;
use crate::ModelError;

/// The training items: each has one or more images (views of a study), each
/// `channels x size x size` floats, and for CLIP the frozen features of its
/// report.
pub trait ImageSet: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// An image of item `i`, row-major `[C, H, W]` at the run's image size;
    /// `rng` picks among the item's views where it has several.
    fn image(&self, i: usize, rng: &mut ChaCha8Rng) -> Vec<f32>;
    /// What item `i`'s image is trained against, besides itself: its report's
    /// frozen features (CLIP) or its labels (fine-tuning); None where the set
    /// has nothing of the kind.
    fn paired(&self, _i: usize) -> Option<&[f32]> {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    pub objective: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mae: Option<MaeConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<ClipTrainConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finetune: Option<crate::finetune::FinetuneConfig>,
    /// None: the images as stored
    #[serde(default)]
    pub augment: Option<Augment>,
    /// the encoder starts from this checkpoint directory (anything
    /// `radfm model run` loads) instead of a random initialisation
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
    /// micro-batches of `batch` per optimizer step (gradient accumulation); for
    /// CLIP the negatives of an image are those of its own micro-batch
    #[serde(default = "one")]
    pub accumulate: usize,
    /// each micro-batch is cut into this many parts whose gradients are
    /// computed at once on replicas of the model (data parallel over the
    /// cores). A coupled loss (CLIP) still sees the whole batch. The parts draw
    /// masks and drop-path from their own streams, so the count is part of
    /// the run's identity, fixed at its start
    #[serde(default = "one")]
    pub parts: usize,
    pub batch: usize,
    pub steps: u64,
    pub schedule: Schedule,
    pub adamw: AdamWConfig,
    pub seed: u64,
    pub checkpoint_every: u64,
    /// training items (images for MAE, studies for CLIP)
    pub images: usize,
}

fn one() -> usize {
    1
}

impl PretrainConfig {
    /// The image encoder's configuration, whatever the objective.
    pub fn encoder(&self) -> &VitConfig {
        match (&self.mae, &self.clip, &self.finetune) {
            (Some(m), _, _) => &m.encoder,
            (None, Some(c), _) => &c.encoder,
            (None, None, Some(f)) => &f.encoder,
            (None, None, None) => panic!("a training config without an objective section"),
        }
    }
}

/// What a pretraining objective supplies to the run: its model, its loss on a
/// batch and the image encoder it trains.
pub trait Objective: Module + Sized {
    fn build(config: &PretrainConfig, device: &Device) -> Result<Self, ModelError>;
    /// The loss of a batch of images (and, for CLIP, the matching text features).
    fn loss(
        &self,
        images: Tensor<4>,
        texts: Option<Tensor<2>>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Tensor<1>, ModelError>;
    fn encoder(&self) -> &Vit;
    /// Whether the batch loss is the mean of per-sample losses, so that parts
    /// of a batch can be computed apart and their gradients added. When false
    /// (contrastive losses, where every sample is another's negative), parts
    /// go through [`Objective::embed_part`] and [`Objective::coupled_loss`].
    fn per_sample_loss() -> bool;
    /// A coupled objective's per-sample features of a part of the batch.
    fn embed_part(
        &self,
        _images: Tensor<4>,
        _rng: &mut ChaCha8Rng,
    ) -> Result<Tensor<2>, ModelError> {
        Err(ModelError::Config(
            "this objective's loss is per sample: it has no coupled features".into(),
        ))
    }
    /// A coupled objective's batch loss from the joined features of its parts.
    fn coupled_loss(
        &self,
        _features: Tensor<2>,
        _texts: Option<Tensor<2>>,
    ) -> Result<Tensor<1>, ModelError> {
        Err(ModelError::Config(
            "this objective's loss is per sample: it has no coupled loss".into(),
        ))
    }
    /// A per-sample objective's gradients and loss value for a batch (or a
    /// part of one) weighted by `weight`, when it computes them itself (as
    /// fine-tuning does with activations recomputed block by block), or None:
    /// the engine takes autodiff of [`Objective::loss`] times `weight`.
    fn weighted_grads(
        &self,
        _images: Tensor<4>,
        _texts: Option<Tensor<2>>,
        _rng: &mut ChaCha8Rng,
        _weight: f64,
    ) -> Option<Result<(GradientsParams, f64), ModelError>> {
        None
    }
    /// The model with its encoder replaced.
    fn with_encoder(self, vit: Vit) -> Result<Self, ModelError>;
    /// The learning-rate factor of the parameter at `path` (layer-wise decay).
    fn lr_scale(_config: &PretrainConfig, _path: &str) -> f64 {
        1.0
    }
    /// Whether each checkpoint refreshes `RUN/model/` with the encoder
    /// ([`Run::export_encoder`]); an objective that exports its own model
    /// directory (fine-tuning) says no.
    fn exports_model() -> bool {
        true
    }
    /// Extra tensors exported beside the encoder in `RUN/model/` (file name and
    /// tensors), e.g. CLIP's projections.
    fn export_extra(&self) -> Option<(&'static str, crate::train::Arrays)> {
        None
    }
}

/// The gradients and value of `weight` x the loss of a batch (or part), by
/// the objective's own [`Objective::weighted_grads`] or else by autodiff.
fn weighted_grads<M: Objective>(
    model: &M,
    images: Tensor<4>,
    texts: Option<Tensor<2>>,
    rng: &mut ChaCha8Rng,
    weight: f64,
) -> Result<(GradientsParams, f64), ModelError> {
    if let Some(found) = model.weighted_grads(images.clone(), texts.clone(), rng, weight) {
        return found;
    }
    Ok(loss_grads(model.loss(images, texts, rng)? * weight, model))
}

/// An objective's section of the run's config, or an error naming it.
fn section<'a, T>(s: &'a Option<T>, name: &str) -> Result<&'a T, ModelError> {
    s.as_ref()
        .ok_or_else(|| ModelError::Config(format!("the run's config has no \"{name}\" section")))
}

impl Objective for Mae {
    fn build(config: &PretrainConfig, device: &Device) -> Result<Mae, ModelError> {
        Ok(Mae::new(section(&config.mae, "mae")?, device))
    }
    fn loss(
        &self,
        images: Tensor<4>,
        _texts: Option<Tensor<2>>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Tensor<1>, ModelError> {
        Ok(self.forward(images, rng).loss)
    }
    fn encoder(&self) -> &Vit {
        &self.encoder
    }
    fn per_sample_loss() -> bool {
        true
    }
    fn with_encoder(mut self, vit: Vit) -> Result<Mae, ModelError> {
        self.encoder = vit;
        Ok(self)
    }
}

impl Objective for ClipTrain {
    fn build(config: &PretrainConfig, device: &Device) -> Result<ClipTrain, ModelError> {
        Ok(ClipTrain::new(section(&config.clip, "clip")?, device))
    }
    fn loss(
        &self,
        images: Tensor<4>,
        texts: Option<Tensor<2>>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Tensor<1>, ModelError> {
        let texts = texts.ok_or_else(|| {
            ModelError::Config("the clip objective needs text features for every item".into())
        })?;
        Ok(clip_loss(self.logits(images, texts, rng)?))
    }
    fn encoder(&self) -> &Vit {
        &self.vision
    }
    fn per_sample_loss() -> bool {
        false
    }
    fn embed_part(&self, images: Tensor<4>, rng: &mut ChaCha8Rng) -> Result<Tensor<2>, ModelError> {
        self.embed_images_train(images, rng)
    }
    fn coupled_loss(
        &self,
        features: Tensor<2>,
        texts: Option<Tensor<2>>,
    ) -> Result<Tensor<1>, ModelError> {
        let texts = texts.ok_or_else(|| {
            ModelError::Config("the clip objective needs text features for every item".into())
        })?;
        Ok(clip_loss(self.logits_of(features, texts)))
    }
    fn with_encoder(mut self, vit: Vit) -> Result<ClipTrain, ModelError> {
        self.vision = vit;
        Ok(self)
    }
    fn export_extra(&self) -> Option<(&'static str, crate::train::Arrays)> {
        let all = named_params(self);
        Some((
            "clip_head.safetensors",
            all.into_iter()
                .filter(|(k, _)| !k.starts_with("vision."))
                .collect(),
        ))
    }
}

/// A fresh model of the run: seeded, with the encoder from `config.init` when set.
fn initial<M: Objective>(config: &PretrainConfig, device: &Device) -> Result<M, ModelError> {
    device.seed(config.seed);
    let model = M::build(config, device)?;
    match &config.init {
        None => Ok(model),
        Some(dir) => {
            let mut vit = crate::hf::load_image_encoder(Path::new(dir), device)?;
            if vit.config.hidden_size != config.encoder().hidden_size
                || vit.config.num_channels != config.encoder().num_channels
            {
                return Err(ModelError::Config(format!(
                    "{dir}: its encoder does not match the run's config"
                )));
            }
            vit.config = config.encoder().clone();
            model.with_encoder(vit)
        }
    }
}

/// A grey image repeated to the encoder's channels (3 for an RGB checkpoint).
fn to_channels(img: Vec<f32>, channels: usize, size: usize) -> Vec<f32> {
    if channels > 1 && img.len() == size * size {
        img.repeat(channels)
    } else {
        img
    }
}

/// The generator of sample `j` of `step`: view choice and augmentation.
fn sample_rng(seed: u64, step: u64, j: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x5A4D_504C_45);
    r.set_stream(step.wrapping_mul(1 << 20).wrapping_add(j as u64));
    r
}

/// What one step reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub images_per_s: f64,
}

/// The sample order of a run: consecutive slices of a per-epoch permutation
/// seeded by (seed, epoch). The permutation of the current epoch is kept, so a
/// step costs O(batch), not O(items).
#[derive(Debug, Default)]
pub struct EpochOrder {
    epoch: Option<(u64, Vec<usize>)>,
}

impl EpochOrder {
    /// The sample indices of `step` for a dataset of `n` items.
    pub fn indices(&mut self, seed: u64, step: u64, batch: usize, n: usize) -> Vec<usize> {
        (0..batch as u64)
            .map(|j| {
                let g = step * batch as u64 + j;
                let (epoch, pos) = (g / n as u64, (g % n as u64) as usize);
                match &self.epoch {
                    Some((e, perm)) if *e == epoch && perm.len() == n => perm[pos],
                    _ => {
                        let mut perm: Vec<usize> = (0..n).collect();
                        perm.shuffle(&mut ChaCha8Rng::seed_from_u64(radfm_core::seed::spread(
                            seed,
                            epoch.wrapping_sub(1),
                        )));
                        let i = perm[pos];
                        self.epoch = Some((epoch, perm));
                        i
                    }
                }
            })
            .collect()
    }
}

/// The sample indices of `step` (see [`EpochOrder`]), computed afresh.
pub fn batch_indices(seed: u64, step: u64, batch: usize, n: usize) -> Vec<usize> {
    EpochOrder::default().indices(seed, step, batch, n)
}

fn checkpoints(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

/// The newest complete checkpoint of a run and its step.
pub fn latest_checkpoint(run: &Path) -> Option<(u64, PathBuf)> {
    std::fs::read_dir(checkpoints(run))
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let step = name.strip_prefix("step-")?.parse::<u64>().ok()?;
            e.path()
                .join("state.json")
                .exists()
                .then(|| (step, e.path()))
        })
        .max_by_key(|(s, _)| *s)
}

/// A pretraining run of objective `M`.
pub struct Run<M: Objective> {
    pub config: PretrainConfig,
    model: Option<M>,
    pub opt: AdamW,
    pub dir: PathBuf,
    device: Device,
    order: EpochOrder,
    /// parts computed at once (0: all); see [`Run::set_parts_in_flight`]
    in_flight: usize,
}

/// The MAE pretraining loop.
pub type MaeRun = Run<Mae>;
/// The CLIP (image-report) pretraining loop.
pub type ClipRun = Run<ClipTrain>;

impl<M: Objective> Run<M> {
    /// A new run in `dir` (which must not hold one), or with `resume`, the
    /// run found there continued from its newest checkpoint.
    pub fn open(
        config: PretrainConfig,
        dir: &Path,
        resume: bool,
        device: &Device,
    ) -> Result<Run<M>, ModelError> {
        let ad = device.clone().autodiff();
        let cfg_path = dir.join("config.json");
        if resume {
            let text =
                std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::io(&cfg_path, e))?;
            let saved: PretrainConfig = serde_json::from_str(&text)
                .map_err(|e| ModelError::Format(format!("{}: {e}", cfg_path.display())))?;
            if saved.objective != config.objective {
                return Err(ModelError::Config(format!(
                    "{} holds a {} run, not {}",
                    dir.display(),
                    saved.objective,
                    config.objective
                )));
            }
            let mut model = initial::<M>(&saved, &ad)?;
            let mut opt = AdamW::new(saved.adamw);
            if let Some((step, ck)) = latest_checkpoint(dir) {
                let mut w = Weights::open(&ck.join("model.safetensors"))?;
                model = load_params(model, &mut w, &ad)?;
                let mut o = Weights::open(&ck.join("optimizer.safetensors"))?;
                opt.load_state(&mut o, step, device)?;
            }
            // the steps asked for now may extend the run
            let mut cfg = saved;
            cfg.steps = config.steps;
            cfg.schedule.total_steps = config.schedule.total_steps;
            let run = Run {
                config: cfg,
                model: Some(model),
                opt,
                dir: dir.to_path_buf(),
                device: ad,
                order: EpochOrder::default(),
                in_flight: 0,
            };
            run.truncate_metrics()?;
            return Ok(run);
        }
        if cfg_path.exists() {
            return Err(ModelError::Config(format!(
                "{} already holds a run: resume it, or start the new run in another directory",
                dir.display()
            )));
        }
        let model = initial::<M>(&config, &ad)?;
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        radfm_core::write_atomic(
            &cfg_path,
            serde_json::to_string_pretty(&config)
                .expect("json")
                .as_bytes(),
        )
        .map_err(|e| ModelError::io(&cfg_path, e))?;
        Ok(Run {
            opt: AdamW::new(config.adamw),
            config,
            model: Some(model),
            dir: dir.to_path_buf(),
            device: ad,
            order: EpochOrder::default(),
            in_flight: 0,
        })
    }

    pub fn model(&self) -> &M {
        self.model.as_ref().expect("model present between steps")
    }

    /// Compute at most `n` of a batch's parts at once (0: all). Each part holds
    /// its activations until its backward is done, so fewer parts in flight
    /// than parts lowers the peak memory; the results do not change (the
    /// parts' gradients are summed in part order either way). A runtime
    /// setting, not part of the run's identity.
    pub fn set_parts_in_flight(&mut self, n: usize) {
        self.in_flight = n;
    }

    /// Keep only the metric lines of steps already checkpointed, so that a
    /// resumed run neither loses nor repeats a step.
    fn truncate_metrics(&self) -> Result<(), ModelError> {
        let p = self.dir.join("metrics.jsonl");
        let Ok(text) = std::fs::read_to_string(&p) else {
            return Ok(());
        };
        let kept: String = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|s| s <= self.opt.step)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        radfm_core::write_atomic(&p, kept.as_bytes()).map_err(|e| ModelError::io(&p, e))
    }

    /// The images (augmented) and text features of `step`'s batch, built
    /// in parallel; every sample is a function of (seed, step, position).
    fn batch(&mut self, data: &dyn ImageSet, step: u64) -> (Tensor<4>, Option<Tensor<2>>) {
        let idx = self
            .order
            .indices(self.config.seed, step, self.config.batch, data.len());
        let c = &self.config;
        let e = c.encoder();
        let s = e.image_size;
        let images: Vec<Vec<f32>> = idx
            .par_iter()
            .enumerate()
            .map(|(j, &i)| {
                let mut rng = sample_rng(c.seed, step, j);
                let img = to_channels(data.image(i, &mut rng), e.num_channels, s);
                match &c.augment {
                    Some(a) => a.apply(&img, e.num_channels, s, &mut rng),
                    None => img,
                }
            })
            .collect();
        let flat: Vec<f32> = images.into_iter().flatten().collect();
        let x = Tensor::<4>::from_data(
            TensorData::new(flat, [c.batch, e.num_channels, s, s]),
            &self.device,
        );
        let texts = idx
            .iter()
            .map(|&i| data.paired(i))
            .collect::<Option<Vec<&[f32]>>>()
            .map(|t| {
                let d = t[0].len();
                let flat: Vec<f32> = t.concat();
                Tensor::<2>::from_data(TensorData::new(flat, [c.batch, d]), &self.device)
            });
        (x, texts)
    }

    /// One optimizer step on the batch of `self.opt.step`.
    pub fn step(&mut self, data: &dyn ImageSet) -> Result<StepLog, ModelError> {
        let t0 = Instant::now();
        let step = self.opt.step;
        let accumulate = self.config.accumulate.max(1);
        let model = self.model.take().expect("model present between steps");
        // micro-batch k of step s is the batch of "micro-step" s * accumulate + k:
        // with accumulation the samples are those of one batch `accumulate` times larger
        let mut acc = GradientsAccumulator::<M>::new();
        let mut loss = 0.0;
        for k in 0..accumulate {
            let micro = step * accumulate as u64 + k as u64;
            let (x, texts) = self.batch(data, micro);
            let stream = self.config.seed ^ 0x4D41_45 ^ micro.wrapping_mul(0xA24B_AED4_963E_E407);
            let (grads, loss_k) = if self.config.parts > 1 {
                let rows = x.dims()[0];
                let parts: Vec<_> = split_rows(rows, self.config.parts)
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| {
                        // a coupled loss reads the whole batch's texts, not the part's
                        let texts = match M::per_sample_loss() {
                            true => texts.clone().map(|t| t.slice(r.clone())),
                            false => None,
                        };
                        (i as u64, r.len(), x.clone().slice(r), texts)
                    })
                    .collect();
                let stream_of =
                    |i: u64| ChaCha8Rng::seed_from_u64(radfm_core::seed::spread(stream, i));
                let found = if M::per_sample_loss() {
                    parallel_part_grads(&model, parts, self.in_flight, |m, (i, len, x, texts)| {
                        // each part's loss weighted by its share: the sum is the batch mean
                        let share = len as f64 / rows as f64 / accumulate as f64;
                        weighted_grads(m, x, texts, &mut stream_of(i), share)
                    })
                    .map(|(g, losses)| (g, losses.iter().sum::<f64>()))
                } else {
                    let texts = texts.clone();
                    parallel_grads_coupled(
                        &model,
                        parts,
                        |m, (i, _, x, _)| m.embed_part(x, &mut stream_of(i)),
                        |m, features| Ok(m.coupled_loss(features, texts)? / accumulate as f64),
                    )
                };
                match found {
                    Ok(found) => found,
                    Err(e) => {
                        self.model = Some(model);
                        return Err(e);
                    }
                }
            } else {
                let mut rng = ChaCha8Rng::seed_from_u64(stream);
                match weighted_grads(&model, x, texts, &mut rng, 1.0 / accumulate as f64) {
                    Ok(found) => found,
                    Err(e) => {
                        self.model = Some(model);
                        return Err(e);
                    }
                }
            };
            loss += loss_k;
            acc.accumulate(&model, grads);
        }
        let grads = acc.grads();
        let c = &self.config;
        let lr = c.schedule.at(step);
        let scale = |path: &str| M::lr_scale(c, path);
        let (model, grad_norm) = self.opt.update_scaled(model, &grads, lr, &scale);
        self.model = Some(model);
        let log = StepLog {
            step: self.opt.step,
            loss,
            lr,
            grad_norm,
            images_per_s: (c.batch * accumulate) as f64 / t0.elapsed().as_secs_f64(),
        };
        let p = self.dir.join("metrics.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(|e| ModelError::io(&p, e))?;
        writeln!(f, "{}", serde_json::to_string(&log).expect("json"))
            .map_err(|e| ModelError::io(&p, e))?;
        if self.opt.step % self.config.checkpoint_every == 0 || self.opt.step == self.config.steps {
            self.checkpoint()?;
        }
        Ok(log)
    }

    /// Write `checkpoints/step-N/` (complete or not at all) and refresh `model/`.
    pub fn checkpoint(&self) -> Result<(), ModelError> {
        let step = self.opt.step;
        let root = checkpoints(&self.dir);
        let tmp = root.join(format!(".step-{step:08}.tmp"));
        let fin = root.join(format!("step-{step:08}"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
        save_safetensors(&tmp.join("model.safetensors"), &named_params(self.model()))?;
        save_safetensors(&tmp.join("optimizer.safetensors"), &self.opt.state_arrays())?;
        let state = tmp.join("state.json");
        radfm_core::write_atomic(
            &state,
            serde_json::json!({"step": step, "optimizer": "adamw"})
                .to_string()
                .as_bytes(),
        )
        .map_err(|e| ModelError::io(&state, e))?;
        let _ = std::fs::remove_dir_all(&fin);
        std::fs::rename(&tmp, &fin).map_err(|e| ModelError::io(&fin, e))?;
        // keep the two newest checkpoints
        let mut all: Vec<(u64, PathBuf)> = std::fs::read_dir(&root)
            .map_err(|e| ModelError::io(&root, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                Some((n.strip_prefix("step-")?.parse().ok()?, e.path()))
            })
            .collect();
        all.sort();
        for (_, p) in all.iter().rev().skip(2) {
            let _ = std::fs::remove_dir_all(p);
        }
        if M::exports_model() {
            self.export_encoder()?;
        }
        Ok(())
    }

    /// `RUN/model/`: the encoder's weights and config, for `radfm model run`.
    pub fn export_encoder(&self) -> Result<(), ModelError> {
        let dir = self.dir.join("model");
        std::fs::create_dir_all(&dir).map_err(|e| ModelError::io(&dir, e))?;
        save_safetensors(
            &dir.join("model.safetensors"),
            &named_params(self.model().encoder()),
        )?;
        let mut cfg = serde_json::json!({"model_type": "radfm_vit", "vit": self.config.encoder(),
                                     "objective": self.config.objective, "step": self.opt.step});
        if let Some((name, arrays)) = self.model().export_extra() {
            save_safetensors(&dir.join(name), &arrays)?;
            cfg["extra"] = serde_json::json!(name);
            if let Some(c) = &self.config.clip {
                // the frozen text tower travels with the model, for zero-shot and
                // retrieval (when the features came from a directory at all)
                let copied = copy_text_tower(Path::new(&c.text_model), &dir.join("text"))?;
                cfg["clip"] = serde_json::json!({"projection_dim": c.projection_dim,
                    "text_dim": c.text_dim, "text_model": c.text_model});
                if copied {
                    cfg["clip"]["text_tower"] = serde_json::json!("text");
                }
            }
        }
        let path = dir.join("config.json");
        radfm_core::write_atomic(
            &path,
            serde_json::to_string_pretty(&cfg).expect("json").as_bytes(),
        )
        .map_err(|e| ModelError::io(&path, e))
    }
}

/// The files of a BERT-family text tower a CLIP run trained against.
const TEXT_TOWER_FILES: [&str; 7] = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "sentence_bert_config.json",
];

/// Copy (hard-link where the filesystem allows) the text tower in `from` to
/// `to`, once: written beside and renamed into place, so a killed export
/// leaves either no `to` or a whole one. Whether `to` holds a tower: false
/// when `from` is not a model directory (features made some other way).
fn copy_text_tower(from: &Path, to: &Path) -> Result<bool, ModelError> {
    if to.join("config.json").is_file() {
        return Ok(true);
    }
    if !from.join("config.json").is_file() {
        return Ok(false);
    }
    let tmp = to.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
    for f in TEXT_TOWER_FILES {
        let src = from.join(f);
        if !src.is_file() {
            continue;
        }
        let dst = tmp.join(f);
        if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).map_err(|e| ModelError::io(&src, e))?;
        }
    }
    std::fs::rename(&tmp, to).map_err(|e| ModelError::io(to, e))?;
    Ok(true)
}

impl Run<Mae> {
    /// `RUN/reconstructions.png`: for the first (up to) 6 training images, one row
    /// each of original | what the encoder saw (masked patches black) |
    /// reconstruction with the visible patches pasted back, 3x enlarged.
    pub fn save_reconstructions(&self, data: &dyn ImageSet) -> Result<PathBuf, ModelError> {
        let e = self.config.encoder();
        let norm_pix = self.model().config.norm_pix_loss;
        let (s, p) = (e.image_size, e.patch_size);
        let g = s / p;
        let b = data.len().min(6);
        let mut view = ChaCha8Rng::seed_from_u64(0);
        let images: Vec<Vec<f32>> = (0..b).map(|i| data.image(i, &mut view)).collect();
        let flat: Vec<f32> = images.iter().flatten().copied().collect();
        let x = Tensor::<4>::from_data(TensorData::new(flat, [b, 1, s, s]), &self.device);
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ 0x5EC0);
        let out = self.model().forward(x, &mut rng);
        let pred: Vec<f32> = out
            .pred
            .into_data()
            .try_to_vec()
            .map_err(|e| ModelError::Format(format!("{e:?}")))?;
        let pd = p * p;
        let n = g * g;
        let scale = 3;
        let (w, h) = (3 * s * scale, b * s * scale);
        let mut px = vec![0u8; w * h];
        let to_u8 = |v: f32| ((v * 0.25 + 0.5).clamp(0.0, 1.0) * 255.0).round() as u8;
        for (k, img) in images.iter().enumerate() {
            for t in 0..n {
                let (gy, gx) = (t / g, t % g);
                let patch: Vec<f32> = (0..pd)
                    .map(|j| img[(gy * p + j / p) * s + gx * p + j % p])
                    .collect();
                let mean = patch.iter().sum::<f32>() / pd as f32;
                let var = patch.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / (pd as f32 - 1.0);
                let masked = out.mask[k * n + t];
                for j in 0..pd {
                    let (y, xx) = (gy * p + j / p, gx * p + j % p);
                    let orig = patch[j];
                    let mut r = pred[(k * n + t) * pd + j];
                    if norm_pix {
                        r = r * (var + 1e-6).sqrt() + mean;
                    }
                    let cols = [
                        to_u8(orig),
                        if masked { 0 } else { to_u8(orig) },
                        if masked { to_u8(r) } else { to_u8(orig) },
                    ];
                    for (c, v) in cols.iter().enumerate() {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                let yy = (k * s + y) * scale + dy;
                                let xp = (c * s + xx) * scale + dx;
                                px[yy * w + xp] = *v;
                            }
                        }
                    }
                }
            }
        }
        let mut buf = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut buf, w as u32, h as u32);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::Eight);
            let mut wr = enc
                .write_header()
                .map_err(|e| ModelError::Format(e.to_string()))?;
            wr.write_image_data(&px)
                .map_err(|e| ModelError::Format(e.to_string()))?;
        }
        let path = self.dir.join("reconstructions.png");
        radfm_core::write_atomic(&path, &buf).map_err(|e| ModelError::io(&path, e))?;
        Ok(path)
    }
}

impl Run<ClipTrain> {
    /// Image-to-report retrieval with the current weights: each query image
    /// (`[C, H, W]` at the run's size, with the index of its report) against
    /// every report's frozen features. No augmentation, no gradients.
    pub fn retrieval(
        &self,
        queries: &[(Vec<f32>, usize)],
        reports: &[Vec<f32>],
        ks: &[usize],
    ) -> Result<crate::clip::Retrieval, ModelError> {
        let model = self.model().valid();
        let dev = self.device.clone().inner();
        let e = self.config.encoder();
        let s = e.image_size;
        let to_rows = |t: Tensor<2>| -> Result<Vec<Vec<f32>>, ModelError> {
            let d = t.dims()[1];
            let v: Vec<f32> = t
                .into_data()
                .try_to_vec()
                .map_err(|e| ModelError::Format(format!("{e:?}")))?;
            Ok(v.chunks_exact(d).map(<[f32]>::to_vec).collect())
        };
        let mut img = Vec::with_capacity(queries.len());
        for chunk in queries.chunks(64) {
            let flat: Vec<f32> = chunk
                .iter()
                .flat_map(|q| to_channels(q.0.clone(), e.num_channels, s))
                .collect();
            let x = Tensor::<4>::from_data(
                TensorData::new(flat, [chunk.len(), e.num_channels, s, s]),
                &dev,
            );
            img.extend(to_rows(model.embed_images(x)?)?);
        }
        let mut txt = Vec::with_capacity(reports.len());
        for chunk in reports.chunks(256) {
            let d = chunk[0].len();
            let flat: Vec<f32> = chunk.concat();
            let f = Tensor::<2>::from_data(TensorData::new(flat, [chunk.len(), d]), &dev);
            txt.extend(to_rows(model.embed_texts(f))?);
        }
        let sim: Vec<Vec<f32>> = img
            .iter()
            .map(|a| {
                txt.iter()
                    .map(|b| a.iter().zip(b).map(|(x, y)| x * y).sum())
                    .collect()
            })
            .collect();
        let truth: Vec<usize> = queries.iter().map(|q| q.1).collect();
        Ok(crate::clip::retrieval(&sim, &truth, ks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_order_is_a_permutation_per_epoch_and_equals_a_fresh_draw() {
        let (seed, n, batch) = (3, 10, 4);
        let mut order = EpochOrder::default();
        let mut seen: Vec<usize> = Vec::new();
        // 10 steps of 4 over 10 items: four whole epochs, batches crossing epoch ends
        for step in 0..10 {
            let kept = order.indices(seed, step, batch, n);
            assert_eq!(kept, batch_indices(seed, step, batch, n), "step {step}");
            seen.extend(kept);
        }
        for (e, epoch) in seen.chunks(n).enumerate() {
            let mut sorted = epoch.to_vec();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "epoch {e}");
        }
        assert_ne!(seen[..n], seen[n..2 * n], "each epoch has its own order");
        // a dataset of another size is not served from the kept permutation,
        // even in the kept epoch (3)
        assert_eq!(order.indices(seed, 3, 3, 3), batch_indices(seed, 3, 3, 3));
    }
}
