//! The request body limit (1 MiB): enforced from `Content-Length` and while reading chunked bodies.

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, invalid, problem, spawn_app};

const ONE_MIB: usize = 1024 * 1024;

/// Creates a project from raw JSON bytes, sent with their `Content-Length`.
async fn post_json(app: &TestApp, token: &str, body: Vec<u8>) -> reqwest::Response {
    let req = app.req(Method::POST, "/projects", Some(token));
    let req = req.header("content-type", "application/json").body(body);
    req.send().await.expect("an answer")
}

/// A JSON project body of about `size` bytes.
fn big_project(size: usize) -> Vec<u8> {
    format!("{{\"name\":\"{}\"}}", "a".repeat(size - 11)).into_bytes()
}

/// Sends raw bytes over a new connection (the request should say `Connection: close`) while
/// reading the answer; returns the response as text. For what reqwest cannot send here
/// (chunked bodies).
async fn raw_exchange(app: &TestApp, head: String, chunks: Vec<Vec<u8>>) -> String {
    let stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        for chunk in chunks {
            writer.write_all(&chunk).await?;
        }
        writer.flush().await
    });
    let mut received = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no complete answer within 20 s: {}",
        String::from_utf8_lossy(&received)
    );
    writing.abort();
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn a_body_over_1_mib_with_content_length_is_a_413_problem() {
    let app = spawn_app().await;
    let user = app.user().await;
    let resp = post_json(&app, &user.access, big_project(ONE_MIB + 1)).await;
    problem(resp, 413).await;
    // Just under the limit, the body is read and refused for its content instead.
    let resp = post_json(&app, &user.access, big_project(ONE_MIB - 16)).await;
    invalid(resp, "name").await;
    app.stop().await;
}

#[tokio::test]
async fn a_chunked_body_over_1_mib_is_a_413_problem() {
    let app = spawn_app().await;
    let user = app.user().await;
    let chunk_body = |total: usize| -> Vec<Vec<u8>> {
        let mut chunks: Vec<Vec<u8>> = big_project(total)
            .chunks(64 * 1024)
            .map(|c| {
                [
                    format!("{:x}\r\n", c.len()).into_bytes(),
                    c.to_vec(),
                    b"\r\n".to_vec(),
                ]
                .concat()
            })
            .collect();
        chunks.push(b"0\r\n\r\n".to_vec());
        chunks
    };
    let head = format!(
        "POST /api/v1/projects HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.addr, user.access
    );
    let answer = raw_exchange(&app, head.clone(), chunk_body(ONE_MIB + 64 * 1024)).await;
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{}",
        &answer[..answer.len().min(600)]
    );
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(
        answer.contains("\"status\":413") && answer.contains("\"request_id\""),
        "{answer}"
    );
    let small = raw_exchange(&app, head, chunk_body(200 * 1024)).await;
    assert!(
        small.starts_with("HTTP/1.1 400"),
        "under the limit: {}",
        &small[..small.len().min(600)]
    );
    app.stop().await;
}
