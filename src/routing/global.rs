//! Global settings: the controller ConfigMap's keys (`--configmap`, `ingress-nginx.md` §4),
//! parsed once at translate time (`translate/configmap.rs`) and published with the table, so
//! the proxy reads them per request or per connection from the same `Published` as its routes.
//!
//! Knows neither kube nor hyper: values are already typed. A key that overlaps a flag is an
//! `Option` here: `None` means the ConfigMap does not set it and the flag applies.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// Everything the controller ConfigMap sets; `Global::default()` is ingress-nginx's defaults
/// (its `configmap.md`), which apply when no ConfigMap is named or it is missing.
#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    /// The ConfigMap's `data` as read, for the parsers of keys other modules own
    /// (`add-headers`, compression, log format): see [`Global::data`].
    data: BTreeMap<String, String>,
    /// Who may tell us the client address and the original scheme, host and port.
    pub forwarded: ForwardedHeaders,
    /// `generate-request-id`: add `X-Request-ID` when the request has none.
    pub generate_request_id: bool,
    /// `hsts*`: the `Strict-Transport-Security` value sent on HTTPS responses; `None` is off.
    /// Bytes, so the proxy makes a header value of it per response without copying.
    pub hsts: Option<bytes::Bytes>,
    /// `server-tokens`: accepted; Portico always sends `Server: portico`, which has no version
    /// to hide (docs/decisions.md).
    pub server_tokens: bool,
    /// `ssl-redirect`: overrides `--ssl-redirect` when set.
    pub ssl_redirect: Option<bool>,
    /// `force-ssl-redirect`: redirect plain HTTP to HTTPS on every route, TLS or not.
    pub force_ssl_redirect: bool,
    /// `http-redirect-code`: the status of the HTTPS and www redirects (301, 302, 307, 308).
    pub http_redirect_code: u16,
    /// `use-port-in-redirects`: write the HTTPS port into the HTTPS redirect's `Location`.
    pub use_port_in_redirects: bool,
    /// `proxy-body-size` in bytes (`0` is no limit); overrides `--max-body-size` when set.
    pub proxy_body_size: Option<u64>,
    /// `proxy-connect-timeout`; overrides `--proxy-connect-timeout` when set.
    pub proxy_connect_timeout: Option<Duration>,
    /// `proxy-read-timeout`; overrides `--proxy-read-timeout` when set.
    pub proxy_read_timeout: Option<Duration>,
    /// `proxy-send-timeout`; overrides `--upstream-send-timeout` when set.
    pub proxy_send_timeout: Option<Duration>,
    /// `proxy-next-upstream` (issue 14); `None`: ingress-nginx's default `error timeout`.
    pub proxy_next_upstream: Option<super::NextUpstream>,
    /// `proxy-next-upstream-timeout`; `Some(ZERO)` and `None`: no limit.
    pub proxy_next_upstream_timeout: Option<Duration>,
    /// `proxy-next-upstream-tries`; overrides `--proxy-next-upstream-tries` when set.
    pub proxy_next_upstream_tries: Option<u32>,
    /// `retry-non-idempotent`: every location's conditions get `non_idempotent`.
    pub retry_non_idempotent: bool,
    /// `proxy-http-version: "1.0"`: HTTP/1.0 to HTTP/1.x upstreams.
    pub proxy_http10: Option<bool>,
    /// `proxy-request-buffering`: `Some(false)`: stream request bodies; `None`: `on`.
    pub proxy_request_buffering: Option<bool>,
    /// `large-client-header-buffers` (`4 8k`): the request head may not exceed number × size.
    pub large_client_header_buffers: Option<HeaderBuffers>,
    /// `keep-alive`: how long an idle client connection stays open (overrides
    /// `--client-idle-timeout` for new connections); `Some(ZERO)` turns keep-alive off.
    pub keep_alive: Option<Duration>,
    /// `keep-alive-requests`: HTTP/1 requests served on one client connection before it is
    /// closed; `None` is no limit.
    pub keep_alive_requests: Option<u64>,
    /// `upstream-keepalive-*`: the keep-alive pool of upstream connections.
    pub upstream_keepalive: UpstreamKeepalive,
    /// `use-proxy-protocol`: expect a PROXY protocol header on every accepted connection.
    pub use_proxy_protocol: Option<bool>,
    /// `default-ssl-certificate` (`namespace/name`); overrides the flag when set.
    pub default_ssl_certificate: Option<(String, String)>,
    /// `use-gzip`, `enable-brotli` and their keys; `None` when both are off (the default), so
    /// the proxy's per-request check is one `Option`.
    pub compression: Option<std::sync::Arc<super::compression::CompressionSettings>>,
    /// `log-format-upstream` (with `log-format-escape-json`/`-none`); `None`: Portico's own
    /// access log format.
    pub log_format: Option<std::sync::Arc<super::log_format::LogTemplate>>,
    /// `add-headers`: response headers of every answer (`translate/custom_headers.rs`).
    pub add_headers: super::HeaderList,
    /// `proxy-set-headers`: request headers of every upstream request.
    pub proxy_set_headers: super::HeaderList,
    /// `block-cidrs`, `block-user-agents`, `block-referers` (issue 14, `routing/limits.rs`);
    /// `None` when none is set, so the proxy's per-request check is one `Option`.
    pub block: Option<std::sync::Arc<super::limits::Blocklist>>,
    /// `load-balance`: the balancer of backends whose Service sets none; overrides
    /// `--load-balance` when set.
    pub load_balance: Option<super::Balance>,
    /// `ssl-protocols`, `ssl-ciphers`, `ssl-prefer-server-ciphers`, `ssl-session-*` (issue 15,
    /// `routing/tls_policy.rs`); `None`: the listener's built-in configuration.
    pub tls_policy: Option<std::sync::Arc<super::tls_policy::TlsPolicy>>,
}

