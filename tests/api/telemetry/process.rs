//! A `tasklight serve` child process on a fresh SQLite file, with its stdout collected.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running child process.
pub struct Process {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub base: String,
    pub admin: String,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Process {
    /// Starts the binary with `env` added to a minimal environment, and waits until it answers.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (port, admin_port) = (free_port(), free_port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_tasklight"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TASKLIGHT_LISTEN", format!("127.0.0.1:{port}"))
            .env("TASKLIGHT_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
            .env(
                "DATABASE_URL",
                format!("sqlite://{}/t.db", dir.path().display()),
            )
            .env("INSTANCE_ID", "proc-instance")
            .env("RUST_LOG", "info")
            // Tests stop their process at once; the shutdown test sets its own delay.
            .env("TASKLIGHT_DRAIN_DELAY_MS", "0")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("the tasklight binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let process = Self {
            child,
            lines,
            base: format!("http://127.0.0.1:{port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            client: crate::helpers::http_client(),
            _dir: dir,
        };
        let ready = wait_for(Duration::from_secs(20), || async {
            process
                .client
                .get(format!("{}/health/live", process.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(
            ready,
            "tasklight did not answer within 20 s; log:\n{}",
            process.log().join("\n")
        );
        process
    }

    /// Everything written to stdout so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Stdout lines parsed as JSON (lines that are not JSON are left out).
    pub fn json_log(&self) -> Vec<Value> {
        self.log()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The Prometheus text from the admin listener.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text")
    }

    /// Sends `body` (if any) as JSON to the API path `path` (under `/api/v1`) with `token`
    /// (if any), and reads the answer as JSON.
    pub async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Value {
        let mut request = self
            .client
            .request(method, format!("{}/api/v1{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    /// Logs in; returns (access token, refresh token).
    pub async fn login(&self, email: &str, password: &str) -> (String, String) {
        let body = serde_json::json!({"email": email, "password": password});
        let tokens = self
            .json(reqwest::Method::POST, "/auth/login", None, Some(&body))
            .await;
        (
            tokens["access_token"].as_str().unwrap().to_owned(),
            tokens["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    /// Registers and logs in a user; returns (access token, refresh token).
    pub async fn user(&self, email: &str, password: &str) -> (String, String) {
        let register = self
            .client
            .post(format!("{}/api/v1/auth/register", self.base))
            .json(
                &serde_json::json!({"email": email, "password": password, "display_name": "Probe"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(register.status(), 201);
        self.login(email, password).await
    }

    /// Creates a project; returns its id.
    pub async fn project(&self, access: &str, name: &str) -> String {
        let body = serde_json::json!({ "name": name });
        let project = self
            .json(
                reqwest::Method::POST,
                "/projects",
                Some(access),
                Some(&body),
            )
            .await;
        project["id"].as_str().unwrap().to_owned()
    }

    /// Stops the process with SIGTERM and waits (bounded) for it to exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate();
        self.wait_exit(Duration::from_secs(15))
            .expect("tasklight exits within 15 s of SIGTERM")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// The exit status, once the process has exited within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 50 ms until it holds or `limit` passes; returns whether it held.
pub async fn wait_for<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The value of a sample line `name{labels} value` in Prometheus text, if present.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
