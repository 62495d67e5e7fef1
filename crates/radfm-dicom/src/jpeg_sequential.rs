//! A sequential-DCT JPEG decoder (ITU T.81 baseline and extended, Huffman
//! coding, 8- and 12-bit precision). We use it for every sequential DCT frame:
//! `jpeg-decoder` rejects the 12-bit "JPEG Extended" transfer syntax
//! (1.2.840.10008.1.2.4.51) and always colour-converts 3-component frames.
//!
//! Output: interleaved samples, little-endian u16 for precision > 8, u8 otherwise.
//! Chroma is upsampled with libjpeg's triangle ("fancy") filter; colour is
//! returned as coded (no colour transform), which the caller handles.

use crate::pixels::PixelModule;

const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

const LOOKAHEAD: u32 = 9;

#[derive(Clone, Default)]
struct Huffman {
    /// fast path: the next LOOKAHEAD bits -> (length << 8 | symbol), 0 when longer
    fast: Vec<u16>,
    // slow path: canonical code ranges per length (T.81 Annex F.2.2.3)
    maxcode: [i32; 18],
    valptr: [i32; 17],
    mincode: [i32; 17],
    values: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8; 16], values: Vec<u8>) -> Result<Self, String> {
        let mut h = Huffman {
            maxcode: [-1; 18],
            values,
            ..Default::default()
        };
        let mut code = 0i32;
        let mut k = 0i32;
        for len in 1..=16 {
            let n = counts[len - 1] as i32;
            h.valptr[len] = k;
            h.mincode[len] = code;
            code += n;
            k += n;
            h.maxcode[len] = if n > 0 { code - 1 } else { -1 };
            code <<= 1;
        }
        h.maxcode[17] = i32::MAX;
        if k as usize > h.values.len() {
            return Err("Huffman table has fewer symbols than its counts".into());
        }
        h.fast = vec![0; 1 << LOOKAHEAD];
        let mut code = 0u32;
        let mut idx = 0usize;
        for len in 1..=LOOKAHEAD {
            for _ in 0..counts[len as usize - 1] {
                let shift = LOOKAHEAD - len;
                for fill in 0..(1u32 << shift) {
                    let slot = ((code << shift) | fill) as usize;
                    if slot < h.fast.len() {
                        h.fast[slot] = ((len as u16) << 8) | h.values[idx] as u16;
                    }
                }
                code += 1;
                idx += 1;
            }
            code <<= 1;
        }
        Ok(h)
    }
}

struct Bits<'a> {
    d: &'a [u8],
    p: usize,
    acc: u32,
    n: u32,
    hit_marker: bool,
}

impl<'a> Bits<'a> {
    fn new(d: &'a [u8], p: usize) -> Self {
        Bits {
            d,
            p,
            acc: 0,
            n: 0,
            hit_marker: false,
        }
    }
    fn fill(&mut self) {
        while self.n <= 24 {
            let mut b = 0u8;
            if !self.hit_marker && self.p < self.d.len() {
                b = self.d[self.p];
                if b == 0xFF {
                    let next = self.d.get(self.p + 1).copied().unwrap_or(0);
                    if next == 0x00 {
                        self.p += 2;
                    } else {
                        self.hit_marker = true;
                        b = 0;
                    }
                } else {
                    self.p += 1;
                }
            }
            self.acc |= (b as u32) << (24 - self.n);
            self.n += 8;
        }
    }
    fn bit(&mut self) -> u32 {
        self.bits(1)
    }
    fn bits(&mut self, k: u32) -> u32 {
        if k == 0 {
            return 0;
        }
        self.fill();
        let v = self.acc >> (32 - k);
        self.acc <<= k;
        self.n -= k;
        v
    }
    fn decode(&mut self, h: &Huffman) -> Result<u8, String> {
        self.fill();
        let e = h.fast[(self.acc >> (32 - LOOKAHEAD)) as usize];
        if e != 0 {
            let len = (e >> 8) as u32;
            self.acc <<= len;
            self.n -= len;
            return Ok(e as u8);
        }
        let mut code = 0i32;
        for len in 1..=16 {
            code = (code << 1) | self.bit() as i32;
            if code <= h.maxcode[len] {
                let i = h.valptr[len] + code - h.mincode[len];
                return h
                    .values
                    .get(i as usize)
                    .copied()
                    .ok_or_else(|| "bad Huffman code".into());
            }
        }
        Err("invalid Huffman code".into())
    }
    fn receive_extend(&mut self, s: u8) -> Result<i32, String> {
        if s == 0 {
            return Ok(0);
        }
        if s > 16 {
            return Err(format!("coefficient magnitude category {s}"));
        }
        let v = self.bits(s as u32) as i32;
        Ok(if v < (1 << (s - 1)) {
            v - (1 << s) + 1
        } else {
            v
        })
    }
    /// Skip to after the next RSTn marker.
    fn restart(&mut self) {
        self.acc = 0;
        self.n = 0;
        self.hit_marker = false;
        while self.p + 1 < self.d.len() {
            if self.d[self.p] == 0xFF && (0xD0..=0xD7).contains(&self.d[self.p + 1]) {
                self.p += 2;
                return;
            }
            self.p += 1;
        }
    }
}

