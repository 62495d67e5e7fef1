//! Progress bars (indicatif) behind the libraries' reporter trait.

use indicatif::{ProgressBar, ProgressStyle};

pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub fn new(total: u64, quiet: bool) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(total)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files  {msg}  ETA {eta}",
            )
            .expect("valid template"),
        );
        Bar { bar }
    }
}

impl radfm_data::ingest::Reporter for Bar {
    fn on_file_done(&self, bytes: u64, total_bytes: u64, elapsed_s: f64) {
        self.bar.inc(1);
        let _ = bytes;
        if elapsed_s > 0.0 {
            self.bar
                .set_message(format!("{:.1} MB/s", total_bytes as f64 / 1e6 / elapsed_s));
        }
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
