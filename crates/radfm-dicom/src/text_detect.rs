//! Burned-in text in pixel data: rendered characters are small high-contrast
//! strokes in compact blobs of one height, side by side in a line. The
//! detector looks for exactly that, whatever the header says:
//!
//! 1. work at no more than [`WORK_SIDE`] pixels on the long side (box average),
//!    so that a character of a large image is still a few pixels tall and the
//!    cost stays flat;
//! 2. mark pixels that stand out from their neighbourhood (a box mean) by more
//!    than a contrast threshold set from the image's own noise, bright and
//!    dark separately;
//! 3. take connected components of a character's size and fill;
//! 4. chain components of similar height whose centres line up and whose gaps
//!    are under a character's height; a chain of [`MIN_CHARS`] or more is text.
//!
//! A lead side marker ("L", "R") is one or two blobs and never a line; rib
//! edges, tubes and wires are long thin components, not characters.

/// The working resolution's long side.
pub const WORK_SIDE: usize = 1024;
/// Characters in a line for it to be text.
pub const MIN_CHARS: usize = 5;

/// What was found.
#[derive(Debug, Clone, PartialEq)]
pub struct TextFound {
    /// characters in the longest line
    pub chars: usize,
    /// lines of text
    pub lines: usize,
    /// the longest line's box, as fractions of the image (top, left, bottom, right)
    pub bbox: [f32; 4],
}

impl TextFound {
    /// Where the text is, in words: "top-left", "bottom", "middle", ...
    pub fn region(&self) -> String {
        let cy = (self.bbox[0] + self.bbox[2]) / 2.0;
        let cx = (self.bbox[1] + self.bbox[3]) / 2.0;
        let v = if cy < 0.33 {
            "top"
        } else if cy > 0.67 {
            "bottom"
        } else {
            "middle"
        };
        let h = if cx < 0.33 {
            "-left"
        } else if cx > 0.67 {
            "-right"
        } else {
            ""
        };
        format!("{v}{h}")
    }
}

#[derive(Debug, Clone, Copy)]
struct Blob {
    top: usize,
    left: usize,
    bottom: usize,
    right: usize,
    /// characters in it: one, or several when bold or tight letters touch
    chars: usize,
}

impl Blob {
    fn h(&self) -> usize {
        self.bottom - self.top + 1
    }
    fn w(&self) -> usize {
        self.right - self.left + 1
    }
}

/// Look for text in a `rows` x `cols` image of display values (0 black, 1 white).
pub fn detect(img: &[f32], rows: usize, cols: usize) -> Option<TextFound> {
    detect_with(img, rows, cols, &mut |_, _, _| {})
}

/// [`detect`] on a frame of `channels` interleaved samples per pixel (colour
/// is looked at as the mean of its channels).
pub fn detect_samples(
    frame: &[f32],
    rows: usize,
    cols: usize,
    channels: usize,
) -> Option<TextFound> {
    if channels <= 1 {
        return detect(frame, rows, cols);
    }
    let gray: Vec<f32> = frame
        .chunks_exact(channels)
        .map(|p| p.iter().sum::<f32>() / channels as f32)
        .collect();
    detect(&gray, rows, cols)
}

/// A file's first frame at the display stage, as the detector sees it:
/// (values, rows, columns, samples per pixel).
pub fn first_frame(file: &crate::DicomFile) -> crate::Result<(Vec<f32>, usize, usize, usize)> {
    let raw = crate::pixels::decode_raw(file)?;
    let module = crate::PixelModule::from_dataset(&file.dataset)?;
    let pipeline = crate::GrayscalePipeline::from_dataset(&file.dataset, &module);
    let map = pipeline.display_map(&raw);
    let [_, rows, cols, samples] = raw.shape();
    let mut frame = Vec::new();
    pipeline.display_into(&raw, &map, 0, rows * cols * samples, &mut frame);
    let channels = pipeline.display_channels(samples);
    Ok((frame, rows, cols, channels))
}

/// What [`detect_with`] shows: each polarity's character boxes (top, left,
/// bottom, right) and the working resolution.
pub type Seen<'a> = dyn FnMut(bool, &[[usize; 4]], (usize, usize)) + 'a;

/// The background box's half side.
const BOX_R: usize = 5;

