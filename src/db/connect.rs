//! Opens the pool that `DATABASE_URL` selects, with the configured size and timeouts.

use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Db, Pool};
use crate::config::{Config, DatabaseUrl, sqlite_path};
use crate::telemetry::metrics::Metrics;

use super::warm::TRUSTED_IDLE;

/// Checks a connection the pool is about to hand out, in place of sqlx's default ping on every
/// acquire, which costs each request a round trip to PostgreSQL before its first statement.
///
/// What keeps dead connections away from requests without it: sqlx pings every connection as
/// it goes back to the pool (a read that ended cleanly is kept warm instead, for at most
/// [`TRUSTED_IDLE`]: see `super::warm`), and closes one that broke meanwhile; and a connection
/// idle for more than [`TRUSTED_IDLE`] (the server may
/// have been restarted, a proxy or firewall may have dropped the socket) is pinged here before
/// use, a failed ping making the pool close it and hand out another. Only a connection that
/// dies within a second of its last use reaches a request dead, and fails that request's
/// statement, as it could between a ping and the statement anyway.
async fn ping_if_idle<C: sqlx::Connection>(
    conn: &mut C,
    meta: PoolConnectionMetadata,
) -> Result<bool, sqlx::Error> {
    if meta.idle_for > TRUSTED_IDLE {
        conn.ping().await?;
    }
    Ok(true)
}

/// Connects to the configured database. For SQLite, creates the file and its directory, and
/// turns on WAL, foreign keys and the busy timeout on every connection.
pub async fn connect(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Db> {
    let pool = match &config.database_url {
        DatabaseUrl::Postgres(url) => {
            let pool = PgPoolOptions::new()
                .max_connections(config.db_max_connections)
                .acquire_timeout(config.db_acquire_timeout)
                .test_before_acquire(false)
                .before_acquire(|conn, meta| Box::pin(ping_if_idle(conn, meta)))
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
                .test_before_acquire(false)
                .before_acquire(|conn, meta| Box::pin(ping_if_idle(conn, meta)))
                .connect_with(options)
                .await
                .context("DATABASE_URL: cannot open the SQLite database")?;
            Pool::Sqlite(pool)
        }
    };
    Ok(Db {
        pool,
        metrics,
        warm_pg: Default::default(),
        warm_sqlite: Default::default(),
        replica: None,
    })
}
