//! The baseline of `loadtests/bench-hotpath.sh`: the poem version the service uses, answering
//! `GET /` with `hello` and nothing else (no middleware, no logging). The service's figures are
//! reported as ratios to this one, measured in the same run on the same core.
//!
//! Usage: `bare-poem 127.0.0.1:PORT`

use poem::listener::TcpListener;
use poem::{Route, Server, get, handler};

#[handler]
fn hello() -> &'static str {
    "hello"
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    Server::new(TcpListener::bind(addr))
        .run(Route::new().at("/", get(hello)))
        .await
}
