//! The image preprocessing a checkpoint expects, read from the checkpoint:
//! Hugging Face's `preprocessor_config.json` for HF directories, the run's
//! config for radfm runs. Silent preprocessing mistakes are the first
//! complaint of this field, so every step is explicit and [`Preprocess::describe`]
//! records it (in `embed.json`).
//!
//! Hugging Face image processors (the PIL-based ones, `use_fast=False`) see
//! an 8-bit RGB image: they resize it with PIL, center-crop, rescale by
//! 1/255 and normalise with the channel means and deviations. Here the
//! dataset's display values (0 to 1, from up to 16 stored bits) are rounded
//! to 8 bits first, and PIL's resampling is reproduced exactly, fixed-point
//! arithmetic and 8-bit intermediate rows included, so that the same 8-bit
//! image gives transformers' pixel values (`tools/preprocess_reference.py`,
//! the `preprocess` test). One documented difference: transformers handed a
//! float image in [0, 1] truncates it to 8 bits (`astype(uint8)`); this rounds.

use serde_json::{json, Value};

/// PIL's resampling filters, with PIL's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Nearest,
    Lanczos,
    Bilinear,
    Bicubic,
    Box,
    Hamming,
}

impl Filter {
    /// PIL's number (`Image.Resampling`): 0 nearest, 1 lanczos, 2 bilinear,
    /// 3 bicubic, 4 box, 5 hamming.
    pub fn from_pil(n: i64) -> Option<Filter> {
        Some(match n {
            0 => Filter::Nearest,
            1 => Filter::Lanczos,
            2 => Filter::Bilinear,
            3 => Filter::Bicubic,
            4 => Filter::Box,
            5 => Filter::Hamming,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Filter::Nearest => "nearest",
            Filter::Lanczos => "lanczos",
            Filter::Bilinear => "bilinear",
            Filter::Bicubic => "bicubic",
            Filter::Box => "box",
            Filter::Hamming => "hamming",
        }
    }

    fn support(self) -> f64 {
        match self {
            Filter::Nearest | Filter::Box => 0.5,
            Filter::Bilinear | Filter::Hamming => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let sinc = |x: f64| {
            if x == 0.0 {
                1.0
            } else {
                let x = x * std::f64::consts::PI;
                x.sin() / x
            }
        };
        match self {
            Filter::Nearest | Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    // PIL writes these two constants as C floats
                    x.sin() / x * (f64::from(0.54f32) + f64::from(0.46f32) * x.cos())
                }
            }
            Filter::Bicubic => {
                let a = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

/// How the image is resized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// to exactly this height and width
    Exact { height: usize, width: usize },
    /// the shorter side to this, the longer in proportion (truncated, as
    /// transformers does)
    ShortestEdge(usize),
}

/// The resizing method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resampler {
    /// PIL's, on 8-bit values (Hugging Face processors)
    Pil(Filter),
    /// radfm's anti-aliased triangle filter on float values
    /// (`radfm_dicom::resample::resize`, what `radfm pretrain` trains on)
    Radfm,
}

/// An image's frames as model input ([`Preprocess::frames`]), or why not.
pub type Frames = Result<Vec<Vec<f32>>, String>;

/// Every step from a dataset image (display values, 0 to 1, one channel) to
/// a model input (channels, height, width).
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// where the steps were read from
    pub source: String,
    /// round to 8 bits first (an HF processor sees 8-bit images)
    pub to_8bit: bool,
    pub resize: Option<(Size, Resampler)>,
    /// center crop to (height, width)
    pub crop: Option<(usize, usize)>,
    /// multiply by this (1/255 for 8-bit values); none: values stay 0 to 1
    pub rescale: Option<f64>,
    /// per output channel
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// output channels: 1, or 3 with the grey value in each
    pub channels: usize,
}

impl Preprocess {
    /// From a Hugging Face `preprocessor_config.json`.
    pub fn from_hf(cfg: &Value, source: &str) -> Result<Preprocess, String> {
        let flag = |k: &str, default: bool| cfg.get(k).and_then(Value::as_bool).unwrap_or(default);
        let floats = |k: &str| -> Result<Vec<f32>, String> {
            match cfg.get(k) {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_f64()
                            .map(|x| x as f32)
                            .ok_or(format!("{k}: not numbers"))
                    })
                    .collect(),
                Some(v) if v.is_number() => Ok(vec![v.as_f64().unwrap() as f32; 3]),
                _ => Err(format!("{k} is missing")),
            }
        };
        let size_of = |v: &Value, what: &str| -> Result<Size, String> {
            if let Some(n) = v.as_u64() {
                return Ok(Size::Exact {
                    height: n as usize,
                    width: n as usize,
                });
            }
            let get = |k: &str| v.get(k).and_then(Value::as_u64).map(|n| n as usize);
            match (get("height"), get("width"), get("shortest_edge")) {
                (Some(height), Some(width), _) => Ok(Size::Exact { height, width }),
                (_, _, Some(s)) => Ok(Size::ShortestEdge(s)),
                _ => Err(format!(
                    "{what}: {v} is neither height/width nor shortest_edge"
                )),
            }
        };
        let resize = if flag("do_resize", true) {
            let size = cfg.get("size").ok_or("do_resize without size")?;
            let filter = match cfg.get("resample") {
                None => Filter::Bilinear,
                Some(v) => v
                    .as_i64()
                    .and_then(Filter::from_pil)
                    .ok_or(format!("resample {v} is not a PIL filter number"))?,
            };
            Some((size_of(size, "size")?, Resampler::Pil(filter)))
        } else {
            None
        };
        let crop = if flag("do_center_crop", false) {
            match size_of(
                cfg.get("crop_size")
                    .ok_or("do_center_crop without crop_size")?,
                "crop_size",
            )? {
                Size::Exact { height, width } => Some((height, width)),
                Size::ShortestEdge(s) => Some((s, s)),
            }
        } else {
            None
        };
        let rescale = if flag("do_rescale", true) {
            Some(
                cfg.get("rescale_factor")
                    .and_then(Value::as_f64)
                    .unwrap_or(1.0 / 255.0),
            )
        } else {
            None
        };
        let (mean, std) = if flag("do_normalize", true) {
            (floats("image_mean")?, floats("image_std")?)
        } else {
            (vec![0.0; 3], vec![1.0; 3])
        };
        if mean.len() != std.len() || !matches!(mean.len(), 1 | 3) {
            return Err(format!(
                "image_mean has {} values and image_std {}; expected 1 or 3 each",
                mean.len(),
                std.len()
            ));
        }
        if std.contains(&0.0) {
            return Err("image_std holds a zero".into());
        }
        Ok(Preprocess {
            source: source.to_string(),
            to_8bit: true,
            resize,
            crop,
            rescale,
            channels: mean.len(),
            mean,
            std,
        })
    }

    /// What `radfm pretrain` trains on: the grey image resized to
    /// `size` x `size` by radfm's filter, normalised as (x - 0.5) / 0.25.
    pub fn radfm(size: usize, source: &str) -> Preprocess {
        Preprocess {
            source: source.to_string(),
            to_8bit: false,
            resize: Some((
                Size::Exact {
                    height: size,
                    width: size,
                },
                Resampler::Radfm,
            )),
            crop: None,
            rescale: None,
            mean: vec![0.5],
            std: vec![0.25],
            channels: 1,
        }
    }

    /// The steps, for `embed.json`.
    pub fn describe(&self) -> Value {
        let resize = self.resize.map(|(size, how)| {
            let size = match size {
                Size::Exact { height, width } => json!({"height": height, "width": width}),
                Size::ShortestEdge(s) => json!({"shortest_edge": s}),
            };
            let filter = match how {
                Resampler::Pil(f) => format!("PIL {} (8-bit, fixed point)", f.name()),
                Resampler::Radfm => "radfm anti-aliased triangle (float)".to_string(),
            };
            json!({"size": size, "filter": filter})
        });
        json!({
            "source": self.source,
            "input": "display values 0..1 (VOI/window applied at ingest), channels averaged to grey",
            "to_8bit": if self.to_8bit { json!("round(v * 255)") } else { json!(false) },
            "resize": resize,
            "center_crop": self.crop.map(|(h, w)| json!({"height": h, "width": w})),
            "rescale_factor": self.rescale,
            "mean": self.mean,
            "std": self.std,
            "channels": self.channels,
            "grey_to_channels": if self.channels == 3 { "replicated" } else { "none" },
        })
    }

    /// The output's (height, width) for an input of `rows` x `cols`.
    pub fn output_size(&self, rows: usize, cols: usize) -> (usize, usize) {
        let (h, w) = match self.resize {
            Some((size, _)) => target(size, rows, cols),
            None => (rows, cols),
        };
        self.crop.unwrap_or((h, w))
    }

    /// Every frame of an image, in grey, as model input.
    pub fn frames(&self, px: &crate::reader::Pixels) -> Frames {
        let [f, rows, cols, _] = px.shape;
        (0..f)
            .map(|k| self.apply(&px.grey(k), rows, cols))
            .collect()
    }

    /// A grey image (`rows` x `cols`, display values) as model input,
    /// channels first.
    pub fn apply(&self, grey: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>, String> {
        if grey.len() != rows * cols || rows == 0 || cols == 0 {
            return Err(format!("{} values for a {rows} x {cols} image", grey.len()));
        }
        // 8-bit or float values after the resize, with the size reached
        let (values, h, w): (Vec<f64>, usize, usize) = if self.to_8bit {
            let bytes: Vec<u8> = grey
                .iter()
                .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect();
            let (bytes, h, w) = match self.resize {
                Some((size, Resampler::Pil(f))) => {
                    let (h, w) = target(size, rows, cols);
                    (pil_resize(&bytes, rows, cols, h, w, f), h, w)
                }
                Some((size, Resampler::Radfm)) => {
                    let (h, w) = target(size, rows, cols);
                    let f: Vec<f32> = bytes.iter().map(|&b| f32::from(b)).collect();
                    let r = radfm_dicom::resample::resize(&f, rows, cols, 1, h, w);
                    (
                        r.iter()
                            .map(|v| v.round().clamp(0.0, 255.0) as u8)
                            .collect(),
                        h,
                        w,
                    )
                }
                None => (bytes, rows, cols),
            };
            (bytes.into_iter().map(f64::from).collect(), h, w)
        } else {
            let (v, h, w) = match self.resize {
                Some((size, _)) => {
                    let (h, w) = target(size, rows, cols);
                    (
                        radfm_dicom::resample::resize(grey, rows, cols, 1, h, w),
                        h,
                        w,
                    )
                }
                None => (grey.to_vec(), rows, cols),
            };
            (v.into_iter().map(f64::from).collect(), h, w)
        };
        let (values, h, w) = match self.crop {
            Some((ch, cw)) => {
                if ch > h || cw > w {
                    return Err(format!(
                        "center crop {ch} x {cw} is larger than the resized image {h} x {w}"
                    ));
                }
                let (top, left) = ((h - ch) / 2, (w - cw) / 2);
                let mut out = Vec::with_capacity(ch * cw);
                for y in top..top + ch {
                    out.extend_from_slice(&values[y * w + left..y * w + left + cw]);
                }
                (out, ch, cw)
            }
            None => (values, h, w),
        };
        // rescale in float64 then to float32, normalise in float32, as
        // transformers' rescale() and normalize() do
        let scaled: Vec<f32> = match self.rescale {
            Some(s) => values.iter().map(|&v| (v * s) as f32).collect(),
            None => values.iter().map(|&v| v as f32).collect(),
        };
        let mut out = Vec::with_capacity(self.channels * h * w);
        for c in 0..self.channels {
            let (m, s) = (self.mean[c], self.std[c]);
            out.extend(scaled.iter().map(|&v| (v - m) / s));
        }
        Ok(out)
    }
}

