//! Ingest: DICOM archive in, de-identified training-ready dataset out.
//!
//! Files are found by content, decoded in parallel to the display stage,
//! resized (anti-aliased, aspect kept) and written to tar shards; the catalog
//! records everything in transactions that commit together with the shard
//! they refer to. Per-file problems are data: each input gets one line in
//! `ingest-log.jsonl` with a status and a reason. Re-running skips inputs
//! already recorded, so a killed run resumes without loss or duplicates.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use dicom_dictionary_std::tags as dicom_tags;
use radfm_dicom::deid::Deidentifier;
use radfm_dicom::{DicomError, DicomInfo};
use rayon::prelude::*;
use rusqlite::params;
use serde::Serialize;
use serde_json::json;

use crate::catalog::{Catalog, SourceRow};
use crate::reports::ReportIndex;
use crate::shard::{self, ShardWriter};
use crate::{card, DataError};

pub const LOG_FILE: &str = "ingest-log.jsonl";

/// Scale of stored pixels: display-stage values in [0, 1] times this, as uint16.
pub const PIXEL_SCALE: f32 = 65535.0;

#[derive(Debug, Clone, Serialize)]
pub struct IngestConfig {
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub reports: Option<PathBuf>,
    pub size: usize,
    pub deid: bool,
    pub allow_burned_in: bool,
    /// replace report PHI with realistic surrogates instead of typed placeholders
    pub surrogates: bool,
    pub jobs: usize,
    #[serde(skip)]
    pub key_path: PathBuf,
    pub site: Option<String>,
    pub shard_size: usize,
}

impl IngestConfig {
    /// What a run records in the catalog: the settings, never a path (input,
    /// output, reports and key paths can name patients or sites).
    pub fn recorded(&self) -> serde_json::Value {
        json!({
            "inputs": self.inputs.len(),
            "reports": self.reports.is_some(),
            "size": self.size,
            "deid": self.deid,
            "allow_burned_in": self.allow_burned_in,
            "surrogates": self.surrogates,
            "jobs": self.jobs,
            "site": self.site,
            "shard_size": self.shard_size,
        })
    }
}

/// Progress callbacks; the binary implements this with a progress bar.
pub trait Reporter: Sync {
    fn on_start(&self, _files: u64) {}
    fn on_file_done(&self, bytes: u64, total_bytes: u64, elapsed_s: f64);
    fn finish(&self) {}
}

