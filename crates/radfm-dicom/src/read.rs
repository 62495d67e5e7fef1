//! Reading a DICOM file from bytes, robustly.
//!
//! We split the file ourselves into preamble, file meta group and data set,
//! so that files with a missing preamble, a missing meta group, a misdeclared
//! transfer syntax (implicit VR body under an explicit VR declaration) or a
//! deflated body are all read. Before handing the data set to dicom-rs we walk
//! it once ([`prescan`]) and check that every declared length fits inside the
//! file: that keeps hostile lengths from turning into multi-gigabyte
//! allocations, and bounds the nesting depth.

use std::io::Read;
use std::path::Path;

use dicom_core::VR;
use dicom_dictionary_std::StandardDataDictionary;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::error::{guard, DicomError, Result};

pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
pub const DEFLATED_EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1.99";
pub const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";

/// Deepest sequence nesting we accept. Real files stay far below this.
const MAX_DEPTH: usize = 48;
/// Largest inflated size of a deflated data set, relative to its compressed size.
const MAX_INFLATE_RATIO: usize = 200;

/// A parsed DICOM file.
#[derive(Debug, Clone)]
pub struct DicomFile {
    /// The data set (everything after the file meta group).
    pub dataset: InMemDicomObject,
    /// Transfer syntax declared in the meta group, if there was one.
    pub declared_ts: Option<String>,
    /// Transfer syntax the data set and pixel data are actually encoded in.
    pub ts: String,
    /// Media Storage SOP Class UID from the meta group.
    pub meta_sop_class: Option<String>,
    /// Whether the file had the 128-byte preamble and `DICM`.
    pub has_preamble: bool,
    /// Anything unusual we worked around, for logs.
    pub notes: Vec<String>,
}

