//! Endpoint choice (spec §4.3) and passive health: round-robin or peak-EWMA with
//! power-of-two-choices, skipping endpoints ejected after connect failures.
//!
//! Balancer state lives here, outside the immutable table: per-endpoint state keyed by
//! endpoint address, and each backend's round-robin position keyed by its [`BackendRef`]
//! (namespace, Service, port). A table swap builds new `Backend`s, but an endpoint that stays
//! keeps its latency estimate and its ejection, and a backend that stays continues its
//! rotation where it was. Both maps are `ArcSwap`s read without locks per request and copied
//! only when a key is seen for the first time; keys gone from every table are pruned when a
//! map grows (see `prune`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use crate::routing::{Backend, BackendRef, Balance, Target};

/// Keys come from the configuration (endpoint addresses, backend names), never from a client,
/// so foldhash's fast hasher is safe here; SipHash was ~900 instructions per request.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// First ejection; doubles per consecutive failure up to [`MAX_EJECTION`].
pub const BASE_EJECTION: Duration = Duration::from_secs(1);
pub const MAX_EJECTION: Duration = Duration::from_secs(30);
/// How fast the latency estimate forgets (linkerd2-proxy's default decay).
const DECAY: Duration = Duration::from_secs(10);
/// Estimate of an endpoint never measured: optimistic, so new endpoints get traffic.
const DEFAULT_RTT: Duration = Duration::from_millis(1);
/// Above this many tracked addresses, addresses unused for [`STALE`] are dropped.
const PRUNE_AT: usize = 4096;
const STALE: Duration = Duration::from_secs(600);

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Records a use at `now` (ns since `base()`) for pruning, which only asks whether the last use
/// is older than [`STALE`]: stored at most once a second, so every request of every worker does
/// not write the shared line (issue 12, scaling with cores).
fn touch(last_used: &AtomicU64, now: u64) {
    if now.saturating_sub(last_used.load(Ordering::Relaxed)) > TOUCH_EVERY_NANOS {
        last_used.store(now, Ordering::Relaxed);
    }
}
const TOUCH_EVERY_NANOS: u64 = 1_000_000_000;

fn nanos_since_base(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(base()).as_nanos()).unwrap_or(u64::MAX)
}

/// What the proxy knows about one endpoint address.
#[derive(Debug)]
pub struct Endpoint {
    /// Requests sent and not yet answered (response headers).
    in_flight: AtomicU32,
    /// Consecutive failures; 0 when healthy.
    failures: AtomicU32,
    /// Ejected until this many nanoseconds after `base()`; 0 when not ejected.
    ejected_until: AtomicU64,
    /// Last use, for pruning.
    last_used: AtomicU64,
    ewma: Mutex<Ewma>,
}

#[derive(Debug)]
struct Ewma {
    /// Estimated round-trip time in nanoseconds.
    cost: f64,
    at: Instant,
}

impl Endpoint {
    fn new(now: Instant) -> Self {
        Endpoint {
            in_flight: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            last_used: AtomicU64::new(nanos_since_base(now)),
            ewma: Mutex::new(Ewma {
                cost: DEFAULT_RTT.as_nanos() as f64,
                at: now,
            }),
        }
    }

    fn is_ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now
    }

    /// Peak-EWMA load: the decayed latency estimate times the outstanding requests plus one.
    fn load(&self, now: Instant) -> f64 {
        let ewma = self.ewma.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(ewma.at).as_secs_f64();
        let decay = (-elapsed / DECAY.as_secs_f64()).exp();
        let cost = ewma.cost * decay;
        cost * f64::from(self.in_flight.load(Ordering::Relaxed) + 1)
    }

    fn observe(&self, rtt: Duration, now: Instant) {
        let rtt = rtt.as_nanos() as f64;
        let mut ewma = self.ewma.lock().unwrap_or_else(|p| p.into_inner());
        if rtt > ewma.cost {
            // Peak: a slower sample takes effect at once.
            ewma.cost = rtt;
        } else {
            let elapsed = now.saturating_duration_since(ewma.at).as_secs_f64();
            let w = (-elapsed / DECAY.as_secs_f64()).exp();
            ewma.cost = ewma.cost * w + rtt * (1.0 - w);
        }
        ewma.at = now;
    }
}

