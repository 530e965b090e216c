//! ingress-nginx's header ConfigMaps, typed at translate time: the annotation `custom-headers`
//! (response headers of one Ingress, gated by the ConfigMap key
//! `global-allowed-response-headers`), and the controller ConfigMap keys `add-headers`
//! (response headers of every answer) and `proxy-set-headers` (upstream request headers).
//! `incremental::derive` puts an Ingress's headers into its policy, `translate` the global
//! ones into `Global`; `proxy/custom_headers.rs` applies them per request.
//!
//! Sources: ingress-nginx `internal/ingress/annotations/customheaders/main.go`,
//! `internal/ingress/controller/nginx.go` (`add-headers`, `proxy-set-headers`),
//! `internal/ingress/controller/template/configmap.go` (`global-allowed-response-headers`),
//! `rootfs/etc/nginx/template/nginx.tmpl` (`more_set_headers`, `proxy_set_header`).
//!
//! Values are never evaluated. The annotation's values are literal in ingress-nginx too (its
//! template escapes `$`: e2e `customheaders.go` expects `$remote_addr` verbatim). The two keys'
//! values were nginx strings, where `$host` is a variable: Portico expands none, so such a
//! header is skipped with a condition rather than sent with a value nginx would not have sent.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::networking::v1::Ingress;

use super::annotations::{NGINX, PORTICO};
use super::incremental::Key;
use crate::routing::{CustomHeaders, HeaderList};

/// The annotation name, without prefix.
pub const CUSTOM_HEADERS: &str = "custom-headers";
/// The controller ConfigMap's keys.
pub const ADD_HEADERS: &str = "add-headers";
pub const PROXY_SET_HEADERS: &str = "proxy-set-headers";
pub const ALLOWED_RESPONSE_HEADERS: &str = "global-allowed-response-headers";

/// What Ingresses' `custom-headers` depend on in the controller ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// `global-allowed-response-headers`: the only names a `custom-headers` ConfigMap may
    /// set, compared exactly as written (ingress-nginx: `slices.Contains`, case-sensitive).
    /// Empty (the default): no `custom-headers` ConfigMap is usable.
    pub allowed_response_headers: Vec<String>,
}

/// Headers that frame a message or belong to one connection: Portico sets them itself, and
/// one from a ConfigMap could desynchronise the framing between Portico and a client or an
/// upstream (request smuggling). nginx computes most of these itself too.
const MANAGED: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether Portico refuses to take `name` from a ConfigMap (see [`MANAGED`]).
pub(super) fn managed(name: &str) -> bool {
    MANAGED.iter().any(|m| m.eq_ignore_ascii_case(name))
}

/// ingress-nginx's header-name rule for `custom-headers` and the allowed list
/// (`customheaders.go`: `^[a-zA-Z\d\-_]+$`).
pub(super) fn nginx_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// At most 64 characters of a value, for messages.
fn clip(value: &str) -> String {
    match value.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &value[..i]),
        None => value.to_string(),
    }
}

/// `namespace/name`, both DNS names (what ingress-nginx's store keys are).
pub(super) fn namespaced(value: &str) -> Option<(String, String)> {
    let (ns, name) = value.trim().split_once('/')?;
    (super::is_dns1123_subdomain(ns) && super::is_dns1123_subdomain(name))
        .then(|| (ns.to_string(), name.to_string()))
}

/// The keys of the controller ConfigMap this module reads that need no other object, and one
/// message per invalid value, starting with the key (`configmap::from_data` makes them
/// conditions). `add-headers` and `proxy-set-headers` are only checked for their form here;
/// [`global_headers`] reads the ConfigMaps they name.
pub fn from_configmap(data: &BTreeMap<String, String>) -> (Settings, Vec<String>) {
    let mut settings = Settings::default();
    let mut problems = Vec::new();
    if let Some(value) = data.get(ALLOWED_RESPONSE_HEADERS) {
        // configmap.go: split on commas, trim; names failing `ValidHeader` are dropped with a
        // warning ("Global allowed response headers denied").
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if nginx_header_name(name) {
                settings.allowed_response_headers.push(name.to_string());
            } else {
                problems.push(format!(
                    "{ALLOWED_RESPONSE_HEADERS}: {:?} is not a header name; skipped, the \
                     other names apply",
                    clip(name)
                ));
            }
        }
        settings.allowed_response_headers.sort();
        settings.allowed_response_headers.dedup();
    }
    for key in [ADD_HEADERS, PROXY_SET_HEADERS] {
        if let Some(value) = data.get(key) {
            if !value.trim().is_empty() && namespaced(value).is_none() {
                problems.push(format!(
                    "{key}: {:?} is not NAMESPACE/NAME of a ConfigMap; no headers are added",
                    clip(value)
                ));
            }
        }
    }
    (settings, problems)
}

