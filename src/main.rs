//! The `tasklight` binary: parses the command line and hands over to [`tasklight::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    tasklight::cli::main()
}
