//! The 14 CheXpert observations (Irvin et al., AAAI 2019), in CheXpert's order
//! and spelling. Everything in radfm that names an observation uses
//! [`Observation`]; the names appear as strings only here.

use std::ops::{Index, IndexMut};
use std::str::FromStr;

/// One of the 14 CheXpert observations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Observation {
    NoFinding,
    EnlargedCardiomediastinum,
    Cardiomegaly,
    LungOpacity,
    LungLesion,
    Edema,
    Consolidation,
    Pneumonia,
    Atelectasis,
    Pneumothorax,
    PleuralEffusion,
    PleuralOther,
    Fracture,
    SupportDevices,
}

impl Observation {
    /// All 14, in CheXpert's order.
    pub const ALL: [Observation; 14] = [
        Observation::NoFinding,
        Observation::EnlargedCardiomediastinum,
        Observation::Cardiomegaly,
        Observation::LungOpacity,
        Observation::LungLesion,
        Observation::Edema,
        Observation::Consolidation,
        Observation::Pneumonia,
        Observation::Atelectasis,
        Observation::Pneumothorax,
        Observation::PleuralEffusion,
        Observation::PleuralOther,
        Observation::Fracture,
        Observation::SupportDevices,
    ];

    /// The five observations most report-generation papers score
    /// (CheXpert's competition tasks).
    pub const COMMON_FIVE: [Observation; 5] = [
        Observation::Atelectasis,
        Observation::Cardiomegaly,
        Observation::Consolidation,
        Observation::Edema,
        Observation::PleuralEffusion,
    ];

    /// The CheXpert name ("Pleural Effusion").
    pub const fn as_str(self) -> &'static str {
        match self {
            Observation::NoFinding => "No Finding",
            Observation::EnlargedCardiomediastinum => "Enlarged Cardiomediastinum",
            Observation::Cardiomegaly => "Cardiomegaly",
            Observation::LungOpacity => "Lung Opacity",
            Observation::LungLesion => "Lung Lesion",
            Observation::Edema => "Edema",
            Observation::Consolidation => "Consolidation",
            Observation::Pneumonia => "Pneumonia",
            Observation::Atelectasis => "Atelectasis",
            Observation::Pneumothorax => "Pneumothorax",
            Observation::PleuralEffusion => "Pleural Effusion",
            Observation::PleuralOther => "Pleural Other",
            Observation::Fracture => "Fracture",
            Observation::SupportDevices => "Support Devices",
        }
    }

    /// Position in [`Observation::ALL`] (0..14): the column of this
    /// observation in a model's output head.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Whether this observation is a finding for "No Finding"'s purposes:
    /// everything but No Finding itself and Support Devices.
    pub const fn is_finding(self) -> bool {
        !matches!(self, Observation::NoFinding | Observation::SupportDevices)
    }
}

text_form!(Observation, parse);

/// A name that is none of the 14 CheXpert observations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown observation {0:?} (expected one of the 14 CheXpert names, such as \"Pleural Effusion\")")]
pub struct ParseObservationError(pub String);

impl FromStr for Observation {
    type Err = ParseObservationError;

    /// The exact CheXpert name.
    fn from_str(s: &str) -> Result<Observation, ParseObservationError> {
        Observation::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| ParseObservationError(s.to_string()))
    }
}

/// One value per observation, indexed by [`Observation`]. Serialises as a map
/// from CheXpert name to value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ObservationMap<T>([T; 14]);

impl<T> ObservationMap<T> {
    /// A map with `f(o)` for every observation.
    pub fn from_fn(mut f: impl FnMut(Observation) -> T) -> ObservationMap<T> {
        ObservationMap(std::array::from_fn(|i| f(Observation::ALL[i])))
    }

    /// `(observation, value)` in CheXpert order.
    pub fn iter(&self) -> impl Iterator<Item = (Observation, &T)> {
        Observation::ALL.into_iter().zip(self.0.iter())
    }

    /// The values in CheXpert order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter()
    }

    /// A map of `f(o, value)`.
    pub fn map<U>(&self, mut f: impl FnMut(Observation, &T) -> U) -> ObservationMap<U> {
        ObservationMap::from_fn(|o| f(o, &self[o]))
    }
}

impl<T> Index<Observation> for ObservationMap<T> {
    type Output = T;
    fn index(&self, o: Observation) -> &T {
        &self.0[o.index()]
    }
}

impl<T> IndexMut<Observation> for ObservationMap<T> {
    fn index_mut(&mut self, o: Observation) -> &mut T {
        &mut self.0[o.index()]
    }
}

impl<T: serde::Serialize> serde::Serialize for ObservationMap<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(14))?;
        for (o, v) in self.iter() {
            m.serialize_entry(o.as_str(), v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_chexpert_order() {
        for (i, o) in Observation::ALL.into_iter().enumerate() {
            assert_eq!(o.index(), i);
            assert_eq!(o.as_str().parse::<Observation>(), Ok(o));
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.as_str()));
            assert_eq!(serde_json::from_str::<Observation>(&json).unwrap(), o);
        }
        assert_eq!(Observation::ALL[0].as_str(), "No Finding");
        assert_eq!(Observation::ALL[13].as_str(), "Support Devices");
    }

    #[test]
    fn unknown_names_are_errors() {
        for bad in ["pleural effusion", "Effusion", "", "No finding"] {
            let e = bad.parse::<Observation>().unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
            assert!(serde_json::from_str::<Observation>(&format!("{bad:?}")).is_err());
        }
    }

    #[test]
    fn map_is_indexed_by_observation() {
        let mut m = ObservationMap::from_fn(|o| o.index() * 10);
        m[Observation::Edema] = 1;
        assert_eq!(m[Observation::Edema], 1);
        assert_eq!(m[Observation::Fracture], 120);
        let json = serde_json::to_value(m).unwrap();
        assert_eq!(json["Edema"], 1);
        assert_eq!(json.as_object().unwrap().len(), 14);
    }
}
