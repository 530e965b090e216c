//! External authentication (ingress-nginx's `auth-url` family, issue 15), typed at translate
//! time (`translate/ext_auth.rs`) and carried in a backend's [`Policy`](super::Policy); the
//! proxy (`proxy/ext_auth.rs`) asks the auth service per request. Nothing here is evaluated:
//! the sign-in URL's few nginx variables are parsed into [`SigninPiece`]s once.

use http::header::{HeaderName, HeaderValue};
use http::{Method, Uri};
use serde::Serialize;

use super::HeaderList;

/// One Ingress's external authentication.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtAuth {
    /// `auth-url` as written (for `/debug/routes`).
    pub url: String,
    /// The same, parsed: an absolute `http://` or `https://` URI.
    pub uri: Uri,
    /// `Host` sent to the auth service: the URL's host without its port (ingress-nginx
    /// `authURL.Hostname()`).
    pub host: HeaderValue,
    /// `auth-method`: the auth request's method (else the client's).
    pub method: Option<Method>,
    /// `auth-signin` (with `auth-signin-redirect-param`): a 401 becomes a 302 to it.
    pub signin: Option<Signin>,
    /// `auth-response-headers`: copied from the auth service's 2xx answer to the upstream
    /// request, replacing (or, when the answer lacks one, removing) the client's.
    pub response_headers: Vec<HeaderName>,
    /// `auth-request-redirect`: the `X-Auth-Request-Redirect` value (else the request URI).
    pub request_redirect: Option<HeaderValue>,
    /// `auth-always-set-cookie`: the auth answer's `Set-Cookie` goes on every answer, not
    /// only on 2xx/3xx ones (nginx `add_header ... always`).
    pub always_set_cookie: bool,
    /// `auth-proxy-set-headers`: headers (from a ConfigMap) sent to the auth service.
    pub proxy_set_headers: HeaderList,
    /// Where it came from: the Ingress's annotation or the ConfigMap's `global-auth-url`.
    pub global: bool,
}

impl Serialize for ExtAuth {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("url", &self.url)?;
        if self.global {
            map.serialize_entry("global", &true)?;
        }
        if let Some(method) = &self.method {
            map.serialize_entry("method", method.as_str())?;
        }
        if let Some(signin) = &self.signin {
            map.serialize_entry("signin", &signin.text)?;
        }
        if !self.response_headers.is_empty() {
            let names: Vec<&str> = self.response_headers.iter().map(|n| n.as_str()).collect();
            map.serialize_entry("responseHeaders", &names)?;
        }
        if self.always_set_cookie {
            map.serialize_entry("alwaysSetCookie", &true)?;
        }
        if !self.proxy_set_headers.is_empty() {
            let names: Vec<&str> = self
                .proxy_set_headers
                .iter()
                .map(|(n, _)| n.as_str())
                .collect();
            map.serialize_entry("proxySetHeaders", &names)?;
        }
        map.end()
    }
}

/// The sign-in redirect's `Location`, as ingress-nginx's `buildAuthSignURL` writes it
/// (`auth-signin` plus `?rd=$pass_access_scheme://$http_host$escaped_request_uri`), in pieces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Signin {
    /// The annotation as written.
    pub text: String,
    pub pieces: Vec<SigninPiece>,
}

/// Literal text, or one of the nginx variables a sign-in URL may use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SigninPiece {
    Literal(String),
    Var(SigninVar),
}

/// The nginx variables Portico fills in a sign-in URL (each from the request, validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigninVar {
    /// `$host`: the request's host name, lowercase, without port.
    Host,
    /// `$http_host` (and `$best_http_host`): the `Host` header as sent.
    HttpHost,
    /// `$scheme`: `http` or `https`, how the request reached Portico.
    Scheme,
    /// `$pass_access_scheme`: the scheme, or `https` when a trusted balancer says so.
    PassAccessScheme,
    /// `$request_uri`: the request-target as sent.
    RequestUri,
    /// `$escaped_request_uri`: the same, percent-encoded as a query component.
    EscapedRequestUri,
}

impl SigninVar {
    /// The variable named `name` (without `$`).
    pub fn parse(name: &str) -> Option<SigninVar> {
        Some(match name {
            "host" => SigninVar::Host,
            "http_host" | "best_http_host" => SigninVar::HttpHost,
            "scheme" => SigninVar::Scheme,
            "pass_access_scheme" => SigninVar::PassAccessScheme,
            "request_uri" => SigninVar::RequestUri,
            "escaped_request_uri" => SigninVar::EscapedRequestUri,
            _ => return None,
        })
    }
}

/// RFC 3986 unreserved characters: what `$escaped_request_uri` leaves as is, and what a
/// sign-in redirect parameter's name may hold.
pub fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}
