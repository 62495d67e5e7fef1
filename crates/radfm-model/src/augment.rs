//! Training-time augmentations for radiographs, named as MONAI names them.
//!
//! Each one acts on one image, `C x S x S` row-major, and draws its randomness
//! from the generator it is given, so a batch is a function of (seed, step)
//! and a resumed run sees the same augmented images as an uninterrupted one.
//!
//! - `RandResizedCrop`: a window of bounded area and aspect ratio, resized back
//!   to `S x S`.
//! - `RandRotate`: a small rotation about the window's centre.
//! - `RandAdjustContrast`: a gamma curve on the image's own intensity range.
//! - `RandGaussianNoise`: additive noise.
//!
//! There is no flip: laterality matters in radiology (a left-sided effusion
//! must stay on the left, and the heart on its side).
//!
//! Crop and rotation are one inverse affine map sampled bilinearly; pixels that
//! fall outside the image take the image's minimum (the radiograph's black).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// probability of RandResizedCrop
    pub crop_prob: f64,
    /// area of the window as a fraction of the image, drawn uniformly
    pub crop_scale: (f64, f64),
    /// width / height of the window, drawn log-uniformly
    pub crop_ratio: (f64, f64),
    /// probability of RandRotate
    pub rotate_prob: f64,
    /// the angle is uniform in +-this many degrees
    pub rotate_degrees: f64,
    /// probability of RandAdjustContrast
    pub contrast_prob: f64,
    /// gamma, drawn log-uniformly
    pub gamma: (f64, f64),
    /// probability of RandGaussianNoise
    pub noise_prob: f64,
    /// noise standard deviation in the image's (normalised) units
    pub noise_std: f64,
}

impl Augment {
    /// The defaults: crops of 60-100% area with ratio 3:4 to 4:3, rotations
    /// up to 10 degrees, gamma 0.7-1.5 and noise of sd 0.05, each with
    /// probability 0.5 (the crop 0.8).
    pub fn standard() -> Augment {
        Augment {
            crop_prob: 0.8,
            crop_scale: (0.6, 1.0),
            crop_ratio: (0.75, 4.0 / 3.0),
            rotate_prob: 0.5,
            rotate_degrees: 10.0,
            contrast_prob: 0.5,
            gamma: (0.7, 1.5),
            noise_prob: 0.5,
            noise_std: 0.05,
        }
    }

    /// `none` or `standard`.
    pub fn named(name: &str) -> Option<Option<Augment>> {
        match name {
            "none" => Some(None),
            "standard" => Some(Some(Augment::standard())),
            _ => None,
        }
    }

    /// An augmented copy of `img` (`channels x size x size`).
    pub fn apply(
        &self,
        img: &[f32],
        channels: usize,
        size: usize,
        rng: &mut ChaCha8Rng,
    ) -> Vec<f32> {
        assert_eq!(img.len(), channels * size * size, "image is not C x S x S");
        let s = size as f64;
        // the window: centre (cx, cy), half sizes (hw, hh), all in pixels
        let (mut cx, mut cy, mut hw, mut hh) = (s / 2.0, s / 2.0, s / 2.0, s / 2.0);
        if rng.gen_bool(self.crop_prob) {
            let area = rng.gen_range(self.crop_scale.0..=self.crop_scale.1) * s * s;
            let (lo, hi) = (self.crop_ratio.0.ln(), self.crop_ratio.1.ln());
            let ratio = rng.gen_range(lo..=hi).exp();
            let w = (area * ratio).sqrt().min(s);
            let h = (area / ratio).sqrt().min(s);
            cx = rng.gen_range(w / 2.0..=s - w / 2.0);
            cy = rng.gen_range(h / 2.0..=s - h / 2.0);
            hw = w / 2.0;
            hh = h / 2.0;
        }
        let theta = if rng.gen_bool(self.rotate_prob) {
            rng.gen_range(-self.rotate_degrees..=self.rotate_degrees)
                .to_radians()
        } else {
            0.0
        };
        let gamma = if rng.gen_bool(self.contrast_prob) {
            let (lo, hi) = (self.gamma.0.ln(), self.gamma.1.ln());
            Some(rng.gen_range(lo..=hi).exp())
        } else {
            None
        };
        let noise = rng.gen_bool(self.noise_prob);

        let plane = size * size;
        let mut out = vec![0f32; img.len()];
        let identity = theta == 0.0 && hw == s / 2.0 && hh == s / 2.0;
        let (sin, cos) = theta.sin_cos();
        for c in 0..channels {
            let src = &img[c * plane..(c + 1) * plane];
            let lo = src.iter().copied().fold(f32::INFINITY, f32::min);
            let dst = &mut out[c * plane..(c + 1) * plane];
            if identity {
                dst.copy_from_slice(src);
            } else {
                for oy in 0..size {
                    for ox in 0..size {
                        // output pixel centre in [-1, 1], scaled to the window, rotated
                        let u = (ox as f64 + 0.5) / s * 2.0 - 1.0;
                        let v = (oy as f64 + 0.5) / s * 2.0 - 1.0;
                        let (dx, dy) = (u * hw, v * hh);
                        let x = cx + dx * cos - dy * sin - 0.5;
                        let y = cy + dx * sin + dy * cos - 0.5;
                        dst[oy * size + ox] = bilinear(src, size, x, y, lo);
                    }
                }
            }
            if let Some(g) = gamma {
                let hi = dst.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let range = (hi - lo).max(1e-7);
                for p in dst.iter_mut() {
                    let t = ((*p - lo) / range).clamp(0.0, 1.0) as f64;
                    *p = (t.powf(g) as f32) * range + lo;
                }
            }
        }
        if noise {
            for p in out.iter_mut() {
                *p += (gaussian(rng) * self.noise_std) as f32;
            }
        }
        out
    }
}

