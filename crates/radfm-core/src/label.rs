//! CheXpert labels and the policy for uncertain ones.
//!
//! A label is positive (1), negative (0) or uncertain (-1), as in CheXpert's
//! CSVs; an observation a report does not mention has no label
//! (`Option::None`), never a fourth value.

use std::fmt;

/// One observation's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Label {
    Negative,
    Uncertain,
    Positive,
}

impl Label {
    /// CheXpert's number: 1, 0 or -1.
    pub const fn value(self) -> i8 {
        match self {
            Label::Positive => 1,
            Label::Negative => 0,
            Label::Uncertain => -1,
        }
    }

    /// The label whose CheXpert number is exactly `x` (1, 0 or -1); any
    /// other number is none.
    pub fn from_value(x: f64) -> Option<Label> {
        if x == 1.0 {
            Some(Label::Positive)
        } else if x == 0.0 {
            Some(Label::Negative)
        } else if x == -1.0 {
            Some(Label::Uncertain)
        } else {
            None
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Label::Positive => "positive",
            Label::Negative => "negative",
            Label::Uncertain => "uncertain",
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Label {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i8(self.value())
    }
}

impl<'de> serde::Deserialize<'de> for Label {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Label, D::Error> {
        let x = f64::deserialize(d)?;
        Label::from_value(x).ok_or_else(|| {
            serde::de::Error::custom(format!("label {x} is not 1, 0 or -1 (uncertain)"))
        })
    }
}

/// What an uncertain label becomes when a binary target is needed: CheXpert's
/// U-Ignore, U-Zeros and U-Ones (Irvin et al. 2019, section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum UncertainPolicy {
    /// U-Ignore: the observation is left out for that image.
    #[default]
    Exclude,
    /// U-Zeros: uncertain counts as negative.
    Zeros,
    /// U-Ones: uncertain counts as positive.
    Ones,
}

impl UncertainPolicy {
    pub const ALL: [UncertainPolicy; 3] = [
        UncertainPolicy::Exclude,
        UncertainPolicy::Zeros,
        UncertainPolicy::Ones,
    ];

    /// The binary target for `label`, or None when it is left out.
    pub fn target(self, label: Label) -> Option<bool> {
        match (label, self) {
            (Label::Positive, _) => Some(true),
            (Label::Negative, _) => Some(false),
            (Label::Uncertain, UncertainPolicy::Exclude) => None,
            (Label::Uncertain, UncertainPolicy::Zeros) => Some(false),
            (Label::Uncertain, UncertainPolicy::Ones) => Some(true),
        }
    }

    /// The policy's name: `exclude`, `zeros` or `ones`.
    pub const fn as_str(self) -> &'static str {
        match self {
            UncertainPolicy::Exclude => "exclude",
            UncertainPolicy::Zeros => "zeros",
            UncertainPolicy::Ones => "ones",
        }
    }
}

text_form!(UncertainPolicy, parse);

impl std::str::FromStr for UncertainPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<UncertainPolicy, String> {
        UncertainPolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown uncertain-label policy {s:?} (exclude, zeros or ones)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chexpert_numbers() {
        for l in [Label::Positive, Label::Negative, Label::Uncertain] {
            assert_eq!(Label::from_value(l.value() as f64), Some(l));
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(serde_json::from_str::<Label>(&json).unwrap(), l);
        }
        assert_eq!(serde_json::to_string(&Label::Uncertain).unwrap(), "-1");
        for bad in ["0.5", "2", "\"1\"", "null", "true"] {
            assert!(serde_json::from_str::<Label>(bad).is_err(), "{bad}");
        }
        assert_eq!(Label::from_value(0.5), None);
    }

    #[test]
    fn uncertain_policies_are_chexperts() {
        use UncertainPolicy::*;
        let table = [
            (Exclude, [Some(true), Some(false), None]),
            (Zeros, [Some(true), Some(false), Some(false)]),
            (Ones, [Some(true), Some(false), Some(true)]),
        ];
        for (p, want) in table {
            let got = [Label::Positive, Label::Negative, Label::Uncertain].map(|l| p.target(l));
            assert_eq!(got, want, "{p}");
            assert_eq!(p.as_str().parse::<UncertainPolicy>(), Ok(p));
        }
        assert!("ignore".parse::<UncertainPolicy>().is_err());
    }
}
