//! What to generate: patients, their studies (follow-ups), the images of each
//! study, and the findings present, sampled from built-in prevalences or from
//! the NIH ChestX-ray14 cohort table.

use std::io::Read;
use std::path::Path;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub use radfm_core::{Observation, ObservationMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Right,
    Left,
    Bilateral,
}

impl Side {
    pub fn word(self) -> &'static str {
        match self {
            Side::Right => "right",
            Side::Left => "left",
            Side::Bilateral => "bilateral",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Zone {
    Upper,
    Middle,
    Lower,
}

impl Zone {
    pub fn word(self) -> &'static str {
        match self {
            Zone::Upper => "upper",
            Zone::Middle => "mid",
            Zone::Lower => "lower",
        }
    }
}

/// One finding drawn into the images of a study.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    pub observation: Observation,
    /// variant: "lobar", "patchy", "nodule", "mass", "et_tube", "central_line", "pacemaker",
    /// "sternotomy_wires", "plate_like", "perihilar", ... ("" when there is only one)
    pub kind: &'static str,
    pub laterality: Side,
    pub location: Zone,
    /// 1 mild/small, 2 moderate, 3 severe/large
    pub severity: u8,
    /// lesion diameter, pneumothorax rim, effusion height... in mm (0 when not applicable)
    pub size_mm: f32,
    /// for cardiomegaly: the cardiothoracic ratio drawn
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctr: Option<f32>,
    /// for rib fractures: which rib (1-10)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rib: Option<u8>,
}

impl Finding {
    fn new(o: Observation, kind: &'static str, rng: &mut ChaCha8Rng) -> Finding {
        let laterality = match rng.gen_range(0..10) {
            0..=4 => Side::Right,
            5..=8 => Side::Left,
            _ => Side::Bilateral,
        };
        let location = match rng.gen_range(0..10) {
            0..=2 => Zone::Upper,
            3..=4 => Zone::Middle,
            _ => Zone::Lower,
        };
        let severity = match rng.gen_range(0..10) {
            0..=4 => 1,
            5..=7 => 2,
            _ => 3,
        };
        Finding {
            observation: o,
            kind,
            laterality,
            location,
            severity,
            size_mm: 0.0,
            ctr: None,
            rib: None,
        }
    }

    pub fn obs(&self) -> Observation {
        self.observation
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum View {
    PA,
    AP,
    #[serde(rename = "LL")]
    Lateral,
}

impl View {
    pub fn code(self) -> &'static str {
        match self {
            View::PA => "PA",
            View::AP => "AP",
            View::Lateral => "LL",
        }
    }
}

/// How an image carries burned-in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BurnedIn {
    None,
    /// text in the pixels, BurnedInAnnotation YES
    Marked,
    /// text in the pixels, BurnedInAnnotation NO (the header is wrong)
    Unmarked,
}

#[derive(Debug, Clone)]
pub struct ImagePlan {
    pub view: View,
    pub burned_in: BurnedIn,
}

