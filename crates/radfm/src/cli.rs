//! Command-line interface definition.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "radfm",
    version,
    about = "From a radiology archive to an evaluated foundation model, offline."
)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Inspect and decode single DICOM files.
    #[command(subcommand)]
    Dicom(DicomCommand),
    /// Ingest DICOM files (and reports) into a de-identified dataset.
    Ingest(IngestArgs),
    /// Assign patient-level train/val/test splits in a dataset.
    Split(SplitArgs),
}

#[derive(Subcommand, Debug)]
pub enum DicomCommand {
    /// Print the essentials of a DICOM file.
    Info {
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Decode pixel data to a NumPy .npy file, shape (frames, rows, columns, samples).
    Decode {
        file: PathBuf,
        /// raw: stored values; modality: after rescale/modality LUT; display: [0,1] after VOI.
        #[arg(long, default_value = "raw")]
        stage: radfm_dicom::Stage,
        /// Output .npy path.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Files or directories to search (recursively, by content).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Dataset directory to create or extend.
    #[arg(long)]
    pub out: PathBuf,
    /// Reports (CSV or JSONL with accession_number, study_instance_uid, text).
    #[arg(long)]
    pub reports: Option<PathBuf>,
    /// Long side of stored images, in pixels.
    #[arg(long, default_value_t = 512)]
    pub size: usize,
    /// Keep identifiers (no de-identification). Only for data that is already anonymous.
    #[arg(long)]
    pub no_deid: bool,
    /// Ingest images that may carry burned-in text instead of quarantining them.
    #[arg(long)]
    pub allow_burned_in: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Pseudonymisation key file (default: DATASET/../<name>.deid-key); created with mode 0600.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Site label recorded for every image of this run (default: derived from the institution).
    #[arg(long)]
    pub site: Option<String>,
    /// Images per shard.
    #[arg(long, default_value_t = 256)]
    pub shard_size: usize,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SplitArgs {
    pub dataset: PathBuf,
    #[arg(long, default_value_t = 0.8)]
    pub train: f64,
    #[arg(long, default_value_t = 0.1)]
    pub val: f64,
    #[arg(long, default_value_t = 0.1)]
    pub test: f64,
    /// Unit of assignment; only `patient` is supported (no patient in two splits).
    #[arg(long, default_value = "patient")]
    pub by: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}