/// Buffers reused from one call to the next on a thread: a fresh multi-megabyte
/// allocation per image costs more in page faults than the detector's arithmetic.
#[derive(Default)]
struct Scratch {
    work: Vec<f32>,
    diffs: Vec<f32>,
    /// running column sums, and one row of their means
    acc: Vec<f32>,
    tmp: Vec<f32>,
    pairs: Vec<f32>,
    /// the ring of box-mean rows
    mean: Vec<f32>,
    /// one row of marks
    marks: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// [`detect`], showing each polarity's character blobs (top, left, bottom,
/// right at the working resolution) and that resolution to `seen`.
pub fn detect_with(img: &[f32], rows: usize, cols: usize, seen: &mut Seen) -> Option<TextFound> {
    if rows < 16 || cols < 16 || img.len() < rows * cols {
        return None;
    }
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => run(img, rows, cols, &mut s, seen),
        // re-entered from `seen`: use fresh buffers
        Err(_) => run(img, rows, cols, &mut Scratch::default(), seen),
    })
}

fn run(
    img: &[f32],
    rows: usize,
    cols: usize,
    s: &mut Scratch,
    seen: &mut Seen,
) -> Option<TextFound> {
    let k = rows.max(cols).div_ceil(WORK_SIDE).max(1);
    let (h, w) = (rows / k, cols / k);
    // the downsampled image, when there is one, is the scratch's (taken out
    // while the rest of the scratch is in use, and put back after)
    let small = (k > 1).then(|| {
        let mut v = std::mem::take(&mut s.work);
        downsample(img, cols, k, h, w, &mut v);
        v
    });
    let work: &[f32] = small.as_deref().unwrap_or(&img[..rows * cols]);
    let noise = noise_sigma(work, h, w, &mut s.diffs);
    let threshold = (5.0 * noise).max(0.1);
    // the background on each side of a pixel: box means a little way off,
    // left and right, or above and below. A stroke stands out from both sides
    // of it in one direction at least (even where text straddles a collimator
    // border); a pixel beside a step edge has its own side's value on one side.
    let mut comps = Components::new(w);
    stream_marks(work, h, w, threshold, s, &mut comps);
    let [bright, dark] = comps.characters(h);
    if let Some(v) = small {
        s.work = v;
    }
    let mut found: Option<TextFound> = None;
    for (is_bright, blobs) in [(true, bright), (false, dark)] {
        let boxes: Vec<[usize; 4]> = blobs
            .iter()
            .map(|b| [b.top, b.left, b.bottom, b.right])
            .collect();
        seen(is_bright, &boxes, (h, w));
        if let Some(t) = lines(&blobs, h, w) {
            if found.as_ref().is_none_or(|f| t.chars > f.chars) {
                found = Some(t);
            }
        }
    }
    found
}

/// Box average by `k` into `h` x `w`.
fn downsample(img: &[f32], cols: usize, k: usize, h: usize, w: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(h * w, 0.0);
    let inv = 1.0 / (k * k) as f32;
    for y in 0..h {
        let dst = &mut out[y * w..(y + 1) * w];
        for dy in 0..k {
            let src = &img[(y * k + dy) * cols..][..w * k];
            for (o, c) in dst.iter_mut().zip(src.chunks_exact(k)) {
                *o += c.iter().sum::<f32>();
            }
        }
        dst.iter_mut().for_each(|o| *o *= inv);
    }
}

/// Noise from the median absolute difference of horizontal neighbours, on a
/// sample of pairs (every second pair of every eighth row: a median of some
/// 16,000 values is within about 1% of the median of all of them).
fn noise_sigma(v: &[f32], h: usize, w: usize, d: &mut Vec<f32>) -> f32 {
    d.clear();
    let step = if h * w > 131_072 { 8 } else { 1 };
    for y in (0..h).step_by(step) {
        let row = &v[y * w..(y + 1) * w];
        d.extend(row.chunks_exact(2).map(|p| (p[1] - p[0]).abs()));
    }
    if d.is_empty() {
        return 0.0;
    }
    let mid = d.len() / 2;
    let (_, m, _) = d.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    // MAD of a difference of two normals: sigma * sqrt(2) * 0.6745
    *m / 0.954
}

/// How far off the side means are taken.
const SIDE_D: usize = 8;

