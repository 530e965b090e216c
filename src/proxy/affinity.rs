//! Endpoint choice by request hash (`upstream-hash-by`) and session cookie (`affinity:
//! cookie`), issue 14: ingress-nginx's `chash`, `chashsubset`, `sticky_balanced` and
//! `sticky_persistent` balancers (`rootfs/etc/nginx/lua/balancer/*.lua`). Used by
//! `service.rs` only for backends whose [`Traffic`] is set; everything else goes straight to
//! [`Balancer::pick`].
//!
//! Hashing is rendezvous (highest random weight) hashing over the endpoint addresses: each
//! endpoint scores `mix(key ^ hash(endpoint))` and the highest eligible score wins. When an
//! endpoint leaves, only the keys it held move (1/n of them); when one joins, it takes 1/(n+1).
//! Endpoints this request already tried, and ejected ones while another is left, are passed
//! over, so passive health and retries keep working (`balance.rs`).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Request};

use super::balance::{Attempt, Balancer, Health};
use crate::routing::traffic::{
    mix, stable_hash, Affinity, HashBy, HashPiece, SameSite, StableHasher,
};
use crate::routing::{Backend, Balance, Decision, Target, Traffic};

/// How many random session keys a new balanced session tries before giving up (ingress-nginx
/// `sticky_balanced.lua` `MAX_UPSTREAM_CHECKS_COUNT`).
const MAX_KEY_TRIES: usize = 20;

/// The path a cookie issued on this route gets when `session-cookie-path` is not set
/// (nginx's `location_path`); `None` without affinity, so other routes copy nothing.
pub(super) fn location(decision: &Decision<'_>) -> Option<String> {
    let affinity = decision
        .backend()?
        .policy
        .traffic
        .as_ref()?
        .affinity
        .as_ref()?;
    if !affinity.issues || affinity.path.is_some() {
        return None;
    }
    decision.route().map(|r| r.path.clone())
}

/// One request's hash key and cookie, and the cookie to issue once an endpoint is chosen.
pub struct Sticky<'a> {
    traffic: &'a Traffic,
    /// The `upstream-hash-by` key of this request.
    key: Option<u64>,
    /// The first part (`KEY` of `KEY|BACKEND`) of the affinity cookie the request carries.
    session: Option<String>,
    /// `Set-Cookie` for a new session, sent with the response.
    pub issued: Option<HeaderValue>,
    https: bool,
    location: Option<String>,
    samesite_none_ok: bool,
}

/// What the request looks like to `upstream-hash-by` variables.
pub struct RequestView<'r> {
    /// `$host`: lower case, without port.
    pub host: &'r str,
    /// `$uri`: the request path as sent (before `rewrite-target`).
    pub path: &'r str,
    pub client_ip: IpAddr,
    pub https: bool,
}

impl<'a> Sticky<'a> {
    pub fn new<B>(
        traffic: &'a Traffic,
        req: &Request<B>,
        view: &RequestView<'_>,
        location: Option<String>,
    ) -> Self {
        let key = traffic.hash_by.as_ref().map(|h| hash_key(h, req, view));
        let (session, samesite_none_ok) = match &traffic.affinity {
            Some(a) => (
                cookie(req.headers(), &a.name).map(|v| match v.split_once('|') {
                    Some((key, _)) => key.to_string(),
                    None => v.to_string(),
                }),
                !a.conditional_samesite_none || samesite_none_compatible(req.headers()),
            ),
            None => (None, true),
        };
        Sticky {
            traffic,
            key,
            session,
            issued: None,
            https: view.https,
            location,
            samesite_none_ok,
        }
    }

    /// The endpoint for the next attempt; `tried` holds the ones this request already used.
    pub fn pick(
        &mut self,
        balancer: &Balancer,
        backend: &Backend,
        balance: Balance,
        offset: usize,
        tried: &[SocketAddr],
    ) -> Option<Attempt> {
        let Target::Endpoints(all) = &backend.target else {
            return None;
        };
        if all.is_empty() {
            return None;
        }
        if let Some(affinity) = &self.traffic.affinity {
            return self.pick_session(affinity, balancer, all, tried);
        }
        if let (Some(hash_by), Some(key)) = (&self.traffic.hash_by, self.key) {
            let health = balancer.health();
            let addr = match hash_by.subset {
                None => rendezvous(key, all, |a| eligible(&health, tried, a)),
                Some(size) => subset_pick(key, size, all, |a| eligible(&health, tried, a)),
            }?;
            drop(health);
            return Some(balancer.attempt(addr));
        }
        balancer.pick(backend, balance, offset, tried)
    }

