//! The metrics endpoint: a small HTTP/1.1 server, one request per
//! connection, enough for Prometheus, curl and load-balancer health checks.
//! Nothing else (no keep-alive, no chunked bodies, no TLS) is worth a web
//! framework here.
//!
//! - `GET /metrics`: every metric, in the OpenMetrics text format.
//! - `GET /health` and `GET /health/ready`: 200 `ok` while the broker is open
//!   and serving Kafka clients, 503 once it is shutting down. (The endpoint
//!   only answers after the data directory is open and recovered: during
//!   recovery, connections wait in the listen backlog.)
//! - `GET /health/live`: 200 `ok` as long as the process answers at all.
//! - Any other path: 404; another method on one of these paths: 405.
//!
//! Bad input never does more than close its own connection: a request head
//! is read up to [`MAX_HEAD_BYTES`] within [`READ_TIMEOUT`], at most
//! [`MAX_CONNECTIONS`] connections are served at once, and parsing only
//! splits strings.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use super::ScrapeSource;

/// The longest request head (request line and headers) read.
pub const MAX_HEAD_BYTES: usize = 8 << 10;
/// How long a client may take to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 32;

/// The content type of the text `prometheus-client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PLAIN: &str = "text/plain; charset=utf-8";

/// Serves until the task is dropped. `stopped` turning true (the broker
/// shutting down) makes the readiness checks fail.
pub async fn serve(
    listener: TcpListener,
    source: Arc<dyn ScrapeSource>,
    stopped: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let source = source.clone();
                let stopped = stopped.clone();
                tokio::spawn(async move {
                    respond(stream, &source, &stopped).await;
                    drop(permit);
                });
            }
            Err(error) => {
                tracing::warn!(%error, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A response: status line, content type, body.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: &'static str,
    content_type: &'static str,
    body: String,
    /// Whether to leave the body out (HEAD).
    head_only: bool,
}

impl Response {
    fn plain(status: &'static str, body: &str) -> Response {
        Response {
            status,
            content_type: PLAIN,
            body: body.to_string(),
            head_only: false,
        }
    }
}

/// What a request asks for, once parsed.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    Ready,
    Live,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Reads one request, answers it and closes the connection.
async fn respond(
    mut stream: TcpStream,
    source: &Arc<dyn ScrapeSource>,
    stopped: &watch::Receiver<bool>,
) {
    let Ok(Some(head)) = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await else {
        return; // too slow, closed early, or not HTTP at all
    };
    let (route, head_only) = route(&head);
    let mut response = match route {
        Route::Metrics => {
            let source = source.clone();
            let encoded = tokio::task::spawn_blocking(move || {
                source
                    .metrics()
                    .encode(source.partitions(), Some(source.metadata()))
            })
            .await;
            match encoded {
                Ok(body) => Response {
                    status: "200 OK",
                    content_type: OPENMETRICS,
                    body,
                    head_only: false,
                },
                Err(_) => Response::plain("500 Internal Server Error", "encoding failed\n"),
            }
        }
        Route::Ready if *stopped.borrow() => {
            Response::plain("503 Service Unavailable", "shutting down\n")
        }
        Route::Ready | Route::Live => Response::plain("200 OK", "ok\n"),
        Route::NotFound => Response::plain("404 Not Found", "not found\n"),
        Route::MethodNotAllowed => Response::plain("405 Method Not Allowed", "GET only\n"),
        Route::BadRequest => Response::plain("400 Bad Request", "bad request\n"),
    };
    response.head_only = head_only;
    let _ = write_response(&mut stream, &response).await;
    let _ = stream.shutdown().await;
}

/// The bytes up to the blank line that ends a request head; `None` if the
/// client closes first or sends more than [`MAX_HEAD_BYTES`] without one.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    loop {
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 {
            return None;
        }
        head.extend_from_slice(&buffer[..read]);
        if let Some(end) = find_head_end(&head) {
            head.truncate(end);
            return Some(head);
        }
        if head.len() > MAX_HEAD_BYTES {
            return None;
        }
    }
}

/// Where the head ends: after `\r\n\r\n`, or `\n\n` from lenient clients.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The route a request head asks for, and whether it is a HEAD request.
fn route(head: &[u8]) -> (Route, bool) {
    let Ok(head) = std::str::from_utf8(head) else {
        return (Route::BadRequest, false);
    };
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return (Route::BadRequest, false);
    };
    if !version.starts_with("HTTP/1.") {
        return (Route::BadRequest, false);
    }
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let route = match path {
        "/metrics" => Route::Metrics,
        "/health" | "/health/ready" => Route::Ready,
        "/health/live" => Route::Live,
        _ => return (Route::NotFound, false),
    };
    match method {
        "GET" => (route, false),
        "HEAD" => (route, true),
        _ => (Route::MethodNotAllowed, false),
    }
}

async fn write_response(stream: &mut TcpStream, response: &Response) -> std::io::Result<()> {
    let mut bytes = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        response.status,
        response.content_type,
        response.body.len(),
        if response.status.starts_with("405") {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        },
    )
    .into_bytes();
    if !response.head_only {
        bytes.extend_from_slice(response.body.as_bytes());
    }
    stream.write_all(&bytes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_method_and_path() {
        let cases: [(&[u8], (Route, bool)); 10] = [
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                (Route::Metrics, false),
            ),
            (
                b"GET /metrics?x=1 HTTP/1.0\r\n\r\n",
                (Route::Metrics, false),
            ),
            (b"HEAD /health HTTP/1.1\r\n\r\n", (Route::Ready, true)),
            (b"GET /health/ready HTTP/1.1\r\n\r\n", (Route::Ready, false)),
            (b"GET /health/live HTTP/1.1\r\n\r\n", (Route::Live, false)),
            (b"GET /other HTTP/1.1\r\n\r\n", (Route::NotFound, false)),
            (
                b"POST /metrics HTTP/1.1\r\n\r\n",
                (Route::MethodNotAllowed, false),
            ),
            (b"GET /metrics\r\n\r\n", (Route::BadRequest, false)),
            (b"GET /metrics SPDY/3\r\n\r\n", (Route::BadRequest, false)),
            (b"\xff\xfe garbage\r\n\r\n", (Route::BadRequest, false)),
        ];
        for (head, expected) in cases {
            assert_eq!(route(head), expected, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn a_head_ends_at_the_first_blank_line() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }
}
