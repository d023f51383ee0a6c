//! The server's life: bind both listeners, serve, and on SIGTERM drain (readiness 503 for the
//! drain delay, then the listener closes and in-flight requests get the shutdown timeout).

use std::time::Duration;

use anyhow::Context;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::{Endpoint, Server};
use tokio::sync::oneshot;

use crate::config::Config;
use crate::router::{admin_routes, routes};
use crate::state::AppState;

/// A server started by [`start`]: its addresses, and a handle to stop it.
pub struct RunningServer {
    /// The address the API listens on.
    pub addr: std::net::SocketAddr,
    /// The address the admin listener (`/metrics`, health) listens on.
    pub admin_addr: std::net::SocketAddr,
    /// The shared state (for tests that look inside).
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    admin_shutdown: Option<oneshot::Sender<()>>,
    admin_task: tokio::task::JoinHandle<std::io::Result<()>>,
    _serve_lock: Option<crate::db::backup::ServeLock>,
}

impl RunningServer {
    /// Stops accepting, waits for in-flight requests (up to `TASKLIGHT_SHUTDOWN_TIMEOUT_MS`),
    /// then stops the admin listener and closes the pool.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        if let Some(tx) = self.admin_shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.admin_task).await;
        self.state.domain.db.close().await;
    }

    /// The graceful shutdown, each phase logged: readiness turns 503 at once while the instance
    /// keeps serving for the drain delay (cut short by `skip_delay`, a second signal), then the
    /// listener closes and in-flight requests get the shutdown timeout to finish.
    pub async fn drain_and_stop(self, skip_delay: impl Future<Output = ()>) {
        let state = self.state.clone();
        let config = &state.config;
        state.drain.start();
        tracing::info!(
            phase = "draining",
            drain_delay_ms = config.drain_delay.as_millis() as u64,
            in_flight = state.drain.in_flight(),
            "shutdown: readiness answers 503; still serving during the drain delay (a second signal skips it)"
        );
        tokio::select! {
            () = tokio::time::sleep(config.drain_delay) => {}
            () = skip_delay => tracing::info!(phase = "draining", "shutdown: second signal; drain delay skipped"),
        }
        let started = std::time::Instant::now();
        tracing::info!(
            phase = "closing",
            in_flight = state.drain.in_flight(),
            shutdown_timeout_ms = config.shutdown_timeout.as_millis() as u64,
            "shutdown: listener closed; waiting for in-flight requests"
        );
        self.stop().await;
        let left = state.drain.in_flight();
        let waited_ms = started.elapsed().as_millis() as u64;
        if left == 0 {
            tracing::info!(
                phase = "closed",
                waited_ms,
                "shutdown: every in-flight request finished; database pool closed"
            );
        } else {
            tracing::warn!(
                phase = "closed",
                waited_ms,
                cut_off = left,
                "shutdown: the timeout cut off requests still running"
            );
        }
    }
}

/// Connects, migrates and serves on `listen` until [`RunningServer::stop`].
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    // Held until the process exits: `tasklight restore` refuses to replace a database in use.
    let serve_lock = match config.sqlite_file() {
        Some(file) => Some(crate::db::backup::ServeLock::take(&file).await?),
        None => None,
    };
    let state = AppState::new(config).await?;
    let acceptor = TcpListener::bind(state.config.listen)
        .into_acceptor()
        .await
        .with_context(|| format!("TASKLIGHT_LISTEN: cannot listen on {}", state.config.listen))?;
    let admin_acceptor = TcpListener::bind(state.config.admin_listen)
        .into_acceptor()
        .await
        .with_context(|| {
            format!(
                "TASKLIGHT_ADMIN_LISTEN: cannot listen on {}",
                state.config.admin_listen
            )
        })?;
    let addr = socket_addr(&acceptor)?;
    let admin_addr = socket_addr(&admin_acceptor)?;
    crate::housekeeping::spawn(
        state.domain.clone(),
        crate::housekeeping::Retention::from_config(&state.config),
    );
    let (tx, rx) = oneshot::channel::<()>();
    let timeout = state.config.shutdown_timeout;
    let task = tokio::spawn(run(acceptor, routes(state.clone()), rx, timeout));
    let (admin_tx, admin_rx) = oneshot::channel::<()>();
    let admin_task = tokio::spawn(run(
        admin_acceptor,
        admin_routes(state.clone()),
        admin_rx,
        Duration::from_secs(1),
    ));
    Ok(RunningServer {
        addr,
        admin_addr,
        state,
        shutdown: Some(tx),
        task,
        admin_shutdown: Some(admin_tx),
        admin_task,
        _serve_lock: serve_lock,
    })
}

fn socket_addr(acceptor: &TcpAcceptor) -> anyhow::Result<std::net::SocketAddr> {
    acceptor
        .local_addr()
        .first()
        .and_then(|addr| addr.as_socket_addr().copied())
        .context("the listener has no socket address")
}

async fn run(
    acceptor: TcpAcceptor,
    endpoint: impl Endpoint + 'static,
    shutdown: oneshot::Receiver<()>,
    timeout: Duration,
) -> std::io::Result<()> {
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(
            endpoint,
            async {
                let _ = shutdown.await;
            },
            Some(timeout),
        )
        .await
}

/// `tasklight serve`: start, print where Swagger UI is, and stop on SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let mut signals = ShutdownSignals::listen();
    let server = start(config).await?;
    let host = match server.addr.ip() {
        ip if ip.is_unspecified() => "localhost".to_owned(),
        ip => ip.to_string(),
    };
    tracing::info!(
        listen = %server.addr,
        admin_listen = %server.admin_addr,
        instance_id = %server.state.config.instance_id,
        database = ?server.state.domain.db.backend(),
        "tasklight is serving: Swagger UI at http://{host}:{}/docs",
        server.addr.port()
    );
    match &server.state.config.smtp {
        Some(smtp) => tracing::info!(
            smtp_host = smtp.url.host_str().unwrap_or_default(),
            "email verification: links are mailed through SMTP_URL"
        ),
        None => tracing::info!(
            "email verification: SMTP_URL is not set, so no mail is sent and new addresses stay \
             unverified (their invitations hidden) until an administrator runs \
             `tasklight verify-email EMAIL`"
        ),
    }
    signals.next().await;
    server
        .drain_and_stop(async move { signals.next().await })
        .await;
    Ok(())
}

/// SIGTERM and SIGINT (Ctrl-C), listened to from the moment this is made: made before the
/// server starts, so a signal that comes while it starts (a pod deleted during start-up) drains
/// it instead of killing it with the default action.
struct ShutdownSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                interrupt: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// The next SIGTERM or SIGINT.
    async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn one(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = one(&mut self.term) => {},
                () = one(&mut self.interrupt) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