/// Read and parse a DICOM file from disk.
pub fn open(path: &Path) -> Result<DicomFile> {
    let bytes = std::fs::read(path).map_err(|source| DicomError::OpenFile {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&bytes)
}

/// Cheap content sniffing: does this look like DICOM (with or without preamble)?
/// Reads only the first bytes, never the whole file.
pub fn looks_like_dicom(head: &[u8]) -> bool {
    if head.len() >= 132 && &head[128..132] == b"DICM" {
        return true;
    }
    if head.starts_with(b"DICM") {
        return true;
    }
    guess_body_encoding(head).is_some()
}

/// Parse a whole DICOM file held in memory. Never panics.
pub fn parse(bytes: &[u8]) -> Result<DicomFile> {
    guard(|| parse_inner(bytes))
}

struct Meta {
    ts: Option<String>,
    sop_class: Option<String>,
}

fn parse_inner(bytes: &[u8]) -> Result<DicomFile> {
    let mut notes = Vec::new();
    let (has_preamble, mut pos) = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        (true, 132)
    } else if bytes.starts_with(b"DICM") {
        notes.push("no 128-byte preamble".to_string());
        (false, 4)
    } else {
        (false, 0)
    };
    let meta = if bytes.len() >= pos + 6 && u16::from_le_bytes([bytes[pos], bytes[pos + 1]]) == 2 {
        let (meta, end) = read_meta(bytes, pos)?;
        pos = end;
        Some(meta)
    } else {
        if has_preamble || pos == 4 {
            notes.push("DICM present but no file meta group".to_string());
        }
        None
    };
    let body = &bytes[pos..];
    if body.is_empty() {
        return Err(DicomError::NotDicom {
            reason: if bytes.is_empty() {
                "empty file".into()
            } else {
                "no data set after the header".into()
            },
        });
    }

    let declared_ts = meta.as_ref().and_then(|m| m.ts.clone());
    let meta_sop_class = meta.as_ref().and_then(|m| m.sop_class.clone());
    if meta.is_none() && !has_preamble && pos == 0 && guess_body_encoding(body).is_none() {
        return Err(DicomError::NotDicom {
            reason: "no 'DICM' marker and the bytes do not start like a DICOM data set".into(),
        });
    }

    // Work out how the body is really encoded.
    let inflated;
    let mut body = body;
    let mut ts = declared_ts.clone().unwrap_or_else(|| {
        notes.push("no transfer syntax declared; guessed from the data set".to_string());
        match guess_body_encoding(body) {
            Some((true, false)) => IMPLICIT_VR_LE.to_string(),
            Some((false, false)) => EXPLICIT_VR_BE.to_string(),
            _ => EXPLICIT_VR_LE.to_string(),
        }
    });
    if ts == DEFLATED_EXPLICIT_VR_LE {
        inflated = inflate(body)?;
        body = &inflated;
    }
    let entry = TransferSyntaxRegistry.get(&ts);
    let (mut explicit, big_endian) = match entry {
        Some(t) => (
            t.uid() != IMPLICIT_VR_LE,
            t.endianness() == dicom_encoding::transfer_syntax::Endianness::Big,
        ),
        None => {
            // Unknown transfer syntax: all encapsulated syntaxes are explicit VR LE.
            notes.push(format!(
                "unknown transfer syntax {ts}; reading as explicit VR LE"
            ));
            (true, false)
        }
    };
    if explicit && !big_endian {
        if let Some((implicit, true)) = guess_body_encoding(body) {
            if implicit {
                notes.push(format!(
                    "declared {ts} (explicit VR) but the data set is implicit VR; read as implicit"
                ));
                explicit = false;
            }
        }
    }

    prescan(body, explicit, !big_endian)?;

    let parse_ts_uid = if !explicit {
        IMPLICIT_VR_LE
    } else if big_endian {
        EXPLICIT_VR_BE
    } else if entry.is_some() && ts != DEFLATED_EXPLICIT_VR_LE {
        ts.as_str()
    } else {
        EXPLICIT_VR_LE
    };
    let parse_ts = TransferSyntaxRegistry.get(parse_ts_uid).ok_or_else(|| {
        DicomError::UnsupportedTransferSyntax {
            uid: parse_ts_uid.to_string(),
        }
    })?;
    let dataset =
        InMemDicomObject::read_dataset_with_ts(body, parse_ts).map_err(|e| DicomError::Parse {
            ts: ts.clone(),
            reason: error_chain(&e),
        })?;
    if !explicit && entry.is_some_and(|t| t.uid() != IMPLICIT_VR_LE) && ts == EXPLICIT_VR_LE {
        ts = IMPLICIT_VR_LE.to_string();
    }
    if ts == DEFLATED_EXPLICIT_VR_LE {
        // pixel data in a deflated file is native explicit VR LE
        ts = EXPLICIT_VR_LE.to_string();
    }
    Ok(DicomFile {
        dataset,
        declared_ts,
        ts,
        meta_sop_class,
        has_preamble,
        notes,
    })
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn inflate(body: &[u8]) -> Result<Vec<u8>> {
    let limit = body.len().saturating_mul(MAX_INFLATE_RATIO).max(1 << 20) as u64;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(body)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| DicomError::Structure {
            reason: format!("deflated data set does not inflate: {e}"),
        })?;
    if out.len() as u64 > limit {
        return Err(DicomError::Structure {
            reason: format!("deflated data set inflates past {limit} bytes"),
        });
    }
    Ok(out)
}

