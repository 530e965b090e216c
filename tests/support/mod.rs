//! Helpers for the proxy tests: echo backends, tables, a proxy on 127.0.0.1:0, and a raw
//! HTTP/1 client that shows exactly what went over the wire.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portico::proxy::{self, ProxyOptions};
use portico::publish::{self, Published, Shared};
use portico::routing::{
    Backend, BackendRef, HostMatch, Origin, PathType, PortRef, Route, RouteTable, Target,
    VirtualHost,
};
use portico::translate::Translation;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[path = "../../examples/support/echo.rs"]
pub mod echo;
pub mod nginx;
pub mod scripted;
pub mod tls;

/// Translates YAML `documents` (joined into one multi-document file, as the manifests source
/// reads one) with `options`: what the ingress-nginx compatibility tests serve.
pub fn translate_documents(
    documents: &[String],
    options: &portico::translate::Options,
) -> Translation {
    let mut loaded = portico::source::files::Loaded::default();
    portico::source::files::parse_documents("test.yaml", &documents.join("---\n"), &mut loaded);
    portico::translate::translate(
        &loaded.snapshot,
        options,
        &mut portico::translate::Cache::default(),
    )
}

/// Upper bound for any single wait in a test, so a bug fails instead of hanging.
pub const BOUND: Duration = Duration::from_secs(20);

/// A port for Portico to bind, outside the kernel's ephemeral range (32768-60999 by default),
/// so no `bind(0)` listener or outgoing connection of a parallel test can take it between
/// this check and Portico's bind; and never the same one twice in this process.
pub fn free_port() -> SocketAddr {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..1000 {
        let port = fastrand::u16(20_000..32_000);
        let mut given = GIVEN.lock().expect("port list");
        if given.contains(&port) {
            continue;
        }
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            given.push(port);
            return l.local_addr().expect("local addr");
        }
    }
    panic!("no free port in 20000-32000");
}

pub async fn start_echo(name: &str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(echo::serve(listener, name.to_string()));
    addr
}

/// An address nothing listens on: bound, then closed.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

pub fn backend(target: Target) -> Arc<Backend> {
    Arc::new(Backend::new(
        BackendRef::Service {
            namespace: "default".into(),
            name: "svc".into(),
            port: PortRef::Number(80),
        },
        target,
    ))
}

pub fn endpoints(addrs: &[SocketAddr]) -> Arc<Backend> {
    let mut addrs = addrs.to_vec();
    addrs.sort();
    backend(Target::Endpoints(addrs))
}

pub fn route(path: &str, path_type: PathType, backend: Arc<Backend>) -> Route {
    Route {
        path: path.into(),
        path_type,
        backend,
        origin: Origin {
            namespace: "default".into(),
            name: "ing".into(),
            rule: 0,
            path: 0,
        },
        ssl_redirect: false,
    }
}

pub fn vhost(host: HostMatch, routes: Vec<Route>) -> VirtualHost {
    VirtualHost::new(host, routes, None)
}

/// Publishes a table built from `vhosts` and an optional default backend.
pub fn publish(shared: &Shared, vhosts: Vec<VirtualHost>, default: Option<Arc<Backend>>) {
    let version = shared.load().version + 1;
    shared.store(Arc::new(Published {
        version,
        translation: Arc::new(Translation {
            table: RouteTable::new(vhosts, default),
            tls: Default::default(),
            conditions: vec![],
            owned: Vec::new().into(),
            ssl_redirects: Vec::new().into(),
            global: Default::default(),
            passthrough: Default::default(),
        }),
        snapshot: Default::default(),
    }));
}

