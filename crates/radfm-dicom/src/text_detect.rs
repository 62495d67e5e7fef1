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

/// [`detect`], showing each polarity's character blobs (top, left, bottom,
/// right at the working resolution) and that resolution to `seen`.
pub fn detect_with(
    img: &[f32],
    rows: usize,
    cols: usize,
    seen: &mut dyn FnMut(bool, &[[usize; 4]], (usize, usize)),
) -> Option<TextFound> {
    if rows < 16 || cols < 16 || img.len() < rows * cols {
        return None;
    }
    let k = rows.max(cols).div_ceil(WORK_SIDE).max(1);
    let (h, w) = (rows / k, cols / k);
    let work: Vec<f32> = if k == 1 {
        img[..rows * cols].to_vec()
    } else {
        let mut v = vec![0f32; h * w];
        let inv = 1.0 / (k * k) as f32;
        for y in 0..h {
            for x in 0..w {
                let mut s = 0.0;
                for dy in 0..k {
                    let row = &img[(y * k + dy) * cols + x * k..][..k];
                    s += row.iter().sum::<f32>();
                }
                v[y * w + x] = s * inv;
            }
        }
        v
    };
    let noise = noise_sigma(&work, h, w);
    let threshold = (5.0 * noise).max(0.1);
    // the background on each side of a pixel: box means a little way off,
    // left and right, or above and below. A stroke stands out from both sides
    // of it in one direction at least (even where text straddles a collimator
    // border); a pixel beside a step edge has its own side's value on one side.
    let (r, d) = (5usize, 8usize);
    let mean = box_mean(&work, h, w, r);
    // Text is dense in sharp steps; most of an image has none. Tiles with
    // few steps along their rows are skipped (with their neighbours kept, so
    // that a character across a tile edge is whole).
    let busy = busy_tiles(&work, h, w, 0.75 * threshold);
    if !busy.iter().any(|&b| b) {
        return None;
    }
    let tw = w.div_ceil(TILE);
    // both polarities in one pass: bit 0 bright, bit 1 dark
    let mut marks = vec![0u8; h * w];
    let strong = 1.6 * threshold;
    for y in 0..h {
        let (up, down) = (y.saturating_sub(d) * w, (y + d).min(h - 1) * w);
        let row = y * w;
        for x in 0..w {
            if !busy[(y / TILE) * tw + x / TILE] {
                continue;
            }
            let (l, r) = (row + x.saturating_sub(d), row + (x + d).min(w - 1));
            let v = work[row + x];
            let (ml, mr, mu, md) = (mean[l], mean[r], mean[up + x], mean[down + x]);
            let across = v - ml.max(mr);
            let vertical = v - mu.max(md);
            let bright =
                (across > threshold && vertical > threshold) || across.max(vertical) > strong;
            let across = ml.min(mr) - v;
            let vertical = mu.min(md) - v;
            let dark =
                (across > threshold && vertical > threshold) || across.max(vertical) > strong;
            marks[row + x] = u8::from(bright) | (u8::from(dark) << 1);
        }
    }
    let mut found: Option<TextFound> = None;
    for bright in [true, false] {
        let bit = if bright { 1 } else { 2 };
        let mask: Vec<bool> = marks.iter().map(|&m| m & bit != 0).collect();
        let blobs = characters(&mask, h, w);
        let boxes: Vec<[usize; 4]> = blobs
            .iter()
            .map(|b| [b.top, b.left, b.bottom, b.right])
            .collect();
        seen(bright, &boxes, (h, w));
        if let Some(t) = lines(&blobs, h, w) {
            if found.as_ref().is_none_or(|f| t.chars > f.chars) {
                found = Some(t);
            }
        }
    }
    found
}

const TILE: usize = 32;

