//! `portico migrate`: golden reports over `tests/fixtures/migrate/<case>/manifests` (text in
//! `expected.txt`, JSON in `expected.json`, the command's extra arguments one per line in
//! `args`), and exit codes through the binary. `UPDATE_GOLDEN=1 cargo test --test migrate`
//! rewrites the expected files.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use portico::migrate::{self, load};
use portico::source::files::Limits;

/// The fixtures, relative to the package root (the tests' working directory), so the file
/// names in the reports are the same on every machine.
const ROOT: &str = "tests/fixtures/migrate";

fn cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(ROOT)
        .expect("tests/fixtures/migrate")
        .map(|e| Path::new(ROOT).join(e.expect("entry").file_name()))
        .filter(|p| p.join("manifests").is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// The case's `--configmap`, from its `args` file.
fn configmap_flag(dir: &Path) -> Option<String> {
    let args = std::fs::read_to_string(dir.join("args")).ok()?;
    let args: Vec<&str> = args.lines().collect();
    match args.as_slice() {
        ["--configmap", value] => Some(value.to_string()),
        other => panic!("{}: unexpected args {other:?}", dir.display()),
    }
}

fn compare(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        failures.push(format!(
            "{} differs from line {}:\n  - {}\n  + {}\n(UPDATE_GOLDEN=1 cargo test --test migrate rewrites it)",
            path.display(),
            first + 1,
            expected.lines().nth(first).unwrap_or("<end>"),
            actual.lines().nth(first).unwrap_or("<end>"),
        ));
    }
}

