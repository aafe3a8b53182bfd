//! `nat64d`: loads and attaches the translator's dataplane and runs until told to stop
//! (`app`), or talks to a running daemon or the system (`cli`).

mod app;
mod cli;
mod reload;
mod run_args;
mod running;
mod translator_link;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    match cli::dispatch(cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nat64d: {e:#}");
            ExitCode::FAILURE
        }
    }
}