/// Tiles (TILE x TILE) with enough steps above `step` along their rows to
/// hold a few characters, and their eight neighbours.
fn busy_tiles(v: &[f32], h: usize, w: usize, step: f32) -> Vec<bool> {
    let (th, tw) = (h.div_ceil(TILE), w.div_ceil(TILE));
    let mut count = vec![0u32; th * tw];
    for y in 0..h {
        let row = &v[y * w..(y + 1) * w];
        let base = (y / TILE) * tw;
        for (x, p) in row.windows(2).enumerate() {
            if (p[1] - p[0]).abs() > step {
                count[base + x / TILE] += 1;
            }
        }
    }
    let mut busy = vec![false; th * tw];
    for ty in 0..th {
        for tx in 0..tw {
            if count[ty * tw + tx] >= 30 {
                for ny in ty.saturating_sub(1)..(ty + 2).min(th) {
                    for nx in tx.saturating_sub(1)..(tx + 2).min(tw) {
                        busy[ny * tw + nx] = true;
                    }
                }
            }
        }
    }
    busy
}

/// Noise from the median absolute difference of horizontal neighbours.
fn noise_sigma(v: &[f32], h: usize, w: usize) -> f32 {
    let mut d: Vec<f32> = Vec::with_capacity(h * w / 4);
    for y in (0..h).step_by(2) {
        for x in (0..w - 1).step_by(2) {
            d.push((v[y * w + x + 1] - v[y * w + x]).abs());
        }
    }
    if d.is_empty() {
        return 0.0;
    }
    let mid = d.len() / 2;
    let (_, m, _) = d.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    // MAD of a difference of two normals: sigma * sqrt(2) * 0.6745
    *m / 0.954
}

/// Mean over a (2r+1)^2 box, clipped at the edges: running sums along rows,
/// then along columns.
fn box_mean(v: &[f32], h: usize, w: usize, r: usize) -> Vec<f32> {
    let mut rows = vec![0f32; h * w];
    for y in 0..h {
        let src = &v[y * w..(y + 1) * w];
        let dst = &mut rows[y * w..(y + 1) * w];
        let mut acc: f32 = src[..r.min(w)].iter().sum();
        for x in 0..w {
            if x + r < w {
                acc += src[x + r];
            }
            if x > r {
                acc -= src[x - r - 1];
            }
            let n = (x + r + 1).min(w) - x.saturating_sub(r);
            dst[x] = acc / n as f32;
        }
    }
    let mut out = vec![0f32; h * w];
    let mut acc = vec![0f32; w];
    for row in rows.chunks_exact(w).take(r.min(h)) {
        for (a, &b) in acc.iter_mut().zip(row) {
            *a += b;
        }
    }
    for y in 0..h {
        if y + r < h {
            for (a, &b) in acc.iter_mut().zip(&rows[(y + r) * w..(y + r + 1) * w]) {
                *a += b;
            }
        }
        if y > r {
            for (a, &b) in acc.iter_mut().zip(&rows[(y - r - 1) * w..(y - r) * w]) {
                *a -= b;
            }
        }
        let inv = 1.0 / ((y + r + 1).min(h) - y.saturating_sub(r)) as f32;
        for (o, &a) in out[y * w..(y + 1) * w].iter_mut().zip(&acc) {
            *o = a * inv;
        }
    }
    out
}

