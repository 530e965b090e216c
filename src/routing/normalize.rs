//! Request host and path normalisation for matching (spec §3.2, §3.4), and the checks that
//! refuse ambiguous request-targets and authorities before any route is chosen (spec §6.1,
//! RFC 9112 §3.2). Sits at the very start of each request in the proxy, before `decide`; also
//! used by `explain` and, for rule paths, by translate.
//!
//! The rule (docs/security.md, "Request paths" and "Host"): the backend sees exactly the path
//! that was matched. [`request_path`] returns the match path, which the proxy forwards in place
//! of the raw path whenever normalisation changed it, or a [`Rejection`] (400) for the forms
//! that common backends resolve differently from RFC 3986 (encoded separators, backslashes,
//! `;` on dot-segments, `..` over an empty segment, invalid or overlong UTF-8, malformed
//! escapes, look-alikes of `.` `/` `\`). [`check_authority`] refuses hosts outside RFC 3986's grammar and userinfo.

use std::borrow::Cow;
use std::net::Ipv6Addr;

/// Why a request-target or authority is answered 400 (spec §6.1; RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// `%2F` in the path: many backends decode it into a separator (spec §6.1).
    EncodedSlash,
    /// `%5C` in the path: decoded into `\`, a separator on Windows and some servlet containers.
    EncodedBackslash,
    /// `\` in the path: a separator for IIS, Tomcat (some settings), Windows file servers.
    Backslash,
    /// A `.`/`..` segment with `;` parameters (`..;`): servlet containers strip the
    /// parameters and then resolve the dot-segment.
    DotSegmentParameter,
    /// With `--allow-encoded-slashes`: a `%2F` that would make a dot-segment once decoded
    /// (`..%2F`).
    EncodedSlashDotSegment,
    /// A `..` that removes an empty segment (`/a//../b`): RFC 3986 gives `/a/b`, a backend that
    /// merges slashes first gives `/b`.
    DotSegmentAfterEmptySegment,
    /// Percent-decoded, the path is not UTF-8 (overlong forms such as `%C0%AE` included).
    InvalidUtf8,
    /// `%00`: truncates the path in C backends and file systems.
    EncodedNul,
    /// A `%` not followed by two hex digits (RFC 3986 §2.1): `%2%65` would become `%2e` once
    /// `%65` is decoded, a dot to a backend that decodes again.
    MalformedEscape,
    /// A character that Unicode compatibility normalisation (NFKC) or Windows "best fit"
    /// mapping turns into `.`, `/`, `\`, `;` or `%` (full-width `．`, `／`, ...).
    LookAlike,
    /// `user@` in the Host header or the URI's authority (RFC 9110 §4.2.4, RFC 9113 §8.3.1).
    Userinfo,
    /// A host outside RFC 3986 §3.2.2's reg-name (unreserved, pct-encoded, sub-delims).
    HostCharacter,
    /// A `[...]` that is not an IPv6 address in brackets.
    IpLiteral,
    /// A port that is not digits, or above 65535.
    Port,
}

impl Rejection {
    /// The reason as a static string, for `ProxyError::BadRequest` and explain.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::EncodedSlash => "encoded slash (%2F) in the path",
            Rejection::EncodedBackslash => "encoded backslash (%5C) in the path",
            Rejection::Backslash => "backslash in the path",
            Rejection::DotSegmentParameter => "path parameter (;) on a dot-segment",
            Rejection::EncodedSlashDotSegment => "encoded slash next to a dot-segment",
            Rejection::DotSegmentAfterEmptySegment => "dot-segment after an empty segment (//..)",
            Rejection::InvalidUtf8 => "invalid or overlong UTF-8 in the path",
            Rejection::EncodedNul => "encoded NUL in the path",
            Rejection::MalformedEscape => "malformed percent-escape in the path",
            Rejection::LookAlike => "non-ASCII look-alike of a path delimiter",
            Rejection::Userinfo => "userinfo in the authority",
            Rejection::HostCharacter => "invalid character in the host",
            Rejection::IpLiteral => "invalid IP literal in the host",
            Rejection::Port => "invalid port in the authority",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Rejection {}

/// What an operator may loosen in [`request_path`] (`--allow-encoded-slashes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathRules {
    /// `%2F` is kept opaque (spec §3.4 step 2) and forwarded as received instead of refused;
    /// for backends that take an encoded slash as data (RabbitMQ's `%2F` vhost, S3-style
    /// keys). `..%2F` and friends are still refused.
    pub allow_encoded_slashes: bool,
}

