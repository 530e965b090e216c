//! Response compression over real sockets (issue 13): the ConfigMap keys `use-gzip`,
//! `gzip-level`, `gzip-min-length`, `gzip-types`, `enable-brotli`, `brotli-level`,
//! `brotli-min-length`, `brotli-types`. Each test reproduces a case of ingress-nginx's
//! `test/e2e/settings/gzip.go` or `brotli.go` (named in its comment) against a backend that
//! answers like httpbun's `/xml`, `/html` and `/bytes/N`; bodies are decompressed and
//! compared byte for byte.

mod support;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::Arc;

use portico::publish::Published;
use portico::routing::{Global, HostMatch, PathType, RouteTable};
use portico::translate::configmap::from_data;
use portico::translate::{ObjectRef, Translation};
use support::{endpoints, route, vhost, Proxy, BOUND};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

fn xml() -> Vec<u8> {
    let mut body = b"<?xml version='1.0' encoding='us-ascii'?>\n<slideshow>\n".to_vec();
    for i in 0..100 {
        body.extend_from_slice(
            format!("  <slide type=\"all\"><title>Slide {i}</title></slide>\n").as_bytes(),
        );
    }
    body.extend_from_slice(b"</slideshow>\n");
    body
}

fn html() -> Vec<u8> {
    let mut body = b"<!DOCTYPE html>\n<html><body>\n".to_vec();
    for i in 0..100 {
        body.extend_from_slice(format!("<p>Paragraph {i} of the page.</p>\n").as_bytes());
    }
    body.extend_from_slice(b"</body></html>\n");
    body
}

/// `/bytes/N`: N bytes of application/octet-stream (compressible, unlike httpbun's random ones:
/// the decision does not depend on the content).
fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 7) as u8).collect()
}

/// A backend answering by path, one request per connection; `/sse` sends one event, then
/// waits for `more` before the second.
async fn backend(more: Arc<Notify>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let more = more.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                let (status, extra, body): (&str, Vec<(&str, String)>, Vec<u8>) =
                    match path.as_str() {
                        "/xml" => (
                            "200 OK",
                            vec![("Content-Type", "application/xml".into())],
                            xml(),
                        ),
                        "/html" => (
                            "200 OK",
                            vec![
                                ("Content-Type", "text/html; charset=utf-8".into()),
                                ("ETag", "\"v1\"".into()),
                            ],
                            html(),
                        ),
                        "/encoded" => (
                            "200 OK",
                            vec![
                                ("Content-Type", "text/html".into()),
                                ("Content-Encoding", "gzip".into()),
                            ],
                            html(),
                        ),
                        "/range" => {
                            let full = html();
                            (
                                "206 Partial Content",
                                vec![
                                    ("Content-Type", "text/html".into()),
                                    ("Content-Range", format!("bytes 0-999/{}", full.len())),
                                ],
                                full[..1000].to_vec(),
                            )
                        }
                        "/sse" => {
                            let first = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                            Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                            13\r\ndata: first event\n\n\r\n";
                            if stream.write_all(first).await.is_err() {
                                return;
                            }
                            let _ = tokio::time::timeout(BOUND, more.notified()).await;
                            let _ = stream
                                .write_all(b"14\r\ndata: second event\n\n\r\n0\r\n\r\n")
                                .await;
                            return;
                        }
                        p if p.starts_with("/bytes/") => {
                            let n = p["/bytes/".len()..].parse().unwrap_or(0);
                            (
                                "200 OK",
                                vec![("Content-Type", "application/octet-stream".into())],
                                bytes(n),
                            )
                        }
                        _ => (
                            "404 Not Found",
                            vec![("Content-Type", "text/plain".into())],
                            b"no".to_vec(),
                        ),
                    };
                let mut response = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (k, v) in extra {
                    response.push_str(&format!("{k}: {v}\r\n"));
                }
                response.push_str("\r\n");
                let mut out = response.into_bytes();
                if !head.starts_with("HEAD ") {
                    out.extend_from_slice(&body);
                }
                let _ = stream.write_all(&out).await;
            });
        }
    });
    addr
}

/// The ConfigMap `data` typed as translate types it (`translate::configmap::from_data`).
fn global(pairs: &[(&str, &str)]) -> Global {
    let data: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let object = ObjectRef {
        kind: "ConfigMap".into(),
        namespace: "portico".into(),
        name: "portico".into(),
    };
    let mut conditions = Vec::new();
    let global = from_data(data, &object, &mut conditions);
    assert!(conditions.is_empty(), "{conditions:?}");
    global
}

