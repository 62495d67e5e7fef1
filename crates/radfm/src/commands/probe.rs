//! `radfm probe`: linear probes on `radfm embed`'s output, one per CheXpert
//! observation, at label fractions and shots, written as `radfm evaluate`'s
//! PRED format (`RUN/pred.jsonl`) with the choices made (`RUN/probe.json`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context};
use radfm_adapt::logistic::Features;
use radfm_adapt::probe::{probe, CChoice, ClassWeight, Config, Draw, Item};
use radfm_core::npy::Npy;
use radfm_core::observation::Observation;
use serde_json::json;

use crate::cli::{ClassWeightArg, ProbeArgs};

/// EMB/embeddings.npy and EMB/index.jsonl, checked against each other.
fn read_embeddings(dir: &Path) -> anyhow::Result<(Vec<f32>, usize, usize, Vec<serde_json::Value>)> {
    let npy_path = dir.join("embeddings.npy");
    let f = std::fs::File::open(&npy_path).with_context(|| {
        format!(
            "{}: no embeddings.npy (made by `radfm embed`)",
            dir.display()
        )
    })?;
    let npy = Npy::read(std::io::BufReader::new(f))
        .with_context(|| format!("reading {}", npy_path.display()))?;
    if npy.descr != "<f4" || npy.shape.len() != 2 {
        bail!(
            "{}: expected float32 of shape (N, D), found {} {:?}",
            npy_path.display(),
            npy.descr,
            npy.shape
        );
    }
    let (n, d) = (npy.shape[0], npy.shape[1]);
    let x: Vec<f32> = npy
        .data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let index_path = dir.join("index.jsonl");
    let text = std::fs::read_to_string(&index_path)
        .with_context(|| format!("reading {}", index_path.display()))?;
    let index: Vec<serde_json::Value> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(k, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not JSON", index_path.display(), k + 1))
        })
        .collect::<anyhow::Result<_>>()?;
    if index.len() != n {
        bail!(
            "{}: {n} embeddings but {} lines in index.jsonl; the two must describe the same rows \
             (was one of them replaced?)",
            dir.display(),
            index.len()
        );
    }
    Ok((x, n, d, index))
}

/// Labels by id from a truth file (`{"id", "labels": {observation: 1|0|-1}}` per line).
pub(crate) fn read_truth(path: &Path) -> anyhow::Result<HashMap<String, BTreeMap<String, i8>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = HashMap::new();
    for (k, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not JSON", path.display(), k + 1))?;
        let id = v["id"]
            .as_str()
            .with_context(|| format!("{} line {}: no \"id\"", path.display(), k + 1))?;
        let labels: BTreeMap<String, i8> = v["labels"]
            .as_object()
            .with_context(|| format!("{} line {}: no \"labels\" object", path.display(), k + 1))?
            .iter()
            .filter_map(|(o, l)| l.as_f64().map(|x| (o.clone(), x as i8)))
            .collect();
        out.insert(id.to_string(), labels);
    }
    Ok(out)
}