/// The match host for an authority (`Host` header value or URI authority), spec §3.2 steps 2–4:
/// drop userinfo and port, lowercase ASCII, drop one trailing dot.
pub fn host(authority: &str) -> Cow<'_, str> {
    // Plain reverse byte loops rather than `rfind(char)` (a char searcher, whose cost moved by
    // a quarter between builds with how it was inlined) or `memchr` (its SIMD set-up costs
    // more than the scan of a short host: ~110 instructions per call).
    let bytes = authority.as_bytes();
    let authority = match bytes.iter().rposition(|&b| b == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let bytes = authority.as_bytes();
    let without_port = if bytes.first() == Some(&b'[') {
        // `[v6]` or `[v6]:port`: keep the bracketed literal.
        match bytes.iter().position(|&b| b == b']') {
            Some(end) => &authority[..=end],
            None => authority,
        }
    } else {
        match bytes.iter().rposition(|&b| b == b':') {
            Some(colon) if bytes[colon + 1..].iter().all(u8::is_ascii_digit) => &authority[..colon],
            _ => authority,
        }
    };
    let trimmed = without_port.strip_suffix('.').unwrap_or(without_port);
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

/// The match path of a request's path (no query), or why it is refused (spec §3.4, §6.1).
///
/// When the result differs from `raw` other than in the case of hex digits, the proxy
/// forwards the result instead of `raw`, so the backend sees exactly what was matched.
pub fn request_path(raw: &str, rules: PathRules) -> Result<Cow<'_, str>, Rejection> {
    // One pass over the bytes: a path without escapes, backslashes, dots or non-ASCII bytes
    // (most) gives none of the checks below anything to refuse or rewrite.
    if !raw.is_empty()
        && raw
            .bytes()
            .all(|b| b.is_ascii() && b != b'%' && b != b'\\' && b != b'.')
    {
        return Ok(Cow::Borrowed(raw));
    }
    check_octets(raw, rules)?;
    let normalised = path(raw);
    check_segments(&normalised_input(raw), rules)?;
    Ok(normalised)
}

/// Whether the proxy must forward `matched` instead of `raw`: normalisation decoded an
/// unreserved escape or removed a dot-segment. Uppercasing the hex digits of other escapes
/// alone changes nothing a decoder sees (RFC 3986 §6.2.2.1), so such a target still goes
/// upstream byte-for-byte.
pub fn forwards_changed(raw: &str, matched: &str) -> bool {
    // Normalisation never changes the case of anything but escapes' hex digits.
    !raw.eq_ignore_ascii_case(matched)
}

/// Octet-level checks on the raw path: separators in disguise and bytes that do not decode to
/// UTF-8 (spec §6.1).
fn check_octets(raw: &str, rules: PathRules) -> Result<(), Rejection> {
    let bytes = raw.as_bytes();
    if !raw.contains(['%', '\\']) && raw.is_ascii() {
        return Ok(());
    }
    // Every escape decoded: what a backend that decodes everything (once) sees.
    let mut decoded: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' {
            return Err(Rejection::Backslash);
        }
        if b == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                let value = hi * 16 + lo;
                match value {
                    b'/' if !rules.allow_encoded_slashes => return Err(Rejection::EncodedSlash),
                    b'\\' => return Err(Rejection::EncodedBackslash),
                    0 => return Err(Rejection::EncodedNul),
                    _ => {}
                }
                decoded.push(value);
                i += 3;
                continue;
            }
        }
        if b == b'%' {
            return Err(Rejection::MalformedEscape);
        }
        decoded.push(b);
        i += 1;
    }
    let text = std::str::from_utf8(&decoded).map_err(|_| Rejection::InvalidUtf8)?;
    if text.chars().any(is_look_alike) {
        return Err(Rejection::LookAlike);
    }
    Ok(())
}

