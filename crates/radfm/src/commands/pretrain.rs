//! `radfm pretrain`: every frame of the dataset at the training resolution
//! (streamed once through `radfm_data::reader` into the on-disk frame cache,
//! `radfm_data::frames`), then the objective with checkpoints and exact
//! resume. Memory does not grow with the dataset.
//!
//! - `mae`: every image is a training item.
//! - `clip`: every study with a report is an item; its views are its images
//!   and its text is FINDINGS plus IMPRESSION of the report, scrubbed, embedded
//!   once by the frozen `--text-model`. Patients are held out for an
//!   image-to-report retrieval check at the end (`RUN/retrieval.json`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use radfm_core::npy::Npy;
use radfm_data::frames::FrameStore;
use radfm_data::preprocess::Preprocess;
use radfm_data::reader::Reader;
use radfm_model::augment::Augment;
use radfm_model::clip::{ClipTrain, ClipTrainConfig};
use radfm_model::mae::{Mae, MaeConfig};
use radfm_model::pretrain::{ImageSet, Objective, PretrainConfig, Run};
use radfm_model::text::{Pooling, TextEncoder};
use radfm_model::train::{default_parts, AdamWConfig, Schedule};
use radfm_model::vit::VitConfig;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::cli::{Device, ObjectiveArg, PretrainArgs};

/// The dataset's frames at the training resolution, normalised to mean 0.5 /
/// sd 0.25 of the display range (`Preprocess::radfm`), kept on disk by
/// `radfm_data::frames` and read back row by row; each image's rows by key.
struct Images {
    store: FrameStore,
    by_key: HashMap<String, Vec<usize>>,
    /// by record: whether it is in the train split; none without splits
    train: Option<Vec<bool>>,
}

impl Images {
    fn get(&self, row: usize) -> Vec<f32> {
        // the cache was written and measured moments ago: a failed read is the
        // disk failing, not bad input
        self.store.row(row).unwrap_or_else(|e| {
            panic!(
                "reading frame {row} from {}: {e}",
                self.store.path().display()
            )
        })
    }
}

/// MAE items: one per frame (its row), of the `train` split when the
/// dataset has splits.
struct AllImages {
    images: Images,
    rows: Vec<usize>,
}

impl ImageSet for AllImages {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn image(&self, i: usize, _rng: &mut ChaCha8Rng) -> Vec<f32> {
        self.images.get(self.rows[i])
    }
}

/// CLIP items: a study's views (indices into the images) and its report.
struct Studies<'a> {
    images: &'a Images,
    views: Vec<Vec<usize>>,
    texts: Vec<Vec<f32>>,
}

impl ImageSet for Studies<'_> {
    fn len(&self) -> usize {
        self.views.len()
    }
    fn image(&self, i: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        let v = &self.views[i];
        self.images.get(v[rng.gen_range(0..v.len())])
    }
    fn paired(&self, i: usize) -> Option<&[f32]> {
        Some(&self.texts[i])
    }
}

/// The dataset's frames preprocessed by `prep` into `row_len`-value rows, from
/// the frame cache or built into it now with a progress bar; unreadable images
/// are logged by key and left out.
pub(crate) fn open_frames(
    dataset: &Path,
    reader: &Reader,
    prep: &Preprocess,
    row_len: usize,
    quiet: bool,
) -> anyhow::Result<FrameStore> {
    let records = reader.records();
    let pb = if quiet {
        ProgressBar::hidden()
    } else {
        crate::progress::bar(records.len() as u64, "images")
    };
    let store = FrameStore::open(dataset, reader, prep, row_len, 64, &mut |n| {
        pb.inc(n as u64)
    })?;
    pb.finish_and_clear();
    for (i, why) in store.skipped() {
        tracing::warn!("image {}: {why}; left out", records[*i].key);
    }
    if !store.skipped().is_empty() {
        eprintln!(
            "{} images could not be read and are left out (see warnings)",
            store.skipped().len()
        );
    }
    Ok(store)
}

