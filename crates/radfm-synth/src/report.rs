//! Free-text reports that read like real ones: varied phrasing, laterality and
//! severity words, negations of what is absent, hedges for subtle findings,
//! comparisons with the prior study, and normal templates. A small, seeded
//! share disagrees with the image the way real reports do: a missed subtle
//! finding or an over-call. What the report states is returned separately
//! from the image truth.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::plan::{Finding, Observation, Side};

/// Share of reports that disagree with the image (missed finding or over-call).
pub const DISAGREEMENT_SHARE: f64 = 0.06;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Disagreement {
    /// "missed" or "overcall"
    pub kind: &'static str,
    pub observation: Observation,
}

pub struct Written {
    pub text: String,
    /// what the report states, per observation: "positive", "uncertain" (hedged) or absent
    pub stated: Vec<(Observation, &'static str)>,
    pub disagreement: Option<Disagreement>,
}

fn pick<'a>(rng: &mut ChaCha8Rng, v: &[&'a str]) -> &'a str {
    v.choose(rng).expect("non-empty")
}

fn sev(rng: &mut ChaCha8Rng, s: u8) -> &'static str {
    match s {
        1 => pick(rng, &["mild", "small", "minimal"]),
        2 => pick(rng, &["moderate", "moderate-sized"]),
        _ => pick(rng, &["large", "severe", "marked"]),
    }
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn side_word(s: Side) -> &'static str {
    s.word()
}

/// One sentence stating a finding (positively).
fn sentence(f: &Finding, rng: &mut ChaCha8Rng) -> String {
    let side = side_word(f.laterality);
    let zone = f.location.word();
    match f.obs() {
        Observation::Cardiomegaly => match f.severity {
            1 => pick(rng, &["Mild cardiomegaly.", "The heart is mildly enlarged.", "Mildly enlarged cardiac silhouette."]).into(),
            2 => pick(rng, &["Moderate cardiomegaly.", "The heart is moderately enlarged."]).into(),
            _ => pick(rng, &["Marked cardiomegaly.", "The cardiac silhouette is markedly enlarged."]).into(),
        },
        Observation::EnlargedCardiomediastinum => pick(rng, &["The mediastinum is widened.", "Widening of the superior mediastinum.", "Mediastinal widening."]).into(),
        Observation::LungOpacity => format!(
            "{} opacity in the {side} {zone} lung zone.",
            cap(pick(rng, &["patchy", "hazy", "ill-defined", "faint"]))
        ),
        Observation::Consolidation => format!(
            "{} in the {side} {zone} lung{}.",
            cap(pick(rng, &["consolidation", "airspace consolidation", "focal consolidation"])),
            pick(rng, &[" with air bronchograms", ""])
        ),
        Observation::Pneumonia => {
            if f.kind == "lobar" {
                format!(
                    "{} {side} lower lobe consolidation, consistent with pneumonia.",
                    cap(pick(rng, &["dense", "lobar"]))
                )
            } else {
                format!("Patchy {side} {zone} zone opacities, consistent with pneumonia.")
            }
        }
        Observation::LungLesion => {
            if f.kind == "mass" {
                format!("{:.1} cm mass in the {side} {zone} lung zone.", f.size_mm / 10.0)
            } else {
                format!(
                    "{} mm {} in the {side} {zone} lung zone.",
                    f.size_mm.round(),
                    pick(rng, &["nodule", "pulmonary nodule", "well-circumscribed nodule"])
                )
            }
        }
        Observation::Edema => match f.severity {
            1 => pick(rng, &["Mild interstitial edema.", "Mild pulmonary vascular congestion with interstitial edema."]).into(),
            _ => pick(
                rng,
                &["Perihilar vascular congestion and septal lines, consistent with pulmonary edema.", "Moderate pulmonary edema."],
            )
            .into(),
        },
        Observation::Atelectasis => format!(
            "{} atelectasis at the {side} lung base.",
            cap(pick(rng, &["plate-like", "subsegmental", "linear"]))
        ),
        Observation::Pneumothorax => format!("{} {side} apical pneumothorax.", cap(sev(rng, f.severity))),
        Observation::PleuralEffusion => match f.laterality {
            Side::Bilateral => format!("{} bilateral pleural effusions.", cap(sev(rng, f.severity))),
            _ => {
                if f.severity == 1 && rng.gen_bool(0.4) {
                    format!("Blunting of the {side} costophrenic angle from a small pleural effusion.")
                } else {
                    format!("{} {side} pleural effusion.", cap(sev(rng, f.severity)))
                }
            }
        },
        Observation::PleuralOther => format!("{} pleural thickening along the {side} chest wall.", cap(sev(rng, f.severity))),
        Observation::Fracture => {
            let rib = f.rib.unwrap_or(6);
            let nth = match rib {
                1 => "1st".to_string(),
                2 => "2nd".to_string(),
                3 => "3rd".to_string(),
                r => format!("{r}th"),
            };
            if f.kind == "healed" {
                format!("Healed {side} posterior {nth} rib fracture.")
            } else {
                format!("Acute nondisplaced fracture of the {side} posterior {nth} rib.")
            }
        }
        Observation::SupportDevices => match f.kind {
            "et_tube" => format!("Endotracheal tube with tip {} cm above the carina.", rng.gen_range(3..7)),
            "central_line" => "Right internal jugular central venous catheter with tip in the SVC.".into(),
            "pacemaker" => "Left chest wall pacemaker with leads in the right atrium and right ventricle.".into(),
            _ => "Median sternotomy wires and epicardial pacing wires.".into(),
        },
        _ => String::new(),
    }
}

