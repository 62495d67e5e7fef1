//! A rule-based CheXpert-14 report labeler. The rules are data: mention
//! phrases per observation (`rules/mentions.txt`) and negation, uncertainty
//! and scope triggers (`rules/triggers.txt`), compiled into the binary and
//! parsed once. See those files for the rule families; `tests` below hold one
//! table per family.
//!
//! For each mention of an observation the labeler decides a status:
//!
//! 1. A mention rule may fix the status itself (`negative: heart size ~3
//!    normal`, `uncertain: borderline cardiomegaly`).
//! 2. Otherwise the nearest trigger before it in the same clause decides:
//!    `[negation pre]` ("no", "without", "negative for"), `[uncertain pre]`
//!    ("probably", "likely") or `[possible pre]` ("possible", "may represent",
//!    "cannot exclude", "unlikely") apply for up to `PRE_WINDOW` words,
//!    through lists ("no effusion, pneumothorax, or consolidation"), until a
//!    terminator ("but", "however", `;`, `:`, the end of the sentence) or a
//!    newer trigger. `[suggest]` triggers ("to suggest", "concerning for") are
//!    uncertain unless they sit inside an active negation ("no opacity to
//!    suggest pneumonia" is negative). Under a `[hypothetical]` trigger ("if
//!    there is concern for", "to exclude", "could obscure") the text does not
//!    claim the finding at all, and the mention is dropped.
//! 3. Failing that, a `[negation post]`, `[uncertain post]` or `[possible post]` trigger up to
//!    `POST_WINDOW` words after it in the same clause ("effusion has
//!    resolved", "pneumonia is not excluded").
//! 4. Otherwise the mention is positive.
//!
//! A mention made uncertain by a `[possible ...]` trigger is marked weak: the
//! finding is raised only as a possibility. Under the default
//! [`Hedges::Probable`] it stays in the evidence but does not set its
//! observation's label; under [`Hedges::All`] it is uncertain like any other.
//!
//! Per report, an observation is positive if any mention is positive, else
//! uncertain if any is uncertain, else negative; unmentioned observations are
//! left out. `No Finding` is positive when no observation other than Support
//! Devices is positive or uncertain (and left out otherwise). By default the
//! observations counted include [`OTHER_FINDINGS`] (granulomas, degenerative
//! change, hyperinflation, ...), so that No Finding means a normal study;
//! [`NoFindingRule::Chexpert`] counts only the CheXpert 14, as CheXpert does.

use std::sync::OnceLock;

use radfm_core::{Observation, ObservationMap};

use crate::pattern::{Pattern, PatternError, PatternSet};
use crate::text::{tokenize, Kind, Token};

/// Findings outside the CheXpert 14 that the labeler also recognises. They
/// are reported separately (`other_findings`) and, under the default
/// [`NoFindingRule::Normal`], make a report not "No Finding".
pub const OTHER_FINDINGS: &[&str] = &[
    "Calcified Granuloma",
    "Calcification",
    "Degenerative Change",
    "Spinal Curvature",
    "Bone Abnormality",
    "Aortic Abnormality",
    "Hyperinflation",
    "Low Lung Volumes",
    "Hernia",
    "Diaphragm Abnormality",
    "Surgical Change",
    "Hilar Abnormality",
    "Airway Abnormality",
    "Other Abnormality",
];

/// Number of findings the labeler tracks: the 14, then the others.
const ALL: usize = Observation::ALL.len() + OTHER_FINDINGS.len();

/// What a mention names: one of the 14 CheXpert observations, or one of the
/// [`OTHER_FINDINGS`] (by its position there). Serialises as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Finding {
    Chexpert(Observation),
    Other(usize),
}

impl Finding {
    /// The finding with this exact name.
    pub fn parse(name: &str) -> Option<Finding> {
        match name.parse::<Observation>() {
            Ok(o) => Some(Finding::Chexpert(o)),
            Err(_) => OTHER_FINDINGS
                .iter()
                .position(|o| *o == name)
                .map(Finding::Other),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Finding::Chexpert(o) => o.as_str(),
            Finding::Other(i) => OTHER_FINDINGS[i],
        }
    }

    /// The CheXpert observation, if it is one.
    pub fn observation(self) -> Option<Observation> {
        match self {
            Finding::Chexpert(o) => Some(o),
            Finding::Other(_) => None,
        }
    }

    /// Slot in the labeler's status table: the 14, then the others.
    fn slot(self) -> usize {
        match self {
            Finding::Chexpert(o) => o.index(),
            Finding::Other(i) => Observation::ALL.len() + i,
        }
    }

    /// Whether it keeps No Finding from being positive under `rule`.
    fn counts_against_no_finding(self, rule: NoFindingRule) -> bool {
        match self {
            Finding::Chexpert(o) => o.is_finding(),
            Finding::Other(_) => rule == NoFindingRule::Normal,
        }
    }

