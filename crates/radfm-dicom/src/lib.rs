//! radfm-dicom: reading DICOM files robustly, decoding pixel data to the
//! values pydicom gives, the modality and display stages, anti-aliased
//! resampling, and PS3.15 Annex E de-identification.
//!
//! ```no_run
//! let file = radfm_dicom::read::open(std::path::Path::new("image.dcm"))?;
//! let img = radfm_dicom::decode(&file, radfm_dicom::Stage::Display)?;
//! assert_eq!(img.shape.len(), 4); // [frames, rows, columns, samples]
//! # Ok::<(), radfm_dicom::DicomError>(())
//! ```

pub mod attrs;
pub mod deid;
pub mod error;
pub mod info;
mod jpeg;
mod jpeg_sequential;
pub mod pixels;
pub mod read;
pub mod resample;
mod rle;
pub mod sr;
pub mod text_detect;
pub mod transform;
pub mod write;

pub use error::{DicomError, Result};
pub use info::DicomInfo;
pub use pixels::{PixelArray, PixelModule, Samples};
pub use read::DicomFile;
pub use transform::GrayscalePipeline;

/// Where in the grayscale pipeline to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Stored values, integer dtype, colour converted to RGB.
    Raw,
    /// float32 after Rescale Slope/Intercept or the Modality LUT.
    Modality,
    /// float32 in [0, 1] after VOI LUT or window and MONOCHROME1 inversion;
    /// PALETTE COLOR images become RGB.
    Display,
}

impl std::str::FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "raw" => Ok(Stage::Raw),
            "modality" => Ok(Stage::Modality),
            "display" => Ok(Stage::Display),
            other => Err(format!("unknown stage '{other}' (raw, modality, display)")),
        }
    }
}

/// A decoded image at some stage: shape `[frames, rows, columns, samples]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub shape: [usize; 4],
    pub values: DecodedValues,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DecodedValues {
    Raw(Samples),
    Float(Vec<f32>),
}

impl Decoded {
    /// Encode as a NumPy `.npy` file.
    pub fn to_npy(&self) -> Vec<u8> {
        match &self.values {
            DecodedValues::Raw(s) => {
                radfm_core::npy::to_bytes(s.dtype(), &self.shape, &s.to_le_bytes())
            }
            DecodedValues::Float(v) => radfm_core::npy::f32_bytes(&self.shape, v),
        }
    }
}

/// Decode a parsed file to the given stage.
pub fn decode(file: &DicomFile, stage: Stage) -> Result<Decoded> {
    let arr = pixels::decode_raw(file)?;
    let shape = arr.shape();
    if stage == Stage::Raw {
        return Ok(Decoded {
            shape,
            values: DecodedValues::Raw(arr.data),
        });
    }
    let m = PixelModule::from_dataset(&file.dataset)?;
    let p = GrayscalePipeline::from_dataset(&file.dataset, &m);
    let (values, shape) = match stage {
        Stage::Modality => (p.modality(&arr), shape),
        _ => {
            let mut s = shape;
            s[3] = p.display_channels(s[3]);
            (p.display(&arr), s)
        }
    };
    Ok(Decoded {
        shape,
        values: DecodedValues::Float(values),
    })
}