/// Characters that NFKC (Java's `Normalizer`, Python's `unicodedata`, IDNA) or Windows
/// "best fit" code-page conversion map to `.`, `/`, `\`, `;` or `%`, so that a backend may
/// see a delimiter where Portico saw a letter.
fn is_look_alike(c: char) -> bool {
    matches!(
        c,
        // `.`: full-width, small, one-dot leader, two-dot leader, ellipsis, ideographic and
        // half-width ideographic full stops, digit full stops (`⒈`), `🄀`.
        '\u{FF0E}'
            | '\u{FE52}'
            | '\u{2024}'
            | '\u{2025}'
            | '\u{2026}'
            | '\u{3002}'
            | '\u{FF61}'
            | '\u{2488}'
            ..='\u{249B}' | '\u{1F100}'
        // `/`: full-width solidus, division slash, fraction slash, big solidus.
        | '\u{FF0F}' | '\u{2215}' | '\u{2044}' | '\u{29F8}'
        // `\`: full-width and small reverse solidus, set minus, reverse solidus operator,
        // big reverse solidus.
        | '\u{FF3C}' | '\u{FE68}' | '\u{2216}' | '\u{29F5}' | '\u{29F9}'
        // `;`: Greek question mark, full-width and small semicolons.
        | '\u{037E}' | '\u{FF1B}' | '\u{FE54}'
        // `%`: full-width and small percent signs.
        | '\u{FF05}' | '\u{FE6A}'
    )
}

/// The path as segmented for the dot-segment checks: unreserved escapes decoded (so `%2e%2e`
/// is `..`), like the match path but before dot-segments are removed.
fn normalised_input(raw: &str) -> Cow<'_, str> {
    if raw.contains('%') {
        Cow::Owned(decode_unreserved(raw))
    } else {
        Cow::Borrowed(raw)
    }
}

/// Segment-level checks (spec §6.1): `;` parameters on dot-segments, `%2F` around them (when
/// allowed at all), and a `..` that would remove an empty segment.
fn check_segments(path: &str, rules: PathRules) -> Result<(), Rejection> {
    if !path.contains('.') {
        return Ok(());
    }
    let is_dot = |s: &str| s == "." || s == "..";
    let rest = path.strip_prefix('/').unwrap_or(path);
    // Segments kept so far: `true` for an empty one (what a slash-merging backend drops).
    let mut kept: Vec<bool> = Vec::new();
    for seg in rest.split('/') {
        if seg.contains(';') && seg.split(';').next().is_some_and(is_dot) {
            return Err(Rejection::DotSegmentParameter);
        }
        if rules.allow_encoded_slashes && seg.contains("%2F") {
            let parts = || seg.split("%2F").map(|p| p.split(';').next().unwrap_or(p));
            if parts().any(is_dot) {
                return Err(Rejection::EncodedSlashDotSegment);
            }
        }
        match seg {
            "." => {}
            ".." => {
                // RFC 3986 §5.2.4 removes the previous segment; when that one is empty, a
                // backend that merges slashes first removes a different one.
                if kept.pop() == Some(true) {
                    return Err(Rejection::DotSegmentAfterEmptySegment);
                }
            }
            s => kept.push(s.is_empty()),
        }
    }
    Ok(())
}

/// Checks an authority (a `Host` header value, an absolute-form target's authority, HTTP/2's
/// `:authority`) against RFC 9110 §7.2 / RFC 3986 §3.2.2–3.2.3: `host [":" port]`, where host
/// is a reg-name (unreserved, pct-encoded, sub-delims; IPv4 is one), or an IPv6 address in
/// brackets, and port is digits up to 65535 (empty allowed). Userinfo is refused (RFC 9110
/// §4.2.4 deprecates it; it must never reach a backend as part of `Host`). The empty
/// authority is valid (HTTP/1.0 without Host, spec §3.2).
pub fn check_authority(authority: &str) -> Result<(), Rejection> {
    // Byte searches rather than `str::contains`/`split_once(char)` (a char searcher) or the
    // `memchr` crate (its SIMD set-up): this runs on every request's Host, which is short.
    if authority.as_bytes().contains(&b'@') {
        return Err(Rejection::Userinfo);
    }
    let port = if let Some(literal) = authority.strip_prefix('[') {
        let (inside, after) = literal.split_once(']').ok_or(Rejection::IpLiteral)?;
        // IPvFuture (`[v1.x]`) is syntax nobody routes; zone IDs are not allowed in URIs.
        inside
            .parse::<Ipv6Addr>()
            .map_err(|_| Rejection::IpLiteral)?;
        match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(Rejection::IpLiteral)?),
        }
    } else {
        let (host, port) = match authority.as_bytes().iter().position(|&b| b == b':') {
            Some(colon) => (&authority[..colon], Some(&authority[colon + 1..])),
            None => (authority, None),
        };
        check_reg_name(host)?;
        port
    };
    match port {
        None | Some("") => Ok(()),
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok() => Ok(()),
        Some(_) => Err(Rejection::Port),
    }
}

