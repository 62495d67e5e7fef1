//! Reading an SR's content tree back: every content item with its
//! relationship, value type, concept name and value.

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::Code;
use crate::attrs::{float, items, string};
use crate::DicomError;

/// A content item's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Container {
        continuity: String,
    },
    Code(Code),
    Text(String),
    UidRef(String),
    /// the exact value where the item carries a Floating Point Value, else the decimal string's
    Num {
        value: f64,
        text: String,
        unit: Code,
    },
    Image {
        class: String,
        instance: String,
    },
    /// a value type this reader does not interpret
    Other,
}

/// One content item and its children.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub relationship: Option<String>,
    pub value_type: String,
    pub concept: Option<Code>,
    pub value: Value,
    pub children: Vec<Item>,
}

impl Item {
    /// The children whose concept name has this meaning.
    pub fn children_named<'a>(&'a self, meaning: &'a str) -> impl Iterator<Item = &'a Item> + 'a {
        self.children
            .iter()
            .filter(move |c| c.concept.as_ref().is_some_and(|k| k.meaning == meaning))
    }

    /// The first child whose concept name has this meaning.
    pub fn child(&self, meaning: &str) -> Option<&Item> {
        self.children
            .iter()
            .find(|c| c.concept.as_ref().is_some_and(|k| k.meaning == meaning))
    }

    /// Every item of the tree, depth first, this one included.
    pub fn walk(&self) -> Vec<&Item> {
        let mut out = vec![self];
        for c in &self.children {
            out.extend(c.walk());
        }
        out
    }
}

fn bad(reason: String) -> DicomError {
    DicomError::Structure { reason }
}

/// The code of a code sequence's first item.
pub fn code_of(ds: &InMemDicomObject, seq: dicom_core::Tag) -> Option<Code> {
    let c = items(ds, seq).first()?;
    let value = string(c, tags::CODE_VALUE).or_else(|| string(c, tags::LONG_CODE_VALUE))?;
    Some(Code {
        value,
        scheme: string(c, tags::CODING_SCHEME_DESIGNATOR)?,
        meaning: string(c, tags::CODE_MEANING)?,
    })
}

/// The content tree of an SR data set (its root is the document's root item).
pub fn content(ds: &InMemDicomObject) -> Result<Item, DicomError> {
    item(ds, "root")
}

fn item(ds: &InMemDicomObject, at: &str) -> Result<Item, DicomError> {
    let vt = string(ds, tags::VALUE_TYPE).ok_or_else(|| bad(format!("{at}: no Value Type")))?;
    let need = |what: &str| bad(format!("{at}: a {vt} item without {what}"));
    let value = match vt.as_str() {
        "CONTAINER" => Value::Container {
            continuity: string(ds, tags::CONTINUITY_OF_CONTENT)
                .ok_or_else(|| need("Continuity Of Content"))?,
        },
        "CODE" => Value::Code(
            code_of(ds, tags::CONCEPT_CODE_SEQUENCE).ok_or_else(|| need("a Concept Code"))?,
        ),
        "TEXT" => Value::Text(string(ds, tags::TEXT_VALUE).ok_or_else(|| need("a Text Value"))?),
        "UIDREF" => Value::UidRef(string(ds, tags::UID).ok_or_else(|| need("a UID"))?),
        "NUM" => {
            let mv = items(ds, tags::MEASURED_VALUE_SEQUENCE)
                .first()
                .ok_or_else(|| need("a Measured Value"))?;
            let text = string(mv, tags::NUMERIC_VALUE).ok_or_else(|| need("a Numeric Value"))?;
            let value = match float(mv, tags::FLOATING_POINT_VALUE) {
                Some(v) => v,
                None => text
                    .parse()
                    .map_err(|_| bad(format!("{at}: Numeric Value {text:?} is not a number")))?,
            };
            Value::Num {
                value,
                text,
                unit: code_of(mv, tags::MEASUREMENT_UNITS_CODE_SEQUENCE)
                    .ok_or_else(|| need("units"))?,
            }
        }
        "IMAGE" => {
            let r = items(ds, tags::REFERENCED_SOP_SEQUENCE)
                .first()
                .ok_or_else(|| need("a Referenced SOP"))?;
            Value::Image {
                class: string(r, tags::REFERENCED_SOP_CLASS_UID)
                    .ok_or_else(|| need("a Referenced SOP Class UID"))?,
                instance: string(r, tags::REFERENCED_SOP_INSTANCE_UID)
                    .ok_or_else(|| need("a Referenced SOP Instance UID"))?,
            }
        }
        _ => Value::Other,
    };
    let children = items(ds, tags::CONTENT_SEQUENCE)
        .iter()
        .enumerate()
        .map(|(k, c)| item(c, &format!("{at}.{}", k + 1)))
        .collect::<Result<_, _>>()?;
    Ok(Item {
        relationship: string(ds, tags::RELATIONSHIP_TYPE),
        value_type: vt,
        concept: code_of(ds, tags::CONCEPT_NAME_CODE_SEQUENCE),
        value,
        children,
    })
}
