//! Offline check (`portico check`): load manifests, translate them exactly as the controller
//! would, and report every load error and condition with a severity, plus a one-line summary.
//! Pure reporting: nothing from the manifests is executed, no cluster is contacted.
//!
//! Severity: an **error** means part of an Ingress cannot be served as written (its requests
//! get 503, or a host or path is dropped); a **warning** means everything is served but part of
//! it can never be reached (a shadowed path or default backend). A manifest that cannot be read
//! or parsed is an error too: the object in it is missing from the table.

use std::fmt::Write as _;

use crate::routing::{Backend, Target};
use crate::source::files::Loaded;
use crate::translate::{Condition, Reason, Translation};

/// How bad a condition is for `portico check`'s exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn of(reason: Reason) -> Severity {
        match reason {
            // Served as the spec says, but probably not what the author meant.
            Reason::PathShadowed
            | Reason::DefaultBackendShadowed
            | Reason::TlsHostConflict
            | Reason::TlsHostNotCovered
            | Reason::SnippetDropped
            | Reason::UnsupportedAnnotation
            | Reason::CanaryWithoutMain
            | Reason::BasicAuthUserUnusable
            | Reason::UnsupportedConfigMapKey => Severity::Warning,
            Reason::InvalidIngress
            | Reason::InvalidHost
            | Reason::InvalidPath
            | Reason::InvalidBackend
            | Reason::ServiceNotFound
            | Reason::ServicePortNotFound
            | Reason::ServicePortNotTcp
            | Reason::ResourceBackendUnsupported
            | Reason::ExternalNameRejected
            | Reason::ExternalNameDisabled
            // A TLS host that falls back to the default certificate, or a certificate clients
            // will refuse, breaks HTTPS for that host.
            | Reason::TlsSecretNotFound
            | Reason::TlsSecretInvalid
            | Reason::TlsSecretCrossNamespace
            | Reason::TlsHostInvalid
            | Reason::TlsCertificateExpired
            | Reason::TlsCertificateNotYetValid
            // An annotation value that is ignored (the default applies instead).
            | Reason::InvalidAnnotation
            | Reason::InvalidConfigMapKey
            | Reason::ConfigMapNotFound
            | Reason::AccessControlUnsupported => Severity::Error,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// The check's text and whether it found an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub text: String,
    pub errors: usize,
    pub warnings: usize,
}

impl Report {
    /// The process exit code: 0 clean or warnings only, 1 with errors.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.errors > 0)
    }
}

/// Builds the report for what was loaded and what it translated to.
pub fn report(loaded: &Loaded, translation: &Translation) -> Report {
    let mut text = String::new();
    let mut errors = 0;
    let mut warnings = 0;
    for e in &loaded.errors {
        errors += 1;
        let _ = writeln!(text, "error   load: {e}");
    }
    for Condition {
        object,
        reason,
        message,
    } in &translation.conditions
    {
        let severity = Severity::of(*reason);
        match severity {
            Severity::Error => errors += 1,
            Severity::Warning => warnings += 1,
        }
        let _ = writeln!(
            text,
            "{:<7} {object}: {reason:?}: {message}",
            severity.word()
        );
    }
    let table = &translation.table;
    // issue 14: where each canary Ingress is attached.
    for line in canary_attachments(translation) {
        let _ = writeln!(text, "canary  {line}");
    }
    let unserved = unavailable_routes(translation);
    let _ = writeln!(
        text,
        "summary: {} of {} Ingresses owned; {} vhosts, {} routes ({} answering 503), {} endpoints, default backend: {}; {} skipped documents; {} {}, {} {}",
        translation.owned.len(),
        loaded.snapshot.ingresses.len(),
        table.vhosts().len(),
        table.route_count(),
        unserved,
        crate::metrics::endpoint_count(table),
        if table.default_backend().is_some() { "yes" } else { "no" },
        loaded.skipped.len(),
        errors,
        if errors == 1 { "error" } else { "errors" },
        warnings,
        if warnings == 1 { "warning" } else { "warnings" },
    );
    Report {
        text,
        errors,
        warnings,
    }
}

/// One line per canary Ingress and main backend it is attached to, sorted.
fn canary_attachments(translation: &Translation) -> Vec<String> {
    let table = &translation.table;
    let backends = table
        .vhosts()
        .iter()
        .flat_map(|v| v.routes.iter().map(|r| &r.backend).chain(v.fallback.iter()))
        .chain(table.default_backend());
    let mut lines: Vec<String> = backends
        .filter_map(|b| {
            let c = b.policy.canary.as_deref()?;
            Some(format!(
                "Ingress {}: attached to {} (canary {}; {})",
                c.ingress,
                b.reference,
                c.backend.reference,
                c.shaping.describe()
            ))
        })
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

/// Routes whose backend cannot take traffic (missing Service, no ready endpoints, ...).
fn unavailable_routes(translation: &Translation) -> usize {
    let unavailable = |b: &Backend| matches!(b.target, Target::Unavailable(_));
    translation
        .table
        .vhosts()
        .iter()
        .flat_map(|v| v.routes.iter())
        .filter(|r| unavailable(&r.backend))
        .count()
}

/// Reads `input` (a directory, a file, or `-` for standard input) the way the manifests source
/// does, under the same limits.
pub fn load_input(input: &std::path::Path, limits: &crate::source::files::Limits) -> Loaded {
    use std::io::Read as _;
    if input.as_os_str() == "-" {
        let mut loaded = Loaded::default();
        let mut text = String::new();
        let read = std::io::stdin()
            .take(limits.max_file_bytes.saturating_add(1))
            .read_to_string(&mut text);
        if read.is_ok() && text.len() as u64 > limits.max_file_bytes {
            loaded
                .errors
                .push(crate::source::files::LoadError::Refused {
                    file: "<stdin>".to_string(),
                    reason: format!(
                        "larger than {} bytes (--manifests-max-file-size)",
                        limits.max_file_bytes
                    ),
                });
            return loaded;
        }
        match read {
            Ok(_) => crate::source::files::parse_documents("<stdin>", &text, &mut loaded),
            Err(e) => loaded.errors.push(crate::source::files::LoadError::Read {
                file: "<stdin>".to_string(),
                message: e.to_string(),
            }),
        }
        return loaded;
    }
    crate::source::files::load(input, limits)
}
