//! The plain HTTP/1.1 upstream path (`proxy/pool.rs`), whose connections are driven by the
//! requests' own tasks: response framings (chunked, content-length, none for HEAD/204/304),
//! an upstream that closes (`Connection: close`, while idle, mid-body), against scripted
//! upstreams on raw loopback sockets.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::scripted::{scripted, Then};
use support::{endpoints, publish_catch_all, Conn, Proxy, RawResponse, BOUND};
use tokio::io::AsyncReadExt;

fn keep_alive_ok(_: &str) -> (Vec<u8>, Then) {
    (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        Then::KeepOpen,
    )
}

/// A proxy whose catch-all route is the scripted upstream `answer`, one client connection to
/// it, and the upstream's count of accepted connections.
async fn through(answer: fn(&str) -> (Vec<u8>, Then)) -> (Proxy, Conn, Arc<AtomicUsize>) {
    let (upstream, accepted) = scripted(answer).await;
    let proxy = Proxy::start().await;
    publish_catch_all(&proxy.shared, endpoints(&[upstream]));
    let conn = proxy.connect().await;
    (proxy, conn, accepted)
}

/// Sends `GET /` on `conn` `rounds` times; each answer must be a 200 with `body`.
async fn get_rounds(conn: &mut Conn, rounds: usize, body: &str) -> Vec<RawResponse> {
    let mut responses = Vec::new();
    for round in 1..=rounds {
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let response = conn.response().await;
        assert_eq!(response.status, 200, "round {round}");
        assert_eq!(response.text(), body, "round {round}");
        responses.push(response);
    }
    responses
}

