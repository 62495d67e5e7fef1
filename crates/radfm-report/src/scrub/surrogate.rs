//! Realistic surrogates ("hide in plain sight"): each found span is replaced
//! by a fake value of its type and shape, so that whatever the scrubber
//! missed hides among fakes.
//!
//! Surrogates are keyed (HMAC-SHA256 under a secret key) by patient and
//! original value: within one patient the same name, number or place always
//! gets the same surrogate, and different patients get different ones. Dates
//! keep their format and are shifted by the patient's date offset, so
//! intervals within a patient survive (ingest passes the offset it applies to
//! the patient's DICOM dates). Ages over 89 become 90.

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use regex::Regex;
use sha2::Sha256;

use super::lexicon::lexicon;
use super::PhiKind;

/// The patient a report belongs to, as surrogates see them.
#[derive(Debug, Clone, Copy)]
pub struct Patient<'a> {
    /// a stable identifier (ingest uses the pseudonymous patient ID)
    pub id: &'a str,
    /// days added to every date of this patient (negative: into the past)
    pub date_offset_days: i64,
}

/// A keyed surrogate generator.
pub struct Surrogates {
    key: [u8; 32],
}

impl std::fmt::Debug for Surrogates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Surrogates { key: <secret> }")
    }
}

const STREET_WORDS: &[&str] = &[
    "street",
    "st",
    "avenue",
    "ave",
    "road",
    "rd",
    "boulevard",
    "blvd",
    "lane",
    "ln",
    "drive",
    "dr",
    "court",
    "ct",
    "way",
    "place",
    "pl",
    "parkway",
    "pkwy",
    "circle",
    "cir",
    "terrace",
    "highway",
    "hwy",
    "trail",
    "pike",
    "apt",
    "apartment",
    "suite",
    "ste",
    "unit",
    "box",
    "po",
    "p",
    "o",
    "n",
    "s",
    "e",
    "w",
    "north",
    "south",
    "east",
    "west",
];
const KEEP_INSTITUTION: &[&str] = &[
    "hospital",
    "hospitals",
    "clinic",
    "clinics",
    "infirmary",
    "healthcare",
    "center",
    "centre",
    "health",
    "memorial",
    "imaging",
    "radiology",
    "medical",
    "regional",
    "university",
    "institute",
    "of",
    "the",
    "and",
    "system",
    "children's",
    "st",
    "saint",
    "community",
    "general",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl Surrogates {
    pub fn new(key: [u8; 32]) -> Surrogates {
        Surrogates { key }
    }

    /// A keyed per-patient date shift, 365 to 3650 days into the past, for
    /// callers without one of their own (ingest passes the DICOM shift).
    pub fn date_offset_days(&self, patient: &str) -> i64 {
        let mut s = self.stream(patient, "date-offset", "");
        let v = u32::from_be_bytes(std::array::from_fn(|_| s.next().expect("endless")));
        -(365 + i64::from(v % 3286))
    }

    /// A byte stream keyed by (patient, what, value).
    fn stream(&self, patient: &str, what: &str, value: &str) -> impl Iterator<Item = u8> {
        let mut blocks = 0u32;
        let key = self.key;
        let (patient, what, value) = (patient.to_string(), what.to_string(), value.to_lowercase());
        std::iter::from_fn(move || {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
            for part in [patient.as_bytes(), what.as_bytes(), value.as_bytes()] {
                m.update(part);
                m.update(&[0]);
            }
            m.update(&blocks.to_be_bytes());
            blocks += 1;
            Some(m.finalize().into_bytes().to_vec())
        })
        .flatten()
    }

    fn pick<'a>(&self, patient: &str, what: &str, value: &str, list: &[&'a str]) -> &'a str {
        let mut s = self.stream(patient, what, value);
        let v = u64::from_be_bytes(std::array::from_fn(|_| s.next().expect("endless")));
        list[(v % list.len() as u64) as usize]
    }

    /// The surrogate of `original`, found as `kind`, in a report of `patient`.
    pub fn surrogate(&self, patient: Patient<'_>, kind: PhiKind, original: &str) -> String {
        let p = patient.id;
        match kind {
            PhiKind::Name => self.name(p, original),
            PhiKind::Date => shift_date(original, patient.date_offset_days)
                .unwrap_or_else(|| self.reshape(p, "date", original)),
            PhiKind::Time => self.time(p, original),
            PhiKind::Phone | PhiKind::Id => self.reshape(p, kind.as_str(), original),
            PhiKind::Email => {
                let (f, l) = (self.first(p, original), self.last(p, original));
                format!("{}.{}@example.org", f.to_lowercase(), l.to_lowercase())
            }
            PhiKind::Url => {
                let mut s = self.stream(p, "url", original);
                let hex: String = (0..4)
                    .map(|_| format!("{:02x}", s.next().expect("endless")))
                    .collect();
                format!("https://example.org/r/{hex}")
            }
            PhiKind::Address => self.address(p, original),
            PhiKind::Age => {
                let re = digits_re();
                re.replace(original, "90").into_owned()
            }
            PhiKind::Institution => self.words(p, original, |w| {
                KEEP_INSTITUTION.contains(&w.to_lowercase().as_str())
            }),
        }
    }

    fn first(&self, p: &str, v: &str) -> String {
        cap(self.pick(p, "first", v, first_top()))
    }

    fn last(&self, p: &str, v: &str) -> String {
        cap(self.pick(p, "last", v, last_top()))
    }

    fn name(&self, p: &str, original: &str) -> String {
        let lex = lexicon();
        // "Last, First" puts the given name second; otherwise it comes first
        let comma = original.contains(',');
        let words = original
            .split(|c: char| !c.is_alphabetic())
            .filter(|w| w.chars().count() > 1)
            .count();
        let mut k = 0;
        self.map_words(original, |w| {
            let lw = w.to_lowercase();
            let letters = w.chars().filter(|c| c.is_alphabetic()).count();
            let given_slot = words >= 2 && letters > 1 && if comma { k == 1 } else { k == 0 };
            if letters > 1 {
                k += 1;
            }
            let new = if letters == 1 {
                let c = self.pick(p, "initial", &lw, &INITIALS);
                c.to_string()
            } else if lex.first.contains(lw.as_str())
                && (given_slot || !lex.last.contains(lw.as_str()))
            {
                self.first(p, &lw)
            } else {
                self.last(p, &lw)
            };
            Some(same_case(w, &new))
        })
    }

    fn address(&self, p: &str, original: &str) -> String {
        let lex = lexicon();
        let lower = original.to_lowercase();
        if lex.places.contains(lower.trim()) {
            let places: Vec<&str> = PLACES
                .get_or_init(|| {
                    let mut v: Vec<&'static str> = lex.places.iter().copied().collect();
                    v.sort_unstable();
                    v
                })
                .clone();
            return same_case(original, &title(self.pick(p, "place", &lower, &places)));
        }
        let digits = self.digits(p, "address", original);
        // words: keep street words and states, replace the rest by surnames or places
        self.words(p, &digits, |w| {
            STREET_WORDS.contains(&w.to_lowercase().as_str())
                || (w.len() == 2 && w.chars().all(|c| c.is_ascii_uppercase()))
                || STATE_NAMES.contains(&w)
        })
    }

    /// Replace capitalised words of `s` (unless `keep`) by surnames.
    fn words(&self, p: &str, s: &str, keep: impl Fn(&str) -> bool) -> String {
        self.map_words(s, |w| {
            if keep(w) || !w.starts_with(|c: char| c.is_uppercase()) {
                None
            } else {
                Some(same_case(w, &self.last(p, w)))
            }
        })
    }

    fn map_words(&self, s: &str, mut f: impl FnMut(&str) -> Option<String>) -> String {
        let mut out = String::with_capacity(s.len());
        let mut word = String::new();
        let flush =
            |word: &mut String, out: &mut String, f: &mut dyn FnMut(&str) -> Option<String>| {
                if !word.is_empty() {
                    match f(word) {
                        Some(n) => out.push_str(&n),
                        None => out.push_str(word),
                    }
                    word.clear();
                }
            };
        for c in s.chars() {
            if c.is_alphabetic() || (c == '\'' && !word.is_empty()) {
                word.push(c);
            } else {
                flush(&mut word, &mut out, &mut f);
                out.push(c);
            }
        }
        flush(&mut word, &mut out, &mut f);
        out
    }

    /// Keyed digits in place of the digits; letters kept.
    fn digits(&self, p: &str, what: &str, original: &str) -> String {
        let mut s = self.stream(p, what, original);
        original
            .chars()
            .map(|c| match (c.is_ascii_digit(), s.next().expect("endless")) {
                (true, b) => char::from(b'0' + b % 10),
                (false, _) => c,
            })
            .collect()
    }

    /// Same shape, keyed digits and letters: 317-555-0188 -> 804-219-6630.
    fn reshape(&self, p: &str, what: &str, original: &str) -> String {
        let mut s = self.stream(p, what, original);
        original
            .chars()
            .map(|c| {
                let b = s.next().expect("endless");
                if c.is_ascii_digit() {
                    char::from(b'0' + b % 10)
                } else if c.is_ascii_uppercase() {
                    char::from(b'A' + b % 26)
                } else if c.is_ascii_lowercase() {
                    char::from(b'a' + b % 26)
                } else {
                    c
                }
            })
            .collect()
    }

    fn time(&self, p: &str, original: &str) -> String {
        let mut s = self.stream(p, "time-offset", "");
        let shift = (u16::from_be_bytes([s.next().expect("endless"), s.next().expect("endless")])
            % 720) as i64;
        static RE: OnceLock<Regex> = OnceLock::new();
        let re = RE.get_or_init(|| Regex::new(r"^(\d{1,2})(:?)(\d{2})?").expect("valid"));
        let Some(c) = re.captures(original) else {
            return self.reshape(p, "time", original);
        };
        let h: i64 = c[1].parse().unwrap_or(0);
        let m: i64 = c.get(3).map_or(0, |m| m.as_str().parse().unwrap_or(0));
        let twelve = original.to_lowercase().contains(['a', 'p']);
        let total = (h * 60 + m + shift).rem_euclid(if twelve { 720 } else { 1440 });
        let (nh, nm) = (total / 60, total % 60);
        let nh = if twelve && nh == 0 { 12 } else { nh };
        let hs = if c[1].len() == 2 {
            format!("{nh:02}")
        } else {
            nh.to_string()
        };
        let body = match c.get(3) {
            Some(_) => format!("{hs}{}{nm:02}", &c[2]),
            None => hs,
        };
        format!("{body}{}", &original[c.get(0).expect("whole").end()..])
    }
}