fn target(size: Size, rows: usize, cols: usize) -> (usize, usize) {
    match size {
        Size::Exact { height, width } => (height, width),
        Size::ShortestEdge(s) => {
            let (short, long) = (rows.min(cols), rows.max(cols));
            let other = (s as f64 * long as f64 / short as f64) as usize;
            if rows <= cols {
                (s, other)
            } else {
                (other, s)
            }
        }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// PIL's convolution coefficients for one axis: per output pixel the first
/// input pixel, the count, and fixed-point weights (`ksize` per pixel).
fn coefficients(
    in_size: usize,
    out_size: usize,
    f: Filter,
) -> (Vec<(usize, usize)>, Vec<i32>, usize) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = f.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) truncates toward zero
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = f.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for x in 0..n {
            let w = if ww != 0.0 { k[x] / ww } else { k[x] };
            let fixed = w * f64::from(1u32 << PRECISION_BITS);
            kk[xx * ksize + x] = if w < 0.0 {
                (-0.5 + fixed) as i32
            } else {
                (0.5 + fixed) as i32
            };
        }
        bounds.push((xmin, n));
    }
    (bounds, kk, ksize)
}

fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// PIL's `Image.resize` of a one-band 8-bit image (`reducing_gap=None`):
/// two passes, each rounding to 8 bits. Pillow 13 runs the vertical pass
/// first when the height shrinks by more than twice as many pixels as the
/// width; earlier Pillows always ran the horizontal pass first (the two
/// orders differ by one level in a few pixels).
pub fn pil_resize(
    src: &[u8],
    rows: usize,
    cols: usize,
    out_h: usize,
    out_w: usize,
    f: Filter,
) -> Vec<u8> {
    if (rows, cols) == (out_h, out_w) {
        return src.to_vec();
    }
    if f == Filter::Nearest {
        // PIL's scaling map: a position that starts at half a step and
        // adds one step per pixel in float64, truncated
        let map = |n_in: usize, n_out: usize| -> Vec<usize> {
            let a = n_in as f64 / n_out as f64;
            let mut at = a * 0.5;
            (0..n_out)
                .map(|_| {
                    let i = (at as usize).min(n_in - 1);
                    at += a;
                    i
                })
                .collect()
        };
        let (ys, xs) = (map(rows, out_h), map(cols, out_w));
        let mut out = Vec::with_capacity(out_h * out_w);
        for &y in &ys {
            let row = &src[y * cols..(y + 1) * cols];
            out.extend(xs.iter().map(|&x| row[x]));
        }
        return out;
    }
    let (need_h, need_v) = (out_w != cols, out_h != rows);
    let shrink_v = rows as i64 - out_h as i64;
    let vertical_first = shrink_v > 0 && shrink_v > (cols as i64 - out_w as i64) * 2;
    let (mut img, mut w) = (src.to_vec(), cols);
    let (vb, vk, vks) = coefficients(rows, out_h, f);
    if vertical_first {
        if need_v {
            img = vertical(&img, w, &vb, &vk, vks, 0);
        }
        if need_h {
            img = horizontal(&img, w, out_h, 0, out_w, f);
            w = out_w;
        }
    } else {
        let mut first = 0;
        if need_h {
            // only the input rows the vertical pass will use
            first = vb[0].0;
            let last = vb[out_h - 1].0 + vb[out_h - 1].1;
            img = horizontal(&img, w, last - first, first, out_w, f);
            w = out_w;
        }
        if need_v {
            img = vertical(&img, w, &vb, &vk, vks, first);
        }
    }
    debug_assert_eq!(img.len(), out_h * w);
    img
}

