//! `radfm synth`.

use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::SynthArgs;

pub fn run(a: SynthArgs) -> anyhow::Result<()> {
    let cfg = radfm_synth::Config {
        out: a.out.clone(),
        patients: a.patients,
        sites: a.sites,
        seed: a.seed,
        size: a.size,
        cohort: a.cohort.clone(),
        contact_sheet: a.contact_sheet,
        burned_in: a.burned_in,
    };
    let bar = ProgressBar::with_draw_target(
        Some(a.patients as u64),
        if a.quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} patients  ETA {eta}",
        )
        .expect("valid template"),
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.jobs.unwrap_or(0))
        .build()
        .context("thread pool")?;
    let t = Instant::now();
    let summary = pool
        .install(|| radfm_synth::generate(&cfg, &|done, _| bar.set_position(done as u64)))
        .with_context(|| format!("synthesising into {}", a.out.display()))?;
    bar.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{} patients, {} studies, {} images ({} with marked and {} with unmarked burned-in text), {} reports disagree with their images, {} PHI strings recorded",
        summary.patients,
        summary.studies,
        summary.images,
        summary.burned_in_marked,
        summary.burned_in_unmarked,
        summary.reports_disagreeing,
        summary.phi_strings
    );
    println!(
        "{:.1} s ({:.1} images/s) -> {}",
        secs,
        summary.images as f64 / secs,
        a.out.display()
    );
    Ok(())
}
