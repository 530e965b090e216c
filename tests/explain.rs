//! Golden outputs of `explain` and `check` for the translate fixtures:
//! `tests/fixtures/<case>/explain.txt` (every request of `requests.yaml`) and `check.txt`.
//! `UPDATE_GOLDEN=1 cargo test --test explain` rewrites them; read the diff before committing.
//!
//! Cases worth reading: `merge-age-order` (shadowed paths), `hosts` (wildcard misses, exact
//! vhost without fall-through), `backends-service` (missing Service, missing port), `tls`
//! (exact, wildcard and default certificates; Secrets that cannot be served falling back;
//! SNI different from Host), `tls-redirect` (opt-outs, misses, the ACME path).

use std::path::{Path, PathBuf};

use portico::explain::explain;
use portico::routing::normalize;
use portico::source::files::{parse_documents, Loaded};
use portico::translate::{translate, Cache, Options};
use serde::Deserialize;

#[path = "support/fixture_options.rs"]
mod fixture_options;

#[derive(Debug, Deserialize)]
struct Request {
    #[serde(default)]
    host: String,
    path: String,
    /// A server name other than the host (`--sni`).
    #[serde(default)]
    sni: Option<String>,
}

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("input.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn compare(path: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).expect("write golden");
        return None;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    (expected != actual).then(|| {
        format!(
            "{} differs (UPDATE_GOLDEN=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )
    })
}

#[test]
fn explain_and_check_match_their_golden_files() {
    let mut failures = Vec::new();
    for dir in cases() {
        let mut loaded = Loaded::default();
        let input = std::fs::read_to_string(dir.join("input.yaml")).expect("input");
        parse_documents("input.yaml", &input, &mut loaded);
        let (options, now) = fixture_options::read(&dir);
        let mut translation = translate(&loaded.snapshot, &options, &mut Cache::default());
        if let Some(now) = now {
            portico::translate::certificate_validity(&mut translation, now);
        }

        let report = portico::check::report(&loaded, &translation);
        failures.extend(compare(&dir.join("check.txt"), &report.text));

        let Ok(text) = std::fs::read_to_string(dir.join("requests.yaml")) else {
            continue;
        };
        let requests: Vec<Request> = serde_saphyr::from_str(&text).expect("requests");
        let mut out = String::new();
        for r in &requests {
            let e = explain(&translation, None, &r.host, &r.path, r.sni.as_deref());
            // The reasons agree with the table's own decision: the chosen route is the first
            // candidate that matched, and without a chosen route none matched.
            let path = normalize::path(r.path.split('?').next().unwrap_or_default());
            let decision = translation.table.decide(&normalize::host(&r.host), &path);
            let first_match = e.routes.iter().position(|c| c.matched);
            let chosen = e.routes.iter().position(|c| c.chosen);
            match decision.route() {
                Some(_) => assert_eq!(first_match, chosen, "{}: {r:?}", dir.display()),
                None => assert_eq!(first_match, None, "{}: {r:?}", dir.display()),
            }
            out.push_str(&format!(
                "$ explain --host {:?} --path {:?}{}\n",
                r.host,
                r.path,
                r.sni
                    .as_ref()
                    .map(|s| format!(" --sni {s:?}"))
                    .unwrap_or_default()
            ));
            out.push_str(&e.to_string());
            out.push('\n');
        }
        failures.extend(compare(&dir.join("explain.txt"), &out));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The certificate `explain` names is the one the resolver serves, for every request of every
/// fixture: both read `TlsTable::selection`.
#[test]
fn explain_names_the_certificate_the_resolver_serves() {
    let mut compared = 0;
    for dir in cases() {
        let Ok(text) = std::fs::read_to_string(dir.join("requests.yaml")) else {
            continue;
        };
        let mut loaded = Loaded::default();
        let input = std::fs::read_to_string(dir.join("input.yaml")).expect("input");
        parse_documents("input.yaml", &input, &mut loaded);
        let (options, _) = fixture_options::read(&dir);
        let translation = translate(&loaded.snapshot, &options, &mut Cache::default());
        let shared = portico::publish::shared();
        shared.store(std::sync::Arc::new(portico::publish::Published {
            version: 1,
            translation: std::sync::Arc::new(translation.clone()),
            snapshot: Default::default(),
        }));
        let generated = portico::tls::generated_default().expect("generate");
        let resolver = portico::tls::Resolver::new(shared, generated.clone());
        let requests: Vec<Request> = serde_saphyr::from_str(&text).expect("requests");
        for r in &requests {
            let e = explain(&translation, None, &r.host, &r.path, r.sni.as_deref());
            let served = resolver.certificate_for(e.tls.sni.as_deref());
            let expected = if e.tls.secret == "generated" {
                generated.clone()
            } else {
                translation
                    .tls
                    .certificates()
                    .iter()
                    .chain(translation.tls.default_certificate())
                    .find(|c| c.secret == e.tls.secret)
                    .unwrap_or_else(|| panic!("{}: {r:?}: no {}", dir.display(), e.tls.secret))
                    .certified_key()
                    .clone()
            };
            assert!(
                std::sync::Arc::ptr_eq(&served, &expected),
                "{}: {r:?}: explain says {}",
                dir.display(),
                e.tls.secret
            );
            compared += 1;
        }
    }
    assert!(compared > 0);
}

#[test]
fn check_severity_decides_the_exit_code() {
    let case = |yaml: &str| {
        let mut loaded = Loaded::default();
        parse_documents("t.yaml", yaml, &mut loaded);
        let options = Options {
            watch_without_class: true,
            ..Options::default()
        };
        portico::check::report(
            &loaded,
            &translate(&loaded.snapshot, &options, &mut Cache::default()),
        )
    };
    let service =
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n";
    let ingress = |name: &str, svc: &str| {
        format!("---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  rules:\n  - host: a.example\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n")
    };
    let clean = case(&format!("{service}{}", ingress("a", "s")));
    assert_eq!((clean.errors, clean.warnings, clean.exit_code()), (0, 0, 0));
    // A shadowed path is a warning: everything is served.
    let shadowed = case(&format!(
        "{service}{}{}",
        ingress("a", "s"),
        ingress("b", "s")
    ));
    assert_eq!(
        (shadowed.errors, shadowed.warnings, shadowed.exit_code()),
        (0, 1, 0)
    );
    // A missing Service is an error.
    let missing = case(&ingress("a", "nope"));
    assert_eq!((missing.errors, missing.exit_code()), (1, 1));
    // So is a manifest that does not parse.
    let broken = case(&format!("{service}---\nkind: [\n"));
    assert_eq!((broken.errors, broken.exit_code()), (1, 1));
}
