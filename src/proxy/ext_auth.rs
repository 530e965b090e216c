//! Per request, ingress-nginx's external authentication (issue 15): sits in `service` between
//! the routing decision and the upstream request, for backends whose policy carries an
//! [`ExtAuth`] (`translate/ext_auth.rs`); any other backend costs one `Option` check.
//!
//! As ingress-nginx's `location = /_external-auth-...` block and `auth_request` do it
//! (`rootfs/etc/nginx/template/nginx.tmpl`): the auth service gets the client's request
//! headers without the body (`proxy_pass_request_body off`, `Content-Length ""`), its own
//! `Host`, `X-Original-URL`, `X-Original-Method`, `X-Sent-From`, `X-Real-IP`,
//! `X-Forwarded-For`, `X-Auth-Request-Redirect`, `X-Request-ID` (and with `auth-method`,
//! `X-Original-URI` and `X-Scheme`); never `X-Forwarded-Proto`. Its answer decides:
//! - 2xx: the request goes on; `auth-response-headers` are copied into the upstream request and
//!   the auth answer's `Set-Cookie` onto the client's answer (2xx/3xx only, unless
//!   `auth-always-set-cookie`: nginx `add_header ... [always]`).
//! - 401: 401 to the client with the auth service's `WWW-Authenticate`, or with `auth-signin`
//!   a 302 to the sign-in URL (carrying the auth answer's cookies).
//! - 403: 403.
//! - anything else, a failure to connect, a timeout: 500 (`auth_request`: "any other response
//!   code returned by the subrequest is considered an error").
//!
//! The auth answer's body is never read; its head is bounded by hyper's header limits and by
//! the route's connect and read timeouts.

use http::header::{
    HeaderName, HeaderValue, CONTENT_LENGTH, EXPECT, HOST, SET_COOKIE, TRANSFER_ENCODING,
    WWW_AUTHENTICATE,
};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use super::error::ProxyError;
use super::headers::{self, X_FORWARDED_FOR, X_FORWARDED_PROTO, X_REAL_IP, X_REQUEST_ID};
use super::service::{Client, Context};
use super::upstream::RetryBody;
use super::{ProxyBody, Scheme};
use std::time::Instant;

use crate::routing::{
    AuthCache, CachedAnswer, ExtAuth, Global, KeyPiece, Policy, Protocol, Redirect, SigninPiece,
    SigninVar,
};

/// Sent on every auth request; a route that asks for external auth refuses a request carrying
/// it (the auth URL leads back into Portico, onto a route that asks again: a loop).
pub(super) static HOP: HeaderName = HeaderName::from_static("x-portico-auth-hop");
static X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_SCHEME: HeaderName = HeaderName::from_static("x-scheme");
static X_SENT_FROM: HeaderName = HeaderName::from_static("x-sent-from");
static X_AUTH_REQUEST_REDIRECT: HeaderName = HeaderName::from_static("x-auth-request-redirect");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// The statuses nginx's `add_header` (without `always`) adds a header to.
const ADD_HEADER_STATUSES: &[u16] = &[200, 201, 204, 206, 301, 302, 303, 304, 307, 308];

/// What a granted request takes along: headers for its upstream request, cookies for its
/// answer.
pub(super) struct Granted {
    /// `auth-response-headers`: each name with the auth answer's values (none: removed).
    headers: Vec<(HeaderName, Vec<HeaderValue>)>,
    cookies: Vec<HeaderValue>,
    always: bool,
}

impl Granted {
    /// nginx `proxy_set_header NAME $authHeaderN`: the auth answer's value replaces the
    /// client's; an empty variable sends no header at all.
    pub fn request(&mut self, upstream: &mut HeaderMap) {
        for (name, values) in self.headers.drain(..) {
            upstream.remove(&name);
            for value in values {
                upstream.append(name.clone(), value);
            }
        }
    }

