//! Gold labels for the IU/Open-i collection from its expert MeSH codes, and
//! scoring a labeler against them.
//!
//! The mapping file (`mesh_to_chexpert.json`) lists, per observation, MeSH
//! `<major>` prefixes. A report is gold-positive for an observation when any
//! major term starts with a listed prefix, comparing whole `/`-separated
//! segments case-insensitively; `No Finding` is gold-positive only when the
//! major terms are exactly `["normal"]`. Reports whose majors are only the
//! `_excluded_if_only` terms, or whose FINDINGS and IMPRESSION are empty, are
//! not scored. The primary figure counts `positive` or `uncertain` as
//! positive; macro-F1 averages observations with gold support >= 20.

use crate::input::Report;
use radfm_core::{Observation, ObservationMap};

use crate::labeler::{LabelOptions, Labeler, Labels, Status};
use crate::metrics::Prf;

/// The sections the gold labels describe.
pub const SCORED_SECTIONS: [&str; 2] = ["findings", "impression"];
/// Observations with less gold support are left out of the macro average.
pub const MIN_SUPPORT: u64 = 20;

/// A parsed `mesh_to_chexpert.json`.
#[derive(Debug, Clone)]
pub struct GoldMap {
    /// (observation, prefixes as lowercase segments)
    prefixes: Vec<(Observation, Vec<Vec<String>>)>,
    excluded_if_only: Vec<String>,
}

fn segments(s: &str) -> Vec<String> {
    s.split('/').map(|p| p.trim().to_lowercase()).collect()
}

impl GoldMap {
    pub fn from_json(text: &str) -> Result<GoldMap, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let obj = v.as_object().ok_or("expected a JSON object")?;
        let mut prefixes = Vec::new();
        let mut excluded_if_only = Vec::new();
        for (k, val) in obj {
            let list = || -> Result<Vec<String>, String> {
                val.as_array()
                    .ok_or(format!("{k}: expected a list"))?
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .ok_or(format!("{k}: expected strings"))
                    })
                    .collect()
            };
            if k == "_excluded_if_only" {
                excluded_if_only = list()?.iter().map(|s| s.to_lowercase()).collect();
            } else if k.starts_with('_') || k == Observation::NoFinding.as_str() {
                continue;
            } else {
                let idx: Observation = k.parse().map_err(|e| format!("{e}"))?;
                prefixes.push((idx, list()?.iter().map(|p| segments(p)).collect()));
            }
        }
        Ok(GoldMap {
            prefixes,
            excluded_if_only,
        })
    }

    /// Gold labels from major terms, or None when not scored.
    pub fn gold(&self, majors: &[String]) -> Option<ObservationMap<bool>> {
        if majors.is_empty()
            || majors
                .iter()
                .all(|m| self.excluded_if_only.contains(&m.trim().to_lowercase()))
        {
            return None;
        }
        let mut g = ObservationMap::default();
        let segs: Vec<Vec<String>> = majors.iter().map(|m| segments(m)).collect();
        for (idx, prefs) in &self.prefixes {
            g[*idx] = prefs.iter().any(|p| {
                segs.iter()
                    .any(|m| m.len() >= p.len() && m[..p.len()] == p[..])
            });
        }
        g[Observation::NoFinding] =
            majors.len() == 1 && majors[0].trim().eq_ignore_ascii_case("normal");
        Some(g)
    }
}

/// One report the labeler and the gold disagree on, for error analysis.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Disagreement {
    pub id: String,
    pub observation: Observation,
    pub gold: bool,
    pub predicted: Option<Status>,
    pub mesh_major: Vec<String>,
    pub text: String,
    /// the labeler's mentions of this observation: (status, mention text)
    pub evidence: Vec<(Status, String)>,
}

/// The result of scoring.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GoldScore {
    pub scored: usize,
    pub skipped: usize,
    pub per_observation: Vec<(Observation, Prf)>,
    /// macro-F1 over observations with support >= MIN_SUPPORT
    pub macro_f1: f64,
    /// the same, counting only `positive` as positive (uncertain as negative)
    pub per_observation_strict: Vec<(Observation, Prf)>,
    pub macro_f1_strict: f64,
    pub macro_observations: Vec<Observation>,
    #[serde(skip)]
    pub disagreements: Vec<Disagreement>,
}

