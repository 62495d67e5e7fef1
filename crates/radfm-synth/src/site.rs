//! Sites differ the way real sites do: vendor and station, CR MONOCHROME1 vs
//! DX MONOCHROME2, stored bit depth, a VOI window or a VOI LUT Sequence,
//! detector noise and sharpness, contrast curve, field of view (pixel
//! spacing), collimation, side marker, and transfer syntax.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::font;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Syntax {
    ExplicitLittle,
    Deflated,
    ImplicitLittle,
}

impl Syntax {
    pub fn uid(self) -> &'static str {
        match self {
            Syntax::ExplicitLittle => "1.2.840.10008.1.2.1",
            Syntax::Deflated => "1.2.840.10008.1.2.1.99",
            Syntax::ImplicitLittle => "1.2.840.10008.1.2",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Site {
    pub index: usize,
    pub label: String,
    pub institution: String,
    pub institution_address: String,
    pub manufacturer: &'static str,
    pub model: &'static str,
    pub station: String,
    /// "CR" or "DX"
    pub modality: &'static str,
    pub monochrome1: bool,
    pub bits: u16,
    /// a VOI LUT Sequence instead of a window
    pub voi_lut: bool,
    /// noise standard deviation in line-integral units at unit transmission
    pub noise: f32,
    /// blur sigma in pixels at 512
    pub blur: f32,
    /// contrast curve exponent applied to the normalised signal
    pub gamma: f32,
    /// line-integral range mapped to the stored range
    pub l0: f32,
    pub l1: f32,
    pub fov_mm: f32,
    /// collimation margin (fraction of the image) on each side
    pub collimation: f32,
    pub marker: bool,
    pub syntax: Syntax,
}

const VENDORS: [(&str, &str); 4] = [
    ("Acme Radiography", "CR-Vision 500"),
    ("Borealis Imaging", "FlatPanel DR-12"),
    ("Cygnus Medical Systems", "Helios DX"),
    ("Deneb Diagnostics", "OmniRad 3"),
];

/// Site `k` of `count` (the first three are fixed archetypes; more vary from them).
pub fn site(k: usize) -> Site {
    let letter = (b'A' + (k % 26) as u8) as char;
    let arche = k % 3;
    let (manufacturer, model) = VENDORS[k % VENDORS.len()];
    let jitter = (k / 3) as f32;
    let mut s = Site {
        index: k,
        label: format!("site-{letter}"),
        institution: format!(
            "{} General Hospital",
            ["Northbridge", "Lakeside", "St. Aldric", "Harborview"][k % 4]
        ),
        institution_address: format!(
            "{} Hospital Road, {}",
            10 + k * 7,
            ["Easton", "Westfield", "Norwood", "Southam"][k % 4]
        ),
        manufacturer,
        model,
        station: format!("XR{:02}{letter}", 1 + k),
        modality: "DX",
        monochrome1: false,
        bits: 12,
        voi_lut: false,
        noise: 0.02,
        blur: 0.8,
        gamma: 1.0,
        l0: 0.8,
        l1: 5.6,
        fov_mm: 430.0,
        collimation: 0.0,
        marker: true,
        syntax: Syntax::ExplicitLittle,
    };
    match arche {
        0 => {
            // computed radiography: inverted, 10-bit, noisy and soft, uncompressed
            s.modality = "CR";
            s.monochrome1 = true;
            s.bits = 10;
            s.noise = 0.045;
            s.blur = 1.4;
            s.gamma = 0.85;
            s.l0 = 0.6;
            s.l1 = 5.9;
            s.fov_mm = 400.0;
            s.collimation = 0.03;
        }
        1 => {
            // flat panel DX with a VOI LUT Sequence, deflated
            s.bits = 12;
            s.voi_lut = true;
            s.noise = 0.015;
            s.blur = 0.6;
            s.gamma = 1.15;
            s.l0 = 1.0;
            s.l1 = 5.4;
            s.fov_mm = 430.0;
            s.syntax = Syntax::Deflated;
            s.marker = false;
        }
        _ => {
            // 14-bit DX, brighter curve, implicit little endian
            s.bits = 14;
            s.noise = 0.028;
            s.blur = 0.9;
            s.gamma = 0.72;
            s.l0 = 0.5;
            s.l1 = 6.2;
            s.fov_mm = 460.0;
            s.collimation = 0.015;
            s.syntax = Syntax::ImplicitLittle;
        }
    }
    s.gamma *= 1.0 + 0.05 * jitter;
    s.noise *= 1.0 + 0.1 * jitter;
    s
}

fn blur(img: &mut [f32], n: usize, sigma: f32) {
    if sigma < 0.3 {
        return;
    }
    let r = (sigma * 3.0).ceil() as isize;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let ks: f32 = k.iter().sum();
    let mut tmp = vec![0f32; img.len()];
    for y in 0..n {
        for x in 0..n {
            let mut acc = 0.0;
            for (j, w) in k.iter().enumerate() {
                let xx = (x as isize + j as isize - r).clamp(0, n as isize - 1) as usize;
                acc += w * img[y * n + xx];
            }
            tmp[y * n + x] = acc / ks;
        }
    }
    for y in 0..n {
        for x in 0..n {
            let mut acc = 0.0;
            for (j, w) in k.iter().enumerate() {
                let yy = (y as isize + j as isize - r).clamp(0, n as isize - 1) as usize;
                acc += w * tmp[yy * n + x];
            }
            img[y * n + x] = acc / ks;
        }
    }
}

fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.gen_range(1e-7..1.0);
    let u2: f32 = rng.gen_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// An acquired image: stored values and the display-oriented intensity in [0, 1]
/// (higher = more attenuation, as a MONOCHROME2 display shows it).
pub struct Acquired {
    pub stored: Vec<u16>,
    pub display: Vec<f32>,
}

/// Detector, processing and stored-value mapping for a line-integral map.
pub fn acquire(
    site: &Site,
    n: usize,
    mut l: Vec<f32>,
    marker: Option<&str>,
    rng: &mut ChaCha8Rng,
) -> Acquired {
    blur(&mut l, n, site.blur * n as f32 / 512.0);
    let max = ((1u32 << site.bits) - 1) as f32;
    let margin = (site.collimation * n as f32) as usize;
    let mut display = vec![0f32; n * n];
    for (i, d) in display.iter_mut().enumerate() {
        let (x, y) = (i % n, i / n);
        if x < margin || y < margin || x >= n - margin || y >= n - margin {
            *d = 1.0; // outside the collimation: unexposed
            continue;
        }
        // quantum noise grows where fewer photons arrive
        let li = l[i] + site.noise * (l[i] * 0.5).exp().min(12.0) * gauss(rng);
        let p = ((li - site.l0) / (site.l1 - site.l0)).clamp(0.0, 1.0);
        *d = p.powf(site.gamma);
    }
    if let Some(m) = marker {
        let scale = (n / 170).max(1);
        let x = margin + n / 25;
        font::draw(&mut display, n, x, margin + n / 25, scale, m, 1.0);
    }
    let stored = display
        .iter()
        .map(|&d| {
            let v = (d * max).round();
            (if site.monochrome1 { max - v } else { v }) as u16
        })
        .collect();
    Acquired { stored, display }
}

/// Burn `lines` of text into the image (after acquisition, as a modality
/// overlay or a secondary capture would), in a random style: size (font
/// pixels of 1 to 4 image pixels, wide or tall), weight, slant, spacing,
/// position (any corner or the middle of the top or bottom edge), bright or
/// dark text at a legible contrast (0.25 to 0.6 of the display range against
/// the pixels under it), with or without a box behind it.
pub fn burn_in(site: &Site, n: usize, img: &mut Acquired, lines: &[String], rng: &mut ChaCha8Rng) {
    let base = (n / 256).max(1);
    let sx = (base * rng.gen_range(2..=5) / 3).max(1);
    let sy = match rng.gen_range(0..4) {
        0 => sx * 2,
        1 => (sx * 2 / 3).max(1),
        _ => sx,
    }
    .max(1);
    let style = font::Style {
        sx,
        sy,
        bold: rng.gen_bool(0.3),
        slant: if rng.gen_bool(0.2) { sy * 2 } else { 0 },
        spacing: rng.gen_range(1..=2),
    };
    let lh = style.height() + sy * 3;
    let width = lines
        .iter()
        .map(|l| style.width(l))
        .max()
        .unwrap_or(0)
        .min(n);
    let height = lh * lines.len();
    let pad = n / 40;
    let (x, y) = match rng.gen_range(0..6) {
        0 => (pad, pad),
        1 => (n.saturating_sub(width + pad), pad),
        2 => (pad, n.saturating_sub(height + pad)),
        3 => (
            n.saturating_sub(width + pad),
            n.saturating_sub(height + pad),
        ),
        4 => (n.saturating_sub(width) / 2, pad),
        _ => (n.saturating_sub(width) / 2, n.saturating_sub(height + pad)),
    };
    // a box behind the text, as many overlays have
    let boxed = rng.gen_bool(0.3);
    // legible: bright or dark by 0.25 to 0.6 against what is under the text
    let under = {
        let (mut sum, mut count) = (0f32, 0usize);
        for yy in y..(y + height).min(n) {
            for xx in x..(x + width).min(n) {
                sum += img.display[yy * n + xx];
                count += 1;
            }
        }
        sum / count.max(1) as f32
    };
    let contrast = rng.gen_range(0.25..=0.6f32);
    let dark = !boxed
        && if under + contrast > 1.0 {
            true
        } else if under - contrast < 0.0 {
            false
        } else {
            rng.gen_bool(0.3)
        };
    let mut changed = Vec::new();
    if boxed {
        let shade = rng.gen_range(0.0..0.15f32);
        for yy in y.saturating_sub(sy)..(y + height).min(n) {
            for xx in x.saturating_sub(sx)..(x + width + sx).min(n) {
                img.display[yy * n + xx] = shade;
                changed.push(yy * n + xx);
            }
        }
    }
    let value = if boxed {
        rng.gen_range(0.6..=1.0f32)
    } else if dark {
        (under - contrast).max(0.0)
    } else {
        (under + contrast).min(1.0)
    };
    for (k, line) in lines.iter().enumerate() {
        changed.extend(font::draw_styled(
            &mut img.display,
            n,
            x,
            y + k * lh,
            &style,
            line,
            value,
        ));
    }
    let max = ((1u32 << site.bits) - 1) as f32;
    for i in changed {
        let v = (img.display[i].clamp(0.0, 1.0) * max).round();
        img.stored[i] = (if site.monochrome1 { max - v } else { v }) as u16;
    }
}