/// Marks, row by row, into `comps`: the box means of the rows are made as
/// they are needed and kept in a ring of the 2d+1 rows a row's marks look at,
/// and each row's marks go straight into the components; neither the means
/// nor the marks of the whole image are ever stored (they would be read back
/// from memory, not cache).
fn stream_marks(
    work: &[f32],
    h: usize,
    w: usize,
    threshold: f32,
    s: &mut Scratch,
    comps: &mut Components,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above
        return unsafe { stream_marks_avx2(work, h, w, threshold, s, comps) };
    }
    stream_marks_body(work, h, w, threshold, s, comps)
}

/// [`stream_marks`] compiled for AVX2: eight lanes instead of four, the same
/// operations in the same order (no FMA), so the same marks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn stream_marks_avx2(
    work: &[f32],
    h: usize,
    w: usize,
    threshold: f32,
    s: &mut Scratch,
    comps: &mut Components,
) {
    stream_marks_body(work, h, w, threshold, s, comps)
}

#[inline(always)]
fn stream_marks_body(
    work: &[f32],
    h: usize,
    w: usize,
    threshold: f32,
    s: &mut Scratch,
    comps: &mut Components,
) {
    let (r, d) = (BOX_R, SIDE_D);
    let ring = 2 * d + 1;
    s.mean.clear();
    s.mean.resize(ring * w, 0.0);
    s.marks.clear();
    s.marks.resize(w, 0);
    s.acc.clear();
    s.acc.resize(w, 0.0);
    s.tmp.clear();
    s.tmp.resize(w, 0.0);
    // column sums over rows y-r..=y+r, clipped
    for row in work.chunks_exact(w).take(r.min(h)) {
        s.acc.iter_mut().zip(row).for_each(|(a, &b)| *a += b);
    }
    for y in 0..h {
        mean_row(work, h, w, y, s);
        if y >= d {
            mark_row(work, h, w, y - d, threshold, s, comps);
        }
    }
    for y in h.saturating_sub(d)..h {
        mark_row(work, h, w, y, threshold, s, comps);
    }
}

/// Row `y` of the mean over a (2r+1)^2 box, clipped at the edges, into its
/// ring slot: the running column sums move down a row, then the row of them
/// is summed along the row.
#[inline(always)]
fn mean_row(v: &[f32], h: usize, w: usize, y: usize, s: &mut Scratch) {
    let r = BOX_R;
    let ring = 2 * SIDE_D + 1;
    if y + r < h {
        let add = &v[(y + r) * w..(y + r + 1) * w];
        s.acc.iter_mut().zip(add).for_each(|(a, &b)| *a += b);
    }
    if y > r {
        let sub = &v[(y - r - 1) * w..(y - r) * w];
        s.acc.iter_mut().zip(sub).for_each(|(a, &b)| *a -= b);
    }
    let inv = 1.0 / ((y + r + 1).min(h) - y.saturating_sub(r)) as f32;
    s.tmp
        .iter_mut()
        .zip(&s.acc)
        .for_each(|(o, &a)| *o = a * inv);
    // along the row: inside, the sums of pairs first, then five pairs and one
    // more value per pixel (no running sum, so no chain of dependent
    // additions); near the ends, clipped
    let slot = y % ring;
    let (src, dst) = (&s.tmp[..], &mut s.mean[slot * w..(slot + 1) * w]);
    let edge = |x: usize| {
        let (lo, hi) = (x.saturating_sub(r), (x + r + 1).min(w));
        src[lo..hi].iter().sum::<f32>() / (hi - lo) as f32
    };
    if w <= 2 * r {
        for (x, o) in dst.iter_mut().enumerate() {
            *o = edge(x);
        }
        return;
    }
    let n = w - 2 * r;
    let inner = 1.0 / (2 * r + 1) as f32;
    s.pairs.clear();
    s.pairs.extend(src.windows(2).map(|p| p[0] + p[1]));
    for (i, o) in dst[r..r + n].iter_mut().enumerate() {
        let p: &[f32; 2 * BOX_R - 1] = s.pairs[i..i + 2 * BOX_R - 1].try_into().unwrap();
        let sum = (p[0] + p[2]) + (p[4] + p[6]) + (p[8] + src[i + 2 * BOX_R]);
        *o = sum * inner;
    }
    for x in (0..r).chain(w - r..w) {
        dst[x] = edge(x);
    }
}

