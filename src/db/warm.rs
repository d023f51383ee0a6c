//! Connections kept warm between reads, out of sqlx's pool.
//!
//! sqlx tests every connection as it goes back to its pool: a `Sync` round trip to the server,
//! in a task of its own, on every release (not configurable). For a read that is a second round
//! trip with its two wake-ups, which on the list benchmark cost more than decoding the rows. A
//! read's connection that ended cleanly (every statement finished without an error, none was
//! cancelled half-way) is therefore kept here and handed to the next read or transaction; sqlx
//! still counts it as checked out. Everything else goes back to sqlx and gets its test.
//!
//! What keeps this from starving anyone, or handing out a dead connection:
//! - A connection is kept only while sqlx's pool could serve another caller at once (it has an
//!   idle connection or room for a new one). When it could not, someone may be waiting on it,
//!   so the connection goes back to sqlx instead.
//! - A transaction that would wait on sqlx while a connection is kept here gives that
//!   connection back to sqlx first, so writers never wait on connections sitting idle here.
//! - A connection kept longer than [`TRUSTED_IDLE`] (the server may have restarted, a proxy
//!   may have dropped the socket) is not handed out: it goes back to sqlx, which tests it, and
//!   the caller gets one from sqlx, tested before use in the same case (`before_acquire`).
//! - Closing the pool empties this store first and stops it keeping anything.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};

/// How long a connection may sit idle and still be handed out without a test.
pub const TRUSTED_IDLE: Duration = Duration::from_secs(1);

/// Whether an acquire on `pool` would have to wait (no idle connection, no room for another).
pub fn exhausted<DB: Database>(pool: &Pool<DB>) -> bool {
    pool.num_idle() == 0 && pool.size() >= pool.options().get_max_connections()
}

/// Read connections kept between requests, most recently used first out.
pub struct Warm<DB: Database> {
    kept: Mutex<Vec<(PoolConnection<DB>, Instant)>>,
    closed: AtomicBool,
}

impl<DB: Database> Default for Warm<DB> {
    fn default() -> Self {
        Self {
            kept: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        }
    }
}

impl<DB: Database> Warm<DB> {
    /// A kept connection used within [`TRUSTED_IDLE`], if there is one; older ones go back to
    /// sqlx on the way.
    pub fn take(&self) -> Option<PoolConnection<DB>> {
        self.take_within(TRUSTED_IDLE)
    }

    /// [`Warm::take`] with another bound on the idle time.
    fn take_within(&self, trusted_idle: Duration) -> Option<PoolConnection<DB>> {
        let mut kept = self.kept.lock().ok()?;
        while let Some((conn, since)) = kept.pop() {
            if since.elapsed() <= trusted_idle {
                return Some(conn);
            }
            // Dropped: sqlx tests it and keeps it if it still works.
            drop(conn);
        }
        None
    }

    /// Keeps `conn` for the next caller, or gives it back to sqlx (see the module's rules).
    pub fn keep(&self, conn: PoolConnection<DB>, pool: &Pool<DB>) {
        if self.closed.load(Ordering::Acquire) || exhausted(pool) {
            return;
        }
        if let Ok(mut kept) = self.kept.lock() {
            kept.push((conn, Instant::now()));
        }
    }

    /// How many connections are kept now.
    pub fn kept(&self) -> usize {
        self.kept.lock().map(|kept| kept.len()).unwrap_or(0)
    }

    /// Gives every kept connection back to sqlx and keeps none from now on.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let kept = self
            .kept
            .lock()
            .map(|mut kept| std::mem::take(&mut *kept))
            .unwrap_or_default();
        drop(kept);
    }
}

/// A read connection on its way back: kept warm when every statement on it ended cleanly,
/// otherwise returned to sqlx (which tests it) when this is dropped.
pub struct Lease<DB: Database> {
    conn: Option<PoolConnection<DB>>,
    /// Set when a statement failed or was dropped before it finished.
    pub(super) unclean: AtomicBool,
    warm: std::sync::Arc<Warm<DB>>,
    pool: Pool<DB>,
}

impl<DB: Database> Lease<DB> {
    pub(super) fn new(
        conn: PoolConnection<DB>,
        warm: std::sync::Arc<Warm<DB>>,
        pool: Pool<DB>,
    ) -> Self {
        Self {
            conn: Some(conn),
            unclean: AtomicBool::new(false),
            warm,
            pool,
        }
    }

    /// The connection and the flag its statements set when they do not end cleanly.
    pub(super) fn parts(&mut self) -> (&mut DB::Connection, &AtomicBool) {
        let conn = self
            .conn
            .as_mut()
            .expect("a lease holds its connection until dropped");
        (conn, &self.unclean)
    }
}

