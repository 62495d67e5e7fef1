//! Zero-shot classification from text prompts: versioned prompt sets and
//! CheXzero's paired-softmax scoring rule.
//!
//! For each observation and side (positive, negative), the class embedding is
//! the L2-normalised mean, over every (template, phrase) pair, of the
//! L2-normalised text embedding of `template` with `{}` replaced by the
//! phrase. With image embedding `x` (normalised), `s_pos = x . c_pos`,
//! `s_neg = x . c_neg` and
//! `p = exp(s_pos / t) / (exp(s_pos / t) + exp(s_neg / t))`,
//! with temperature `t = 1` (CheXzero) or the model's own `1 / exp(logit_scale)`.
//! An ensemble averages `p` over models.

use std::collections::BTreeMap;

use radfm_core::observation::Observation;
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// One observation's phrases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sides {
    pub positive: Vec<String>,
    pub negative: Vec<String>,
}

/// A prompt set: `{"name", "version", "templates", "observations"}`, with
/// optional `"source"` and `"notes"` for provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptSet {
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<serde_json::Value>,
    pub templates: Vec<String>,
    pub observations: BTreeMap<String, Sides>,
}

/// The prompt sets radfm ships (`prompts/`), by name.
pub const SHIPPED: [(&str, &str); 2] = [
    ("chexzero", include_str!("../../../prompts/chexzero.json")),
    ("elixr", include_str!("../../../prompts/elixr.json")),
];

/// The set used when none is given.
pub const DEFAULT: &str = "chexzero";

impl PromptSet {
    /// Parse and check a prompt file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<PromptSet, ModelError> {
        let bad = |why: String| ModelError::Config(format!("{origin}: {why}"));
        let set: PromptSet =
            serde_json::from_str(text).map_err(|e| bad(format!("not a prompt set: {e}")))?;
        if set.name.trim().is_empty() || set.version.trim().is_empty() {
            return Err(bad("\"name\" and \"version\" must not be empty".into()));
        }
        if set.templates.is_empty() {
            return Err(bad("\"templates\" is empty".into()));
        }
        for t in &set.templates {
            if t.matches("{}").count() != 1 || t.replace("{}", "").contains(['{', '}']) {
                return Err(bad(format!(
                    "template {t:?} must contain the placeholder {{}} exactly once, and no other braces"
                )));
            }
        }
        if set.observations.is_empty() {
            return Err(bad("\"observations\" is empty".into()));
        }
        for (name, sides) in &set.observations {
            name.parse::<Observation>()
                .map_err(|e| bad(format!("observation {name:?}: {e}")))?;
            for (side, phrases) in [("positive", &sides.positive), ("negative", &sides.negative)] {
                if phrases.is_empty() || phrases.iter().any(|p| p.trim().is_empty()) {
                    return Err(bad(format!(
                        "observation {name:?}: the {side} phrases must be a non-empty list of non-empty texts"
                    )));
                }
            }
        }
        Ok(set)
    }

    /// A shipped set by name.
    pub fn shipped(name: &str) -> Option<PromptSet> {
        SHIPPED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| PromptSet::parse(text, &format!("prompts/{n}.json")).expect("shipped"))
    }

    /// Every prompt of one side of one observation: each template filled with
    /// each phrase, templates outermost.
    pub fn prompts(&self, observation: &str, positive: bool) -> Vec<String> {
        let s = &self.observations[observation];
        let phrases = if positive { &s.positive } else { &s.negative };
        self.templates
            .iter()
            .flat_map(|t| phrases.iter().map(move |p| t.replacen("{}", p, 1)))
            .collect()
    }
}

fn normalized(v: &[f64]) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    v.iter().map(|x| x / n).collect()
}

/// The class embedding of a set of prompt embeddings: each normalised, then
/// their mean normalised.
pub fn class_embedding(prompts: &[Vec<f32>]) -> Vec<f64> {
    let d = prompts.first().map_or(0, Vec::len);
    let mut mean = vec![0f64; d];
    for p in prompts {
        let p: Vec<f64> = p.iter().map(|&x| x as f64).collect();
        for (m, x) in mean.iter_mut().zip(normalized(&p)) {
            *m += x / prompts.len() as f64;
        }
    }
    normalized(&mean)
}

/// The paired softmax `p(positive)` of one image against one observation's
/// two class embeddings at temperature `tau`.
pub fn paired_softmax(image: &[f32], pos: &[f64], neg: &[f64], tau: f64) -> f64 {
    let img: Vec<f64> = normalized(&image.iter().map(|&x| x as f64).collect::<Vec<_>>());
    let dot = |c: &[f64]| img.iter().zip(c).map(|(a, b)| a * b).sum::<f64>();
    let (sp, sn) = (dot(pos) / tau, dot(neg) / tau);
    // exp(sp) / (exp(sp) + exp(sn)) = 1 / (1 + exp(sn - sp))
    1.0 / (1.0 + (sn - sp).exp())
}