/// Every frame of every image in the dataset (the reader's order), from the
/// frame cache or preprocessed into it now.
fn load_images(dataset: &Path, size: usize, quiet: bool) -> anyhow::Result<Images> {
    let reader = Reader::open(dataset)?;
    let records = reader.records();
    if records.is_empty() {
        bail!("{}: the dataset has no images", dataset.display());
    }
    let prep = Preprocess::radfm(size, "radfm pretrain");
    let store = open_frames(dataset, &reader, &prep, size * size, quiet)?;
    if store.is_empty() {
        bail!(
            "{}: no image of the dataset could be read",
            dataset.display()
        );
    }
    if store.reused() {
        eprintln!("frames read from {}", store.path().display());
    }
    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    for (row, &(i, _)) in store.owners().iter().enumerate() {
        by_key.entry(records[i].key.clone()).or_default().push(row);
    }
    let train = records.iter().any(|r| r.split.is_some()).then(|| {
        records
            .iter()
            .map(|r| r.split.as_deref() == Some("train"))
            .collect()
    });
    Ok(Images {
        store,
        by_key,
        train,
    })
}

/// The text a study contributes: FINDINGS plus IMPRESSION (the whole report
/// when it has neither), scrubbed again for anything ingest let through.
pub(crate) fn report_text(report: &str) -> String {
    let sections = radfm_report::sections::split(report);
    let mut text = radfm_report::sections::select(&sections, &["findings", "impression"]);
    if text.trim().is_empty() {
        text = report.to_string();
    }
    radfm_report::scrub::scrub(&text, &Default::default()).0
}

/// CLIP's training and held-out studies: (views, report text) each.
struct ClipData {
    train: Vec<(Vec<usize>, String)>,
    held_out: Vec<(Vec<usize>, String)>,
    held_out_name: String,
}

fn clip_data(dataset: &Path, images: &Images, holdout: f64) -> anyhow::Result<ClipData> {
    if !(0.0..1.0).contains(&holdout) {
        bail!("--holdout {holdout}: expected a fraction in [0, 1)");
    }
    let catalog = radfm_data::catalog::Catalog::open(dataset)?;
    let rows = catalog
        .image_reports()
        .with_context(|| format!("{}: reading the catalog", dataset.display()))?;
    let with_splits = rows.iter().any(|r| r.split.is_some());
    let held_split = if rows.iter().any(|r| r.split.as_deref() == Some("val")) {
        "val"
    } else {
        "test"
    };
    // study -> (patient's split role, views, report)
    let mut studies: BTreeMap<String, (Option<bool>, Vec<usize>, String)> = BTreeMap::new();
    let (mut no_report, mut not_in_shards) = (0usize, 0usize);
    for r in &rows {
        let Some(report) = &r.report else {
            no_report += 1;
            continue;
        };
        let Some(frames) = images.by_key.get(&r.key) else {
            not_in_shards += 1;
            continue;
        };
        let role = if with_splits {
            match r.split.as_deref() {
                Some("train") => Some(false),
                Some(s) if s == held_split => Some(true),
                _ => None,
            }
        } else {
            // a stable number in [0, 1) per patient (FNV-1a of the key), so that
            // the held-out patients do not depend on the training seed
            Some(radfm_core::seed::unit_interval(r.patient_key.as_bytes()) < holdout)
        };
        let e = studies
            .entry(r.study_uid.clone())
            .or_insert_with(|| (role, Vec::new(), report.clone()));
        e.1.extend(frames);
    }
    if no_report > 0 {
        eprintln!("{no_report} images have no report and are left out");
    }
    if not_in_shards > 0 {
        eprintln!("{not_in_shards} catalogued images could not be read and are left out");
    }
    let mut d = ClipData {
        train: Vec::new(),
        held_out: Vec::new(),
        held_out_name: if with_splits {
            format!("split {held_split}")
        } else {
            format!("{:.0}% of patients by key hash", holdout * 100.0)
        },
    };
    for (_, (role, views, report)) in studies {
        match role {
            Some(false) => d.train.push((views, report_text(&report))),
            Some(true) => d.held_out.push((views, report_text(&report))),
            None => {}
        }
    }
    if d.train.is_empty() {
        bail!(
            "{}: no study with a report in the training patients (was ingest given --reports?)",
            dataset.display()
        );
    }
    Ok(d)
}