fn tally(c: &mut (u64, u64, u64), predicted: bool, gold: bool) {
    match (predicted, gold) {
        (true, true) => c.0 += 1,
        (true, false) => c.1 += 1,
        (false, true) => c.2 += 1,
        (false, false) => {}
    }
}

/// Score `labeler`, labelling with `opts`, on IU reports against `map`.
pub fn score<'a>(
    labeler: &Labeler,
    opts: LabelOptions,
    reports: impl IntoIterator<Item = &'a Report>,
    map: &GoldMap,
) -> GoldScore {
    let mut counts = ObservationMap::<(u64, u64, u64)>::default();
    let mut strict = ObservationMap::<(u64, u64, u64)>::default();
    let (mut scored, mut skipped) = (0, 0);
    let mut disagreements = Vec::new();
    for r in reports {
        let text = r.select(&SCORED_SECTIONS);
        let Some(gold) = map.gold(&r.mesh_major).filter(|_| !text.trim().is_empty()) else {
            skipped += 1;
            continue;
        };
        scored += 1;
        let labels: Labels = labeler.label_with(&text, opts);
        for k in Observation::ALL {
            let p = labels.get(k).is_some_and(Status::is_positive_or_uncertain);
            tally(&mut counts[k], p, gold[k]);
            tally(
                &mut strict[k],
                labels.get(k) == Some(Status::Positive),
                gold[k],
            );
            if p != gold[k] {
                disagreements.push(Disagreement {
                    id: r.id.clone(),
                    observation: k,
                    gold: gold[k],
                    predicted: labels.get(k),
                    mesh_major: r.mesh_major.clone(),
                    text: text.clone(),
                    evidence: labels
                        .evidence
                        .iter()
                        .filter(|e| e.observation.observation() == Some(k))
                        .map(|e| (e.status, text[e.start..e.end].to_string()))
                        .collect(),
                });
            }
        }
    }
    let table = |c: ObservationMap<(u64, u64, u64)>| -> Vec<(Observation, Prf)> {
        c.iter()
            .map(|(o, &(tp, fp, f))| (o, Prf::from_counts(tp, fp, f)))
            .collect()
    };
    let per_observation = table(counts);
    let per_observation_strict = table(strict);
    let macro_of = |t: &[(Observation, Prf)]| {
        let sel: Vec<f64> = t
            .iter()
            .filter(|(_, p)| p.support >= MIN_SUPPORT)
            .map(|(_, p)| p.f1)
            .collect();
        sel.iter().sum::<f64>() / sel.len().max(1) as f64
    };
    GoldScore {
        scored,
        skipped,
        macro_observations: per_observation
            .iter()
            .filter(|(_, p)| p.support >= MIN_SUPPORT)
            .map(|(o, _)| *o)
            .collect(),
        macro_f1: macro_of(&per_observation),
        macro_f1_strict: macro_of(&per_observation_strict),
        per_observation,
        per_observation_strict,
        disagreements,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = r#"{"_about": "x", "_excluded_if_only": ["No Indexing"], "No Finding": ["normal"],
        "Lung Opacity": ["Density/lung", "Opacity"], "Pleural Effusion": ["Pleural Effusion"]}"#;

    #[test]
    fn gold_rule() {
        let m = GoldMap::from_json(MAP).unwrap();
        let g = |v: &[&str]| m.gold(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let op = Observation::LungOpacity;
        assert!(g(&["Density/lung/base/left"]).unwrap()[op]);
        assert!(!g(&["Density/retrocardiac"]).unwrap()[op]);
        assert!(g(&["opacity/lung"]).unwrap()[op]);
        assert!(!g(&["Opacityx"]).unwrap()[op]);
        assert!(g(&["normal"]).unwrap()[Observation::NoFinding]);
        assert!(!g(&["normal", "Pleural Effusion"]).unwrap()[Observation::NoFinding]);
        assert!(g(&["No Indexing"]).is_none());
        assert!(g(&[]).is_none());
        assert!(GoldMap::from_json(r#"{"Bogus": ["x"]}"#).is_err());
    }
}