    /// ingress-nginx `sticky.lua` `balance`: the cookie's endpoint while it exists (and, with
    /// `session-cookie-change-on-failure`, while it has not failed this request and is not
    /// ejected); otherwise a new session, whose cookie is issued on the routes that issue it.
    fn pick_session(
        &mut self,
        affinity: &Affinity,
        balancer: &Balancer,
        all: &[SocketAddr],
        tried: &[SocketAddr],
    ) -> Option<Attempt> {
        let health = balancer.health();
        if let Some(addr) = self
            .session
            .as_deref()
            .and_then(|s| session_endpoint(affinity, s, all))
        {
            let keep =
                !affinity.change_on_failure || (!tried.contains(&addr) && !health.is_ejected(addr));
            if keep {
                return Some(balancer.attempt(addr));
            }
        }
        let (addr, key) = if affinity.persistent {
            let addr = random_eligible(all, |a| eligible(&health, tried, a))?;
            (addr, endpoint_key(affinity, addr))
        } else {
            new_balanced_session(all, |a| eligible(&health, tried, a))?
        };
        if affinity.issues {
            self.issued = set_cookie(
                affinity,
                &key,
                self.location.as_deref(),
                self.https,
                self.samesite_none_ok,
                SystemTime::now(),
            );
        }
        self.session = Some(key);
        Some(balancer.attempt(addr))
    }
}

/// The endpoint for the next attempt: by hash or session when the backend has [`Traffic`],
/// else the balancer's own choice.
pub(super) fn pick(
    sticky: Option<&mut Sticky<'_>>,
    balancer: &Balancer,
    backend: &Backend,
    balance: Balance,
    offset: usize,
    tried: &[SocketAddr],
) -> Option<Attempt> {
    match sticky {
        Some(s) => s.pick(balancer, backend, balance, offset, tried),
        None => balancer.pick(backend, balance, offset, tried),
    }
}

/// How eligible an endpoint is: 2 untried and healthy, 1 untried but ejected, 0 tried.
fn eligible(health: &Health, tried: &[SocketAddr], addr: SocketAddr) -> u8 {
    if tried.contains(&addr) {
        0
    } else if health.is_ejected(addr) {
        1
    } else {
        2
    }
}

/// The stable hash of an endpoint address (its octets and port).
fn addr_hash(addr: SocketAddr) -> u64 {
    let mut h = StableHasher::default();
    match addr.ip() {
        IpAddr::V4(ip) => h.write(&ip.octets()),
        IpAddr::V6(ip) => h.write(&ip.octets()),
    }
    h.write(&addr.port().to_be_bytes());
    h.finish()
}

/// Rendezvous hashing: of the most eligible endpoints, the one scoring highest for `key`.
pub fn rendezvous(
    key: u64,
    all: &[SocketAddr],
    eligible: impl Fn(SocketAddr) -> u8,
) -> Option<SocketAddr> {
    all.iter()
        .map(|a| (eligible(*a), mix(key ^ addr_hash(*a)), *a))
        .filter(|(e, _, _)| *e > 0)
        .max_by_key(|(e, score, _)| (*e, *score))
        .map(|(_, _, a)| a)
}

/// ingress-nginx `chashsubset.lua`: the endpoints, in order, cut into sets of `size` (the
/// last one filled up from the start); the key picks a set by rendezvous hashing over the set
/// numbers, and a random eligible endpoint of it serves. A set with nothing eligible passes
/// the request to the next best set.
pub fn subset_pick(
    key: u64,
    size: usize,
    all: &[SocketAddr],
    eligible: impl Fn(SocketAddr) -> u8,
) -> Option<SocketAddr> {
    let size = size.max(1);
    let sets = all.len().div_ceil(size);
    let mut ranked: Vec<(u64, usize)> = (0..sets)
        .map(|i| (mix(key ^ stable_hash(&(i as u64).to_be_bytes())), i))
        .collect();
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    for want in [2, 1] {
        for (_, set) in &ranked {
            let members = (0..size).map(|j| all[(set * size + j) % all.len()]);
            let usable: Vec<SocketAddr> = members.filter(|a| eligible(*a) >= want).collect();
            if !usable.is_empty() {
                return Some(usable[fastrand::usize(..usable.len())]);
            }
        }
    }
    None
}

