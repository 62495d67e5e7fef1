//! `radfm verify`: a classifier directory checked on this installation: its
//! files against the manifest written at export, then the model re-run on the
//! stored reference inputs against the stored outputs. Exit 1 on a mismatch,
//! naming the file or the output and the size of the difference.

use anyhow::bail;

use crate::classifier::{reference, Classifier};
use crate::cli::VerifyArgs;

pub fn run(a: VerifyArgs) -> anyhow::Result<()> {
    let dir = &a.model;
    let bad_files = reference::check_files(dir)?;
    for f in &bad_files {
        eprintln!("file {f}");
    }
    let dev = radfm_model::device(a.device.as_str())?;
    let mut v = reference::Verdict {
        files: bad_files,
        ..Default::default()
    };
    match Classifier::open(dir, &dev) {
        Ok(clf) => {
            reference::check_outputs(&clf, &mut v)?;
            for (i, o, want, got) in &v.outputs {
                eprintln!(
                    "output: reference input {i}, {o}: {got:.6} against the stored {want:.6} \
                     (difference {:.2e}, tolerance {:.0e})",
                    (want - got).abs(),
                    reference::TOLERANCE
                );
            }
        }
        Err(e) if !v.files.is_empty() => {
            eprintln!("the model does not load: {e:#}");
        }
        Err(e) => return Err(e),
    }
    if v.passed() {
        println!(
            "verified: {} files match their checksums; {} reference outputs agree (largest difference {:.2e}, tolerance {:.0e})",
            reference::manifest(dir)?.len(),
            v.compared,
            v.max_difference,
            reference::TOLERANCE
        );
        Ok(())
    } else {
        bail!(
            "{}: verification failed: {} files differ from the manifest, {} of {} reference outputs \
             differ (largest difference {:.2e})",
            dir.display(),
            v.files.len(),
            v.outputs.len(),
            v.compared,
            v.max_difference
        )
    }
}
