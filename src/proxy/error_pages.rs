//! Per request, ingress-nginx's error pages: sits in `service` between the routing decision
//! and the answer. Translate typed them into the backend's policy
//! ([`ErrorPages`](crate::routing::ErrorPages), `translate/error_pages.rs`); a backend without
//! them costs one `Option` check.
//!
//! Two things happen here, as ingress-nginx's `nginx.tmpl` does them:
//! - **`default-backend`**: a routed Service without endpoints is replaced by the annotation's
//!   Service, which gets the request as it came (same path) plus `X-Code: 503` and the
//!   `X-Namespace`/`X-Ingress-Name`/`X-Service-*`/`X-Format`/`X-Request-ID` headers (the
//!   template's `hasPrefix $location.Backend "custom-default-backend-"` block).
//! - **`custom-http-errors`**: an answer with a listed status (the upstream's, or Portico's own
//!   502/503/504...) is replaced by the error backend's answer to a request for `/` (and the
//!   original query: nginx's `rewrite (.*) / break`) with the same method and the headers of
//!   the "CUSTOM_ERRORS" location. The client gets the error backend's status, headers and
//!   body (`error_page N = @custom_...`: the `=` takes the named location's status); the
//!   original answer's body is dropped unread (its upstream connection is closed, not pooled).
//!   A failing error backend is answered like any failed upstream (502, 503, 504): nginx does
//!   not apply `error_page` again (`recursive_error_pages off`).

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::error::{response_version, ProxyError};
use super::headers::{self, Forwarded, X_FORWARDED_FOR, X_REAL_IP, X_REQUEST_ID};
use super::service::{finish_headers, process_offset, Client, Context};
use super::upstream::RetryBody;
use super::{ProxyBody, Scheme};
use crate::routing::{
    Backend, BackendRef, Balance, ErrorPages, Global, Protocol, Target, Unavailable,
};

static X_CODE: HeaderName = HeaderName::from_static("x-code");
static X_FORMAT: HeaderName = HeaderName::from_static("x-format");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_NAMESPACE: HeaderName = HeaderName::from_static("x-namespace");
static X_INGRESS_NAME: HeaderName = HeaderName::from_static("x-ingress-name");
static X_SERVICE_NAME: HeaderName = HeaderName::from_static("x-service-name");
static X_SERVICE_PORT: HeaderName = HeaderName::from_static("x-service-port");

/// What a request whose backend has error pages keeps, to ask the error backend later. Made
/// only for such requests.
pub(super) struct Intercept {
    pages: Arc<ErrorPages>,
    method: Method,
    /// `$request_uri`: the request-target as the client sent it.
    original_uri: Option<HeaderValue>,
    /// The client's request headers (with the request id the upstream also gets).
    headers: HeaderMap,
    host: HeaderValue,
    client: Client,
    scheme: Scheme,
    /// The controller ConfigMap's settings the request was served under (forwarded headers).
    global: Arc<Global>,
    /// `$service_name`, `$service_port`: the routed Service as the Ingress names it.
    service_name: Option<HeaderValue>,
    service_port: Option<HeaderValue>,
    /// The `default-backend` Service answers in place of the routed one.
    fell_back: bool,
}

impl Intercept {
    /// Keeps what the error backend will need. A request without `X-Request-ID` gets one now
    /// (`$req_id`, which the error location always sends): in the request too when
    /// `generate-request-id` is on, so the upstream and the error backend see the same one.
    pub fn new(
        pages: Arc<ErrorPages>,
        routed: &Backend,
        req: &mut Request<Incoming>,
        client: Client,
        host: &HeaderValue,
        scheme: Scheme,
        global: &Arc<Global>,
    ) -> Self {
        let mut headers = req.headers().clone();
        if !headers.contains_key(&X_REQUEST_ID) {
            let id = headers::request_id();
            if global.generate_request_id {
                req.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
            }
            headers.insert(X_REQUEST_ID.clone(), id);
        }
        let (service_name, service_port) = match &routed.reference {
            BackendRef::Service { name, port, .. } => (
                HeaderValue::from_str(name).ok(),
                HeaderValue::from_str(&port.to_string()).ok(),
            ),
            BackendRef::Resource { .. } => (None, None),
        };
        Intercept {
            pages,
            method: req.method().clone(),
            original_uri: req
                .uri()
                .path_and_query()
                .and_then(|pq| HeaderValue::from_str(pq.as_str()).ok()),
            headers,
            host: host.clone(),
            client,
            scheme,
            global: global.clone(),
            service_name,
            service_port,
            fell_back: false,
        }
    }