fn random_eligible(all: &[SocketAddr], eligible: impl Fn(SocketAddr) -> u8) -> Option<SocketAddr> {
    for want in [2, 1] {
        let usable: Vec<SocketAddr> = all
            .iter()
            .copied()
            .filter(|a| eligible(*a) >= want)
            .collect();
        if !usable.is_empty() {
            return Some(usable[fastrand::usize(..usable.len())]);
        }
    }
    None
}

/// A new balanced session: a random key whose endpoint (over all endpoints, as later
/// requests will look it up) is eligible; one that is only ejected if nothing better turns up.
fn new_balanced_session(
    all: &[SocketAddr],
    eligible: impl Fn(SocketAddr) -> u8,
) -> Option<(SocketAddr, String)> {
    let mut fallback = None;
    for _ in 0..MAX_KEY_TRIES {
        let key = format!("{:016x}", fastrand::u64(..));
        let addr = rendezvous(stable_hash(key.as_bytes()), all, |_| 1)?;
        match eligible(addr) {
            2 => return Some((addr, key)),
            1 => {
                fallback.get_or_insert((addr, key));
            }
            _ => {}
        }
    }
    fallback
}

/// The endpoint a session key names, if it is still one of `all`.
fn session_endpoint(affinity: &Affinity, session: &str, all: &[SocketAddr]) -> Option<SocketAddr> {
    if affinity.persistent {
        // ingress-nginx `util/nodemap.lua`: a salted hash of each endpoint, never the address.
        let want = u64::from_str_radix(session, 16)
            .ok()
            .filter(|_| session.len() == 16)?;
        all.iter()
            .copied()
            .find(|a| endpoint_hash(affinity, *a) == want)
    } else {
        if session.is_empty() {
            return None;
        }
        rendezvous(stable_hash(session.as_bytes()), all, |_| 1)
    }
}

/// A persistent session's key: a hash of the endpoint salted with the backend, so the cookie
/// names no address.
fn endpoint_key(affinity: &Affinity, addr: SocketAddr) -> String {
    format!("{:016x}", endpoint_hash(affinity, addr))
}

fn endpoint_hash(affinity: &Affinity, addr: SocketAddr) -> u64 {
    let mut h = StableHasher::default();
    h.write(affinity.backend_key.as_bytes());
    h.write(&addr_hash(addr).to_be_bytes());
    h.finish()
}

/// `Set-Cookie: NAME=KEY|BACKEND; Path; Domain; Expires; Max-Age; Secure; HttpOnly; SameSite`
/// (ingress-nginx `sticky.lua` `set_cookie`).
pub fn set_cookie(
    affinity: &Affinity,
    key: &str,
    location: Option<&str>,
    https: bool,
    samesite_none_ok: bool,
    now: SystemTime,
) -> Option<HeaderValue> {
    let mut text = format!("{}={}|{}", affinity.name, key, affinity.backend_key);
    if let Some(path) = affinity.path.as_deref().or(location) {
        text.push_str("; Path=");
        text.push_str(path);
    }
    if let Some(domain) = &affinity.domain {
        text.push_str("; Domain=");
        text.push_str(domain);
    }
    if let Some(secs) = affinity.expires {
        let at = if secs >= 0 {
            now.checked_add(Duration::from_secs(secs.unsigned_abs()))
        } else {
            now.checked_sub(Duration::from_secs(secs.unsigned_abs()))
        };
        if let Some(at) = at {
            text.push_str("; Expires=");
            text.push_str(&httpdate::fmt_http_date(at));
        }
    }
    if let Some(secs) = affinity.max_age {
        text.push_str(&format!("; Max-Age={secs}"));
    }
    // ingress-nginx sends `Secure` over HTTPS whatever the annotation says (e2e affinity.go
    // "should set secure in cookie with provided false annotation on https").
    if affinity.secure || https {
        text.push_str("; Secure");
    }
    text.push_str("; HttpOnly");
    match affinity.samesite {
        Some(SameSite::None) if !samesite_none_ok => {}
        Some(s) => {
            text.push_str("; SameSite=");
            text.push_str(s.as_str());
        }
        None => {}
    }
    // A location path from a regex route may hold bytes a header cannot: then no cookie.
    HeaderValue::from_str(&text).ok()
}