/// Mark row `y`'s pixels that stand out (bit 0 bright, bit 1 dark) and hand
/// the row to the components.
#[inline(always)]
fn mark_row(
    work: &[f32],
    h: usize,
    w: usize,
    y: usize,
    threshold: f32,
    s: &mut Scratch,
    comps: &mut Components,
) {
    let d = SIDE_D;
    let ring = 2 * d + 1;
    let strong = 1.6 * threshold;
    // plain comparisons (no NaN rules, no short circuit), so that rows vectorise
    let max = |a: f32, b: f32| if a > b { a } else { b };
    let min = |a: f32, b: f32| if a < b { a } else { b };
    let one = |v: f32, ml: f32, mr: f32, mu: f32, md: f32| -> u8 {
        let across = v - max(ml, mr);
        let vertical = v - max(mu, md);
        let bright =
            ((across > threshold) & (vertical > threshold)) | (max(across, vertical) > strong);
        let across = min(ml, mr) - v;
        let vertical = min(mu, md) - v;
        let dark =
            ((across > threshold) & (vertical > threshold)) | (max(across, vertical) > strong);
        u8::from(bright) | (u8::from(dark) << 1)
    };
    let slot = |row: usize| (row % ring) * w;
    let row = &work[y * w..(y + 1) * w];
    let mrow = &s.mean[slot(y)..][..w];
    let up = &s.mean[slot(y.saturating_sub(d))..][..w];
    let down = &s.mean[slot((y + d).min(h - 1))..][..w];
    let out = &mut s.marks[..w];
    // the edges, where the side means clip at the border
    for x in (0..d.min(w)).chain(w.saturating_sub(d).max(d.min(w))..w) {
        let (l, r) = (x.saturating_sub(d), (x + d).min(w - 1));
        out[x] = one(row[x], mrow[l], mrow[r], up[x], down[x]);
    }
    if w > 2 * d {
        for (i, o) in out[d..w - d].iter_mut().enumerate() {
            *o = one(row[d + i], mrow[i], mrow[2 * d + i], up[d + i], down[d + i]);
        }
    }
    comps.push_row(y, out);
}

/// A run of marked pixels in one row, `x0..=x1`.
#[derive(Clone, Copy)]
struct Run {
    y: u32,
    x0: u32,
    x1: u32,
}

/// Every component of each polarity (0 bright, 1 dark) of a whole mark image.
#[cfg(test)]
fn characters_with(
    marks: &[u8],
    h: usize,
    w: usize,
    each: &mut dyn FnMut(usize, Blob, usize, usize),
) {
    let mut c = Components::new(w);
    for y in 0..h {
        c.push_row(y, &marks[y * w..(y + 1) * w]);
    }
    c.finish(each)
}

/// Connected components built from runs along the rows, a row at a time (a
/// run touches a run of the row above when their spans, widened by one
/// pixel, overlap), so the cost follows the runs, not the pixels.
struct Components {
    w: usize,
    /// per polarity: the runs so far, their union-find parents, the row above's runs
    runs: [Vec<Run>; 2],
    parent: [Vec<u32>; 2],
    prev: [std::ops::Range<usize>; 2],
    bits: [Vec<u64>; 2],
}

impl Components {
    fn new(w: usize) -> Self {
        let words = w.div_ceil(64);
        Components {
            w,
            runs: Default::default(),
            parent: Default::default(),
            prev: [0..0, 0..0],
            bits: [vec![0u64; words], vec![0u64; words]],
        }
    }

    /// Add row `y` (rows come in order).
    fn push_row(&mut self, y: usize, marks: &[u8]) {
        let w = self.w;
        if marks.iter().all(|&m| m == 0) {
            self.prev = [
                self.runs[0].len()..self.runs[0].len(),
                self.runs[1].len()..self.runs[1].len(),
            ];
            return;
        }
        row_bits(marks, &mut self.bits);
        for p in 0..2 {
            let (runs, parent, bits) = (&mut self.runs[p], &mut self.parent[p], &self.bits[p]);
            let first = runs.len();
            let mut x = next_bit(bits, 0, true, w);
            while x < w {
                let end = next_bit(bits, x, false, w);
                parent.push(runs.len() as u32);
                runs.push(Run {
                    y: y as u32,
                    x0: x as u32,
                    x1: (end - 1) as u32,
                });
                x = next_bit(bits, end, true, w);
            }
            // join this row's runs to the touching runs of the row above
            let (mut i, mut j) = (self.prev[p].start, first);
            while i < self.prev[p].end && j < runs.len() {
                let (a, b) = (runs[i], runs[j]);
                if a.x1 + 1 < b.x0 {
                    i += 1;
                } else if b.x1 + 1 < a.x0 {
                    j += 1;
                } else {
                    union(parent, i, j);
                    if a.x1 < b.x1 {
                        i += 1;
                    } else {
                        j += 1;
                    }
                }
            }
            self.prev[p] = first..runs.len();
        }
    }