/// The ConfigMap `namespace/name` among `config_maps`.
pub(super) fn find<'a>(
    config_maps: &'a [Arc<ConfigMap>],
    ns: &str,
    name: &str,
) -> Option<&'a ConfigMap> {
    config_maps
        .iter()
        .find(|c| {
            c.metadata.namespace.as_deref() == Some(ns) && c.metadata.name.as_deref() == Some(name)
        })
        .map(|c| c.as_ref())
}

/// Whether a value holds what nginx would read as a variable (`$host`, `${msec}`).
pub(super) fn nginx_variable(value: &str) -> Option<&str> {
    let at = value
        .match_indices('$')
        .map(|(i, _)| &value[i..])
        .find(|rest| {
            rest[1..]
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'{')
        })?;
    let end = at[1..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '{' || c == '}'))
        .map_or(at.len(), |i| i + 1);
    Some(&at[..end])
}

/// The headers of one ConfigMap's `data` (key order), each name an HTTP token and each value
/// a field value; a header that is not is skipped with a message. `expand`: the values were
/// nginx strings (`add-headers`, `proxy-set-headers`), so variables are refused.
fn headers_of(
    data: &BTreeMap<String, String>,
    what: &str,
    expand: bool,
    problems: &mut Vec<String>,
) -> HeaderList {
    let mut list = Vec::new();
    for (name, value) in data {
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            problems.push(format!(
                "{what}: {:?} is not a header name; skipped",
                clip(name)
            ));
            continue;
        };
        if managed(name) {
            problems.push(format!(
                "{what}: header {name} frames the message or belongs to the connection, which \
                 Portico manages; skipped"
            ));
            continue;
        }
        if expand {
            if let Some(variable) = nginx_variable(value) {
                problems.push(format!(
                    "{what}: header {name}: the nginx variable {} is not expanded by Portico; \
                     skipped",
                    clip(variable)
                ));
                continue;
            }
        }
        let Ok(field) = HeaderValue::from_str(value) else {
            problems.push(format!(
                "{what}: header {name}: {:?} is not a header value (control characters or line \
                 breaks); skipped",
                clip(value)
            ));
            continue;
        };
        list.push((header, field));
    }
    list
}

/// `add-headers` and `proxy-set-headers`: the headers of the ConfigMaps they name. A missing
/// ConfigMap adds nothing (ingress-nginx logs "Error reading ConfigMap" and goes on).
pub fn global_headers(
    data: &BTreeMap<String, String>,
    config_maps: &[Arc<ConfigMap>],
) -> (HeaderList, HeaderList, Vec<String>) {
    let mut problems = Vec::new();
    let mut read = |key: &str| -> HeaderList {
        let Some((ns, name)) = data.get(key).and_then(|v| namespaced(v)) else {
            return Vec::new();
        };
        match find(config_maps, &ns, &name) {
            None => {
                problems.push(format!(
                    "{key}: names ConfigMap {ns}/{name}, which does not exist; no headers are \
                     added"
                ));
                Vec::new()
            }
            Some(map) => headers_of(
                map.data.as_ref().unwrap_or(&BTreeMap::new()),
                &format!("{key} (ConfigMap {ns}/{name})"),
                true,
                &mut problems,
            ),
        }
    };
    let add = read(ADD_HEADERS);
    let set = read(PROXY_SET_HEADERS);
    (add, set, problems)
}

/// The annotation `portico.dev/NAME`, else `nginx.ingress.kubernetes.io/NAME`, with its key.
fn get<'a>(ingress: &'a Ingress, name: &str) -> Option<(String, &'a String)> {
    let annotations = ingress.metadata.annotations.as_ref()?;
    for prefix in [PORTICO, NGINX] {
        let key = format!("{prefix}{name}");
        if let Some(value) = annotations.get(&key) {
            return Some((key, value));
        }
    }
    None
}

/// The ConfigMap an Ingress's `custom-headers` names: `namespace/name`, or a name in the
/// Ingress's namespace.
fn reference(value: &str, namespace: &str) -> (String, String) {
    match value.trim().split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => (namespace.to_string(), value.trim().to_string()),
    }
}

