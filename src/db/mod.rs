//! The database: one pool for PostgreSQL or SQLite, its connections, the two dialects, and the
//! storage error. It knows no domain area.
//!
//! Each domain area declares its storage trait (`UserStore`, `TaskStore`, ...) and implements it
//! on [`Connection`] once, inside [`for_each_backend!`], which compiles it for PostgreSQL and for
//! SQLite. Both dialects accept the same SQL (`$1` placeholders included); the few statements
//! that differ come from [`Dialect`]. `crate::store` gathers the traits into one.

pub mod backup;
mod connect;
pub mod fulltext;
pub mod replica;
mod text_list;
pub mod traced;
mod warm;

use chrono::{DateTime, Utc};
use std::sync::Arc;

use anyhow::Context as _;

use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};

use crate::telemetry::metrics::{Metrics, PoolStats};
use traced::Traced;
use warm::{Lease, Warm, exhausted};

pub use connect::connect;
pub use text_list::TextList;

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
    /// The current transaction's id as a `bigint` (SQLite: always 0, its writers take turns).
    const CURRENT_TX_ID: &'static str;
    /// A transaction id below which every transaction has ended, as seen by the statement's
    /// snapshot: rows written by a transaction with a smaller id can no longer appear later
    /// (SQLite: 1, above its constant 0).
    const ENDED_TX_BOUND: &'static str;
}

impl Dialect for Postgres {
    const BACKEND: Backend = Backend::Postgres;
    const SYSTEM: &'static str = "postgresql";
    const ILIKE: &'static str = "ILIKE";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const CURRENT_TX_ID: &'static str = "pg_current_xact_id()::text::bigint";
    const ENDED_TX_BOUND: &'static str = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint";
}

impl Dialect for Sqlite {
    const BACKEND: Backend = Backend::Sqlite;
    const SYSTEM: &'static str = "sqlite";
    const ILIKE: &'static str = "LIKE";
    const FOR_UPDATE: &'static str = "";
    const CURRENT_TX_ID: &'static str = "0";
    const ENDED_TX_BOUND: &'static str = "1";
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

/// A database connection taken from the pool, inside a transaction or not; the storage traits
/// are implemented on it.
pub struct Connection<DB: sqlx::Database> {
    inner: Checkout<DB>,
    metrics: Arc<Metrics>,
}

/// How a [`Connection`] holds its pooled connection.
enum Checkout<DB: sqlx::Database> {
    /// Each statement commits on its own; kept warm afterwards if all ended cleanly.
    Autocommit(Lease<DB>),
    /// Statements land together on commit, or not at all.
    InTransaction(sqlx::Transaction<'static, DB>),
}

impl<DB: sqlx::Database + Dialect> Connection<DB> {
    /// The connection, traced: each query gets a span and a duration sample.
    pub fn db(&mut self) -> Traced<'_, DB> {
        let (conn, unclean): (&mut DB::Connection, _) = match &mut self.inner {
            Checkout::Autocommit(lease) => {
                let (conn, unclean) = lease.parts();
                (conn, Some(unclean))
            }
            Checkout::InTransaction(tx) => (tx, None),
        };
        Traced::new(conn, &self.metrics.db, DB::SYSTEM, unclean)
    }
}

impl<DB: sqlx::Database> Connection<DB> {
    /// Commits the transaction, if the connection is in one (otherwise nothing is pending).
    pub async fn commit_if_in_transaction(self) -> StoreResult<()> {
        match self.inner {
            Checkout::InTransaction(tx) => Ok(tx.commit().await?),
            Checkout::Autocommit(_) => Ok(()),
        }
    }
}

/// A [`Connection`] to whichever database the pool is for.
pub enum AnyConnection {
    /// PostgreSQL.
    Postgres(Connection<Postgres>),
    /// SQLite.
    Sqlite(Connection<Sqlite>),
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
    /// Read connections kept between requests ([`warm`]); the one of the pool's engine is used.
    warm_pg: Arc<Warm<Postgres>>,
    warm_sqlite: Arc<Warm<Sqlite>>,
    /// The read replica (`DATABASE_READ_URL`), if any.
    replica: Option<Arc<replica::Replica>>,
}

impl Db {
    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Adds the read replica of `config` (PostgreSQL only) and starts its checks; `redis`
    /// shares the users' write marks between instances.
    pub fn with_read_replica(
        mut self,
        config: &crate::config::ReadReplicaConfig,
        max_connections: u32,
        acquire_timeout: std::time::Duration,
        redis: Option<Arc<crate::redis_client::Redis>>,
    ) -> anyhow::Result<Self> {
        let Pool::Postgres(primary) = &self.pool else {
            anyhow::bail!("DATABASE_READ_URL: only a PostgreSQL primary has a read replica");
        };
        let replica = Arc::new(replica::Replica::new(
            config,
            max_connections,
            acquire_timeout,
            redis,
        )?);
        replica.spawn_checks(primary.clone(), self.metrics.clone());
        self.replica = Some(replica);
        Ok(self)
    }

    /// The read replica, if one is configured.
    pub fn replica(&self) -> Option<&Arc<replica::Replica>> {
        self.replica.as_ref()
    }

