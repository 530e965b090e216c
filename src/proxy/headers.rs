//! Header rules of spec §6: hop-by-hop removal in both directions, the `X-Forwarded-*` family
//! added upstream, and the size of a request head.

use std::net::IpAddr;

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::Request;

use super::Scheme;
use crate::routing::{Cidr, ForwardedHeaders};

/// Fixed hop-by-hop headers (spec §6.1), besides `Connection` itself, as static names (a
/// `&str` key is parsed on every lookup).
/// `HTTP2-Settings` belongs to the h2c upgrade (RFC 9113 §3.2 of its predecessor, RFC 7540
/// §3.2.1: connection-specific), which is never tunnelled, so it is dropped even when a client
/// leaves it out of `Connection`.
static HOP_BY_HOP: [HeaderName; 9] = [
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TRANSFER_ENCODING,
    TE,
    HeaderName::from_static("http2-settings"),
    TRAILER,
    // Last: kept for an upgrade being proxied (`remove_hop_by_hop`).
    UPGRADE,
];

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_ORIGINAL_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-original-forwarded-for");
pub(crate) static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Whether `Connection` lists `token` (comma-separated, case-insensitive).
fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Which framing and connection headers a request head carries, from one pass over its names
/// (comparing a standard name is a byte compare): a lookup of an absent header still costs a
/// hash and a probe, and most requests carry none of these.
#[derive(Debug, Clone, Copy, Default)]
pub struct Framing {
    pub connection: bool,
    pub transfer_encoding: bool,
    pub content_length: bool,
}

impl Framing {
    pub fn of(headers: &HeaderMap) -> Framing {
        let mut framing = Framing::default();
        for name in headers.keys() {
            if *name == CONNECTION {
                framing.connection = true;
            } else if *name == TRANSFER_ENCODING {
                framing.transfer_encoding = true;
            } else if *name == CONTENT_LENGTH {
                framing.content_length = true;
            }
        }
        framing
    }
}

/// Whether the request's `TE` is exactly `trailers` (what gRPC sends).
pub fn te_is_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

/// Whether a request's `Transfer-Encoding` is anything but exactly `chunked` (RFC 9112 §6.1).
/// hyper decodes the chunked framing and then the header is dropped as hop-by-hop, so another
/// coding (`gzip, chunked`) would reach the backend silently removed; such requests get 501,
/// as RFC 9112 §6.1 asks of a server that does not understand a transfer coding. hyper itself
/// answers 400 when `chunked` is not the final coding.
pub fn unsupported_transfer_coding(headers: &HeaderMap) -> bool {
    let mut codings = 0;
    for value in headers.get_all(TRANSFER_ENCODING) {
        let Ok(value) = value.to_str() else {
            return true;
        };
        for coding in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            codings += 1;
            if codings > 1 || !coding.eq_ignore_ascii_case("chunked") {
                return true;
            }
        }
    }
    false
}

/// The protocol names of an `Upgrade` field (RFC 9110 §7.8: `name[/version]`, comma-separated).
fn upgrade_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The name part of an `Upgrade` token (`websocket` of `websocket/13`).
fn protocol_name(token: &str) -> &str {
    token.split('/').next().unwrap_or(token).trim()
}

/// Whether `token` names one of the `allowed` protocols (names compare case-insensitively).
fn is_allowed(token: &str, allowed: &[String]) -> bool {
    let name = protocol_name(token);
    allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// The `Upgrade` value to forward if this request is a protocol upgrade Portico tunnels
/// (spec §6.1, issue 10 item 1): HTTP/1.1 with `Connection: upgrade` and an `Upgrade` naming
/// at least one protocol in `allowed` (`--allowed-upgrades`, WebSocket by default). Only the
/// allowed protocols of the offer are kept, so a client offering `h2c, websocket` lets the
/// backend choose WebSocket and nothing else. `None`: forward as a plain request, without
/// `Upgrade` (an `h2c` upgrade would otherwise hand the client a raw HTTP/2 connection to the
/// backend, past routing and every per-request control).
pub fn allowed_upgrade<B>(req: &Request<B>, allowed: &[String]) -> Option<HeaderValue> {
    if req.version() != http::Version::HTTP_11 || !connection_has(req.headers(), "upgrade") {
        return None;
    }
    let kept: Vec<&str> = upgrade_tokens(req.headers())
        .filter(|t| is_allowed(t, allowed))
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join(", ")).ok()
}

/// Whether a backend's `101` switches to a protocol the request offered (RFC 9110 §15.2.2:
/// the server must name the protocol it switches to, one of the client's). Anything else is
/// refused rather than tunnelled.
pub fn upgrade_accepted(offered: &HeaderValue, response: &HeaderMap) -> bool {
    let offered: Vec<&str> = offered
        .to_str()
        .unwrap_or("")
        .split(',')
        .map(|t| protocol_name(t.trim()))
        .collect();
    let mut chosen = upgrade_tokens(response).map(protocol_name);
    match (chosen.next(), chosen.next()) {
        (Some(name), None) => offered.iter().any(|o| o.eq_ignore_ascii_case(name)),
        _ => false,
    }
}

/// Removes hop-by-hop headers (spec §6.1, §6.3): `Connection` and every header it names, plus
/// the fixed list. With `keep_upgrade` the `Upgrade` header survives and `Connection: upgrade`
/// is put back, for a protocol upgrade being proxied.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    HopByHop::of(headers).remove(headers, keep_upgrade);
}

