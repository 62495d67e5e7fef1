//! `radfm sr`: one image's results as a DICOM SR (TID 1500).

use std::time::SystemTime;

use anyhow::Context;

use crate::classifier;
use crate::cli::SrArgs;

pub fn run(a: SrArgs) -> anyhow::Result<()> {
    let dev = radfm_model::device(a.device.as_str())?;
    let clf = classifier::open_for_use(&a.model, &dev)?;
    let bytes = std::fs::read(&a.input)
        .with_context(|| format!("--input {}: cannot read", a.input.display()))?;
    let an = radfm_serve::analyse(&clf, &bytes)
        .map_err(|e| anyhow::anyhow!("--input {}: {e}", a.input.display()))?;
    // the same image and model give the same SR UIDs
    let id = radfm_dicom::sr::SrIdentity::derived(
        &[&an.sop_instance_uid, &clf.identity.sha256, "radfm sr"],
        SystemTime::now(),
    );
    let sr = radfm_serve::sr_bytes(&clf, &[&an], &id)?;
    radfm_core::write_atomic(&a.out, &sr)
        .with_context(|| format!("writing {}", a.out.display()))?;
    let present: Vec<&str> = clf
        .observations
        .iter()
        .zip(&an.scores)
        .zip(&clf.thresholds)
        .filter(|((_, p), t)| *p >= *t)
        .map(|((o, _), _)| o.as_str())
        .collect();
    eprintln!(
        "SR of {} observations ({} present: {}) -> {}",
        clf.observations.len(),
        present.len(),
        if present.is_empty() {
            "none".to_string()
        } else {
            present.join(", ")
        },
        a.out.display()
    );
    Ok(())
}
