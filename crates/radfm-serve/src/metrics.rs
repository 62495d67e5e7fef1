//! The server's counters in the Prometheus text format (version 0.0.4):
//! requests by route and status, a latency histogram by route, errors by
//! kind, and the inference pool's in-flight and queued requests.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// Upper bounds of the latency buckets, in seconds.
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    /// forward passes of the batching workers, by the number of requests in them
    batches: Mutex<BTreeMap<usize, u64>>,
    /// requests holding an inference worker
    pub in_flight: AtomicI64,
    /// requests admitted and waiting for a worker
    pub queued: AtomicI64,
}

impl Metrics {
    /// One finished request.
    pub fn observe(&self, route: &'static str, status: u16, seconds: f64) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((route, status))
            .or_default() += 1;
        let mut l = self.latency.lock().expect("metrics lock");
        let h = l.entry(route).or_default();
        for (c, &b) in h.counts.iter_mut().zip(&BUCKETS) {
            if seconds <= b {
                *c += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// One error, by kind (`unauthorized`, `payload_too_large`, `unreadable`, ...).
    pub fn error(&self, kind: &'static str) {
        *self
            .errors
            .lock()
            .expect("metrics lock")
            .entry(kind)
            .or_default() += 1;
    }

    /// One forward pass of a batching worker over `size` requests.
    pub fn batch(&self, size: usize) {
        *self
            .batches
            .lock()
            .expect("metrics lock")
            .entry(size)
            .or_default() += 1;
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP radfm_requests_total HTTP requests by route and status.\n");
        s.push_str("# TYPE radfm_requests_total counter\n");
        for ((route, status), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                s,
                "radfm_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        s.push_str("# HELP radfm_request_duration_seconds Request latency by route.\n");
        s.push_str("# TYPE radfm_request_duration_seconds histogram\n");
        for (route, h) in self.latency.lock().expect("metrics lock").iter() {
            for (c, b) in h.counts.iter().zip(&BUCKETS) {
                let _ = writeln!(
                    s,
                    "radfm_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {c}"
                );
            }
            let _ = writeln!(
                s,
                "radfm_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                s,
                "radfm_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                s,
                "radfm_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        s.push_str("# HELP radfm_errors_total Failed requests by kind.\n");
        s.push_str("# TYPE radfm_errors_total counter\n");
        for (kind, n) in self.errors.lock().expect("metrics lock").iter() {
            let _ = writeln!(s, "radfm_errors_total{{kind=\"{kind}\"}} {n}");
        }
        let batches = self.batches.lock().expect("metrics lock");
        if !batches.is_empty() {
            s.push_str(
                "# HELP radfm_batches_total Forward passes of the batching workers, by requests in the pass.\n",
            );
            s.push_str("# TYPE radfm_batches_total counter\n");
            for (size, n) in batches.iter() {
                let _ = writeln!(s, "radfm_batches_total{{size=\"{size}\"}} {n}");
            }
        }
        drop(batches);
        s.push_str("# HELP radfm_inference_in_flight Requests holding an inference worker.\n");
        s.push_str("# TYPE radfm_inference_in_flight gauge\n");
        let _ = writeln!(
            s,
            "radfm_inference_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        s.push_str("# HELP radfm_inference_queued Requests waiting for an inference worker.\n");
        s.push_str("# TYPE radfm_inference_queued gauge\n");
        let _ = writeln!(
            s,
            "radfm_inference_queued {}",
            self.queued.load(Ordering::Relaxed)
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_text_is_prometheus() {
        let m = Metrics::default();
        m.observe("/v1/predict", 200, 0.02);
        m.observe("/v1/predict", 200, 0.2);
        m.observe("/v1/predict", 422, 3.0);
        m.error("unreadable");
        assert!(!m.render().contains("radfm_batches_total"));
        m.batch(4);
        m.batch(4);
        m.batch(1);
        let t = m.render();
        assert!(t.contains("radfm_batches_total{size=\"1\"} 1\n"), "{t}");
        assert!(t.contains("radfm_batches_total{size=\"4\"} 2\n"), "{t}");
        assert!(t.contains("radfm_requests_total{route=\"/v1/predict\",status=\"200\"} 2\n"));
        assert!(t.contains("radfm_requests_total{route=\"/v1/predict\",status=\"422\"} 1\n"));
        assert!(t.contains("le=\"0.01\"} 0\n"), "{t}");
        assert!(t.contains("le=\"0.025\"} 1\n"), "{t}");
        assert!(t.contains("le=\"0.25\"} 2\n"), "{t}");
        assert!(t.contains("le=\"5\"} 3\n"), "{t}");
        assert!(t.contains("le=\"+Inf\"} 3\n"), "{t}");
        assert!(t.contains("radfm_request_duration_seconds_count{route=\"/v1/predict\"} 3\n"));
        assert!(t.contains("radfm_errors_total{kind=\"unreadable\"} 1\n"));
        // every sample line is "name{labels} value" or "name value"
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
