//! Redirect and upstream-request annotations (issue 13), typed once per translate into the
//! Ingress's [`Policy`] (which the proxy reads per request through the route's backend) and,
//! for `force-ssl-redirect`, into the Ingress's routes' redirect flag (`incremental::derive`).
//!
//! ingress-nginx sources: `internal/ingress/annotations/redirect/redirect.go`,
//! `internal/ingress/annotations/proxy/main.go`, `internal/ingress/annotations/upstreamvhost`,
//! `internal/ingress/annotations/sslredirect` (`force-ssl-redirect`), and the template's
//! `return {{ $location.Redirect.Code }} {{ $location.Redirect.URL }};`.

use k8s_openapi::api::networking::v1::Ingress;

use super::paths;
use crate::routing::{normalize, HostMatch, Policy, Redirect, Replace, ResponseRewrite};

const NGINX: &str = "nginx.ingress.kubernetes.io/";
const PORTICO: &str = "portico.dev/";

pub const PERMANENT_REDIRECT: &str = "permanent-redirect";
pub const PERMANENT_REDIRECT_CODE: &str = "permanent-redirect-code";
pub const TEMPORAL_REDIRECT: &str = "temporal-redirect";
pub const TEMPORAL_REDIRECT_CODE: &str = "temporal-redirect-code";
pub const FORCE_SSL_REDIRECT: &str = "force-ssl-redirect";
pub const UPSTREAM_VHOST: &str = "upstream-vhost";
pub const PROXY_REDIRECT_FROM: &str = "proxy-redirect-from";
pub const PROXY_REDIRECT_TO: &str = "proxy-redirect-to";
pub const PROXY_COOKIE_DOMAIN: &str = "proxy-cookie-domain";
pub const PROXY_COOKIE_PATH: &str = "proxy-cookie-path";
pub const SERVICE_UPSTREAM: &str = "service-upstream";
pub const SERVER_ALIAS: &str = "server-alias";
pub const FROM_TO_WWW_REDIRECT: &str = "from-to-www-redirect";

/// Longest value any of these annotations may have: a URL or host name, never a document.
const MAX_VALUE: usize = 2048;

/// What the Ingress's redirect annotations ask for beyond its [`Policy`].
#[derive(Debug, Default, PartialEq)]
pub(super) struct Redirects {
    /// `force-ssl-redirect: "true"`: plain HTTP redirects to HTTPS even without TLS on the
    /// host (ingress-nginx `lua_ingress.lua` `redirect_to_https`); `None`: the ConfigMap's
    /// global `force-ssl-redirect` applies.
    pub force_ssl: Option<bool>,
    /// `from-to-www-redirect: "true"`: `www.HOST` redirects to `HOST` (or `HOST` to
    /// `www.HOST` when the rule host starts with `www.`), decided per host in the merge.
    pub from_to_www: bool,
}