#[derive(Debug, Clone)]
pub struct StudyPlan {
    /// days after the patient's first study
    pub day: u32,
    pub age: u32,
    pub findings: Vec<Finding>,
    pub images: Vec<ImagePlan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Sex {
    F,
    M,
}

#[derive(Debug, Clone)]
pub struct PatientPlan {
    pub index: usize,
    pub sex: Sex,
    pub site: usize,
    pub studies: Vec<StudyPlan>,
}

/// Label combinations, age, sex and view of real studies, from the NIH table.
#[derive(Debug, Clone)]
pub struct Cohort {
    /// per patient: (age, sex, view, observation indices) per study, in follow-up order
    patients: Vec<Vec<(u32, Sex, View, Vec<Observation>)>>,
}

/// NIH ChestX-ray14 labels mapped to CheXpert observations (None: outside the 14).
fn nih_label(l: &str) -> Option<Observation> {
    Some(match l {
        "Atelectasis" => Observation::Atelectasis,
        "Cardiomegaly" => Observation::Cardiomegaly,
        "Consolidation" => Observation::Consolidation,
        "Edema" => Observation::Edema,
        "Effusion" => Observation::PleuralEffusion,
        "Infiltration" => Observation::LungOpacity,
        "Mass" | "Nodule" => Observation::LungLesion,
        "Pleural_Thickening" => Observation::PleuralOther,
        "Pneumonia" => Observation::Pneumonia,
        "Pneumothorax" => Observation::Pneumothorax,
        _ => return None,
    })
}

impl Cohort {
    /// Read `Data_Entry_2017*.csv[.gz]`.
    pub fn load(path: &Path) -> Result<Cohort, String> {
        let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
            Box::new(flate2::read::GzDecoder::new(f))
        } else {
            Box::new(f)
        };
        let mut rdr = csv::Reader::from_reader(reader);
        let h = rdr
            .headers()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .clone();
        let col = |n: &str| {
            h.iter()
                .position(|c| c.trim() == n)
                .ok_or(format!("{}: no column {n:?}", path.display()))
        };
        let (c_lab, c_fu, c_pid, c_age, c_sex, c_view) = (
            col("Finding Labels")?,
            col("Follow-up #")?,
            col("Patient ID")?,
            col("Patient Age")?,
            col("Patient Gender")?,
            col("View Position")?,
        );
        let mut by_patient: std::collections::BTreeMap<
            u64,
            Vec<(u32, (u32, Sex, View, Vec<Observation>))>,
        > = Default::default();
        for rec in rdr.records() {
            let r = rec.map_err(|e| format!("{}: {e}", path.display()))?;
            let pid: u64 = r
                .get(c_pid)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let fu: u32 = r.get(c_fu).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            let age: u32 = r
                .get(c_age)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(50)
                .clamp(18, 95);
            let sex = if r.get(c_sex) == Some("F") {
                Sex::F
            } else {
                Sex::M
            };
            let view = if r.get(c_view) == Some("AP") {
                View::AP
            } else {
                View::PA
            };
            let mut labels: Vec<Observation> = r
                .get(c_lab)
                .unwrap_or("")
                .split('|')
                .filter_map(nih_label)
                .collect();
            labels.sort_unstable();
            labels.dedup();
            by_patient
                .entry(pid)
                .or_default()
                .push((fu, (age, sex, view, labels)));
        }
        if by_patient.is_empty() {
            return Err(format!("{}: no rows", path.display()));
        }
        let patients = by_patient
            .into_values()
            .map(|mut v| {
                v.sort_by_key(|x| x.0);
                v.into_iter().map(|x| x.1).collect()
            })
            .collect();
        Ok(Cohort { patients })
    }

    pub fn len(&self) -> usize {
        self.patients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patients.is_empty()
    }
}

/// Built-in per-study prevalence of each observation (before co-occurrence rules).
const PREVALENCE: [(Observation, f64); 12] = [
    (Observation::Cardiomegaly, 0.16),
    (Observation::EnlargedCardiomediastinum, 0.04),
    (Observation::LungOpacity, 0.10),
    (Observation::LungLesion, 0.07),
    (Observation::Edema, 0.07),
    (Observation::Consolidation, 0.05),
    (Observation::Pneumonia, 0.05),
    (Observation::Atelectasis, 0.11),
    (Observation::Pneumothorax, 0.05),
    (Observation::PleuralEffusion, 0.14),
    (Observation::PleuralOther, 0.04),
    (Observation::Fracture, 0.05),
];

/// Observations outside the NIH table, sampled from built-in prevalences even with a cohort.
const DEVICE_PREVALENCE: f64 = 0.14;

/// The findings NIH ChestX-ray14 has no label for: with a cohort they are drawn
/// at their built-in rates (as Support Devices is), so that a cohort archive
/// still has positives for all 14 observations.
const NOT_IN_NIH: &[Observation] = &[
    Observation::EnlargedCardiomediastinum,
    Observation::Fracture,
];

fn builtin_prevalence(o: Observation) -> f64 {
    PREVALENCE
        .iter()
        .find(|(p, _)| *p == o)
        .map_or(0.0, |(_, r)| *r)
}

