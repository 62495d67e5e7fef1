//! `radfm finetune`: an image encoder and a 14-observation head trained on a
//! dataset's labels, fully or with LoRA, by the pretraining engine
//! (`radfm_model::pretrain::Run` with the `radfm_model::finetune` objective).
//!
//! - The frames come from the same on-disk cache as `pretrain`'s
//!   (`radfm_data::frames`), preprocessed as the encoder expects.
//! - Each frame of a labelled image of the train split is a training item.
//! - At every checkpoint the val split is scored (macro-AUROC over the
//!   observations with both classes there); the best weights are kept in
//!   `RUN/best/`, and they are what `RUN/model/` holds at the end.
//! - The test split's predictions go to `RUN/pred.jsonl`, made by the
//!   exported classifier directory itself, read back from disk.
//!
//! ```text
//! RUN/config.json     the resolved config (the engine's, objective "finetune")
//! RUN/params.json     trainable and total parameters, the adapted layers
//! RUN/metrics.jsonl   per step: step, loss, lr, grad_norm, images_per_s;
//!                     per evaluation: step, val_macro_auroc, val_images
//! RUN/checkpoints/    the two newest, with the optimizer (exact resume)
//! RUN/best/           the best weights so far and best.json
//! RUN/model/          the classifier directory (see crate::classifier)
//! RUN/pred.jsonl      the test split, in `radfm evaluate`'s format
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use indicatif::ProgressBar;
use radfm_core::observation::Observation;
use radfm_core::UncertainPolicy;
use radfm_data::frames::FrameStore;
use radfm_data::preprocess::Preprocess;
use radfm_data::reader::{Reader, Record};
use radfm_eval::metrics::OperatingPoint;
use radfm_model::finetune::{FineTune, FinetuneConfig, Method};
use radfm_model::lora::{self, LoraConfig};
use radfm_model::pretrain::{ImageSet, PretrainConfig, Run};
use radfm_model::train::{
    default_parts, load_params, named_params, save_safetensors, AdamWConfig, Schedule,
};
use radfm_model::vit::VitConfig;
use radfm_model::weights::Weights;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::classifier::{self, Classifier};
use crate::cli::{AugmentArg, Device, FinetuneArgs, MethodArg, PosWeightArg};

/// Where the encoder comes from.
struct Source {
    encoder: VitConfig,
    /// the checkpoint directory, None for a preset
    dir: Option<PathBuf>,
    prep: Preprocess,
    sha256: Option<String>,
}

fn source(a: &FinetuneArgs) -> anyhow::Result<Source> {
    let given = Path::new(&a.model);
    if given.is_dir() && a.depth.is_some() {
        bail!("--depth applies to presets: a --model checkpoint keeps its own depth");
    }
    if given.is_dir() {
        let dir = super::embed::model_dir(given);
        let (mut prep, config) = classifier::encoder_preprocessing(&dir)
            .with_context(|| format!("--model {}", a.model))?;
        let encoder = radfm_model::hf::image_encoder_config(&dir)?;
        if let Some(s) = a.image_size.filter(|s| *s != encoder.image_size) {
            eprintln!(
                "--model {}: training at its own {} px (--image-size {s} applies to presets)",
                a.model, encoder.image_size
            );
        }
        if config["model_type"] == "radfm_vit" && !dir.join("preprocessor_config.json").is_file() {
            // pretrain's steps, named as pretrain names them: the frame cache is shared
            prep = Preprocess::radfm(encoder.image_size, "radfm pretrain");
        }
        let sha256 = Some(classifier::weights_sha256(&dir)?);
        return Ok(Source {
            encoder,
            dir: Some(dir),
            prep,
            sha256,
        });
    }
    let size = a.image_size.unwrap_or(224);
    if !size.is_multiple_of(a.patch) {
        bail!(
            "--image-size {size} is not a multiple of --patch {}",
            a.patch
        );
    }
    let mut encoder = VitConfig::preset(&a.model, size, a.patch, 1).with_context(|| {
        format!(
            "--model {}: expected vit-tiny, vit-small, vit-base or a checkpoint directory",
            a.model
        )
    })?;
    if let Some(d) = a.depth {
        encoder.num_hidden_layers = d;
    }
    Ok(Source {
        encoder,
        dir: None,
        prep: Preprocess::radfm(size, "radfm pretrain"),
        sha256: None,
    })
}