/// Reads this module's annotations into `policy`; one message per invalid value (the default
/// applies for that annotation).
pub(super) fn apply(ingress: &Ingress, policy: &mut Policy, errors: &mut Vec<String>) -> Redirects {
    let mut out = Redirects::default();
    let Some(annotations) = ingress.metadata.annotations.as_ref() else {
        return out;
    };
    let get = |name: &str| -> Option<(String, &str)> {
        [PORTICO, NGINX].iter().find_map(|prefix| {
            let key = format!("{prefix}{name}");
            annotations.get(&key).map(|v| (key, v.as_str()))
        })
    };
    let mut invalid = |key: &str, value: &str, why: &str| {
        let shown: String = value.chars().take(100).collect();
        let more = if shown.len() < value.len() { "…" } else { "" };
        errors.push(format!(
            "annotation {key}: {shown:?}{more} {why}; using the default"
        ));
    };

    if let Some((key, value)) = get(FORCE_SSL_REDIRECT) {
        match parse_bool(value) {
            Some(b) => out.force_ssl = Some(b),
            None => invalid(&key, value, "is neither \"true\" nor \"false\""),
        }
    }

    if let Some((key, value)) = get(FROM_TO_WWW_REDIRECT) {
        match parse_bool(value) {
            Some(b) => out.from_to_www = b,
            None => invalid(&key, value, "is neither \"true\" nor \"false\""),
        }
    }

    // redirect.go: a temporal redirect wins over a permanent one; each has its default code.
    let pairs = [
        (
            TEMPORAL_REDIRECT,
            TEMPORAL_REDIRECT_CODE,
            302,
            TEMPORAL_CODES,
        ),
        (
            PERMANENT_REDIRECT,
            PERMANENT_REDIRECT_CODE,
            301,
            PERMANENT_CODES,
        ),
    ];
    for (url_name, code_name, default_code, codes) in pairs {
        let Some((key, value)) = get(url_name) else {
            continue;
        };
        if value.trim().is_empty() {
            continue;
        }
        let url = match redirect_url(value) {
            Ok(url) => url,
            Err(why) => {
                invalid(&key, value, why);
                continue;
            }
        };
        let code = match get(code_name) {
            None => default_code,
            Some((code_key, code_value)) => match code_value.trim().parse::<u16>() {
                Ok(code) if codes.contains(&code) => code,
                _ => {
                    invalid(&code_key, code_value, &code_reason(codes));
                    default_code
                }
            },
        };
        policy.redirect = Some(Redirect { code, url });
        break;
    }

    if let Some((key, value)) = get(SERVICE_UPSTREAM) {
        match parse_bool(value) {
            Some(b) => policy.service_upstream = Some(b),
            None => invalid(&key, value, "is neither \"true\" nor \"false\""),
        }
    }

    if let Some((key, value)) = get(UPSTREAM_VHOST) {
        match upstream_vhost(value) {
            // Checked by `upstream_vhost` (a host name and port): always a header value.
            Ok(host) => policy.upstream_vhost = http::HeaderValue::from_str(&host).ok(),
            Err(why) => invalid(&key, value, why),
        }
    }

    let mut rewrite = ResponseRewrite::default();
    // nginx.tmpl: `default` and `off` are written as such (no rewriting a backend can see);
    // a `from` is only used together with a `to` other than `off` (both default to `off`).
    let from = get(PROXY_REDIRECT_FROM);
    let to = get(PROXY_REDIRECT_TO);
    if let Some((from_key, from_value)) = &from {
        let from_value = from_value.trim();
        if !matches!(from_value, "off" | "default" | "") {
            match to.as_ref().map(|(k, v)| (k, v.trim())) {
                None | Some((_, "off")) => {}
                Some((to_key, to_value)) => match (url_chars(from_value), url_chars(to_value)) {
                    (Ok(()), Ok(())) => {
                        rewrite.location = Some(Replace {
                            from: from_value.to_string(),
                            to: to_value.to_string(),
                        })
                    }
                    (Err(why), _) => invalid(from_key, from_value, why),
                    (_, Err(why)) => invalid(to_key, to_value, why),
                },
            }
        }
    }
    for (name, slot) in [
        (PROXY_COOKIE_DOMAIN, &mut rewrite.cookie_domain),
        (PROXY_COOKIE_PATH, &mut rewrite.cookie_path),
    ] {
        if let Some((key, value)) = get(name) {
            match cookie_pair(value) {
                Ok(pair) => *slot = pair,
                Err(why) => invalid(&key, value, why),
            }
        }
    }
    if rewrite != ResponseRewrite::default() {
        policy.rewrite_response = Some(rewrite);
    }
    out
}