/// PIL's horizontal pass: `n_rows` rows from `first`, each to `out_w` pixels.
fn horizontal(
    img: &[u8],
    w: usize,
    n_rows: usize,
    first: usize,
    out_w: usize,
    f: Filter,
) -> Vec<u8> {
    let (hb, hk, hks) = coefficients(w, out_w, f);
    let mut out = vec![0u8; n_rows * out_w];
    for yy in 0..n_rows {
        let row = &img[(yy + first) * w..(yy + first + 1) * w];
        for (xx, &(xmin, n)) in hb.iter().enumerate() {
            let mut ss: i32 = 1 << (PRECISION_BITS - 1);
            for (x, &kx) in hk[xx * hks..xx * hks + n].iter().enumerate() {
                ss = ss.wrapping_add(i32::from(row[xmin + x]).wrapping_mul(kx));
            }
            out[yy * out_w + xx] = clip8(ss);
        }
    }
    out
}

/// PIL's vertical pass, the input's rows counted from `first`.
fn vertical(
    img: &[u8],
    w: usize,
    vb: &[(usize, usize)],
    vk: &[i32],
    vks: usize,
    first: usize,
) -> Vec<u8> {
    let mut out = vec![0u8; vb.len() * w];
    for (yy, &(ymin, n)) in vb.iter().enumerate() {
        let k = &vk[yy * vks..yy * vks + n];
        let ymin = ymin - first;
        for xx in 0..w {
            let mut ss: i32 = 1 << (PRECISION_BITS - 1);
            for (y, &ky) in k.iter().enumerate() {
                ss = ss.wrapping_add(i32::from(img[(ymin + y) * w + xx]).wrapping_mul(ky));
            }
            out[yy * w + xx] = clip8(ss);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_edge_keeps_the_aspect_truncating_as_transformers_does() {
        assert_eq!(target(Size::ShortestEdge(256), 512, 683), (256, 341));
        assert_eq!(target(Size::ShortestEdge(256), 683, 512), (341, 256));
        assert_eq!(target(Size::ShortestEdge(224), 100, 100), (224, 224));
    }

    #[test]
    fn a_constant_image_stays_constant_under_every_filter() {
        for f in [
            Filter::Nearest,
            Filter::Bilinear,
            Filter::Bicubic,
            Filter::Lanczos,
            Filter::Box,
            Filter::Hamming,
        ] {
            for (h, w) in [(37, 53), (300, 200), (64, 64)] {
                let out = pil_resize(&vec![173u8; 100 * 130], 100, 130, h, w, f);
                assert!(out.iter().all(|&v| v == 173), "{f:?} to {h}x{w}");
            }
        }
    }

    #[test]
    fn hf_configs_read_as_written() {
        let dinov2 = serde_json::json!({
            "crop_size": {"height": 224, "width": 224}, "do_center_crop": true,
            "do_convert_rgb": true, "do_normalize": true, "do_rescale": true, "do_resize": true,
            "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
            "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 256}
        });
        let p = Preprocess::from_hf(&dinov2, "preprocessor_config.json").unwrap();
        assert_eq!(
            p.resize,
            Some((Size::ShortestEdge(256), Resampler::Pil(Filter::Bicubic)))
        );
        assert_eq!(p.crop, Some((224, 224)));
        assert_eq!(p.channels, 3);
        assert_eq!(p.output_size(512, 600), (224, 224));
        let x = p.apply(&vec![0.5; 512 * 600], 512, 600).unwrap();
        assert_eq!(x.len(), 3 * 224 * 224);
        let bad = serde_json::json!({"do_resize": true, "size": {"longest": 3}});
        let e = Preprocess::from_hf(&bad, "x").unwrap_err();
        assert!(e.contains("neither height/width nor shortest_edge"), "{e}");
        let bad = serde_json::json!({"resample": 9, "size": 224, "image_mean": [0.5], "image_std": [0.5]});
        assert!(Preprocess::from_hf(&bad, "x")
            .unwrap_err()
            .contains("PIL filter"));
    }
}
