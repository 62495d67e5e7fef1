//! `radfm pacs sync`: one SR per study back into a DICOMweb server (see
//! `radfm_serve::pacs`).

use std::sync::Arc;
use std::time::Duration;

use crate::classifier;
use crate::cli::{PacsCommand, PacsSyncArgs};

pub fn run(cmd: PacsCommand) -> anyhow::Result<()> {
    let PacsCommand::Sync(a) = cmd;
    sync(a)
}

fn sync(a: PacsSyncArgs) -> anyhow::Result<()> {
    let token = a
        .token_file
        .as_deref()
        .map(super::serve::read_token)
        .transpose()?;
    let dev = radfm_model::device(a.device.as_str())?;
    let clf = classifier::open_for_use(&a.model, &dev)?;
    let model: Arc<dyn radfm_serve::Model> = Arc::new(clf);
    let mode = match a.poll {
        Some(s) => radfm_serve::pacs::Mode::Poll(Duration::from_secs(s)),
        None => radfm_serve::pacs::Mode::Once,
    };
    let progress = |line: &str| eprintln!("{line}");
    let report = |r: &radfm_serve::pacs::Report| {
        eprintln!(
            "pass: {} studies: {} SRs stored, {} done before, {} found on the server, {} without \
             images, {} failed (retried next pass); {} images scored, {} instances not scored",
            r.studies,
            r.stored,
            r.done_before,
            r.found_on_server,
            r.no_images,
            r.failed,
            r.images,
            r.image_errors
        );
        println!("{}", serde_json::to_string(r).unwrap_or_default());
    };
    let r = radfm_serve::pacs::run(
        model,
        &a.dicomweb,
        token.as_deref(),
        &a.state,
        mode,
        &progress,
        &report,
    )?;
    if r.failed > 0 {
        anyhow::bail!(
            "{} studies failed this pass (retried on the next)",
            r.failed
        );
    }
    Ok(())
}
