//! The chest phantom: an attenuation model. Each structure contributes a
//! thickness (cm) of soft tissue, air, bone or metal along each ray; the line
//! integral `L = mu_soft*(soft - air) + mu_bone*bone + mu_metal*metal` is what
//! the detector sees (`I = exp(-L)`), before the site's response curve,
//! blur and noise (see [`crate::site`]).
//!
//! Coordinates are normalised: `u` left to right, `v` top to bottom, both in
//! [0, 1]. Frontal views are displayed as radiographs are: the patient's right
//! on the image left.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::plan::{Finding, Observation, Side, View, Zone};

pub const MU_SOFT: f32 = 0.20;
pub const MU_BONE: f32 = 0.30;
pub const MU_METAL: f32 = 3.0;

/// Body habitus of one patient.
#[derive(Debug, Clone, Copy)]
pub struct Habitus {
    /// width scale (about 0.9-1.1; men wider)
    pub width: f32,
    /// AP depth scale (soft-tissue thickness)
    pub depth: f32,
    /// lung height scale (lower in the elderly and the obese)
    pub height: f32,
    pub female: bool,
}

/// Thickness maps on an `n` x `n` grid.
pub struct Canvas {
    pub n: usize,
    pub soft: Vec<f32>,
    pub air: Vec<f32>,
    pub bone: Vec<f32>,
    pub metal: Vec<f32>,
    /// vessel markings (soft tissue inside the lungs)
    pub vessel: Vec<f32>,
}

impl Canvas {
    fn new(n: usize) -> Canvas {
        let z = vec![0f32; n * n];
        Canvas {
            n,
            soft: z.clone(),
            air: z.clone(),
            bone: z.clone(),
            metal: z.clone(),
            vessel: z,
        }
    }

    /// The line integral.
    pub fn attenuation(&self) -> Vec<f32> {
        (0..self.n * self.n)
            .map(|i| {
                let air = self.air[i].min(self.soft[i] * 0.92);
                MU_SOFT * (self.soft[i] - air + self.vessel[i])
                    + MU_BONE * self.bone[i]
                    + MU_METAL * self.metal[i]
            })
            .collect()
    }
}

/// Which map a stroke adds to.
#[derive(Clone, Copy)]
enum Layer {
    Soft,
    Bone,
    Metal,
    Vessel,
}

fn layer(c: &mut Canvas, l: Layer) -> &mut Vec<f32> {
    match l {
        Layer::Soft => &mut c.soft,
        Layer::Bone => &mut c.bone,
        Layer::Metal => &mut c.metal,
        Layer::Vessel => &mut c.vessel,
    }
}

/// Add a cylinder of radius `r` (normalised) along a polyline: thickness `2*sqrt(r^2-d^2) * scale_cm/r`
/// (so `scale_cm` is the thickness at the centre), taking the maximum where samples overlap.
fn stroke(c: &mut Canvas, l: Layer, pts: &[(f32, f32)], r: f32, scale_cm: f32, ring: bool) {
    let n = c.n as f32;
    let rp = (r * n).max(0.7);
    let mut tmp: std::collections::HashMap<usize, f32> = std::collections::HashMap::new();
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt() * n;
        let steps = (len / (rp * 0.5).max(0.5)).ceil().max(1.0) as usize;
        for k in 0..=steps {
            let t = k as f32 / steps as f32;
            let (x, y) = ((a.0 + (b.0 - a.0) * t) * n, (a.1 + (b.1 - a.1) * t) * n);
            let (x0, x1) = (
                (x - rp).floor().max(0.0) as usize,
                ((x + rp).ceil() as usize).min(c.n - 1),
            );
            let (y0, y1) = (
                (y - rp).floor().max(0.0) as usize,
                ((y + rp).ceil() as usize).min(c.n - 1),
            );
            if x - rp > n || y - rp > n || x + rp < 0.0 || y + rp < 0.0 {
                continue;
            }
            for py in y0..=y1 {
                for px in x0..=x1 {
                    let d2 =
                        ((px as f32 + 0.5 - x).powi(2) + (py as f32 + 0.5 - y).powi(2)) / (rp * rp);
                    if d2 >= 1.0 {
                        continue;
                    }
                    // a bone has a bright cortex: thicker path at the edges
                    let prof = if ring {
                        0.55 + 0.45 * d2
                    } else {
                        (1.0 - d2).sqrt()
                    };
                    let v = scale_cm * prof;
                    let e = tmp.entry(py * c.n + px).or_insert(0.0);
                    *e = e.max(v);
                }
            }
        }
    }
    let m = layer(c, l);
    for (i, v) in tmp {
        m[i] += v;
    }
}