    /// Each component's box, pixels and runs, per polarity, in the order of
    /// its first run.
    fn finish(mut self, each: &mut dyn FnMut(usize, Blob, usize, usize)) {
        for p in 0..2 {
            let (runs, parent) = (&self.runs[p], &mut self.parent[p]);
            let mut slot = vec![u32::MAX; runs.len()];
            let mut comps: Vec<(Blob, usize, usize)> = Vec::new();
            for (i, run) in runs.iter().enumerate() {
                let r = find(parent, i);
                let (y, x0, x1) = (run.y as usize, run.x0 as usize, run.x1 as usize);
                if slot[r] == u32::MAX {
                    slot[r] = comps.len() as u32;
                    let b = Blob {
                        top: y,
                        left: x0,
                        bottom: y,
                        right: x1,
                        chars: 1,
                    };
                    comps.push((b, 0, 0));
                }
                let (b, n, nruns) = &mut comps[slot[r] as usize];
                b.top = b.top.min(y);
                b.bottom = b.bottom.max(y);
                b.left = b.left.min(x0);
                b.right = b.right.max(x1);
                *n += x1 - x0 + 1;
                *nruns += 1;
            }
            for (b, n, nruns) in comps {
                each(p, b, n, nruns);
            }
        }
    }

    /// The components that are the size and fill of a character, per polarity.
    fn characters(self, h: usize) -> [Vec<Blob>; 2] {
        let w = self.w;
        let max_side = (h.max(w) / 12).max(8);
        let mut out = [Vec::new(), Vec::new()];
        self.finish(&mut |p, b, n, runs| {
            // a character is at most max_side tall; a word of touching letters may be wide
            if b.h() > max_side || b.w() > w / 2 {
                return;
            }
            if let Some(b) = character(b, n, runs) {
                out[p].push(b);
            }
        });
        out
    }
}

/// A row of marks as two bit sets (bit 0 of each mark, bit 1), 64 pixels a word.
fn row_bits(row: &[u8], bits: &mut [Vec<u64>; 2]) {
    const LOW: u64 = 0x0101_0101_0101_0101;
    // gathers bit 0 of byte i into bit i of the top byte
    const GATHER: u64 = 0x0102_0408_1020_4080;
    for b in bits.iter_mut() {
        b.iter_mut().for_each(|v| *v = 0);
    }
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for (k, c) in chunks.enumerate() {
        let word = u64::from_le_bytes(c.try_into().unwrap());
        if word == 0 {
            continue;
        }
        let shift = 8 * (k % 8);
        for (p, b) in bits.iter_mut().enumerate() {
            let packed = (((word >> p) & LOW).wrapping_mul(GATHER)) >> 56;
            b[k / 8] |= packed << shift;
        }
    }
    let base = row.len() - tail.len();
    for (i, &m) in tail.iter().enumerate() {
        let x = base + i;
        for (p, b) in bits.iter_mut().enumerate() {
            b[x / 64] |= u64::from((m >> p) & 1) << (x % 64);
        }
    }
}

/// The first pixel at or after `from` whose bit is `set`, or `w`.
fn next_bit(bits: &[u64], from: usize, set: bool, w: usize) -> usize {
    let flip = if set { 0 } else { u64::MAX };
    let mut wi = from / 64;
    if wi >= bits.len() {
        return w;
    }
    let mut word = (bits[wi] ^ flip) & (u64::MAX << (from % 64));
    loop {
        if word != 0 {
            return (wi * 64 + word.trailing_zeros() as usize).min(w);
        }
        wi += 1;
        if wi == bits.len() {
            return w;
        }
        word = bits[wi] ^ flip;
    }
}

