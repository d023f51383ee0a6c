//! Email verification: the link is mailed through a real SMTP server on loopback (aiosmtpd,
//! started from `tests/smtp_sink.py`), read back from what that server received, and used. Also:
//! links work once, expire, are retired by newer ones, never reach the logs; a mail server
//! that is down loses no account; without SMTP nothing is mailed.
//!
//! Needs a Python with aiosmtpd: `TEST_PYTHON=/path/to/venv/bin/python cargo test` (see the
//! README). CI sets it; with `CI` set and no such Python, these tests fail instead of passing
//! unchecked.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::helpers::{
    PASSWORD, TestApp, body, invalid, problem, spawn_app, spawn_app_with, str_of, unique_email,
};

const FROM: &str = "Tasklight <no-reply@tasklight.test>";
const PUBLIC_URL: &str = "http://app.tasklight.test";

/// The Python that runs the SMTP server, or `None` (with a note) when not configured locally.
fn smtp_python() -> Option<String> {
    crate::helpers::test_python("SMTP")
}

/// A real SMTP server on loopback, and the messages it has received.
struct SmtpSink {
    child: Child,
    port: u16,
    messages: mpsc::UnboundedReceiver<Value>,
}

impl SmtpSink {
    fn start(python: &str) -> Self {
        Self::start_with(python, &[])
    }

    /// With `--starttls`: offers STARTTLS (a self-signed certificate) and reports its use.
    fn start_with(python: &str, args: &[&str]) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py");
        let mut child = Command::new(python)
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {python} {script}: {err}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (tx, messages) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("PORT ") {
                    let _ = port_tx.send(port.trim().parse::<u16>().expect("a port"));
                } else if let Ok(message) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(message);
                }
            }
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the SMTP server printed its port within 20 s (is aiosmtpd installed?)");
        Self {
            child,
            port,
            messages,
        }
    }

    /// The SMTP settings that point a server at this one.
    fn config(&self) -> Vec<(String, String)> {
        vec![
            ("SMTP_URL".into(), format!("smtp://127.0.0.1:{}", self.port)),
            ("SMTP_FROM".into(), FROM.into()),
            ("TASKLIGHT_PUBLIC_URL".into(), PUBLIC_URL.into()),
        ]
    }

    /// Whether nothing was received since the last [`SmtpSink::next_message`].
    fn nothing_more(&mut self) -> bool {
        self.messages.try_recv().is_err()
    }

    /// The next message (or `--starttls` event) received, at most 10 s from now.
    async fn next_message(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(10), self.messages.recv())
            .await
            .expect("a message arrived within 10 s")
            .expect("the SMTP server is still running")
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server that mails through `sink`.
async fn app_mailing_to(sink: &SmtpSink, extra: &[(&str, &str)]) -> TestApp {
    let config = sink.config();
    let mut vars: Vec<(&str, &str)> = config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    vars.extend_from_slice(extra);
    spawn_app_with(&vars).await
}

/// The message text with quoted-printable soft breaks and `=3D` undone.
fn text_of(message: &Value) -> String {
    str_of(message, "data")
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

/// The token of the verification link in a received message, after checking the link points
/// at `TASKLIGHT_PUBLIC_URL`.
fn link_token(message: &Value) -> String {
    let text = text_of(message);
    let prefix = format!("{PUBLIC_URL}/verify-email?token=");
    let start = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("no verification link in {text}"))
        + prefix.len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 43, "a 256-bit base64url token in {text}");
    token
}

async fn verify_email(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/auth/verify-email", None, &json!({ "token": token }))
        .await
}

async fn verified(app: &TestApp, access: &str) -> bool {
    body(app.get("/users/me", Some(access)).await, 200).await["email_verified"]
        .as_bool()
        .expect("email_verified is a boolean")
}

#[tokio::test]
async fn registering_mails_a_link_that_verifies_the_address_once() {
    let Some(python) = smtp_python() else { return };
    let mut sink = SmtpSink::start(&python);
    let app = app_mailing_to(&sink, &[]).await;
    let email = unique_email();
    let created = body(app.register(&email, PASSWORD, "Ada").await, 201).await;
    assert_eq!(created["email_verified"], false);
    let message = sink.next_message().await;
    assert_eq!(message["rcpt_tos"], json!([email]));
    assert_eq!(message["mail_from"], "no-reply@tasklight.test");
    let text = text_of(&message);
    assert!(text.contains(&format!("To: {email}")), "{text}");
    assert!(
        text.contains("Subject: Confirm your email address for Tasklight"),
        "{text}"
    );
    assert!(
        text.contains("@tasklight.test>\r\n"),
        "a Message-ID in the sender's domain: {text}"
    );
    let token = link_token(&message);

    let tokens = app.login(&email, PASSWORD).await;
    assert!(!verified(&app, &tokens.access).await);
    body(verify_email(&app, &token).await, 204).await;
    assert!(verified(&app, &tokens.access).await);
    // Single use: the same token again, and a made-up one, get the same 400 naming `token`.
    let again = invalid(verify_email(&app, &token).await, "token").await;
    let made_up = invalid(verify_email(&app, &"x".repeat(43)).await, "token").await;
    assert_eq!(again["errors"], made_up["errors"]);
    assert!(!again.to_string().contains(&token));
    app.stop().await;
}

