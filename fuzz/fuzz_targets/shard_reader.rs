//! Any bytes as a shard: reading its tar members and decoding each `.npy`
//! (header, shape, dtype, values) must return, never panic. Run as
//! `read_and_decode` is run (see its header), seeded with a few shards of
//! an ingested dataset.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use radfm_core::npy::Npy;

fuzz_target!(|data: &[u8]| {
    let mut ar = tar::Archive::new(data);
    let Ok(entries) = ar.entries() else { return };
    for e in entries.take(64) {
        let Ok(mut e) = e else { break };
        let mut buf = Vec::new();
        if e.read_to_end(&mut buf).is_err() {
            break;
        }
        if let Ok(n) = Npy::read(&buf[..]) {
            let _ = n.to_f64();
            let _ = n.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        }
    }
    // the bytes as one bare .npy file too
    if let Ok(n) = Npy::read(data) {
        let _ = n.to_f64();
    }
});