/// Which hop-by-hop headers a head carries (and whether it has `Date`), from one pass over its
/// names, each classified by a `match` on its text.
///
/// Most heads carry none of them (a keep-alive HTTP/1.1 request has no `Connection`; a
/// response often only `Connection: keep-alive`), so only those found are looked up and
/// removed; a response is finished from the same pass (`finish_headers`).
#[derive(Debug, Clone, Copy, Default)]
pub struct HopByHop {
    connection: bool,
    /// Bit `i`: `HOP_BY_HOP[i]` is present.
    fixed: u16,
    /// `Date` is present (for a response).
    pub date: bool,
}

impl HopByHop {
    pub fn of(headers: &HeaderMap) -> HopByHop {
        let mut found = HopByHop::default();
        for name in headers.keys() {
            match hop_by_hop_index(name) {
                Some(CONNECTION_INDEX) => found.connection = true,
                Some(DATE_INDEX) => found.date = true,
                Some(i) => found.fixed |= 1 << i,
                None => {}
            }
        }
        found
    }

    /// The head has `Transfer-Encoding`.
    pub fn transfer_encoding(&self) -> bool {
        self.fixed & (1 << TRANSFER_ENCODING_INDEX) != 0
    }

    /// Removes what [`HopByHop::of`] found (see [`remove_hop_by_hop`]).
    pub fn remove(self, headers: &mut HeaderMap, keep_upgrade: bool) {
        let mut fixed = self.fixed;
        if keep_upgrade {
            fixed &= !(1 << (HOP_BY_HOP.len() - 1));
        }
        if self.connection {
            remove_connection(headers, keep_upgrade);
        }
        // A name `Connection` also listed may be gone already; removing it again finds nothing.
        if fixed != 0 {
            for (i, name) in HOP_BY_HOP.iter().enumerate() {
                if fixed & (1 << i) != 0 {
                    headers.remove(name);
                }
            }
        }
        if keep_upgrade {
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        }
    }
}

/// [`hop_by_hop_index`]'s position of `Transfer-Encoding` in [`HOP_BY_HOP`].
const TRANSFER_ENCODING_INDEX: usize = 4;
/// [`hop_by_hop_index`]'s answer for `Date` (not hop-by-hop: [`HopByHop`] notes it).
const DATE_INDEX: usize = HOP_BY_HOP.len() + 1;

/// [`hop_by_hop_index`]'s answer for `Connection` itself.
const CONNECTION_INDEX: usize = HOP_BY_HOP.len();

/// The position of `name` in [`HOP_BY_HOP`], [`CONNECTION_INDEX`] for `Connection`,
/// [`DATE_INDEX`] for `Date`, `None` for every other header. Names are lowercase in a `HeaderMap`; comparing the text is a few
/// instructions where a `HeaderName` comparison per fixed name cost ~150 per header.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "keep-alive" => 0,
        "proxy-connection" => 1,
        "proxy-authenticate" => 2,
        "proxy-authorization" => 3,
        "transfer-encoding" => 4,
        "te" => 5,
        "http2-settings" => 6,
        "trailer" => 7,
        "upgrade" => 8,
        "connection" => CONNECTION_INDEX,
        "date" => DATE_INDEX,
        _ => return None,
    })
}

/// Removes `Connection` and every header its values name (`Upgrade` survives with
/// `keep_upgrade`). A named header is removed only when the head has it (`Connection:
/// keep-alive` usually names nothing present), so no header name is parsed for nothing.
fn remove_connection(headers: &mut HeaderMap, keep_upgrade: bool) {
    let remove_named = |headers: &mut HeaderMap, value: &HeaderValue| {
        for token in value.to_str().ok().into_iter().flat_map(|v| v.split(',')) {
            let token = token.trim();
            if token.is_empty() || (keep_upgrade && token.eq_ignore_ascii_case("upgrade")) {
                continue;
            }
            if headers
                .keys()
                .any(|k| k.as_str().eq_ignore_ascii_case(token))
            {
                // A `&str` key is matched case-insensitively.
                headers.remove(token);
            }
        }
    };
    // Values are shared bytes: a clone is a reference count, not a copy.
    let (first, more) = {
        let mut values = headers.get_all(CONNECTION).iter();
        (values.next().cloned(), values.next().is_some())
    };
    if more {
        let values: Vec<HeaderValue> = headers.get_all(CONNECTION).iter().cloned().collect();
        headers.remove(CONNECTION);
        for value in &values {
            remove_named(headers, value);
        }
    } else if let Some(value) = first {
        headers.remove(CONNECTION);
        // `Connection: keep-alive` (most responses) names the `Keep-Alive` header, which the
        // fixed list removes anyway: no pass over the names for it.
        if !value.as_bytes().eq_ignore_ascii_case(b"keep-alive") {
            remove_named(headers, &value);
        }
    }
}