/// Three `GET /` through a proxy whose upstream answers with `answer`, each a 200 with `body`:
/// how many connections the upstream accepted for them.
async fn connections_for_three(answer: fn(&str) -> (Vec<u8>, Then), body: &str) -> usize {
    let (_proxy, mut conn, accepted) = through(answer).await;
    get_rounds(&mut conn, 3, body).await;
    accepted.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_replaced_without_an_error() {
    fn answer(_: &str) -> (Vec<u8>, Then) {
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            Then::CloseAfter(Duration::from_millis(20)),
        )
    }
    let (_proxy, mut conn, accepted) = through(answer).await;
    for round in 1..=3 {
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let response = conn.response().await;
        assert_eq!(response.status, 200, "round {round}");
        assert_eq!(response.text(), "ok");
        // The upstream closes its side while the connection sits in the pool.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_upstream_connection_close_is_not_reused() {
    fn answer(_: &str) -> (Vec<u8>, Then) {
        (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            Then::Close,
        )
    }
    let (_proxy, mut conn, accepted) = through(answer).await;
    for response in get_rounds(&mut conn, 3, "ok").await {
        // The client's connection stays open: the upstream's close is hop-by-hop.
        assert_ne!(response.header("connection"), Some("close"));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_chunked_response_arrives_whole_and_its_connection_is_reused() {
    fn answer(_: &str) -> (Vec<u8>, Then) {
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\n\r\n"
                .to_vec(),
            Then::KeepOpen,
        )
    }
    assert_eq!(connections_for_three(answer, "hello, world").await, 1);
}

#[tokio::test]
async fn head_204_and_304_have_no_body_and_keep_the_connection() {
    fn answer(head: &str) -> (Vec<u8>, Then) {
        let bytes: &[u8] = if head.starts_with("HEAD ") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
        } else if head.starts_with("GET /204") {
            b"HTTP/1.1 204 No Content\r\n\r\n"
        } else if head.starts_with("GET /304") {
            b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        };
        (bytes.to_vec(), Then::KeepOpen)
    }
    let (_proxy, mut conn, accepted) = through(answer).await;
    for _ in 0..2 {
        conn.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let (_, status, headers) = conn.head().await;
        assert_eq!(status, 200);
        let length = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.as_str());
        assert_eq!(
            length,
            Some("100"),
            "HEAD keeps the length of what GET would send"
        );
        conn.send(b"GET /204 HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(conn.response().await.status, 204);
        conn.send(b"GET /304 HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let response = conn.response().await;
        assert_eq!(response.status, 304);
        assert_eq!(response.header("etag"), Some("\"v1\""));
        // A GET after them reads its own body, not something left over.
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(conn.response().await.text(), "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_upstream_body_cut_short_aborts_the_client_response() {
    fn answer(head: &str) -> (Vec<u8>, Then) {
        if head.starts_with("GET /cut") {
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b".to_vec(),
                Then::Close,
            )
        } else {
            keep_alive_ok(head)
        }
    }
    let (proxy, mut conn, accepted) = through(answer).await;
    conn.send(b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n").await;
    // The client's connection ends (hyper may not have flushed the head before the body
    // failed, so it can end before anything was written): never 100 bytes, never a hang.
    let mut seen = Vec::new();
    tokio::time::timeout(BOUND, conn.reader.read_to_end(&mut seen))
        .await
        .expect("the client connection ends within the bound")
        .ok();
    let seen = String::from_utf8_lossy(&seen);
    if let Some((head, body)) = seen.split_once("\r\n\r\n") {
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body.len() < 100, "a cut body must not look complete");
    }
    // The endpoint still serves the next request, on a new upstream connection.
    let response = proxy.get("x", "/").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn concurrent_requests_each_get_their_own_answer() {
    fn answer(head: &str) -> (Vec<u8>, Then) {
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        let body = format!("path={path}");
        (
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
            Then::KeepOpen,
        )
    }
    let (upstream, accepted) = scripted(answer).await;
    let proxy = Arc::new(Proxy::start().await);
    publish_catch_all(&proxy.shared, endpoints(&[upstream]));
    let mut tasks = Vec::new();
    for client in 0..8 {
        let proxy = proxy.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = proxy.connect().await;
            for i in 0..20 {
                let path = format!("/c{client}/r{i}");
                conn.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                    .await;
                let response = conn.response().await;
                assert_eq!(response.status, 200);
                assert_eq!(response.text(), format!("path={path}"));
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(BOUND, task).await.unwrap().unwrap();
    }
    // Pooled: never more upstream connections than concurrent clients.
    assert!(accepted.load(Ordering::SeqCst) <= 8);
}

// The own client (`proxy/h1client.rs`) takes bodiless requests: the framings it must read
// like hyper did.

#[tokio::test]
async fn informational_heads_before_the_answer_are_skipped() {
    fn answer(_: &str) -> (Vec<u8>, Then) {
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
            Then::KeepOpen,
        )
    }
    let (_proxy, mut conn, accepted) = through(answer).await;
    for response in get_rounds(&mut conn, 3, "ok").await {
        assert_eq!(response.header("link"), None);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn chunked_trailers_and_extensions_keep_the_connection() {
    fn answer(_: &str) -> (Vec<u8>, Then) {
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Checksum: 1\r\n\r\n"
                .to_vec(),
            Then::KeepOpen,
        )
    }
    assert_eq!(connections_for_three(answer, "hello, world").await, 1);
}

#[tokio::test]
async fn a_body_without_framing_is_read_until_close_and_not_reused() {
    fn answer(_: &str) -> (Vec<u8>, Then) {
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end".to_vec(),
            Then::Close,
        )
    }
    assert_eq!(connections_for_three(answer, "until the end").await, 3);
}

#[tokio::test]
async fn an_http10_answer_without_keep_alive_is_not_reused() {
    fn answer(_: &str) -> (Vec<u8>, Then) {
        // The upstream leaves its side open: the proxy must still not send another request.
        (
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            Then::KeepOpen,
        )
    }
    assert_eq!(connections_for_three(answer, "ok").await, 3);
}

#[tokio::test]
async fn differing_content_lengths_are_a_bad_gateway_and_the_next_request_works() {
    fn answer(head: &str) -> (Vec<u8>, Then) {
        if head.starts_with("GET /bad") {
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!".to_vec(),
                Then::KeepOpen,
            )
        } else {
            keep_alive_ok(head)
        }
    }
    let (_proxy, mut conn, accepted) = through(answer).await;
    conn.send(b"GET /bad HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(conn.response().await.status, 502);
    get_rounds(&mut conn, 2, "ok").await;
    // The connection that carried the bad answer is never used again.
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_bad_chunk_size_aborts_the_client_response() {
    fn answer(head: &str) -> (Vec<u8>, Then) {
        if head.starts_with("GET /bad") {
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n"
                    .to_vec(),
                Then::KeepOpen,
            )
        } else {
            keep_alive_ok(head)
        }
    }
    let (proxy, mut conn, accepted) = through(answer).await;
    conn.send(b"GET /bad HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut seen = Vec::new();
    tokio::time::timeout(BOUND, conn.reader.read_to_end(&mut seen))
        .await
        .expect("the client connection ends within the bound")
        .ok();
    let seen = String::from_utf8_lossy(&seen);
    // Never a complete chunked body (its last chunk) and never the bytes after the bad size.
    assert!(!seen.contains("0\r\n\r\n"), "{seen}");
    assert!(!seen.contains("more"), "{seen}");
    let response = proxy.get("x", "/").await;
    assert_eq!(response.text(), "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

/// An upstream that, on its second request overall, closes the connection without answering
/// (a keep-alive connection it dropped just as the request came); other requests get `ok`.
fn answer_second_closes(head: &str, count: &AtomicUsize) -> (Vec<u8>, Then) {
    if count.fetch_add(1, Ordering::SeqCst) == 1 {
        (Vec::new(), Then::Close)
    } else {
        keep_alive_ok(head)
    }
}

#[tokio::test]
async fn an_idempotent_request_the_pooled_connection_lost_is_resent_once() {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    fn answer(head: &str) -> (Vec<u8>, Then) {
        answer_second_closes(head, &COUNT)
    }
    let (_proxy, mut conn, accepted) = through(answer).await;
    get_rounds(&mut conn, 3, "ok").await;
    assert_eq!(COUNT.load(Ordering::SeqCst), 4, "the lost GET went twice");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_post_the_pooled_connection_lost_is_not_resent() {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    fn answer(head: &str) -> (Vec<u8>, Then) {
        answer_second_closes(head, &COUNT)
    }
    let (_proxy, mut conn, accepted) = through(answer).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .await;
        statuses.push(conn.response().await.status);
    }
    // The upstream may have acted on it: 502, as nginx answers, never a second copy.
    assert_eq!(statuses, [200, 502, 200]);
    assert_eq!(COUNT.load(Ordering::SeqCst), 3);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_bodiless_post_after_the_upstream_closed_idle_gets_a_new_connection() {
    fn answer(_: &str) -> (Vec<u8>, Then) {
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            Then::CloseAfter(Duration::from_millis(20)),
        )
    }
    let (_proxy, mut conn, accepted) = through(answer).await;
    for round in 1..=3 {
        conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .await;
        let response = conn.response().await;
        assert_eq!(response.status, 200, "round {round}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}
