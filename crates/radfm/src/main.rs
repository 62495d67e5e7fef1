//! The `radfm` binary.
//!
//! Exit codes: 0 success (a batch job also exits 0 when some items failed and
//! were logged), 1 a fatal error (unusable arguments, unwritable output, an
//! unreadable single input), 2 a command-line usage error (from clap).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod commands;
mod logging;
mod progress;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    logging::init(args.verbose);
    match commands::run(args) {
        Ok(()) => {}
        Err(err) => {
            // A closed pipe (radfm ... | head) is not an error.
            if err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                std::process::exit(0);
            }
            eprintln!("error: {err:#}");
            std::process::exit(1);
        }
    }
}