    /// A connection to the read replica (each statement commits on its own).
    pub async fn acquire_replica(&self) -> StoreResult<AnyConnection> {
        let replica = self.replica.as_ref().ok_or(StoreError::PoolTimedOut)?;
        let conn = match replica.warm.take() {
            Some(conn) => conn,
            None => replica.pool.acquire().await?,
        };
        let lease = Lease::new(conn, replica.warm.clone(), replica.pool.clone());
        Ok(AnyConnection::Postgres(
            self.connection(Checkout::Autocommit(lease)),
        ))
    }

    /// The primary's WAL position now (PostgreSQL; `None` on SQLite or on error): taken right
    /// after a commit, it is at or past that commit's record.
    pub async fn primary_wal_position(&self) -> Option<u64> {
        let AnyConnection::Postgres(mut conn) = self.acquire().await.ok()? else {
            return None;
        };
        let text: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(conn.db())
            .await
            .ok()?;
        replica::parse_lsn(&text)
    }

    /// A connection for reads (each statement commits on its own): a warm one if there is one,
    /// else one from the pool.
    pub async fn acquire(&self) -> StoreResult<AnyConnection> {
        async fn lease<DB: sqlx::Database>(
            pool: &sqlx::Pool<DB>,
            warm: &Arc<Warm<DB>>,
        ) -> StoreResult<Lease<DB>> {
            let conn = match warm.take() {
                Some(conn) => conn,
                None => pool.acquire().await?,
            };
            Ok(Lease::new(conn, warm.clone(), pool.clone()))
        }
        Ok(match &self.pool {
            Pool::Postgres(pool) => AnyConnection::Postgres(
                self.connection(Checkout::Autocommit(lease(pool, &self.warm_pg).await?)),
            ),
            Pool::Sqlite(pool) => AnyConnection::Sqlite(
                self.connection(Checkout::Autocommit(lease(pool, &self.warm_sqlite).await?)),
            ),
        })
    }

    /// Starts a transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`), so two
    /// writers queue on the busy timeout instead of failing when the second upgrades its lock.
    pub async fn begin(&self) -> StoreResult<AnyConnection> {
        // A writer must not wait on the pool while a warm connection sits idle: give one back.
        fn make_room<DB: sqlx::Database>(pool: &sqlx::Pool<DB>, warm: &Warm<DB>) {
            if exhausted(pool) {
                drop(warm.take());
            }
        }
        Ok(match &self.pool {
            Pool::Postgres(pool) => {
                make_room(pool, &self.warm_pg);
                AnyConnection::Postgres(
                    self.connection(Checkout::InTransaction(pool.begin().await?)),
                )
            }
            Pool::Sqlite(pool) => {
                make_room(pool, &self.warm_sqlite);
                AnyConnection::Sqlite(self.connection(Checkout::InTransaction(
                    pool.begin_with("BEGIN IMMEDIATE").await?,
                )))
            }
        })
    }

    fn connection<DB: sqlx::Database>(&self, inner: Checkout<DB>) -> Connection<DB> {
        Connection {
            inner,
            metrics: self.metrics.clone(),
        }
    }

    /// Pool occupancy now.
    pub fn pool_stats(&self) -> PoolStats {
        match &self.pool {
            // Warm connections are idle too, though sqlx counts them as checked out.
            Pool::Postgres(pool) => PoolStats {
                size: pool.size(),
                idle: (pool.num_idle() + self.warm_pg.kept()) as u32,
                max: pool.options().get_max_connections(),
            },
            Pool::Sqlite(pool) => PoolStats {
                size: pool.size(),
                idle: (pool.num_idle() + self.warm_sqlite.kept()) as u32,
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
    ///
    /// Migrations a newer release applied are left alone (`ignore_missing`): during a rolling
    /// update the previous release keeps running, and restarting, on the expanded schema (README,
    /// "Schema changes without downtime").
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.pool {
            Pool::Postgres(pool) => {
                sqlx::migrate!("./migrations/postgres")
                    .set_ignore_missing(true)
                    .run(pool)
                    .await?
            }
            Pool::Sqlite(pool) => {
                // SQLite's migrator takes no lock: processes migrating one file at once (pods
                // starting together) would each apply the first migration. An exclusive lock on
                // a file beside the database makes them take turns; the later ones find every
                // migration applied.
                let _turn = sqlite_migration_lock(pool.connect_options().get_filename()).await?;
                sqlx::migrate!("./migrations/sqlite")
                    .set_ignore_missing(true)
                    .run(pool)
                    .await?
            }
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
        if let Some(replica) = &self.replica {
            replica.close().await;
        }
        self.warm_pg.close();
        self.warm_sqlite.close();
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

/// The SQLite migrations this build holds, as (version, checksum): what a restored file's
/// migrations must match.
pub fn known_sqlite_migrations() -> Vec<(i64, Vec<u8>)> {
    sqlx::migrate!("./migrations/sqlite")
        .iter()
        .map(|m| (m.version, m.checksum.to_vec()))
        .collect()
}

/// Holds an exclusive lock on `<database file>.migrate-lock` until dropped (none for an in-memory
/// database).
async fn sqlite_migration_lock(
    database: &std::path::Path,
) -> anyhow::Result<Option<std::fs::File>> {
    if database.as_os_str().is_empty() || database == std::path::Path::new(":memory:") {
        return Ok(None);
    }
    let mut path = database.as_os_str().to_owned();
    path.push(".migrate-lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| {
            format!(
                "cannot open the migration lock {}",
                std::path::Path::new(&path).display()
            )
        })?;
    let locked = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .context("the migration lock's task")?
        .context("cannot take the migration lock")?;
    Ok(Some(locked))
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
