//! The HTTP → HTTPS redirect (spec §5.5): a 308 with an absolute `Location`. Whether a request
//! is redirected is decided by translate (a flag on the route or vhost); this builds the answer.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, DATE, LOCATION, SERVER};
use http::{Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};

use super::error::{date_now, response_version, ProxyError};
use super::ProxyBody;
use crate::routing::normalize;

/// ACME HTTP-01 challenges must be answered over plain HTTP, so they are never redirected.
pub const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// Whether a normalised request path is an ACME HTTP-01 challenge.
pub fn is_acme_challenge(path: &str) -> bool {
    path.starts_with(ACME_CHALLENGE)
}

/// The `Location` of the redirect: `https://<host lowercased, without port or trailing
/// dot><request-target>`; a request-target that is not a path (`OPTIONS *`) becomes `/`.
/// `explain` shows the same string.
pub fn location(host: &str, target: &str) -> String {
    let host = normalize::host(host);
    let target = if target.starts_with('/') { target } else { "/" };
    format!("https://{host}{target}")
}

/// `308 Permanent Redirect` to `https://<host without port><path and query>` (spec §5.5).
/// 308 keeps the method and body, unlike 301/302.
pub fn to_https(
    host: &str,
    uri: &Uri,
    version: Version,
) -> Result<Response<ProxyBody>, ProxyError> {
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let location = HeaderValue::from_str(&location(host, target))
        .map_err(|_| ProxyError::BadRequest("host cannot be written into a Location"))?;
    let text = "308 Permanent Redirect\n";
    let mut response = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    *response.version_mut() = response_version(version);
    let headers = response.headers_mut();
    headers.insert(LOCATION, location);
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    headers.insert(DATE, date_now());
    headers.insert(SERVER, HeaderValue::from_static(super::SERVER));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(host: &str, uri: &str) -> String {
        let uri: Uri = uri.parse().unwrap();
        let response = to_https(host, &uri, Version::HTTP_11).unwrap();
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        response.headers()[LOCATION].to_str().unwrap().to_string()
    }

    #[test]
    fn location_drops_the_port_and_keeps_path_and_query() {
        assert_eq!(
            location("shop.example:8080", "/a/b?x=1&y"),
            "https://shop.example/a/b?x=1&y"
        );
        assert_eq!(location("Shop.Example.", "/"), "https://shop.example/");
        assert_eq!(location("[::1]:8080", "/p"), "https://[::1]/p");
        assert_eq!(
            location("shop.example", "http://shop.example:80/abs?q"),
            "https://shop.example/abs?q"
        );
        assert_eq!(location("shop.example", "*"), "https://shop.example/");
    }

    #[test]
    fn acme_challenges_are_recognised() {
        assert!(is_acme_challenge("/.well-known/acme-challenge/token"));
        assert!(!is_acme_challenge("/.well-known/other"));
        assert!(!is_acme_challenge("/x/.well-known/acme-challenge/token"));
    }
}
