//! The `radfm` binary.
//!
//! Exit codes: 0 success (a batch job also exits 0 when some items failed and
//! were logged), 1 a fatal error (unusable arguments, unwritable output, an
//! unreadable single input), 2 a command-line usage error (from clap).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod classifier;
mod cli;
mod commands;
mod logging;
mod progress;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    logging::init(args.verbose);
    if matches!(
        args.command,
        cli::Command::Pretrain(_)
            | cli::Command::Finetune(_)
            | cli::Command::Embed(_)
            | cli::Command::Bench(_)
            | cli::Command::Model(_)
            | cli::Command::Text(_)
            | cli::Command::Zeroshot(_)
            | cli::Command::Retrieve(_)
            | cli::Command::Demo(_)
    ) {
        // Tensor work allocates and frees the same large buffers every step; by default
        // mimalloc hands freed pages back to the OS after 10 ms and then pays for zeroed
        // pages again (15% of a ViT training step went to the kernel's clear_page).
        // Keep them for the life of the process. SAFETY: a plain option setter.
        const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
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