/// The `upstream-keepalive-*` keys (nginx `keepalive`, `keepalive_timeout`,
/// `keepalive_requests` in each upstream block); `None` leaves the pool as the flags set it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamKeepalive {
    /// `upstream-keepalive-connections`: idle connections kept per endpoint and worker; `0`
    /// keeps none (every upstream connection closes after its response).
    pub connections: Option<usize>,
    /// `upstream-keepalive-timeout`: overrides `--upstream-idle-timeout`.
    pub timeout: Option<Duration>,
    /// `upstream-keepalive-requests`: requests sent on one upstream connection.
    pub requests: Option<u32>,
}

/// `large-client-header-buffers`: nginx's `number size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderBuffers {
    pub number: u32,
    pub size: u64,
}

impl HeaderBuffers {
    /// The largest request head this allows, in bytes.
    pub fn total(&self) -> u64 {
        u64::from(self.number).saturating_mul(self.size)
    }
}

/// The forwarded-header keys (ingress-nginx `configmap.md`: `use-forwarded-headers`,
/// `compute-full-forwarded-for`, `forwarded-for-header`, `proxy-real-ip-cidr`,
/// `enable-real-ip`).
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardedHeaders {
    /// Trust the incoming `X-Forwarded-*` headers of peers in `real_ip_from`.
    pub use_forwarded_headers: bool,
    /// Append the client address to the incoming `X-Forwarded-For` instead of replacing it.
    pub compute_full_forwarded_for: bool,
    /// The header the client address is read from, lowercase (default `x-forwarded-for`).
    pub forwarded_for_header: String,
    /// `proxy-real-ip-cidr`: the peers trusted for the headers above (default `0.0.0.0/0`).
    pub real_ip_from: Vec<Cidr>,
    /// `enable-real-ip`: take the client address from `forwarded_for_header` without trusting
    /// the other `X-Forwarded-*` headers.
    pub enable_real_ip: bool,
}

impl Default for ForwardedHeaders {
    fn default() -> Self {
        ForwardedHeaders {
            use_forwarded_headers: false,
            compute_full_forwarded_for: false,
            forwarded_for_header: "x-forwarded-for".to_string(),
            real_ip_from: vec![Cidr::ANY_V4],
            enable_real_ip: false,
        }
    }
}

/// ingress-nginx's `hsts-max-age` default: one year.
pub const HSTS_MAX_AGE: u64 = 31_536_000;

