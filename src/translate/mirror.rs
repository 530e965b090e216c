//! ingress-nginx's `mirror-target`, `mirror-host` and `mirror-request-body`, typed at
//! translate time into a [`Mirror`] carried by the Ingress's policy; `proxy/mirror.rs` sends
//! the copies. Source: ingress-nginx `internal/ingress/annotations/mirror/main.go`,
//! `template.go` (`buildMirrorLocations`: `proxy_set_header Host`, `proxy_pass TARGET`).
//!
//! The target's nginx variables (`$request_uri`, `$uri`, `$args`, `$query_string`,
//! `$is_args`, `$host`) are parsed into pieces once, never evaluated as nginx text; any other
//! variable, or one in the host, is a condition and the Ingress mirrors nothing.

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderValue;

use super::rewrite::shorten;
use crate::routing::{Mirror, MirrorPart};

/// The annotation names, without prefix.
pub const MIRROR_TARGET: &str = "mirror-target";
pub const MIRROR_HOST: &str = "mirror-host";
pub const MIRROR_REQUEST_BODY: &str = "mirror-request-body";

/// The Ingress's mirror, if `mirror-target` is set and usable.
pub(super) fn parse<'a>(
    get: &dyn Fn(&str) -> Option<(String, &'a String)>,
    invalid: &mut dyn FnMut(&str, &str, &str),
) -> Option<Arc<Mirror>> {
    let mut invalid = |key: &str, value: &str, why: &str| invalid(key, &shorten(value), why);
    let request_body = match get(MIRROR_REQUEST_BODY) {
        None => true,
        Some((key, value)) => match value.trim() {
            "on" => true,
            "off" => false,
            _ => {
                invalid(&key, value, "is neither \"on\" nor \"off\"");
                true
            }
        },
    };
    let (key, value) = get(MIRROR_TARGET)?;
    let mut mirror = match target(value.trim()) {
        Ok(m) => m,
        Err(why) => {
            invalid(&key, value, &format!("{why}: this Ingress mirrors nothing"));
            return None;
        }
    };
    mirror.request_body = request_body;
    if let Some((key, value)) = get(MIRROR_HOST) {
        match HeaderValue::from_str(value.trim())
            .ok()
            .filter(|_| host_name_ok(value.trim()))
        {
            Some(h) => mirror.host = h,
            None => invalid(&key, value, "is not a host name; the target's host is sent"),
        }
    }
    Some(Arc::new(mirror))
}

/// `http(s)://host[:port][/path-with-variables]`.
fn target(value: &str) -> Result<Mirror, String> {
    let (https, rest) = if let Some(rest) = value.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = value.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err("is not an http:// or https:// URL".into());
    };
    let end = rest.find(['/', '?', '$']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    // Right after the host only `$uri` and `$request_uri` fit: they start with `/`.
    let starts_path = ["$uri", "${uri}", "$request_uri", "${request_uri}"]
        .iter()
        .any(|v| path.starts_with(v));
    if path.starts_with('?') || (path.starts_with('$') && !starts_path) {
        return Err("has a variable or a query in its host".into());
    }
    let (host, _port) = split_port(authority).ok_or("has no usable host and port")?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        // Cloud metadata and "any" addresses are never a mirror (docs/decisions.md).
        let ip = ip.to_canonical();
        let refused = match ip {
            IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified(),
            IpAddr::V6(v6) => v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80,
        };
        if refused {
            return Err("names a link-local or unspecified address".into());
        }
    } else if !host_name_ok(host) {
        return Err("has no usable host and port".into());
    }
    let (pieces, literal) = template(path)?;
    let host_header =
        HeaderValue::from_str(bare).map_err(|_| "has no usable host and port".to_string())?;
    Ok(Mirror {
        target: value.to_string(),
        https,
        authority: authority.to_string(),
        path: pieces,
        literal_path: literal,
        host: host_header,
        request_body: true,
    })
}

/// `host` and the port (`None`: the scheme's).
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.is_empty() {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (_, after) = rest.split_once(']')?;
        let host = &authority[..authority.len() - after.len()];
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match authority.split_once(':') {
        Some((host, p)) => Some((host, Some(p.parse().ok()?))),
        None => Some((authority, None)),
    }
}

fn host_name_ok(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The path template; `true` when it has no variable.
fn template(path: &str) -> Result<(Vec<MirrorPart>, bool), String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = path;
    let mut variables = false;
    while let Some(i) = rest.find('$') {
        literal.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(inner) => {
                let end = inner.find('}').ok_or("has an unclosed ${")?;
                (&inner[..end], &inner[end + 1..])
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        let part = match name {
            "request_uri" => MirrorPart::RequestUri,
            "uri" => MirrorPart::Uri,
            "args" | "query_string" => MirrorPart::Args,
            "is_args" => MirrorPart::IsArgs,
            "host" => MirrorPart::Host,
            other => {
                return Err(format!(
                    "uses ${other}, which Portico does not fill in ($request_uri, $uri, $args, $query_string, $is_args, $host)"
                ))
            }
        };
        if !literal.is_empty() {
            parts.push(MirrorPart::Literal(std::mem::take(&mut literal)));
        }
        parts.push(part);
        variables = true;
        rest = tail;
    }
    literal.push_str(rest);
    if literal
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'"' || b == b'#')
    {
        return Err("has characters a request-target cannot carry".into());
    }
    if !literal.is_empty() {
        parts.push(MirrorPart::Literal(literal));
    }
    Ok((parts, !variables))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e2e_targets_parse() {
        // e2e annotations/mirror.go "should set mirror-target to http://localhost/mirror".
        let m = target("http://localhost/mirror").unwrap();
        assert!(!m.https);
        assert_eq!(m.authority, "localhost");
        assert_eq!(m.path, vec![MirrorPart::Literal("/mirror".into())]);
        assert!(m.literal_path);
        assert_eq!(m.host, "localhost");
        // e2e "should set mirror-target to https://test.env.com/$request_uri".
        let m = target("https://test.env.com/$request_uri").unwrap();
        assert!(m.https);
        assert_eq!(
            m.path,
            vec![MirrorPart::Literal("/".into()), MirrorPart::RequestUri]
        );
        assert!(!m.literal_path);
        assert_eq!(m.host, "test.env.com");
        let m = target("http://10.0.0.1:8080${uri}?x=1&$args").unwrap();
        assert_eq!(m.authority, "10.0.0.1:8080");
        assert_eq!(
            m.path,
            vec![
                MirrorPart::Uri,
                MirrorPart::Literal("?x=1&".into()),
                MirrorPart::Args
            ]
        );
    }

    #[test]
    fn unusable_targets_are_refused() {
        for bad in [
            "localhost/mirror",
            "ftp://a.example/",
            "http://$host/",
            "http://a.example/$remote_addr",
            "http://169.254.169.254/latest",
            "http://[fe80::1]/",
            "http://0.0.0.0/",
            "http://a.example:99999/",
            "http://a.example/${uri",
            "http://a.example/a b",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }
}
