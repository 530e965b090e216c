//! Canary traffic shaping (ingress-nginx `canary-*` annotations), typed at translate time
//! (`translate::canary`) and carried by the main backend's [`Policy`](super::Policy): per
//! request the proxy asks [`Canary::takes`] whether the canary backend serves instead.
//!
//! The decision follows ingress-nginx's `rootfs/etc/nginx/lua/balancer.lua`
//! (`route_to_alternative_balancer`): the header first, then the cookie, then the weight.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use http::header::{HeaderName, COOKIE};
use http::HeaderMap;
use serde::Serialize;

use super::Backend;

/// What `canary-by-header` compares the header with.
#[derive(Debug, Clone)]
pub enum HeaderRule {
    /// Neither `-value` nor `-pattern`: `always` takes the canary, `never` the main backend,
    /// anything else falls through to the cookie and the weight.
    AlwaysNever,
    /// `canary-by-header-value`: this exact value takes the canary; others fall through.
    Value(Box<[u8]>),
    /// `canary-by-header-pattern` (unanchored, case-sensitive, as `ngx.re.match` without
    /// options): a match takes the canary; others fall through.
    Pattern(regex::Regex),
    /// A pattern that does not compile: ingress-nginx's Lua gets an error from `ngx.re.match`
    /// and keeps the main backend whenever the header is present (e2e `canary.go`, "should
    /// routes to mainline upstream when the given Regex causes error").
    Unusable,
}

impl PartialEq for HeaderRule {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (HeaderRule::AlwaysNever, HeaderRule::AlwaysNever)
            | (HeaderRule::Unusable, HeaderRule::Unusable) => true,
            (HeaderRule::Value(a), HeaderRule::Value(b)) => a == b,
            (HeaderRule::Pattern(a), HeaderRule::Pattern(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Eq for HeaderRule {}

/// `affinity-canary-behavior`: what cookie affinity (`affinity: cookie` on the main Ingress)
/// does to canary traffic. Stored here; the affinity cookie itself is read by the affinity
/// module (see `docs/decisions.md`, "Canary and cookie affinity").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum AffinityBehavior {
    /// ingress-nginx's default: the canary shares the main backend's affinity, so a client
    /// once sent to the canary stays there.
    #[default]
    Sticky,
    /// The canary keeps its own affinity settings; only the main backend pins clients.
    Legacy,
}

/// The traffic shaping of one canary Ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaping {
    /// `canary-by-header`, as a header name (case-insensitive, as nginx's `$http_*`).
    pub header: Option<HeaderName>,
    pub rule: HeaderRule,
    /// `canary-by-cookie`.
    pub cookie: Option<Box<str>>,
    /// `canary-weight`, already within `0..=total`.
    pub weight: u32,
    /// The total the Lua draws from: `canary-weight-total` when above 100, else 100.
    pub total: u32,
    pub affinity: AffinityBehavior,
}

impl Default for Shaping {
    fn default() -> Self {
        Shaping {
            header: None,
            rule: HeaderRule::AlwaysNever,
            cookie: None,
            weight: 0,
            total: 100,
            affinity: AffinityBehavior::Sticky,
        }
    }
}

impl Shaping {
    /// Whether a request with these headers goes to the canary: the header, then the cookie,
    /// then a weighted draw from a per-thread generator (no syscall, no lock).
    pub fn takes(&self, headers: &HeaderMap) -> bool {
        if let Some(name) = &self.header {
            if let Some(value) = header_value(headers, name) {
                match &self.rule {
                    HeaderRule::Value(want) => {
                        if *value == **want {
                            return true;
                        }
                    }
                    HeaderRule::Pattern(re) => {
                        if re.is_match(&String::from_utf8_lossy(&value)) {
                            return true;
                        }
                    }
                    HeaderRule::Unusable => return false,
                    HeaderRule::AlwaysNever => match &*value {
                        b"always" => return true,
                        b"never" => return false,
                        _ => {}
                    },
                }
            }
        }
        if let Some(name) = &self.cookie {
            match cookie_value(headers, name) {
                Some(b"always") => return true,
                Some(b"never") => return false,
                _ => {}
            }
        }
        self.draw(fastrand::u32(1..=self.total.max(1)))
    }

