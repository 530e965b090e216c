//! Access log: one line per request, JSON or logfmt-style text, written by a dedicated thread.
//!
//! The proxy hands each finished request's [`Entry`] to a bounded channel with `try_send`;
//! when the writer falls behind the line is dropped and counted
//! (`portico_access_log_dropped_total`) rather than making a request wait. Formatting and the
//! `write` calls happen on the writer thread, never on the runtime.
//!
//! The controller ConfigMap's `log-format-upstream` (issue 13) replaces the line with a
//! template of named fields (`routing/log_format.rs` parses it at translate time); the entry
//! carries the template of the version that served the request and the request headers it
//! names, and [`format_entry`] fills it here, escaped as nginx's `escape=` says.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Version};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use crate::routing::log_format::{Escape, LogTemplate, Part, Var};

/// The line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Text,
}

/// Lines waiting for the writer before new ones are dropped.
pub const CAPACITY: usize = 8192;

/// The TLS side of a request, filled in by an HTTPS listener. Defined in `tls` (which must not
/// depend on the access log); re-exported here where entries use it.
pub use crate::tls::TlsInfo;

/// One finished request. Cheap to build: the strings are either already owned by the request
/// or shared (`Arc`, `Bytes`).
#[derive(Debug, Clone)]
pub struct Entry {
    pub time: SystemTime,
    pub client: SocketAddr,
    pub method: Method,
    /// The Host (or `:authority`) as the client sent it; empty when absent.
    pub host: String,
    pub target: Option<PathAndQuery>,
    pub version: Version,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration: Duration,
    /// The endpoint of the last attempt, when one was made.
    pub upstream: Option<String>,
    pub upstream_duration: Option<Duration>,
    /// Ingress namespace/name and Service; `None` when nothing was routed.
    pub route: Option<Arc<crate::metrics::RouteSeries>>,
    pub request_id: Option<HeaderValue>,
    /// Shared by every request of the connection.
    pub tls: Option<Arc<TlsInfo>>,
    /// The ConfigMap's `log-format-upstream`, when one is published; else the line is
    /// Portico's own `format`.
    pub custom: Option<Custom>,
}

/// A `log-format-upstream` template and what only it needs from the request.
#[derive(Debug, Clone)]
pub struct Custom {
    pub template: Arc<LogTemplate>,
    /// The values of [`LogTemplate::headers`], in order; `None` when the request had none.
    pub headers: Vec<Option<HeaderValue>>,
}

impl Custom {
    /// Copies the headers the template names from a request (several lines of one header are
    /// joined with `, `, as nginx's `$http_NAME` does for most headers).
    pub fn capture(template: Arc<LogTemplate>, request: &http::HeaderMap) -> Custom {
        let headers = template
            .headers
            .iter()
            .map(|name| {
                let mut values = request.get_all(name.as_str()).iter();
                let first = values.next()?;
                match values.next() {
                    None => Some(first.clone()),
                    Some(second) => {
                        let mut joined = first.as_bytes().to_vec();
                        for v in std::iter::once(second).chain(values) {
                            joined.extend_from_slice(b", ");
                            joined.extend_from_slice(v.as_bytes());
                        }
                        HeaderValue::from_bytes(&joined).ok()
                    }
                }
            })
            .collect();
        Custom { template, headers }
    }
}

/// The sending side; clones share the writer.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<Entry>,
    dropped: Counter,
}

impl AccessLog {
    /// Starts the writer thread on `out`. It ends when every `AccessLog` clone is gone.
    pub fn start(
        format: Format,
        out: Box<dyn Write + Send>,
        capacity: usize,
        dropped: Counter,
    ) -> (AccessLog, std::thread::JoinHandle<()>) {
        let (log, mut rx) = AccessLog::channel(capacity, dropped);
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::new(out);
                let mut line = String::with_capacity(512);
                while let Some(entry) = rx.blocking_recv() {
                    let mut next = Some(entry);
                    // Write what is queued, then flush once.
                    while let Some(entry) = next {
                        line.clear();
                        format_entry(format, &entry, &mut line);
                        line.push('\n');
                        if out.write_all(line.as_bytes()).is_err() {
                            return;
                        }
                        next = rx.try_recv().ok();
                    }
                    if out.flush().is_err() {
                        return;
                    }
                }
            })
            .expect("spawning the access log thread");
        (log, thread)
    }

    /// The sending side and the queue it feeds, without a writer: for benchmarks and for
    /// writers of another kind.
    pub fn channel(capacity: usize, dropped: Counter) -> (AccessLog, mpsc::Receiver<Entry>) {
        let (tx, rx) = mpsc::channel::<Entry>(capacity.max(1));
        (AccessLog { tx, dropped }, rx)
    }

    /// Queues a line, or drops and counts it when the writer is behind. Never waits.
    pub fn record(&self, entry: Entry) {
        if self.tx.try_send(entry).is_err() {
            self.dropped.inc();
        }
    }
}

