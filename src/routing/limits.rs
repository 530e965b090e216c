//! Issue 14: who may use a route and how much. Source ranges, rate and connection limits of
//! one Ingress ([`Access`], in its [`super::Policy`]) and the controller ConfigMap's block lists
//! ([`Blocklist`], in [`super::Global`]); typed at translate time (`translate/limits.rs`),
//! enforced per request by `proxy/limits.rs`, whose limiter keeps the per-address state.
//!
//! Knows neither kube nor hyper.

use std::net::IpAddr;

use serde::Serialize;

use super::Cidr;

/// The source ranges and limits of one Ingress; `None` in the policy when it has none, so a
/// route without them pays one `Option` check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    /// `denylist-source-range` / `allowlist-source-range` (or the ConfigMap's defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranges: Option<SourceRanges>,
    /// `limit-rps`, `limit-rpm`, `limit-connections` and what tunes them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<RateLimits>,
    /// `limit-rate` / `limit-rate-after` (or the ConfigMap's): response bandwidth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
}

/// nginx's `limit_rate` and `limit_rate_after` (ingress-nginx writes both in KiB): each
/// response is sent at most at `bytes_per_second` once its first `after` bytes are out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bandwidth {
    pub bytes_per_second: u64,
    pub after: u64,
}

impl Access {
    /// One line for `portico explain`: who is refused, how much is allowed.
    pub fn describe(&self) -> String {
        let list = |l: &[Cidr]| {
            l.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if let Some(r) = &self.ranges {
            if !r.deny.is_empty() {
                parts.push(format!("403 for clients in {}", list(&r.deny)));
            }
            if !r.allow.is_empty() {
                parts.push(format!("403 for clients outside {}", list(&r.allow)));
            }
        }
        if let Some(l) = &self.limits {
            let except = if l.allowlist.is_empty() {
                String::new()
            } else {
                format!(" (not for {})", list(&l.allowlist))
            };
            for (name, rate) in [("minute", l.rpm), ("second", l.rps)] {
                if let Some(r) = rate {
                    let per = if name == "second" {
                        r.per_minute / 60
                    } else {
                        r.per_minute
                    };
                    parts.push(format!(
                        "{per} requests per {name} per client address, burst {}{except}: {} beyond",
                        r.burst, l.req_status
                    ));
                }
            }
            if let Some(n) = l.connections {
                parts.push(format!(
                    "{n} requests at once per client address{except}: {} beyond",
                    l.conn_status
                ));
            }
        }
        if let Some(b) = &self.bandwidth {
            parts.push(format!(
                "responses at {} KiB/s after {} KiB",
                b.bytes_per_second / 1024,
                b.after / 1024
            ));
        }
        parts.join("; ")
    }
}

/// nginx's `deny CIDR; ... allow CIDR; ... deny all;` as ingress-nginx writes them in a
/// location (nginx.tmpl: the denylist first, then the allowlist and `deny all`): the first
/// rule that matches decides.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Default)]
pub struct SourceRanges {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<Cidr>,
    /// Empty: everyone not denied; else only these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Cidr>,
}

impl SourceRanges {
    /// Whether `client` may use the route (IPv4-mapped IPv6 addresses match IPv4 ranges).
    pub fn permits(&self, client: IpAddr) -> bool {
        if Cidr::any_contains(&self.deny, client) {
            return false;
        }
        self.allow.is_empty() || Cidr::any_contains(&self.allow, client)
    }
}

/// One request rate (nginx `limit_req_zone ... rate=` with `limit_req ... burst=B nodelay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    /// Requests per minute (`limit-rps` × 60, or `limit-rpm`): nginx keeps rates in
    /// thousandths of a request per millisecond, which this holds exactly.
    pub per_minute: u64,
    /// Requests beyond the rate admitted at once (`limit × limit-burst-multiplier`).
    pub burst: u64,
}

/// The request and connection limits of one Ingress: one zone per Ingress, shared by all of
/// its paths, keyed by client address (ingress-nginx: `limit_req_zone $limit_ID
/// zone=NAMESPACE_NAME_UID_rps`, `$limit_ID` being `$binary_remote_addr`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimits {
    /// The zone: a hash of the Ingress's namespace, name and uid (its state survives a table
    /// swap, as an nginx zone survives a reload).
    #[serde(skip)]
    pub zone: u64,
    /// `limit-rps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rps: Option<Rate>,
    /// `limit-rpm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<Rate>,
    /// `limit-connections`: requests in progress at once per client address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
    /// `limit-allowlist`: addresses no limit applies to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowlist: Vec<Cidr>,
    /// The ConfigMap's `limit-req-status-code` (default 503).
    pub req_status: u16,
    /// The ConfigMap's `limit-conn-status-code` (default 503).
    pub conn_status: u16,
}

/// Exact strings and `~` / `~*` regexes of nginx's `map` (`block-user-agents`,
/// `block-referers`): an exact string matches the whole value, case-insensitively (nginx
/// lowercases map keys and values); a regex matches anywhere in it.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    /// Lowercase.
    pub exact: Vec<String>,
    /// `(?i)` added for `~*`.
    pub regexes: Option<regex::RegexSet>,
    /// The entries as written, for equality and `/debug`.
    pub source: Vec<String>,
}

impl PartialEq for Patterns {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Patterns {
    /// Whether `value` (empty when the header is absent, as nginx's `$http_` variable) is
    /// listed.
    pub fn matches(&self, value: &[u8]) -> bool {
        let text = String::from_utf8_lossy(value);
        if self.exact.iter().any(|e| e.eq_ignore_ascii_case(&text)) {
            return true;
        }
        self.regexes.as_ref().is_some_and(|set| set.is_match(&text))
    }

    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }
}

/// The controller ConfigMap's `block-cidrs`, `block-user-agents` and `block-referers`: 403 for
/// every request they match, on every route. `None` in [`super::Global`] when all are empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Blocklist {
    pub cidrs: Vec<Cidr>,
    pub user_agents: Patterns,
    pub referers: Patterns,
    /// An entry could not be parsed: every request answers 503 (fail closed, docs/decisions.md).
    pub broken: bool,
}