#[derive(Clone)]
struct Comp {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    bw: usize, // blocks across (padded to MCU)
    bh: usize,
    coefs: Vec<i32>, // bw*bh*64, dequantised
    pred: i32,
    td: usize,
    ta: usize,
}

/// Decode one frame; returns little-endian samples, interleaved.
pub(crate) fn decode(data: &[u8], m: &PixelModule) -> Result<Vec<u8>, String> {
    let mut q = [[0u16; 64]; 4];
    let mut dc: [Option<Huffman>; 4] = Default::default();
    let mut ac: [Option<Huffman>; 4] = Default::default();
    let mut comps: Vec<Comp> = Vec::new();
    let (mut width, mut height, mut precision) = (0usize, 0usize, 8u8);
    let mut restart_interval = 0usize;
    let (mut hmax, mut vmax) = (1usize, 1usize);
    let mut p = 2usize;
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err("no SOI marker".into());
    }
    let seg = |p: usize| -> Result<&[u8], String> {
        let len = u16::from_be_bytes([
            *data.get(p + 2).ok_or("truncated")?,
            *data.get(p + 3).ok_or("truncated")?,
        ]) as usize;
        data.get(p + 4..p + 2 + len)
            .ok_or_else(|| "truncated segment".to_string())
    };
    loop {
        if p + 1 >= data.len() {
            return Err("codestream ends before EOI".into());
        }
        if data[p] != 0xFF {
            p += 1;
            continue;
        }
        let marker = data[p + 1];
        match marker {
            0xFF => {
                p += 1;
                continue;
            }
            0xD8 | 0x01 | 0xD0..=0xD7 => {
                p += 2;
                continue;
            }
            0xD9 => break,
            0xDB => {
                let s = seg(p)?;
                let mut i = 0;
                while i < s.len() {
                    let pq = s[i] >> 4;
                    let tq = (s[i] & 3) as usize;
                    i += 1;
                    for k in 0..64 {
                        let v = if pq == 0 {
                            *s.get(i + k).ok_or("short DQT")? as u16
                        } else {
                            u16::from_be_bytes([
                                *s.get(i + 2 * k).ok_or("short DQT")?,
                                *s.get(i + 2 * k + 1).ok_or("short DQT")?,
                            ])
                        };
                        q[tq][ZIGZAG[k]] = v;
                    }
                    i += if pq == 0 { 64 } else { 128 };
                }
                p += 2 + s.len() + 2;
            }
            0xC4 => {
                let s = seg(p)?;
                let mut i = 0;
                while i + 17 <= s.len() {
                    let tc = s[i] >> 4;
                    let th = (s[i] & 3) as usize;
                    let mut counts = [0u8; 16];
                    counts.copy_from_slice(&s[i + 1..i + 17]);
                    let n: usize = counts.iter().map(|&c| c as usize).sum();
                    let vals = s.get(i + 17..i + 17 + n).ok_or("short DHT")?.to_vec();
                    let h = Huffman::new(&counts, vals)?;
                    if tc == 0 {
                        dc[th] = Some(h);
                    } else {
                        ac[th] = Some(h);
                    }
                    i += 17 + n;
                }
                p += 2 + s.len() + 2;
            }
            0xDD => {
                let s = seg(p)?;
                restart_interval = u16::from_be_bytes([
                    *s.first().ok_or("short DRI")?,
                    *s.get(1).ok_or("short DRI")?,
                ]) as usize;
                p += 2 + s.len() + 2;
            }
            0xC0 | 0xC1 => {
                let s = seg(p)?;
                if s.len() < 6 {
                    return Err("short SOF".into());
                }
                precision = s[0];
                if precision != 8 && precision != 12 {
                    return Err(format!(
                        "sample precision {precision} (sequential DCT allows 8 or 12)"
                    ));
                }
                height = u16::from_be_bytes([s[1], s[2]]) as usize;
                width = u16::from_be_bytes([s[3], s[4]]) as usize;
                let n = s[5] as usize;
                if height == 0 || width == 0 || n == 0 || n > 4 {
                    return Err("unsupported frame dimensions or component count".into());
                }
                if width != m.columns || height != m.rows {
                    return Err(format!(
                        "codestream is {width}x{height} but the header says {}x{}",
                        m.columns, m.rows
                    ));
                }
                for i in 0..n {
                    let c = s.get(6 + 3 * i..9 + 3 * i).ok_or("short SOF")?;
                    let (h, v) = ((c[1] >> 4) as usize, (c[1] & 15) as usize);
                    if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                        return Err("bad sampling factors".into());
                    }
                    comps.push(Comp {
                        id: c[0],
                        h,
                        v,
                        tq: (c[2] & 3) as usize,
                        bw: 0,
                        bh: 0,
                        coefs: Vec::new(),
                        pred: 0,
                        td: 0,
                        ta: 0,
                    });
                }
                hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
                vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
                let mcux = width.div_ceil(8 * hmax);
                let mcuy = height.div_ceil(8 * vmax);
                for c in comps.iter_mut() {
                    c.bw = mcux * c.h;
                    c.bh = mcuy * c.v;
                    c.coefs = vec![0; c.bw * c.bh * 64];
                }
                p += 2 + s.len() + 2;
            }
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(format!(
                    "JPEG process SOF{:X} not handled by this decoder",
                    marker - 0xC0
                ));
            }
            0xDA => {
                if comps.is_empty() {
                    return Err("scan before frame header".into());
                }
                let s = seg(p)?;
                // an empty SOS segment once panicked here (found by fuzzing)
                let ns = *s.first().ok_or("empty SOS segment")? as usize;
                let mut scomp = Vec::with_capacity(ns);
                for i in 0..ns {
                    let cid = *s.get(1 + 2 * i).ok_or("short SOS")?;
                    let t = *s.get(2 + 2 * i).ok_or("short SOS")?;
                    let ci = comps
                        .iter()
                        .position(|c| c.id == cid)
                        .ok_or("scan names unknown component")?;
                    comps[ci].td = (t >> 4) as usize & 3;
                    comps[ci].ta = (t & 15) as usize & 3;
                    comps[ci].pred = 0;
                    scomp.push(ci);
                }
                p += 2 + s.len() + 2;
                p = decode_scan(
                    data,
                    p,
                    &mut comps,
                    &scomp,
                    &dc,
                    &ac,
                    &q,
                    hmax,
                    vmax,
                    width,
                    height,
                    restart_interval,
                )?;
            }
            _ => {
                let s = seg(p)?;
                p += 2 + s.len() + 2;
            }
        }
    }
    if comps.is_empty() {
        return Err("no frame header".into());
    }
    Ok(reconstruct(&comps, precision, width, height, hmax, vmax))
}