/// The hedged form of a finding's sentence.
fn hedged(f: &Finding, rng: &mut ChaCha8Rng) -> String {
    let side = side_word(f.laterality);
    match f.obs() {
        Observation::PleuralEffusion => format!("Possible small {side} pleural effusion."),
        Observation::Atelectasis => format!("Possible {side} basilar atelectasis."),
        Observation::Pneumonia => format!("Cannot exclude early {side} basilar pneumonia."),
        Observation::Consolidation => {
            format!("Possible early consolidation in the {side} lung base.")
        }
        Observation::Pneumothorax => format!("Questionable small {side} apical pneumothorax."),
        Observation::Cardiomegaly => "Borderline cardiomegaly.".into(),
        Observation::Edema => "Possible mild interstitial edema.".into(),
        _ => sentence(f, rng),
    }
}

/// Negations of absent observations, in the forms reports use.
fn negations(absent: &[Observation], rng: &mut ChaCha8Rng) -> Vec<String> {
    let has = |o: Observation| absent.contains(&o);
    let mut out = Vec::new();
    if has(Observation::Cardiomegaly) {
        out.push(
            pick(
                rng,
                &[
                    "The heart size is normal.",
                    "Heart size is within normal limits.",
                    "Normal cardiac silhouette.",
                ],
            )
            .to_string(),
        );
    }
    if has(Observation::EnlargedCardiomediastinum) && rng.gen_bool(0.5) {
        out.push("The mediastinal contours are normal.".into());
    }
    let lung: Vec<&str> = [
        (Observation::Consolidation, "focal consolidation"),
        (Observation::Edema, "pulmonary edema"),
        (Observation::Pneumonia, "pneumonia"),
    ]
    .iter()
    .filter(|(o, _)| has(*o) && rng.gen_bool(0.7))
    .map(|(_, w)| *w)
    .collect();
    if !lung.is_empty() {
        out.push(list_negation(&lung, rng));
    }
    let pl: Vec<&str> = [
        (Observation::PleuralEffusion, "pleural effusion"),
        (Observation::Pneumothorax, "pneumothorax"),
    ]
    .iter()
    .filter(|(o, _)| has(*o))
    .map(|(_, w)| *w)
    .collect();
    if !pl.is_empty() {
        out.push(list_negation(&pl, rng));
    }
    if has(Observation::Fracture) && rng.gen_bool(0.4) {
        out.push(
            pick(
                rng,
                &[
                    "No acute osseous abnormality.",
                    "No displaced rib fracture.",
                ],
            )
            .into(),
        );
    }
    if has(Observation::LungLesion) && rng.gen_bool(0.2) {
        out.push("No suspicious pulmonary nodules.".into());
    }
    out
}

fn list_negation(items: &[&str], rng: &mut ChaCha8Rng) -> String {
    let list = match items.len() {
        1 => items[0].to_string(),
        2 => format!("{} or {}", items[0], items[1]),
        _ => format!(
            "{}, or {}",
            items[..items.len() - 1].join(", "),
            items[items.len() - 1]
        ),
    };
    match rng.gen_range(0..3) {
        0 => format!("No {list}."),
        1 => format!("There is no {list}."),
        _ => format!("No evidence of {list}."),
    }
}

