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
    /// Generate a synthetic hospital archive: chest radiographs with drawn findings, reports, truth and PHI.
    Synth(SynthArgs),
    /// Evaluate predictions against truth: metrics with patient-level bootstrap CIs, subgroups, DeLong.
    Evaluate(EvaluateArgs),
    /// Report text: CheXpert-14 labels, sections, PHI scrubbing, generation metrics.
    #[command(subcommand)]
    Reports(ReportsCommand),
    /// Image encoders: run a checkpoint (radfm run, HF Dinov2Model, CLIPModel, ViTModel) on an array.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Text encoders: sentence embeddings from a HF BertModel directory.
    #[command(subcommand)]
    Text(TextCommand),
    /// Pretrain an image encoder on a dataset (MAE), with checkpoints and exact resume.
    Pretrain(PretrainArgs),
    /// Benchmarks (bench/*.py run them beside the Python peer and print the ratio).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time ViT training steps (image 64, 1 channel, patch 8, dim 192, depth 6, heads 3, MLP 4x,
    /// batch 32, AdamW, BCE over 14 outputs) and ViT-S/16 inference (batch 16, 224 px). Prints JSON.
    Vit {
        #[arg(long, default_value_t = 10)]
        steps: usize,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        #[arg(long, default_value_t = 3)]
        infer_reps: usize,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Split each batch (training and inference) into this many parts, computed at
        /// once on replicas of the model (data parallel); 0 picks `pretrain`'s default
        #[arg(long, default_value_t = 0)]
        parts: usize,
    },
}

