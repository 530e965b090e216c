//! Echo backend for tests and demos: answers every request with JSON describing what it saw.
//!
//! Response (`application/json`, with `Content-Length`):
//! `{"name", "method", "path" (raw request-target incl. query), "host", "proto", "headers":
//! {lowercase name: [values]}, "body_bytes"}`.
//!
//! Query switches (anywhere in the query string):
//! * `sleep_ms=N` — wait N ms before answering (slow backend).
//! * `echo_body=1` — stream the request body straight back as the response body (full duplex).
//! * `chunked=1` — send the JSON without `Content-Length` (chunked).
//! * `set=name:value` — add a response header (repeatable).
//!
//! `Connection: upgrade` requests are accepted with `101`: a WebSocket (`Sec-WebSocket-Key`)
//! echoes messages, any other protocol echoes raw bytes.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

type Body = BoxBody<Bytes, hyper::Error>;

/// Serves the echo backend on `listener` forever, answering as `name`.
pub async fn serve(listener: TcpListener, name: String) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let name = name.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(name.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

fn query_values<'a>(query: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    query.split('&').filter_map(move |pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then_some(v)
    })
}

async fn handle(name: String, mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let query = req.uri().query().unwrap_or("").to_owned();
    if let Some(ms) = query_values(&query, "sleep_ms").find_map(|v| v.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut extra: Vec<(String, String)> = Vec::new();
    for set in query_values(&query, "set") {
        if let Some((k, v)) = set.split_once(':') {
            extra.push((k.to_owned(), v.to_owned()));
        }
    }

    if req.headers().contains_key(header::UPGRADE) {
        return Ok(upgrade(&mut req));
    }

    if query_values(&query, "echo_body").any(|v| v == "1") {
        let mut response = Response::new(req.into_body().boxed());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        add_extra(&mut response, &extra);
        return Ok(response);
    }

    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().to_string(), |pq| pq.as_str().to_owned());
    let method = req.method().to_string();
    let proto = format!("{:?}", req.version());
    let host = req
        .headers()
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .unwrap_or_default();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let mut body_bytes = 0usize;
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    body_bytes += data.len();
                }
            }
            Err(_) => break,
        }
    }
    let json = serde_json::json!({
        "name": name,
        "method": method,
        "path": path,
        "host": host,
        "proto": proto,
        "headers": headers,
        "body_bytes": body_bytes,
    });
    let bytes = Bytes::from(json.to_string());
    let len = bytes.len();
    let body: Body = if query_values(&query, "chunked").any(|v| v == "1") {
        let stream = futures_util::stream::iter([Ok::<_, hyper::Error>(Frame::data(bytes))]);
        BodyExt::boxed(StreamBody::new(stream))
    } else {
        Full::new(bytes).map_err(|never| match never {}).boxed()
    };
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if !query_values(&query, "chunked").any(|v| v == "1") {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    add_extra(&mut response, &extra);
    Ok(response)
}

fn add_extra(response: &mut Response<Body>, extra: &[(String, String)]) {
    for (k, v) in extra {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            response.headers_mut().append(name, value);
        }
    }
}

fn upgrade(req: &mut Request<Incoming>) -> Response<Body> {
    let protocol = req.headers().get(header::UPGRADE).cloned();
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()));
    let on_upgrade = hyper::upgrade::on(req);
    let websocket = key.is_some();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let io = TokioIo::new(upgraded);
        if websocket {
            let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_close() {
                    break;
                }
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    break;
                }
            }
        } else {
            let mut io = io;
            let mut buf = [0u8; 4096];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(p) = protocol {
        h.insert(header::UPGRADE, p);
    }
    if let Some(accept) = key.and_then(|k| HeaderValue::from_str(&k).ok()) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}
