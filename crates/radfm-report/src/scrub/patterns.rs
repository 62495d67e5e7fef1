//! PHI with a shape: dates, times, phone numbers, identifiers, e-mail and web
//! addresses, street addresses with city, state and ZIP, ages over 89, and
//! names after a cue (a title, a role, "discussed with") or before a
//! credential ("MD"). Each pattern names the capture group that is PHI.

use std::sync::OnceLock;

use regex::{Regex, RegexBuilder};

use super::{PhiKind, Span};

struct Pattern {
    kind: PhiKind,
    re: Regex,
    /// capture group holding the PHI (0 = whole match)
    group: usize,
    /// a further test of a match
    check: Option<fn(&regex::Captures<'_>) -> bool>,
}

/// City and state: a two-letter state (IN, MD, PA, CT are also words and
/// credentials) needs a ZIP after it or a known place before it.
fn city_state(c: &regex::Captures<'_>) -> bool {
    if c.name("zip").is_some() || c.name("state").is_some_and(|s| s.as_str().len() > 2) {
        return true;
    }
    // "Bell, MD" and "Lee, DO" are credentials far more often than Maryland
    if c.name("state")
        .is_some_and(|s| matches!(s.as_str(), "MD" | "PA"))
    {
        return false;
    }
    let between = &c[0][c
        .name("city")
        .map_or(0, |m| m.end() - c.get(0).unwrap().start())..];
    if !between.trim_start().starts_with(',') {
        return false;
    }
    let city = c.name("city").map_or("", |m| m.as_str()).to_lowercase();
    let words: Vec<&str> = city.split([' ', '-']).collect();
    let places = &super::lexicon::lexicon().places;
    (0..words.len()).any(|k| places.contains(words[k..].join(" ").as_str()))
}

const MONTH: &str = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?|JAN(?:UARY)?|FEB(?:RUARY)?|MAR(?:CH)?|APR(?:IL)?|MAY|JUNE?|JULY?|AUG(?:UST)?|SEPT?(?:EMBER)?|OCT(?:OBER)?|NOV(?:EMBER)?|DEC(?:EMBER)?)";

const STATES: &str = r"(?:AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|West Virginia|Wisconsin|Wyoming)";

/// A capitalised name of one to four words (initials allowed), case-sensitive.
const PERSON: &str = r"(?-i:(?:[A-Z](?:\.|\b)[ \t]?)?\p{Lu}[\p{L}'’-]*\p{Ll}[\p{L}'’-]*(?:,?[ \t](?:\p{Lu}[\p{L}'’-]*\p{Ll}[\p{L}'’-]*|[A-Z](?:\.|\b))){0,3}|[A-Z][A-Z'-]{2,}(?:,?[ \t][A-Z][A-Z'-]+\b){0,3})";

