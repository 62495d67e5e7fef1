//! The DICOM grayscale pipeline after decoding (PS3.3 C.11): the modality
//! stage (RescaleSlope/RescaleIntercept or the Modality LUT Sequence) and the
//! display stage (VOI LUT Sequence or window with VoiLutFunction LINEAR,
//! LINEAR_EXACT or SIGMOID, then MONOCHROME1 inversion), ending in [0, 1].
//!
//! Attributes are looked up at the top level first and then in the shared and
//! first per-frame functional groups of enhanced multi-frame objects.

use dicom_core::value::Value;
use dicom_core::{PrimitiveValue, Tag};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde::Serialize;

use crate::attrs;
use crate::pixels::{PixelArray, PixelModule, Samples};

/// A lookup table from a LUT Descriptor and LUT Data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lut {
    pub first_mapped: i64,
    pub bits: u16,
    pub data: Vec<f64>,
}

impl Lut {
    fn lookup(&self, x: f64) -> f64 {
        let i = (x.round() as i64 - self.first_mapped).clamp(0, self.data.len() as i64 - 1);
        self.data[i as usize]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VoiLutFunction {
    Linear,
    LinearExact,
    Sigmoid,
}

/// The resolved modality and VOI parameters of an image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GrayscalePipeline {
    pub rescale_slope: f64,
    pub rescale_intercept: f64,
    pub modality_lut: Option<Lut>,
    pub voi_lut: Option<Lut>,
    pub window_center: Option<f64>,
    pub window_width: Option<f64>,
    pub voi_lut_function: VoiLutFunction,
    pub monochrome1: bool,
    pub color: bool,
    pub bits_stored: u16,
    /// PALETTE COLOR lookup tables (red, green, blue), already scaled to [0, 1].
    #[serde(skip)]
    pub palette: Option<Palette>,
}

/// The Palette Color Lookup Tables of a PALETTE COLOR image.
#[derive(Debug, Clone, PartialEq)]
pub struct Palette {
    pub first_mapped: i64,
    /// one `[r, g, b]` per entry, in [0, 1]
    pub rgb: Vec<[f32; 3]>,
}

impl Palette {
    fn from_dataset(ds: &InMemDicomObject) -> Option<Palette> {
        let descs = [
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        ];
        let datas = [
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        ];
        let mut chans: Vec<Vec<f32>> = Vec::with_capacity(3);
        let mut first = 0i64;
        for (d, t) in descs.iter().zip(datas) {
            let desc = attrs::floats(ds, *d);
            if desc.len() < 3 {
                return None; // e.g. segmented palettes only: not supported
            }
            let n = if desc[0] == 0.0 {
                65536
            } else {
                desc[0] as usize
            };
            first = desc[1] as i64;
            let bits = desc[2] as u32;
            let Value::Primitive(p) = ds.get(t)?.value() else {
                return None;
            };
            let bytes = p.to_bytes();
            let vals: Vec<f64> = if bits <= 8 && bytes.len() < 2 * n {
                bytes.iter().map(|&b| b as f64).collect()
            } else {
                bytes
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]) as f64)
                    .collect()
            };
            let max = ((1u64 << bits.clamp(1, 16)) - 1) as f64;
            chans.push(
                vals.iter()
                    .take(n)
                    .map(|v| (v / max).clamp(0.0, 1.0) as f32)
                    .collect(),
            );
        }
        let len = chans.iter().map(Vec::len).min()?;
        if len == 0 {
            return None;
        }
        Some(Palette {
            first_mapped: first,
            rgb: (0..len)
                .map(|i| [chans[0][i], chans[1][i], chans[2][i]])
                .collect(),
        })
    }

    fn lookup(&self, x: i64) -> [f32; 3] {
        let i = (x - self.first_mapped).clamp(0, self.rgb.len() as i64 - 1);
        self.rgb[i as usize]
    }
}

const FUNCTIONAL_GROUPS: [Tag; 2] = [
    tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
    tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
];

