//! Typed attribute access that also understands values stored with VR UN
//! (as pydicom does, by looking the tag up in the data dictionary).

use dicom_core::dictionary::DataDictionary;
use dicom_core::value::Value;
use dicom_core::{PrimitiveValue, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::InMemDicomObject;

/// A string element, for building data sets.
pub fn str_element(tag: Tag, vr: VR, v: &str) -> dicom_object::mem::InMemElement {
    dicom_core::header::DataElement::new(tag, vr, PrimitiveValue::from(v.to_string()))
}

/// A sequence element of undefined length, for building data sets.
pub fn seq_element(tag: Tag, items: Vec<InMemDicomObject>) -> dicom_object::mem::InMemElement {
    dicom_core::header::DataElement::new(
        tag,
        VR::SQ,
        Value::Sequence(dicom_core::value::DataSetSequence::new(
            items,
            dicom_core::header::Length::UNDEFINED,
        )),
    )
}

fn dictionary_vr(tag: Tag) -> Option<VR> {
    StandardDataDictionary.by_tag(tag).map(|e| e.vr.relaxed())
}

/// The primitive value of `tag`, with a UN value re-read per the dictionary VR.
pub fn primitive(ds: &InMemDicomObject, tag: Tag) -> Option<PrimitiveValue> {
    let e = ds.get(tag)?;
    let p = match e.value() {
        Value::Primitive(p) => p,
        _ => return None,
    };
    if e.vr() != VR::UN {
        return Some(p.clone());
    }
    let bytes = p.to_bytes();
    Some(reinterpret_un(&bytes, dictionary_vr(tag).unwrap_or(VR::UN)))
}

/// Decode the raw bytes of a UN element as `vr` (little endian, as UN always is).
pub fn reinterpret_un(bytes: &[u8], vr: VR) -> PrimitiveValue {
    let chunks = |n: usize| bytes.chunks_exact(n);
    match vr {
        VR::US => PrimitiveValue::U16(
            chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        VR::SS => PrimitiveValue::I16(
            chunks(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        VR::UL => PrimitiveValue::U32(
            chunks(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        VR::SL => PrimitiveValue::I32(
            chunks(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        VR::FL => PrimitiveValue::F32(
            chunks(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        VR::FD => PrimitiveValue::F64(
            chunks(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("chunk of 8")))
                .collect(),
        ),
        VR::OB | VR::OW | VR::UN => PrimitiveValue::U8(bytes.into()),
        _ => {
            let s = String::from_utf8_lossy(bytes);
            let parts: Vec<String> = s
                .trim_end_matches(['\0', ' '])
                .split('\\')
                .map(|p| p.to_string())
                .collect();
            PrimitiveValue::Strs(parts.into())
        }
    }
}

/// Trimmed string value; `None` when absent or empty.
pub fn string(ds: &InMemDicomObject, tag: Tag) -> Option<String> {
    let p = primitive(ds, tag)?;
    let s = p.to_str();
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

/// All numeric values (DS/IS strings or binary numbers).
pub fn floats(ds: &InMemDicomObject, tag: Tag) -> Vec<f64> {
    let Some(p) = primitive(ds, tag) else {
        return Vec::new();
    };
    match &p {
        PrimitiveValue::Strs(v) => v
            .iter()
            .filter_map(|s| {
                s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                    .parse::<f64>()
                    .ok()
            })
            .collect(),
        PrimitiveValue::Str(s) => s
            .split('\\')
            .filter_map(|s| {
                s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                    .parse::<f64>()
                    .ok()
            })
            .collect(),
        _ => p.to_multi_float64().unwrap_or_default(),
    }
}

pub fn float(ds: &InMemDicomObject, tag: Tag) -> Option<f64> {
    floats(ds, tag).first().copied().filter(|v| v.is_finite())
}

/// First value as an unsigned integer (US/UL/IS/DS, or UN per dictionary).
pub fn uint(ds: &InMemDicomObject, tag: Tag) -> Option<u32> {
    let p = primitive(ds, tag)?;
    match &p {
        PrimitiveValue::U16(v) => v.first().map(|&x| x as u32),
        PrimitiveValue::U32(v) => v.first().copied(),
        PrimitiveValue::I16(v) => v.first().and_then(|&x| u32::try_from(x).ok()),
        PrimitiveValue::I32(v) => v.first().and_then(|&x| u32::try_from(x).ok()),
        _ => floats(ds, tag)
            .first()
            .filter(|v| **v >= 0.0 && **v <= u32::MAX as f64)
            .map(|v| *v as u32),
    }
}

/// Items of a sequence attribute (empty when absent or not a sequence).
pub fn items(ds: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    ds.get(tag).and_then(|e| e.value().items()).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_dictionary_std::tags;
    use dicom_object::mem::InMemElement;

    #[test]
    fn un_rescale_is_read_as_ds_text() {
        let mut ds = InMemDicomObject::new_empty();
        ds.put(InMemElement::new(
            tags::RESCALE_SLOPE,
            VR::UN,
            PrimitiveValue::U8(b"2.5 ".to_vec().into()),
        ));
        ds.put(InMemElement::new(
            tags::ROWS,
            VR::UN,
            PrimitiveValue::U8(vec![0x00, 0x02].into()),
        ));
        assert_eq!(float(&ds, tags::RESCALE_SLOPE), Some(2.5));
        assert_eq!(uint(&ds, tags::ROWS), Some(512));
    }
}