/// One request's hold on an endpoint: counts it in flight until dropped.
pub struct Attempt {
    pub addr: SocketAddr,
    endpoint: Arc<Endpoint>,
    start: Instant,
    done: bool,
}

impl Attempt {
    /// Counts the request in flight on `endpoint` (the state of `addr`) from `now`.
    fn begin(addr: SocketAddr, endpoint: Arc<Endpoint>, now: Instant) -> Attempt {
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        Attempt {
            addr,
            endpoint,
            start: now,
            done: false,
        }
    }

    /// Response headers arrived: the endpoint is healthy and its latency is sampled.
    pub fn succeeded(self) {
        self.succeeded_at(Instant::now());
    }

    /// [`Attempt::succeeded`] with the clock the caller has just read (one read per response
    /// serves this and the upstream duration).
    pub fn succeeded_at(mut self, now: Instant) {
        self.endpoint.observe(now - self.start, now);
        // Loads first: a healthy endpoint's line is not written by every request of every
        // worker (issue 12, scaling).
        if self.endpoint.failures.load(Ordering::Relaxed) != 0 {
            self.endpoint.failures.store(0, Ordering::Relaxed);
        }
        if self.endpoint.ejected_until.load(Ordering::Relaxed) != 0 {
            self.endpoint.ejected_until.store(0, Ordering::Relaxed);
        }
        self.finish();
    }

    /// The endpoint failed before answering (connect failure, reset): eject it for a backoff
    /// that doubles with each consecutive failure. Returns the ejection time.
    pub fn failed(mut self) -> Duration {
        let failures = self.endpoint.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let shift = (failures - 1).min(5);
        let backoff = (BASE_EJECTION * (1u32 << shift)).min(MAX_EJECTION);
        let until = nanos_since_base(Instant::now() + backoff);
        self.endpoint.ejected_until.store(until, Ordering::Relaxed);
        self.finish();
        backoff
    }

    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        // Cancelled (client went away) or timed out: not the endpoint's fault, no sample.
        self.finish();
    }
}

/// One backend's round-robin position (spec §4.3).
#[derive(Debug)]
struct Rotation {
    next: AtomicUsize,
    /// Last use, for pruning.
    last_used: AtomicU64,
}

/// Per-endpoint and per-backend state shared by all listeners and all table versions.
#[derive(Debug, Default)]
pub struct Balancer {
    endpoints: ArcSwap<HashMap<SocketAddr, Arc<Endpoint>>>,
    rotations: ArcSwap<HashMap<BackendRef, Arc<Rotation>>>,
}

impl Balancer {
    /// The next round-robin position of the backend named `reference`. Keyed by the name, not
    /// by the `Backend` value, so the rotation continues across table swaps.
    fn next_position(&self, reference: &BackendRef, now: Instant) -> usize {
        let now_nanos = nanos_since_base(now);
        if let Some(r) = self.rotations.load().get(reference) {
            touch(&r.last_used, now_nanos);
            return r.next.fetch_add(1, Ordering::Relaxed);
        }
        let mut created = None;
        self.rotations.rcu(|map| {
            let mut map = HashMap::clone(map);
            if map.len() >= PRUNE_AT {
                let stale = u64::try_from(STALE.as_nanos()).unwrap_or(u64::MAX);
                map.retain(|_, r| {
                    now_nanos.saturating_sub(r.last_used.load(Ordering::Relaxed)) < stale
                });
            }
            let r = map
                .entry(reference.clone())
                .or_insert_with(|| {
                    Arc::new(Rotation {
                        next: AtomicUsize::new(0),
                        last_used: AtomicU64::new(now_nanos),
                    })
                })
                .clone();
            created = Some(r);
            map
        });
        created
            .expect("rcu ran the closure at least once")
            .next
            .fetch_add(1, Ordering::Relaxed)
    }