/// Publishes the catch-all route to `upstream` with the ConfigMap `pairs`, as a new version.
fn publish(proxy: &Proxy, upstream: SocketAddr, pairs: &[(&str, &str)]) {
    let version = proxy.shared.load().version + 1;
    let table = RouteTable::new(
        vec![vhost(
            HostMatch::Any,
            vec![route("/", PathType::Prefix, endpoints(&[upstream]))],
        )],
        None,
    );
    proxy.shared.store(Arc::new(Published {
        version,
        translation: Arc::new(Translation {
            table,
            global: Arc::new(global(pairs)),
            ..Translation::default()
        }),
        snapshot: Default::default(),
    }));
}

/// A proxy in front of a fresh backend, with these ConfigMap keys published.
async fn setup(pairs: &[(&str, &str)]) -> (Proxy, Arc<Notify>) {
    let more = Arc::new(Notify::new());
    let upstream = backend(more.clone()).await;
    let proxy = Proxy::start().await;
    publish(&proxy, upstream, pairs);
    (proxy, more)
}

async fn get(proxy: &Proxy, path: &str, accept_encoding: Option<&str>) -> support::RawResponse {
    let ae = accept_encoding
        .map(|v| format!("Accept-Encoding: {v}\r\n"))
        .unwrap_or_default();
    proxy
        .raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: gzip\r\n{ae}Connection: close\r\n\r\n"
        ))
        .await
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// gzip.go "should be disabled by default".
#[tokio::test]
async fn gzip_is_disabled_by_default() {
    let (proxy, _) = setup(&[]).await;
    let r = get(&proxy, "/xml", Some("gzip")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, xml());
    assert_eq!(r.header("vary"), None);
}

/// gzip.go "should be enabled with default settings": `/xml` (application/xml, in the default
/// list, over 256 bytes) is gzipped; framing becomes chunked, `Vary` is added.
#[tokio::test]
async fn gzip_enabled_with_default_settings() {
    let (proxy, _) = setup(&[("use-gzip", "true")]).await;
    let r = get(&proxy, "/xml", Some("gzip")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-length"), None);
    assert!(r.chunked);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(gunzip(&r.body), xml());
    assert!(r.body.len() < xml().len() / 2);
}

/// gzip.go "should set gzip_comp_level to 4".
#[tokio::test]
async fn gzip_level_4() {
    let (proxy, _) = setup(&[("use-gzip", "true"), ("gzip-level", "4")]).await;
    let r = get(&proxy, "/xml", Some("gzip")).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&r.body), xml());
}

/// gzip.go "should set gzip_min_length to 100": 99 bytes plain, 100 bytes gzipped.
#[tokio::test]
async fn gzip_min_length_100() {
    let (proxy, _) = setup(&[
        ("use-gzip", "true"),
        ("gzip-min-length", "100"),
        ("gzip-types", "application/octet-stream"),
    ])
    .await;
    let r = get(&proxy, "/bytes/99", Some("gzip")).await;
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, bytes(99));
    let r = get(&proxy, "/bytes/100", Some("gzip")).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&r.body), bytes(100));
}

/// gzip.go "should set gzip_types to text/html": application/xml is no longer listed.
#[tokio::test]
async fn gzip_types_text_html() {
    let (proxy, _) = setup(&[("use-gzip", "true"), ("gzip-types", "text/html")]).await;
    let r = get(&proxy, "/xml", Some("gzip")).await;
    assert_eq!(r.header("content-type"), Some("application/xml"));
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, xml());
    let r = get(&proxy, "/html", Some("gzip")).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    // nginx's ngx_http_weak_etag: the compressed bytes differ, the entity does not.
    assert_eq!(r.header("etag"), Some("W/\"v1\""));
    assert_eq!(gunzip(&r.body), html());
}

/// No `Accept-Encoding` (and one that refuses gzip): plain, but `Vary` still tells caches.
#[tokio::test]
async fn no_accept_encoding_no_compression() {
    let (proxy, _) = setup(&[("use-gzip", "true")]).await;
    for ae in [None, Some("gzip;q=0, identity")] {
        let r = get(&proxy, "/xml", ae).await;
        assert_eq!(r.header("content-encoding"), None, "{ae:?}");
        assert_eq!(
            r.header("content-length"),
            Some(xml().len().to_string().as_str())
        );
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        assert_eq!(r.body, xml());
    }
}

