//! Opens the pool that `DATABASE_URL` selects, with the configured size and timeouts.

use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Db, Pool};
use crate::config::{Config, DatabaseUrl, sqlite_path};
use crate::telemetry::metrics::Metrics;

/// Connects to the configured database. For SQLite, creates the file and its directory, and
/// turns on WAL, foreign keys and the busy timeout on every connection.
pub async fn connect(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Db> {
    let pool = match &config.database_url {
        DatabaseUrl::Postgres(url) => {
            let pool = PgPoolOptions::new()
                .max_connections(config.db_max_connections)
                .acquire_timeout(config.db_acquire_timeout)
                .connect(url)
                .await
                .context("DATABASE_URL: cannot connect to PostgreSQL")?;
            Pool::Postgres(pool)
        }
        DatabaseUrl::Sqlite(url) => {
            if let Some(dir) = sqlite_path(url)
                .as_deref()
                .and_then(|p| p.parent())
                .filter(|dir| !dir.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("DATABASE_URL: cannot create directory {}", dir.display())
                })?;
            }
            let options = SqliteConnectOptions::from_str(url)
                .context("DATABASE_URL: not a valid SQLite URL")?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(config.db_busy_timeout);
            let pool = SqlitePoolOptions::new()
                .max_connections(config.db_max_connections)
                .acquire_timeout(config.db_acquire_timeout)
                .connect_with(options)
                .await
                .context("DATABASE_URL: cannot open the SQLite database")?;
            Pool::Sqlite(pool)
        }
    };
    Ok(Db { pool, metrics })
}
