//! Per request, after the routing decision and before the upstream request is built (issue 13):
//! the `app-root` redirect, the `rewrite-target` of a regex-mode location, the
//! `X-Forwarded-Prefix` that goes with it, and `preserve-trailing-slash` for the HTTPS
//! redirect. Everything was typed at translate time (`translate::rewrite`,
//! `routing::RegexMode`); hosts without these annotations pay one `Option` check each.
//!
//! ingress-nginx sources: `rootfs/etc/nginx/template/nginx.tmpl` (`if ($uri = /) { return 302
//! $scheme://$http_host<app-root>; }` at server level), `template.go` `buildProxyPass`
//! (`rewrite "(?i)<path>" <target> break;` and `proxy_set_header X-Forwarded-Prefix`),
//! `rootfs/etc/nginx/lua/lua_ingress.lua` (the trailing slash of HTTPS redirects).

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, DATE, LOCATION, SERVER};
use http::uri::PathAndQuery;
use http::{Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};

use super::error::{date_now, response_version, ProxyError};
use super::{ProxyBody, Scheme};
use crate::routing::{rewrite_target, RegexLocation, Route, VirtualHost};

pub(crate) static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

/// `302 Found` to `<scheme>://<Host as sent><app-root>` for a request of `/` on a host with an
/// app root (approot.go "should redirect to /foo": `Location: http://approot.bar.com/foo`).
/// nginx tests `$uri`, the normalised path, so `/?x=1` redirects too (its query is dropped:
/// `return` does not append it).
pub(crate) fn app_root(
    vhost: &VirtualHost,
    path: &str,
    scheme: Scheme,
    host: &str,
    version: Version,
) -> Option<Result<Response<ProxyBody>, ProxyError>> {
    let root = vhost.app_root.as_deref()?;
    if path != "/" {
        return None;
    }
    let location = format!("{}://{host}{root}", scheme.as_str());
    Some(
        HeaderValue::from_str(&location)
            .map_err(|_| ProxyError::BadRequest("host cannot be written into a Location"))
            .map(|location| found(location, version)),
    )
}

fn found(location: HeaderValue, version: Version) -> Response<ProxyBody> {
    let text = "302 Found\n";
    let mut response = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::FOUND;
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
    response
}

/// What a rewriting location changes in the upstream request.
pub(crate) struct Rewritten {
    pub path_and_query: PathAndQuery,
    /// `X-Forwarded-Prefix`, when the Ingress sets one (only rewritten requests carry it, as
    /// in ingress-nginx's `buildProxyPass`).
    pub prefix: Option<HeaderValue>,
}

/// The upstream request-target for a request matched by a rewriting `location`, or `None`
/// when the location does not rewrite.
pub(crate) fn apply(
    route: &Route,
    location: &RegexLocation,
    path: &str,
    query: Option<&str>,
) -> Option<Result<Rewritten, ProxyError>> {
    if !location.rewrites {
        return None;
    }
    let rewrite = route.backend.policy.rewrite.as_deref()?;
    let target = rewrite.target.as_ref()?;
    let text = rewrite_target(location, target, path, query)?;
    let prefix = rewrite
        .x_forwarded_prefix
        .as_deref()
        .and_then(|p| HeaderValue::from_str(p).ok());
    Some(
        PathAndQuery::try_from(text)
            .map(|path_and_query| Rewritten {
                path_and_query,
                prefix,
            })
            .map_err(|_| ProxyError::BadRequest("unusable request target")),
    )
}

/// `preserve-trailing-slash: "false"`: the HTTPS redirect drops one trailing `/` of the
/// request-target, as ingress-nginx's `lua_ingress.lua` does (it tests the last byte of
/// `$request_uri`, query included). `None` when nothing changes.
pub(crate) fn redirect_uri(route: Option<&Route>, uri: &Uri) -> Option<Uri> {
    let strip = route?
        .backend
        .policy
        .rewrite
        .as_deref()
        .is_some_and(|r| r.strip_trailing_slash);
    if !strip {
        return None;
    }
    let target = uri.path_and_query()?.as_str();
    let trimmed = target.strip_suffix('/')?;
    // `/` becomes the empty target; `redirect::location` writes an empty one as `/`.
    Uri::try_from(trimmed).ok()
}