/// Formats one entry (without the newline): the ConfigMap's template when the entry has one,
/// else `format`.
pub fn format_entry(format: Format, e: &Entry, out: &mut String) {
    if let Some(custom) = &e.custom {
        format_custom(e, custom, out);
        return;
    }
    let time = rfc3339(e.time);
    let target = e.target.as_ref().map_or("", PathAndQuery::as_str);
    let version = version_str(e.version);
    let labels = e.route.as_ref().map(|r| &r.labels);
    let request_id = e.request_id.as_ref().and_then(|v| v.to_str().ok());
    match format {
        Format::Json => {
            // Written directly, in this order; a serde_json::Value costs several times more.
            let mut o = JsonObject::new(out);
            o.str("time", Some(&time));
            o.display("client.addr", &e.client, true);
            o.str("http.method", Some(e.method.as_str()));
            o.str("http.host", Some(&e.host));
            o.str("http.target", Some(target));
            o.str("http.version", Some(version));
            o.display("http.status", &e.status, false);
            o.display("bytes.in", &e.bytes_in, false);
            o.display("bytes.out", &e.bytes_out, false);
            o.seconds("duration", Some(e.duration));
            o.str("backend.addr", e.upstream.as_deref());
            o.seconds("backend.duration", e.upstream_duration);
            o.str(
                "ingress.namespace",
                labels.and_then(|l| non_empty(&l.namespace)),
            );
            o.str("ingress.name", labels.and_then(|l| non_empty(&l.ingress)));
            o.str("service.name", labels.and_then(|l| non_empty(&l.service)));
            o.str("http.request_id", request_id);
            o.str("tls.version", e.tls.as_ref().map(|t| t.version));
            o.str("tls.sni", e.tls.as_ref().and_then(|t| t.sni.as_deref()));
            o.close();
        }
        Format::Text => {
            let mut kv = |k: &str, v: &str| {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(k);
                out.push('=');
                push_logfmt(out, v);
            };
            kv("time", &time);
            kv("client.addr", &e.client.to_string());
            kv("http.method", e.method.as_str());
            kv("http.host", &e.host);
            kv("http.target", target);
            kv("http.version", version);
            kv("http.status", &e.status.to_string());
            kv("bytes.in", &e.bytes_in.to_string());
            kv("bytes.out", &e.bytes_out.to_string());
            kv("duration", &format!("{:.6}", seconds(e.duration)));
            kv("backend.addr", e.upstream.as_deref().unwrap_or("-"));
            kv(
                "backend.duration",
                &e.upstream_duration
                    .map_or_else(|| "-".to_string(), |d| format!("{:.6}", seconds(d))),
            );
            kv(
                "ingress.namespace",
                labels.and_then(|l| non_empty(&l.namespace)).unwrap_or("-"),
            );
            kv(
                "ingress.name",
                labels.and_then(|l| non_empty(&l.ingress)).unwrap_or("-"),
            );
            kv(
                "service.name",
                labels.and_then(|l| non_empty(&l.service)).unwrap_or("-"),
            );
            kv("http.request_id", request_id.unwrap_or("-"));
            kv("tls.version", e.tls.as_ref().map_or("-", |t| t.version));
            kv(
                "tls.sni",
                e.tls.as_ref().and_then(|t| t.sni.as_deref()).unwrap_or("-"),
            );
        }
    }
}