fn find(p: &mut [u32], i: usize) -> usize {
    let mut r = i;
    while p[r] as usize != r {
        r = p[r] as usize;
    }
    let mut i = i;
    while p[i] as usize != r {
        let n = p[i] as usize;
        p[i] = r as u32;
        i = n;
    }
    r
}

fn union(p: &mut [u32], a: usize, b: usize) {
    let (ra, rb) = (find(p, a), find(p, b));
    if ra != rb {
        let (lo, hi) = (ra.min(rb), ra.max(rb));
        p[hi] = lo as u32;
    }
}

/// A component of `n` pixels in `runs` row runs as a character: 5+ pixels
/// tall, not much wider than tall, strokes not a solid block; or a run of
/// touching characters (a word in bold or tight type), counted as its width
/// in character widths.
fn character(b: Blob, n: usize, runs: usize) -> Option<Blob> {
    let (bh, bw) = (b.h(), b.w());
    let fill = n as f32 / (bh * bw) as f32;
    if bh < 5 || n < 6 {
        return None;
    }
    if bw * 2 <= bh * 5 && (0.12..=0.85).contains(&fill) {
        return Some(b);
    }
    if bw > bh * 15 || !(0.2..=0.75).contains(&fill) {
        return None;
    }
    // touching letters still break each row into several strokes; a line or
    // an edge crosses a row once
    let chars = ((bw as f32 / (0.8 * bh as f32)).round() as usize).max(2);
    let mean_runs = runs as f32 / bh as f32;
    (mean_runs >= (0.6 * chars as f32).max(2.0)).then_some(Blob { chars, ..b })
}

