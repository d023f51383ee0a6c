//! Storage: one pool for PostgreSQL or SQLite, and the per-area storage traits behind one handle.
//!
//! Each domain area declares its storage trait (`UserStore`, `TaskStore`, ...) and writes its
//! implementation once inside [`for_each_backend!`], which compiles it for PostgreSQL and for
//! SQLite. Both dialects accept the same SQL (`$1` placeholders included); the few statements
//! that differ come from [`Dialect`].

mod connect;
pub mod traced;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use std::sync::Arc;

use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};

use crate::telemetry::metrics::Metrics;
use traced::Traced;

pub use connect::connect;

use crate::audit::store::AuditStore;
use crate::auth::store::AuthStore;
use crate::idempotency::store::IdempotencyStore;
use crate::projects::store::ProjectStore;
use crate::tasks::store::TaskStore;
use crate::users::store::UserStore;

/// What a storage call can fail with, already sorted for the HTTP mapping.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// A unique constraint was violated; the text names what already exists.
    #[error("conflict: {0}")]
    Conflict(String),
    /// No connection could be had in time, or the database is locked (503).
    #[error("the database pool timed out or the database is locked")]
    PoolTimedOut,
    /// Anything else.
    #[error(transparent)]
    Other(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::PoolTimedOut => Self::PoolTimedOut,
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                Self::Conflict("a resource with these values already exists".into())
            }
            sqlx::Error::Database(ref db) if is_transient(db.code().as_deref()) => {
                Self::PoolTimedOut
            }
            other => Self::Other(other),
        }
    }
}

/// Lock and timeout errors that retrying later can fix: SQLite busy/locked, PostgreSQL
/// serialization failure, deadlock, lock timeout and statement timeout.
fn is_transient(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("5" | "6" | "517" | "261" | "40001" | "40P01" | "55P03" | "57014")
    )
}

/// Result of a storage call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Which database engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite (the embedded default).
    Sqlite,
}

/// The statements and fragments that differ between the two dialects.
pub trait Dialect {
    /// Which engine this is.
    const BACKEND: Backend;
    /// `db.system.name` in spans.
    const SYSTEM: &'static str;
    /// Case-insensitive `LIKE` (SQLite's `LIKE` already folds ASCII case).
    const ILIKE: &'static str;
    /// Row lock for read-modify-write in a transaction (SQLite locks the whole database instead).
    const FOR_UPDATE: &'static str;
}

impl Dialect for Postgres {
    const BACKEND: Backend = Backend::Postgres;
    const SYSTEM: &'static str = "postgresql";
    const ILIKE: &'static str = "ILIKE";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
}

impl Dialect for Sqlite {
    const BACKEND: Backend = Backend::Sqlite;
    const SYSTEM: &'static str = "sqlite";
    const ILIKE: &'static str = "LIKE";
    const FOR_UPDATE: &'static str = "";
}

/// Compiles the storage implementation in its body twice, once with `DB` = PostgreSQL and once
/// with `DB` = SQLite, so the code (and its SQL) is written once.
#[macro_export]
macro_rules! for_each_backend {
    ($($body:tt)*) => {
        mod postgres_impl {
            #[allow(unused_imports)]
            use super::*;
            #[allow(clippy::upper_case_acronyms, dead_code)]
            type DB = ::sqlx::Postgres;
            $($body)*
        }
        mod sqlite_impl {
            #[allow(unused_imports)]
            use super::*;
            #[allow(clippy::upper_case_acronyms, dead_code)]
            type DB = ::sqlx::Sqlite;
            $($body)*
        }
    };
}

/// All storage traits together: what a domain function works against.
pub trait Store:
    UserStore + AuthStore + ProjectStore + TaskStore + AuditStore + IdempotencyStore + Send
{
}

impl<T> Store for T where
    T: UserStore + AuthStore + ProjectStore + TaskStore + AuditStore + IdempotencyStore + Send
{
}

