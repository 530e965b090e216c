//! Upstream side: a pooled keep-alive HTTP/1.1 client (hyper-util's legacy `Client` over an
//! `HttpConnector`), a resolver for ExternalName hosts that refuses local addresses (spec §4.5),
//! and a request body that can be handed to a second attempt after a connect failure (spec §4.4).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::ProxyOptions;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The upstream client type.
pub type Upstream = Client<HttpConnector<SafeResolver>, RetryBody>;

/// Builds the client: HTTP/1.1 only, keep-alive pool, `TCP_NODELAY`, connect timeout. The
/// proxy sets `Host` itself, so the client must not invent one from the endpoint address.
/// hyper-util's legacy client creates its HTTP/1 connections `with_upgrades()`, which the
/// WebSocket tunnel relies on.
pub fn client(options: &ProxyOptions) -> Upstream {
    let mut connector = HttpConnector::new_with_resolver(SafeResolver);
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(options.connect_timeout));
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .set_host(false)
        .build(connector)
}

/// The addresses an ExternalName must never reach: loopback, link-local and unspecified
/// (spec §4.5). IPv4-mapped IPv6 addresses are judged by their IPv4 form.
pub fn is_refused(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// An ExternalName resolved to nothing but refused addresses. Answered with 503 like the other
/// ExternalName rejections of spec §4.5 (the backend is unusable, not failing).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{host} resolves only to loopback, link-local or unspecified addresses")]
pub struct ExternalNameRefused {
    pub host: String,
}

/// Resolves with tokio's resolver (the system resolver on the blocking pool, so TTLs are the
/// system's) at connect time, dropping refused addresses. Endpoint IPs never reach it: the
/// connector uses IP literals directly.
#[derive(Debug, Clone, Copy, Default)]
pub struct SafeResolver;

type ResolveFuture =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, BoxError>> + Send>>;

impl tower_service::Service<Name> for SafeResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = ResolveFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let addrs: Vec<SocketAddr> = resolved.filter(|a| !is_refused(a.ip())).collect();
            if addrs.is_empty() {
                return Err(Box::new(ExternalNameRefused { host }) as BoxError);
            }
            Ok(addrs.into_iter())
        })
    }
}

/// The client's request body, parked where a failed attempt can give it back.
///
/// The upstream client only polls a body after its connection is established, so after a
/// connect failure the `Incoming` is still in the slot and [`RetryBody::again`] hands it to the
/// next attempt (spec §4.4: retry once, any method, when no request bytes were sent).
pub struct RetryBody {
    state: State,
    /// Signalled once the client's body has been read to its end (or failed), so the
    /// response timeout can start only then: a long upload is not a slow upstream.
    sent: Arc<Progress>,
}

/// How far the client's request body has got: one allocation shared by all attempts.
#[derive(Debug, Default)]
pub struct Progress {
    /// Notified once the whole body has been handed to the upstream connection.
    pub sent: tokio::sync::Notify,
    /// Body bytes read from the client so far (for metrics and the access log).
    pub received: std::sync::atomic::AtomicU64,
}

enum State {
    Parked(Arc<Mutex<Option<Incoming>>>),
    Streaming(Incoming),
    Done,
}

fn lock(slot: &Mutex<Option<Incoming>>) -> MutexGuard<'_, Option<Incoming>> {
    // A poisoned slot only means another attempt panicked; the body inside is still intact.
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RetryBody {
    pub fn new(body: Incoming) -> Self {
        let sent = Arc::new(Progress::default());
        if body.is_end_stream() {
            // No body: hyper never polls it, so it counts as sent from the start.
            sent.sent.notify_one();
        }
        RetryBody {
            state: State::Parked(Arc::new(Mutex::new(Some(body)))),
            sent,
        }
    }

    /// Resolves once the whole request body has been handed to the upstream connection.
    pub fn sent(&self) -> Arc<Progress> {
        self.sent.clone()
    }

    /// A body for another attempt, if this one never started streaming.
    pub fn again(&self) -> Option<RetryBody> {
        match &self.state {
            State::Parked(slot) if lock(slot).is_some() => Some(RetryBody {
                state: State::Parked(slot.clone()),
                sent: self.sent.clone(),
            }),
            _ => None,
        }
    }
}

impl RetryBody {
    fn finish(&mut self) {
        self.state = State::Done;
        self.sent.sent.notify_one();
    }
}

impl Body for RetryBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            match &mut self.state {
                State::Parked(slot) => {
                    let taken = lock(slot).take();
                    self.state = match taken {
                        Some(body) => State::Streaming(body),
                        None => State::Done,
                    };
                }
                State::Streaming(body) => {
                    let polled = Pin::new(&mut *body).poll_frame(cx);
                    let finished = body.is_end_stream();
                    return match polled {
                        Poll::Ready(Some(Err(e))) => {
                            self.finish();
                            Poll::Ready(Some(Err(Box::new(e))))
                        }
                        Poll::Ready(Some(Ok(frame))) => {
                            if let Some(data) = frame.data_ref() {
                                let n = u64::try_from(data.len()).unwrap_or(u64::MAX);
                                self.sent
                                    .received
                                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                            }
                            if finished {
                                self.finish();
                            }
                            Poll::Ready(Some(Ok(frame)))
                        }
                        Poll::Ready(None) => {
                            self.finish();
                            Poll::Ready(None)
                        }
                        Poll::Pending => Poll::Pending,
                    };
                }
                State::Done => {
                    self.sent.sent.notify_one();
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Parked(slot) => lock(slot).as_ref().is_none_or(|b| b.is_end_stream()),
            State::Streaming(body) => body.is_end_stream(),
            State::Done => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Parked(slot) => lock(slot)
                .as_ref()
                .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint()),
            State::Streaming(body) => body.size_hint(),
            State::Done => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "::1",
            "169.254.1.1",
            "fe80::1",
            "0.0.0.0",
            "::",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_refused(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.1", "93.184.216.34", "2001:db8::1"] {
            assert!(!is_refused(ip.parse().unwrap()), "{ip}");
        }
    }
}