fn read_meta(bytes: &[u8], mut pos: usize) -> Result<(Meta, usize)> {
    let mut meta = Meta {
        ts: None,
        sop_class: None,
    };
    while pos + 8 <= bytes.len() {
        let group = u16::from_le_bytes([bytes[pos], bytes[pos + 1]]);
        if group != 2 {
            break;
        }
        let element = u16::from_le_bytes([bytes[pos + 2], bytes[pos + 3]]);
        let vr = [bytes[pos + 4], bytes[pos + 5]];
        let (len, header) = if is_vr(vr) {
            if has_long_length(vr) {
                if pos + 12 > bytes.len() {
                    return Err(DicomError::Meta {
                        reason: "truncated element header".into(),
                    });
                }
                (le_u32(&bytes[pos + 8..]) as usize, 12)
            } else {
                (
                    u16::from_le_bytes([bytes[pos + 6], bytes[pos + 7]]) as usize,
                    8,
                )
            }
        } else {
            // meta group written in implicit VR (seen in the wild)
            (le_u32(&bytes[pos + 4..]) as usize, 8)
        };
        let start = pos + header;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| DicomError::Meta {
                reason: format!("element (0002,{element:04X}) length {len} runs past the end"),
            })?;
        let text = || {
            String::from_utf8_lossy(&bytes[start..end])
                .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_string()
        };
        match element {
            0x0002 => meta.sop_class = Some(text()),
            0x0010 => meta.ts = Some(text()).filter(|s| !s.is_empty()),
            _ => {}
        }
        pos = end;
    }
    Ok((meta, pos))
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn is_vr(vr: [u8; 2]) -> bool {
    const VRS: &[&[u8; 2]] = &[
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
        b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
        b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
    ];
    VRS.iter().any(|v| **v == vr)
}

fn has_long_length(vr: [u8; 2]) -> bool {
    matches!(
        &vr,
        b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"SQ"
            | b"UC"
            | b"UN"
            | b"UR"
            | b"UT"
            | b"SV"
            | b"UV"
    )
}