    /// Every finding, in slot order.
    fn all() -> impl Iterator<Item = Finding> {
        Observation::ALL
            .into_iter()
            .map(Finding::Chexpert)
            .chain((0..OTHER_FINDINGS.len()).map(Finding::Other))
    }
}

impl serde::Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// When `No Finding` is positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoFindingRule {
    /// No observation other than Support Devices is positive or uncertain,
    /// counting the [`OTHER_FINDINGS`] too: a normal study.
    #[default]
    Normal,
    /// Only the CheXpert 14 count (CheXpert's own rule).
    Chexpert,
}

/// Which hedged mentions set an observation's label.
///
/// Radiologists grade their certainty with a small vocabulary: "consistent
/// with" (almost certain), "probably", "likely", "suspicious for" (more likely
/// than not), "possibly", "may represent", "could be" (a possibility among
/// others), "cannot exclude" (unlikely but not ruled out). Expert coders, such
/// as the MeSH coders of the IU/Open-i collection, code the first two grades
/// and leave the possibilities out; the CheXpert labeler calls every hedge
/// uncertain. Both kinds of mention are kept in the evidence either way (the
/// weak ones with `weak: true`); this decides the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hedges {
    /// Only hedges that make the finding at least probable (`[uncertain ...]`
    /// triggers) label it uncertain. A finding only raised as a possibility
    /// (`[possible ...]` triggers) does not set its label, but it does keep
    /// No Finding from being positive.
    #[default]
    Probable,
    /// Every hedge labels the finding uncertain, as the CheXpert labeler does.
    All,
}

impl Hedges {
    /// The policy's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Hedges::Probable => "probable",
            Hedges::All => "all",
        }
    }

    /// The policy named `name` (`probable` or `all`).
    pub fn from_name(name: &str) -> Option<Hedges> {
        [Hedges::Probable, Hedges::All]
            .into_iter()
            .find(|h| h.as_str() == name)
    }
}

/// How [`Labeler::label_with`] turns mentions into labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LabelOptions {
    pub no_finding: NoFindingRule,
    pub hedges: Hedges,
}

/// Words between a pre-trigger and the mention it governs.
pub const PRE_WINDOW: usize = 12;
/// Words between a mention and a post-trigger that governs it.
pub const POST_WINDOW: usize = 6;

/// A mention's or an observation's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Negative,
    Uncertain,
    Positive,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Negative => "negative",
            Status::Uncertain => "uncertain",
            Status::Positive => "positive",
        }
    }

    /// Positive or uncertain: the primary scoring convention.
    pub fn is_positive_or_uncertain(self) -> bool {
        self != Status::Negative
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleStatus {
    Fixed(Status),
    /// positive unless a trigger says otherwise
    Default,
    /// blocks shorter mentions of the same observation inside it
    Ignore,
}

#[derive(Debug, Clone, Copy)]
struct MentionRule {
    obs: Finding,
    status: RuleStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    NegPre,
    NegPost,
    UncPre,
    UncPost,
    UncBoth,
    /// weak hedges: "possible", "may represent", "cannot exclude"
    PossPre,
    PossPost,
    PossBoth,
    Suggest,
    Hypothetical,
    Pseudo,
    Terminator,
}

/// One mention found in the text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Evidence {
    pub observation: Finding,
    pub status: Status,
    /// an uncertain mention raised only as a possibility (a `[possible ...]`
    /// trigger: "may represent", "cannot exclude"); see [`Hedges`]
    pub weak: bool,
    /// byte offsets into the labelled text
    pub start: usize,
    pub end: usize,
}

/// The labels of one report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    /// indexed by [`Finding::slot`]; `None` = not mentioned
    status: [Option<Status>; ALL],
    pub evidence: Vec<Evidence>,
}

impl Labels {
    /// A CheXpert observation's label (None: not mentioned).
    pub fn get(&self, o: Observation) -> Option<Status> {
        self.status[o.index()]
    }

    /// Any finding's label, the [`OTHER_FINDINGS`] included.
    pub fn finding(&self, f: Finding) -> Option<Status> {
        self.status[f.slot()]
    }

    /// The CheXpert observations' labels.
    pub fn chexpert(&self) -> ObservationMap<Option<Status>> {
        ObservationMap::from_fn(|o| self.get(o))
    }

    /// `(observation, status)` of the mentioned CheXpert observations, in CheXpert order.
    pub fn iter(&self) -> impl Iterator<Item = (Observation, Status)> + '_ {
        Observation::ALL
            .into_iter()
            .filter_map(|o| self.get(o).map(|s| (o, s)))
    }

    /// `(name, status)` of the mentioned [`OTHER_FINDINGS`].
    pub fn other(&self) -> impl Iterator<Item = (&'static str, Status)> + '_ {
        (0..OTHER_FINDINGS.len())
            .map(Finding::Other)
            .filter_map(|f| self.finding(f).map(|s| (f.name(), s)))
    }
}