/// An image's training targets: 14 labels then 14 mask values (1 = labelled 0/1).
/// A labelled image's unmentioned observation is negative, as in `probe`.
fn targets(labels: &BTreeMap<String, i8>, policy: UncertainPolicy) -> Vec<f32> {
    let k = Observation::ALL.len();
    let mut t = vec![0f32; 2 * k];
    for (j, o) in Observation::ALL.iter().enumerate() {
        if let Some(y) = radfm_adapt::probe::label_target(labels, o.as_str(), policy) {
            t[j] = f32::from(u8::from(y));
            t[k + j] = 1.0;
        }
    }
    t
}

/// Each record's labels: from `--labels` by id, or the dataset's weak labels.
fn record_labels(
    records: &[Record],
    truth: Option<&HashMap<String, BTreeMap<String, i8>>>,
) -> Vec<Option<BTreeMap<String, i8>>> {
    records
        .iter()
        .map(|r| match truth {
            Some(t) => t.get(&r.sop_uid).cloned(),
            None => r.labels.as_ref().map(|l| {
                l.iter()
                    .map(|(o, v)| (o.as_str().to_string(), *v))
                    .collect()
            }),
        })
        .collect()
}

/// The training items: frames (cache rows) with their targets.
struct TrainSet<'a> {
    store: &'a FrameStore,
    rows: Vec<usize>,
    targets: Vec<Vec<f32>>,
}

impl ImageSet for TrainSet<'_> {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn image(&self, i: usize, _rng: &mut ChaCha8Rng) -> Vec<f32> {
        read_row(self.store, self.rows[i])
    }
    fn paired(&self, i: usize) -> Option<&[f32]> {
        Some(&self.targets[i])
    }
}

fn read_row(store: &FrameStore, row: usize) -> Vec<f32> {
    // the cache was written and checked moments ago: a failed read is the disk failing
    store
        .row(row)
        .unwrap_or_else(|e| panic!("reading frame {row} from {}: {e}", store.path().display()))
}

/// The images of a split: (record, its rows in the cache), in record order.
fn images_of(store: &FrameStore, keep: impl Fn(usize) -> bool) -> Vec<(usize, Vec<usize>)> {
    let mut by: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (row, &(i, _)) in store.owners().iter().enumerate() {
        if keep(i) {
            by.entry(i).or_default().push(row);
        }
    }
    by.into_iter().collect()
}

/// How frames are batched for inference.
struct Batches<'a> {
    store: &'a FrameStore,
    /// channels, height, width of the encoder's input
    shape: [usize; 3],
    /// images per forward pass
    batch: usize,
    /// data-parallel parts of a pass
    parts: usize,
    dev: &'a burn::tensor::Device,
}

/// Mean embedding per image (its frames averaged), `b.batch` images at a time.
fn embed_images(
    images: &[(usize, Vec<usize>)],
    b: &Batches,
    embed: &dyn Fn(Tensor<4>, usize) -> anyhow::Result<Vec<Vec<f32>>>,
    pb: &ProgressBar,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let (store, batch, parts, dev) = (b.store, b.batch, b.parts, b.dev);
    let [c, h, w] = b.shape;
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch.max(1)) {
        let rows: Vec<usize> = chunk.iter().flat_map(|(_, r)| r.iter().copied()).collect();
        let mut flat = Vec::with_capacity(rows.len() * c * h * w);
        for &r in &rows {
            let v = read_row(store, r);
            if v.len() == h * w && c > 1 {
                for _ in 0..c {
                    flat.extend_from_slice(&v);
                }
            } else {
                flat.extend(v);
            }
        }
        let x = Tensor::<4>::from_data(TensorData::new(flat, [rows.len(), c, h, w]), dev);
        let e = embed(x, parts)?;
        let mut at = 0;
        for (_, r) in chunk {
            let d = e[at].len();
            let mut mean = vec![0f32; d];
            for f in &e[at..at + r.len()] {
                for (m, v) in mean.iter_mut().zip(f) {
                    *m += v / r.len() as f32;
                }
            }
            at += r.len();
            out.push(mean);
        }
        pb.inc(chunk.len() as u64);
    }
    Ok(out)
}

