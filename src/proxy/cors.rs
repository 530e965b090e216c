//! Per request, the routing Ingress's CORS settings (`routing/cors.rs`, typed by
//! `translate/cors.rs`): `service` asks [`check`] once the backend is known, answers a
//! preflight with [`preflight`], and sets the headers on whatever answer goes out
//! ([`Answer::apply`], nginx's `more_set_headers`, which replaces the upstream's). A route
//! without CORS pays one `Option` check.
//!
//! ingress-nginx `rootfs/etc/nginx/template/nginx.tmpl`, `define "CORS"`: a matching request
//! gets the `Access-Control-*` headers; a matching `OPTIONS` request is answered 204 by the
//! proxy (`return 204`), whatever else it carries; a request whose `Origin` does not match
//! gets no CORS header at all and is proxied as usual.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    CONTENT_TYPE, ORIGIN,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty};

use super::error::response_version;
use super::ProxyBody;
use crate::routing::{AllowOrigin, Cors};

/// The CORS headers one answer gets.
pub(crate) struct Answer {
    cors: Arc<Cors>,
    /// `*`, or the request's `Origin` (nginx's `$http_origin`).
    origin: HeaderValue,
}

/// The CORS headers this request gets, if its `Origin` is allowed.
pub(super) fn check(cors: &Arc<Cors>, request: &HeaderMap) -> Option<Answer> {
    let origin = request.get(ORIGIN);
    if !cors.allows(origin) {
        return None;
    }
    let origin = match &cors.allow_origin {
        AllowOrigin::Any => HeaderValue::from_static("*"),
        AllowOrigin::List(_) => origin?.clone(),
    };
    Some(Answer {
        cors: cors.clone(),
        origin,
    })
}

/// ingress-nginx's preflight answer: 204 with `Content-Type: text/plain charset=UTF-8` (its
/// template's text, as written); the CORS headers are added by [`Answer::apply`] like on any
/// other answer. No `Content-Length: 0`: RFC 9110 §8.6 forbids it on a 204 (nginx's template
/// sets it; browsers ignore it).
pub(super) fn preflight(version: Version) -> Response<ProxyBody> {
    let mut response = Response::new(
        Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::NO_CONTENT;
    *response.version_mut() = response_version(version);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain charset=UTF-8"),
    );
    response
}

impl Answer {
    /// The `Access-Control-*` headers, replacing any the upstream sent.
    pub(super) fn apply(&self, headers: &mut HeaderMap) {
        let cors = &*self.cors;
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, self.origin.clone());
        if cors.allow_credentials {
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        headers.insert(ACCESS_CONTROL_ALLOW_METHODS, cors.allow_methods.clone());
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, cors.allow_headers.clone());
        if let Some(expose) = &cors.expose_headers {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
        headers.insert(ACCESS_CONTROL_MAX_AGE, cors.max_age.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::OriginPattern;

    fn cors(allow_origin: AllowOrigin) -> Arc<Cors> {
        Arc::new(Cors {
            allow_origin,
            allow_credentials: true,
            allow_methods: HeaderValue::from_static("GET"),
            allow_headers: HeaderValue::from_static("X-A"),
            expose_headers: None,
            max_age: HeaderValue::from_static("10"),
        })
    }

    fn request(origin: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(ORIGIN, HeaderValue::from_static(o));
        }
        h
    }

    #[test]
    fn any_answers_star_even_without_origin() {
        let c = cors(AllowOrigin::Any);
        let answer = check(&c, &request(None)).unwrap();
        let mut h = HeaderMap::new();
        answer.apply(&mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert!(!h.contains_key(ACCESS_CONTROL_EXPOSE_HEADERS));
    }

    #[test]
    fn a_list_echoes_the_matching_origin_only() {
        let c = cors(AllowOrigin::List(vec![OriginPattern::Exact(
            "https://a.example".into(),
        )]));
        assert!(check(&c, &request(None)).is_none());
        assert!(check(&c, &request(Some("https://b.example"))).is_none());
        let answer = check(&c, &request(Some("https://A.example"))).unwrap();
        let mut h = HeaderMap::new();
        answer.apply(&mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://A.example");
    }
}
