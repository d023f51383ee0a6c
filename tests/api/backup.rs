//! `tasklight backup` and `tasklight restore` on the embedded SQLite database: a backup taken
//! while the service keeps writing holds every write acknowledged before it started, row for row,
//! and none sent after it finished; restores check their file and refuse to replace a database
//! in use or, without `--force`, an existing one. (PostgreSQL is backed up with its own tools:
//! `deploy/postgres/check-pitr.sh`.)

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{JWT_SECRET, PASSWORD, unique_email};
use crate::telemetry::process::Process;

/// Runs `tasklight <args>` on `database` (a SQLite URL) and waits for it.
fn tasklight(database: &str, args: &[&str]) -> Output {
    crate::helpers::tasklight_command(database, args)
        .output()
        .expect("the binary runs")
}

fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A task the writer created: its body as answered, and when its request was sent and answered.
#[derive(Clone)]
struct Written {
    task: Value,
    sent: Instant,
    acknowledged: Instant,
}

async fn start(database: &str) -> Process {
    Process::start(&[
        ("DATABASE_URL", database),
        ("JWT_SECRET", JWT_SECRET),
        // The writer outruns the default per-user quota.
        ("TASKLIGHT_RATE_LIMIT_USER", "100000/60s,burst=10000"),
    ])
    .await
}

/// Every task of the project, by id, read through the API.
async fn tasks_of(process: &Process, access: &str, project: &str) -> HashMap<String, Value> {
    let mut all = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/projects/{project}/tasks?limit=100");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = process
            .json(reqwest::Method::GET, &path, Some(access), None)
            .await;
        for task in page["items"].as_array().unwrap() {
            all.insert(task["id"].as_str().unwrap().to_owned(), task.clone());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_writes_restores_every_write_acknowledged_before_it_and_none_after() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/data/tasklight.db", dir.path().display());
    let file = dir.path().join("data/tasklight.db");
    let backup = dir.path().join("backup.db");
    let backup_arg = backup.to_str().unwrap().to_owned();

    let process = start(&database).await;
    let email = unique_email();
    let (access, _) = process.user(&email, PASSWORD).await;
    let project = process.project(&access, "Backed up").await;

    // A writer that keeps creating tasks until told to stop, recording each acknowledged one.
    let written = Arc::new(Mutex::new(Vec::<Written>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (client, base, access, project) = (
            process.client.clone(),
            process.base.clone(),
            access.clone(),
            project.clone(),
        );
        let (written, stop) = (written.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 5_000 {
                n += 1;
                let sent = Instant::now();
                let response = client
                    .post(format!("{base}/api/v1/projects/{project}/tasks"))
                    .bearer_auth(&access)
                    .json(&json!({"title": format!("task {n}"), "priority": "high", "tags": ["b", "a"]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201, "a write failed during the backup");
                let task: Value = response.json().await.unwrap();
                let acknowledged = Instant::now();
                written.lock().unwrap().push(Written {
                    task,
                    sent,
                    acknowledged,
                });
            }
        })
    };
    let count = || written.lock().unwrap().len();
    let waited = Instant::now();
    while count() < 100 && waited.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let backup_started = Instant::now();
    let db = database.clone();
    let made =
        tokio::task::spawn_blocking(move || tasklight(&db, &["backup", "--to", &backup_arg]))
            .await
            .unwrap();
    let backup_finished = Instant::now();
    assert!(made.status.success(), "{}", said(&made));
    assert!(said(&made).contains("checked"), "{}", said(&made));
    let during = count();
    while count() < during + 100 && waited.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    let written = written.lock().unwrap().clone();

    // A second backup to the same file is refused; a restore while the instance serves is
    // refused even with --force; a file that is not a database is refused.
    let again = tasklight(&database, &["backup", "--to", backup.to_str().unwrap()]);
    assert!(!again.status.success() && said(&again).contains("already exists"));
    let busy = tasklight(
        &database,
        &["restore", "--from", backup.to_str().unwrap(), "--force"],
    );
    assert!(
        !busy.status.success() && said(&busy).contains("is serving"),
        "{}",
        said(&busy)
    );
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, b"not a database at all").unwrap();
    process.stop();

    let refused = tasklight(
        &database,
        &["restore", "--from", garbage.to_str().unwrap(), "--force"],
    );
    assert!(
        !refused.status.success() && said(&refused).contains("not a SQLite database"),
        "{}",
        said(&refused)
    );
    let unforced = tasklight(&database, &["restore", "--from", backup.to_str().unwrap()]);
    assert!(
        !unforced.status.success() && said(&unforced).contains("--force"),
        "{}",
        said(&unforced)
    );
    let restored = tasklight(
        &database,
        &["restore", "--from", backup.to_str().unwrap(), "--force"],
    );
    assert!(restored.status.success(), "{}", said(&restored));
    let kept = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".replaced-"))
        .count();
    assert!(kept >= 1, "the replaced database is kept");

    // The restored database, served again: every write acknowledged before the backup started
    // is there as it was answered; none sent after it finished is.
    let process = start(&database).await;
    let (access, _) = process.login(&email, PASSWORD).await;
    let after = tasks_of(&process, &access, &project).await;
    let before: Vec<&Written> = written
        .iter()
        .filter(|w| w.acknowledged < backup_started)
        .collect();
    let later: Vec<&Written> = written
        .iter()
        .filter(|w| w.sent > backup_finished)
        .collect();
    assert!(
        before.len() >= 100 && later.len() >= 50,
        "{} {}",
        before.len(),
        later.len()
    );
    for w in &before {
        let id = w.task["id"].as_str().unwrap();
        let listed = after
            .get(id)
            .unwrap_or_else(|| panic!("task {id}, acknowledged before the backup, is missing"));
        for field in [
            "id",
            "project_id",
            "title",
            "description",
            "status",
            "priority",
            "assignee_id",
            "due_at",
            "tags",
            "created_by",
            "created_at",
            "updated_at",
            "version",
        ] {
            assert_eq!(listed[field], w.task[field], "{field} of {id}");
        }
    }
    for w in &later {
        let id = w.task["id"].as_str().unwrap();
        assert!(
            !after.contains_key(id),
            "task {id} was written after the backup"
        );
    }
    println!(
        "backup under writes: {} acknowledged before it compared row for row, {} sent after it \
         absent, {} in between; backup took {} ms",
        before.len(),
        later.len(),
        written.len() - before.len() - later.len(),
        (backup_finished - backup_started).as_millis()
    );
    // In-between writes (sent before it finished, acknowledged after it started) may be either.
    assert!(after.len() >= before.len() && after.len() <= written.len() - later.len());
    // And the restored database takes writes.
    let response = process
        .client
        .post(format!("{}/api/v1/projects/{project}/tasks", process.base))
        .bearer_auth(&access)
        .json(&json!({"title": "after the restore"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    process.stop();
    assert!(Path::new(&backup).exists());
}
