//! The essentials of a DICOM file, for `radfm dicom info` and the catalog.

use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use serde::Serialize;

use crate::attrs::{float, floats, items, string, uint};
use crate::read::DicomFile;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DicomInfo {
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub patient_sex: Option<String>,
    pub patient_age: Option<String>,
    pub patient_birth_date: Option<String>,
    pub study_instance_uid: Option<String>,
    pub study_date: Option<String>,
    pub study_description: Option<String>,
    pub accession_number: Option<String>,
    pub series_instance_uid: Option<String>,
    pub series_number: Option<u32>,
    pub series_description: Option<String>,
    pub sop_class_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub instance_number: Option<u32>,
    pub modality: Option<String>,
    pub manufacturer: Option<String>,
    pub institution_name: Option<String>,
    pub body_part_examined: Option<String>,
    pub transfer_syntax_uid: String,
    pub transfer_syntax: String,
    pub photometric_interpretation: Option<String>,
    pub rows: Option<u32>,
    pub columns: Option<u32>,
    pub samples_per_pixel: Option<u32>,
    pub bits_allocated: Option<u32>,
    pub bits_stored: Option<u32>,
    pub pixel_representation: Option<u32>,
    pub number_of_frames: u32,
    /// Row and column spacing in mm: PixelSpacing, else ImagerPixelSpacing.
    pub pixel_spacing: Option<[f64; 2]>,
    pub slice_thickness: Option<f64>,
    pub image_position_patient: Option<[f64; 3]>,
    pub image_orientation_patient: Option<[f64; 6]>,
    pub window_center: Option<f64>,
    pub window_width: Option<f64>,
    pub view_position: Option<String>,
    pub laterality: Option<String>,
    pub burned_in_annotation: Option<String>,
    pub has_pixel_data: bool,
    pub notes: Vec<String>,
}

fn arr<const N: usize>(v: Vec<f64>) -> Option<[f64; N]> {
    v.get(..N).and_then(|s| s.try_into().ok())
}

impl DicomInfo {
    pub fn from_file(f: &DicomFile) -> Self {
        let ds = &f.dataset;
        let mut i = Self::from_dataset(ds);
        i.transfer_syntax_uid = f.ts.clone();
        i.transfer_syntax = TransferSyntaxRegistry
            .get(&f.ts)
            .map(|t| t.name().to_string())
            .unwrap_or_else(|| "unknown".into());
        if i.sop_class_uid.is_none() {
            i.sop_class_uid = f.meta_sop_class.clone();
        }
        i.notes = f.notes.clone();
        i
    }

    pub fn from_dataset(ds: &InMemDicomObject) -> Self {
        let s = |t| string(ds, t);
        let spacing = arr::<2>(floats(ds, tags::PIXEL_SPACING))
            .or_else(|| arr::<2>(floats(ds, tags::IMAGER_PIXEL_SPACING)))
            .or_else(|| {
                // enhanced objects: Shared Functional Groups > Pixel Measures
                items(ds, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
                    .first()
                    .and_then(|g| items(g, tags::PIXEL_MEASURES_SEQUENCE).first())
                    .and_then(|m| arr::<2>(floats(m, tags::PIXEL_SPACING)))
            });
        DicomInfo {
            patient_id: s(tags::PATIENT_ID),
            patient_name: s(tags::PATIENT_NAME),
            patient_sex: s(tags::PATIENT_SEX),
            patient_age: s(tags::PATIENT_AGE),
            patient_birth_date: s(tags::PATIENT_BIRTH_DATE),
            study_instance_uid: s(tags::STUDY_INSTANCE_UID),
            study_date: s(tags::STUDY_DATE),
            study_description: s(tags::STUDY_DESCRIPTION),
            accession_number: s(tags::ACCESSION_NUMBER),
            series_instance_uid: s(tags::SERIES_INSTANCE_UID),
            series_number: uint(ds, tags::SERIES_NUMBER),
            series_description: s(tags::SERIES_DESCRIPTION),
            sop_class_uid: s(tags::SOP_CLASS_UID),
            sop_instance_uid: s(tags::SOP_INSTANCE_UID),
            instance_number: uint(ds, tags::INSTANCE_NUMBER),
            modality: s(tags::MODALITY),
            manufacturer: s(tags::MANUFACTURER),
            institution_name: s(tags::INSTITUTION_NAME),
            body_part_examined: s(tags::BODY_PART_EXAMINED),
            transfer_syntax_uid: String::new(),
            transfer_syntax: String::new(),
            photometric_interpretation: s(tags::PHOTOMETRIC_INTERPRETATION),
            rows: uint(ds, tags::ROWS),
            columns: uint(ds, tags::COLUMNS),
            samples_per_pixel: uint(ds, tags::SAMPLES_PER_PIXEL),
            bits_allocated: uint(ds, tags::BITS_ALLOCATED),
            bits_stored: uint(ds, tags::BITS_STORED),
            pixel_representation: uint(ds, tags::PIXEL_REPRESENTATION),
            number_of_frames: uint(ds, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1),
            pixel_spacing: spacing,
            slice_thickness: float(ds, tags::SLICE_THICKNESS),
            image_position_patient: arr::<3>(floats(ds, tags::IMAGE_POSITION_PATIENT)),
            image_orientation_patient: arr::<6>(floats(ds, tags::IMAGE_ORIENTATION_PATIENT)),
            window_center: float(ds, tags::WINDOW_CENTER),
            window_width: float(ds, tags::WINDOW_WIDTH),
            view_position: s(tags::VIEW_POSITION),
            laterality: s(tags::IMAGE_LATERALITY).or_else(|| s(tags::LATERALITY)),
            burned_in_annotation: s(tags::BURNED_IN_ANNOTATION),
            has_pixel_data: ds.get(tags::PIXEL_DATA).is_some(),
            notes: Vec::new(),
        }
    }

    /// Human-readable lines, `Key: value`.
    pub fn to_text(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        let mut out = String::new();
        if let Some(map) = v.as_object() {
            for (k, val) in map {
                let shown = match val {
                    serde_json::Value::Null => continue,
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Array(a) if a.is_empty() => continue,
                    other => other.to_string(),
                };
                out.push_str(&format!("{k:<28}{shown}\n"));
            }
        }
        out
    }
}