    fn endpoint(&self, addr: SocketAddr, now: Instant) -> Arc<Endpoint> {
        if let Some(e) = self.endpoints.load().get(&addr) {
            touch(&e.last_used, nanos_since_base(now));
            return e.clone();
        }
        let mut created = None;
        self.endpoints.rcu(|map| {
            let mut map = HashMap::clone(map);
            if map.len() >= PRUNE_AT {
                prune(&mut map, now);
            }
            let e = map
                .entry(addr)
                .or_insert_with(|| Arc::new(Endpoint::new(now)))
                .clone();
            created = Some(e);
            map
        });
        created.expect("rcu ran the closure at least once")
    }

    /// Chooses an endpoint of `backend` not in `tried`. Ejected endpoints are skipped while
    /// another is available; when every untried endpoint is ejected, one is tried anyway
    /// (better a likely failure than a certain 503). `None` when every endpoint was tried.
    pub fn pick(
        &self,
        backend: &Backend,
        balance: Balance,
        offset: usize,
        tried: &[SocketAddr],
    ) -> Option<Attempt> {
        let Target::Endpoints(all) = &backend.target else {
            return None;
        };
        let now = Instant::now();
        let now_nanos = nanos_since_base(now);
        let untried = |a: &SocketAddr| !tried.contains(a);
        let addr = match balance {
            Balance::RoundRobin => {
                let n = all.len();
                if n == 0 {
                    return None;
                }
                // One endpoint: no rotation to advance (every position is 0), so no shared
                // counter written per request.
                let start = if n == 1 {
                    0
                } else {
                    self.next_position(&backend.reference, now)
                        .wrapping_add(offset)
                };
                let order = (0..n).map(|i| all[start.wrapping_add(i) % n]);
                let mut fallback = None;
                let mut chosen = None;
                for a in order.filter(untried) {
                    let endpoint = self.endpoint(a, now);
                    if !endpoint.is_ejected(now_nanos) {
                        chosen = Some((a, endpoint));
                        break;
                    }
                    fallback.get_or_insert((a, endpoint));
                }
                // The state just looked up is the one counted in flight (no second lookup).
                let (addr, endpoint) = chosen.or(fallback)?;
                return Some(Attempt::begin(addr, endpoint, now));
            }
            Balance::Ewma => {
                let states: Vec<(SocketAddr, Arc<Endpoint>)> = all
                    .iter()
                    .copied()
                    .filter(untried)
                    .map(|a| (a, self.endpoint(a, now)))
                    .collect();
                let healthy: Vec<&(SocketAddr, Arc<Endpoint>)> = states
                    .iter()
                    .filter(|(_, e)| !e.is_ejected(now_nanos))
                    .collect();
                let pool: Vec<&(SocketAddr, Arc<Endpoint>)> = if healthy.is_empty() {
                    states.iter().collect()
                } else {
                    healthy
                };
                match pool.len() {
                    0 => return None,
                    1 => pool[0].0,
                    n => {
                        // Power of two choices: two distinct random candidates, the lighter wins.
                        let i = fastrand::usize(..n);
                        let j = (i + 1 + fastrand::usize(..n - 1)) % n;
                        let (a, b) = (pool[i], pool[j]);
                        if a.1.load(now) <= b.1.load(now) {
                            a.0
                        } else {
                            b.0
                        }
                    }
                }
            }
        };
        Some(Attempt::begin(addr, self.endpoint(addr, now), now))
    }

    /// An attempt on `addr`, chosen by the caller (request hashing and session affinity,
    /// `proxy/affinity.rs`), counted in flight like one from [`Balancer::pick`].
    pub fn attempt(&self, addr: SocketAddr) -> Attempt {
        let now = Instant::now();
        Attempt::begin(addr, self.endpoint(addr, now), now)
    }