/// 8-connected components of the mask that are the size and fill of a character.
fn characters(mask: &[bool], h: usize, w: usize) -> Vec<Blob> {
    let mut seen = vec![false; h * w];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    let mut pixels: Vec<usize> = Vec::new();
    let max_side = (h.max(w) / 12).max(8);
    for start in 0..h * w {
        if !mask[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut b, mut n) = (
            Blob {
                top: start / w,
                left: start % w,
                bottom: start / w,
                right: start % w,
                chars: 1,
            },
            0usize,
        );
        let mut too_big = false;
        pixels.clear();
        while let Some(i) = stack.pop() {
            n += 1;
            pixels.push(i);
            let (y, x) = (i / w, i % w);
            b.top = b.top.min(y);
            b.bottom = b.bottom.max(y);
            b.left = b.left.min(x);
            b.right = b.right.max(x);
            // a character is at most max_side tall; a word of touching letters may be wide
            if b.h() > max_side || b.w() > w / 2 {
                too_big = true;
            }
            for dy in [-1i64, 0, 1] {
                for dx in [-1i64, 0, 1] {
                    let (ny, nx) = (y as i64 + dy, x as i64 + dx);
                    if ny < 0 || nx < 0 || ny >= h as i64 || nx >= w as i64 {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if mask[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        if too_big {
            continue;
        }
        let (bh, bw) = (b.h(), b.w());
        let fill = n as f32 / (bh * bw) as f32;
        // a character: 5+ pixels tall, not much wider than tall, strokes not a
        // solid block; or a run of touching characters (a word in bold or
        // tight type), counted as its width in character widths
        if bh >= 5 && n >= 6 {
            if bw * 2 <= bh * 5 && (0.12..=0.85).contains(&fill) {
                out.push(b);
            } else if bw <= bh * 15 && (0.2..=0.75).contains(&fill) {
                // touching letters still break each row into several strokes;
                // a line or an edge crosses a row once
                let chars = ((bw as f32 / (0.8 * bh as f32)).round() as usize).max(2);
                let mut runs = vec![0usize; bh];
                let mut on = vec![false; bw];
                for row in 0..bh {
                    on.iter_mut().for_each(|v| *v = false);
                    for &i in pixels.iter().filter(|&&i| i / w == b.top + row) {
                        on[i % w - b.left] = true;
                    }
                    runs[row] =
                        on.windows(2).filter(|p| p[1] && !p[0]).count() + usize::from(on[0]);
                }
                let mean_runs = runs.iter().sum::<usize>() as f32 / bh as f32;
                if mean_runs >= (0.6 * chars as f32).max(2.0) {
                    out.push(Blob { chars, ..b });
                }
            }
        }
    }
    out
}

/// Chain characters into lines; the longest chain, if one has MIN_CHARS.
fn lines(blobs: &[Blob], h: usize, w: usize) -> Option<TextFound> {
    if blobs.iter().map(|b| b.chars).sum::<usize>() < MIN_CHARS {
        return None;
    }
    let mut order: Vec<usize> = (0..blobs.len()).collect();
    order.sort_by_key(|&i| (blobs[i].left, blobs[i].top));
    // union-find over "next character in the same line"
    let mut parent: Vec<usize> = (0..blobs.len()).collect();
    fn find(p: &mut [usize], i: usize) -> usize {
        let mut r = i;
        while p[r] != r {
            r = p[r];
        }
        let mut i = i;
        while p[i] != r {
            let n = p[i];
            p[i] = r;
            i = n;
        }
        r
    }
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
                let (ra, rb) = (find(&mut parent, i), find(&mut parent, j));
                parent[ra] = rb;
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

    /// Debugging aid: RADFM_TEXT_DEBUG=file.dcm writes /tmp/text-debug.pgm (blobs outlined).
    #[test]
    #[ignore = "debugging aid"]
    fn debug_file() {
        let path = std::env::var("RADFM_TEXT_DEBUG").unwrap();
        let file = crate::read::open(std::path::Path::new(&path)).unwrap();
        let raw = crate::pixels::decode_raw(&file).unwrap();
        let module = crate::PixelModule::from_dataset(&file.dataset).unwrap();
        let pipeline = crate::GrayscalePipeline::from_dataset(&file.dataset, &module);
        let map = pipeline.display_map(&raw);
        let [_, rows, cols, samples] = raw.shape();
        let mut frame = Vec::new();
        pipeline.display_into(&raw, &map, 0, rows * cols * samples, &mut frame);
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
        let n = 512;
        let img: Vec<f32> = (0..n * n)
            .map(|i| {
                0.4 + 0.1
                    * (((i as u64).wrapping_mul(6364136223846793005) >> 40) as f32 / 16_777_216.0)
            })
            .collect();
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
        time("noise", &mut || {
            std::hint::black_box(super::noise_sigma(&img, n, n));
        });
        time("box mean", &mut || {
            std::hint::black_box(super::box_mean(&img, n, n, 5));
        });
        let mask: Vec<bool> = img.iter().map(|&v| v > 0.49).collect();
        eprintln!("  ({} mask pixels)", mask.iter().filter(|&&m| m).count());
        time("components", &mut || {
            std::hint::black_box(super::characters(&mask, n, n));
        });
    }
}
