//! The database of one test: a fresh PostgreSQL database on `TEST_DATABASE_URL`, or SQLite in
//! a temporary directory.

use sqlx::Connection;
use uuid::Uuid;

/// The database behind one test: a PostgreSQL database made for it, or a SQLite file.
pub enum TestDb {
    Sqlite { dir: tempfile::TempDir, url: String },
    Postgres(PgDatabase),
}

/// A database created on the `TEST_DATABASE_URL` server for one test.
pub struct PgDatabase {
    server_url: String,
    name: String,
    url: String,
    dropped: bool,
}

impl TestDb {
    pub async fn fresh() -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(server_url) if !server_url.trim().is_empty() => {
                Self::Postgres(PgDatabase::create(server_url).await)
            }
            _ => {
                let dir = tempfile::tempdir().expect("cannot create a temporary directory");
                let url = format!("sqlite://{}/tasklight.db", dir.path().display());
                Self::Sqlite { dir, url }
            }
        }
    }

    /// The `DATABASE_URL` the server uses.
    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres(PgDatabase { url, .. }) => url,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Runs statements on the database behind the service's back (a test's sabotage).
    pub async fn execute(&self, sql: &'static str) {
        if self.is_postgres() {
            let mut conn = sqlx::PgConnection::connect(self.url()).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        } else {
            let mut conn = sqlx::SqliteConnection::connect(self.url()).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
    }

    /// Drops the PostgreSQL database, or removes the SQLite directory.
    pub async fn cleanup(self) {
        match self {
            Self::Postgres(mut db) => db.drop_database().await,
            Self::Sqlite { dir, .. } => {
                let _ = dir.close();
            }
        }
    }
}

impl PgDatabase {
    async fn create(server_url: String) -> Self {
        let mut conn = sqlx::PgConnection::connect(&server_url).await.unwrap_or_else(|err| {
            panic!(
                "TEST_DATABASE_URL is set to `{server_url}` but PostgreSQL cannot be reached: {err}. \
                 Start PostgreSQL, or unset TEST_DATABASE_URL to run the suite on SQLite."
            )
        });
        let name = format!("tasklight_test_{}", Uuid::new_v4().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|err| {
                panic!("cannot create database {name} on TEST_DATABASE_URL: {err}")
            });
        let _ = conn.close().await;
        let mut url = url::Url::parse(&server_url).expect("TEST_DATABASE_URL is not a URL");
        url.set_path(&format!("/{name}"));
        let url = url.to_string();
        Self {
            server_url,
            name,
            url,
            dropped: false,
        }
    }

    /// Best effort, tried once: `WITH (FORCE)` also ends connections a failed test left open.
    async fn drop_database(&mut self) {
        self.dropped = true;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.server_url).await {
            let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }
}

impl Drop for PgDatabase {
    /// A test that panicked before `stop()`: drop its database from a detached thread, so that
    /// the test's runtime is never blocked.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let mut leftover = Self {
            server_url: self.server_url.clone(),
            name: self.name.clone(),
            url: String::new(),
            dropped: true,
        };
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(leftover.drop_database());
            }
        });
    }
}