/// Everything on the hostless vhost with Prefix `/` to `backend`.
pub fn publish_catch_all(shared: &Shared, backend: Arc<Backend>) {
    publish(
        shared,
        vec![vhost(
            HostMatch::Any,
            vec![route("/", PathType::Prefix, backend)],
        )],
        None,
    );
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub shared: Shared,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Proxy {
    /// Publishes `translation` as the next version, as the publisher would.
    pub fn publish_translation(&self, translation: Translation) {
        self.shared.store(Arc::new(Published {
            version: self.shared.load().version + 1,
            translation: Arc::new(translation),
            snapshot: Default::default(),
        }));
    }

    pub async fn start() -> Proxy {
        Proxy::start_with(ProxyOptions {
            response_timeout: Duration::from_secs(10),
            ..ProxyOptions::default()
        })
        .await
    }

    pub async fn start_with(options: ProxyOptions) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = publish::shared();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy::serve(
            listener,
            shared.clone(),
            Arc::new(options),
            async move {
                let _ = stopped.await;
            },
        ));
        Proxy {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Asks the proxy to shut down and returns its task.
    pub fn shutdown(&mut self) -> JoinHandle<std::io::Result<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().expect("shutdown once")
    }

    pub async fn connect(&self) -> Conn {
        Conn::connect(self.addr).await
    }

    /// One request on a fresh connection.
    pub async fn raw(&self, request: &str) -> RawResponse {
        let mut conn = self.connect().await;
        conn.send(request.as_bytes()).await;
        conn.response().await
    }

    /// `GET path` with `Host: host` on a fresh connection.
    pub async fn get(&self, host: &str, path: &str) -> RawResponse {
        self.raw(&format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
            .await
    }
}

/// A parsed HTTP/1 response.
#[derive(Debug)]
pub struct RawResponse {
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub chunked: bool,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} body {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What the echo backend saw of one header: its values.
pub fn seen<'a>(json: &'a serde_json::Value, header: &str) -> Vec<&'a str> {
    json["headers"][header]
        .as_array()
        .map(|vs| vs.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default()
}

/// A raw client connection (keep-alive capable).
pub struct Conn {
    pub reader: BufReader<TcpStream>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.unwrap();
        Conn {
            reader: BufReader::new(stream),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).await.unwrap();
    }

    /// Reads the status line and headers.
    pub async fn head(&mut self) -> (String, u16, Vec<(String, String)>) {
        tokio::time::timeout(BOUND, async {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.unwrap();
            let mut parts = line.trim_end().splitn(3, ' ');
            let version = parts.next().unwrap_or_default().to_string();
            let status = parts
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad status line {line:?}"));
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                let n = self.reader.read_line(&mut line).await.unwrap();
                let line = line.trim_end();
                if n == 0 || line.is_empty() {
                    break;
                }
                let (k, v) = line.split_once(':').expect("header line");
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            (version, status, headers)
        })
        .await
        .expect("response head within bound")
    }

    /// Reads one chunk of a chunked body; `None` at the last chunk.
    pub async fn chunk(&mut self) -> Option<Vec<u8>> {
        tokio::time::timeout(BOUND, async {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.unwrap();
            let size_text = line.trim_end().split(';').next().unwrap_or("0");
            let size = usize::from_str_radix(size_text, 16).expect("chunk size");
            if size == 0 {
                // Trailers (none expected) up to the empty line.
                loop {
                    let mut l = String::new();
                    let n = self.reader.read_line(&mut l).await.unwrap();
                    if n == 0 || l.trim_end().is_empty() {
                        break;
                    }
                }
                return None;
            }
            let mut data = vec![0; size];
            self.reader.read_exact(&mut data).await.unwrap();
            let mut crlf = [0; 2];
            self.reader.read_exact(&mut crlf).await.unwrap();
            Some(data)
        })
        .await
        .expect("chunk within bound")
    }

    /// Reads one whole response (the request must not have been HEAD).
    pub async fn response(&mut self) -> RawResponse {
        let (version, status, headers) = self.head().await;
        let find = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let chunked = find("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let mut body = Vec::new();
        if status == 101 || status == 204 || status == 304 {
        } else if chunked {
            while let Some(data) = self.chunk().await {
                body.extend_from_slice(&data);
            }
        } else if let Some(len) = find("content-length") {
            let len: usize = len.parse().unwrap();
            body.resize(len, 0);
            tokio::time::timeout(BOUND, self.reader.read_exact(&mut body))
                .await
                .expect("body within bound")
                .unwrap();
        } else {
            tokio::time::timeout(BOUND, self.reader.read_to_end(&mut body))
                .await
                .expect("body within bound")
                .unwrap();
        }
        RawResponse {
            version,
            status,
            headers,
            body,
            chunked,
        }
    }
}

/// A backend the test drives by hand: it accepts one connection, reports the request head,
/// and answers only when told to.
pub struct GatedBackend {
    pub addr: SocketAddr,
    pub head_seen: oneshot::Receiver<String>,
    pub release: oneshot::Sender<&'static str>,
}

pub async fn gated_backend() -> GatedBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, head_seen) = oneshot::channel();
    let (release, release_rx) = oneshot::channel::<&'static str>();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let _ = seen_tx.send(head);
        if let Ok(body) = release_rx.await {
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = reader.get_mut().write_all(response.as_bytes()).await;
            let _ = reader.get_mut().flush().await;
            // Keep the connection open until the proxy closes it.
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest).await;
        }
    });
    GatedBackend {
        addr,
        head_seen,
        release,
    }
}
