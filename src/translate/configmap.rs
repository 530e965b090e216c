//! The controller ConfigMap (`--configmap`, `ingress-nginx.md` §4): its `data` parsed into a
//! typed [`Global`] at translate time, published with the table. Each invalid value is a
//! condition on the ConfigMap and the default applies; keys Portico does not implement are
//! listed in one warning. Keys behave as ingress-nginx's
//! `docs/user-guide/nginx-configuration/configmap.md` says.

use std::collections::BTreeMap;

use crate::routing::Global;
use crate::source::Snapshot;

use super::{Condition, ObjectRef, Options, Reason};

/// The keys Portico implements, sorted. Keys other modules parse from [`Global::data`] are
/// added here by those modules' owners when they wire their `from_configmap`.
pub const IMPLEMENTED: &[&str] = &[
    "allow-snippet-annotations",
    "brotli-level",
    "brotli-min-length",
    "brotli-types",
    "default-ssl-certificate",
    "enable-brotli",
    "gzip-level",
    "gzip-min-length",
    "gzip-types",
    "log-format-escape-json",
    "log-format-escape-none",
    "log-format-upstream",
    "ssl-redirect",
    "use-gzip",
];

/// Parses the controller ConfigMap `options.configmap` names, if any. Returns ingress-nginx's
/// defaults (and a condition when a ConfigMap is named but absent) otherwise.
pub fn parse(snapshot: &Snapshot, options: &Options) -> (Global, Vec<Condition>) {
    let mut conditions = Vec::new();
    let Some((namespace, name)) = &options.configmap else {
        return (Global::default(), conditions);
    };
    let object = ObjectRef {
        kind: "ConfigMap".to_string(),
        namespace: namespace.clone(),
        name: name.clone(),
    };
    let Some(config_map) = snapshot.config_map(namespace, name) else {
        conditions.push(Condition {
            object,
            reason: Reason::ConfigMapNotFound,
            message: format!(
                "--configmap names {namespace}/{name}, which does not exist; ingress-nginx's defaults apply"
            ),
        });
        return (Global::default(), conditions);
    };
    let data = config_map.data.clone().unwrap_or_default();
    let global = from_data(data, &object, &mut conditions);
    (global, conditions)
}

/// The typed settings of `data`; problems are pushed onto `conditions` about `object`.
pub fn from_data(
    data: BTreeMap<String, String>,
    object: &ObjectRef,
    conditions: &mut Vec<Condition>,
) -> Global {
    let mut global = Global::with_data(data.clone());
    let mut invalid = |key: &str, value: &str, why: &str| {
        conditions.push(Condition {
            object: object.clone(),
            reason: Reason::InvalidConfigMapKey,
            message: format!("{key}: {value:?} {why}; the default applies"),
        });
    };
    let get = |key: &str| data.get(key).map(String::as_str);

    if let Some(v) = get("ssl-redirect") {
        match parse_bool(v) {
            Some(b) => global.ssl_redirect = Some(b),
            None => invalid("ssl-redirect", v, "is not a boolean"),
        }
    }
    if let Some(v) = get("default-ssl-certificate") {
        match namespaced(v) {
            Some(pair) => global.default_ssl_certificate = Some(pair),
            None => invalid("default-ssl-certificate", v, "is not NAMESPACE/NAME"),
        }
    }
    if let Some(v) = get("allow-snippet-annotations") {
        match parse_bool(v) {
            // Snippets are never interpreted (`ingress-nginx.md` §3): `true` cannot be honoured.
            Some(true) => conditions.push(Condition {
                object: object.clone(),
                reason: Reason::UnsupportedConfigMapKey,
                message: "allow-snippet-annotations: \"true\" is treated as \"false\": Portico never interprets snippets".to_string(),
            }),
            Some(false) => {}
            None => invalid("allow-snippet-annotations", v, "is not a boolean"),
        }
    }

    // Response compression (routing/compression.rs; issue 13).
    let (compression, problems) = crate::routing::compression::from_configmap(&data);
    global.compression = compression
        .enabled()
        .then(|| std::sync::Arc::new(compression));
    // The access log's template (routing/log_format.rs; issue 13).
    let (log_format, log_problems) = crate::routing::log_format::from_configmap(&data);
    global.log_format = log_format;
    for message in problems.into_iter().chain(log_problems) {
        conditions.push(Condition {
            object: object.clone(),
            reason: Reason::InvalidConfigMapKey,
            message,
        });
    }

    let unsupported: Vec<&str> = data
        .keys()
        .map(String::as_str)
        .filter(|k| !IMPLEMENTED.contains(k))
        .collect();
    if !unsupported.is_empty() {
        conditions.push(Condition {
            object: object.clone(),
            reason: Reason::UnsupportedConfigMapKey,
            message: format!(
                "keys Portico does not implement, ignored: {}",
                unsupported.join(", ")
            ),
        });
    }
    global
}

