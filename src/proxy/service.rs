//! Per request: find the host and path (spec §3.2, §3.4), decide from the published table,
//! pick an endpoint (spec §4.3), rewrite headers (spec §6) and forward, retrying once on a
//! connect failure (spec §4.4); tunnel protocol upgrades.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use http::header::{HeaderValue, DATE, HOST, SERVER};
use http::uri::{Authority, PathAndQuery, Scheme as UriScheme};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::error::{date_now, response_version, ProxyError};
use super::h2pool::{self, H2Pool};
use super::headers::{self, Forwarded};
use super::observe::{Arrival, Pending, Seen};
use super::pool::{Checkin, Pool, UpBody};
use super::upstream::{self, Clients, RetryBody, Upstream};
use super::{
    affinity, cors, custom_headers, error_pages, ext_auth, limits, redirect, response_rewrite,
    rewrite, ProxyBody, ProxyOptions, Scheme,
};
use crate::publish::Shared;
use crate::routing::{normalize, Decision, NextUpstream, Protocol, Target};

/// Everything a request needs, shared by all connections of one listener.
pub(crate) struct Context {
    pub shared: Shared,
    pub options: Arc<ProxyOptions>,
    pub clients: Clients,
    /// Plain HTTP/1.1 connections to endpoints (the fast path; `clients` serves the rest).
    pub pool: Arc<Pool>,
    /// HTTP/2 connections (H2C, GRPC, GRPCS backends), one per peer.
    pub h2: Arc<H2Pool>,
}

impl Context {
    pub fn new(shared: Shared, options: Arc<ProxyOptions>) -> Self {
        let clients = Clients::new(options.upstream_idle_timeout);
        let pool = Pool::new(options.upstream_idle_timeout);
        let h2 = H2Pool::new(options.upstream_idle_timeout);
        Context {
            shared,
            options,
            clients,
            pool,
            h2,
        }
    }
}

/// Who sent a request: the socket peer, or the client a PROXY header named.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client {
    pub addr: SocketAddr,
    /// Its `X-Forwarded-For` is kept and extended (`--trusted-proxies`); else replaced.
    pub trusted: bool,
}

/// The random round-robin start of this process (spec §4.3: random offset per proxy worker),
/// so replicas do not all hit the same endpoint first.
pub(super) fn process_offset() -> usize {
    static OFFSET: OnceLock<usize> = OnceLock::new();
    *OFFSET.get_or_init(|| fastrand::usize(..))
}

/// Where one attempt goes.
#[derive(Debug, Clone)]
enum Dest {
    Endpoint(SocketAddr),
    External { host: String, port: u16 },
}

impl Dest {
    fn authority(&self) -> Result<Authority, ProxyError> {
        let text = match self {
            Dest::Endpoint(addr) => addr.to_string(),
            Dest::External { host, port } => {
                let host = host.strip_suffix('.').unwrap_or(host);
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            }
        };
        Authority::try_from(text).map_err(|_| ProxyError::BadRequest("unusable backend address"))
    }
}

