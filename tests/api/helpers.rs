//! `TestApp`: the real server started in-process on a fresh database, with typed helpers.
//!
//! The database is chosen by one variable: `TEST_DATABASE_URL` (a PostgreSQL server on which a
//! fresh `tasklight_test_<uuid>` database is created) or, when unset, SQLite in a temporary dir.

use std::collections::HashMap;
use std::net::SocketAddr;

mod checks;
mod db;
pub mod receiver;
pub mod sse;

pub use checks::{
    body, fields, header, ids, invalid, names, problem, read, statements_run, str_of,
};
pub use db::TestDb;

/// Runs `$body` with `$c` bound to a connection from `$pool` (a `tasklight::db::Db`, such as
/// the server's own), whichever database it is: the same sqlx code, compiled for each backend.
/// For a test's look behind the API.
macro_rules! on_db {
    ($pool:expr, |$c:ident| $body:expr) => {
        match $pool.acquire().await.unwrap() {
            tasklight::db::AnyConnection::Postgres(mut $c) => $body,
            tasklight::db::AnyConnection::Sqlite(mut $c) => $body,
        }
    };
}
pub(crate) use on_db;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use tasklight::server::RunningServer;
use uuid::Uuid;

/// An HTTP client for the tests. reqwest is the version Sentry's transport brings in, built
/// without a TLS crypto provider of its own: like `tasklight serve`, the tests install ring's
/// as the process-wide provider first.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// The fixed 48-character HMAC key every test server signs with.
pub const JWT_SECRET: &str = "tasklight-integration-tests-secret-0123456789abc";
/// A valid password (12..128 characters).
pub const PASSWORD: &str = "correct horse battery staple";
/// The `INSTANCE_ID` of every test server.
pub const INSTANCE_ID: &str = "test-instance";

/// A user that has registered and logged in.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub access: String,
    pub refresh: String,
}

/// An access and a refresh token from one login or refresh.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

/// One project with a user in each role, an outsider and one task.
pub struct Team {
    pub owner: TestUser,
    pub member: TestUser,
    pub viewer: TestUser,
    pub outsider: TestUser,
    pub project_id: String,
    pub task_id: String,
}

/// A running server on its own database.
pub struct TestApp {
    pub server: RunningServer,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub db: TestDb,
    extra: Vec<(String, String)>,
}