pub fn run(a: ProbeArgs) -> anyhow::Result<()> {
    let (x, n, d, index) = read_embeddings(&a.embeddings)?;
    let features = Features::new(&x, n, d)
        .map_err(|e| anyhow::anyhow!("{}/embeddings.npy: {e}", a.embeddings.display()))?;
    let truth = a.labels.as_deref().map(read_truth).transpose()?;
    let mut items = Vec::with_capacity(n);
    let mut missing = Vec::new();
    for (k, v) in index.iter().enumerate() {
        let id = v["id"]
            .as_str()
            .with_context(|| format!("index.jsonl line {}: no \"id\"", k + 1))?
            .to_string();
        let labels = match &truth {
            Some(t) => match t.get(&id) {
                Some(l) => Some(l.clone()),
                None => {
                    missing.push(id.clone());
                    None
                }
            },
            None => (v["labeled"].as_bool() != Some(false)).then(|| {
                v["labels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter_map(|(o, l)| l.as_f64().map(|x| (o.clone(), x as i8)))
                            .collect()
                    })
                    .unwrap_or_default()
            }),
        };
        items.push(Item {
            id,
            patient: v["patient_id"].as_str().unwrap_or_default().to_string(),
            split: v["split"].as_str().map(str::to_string),
            labels,
        });
    }
    if !missing.is_empty() {
        bail!(
            "{}: {} of {n} embedded images have no labels, e.g. {}",
            a.labels.as_deref().unwrap_or(Path::new("")).display(),
            missing.len(),
            missing
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let c = match a.c.as_str() {
        "auto" => CChoice::Auto,
        s => match s.parse::<f64>() {
            Ok(v) if v > 0.0 && v.is_finite() => CChoice::Fixed(v),
            _ => bail!("--C {s}: expected `auto` or a positive number"),
        },
    };
    // the k-shot draws first (fewest labels), then the fractions as given: the last run,
    // which `radfm evaluate`'s main tables describe, is the last fraction (by default 100%)
    let mut draws: Vec<Draw> = a.shots.iter().map(|&k| Draw::Shots(k)).collect();
    for &f in &a.fractions {
        if !(f > 0.0 && f <= 1.0) {
            bail!("--fractions {f}: each fraction must be in (0, 1]");
        }
        draws.push(Draw::Fraction(f));
    }
    let cfg = Config {
        observations: Observation::ALL
            .iter()
            .map(|o| o.as_str().to_string())
            .collect(),
        c,
        draws,
        repeats: a.repeats,
        seed: a.seed,
        standardize: a.standardize,
        class_weight: match a.class_weight {
            ClassWeightArg::None => ClassWeight::None,
            ClassWeightArg::Balanced => ClassWeight::Balanced,
        },
        uncertain: a.uncertain,
    };
    let runs = cfg.draws.len() * cfg.repeats;
    let pb = crate::progress::bar(runs as u64, "runs");
    let output = probe(&features, &items, &cfg, &|run| {
        pb.set_message(run.to_string());
        pb.inc(1);
    })?;
    pb.finish_and_clear();
    let (preds, reports) = (&output.predictions, &output.runs);
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut lines = String::new();
    for p in preds {
        lines.push_str(&serde_json::to_string(p)?);
        lines.push('\n');
    }
    radfm_core::atomic::write_atomic(&a.out.join("pred.jsonl"), lines.as_bytes())
        .with_context(|| format!("writing {}", a.out.join("pred.jsonl").display()))?;
    let embed_meta: serde_json::Value = std::fs::read_to_string(a.embeddings.join("embed.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    let report = json!({
        "embeddings": {"rows": n, "dim": d, "embed": embed_meta},
        "labels": match &a.labels { Some(p) => json!(p.display().to_string()), None => json!("weak labels from index.jsonl") },
        "settings": {
            "C": a.c, "grid": if c == CChoice::Auto { json!(radfm_adapt::probe::C_GRID) } else { json!(null) },
            "fractions": a.fractions, "shots": a.shots, "repeats": a.repeats, "seed": a.seed,
            "standardize": a.standardize, "class_weight": a.class_weight.as_str(),
            "uncertain": a.uncertain.as_str(),
            "not_mentioned": "negative (0)",
            "repeats_are": "separate runs, suffixed -r<i> (the first has no suffix when --repeats is 1)",
        },
        "runs": reports,
    });
    radfm_core::atomic::write_atomic(
        &a.out.join("probe.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )
    .with_context(|| format!("writing {}", a.out.join("probe.json").display()))?;
    if let (Some(dir), Some(encoder)) = (&a.export, &a.model) {
        export(dir, encoder, &embed_meta, &output, &a)?;
    }
    let skipped: usize = reports
        .iter()
        .flat_map(|r| &r.observations)
        .filter(|o| o.skipped.is_some())
        .count();
    eprintln!(
        "{runs} runs, {} test predictions -> {}{}",
        preds.len(),
        a.out.display(),
        if skipped > 0 {
            format!("; {skipped} observation probes skipped (reasons in probe.json)")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// A classifier directory: the encoder's files in `encoder/`, and
/// `classifier.json` with the preprocessing and pooling the embeddings were
/// made with and, per observation, the probe of the first run (a fraction of
/// 1 by default) on the raw embedding (standardisation folded in):
/// P(observation) = sigmoid(coef . embedding + intercept).
fn export(
    dir: &Path,
    encoder: &Path,
    embed_meta: &serde_json::Value,
    output: &radfm_adapt::probe::Output,
    a: &ProbeArgs,
) -> anyhow::Result<()> {
    let enc = super::embed::model_dir(encoder);
    let weights = enc.join("model.safetensors");
    let sha = super::embed::sha256_file(&weights)?;
    match embed_meta["model"]["sha256"].as_str() {
        Some(s) if s == sha => {}
        Some(s) => bail!(
            "--model {}: its weights (sha256 {}) are not those the embeddings were made with ({})",
            encoder.display(),
            &sha[..12],
            &s[..12.min(s.len())]
        ),
        None => bail!(
            "{}/embed.json names no model checksum; embed again with this radfm",
            a.embeddings.display()
        ),
    }
    let run = output.runs.first().context("no run to export")?;
    let mut heads = serde_json::Map::new();
    for o in &run.observations {
        let Some(m) = &o.model else { continue };
        let m = match &output.standardization {
            Some(s) => s.fold(m),
            None => m.clone(),
        };
        heads.insert(
            o.observation.clone(),
            json!({"coef": m.coef, "intercept": m.intercept, "C": o.c, "n_train": o.n_train,
                   "n_positive": o.n_positive,
                   "operating_point": crate::classifier::operating_point_json(
                       o.operating_point.as_ref(), run.validation)}),
        );
    }
    if heads.is_empty() {
        bail!("run {}: no observation has a probe to export", run.run);
    }
    let tmp = crate::classifier::stage(dir)?;
    std::fs::create_dir_all(tmp.join("encoder"))
        .with_context(|| format!("creating {}", tmp.display()))?;
    for entry in std::fs::read_dir(&enc).with_context(|| format!("reading {}", enc.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), tmp.join("encoder").join(entry.file_name()))
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    let classifier = json!({
        "format": crate::classifier::FORMAT,
        "encoder": "encoder/",
        "encoder_sha256": sha,
        "preprocessing": embed_meta["preprocessing"],
        "pooling": embed_meta["pooling"],
        "frames": embed_meta["frames"],
        "embedding_dim": embed_meta["embeddings"]["dim"],
        "probe_run": run.run,
        "labels": match &a.labels { Some(_) => "--labels file", None => "weak labels" },
        "uncertain": a.uncertain.as_str(),
        "observations": heads,
    });
    crate::classifier::commit(&tmp, dir, &classifier)?;
    eprintln!(
        "classifier ({} observations, run {}) -> {}",
        heads.len(),
        run.run,
        dir.display()
    );
    Ok(())
}
