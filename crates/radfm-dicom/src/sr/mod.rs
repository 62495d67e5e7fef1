//! DICOM Structured Reports of a classifier's results.
//!
//! One SR per study: a Comprehensive 3D SR (PS3.3 A.35.13) whose content
//! follows TID 1500 "Measurement Report":
//!
//! ```text
//! CONTAINER (126000, DCM, "Imaging Measurement Report")           TID 1500
//!   HAS CONCEPT MOD  CODE   Language of Content Item and Descendants = en-US
//!   HAS OBS CONTEXT  CODE   Observer Type = Device                  TID 1002/1004
//!   HAS OBS CONTEXT  UIDREF Device Observer UID (from the model's checksum)
//!   HAS OBS CONTEXT  TEXT   Device Observer Name = the model's name
//!   HAS OBS CONTEXT  TEXT   Device Observer Manufacturer = radfm
//!   HAS OBS CONTEXT  TEXT   Device Observer Model Name = name and version
//!   HAS OBS CONTEXT  TEXT   Device Observer Serial Number = the weights' sha256
//!   HAS CONCEPT MOD  CODE   Procedure reported (the source's Procedure Code, else Imaging procedure)
//!   CONTAINS CONTAINER Image Library > Image Library Group > IMAGE per source image
//!   CONTAINS CONTAINER Imaging Measurements
//!     CONTAINS CONTAINER Measurement Group, one per image          TID 1501
//!       HAS OBS CONTEXT TEXT   Tracking Identifier
//!       HAS OBS CONTEXT UIDREF Tracking Unique Identifier
//!       CONTAINS IMAGE  Source of Measurement (the image's SOP Class and Instance UIDs)
//!       per observation:
//!       CONTAINS CODE  <finding> = Present | Absent (at the model's operating point)
//!         HAS PROPERTIES TEXT  CheXpert observation = its CheXpert name, verbatim
//!         HAS PROPERTIES NUM   Operating point = the threshold
//!       CONTAINS NUM   <finding> = probability ({probability}, UCUM)
//! ```
//!
//! The algorithm is also recorded as IHE AI Results asks: a Contributing
//! Equipment item with purpose "Processing Algorithm". Patient and study
//! attributes are copied from the source images; the SR's series and instance
//! get new UIDs. The finding codes are data (`codes.tsv`, with their sources):
//! SNOMED CT or DCM where one was checked, else radfm's private scheme
//! 99RADFM, which every SR declares in its Coding Scheme Identification
//! Sequence.

pub mod read;

use std::path::Path;
use std::sync::OnceLock;
use std::time::SystemTime;

use dicom_core::{PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::InMemDicomObject;
use sha2::{Digest, Sha256};

use crate::attrs::{seq_element, str_element, string};
use crate::DicomError;

/// Comprehensive 3D SR Storage.
pub const COMPREHENSIVE_3D_SR: &str = "1.2.840.10008.5.1.4.1.1.88.34";
/// Explicit VR Little Endian, in which SRs are written.
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// radfm's private coding scheme.
pub const PRIVATE_SCHEME: &str = "99RADFM";

/// A coded concept: (value, scheme designator, meaning).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Code {
    pub value: String,
    pub scheme: String,
    pub meaning: String,
}

impl Code {
    pub fn new(value: &str, scheme: &str, meaning: &str) -> Code {
        Code {
            value: value.into(),
            scheme: scheme.into(),
            meaning: meaning.into(),
        }
    }
}

