//! `proxy-request-buffering` (issue 14): with `on`, ingress-nginx's default, the client's
//! whole request body is read before the upstream connection is used, so the upstream sees
//! the request only once the client has finished, a retry can replay the body, and an
//! HTTP/1.0 upstream gets a `Content-Length`.
//!
//! nginx holds `client-body-buffer-size` in memory and writes the rest to a temporary file.
//! Portico writes no files: a body is held in memory, bounded per request by the effective
//! `proxy-body-size` (413 beyond it, as when streaming) and across the process by
//! [`BUDGET`]: a request whose body would not fit in what is left of it (or whose size is
//! bounded by nothing: no `Content-Length` and `proxy-body-size: 0`) is streamed, as with
//! `off` (docs/decisions.md, docs/security.md). HTTP/2 upstreams (`backend-protocol` GRPC,
//! GRPCS, H2C) always stream: nginx's `grpc_pass` has no request buffering, and a streaming
//! RPC cannot wait for the client's end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http_body_util::BodyExt;

use super::error::ProxyError;
use super::upstream::{Progress, RetryBody};

/// Most request-body bytes held in memory at once by all buffered requests of the process.
pub const BUDGET: u64 = 256 * 1024 * 1024;

static IN_USE: AtomicU64 = AtomicU64::new(0);

/// Part of [`BUDGET`], given back when dropped (when the request's upstream exchange ends).
#[derive(Debug)]
pub struct Reservation(u64, &'static AtomicU64);

impl Reservation {
    /// `bytes` out of `budget` (whose use `in_use` counts), if that much is left.
    fn take(bytes: u64, budget: u64, in_use: &'static AtomicU64) -> Option<Reservation> {
        in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= budget)
            })
            .ok()
            .map(|_| Reservation(bytes, in_use))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.1.fetch_sub(self.0, Ordering::AcqRel);
    }
}

/// Reads the whole body of a request that has one. `declared`: its `Content-Length`;
/// `limit`: the effective `proxy-body-size` (0: none). `Ok(None)`: not buffered (no room in
/// the budget, or no bound on the size): the caller streams `body` as with `off`.
/// Errors: 413 over the limit, or the client's fault (malformed, cut short, too slow:
/// `--client-body-timeout`), exactly as when streaming.
/// A buffered body goes out with its `Content-Length` (set in `headers`), never chunked.
pub async fn read(
    body: &mut RetryBody,
    declared: Option<u64>,
    limit: u64,
    headers: &mut http::HeaderMap,
) -> Result<Option<Reservation>, ProxyError> {
    let bound = match (declared, limit) {
        (Some(n), _) => n,
        (None, 0) => return Ok(None),
        (None, limit) => limit,
    };
    let Some(reservation) = Reservation::take(bound, BUDGET, &IN_USE) else {
        return Ok(None);
    };
    let sent = body.sent();
    match body.collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            headers.remove(http::header::TRANSFER_ENCODING);
            headers.insert(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from(bytes.len()),
            );
            // A fresh progress record: reading the body to its end signalled `sent.sent`,
            // which must wait for the upstream connection to take the body.
            let fresh = Arc::new(Progress::default());
            fresh
                .received
                .store(sent.received.load(Ordering::Relaxed), Ordering::Relaxed);
            *body = RetryBody::buffered(bytes, fresh);
            Ok(Some(reservation))
        }
        Err(_) if sent.too_large.load(Ordering::Relaxed) => Err(ProxyError::PayloadTooLarge),
        Err(e) => match sent.client_fault() {
            Some(fault) => Err(ProxyError::Client(fault)),
            None => Err(ProxyError::Upstream(e.to_string().into())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_and_given_back() {
        // A private counter, so parallel tests using the real one are not disturbed.
        static USED: AtomicU64 = AtomicU64::new(0);
        let a = Reservation::take(60, 100, &USED).expect("fits");
        assert!(
            Reservation::take(60, 100, &USED).is_none(),
            "over the budget"
        );
        let b = Reservation::take(40, 100, &USED).expect("exactly fits");
        assert!(Reservation::take(1, 100, &USED).is_none());
        drop(a);
        drop(b);
        assert_eq!(USED.load(Ordering::Acquire), 0);
        assert!(Reservation::take(100, 100, &USED).is_some());
    }
}