    /// One line for `explain` and `check`: what sends a request to the canary, in order.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(header) = &self.header {
            parts.push(match &self.rule {
                HeaderRule::AlwaysNever => format!("header {header}: always/never"),
                HeaderRule::Value(v) => {
                    format!("header {header}: {:?}", String::from_utf8_lossy(v))
                }
                HeaderRule::Pattern(p) => format!("header {header} matching {:?}", p.as_str()),
                HeaderRule::Unusable => format!("header {header} present: never"),
            });
        }
        if let Some(cookie) = &self.cookie {
            parts.push(format!("cookie {cookie}: always/never"));
        }
        let otherwise = if parts.is_empty() { "" } else { "else " };
        parts.push(format!("{otherwise}weight {}/{}", self.weight, self.total));
        parts.join(", ")
    }

    /// `math.random(total) <= weight`, with the number drawn given.
    pub fn draw(&self, drawn: u32) -> bool {
        drawn <= self.weight
    }
}

/// nginx's `$http_NAME`: the value, or the values joined with `", "` when the header is
/// repeated (nginx ≥ 1.23).
fn header_value<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<Cow<'h, [u8]>> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?;
    let Some(second) = all.next() else {
        return Some(Cow::Borrowed(first.as_bytes()));
    };
    let mut joined = first.as_bytes().to_vec();
    for value in std::iter::once(second).chain(all) {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(value.as_bytes());
    }
    Some(Cow::Owned(joined))
}

/// nginx's `$cookie_NAME`: the value of the first cookie with that name (compared without
/// regard to case, as nginx does) in the `Cookie` headers.
fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    for header in headers.get_all(COOKIE) {
        for pair in header.as_bytes().split(|&b| b == b';' || b == b',') {
            let pair = pair.trim_ascii_start();
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if pair[..eq]
                .trim_ascii_end()
                .eq_ignore_ascii_case(name.as_bytes())
            {
                return Some(pair[eq + 1..].trim_ascii());
            }
        }
    }
    None
}

/// A canary attached to a main backend: who declared it, where its traffic goes, and when.
#[derive(Debug, Clone)]
pub struct Canary {
    /// The canary Ingress, `namespace/name`.
    pub ingress: String,
    /// The canary Service's backend under the main route's policy (ingress-nginx swaps only
    /// the upstream: every location setting stays the main Ingress's).
    pub backend: Arc<Backend>,
    pub shaping: Arc<Shaping>,
}

impl Canary {
    /// Whether this request goes to the canary (ingress-nginx precedence: header, cookie,
    /// weight).
    #[inline]
    pub fn takes(&self, headers: &HeaderMap) -> bool {
        self.shaping.takes(headers)
    }
}

impl PartialEq for Canary {
    fn eq(&self, other: &Self) -> bool {
        self.ingress == other.ingress
            && (Arc::ptr_eq(&self.backend, &other.backend) || self.backend == other.backend)
            && (Arc::ptr_eq(&self.shaping, &other.shaping) || self.shaping == other.shaping)
    }
}

impl Eq for Canary {}

impl Hash for Canary {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.ingress.hash(state);
        self.backend.reference.hash(state);
        self.shaping.weight.hash(state);
    }
}

