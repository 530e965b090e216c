//! The access log keys of the controller ConfigMap (issue 13: `log-format-upstream`,
//! `log-format-escape-json`, `log-format-escape-none`), typed at translate time into a
//! [`LogTemplate`] published in [`super::Global`]; `access_log.rs` fills it per line on its
//! writer thread.
//!
//! A `log-format-upstream` string is parsed against a fixed list of variables Portico can fill
//! ([`VARIABLES`], plus `$http_NAME` for any request header); it is never evaluated. Text
//! between variables is kept literally. An unknown variable or a malformed string is a message
//! naming it, and Portico's own format applies (ingress-nginx's `log_format` syntax: nginx
//! `src/http/modules/ngx_http_log_module.c` `ngx_http_log_compile_format`).

use std::collections::BTreeMap;
use std::sync::Arc;

/// How variable values are escaped (nginx `log_format ... escape=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Escape {
    /// `"`, `\`, control bytes and bytes from 0x7f up as `\xHH`; a missing value is `-`.
    #[default]
    Default,
    /// `log-format-escape-json`: JSON string escaping; a missing value is empty.
    Json,
    /// `log-format-escape-none`: values as they are; a missing value is empty.
    None,
}

/// A value Portico knows per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    RemoteAddr,
    RemotePort,
    TimeLocal,
    TimeIso8601,
    Msec,
    Request,
    RequestMethod,
    RequestUri,
    Uri,
    Args,
    ServerProtocol,
    Scheme,
    Host,
    Status,
    BodyBytesSent,
    RequestTime,
    UpstreamAddr,
    UpstreamResponseTime,
    ReqId,
    Namespace,
    IngressName,
    ServiceName,
    SslProtocol,
    SslServerName,
}

/// The variables a `log-format-upstream` may use, by name (besides `$http_NAME`).
pub const VARIABLES: &[(&str, Var)] = &[
    ("args", Var::Args),
    ("body_bytes_sent", Var::BodyBytesSent),
    ("host", Var::Host),
    ("ingress_name", Var::IngressName),
    ("msec", Var::Msec),
    ("namespace", Var::Namespace),
    ("query_string", Var::Args),
    ("remote_addr", Var::RemoteAddr),
    ("remote_port", Var::RemotePort),
    ("req_id", Var::ReqId),
    ("request", Var::Request),
    ("request_method", Var::RequestMethod),
    ("request_time", Var::RequestTime),
    ("request_uri", Var::RequestUri),
    ("scheme", Var::Scheme),
    ("server_protocol", Var::ServerProtocol),
    ("service_name", Var::ServiceName),
    ("ssl_protocol", Var::SslProtocol),
    ("ssl_server_name", Var::SslServerName),
    ("status", Var::Status),
    ("time_iso8601", Var::TimeIso8601),
    ("time_local", Var::TimeLocal),
    ("upstream_addr", Var::UpstreamAddr),
    ("upstream_response_time", Var::UpstreamResponseTime),
    ("uri", Var::Uri),
];

/// Longest `log-format-upstream` accepted, and most request headers it may name: a line is
/// built per request, so its size stays bounded.
const MAX_LEN: usize = 8 * 1024;
const MAX_HEADERS: usize = 32;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Var(Var),
    /// `$http_NAME`: the request header at this index of [`LogTemplate::headers`].
    Header(usize),
}

/// A parsed `log-format-upstream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTemplate {
    pub parts: Vec<Part>,
    /// The request headers `$http_NAME` names, lower-case with `-` for `_`, each once; the
    /// proxy copies only these from a request.
    pub headers: Vec<String>,
    pub escape: Escape,
}

impl LogTemplate {
    /// Parses `format`: `$name` or `${name}`, names of letters, digits and `_`.
    pub fn parse(format: &str, escape: Escape) -> Result<LogTemplate, String> {
        if format.len() > MAX_LEN {
            return Err(format!("is longer than {MAX_LEN} bytes"));
        }
        // One line per request: a newline or another control character in the template would
        // split or corrupt lines (a tab is kept).
        if let Some(at) = format.find(|c: char| c.is_control() && c != '\t') {
            return Err(format!("has a control character at byte {at}"));
        }
        let mut parts = Vec::new();
        let mut headers: Vec<String> = Vec::new();
        let mut literal = String::new();
        let mut rest = format;
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, next) = if let Some(braced) = after.strip_prefix('{') {
                match braced.find('}') {
                    Some(end) => (&braced[..end], &braced[end + 1..]),
                    None => return Err("has a \"${\" without its \"}\"".to_string()),
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!(
                    "has an invalid variable name after \"$\" at byte {at}"
                ));
            }
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            let lower = name.to_ascii_lowercase();
            if let Some(header) = lower.strip_prefix("http_") {
                if header.is_empty() {
                    return Err("names $http_ without a header".to_string());
                }
                let header = header.replace('_', "-");
                let index = match headers.iter().position(|h| *h == header) {
                    Some(i) => i,
                    None => {
                        if headers.len() == MAX_HEADERS {
                            return Err(format!("names more than {MAX_HEADERS} headers"));
                        }
                        headers.push(header);
                        headers.len() - 1
                    }
                };
                parts.push(Part::Header(index));
            } else {
                match VARIABLES.iter().find(|(n, _)| *n == lower) {
                    Some((_, var)) => parts.push(Part::Var(*var)),
                    None => {
                        // Names are bounded in messages (a megabyte of garbage is named,
                        // not copied into every log line and Event).
                        let mut shown: String = name.chars().take(64).collect();
                        if shown.len() < name.len() {
                            shown.push_str("...");
                        }
                        return Err(format!(
                            "uses ${shown}, which Portico cannot fill (it fills ${} and $http_NAME)",
                            VARIABLES
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", $")
                        ));
                    }
                }
            }
            rest = next;
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(LogTemplate {
            parts,
            headers,
            escape,
        })
    }
}

