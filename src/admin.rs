//! Admin listener: `/healthz` (the process is alive) and `/readyz` (a configuration has been
//! published: nothing partial is served, spec-wise and style-wise).

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::publish::Shared;

/// Answers one admin request.
pub fn respond(shared: &Shared, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let (status, body) = match (method, path) {
        (&Method::GET | &Method::HEAD, "/healthz") => (StatusCode::OK, "ok\n".to_string()),
        (&Method::GET | &Method::HEAD, "/readyz") => {
            let published = shared.load();
            if published.is_ready() {
                (
                    StatusCode::OK,
                    format!("ready: version {}\n", published.version),
                )
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: no configuration published yet\n".to_string(),
                )
            }
        }
        (_, "/healthz" | "/readyz") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".to_string(),
        ),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_string()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Serves the admin endpoints until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
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
        let shared = shared.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let response = respond(&shared, req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(response) }
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
    use crate::source::Snapshot;
    use crate::translate::Options;

    #[test]
    fn readyz_waits_for_the_first_publish() {
        let shared = crate::publish::shared();
        assert_eq!(
            respond(&shared, &Method::GET, "/healthz").status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&shared, &Method::GET, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        crate::publish::apply(&shared, &Snapshot::default(), &Options::default());
        assert_eq!(
            respond(&shared, &Method::GET, "/readyz").status(),
            StatusCode::OK
        );
    }

    #[test]
    fn unknown_paths_and_methods_are_refused() {
        let shared = crate::publish::shared();
        assert_eq!(
            respond(&shared, &Method::GET, "/nope").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&shared, &Method::POST, "/healthz").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
