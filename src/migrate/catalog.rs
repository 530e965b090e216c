//! The migration catalogue: every annotation and controller ConfigMap key of ingress-nginx's
//! final release (controller v1.15.1) with Portico's status and a one-line note. It is the
//! single source of `portico migrate`'s verdicts and holds the same rows, in the same order,
//! as the tables of `docs/migrating-from-ingress-nginx.md`; `tests` below fail when the two
//! drift apart, or when the catalogue disagrees with what translate implements
//! (`translate::annotations::IMPLEMENTED`) or fails closed on (`ACCESS_CONTROL`).
//!
//! Flipping a row is a one-line change: its `Status` (and, if it changed, its note).

use serde::Serialize;

/// Portico's support for one annotation or key, as the migration guide states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Does what ingress-nginx does. Guide: "honoured".
    Honoured,
    /// Honoured; the note says the difference. Guide: "honoured with a difference".
    Different,
    /// Not read yet; the issue that brings it. Ignored with an `UnsupportedAnnotation`
    /// warning until then. Guide: "planned (issue N)".
    Planned(u8),
    /// An access-control annotation not enforced yet: translate fails closed, so the
    /// Ingress's paths answer 503 (`AccessControlUnsupported`). Guide: "planned (issue N)",
    /// its note saying "Today the Ingress fails closed".
    FailsClosed(u8),
    /// A ConfigMap key that restricts access for every Ingress and is not enforced yet:
    /// switching now would serve without that protection (docs/decisions.md). Guide:
    /// "planned (issue N)".
    Unenforced(u8),
    /// A snippet: nginx configuration text, never interpreted. Guide: "dropped".
    Dropped,
    /// Not planned (the note says why). Guide: "not planned".
    NotPlanned,
}

impl Status {
    /// The status as the guide's Status column spells it (without its footnote marks).
    pub fn guide(self) -> String {
        match self {
            Status::Honoured => "honoured".to_string(),
            Status::Different => "honoured with a difference".to_string(),
            Status::Planned(n) | Status::FailsClosed(n) | Status::Unenforced(n) => {
                format!("planned (issue {n})")
            }
            Status::Dropped => "dropped".to_string(),
            Status::NotPlanned => "not planned".to_string(),
        }
    }

    /// What happens to the name under Portico today.
    pub fn verdict(self) -> Verdict {
        match self {
            Status::Honoured => Verdict::Honoured,
            Status::Different => Verdict::HonouredWithDifference,
            Status::Planned(_) | Status::NotPlanned => Verdict::Ignored,
            Status::FailsClosed(_) | Status::Unenforced(_) => Verdict::Blocks,
            Status::Dropped => Verdict::Dropped,
        }
    }
}

/// `portico migrate`'s verdict on one annotation or key (spec page §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Portico does what ingress-nginx did.
    Honoured,
    /// Portico does it, with the one-line difference in the note.
    HonouredWithDifference,
    /// Not implemented and harmless to leave: an `UnsupportedAnnotation` warning.
    Ignored,
    /// A snippet: never interpreted (`SnippetDropped`); the note names the typed replacement.
    Dropped,
    /// Do not switch yet: an annotation whose Ingress fails closed (its paths answer 503), or
    /// a ConfigMap key whose protection Portico does not enforce.
    Blocks,
}

impl Verdict {
    pub const ALL: [Verdict; 5] = [
        Verdict::Honoured,
        Verdict::HonouredWithDifference,
        Verdict::Ignored,
        Verdict::Dropped,
        Verdict::Blocks,
    ];

    /// The words the text report uses.
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Honoured => "honoured",
            Verdict::HonouredWithDifference => "honoured with a difference",
            Verdict::Ignored => "ignored",
            Verdict::Dropped => "dropped",
            Verdict::Blocks => "blocks",
        }
    }

    /// The JSON spelling (`-o json`).
    pub fn key(self) -> &'static str {
        match self {
            Verdict::Honoured => "honoured",
            Verdict::HonouredWithDifference => "honoured-with-difference",
            Verdict::Ignored => "ignored",
            Verdict::Dropped => "dropped",
            Verdict::Blocks => "blocks",
        }
    }
}

/// One row of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Without prefix: `rewrite-target`, `use-forwarded-headers`.
    pub name: &'static str,
    pub status: Status,
    /// The guide's note, without its Markdown emphasis.
    pub note: &'static str,
}

const fn e(name: &'static str, status: Status, note: &'static str) -> Entry {
    Entry { name, status, note }
}

/// The annotation `name` (without prefix), if ingress-nginx had it.
pub fn annotation(name: &str) -> Option<&'static Entry> {
    find(ANNOTATIONS, name)
}

/// The ConfigMap key `name`, if ingress-nginx had it.
pub fn configmap_key(name: &str) -> Option<&'static Entry> {
    find(CONFIGMAP_KEYS, name)
}

