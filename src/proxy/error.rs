//! The one place where proxy failures become HTTP responses (spec §3.7, §4.4).
//!
//! Every answer the proxy makes up itself (400, 401, 403, 404, 405, 408, 413, 431, 499, 500,
//! 501, 502, 503, 504) is built here: a short `text/plain` body with `Content-Length`, `Date`
//! and `Server`.

use std::error::Error as StdError;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, DATE, SERVER};
use http::{Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};

use super::upstream::ExternalNameRefused;
use super::ProxyBody;
use crate::routing::Unavailable;

type BoxError = Box<dyn StdError + Send + Sync>;

/// What went wrong on the client's side of a request. Never the endpoint's fault: no
/// ejection, no latency sample, no retry (issue 10 item 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFault {
    /// The request body did not parse (bad chunk framing, an HTTP/2 protocol error): 400.
    MalformedBody,
    /// The client went away (closed or reset mid-body, or before its answer): 499, nginx's
    /// "client closed request".
    Aborted,
    /// No request body bytes for `--client-body-timeout` (nginx's `client_body_timeout`): 408.
    BodyTimeout,
}

impl ClientFault {
    /// The label of `portico_client_request_errors_total`.
    pub fn reason(self) -> &'static str {
        match self {
            ClientFault::MalformedBody => "malformed_body",
            ClientFault::Aborted => "aborted",
            ClientFault::BodyTimeout => "body_timeout",
        }
    }
}

/// nginx's 499 "client closed request": logged and counted, never really seen by the client.
pub fn client_closed_request() -> StatusCode {
    StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
}