    /// One load of the endpoint states, to ask about many endpoints of one pick
    /// (`proxy/affinity.rs` ranks every endpoint).
    pub fn health(&self) -> Health {
        Health {
            endpoints: self.endpoints.load(),
            now: nanos_since_base(Instant::now()),
        }
    }

    /// Whether `addr` is ejected now (for tests and /debug).
    pub fn is_ejected(&self, addr: SocketAddr) -> bool {
        self.endpoints
            .load()
            .get(&addr)
            .is_some_and(|e| e.is_ejected(nanos_since_base(Instant::now())))
    }
}

/// A snapshot of which endpoints are ejected (see [`Balancer::health`]); held for one pick.
pub struct Health {
    endpoints: arc_swap::Guard<Arc<HashMap<SocketAddr, Arc<Endpoint>>>>,
    now: u64,
}

impl Health {
    pub fn is_ejected(&self, addr: SocketAddr) -> bool {
        self.endpoints
            .get(&addr)
            .is_some_and(|e| e.is_ejected(self.now))
    }
}

/// Drops state unused for [`STALE`] that is neither in flight nor ejected.
fn prune(map: &mut HashMap<SocketAddr, Arc<Endpoint>>, now: Instant) {
    let now_nanos = nanos_since_base(now);
    let stale = u64::try_from(STALE.as_nanos()).unwrap_or(u64::MAX);
    map.retain(|_, e| {
        e.in_flight.load(Ordering::Relaxed) > 0
            || e.is_ejected(now_nanos)
            || now_nanos.saturating_sub(e.last_used.load(Ordering::Relaxed)) < stale
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{BackendRef, PortRef};

    fn backend(addrs: &[SocketAddr]) -> Backend {
        Backend::new(
            BackendRef::Service {
                namespace: "default".into(),
                name: "svc".into(),
                port: PortRef::Number(80),
            },
            Target::Endpoints(addrs.to_vec()),
        )
    }

    fn addrs() -> Vec<SocketAddr> {
        (1..=3)
            .map(|i| format!("10.0.0.{i}:80").parse().unwrap())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn ejected_endpoint_is_skipped_until_its_backoff_ends() {
        let b = Balancer::default();
        let all = addrs();
        let be = backend(&all);
        let first = b.pick(&be, Balance::RoundRobin, 0, &[]).unwrap();
        let bad = first.addr;
        assert_eq!(first.failed(), BASE_EJECTION);
        for _ in 0..10 {
            let a = b.pick(&be, Balance::RoundRobin, 0, &[]).unwrap();
            assert_ne!(a.addr, bad);
            a.succeeded();
        }
        tokio::time::advance(BASE_EJECTION + Duration::from_millis(1)).await;
        assert!(!b.is_ejected(bad));
        // Retries never go back to an endpoint this request already tried.
        let again = b.pick(&be, Balance::RoundRobin, 0, &[bad, all[0], all[1], all[2]]);
        assert!(again.is_none(), "every endpoint tried");
    }

    #[tokio::test(start_paused = true)]
    async fn state_survives_a_table_swap_for_endpoints_that_stay() {
        let b = Balancer::default();
        let all = addrs();
        let before = backend(&all);
        let bad = b.pick(&before, Balance::RoundRobin, 0, &[]).unwrap();
        let bad_addr = bad.addr;
        bad.failed();
        // A new table: new Backend values, one endpoint gone, one added, the bad one kept.
        let mut next: Vec<SocketAddr> = all.iter().copied().filter(|a| *a != all[2]).collect();
        if !next.contains(&bad_addr) {
            next.push(bad_addr);
        }
        next.push("10.0.0.9:80".parse().unwrap());
        let after = backend(&next);
        for _ in 0..10 {
            let a = b.pick(&after, Balance::RoundRobin, 0, &[]).unwrap();
            assert_ne!(a.addr, bad_addr, "ejection lost in the swap");
            a.succeeded();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn round_robin_visits_every_endpoint() {
        let b = Balancer::default();
        let endpoints: Vec<SocketAddr> = (1..=10)
            .map(|i| format!("127.0.0.{i}:80").parse().unwrap())
            .collect();
        let be = backend(&endpoints);
        let mut seen: Vec<SocketAddr> = (0..10)
            .map(|_| b.pick(&be, Balance::RoundRobin, 7, &[]).unwrap().addr)
            .collect();
        seen.sort();
        assert_eq!(seen, endpoints);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_pick_skips_the_failed_endpoint() {
        let b = Balancer::default();
        let all = addrs();
        let be = backend(&all[..2]);
        for _ in 0..4 {
            let a = b.pick(&be, Balance::RoundRobin, 0, &[all[0]]).unwrap();
            assert_eq!(a.addr, all[1]);
        }
    }

    /// Issue 11 item 2: a swap builds new `Backend` values for the same Service; the rotation
    /// continues rather than every backend starting over at its first endpoint.
    #[tokio::test(start_paused = true)]
    async fn rotation_continues_across_a_table_swap() {
        let b = Balancer::default();
        let all = addrs();
        let before = backend(&all);
        let first = b.pick(&before, Balance::RoundRobin, 0, &[]).unwrap().addr;
        // The next table: an equal but new Backend (as translate builds on every publish).
        let after = backend(&all);
        let second = b.pick(&after, Balance::RoundRobin, 0, &[]).unwrap().addr;
        assert_ne!(first, second, "rotation restarted on the swap");
        let third = b
            .pick(&backend(&all), Balance::RoundRobin, 0, &[])
            .unwrap()
            .addr;
        let mut seen = vec![first, second, third];
        seen.sort();
        assert_eq!(seen, all, "three swaps, three different endpoints");
    }

    #[tokio::test(start_paused = true)]
    async fn all_ejected_are_tried_anyway() {
        let b = Balancer::default();
        let all = addrs();
        let be = backend(&all);
        for _ in 0..3 {
            let tried: Vec<SocketAddr> = Vec::new();
            let a = b.pick(&be, Balance::RoundRobin, 0, &tried).unwrap();
            a.failed();
        }
        assert!(all.iter().all(|a| b.is_ejected(*a)));
        assert!(b.pick(&be, Balance::Ewma, 0, &[]).is_some());
        assert!(b.pick(&be, Balance::RoundRobin, 0, &[]).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_grows_with_consecutive_failures() {
        let b = Balancer::default();
        let one = [addrs()[0]];
        let be = backend(&one);
        let mut last = Duration::ZERO;
        for _ in 0..8 {
            let d = b.pick(&be, Balance::RoundRobin, 0, &[]).unwrap().failed();
            assert!(d >= last);
            last = d;
        }
        assert_eq!(last, MAX_EJECTION);
        b.pick(&be, Balance::RoundRobin, 0, &[])
            .unwrap()
            .succeeded();
        assert!(!b.is_ejected(one[0]));
    }

    #[tokio::test(start_paused = true)]
    async fn ewma_steers_away_from_a_slow_endpoint() {
        let b = Balancer::default();
        let all = addrs();
        let be = backend(&all);
        let slow = all[0];
        // Warm up: the slow endpoint answers in 500 ms, the others in 5 ms.
        for _ in 0..30 {
            let a = b.pick(&be, Balance::Ewma, 0, &[]).unwrap();
            let d = if a.addr == slow { 500 } else { 5 };
            tokio::time::advance(Duration::from_millis(d)).await;
            a.succeeded();
        }
        let mut to_slow = 0;
        for _ in 0..300 {
            let a = b.pick(&be, Balance::Ewma, 0, &[]).unwrap();
            if a.addr == slow {
                to_slow += 1;
            }
            let d = if a.addr == slow { 500 } else { 5 };
            tokio::time::advance(Duration::from_millis(d)).await;
            a.succeeded();
        }
        // Round-robin would send 100; P2C only picks it when both draws are the slow one,
        // which two distinct draws never are.
        assert!(to_slow < 10, "slow endpoint got {to_slow} of 300");
    }
}
