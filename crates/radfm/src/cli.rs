//! Command-line interface definition.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use radfm_core::UncertainPolicy;

/// Enumerated flags: clap `ValueEnum`s whose `--help` lists the values,
/// with `as_str` giving a value's name.
macro_rules! value_enums {
    ($($(#[$m:meta])* $name:ident { $($var:ident => $s:literal),+ $(,)? })+) => {$(
        $(#[$m])*
        #[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $(#[value(name = $s)] $var),+
        }
        #[allow(dead_code)] // not every flag needs its name back
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$var => $s),+
                }
            }
        }
    )+};
}

value_enums! {
    /// Where tensors live.
    Device { Cpu => "cpu", Cuda => "cuda" }
    /// The pretraining objective.
    ObjectiveArg { Mae => "mae", Clip => "clip" }
    /// Pretraining augmentations.
    AugmentArg { Standard => "standard", None => "none" }
    /// What `model run` writes.
    ModelOutput { LastHiddenState => "last_hidden_state", Pooled => "pooled" }
    /// Sentence pooling of a text encoder.
    TextPooling { Mean => "mean", Cls => "cls" }
    /// When No Finding is positive.
    NoFindingArg { Normal => "normal", Chexpert => "chexpert" }
    /// Which hedges label a finding uncertain.
    HedgesArg { Probable => "probable", All => "all" }
    /// The unit a split assigns.
    SplitUnit { Patient => "patient" }
    /// The unit of the bootstrap.
    EvalUnit { Patient => "patient", Image => "image" }
    /// Which split's images to embed.
    SplitArg { All => "all", Train => "train", Val => "val", Test => "test" }
    /// How an image encoder's tokens become one embedding.
    PoolingArg { Cls => "cls", Mean => "mean", Pooled => "pooled" }
    /// Class weights of a probe.
    ClassWeightArg { None => "none", Balanced => "balanced" }
    /// How `finetune` adapts the encoder.
    MethodArg { Full => "full", Lora => "lora" }
    /// Positive weights of the fine-tuning loss.
    PosWeightArg { None => "none", Balanced => "balanced" }
    /// The zero-shot softmax temperature.
    TemperatureArg { One => "1", Model => "model" }
}

/// A count of at least 1.
fn at_least_1() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}

/// A count of at least 1, as u64.
fn at_least_1_u64() -> clap::builder::RangedU64ValueParser<u64> {
    clap::builder::RangedU64ValueParser::<u64>::new().range(1..)
}

/// A number that `ok` accepts, else an error saying `what` it must be.
fn number(s: &str, ok: fn(f64) -> bool, what: &str) -> Result<f64, String> {
    let x: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if x.is_finite() && ok(x) {
        Ok(x)
    } else {
        Err(format!("{x} is not {what}"))
    }
}

/// A finite number greater than 0.
fn positive_f64(s: &str) -> Result<f64, String> {
    number(s, |x| x > 0.0, "a number greater than 0")
}

/// A finite number of at least 0.
fn non_negative_f64(s: &str) -> Result<f64, String> {
    number(s, |x| x >= 0.0, "a number of at least 0")
}

/// A fraction in [0, 1].
fn fraction(s: &str) -> Result<f64, String> {
    number(s, |x| (0.0..=1.0).contains(&x), "in [0, 1]")
}

/// A rate in [0, 1).
fn rate(s: &str) -> Result<f64, String> {
    number(s, |x| (0.0..1.0).contains(&x), "in [0, 1)")
}

