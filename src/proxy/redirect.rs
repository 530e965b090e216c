//! Redirects the proxy answers itself, before choosing an endpoint: the HTTP → HTTPS redirect
//! (spec §5.5; ingress-nginx `rootfs/etc/nginx/lua/lua_ingress.lua` `rewrite`) and the fixed
//! `permanent-redirect` / `temporal-redirect` of an Ingress (ingress-nginx's `return CODE URL;`
//! in `nginx.tmpl`). Whether a request is redirected is decided by translate (a flag on the
//! route or vhost, a [`Redirect`] in the backend's policy); this builds the answer.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, DATE, LOCATION, SERVER};
use http::{HeaderMap, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};

use super::error::{date_now, response_version, ProxyError};
use super::ProxyBody;
use crate::routing::{normalize, Global, Redirect};

/// ACME HTTP-01 challenges must be answered over plain HTTP, so they are never redirected
/// (ingress-nginx: `no-tls-redirect-locations`, default `/.well-known/acme-challenge`).
pub const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// Whether a normalised request path is an ACME HTTP-01 challenge.
pub fn is_acme_challenge(path: &str) -> bool {
    path.starts_with(ACME_CHALLENGE)
}

/// The controller ConfigMap's redirect keys (ingress-nginx `configmap.md`), as the request's
/// published `Global` holds them (parsed in `translate/configmap.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedirectSettings {
    /// `http-redirect-code`: the status of the HTTPS redirect (301, 302, 307 or 308; 308).
    pub code: StatusCode,
    /// `use-port-in-redirects`: write the HTTPS port into the HTTPS redirect's `Location`
    /// (ingress-nginx writes its `https` listen port, `config.listen_ports.https`).
    pub use_port: bool,
    /// The port written when `use_port` is on (ingress-nginx: its HTTPS listen port, 443).
    pub https_port: u16,
}

impl Default for RedirectSettings {
    fn default() -> Self {
        RedirectSettings::from_global(&Global::default())
    }
}

impl RedirectSettings {
    /// The redirect keys of the published controller ConfigMap.
    pub fn from_global(global: &Global) -> RedirectSettings {
        RedirectSettings {
            code: StatusCode::from_u16(global.http_redirect_code)
                .unwrap_or(StatusCode::PERMANENT_REDIRECT),
            use_port: global.use_port_in_redirects,
            https_port: 443,
        }
    }
}

/// Whether a trusted balancer in front says the request reached it over HTTPS (or any scheme
/// but `http`): then the HTTPS redirect is skipped, as ingress-nginx does with
/// `use-forwarded-headers` (`lua_ingress.lua`: `pass_access_scheme ~= "http"`). Only peers
/// listed in `--trusted-proxies` count: without that list every peer counts as trusted for
/// `X-Forwarded-For`, and ingress-nginx's default ignores `X-Forwarded-Proto`.
pub fn forwarded_https(headers: &HeaderMap, trusted: bool, options: &super::ProxyOptions) -> bool {
    if !trusted || options.trusted_proxies.is_empty() {
        return false;
    }
    headers
        .get(&super::headers::X_FORWARDED_PROTO)
        .is_some_and(|proto| proto.as_bytes() != b"http")
}

/// The `Location` of the HTTPS redirect with the default settings (what `explain` shows).
pub fn location(host: &str, target: &str) -> String {
    location_with(host, target, &RedirectSettings::default())
}

/// The `Location` of the HTTPS redirect: `https://<host lowercased, without port or trailing
/// dot>[:port]<request-target>`: the request-target as received (spec §5.5), unless the
/// route's Ingress sets `preserve-trailing-slash: "false"` (then `proxy::rewrite::redirect_uri`
/// removed one trailing `/` first, as ingress-nginx's default does: docs/decisions.md); a
/// request-target that is not a path (`OPTIONS *`) counts as `/`.
pub fn location_with(host: &str, target: &str, settings: &RedirectSettings) -> String {
    let host = normalize::host(host);
    let target = if target.starts_with('/') { target } else { "/" };
    if settings.use_port {
        format!("https://{host}:{}{target}", settings.https_port)
    } else {
        format!("https://{host}{target}")
    }
}

/// The HTTPS redirect (spec §5.5): `settings.code` (308 unless the ConfigMap says otherwise:
/// 308 keeps the method and body, unlike 301/302) to [`location_with`].
pub fn to_https(
    host: &str,
    uri: &Uri,
    version: Version,
    settings: &RedirectSettings,
) -> Result<Response<ProxyBody>, ProxyError> {
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let location = HeaderValue::from_str(&location_with(host, target, settings))
        .map_err(|_| ProxyError::BadRequest("host cannot be written into a Location"))?;
    Ok(answer(settings.code, location, version))
}

