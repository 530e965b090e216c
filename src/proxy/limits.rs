//! Issue 14, per request: the controller ConfigMap's block lists, then an Ingress's rate and
//! connection limits and source ranges (`routing/limits.rs`, typed by `translate/limits.rs`),
//! in nginx's phase order: the block lists of the server block, `limit_req` and `limit_conn`
//! (preaccess), then `deny`/`allow` (access). Only routes whose policy carries an [`Access`]
//! come here; the others pay one `Option` check in `service.rs`.
//!
//! The [`Limiter`] holds the per-address state, one per replica (shared by every worker and
//! listener, as nginx's shared-memory zones are by its workers), in bounded memory.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::error::ProxyError;
use super::ProxyBody;
use crate::routing::limits::{Access, Bandwidth, Blocklist, Rate, RateLimits};
use crate::routing::Cidr;

/// Shards of the limiter's maps (a lock each).
const SHARDS: usize = 64;
/// Request-rate states kept at most, in all (nginx's default 5 MB zone holds some 40,000):
/// beyond it the states of addresses whose excess has drained go first, then the least
/// recently used, as nginx's `limit_req` evicts.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// `(zone, client address)`.
type Key = (u64, IpAddr);

/// The state of one address in one zone (nginx `ngx_http_limit_req_node_t`): the excess in
/// thousandths of a request for the `limit-rps` and `limit-rpm` rates, and when it was last
/// admitted, in milliseconds of the limiter's clock.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    excess: [u64; 2],
    last: u64,
    /// When both excesses will have drained to zero: from then on the state is the same as
    /// none, so it may be dropped without changing any answer.
    idle_at: u64,
}

#[derive(Debug, Default)]
struct Shard {
    buckets: HashMap<Key, Bucket>,
    /// Requests in progress per address (`limit-connections`); an entry is removed at zero.
    active: HashMap<Key, u32>,
}

/// Per-address limiter state of one replica.
#[derive(Debug)]
pub struct Limiter {
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    per_shard: usize,
    start: Instant,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::with_capacity(DEFAULT_CAPACITY)
    }
}

impl Limiter {
    /// A limiter keeping at most about `capacity` request-rate states.
    pub fn with_capacity(capacity: usize) -> Self {
        Limiter {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: Default::default(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            start: Instant::now(),
        }
    }

    /// Milliseconds since the limiter was made: its clock.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn shard(&self, key: &Key) -> std::sync::MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        // A panic while holding the lock leaves consistent data (plain integers).
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// nginx's `limit_req` with `nodelay` for the rates of `limits` at time `now` (ms):
    /// whether the request is admitted. A refused request changes no state.
    pub fn admit(&self, limits: &RateLimits, client: IpAddr, now: u64) -> bool {
        let rates = [limits.rps, limits.rpm];
        if rates.iter().all(Option::is_none) {
            return true;
        }
        let key = (limits.zone, client);
        let mut shard = self.shard(&key);
        let Some(bucket) = shard.buckets.get_mut(&key) else {
            // A new address: nginx creates its node with no excess and admits the request.
            if shard.buckets.len() >= self.per_shard {
                evict(&mut shard.buckets, now, self.per_shard);
            }
            shard.buckets.insert(
                key,
                Bucket {
                    excess: [0; 2],
                    last: now,
                    idle_at: idle_at(&rates, [0; 2], now),
                },
            );
            return true;
        };
        let elapsed = now.saturating_sub(bucket.last);
        let mut next = [0u64; 2];
        for (i, rate) in rates.iter().enumerate() {
            let Some(Rate { per_minute, burst }) = *rate else {
                continue;
            };
            // nginx: excess = excess - rate * ms / 1000 + 1000, at least 0; refused above
            // burst * 1000. Its rate is in thousandths of a request per second, so
            // `rate * ms / 1000` is `per_minute * ms / 60`.
            let drained = u128::from(per_minute) * u128::from(elapsed) / 60;
            let excess = (u128::from(bucket.excess[i]) + 1000).saturating_sub(drained);
            if excess > u128::from(burst) * 1000 {
                return false;
            }
            next[i] = u64::try_from(excess).unwrap_or(u64::MAX);
        }
        *bucket = Bucket {
            excess: next,
            last: now,
            idle_at: idle_at(&rates, next, now),
        };
        true
    }

    /// nginx's `limit_conn`: one more request in progress for `client` in `limits`'s zone, or
    /// `None` when it already has `max`. The guard ends it.
    pub fn enter(self: &Arc<Self>, zone: u64, client: IpAddr, max: u32) -> Option<ConnGuard> {
        let key = (zone, client);
        let mut shard = self.shard(&key);
        let count = shard.active.entry(key).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ConnGuard {
            limiter: Arc::clone(self),
            key,
        })
    }