/// What the proxy knows about the client side of one request, for spec §6.2.
pub struct Forwarded<'a> {
    /// The peer: the socket's, or the client a PROXY header named.
    pub client_ip: IpAddr,
    /// The peer is in `--trusted-proxies`: its `X-Forwarded-*` are kept and its
    /// `X-Forwarded-For` extended (as before the controller ConfigMap existed).
    pub trusted: bool,
    /// `--trusted-proxies`, which also count as trusted hops when the client address is taken
    /// from `X-Forwarded-For`.
    pub trusted_proxies: &'a [Cidr],
    pub scheme: Scheme,
    /// The original Host value (or the authority when the request has no Host header), as
    /// text and as the header value it came from (cloning that shares its bytes).
    pub host: &'a str,
    pub host_value: &'a HeaderValue,
    /// The controller ConfigMap's forwarded-header keys.
    pub settings: &'a ForwardedHeaders,
    /// `generate-request-id`.
    pub generate_request_id: bool,
}

/// Adds the headers of spec §6.2 as ingress-nginx sets them (`ingress-nginx.md` §5;
/// ingress-nginx `rootfs/etc/nginx/template/nginx.tmpl`, its location's `proxy_set_header`s).
///
/// - A peer is trusted when it is in `--trusted-proxies`, or when `use-forwarded-headers` is on
///   and it is in `proxy-real-ip-cidr`. Only a trusted peer's `X-Forwarded-Proto`, `-Host`
///   (its first entry, which also becomes the upstream `Host`) and `-Port` are kept.
/// - The client address (`X-Real-IP`) is the peer, or, for a trusted peer (or any peer in
///   `proxy-real-ip-cidr` with `enable-real-ip`), the last address of `forwarded-for-header`
///   that is not itself trusted (nginx's `real_ip_recursive on`).
/// - `X-Forwarded-For` is that client address, replacing what came in, unless a trusted peer
///   asked for it to be extended (`compute-full-forwarded-for`, or `--trusted-proxies`): then
///   the incoming value plus the peer. The incoming `forwarded-for-header` value is always
///   passed on as `X-Original-Forwarded-For`.
///
/// `X-Forwarded-Port` is the port in the request's authority when it names one, else the
/// scheme's default (80/443). It is deliberately *not* the listener's port: in a cluster the
/// listener is the container port (e.g. 8080) while the client dialled 80 on the Service, and
/// the port the client used is what applications building URLs need.
///
/// Returns the `Host` the upstream request must carry instead of the client's (a trusted
/// `X-Forwarded-Host`), if any.
///
/// Per request this allocates once for the client address (shared by `X-Real-IP` and
/// `X-Forwarded-For`) and once for the request id; an extended `X-Forwarded-For` once more.
pub fn add_forwarded(headers: &mut HeaderMap, fwd: &Forwarded<'_>) -> Option<HeaderValue> {
    let settings = fwd.settings;
    let peer = fwd.client_ip;
    let in_cidr = || Cidr::any_contains(&settings.real_ip_from, peer);
    let by_config = settings.use_forwarded_headers && in_cidr();
    let trusted = trusts(fwd.trusted, settings, peer);
    let extend = fwd.trusted || (by_config && settings.compute_full_forwarded_for);
    let client = if trusted || (settings.enable_real_ip && in_cidr()) {
        real_client(headers, settings, fwd.trusted_proxies, peer)
    } else {
        peer
    };
    let ip = ip_value(client);
    // Which of the headers looked up below the client sent: most send none, and a lookup of
    // an absent custom name still hashes it and probes.
    let sent = Sent::of(headers);

    // nginx.tmpl: `proxy_set_header X-Original-Forwarded-For {{ buildForwardedFor
    // $all.Cfg.ForwardedForHeader }}`, which template.go turns into `$http_<that header>`.
    let original = if settings.forwarded_for_header == "x-forwarded-for" && !sent.forwarded_for {
        None
    } else {
        joined(headers, &forwarded_for_name(settings))
    };
    let xff = if extend {
        match sent
            .forwarded_for
            .then(|| joined(headers, &X_FORWARDED_FOR))
            .flatten()
        {
            Some(incoming) => {
                let mut text = String::with_capacity(incoming.len() + 2 + 39);
                text.push_str(incoming.to_str().unwrap_or_default());
                text.push_str(", ");
                text.push_str(&peer.to_string());
                HeaderValue::from_str(&text).unwrap_or_else(|_| ip_value(peer))
            }
            None => ip_value(peer),
        }
    } else {
        ip.clone()
    };
    // One growth at most, before the inserts, and none when the map has room (hyper's server
    // reuses the last response's map, sized by `h1client::parse_head` for these fields).
    headers.reserve(
        5 + usize::from(original.is_some())
            + usize::from(fwd.generate_request_id && !sent.request_id),
    );
    if let Some(original) = original {
        headers.insert(X_ORIGINAL_FORWARDED_FOR.clone(), original);
    }
    headers.insert(X_FORWARDED_FOR.clone(), xff);

    // An untrusted peer's values are never looked up (three header-map probes per request).
    let kept = |headers: &HeaderMap, name: &HeaderName| {
        if !trusted {
            return None;
        }
        headers
            .get(name)
            .filter(|v| !v.as_bytes().trim_ascii().is_empty())
            .cloned()
    };
    let proto = kept(headers, &X_FORWARDED_PROTO)
        .unwrap_or_else(|| HeaderValue::from_static(fwd.scheme.as_str()));
    headers.insert(X_FORWARDED_PROTO.clone(), proto);
    // ingress-nginx e2e `forwarded_headers.go`: "first entry in X-Forwarded-Host is used as
    // the best host" (for the upstream Host too).
    let forwarded_host = trusted
        .then(|| first_forwarded_host(headers))
        .flatten()
        .and_then(|first| HeaderValue::from_str(first).ok());
    headers.insert(
        X_FORWARDED_HOST.clone(),
        forwarded_host
            .clone()
            .unwrap_or_else(|| fwd.host_value.clone()),
    );
    let port = kept(headers, &X_FORWARDED_PORT).unwrap_or_else(|| {
        match authority_port(fwd.host).unwrap_or(fwd.scheme.default_port()) {
            80 => HeaderValue::from_static("80"),
            443 => HeaderValue::from_static("443"),
            port => HeaderValue::from(port),
        }
    });
    headers.insert(X_FORWARDED_PORT.clone(), port);
    headers.insert(X_REAL_IP.clone(), ip);
    if fwd.generate_request_id && !sent.request_id {
        headers.insert(X_REQUEST_ID.clone(), request_id());
    }
    forwarded_host
}

