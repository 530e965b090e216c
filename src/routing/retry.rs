//! When a failed attempt goes to another endpoint: nginx's `proxy_next_upstream` conditions
//! (ingress-nginx's `proxy-next-upstream` annotation and ConfigMap key), typed once at
//! translate time as a bit set; the proxy tests one bit per failure (`proxy/service.rs`).

use serde::Serialize;

/// A set of `proxy-next-upstream` conditions. `off` is the empty set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NextUpstream(u16);

/// The condition names in bit order.
const NAMES: [&str; 11] = [
    "error",
    "timeout",
    "invalid_header",
    "http_500",
    "http_502",
    "http_503",
    "http_504",
    "http_403",
    "http_404",
    "http_429",
    "non_idempotent",
];

impl NextUpstream {
    /// Connect failure, or a reset/closed connection before the response head.
    pub const ERROR: NextUpstream = NextUpstream(1);
    /// Connect timeout, send timeout, or no response head within the read timeout.
    pub const TIMEOUT: NextUpstream = NextUpstream(1 << 1);
    /// A malformed response head (Portico cannot tell it from a reset: either bit retries both).
    pub const INVALID_HEADER: NextUpstream = NextUpstream(1 << 2);
    /// Methods that are not idempotent are retried too, after bytes were sent.
    pub const NON_IDEMPOTENT: NextUpstream = NextUpstream(1 << 10);
    /// `off`: no failure goes to another endpoint.
    pub const OFF: NextUpstream = NextUpstream(0);
    /// ingress-nginx's default (`proxy-next-upstream: "error timeout"`).
    pub const DEFAULT: NextUpstream = NextUpstream(0b11);
    /// The `http_*` bits.
    const STATUSES: u16 = 0b111_1111_1000;

    /// A space-separated list of condition names, or `off` (ingress-nginx's
    /// `validUpstreamAnnotation`); `None` when a word is not a condition or the list is empty.
    pub fn parse(value: &str) -> Option<NextUpstream> {
        let mut bits = 0u16;
        let mut any = false;
        for word in value.split_ascii_whitespace() {
            any = true;
            if word == "off" {
                continue;
            }
            let i = NAMES.iter().position(|n| *n == word)?;
            bits |= 1 << i;
        }
        any.then_some(NextUpstream(bits))
    }

    /// Whether any condition of `other` is in the set.
    pub fn any(self, other: NextUpstream) -> bool {
        self.0 & other.0 != 0
    }

    /// The set with `other`'s conditions added.
    pub fn with(self, other: NextUpstream) -> NextUpstream {
        NextUpstream(self.0 | other.0)
    }

    /// Whether an answer with this status goes to the next endpoint.
    pub fn retries_status(self, status: u16) -> bool {
        if self.0 & Self::STATUSES == 0 {
            return false;
        }
        let bit = match status {
            500 => 3,
            502 => 4,
            503 => 5,
            504 => 6,
            403 => 7,
            404 => 8,
            429 => 9,
            _ => return false,
        };
        self.0 & (1 << bit) != 0
    }
}

impl Default for NextUpstream {
    fn default() -> Self {
        NextUpstream::DEFAULT
    }
}

impl std::fmt::Display for NextUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words: Vec<&str> = NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect();
        if words.is_empty() {
            f.write_str("off")
        } else {
            f.write_str(&words.join(" "))
        }
    }
}

impl Serialize for NextUpstream {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_as_ingress_nginx_lists_them() {
        let n = NextUpstream::parse("error timeout http_502 non_idempotent").unwrap();
        assert!(n.any(NextUpstream::ERROR));
        assert!(n.any(NextUpstream::NON_IDEMPOTENT));
        assert!(n.retries_status(502));
        assert!(!n.retries_status(503));
        assert_eq!(n.to_string(), "error timeout http_502 non_idempotent");
        assert_eq!(NextUpstream::parse("off").unwrap().to_string(), "off");
        assert!(!NextUpstream::parse("off")
            .unwrap()
            .any(NextUpstream::DEFAULT));
        assert_eq!(
            NextUpstream::parse("error  timeout"),
            Some(NextUpstream::DEFAULT)
        );
        assert_eq!(NextUpstream::parse("http_501"), None);
        assert_eq!(NextUpstream::parse(" "), None);
        assert!(
            NextUpstream::parse("http_403 http_404 http_429 http_500 http_503 http_504")
                .is_some_and(|n| [403, 404, 429, 500, 503, 504]
                    .iter()
                    .all(|s| n.retries_status(*s)))
        );
    }
}
