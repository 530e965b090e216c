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
use crate::routing::{Piece, RegexLocation, RewriteTarget, Route, VirtualHost};

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
    let text = target_for(location, target, path, query)?;
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

/// nginx's `rewrite "(?i)<path>" <target> break;` on the normalised path: the whole URI
/// becomes the target with `$n` replaced by the groups of the rewrite regex's match (empty when
/// a group did not take part). The query follows nginx: a target without `?` keeps the
/// request's query; one with `?` puts its own arguments first and the request's after `&`; a
/// target ending in `?` drops the request's. The result is always an origin-form
/// request-target: it starts with `/`, and every byte a request-target cannot hold is
/// percent-encoded. `None`: the rewrite regex does not match (nginx leaves the URI alone).
pub fn target_for(
    location: &RegexLocation,
    target: &RewriteTarget,
    path: &str,
    query: Option<&str>,
) -> Option<String> {
    let captures = if location.has_captures() {
        Some(location.captures(path)?)
    } else {
        None
    };
    let mut raw = String::with_capacity(target.text.len() + path.len());
    for piece in &target.pieces {
        match piece {
            Piece::Literal(text) => raw.push_str(text),
            Piece::Group(n) => {
                if let Some(m) = captures.as_ref().and_then(|c| c.get(*n)) {
                    raw.push_str(m.as_str());
                }
            }
        }
    }
    Some(finish(
        &raw,
        target.text.contains('?'),
        target.text.ends_with('?'),
        query,
    ))
}

/// Assembles path and query from the substituted target (see [`target_for`]).
fn finish(raw: &str, has_args: bool, drop_args: bool, query: Option<&str>) -> String {
    // Only a `?` of the target itself starts its arguments; captured text comes from the path
    // and holds none.
    let (path, args) = match raw.split_once('?') {
        Some((p, a)) if has_args => (p, Some(a)),
        _ => (raw, None),
    };
    let mut out = String::with_capacity(raw.len() + query.map_or(0, str::len) + 8);
    if !path.starts_with('/') {
        out.push('/');
    }
    encode_into(&mut out, path, false);
    let args = args.filter(|a| !a.is_empty());
    let query = query.filter(|q| !drop_args && !q.is_empty());
    match (args, query) {
        (Some(a), Some(q)) => {
            out.push('?');
            encode_into(&mut out, a, true);
            out.push('&');
            encode_into(&mut out, q, true);
        }
        (Some(a), None) => {
            out.push('?');
            encode_into(&mut out, a, true);
        }
        (None, Some(q)) => {
            out.push('?');
            encode_into(&mut out, q, true);
        }
        (None, None) => {}
    }
    out
}

/// Appends `text`, percent-encoding every byte an origin-form path (or, with `query`, a query)
/// cannot hold; a `%` that starts no escape becomes `%25`.
fn encode_into(out: &mut String, text: &str, query: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let escape_start = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        let keep = if b == b'%' {
            escape_start
        } else if b == b'?' {
            query
        } else {
            crate::routing::is_target_byte(b)
        };
        if keep {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_follows_nginx_rewrite() {
        assert_eq!(finish("/new", false, false, Some("a=1")), "/new?a=1");
        assert_eq!(finish("/new?x=2", true, false, Some("a=1")), "/new?x=2&a=1");
        assert_eq!(finish("/new?", true, true, Some("a=1")), "/new");
        assert_eq!(finish("/new", false, false, None), "/new");
    }

    #[test]
    fn results_are_origin_form() {
        assert_eq!(finish("", false, false, None), "/");
        assert_eq!(finish("bar", false, false, None), "/bar");
        assert_eq!(finish("/a b\"{}", false, false, None), "/a%20b%22%7B%7D");
        assert_eq!(finish("/100%", false, false, None), "/100%25");
        assert_eq!(finish("/%41", false, false, None), "/%41");
        assert_eq!(finish("/é", false, false, None), "/%C3%A9");
    }
}
