//! Backups and restores of the embedded SQLite database (`tasklight backup`, `tasklight
//! restore`), and the lock by which a restore knows that an instance is serving the database.
//!
//! - A backup is `VACUUM INTO`: one read transaction, so the copy is the database as of one
//!   moment while instances keep writing (WAL readers do not block writers). It is written beside
//!   the target as `<file>.partial` and renamed only once it is complete and checked, so a failed
//!   backup never leaves a file that looks like one.
//! - A restore checks the file first (SQLite's integrity check; every migration it records is
//!   one this build knows, with the same checksum), refuses while any instance serves the
//!   database (each holds a shared lock on `<database>.serve-lock` from before it connects until
//!   it exits) and refuses to replace an existing database without `--force`. The database it
//!   replaces is kept, renamed `<database>.replaced-<time>`, with its WAL.
//!
//! PostgreSQL has its own tools for this (`pg_basebackup` and WAL archiving, see
//! `deploy/postgres/`).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection};

/// `path` with `suffix` appended to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn open_lock_file(database: &Path) -> anyhow::Result<File> {
    if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    let path = beside(database, ".serve-lock");
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))
}

/// A shared lock on `<database>.serve-lock`, held by a serving instance while it runs.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

impl ServeLock {
    /// Takes the lock; waits while a restore holds it (and says so).
    pub async fn take(database: &Path) -> anyhow::Result<Self> {
        let file = open_lock_file(database)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => {
                tracing::warn!(
                    database = %database.display(),
                    "a restore is replacing the database; waiting for it to finish"
                );
                let file = tokio::task::spawn_blocking(move || file.lock_shared().map(|()| file))
                    .await
                    .context("the serve lock's task")?
                    .context("cannot take the serve lock")?;
                Ok(Self { _file: file })
            }
            Err(TryLockError::Error(err)) => Err(err).context("cannot take the serve lock"),
        }
    }
}

/// What a backup made.
#[derive(Debug)]
pub struct BackupReport {
    /// The backup file.
    pub file: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// How long the copy and its check took.
    pub elapsed: Duration,
    /// What the copy holds, as its check read it.
    pub contents: Contents,
}

/// What a database file holds, read by [`inspect`].
#[derive(Debug)]
pub struct Contents {
    /// The newest migration applied.
    pub schema_version: i64,
    /// Rows per table (SQLite's own and the full-text index's internal tables left out).
    pub rows: Vec<(String, i64)>,
}

impl Contents {
    /// Rows of one table.
    pub fn rows_of(&self, table: &str) -> Option<i64> {
        self.rows.iter().find(|(t, _)| t == table).map(|(_, n)| *n)
    }
}

async fn connect(file: &Path, read_only: bool, busy: Duration) -> anyhow::Result<SqliteConnection> {
    SqliteConnectOptions::new()
        .filename(file)
        .read_only(read_only)
        .create_if_missing(false)
        .busy_timeout(busy)
        .disable_statement_logging()
        .connect()
        .await
        .with_context(|| format!("cannot open {} as a SQLite database", file.display()))
}