/// A rule file problem, with its line.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{file}:{line}: {source}")]
    Pattern {
        file: &'static str,
        line: usize,
        source: PatternError,
    },
    #[error("{file}:{line}: {reason}")]
    Syntax {
        file: &'static str,
        line: usize,
        reason: String,
    },
}

const MENTIONS: &str = include_str!("../rules/mentions.txt");
const TRIGGERS: &str = include_str!("../rules/triggers.txt");

/// Lines of a rule file as `(line number, section, body)`, skipping comments.
fn rule_lines(src: &str) -> impl Iterator<Item = (usize, Option<&str>, &str)> {
    let mut section = None;
    src.lines().enumerate().filter_map(move |(n, l)| {
        let l = l.split(" #").next().unwrap_or("").trim();
        if l.is_empty() || l.starts_with('#') {
            return None;
        }
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = Some(s);
            return None;
        }
        Some((n + 1, section, l))
    })
}

/// The compiled rules.
pub struct Labeler {
    mentions: PatternSet<MentionRule>,
    triggers: PatternSet<Trigger>,
    /// a digest of the rule texts
    rules: String,
}

impl Labeler {
    /// The built-in rules (parsed once per process).
    pub fn builtin() -> &'static Labeler {
        static L: OnceLock<Labeler> = OnceLock::new();
        L.get_or_init(|| Labeler::from_rules(MENTIONS, TRIGGERS).expect("built-in rules compile"))
    }

    /// What labelled: the crate's version and a digest of the rules, e.g.
    /// `radfm-report 0.1.0 rules 3f2a9c01b7de`. Stored beside weak labels, so
    /// that labels from other rules are found and redone.
    pub fn version(&self) -> String {
        format!(
            "radfm-report {} rules {}",
            env!("CARGO_PKG_VERSION"),
            self.rules
        )
    }

    /// Compile rule texts in the formats of `rules/mentions.txt` and `rules/triggers.txt`.
    pub fn from_rules(mentions: &str, triggers: &str) -> Result<Labeler, RuleError> {
        use sha2::Digest;
        let digest = sha2::Sha256::new()
            .chain_update(mentions)
            .chain_update([0u8])
            .chain_update(triggers)
            .finalize();
        let rules: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        const MF: &str = "mentions.txt";
        const TF: &str = "triggers.txt";
        let mut m = Vec::new();
        for (line, section, body) in rule_lines(mentions) {
            let syntax = |reason: String| RuleError::Syntax {
                file: MF,
                line,
                reason,
            };
            let section =
                section.ok_or_else(|| syntax("rule before any [Observation] header".into()))?;
            let obs = Finding::parse(section)
                .ok_or_else(|| syntax(format!("unknown observation [{section}]")))?;
            let (status, pat) = match body.split_once(": ") {
                Some(("positive", p)) => (RuleStatus::Default, p),
                Some(("negative", p)) => (RuleStatus::Fixed(Status::Negative), p),
                Some(("uncertain", p)) => (RuleStatus::Fixed(Status::Uncertain), p),
                Some(("ignore", p)) => (RuleStatus::Ignore, p),
                Some((other, _)) if !other.contains(' ') => {
                    return Err(syntax(format!(
                        "unknown status {other:?} (positive, negative, uncertain, ignore)"
                    )))
                }
                _ => (RuleStatus::Default, body),
            };
            let p = Pattern::parse(pat).map_err(|source| RuleError::Pattern {
                file: MF,
                line,
                source,
            })?;
            m.push((p, MentionRule { obs, status }));
        }
        let mut t = Vec::new();
        for (line, section, body) in rule_lines(triggers) {
            let syntax = |reason: String| RuleError::Syntax {
                file: TF,
                line,
                reason,
            };
            let kind = match section {
                Some("negation pre") => Trigger::NegPre,
                Some("negation post") => Trigger::NegPost,
                Some("uncertain pre") => Trigger::UncPre,
                Some("uncertain post") => Trigger::UncPost,
                Some("uncertain both") => Trigger::UncBoth,
                Some("possible pre") => Trigger::PossPre,
                Some("possible post") => Trigger::PossPost,
                Some("possible both") => Trigger::PossBoth,
                Some("suggest") => Trigger::Suggest,
                Some("hypothetical") => Trigger::Hypothetical,
                Some("pseudo") => Trigger::Pseudo,
                Some("terminator") => Trigger::Terminator,
                other => return Err(syntax(format!("unknown trigger section {other:?}"))),
            };
            let p = Pattern::parse(body).map_err(|source| RuleError::Pattern {
                file: TF,
                line,
                source,
            })?;
            t.push((p, kind));
        }
        Ok(Labeler {
            mentions: PatternSet::new(m),
            triggers: PatternSet::new(t),
            rules,
        })
    }

    /// Number of (mention, trigger) rules.
    pub fn rule_counts(&self) -> (usize, usize) {
        (self.mentions.len(), self.triggers.len())
    }

    /// Label one report text with the default [`LabelOptions`].
    pub fn label(&self, text: &str) -> Labels {
        self.label_with(text, LabelOptions::default())
    }

    /// Label one report text. An empty text has no labels at all (not even No Finding).
    pub fn label_with(&self, text: &str, opts: LabelOptions) -> Labels {
        let lower = text.to_ascii_lowercase();
        let mut toks = Vec::with_capacity(text.len() / 5 + 4);
        tokenize(&lower, &mut toks);
        // clause index per token: sentences, split further at ; and :
        let mut clause = Vec::with_capacity(toks.len());
        let mut c = 0u32;
        for t in &toks {
            clause.push(c);
            if matches!(t.kind, Kind::Break | Kind::Punct(b';') | Kind::Punct(b':')) {
                c += 1;
            }
        }

        // triggers: leftmost-longest, non-overlapping
        let mut trig: Vec<(usize, usize, Trigger)> = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            match self.triggers.longest_at(&toks, &lower, i) {
                Some(m) => {
                    trig.push((m.start, m.end, *self.triggers.get(m.pattern).1));
                    i = m.end;
                }
                None => i += 1,
            }
        }

        // mentions: every match, then drop those inside a longer match of the same observation
        let mut found: Vec<(usize, usize, MentionRule)> = Vec::new();
        for i in 0..toks.len() {
            self.mentions.for_each_at(&toks, &lower, i, |m| {
                found.push((m.start, m.end, *self.mentions.get(m.pattern).1));
            });
        }
        let covered = |k: usize| {
            let (s, e, r) = found[k];
            found.iter().enumerate().any(|(j, &(s2, e2, r2))| {
                j != k
                    && r2.obs == r.obs
                    && s2 <= s
                    && e2 >= e
                    && ((e2 - s2) > (e - s) || (j < k && (s2, e2) == (s, e)))
            })
        };

        let mut labels = Labels {
            status: [None; ALL],
            evidence: Vec::new(),
        };
        // observations raised only as a possibility, under Hedges::Probable
        let mut possible = [false; ALL];
        if toks.iter().all(|t| t.kind != Kind::Word) {
            return labels;
        }
        for (k, &(s, e, rule)) in found.iter().enumerate() {
            if rule.status == RuleStatus::Ignore || covered(k) {
                continue;
            }
            if self.hypothetical(&toks, &clause, &trig, s) {
                continue;
            }
            let (status, weak) = match rule.status {
                RuleStatus::Fixed(Status::Negative) => (Status::Negative, false),
                RuleStatus::Fixed(st) => match self.context(&toks, &clause, &trig, s, e) {
                    Some((Status::Negative, _)) => (Status::Negative, false),
                    _ => (st, false),
                },
                _ => self
                    .context(&toks, &clause, &trig, s, e)
                    .unwrap_or((Status::Positive, false)),
            };
            if weak && opts.hedges == Hedges::Probable {
                possible[rule.obs.slot()] = true;
            } else {
                let slot = &mut labels.status[rule.obs.slot()];
                *slot = Some(slot.map_or(status, |old| old.max(status)));
            }
            labels.evidence.push(Evidence {
                observation: rule.obs,
                status,
                weak,
                start: toks[s].start as usize,
                end: toks[e - 1].end as usize,
            });
        }
        let any_finding = Finding::all().any(|f| {
            f.counts_against_no_finding(opts.no_finding)
                && (possible[f.slot()]
                    || labels.status[f.slot()].is_some_and(Status::is_positive_or_uncertain))
        });
        labels.status[Observation::NoFinding.index()] = if any_finding {
            None
        } else {
            Some(Status::Positive)
        };
        labels.evidence.sort_by_key(|e| (e.start, e.end));
        labels
    }

    /// Whether a `[hypothetical]` trigger ("if there is concern for", "to
    /// exclude") governs a mention at token `s`: one before it in the same
    /// clause, within `PRE_WINDOW` words and with no comma between. The text
    /// then does not claim the finding, and the mention is dropped.
    fn hypothetical(
        &self,
        toks: &[Token],
        clause: &[u32],
        trig: &[(usize, usize, Trigger)],
        s: usize,
    ) -> bool {
        trig.iter()
            .rev()
            .skip_while(|t| t.1 > s)
            .take_while(|t| clause[t.0] == clause[s])
            .filter(|t| t.2 == Trigger::Hypothetical)
            .any(|&(_, te, _)| {
                let between = &toks[te..s];
                between.iter().filter(|t| t.kind == Kind::Word).count() <= PRE_WINDOW
                    && !between.iter().any(|t| t.kind == Kind::Punct(b','))
            })
    }

    /// The status the triggers around mention tokens `s..e` give it, if any,
    /// and whether an uncertain one is only a possibility (a weak hedge).
    fn context(
        &self,
        toks: &[Token],
        clause: &[u32],
        trig: &[(usize, usize, Trigger)],
        s: usize,
        e: usize,
    ) -> Option<(Status, bool)> {
        let words = |a: usize, b: usize| toks[a..b].iter().filter(|t| t.kind == Kind::Word).count();
        let cl = clause[s];
        // nearest trigger before, in the same clause
        let before = trig
            .iter()
            .rev()
            .skip_while(|t| t.1 > s)
            .take_while(|t| clause[t.0] == cl);
        let mut pending_suggest = false;
        // a negation reaches a suggest-trigger it governs, not the mention behind it
        let mut anchor = s;
        for &(ts, te, kind) in before {
            let near = words(te, anchor) <= PRE_WINDOW;
            match kind {
                Trigger::Terminator | Trigger::Pseudo => break,
                Trigger::NegPre if near => return Some((Status::Negative, false)),
                Trigger::UncPre | Trigger::UncBoth if near && !pending_suggest => {
                    return Some((Status::Uncertain, false))
                }
                Trigger::PossPre | Trigger::PossBoth if near && !pending_suggest => {
                    return Some((Status::Uncertain, true))
                }
                Trigger::Suggest if near => {
                    pending_suggest = true;
                    anchor = ts;
                }
                Trigger::NegPost | Trigger::UncPost | Trigger::PossPost => continue,
                _ => break,
            }
        }
        if pending_suggest {
            return Some((Status::Uncertain, false));
        }
        // the nearest trigger after, if in the same clause, and only if it is a post-trigger
        let &(ts, _, kind) = trig
            .iter()
            .find(|t| t.0 >= e)
            .filter(|t| clause[t.0] == clause[e - 1])?;
        let near = words(e, ts) <= POST_WINDOW;
        match kind {
            Trigger::NegPost if near => Some((Status::Negative, false)),
            Trigger::UncPost | Trigger::UncBoth if near => Some((Status::Uncertain, false)),
            Trigger::PossPost | Trigger::PossBoth if near => Some((Status::Uncertain, true)),
            _ => None,
        }
    }
}