impl Dest {
    /// The HTTP/2 pool's name for where the connection goes.
    fn peer(&self) -> h2pool::Peer {
        match self {
            Dest::Endpoint(addr) => h2pool::Peer::Addr(*addr),
            Dest::External { host, port } => h2pool::Peer::Name {
                host: host.strip_suffix('.').unwrap_or(host).to_owned(),
                port: *port,
            },
        }
    }
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Endpoint(addr) => write!(f, "{addr}"),
            Dest::External { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// The hyper service function: never fails, every error is a response from `error.rs`.
/// `tls`: the connection's TLS version and SNI on the HTTPS listener; `active`: the request's
/// share of its connection's activity, held until its response ends.
pub(crate) async fn handle(
    ctx: Arc<Context>,
    client: Client,
    tls: Option<Arc<crate::access_log::TlsInfo>>,
    active: super::server::Active,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let client_addr = client.addr;
    let version = req.version();
    let nth = active.nth();
    // The ConfigMap's `log-format-upstream`, looked up only when there is an access log.
    let log_format = ctx
        .options
        .observe
        .access_log
        .as_ref()
        .and_then(|_| ctx.shared.load().translation.global.log_format.clone());
    let arrival = Arrival::new(
        &req,
        client_addr,
        tls.as_ref(),
        &ctx.options.observe,
        log_format,
    );
    // Dropped without a response if the client goes away first: then logged as 499.
    let mut pending = Pending::new(&ctx.options.observe, arrival, active);
    let seen = &mut pending.seen;
    let mut intercept = None;
    let mut route_headers = None;
    // The controller ConfigMap the request was routed with (`None` if it was answered first).
    let mut routed_global = None;
    let mut cors = None;
    let tls_info = tls.as_deref();
    // Boxed: `proxy`'s state is ~5 KiB (every await point's locals), and hyper moves this
    // future twice before polling it (a memcpy of its whole size each time); one allocation
    // and one copy into it are cheaper (docs/performance.md).
    let response = match Box::pin(proxy(
        &ctx,
        client,
        tls_info,
        req,
        seen,
        &mut intercept,
        &mut route_headers,
        &mut routed_global,
        &mut cors,
    ))
    .await
    {
        // `custom-http-errors`: a listed status is answered by the error backend.
        Ok(response) => match intercept.filter(|i| i.upstream_answer(response.status())) {
            Some(i) => {
                let status = response.status();
                drop(response);
                // The error location is another nginx location: no `custom-headers`, no CORS.
                route_headers = None;
                cors = None;
                // Boxed: only routes with error pages pay for its state.
                Box::pin(error_pages::answer(&ctx, i, status, version))
                    .await
                    .unwrap_or_else(|err| err.to_response(version))
            }
            None => response,
        },
        Err((err, backend)) => {
            let status = err.status();
            if let ProxyError::Client(fault) = &err {
                ctx.options.observe.metrics.client_error(fault.reason());
            }
            // 502/504 are upstream failures worth a warning; a 503 for a backend translate
            // already reported (missing Service, no endpoints) would repeat that per request.
            if matches!(
                status,
                StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT
            ) {
                tracing::warn!(
                    client.addr = %client_addr,
                    http.host = seen.host_str(),
                    backend.addr = %backend.as_ref().map(ToString::to_string).unwrap_or_default(),
                    status = status.as_u16(),
                    error = %err,
                    cause = ?std::error::Error::source(&err),
                    "upstream request failed"
                );
            } else {
                tracing::debug!(
                    client.addr = %client_addr,
                    http.host = seen.host_str(),
                    status = status.as_u16(),
                    error = %err,
                    "request refused"
                );
            }
            let client_fault = matches!(err, ProxyError::Client(_));
            match intercept.filter(|i| !client_fault && i.own_answer(status)) {
                Some(i) => {
                    route_headers = None;
                    cors = None;
                    Box::pin(error_pages::answer(&ctx, i, status, version))
                        .await
                        .unwrap_or_else(|err| err.to_response(version))
                }
                None => err.to_response(version),
            }
        }
    };
    let mut response = response;
    // The controller ConfigMap's response headers (HSTS, `add-headers`) and the Ingress's
    // `custom-headers`: those the request was routed with, else one lock-free load. Only an
    // HTTP/1 answer can close its connection; a 101 keeps `Connection: upgrade` (the connection
    // becomes the tunnel).
    let closable =
        version <= Version::HTTP_11 && response.status() != StatusCode::SWITCHING_PROTOCOLS;
    let published;
    let global = match &routed_global {
        Some(global) => global,
        None => {
            published = ctx.shared.load();
            &published.translation.global
        }
    };
    super::global::finish(
        response.headers_mut(),
        global,
        ctx.options.scheme,
        closable.then_some(nth),
    );
    if route_headers.is_some() || !global.add_headers.is_empty() {
        custom_headers::response(response.headers_mut(), global, route_headers.as_deref());
    }
    if let Some(cors) = &cors {
        cors.apply(response.headers_mut());
    }
    Ok(pending.finish(response))
}

type Failure = (ProxyError, Option<Dest>);

fn fail(err: ProxyError) -> Failure {
    (err, None)
}

/// The client address the source ranges and limits see (issue 14).
fn client_address<B>(
    req: &Request<B>,
    client: Client,
    ctx: &Context,
    global: &crate::routing::Global,
) -> IpAddr {
    headers::client_address(
        req.headers(),
        client.trusted,
        &global.forwarded,
        &ctx.options.trusted_proxies,
        client.addr.ip(),
    )
}

/// The authority of a request per spec §3.2 step 1, and whether it must be written into the
/// upstream `Host` header.
///
/// Origin-form requests keep their `Host` header unchanged (spec §6.1). When the URI carries
/// the authority (HTTP/1 absolute-form, HTTP/2 `:authority`) that authority is what was routed
/// on, so it becomes the upstream `Host`: RFC 9112 §3.2.2 requires a proxy to replace `Host`
/// with an absolute-form target's authority, and it keeps the backend's view consistent with
/// the route that was chosen.
///
/// Both are checked (docs/security.md, "Host"): a `Host` outside RFC 3986's grammar, with
/// userinfo or a bad port is 400 even when an absolute-form target overrides it (RFC 9112 §3.2:
/// "a Host header field with an invalid field value"); an authority with userinfo is 400 rather
/// than forwarded; and over HTTP/2 a `Host` naming another origin than `:authority` is a
/// malformed request (RFC 9113 §8.3.1).
fn request_authority<B>(req: &Request<B>) -> Result<(HeaderValue, bool), ProxyError> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let raw_header = hosts.next();
    if hosts.next().is_some() {
        return Err(ProxyError::BadRequest("duplicate Host header"));
    }
    let header = match raw_header {
        Some(value) => match value.to_str() {
            Ok(h) => Some(h),
            Err(_) => return Err(ProxyError::BadRequest("Host header is not ASCII")),
        },
        None => None,
    };
    if let Some(h) = header {
        normalize::check_authority(h).map_err(|r| ProxyError::BadRequest(r.as_str()))?;
    }
    if let Some(authority) = req.uri().authority() {
        let authority = authority.as_str();
        normalize::check_authority(authority).map_err(|r| ProxyError::BadRequest(r.as_str()))?;
        if req.version() == Version::HTTP_2 {
            let default_port = match req.uri().scheme_str() {
                Some("https") => 443,
                _ => 80,
            };
            if header.is_some_and(|h| !normalize::same_authority(h, authority, default_port)) {
                return Err(ProxyError::BadRequest("Host differs from :authority"));
            }
        } else if header.is_none() && req.version() >= Version::HTTP_11 {
            // RFC 9112 §3.2: every HTTP/1.1 request carries Host, absolute-form too.
            return Err(ProxyError::BadRequest("missing Host header"));
        }
        let value = HeaderValue::from_str(authority)
            .map_err(|_| ProxyError::BadRequest("unusable authority"))?;
        return Ok((value, true));
    }
    match raw_header {
        // A clone shares the parsed request's bytes: no copy (checked as ASCII above).
        Some(value) => Ok((value.clone(), false)),
        // spec §3.2: HTTP/1.0 without Host has the empty host; HTTP/1.1 and later need one.
        None if req.version() <= Version::HTTP_10 => Ok((HeaderValue::from_static(""), true)),
        None => Err(ProxyError::BadRequest("missing Host header")),
    }
}

// The out-parameters are what `handle` needs after the answer (error pages, response headers,
// CORS); one per feature, so a route without them pays nothing.
#[allow(clippy::too_many_arguments)]
async fn proxy(
    ctx: &Context,
    client: Client,
    tls: Option<&crate::access_log::TlsInfo>,
    mut req: Request<Incoming>,
    seen: &mut Seen,
    intercept: &mut Option<error_pages::Intercept>,
    route_headers: &mut Option<Arc<crate::routing::CustomHeaders>>,
    routed_global: &mut Option<Arc<crate::routing::Global>>,
    cors_answer: &mut Option<cors::Answer>,
) -> Result<Response<ProxyBody>, Failure> {
    let client_version = req.version();
    if headers::head_size(&req) > ctx.options.max_header_bytes {
        return Err(fail(ProxyError::HeadersTooLarge));
    }
    if req.method() == Method::CONNECT {
        return Err(fail(ProxyError::ConnectMethod));
    }
    // Connection, Transfer-Encoding and Content-Length, found in one pass; the lookups below
    // run only for the headers there are. (Later steps add only `X-Request-ID`.)
    let framing = headers::Framing::of(req.headers());
    if framing.transfer_encoding && headers::unsupported_transfer_coding(req.headers()) {
        return Err(fail(ProxyError::UnsupportedTransferCoding));
    }
    let (host_header, set_host) = request_authority(&req).map_err(fail)?;
    // ASCII by construction in `request_authority`.
    let host_value = host_header.to_str().unwrap_or_default();
    let match_host = normalize::host(host_value);
    seen.host = Some(host_header.clone());
    // spec §3.4, §6.1: refuse what backends would resolve differently, and forward exactly
    // the path that is matched (the query untouched).
    let match_path = normalize::request_path(req.uri().path(), ctx.options.path_rules)
        .map_err(|r| fail(ProxyError::BadRequest(r.as_str())))?;
    let upstream_target = if normalize::forwards_changed(req.uri().path(), &match_path) {
        let text = match req.uri().query() {
            Some(query) => format!("{match_path}?{query}"),
            None => match_path.clone().into_owned(),
        };
        Some(
            PathAndQuery::try_from(text)
                .map_err(|_| fail(ProxyError::BadRequest("unusable request target")))?,
        )
    } else {
        None
    };

    // spec §3.3–3.7; the guard is dropped at the end of this block, before any await.
    let mut rewritten = None;
    let location;
    let mut client_cert = None;
    let auth_scope;
    let (backend, global) = {
        let published = ctx.shared.load();
        let decision = published.translation.table.decide(&match_host, &match_path);
        let series = ctx.options.observe.metrics.decision(&decision);
        seen.series = Some(series);
        // issue 14: the ConfigMap's block lists, before any redirect (ingress-nginx's
        // server-level `return 403`).
        if let Some(block) = &published.translation.global.block {
            let ip = client_address(&req, client, ctx, &published.translation.global);
            limits::blocked(block, ip, req.headers()).map_err(fail)?;
        }
        // issue 14: `enable-access-log: "false"`.
        seen.no_access_log = decision.backend().is_some_and(|b| b.policy.no_access_log);
        // The ConfigMap's `http-redirect-code` and `use-port-in-redirects`, read only by the
        // two redirects below that use them.
        let redirects = || redirect::RedirectSettings::from_global(&published.translation.global);
        // `from-to-www-redirect`: the other spelling of a rule host redirects to it.
        if let Some(to) = published.translation.table.www_redirect(&match_host) {
            return redirect::to_www(
                to,
                host_value,
                &req,
                client.trusted,
                &ctx.options,
                &redirects(),
            )
            .map_err(fail);
        }
        // spec §5.5: translate decided which routes redirect; ACME challenges never do, nor
        // requests a trusted balancer says arrived over HTTPS.
        let to_https = ctx.options.scheme == Scheme::Http
            && decision.ssl_redirect()
            && !redirect::is_acme_challenge(&match_path)
            && !redirect::forwarded_https(req.headers(), client.trusted, &ctx.options);
        // issue 15: client certificates, checked by nginx before anything else of the server
        // (a plain-HTTP request about to be redirected to HTTPS is checked there).
        if let Some(auth) = decision.vhost().and_then(|v| v.client_auth.as_ref()) {
            if !to_https {
                match super::client_auth::check(auth, tls, &match_host, client_version) {
                    Ok(checked) => client_cert = Some(checked),
                    Err(answer) => return Ok(*answer),
                }
            }
        }
        // issue 13: `app-root` is a server-level redirect in ingress-nginx, before any other.
        if let Some(vhost) = decision.vhost().filter(|v| v.app_root.is_some()) {
            let scheme = ctx.options.scheme;
            if let Some(found) =
                rewrite::app_root(vhost, &match_path, scheme, host_value, client_version)
            {
                return found.map_err(fail);
            }
        }
        // `permanent-redirect` / `temporal-redirect`: answered before anything else, as
        // nginx's `return` runs before ingress-nginx's HTTPS redirect (proxy/redirect.rs).
        if let Some(fixed) = decision.backend().and_then(|b| b.policy.redirect.as_ref()) {
            return redirect::fixed(fixed, client_version).map_err(fail);
        }
        if to_https {
            let uri = rewrite::redirect_uri(decision.route(), req.uri());
            let uri = uri.as_ref().unwrap_or(req.uri());
            // A trusted balancer's `X-Forwarded-Host` names the host the client used
            // (ingress-nginx `$best_http_host`; e2e `settings/tls.go`, "should not use ports or
            // X-Forwarded-Host during the HTTP to HTTPS redirection"); its port is dropped.
            let peer = client.addr.ip().to_canonical();
            let global = &published.translation.global;
            let host = headers::trusts(client.trusted, &global.forwarded, peer)
                .then(|| headers::first_forwarded_host(req.headers()))
                .flatten()
                .unwrap_or(host_value);
            return redirect::to_https(host, uri, client_version, &redirects()).map_err(fail);
        }
        // issue 13: `rewrite-target` of the regex location that matched.
        if let Decision::Route {
            route,
            location: Some(location),
            ..
        } = decision
        {
            if let Some(r) = rewrite::apply(route, location, &match_path, req.uri().query()) {
                rewritten = Some(r.map_err(fail)?);
            }
        }
        // issue 14: the route path an affinity cookie is issued for (`None` without one).
        location = affinity::location(&decision);
        match decision.backend() {
            Some(backend) => {
                // issue 15: cached auth answers are per Ingress path.
                auth_scope = ext_auth::scope(&decision, backend);
                (backend.clone(), published.translation.global.clone())
            }
            None => return Err(fail(ProxyError::NoRoute)),
        }
    };
    let global = &*routed_global.insert(global);
    // issue 14: a canary attached to the main backend may take the request (proxy/canary.rs).
    let backend = if backend.policy.canary.is_some() {
        super::canary::choose(backend, req.headers())
    } else {
        backend
    };
    // `large-client-header-buffers` can only lower `--max-header-bytes` (hyper's read buffer
    // is sized from the flag when the connection opens).
    if let Some(buffers) = global.large_client_header_buffers {
        if headers::head_size(&req) as u64 > buffers.total() {
            return Err(fail(ProxyError::HeadersTooLarge));
        }
    }

    // issue 14: CORS (proxy/cors.rs); an allowed preflight is answered here, 204. First, as
    // ingress-nginx's `if ($request_method = 'OPTIONS') { return 204; }` runs in nginx's rewrite
    // phase, before `limit_req` and the access phase: a browser's preflight carries no
    // credentials, so basic or external authentication would otherwise refuse it.
    if let Some(c) = &backend.policy.cors {
        *cors_answer = cors::check(c, req.headers());
        if cors_answer.is_some() && req.method() == Method::OPTIONS {
            return Ok(cors::preflight(client_version));
        }
    }
    // issue 14: rate and connection limits, then source ranges (limits.rs): nginx's preaccess
    // and access phases.
    if let Some(access) = &backend.policy.access {
        let ip = client_address(&req, client, ctx, global);
        seen.limit = limits::check(&ctx.options.limiter, access, ip).map_err(fail)?;
    }
    // `auth-type: basic` (basic_auth.rs): nginx's access phase, after the redirects.
    if let Some(auth) = &backend.policy.basic_auth {
        // Boxed (as the other features' awaits below): only routes that use it pay for its
        // state; inline it would enlarge every request's future.
        let check = Box::pin(super::basic_auth::check(
            auth,
            req.headers(),
            client_version,
        ));
        if let Some(denied) = check.await {
            return Ok(denied);
        }
    }
    // ingress-nginx's `custom-headers` (custom_headers.rs): a ConfigMap it would deny the
    // location for answers 503.
    if let Some(headers) = &backend.policy.custom_headers {
        if headers.denied {
            return Err(fail(ProxyError::Unavailable(
                crate::routing::Unavailable::LocationDenied,
            )));
        }
        *route_headers = Some(headers.clone());
    }
    // issue 15: external authentication (ext_auth.rs); nothing to do for backends without it.
    let mut granted = None;
    if let Some(auth) = &backend.policy.ext_auth {
        let policy = &backend.policy;
        let scope = auth_scope.as_deref();
        match Box::pin(ext_auth::check(
            ctx,
            auth,
            &mut req,
            client,
            &host_header,
            global,
            policy,
            scope,
        ))
        .await
        {
            Ok(ext_auth::Outcome::Granted(g)) => granted = Some(g),
            Ok(ext_auth::Outcome::Answer(answer)) => return Ok(answer),
            Err(err) => return Err(fail(err)),
        }
    }
    // ingress-nginx's `default-backend` / `custom-http-errors` (error_pages.rs); nothing to
    // do for backends without them.
    let mut backend = backend;
    if let Some(pages) = &backend.policy.error_pages {
        let mut i = error_pages::Intercept::new(
            pages.clone(),
            &backend,
            &mut req,
            client,
            &host_header,
            ctx.options.scheme,
            global,
        );
        if let Some(fallback) = i.fallback(&backend) {
            backend = fallback;
        }
        *intercept = Some(i);
    }

    // Per-Ingress settings were typed at translate time; the controller ConfigMap, then the
    // flags fill the gaps (`ingress-nginx.md` §4: the ConfigMap wins over a flag).
    let policy = &backend.policy;
    let opts = &ctx.options;
    let balance = policy
        .balance
        .or(global.load_balance)
        .unwrap_or(opts.balance);
    let tries = policy
        .tries
        .or(global.proxy_next_upstream_tries)
        .unwrap_or(opts.tries)
        .max(1);
    // issue 14: `proxy-next-upstream` (+ the ConfigMap's `retry-non-idempotent`) and
    // `proxy-next-upstream-timeout`, typed at translate time.
    let mut next = policy
        .next_upstream
        .or(global.proxy_next_upstream)
        .unwrap_or_default();
    if global.retry_non_idempotent {
        next = next.with(NextUpstream::NON_IDEMPOTENT);
    }
    let retry_budget = policy
        .next_upstream_timeout
        .or(global.proxy_next_upstream_timeout)
        .filter(|d| !d.is_zero());
    let connect_timeout = policy
        .connect_timeout
        .or(global.proxy_connect_timeout)
        .unwrap_or(opts.connect_timeout);
    let response_timeout = policy
        .response_timeout
        .or(global.proxy_read_timeout)
        .unwrap_or(opts.response_timeout);
    let send_timeout = policy
        .send_timeout
        .or(global.proxy_send_timeout)
        .unwrap_or(opts.send_timeout);
    let body_limit = policy
        .body_limit
        .or(global.proxy_body_size)
        .unwrap_or(opts.body_limit);
    let protocol = backend.protocol();
    // issue 14: `proxy-request-buffering` (proxy/buffering.rs): `on` (ingress-nginx's default)
    // reads the whole body before the upstream is used; HTTP/2 (gRPC) upstreams stream.
    let buffer = !protocol.is_http2()
        && policy
            .request_buffering
            .or(global.proxy_request_buffering)
            .unwrap_or(true);
    // issue 14: `proxy-http-version: "1.0"`; an HTTP/1.0 request cannot carry a body of
    // unknown length (hyper would send it empty) unless it is buffered to count it.
    let http10 = !protocol.is_http2()
        && policy
            .upstream_http10
            .or(global.proxy_http10)
            .unwrap_or(false);
    let request_length = if framing.content_length {
        content_length(req.headers())
    } else {
        None
    };
    if http10 && !buffer && !req.body().is_end_stream() && request_length.is_none() {
        return Err(fail(ProxyError::LengthRequired));
    }
    if body_limit > 0 && request_length.is_some_and(|n| n > body_limit) {
        return Err(fail(ProxyError::PayloadTooLarge));
    }

    let external = match &backend.target {
        Target::Unavailable(reason) => return Err(fail(ProxyError::Unavailable(*reason))),
        Target::Endpoints(_) => None,
        Target::ExternalName { host, port } => {
            // Literal IPs skip the resolver, so refuse local ones here (spec §4.5).
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse::<IpAddr>() {
                if upstream::is_refused(ip) {
                    return Err(fail(ProxyError::ExternalNameRefused(
                        upstream::ExternalNameRefused { host: host.clone() },
                    )));
                }
            }
            Some(Dest::External {
                host: bare.to_owned(),
                port: *port,
            })
        }
    };
    let endpoint_count = match &backend.target {
        Target::Endpoints(all) => all.len(),
        _ => 1,
    };

    // Protocol upgrade (spec §6.1): only the protocols the operator allows (WebSocket by
    // default); any other `Upgrade` (h2c above all) is dropped and the request forwarded as
    // a plain one. Take the client side's upgrade handle before the request is consumed.
    let upgrade = if framing.connection {
        headers::allowed_upgrade(&req, &ctx.options.upgrade_protocols)
    } else {
        None
    };
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));

    // ConfigMap `use-gzip`/`enable-brotli`: what the request offers, read only when on.
    let compression = super::compress::prepare(global.compression.as_ref(), &req);
    // issue 14: `upstream-hash-by` / `affinity` (proxy/affinity.rs), only when set.
    let mut sticky = policy.traffic.as_deref().map(|traffic| {
        let view = affinity::RequestView {
            host: &match_host,
            path: req.uri().path(),
            client_ip: client.addr.ip(),
            https: ctx.options.scheme == Scheme::Https,
        };
        affinity::Sticky::new(traffic, &req, &view, location)
    });

    let (parts, body) = req.into_parts();
    let mut forwarded_prefix = None;
    let upstream_target = match rewritten {
        Some(r) => {
            forwarded_prefix = r.prefix;
            Some(r.path_and_query)
        }
        None => upstream_target,
    };
    let path_and_query = upstream_target.unwrap_or_else(|| {
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"))
    });
    let mut headers = parts.headers;
    // gRPC needs `te: trailers` on HTTP/2 (RFC 9113 §8.2.2 allows exactly that value).
    let te_trailers = protocol.is_http2() && headers::te_is_trailers(&headers);
    headers::remove_hop_by_hop(&mut headers, upgrade.is_some());
    if let Some(offer) = &upgrade {
        headers.insert(http::header::UPGRADE, offer.clone());
    }
    if te_trailers {
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
    if set_host {
        // The URI's authority becomes the Host header; an HTTP/1.0 request without any gets
        // an empty one, as HTTP/1.1 upstream requires (RFC 9112 §3.2).
        headers.insert(HOST, host_header.clone());
    }
    let forwarded_host = headers::add_forwarded(
        &mut headers,
        &Forwarded {
            client_ip: client.addr.ip().to_canonical(),
            trusted: client.trusted,
            trusted_proxies: &ctx.options.trusted_proxies,
            scheme: ctx.options.scheme,
            host: host_value,
            host_value: &host_header,
            settings: &global.forwarded,
            generate_request_id: global.generate_request_id,
        },
    );
    // A trusted `X-Forwarded-Host` is the upstream's Host (ingress-nginx `$best_http_host`);
    // `upstream-vhost` replaces it (X-Forwarded-Host keeps the client's).
    if let Some(host) = forwarded_host {
        headers.insert(HOST, host);
    }
    if let Some(vhost) = &policy.upstream_vhost {
        headers.insert(HOST, vhost.clone());
    }
    if let Some(prefix) = forwarded_prefix {
        headers.insert(rewrite::X_FORWARDED_PREFIX.clone(), prefix);
    }
    if let Some(i) = intercept {
        i.add_fallback_headers(&mut headers);
    }
    if let Some(checked) = &client_cert {
        super::client_auth::add_headers(&mut headers, checked);
    }
    if !global.proxy_set_headers.is_empty() {
        custom_headers::request(&mut headers, global);
    }
    if let Some(g) = granted.as_mut() {
        g.request(&mut headers);
    }

    // What only the access log needs is kept only when there is one.
    let logging = ctx.options.observe.access_log.is_some();
    if logging {
        seen.request_id = headers.get(&headers::X_REQUEST_ID).cloned();
    }
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    );
    let has_body = !body.is_end_stream();
    let mut body = RetryBody::new(body, body_limit, opts.client_body_timeout);
    // Held until the upstream exchange ends: this request's share of the buffering budget.
    let buffered = if has_body && buffer {
        // Boxed: a request without a body never builds it.
        Box::pin(super::buffering::read(
            &mut body,
            content_length(&headers),
            body_limit,
            &mut headers,
        ))
        .await
        .map_err(fail)?
    } else {
        None
    };
    if http10 && has_body && buffered.is_none() && content_length(&headers).is_none() {
        return Err(fail(ProxyError::LengthRequired));
    }
    // Replaying after bytes went out: idempotent methods, or all with `non_idempotent`; never
    // a request with a body that was streamed, not kept.
    let replay_ok =
        (!has_body || buffered.is_some()) && (idempotent || next.any(NextUpstream::NON_IDEMPOTENT));
    // issue 14: `mirror-target` (proxy/mirror.rs): a copy on its own task, never waited for.
    if let Some(m) = policy.mirror.as_ref().filter(|_| upgrade.is_none()) {
        let original = super::mirror::Original {
            method: &parts.method,
            uri: &parts.uri,
            path: path_and_query.path(),
            host: &match_host,
            headers: &headers,
            has_body,
            body: buffered.as_ref().and_then(|_| body.copy()),
        };
        super::mirror::send(ctx, m, original);
    }
    // HTTP/2 upstreams: the host an HTTP/1.1 upstream would get as `Host` goes as
    // `:authority` instead, and no `Host` header (nginx's `grpc_pass`; RFC 9113 §8.3.1).
    let authority = if protocol.is_http2() {
        h2_headers(&mut headers)
    } else {
        None
    };
    let mut template = Template {
        method: parts.method,
        path_and_query,
        headers,
        protocol,
        http10,
        authority,
    };
    // A verified upstream certificate must name the Service (`name.namespace.svc`): endpoints
    // are dialled by IP. ExternalNames are verified against their own name.
    // `proxy-ssl-name` replaces it; `proxy-ssl-server-name: on` sends it without verifying.
    let server_name = match (&policy.upstream_tls, &backend.reference, &external) {
        (Some(tls), ..) if tls.name.is_some() => tls.name.clone(),
        (
            Some(tls),
            crate::routing::BackendRef::Service {
                namespace, name, ..
            },
            None,
        ) if tls.verifies() || tls.server_name == Some(true) => {
            Some(format!("{name}.{namespace}.svc"))
        }
        _ => None,
    };
    // Plain HTTP/1.1 to endpoint IPs takes this worker's own pool, HTTP/2 (endpoints and
    // ExternalNames) its HTTP/2 pool; HTTPS and HTTP/1.1 ExternalName backends the legacy
    // client (its connector resolves names and does TLS).
    let via = if protocol == Protocol::Http && external.is_none() {
        Via::Pool(&ctx.pool, connect_timeout, global.upstream_keepalive)
    } else if protocol.is_http2() {
        Via::H2(
            &ctx.h2,
            connect_timeout,
            global.upstream_keepalive,
            h2pool::Route::new(protocol, policy.upstream_tls.as_ref(), server_name),
        )
    } else {
        Via::Client(Box::new(ctx.clients.get(
            protocol,
            connect_timeout,
            policy.upstream_tls.as_ref(),
            server_name,
        )))
    };
    let origin_form = matches!(via, Via::Pool(..));
    let sent = body.sent();
    seen.body = Some(sent.clone());
    let upstream_start = std::time::Instant::now();
    let offset = process_offset();
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut attempt: u32 = 0;
    let mut last: Option<(ProxyError, Dest)> = None;
    let (mut response, dest, checkin, answered) = loop {
        attempt += 1;
        // spec §4.3: choose among the endpoints not tried yet; ejected ones only when
        // nothing else is left.
        let (dest, hold) = match &external {
            Some(dest) => (dest.clone(), None),
            None => match affinity::pick(
                sticky.as_mut(),
                &opts.balancer,
                &backend,
                balance,
                offset,
                &tried,
            ) {
                Some(hold) => (Dest::Endpoint(hold.addr), Some(hold)),
                None => match last {
                    Some((err, dest)) => return Err((err, Some(dest))),
                    None => {
                        return Err(fail(ProxyError::Unavailable(
                            crate::routing::Unavailable::NoEndpoints,
                        )))
                    }
                },
            },
        };
        if let Dest::Endpoint(addr) = dest {
            tried.push(addr);
        }
        let retry_body = if has_body {
            body.again()
        } else {
            Some(body.empty())
        };
        // Keep a copy of the headers only when another attempt could follow.
        let keep = attempt < tries && external.is_none() && tried.len() < endpoint_count;
        let request = template
            .build(&dest, body, keep, origin_form)
            .map_err(|e| (e, Some(dest.clone())))?;
        if logging {
            seen.upstream = Some(dest.to_string());
        }
        let err = match send(
            &via,
            &dest,
            request,
            sent.clone(),
            response_timeout,
            has_body.then_some(send_timeout),
        )
        .await
        {
            Ok((response, checkin)) => {
                // One clock read for the latency sample and the upstream duration.
                let answered = tokio::time::Instant::now();
                if let Some(hold) = hold {
                    hold.succeeded_at(answered);
                }
                // `proxy-next-upstream http_NNN`: this answer goes to another endpoint when
                // one is left and the request can be replayed; else it is the answer.
                let status = response.status().as_u16();
                let again = retry_body.filter(|_| {
                    next.retries_status(status)
                        && replay_ok
                        && attempt < tries
                        && external.is_none()
                        && tried.len() < endpoint_count
                        && retry_budget.is_none_or(|d| upstream_start.elapsed() < d)
                });
                let Some(next_body) = again else {
                    break (response, dest, checkin, answered);
                };
                drop((response, checkin));
                if let Some(series) = &seen.series {
                    series.retry();
                }
                tracing::debug!(
                    client.addr = %client.addr,
                    http.host = host_value,
                    backend.addr = %dest,
                    status,
                    "upstream answered a proxy-next-upstream status; retrying on another endpoint"
                );
                body = next_body;
                last = Some((
                    ProxyError::Upstream(format!("answered {status}").into()),
                    dest,
                ));
                continue;
            }
            Err(err) => err,
        };
        seen.upstream_duration = Some(upstream_start.elapsed());
        if sent.too_large.load(std::sync::atomic::Ordering::Relaxed) {
            return Err((ProxyError::PayloadTooLarge, Some(dest)));
        }
        // The client's body failed (malformed, cut short, stalled): whatever the upstream
        // connection made of it, the endpoint did nothing wrong. No ejection, no latency
        // sample (dropping `hold` only ends the attempt), no retry (issue 10 item 2).
        if let Some(fault) = sent.client_fault() {
            drop(hold);
            return Err((ProxyError::Client(fault), Some(dest)));
        }
        if err.is_retryable_connect() {
            if let Some(series) = &seen.series {
                series.connect_error();
            }
        }
        // Passive health: the endpoint failed before answering. A response timeout is not
        // its fault alone (the request may be slow), so it is not ejected for that.
        if let Some(hold) = hold {
            if err.is_endpoint_failure() {
                let backoff = hold.failed();
                opts.observe.metrics.ejection();
                tracing::debug!(backend.addr = %dest, backoff = ?backoff, error = %err, "endpoint ejected");
            }
        }
        // spec §4.4: a connect failure (nothing sent) retries for any method; a failure after
        // bytes went out only for idempotent requests without a body, which can be replayed.
        // `proxy-next-upstream` says which failures retry at all (default `error timeout`).
        let condition = match &err {
            ProxyError::Connect(_) => NextUpstream::ERROR,
            ProxyError::Upstream(_) => NextUpstream::ERROR.with(NextUpstream::INVALID_HEADER),
            ProxyError::ConnectTimeout | ProxyError::ResponseTimeout | ProxyError::SendTimeout => {
                NextUpstream::TIMEOUT
            }
            _ => NextUpstream::OFF,
        };
        let replayable = next.any(condition) && (err.is_retryable_connect() || replay_ok);
        let next_body = match retry_body {
            Some(b)
                if replayable
                    && attempt < tries
                    && external.is_none()
                    && retry_budget.is_none_or(|d| upstream_start.elapsed() < d) =>
            {
                b
            }
            _ => return Err((err, Some(dest))),
        };
        if tried.len() >= endpoint_count {
            return Err((err, Some(dest)));
        }
        if let Some(series) = &seen.series {
            series.retry();
        }
        tracing::debug!(
            client.addr = %client.addr,
            http.host = host_value,
            backend.addr = %dest,
            error = %err,
            "upstream failed before answering; retrying on another endpoint"
        );
        body = next_body;
        last = Some((err, dest));
    };

    let upstream_duration = answered
        .into_std()
        .saturating_duration_since(upstream_start);
    seen.upstream_duration = Some(upstream_duration);
    if let Some(series) = &seen.series {
        series.upstream(upstream_duration);
    }

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        // Never a tunnel the proxy did not ask for: a 101 to a plain request, or to a
        // protocol that was not offered, is the backend's error (RFC 9110 §15.2.2).
        let (Some(client_upgrade), Some(offer)) = (client_upgrade, &upgrade) else {
            return Err((
                ProxyError::Upstream("101 Switching Protocols without an upgrade request".into()),
                Some(dest),
            ));
        };
        if !headers::upgrade_accepted(offer, response.headers()) {
            return Err((
                ProxyError::Upstream("101 Switching Protocols to a protocol not offered".into()),
                Some(dest),
            ));
        }
        // The upstream connection now belongs to the tunnel, never to the pool.
        drop(checkin);
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        let backend_addr = dest.to_string();
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((client_io, upstream_io)) => {
                    let mut client_io = TokioIo::new(client_io);
                    let mut upstream_io = TokioIo::new(upstream_io);
                    if let Err(e) =
                        tokio::io::copy_bidirectional(&mut client_io, &mut upstream_io).await
                    {
                        tracing::debug!(backend.addr = %backend_addr, error = %e, "tunnel closed");
                    }
                }
                Err(e) => {
                    tracing::debug!(backend.addr = %backend_addr, error = %e, "upgrade failed");
                }
            }
        });
        let (mut parts, _) = response.into_parts();
        finish_headers(&mut parts.headers, true);
        if let Some(cookie) = sticky.and_then(|s| s.issued) {
            parts.headers.append(http::header::SET_COOKIE, cookie);
        }
        parts.version = response_version(client_version);
        let body = Empty::new().map_err(|never| match never {}).boxed();
        return Ok(Response::from_parts(parts, body));
    }

    let (mut parts, body) = response.into_parts();
    finish_headers(&mut parts.headers, false);
    if let Some(cookie) = sticky.and_then(|s| s.issued) {
        parts.headers.append(http::header::SET_COOKIE, cookie);
    }
    if let Some(rewrite) = &policy.rewrite_response {
        response_rewrite::apply(rewrite, &mut parts.headers);
    }
    if let Some(g) = &granted {
        g.response(&mut parts.headers, parts.status);
    }
    parts.version = response_version(client_version);
    let body = match checkin {
        Some(checkin) => checkin.wrap(body).boxed(),
        None => body.boxed(),
    };
    let body = match compression {
        Some((settings, offer)) => {
            super::compress::apply(&settings, offer, parts.status, &mut parts.headers, body)
        }
        None => body,
    };
    // issue 14: `limit-rate` / `limit-rate-after` (limits.rs).
    let body = match policy.access.as_ref().and_then(|a| a.bandwidth) {
        Some(bandwidth) => limits::throttle(bandwidth, body),
        None => body,
    };
    Ok(Response::from_parts(parts, body))
}

