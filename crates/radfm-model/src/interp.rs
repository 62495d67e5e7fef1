//! Host-side resampling of position-embedding grids, bit-for-bit the
//! algorithm of `torch.nn.functional.interpolate(mode="bicubic",
//! align_corners=False)` (cubic convolution with A = -0.75, edge taps clamped),
//! which Hugging Face uses to run ViTs at a resolution other than the one
//! they were trained at.

const A: f64 = -0.75;

fn cubic_weights(t: f64) -> [f64; 4] {
    let w0 = ((A * (t + 1.0) - 5.0 * A) * (t + 1.0) + 8.0 * A) * (t + 1.0) - 4.0 * A;
    let w1 = ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0;
    let u = 1.0 - t;
    let w2 = ((A + 2.0) * u - (A + 3.0)) * u * u + 1.0;
    let w3 = ((A * (u + 1.0) - 5.0 * A) * (u + 1.0) + 8.0 * A) * (u + 1.0) - 4.0 * A;
    [w0, w1, w2, w3]
}

/// Taps and weights along one axis: for each output index, four input
/// indices (clamped to the edge) and their weights.
fn axis(n_in: usize, n_out: usize) -> Vec<([usize; 4], [f64; 4])> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|i| {
            let src = scale * (i as f64 + 0.5) - 0.5;
            let x0 = src.floor();
            let t = src - x0;
            let idx = [-1i64, 0, 1, 2].map(|o| (x0 as i64 + o).clamp(0, n_in as i64 - 1) as usize);
            (idx, cubic_weights(t))
        })
        .collect()
}

/// Resize `channels` planes of `h_in` x `w_in` (channel-major) to `h_out` x `w_out`.
pub fn bicubic(
    data: &[f32],
    channels: usize,
    (h_in, w_in): (usize, usize),
    (h_out, w_out): (usize, usize),
) -> Vec<f32> {
    assert_eq!(data.len(), channels * h_in * w_in);
    let ay = axis(h_in, h_out);
    let ax = axis(w_in, w_out);
    let mut out = vec![0f32; channels * h_out * w_out];
    for c in 0..channels {
        let plane = &data[c * h_in * w_in..(c + 1) * h_in * w_in];
        for (oy, (iy, wy)) in ay.iter().enumerate() {
            for (ox, (ix, wx)) in ax.iter().enumerate() {
                let mut acc = 0.0f64;
                for (r, &yy) in iy.iter().enumerate() {
                    let row: f64 = ix
                        .iter()
                        .zip(wx)
                        .map(|(&xx, &w)| plane[yy * w_in + xx] as f64 * w)
                        .sum();
                    acc += row * wy[r];
                }
                out[c * h_out * w_out + oy * w_out + ox] = acc as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_size_is_identity_and_weights_sum_to_one() {
        let data: Vec<f32> = (0..2 * 3 * 4).map(|i| (i as f32 * 0.37).sin()).collect();
        let same = bicubic(&data, 2, (3, 4), (3, 4));
        for (a, b) in data.iter().zip(&same) {
            assert!((a - b).abs() < 1e-6);
        }
        for t in [0.0, 0.25, 0.5, 0.9] {
            let s: f64 = cubic_weights(t).iter().sum();
            assert!((s - 1.0).abs() < 1e-12);
        }
        // a constant plane stays constant at any size
        let ones = vec![1.0f32; 16];
        assert!(bicubic(&ones, 1, (4, 4), (7, 5))
            .iter()
            .all(|v| (v - 1.0).abs() < 1e-6));
    }
}
