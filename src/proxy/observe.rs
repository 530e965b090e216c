//! What the proxy learns about a request on its way (route, upstream, timings), and the
//! response body wrapper that, once the body is finished or dropped, counts the request in the
//! metrics and hands its line to the access log.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Response, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::server::Active;
use super::upstream::Progress;
use super::{Observe, ProxyBody};
use crate::access_log::{Entry, TlsInfo};
use crate::metrics::RouteSeries;

/// Filled in by the proxy as the request goes.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// The Host (or authority) as sent (ASCII); `None` before it was read.
    pub host: Option<HeaderValue>,
    /// The metric series of the routing decision; `None` before routing.
    pub series: Option<Arc<RouteSeries>>,
    /// Endpoint of the last attempt.
    pub upstream: Option<String>,
    pub upstream_duration: Option<std::time::Duration>,
    pub request_id: Option<HeaderValue>,
    pub body: Option<Arc<Progress>>,
    /// `limit-connections`: the request counts as in progress until its response has ended.
    pub limit: Option<Box<super::limits::ConnGuard>>,
    /// The routing Ingress says `enable-access-log: "false"`: counted, not logged.
    pub no_access_log: bool,
}

impl Seen {
    /// The Host as text, empty when unknown.
    pub fn host_str(&self) -> &str {
        self.host
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
    }
}

/// What is known when the request arrives.
pub(crate) struct Arrival {
    pub start: Instant,
    /// The wall clock at arrival; the epoch when there is no access log (nothing reads it).
    pub time: SystemTime,
    pub client: SocketAddr,
    pub method: Method,
    pub version: Version,
    /// Kept only when an access log is written.
    pub target: Option<PathAndQuery>,
    /// The connection's TLS version and SNI (HTTPS listener).
    pub tls: Option<Arc<TlsInfo>>,
    /// The ConfigMap's `log-format-upstream` and the request headers it names.
    pub custom: Option<crate::access_log::Custom>,
}

impl Arrival {
    pub fn new<B>(
        req: &http::Request<B>,
        client: SocketAddr,
        tls: Option<&Arc<TlsInfo>>,
        observe: &Observe,
        log_format: Option<Arc<crate::routing::log_format::LogTemplate>>,
    ) -> Self {
        Arrival {
            start: Instant::now(),
            // Only the access log reads the wall clock: one clock read less per request
            // without it.
            time: if observe.access_log.is_some() {
                SystemTime::now()
            } else {
                SystemTime::UNIX_EPOCH
            },
            client,
            method: req.method().clone(),
            version: req.version(),
            target: observe
                .access_log
                .as_ref()
                .and_then(|_| req.uri().path_and_query().cloned()),
            tls: observe.access_log.as_ref().and(tls.cloned()),
            custom: log_format.map(|t| crate::access_log::Custom::capture(t, req.headers())),
        }
    }
}

/// A request being served. If its future is dropped before there is a response (the client
/// went away: HTTP/1 connection closed, HTTP/2 stream reset) it is still counted and logged,
/// as 499, nginx's "client closed request" (issue 10 item 2).
pub(crate) struct Pending<'a> {
    observe: &'a Observe,
    arrival: Option<Arrival>,
    active: Option<Active>,
    pub seen: Seen,
}

impl<'a> Pending<'a> {
    pub fn new(observe: &'a Observe, arrival: Arrival, active: Active) -> Self {
        Pending {
            observe,
            arrival: Some(arrival),
            active: Some(active),
            seen: Seen::default(),
        }
    }

    /// The response exists: it is recorded when its body ends (see [`finish`]).
    pub fn finish(mut self, response: Response<ProxyBody>) -> Response<ProxyBody> {
        let seen = std::mem::take(&mut self.seen);
        match self.arrival.take() {
            Some(arrival) => finish(self.observe, arrival, seen, response, self.active.take()),
            None => response,
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let Some(arrival) = self.arrival.take() else {
            return;
        };
        let seen = std::mem::take(&mut self.seen);
        let series = seen
            .series
            .clone()
            .unwrap_or_else(|| self.observe.metrics.unrouted());
        self.observe
            .metrics
            .client_error(super::ClientFault::Aborted.reason());
        let done = Done {
            observe: self.observe.access_log.clone(),
            arrival,
            seen,
            series,
            status: super::error::client_closed_request().as_u16(),
            _active: self.active.take(),
        };
        done.record(0);
    }
}

/// Wraps the response body so the request is recorded when it ends.
fn finish(
    observe: &Observe,
    arrival: Arrival,
    seen: Seen,
    response: Response<ProxyBody>,
    active: Option<Active>,
) -> Response<ProxyBody> {
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let series = seen
        .series
        .clone()
        .unwrap_or_else(|| observe.metrics.unrouted());
    let body = Observed {
        inner: body,
        bytes: 0,
        done: Some(Done {
            observe: observe.access_log.clone(),
            arrival,
            seen,
            series,
            status,
            _active: active,
        }),
    };
    Response::from_parts(parts, body.boxed())
}

struct Done {
    observe: Option<crate::access_log::AccessLog>,
    arrival: Arrival,
    seen: Seen,
    series: Arc<RouteSeries>,
    status: u16,
    /// Keeps the request in flight on its connection until the response has ended.
    _active: Option<Active>,
}

struct Observed {
    inner: ProxyBody,
    bytes: u64,
    done: Option<Done>,
}

impl Body for Observed {
    type Data = Bytes;
    type Error = super::BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, super::BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes += u64::try_from(data.len()).unwrap_or(u64::MAX);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done.record(self.bytes);
        }
    }
}

impl Done {
    /// Counts the request and hands its line to the access log.
    fn record(self, bytes_out: u64) {
        let done = self;
        let duration = done.arrival.start.elapsed();
        let bytes_in = done
            .seen
            .body
            .as_ref()
            .map_or(0, |p| p.received.load(Ordering::Relaxed));
        done.series.request(
            crate::metrics::method_index(&done.arrival.method),
            done.status,
            duration,
            bytes_in,
            bytes_out,
        );
        if let Some(log) = done.observe.as_ref().filter(|_| !done.seen.no_access_log) {
            log.record(Entry {
                time: done.arrival.time,
                client: done.arrival.client,
                method: done.arrival.method,
                host: done.seen.host_str().to_owned(),
                target: done.arrival.target,
                version: done.arrival.version,
                status: done.status,
                bytes_in,
                bytes_out,
                duration,
                upstream: done.seen.upstream,
                upstream_duration: done.seen.upstream_duration,
                route: done.seen.series,
                request_id: done.seen.request_id,
                tls: done.arrival.tls,
                custom: done.arrival.custom,
            });
        }
    }
}
