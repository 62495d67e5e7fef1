//! Pixel data to stored values (the "raw" stage), matching pydicom's
//! `Dataset.pixel_array`: native and encapsulated transfer syntaxes,
//! 1/8/16/32-bit samples, signed data with sign extension from BitsStored,
//! planar configuration, YBR_FULL and YBR_FULL_422 to RGB.
//!
//! The output layout is always `[frames, rows, columns, samples]`.

use std::borrow::Cow;

use dicom_core::value::Value;
use dicom_core::PrimitiveValue;
use dicom_dictionary_std::tags;
use dicom_encoding::adapters::{PixelDataObject, RawPixelData};
use dicom_encoding::transfer_syntax::Codec;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use rayon::prelude::*;

use crate::attrs;
use crate::error::{guard, DicomError, Result};
use crate::read::{DicomFile, EXPLICIT_VR_BE};

/// Decoded stored values, one variant per NumPy dtype we emit.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
}

impl Samples {
    pub fn len(&self) -> usize {
        match self {
            Samples::U8(v) => v.len(),
            Samples::I8(v) => v.len(),
            Samples::U16(v) => v.len(),
            Samples::I16(v) => v.len(),
            Samples::U32(v) => v.len(),
            Samples::I32(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// NumPy dtype string (little endian).
    pub fn dtype(&self) -> &'static str {
        match self {
            Samples::U8(_) => "|u1",
            Samples::I8(_) => "|i1",
            Samples::U16(_) => "<u2",
            Samples::I16(_) => "<i2",
            Samples::U32(_) => "<u4",
            Samples::I32(_) => "<i4",
        }
    }
    /// Value at flat index `i` as f64.
    pub fn get_f64(&self, i: usize) -> f64 {
        match self {
            Samples::U8(v) => v[i] as f64,
            Samples::I8(v) => v[i] as f64,
            Samples::U16(v) => v[i] as f64,
            Samples::I16(v) => v[i] as f64,
            Samples::U32(v) => v[i] as f64,
            Samples::I32(v) => v[i] as f64,
        }
    }
    /// All values converted to f32.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Samples::U8(v) => v.iter().map(|&x| x as f32).collect(),
            Samples::I8(v) => v.iter().map(|&x| x as f32).collect(),
            Samples::U16(v) => v.iter().map(|&x| x as f32).collect(),
            Samples::I16(v) => v.iter().map(|&x| x as f32).collect(),
            Samples::U32(v) => v.iter().map(|&x| x as f32).collect(),
            Samples::I32(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    /// Values as signed 64-bit integers (for LUT indexing).
    pub fn get_i64(&self, i: usize) -> i64 {
        match self {
            Samples::U8(v) => v[i] as i64,
            Samples::I8(v) => v[i] as i64,
            Samples::U16(v) => v[i] as i64,
            Samples::I16(v) => v[i] as i64,
            Samples::U32(v) => v[i] as i64,
            Samples::I32(v) => v[i] as i64,
        }
    }
    /// Raw little-endian bytes of the values.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            Samples::U8(v) => v.clone(),
            Samples::I8(v) => v.iter().map(|&x| x as u8).collect(),
            Samples::U16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Samples::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Samples::U32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Samples::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// A stack of frames of stored values, `[frames, rows, columns, samples]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelArray {
    pub frames: usize,
    pub rows: usize,
    pub columns: usize,
    pub samples: usize,
    pub data: Samples,
}

impl PixelArray {
    pub fn shape(&self) -> [usize; 4] {
        [self.frames, self.rows, self.columns, self.samples]
    }
}

/// The Image Pixel module attributes that drive decoding.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PixelModule {
    pub rows: usize,
    pub columns: usize,
    pub samples_per_pixel: usize,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub pixel_representation: u16,
    pub photometric_interpretation: String,
    pub planar_configuration: u16,
    pub number_of_frames: usize,
}

/// Upper bound on one decoded image: guards against absurd Rows x Columns x Frames.
const MAX_SAMPLES: usize = 1 << 31;

impl PixelModule {
    pub fn from_dataset(ds: &InMemDicomObject) -> Result<Self> {
        let req = |tag, kw: &'static str| {
            attrs::uint(ds, tag).ok_or_else(|| DicomError::attr(kw, "absent or not a number"))
        };
        let rows = req(tags::ROWS, "Rows")? as usize;
        let columns = req(tags::COLUMNS, "Columns")? as usize;
        let bits_allocated = req(tags::BITS_ALLOCATED, "BitsAllocated")? as u16;
        let bits_stored = attrs::uint(ds, tags::BITS_STORED)
            .map(|v| v as u16)
            .unwrap_or(bits_allocated);
        let samples_per_pixel = attrs::uint(ds, tags::SAMPLES_PER_PIXEL).unwrap_or(1) as usize;
        let m = PixelModule {
            rows,
            columns,
            samples_per_pixel,
            bits_allocated,
            bits_stored,
            pixel_representation: attrs::uint(ds, tags::PIXEL_REPRESENTATION).unwrap_or(0) as u16,
            photometric_interpretation: attrs::string(ds, tags::PHOTOMETRIC_INTERPRETATION)
                .unwrap_or_else(|| {
                    if samples_per_pixel == 3 {
                        "RGB"
                    } else {
                        "MONOCHROME2"
                    }
                    .to_string()
                }),
            planar_configuration: attrs::uint(ds, tags::PLANAR_CONFIGURATION).unwrap_or(0) as u16,
            number_of_frames: attrs::uint(ds, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as usize,
        };
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<()> {
        if self.rows == 0 || self.columns == 0 {
            return Err(DicomError::attr("Rows", "image has zero rows or columns"));
        }
        if !matches!(self.bits_allocated, 1 | 8 | 16 | 32) {
            return Err(DicomError::UnsupportedPixels {
                reason: format!("BitsAllocated {}", self.bits_allocated),
            });
        }
        if self.bits_stored == 0 || self.bits_stored > self.bits_allocated {
            return Err(DicomError::attr(
                "BitsStored",
                format!(
                    "{} with BitsAllocated {}",
                    self.bits_stored, self.bits_allocated
                ),
            ));
        }
        if !matches!(self.samples_per_pixel, 1 | 3 | 4) {
            return Err(DicomError::attr(
                "SamplesPerPixel",
                format!("{} is not 1, 3 or 4", self.samples_per_pixel),
            ));
        }
        let total = self
            .rows
            .checked_mul(self.columns)
            .and_then(|v| v.checked_mul(self.samples_per_pixel))
            .and_then(|v| v.checked_mul(self.number_of_frames));
        match total {
            Some(t) if t <= MAX_SAMPLES => Ok(()),
            _ => Err(DicomError::UnsupportedPixels {
                reason: format!(
                    "{} frames of {}x{}x{} exceed the {MAX_SAMPLES}-sample limit",
                    self.number_of_frames, self.rows, self.columns, self.samples_per_pixel
                ),
            }),
        }
    }

    pub fn frame_samples(&self) -> usize {
        self.rows * self.columns * self.samples_per_pixel
    }

    fn is_ybr_full(&self) -> bool {
        matches!(
            self.photometric_interpretation.as_str(),
            "YBR_FULL" | "YBR_FULL_422"
        )
    }
}

/// Decode all frames to stored values (pydicom's `pixel_array`, as 4-D).
pub fn decode_raw(file: &DicomFile) -> Result<PixelArray> {
    guard(|| decode_raw_inner(file))
}

fn decode_raw_inner(file: &DicomFile) -> Result<PixelArray> {
    let ds = &file.dataset;
    let elem = ds.get(tags::PIXEL_DATA).ok_or(DicomError::NoPixelData)?;
    let m = PixelModule::from_dataset(ds)?;
    match elem.value() {
        Value::Primitive(p) => decode_native(&m, p, file.ts == EXPLICIT_VR_BE),
        Value::PixelSequence(seq) => {
            decode_encapsulated(&m, &file.ts, seq.offset_table(), seq.fragments())
        }
        Value::Sequence(_) => Err(DicomError::Structure {
            reason: "PixelData holds a sequence".into(),
        }),
    }
}

/// Native (uncompressed) pixel data.
fn decode_native(m: &PixelModule, p: &PrimitiveValue, big_endian: bool) -> Result<PixelArray> {
    let ba = m.bits_allocated;
    // Little-endian byte stream of the samples as they are laid out in the file.
    let bytes: Cow<[u8]> = match (big_endian, p, ba) {
        (false, _, _) => p.to_bytes(),
        // OW read from a big endian file was already swapped word by word.
        (true, PrimitiveValue::U16(w), 1 | 16) => {
            Cow::Owned(w.iter().flat_map(|x| x.to_le_bytes()).collect())
        }
        (true, PrimitiveValue::U16(w), 8) => {
            Cow::Owned(w.iter().flat_map(|x| x.to_le_bytes()).collect())
        }
        (true, PrimitiveValue::U16(w), 32) => Cow::Owned(
            w.chunks_exact(2)
                .flat_map(|c| (((c[0] as u32) << 16) | c[1] as u32).to_le_bytes())
                .collect(),
        ),
        (true, PrimitiveValue::U8(b), 16) => {
            Cow::Owned(b.chunks_exact(2).flat_map(|c| [c[1], c[0]]).collect())
        }
        (true, PrimitiveValue::U8(b), 32) => Cow::Owned(
            b.chunks_exact(4)
                .flat_map(|c| [c[3], c[2], c[1], c[0]])
                .collect(),
        ),
        (true, _, _) => p.to_bytes(),
    };
    let frames = m.number_of_frames;
    let fs = m.frame_samples();
    let total = fs * frames;

    if ba == 1 {
        let needed = total.div_ceil(8);
        check_len(&bytes, needed)?;
        let out: Vec<u8> = (0..total).map(|i| (bytes[i / 8] >> (i % 8)) & 1).collect();
        return Ok(PixelArray {
            frames,
            rows: m.rows,
            columns: m.columns,
            samples: m.samples_per_pixel,
            data: Samples::U8(out),
        });
    }

    let bps = (ba / 8) as usize;
    if m.photometric_interpretation == "YBR_FULL_422" && m.samples_per_pixel == 3 {
        // Uncompressed 4:2:2: Y1 Y2 Cb Cr per pair of pixels.
        let per_frame = m.rows * m.columns * 2 * bps;
        check_len(&bytes, per_frame * frames)?;
        if bps != 1 {
            return Err(DicomError::UnsupportedPixels {
                reason: "YBR_FULL_422 with more than 8 bits".into(),
            });
        }
        let mut out = Vec::with_capacity(total);
        for f in 0..frames {
            let src = &bytes[f * per_frame..(f + 1) * per_frame];
            for r in 0..m.rows {
                let row = &src[r * m.columns * 2..(r + 1) * m.columns * 2];
                for c in 0..m.columns {
                    let g = &row[(c / 2) * 4..(c / 2) * 4 + 4];
                    out.extend_from_slice(&[g[c % 2], g[2], g[3]]);
                }
            }
        }
        let mut arr = PixelArray {
            frames,
            rows: m.rows,
            columns: m.columns,
            samples: 3,
            data: Samples::U8(out),
        };
        ybr_full_to_rgb(&mut arr);
        return Ok(arr);
    }

    check_len(&bytes, total * bps)?;
    let mut arr = samples_from_le(m, &bytes[..total * bps]);
    if m.samples_per_pixel > 1 && m.planar_configuration == 1 {
        arr = planar_to_interleaved(arr);
    }
    correct_unused_bits(m, &mut arr.data);
    if m.is_ybr_full() && m.samples_per_pixel == 3 {
        ybr_full_to_rgb(&mut arr);
    }
    Ok(arr)
}

fn check_len(bytes: &[u8], needed: usize) -> Result<()> {
    if bytes.len() < needed {
        return Err(DicomError::PixelDataTooShort {
            needed,
            have: bytes.len(),
        });
    }
    Ok(())
}

/// Interpret a little-endian byte stream as samples of the module's dtype.
fn samples_from_le(m: &PixelModule, b: &[u8]) -> PixelArray {
    let signed = m.pixel_representation == 1;
    let data = match (m.bits_allocated, signed) {
        (8, false) => Samples::U8(b.to_vec()),
        (8, true) => Samples::I8(b.iter().map(|&x| x as i8).collect()),
        (16, false) => Samples::U16(
            b.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        (16, true) => Samples::I16(
            b.chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        (32, false) => Samples::U32(
            b.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        _ => Samples::I32(
            b.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
    };
    PixelArray {
        frames: m.number_of_frames,
        rows: m.rows,
        columns: m.columns,
        samples: m.samples_per_pixel,
        data,
    }
}

/// pydicom's `correct_unused_bits`: shift left then right by (allocated - stored),
/// which masks unused high bits of unsigned data and sign-extends signed data.
fn correct_unused_bits(m: &PixelModule, data: &mut Samples) {
    let shift = (m.bits_allocated - m.bits_stored) as u32;
    if shift == 0 {
        return;
    }
    match data {
        Samples::U8(v) => v.iter_mut().for_each(|x| *x = (*x << shift) >> shift),
        Samples::I8(v) => v.iter_mut().for_each(|x| *x = (*x << shift) >> shift),
        Samples::U16(v) => v.iter_mut().for_each(|x| *x = (*x << shift) >> shift),
        Samples::I16(v) => v.iter_mut().for_each(|x| *x = (*x << shift) >> shift),
        Samples::U32(v) => v.iter_mut().for_each(|x| *x = (*x << shift) >> shift),
        Samples::I32(v) => v.iter_mut().for_each(|x| *x = (*x << shift) >> shift),
    }
}

/// Re-sign values decoded with `precision` bits of the wrong signedness
/// (pydicom's `_apply_sign_correction`, for JPEG 2000 and JPEG-LS).
fn sign_correct(data: &mut Samples, precision: u32) {
    match data {
        Samples::I16(v) if precision < 16 => {
            let s = 16 - precision;
            v.iter_mut().for_each(|x| *x = (*x << s) >> s)
        }
        Samples::I8(v) if precision < 8 => {
            let s = 8 - precision;
            v.iter_mut().for_each(|x| *x = (*x << s) >> s)
        }
        Samples::U16(v) if precision < 16 => {
            let s = 16 - precision;
            v.iter_mut().for_each(|x| *x = (*x << s) >> s)
        }
        _ => {}
    }
}

fn planar_to_interleaved(arr: PixelArray) -> PixelArray {
    fn go<T: Copy>(v: &[T], frames: usize, px: usize, s: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(v.len());
        for f in 0..frames {
            let fr = &v[f * px * s..(f + 1) * px * s];
            for i in 0..px {
                for k in 0..s {
                    out.push(fr[k * px + i]);
                }
            }
        }
        out
    }
    let (f, px, s) = (arr.frames, arr.rows * arr.columns, arr.samples);
    let data = match &arr.data {
        Samples::U8(v) => Samples::U8(go(v, f, px, s)),
        Samples::I8(v) => Samples::I8(go(v, f, px, s)),
        Samples::U16(v) => Samples::U16(go(v, f, px, s)),
        Samples::I16(v) => Samples::I16(go(v, f, px, s)),
        Samples::U32(v) => Samples::U32(go(v, f, px, s)),
        Samples::I32(v) => Samples::I32(go(v, f, px, s)),
    };
    PixelArray { data, ..arr }
}

/// YBR_FULL to RGB exactly as pydicom's `convert_color_space` (8-bit only;
/// other depths are left as stored, as pydicom does not convert them either).
pub fn ybr_full_to_rgb(arr: &mut PixelArray) {
    if let Samples::U8(v) = &mut arr.data {
        ybr_full_to_rgb_u8(v);
    }
}

/// In-place YBR_FULL to RGB on interleaved 8-bit triples.
pub(crate) fn ybr_full_to_rgb_u8(v: &mut [u8]) {
    let m10 = -0.114f32 * 1.772 / 0.587;
    let m12 = -0.299f32 * 1.402 / 0.587;
    for px in v.chunks_exact_mut(3) {
        let y = px[0] as f32;
        let cb = px[1] as f32 - 128.0;
        let cr = px[2] as f32 - 128.0;
        let r = y + 1.402 * cr;
        let g = y + m10 * cb + m12 * cr;
        let b = y + 1.772 * cb;
        let q = |x: f32| (x + 0.5).floor().clamp(0.0, 255.0) as u8;
        px[0] = q(r);
        px[1] = q(g);
        px[2] = q(b);
    }
}

// ---------------------------------------------------------------- encapsulated

/// One frame's codestream presented to a dicom-rs codec.
struct FrameSource<'a> {
    ts: &'a str,
    m: &'a PixelModule,
    data: &'a [u8],
}

impl PixelDataObject for FrameSource<'_> {
    fn transfer_syntax_uid(&self) -> &str {
        self.ts
    }
    fn rows(&self) -> Option<u16> {
        u16::try_from(self.m.rows).ok()
    }
    fn cols(&self) -> Option<u16> {
        u16::try_from(self.m.columns).ok()
    }
    fn samples_per_pixel(&self) -> Option<u16> {
        Some(self.m.samples_per_pixel as u16)
    }
    fn bits_allocated(&self) -> Option<u16> {
        Some(self.m.bits_allocated)
    }
    fn bits_stored(&self) -> Option<u16> {
        Some(self.m.bits_stored)
    }
    fn photometric_interpretation(&self) -> Option<&str> {
        Some(&self.m.photometric_interpretation)
    }
    fn number_of_frames(&self) -> Option<u32> {
        Some(1)
    }
    fn number_of_fragments(&self) -> Option<u32> {
        Some(1)
    }
    fn fragment(&self, fragment: usize) -> Option<Cow<'_, [u8]>> {
        (fragment == 0).then_some(Cow::Borrowed(self.data))
    }
    fn offset_table(&self) -> Option<Cow<'_, [u32]>> {
        Some(Cow::Owned(Vec::new()))
    }
    fn raw_pixel_data(&self) -> Option<RawPixelData> {
        Some(RawPixelData {
            fragments: vec![self.data.to_vec()].into(),
            offset_table: Vec::new().into(),
        })
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Family {
    Jpeg,
    JpegLs,
    Jpeg2000,
    Rle,
    Other,
}

fn family(ts: &str) -> Family {
    match ts {
        "1.2.840.10008.1.2.4.50"
        | "1.2.840.10008.1.2.4.51"
        | "1.2.840.10008.1.2.4.57"
        | "1.2.840.10008.1.2.4.70" => Family::Jpeg,
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => Family::JpegLs,
        "1.2.840.10008.1.2.4.90"
        | "1.2.840.10008.1.2.4.91"
        | "1.2.840.10008.1.2.4.201"
        | "1.2.840.10008.1.2.4.202"
        | "1.2.840.10008.1.2.4.203" => Family::Jpeg2000,
        "1.2.840.10008.1.2.5" => Family::Rle,
        _ => Family::Other,
    }
}

/// Split fragments into per-frame codestreams (as pydicom's `generate_frames`).
fn split_frames<'a>(
    fragments: &'a [Vec<u8>],
    offsets: &[u32],
    frames: usize,
    fam: Family,
) -> Result<Vec<Cow<'a, [u8]>>> {
    let frags: Vec<&'a [u8]> = fragments
        .iter()
        .map(|f| f.as_slice())
        .filter(|f| !f.is_empty())
        .collect();
    if frags.is_empty() {
        return Err(DicomError::Structure {
            reason: "encapsulated pixel data has no fragments".into(),
        });
    }
    let concat = |fs: &[&'a [u8]]| -> Cow<'a, [u8]> {
        if fs.len() == 1 {
            Cow::Borrowed(fs[0])
        } else {
            Cow::Owned(fs.concat())
        }
    };
    if frames == 1 {
        return Ok(vec![concat(&frags)]);
    }
    if frags.len() == frames {
        return Ok(frags.into_iter().map(Cow::Borrowed).collect());
    }
    if offsets.len() == frames && offsets.first() == Some(&0) {
        // basic offset table: byte offsets of each frame's first item, from the first item
        let mut starts = Vec::with_capacity(frags.len());
        let mut pos = 0u64;
        for f in &frags {
            starts.push(pos);
            pos += 8 + f.len() as u64;
        }
        let mut out = Vec::with_capacity(frames);
        for i in 0..frames {
            let lo = offsets[i] as u64;
            let hi = offsets.get(i + 1).map(|&o| o as u64).unwrap_or(u64::MAX);
            let part: Vec<&[u8]> = frags
                .iter()
                .zip(&starts)
                .filter(|(_, &s)| s >= lo && s < hi)
                .map(|(f, _)| *f)
                .collect();
            if part.is_empty() {
                return Err(DicomError::Structure {
                    reason: format!("basic offset table points frame {i} at no fragment"),
                });
            }
            out.push(concat(&part));
        }
        return Ok(out);
    }
    // No usable table: a frame starts at each fragment that begins with a start marker.
    let starts_frame = |f: &[u8]| match fam {
        Family::Jpeg | Family::JpegLs => f.starts_with(&[0xFF, 0xD8]),
        Family::Jpeg2000 => f.starts_with(&[0xFF, 0x4F]) || f.get(4..8) == Some(b"jP  "),
        _ => false,
    };
    let mut out: Vec<Vec<&[u8]>> = Vec::new();
    for f in &frags {
        if starts_frame(f) || out.is_empty() {
            out.push(vec![f]);
        } else {
            out.last_mut().expect("non-empty").push(f);
        }
    }
    if out.len() < frames {
        return Err(DicomError::Structure {
            reason: format!(
                "{} fragments hold {} frame starts but NumberOfFrames is {frames}",
                frags.len(),
                out.len()
            ),
        });
    }
    Ok(out.iter().take(frames).map(|p| concat(p)).collect())
}

fn decode_encapsulated(
    m: &PixelModule,
    ts: &str,
    offsets: &[u32],
    fragments: &[Vec<u8>],
) -> Result<PixelArray> {
    let fam = family(ts);
    let frames = split_frames(fragments, offsets, m.number_of_frames, fam)?;
    let bps = m.bits_allocated.max(8) as usize / 8;
    let frame_bytes = m.frame_samples() * bps;
    // Frames are independent codestreams: decode them in parallel.
    let decoded: Vec<Result<Vec<u8>>> = frames
        .par_iter()
        .enumerate()
        .map(|(i, data)| decode_one_frame(i, data, fam, ts, m, frame_bytes))
        .collect();
    let mut all = Vec::with_capacity(frame_bytes * frames.len());
    for d in decoded {
        all.extend_from_slice(&d?);
    }
    let precision_signed = if fam == Family::Jpeg2000 {
        crate::jpeg::j2k_precision_signed(&frames[0])
    } else {
        None
    };
    let dm = PixelModule {
        bits_allocated: m.bits_allocated.max(8),
        number_of_frames: frames.len(),
        ..m.clone()
    };
    let mut arr = samples_from_le(&dm, &all);
    match fam {
        Family::Jpeg2000 => {
            let (precision, signed) =
                precision_signed.unwrap_or((m.bits_stored as u32, m.pixel_representation == 1));
            if signed != (m.pixel_representation == 1) {
                sign_correct(&mut arr.data, precision);
            }
        }
        Family::JpegLs => {
            if m.pixel_representation == 1 {
                sign_correct(&mut arr.data, m.bits_stored as u32);
            }
        }
        _ => correct_unused_bits(&dm, &mut arr.data),
    }
    if m.is_ybr_full() && m.samples_per_pixel == 3 && fam == Family::Rle {
        ybr_full_to_rgb(&mut arr);
    }
    Ok(arr)
}

/// Decode one frame's codestream to exactly `frame_bytes` little-endian bytes.
fn decode_one_frame(
    i: usize,
    data: &[u8],
    fam: Family,
    ts: &str,
    m: &PixelModule,
    frame_bytes: usize,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(frame_bytes);
    match fam {
        Family::Jpeg => {
            let bytes =
                crate::jpeg::decode_frame(data, m).map_err(|reason| DicomError::DecodeFrame {
                    frame: i,
                    codec: "JPEG",
                    reason,
                })?;
            out = bytes;
        }
        Family::Rle => {
            out = crate::rle::decode_frame(data, m).map_err(|reason| DicomError::DecodeFrame {
                frame: i,
                codec: "RLE",
                reason,
            })?;
        }
        _ => {
            let entry = TransferSyntaxRegistry.get(ts).ok_or_else(|| {
                DicomError::UnsupportedTransferSyntax {
                    uid: ts.to_string(),
                }
            })?;
            let Codec::EncapsulatedPixelData(Some(reader), _) = entry.codec() else {
                return Err(DicomError::UnsupportedTransferSyntax {
                    uid: ts.to_string(),
                });
            };
            let src = FrameSource { ts, m, data };
            guard(|| {
                reader
                    .decode_frame(&src, 0, &mut out)
                    .map_err(|e| DicomError::DecodeFrame {
                        frame: i,
                        codec: codec_name(fam),
                        reason: crate::read::error_chain(&e),
                    })
            })?;
        }
    }
    if out.len() < frame_bytes {
        return Err(DicomError::DecodeFrame {
            frame: i,
            codec: codec_name(fam),
            reason: format!("decoded {} bytes, expected {frame_bytes}", out.len()),
        });
    }
    out.truncate(frame_bytes);
    Ok(out)
}

fn codec_name(f: Family) -> &'static str {
    match f {
        Family::Jpeg => "JPEG",
        Family::JpegLs => "JPEG-LS",
        Family::Jpeg2000 => "JPEG 2000",
        Family::Rle => "RLE",
        Family::Other => "encapsulated",
    }
}
