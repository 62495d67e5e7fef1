//! `radfm ingest`.

use crate::cli::IngestArgs;

pub fn run(a: IngestArgs) -> anyhow::Result<()> {
    // --size, --shard-size and --jobs are range-checked by the parser
    let jobs = a.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let key_path = a
        .key
        .clone()
        .unwrap_or_else(|| radfm_data::key::default_path(&a.out));
    let cfg = radfm_data::ingest::IngestConfig {
        inputs: a.inputs,
        out: a.out.clone(),
        reports: a.reports,
        size: a.size,
        deid: !a.no_deid,
        allow_burned_in: a.allow_burned_in,
        surrogates: a.surrogates,
        jobs,
        key_path: key_path.clone(),
        site: a.site,
        shard_size: a.shard_size,
    };
    let bar = crate::progress::Bar::new(a.quiet);
    let s = radfm_data::ingest::ingest(&cfg, &bar)?;
    if s.key_created {
        eprintln!(
            "created pseudonymisation key {} (mode 0600): keep it secret and reuse it for this archive",
            key_path.display()
        );
    }
    eprintln!(
        "{} files found, {} already ingested; this run: {} ok ({} images, {} volumes), {} skipped, {} failed, {} reports linked; {:.1} MB in {:.1} s ({:.1} MB/s). Log: {}",
        s.found,
        s.already_done,
        s.ok,
        s.images,
        s.volumes,
        s.skipped,
        s.failed,
        s.reports_linked,
        s.megabytes,
        s.seconds,
        s.megabytes / s.seconds.max(1e-9),
        a.out.join(radfm_data::ingest::LOG_FILE).display()
    );
    if let Some(truth) = &a.truth {
        let key = if a.no_deid {
            None
        } else {
            Some(radfm_data::key::load_or_create(&key_path, &a.out)?.0)
        };
        let t = radfm_data::truth::import(&a.out, truth, key)?;
        eprintln!(
            "{}: {} images with known labels written to {}{}{}",
            truth.display(),
            t.written,
            a.out.join(radfm_data::truth::FILE_NAME).display(),
            if t.not_in_dataset > 0 {
                format!(
                    "; {} lines describe images not in the dataset",
                    t.not_in_dataset
                )
            } else {
                String::new()
            },
            if t.without_truth > 0 {
                format!("; {} catalogued images have no line", t.without_truth)
            } else {
                String::new()
            },
        );
    }
    Ok(())
}