/// The concepts the SR's structure uses (DCM and SNOMED CT, PS3.16).
pub mod concept {
    use super::Code;
    pub fn c(v: &str, s: &str, m: &str) -> Code {
        Code::new(v, s, m)
    }
    pub fn report() -> Code {
        c("126000", "DCM", "Imaging Measurement Report")
    }
    pub fn language() -> Code {
        c("121049", "DCM", "Language of Content Item and Descendants")
    }
    pub fn english() -> Code {
        c("en-US", "RFC5646", "English (United States)")
    }
    pub fn observer_type() -> Code {
        c("121005", "DCM", "Observer Type")
    }
    pub fn device() -> Code {
        c("121007", "DCM", "Device")
    }
    pub fn device_uid() -> Code {
        c("121012", "DCM", "Device Observer UID")
    }
    pub fn device_name() -> Code {
        c("121013", "DCM", "Device Observer Name")
    }
    pub fn device_manufacturer() -> Code {
        c("121014", "DCM", "Device Observer Manufacturer")
    }
    pub fn device_model() -> Code {
        c("121015", "DCM", "Device Observer Model Name")
    }
    pub fn device_serial() -> Code {
        c("121016", "DCM", "Device Observer Serial Number")
    }
    pub fn procedure_reported() -> Code {
        c("121058", "DCM", "Procedure reported")
    }
    pub fn imaging_procedure() -> Code {
        c("363679005", "SCT", "Imaging procedure")
    }
    pub fn image_library() -> Code {
        c("111028", "DCM", "Image Library")
    }
    pub fn image_library_group() -> Code {
        c("126200", "DCM", "Image Library Group")
    }
    pub fn imaging_measurements() -> Code {
        c("126010", "DCM", "Imaging Measurements")
    }
    pub fn measurement_group() -> Code {
        c("125007", "DCM", "Measurement Group")
    }
    pub fn tracking_id() -> Code {
        c("112039", "DCM", "Tracking Identifier")
    }
    pub fn tracking_uid() -> Code {
        c("112040", "DCM", "Tracking Unique Identifier")
    }
    pub fn source_of_measurement() -> Code {
        c("121112", "DCM", "Source of Measurement")
    }
    pub fn present() -> Code {
        c("52101004", "SCT", "Present")
    }
    pub fn absent() -> Code {
        c("272519000", "SCT", "Absent")
    }
    pub fn probability_unit() -> Code {
        c("{probability}", "UCUM", "probability")
    }
    pub fn no_units() -> Code {
        c("1", "UCUM", "no units")
    }
    /// The CheXpert name beside a standard code (private scheme).
    pub fn chexpert_observation() -> Code {
        c(
            "CHEXPERTNAME",
            super::PRIVATE_SCHEME,
            "CheXpert observation",
        )
    }
    /// The probability at and above which a finding is reported present.
    pub fn operating_point() -> Code {
        c("OPERATINGPOINT", super::PRIVATE_SCHEME, "Operating point")
    }
    /// IHE AI Results: Contributing Equipment's purpose of reference.
    pub fn processing_algorithm() -> Code {
        c("Newcode1", "99IHE", "Processing Algorithm")
    }
}

/// One row of the code table.
#[derive(Debug, Clone)]
pub struct CodeRow {
    pub observation: String,
    pub code: Code,
    /// where the code was checked
    pub source: String,
}

const CODES_TSV: &str = include_str!("codes.tsv");

/// The finding codes of the CheXpert-14 observations (`codes.tsv`).
pub fn code_table() -> &'static [CodeRow] {
    static TABLE: OnceLock<Vec<CodeRow>> = OnceLock::new();
    TABLE.get_or_init(|| {
        CODES_TSV
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                assert!(f.len() == 5, "sr/codes.tsv: five tab-separated fields: {l}");
                CodeRow {
                    observation: f[0].into(),
                    code: Code::new(f[2], f[1], f[3]),
                    source: f[4].into(),
                }
            })
            .collect()
    })
}

/// The code of an observation: the table's, or for a name it lacks a
/// private code whose meaning is the name.
pub fn code_for(observation: &str) -> Code {
    if let Some(r) = code_table().iter().find(|r| r.observation == observation) {
        return r.code.clone();
    }
    // SH holds 16 characters: the name's letters and digits, then a hash to keep names apart
    let letters: String = observation
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .take(10)
        .collect();
    let h = Sha256::digest(observation.as_bytes());
    let value = format!("{letters}{:02X}{:02X}{:02X}", h[0], h[1], h[2]);
    Code::new(&value, PRIVATE_SCHEME, observation)
}