    /// nginx `add_header Set-Cookie $auth_cookie [always]`.
    pub fn response(&self, answer: &mut HeaderMap, status: StatusCode) {
        add_cookies(answer, &self.cookies, self.always, status);
    }
}

fn add_cookies(answer: &mut HeaderMap, cookies: &[HeaderValue], always: bool, status: StatusCode) {
    if always || ADD_HEADER_STATUSES.contains(&status.as_u16()) {
        for cookie in cookies {
            answer.append(SET_COOKIE, cookie.clone());
        }
    }
}

/// What the auth service decided.
pub(super) enum Outcome {
    /// Proxy the request, with these.
    Granted(Granted),
    /// Answer the client with this instead (401, 403, 500, or the sign-in redirect).
    Answer(Response<ProxyBody>),
}

/// Asks the auth service about `req`. An `Err` is a loop (503); every other refusal is an
/// [`Outcome::Answer`], which carries the auth answer's cookies where nginx adds them.
#[allow(clippy::too_many_arguments)]
pub(super) async fn check(
    ctx: &Context,
    auth: &ExtAuth,
    req: &mut Request<Incoming>,
    client: Client,
    host: &HeaderValue,
    global: &Global,
    policy: &Policy,
    scope: Option<&str>,
) -> Result<Outcome, ProxyError> {
    if req.headers().contains_key(&HOP) {
        return Err(ProxyError::AuthLoop);
    }
    // `$req_id`: the same id for the auth service and the upstream.
    let request_id = match req.headers().get(&X_REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let id = headers::request_id();
            if global.generate_request_id {
                req.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
            }
            id
        }
    };
    let opts = &ctx.options;
    let scheme = opts.scheme;
    let pass_access_scheme =
        if super::redirect::forwarded_https(req.headers(), client.trusted, opts) {
            Scheme::Https
        } else {
            scheme
        };
    let version = req.version();
    // `auth-cache-key`: a kept answer decides without asking (nginx `proxy_cache`), keyed by
    // host, Ingress path and the filled template (ingress-nginx: server name, auth location,
    // key).
    let cache_key = auth
        .cache
        .as_ref()
        .map(|cache| (cache, cache_key(cache, req, client, host, scope)));
    let now = Instant::now();
    if let Some((cache, key)) = &cache_key {
        if let Some(kept) = cache.store.get(key, now) {
            return Ok(decide(auth, kept, req, host, scheme, pass_access_scheme));
        }
    }
    let request = auth_request(
        auth,
        req,
        client,
        host,
        global,
        request_id,
        scheme,
        pass_access_scheme,
    )?;
    let connect_timeout = policy
        .connect_timeout
        .or(global.proxy_connect_timeout)
        .unwrap_or(opts.connect_timeout);
    let read_timeout = policy
        .response_timeout
        .or(global.proxy_read_timeout)
        .unwrap_or(opts.response_timeout);
    let protocol = if auth.uri.scheme_str() == Some("https") {
        Protocol::Https
    } else {
        Protocol::Http
    };
    let upstream = ctx.clients.get(protocol, connect_timeout, None, None);
    let answer =
        tokio::time::timeout(connect_timeout + read_timeout, upstream.request(request)).await;
    let response = match answer {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => {
            return Ok(failed(
                auth,
                &ProxyError::from_client(err).to_string(),
                version,
            ))
        }
        Err(_) => return Ok(failed(auth, "timed out", version)),
    };
    let h = response.headers();
    let all = |name: &HeaderName| -> Vec<HeaderValue> { h.get_all(name).iter().cloned().collect() };
    let answer = CachedAnswer {
        status: response.status(),
        headers: auth.response_headers.iter().map(all).collect(),
        cookies: all(&SET_COOKIE),
        www_authenticate: all(&WWW_AUTHENTICATE),
    };
    // The body is never read: dropping the response closes its connection unless it was empty.
    drop(response);
    if let Some((cache, key)) = cache_key {
        if let Some(ttl) = cache.ttl(answer.status) {
            cache.store.put(key, answer.clone(), now, now + ttl);
        }
    }
    Ok(decide(auth, answer, req, host, scheme, pass_access_scheme))
}

