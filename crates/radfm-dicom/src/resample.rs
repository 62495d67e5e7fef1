//! Anti-aliased resizing of float images (separable convolution with a
//! triangle kernel widened by the scale factor when shrinking, as Pillow's
//! `Image.resize(..., BILINEAR)` and `torchvision`'s `antialias=True` do).

/// Output size for resizing `(rows, cols)` so the long side is `long`,
/// keeping the aspect ratio. Images already smaller are not enlarged.
pub fn fit_long_side(rows: usize, cols: usize, long: usize) -> (usize, usize) {
    let m = rows.max(cols);
    if m <= long || m == 0 {
        return (rows, cols);
    }
    let s = long as f64 / m as f64;
    let r = ((rows as f64 * s).round() as usize).max(1);
    let c = ((cols as f64 * s).round() as usize).max(1);
    (r, c)
}

/// Precomputed 1-D resampling weights: for each output index, a start index and weights.
struct Weights {
    start: Vec<usize>,
    w: Vec<Vec<f32>>,
}

fn weights(src: usize, dst: usize) -> Weights {
    let scale = src as f64 / dst as f64;
    let support = if scale > 1.0 { scale } else { 1.0 };
    let mut start = Vec::with_capacity(dst);
    let mut w = Vec::with_capacity(dst);
    for i in 0..dst {
        let center = (i as f64 + 0.5) * scale;
        let lo = ((center - support).floor().max(0.0)) as usize;
        let hi = ((center + support).ceil() as usize).min(src);
        let mut ws: Vec<f32> = (lo..hi)
            .map(|j| {
                let x = ((j as f64 + 0.5 - center) / support).abs();
                (1.0 - x).max(0.0) as f32
            })
            .collect();
        let sum: f32 = ws.iter().sum();
        if sum > 0.0 {
            ws.iter_mut().for_each(|v| *v /= sum);
        }
        start.push(lo);
        w.push(ws);
    }
    Weights { start, w }
}

/// Resize a `[rows, cols, channels]` float image to `[out_rows, out_cols, channels]`.
pub fn resize(
    src: &[f32],
    rows: usize,
    cols: usize,
    ch: usize,
    out_rows: usize,
    out_cols: usize,
) -> Vec<f32> {
    assert_eq!(
        src.len(),
        rows * cols * ch,
        "image buffer does not match its shape"
    );
    if rows == out_rows && cols == out_cols {
        return src.to_vec();
    }
    // horizontal pass: [rows, out_cols, ch]
    let wx = weights(cols, out_cols);
    let mut tmp = vec![0f32; rows * out_cols * ch];
    for r in 0..rows {
        let row = &src[r * cols * ch..(r + 1) * cols * ch];
        let out = &mut tmp[r * out_cols * ch..(r + 1) * out_cols * ch];
        for (x, (s, ws)) in wx.start.iter().zip(&wx.w).enumerate() {
            for k in 0..ch {
                let mut acc = 0f32;
                for (j, wv) in ws.iter().enumerate() {
                    acc += row[(s + j) * ch + k] * wv;
                }
                out[x * ch + k] = acc;
            }
        }
    }
    // vertical pass: accumulate whole rows (cache friendly)
    let wy = weights(rows, out_rows);
    let stride = out_cols * ch;
    let mut out = vec![0f32; out_rows * stride];
    for (y, (s, ws)) in wy.start.iter().zip(&wy.w).enumerate() {
        let dst = &mut out[y * stride..(y + 1) * stride];
        for (j, wv) in ws.iter().enumerate() {
            let srow = &tmp[(s + j) * stride..(s + j + 1) * stride];
            for (d, v) in dst.iter_mut().zip(srow) {
                *d += v * wv;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_aspect_ratio() {
        assert_eq!(fit_long_side(2000, 1000, 512), (512, 256));
        assert_eq!(fit_long_side(100, 50, 512), (100, 50));
    }

    #[test]
    fn constant_stays_constant_and_mean_is_preserved() {
        let img = vec![0.25f32; 100 * 60];
        let out = resize(&img, 100, 60, 1, 33, 20);
        assert!(out.iter().all(|v| (v - 0.25).abs() < 1e-6));
        // a checkerboard averages to 0.5 when shrunk with anti-aliasing
        let cb: Vec<f32> = (0..64 * 64)
            .map(|i| ((i / 64 + i % 64) % 2) as f32)
            .collect();
        let out = resize(&cb, 64, 64, 1, 8, 8);
        for v in &out {
            assert!((v - 0.5).abs() < 0.02, "aliasing: {v}");
        }
    }
}
