//! radfm-report: radiology report text. For now: PHI scrubbing with typed
//! placeholders (used by ingest); sections, labels and metrics come next.

pub mod scrub;