static FIRST_TOP: OnceLock<Vec<&'static str>> = OnceLock::new();
static LAST_TOP: OnceLock<Vec<&'static str>> = OnceLock::new();
static PLACES: OnceLock<Vec<&'static str>> = OnceLock::new();
const INITIALS: [&str; 20] = [
    "A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "T", "V", "W",
    "Y",
];
const STATE_NAMES: &[&str] = &[
    "Indiana",
    "Illinois",
    "Ohio",
    "Michigan",
    "Kentucky",
    "Wisconsin",
    "Iowa",
    "California",
    "Texas",
    "Florida",
    "New",
    "York",
    "Georgia",
    "Virginia",
    "Carolina",
    "Washington",
    "Oregon",
];

/// The most frequent names (the shipped files are ordered by frequency).
fn first_top() -> &'static [&'static str] {
    FIRST_TOP.get_or_init(|| {
        include_str!("../../data/first_names.txt")
            .lines()
            .take(1000)
            .collect()
    })
}

fn last_top() -> &'static [&'static str] {
    LAST_TOP.get_or_init(|| {
        include_str!("../../data/surnames.txt")
            .lines()
            .take(5000)
            .collect()
    })
}

fn digits_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\d+").expect("valid"))
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn title(s: &str) -> String {
    s.split(' ').map(cap).collect::<Vec<_>>().join(" ")
}

