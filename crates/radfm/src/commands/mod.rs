//! One subcommand per file.

mod dicom;
//mod ingest;
//mod split;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dicom(c) => dicom::run(c),
        Command::Ingest(_) => todo!(),
        Command::Split(_) => todo!(),
    }
}