/// RFC 3986 §3.2.2 reg-name: unreserved / pct-encoded / sub-delims.
fn check_reg_name(host: &str) -> Result<(), Rejection> {
    let bytes = host.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // One table load per byte: this runs on every request's Host.
        if REG_NAME_BYTE[usize::from(b)] {
            i += 1;
            continue;
        }
        if b == b'%' {
            match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(&h), Some(&l)) if hex_value(h).is_some() && hex_value(l).is_some() => {
                    i += 3;
                    continue;
                }
                _ => return Err(Rejection::HostCharacter),
            }
        }
        return Err(Rejection::HostCharacter);
    }
    Ok(())
}

/// The bytes a reg-name may hold as they are: unreserved and sub-delims (`%` starts an
/// escape, checked apart).
static REG_NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = is_unreserved(b)
            || matches!(
                b,
                b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
            );
        i += 1;
    }
    table
};

/// Whether two authorities name the same origin after RFC 3986 §6.2.3 scheme-based
/// normalisation: host case-insensitive, an empty or absent port equal to the scheme's
/// `default_port`. Both must have passed [`check_authority`].
pub fn same_authority(a: &str, b: &str, default_port: u16) -> bool {
    fn split(authority: &str, default_port: u16) -> (&str, u16) {
        let (host, port) = if authority.starts_with('[') {
            match authority.split_once(']') {
                Some((inside, after)) => (
                    &authority[..=inside.len()],
                    after.strip_prefix(':').unwrap_or(""),
                ),
                None => (authority, ""),
            }
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, port),
                None => (authority, ""),
            }
        };
        (host, port.parse().unwrap_or(default_port))
    }
    let (host_a, port_a) = split(a, default_port);
    let (host_b, port_b) = split(b, default_port);
    port_a == port_b && host_a.eq_ignore_ascii_case(host_b)
}

/// The match path for a request path (no query), spec §3.4: empty becomes `/`; escapes of
/// unreserved characters are decoded and other escapes uppercased (so `%2F` stays opaque);
/// dot-segments are removed. Repeated slashes and case are kept.
pub fn path(raw: &str) -> Cow<'_, str> {
    if raw.is_empty() {
        return Cow::Borrowed("/");
    }
    let decoded = if raw.contains('%') {
        Cow::Owned(decode_unreserved(raw))
    } else {
        Cow::Borrowed(raw)
    };
    if has_dot_segment(&decoded) {
        Cow::Owned(remove_dot_segments(&decoded))
    } else {
        decoded
    }
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_unreserved(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                let value = hi * 16 + lo;
                if is_unreserved(value) {
                    out.push(value as char);
                } else {
                    out.push('%');
                    out.push(bytes[i + 1].to_ascii_uppercase() as char);
                    out.push(bytes[i + 2].to_ascii_uppercase() as char);
                }
                i += 3;
                continue;
            }
        }
        if bytes[i] == b'%' {
            // A `%` that starts no escape is written as `%25`: left bare, it could join with
            // decoded characters after it into a new escape (`%%32%65` → `%2e`), and the
            // result would decode again on a second pass (or at the backend) into a dot-segment.
            // Found by tests/fuzz.rs (the normaliser was not idempotent).
            out.push_str("%25");
            i += 1;
            continue;
        }
        // Copy one whole character (the input is UTF-8).
        let ch_len = raw[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&raw[i..i + ch_len]);
        i += ch_len;
    }
    out
}

/// Whether a path has a `.` or `..` segment.
fn has_dot_segment(path: &str) -> bool {
    (path.contains("/.") || path.starts_with('.'))
        && path.split('/').any(|seg| seg == "." || seg == "..")
}