/// Which of the request headers [`add_forwarded`] reads the client sent, from one pass over
/// the names (a `match` on the text: a few instructions per name).
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    forwarded_for: bool,
    request_id: bool,
}

impl Sent {
    fn of(headers: &HeaderMap) -> Sent {
        let mut sent = Sent::default();
        for name in headers.keys() {
            match name.as_str() {
                "x-forwarded-for" => sent.forwarded_for = true,
                "x-request-id" => sent.request_id = true,
                _ => {}
            }
        }
        sent
    }
}

/// The client address as [`add_forwarded`] decides it (`X-Real-IP`): the peer, or for a
/// trusted peer the last untrusted address of `forwarded-for-header` (nginx's `$remote_addr`
/// after its realip module). For the source ranges and limits of issue 14, computed only on
/// routes that have them.
pub fn client_address(
    headers: &HeaderMap,
    in_trusted_proxies: bool,
    settings: &ForwardedHeaders,
    trusted_proxies: &[Cidr],
    peer: IpAddr,
) -> IpAddr {
    let peer = peer.to_canonical();
    let in_cidr = || Cidr::any_contains(&settings.real_ip_from, peer);
    if trusts(in_trusted_proxies, settings, peer) || (settings.enable_real_ip && in_cidr()) {
        real_client(headers, settings, trusted_proxies, peer)
    } else {
        peer
    }
}

/// Whether a peer's `X-Forwarded-Proto`/`-Host`/`-Port` are believed: it is in
/// `--trusted-proxies` (`in_trusted_proxies`), or `use-forwarded-headers` is on and it is in
/// `proxy-real-ip-cidr` (spec page §5).
pub fn trusts(in_trusted_proxies: bool, settings: &ForwardedHeaders, peer: IpAddr) -> bool {
    in_trusted_proxies
        || (settings.use_forwarded_headers && Cidr::any_contains(&settings.real_ip_from, peer))
}

/// The first entry of the request's `X-Forwarded-Host` (ingress-nginx's `$best_http_host`
/// when the peer is trusted), if it has a non-empty one.
pub fn first_forwarded_host(headers: &HeaderMap) -> Option<&str> {
    let first = headers
        .get(&X_FORWARDED_HOST)?
        .to_str()
        .ok()?
        .split(',')
        .next()?
        .trim();
    (!first.is_empty()).then_some(first)
}

/// The header `forwarded-for-header` names: the static one by default, so the default costs
/// no parse per request (a `&str` key is parsed on every lookup); a configured one is parsed
/// here (validated as a token when the ConfigMap was read).
fn forwarded_for_name(settings: &ForwardedHeaders) -> HeaderName {
    if settings.forwarded_for_header == "x-forwarded-for" {
        X_FORWARDED_FOR.clone()
    } else {
        HeaderName::from_bytes(settings.forwarded_for_header.as_bytes())
            .unwrap_or_else(|_| X_FORWARDED_FOR.clone())
    }
}

/// Every value of `name`, joined with `", "` as nginx's `$http_` variables join them (one
/// value: shared, no copy); `None` when absent or empty.
fn joined(
    headers: &HeaderMap,
    name: impl http::header::AsHeaderName + Copy,
) -> Option<HeaderValue> {
    let mut values = headers.get_all(name).iter().filter(|v| !v.is_empty());
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(first.clone());
    };
    let mut bytes = first.as_bytes().to_vec();
    for v in std::iter::once(second).chain(values) {
        bytes.extend_from_slice(b", ");
        bytes.extend_from_slice(v.as_bytes());
    }
    HeaderValue::from_bytes(&bytes).ok()
}

/// nginx's `real_ip_recursive on`: walking `forwarded-for-header` from its last entry, the
/// first address that is not trusted (`proxy-real-ip-cidr`, `--trusted-proxies`) is the
/// client; if all are, the first. An entry that is no address ends the walk (nginx declines
/// it and keeps what it had).
fn real_client(
    headers: &HeaderMap,
    settings: &ForwardedHeaders,
    trusted_proxies: &[Cidr],
    peer: IpAddr,
) -> IpAddr {
    let mut client = peer;
    let name = forwarded_for_name(settings);
    for value in headers.get_all(&name).iter().rev() {
        let Ok(text) = value.to_str() else {
            return client;
        };
        for entry in text.rsplit(',') {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                return client;
            };
            client = ip.to_canonical();
            if !Cidr::any_contains(&settings.real_ip_from, client)
                && !Cidr::any_contains(trusted_proxies, client)
            {
                return client;
            }
        }
    }
    client
}