#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// Dataset directory written by `radfm ingest` (its shards are read).
    #[arg(long)]
    pub data: PathBuf,
    /// mae (masked autoencoder) or clip (image-report contrastive).
    #[arg(long, default_value = "mae")]
    pub objective: String,
    /// vit-tiny, vit-small or vit-base (patch --patch, sin-cos positions).
    #[arg(long, default_value = "vit-tiny")]
    pub model: String,
    /// Run directory: config.json, metrics.jsonl, checkpoints/, model/.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 64)]
    pub image_size: usize,
    #[arg(long, default_value_t = 8)]
    pub patch: usize,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Optimizer steps (default: 1 epoch when --epochs is not given either).
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<u64>,
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Peak learning rate (after warmup; cosine decay to 1% of it).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.05)]
    pub weight_decay: f64,
    /// Warmup steps (default: 5% of the steps).
    #[arg(long)]
    pub warmup: Option<u64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Checkpoint every N steps (and at the end).
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: u64,
    /// Continue the run in --out from its newest checkpoint.
    #[arg(long)]
    pub resume: bool,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Text tower for --objective clip: a HF BertModel directory with tokenizer.json
    /// (e.g. all-MiniLM-L6-v2). It stays frozen; its report embeddings are computed once.
    #[arg(long)]
    pub text_model: Option<PathBuf>,
    /// Augmentations: standard (RandResizedCrop 60-100%, RandRotate 10 deg, RandAdjustContrast,
    /// RandGaussianNoise; never a flip) or none.
    #[arg(long, default_value = "standard")]
    pub augment: String,
    /// --objective clip: fraction of patients held out for retrieval when the dataset has
    /// no splits (with splits, train trains and val, or else test, is held out).
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
    /// --objective clip: width of the shared embedding space.
    #[arg(long, default_value_t = 128)]
    pub projection_dim: usize,
    /// Micro-batches of --batch per optimizer step (gradient accumulation).
    #[arg(long, default_value_t = 1)]
    pub accumulate: usize,
    /// Cut each batch into N parts computed at once on replicas of the model (data
    /// parallel over the cores; CLIP's loss still sees the whole batch). Default on the CPU:
    /// two per core, at most 8, at least 8 images a part; 1 on a GPU. The count is saved in
    /// config.json, since each part draws its own masks and drop-path.
    #[arg(long)]
    pub parts: Option<usize>,
    /// Drop-path (stochastic depth) rate of the encoder's last block (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub drop_path: f64,
    /// Loader threads for reading shards and building batches (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Encoder depth override (layers), for small experiments.
    #[arg(long)]
    pub depth: Option<usize>,
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Run the image encoder of DIR on a preprocessed float32 NCHW array and write the output as .npy.
    Run {
        /// Checkpoint directory: a radfm run's model/, or a HF Dinov2Model, CLIPModel or ViTModel directory (config.json + *.safetensors).
        #[arg(long)]
        model: PathBuf,
        /// Input .npy, float32 (or float64), shape (N, C, H, W), already normalised as the model expects.
        #[arg(long)]
        input: PathBuf,
        /// Output .npy, float32.
        #[arg(long)]
        out: PathBuf,
        /// last_hidden_state (N, tokens, dim) or pooled (N, dim): the checkpoint's own pooler_output.
        #[arg(long, default_value = "pooled")]
        output: String,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Images per forward pass.
        #[arg(long, default_value_t = 16)]
        batch: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum TextCommand {
    /// Embed one sentence per line of a text file with a BERT-family encoder; writes (N, dim) float32 .npy.
    Embed {
        /// HF BertModel directory with tokenizer.json or vocab.txt (e.g. all-MiniLM-L6-v2).
        #[arg(long)]
        model: PathBuf,
        /// UTF-8 text, one sentence per line (row i of the output is line i).
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// mean (over non-padding tokens, as sentence-transformers) or cls.
        #[arg(long, default_value = "mean")]
        pooling: String,
        /// Scale each embedding to unit L2 norm.
        #[arg(long)]
        normalize: bool,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Sentences per forward pass.
        #[arg(long, default_value_t = 32)]
        batch: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReportsCommand {
    /// Label reports with the 14 CheXpert observations (positive/negative/uncertain) and evidence spans.
    Label {
        /// Reports: a directory or .tgz of IU/Open-i XML, a directory of .txt, a .jsonl (id, text) or a .csv (id, text).
        input: PathBuf,
        /// Output JSONL, one line per report.
        #[arg(long)]
        out: PathBuf,
        /// Sections to label, comma-separated (findings, impression, indication, comparison, technique, preamble).
        #[arg(long, default_value = "findings,impression", value_delimiter = ',')]
        sections: Vec<String>,
        /// When No Finding is positive: `normal` (no finding at all, counting findings outside the 14) or `chexpert` (none of the 14).
        #[arg(long, default_value = "normal")]
        no_finding: String,
        /// Which hedges label a finding uncertain: `probable` ("probably", "likely", "suspicious for", "A versus B"; a finding raised only as a possibility, "may represent", "possible", "cannot exclude", stays in the evidence with "weak": true but sets no label) or `all` (every hedge, as the CheXpert labeler does).
        #[arg(long, default_value = "probable")]
        hedges: String,
    },
    /// Split reports into sections (findings, impression, indication, comparison, technique, preamble).
    Sections {
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Replace names, dates, phone numbers, IDs, addresses and ages over 89 with typed placeholders.
    Scrub {
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Report-generation metrics: BLEU-1..4, ROUGE-L and CheXpert-label F1 (pairs matched by id).
    Score {
        /// Generated reports, JSONL with id and text.
        #[arg(long)]
        pred: PathBuf,
        /// Reference reports, JSONL with id and text.
        #[arg(long = "ref")]
        reference: PathBuf,
        /// Write the metrics as JSON here (they are printed either way).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Benchmark the labeler (reports/s on one core, memory) and, with --gold, score it against IU MeSH gold labels.
    Bench {
        input: PathBuf,
        /// An IU `mesh_to_chexpert.json` mapping: score against the reports' MeSH codes.
        #[arg(long)]
        gold: Option<PathBuf>,
        /// Write each disagreement with the gold as JSONL here.
        #[arg(long)]
        errors: Option<PathBuf>,
        /// Label the corpus this many times for the throughput figure.
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Hedge policy to label and score with (`probable` or `all`, as for `reports label`); the other is scored too, for comparison.
        #[arg(long, default_value = "probable")]
        hedges: String,
    },
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
pub struct SynthArgs {
    /// Output directory (dicom/, reports.jsonl, truth.jsonl, phi.jsonl).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of patients (each with one or more studies).
    #[arg(long)]
    pub patients: usize,
    /// Number of sites (vendors, CR/DX, bit depth, VOI, noise, transfer syntax differ).
    #[arg(long, default_value_t = 3)]
    pub sites: usize,
    /// Random seed: the same seed gives byte-identical output.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Rows and columns of every image.
    #[arg(long, default_value_t = 512)]
    pub size: usize,
    /// NIH ChestX-ray14 table (Data_Entry_2017*.csv[.gz]): sample label combinations, age, sex, view and follow-ups from it.
    #[arg(long)]
    pub cohort: Option<PathBuf>,
    /// Also write contact-sheet.png: examples per observation.
    #[arg(long)]
    pub contact_sheet: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// Predictions: JSONL with id, scores {observation: probability or logit}, optional "kind": "logit".
    #[arg(long)]
    pub pred: PathBuf,
    /// Truth: JSONL with id, patient_id, labels {observation: 0|1} and group fields (as radfm synth writes).
    #[arg(long)]
    pub truth: PathBuf,
    /// Report directory (metrics.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Subgroup fields, comma-separated (age_band is derived from age when absent).
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Bootstrap resamples (of patients).
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A second model's predictions on the same images: DeLong's test per observation.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Operating point for threshold metrics: youden, sens:X or spec:X.
    #[arg(long, default_value = "youden")]
    pub operating_point: String,
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
