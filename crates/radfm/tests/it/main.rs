//! The integration tests of radfm: one test binary (each extra one would
//! link the crate and its dependencies again), one module per area.

mod adapt_cli;
mod cli;
mod common;
mod demo_cli;
mod deploy_cli;
mod evaluate_cli;
mod finetune_cli;
mod model_cli;
mod pretrain_cli;
mod reports_cli;
mod snapshots;
mod synth_cli;
mod zeroshot_cli;