/// The outcome of an auth answer, fresh or kept.
fn decide(
    auth: &ExtAuth,
    answer: CachedAnswer,
    req: &Request<Incoming>,
    host: &HeaderValue,
    scheme: Scheme,
    pass_access_scheme: Scheme,
) -> Outcome {
    let version = req.version();
    let status = answer.status;
    if status.is_success() {
        let headers = auth
            .response_headers
            .iter()
            .cloned()
            .zip(answer.headers)
            .collect();
        return Outcome::Granted(Granted {
            headers,
            cookies: answer.cookies,
            always: auth.always_set_cookie,
        });
    }
    let mut response = match status {
        StatusCode::UNAUTHORIZED => {
            if let Some(signin) = &auth.signin {
                let url = signin_url(&signin.pieces, req, host, scheme, pass_access_scheme);
                let mut response =
                    match super::redirect::fixed(&Redirect { code: 302, url }, version) {
                        Ok(response) => response,
                        Err(_) => {
                            return failed(auth, "sign-in URL is not a header value", version)
                        }
                    };
                // The sign-in location's `add_header Set-Cookie $auth_cookie` (a 302).
                add_cookies(
                    response.headers_mut(),
                    &answer.cookies,
                    false,
                    StatusCode::FOUND,
                );
                return Outcome::Answer(response);
            }
            let mut response = ProxyError::AuthDenied(status).to_response(version);
            for value in answer.www_authenticate {
                response.headers_mut().append(WWW_AUTHENTICATE, value);
            }
            response
        }
        StatusCode::FORBIDDEN => ProxyError::AuthDenied(status).to_response(version),
        _ => {
            tracing::warn!(auth.url = %auth.url, status = status.as_u16(), "external authentication answered neither 2xx, 401 nor 403");
            ProxyError::AuthFailed(format!("status {status}")).to_response(version)
        }
    };
    let status = response.status();
    add_cookies(
        response.headers_mut(),
        &answer.cookies,
        auth.always_set_cookie,
        status,
    );
    Outcome::Answer(response)
}

/// The cache key of a request: the host, the Ingress path (`scope`), then the template filled
/// from the request, each part ended by a NUL (which no header value, host or path holds).
fn cache_key(
    cache: &AuthCache,
    req: &Request<Incoming>,
    client: Client,
    host: &HeaderValue,
    scope: Option<&str>,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(128);
    let host = crate::routing::normalize::host(host.to_str().unwrap_or_default());
    key.extend_from_slice(host.as_bytes());
    key.push(0);
    key.extend_from_slice(scope.unwrap_or_default().as_bytes());
    key.push(0);
    let headers = req.headers();
    for piece in &cache.key {
        match piece {
            KeyPiece::Literal(text) => key.extend_from_slice(text.as_bytes()),
            KeyPiece::Header(name) => {
                for (i, value) in headers.get_all(name).iter().enumerate() {
                    if i > 0 {
                        key.extend_from_slice(b", ");
                    }
                    key.extend_from_slice(value.as_bytes());
                }
            }
            KeyPiece::RemoteUser => {
                if let Some(value) = headers.get(http::header::AUTHORIZATION) {
                    key.extend_from_slice(value.as_bytes());
                }
            }
            KeyPiece::Cookie(name) => {
                let found = headers
                    .get_all(http::header::COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(';'))
                    .filter_map(|pair| pair.trim().split_once('='))
                    .find(|(k, _)| k == name);
                if let Some((_, value)) = found {
                    key.extend_from_slice(value.as_bytes());
                }
            }
            KeyPiece::Arg(name) => {
                let found = req
                    .uri()
                    .query()
                    .unwrap_or_default()
                    .split('&')
                    .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
                    .find(|(k, _)| k == name);
                if let Some((_, value)) = found {
                    key.extend_from_slice(value.as_bytes());
                }
            }
            KeyPiece::RemoteAddr => {
                key.extend_from_slice(client.addr.ip().to_canonical().to_string().as_bytes())
            }
            KeyPiece::Host => key.extend_from_slice(host.as_bytes()),
            KeyPiece::RequestUri => key.extend_from_slice(
                req.uri()
                    .path_and_query()
                    .map_or("/", |pq| pq.as_str())
                    .as_bytes(),
            ),
            KeyPiece::Uri => key.extend_from_slice(req.uri().path().as_bytes()),
        }
        key.push(0);
    }
    key
}

