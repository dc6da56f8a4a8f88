//! The `tickflow` binary: command line, timely start-up, and wiring sources to dataflows and
//! sinks.

mod cli;
mod cluster;
mod config;
mod eval;
mod generate;
mod produce;
mod progress;
mod run;
mod serve;
mod sql;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        // Colour codes only for a person at a terminal, never into a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
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
        // Its own exit codes: 1 = below a threshold, 2 = could not read.
        Some(cli::Command::Eval(args)) => return eval::eval(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tickflow: error: {}", render_error(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes as one line, `outer: cause: root`, leaving out a cause whose
/// text the line already holds (many errors repeat their source in their own message, which
/// would print "No such file or directory: No such file or directory").
fn render_error(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_chain_never_repeats_a_cause() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let error = anyhow::Error::new(io)
            .context(format!(
                "t.jsonl: {}",
                std::io::Error::from(std::io::ErrorKind::NotFound)
            ))
            .context("--source file:t.jsonl");
        assert_eq!(
            super::render_error(&error),
            "--source file:t.jsonl: t.jsonl: entity not found"
        );
    }
}
