//! `radfm pretrain`: read a dataset's shards into memory at the training
//! resolution, then run the objective with checkpoints and exact resume.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use radfm_dicom::npy::Npy;
use radfm_model::mae::MaeConfig;
use radfm_model::pretrain::{ImageSet, MaeRun, PretrainConfig};
use radfm_model::train::{AdamWConfig, Schedule};
use radfm_model::vit::VitConfig;

use crate::cli::PretrainArgs;

/// Images held in memory, normalised to mean 0.5 / sd 0.25 of the display range.
struct InMemory {
    size: usize,
    images: Vec<f32>,
}

impl ImageSet for InMemory {
    fn len(&self) -> usize {
        self.images.len() / (self.size * self.size)
    }
    fn image(&self, i: usize) -> Vec<f32> {
        let n = self.size * self.size;
        self.images[i * n..(i + 1) * n].to_vec()
    }
}

/// Box-filter resize of a `rows x cols` plane to `size x size`.
fn resize(plane: &[f32], rows: usize, cols: usize, size: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(size * size);
    for oy in 0..size {
        let (y0, y1) = (
            oy * rows / size,
            ((oy + 1) * rows / size).max(oy * rows / size + 1),
        );
        for ox in 0..size {
            let (x0, x1) = (
                ox * cols / size,
                ((ox + 1) * cols / size).max(ox * cols / size + 1),
            );
            let mut acc = 0.0f64;
            for y in y0..y1.min(rows) {
                for x in x0..x1.min(cols) {
                    acc += plane[y * cols + x] as f64;
                }
            }
            out.push((acc / ((y1.min(rows) - y0) * (x1.min(cols) - x0)) as f64) as f32);
        }
    }
    out
}

/// Every image of the dataset's shards (first frame, channels averaged), resized.
fn load_images(dataset: &Path, size: usize) -> anyhow::Result<InMemory> {
    let dir = dataset.join("shards");
    let mut shards: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| {
            format!(
                "{}: no shards/ (is this a dataset from `radfm ingest`?)",
                dataset.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "tar")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    shards.sort();
    let mut images = Vec::new();
    let mut skipped = 0usize;
    for shard in &shards {
        let f =
            std::fs::File::open(shard).with_context(|| format!("opening {}", shard.display()))?;
        let mut tar = tar::Archive::new(f);
        for entry in tar
            .entries()
            .with_context(|| format!("reading {}", shard.display()))?
        {
            let mut entry = entry?;
            let name = entry.path()?.to_string_lossy().to_string();
            if !name.ends_with(".npy") {
                continue;
            }
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf)?;
            let npy = match Npy::read(&buf[..]) {
                Ok(n) if n.shape.len() == 4 => n,
                _ => {
                    tracing::warn!(
                        "{}: {name}: not a (frames, rows, cols, channels) array, skipped",
                        shard.display()
                    );
                    skipped += 1;
                    continue;
                }
            };
            let (rows, cols, ch) = (npy.shape[1], npy.shape[2], npy.shape[3]);
            let v = npy.to_f64();
            let scale = if npy.descr == "<u2" {
                1.0 / 65535.0
            } else {
                1.0
            };
            let plane: Vec<f32> = (0..rows * cols)
                .map(|p| ((0..ch).map(|c| v[p * ch + c]).sum::<f64>() / ch as f64 * scale) as f32)
                .collect();
            images.extend(
                resize(&plane, rows, cols, size)
                    .into_iter()
                    .map(|x| (x - 0.5) / 0.25),
            );
        }
    }
    if skipped > 0 {
        eprintln!("{skipped} shard members skipped (see warnings)");
    }
    if images.is_empty() {
        bail!("{}: the dataset has no images", dataset.display());
    }
    Ok(InMemory { size, images })
}

pub fn run(a: PretrainArgs) -> anyhow::Result<()> {
    if a.objective != "mae" {
        bail!(
            "--objective {}: only mae is implemented so far (clip pretraining is tracked in the models issue)",
            a.objective
        );
    }
    let dev = radfm_model::device(&a.device)?;
    let t0 = std::time::Instant::now();
    let data = load_images(&a.data, a.image_size)?;
    eprintln!(
        "{} images at {}x{} px loaded in {:.1} s",
        data.len(),
        a.image_size,
        a.image_size,
        t0.elapsed().as_secs_f64()
    );
    let mut enc = VitConfig::preset(&a.model, a.image_size, a.patch, 1).with_context(|| {
        format!(
            "--model {}: expected vit-tiny, vit-small or vit-base",
            a.model
        )
    })?;
    if a.image_size % a.patch != 0 {
        bail!(
            "--image-size {} is not a multiple of --patch {}",
            a.image_size,
            a.patch
        );
    }
    if let Some(d) = a.depth {
        enc.num_hidden_layers = d;
    }
    let per_epoch = data.len().div_ceil(a.batch) as u64;
    let steps = a.steps.unwrap_or(a.epochs.unwrap_or(1) * per_epoch);
    let config = PretrainConfig {
        objective: a.objective.clone(),
        mae: MaeConfig::new(enc),
        batch: a.batch,
        steps,
        schedule: Schedule {
            lr: a.lr,
            min_lr: a.lr * 0.01,
            warmup_steps: a.warmup.unwrap_or((steps / 20).max(1)),
            total_steps: steps,
        },
        adamw: AdamWConfig {
            weight_decay: a.weight_decay,
            ..AdamWConfig::default()
        },
        seed: a.seed,
        checkpoint_every: a.checkpoint_every.max(1),
        images: data.len(),
    };
    let mut run = MaeRun::open(config, &a.out, a.resume, &dev)?;
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
        let log = run.step(&data)?;
        pb.set_position(log.step);
        pb.set_message(format!(
            "loss {:.4}  lr {:.2e}  {:.1} img/s",
            log.loss, log.lr, log.images_per_s
        ));
    }
    pb.finish_and_clear();
    run.checkpoint()?;
    let png = run.save_reconstructions(&data)?;
    eprintln!("reconstructions of masked images: {}", png.display());
    eprintln!("{} steps -> {}", run.opt.step, a.out.display());
    Ok(())
}