impl<DB: Database> Drop for Lease<DB> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.unclean.load(Ordering::Acquire)
        {
            self.warm.keep(conn, &self.pool);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::TryStreamExt;
    use sqlx::sqlite::SqlitePoolOptions;
    use sqlx::{Executor, Sqlite, SqlitePool};

    use super::*;
    use crate::db::traced::Traced;
    use crate::telemetry::metrics::Metrics;

    async fn pool(max: u32) -> SqlitePool {
        SqlitePoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(2))
            .connect("sqlite::memory:")
            .await
            .expect("an in-memory SQLite pool")
    }

    /// Runs `sql` on the lease's connection through [`Traced`], as the stores do.
    async fn run(lease: &mut Lease<Sqlite>, metrics: &Metrics, sql: &'static str) -> bool {
        let (conn, unclean) = lease.parts();
        Traced::<Sqlite>::new(conn, &metrics.db, "sqlite", Some(unclean))
            .fetch_all(sql)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_read_that_ended_cleanly_is_kept_and_one_that_failed_or_stopped_is_not() {
        let (pool, warm, metrics) = (pool(4).await, Arc::new(Warm::default()), Metrics::new("t"));
        let lease = |conn| Lease::new(conn, warm.clone(), pool.clone());

        let mut clean = lease(pool.acquire().await.unwrap());
        assert!(run(&mut clean, &metrics, "SELECT 1").await);
        drop(clean);
        assert_eq!(warm.kept(), 1, "a clean read's connection is kept");
        let mut again = lease(warm.take().expect("handed out again"));
        assert_eq!(warm.kept(), 0);

        assert!(!run(&mut again, &metrics, "SELECT * FROM no_such_table").await);
        drop(again);
        assert_eq!(
            warm.kept(),
            0,
            "a failed statement's connection goes back to sqlx"
        );

        // A query whose rows were not all read (the stream dropped half-way).
        let mut stopped = lease(pool.acquire().await.unwrap());
        {
            let (conn, unclean) = stopped.parts();
            let mut rows = Traced::<Sqlite>::new(conn, &metrics.db, "sqlite", Some(unclean))
                .fetch("SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3");
            assert!(rows.try_next().await.unwrap().is_some());
        }
        drop(stopped);
        assert_eq!(
            warm.kept(),
            0,
            "a half-read query's connection goes back to sqlx"
        );
    }

    #[tokio::test]
    async fn nothing_is_kept_while_sqlx_is_out_of_connections_or_after_close() {
        let (pool, warm) = (pool(2).await, Arc::new(Warm::<Sqlite>::default()));
        let (one, two) = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
        // Both connections are out: someone may be waiting on sqlx for one.
        warm.keep(one, &pool);
        assert_eq!(warm.kept(), 0);
        let _back = tokio::time::timeout(Duration::from_secs(2), pool.acquire())
            .await
            .expect("the connection went back to sqlx")
            .unwrap();
        warm.close();
        drop(two);
        let three = pool.acquire().await.unwrap();
        warm.keep(three, &pool);
        assert_eq!(warm.kept(), 0, "a closed store keeps nothing");
    }

    #[tokio::test]
    async fn a_connection_idle_too_long_is_not_handed_out() {
        let (pool, warm) = (pool(2).await, Warm::<Sqlite>::default());
        warm.keep(pool.acquire().await.unwrap(), &pool);
        assert_eq!(warm.kept(), 1);
        assert!(warm.take_within(Duration::ZERO).is_none());
        assert_eq!(warm.kept(), 0, "it went back to sqlx, which tests it");
    }

    #[tokio::test]
    async fn a_transaction_does_not_wait_on_sqlx_while_a_connection_is_kept() {
        let pool = pool(2).await;
        let db = crate::db::Db {
            pool: crate::db::Pool::Sqlite(pool.clone()),
            metrics: Arc::new(Metrics::new("t")),
            warm_pg: Default::default(),
            warm_sqlite: Default::default(),
            replica: None,
        };
        drop(db.acquire().await.unwrap());
        assert_eq!(db.warm_sqlite.kept(), 1);
        // The other connection taken from sqlx: it has none left to hand out.
        let _other = pool.acquire().await.unwrap();
        assert_eq!((pool.size(), pool.num_idle()), (2, 0));
        let writer = tokio::time::timeout(Duration::from_secs(5), db.begin()).await;
        assert!(
            matches!(writer, Ok(Ok(_))),
            "the kept connection went back to sqlx for the writer"
        );
        assert_eq!(db.warm_sqlite.kept(), 0);
    }
}