#[tokio::test]
async fn a_new_link_retires_the_old_one_and_a_new_email_needs_its_own() {
    let Some(python) = smtp_python() else { return };
    let mut sink = SmtpSink::start(&python);
    let app = app_mailing_to(&sink, &[]).await;
    let user = app.user().await;
    let first = link_token(&sink.next_message().await);
    problem(
        app.post("/auth/resend-verification", None, &json!({}))
            .await,
        401,
    )
    .await;
    body(
        app.post("/auth/resend-verification", Some(&user.access), &json!({}))
            .await,
        204,
    )
    .await;
    let resent = sink.next_message().await;
    assert_eq!(resent["rcpt_tos"], json!([user.email]));
    let second = link_token(&resent);
    assert_ne!(first, second);
    invalid(verify_email(&app, &first).await, "token").await;
    body(verify_email(&app, &second).await, 204).await;
    assert!(verified(&app, &user.access).await);

    // A new email is unverified, gets a link of its own, and the old address's link would not
    // verify it.
    let new_email = unique_email();
    let changed = body(
        app.patch(
            "/users/me",
            Some(&user.access),
            &json!({"email": new_email, "current_password": PASSWORD}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(changed["email_verified"], false);
    let message = sink.next_message().await;
    assert_eq!(message["rcpt_tos"], json!([new_email]));
    body(verify_email(&app, &link_token(&message)).await, 204).await;
    assert!(verified(&app, &user.access).await);
    // Verified: asking again still answers 204, and mails nothing (the next message received is
    // the one of the registration below).
    body(
        app.post("/auth/resend-verification", Some(&user.access), &json!({}))
            .await,
        204,
    )
    .await;
    let other = unique_email();
    app.register(&other, PASSWORD, "Other").await;
    assert_eq!(sink.next_message().await["rcpt_tos"], json!([other]));
    app.stop().await;
}

#[tokio::test]
async fn a_link_expires() {
    let Some(python) = smtp_python() else { return };
    let mut sink = SmtpSink::start(&python);
    let app = app_mailing_to(&sink, &[("TASKLIGHT_EMAIL_VERIFICATION_TTL_SECS", "1")]).await;
    let user = app.user().await;
    let token = link_token(&sink.next_message().await);
    // The link was issued before registration answered; a second and a bit later it has expired.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    invalid(verify_email(&app, &token).await, "token").await;
    assert!(!verified(&app, &user.access).await);
    app.stop().await;
}

#[tokio::test]
async fn the_link_and_its_token_never_reach_the_log() {
    let Some(python) = smtp_python() else { return };
    let mut sink = SmtpSink::start(&python);
    let config = sink.config();
    let mut env: Vec<(&str, &str)> = config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.push(("RUST_LOG", "debug"));
    let process = crate::telemetry::process::Process::start(&env).await;
    let email = unique_email();
    process.user(&email, PASSWORD).await;
    let token = link_token(&sink.next_message().await);
    let verify = process
        .client
        .post(format!("{}/api/v1/auth/verify-email", process.base))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 204);
    let sent = crate::telemetry::process::wait_for(Duration::from_secs(5), || async {
        process
            .log()
            .iter()
            .any(|line| line.contains("verification mail sent"))
    })
    .await;
    assert!(sent, "no `verification mail sent` line");
    let log = process.log().join("\n");
    assert!(log.contains("email verification: links are mailed through SMTP_URL"));
    assert!(!log.contains(&token), "the token is in the log");
    assert!(
        !log.contains("verify-email?token"),
        "the link is in the log"
    );
    process.stop();
}

#[tokio::test]
async fn a_mail_server_that_is_down_loses_no_account() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("smtp://127.0.0.1:{closed}");
    let app = spawn_app_with(&[
        ("SMTP_URL", url.as_str()),
        ("SMTP_FROM", FROM),
        ("TASKLIGHT_PUBLIC_URL", PUBLIC_URL),
    ])
    .await;
    let user = app.user().await;
    assert!(!verified(&app, &user.access).await);
    body(
        app.post("/auth/resend-verification", Some(&user.access), &json!({}))
            .await,
        204,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn without_smtp_nothing_is_issued_and_the_answers_stay_the_same() {
    let app = spawn_app().await;
    let user = app.user().await;
    assert!(!verified(&app, &user.access).await);
    body(
        app.post("/auth/resend-verification", Some(&user.access), &json!({}))
            .await,
        204,
    )
    .await;
    invalid(verify_email(&app, &"A".repeat(43)).await, "token").await;
    invalid(verify_email(&app, "").await, "token").await;
    // The verification endpoints are limited per client address like login.
    let resp = verify_email(&app, "abc").await;
    assert!(
        crate::helpers::header(&resp, "ratelimit-policy").contains("auth-ip"),
        "{:?}",
        resp.headers()
    );
    // An administrator made by `create-admin` is verified.
    let admin = app.admin().await;
    assert!(verified(&app, &admin.access).await);
    app.stop().await;
}

#[tokio::test]
async fn starttls_is_used_whenever_the_server_offers_it_and_never_skipped() {
    let Some(python) = smtp_python() else { return };
    let mut sink = SmtpSink::start_with(&python, &["--starttls"]);
    let config = sink.config();
    let mut env: Vec<(&str, &str)> = config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.push(("RUST_LOG", "info"));
    let process = crate::telemetry::process::Process::start(&env).await;
    let email = unique_email();
    process.user(&email, PASSWORD).await;
    // The server offers STARTTLS on plain `smtp://`: the client upgrades at once.
    assert_eq!(sink.next_message().await, json!({"event": "STARTTLS"}));
    // Its self-signed certificate is not trusted, so the mail is not sent, and not sent in plain
    // text instead either: once the failure is logged, nothing reached the server.
    let failed = crate::telemetry::process::wait_for(Duration::from_secs(20), || async {
        process
            .log()
            .iter()
            .any(|line| line.contains("the verification mail could not be sent"))
    })
    .await;
    assert!(failed, "no failure logged:\n{}", process.log().join("\n"));
    assert!(
        sink.nothing_more(),
        "something was delivered after the refused TLS handshake"
    );
    process.stop();
}