/// Find the data set that holds `tag`: the top level, or a functional group macro.
fn holder(ds: &InMemDicomObject, tag: Tag, macro_seq: Tag) -> Option<&InMemDicomObject> {
    if ds.get(tag).is_some() {
        return Some(ds);
    }
    for fg in FUNCTIONAL_GROUPS {
        if let Some(first) = attrs::items(ds, fg).first() {
            if let Some(m) = attrs::items(first, macro_seq).first() {
                if m.get(tag).is_some() {
                    return Some(m);
                }
            }
        }
    }
    None
}

fn lut_from_item(item: &InMemDicomObject, signed_hint: bool) -> Option<Lut> {
    let desc: Vec<f64> = attrs::floats(item, tags::LUT_DESCRIPTOR);
    if desc.len() < 3 {
        return None;
    }
    let n = if desc[0] == 0.0 {
        65536
    } else {
        desc[0] as usize
    };
    let mut first = desc[1] as i64;
    if signed_hint && first > 32767 {
        first -= 65536; // descriptor stored as US but meant as SS
    }
    let bits = desc[2] as u16;
    let elem = item.get(tags::LUT_DATA)?;
    let Value::Primitive(p) = elem.value() else {
        return None;
    };
    let data: Vec<f64> = match p {
        PrimitiveValue::U16(v) => v.iter().map(|&x| x as f64).collect(),
        PrimitiveValue::I16(v) => v.iter().map(|&x| x as f64).collect(),
        PrimitiveValue::U8(b) if bits > 8 => b
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as f64)
            .collect(),
        PrimitiveValue::U8(b) => b.iter().map(|&x| x as f64).collect(),
        other => other.to_multi_float64().ok()?,
    };
    if data.is_empty() {
        return None;
    }
    let mut data = data;
    data.truncate(n.max(1));
    Some(Lut {
        first_mapped: first,
        bits,
        data,
    })
}

impl GrayscalePipeline {
    pub fn from_dataset(ds: &InMemDicomObject, m: &PixelModule) -> Self {
        let rs = holder(
            ds,
            tags::RESCALE_SLOPE,
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
        );
        let rescale_slope = rs
            .and_then(|h| attrs::float(h, tags::RESCALE_SLOPE))
            .filter(|s| *s != 0.0)
            .unwrap_or(1.0);
        let rescale_intercept = holder(
            ds,
            tags::RESCALE_INTERCEPT,
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
        )
        .and_then(|h| attrs::float(h, tags::RESCALE_INTERCEPT))
        .unwrap_or(0.0);
        let signed = m.pixel_representation == 1;
        let modality_lut = if rs.is_none() {
            attrs::items(ds, tags::MODALITY_LUT_SEQUENCE)
                .first()
                .and_then(|i| lut_from_item(i, signed))
        } else {
            None
        };
        let voi_lut = attrs::items(ds, tags::VOILUT_SEQUENCE)
            .first()
            .and_then(|i| lut_from_item(i, signed));
        let wh = holder(ds, tags::WINDOW_CENTER, tags::FRAME_VOILUT_SEQUENCE);
        let window_center = wh.and_then(|h| attrs::float(h, tags::WINDOW_CENTER));
        let window_width = wh
            .and_then(|h| attrs::float(h, tags::WINDOW_WIDTH))
            .filter(|w| *w > 0.0);
        let f = wh
            .and_then(|h| attrs::string(h, tags::VOILUT_FUNCTION))
            .unwrap_or_default();
        let voi_lut_function = match f.as_str() {
            "LINEAR_EXACT" => VoiLutFunction::LinearExact,
            "SIGMOID" => VoiLutFunction::Sigmoid,
            _ => VoiLutFunction::Linear,
        };
        GrayscalePipeline {
            rescale_slope,
            rescale_intercept,
            modality_lut,
            voi_lut,
            window_center,
            window_width,
            voi_lut_function,
            monochrome1: m.photometric_interpretation == "MONOCHROME1",
            color: m.samples_per_pixel > 1 || m.photometric_interpretation == "PALETTE COLOR",
            bits_stored: m.bits_stored,
            palette: (m.photometric_interpretation == "PALETTE COLOR" && m.samples_per_pixel == 1)
                .then(|| Palette::from_dataset(ds))
                .flatten(),
        }
    }

