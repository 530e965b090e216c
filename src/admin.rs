//! Admin listener: `/healthz` (the process is alive), `/readyz` (a configuration has been
//! published: nothing partial is served), `/metrics` (OpenMetrics text), `/debug/routes` (the
//! published table as JSON), `/debug/explain` (where a request would go and why) and
//! `/log-level` (read or change the log filter).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::publish::Shared;

/// Largest request body the admin port reads (a log filter).
const MAX_BODY: usize = 4096;

/// What the admin endpoints read.
#[derive(Debug, Clone)]
pub struct Admin {
    pub shared: Shared,
    pub metrics: Arc<Metrics>,
    /// Set on SIGTERM: `/readyz` answers 503 from then on, while the proxy keeps serving for
    /// `--shutdown-delay` so balancers take the pod out first.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// The proxy's path checks, so `/debug/explain` refuses what the proxy refuses.
    pub path_rules: crate::routing::normalize::PathRules,
    /// The process's reloadable log filter (`app::init_tracing` makes it); `None`: `/log-level`
    /// answers 404.
    pub log_level: Option<Arc<dyn LogFilter>>,
}

/// A log filter `/log-level` can read and replace. A handle passed in by whoever installed
/// the subscriber, so the admin listener depends on no global and not on `app`.
pub trait LogFilter: std::fmt::Debug + Send + Sync {
    /// The filter in force, as it was given.
    fn current(&self) -> String;
    /// Replaces the filter; an invalid one is refused and changes nothing.
    fn set(&self, filter: &str) -> Result<(), String>;
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

/// Answers one admin request; `body` is the request body (only `PUT /log-level` reads it).
pub fn respond(admin: &Admin, method: &Method, uri: &Uri, body: &[u8]) -> Response<Full<Bytes>> {
    let read = matches!(*method, Method::GET | Method::HEAD);
    let text = |status, body: &str| reply(status, TEXT, body.to_string());
    match (uri.path(), read) {
        ("/healthz", true) => text(StatusCode::OK, "ok\n"),
        ("/readyz", true) => {
            let published = admin.shared.load();
            if admin.draining.load(std::sync::atomic::Ordering::Relaxed) {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: shutting down\n",
                )
            } else if published.is_ready() {
                reply(
                    StatusCode::OK,
                    TEXT,
                    format!("ready: version {}\n", published.version),
                )
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: no configuration published yet\n",
                )
            }
        }
        ("/metrics", true) => reply(StatusCode::OK, OPENMETRICS, admin.metrics.encode()),
        ("/debug/routes", true) => {
            let published = admin.shared.load();
            let view = RoutesView {
                version: published.version,
                table: &published.translation.table,
                tls: &published.translation.tls,
                ssl_redirects: &published.translation.ssl_redirects,
                conditions: &published.translation.conditions,
                owned: &published.translation.owned,
                passthrough: &published.translation.passthrough,
            };
            let mut body = serde_json::to_string_pretty(&view).unwrap_or_default();
            body.push('\n');
            reply(StatusCode::OK, JSON, body)
        }
        ("/debug/explain", true) => {
            let query = Query::parse(uri.query().unwrap_or(""));
            let Some(host) = query.get("host") else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "usage: /debug/explain?host=HOST&path=PATH[&sni=NAME][&format=json]\n",
                );
            };
            let path = query.get("path").unwrap_or_else(|| "/".to_string());
            let sni = query.get("sni");
            let published = admin.shared.load();
            let explanation = crate::explain::explain_with(
                &published.translation,
                Some(published.version),
                &host,
                &path,
                sni.as_deref(),
                admin.path_rules,
            );
            if query.get("format").as_deref() == Some("json") {
                let mut body = serde_json::to_string_pretty(&explanation).unwrap_or_default();
                body.push('\n');
                reply(StatusCode::OK, JSON, body)
            } else {
                reply(StatusCode::OK, TEXT, explanation.to_string())
            }
        }
        ("/log-level", true) => match &admin.log_level {
            Some(level) => reply(StatusCode::OK, TEXT, format!("{}\n", level.current())),
            None => text(
                StatusCode::NOT_FOUND,
                "this process has no reloadable log filter\n",
            ),
        },
        ("/log-level", false) if method == Method::PUT => {
            let Some(level) = &admin.log_level else {
                return text(
                    StatusCode::NOT_FOUND,
                    "this process has no reloadable log filter\n",
                );
            };
            let filter = match std::str::from_utf8(body) {
                Ok(s) if !s.trim().is_empty() => s.trim(),
                _ => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "the body must be a tracing filter, e.g. info or portico=debug\n",
                    )
                }
            };
            match level.set(filter) {
                Ok(()) => reply(StatusCode::OK, TEXT, format!("log level: {filter}\n")),
                Err(e) => reply(
                    StatusCode::BAD_REQUEST,
                    TEXT,
                    format!("invalid filter {filter:?}: {e}\n"),
                ),
            }
        }
        (
            "/healthz" | "/readyz" | "/metrics" | "/debug/routes" | "/debug/explain" | "/log-level",
            _,
        ) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `/debug/routes`: the published configuration, version first. `tls` is the certificate
