//! Small generated DICOM files for tests, benchmarks and demos: variants of
//! one real image with distinct identities, optionally stuffed with unique
//! PHI tokens in every kind of element (names, IDs, dates, addresses,
//! institution, physicians, descriptions, comments, nested sequences and
//! private tags), to prove that de-identification leaves none behind.

use std::path::Path;

use dicom_core::header::DataElement;
use dicom_core::value::Value;
use dicom_core::{PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use radfm_dicom::attrs::{seq_element as seq, str_element as s};

/// The PHI tokens injected into variant `i` (all unique, all must vanish).
pub fn phi_tokens(i: usize) -> Vec<String> {
    [
        "TOKNAMEFAM",
        "TOKNAMEGIV",
        "TOKPATID",
        "TOKOTHERID",
        "TOKADDR",
        "TOKINST",
        "TOKINSTADDR",
        "TOKREFPHYS",
        "TOKPERFPHYS",
        "TOKOPER",
        "TOKSTUDYDESC",
        "TOKSERIESDESC",
        "TOKIMGCOMM",
        "TOKSTUDYID",
        "TOKACCESSION",
        "TOKNESTID",
        "TOKNESTPN",
        "TOKPRIVCREATOR",
        "TOKPRIVVAL",
        "TOKPHONE",
        "TOKSTATION",
        "TOKPROTOCOL",
        "TOKMOTHER",
        "TOKPATCOMM",
        "TOKDEVSERIAL",
    ]
    .iter()
    .map(|t| format!("{t}{i:04}"))
    .chain([
        format!("1.2.826.0.1.3680043.10.543.{}.1", 1000 + i), // study UID
        format!("1.2.826.0.1.3680043.10.543.{}.2", 1000 + i), // series UID
        format!("1.2.826.0.1.3680043.10.543.{}.3", 1000 + i), // SOP UID
        format!("1.2.826.0.1.3680043.10.543.{}.4", 1000 + i), // nested reference UID
        "19470312".to_string(),                               // birth date
        format!("2019{:02}17", 1 + i % 12),                   // study date
    ])
    .collect()
}

/// Write variant `i` of the DICOM file `template` to `out`: new identity and UIDs, and
/// (with `phi`) every token of [`phi_tokens`] placed somewhere in the header.
pub fn write_variant(template: &Path, out: &Path, i: usize, phi: bool) -> Result<(), String> {
    let bytes = std::fs::read(template).map_err(|e| e.to_string())?;
    let f = radfm_dicom::read::parse(&bytes).map_err(|e| e.to_string())?;
    let mut ds = f.dataset;
    let t = phi_tokens(i);
    keep_first_frame(&mut ds);
    let sop_class = radfm_dicom::attrs::string(&ds, tags::SOP_CLASS_UID)
        .unwrap_or_else(|| "1.2.840.10008.5.1.4.1.1.1.1".into());
    ds.put(s(tags::STUDY_INSTANCE_UID, VR::UI, &t[25]));
    ds.put(s(tags::SERIES_INSTANCE_UID, VR::UI, &t[26]));
    ds.put(s(tags::SOP_INSTANCE_UID, VR::UI, &t[27]));
    ds.put(s(tags::PATIENT_ID, VR::LO, &t[2]));
    ds.put(s(tags::PATIENT_NAME, VR::PN, &format!("{}^{}", t[0], t[1])));
    ds.put(s(
        tags::PATIENT_SEX,
        VR::CS,
        if i % 2 == 0 { "F" } else { "M" },
    ));
    ds.put(s(tags::PATIENT_BIRTH_DATE, VR::DA, &t[29]));
    ds.remove_element(tags::PATIENT_AGE);
    ds.put(s(tags::STUDY_DATE, VR::DA, &t[30]));
    ds.put(s(tags::ACCESSION_NUMBER, VR::SH, &t[14]));
    ds.put(s(tags::MODALITY, VR::CS, "DX"));
    ds.put(s(
        tags::VIEW_POSITION,
        VR::CS,
        if i % 3 == 0 { "AP" } else { "PA" },
    ));
    ds.put(s(tags::BURNED_IN_ANNOTATION, VR::CS, "NO"));
    ds.put(s(tags::IMAGER_PIXEL_SPACING, VR::DS, "0.7\\0.7"));
    if phi {
        ds.put(s(Tag(0x0010, 0x1000), VR::LO, &t[3])); // OtherPatientIDs
        ds.put(s(
            tags::PATIENT_ADDRESS,
            VR::LO,
            &format!("12 {} Street", t[4]),
        ));
        ds.put(s(tags::INSTITUTION_NAME, VR::LO, &t[5]));
        ds.put(s(tags::INSTITUTION_ADDRESS, VR::ST, &t[6]));
        ds.put(s(tags::REFERRING_PHYSICIAN_NAME, VR::PN, &t[7]));
        ds.put(s(tags::PERFORMING_PHYSICIAN_NAME, VR::PN, &t[8]));
        ds.put(s(tags::OPERATORS_NAME, VR::PN, &t[9]));
        ds.put(s(tags::STUDY_DESCRIPTION, VR::LO, &t[10]));
        ds.put(s(tags::SERIES_DESCRIPTION, VR::LO, &t[11]));
        ds.put(s(tags::IMAGE_COMMENTS, VR::LT, &t[12]));
        ds.put(s(tags::STUDY_ID, VR::SH, &t[13]));
        ds.put(s(tags::PATIENT_TELEPHONE_NUMBERS, VR::SH, &t[19]));
        ds.put(s(tags::STATION_NAME, VR::SH, &t[20]));
        ds.put(s(tags::PROTOCOL_NAME, VR::LO, &t[21]));
        ds.put(s(tags::PATIENT_MOTHER_BIRTH_NAME, VR::PN, &t[22]));
        ds.put(s(tags::PATIENT_COMMENTS, VR::LT, &t[23]));
        ds.put(s(tags::DEVICE_SERIAL_NUMBER, VR::LO, &t[24]));
        let mut inner = InMemDicomObject::new_empty();
        inner.put(s(tags::REQUESTED_PROCEDURE_ID, VR::SH, &t[15]));
        inner.put(s(tags::SCHEDULED_PERFORMING_PHYSICIAN_NAME, VR::PN, &t[16]));
        ds.put(seq(tags::REQUEST_ATTRIBUTES_SEQUENCE, vec![inner]));
        let mut refd = InMemDicomObject::new_empty();
        refd.put(s(
            tags::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            "1.2.840.10008.3.1.2.3.1",
        ));
        refd.put(s(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &t[28]));
        let mut deeper = InMemDicomObject::new_empty();
        deeper.put(s(tags::PERSON_NAME, VR::PN, &t[16]));
        refd.put(seq(tags::CONTENT_SEQUENCE, vec![deeper]));
        ds.put(seq(tags::REFERENCED_IMAGE_SEQUENCE, vec![refd]));
        ds.put(s(Tag(0x0009, 0x0010), VR::LO, &t[17]));
        ds.put(s(Tag(0x0009, 0x1001), VR::LO, &t[18]));
    }
    let ts = if f.ts == radfm_dicom::read::EXPLICIT_VR_BE
        || f.ts == radfm_dicom::read::DEFLATED_EXPLICIT_VR_LE
    {
        radfm_dicom::read::EXPLICIT_VR_LE.to_string()
    } else {
        f.ts.clone()
    };
    radfm_dicom::write::write_part10(ds, &ts, &sop_class, &t[27], "RADFM_TEST", out)
        .map_err(|e| e.to_string())
}

/// Reduce native multi-frame pixel data to its first frame (a projection image).
fn keep_first_frame(ds: &mut InMemDicomObject) {
    let frames = radfm_dicom::attrs::uint(ds, tags::NUMBER_OF_FRAMES).unwrap_or(1) as usize;
    let (Some(r), Some(c)) = (
        radfm_dicom::attrs::uint(ds, tags::ROWS),
        radfm_dicom::attrs::uint(ds, tags::COLUMNS),
    ) else {
        return;
    };
    if frames <= 1 {
        return;
    }
    let n = (r * c) as usize;
    let new =
        match ds.get(tags::PIXEL_DATA).map(|e| e.value()) {
            Some(Value::Primitive(PrimitiveValue::U16(v))) if v.len() >= n => Some(
                DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(v[..n].into())),
            ),
            Some(Value::Primitive(PrimitiveValue::U8(v))) if v.len() >= 2 * n => {
                Some(DataElement::new(
                    tags::PIXEL_DATA,
                    VR::OW,
                    PrimitiveValue::U8(v[..2 * n].into()),
                ))
            }
            _ => None,
        };
    if let Some(e) = new {
        ds.put(e);
        ds.remove_element(tags::NUMBER_OF_FRAMES);
        ds.remove_element(Tag(0x0028, 0x0009)); // FrameIncrementPointer
    }
}

