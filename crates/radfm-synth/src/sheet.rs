//! The contact sheet: for each observation, a row of frontal examples that
//! carry it (No Finding: normal studies), so a person can look at what was drawn.

use std::path::Path;

use crate::plan::Observation;
use crate::{font, SynthError};

/// Thumbnail side in pixels.
pub const THUMB: usize = 128;
const PER_ROW: usize = 6;
const LABEL_W: usize = 260;
const GAP: usize = 4;

/// Write the sheet from (observations present, thumbnail) pairs.
pub fn write(path: &Path, thumbs: &[&(Vec<Observation>, Vec<u8>)]) -> Result<(), SynthError> {
    let w = LABEL_W + PER_ROW * (THUMB + GAP);
    let h = Observation::ALL.len() * (THUMB + GAP) + GAP;
    let mut img = vec![0.12f32; w * h];
    for (row, o) in Observation::ALL.into_iter().enumerate() {
        let y0 = GAP + row * (THUMB + GAP);
        let words: Vec<&str> = o.as_str().split(' ').collect();
        for (k, word) in words.iter().enumerate() {
            font::draw(
                &mut img,
                w,
                8,
                y0 + 40 + k * 22,
                2,
                &word.to_uppercase(),
                1.0,
            );
        }
        // prefer examples where this is the only finding, then any
        let mut picks: Vec<&Vec<u8>> = thumbs
            .iter()
            .filter(|t| t.0 == [o])
            .map(|t| &t.1)
            .take(PER_ROW)
            .collect();
        if picks.len() < PER_ROW {
            picks.extend(
                thumbs
                    .iter()
                    .filter(|t| t.0.contains(&o) && t.0 != [o])
                    .map(|t| &t.1)
                    .take(PER_ROW - picks.len()),
            );
        }
        for (col, t) in picks.iter().enumerate() {
            let x0 = LABEL_W + col * (THUMB + GAP);
            for y in 0..THUMB {
                for x in 0..THUMB {
                    img[(y0 + y) * w + x0 + x] = t[y * THUMB + x] as f32 / 255.0;
                }
            }
        }
    }
    let bytes: Vec<u8> = img
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let io = |source: std::io::Error| SynthError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = radfm_core::AtomicFile::create(path).map_err(io)?;
    {
        let mut enc = png::Encoder::new(&mut f, w as u32, h as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc
            .write_header()
            .map_err(|e| SynthError::Dicom(format!("{}: {e}", path.display())))?;
        wr.write_image_data(&bytes)
            .map_err(|e| SynthError::Dicom(format!("{}: {e}", path.display())))?;
    }
    f.commit().map_err(io)
}