/// How a request's attempts reach the upstream.
enum Via<'a> {
    /// This worker's pool of plain HTTP/1.1 connections, with the connect timeout.
    Pool(
        &'a Arc<Pool>,
        std::time::Duration,
        crate::routing::UpstreamKeepalive,
    ),
    /// This worker's HTTP/2 connections, with the connect timeout and the TLS settings.
    H2(
        &'a Arc<H2Pool>,
        std::time::Duration,
        crate::routing::UpstreamKeepalive,
        h2pool::Route<'a>,
    ),
    /// hyper-util's client for this protocol, connect timeout and verification (boxed: it
    /// is large, and this path is not the hot one).
    Client(Box<Upstream>),
}

/// One attempt. The response timeout runs from the moment the request body has been sent
/// (at once for bodiless requests), so slow uploads are bounded by the client, not by it; the
/// connect phase has its own `connect_timeout`. A pooled connection comes with its
/// [`Checkin`], which the response body takes.
async fn send(
    via: &Via<'_>,
    dest: &Dest,
    request: Request<RetryBody>,
    sent: Arc<super::upstream::Progress>,
    response_timeout: std::time::Duration,
    send_timeout: Option<std::time::Duration>,
) -> Result<(Response<UpBody>, Option<Checkin>), ProxyError> {
    let request_ended = request.body().is_end_stream();
    let response = async {
        match (via, dest) {
            (Via::Pool(pool, connect_timeout, keepalive), Dest::Endpoint(addr)) => {
                pool.send(*addr, *connect_timeout, *keepalive, request)
                    .await
            }
            (Via::H2(pool, connect_timeout, keepalive, route), dest) => pool
                .send(&dest.peer(), route, *connect_timeout, *keepalive, request)
                .await
                .map(|response| (response, None)),
            (Via::Client(client), _) => client
                .request(request)
                .await
                .map(|response| (response.map(UpBody::Hyper), None))
                .map_err(ProxyError::from_client),
            // `Via::Pool` is chosen only for endpoint backends.
            (Via::Pool(..), Dest::External { .. }) => {
                Err(ProxyError::BadRequest("unusable backend address"))
            }
        }
    };
    tokio::pin!(response);
    // A request whose body has ended (none at all, the usual case): nothing to race the
    // response against, and no send timeout to watch; the permit stays stored for a retry.
    if request_ended {
        return match tokio::time::timeout(response_timeout, response).await {
            Ok(result) => result,
            Err(_) => Err(ProxyError::ResponseTimeout),
        };
    }
    // nginx `proxy_send_timeout`: while the body is being sent, an upstream that has taken no
    // frame for a whole `send_timeout` (checked every `send_timeout`, so it fires after one
    // to two of them) while it was its turn is cut off. A client slow to send is not this
    // (`upstream_turn` is false then): `--client-body-timeout` deals with it.
    // `None` (a request without a body): no timer at all.
    let stalled = async {
        let Some(send_timeout) = send_timeout else {
            return std::future::pending().await;
        };
        let mut last = sent.handed.load(std::sync::atomic::Ordering::Relaxed);
        loop {
            tokio::time::sleep(send_timeout).await;
            let now = sent.handed.load(std::sync::atomic::Ordering::Relaxed);
            if now == last
                && sent
                    .upstream_turn
                    .load(std::sync::atomic::Ordering::Relaxed)
            {
                return;
            }
            last = now;
        }
    };
    let early = tokio::select! {
        result = &mut response => Some(result),
        () = sent.sent.notified() => None,
        () = stalled => return Err(ProxyError::SendTimeout),
    };
    match early {
        Some(result) => result,
        None => {
            // Hand the permit back for a retry attempt of the same (already finished) body.
            sent.sent.notify_one();
            match tokio::time::timeout(response_timeout, response).await {
                Ok(result) => result,
                Err(_) => Err(ProxyError::ResponseTimeout),
            }
        }
    }
}