/// Guess (implicit, little_endian) from the first element of a data set.
/// Returns `None` when the bytes do not look like a data set at all.
fn guess_body_encoding(body: &[u8]) -> Option<(bool, bool)> {
    if body.len() < 8 {
        return None;
    }
    let g_le = u16::from_le_bytes([body[0], body[1]]);
    let g_be = u16::from_be_bytes([body[0], body[1]]);
    let plausible = |g: u16| (0x0002..=0x0030).contains(&g) && g % 2 == 0;
    let explicit = is_vr([body[4], body[5]]);
    if plausible(g_le) {
        if explicit {
            return Some((false, true));
        }
        // implicit: the length must fit the buffer or be undefined for small groups
        let len = le_u32(&body[4..]);
        if len == u32::MAX || (len as usize) <= body.len() {
            return Some((true, true));
        }
        None
    } else if plausible(g_be) && explicit {
        Some((false, false))
    } else {
        None
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    explicit: bool,
    le: bool,
}

impl Scanner<'_> {
    fn u16(&self, p: usize) -> u16 {
        let v = [self.b[p], self.b[p + 1]];
        if self.le {
            u16::from_le_bytes(v)
        } else {
            u16::from_be_bytes(v)
        }
    }
    fn u32(&self, p: usize) -> u32 {
        let v = [self.b[p], self.b[p + 1], self.b[p + 2], self.b[p + 3]];
        if self.le {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        }
    }

    fn err(&self, pos: usize, what: String) -> DicomError {
        DicomError::Structure {
            reason: format!("{what} at byte offset {pos}"),
        }
    }

    /// Walk a data set in [pos, end). With `in_item`, stop after an item delimiter.
    fn dataset(&self, mut pos: usize, end: usize, depth: usize, in_item: bool) -> Result<usize> {
        if depth > MAX_DEPTH {
            return Err(self.err(pos, format!("sequences nested deeper than {MAX_DEPTH}")));
        }
        while pos < end {
            if pos + 8 > end {
                // trailing bytes shorter than a header: tolerated at top level
                if depth == 0 {
                    return Ok(end);
                }
                return Err(self.err(pos, "truncated element header".into()));
            }
            let group = self.u16(pos);
            let element = self.u16(pos + 2);
            if group == 0xFFFE {
                let len = self.u32(pos + 4);
                if element == 0xE00D && in_item {
                    return Ok(pos + 8);
                }
                // stray delimiters: skip their header
                if len != 0 && len != u32::MAX {
                    return Err(self.err(pos, format!("unexpected item tag (FFFE,{element:04X})")));
                }
                pos += 8;
                continue;
            }
            let (vr, len, header) = if self.explicit {
                let vr = [self.b[pos + 4], self.b[pos + 5]];
                if !is_vr(vr) {
                    return Err(self.err(
                        pos,
                        format!("element ({group:04X},{element:04X}) has no valid VR"),
                    ));
                }
                if has_long_length(vr) {
                    if pos + 12 > end {
                        return Err(self.err(pos, "truncated element header".into()));
                    }
                    (Some(vr), self.u32(pos + 8), 12)
                } else {
                    (Some(vr), self.u16(pos + 6) as u32, 8)
                }
            } else {
                (None, self.u32(pos + 4), 8)
            };
            pos += header;
            let evr = element_vr(vr, group, element);
            let is_sq = evr == Some(VR::SQ);
            if len == u32::MAX {
                let undefined_un = matches!(vr, Some(v) if &v == b"UN");
                let pixel = group == 0x7FE0 && element == 0x0010;
                if is_sq || undefined_un || vr.is_none() || pixel {
                    pos = self.items(pos, end, depth + 1, pixel)?;
                } else {
                    return Err(self.err(
                        pos,
                        format!("element ({group:04X},{element:04X}) has undefined length"),
                    ));
                }
            } else {
                // A binary value whose length is not a whole number of values
                // makes dicom-rs read fewer bytes than declared and lose its
                // place: the next "header" is then data, and a crafted one made
                // it allocate 4 GB for a 361-byte file (found by fuzzing).
                let size = value_size(evr);
                if len as usize % size != 0 {
                    return Err(self.err(
                        pos,
                        format!(
                            "element ({group:04X},{element:04X}) has length {len}, not a whole number of {size}-byte values"
                        ),
                    ));
                }
                let stop = pos.checked_add(len as usize).filter(|&e| e <= end).ok_or_else(|| {
                    self.err(
                        pos,
                        format!(
                            "element ({group:04X},{element:04X}) declares {len} bytes but only {} remain",
                            end.saturating_sub(pos)
                        ),
                    )
                })?;
                if is_sq && len > 0 {
                    self.items(pos, stop, depth + 1, false)?;
                }
                pos = stop;
            }
        }
        if in_item {
            // an undefined-length item with no delimiter before the end
            return Err(self.err(pos, "item without delimiter".into()));
        }
        Ok(pos)
    }

    /// Walk the items of a sequence (or pixel fragments) starting at pos.
    /// Returns the position after the sequence delimiter, or `end` for defined-length sequences.
    fn items(&self, mut pos: usize, end: usize, depth: usize, fragments: bool) -> Result<usize> {
        if depth > MAX_DEPTH {
            return Err(self.err(pos, format!("sequences nested deeper than {MAX_DEPTH}")));
        }
        while pos < end {
            if pos + 8 > end {
                return Err(self.err(pos, "truncated item header".into()));
            }
            let group = self.u16(pos);
            let element = self.u16(pos + 2);
            let len = self.u32(pos + 4);
            if group != 0xFFFE {
                return Err(self.err(
                    pos,
                    format!("expected an item, found ({group:04X},{element:04X})"),
                ));
            }
            pos += 8;
            match element {
                0xE0DD => return Ok(pos),
                0xE000 => {
                    if len == u32::MAX {
                        if fragments {
                            return Err(
                                self.err(pos, "pixel fragment with undefined length".into())
                            );
                        }
                        pos = self.dataset(pos, end, depth + 1, true)?;
                    } else {
                        let stop = pos
                            .checked_add(len as usize)
                            .filter(|&e| e <= end)
                            .ok_or_else(|| {
                                self.err(pos, format!("item declares {len} bytes beyond the end"))
                            })?;
                        if !fragments {
                            self.dataset(pos, stop, depth + 1, false)?;
                        }
                        pos = stop;
                    }
                }
                _ => {
                    return Err(self.err(pos, format!("unexpected item tag (FFFE,{element:04X})")));
                }
            }
        }
        if fragments {
            return Err(self.err(pos, "pixel data truncated (no sequence delimiter)".into()));
        }
        Ok(pos)
    }
}