/// Per observation, the Youden operating point over the labelled rows
/// (targets: k labels, then k masks); none where they hold one class.
fn operating_points(scores: &[Vec<f64>], targets: &[Vec<f32>]) -> Vec<Option<OperatingPoint>> {
    let k = targets.first().map_or(0, |t| t.len() / 2);
    (0..k)
        .map(|j| {
            let (labels, s): (Vec<bool>, Vec<f64>) = targets
                .iter()
                .zip(scores)
                .filter(|(t, _)| t[k + j] > 0.5)
                .map(|(t, p)| (t[j] > 0.5, p[j]))
                .unzip();
            radfm_eval::metrics::Ranked::new(&labels, &s).youden()
        })
        .collect()
}

/// Macro-AUROC over the observations with both classes among the labelled
/// images, and how many observations that was.
fn macro_auroc(scores: &[Vec<f64>], targets: &[Vec<f32>]) -> (Option<f64>, usize) {
    let k = Observation::ALL.len();
    let mut sum = 0.0;
    let mut n = 0;
    for j in 0..k {
        let (mut labels, mut s) = (Vec::new(), Vec::new());
        for (sc, t) in scores.iter().zip(targets) {
            if t[k + j] > 0.5 {
                labels.push(t[j] > 0.5);
                s.push(sc[j]);
            }
        }
        if let Some(v) = radfm_eval::metrics::Ranked::new(&labels, &s).auroc().get() {
            sum += v;
            n += 1;
        }
    }
    ((n > 0).then(|| sum / n as f64), n)
}

/// The best evaluation so far (`RUN/best/best.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Best {
    step: u64,
    val_macro_auroc: f64,
    file: String,
}