    /// The `default-backend` Service, under the routed backend's policy, when the routed
    /// Service cannot take traffic for want of endpoints (ingress-nginx: "Upstream has no active
    /// Endpoint, so using custom default backend"). Never for an Ingress that fails closed or
    /// for a refused ExternalName: those are not a missing endpoint.
    pub fn fallback(&mut self, routed: &Backend) -> Option<Arc<Backend>> {
        let Target::Unavailable(
            Unavailable::NoEndpoints
            | Unavailable::ServiceNotFound
            | Unavailable::ServicePortNotFound,
        ) = routed.target
        else {
            return None;
        };
        let fallback = self.pages.fallback()?;
        self.fell_back = true;
        Some(Arc::new(fallback.with_policy(routed.policy.clone())))
    }

    /// The headers ingress-nginx adds to a request sent to a `default-backend` in place of
    /// the routed Service; nothing unless [`Intercept::fallback`] chose it.
    pub fn add_fallback_headers(&self, headers: &mut HeaderMap) {
        if self.fell_back {
            self.add_common(headers, StatusCode::SERVICE_UNAVAILABLE);
        }
    }

    /// Whether an upstream answer with `status` is replaced.
    pub fn upstream_answer(&self, status: StatusCode) -> bool {
        !self.pages.upstream_passes && self.replaces(status)
    }

    /// Whether Portico's own answer with `status` (502, 503, 504, 413...) is replaced.
    pub fn own_answer(&self, status: StatusCode) -> bool {
        self.replaces(status)
    }

    fn replaces(&self, status: StatusCode) -> bool {
        self.pages.lists(status.as_u16()) && self.pages.error_backend().is_some()
    }

    /// `X-Code`, `X-Format`, `X-Namespace`, `X-Ingress-Name`, `X-Service-Name`,
    /// `X-Service-Port`; nginx sends no header whose value is empty.
    fn add_common(&self, headers: &mut HeaderMap, status: StatusCode) {
        headers.insert(X_CODE.clone(), HeaderValue::from(status.as_u16()));
        // `$http_accept`: `headers` are the client's, on their way to a backend.
        match headers.get(ACCEPT).cloned() {
            Some(accept) => headers.insert(X_FORMAT.clone(), accept),
            None => headers.remove(&X_FORMAT),
        };
        for (name, value) in [
            (
                &X_NAMESPACE,
                HeaderValue::from_str(&self.pages.namespace).ok(),
            ),
            (
                &X_INGRESS_NAME,
                HeaderValue::from_str(&self.pages.ingress).ok(),
            ),
            (&X_SERVICE_NAME, self.service_name.clone()),
            (&X_SERVICE_PORT, self.service_port.clone()),
        ] {
            match value.filter(|v| !v.is_empty()) {
                Some(v) => headers.insert(name.clone(), v),
                None => headers.remove(name),
            };
        }
    }

    /// The request to the error backend: nginx's "CUSTOM_ERRORS" location.
    fn error_request(
        self,
        status: StatusCode,
        uri: Uri,
        protocol: Protocol,
        trusted_proxies: &[crate::routing::Cidr],
    ) -> Request<RetryBody> {
        let mut headers = self.headers;
        headers::remove_hop_by_hop(&mut headers, false);
        // The original body is not sent again (Portico streamed it to the upstream).
        headers.remove(CONTENT_LENGTH);
        headers.remove(TRANSFER_ENCODING);
        let host_text = self.host.to_str().unwrap_or_default();
        let forwarded_host = headers::add_forwarded(
            &mut headers,
            &Forwarded {
                client_ip: self.client.addr.ip().to_canonical(),
                trusted: self.client.trusted,
                trusted_proxies,
                scheme: self.scheme,
                host: host_text,
                host_value: &self.host,
                settings: &self.global.forwarded,
                generate_request_id: true,
            },
        );
        // `proxy_set_header X-Forwarded-For $remote_addr; Host $best_http_host;`: the client
        // address as `X-Real-IP` has it (after the real-IP rules), the Host the upstream got.
        let client_ip = headers
            .get(&X_REAL_IP)
            .cloned()
            .unwrap_or_else(|| ip_value(self.client.addr.ip()));
        headers.insert(X_FORWARDED_FOR.clone(), client_ip);
        headers.insert(HOST, forwarded_host.unwrap_or_else(|| self.host.clone()));
        let helper = Intercept {
            headers: HeaderMap::new(),
            ..self
        };
        helper.add_common(&mut headers, status);
        match &helper.original_uri {
            Some(uri) => headers.insert(X_ORIGINAL_URI.clone(), uri.clone()),
            None => headers.remove(&X_ORIGINAL_URI),
        };
        let mut request = Request::new(RetryBody::none());
        *request.method_mut() = helper.method;
        *request.uri_mut() = uri;
        *request.version_mut() = if protocol.is_http2() {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        *request.headers_mut() = headers;
        request
    }
}

fn ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_canonical().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `/` and the original query (`rewrite (.*) / break` keeps the arguments).
fn error_target(original: Option<&HeaderValue>) -> PathAndQuery {
    let query = original
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.split_once('?'))
        .map(|(_, q)| q);
    match query {
        Some(q) => PathAndQuery::try_from(format!("/?{q}"))
            .unwrap_or_else(|_| PathAndQuery::from_static("/")),
        None => PathAndQuery::from_static("/"),
    }
}