/// The frozen text tower's (mean-pooled, normalised) embeddings of `texts`.
/// They are cached in `DATASET/.cache/`, keyed by the text model (its config
/// and weight files' sizes) and every text, so resumed and repeated runs on
/// the same dataset skip the text tower.
fn embed_reports(
    dataset: &Path,
    text_dir: &Path,
    dev: &burn::tensor::Device,
    texts: &[&str],
    quiet: bool,
) -> anyhow::Result<(Vec<Vec<f32>>, usize)> {
    let cfg = std::fs::read(text_dir.join("config.json"))
        .with_context(|| format!("--text-model {}: no config.json", text_dir.display()))?;
    let mut sizes = Vec::new();
    for f in ["model.safetensors", "tokenizer.json", "vocab.txt"] {
        let n = std::fs::metadata(text_dir.join(f)).map_or(0, |m| m.len());
        sizes.extend(n.to_le_bytes());
    }
    let mut parts: Vec<&[u8]> = vec![b"radfm report embeddings v1 mean normalized", &cfg, &sizes];
    parts.extend(texts.iter().map(|t| t.as_bytes()));
    let cache = dataset.join(".cache").join(format!(
        "report-embeddings-{:016x}.npy",
        radfm_core::seed::fnv1a_parts(&parts)
    ));
    if let Ok(bytes) = std::fs::read(&cache) {
        if let Ok(n) = Npy::read(&bytes[..]) {
            if n.shape.len() == 2 && n.shape[0] == texts.len() {
                let d = n.shape[1];
                let v: Vec<f32> = n.to_f32();
                return Ok((v.chunks_exact(d).map(<[f32]>::to_vec).collect(), d));
            }
        }
        eprintln!("{}: unreadable cache, recomputing", cache.display());
    }
    let enc = TextEncoder::open(text_dir, dev)
        .with_context(|| format!("--text-model {}", text_dir.display()))?;
    let d = enc.bert.config.hidden_size;
    let pb = if quiet {
        ProgressBar::hidden()
    } else {
        crate::progress::bar(texts.len() as u64, "reports")
    };
    // batches of similar length waste little on padding
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].len());
    let mut out = vec![Vec::new(); texts.len()];
    // several batches of 64 per call: they are encoded at once, one per core
    let cores = std::thread::available_parallelism().map_or(1, |p| p.get());
    for chunk in order.chunks(64 * cores) {
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
        for (&i, e) in chunk
            .iter()
            .zip(enc.embed(&batch, Pooling::Mean, true, 64)?)
        {
            out[i] = e;
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    let flat: Vec<f32> = out.concat();
    if let Some(dir) = cache.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    radfm_core::write_atomic(
        &cache,
        &radfm_core::npy::f32_bytes(&[texts.len(), d], &flat),
    )
    .with_context(|| format!("writing {}", cache.display()))?;
    Ok((out, d))
}

pub fn run(a: PretrainArgs) -> anyhow::Result<()> {
    let augment = Augment::named(a.augment.as_str()).expect("every --augment value is known");
    let text_model = match (a.objective, &a.text_model) {
        (ObjectiveArg::Clip, None) => bail!(
            "--objective clip needs --text-model DIR (a BertModel directory with tokenizer.json, e.g. all-MiniLM-L6-v2)"
        ),
        (ObjectiveArg::Clip, Some(d)) => Some(d.clone()),
        (ObjectiveArg::Mae, _) => None,
    };
    if let Some(j) = a.jobs {
        // only the first call sets the global pool; later ones are harmless
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(j)
            .build_global();
    }
    let dev = radfm_model::device(a.device.as_str())?;
    // a preset, or a checkpoint directory whose encoder the run starts from
    let init = Path::new(&a.model).is_dir().then(|| a.model.clone());
    let mut enc = match &init {
        Some(dir) => {
            // the weights are read when the run starts (and checked there)
            let c = radfm_model::hf::image_encoder_config(Path::new(dir))
                .with_context(|| format!("--model {dir}"))?;
            if (c.image_size, c.patch_size) != (a.image_size, a.patch) {
                eprintln!(
                    "--model {dir}: training at its own {} px with patch {} (--image-size and --patch are ignored)",
                    c.image_size, c.patch_size
                );
            }
            c
        }
        None if a.image_size % a.patch != 0 => bail!(
            "--image-size {} is not a multiple of --patch {}",
            a.image_size,
            a.patch
        ),
        None => VitConfig::preset(&a.model, a.image_size, a.patch, 1).with_context(|| {
            format!(
                "--model {}: expected vit-tiny, vit-small, vit-base or a checkpoint directory",
                a.model
            )
        })?,
    };
    let image_size = enc.image_size;
    if let Some(d) = a.depth {
        if init.is_some() && d != enc.num_hidden_layers {
            bail!("--depth cannot change the depth of a --model checkpoint");
        }
        enc.num_hidden_layers = d;
    }
    let parts = match a.parts {
        Some(p) => p,
        // the parts share the CPU's cores; a GPU runs one batch at a time anyway
        None if a.device == Device::Cpu => default_parts(a.batch),
        None => 1,
    };
    enc.drop_path_rate = a.drop_path;
    let schedule = |items: usize| -> (u64, Schedule) {
        let per_epoch = items.div_ceil(a.batch * a.accumulate) as u64;
        let steps = a.steps.unwrap_or(a.epochs.unwrap_or(1) * per_epoch);
        (
            steps,
            Schedule {
                lr: a.lr,
                min_lr: a.lr * 0.01,
                warmup_steps: a.warmup.unwrap_or((steps / 20).max(1)),
                total_steps: steps,
            },
        )
    };
    let base = |items: usize| -> PretrainConfig {
        let (steps, schedule) = schedule(items);
        PretrainConfig {
            objective: a.objective.as_str().to_string(),
            mae: None,
            clip: None,
            finetune: None,
            augment: augment.clone(),
            init: init.clone(),
            accumulate: a.accumulate,
            parts,
            batch: a.batch,
            steps,
            schedule,
            adamw: AdamWConfig {
                weight_decay: a.weight_decay,
                ..AdamWConfig::default()
            },
            seed: a.seed,
            checkpoint_every: a.checkpoint_every,
            images: items,
        }
    };

    let clip_config = |text_dim: usize| {
        text_model.as_ref().map(|dir| ClipTrainConfig {
            encoder: enc.clone(),
            text_dim,
            projection_dim: a.projection_dim,
            init_temperature: 0.07,
            text_model: dir.display().to_string(),
        })
    };
    // a resumed run must be the run that was started: compare before any work
    if !a.resume && a.out.join("config.json").exists() {
        bail!(
            "--out {} already holds a run: pass --resume to continue it, or choose another --out",
            a.out.display()
        );
    }
    if a.resume {
        let mut draft = base(0);
        draft.clip = clip_config(0);
        if draft.clip.is_none() {
            draft.mae = Some(MaeConfig {
                norm_pix_loss: a.norm_pix_loss,
                ..MaeConfig::new(enc.clone())
            });
        }
        check_resume(&a, &draft)?;
    }
    let t0 = std::time::Instant::now();
    let images = load_images(&a.data, image_size, a.quiet)?;
    eprintln!(
        "{} frames at {}x{} px ready in {:.1} s",
        images.store.len(),
        image_size,
        image_size,
        t0.elapsed().as_secs_f64()
    );

    if let Some(text_dir) = &text_model {
        let d = clip_data(&a.data, &images, a.holdout)?;
        eprintln!(
            "{} training studies, {} held out ({}); embedding their reports with {}",
            d.train.len(),
            d.held_out.len(),
            d.held_out_name,
            text_dir.display()
        );
        let t1 = std::time::Instant::now();
        let texts: Vec<&str> = d
            .train
            .iter()
            .chain(&d.held_out)
            .map(|s| s.1.as_str())
            .collect();
        let (mut feats, text_dim) = embed_reports(&a.data, text_dir, &dev, &texts, a.quiet)?;
        let held_feats = feats.split_off(d.train.len());
        eprintln!(
            "{} report embeddings ready in {:.1} s",
            texts.len(),
            t1.elapsed().as_secs_f64()
        );
        let mut config = base(d.train.len());
        config.clip = clip_config(text_dim);
        let train = Studies {
            images: &images,
            views: d.train.iter().map(|s| s.0.clone()).collect(),
            texts: feats,
        };
        let run = train_loop::<ClipTrain>(config, &a, &dev, &train)?;
        if d.held_out.is_empty() {
            eprintln!("no held-out studies: retrieval not measured");
        } else {
            let queries: Vec<(Vec<f32>, usize)> = d
                .held_out
                .iter()
                .enumerate()
                .flat_map(|(s, (views, _))| views.iter().map(move |&v| (s, v)))
                .map(|(s, v)| (images.get(v), s))
                .collect();
            let r = run.retrieval(&queries, &held_feats, &[1, 5, 10])?;
            let path = a.out.join("retrieval.json");
            let mut v = serde_json::to_value(&r)?;
            v["held_out"] = serde_json::json!(d.held_out_name);
            v["step"] = serde_json::json!(run.opt.step);
            radfm_core::write_atomic(&path, serde_json::to_string_pretty(&v)?.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            for (k, rec, chance) in &r.recall {
                eprintln!(
                    "held-out image-to-report recall@{k}: {rec:.3} (chance {chance:.3}, {:.1}x)",
                    rec / chance
                );
            }
            eprintln!(
                "{} query images against {} reports, median rank {:.1}: {}",
                r.queries,
                r.candidates,
                r.median_rank,
                path.display()
            );
        }
    } else {
        let rows: Vec<usize> = match &images.train {
            Some(train) => (0..images.store.len())
                .filter(|&r| train[images.store.owner(r).0])
                .collect(),
            None => (0..images.store.len()).collect(),
        };
        if rows.is_empty() {
            bail!("{}: no image in the train split", a.data.display());
        }
        if images.train.is_some() {
            eprintln!(
                "the dataset has splits: MAE trains on the {} frames of the train split",
                rows.len()
            );
        }
        let data = AllImages { images, rows };
        let mut config = base(data.len());
        config.mae = Some(MaeConfig {
            norm_pix_loss: a.norm_pix_loss,
            ..MaeConfig::new(enc.clone())
        });
        let run = train_loop::<Mae>(config, &a, &dev, &data)?;
        let png = run.save_reconstructions(&data)?;
        eprintln!("reconstructions of masked images: {}", png.display());
    }
    eprintln!(
        "done in {:.1} s -> {}",
        t0.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

/// Open (or resume) the run and step it to the end, with a progress bar.
fn train_loop<M: Objective>(
    config: PretrainConfig,
    a: &PretrainArgs,
    dev: &burn::tensor::Device,
    data: &dyn ImageSet,
) -> anyhow::Result<Run<M>> {
    let steps = config.steps;
    let mut run = Run::<M>::open(config, &a.out, a.resume, dev)?;
    run.set_parts_in_flight(a.parts_in_flight);
    let start = run.opt.step;
    if a.resume {
        eprintln!("resuming {} at step {start} of {steps}", a.out.display());
    }
    let pb = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(steps)
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} steps  {msg}  ETA {eta}",
        )
        .expect("valid template"),
    );
    pb.set_position(start);
    while run.opt.step < steps {
        let log = run.step(data)?;
        pb.set_position(log.step);
        pb.set_message(format!(
            "loss {:.4}  lr {:.2e}  {:.1} img/s",
            log.loss, log.lr, log.images_per_s
        ));
    }
    pb.finish_and_clear();
    run.checkpoint()?;
    eprintln!("{} steps -> {}", run.opt.step, a.out.display());
    Ok(run)
}

/// Compare the run being resumed with what the command line asks for. Every
/// difference is an error, listed with the saved and the given value, except
/// what may change on resume: --steps/--epochs (the run is extended),
/// --checkpoint-every, --jobs, --quiet and --device; --parts and --warmup
/// only when given (their defaults depend on the machine and the steps).
fn check_resume(a: &PretrainArgs, draft: &PretrainConfig) -> anyhow::Result<()> {
    let ignored = |p: &str| {
        matches!(
            p,
            "steps" | "schedule.total_steps" | "checkpoint_every" | "images" | "clip.text_dim"
        ) || (p == "schedule.warmup_steps" && a.warmup.is_none())
            || (p == "parts" && a.parts.is_none())
    };
    check_resume_config(&a.out, draft, &ignored, &resume_flag)
}

/// Compare the saved config of the run in `out` with `draft`, what the
/// command line asks for: every difference outside `ignored` is an error,
/// listed with the saved and the given value and the flag (`flag`) that sets it.
pub(crate) fn check_resume_config(
    out: &Path,
    draft: &PretrainConfig,
    ignored: &dyn Fn(&str) -> bool,
    flag: &dyn Fn(&str) -> &'static str,
) -> anyhow::Result<()> {
    let path = out.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "--resume: cannot read {} (is there a run in --out?)",
            path.display()
        )
    })?;
    let saved: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("--resume: {} is not JSON", path.display()))?;
    let given = serde_json::to_value(draft)?;
    let mut diffs = Vec::new();
    json_diff("", &saved, &given, &mut diffs);
    let mut by_flag: Vec<(&'static str, String)> = Vec::new();
    for (p, was, now) in diffs {
        if ignored(&p) {
            continue;
        }
        let flag = flag(&p);
        if !by_flag.iter().any(|(f, _)| *f == flag) {
            by_flag.push((
                flag,
                format!("{flag}: the run has {was}, given {now} ({p})"),
            ));
        }
    }
    if by_flag.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = by_flag.into_iter().map(|(_, l)| l).collect();
    bail!(
        "--resume: {} differs from the saved run ({}): {}. Pass the run's own values, or start a new run in another --out",
        if list.len() == 1 { "an argument" } else { "arguments" },
        path.display(),
        list.join("; ")
    )
}