/// The client address as a header value (an address's text is always a valid value).
fn ip_value(ip: IpAddr) -> HeaderValue {
    // The last address written on this thread, shared: a keep-alive connection (and clients
    // behind one load balancer) repeat it, and a clone is a reference count where writing it
    // is an allocation and a validation (~290 instructions per request; docs/performance.md).
    thread_local! {
        static LAST: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((cached, value)) = last.as_ref() {
            if *cached == ip {
                return value.clone();
            }
        }
        let value = write_ip(ip);
        *last = Some((ip, value.clone()));
        value
    })
}

/// An address as header text, as `Display` writes it.
fn write_ip(ip: IpAddr) -> HeaderValue {
    let text = match ip {
        // Written by hand: the formatter (`to_string`) costs about a thousand instructions per
        // request for what is four numbers.
        IpAddr::V4(v4) => {
            let mut out = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    out[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    out[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                out[len] = b'0' + octet % 10;
                len += 1;
            }
            bytes::Bytes::copy_from_slice(&out[..len])
        }
        IpAddr::V6(_) => bytes::Bytes::from(ip.to_string()),
    };
    HeaderValue::from_maybe_shared(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The port of an authority (`host:port`, `[v6]:port`), if it names a valid one.
pub fn authority_port(authority: &str) -> Option<u16> {
    // Plain reverse byte loops: per request on a short host, where `rfind(char)` (a char
    // searcher, ~370 instructions here) and `memrchr` (SIMD set-up, ~220) cost more.
    let tail = match authority.as_bytes().iter().rposition(|&b| b == b']') {
        Some(end) => &authority[end + 1..],
        None => authority,
    };
    let colon = tail.as_bytes().iter().rposition(|&b| b == b':')?;
    tail[colon + 1..].parse().ok()
}

/// 32 lowercase hex characters, written straight into the header value's bytes (no
/// formatting machinery on the per-request path).
pub(crate) fn request_id() -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::copy_from_slice(&hex32(fastrand::u128(..))))
        .unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// `n` as 32 lowercase hex digits, most significant first (what `{:032x}` prints): eight
/// digits at a time in a `u64` (each nibble spread into its own byte, then turned into its
/// ASCII digit by adding `'0'`, plus `'a' - '0' - 10` where it is above 9), ~4× fewer
/// instructions than a loop over the 32 nibbles.
fn hex32(n: u128) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        let shift = 96 - 32 * i;
        // Truncation intended: the 32 bits at `shift`.
        #[allow(clippy::cast_possible_truncation)]
        let word = (n >> shift) as u32;
        chunk.copy_from_slice(&hex8(word));
    }
    out
}

/// `x` as 8 lowercase hex digits, most significant first.
fn hex8(x: u32) -> [u8; 8] {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut x = u64::from(x);
    // Nibble `k` (from the top) ends in byte `k` (from the top): 0x1234_5678 → 0x0102_..._0708.
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // 1 in the bytes whose digit is 10 or more (a byte plus 6 carries into its high nibble;
    // never into the next byte).
    let letters = ((x + 6 * ONES) >> 4) & ONES;
    (x + u64::from(b'0') * ONES + letters * u64::from(b'a' - b'0' - 10)).to_be_bytes()
}

