//! Golden outputs of `explain` and `check` for the translate fixtures:
//! `tests/fixtures/<case>/explain.txt` (every request of `requests.yaml`) and `check.txt`.
//! `UPDATE_GOLDEN=1 cargo test --test explain` rewrites them; read the diff before committing.
//!
//! Cases worth reading: `merge-age-order` (shadowed paths), `hosts` (wildcard misses, exact
//! vhost without fall-through), `backends-service` (missing Service, missing port). A TLS
//! fallback case comes with TLS.

use std::path::{Path, PathBuf};

use portico::explain::explain;
use portico::routing::normalize;
use portico::source::files::{parse_documents, Loaded};
use portico::translate::{translate, Options};
use serde::Deserialize;

#[path = "support/fixture_options.rs"]
mod fixture_options;

#[derive(Debug, Deserialize)]
struct Request {
    #[serde(default)]
    host: String,
    path: String,
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
        let mut translation = translate(&loaded.snapshot, &options);
        if let Some(now) = now {
            portico::translate::certificate_validity(&mut translation, now);
        }

        let report = portico::check::report(&loaded, &translation);
        failures.extend(compare(&dir.join("check.txt"), &report.text));

        let Ok(text) = std::fs::read_to_string(dir.join("requests.yaml")) else {
            continue;
        };
        let requests: Vec<Request> = serde_yaml::from_str(&text).expect("requests");
        let mut out = String::new();
        for r in &requests {
            let e = explain(&translation.table, None, &r.host, &r.path, None);
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
                "$ explain --host {:?} --path {:?}\n",
                r.host, r.path
            ));
            out.push_str(&e.to_string());
            out.push('\n');
        }
        failures.extend(compare(&dir.join("explain.txt"), &out));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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
        portico::check::report(&loaded, &translate(&loaded.snapshot, &options))
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
