//! Explain: why a request goes where it goes. Reads a `RouteTable` (the published one for
//! `/debug/explain`, a freshly translated one for `portico explain`) and retraces spec §3.3–3.7
//! step by step: which vhost and why, every candidate route in precedence order with matched or
//! not and why, and the backend that answers.
//!
//! The final answer is always the table's own [`RouteTable::decide`]; the reasons are derived
//! alongside it, and a test pins the two together. Knows routing types, not hyper.
//!
//! For TLS it says which certificate a handshake with the request's SNI gets (spec §5.3), from
//! the same [`TlsTable::selection`] the resolver serves from, and whether plain HTTP would be
//! redirected (spec §5.5), from the same [`Decision::ssl_redirect`] the proxy acts on.

use std::fmt;

use serde::Serialize;

use crate::routing::normalize::PathRules;
use crate::routing::{
    normalize, rewrite_target, Decision, HostMatch, PathType, RegexMode, Route, RouteTable, Target,
};
use crate::tls::{format_time, normalize_sni, Binding, Certificate, CertificateInfo, TlsTable};
use crate::translate::{Condition, Reason, Translation};

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
    pub tls: TlsChoice,
    pub redirect: RedirectChoice,
}

/// The certificate a handshake gets (spec §5.3).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsChoice {
    /// The server name looked up (normalised); `None`: no SNI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// `sni` (given), `host` (none given: the request host, as clients send it) or `none`.
    pub sni_from: &'static str,
    /// `exact`, `wildcard` or `default`.
    pub selected_by: &'static str,
    /// The matched binding, `host (Ingress ns/name)`, also when it falls back to the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    /// `ns/name` of the Secret served, or `generated` for the certificate made at start.
    pub secret: String,
    /// The served certificate; `None` for the generated one (made at start, not known here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateInfo>,
    pub why: String,
    /// Conditions about the binding or the certificate (expired, conflicts, not covered).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What a plain-HTTP request gets (spec §5.5).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedirectChoice {
    pub redirected: bool,
    /// `https://host/path?query` when redirected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub why: String,
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
    /// The path the backend is sent when normalisation changed it (spec §6.1); `None`: the
    /// request's own path, byte-for-byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_path: Option<String>,
    /// Why the proxy answers 400 before routing (docs/security.md); `None`: it routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
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

/// Explains the decision for a request with Host (or authority) `host` and path `path`, and
/// the certificate a handshake with server name `sni` gets (`None`: the request host, as
/// clients send it). The proxy's default path checks apply.
pub fn explain(
    translation: &Translation,
    version: Option<u64>,
    host: &str,
    path: &str,
    sni: Option<&str>,
) -> Explanation {
    explain_with(translation, version, host, path, sni, PathRules::default())
}