/// The model that produced the results.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Algorithm {
    pub name: String,
    pub version: String,
    /// the weights' checksum (hex)
    pub sha256: String,
}

/// One observation's result on one image.
#[derive(Debug, Clone)]
pub struct Finding {
    pub observation: String,
    pub probability: f64,
    /// present when `probability >= threshold`
    pub threshold: f64,
}

/// One source image and its results.
pub struct ImageResult<'a> {
    pub source: &'a InMemDicomObject,
    pub findings: Vec<Finding>,
}

/// What identifies the SR itself.
#[derive(Debug, Clone)]
pub struct SrIdentity {
    pub series_uid: String,
    pub instance_uid: String,
    pub series_number: u32,
    pub instance_number: u32,
    /// content and creation date and time
    pub when: SystemTime,
}

impl SrIdentity {
    /// UIDs derived from `key` (for example the study UID and the model's
    /// checksum): the same key gives the same SR UIDs, so a retried store is
    /// recognisable on the server.
    pub fn derived(key: &[&str], when: SystemTime) -> SrIdentity {
        let mut series = key.to_vec();
        series.push("series");
        let mut instance = key.to_vec();
        instance.push("instance");
        SrIdentity {
            series_uid: derived_uid(&series),
            instance_uid: derived_uid(&instance),
            series_number: 9901,
            instance_number: 1,
            when,
        }
    }
}

/// `2.25.` + the first 128 bits of sha256 over `parts` (NUL-separated), in
/// decimal: a UID that depends on nothing else.
pub fn derived_uid(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    format!("2.25.{}", u128::from_be_bytes(b))
}

/// DICOM DA and TM (UTC) of `t`.
pub fn date_time(t: SystemTime) -> (String, String) {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d) = crate::deid::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", s / 3600, s % 3600 / 60, s % 60),
    )
}

fn bad(reason: String) -> DicomError {
    DicomError::Structure { reason }
}

fn required(ds: &InMemDicomObject, tag: Tag, name: &str) -> Result<String, DicomError> {
    string(ds, tag).ok_or_else(|| bad(format!("the source image has no {name}")))
}

/// A content item under construction.
struct Node {
    rel: Option<&'static str>,
    vt: &'static str,
    concept: Option<Code>,
    body: Vec<InMemElement>,
    children: Vec<Node>,
}

