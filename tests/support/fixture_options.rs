//! `tests/fixtures/<case>/options.yaml`: overrides of `translate::Options`, plus `now`, an RFC
//! 3339 time at which the certificate validity pass runs. Shared by the golden and explain tests.

use std::time::SystemTime;

use portico::translate::Options;
use serde::Deserialize;

/// Reads a case's `options.yaml`; defaults when it has none.
pub fn read(dir: &std::path::Path) -> (Options, Option<SystemTime>) {
    match std::fs::read_to_string(dir.join("options.yaml")) {
        Ok(text) => serde_saphyr::from_str::<OptionsFile>(&text)
            .expect("options.yaml parses")
            .apply(),
        Err(_) => (Options::default(), None),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OptionsFile {
    controller_name: Option<String>,
    annotation_class: Option<String>,
    watch_without_class: Option<bool>,
    /// `namespace/name`
    default_backend_service: Option<String>,
    external_name: Option<bool>,
    ipv6: Option<bool>,
    /// `namespace/name`
    default_ssl_certificate: Option<String>,
    ssl_redirect: Option<bool>,
    /// RFC 3339; when set, `certificate_validity` runs at this time.
    now: Option<String>,
}

impl OptionsFile {
    pub fn apply(self) -> (Options, Option<SystemTime>) {
        let mut o = Options::default();
        if let Some(v) = self.controller_name {
            o.controller_name = v;
        }
        if let Some(v) = self.annotation_class {
            o.annotation_class = v;
        }
        if let Some(v) = self.watch_without_class {
            o.watch_without_class = v;
        }
        if let Some(v) = self.default_backend_service {
            let (ns, name) = v
                .split_once('/')
                .expect("defaultBackendService is namespace/name");
            o.default_backend_service = Some((ns.to_string(), name.to_string()));
        }
        if let Some(v) = self.external_name {
            o.external_name = v;
        }
        if let Some(v) = self.ipv6 {
            o.ipv6 = v;
        }
        if let Some(v) = self.default_ssl_certificate {
            let (ns, name) = v
                .split_once('/')
                .expect("defaultSslCertificate is namespace/name");
            o.default_ssl_certificate = Some((ns.to_string(), name.to_string()));
        }
        if let Some(v) = self.ssl_redirect {
            o.ssl_redirect = v;
        }
        let now = self
            .now
            .map(|t| humantime::parse_rfc3339(&t).expect("now is RFC 3339"));
        (o, now)
    }
}