pub struct NoReporter;
impl Reporter for NoReporter {
    fn on_file_done(&self, _: u64, _: u64, _: f64) {}
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct IngestSummary {
    pub found: usize,
    pub already_done: usize,
    pub ok: usize,
    pub skipped: usize,
    pub failed: usize,
    pub images: usize,
    pub volumes: usize,
    pub reports_linked: usize,
    pub key_created: bool,
    pub seconds: f64,
    pub megabytes: f64,
}

// ------------------------------------------------------------------ per file

/// Everything the catalog needs about one ingested image or volume.
#[derive(Debug, Clone, Serialize)]
pub struct ImageMeta {
    pub sop_uid: String,
    pub study_uid: String,
    pub series_uid: String,
    pub patient_key: String,
    pub accession: Option<String>,
    pub study_date: Option<String>,
    pub kind: &'static str,
    pub modality: Option<String>,
    pub view_position: Option<String>,
    pub laterality: Option<String>,
    pub manufacturer: Option<String>,
    pub body_part: Option<String>,
    pub series_number: Option<u32>,
    pub sex: Option<String>,
    pub age_years: Option<f64>,
    pub site: String,
    pub orig_rows: usize,
    pub orig_columns: usize,
    pub spacing_row: Option<f64>,
    pub spacing_col: Option<f64>,
    pub spacing_slice: Option<f64>,
}

struct Pixels {
    /// [frames, rows, columns, channels], display stage scaled to u16
    shape: [usize; 4],
    data: Vec<u16>,
}

struct Slice {
    meta: ImageMeta,
    position: f64,
    pixels: Pixels,
    source: SourceRow,
}

enum Outcome {
    Image {
        meta: Box<ImageMeta>,
        pixels: Pixels,
        report: Option<(String, usize)>,
        source: SourceRow,
    },
    Slice {
        slice: Box<Slice>,
        report: Option<(String, usize)>,
    },
    Done(SourceRow),
}

struct Candidate {
    path: PathBuf,
    display: String,
    /// the pseudonymous key the dataset names this file by
    source: String,
    size: u64,
    mtime_ns: i64,
}

fn source(c: &Candidate, status: &str, reason: Option<String>) -> SourceRow {
    SourceRow {
        source: c.source.clone(),
        size: c.size,
        mtime_ns: c.mtime_ns,
        status: status.into(),
        reason,
        image_key: None,
    }
}

/// SOP classes and modalities that commonly carry burned-in text.
fn burned_in_risk(info: &DicomInfo) -> Option<String> {
    match info.burned_in_annotation.as_deref() {
        Some("YES") => return Some("BurnedInAnnotation is YES".into()),
        Some("NO") => return None,
        _ => {}
    }
    let modality = info.modality.as_deref().unwrap_or("");
    if matches!(modality, "US" | "SC" | "OT") {
        return Some(format!(
            "modality {modality} often has burned-in text and BurnedInAnnotation is not NO"
        ));
    }
    let sc = info
        .sop_class_uid
        .as_deref()
        .is_some_and(|s| s.starts_with("1.2.840.10008.5.1.4.1.1.7"));
    sc.then(|| "Secondary Capture often has burned-in text and BurnedInAnnotation is not NO".into())
}

/// The patient's age in years from PatientAge of the header given, which is
/// the de-identified one unless de-identification is off (de-identification
/// derives it from the birth date, then drops the date). Never from a birth
/// date here. Ages over 89 are 90 (HIPAA Safe Harbor: "90 or older").
fn age_of(info: &DicomInfo) -> Option<f64> {
    info.patient_age
        .as_deref()
        .and_then(radfm_dicom::deid::parse_age)
        .filter(|a| a.is_finite() && *a >= 0.0)
        .map(|a| a.min(MAX_AGE))
}

/// The age that stands for every age over 89.
pub const MAX_AGE: f64 = 90.0;

/// Header attributes whose values are treated as known PHI when scrubbing the study's report.
const KNOWN_NAME_TAGS: [dicom_core::Tag; 8] = [
    dicom_tags::PATIENT_NAME,
    dicom_tags::REFERRING_PHYSICIAN_NAME,
    dicom_tags::PERFORMING_PHYSICIAN_NAME,
    dicom_tags::NAME_OF_PHYSICIANS_READING_STUDY,
    dicom_tags::OPERATORS_NAME,
    dicom_tags::OTHER_PATIENT_NAMES,
    dicom_tags::PATIENT_MOTHER_BIRTH_NAME,
    dicom_tags::REQUESTING_PHYSICIAN,
];
const KNOWN_ID_TAGS: [dicom_core::Tag; 7] = [
    dicom_tags::PATIENT_ID,
    dicom_tags::ACCESSION_NUMBER,
    dicom_tags::STUDY_ID,
    dicom_tags::INSTITUTION_NAME,
    dicom_tags::INSTITUTION_ADDRESS,
    dicom_tags::PATIENT_ADDRESS,
    dicom_tags::PATIENT_TELEPHONE_NUMBERS,
];

/// The study's own identities (from its original header), for the report scrubber.
fn known_phi(ds: &dicom_object::InMemDicomObject) -> radfm_report::scrub::Known {
    let values = |tags: &[dicom_core::Tag]| -> Vec<String> {
        tags.iter()
            .filter_map(|&t| radfm_dicom::attrs::string(ds, t))
            .flat_map(|v| v.split('\\').map(str::to_string).collect::<Vec<_>>())
            .collect()
    };
    radfm_report::scrub::Known {
        names: values(&KNOWN_NAME_TAGS),
        ids: values(&KNOWN_ID_TAGS),
    }
}

struct Ctx<'a> {
    cfg: &'a IngestConfig,
    /// SOP instances already delivered by a worker (final UID -> source key)
    delivered: std::sync::Mutex<std::collections::HashMap<String, String>>,
    deid: Option<Deidentifier>,
    /// report surrogates (--surrogates), keyed by a subkey of the pseudonymisation key
    surrogates: Option<radfm_report::scrub::Surrogates>,
    reports: &'a ReportIndex,
}

/// One file's work. Its failure, even an unexpected panic in a decoder or
/// in de-identification, is that file's alone: it becomes the file's log
/// line and the batch goes on.
fn process(c: &Candidate, ctx: &Ctx) -> Outcome {
    let run = std::panic::AssertUnwindSafe(|| process_inner(c, ctx));
    match std::panic::catch_unwind(run) {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            let status = match e {
                DicomError::NotDicom { .. } => "skipped",
                _ => "failed",
            };
            Outcome::Done(source(c, status, Some(e.to_string())))
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            // a panic message can quote header values (PHI): it goes to the
            // operator's terminal with -v, never into the dataset's log
            tracing::info!("{}: internal error: {what}", c.display);
            Outcome::Done(source(
                c,
                "failed",
                Some(
                    "internal error: radfm panicked on this file (a bug: please report it; \
                     -v prints the message)"
                        .into(),
                ),
            ))
        }
    }
}

