//! radfm-report: radiology report text.
//!
//! - [`sections`]: split reports into FINDINGS, IMPRESSION, INDICATION, ...
//! - [`labeler`]: a rule-based CheXpert-14 labeler whose rules are data files
//!   (`rules/`), compiled into the binary.
//! - [`scrub`]: PHI scrubbing with typed placeholders (used by ingest).
//! - [`metrics`]: BLEU-1..4, ROUGE-L and CheXpert-label F1 for generated reports.
//! - [`input`]: reading reports from IU/Open-i XML (directory or `.tgz`),
//!   JSONL, CSV or a directory of `.txt` files.
//! - [`iu`]: gold labels from the IU collection's MeSH codes, and scoring.
//!
//! No tensor framework here: this crate builds in seconds.

pub mod input;
pub mod iu;
pub mod labeler;
pub mod metrics;
pub mod pattern;
pub mod scrub;
pub mod sections;
pub mod text;