/// Every pixel of an `n` x `n` grid as (index, u, v) at pixel centres.
fn pixels(n: usize) -> impl Iterator<Item = (usize, f32, f32)> {
    let nf = n as f32;
    (0..n * n).map(move |i| (i, ((i % n) as f32 + 0.5) / nf, ((i / n) as f32 + 0.5) / nf))
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Geometry of the frontal chest shared by anatomy and findings.
#[derive(Debug, Clone, Copy)]
struct Frontal {
    /// lung centres (image left = patient right)
    xr: f32,
    xl: f32,
    w: f32,
    apex: f32,
    base_r: f32,
    base_l: f32,
    dome: f32,
    dmax: f32,
    heart_cx: f32,
    heart_cy: f32,
    heart_hw: f32,
    heart_hh: f32,
    med_hw: f32,
    hila: [(f32, f32); 2],
}

impl Frontal {
    fn lung_center(&self, right: bool) -> f32 {
        if right {
            self.xr
        } else {
            self.xl
        }
    }

    fn base(&self, right: bool) -> f32 {
        if right {
            self.base_r
        } else {
            self.base_l
        }
    }

    /// Half-width of a lung at height v.
    fn half_width(&self, v: f32) -> f32 {
        self.w * (0.3 + 0.7 * ((v - self.apex) / 0.28).clamp(0.0, 1.0).sqrt())
    }

    /// Diaphragm height under u for one lung.
    fn diaphragm(&self, right: bool, u: f32) -> f32 {
        let xc = self.lung_center(right);
        let t = ((u - xc) / (self.w * 1.1)).clamp(-1.0, 1.0);
        self.base(right) - self.dome * (1.0 - t * t)
    }

    /// Inside-ness of (u, v) in a lung: 0 outside, rising to 1 inside.
    fn lung(&self, right: bool, u: f32, v: f32) -> f32 {
        let xc = self.lung_center(right);
        let hw = self.half_width(v);
        let eh = (hw - (u - xc).abs()) / hw;
        let ev = (self.diaphragm(right, u) - v) / 0.10;
        let ea = (v - self.apex) / 0.07;
        (eh * 2.2).min(ev).min(ea).clamp(0.0, 1.0)
    }

    fn zone_v(&self, z: Zone) -> f32 {
        match z {
            Zone::Upper => self.apex + 0.12,
            Zone::Middle => 0.47,
            Zone::Lower => (self.base_r + self.base_l) / 2.0 - self.dome - 0.05,
        }
    }
}

fn has(findings: &[Finding], o: Observation) -> Option<&Finding> {
    findings.iter().find(|f| f.obs() == o)
}

fn sides(s: Side) -> Vec<bool> {
    match s {
        Side::Right => vec![true],
        Side::Left => vec![false],
        Side::Bilateral => vec![true, false],
    }
}

/// A random branching vessel tree from `(x, y)` towards `angle`.
#[allow(clippy::too_many_arguments)]
fn vessel_tree(
    c: &mut Canvas,
    rng: &mut ChaCha8Rng,
    x: f32,
    y: f32,
    angle: f32,
    len: f32,
    r: f32,
    depth: u32,
) {
    let mut pts = vec![(x, y)];
    let (mut px, mut py, mut a) = (x, y, angle);
    let segs = 4;
    for _ in 0..segs {
        a += rng.gen_range(-0.25..0.25);
        px += a.cos() * len / segs as f32;
        py += a.sin() * len / segs as f32;
        pts.push((px, py));
    }
    stroke(c, Layer::Vessel, &pts, r, r * 180.0, false);
    if depth > 0 {
        for k in 0..2 {
            let da = if k == 0 { -0.45 } else { 0.45 } + rng.gen_range(-0.2..0.2);
            vessel_tree(c, rng, px, py, a + da, len * 0.62, r * 0.65, depth - 1);
        }
    }
}

/// Render a frontal (PA or AP) or lateral chest.
pub fn render(
    n: usize,
    view: View,
    hab: Habitus,
    findings: &[Finding],
    fov_mm: f32,
    rng: &mut ChaCha8Rng,
) -> Canvas {
    match view {
        View::Lateral => render_lateral(n, hab, findings, rng),
        _ => render_frontal(n, view == View::AP, hab, findings, fov_mm, rng),
    }
}

fn render_frontal(
    n: usize,
    ap: bool,
    hab: Habitus,
    findings: &[Finding],
    fov_mm: f32,
    rng: &mut ChaCha8Rng,
) -> Canvas {
    let mut c = Canvas::new(n);
    let nf = n as f32;
    let mm = 1.0 / fov_mm; // one millimetre in normalised units
    let w = 0.155 * hab.width;
    let sep = 0.175 * hab.width;
    let mut g = Frontal {
        xr: 0.5 - sep,
        xl: 0.5 + sep,
        w,
        apex: 0.13,
        base_r: 0.13 + 0.64 * hab.height,
        base_l: 0.15 + 0.64 * hab.height,
        dome: 0.085,
        dmax: 15.0 * hab.depth,
        heart_cx: 0.0,
        heart_cy: 0.0,
        heart_hw: 0.0,
        heart_hh: 0.125,
        med_hw: 0.052,
        hila: [(0.5 - 0.085, 0.46), (0.5 + 0.085, 0.47)],
    };
    // volume loss raises a hemidiaphragm
    if let Some(f) = has(findings, Observation::Atelectasis) {
        let lift = 0.012 * f.severity as f32;
        match f.laterality {
            Side::Left => g.base_l -= lift,
            _ => g.base_r -= lift,
        }
    }
    let thoracic_width = 2.0 * (sep + w);
    let ctr = has(findings, Observation::Cardiomegaly)
        .and_then(|f| f.ctr)
        .unwrap_or(0.44 + rng.gen_range(-0.03..0.03));
    let mag = if ap { 1.08 } else { 1.0 };
    g.heart_hw = ctr * thoracic_width / 2.0 * mag;
    g.heart_cx = 0.5 + 0.22 * g.heart_hw;
    g.heart_cy = (g.base_r + g.base_l) / 2.0 - g.dome - 0.075;
    if has(findings, Observation::EnlargedCardiomediastinum).is_some() {
        g.med_hw *= 1.75;
    }
    let body_a = 0.43 * hab.width;
    let depth_cm = 22.0 * hab.depth;

    // soft tissue, lungs, heart, mediastinum, trachea, gastric bubble
    for py in 0..n {
        let v = (py as f32 + 0.5) / nf;
        let a = body_a * (0.52 + 0.48 * smoothstep(0.02, 0.2, v));
        for px in 0..n {
            let u = (px as f32 + 0.5) / nf;
            let i = py * n + px;
            let t = 1.0 - ((u - 0.5) / a).powi(2);
            if t <= 0.0 {
                continue;
            }
            c.soft[i] = depth_cm * t.sqrt() * (0.75 + 0.25 * smoothstep(0.0, 0.15, v));
            let lr = g.lung(true, u, v);
            let ll = g.lung(false, u, v);
            let mut air = g.dmax * (lr.max(ll)).sqrt();
            // heart silhouette
            let hx = (u - g.heart_cx) / g.heart_hw;
            let hy = (v - g.heart_cy) / g.heart_hh;
            let hd = hx * hx + hy * hy;
            let mh = 1.0 - smoothstep(0.85, 1.0, hd);
            // mediastinum and aortic knob
            let mm_ = 1.0 - smoothstep(g.med_hw * 0.85, g.med_hw, (u - 0.5).abs());
            let med = if v < g.heart_cy { mm_ } else { 0.0 };
            let kx = (u - (0.5 + g.med_hw + 0.012)) / 0.032;
            let ky = (v - 0.30) / 0.032;
            let knob = 1.0 - smoothstep(0.8, 1.0, kx * kx + ky * ky);
            air *= (1.0 - 0.78 * mh) * (1.0 - med) * (1.0 - 0.7 * knob);
            // trachea and main bronchi
            let tr = if v < 0.34 {
                1.0 - smoothstep(0.010, 0.014, (u - 0.5).abs())
            } else {
                0.0
            };
            air += 2.2 * tr;
            // gastric bubble under the left hemidiaphragm
            let gx = (u - (g.xl + 0.03)) / 0.05;
            let gy = (v - (g.base_l - g.dome + 0.045)) / 0.022;
            if gx * gx + gy * gy < 1.0 && v > g.diaphragm(false, u) + 0.01 {
                air += 3.0;
            }
            // breast shadows
            if hab.female {
                for xc in [g.xr - 0.02, g.xl + 0.02] {
                    let bx = (u - xc) / 0.15;
                    let by = (v - (g.base_r - 0.1)) / 0.11;
                    let r2 = bx * bx + by * by;
                    if r2 < 1.0 && v > g.base_r - 0.16 {
                        c.soft[i] += 5.0 * (1.0 - r2).sqrt();
                    }
                }
            }
            c.air[i] = air;
        }
    }

    // spine with vertebral bodies and disc spaces
    for py in 0..n {
        let v = (py as f32 + 0.5) / nf;
        let disc = ((v * 24.0).fract() - 0.5).abs() < 0.08;
        for px in 0..n {
            let u = (px as f32 + 0.5) / nf;
            let d = (u - 0.5).abs() / 0.036;
            if d < 1.0 {
                c.bone[py * n + px] += if disc { 1.4 } else { 3.0 } * (0.6 + 0.4 * d * d);
            }
        }
    }
    // ribs: posterior (from the spine, lateral and down) and anterior (from the wall, medial and down)
    let fracture = has(findings, Observation::Fracture);
    for right in [true, false] {
        let s = if right { -1.0 } else { 1.0 };
        for k in 0..10 {
            let v0 = 0.115 + k as f32 * 0.06 * hab.height;
            let mut pts = Vec::new();
            for j in 0..=24 {
                let t = j as f32 / 24.0;
                let u = 0.5 + s * (0.035 + (sep + w * 1.05) * t);
                let v = v0 - 0.025 * (std::f32::consts::PI * t).sin() + 0.07 * t * t;
                pts.push((u, v));
            }
            let fractured = fracture.is_some_and(|f| {
                f.rib == Some(k as u8 + 1) && (f.laterality == Side::Right) == right
            });
            if fractured {
                let f = fracture.expect("checked");
                let cut = 15;
                let (a, b) = pts.split_at(cut);
                if f.kind == "healed" {
                    stroke(&mut c, Layer::Bone, a, 0.011, 1.3, true);
                    stroke(&mut c, Layer::Bone, b, 0.011, 1.3, true);
                    let (x, y) = pts[cut];
                    stroke(
                        &mut c,
                        Layer::Bone,
                        &[(x - 0.008, y), (x + 0.008, y)],
                        0.017,
                        1.1,
                        false,
                    );
                } else {
                    let a = &a[..a.len() - 1];
                    let b: Vec<(f32, f32)> = b.iter().map(|&(x, y)| (x, y + 0.007)).collect();
                    stroke(&mut c, Layer::Bone, a, 0.011, 1.3, true);
                    stroke(&mut c, Layer::Bone, &b, 0.011, 1.3, true);
                }
            } else {
                stroke(&mut c, Layer::Bone, &pts, 0.011, 1.3, true);
            }
            if k < 9 {
                let mut ant = Vec::new();
                for j in 0..=16 {
                    let t = j as f32 / 16.0;
                    let u = 0.5 + s * ((sep + w * 1.02) - (sep + w - 0.09) * t);
                    let v = v0 + 0.07 + 0.13 * t;
                    ant.push((u, v));
                }
                stroke(&mut c, Layer::Bone, &ant, 0.008, 0.7, true);
            }
        }
        // clavicle
        let cy = if ap { 0.085 } else { 0.12 };
        let cl: Vec<(f32, f32)> = (0..=12)
            .map(|j| {
                let t = j as f32 / 12.0;
                (
                    0.5 + s * (0.035 + 0.29 * t),
                    cy + 0.035 * (1.0 - t) - 0.012 * (std::f32::consts::PI * t).sin(),
                )
            })
            .collect();
        stroke(&mut c, Layer::Bone, &cl, 0.013, 1.6, true);
        // scapula: medial border and a thin blade (over the lungs on AP views)
        let sx = 0.5 + s * if ap { 0.27 } else { 0.33 };
        stroke(
            &mut c,
            Layer::Bone,
            &[(sx, 0.14), (sx - s * 0.03, 0.28), (sx + s * 0.01, 0.44)],
            0.006,
            0.9,
            false,
        );
        for py in 0..n {
            let v = (py as f32 + 0.5) / nf;
            if !(0.14..0.44).contains(&v) {
                continue;
            }
            for px in 0..n {
                let u = (px as f32 + 0.5) / nf;
                if (u - sx) * s > 0.0 && (u - sx).abs() < 0.08 * (1.0 - (v - 0.14) / 0.3) {
                    c.bone[py * n + px] += 0.5;
                }
            }
        }
    }
    // vessel markings from each hilum
    for (h, &(hx, hy)) in g.hila.iter().enumerate() {
        let s = if h == 0 { -1.0f32 } else { 1.0 };
        for k in 0..6 {
            let base = if s < 0.0 { std::f32::consts::PI } else { 0.0 };
            let a = base + s * (-1.1 + k as f32 * 0.42) + rng.gen_range(-0.1..0.1);
            vessel_tree(&mut c, rng, hx, hy, a, 0.12, 0.0055, 3);
        }
    }
    // keep vessels inside the lungs (fading at the periphery)
    for py in 0..n {
        let v = (py as f32 + 0.5) / nf;
        for px in 0..n {
            let u = (px as f32 + 0.5) / nf;
            let i = py * n + px;
            let inside = g.lung(true, u, v).max(g.lung(false, u, v));
            c.vessel[i] *= inside;
        }
    }

    // findings
    for f in findings {
        match f.obs() {
            Observation::LungOpacity | Observation::Consolidation | Observation::Pneumonia => {
                airspace(&mut c, &g, f, rng)
            }
            Observation::LungLesion => {
                let right = f.laterality != Side::Left;
                let xc = g.lung_center(right) + rng.gen_range(-0.35..0.35) * g.w;
                let yc = g.zone_v(f.location) + rng.gen_range(-0.04..0.04);
                let r = f.size_mm / 2.0 * mm;
                let rp = r * nf;
                for py in ((yc * nf - rp) as usize)..=((yc * nf + rp) as usize).min(n - 1) {
                    for px in
                        ((xc * nf - rp).max(0.0) as usize)..=((xc * nf + rp) as usize).min(n - 1)
                    {
                        let d2 = ((px as f32 + 0.5) / nf - xc).powi(2)
                            + ((py as f32 + 0.5) / nf - yc).powi(2);
                        if d2 < r * r {
                            let t = 2.0 * (r * r - d2).sqrt() * fov_mm / 10.0 * 1.4;
                            let i = py * n + px;
                            c.air[i] = (c.air[i] - t).max(0.0);
                        }
                    }
                }
            }
            Observation::Edema => {
                let s = 0.25 + 0.17 * f.severity as f32;
                for py in 0..n {
                    let v = (py as f32 + 0.5) / nf;
                    for px in 0..n {
                        let u = (px as f32 + 0.5) / nf;
                        let i = py * n + px;
                        let d = g
                            .hila
                            .iter()
                            .map(|&(x, y)| (u - x).powi(2) + (v - y).powi(2))
                            .fold(f32::MAX, f32::min);
                        c.air[i] *= 1.0 - s * (-d / 0.012).exp();
                        c.vessel[i] *= 1.0 + 0.8 * s;
                    }
                }
                // Kerley B lines: short horizontal lines at the lateral lung bases
                for right in [true, false] {
                    let sg = if right { -1.0 } else { 1.0 };
                    for _ in 0..(4 + 3 * f.severity) {
                        let v = g.base(right) - rng.gen_range(0.01..0.14);
                        let u0 = g.lung_center(right) + sg * (g.half_width(v) - 0.004);
                        stroke(
                            &mut c,
                            Layer::Vessel,
                            &[(u0, v), (u0 - sg * 0.022, v)],
                            0.0016,
                            0.5,
                            false,
                        );
                    }
                }
            }
            Observation::Atelectasis => {
                for right in sides(f.laterality) {
                    let xc = g.lung_center(right);
                    let v = g.base(right) - g.dome - 0.05 - rng.gen_range(0.0..0.04);
                    let hl = 0.05 + 0.02 * f.severity as f32;
                    let pts = [(xc - hl, v + 0.01), (xc, v), (xc + hl, v - 0.008)];
                    stroke(
                        &mut c,
                        Layer::Soft,
                        &pts,
                        0.005 + 0.002 * f.severity as f32,
                        3.0,
                        false,
                    );
                    let pts2: Vec<_> = pts.to_vec();
                    // the band replaces air
                    let mut tmp = Canvas::new(n);
                    stroke(
                        &mut tmp,
                        Layer::Soft,
                        &pts2,
                        0.005 + 0.002 * f.severity as f32,
                        8.0,
                        false,
                    );
                    for i in 0..n * n {
                        c.air[i] = (c.air[i] - tmp.soft[i]).max(0.0);
                    }
                }
            }
            Observation::Pneumothorax => {
                let right = f.laterality != Side::Left;
                let rim = f.size_mm * mm;
                let xc = g.lung_center(right);
                let sg = if right { -1.0 } else { 1.0 };
                for (i, u, v) in pixels(n) {
                    if g.lung(right, u, v) <= 0.0 || (u - xc) * sg < -0.3 * g.w {
                        continue;
                    }
                    let lat = g.half_width(v) - (u - xc).abs();
                    let apical = v - g.apex;
                    let d = if (u - xc) * sg > 0.0 {
                        lat.min(apical)
                    } else {
                        apical
                    };
                    if d < rim {
                        c.vessel[i] = 0.0;
                        c.air[i] = c.air[i].max(g.dmax * 1.05);
                    } else if d < rim + 1.5 / nf {
                        c.soft[i] += 0.9; // the visceral pleural line
                    }
                }
            }
            Observation::PleuralEffusion => {
                for right in sides(f.laterality) {
                    let h = f.size_mm * mm;
                    let xc = g.lung_center(right);
                    let sg = if right { -1.0 } else { 1.0 };
                    for py in 0..n {
                        let v = (py as f32 + 0.5) / nf;
                        for px in 0..n {
                            let u = (px as f32 + 0.5) / nf;
                            let lat = ((u - xc) * sg / g.w).max(0.0);
                            let level = g.base(right) - h - 0.5 * h.min(0.06) * lat * lat;
                            let i = py * n + px;
                            let inside = g.lung(right, u, v) > 0.0
                                || (v > level && (u - xc).abs() < g.w && v < g.base(right) + 0.01);
                            if inside && v > level {
                                let k = smoothstep(level, level + 0.012, v);
                                c.air[i] *= 1.0 - k;
                                c.vessel[i] *= 1.0 - k;
                                c.soft[i] += 1.5 * k;
                            }
                        }
                    }
                }
            }
            Observation::PleuralOther => {
                let right = f.laterality != Side::Left;
                let xc = g.lung_center(right);
                let sg = if right { -1.0 } else { 1.0 };
                let th = (4.0 + 3.0 * f.severity as f32) * mm;
                for py in 0..n {
                    let v = (py as f32 + 0.5) / nf;
                    for px in 0..n {
                        let u = (px as f32 + 0.5) / nf;
                        if g.lung(right, u, v) <= 0.0 || (u - xc) * sg < 0.0 {
                            continue;
                        }
                        let lat = g.half_width(v) - (u - xc).abs();
                        if lat < th {
                            let i = py * n + px;
                            c.air[i] *= 0.25;
                            c.soft[i] += 1.0;
                        }
                    }
                }
            }
            Observation::SupportDevices => device(&mut c, f, &g),
            _ => {}
        }
    }
    c
}

/// Consolidation (with air bronchograms), pneumonia (lobar or patchy) and hazy opacity.
fn airspace(c: &mut Canvas, g: &Frontal, f: &Finding, rng: &mut ChaCha8Rng) {
    let n = c.n;
    let nf = n as f32;
    let right = f.laterality != Side::Left;
    let xc = g.lung_center(right);
    let (blobs, density, r0): (usize, f32, f32) = match (f.obs(), f.kind) {
        (Observation::Pneumonia, "lobar") => (1, 0.9, 0.0),
        (Observation::Pneumonia, _) => (5 + f.severity as usize, 0.65, 0.035),
        (Observation::Consolidation, _) => (2 + f.severity as usize, 0.88, 0.04),
        _ => (2 + f.severity as usize, 0.45, 0.045),
    };
    let mut mask = vec![0f32; n * n];
    if f.kind == "lobar" {
        // a lower lobe: everything below an oblique fissure
        for py in 0..n {
            let v = (py as f32 + 0.5) / nf;
            for px in 0..n {
                let u = (px as f32 + 0.5) / nf;
                let fissure = 0.52 + 0.12 * ((u - xc) / g.w).abs() - 0.02 * f.severity as f32;
                if g.lung(right, u, v) > 0.0 {
                    mask[py * n + px] = smoothstep(fissure, fissure + 0.015, v);
                }
            }
        }
    } else {
        let vz = g.zone_v(f.location);
        let centers: Vec<(f32, f32, f32)> = (0..blobs)
            .map(|_| {
                (
                    xc + rng.gen_range(-0.5..0.5) * g.w,
                    vz + rng.gen_range(-0.06..0.06),
                    r0 * (0.7 + 0.25 * f.severity as f32) * rng.gen_range(0.7..1.3),
                )
            })
            .collect();
        for py in 0..n {
            let v = (py as f32 + 0.5) / nf;
            for px in 0..n {
                let u = (px as f32 + 0.5) / nf;
                let inside = g.lung(right, u, v);
                if inside <= 0.0 {
                    continue;
                }
                let m: f32 = centers
                    .iter()
                    .map(|&(x, y, r)| (-((u - x).powi(2) + (v - y).powi(2)) / (r * r)).exp())
                    .sum();
                mask[py * n + px] = m.min(1.0) * inside.min(1.0);
            }
        }
    }
    let before: Vec<f32> = c.air.clone();
    for i in 0..n * n {
        c.air[i] *= 1.0 - density * mask[i];
    }
    // air bronchograms: branching lucent lines inside dense consolidation
    if density > 0.8 {
        let mut br = Canvas::new(n);
        let (hx, hy) = g.hila[usize::from(!right)];
        let s = if right { -1.0 } else { 1.0 };
        for k in 0..4 {
            let a = if s < 0.0 { std::f32::consts::PI } else { 0.0 } + s * (0.3 + k as f32 * 0.25);
            vessel_tree(&mut br, rng, hx, hy, a, 0.14, 0.004, 2);
        }
        for i in 0..n * n {
            if mask[i] > 0.5 && br.vessel[i] > 0.0 {
                c.air[i] = c.air[i].max(before[i] * 0.55);
            }
        }
    }
}

fn device(c: &mut Canvas, f: &Finding, g: &Frontal) {
    match f.kind {
        "et_tube" => {
            for dx in [-0.0065f32, 0.0065] {
                stroke(
                    c,
                    Layer::Metal,
                    &[(0.5 + dx, 0.0), (0.5 + dx, 0.27)],
                    0.0016,
                    0.06,
                    false,
                );
            }
            stroke(
                c,
                Layer::Soft,
                &[(0.5, 0.0), (0.5, 0.27)],
                0.008,
                0.8,
                false,
            );
        }
        "central_line" => {
            let pts = [
                (0.5 - 0.27, 0.17),
                (0.5 - 0.16, 0.19),
                (0.5 - 0.05, 0.24),
                (0.5 - 0.03, 0.32),
                (0.5 - 0.028, 0.40),
            ];
            stroke(c, Layer::Metal, &pts, 0.0022, 0.05, false);
        }
        "pacemaker" => {
            let (gx, gy) = (0.5 + 0.26, 0.19);
            let n = c.n as f32;
            let (hw, hh) = (0.035, 0.025);
            for py in ((gy - hh) * n) as usize..((gy + hh) * n) as usize {
                for px in ((gx - hw) * n) as usize..((gx + hw) * n) as usize {
                    let i = py * c.n + px;
                    c.metal[i] += 0.6;
                }
            }
            let ra = [
                (gx - 0.02, gy + 0.01),
                (0.6, 0.24),
                (0.53, 0.33),
                (0.49, g.heart_cy - 0.02),
            ];
            let rv = [
                (gx - 0.02, gy + 0.02),
                (0.61, 0.26),
                (0.54, 0.36),
                (g.heart_cx + 0.02, g.heart_cy + 0.05),
            ];
            stroke(c, Layer::Metal, &ra, 0.0018, 0.05, false);
            stroke(c, Layer::Metal, &rv, 0.0018, 0.05, false);
        }
        _ => {
            // sternotomy wires: small loops down the midline
            for k in 0..6 {
                let v = 0.27 + k as f32 * 0.055;
                let loop_: Vec<(f32, f32)> = (0..=16)
                    .map(|j| {
                        let a = j as f32 / 16.0 * std::f32::consts::TAU;
                        (0.5 + 0.011 * a.cos(), v + 0.005 * a.sin())
                    })
                    .collect();
                stroke(c, Layer::Metal, &loop_, 0.0016, 0.06, false);
            }
            // epicardial pacing wires over the heart
            for dx in [-0.02f32, 0.015] {
                let pts = [
                    (0.5 + dx, 0.58),
                    (0.5 + dx * 1.5, g.heart_cy - 0.02),
                    (g.heart_cx + dx, g.heart_cy + 0.04),
                ];
                stroke(c, Layer::Metal, &pts, 0.0012, 0.05, false);
            }
        }
    }
}

fn render_lateral(n: usize, hab: Habitus, findings: &[Finding], rng: &mut ChaCha8Rng) -> Canvas {
    let mut c = Canvas::new(n);
    let nf = n as f32;
    let depth_cm = 32.0 * hab.width;
    let base = 0.13 + 0.66 * hab.height;
    let ctr_scale = has(findings, Observation::Cardiomegaly)
        .and_then(|f| f.ctr)
        .map_or(1.0, |r| r / 0.45);
    let effusion = has(findings, Observation::PleuralEffusion).map(|f| f.size_mm / 430.0);
    for py in 0..n {
        let v = (py as f32 + 0.5) / nf;
        for px in 0..n {
            let u = (px as f32 + 0.5) / nf;
            let i = py * n + px;
            let t = 1.0 - ((u - 0.5) / (0.40 * hab.depth)).powi(2);
            if t <= 0.0 {
                continue;
            }
            c.soft[i] = depth_cm * t.sqrt();
            // one lung field (both lungs superimposed) between sternum and spine, over the domes
            let dome = base - 0.09 * (1.0 - ((u - 0.48) / 0.32).powi(2)).max(0.0);
            let eh = ((u - 0.16) / 0.05).min((0.80 - u) / 0.05);
            let ev = (dome - v) / 0.08;
            let ea = (v - 0.10) / 0.08;
            let mut air = 13.0 * hab.depth * eh.min(ev).min(ea).clamp(0.0, 1.0).sqrt();
            // heart: anterior and inferior
            let hx = (u - 0.34) / (0.15 * ctr_scale);
            let hy = (v - (base - 0.15)) / 0.14;
            let mh = 1.0 - smoothstep(0.85, 1.0, hx * hx + hy * hy);
            air *= 1.0 - 0.7 * mh;
            // trachea
            let tx = 0.47 + 0.06 * v;
            if v < 0.36 {
                air += 2.0 * (1.0 - smoothstep(0.012, 0.016, (u - tx).abs()));
            }
            // posterior costophrenic recess filled by an effusion
            if let Some(h) = effusion {
                let level = base - h * 1.2 + 0.25 * (0.78 - u).max(0.0);
                if v > level && u > 0.5 {
                    air *= 1.0 - smoothstep(level, level + 0.012, v);
                }
            }
            c.air[i] = air;
            // spine posterior, sternum anterior
            if (0.74..0.84).contains(&u) {
                let disc = ((v * 24.0).fract() - 0.5).abs() < 0.08;
                c.bone[i] += if disc { 1.0 } else { 2.6 };
            }
            if (0.145..0.16).contains(&u) && (0.15..0.55).contains(&v) {
                c.bone[i] += 1.4;
            }
        }
    }
    // rib arcs crossing the field
    for k in 0..10 {
        let v0 = 0.13 + k as f32 * 0.06 * hab.height;
        let pts: Vec<(f32, f32)> = (0..=20)
            .map(|j| {
                let t = j as f32 / 20.0;
                (
                    0.80 - 0.62 * t,
                    v0 + 0.12 * t + rng.gen_range(-0.002..0.002),
                )
            })
            .collect();
        stroke(&mut c, Layer::Bone, &pts, 0.007, 0.6, true);
    }
    for f in findings
        .iter()
        .filter(|f| f.obs() == Observation::SupportDevices)
    {
        match f.kind {
            "et_tube" => stroke(
                &mut c,
                Layer::Metal,
                &[(0.47, 0.0), (0.485, 0.27)],
                0.002,
                0.06,
                false,
            ),
            "central_line" => stroke(
                &mut c,
                Layer::Metal,
                &[(0.45, 0.12), (0.44, 0.25), (0.42, 0.38)],
                0.002,
                0.05,
                false,
            ),
            "pacemaker" => {
                stroke(
                    &mut c,
                    Layer::Metal,
                    &[(0.2, 0.18), (0.24, 0.18)],
                    0.02,
                    0.5,
                    false,
                );
                stroke(
                    &mut c,
                    Layer::Metal,
                    &[(0.22, 0.2), (0.35, 0.4), (0.32, base - 0.12)],
                    0.0018,
                    0.05,
                    false,
                );
            }
            _ => {
                for k in 0..5 {
                    let v = 0.25 + k as f32 * 0.06;
                    stroke(
                        &mut c,
                        Layer::Metal,
                        &[(0.14, v), (0.165, v)],
                        0.002,
                        0.06,
                        false,
                    );
                }
            }
        }
    }
    c
}
