//! ingress-nginx's error pages, typed at translate time: the annotations `default-backend`,
//! `custom-http-errors` and `disable-proxy-intercept-errors`, and the controller ConfigMap key
//! `custom-http-errors`. `incremental::derive` puts the result into the Ingress's
//! [`Policy`](crate::routing::Policy) as [`ErrorPages`]; `proxy/error_pages.rs` reads it per
//! request.
//!
//! Sources: ingress-nginx `internal/ingress/annotations/customhttperrors/main.go`,
//! `defaultbackend/main.go`, `internal/ingress/controller/template/configmap.go`
//! (`filterErrors`), `internal/ingress/controller/controller.go` (custom default backends) and
//! `rootfs/etc/nginx/template/nginx.tmpl` (`error_page`, "CUSTOM_ERRORS").

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;

use super::annotations::{NGINX, PORTICO};
use super::backends::Backends;
use super::incremental::Key;
use super::Options;
use crate::routing::{Backend, ErrorBackend, ErrorPages, Target, Unavailable};

/// The annotation names, without prefix.
pub const DEFAULT_BACKEND: &str = "default-backend";
pub const CUSTOM_HTTP_ERRORS: &str = "custom-http-errors";
pub const DISABLE_INTERCEPT: &str = "disable-proxy-intercept-errors";

/// The ConfigMap key.
pub const CONFIGMAP_CUSTOM_HTTP_ERRORS: &str = "custom-http-errors";

/// The global settings this module reads from the controller ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// `custom-http-errors`: statuses answered by the global default backend for every
    /// Ingress that does not set its own list (sorted, deduplicated, 300–599).
    pub custom_http_errors: Vec<u16>,
}

/// The keys of the controller ConfigMap this module reads, and one message per invalid
/// value, starting with the key (`configmap::from_data` makes them conditions). ingress-nginx (`configmap.go`) splits on commas, trims, warns about and skips each
/// entry that is not a number (`strconv.Atoi`) or outside 300–599 (`filterErrors`), and keeps
/// the rest; so does Portico.
pub fn from_configmap(data: &BTreeMap<String, String>) -> (Settings, Vec<String>) {
    let mut settings = Settings::default();
    let mut errors = Vec::new();
    if let Some(value) = data.get(CONFIGMAP_CUSTOM_HTTP_ERRORS) {
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry.parse::<u16>() {
                Ok(code) if (300..=599).contains(&code) => {
                    settings.custom_http_errors.push(code);
                }
                _ => errors.push(format!(
                    "{CONFIGMAP_CUSTOM_HTTP_ERRORS}: {:?} is not a status from 300 to 599; \
                     skipped, the other entries apply",
                    clip(entry)
                )),
            }
        }
        settings.custom_http_errors.sort_unstable();
        settings.custom_http_errors.dedup();
    }
    (settings, errors)
}

/// The `custom-http-errors` annotation: statuses from 400 to 599, comma-separated, spaces
/// ignored (ingress-nginx validates against `^(?:[4,5]\d{2},?)*$` after removing spaces, then
/// converts every entry; one bad entry discards the annotation).
pub fn parse_codes(value: &str) -> Result<Vec<u16>, String> {
    let compact: String = value.chars().filter(|c| *c != ' ').collect();
    if compact.is_empty() {
        return Err("is empty".to_string());
    }
    let mut codes = Vec::new();
    for entry in compact.split(',') {
        let code = entry
            .parse::<u16>()
            .ok()
            .filter(|c| (400..=599).contains(c) && entry.len() == 3)
            .ok_or_else(|| {
                format!(
                    "lists {:?}, not a status from 400 to 599 (a comma-separated list such \
                     as \"404,503\")",
                    clip(entry)
                )
            })?;
        codes.push(code);
    }
    codes.sort_unstable();
    codes.dedup();
    Ok(codes)
}

/// At most 64 characters of a value, for messages (a 1 MB annotation must not become a 1 MB
/// condition).
fn clip(value: &str) -> String {
    match value.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &value[..i]),
        None => value.to_string(),
    }
}

/// A Kubernetes Service name: a DNS-1035 label (ingress-nginx's `ValidateServiceName`).
fn is_service_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
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

/// What one Ingress's error pages read: the Services, for the incremental cache.
pub(super) fn services_read(ingress: &Ingress, namespace: &str, options: &Options) -> Vec<Key> {
    let mut keys = Vec::new();
    if let Some((_, name)) = get(ingress, DEFAULT_BACKEND) {
        keys.push((namespace.to_string(), name.trim().to_string()));
    }
    // The global default backend only for Ingresses with a list to answer (see `error_pages`):
    // the others need not be derived again when its Service changes.
    let listed = get(ingress, CUSTOM_HTTP_ERRORS).is_some()
        || !options.error_pages.custom_http_errors.is_empty();
    if let Some((ns, name)) = options.default_backend_service.as_ref().filter(|_| listed) {
        keys.push((ns.clone(), name.clone()));
    }
    keys
}

