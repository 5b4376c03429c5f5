//! The `spannorm` binary: a thin command line over the `spannorm` library (see
//! `spannorm --help`). It parses, calls one library function, prints, and maps errors to exit
//! codes: 0 on success, 1 when a check fails (or the run itself fails), 2 on bad input (a
//! flag, a config or sweep file, a path), always with one line on stderr.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let parsed = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
            if matches!(e.kind(), DisplayHelp | DisplayVersion) {
                cli::out(&e.render().to_string());
                return ExitCode::SUCCESS;
            }
            cli::err(&cli::one_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    match cli::run(&parsed.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            cli::err(&format!(
                "error: {}",
                spannorm::error::cut_line(&format!("{e:#}"))
            ));
            if e.downcast_ref::<cli::UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
