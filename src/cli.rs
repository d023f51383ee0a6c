//! The command line: `serve` (the default), `migrate` and `create-admin`.
//!
//! Every command reads the same environment configuration; a bad value stops the command with
//! one line that names the variable.

use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// Tasklight: a task-manager REST backend.
///
/// Configuration comes from environment variables (see README.md); with none set, the service
/// listens on 0.0.0.0:8080 and keeps its data in SQLite at ./data/tasklight.db.
#[derive(Debug, Parser)]
#[command(name = "tasklight", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply migrations, then serve the API (the default when no command is given).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create an administrator, or promote an existing user; the password is read from stdin.
    ///
    /// Example: `printf '%s' "$ADMIN_PASSWORD" | tasklight create-admin --email admin@example.com`
    CreateAdmin {
        /// The administrator's email address.
        #[arg(long)]
        email: String,
        /// Display name for a newly created administrator.
        #[arg(long, default_value = "Administrator")]
        name: String,
    },
}

/// Entry point used by `main`: parse arguments, load configuration, run the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("tasklight: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    // rustls (Sentry's transport) needs a process-wide crypto provider; ring is the one sqlx uses.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Sentry starts before the runtime so its panic hook and hub cover every worker thread.
    let _sentry = config
        .sentry
        .as_ref()
        .map(crate::telemetry::sentry_glue::init);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tasklight: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let telemetry = crate::telemetry::init(&config);
        let result = match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => crate::app::serve(config).await,
            Command::Migrate => crate::app::migrate_only(&config).await,
            Command::CreateAdmin { email, name } => match read_password_from_stdin() {
                Ok(password) => crate::app::create_admin(&config, &email, &name, &password).await,
                Err(err) => Err(err),
            },
        };
        if let Err(err) = &result {
            tracing::error!(error = format!("{err:#}"), "command failed");
        }
        tracing::info!(
            phase = "flushing",
            "shutdown: flushing spans, Sentry events and logs"
        );
        if let Some(client) = sentry::Hub::main().client() {
            client.flush(Some(std::time::Duration::from_secs(2)));
        }
        telemetry.shutdown(std::time::Duration::from_secs(5)).await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tasklight: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the password from stdin, dropping one trailing newline (as `echo` adds).
fn read_password_from_stdin() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut password)
        .map_err(|err| anyhow::anyhow!("cannot read the password from stdin: {err}"))?;
    let trimmed = password
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p));
    Ok(trimmed.unwrap_or(&password).to_owned())
}