#[test]
fn golden_reports() {
    let cases = cases();
    assert!(cases.len() >= 3, "fixtures missing: {cases:?}");
    let mut failures = Vec::new();
    for dir in cases {
        let inventory = load::load(&dir.join("manifests"), &Limits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let report = migrate::report(&inventory, configmap_flag(&dir).as_deref())
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        compare(&dir.join("expected.txt"), &report.text(), &mut failures);
        let json = serde_json::to_string_pretty(&report).expect("JSON") + "\n";
        compare(&dir.join("expected.json"), &json, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The realistic export, checked on the report itself so a regenerated golden cannot silently
/// change a verdict: each known name gets its catalogue row's verdict (so flipping a row in
/// `src/migrate/catalog.rs` needs no edit here, only `UPDATE_GOLDEN=1`), snippets are dropped,
/// a typo is reported, and an Ingress is blocked exactly when one of its annotations blocks.
#[test]
fn the_export_gets_the_verdicts_the_catalogue_gives() {
    use migrate::catalog;
    use migrate::Verdict::*;
    let inventory = load::load(
        &Path::new(ROOT).join("export/manifests"),
        &Limits::default(),
    )
    .expect("the export loads");
    let report = migrate::report(&inventory, None).expect("a report");
    assert_eq!(report.totals.ingresses, 6);
    let mut seen = 0;
    for ingress in &report.ingresses {
        for item in &ingress.annotations {
            seen += 1;
            match catalog::annotation(&item.name) {
                Some(entry) => {
                    assert_eq!(item.verdict, entry.status.verdict(), "{}", item.key);
                    assert_eq!(item.status.as_deref(), Some(entry.status.guide().as_str()));
                }
                None => {
                    // `proxy-body-sise`: a typo is reported, never silently dropped.
                    assert_eq!(item.name, "proxy-body-sise");
                    assert_eq!((item.verdict, item.status.as_deref()), (Ignored, None));
                }
            }
            if item.name.ends_with("-snippet") {
                assert_eq!(item.verdict, Dropped, "{}", item.key);
            }
        }
        assert_eq!(
            ingress.blocks,
            ingress.annotations.iter().any(|a| a.verdict == Blocks),
            "{}/{}",
            ingress.namespace,
            ingress.name
        );
    }
    assert_eq!(
        seen, 17,
        "every prefixed annotation of the export is reported"
    );
    // The override of ingress-nginx's spelling by Portico's is said.
    let checkout = &report.ingresses[1];
    assert_eq!(
        (checkout.namespace.as_str(), checkout.name.as_str()),
        ("payments", "checkout")
    );
    assert!(checkout.annotations.iter().any(|a| {
        a.key == "nginx.ingress.kubernetes.io/proxy-read-timeout"
            && a.overridden_by.as_deref() == Some("portico.dev/proxy-read-timeout")
    }));

    // The half-edited document is skipped and named; the rest is reported.
    assert_eq!(report.skipped_documents.len(), 1, "{report:?}");
    assert!(report.skipped_documents[0].contains("canary.yaml: document 3"));

    let changes: Vec<_> = report
        .ingresses
        .iter()
        .filter_map(|i| Some((i.name.as_str(), i.class.change.as_deref()?)))
        .collect();
    assert_eq!(
        changes.iter().map(|c| c.0).collect::<Vec<_>>(),
        ["admin", "status", "api", "web", "web-canary"]
    );
    assert!(changes[0].1.contains("kubernetes.io/ingress.class"));

    let configmap = report.configmap.as_ref().expect("the controller ConfigMap");
    assert_eq!(
        (configmap.namespace.as_str(), configmap.selected_by),
        ("ingress-nginx", "default-name")
    );
    let key = |k: &str| {
        configmap
            .keys
            .iter()
            .find(|i| i.key == k)
            .unwrap_or_else(|| panic!("key {k}"))
    };
    for item in &configmap.keys {
        if let Some(entry) = catalog::configmap_key(&item.name) {
            assert_eq!(item.verdict, entry.status.verdict(), "{}", item.key);
        }
    }
    assert_eq!(key("http-snippet").verdict, Dropped);
    // Enforced since issue 14 (empty, it restricts nothing either way).
    assert_eq!(
        key("whitelist-source-range").verdict,
        catalog::configmap_key("whitelist-source-range")
            .unwrap()
            .status
            .verdict()
    );
    // Removed from ingress-nginx before its final release: unknown.
    assert_eq!(
        (
            key("enable-vts-status").verdict,
            key("enable-vts-status").status.as_deref()
        ),
        (Ignored, None)
    );
    let blocks = report.totals.annotations.blocks + report.totals.configmap_keys.blocks;
    assert_eq!(report.exit_code, u8::from(blocks > 0));
}

/// Runs the binary with `args` and `stdin`: exit code, stdout, stderr.
fn run(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("portico runs");
    let mut input = child.stdin.take().expect("stdin");
    // The binary may exit before reading (a usage error): a broken pipe is fine.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let out = child.wait_with_output().expect("portico ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn exit_codes_through_the_binary() {
    let export = format!("{ROOT}/export/manifests");
    let clean = std::fs::read_to_string(format!("{ROOT}/clean/manifests/app.yaml")).unwrap();

    // The export: the golden text is what the binary prints, and the exit code the report's
    // (what the report says: 1 when something still blocks).
    let inventory = load::load(Path::new(&export), &Limits::default()).expect("export");
    let report = migrate::report(&inventory, None).expect("report");
    let (code, out, _) = run(&["migrate", &export], "");
    assert_eq!(code, i32::from(report.exit_code), "{out}");
    let expected = std::fs::read_to_string(format!("{ROOT}/export/expected.txt")).unwrap();
    assert_eq!(out, expected);
    let (code, out, _) = run(&["migrate", "-o", "json", &export], "");
    assert_eq!(code, i32::from(report.exit_code));
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert_eq!(json["schema"], "portico.dev/migrate/v1");
    assert_eq!(json["exitCode"], report.exit_code);

    // Something blocks: 1. An annotation the catalogue says blocks, on its own.
    if let Some(entry) = migrate::catalog::ANNOTATIONS
        .iter()
        .find(|e| e.status.verdict() == migrate::Verdict::Blocks)
    {
        let blocking = clean.replace(
            "    nginx.ingress.kubernetes.io/enable-cors: \"true\"\n",
            &format!("    nginx.ingress.kubernetes.io/{}: \"x\"\n", entry.name),
        );
        assert_ne!(blocking, clean);
        let (code, out, _) = run(&["migrate", "-"], &blocking);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("block the switch (exit 1)"), "{out}");
    }

    // Nothing blocks: 0, from standard input (`kubectl get ... -o yaml | portico migrate -`),
    // also without naming it (stdin is not a terminal here).
    let (code, out, _) = run(&["migrate", "-"], &clean);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("result: nothing blocks the switch (exit 0)"),
        "{out}"
    );
    let (code, _, _) = run(&["migrate"], &clean);
    assert_eq!(code, 0);
    let (code, out, _) = run(&["migrate", "--output", "json", "-"], "");
    assert_eq!(code, 0, "empty input: nothing to report, nothing blocks");
    assert!(out.contains("\"ingresses\": []"), "{out}");

    // Unreadable input: 2, the reason on stderr, nothing on stdout.
    for (args, stdin) in [
        (vec!["migrate", "tests/fixtures/migrate/no-such-dir"], ""),
        (vec!["migrate", "-"], "{{{ not: yaml"),
        (vec!["migrate", "-"], "\u{0}\u{1}\u{2}"),
        (vec!["migrate", &export, "--configmap", "nope"], ""),
        (vec!["migrate", &export, "--configmap", "x/missing"], ""),
        (
            vec!["migrate", "--manifests-max-file-size", "10", "-"],
            clean.as_str(),
        ),
        (vec!["migrate", "-o", "yaml", "-"], ""),
    ] {
        let (code, out, err) = run(&args, stdin);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(!err.is_empty(), "{args:?}: a reason on stderr");
    }
    // Invalid UTF-8 on standard input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["migrate", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("portico runs");
    let mut input = child.stdin.take().expect("stdin");
    let _ = input.write_all(&[0xff, 0xfe, b'\n']);
    drop(input);
    assert_eq!(child.wait().expect("portico ends").code(), Some(2));
}

/// Garbage never panics: random bytes and truncations of the export give a report or an
/// input error, never a crash (bounded: a fixed number of inputs).
#[test]
fn garbage_never_panics() {
    let export =
        std::fs::read_to_string(format!("{ROOT}/export/manifests/kubectl-get.yaml")).unwrap();
    let mut rng = fastrand::Rng::with_seed(13);
    let mut inputs: Vec<String> = (0..200)
        .map(|_| {
            let cut = rng.usize(0..export.len());
            let mut text = export[..floor(&export, cut)].to_string();
            // Damage one byte to a YAML-significant character.
            if !text.is_empty() {
                let at = floor(&text, rng.usize(0..text.len()));
                let c = [':', '-', '{', '[', '"', '\'', '&', '*', '|', '\n'][rng.usize(0..10)];
                text.insert(at, c);
            }
            text
        })
        .collect();
    inputs.push("apiVersion: v1\nkind: List\nitems: 7\n".to_string());
    inputs.push("apiVersion: v1\nkind: List\nitems: [1, null, [], {kind: Ingress}]\n".to_string());
    inputs.push("- a\n- b\n".to_string());
    for text in inputs {
        let mut inventory = load::Inventory::default();
        load::parse("garbage", &text, &mut inventory);
        if let Ok(report) = migrate::report(&inventory, None) {
            let _ = report.text();
            serde_json::to_string(&report).expect("JSON");
        }
    }
}

/// The largest char boundary at or below `at`.
fn floor(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The example in the migration guide is an excerpt of the export's golden text: every line
/// of it (with `...` marking what was cut) is found, in order, in `expected.txt`.
#[test]
fn the_guide_example_is_an_excerpt_of_the_golden() {
    let guide = std::fs::read_to_string("docs/migrating-from-ingress-nginx.md").unwrap();
    let (_, rest) = guide
        .split_once("$ portico migrate tests/fixtures/migrate/export/manifests\n")
        .expect("the guide's example");
    let (example, _) = rest.split_once("```").expect("the end of the example");
    let golden = std::fs::read_to_string(format!("{ROOT}/export/expected.txt")).unwrap();
    let mut lines = golden.lines();
    let mut checked = 0;
    for line in example.lines().filter(|l| *l != "...") {
        let pieces: Vec<&str> = line.split("...").filter(|p| !p.trim().is_empty()).collect();
        let found = lines.any(|g| {
            let mut at = 0;
            pieces.iter().all(|p| match g[at..].find(p) {
                Some(i) => {
                    at += i + p.len();
                    true
                }
                None => false,
            })
        });
        assert!(
            found,
            "the guide's example line is not in expected.txt (in order): {line}"
        );
        checked += 1;
    }
    assert!(checked > 10, "{checked} lines checked");
}
