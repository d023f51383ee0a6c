//! Whether the instance is draining (shutting down), and how many requests it is serving.
//! The observing middleware keeps the count and closes connections while draining; readiness
//! answers 503 while draining; the server sets it on SIGTERM and logs the count.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The drain flag and the in-flight count of one instance.
#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    started: Notify,
}

impl Drain {
    /// Starts draining: readiness turns 503 and every response closes its connection.
    pub fn start(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.started.notify_waiters();
    }

    /// Returns once draining has started (at once if it has): long-lived answers (event
    /// streams) end then, so that their clients reconnect to another instance.
    pub async fn started(&self) {
        let notified = self.started.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_draining() {
            return;
        }
        notified.await;
    }

    /// Whether the instance is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request in; pair with [`Drain::leave`].
    pub fn enter(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request out.
    pub fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
