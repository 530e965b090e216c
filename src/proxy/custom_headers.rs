//! Per request, ingress-nginx's header ConfigMaps, typed by translate
//! (`translate/custom_headers.rs`): `proxy-set-headers` on the upstream request (after
//! Portico's own forwarded headers, as nginx.tmpl's `proxy_set_header` lines come last), and
//! `add-headers` then the Ingress's `custom-headers` on the answer (nginx's `more_set_headers`,
//! which replaces a header the upstream sent). Sits in `service` next to the forwarded headers
//! and after the answer is decided; with none configured it is one emptiness check.

use http::HeaderMap;

use crate::routing::{CustomHeaders, Global};

/// `proxy-set-headers` onto an upstream request's headers.
pub(super) fn request(headers: &mut HeaderMap, global: &Global) {
    for (name, value) in &global.proxy_set_headers {
        headers.insert(name.clone(), value.clone());
    }
}

/// `add-headers` (every answer), then the routing Ingress's `custom-headers`.
pub(super) fn response(headers: &mut HeaderMap, global: &Global, route: Option<&CustomHeaders>) {
    for (name, value) in &global.add_headers {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(route) = route {
        for (name, value) in &route.headers {
            headers.insert(name.clone(), value.clone());
        }
    }
}