#[allow(clippy::too_many_arguments)]
fn decode_scan(
    data: &[u8],
    start: usize,
    comps: &mut [Comp],
    scomp: &[usize],
    dc: &[Option<Huffman>; 4],
    ac: &[Option<Huffman>; 4],
    q: &[[u16; 64]; 4],
    hmax: usize,
    vmax: usize,
    width: usize,
    height: usize,
    restart_interval: usize,
) -> Result<usize, String> {
    let mut bits = Bits::new(data, start);
    let single = scomp.len() == 1;
    let (units_x, units_y) = if single {
        let c = &comps[scomp[0]];
        (
            (width * c.h).div_ceil(hmax * 8),
            (height * c.v).div_ceil(vmax * 8),
        )
    } else {
        (width.div_ceil(8 * hmax), height.div_ceil(8 * vmax))
    };
    let total = units_x * units_y;
    let mut block = [0i32; 64];
    for unit in 0..total {
        if restart_interval > 0 && unit > 0 && unit % restart_interval == 0 {
            bits.restart();
            for &ci in scomp {
                comps[ci].pred = 0;
            }
        }
        let (ux, uy) = (unit % units_x, unit / units_x);
        for &ci in scomp {
            let (h, v) = if single {
                (1, 1)
            } else {
                (comps[ci].h, comps[ci].v)
            };
            for by in 0..v {
                for bx in 0..h {
                    let dct = dc[comps[ci].td].as_ref().ok_or("missing DC table")?;
                    let act = ac[comps[ci].ta].as_ref().ok_or("missing AC table")?;
                    block.fill(0);
                    let s = bits.decode(dct)?;
                    let diff = bits.receive_extend(s)?;
                    comps[ci].pred = comps[ci].pred.wrapping_add(diff);
                    block[0] = comps[ci].pred;
                    let mut k = 1;
                    while k < 64 {
                        let rs = bits.decode(act)?;
                        let (r, s) = ((rs >> 4) as usize, rs & 15);
                        if s == 0 {
                            if r == 15 {
                                k += 16;
                                continue;
                            }
                            break;
                        }
                        k += r;
                        if k > 63 {
                            return Err("AC coefficient index past 63".into());
                        }
                        block[ZIGZAG[k]] = bits.receive_extend(s)?;
                        k += 1;
                    }
                    let c = &mut comps[ci];
                    let (gx, gy) = (ux * h + bx, uy * v + by);
                    if gx < c.bw && gy < c.bh {
                        let off = (gy * c.bw + gx) * 64;
                        let qt = &q[c.tq];
                        for i in 0..64 {
                            c.coefs[off + i] = block[i].saturating_mul(qt[i] as i32);
                        }
                    }
                }
            }
        }
    }
    // continue after the entropy-coded segment: find the next marker that is not RSTn
    let mut p = bits.p;
    while p + 1 < data.len() {
        if data[p] == 0xFF && data[p + 1] != 0 && !(0xD0..=0xD7).contains(&data[p + 1]) {
            return Ok(p);
        }
        p += 1;
    }
    Ok(data.len())
}