    /// Request-rate states held now (tests, `/debug`).
    pub fn states(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.buckets.len()).unwrap_or(0))
            .sum()
    }

    /// Requests in progress counted now, all zones and addresses.
    pub fn in_progress(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .map(|s| s.active.values().map(|&n| u64::from(n)).sum::<u64>())
                    .unwrap_or(0)
            })
            .sum()
    }
}

/// When a state with `excess` at `now` becomes the same as no state: a new address's first
/// request is admitted with no excess, so that is when `excess + 1000` has drained.
fn idle_at(rates: &[Option<Rate>; 2], excess: [u64; 2], now: u64) -> u64 {
    let mut at = now;
    for (rate, excess) in rates.iter().zip(excess) {
        if let Some(rate) = rate.filter(|r| r.per_minute > 0) {
            let ms = (u128::from(excess) + 1000) * 60 / u128::from(rate.per_minute) + 1;
            at = at.max(now.saturating_add(u64::try_from(ms).unwrap_or(u64::MAX)));
        }
    }
    at
}

/// Makes room in a full shard: first every state that has drained (dropping it changes
/// nothing), then, if that freed nothing, the least recently used eighth.
fn evict(buckets: &mut HashMap<Key, Bucket>, now: u64, cap: usize) {
    buckets.retain(|_, b| b.idle_at > now);
    if buckets.len() < cap {
        return;
    }
    let mut lasts: Vec<u64> = buckets.values().map(|b| b.last).collect();
    let cut = (lasts.len() / 8).max(1);
    let (_, &mut threshold, _) = lasts.select_nth_unstable(cut - 1);
    let mut left = cut;
    buckets.retain(|_, b| {
        if left > 0 && b.last <= threshold {
            left -= 1;
            false
        } else {
            true
        }
    });
}

/// One request in progress for `limit-connections`; dropped when its response has ended.
pub struct ConnGuard {
    limiter: Arc<Limiter>,
    key: Key,
}

impl std::fmt::Debug for ConnGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnGuard").field("key", &self.key).finish()
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut shard = self.limiter.shard(&self.key);
        if let Some(count) = shard.active.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                shard.active.remove(&self.key);
            }
        }
    }
}

/// The controller ConfigMap's block lists (ingress-nginx: `deny` at `http` level, `if
/// ($block_ua) { return 403; }` in every server): 403 when the client, its `User-Agent` or
/// its `Referer` is listed; 503 when a list could not be read (fails closed).
pub fn blocked(block: &Blocklist, client: IpAddr, headers: &HeaderMap) -> Result<(), ProxyError> {
    if block.broken {
        return Err(ProxyError::Unavailable(
            crate::routing::Unavailable::AccessControlUnsupported,
        ));
    }
    let listed = |patterns: &crate::routing::limits::Patterns, name| {
        !patterns.is_empty()
            && patterns.matches(headers.get(name).map_or(&b""[..], |v| v.as_bytes()))
    };
    if Cidr::any_contains(&block.cidrs, client)
        || listed(&block.user_agents, http::header::USER_AGENT)
        || listed(&block.referers, http::header::REFERER)
    {
        return Err(ProxyError::Forbidden);
    }
    Ok(())
}

/// An Ingress's limits and source ranges for one request from `client`. A limited request is
/// answered with the ConfigMap's status (503 by default), a denied address with 403. A
/// request counted by `limit-connections` returns its guard, to be held until the response
/// has ended.
pub fn check(
    limiter: &Arc<Limiter>,
    access: &Access,
    client: IpAddr,
) -> Result<Option<Box<ConnGuard>>, ProxyError> {
    let mut guard = None;
    if let Some(limits) = access
        .limits
        .as_ref()
        .filter(|l| !Cidr::any_contains(&l.allowlist, client))
    {
        if !limiter.admit(limits, client, limiter.now()) {
            return Err(ProxyError::Limited(status(limits.req_status)));
        }
        if let Some(max) = limits.connections {
            let held = limiter
                .enter(limits.zone, client, max)
                .ok_or_else(|| ProxyError::Limited(status(limits.conn_status)))?;
            // Boxed: the request's record carries one pointer, not the guard.
            guard = Some(Box::new(held));
        }
    }
    if let Some(ranges) = &access.ranges {
        if !ranges.permits(client) {
            return Err(ProxyError::Forbidden);
        }
    }
    Ok(guard)
}

/// nginx's `limit_rate` / `limit_rate_after` on one response body: after `after` bytes, at
/// most `bytes_per_second` (nginx allows `rate × (seconds since the start + 1)` beyond
/// `after`, so the first second's worth goes at once). Frames larger than what may go now are
/// split; the body waits on a timer, never blocks a thread.
pub fn throttle(bandwidth: Bandwidth, body: ProxyBody) -> ProxyBody {
    Throttled {
        inner: body,
        bandwidth,
        sent: 0,
        start: tokio::time::Instant::now(),
        held: None,
        sleep: None,
    }
    .boxed()
}