/// A report for variant `i` that mentions its PHI tokens, as a real one might.
pub fn phi_report(i: usize) -> String {
    let t = phi_tokens(i);
    format!(
        "INDICATION: cough. Patient {fam} {giv}, MRN {id}, seen 03/17/2019. \
         FINDINGS: No focal consolidation. No pleural effusion or pneumothorax. \
         IMPRESSION: Normal chest. Discussed with Dr. {phys} at 555-867-5309.",
        fam = t[0],
        giv = t[1],
        id = t[2],
        phys = t[7],
    )
}

/// Write slice `k` of a synthetic CT series: shared study and series, position z along the
/// normal of an axial orientation, every pixel equal to `value`, window 0..1000.
pub fn write_ct_slice(
    template: &Path,
    out: &Path,
    k: usize,
    z: f64,
    value: u16,
) -> Result<(), String> {
    let bytes = std::fs::read(template).map_err(|e| e.to_string())?;
    let f = radfm_dicom::read::parse(&bytes).map_err(|e| e.to_string())?;
    let mut ds = f.dataset;
    keep_first_frame(&mut ds);
    let n = (radfm_dicom::attrs::uint(&ds, tags::ROWS).unwrap_or(0)
        * radfm_dicom::attrs::uint(&ds, tags::COLUMNS).unwrap_or(0)) as usize;
    ds.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(vec![value; n].into()),
    ));
    ds.put(s(tags::MODALITY, VR::CS, "CT"));
    ds.put(s(tags::PATIENT_ID, VR::LO, "CTPATIENT"));
    ds.put(s(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        "1.2.826.0.1.3680043.10.543.77.1",
    ));
    ds.put(s(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        "1.2.826.0.1.3680043.10.543.77.2",
    ));
    let sop = format!("1.2.826.0.1.3680043.10.543.77.3.{k}");
    ds.put(s(tags::SOP_INSTANCE_UID, VR::UI, &sop));
    ds.put(s(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2"));
    ds.put(s(
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        &format!("-100\\-100\\{z}"),
    ));
    ds.put(s(
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        "1\\0\\0\\0\\1\\0",
    ));
    ds.put(s(tags::PIXEL_SPACING, VR::DS, "0.8\\0.8"));
    ds.put(s(tags::WINDOW_CENTER, VR::DS, "500"));
    ds.put(s(tags::WINDOW_WIDTH, VR::DS, "1000"));
    ds.put(s(tags::RESCALE_SLOPE, VR::DS, "1"));
    ds.put(s(tags::RESCALE_INTERCEPT, VR::DS, "0"));
    ds.put(DataElement::new(
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(16u16),
    ));
    ds.put(DataElement::new(
        tags::HIGH_BIT,
        VR::US,
        PrimitiveValue::from(15u16),
    ));
    radfm_dicom::write::write_part10(
        ds,
        radfm_dicom::read::EXPLICIT_VR_LE,
        "1.2.840.10008.5.1.4.1.1.2",
        &sop,
        "RADFM_TEST",
        out,
    )
    .map_err(|e| e.to_string())
}
