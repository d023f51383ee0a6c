//! The command line: `serve` (the default), `migrate`, `create-admin`, `verify-email`, `backup`,
//! `restore` and `healthcheck`.
//!
//! Every command reads the same environment configuration; a bad value stops the command with
//! one line that names the variable.

use std::io::Read;
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::error::AppError;
use crate::telemetry::metrics::Metrics;

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
    /// Mark an account's email address verified (for deployments without SMTP, where no
    /// verification link can be mailed); invitations to it become visible.
    ///
    /// Example: `tasklight verify-email ada@example.com`
    VerifyEmail {
        /// The account's email address (case does not matter).
        email: String,
    },
    /// Copy the SQLite database to FILE while instances keep serving (a consistent snapshot,
    /// checked before it is kept). For PostgreSQL see deploy/postgres/README.md.
    ///
    /// Example: `tasklight backup --to backups/tasklight-$(date +%F).db`
    Backup {
        /// The backup file to write; it must not exist yet.
        #[arg(long, value_name = "FILE")]
        to: std::path::PathBuf,
    },
    /// Replace the SQLite database with a backup, after checking the backup. Every instance
    /// must be stopped first; the database it replaces is kept beside it.
    ///
    /// Example: `tasklight restore --from backups/tasklight-2026-11-28.db --force`
    Restore {
        /// The backup file to restore.
        #[arg(long, value_name = "FILE")]
        from: std::path::PathBuf,
        /// Replace an existing database (it is kept as `<database>.replaced-<time>`).
        #[arg(long)]
        force: bool,
    },
    /// Exit 0 if this instance's `/health/live` (on the admin listener) answers 200 within 2 s;
    /// for container health checks, so the image needs no HTTP client.
    Healthcheck,
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
    if matches!(cli.command, Some(Command::Healthcheck)) {
        return match healthcheck(config.admin_listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("tasklight: unhealthy: {err}");
                ExitCode::FAILURE
            }
        };
    }
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
            Command::Serve => crate::server::serve(config).await,
            Command::Migrate => migrate(&config).await,
            Command::CreateAdmin { email, name } => match read_password_from_stdin() {
                Ok(password) => create_admin(&config, &email, &name, &password).await,
                Err(err) => Err(err),
            },
            Command::VerifyEmail { email } => verify_email(&config, &email).await,
            Command::Backup { to } => backup(&config, &to).await,
            Command::Restore { from, force } => restore(&config, &from, force).await,
            Command::Healthcheck => Ok(()),
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

/// `tasklight migrate`.
async fn migrate(config: &Config) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new(&config.instance_id));
    let db = crate::db::connect(config, metrics).await?;
    db.migrate().await.context("applying migrations")?;
    db.close().await;
    tracing::info!("migrations applied");
    Ok(())
}

