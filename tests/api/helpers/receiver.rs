//! A webhook receiver for the tests: a real HTTP server on loopback that records every request
//! (headers, body, the status it answered) and answers as told: 204, a 500 for the first N
//! requests or for all of them, or a redirect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Request, Response, http::StatusCode};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: String,
    pub status: u16,
    pub at: Instant,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Behaviour {
    fail_first: usize,
    failing: bool,
    redirect_to: Option<String>,
    received: Vec<Received>,
}

/// The running receiver.
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    state: Arc<Mutex<Behaviour>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(Behaviour::default()));
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let shared = state.clone();
        let endpoint = poem::endpoint::make(move |req: Request| {
            let shared = shared.clone();
            async move { answer(&shared, req).await }
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    endpoint,
                    async {
                        let _ = stopped.await;
                    },
                    Some(Duration::from_secs(1)),
                )
                .await;
        });
        Self {
            addr,
            state,
            stop: Some(stop),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answer 500 to the next `n` requests.
    pub fn fail_first(&self, n: usize) {
        self.state.lock().unwrap().fail_first = n;
    }

    /// Answer 500 to every request from now on (or stop doing so).
    pub fn set_failing(&self, failing: bool) {
        self.state.lock().unwrap().failing = failing;
    }

    /// Answer 302 to `location`.
    pub fn redirect_to(&self, location: &str) {
        self.state.lock().unwrap().redirect_to = Some(location.to_owned());
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// The requests answered 2xx so far.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.status < 300)
            .collect()
    }

    /// Waits (at most `within`) until `n` requests were answered 2xx; returns them.
    pub async fn wait_accepted(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let accepted = self.accepted();
            if accepted.len() >= n || Instant::now() > deadline {
                return accepted;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn answer(state: &Mutex<Behaviour>, req: Request) -> Response {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let body = req.into_body().into_string().await.unwrap_or_default();
    let mut state = state.lock().unwrap();
    let (status, location) = if let Some(location) = state.redirect_to.clone() {
        (302, Some(location))
    } else if state.failing {
        (500, None)
    } else if state.fail_first > 0 {
        state.fail_first -= 1;
        (500, None)
    } else {
        (204, None)
    };
    state.received.push(Received {
        headers,
        body,
        status,
        at: Instant::now(),
    });
    let mut response = Response::builder().status(StatusCode::from_u16(status).unwrap());
    if let Some(location) = location {
        response = response.header("location", location);
    }
    response.finish()
}

/// Whether the standardwebhooks package (tests/webhook_verify.py) verifies every
/// `(secret, request)`; `None` when no Python is configured (outside CI).
pub fn standardwebhooks_accepts(deliveries: &[(&str, &Received)]) -> Option<bool> {
    let python = crate::helpers::test_python("webhook signature")?;
    let input: Vec<serde_json::Value> = deliveries
        .iter()
        .map(|(secret, r)| {
            serde_json::json!({
                "secret": secret,
                "headers": {
                    "webhook-id": r.header("webhook-id"),
                    "webhook-timestamp": r.header("webhook-timestamp"),
                    "webhook-signature": r.header("webhook-signature"),
                },
                "body": r.body,
            })
        })
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhook_verify.py");
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the verifier starts");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(serde_json::to_string(&input).unwrap().as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    if output.status.success() {
        assert_eq!(said.trim(), format!("verified {}", deliveries.len()));
        println!(
            "[measured] {} deliveries verified by standardwebhooks",
            deliveries.len()
        );
        Some(true)
    } else {
        println!("standardwebhooks: {}", said.trim());
        Some(false)
    }
}
