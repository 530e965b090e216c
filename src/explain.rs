//! Explain: why a request goes where it goes. Reads a `RouteTable` (the published one for
//! `/debug/explain`, a freshly translated one for `portico explain`) and retraces spec §3.3–3.7
//! step by step: which vhost and why, every candidate route in precedence order with matched or
//! not and why, and the backend that answers.
//!
//! The final answer is always the table's own [`RouteTable::decide`]; the reasons are derived
//! alongside it, and a test pins the two together. Knows routing types, not hyper.
//!
//! TLS (certificate served for the SNI, HTTPS redirect) is not built yet; the `tls` section
//! says so instead of guessing. That is where the TLS work adds its part.

use std::fmt;

use serde::Serialize;

use crate::routing::{normalize, Decision, HostMatch, PathType, Route, RouteTable, Target};

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The published version explained, when explaining a running controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    pub request: RequestView,
    pub vhost: VhostChoice,
    /// The selected vhost's routes in precedence order (spec §3.6); empty without a vhost.
    pub routes: Vec<Candidate>,
    pub outcome: Outcome,
    pub tls: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestView {
    pub host: String,
    pub path: String,
    /// The host and path as matched (spec §3.2, §3.4).
    pub match_host: String,
    pub match_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VhostChoice {
    /// `shop.example`, `*.docs.example`, `*` (hostless), or `None`.
    pub selected: Option<String>,
    /// `exact`, `wildcard`, `hostless` or `none`.
    pub how: &'static str,
    pub why: String,
    /// Vhosts that look related but do not apply (a wildcard one label off, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// Position in precedence order, from 1.
    pub rank: usize,
    pub path: String,
    pub path_type: PathType,
    /// `namespace/name rule R path P`.
    pub from: String,
    pub backend: String,
    pub matched: bool,
    pub chosen: bool,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// `route`, `fallback`, `default` or `notFound`.
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// What the client gets.
    pub answer: String,
    pub why: String,
}

/// Explains the decision for a request with Host (or authority) `host` and path `path`.
pub fn explain(
    table: &RouteTable,
    version: Option<u64>,
    host: &str,
    path: &str,
    sni: Option<&str>,
) -> Explanation {
    let match_host = normalize::host(host);
    // A query is not part of the match (spec §3.4).
    let raw_path = path.split_once('?').map_or(path, |(p, _)| p);
    let match_path = normalize::path(raw_path);
    let decision = table.decide(&match_host, &match_path);
    let vhost = explain_vhost(table, &match_host, decision.vhost().map(|v| &v.host));
    let routes = decision
        .vhost()
        .map(|v| explain_routes(&v.routes, &match_path, decision.route(), v))
        .unwrap_or_default();
    let outcome = explain_outcome(&decision);
    let tls = match sni {
        Some(name) => format!(
            "not configured: Portico serves plain HTTP only (TLS is not built yet); SNI {name:?} is not used"
        ),
        None => "not configured: Portico serves plain HTTP only (TLS is not built yet)".to_string(),
    };
    Explanation {
        version,
        request: RequestView {
            host: host.to_string(),
            path: path.to_string(),
            match_host: match_host.into_owned(),
            match_path: match_path.into_owned(),
            sni: sni.map(str::to_string),
        },
        vhost,
        routes,
        outcome,
        tls,
    }
}

fn explain_vhost(table: &RouteTable, host: &str, selected: Option<&HostMatch>) -> VhostChoice {
    let mut notes = Vec::new();
    for v in table.vhosts() {
        if let HostMatch::Wildcard(suffix) = &v.host {
            if host == suffix {
                notes.push(format!(
                    "*.{suffix} does not match {host}: a wildcard needs one label before .{suffix} (spec §3.3)"
                ));
            } else if let Some(head) = host.strip_suffix(suffix.as_str()) {
                if let Some(labels) = head.strip_suffix('.') {
                    if labels.contains('.') {
                        notes.push(format!(
                            "*.{suffix} does not match {host}: a wildcard covers exactly one label, {host} has {} labels before .{suffix} (spec §3.3)",
                            labels.split('.').count()
                        ));
                    }
                }
            }
        }
    }
    let shown_host = if host.is_empty() { "(no host)" } else { host };
    let (how, why) = match selected {
        Some(HostMatch::Exact(h)) => ("exact", format!("the rule host {h} equals the request host")),
        Some(HostMatch::Wildcard(s)) => (
            "wildcard",
            format!("no exact rule host for {shown_host}; *.{s} matches its first label"),
        ),
        Some(HostMatch::Any) => (
            "hostless",
            format!("no exact or wildcard rule host matches {shown_host}; the rules without a host apply"),
        ),
        None => (
            "none",
            format!("no rule host matches {shown_host} and there are no rules without a host"),
        ),
    };
    VhostChoice {
        selected: selected.map(ToString::to_string),
        how,
        why,
        notes,
    }
}

fn explain_routes(
    routes: &[Route],
    path: &str,
    chosen: Option<&Route>,
    vhost: &crate::routing::VirtualHost,
) -> Vec<Candidate> {
    let chosen_rank = chosen.and_then(|c| routes.iter().position(|r| std::ptr::eq(r, c)));
    let shadowed: Vec<*const Route> = vhost.shadowed().map(|(r, _)| r as *const Route).collect();
    routes
        .iter()
        .enumerate()
        .map(|(i, route)| {
            let (matched, mut why) = match_reason(route, path);
            let is_chosen = chosen_rank == Some(i);
            if matched && !is_chosen {
                if let Some(w) = chosen_rank {
                    why = format!("{why}; but route {} comes first (spec §3.6)", w + 1);
                }
            }
            if shadowed.contains(&(route as *const Route)) {
                why.push_str("; shadowed: another route with the same paths always wins");
            }
            Candidate {
                rank: i + 1,
                path: route.path.clone(),
                path_type: route.path_type,
                from: format!(
                    "{}/{} rule {} path {}",
                    route.origin.namespace, route.origin.name, route.origin.rule, route.origin.path
                ),
                backend: route.backend.reference.to_string(),
                matched,
                chosen: is_chosen,
                why,
            }
        })
        .collect()
}

/// Whether `route` matches `path`, and why, in the words of spec §3.5.
fn match_reason(route: &Route, path: &str) -> (bool, String) {
    let matched = route.matches(path);
    if !route.path_type.is_prefix() {
        return if matched {
            (true, format!("Exact {} equals the path", route.path))
        } else {
            (false, format!("Exact {} is not the whole path", route.path))
        };
    }
    let kind = match route.path_type {
        PathType::ImplementationSpecific => "ImplementationSpecific (as Prefix)",
        _ => "Prefix",
    };
    let key = route.prefix_key();
    if key.is_empty() {
        return (true, format!("{kind} / matches every path"));
    }
    if matched {
        if path == key {
            return (true, format!("{kind} {} equals the path", route.path));
        }
        return (
            true,
            format!("{kind} {} matches the path's leading elements", route.path),
        );
    }
    if path.starts_with(key) {
        return (
            false,
            format!(
                "{kind} {} matches whole path elements only: {path} continues the element {:?}",
                route.path,
                key.rsplit('/').next().unwrap_or(key)
            ),
        );
    }
    (
        false,
        format!("{kind} {} is not a prefix of the path", route.path),
    )
}

fn explain_outcome(decision: &Decision<'_>) -> Outcome {
    let (name, why) = match decision {
        Decision::Route { .. } => ("route", "the first matching route in precedence order serves (spec §3.6)".to_string()),
        Decision::Fallback { .. } => (
            "fallback",
            "no route matched; the vhost's fallback (the defaultBackend of its oldest Ingress that has one) serves (spec §3.7)".to_string(),
        ),
        Decision::Default { vhost: Some(_), .. } => (
            "default",
            "no route of the hostless rules matched; the default backend serves (spec §3.7)".to_string(),
        ),
        Decision::Default { vhost: None, .. } => (
            "default",
            "no vhost; the default backend serves (spec §3.7)".to_string(),
        ),
        Decision::NotFound { vhost: Some(v) } if v.host != HostMatch::Any => (
            "notFound",
            format!(
                "no route of {} matched and it has no fallback; requests never fall through to a less specific host (spec §3.3)",
                v.host
            ),
        ),
        Decision::NotFound { .. } => (
            "notFound",
            "nothing matched and there is no default backend".to_string(),
        ),
    };
    let backend = decision.backend();
    let answer = match backend.map(|b| &b.target) {
        None => "404 Not Found".to_string(),
        Some(Target::Endpoints(addrs)) => {
            let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            format!(
                "proxied to one of {} endpoint(s), round-robin: {}",
                addrs.len(),
                list.join(", ")
            )
        }
        Some(Target::ExternalName { host, port }) => {
            format!("proxied to ExternalName {host}:{port} (resolved when connecting)")
        }
        Some(Target::Unavailable(reason)) => format!("503 Service Unavailable ({reason:?})"),
    };
    Outcome {
        decision: name,
        backend: backend.map(|b| b.reference.to_string()),
        target: backend.map(|b| b.target.clone()),
        answer,
        why,
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.request;
        if let Some(v) = self.version {
            writeln!(f, "configuration: version {v}")?;
        }
        writeln!(
            f,
            "request: host {:?} path {:?} (matched as host {:?} path {:?})",
            r.host, r.path, r.match_host, r.match_path
        )?;
        match &self.vhost.selected {
            Some(v) => writeln!(f, "vhost:   {v} ({}): {}", self.vhost.how, self.vhost.why)?,
            None => writeln!(f, "vhost:   none: {}", self.vhost.why)?,
        }
        for note in &self.vhost.notes {
            writeln!(f, "         note: {note}")?;
        }
        if !self.routes.is_empty() {
            writeln!(f, "routes (precedence order):")?;
            for c in &self.routes {
                let mark = if c.chosen {
                    "chosen"
                } else if c.matched {
                    "match "
                } else {
                    "no    "
                };
                writeln!(
                    f,
                    "  {:>2}. {mark} {:?} {} -> {} [{}]: {}",
                    c.rank, c.path_type, c.path, c.backend, c.from, c.why
                )?;
            }
        }
        let o = &self.outcome;
        match &o.backend {
            Some(b) => writeln!(f, "outcome: {} -> {b}: {}", o.decision, o.why)?,
            None => writeln!(f, "outcome: {}: {}", o.decision, o.why)?,
        }
        writeln!(f, "answer:  {}", o.answer)?;
        writeln!(f, "tls:     {}", self.tls)
    }
}
