//! Progress bar (indicatif) behind the ingest library's `Reporter` trait.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub fn new(quiet: bool) -> Self {
        let bar = ProgressBar::with_draw_target(
            Some(0),
            if quiet {
                ProgressDrawTarget::hidden()
            } else {
                ProgressDrawTarget::stderr()
            },
        );
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} files  {msg}  ETA {eta}",
            )
            .expect("valid template"),
        );
        Bar { bar }
    }
}

impl radfm_data::ingest::Reporter for Bar {
    fn on_start(&self, files: u64) {
        self.bar.set_length(files);
    }
    fn on_file_done(&self, _bytes: u64, total_bytes: u64, elapsed_s: f64) {
        self.bar.inc(1);
        if elapsed_s > 0.0 {
            self.bar
                .set_message(format!("{:.1} MB/s", total_bytes as f64 / 1e6 / elapsed_s));
        }
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A plain counting bar on stderr for `len` items of `unit`, hidden when
/// stderr is not a terminal.
pub fn bar(len: u64, unit: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit}  {{per_sec}}  ETA {{eta}}"
        ))
        .expect("valid template"),
    );
    pb
}
