//! `warden`: Runtime Warden's one binary. `main` only wires: parse the
//! command line, start logging, run the subcommand, map its outcome to an exit
//! code.

mod agent;
mod check;
mod cli;
mod controller;
mod crds;
mod exit;
mod lint_profile;
mod node_args;
mod policy_file;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

use exit::Outcome;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    telemetry::init(cli.log_format, cli.verbose, telemetry::quiet(&cli.command));
    let result = match cli.command {
        cli::Command::Check(args) => check::run(&args),
        cli::Command::LintProfile(args) => lint_profile::run(&args),
        cli::Command::Crds(args) => crds::run(&args)
            .map(|()| Outcome::Clean)
            .map_err(Into::into),
        cli::Command::Operator(args) => controller::run(&args)
            .map(|()| Outcome::Clean)
            .map_err(Into::into),
        cli::Command::Agent(args) => agent::run(&args)
            .map(|()| Outcome::Clean)
            .map_err(Into::into),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("warden: error: {e:#}");
            Outcome::Error.into()
        }
    }
}