/// bindings (host → Secret) and each certificate's subject, names, validity and fingerprint:
/// `Certificate` serialises no key or PEM (those fields are `serde(skip)`).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RoutesView<'a> {
    version: u64,
    table: &'a crate::routing::RouteTable,
    tls: &'a crate::tls::TlsTable,
    ssl_redirects: &'a [crate::translate::SslRedirect],
    conditions: &'a [crate::translate::Condition],
    owned: &'a [crate::translate::ObjectRef],
    /// `ssl-passthrough` hosts and their backends (issue 15); absent when none.
    #[serde(skip_serializing_if = "no_passthrough")]
    passthrough: &'a crate::routing::Passthrough,
}

fn no_passthrough(passthrough: &&crate::routing::Passthrough) -> bool {
    passthrough.is_empty()
}

/// A parsed query string: `application/x-www-form-urlencoded` pairs.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: &str) -> Query {
        Query(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

/// Percent-decoding with `+` as space; invalid escapes are kept as they are.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves the admin endpoints until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    admin: Arc<Admin>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: back off instead of spinning.
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let admin = admin.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let admin = admin.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = if parts.method == Method::PUT {
                        match Limited::new(body, MAX_BODY).collect().await {
                            Ok(collected) => collected.to_bytes(),
                            Err(_) => {
                                return Ok::<_, Infallible>(reply(
                                    StatusCode::PAYLOAD_TOO_LARGE,
                                    TEXT,
                                    "body too large\n".to_string(),
                                ))
                            }
                        }
                    } else {
                        Bytes::new()
                    };
                    Ok(respond(&admin, &parts.method, &parts.uri, &body))
                }
            });
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(client.addr = %peer, error = %e, "admin connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::Publisher;
    use crate::source::Snapshot;
    use crate::translate::Options;

    fn admin(publisher: &Publisher) -> Admin {
        Admin {
            shared: publisher.shared().clone(),
            metrics: Arc::default(),
            draining: Arc::default(),
            path_rules: Default::default(),
            log_level: None,
        }
    }

    #[derive(Debug, Default)]
    struct FakeFilter(std::sync::Mutex<String>);

    impl LogFilter for FakeFilter {
        fn current(&self) -> String {
            self.0.lock().unwrap().clone()
        }
        fn set(&self, filter: &str) -> Result<(), String> {
            if filter.contains('!') {
                return Err("bad filter".into());
            }
            *self.0.lock().unwrap() = filter.to_string();
            Ok(())
        }
    }

    #[test]
    fn log_level_reads_and_sets_the_handle_it_was_given() {
        let publisher = Publisher::new(Arc::default());
        let without = admin(&publisher);
        assert_eq!(get(&without, "/log-level").status(), StatusCode::NOT_FOUND);
        let filter = Arc::new(FakeFilter::default());
        let admin = Admin {
            log_level: Some(filter.clone()),
            ..admin(&publisher)
        };
        let put = |body: &[u8]| respond(&admin, &Method::PUT, &"/log-level".parse().unwrap(), body);
        assert_eq!(put(b"debug").status(), StatusCode::OK);
        assert_eq!(filter.current(), "debug");
        assert_eq!(put(b"x!").status(), StatusCode::BAD_REQUEST);
        assert_eq!(filter.current(), "debug");
        assert_eq!(get(&admin, "/log-level").status(), StatusCode::OK);
    }

    fn get(admin: &Admin, path: &str) -> Response<Full<Bytes>> {
        respond(admin, &Method::GET, &path.parse().unwrap(), b"")
    }

    #[test]
    fn readyz_waits_for_the_first_publish() {
        let mut publisher = Publisher::new(Arc::default());
        let admin = admin(&publisher);
        assert_eq!(get(&admin, "/healthz").status(), StatusCode::OK);
        assert_eq!(
            get(&admin, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        publisher.publish(Snapshot::default(), &Options::default());
        assert_eq!(get(&admin, "/readyz").status(), StatusCode::OK);
        admin
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            get(&admin, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn unknown_paths_and_methods_are_refused() {
        let admin = admin(&Publisher::new(Arc::default()));
        assert_eq!(get(&admin, "/nope").status(), StatusCode::NOT_FOUND);
        assert_eq!(
            respond(&admin, &Method::POST, &"/healthz".parse().unwrap(), b"").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            get(&admin, "/debug/explain").status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let q = Query::parse("host=a.example%3A8080&path=%2Fx+y&bad=%zz&end=%4&sign=%+1");
        assert_eq!(q.get("host").as_deref(), Some("a.example:8080"));
        assert_eq!(q.get("path").as_deref(), Some("/x y"));
        assert_eq!(q.get("bad").as_deref(), Some("%zz"));
        assert_eq!(q.get("end").as_deref(), Some("%4"));
        assert_eq!(q.get("sign").as_deref(), Some("% 1"));
    }
}