/// The ConfigMaps an Ingress reads, for the incremental cache.
pub(super) fn config_maps_read(ingress: &Ingress, namespace: &str) -> Vec<Key> {
    get(ingress, CUSTOM_HEADERS)
        .map(|(_, value)| reference(value, namespace))
        .into_iter()
        .collect()
}

/// The Ingress's `custom-headers`, and a message when ingress-nginx would deny its paths
/// (`NewLocationDenied`: its paths answer 503, e2e `customheaders.go` "should return status
/// code 503 when custom-headers is configured with an invalid secret"): the ConfigMap is
/// missing or in another namespace, or a header is not a valid name or value or not in
/// `global-allowed-response-headers`. `None` without the annotation.
pub(super) fn custom_headers(
    ingress: &Ingress,
    namespace: &str,
    settings: &Settings,
    config_maps: &[Arc<ConfigMap>],
) -> Option<(CustomHeaders, Option<String>)> {
    let (key, value) = get(ingress, CUSTOM_HEADERS)?;
    let denied = |why: String| {
        Some((
            CustomHeaders {
                headers: Vec::new(),
                denied: true,
            },
            Some(format!(
                "annotation {key}: {:?} {why}; every path of this Ingress answers 503, as in \
                 ingress-nginx",
                clip(value)
            )),
        ))
    };
    let (ns, name) = reference(value, namespace);
    if ns != namespace {
        // ingress-nginx's documentation: "Only ConfigMaps on the same namespace are allowed".
        return denied("names a ConfigMap in another namespace".to_string());
    }
    let Some(map) = find(config_maps, &ns, &name) else {
        return denied(format!("names ConfigMap {ns}/{name}, which does not exist"));
    };
    let mut headers = Vec::new();
    for (header, text) in map.data.iter().flatten() {
        if !nginx_header_name(header) {
            return denied(format!(
                "ConfigMap {ns}/{name}: {:?} is not a header name",
                clip(header)
            ));
        }
        if managed(header) {
            return denied(format!(
                "ConfigMap {ns}/{name}: header {header} frames the message or belongs to the \
                 connection, which Portico manages"
            ));
        }
        if !settings.allowed_response_headers.contains(header) {
            return denied(format!(
                "ConfigMap {ns}/{name}: header {header} is not in the controller ConfigMap's \
                 global-allowed-response-headers"
            ));
        }
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(header.as_bytes()),
            HeaderValue::from_str(text),
        ) else {
            return denied(format!(
                "ConfigMap {ns}/{name}: header {header} has a value that is not a header value"
            ));
        };
        headers.push((n, v));
    }
    Some((
        CustomHeaders {
            headers,
            denied: false,
        },
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_variables_are_found() {
        assert_eq!(nginx_variable("$host"), Some("$host"));
        assert_eq!(nginx_variable("t=${msec} x"), Some("${msec}"));
        assert_eq!(nginx_variable("a-$remote_addr,b"), Some("$remote_addr"));
        assert_eq!(nginx_variable("costs $5"), None);
        assert_eq!(nginx_variable("$"), None);
        assert_eq!(nginx_variable("plain"), None);
    }

    #[test]
    fn allowed_list_drops_bad_names() {
        let data: BTreeMap<String, String> = [(
            ALLOWED_RESPONSE_HEADERS.to_string(),
            "X-One, x two,X-One,X_Three".to_string(),
        )]
        .into();
        let (settings, problems) = from_configmap(&data);
        assert_eq!(settings.allowed_response_headers, vec!["X-One", "X_Three"]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with(ALLOWED_RESPONSE_HEADERS));
    }

    #[test]
    fn header_references_must_be_namespaced() {
        let data: BTreeMap<String, String> = [
            (ADD_HEADERS.to_string(), "just-a-name".to_string()),
            (PROXY_SET_HEADERS.to_string(), "ns/name".to_string()),
        ]
        .into();
        let (_, problems) = from_configmap(&data);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with(ADD_HEADERS));
    }

    #[test]
    fn bad_headers_are_skipped_and_the_rest_kept() {
        let data: BTreeMap<String, String> = [
            ("X-Good".to_string(), "fine value".to_string()),
            ("X Space".to_string(), "v".to_string()),
            ("X-Var".to_string(), "$host".to_string()),
            ("X-Break".to_string(), "a\r\nInjected: yes".to_string()),
            ("Transfer-Encoding".to_string(), "chunked".to_string()),
            ("content-length".to_string(), "5".to_string()),
        ]
        .into();
        let mut problems = Vec::new();
        let list = headers_of(&data, "add-headers", true, &mut problems);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].0, "x-good");
        assert_eq!(problems.len(), 5, "{problems:?}");
    }
}