/// The Ingress path whose kept auth answers a request shares; `None` (one `Option` check)
/// unless the backend caches auth answers.
#[inline]
pub(super) fn scope(
    decision: &crate::routing::Decision<'_>,
    backend: &crate::routing::Backend,
) -> Option<String> {
    let auth = backend.policy.ext_auth.as_ref()?;
    auth.cache.as_ref()?;
    decision.route().map(|route| route.path.clone())
}

/// 500 for a failed auth request.
fn failed(auth: &ExtAuth, why: &str, version: Version) -> Outcome {
    tracing::warn!(auth.url = %auth.url, error = why, "external authentication failed");
    Outcome::Answer(ProxyError::AuthFailed(why.to_string()).to_response(version))
}

/// The auth request: nginx's `location = /_external-auth-...` with `proxy_pass_request_headers
/// on`, `proxy_pass_request_body off`.
#[allow(clippy::too_many_arguments)]
fn auth_request(
    auth: &ExtAuth,
    req: &Request<Incoming>,
    client: Client,
    host: &HeaderValue,
    global: &Global,
    request_id: HeaderValue,
    scheme: Scheme,
    pass_access_scheme: Scheme,
) -> Result<Request<RetryBody>, ProxyError> {
    let mut h = req.headers().clone();
    headers::remove_hop_by_hop(&mut h, false);
    for name in [CONTENT_LENGTH, TRANSFER_ENCODING, EXPECT] {
        h.remove(name);
    }
    // `proxy_set_header X-Forwarded-Proto ""`; the forwarded host and port only from peers
    // trusted for them (`ingress-nginx.md` §5).
    h.remove(&X_FORWARDED_PROTO);
    let peer = client.addr.ip().to_canonical();
    let trusted = headers::trusts(client.trusted, &global.forwarded, peer);
    if !trusted {
        h.remove(&X_FORWARDED_HOST);
        h.remove(&X_FORWARDED_PORT);
    }
    let request_uri = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let text = |s: String| {
        HeaderValue::from_str(&s).map_err(|_| ProxyError::BadRequest("unusable request target"))
    };
    h.insert(HOST, auth.host.clone());
    h.insert(
        X_ORIGINAL_URL.clone(),
        text(format!(
            "{}://{}{request_uri}",
            scheme_str(scheme),
            host.to_str().unwrap_or_default()
        ))?,
    );
    h.insert(
        X_ORIGINAL_METHOD.clone(),
        HeaderValue::from_str(req.method().as_str())
            .map_err(|_| ProxyError::BadRequest("unusable method"))?,
    );
    h.insert(
        X_SENT_FROM.clone(),
        HeaderValue::from_static("nginx-ingress-controller"),
    );
    let ip = HeaderValue::from_str(&peer.to_string())
        .map_err(|_| ProxyError::BadRequest("unusable client address"))?;
    h.insert(X_REAL_IP.clone(), ip.clone());
    // `$full_x_forwarded_for` with `use-forwarded-headers` and `compute-full-forwarded-for`,
    // else `$remote_addr`.
    let fwd = &global.forwarded;
    let xff = match req.headers().get(&X_FORWARDED_FOR) {
        Some(incoming)
            if trusted && fwd.use_forwarded_headers && fwd.compute_full_forwarded_for =>
        {
            let mut joined = incoming.as_bytes().to_vec();
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(ip.as_bytes());
            HeaderValue::from_bytes(&joined).unwrap_or(ip)
        }
        _ => ip,
    };
    h.insert(X_FORWARDED_FOR.clone(), xff);
    let redirect = match &auth.request_redirect {
        Some(value) => value.clone(),
        None => text(request_uri.to_string())?,
    };
    h.insert(X_AUTH_REQUEST_REDIRECT.clone(), redirect);
    h.insert(X_REQUEST_ID.clone(), request_id);
    if auth.method.is_some() {
        h.insert(X_ORIGINAL_URI.clone(), text(request_uri.to_string())?);
        h.insert(
            X_SCHEME.clone(),
            HeaderValue::from_static(scheme_str(pass_access_scheme)),
        );
    }
    for (name, value) in &auth.proxy_set_headers {
        h.insert(name.clone(), value.clone());
    }
    h.insert(HOP.clone(), HeaderValue::from_static("1"));
    let mut request = Request::new(RetryBody::none());
    *request.method_mut() = auth.method.clone().unwrap_or_else(|| req.method().clone());
    *request.uri_mut() = auth.uri.clone();
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = h;
    Ok(request)
}