struct Throttled {
    inner: ProxyBody,
    bandwidth: Bandwidth,
    sent: u64,
    start: tokio::time::Instant,
    /// The rest of a frame that could not all go yet.
    held: Option<Bytes>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Throttled {
    /// Bytes that may go now (`u64::MAX` before the limit applies).
    fn allowance(&self) -> u64 {
        let Bandwidth {
            bytes_per_second: rate,
            after,
        } = self.bandwidth;
        if self.sent < after {
            return u64::MAX;
        }
        let elapsed = self.start.elapsed().as_millis();
        let allowed = u128::from(rate) * (elapsed + 1000) / 1000;
        let limited = u128::from(self.sent - after);
        u64::try_from(allowed.saturating_sub(limited)).unwrap_or(u64::MAX)
    }

    /// When `bytes` more will be allowed.
    fn when(&self, bytes: u64) -> tokio::time::Instant {
        let Bandwidth {
            bytes_per_second: rate,
            after,
        } = self.bandwidth;
        let needed = u128::from(self.sent.saturating_sub(after)) + u128::from(bytes);
        let ms = (needed * 1000)
            .div_ceil(u128::from(rate.max(1)))
            .saturating_sub(1000);
        self.start + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}

impl Body for Throttled {
    type Data = Bytes;
    type Error = super::BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, super::BodyError>>> {
        let this = &mut *self;
        loop {
            if let Some(sleep) = this.sleep.as_mut() {
                std::task::ready!(sleep.as_mut().poll(cx));
                this.sleep = None;
            }
            let mut data = match this.held.take() {
                Some(data) => data,
                None => match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => data,
                        // Trailers go as they come.
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    },
                    other => return Poll::Ready(other),
                },
            };
            if data.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            let allowance = this.allowance();
            // A quarter second's worth at least, so a slow rate is not sent byte by byte.
            let want = (data.len() as u64).min((this.bandwidth.bytes_per_second / 4).max(1));
            if allowance < want {
                let at = this.when(want);
                this.held = Some(data);
                this.sleep = Some(Box::pin(tokio::time::sleep_until(at)));
                continue;
            }
            // Before `after`, only up to it goes unthrottled.
            let until_after = this.bandwidth.after.saturating_sub(this.sent);
            let now = if until_after > 0 {
                until_after
            } else {
                allowance
            };
            let len = data.len() as u64;
            if len > now {
                let rest = data.split_off(usize::try_from(now).unwrap_or(usize::MAX));
                this.held = Some(rest);
            }
            this.sent += data.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rps: Option<u64>, rpm: Option<u64>, multiplier: u64) -> RateLimits {
        let rate = |per_minute, limit: u64| Rate {
            per_minute,
            burst: limit * multiplier,
        };
        RateLimits {
            zone: 7,
            rps: rps.map(|n| rate(n * 60, n)),
            rpm: rpm.map(|n| rate(n, n)),
            connections: None,
            allowlist: Vec::new(),
            req_status: 503,
            conn_status: 503,
        }
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(n))
    }

    /// Admitted requests among `count` sent `every` ms apart from `start`.
    fn admitted(l: &Limiter, limits: &RateLimits, start: u64, every: u64, count: u64) -> u64 {
        (0..count)
            .filter(|i| l.admit(limits, ip(1), start + i * every))
            .count() as u64
    }

    #[test]
    fn burst_is_limit_times_multiplier_plus_one_at_once() {
        // nginx: `rate=5r/s burst=25 nodelay` admits 1 + 25 requests at the same instant.
        let l = Limiter::default();
        assert_eq!(admitted(&l, &limits(Some(5), None, 5), 0, 0, 100), 26);
        // burst 0 (`limit-burst-multiplier: 0`): one at a time, then one per 200 ms.
        let l = Limiter::default();
        let z = limits(Some(5), None, 0);
        assert_eq!(admitted(&l, &z, 0, 0, 10), 1);
        assert!(!l.admit(&z, ip(1), 199));
        assert!(l.admit(&z, ip(1), 200));
    }

    #[test]
    fn rate_is_kept_over_time_with_a_simulated_clock() {
        // 1,000 requests per second for 10 s against `limit-rps: 100`: the burst (500), then
        // 100 per second.
        let l = Limiter::default();
        let n = admitted(&l, &limits(Some(100), None, 5), 0, 1, 10_000);
        assert!((1_490..=1_502).contains(&n), "{n}");
    }