/// Fills a `log-format-upstream` template. Values follow nginx's variables (formats from
/// nginx `ngx_http_log_module.c` and `ngx_http_variables.c`); a value Portico does not have
/// (no upstream, no TLS, an absent header) is nginx's "not found": `-`, or nothing under
/// `escape=json` / `escape=none`.
fn format_custom(e: &Entry, custom: &Custom, out: &mut String) {
    use std::fmt::Write as _;
    let escape = custom.template.escape;
    let labels = e.route.as_ref().map(|r| &r.labels);
    let mut value = String::new();
    for part in &custom.template.parts {
        value.clear();
        let found = match part {
            Part::Literal(text) => {
                out.push_str(text);
                continue;
            }
            Part::Header(i) => match custom.headers.get(*i).and_then(Option::as_ref) {
                Some(v) => {
                    // Header values are bytes; nginx escapes them as bytes.
                    push_escaped(out, v.as_bytes(), escape);
                    continue;
                }
                None => false,
            },
            Part::Var(var) => {
                let target = e.target.as_ref().map_or("", PathAndQuery::as_str);
                let mut put = |s: &str| value.push_str(s);
                match var {
                    Var::RemoteAddr => {
                        let _ = write!(value, "{}", e.client.ip().to_canonical());
                        true
                    }
                    Var::RemotePort => {
                        let _ = write!(value, "{}", e.client.port());
                        true
                    }
                    Var::TimeLocal => {
                        value.push_str(&clf_time(e.time));
                        true
                    }
                    Var::TimeIso8601 => {
                        value.push_str(&iso8601_seconds(e.time));
                        true
                    }
                    Var::Msec => {
                        let d = e.time.duration_since(UNIX_EPOCH).unwrap_or_default();
                        let _ = write!(value, "{}.{:03}", d.as_secs(), d.subsec_millis());
                        true
                    }
                    Var::Request => {
                        let _ = write!(value, "{} {} {}", e.method, target, version_str(e.version));
                        true
                    }
                    Var::RequestMethod => {
                        put(e.method.as_str());
                        true
                    }
                    Var::RequestUri => {
                        put(target);
                        !target.is_empty()
                    }
                    Var::Uri => {
                        let path = e.target.as_ref().map_or("", PathAndQuery::path);
                        put(path);
                        !path.is_empty()
                    }
                    Var::Args => match e.target.as_ref().and_then(PathAndQuery::query) {
                        Some(q) if !q.is_empty() => {
                            put(q);
                            true
                        }
                        _ => false,
                    },
                    Var::ServerProtocol => {
                        put(version_str(e.version));
                        true
                    }
                    Var::Scheme => {
                        put(if e.tls.is_some() { "https" } else { "http" });
                        true
                    }
                    Var::Host => {
                        // nginx's $host: lower case, without the port.
                        let host = crate::routing::normalize::host(&e.host);
                        put(&host);
                        true
                    }
                    Var::Status => {
                        let _ = write!(value, "{}", e.status);
                        true
                    }
                    Var::BodyBytesSent => {
                        let _ = write!(value, "{}", e.bytes_out);
                        true
                    }
                    Var::RequestTime => {
                        push_msec(&mut value, e.duration);
                        true
                    }
                    Var::UpstreamAddr => match &e.upstream {
                        Some(u) => {
                            put(u);
                            true
                        }
                        None => false,
                    },
                    Var::UpstreamResponseTime => match e.upstream_duration {
                        Some(d) => {
                            push_msec(&mut value, d);
                            true
                        }
                        None => false,
                    },
                    Var::ReqId => match e.request_id.as_ref().and_then(|v| v.to_str().ok()) {
                        Some(id) => {
                            put(id);
                            true
                        }
                        None => false,
                    },
                    Var::Namespace => put_label(&mut value, labels.map(|l| l.namespace.as_str())),
                    Var::IngressName => put_label(&mut value, labels.map(|l| l.ingress.as_str())),
                    Var::ServiceName => put_label(&mut value, labels.map(|l| l.service.as_str())),
                    Var::SslProtocol => match &e.tls {
                        Some(t) => {
                            put(t.version);
                            true
                        }
                        None => false,
                    },
                    Var::SslServerName => match e.tls.as_ref().and_then(|t| t.sni.as_deref()) {
                        Some(sni) => {
                            put(sni);
                            true
                        }
                        None => false,
                    },
                }
            }
        };
        if !found {
            if escape == Escape::Default {
                out.push('-');
            }
            continue;
        }
        push_escaped(out, value.as_bytes(), escape);
    }
}

/// Seconds with millisecond resolution, truncated, as nginx's `$request_time` and
/// `$upstream_response_time` (`%T.%03M` of whole milliseconds).
fn push_msec(value: &mut String, d: Duration) {
    use std::fmt::Write as _;
    let ms = d.as_millis();
    let _ = write!(value, "{}.{:03}", ms / 1000, ms % 1000);
}

