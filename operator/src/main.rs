//! `warden`: Runtime Warden's one binary. `main` only wires: parse the
//! command line, start logging, run the subcommand, map its outcome to an exit
//! code and print a failure with its causes.

mod agent;
mod check;
mod cli;
mod controller;
mod crds;
mod error_chain;
mod exit;
mod lint_profile;
mod node_args;
mod policy_file;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

use exit::{Failure, Outcome};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    telemetry::init(cli.log_format, cli.verbose, telemetry::quiet(&cli.command));
    let result = match cli.command {
        cli::Command::Check(args) => check::run(&args).map_err(|e| Failure::new(&e)),
        cli::Command::LintProfile(args) => lint_profile::run(&args).map_err(|e| Failure::new(&e)),
        cli::Command::Crds(args) => crds::run(&args)
            .map(|()| Outcome::Clean)
            .map_err(|e| Failure::new(&e)),
        cli::Command::Operator(args) => controller::run(&args)
            .map(|()| Outcome::Clean)
            .map_err(|e| Failure::new(&e).with_hint(e.hint())),
        cli::Command::Agent(args) => agent::run(&args)
            .map(|()| Outcome::Clean)
            .map_err(|e| Failure::new(&e).with_hint(e.hint())),
    };
    match result {
        Ok(outcome) => outcome.into(),
        Err(failure) => {
            eprint!("{failure}");
            Outcome::Error.into()
        }
    }
}