    #[test]
    fn rpm_and_rps_both_apply_and_a_refusal_costs_nothing() {
        let l = Limiter::default();
        // 60 per minute with burst 0: one per second, even though rps would allow more.
        let z = limits(Some(10), Some(60), 0);
        assert!(l.admit(&z, ip(1), 0));
        assert!(!l.admit(&z, ip(1), 500));
        assert!(l.admit(&z, ip(1), 1_000));
        assert!(!l.admit(&z, ip(1), 1_999));
        assert!(l.admit(&z, ip(1), 2_000));
    }

    #[test]
    fn zones_and_addresses_are_separate() {
        let l = Limiter::default();
        let a = limits(Some(1), None, 0);
        let b = RateLimits {
            zone: 8,
            ..a.clone()
        };
        assert!(l.admit(&a, ip(1), 0));
        assert!(!l.admit(&a, ip(1), 0));
        assert!(l.admit(&b, ip(1), 0));
        assert!(l.admit(&a, ip(2), 0));
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_distinct_addresses() {
        let capacity = 8_192;
        let l = Limiter::with_capacity(capacity);
        let z = limits(Some(1), None, 5);
        for n in 0..100_000u32 {
            // Every address comes once, all within the same second: nothing has drained.
            assert!(l.admit(&z, ip(n), u64::from(n) / 100));
            if n % 1_000 == 0 {
                assert!(l.states() <= capacity, "{} states after {n}", l.states());
            }
        }
        assert!(l.states() <= capacity);
        assert!(
            l.states() >= capacity / 2,
            "eviction keeps most: {}",
            l.states()
        );
        // The most recent address is still limited (its state survived).
        for _ in 0..5 {
            l.admit(&z, ip(99_999), 1_000);
        }
        assert!(!l.admit(&z, ip(99_999), 1_000));
    }

    #[test]
    fn connections_are_counted_until_the_guard_drops() {
        let l = Arc::new(Limiter::default());
        let a = l.enter(1, ip(1), 2).unwrap();
        let b = l.enter(1, ip(1), 2).unwrap();
        assert!(l.enter(1, ip(1), 2).is_none());
        assert!(l.enter(1, ip(2), 2).is_some(), "per address");
        drop(a);
        let c = l.enter(1, ip(1), 2).unwrap();
        drop((b, c));
        assert_eq!(l.in_progress(), 0);
    }

    /// `limit-rate: 1` (1 KiB/s) after `limit-rate-after: 2` (2 KiB) on a 10 KiB body: the
    /// first 2 KiB and the first second's KiB at once, the other 7 KiB one per second (on
    /// tokio's paused clock: no wall-clock time is measured).
    #[tokio::test(start_paused = true)]
    async fn limit_rate_paces_the_body_after_limit_rate_after() {
        let bandwidth = Bandwidth {
            bytes_per_second: 1024,
            after: 2048,
        };
        let chunks: Vec<Result<Frame<Bytes>, crate::proxy::BodyError>> = (0..5)
            .map(|_| Ok(Frame::data(Bytes::from(vec![b'x'; 2048]))))
            .collect();
        let inner = http_body_util::StreamBody::new(futures_util::stream::iter(chunks)).boxed();
        let start = tokio::time::Instant::now();
        let mut body = throttle(bandwidth, inner);
        let mut got = 0usize;
        let mut at_once = 0usize;
        while let Some(frame) = body.frame().await {
            let n = frame.unwrap().into_data().unwrap().len();
            got += n;
            if start.elapsed().is_zero() {
                at_once += n;
            }
        }
        assert_eq!(got, 10 * 1024);
        assert_eq!(at_once, 3 * 1024);
        let secs = start.elapsed().as_secs_f64();
        assert!((6.9..=7.1).contains(&secs), "{secs}");
    }

    #[test]
    fn allowlisted_addresses_are_not_limited_but_ranges_still_apply() {
        let l = Arc::new(Limiter::default());
        let mut z = limits(Some(1), None, 0);
        z.allowlist = vec!["10.0.0.0/8".parse().unwrap()];
        let access = Access {
            ranges: Some(crate::routing::limits::SourceRanges {
                deny: vec!["10.9.0.0/16".parse().unwrap()],
                allow: Vec::new(),
            }),
            limits: Some(z),
            bandwidth: None,
        };
        let inside: IpAddr = "10.1.2.3".parse().unwrap();
        let outside: IpAddr = "11.1.2.3".parse().unwrap();
        for _ in 0..5 {
            assert!(check(&l, &access, inside).is_ok());
        }
        assert!(check(&l, &access, outside).is_ok());
        assert!(matches!(
            check(&l, &access, outside),
            Err(ProxyError::Limited(s)) if s == StatusCode::SERVICE_UNAVAILABLE
        ));
        assert!(matches!(
            check(&l, &access, "10.9.0.1".parse().unwrap()),
            Err(ProxyError::Forbidden)
        ));
    }
}