fn sample_labels(rng: &mut ChaCha8Rng) -> Vec<Observation> {
    let mut v = Vec::new();
    if rng.gen_bool(0.38) {
        return v; // a normal study (maybe with a device, below)
    }
    for (o, p) in PREVALENCE {
        if rng.gen_bool(p) {
            v.push(o);
        }
    }
    // co-occurrence as in real cohorts
    if v.contains(&Observation::Edema)
        && !v.contains(&Observation::Cardiomegaly)
        && rng.gen_bool(0.6)
    {
        v.push(Observation::Cardiomegaly);
    }
    if v.contains(&Observation::Edema)
        && !v.contains(&Observation::PleuralEffusion)
        && rng.gen_bool(0.5)
    {
        v.push(Observation::PleuralEffusion);
    }
    if v.contains(&Observation::PleuralEffusion)
        && !v.contains(&Observation::Atelectasis)
        && rng.gen_bool(0.3)
    {
        v.push(Observation::Atelectasis);
    }
    if v.is_empty() {
        v.push(PREVALENCE[rng.gen_range(0..PREVALENCE.len())].0);
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// Details of each finding for a set of observations.
fn findings_for(labels: &[Observation], age: u32, rng: &mut ChaCha8Rng) -> Vec<Finding> {
    let mut out = Vec::new();
    for &o in labels {
        let mut f = match o {
            Observation::Pneumonia => {
                let kind = if rng.gen_bool(0.6) { "lobar" } else { "patchy" };
                Finding::new(o, kind, rng)
            }
            Observation::LungLesion => {
                let mass = rng.gen_bool(0.3);
                let mut f = Finding::new(o, if mass { "mass" } else { "nodule" }, rng);
                f.size_mm = if mass {
                    rng.gen_range(32.0..65.0)
                } else {
                    rng.gen_range(8.0..28.0)
                };
                f.laterality = if rng.gen_bool(0.5) {
                    Side::Right
                } else {
                    Side::Left
                };
                f
            }
            Observation::Edema => {
                let mut f = Finding::new(o, "perihilar", rng);
                f.laterality = Side::Bilateral;
                f
            }
            Observation::Atelectasis => {
                let mut f = Finding::new(o, "plate_like", rng);
                f.location = Zone::Lower;
                if f.laterality == Side::Bilateral {
                    f.laterality = Side::Left;
                }
                f
            }
            Observation::Pneumothorax => {
                let mut f = Finding::new(o, "", rng);
                if f.laterality == Side::Bilateral {
                    f.laterality = Side::Right;
                }
                f.location = Zone::Upper;
                f.size_mm = [0.0, 12.0, 25.0, 45.0][f.severity as usize] + rng.gen_range(-3.0..3.0);
                f
            }
            Observation::PleuralEffusion => {
                let mut f = Finding::new(o, "", rng);
                f.location = Zone::Lower;
                f.size_mm =
                    [0.0, 45.0, 75.0, 120.0][f.severity as usize] + rng.gen_range(-5.0..5.0);
                f
            }
            Observation::Fracture => {
                let mut f = Finding::new(
                    o,
                    if age > 60 && rng.gen_bool(0.4) {
                        "healed"
                    } else {
                        "acute"
                    },
                    rng,
                );
                if f.laterality == Side::Bilateral {
                    f.laterality = Side::Left;
                }
                f.rib = Some(rng.gen_range(4..9));
                f
            }
            Observation::SupportDevices => {
                let kind = ["et_tube", "central_line", "pacemaker", "sternotomy_wires"]
                    [rng.gen_range(0..4)];
                let mut f = Finding::new(o, kind, rng);
                f.laterality = if kind == "pacemaker" {
                    Side::Left
                } else {
                    Side::Right
                };
                f
            }
            Observation::Cardiomegaly => {
                let mut f = Finding::new(o, "", rng);
                f.laterality = Side::Bilateral;
                f.ctr = Some(
                    [0.0, 0.56, 0.62, 0.68][f.severity as usize] + rng.gen_range(-0.015..0.015),
                );
                f
            }
            Observation::EnlargedCardiomediastinum => {
                let mut f = Finding::new(o, "", rng);
                f.laterality = Side::Bilateral;
                f
            }
            _ => Finding::new(o, "", rng),
        };
        if matches!(
            o,
            Observation::Consolidation | Observation::LungOpacity | Observation::PleuralOther
        ) && f.laterality == Side::Bilateral
        {
            f.laterality = Side::Right;
        }
        out.push(f);
    }
    out
}

fn images_for(first_view: View, burned_in: f64, rng: &mut ChaCha8Rng) -> Vec<ImagePlan> {
    // in whole percent, drawn as before the rate was a setting, so that the
    // default (5%: 3 marked, 2 unmarked) gives the archives it always gave
    let (marked, all) = (
        (burned_in * 60.0).round() as u32,
        (burned_in * 100.0).round() as u32,
    );
    let burned = |rng: &mut ChaCha8Rng| match rng.gen_range(0..100u32) {
        u if u < marked => BurnedIn::Marked,
        u if u < all => BurnedIn::Unmarked,
        _ => BurnedIn::None,
    };
    let mut v = vec![ImagePlan {
        view: first_view,
        burned_in: burned(rng),
    }];
    if first_view == View::PA && rng.gen_bool(0.55) {
        v.push(ImagePlan {
            view: View::Lateral,
            burned_in: BurnedIn::None,
        });
    }
    v
}

/// The plan for patient `index`: deterministic in (seed, index).
pub fn plan_patient(
    index: usize,
    sites: usize,
    burned_in: f64,
    cohort: Option<&Cohort>,
    rng: &mut ChaCha8Rng,
) -> PatientPlan {
    let site = index % sites.max(1);
    let mut studies = Vec::new();
    let sex;
    if let Some(c) = cohort.filter(|c| !c.is_empty()) {
        let rows = &c.patients[rng.gen_range(0..c.len())];
        sex = rows[0].1;
        let mut day = 0;
        for (age, _, view, labels) in rows.iter().take(4) {
            let mut labels = labels.clone();
            if rng.gen_bool(DEVICE_PREVALENCE) {
                labels.push(Observation::SupportDevices);
            }
            // the observations NIH does not label, at their built-in rates
            for &o in NOT_IN_NIH {
                if rng.gen_bool(builtin_prevalence(o)) {
                    labels.push(o);
                }
            }
            labels.sort_unstable();
            labels.dedup();
            studies.push(StudyPlan {
                day,
                age: *age,
                findings: findings_for(&labels, *age, rng),
                images: images_for(*view, burned_in, rng),
            });
            day += rng.gen_range(20..400);
        }
    } else {
        sex = if rng.gen_bool(0.48) { Sex::F } else { Sex::M };
        let age: u32 =
            (rng.gen_range(20.0..92.0f64) * 0.5 + rng.gen_range(20.0..92.0f64) * 0.5) as u32;
        let n = match rng.gen_range(0..10) {
            0..=5 => 1,
            6..=8 => 2,
            _ => 3,
        };
        let mut day = 0;
        let mut prev: Option<Vec<Observation>> = None;
        for _ in 0..n {
            let mut labels = match &prev {
                // follow-ups: findings often persist, sometimes resolve or appear
                Some(p) if rng.gen_bool(0.6) => p
                    .iter()
                    .copied()
                    .filter(|_| rng.gen_bool(0.8))
                    .collect::<Vec<_>>(),
                _ => sample_labels(rng),
            };
            if rng.gen_bool(DEVICE_PREVALENCE) {
                labels.push(Observation::SupportDevices);
            }
            labels.sort_unstable();
            labels.dedup();
            let a = age + day / 365;
            let view = if labels.contains(&Observation::SupportDevices) || rng.gen_bool(0.15) {
                View::AP
            } else {
                View::PA
            };
            studies.push(StudyPlan {
                day,
                age: a,
                findings: findings_for(&labels, a, rng),
                images: images_for(view, burned_in, rng),
            });
            prev = Some(labels);
            day += rng.gen_range(7..500);
        }
    }
    PatientPlan {
        index,
        sex,
        site,
        studies,
    }
}

/// Observations a finding also is: a lobar pneumonia is a consolidation, a
/// patchy one a lung opacity (and its report says so).
pub fn implied(f: &Finding) -> Vec<Observation> {
    match (f.obs(), f.kind) {
        (Observation::Pneumonia, "lobar") => vec![Observation::Consolidation],
        (Observation::Pneumonia, _) => vec![Observation::LungOpacity],
        _ => vec![],
    }
}

/// 0/1 labels of the 14 observations for a set of findings (No Finding when none but devices).
pub fn labels_of(findings: &[Finding]) -> ObservationMap<u8> {
    let mut l = ObservationMap::default();
    for f in findings {
        l[f.obs()] = 1;
        for o in implied(f) {
            l[o] = 1;
        }
    }
    let any = Observation::ALL
        .iter()
        .any(|&o| o.is_finding() && l[o] == 1);
    l[Observation::NoFinding] = u8::from(!any);
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_cohort_archive_draws_what_nih_does_not_label_at_builtin_rates() {
        // a cohort of normal studies only: every positive below comes from the built-in rates
        let cohort = Cohort {
            patients: vec![vec![(50, Sex::F, View::PA, Vec::new())]; 10],
        };
        let n = 6000;
        let mut counts = std::collections::BTreeMap::new();
        for i in 0..n {
            let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
            let p = plan_patient(i, 3, 0.0, Some(&cohort), &mut rng);
            for s in &p.studies {
                for f in &s.findings {
                    *counts.entry(f.observation).or_insert(0usize) += 1;
                }
            }
        }
        for (o, rate) in [
            (Observation::EnlargedCardiomediastinum, 0.04),
            (Observation::Fracture, 0.05),
            (Observation::SupportDevices, DEVICE_PREVALENCE),
        ] {
            let got = counts.get(&o).copied().unwrap_or(0) as f64 / n as f64;
            // binomial standard error at n = 6000 is under 0.005
            assert!((got - rate).abs() < 0.015, "{o:?}: {got} vs {rate}");
        }
        // and nothing NIH does label appears without the cohort asking for it
        assert_eq!(counts.get(&Observation::Pneumonia), None);
        assert_eq!(counts.get(&Observation::Edema), None);
    }
}