/// `server-alias`: extra names for every rule host of the Ingress, comma-separated
/// (ingress-nginx `annotations/alias/main.go`: trimmed, empty ones skipped, de-duplicated,
/// sorted). Exact names and `*.` wildcards as rule hosts are; nginx's `~regex` names are
/// refused. Which host finally gets an alias is decided in the merge (`translate`).
pub(super) fn server_aliases(ingress: &Ingress, errors: &mut Vec<String>) -> Vec<HostMatch> {
    let Some(annotations) = ingress.metadata.annotations.as_ref() else {
        return Vec::new();
    };
    let Some((key, value)) = [PORTICO, NGINX].iter().find_map(|prefix| {
        let key = format!("{prefix}{SERVER_ALIAS}");
        annotations.get(&key).map(|v| (key, v.as_str()))
    }) else {
        return Vec::new();
    };
    if value.len() > 16 * 1024 {
        errors.push(format!(
            "annotation {key}: longer than 16 KiB; no aliases; using the default"
        ));
        return Vec::new();
    }
    let mut aliases = Vec::new();
    for alias in value.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let lower = alias.to_ascii_lowercase();
        let parsed = if alias.starts_with('~') {
            Err("is a regex (~): Portico matches host names and *. wildcards only")
        } else {
            match paths::host_match(Some(&lower)) {
                Ok(HostMatch::Any) | Err(_) => Err("is not a host name or *. wildcard"),
                Ok(host) => Ok(host),
            }
        };
        match parsed {
            Ok(host) => aliases.push(host),
            Err(why) => {
                let shown: String = alias.chars().take(100).collect();
                errors.push(format!("annotation {key}: alias {shown:?} {why}; ignored"));
            }
        }
    }
    aliases.sort();
    aliases.dedup();
    aliases
}

/// nginx's `return CODE URL` writes a `Location` only for these codes; ingress-nginx accepts
/// 300–307 (temporal) and 300–308 (permanent), but 300, 304, 305 and 306 answer the URL as
/// a body without any `Location`, which is no redirect (see docs/decisions.md).
const TEMPORAL_CODES: &[u16] = &[301, 302, 303, 307];
const PERMANENT_CODES: &[u16] = &[301, 302, 303, 307, 308];

fn code_reason(codes: &[u16]) -> String {
    let list: Vec<String> = codes.iter().map(u16::to_string).collect();
    format!("is not a redirect code ({})", list.join(", "))
}

/// Go's `strconv.ParseBool`, which ingress-nginx's `GetBoolAnnotation` uses.
pub(super) fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// ingress-nginx's `URLIsValidRegex` character set (`parser/validators.go`): letters, digits
/// and `-._~/:,?&=`. Anything else (spaces, `$`, quotes, `;`, `%`, control characters) is
/// refused, which also makes every accepted value a valid HTTP field value.
fn url_chars(value: &str) -> Result<(), &'static str> {
    if value.len() > MAX_VALUE {
        return Err("is longer than 2048 bytes");
    }
    if value.is_empty() {
        return Err("is empty");
    }
    let ok = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~/:,?&=".contains(&b));
    if ok {
        Ok(())
    } else {
        Err("has a character outside letters, digits and -._~/:,?&=")
    }
}

/// `permanent-redirect` / `temporal-redirect`: an absolute `http` or `https` URL with a host
/// (redirect.go `isValidURL` for the scheme; the characters as `url_chars`).
fn redirect_url(value: &str) -> Result<String, &'static str> {
    let value = value.trim();
    url_chars(value)?;
    let uri: http::Uri = value.parse().map_err(|_| "is not a URL")?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("is not an absolute http:// or https:// URL"),
    }
    match uri.authority() {
        Some(a) if !a.host().is_empty() && normalize::check_authority(a.as_str()).is_ok() => {}
        _ => return Err("has no valid host"),
    }
    Ok(value.to_string())
}

/// `upstream-vhost`: a host name with an optional port (ingress-nginx `ValidateServerName`
/// refuses anything that is not a server name; nginx variables are never expanded here).
fn upstream_vhost(value: &str) -> Result<String, &'static str> {
    let value = value.trim();
    if value.is_empty() || value.len() > 255 {
        return Err("is not a host name");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
    {
        return Err("is not a host name (letters, digits, -._: and [] for IPv6)");
    }
    normalize::check_authority(value).map_err(|_| "is not a host name with an optional port")?;
    Ok(value.to_string())
}

