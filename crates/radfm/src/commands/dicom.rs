//! `radfm dicom info|decode`.

use std::io::Write;

use anyhow::Context;

use crate::cli::DicomCommand;

pub fn run(cmd: DicomCommand) -> anyhow::Result<()> {
    match cmd {
        DicomCommand::Info { file, json } => {
            let f = radfm_dicom::read::open(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let info = radfm_dicom::DicomInfo::from_file(&f);
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &info)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", info.to_text())?;
            }
            Ok(())
        }
        DicomCommand::Decode { file, stage, out } => {
            let f = radfm_dicom::read::open(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let img = radfm_dicom::decode(&f, stage)
                .with_context(|| format!("decoding {}", file.display()))?;
            radfm_core::atomic::write_atomic(&out, &img.to_npy())
                .with_context(|| format!("writing {}", out.display()))?;
            Ok(())
        }
    }
}