/// The `from-to-www-redirect` answer (ingress-nginx `ngx_srv_redirect.lua`):
/// `SCHEME://TO:PORT<request URI without one trailing slash>` with the ConfigMap's
/// `http-redirect-code`. The scheme is the listener's, or `https` when a trusted balancer
/// says so ([`forwarded_https`]); the port is a trusted `X-Forwarded-Port`, else the port
/// the client wrote in `Host`, else the scheme's default. ingress-nginx writes its own
/// listening port (`$server_port`); Portico usually listens on 8080/8443 behind a Service,
/// so the port the client used is the one that reaches it again.
pub fn to_www<B>(
    to: &str,
    host: &str,
    req: &http::Request<B>,
    trusted: bool,
    options: &super::ProxyOptions,
    settings: &RedirectSettings,
) -> Result<Response<ProxyBody>, ProxyError> {
    let forwarded = forwarded_https(req.headers(), trusted, options);
    let scheme = if forwarded {
        super::Scheme::Https
    } else {
        options.scheme
    };
    let forwarded_port = (trusted && !options.trusted_proxies.is_empty())
        .then(|| req.headers().get("x-forwarded-port"))
        .flatten()
        .and_then(|p| p.to_str().ok()?.trim().parse::<u16>().ok());
    let host_port = host
        .rsplit_once(':')
        .filter(|(h, _)| !h.ends_with(':') && (!h.contains(':') || h.ends_with(']')))
        .and_then(|(_, p)| p.parse::<u16>().ok());
    let port = forwarded_port
        .or(if forwarded { None } else { host_port })
        .unwrap_or(scheme.default_port());
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let target = if target.starts_with('/') { target } else { "/" };
    let target = target.strip_suffix('/').unwrap_or(target);
    let location = format!("{}://{to}:{port}{target}", scheme.as_str());
    let location = HeaderValue::from_str(&location)
        .map_err(|_| ProxyError::BadRequest("host cannot be written into a Location"))?;
    Ok(answer(settings.code, location, req.version()))
}

/// The fixed redirect of `permanent-redirect` / `temporal-redirect`: the URL as written,
/// without the request's path (nginx's `return CODE URL;`). Translate checked both.
pub fn fixed(redirect: &Redirect, version: Version) -> Result<Response<ProxyBody>, ProxyError> {
    let code = StatusCode::from_u16(redirect.code)
        .map_err(|_| ProxyError::BadRequest("unusable redirect code"))?;
    let location = HeaderValue::from_str(&redirect.url)
        .map_err(|_| ProxyError::BadRequest("unusable redirect URL"))?;
    Ok(answer(code, location, version))
}

fn answer(code: StatusCode, location: HeaderValue, version: Version) -> Response<ProxyBody> {
    let text = format!(
        "{} {}\n",
        code.as_u16(),
        code.canonical_reason().unwrap_or("Redirect")
    );
    let len = text.len();
    let mut response = Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = code;
    *response.version_mut() = response_version(version);
    let headers: &mut HeaderMap = response.headers_mut();
    headers.insert(LOCATION, location);
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(DATE, date_now());
    headers.insert(SERVER, HeaderValue::from_static(super::SERVER));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(host: &str, uri: &str) -> String {
        location_set(host, uri, &RedirectSettings::default())
    }

    fn location_set(host: &str, uri: &str, settings: &RedirectSettings) -> String {
        let uri: Uri = uri.parse().unwrap();
        let response = to_https(host, &uri, Version::HTTP_11, settings).unwrap();
        assert_eq!(response.status(), settings.code);
        response.headers()[LOCATION].to_str().unwrap().to_string()
    }

    /// ingress-nginx `lua_ingress.lua` `rewrite`: the host without its port; the request URI
    /// as received (spec §5.5: ingress-nginx's default trailing-slash stripping is
    /// `preserve-trailing-slash: "false"`, applied before this by `proxy::rewrite`).
    #[test]
    fn location_drops_the_port_and_keeps_the_target() {
        assert_eq!(
            location("shop.example:8080", "/a/b?x=1&y"),
            "https://shop.example/a/b?x=1&y"
        );
        assert_eq!(location("Shop.Example.", "/"), "https://shop.example/");
        assert_eq!(
            location("shop.example", "/dir/"),
            "https://shop.example/dir/"
        );
        assert_eq!(
            location("shop.example", "/dir/?q=/"),
            "https://shop.example/dir/?q=/"
        );
        assert_eq!(location("[::1]:8080", "/p"), "https://[::1]/p");
        assert_eq!(
            location("shop.example", "http://shop.example:80/abs?q"),
            "https://shop.example/abs?q"
        );
        assert_eq!(location("shop.example", "*"), "https://shop.example/");
    }

    #[test]
    fn use_port_in_redirects_writes_the_https_port() {
        let settings = RedirectSettings {
            use_port: true,
            https_port: 8443,
            code: StatusCode::MOVED_PERMANENTLY,
        };
        assert_eq!(
            location_set("shop.example:8080", "/a", &settings),
            "https://shop.example:8443/a"
        );
    }

    #[test]
    fn fixed_redirects_write_the_url_as_is() {
        let r = Redirect {
            code: 302,
            url: "http://redirect.example.com".into(),
        };
        let response = fixed(&r, Version::HTTP_11).unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(response.headers()[LOCATION], "http://redirect.example.com");
    }

    #[test]
    fn acme_challenges_are_recognised() {
        assert!(is_acme_challenge("/.well-known/acme-challenge/token"));
        assert!(!is_acme_challenge("/.well-known/other"));
        assert!(!is_acme_challenge("/x/.well-known/acme-challenge/token"));
    }
}
