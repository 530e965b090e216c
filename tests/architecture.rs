//! Architecture: no import cycles between the crate's top-level modules (issue 11 item 1).
//!
//! Data flows one way (`../shared/style.md`), so the top-level modules (`routing`, `tls`,
//! `translate`, `metrics`, `publish`, `proxy`, ...) must form a directed acyclic graph. This
//! test reads every `src/**/*.rs`, collects its `crate::X` references (in `use` items, grouped
//! `use crate::{X, Y::Z}` and paths in code) and fails, naming the cycle, when one exists.
//!
//! Not counted: comments (doc links are not dependencies) and unit-test code (everything from a
//! file's first `#[cfg(test)]` line on, and `tests.rs` files), which sits above the module it
//! tests the way an integration test does. `lib.rs` and `main.rs` only declare and start.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("src/ is readable")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/metrics.rs` → `metrics`,
/// `src/proxy/service.rs` → `proxy`.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.strip_suffix(".rs").unwrap_or(first).to_string())
}

/// The code of a file without comments and without its unit tests.
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        // A trailing comment; `//` inside a string literal (a URL) is rare and harmless here.
        let line = line.split(" //").next().unwrap_or(line);
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The top-level modules `code` names through `crate::`.
fn references(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(is_ident) {
            continue; // `portico_crate::`, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}}`: the first segment of each top-level item.
            let mut depth = 0usize;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        rest = &group[i..];
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && is_ident(c) => {
                        let name: String =
                            group[i..].chars().take_while(|c| is_ident(*c)).collect();
                        found.insert(name);
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(&src, f)).collect();
    let mut graph = Graph::new();
    for file in &files {
        let Some(from) = top_module(&src, file) else {
            continue;
        };
        if from == "lib" || from == "main" || file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("source file is readable");
        let edges = graph.entry(from.clone()).or_default();
        for to in references(&code(&text)) {
            if to != from && modules.contains(&to) {
                edges.insert(to);
            }
        }
    }
    graph
}

/// One cycle of `graph`, as the path of modules around it, if there is any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn top_level_modules_have_no_import_cycle() {
    let graph = graph();
    assert!(
        graph.len() > 5,
        "the scan found too few modules to mean anything: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "import cycle between top-level modules: {}\nthe whole graph:\n{}",
            cycle.join(" → "),
            graph
                .iter()
                .map(|(from, to)| format!(
                    "  {from} → {}",
                    to.iter().cloned().collect::<Vec<_>>().join(", ")
                ))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn the_scan_reads_every_form_of_reference() {
    let refs = references(&code(
        "use crate::routing::Backend;\nuse crate::{metrics, tls::{A, B}, translate::Options};\n\
         fn f() { crate::publish::shared(); }\n// crate::commented\n\
         /// [`crate::doc_link`]\nlet x = 1; // crate::trailing\n\
         #[cfg(test)]\nmod tests { use crate::under_test; }\n",
    ));
    let expected: BTreeSet<String> = ["routing", "metrics", "tls", "translate", "publish"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(refs, expected);
}

#[test]
fn a_cycle_is_found_and_named() {
    let mut graph = Graph::new();
    let edge = |g: &mut Graph, a: &str, b: &str| {
        g.entry(a.into()).or_default().insert(b.into());
    };
    edge(&mut graph, "translate", "tls");
    edge(&mut graph, "tls", "access_log");
    edge(&mut graph, "routing", "tls");
    assert_eq!(find_cycle(&graph), None);
    edge(&mut graph, "access_log", "translate");
    assert_eq!(
        find_cycle(&graph).map(|c| c.join(" → ")),
        Some("access_log → translate → tls → access_log".to_string())
    );
}
