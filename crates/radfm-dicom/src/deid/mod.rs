//! De-identification following DICOM PS3.15 Annex E: the Basic Application
//! Level Confidentiality Profile with the options Retain Longitudinal Temporal
//! Information with Modified Dates and Retain Patient Characteristics.
//!
//! The profile is data ([`profile::Profile`], from `basic_profile.tsv`); this
//! module applies it recursively, including inside nested sequences.
//! Attributes the table does not list fall back to rules by VR, stricter
//! than the standard's default of keeping them:
//! - private attributes (odd groups) are removed;
//! - UI values that are not standard (1.2.840.10008.*) UIDs are replaced;
//! - DA/DT values are shifted like listed dates;
//! - PN values are replaced by a dummy.
//!
//! Replacement values come from a secret key with HMAC-SHA256, so they are
//! consistent across files and runs: the same UID always maps to the same
//! `2.25.` UID, the same patient to the same pseudonym and date offset.

pub mod profile;

use dicom_core::header::{DataElement, Header, Length};
use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::InMemDicomObject;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use profile::{Action, Profile};

use crate::attrs;

/// Name of the method recorded in DeidentificationMethod (0012,0063).
pub const METHOD: &str =
    "radfm PS3.15 E.1 Basic Profile; Retain Longitudinal Temporal Information With Modified Dates; Retain Patient Characteristics";

/// Applies the profile with a secret key.
#[derive(Clone)]
pub struct Deidentifier {
    key: [u8; 32],
}

impl std::fmt::Debug for Deidentifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deidentifier { key: <secret> }")
    }
}

/// The identity-derived values of one object, worked out before anything is removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Pseudonyms {
    pub patient_id: String,
    pub date_offset_days: i64,
}

impl Deidentifier {
    pub fn new(key: [u8; 32]) -> Self {
        Deidentifier { key }
    }