fn process_inner(c: &Candidate, ctx: &Ctx) -> Result<Outcome, DicomError> {
    let bytes = std::fs::read(&c.path).map_err(|e| DicomError::OpenFile {
        path: c.path.clone(),
        source: e,
    })?;
    if bytes.is_empty() {
        return Ok(Outcome::Done(source(
            c,
            "skipped",
            Some("not DICOM: empty file".into()),
        )));
    }
    let file = radfm_dicom::read::parse(&bytes)?;
    drop(bytes);
    let orig = DicomInfo::from_file(&file);
    // a date with bytes outside ASCII is corrupt (or in a character set the
    // file does not declare): shifting it would guess, so the file fails
    for (keyword, v) in [
        ("StudyDate", &orig.study_date),
        ("PatientBirthDate", &orig.patient_birth_date),
    ] {
        if v.as_deref().is_some_and(|d| !d.is_ascii()) {
            return Err(DicomError::Attribute {
                keyword,
                // the value itself is PHI: never in the log
                reason: "holds non-ASCII bytes, which a DA value cannot".into(),
            });
        }
    }
    if !orig.has_pixel_data {
        return Ok(Outcome::Done(source(
            c,
            "skipped",
            Some("no pixel data (not an image object)".into()),
        )));
    }
    if !ctx.cfg.allow_burned_in {
        if let Some(why) = burned_in_risk(&orig) {
            return Ok(Outcome::Done(source(
                c,
                "skipped",
                Some(format!("quarantined: {why} (--allow-burned-in keeps it)")),
            )));
        }
    }
    // Skip decoding a SOP instance that another file already delivered.
    if let Some(sop) = &orig.sop_instance_uid {
        let final_sop = match &ctx.deid {
            Some(d) => d.uid(sop),
            None => sop.clone(),
        };
        if let Some(other) = ctx.delivered.lock().expect("lock").get(&final_sop) {
            return Ok(Outcome::Done(source(
                c,
                "skipped",
                Some(format!(
                    "duplicate SOP instance, already ingested from {other}"
                )),
            )));
        }
    }
    let raw = radfm_dicom::pixels::decode_raw(&file)?;
    let module = radfm_dicom::PixelModule::from_dataset(&file.dataset)?;
    let pipeline = radfm_dicom::GrayscalePipeline::from_dataset(&file.dataset, &module);
    let display_map = pipeline.display_map(&raw);
    let [frames, rows, cols, samples] = raw.shape();
    let ch = pipeline.display_channels(samples);

    // Identity, de-identified unless --no-deid.
    let (info, patient_key, site) = match &ctx.deid {
        Some(d) => {
            let ds = d.apply(&file.dataset);
            let mut info = DicomInfo::from_dataset(&ds);
            info.transfer_syntax_uid = orig.transfer_syntax_uid.clone();
            let key = d.pseudonyms(&file.dataset).patient_id;
            let site = ctx
                .cfg
                .site
                .clone()
                .unwrap_or_else(|| match &orig.institution_name {
                    Some(n) => d.pseudonym("site-", "site", n).chars().take(11).collect(),
                    None => "site-unknown".into(),
                });
            (info, key, site)
        }
        None => {
            let key = orig.patient_id.clone().unwrap_or_else(|| "unknown".into());
            let site = ctx
                .cfg
                .site
                .clone()
                .or_else(|| orig.institution_name.clone())
                .unwrap_or_else(|| "site-unknown".into());
            (orig.clone(), key, site)
        }
    };
    let missing = |what: &'static str| DicomError::Attribute {
        keyword: what,
        reason: "required to catalog the image".into(),
    };
    let sop_uid = info
        .sop_instance_uid
        .clone()
        .ok_or(missing("SOPInstanceUID"))?;
    let study_uid = info
        .study_instance_uid
        .clone()
        .ok_or(missing("StudyInstanceUID"))?;
    let series_uid = info
        .series_instance_uid
        .clone()
        .ok_or(missing("SeriesInstanceUID"))?;

    // Report, scrubbed with the study's own identities as known PHI.
    let report = ctx
        .reports
        .find(
            orig.accession_number.as_deref(),
            orig.study_instance_uid.as_deref(),
        )
        .map(|text| {
            if ctx.deid.is_none() {
                return (text.to_string(), 0);
            }
            let known = known_phi(&file.dataset);
            let spans = radfm_report::scrub::find(text, &known);
            let how = match (&ctx.surrogates, &ctx.deid) {
                (Some(sur), Some(d)) => radfm_report::scrub::Replacement::Surrogates(
                    sur,
                    radfm_report::scrub::Patient {
                        id: &patient_key,
                        // the same shift as the patient's DICOM dates
                        date_offset_days: d.pseudonyms(&file.dataset).date_offset_days,
                    },
                ),
                _ => radfm_report::scrub::Replacement::Placeholders,
            };
            (radfm_report::scrub::replace(text, &spans, how), spans.len())
        });

    let spacing = info.pixel_spacing;
    let modality = info.modality.clone();
    let is_volume_modality = matches!(modality.as_deref(), Some("CT" | "MR"));
    let target = radfm_dicom::resample::fit_long_side(rows, cols, ctx.cfg.size);
    let scale = (rows as f64 / target.0 as f64, cols as f64 / target.1 as f64);
    let fsz = rows * cols * samples;
    let mut data = Vec::with_capacity(frames * target.0 * target.1 * ch);
    let mut frame = Vec::with_capacity(rows * cols * ch);
    for f in 0..frames {
        frame.clear();
        pipeline.display_into(&raw, &display_map, f * fsz, (f + 1) * fsz, &mut frame);
        // burned-in text in the pixels, whatever the header says (first frame)
        if f == 0 && !ctx.cfg.allow_burned_in {
            if let Some(t) = radfm_dicom::text_detect::detect_samples(&frame, rows, cols, ch) {
                return Ok(Outcome::Done(source(
                    c,
                    "skipped",
                    Some(format!(
                        "quarantined: text found in the pixels ({} characters in a line, {}; --allow-burned-in keeps it)",
                        t.chars,
                        t.region()
                    )),
                )));
            }
        }
        let r = radfm_dicom::resample::resize(&frame, rows, cols, ch, target.0, target.1);
        data.extend(
            r.iter()
                .map(|&v| (v.clamp(0.0, 1.0) * PIXEL_SCALE).round() as u16),
        );
    }
    drop(raw);
    let pixels = Pixels {
        shape: [frames, target.0, target.1, ch],
        data,
    };
    let mut meta = ImageMeta {
        sop_uid,
        study_uid,
        series_uid,
        patient_key,
        accession: info.accession_number.clone(),
        study_date: info.study_date.clone(),
        kind: "image",
        modality,
        view_position: info.view_position.clone(),
        laterality: info.laterality.clone(),
        manufacturer: info.manufacturer.clone(),
        body_part: info.body_part_examined.clone(),
        series_number: info.series_number,
        sex: info.patient_sex.clone(),
        age_years: age_of(&info),
        site,
        orig_rows: rows,
        orig_columns: cols,
        spacing_row: spacing.map(|s| s[0] * scale.0),
        spacing_col: spacing.map(|s| s[1] * scale.1),
        spacing_slice: None,
    };
    ctx.delivered
        .lock()
        .expect("lock")
        .entry(meta.sop_uid.clone())
        .or_insert_with(|| c.source.clone());
    let src = source(c, "ok", None);
    if is_volume_modality && frames == 1 {
        if let (Some(ipp), Some(iop)) =
            (orig.image_position_patient, orig.image_orientation_patient)
        {
            // position along the slice normal (row x column direction cosines)
            let n = [
                iop[1] * iop[5] - iop[2] * iop[4],
                iop[2] * iop[3] - iop[0] * iop[5],
                iop[0] * iop[4] - iop[1] * iop[3],
            ];
            let position = ipp[0] * n[0] + ipp[1] * n[1] + ipp[2] * n[2];
            return Ok(Outcome::Slice {
                slice: Box::new(Slice {
                    meta,
                    position,
                    pixels,
                    source: src,
                }),
                report,
            });
        }
    }
    if is_volume_modality && frames > 1 {
        meta.kind = "volume";
        meta.spacing_slice = info.slice_thickness;
    }
    Ok(Outcome::Image {
        meta: Box::new(meta),
        pixels,
        report,
        source: src,
    })
}