/// Approximate size of the request line plus header block as sent on the wire (HTTP/1 framing),
/// for the `max_header_bytes` check.
pub fn head_size<B>(req: &Request<B>) -> usize {
    let uri = req.uri();
    let mut target = uri.path_and_query().map_or(1, |pq| pq.as_str().len());
    if let Some(authority) = uri.authority() {
        target += authority.as_str().len() + uri.scheme_str().map_or(0, |s| s.len() + 3);
    }
    // "METHOD SP target SP HTTP/1.1 CRLF"
    let mut size = req.method().as_str().len() + 1 + target + 1 + 8 + 2;
    for (name, value) in req.headers() {
        size += name.as_str().len() + 2 + value.len() + 2;
    }
    size + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("close, X-Foo"));
        h.insert("x-foo", HeaderValue::from_static("1"));
        h.insert("x-bar", HeaderValue::from_static("2"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        remove_hop_by_hop(&mut h, false);
        assert!(!h.contains_key("x-foo"));
        assert!(!h.contains_key(CONNECTION));
        assert!(!h.contains_key("keep-alive"));
        assert!(!h.contains_key(UPGRADE));
        assert!(h.contains_key("x-bar"));
    }

    #[test]
    fn framing_names_what_the_head_has() {
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, HeaderValue::from_static("x"));
        let none = Framing::of(&h);
        assert!(!none.connection && !none.transfer_encoding && !none.content_length);
        h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        h.append(TRANSFER_ENCODING, HeaderValue::from_static("gzip"));
        h.append(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("1"));
        let all = Framing::of(&h);
        assert!(all.connection && all.transfer_encoding && all.content_length);
    }

    #[test]
    fn hop_by_hop_names_are_classified_by_their_position() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(i), "{name}");
        }
        assert_eq!(hop_by_hop_index(&CONNECTION), Some(CONNECTION_INDEX));
        assert_eq!(HOP_BY_HOP[TRANSFER_ENCODING_INDEX], TRANSFER_ENCODING);
        assert_eq!(
            hop_by_hop_index(&http::header::DATE),
            Some(DATE_INDEX),
            "Date is noted, not removed"
        );
        assert_eq!(hop_by_hop_index(&http::header::HOST), None);
        assert_eq!(hop_by_hop_index(&HeaderName::from_static("x-te")), None);
    }

    #[test]
    fn one_pass_finds_date_and_transfer_encoding_and_removes_only_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert(http::header::DATE, HeaderValue::from_static("x"));
        h.insert(CONNECTION, HeaderValue::from_static("Keep-Alive"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        let found = HopByHop::of(&h);
        assert!(found.date && found.transfer_encoding());
        found.remove(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key(http::header::DATE));
        let none = HopByHop::of(&h);
        assert!(none.date && !none.transfer_encoding());
    }

    #[test]
    fn connection_keep_alive_removes_only_connection() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        h.insert(PROXY_AUTHORIZATION, HeaderValue::from_static("secret"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
    }

    #[test]
    fn upgrade_survives_when_tunnelling() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade, x-foo"));
        h.insert("x-foo", HeaderValue::from_static("1"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h.get(UPGRADE).unwrap(), "websocket");
        assert_eq!(h.get(CONNECTION).unwrap(), "upgrade");
        assert!(!h.contains_key("x-foo"));
    }

    fn upgrade_request(connection: &str, upgrade: &str) -> Request<()> {
        Request::get("/")
            .header(CONNECTION, connection)
            .header(UPGRADE, upgrade)
            .body(())
            .unwrap()
    }

    #[test]
    fn only_allowed_upgrades_are_tunnelled() {
        let ws = vec!["websocket".to_string()];
        let offer = |c: &str, u: &str| allowed_upgrade(&upgrade_request(c, u), &ws);
        assert_eq!(offer("Upgrade", "WebSocket").unwrap(), "WebSocket");
        assert_eq!(
            offer("keep-alive, upgrade", "websocket/13").unwrap(),
            "websocket/13"
        );
        assert!(offer("Upgrade, HTTP2-Settings", "h2c").is_none());
        assert!(offer("Upgrade", "echo-proto").is_none());
        // Without `Connection: upgrade` it is no upgrade at all.
        assert!(offer("keep-alive", "websocket").is_none());
        // A mixed offer keeps only what is allowed.
        assert_eq!(offer("upgrade", "h2c, websocket").unwrap(), "websocket");
        let more = vec!["websocket".to_string(), "echo-proto".to_string()];
        let req = upgrade_request("upgrade", "echo-proto");
        assert_eq!(allowed_upgrade(&req, &more).unwrap(), "echo-proto");
    }

    #[test]
    fn a_101_must_name_an_offered_protocol() {
        let offered = HeaderValue::from_static("websocket");
        let mut h = HeaderMap::new();
        assert!(!upgrade_accepted(&offered, &h));
        h.insert(UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(upgrade_accepted(&offered, &h));
        h.insert(UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!upgrade_accepted(&offered, &h));
        h.insert(UPGRADE, HeaderValue::from_static("websocket, h2c"));
        assert!(!upgrade_accepted(&offered, &h));
    }

    #[test]
    fn http2_settings_is_always_removed() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("h2c"));
        h.insert(
            "http2-settings",
            HeaderValue::from_static("AAMAAABkAAQCAAAAAAIAAAAA"),
        );
        remove_hop_by_hop(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn only_plain_chunked_is_a_supported_transfer_coding() {
        let coded = |values: &[&'static str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(TRANSFER_ENCODING, HeaderValue::from_static(v));
            }
            unsupported_transfer_coding(&h)
        };
        assert!(!coded(&[]));
        assert!(!coded(&["chunked"]));
        assert!(!coded(&["Chunked"]));
        assert!(coded(&["gzip, chunked"]));
        assert!(coded(&["gzip", "chunked"]));
        assert!(coded(&["chunked, chunked"]));
        assert!(coded(&["identity"]));
    }

    /// The upstream headers for a request from `peer` carrying `incoming`.
    fn forward(
        peer: &str,
        trusted_proxies: &[&str],
        settings: &ForwardedHeaders,
        incoming: &[(&'static str, &'static str)],
    ) -> (HeaderMap, Option<HeaderValue>) {
        let mut h = HeaderMap::new();
        for (name, value) in incoming {
            h.append(*name, HeaderValue::from_static(value));
        }
        let list: Vec<Cidr> = trusted_proxies.iter().map(|c| c.parse().unwrap()).collect();
        let peer: IpAddr = peer.parse().unwrap();
        let host = add_forwarded(
            &mut h,
            &Forwarded {
                client_ip: peer,
                trusted: Cidr::any_contains(&list, peer),
                trusted_proxies: &list,
                scheme: Scheme::Http,
                host: "x",
                host_value: &HeaderValue::from_static("x"),
                settings,
                generate_request_id: true,
            },
        );
        (h, host)
    }

    fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
        h.get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn x_forwarded_for_is_extended_only_for_trusted_proxies() {
        let defaults = ForwardedHeaders::default();
        let incoming = [("x-forwarded-for", "6.6.6.6")];
        let (h, _) = forward("203.0.113.7", &["203.0.113.0/24"], &defaults, &incoming);
        assert_eq!(get(&h, "x-forwarded-for"), Some("6.6.6.6, 203.0.113.7"));
        let (h, _) = forward("203.0.113.7", &["10.0.0.0/8"], &defaults, &incoming);
        assert_eq!(get(&h, "x-forwarded-for"), Some("203.0.113.7"));
    }

    /// ingress-nginx e2e `test/e2e/settings/forwarded_headers.go`, "should not trust
    /// X-Forwarded headers when setting is false" (the default).
    #[test]
    fn by_default_forwarded_headers_are_replaced_and_the_original_passed_on() {
        let incoming = [
            ("x-forwarded-port", "1234"),
            ("x-forwarded-proto", "myproto"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-host", "myhost"),
        ];
        let (h, host) = forward("203.0.113.7", &[], &ForwardedHeaders::default(), &incoming);
        assert_eq!(host, None);
        assert_eq!(get(&h, "x-forwarded-port"), Some("80"));
        assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
        assert_eq!(get(&h, "x-forwarded-host"), Some("x"));
        assert_eq!(get(&h, "x-forwarded-for"), Some("203.0.113.7"));
        assert_eq!(get(&h, "x-original-forwarded-for"), Some("1.2.3.4"));
        assert_eq!(get(&h, "x-real-ip"), Some("203.0.113.7"));
    }

    /// ingress-nginx e2e `test/e2e/settings/forwarded_headers.go`, "should trust X-Forwarded
    /// headers when setting is true" (both steps: single values; the first X-Forwarded-Host).
    #[test]
    fn use_forwarded_headers_trusts_peers_in_proxy_real_ip_cidr() {
        let settings = ForwardedHeaders {
            use_forwarded_headers: true,
            ..ForwardedHeaders::default()
        };
        let incoming = [
            ("x-forwarded-port", "1234"),
            ("x-forwarded-proto", "myproto"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-host", "myhost"),
        ];
        let (h, host) = forward("203.0.113.7", &[], &settings, &incoming);
        assert_eq!(host.as_ref().map(|v| v.to_str().unwrap()), Some("myhost"));
        assert_eq!(get(&h, "x-forwarded-host"), Some("myhost"));
        assert_eq!(get(&h, "x-forwarded-proto"), Some("myproto"));
        assert_eq!(get(&h, "x-forwarded-port"), Some("1234"));
        assert_eq!(get(&h, "x-forwarded-for"), Some("1.2.3.4"));
        assert_eq!(get(&h, "x-real-ip"), Some("1.2.3.4"));

        let incoming = [("x-forwarded-host", "myhost.com, another.host,example.net")];
        let (h, host) = forward("203.0.113.7", &[], &settings, &incoming);
        assert_eq!(
            host.as_ref().map(|v| v.to_str().unwrap()),
            Some("myhost.com")
        );
        assert_eq!(get(&h, "x-forwarded-host"), Some("myhost.com"));

        // A peer outside proxy-real-ip-cidr is not trusted.
        let narrow = ForwardedHeaders {
            real_ip_from: vec!["10.0.0.0/8".parse().unwrap()],
            ..settings.clone()
        };
        let (h, host) = forward("203.0.113.7", &[], &narrow, &incoming);
        assert_eq!(host, None);
        assert_eq!(get(&h, "x-forwarded-host"), Some("x"));
    }

    /// ingress-nginx `configmap.md` `compute-full-forwarded-for`: append the peer rather than
    /// replace; the client address still follows `real_ip_recursive`.
    #[test]
    fn compute_full_forwarded_for_appends_the_peer() {
        let settings = ForwardedHeaders {
            use_forwarded_headers: true,
            compute_full_forwarded_for: true,
            real_ip_from: vec!["10.0.0.0/8".parse().unwrap()],
            ..ForwardedHeaders::default()
        };
        let incoming = [("x-forwarded-for", "1.2.3.4, 10.1.1.1")];
        let (h, _) = forward("10.0.0.2", &[], &settings, &incoming);
        assert_eq!(
            get(&h, "x-forwarded-for"),
            Some("1.2.3.4, 10.1.1.1, 10.0.0.2")
        );
        assert_eq!(get(&h, "x-real-ip"), Some("1.2.3.4"));
    }

    /// ingress-nginx e2e `test/e2e/settings/enable_real_ip.go`, "trusts X-Forwarded-For
    /// header only when setting is true": the client address comes from
    /// `forwarded-for-header`, the other `X-Forwarded-*` are not trusted.
    #[test]
    fn enable_real_ip_reads_the_configured_header_only() {
        let settings = ForwardedHeaders {
            enable_real_ip: true,
            forwarded_for_header: "x-client-ip".into(),
            ..ForwardedHeaders::default()
        };
        let incoming = [("x-client-ip", "1.2.3.4"), ("x-forwarded-proto", "myproto")];
        let (h, _) = forward("203.0.113.7", &[], &settings, &incoming);
        assert_eq!(get(&h, "x-real-ip"), Some("1.2.3.4"));
        assert_eq!(get(&h, "x-forwarded-for"), Some("1.2.3.4"));
        assert_eq!(get(&h, "x-original-forwarded-for"), Some("1.2.3.4"));
        assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
    }

    #[test]
    fn request_id_is_passed_through_and_generated_only_when_asked() {
        let defaults = ForwardedHeaders::default();
        let (h, _) = forward("203.0.113.7", &[], &defaults, &[("x-request-id", "abc")]);
        assert_eq!(get(&h, "x-request-id"), Some("abc"));
        let mut h = HeaderMap::new();
        add_forwarded(
            &mut h,
            &Forwarded {
                client_ip: "203.0.113.7".parse().unwrap(),
                trusted: false,
                trusted_proxies: &[],
                scheme: Scheme::Http,
                host: "x",
                host_value: &HeaderValue::from_static("x"),
                settings: &defaults,
                generate_request_id: false,
            },
        );
        assert!(h.get("x-request-id").is_none());
    }

    /// The fields `add_forwarded` adds fit in a map with room for them (hyper's server reuses
    /// the last response's map, `h1client::parse_head` sizes it): no growth, nothing lost.
    #[test]
    fn forwarded_fields_fit_a_map_with_room_and_grow_a_full_one() {
        let defaults = ForwardedHeaders::default();
        let fwd = Forwarded {
            client_ip: "203.0.113.7".parse().unwrap(),
            trusted: false,
            trusted_proxies: &[],
            scheme: Scheme::Http,
            host: "x",
            host_value: &HeaderValue::from_static("x"),
            settings: &defaults,
            generate_request_id: true,
        };
        let mut h = HeaderMap::with_capacity(12);
        h.insert(http::header::HOST, HeaderValue::from_static("x"));
        h.insert(http::header::USER_AGENT, HeaderValue::from_static("t"));
        let capacity = h.capacity();
        add_forwarded(&mut h, &fwd);
        assert_eq!(h.len(), 8);
        assert_eq!(h.capacity(), capacity);
        // A map sized for the client's fields alone grows once and keeps them all.
        let mut h = HeaderMap::with_capacity(2);
        h.insert(http::header::HOST, HeaderValue::from_static("x"));
        h.insert(http::header::USER_AGENT, HeaderValue::from_static("t"));
        add_forwarded(&mut h, &fwd);
        assert_eq!(h.len(), 8);
        assert!(h.capacity() >= 8);
        assert_eq!(get(&h, "host"), Some("x"));
        assert_eq!(get(&h, "x-real-ip"), Some("203.0.113.7"));
    }

    #[test]
    fn request_id_is_32_lowercase_hex_digits_like_the_formatter() {
        for n in [
            0u128,
            1,
            0xdead_beef,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ] {
            assert_eq!(hex32(n).as_slice(), format!("{n:032x}").as_bytes());
        }
        // Every digit in every position, from a fixed seed.
        let mut rng = fastrand::Rng::with_seed(12);
        for _ in 0..1000 {
            let n = rng.u128(..);
            assert_eq!(hex32(n).as_slice(), format!("{n:032x}").as_bytes());
        }
        let id = request_id();
        assert_eq!(id.len(), 32);
        assert!(id
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn ip_value_writes_what_the_formatter_writes() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.9.99.100",
            "203.0.113.7",
            "255.255.255.255",
            "1.20.100.249",
            "::1",
            "2001:db8::7",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(write_ip(ip).to_str().unwrap(), ip.to_string());
            // Written once more from the thread's cache, and after another address.
            assert_eq!(ip_value(ip).to_str().unwrap(), ip.to_string());
            assert_eq!(ip_value(ip).to_str().unwrap(), ip.to_string());
        }
    }

    #[test]
    fn hop_by_hop_removal_keeps_end_to_end_headers() {
        // Nothing hop-by-hop: nothing changes.
        let mut h = HeaderMap::new();
        h.insert("accept", HeaderValue::from_static("*/*"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 2);
        // Connection listing names in two values and in mixed case, and the fixed names.
        let mut h = HeaderMap::new();
        h.append(CONNECTION, HeaderValue::from_static("Keep-Alive, X-Gone"));
        h.append(
            CONNECTION,
            HeaderValue::from_static("x-also-gone, , not a name"),
        );
        for (k, v) in [
            ("keep-alive", "timeout=5"),
            ("x-gone", "1"),
            ("x-also-gone", "1"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("upgrade", "websocket"),
            ("http2-settings", "AAA"),
            ("x-keep", "1"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        remove_hop_by_hop(&mut h, false);
        assert_eq!(
            h.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
            ["x-keep"]
        );
        // An upgrade being proxied keeps Upgrade and gets `Connection: upgrade` back.
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade, x-gone"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-gone", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h, true);
        assert_eq!(get(&h, "upgrade"), Some("websocket"));
        assert_eq!(get(&h, "connection"), Some("upgrade"));
        assert!(h.get("x-gone").is_none());
        // Without an upgrade, a lone Upgrade header goes too.
        let mut h = HeaderMap::new();
        h.insert(UPGRADE, HeaderValue::from_static("h2c"));
        remove_hop_by_hop(&mut h, false);
        assert!(h.is_empty());
    }

    #[test]
    fn te_trailers_is_recognised() {
        let mut h = HeaderMap::new();
        assert!(!te_is_trailers(&h));
        h.insert(TE, HeaderValue::from_static("gzip, Trailers"));
        assert!(te_is_trailers(&h));
    }

    #[test]
    fn authority_port_parses_v4_v6_and_names() {
        assert_eq!(authority_port("foo.com:8080"), Some(8080));
        assert_eq!(authority_port("foo.com"), None);
        assert_eq!(authority_port("[::1]:443"), Some(443));
        assert_eq!(authority_port("[::1]"), None);
        assert_eq!(authority_port("foo.com:99999"), None);
    }
}