/// Chain characters into lines; the longest chain, if one has MIN_CHARS.
fn lines(blobs: &[Blob], h: usize, w: usize) -> Option<TextFound> {
    if blobs.iter().map(|b| b.chars).sum::<usize>() < MIN_CHARS {
        return None;
    }
    let mut order: Vec<usize> = (0..blobs.len()).collect();
    order.sort_by_key(|&i| (blobs[i].left, blobs[i].top));
    // union-find over "next character in the same line"
    let mut parent: Vec<u32> = (0..blobs.len() as u32).collect();
    for (oi, &i) in order.iter().enumerate() {
        let a = blobs[i];
        for &j in &order[oi + 1..] {
            let b = blobs[j];
            let hmax = a.h().max(b.h()) as f32;
            if b.left as f32 > a.right as f32 + 1.5 * hmax {
                break;
            }
            // one height, one baseline: characters of a line share their top and bottom
            let similar = (a.h().min(b.h()) as f32) >= 0.7 * hmax;
            let aligned = (a.top.abs_diff(b.top) as f32) <= 0.25 * hmax
                && (a.bottom.abs_diff(b.bottom) as f32) <= 0.25 * hmax;
            if similar && aligned && b.left + 1 >= a.left {
                union(&mut parent, i, j);
            }
        }
    }
    let mut groups: std::collections::HashMap<usize, Vec<usize>> = Default::default();
    for i in 0..blobs.len() {
        let r = find(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    let chars = |g: &Vec<usize>| g.iter().map(|&i| blobs[i].chars).sum::<usize>();
    // three blobs at least: a line, or a device's edge, can pass for one long word
    let text: Vec<&Vec<usize>> = groups
        .values()
        .filter(|g| chars(g) >= MIN_CHARS && g.len() >= 3)
        .collect();
    let best = text.iter().max_by_key(|g| chars(g))?;
    let bb = best.iter().fold([usize::MAX, usize::MAX, 0, 0], |acc, &i| {
        let b = blobs[i];
        [
            acc[0].min(b.top),
            acc[1].min(b.left),
            acc[2].max(b.bottom),
            acc[3].max(b.right),
        ]
    });
    Some(TextFound {
        chars: chars(best),
        lines: text.len(),
        bbox: [
            bb[0] as f32 / h as f32,
            bb[1] as f32 / w as f32,
            (bb[2] + 1) as f32 / h as f32,
            (bb[3] + 1) as f32 / w as f32,
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth gradient with mild noise, and blocky "characters" drawn on it.
    fn image(n: usize, chars: usize, scale: usize, value: f32) -> Vec<f32> {
        let mut v: Vec<f32> = (0..n * n)
            .map(|i| {
                let (y, x) = ((i / n) as f32, (i % n) as f32);
                let noise = (((i as u64).wrapping_mul(6364136223846793005) >> 40) as f32
                    / 16_777_216.0
                    - 0.5)
                    * 0.04;
                0.3 + 0.3 * (x / n as f32) + 0.1 * (y / n as f32).sin() + noise
            })
            .collect();
        // an "E"-like glyph: 5x7 cells, three bars and a stem
        let glyph = [
            0b11111u8, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111,
        ];
        for c in 0..chars {
            for (r, bits) in glyph.iter().enumerate() {
                for col in 0..5 {
                    if bits & (1 << (4 - col)) != 0 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                let (y, x) = (
                                    n - 8 * scale - 12 + r * scale + dy,
                                    20 + c * 6 * scale + col * scale + dx,
                                );
                                if y < n && x < n {
                                    v[y * n + x] = value;
                                }
                            }
                        }
                    }
                }
            }
        }
        v
    }

    /// The first frame of a DICOM file as display values (gray).
    pub(super) fn display_frame(path: &str) -> (Vec<f32>, usize, usize) {
        let file = crate::read::open(std::path::Path::new(path)).unwrap();
        let (frame, rows, cols, channels) = first_frame(&file).unwrap();
        assert_eq!(channels, 1, "a gray image");
        (frame, rows, cols)
    }

    /// Debugging aid: RADFM_TEXT_DEBUG=file.dcm writes /tmp/text-debug.pgm (blobs outlined).
    #[test]
    #[ignore = "debugging aid"]
    fn debug_file() {
        let path = std::env::var("RADFM_TEXT_DEBUG").unwrap();
        let (frame, rows, cols) = display_frame(&path);
        let mut img: Vec<u8> = frame
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 200.0) as u8)
            .collect();
        let r = detect_with(&frame, rows, cols, &mut |bright, boxes, _| {
            for b in boxes {
                for y in b[0]..=b[2] {
                    for x in b[1]..=b[3] {
                        if y == b[0] || y == b[2] || x == b[1] || x == b[3] {
                            img[y * cols + x] = if bright { 255 } else { 128 };
                        }
                    }
                }
            }
            eprintln!("bright={bright}: {} blobs", boxes.len());
        });
        eprintln!("{r:?}");
        let t = std::time::Instant::now();
        for _ in 0..20 {
            std::hint::black_box(detect(&frame, rows, cols));
        }
        eprintln!("{:.2} ms per call", t.elapsed().as_secs_f64() * 50.0);
        let mut out = format!("P5\n{cols} {rows}\n255\n").into_bytes();
        out.extend(img);
        std::fs::write("/tmp/text-debug.pgm", out).unwrap();
    }

    /// Components the slow, obvious way: flood fill from each unseen pixel.
    fn flood(marks: &[u8], h: usize, w: usize, bit: u8) -> Vec<(Blob, usize, usize)> {
        let mut seen = vec![false; h * w];
        let mut out = Vec::new();
        for start in 0..h * w {
            if marks[start] & bit == 0 || seen[start] {
                continue;
            }
            seen[start] = true;
            let (mut stack, mut px) = (vec![start], vec![]);
            while let Some(i) = stack.pop() {
                px.push(i);
                let (y, x) = (i / w, i % w);
                for ny in y.saturating_sub(1)..(y + 2).min(h) {
                    for nx in x.saturating_sub(1)..(x + 2).min(w) {
                        let j = ny * w + nx;
                        if marks[j] & bit != 0 && !seen[j] {
                            seen[j] = true;
                            stack.push(j);
                        }
                    }
                }
            }
            let ys = px.iter().map(|i| i / w);
            let xs = px.iter().map(|i| i % w);
            let b = Blob {
                top: ys.clone().min().unwrap(),
                bottom: ys.max().unwrap(),
                left: xs.clone().min().unwrap(),
                right: xs.max().unwrap(),
                chars: 1,
            };
            // runs: pixels whose left neighbour is not in the component
            let set: std::collections::HashSet<usize> = px.iter().copied().collect();
            let runs = px
                .iter()
                .filter(|&&i| i % w == 0 || !set.contains(&(i - 1)))
                .count();
            out.push((b, px.len(), runs));
        }
        out
    }

    proptest::proptest! {
        /// Components from row runs are those of a flood fill, with the same
        /// boxes, pixel counts and runs, on masks of any width (not only
        /// multiples of 8 or 64) and density.
        #[test]
        fn components_from_runs_match_a_flood_fill(
            h in 1usize..40,
            w in 1usize..150,
            density in 0.05f64..0.7,
            seed in proptest::prelude::any::<u64>(),
        ) {
            let mut state = seed | 1;
            let marks: Vec<u8> = (0..h * w)
                .map(|_| {
                    let mut m = 0;
                    for bit in [1u8, 2] {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        if ((state >> 11) as f64 / (1u64 << 53) as f64) < density {
                            m |= bit;
                        }
                    }
                    m
                })
                .collect();
            let mut got = [Vec::new(), Vec::new()];
            characters_with(&marks, h, w, &mut |p, b, n, runs| got[p].push((b, n, runs)));
            for (p, bit) in [(0, 1u8), (1, 2)] {
                let key = |c: &(Blob, usize, usize)| (c.0.top, c.0.left, c.0.bottom, c.0.right, c.1, c.2);
                let mut want: Vec<_> = flood(&marks, h, w, bit).iter().map(key).collect();
                let mut have: Vec<_> = got[p].iter().map(key).collect();
                want.sort_unstable();
                have.sort_unstable();
                proptest::prop_assert_eq!(have, want);
            }
        }
    }

    #[test]
    fn a_line_of_characters_is_text_and_one_marker_is_not() {
        let t = detect(&image(256, 8, 2, 1.0), 256, 256).expect("eight characters");
        assert!(t.chars >= 7, "{t:?}");
        assert_eq!(t.region(), "bottom-left");
        assert!(
            detect(&image(256, 8, 2, 0.0), 256, 256).is_some(),
            "dark text"
        );
        assert!(
            detect(&image(256, 1, 3, 1.0), 256, 256).is_none(),
            "one side marker"
        );
        assert!(
            detect(&image(256, 0, 2, 1.0), 256, 256).is_none(),
            "no text"
        );
        // a large image is looked at at the working resolution: still found
        let big = image(2048, 10, 8, 1.0);
        assert!(detect(&big, 2048, 2048).is_some());
    }
}