fn put_label(value: &mut String, label: Option<&str>) -> bool {
    match label.and_then(non_empty) {
        Some(l) => {
            value.push_str(l);
            true
        }
        None => false,
    }
}

/// A variable's value escaped as nginx's `log_format` does: by default `"`, `\`, control
/// bytes and bytes from 0x7f up become `\xHH` (`ngx_http_log_escape`); `escape=json` is JSON
/// string escaping (`ngx_escape_json`: other bytes, UTF-8 included, pass); `escape=none` passes
/// everything.
fn push_escaped(out: &mut String, value: &[u8], escape: Escape) {
    use std::fmt::Write as _;
    match escape {
        Escape::None => out.push_str(&String::from_utf8_lossy(value)),
        Escape::Default => {
            for &b in value {
                if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
                    let _ = write!(out, "\\x{b:02X}");
                } else {
                    out.push(char::from(b));
                }
            }
        }
        Escape::Json => {
            for c in String::from_utf8_lossy(value).chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    c if u32::from(c) < 0x20 => {
                        let _ = write!(out, "\\u{:04x}", u32::from(c));
                    }
                    c => out.push(c),
                }
            }
        }
    }
}

/// nginx's `$time_local` (Common Log Format), in UTC: `30/Nov/2026:17:09:27 +0000`.
fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d, hh, mm, ss) = civil(t);
    let month = MONTHS
        .get(m.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("Jan");
    format!("{d:02}/{month}/{y:04}:{hh:02}:{mm:02}:{ss:02} +0000")
}

/// nginx's `$time_iso8601`, in UTC: `2026-11-30T17:09:27+00:00`.
fn iso8601_seconds(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = civil(t);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}+00:00")
}

fn civil(t: SystemTime) -> (i64, u32, u32, u64, u64, u64) {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    (y, m, d, rem / 3600, (rem / 60) % 60, rem % 60)
}

/// A JSON object written field by field.
struct JsonObject<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> JsonObject<'a> {
    fn new(out: &'a mut String) -> Self {
        out.push('{');
        JsonObject { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        push_json_string(self.out, key);
        self.out.push(':');
    }

    fn str(&mut self, key: &str, value: Option<&str>) {
        self.key(key);
        match value {
            Some(v) => push_json_string(self.out, v),
            None => self.out.push_str("null"),
        }
    }

    /// A number (`quoted: false`) or a string that needs no escaping (`quoted: true`).
    fn display(&mut self, key: &str, value: &dyn std::fmt::Display, quoted: bool) {
        use std::fmt::Write as _;
        self.key(key);
        if quoted {
            let _ = write!(self.out, "\"{value}\"");
        } else {
            let _ = write!(self.out, "{value}");
        }
    }

    fn seconds(&mut self, key: &str, value: Option<Duration>) {
        use std::fmt::Write as _;
        self.key(key);
        match value {
            Some(d) => {
                let _ = write!(self.out, "{}", seconds(d));
            }
            None => self.out.push_str("null"),
        }
    }

    fn close(self) {
        self.out.push('}');
    }
}