/// Asks the error backend for the page that replaces an answer with `status`, and returns its
/// answer for the client. One attempt, on one endpoint chosen round-robin (passive health
/// applies); the flags' connect and response timeouts.
pub(super) async fn answer(
    ctx: &Context,
    intercept: Intercept,
    status: StatusCode,
    client_version: Version,
) -> Result<Response<ProxyBody>, ProxyError> {
    let backend = intercept
        .pages
        .error_backend()
        .cloned()
        .ok_or(ProxyError::Unavailable(Unavailable::NoEndpoints))?;
    let opts = &ctx.options;
    let hold = opts
        .balancer
        .pick(&backend, Balance::RoundRobin, process_offset(), &[])
        .ok_or(ProxyError::Unavailable(Unavailable::NoEndpoints))?;
    let addr = hold.addr;
    let protocol = backend.protocol();
    let target = error_target(intercept.original_uri.as_ref());
    let trusted_proxies = opts.trusted_proxies.as_slice();
    let keepalive = intercept.global.upstream_keepalive;
    let sent = async {
        if protocol == Protocol::Http {
            let request =
                intercept.error_request(status, Uri::from(target), protocol, trusted_proxies);
            ctx.pool
                .send(addr, opts.connect_timeout, keepalive, request)
                .await
        } else if protocol.is_http2() {
            // As service.rs does for HTTP/2 upstreams: the Host as `:authority`, no `Host`.
            let placeholder = Uri::from(target.clone());
            let mut request =
                intercept.error_request(status, placeholder, protocol, trusted_proxies);
            let host = request.headers_mut().remove(HOST);
            let authority = host
                .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
                .map_or_else(|| addr.to_string(), |a| a.as_str().to_owned());
            *request.uri_mut() = Uri::builder()
                .scheme(if protocol.is_tls() { "https" } else { "http" })
                .authority(authority)
                .path_and_query(target)
                .build()
                .map_err(|_| ProxyError::BadRequest("unusable backend address"))?;
            let route = super::h2pool::Route::new(protocol, None, None);
            ctx.h2
                .send(
                    &super::h2pool::Peer::Addr(addr),
                    &route,
                    opts.connect_timeout,
                    keepalive,
                    request,
                )
                .await
                .map(|response| (response, None))
        } else {
            let uri = Uri::builder()
                .scheme(if protocol.is_tls() { "https" } else { "http" })
                .authority(addr.to_string())
                .path_and_query(target)
                .build()
                .map_err(|_| ProxyError::BadRequest("unusable backend address"))?;
            let request = intercept.error_request(status, uri, protocol, trusted_proxies);
            let client = ctx.clients.get(protocol, opts.connect_timeout, None, None);
            client
                .request(request)
                .await
                .map(|response| (response.map(super::pool::UpBody::Hyper), None))
                .map_err(ProxyError::from_client)
        }
    };
    let result = match tokio::time::timeout(opts.response_timeout, sent).await {
        Ok(result) => result,
        Err(_) => Err(ProxyError::ResponseTimeout),
    };
    let (response, checkin) = match result {
        Ok(answer) => {
            hold.succeeded();
            answer
        }
        Err(err) => {
            if err.is_endpoint_failure() {
                hold.failed();
            }
            tracing::warn!(
                backend.addr = %addr,
                status = status.as_u16(),
                error = %err,
                "error backend failed"
            );
            return Err(err);
        }
    };
    let (mut parts, body) = response.into_parts();
    finish_headers(&mut parts.headers, false);
    parts.version = response_version(client_version);
    let body = match checkin {
        Some(checkin) => checkin.wrap(body).boxed(),
        None => body.boxed(),
    };
    Ok(Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_target_is_root_with_the_original_query() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(error_target(None).as_str(), "/");
        assert_eq!(error_target(Some(&v("/a/b"))).as_str(), "/");
        assert_eq!(error_target(Some(&v("/a/b?x=1&y"))).as_str(), "/?x=1&y");
    }
}