/// [`explain`] under the path checks `rules` (`--allow-encoded-slashes`): a host or path the
/// proxy answers 400 is explained as such, with the reason (docs/security.md).
pub fn explain_with(
    translation: &Translation,
    version: Option<u64>,
    host: &str,
    path: &str,
    sni: Option<&str>,
    rules: PathRules,
) -> Explanation {
    let table = &translation.table;
    let match_host = normalize::host(host);
    // A query is not part of the match (spec §3.4).
    let raw_path = path.split_once('?').map_or(path, |(p, _)| p);
    // The proxy's own checks, in its order: the authority, then the path (spec §6.1).
    let checked = normalize::check_authority(host)
        .map_err(|r| ("Host", r))
        .and_then(|()| normalize::request_path(raw_path, rules).map_err(|r| ("path", r)));
    let (match_path, rejected) = match checked {
        Ok(p) => (p, None),
        Err(what) => (normalize::path(raw_path), Some(what)),
    };
    let forwarded_path = (rejected.is_none() && normalize::forwards_changed(raw_path, &match_path))
        .then(|| match path.split_once('?') {
            Some((_, query)) => format!("{match_path}?{query}"),
            None => match_path.to_string(),
        });
    if let Some((what, reason)) = rejected {
        return Explanation {
            version,
            request: RequestView {
                host: host.to_string(),
                path: path.to_string(),
                match_host: match_host.to_string(),
                match_path: match_path.into_owned(),
                sni: sni.map(str::to_string),
                forwarded_path: None,
                rejected: Some(format!("{what}: {reason}")),
            },
            vhost: VhostChoice {
                selected: None,
                how: "none",
                why: "not routed: the request is refused first".to_string(),
                notes: Vec::new(),
            },
            routes: Vec::new(),
            outcome: Outcome {
                decision: "badRequest",
                backend: None,
                target: None,
                answer: "400 Bad Request".to_string(),
                why: format!(
                    "the {what} is refused before routing ({reason}): backends could read it otherwise than Portico matches it (spec §6.1, RFC 9112 §3.2; docs/security.md)"
                ),
            },
            tls: explain_tls(translation, &match_host, sni),
            redirect: RedirectChoice {
                redirected: false,
                location: None,
                why: "a refused request is never redirected".to_string(),
            },
        };
    }
    let decision = table.decide(&match_host, &match_path);
    let vhost = explain_vhost(table, &match_host, decision.vhost().map(|v| &v.host));
    let routes = decision
        .vhost()
        .map(|v| explain_routes(&v.routes, &match_path, decision.route(), v))
        .unwrap_or_default();
    let mut outcome = explain_outcome(&decision);
    if let Some(root) = decision
        .vhost()
        .and_then(|v| v.app_root.as_deref())
        .filter(|_| match_path == "/")
    {
        outcome.answer = format!("302 Found to {root} on this host (app-root)");
        outcome.why = "app-root: ingress-nginx redirects a request for / at server level, before any location or HTTPS redirect".to_string();
    }
    // issue 13: what a rewriting location sends upstream.
    let forwarded_path = match decision {
        Decision::Route {
            route,
            location: Some(location),
            ..
        } if location.rewrites => route
            .backend
            .policy
            .rewrite
            .as_deref()
            .and_then(|r| r.target.as_ref())
            .and_then(|t| {
                rewrite_target(
                    location,
                    t,
                    &match_path,
                    path.split_once('?').map(|(_, q)| q),
                )
            })
            .or(forwarded_path),
        _ => forwarded_path,
    };
    let tls = explain_tls(translation, &match_host, sni);
    let redirect = explain_redirect(translation, &decision, host, path, &match_path);
    Explanation {
        version,
        request: RequestView {
            host: host.to_string(),
            path: path.to_string(),
            match_host: match_host.into_owned(),
            match_path: match_path.into_owned(),
            sni: sni.map(str::to_string),
            forwarded_path,
            rejected: None,
        },
        vhost,
        routes,
        outcome,
        tls,
        redirect,
    }
}