// ------------------------------------------------------------------ discovery

fn discover(inputs: &[PathBuf]) -> Result<Vec<Candidate>, DataError> {
    let mut out = Vec::new();
    for input in inputs {
        if !input.exists() {
            return Err(DataError::Input {
                path: input.clone(),
                reason: "does not exist".into(),
            });
        }
        for entry in walkdir::WalkDir::new(input)
            .follow_links(true)
            .sort_by_file_name()
        {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(
                        "cannot list {}: {e}",
                        e.path()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    );
                    continue;
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path().to_path_buf();
            let md = entry.metadata().ok();
            let size = md.as_ref().map(|m| m.len()).unwrap_or(0);
            let mtime_ns = md
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0);
            let display = path.display().to_string();
            out.push(Candidate {
                path,
                display,
                source: String::new(), // keyed once the key is known
                size,
                mtime_ns,
            });
        }
    }
    Ok(out)
}

/// Quick content check on the first bytes, so non-DICOM files are not read whole.
fn sniff(c: &Candidate) -> Option<SourceRow> {
    if c.size == 0 {
        return Some(source(c, "skipped", Some("not DICOM: empty file".into())));
    }
    let mut head = vec![0u8; 512];
    let n = match std::fs::File::open(&c.path).and_then(|mut f| {
        let mut total = 0;
        loop {
            let k = f.read(&mut head[total..])?;
            if k == 0 || total + k == head.len() {
                return Ok(total + k);
            }
            total += k;
        }
    }) {
        Ok(n) => n,
        Err(e) => return Some(source(c, "failed", Some(format!("cannot read: {e}")))),
    };
    if radfm_dicom::read::looks_like_dicom(&head[..n]) {
        None
    } else {
        Some(source(
            c,
            "skipped",
            Some("not DICOM: no 'DICM' marker and no plausible data set at the start".into()),
        ))
    }
}

// ------------------------------------------------------------------ writer

struct Pending {
    images: Vec<(String, ImageMeta, [usize; 4])>,
    reports: Vec<(String, String, usize)>,
    sources: Vec<SourceRow>,
}

struct Writer<'a> {
    dataset: &'a Path,
    catalog: &'a Catalog,
    run_id: i64,
    shard_size: usize,
    next_shard: u64,
    next_id: i64,
    shard: Option<ShardWriter>,
    pending: Pending,
    seen_sops: std::collections::HashMap<String, String>,
    seen_reports: HashSet<String>,
    summary: IngestSummary,
    /// what every sidecar says of the identity policy
    deidentification: &'static str,
    /// the report labeler's name, stored beside the weak labels
    labeler: String,
}

fn npy_u16(shape: &[usize; 4], data: &[u16]) -> Vec<u8> {
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    radfm_core::npy::to_bytes("<u2", shape, &raw)
}