fn patterns() -> &'static [Pattern] {
    static P: OnceLock<Vec<Pattern>> = OnceLock::new();
    P.get_or_init(|| {
        let mk = |kind, re: &str, group, ci| Pattern {
            kind,
            re: RegexBuilder::new(re)
                .case_insensitive(ci)
                .build()
                .unwrap_or_else(|e| panic!("PHI pattern {re}: {e}")),
            group,
            check: None,
        };
        use PhiKind::*;
        vec![
            // --- electronic ---
            mk(Email, r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b", 0, true),
            mk(Url, r"\b(?:https?://|ftp://|www\.)[^\s<>()\[\]]*[^\s<>()\[\].,;:!?]", 0, true),
            mk(
                Url,
                r"\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|edu|gov|us|io|info)(?:/[^\s<>()]*[^\s<>().,;:!?])?\b",
                0,
                true,
            ),
            // --- identifiers ---
            mk(Id, r"\b\d{3}-\d{2}-\d{4}\b", 0, false),
            mk(
                Id,
                r"\b(?:mrn|medical\s+record(?:\s+(?:number|no\.?))?|accession(?:\s+(?:number|no\.?))?|acc\.?|patient\s+id|pt\s+id|id|ssn|record(?:\s+(?:number|no\.?))?|account|acct\.?|encounter|fin|csn|order)\s*(?:#|:|no\.?|number)?\s*[:#]?\s*([A-Z]*-?\d[\w-]{2,})",
                1,
                true,
            ),
            // a digit run of six or more, or letters with five or more digits
            mk(Id, r"\b(?:[A-Za-z]{1,5}-?)?\d{5,}(?:-\d+)*\b", 0, false),
            mk(Id, r"\b[A-Za-z]{2,5}-\d{4}-\d{3,}\b", 0, false),
            mk(Id, r"\b\d{2,3}-\d{6,}\b", 0, false),
            // --- phone ---
            mk(Phone, r"(?:\+?1[\s.-]?)?\(\d{3}\)\s*\d{3}[\s.-]?\d{4}\b", 0, false),
            mk(Phone, r"(?:\b|\+)(?:1[\s.-])?\d{3}[\s.-]\d{3}[\s.-]\d{4}\b", 0, false),
            mk(Phone, r"\b\d{3}-\d{4}\b", 0, false),
            mk(
                Phone,
                r"\b(?:pager|beeper|phone|tel|telephone|callback|call\s+back|cell|fax)\.?\s*[:#]?\s*(\d{3,6})\b",
                1,
                true,
            ),
            mk(Phone, r"\b(?:ext|extension|x)\.?\s*[:#]?\s*\d{3,6}\b", 0, true),
            // --- dates ---
            mk(Date, r"\b(?:0?[1-9]|1[0-2])[/-](?:0?[1-9]|[12]\d|3[01])[/-](?:(?:19|20)\d{2}|\d{2})\b", 0, false),
            mk(Date, r"\b(?:19|20)\d{2}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])\b", 0, false),
            mk(Date, r"\b(?:0?[1-9]|[12]\d|3[01])\.(?:0?[1-9]|1[0-2])\.(?:19|20)\d{2}\b", 0, false),
            mk(Date, r"\b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b", 0, false),
            mk(Date, r"\b(?:0?[1-9]|1[0-2])/(?:19|20)\d{2}\b", 0, false),
            // month and day without a year ("on 3/14"), not a fraction of a larger number
            mk(Date, r"(?:^|[^\d./-])((?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01]))(?:$|[^\d/%])", 1, false),
            mk(
                Date,
                &format!(r"\b{MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?:,?\s+(?:19|20)\d{{2}}\b)?"),
                0,
                false,
            ),
            mk(
                Date,
                &format!(r"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{MONTH}\b\.?(?:,?\s+(?:19|20)\d{{2}}\b)?"),
                0,
                false,
            ),
            mk(Date, &format!(r"\b{MONTH}\.?,?\s+(?:19|20)\d{{2}}\b"), 0, false),
            mk(Date, r"\b\d{1,2}-(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-(?:\d{2}|\d{4})\b", 0, true),
            // --- times ---
            mk(
                Time,
                r"\b(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?:\s*(?:[ap]\.m\.|[ap]m\b|[ap]\b))?",
                0,
                true,
            ),
            mk(Time, r"\b(?:1[0-2]|0?[1-9])\s*(?:[ap]\.m\.|[ap]m\b)", 0, true),
            mk(Time, r"\b(?:[01]\d|2[0-3])[0-5]\d\s*(?:hours|hrs|hr|h)\b", 0, true),
            // --- addresses ---
            mk(
                Address,
                r"\b\d{1,6}\s+(?:(?:[NSEW]\.?|North|South|East|West)\s+)?(?:[A-Z][A-Za-z'-]+\s+){1,3}(?i:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|parkway|pkwy|circle|cir|terrace|highway|hwy|trail|pike)\b\.?(?:,?\s+(?i:apt|apartment|suite|ste|unit|#)\.?\s*[\w-]+)?",
                0,
                false,
            ),
            mk(Address, r"\bP\.?\s?O\.?\s+Box\s+\d+\b", 0, true),
            // city, state and ZIP; the city as one to three capitalised words
            Pattern {
                check: Some(city_state),
                ..mk(
                    Address,
                    &format!(r"\b(?P<city>[A-Z][a-z]+(?:[ -][A-Z][a-z]+){{0,2}}),?\s+(?P<state>{STATES})\b(?:\.?,?\s+(?P<zip>\d{{5}}(?:-\d{{4}})?)\b)?"),
                    0,
                    false,
                )
            },
            mk(Address, &format!(r"\b{STATES}\s+(\d{{5}}(?:-\d{{4}})?)\b"), 1, false),
            mk(Address, r"\b(?:zip|zip code|postal code)\s*:?\s*(\d{5}(?:-\d{4})?)\b", 1, true),
            // --- ages over 89 ---
            mk(
                Age,
                r"\b(?:9\d|1[01]\d)\s*(?:-\s*)?(?:years?|yrs?|y/?o|yo|y\.o\.|year-old|yr-old|years-old|-year-old)\b(?:[\s-]+old\b)?",
                0,
                true,
            ),
            mk(Age, r"\b(?:age|aged|ages)\s*:?\s*(9\d|1[01]\d)\b", 1, true),
            mk(Age, r"\b(?:9\d|1[01]\d)\s?(?:M|F|yM|yF)\b", 0, false),
            mk(
                Age,
                r"\b(?:ninety|one\s+hundred)(?:[\s-]+(?:and\s+)?(?:one|two|three|four|five|six|seven|eight|nine|ten))?[\s-]+(?:years?|yrs?|year-old)\b(?:[\s-]+old\b)?",
                0,
                true,
            ),
            // --- names after a cue or before a credential ---
            mk(
                Name,
                &format!(r"\b(?i:dr|doctor|mr|mrs|ms|miss|mx|prof|professor|nurse)\b\.?\s+({PERSON})"),
                1,
                false,
            ),
            mk(
                Name,
                &format!(r"\b(?i:discussed\s+with|called\s+to|communicated\s+to|notified|paged|telephoned|reported\s+to|signed\s+by|signed|dictated\s+by|transcribed\s+by|read\s+by|reviewed\s+by|attending|resident|fellow|technologist|tech|radiologist|physician|provider|pcp|referring(?:\s+(?:physician|provider|doctor|md))?|ordering(?:\s+(?:physician|provider|doctor|md))?|patient(?:\s+name)?|pt(?:\s+name)?|name|attn|cc|contact|spoke\s+with|informed|seen\s+by)\s*:?\s+(?i:dr\.?\s+)?({PERSON})"),
                1,
                false,
            ),
            mk(
                Name,
                r"\b((?:[A-Z]\.\s?)?(?:\p{Lu}[\p{L}'’-]*\p{Ll}[\p{L}'’-]*|[A-Z]{2,})(?:,?\s+(?:[A-Z]\.?|\p{Lu}[\p{L}'’-]*\p{Ll}[\p{L}'’-]*|[A-Z]{2,})){0,3}),?\s+(?:MD|M\.D\.|DO|D\.O\.|RN|NP|PA-C|PhD|Ph\.D\.|MBBS|FRCR|FRCPC|DNP|CRNP|RT\(R\)|ARNP|APRN|DMD|DDS)(?:\b|$)",
                1,
                false,
            ),
        ]
    })
}

/// Spans of the shaped PHI in `text`.
pub(crate) fn find(text: &str, out: &mut Vec<Span>) {
    for p in patterns() {
        for c in p.re.captures_iter(text) {
            if p.check.is_some_and(|f| !f(&c)) {
                continue;
            }
            if let Some(m) = c.get(p.group) {
                let s = m.as_str();
                let trimmed = s.trim_end_matches([' ', '\t', ',', '\n']);
                if !trimmed.is_empty() {
                    out.push(Span {
                        start: m.start(),
                        end: m.start() + trimmed.len(),
                        kind: p.kind,
                    });
                }
            }
        }
    }
}