/// A number of encoder blocks, or `all` (every block: usize::MAX, cut to the depth later).
fn blocks(s: &str) -> Result<usize, String> {
    match s {
        "all" => Ok(usize::MAX),
        s => s
            .parse()
            .map_err(|_| format!("{s:?} is not a number of blocks or \"all\"")),
    }
}

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
    /// Embed a dataset's images with an image encoder (a radfm run, HF Dinov2Model, ViTModel,
    /// CLIPModel): EMB/embeddings.npy, index.jsonl (ids, splits, weak labels, subgroups), embed.json.
    Embed(EmbedArgs),
    /// Linear probes on embeddings (one L2 logistic regression per observation), at label
    /// fractions and k-shot draws: RUN/pred.jsonl for `radfm evaluate`, RUN/probe.json.
    Probe(ProbeArgs),
    /// Fine-tune an image encoder with a 14-observation head, fully or with LoRA (adapters in
    /// Hugging Face PEFT's format): RUN/model/ (a classifier directory), RUN/pred.jsonl on the
    /// test split, metrics with the validation macro-AUROC, checkpoints with exact resume.
    Finetune(FinetuneArgs),
    /// Zero-shot classification from text prompts with a CLIP model (a radfm CLIP run, HF
    /// CLIPModel or open_clip directory): CheXzero's paired softmax per observation, to
    /// PRED.jsonl for `radfm evaluate`.
    Zeroshot(ZeroshotArgs),
    /// Image retrieval with a CLIP model: build an index of a dataset's images, query it by
    /// text, image or id, and evaluate it (precision@k, recall@k, chance).
    #[command(subcommand)]
    Retrieve(RetrieveCommand),
    /// The whole foundation-model lifecycle on a synthetic hospital, testing the review's
    /// claims (labels saved, zero-shot, robustness to a new site, fairness, weak labels):
    /// DIR/report.html, DIR/claims.json, DIR/commands.sh.
    Demo(DemoArgs),
    /// Benchmarks (bench/*.py run them beside the Python peer and print the ratio).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Score DICOM images with a classifier directory (`finetune`'s RUN/model/ or `probe
    /// --export`'s): one line {"id": SOPInstanceUID, "scores": {...}} per image.
    Predict(PredictArgs),
    /// Write one image's results as a DICOM SR (Comprehensive 3D SR, TID 1500).
    Sr(SrArgs),
    /// Serve a classifier over HTTP: /healthz, /v1/model, /v1/predict, /v1/sr, /metrics.
    Serve(ServeArgs),
    /// Results back into a PACS over DICOMweb (QIDO-RS, WADO-RS, STOW-RS).
    #[command(subcommand)]
    Pacs(PacsCommand),
    /// Print a classifier directory's model card.
    Card(CardArgs),
    /// Check a classifier directory: its files against their checksums, and the model's
    /// scores on the stored reference inputs against the stored outputs.
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The classifier directory.
    #[arg(long)]
    pub model: PathBuf,
    /// DICOM files, or folders searched for DICOM files (found by content, not by name).
    #[arg(long, num_args = 1.., required = true)]
    pub input: Vec<PathBuf>,
    /// Where the predictions go (JSON lines, written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Images scored at once (each on its own thread).
    #[arg(long, default_value_t = 1, value_parser = at_least_1())]
    pub jobs: usize,
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SrArgs {
    /// The classifier directory.
    #[arg(long)]
    pub model: PathBuf,
    /// One DICOM image.
    #[arg(long)]
    pub input: PathBuf,
    /// The SR to write (Part 10, written atomically).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The classifier directory.
    #[arg(long)]
    pub model: PathBuf,
    /// The address to listen on (loopback by default; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// A file holding the bearer token every endpoint but /healthz requires.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Listen on a non-loopback address without a token (a warning says so).
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// The largest request body, in MiB; larger bodies get 413 before they are read.
    #[arg(long, default_value_t = 256, value_parser = at_least_1())]
    pub max_body_mb: usize,
    /// Inference requests run at once.
    #[arg(long, default_value_t = 1, value_parser = at_least_1())]
    pub workers: usize,
    /// Requests that may wait for a worker; beyond them the server answers 503 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Score up to this many waiting requests in one forward pass per worker: faster per
    /// image under load, but the scores may then differ from `radfm predict`'s in the last
    /// bits (1: one image per pass, equal to predict's).
    #[arg(long, default_value_t = 1, value_parser = at_least_1())]
    pub batch: usize,
    /// With --batch > 1 and every other worker busy: how long, in milliseconds, a worker may
    /// wait for its batch to fill, counted from taking the batch's first request.
    #[arg(long, default_value_t = 5)]
    pub batch_wait_ms: u64,
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
}

#[derive(Subcommand, Debug)]
pub enum PacsCommand {
    /// Score every study on a DICOMweb server not yet done and store one SR per study back;
    /// idempotent (a rerun, or a run after a kill, stores no second SR).
    Sync(PacsSyncArgs),
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["once", "poll"])))]
pub struct PacsSyncArgs {
    /// The DICOMweb base URL (for Orthanc: http://HOST:8042/dicom-web).
    #[arg(long)]
    pub dicomweb: String,
    /// The classifier directory.
    #[arg(long)]
    pub model: PathBuf,
    /// The state database (SQLite): which studies are done, and each study's SR UID.
    #[arg(long)]
    pub state: PathBuf,
    /// One pass, then exit.
    #[arg(long)]
    pub once: bool,
    /// A pass every SECONDS until SIGTERM or Ctrl-C.
    #[arg(long, value_name = "SECONDS", value_parser = at_least_1_u64())]
    pub poll: Option<u64>,
    /// A file holding the bearer token for the DICOMweb server.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
}

#[derive(Args, Debug)]
pub struct CardArgs {
    /// The classifier directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Print the card as JSON (what GET /v1/model serves).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The classifier directory.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
}