fn scheme_str(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    }
}

/// The sign-in redirect's `Location`: the parsed `auth-signin` with its variables filled.
fn signin_url(
    pieces: &[SigninPiece],
    req: &Request<Incoming>,
    host: &HeaderValue,
    scheme: Scheme,
    pass_access_scheme: Scheme,
) -> String {
    let http_host = host.to_str().unwrap_or_default();
    let request_uri = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let mut url = String::with_capacity(128);
    for piece in pieces {
        match piece {
            SigninPiece::Literal(text) => url.push_str(text),
            SigninPiece::Var(SigninVar::Host) => {
                url.push_str(&crate::routing::normalize::host(http_host))
            }
            SigninPiece::Var(SigninVar::HttpHost) => url.push_str(http_host),
            SigninPiece::Var(SigninVar::Scheme) => url.push_str(scheme_str(scheme)),
            SigninPiece::Var(SigninVar::PassAccessScheme) => {
                url.push_str(scheme_str(pass_access_scheme))
            }
            SigninPiece::Var(SigninVar::RequestUri) => url.push_str(request_uri),
            SigninPiece::Var(SigninVar::EscapedRequestUri) => escape_into(&mut url, request_uri),
        }
    }
    url
}

/// `$escaped_request_uri` (`set_escape_uri`): every byte but RFC 3986's unreserved ones
/// percent-encoded, so the URI travels as one query value.
fn escape_into(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in text.bytes() {
        if crate::routing::unreserved(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// auth.go "should redirect to signin url when not signed in": `rd` carries
    /// `url.QueryEscape("/?a=b&c=d")`.
    #[test]
    fn escaped_request_uri_encodes_a_query_value() {
        let mut out = String::new();
        escape_into(&mut out, "/?a=b&c=d");
        assert_eq!(out, "%2F%3Fa%3Db%26c%3Dd");
        let mut out = String::new();
        escape_into(&mut out, "/a-b_c.d~e f");
        assert_eq!(out, "%2Fa-b_c.d~e%20f");
    }

    #[test]
    fn cookies_follow_add_header_statuses_unless_always() {
        let cookie = [HeaderValue::from_static("a=b")];
        let mut h = HeaderMap::new();
        add_cookies(&mut h, &cookie, false, StatusCode::SERVICE_UNAVAILABLE);
        assert!(h.is_empty());
        add_cookies(&mut h, &cookie, false, StatusCode::OK);
        add_cookies(&mut h, &cookie, true, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(h.get_all(SET_COOKIE).iter().count(), 2);
    }
}
