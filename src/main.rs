//! The `tickflow` binary: command line, timely start-up, and wiring sources to dataflows and
//! sinks.

mod cli;
mod cluster;
mod generate;
mod produce;
mod progress;
mod run;
mod sql;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        None => run::run(cli.run),
        Some(cli::Command::Run(args)) => run::run(args),
        Some(cli::Command::Generate(args)) => generate::generate(args),
        Some(cli::Command::Produce(args)) => produce::produce(args),
        Some(cli::Command::Sql(args)) => sql::sql(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tickflow: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
