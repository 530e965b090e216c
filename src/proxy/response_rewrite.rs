//! Upstream response headers rewritten on the way back to the client, after the upstream
//! answered and before the response leaves (`service` calls [`apply`] only when the route's
//! policy asks for it): `Location` and `Refresh` as nginx's `proxy_redirect FROM TO` does
//! (`proxy-redirect-from` / `proxy-redirect-to`), and the `Domain` and `Path` attributes of
//! `Set-Cookie` as `proxy_cookie_domain` / `proxy_cookie_path` do (`proxy-cookie-domain`,
//! `proxy-cookie-path`). All replacements are literal strings typed at translate time
//! (`translate/redirects.rs`); nginx's regex forms (`~`) and variables are not supported.
//!
//! nginx sources: `src/http/modules/ngx_http_proxy_module.c`
//! (`ngx_http_proxy_rewrite_redirect`, `ngx_http_proxy_rewrite_refresh`,
//! `ngx_http_proxy_rewrite_cookie`, `ngx_http_proxy_rewrite_complex_handler`,
//! `ngx_http_proxy_rewrite_domain_handler`).

use http::header::{HeaderName, HeaderValue, LOCATION, REFRESH, SET_COOKIE};
use http::HeaderMap;

use crate::routing::{Replace, ResponseRewrite};

/// Rewrites `headers` in place. Values that do not match are left byte for byte; a value that
/// would not be a valid header after rewriting (it cannot be: both sides were checked at
/// translate time) is left as the upstream sent it.
pub fn apply(rewrite: &ResponseRewrite, headers: &mut HeaderMap) {
    if let Some(replace) = &rewrite.location {
        rewrite_each(headers, &LOCATION, |v| location(replace, v));
        rewrite_each(headers, &REFRESH, |v| refresh(replace, v));
    }
    if rewrite.cookie_domain.is_some() || rewrite.cookie_path.is_some() {
        rewrite_each(headers, &SET_COOKIE, |v| {
            set_cookie(
                rewrite.cookie_domain.as_ref(),
                rewrite.cookie_path.as_ref(),
                v,
            )
        });
    }
}

/// Replaces each value of `name` for which `f` returns a new one, keeping their order.
fn rewrite_each(headers: &mut HeaderMap, name: &HeaderName, f: impl Fn(&str) -> Option<String>) {
    let changed = headers
        .get_all(name)
        .iter()
        .any(|v| v.to_str().ok().and_then(&f).is_some());
    if !changed {
        return;
    }
    let values: Vec<HeaderValue> = headers
        .get_all(name)
        .iter()
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(&f)
                .and_then(|new| HeaderValue::from_str(&new).ok())
                .unwrap_or_else(|| v.clone())
        })
        .collect();
    headers.remove(name);
    for v in values {
        headers.append(name.clone(), v);
    }
}

/// `proxy_redirect FROM TO` on `Location`: a case-sensitive prefix (`ngx_rstrncmp`).
fn location(replace: &Replace, value: &str) -> Option<String> {
    let rest = value.strip_prefix(replace.from.as_str())?;
    Some(format!("{}{rest}", replace.to))
}

/// On `Refresh` (`5; url=http://...`): the same, applied after the first `url=` (found
/// case-insensitively, as `ngx_strcasestrn` does).
fn refresh(replace: &Replace, value: &str) -> Option<String> {
    let at = value.to_ascii_lowercase().find("url=")? + 4;
    let (head, url) = value.split_at(at);
    let new = location(replace, url)?;
    Some(format!("{head}{new}"))
}