/// ingress-nginx `util/same_site.lua`: user agents that mishandle `SameSite=None`.
fn samesite_none_compatible(headers: &HeaderMap) -> bool {
    let Some(ua) = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let incompatible = ua.contains("Chrome/4")
        || ua.contains("Chrome/5")
        || ua.contains("Chrome/6")
        || ua.contains("CPU iPhone OS 12")
        || ua.contains("iPad; CPU OS 12")
        || (ua.contains("Macintosh")
            && ua.contains("Intel Mac OS X 10_14")
            && ua.contains("Safari")
            && !ua.contains("Chrome"));
    !incompatible
}

/// The value of cookie `name` in the request's `Cookie` headers (the first one).
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The value of query parameter `name` (the first one), as sent.
fn arg<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `upstream-hash-by` key of a request: its pieces fed to a stable hash, never a string.
fn hash_key<B>(hash_by: &HashBy, req: &Request<B>, view: &RequestView<'_>) -> u64 {
    let mut h = StableHasher::default();
    let query = req.uri().query().unwrap_or("");
    for piece in &hash_by.pieces {
        match piece {
            HashPiece::Literal(text) => h.write(text.as_bytes()),
            HashPiece::RequestUri => h.write(
                req.uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
                    .as_bytes(),
            ),
            HashPiece::Uri => h.write(view.path.as_bytes()),
            HashPiece::Args => h.write(query.as_bytes()),
            HashPiece::Host => h.write(view.host.as_bytes()),
            HashPiece::RemoteAddr => match view.client_ip.to_canonical() {
                IpAddr::V4(ip) => h.write(&ip.octets()),
                IpAddr::V6(ip) => h.write(&ip.octets()),
            },
            HashPiece::Scheme => h.write(if view.https { b"https" } else { b"http" }),
            HashPiece::Method => h.write(req.method().as_str().as_bytes()),
            HashPiece::Header(name) => {
                if let Some(v) = req.headers().get(name.as_str()) {
                    h.write(v.as_bytes());
                }
            }
            HashPiece::Cookie(name) => {
                if let Some(v) = cookie(req.headers(), name) {
                    h.write(v.as_bytes());
                }
            }
            HashPiece::Arg(name) => {
                if let Some(v) = arg(query, name) {
                    h.write(v.as_bytes());
                }
            }
        }
    }
    h.finish()
}