/// The headers of a request to an HTTP/2 upstream: `Host` taken out, to become the
/// `:authority` (returned; `None` if it is not a valid authority, e.g. the empty host of an
/// HTTP/1.0 request, and then the endpoint's address is used as before), and the request id
/// marked sensitive so HPACK writes it as a never-indexed literal: a value new on every
/// request would otherwise be inserted into the dynamic table and evict the values that
/// repeat (docs/performance.md, "h2c-upstream").
fn h2_headers(headers: &mut HeaderMap) -> Option<Authority> {
    if let Some(id) = headers.get_mut(&headers::X_REQUEST_ID) {
        id.set_sensitive(true);
    }
    let host = headers.remove(HOST)?;
    Authority::try_from(host.as_bytes()).ok()
}

/// The request's `Content-Length`, when it has one that parses.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Response headers to the client (spec §6.3): hop-by-hop removed, `Date` added if missing,
/// `Server` overwritten. `Content-Length` is left alone, so hyper frames the body with it,
/// unless the upstream also sent `Transfer-Encoding`: then its body was read by that framing
/// and the `Content-Length` is wrong by definition (RFC 9112 §6.3: Transfer-Encoding
/// overrides it, and a proxy must drop it), so the client gets hyper's chunked framing.
pub(super) fn finish_headers(headers: &mut HeaderMap, upgrade: bool) {
    // One pass over the few names of a response head, cheaper than hashed lookups.
    let found = headers::HopByHop::of(headers);
    if found.transfer_encoding() {
        headers.remove(http::header::CONTENT_LENGTH);
    }
    found.remove(headers, upgrade);
    if !found.date {
        headers.insert(DATE, date_now());
    }
    headers.insert(SERVER, HeaderValue::from_static(super::SERVER));
}

