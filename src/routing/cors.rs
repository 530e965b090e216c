//! One Ingress's CORS settings (ingress-nginx's `enable-cors` family), typed by
//! `translate/cors.rs` and applied per request by `proxy/cors.rs`. The header values are made
//! once here; matching an `Origin` is a comparison, never a regex built per request.

use http::HeaderValue;
use serde::Serialize;

/// Which `Origin`s get CORS headers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AllowOrigin {
    /// `*` (the default): every request, `Origin` or not, gets `Access-Control-Allow-Origin: *`
    /// (ingress-nginx's `set $http_origin *`).
    Any,
    /// Only these; the answer repeats the request's `Origin`. Empty: no origin matches.
    List(Vec<OriginPattern>),
}

/// One `cors-allow-origin` entry: `scheme://host[:port]`, `scheme://*.domain[:port]` or `null`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OriginPattern {
    /// The whole origin, compared without regard to ASCII case (nginx's `~*`).
    Exact(String),
    /// `scheme://*.rest`: `prefix` is `scheme://`, `suffix` is `.rest` (port included); the
    /// `*` stands for one DNS label of letters, digits and `-` (ingress-nginx
    /// `buildOriginRegex`: `[A-Za-z0-9\-]+`).
    Wildcard { prefix: String, suffix: String },
}

impl OriginPattern {
    /// Whether the request's `Origin` matches, ASCII case-insensitively.
    pub fn matches(&self, origin: &[u8]) -> bool {
        match self {
            OriginPattern::Exact(exact) => origin.eq_ignore_ascii_case(exact.as_bytes()),
            OriginPattern::Wildcard { prefix, suffix } => {
                let (p, s) = (prefix.as_bytes(), suffix.as_bytes());
                origin.len() > p.len() + s.len()
                    && origin[..p.len()].eq_ignore_ascii_case(p)
                    && origin[origin.len() - s.len()..].eq_ignore_ascii_case(s)
                    && origin[p.len()..origin.len() - s.len()]
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            }
        }
    }

    fn text(&self) -> String {
        match self {
            OriginPattern::Exact(e) => e.clone(),
            OriginPattern::Wildcard { prefix, suffix } => format!("{prefix}*{suffix}"),
        }
    }
}

/// The CORS answer of one Ingress's locations (`rootfs/etc/nginx/template/nginx.tmpl`,
/// `define "CORS"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cors {
    pub allow_origin: AllowOrigin,
    /// `cors-allow-credentials` (default true): `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// `Access-Control-Allow-Methods`, as written (default `GET, PUT, POST, DELETE, PATCH,
    /// OPTIONS`).
    pub allow_methods: HeaderValue,
    /// `Access-Control-Allow-Headers`, as written.
    pub allow_headers: HeaderValue,
    /// `Access-Control-Expose-Headers`, only when set.
    pub expose_headers: Option<HeaderValue>,
    /// `Access-Control-Max-Age` in seconds (default 1728000).
    pub max_age: HeaderValue,
}

impl Cors {
    /// Whether a request with this `Origin` (absent: `None`) gets CORS headers.
    pub fn allows(&self, origin: Option<&HeaderValue>) -> bool {
        match &self.allow_origin {
            AllowOrigin::Any => true,
            AllowOrigin::List(list) => {
                origin.is_some_and(|o| list.iter().any(|p| p.matches(o.as_bytes())))
            }
        }
    }
}

impl Serialize for Cors {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let text = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
        let origins: Vec<String> = match &self.allow_origin {
            AllowOrigin::Any => vec!["*".to_string()],
            AllowOrigin::List(list) => list.iter().map(OriginPattern::text).collect(),
        };
        let mut st = s.serialize_struct("Cors", 6)?;
        st.serialize_field("allowOrigin", &origins)?;
        st.serialize_field("allowCredentials", &self.allow_credentials)?;
        st.serialize_field("allowMethods", &text(&self.allow_methods))?;
        st.serialize_field("allowHeaders", &text(&self.allow_headers))?;
        st.serialize_field("exposeHeaders", &self.expose_headers.as_ref().map(text))?;
        st.serialize_field("maxAge", &text(&self.max_age))?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wildcard(prefix: &str, suffix: &str) -> OriginPattern {
        OriginPattern::Wildcard {
            prefix: prefix.into(),
            suffix: suffix.into(),
        }
    }

    #[test]
    fn exact_origin_ignores_case_and_needs_the_same_port() {
        let p = OriginPattern::Exact("http://origin.cors.com:8080".into());
        assert!(p.matches(b"HTTP://Origin.cors.com:8080"));
        assert!(!p.matches(b"http://origin.cors.com"));
        assert!(!p.matches(b"http://origin.cors.com:80800"));
        assert!(!p.matches(b"xhttp://origin.cors.com:8080"));
    }

    #[test]
    fn wildcard_matches_one_label() {
        let p = wildcard("http://", ".origin.cors.com");
        assert!(p.matches(b"http://foo.origin.cors.com"));
        assert!(p.matches(b"http://bar-foo.origin.cors.com"));
        assert!(!p.matches(b"http://bar.foo.origin.cors.com"));
        assert!(!p.matches(b"http://.origin.cors.com"));
        assert!(!p.matches(b"https://foo.origin.cors.com"));
        let p = wildcard("http://", ".origin.com:8080");
        assert!(p.matches(b"http://abc.origin.com:8080"));
        assert!(!p.matches(b"http://abc.origin.com"));
    }
}