impl Writer<'_> {
    fn db<T>(&self, r: rusqlite::Result<T>) -> Result<T, DataError> {
        r.map_err(|e| DataError::Catalog {
            path: self.dataset.join(crate::catalog::FILE_NAME),
            reason: e.to_string(),
        })
    }

    fn add_image(
        &mut self,
        meta: ImageMeta,
        pixels: &Pixels,
        report: Option<(String, usize)>,
        mut sources: Vec<SourceRow>,
    ) -> Result<(), DataError> {
        let dup = match self.seen_sops.get(&meta.sop_uid) {
            Some(k) => Some(k.clone()),
            None => self.db(self.catalog.has_sop(&meta.sop_uid))?,
        };
        if let Some(other) = dup {
            for s in &mut sources {
                s.status = "skipped".into();
                s.reason = Some(format!(
                    "duplicate SOP instance, already ingested as image {other}"
                ));
            }
            self.summary.skipped += sources.len();
            self.pending.sources.extend(sources);
            return Ok(());
        }
        let key = format!("{:09}", self.next_id);
        self.next_id += 1;
        self.seen_sops.insert(meta.sop_uid.clone(), key.clone());
        if self.shard.is_none() {
            self.shard = Some(ShardWriter::create(self.dataset, self.next_shard)?);
            self.next_shard += 1;
        }
        let shard = self.shard.as_mut().expect("just created");
        let sidecar = json!({
            "key": key,
            "shape": pixels.shape,
            "dtype": "uint16",
            "scale": 1.0 / PIXEL_SCALE as f64,
            "layout": "frames,rows,columns,channels",
            "deidentification": self.deidentification,
            "meta": meta,
        });
        shard.append(&format!("{key}.npy"), &npy_u16(&pixels.shape, &pixels.data))?;
        shard.append(
            &format!("{key}.json"),
            serde_json::to_vec(&sidecar).expect("json").as_slice(),
        )?;
        if let Some((text, n)) = report {
            if self.seen_reports.insert(meta.study_uid.clone()) {
                self.pending.reports.push((meta.study_uid.clone(), text, n));
            }
        }
        for s in &mut sources {
            s.image_key = Some(key.clone());
        }
        self.summary.ok += sources.len();
        if meta.kind == "volume" {
            self.summary.volumes += 1;
        } else {
            self.summary.images += 1;
        }
        self.pending.sources.extend(sources);
        self.pending.images.push((key, meta, pixels.shape));
        if self
            .shard
            .as_ref()
            .is_some_and(|s| s.members / 2 >= self.shard_size)
        {
            self.commit()?;
        }
        Ok(())
    }

    fn add_source(&mut self, s: SourceRow) -> Result<(), DataError> {
        match s.status.as_str() {
            "failed" => self.summary.failed += 1,
            _ => self.summary.skipped += 1,
        }
        self.pending.sources.push(s);
        if self.shard.is_none() && self.pending.sources.len() >= 512 {
            self.commit()?;
        }
        Ok(())
    }

    /// Close the open shard (if any) and commit its rows in one transaction.
    fn commit(&mut self) -> Result<(), DataError> {
        let shard_name = match self.shard.take() {
            Some(s) => Some(s.finish()?),
            None => None,
        };
        let p = std::mem::replace(
            &mut self.pending,
            Pending {
                images: Vec::new(),
                reports: Vec::new(),
                sources: Vec::new(),
            },
        );
        let run_id = self.run_id;
        let tx_result = (|| -> rusqlite::Result<usize> {
            let tx = self.catalog.conn.unchecked_transaction()?;
            let mut linked = 0;
            for (key, m, shape) in &p.images {
                tx.execute(
                    "INSERT INTO patients(patient_key, sex) VALUES (?1, ?2)
                     ON CONFLICT(patient_key) DO UPDATE SET sex = COALESCE(patients.sex, excluded.sex)",
                    params![m.patient_key, m.sex],
                )?;
                tx.execute(
                    "INSERT OR IGNORE INTO studies(study_uid, patient_key, accession, study_date, age_years, site)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![m.study_uid, m.patient_key, m.accession, m.study_date, m.age_years, m.site],
                )?;
                tx.execute(
                    "INSERT OR IGNORE INTO series(series_uid, study_uid, modality, manufacturer, body_part, series_number)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![m.series_uid, m.study_uid, m.modality, m.manufacturer, m.body_part, m.series_number],
                )?;
                tx.execute(
                    "INSERT INTO images(image_id, key, sop_uid, series_uid, study_uid, patient_key, kind, modality,
                        view_position, laterality, manufacturer, sex, age_years, site, frames, rows, columns, channels,
                        orig_rows, orig_columns, spacing_row, spacing_col, spacing_slice, shard, run_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
                        ?20, ?21, ?22, ?23, ?24, ?25)",
                    params![
                        key.parse::<i64>().unwrap_or_default(), key, m.sop_uid, m.series_uid, m.study_uid,
                        m.patient_key, m.kind, m.modality, m.view_position, m.laterality, m.manufacturer, m.sex,
                        m.age_years, m.site, shape[0] as i64, shape[1] as i64, shape[2] as i64, shape[3] as i64,
                        m.orig_rows as i64, m.orig_columns as i64, m.spacing_row, m.spacing_col,
                        m.spacing_slice, shard_name.clone().unwrap_or_default(), run_id
                    ],
                )?;
            }
            for (study, text, n) in &p.reports {
                let added = tx.execute(
                    "INSERT OR IGNORE INTO reports(study_uid, text, phi_replaced) VALUES (?1, ?2, ?3)",
                    params![study, text, *n as i64],
                )?;
                if added > 0 {
                    crate::labels::store(&tx, study, text, &self.labeler)?;
                }
                linked += added;
            }
            for s in &p.sources {
                tx.execute(
                    "INSERT OR REPLACE INTO sources(source, size, mtime_ns, status, reason, image_key, run_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![s.source, s.size as i64, s.mtime_ns, s.status, s.reason, s.image_key, run_id],
                )?;
            }
            tx.commit()?;
            Ok(linked)
        })();
        let linked = self.db(tx_result)?;
        self.summary.reports_linked += linked;
        Ok(())
    }
}

