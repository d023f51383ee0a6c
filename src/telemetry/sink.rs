//! The log sink: request threads append finished lines to a bounded in-memory buffer and never
//! wait on stdout; one writer thread drains the buffer every 20 ms (or sooner once 64 KiB are
//! waiting) with one `write(2)`. When the buffer is full, lines are dropped and counted
//! (`tasklight_telemetry_dropped_total{signal="logs"}`) instead of slowing requests.
//!
//! A channel with one wake-up per line (tracing-appender's design) cost several microseconds a
//! request on a busy core; batching by time removes almost all of it.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::telemetry::DROPPED_LOG_LINES;

/// How much may wait in memory before lines are dropped.
pub const CAPACITY_BYTES: usize = 8 * 1024 * 1024;
/// Waiting bytes that wake the writer before its next tick.
const EAGER_FLUSH_BYTES: usize = 64 * 1024;
/// The writer's tick.
const INTERVAL: Duration = Duration::from_millis(20);

struct Shared {
    buffer: Mutex<Vec<u8>>,
    wake: Condvar,
    closing: AtomicBool,
}

/// Where log lines go; cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    shared: Arc<Shared>,
}

/// How long dropping the guard waits for the writer to flush (a stuck stdout must not stop the
/// process from exiting).
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// Flushes what is left (waiting at most 5 s) and stops the writer when dropped.
pub struct SinkGuard {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

impl LogSink {
    /// A sink writing to `out` from its own thread.
    pub fn new(out: impl Write + Send + 'static) -> (Self, SinkGuard) {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::with_capacity(EAGER_FLUSH_BYTES * 2)),
            wake: Condvar::new(),
            closing: AtomicBool::new(false),
        });
        let writer = std::thread::Builder::new()
            .name("tasklight-log-writer".into())
            .spawn({
                let shared = shared.clone();
                move || write_loop(&shared, out)
            })
            .expect("the log writer thread starts");
        (
            Self {
                shared: shared.clone(),
            },
            SinkGuard {
                shared,
                writer: Some(writer),
            },
        )
    }

    /// Appends one finished line (with its newline); drops it if the buffer is full.
    pub fn write_line(&self, line: &[u8]) {
        let Ok(mut buffer) = self.shared.buffer.lock() else {
            return;
        };
        if buffer.len() + line.len() > CAPACITY_BYTES {
            drop(buffer);
            DROPPED_LOG_LINES.fetch_add(1, Ordering::Relaxed);
            return;
        }
        buffer.extend_from_slice(line);
        if buffer.len() >= EAGER_FLUSH_BYTES {
            self.shared.wake.notify_one();
        }
    }
}

fn write_loop(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::with_capacity(EAGER_FLUSH_BYTES * 2);
    loop {
        let closing = {
            let Ok(mut buffer) = shared.buffer.lock() else {
                return;
            };
            if buffer.len() < EAGER_FLUSH_BYTES && !shared.closing.load(Ordering::Acquire) {
                buffer = match shared.wake.wait_timeout(buffer, INTERVAL) {
                    Ok((buffer, _)) => buffer,
                    Err(_) => return,
                };
            }
            std::mem::swap(&mut *buffer, &mut batch);
            shared.closing.load(Ordering::Acquire)
        };
        if !batch.is_empty() {
            let _ = out.write_all(&batch);
            let _ = out.flush();
            batch.clear();
        }
        if closing && shared.buffer.lock().map_or(true, |b| b.is_empty()) {
            return;
        }
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        if let Some(writer) = self.writer.take() {
            let deadline = std::time::Instant::now() + FLUSH_WAIT;
            while !writer.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if writer.is_finished() {
                let _ = writer.join();
            }
        }
    }
}

/// For `tracing_subscriber::fmt` (the pretty format): each formatted event is one write.
impl std::io::Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.write_line(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A writer whose bytes a test reads back.
    #[derive(Clone, Default)]
    pub(crate) struct Collect(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl Write for Collect {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_by_the_time_the_guard_is_dropped() {
        let out = Collect::default();
        let (sink, guard) = LogSink::new(out.clone());
        for i in 0..1000 {
            sink.write_line(format!("line {i}\n").as_bytes());
        }
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1000);
        assert!(text.starts_with("line 0\n") && text.ends_with("line 999\n"));
    }

    /// Stdout that never accepts anything: the buffer fills, and lines are dropped and counted
    /// instead of blocking the caller.
    struct Stuck;

    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_secs(3600));
            Ok(0)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_stdout_drops_and_counts_lines_instead_of_blocking() {
        let (sink, guard) = LogSink::new(Stuck);
        // The writer never returns: keep the guard from waiting on it, even if an assert fails.
        std::mem::forget(guard);
        let before = DROPPED_LOG_LINES.load(Ordering::Relaxed);
        let line = vec![b'x'; 1024];
        // The writer takes at most one batch (at most CAPACITY) before it sticks, and the buffer
        // then holds at most CAPACITY more: of 3 x CAPACITY sent, at least 1 x CAPACITY drops.
        let lines = 3 * CAPACITY_BYTES / line.len();
        let started = std::time::Instant::now();
        for _ in 0..lines {
            sink.write_line(&line);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "writing lines blocked"
        );
        let dropped = DROPPED_LOG_LINES.load(Ordering::Relaxed) - before;
        assert!(
            dropped >= (lines / 3) as u64,
            "dropped {dropped} of {lines}"
        );
    }

    #[test]
    fn dropping_the_guard_gives_up_on_a_stuck_writer() {
        let (sink, guard) = LogSink::new(Stuck);
        sink.write_line(&vec![b'x'; EAGER_FLUSH_BYTES]);
        std::thread::sleep(Duration::from_millis(50));
        let started = std::time::Instant::now();
        drop(guard);
        let waited = started.elapsed();
        assert!(
            waited >= FLUSH_WAIT && waited < FLUSH_WAIT * 2,
            "waited {waited:?}"
        );
    }
}