/// The SQLite file of `DATABASE_URL`, or why a backup or restore cannot use it.
fn sqlite_file(config: &Config, command: &str) -> anyhow::Result<std::path::PathBuf> {
    config.sqlite_file().ok_or_else(|| {
        anyhow::anyhow!(
            "DATABASE_URL is not a SQLite file: `tasklight {command}` copies the embedded \
             database; back up PostgreSQL with pg_basebackup and WAL archiving \
             (deploy/postgres/README.md)"
        )
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// One line per table with rows, for the terminal.
fn print_contents(contents: &crate::db::backup::Contents) {
    println!("  schema version {}", contents.schema_version);
    for (table, rows) in contents.rows.iter().filter(|(_, rows)| *rows > 0) {
        println!("  {table}: {rows} rows");
    }
}

/// `tasklight backup`.
async fn backup(config: &Config, to: &std::path::Path) -> anyhow::Result<()> {
    let database = sqlite_file(config, "backup")?;
    let size = std::fs::metadata(&database).map(|m| m.len()).unwrap_or(0);
    println!(
        "backing up {} ({}) to {} ...",
        database.display(),
        mib(size),
        to.display()
    );
    let known = crate::db::known_sqlite_migrations();
    let report = crate::db::backup::backup(&database, to, config.db_busy_timeout, &known).await?;
    println!(
        "backed up to {}: {} in {:.2} s, checked (integrity, migrations)",
        report.file.display(),
        mib(report.bytes),
        report.elapsed.as_secs_f64()
    );
    print_contents(&report.contents);
    Ok(())
}

/// `tasklight restore`.
async fn restore(config: &Config, from: &std::path::Path, force: bool) -> anyhow::Result<()> {
    let database = sqlite_file(config, "restore")?;
    println!("checking {} ...", from.display());
    let known = crate::db::known_sqlite_migrations();
    let report = crate::db::backup::restore(&database, from, force, &known).await?;
    match &report.replaced {
        Some(kept) => println!(
            "restored {} from {} in {:.2} s; the database it replaced is kept as {}",
            database.display(),
            from.display(),
            report.elapsed.as_secs_f64(),
            kept.display()
        ),
        None => println!(
            "restored {} from {} in {:.2} s",
            database.display(),
            from.display(),
            report.elapsed.as_secs_f64()
        ),
    }
    print_contents(&report.contents);
    Ok(())
}

/// `tasklight create-admin`.
async fn create_admin(
    config: &Config,
    email: &str,
    name: &str,
    password: &str,
) -> anyhow::Result<()> {
    operator_command(config, |domain| async move {
        crate::users::service::create_or_promote_admin(&domain, email, name, password).await
    })
    .await
}

/// `tasklight verify-email`.
async fn verify_email(config: &Config, email: &str) -> anyhow::Result<()> {
    operator_command(config, |domain| async move {
        crate::verification::service::mark_verified(&domain, email)
            .await
            .map_err(|err| match err {
                AppError::NotFound(_) => AppError::Validation(vec![crate::error::FieldError {
                    field: "email".into(),
                    message: format!("no account has the email address {email}"),
                }]),
                other => other,
            })
    })
    .await
}

/// How many times an operator command tries again when the database answers busy (a running
/// instance holds SQLite's write lock, or a PostgreSQL lock times out).
const OPERATOR_ATTEMPTS: u32 = 4;

/// Runs one operator command against the database without starting an instance's background
/// work, tries again (with a growing pause) while the database is busy, and prints the outcome.
/// Input errors come out as `field: message`, one per field.
async fn operator_command<F, Fut>(config: &Config, run: F) -> anyhow::Result<()>
where
    F: Fn(crate::domain::DomainContext) -> Fut,
    Fut: std::future::Future<Output = Result<String, AppError>>,
{
    let (domain, _redis) = crate::state::open_domain(config).await?;
    let mut attempt = 1;
    let outcome = loop {
        match run(domain.clone()).await {
            Err(AppError::Unavailable(why)) if attempt < OPERATOR_ATTEMPTS => {
                tracing::warn!(attempt, reason = why, "the database is busy; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(250 << attempt)).await;
                attempt += 1;
            }
            other => break other,
        }
    };
    domain.db.close().await;
    let outcome = outcome.map_err(|err| match err {
        AppError::Validation(fields) => anyhow::anyhow!(
            "{}",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => anyhow::Error::new(other),
    })?;
    println!("{outcome}");
    Ok(())
}

/// `GET /health/live` on the admin listener (an unspecified listen address is reached on
/// loopback), over a plain socket.
fn healthcheck(admin: std::net::SocketAddr) -> Result<(), String> {
    use std::io::Write;
    let timeout = std::time::Duration::from_secs(2);
    let mut target = admin;
    if target.ip().is_unspecified() {
        target.set_ip(if admin.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let mut stream = std::net::TcpStream::connect_timeout(&target, timeout)
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /health/live HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| format!("cannot send to {target}: {e}"))?;
    let mut head = [0u8; 16];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(format!("no answer from {target}: {e}")),
        }
    }
    let status = String::from_utf8_lossy(&head[..read]);
    if status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!("{target}/health/live answered `{}`", status.trim()))
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