/// spec §5.3, through [`TlsTable::selection`]: the resolver's own choice, with the reasons.
fn explain_tls(translation: &Translation, match_host: &str, sni: Option<&str>) -> TlsChoice {
    let tls: &TlsTable = &translation.tls;
    let (name, sni_from) = match sni {
        Some(s) => (Some(normalize_sni(s).into_owned()), "sni"),
        None if !match_host.is_empty() => (Some(match_host.to_string()), "host"),
        None => (None, "none"),
    };
    let selection = tls.selection(name.as_deref());
    let mut notes = Vec::new();
    let binding_text = |b: &Binding| format!("{} (Ingress {}/{})", b.host, b.namespace, b.ingress);
    let (selected_by, why) = match (selection.binding, &name) {
        (Some(b), _) if selection.is_bound() => {
            let how = if selection.is_wildcard() {
                "wildcard"
            } else {
                "exact"
            };
            let text = if selection.is_wildcard() {
                format!(
                    "no exact binding; {} covers one label (spec §5.3 step 3)",
                    binding_text(b)
                )
            } else {
                format!("exact binding {} (spec §5.3 step 2)", binding_text(b))
            };
            (how, text)
        }
        (Some(b), _) => {
            let reason = match &b.secret {
                None => "its tls entry has no secretName, so the default certificate is served (spec §5.2)".to_string(),
                Some(secret) => {
                    let problem = binding_conditions(translation, b)
                        .find(|c| {
                            matches!(
                                c.reason,
                                Reason::TlsSecretNotFound
                                    | Reason::TlsSecretInvalid
                                    | Reason::TlsSecretCrossNamespace
                            ) && names_secret(c, &b.namespace, secret)
                        })
                        .map(|c| format!("{:?}: {}", c.reason, c.message))
                        .unwrap_or_else(|| "the Secret is not usable".to_string());
                    format!("but its Secret {secret:?} cannot be served, so the default certificate is (spec §5.1): {problem}")
                }
            };
            ("default", format!("{} matches, {reason}", binding_text(b)))
        }
        (None, Some(n)) => (
            "default",
            format!("no Ingress binds {n} (exactly, or by a *. wildcard one label above it): the default certificate (spec §5.3 step 4)"),
        ),
        (None, None) => (
            "default",
            "no SNI (no --sni and no request host): the default certificate (spec §5.3 step 4)"
                .to_string(),
        ),
    };
    if let Some(b) = selection.binding {
        let host = b.host.to_string();
        for c in binding_conditions(translation, b) {
            let about_host = match c.reason {
                Reason::TlsHostNotCovered => c.message.contains(&format!(" cover {host} ")),
                _ => false,
            };
            let about_cert = match (c.reason, b.certificate.as_deref()) {
                (Reason::TlsCertificateExpired | Reason::TlsCertificateNotYetValid, Some(cert)) => {
                    c.message.contains(&format!("Secret {} ", cert.secret))
                }
                _ => false,
            };
            if about_host || about_cert {
                notes.push(format!("{:?}: {}", c.reason, c.message));
            }
        }
        // Younger Ingresses naming the same host lost (spec §5.2: the oldest binding wins).
        let lost = format!(" {host} is already bound by older Ingress ");
        for c in &translation.conditions {
            if c.reason == Reason::TlsHostConflict && c.message.contains(&lost) {
                notes.push(format!("{}: {:?}: {}", c.object, c.reason, c.message));
            }
        }
    }
    let served: Option<&Certificate> = selection.certificate.map(|c| &**c);
    if !selection.is_bound() {
        // The configured default's own problems (unusable, so the generated one is served;
        // expired) are conditions on that Secret.
        for c in &translation.conditions {
            if c.object.kind == "Secret" && c.message.starts_with("--default-ssl-certificate") {
                notes.push(format!("{:?}: {}", c.reason, c.message));
            }
        }
    }
    let secret = served.map_or_else(|| "generated".to_string(), |c| c.secret.clone());
    let why = if selection.is_bound() {
        why
    } else {
        match served {
            Some(c) => format!("{why}; the default is --default-ssl-certificate {}", c.secret),
            None => format!(
                "{why}; the default is the certificate generated at start (CN={}, {}; no usable --default-ssl-certificate)",
                crate::tls::GENERATED_CN,
                crate::tls::GENERATED_NAME
            ),
        }
    };
    TlsChoice {
        sni: name,
        sni_from,
        selected_by,
        binding: selection.binding.map(binding_text),
        secret,
        certificate: served.map(|c| c.info.clone()),
        why,
        notes,
    }
}

/// The conditions on the Ingress that made `binding`.
fn binding_conditions<'a>(
    translation: &'a Translation,
    binding: &'a Binding,
) -> impl Iterator<Item = &'a Condition> + 'a {
    translation.conditions.iter().filter(move |c| {
        c.object.kind == "Ingress"
            && c.object.namespace == binding.namespace
            && c.object.name == binding.ingress
    })
}

/// Whether a condition message is about Secret `secret` (as the Ingress named it).
fn names_secret(condition: &Condition, namespace: &str, secret: &str) -> bool {
    let m = &condition.message;
    m.contains(&format!("Secret {namespace}/{secret} "))
        || m.contains(&format!("Secret {namespace}/{secret}:"))
        || m.contains(&format!("{secret:?}"))
}

