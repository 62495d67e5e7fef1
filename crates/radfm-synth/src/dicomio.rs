//! Writing one image as a DICOM Part 10 file: a CR Image or a Digital X-Ray
//! Image (For Presentation), with the patient, study, series, equipment,
//! image, VOI and SOP Common modules, plus the PHI a real archive carries
//! (addresses, physicians, private tags, nested sequences).

use std::path::Path;

use dicom_core::header::DataElement;
use dicom_core::value::PrimitiveValue;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::InMemDicomObject;
use sha2::{Digest, Sha256};

use crate::phi::PhiRecord;
use crate::plan::View;
use crate::site::{Site, Syntax};

pub const CR_SOP: &str = "1.2.840.10008.5.1.4.1.1.1";
pub const DX_SOP: &str = "1.2.840.10008.5.1.4.1.1.1.1";

/// A valid, unique UID derived from the seed and a path of names: `2.25.<128-bit decimal>`.
pub fn uid(seed: u64, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    let v = u128::from_be_bytes(b) | 1; // never 0
    format!("2.25.{v}")
}

use radfm_dicom::attrs::{seq_element as seq, str_element as s};

fn us(tag: Tag, v: u16) -> InMemElement {
    DataElement::new(tag, VR::US, PrimitiveValue::from(v))
}

/// Everything about one image that goes into its header.
pub struct Header<'a> {
    pub seed: u64,
    pub site: &'a Site,
    pub view: View,
    pub n: usize,
    pub patient_name: String,
    pub patient_id: String,
    pub other_patient_id: String,
    pub birth_date: String,
    pub sex: &'static str,
    pub age: u32,
    pub address: String,
    pub phone: String,
    pub referring: String,
    pub performing: String,
    pub operator: String,
    pub study_uid: String,
    pub series_uid: String,
    pub sop_uid: String,
    pub accession: String,
    pub study_id: String,
    pub study_date: String,
    pub series_number: u32,
    pub instance_number: u32,
    pub burned_in: bool,
}