/// RFC 3986 §5.2.4 for an absolute path; a `..` above the root is dropped.
fn remove_dot_segments(path: &str) -> String {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut result = String::with_capacity(path.len());
    result.push('/');
    result.push_str(&out.join("/"));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_is_stripped() {
        assert_eq!(host("very.specific.com:1234"), "very.specific.com");
        assert_eq!(host("foo.bar.com:"), "foo.bar.com");
        assert_eq!(host("[::1]:8080"), "[::1]");
        assert_eq!(host("[::1]"), "[::1]");
    }

    #[test]
    fn host_is_lowercased_and_trailing_dot_dropped() {
        assert_eq!(host("FOO.Bar.COM"), "foo.bar.com");
        assert_eq!(host("foo.bar.com."), "foo.bar.com");
        assert_eq!(host("foo.bar.com.:80"), "foo.bar.com");
        assert_eq!(host("user@foo.com:80"), "foo.com");
    }

    #[test]
    fn empty_path_is_root() {
        assert_eq!(path(""), "/");
    }

    #[test]
    fn unreserved_escapes_are_decoded() {
        assert_eq!(path("/%66oo/x"), "/foo/x");
        assert_eq!(path("/a%7Eb"), "/a~b");
    }

    #[test]
    fn reserved_escapes_stay_opaque_and_uppercase() {
        assert_eq!(path("/foo%2fbar"), "/foo%2Fbar");
        assert_eq!(path("/foo%2Fbar"), "/foo%2Fbar");
        assert_eq!(path("/a%20b"), "/a%20b");
    }

    /// A `%` that starts no escape is itself escaped (it used to be kept bare, which let it
    /// form a new escape with decoded characters: see the test below).
    #[test]
    fn broken_escapes_have_their_percent_escaped() {
        assert_eq!(path("/a%zz"), "/a%25zz");
        assert_eq!(path("/a%4"), "/a%254");
        assert_eq!(path("/a%"), "/a%25");
    }

    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(path("/bar/../foo/x"), "/foo/x");
        assert_eq!(path("/a/./b"), "/a/b");
        assert_eq!(path("/a/."), "/a/");
        assert_eq!(path("/a/b/.."), "/a/");
        assert_eq!(path("/../../x"), "/x");
        assert_eq!(path("/.."), "/");
        assert_eq!(path("/%2E%2E/x"), "/x");
    }

    #[test]
    fn repeated_slashes_and_case_are_kept() {
        assert_eq!(path("/foo//bar"), "/foo//bar");
        assert_eq!(path("/FOO"), "/FOO");
        assert_eq!(path("/a//../b"), "/a/b");
    }

    /// Found by tests/fuzz.rs: `%%32%65` normalised to `/%2e`, which normalises again to `/`.
    #[test]
    fn a_stray_percent_cannot_form_an_escape_with_decoded_characters() {
        assert_eq!(path("/%%32%65"), "/%252e");
        assert_eq!(path("/a/%%32%65%%32%65/b"), "/a/%252e%252e/b");
        assert_eq!(path("/100%"), "/100%25");
        assert_eq!(path("/%4"), "/%254");
        for p in ["/%%32%65", "/a/%%32%65%%32%65/b", "/100%", "/%4"] {
            assert_eq!(path(&path(p)), path(p), "{p}");
        }
    }

    #[test]
    fn non_ascii_survives() {
        assert_eq!(path("/é%41"), "/éA");
    }

    const STRICT: PathRules = PathRules {
        allow_encoded_slashes: false,
    };
    const OPAQUE_SLASHES: PathRules = PathRules {
        allow_encoded_slashes: true,
    };

    fn checked(raw: &str) -> Result<String, Rejection> {
        request_path(raw, STRICT).map(Cow::into_owned)
    }

    #[test]
    fn normal_paths_pass_unchanged() {
        for raw in [
            "/",
            "/a/b",
            "/a//b",
            "/a/b/",
            "/a;v=1/b",
            "/é",
            "/a%20b",
            "*",
            "/.well-known/x",
        ] {
            assert_eq!(checked(raw).as_deref(), Ok(raw), "{raw}");
        }
    }

    #[test]
    fn encoded_dot_segments_are_resolved_for_forwarding() {
        // spec §6.1: forwarded as matched, so the backend cannot resolve them differently.
        assert_eq!(checked("/public/%2e%2e/admin/x").as_deref(), Ok("/admin/x"));
        assert_eq!(checked("/public/%2E./admin").as_deref(), Ok("/admin"));
        assert_eq!(checked("/public/../admin").as_deref(), Ok("/admin"));
        assert!(forwards_changed("/public/%2e%2e/admin/x", "/admin/x"));
    }

    #[test]
    fn escape_case_alone_is_not_a_change_to_forward() {
        let raw = "/a%c3%a9";
        let matched = checked(raw).unwrap();
        assert_eq!(matched, "/a%C3%A9");
        assert!(!forwards_changed(raw, &matched));
        assert!(forwards_changed("/%66oo", &checked("/%66oo").unwrap()));
    }

    #[test]
    fn encoded_slash_is_rejected() {
        assert_eq!(checked("/foo%2Fbar"), Err(Rejection::EncodedSlash));
        assert_eq!(
            checked("/public/..%2fadmin/x"),
            Err(Rejection::EncodedSlash)
        );
    }

    #[test]
    fn encoded_slash_is_opaque_when_allowed() {
        assert_eq!(
            request_path("/api/vhosts/%2F/q", OPAQUE_SLASHES).as_deref(),
            Ok("/api/vhosts/%2F/q")
        );
        assert_eq!(
            request_path("/foo%2fbar", OPAQUE_SLASHES).as_deref(),
            Ok("/foo%2Fbar")
        );
    }

    #[test]
    fn encoded_slash_next_to_a_dot_segment_is_rejected_even_when_allowed() {
        for raw in [
            "/public/..%2fadmin/x",
            "/public/%2e%2e%2Fadmin",
            "/a/x%2F..",
            "/a/.%2Fb",
            "/a/..;x%2Fb",
        ] {
            assert!(request_path(raw, OPAQUE_SLASHES).is_err(), "{raw}");
        }
        assert_eq!(
            request_path("/public/..%2fadmin/x", OPAQUE_SLASHES),
            Err(Rejection::EncodedSlashDotSegment)
        );
    }

    #[test]
    fn encoded_backslash_is_rejected() {
        assert_eq!(checked("/a%5Cb"), Err(Rejection::EncodedBackslash));
        assert_eq!(
            request_path("/a%5cb", OPAQUE_SLASHES),
            Err(Rejection::EncodedBackslash)
        );
    }

    #[test]
    fn backslash_is_rejected() {
        assert_eq!(checked("/public/..\\admin\\x"), Err(Rejection::Backslash));
        assert_eq!(checked("/a\\b"), Err(Rejection::Backslash));
    }

    #[test]
    fn path_parameter_on_dot_segment_is_rejected() {
        for raw in [
            "/public/..;/admin/x",
            "/public/..;jsessionid=1/admin",
            "/a/.;x/b",
            "/a/%2e%2e;/b",
        ] {
            assert_eq!(checked(raw), Err(Rejection::DotSegmentParameter), "{raw}");
        }
        // Parameters on ordinary segments are data (spec §3.9 row 34).
        assert_eq!(checked("/foo;v=1").as_deref(), Ok("/foo;v=1"));
        assert_eq!(checked("/a/..b;x/c").as_deref(), Ok("/a/..b;x/c"));
    }

    #[test]
    fn dot_segment_after_empty_segment_is_rejected() {
        for raw in [
            "/public//../admin",
            "/public//x/../../admin",
            "/a/.//..",
            "//..",
            "/a//%2e%2e/b",
        ] {
            assert_eq!(
                checked(raw),
                Err(Rejection::DotSegmentAfterEmptySegment),
                "{raw}"
            );
        }
        // `..` over a non-empty segment is the same with or without slash merging.
        assert_eq!(checked("/a//b/../c").as_deref(), Ok("/a//c"));
        assert_eq!(checked("/public/./admin").as_deref(), Ok("/public/admin"));
    }

    #[test]
    fn invalid_or_overlong_utf8_is_rejected() {
        for raw in [
            "/%c0%ae%c0%ae/admin",
            "/%C0%AF",
            "/%e0%80%ae",
            "/%ff",
            "/a%c3",
            "/%ed%a0%80",
        ] {
            assert_eq!(checked(raw), Err(Rejection::InvalidUtf8), "{raw}");
        }
        assert_eq!(checked("/caf%C3%A9").as_deref(), Ok("/caf%C3%A9"));
    }

    #[test]
    fn encoded_nul_is_rejected() {
        assert_eq!(checked("/a%00/b"), Err(Rejection::EncodedNul));
    }

    #[test]
    fn dot_look_alikes_are_rejected() {
        for raw in [
            "/public/\u{FF0E}\u{FF0E}/admin",
            "/public/%EF%BC%8E%EF%BC%8E/admin",
            "/a\u{FF0F}b",
            "/a%E2%88%95b",
            "/a\u{FF3C}b",
            "/a\u{2024}\u{2024}/b",
            "/a/..\u{037E}/b",
        ] {
            assert_eq!(checked(raw), Err(Rejection::LookAlike), "{raw}");
        }
    }

    #[test]
    fn malformed_escape_is_rejected() {
        // `%2%65` decodes to `%2e`: a dot for a backend that decodes twice.
        for raw in ["/a%zz", "/a%", "/a%2", "/%2%65%2%65/admin", "/%a%61"] {
            assert_eq!(checked(raw), Err(Rejection::MalformedEscape), "{raw}");
        }
    }

    #[test]
    fn valid_authorities_pass() {
        for a in [
            "",
            "a.test",
            "A.Test:8080",
            "a.test.",
            "a.test:",
            "10.0.0.7:80",
            "[::1]",
            "[::1]:8443",
            "[2001:db8::1]",
            "xn--bcher-kva.example",
            "a_b.test",
            "a%2Dtest",
            "a.test:65535",
        ] {
            assert_eq!(check_authority(a), Ok(()), "{a}");
        }
    }

    /// The one-pass shortcut of `request_path` answers what the full checks would.
    #[test]
    fn plain_paths_are_matched_and_forwarded_as_they_are() {
        for raw in [
            "/",
            "/api/x",
            "/a//b/",
            "/A-Z_a~z/0-9?",
            "/x;y=z",
            "/+!$&'()*,=",
        ] {
            let got = request_path(raw, STRICT).unwrap();
            assert!(matches!(got, Cow::Borrowed(_)), "{raw}");
            assert_eq!(got, path(raw), "{raw}");
            check_octets(raw, STRICT).unwrap();
            check_segments(raw, STRICT).unwrap();
        }
        // Anything the shortcut leaves to the full checks still gets them.
        assert!(request_path("/a/../b", STRICT).is_ok_and(|p| p == "/b"));
        assert!(request_path("/a\\b", STRICT).is_err());
        assert!(request_path("", STRICT).is_ok_and(|p| p == "/"));
    }

    #[test]
    fn userinfo_in_host_is_rejected() {
        for a in ["x@a.test", "a.test@b.test", "user:pw@a.test:80", "@a.test"] {
            assert_eq!(check_authority(a), Err(Rejection::Userinfo), "{a}");
        }
    }

    #[test]
    fn bad_host_characters_are_rejected() {
        for a in [
            "a.test/evil",
            "a.test evil",
            "<script>",
            "a.test?x",
            "a.test#x",
            "a\"b",
            "a%zz",
            "a%4",
            "\u{e9}.test",
        ] {
            assert_eq!(check_authority(a), Err(Rejection::HostCharacter), "{a}");
        }
    }

    #[test]
    fn bad_ports_are_rejected() {
        for a in [
            "a.test:80:80",
            "a.test:65536",
            "a.test:8o",
            "a.test:-1",
            "a.test:+80",
            "[::1]:x",
            "[::1]:99999",
        ] {
            assert_eq!(check_authority(a), Err(Rejection::Port), "{a}");
        }
    }

    #[test]
    fn bad_ip_literals_are_rejected() {
        for a in [
            "[::1",
            "[a.test]",
            "[v1.x]",
            "[::1]80",
            "[fe80::1%25eth0]",
            "[]",
        ] {
            assert_eq!(check_authority(a), Err(Rejection::IpLiteral), "{a}");
        }
    }

    #[test]
    fn authorities_compare_after_scheme_normalisation() {
        assert!(same_authority("a.test", "A.TEST:80", 80));
        assert!(same_authority("a.test:", "a.test", 80));
        assert!(same_authority("[::1]:443", "[::1]", 443));
        assert!(!same_authority("a.test", "b.test", 80));
        assert!(!same_authority("a.test:8080", "a.test", 80));
        assert!(!same_authority("a.test:443", "a.test", 80));
    }
}