    /// Modality stage: stored values to modality units (e.g. HU), float32.
    pub fn modality(&self, arr: &PixelArray) -> Vec<f32> {
        let n = arr.data.len();
        if self.color {
            return arr.data.to_f32();
        }
        if let Some(lut) = &self.modality_lut {
            return (0..n)
                .map(|i| lut.lookup(arr.data.get_f64(i)) as f32)
                .collect();
        }
        let (s, b) = (self.rescale_slope, self.rescale_intercept);
        if s == 1.0 && b == 0.0 {
            return arr.data.to_f32();
        }
        (0..n)
            .map(|i| (arr.data.get_f64(i) * s + b) as f32)
            .collect()
    }

    /// Modality value of one stored value.
    pub fn modality_value(&self, x: f64) -> f64 {
        if self.color {
            x
        } else if let Some(lut) = &self.modality_lut {
            lut.lookup(x)
        } else {
            x * self.rescale_slope + self.rescale_intercept
        }
    }

    /// Display value in [0, 1] of one modality value; `range` is the modality
    /// range of the whole image, used when there is neither VOI LUT nor window.
    pub fn display_value(&self, x: f64, range: (f64, f64)) -> f64 {
        if self.color {
            let max = ((1u64 << self.bits_stored.min(32)) - 1) as f64;
            return (x / max).clamp(0.0, 1.0);
        }
        let y = if let Some(lut) = &self.voi_lut {
            let max = lut
                .data
                .iter()
                .cloned()
                .fold(0.0f64, f64::max)
                .max(((1u64 << lut.bits.clamp(1, 16)) - 1) as f64);
            lut.lookup(x) / max
        } else if let (Some(c), Some(w)) = (self.window_center, self.window_width) {
            window(x, c, w, self.voi_lut_function)
        } else {
            let span = range.1 - range.0;
            if span > 0.0 && span.is_finite() {
                (x - range.0) / span
            } else {
                0.0
            }
        };
        if self.monochrome1 {
            1.0 - y
        } else {
            y
        }
    }