fn read_best(out: &Path) -> Option<Best> {
    let text = std::fs::read_to_string(out.join("best").join("best.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Keep the model's weights as the best: `best/step-N.safetensors`, then
/// best.json naming it (so the pair is consistent at every moment), then the
/// older files go.
fn save_best(out: &Path, model: &FineTune, step: u64, auroc: f64) -> anyhow::Result<Best> {
    let dir = out.join("best");
    let file = format!("step-{step:08}.safetensors");
    save_safetensors(&dir.join(&file), &named_params(model))?;
    let best = Best {
        step,
        val_macro_auroc: auroc,
        file: file.clone(),
    };
    radfm_core::write_atomic(
        &dir.join("best.json"),
        serde_json::to_string_pretty(&best)?.as_bytes(),
    )?;
    for e in std::fs::read_dir(&dir)?.filter_map(|e| e.ok()) {
        let n = e.file_name().to_string_lossy().to_string();
        if n.ends_with(".safetensors") && n != file {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(best)
}

/// The evaluation lines of metrics.jsonl: step -> val macro-AUROC (None: undefined).
fn evaluations(out: &Path) -> BTreeMap<u64, Option<f64>> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("val_macro_auroc").is_some())
        .filter_map(|v| Some((v["step"].as_u64()?, v["val_macro_auroc"].as_f64())))
        .collect()
}

fn append_metric(out: &Path, v: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write;
    let p = out.join("metrics.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .with_context(|| format!("writing {}", p.display()))?;
    writeln!(f, "{v}").with_context(|| format!("writing {}", p.display()))?;
    Ok(())
}

/// How many blocks recompute their activations: `--recompute` (all: every
/// block), or by default a quarter of them (rounded up) with LoRA, whose
/// activations are most of its memory, and none with full fine-tuning.
pub(crate) fn recompute_blocks(flag: Option<usize>, method: Method, depth: usize) -> usize {
    match (flag, method) {
        (Some(n), _) => n.min(depth),
        (None, Method::Lora) => depth.div_ceil(4),
        (None, Method::Full) => 0,
    }
}

/// The flag that sets a field of the fine-tuning config (for --resume's check).
fn resume_flag(path: &str) -> &'static str {
    match path {
        "finetune.method" => "--method",
        "finetune.pos_weight" => "--pos-weight (or --labels, --uncertain)",
        "finetune.layer_decay" => "--layer-decay",
        "finetune.recompute" => "--recompute",
        p if p.starts_with("finetune.lora.targets") => "--targets",
        "finetune.lora.rank" => "--rank",
        "finetune.lora.alpha" => "--alpha",
        "finetune.lora.rslora" => "--rslora",
        "finetune.lora.dropout" => "--lora-dropout",
        p => super::pretrain::engine_flag(p),
    }
}

pub fn run(a: FinetuneArgs) -> anyhow::Result<()> {
    if let Some(j) = a.jobs {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(j)
            .build_global();
    }
    let method = match a.method {
        MethodArg::Full => Method::Full,
        MethodArg::Lora => Method::Lora,
    };
    if a.merge && method != Method::Lora {
        bail!("--merge applies to --method lora (a full fine-tune is already dense)");
    }
    if a.lora_dropout > 0.0 && method != Method::Lora {
        bail!("--lora-dropout applies to --method lora (use --drop-path to regularise a full fine-tune)");
    }
    if a.layer_decay.is_some() && method != Method::Full {
        bail!("--layer-decay applies to --method full (LoRA trains adapters and the head only)");
    }
    if !a.resume && a.out.join("config.json").exists() {
        bail!(
            "--out {} already holds a run: pass --resume to continue it, or choose another --out",
            a.out.display()
        );
    }
    let dev = radfm_model::device(a.device.as_str())?;
    let mut src = source(&a)?;
    src.encoder.drop_path_rate = a.drop_path;
    let lora_cfg = match method {
        Method::Lora => Some(LoraConfig {
            rank: a.rank,
            alpha: a.alpha,
            rslora: a.rslora,
            dropout: a.lora_dropout,
            targets: lora::resolve(&src.encoder, &a.targets)?
                .into_iter()
                .map(|s| s.path)
                .collect(),
        }),
        Method::Full => None,
    };

    // the dataset: labels, splits, frames
    let reader = Reader::open(&a.data)?;
    let records = reader.records();
    if records.is_empty() {
        bail!("{}: the dataset has no images", a.data.display());
    }
    if !records.iter().any(|r| r.split.is_some()) {
        bail!(
            "{}: the dataset has no splits; run `radfm split {}` first (fine-tuning trains on \
             train, selects on val and predicts test)",
            a.data.display(),
            a.data.display()
        );
    }
    let truth = a
        .labels
        .as_deref()
        .map(super::probe::read_truth)
        .transpose()?;
    let labels = record_labels(records, truth.as_ref());
    let split = |i: usize| records[i].split.as_deref().unwrap_or("");
    let is_image = |i: usize| records[i].kind == "image";
    let train_unlabelled = (0..records.len())
        .filter(|&i| is_image(i) && split(i) == "train" && labels[i].is_none())
        .count();
    if (0..records.len()).all(|i| !(is_image(i) && split(i) == "train" && labels[i].is_some())) {
        bail!(
            "{}: no image of the train split has labels for the observations ({}); {}",
            a.data.display(),
            train_unlabelled,
            match &a.labels {
                Some(p) => format!("{} has none of their ids", p.display()),
                None => "ingest the reports with --reports, or pass --labels TRUTH.jsonl".into(),
            }
        );
    }
    if train_unlabelled > 0 {
        eprintln!("{train_unlabelled} training images have no labels and are left out");
    }
    let (c, (h, w)) = (
        src.prep.channels,
        src.prep
            .output_size(src.encoder.image_size, src.encoder.image_size),
    );
    if (h, w) != (src.encoder.image_size, src.encoder.image_size) || c != src.encoder.num_channels {
        bail!(
            "the preprocessing gives {c}x{h}x{w}, the encoder takes {}x{}x{}",
            src.encoder.num_channels,
            src.encoder.image_size,
            src.encoder.image_size
        );
    }
    let t0 = std::time::Instant::now();
    let store = super::pretrain::open_frames(&a.data, &reader, &src.prep, c * h * w, a.quiet)?;
    let policy = a.uncertain;
    let target_of = |i: usize| targets(labels[i].as_ref().expect("labelled"), policy);
    let train_images = images_of(&store, |i| {
        is_image(i) && split(i) == "train" && labels[i].is_some()
    });
    let val_images = images_of(&store, |i| {
        is_image(i) && split(i) == "val" && labels[i].is_some()
    });
    let test_images = images_of(&store, |i| is_image(i) && split(i) == "test");
    let mut train = TrainSet {
        store: &store,
        rows: Vec::new(),
        targets: Vec::new(),
    };
    for (i, rows) in &train_images {
        let t = target_of(*i);
        for &r in rows {
            train.rows.push(r);
            train.targets.push(t.clone());
        }
    }
    if train.rows.is_empty() {
        bail!("{}: no training image could be read", a.data.display());
    }
    let k = Observation::ALL.len();
    let mut counts = vec![(0usize, 0usize); k];
    for t in &train.targets {
        for (j, n) in counts.iter_mut().enumerate() {
            if t[k + j] > 0.5 {
                if t[j] > 0.5 {
                    n.0 += 1
                } else {
                    n.1 += 1
                }
            }
        }
    }
    for (j, (p, n)) in counts.iter().enumerate() {
        if *p == 0 {
            eprintln!(
                "{}: no positive among {n} labelled training frames; its head learns negatives only",
                Observation::ALL[j].as_str()
            );
        }
    }
    let pos_weight = match a.pos_weight {
        PosWeightArg::None => None,
        PosWeightArg::Balanced => Some(
            counts
                .iter()
                .map(|&(p, n)| {
                    if p == 0 {
                        1.0
                    } else {
                        (n as f64 / p as f64).clamp(1.0, 100.0)
                    }
                })
                .collect(),
        ),
    };
    eprintln!(
        "{} training frames ({} images), {} val and {} test images, {}x{} px, ready in {:.1} s",
        train.rows.len(),
        train_images.len(),
        val_images.len(),
        test_images.len(),
        w,
        h,
        t0.elapsed().as_secs_f64()
    );
    if val_images.is_empty() {
        eprintln!("no labelled val images: no selection, the final weights are exported");
    }

    // the run
    let parts = match a.parts {
        Some(p) => p,
        None if a.device == Device::Cpu => default_parts(a.batch),
        None => 1,
    };
    let per_epoch = train.rows.len().div_ceil(a.batch) as u64;
    let steps = a.steps.unwrap_or(a.epochs.unwrap_or(3) * per_epoch);
    let lr = a.lr.unwrap_or(match method {
        Method::Full => 1e-4,
        Method::Lora => 1e-3,
    });
    let config = PretrainConfig {
        objective: "finetune".into(),
        mae: None,
        clip: None,
        finetune: Some(FinetuneConfig {
            encoder: src.encoder.clone(),
            method,
            lora: lora_cfg.clone(),
            observations: Observation::ALL
                .iter()
                .map(|o| o.as_str().to_string())
                .collect(),
            pos_weight,
            layer_decay: a.layer_decay,
            recompute: recompute_blocks(a.recompute, method, src.encoder.num_hidden_layers),
        }),
        augment: radfm_model::augment::Augment::named(match a.augment {
            AugmentArg::Standard => "standard",
            AugmentArg::None => "none",
        })
        .expect("known augmentation"),
        init: src.dir.as_ref().map(|d| d.display().to_string()),
        accumulate: 1,
        parts,
        batch: a.batch,
        steps,
        schedule: Schedule {
            lr,
            min_lr: lr * 0.01,
            warmup_steps: a.warmup.unwrap_or((steps / 20).max(1)),
            total_steps: steps,
        },
        adamw: AdamWConfig {
            weight_decay: a.weight_decay.unwrap_or(match method {
                Method::Full => 0.05,
                Method::Lora => 0.0,
            }),
            ..AdamWConfig::default()
        },
        seed: a.seed,
        checkpoint_every: a.checkpoint_every,
        images: train.rows.len(),
    };
    if a.resume {
        let ignored = |p: &str| {
            matches!(
                p,
                "steps" | "schedule.total_steps" | "checkpoint_every" | "images"
            ) || (p == "schedule.warmup_steps" && a.warmup.is_none())
                || (p == "parts" && a.parts.is_none())
        };
        super::pretrain::check_resume_config(&a.out, &config, &ignored, &resume_flag)?;
    }
    let mut run = Run::<FineTune>::open(config.clone(), &a.out, a.resume, &dev)?;
    run.set_parts_in_flight(a.parts_in_flight);
    let (trainable, total) = lora::count_params(run.model());
    let adapted = lora::adapted_paths(run.model());
    eprintln!(
        "{}: {trainable} trainable parameters of {total} ({:.2}%){}",
        match method {
            Method::Full => "full fine-tuning",
            Method::Lora => "LoRA",
        },
        100.0 * trainable as f64 / total as f64,
        if adapted.is_empty() {
            String::new()
        } else {
            format!("; {} adapted layers", adapted.len())
        }
    );
    let recompute = config.finetune.as_ref().map_or(0, |f| f.recompute);
    if recompute > 0 {
        eprintln!(
            "recomputing the activations of {recompute} of {} blocks in the backward pass (--recompute)",
            src.encoder.num_hidden_layers
        );
    }
    let params = json!({"trainable": trainable, "total": total, "method": method,
        "adapted": adapted, "head": format!("{} x {}", src.encoder.hidden_size, k)});
    radfm_core::write_atomic(
        &a.out.join("params.json"),
        serde_json::to_string_pretty(&params)?.as_bytes(),
    )?;

    let shape = [c, h, w];
    let infer_parts = if a.device == Device::Cpu {
        default_parts(64)
    } else {
        1
    };
    let batches = Batches {
        store: &store,
        shape,
        batch: 64,
        parts: infer_parts,
        dev: &dev,
    };
    let val_targets: Vec<Vec<f32>> = val_images.iter().map(|(i, _)| target_of(*i)).collect();
    let val_scores = |model: &FineTune| -> anyhow::Result<Vec<Vec<f64>>> {
        let head = |x: Tensor<4>, parts: usize| -> anyhow::Result<Vec<Vec<f32>>> {
            let p = model.probabilities(x, parts)?;
            let v: Vec<f32> = p
                .into_data()
                .try_to_vec()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            Ok(v.chunks_exact(k).map(<[f32]>::to_vec).collect())
        };
        let probs = embed_images(&val_images, &batches, &head, &ProgressBar::hidden())?;
        Ok(probs
            .iter()
            .map(|p| p.iter().map(|v| f64::from(*v)).collect())
            .collect())
    };
    let evaluate = |run: &Run<FineTune>| -> anyhow::Result<(Option<f64>, usize)> {
        let scores = val_scores(&run.model().valid())?;
        Ok(macro_auroc(&scores, &val_targets))
    };
    let mut best = read_best(&a.out);
    let mut since_best = 0usize;
    let record =
        |run: &Run<FineTune>, best: &mut Option<Best>, since: &mut usize| -> anyhow::Result<()> {
            if val_images.is_empty() {
                return Ok(());
            }
            let step = run.opt.step;
            let (auroc, n) = evaluate(run)?;
            if let Some(v) = auroc {
                if best.as_ref().is_none_or(|b| v > b.val_macro_auroc) {
                    *best = Some(save_best(&a.out, run.model(), step, v)?);
                    *since = 0;
                } else {
                    *since += 1;
                }
            } else {
                *since += 1;
            }
            append_metric(
                &a.out,
                &json!({"step": step, "val_macro_auroc": auroc, "val_images": val_images.len(),
                    "val_observations": n}),
            )?;
            if !a.quiet {
                eprintln!(
                    "step {step}: val macro-AUROC {} over {n} observations{}",
                    auroc.map_or("undefined".into(), |v| format!("{v:.4}")),
                    match best {
                        Some(b) => format!(" (best {:.4} at step {})", b.val_macro_auroc, b.step),
                        None => String::new(),
                    }
                );
            }
            Ok(())
        };
    let start = run.opt.step;
    if a.resume {
        eprintln!("resuming {} at step {start} of {steps}", a.out.display());
        // the evaluations since the best, and one the interruption may have cut short
        let evals = evaluations(&a.out);
        if let Some(b) = &best {
            since_best = evals.range(b.step + 1..).count();
        }
        let due = start > 0 && (start % config.checkpoint_every == 0 || start == steps);
        if due && !evals.contains_key(&start) {
            record(&run, &mut best, &mut since_best)?;
        }
    }
    let pb = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(steps)
    };
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} steps  {msg}  ETA {eta}",
        )
        .expect("valid template"),
    );
    pb.set_position(start);
    while run.opt.step < steps {
        if a.patience.is_some_and(|p| since_best >= p) {
            pb.suspend(|| {
                eprintln!(
                    "stopping early at step {}: {since_best} evaluations without a better val macro-AUROC",
                    run.opt.step
                )
            });
            break;
        }
        let log = run.step(&train)?;
        pb.set_position(log.step);
        pb.set_message(format!(
            "loss {:.4}  lr {:.2e}  {:.1} img/s",
            log.loss, log.lr, log.images_per_s
        ));
        if log.step % config.checkpoint_every == 0 || log.step == steps {
            pb.suspend(|| record(&run, &mut best, &mut since_best))?;
        }
    }
    pb.finish_and_clear();
    run.checkpoint()?;

    // the selected weights, exported and read back to predict the test split
    let mut model = run.model().valid();
    if let Some(b) = &best {
        let mut wts = Weights::open(&a.out.join("best").join(&b.file))?;
        model = load_params(model, &mut wts, &dev)?;
        eprintln!(
            "selected step {} (val macro-AUROC {:.4})",
            b.step, b.val_macro_auroc
        );
    }
    // per observation, the operating point of the selected weights on val
    let points: Vec<Option<OperatingPoint>> = if val_images.is_empty() {
        vec![None; k]
    } else {
        let scores = val_scores(&model)?;
        operating_points(&scores, &val_targets)
    };
    let model_dir = a.out.join("model");
    export(
        &model_dir,
        &model,
        &points,
        &src,
        lora_cfg.as_ref(),
        a.merge,
        best.as_ref(),
        &a,
        &config,
    )?;
    let clf = Classifier::open(&model_dir, &dev)
        .with_context(|| format!("reading back {}", model_dir.display()))?;
    if classifier::steps(&clf.prep.describe()) != classifier::steps(&src.prep.describe()) {
        bail!(
            "{}: reads back with another preprocessing than it trained with",
            model_dir.display()
        );
    }
    eprintln!(
        "classifier ({} observations, {}) -> {}",
        clf.observations.len(),
        if clf.meta["adapter"].is_string() {
            "PEFT adapter over its base"
        } else {
            "dense encoder"
        },
        model_dir.display()
    );
    if test_images.is_empty() {
        eprintln!("no test split: RUN/pred.jsonl not written");
    } else {
        let pb = if a.quiet {
            ProgressBar::hidden()
        } else {
            crate::progress::bar(test_images.len() as u64, "test images")
        };
        let emb = |x: Tensor<4>, parts: usize| clf.embed(x, parts);
        let e = embed_images(&test_images, &batches, &emb, &pb)?;
        pb.finish_and_clear();
        let mut lines = String::new();
        for ((i, _), e) in test_images.iter().zip(&e) {
            let scores: BTreeMap<&str, f64> = clf
                .observations
                .iter()
                .map(String::as_str)
                .zip(clf.scores(e))
                .collect();
            lines.push_str(&json!({"id": records[*i].sop_uid, "scores": scores}).to_string());
            lines.push('\n');
        }
        let p = a.out.join("pred.jsonl");
        radfm_core::write_atomic(&p, lines.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("{} test predictions -> {}", test_images.len(), p.display());
    }
    eprintln!(
        "done in {:.1} s -> {}",
        t0.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

/// `RUN/model/`: classifier.json with the head, and the encoder (full, or
/// merged) in `encoder/` or the PEFT adapter in `adapter/` with the base's
/// path and checksum. Written beside and renamed into place.
#[allow(clippy::too_many_arguments)]
fn export(
    dir: &Path,
    model: &FineTune,
    points: &[Option<OperatingPoint>],
    src: &Source,
    lora_cfg: Option<&LoraConfig>,
    merge: bool,
    best: Option<&Best>,
    a: &FinetuneArgs,
    config: &PretrainConfig,
) -> anyhow::Result<()> {
    let tmp = classifier::stage(dir)?;
    let base_path = src.dir.as_ref().map(|d| {
        d.canonicalize()
            .unwrap_or_else(|_| d.clone())
            .display()
            .to_string()
    });
    let write_encoder = |vit: &radfm_model::vit::Vit| -> anyhow::Result<()> {
        let enc = tmp.join("encoder");
        save_safetensors(&enc.join("model.safetensors"), &named_params(vit))?;
        let mut cfg =
            json!({"model_type": "radfm_vit", "vit": vit.config, "objective": "finetune"});
        if let Some(d) = &src.dir {
            cfg["finetuned_from"] = json!(base_path);
            // a Hugging Face base's processor config travels with the encoder
            let pp = d.join("preprocessor_config.json");
            if pp.is_file() {
                std::fs::copy(&pp, enc.join("preprocessor_config.json"))?;
            }
        }
        radfm_core::write_atomic(
            &enc.join("config.json"),
            serde_json::to_string_pretty(&cfg)?.as_bytes(),
        )?;
        Ok(())
    };
    let mut meta = json!({
        "format": classifier::FORMAT,
        "kind": "finetune",
        "method": config.finetune.as_ref().map(|f| f.method),
        "preprocessing": src.prep.describe(),
        "pooling": "pooled",
        "frames": "a multi-frame image's embedding is the mean of its frames' embeddings",
        "embedding_dim": src.encoder.hidden_size,
        "labels": match &a.labels { Some(_) => "--labels file", None => "weak labels" },
        "uncertain": a.uncertain.as_str(),
        "selected": best.map(|b| json!({"step": b.step, "val_macro_auroc": b.val_macro_auroc})),
        "base": src.dir.as_ref().map(|_| json!({"path": base_path, "sha256": src.sha256})),
        "radfm_version": env!("CARGO_PKG_VERSION"),
    });
    match lora_cfg {
        None => {
            write_encoder(&model.encoder)?;
            meta["encoder"] = json!("encoder/");
        }
        Some(l) => {
            let (name, sha) = match (&base_path, &src.sha256) {
                (Some(p), Some(s)) => (p.clone(), s.clone()),
                // a preset's random base lives only in this run: merge to keep it
                _ => (
                    format!("{} (random initialisation, seed {})", a.model, a.seed),
                    String::new(),
                ),
            };
            lora::write_peft(&tmp.join("adapter"), &model.encoder, l, &name, &sha)?;
            meta["adapter"] = json!("adapter/");
            meta["lora"] = json!({"rank": l.rank, "alpha": l.alpha, "rslora": l.rslora,
                "scale": l.scale(), "targets": l.targets.len()});
            if merge || src.dir.is_none() {
                if src.dir.is_none() && !merge {
                    eprintln!("a preset's random base exists only in this run: the merged encoder is written too");
                }
                write_encoder(&model.encoder.clone().materialize())?;
                meta["encoder"] = json!("encoder/");
            }
        }
    }
    let (weights, biases) = model.head_arrays();
    let mut heads = serde_json::Map::new();
    for (((o, w), b), op) in model
        .config
        .observations
        .iter()
        .zip(weights)
        .zip(biases)
        .zip(points)
    {
        heads.insert(
            o.clone(),
            json!({"coef": w, "intercept": b,
                "operating_point": classifier::operating_point_json(op.as_ref(), "val split")}),
        );
    }
    meta["observations"] = serde_json::Value::Object(heads);
    classifier::commit(&tmp, dir, &meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_mask_uncertain_by_policy_and_unmentioned_are_negative() {
        let labels: BTreeMap<String, i8> =
            [("Edema".to_string(), 1), ("Atelectasis".to_string(), -1)].into();
        let k = Observation::ALL.len();
        let j = |name: &str| {
            Observation::ALL
                .iter()
                .position(|o| o.as_str() == name)
                .unwrap()
        };
        let t = targets(&labels, UncertainPolicy::Exclude);
        assert_eq!((t[j("Edema")], t[k + j("Edema")]), (1.0, 1.0));
        assert_eq!(t[k + j("Atelectasis")], 0.0);
        assert_eq!((t[j("Pneumonia")], t[k + j("Pneumonia")]), (0.0, 1.0));
        let t = targets(&labels, UncertainPolicy::Ones);
        assert_eq!((t[j("Atelectasis")], t[k + j("Atelectasis")]), (1.0, 1.0));
    }

    #[test]
    fn macro_auroc_skips_one_class_observations() {
        let k = Observation::ALL.len();
        let mut t = vec![vec![0f32; 2 * k]; 4];
        // observation 0: labelled both ways, perfectly ranked; the rest all negative
        for (i, row) in t.iter_mut().enumerate() {
            row[0] = f32::from(u8::from(i >= 2));
            for m in &mut row[k..] {
                *m = 1.0;
            }
        }
        let s: Vec<Vec<f64>> = (0..4).map(|i| vec![i as f64; k]).collect();
        assert_eq!(macro_auroc(&s, &t), (Some(1.0), 1));
    }
}