    fn mac(&self, domain: &str, value: &str) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        m.update(domain.as_bytes());
        m.update(&[0]);
        m.update(value.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// A 32-bit tag of `data` under the key: lets a value made here be
    /// recognised as made here (so that a second pass leaves it alone).
    fn check(&self, domain: &str, data: &[u8]) -> u32 {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        m.update(b"check");
        m.update(&[0]);
        m.update(domain.as_bytes());
        m.update(&[0]);
        m.update(data);
        let h = m.finalize().into_bytes();
        u32::from_be_bytes(h[..4].try_into().expect("4 bytes"))
    }

    /// Consistent replacement UID: `2.25.` + 128 bits in decimal, 96 of the
    /// keyed hash and 32 that mark it as this key's. A UID this key made
    /// is returned unchanged, so de-identifying twice changes nothing.
    pub fn uid(&self, original: &str) -> String {
        let original = original.trim_end_matches('\0').trim();
        if self.is_own_uid(original) {
            return original.to_string();
        }
        let h = self.mac("uid", original);
        let hi = u128::from_be_bytes(h[..16].try_into().expect("16 bytes")) >> 32;
        let v = (hi << 32) | self.check("uid", &hi.to_be_bytes()) as u128;
        format!("2.25.{v}")
    }

    fn is_own_uid(&self, uid: &str) -> bool {
        uid.strip_prefix("2.25.")
            .and_then(|d| d.parse::<u128>().ok())
            .is_some_and(|v| {
                let hi = v >> 32;
                (v & 0xffff_ffff) as u32 == self.check("uid", &hi.to_be_bytes())
            })
    }

    /// Short consistent pseudonym with a prefix: `P` + 12 hex digits of the
    /// keyed hash + 4 that mark it as this key's, e.g. `P3F9A0C21B7D41C2E`.
    /// A pseudonym this key made is returned unchanged.
    pub fn pseudonym(&self, prefix: &str, domain: &str, original: &str) -> String {
        let original = original.trim();
        if self.is_own_pseudonym(prefix, domain, original) {
            return original.to_string();
        }
        let h = self.mac(domain, original);
        let hex: String = h[..6].iter().map(|b| format!("{b:02X}")).collect();
        let check = self.check(domain, hex.as_bytes()) >> 16;
        format!("{prefix}{hex}{check:04X}")
    }

    fn is_own_pseudonym(&self, prefix: &str, domain: &str, value: &str) -> bool {
        value.strip_prefix(prefix).is_some_and(|rest| {
            rest.len() == 16
                && rest.bytes().all(|b| b.is_ascii_hexdigit())
                && u32::from_str_radix(&rest[12..], 16)
                    .is_ok_and(|c| c == self.check(domain, rest[..12].as_bytes()) >> 16)
        })
    }

    /// A key for another purpose (`domain`), derived from this one: the
    /// report surrogates' key, say. Telling nothing about this key.
    pub fn subkey(&self, domain: &str) -> [u8; 32] {
        self.mac("subkey", domain)
    }

    /// A fingerprint of the key (an HMAC of a fixed string under it): equal
    /// for the same key, and telling nothing about the key itself. A
    /// dataset stores it to refuse a run under another key.
    pub fn key_fingerprint(&self) -> String {
        let h = self.mac("key-fingerprint", "radfm pseudonymisation key v1");
        h[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A stable pseudonymous key for an input file's path, under which the
    /// dataset refers to it (`src-` + 64 bits of the keyed hash).
    pub fn source_key(&self, path: &str) -> String {
        let h = self.mac("source-path", path);
        let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("src-{hex}")
    }

    /// Per-patient date shift: 365 to 3650 days into the past.
    pub fn date_offset_days(&self, patient_id: &str) -> i64 {
        let h = self.mac("date-offset", patient_id.trim());
        let v = u32::from_be_bytes(h[..4].try_into().expect("4 bytes")) as i64;
        -(365 + v % 3286)
    }

    /// Pseudonymous identity of the object's patient.
    pub fn pseudonyms(&self, ds: &InMemDicomObject) -> Pseudonyms {
        // Without a PatientID, fall back on the name and birth date, then the study.
        let basis = attrs::string(ds, tags::PATIENT_ID)
            .map(|id| format!("id:{id}"))
            .or_else(|| {
                attrs::string(ds, tags::PATIENT_NAME).map(|n| {
                    format!(
                        "name:{n}|{}",
                        attrs::string(ds, tags::PATIENT_BIRTH_DATE).unwrap_or_default()
                    )
                })
            })
            .or_else(|| attrs::string(ds, tags::STUDY_INSTANCE_UID).map(|s| format!("study:{s}")))
            .unwrap_or_else(|| "unknown".into());
        // Already de-identified under this key (its PatientID is one of this
        // key's pseudonyms, which no one without the key can make): keep the
        // pseudonym and do not shift the dates a second time.
        if let Some(id) = attrs::string(ds, tags::PATIENT_ID) {
            let removed =
                attrs::string(ds, tags::PATIENT_IDENTITY_REMOVED).as_deref() == Some("YES");
            if removed && self.is_own_pseudonym("P", "patient", id.trim()) {
                return Pseudonyms {
                    patient_id: id.trim().to_string(),
                    date_offset_days: 0,
                };
            }
        }
        Pseudonyms {
            patient_id: self.pseudonym("P", "patient", &basis),
            date_offset_days: self.date_offset_days(&basis),
        }
    }

    /// De-identify a data set, returning a new one.
    pub fn apply(&self, ds: &InMemDicomObject) -> InMemDicomObject {
        let p = self.pseudonyms(ds);
        let mut out = self.apply_level(ds, &p, Profile::basic());
        // Retain Patient Characteristics: derive the age before the birth date goes.
        if attrs::string(&out, tags::PATIENT_AGE).is_none() {
            if let Some(age) = age_years(
                attrs::string(ds, tags::PATIENT_BIRTH_DATE).as_deref(),
                attrs::string(ds, tags::STUDY_DATE)
                    .or_else(|| attrs::string(ds, tags::ACQUISITION_DATE))
                    .as_deref(),
            ) {
                out.put(str_elem(
                    tags::PATIENT_AGE,
                    VR::AS,
                    format!("{:03}Y", age.min(90)),
                ));
            }
        } else if let Some(age) = attrs::string(&out, tags::PATIENT_AGE).and_then(|a| parse_age(&a))
        {
            // HIPAA safe harbour: ages over 89 are reported as 90.
            if age > 89.0 {
                out.put(str_elem(tags::PATIENT_AGE, VR::AS, "090Y".into()));
            }
        }
        // the pseudonymous PatientID, even where the original had none: it
        // links the patient's objects, and marks the object as this key's
        out.put(str_elem(tags::PATIENT_ID, VR::LO, p.patient_id.clone()));
        out.put(str_elem(
            tags::PATIENT_IDENTITY_REMOVED,
            VR::CS,
            "YES".into(),
        ));
        out.put(str_elem(
            tags::DEIDENTIFICATION_METHOD,
            VR::LO,
            METHOD.into(),
        ));
        out.put(str_elem(
            tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED,
            VR::CS,
            "MODIFIED".into(),
        ));
        out
    }

    fn apply_level(
        &self,
        ds: &InMemDicomObject,
        p: &Pseudonyms,
        prof: &Profile,
    ) -> InMemDicomObject {
        let mut elems = Vec::new();
        for e in ds.iter() {
            let tag = e.tag();
            if tag.0 % 2 == 1 {
                continue; // private attributes and their creators
            }
            let vr = e.vr();
            let action = prof
                .action(tag)
                .unwrap_or_else(|| default_action(vr, e.value()));
            let new = match (action, e.value()) {
                (Action::X, _) => None,
                (Action::K, Value::Sequence(seq))
                | (Action::C, Value::Sequence(seq))
                | (Action::U, Value::Sequence(seq)) => {
                    let items: Vec<InMemDicomObject> = seq
                        .items()
                        .iter()
                        .map(|i| self.apply_level(i, p, prof))
                        .collect();
                    Some(DataElement::new(
                        tag,
                        VR::SQ,
                        Value::Sequence(DataSetSequence::new(items, Length::UNDEFINED)),
                    ))
                }
                (Action::Z | Action::D, Value::Sequence(_)) => Some(DataElement::new(
                    tag,
                    VR::SQ,
                    Value::Sequence(DataSetSequence::new(
                        Vec::<InMemDicomObject>::new(),
                        Length::UNDEFINED,
                    )),
                )),
                (Action::K, _) => Some(e.clone()),
                (_, Value::PixelSequence(_)) => Some(e.clone()),
                (Action::Z, _) => Some(DataElement::new(tag, vr, PrimitiveValue::Empty)),
                (Action::D, _) => Some(str_elem(tag, vr, self.dummy(tag, vr, e, p))),
                (Action::U, Value::Primitive(v)) => {
                    let uids: Vec<String> = v
                        .to_multi_str()
                        .iter()
                        .map(|u| u.trim_end_matches('\0').trim().to_string())
                        .filter(|u| !u.is_empty())
                        .map(|u| self.uid(&u))
                        .collect();
                    Some(str_elem(tag, VR::UI, uids.join("\\")))
                }
                (Action::C, Value::Primitive(v)) => {
                    let shifted: Vec<String> = v
                        .to_multi_str()
                        .iter()
                        .map(|d| shift_date_or_datetime(d, vr, p.date_offset_days))
                        .collect();
                    Some(str_elem(tag, vr, shifted.join("\\")))
                }
            };
            if let Some(n) = new {
                elems.push(n);
            }
        }
        InMemDicomObject::from_element_iter(elems)
    }

    fn dummy(&self, tag: Tag, vr: VR, e: &InMemElement, p: &Pseudonyms) -> String {
        let original = e
            .value()
            .to_str()
            .map(|s| s.to_string())
            .unwrap_or_default();
        match tag {
            tags::PATIENT_ID => p.patient_id.clone(),
            tags::PATIENT_NAME => format!("ANON^{}", p.patient_id),
            tags::ACCESSION_NUMBER => self.accession(&original),
            _ => match vr {
                VR::PN => "ANONYMOUS".into(),
                VR::DA => "19000101".into(),
                VR::TM => "000000".into(),
                VR::DT => "19000101000000".into(),
                VR::AS => "000Y".into(),
                VR::IS | VR::DS => "0".into(),
                VR::UI => self.uid(&original),
                _ => "ANONYMIZED".into(),
            },
        }
    }

    /// Pseudonymous accession number (so images and reports stay linked).
    pub fn accession(&self, original: &str) -> String {
        if original.trim().is_empty() {
            return String::new();
        }
        self.pseudonym("A", "accession", original)
    }
}

fn str_elem(tag: Tag, vr: VR, s: String) -> InMemElement {
    if s.is_empty() {
        return DataElement::new(tag, vr, PrimitiveValue::Empty);
    }
    DataElement::new(tag, vr, PrimitiveValue::from(s))
}

/// Rules by VR for attributes the profile table does not list.
fn default_action(vr: VR, v: &Value<InMemDicomObject, Vec<u8>>) -> Action {
    match vr {
        VR::UI => {
            let s = v.to_str().unwrap_or_default();
            if s.split('\\').all(|u| {
                let u = u.trim_end_matches('\0').trim();
                u.is_empty() || u.starts_with("1.2.840.10008.")
            }) {
                Action::K
            } else {
                Action::U
            }
        }
        VR::DA | VR::DT => Action::C,
        VR::PN => Action::D,
        _ => Action::K,
    }
}

/// Days from 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// (year, month, day) of a day number counted from 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn parse_da(s: &str) -> Option<(i64, i64, i64)> {
    let s = s.trim();
    let s = if s.len() == 10 && s.as_bytes()[4] == b'.' {
        s.replace('.', "") // old ACR-NEMA yyyy.mm.dd
    } else {
        s.to_string()
    };
    // bytes, not chars: a non-ASCII byte anywhere must not split a char
    if s.len() < 8 || !s.as_bytes()[..8].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let (y, m, d) = (
        s[..4].parse().ok()?,
        s[4..6].parse().ok()?,
        s[6..8].parse().ok()?,
    );
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then_some((y, m, d))
}

/// Shift a DA or DT value by `days`. Unparseable values become empty.
pub fn shift_date_or_datetime(value: &str, vr: VR, days: i64) -> String {
    let v = value.trim_end_matches('\0').trim();
    if v.is_empty() {
        return String::new();
    }
    let Some((y, m, d)) = parse_da(v) else {
        return String::new();
    };
    let (y2, m2, d2) = civil_from_days(days_from_civil(y, m, d) + days);
    let date = format!("{y2:04}{m2:02}{d2:02}");
    if vr == VR::DT {
        let rest = v.get(8..).unwrap_or("");
        format!("{date}{rest}")
    } else {
        date
    }
}

/// Whole years between a birth date and a study date.
pub fn age_years(birth: Option<&str>, at: Option<&str>) -> Option<u32> {
    let (by, bm, bd) = parse_da(birth?)?;
    let (sy, sm, sd) = parse_da(at?)?;
    let mut age = sy - by;
    if (sm, sd) < (bm, bd) {
        age -= 1;
    }
    u32::try_from(age).ok()
}

/// Parse an AS value (`045Y`, `006M`, `010W`, `003D`) into years.
pub fn parse_age(s: &str) -> Option<f64> {
    let s = s.trim();
    // the unit is the last character (not byte: a non-ASCII byte there once
    // panicked here; found by fuzzing)
    let unit = s.chars().last()?;
    let num = &s[..s.len() - unit.len_utf8()];
    let n: f64 = num.trim().parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    Some(match unit {
        'Y' | 'y' => n,
        'M' | 'm' => n / 12.0,
        'W' | 'w' => n / 52.0,
        'D' | 'd' => n / 365.25,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Deidentifier {
        Deidentifier::new([7u8; 32])
    }

    #[test]
    fn uids_are_consistent_valid_and_keyed() {
        let a = d().uid("1.2.3.4");
        assert_eq!(a, d().uid("1.2.3.4"));
        assert_ne!(a, d().uid("1.2.3.5"));
        assert_ne!(a, Deidentifier::new([8u8; 32]).uid("1.2.3.4"));
        assert!(a.starts_with("2.25.") && a.len() <= 64);
        assert!(a[5..].bytes().all(|b| b.is_ascii_digit()));
        assert!(!a[5..].starts_with('0') || a.len() == 6);
    }

    /// (value, VR, days, expected)
    #[test]
    fn date_shifts() {
        let cases = [
            ("20200301", VR::DA, -1, "20200229"),
            ("20210101", VR::DA, -365, "20200102"),
            ("20200115123000.5", VR::DT, -15, "20191231123000.5"),
            ("1999.12.31", VR::DA, 1, "20000101"),
            ("garbage", VR::DA, -3, ""),
            // a multi-byte character across byte 8 (found by fuzzing: it panicked)
            ("2019011\u{e9}", VR::DA, 1, ""),
            ("2019011\u{fffd}", VR::DA, 1, ""),
            ("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}", VR::DT, 1, ""),
            ("20190117\u{e9}", VR::DT, 1, "20190118\u{e9}"),
        ];
        for (v, vr, days, want) in cases {
            assert_eq!(shift_date_or_datetime(v, vr, days), want, "{v}");
        }
    }

    proptest::proptest! {
        /// Properties: pseudonyms, UIDs and date offsets are stable under one key and
        /// differ under another; a pseudonym never contains the value it replaces.
        #[test]
        fn pseudonyms_are_keyed(id in "[A-Za-z0-9^ .-]{3,40}", k1 in proptest::prelude::any::<[u8; 32]>(),
                                k2 in proptest::prelude::any::<[u8; 32]>()) {
            proptest::prop_assume!(k1 != k2);
            let (a, a2, b) = (Deidentifier::new(k1), Deidentifier::new(k1), Deidentifier::new(k2));
            proptest::prop_assert_eq!(a.pseudonym("P", "patient", &id), a2.pseudonym("P", "patient", &id));
            proptest::prop_assert_ne!(a.pseudonym("P", "patient", &id), b.pseudonym("P", "patient", &id));
            proptest::prop_assert_eq!(a.uid(&id), a2.uid(&id));
            proptest::prop_assert_ne!(a.uid(&id), b.uid(&id));
            proptest::prop_assert_eq!(a.date_offset_days(&id), a2.date_offset_days(&id));
            proptest::prop_assert_eq!(a.source_key(&id), a2.source_key(&id));
            proptest::prop_assert_ne!(a.source_key(&id), b.source_key(&id));
            proptest::prop_assert_ne!(a.key_fingerprint(), b.key_fingerprint());
            let p = a.pseudonym("P", "patient", &id);
            proptest::prop_assert!(!p.contains(id.trim()) || id.trim().len() < 6);
        }
    }

    proptest::proptest! {
        /// Property: de-identification is idempotent. A data set of random
        /// names, IDs, dates, times, UIDs, ages, a nested sequence and a private
        /// tag, de-identified twice under one key, equals it de-identified once.
        #[test]
        fn deidentification_is_idempotent(
            name in "[A-Z]{1,12}\\^[A-Z]{1,12}", id in "[A-Z0-9]{1,16}", acc in "[A-Z0-9]{0,12}",
            y in 1920i32..2030, m in 1u32..13, dd in 1u32..29, age in 0u32..120,
            uid in "1\\.2\\.[0-9]{1,6}\\.[0-9]{1,6}", with_id in proptest::bool::ANY,
            private in "[ -~]{0,20}", doctor in "[A-Z]{1,10}\\^[A-Z]{1,10}",
        ) {
            let date = format!("{y:04}{m:02}{dd:02}");
            let mut inner = InMemDicomObject::new_empty();
            inner.put(str_elem(tags::REFERRING_PHYSICIAN_NAME, VR::PN, doctor.clone()));
            inner.put(str_elem(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, format!("{uid}.9")));
            let mut ds = InMemDicomObject::new_empty();
            ds.put(str_elem(tags::PATIENT_NAME, VR::PN, name));
            if with_id {
                ds.put(str_elem(tags::PATIENT_ID, VR::LO, id));
            }
            ds.put(str_elem(tags::ACCESSION_NUMBER, VR::SH, acc));
            ds.put(str_elem(tags::PATIENT_BIRTH_DATE, VR::DA, date.clone()));
            ds.put(str_elem(tags::STUDY_DATE, VR::DA, date));
            ds.put(str_elem(tags::STUDY_TIME, VR::TM, "101500".into()));
            ds.put(str_elem(tags::PATIENT_AGE, VR::AS, format!("{age:03}Y")));
            ds.put(str_elem(tags::STUDY_INSTANCE_UID, VR::UI, uid));
            ds.put(str_elem(Tag(0x0029, 0x1010), VR::LO, private));
            ds.put(DataElement::new(
                tags::REFERENCED_IMAGE_SEQUENCE,
                VR::SQ,
                Value::Sequence(DataSetSequence::new(vec![inner], Length::UNDEFINED)),
            ));
            let once = d().apply(&ds);
            let twice = d().apply(&once);
            proptest::prop_assert_eq!(format!("{twice:?}"), format!("{once:?}"));
        }
    }

    #[test]
    fn age_strings() {
        let cases = [
            ("045Y", Some(45.0)),
            ("006M", Some(0.5)),
            ("052W", Some(1.0)),
            ("090Y", Some(90.0)),
            ("Y", None),
            ("", None),
            ("-01Y", None),
            // a multi-byte last character (found by fuzzing: it panicked)
            ("04\u{e9}", None),
            ("4\u{fffd}", None),
            ("\u{e9}Y", None),
        ];
        for (v, want) in cases {
            assert_eq!(parse_age(v), want, "{v:?}");
        }
    }

    #[test]
    fn intervals_are_kept_within_a_patient() {
        let off = d().date_offset_days("id:PAT1");
        assert!((-3650..=-365).contains(&off));
        let a = shift_date_or_datetime("20200101", VR::DA, off);
        let b = shift_date_or_datetime("20200311", VR::DA, off);
        let (ay, am, ad) = parse_da(&a).unwrap();
        let (by, bm, bd) = parse_da(&b).unwrap();
        assert_eq!(
            days_from_civil(by, bm, bd) - days_from_civil(ay, am, ad),
            70
        );
    }

    #[test]
    fn ages() {
        assert_eq!(age_years(Some("19500615"), Some("20200614")), Some(69));
        assert_eq!(age_years(Some("19500615"), Some("20200615")), Some(70));
        assert_eq!(parse_age("045Y"), Some(45.0));
        assert_eq!(parse_age("006M"), Some(0.5));
    }

    #[test]
    fn nested_sequences_private_tags_and_idempotence() {
        let mut inner = InMemDicomObject::new_empty();
        inner.put(str_elem(
            tags::REFERRING_PHYSICIAN_NAME,
            VR::PN,
            "DR^SECRET".into(),
        ));
        inner.put(str_elem(
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            "1.2.3.99".into(),
        ));
        inner.put(str_elem(
            Tag(0x0009, 0x1001),
            VR::LO,
            "PRIVATE-SECRET".into(),
        ));
        let mut ds = InMemDicomObject::new_empty();
        ds.put(str_elem(tags::PATIENT_NAME, VR::PN, "DOE^JOHN".into()));
        ds.put(str_elem(tags::PATIENT_ID, VR::LO, "MRN123".into()));
        ds.put(str_elem(tags::PATIENT_SEX, VR::CS, "M".into()));
        ds.put(str_elem(
            tags::PATIENT_BIRTH_DATE,
            VR::DA,
            "19500101".into(),
        ));
        ds.put(str_elem(tags::STUDY_DATE, VR::DA, "20200101".into()));
        ds.put(str_elem(
            tags::INSTITUTION_NAME,
            VR::LO,
            "SECRET HOSPITAL".into(),
        ));
        ds.put(str_elem(
            tags::SOP_CLASS_UID,
            VR::UI,
            "1.2.840.10008.5.1.4.1.1.1".into(),
        ));
        ds.put(DataElement::new(
            tags::REFERENCED_IMAGE_SEQUENCE,
            VR::SQ,
            Value::Sequence(DataSetSequence::new(vec![inner], Length::UNDEFINED)),
        ));
        ds.put(str_elem(Tag(0x0019, 0x0010), VR::LO, "ACME".into()));
        let out = d().apply(&ds);
        let dump = format!("{out:?}");
        for secret in [
            "DOE", "JOHN", "MRN123", "19500101", "SECRET", "1.2.3.99", "ACME", "20200101",
        ] {
            assert!(!dump.contains(secret), "{secret} survived: {dump}");
        }
        assert_eq!(attrs::string(&out, tags::PATIENT_SEX).as_deref(), Some("M"));
        assert_eq!(
            attrs::string(&out, tags::PATIENT_AGE).as_deref(),
            Some("070Y")
        );
        assert_eq!(
            attrs::string(&out, tags::SOP_CLASS_UID).as_deref(),
            Some("1.2.840.10008.5.1.4.1.1.1")
        );
        let seq = attrs::items(&out, tags::REFERENCED_IMAGE_SEQUENCE);
        assert_eq!(seq.len(), 1);
        assert!(seq[0].get(Tag(0x0009, 0x1001)).is_none());
        // applying the profile to its own output changes nothing
        assert_eq!(format!("{:?}", d().apply(&out)), format!("{out:?}"));
        // under another key it is de-identified again: nothing of the first key's is trusted
        let other = Deidentifier::new([9u8; 32]).apply(&out);
        assert_ne!(
            attrs::string(&other, tags::PATIENT_ID),
            attrs::string(&out, tags::PATIENT_ID)
        );
    }
}