/// Go's `strconv.ParseBool`, which ingress-nginx's ConfigMap decoding uses.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `NAMESPACE/NAME`, both non-empty.
fn namespaced(value: &str) -> Option<(String, String)> {
    match value.trim().split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Some((ns.to_string(), name.to_string()))
        }
        _ => None,
    }
}

/// `options` with what the ConfigMap overrides among the flags translate reads
/// (`ingress-nginx.md` §4: the ConfigMap wins).
pub fn effective_options(options: &Options, global: &Global) -> Option<Options> {
    if global.ssl_redirect.is_none() && global.default_ssl_certificate.is_none() {
        return None;
    }
    let mut effective = options.clone();
    if let Some(b) = global.ssl_redirect {
        effective.ssl_redirect = b;
    }
    if let Some(pair) = &global.default_ssl_certificate {
        effective.default_ssl_certificate = Some(pair.clone());
    }
    Some(effective)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use std::sync::Arc;

    fn snapshot(data: serde_json::Value) -> Snapshot {
        let map: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "portico", "namespace": "portico"},
            "data": data
        }))
        .unwrap();
        Snapshot {
            config_maps: vec![Arc::new(map)],
            ..Snapshot::default()
        }
    }

    fn options() -> Options {
        Options {
            configmap: Some(("portico".into(), "portico".into())),
            ..Options::default()
        }
    }

    #[test]
    fn no_flag_means_defaults_and_no_condition() {
        let (global, conditions) = parse(&snapshot(serde_json::json!({})), &Options::default());
        assert_eq!(global, Global::default());
        assert!(conditions.is_empty());
    }

    #[test]
    fn a_missing_configmap_is_a_condition_and_defaults_apply() {
        let (global, conditions) = parse(&Snapshot::default(), &options());
        assert_eq!(global, Global::default());
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, Reason::ConfigMapNotFound);
        assert_eq!(conditions[0].object.kind, "ConfigMap");
        assert_eq!(
            conditions[0].object.to_string(),
            "ConfigMap portico/portico"
        );
    }

    #[test]
    fn unimplemented_keys_are_listed_in_one_warning() {
        let (global, conditions) = parse(
            &snapshot(serde_json::json!({"zz-unknown": "1", "aa-unknown": "2"})),
            &options(),
        );
        assert_eq!(global.data().len(), 2, "data stays readable");
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, Reason::UnsupportedConfigMapKey);
        assert!(conditions[0].message.ends_with("aa-unknown, zz-unknown"));
    }

    #[test]
    fn ssl_redirect_overrides_the_flag_and_garbage_keeps_it() {
        let (global, conditions) = parse(
            &snapshot(serde_json::json!({"ssl-redirect": "false"})),
            &options(),
        );
        assert!(conditions.is_empty());
        assert_eq!(global.ssl_redirect, Some(false));
        let effective = effective_options(&options(), &global).unwrap();
        assert!(!effective.ssl_redirect);

        let (global, conditions) = parse(
            &snapshot(serde_json::json!({"ssl-redirect": "maybe"})),
            &options(),
        );
        assert_eq!(global.ssl_redirect, None);
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, Reason::InvalidConfigMapKey);
        assert!(conditions[0].message.starts_with("ssl-redirect: \"maybe\""));
        assert!(effective_options(&options(), &global).is_none());
    }

    #[test]
    fn default_ssl_certificate_overrides_the_flag() {
        let (global, conditions) = parse(
            &snapshot(serde_json::json!({"default-ssl-certificate": "certs/wild"})),
            &options(),
        );
        assert!(conditions.is_empty());
        let effective = effective_options(&options(), &global).unwrap();
        assert_eq!(
            effective.default_ssl_certificate,
            Some(("certs".into(), "wild".into()))
        );
        let (_, conditions) = parse(
            &snapshot(serde_json::json!({"default-ssl-certificate": "wild"})),
            &options(),
        );
        assert_eq!(conditions[0].reason, Reason::InvalidConfigMapKey);
    }

    #[test]
    fn allow_snippet_annotations_true_is_treated_as_false_with_a_warning() {
        let (_, conditions) = parse(
            &snapshot(serde_json::json!({"allow-snippet-annotations": "true"})),
            &options(),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, Reason::UnsupportedConfigMapKey);
        let (_, conditions) = parse(
            &snapshot(serde_json::json!({"allow-snippet-annotations": "false"})),
            &options(),
        );
        assert!(conditions.is_empty());
    }

    #[test]
    fn booleans_follow_go_parse_bool() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["yes", "on", "", "tRUE"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }
}