#[cfg(test)]
mod timing {
    /// Timing aid (not a test of speed): cargo test --release -p radfm-dicom --lib detector_time -- --ignored --nocapture
    #[test]
    #[ignore = "timing aid"]
    fn detector_time() {
        // a file's first frame (RADFM_TEXT_DEBUG=file.dcm, 512 x 512), or noise
        let (img, n) = match std::env::var("RADFM_TEXT_DEBUG") {
            Ok(path) => {
                let (img, rows, cols) = super::tests::display_frame(&path);
                assert_eq!((rows, cols), (512, 512));
                (img, rows)
            }
            Err(_) => {
                let n = 512;
                let img = (0..n * n)
                    .map(|i| {
                        0.4 + 0.1
                            * (((i as u64).wrapping_mul(6364136223846793005) >> 40) as f32
                                / 16_777_216.0)
                    })
                    .collect();
                (img, n)
            }
        };
        let t = std::time::Instant::now();
        for _ in 0..50 {
            std::hint::black_box(super::detect(&img, n, n));
        }
        eprintln!(
            "{:.2} ms per 512x512 image",
            t.elapsed().as_secs_f64() * 1000.0 / 50.0
        );
        let time = |what: &str, f: &mut dyn FnMut()| {
            let t = std::time::Instant::now();
            for _ in 0..50 {
                f();
            }
            eprintln!(
                "  {what}: {:.2} ms",
                t.elapsed().as_secs_f64() * 1000.0 / 50.0
            );
        };
        let mut d = vec![];
        time("noise", &mut || {
            std::hint::black_box(super::noise_sigma(&img, n, n, &mut d));
        });
        let mut scratch = super::Scratch::default();
        time("means, marks and runs (streamed)", &mut || {
            let mut c = super::Components::new(n);
            super::stream_marks(&img, n, n, 0.1, &mut scratch, &mut c);
            std::hint::black_box(c.runs[0].len());
        });
        time("... and components", &mut || {
            let mut c = super::Components::new(n);
            super::stream_marks(&img, n, n, 0.1, &mut scratch, &mut c);
            std::hint::black_box(c.characters(n));
        });
    }
}