/// The Ingress's error pages, and one message per invalid annotation. `None` when nothing
/// applies: no annotation, and no global list with a default backend to answer it.
pub(super) fn error_pages(
    ingress: &Ingress,
    namespace: &str,
    name: &str,
    options: &Options,
    global_codes: &[u16],
    backends: &mut Backends<'_>,
) -> (Option<ErrorPages>, Vec<String>) {
    let mut errors = Vec::new();
    let mut invalid = |key: &str, value: &str, why: &str| {
        errors.push(format!(
            "annotation {key}: {:?} {why}; ignored",
            clip(value)
        ));
    };
    let annotated =
        get(ingress, CUSTOM_HTTP_ERRORS).and_then(|(key, value)| match parse_codes(value) {
            Ok(codes) => Some(codes),
            Err(why) => {
                invalid(&key, value, &why);
                None
            }
        });
    let upstream_passes = match get(ingress, DISABLE_INTERCEPT) {
        None => false,
        Some((key, value)) => match value.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                invalid(&key, value, "is neither \"true\" nor \"false\"");
                false
            }
        },
    };
    let custom = match get(ingress, DEFAULT_BACKEND) {
        None => None,
        Some((key, value)) => {
            let service = value.trim();
            if !is_service_name(service) {
                invalid(
                    &key,
                    value,
                    "is not the name of a Service in the Ingress's namespace",
                );
                None
            } else {
                let backend = backends.default_service(namespace, service);
                match &backend.target {
                    // ingress-nginx: "unexpected error reading service" / "has no ports":
                    // the annotation is dropped.
                    Target::Unavailable(Unavailable::ServiceNotFound) => {
                        invalid(&key, value, "names no Service in the Ingress's namespace");
                        None
                    }
                    Target::Unavailable(Unavailable::ServicePortNotFound) => {
                        invalid(&key, value, "names a Service without ports");
                        None
                    }
                    // No endpoints now: kept, it is used once it has some.
                    _ => Some(ErrorBackend(backend)),
                }
            }
        }
    };
    let codes_from_annotation = annotated.is_some();
    let codes = annotated.unwrap_or_else(|| global_codes.to_vec());
    // Without a list the global default backend answers nothing for this Ingress.
    let global = options
        .default_backend_service
        .as_ref()
        .filter(|_| !codes.is_empty())
        .map(|(ns, name)| ErrorBackend(backends.default_service(ns, name)));
    let answers_errors = !codes.is_empty() && (global.is_some() || custom.is_some());
    if !answers_errors && custom.is_none() {
        return (None, errors);
    }
    let pages = ErrorPages {
        codes,
        codes_from_annotation,
        upstream_passes,
        custom,
        global,
        namespace: namespace.to_string(),
        ingress: name.to_string(),
    };
    (Some(pages), errors)
}

/// The same error pages with their backends looked up again (an EndpointSlice changed).
pub(super) fn rebind(pages: &ErrorPages, backends: &mut Backends<'_>) -> ErrorPages {
    let mut again =
        |b: &ErrorBackend| -> ErrorBackend { ErrorBackend(backends.again(&b.0.reference)) };
    ErrorPages {
        custom: pages.custom.as_ref().map(&mut again),
        global: pages.global.as_ref().map(&mut again),
        ..pages.clone()
    }
}

/// The global default backend's own error pages (ingress-nginx's `http`-level `error_page`
/// also covers the catch-all server): the ConfigMap's list, answered by itself.
pub(super) fn global_default(backend: &Arc<Backend>, global_codes: &[u16]) -> Option<ErrorPages> {
    (!global_codes.is_empty()).then(|| ErrorPages {
        codes: global_codes.to_vec(),
        codes_from_annotation: false,
        upstream_passes: false,
        custom: None,
        global: Some(ErrorBackend(backend.clone())),
        namespace: String::new(),
        ingress: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_codes_are_400_to_599() {
        assert_eq!(parse_codes("404,503"), Ok(vec![404, 503]));
        // ingress-nginx removes spaces before validating (`ValidateRegex(.., true)`).
        assert_eq!(parse_codes("503, 404, 503"), Ok(vec![404, 503]));
        assert!(parse_codes("302").is_err());
        assert!(parse_codes("600").is_err());
        assert!(parse_codes("404,").is_err());
        assert!(parse_codes("4o4").is_err());
        assert!(parse_codes("0404").is_err());
        assert!(parse_codes("").is_err());
        assert!(parse_codes("-404").is_err());
    }

    #[test]
    fn configmap_codes_are_300_to_599_and_bad_entries_are_skipped() {
        let data: BTreeMap<String, String> = [(
            "custom-http-errors".to_string(),
            "404, 503,abc,299,600,302,404".to_string(),
        )]
        .into();
        let (settings, errors) = from_configmap(&data);
        assert_eq!(settings.custom_http_errors, vec![302, 404, 503]);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("\"abc\""), "{errors:?}");
        let (settings, errors) = from_configmap(&BTreeMap::new());
        assert_eq!(settings, Settings::default());
        assert!(errors.is_empty());
    }

    #[test]
    fn huge_values_make_short_messages() {
        let value = "9".repeat(1 << 20);
        let why = parse_codes(&value).unwrap_err();
        assert!(why.len() < 300, "{}", why.len());
        let data: BTreeMap<String, String> = [("custom-http-errors".to_string(), value)].into();
        let (_, errors) = from_configmap(&data);
        assert!(errors[0].len() < 300);
    }

    #[test]
    fn service_names_are_dns_1035_labels() {
        assert!(is_service_name("http-svc"));
        assert!(!is_service_name("other/http-svc"));
        assert!(!is_service_name("Http"));
        assert!(!is_service_name("1abc"));
        assert!(!is_service_name("abc-"));
        assert!(!is_service_name(""));
    }
}