/// spec §5.5, from the table's own [`Decision::ssl_redirect`] and the proxy's ACME rule.
fn explain_redirect(
    translation: &Translation,
    decision: &Decision<'_>,
    host: &str,
    path: &str,
    match_path: &str,
) -> RedirectChoice {
    let not = |why: String| RedirectChoice {
        redirected: false,
        location: None,
        why,
    };
    let setting = |ns: &str, name: &str| {
        translation
            .ssl_redirects
            .iter()
            .find(|s| s.ingress.namespace == ns && s.ingress.name == name)
    };
    // `from-to-www-redirect`: the other spelling of a rule host redirects before routing.
    if let Some(to) = translation
        .table
        .www_redirect(&crate::routing::normalize::host(host))
    {
        let target = if path.starts_with('/') { path } else { "/" };
        let target = target.strip_suffix('/').unwrap_or(target);
        return RedirectChoice {
            redirected: true,
            location: Some(format!("http://{to}:80{target}")),
            why: format!(
                "308 Permanent Redirect: an Ingress of {to} sets from-to-www-redirect (on HTTPS too, to https://{to}:443)"
            ),
        };
    }
    // `permanent-redirect` / `temporal-redirect` answer before anything else, on HTTP and
    // HTTPS alike (ingress-nginx's `return` runs before its HTTPS redirect).
    if let Some(fixed) = decision.backend().and_then(|b| b.policy.redirect.as_ref()) {
        let who = match decision.route() {
            Some(r) => format!(
                "the route's Ingress {}/{}",
                r.origin.namespace, r.origin.name
            ),
            None => "the Ingress whose defaultBackend serves this request".to_string(),
        };
        return RedirectChoice {
            redirected: true,
            location: Some(fixed.url.clone()),
            why: format!(
                "{}: {who} sets a fixed redirect (permanent-redirect or temporal-redirect), on HTTP and HTTPS",
                fixed.code
            ),
        };
    }
    if decision.ssl_redirect() {
        if crate::proxy::is_acme_challenge(match_path) {
            return not(format!(
                "the vhost redirects, but ACME HTTP-01 challenges ({}) are always proxied over plain HTTP (spec §5.5)",
                "/.well-known/acme-challenge/"
            ));
        }
        let why = match decision.route() {
            Some(r) => {
                let by = setting(&r.origin.namespace, &r.origin.name)
                    .map_or("--ssl-redirect", |s| s.set_by.as_str());
                let has_tls = decision
                    .vhost()
                    .is_some_and(|v| translation.tls.has_tls(&v.host));
                if !has_tls {
                    return RedirectChoice {
                        redirected: true,
                        location: Some(crate::proxy::redirect_location(host, path)),
                        why: format!(
                            "308 Permanent Redirect: the route's Ingress {}/{} sets force-ssl-redirect (redirects without TLS on the vhost)",
                            r.origin.namespace, r.origin.name
                        ),
                    };
                }
                format!(
                    "the vhost has TLS and the route's Ingress {}/{} redirects ({by}) (spec §5.5)",
                    r.origin.namespace, r.origin.name
                )
            }
            None => "the vhost has TLS; requests no route matches follow the Ingress of its fallback, else its oldest Ingress, which redirects (spec §5.5)".to_string(),
        };
        return RedirectChoice {
            redirected: true,
            location: Some(crate::proxy::redirect_location(host, path)),
            why: format!("308 Permanent Redirect: {why}"),
        };
    }
    let Some(vhost) = decision.vhost() else {
        return not(
            "no rule host matches, and the default backend (or the 404) never redirects"
                .to_string(),
        );
    };
    if vhost.host == HostMatch::Any {
        return not("the rules without a host (and the default backend) never redirect: they have no TLS host".to_string());
    }
    if let Decision::Default { .. } = decision {
        return not("the default backend never redirects".to_string());
    }
    if !translation.tls.has_tls(&vhost.host) {
        return not(format!(
            "no Ingress binds {} to a certificate (no TLS on this vhost)",
            vhost.host
        ));
    }
    match decision.route() {
        Some(r) => {
            let why = match setting(&r.origin.namespace, &r.origin.name) {
                Some(s) => format!("{} says false", s.set_by),
                None => "it opts out".to_string(),
            };
            not(format!(
                "the vhost has TLS, but the route's Ingress {}/{} does not redirect: {why}",
                r.origin.namespace, r.origin.name
            ))
        }
        None => not("the vhost has TLS, but requests no route matches follow the Ingress of its fallback, else its oldest Ingress, which does not redirect".to_string()),
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
    // `server-alias`: the request host (exact) or its first-label suffix (wildcard) is an
    // alias of the selected rule host.
    let alias = selected.and_then(|target| {
        table.aliases().iter().find(|(alias, rule_host)| {
            rule_host == target
                && match alias {
                    HostMatch::Exact(a) => a == host,
                    HostMatch::Wildcard(s) => host
                        .split_once('.')
                        .is_some_and(|(first, rest)| !first.is_empty() && rest == s),
                    HostMatch::Any => false,
                }
        })
    });
    if let Some((alias, rule_host)) = alias {
        return VhostChoice {
            selected: Some(rule_host.to_string()),
            how: "alias",
            why: format!("{alias} is a server-alias of the rule host {rule_host}"),
            notes,
        };
    }
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
    if let Some(regex) = vhost.regex() {
        return explain_regex(routes, path, regex);
    }
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

/// A regex-mode host (issue 13): its locations in ingress-nginx's order, each with the regex
/// nginx tests; the first that matches serves.
fn explain_regex(routes: &[Route], path: &str, regex: &RegexMode) -> Vec<Candidate> {
    let chosen = regex.lookup(path);
    regex
        .locations
        .iter()
        .enumerate()
        .map(|(i, location)| {
            let route = &routes[location.route];
            let matched = location.is_match(path);
            let is_chosen = chosen == Some(i);
            let mut why = if matched {
                format!("regex {} matches the path", location.pattern())
            } else {
                format!("regex {} does not match the path", location.pattern())
            };
            if matched && !is_chosen {
                if let Some(w) = chosen {
                    why = format!("{why}; but location {} comes first (nginx order)", w + 1);
                }
            }
            if location.rewrites {
                why.push_str("; rewrite-target applies");
            }
            Candidate {
                rank: i + 1,
                path: format!("~* ^{}", location.path),
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
        Decision::Route { location: Some(location), .. } => (
            "route",
            format!(
                "regex mode (use-regex or rewrite-target on this host, as ingress-nginx): the first location in ingress-nginx's order whose case-insensitive regex matches serves: {}",
                location.pattern()
            ),
        ),
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
    // Issue 14: source ranges and limits of a route that serves.
    let answer = match backend.filter(|b| !matches!(b.target, Target::Unavailable(_))) {
        Some(b) => match b.policy.access.as_deref() {
            Some(access) => format!("{answer}; {}", access.describe()),
            None => answer,
        },
        None => answer,
    };
    // issue 14: a canary attached to the backend may take the request instead.
    let answer = match backend.and_then(|b| b.policy.canary.as_deref()) {
        Some(c) => format!(
            "{answer}; or to canary {} of Ingress {} by {}",
            c.backend.reference,
            c.ingress,
            c.shaping.describe()
        ),
        None => answer,
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
        if let Some(reason) = &r.rejected {
            writeln!(f, "refused: {reason}")?;
        }
        if let Some(p) = &r.forwarded_path {
            let why = if self
                .routes
                .iter()
                .any(|c| c.chosen && c.why.contains("rewrite-target"))
            {
                "rewrite-target of the matching location"
            } else {
                "the path that was matched, spec §6.1"
            };
            writeln!(f, "forwarded as: {p:?} ({why})")?;
        }
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
        let t = &self.tls;
        let sni = match (&t.sni, t.sni_from) {
            (Some(n), "host") => format!("SNI {n:?} (from the host)"),
            (Some(n), _) => format!("SNI {n:?}"),
            (None, _) => "no SNI".to_string(),
        };
        writeln!(
            f,
            "tls:     {sni} -> {} ({}): {}",
            t.secret, t.selected_by, t.why
        )?;
        if let Some(c) = &t.certificate {
            writeln!(
                f,
                "         certificate: {}; names {}; valid {} to {}; sha256 {}",
                c.subject,
                if c.names.is_empty() {
                    "(none)".to_string()
                } else {
                    c.names.join(", ")
                },
                format_time(c.not_before),
                format_time(c.not_after),
                c.sha256
            )?;
        }
        for note in &t.notes {
            writeln!(f, "         note: {note}")?;
        }
        let r = &self.redirect;
        match &r.location {
            Some(l) => writeln!(f, "http:    redirected to {l}: {}", r.why),
            None => writeln!(f, "http:    not redirected: {}", r.why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_requests_are_explained_with_the_reason() {
        let translation = Translation::default();
        let e = explain(&translation, None, "x@a.test", "/", None);
        assert_eq!(e.outcome.decision, "badRequest");
        assert_eq!(e.outcome.answer, "400 Bad Request");
        assert_eq!(
            e.request.rejected.as_deref(),
            Some("Host: userinfo in the authority")
        );
        let e = explain(&translation, None, "a.test", "/public//../admin", None);
        assert_eq!(
            e.request.rejected.as_deref(),
            Some("path: dot-segment after an empty segment (//..)")
        );
        assert!(e.to_string().contains("answer:  400 Bad Request"));
    }

    #[test]
    fn encoded_slash_follows_the_flag() {
        let translation = Translation::default();
        let strict = explain(&translation, None, "a.test", "/a%2Fb", None);
        assert_eq!(strict.outcome.decision, "badRequest");
        let rules = PathRules {
            allow_encoded_slashes: true,
        };
        let allowed = explain_with(&translation, None, "a.test", "/a%2Fb", None, rules);
        assert_eq!(allowed.request.rejected, None);
        assert_eq!(allowed.outcome.decision, "notFound");
    }

    #[test]
    fn a_rewritten_path_is_shown_as_forwarded() {
        let translation = Translation::default();
        let e = explain(&translation, None, "a.test", "/a/%2e%2e/b?q=/..", None);
        assert_eq!(e.request.forwarded_path.as_deref(), Some("/b?q=/.."));
        let e = explain(&translation, None, "a.test", "/a//b", None);
        assert_eq!(e.request.forwarded_path, None);
    }
}
