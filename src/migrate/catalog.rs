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

use Status::{Different, Dropped, Honoured, NotPlanned, Planned};

#[rustfmt::skip]
pub static ANNOTATIONS: &[Entry] = &[
    e("affinity", Different, "`cookie` (the only type); sessions stay on one endpoint, passive health and retries kept. Scope: the Service, as ingress-nginx: on when any Ingress routing to it sets it, the `session-cookie-*` attributes of the youngest such Ingress, the cookie issued only on those Ingresses' paths. Difference: the cookie's key is hashed differently, so a session begun under ingress-nginx moves (once) to a new endpoint."),
    e("affinity-canary-behavior", Different, "`sticky` (default) or `legacy`, read from the canary Ingress; an invalid value is `InvalidAnnotation` (sticky). With cookie affinity (`affinity: cookie`) on the main backend, a request whose cookie names the main backend stays there and one whose cookie names the canary goes to it, before header, cookie and weight (ingress-nginx `balancer.lua`); `sticky`: the canary issues its own cookie (the main backend's settings), so a client it served stays; `legacy`: it issues none. Difference: under `legacy` ingress-nginx used the canary Ingress's own affinity annotations; Portico reads none of a canary's other annotations, so the canary has no affinity."),
    e("affinity-mode", Honoured, "`balanced` (default): a random key consistently hashed onto the endpoints, scaling up moves some sessions; `persistent`: the cookie holds a salted hash of the endpoint, new endpoints take no sessions. Scope: the Service, from the oldest Ingress that sets it."),
    e("allowlist-source-range", Honoured, "403 outside the list (nginx `allow ...; deny all;`), after `denylist-source-range`; the client address as `use-forwarded-headers` / `proxy-real-ip-cidr` / `--trusted-proxies` decide it; IPv4-mapped IPv6 clients match IPv4 ranges. An entry that is no address or network fails closed: the Ingress's paths answer 503 (ingress-nginx denied the location too)."),
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
    e("auth-realm", Different, "Realm in `WWW-Authenticate: Basic realm=\"...\"` (empty without it, as nginx). Difference: a value outside ingress-nginx's character set (letters, digits, space, `-._~/:`) fails closed (503) rather than rejecting the Ingress."),
    e("auth-request-redirect", Different, "`X-Auth-Request-Redirect` sent to the auth service (default: the request URI). Literal: a value with an nginx variable is invalid and the default applies."),
    e("auth-response-headers", Honoured, "Copied from the auth service's 2xx answer into the upstream request, replacing the client's (removed when the answer lacks it); an invalid name: 503."),
    e("auth-secret", Different, "`name` or `namespace/name`, the Ingress's namespace only (another: 503, as ingress-nginx without `allow-cross-namespace-resources`); missing Secret or no `auth` key: 503. bcrypt, apr1, `$1$`, `$5$`/`$6$`, `{SHA}`, `{SSHA}`, `{PLAIN}`. Difference: DES-crypt lines and bcrypt cost above 16 are refused (that user gets 401, a warning); more than 1 MiB of users: 503."),
    e("auth-secret-type", Different, "`auth-file` (default: htpasswd lines in key `auth`) or `auth-map` (each key a user). Difference: another value fails closed (503), as ingress-nginx's denied location."),
    e("auth-signin", Different, "On 401, a 302 there with `rd=SCHEME://HOST` + the escaped request URI, as ingress-nginx builds it (with the auth answer's cookies). Of nginx's variables only `$host`, `$http_host`, `$best_http_host`, `$scheme`, `$pass_access_scheme`, `$request_uri` and `$escaped_request_uri` are filled; another makes it invalid (the 401 is answered)."),
    e("auth-signin-redirect-param", Honoured, "Name of that parameter (default `rd`); not kept when the sign-in URL already sets it."),
    e("auth-snippet", Dropped, "Never interpreted; `auth-proxy-set-headers`, `auth-response-headers`, `auth-cache-key` (issue 15)."),
    e("auth-tls-error-page", Different, "A 302 to this URL instead of the 400 for a missing or unverified certificate (nginx `error_page 495 496 = URL`). Difference: only an absolute `http://`/`https://` URL; a path or `@location` (an nginx internal redirect) fails closed: 503."),
    e("auth-tls-match-cn", Different, "Regex (unanchored, as nginx's `!~`) on the subject DN in RFC 2253 form; 403 when it does not match. Difference: Rust `regex` syntax, PCRE-only constructs named and refused; an invalid value (no `CN=` prefix, bad regex) fails closed (503) where ingress-nginx dropped the check."),
    e("auth-tls-pass-certificate-to-upstream", Different, "`ssl-client-cert` (URL-encoded PEM, nginx `$ssl_client_escaped_cert`); `ssl-client-verify`, `-subject-dn`, `-issuer-dn` are always sent. Difference: a client's own `ssl-client-*` headers are always removed on these hosts (ingress-nginx forwarded a client's `ssl-client-cert` when this was off); an invalid value fails closed."),
    e("auth-tls-secret", Different, "Client certificates against `ca.crt` (optional `ca.crl`), for the whole host, from its oldest Ingress that sets it; the handshake asks only on hosts that want one (SNI decides); SNI naming another host than `Host` is 421, as nginx. Differences: a missing Secret or a bundle/CRL with anything unreadable fails closed (503); plain HTTP counts as no certificate (400 with `on`) instead of serving unverified; no TLS session resumption on these hosts; kube mode reads `kubernetes.io/tls` and `Opaque` Secrets (other types are not watched)."),
    e("auth-tls-verify-client", Honoured, "`on` (default), `off`, `optional`, `optional_no_ca`; 400 after the handshake for a missing or bad certificate (`auth-tls-error-page` redirects); an invalid value means `on`, as ingress-nginx."),
    e("auth-tls-verify-depth", Different, "Most certificates above the client's, the CA included (default 1, `0` means 1). Difference: counts the intermediates the client sends (a copy of a bundle CA is not counted); webpki's own path-length bound also applies."),
    e("auth-type", Different, "`basic`: 401 with `WWW-Authenticate` until a listed user's password is sent. Difference: `digest` is not implemented and fails closed (503); `auth-secret` without `auth-type` fails closed too (ingress-nginx served unprotected)."),
    e("auth-url", Different, "External auth as ingress-nginx: the client's headers (no body) plus `X-Original-URL`, `X-Original-Method`, `X-Auth-Request-Redirect`, `X-Sent-From`, `X-Real-IP`, `X-Forwarded-For`, `X-Request-ID`; 2xx proxies, 401/403 answer so, any other status, an auth service down or slower than the proxy timeouts 500. Differences: an nginx variable in the URL (`http://$host/...`), a scheme other than http(s) or an invalid URL make the Ingress answer 503; an auth URL served by a path of the same Ingress is refused (503); an auth request that comes back into Portico onto a route asking for auth again answers 503 (loop)."),
    e("backend-protocol", Different, "`HTTP`, `HTTPS`, `GRPC`, `GRPCS` as ingress-nginx, plus `H2C`. `AUTO_HTTP` and `FCGI` are `InvalidAnnotation`; without a valid value the Service port's `appProtocol` decides (ingress-nginx: HTTP)."),
    e("canary", Different, "Creates no routes: attaches to the main backend (Service and port) of the non-canary route with the same host, path and pathType, as ingress-nginx (kept surprise: every route using that backend, on any host, consults the canary); one canary per backend, the oldest; its other annotations are ignored. Difference: equal creation times rank by namespace/name ascending (ingress-nginx: descending)."),
    e("canary-by-cookie", Honoured, "`always`/`never` in this cookie; any other value falls through to the weight."),
    e("canary-by-header", Honoured, "`always`/`never` in this header (`-` and `_` alike, as nginx); any other value falls through to the cookie, then the weight."),
    e("canary-by-header-pattern", Different, "Unanchored, case-sensitive search, ignored when `-value` is set, as ingress-nginx; Rust `regex` syntax: a PCRE-only construct is an `InvalidAnnotation` naming it, and (as ingress-nginx's runtime regex error did) requests carrying the header then stay on the main backend."),
    e("canary-by-header-value", Honoured, "Exact value that selects the canary (with `canary-by-header`, replacing `always`/`never`); other values fall through."),
    e("canary-weight", Honoured, "Requests drawn at random (`weight` of the total); outside 0–total: `InvalidAnnotation`, clamped (what ingress-nginx's draw gave)."),
    e("canary-weight-total", Honoured, "Default 100; below 100 ingress-nginx's Lua draws from 100, and so does Portico (with an `InvalidAnnotation` warning)."),
    e("client-body-buffer-size", Different, "Accepted and validated (`1000`, `1k`, `1M`; `1b` is an `InvalidAnnotation`), no effect: Portico holds a buffered body in memory whole (see `proxy-request-buffering`), never in a temporary file."),
    e("configuration-snippet", Dropped, "Never interpreted (spec page §3); typed replacements: `custom-headers`, `x-forwarded-prefix`, redirects (issue 13), `enable-cors`, `limit-*`, source ranges (issue 14)."),
    e("connection-proxy-header", NotPlanned, "Portico manages `Connection` itself (hop-by-hop removal, upgrades)."),
    e("cors-allow-credentials", Honoured, "Default `true`."),
    e("cors-allow-headers", Honoured, "Default `DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization`."),
    e("cors-allow-methods", Honoured, "Default `GET, PUT, POST, DELETE, PATCH, OPTIONS`."),
    e("cors-allow-origin", Different, "List, `null` and `scheme://*.domain[:port]` wildcards matched as ingress-nginx does (whole origin, any case, `*` one label); default `*`. Difference: an entry that is not an origin (a path, no scheme) is a condition and skipped; ingress-nginx then allowed every origin."),
    e("cors-expose-headers", Honoured, "Default empty."),
    e("cors-max-age", Honoured, "Default 1728000 s."),
    e("custom-headers", Different, "Response headers from a ConfigMap, gated by `global-allowed-response-headers`; a missing ConfigMap or a header not allowed makes the paths answer 503, as in ingress-nginx. Difference: only a ConfigMap in the Ingress's own namespace (ingress-nginx's documentation says so, its code read any); a bare name means the Ingress's namespace."),
    e("custom-http-errors", Different, "Listed statuses (400–599; the upstream's and Portico's own 502/503/504) answered by the `default-backend` Service, else `--default-backend-service`, with ingress-nginx's `X-Code`, `X-Format`, `X-Original-URI`, `X-Namespace`, `X-Ingress-Name`, `X-Service-Name`, `X-Service-Port`, `X-Request-ID`; the client gets the error backend's status. Differences: without any default backend the original answer passes (ingress-nginx answered 404 from its internal server); the error request carries no body."),
    e("default-backend", Honoured, "Service (same namespace, first port) that answers, with `X-Code: 503` and the other error headers, for paths whose Service has no endpoints (or does not exist), and that answers the Ingress's `custom-http-errors`; used only while it has endpoints."),
    e("denylist-source-range", Honoured, "403 inside the list, checked before the allowlist (nginx `deny` first). An entry that is no address or network fails closed: 503."),
    e("disable-proxy-intercept-errors", Honoured, "`\"true\"`: the upstream's listed statuses pass unchanged; Portico's own errors are still answered by the error backend (nginx's `error_page` covers them whatever `proxy_intercept_errors` says)."),
    e("enable-access-log", Honoured, "`false`: no access log line for this Ingress's requests (still counted in the metrics)."),
    e("enable-cors", Different, "CORS with ingress-nginx's defaults; an allowed preflight is answered 204 by the proxy. Difference: that 204 has no `Content-Length: 0` (RFC 9110 forbids it)."),
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
    e("limit-allowlist", Different, "Addresses exempt from `limit-rps`, `limit-rpm`, `limit-connections`. Difference: an entry that is no address is reported and skipped (ingress-nginx dropped all the Ingress's limits)."),
    e("limit-burst-multiplier", Honoured, "Default 5; burst = limit × multiplier (`nodelay`)."),
    e("limit-connections", Honoured, "Requests in progress at once per client address and replica, over all paths of the Ingress (nginx `limit_conn`; an HTTP/2 stream counts as one); beyond it `limit-conn-status-code` (503)."),
    e("limit-rate", Different, "Response bandwidth in KiB/s per response (nginx `limit_rate Nk`), after `limit-rate-after`; 0 is off; the ConfigMap's `limit-rate` is the default. Difference: the allowance counts from the upstream's response headers, not from the request's arrival, so a slow upstream does not earn a larger first burst."),
    e("limit-rate-after", Honoured, "KiB of each response sent before `limit-rate` applies (nginx `limit_rate_after Nk`); the ConfigMap's value is the default."),
    e("limit-rpm", Honoured, "As `limit-rps`, per minute; with both, both apply."),
    e("limit-rps", Honoured, "Per client address and replica, one zone per Ingress shared by its paths (nginx `limit_req ... burst=limit×multiplier nodelay`, same arithmetic); beyond it `limit-req-status-code` (503). State for at most 65,536 addresses per replica, least recently used evicted (nginx: a 5 MB zone)."),
    e("limit-whitelist", Honoured, "Alias of `limit-allowlist`."),
    e("load-balance", Different, "`round_robin`, `ewma` (also `round-robin`). Difference: applies to this Ingress's paths; ingress-nginx applies it to the Service, from the first Ingress that configures it."),
    e("mirror-host", Honoured, "`Host` of the mirrored request; default the target's host name."),
    e("mirror-request-body", Different, "Default `on`. Difference: a streamed body (`proxy-request-buffering: off`, or over the buffering budget) is not kept, so with `on` such a request is not mirrored (counted); a buffered body (the default) is copied; `off` mirrors without the body, as nginx."),
    e("mirror-target", Different, "Copy of each request to an `http(s)://` URL, answer discarded, on its own task: never slows or fails the main request; at most 256 in flight (more are dropped and counted), 10 s each. `$request_uri`, `$uri`, `$args`, `$is_args`, `$host` filled in, never evaluated; other variables and link-local targets are a condition. Difference: a target without a path gets the request's path (nginx: `/_mirror-UID`)."),
    e("modsecurity-snippet", Dropped, "Never interpreted; no WAF (see `enable-modsecurity`)."),
    e("modsecurity-transaction-id", NotPlanned, "ModSecurity: out of scope."),
    e("opentelemetry-operation-name", NotPlanned, "No issue yet: see `enable-opentelemetry`."),
    e("opentelemetry-trust-incoming-span", NotPlanned, "No issue yet: see `enable-opentelemetry`."),
    e("permanent-redirect", Different, "Answers every path of the Ingress with the URL as written (no path appended), 301 by default, before the HTTPS redirect. Difference: the URL must be absolute `http(s)://host…` (ingress-nginx also took relative ones here)."),
    e("permanent-redirect-code", Different, "301, 302, 303, 307, 308. Difference: 300, 304–306 (accepted by ingress-nginx, but nginx then sends no `Location`) and non-numbers are `InvalidAnnotation` and 301 applies (ingress-nginx dropped the redirect on a non-number)."),
    e("preserve-trailing-slash", Different, "`\"false\"` strips one trailing `/` of the request-target (query included, as `lua_ingress.lua`) in the HTTPS redirect; `\"true\"` keeps it. Difference: without the annotation Portico keeps it (spec §5.5), where ingress-nginx strips it; and `/` always stays `https://host/`."),
    e("proxy-body-size", Honoured, "nginx sizes (`8m`, `0` = no limit); 413, also for bodies without `Content-Length`. Default `--proxy-body-size` (1m, as ingress-nginx)."),
    e("proxy-buffer-size", Different, "Accepted and validated, no effect: nginx's buffer for the response head; Portico's grows to the head's size."),
    e("proxy-buffering", Different, "Accepted; responses always stream (ingress-nginx's default `off`); `on` does not buffer them."),
    e("proxy-buffers-number", NotPlanned, "nginx buffer tuning with no counterpart: Portico streams responses."),
    e("proxy-busy-buffers-size", NotPlanned, "nginx buffer tuning with no counterpart."),
    e("proxy-connect-timeout", Honoured, "Seconds, as ingress-nginx (`5`); `5s`, `500ms` also accepted; `0` is invalid. Default `--upstream-connect-timeout` (5 s, as ingress-nginx)."),
    e("proxy-cookie-domain", Different, "`FROM TO` or `off`: the `Domain` of upstream `Set-Cookie` equal to FROM (case-insensitive, leading dot ignored) becomes TO. Difference: nginx's `~regex` form is refused (`InvalidAnnotation`)."),
    e("proxy-cookie-path", Different, "`FROM TO` or `off`: a `Path` starting with FROM has that prefix replaced by TO. Difference: no `~regex` form."),
    e("proxy-http-version", Different, "`1.0` or `1.1` to HTTP/1.x upstreams. Difference: with `1.0` and `proxy-request-buffering: off`, a chunked request body gets 411 (nginx buffers it to count it; Portico does too when buffering is on)."),
    e("proxy-max-temp-file-size", Different, "Accepted and validated, no effect: Portico writes no temporary files."),
    e("proxy-next-upstream", Different, "All conditions; default `error timeout`. Differences: after bytes were sent only requests without a body are replayed (bodies stream); `error` and `invalid_header` each cover both."),
    e("proxy-next-upstream-timeout", Honoured, "Whole seconds; no new attempt once it has passed; `0`: none."),
    e("proxy-next-upstream-tries", Different, "Attempts in all, at most 10: `0` (ingress-nginx: unlimited) and larger numbers mean 10. Which failures retry: `proxy-next-upstream`."),
    e("proxy-read-timeout", Different, "Seconds (or `60s`). Difference: bounds the wait for the response headers (counted once the request body is sent), not each read of the body as nginx does."),
    e("proxy-redirect-from", Different, "With `proxy-redirect-to`: a `Location` (or `Refresh` URL) starting with FROM has that prefix replaced by TO (case-sensitive, as nginx). Difference: `default` rewrites nothing (nginx's default only rewrites its internal `http://upstream_balancer` URL, which backends never send)."),
    e("proxy-redirect-to", Honoured, "See `proxy-redirect-from`; `off` (the default) disables the pair."),
    e("proxy-request-buffering", Different, "Default `on`, as ingress-nginx: the whole body is read before the upstream is contacted, so a retry (`proxy-next-upstream`) can replay it and an HTTP/1.0 upstream gets its length; `off` streams. Difference: held in memory, never a temporary file: up to `proxy-body-size` per request (413 beyond) and 256 MiB for all requests together; a body that does not fit, or has no `Content-Length` while `proxy-body-size` is `0`, is streamed."),
    e("proxy-send-timeout", Different, "Seconds (or `60s`): while the body is sent, the upstream taking none of it for this long gets 504. Difference: checked every timeout, so it fires after one to two of them."),
    e("proxy-ssl-ciphers", Different, "The TLS 1.2 suites offered to the backend, by the `ssl-ciphers` mapping (OpenSSL names of the ECDHE suites with AES-GCM or CHACHA20-POLY1305); `DEFAULT` (ingress-nginx's default) is rustls's suites. Difference: a list with any other name (aliases like `HIGH`, CBC, RSA key exchange) is an `InvalidAnnotation` warning and the default suites are offered (never weaker); TLS 1.3 suites are not restricted."),
    e("proxy-ssl-name", Honoured, "The name the upstream's certificate is verified against (instead of `SERVICE.NAMESPACE.svc`) and sent as SNI."),
    e("proxy-ssl-protocols", Different, "`TLSv1.2`, `TLSv1.3`, space separated. Difference: without it both are offered (ingress-nginx: TLSv1.2 only); older versions do not exist in rustls: `InvalidAnnotation`, default kept."),
    e("proxy-ssl-secret", Different, "`ca.crt` verifies the upstream (with `proxy-ssl-verify: on`); `tls.crt`/`tls.key` are the client certificate shown to it. A missing Secret, one in another namespace, one with neither `ca.crt` nor `tls.crt`+`tls.key`, or with a key pair that does not load fails closed: every path of the Ingress answers 503 with an `InvalidAnnotation` condition (ingress-nginx denies the location). Difference: kube mode reads `kubernetes.io/tls` and `Opaque` Secrets only."),
    e("proxy-ssl-server-name", Different, "`on` sends SNI (`proxy-ssl-name`, else `SERVICE.NAMESPACE.svc`), `off` does not. Difference: unset, SNI is sent when verifying (the verified name), as Portico did before; ingress-nginx sent none."),
    e("proxy-ssl-verify", Different, "`on`/`off` (default `off` with the nginx spelling, as ingress-nginx). Difference: without `proxy-ssl-name` Portico verifies the name `SERVICE.NAMESPACE.svc` (ingress-nginx: the upstream's name, `upstream_balancer`, which no certificate carries)."),
    e("proxy-ssl-verify-depth", Different, "Most certificates above the upstream's, the CA included (`0` means 1). Difference: unset, webpki's own path bound applies (ingress-nginx: 1, a certificate signed by the CA directly)."),
    e("relative-redirects", NotPlanned, "No issue yet: Portico's redirects are absolute."),
    e("rewrite-target", Different, "The upstream path becomes the target with `$1`…`$9` replaced by the groups of `(?i)PATH` matched on the normalised path (nginx's `rewrite … break`: the whole path is replaced; the query is kept, after the target's own arguments; a target ending in `?` drops it). Like `use-regex`, it turns every path of the host into a regex (see above). Not applied where the target equals the location path. Differences: `$name` nginx variables and URL targets (nginx redirects) are `InvalidAnnotation`; a `$n` the path lacks is `InvalidAnnotation` and the path serves unrewritten; characters a request-target cannot hold are percent-encoded."),
    e("satisfy", NotPlanned, "No issue yet, although it is access control: `any` lets one of basic auth, external auth or source range suffice; without it each must pass (ingress-nginx's default `all`)."),
    e("server-alias", Different, "Extra host names for every rule host of the Ingress; per host the oldest Ingress that sets aliases wins; an alias that is a rule host is ignored, one two hosts claim goes to the first host by name. Differences: nginx `~regex` names are refused; over HTTPS an alias gets the certificate bound to its own name (or the default), not its host's."),
    e("server-snippet", Dropped, "Never interpreted; redirects, `server-alias`, `from-to-www-redirect`, `custom-http-errors` (issue 13) cover the usual uses."),
    e("service-upstream", Different, "The one upstream is the Service's ClusterIP and port (endpoints kept when it has none, as ingress-nginx); retries then have no other endpoint. Difference: decided per Ingress, not by the first Ingress of the Service."),
    e("session-cookie-change-on-failure", Different, "`true`: a failed (or ejected) endpoint gets the session a new endpoint and cookie; default: the session stays on its endpoint, retries included, as ingress-nginx. Difference: an endpoint passive health has ejected counts as failed."),
    e("session-cookie-conditional-samesite-none", Honoured, "Omit `SameSite=None` for the user agents ingress-nginx's `same_site.lua` names."),
    e("session-cookie-domain", Honoured, "Cookie `Domain`; a domain name."),
    e("session-cookie-expires", Honoured, "Cookie `Expires`: whole seconds from the moment it is issued."),
    e("session-cookie-max-age", Honoured, "Cookie `Max-Age`, whole seconds."),
    e("session-cookie-name", Honoured, "Default `INGRESSCOOKIE`; an RFC 6265 token. The value (a session key and a backend key, both hashes) never reveals endpoint addresses (hashed, as ingress-nginx)."),
    e("session-cookie-path", Honoured, "Cookie `Path`; default the route's path (nginx's location), so set it with `use-regex`, as in ingress-nginx."),
    e("session-cookie-samesite", Honoured, "`None`, `Lax`, `Strict`."),
    e("session-cookie-secure", Honoured, "`true`: `Secure` on plain HTTP too; over HTTPS the cookie is always `Secure` (as ingress-nginx)."),
    e("ssl-ciphers", Different, "Per host (nginx `server`): the TLS 1.2 suites of the host's handshakes (SNI decides), from the oldest Ingress of the host that sets it, as ingress-nginx; OpenSSL names of the ECDHE suites with AES-GCM or CHACHA20-POLY1305 map to rustls suites, as the ConfigMap key. Difference: other names and OpenSSL aliases or operators (`ALL`, `HIGH`, `+X`, `@STRENGTH`) are refused with an `InvalidAnnotation` condition, never replaced by weaker suites; none left: the host keeps the listener's suites. TLS 1.3 suites are not restricted (as nginx)."),
    e("ssl-passthrough", Different, "With `--enable-ssl-passthrough`, TLS connections whose SNI is an exact rule host of an Ingress with the annotation are spliced as TCP, not terminated, to the backend of the host's `/` path (other paths and annotations apply to plain HTTP only); no PROXY header to the backend, as ingress-nginx. Differences: an endpoint picked by Portico's balancer (ingress-nginx dials the Service's clusterIP); a host any of whose Ingresses sets access control (auth, source ranges) is not spliced but terminated (fail closed; ingress-nginx skipped it silently); the ClientHello must arrive within `--tls-handshake-timeout`; a splice idle for 600 s is closed. Without the flag: a condition, TLS terminated (ingress-nginx ignored it silently)."),
    e("ssl-prefer-server-ciphers", Honoured, "Per host: `true` picks the suite in the server's (the host list's) order, `false` in the client's (rustls `ignore_client_order`); from the oldest Ingress of the host that sets it; an invalid value is an `InvalidAnnotation` warning and is ignored. Unset: ingress-nginx's default `true`."),
    e("ssl-redirect", Different, "`true`/`false` overrides `--ssl-redirect` both ways; 308 (the ConfigMap's `http-redirect-code`), `/.well-known/acme-challenge/` exempt. Difference: the request-target is kept as received (spec §5.5) unless `preserve-trailing-slash: \"false\"`; ingress-nginx drops one trailing slash by default."),
    e("stream-snippet", Dropped, "Never interpreted; Portico has no TCP/UDP stream proxy."),
    e("temporal-redirect", Honoured, "Answers every path of the Ingress with the URL as written, 302 by default; wins over `permanent-redirect`. Absolute `http(s)` URLs only, as ingress-nginx."),
    e("temporal-redirect-code", Different, "301, 302, 303, 307. Difference: 300, 304–306 and non-numbers are `InvalidAnnotation` and 302 applies."),
    e("upstream-hash-by", Different, "Consistent hashing on `$request_uri`, `$uri`, `$args`, `$host`, `$remote_addr`, `$scheme`, `$request_method`, `$http_NAME`, `$cookie_NAME`, `$arg_NAME` and text, parsed, never evaluated; another variable is refused with a condition. Scope: the Service, from the oldest Ingress routing to it; wins over `load-balance`. Difference: rendezvous hashing instead of nginx's `chash`, so keys land (once) on other endpoints than under ingress-nginx; `$uri` is the path as sent; passive health and retries are kept."),
    e("upstream-hash-by-subset", Honoured, "Hash to a subset of endpoints (consecutive endpoints, as `chashsubset.lua`), then pick at random within it."),
    e("upstream-hash-by-subset-size", Honoured, "Subset size, 1–1024 (default 3)."),
    e("upstream-vhost", Different, "`Host` sent upstream (`X-Forwarded-Host` keeps the client's). Difference: a host name with optional port only; nginx variables (`$host`, `$service_name`…) are `InvalidAnnotation`."),
    e("use-port-in-redirects", Planned(13), "Port in redirect `Location`s. Issue 13 lists the ConfigMap key; this annotation form goes with it."),
    e("use-regex", Different, "Paths become case-insensitive regexes anchored at the start, for every path of the host once any Ingress of the host sets it, in ingress-nginx's location order (see above). Differences: Rust `regex` syntax (PCRE-only constructs are `InvalidPath`, the path never matches), Unicode-aware (`.`, `\\w`, case folding match characters, not bytes); the path is read after spec §3.4 step 5 (escapes of unreserved characters decoded, dot-segments removed)."),
    e("whitelist-source-range", Honoured, "Alias of `allowlist-source-range` (which wins when both are set)."),
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
    e("block-cidrs", Different, "403 for listed client addresses, on every host and path. Differences: it also applies to paths with their own source ranges (nginx's `http`-level `deny` did not reach a location with its own `allow`/`deny`); an entry that does not parse fails closed: every request answers 503 (ingress-nginx refused to reload)."),
    e("block-referers", Different, "As `block-user-agents`, for `Referer`."),
    e("block-user-agents", Different, "403 for a listed `User-Agent`: exact strings (case-insensitive, as nginx's `map`) or `~regex` / `~*regex`, found anywhere in the value. Differences: Rust `regex` syntax (a PCRE-only construct is refused by name); an entry that does not parse fails closed: every request answers 503 (ingress-nginx refused to reload)."),
    e("brotli-level", Honoured, "Default 4; 0–11, anything else is an `InvalidConfigMapKey` condition and 4 applies."),
    e("brotli-min-length", Honoured, "Default 20; checked against a known `Content-Length` only, as ngx_brotli."),
    e("brotli-types", Honoured, "ingress-nginx's default list; `text/html` always, `*` for any type."),
    e("client-body-buffer-size", Different, "Global form of the annotation (accepted, no effect)."),
    e("client-body-timeout", NotPlanned, "No issue yet; nearest flag `--client-idle-timeout` (75 s without a byte either way)."),
    e("client-header-buffer-size", NotPlanned, "nginx buffer tuning; the limit on a request head is `--max-header-bytes`."),
    e("client-header-timeout", NotPlanned, "No issue yet; flag `--client-header-timeout` (10 s; ingress-nginx 60 s)."),
    e("compute-full-forwarded-for", Honoured, "For a trusted peer (`use-forwarded-headers` and `proxy-real-ip-cidr`), the incoming `X-Forwarded-For` plus the peer, instead of the client address alone."),
    e("custom-http-errors", Different, "Statuses (300–599; bad entries skipped with a condition) answered by `--default-backend-service` for every Ingress without its own list, even one with a `default-backend` (nginx's `http`-level `error_page`); differences as the annotation's."),
    e("debug-connections", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("default-type", NotPlanned, "Portico serves no files; its own answers are `text/plain`."),
    e("denylist-source-range", Different, "The denylist of every Ingress without its own `denylist-source-range`. Difference: an entry that does not parse makes those Ingresses fail closed (503) (ingress-nginx refused to reload)."),
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
    e("limit-conn-status-code", Honoured, "Default 503; 400–599 (nginx's `limit_conn_status` range), else the default with a condition."),
    e("limit-conn-zone-variable", NotPlanned, "nginx variable; limits key on the client address (issue 14)."),
    e("limit-rate", Different, "Default of the annotation (KiB/s; 0: off). Difference as the annotation's."),
    e("limit-rate-after", Honoured, "Default of the annotation (KiB)."),
    e("limit-req-status-code", Honoured, "Default 503; 400–599 (nginx's `limit_req_status` range), else the default with a condition."),
    e("load-balance", Honoured, "`round_robin` (default) or `ewma`, for Services whose Ingress sets none; overrides `--load-balance`."),
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
    e("proxy-buffer-size", Different, "Global form of the annotation (accepted, no effect)."),
    e("proxy-buffering", Different, "Accepted; responses always stream (the default `off`)."),
    e("proxy-buffers-number", NotPlanned, "nginx buffer tuning; Portico streams responses."),
    e("proxy-busy-buffers-size", NotPlanned, "nginx buffer tuning."),
    e("proxy-connect-timeout", Honoured, "Overrides `--upstream-connect-timeout` (5 s, as ingress-nginx); whole seconds, or `5s`/`500ms`."),
    e("proxy-cookie-domain", Planned(13), "Global form of the annotation."),
    e("proxy-cookie-path", Planned(13), "Global form of the annotation."),
    e("proxy-headers-hash-bucket-size", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("proxy-headers-hash-max-size", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("proxy-http-version", Different, "Global form of the annotation."),
    e("proxy-max-temp-file-size", Different, "Global form of the annotation (accepted, no effect)."),
    e("proxy-next-upstream", Different, "Global form of the annotation; default `error timeout`."),
    e("proxy-next-upstream-timeout", Honoured, "Global form of the annotation."),
    e("proxy-next-upstream-tries", Different, "Global form; at most 10 (`0`: 10); wins over `--proxy-next-upstream-tries`."),
    e("proxy-protocol-header-timeout", NotPlanned, "No issue yet; the PROXY header must arrive within `--client-header-timeout`."),
    e("proxy-read-timeout", Different, "Overrides `--upstream-response-timeout` (60 s); as the annotation, it bounds the wait for the response headers, not each read."),
    e("proxy-real-ip-cidr", Different, "Peers trusted with `use-forwarded-headers` / `enable-real-ip` (default `0.0.0.0/0`), besides `--trusted-proxies`. Difference: the trust also gates `X-Forwarded-Proto`/`-Host`/`-Port`, which ingress-nginx takes from any peer once `use-forwarded-headers` is on (so with the default, IPv6 peers are not trusted)."),
    e("proxy-redirect-from", Planned(13), "Global form of the annotation."),
    e("proxy-redirect-to", Planned(13), "Global form of the annotation."),
    e("proxy-request-buffering", Different, "Global form of the annotation (default `on`)."),
    e("proxy-send-timeout", Different, "Overrides `--upstream-send-timeout` (60 s, as ingress-nginx); the annotation still wins. Difference: fires after one to two timeouts."),
    e("proxy-set-headers", Different, "`NAMESPACE/NAME` of a ConfigMap whose headers are set on every upstream request, after Portico's own (replacing one of the same name). Difference: as `add-headers`, nginx variables are not expanded (such a header is skipped with a condition)."),
    e("proxy-ssl-location-only", NotPlanned, "No issue yet."),
    e("proxy-stream-next-upstream", NotPlanned, "No TCP/UDP stream proxy."),
    e("proxy-stream-next-upstream-timeout", NotPlanned, "No TCP/UDP stream proxy."),
    e("proxy-stream-next-upstream-tries", NotPlanned, "No TCP/UDP stream proxy."),
    e("proxy-stream-responses", NotPlanned, "No TCP/UDP stream proxy."),
    e("proxy-stream-timeout", NotPlanned, "No TCP/UDP stream proxy (ingress-nginx's `--tcp-services-configmap`)."),
    e("relative-redirects", NotPlanned, "No issue yet; Portico's redirects are absolute."),
    e("retry-non-idempotent", Different, "Adds `non_idempotent` to every Ingress's conditions; requests with a body are still never replayed."),
    e("reuse-port", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("server-name-hash-bucket-size", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("server-name-hash-max-size", NotPlanned, "nginx internals with no counterpart in Portico."),
    e("server-snippet", Dropped, "Never interpreted (snippet)."),
    e("server-tokens", Different, "Accepted; every answer carries `Server: portico` (the upstream's replaced), `true` or `false`: Portico sends no version to hide, and the Ingress conformance suite expects a `Server` header, which ingress-nginx's default (`false`) removes."),
    e("service-upstream", Planned(13), "Global form of the annotation."),
    e("skip-access-log-urls", NotPlanned, "No issue yet."),
    e("ssl-buffer-size", NotPlanned, "nginx TLS record buffer tuning."),
    e("ssl-ciphers", Different, "OpenSSL names of the TLS 1.2 ECDHE suites with AES-GCM or CHACHA20-POLY1305 map to rustls suites, in the listed order. Difference: other names (CBC, RSA key exchange, DHE, 3DES, aliases like `HIGH`) are refused with an `InvalidConfigMapKey` condition; if none is supported the secure default suites stay. TLS 1.3 suites are not restricted (as nginx's `ssl_ciphers`)."),
    e("ssl-dh-param", NotPlanned, "rustls has no finite-field DHE."),
    e("ssl-early-data", NotPlanned, "No issue yet: TLS 1.3 0-RTT (replayable requests)."),
    e("ssl-ecdh-curve", NotPlanned, "No issue yet; rustls chooses among its key-exchange groups."),
    e("ssl-protocols", Different, "`TLSv1.2`, `TLSv1.3`; `TLSv1.3` alone is TLS 1.3 only. Applied to new connections when the ConfigMap changes, mTLS hosts included. Difference: `SSLv3`, `TLSv1`, `TLSv1.1` do not exist in rustls: refused with a condition; none left: the default stays."),
    e("ssl-redirect", Honoured, "Overrides `--ssl-redirect` (true, as ingress-nginx); the per-Ingress annotation still wins."),
    e("ssl-reject-handshake", NotPlanned, "No issue yet; unknown names get the default (or generated) certificate."),
    e("ssl-session-cache", Different, "`false` turns the server-side session cache off. Difference: an in-memory cache per process (rustls `ServerSessionMemoryCache`), not shared between workers as nginx's shared zone."),
    e("ssl-session-cache-size", Different, "Difference: nginx sizes (`10m`) become entries at 256 bytes each (nginx: about 4000 sessions per megabyte); rustls evicts entries at random when full."),
    e("ssl-session-ticket-key", Different, "Base64 of 48 or 80 bytes (as `openssl rand 80` prints it, base64-encoded): tickets are sealed with a key derived from it (HKDF-SHA256, then ChaCha20-Poly1305 with one key per ticket), so replicas sharing the value resume each other's sessions; nothing rotates. Difference: the ticket format is Portico's, not nginx's (nginx and Portico replicas do not share tickets); a bad value is an `InvalidConfigMapKey` condition that never echoes the value, and random keys are used."),
    e("ssl-session-tickets", Different, "Tickets expire after `ssl-session-timeout`. Difference: Portico keeps tickets on unless the key says `false` (ingress-nginx's default is off); without `ssl-session-ticket-key` ticket keys rotate in memory (rustls `Ticketer`, 6 h lifetime)."),
    e("ssl-session-timeout", Different, "nginx time (`10m` default, also without the key; `1h`, `600`): a session from the cache or a ticket older than this is not resumed, the client gets a full handshake (the issue time is sealed in the ticket). Difference: without `ssl-session-ticket-key`, rustls rotates ticket keys every 6 h and keeps one previous key, so tickets last at most 12 h whatever the timeout; an invalid value is an `InvalidConfigMapKey` condition and 10m applies."),
    e("stream-access-log-path", NotPlanned, "No TCP/UDP stream proxy."),
    e("stream-snippet", Dropped, "Never interpreted (snippet)."),
    e("strict-validate-path-type", NotPlanned, "Portico validates paths as the Ingress API does; `ImplementationSpecific` is a literal prefix."),
    e("syslog-host", NotPlanned, "See `enable-syslog`."),
    e("syslog-port", NotPlanned, "See `enable-syslog`."),
    e("upstream-hash-by", NotPlanned, "ingress-nginx reads it into its defaults but never applies it (only the annotation reaches its balancer: `controller.go` `createUpstreams`); reported as unsupported."),
    e("upstream-hash-by-subset", NotPlanned, "Read but never applied by ingress-nginx, as `upstream-hash-by`."),
    e("upstream-hash-by-subset-size", NotPlanned, "Read but never applied by ingress-nginx, as `upstream-hash-by`."),
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
    e("whitelist-source-range", Different, "The allowlist of every Ingress without its own `allowlist-source-range`. Difference: an entry that does not parse makes those Ingresses fail closed (503) (ingress-nginx refused to reload)."),
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
