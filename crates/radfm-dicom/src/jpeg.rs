//! JPEG-family codestreams: ITU T.81 baseline, extended and lossless through
//! `jpeg-decoder`, and codestream header parsing shared with JPEG 2000.

use crate::pixels::PixelModule;

/// Decode one JPEG frame to little-endian samples, interleaved.
/// Colour YCbCr frames come out as RGB (as pydicom's default `as_rgb`).
pub(crate) fn decode_frame(data: &[u8], m: &PixelModule) -> Result<Vec<u8>, String> {
    let sof = parse_sof(data).ok_or("no JPEG frame header (SOF marker)")?;
    if matches!(sof.marker, 0xC0 | 0xC1) {
        // Sequential DCT, 8 or 12 bit: our decoder, which keeps the coded colour space.
        let mut out = crate::jpeg_sequential::decode(data, m)?;
        if sof.ids.len() == 3 && sof.precision == 8 && needs_ybr_conversion(&sof, m) {
            crate::pixels::ybr_full_to_rgb_u8(&mut out);
        }
        return Ok(out);
    }
    // Lossless and progressive: jpeg-decoder.
    let mut dec = jpeg_decoder::Decoder::new(data);
    // Bound the decoder's buffer by the size the header promises.
    let expect = m.frame_samples() * (m.bits_allocated.max(8) as usize / 8);
    dec.set_max_decoding_buffer_size(expect.saturating_mul(2).max(1 << 16));
    dec.read_info().map_err(|e| e.to_string())?;
    let info = dec.info().ok_or("no frame header")?;
    if info.width as usize != m.columns || info.height as usize != m.rows {
        return Err(format!(
            "codestream is {}x{} but the header says {}x{}",
            info.width, info.height, m.columns, m.rows
        ));
    }
    let out = dec.decode().map_err(|e| e.to_string())?;
    Ok(out)
}

/// Whether decoded 3-component samples are YCbCr that must become RGB.
/// As pydicom: component ids 'R','G','B' mean RGB whatever the header says;
/// otherwise the Photometric Interpretation decides. Lossless JPEG is never
/// colour-transformed.
fn needs_ybr_conversion(sof: &Sof, m: &PixelModule) -> bool {
    let rgb_ids = sof.ids == [b'R', b'G', b'B'] || sof.ids == [b'r', b'g', b'b'];
    !rgb_ids
        && !sof.lossless
        && matches!(
            m.photometric_interpretation.as_str(),
            "YBR_FULL" | "YBR_FULL_422"
        )
}

/// The frame header (SOFn) of a JPEG codestream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sof {
    pub marker: u8,
    pub precision: u8,
    pub height: u16,
    pub width: u16,
    pub ids: Vec<u8>,
    pub lossless: bool,
}

/// Find and parse the first SOF marker, skipping other segments properly.
pub(crate) fn parse_sof(data: &[u8]) -> Option<Sof> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut p = 2;
    while p + 4 <= data.len() {
        if data[p] != 0xFF {
            return None;
        }
        let marker = data[p + 1];
        if marker == 0xFF {
            p += 1;
            continue;
        }
        let len = u16::from_be_bytes([data[p + 2], data[p + 3]]) as usize;
        let seg = data.get(p + 4..p + 2 + len)?;
        if matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) {
            if seg.len() < 6 {
                return None;
            }
            let n = seg[5] as usize;
            let ids = (0..n).filter_map(|i| seg.get(6 + 3 * i).copied()).collect();
            return Some(Sof {
                marker,
                precision: seg[0],
                height: u16::from_be_bytes([seg[1], seg[2]]),
                width: u16::from_be_bytes([seg[3], seg[4]]),
                ids,
                lossless: matches!(marker, 0xC3 | 0xC7 | 0xCB | 0xCF),
            });
        }
        p += 2 + len;
    }
    None
}

/// Precision and signedness of the first component of a JPEG 2000 codestream (SIZ marker).
pub(crate) fn j2k_precision_signed(data: &[u8]) -> Option<(u32, bool)> {
    let siz = data
        .windows(4)
        .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])?;
    let ssiz = *data.get(siz + 42)?;
    Some(((ssiz & 0x7F) as u32 + 1, ssiz & 0x80 != 0))
}