/// Whether the request carries an affinity cookie issued for this backend (`KEY|BACKEND`
/// with this backend's key): ingress-nginx `sticky.lua` `is_affinitized`, which its
/// `affinity-canary-behavior: sticky` uses to keep a session on the canary or off it.
pub fn affinitized(traffic: &Traffic, headers: &HeaderMap) -> bool {
    let Some(affinity) = &traffic.affinity else {
        return false;
    };
    cookie(headers, &affinity.name)
        .and_then(|v| v.split_once('|'))
        .is_some_and(|(_, backend)| backend == affinity.backend_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(n: usize) -> Vec<SocketAddr> {
        (1..=n)
            .map(|i| {
                format!("10.0.{}.{}:8080", i / 200, i % 200 + 1)
                    .parse()
                    .unwrap()
            })
            .collect()
    }

    /// Issue 14: the share of keys that move when one of ten endpoints leaves is about 1/10
    /// (only the keys it held); round-robin-like modulo hashing would move about 9/10.
    #[test]
    fn one_of_ten_endpoints_leaving_moves_about_a_tenth_of_the_keys() {
        let all = endpoints(10);
        let fewer: Vec<SocketAddr> = all.iter().copied().filter(|a| *a != all[3]).collect();
        let keys = 10_000u64;
        let mut moved = 0;
        for k in 0..keys {
            let key = stable_hash(format!("/path/{k}").as_bytes());
            let before = rendezvous(key, &all, |_| 2).unwrap();
            let after = rendezvous(key, &fewer, |_| 2).unwrap();
            if before != after {
                assert_eq!(before, all[3], "a key moved off an endpoint that stayed");
                moved += 1;
            }
        }
        let share = moved as f64 / keys as f64;
        assert!(share > 0.05 && share < 0.15, "moved {share}");
    }

    #[test]
    fn keys_spread_over_every_endpoint() {
        let all = endpoints(10);
        let mut counts = std::collections::HashMap::new();
        for k in 0..10_000u64 {
            let key = stable_hash(&k.to_be_bytes());
            *counts
                .entry(rendezvous(key, &all, |_| 2).unwrap())
                .or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 10);
        assert!(counts.values().all(|c| *c > 700 && *c < 1300), "{counts:?}");
    }

    #[test]
    fn tried_and_ejected_endpoints_are_passed_over() {
        let all = endpoints(5);
        let key = stable_hash(b"/x");
        let first = rendezvous(key, &all, |_| 2).unwrap();
        let second = rendezvous(key, &all, |a| if a == first { 0 } else { 2 }).unwrap();
        assert_ne!(first, second);
        // Ejected ones only when nothing healthy is left.
        let third = rendezvous(key, &all, |a| if a == first { 2 } else { 1 }).unwrap();
        assert_eq!(third, first);
        assert!(rendezvous(key, &all, |_| 0).is_none());
    }

    #[test]
    fn a_subset_serves_one_key() {
        let all = endpoints(6);
        let key = stable_hash(b"/same");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.insert(subset_pick(key, 3, &all, |_| 2).unwrap());
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
        // Sets are consecutive endpoints, as chashsubset builds them.
        let mut seen: Vec<_> = seen.into_iter().collect();
        seen.sort();
        assert!(seen == all[..3] || seen == all[3..], "{seen:?}");
    }

    fn affinity(persistent: bool) -> Affinity {
        Affinity {
            persistent,
            name: "SERVERID".into(),
            path: None,
            domain: None,
            samesite: None,
            conditional_samesite_none: false,
            secure: false,
            max_age: None,
            expires: None,
            change_on_failure: false,
            issues: true,
            backend_key: "0123456789abcdef".into(),
        }
    }

    #[test]
    fn a_persistent_session_key_finds_its_endpoint_and_hides_the_address() {
        let a = affinity(true);
        let all = endpoints(5);
        for addr in &all {
            let key = endpoint_key(&a, *addr);
            assert!(!key.contains(&addr.ip().to_string()));
            assert_eq!(session_endpoint(&a, &key, &all), Some(*addr));
        }
        assert_eq!(session_endpoint(&a, "nope", &all), None);
    }

    #[test]
    fn a_balanced_session_key_stays_on_its_endpoint() {
        let a = affinity(false);
        let all = endpoints(5);
        let (addr, key) = new_balanced_session(&all, |_| 2).unwrap();
        for _ in 0..5 {
            assert_eq!(session_endpoint(&a, &key, &all), Some(addr));
        }
    }

    #[test]
    fn cookie_attributes_follow_ingress_nginx() {
        let mut a = affinity(false);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let plain = set_cookie(&a, "k", Some("/something"), false, true, now).unwrap();
        assert_eq!(
            plain.to_str().unwrap(),
            "SERVERID=k|0123456789abcdef; Path=/something; HttpOnly"
        );
        // Secure over HTTPS even without the annotation.
        let https = set_cookie(&a, "k", None, true, true, now).unwrap();
        assert!(https.to_str().unwrap().contains("; Secure"));
        a.domain = Some("foo.bar".into());
        a.expires = Some(172_800);
        a.max_age = Some(259_200);
        a.samesite = Some(SameSite::None);
        a.path = Some("/foo/bar".into());
        let full = set_cookie(&a, "k", Some("/ignored"), false, true, now).unwrap();
        let full = full.to_str().unwrap();
        assert!(full.contains("; Path=/foo/bar"), "{full}");
        assert!(full.contains("; Domain=foo.bar"), "{full}");
        assert!(
            full.contains("; Expires=Thu, 16 Nov 2023 22:13:20 GMT"),
            "{full}"
        );
        assert!(full.contains("; Max-Age=259200"), "{full}");
        assert!(full.contains("; SameSite=None"), "{full}");
        let old = set_cookie(&a, "k", None, false, false, now).unwrap();
        assert!(!old.to_str().unwrap().contains("SameSite"));
    }

    #[test]
    fn old_browsers_do_not_get_samesite_none() {
        let mut h = HeaderMap::new();
        assert!(samesite_none_compatible(&h));
        h.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static("Mozilla/5.0 (iPhone; CPU iPhone OS 12_0 like Mac OS X)"),
        );
        assert!(!samesite_none_compatible(&h));
    }

    #[test]
    fn cookies_and_args_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            HeaderValue::from_static("a=1; SERVERID=x|y"),
        );
        assert_eq!(cookie(&h, "SERVERID"), Some("x|y"));
        assert_eq!(cookie(&h, "serverid"), None);
        assert_eq!(arg("a=1&id=7&id=8", "id"), Some("7"));
        assert_eq!(arg("flag&b=2", "flag"), Some(""));
        let traffic = Traffic {
            hash_by: None,
            affinity: Some(Affinity {
                backend_key: "y".into(),
                ..affinity(false)
            }),
        };
        assert!(affinitized(&traffic, &h));
    }
}
