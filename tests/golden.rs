//! Golden tables: `tests/fixtures/<case>/input.yaml` → translate → YAML compared with
//! `expected.yaml`. `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the expected files.
//!
//! Optional per case: `options.yaml` (overrides of `translate::Options`, plus `now`: an RFC 3339
//! time at which the certificate validity pass runs) and `requests.yaml` (a list of
//! `{host, path}` whose routing decisions are recorded next to the table). Certificates appear
//! as subject, names, validity and fingerprint, never as PEM.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use portico::routing::{normalize, Decision, Route, Target};
use portico::source::files::{parse_documents, Loaded};
use portico::tls::TlsTable;
use portico::translate::{certificate_validity, translate, Cache, Condition, ObjectRef, Options};
use serde::{Deserialize, Serialize};

#[path = "support/fixture_options.rs"]
mod fixture_options;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(default)]
    host: String,
    path: String,
    /// The TLS server name when it differs from the host.
    #[serde(default)]
    sni: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Outcome<'a> {
    host: &'a str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sni: Option<&'a str>,
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vhost: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a Target>,
    /// Plain HTTP gets a 308 to HTTPS (spec §5.5).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ssl_redirect: bool,
    /// With TLS in the case: the certificate a handshake with SNI = host gets (spec §5.3),
    /// as its Secret, or `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<String>,
}

#[derive(Debug, Serialize)]
struct Golden<'a> {
    table: &'a portico::routing::RouteTable,
    #[serde(skip_serializing_if = "TlsTable::is_empty")]
    tls: &'a TlsTable,
    conditions: &'a [Condition],
    owned: &'a [ObjectRef],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    requests: Vec<Outcome<'a>>,
}

fn describe(route: &Route) -> String {
    format!(
        "{:?} {} ({}/{} rule {} path {})",
        route.path_type,
        route.path,
        route.origin.namespace,
        route.origin.name,
        route.origin.rule,
        route.origin.path
    )
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Loads a case's snapshot and options.
fn load(dir: &Path) -> (Loaded, Options, Option<SystemTime>) {
    let input = read(&dir.join("input.yaml")).expect("input.yaml");
    let mut loaded = Loaded::default();
    parse_documents("input.yaml", &input, &mut loaded);
    assert!(
        loaded.errors.is_empty(),
        "{}: input.yaml does not parse: {:?}",
        dir.display(),
        loaded.errors
    );
    let (options, now) = fixture_options::read(dir);
    (loaded, options, now)
}

fn render(dir: &Path) -> String {
    let (loaded, options, now) = load(dir);
    let mut translation = translate(&loaded.snapshot, &options, &mut Cache::default());
    if let Some(now) = now {
        certificate_validity(&mut translation, now);
    }
    let requests: Vec<Request> = match read(&dir.join("requests.yaml")) {
        Some(text) => serde_saphyr::from_str(&text).expect("requests.yaml"),
        None => Vec::new(),
    };
    let table = &translation.table;
    let outcomes = requests
        .iter()
        .map(|r| {
            let raw_path = r.path.split('?').next().unwrap_or_default();
            let host = normalize::host(&r.host);
            let path = normalize::path(raw_path);
            let decision = table.decide(&host, &path);
            let backend = decision.backend();
            Outcome {
                host: &r.host,
                path: &r.path,
                sni: r.sni.as_deref(),
                decision: match decision {
                    Decision::Route { .. } => "route",
                    Decision::Fallback { .. } => "fallback",
                    Decision::Default { .. } => "default",
                    Decision::NotFound { .. } => "notFound",
                },
                vhost: decision.vhost().map(|v| v.host.to_string()),
                route: decision.route().map(describe),
                backend: backend.map(|b| b.reference.to_string()),
                target: backend.map(|b| &b.target),
                ssl_redirect: decision.ssl_redirect(),
                // The resolver's own selection (spec §5.3).
                certificate: (!translation.tls.is_empty()).then(|| {
                    let sni = r
                        .sni
                        .as_deref()
                        .or((!host.is_empty()).then_some(host.as_ref()));
                    let selection = translation.tls.selection(sni);
                    match selection.certificate {
                        Some(c) if selection.is_bound() => c.secret.clone(),
                        Some(c) => format!("default ({})", c.secret),
                        None => "default (generated)".to_string(),
                    }
                }),
            }
        })
        .collect();
    let golden = Golden {
        table,
        tls: &translation.tls,
        conditions: &translation.conditions,
        owned: &translation.owned,
        requests: outcomes,
    };
    serde_saphyr::to_string(&golden).expect("serialise golden")
}

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("input.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// A line-by-line comparison that names the first differing lines.
fn diff(expected: &str, actual: &str) -> String {
    let mut out = String::new();
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let mut shown = 0;
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i), a.get(i));
        if x != y {
            out.push_str(&format!(
                "line {}:\n  - {}\n  + {}\n",
                i + 1,
                x.unwrap_or(&"<end>"),
                y.unwrap_or(&"<end>")
            ));
            shown += 1;
            if shown == 12 {
                out.push_str("  ...\n");
                break;
            }
        }
    }
    out
}

#[test]
fn golden_tables() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    let cases = cases();
    assert!(!cases.is_empty(), "no fixtures found");
    for dir in cases {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let actual = render(&dir);
        let expected_path = dir.join("expected.yaml");
        if update {
            std::fs::write(&expected_path, &actual).expect("write expected.yaml");
            continue;
        }
        let expected = read(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "case {name}: output differs from expected.yaml (UPDATE_GOLDEN=1 to accept)\n{}",
                diff(&expected, &actual)
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Object order in the snapshot never changes the result: reversing every list of every case
/// gives the same translation.
#[test]
fn golden_inputs_are_order_independent() {
    for dir in cases() {
        let (loaded, options, _) = load(&dir);
        let mut reversed = loaded.snapshot.clone();
        reversed.ingresses.reverse();
        reversed.ingress_classes.reverse();
        reversed.services.reverse();
        reversed.endpoint_slices.reverse();
        reversed.secrets.reverse();
        assert_eq!(
            translate(&loaded.snapshot, &options, &mut Cache::default()),
            translate(&reversed, &options, &mut Cache::default()),
            "case {}",
            dir.display()
        );
    }
}

/// Identical backend references under the same annotations share one `Arc` (one
/// round-robin position per backend and policy); a backend that fails closed is its own.
#[test]
fn identical_backend_references_share_one_arc() {
    let mut shared = 0;
    for dir in cases() {
        let (loaded, options, _) = load(&dir);
        let translation = translate(&loaded.snapshot, &options, &mut Cache::default());
        let table = &translation.table;
        let backends: Vec<_> = table
            .vhosts()
            .iter()
            .flat_map(|v| v.routes.iter().map(|r| &r.backend).chain(v.fallback.iter()))
            .chain(table.default_backend())
            .collect();
        for a in &backends {
            for b in &backends {
                // Malformed references (port 0) are built per path and are not shared.
                let malformed = matches!(
                    &a.reference,
                    portico::routing::BackendRef::Service {
                        port: portico::routing::PortRef::Number(0),
                        ..
                    }
                );
                if a.reference == b.reference
                    && a.policy == b.policy
                    && a.target == b.target
                    && !malformed
                {
                    assert!(
                        std::sync::Arc::ptr_eq(a, b),
                        "{}: {} resolved twice",
                        dir.display(),
                        a.reference
                    );
                    shared += 1;
                }
            }
        }
    }
    assert!(shared > 0);
}