/// The `Strict-Transport-Security` value for these settings (nginx.tmpl's
/// `max-age={{ $all.Cfg.HSTSMaxAge }}{{ if $all.Cfg.HSTSIncludeSubdomains }}; includeSubDomains
/// {{ end }}{{ if $all.Cfg.HSTSPreload }}; preload{{ end }}`).
pub fn hsts_value(max_age: u64, include_subdomains: bool, preload: bool) -> bytes::Bytes {
    let mut value = format!("max-age={max_age}");
    if include_subdomains {
        value.push_str("; includeSubDomains");
    }
    if preload {
        value.push_str("; preload");
    }
    bytes::Bytes::from(value)
}

impl Default for Global {
    fn default() -> Self {
        Global {
            data: BTreeMap::new(),
            forwarded: ForwardedHeaders::default(),
            generate_request_id: true,
            hsts: Some(hsts_value(HSTS_MAX_AGE, true, false)),
            server_tokens: false,
            ssl_redirect: None,
            force_ssl_redirect: false,
            http_redirect_code: 308,
            use_port_in_redirects: false,
            proxy_body_size: None,
            proxy_connect_timeout: None,
            proxy_read_timeout: None,
            proxy_send_timeout: None,
            proxy_next_upstream: None,
            proxy_next_upstream_timeout: None,
            proxy_next_upstream_tries: None,
            retry_non_idempotent: false,
            proxy_http10: None,
            proxy_request_buffering: None,
            load_balance: None,
            large_client_header_buffers: None,
            keep_alive: None,
            keep_alive_requests: None,
            upstream_keepalive: UpstreamKeepalive::default(),
            use_proxy_protocol: None,
            default_ssl_certificate: None,
            compression: None,
            log_format: None,
            add_headers: Vec::new(),
            proxy_set_headers: Vec::new(),
            block: None,
            tls_policy: None,
        }
    }
}

impl Global {
    /// Defaults plus the ConfigMap's raw `data`; the parser fills in the typed fields.
    pub fn with_data(data: BTreeMap<String, String>) -> Self {
        Global {
            data,
            ..Global::default()
        }
    }

    /// The controller ConfigMap's `data` as read (empty without one). Other modules parse
    /// the keys they own from it (`from_configmap` functions), at translate time.
    pub fn data(&self) -> &BTreeMap<String, String> {
        &self.data
    }
}

/// An IP network, `10.0.0.0/8` or `2001:db8::/32`; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    /// `0.0.0.0/0`: ingress-nginx's `proxy-real-ip-cidr` default.
    pub const ANY_V4: Cidr = Cidr {
        net: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        bits: 0,
    };

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            // An IPv6 network never holds an IPv4 client (nginx compares families first); the
            // IPv4-mapped block itself was made IPv4 when parsed.
            _ => false,
        }
    }

    /// Whether `ip` is in any of `list`.
    pub fn any_contains(list: &[Cidr], ip: IpAddr) -> bool {
        list.iter().any(|c| c.contains(ip))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.bits)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
        };
        // `::ffff:10.0.0.0/104` is `10.0.0.0/8`: IPv4-mapped networks are kept as IPv4 (with
        // the prefix length counted in IPv4 bits) so IPv4 clients match them.
        match (net, net.to_canonical()) {
            (IpAddr::V6(_), IpAddr::V4(v4)) if bits >= 96 => Ok(Cidr {
                net: IpAddr::V4(v4),
                bits: bits - 96,
            }),
            _ => Ok(Cidr { net, bits }),
        }
    }
}

#[cfg(test)]
mod cidr_tests {
    use super::*;

    #[test]
    fn ipv4_mapped_networks_match_ipv4_clients() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mapped: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped, "10.0.0.0/8".parse().unwrap());
        assert!(mapped.contains(ip("10.1.2.3")));
        assert!(!mapped.contains(ip("11.1.2.3")), "not every address");
        assert!(mapped.contains(ip("::ffff:10.1.2.3")));
        let v4: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(v4.contains(ip("::ffff:10.9.9.9")));
        let wide: Cidr = "::/0".parse().unwrap();
        assert!(
            !wide.contains(ip("10.1.2.3")),
            "families differ, as in nginx"
        );
        let other: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(!other.contains(ip("10.1.2.3")));
    }
}