/// `proxy_cookie_domain` and `proxy_cookie_path` on one `Set-Cookie` value: the attributes
/// after the first `;`, names case-insensitive. `Domain` matches when equal to `from`
/// case-insensitively, a leading dot ignored on both sides, and is replaced whole; `Path`
/// matches when it starts with `from` (case-sensitive) and that prefix is replaced.
fn set_cookie(domain: Option<&Replace>, path: Option<&Replace>, value: &str) -> Option<String> {
    let (first, attributes) = value.split_once(';')?;
    let mut out = String::with_capacity(value.len() + 16);
    out.push_str(first);
    let mut changed = false;
    for attribute in attributes.split(';') {
        out.push(';');
        let trimmed = attribute.trim_start();
        let lead = &attribute[..attribute.len() - trimmed.len()];
        let replaced = trimmed.split_once('=').and_then(|(name, v)| {
            let name_trim = name.trim_end();
            if name_trim.eq_ignore_ascii_case("domain") {
                let d = domain?;
                let bare = v.trim().strip_prefix('.').unwrap_or(v.trim());
                let from = d.from.strip_prefix('.').unwrap_or(&d.from);
                bare.eq_ignore_ascii_case(from)
                    .then(|| format!("{name}={}", d.to.strip_prefix('.').unwrap_or(&d.to)))
            } else if name_trim.eq_ignore_ascii_case("path") {
                let p = path?;
                let rest = v.strip_prefix(p.from.as_str())?;
                Some(format!("{name}={}{rest}", p.to))
            } else {
                None
            }
        });
        out.push_str(lead);
        match replaced {
            Some(r) => {
                changed = true;
                out.push_str(&r);
            }
            None => out.push_str(trimmed),
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replace(from: &str, to: &str) -> Replace {
        Replace {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn location_prefix_is_replaced_case_sensitively() {
        let r = replace("http://hello.com", "https://goodbye.com");
        assert_eq!(
            location(&r, "http://hello.com/a?b").as_deref(),
            Some("https://goodbye.com/a?b")
        );
        assert_eq!(location(&r, "http://HELLO.com/a"), None);
        assert_eq!(location(&r, "/relative"), None);
    }

    #[test]
    fn refresh_rewrites_after_url() {
        let r = replace("http://hello.com/", "/");
        assert_eq!(
            refresh(&r, "5; URL=http://hello.com/x").as_deref(),
            Some("5; URL=/x")
        );
        assert_eq!(refresh(&r, "5"), None);
    }

    /// The values of test/e2e/annotations/proxy.go "should setup proxy cookies":
    /// `proxy-cookie-domain: localhost example.org`, `proxy-cookie-path: /one/ /`.
    #[test]
    fn cookies_follow_proxy_cookie_domain_and_path() {
        let d = replace("localhost", "example.org");
        let p = replace("/one/", "/");
        assert_eq!(
            set_cookie(
                Some(&d),
                Some(&p),
                "a=b; Domain=.LocalHost; path=/one/two; HttpOnly"
            )
            .as_deref(),
            Some("a=b; Domain=example.org; path=/two; HttpOnly")
        );
        assert_eq!(
            set_cookie(Some(&d), Some(&p), "a=b; Domain=other.example; Path=/x"),
            None
        );
        // The cookie's own name and value are never attributes.
        assert_eq!(set_cookie(Some(&d), Some(&p), "domain=localhost"), None);
        assert_eq!(
            set_cookie(Some(&d), None, "a=b;domain=localhost").as_deref(),
            Some("a=b;domain=example.org")
        );
    }

    #[test]
    fn apply_keeps_every_set_cookie_in_order() {
        let mut headers = HeaderMap::new();
        headers.append(SET_COOKIE, HeaderValue::from_static("a=1; Path=/one/a"));
        headers.append(SET_COOKIE, HeaderValue::from_static("b=2; Path=/other"));
        headers.append(LOCATION, HeaderValue::from_static("http://hello.com/z"));
        let rewrite = ResponseRewrite {
            location: Some(replace("http://hello.com", "https://goodbye.com")),
            cookie_domain: None,
            cookie_path: Some(replace("/one/", "/")),
        };
        apply(&rewrite, &mut headers);
        let cookies: Vec<_> = headers.get_all(SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1; Path=/a", "b=2; Path=/other"]);
        assert_eq!(headers[LOCATION], "https://goodbye.com/z");
    }
}
