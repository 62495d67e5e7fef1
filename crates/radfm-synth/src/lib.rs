//! radfm-synth: a synthetic hospital archive of chest radiographs whose
//! findings are drawn into the pixels, with paired free-text reports, ground
//! truth and injected PHI. It gives every later stage (de-identification,
//! labelling, pretraining, probes, fairness and shift analysis) a known truth,
//! and it is what radfm runs on a machine with no real data.
//!
//! Output of [`generate`] under `out`:
//! - `dicom/site-X/pNNNNN/SS_II.dcm`: DICOM Part 10, one file per image;
//! - `reports.jsonl`: one line per study (`accession_number`,
//!   `study_instance_uid`, `patient_id`, `text`);
//! - `truth.jsonl`: one line per image (labels of the 14 CheXpert
//!   observations, finding details, what the report states, site, age, sex,
//!   view, burned-in text);
//! - `phi.jsonl`: every PHI string injected, with where it went;
//! - `contact-sheet.png` (optional): examples per observation.
//!
//! The same seed gives byte-identical output: every patient draws from its
//! own generator seeded by (seed, patient index), and nothing depends on time.

pub mod dicomio;
pub mod font;
pub mod phi;
pub mod plan;
pub mod render;
pub mod report;
pub mod sheet;
pub mod site;

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde_json::json;

