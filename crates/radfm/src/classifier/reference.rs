//! A classifier directory's checks: the manifest of its files, and the
//! reference inputs and outputs that `radfm verify` re-runs.
//!
//! The reference inputs are synthetic (smooth patterns drawn from a fixed
//! formula), never a patient's pixels: a model directory may be shared.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use radfm_core::npy::{f32_bytes, Npy};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Classifier;

pub const MANIFEST: &str = "reference/manifest.json";
pub const INPUTS: &str = "reference/inputs.npy";
pub const OUTPUTS: &str = "reference/outputs.json";
/// the largest difference in a probability `verify` accepts: another CPU may
/// sum in another order, a wrong model moves scores far more
pub const TOLERANCE: f64 = 1e-4;
/// the reference images: this many, this size (display units)
const N: usize = 4;
const SIDE: usize = 64;

/// Every file under `dir` (relative path with `/`, sorted) and its sha256,
/// except the manifest itself.
pub fn manifest(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            let path = entry.path();
            let ty = entry.file_type()?;
            if ty.is_dir() {
                stack.push(path);
            } else if ty.is_file() {
                let rel = path
                    .strip_prefix(dir)
                    .expect("under dir")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                if rel != MANIFEST {
                    out.insert(rel, crate::commands::embed::sha256_file(&path)?);
                }
            }
        }
    }
    Ok(out)
}

/// sha256 over the manifest's lines `path  sha256\n`: the model's checksum.
pub fn manifest_sha256(files: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (path, sha) in files {
        h.update(format!("{path}  {sha}\n").as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The reference images, `[N, SIDE, SIDE]` in display units: gradients,
/// rings and stripes that exercise resizing and normalisation.
pub fn inputs() -> Vec<Vec<f32>> {
    (0..N)
        .map(|k| {
            let kf = k as f32;
            (0..SIDE * SIDE)
                .map(|i| {
                    let (y, x) = (
                        (i / SIDE) as f32 / SIDE as f32,
                        (i % SIDE) as f32 / SIDE as f32,
                    );
                    let r = ((x - 0.5).powi(2) + (y - 0.4).powi(2)).sqrt();
                    let v = 0.5
                        + 0.3 * (6.0 * (1.0 + kf) * r).cos()
                        + 0.15 * ((3.0 + kf) * x * std::f32::consts::PI).sin() * (y - 0.5)
                        + 0.1 * (kf - 1.5) * (y - 0.5);
                    v.clamp(0.0, 1.0)
                })
                .collect()
        })
        .collect()
}

/// Write `reference/` into a complete classifier directory: the inputs, the
/// scores `clf` gives them, and then the manifest of every file.
pub fn write(dir: &Path, clf: &Classifier) -> anyhow::Result<()> {
    let ref_dir = dir.join("reference");
    std::fs::create_dir_all(&ref_dir).with_context(|| format!("creating {}", ref_dir.display()))?;
    let images = inputs();
    let flat: Vec<f32> = images.concat();
    radfm_core::write_atomic(&dir.join(INPUTS), &f32_bytes(&[N, SIDE, SIDE], &flat))?;
    let outputs: Vec<serde_json::Value> = images
        .iter()
        .map(|g| {
            let p = clf.predict_grey(g, SIDE, SIDE)?;
            Ok(serde_json::Value::Object(
                clf.observations
                    .iter()
                    .cloned()
                    .zip(p.into_iter().map(|v| json!(v)))
                    .collect(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let out = json!({
        "inputs": INPUTS,
        "inputs_are": "synthetic grey images in display units (0 black, 1 white), no patient's pixels",
        "tolerance": TOLERANCE,
        "scores": outputs,
    });
    radfm_core::write_atomic(
        &dir.join(OUTPUTS),
        serde_json::to_string_pretty(&out)?.as_bytes(),
    )?;
    let files = manifest(dir)?;
    let m = json!({"sha256": manifest_sha256(&files), "files": files});
    radfm_core::write_atomic(
        &dir.join(MANIFEST),
        serde_json::to_string_pretty(&m)?.as_bytes(),
    )?;
    Ok(())
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// files whose checksum differs from the manifest's, or are missing / new
    pub files: Vec<String>,
    /// (input, observation, stored, now) where they differ by more than the tolerance
    pub outputs: Vec<(usize, String, f64, f64)>,
    /// the largest difference seen over every reference output
    pub max_difference: f64,
    pub compared: usize,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.files.is_empty() && self.outputs.is_empty()
    }
}

/// The manifest's checksums against the files, without loading the model.
pub fn check_files(dir: &Path) -> anyhow::Result<Vec<String>> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{}: no reference manifest (exported before radfm stored references): export the model again",
            path.display()
        )
    })?;
    let m: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let want = m["files"]
        .as_object()
        .with_context(|| format!("{}: no \"files\"", path.display()))?;
    let have = manifest(dir)?;
    let mut bad = Vec::new();
    for (f, sha) in want {
        match have.get(f) {
            None => bad.push(format!("{f}: missing")),
            Some(h) if Some(h.as_str()) != sha.as_str() => bad.push(format!(
                "{f}: sha256 {} differs from the manifest's {}",
                &h[..16],
                sha.as_str().map_or("?", |s| &s[..16.min(s.len())])
            )),
            Some(_) => {}
        }
    }
    for f in have.keys().filter(|f| !want.contains_key(*f)) {
        bad.push(format!("{f}: not in the manifest"));
    }
    Ok(bad)
}

/// Re-run the model on the stored reference inputs and compare.
pub fn check_outputs(clf: &Classifier, verdict: &mut Verdict) -> anyhow::Result<()> {
    let dir = &clf.dir;
    let f = std::fs::File::open(dir.join(INPUTS))
        .with_context(|| format!("opening {}", dir.join(INPUTS).display()))?;
    let x = Npy::read(std::io::BufReader::new(f))
        .with_context(|| format!("reading {}", dir.join(INPUTS).display()))?;
    if x.shape.len() != 3 || x.descr != "<f4" {
        bail!(
            "{}: expected float32 [n, rows, cols], found {} {:?}",
            INPUTS,
            x.descr,
            x.shape
        );
    }
    let (n, rows, cols) = (x.shape[0], x.shape[1], x.shape[2]);
    let values = x.to_f32();
    let stored: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(OUTPUTS))
            .with_context(|| format!("reading {}", dir.join(OUTPUTS).display()))?,
    )
    .with_context(|| format!("{OUTPUTS}: not JSON"))?;
    let scores = stored["scores"]
        .as_array()
        .context("outputs.json: no scores")?;
    if scores.len() != n {
        bail!("{OUTPUTS}: {} outputs for {n} inputs", scores.len());
    }
    let tol = stored["tolerance"].as_f64().unwrap_or(TOLERANCE);
    for (i, want) in scores.iter().enumerate() {
        let got = clf.predict_grey(&values[i * rows * cols..(i + 1) * rows * cols], rows, cols)?;
        for (o, g) in clf.observations.iter().zip(got) {
            let Some(w) = want[o].as_f64() else {
                verdict.outputs.push((i, o.clone(), f64::NAN, g));
                continue;
            };
            let d = (w - g).abs();
            verdict.compared += 1;
            verdict.max_difference = verdict.max_difference.max(d);
            if d.is_nan() || d > tol {
                verdict.outputs.push((i, o.clone(), w, g));
            }
        }
    }
    Ok(())
}
