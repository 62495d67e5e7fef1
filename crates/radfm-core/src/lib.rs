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

/// `Display` and `Serialize` through the type's `as_str`, and with `parse`,
/// `Deserialize` through its `FromStr`: the one text form of each enum.
macro_rules! text_form {
    ($t:ty) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
    ($t:ty, parse) => {
        text_form!($t);
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

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