/// Write `stored` (rows x columns, `site.bits` stored in 16) as a DICOM file at `path`,
/// recording every PHI string placed in the header into `phi` with `item` as its item.
pub fn write(
    h: &Header,
    stored: &[u16],
    path: &Path,
    item: &str,
    phi: &mut Vec<PhiRecord>,
) -> Result<(), String> {
    let site = h.site;
    let mut ds = InMemDicomObject::new_empty();
    let mut note = |value: &str, location: &str| {
        phi.push(PhiRecord {
            value: value.to_string(),
            location: location.to_string(),
            item: item.to_string(),
        });
    };
    let dx = site.modality == "DX";
    let sop_class = if dx { DX_SOP } else { CR_SOP };
    ds.put(s(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100"));
    ds.put(s(tags::SOP_CLASS_UID, VR::UI, sop_class));
    ds.put(s(tags::SOP_INSTANCE_UID, VR::UI, &h.sop_uid));
    ds.put(s(tags::INSTANCE_CREATION_DATE, VR::DA, &h.study_date));
    // patient
    ds.put(s(tags::PATIENT_NAME, VR::PN, &h.patient_name));
    note(&h.patient_name, "PatientName");
    ds.put(s(tags::PATIENT_ID, VR::LO, &h.patient_id));
    note(&h.patient_id, "PatientID");
    ds.put(s(
        tags::ISSUER_OF_PATIENT_ID,
        VR::LO,
        &format!("{} MRN", site.label),
    ));
    ds.put(s(tags::PATIENT_BIRTH_DATE, VR::DA, &h.birth_date));
    note(&h.birth_date, "PatientBirthDate");
    ds.put(s(tags::PATIENT_SEX, VR::CS, h.sex));
    ds.put(s(tags::PATIENT_AGE, VR::AS, &format!("{:03}Y", h.age)));
    ds.put(s(tags::PATIENT_ADDRESS, VR::LO, &h.address));
    note(&h.address, "PatientAddress");
    ds.put(s(tags::PATIENT_TELEPHONE_NUMBERS, VR::SH, &h.phone));
    note(&h.phone, "PatientTelephoneNumbers");
    let mut other = InMemDicomObject::new_empty();
    other.put(s(tags::PATIENT_ID, VR::LO, &h.other_patient_id));
    other.put(s(tags::TYPE_OF_PATIENT_ID, VR::CS, "TEXT"));
    ds.put(seq(tags::OTHER_PATIENT_I_DS_SEQUENCE, vec![other]));
    note(&h.other_patient_id, "OtherPatientIDsSequence/PatientID");
    // study
    ds.put(s(tags::STUDY_INSTANCE_UID, VR::UI, &h.study_uid));
    ds.put(s(tags::STUDY_DATE, VR::DA, &h.study_date));
    ds.put(s(tags::STUDY_TIME, VR::TM, "101500"));
    ds.put(s(tags::REFERRING_PHYSICIAN_NAME, VR::PN, &h.referring));
    note(&h.referring, "ReferringPhysicianName");
    ds.put(s(tags::STUDY_ID, VR::SH, &h.study_id));
    ds.put(s(tags::ACCESSION_NUMBER, VR::SH, &h.accession));
    note(&h.accession, "AccessionNumber");
    ds.put(s(tags::STUDY_DESCRIPTION, VR::LO, "XR CHEST"));
    // series
    ds.put(s(tags::MODALITY, VR::CS, site.modality));
    ds.put(s(tags::SERIES_INSTANCE_UID, VR::UI, &h.series_uid));
    ds.put(s(tags::SERIES_NUMBER, VR::IS, &h.series_number.to_string()));
    ds.put(s(tags::SERIES_DATE, VR::DA, &h.study_date));
    ds.put(s(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        &format!("CHEST {}", h.view.code()),
    ));
    ds.put(s(tags::PERFORMING_PHYSICIAN_NAME, VR::PN, &h.performing));
    note(&h.performing, "PerformingPhysicianName");
    ds.put(s(tags::OPERATORS_NAME, VR::PN, &h.operator));
    note(&h.operator, "OperatorsName");
    ds.put(s(tags::BODY_PART_EXAMINED, VR::CS, "CHEST"));
    ds.put(s(tags::VIEW_POSITION, VR::CS, h.view.code()));
    let mut req = InMemDicomObject::new_empty();
    req.put(s(tags::REQUESTED_PROCEDURE_ID, VR::SH, &h.accession));
    req.put(s(tags::SCHEDULED_PROCEDURE_STEP_ID, VR::SH, &h.study_id));
    req.put(s(tags::REQUESTED_PROCEDURE_DESCRIPTION, VR::LO, "XR CHEST"));
    ds.put(seq(tags::REQUEST_ATTRIBUTES_SEQUENCE, vec![req]));
    note(
        &h.accession,
        "RequestAttributesSequence/RequestedProcedureID",
    );
    // equipment
    ds.put(s(tags::MANUFACTURER, VR::LO, site.manufacturer));
    ds.put(s(tags::INSTITUTION_NAME, VR::LO, &site.institution));
    note(&site.institution, "InstitutionName");
    ds.put(s(
        tags::INSTITUTION_ADDRESS,
        VR::ST,
        &site.institution_address,
    ));
    note(&site.institution_address, "InstitutionAddress");
    ds.put(s(tags::STATION_NAME, VR::SH, &site.station));
    ds.put(s(tags::MANUFACTURER_MODEL_NAME, VR::LO, site.model));
    ds.put(s(
        tags::DEVICE_SERIAL_NUMBER,
        VR::LO,
        &format!("SN{:06}", 1000 + site.index * 7919),
    ));
    ds.put(s(tags::SOFTWARE_VERSIONS, VR::LO, "radfm-synth 1"));
    // image
    ds.put(s(tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY"));
    ds.put(s(
        tags::INSTANCE_NUMBER,
        VR::IS,
        &h.instance_number.to_string(),
    ));
    let orientation = if h.view == View::Lateral {
        "P\\F"
    } else {
        "L\\F"
    };
    ds.put(s(tags::PATIENT_ORIENTATION, VR::CS, orientation));
    ds.put(s(tags::CONTENT_DATE, VR::DA, &h.study_date));
    ds.put(s(tags::CONTENT_TIME, VR::TM, "101700"));
    ds.put(s(tags::ACQUISITION_DATE, VR::DA, &h.study_date));
    ds.put(s(tags::ACQUISITION_TIME, VR::TM, "101600"));
    ds.put(s(
        tags::BURNED_IN_ANNOTATION,
        VR::CS,
        if h.burned_in { "YES" } else { "NO" },
    ));
    ds.put(s(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"));
    let comment = format!("Exam for {}", h.patient_name.replace('^', " "));
    ds.put(s(tags::IMAGE_COMMENTS, VR::LT, &comment));
    note(&comment, "ImageComments");
    ds.put(s(
        tags::KVP,
        VR::DS,
        if h.view == View::Lateral {
            "110"
        } else {
            "120"
        },
    ));
    let spacing = format!("{:.4}", site.fov_mm / h.n as f32);
    ds.put(s(
        tags::IMAGER_PIXEL_SPACING,
        VR::DS,
        &format!("{spacing}\\{spacing}"),
    ));
    ds.put(s(
        tags::PIXEL_SPACING,
        VR::DS,
        &format!("{spacing}\\{spacing}"),
    ));
    // pixels
    let photometric = if site.monochrome1 {
        "MONOCHROME1"
    } else {
        "MONOCHROME2"
    };
    ds.put(us(tags::SAMPLES_PER_PIXEL, 1));
    ds.put(s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric));
    ds.put(us(tags::ROWS, h.n as u16));
    ds.put(us(tags::COLUMNS, h.n as u16));
    ds.put(us(tags::BITS_ALLOCATED, 16));
    ds.put(us(tags::BITS_STORED, site.bits));
    ds.put(us(tags::HIGH_BIT, site.bits - 1));
    ds.put(us(tags::PIXEL_REPRESENTATION, 0));
    ds.put(s(tags::RESCALE_INTERCEPT, VR::DS, "0"));
    ds.put(s(tags::RESCALE_SLOPE, VR::DS, "1"));
    ds.put(s(tags::RESCALE_TYPE, VR::LO, "US"));
    let max = (1u32 << site.bits) - 1;
    if site.voi_lut {
        // a VOI LUT Sequence: a soft S-curve over the stored range, 4096 entries
        let entries = 4096u32.min(max + 1);
        let step = (max + 1) / entries;
        let lut: Vec<u16> = (0..entries)
            .map(|k| {
                let x = k as f64 / (entries - 1) as f64;
                let y = 1.0 / (1.0 + (-(x - 0.5) * 7.0).exp());
                let (y0, y1) = (1.0 / (1.0 + 3.5f64.exp()), 1.0 / (1.0 + (-3.5f64).exp()));
                (((y - y0) / (y1 - y0)) * 4095.0).round() as u16
            })
            .collect();
        let mut item = InMemDicomObject::new_empty();
        item.put(DataElement::new(
            tags::LUT_DESCRIPTOR,
            VR::US,
            PrimitiveValue::U16([entries as u16, 0, 12].into_iter().collect()),
        ));
        item.put(s(tags::LUT_EXPLANATION, VR::LO, "SOFT S-CURVE"));
        item.put(DataElement::new(
            tags::LUT_DATA,
            VR::US,
            PrimitiveValue::U16(lut.into_iter().collect()),
        ));
        let _ = step;
        ds.put(seq(tags::VOILUT_SEQUENCE, vec![item]));
    } else {
        let (c, w) = ((max as f32 * 0.5).round(), (max as f32 * 0.9).round());
        ds.put(s(tags::WINDOW_CENTER, VR::DS, &format!("{c}")));
        ds.put(s(tags::WINDOW_WIDTH, VR::DS, &format!("{w}")));
        ds.put(s(tags::WINDOW_CENTER_WIDTH_EXPLANATION, VR::LO, "DEFAULT"));
    }
    if dx {
        ds.put(s(
            tags::PRESENTATION_INTENT_TYPE,
            VR::CS,
            "FOR PRESENTATION",
        ));
        ds.put(s(tags::IMAGE_LATERALITY, VR::CS, "U"));
        let mut region = InMemDicomObject::new_empty();
        region.put(s(tags::CODE_VALUE, VR::SH, "51185008"));
        region.put(s(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "SCT"));
        region.put(s(tags::CODE_MEANING, VR::LO, "Chest"));
        ds.put(seq(tags::ANATOMIC_REGION_SEQUENCE, vec![region]));
        ds.put(s(tags::PIXEL_INTENSITY_RELATIONSHIP, VR::CS, "LOG"));
        ds.put(DataElement::new(
            tags::PIXEL_INTENSITY_RELATIONSHIP_SIGN,
            VR::SS,
            PrimitiveValue::from(1i16),
        ));
        ds.put(s(
            tags::PRESENTATION_LUT_SHAPE,
            VR::CS,
            if site.monochrome1 {
                "INVERSE"
            } else {
                "IDENTITY"
            },
        ));
        ds.put(s(tags::DETECTOR_TYPE, VR::CS, "SCINTILLATOR"));
        ds.put(seq(tags::ACQUISITION_CONTEXT_SEQUENCE, vec![]));
        ds.put(s(tags::POSITIONER_TYPE, VR::CS, "NONE"));
        let (code, meaning) = match h.view {
            View::PA => ("399348003", "postero-anterior"),
            View::AP => ("399182003", "antero-posterior"),
            View::Lateral => ("399173006", "left lateral"),
        };
        let mut vc = InMemDicomObject::new_empty();
        vc.put(s(tags::CODE_VALUE, VR::SH, code));
        vc.put(s(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "SCT"));
        vc.put(s(tags::CODE_MEANING, VR::LO, meaning));
        ds.put(seq(tags::VIEW_CODE_SEQUENCE, vec![vc]));
    }
    // private tags with PHI, as vendors leave them
    ds.put(s(Tag(0x0009, 0x0010), VR::LO, "RADFM SYNTH PRIVATE"));
    ds.put(s(Tag(0x0009, 0x1001), VR::LO, &h.patient_name));
    note(&h.patient_name, "private (0009,1001)");
    ds.put(s(Tag(0x0009, 0x1002), VR::LO, &h.patient_id));
    note(&h.patient_id, "private (0009,1002)");
    let bytes: Vec<u8> = stored.iter().flat_map(|v| v.to_le_bytes()).collect();
    ds.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U8(bytes.into()),
    ));
    // every syntax a site uses is native: dicom-rs encodes it as written
    let (Syntax::Deflated | Syntax::ExplicitLittle | Syntax::ImplicitLittle) = site.syntax;
    radfm_dicom::write::write_part10(
        ds,
        site.syntax.uid(),
        sop_class,
        &h.sop_uid,
        "RADFM_SYNTH_1",
        path,
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}
