//! ingress-nginx's CORS annotations (`enable-cors`, `cors-*`), typed at translate time into a
//! [`Cors`] carried by the Ingress's policy; `proxy/cors.rs` answers with it.
//!
//! Source: ingress-nginx `internal/ingress/annotations/cors/main.go` (defaults, validation),
//! `internal/ingress/controller/template/template.go` (`buildCorsOriginRegex`,
//! `buildOriginRegex`) and `rootfs/etc/nginx/template/nginx.tmpl` (`define "CORS"`).
//!
//! One deliberate difference (docs/decisions.md): a `cors-allow-origin` value ingress-nginx's
//! validator refuses as a whole (an origin with a path, say) made ingress-nginx allow every
//! origin (`*`); Portico skips each unusable entry with a condition and never widens the list.

use std::sync::Arc;

use http::HeaderValue;

use super::rewrite::{parse_bool, shorten};
use crate::routing::{AllowOrigin, Cors, OriginPattern};

/// The annotation names, without prefix.
pub const ENABLE_CORS: &str = "enable-cors";
pub const CORS_ALLOW_ORIGIN: &str = "cors-allow-origin";
pub const CORS_ALLOW_METHODS: &str = "cors-allow-methods";
pub const CORS_ALLOW_HEADERS: &str = "cors-allow-headers";
pub const CORS_EXPOSE_HEADERS: &str = "cors-expose-headers";
pub const CORS_ALLOW_CREDENTIALS: &str = "cors-allow-credentials";
pub const CORS_MAX_AGE: &str = "cors-max-age";

/// ingress-nginx's defaults (`cors/main.go`).
pub const DEFAULT_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
pub const DEFAULT_HEADERS: &str =
    "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization";
pub const DEFAULT_MAX_AGE: i64 = 1_728_000;

/// The Ingress's CORS settings, `None` unless `enable-cors` is true. `get` looks an annotation
/// up under both prefixes; `invalid` reports a value that is not used.
pub(super) fn parse<'a>(
    get: &dyn Fn(&str) -> Option<(String, &'a String)>,
    invalid: &mut dyn FnMut(&str, &str, &str),
) -> Option<Arc<Cors>> {
    let mut invalid = |key: &str, value: &str, why: &str| invalid(key, &shorten(value), why);
    let enabled = match get(ENABLE_CORS) {
        None => false,
        Some((key, value)) => match parse_bool(value.trim()) {
            Some(b) => b,
            None => {
                invalid(&key, value, "is neither \"true\" nor \"false\"");
                false
            }
        },
    };
    if !enabled {
        return None;
    }
    let allow_origin = match get(CORS_ALLOW_ORIGIN) {
        None => AllowOrigin::Any,
        Some((key, value)) => origins(value, &mut |why| invalid(&key, value, why)),
    };
    let allow_credentials = match get(CORS_ALLOW_CREDENTIALS) {
        None => true,
        Some((key, value)) => parse_bool(value.trim()).unwrap_or_else(|| {
            invalid(&key, value, "is neither \"true\" nor \"false\"");
            true
        }),
    };
    let mut list = |name: &str, ok: fn(&str) -> bool, what: &str| -> Option<HeaderValue> {
        let (key, value) = get(name)?;
        let trimmed = value.trim();
        // ingress-nginx's `GetStringAnnotation` refuses an empty value: the default applies.
        if trimmed.is_empty() {
            return None;
        }
        match HeaderValue::from_str(trimmed).ok().filter(|_| ok(trimmed)) {
            Some(v) => Some(v),
            None => {
                invalid(&key, value, what);
                None
            }
        }
    };
    let allow_methods = list(
        CORS_ALLOW_METHODS,
        methods_ok,
        "is not a list of methods (letters, commas, spaces)",
    )
    .unwrap_or_else(|| HeaderValue::from_static(DEFAULT_METHODS));
    let allow_headers = list(
        CORS_ALLOW_HEADERS,
        headers_ok,
        "is not a list of header names (letters, digits, -, _, commas, spaces)",
    )
    .unwrap_or_else(|| HeaderValue::from_static(DEFAULT_HEADERS));
    let expose_headers = list(
        CORS_EXPOSE_HEADERS,
        expose_ok,
        "is not a list of header names or * (letters, digits, -, _, *, commas, spaces)",
    );
    let max_age = match get(CORS_MAX_AGE) {
        None => DEFAULT_MAX_AGE,
        // Go's `strconv.Atoi` (`GetIntAnnotation`): a negative number is accepted too.
        Some((key, value)) => value.trim().parse::<i64>().unwrap_or_else(|_| {
            invalid(&key, value, "is not a number of seconds");
            DEFAULT_MAX_AGE
        }),
    };
    Some(Arc::new(Cors {
        allow_origin,
        allow_credentials,
        allow_methods,
        allow_headers,
        expose_headers,
        max_age: HeaderValue::from(max_age),
    }))
}

/// `cors-allow-origin`: comma-separated entries, blanks skipped; `*` anywhere (or nothing but
/// blanks) allows every origin (`cors/main.go` `Parse`; e2e `cors.go` "should not break
/// functionality with extra domain", "should allow - missing origins").
fn origins(value: &str, invalid: &mut dyn FnMut(&str)) -> AllowOrigin {
    let mut list = Vec::new();
    let mut any = true;
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        any = false;
        if entry == "*" {
            return AllowOrigin::Any;
        }
        match origin_pattern(entry) {
            Some(p) => list.push(p),
            None => invalid(&format!(
                "has {:?}, which is not an origin (scheme://host[:port], scheme://*.domain[:port], null or *): that entry is skipped",
                shorten(entry)
            )),
        }
    }
    if any {
        AllowOrigin::Any
    } else {
        AllowOrigin::List(list)
    }
}