/// `proxy-cookie-domain` / `proxy-cookie-path`: `off`, or `FROM TO` (ingress-nginx's
/// `cookieDomainRegex` and `URLIsValidRegex`). nginx's `~regex` form is refused: Portico
/// compares literally.
fn cookie_pair(value: &str) -> Result<Option<Replace>, &'static str> {
    let value = value.trim();
    if value == "off" {
        return Ok(None);
    }
    let mut words = value.split_ascii_whitespace();
    let (Some(from), Some(to), None) = (words.next(), words.next(), words.next()) else {
        return Err("is neither \"off\" nor two words FROM TO");
    };
    if from.starts_with('~') {
        return Err("is a regex (~): Portico only replaces literal values");
    }
    url_chars(from)?;
    url_chars(to)?;
    Ok(Some(Replace {
        from: from.to_string(),
        to: to.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress(pairs: &[(&str, &str)]) -> Ingress {
        super::super::annotations::annotated(pairs)
    }

    fn parse(pairs: &[(&str, &str)]) -> (Policy, Redirects, Vec<String>) {
        let mut policy = Policy::default();
        let mut errors = Vec::new();
        let r = apply(&ingress(pairs), &mut policy, &mut errors);
        (policy, r, errors)
    }

    const N: &str = "nginx.ingress.kubernetes.io/";

    fn n(name: &str) -> String {
        format!("{N}{name}")
    }

    #[test]
    fn permanent_redirect_defaults_to_301() {
        let (p, _, errors) = parse(&[(&n(PERMANENT_REDIRECT), "http://redirect.example.com")]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            p.redirect,
            Some(Redirect {
                code: 301,
                url: "http://redirect.example.com".into()
            })
        );
    }

    #[test]
    fn temporal_redirect_wins_and_defaults_to_302() {
        let (p, _, errors) = parse(&[
            (&n(PERMANENT_REDIRECT), "http://p.example"),
            (&n(TEMPORAL_REDIRECT), "https://t.example/x?a=1"),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(p.redirect.as_ref().map(|r| r.code), Some(302));
        assert_eq!(
            p.redirect.map(|r| r.url).as_deref(),
            Some("https://t.example/x?a=1")
        );
    }

    #[test]
    fn codes_outside_the_accepted_set_are_invalid_and_the_default_applies() {
        for (code, want) in [
            ("308", 308),
            ("302", 302),
            ("300", 301),
            ("399", 301),
            ("x", 301),
        ] {
            let (p, _, errors) = parse(&[
                (&n(PERMANENT_REDIRECT), "http://p.example"),
                (&n(PERMANENT_REDIRECT_CODE), code),
            ]);
            assert_eq!(p.redirect.map(|r| r.code), Some(want), "{code}");
            assert_eq!(errors.len(), usize::from(want == 301), "{code}: {errors:?}");
        }
        let (p, _, errors) = parse(&[
            (&n(TEMPORAL_REDIRECT), "http://t.example"),
            (&n(TEMPORAL_REDIRECT_CODE), "308"),
        ]);
        assert_eq!(p.redirect.map(|r| r.code), Some(302));
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn redirect_urls_must_be_absolute_http() {
        for bad in [
            "/relative",
            "ftp://x.example/",
            "http://",
            "http://x.example/$host",
            "http://x.example/\r\nSet-Cookie:a=b",
            "http://x.example/a b",
            "javascript:alert(1)",
        ] {
            let (p, _, errors) = parse(&[(&n(PERMANENT_REDIRECT), bad)]);
            assert_eq!(p.redirect, None, "{bad}");
            assert_eq!(errors.len(), 1, "{bad}");
        }
        let huge = format!("http://x.example/{}", "a".repeat(1 << 20));
        let (p, _, errors) = parse(&[(&n(TEMPORAL_REDIRECT), &huge)]);
        assert_eq!(p.redirect, None);
        assert!(errors[0].len() < 400, "the message stays short");
    }

    #[test]
    fn force_ssl_redirect_reads_go_booleans() {
        assert_eq!(
            parse(&[(&n(FORCE_SSL_REDIRECT), "true")]).1.force_ssl,
            Some(true)
        );
        assert_eq!(
            parse(&[(&n(FORCE_SSL_REDIRECT), "0")]).1.force_ssl,
            Some(false)
        );
        let (_, r, errors) = parse(&[(&n(FORCE_SSL_REDIRECT), "yes")]);
        assert_eq!(r.force_ssl, None);
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn upstream_vhost_is_a_host_name() {
        let (p, _, errors) = parse(&[(&n(UPSTREAM_VHOST), "upstreamvhost.bar.com")]);
        assert!(errors.is_empty());
        assert_eq!(
            p.upstream_vhost.as_ref().and_then(|v| v.to_str().ok()),
            Some("upstreamvhost.bar.com")
        );
        for bad in ["$host", "a b", "x\r\ny", "", "a/b"] {
            let (p, _, errors) = parse(&[(&n(UPSTREAM_VHOST), bad)]);
            assert_eq!(p.upstream_vhost, None, "{bad:?}");
            assert_eq!(errors.len(), 1, "{bad:?}");
        }
    }

    /// test/e2e/annotations/proxy.go "should set proxy_redirect to off", "... to default",
    /// "... to hello.com goodbye.com".
    #[test]
    fn proxy_redirect_off_default_and_a_pair() {
        for from in ["off", "default"] {
            let (p, _, errors) = parse(&[
                (&n(PROXY_REDIRECT_FROM), from),
                (&n(PROXY_REDIRECT_TO), "goodbye.com"),
            ]);
            assert!(errors.is_empty());
            assert_eq!(p.rewrite_response, None, "{from}");
        }
        let (p, _, errors) = parse(&[
            (&n(PROXY_REDIRECT_FROM), "hello.com"),
            (&n(PROXY_REDIRECT_TO), "goodbye.com"),
        ]);
        assert!(errors.is_empty());
        assert_eq!(
            p.rewrite_response.and_then(|r| r.location),
            Some(Replace {
                from: "hello.com".into(),
                to: "goodbye.com".into()
            })
        );
        // A `from` alone does nothing (`to` defaults to off), as in nginx.tmpl.
        let (p, _, _) = parse(&[(&n(PROXY_REDIRECT_FROM), "hello.com")]);
        assert_eq!(p.rewrite_response, None);
    }

    /// test/e2e/annotations/proxy.go "should setup proxy cookies".
    #[test]
    fn proxy_cookies_take_two_words_or_off() {
        let (p, _, errors) = parse(&[
            (&n(PROXY_COOKIE_DOMAIN), "localhost example.org"),
            (&n(PROXY_COOKIE_PATH), "/one/ /"),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        let r = p.rewrite_response.expect("rewrite");
        assert_eq!(r.cookie_domain.map(|d| d.to), Some("example.org".into()));
        assert_eq!(r.cookie_path.map(|d| d.from), Some("/one/".into()));
        for bad in ["one", "a b c", "~x y", "a;b c"] {
            let (p, _, errors) = parse(&[(&n(PROXY_COOKIE_PATH), bad)]);
            assert_eq!(p.rewrite_response, None, "{bad}");
            assert_eq!(errors.len(), 1, "{bad}");
        }
        let (p, _, errors) = parse(&[(&n(PROXY_COOKIE_PATH), "off")]);
        assert!(errors.is_empty());
        assert_eq!(p.rewrite_response, None);
    }

    #[test]
    fn server_aliases_are_host_names_sorted_without_duplicates() {
        let mut errors = Vec::new();
        let aliases = server_aliases(
            &ingress(&[(
                &n(SERVER_ALIAS),
                " b.example, A.example,,*.w.example, a.example, ~^re$, bad_host ",
            )]),
            &mut errors,
        );
        assert_eq!(
            aliases,
            [
                HostMatch::Exact("a.example".into()),
                HostMatch::Exact("b.example".into()),
                HostMatch::Wildcard("w.example".into()),
            ]
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn portico_spelling_wins() {
        let (p, _, _) = parse(&[
            ("portico.dev/upstream-vhost", "a.example"),
            (&n(UPSTREAM_VHOST), "b.example"),
        ]);
        assert_eq!(
            p.upstream_vhost.as_ref().and_then(|v| v.to_str().ok()),
            Some("a.example")
        );
    }
}