/// Character offset of byte offset `b` in `text`.
pub fn char_offset(text: &str, b: usize) -> usize {
    if text.is_ascii() {
        b
    } else {
        text[..b].chars().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Label `text` with the default options and return the named observation's status (or "-").
    fn st(text: &str, obs: &str) -> &'static str {
        st_hedges(text, obs, Hedges::default())
    }

    fn table(family: &str, cases: &[(&str, &str, &str)]) {
        let mut bad = Vec::new();
        for (text, obs, want) in cases {
            let got = st(text, obs);
            if got != *want {
                bad.push(format!("{text:?} {obs}: got {got}, want {want}"));
            }
        }
        assert!(bad.is_empty(), "{family}:\n{}", bad.join("\n"));
    }

    #[test]
    fn rules_compile_and_every_observation_has_rules() {
        let src = MENTIONS;
        for f in Finding::all().skip(1) {
            let o = f.name();
            assert!(src.contains(&format!("[{o}]")), "no rules for {o}");
        }
        let (m, t) = Labeler::builtin().rule_counts();
        assert!(m > 100 && t > 50, "{m} {t}");
    }

    #[test]
    fn bad_rule_files_name_the_line() {
        let e = Labeler::from_rules("[Cardiomegaly]\ncardiomegaly\n(oops\n", "")
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("mentions.txt:3:"), "{e}");
        let e = Labeler::from_rules("[Bogus]\nx\n", "")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown observation"), "{e}");
        let e = Labeler::from_rules("", "[sideways]\nno\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("triggers.txt:2:"), "{e}");
    }

    #[test]
    fn word_boundaries() {
        table(
            "word boundaries",
            &[
                (
                    "Endplate sclerosis in the thoracic spine.",
                    "Atelectasis",
                    "-",
                ),
                (
                    "Plate-like atelectasis at the left base.",
                    "Atelectasis",
                    "positive",
                ),
                ("Massive cardiomegaly.", "Lung Lesion", "-"),
                (
                    "Masslike opacity in the left base.",
                    "Lung Lesion",
                    "positive",
                ),
                (
                    "Mass-like opacity in the left base.",
                    "Lung Lesion",
                    "positive",
                ),
                ("Pericardial effusion.", "Pleural Effusion", "-"),
                ("Small pleural effusion.", "Pleural Effusion", "positive"),
                ("Edematous soft tissues.", "Edema", "-"),
            ],
        );
    }

    #[test]
    fn negation_and_negated_lists() {
        table(
            "negation",
            &[
                ("No pleural effusion.", "Pleural Effusion", "negative"),
                ("No effusion, pneumothorax, or consolidation.", "Consolidation", "negative"),
                ("No effusion, pneumothorax, or consolidation.", "Pneumothorax", "negative"),
                ("Lungs are clear without focal airspace disease or effusion.", "Pleural Effusion", "negative"),
                ("Negative for pneumothorax.", "Pneumothorax", "negative"),
                ("There is no evidence of pneumonia.", "Pneumonia", "negative"),
                ("Pneumothorax is not seen.", "Pneumothorax", "negative"),
                ("The effusion has resolved.", "Pleural Effusion", "negative"),
                ("Heart is not enlarged.", "Cardiomegaly", "negative"),
                ("There is no focal air space opacity to suggest a pneumonia.", "Pneumonia", "negative"),
                ("No pleural line to suggest pneumothorax or blunting to suggest large pleural effusion.", "Pleural Effusion", "negative"),
                (
                    "There is no pleural line to suggest pneumothorax or costophrenic XXXX blunting to suggest large pleural effusion.",
                    "Pleural Effusion",
                    "negative",
                ),
                ("No effusion seen, left hilar nodule.", "Lung Lesion", "positive"),
                ("Fractures may not be demonstrated on this study.", "Fracture", "negative"),
            ],
        );
    }

    #[test]
    fn scope_ends_at_but_however_and_sentence() {
        table(
            "scope",
            &[
                (
                    "No pneumothorax but there is a small effusion.",
                    "Pleural Effusion",
                    "positive",
                ),
                (
                    "No pneumothorax; however, a small effusion is present.",
                    "Pleural Effusion",
                    "positive",
                ),
                (
                    "No pneumothorax. Small left effusion.",
                    "Pleural Effusion",
                    "positive",
                ),
                (
                    "No edema, although mild cardiomegaly is noted.",
                    "Cardiomegaly",
                    "positive",
                ),
                (
                    "Lungs clear except for left basilar atelectasis.",
                    "Atelectasis",
                    "positive",
                ),
                (
                    "No pneumothorax, there is a small left effusion.",
                    "Pleural Effusion",
                    "positive",
                ),
            ],
        );
    }

    /// Label `text` under `hedges` and return the named observation's status (or "-").
    fn st_hedges(text: &str, obs: &str, hedges: Hedges) -> &'static str {
        let opts = LabelOptions {
            hedges,
            ..LabelOptions::default()
        };
        let f = Finding::parse(obs).unwrap_or_else(|| panic!("no finding named {obs:?}"));
        match Labeler::builtin().label_with(text, opts).finding(f) {
            Some(s) => s.as_str(),
            None => "-",
        }
    }

    #[test]
    fn hedges_are_uncertain() {
        // (text, observation, label under the default Hedges::Probable, label under Hedges::All)
        let cases: &[(&str, &str, &str, &str)] = &[
            // hedges that make the finding probable: uncertain either way
            (
                "Likely small bilateral effusions.",
                "Pleural Effusion",
                "uncertain",
                "uncertain",
            ),
            (
                "Probable right lower lobe pneumonia.",
                "Pneumonia",
                "uncertain",
                "uncertain",
            ),
            (
                "Basilar opacity, probably atelectasis.",
                "Atelectasis",
                "uncertain",
                "uncertain",
            ),
            (
                "Findings concerning for pneumonia.",
                "Pneumonia",
                "uncertain",
                "uncertain",
            ),
            (
                "Airspace disease suspicious for pneumonia.",
                "Pneumonia",
                "uncertain",
                "uncertain",
            ),
            (
                "Opacity, favored to represent atelectasis.",
                "Atelectasis",
                "uncertain",
                "uncertain",
            ),
            (
                "Atelectasis versus pneumonia.",
                "Atelectasis",
                "uncertain",
                "uncertain",
            ),
            (
                "Atelectasis versus pneumonia.",
                "Pneumonia",
                "uncertain",
                "uncertain",
            ),
            (
                "Pneumothorax is suspected.",
                "Pneumothorax",
                "uncertain",
                "uncertain",
            ),
            (
                "Borderline cardiomegaly.",
                "Cardiomegaly",
                "uncertain",
                "uncertain",
            ),
            // raised only as a possibility: no label by default, uncertain as CheXpert does
            (
                "Possible early consolidation.",
                "Consolidation",
                "-",
                "uncertain",
            ),
            (
                "Opacity may represent atelectasis.",
                "Atelectasis",
                "-",
                "uncertain",
            ),
            (
                "Opacity could reflect atelectasis or infection.",
                "Atelectasis",
                "-",
                "uncertain",
            ),
            ("Cannot exclude pneumonia.", "Pneumonia", "-", "uncertain"),
            (
                "Pneumonia cannot be excluded.",
                "Pneumonia",
                "-",
                "uncertain",
            ),
            ("Pneumonia is not excluded.", "Pneumonia", "-", "uncertain"),
            (
                "Question small right pleural effusion.",
                "Pleural Effusion",
                "-",
                "uncertain",
            ),
            ("Differential includes edema.", "Edema", "-", "uncertain"),
            (
                "Correlate clinically for pneumonia.",
                "Pneumonia",
                "-",
                "uncertain",
            ),
            // judged improbable: the lowest grade
            ("Pneumonia is unlikely.", "Pneumonia", "-", "uncertain"),
            (
                "Opacity, unlikely to represent pneumonia.",
                "Pneumonia",
                "-",
                "uncertain",
            ),
            ("Pneumonia not likely.", "Pneumonia", "-", "uncertain"),
            ("Doubt pneumothorax.", "Pneumothorax", "-", "uncertain"),
            (
                "Most likely atelectasis, less likely pneumonia.",
                "Pneumonia",
                "-",
                "uncertain",
            ),
            (
                "Most likely atelectasis, less likely pneumonia.",
                "Atelectasis",
                "uncertain",
                "uncertain",
            ),
            // the finding the hedge explains is asserted either way
            (
                "Opacity may represent atelectasis.",
                "Lung Opacity",
                "positive",
                "positive",
            ),
            // a weak mention does not outvote a claim elsewhere in the report
            (
                "Small left effusion. Possible right effusion.",
                "Pleural Effusion",
                "positive",
                "positive",
            ),
            (
                "No effusion on the left. Possible right effusion.",
                "Pleural Effusion",
                "negative",
                "uncertain",
            ),
            // hypotheticals do not claim the finding at all
            (
                "If there is concern for rib fracture, consider a rib series.",
                "Fracture",
                "-",
                "-",
            ),
            (
                "CT can be performed to identify a small nodule.",
                "Lung Lesion",
                "-",
                "-",
            ),
            (
                "Bony overlap could obscure a small pulmonary nodule.",
                "Lung Lesion",
                "-",
                "-",
            ),
            (
                "Heart size is at the upper limits of normal.",
                "Cardiomegaly",
                "negative",
                "negative",
            ),
        ];
        let mut bad = Vec::new();
        for &(text, obs, probable, all) in cases {
            for (h, want) in [(Hedges::Probable, probable), (Hedges::All, all)] {
                let got = st_hedges(text, obs, h);
                if got != want {
                    bad.push(format!("{text:?} {obs} {h:?}: got {got}, want {want}"));
                }
            }
        }
        assert!(bad.is_empty(), "hedges:\n{}", bad.join("\n"));
        // the weak mention stays in the evidence, marked
        let l = Labeler::builtin().label("Opacity may represent atelectasis.");
        let ev: Vec<(&str, Status, bool)> = l
            .evidence
            .iter()
            .map(|e| (e.observation.name(), e.status, e.weak))
            .collect();
        assert_eq!(
            ev,
            [
                ("Lung Opacity", Status::Positive, false),
                ("Atelectasis", Status::Uncertain, true)
            ]
        );
        assert_eq!(Hedges::from_name("all"), Some(Hedges::All));
        assert_eq!(
            Hedges::from_name(Hedges::Probable.as_str()),
            Some(Hedges::Probable)
        );
        assert_eq!(Hedges::from_name("some"), None);
    }

    #[test]
    fn resolution_and_stability() {
        table(
            "resolved / no new / stable",
            &[
                (
                    "Resolved left lower lobe pneumonia.",
                    "Pneumonia",
                    "negative",
                ),
                (
                    "Interval resolution of the right effusion.",
                    "Pleural Effusion",
                    "negative",
                ),
                (
                    "Resolving right lower lobe pneumonia.",
                    "Pneumonia",
                    "positive",
                ),
                (
                    "Almost completely resolved right apical pneumothorax.",
                    "Pneumothorax",
                    "positive",
                ),
                ("No new consolidation.", "Consolidation", "negative"),
                ("Stable cardiomegaly.", "Cardiomegaly", "positive"),
                (
                    "The heart is moderately enlarged unchanged from prior.",
                    "Cardiomegaly",
                    "positive",
                ),
                ("Heart size stable.", "Cardiomegaly", "-"),
                (
                    "Unchanged small left effusion.",
                    "Pleural Effusion",
                    "positive",
                ),
                (
                    "No change in the left basilar atelectasis.",
                    "Atelectasis",
                    "positive",
                ),
                (
                    "No significant change in mild cardiomegaly.",
                    "Cardiomegaly",
                    "positive",
                ),
            ],
        );
    }

    #[test]
    fn deidentification_placeholders() {
        table(
            "XXXX",
            &[
                ("No XXXX pleural effusion.", "Pleural Effusion", "negative"),
                (
                    "Right chest XXXX with tip in the mid SVC.",
                    "Support Devices",
                    "positive",
                ),
                (
                    "Cardiac XXXX generator with leads in the right ventricle.",
                    "Support Devices",
                    "positive",
                ),
                ("Left base XXXX atelectasis.", "Atelectasis", "positive"),
            ],
        );
    }

    #[test]
    fn laterality_and_severity_words_do_not_hide_mentions() {
        table(
            "laterality",
            &[
                (
                    "Small left-sided pleural effusion.",
                    "Pleural Effusion",
                    "positive",
                ),
                (
                    "Bilateral lower lobe airspace opacities.",
                    "Lung Opacity",
                    "positive",
                ),
                (
                    "Moderate right apical pneumothorax.",
                    "Pneumothorax",
                    "positive",
                ),
                (
                    "Mildly enlarged cardiac silhouette.",
                    "Cardiomegaly",
                    "positive",
                ),
                (
                    "The heart is moderately enlarged.",
                    "Cardiomegaly",
                    "positive",
                ),
            ],
        );
    }

    #[test]
    fn devices() {
        table(
            "devices",
            &[
                (
                    "Right IJ central venous catheter tip in the SVC.",
                    "Support Devices",
                    "positive",
                ),
                (
                    "Endotracheal tube 4 cm above the carina.",
                    "Support Devices",
                    "positive",
                ),
                (
                    "Left chest wall pacemaker with leads in the right atrium and ventricle.",
                    "Support Devices",
                    "positive",
                ),
                (
                    "Nasogastric tube in the stomach.",
                    "Support Devices",
                    "positive",
                ),
                ("Coronary artery stents.", "Support Devices", "positive"),
                (
                    "Interval removal of the right PICC.",
                    "Support Devices",
                    "negative",
                ),
                ("Median sternotomy wires.", "Support Devices", "-"),
                (
                    "Surgical clips in the right upper quadrant.",
                    "Support Devices",
                    "-",
                ),
                ("Median sternotomy wires.", "Surgical Change", "positive"),
                ("Bilateral breast implants.", "Support Devices", "-"),
            ],
        );
    }

    #[test]
    fn fractures_old_and_new() {
        table(
            "fractures",
            &[
                ("Old healed left rib fractures.", "Fracture", "positive"),
                (
                    "Healing fracture of the right clavicle.",
                    "Fracture",
                    "positive",
                ),
                ("No acute displaced rib fracture.", "Fracture", "negative"),
                ("Acute right 6th rib fracture.", "Fracture", "positive"),
                ("Fracture of the central venous catheter.", "Fracture", "-"),
            ],
        );
    }

    #[test]
    fn no_finding_rule() {
        let l = Labeler::builtin();
        let normal = "Heart size normal. Lungs clear. No effusion or pneumothorax.";
        assert_eq!(
            l.label(normal).get(Observation::NoFinding),
            Some(Status::Positive)
        );
        // support devices do not count
        let dev = "Right PICC tip in the SVC. Lungs clear.";
        assert_eq!(
            l.label(dev).get(Observation::NoFinding),
            Some(Status::Positive)
        );
        // an uncertain finding does, and so does one raised only as a possibility
        assert_eq!(
            l.label("Likely small effusion.")
                .get(Observation::NoFinding),
            None
        );
        assert_eq!(
            l.label("Possible small effusion.")
                .get(Observation::NoFinding),
            None
        );
        // a finding outside the 14 counts under the default rule, not under CheXpert's
        let gran = "Lungs clear. Calcified granuloma in the right upper lobe.";
        assert_eq!(l.label(gran).get(Observation::NoFinding), None);
        assert_eq!(
            l.label(gran)
                .finding(Finding::parse("Calcified Granuloma").unwrap()),
            Some(Status::Positive)
        );
        assert_eq!(
            l.label_with(
                gran,
                LabelOptions {
                    no_finding: NoFindingRule::Chexpert,
                    ..LabelOptions::default()
                }
            )
            .get(Observation::NoFinding),
            Some(Status::Positive)
        );
        // an empty text has no labels at all
        assert!(l.label("  \n ").iter().next().is_none());
    }

    #[test]
    fn aggregation_and_evidence() {
        let text = "No pneumothorax. Small left effusion. No right effusion.";
        let l = Labeler::builtin().label(text);
        assert_eq!(
            l.get(Observation::PleuralEffusion),
            Some(Status::Positive),
            "positive wins over negative"
        );
        let ev: Vec<_> = l
            .evidence
            .iter()
            .map(|e| (e.observation.name(), e.status, &text[e.start..e.end]))
            .collect();
        assert_eq!(
            ev,
            [
                ("Pneumothorax", Status::Negative, "pneumothorax"),
                ("Pleural Effusion", Status::Positive, "effusion"),
                ("Pleural Effusion", Status::Negative, "effusion"),
            ]
        );
        assert_eq!(char_offset("é effusion", 3), 2);
    }
}
