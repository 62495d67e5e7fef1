//! radfm-core: the vocabulary every radfm crate speaks, and the few utilities
//! they all need. Nothing heavy: serde and thiserror only.
//!
//! - [`Observation`]: the 14 CheXpert observations, and [`ObservationMap`], a
//!   value per observation indexed by the observation itself;
//! - [`Label`]: positive, negative or uncertain (absent is `None`), and the
//!   [`UncertainPolicy`] that turns uncertain labels into training or scoring
//!   targets;
//! - [`AgeBand`]: the one age banding used by the dataset card and the
//!   evaluation report alike;
//! - [`npy`]: the NumPy `.npy` codec;
//! - [`atomic`]: atomic file writes;
//! - [`seed`]: seed derivation and stable hashing.

pub mod age;
pub mod atomic;
pub mod label;
pub mod npy;
pub mod observation;
pub mod seed;

pub use age::AgeBand;
pub use atomic::{write_atomic, AtomicFile};
pub use label::{Label, UncertainPolicy};
pub use observation::{Observation, ObservationMap, ParseObservationError};