#[derive(Args, Debug)]
pub struct ZeroshotArgs {
    /// The CLIP model: a radfm CLIP run (or its model/), a HF CLIPModel directory with
    /// tokenizer.json, or an open_clip directory.
    #[arg(long)]
    pub model: PathBuf,
    /// A dataset (from `radfm ingest`) whose images are scored.
    #[arg(long, conflicts_with = "input", required_unless_present = "input")]
    pub data: Option<PathBuf>,
    /// The dataset's split to score (all for every image).
    #[arg(long, value_enum, default_value_t = SplitArg::Test, requires = "data")]
    pub split: SplitArg,
    /// Preprocessed images instead of a dataset: float32 .npy of shape (N, C, H, W).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// One id per line for --input's rows (default: the row numbers 0..N-1).
    #[arg(long, requires = "input")]
    pub ids: Option<PathBuf>,
    /// Output: one line per image, {"id", "scores": {observation: p}, "prompts"}.
    #[arg(long)]
    pub out: PathBuf,
    /// A prompt set: {"name", "version", "templates", "observations": {obs: {"positive",
    /// "negative"}}}. Default: radfm's shipped chexzero set; `chexzero` or `elixr` name a
    /// shipped set.
    #[arg(long)]
    pub prompts: Option<String>,
    /// Softmax temperature: 1 (CheXzero) or `model` (1 / exp(the model's logit scale)).
    #[arg(long, value_enum, default_value_t = TemperatureArg::One)]
    pub temperature: TemperatureArg,
    /// More checkpoints, comma-separated, whose probabilities are averaged with --model's.
    #[arg(long, value_delimiter = ',')]
    pub ensemble: Vec<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32, value_parser = at_least_1())]
    pub batch: usize,
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// Threads for decoding and preprocessing (default: all cores).
    #[arg(long, value_parser = at_least_1())]
    pub jobs: Option<usize>,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum RetrieveCommand {
    /// Embed a dataset's images with the model's image tower into INDEX/ (normalised
    /// embeddings.npy, index.jsonl with each image's catalog metadata, retrieve.json).
    Index(RetrieveIndexArgs),
    /// The top k images for a text, an image file or an indexed image's SOP Instance UID.
    Query(RetrieveQueryArgs),
    /// On the index's test split: image-to-image precision@k (relevant: sharing a positive
    /// observation), report-to-own-image recall@k, and their chance levels.
    Eval(RetrieveEvalArgs),
}

#[derive(Args, Debug)]
pub struct RetrieveIndexArgs {
    /// The CLIP model (as for `radfm zeroshot`).
    #[arg(long)]
    pub model: PathBuf,
    /// The dataset (from `radfm ingest`).
    #[arg(long)]
    pub data: PathBuf,
    /// The index directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Which images: all, or one split's.
    #[arg(long, value_enum, default_value_t = SplitArg::All)]
    pub split: SplitArg,
    /// Also build an approximate (HNSW) index, which `query` then searches: for collections
    /// beyond about a million images, where exact search is slow. `radfm bench retrieval
    /// --approximate` measures its recall against exact search.
    #[arg(long)]
    pub approximate: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32, value_parser = at_least_1())]
    pub batch: usize,
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// Threads for decoding and preprocessing (default: all cores).
    #[arg(long, value_parser = at_least_1())]
    pub jobs: Option<usize>,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct RetrieveQueryArgs {
    /// An index from `radfm retrieve index`.
    #[arg(long)]
    pub index: PathBuf,
    /// A text query (e.g. "large left pleural effusion").
    #[arg(long, group = "query", required_unless_present_any = ["image", "id"])]
    pub text: Option<String>,
    /// A DICOM image file as the query.
    #[arg(long, group = "query")]
    pub image: Option<PathBuf>,
    /// An indexed image's SOP Instance UID as the query (it is left out of its own results).
    #[arg(long, group = "query")]
    pub id: Option<String>,
    /// How many results.
    #[arg(long, default_value_t = 10, value_parser = at_least_1())]
    pub k: usize,
    /// The model to embed the query with (default: the one the index was built with, which
    /// must be unchanged; another model is refused).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Search exactly even when the index has an approximate (HNSW) graph.
    #[arg(long)]
    pub exact: bool,
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
}