/// One model's class embeddings for a prompt set.
pub struct Classes {
    /// observation names, in the set's order
    pub names: Vec<String>,
    pub pos: Vec<Vec<f64>>,
    pub neg: Vec<Vec<f64>>,
}

impl Classes {
    /// From the embeddings of [`Classes::texts`], in that order.
    pub fn from_embeddings(set: &PromptSet, embeddings: &[Vec<f32>]) -> Classes {
        let mut at = 0;
        let mut take = |n: usize| {
            let e = class_embedding(&embeddings[at..at + n]);
            at += n;
            e
        };
        let mut c = Classes {
            names: Vec::new(),
            pos: Vec::new(),
            neg: Vec::new(),
        };
        for name in set.observations.keys() {
            let np = set.prompts(name, true).len();
            let nn = set.prompts(name, false).len();
            c.names.push(name.clone());
            c.pos.push(take(np));
            c.neg.push(take(nn));
        }
        c
    }

    /// Every prompt to embed: per observation, its positive then its negative prompts.
    pub fn texts(set: &PromptSet) -> Vec<String> {
        set.observations
            .keys()
            .flat_map(|name| {
                let mut v = set.prompts(name, true);
                v.extend(set.prompts(name, false));
                v
            })
            .collect()
    }

    /// `p(positive)` per observation for one image.
    pub fn score(&self, image: &[f32], tau: f64) -> Vec<f64> {
        self.pos
            .iter()
            .zip(&self.neg)
            .map(|(p, n)| paired_softmax(image, p, n, tau))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_sets_parse_and_cover_the_fourteen() {
        for (name, _) in SHIPPED {
            let s = PromptSet::shipped(name).unwrap();
            assert_eq!(s.observations.len(), 14, "{name}");
            assert!(s.source.is_some(), "{name} names its source");
            // No Finding's negative side is a finding, not "no no finding"
            let nf = &s.observations["No Finding"];
            for p in &nf.negative {
                assert!(!p.to_lowercase().contains("no finding"), "{name}: {p}");
            }
        }
    }

    #[test]
    fn bad_prompt_files_are_refused_with_the_reason() {
        let ok = r#"{"name":"t","version":"1","templates":["{}"],
            "observations":{"Edema":{"positive":["edema"],"negative":["no edema"]}}}"#;
        PromptSet::parse(ok, "t.json").unwrap();
        let cases = [
            (ok.replace("Edema\":{", "Oedema\":{"), "unknown observation"),
            (ok.replace("[\"{}\"]", "[\"a finding\"]"), "placeholder"),
            (ok.replace("[\"{}\"]", "[\"{} and {}\"]"), "exactly once"),
            (ok.replace("[\"{}\"]", "[]"), "templates"),
            (ok.replace("[\"no edema\"]", "[]"), "negative"),
            ("{".to_string(), "not a prompt set"),
        ];
        for (text, want) in cases {
            let e = PromptSet::parse(&text, "t.json").unwrap_err().to_string();
            assert!(e.contains(want) && e.starts_with("t.json"), "{want}: {e}");
        }
    }

    #[test]
    fn prompts_fill_every_template_with_every_phrase() {
        let s = PromptSet::parse(
            r#"{"name":"t","version":"1","templates":["{}.","a {} is seen"],
            "observations":{"Edema":{"positive":["edema","oedema"],"negative":["clear lungs"]}}}"#,
            "t",
        )
        .unwrap();
        assert_eq!(
            s.prompts("Edema", true),
            ["edema.", "oedema.", "a edema is seen", "a oedema is seen"]
        );
        assert_eq!(Classes::texts(&s).len(), 6);
    }

    #[test]
    fn paired_softmax_follows_the_rule() {
        let pos = class_embedding(&[vec![1.0, 0.0], vec![2.0, 0.0]]);
        let neg = class_embedding(&[vec![0.0, 3.0]]);
        assert_eq!(pos, vec![1.0, 0.0]);
        let img = [3.0f32, 4.0]; // normalised: (0.6, 0.8)
        let p = paired_softmax(&img, &pos, &neg, 1.0);
        let want = 0.6f64.exp() / (0.6f64.exp() + 0.8f64.exp());
        assert!((p - want).abs() < 1e-12);
        // a lower temperature sharpens towards the nearer class
        assert!(paired_softmax(&img, &pos, &neg, 0.01) < 1e-6);
        // the mean of normalised prompts, not of raw ones
        let c = class_embedding(&[vec![10.0, 0.0], vec![0.0, 1.0]]);
        assert!((c[0] - c[1]).abs() < 1e-12);
    }
}