/// Stack the slices of one series into a volume, sorted along the slice normal.
fn build_volume(mut slices: Vec<Slice>) -> (ImageMeta, Pixels, Vec<SourceRow>) {
    slices.sort_by(|a, b| a.position.total_cmp(&b.position));
    let first_shape = slices[0].pixels.shape;
    let gaps: Vec<f64> = slices
        .windows(2)
        .map(|w| w[1].position - w[0].position)
        .collect();
    let mut sorted_gaps = gaps.clone();
    sorted_gaps.sort_by(f64::total_cmp);
    let spacing = sorted_gaps
        .get(sorted_gaps.len() / 2)
        .copied()
        .filter(|g| *g > 0.0);
    let [_, r, c, ch] = first_shape;
    let mut data = Vec::with_capacity(slices.len() * r * c * ch);
    let mut sources = Vec::with_capacity(slices.len());
    let mut meta = slices[0].meta.clone();
    for s in slices.iter() {
        data.extend_from_slice(&s.pixels.data);
    }
    for s in slices.iter_mut() {
        sources.push(s.source.clone());
    }
    meta.kind = "volume";
    // the volume is identified by its series; its "SOP" key is the series UID
    meta.sop_uid = format!("{}/volume", meta.series_uid);
    meta.spacing_slice = spacing;
    (
        meta,
        Pixels {
            shape: [slices.len(), r, c, ch],
            data,
        },
        sources,
    )
}

// ------------------------------------------------------------------ run

pub fn ingest(cfg: &IngestConfig, reporter: &dyn Reporter) -> Result<IngestSummary, DataError> {
    let t0 = Instant::now();
    // a run that cannot start creates nothing
    if let Some(missing) = cfg.inputs.iter().find(|p| !p.exists()) {
        return Err(DataError::Input {
            path: missing.clone(),
            reason: "does not exist".into(),
        });
    }
    std::fs::create_dir_all(&cfg.out).map_err(|e| DataError::Write {
        path: cfg.out.clone(),
        source: e,
    })?;
    let probe = cfg.out.join(".write-test");
    radfm_core::write_atomic(&probe, b"ok").map_err(|e| DataError::Write {
        path: cfg.out.clone(),
        source: e,
    })?;
    let _ = std::fs::remove_file(&probe);

    let (deid, key_created) = if cfg.deid {
        let (key, created) = crate::key::load_or_create(&cfg.key_path, &cfg.out)?;
        (Some(Deidentifier::new(key)), created)
    } else {
        (None, false)
    };
    let reports = match &cfg.reports {
        Some(p) => crate::reports::load(p)?,
        None => ReportIndex::default(),
    };
    for why in &reports.rejected {
        tracing::warn!("reports: {why}");
    }
    let catalog = Catalog::open(&cfg.out)?;
    if let Err(e) = check_policy(&cfg.out, &catalog, deid.as_ref()) {
        // a key made just now for a dataset that has another one would be
        // picked up by the next run and refused again: take it back
        if key_created {
            let _ = std::fs::remove_file(&cfg.key_path);
        }
        return Err(e);
    }
    let run_id = catalog
        .begin_run(&cfg.recorded())
        .map_err(|e| DataError::Catalog {
            path: cfg.out.join(crate::catalog::FILE_NAME),
            reason: e.to_string(),
        })?;
    let referenced = catalog.shards().map_err(|e| DataError::Catalog {
        path: cfg.out.join(crate::catalog::FILE_NAME),
        reason: e.to_string(),
    })?;
    let next_shard = shard::prepare_dir(&cfg.out, &referenced)?;
    let next_id = catalog.next_image_id().unwrap_or(1);

    let mut all = discover(&cfg.inputs)?;
    for c in &mut all {
        c.source = source_key(deid.as_ref(), &c.display);
    }
    let found: Vec<(String, String)> = all
        .iter()
        .map(|c| (c.source.clone(), c.display.clone()))
        .collect();
    let mut summary = IngestSummary {
        found: all.len(),
        key_created,
        ..Default::default()
    };
    let mut todo = Vec::with_capacity(all.len());
    for c in all {
        if catalog
            .source_done(&c.source, c.size, c.mtime_ns)
            .unwrap_or(false)
        {
            summary.already_done += 1;
        } else {
            todo.push(c);
        }
    }
    reporter.on_start(todo.len() as u64);

    let mut w = Writer {
        dataset: &cfg.out,
        catalog: &catalog,
        run_id,
        shard_size: cfg.shard_size.max(1),
        next_shard,
        next_id,
        shard: None,
        pending: Pending {
            images: Vec::new(),
            reports: Vec::new(),
            sources: Vec::new(),
        },
        seen_sops: Default::default(),
        seen_reports: HashSet::new(),
        summary,
        deidentification: policy_text(cfg.deid),
        labeler: crate::labels::labeler_version(),
    };
    crate::labels::record_policy(&catalog).map_err(|e| DataError::Catalog {
        path: cfg.out.join(crate::catalog::FILE_NAME),
        reason: e.to_string(),
    })?;
    let surrogates = deid
        .as_ref()
        .filter(|_| cfg.surrogates)
        .map(|d| radfm_report::scrub::Surrogates::new(d.subkey("report-surrogates")));
    let ctx = Ctx {
        cfg,
        delivered: Default::default(),
        deid,
        surrogates,
        reports: &reports,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.jobs.max(1))
        .build()
        .map_err(|e| DataError::Input {
            path: cfg.out.clone(),
            reason: format!("cannot start worker threads: {e}"),
        })?;
    let (tx, rx) = mpsc::sync_channel::<(u64, Outcome)>(cfg.jobs.max(1) * 4);
    let mut series: BTreeMap<String, Vec<Slice>> = BTreeMap::new();
    let mut series_reports: Vec<(ImageMeta, (String, usize))> = Vec::new();
    let mut bytes_done = 0u64;
    let mut result: Result<(), DataError> = Ok(());
    std::thread::scope(|scope| {
        let todo = &todo;
        let ctx = &ctx;
        scope.spawn(move || {
            pool.install(|| {
                todo.par_iter().for_each_with(tx, |tx, c| {
                    let o = match sniff(c) {
                        Some(s) => Outcome::Done(s),
                        None => process(c, ctx),
                    };
                    let _ = tx.send((c.size, o));
                })
            })
        });
        for (size, outcome) in rx {
            bytes_done += size;
            reporter.on_file_done(size, bytes_done, t0.elapsed().as_secs_f64());
            if result.is_err() {
                continue; // drain the workers
            }
            result = match outcome {
                Outcome::Done(s) => w.add_source(s),
                Outcome::Image {
                    meta,
                    pixels,
                    report,
                    source,
                } => w.add_image(*meta, &pixels, report, vec![source]),
                Outcome::Slice { slice, report } => {
                    if let Some(r) = report {
                        series_reports.push((slice.meta.clone(), r));
                    }
                    series
                        .entry(slice.meta.series_uid.clone())
                        .or_default()
                        .push(*slice);
                    Ok(())
                }
            };
        }
    });
    result?;
    for (_, slices) in std::mem::take(&mut series) {
        // slices of different in-plane size cannot share a volume: group by shape
        let mut by_shape: BTreeMap<[usize; 4], Vec<Slice>> = BTreeMap::new();
        for s in slices {
            by_shape.entry(s.pixels.shape).or_default().push(s);
        }
        for (_, group) in by_shape {
            let report = series_reports
                .iter()
                .find(|(m, _)| m.study_uid == group[0].meta.study_uid)
                .map(|(_, r)| r.clone());
            let (meta, pixels, sources) = build_volume(group);
            w.add_image(meta, &pixels, report, sources)?;
        }
    }
    w.commit()?;
    let mut summary = w.summary.clone();
    let _ = catalog.finish_run(run_id);
    write_log(&cfg.out, &catalog)?;
    write_private_sources(&cfg.out, &catalog, &found)?;
    card::write(&cfg.out, &catalog)?;
    reporter.finish();
    summary.seconds = t0.elapsed().as_secs_f64();
    summary.megabytes = bytes_done as f64 / 1e6;
    Ok(summary)
}

