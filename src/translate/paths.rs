//! Rule host and rule path validation and normalisation (spec §1.1, §3.4, §3.5), used by
//! translate before anything reaches the routing table.

use std::net::IpAddr;

use crate::routing::{normalize, HostMatch, PathType};

/// Why a rule host or path was refused; the message of the condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("host {0:?} is an IP address, not a DNS name")]
    HostIsIp(String),
    #[error("host {0:?} is not a lowercase DNS-1123 subdomain or *. wildcard of one")]
    BadHost(String),
    #[error("path {path:?} ({path_type}): {why}")]
    BadPath {
        path: String,
        path_type: String,
        why: &'static str,
    },
    #[error("path {path:?}: unknown pathType {path_type:?}")]
    UnknownPathType { path: String, path_type: String },
}

/// Whether `name` is a DNS-1123 subdomain: ≤253 characters, dot-separated labels of
/// `[a-z0-9-]` that start and end alphanumeric (spec §1.1).
pub fn is_dns1123_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns1123_label_chars)
}

fn is_dns1123_label_chars(label: &str) -> bool {
    let bytes = label.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && bytes.iter().all(|b| alnum(b) || *b == b'-')
        }
        _ => false,
    }
}

/// Validates a rule host (spec §1.1) and turns it into the vhost key (spec §3.3).
/// `None` and `""` are the hostless vhost.
pub fn host_match(host: Option<&str>) -> Result<HostMatch, PathError> {
    let host = match host {
        None | Some("") => return Ok(HostMatch::Any),
        Some(h) => h,
    };
    // spec §1.1: never an IP address (an IPv4 literal would otherwise pass the DNS syntax).
    if host.parse::<IpAddr>().is_ok() {
        return Err(PathError::HostIsIp(host.to_string()));
    }
    if let Some(suffix) = host.strip_prefix("*.") {
        // spec §1.1: `*.` followed by a subdomain; the whole string is ≤253 characters.
        if host.len() <= 253 && is_dns1123_subdomain(suffix) {
            return Ok(HostMatch::Wildcard(suffix.to_string()));
        }
        return Err(PathError::BadHost(host.to_string()));
    }
    if is_dns1123_subdomain(host) {
        Ok(HostMatch::Exact(host.to_string()))
    } else {
        Err(PathError::BadHost(host.to_string()))
    }
}

/// Validates a rule path for its pathType (spec §1.1) and returns the path type and the path
/// normalised for matching (spec §3.4 step 5).
pub fn rule_path(path: Option<&str>, path_type: &str) -> Result<(PathType, String), PathError> {
    let raw = path.unwrap_or_default();
    let bad = |why: &'static str| PathError::BadPath {
        path: raw.to_string(),
        path_type: path_type.to_string(),
        why,
    };
    let kind = match path_type {
        "Exact" => PathType::Exact,
        "Prefix" => PathType::Prefix,
        "ImplementationSpecific" => PathType::ImplementationSpecific,
        _ => {
            return Err(PathError::UnknownPathType {
                path: raw.to_string(),
                path_type: path_type.to_string(),
            })
        }
    };
    match kind {
        PathType::Exact | PathType::Prefix => {
            // spec §1.1: the API-server syntax for Exact and Prefix paths.
            if !raw.starts_with('/') {
                return Err(bad("must begin with /"));
            }
            if raw.contains("//") {
                return Err(bad("must not contain //"));
            }
            if raw.contains("/./") || raw.contains("/../") {
                return Err(bad("must not contain dot-segments"));
            }
            if raw.contains("%2f") || raw.contains("%2F") {
                return Err(bad("must not contain %2F"));
            }
            if raw.ends_with("/.") || raw.ends_with("/..") {
                return Err(bad("must not end with a dot-segment"));
            }
        }
        PathType::ImplementationSpecific => {
            // spec §1.1, §3.5: empty means `/`; otherwise it must begin with `/`, nothing else.
            if !raw.is_empty() && !raw.starts_with('/') {
                return Err(bad("must begin with /"));
            }
        }
    }
    // spec §3.4 step 5: rule paths get the request-path treatment (escapes, dot-segments).
    Ok((kind, normalize::path(raw).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_follow_dns1123() {
        assert_eq!(host_match(None), Ok(HostMatch::Any));
        assert_eq!(host_match(Some("")), Ok(HostMatch::Any));
        assert_eq!(
            host_match(Some("foo.bar.com")),
            Ok(HostMatch::Exact("foo.bar.com".into()))
        );
        assert_eq!(
            host_match(Some("*.foo.com")),
            Ok(HostMatch::Wildcard("foo.com".into()))
        );
        for bad in [
            "*",
            "*.",
            "Foo.com",
            "foo.com.",
            "foo.com:80",
            "10.0.0.7",
            "::1",
            "-a.com",
            "a-.com",
            "a..b",
            "*.*.foo",
            "foo.*.com",
            "a_b.com",
            "föö.com",
        ] {
            assert!(host_match(Some(bad)).is_err(), "{bad}");
        }
        assert!(host_match(Some(&"a".repeat(254))).is_err());
        assert!(host_match(Some(&"a".repeat(253))).is_ok());
    }

    #[test]
    fn exact_and_prefix_paths_follow_api_syntax() {
        for bad in [
            "", "foo", "//", "/a//b", "/a/./b", "/a/../b", "/a%2fb", "/a%2Fb", "/a/.", "/a/..",
        ] {
            assert!(rule_path(Some(bad), "Prefix").is_err(), "{bad}");
            assert!(rule_path(Some(bad), "Exact").is_err(), "{bad}");
        }
        assert!(rule_path(None, "Exact").is_err());
        assert_eq!(
            rule_path(Some("/%66oo"), "Prefix"),
            Ok((PathType::Prefix, "/foo".into()))
        );
    }

    #[test]
    fn implementation_specific_paths_are_literal() {
        assert_eq!(
            rule_path(None, "ImplementationSpecific"),
            Ok((PathType::ImplementationSpecific, "/".into()))
        );
        assert_eq!(
            rule_path(Some("/a//b/.*"), "ImplementationSpecific"),
            Ok((PathType::ImplementationSpecific, "/a//b/.*".into()))
        );
        assert!(rule_path(Some("a"), "ImplementationSpecific").is_err());
        assert!(rule_path(Some("/a"), "").is_err());
        assert!(rule_path(Some("/a"), "Regex").is_err());
    }
}