impl Node {
    fn new(rel: &'static str, vt: &'static str, concept: Option<Code>) -> Node {
        Node {
            rel: Some(rel),
            vt,
            concept,
            body: Vec::new(),
            children: Vec::new(),
        }
    }
    fn container(rel: &'static str, concept: Code) -> Node {
        let mut n = Node::new(rel, "CONTAINER", Some(concept));
        n.body
            .push(str_element(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"));
        n
    }
    fn code(rel: &'static str, concept: Code, value: &Code) -> Node {
        let mut n = Node::new(rel, "CODE", Some(concept));
        n.body.push(code_seq(tags::CONCEPT_CODE_SEQUENCE, value));
        n
    }
    fn text(rel: &'static str, concept: Code, value: &str) -> Node {
        let mut n = Node::new(rel, "TEXT", Some(concept));
        n.body.push(str_element(tags::TEXT_VALUE, VR::UT, value));
        n
    }
    fn uidref(rel: &'static str, concept: Code, value: &str) -> Node {
        let mut n = Node::new(rel, "UIDREF", Some(concept));
        n.body.push(str_element(tags::UID, VR::UI, value));
        n
    }
    fn num(rel: &'static str, concept: Code, value: f64, unit: &Code) -> Node {
        let mut n = Node::new(rel, "NUM", Some(concept));
        let mut mv = InMemDicomObject::new_empty();
        mv.put(code_seq(tags::MEASUREMENT_UNITS_CODE_SEQUENCE, unit));
        mv.put(str_element(tags::NUMERIC_VALUE, VR::DS, &ds_text(value)));
        // the decimal string holds 16 characters; the exact value travels beside it
        mv.put(InMemElement::new(
            tags::FLOATING_POINT_VALUE,
            VR::FD,
            PrimitiveValue::from(value),
        ));
        n.body
            .push(seq_element(tags::MEASURED_VALUE_SEQUENCE, vec![mv]));
        n
    }
    fn image(rel: &'static str, concept: Option<Code>, class: &str, instance: &str) -> Node {
        let mut n = Node::new(rel, "IMAGE", concept);
        n.body.push(seq_element(
            tags::REFERENCED_SOP_SEQUENCE,
            vec![sop_ref(class, instance)],
        ));
        n
    }
    fn with(mut self, child: Node) -> Node {
        self.children.push(child);
        self
    }
    fn dataset(self) -> InMemDicomObject {
        let mut ds = InMemDicomObject::new_empty();
        self.fill(&mut ds);
        ds
    }
    fn fill(self, ds: &mut InMemDicomObject) {
        if let Some(r) = self.rel {
            ds.put(str_element(tags::RELATIONSHIP_TYPE, VR::CS, r));
        }
        ds.put(str_element(tags::VALUE_TYPE, VR::CS, self.vt));
        if let Some(c) = &self.concept {
            ds.put(code_seq(tags::CONCEPT_NAME_CODE_SEQUENCE, c));
        }
        for e in self.body {
            ds.put(e);
        }
        if !self.children.is_empty() {
            let items = self.children.into_iter().map(Node::dataset).collect();
            ds.put(seq_element(tags::CONTENT_SEQUENCE, items));
        }
    }
}

/// A decimal string (DS, 16 characters at most) for a value in [0, 1] or a
/// threshold: fixed with as many digits as fit.
fn ds_text(v: f64) -> String {
    for digits in (1..=14).rev() {
        let s = format!("{v:.digits$}");
        if s.len() <= 16 {
            return s;
        }
    }
    format!("{v:e}")
}

fn code_item(c: &Code) -> InMemDicomObject {
    let mut ds = InMemDicomObject::new_empty();
    if c.value.len() <= 16 {
        ds.put(str_element(tags::CODE_VALUE, VR::SH, &c.value));
    } else {
        ds.put(str_element(tags::LONG_CODE_VALUE, VR::UC, &c.value));
    }
    ds.put(str_element(
        tags::CODING_SCHEME_DESIGNATOR,
        VR::SH,
        &c.scheme,
    ));
    ds.put(str_element(tags::CODE_MEANING, VR::LO, &c.meaning));
    ds
}

fn code_seq(tag: Tag, c: &Code) -> InMemElement {
    seq_element(tag, vec![code_item(c)])
}

fn sop_ref(class: &str, instance: &str) -> InMemDicomObject {
    let mut ds = InMemDicomObject::new_empty();
    ds.put(str_element(tags::REFERENCED_SOP_CLASS_UID, VR::UI, class));
    ds.put(str_element(
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        instance,
    ));
    ds
}

/// The identifiers of one source image.
struct Source {
    class: String,
    instance: String,
    series: String,
    study: String,
}

fn source_of(ds: &InMemDicomObject) -> Result<Source, DicomError> {
    Ok(Source {
        class: required(ds, tags::SOP_CLASS_UID, "SOP Class UID")?,
        instance: required(ds, tags::SOP_INSTANCE_UID, "SOP Instance UID")?,
        series: required(ds, tags::SERIES_INSTANCE_UID, "Series Instance UID")?,
        study: required(ds, tags::STUDY_INSTANCE_UID, "Study Instance UID")?,
    })
}

/// The patient and study attributes an SR copies from its source (type 2:
/// present, empty when the source lacks them).
const COPIED: [(Tag, VR); 9] = [
    (tags::PATIENT_NAME, VR::PN),
    (tags::PATIENT_ID, VR::LO),
    (tags::PATIENT_BIRTH_DATE, VR::DA),
    (tags::PATIENT_SEX, VR::CS),
    (tags::STUDY_DATE, VR::DA),
    (tags::STUDY_TIME, VR::TM),
    (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
    (tags::STUDY_ID, VR::SH),
    (tags::ACCESSION_NUMBER, VR::SH),
];

/// The SR of one study's results. Every image must belong to the same study;
/// probabilities must lie in [0, 1].
pub fn build(
    images: &[ImageResult<'_>],
    alg: &Algorithm,
    id: &SrIdentity,
) -> Result<InMemDicomObject, DicomError> {
    let first = images
        .first()
        .ok_or_else(|| bad("an SR needs at least one image".into()))?;
    let sources: Vec<Source> = images
        .iter()
        .map(|i| source_of(i.source))
        .collect::<Result<_, _>>()?;
    let study = sources[0].study.clone();
    if let Some(s) = sources.iter().find(|s| s.study != study) {
        return Err(bad(format!(
            "one SR reports one study: image {} is in another study than image {}",
            s.instance, sources[0].instance
        )));
    }
    for (img, src) in images.iter().zip(&sources) {
        if img.findings.is_empty() {
            return Err(bad(format!(
                "image {}: no findings to report",
                src.instance
            )));
        }
        for f in &img.findings {
            if !(0.0..=1.0).contains(&f.probability) {
                return Err(bad(format!(
                    "image {}: {} has probability {}, outside [0, 1]",
                    src.instance, f.observation, f.probability
                )));
            }
            if !f.threshold.is_finite() {
                return Err(bad(format!(
                    "image {}: {} has no finite operating point",
                    src.instance, f.observation
                )));
            }
        }
    }
    let (date, time) = date_time(id.when);
    let model_name = format!("{} {}", alg.name, alg.version);
    let mut ds = InMemDicomObject::new_empty();

    // SOP Common
    ds.put(str_element(
        tags::SPECIFIC_CHARACTER_SET,
        VR::CS,
        "ISO_IR 192",
    ));
    ds.put(str_element(
        tags::SOP_CLASS_UID,
        VR::UI,
        COMPREHENSIVE_3D_SR,
    ));
    ds.put(str_element(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        &id.instance_uid,
    ));
    ds.put(str_element(tags::INSTANCE_CREATION_DATE, VR::DA, &date));
    ds.put(str_element(tags::INSTANCE_CREATION_TIME, VR::TM, &time));
    ds.put(str_element(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000"));
    let mut equipment = InMemDicomObject::new_empty();
    equipment.put(str_element(tags::MANUFACTURER, VR::LO, "radfm"));
    equipment.put(str_element(
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        &lo(&model_name),
    ));
    equipment.put(str_element(
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        &lo(&alg.version),
    ));
    equipment.put(str_element(
        tags::DEVICE_SERIAL_NUMBER,
        VR::LO,
        &lo(&alg.sha256),
    ));
    equipment.put(code_seq(
        tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
        &concept::processing_algorithm(),
    ));
    equipment.put(str_element(
        tags::CONTRIBUTION_DATE_TIME,
        VR::DT,
        &format!("{date}{time}+0000"),
    ));
    equipment.put(str_element(
        tags::CONTRIBUTION_DESCRIPTION,
        VR::ST,
        &format!("AI results of {}", alg.name),
    ));
    ds.put(seq_element(
        tags::CONTRIBUTING_EQUIPMENT_SEQUENCE,
        vec![equipment],
    ));
    let scheme = |designator: &str, name: &str, org: &str| {
        let mut s = InMemDicomObject::new_empty();
        s.put(str_element(
            tags::CODING_SCHEME_DESIGNATOR,
            VR::SH,
            designator,
        ));
        s.put(str_element(tags::CODING_SCHEME_NAME, VR::ST, name));
        s.put(str_element(
            tags::CODING_SCHEME_RESPONSIBLE_ORGANIZATION,
            VR::ST,
            org,
        ));
        s
    };
    ds.put(seq_element(
        tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE,
        vec![
            scheme(PRIVATE_SCHEME, "radfm observations and properties", "radfm"),
            scheme("99IHE", "IHE codes not yet in DICOM", "IHE"),
        ],
    ));

    // Patient and General Study, copied
    for (tag, vr) in COPIED {
        let v = string(first.source, tag).unwrap_or_default();
        ds.put(str_element(tag, vr, &v));
    }
    ds.put(str_element(tags::STUDY_INSTANCE_UID, VR::UI, &study));

    // SR Document Series, General and Enhanced General Equipment
    ds.put(str_element(tags::MODALITY, VR::CS, "SR"));
    ds.put(str_element(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &id.series_uid,
    ));
    ds.put(str_element(
        tags::SERIES_NUMBER,
        VR::IS,
        &id.series_number.to_string(),
    ));
    ds.put(str_element(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        "radfm AI results",
    ));
    ds.put(seq_element(
        tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
        vec![],
    ));
    ds.put(str_element(tags::MANUFACTURER, VR::LO, "radfm"));
    ds.put(str_element(
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        &lo(&model_name),
    ));
    ds.put(str_element(
        tags::DEVICE_SERIAL_NUMBER,
        VR::LO,
        &lo(&alg.sha256),
    ));
    ds.put(str_element(
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        &lo(&alg.version),
    ));

    // SR Document General
    ds.put(str_element(
        tags::INSTANCE_NUMBER,
        VR::IS,
        &id.instance_number.to_string(),
    ));
    ds.put(str_element(tags::COMPLETION_FLAG, VR::CS, "COMPLETE"));
    ds.put(str_element(tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED"));
    ds.put(str_element(tags::CONTENT_DATE, VR::DA, &date));
    ds.put(str_element(tags::CONTENT_TIME, VR::TM, &time));
    ds.put(seq_element(tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, vec![]));
    let mut series: Vec<(&str, Vec<&Source>)> = Vec::new();
    for s in &sources {
        match series.iter_mut().find(|(uid, _)| *uid == s.series) {
            Some((_, v)) => v.push(s),
            None => series.push((&s.series, vec![s])),
        }
    }
    let mut evidence = InMemDicomObject::new_empty();
    evidence.put(str_element(tags::STUDY_INSTANCE_UID, VR::UI, &study));
    evidence.put(seq_element(
        tags::REFERENCED_SERIES_SEQUENCE,
        series
            .iter()
            .map(|(uid, members)| {
                let mut s = InMemDicomObject::new_empty();
                s.put(str_element(tags::SERIES_INSTANCE_UID, VR::UI, uid));
                s.put(seq_element(
                    tags::REFERENCED_SOP_SEQUENCE,
                    members
                        .iter()
                        .map(|m| sop_ref(&m.class, &m.instance))
                        .collect(),
                ));
                s
            })
            .collect(),
    ));
    ds.put(seq_element(
        tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
        vec![evidence],
    ));

    // SR Document Content: TID 1500
    let procedure = crate::attrs::items(first.source, tags::PROCEDURE_CODE_SEQUENCE)
        .first()
        .and_then(|c| {
            Some(Code::new(
                &string(c, tags::CODE_VALUE)?,
                &string(c, tags::CODING_SCHEME_DESIGNATOR)?,
                &string(c, tags::CODE_MEANING)?,
            ))
        })
        .unwrap_or_else(concept::imaging_procedure);
    let device_uid = derived_uid(&["radfm device", &alg.sha256]);
    let mut root = Node {
        rel: None,
        vt: "CONTAINER",
        concept: Some(concept::report()),
        body: vec![str_element(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE")],
        children: Vec::new(),
    };
    let mut template = InMemDicomObject::new_empty();
    template.put(str_element(tags::MAPPING_RESOURCE, VR::CS, "DCMR"));
    template.put(str_element(tags::TEMPLATE_IDENTIFIER, VR::CS, "1500"));
    root.body
        .push(seq_element(tags::CONTENT_TEMPLATE_SEQUENCE, vec![template]));
    root = root
        .with(Node::code(
            "HAS CONCEPT MOD",
            concept::language(),
            &concept::english(),
        ))
        .with(Node::code(
            "HAS OBS CONTEXT",
            concept::observer_type(),
            &concept::device(),
        ))
        .with(Node::uidref(
            "HAS OBS CONTEXT",
            concept::device_uid(),
            &device_uid,
        ))
        .with(Node::text(
            "HAS OBS CONTEXT",
            concept::device_name(),
            &alg.name,
        ))
        .with(Node::text(
            "HAS OBS CONTEXT",
            concept::device_manufacturer(),
            "radfm",
        ))
        .with(Node::text(
            "HAS OBS CONTEXT",
            concept::device_model(),
            &model_name,
        ))
        .with(Node::text(
            "HAS OBS CONTEXT",
            concept::device_serial(),
            &alg.sha256,
        ))
        .with(Node::code(
            "HAS CONCEPT MOD",
            concept::procedure_reported(),
            &procedure,
        ));
    let mut group = Node::container("CONTAINS", concept::image_library_group());
    for s in &sources {
        group = group.with(Node::image("CONTAINS", None, &s.class, &s.instance));
    }
    root = root.with(Node::container("CONTAINS", concept::image_library()).with(group));
    let mut measurements = Node::container("CONTAINS", concept::imaging_measurements());
    for (k, (img, s)) in images.iter().zip(&sources).enumerate() {
        let mut g = Node::container("CONTAINS", concept::measurement_group())
            .with(Node::text(
                "HAS OBS CONTEXT",
                concept::tracking_id(),
                &format!("radfm classification of image {}", k + 1),
            ))
            .with(Node::uidref(
                "HAS OBS CONTEXT",
                concept::tracking_uid(),
                &derived_uid(&[&id.instance_uid, &s.instance]),
            ))
            .with(Node::image(
                "CONTAINS",
                Some(concept::source_of_measurement()),
                &s.class,
                &s.instance,
            ));
        for f in &img.findings {
            let code = code_for(&f.observation);
            let verdict = if f.probability >= f.threshold {
                concept::present()
            } else {
                concept::absent()
            };
            g = g
                .with(
                    Node::code("CONTAINS", code.clone(), &verdict)
                        .with(Node::text(
                            "HAS PROPERTIES",
                            concept::chexpert_observation(),
                            &f.observation,
                        ))
                        .with(Node::num(
                            "HAS PROPERTIES",
                            concept::operating_point(),
                            f.threshold,
                            &concept::probability_unit(),
                        )),
                )
                .with(Node::num(
                    "CONTAINS",
                    code,
                    f.probability,
                    &concept::probability_unit(),
                ));
        }
        measurements = measurements.with(g);
    }
    root = root.with(measurements);
    root.fill(&mut ds);
    Ok(ds)
}

/// LO holds 64 characters.
fn lo(s: &str) -> String {
    s.chars().take(64).collect()
}

/// [`build`] and write the SR to `path` (Explicit VR Little Endian), atomically.
pub fn write(
    path: &Path,
    images: &[ImageResult<'_>],
    alg: &Algorithm,
    id: &SrIdentity,
) -> Result<(), DicomError> {
    let ds = build(images, alg, id)?;
    crate::write::write_part10(
        ds,
        EXPLICIT_VR_LE,
        COMPREHENSIVE_3D_SR,
        &id.instance_uid,
        "RADFM_SR_1",
        path,
    )
}

/// The SR as Part 10 bytes (for a STOW-RS body or an HTTP response).
pub fn to_bytes(
    images: &[ImageResult<'_>],
    alg: &Algorithm,
    id: &SrIdentity,
) -> Result<Vec<u8>, DicomError> {
    let ds = build(images, alg, id)?;
    crate::write::part10_bytes(
        ds,
        EXPLICIT_VR_LE,
        COMPREHENSIVE_3D_SR,
        &id.instance_uid,
        "RADFM_SR_1",
    )
}