    /// Modality range over stored values `lo..=hi` (for the full-range display fallback).
    fn modality_range(&self, lo: i64, hi: i64) -> (f64, f64) {
        if self.modality_lut.is_some() {
            // not necessarily monotonic: scan the table over the stored range
            (lo..=hi).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                let m = self.modality_value(x as f64);
                (a.min(m), b.max(m))
            })
        } else {
            let (a, b) = (
                self.modality_value(lo as f64),
                self.modality_value(hi as f64),
            );
            (a.min(b), a.max(b))
        }
    }

    /// Build the stored-value -> display-value mapping for this image: a lookup
    /// table over the stored range when it is small (always for <= 16-bit data).
    pub fn display_map(&self, arr: &PixelArray) -> DisplayMap {
        let n = arr.data.len();
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for i in 0..n {
            let v = arr.data.get_i64(i);
            lo = lo.min(v);
            hi = hi.max(v);
        }
        let needs_range =
            self.voi_lut.is_none() && (self.window_center.is_none() || self.window_width.is_none());
        let range = if needs_range && n > 0 {
            self.modality_range(lo, hi.min(lo + (1 << 24)))
        } else {
            (0.0, 0.0)
        };
        let table = if n > 0 && hi - lo < (1 << 20) {
            (lo..=hi)
                .map(|x| self.display_value(self.modality_value(x as f64), range) as f32)
                .collect()
        } else {
            Vec::new()
        };
        DisplayMap {
            base: lo,
            table,
            range,
        }
    }

    /// Display values of samples `[start, end)` of `arr`, appended to `out`.
    pub fn display_into(
        &self,
        arr: &PixelArray,
        map: &DisplayMap,
        start: usize,
        end: usize,
        out: &mut Vec<f32>,
    ) {
        if let Some(p) = &self.palette {
            out.reserve(3 * (end - start));
            for i in start..end {
                out.extend_from_slice(&p.lookup(arr.data.get_i64(i)));
            }
            return;
        }
        out.reserve(end - start);
        if !map.table.is_empty() {
            let t = &map.table;
            let b = map.base;
            macro_rules! go {
                ($v:expr) => {
                    out.extend($v[start..end].iter().map(|&x| t[(x as i64 - b) as usize]))
                };
            }
            match &arr.data {
                Samples::U8(v) => go!(v),
                Samples::I8(v) => go!(v),
                Samples::U16(v) => go!(v),
                Samples::I16(v) => go!(v),
                Samples::U32(v) => go!(v),
                Samples::I32(v) => go!(v),
            }
        } else {
            out.extend((start..end).map(|i| {
                self.display_value(self.modality_value(arr.data.get_f64(i)), map.range) as f32
            }));
        }
    }

    /// Channels of the display stage: 3 for PALETTE COLOR (applied), else the samples.
    pub fn display_channels(&self, samples: usize) -> usize {
        if self.palette.is_some() {
            3
        } else {
            samples
        }
    }

    /// Display stage of a whole image: [0, 1], bright = dense tissue after
    /// MONOCHROME1 inversion.
    pub fn display(&self, arr: &PixelArray) -> Vec<f32> {
        let map = self.display_map(arr);
        let mut out = Vec::new();
        self.display_into(arr, &map, 0, arr.data.len(), &mut out);
        out
    }
}

/// Stored value -> display value, precomputed for one image.
#[derive(Debug, Clone)]
pub struct DisplayMap {
    base: i64,
    table: Vec<f32>,
    range: (f64, f64),
}

/// PS3.3 C.11.2.1.2 windowing to [0, 1].
pub fn window(x: f64, c: f64, w: f64, f: VoiLutFunction) -> f64 {
    match f {
        VoiLutFunction::Linear => {
            if w < 1.0 {
                return if x <= c - 0.5 { 0.0 } else { 1.0 };
            }
            let lo = c - 0.5 - (w - 1.0) / 2.0;
            let hi = c - 0.5 + (w - 1.0) / 2.0;
            if x <= lo {
                0.0
            } else if x > hi {
                1.0
            } else {
                (x - (c - 0.5)) / (w - 1.0) + 0.5
            }
        }
        VoiLutFunction::LinearExact => {
            if x <= c - w / 2.0 {
                0.0
            } else if x > c + w / 2.0 {
                1.0
            } else {
                (x - c) / w + 0.5
            }
        }
        VoiLutFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - c) / w).exp()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows: (x, center, width, function, expected), from PS3.3 C.11.2.1.2 formulas.
    #[test]
    fn window_functions_follow_the_standard() {
        let cases = [
            (40.0, 40.0, 400.0, VoiLutFunction::Linear, 0.5 + 0.5 / 399.0),
            (-200.0, 40.0, 400.0, VoiLutFunction::Linear, 0.0),
            (300.0, 40.0, 400.0, VoiLutFunction::Linear, 1.0),
            (140.0, 40.0, 400.0, VoiLutFunction::LinearExact, 0.75),
            (-160.0, 40.0, 400.0, VoiLutFunction::LinearExact, 0.0),
            (40.0, 40.0, 400.0, VoiLutFunction::Sigmoid, 0.5),
            (
                140.0,
                40.0,
                400.0,
                VoiLutFunction::Sigmoid,
                1.0 / (1.0 + (-1.0f64).exp()),
            ),
        ];
        for (x, c, w, f, want) in cases {
            let got = window(x, c, w, f);
            assert!((got - want).abs() < 1e-9, "{f:?} x={x}: {got} != {want}");
        }
    }
}
