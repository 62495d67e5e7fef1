//! `radfm serve`: a classifier directory behind HTTP (see `radfm_serve::server`).

use std::sync::Arc;

use anyhow::{bail, Context};

use crate::classifier;
use crate::cli::ServeArgs;

/// A token from its file: the first line, trimmed; never echoed.
pub fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let t = std::fs::read_to_string(path)
        .with_context(|| format!("--token-file {}: cannot read", path.display()))?;
    let t = t.lines().next().unwrap_or("").trim().to_string();
    if t.is_empty() {
        bail!("--token-file {}: the file is empty", path.display());
    }
    Ok(t)
}

pub fn run(a: ServeArgs) -> anyhow::Result<()> {
    let token = a.token_file.as_deref().map(read_token).transpose()?;
    if !a.listen.ip().is_loopback() {
        if token.is_none() && !a.insecure_no_auth {
            bail!(
                "--listen {}: not a loopback address; give --token-file, or --insecure-no-auth \
                 to serve without authentication",
                a.listen
            );
        }
        if token.is_none() {
            eprintln!(
                "warning: serving on {} without authentication (--insecure-no-auth): anyone who \
                 can reach it can send images and read results",
                a.listen
            );
        }
    }
    let cfg = radfm_serve::server::Config {
        listen: a.listen,
        token,
        max_body: a.max_body_mb.saturating_mul(1 << 20),
        workers: a.workers,
        queue: a.queue,
        insecure_no_auth: a.insecure_no_auth,
        batch: a.batch,
        batch_wait: std::time::Duration::from_millis(a.batch_wait_ms),
    };
    let dev = radfm_model::device(a.device.as_str())?;
    let clf = classifier::open_for_use(&a.model, &dev)?;
    let (name, version, sha) = (
        clf.identity.name.clone(),
        clf.identity.version.clone(),
        clf.identity.sha256.clone(),
    );
    let model: Arc<dyn radfm_serve::Model> = Arc::new(clf);
    radfm_serve::server::run(model, &cfg, |addr| {
        eprintln!(
            "serving {name} {version} (sha256 {}) on http://{addr} with {} workers{}{}",
            &sha[..12],
            cfg.workers,
            if cfg.batch > 1 {
                format!(", batches of up to {}", cfg.batch)
            } else {
                String::new()
            },
            if cfg.token.is_some() {
                ", bearer token required"
            } else {
                ""
            }
        );
    })?;
    eprintln!("stopped");
    Ok(())
}