/// The configuration every test server starts from: ephemeral ports, the test database and key,
/// and rate limits out of the way (tests register and log in far faster than a person; the
/// rate-limit tests set their own quotas).
pub fn base_config(database_url: &str, instance_id: &str) -> HashMap<String, String> {
    [
        ("TASKLIGHT_LISTEN", "127.0.0.1:0"),
        ("TASKLIGHT_ADMIN_LISTEN", "127.0.0.1:0"),
        ("DATABASE_URL", database_url),
        ("JWT_SECRET", JWT_SECRET),
        ("RUST_LOG", "warn"),
        ("INSTANCE_ID", instance_id),
        ("TASKLIGHT_RATE_LIMIT_USER", GENEROUS_QUOTA),
        ("TASKLIGHT_RATE_LIMIT_IP", GENEROUS_QUOTA),
        ("TASKLIGHT_RATE_LIMIT_AUTH_IP", GENEROUS_QUOTA),
        ("TASKLIGHT_RATE_LIMIT_AUTH_ACCOUNT", GENEROUS_QUOTA),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A quota no test reaches by accident.
pub const GENEROUS_QUOTA: &str = "1000000/1s,burst=1000000";

/// Starts a server on a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// `tasklight <args>` (the binary under test) on `database_url`, with the test key, warnings only
/// and nothing else from this process's environment.
pub fn tasklight_command(database_url: &str, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tasklight"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("JWT_SECRET", JWT_SECRET)
        .env("RUST_LOG", "warn");
    command
}

/// Starts a server on a fresh database with extra configuration variables.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let extra = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    TestApp::start(TestDb::fresh().await, extra).await
}

impl TestApp {
    pub async fn start(db: TestDb, extra: Vec<(String, String)>) -> Self {
        let mut vars = base_config(db.url(), INSTANCE_ID);
        vars.extend(extra.iter().cloned());
        let config = tasklight::config::Config::from_map(&vars).expect("test configuration");
        let server = tasklight::server::start(config)
            .await
            .expect("the server starts");
        let addr = server.addr;
        Self {
            server,
            addr,
            client: http_client(),
            db,
            extra,
        }
    }

    /// Stops the server and drops its database.
    pub async fn stop(self) {
        self.server.stop().await;
        self.db.cleanup().await;
    }

    /// Stops the server and starts a new one on the same database and configuration.
    pub async fn restart(self) -> Self {
        let extra = self.extra.clone();
        self.restart_with(extra).await
    }

    /// Stops the server and starts a new one on the same database with other extra variables.
    pub async fn restart_with(self, extra: Vec<(String, String)>) -> Self {
        let Self { server, db, .. } = self;
        server.stop().await;
        Self::start(db, extra).await
    }

    /// `/api/v1` is prepended to API paths; `/health`, `/docs` and `/api/...` are taken as they are.
    pub fn url(&self, path: &str) -> String {
        let prefixed = ["/api/", "/health", "/docs"]
            .iter()
            .any(|p| path.starts_with(p));
        let prefix = if prefixed { "" } else { "/api/v1" };
        format!("http://{}{prefix}{path}", self.addr)
    }

    /// A request, with a bearer token when one is given.
    pub fn req(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let builder = self.req(method, path, token);
        let builder = match body {
            Some(body) => builder.json(body),
            None => builder,
        };
        builder.send().await.expect("the request is answered")
    }

    /// The OpenAPI document the server serves.
    pub async fn spec(&self) -> Value {
        self.get("/api/v1/openapi.json", None)
            .await
            .json()
            .await
            .expect("the OpenAPI document is JSON")
    }

    /// Opens a project's event stream with the bearer token, after `last_event_id` if given.
    pub async fn stream(
        &self,
        project_id: &str,
        token: &str,
        last_event_id: Option<&str>,
    ) -> sse::SseStream {
        let mut request = self.req(
            Method::GET,
            &format!("/projects/{project_id}/events"),
            Some(token),
        );
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        sse::SseStream::new(request.send().await.expect("the stream is answered"))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.send(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.send(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.send(Method::PUT, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.send(Method::DELETE, path, token, None).await
    }

    /// The admin listener's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("http://{}/metrics", self.server.admin_addr))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn register(&self, email: &str, password: &str, name: &str) -> Response {
        let body = json!({"email": email, "password": password, "display_name": name});
        self.post("/auth/register", None, &body).await
    }

    pub async fn login_response(&self, email: &str, password: &str) -> Response {
        self.post(
            "/auth/login",
            None,
            &json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Tokens {
        tokens(&body(self.login_response(email, password).await, 200).await)
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post(
            "/auth/refresh",
            None,
            &json!({"refresh_token": refresh_token}),
        )
        .await
    }

    /// Registers a user with a unique email and logs them in.
    pub async fn user(&self) -> TestUser {
        let email = unique_email();
        let created = body(self.register(&email, PASSWORD, "Test User").await, 201).await;
        let tokens = self.login(&email, PASSWORD).await;
        TestUser {
            id: str_of(&created, "id"),
            email,
            access: tokens.access,
            refresh: tokens.refresh,
        }
    }

    /// Creates an administrator through the service and logs them in.
    pub async fn admin(&self) -> TestUser {
        let email = unique_email();
        tasklight::users::service::create_or_promote_admin(
            &self.server.state.domain,
            &email,
            "Admin",
            PASSWORD,
        )
        .await
        .expect("create_or_promote_admin");
        let tokens = self.login(&email, PASSWORD).await;
        let me = body(self.get("/users/me", Some(&tokens.access)).await, 200).await;
        assert_eq!(me["role"], "admin");
        TestUser {
            id: str_of(&me, "id"),
            email,
            access: tokens.access,
            refresh: tokens.refresh,
        }
    }

    /// Creates a project owned by the caller; returns its body.
    pub async fn create_project(&self, token: &str, name: &str) -> Value {
        body(
            self.post("/projects", Some(token), &json!({"name": name}))
                .await,
            201,
        )
        .await
    }

    /// Adds (or changes) a member; returns the Member body.
    pub async fn add_member(
        &self,
        token: &str,
        project_id: &str,
        user_id: &str,
        role: &str,
    ) -> Value {
        let path = format!("/projects/{project_id}/members/{user_id}");
        body(
            self.put(&path, Some(token), &json!({"role": role})).await,
            200,
        )
        .await
    }

    /// The owner (`token`) removes a member from a project; asserts the 204.
    pub async fn remove_member(&self, token: &str, project_id: &str, user_id: &str) {
        let path = format!("/projects/{project_id}/members/{user_id}");
        body(self.delete(&path, Some(token)).await, 204).await;
    }

    /// Creates a task; `fields` is the request body. Returns the Task body.
    pub async fn create_task(&self, token: &str, project_id: &str, fields: Value) -> Value {
        let path = format!("/projects/{project_id}/tasks");
        body(self.post(&path, Some(token), &fields).await, 201).await
    }

    /// A project with an owner, a member, a viewer, an outsider and one task.
    pub async fn team(&self) -> Team {
        let (owner, member, viewer, outsider) =
            futures::join!(self.user(), self.user(), self.user(), self.user());
        let project_id = str_of(
            &self.create_project(&owner.access, "Team project").await,
            "id",
        );
        self.add_member(&owner.access, &project_id, &member.id, "member")
            .await;
        self.add_member(&owner.access, &project_id, &viewer.id, "viewer")
            .await;
        let task = self
            .create_task(&owner.access, &project_id, json!({"title": "First task"}))
            .await;
        Team {
            owner,
            member,
            viewer,
            outsider,
            project_id,
            task_id: str_of(&task, "id"),
        }
    }
}

/// The Python of the tests that use real Python tools (aiosmtpd, standardwebhooks): the
/// `TEST_PYTHON` variable, or `None` (with a note) when it is unset outside CI. Under `CI`, a
/// missing Python fails the test instead of letting it pass unchecked.
pub fn test_python(what: &str) -> Option<String> {
    match std::env::var("TEST_PYTHON") {
        Ok(python) if !python.is_empty() => Some(python),
        _ if std::env::var_os("CI").is_some() => {
            panic!(
                "CI must run the {what} tests: set TEST_PYTHON (a Python with aiosmtpd and standardwebhooks)"
            )
        }
        _ => {
            eprintln!(
                "{what} tests not run: set TEST_PYTHON to a Python with aiosmtpd and standardwebhooks"
            );
            None
        }
    }
}

/// A unique, valid email address.
pub fn unique_email() -> String {
    format!("user-{}@example.com", Uuid::new_v4().simple())
}

fn tokens(pair: &Value) -> Tokens {
    Tokens {
        access: str_of(pair, "access_token"),
        refresh: str_of(pair, "refresh_token"),
    }
}