/// Bilinear sample at (x, y) in pixel-centre coordinates; `fill` outside.
fn bilinear(src: &[f32], size: usize, x: f64, y: f64, fill: f32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = ((x - x0) as f32, (y - y0) as f32);
    let at = |xi: f64, yi: f64| -> f32 {
        if xi < 0.0 || yi < 0.0 || xi >= size as f64 || yi >= size as f64 {
            fill
        } else {
            src[yi as usize * size + xi as usize]
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// A standard normal draw (Box-Muller).
fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn off() -> Augment {
        Augment {
            crop_prob: 0.0,
            rotate_prob: 0.0,
            contrast_prob: 0.0,
            noise_prob: 0.0,
            ..Augment::standard()
        }
    }

    /// A left-heavy test image: bright in the left third, a ramp elsewhere.
    fn image(size: usize) -> Vec<f32> {
        (0..size * size)
            .map(|k| {
                let (x, y) = (k % size, k / size);
                if x < size / 3 {
                    2.0
                } else {
                    (y as f32) / size as f32
                }
            })
            .collect()
    }

    #[test]
    fn all_off_is_the_identity() {
        let img = image(16);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(off().apply(&img, 1, 16, &mut rng), img);
    }

    #[test]
    fn same_generator_state_gives_the_same_image() {
        let img = image(24);
        let a = Augment::standard().apply(&img, 1, 24, &mut ChaCha8Rng::seed_from_u64(9));
        let b = Augment::standard().apply(&img, 1, 24, &mut ChaCha8Rng::seed_from_u64(9));
        let c = Augment::standard().apply(&img, 1, 24, &mut ChaCha8Rng::seed_from_u64(10));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn rotation_keeps_the_centre_and_never_flips_sides() {
        let size = 33;
        let img = image(size);
        let aug = Augment {
            rotate_prob: 1.0,
            ..off()
        };
        for seed in 0..20 {
            let out = aug.apply(&img, 1, size, &mut ChaCha8Rng::seed_from_u64(seed));
            // the centre pixel is a fixed point of a rotation about it
            let c = size / 2 * size + size / 2;
            assert!((out[c] - img[c]).abs() < 1e-5, "seed {seed}");
            // the bright band stays on the left (10 degrees cannot move it across)
            let left: f32 = (0..size).map(|y| out[y * size + 2]).sum();
            let right: f32 = (0..size).map(|y| out[y * size + size - 3]).sum();
            assert!(left > right + 10.0, "seed {seed}: {left} vs {right}");
        }
    }

    #[test]
    fn crop_windows_have_bounded_area_and_stay_inside() {
        // on a horizontal ramp (value = column), a crop shows the columns of its
        // window: their span is the window's width, and they stay in the image
        let size = 41;
        let img: Vec<f32> = (0..size * size).map(|k| (k % size) as f32).collect();
        let aug = Augment {
            crop_prob: 1.0,
            crop_scale: (0.5, 0.5),
            crop_ratio: (1.0, 1.0),
            ..off()
        };
        let want = 0.5f32.sqrt() * size as f32; // window width in pixels
        let mut lefts = Vec::new();
        for seed in 0..20 {
            let out = aug.apply(&img, 1, size, &mut ChaCha8Rng::seed_from_u64(seed));
            let lo = out.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert!(
                lo >= 0.0 && hi <= (size - 1) as f32,
                "seed {seed}: {lo}..{hi}"
            );
            assert!(
                (hi - lo - want).abs() < 1.5,
                "seed {seed}: span {} vs {want}",
                hi - lo
            );
            lefts.push(lo);
        }
        // the window moves about
        let spread = lefts.iter().copied().fold(0f32, f32::max)
            - lefts.iter().copied().fold(f32::INFINITY, f32::min);
        assert!(spread > 4.0, "{lefts:?}");
    }

    #[test]
    fn gamma_keeps_the_range_and_noise_has_its_sd() {
        let size = 64;
        let img = image(size);
        let g = Augment {
            contrast_prob: 1.0,
            gamma: (1.4, 1.4),
            ..off()
        };
        let out = g.apply(&img, 1, size, &mut ChaCha8Rng::seed_from_u64(1));
        let (lo, hi) = (
            out.iter().copied().fold(f32::INFINITY, f32::min),
            out.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        );
        assert!((lo - 0.0).abs() < 1e-6 && (hi - 2.0).abs() < 1e-6);
        // mid-range values darken under gamma > 1
        let k = 40 * size + 40;
        assert!(out[k] < img[k]);

        let n = Augment {
            noise_prob: 1.0,
            noise_std: 0.1,
            ..off()
        };
        let out = n.apply(&img, 1, size, &mut ChaCha8Rng::seed_from_u64(2));
        let d: Vec<f64> = out.iter().zip(&img).map(|(a, b)| (a - b) as f64).collect();
        let mean = d.iter().sum::<f64>() / d.len() as f64;
        let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / d.len() as f64).sqrt();
        assert!(mean.abs() < 0.01 && (sd - 0.1).abs() < 0.01, "{mean} {sd}");
    }
}
