//! RLE Lossless (PS3.5 Annex G): a header of segment offsets, then one
//! PackBits-coded segment per sample and byte (most significant byte first).
//! Output is little-endian, samples interleaved.

use crate::pixels::PixelModule;

pub(crate) fn decode_frame(data: &[u8], m: &PixelModule) -> Result<Vec<u8>, String> {
    if data.len() < 64 {
        return Err("RLE header shorter than 64 bytes".into());
    }
    let u32_at =
        |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]) as usize;
    let nseg = u32_at(0);
    let bytes_per_sample = (m.bits_allocated.max(8) / 8) as usize;
    let spp = m.samples_per_pixel;
    if nseg != bytes_per_sample * spp {
        return Err(format!(
            "{nseg} RLE segments, expected {} ({spp} samples x {bytes_per_sample} bytes)",
            bytes_per_sample * spp
        ));
    }
    let pixels = m.rows * m.columns;
    let mut out = vec![0u8; pixels * spp * bytes_per_sample];
    for seg in 0..nseg {
        let start = u32_at(4 + 4 * seg);
        let end = if seg + 1 < nseg {
            u32_at(8 + 4 * seg)
        } else {
            data.len()
        };
        if start < 64 || start > end || end > data.len() {
            return Err(format!(
                "RLE segment {seg} offsets {start}..{end} are out of range"
            ));
        }
        let plane = packbits(&data[start..end], pixels)
            .ok_or_else(|| format!("RLE segment {seg} decodes to fewer than {pixels} bytes"))?;
        let sample = seg / bytes_per_sample;
        // segment 0 of a sample is its most significant byte
        let byte = bytes_per_sample - 1 - seg % bytes_per_sample;
        let stride = spp * bytes_per_sample;
        let base = sample * bytes_per_sample + byte;
        for (i, v) in plane.iter().enumerate() {
            out[i * stride + base] = *v;
        }
    }
    Ok(out)
}

/// PackBits: n in 0..=127 copies n+1 literal bytes, n in -127..=-1 repeats the next byte
/// 1-n times, -128 is a no-op. Returns exactly `len` bytes, or None if the segment is short.
fn packbits(src: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0;
    while out.len() < len && i < src.len() {
        let n = src[i] as i8;
        i += 1;
        if n >= 0 {
            let k = n as usize + 1;
            let lit = src.get(i..i + k)?;
            out.extend_from_slice(lit);
            i += k;
        } else if n != -128 {
            let b = *src.get(i)?;
            i += 1;
            out.extend(std::iter::repeat_n(b, (1 - n as isize) as usize));
        }
    }
    if out.len() < len {
        return None;
    }
    out.truncate(len);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::packbits;

    /// (encoded, expected) from the PackBits definition (PS3.5 G.3.1).
    #[test]
    fn packbits_cases() {
        let cases: [(&[u8], &[u8]); 3] = [
            (&[2, 1, 2, 3], &[1, 2, 3]),
            (&[0xFE, 7], &[7, 7, 7]),
            (&[0x80, 0, 9, 0xFF, 4], &[9, 4, 4]),
        ];
        for (enc, want) in cases {
            assert_eq!(packbits(enc, want.len()).as_deref(), Some(want));
        }
        assert_eq!(packbits(&[5, 1], 6), None);
    }
}