/// Both tables are sorted by name (a test says so).
fn find(table: &'static [Entry], name: &str) -> Option<&'static Entry> {
    table
        .binary_search_by(|entry| entry.name.cmp(name))
        .ok()
        .map(|i| &table[i])
}

use Status::{Different, Dropped, FailsClosed, Honoured, NotPlanned, Planned, Unenforced};

#[rustfmt::skip]
pub static ANNOTATIONS: &[Entry] = &[
    e("affinity", Planned(14), "`cookie` (the only type). Scope: the Service, from the first Ingress that configures it (ingress-nginx's). Today no stickiness."),
    e("affinity-canary-behavior", Planned(14), "`sticky` (default) or `legacy`."),
    e("affinity-mode", Planned(14), "`balanced` (default) or `persistent`."),
    e("allowlist-source-range", FailsClosed(14), "403 outside the list; fails closed (an invalid entry: 503). Today the Ingress fails closed: 503."),
    e("app-root", Honoured, "302 from `/` to `SCHEME://HOST/ROOT` (the `Host` as sent), query dropped. Scope: the whole host, as ingress-nginx (a server-level `if`): a request for `/` redirects whichever Ingress of the host would serve it, before the HTTPS redirect. A value with `$` or other than a path (and query) is `InvalidAnnotation`."),
    e("auth-always-set-cookie", Honoured, "The auth answer's `Set-Cookie` on every answer (errors too), not only on 2xx/3xx ones (nginx `add_header ... always`)."),
    e("auth-cache-duration", Honoured, "nginx `proxy_cache_valid` lines (`200 202 401 5m`, the default; `any`; several times summed); an invalid one: 503, as ingress-nginx."),
    e("auth-cache-key", Different, "Auth answers kept under this key (with the host and the Ingress path, as ingress-nginx's server name and auth location), in memory per Portico process, at most 10,000 per Ingress, dropped when the Ingress changes. Variables filled: `$http_NAME`, `$cookie_NAME`, `$arg_NAME`, `$remote_addr`, `$host`, `$request_uri`, `$uri`, and `$remote_user` read as the whole `Authorization` header (never a coarser key); another variable: not cached."),
    e("auth-keepalive", Different, "Checked, otherwise unused: Portico always keeps connections to the auth service alive (its upstream client's pool)."),
    e("auth-keepalive-requests", Different, "Checked, otherwise unused: see `auth-keepalive`."),
    e("auth-keepalive-share-vars", Different, "Checked, otherwise unused: the auth service and the upstream always get the same `X-Request-ID`."),
    e("auth-keepalive-timeout", Different, "Checked, otherwise unused: see `auth-keepalive`."),
    e("auth-method", Honoured, "Method of the auth request, which then also carries `X-Original-URI` and `X-Scheme`; not a method ingress-nginx accepts: 503."),
    e("auth-proxy-set-headers", Different, "ConfigMap (`namespace/name`) of headers sent to the auth service; missing, or a header name ingress-nginx refuses: 503. Values are literal: one with an nginx variable (`$host`), or a framing header (`Content-Length`...), makes the Ingress answer 503 instead of being evaluated."),
    e("auth-realm", Planned(15), "Realm in `WWW-Authenticate`."),
    e("auth-request-redirect", Different, "`X-Auth-Request-Redirect` sent to the auth service (default: the request URI). Literal: a value with an nginx variable is invalid and the default applies."),
    e("auth-response-headers", Honoured, "Copied from the auth service's 2xx answer into the upstream request, replacing the client's (removed when the answer lacks it); an invalid name: 503."),
    e("auth-secret", FailsClosed(15), "Secret with htpasswd lines (`auth-file`) or user→hash keys (`auth-map`); bcrypt, apr1, `{SHA}`. Today the Ingress fails closed: 503."),
    e("auth-secret-type", Planned(15), "`auth-file` (default) or `auth-map`."),
    e("auth-signin", Different, "On 401, a 302 there with `rd=SCHEME://HOST` + the escaped request URI, as ingress-nginx builds it (with the auth answer's cookies). Of nginx's variables only `$host`, `$http_host`, `$best_http_host`, `$scheme`, `$pass_access_scheme`, `$request_uri` and `$escaped_request_uri` are filled; another makes it invalid (the 401 is answered)."),
    e("auth-signin-redirect-param", Honoured, "Name of that parameter (default `rd`); not kept when the sign-in URL already sets it."),
    e("auth-snippet", Dropped, "Never interpreted; `auth-proxy-set-headers`, `auth-response-headers`, `auth-cache-key` (issue 15)."),
    e("auth-tls-error-page", Planned(15), "Redirect target on a certificate error."),
    e("auth-tls-match-cn", Planned(15), "Regex on the client certificate's subject (Rust `regex` syntax); 403 when it does not match."),
    e("auth-tls-pass-certificate-to-upstream", Planned(15), "`ssl-client-cert` header (with `ssl-client-verify`, `-subject-dn`, `-issuer-dn`)."),
    e("auth-tls-secret", FailsClosed(15), "Client certificates (mTLS) against `ca.crt` (optional `ca.crl`); per host (SNI), as ingress-nginx. Today the Ingress fails closed: 503."),
    e("auth-tls-verify-client", Planned(15), "`on`, `off`, `optional`, `optional_no_ca`; 400 after the handshake for a missing or bad certificate, as ingress-nginx."),
    e("auth-tls-verify-depth", Planned(15), "Chain depth (default 1)."),
    e("auth-type", FailsClosed(15), "`basic`; `digest` only if issue 15 judges it worth it, else it fails closed. Today the Ingress fails closed: 503."),
    e("auth-url", Different, "External auth as ingress-nginx: the client's headers (no body) plus `X-Original-URL`, `X-Original-Method`, `X-Auth-Request-Redirect`, `X-Sent-From`, `X-Real-IP`, `X-Forwarded-For`, `X-Request-ID`; 2xx proxies, 401/403 answer so, any other status, an auth service down or slower than the proxy timeouts 500. Differences: an nginx variable in the URL (`http://$host/...`), a scheme other than http(s) or an invalid URL make the Ingress answer 503; an auth URL served by a path of the same Ingress is refused (503); an auth request that comes back into Portico onto a route asking for auth again answers 503 (loop)."),
    e("backend-protocol", Different, "`HTTP`, `HTTPS`, `GRPC`, `GRPCS` as ingress-nginx, plus `H2C`. `AUTO_HTTP` and `FCGI` are `InvalidAnnotation`; without a valid value the Service port's `appProtocol` decides (ingress-nginx: HTTP)."),
    e("canary", Planned(14), "Attaches to the non-canary Ingress with the same host and path. Today a canary Ingress serves nothing (`UnsupportedAnnotation`): the main Ingress gets all the traffic."),
    e("canary-by-cookie", Planned(14), "`always`/`never` in this cookie."),
    e("canary-by-header", Planned(14), "`always`/`never` in this header; first in ingress-nginx's precedence (header, cookie, weight)."),
    e("canary-by-header-pattern", Planned(14), "As `-value`, as a regex (Rust `regex` syntax, not PCRE); ignored when `-value` is set."),
    e("canary-by-header-value", Planned(14), "Header value that selects the canary (with `canary-by-header`)."),
    e("canary-weight", Planned(14), "Share of requests, 0–`canary-weight-total`."),
    e("canary-weight-total", Planned(14), "Default 100."),
    e("client-body-buffer-size", Planned(14), "Memory for a buffered request body (ingress-nginx: 8k, then a temp file)."),
    e("configuration-snippet", Dropped, "Never interpreted (spec page §3); typed replacements: `custom-headers`, `x-forwarded-prefix`, redirects (issue 13), `enable-cors`, `limit-*`, source ranges (issue 14)."),
    e("connection-proxy-header", NotPlanned, "Portico manages `Connection` itself (hop-by-hop removal, upgrades)."),
    e("cors-allow-credentials", Planned(14), "Default `true`."),
    e("cors-allow-headers", Planned(14), "Default `DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization`."),
    e("cors-allow-methods", Planned(14), "Default `GET, PUT, POST, DELETE, PATCH, OPTIONS`."),
    e("cors-allow-origin", Planned(14), "List and `https://*.example.com` wildcards as ingress-nginx matches them; default `*`."),
    e("cors-expose-headers", Planned(14), "Default empty."),
    e("cors-max-age", Planned(14), "Default 1728000 s."),
    e("custom-headers", Different, "Response headers from a ConfigMap, gated by `global-allowed-response-headers`; a missing ConfigMap or a header not allowed makes the paths answer 503, as in ingress-nginx. Difference: only a ConfigMap in the Ingress's own namespace (ingress-nginx's documentation says so, its code read any); a bare name means the Ingress's namespace."),
    e("custom-http-errors", Different, "Listed statuses (400–599; the upstream's and Portico's own 502/503/504) answered by the `default-backend` Service, else `--default-backend-service`, with ingress-nginx's `X-Code`, `X-Format`, `X-Original-URI`, `X-Namespace`, `X-Ingress-Name`, `X-Service-Name`, `X-Service-Port`, `X-Request-ID`; the client gets the error backend's status. Differences: without any default backend the original answer passes (ingress-nginx answered 404 from its internal server); the error request carries no body."),
    e("default-backend", Honoured, "Service (same namespace, first port) that answers, with `X-Code: 503` and the other error headers, for paths whose Service has no endpoints (or does not exist), and that answers the Ingress's `custom-http-errors`; used only while it has endpoints."),
    e("denylist-source-range", FailsClosed(14), "403 inside the list; fails closed (an invalid entry: 503). Today the Ingress fails closed: 503."),
    e("disable-proxy-intercept-errors", Honoured, "`\"true\"`: the upstream's listed statuses pass unchanged; Portico's own errors are still answered by the error backend (nginx's `error_page` covers them whatever `proxy_intercept_errors` says)."),
    e("enable-access-log", Planned(14), "`false` drops this Ingress's access log lines. Today: `--access-log` for all."),
    e("enable-cors", Planned(14), "CORS with ingress-nginx's defaults; preflight answered by the proxy."),
    e("enable-global-auth", Honoured, "`false` exempts the Ingress from ConfigMap `global-auth-url`; an Ingress with its own `auth-url` uses that instead."),
    e("enable-modsecurity", NotPlanned, "ModSecurity WAF: out of scope; put a WAF in front or beside."),
    e("enable-opentelemetry", NotPlanned, "No issue yet: Portico exports no traces."),
    e("enable-owasp-core-rules", NotPlanned, "ModSecurity: out of scope."),
    e("enable-rewrite-log", NotPlanned, "nginx debug logging; `portico explain` and `/debug/explain` show routing decisions."),
    e("fastcgi-index", NotPlanned, "FastCGI backends (`backend-protocol: FCGI`) are not supported."),
    e("fastcgi-params-configmap", NotPlanned, "FastCGI: not supported."),
    e("force-ssl-redirect", Different, "308 to HTTPS for the Ingress's paths even without TLS (TLS ended in front of the cluster); ACME path exempt. Difference: `X-Forwarded-Proto` other than `http` skips it only from peers listed in `--trusted-proxies` (ingress-nginx: any peer with `use-forwarded-headers`)."),
    e("from-to-www-redirect", Different, "`www.HOST` → `HOST` (or `HOST` → `www.HOST` for a `www.` rule host) unless that name is a rule host; `SCHEME://HOST:PORT/path`, 308. Difference: PORT is the one the client used (its `Host`, or a trusted `X-Forwarded-Port`), not the controller's listening port."),
    e("http2-push-preload", NotPlanned, "HTTP/2 server push: removed from browsers and from nginx 1.25.1."),
    e("limit-allowlist", Planned(14), "CIDRs exempt from the limits."),
    e("limit-burst-multiplier", Planned(14), "Default 5."),
    e("limit-connections", Planned(14), "Concurrent connections per client address; 503 (`limit-conn-status-code`)."),
    e("limit-rate", Planned(14), "Response bandwidth per connection, KiB/s."),
    e("limit-rate-after", Planned(14), "KiB sent before `limit-rate` applies."),
    e("limit-rpm", Planned(14), "As `limit-rps`, per minute."),
    e("limit-rps", Planned(14), "Per client address and replica; burst = limit × `limit-burst-multiplier`; 503 (`limit-req-status-code`). Today: no limit."),
    e("limit-whitelist", Planned(14), "Alias of `limit-allowlist`."),
    e("load-balance", Different, "`round_robin`, `ewma` (also `round-robin`). Difference: applies to this Ingress's paths; ingress-nginx applies it to the Service, from the first Ingress that configures it."),
    e("mirror-host", Planned(14), "`Host` of the mirrored request."),
    e("mirror-request-body", Planned(14), "Mirror the body too (default on)."),
    e("mirror-target", Planned(14), "Copy of each request to another URL, response discarded; never slows the main request (nginx's mirror does). `$request_uri` etc. parsed, never evaluated."),
    e("modsecurity-snippet", Dropped, "Never interpreted; no WAF (see `enable-modsecurity`)."),
    e("modsecurity-transaction-id", NotPlanned, "ModSecurity: out of scope."),
    e("opentelemetry-operation-name", NotPlanned, "No issue yet: see `enable-opentelemetry`."),
    e("opentelemetry-trust-incoming-span", NotPlanned, "No issue yet: see `enable-opentelemetry`."),
    e("permanent-redirect", Different, "Answers every path of the Ingress with the URL as written (no path appended), 301 by default, before the HTTPS redirect. Difference: the URL must be absolute `http(s)://host…` (ingress-nginx also took relative ones here)."),
    e("permanent-redirect-code", Different, "301, 302, 303, 307, 308. Difference: 300, 304–306 (accepted by ingress-nginx, but nginx then sends no `Location`) and non-numbers are `InvalidAnnotation` and 301 applies (ingress-nginx dropped the redirect on a non-number)."),
    e("preserve-trailing-slash", Different, "`\"false\"` strips one trailing `/` of the request-target (query included, as `lua_ingress.lua`) in the HTTPS redirect; `\"true\"` keeps it. Difference: without the annotation Portico keeps it (spec §5.5), where ingress-nginx strips it; and `/` always stays `https://host/`."),
    e("proxy-body-size", Honoured, "nginx sizes (`8m`, `0` = no limit); 413, also for bodies without `Content-Length`. Default `--proxy-body-size` (1m, as ingress-nginx)."),
    e("proxy-buffer-size", Planned(14), "Issue 14 accepts it and states what it means for Portico."),
    e("proxy-buffering", Planned(14), "Response buffering; ingress-nginx's default `off` is what Portico does today (responses stream)."),
    e("proxy-buffers-number", NotPlanned, "nginx buffer tuning with no counterpart: Portico streams responses."),
    e("proxy-busy-buffers-size", NotPlanned, "nginx buffer tuning with no counterpart."),
    e("proxy-connect-timeout", Honoured, "Seconds, as ingress-nginx (`5`); `5s`, `500ms` also accepted; `0` is invalid. Default `--upstream-connect-timeout` (5 s, as ingress-nginx)."),
    e("proxy-cookie-domain", Different, "`FROM TO` or `off`: the `Domain` of upstream `Set-Cookie` equal to FROM (case-insensitive, leading dot ignored) becomes TO. Difference: nginx's `~regex` form is refused (`InvalidAnnotation`)."),
    e("proxy-cookie-path", Different, "`FROM TO` or `off`: a `Path` starting with FROM has that prefix replaced by TO. Difference: no `~regex` form."),
    e("proxy-http-version", Planned(14), "`1.0` or `1.1` to the upstream. Today always HTTP/1.1 (or HTTP/2 per `backend-protocol`)."),
    e("proxy-max-temp-file-size", Planned(14), "Issue 14 accepts it and states what it means for Portico (which writes no temporary files)."),
    e("proxy-next-upstream", Planned(14), "Retry conditions (`error`, `timeout`, `http_5xx`…, `non_idempotent`, `off`). Today fixed: see `proxy-next-upstream-tries`."),
    e("proxy-next-upstream-timeout", Planned(14), "Time limit for all attempts (ingress-nginx: 0, none)."),
    e("proxy-next-upstream-tries", Different, "Attempts in all, 1–10; `0` (ingress-nginx: unlimited) means 10. Retried after connect failures; never after a response timeout (ingress-nginx's default `error timeout` retries those)."),
    e("proxy-read-timeout", Different, "Seconds (or `60s`). Difference: bounds the wait for the response headers (counted once the request body is sent), not each read of the body as nginx does."),
    e("proxy-redirect-from", Different, "With `proxy-redirect-to`: a `Location` (or `Refresh` URL) starting with FROM has that prefix replaced by TO (case-sensitive, as nginx). Difference: `default` rewrites nothing (nginx's default only rewrites its internal `http://upstream_balancer` URL, which backends never send)."),
    e("proxy-redirect-to", Honoured, "See `proxy-redirect-from`; `off` (the default) disables the pair."),
    e("proxy-request-buffering", Planned(14), "`on` (ingress-nginx's default): body read before the upstream sees it, in bounded memory. Today bodies are always streamed."),
    e("proxy-send-timeout", Different, "Seconds (or `60s`): while the body is sent, the upstream taking none of it for this long gets 504. Difference: checked every timeout, so it fires after one to two of them."),
    e("proxy-ssl-ciphers", NotPlanned, "No issue yet (issue 15 lists `ssl-ciphers` for clients, not this one for upstreams); rustls offers only modern suites."),
    e("proxy-ssl-name", Planned(15), "Name verified (and sent as SNI) for HTTPS upstreams. Today `SERVICE.NAMESPACE.svc` is verified."),
    e("proxy-ssl-protocols", Planned(15), "TLS versions to HTTPS upstreams; what rustls lacks is refused with a condition."),
    e("proxy-ssl-secret", Different, "Only `ca.crt` is used (verify the upstream); the client certificate `tls.crt`/`tls.key` is planned (issue 15). Own namespace only; kube mode reads `kubernetes.io/tls` Secrets only."),
    e("proxy-ssl-server-name", Planned(15), "Send SNI to HTTPS upstreams."),
    e("proxy-ssl-verify", Different, "`on`/`off` (default `off` with the nginx spelling, as ingress-nginx). Difference: Portico verifies the name `SERVICE.NAMESPACE.svc`; ingress-nginx verifies `proxy-ssl-name` (issue 15)."),
    e("proxy-ssl-verify-depth", Planned(15), "Upstream chain depth."),
    e("relative-redirects", NotPlanned, "No issue yet: Portico's redirects are absolute."),
    e("rewrite-target", Different, "The upstream path becomes the target with `$1`…`$9` replaced by the groups of `(?i)PATH` matched on the normalised path (nginx's `rewrite … break`: the whole path is replaced; the query is kept, after the target's own arguments; a target ending in `?` drops it). Like `use-regex`, it turns every path of the host into a regex (see above). Not applied where the target equals the location path. Differences: `$name` nginx variables and URL targets (nginx redirects) are `InvalidAnnotation`; a `$n` the path lacks is `InvalidAnnotation` and the path serves unrewritten; characters a request-target cannot hold are percent-encoded."),
    e("satisfy", NotPlanned, "No issue yet, although it is access control: `any` lets one of basic auth, external auth or source range suffice; without it each must pass (ingress-nginx's default `all`)."),
    e("server-alias", Different, "Extra host names for every rule host of the Ingress; per host the oldest Ingress that sets aliases wins; an alias that is a rule host is ignored, one two hosts claim goes to the first host by name. Differences: nginx `~regex` names are refused; over HTTPS an alias gets the certificate bound to its own name (or the default), not its host's."),
    e("server-snippet", Dropped, "Never interpreted; redirects, `server-alias`, `from-to-www-redirect`, `custom-http-errors` (issue 13) cover the usual uses."),
    e("service-upstream", Different, "The one upstream is the Service's ClusterIP and port (endpoints kept when it has none, as ingress-nginx); retries then have no other endpoint. Difference: decided per Ingress, not by the first Ingress of the Service."),
    e("session-cookie-change-on-failure", Planned(14), "New endpoint and cookie when the sticky endpoint fails."),
    e("session-cookie-conditional-samesite-none", Planned(14), "Omit `SameSite=None` for browsers known to mishandle it."),
    e("session-cookie-domain", Planned(14), "Cookie `Domain`."),
    e("session-cookie-expires", Planned(14), "Cookie `Expires`, seconds from now."),
    e("session-cookie-max-age", Planned(14), "Cookie `Max-Age`."),
    e("session-cookie-name", Planned(14), "Default `INGRESSCOOKIE`; the value never reveals endpoint addresses (hashed, as ingress-nginx)."),
    e("session-cookie-path", Planned(14), "Cookie `Path`; required with `use-regex`, as in ingress-nginx."),
    e("session-cookie-samesite", Planned(14), "`None`, `Lax`, `Strict`."),
    e("session-cookie-secure", Planned(14), "Cookie `Secure` attribute."),
    e("ssl-ciphers", Planned(15), "Per host; OpenSSL names mapped to rustls suites, unsupported ones refused with a condition, never silently weaker."),
    e("ssl-passthrough", Planned(15), "TCP splice by SNI, with `--enable-ssl-passthrough`. Today ignored: Portico terminates TLS with its own certificate, not the backend's."),
    e("ssl-prefer-server-ciphers", Planned(15), "Server cipher order."),
    e("ssl-redirect", Different, "`true`/`false` overrides `--ssl-redirect` both ways; 308 (the ConfigMap's `http-redirect-code`), `/.well-known/acme-challenge/` exempt. Difference: the request-target is kept as received (spec §5.5) unless `preserve-trailing-slash: \"false\"`; ingress-nginx drops one trailing slash by default."),
    e("stream-snippet", Dropped, "Never interpreted; Portico has no TCP/UDP stream proxy."),
    e("temporal-redirect", Honoured, "Answers every path of the Ingress with the URL as written, 302 by default; wins over `permanent-redirect`. Absolute `http(s)` URLs only, as ingress-nginx."),
    e("temporal-redirect-code", Different, "301, 302, 303, 307. Difference: 300, 304–306 and non-numbers are `InvalidAnnotation` and 302 applies."),
    e("upstream-hash-by", Planned(14), "Consistent hashing on a fixed set of variables (`$request_uri`, `$remote_addr`, `$http_NAME`, `$cookie_NAME`, text), parsed, never evaluated. Scope: the Service; wins over `load-balance`."),
    e("upstream-hash-by-subset", Planned(14), "Hash to a subset of endpoints, then pick at random within it."),
    e("upstream-hash-by-subset-size", Planned(14), "Subset size (default 3)."),
    e("upstream-vhost", Different, "`Host` sent upstream (`X-Forwarded-Host` keeps the client's). Difference: a host name with optional port only; nginx variables (`$host`, `$service_name`…) are `InvalidAnnotation`."),
    e("use-port-in-redirects", Planned(13), "Port in redirect `Location`s. Issue 13 lists the ConfigMap key; this annotation form goes with it."),
    e("use-regex", Different, "Paths become case-insensitive regexes anchored at the start, for every path of the host once any Ingress of the host sets it, in ingress-nginx's location order (see above). Differences: Rust `regex` syntax (PCRE-only constructs are `InvalidPath`, the path never matches), Unicode-aware (`.`, `\\w`, case folding match characters, not bytes); the path is read after spec §3.4 step 5 (escapes of unreserved characters decoded, dot-segments removed)."),
    e("whitelist-source-range", FailsClosed(14), "Alias of `allowlist-source-range`. Today the Ingress fails closed: 503."),
    e("x-forwarded-prefix", Honoured, "Sets `X-Forwarded-Prefix` to the value on requests the Ingress's `rewrite-target` rewrites (only those, as ingress-nginx's `buildProxyPass`); empty: not sent. A value that is not a header value is `InvalidAnnotation`."),
];

#[rustfmt::skip]
pub static CONFIGMAP_KEYS: &[Entry] = &[
    e("access-log-params", NotPlanned, "Portico writes the access log to stdout (`--access-log`)."),
    e("access-log-path", NotPlanned, "Access log on stdout only (`--access-log`)."),
    e("add-headers", Different, "`NAMESPACE/NAME` of a ConfigMap whose headers are set on every answer (Portico's own too). Difference: values are literal; a value with an nginx variable (`$host`) is skipped with a condition, as are invalid names and values."),
    e("allow-backend-server-header", NotPlanned, "No issue yet: Portico replaces the upstream's `Server` with its own."),
    e("allow-cross-namespace-resources", NotPlanned, "No issue yet; today `proxy-ssl-secret` refuses other namespaces, as ingress-nginx's default `false` does."),
    e("allow-snippet-annotations", Different, "Accepted and always treated as `false`: snippets are never interpreted; `\"true\"` is an `UnsupportedConfigMapKey` warning."),
    e("annotation-value-word-blocklist", NotPlanned, "Same reason: values are parsed, never interpolated."),
    e("annotations-risk-level", NotPlanned, "Every annotation is parsed into a typed value; nothing is templated, so there are no risk levels to choose."),
    e("app-root", Planned(13), "Global form of the annotation."),
    e("bind-address", NotPlanned, "No issue yet; flags `--http-addr`, `--https-addr`."),
    e("block-cidrs", Unenforced(14), "Global CIDR block list."),
    e("block-referers", Unenforced(14), "As `block-user-agents`."),
    e("block-user-agents", Unenforced(14), "Strings, or regexes in Rust `regex` syntax (nginx `map` syntax used PCRE)."),
    e("brotli-level", Honoured, "Default 4; 0–11, anything else is an `InvalidConfigMapKey` condition and 4 applies."),
    e("brotli-min-length", Honoured, "Default 20; checked against a known `Content-Length` only, as ngx_brotli."),
    e("brotli-types", Honoured, "ingress-nginx's default list; `text/html` always, `*` for any type."),
    e("client-body-buffer-size", Planned(14), "Memory for buffered request bodies (spec page §5)."),
    e("client-body-timeout", NotPlanned, "No issue yet; nearest flag `--client-idle-timeout` (75 s without a byte either way)."),
    e("client-header-buffer-size", NotPlanned, "nginx buffer tuning; the limit on a request head is `--max-header-bytes`."),
    e("client-header-timeout", NotPlanned, "No issue yet; flag `--client-header-timeout` (10 s; ingress-nginx 60 s)."),
    e("compute-full-forwarded-for", Honoured, "For a trusted peer (`use-forwarded-headers` and `proxy-real-ip-cidr`), the incoming `X-Forwarded-For` plus the peer, instead of the client address alone."),
    e("custom-http-errors", Different, "Statuses (300–599; bad entries skipped with a condition) answered by `--default-backend-service` for every Ingress without its own list, even one with a `default-backend` (nginx's `http`-level `error_page`); differences as the annotation's."),
    e("debug-connections", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("default-type", NotPlanned, "Portico serves no files; its own answers are `text/plain`."),
    e("denylist-source-range", Unenforced(14), "Global deny list; an annotation overrides it."),
    e("disable-access-log", NotPlanned, "No issue yet; flag `--access-log off`."),
    e("disable-http-access-log", NotPlanned, "No issue yet; flag `--access-log off`."),
    e("disable-ipv6", NotPlanned, "No issue yet; listen addresses are `--http-addr`/`--https-addr`."),
    e("disable-ipv6-dns", NotPlanned, "nginx resolver setting; ExternalName names use the system resolver."),
    e("disable-proxy-intercept-errors", NotPlanned, "No issue yet (goes with `custom-http-errors`)."),
    e("disable-stream-access-log", NotPlanned, "No TCP/UDP stream proxy."),
    e("enable-access-log-for-default-backend", NotPlanned, "Portico's access log already has a line for every request, default backend included."),
    e("enable-aio-write", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("enable-auth-access-log", NotPlanned, "No issue yet (logging of auth subrequests)."),
    e("enable-brotli", Different, "Brotli by `Accept-Encoding`, preferred over gzip as with ngx_brotli. `Vary: Accept-Encoding` is sent even without `use-gzip` (nginx only sent it with `gzip_vary`, i.e. with `use-gzip`)."),
    e("enable-modsecurity", NotPlanned, "ModSecurity WAF: out of scope."),
    e("enable-multi-accept", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("enable-ocsp", NotPlanned, "No issue yet: OCSP stapling."),
    e("enable-opentelemetry", NotPlanned, "No issue yet: Portico exports no traces."),
    e("enable-owasp-modsecurity-crs", NotPlanned, "ModSecurity: out of scope."),
    e("enable-real-ip", Honoured, "Client address (`X-Real-IP`, `X-Forwarded-For`) from `forwarded-for-header` for peers in `proxy-real-ip-cidr`, without trusting the other `X-Forwarded-*`. Only the forwarded headers use it: the access log and metrics keep the peer address."),
    e("enable-serial-reloads", NotPlanned, "Portico never reloads."),
    e("enable-syslog", NotPlanned, "Logs go to stdout; ship them with the cluster's log collector."),
    e("enable-underscores-in-headers", NotPlanned, "Portico forwards header names with underscores (ingress-nginx drops them by default); no switch planned."),
    e("error-log-level", NotPlanned, "No issue yet; flag `--log-level`."),
    e("error-log-path", NotPlanned, "Logs go to stdout (`--log-format`)."),
    e("force-ssl-redirect", Honoured, "Default `false`; `true` redirects plain HTTP (308) on every route, with a TLS section or not, whatever `ssl-redirect` says; it is the default of the annotation, so an Ingress opts out with `\"false\"` (as ingress-nginx's `rewrite/main.go`); ACME challenges exempt."),
    e("forwarded-for-header", Honoured, "Default `X-Forwarded-For`; the header the client address and `X-Original-Forwarded-For` are read from."),
    e("forwarded-for-proxy-protocol-header", NotPlanned, "No issue yet."),
    e("forwarded-host-header", NotPlanned, "No issue yet (header read for `X-Original-Forwarded-Host`)."),
    e("generate-request-id", Honoured, "Default `true`: `X-Request-ID` generated when absent, passed through when present; `false` generates none."),
    e("geoip2-autoreload-in-minutes", NotPlanned, "See `use-geoip2`."),
    e("global-allowed-response-headers", Honoured, "Comma-separated names a `custom-headers` ConfigMap may set, compared exactly as written (case-sensitive, as ingress-nginx); default none."),
    e("global-auth-always-set-cookie", Honoured, "As `auth-always-set-cookie`."),
    e("global-auth-cache-duration", Different, "As `auth-cache-duration`; an invalid one makes every path global auth covers answer 503."),
    e("global-auth-cache-key", Different, "As `auth-cache-key`."),
    e("global-auth-method", Different, "As `auth-method`; an invalid value makes every path global auth covers answer 503 (ingress-nginx ignored the value)."),
    e("global-auth-request-redirect", Different, "As `auth-request-redirect`."),
    e("global-auth-response-headers", Different, "As `auth-response-headers`; an invalid name makes every path global auth covers answer 503."),
    e("global-auth-signin", Different, "As `auth-signin`."),
    e("global-auth-signin-redirect-param", Honoured, "Default `rd`."),
    e("global-auth-snippet", Dropped, "Never interpreted (snippet)."),
    e("global-auth-url", Different, "External auth (as `auth-url`) for every Ingress without its own `auth-url` or `enable-global-auth: false`, except paths under `no-auth-locations`. An unusable URL makes every path it would cover answer 503 (ingress-nginx served them unauthenticated)."),
    e("grpc-buffer-size-kb", NotPlanned, "nginx gRPC buffer tuning."),
    e("gzip-disable", NotPlanned, "No issue yet (User-Agent regexes)."),
    e("gzip-level", Honoured, "Default 1; 1–9."),
    e("gzip-min-length", Honoured, "Default 256; checked against a known `Content-Length` only, as nginx."),
    e("gzip-types", Honoured, "ingress-nginx's default list; `text/html` always, `*` for any type."),
    e("hide-headers", NotPlanned, "No issue yet: removing upstream response headers."),
    e("hsts", Different, "On by default on HTTPS answers, replacing an upstream's own header (as ingress-nginx); never on plain HTTP. Difference: also on answers for hosts served with the default certificate (clients ignore it there)."),
    e("hsts-include-subdomains", Honoured, "Default `true`."),
    e("hsts-max-age", Honoured, "Default 31536000."),
    e("hsts-preload", Honoured, "Default `false`."),
    e("http-access-log-path", NotPlanned, "Access log on stdout only."),
    e("http-redirect-code", Honoured, "301, 302, 307, 308 (default) for the HTTPS and www redirects."),
    e("http-snippet", Dropped, "Never interpreted (snippet)."),
    e("http2-max-concurrent-streams", NotPlanned, "No issue yet; flag `--http2-max-concurrent-streams` (128, as ingress-nginx)."),
    e("http2-max-field-size", NotPlanned, "Deprecated in ingress-nginx; `--max-header-bytes` bounds headers."),
    e("http2-max-header-size", NotPlanned, "Deprecated in ingress-nginx; `--max-header-bytes`."),
    e("http2-max-requests", NotPlanned, "Deprecated in ingress-nginx (use `keep-alive-requests`)."),
    e("ignore-invalid-headers", NotPlanned, "Portico (hyper) answers 400 to invalid header names rather than dropping them."),
    e("jaeger-baggage-header", NotPlanned, "Removed from ingress-nginx."),
    e("jaeger-collector-host", NotPlanned, "Jaeger/OpenTracing was removed from ingress-nginx's code; the key does nothing there either."),
    e("jaeger-collector-port", NotPlanned, "Removed from ingress-nginx (see `jaeger-collector-host`)."),
    e("jaeger-debug-header", NotPlanned, "Removed from ingress-nginx."),
    e("jaeger-endpoint", NotPlanned, "Removed from ingress-nginx."),
    e("jaeger-propagation-format", NotPlanned, "Removed from ingress-nginx."),
    e("jaeger-sampler-host", NotPlanned, "Removed from ingress-nginx."),
    e("jaeger-sampler-param", NotPlanned, "Removed from ingress-nginx."),
    e("jaeger-sampler-port", NotPlanned, "Removed from ingress-nginx."),
    e("jaeger-sampler-type", NotPlanned, "Removed from ingress-nginx."),
    e("jaeger-service-name", NotPlanned, "Removed from ingress-nginx."),
    e("jaeger-trace-baggage-header-prefix", NotPlanned, "Removed from ingress-nginx."),
    e("jaeger-trace-context-header-name", NotPlanned, "Removed from ingress-nginx."),
    e("keep-alive", Different, "Overrides `--client-idle-timeout` (75 s, as ingress-nginx) for connections accepted afterwards; `0` closes every HTTP/1 connection after one answer. An idle HTTP/1 connection still ends after `--client-header-timeout` (10 s) when that is shorter."),
    e("keep-alive-requests", Different, "HTTP/1: the answer to the Nth request says `Connection: close` and the connection ends. Without the key there is no limit (ingress-nginx: 1000); HTTP/2 connections are not limited."),
    e("large-client-header-buffers", Different, "`NUMBER SIZE` bounds the whole request head at NUMBER × SIZE (431), not each header line at SIZE; it can only lower `--max-header-bytes` (32 KiB), which sizes the read buffer."),
    e("limit-conn-status-code", Planned(14), "Default 503."),
    e("limit-conn-zone-variable", NotPlanned, "nginx variable; limits key on the client address (issue 14)."),
    e("limit-rate", Planned(14), "Global form of the annotation."),
    e("limit-rate-after", Planned(14), "Global form of the annotation."),
    e("limit-req-status-code", Planned(14), "Default 503."),
    e("load-balance", Planned(14), "Flag today: `--load-balance` (`round_robin` default, as ingress-nginx)."),
    e("location-snippet", Dropped, "Never interpreted (snippet)."),
    e("log-format-escape-json", Different, "Escapes the values of a `log-format-upstream` template as nginx's `escape=json`; Portico's own JSON and logfmt lines escape per their syntax anyway."),
    e("log-format-escape-none", Different, "As `log-format-escape-json`, for `escape=none` (wins over `-json`, as nginx.tmpl)."),
    e("log-format-stream", NotPlanned, "No TCP/UDP stream proxy."),
    e("log-format-upstream", Different, "A template of named fields: `$variables` from a fixed list (docs/metrics.md) and `$http_NAME`, never evaluated; an unknown one (`$bytes_sent`, `$upstream_status`, ...) is a condition and Portico's own format applies, not ingress-nginx's `upstreaminfo`. Times are UTC."),
    e("lua-shared-dicts", NotPlanned, "No Lua in Portico."),
    e("main-snippet", Dropped, "Never interpreted (snippet)."),
    e("map-hash-bucket-size", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("max-worker-connections", NotPlanned, "nginx internals; nearest flag `--max-connections`."),
    e("max-worker-open-files", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("modsecurity-snippet", Dropped, "Never interpreted (snippet)."),
    e("nginx-status-ipv4-whitelist", NotPlanned, "No nginx status page; Portico's admin listener is `--admin-addr`."),
    e("nginx-status-ipv6-whitelist", NotPlanned, "Same."),
    e("no-auth-locations", Honoured, "Ingress paths starting with one of these (comma-separated) skip external auth, per-Ingress and global (default `/.well-known/acme-challenge`)."),
    e("no-tls-redirect-locations", NotPlanned, "No issue yet; Portico always exempts `/.well-known/acme-challenge/`, the default."),
    e("opentelemetry-config", NotPlanned, "No issue yet (tracing)."),
    e("opentelemetry-operation-name", NotPlanned, "No issue yet (tracing)."),
    e("opentelemetry-trust-incoming-span", NotPlanned, "No issue yet (tracing)."),
    e("otel-max-export-batch-size", NotPlanned, "No issue yet (tracing)."),
    e("otel-max-queuesize", NotPlanned, "No issue yet (tracing)."),
    e("otel-sampler", NotPlanned, "No issue yet (tracing)."),
    e("otel-sampler-parent-based", NotPlanned, "No issue yet (tracing)."),
    e("otel-sampler-ratio", NotPlanned, "No issue yet (tracing)."),
    e("otel-schedule-delay-millis", NotPlanned, "No issue yet (tracing)."),
    e("otel-service-name", NotPlanned, "No issue yet (tracing)."),
    e("otlp-collector-host", NotPlanned, "No issue yet (tracing)."),
    e("otlp-collector-port", NotPlanned, "No issue yet (tracing)."),
    e("preserve-trailing-slash", Planned(13), "Global form; Portico keeps trailing slashes today."),
    e("proxy-add-original-uri-header", NotPlanned, "No issue yet (`X-Original-URI`)."),
    e("proxy-body-size", Honoured, "Overrides `--proxy-body-size` (1m, as ingress-nginx); the per-Ingress annotation still wins."),
    e("proxy-buffer-size", Planned(14), "Global form of the annotation."),
    e("proxy-buffering", Planned(14), "Default `off`, which is what Portico does (responses stream)."),
    e("proxy-buffers-number", NotPlanned, "nginx buffer tuning; Portico streams responses."),
    e("proxy-busy-buffers-size", NotPlanned, "nginx buffer tuning."),
    e("proxy-connect-timeout", Honoured, "Overrides `--upstream-connect-timeout` (5 s, as ingress-nginx); whole seconds, or `5s`/`500ms`."),
    e("proxy-cookie-domain", Planned(13), "Global form of the annotation."),
    e("proxy-cookie-path", Planned(13), "Global form of the annotation."),
    e("proxy-headers-hash-bucket-size", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("proxy-headers-hash-max-size", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("proxy-http-version", Planned(14), "Global form of the annotation."),
    e("proxy-max-temp-file-size", Planned(14), "Global form of the annotation."),
    e("proxy-next-upstream", Planned(14), "Global form; today fixed (connect errors; see the annotation table)."),
    e("proxy-next-upstream-timeout", Planned(14), "Global form of the annotation."),
    e("proxy-next-upstream-tries", Planned(14), "Flag today: `--proxy-next-upstream-tries` (3, as ingress-nginx)."),
    e("proxy-protocol-header-timeout", NotPlanned, "No issue yet; the PROXY header must arrive within `--client-header-timeout`."),
    e("proxy-read-timeout", Different, "Overrides `--upstream-response-timeout` (60 s); as the annotation, it bounds the wait for the response headers, not each read."),
    e("proxy-real-ip-cidr", Different, "Peers trusted with `use-forwarded-headers` / `enable-real-ip` (default `0.0.0.0/0`), besides `--trusted-proxies`. Difference: the trust also gates `X-Forwarded-Proto`/`-Host`/`-Port`, which ingress-nginx takes from any peer once `use-forwarded-headers` is on (so with the default, IPv6 peers are not trusted)."),
    e("proxy-redirect-from", Planned(13), "Global form of the annotation."),
    e("proxy-redirect-to", Planned(13), "Global form of the annotation."),
    e("proxy-request-buffering", Planned(14), "Default `on` (spec page §5). Today bodies are streamed."),
    e("proxy-send-timeout", Different, "Overrides `--upstream-send-timeout` (60 s, as ingress-nginx); the annotation still wins. Difference: fires after one to two timeouts."),
    e("proxy-set-headers", Different, "`NAMESPACE/NAME` of a ConfigMap whose headers are set on every upstream request, after Portico's own (replacing one of the same name). Difference: as `add-headers`, nginx variables are not expanded (such a header is skipped with a condition)."),
    e("proxy-ssl-location-only", NotPlanned, "No issue yet."),
    e("proxy-stream-next-upstream", NotPlanned, "No TCP/UDP stream proxy."),
    e("proxy-stream-next-upstream-timeout", NotPlanned, "No TCP/UDP stream proxy."),
    e("proxy-stream-next-upstream-tries", NotPlanned, "No TCP/UDP stream proxy."),
    e("proxy-stream-responses", NotPlanned, "No TCP/UDP stream proxy."),
    e("proxy-stream-timeout", NotPlanned, "No TCP/UDP stream proxy (ingress-nginx's `--tcp-services-configmap`)."),
    e("relative-redirects", NotPlanned, "No issue yet; Portico's redirects are absolute."),
    e("retry-non-idempotent", Planned(14), "Global form of `proxy-next-upstream`'s `non_idempotent`."),
    e("reuse-port", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("server-name-hash-bucket-size", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("server-name-hash-max-size", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("server-snippet", Dropped, "Never interpreted (snippet)."),
    e("server-tokens", Different, "Accepted; every answer carries `Server: portico` (the upstream's replaced), `true` or `false`: Portico sends no version to hide, and the Ingress conformance suite expects a `Server` header, which ingress-nginx's default (`false`) removes."),
    e("service-upstream", Planned(13), "Global form of the annotation."),
    e("skip-access-log-urls", NotPlanned, "No issue yet."),
    e("ssl-buffer-size", NotPlanned, "nginx TLS record buffer tuning."),
    e("ssl-ciphers", Planned(15), "OpenSSL names mapped to rustls suites; unsupported ones refused with a condition."),
    e("ssl-dh-param", NotPlanned, "rustls has no finite-field DHE."),
    e("ssl-early-data", NotPlanned, "No issue yet: TLS 1.3 0-RTT (replayable requests)."),
    e("ssl-ecdh-curve", NotPlanned, "No issue yet; rustls chooses among its key-exchange groups."),
    e("ssl-protocols", Planned(15), "Portico serves TLS 1.2 and 1.3 today, ingress-nginx's default."),
    e("ssl-redirect", Honoured, "Overrides `--ssl-redirect` (true, as ingress-nginx); the per-Ingress annotation still wins."),
    e("ssl-reject-handshake", NotPlanned, "No issue yet; unknown names get the default (or generated) certificate."),
    e("ssl-session-cache", Planned(15), "Issue 15: ConfigMap `ssl-session-*`."),
    e("ssl-session-cache-size", Planned(15), "As above."),
    e("ssl-session-ticket-key", Planned(15), "As above."),
    e("ssl-session-tickets", Planned(15), "As above."),
    e("ssl-session-timeout", Planned(15), "As above."),
    e("stream-access-log-path", NotPlanned, "No TCP/UDP stream proxy."),
    e("stream-snippet", Dropped, "Never interpreted (snippet)."),
    e("strict-validate-path-type", NotPlanned, "Portico validates paths as the Ingress API does; `ImplementationSpecific` is a literal prefix."),
    e("syslog-host", NotPlanned, "See `enable-syslog`."),
    e("syslog-port", NotPlanned, "See `enable-syslog`."),
    e("upstream-hash-by", Planned(14), "Global form of the annotation."),
    e("upstream-hash-by-subset", Planned(14), "Global form of the annotation."),
    e("upstream-hash-by-subset-size", Planned(14), "Global form of the annotation."),
    e("upstream-keepalive-connections", Different, "Idle connections kept per endpoint and worker (nginx: per upstream and worker); `0` keeps none. Without the key, no cap (ingress-nginx: 320). Plain HTTP/1.1 endpoints only (TLS, HTTP/2 and ExternalName upstreams use another pool)."),
    e("upstream-keepalive-requests", Different, "Requests per upstream connection, then it is closed. Without the key, no limit (ingress-nginx: 10000). Plain HTTP/1.1 endpoints only."),
    e("upstream-keepalive-time", NotPlanned, "No issue yet: maximum upstream connection lifetime."),
    e("upstream-keepalive-timeout", Different, "Overrides `--upstream-idle-timeout` (60 s, as ingress-nginx) for plain HTTP/1.1 endpoints; TLS, HTTP/2 and ExternalName upstreams keep the flag's."),
    e("use-forwarded-headers", Honoured, "Trust incoming `X-Forwarded-For`/`-Proto`/`-Host`/`-Port` from peers in `proxy-real-ip-cidr`; the first `X-Forwarded-Host` entry is also the upstream `Host` and, without its port, the host of the HTTPS redirect (as ingress-nginx). Default `false`."),
    e("use-geoip", NotPlanned, "Removed from ingress-nginx's code (still in its table)."),
    e("use-geoip2", NotPlanned, "No issue yet: MaxMind GeoIP2 databases."),
    e("use-gzip", Different, "gzip by `Accept-Encoding` for 200/403/404 responses, never on encoded responses, ranges, HEAD, 204/304; streamed, flushed when the upstream pauses. `Accept-Encoding: *` also counts (nginx looks for `gzip` only)."),
    e("use-http2", NotPlanned, "No issue yet; Portico always offers `h2` by ALPN on HTTPS."),
    e("use-port-in-redirects", Honoured, "Writes the HTTPS port (443) into the HTTPS redirect's `Location`."),
    e("use-proxy-protocol", Honoured, "Overrides `--proxy-protocol`; read per connection, so a change applies to new connections."),
    e("variables-hash-bucket-size", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("variables-hash-max-size", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("whitelist-source-range", Unenforced(14), "Global allow list; an annotation overrides it. Fails closed."),
    e("worker-cpu-affinity", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("worker-processes", NotPlanned, "nginx internals; Portico uses one process with a thread per core."),
    e("worker-shutdown-timeout", NotPlanned, "No issue yet; flag `--shutdown-timeout` (30 s; ingress-nginx 240 s)."),
];
#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const GUIDE: &str = "docs/migrating-from-ingress-nginx.md";

    fn guide() -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GUIDE);
        std::fs::read_to_string(path).expect("the migration guide")
    }

    /// One row of a guide table: name (without its † ‡ marks), status (without its ¹ mark),
    /// note.
    type Row = (String, String, String);

    fn rows(section: &str) -> Vec<Row> {
        section
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.strip_prefix("| `")?.splitn(3, " | ").collect();
                let [name, status, note] = cells[..] else {
                    return None;
                };
                let name = name.trim_end_matches([' ', '†', '‡']).strip_suffix('`')?;
                let note = note.strip_suffix(" |")?;
                Some((
                    name.to_string(),
                    status.trim_end_matches('¹').to_string(),
                    note.to_string(),
                ))
            })
            .collect()
    }

    /// The guide's annotation table and ConfigMap key table.
    fn tables() -> (Vec<Row>, Vec<Row>) {
        let guide = guide();
        let (_, rest) = guide
            .split_once("\n## Annotations\n")
            .expect("an Annotations section");
        let (annotations, keys) = rest
            .split_once("\n## ConfigMap keys\n")
            .expect("a ConfigMap keys section after it");
        // The key table ends the guide, or the next section does.
        let keys = keys.split("\n## ").next().unwrap_or_default();
        (rows(annotations), rows(keys))
    }

    fn agree(what: &str, guide: &[Row], catalogue: &[Entry]) {
        for (i, (row, entry)) in guide.iter().zip(catalogue).enumerate() {
            assert_eq!(
                (row.0.as_str(), row.1.clone()),
                (entry.name, entry.status.guide()),
                "{what} row {}: the guide ({GUIDE}) and src/migrate/catalog.rs disagree; flip \
                 the catalogue's status (or the guide's) so both say the same",
                i + 1
            );
        }
        assert_eq!(
            guide.len(),
            catalogue.len(),
            "{what}: the guide has {} rows, the catalogue {}",
            guide.len(),
            catalogue.len()
        );
    }

    #[test]
    fn the_guide_and_the_catalogue_agree_row_by_row() {
        let (annotations, keys) = tables();
        assert_eq!(
            annotations.len(),
            138,
            "ingress-nginx v1.15.1 has 138 annotations"
        );
        assert_eq!(
            keys.len(),
            208,
            "ingress-nginx v1.15.1 has 208 ConfigMap keys"
        );
        agree("annotations", &annotations, ANNOTATIONS);
        agree("ConfigMap keys", &keys, CONFIGMAP_KEYS);
    }

    /// The guide says which access-control annotations make an Ingress fail closed today; the
    /// catalogue's `FailsClosed` rows (verdict "blocks") must be exactly those.
    #[test]
    fn the_guide_says_fails_closed_exactly_where_the_catalogue_blocks() {
        let (annotations, _) = tables();
        for (name, _, note) in &annotations {
            let says = note.contains("Today the Ingress fails closed");
            let entry = annotation(name).expect("every guide row is in the catalogue");
            assert_eq!(
                says,
                matches!(entry.status, Status::FailsClosed(_)),
                "annotation {name}: the guide's note and the catalogue disagree on failing closed"
            );
        }
    }

    /// The counts at the top of the guide follow its tables.
    #[test]
    fn the_guide_summary_counts_the_catalogue() {
        let guide = guide();
        for (label, table) in [
            ("[Annotations](#annotations)", ANNOTATIONS),
            ("[ConfigMap keys](#configmap-keys)", CONFIGMAP_KEYS),
        ] {
            let line = guide
                .lines()
                .find(|l| l.starts_with(&format!("| {label} |")))
                .expect("a summary row");
            let count = |f: &dyn Fn(Status) -> bool| table.iter().filter(|e| f(e.status)).count();
            let issue = |n: u8| {
                count(
                    &|s| matches!(s, Status::Planned(i) | Status::FailsClosed(i) | Status::Unenforced(i) if i == n),
                )
            };
            let expected = format!(
                "| {label} | {} | {} | {} / {} / {} | {} | {} | {} |",
                count(&|s| s == Status::Honoured),
                count(&|s| s == Status::Different),
                issue(13),
                issue(14),
                issue(15),
                count(&|s| s == Status::Dropped),
                count(&|s| s == Status::NotPlanned),
                table.len()
            );
            assert_eq!(line, expected, "{GUIDE}: the summary row of {label}");
        }
    }

    #[test]
    fn tables_are_sorted_and_unique() {
        for table in [ANNOTATIONS, CONFIGMAP_KEYS] {
            assert!(table.windows(2).all(|w| w[0].name < w[1].name));
        }
        assert!(annotation("rewrite-target").is_some());
        assert!(configmap_key("use-forwarded-headers").is_some());
        assert!(annotation("rewrite-targte").is_none());
    }

    /// What translate reads is honoured, and only that; what it fails closed on blocks, and
    /// only that; snippets are dropped. An annotation implemented in translate must flip its
    /// catalogue row (and the guide's) in the same change.
    #[test]
    fn the_catalogue_follows_what_translate_implements() {
        let implemented: BTreeSet<&str> = crate::translate::IMPLEMENTED.iter().copied().collect();
        let honoured: BTreeSet<&str> = ANNOTATIONS
            .iter()
            .filter(|e| matches!(e.status, Status::Honoured | Status::Different))
            .map(|e| e.name)
            .collect();
        assert_eq!(
            implemented, honoured,
            "translate's IMPLEMENTED and the catalogue's honoured annotations"
        );
        let access: BTreeSet<&str> = crate::translate::ACCESS_CONTROL.iter().copied().collect();
        let blocks: BTreeSet<&str> = ANNOTATIONS
            .iter()
            .filter(|e| e.status.verdict() == Verdict::Blocks)
            .map(|e| e.name)
            .collect();
        assert_eq!(
            access, blocks,
            "translate's ACCESS_CONTROL and the catalogue's blocking annotations"
        );
        for entry in ANNOTATIONS {
            assert_eq!(
                entry.status == Status::Dropped,
                entry.name.ends_with("-snippet"),
                "{}: translate drops exactly the snippets",
                entry.name
            );
            assert!(
                !matches!(entry.status, Status::Unenforced(_)),
                "{}",
                entry.name
            );
        }
        // The same for the controller ConfigMap: what translate parses is honoured, and only
        // that (`default-ssl-certificate` is a flag in ingress-nginx, and no row here).
        let parsed: BTreeSet<&str> = crate::translate::configmap::IMPLEMENTED
            .iter()
            .copied()
            .filter(|k| configmap_key(k).is_some())
            .collect();
        let honoured: BTreeSet<&str> = CONFIGMAP_KEYS
            .iter()
            .filter(|e| matches!(e.status, Status::Honoured | Status::Different))
            .map(|e| e.name)
            .collect();
        assert_eq!(
            parsed, honoured,
            "translate::configmap::IMPLEMENTED and the catalogue's honoured ConfigMap keys"
        );
        for entry in CONFIGMAP_KEYS {
            assert!(
                !matches!(entry.status, Status::FailsClosed(_)),
                "{}",
                entry.name
            );
            if entry.name.ends_with("-snippet") {
                assert_eq!(entry.status, Status::Dropped, "{}", entry.name);
            }
        }
    }
}