/// The dataset's identity policy, stored in the catalog's `meta` table:
/// "deidentified" or "identified" (`--no-deid`).
pub const META_POLICY: &str = "deidentification";
/// The fingerprint of the pseudonymisation key of a de-identified dataset.
pub const META_KEY_FINGERPRINT: &str = "key_fingerprint";
/// The form of the pseudonyms and UIDs a de-identified dataset holds.
pub const META_PSEUDONYM_SCHEME: &str = "pseudonym_scheme";
/// Scheme 2: `P` + 12 hex + a 4-hex keyed check; UIDs `2.25.` + 96 bits + a 32-bit check.
pub const PSEUDONYM_SCHEME: &str = "2";

/// One dataset, one policy and one key: a de-identified dataset refuses a
/// run without de-identification or under another key, and the reverse.
/// The first run records them.
fn check_policy(
    dataset: &Path,
    catalog: &Catalog,
    deid: Option<&Deidentifier>,
) -> Result<(), DataError> {
    let db = |e: rusqlite::Error| DataError::Catalog {
        path: dataset.join(crate::catalog::FILE_NAME),
        reason: e.to_string(),
    };
    let policy = if deid.is_some() {
        "deidentified"
    } else {
        "identified"
    };
    let refuse = |reason: String| DataError::Policy {
        path: dataset.to_path_buf(),
        reason,
    };
    match catalog.meta(META_POLICY).map_err(db)? {
        Some(p) if p != policy => {
            return Err(refuse(format!(
            "the dataset is {p}; a run that is {policy} cannot add to it (one dataset, one policy)"
        )))
        }
        Some(_) => {}
        None => catalog.set_meta(META_POLICY, policy).map_err(db)?,
    }
    catalog
        .set_meta("deidentification_method", policy_text(deid.is_some()))
        .map_err(db)?;
    if let Some(d) = deid {
        let fp = d.key_fingerprint();
        // pseudonyms and UIDs carry a keyed check since scheme 2: a dataset
        // made before would get pseudonyms of another form for the same patients
        let scheme = catalog.meta(META_PSEUDONYM_SCHEME).map_err(db)?;
        let has_key = catalog.meta(META_KEY_FINGERPRINT).map_err(db)?.is_some();
        match scheme.as_deref() {
            Some(PSEUDONYM_SCHEME) => {}
            None if !has_key => catalog.set_meta(META_PSEUDONYM_SCHEME, PSEUDONYM_SCHEME).map_err(db)?,
            other => {
                return Err(refuse(format!(
                    "its pseudonyms are of an older form (scheme {}); this radfm writes scheme {PSEUDONYM_SCHEME},                      which would give the same patients other pseudonyms: ingest into a new dataset",
                    other.unwrap_or("1")
                )))
            }
        }
        match catalog.meta(META_KEY_FINGERPRINT).map_err(db)? {
            Some(saved) if saved != fp => {
                return Err(refuse(
                    "it was pseudonymised under another key: this key would give the same \
                     patients other pseudonyms (pass the dataset's own key)"
                        .into(),
                ))
            }
            Some(_) => {}
            None => catalog.set_meta(META_KEY_FINGERPRINT, &fp).map_err(db)?,
        }
    }
    Ok(())
}

