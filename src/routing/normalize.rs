//! Request host and path normalisation for matching (spec §3.2, §3.4).
//!
//! Only the *match* host and path are normalised; what is forwarded upstream is untouched.

use std::borrow::Cow;

/// The match host for an authority (`Host` header value or URI authority), spec §3.2 steps 2–4:
/// drop userinfo and port, lowercase ASCII, drop one trailing dot.
pub fn host(authority: &str) -> Cow<'_, str> {
    let authority = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let without_port = if authority.starts_with('[') {
        // `[v6]` or `[v6]:port`: keep the bracketed literal.
        match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        }
    } else {
        match authority.rfind(':') {
            Some(colon) if authority[colon + 1..].bytes().all(|b| b.is_ascii_digit()) => {
                &authority[..colon]
            }
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

fn is_unreserved(b: u8) -> bool {
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
}
