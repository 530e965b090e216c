//! Per response: what the controller ConfigMap (`routing::Global`, published with the table)
//! adds to every answer Portico sends, whether proxied, redirected or an error: HSTS on HTTPS
//! (`hsts*`) and the `Server` header (`server-tokens`). Called once per request from
//! `service::handle`, after the answer is decided.

use http::header::{HeaderValue, CONNECTION, SERVER, STRICT_TRANSPORT_SECURITY};
use http::{HeaderMap, Version};

use super::Scheme;
use crate::routing::Global;

/// Applies `global` to the headers of an answer sent on a `scheme` listener.
///
/// - `server-tokens: "false"` (ingress-nginx's default) removes `Server` altogether, the
///   upstream's too (nginx.tmpl: `more_clear_headers Server;`, e2e
///   `test/e2e/settings/server_tokens.go`); `"true"` leaves Portico's `Server: portico`.
/// - HSTS on HTTPS answers only, replacing any the upstream sent, so the client sees exactly
///   one (e2e `test/e2e/settings/tls.go`, "overriding what's set from the upstream").
/// - `keep-alive-requests` (the `nth` request of its connection reached it) and `keep-alive:
///   "0"` close an HTTP/1 connection after this answer (`Connection: close`, which hyper
///   honours), as nginx's `keepalive_requests` / `keepalive_timeout 0` do.
pub(crate) fn finish(
    headers: &mut HeaderMap,
    global: &Global,
    scheme: Scheme,
    version: Version,
    nth: u64,
) {
    if !global.server_tokens {
        headers.remove(SERVER);
    }
    let last = global.keep_alive.is_some_and(|d| d.is_zero())
        || global.keep_alive_requests.is_some_and(|n| nth >= n);
    if last && version <= Version::HTTP_11 {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if scheme == Scheme::Https {
        if let Some(value) = &global.hsts {
            // Validated when the ConfigMap was parsed; a refcount, no copy.
            if let Ok(value) = HeaderValue::from_maybe_shared(value.clone()) {
                headers.insert(STRICT_TRANSPORT_SECURITY, value);
            }
        }
    }
}
