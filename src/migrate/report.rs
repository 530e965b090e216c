//! The text form of `portico migrate`'s report: one block per Ingress, then the controller
//! ConfigMap, then totals; one line per annotation or key, its verdict first, so `grep blocks`
//! finds what stands in the way.

use std::fmt::Write as _;

use super::{Counts, Item, Report, Verdict, DEFAULT_CONFIGMAP};

/// Width of the verdict column: "honoured with a difference".
const WIDTH: usize = 26;

pub(super) fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "portico migrate: {} {}; {}",
        report.totals.ingresses,
        plural(report.totals.ingresses, "Ingress", "Ingresses"),
        match &report.configmap {
            Some(c) => format!("ConfigMap {}/{}", c.namespace, c.name),
            None => "no controller ConfigMap".to_string(),
        }
    );
    for skipped in &report.skipped_documents {
        let _ = writeln!(out, "skipped: {skipped}");
    }
    for ingress in &report.ingresses {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Ingress {}/{}{}",
            ingress.namespace,
            ingress.name,
            if ingress.blocks {
                ": blocked (under Portico today every path of it answers 503)"
            } else {
                ""
            }
        );
        if let Some(change) = &ingress.class.change {
            let _ = writeln!(out, "  {:<WIDTH$}  {change}", "class");
        }
        if ingress.annotations.is_empty() {
            let _ = writeln!(out, "  no ingress-nginx annotations");
        }
        for item in &ingress.annotations {
            line(&mut out, item);
        }
    }
    let _ = writeln!(out);
    match &report.configmap {
        Some(c) => {
            let _ = writeln!(
                out,
                "ConfigMap {}/{} ({})",
                c.namespace,
                c.name,
                if c.selected_by == "flag" {
                    "--configmap".to_string()
                } else {
                    format!("found by its name, *{DEFAULT_CONFIGMAP}; --configmap NAMESPACE/NAME names another")
                }
            );
            for other in &c.others {
                let _ = writeln!(out, "  also in the input, not reported: {other}");
            }
            if c.keys.is_empty() {
                let _ = writeln!(out, "  no keys");
            }
            for item in &c.keys {
                line(&mut out, item);
            }
        }
        None => {
            let _ = writeln!(
                out,
                "ConfigMap: none named *{DEFAULT_CONFIGMAP} in the input; name yours with --configmap NAMESPACE/NAME"
            );
        }
    }
    let totals = &report.totals;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "totals: {} {}, {} blocked, {} {} a class change, {} {} skipped",
        totals.ingresses,
        plural(totals.ingresses, "Ingress", "Ingresses"),
        totals.ingresses_blocked,
        totals.class_changes,
        plural(totals.class_changes, "needs", "need"),
        report.skipped_documents.len(),
        plural(report.skipped_documents.len(), "document", "documents"),
    );
    let _ = writeln!(out, "  annotations:    {}", counts(&totals.annotations));
    let _ = writeln!(out, "  ConfigMap keys: {}", counts(&totals.configmap_keys));
    let (a, k) = (totals.annotations.blocks, totals.configmap_keys.blocks);
    if a + k == 0 {
        let _ = writeln!(out, "result: nothing blocks the switch (exit 0)");
    } else {
        let _ = writeln!(
            out,
            "result: {a} {} and {k} ConfigMap {} block the switch (exit 1)",
            plural(a, "annotation", "annotations"),
            plural(k, "key", "keys"),
        );
    }
    out
}

fn line(out: &mut String, item: &Item) {
    let mut text = format!("  {:<WIDTH$}  {}", item.verdict.words(), item.key);
    match (item.verdict, &item.status) {
        // Nothing to say: it works as before.
        (Verdict::Honoured, _) => {}
        (Verdict::Ignored, Some(status)) => {
            let _ = write!(text, ": {status}: {}", item.note);
        }
        _ => {
            let _ = write!(text, ": {}", item.note);
        }
    }
    if let Some(by) = &item.overridden_by {
        let _ = write!(text, " (overridden by {by})");
    }
    let _ = writeln!(out, "{text}");
}

fn counts(counts: &Counts) -> String {
    Verdict::ALL
        .iter()
        .map(|v| format!("{} {}", counts.get(*v), v.words()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}