/// `new` in the letter case of `like`: SMITH -> GARNER, Smith -> Garner.
fn same_case(like: &str, new: &str) -> String {
    let letters: Vec<char> = like.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.len() > 1 && letters.iter().all(|c| c.is_uppercase()) {
        new.to_uppercase()
    } else if letters.first().is_some_and(|c| c.is_lowercase()) {
        new.to_lowercase()
    } else {
        new.to_string()
    }
}

// ---- dates -------------------------------------------------------------

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn month_index(s: &str) -> Option<i64> {
    let l = s.to_lowercase();
    MONTHS
        .iter()
        .position(|m| l.len() >= 3 && m.to_lowercase().starts_with(&l[..3]))
        .map(|i| i as i64 + 1)
}

/// `original` shifted by `offset` days, in the same layout; None when it is
/// not a layout known here.
pub fn shift_date(original: &str, offset: i64) -> Option<String> {
    static RE: OnceLock<Vec<Regex>> = OnceLock::new();
    let res = RE.get_or_init(|| {
        [
            // 0: m/d/y or m-d-y
            r"^(\d{1,2})([/-])(\d{1,2})([/-])(\d{2}|\d{4})$",
            // 1: y-m-d, y/m/d, y.m.d
            r"^(\d{4})([-/.])(\d{1,2})([-/.])(\d{1,2})$",
            // 2: d.m.y
            r"^(\d{1,2})(\.)(\d{1,2})(\.)(\d{4})$",
            // 3: yyyymmdd
            r"^(\d{4})(\d{2})(\d{2})$",
            // 4: Month d(, y) / Mon. d y
            r"^([A-Za-z]+)(\.?\s+)(\d{1,2})(?:st|nd|rd|th)?(?:(,?\s+)(\d{4}))?$",
            // 5: d Month(, y)
            r"^(\d{1,2})(?:st|nd|rd|th)?(\s+(?:of\s+)?)([A-Za-z]+)(?:(\.?,?\s+)(\d{4}))?$",
            // 6: Month y
            r"^([A-Za-z]+)(\.?,?\s+)(\d{4})$",
            // 7: m/d
            r"^(\d{1,2})(/)(\d{1,2})$",
        ]
        .iter()
        .map(|r| Regex::new(r).expect("valid"))
        .collect()
    });
    let s = original.trim();
    let shift = |y: i64, m: i64, d: i64| civil_from_days(days_from_civil(y, m, d) + offset);
    // zero-padded when the original pads any of its fields
    let padded = s
        .split(|c: char| !c.is_ascii_digit())
        .any(|f| f.len() == 2 && f.starts_with('0'));
    let pad = |v: i64, like: &str| {
        if padded && like.len() == 2 {
            format!("{v:02}")
        } else {
            v.to_string()
        }
    };
    let year = |y: i64, like: &str| {
        if like.len() == 2 {
            format!("{:02}", y.rem_euclid(100))
        } else {
            y.to_string()
        }
    };
    let month_like = |m: i64, like: &str| {
        let full = MONTHS[(m - 1) as usize];
        let out = if like.len() <= 4 && !MONTHS.iter().any(|x| x.eq_ignore_ascii_case(like)) {
            full[..3].to_string()
        } else {
            full.to_string()
        };
        same_case(like, &out)
    };
    for (i, re) in res.iter().enumerate() {
        let Some(c) = re.captures(s) else { continue };
        let g = |k: usize| c.get(k).map_or("", |m| m.as_str());
        let num = |k: usize| g(k).parse::<i64>().ok();
        let valid = |m: i64, d: i64| (1..=12).contains(&m) && (1..=31).contains(&d);
        return match i {
            0 => {
                let (m, d, y) = (num(1)?, num(3)?, num(5)?);
                let full = if g(5).len() == 2 {
                    2000 + y - if y > 50 { 100 } else { 0 }
                } else {
                    y
                };
                valid(m, d).then_some(())?;
                let (ny, nm, nd) = shift(full, m, d);
                Some(format!(
                    "{}{}{}{}{}",
                    pad(nm, g(1)),
                    g(2),
                    pad(nd, g(3)),
                    g(4),
                    year(ny, g(5))
                ))
            }
            1 | 3 => {
                let (y, m, d) = if i == 1 {
                    (num(1)?, num(3)?, num(5)?)
                } else {
                    (num(1)?, num(2)?, num(3)?)
                };
                valid(m, d).then_some(())?;
                let (ny, nm, nd) = shift(y, m, d);
                Some(if i == 1 {
                    format!("{ny}{}{}{}{}", g(2), pad(nm, g(3)), g(4), pad(nd, g(5)))
                } else {
                    format!("{ny}{nm:02}{nd:02}")
                })
            }
            2 => {
                let (d, m, y) = (num(1)?, num(3)?, num(5)?);
                valid(m, d).then_some(())?;
                let (ny, nm, nd) = shift(y, m, d);
                Some(format!("{}.{}.{ny}", pad(nd, g(1)), pad(nm, g(3))))
            }
            4 => {
                let m = month_index(g(1))?;
                let d = num(3)?;
                let y = num(5).unwrap_or(2000);
                valid(m, d).then_some(())?;
                let (ny, nm, nd) = shift(y, m, d);
                let tail = if c.get(5).is_some() {
                    format!("{}{ny}", g(4))
                } else {
                    String::new()
                };
                Some(format!("{}{}{nd}{tail}", month_like(nm, g(1)), g(2)))
            }
            5 => {
                let (d, m) = (num(1)?, month_index(g(3))?);
                let y = num(5).unwrap_or(2000);
                valid(m, d).then_some(())?;
                let (ny, nm, nd) = shift(y, m, d);
                let tail = if c.get(5).is_some() {
                    format!("{}{ny}", g(4))
                } else {
                    String::new()
                };
                Some(format!("{nd}{}{}{tail}", g(2), month_like(nm, g(3))))
            }
            6 => {
                let (m, y) = (month_index(g(1))?, num(3)?);
                let (ny, nm, _) = shift(y, m, 15);
                Some(format!("{}{}{ny}", month_like(nm, g(1)), g(2)))
            }
            _ => {
                let (m, d) = (num(1)?, num(3)?);
                valid(m, d).then_some(())?;
                let (_, nm, nd) = shift(2000, m, d);
                Some(format!("{}/{}", pad(nm, g(1)), pad(nd, g(3))))
            }
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(id: &str) -> Patient<'_> {
        Patient {
            id,
            date_offset_days: -400,
        }
    }

    #[test]
    fn dates_keep_their_layout_and_shift_by_the_offset() {
        for (a, b) in [
            ("03/14/2019", "02/07/2018"),
            ("3/14/19", "2/7/18"),
            ("2019-03-14", "2018-02-07"),
            ("14.3.2019", "7.2.2018"),
            ("20190314", "20180207"),
            ("March 14, 2019", "February 7, 2018"),
            ("Mar 14 2019", "Feb 7 2018"),
            ("14 March 2019", "7 February 2018"),
            ("March 2019", "February 2018"),
            ("3/14", "2/8"),
        ] {
            assert_eq!(shift_date(a, -400).as_deref(), Some(b), "{a}");
        }
        assert_eq!(shift_date("13/45/2019", -1), None);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(
            civil_from_days(days_from_civil(2024, 2, 29) + 1),
            (2024, 3, 1)
        );
    }

    #[test]
    fn surrogates_are_consistent_within_a_patient_and_differ_across() {
        let s = Surrogates::new([7; 32]);
        let a = s.surrogate(pat("P1"), PhiKind::Name, "Rose Young");
        assert_eq!(a, s.surrogate(pat("P1"), PhiKind::Name, "Rose Young"));
        assert_ne!(a, "Rose Young");
        assert_eq!(a.split(' ').count(), 2, "{a}");
        // the same surname gets the same surrogate wherever it occurs
        let b = s.surrogate(pat("P1"), PhiKind::Name, "Young");
        assert!(a.ends_with(&b), "{a} / {b}");
        let names: std::collections::HashSet<String> = (0..20)
            .map(|i| s.surrogate(pat(&format!("P{i}")), PhiKind::Name, "Smith"))
            .collect();
        assert!(
            names.len() > 10,
            "surrogates vary across patients: {names:?}"
        );
        assert_eq!(
            s.surrogate(pat("P1"), PhiKind::Name, "SMITH, JOHN")
                .to_uppercase(),
            s.surrogate(pat("P1"), PhiKind::Name, "SMITH, JOHN")
        );
        let phone = s.surrogate(pat("P1"), PhiKind::Phone, "(317) 555-0188");
        assert!(
            phone.starts_with('(') && phone.len() == 14 && phone != "(317) 555-0188",
            "{phone}"
        );
        assert_eq!(
            s.surrogate(pat("P1"), PhiKind::Age, "96-year-old"),
            "90-year-old"
        );
        let t = s.surrogate(pat("P1"), PhiKind::Time, "10:45 AM");
        assert!(t.ends_with(" AM") && t.len() >= 7, "{t}");
        let inst = s.surrogate(pat("P1"), PhiKind::Institution, "Good Samaritan Hospital");
        assert!(
            inst.ends_with(" Hospital") && !inst.contains("Samaritan"),
            "{inst}"
        );
        let other = Surrogates::new([8; 32]);
        assert_ne!(
            other.surrogate(pat("P1"), PhiKind::Name, "Rose Young"),
            a,
            "keyed"
        );
    }
}