/// The flag that sets a field of the pretraining config.
fn resume_flag(path: &str) -> &'static str {
    match path {
        "accumulate" => "--accumulate",
        "clip.text_model" => "--text-model",
        "clip.projection_dim" => "--projection-dim",
        "mae.norm_pix_loss" => "--norm-pix-loss",
        p if p.ends_with("encoder.num_hidden_layers") => "--depth",
        p => engine_flag(p),
    }
}

/// The flag that sets a field every run of the engine has (pretrain's and
/// finetune's); `--model` for the encoder's other fields.
pub(crate) fn engine_flag(path: &str) -> &'static str {
    match path {
        "batch" => "--batch",
        "parts" => "--parts",
        "seed" => "--seed",
        "init" => "--model",
        "schedule.lr" | "schedule.min_lr" => "--lr",
        "schedule.warmup_steps" => "--warmup",
        "adamw.weight_decay" => "--weight-decay",
        p if p.starts_with("augment") => "--augment",
        p if p.ends_with("encoder.image_size") => "--image-size",
        p if p.ends_with("encoder.patch_size") => "--patch",
        p if p.ends_with("encoder.drop_path_rate") => "--drop-path",
        _ => "--model",
    }
}

/// Leaf-level differences between two JSON values: (dotted path, a, b).
fn json_diff(
    path: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
    out: &mut Vec<(String, String, String)>,
) {
    use serde_json::Value;
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = Value::Null;
                json_diff(
                    &join(k),
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ if a == b => {}
        _ => out.push((path.to_string(), a.to_string(), b.to_string())),
    }
}