/// brotli.go "should only compress responses that meet the `brotli-min-length` condition".
#[tokio::test]
async fn brotli_min_length() {
    let (proxy, _) = setup(&[
        ("enable-brotli", "true"),
        ("brotli-types", "application/octet-stream"),
        ("brotli-min-length", "24"),
    ])
    .await;
    let r = get(&proxy, "/bytes/24", Some("br")).await;
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(unbrotli(&r.body), bytes(24));
    let r = get(&proxy, "/bytes/23", Some("br")).await;
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, bytes(23));
}

/// Both enabled, both accepted: brotli, as nginx with ngx_brotli (its filter runs first).
#[tokio::test]
async fn brotli_preferred_over_gzip() {
    let (proxy, _) = setup(&[("use-gzip", "true"), ("enable-brotli", "true")]).await;
    let r = get(&proxy, "/html", Some("gzip, deflate, br")).await;
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(unbrotli(&r.body), html());
    let r = get(&proxy, "/html", Some("gzip")).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&r.body), html());
}

/// A response the upstream already encoded passes byte for byte, length and all.
#[tokio::test]
async fn already_encoded_untouched() {
    let (proxy, _) = setup(&[("use-gzip", "true"), ("enable-brotli", "true")]).await;
    let r = get(&proxy, "/encoded", Some("gzip, br")).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(
        r.header("content-length"),
        Some(html().len().to_string().as_str())
    );
    assert_eq!(r.body, html());
}

/// A 206 answer to a Range request passes untouched (nginx compresses 200/403/404 only).
#[tokio::test]
async fn range_untouched() {
    let (proxy, _) = setup(&[("use-gzip", "true"), ("enable-brotli", "true")]).await;
    let r = proxy
        .raw("GET /range HTTP/1.1\r\nHost: gzip\r\nRange: bytes=0-999\r\nAccept-Encoding: gzip, br\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("content-length"), Some("1000"));
    assert_eq!(r.body, html()[..1000].to_vec());
}

/// HEAD: no body, so nothing to compress; the length stays.
#[tokio::test]
async fn head_untouched() {
    let (proxy, _) = setup(&[("use-gzip", "true")]).await;
    let mut conn = proxy.connect().await;
    conn.send(
        b"HEAD /xml HTTP/1.1\r\nHost: gzip\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (_, status, headers) = conn.head().await;
    assert_eq!(status, 200);
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(find("content-encoding"), None);
    assert_eq!(find("content-length"), Some(xml().len().to_string()));
}

/// A server-sent event reaches the client compressed while the upstream still holds the
/// stream open: the encoder flushes when the upstream has nothing more ready.
/// (`text/event-stream` is not in ingress-nginx's default lists; here it is added.)
#[tokio::test]
async fn event_stream_is_flushed_per_event() {
    let (proxy, more) = setup(&[("use-gzip", "true"), ("gzip-types", "text/event-stream")]).await;
    let mut conn = proxy.connect().await;
    conn.send(
        b"GET /sse HTTP/1.1\r\nHost: gzip\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (_, status, headers) = conn.head().await;
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-encoding") && v == "gzip"));
    // Chunks until the first event decodes; the upstream has not been released yet.
    let mut got = Vec::new();
    let mut decoded = Vec::new();
    for _ in 0..8 {
        let chunk = conn
            .chunk()
            .await
            .expect("a chunk before the upstream continues");
        got.extend_from_slice(&chunk);
        let mut buf = [0u8; 64];
        let n = flate2::read::GzDecoder::new(&got[..])
            .read(&mut buf)
            .unwrap_or(0);
        decoded = buf[..n].to_vec();
        if !decoded.is_empty() {
            break;
        }
    }
    assert_eq!(decoded, b"data: first event\n\n");
    more.notify_one();
    while let Some(chunk) = conn.chunk().await {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(gunzip(&got), b"data: first event\n\ndata: second event\n\n");
}

/// A ConfigMap change applies to the next request: the proxy reads the settings from the
/// published table, not from its start-up options.
#[tokio::test]
async fn a_configmap_change_applies_live() {
    let more = Arc::new(Notify::new());
    let upstream = backend(more).await;
    let proxy = Proxy::start().await;
    publish(&proxy, upstream, &[("use-gzip", "true")]);
    let r = get(&proxy, "/xml", Some("gzip, br")).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    publish(
        &proxy,
        upstream,
        &[("use-gzip", "true"), ("enable-brotli", "true")],
    );
    let r = get(&proxy, "/xml", Some("gzip, br")).await;
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(unbrotli(&r.body), xml());
    publish(&proxy, upstream, &[("use-gzip", "false")]);
    let r = get(&proxy, "/xml", Some("gzip, br")).await;
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, xml());
}