/// Checks a database file and reads what it holds: SQLite's integrity check, and every
/// migration it records is one of `known` (version, checksum) and succeeded.
pub async fn inspect(file: &Path, known: &[(i64, Vec<u8>)]) -> anyhow::Result<Contents> {
    if !file.is_file() {
        bail!("{} does not exist or is not a file", file.display());
    }
    let mut conn = connect(file, true, Duration::from_secs(5)).await?;
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .with_context(|| format!("{} is not a SQLite database", file.display()))?;
    if integrity != "ok" {
        bail!(
            "{} fails SQLite's integrity check: {integrity}",
            file.display()
        );
    }
    let applied = sqlx::query("SELECT version, success, checksum FROM _sqlx_migrations")
        .fetch_all(&mut conn)
        .await
        .with_context(|| {
            format!(
                "{} is not a Tasklight database (no migrations table)",
                file.display()
            )
        })?;
    let mut schema_version = 0;
    for row in &applied {
        let version: i64 = row.get("version");
        let success: bool = row.get("success");
        let checksum: Vec<u8> = row.get("checksum");
        if !success {
            bail!("{}: migration {version} did not finish", file.display());
        }
        match known.iter().find(|(v, _)| *v == version) {
            None => bail!(
                "{}: migration {version} is not one this build knows (a newer release made it)",
                file.display()
            ),
            Some((_, sum)) if *sum != checksum => bail!(
                "{}: migration {version} differs from this build's (another build made it)",
                file.display()
            ),
            Some(_) => schema_version = schema_version.max(version),
        }
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name NOT LIKE '%fts%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut rows = Vec::with_capacity(tables.len());
    for table in tables {
        let sql = format!("SELECT count(*) FROM \"{}\"", table.replace('"', "\"\""));
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await?;
        rows.push((table, count));
    }
    conn.close().await?;
    Ok(Contents {
        schema_version,
        rows,
    })
}

/// Flushes a file's contents and the directory entry that names it to disk.
fn sync(file: &Path) -> anyhow::Result<()> {
    File::open(file)?.sync_all()?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// `tasklight backup --to FILE`: a consistent copy of `database` while it is in use.
pub async fn backup(
    database: &Path,
    to: &Path,
    busy: Duration,
    known: &[(i64, Vec<u8>)],
) -> anyhow::Result<BackupReport> {
    if !database.is_file() {
        bail!("there is no database at {}", database.display());
    }
    if to.exists() {
        bail!(
            "{} already exists; name a new file (a backup never overwrites one)",
            to.display()
        );
    }
    let partial = beside(to, ".partial");
    let _ = std::fs::remove_file(&partial);
    let started = Instant::now();
    let mut conn = connect(database, false, busy).await?;
    let copied = sqlx::query("VACUUM INTO $1")
        .bind(partial.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await
        .with_context(|| format!("cannot write {}", partial.display()));
    conn.close().await?;
    if let Err(err) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(err);
    }
    let checked = inspect(&partial, known).await;
    let contents = match checked {
        Ok(contents) => contents,
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            return Err(err.context("the copy failed its check and was removed"));
        }
    };
    sync(&partial)?;
    std::fs::rename(&partial, to)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), to.display()))?;
    sync(to)?;
    Ok(BackupReport {
        file: to.to_owned(),
        bytes: std::fs::metadata(to)?.len(),
        elapsed: started.elapsed(),
        contents,
    })
}

/// What a restore did.
#[derive(Debug)]
pub struct RestoreReport {
    /// What the restored database holds.
    pub contents: Contents,
    /// Where the database it replaced was kept, if there was one.
    pub replaced: Option<PathBuf>,
    /// How long it took.
    pub elapsed: Duration,
}

/// `tasklight restore --from FILE`: replaces `database` with a checked copy of `from`.
pub async fn restore(
    database: &Path,
    from: &Path,
    force: bool,
    known: &[(i64, Vec<u8>)],
) -> anyhow::Result<RestoreReport> {
    let started = Instant::now();
    let contents = inspect(from, known)
        .await
        .context("the backup file was not restored")?;
    let lock = open_lock_file(database)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => bail!(
            "a tasklight instance is serving {}; stop every instance first (a restore under a \
             running instance would be lost or corrupt the database)",
            database.display()
        ),
        Err(TryLockError::Error(err)) => return Err(err).context("cannot take the serve lock"),
    }
    if database.exists() && !force {
        bail!(
            "{} exists; add --force to replace it (it is kept, renamed <database>.replaced-<time>)",
            database.display()
        );
    }
    let partial = beside(database, ".restore-partial");
    std::fs::copy(from, &partial)
        .with_context(|| format!("cannot copy {} to {}", from.display(), partial.display()))?;
    // The copy takes the journal mode the service uses, so no instance has to change it.
    let mut conn = connect(&partial, false, Duration::from_secs(5)).await?;
    sqlx::query("PRAGMA journal_mode = WAL")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    sync(&partial)?;
    let replaced = if database.exists() {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let kept = beside(database, &format!(".replaced-{stamp}"));
        std::fs::rename(database, &kept)
            .with_context(|| format!("cannot move {} aside", database.display()))?;
        let wal = beside(database, "-wal");
        if wal.exists() {
            std::fs::rename(&wal, beside(&kept, "-wal"))?;
        }
        let _ = std::fs::remove_file(beside(database, "-shm"));
        Some(kept)
    } else {
        None
    };
    std::fs::rename(&partial, database)?;
    sync(database)?;
    drop(lock);
    Ok(RestoreReport {
        contents,
        replaced,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::beside;
    use std::path::Path;

    #[test]
    fn files_beside_the_database_keep_its_directory() {
        assert_eq!(
            beside(Path::new("data/tasklight.db"), ".serve-lock"),
            Path::new("data/tasklight.db.serve-lock")
        );
    }
}
