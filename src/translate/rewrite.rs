//! The regex and rewrite annotations (issue 13): `use-regex`, `rewrite-target`, `app-root`,
//! `x-forwarded-prefix`, `preserve-trailing-slash`, typed once per translate into a
//! [`Rewrite`] carried by the Ingress's [`Policy`](crate::routing::Policy). Called from
//! `annotations::policy`; the host-wide regex mode they switch on is built by
//! `routing::VirtualHost::new`, and the proxy applies them in `proxy::rewrite`.
//!
//! Sources: ingress-nginx `internal/ingress/annotations/rewrite/main.go` (names, booleans
//! parsed as Go's `strconv.ParseBool`, `app-root` must be a relative URI),
//! `internal/ingress/annotations/parser/validators.go` (`RegexPathWithCapture`),
//! `internal/ingress/controller/template/template.go` `buildProxyPass` (when a rewrite and
//! `X-Forwarded-Prefix` apply), nginx's `rewrite` (`$1`…`$9` are the only captures).

use crate::routing::{is_target_byte, Piece, Rewrite, RewriteTarget};

pub const USE_REGEX: &str = "use-regex";
pub const REWRITE_TARGET: &str = "rewrite-target";
pub const APP_ROOT: &str = "app-root";
pub const X_FORWARDED_PREFIX: &str = "x-forwarded-prefix";
pub const PRESERVE_TRAILING_SLASH: &str = "preserve-trailing-slash";

/// Longest value accepted for the string annotations: a path or header this long is a mistake
/// (or an attack on the controller), never a configuration.
pub const MAX_VALUE_BYTES: usize = 4096;

/// Reads the five annotations through `get` (Portico's spelling first) and reports each
/// invalid one through `invalid(key, value, why)`; `None` when none is set (or all invalid).
pub(super) fn parse<'a>(
    get: &dyn Fn(&str) -> Option<(String, &'a String)>,
    invalid: &mut dyn FnMut(&str, &str, &str),
) -> Option<Box<Rewrite>> {
    let mut rewrite = Rewrite::default();
    let mut any = false;
    // A 1 MB value must not become a 1 MB condition message.
    let mut invalid = |key: &str, value: &str, why: &str| invalid(key, &shorten(value), why);
    if let Some((key, value)) = get(USE_REGEX) {
        match parse_bool(value) {
            Some(b) => {
                rewrite.use_regex = b;
                any |= b;
            }
            None => invalid(&key, value, "is not a boolean (true or false)"),
        }
    }
    if let Some((key, value)) = get(PRESERVE_TRAILING_SLASH) {
        match parse_bool(value) {
            Some(b) => {
                rewrite.strip_trailing_slash = !b;
                any |= !b;
            }
            None => invalid(&key, value, "is not a boolean (true or false)"),
        }
    }
    if let Some((key, value)) = get(REWRITE_TARGET) {
        // ingress-nginx: an empty target is no target.
        if !value.is_empty() {
            match parse_target(value) {
                Ok(target) => {
                    rewrite.target = Some(target);
                    any = true;
                }
                Err(why) => invalid(&key, value, &why),
            }
        }
    }
    if let Some((key, value)) = get(APP_ROOT) {
        if !value.is_empty() {
            match parse_app_root(value) {
                Ok(root) => {
                    rewrite.app_root = Some(root);
                    any = true;
                }
                Err(why) => invalid(&key, value, &why),
            }
        }
    }
    if let Some((key, value)) = get(X_FORWARDED_PREFIX) {
        // xforwardedprefix.go "should not add X-Forwarded-Prefix if the annotation value is
        // empty".
        if !value.is_empty() {
            match parse_header_value(value) {
                Ok(v) => {
                    rewrite.x_forwarded_prefix = Some(v);
                    any = true;
                }
                Err(why) => invalid(&key, value, &why),
            }
        }
    }
    any.then(|| Box::new(rewrite))
}

/// `value`, cut to 120 bytes for a message.
pub(super) fn shorten(value: &str) -> String {
    const MAX: usize = 120;
    if value.len() <= MAX {
        return value.to_string();
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &value[..end], value.len())
}

/// Go's `strconv.ParseBool`, which ingress-nginx's `GetBoolAnnotation` uses.
pub(super) fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn too_long(value: &str) -> Option<String> {
    (value.len() > MAX_VALUE_BYTES).then(|| {
        format!(
            "is {} bytes long, more than the {MAX_VALUE_BYTES} accepted",
            value.len()
        )
    })
}