/// An element's VR: the explicit one, or for implicit VR the dictionary's
/// (looked up once per element: the prescan runs on every file ingested).
fn element_vr(vr: Option<[u8; 2]>, group: u16, element: u16) -> Option<VR> {
    use dicom_core::dictionary::DataDictionary;
    use dicom_core::Tag;
    match vr {
        Some(b) => std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()),
        // a group length (gggg,0000) is UL in every group, private ones too
        None if element == 0x0000 => Some(VR::UL),
        None if group % 2 == 1 => None, // private: the dictionary does not know
        None => StandardDataDictionary
            .by_tag(Tag(group, element))
            .map(|e| e.vr.relaxed()),
    }
}

/// The size of one value of a binary VR; 1 for text, bytes and unknown VRs.
fn value_size(vr: Option<VR>) -> usize {
    match vr {
        Some(VR::US | VR::SS | VR::OW) => 2,
        Some(VR::UL | VR::SL | VR::FL | VR::AT | VR::OF | VR::OL) => 4,
        Some(VR::FD | VR::SV | VR::UV | VR::OD | VR::OV) => 8,
        _ => 1,
    }
}

/// Walk the data set once and check every declared length against the file size.
pub(crate) fn prescan(body: &[u8], explicit: bool, little_endian: bool) -> Result<()> {
    let s = Scanner {
        b: body,
        explicit,
        le: little_endian,
    };
    s.dataset(0, body.len(), 0, false).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing: an implicit VR UL of length 2 desynchronised dicom-rs,
    /// whose next "element" then declared 4 GB (and it allocated them).
    #[test]
    fn a_binary_value_of_partial_length_is_refused_before_parsing() {
        let mut b = Vec::new();
        let mut el = |g: u16, e: u16, v: &[u8]| {
            b.extend(g.to_le_bytes());
            b.extend(e.to_le_bytes());
            b.extend((v.len() as u32).to_le_bytes());
            b.extend(v);
        };
        el(0x0008, 0x0016, b"1.2.840.10008.5.1.4.1.1.7\0");
        el(0x0028, 0x0010, &[0, 1]); // Rows, US: fine
        el(0x0028, 0x0011, &[0]); // Columns, US, 1 byte: not a whole value
        el(0x0028, 0x0100, &[0xff, 0xff, 0xff, 0x7f]);
        let err = prescan(&b, false, true).unwrap_err().to_string();
        assert!(
            err.contains("(0028,0011) has length 1, not a whole number of 2-byte values"),
            "{err}"
        );
        let e = parse(&b).unwrap_err().to_string();
        assert!(e.contains("not a whole number"), "{e}");
    }

    #[test]
    fn sniffing_rejects_text_and_accepts_preamble() {
        assert!(!looks_like_dicom(b"hello world, this is not dicom at all"));
        let mut b = vec![0u8; 132];
        b[128..132].copy_from_slice(b"DICM");
        assert!(looks_like_dicom(&b));
    }

    #[test]
    fn absurd_lengths_are_rejected_before_allocation() {
        // (0010,0010) PN with a 0xFFF0 length in a tiny buffer, explicit VR LE
        let mut body = vec![0x10, 0x00, 0x10, 0x00, b'P', b'N', 0xF0, 0xFF];
        body.extend_from_slice(b"AB");
        let err = prescan(&body, true, true).unwrap_err();
        assert!(err.to_string().contains("declares 65520 bytes"), "{err}");
        // implicit VR, 4-byte length of 4 GB
        let body = [0x08, 0x00, 0x16, 0x00, 0xF0, 0xFF, 0xFF, 0xFF, 0, 0];
        assert!(prescan(&body, false, true).is_err());
    }

    #[test]
    fn deep_nesting_is_bounded() {
        // (0008,1115) SQ undefined length, item undefined length, repeated
        let mut body = Vec::new();
        for _ in 0..200 {
            body.extend_from_slice(&[
                0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
            ]);
            body.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        let err = prescan(&body, true, true).unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");
    }

    #[test]
    fn empty_and_garbage_fail_cleanly() {
        assert!(matches!(parse(&[]), Err(DicomError::NotDicom { .. })));
        assert!(matches!(
            parse(b"just some text\n"),
            Err(DicomError::NotDicom { .. })
        ));
    }
}