/// Why the proxy answered a request itself.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Malformed request: missing or duplicate Host, unusable authority (spec §3.2).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// `CONNECT`: an Ingress proxies HTTP requests, it is not a forward proxy.
    #[error("CONNECT is not supported")]
    ConnectMethod,
    /// Request line plus headers over `max_header_bytes`.
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// A body of unknown length (chunked) to an upstream spoken to in HTTP/1.0
    /// (`proxy-http-version: "1.0"`), which cannot frame it: 411.
    #[error("length required")]
    LengthRequired,
    /// The request body is over `proxy-body-size` (by `Content-Length`, or while streaming).
    #[error("request body too large")]
    PayloadTooLarge,
    /// A request `Transfer-Encoding` other than exactly `chunked` (RFC 9112 §6.1: 501).
    #[error("unsupported transfer coding")]
    UnsupportedTransferCoding,
    /// The client's side of the request failed (its body, or the client itself).
    #[error("client request failed: {}", .0.reason())]
    Client(ClientFault),
    /// No vhost, path or default backend matched (spec §3.7).
    #[error("no route")]
    NoRoute,
    /// The backend cannot take traffic (spec §4.1, §4.2 step 7, §4.6).
    #[error("backend unavailable: {0:?}")]
    Unavailable(Unavailable),
    /// An ExternalName resolved only to refused addresses (spec §4.5).
    #[error("external name refused: {0}")]
    ExternalNameRefused(#[source] ExternalNameRefused),
    /// TCP connect refused or reset, after the retry (spec §4.4).
    #[error("upstream connect failed")]
    Connect(#[source] BoxError),
    /// The upstream connect did not finish within `connect_timeout`.
    #[error("upstream connect timed out")]
    ConnectTimeout,
    /// The upstream sent no response headers within `response_timeout`.
    #[error("upstream response timed out")]
    ResponseTimeout,
    /// The upstream took none of the request body for `send_timeout`.
    #[error("upstream took no request body for the send timeout")]
    SendTimeout,
    /// The upstream connection failed after the request was (partly) sent, or answered
    /// something unusable.
    #[error("upstream failed")]
    Upstream(#[source] BoxError),
    /// A source range or the ConfigMap's block lists refuse the client (ingress-nginx: 403).
    #[error("forbidden by a source range or block list")]
    Forbidden,
    /// A rate or connection limit (`limit-req-status-code` / `limit-conn-status-code`).
    #[error("rate or connection limit reached")]
    Limited(StatusCode),
    /// The external auth service answered 401 or 403 (issue 15): that status to the client.
    #[error("external authentication refused the request ({0})")]
    AuthDenied(StatusCode),
    /// The external auth service failed, timed out or answered another status: 500, as
    /// nginx's `auth_request` does.
    #[error("external authentication failed: {0}")]
    AuthFailed(String),
    /// A request that is itself an auth request reached a route that asks for one: a loop.
    #[error("external authentication loops back to a route that asks for it")]
    AuthLoop,
}

impl ProxyError {
    /// The status code for this error (spec §4.4).
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::ConnectMethod => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::Client(ClientFault::MalformedBody) => StatusCode::BAD_REQUEST,
            ProxyError::Client(ClientFault::BodyTimeout) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::Client(ClientFault::Aborted) => client_closed_request(),
            ProxyError::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            ProxyError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::LengthRequired => StatusCode::LENGTH_REQUIRED,
            ProxyError::Unavailable(_) | ProxyError::ExternalNameRefused(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::Connect(_) | ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ProxyError::ConnectTimeout | ProxyError::ResponseTimeout | ProxyError::SendTimeout => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ProxyError::Forbidden => StatusCode::FORBIDDEN,
            ProxyError::Limited(status) => *status,
            ProxyError::AuthDenied(status) => *status,
            ProxyError::AuthFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::AuthLoop => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Classifies an upstream client error. Connect-phase errors (no request bytes sent) are
    /// `Connect`, `ConnectTimeout` or `ExternalNameRefused`; everything else is `Upstream`.
    pub(crate) fn from_client(err: hyper_util::client::legacy::Error) -> Self {
        if !err.is_connect() {
            return ProxyError::Upstream(Box::new(err));
        }
        let mut source = err.source();
        while let Some(e) = source {
            if let Some(refused) = e.downcast_ref::<ExternalNameRefused>() {
                return ProxyError::ExternalNameRefused(refused.clone());
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::TimedOut {
                    return ProxyError::ConnectTimeout;
                }
            }
            source = e.source();
        }
        ProxyError::Connect(Box::new(err))
    }

    /// Whether nothing was sent upstream, so the request may go to another endpoint.
    pub(crate) fn is_retryable_connect(&self) -> bool {
        matches!(self, ProxyError::Connect(_) | ProxyError::ConnectTimeout)
    }

    /// Whether the endpoint failed before any response byte (connect failure, reset, closed
    /// connection): passive health ejects it. A failure of the client's side
    /// ([`ProxyError::Client`]) never is, whatever the upstream connection made of it.
    pub(crate) fn is_endpoint_failure(&self) -> bool {
        matches!(
            self,
            ProxyError::Connect(_) | ProxyError::ConnectTimeout | ProxyError::Upstream(_)
        )
    }

    /// The response for this error, in the client's HTTP version.
    pub fn to_response(&self, version: Version) -> Response<ProxyBody> {
        let status = self.status();
        let text = match status.canonical_reason() {
            Some(reason) => format!("{} {}\n", status.as_u16(), reason),
            None if status.as_u16() == 499 => "499 Client Closed Request\n".to_string(),
            None => format!("{}\n", status.as_u16()),
        };
        let len = text.len();
        let mut response = Response::new(
            Full::new(Bytes::from(text))
                .map_err(|never| match never {})
                .boxed(),
        );
        *response.status_mut() = status;
        *response.version_mut() = response_version(version);
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        headers.insert(DATE, date_now());
        headers.insert(SERVER, HeaderValue::from_static(super::SERVER));
        response
    }
}

/// The version to answer a client in: its own for HTTP/1.0, 1.1 and 2 (spec §6.3); hyper
/// cannot write anything else.
pub(crate) fn response_version(client: Version) -> Version {
    match client {
        Version::HTTP_10 | Version::HTTP_11 | Version::HTTP_2 => client,
        _ => Version::HTTP_11,
    }
}

/// An RFC 9110 `Date` value for now.
pub(crate) fn date_now() -> HeaderValue {
    let text = httpdate::fmt_http_date(SystemTime::now());
    // An IMF-fixdate is plain ASCII, always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}