/// What the card, the catalog and every sidecar say of the policy.
pub fn policy_text(deid: bool) -> &'static str {
    if deid {
        radfm_dicom::deid::METHOD
    } else {
        NOT_DEIDENTIFIED
    }
}

/// The policy text of a `--no-deid` dataset.
pub const NOT_DEIDENTIFIED: &str =
    "NOT DE-IDENTIFIED: names, identifiers, dates and ages are as in the source files";

/// The pseudonymous key of an input file's path: keyed by the
/// pseudonymisation key when de-identifying, a plain SHA-256 otherwise.
fn source_key(deid: Option<&Deidentifier>, path: &str) -> String {
    match deid {
        Some(d) => d.source_key(path),
        None => {
            use sha2::{Digest, Sha256};
            let h = Sha256::digest(path.as_bytes());
            let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("src-{hex}")
        }
    }
}

/// The private file that maps the dataset's source keys back to input
/// paths, for the operator: `<dataset>.sources.jsonl` beside the dataset
/// directory (never inside it), mode 0600.
pub fn sources_path(dataset: &Path) -> PathBuf {
    crate::key::beside(dataset, "sources.jsonl")
}

/// One line of a log: the source key (and with `path`, its path), status,
/// size, reason and image.
fn log_line(r: &SourceRow, path: Option<Option<&String>>) -> serde_json::Value {
    let mut v = json!({"source": r.source, "status": r.status, "bytes": r.size});
    if let Some(p) = path {
        v["path"] = json!(p);
    }
    if let Some(reason) = &r.reason {
        v["reason"] = json!(reason);
    }
    if let Some(k) = &r.image_key {
        v["image"] = json!(k);
    }
    v
}

/// Write JSON lines atomically; `private` files are the owner's alone.
fn write_lines(path: &Path, lines: &[serde_json::Value], private: bool) -> Result<(), DataError> {
    let write = |e: std::io::Error| DataError::Write {
        path: path.to_path_buf(),
        source: e,
    };
    let mut f = if private {
        radfm_core::AtomicFile::create_private(path)
    } else {
        radfm_core::AtomicFile::create(path)
    }
    .map_err(write)?;
    for v in lines {
        serde_json::to_writer(&mut f, v).map_err(|e| write(e.into()))?;
        f.write_all(b"\n").map_err(write)?;
    }
    f.commit().map_err(write)
}

/// Rewrite the private sources file: every source of the catalog with its
/// path (from this run's files and the file's earlier lines), status and
/// reason. With `-v` this run's lines also go to stderr.
fn write_private_sources(
    dataset: &Path,
    catalog: &Catalog,
    found: &[(String, String)],
) -> Result<(), DataError> {
    let path = sources_path(dataset);
    let mut paths: HashMap<String, String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            Some((
                v["source"].as_str()?.to_string(),
                v["path"].as_str()?.to_string(),
            ))
        })
        .collect();
    let this_run: HashSet<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
    paths.extend(found.iter().cloned());
    let rows = catalog.sources().map_err(|e| DataError::Catalog {
        path: dataset.join(crate::catalog::FILE_NAME),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for r in &rows {
        let p = paths.get(&r.source);
        if this_run.contains(r.source.as_str()) {
            tracing::info!(
                "{} = {}: {}{}",
                r.source,
                p.map_or("?", String::as_str),
                r.status,
                r.reason
                    .as_deref()
                    .map(|x| format!(" ({x})"))
                    .unwrap_or_default()
            );
        }
        out.push(log_line(r, Some(p)));
    }
    write_lines(&path, &out, true)
}

/// Rewrite `ingest-log.jsonl` from the catalog's `sources` table (atomically),
/// so the log always agrees with what was committed.
pub fn write_log(dataset: &Path, catalog: &Catalog) -> Result<(), DataError> {
    let rows = catalog.sources().map_err(|e| DataError::Catalog {
        path: dataset.join(crate::catalog::FILE_NAME),
        reason: e.to_string(),
    })?;
    let lines: Vec<serde_json::Value> = rows.iter().map(|r| log_line(r, None)).collect();
    write_lines(&dataset.join(LOG_FILE), &lines, false)
}