fn idct_table() -> [[f32; 8]; 8] {
    let mut t = [[0f32; 8]; 8];
    for (x, row) in t.iter_mut().enumerate() {
        for (u, v) in row.iter_mut().enumerate() {
            let cu = if u == 0 {
                std::f64::consts::FRAC_1_SQRT_2
            } else {
                1.0
            };
            *v = (cu * ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos() / 2.0)
                as f32;
        }
    }
    t
}

fn reconstruct(
    comps: &[Comp],
    precision: u8,
    width: usize,
    height: usize,
    hmax: usize,
    vmax: usize,
) -> Vec<u8> {
    let t = idct_table();
    let maxv = ((1u32 << precision) - 1) as f32;
    let shift = (1u32 << (precision - 1)) as f32;
    // spatial planes per component
    let planes: Vec<Vec<f32>> = comps
        .iter()
        .map(|c| {
            let pw = c.bw * 8;
            let mut plane = vec![0f32; pw * c.bh * 8];
            let mut tmp = [0f32; 64];
            for b in 0..c.bw * c.bh {
                let coef = &c.coefs[b * 64..b * 64 + 64];
                // rows: tmp[y][x] = sum_u t[x][u] * coef[y][u]; all-zero rows are skipped
                let mut live = [false; 8];
                for y in 0..8 {
                    let row = &coef[y * 8..y * 8 + 8];
                    if row[1..].iter().all(|&v| v == 0) {
                        let v = t[0][0] * row[0] as f32;
                        tmp[y * 8..y * 8 + 8].fill(v);
                        live[y] = row[0] != 0;
                        continue;
                    }
                    live[y] = true;
                    for x in 0..8 {
                        let mut acc = 0f32;
                        for u in 0..8 {
                            acc += t[x][u] * row[u] as f32;
                        }
                        tmp[y * 8 + x] = acc;
                    }
                }
                let (bx, by) = (b % c.bw, b / c.bw);
                for y in 0..8 {
                    let dst =
                        &mut plane[(by * 8 + y) * pw + bx * 8..(by * 8 + y) * pw + bx * 8 + 8];
                    let mut acc = [0f32; 8];
                    for v in 0..8 {
                        if !live[v] {
                            continue;
                        }
                        let w = t[y][v];
                        for x in 0..8 {
                            acc[x] += w * tmp[v * 8 + x];
                        }
                    }
                    for x in 0..8 {
                        // kept unrounded: chroma is upsampled before rounding
                        dst[x] = acc[x] + shift;
                    }
                }
            }
            plane
        })
        .collect();
    // upsample subsampled components to full resolution, as libjpeg's "fancy" upsampling
    let full: Vec<(Vec<f32>, usize)> = comps
        .iter()
        .zip(planes)
        .map(|(c, plane)| {
            let (fx, fy) = (hmax / c.h, vmax / c.v);
            let (pw, ph) = (c.bw * 8, c.bh * 8);
            match (fx, fy) {
                (1, 1) => (plane, pw),
                (2, 1) => (fancy_h2v1(&plane, pw, ph), pw * 2),
                (2, 2) => (fancy_h2v2(&plane, pw, ph), pw * 2),
                _ => {
                    let ow = pw * fx;
                    let mut o = vec![0f32; ow * ph * fy];
                    for y in 0..ph * fy {
                        for x in 0..ow {
                            o[y * ow + x] = plane[(y / fy) * pw + x / fx];
                        }
                    }
                    (o, ow)
                }
            }
        })
        .collect();
    let wide = precision > 8;
    let mut out = Vec::with_capacity(width * height * comps.len() * if wide { 2 } else { 1 });
    for y in 0..height {
        for x in 0..width {
            for (plane, stride) in &full {
                let v = plane[y * stride + x].round().clamp(0.0, maxv) as u16;
                if wide {
                    out.extend_from_slice(&v.to_le_bytes());
                } else {
                    out.push(v as u8);
                }
            }
        }
    }
    out
}