/// The parts of the upstream request that survive a failed attempt.
struct Template {
    method: Method,
    path_and_query: PathAndQuery,
    headers: HeaderMap,
    protocol: Protocol,
    /// `proxy-http-version: "1.0"`.
    http10: bool,
    /// HTTP/2 upstreams: the `:authority` (the `Host` an HTTP/1.1 upstream would get);
    /// `None`: the endpoint's address (a request without a usable host).
    authority: Option<Authority>,
}

impl Template {
    /// The upstream request: HTTP/1.1 (spec §6.1) unless the backend speaks HTTP/2 (h2c,
    /// gRPC), the matched path (the original one byte-for-byte unless normalisation changed
    /// it, spec §6.1) and the original query (the client turns the URI into origin-form, also
    /// for absolute-form requests), headers as prepared. `origin_form`: the URI is just the
    /// path and query (what a pooled HTTP/1.1 connection writes as is); else absolute, which
    /// the legacy client needs to pick its pool and connector.
    fn build(
        &mut self,
        dest: &Dest,
        body: RetryBody,
        keep: bool,
        origin_form: bool,
    ) -> Result<Request<RetryBody>, ProxyError> {
        let uri = if origin_form {
            Uri::from(self.path_and_query.clone())
        } else {
            self.absolute(dest)?
        };
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = if self.protocol.is_http2() {
            Version::HTTP_2
        } else if self.http10 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        *request.headers_mut() = if keep {
            self.headers.clone()
        } else {
            std::mem::take(&mut self.headers)
        };
        Ok(request)
    }

    fn absolute(&self, dest: &Dest) -> Result<Uri, ProxyError> {
        Uri::builder()
            .scheme(if self.protocol.is_tls() {
                UriScheme::HTTPS
            } else {
                UriScheme::HTTP
            })
            .authority(match &self.authority {
                Some(authority) => authority.clone(),
                None => dest.authority()?,
            })
            .path_and_query(self.path_and_query.clone())
            .build()
            .map_err(|_| ProxyError::BadRequest("unusable request target"))
    }
}