/// Write the report of one study.
#[allow(clippy::too_many_arguments)]
pub fn write(
    findings: &[Finding],
    prior: Option<(&[Finding], &str)>,
    indication: &str,
    view_text: &str,
    phi_sentence: Option<&str>,
    rng: &mut ChaCha8Rng,
) -> Written {
    let mut stated: Vec<(Observation, &'static str)> = Vec::new();
    let mut disagreement = None;
    let mut shown: Vec<&Finding> = findings.iter().collect();
    let mut overcall: Option<Finding> = None;
    if rng.gen_bool(DISAGREEMENT_SHARE) {
        let subtle: Vec<usize> = shown
            .iter()
            .enumerate()
            .filter(|(_, f)| f.severity == 1 && f.obs() != Observation::SupportDevices)
            .map(|(i, _)| i)
            .collect();
        if !subtle.is_empty() && rng.gen_bool(0.6) {
            let f = shown.remove(subtle[rng.gen_range(0..subtle.len())]);
            disagreement = Some(Disagreement {
                kind: "missed",
                observation: f.observation,
            });
        } else {
            let candidates = [
                Observation::PleuralEffusion,
                Observation::Atelectasis,
                Observation::Cardiomegaly,
                Observation::LungOpacity,
            ];
            let o = candidates[rng.gen_range(0..candidates.len())];
            if !findings.iter().any(|f| f.obs() == o) {
                let mut f = Finding {
                    observation: o,
                    kind: "",
                    laterality: if rng.gen_bool(0.5) {
                        Side::Right
                    } else {
                        Side::Left
                    },
                    location: crate::plan::Zone::Lower,
                    severity: 1,
                    size_mm: 0.0,
                    ctr: Some(0.53),
                    rib: None,
                };
                if o == Observation::Cardiomegaly {
                    f.laterality = Side::Bilateral;
                }
                overcall = Some(f);
                disagreement = Some(Disagreement {
                    kind: "overcall",
                    observation: o,
                });
            }
        }
    }
    let mut sentences = Vec::new();
    let prior_obs: Vec<Observation> = prior
        .map(|(p, _)| p.iter().map(Finding::obs).collect())
        .unwrap_or_default();
    for f in shown.iter().copied().chain(overcall.as_ref()) {
        let o = f.obs();
        let hedge = f.severity == 1
            && o != Observation::SupportDevices
            && o != Observation::Fracture
            && rng.gen_bool(0.15);
        let mut s = if hedge {
            hedged(f, rng)
        } else {
            sentence(f, rng)
        };
        if prior.is_some() && prior_obs.contains(&o) && rng.gen_bool(0.7) {
            s = format!(
                "{} {}",
                s.trim_end_matches('.'),
                pick(
                    rng,
                    &[
                        "unchanged from prior.",
                        "stable compared with the prior study.",
                        ", similar to prior."
                    ]
                )
            )
            .replace(" ,", ",");
        } else if prior.is_some() && !prior_obs.contains(&o) && rng.gen_bool(0.5) {
            s = format!("New {}", lower_first(&s));
        }
        let status = if hedge { "uncertain" } else { "positive" };
        let also = if hedge {
            vec![]
        } else {
            crate::plan::implied(f)
        };
        for name in std::iter::once(f.observation).chain(also) {
            if let Some(e) = stated.iter_mut().find(|e| e.0 == name) {
                if status == "positive" {
                    e.1 = "positive";
                }
            } else {
                stated.push((name, status));
            }
        }
        sentences.push(s);
    }
    // resolved findings
    if let Some((p, _)) = prior {
        for f in p {
            if !findings.iter().any(|g| g.obs() == f.obs())
                && f.obs() != Observation::SupportDevices
                && f.obs() != Observation::Fracture
                && rng.gen_bool(0.5)
            {
                let name = match f.obs() {
                    Observation::PleuralEffusion => "pleural effusion",
                    Observation::Pneumothorax => "pneumothorax",
                    Observation::Pneumonia => "pneumonia",
                    Observation::Consolidation => "consolidation",
                    Observation::Atelectasis => "atelectasis",
                    Observation::Edema => "pulmonary edema",
                    _ => continue,
                };
                sentences.push(format!(
                    "Interval resolution of the {} {name}.",
                    side_word(f.laterality)
                ));
            }
        }
    }
    let absent: Vec<Observation> = Observation::ALL[1..]
        .iter()
        .copied()
        .filter(|o| {
            !shown
                .iter()
                .chain(overcall.iter().collect::<Vec<_>>().iter())
                .any(|f| f.obs() == *o)
        })
        .filter(|o| !findings.iter().any(|f| f.obs() == *o))
        .collect();
    let mut findings_text: Vec<String> = sentences.clone();
    findings_text.extend(negations(&absent, rng));
    if shown.is_empty() && overcall.is_none() && rng.gen_bool(0.5) {
        findings_text.push(
            pick(
                rng,
                &["The lungs are clear.", "Lungs are clear bilaterally."],
            )
            .into(),
        );
    }
    if let Some(p) = phi_sentence {
        findings_text.push(p.to_string());
    }
    let impression = if sentences.is_empty() {
        pick(
            rng,
            &[
                "No acute cardiopulmonary abnormality.",
                "No acute cardiopulmonary process.",
                "Normal chest radiograph.",
            ],
        )
        .to_string()
    } else {
        sentences
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut text = String::new();
    if rng.gen_bool(0.8) {
        text.push_str(&format!("INDICATION: {indication}\n"));
    }
    text.push_str(&format!("TECHNIQUE: {view_text}\n"));
    if let Some((_, date)) = prior {
        text.push_str(&format!("COMPARISON: {date}.\n"));
    }
    text.push_str(&format!("FINDINGS: {}\n", findings_text.join(" ")));
    text.push_str(&format!("IMPRESSION: {impression}"));
    Written {
        text,
        stated,
        disagreement,
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
