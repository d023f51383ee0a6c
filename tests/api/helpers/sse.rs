//! A reader of `text/event-stream` answers for the tests: frames as they arrive, with their
//! `id`, `event` and JSON `data`; comment lines (heartbeats) are counted, not returned.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

/// One SSE frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

/// An open stream, read in the background.
pub struct SseStream {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    frames: mpsc::UnboundedReceiver<Item>,
    task: tokio::task::JoinHandle<()>,
    pub heartbeats: usize,
}

enum Item {
    Frame(Frame),
    Heartbeat,
    Closed,
}

impl SseStream {
    /// Reads `response` frame by frame.
    pub fn new(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let (tx, frames) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut response = response;
            let mut buffer = String::new();
            loop {
                match response.chunk().await {
                    Ok(Some(bytes)) => {
                        buffer.push_str(&String::from_utf8_lossy(&bytes));
                        while let Some(end) = buffer.find("\n\n") {
                            let block: String = buffer.drain(..end + 2).collect();
                            if let Some(item) = parse(&block)
                                && tx.send(item).is_err()
                            {
                                return;
                            }
                        }
                    }
                    Ok(None) | Err(_) => {
                        let _ = tx.send(Item::Closed);
                        return;
                    }
                }
            }
        });
        Self {
            status,
            headers,
            frames,
            task,
            heartbeats: 0,
        }
    }

    /// The next frame within `within`; `None` if the stream closed or nothing came.
    pub async fn next(&mut self, within: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.frames.recv()).await {
                Ok(Some(Item::Frame(frame))) => return Some(frame),
                Ok(Some(Item::Heartbeat)) => self.heartbeats += 1,
                Ok(Some(Item::Closed)) | Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next frame, which must come within 10 s (on PostgreSQL an event waits for the oldest
    /// transaction of the server, which other tests share).
    pub async fn expect(&mut self) -> Frame {
        self.next(Duration::from_secs(10))
            .await
            .expect("a frame arrives within 10 s")
    }

    /// The next frame that is not one of `skipped` event types, within `within`. A stream opened
    /// without `Last-Event-ID` starts where every instance's readers are, which on PostgreSQL may
    /// be a little before the changes made just before it opened (the team's setup, in tests).
    pub async fn next_except(&mut self, skipped: &[&str], within: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.next(left).await?;
            if !skipped.contains(&frame.event.as_str()) {
                return Some(frame);
            }
        }
    }

    /// Whether the server closed the stream within `within` (frames before the close are
    /// returned).
    pub async fn closed_within(&mut self, within: Duration) -> (bool, Vec<Frame>) {
        let deadline = tokio::time::Instant::now() + within;
        let mut frames = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.frames.recv()).await {
                Ok(Some(Item::Frame(frame))) => frames.push(frame),
                Ok(Some(Item::Heartbeat)) => self.heartbeats += 1,
                Ok(Some(Item::Closed)) | Ok(None) => return (true, frames),
                Err(_) => return (false, frames),
            }
        }
    }
}

impl Drop for SseStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn parse(block: &str) -> Option<Item> {
    let mut id = None;
    let mut event = "message".to_owned();
    let mut data = Vec::new();
    let mut comment = false;
    for line in block.lines() {
        if line.starts_with(':') {
            comment = true;
        } else if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.trim_start().to_owned());
        } else if let Some(v) = line.strip_prefix("event:") {
            event = v.trim_start().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
        }
    }
    if data.is_empty() {
        return comment.then_some(Item::Heartbeat);
    }
    let data = serde_json::from_str(&data.join("\n")).unwrap_or(Value::Null);
    Some(Item::Frame(Frame { id, event, data }))
}