/// One origin as ingress-nginx's `corsOriginRegex` accepts it:
/// `^([a-z]+://(\*\.)?[A-Za-z0-9\-.]*(:\d+)?|\*|null)?$` (no path, no query).
fn origin_pattern(entry: &str) -> Option<OriginPattern> {
    if entry == "null" {
        return Some(OriginPattern::Exact(entry.to_string()));
    }
    let (scheme, rest) = entry.split_once("://")?;
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let (wild, rest) = match rest.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let (host, port) = match rest.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return None;
    }
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    Some(if wild {
        OriginPattern::Wildcard {
            prefix: format!("{scheme}://"),
            suffix: format!(".{rest}"),
        }
    } else {
        OriginPattern::Exact(entry.to_string())
    })
}

/// `corsMethodsRegex`: `^([A-Za-z]+,?\s?)+$`.
fn methods_ok(v: &str) -> bool {
    v.starts_with(|c: char| c.is_ascii_alphabetic())
        && v.bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b',' || b == b' ')
}

/// `parser.HeadersVariable`: `^[A-Za-z0-9-_, ]*$`.
fn headers_ok(v: &str) -> bool {
    v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b',' | b' '))
}

/// `corsExposeHeadersRegex`: `^(([A-Za-z0-9\-\_]+|\*),?\s?)+$`.
fn expose_ok(v: &str) -> bool {
    v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*' | b',' | b' '))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn run(pairs: &[(&str, &str)]) -> (Option<Arc<Cors>>, Vec<String>) {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (format!("nginx.ingress.kubernetes.io/{k}"), v.to_string()))
            .collect();
        let get = |name: &str| {
            let key = format!("nginx.ingress.kubernetes.io/{name}");
            map.get(&key).map(|v| (key, v))
        };
        let mut errors = Vec::new();
        let cors = parse(&get, &mut |k, v, why| errors.push(format!("{k} {v} {why}")));
        (cors, errors)
    }

    #[test]
    fn off_unless_enabled() {
        assert!(run(&[("cors-allow-origin", "https://a.example")])
            .0
            .is_none());
        let (cors, errors) = run(&[("enable-cors", "yes")]);
        assert!(cors.is_none());
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn defaults_follow_ingress_nginx() {
        let (cors, errors) = run(&[("enable-cors", "true")]);
        let cors = cors.unwrap();
        assert!(errors.is_empty());
        assert_eq!(cors.allow_origin, AllowOrigin::Any);
        assert!(cors.allow_credentials);
        assert_eq!(cors.allow_methods, DEFAULT_METHODS);
        assert_eq!(cors.allow_headers, DEFAULT_HEADERS);
        assert_eq!(cors.expose_headers, None);
        assert_eq!(cors.max_age, "1728000");
    }

    #[test]
    fn star_anywhere_or_only_blanks_allows_every_origin() {
        for value in ["*, foo.bar.com", "https://a.example, *", "      ", " , "] {
            let (cors, _) = run(&[("enable-cors", "true"), ("cors-allow-origin", value)]);
            assert_eq!(cors.unwrap().allow_origin, AllowOrigin::Any, "{value}");
        }
    }

    #[test]
    fn an_origin_with_a_path_is_a_condition_and_never_widens() {
        let (cors, errors) = run(&[
            ("enable-cors", "true"),
            (
                "cors-allow-origin",
                "https://a.example/path, https://b.example:8443",
            ),
        ]);
        assert_eq!(
            cors.unwrap().allow_origin,
            AllowOrigin::List(vec![OriginPattern::Exact("https://b.example:8443".into())])
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("https://a.example/path"), "{errors:?}");
        // Only unusable entries: nothing matches (ingress-nginx: the list is empty, no CORS).
        let (cors, errors) = run(&[
            ("enable-cors", "true"),
            ("cors-allow-origin", "origin.cors.com:8080"),
        ]);
        assert_eq!(cors.unwrap().allow_origin, AllowOrigin::List(vec![]));
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn wildcards_and_other_schemes_parse() {
        let (cors, errors) = run(&[
            ("enable-cors", "true"),
            (
                "cors-allow-origin",
                "http://*.origin.com:8080, tauri://localhost:3000, null,",
            ),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            cors.unwrap().allow_origin,
            AllowOrigin::List(vec![
                OriginPattern::Wildcard {
                    prefix: "http://".into(),
                    suffix: ".origin.com:8080".into()
                },
                OriginPattern::Exact("tauri://localhost:3000".into()),
                OriginPattern::Exact("null".into()),
            ])
        );
    }

    #[test]
    fn invalid_lists_fall_back_with_a_condition() {
        let (cors, errors) = run(&[
            ("enable-cors", "true"),
            ("cors-allow-methods", "GET; rm"),
            ("cors-allow-headers", "X-A, $pid"),
            ("cors-expose-headers", "X-B, *"),
            ("cors-max-age", "soon"),
            ("cors-allow-credentials", "false"),
        ]);
        let cors = cors.unwrap();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(cors.allow_methods, DEFAULT_METHODS);
        assert_eq!(cors.allow_headers, DEFAULT_HEADERS);
        assert_eq!(cors.expose_headers.as_ref().unwrap(), "X-B, *");
        assert_eq!(cors.max_age, "1728000");
        assert!(!cors.allow_credentials);
    }
}
