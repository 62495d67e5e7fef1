//! `radfm predict`: DICOM files or folders through a classifier directory,
//! one JSON line per image: `{"id": SOPInstanceUID, "scores": {...}}`.
//!
//! Folders are searched for DICOM files by content (the preamble and `DICM`,
//! or a plausible header), not by name. Each image goes through the DICOM
//! display pipeline and the model's own preprocessing, one image per forward
//! pass, exactly as `radfm serve` scores it. A file that cannot be scored is
//! reported on stderr with the reason and the rest go on; the output is
//! written atomically once every file has been tried, in input order.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rayon::prelude::*;
use serde_json::json;

use crate::classifier;
use crate::cli::PredictArgs;

/// Whether the file at `path` starts like a DICOM file.
fn sniff(path: &Path) -> bool {
    let mut head = vec![0u8; 512];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return false,
        }
    }
    radfm_dicom::read::looks_like_dicom(&head[..n])
}

/// The files to score: each file given, and the DICOM files under each folder
/// (sorted by path), duplicates once.
pub fn inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = walkdir::WalkDir::new(p)
                .follow_links(false)
                .into_iter()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_file())
                .map(|e| e.into_path())
                .filter(|f| sniff(f))
                .collect();
            found.sort();
            if found.is_empty() {
                eprintln!("{}: no DICOM files found in this folder", p.display());
            }
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("--input {}: no such file or folder", p.display());
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.canonicalize().unwrap_or_else(|_| p.clone())));
    Ok(out)
}

pub fn run(a: PredictArgs) -> anyhow::Result<()> {
    let dev = radfm_model::device(a.device.as_str())?;
    let clf = classifier::open_for_use(&a.model, &dev)?;
    let files = inputs(&a.input)?;
    if files.is_empty() {
        bail!("no DICOM files in the inputs");
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.jobs)
        .build()
        .context("starting the worker threads")?;
    let pb = if a.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        crate::progress::bar(files.len() as u64, "images")
    };
    let results: Vec<Result<String, String>> = pool.install(|| {
        files
            .par_iter()
            .map(|f| {
                let r = std::fs::read(f)
                    .map_err(|e| format!("cannot read: {e}"))
                    .and_then(|bytes| radfm_serve::analyse(&clf, &bytes).map_err(|e| e.to_string()))
                    .map(|an| {
                        json!({"id": an.sop_instance_uid,
                               "scores": radfm_serve::scores_json(&clf, &an.scores)})
                        .to_string()
                    });
                pb.inc(1);
                r
            })
            .collect()
    });
    pb.finish_and_clear();
    let mut lines = String::new();
    let mut failed = 0;
    for (f, r) in files.iter().zip(&results) {
        match r {
            Ok(l) => {
                lines.push_str(l);
                lines.push('\n');
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e}", f.display());
            }
        }
    }
    let scored = files.len() - failed;
    if scored == 0 {
        bail!("none of the {} files could be scored", files.len());
    }
    radfm_core::write_atomic(&a.out, lines.as_bytes())
        .with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "{scored} images scored{} -> {}",
        if failed > 0 {
            format!(", {failed} files could not be (reasons above)")
        } else {
            String::new()
        },
        a.out.display()
    );
    Ok(())
}