/// A unit of work: every write made through it lands together on [`Transaction::commit`], or
/// not at all when it is dropped.
#[async_trait]
pub trait Transaction: Store {
    /// Commits the transaction.
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// A connection, in a transaction or not, on which the storage traits are implemented.
pub struct Session<DB: sqlx::Database> {
    conn: Conn<DB>,
    metrics: Arc<Metrics>,
}

enum Conn<DB: sqlx::Database> {
    Pooled(PoolConnection<DB>),
    Tx(sqlx::Transaction<'static, DB>),
}

impl<DB: sqlx::Database + Dialect> Session<DB> {
    /// The connection, traced: each query gets a span and a duration sample.
    pub fn db(&mut self) -> Traced<'_, DB> {
        let conn: &mut DB::Connection = match &mut self.conn {
            Conn::Pooled(conn) => conn,
            Conn::Tx(tx) => tx,
        };
        Traced::new(conn, &self.metrics.db, DB::SYSTEM)
    }
}

#[async_trait]
impl<DB: sqlx::Database> Transaction for Session<DB>
where
    Session<DB>: Store,
{
    async fn commit(self: Box<Self>) -> StoreResult<()> {
        match self.conn {
            Conn::Tx(tx) => Ok(tx.commit().await?),
            Conn::Pooled(_) => Ok(()),
        }
    }
}

#[derive(Clone)]
enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// The database handle shared by all requests of one instance.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    metrics: Arc<Metrics>,
}

/// Pool occupancy, for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Largest allowed.
    pub max: u32,
}

impl Db {
    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// A pooled connection for reads (each statement commits on its own).
    pub async fn conn(&self) -> StoreResult<Box<dyn Store>> {
        Ok(match &self.pool {
            Pool::Postgres(pool) => Box::new(Session {
                conn: Conn::Pooled(pool.acquire().await?),
                metrics: self.metrics.clone(),
            }),
            Pool::Sqlite(pool) => Box::new(Session {
                conn: Conn::Pooled(pool.acquire().await?),
                metrics: self.metrics.clone(),
            }),
        })
    }

    /// Starts a transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`), so two
    /// writers queue on the busy timeout instead of failing when the second upgrades its lock.
    pub async fn begin(&self) -> StoreResult<Box<dyn Transaction>> {
        Ok(match &self.pool {
            Pool::Postgres(pool) => Box::new(Session {
                conn: Conn::Tx(pool.begin().await?),
                metrics: self.metrics.clone(),
            }),
            Pool::Sqlite(pool) => Box::new(Session {
                conn: Conn::Tx(pool.begin_with("BEGIN IMMEDIATE").await?),
                metrics: self.metrics.clone(),
            }),
        })
    }

    /// Pool occupancy now.
    pub fn pool_stats(&self) -> PoolStats {
        match &self.pool {
            Pool::Postgres(pool) => PoolStats {
                size: pool.size(),
                idle: pool.num_idle() as u32,
                max: pool.options().get_max_connections(),
            },
            Pool::Sqlite(pool) => PoolStats {
                size: pool.size(),
                idle: pool.num_idle() as u32,
                max: pool.options().get_max_connections(),
            },
        }
    }

    /// Runs `SELECT 1`, for readiness.
    pub async fn ping(&self) -> StoreResult<()> {
        match &self.pool {
            Pool::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Pool::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Applies pending migrations from `migrations/<backend>/`.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.pool {
            Pool::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
            Pool::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
        }
        Ok(())
    }

    /// Whether [`Db::close`] was called.
    pub fn is_closed(&self) -> bool {
        match &self.pool {
            Pool::Postgres(pool) => pool.is_closed(),
            Pool::Sqlite(pool) => pool.is_closed(),
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Postgres(pool) => pool.close().await,
            Pool::Sqlite(pool) => pool.close().await,
        }
    }
}

/// The current time at the database's precision (microseconds), so that what is written and
/// what is read back (for ETags and cursors) are equal.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
pub fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}