use crate::phi::{Person, PhiRecord};
use crate::plan::{labels_of, BurnedIn, Cohort, Observation, Sex, View};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Config {
    pub out: PathBuf,
    pub patients: usize,
    pub sites: usize,
    pub seed: u64,
    /// rows and columns of every image
    pub size: usize,
    /// NIH ChestX-ray14 `Data_Entry_2017*.csv[.gz]`: sample label combinations, age, sex,
    /// view and follow-ups from it
    pub cohort: Option<PathBuf>,
    pub contact_sheet: bool,
    /// fraction of frontal images with text burned into the pixels; three in
    /// five of them say so in the header (BurnedInAnnotation YES), the rest
    /// do not (default 0.05)
    pub burned_in: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("{0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Dicom(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Counts of what was written.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub patients: usize,
    pub studies: usize,
    pub images: usize,
    pub burned_in_marked: usize,
    pub burned_in_unmarked: usize,
    pub reports_disagreeing: usize,
    pub phi_strings: usize,
}

struct PatientOut {
    truth: Vec<serde_json::Value>,
    reports: Vec<serde_json::Value>,
    phi: Vec<PhiRecord>,
    thumbs: Vec<(Vec<Observation>, Vec<u8>)>,
    summary: Summary,
}

const INDICATIONS: [&str; 10] = [
    "Cough.",
    "Shortness of breath.",
    "Fever and cough.",
    "Chest pain.",
    "Preoperative evaluation.",
    "Follow-up.",
    "Line placement.",
    "Hypoxia.",
    "Trauma, rib pain.",
    "Weight loss.",
];

fn thumb(display: &[f32], n: usize, t: usize) -> Vec<u8> {
    let mut out = vec![0u8; t * t];
    let f = n as f32 / t as f32;
    for y in 0..t {
        for x in 0..t {
            let (x0, y0) = ((x as f32 * f) as usize, (y as f32 * f) as usize);
            let (x1, y1) = (((x + 1) as f32 * f) as usize, ((y + 1) as f32 * f) as usize);
            let mut acc = 0.0f32;
            let mut k = 0.0f32;
            for yy in y0..y1.max(y0 + 1).min(n) {
                for xx in x0..x1.max(x0 + 1).min(n) {
                    acc += display[yy * n + xx];
                    k += 1.0;
                }
            }
            out[y * t + x] = ((acc / k.max(1.0)) * 255.0).round() as u8;
        }
    }
    out
}

fn one_patient(
    cfg: &Config,
    cohort: Option<&Cohort>,
    index: usize,
) -> Result<PatientOut, SynthError> {
    let mut rng = ChaCha8Rng::seed_from_u64(radfm_core::seed::derive(cfg.seed, index as u64));
    let plan = plan::plan_patient(index, cfg.sites, cfg.burned_in, cohort, &mut rng);
    let site = site::site(plan.site);
    let female = plan.sex == Sex::F;
    let person = Person::random(&mut rng, female);
    let pn = person.pn();
    let mrn = phi::mrn(&mut rng);
    let other_id = phi::mrn(&mut rng);
    let address = phi::address(&mut rng);
    let phone = phi::phone(&mut rng);
    let fem = rng.gen_bool(0.5);
    let referring = Person::random(&mut rng, fem);
    let fem = rng.gen_bool(0.5);
    let reader = Person::random(&mut rng, fem);
    let day0: i64 = 18_600 + rng.gen_range(0..1800);
    let first_age = plan.studies[0].age as i64;
    let birth = day0 - first_age * 365 - rng.gen_range(0..365);
    let hab = render::Habitus {
        width: if female { 0.93 } else { 1.0 } * rng.gen_range(0.93..1.07),
        depth: if female { 0.92 } else { 1.0 } * rng.gen_range(0.88..1.15),
        height: rng.gen_range(0.94..1.04) - 0.0008 * (first_age as f32 - 50.0).max(0.0),
        female,
    };
    let pdir = cfg
        .out
        .join("dicom")
        .join(&site.label)
        .join(format!("p{index:05}"));
    std::fs::create_dir_all(&pdir).map_err(io(&pdir))?;
    let mut out = PatientOut {
        truth: Vec::new(),
        reports: Vec::new(),
        phi: Vec::new(),
        thumbs: Vec::new(),
        summary: Summary::default(),
    };
    out.summary.patients = 1;
    let seed = cfg.seed;
    let pkey = format!("p{index}");
    let mut prior: Option<(Vec<plan::Finding>, String)> = None;
    for (si, st) in plan.studies.iter().enumerate() {
        let skey = format!("{si}");
        let accession = phi::accession(&mut rng);
        let study_uid = dicomio::uid(seed, &[&pkey, &skey, "study"]);
        let series_uid = dicomio::uid(seed, &[&pkey, &skey, "series"]);
        let day = day0 + st.day as i64;
        let study_date = phi::da(day);
        let views: Vec<&str> = st.images.iter().map(|i| i.view.code()).collect();
        let view_text = match views.as_slice() {
            ["PA", "LL"] => "PA and lateral views of the chest.".to_string(),
            ["AP"] => "Single AP portable view of the chest.".to_string(),
            _ => format!("{} view of the chest.", views.join(" and ")),
        };
        // PHI in the report text, as real reports carry it
        let phi_sentence = match rng.gen_range(0..10) {
            0..=2 => {
                let fem = rng.gen_bool(0.5);
                let dr = Person::random(&mut rng, fem);
                let date = phi::us_date(day);
                out.phi.push(PhiRecord {
                    value: dr.family.clone(),
                    location: "report".into(),
                    item: accession.clone(),
                });
                out.phi.push(PhiRecord {
                    value: date.clone(),
                    location: "report".into(),
                    item: accession.clone(),
                });
                Some(format!(
                    "Findings discussed with Dr. {} {} by telephone on {date}.",
                    dr.given, dr.family
                ))
            }
            3 => {
                out.phi.push(PhiRecord {
                    value: mrn.clone(),
                    location: "report".into(),
                    item: accession.clone(),
                });
                Some(format!("MRN: {mrn}."))
            }
            4 => {
                let p = phi::phone(&mut rng);
                out.phi.push(PhiRecord {
                    value: p.clone(),
                    location: "report".into(),
                    item: accession.clone(),
                });
                Some(format!("Please call {p} with questions."))
            }
            _ => None,
        };
        let indication = if rng.gen_bool(0.3) {
            format!(
                "{}-year-old {} with {}",
                st.age,
                if female { "female" } else { "male" },
                INDICATIONS[rng.gen_range(0..10)].to_lowercase()
            )
        } else {
            INDICATIONS[rng.gen_range(0..10)].to_string()
        };
        let prior_ref = prior.as_ref().map(|(f, d)| (f.as_slice(), d.as_str()));
        let mut written = report::write(
            &st.findings,
            prior_ref,
            &indication,
            &view_text,
            phi_sentence.as_deref(),
            &mut rng,
        );
        written.text = format!(
            "{}\nSigned: Dr. {} {}",
            written.text, reader.given, reader.family
        );
        out.phi.push(PhiRecord {
            value: reader.family.clone(),
            location: "report".into(),
            item: accession.clone(),
        });
        out.phi.push(PhiRecord {
            value: reader.given.clone(),
            location: "report".into(),
            item: accession.clone(),
        });
        if written.disagreement.is_some() {
            out.summary.reports_disagreeing += 1;
        }
        out.reports.push(json!({
            "accession_number": accession,
            "study_instance_uid": study_uid,
            "patient_id": mrn,
            "text": written.text,
        }));
        let labels = labels_of(&st.findings);
        let stated: serde_json::Map<String, serde_json::Value> = written
            .stated
            .iter()
            .map(|(o, s)| (o.to_string(), json!(s)))
            .collect();
        for (ii, img) in st.images.iter().enumerate() {
            let ikey = format!("{ii}");
            let sop_uid = dicomio::uid(seed, &[&pkey, &skey, &ikey, "sop"]);
            let canvas =
                render::render(cfg.size, img.view, hab, &st.findings, site.fov_mm, &mut rng);
            let marker = site
                .marker
                .then_some(if img.view == View::Lateral { "L" } else { "R" });
            let mut acq = site::acquire(&site, cfg.size, canvas.attenuation(), marker, &mut rng);
            let rel = format!("dicom/{}/p{index:05}/{si:02}_{ii:02}.dcm", site.label);
            if img.burned_in != BurnedIn::None {
                // its own random stream, so that the rest of the image is
                // what it would be without the text
                let mut trng = ChaCha8Rng::seed_from_u64(radfm_core::seed::fnv1a_parts(&[
                    cfg.seed.to_string().as_bytes(),
                    rel.as_bytes(),
                    b"burned-in",
                ]));
                let name = format!(
                    "{}^{}",
                    person.family.to_uppercase(),
                    person.given.to_uppercase()
                );
                let mut lines = vec![format!("{} {}", name, mrn)];
                match trng.gen_range(0..3) {
                    0 => lines[0].push_str(&format!(" {}", phi::da(birth))),
                    1 => lines.push(format!("DOB {}", phi::da(birth))),
                    _ => lines.push(format!("{} {}", phi::da(birth), site.label.to_uppercase())),
                }
                site::burn_in(&site, cfg.size, &mut acq, &lines, &mut trng);
                for v in [
                    person.family.to_uppercase(),
                    person.given.to_uppercase(),
                    mrn.clone(),
                    phi::da(birth),
                ] {
                    out.phi.push(PhiRecord {
                        value: v,
                        location: "pixels".into(),
                        item: rel.clone(),
                    });
                }
                match img.burned_in {
                    BurnedIn::Marked => out.summary.burned_in_marked += 1,
                    _ => out.summary.burned_in_unmarked += 1,
                }
            }
            let header = dicomio::Header {
                seed,
                site: &site,
                view: img.view,
                n: cfg.size,
                patient_name: pn.clone(),
                patient_id: mrn.clone(),
                other_patient_id: other_id.clone(),
                birth_date: phi::da(birth),
                sex: if female { "F" } else { "M" },
                age: st.age,
                address: address.clone(),
                phone: phone.clone(),
                referring: referring.pn(),
                performing: reader.pn(),
                operator: format!("{}^{}", ["Tech", "Radiographer"][ii % 2], person.given),
                study_uid: study_uid.clone(),
                series_uid: series_uid.clone(),
                sop_uid: sop_uid.clone(),
                accession: accession.clone(),
                study_id: format!("{}", 1000 + si),
                study_date: study_date.clone(),
                series_number: 1,
                instance_number: ii as u32 + 1,
                burned_in: img.burned_in == BurnedIn::Marked,
            };
            let path = cfg.out.join(&rel);
            dicomio::write(&header, &acq.stored, &path, &rel, &mut out.phi)
                .map_err(SynthError::Dicom)?;
            let label_map: serde_json::Map<String, serde_json::Value> = labels
                .iter()
                .map(|(o, l)| (o.as_str().to_string(), json!(l)))
                .collect();
            out.truth.push(json!({
                "id": sop_uid,
                "file": rel,
                "sop_instance_uid": sop_uid,
                "study_instance_uid": study_uid,
                "accession_number": accession,
                "patient_id": mrn,
                "patient_index": index,
                "site": site.label,
                "manufacturer": site.manufacturer,
                "age": st.age,
                "sex": if female { "F" } else { "M" },
                "view": img.view.code(),
                "labels": label_map,
                "findings": st.findings,
                "report_labels": stated,
                "report_disagreement": written.disagreement,
                "burned_in": img.burned_in,
                "pixel_spacing_mm": site.fov_mm / cfg.size as f32,
            }));
            if img.view != View::Lateral && cfg.contact_sheet {
                let present: Vec<Observation> = labels
                    .iter()
                    .filter(|(_, &l)| l == 1)
                    .map(|(o, _)| o)
                    .collect();
                out.thumbs
                    .push((present, thumb(&acq.display, cfg.size, sheet::THUMB)));
            }
            out.summary.images += 1;
        }
        out.summary.studies += 1;
        prior = Some((st.findings.clone(), phi::us_date(day)));
        out.phi.push(PhiRecord {
            value: phi::us_date(day),
            location: "report (comparison date of the next study)".into(),
            item: accession.clone(),
        });
    }
    out.phi.push(PhiRecord {
        value: person.given.clone(),
        location: "OperatorsName".into(),
        item: format!("p{index:05}"),
    });
    Ok(out)
}

fn write_jsonl(path: &Path, lines: impl Iterator<Item = String>) -> Result<(), SynthError> {
    let mut f = radfm_core::AtomicFile::create(path).map_err(io(path))?;
    for l in lines {
        f.write_all(l.as_bytes()).map_err(io(path))?;
        f.write_all(b"\n").map_err(io(path))?;
    }
    f.commit().map_err(io(path))
}

/// Generate the archive. `progress(done, total)` is called as patients finish.
pub fn generate(
    cfg: &Config,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Summary, SynthError> {
    if cfg.patients == 0 {
        return Err(SynthError::Config("patients: must be at least 1".into()));
    }
    if !(64..=4096).contains(&cfg.size) {
        return Err(SynthError::Config(format!(
            "size {}: must be between 64 and 4096 pixels",
            cfg.size
        )));
    }
    if !(0.0..=1.0).contains(&cfg.burned_in) {
        return Err(SynthError::Config(format!(
            "the burned-in fraction must be between 0 and 1, not {}",
            cfg.burned_in
        )));
    }
    if cfg.sites == 0 || cfg.sites > 26 {
        return Err(SynthError::Config(format!(
            "sites {}: must be between 1 and 26",
            cfg.sites
        )));
    }
    let cohort = match &cfg.cohort {
        Some(p) => Some(Cohort::load(p).map_err(SynthError::Config)?),
        None => None,
    };
    // a previous archive here is replaced; anything else is left alone
    if cfg.out.join("truth.jsonl").exists() {
        let d = cfg.out.join("dicom");
        if d.exists() {
            std::fs::remove_dir_all(&d).map_err(io(&d))?;
        }
        let sheet = cfg.out.join("contact-sheet.png");
        if sheet.exists() {
            std::fs::remove_file(&sheet).map_err(io(&sheet))?;
        }
    } else if std::fs::read_dir(&cfg.out).is_ok_and(|mut e| e.next().is_some()) {
        return Err(SynthError::Config(format!(
            "{} is not empty and holds no earlier synthetic archive (no truth.jsonl); choose an empty or new directory",
            cfg.out.display()
        )));
    }
    std::fs::create_dir_all(cfg.out.join("dicom")).map_err(io(&cfg.out))?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let outs: Vec<PatientOut> = (0..cfg.patients)
        .into_par_iter()
        .map(|i| {
            let r = one_patient(cfg, cohort.as_ref(), i);
            progress(
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                cfg.patients,
            );
            r
        })
        .collect::<Result<_, _>>()?;
    let mut summary = Summary::default();
    for o in &outs {
        summary.patients += o.summary.patients;
        summary.studies += o.summary.studies;
        summary.images += o.summary.images;
        summary.burned_in_marked += o.summary.burned_in_marked;
        summary.burned_in_unmarked += o.summary.burned_in_unmarked;
        summary.reports_disagreeing += o.summary.reports_disagreeing;
        summary.phi_strings += o.phi.len();
    }
    write_jsonl(
        &cfg.out.join("truth.jsonl"),
        outs.iter()
            .flat_map(|o| o.truth.iter().map(|v| v.to_string())),
    )?;
    write_jsonl(
        &cfg.out.join("reports.jsonl"),
        outs.iter()
            .flat_map(|o| o.reports.iter().map(|v| v.to_string())),
    )?;
    write_jsonl(
        &cfg.out.join("phi.jsonl"),
        outs.iter().flat_map(|o| {
            o.phi
                .iter()
                .map(|p| serde_json::to_string(p).expect("serialisable"))
        }),
    )?;
    if cfg.contact_sheet {
        let thumbs: Vec<&(Vec<Observation>, Vec<u8>)> =
            outs.iter().flat_map(|o| o.thumbs.iter()).collect();
        sheet::write(&cfg.out.join("contact-sheet.png"), &thumbs)?;
    }
    Ok(summary)
}