/// Checks the characters of a path-and-query value (percent-escapes well formed).
fn check_target_text(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if !is_target_byte(b) {
            return Err(format!(
                "contains {:?}, which a request-target cannot hold",
                char::from(b)
            ));
        }
        if b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return Err("has a % not followed by two hex digits".to_string());
        }
    }
    Ok(())
}

/// A `rewrite-target`: a path (and optional query) with `$1`…`$9` capture references. nginx
/// reads `$` followed by anything else as a variable; Portico never evaluates variables, so
/// those are refused. A target that is a URL (`http://…`) makes nginx redirect instead of
/// rewrite; that is refused too (use the redirect annotations).
pub fn parse_target(value: &str) -> Result<RewriteTarget, String> {
    if let Some(why) = too_long(value) {
        return Err(why);
    }
    if !(value.starts_with('/') || value.starts_with('$')) {
        return Err("must start with / or a capture reference $1…$9".to_string());
    }
    check_target_text(value)?;
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = value.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            literal.push(c);
            continue;
        }
        match chars.peek() {
            Some(&(_, d @ '1'..='9')) => {
                chars.next();
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Group(usize::from(d as u8 - b'0')));
            }
            _ => {
                return Err(
                    "uses a $ that is not a capture reference $1…$9 (nginx variables are \
                     never evaluated)"
                        .to_string(),
                )
            }
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(RewriteTarget {
        text: value.to_string(),
        pieces,
    })
}

/// `app-root`: ingress-nginx requires a URI that `url.ParseRequestURI` accepts and that is not
/// absolute: a path, optionally with a query.
pub fn parse_app_root(value: &str) -> Result<String, String> {
    if let Some(why) = too_long(value) {
        return Err(why);
    }
    if !value.starts_with('/') || value.starts_with("//") {
        return Err("must be a path starting with a single /".to_string());
    }
    check_target_text(value)?;
    if value.contains('$') {
        return Err("contains $ (nginx variables are never evaluated)".to_string());
    }
    Ok(value.to_string())
}

/// An HTTP field value (RFC 9110 §5.5): visible ASCII, spaces and tabs inside, nothing that
/// could end the header.
pub fn parse_header_value(value: &str) -> Result<String, String> {
    if let Some(why) = too_long(value) {
        return Err(why);
    }
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Err("has leading or trailing whitespace".to_string());
    }
    if let Some(b) = value
        .bytes()
        .find(|&b| !(b == b'\t' || (0x20..0x7f).contains(&b)))
    {
        return Err(format!(
            "contains byte 0x{b:02x}, which a header value cannot hold"
        ));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_literals_and_groups() {
        let t = parse_target("/new/$1/x$2?a=$3").unwrap();
        assert_eq!(
            t.pieces,
            vec![
                Piece::Literal("/new/".into()),
                Piece::Group(1),
                Piece::Literal("/x".into()),
                Piece::Group(2),
                Piece::Literal("?a=".into()),
                Piece::Group(3),
            ]
        );
        assert_eq!(t.max_group(), 3);
        // nginx captures are one digit: `$10` is `$1` then `0`.
        let t = parse_target("/$10").unwrap();
        assert_eq!(t.max_group(), 1);
        assert_eq!(parse_target("/").unwrap().max_group(), 0);
        assert_eq!(parse_target("$1").unwrap().max_group(), 1);
    }

    #[test]
    fn bad_targets_are_refused_with_a_reason() {
        for (bad, word) in [
            ("/$host", "variables"),
            ("/$0", "capture"),
            ("/a b", "request-target"),
            ("/a\r\nX: y", "request-target"),
            ("/%zz", "hex"),
            ("http://evil/", "start"),
            ("relative", "start"),
            ("/a#frag", "request-target"),
        ] {
            let err = parse_target(bad).unwrap_err();
            assert!(err.contains(word), "{bad}: {err}");
        }
        let huge = format!("/{}", "a".repeat(1 << 20));
        assert!(parse_target(&huge).unwrap_err().contains("bytes long"));
    }

    #[test]
    fn app_root_is_a_relative_path() {
        assert_eq!(parse_app_root("/foo").unwrap(), "/foo");
        assert_eq!(parse_app_root("/app?x=1").unwrap(), "/app?x=1");
        for bad in ["foo", "http://x/foo", "//evil.example/", "/a b", "/$uri"] {
            assert!(parse_app_root(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_values_cannot_break_the_header() {
        assert_eq!(parse_header_value("/test/value").unwrap(), "/test/value");
        assert!(parse_header_value("/a\r\nX-Evil: 1").is_err());
        assert!(parse_header_value(" /a").is_err());
        assert!(parse_header_value("/é").is_err());
    }

    #[test]
    fn booleans_follow_go() {
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }
}
