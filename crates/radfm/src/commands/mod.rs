//! One subcommand per file.

mod approx;
mod bench;
mod card;
mod demo;
pub(crate) mod demo_report;
mod dicom;
pub(crate) mod embed;
mod evaluate;
mod finetune;
mod ingest;
mod model;
mod pacs;
mod predict;
pub(crate) mod pretrain;
mod probe;
mod reports;
mod retrieve;
mod serve;
mod split;
mod sr;
mod synth;
mod verify;
mod zeroshot;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dicom(c) => dicom::run(c),
        Command::Ingest(a) => ingest::run(a),
        Command::Split(a) => split::run(a),
        Command::Evaluate(a) => evaluate::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Reports(c) => reports::run(c),
        Command::Model(c) => model::run(c),
        Command::Text(c) => model::text(c),
        Command::Pretrain(a) => pretrain::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Probe(a) => probe::run(a),
        Command::Finetune(a) => finetune::run(a),
        Command::Zeroshot(a) => zeroshot::run(a),
        Command::Retrieve(c) => retrieve::run(c),
        Command::Demo(a) => demo::run(a),
        Command::Bench(c) => bench::run(c),
        Command::Predict(a) => predict::run(a),
        Command::Sr(a) => sr::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Pacs(c) => pacs::run(c),
        Command::Card(a) => card::run(a),
        Command::Verify(a) => verify::run(a),
    }
}
