//! The confidentiality profile as data: `basic_profile.tsv` (PS3.15 Table
//! E.1-1 with the options we apply) parsed into a lookup table.

use std::collections::HashMap;
use std::sync::OnceLock;

use dicom_core::Tag;

/// PS3.15 Annex E action codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Action {
    /// Replace with a non-zero-length dummy value (pseudonyms for identities).
    D,
    /// Replace with a zero-length value.
    Z,
    /// Remove.
    X,
    /// Keep.
    K,
    /// Clean: dates shifted by the per-patient offset.
    C,
    /// Replace UID with a consistent keyed-hash UID under 2.25.
    U,
}

/// One row: a tag pattern (nibbles, `None` = wildcard) and its action.
#[derive(Debug, Clone)]
pub struct Rule {
    pub keyword: &'static str,
    pattern: [Option<u8>; 8],
    pub action: Action,
}

impl Rule {
    fn matches(&self, tag: Tag) -> bool {
        let v = ((tag.0 as u32) << 16) | tag.1 as u32;
        self.pattern
            .iter()
            .enumerate()
            .all(|(i, n)| n.is_none_or(|n| ((v >> (28 - 4 * i)) & 0xF) as u8 == n))
    }
}

pub struct Profile {
    exact: HashMap<Tag, (Action, &'static str)>,
    wildcards: Vec<Rule>,
}

const TABLE: &str = include_str!("basic_profile.tsv");

fn parse_rule(line: &'static str) -> Result<Rule, String> {
    let mut cols = line.split('\t');
    let (tag, keyword, action) = match (cols.next(), cols.next(), cols.next()) {
        (Some(t), Some(k), Some(a)) => (t, k, a),
        _ => return Err(format!("profile line needs 3 columns: {line:?}")),
    };
    let hex: String = tag.chars().filter(|c| *c != ',').collect();
    if hex.len() != 8 {
        return Err(format!("bad tag {tag:?}"));
    }
    let mut pattern = [None; 8];
    for (i, c) in hex.chars().enumerate() {
        pattern[i] = match c {
            'x' | 'X' => None,
            c => Some(c.to_digit(16).ok_or_else(|| format!("bad tag {tag:?}"))? as u8),
        };
    }
    let action = match action.trim() {
        "D" => Action::D,
        "Z" => Action::Z,
        "X" => Action::X,
        "K" => Action::K,
        "C" => Action::C,
        "U" => Action::U,
        other => return Err(format!("unknown action {other:?} for {keyword}")),
    };
    Ok(Rule {
        keyword,
        pattern,
        action,
    })
}

impl Profile {
    /// The compiled-in profile.
    pub fn basic() -> &'static Profile {
        static P: OnceLock<Profile> = OnceLock::new();
        P.get_or_init(|| Profile::parse(TABLE).expect("the compiled-in profile parses"))
    }

    pub fn parse(text: &'static str) -> Result<Profile, String> {
        let mut exact = HashMap::new();
        let mut wildcards = Vec::new();
        for line in text.lines() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let rule = parse_rule(line)?;
            if rule.pattern.iter().all(Option::is_some) {
                let v = rule
                    .pattern
                    .iter()
                    .fold(0u32, |acc, n| (acc << 4) | n.expect("exact") as u32);
                let tag = Tag((v >> 16) as u16, v as u16);
                if exact.insert(tag, (rule.action, rule.keyword)).is_some() {
                    return Err(format!("{} listed twice", rule.keyword));
                }
            } else {
                wildcards.push(rule);
            }
        }
        Ok(Profile { exact, wildcards })
    }

    /// The action for `tag`, if the table lists it.
    pub fn action(&self, tag: Tag) -> Option<Action> {
        if let Some((a, _)) = self.exact.get(&tag) {
            return Some(*a);
        }
        self.wildcards
            .iter()
            .find(|r| r.matches(tag))
            .map(|r| r.action)
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table-driven: rows of PS3.15 E.1-1 and the action we must apply.
    #[test]
    fn profile_rows() {
        let p = Profile::basic();
        let cases = [
            (Tag(0x0010, 0x0010), Action::D), // PatientName -> pseudonym
            (Tag(0x0010, 0x0020), Action::D), // PatientID -> pseudonym
            (Tag(0x0010, 0x0030), Action::Z), // PatientBirthDate
            (Tag(0x0010, 0x0040), Action::K), // PatientSex (Retain Patient Characteristics)
            (Tag(0x0010, 0x1010), Action::K), // PatientAge
            (Tag(0x0008, 0x0020), Action::C), // StudyDate (Modified Dates)
            (Tag(0x0008, 0x0080), Action::X), // InstitutionName
            (Tag(0x0008, 0x0090), Action::Z), // ReferringPhysicianName
            (Tag(0x0020, 0x000D), Action::U), // StudyInstanceUID
            (Tag(0x0008, 0x0018), Action::U), // SOPInstanceUID
            (Tag(0x6000, 0x3000), Action::X), // OverlayData, group 60xx
            (Tag(0x6002, 0x4000), Action::X), // OverlayComments
            (Tag(0x5004, 0x0010), Action::X), // curve data, group 50xx
            (Tag(0x0040, 0xA730), Action::X), // ContentSequence
            (Tag(0x0008, 0x1110), Action::X), // ReferencedStudySequence
            (Tag(0x0008, 0x1140), Action::K), // ReferencedImageSequence: U*, recursed
        ];
        for (tag, want) in cases {
            assert_eq!(p.action(tag), Some(want), "{tag}");
        }
        assert_eq!(p.action(Tag(0x0028, 0x0010)), None); // Rows: not listed
        assert!(p.len() > 250, "profile has {} rows", p.len());
    }

    #[test]
    fn malformed_tables_are_rejected() {
        assert!(Profile::parse("0010,0010\tPatientName\tQ\n").is_err());
        assert!(Profile::parse("0010,001\tPatientName\tX\n").is_err());
        assert!(Profile::parse("0010,0010\tA\tX\n0010,0010\tB\tX\n").is_err());
    }
}