/// Reads `log-format-upstream`, `log-format-escape-json` and `log-format-escape-none`.
/// `None`: no template (unset, empty or invalid), so Portico's own format applies. Each
/// invalid value is a message naming the key and the reason.
pub fn from_configmap(data: &BTreeMap<String, String>) -> (Option<Arc<LogTemplate>>, Vec<String>) {
    let mut problems = Vec::new();
    let mut flag = |key: &str| match data.get(key).map(|v| v.trim()) {
        None | Some("") => false,
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
        Some(other) => {
            problems.push(format!(
                "{key}: {} is not a boolean; using false",
                super::compression::shown(other)
            ));
            false
        }
    };
    // nginx.tmpl: `escape=none` wins over `escape=json` when both are set.
    let none = flag("log-format-escape-none");
    let json = flag("log-format-escape-json");
    let escape = if none {
        Escape::None
    } else if json {
        Escape::Json
    } else {
        Escape::Default
    };
    let template = match data.get("log-format-upstream") {
        None => None,
        Some(format) if format.trim().is_empty() => None,
        Some(format) => match LogTemplate::parse(format, escape) {
            Ok(t) => Some(Arc::new(t)),
            Err(reason) => {
                problems.push(format!(
                    "log-format-upstream: {reason}; Portico's own access log format applies"
                ));
                None
            }
        },
    };
    (template, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn variables_and_literal_text_are_kept_apart() {
        let t = LogTemplate::parse(
            "$remote_addr - [$time_local] \"${request}\" $status $http_user_agent x$http_User_Agent",
            Escape::Default,
        )
        .unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Var(Var::RemoteAddr),
                Part::Literal(" - [".into()),
                Part::Var(Var::TimeLocal),
                Part::Literal("] \"".into()),
                Part::Var(Var::Request),
                Part::Literal("\" ".into()),
                Part::Var(Var::Status),
                Part::Literal(" ".into()),
                Part::Header(0),
                Part::Literal(" x".into()),
                Part::Header(0),
            ]
        );
        assert_eq!(t.headers, vec!["user-agent".to_string()]);
    }

    #[test]
    fn the_e2e_json_format_parses() {
        // test/e2e/settings/log-format.go "log-format-escape-json enabled".
        let (t, problems) = from_configmap(&map(&[
            ("log-format-escape-json", "true"),
            (
                "log-format-upstream",
                "\"{\"my_header1\":\"$http_header1\", \"my_header2\":\"$http_header2\"}\"",
            ),
        ]));
        assert!(problems.is_empty(), "{problems:?}");
        let t = t.unwrap();
        assert_eq!(t.escape, Escape::Json);
        assert_eq!(t.headers.len(), 2);
    }

    #[test]
    fn an_unknown_variable_is_named_and_no_template_applies() {
        let (t, problems) = from_configmap(&map(&[(
            "log-format-upstream",
            "$remote_addr $upstream_status",
        )]));
        assert!(t.is_none());
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("log-format-upstream: uses $upstream_status,"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for bad in [
            "$",
            "a $ b",
            "${status",
            "${}",
            "$http_",
            "${a b}",
            "$status\n$host",
            "\u{0}",
        ] {
            let (t, problems) = from_configmap(&map(&[("log-format-upstream", bad)]));
            assert!(t.is_none(), "{bad:?}");
            assert_eq!(problems.len(), 1, "{bad:?}");
        }
        let long = "x".repeat(MAX_LEN + 1);
        assert!(LogTemplate::parse(&long, Escape::Default).is_err());
        let many: String = (0..=MAX_HEADERS).map(|i| format!("$http_h{i} ")).collect();
        assert!(LogTemplate::parse(&many, Escape::Default).is_err());
        let huge = format!("$a{}", "b".repeat(1 << 20));
        let (_, problems) = from_configmap(&map(&[("log-format-upstream", &huge)]));
        assert!(problems[0].len() < 2048, "bounded message");
        let (_, problems) = from_configmap(&map(&[("log-format-escape-json", "yes")]));
        assert!(problems[0].starts_with("log-format-escape-json"));
    }

    #[test]
    fn escape_none_wins_over_json() {
        let (t, _) = from_configmap(&map(&[
            ("log-format-escape-json", "true"),
            ("log-format-escape-none", "true"),
            ("log-format-upstream", "$status"),
        ]));
        assert_eq!(t.unwrap().escape, Escape::None);
    }
}