impl Serialize for Canary {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        /// What `/debug/routes` shows of a canary.
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct View<'a> {
            ingress: &'a str,
            backend: String,
            target: &'a super::Target,
            #[serde(skip_serializing_if = "Option::is_none")]
            header: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            header_rule: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            cookie: Option<&'a str>,
            weight: String,
            affinity_canary_behavior: AffinityBehavior,
        }
        let shaping = &self.shaping;
        View {
            ingress: &self.ingress,
            backend: self.backend.reference.to_string(),
            target: &self.backend.target,
            header: shaping.header.as_ref().map(HeaderName::as_str),
            header_rule: match &shaping.rule {
                HeaderRule::AlwaysNever => None,
                HeaderRule::Value(v) => Some(format!("value {:?}", String::from_utf8_lossy(v))),
                HeaderRule::Pattern(p) => Some(format!("pattern {:?}", p.as_str())),
                HeaderRule::Unusable => Some("unusable pattern: the main backend".to_string()),
            },
            cookie: shaping.cookie.as_deref(),
            weight: format!("{}/{}", shaping.weight, shaping.total),
            affinity_canary_behavior: shaping.affinity,
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    fn by_header(rule: HeaderRule) -> Shaping {
        Shaping {
            header: Some(HeaderName::from_static("canarybyheader")),
            rule,
            cookie: Some("CanaryByCookie".into()),
            ..Shaping::default()
        }
    }

    #[test]
    fn header_always_and_never_decide_before_the_cookie() {
        let s = by_header(HeaderRule::AlwaysNever);
        assert!(s.takes(&headers(&[("CanaryByHeader", "always")])));
        assert!(!s.takes(&headers(&[
            ("CanaryByHeader", "never"),
            ("cookie", "CanaryByCookie=always")
        ])));
        // Anything else falls through to the cookie.
        assert!(s.takes(&headers(&[
            ("CanaryByHeader", "badheadervalue"),
            ("cookie", "CanaryByCookie=always")
        ])));
        assert!(!s.takes(&headers(&[("CanaryByHeader", "badheadervalue")])));
    }

    #[test]
    fn header_value_is_exact_and_replaces_always() {
        let s = by_header(HeaderRule::Value(Box::from(&b"DoCanary"[..])));
        assert!(s.takes(&headers(&[("CanaryByHeader", "DoCanary")])));
        assert!(!s.takes(&headers(&[("CanaryByHeader", "always")])));
        assert!(!s.takes(&headers(&[("CanaryByHeader", "docanary")])));
        // e2e canary.go "when canaried by header with value and cookie".
        assert!(s.takes(&headers(&[
            ("CanaryByHeader", "otherheadervalue"),
            ("cookie", "a=b; CanaryByCookie=always")
        ])));
    }

    #[test]
    fn header_pattern_searches_case_sensitively() {
        let s = by_header(HeaderRule::Pattern(
            regex::Regex::new("^Do[A-Z][a-z]+y$").unwrap(),
        ));
        assert!(s.takes(&headers(&[("CanaryByHeader", "DoCanary")])));
        assert!(!s.takes(&headers(&[("CanaryByHeader", "Docanary")])));
        let unanchored = by_header(HeaderRule::Pattern(regex::Regex::new("nary").unwrap()));
        assert!(unanchored.takes(&headers(&[("CanaryByHeader", "DoCanary")])));
    }

    #[test]
    fn unusable_pattern_keeps_the_main_backend_when_the_header_is_sent() {
        let s = by_header(HeaderRule::Unusable);
        assert!(!s.takes(&headers(&[
            ("CanaryByHeader", "DoCanary"),
            ("cookie", "CanaryByCookie=always")
        ])));
        assert!(s.takes(&headers(&[("cookie", "CanaryByCookie=always")])));
    }

    #[test]
    fn cookie_always_never_then_weight() {
        let s = Shaping {
            cookie: Some("Canary-By-Cookie".into()),
            weight: 100,
            ..Shaping::default()
        };
        assert!(!s.takes(&headers(&[("cookie", "Canary-By-Cookie=never")])));
        assert!(s.takes(&headers(&[("cookie", "Canary-By-Cookie=badcookievalue")])));
        assert!(s.takes(&headers(&[])));
    }

    #[test]
    fn repeated_headers_are_joined_as_nginx_does() {
        let s = by_header(HeaderRule::Value(Box::from(&b"a, b"[..])));
        assert!(s.takes(&headers(&[
            ("CanaryByHeader", "a"),
            ("CanaryByHeader", "b")
        ])));
    }

    #[test]
    fn draw_follows_the_lua_comparison() {
        let s = Shaping {
            weight: 30,
            ..Shaping::default()
        };
        assert!(s.draw(1));
        assert!(s.draw(30));
        assert!(!s.draw(31));
        let none = Shaping::default();
        assert!(!none.draw(1));
    }

    #[test]
    fn weight_30_lands_near_30_percent() {
        let s = Shaping {
            weight: 30,
            ..Shaping::default()
        };
        let empty = HeaderMap::new();
        let hits = (0..10_000).filter(|_| s.takes(&empty)).count();
        assert!((2_500..=3_500).contains(&hits), "{hits} of 10000");
    }
}