/// A JSON string literal (RFC 8259 escaping).
fn push_json_string(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A logfmt value: bare when safe, else quoted with `"` and `\` escaped.
fn push_logfmt(out: &mut String, v: &str) {
    let bare = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=' && b != b'\\');
    if bare {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// `2026-11-21T19:41:22.123Z` (UTC, milliseconds).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        let metrics = crate::metrics::Metrics::new();
        Entry {
            time: UNIX_EPOCH + Duration::from_millis(1_763_754_082_123),
            client: "127.0.0.1:5555".parse().unwrap(),
            method: Method::GET,
            host: "shop.example".into(),
            target: Some(PathAndQuery::from_static("/cart?x=1")),
            version: Version::HTTP_11,
            status: 200,
            bytes_in: 0,
            bytes_out: 42,
            duration: Duration::from_micros(1500),
            upstream: Some("127.0.0.1:9001".into()),
            upstream_duration: Some(Duration::from_micros(1000)),
            route: Some(metrics.route("default", "shop", "cart")),
            request_id: Some(HeaderValue::from_static("abc")),
            tls: None,
            custom: None,
        }
    }

    #[test]
    fn rfc3339_is_utc_with_milliseconds() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_763_754_082_123)),
            "2025-11-21T19:41:22.123Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn text_line_is_logfmt() {
        let mut line = String::new();
        format_entry(Format::Text, &entry(), &mut line);
        assert_eq!(
            line,
            "time=2025-11-21T19:41:22.123Z client.addr=127.0.0.1:5555 http.method=GET \
             http.host=shop.example http.target=\"/cart?x=1\" http.version=HTTP/1.1 \
             http.status=200 bytes.in=0 bytes.out=42 duration=0.001500 \
             backend.addr=127.0.0.1:9001 backend.duration=0.001000 ingress.namespace=default \
             ingress.name=shop service.name=cart http.request_id=abc tls.version=- tls.sni=-"
        );
    }

    #[test]
    fn json_line_has_every_field() {
        let mut line = String::new();
        let mut e = entry();
        e.tls = Some(Arc::new(TlsInfo {
            version: "TLSv1.3",
            sni: Some("shop.example".into()),
            client_cert: None,
        }));
        format_entry(Format::Json, &e, &mut line);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["http.status"], 200);
        assert_eq!(v["ingress.name"], "shop");
        assert_eq!(v["service.name"], "cart");
        assert_eq!(v["tls.version"], "TLSv1.3");
        assert_eq!(v["tls.sni"], "shop.example");
        assert_eq!(v["http.target"], "/cart?x=1");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut e = entry();
        e.host = "a\"b\\c\u{1}d".into();
        e.route = None;
        let mut line = String::new();
        format_entry(Format::Json, &e, &mut line);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["http.host"], "a\"b\\c\u{1}d");
        assert!(v["ingress.namespace"].is_null());
        assert!(line.starts_with("{\"time\":"), "fields in order: {line}");
    }

    fn custom(format: &str, escape: &str) -> Option<Custom> {
        let data = [
            ("log-format-upstream".to_string(), format.to_string()),
            (format!("log-format-escape-{escape}"), "true".to_string()),
        ]
        .into_iter()
        .collect();
        let (template, problems) = crate::routing::log_format::from_configmap(&data);
        assert!(problems.is_empty(), "{problems:?}");
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "header1",
            HeaderValue::from_static("Here is \"header1\" with escape"),
        );
        headers.insert("user-agent", HeaderValue::from_static("curl/8"));
        Some(Custom::capture(template.unwrap(), &headers))
    }

    fn custom_line(format: &str, escape: &str) -> String {
        let mut e = entry();
        e.custom = custom(format, escape);
        let mut line = String::new();
        format_entry(Format::Json, &e, &mut line);
        line
    }

    /// test/e2e/settings/log-format.go, the three "Check log-format-upstream with
    /// log-format-escape-json and log-format-escape-none" cases: the header with quotes and
    /// the absent one, under each escaping.
    #[test]
    fn escaping_follows_the_e2e_cases() {
        let format = "{\"my_header1\":\"$http_header1\", \"my_header2\":\"$http_header2\"}";
        assert_eq!(
            custom_line(format, "json"),
            r#"{"my_header1":"Here is \"header1\" with escape", "my_header2":""}"#
        );
        assert_eq!(
            custom_line(format, "unset"),
            r#"{"my_header1":"Here is \x22header1\x22 with escape", "my_header2":"-"}"#
        );
        assert_eq!(
            custom_line(format, "none"),
            r#"{"my_header1":"Here is "header1" with escape", "my_header2":""}"#
        );
    }

    #[test]
    fn variables_are_filled_as_nginx_writes_them() {
        let line = custom_line(
            "$remote_addr - [$time_local] \"$request\" $status $body_bytes_sent \"$http_user_agent\" \
             $request_time $upstream_addr $upstream_response_time $req_id $namespace/$ingress_name/$service_name \
             $host $uri $args $time_iso8601 $msec $scheme $ssl_protocol",
            "unset",
        );
        assert_eq!(
            line,
            "127.0.0.1 - [21/Nov/2025:19:41:22 +0000] \"GET /cart?x=1 HTTP/1.1\" 200 42 \"curl/8\" \
             0.001 127.0.0.1:9001 0.001 abc default/shop/cart shop.example /cart x=1 \
             2025-11-21T19:41:22+00:00 1763754082.123 http -"
        );
    }
    #[test]
    fn a_full_queue_drops_and_counts() {
        let dropped = Counter::default();
        let (tx, _rx) = mpsc::channel(1);
        let log = AccessLog {
            tx,
            dropped: dropped.clone(),
        };
        log.record(entry());
        log.record(entry());
        assert_eq!(dropped.get(), 1);
    }
}