/// Horizontal 2x triangle upsampling (3/4 nearer + 1/4 further sample; edges
/// replicate), on unrounded IDCT output as the reference libjpeg does.
fn fancy_h2v1(p: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut o = vec![0f32; w * 2 * h];
    for y in 0..h {
        let r = &p[y * w..(y + 1) * w];
        let out = &mut o[y * 2 * w..(y + 1) * 2 * w];
        for i in 0..w {
            let l = r[i.saturating_sub(1)];
            let n = r[(i + 1).min(w - 1)];
            out[2 * i] = 0.75 * r[i] + 0.25 * l;
            out[2 * i + 1] = 0.75 * r[i] + 0.25 * n;
        }
        // The reference decoder (libjpeg, as used by pydicom's pylibjpeg plugin) filters each
        // 8-pixel output block in place, so its second pixel mixes in the already
        // interpolated third pixel instead of the next chroma sample. We reproduce that so
        // our output agrees with pydicom; the difference is at most a grey level or two.
        for k in (0..2 * w).step_by(8) {
            if k + 2 < 2 * w {
                out[k + 1] = 0.75 * r[k / 2] + 0.25 * out[k + 2];
            }
        }
    }
    o
}

/// 2x2 triangle upsampling: vertical then horizontal, each 3/4 + 1/4.
fn fancy_h2v2(p: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut v = vec![0f32; w * h * 2];
    for y in 0..h {
        let cur = &p[y * w..(y + 1) * w];
        let up = &p[y.saturating_sub(1) * w..(y.saturating_sub(1) + 1) * w];
        let dn = &p[(y + 1).min(h - 1) * w..((y + 1).min(h - 1) + 1) * w];
        for i in 0..w {
            v[2 * y * w + i] = 0.75 * cur[i] + 0.25 * up[i];
            v[(2 * y + 1) * w + i] = 0.75 * cur[i] + 0.25 * dn[i];
        }
    }
    fancy_h2v1(&v, w, h * 2)
}