#[derive(Args, Debug)]
pub struct RetrieveEvalArgs {
    /// An index from `radfm retrieve index` (its test-split images are evaluated).
    #[arg(long)]
    pub index: PathBuf,
    /// Cut-offs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,5,10", value_parser = at_least_1())]
    pub k: Vec<usize>,
    /// Write the results as JSON here (they are printed either way).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The dataset the index was built from, for the reports (default: the recorded one).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// The encoder: a radfm run directory (or its model/), or a Hugging Face directory with
    /// config.json, model.safetensors and preprocessor_config.json.
    #[arg(long)]
    pub model: PathBuf,
    /// The dataset (from `radfm ingest`).
    #[arg(long)]
    pub data: PathBuf,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Which images: all, or one split's (from `radfm split`).
    #[arg(long, value_enum, default_value_t = SplitArg::All)]
    pub split: SplitArg,
    /// `pooled`: the checkpoint's own pooled output (DINOv2: the normed class token; CLIP: the
    /// post-layernorm class token; ViT: its pooler); `cls`: the class token of the last hidden
    /// state; `mean`: the mean of the patch tokens (class and register tokens left out).
    #[arg(long, value_enum, default_value_t = PoolingArg::Pooled)]
    pub pooling: PoolingArg,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32, value_parser = at_least_1())]
    pub batch: usize,
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// Threads for decoding and preprocessing (default: all cores).
    #[arg(long, value_parser = at_least_1())]
    pub jobs: Option<usize>,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// A `radfm embed` output directory.
    #[arg(long)]
    pub embeddings: PathBuf,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Labels instead of the weak ones: JSONL with id and labels {observation: 1|0|-1} (a
    /// synthetic archive's truth.jsonl); every embedded image must have a line.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Inverse regularisation strength: `auto` sweeps 17 values from 1e-4 to 1e4 and picks
    /// each observation's on the validation rows (AUROC), or a fixed positive number.
    #[arg(long = "C", default_value = "auto")]
    pub c: String,
    /// Fractions of the training patients, comma-separated (0.01,0.1,1).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub fractions: Vec<f64>,
    /// k-shot draws, comma-separated: k positive and k negative training patients per observation.
    #[arg(long, value_delimiter = ',', value_parser = at_least_1())]
    pub shots: Vec<usize>,
    /// Repeat every draw with its own seed; repeats are separate runs, suffixed -r<i>.
    #[arg(long, default_value_t = 1, value_parser = at_least_1())]
    pub repeats: usize,
    /// Seed of the draws (patient subsamples, shots, the holdout without a val split).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Standardise each feature with the training rows' mean and deviation.
    #[arg(long)]
    pub standardize: bool,
    /// `balanced` weighs each class by n / (2 x its count), as scikit-learn's
    /// class_weight="balanced".
    #[arg(long, value_enum, default_value_t = ClassWeightArg::None)]
    pub class_weight: ClassWeightArg,
    /// What an uncertain (-1) label becomes: left out, negative or positive. An observation a
    /// labelled report does not mention is negative.
    #[arg(long, value_enum, default_value_t = UncertainPolicy::Exclude)]
    pub uncertain: UncertainPolicy,
    /// Write a classifier directory (the encoder and the first run's probes) for `radfm
    /// predict` and `radfm serve`; needs --model, the encoder the embeddings were made with.
    #[arg(long, requires = "model")]
    pub export: Option<PathBuf>,
    /// The encoder directory of the embeddings (with --export; checked by checksum).
    #[arg(long, requires = "export")]
    pub model: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time ViT training steps (image 64, 1 channel, patch 8, dim 192, depth 6, heads 3, MLP 4x,
    /// batch 32, AdamW, BCE over 14 outputs) and ViT-S/16 inference (batch 16, 224 px). Prints JSON.
    Vit {
        #[arg(long, default_value_t = 10, value_parser = at_least_1())]
        steps: usize,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        #[arg(long, default_value_t = 3, value_parser = at_least_1())]
        infer_reps: usize,
        #[arg(long, value_enum, default_value_t = Device::Cpu)]
        device: Device,
        /// Split each batch (training and inference) into this many parts, computed at
        /// once on replicas of the model (data parallel); 0 picks `pretrain`'s default
        #[arg(long, default_value_t = 0)]
        parts: usize,
    },
    /// Time fine-tuning steps of a radfm preset through `finetune`'s own engine (random
    /// images, 14 labels) and report the process's peak RSS: `bench/finetune_memory.py` runs
    /// it for full and LoRA beside PyTorch and PEFT. Prints JSON.
    Finetune(FinetuneBenchArgs),
    /// Time `retrieve`'s exact top-k search of QUERIES against EMBEDDINGS (float32 .npy,
    /// N x D and Q x D): `bench/zeroshot_speed.py` runs it beside NumPy. Prints JSON.
    Retrieval {
        #[arg(long)]
        embeddings: PathBuf,
        #[arg(long)]
        queries: PathBuf,
        #[arg(long, default_value_t = 10, value_parser = at_least_1())]
        k: usize,
        /// Also build radfm's HNSW index over EMBEDDINGS and report its build time, queries/s
        /// and recall@k against the exact search.
        #[arg(long)]
        approximate: bool,
    },
}

#[derive(Args, Debug)]
pub struct FinetuneBenchArgs {
    #[arg(long, value_enum)]
    pub method: MethodArg,
    #[arg(long, default_value = "vit-small")]
    pub model: String,
    #[arg(long, default_value_t = 224, value_parser = at_least_1())]
    pub image_size: usize,
    #[arg(long, default_value_t = 16, value_parser = at_least_1())]
    pub patch: usize,
    #[arg(long, default_value_t = 32, value_parser = at_least_1())]
    pub batch: usize,
    #[arg(long, default_value_t = 16, value_parser = at_least_1())]
    pub rank: usize,
    #[arg(long, default_value = "q,v")]
    pub targets: String,
    #[arg(long, default_value_t = 5, value_parser = at_least_1())]
    pub steps: usize,
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Data-parallel parts (default: `finetune`'s)
    #[arg(long, value_parser = at_least_1())]
    pub parts: Option<usize>,
    /// Parts computed at once (0: all), as `finetune --parts-in-flight`
    #[arg(long, default_value_t = 0)]
    pub parts_in_flight: usize,
    /// Blocks whose activations are recomputed (N or all; default as `finetune --recompute`)
    #[arg(long, value_parser = blocks)]
    pub recompute: Option<usize>,
}

#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// Dataset directory written by `radfm ingest` (its shards are read).
    #[arg(long)]
    pub data: PathBuf,
    /// mae (masked autoencoder, on the train split when the dataset has splits) or clip
    /// (image-report contrastive).
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Mae)]
    pub objective: ObjectiveArg,
    /// vit-tiny, vit-small or vit-base (patch --patch, sin-cos positions).
    #[arg(long, default_value = "vit-tiny")]
    pub model: String,
    /// Run directory: config.json, metrics.jsonl, checkpoints/, model/.
    #[arg(long)]
    pub out: PathBuf,
    /// Image side in pixels, for a preset --model.
    #[arg(long, default_value_t = 64, value_parser = at_least_1())]
    pub image_size: usize,
    /// Patch side in pixels, for a preset --model; must divide --image-size.
    #[arg(long, default_value_t = 8, value_parser = at_least_1())]
    pub patch: usize,
    /// Images per micro-batch.
    #[arg(long, default_value_t = 32, value_parser = at_least_1())]
    pub batch: usize,
    /// Optimizer steps (default: 1 epoch when --epochs is not given either). Changeable on --resume.
    #[arg(long, conflicts_with = "epochs", value_parser = at_least_1_u64())]
    pub steps: Option<u64>,
    /// Epochs, instead of --steps. Changeable on --resume.
    #[arg(long, value_parser = at_least_1_u64())]
    pub epochs: Option<u64>,
    /// Peak learning rate (after warmup; cosine decay to 1% of it).
    #[arg(long, default_value_t = 1e-3, value_parser = positive_f64)]
    pub lr: f64,
    /// AdamW weight decay (not applied to biases, norms, tokens and positions).
    #[arg(long, default_value_t = 0.05, value_parser = non_negative_f64)]
    pub weight_decay: f64,
    /// Warmup steps (default: 5% of the steps).
    #[arg(long)]
    pub warmup: Option<u64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Checkpoint every N steps (and at the end). Changeable on --resume.
    #[arg(long, default_value_t = 100, value_parser = at_least_1_u64())]
    pub checkpoint_every: u64,
    /// Continue the run in --out from its newest checkpoint. Every other flag must then
    /// equal the run's config.json, except --steps/--epochs, --checkpoint-every, --jobs,
    /// --quiet and --device.
    #[arg(long)]
    pub resume: bool,
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// Text tower for --objective clip: a HF BertModel directory with tokenizer.json
    /// (e.g. all-MiniLM-L6-v2). It stays frozen; its report embeddings are computed once.
    #[arg(long)]
    pub text_model: Option<PathBuf>,
    /// Augmentations: standard (RandResizedCrop 60-100%, RandRotate 10 deg, RandAdjustContrast,
    /// RandGaussianNoise; never a flip) or none.
    #[arg(long, value_enum, default_value_t = AugmentArg::Standard)]
    pub augment: AugmentArg,
    /// --objective clip: fraction of patients held out for retrieval when the dataset has
    /// no splits (with splits, train trains and val, or else test, is held out).
    #[arg(long, default_value_t = 0.2, value_parser = rate)]
    pub holdout: f64,
    /// --objective clip: width of the shared embedding space.
    #[arg(long, default_value_t = 128, value_parser = at_least_1())]
    pub projection_dim: usize,
    /// Micro-batches of --batch per optimizer step (gradient accumulation).
    #[arg(long, default_value_t = 1, value_parser = at_least_1())]
    pub accumulate: usize,
    /// Cut each batch into N parts computed at once on replicas of the model (data
    /// parallel over the cores; CLIP's loss still sees the whole batch). Default on the CPU:
    /// two per core, at most 8, at least 8 images a part; 1 on a GPU. The count is saved in
    /// config.json, since each part draws its own masks and drop-path.
    #[arg(long, value_parser = at_least_1())]
    pub parts: Option<usize>,
    /// Compute at most N of a batch's data-parallel parts at once (default 0: all). Fewer parts
    /// in flight than parts lowers the peak memory (each part holds its activations until its
    /// backward); the results are the same bit for bit. Changeable on --resume.
    #[arg(long, default_value_t = 0)]
    pub parts_in_flight: usize,
    /// Drop-path (stochastic depth) rate of the encoder's last block (0 = off).
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    pub drop_path: f64,
    /// --objective mae: reconstruct each patch normalised by its own mean and deviation (true,
    /// as in the MAE paper) or the pixels themselves (false: the encoder must keep brightness
    /// and contrast).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub norm_pix_loss: bool,
    /// Loader threads for reading shards and building batches (default: all cores).
    /// Changeable on --resume.
    #[arg(long, value_parser = at_least_1())]
    pub jobs: Option<usize>,
    /// Encoder depth override (layers), for small experiments.
    #[arg(long, value_parser = at_least_1())]
    pub depth: Option<usize>,
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct FinetuneArgs {
    /// vit-tiny, vit-small or vit-base (random initialisation, patch --patch), or a checkpoint
    /// directory `radfm model run` loads: a radfm run (or its model/), HF Dinov2Model,
    /// ViTModel or CLIPModel (with its preprocessor_config.json).
    #[arg(long)]
    pub model: String,
    /// Dataset directory from `radfm ingest`, split by `radfm split`: train trains, val
    /// selects the checkpoint, test is predicted.
    #[arg(long)]
    pub data: PathBuf,
    /// Run directory: config.json, params.json, metrics.jsonl, checkpoints/, best/, model/, pred.jsonl.
    #[arg(long)]
    pub out: PathBuf,
    /// full (every weight trains) or lora (the encoder frozen, adapters on --targets).
    #[arg(long, value_enum)]
    pub method: MethodArg,
    /// LoRA rank.
    #[arg(long, default_value_t = 16, value_parser = at_least_1())]
    pub rank: usize,
    /// LoRA alpha: the update is scaled by alpha / rank (alpha / sqrt(rank) with --rslora).
    #[arg(long, default_value_t = 16.0, value_parser = positive_f64)]
    pub alpha: f64,
    /// Rank-stabilised LoRA scaling, alpha / sqrt(rank).
    #[arg(long)]
    pub rslora: bool,
    /// Dropout on the input of the LoRA branch, as PEFT's lora_dropout (masks drawn from the
    /// run's seed, so a resumed run stays exact).
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    pub lora_dropout: f64,
    /// The adapted projections: q,v (default), all-linear, or a list of q, k, v, o, fc1, fc2,
    /// pooler and module names as PEFT's target_modules takes them (query, attention.q_proj,
    /// intermediate.dense, ...).
    #[arg(long, default_value = "q,v")]
    pub targets: String,
    /// Optimizer steps (default: --epochs 3). Changeable on --resume.
    #[arg(long, conflicts_with = "epochs", value_parser = at_least_1_u64())]
    pub steps: Option<u64>,
    /// Epochs over the labelled training frames, instead of --steps. Changeable on --resume.
    #[arg(long, value_parser = at_least_1_u64())]
    pub epochs: Option<u64>,
    #[arg(long, default_value_t = 32, value_parser = at_least_1())]
    pub batch: usize,
    /// Image side in pixels for a preset --model (default 224); a checkpoint trains at its own size.
    #[arg(long, value_parser = at_least_1())]
    pub image_size: Option<usize>,
    /// Patch side in pixels for a preset --model.
    #[arg(long, default_value_t = 16, value_parser = at_least_1())]
    pub patch: usize,
    /// Transformer blocks of a preset (default: the preset's own, 12), as `radfm pretrain --depth`.
    #[arg(long, value_parser = at_least_1())]
    pub depth: Option<usize>,
    /// Peak learning rate (default: 1e-4 full, 1e-3 LoRA; warmup, then cosine to 1% of it).
    #[arg(long, value_parser = positive_f64)]
    pub lr: Option<f64>,
    /// AdamW weight decay (default: 0.05 full, 0 LoRA; never on biases, norms, tokens, positions).
    #[arg(long, value_parser = non_negative_f64)]
    pub weight_decay: Option<f64>,
    /// Warmup steps (default: 5% of the steps).
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Layer-wise learning-rate decay for --method full, e.g. 0.75: block i of L trains at
    /// lr * decay^(L - i), the embeddings at decay^(L + 1), the head at lr.
    #[arg(long, value_parser = positive_f64)]
    pub layer_decay: Option<f64>,
    /// Weight of the positives in the loss: none, or balanced (negatives / positives per
    /// observation in the training labels, within 1..100).
    #[arg(long, value_enum, default_value_t = PosWeightArg::None)]
    pub pos_weight: PosWeightArg,
    /// Augmentations (as pretrain's): standard or none.
    #[arg(long, value_enum, default_value_t = AugmentArg::None)]
    pub augment: AugmentArg,
    /// Drop-path (stochastic depth) rate of the encoder's last block (0 = off).
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    pub drop_path: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Labels by image id (a truth.jsonl: {"id", "labels": {observation: 1|0|-1}}) instead of
    /// the weak labels of the dataset's report labeler.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Uncertain (-1) labels: exclude (masked out of the loss), zeros or ones.
    #[arg(long, value_enum, default_value_t = UncertainPolicy::Exclude)]
    pub uncertain: UncertainPolicy,
    /// Continue the run in --out from its newest checkpoint (other flags must match its config.json).
    #[arg(long)]
    pub resume: bool,
    /// --method lora: also write the adapters merged into dense encoder weights (RUN/model/encoder/).
    #[arg(long)]
    pub merge: bool,
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// Data-parallel parts per batch (default on the CPU: two per core, at most 8, at least
    /// 8 images each; 1 on a GPU). Saved in config.json.
    #[arg(long, value_parser = at_least_1())]
    pub parts: Option<usize>,
    /// Compute at most N of a batch's data-parallel parts at once (default 0: all). Fewer parts
    /// in flight than parts lowers the peak memory (each part holds its activations until its
    /// backward); the results are the same bit for bit. Changeable on --resume.
    #[arg(long, default_value_t = 0)]
    pub parts_in_flight: usize,
    /// Recompute the activations of the encoder's first N blocks (or all) in the backward
    /// pass instead of keeping them from the forward (activation checkpointing): less memory
    /// (such a block holds only its input until its backward), for one more forward pass of
    /// those blocks per step. Default: a quarter of the blocks (rounded up) with LoRA, 0 with
    /// full fine-tuning. Saved in config.json.
    #[arg(long, value_parser = blocks)]
    pub recompute: Option<usize>,
    /// Checkpoint, and evaluate on val, every N steps (and at the end). Changeable on --resume.
    #[arg(long, default_value_t = 100, value_parser = at_least_1_u64())]
    pub checkpoint_every: u64,
    /// Stop after N evaluations without a better validation macro-AUROC (default: run every step).
    #[arg(long, value_parser = at_least_1())]
    pub patience: Option<usize>,
    /// Loader threads (default: all cores).
    #[arg(long, value_parser = at_least_1())]
    pub jobs: Option<usize>,
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
        #[arg(long, value_enum, default_value_t = ModelOutput::Pooled)]
        output: ModelOutput,
        /// A Hugging Face PEFT LoRA adapter directory (adapter_config.json,
        /// adapter_model.safetensors; module names of transformers 4.x or 5) to apply to the
        /// encoder, or a `radfm finetune --method lora` model directory holding one in adapter/.
        #[arg(long)]
        lora: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Device::Cpu)]
        device: Device,
        /// Images per forward pass.
        #[arg(long, default_value_t = 16, value_parser = at_least_1())]
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
        #[arg(long, value_enum, default_value_t = TextPooling::Mean)]
        pooling: TextPooling,
        /// Scale each embedding to unit L2 norm.
        #[arg(long)]
        normalize: bool,
        #[arg(long, value_enum, default_value_t = Device::Cpu)]
        device: Device,
        /// Sentences per forward pass.
        #[arg(long, default_value_t = 32, value_parser = at_least_1())]
        batch: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReportsCommand {
    /// Label reports with the 14 CheXpert observations (positive/negative/uncertain) and evidence spans.
    /// With --data, label a dataset's stored reports into its catalog instead (weak labels: ingest
    /// does this for new datasets; this fills in datasets ingested before, or labelled by other rules).
    Label {
        /// Reports: a directory or .tgz of IU/Open-i XML, a directory of .txt, a .jsonl (id, text) or a .csv (id, text).
        #[arg(required_unless_present = "data")]
        input: Option<PathBuf>,
        /// Output JSONL, one line per report.
        #[arg(long, required_unless_present = "data")]
        out: Option<PathBuf>,
        /// A dataset (from `radfm ingest`): label its stored reports into its catalog, with the
        /// built-in rules, findings and impression, hedges `probable`.
        #[arg(long, conflicts_with_all = ["input", "out", "sections", "no_finding", "hedges"])]
        data: Option<PathBuf>,
        /// With --data: relabel every report, not only those without labels from these rules.
        #[arg(long, requires = "data")]
        all: bool,
        /// Sections to label, comma-separated (findings, impression, indication, comparison, technique, preamble).
        #[arg(long, default_value = "findings,impression", value_delimiter = ',')]
        sections: Vec<String>,
        /// When No Finding is positive: `normal` (no finding at all, counting findings outside the 14) or `chexpert` (none of the 14).
        #[arg(long, value_enum, default_value_t = NoFindingArg::Normal)]
        no_finding: NoFindingArg,
        /// Which hedges label a finding uncertain: `probable` ("probably", "likely", "suspicious for", "A versus B"; a finding raised only as a possibility, "may represent", "possible", "cannot exclude", stays in the evidence with "weak": true but sets no label) or `all` (every hedge, as the CheXpert labeler does).
        #[arg(long, value_enum, default_value_t = HedgesArg::Probable)]
        hedges: HedgesArg,
    },
    /// Split reports into sections (findings, impression, indication, comparison, technique, preamble).
    Sections {
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Find PHI (names, dates, times, phone numbers, IDs, e-mail and web addresses, addresses,
    /// ages over 89, institutions) and replace it with typed placeholders such as [NAME], or
    /// with realistic surrogates. Writes JSONL: id, text, phi (the types replaced) and spans
    /// ([start, end, type], character offsets into the input text).
    Scrub {
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Realistic surrogates instead of placeholders, consistent within a report (the same
        /// name always gets the same fake name); keyed by --key.
        #[arg(long, requires = "key")]
        surrogates: bool,
        /// Secret key file for --surrogates (64 hex characters; created with mode 0600 if missing).
        #[arg(long)]
        key: Option<PathBuf>,
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
        #[arg(long, default_value_t = 5, value_parser = at_least_1())]
        repeat: usize,
        /// Hedge policy to label and score with (`probable` or `all`, as for `reports label`); the other is scored too, for comparison.
        #[arg(long, value_enum, default_value_t = HedgesArg::Probable)]
        hedges: HedgesArg,
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
    /// Long side of stored images, in pixels (at least 8).
    #[arg(long, default_value_t = 512, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(8..))]
    pub size: usize,
    /// Keep identifiers (no de-identification). Only for data that is already anonymous.
    #[arg(long)]
    pub no_deid: bool,
    /// Ingest images that may carry burned-in text instead of quarantining them.
    #[arg(long)]
    pub allow_burned_in: bool,
    /// Replace PHI in reports with realistic surrogates (fake names, shifted dates, same shapes),
    /// consistent within a patient, instead of typed placeholders such as [NAME].
    #[arg(long, conflicts_with = "no_deid")]
    pub surrogates: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = at_least_1())]
    pub jobs: Option<usize>,
    /// Pseudonymisation key file (default: DATASET/../<name>.deid-key); created with mode 0600.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Site label recorded for every image of this run (default: derived from the institution).
    #[arg(long)]
    pub site: Option<String>,
    /// Images per shard.
    #[arg(long, default_value_t = 256, value_parser = at_least_1())]
    pub shard_size: usize,
    /// Known per-image labels keyed by the original SOP Instance UID (a synthetic archive's
    /// truth.jsonl): written as DATASET/truth.jsonl under the dataset's pseudonyms, for
    /// `radfm probe --labels` and `radfm evaluate --truth`.
    #[arg(long)]
    pub truth: Option<PathBuf>,
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
    #[arg(long, value_parser = at_least_1())]
    pub patients: usize,
    /// Number of sites (vendors, CR/DX, bit depth, VOI, noise, transfer syntax differ).
    #[arg(long, default_value_t = 3, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=26))]
    pub sites: usize,
    /// Random seed: the same seed gives byte-identical output.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Rows and columns of every image (64 to 4096).
    #[arg(long, default_value_t = 512, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(64..=4096))]
    pub size: usize,
    /// NIH ChestX-ray14 table (Data_Entry_2017*.csv[.gz]): sample label combinations, age, sex, view and follow-ups from it.
    #[arg(long)]
    pub cohort: Option<PathBuf>,
    /// Also write contact-sheet.png: examples per observation.
    #[arg(long)]
    pub contact_sheet: bool,
    /// Fraction of frontal images with text burned into the pixels (name, MRN, birth date, in
    /// random sizes, positions, contrast and styles); 3 in 5 flagged in the header, 2 not.
    #[arg(long, default_value_t = 0.05, value_parser = fraction)]
    pub burned_in: f64,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = at_least_1())]
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
    /// Truth: JSONL with id, patient_id, labels {observation: 1|0|-1|null} (-1 uncertain, null
    /// not labelled), optional split ("val" fits calibration and the operating point) and
    /// group fields, as radfm synth writes.
    #[arg(long)]
    pub truth: PathBuf,
    /// Report directory (metrics.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Subgroup fields, comma-separated (age_band is derived from age when absent).
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Bootstrap resamples (of patients, or of images with --unit image); at least 10.
    #[arg(long, default_value_t = 1000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(10..))]
    pub bootstrap: usize,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A second model's predictions on the same images: DeLong's test per observation.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Operating point for threshold metrics: youden, sens:X or spec:X. Chosen on the
    /// validation images when the truth marks some ("split": "val"), else on the evaluated ones.
    #[arg(long, default_value = "youden")]
    pub operating_point: String,
    /// What an uncertain (-1) label becomes: left out (CheXpert's U-Ignore), negative (U-Zeros)
    /// or positive (U-Ones).
    #[arg(long, value_enum, default_value_t = UncertainPolicy::Exclude)]
    pub uncertain: UncertainPolicy,
    /// What the bootstrap resamples. `image` is for truth files without patient_id; the
    /// intervals are then too narrow when a patient has several images.
    #[arg(long, value_enum, default_value_t = EvalUnit::Patient)]
    pub unit: EvalUnit,
    /// Evaluate only the truth lines where FIELD=VALUE (or FIELD!=VALUE), e.g. `site=site-A`
    /// for one site or `site!=site-A` for the others; repeat to combine. Predictions of the
    /// images left out are dropped (an id with no truth line at all is still an error).
    #[arg(long = "where", value_name = "FIELD=VALUE")]
    pub filters: Vec<String>,
    /// Print only where the report went, not the tables.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The demo's directory: every stage's output (archive, dataset, runs, embeddings,
    /// predictions, evaluations), commands.sh, claims.json and report.html.
    #[arg(long)]
    pub out: PathBuf,
    /// A small run (1,000 patients, short pretraining) that finishes in about 10 minutes on 2 cores.
    #[arg(long)]
    pub quick: bool,
    /// Patients in the synthetic archive (default 1,000 with --quick, 3,000 otherwise).
    #[arg(long, value_parser = at_least_1())]
    pub patients: Option<usize>,
    /// The seed of every stage: the same seed gives the same claims.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: every core).
    #[arg(long, value_parser = at_least_1())]
    pub jobs: Option<usize>,
    /// Continue a killed or failed demo in --out from its last finished stage.
    #[arg(long)]
    pub resume: bool,
    /// The frozen text tower of CLIP pretraining (a BertModel directory with tokenizer.json,
    /// e.g. all-MiniLM-L6-v2); default $RADFM_MINILM_DIR. Without one the CLIP and zero-shot
    /// stages are skipped and their claims are inconclusive.
    #[arg(long, value_name = "DIR")]
    pub text_model: Option<PathBuf>,
    /// The NIH ChestX-ray14 table (Data_Entry_2017*.csv.gz) for the archive's label
    /// combinations, ages and views; default $RADFM_COHORT, else built-in prevalences.
    #[arg(long, value_name = "FILE")]
    pub cohort: Option<PathBuf>,
    /// A tiny configuration for tests (a few dozen patients, a few steps): not for results.
    #[arg(long, hide = true, conflicts_with = "quick")]
    pub smoke: bool,
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SplitArgs {
    pub dataset: PathBuf,
    #[arg(long, default_value_t = 0.8, value_parser = fraction)]
    pub train: f64,
    #[arg(long, default_value_t = 0.1, value_parser = fraction)]
    pub val: f64,
    #[arg(long, default_value_t = 0.1, value_parser = fraction)]
    pub test: f64,
    /// Unit of assignment (no patient in two splits).
    #[arg(long, value_enum, default_value_t = SplitUnit::Patient)]
    pub by: SplitUnit,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Hold one site out entirely: every patient seen there goes to the test split (an
    /// external test set); the other patients are cut at the fractions. SITE is a site label
    /// of the dataset (`radfm split` lists them when it is unknown).
    #[arg(long, value_name = "SITE")]
    pub hold_out_site: Option<String>,
}
