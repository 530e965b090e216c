//! The compression keys of the controller ConfigMap (issue 13: `use-gzip`, `gzip-level`,
//! `gzip-min-length`, `gzip-types`, `enable-brotli`, `brotli-level`, `brotli-min-length`,
//! `brotli-types`), typed at translate time into [`CompressionSettings`] and published in
//! [`super::Global`]; `proxy/compress.rs` applies them per response.

use std::collections::BTreeMap;

/// ingress-nginx's `gzipTypes` (`internal/ingress/controller/config/config.go`; the code's list,
/// which has `text/javascript` where configmap.md's copy does not).
pub const DEFAULT_GZIP_TYPES: &str = "application/atom+xml application/javascript \
    application/x-javascript application/json application/rss+xml application/vnd.ms-fontobject \
    application/x-font-ttf application/x-web-app-manifest+json application/xhtml+xml \
    application/xml font/opentype image/svg+xml image/x-icon text/css text/javascript \
    text/plain text/x-component";

/// ingress-nginx's `brotliTypes` (same file): the gzip list plus `application/xml+rss`.
pub const DEFAULT_BROTLI_TYPES: &str = "application/xml+rss application/atom+xml \
    application/javascript application/x-javascript application/json application/rss+xml \
    application/vnd.ms-fontobject application/x-font-ttf application/x-web-app-manifest+json \
    application/xhtml+xml application/xml font/opentype image/svg+xml image/x-icon text/css \
    text/javascript text/plain text/x-component";

/// ingress-nginx's defaults (`config.go` `NewDefault`): `gzip-level` 1, `gzip-min-length` 256,
/// `brotli-level` 4, `brotli-min-length` 20.
pub const DEFAULT_GZIP_LEVEL: u32 = 1;
pub const DEFAULT_GZIP_MIN_LENGTH: u64 = 256;
pub const DEFAULT_BROTLI_LEVEL: u32 = 4;
pub const DEFAULT_BROTLI_MIN_LENGTH: u64 = 20;

/// At most 64 characters of a value, quoted, for a message: a megabyte of garbage is named,
/// not copied into every log line and Event (as `translate/configmap.rs` does).
pub(crate) fn shown(value: &str) -> String {
    let head: String = value.chars().take(64).collect();
    let more = if head.len() < value.len() { "..." } else { "" };
    format!("{head:?}{more}")
}

/// The MIME types one encoder compresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Types {
    /// `*`: every response, also one without a `Content-Type` (nginx `ngx_http_test_content_type`).
    Any,
    /// Lower-case `type/subtype`s; `text/html` is always among them (nginx's `gzip_types` and
    /// ngx_brotli's `brotli_types` both add it).
    List(Vec<String>),
}

impl Types {
    /// A space-separated list as nginx's `gzip_types` takes it.
    pub fn parse(value: &str) -> Result<Types, String> {
        let mut list = vec!["text/html".to_string()];
        for word in value.split_ascii_whitespace() {
            if word == "*" {
                return Ok(Types::Any);
            }
            if !is_mime_type(word) {
                return Err(format!("{} is not a MIME type (type/subtype)", shown(word)));
            }
            let word = word.to_ascii_lowercase();
            if !list.contains(&word) {
                list.push(word);
            }
        }
        Ok(Types::List(list))
    }

    /// Whether a response with this `Content-Type` (as text) is compressed. Parameters (`; charset=`) do
    /// not count, case does not matter; no type matches only `*`.
    pub fn matches(&self, content_type: Option<&str>) -> bool {
        match self {
            Types::Any => true,
            Types::List(list) => {
                let Some(value) = content_type else {
                    return false;
                };
                let essence = value.split(';').next().unwrap_or_default().trim();
                list.iter().any(|t| t.eq_ignore_ascii_case(essence))
            }
        }
    }
}

fn is_mime_type(word: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match word.split_once('/') {
        Some((t, s)) => token(t) && (s == "*" || token(s)),
        None => false,
    }
}

/// One encoder's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    pub level: u32,
    /// Responses whose `Content-Length` is below this are sent as they are; responses of
    /// unknown length are compressed (nginx checks only a known length).
    pub min_length: u64,
    pub types: Types,
}

/// The compression part of the controller ConfigMap. `None`: that encoder is off (the default
/// for both, as in ingress-nginx).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompressionSettings {
    pub gzip: Option<Codec>,
    pub brotli: Option<Codec>,
}

impl CompressionSettings {
    /// Whether anything can be compressed: the one check the data path makes when it is off.
    pub fn enabled(&self) -> bool {
        self.gzip.is_some() || self.brotli.is_some()
    }
}

/// Reads the compression keys of the controller ConfigMap. Every invalid value becomes a
/// message naming the key and the reason, and that key's default applies (spec page §4).
/// Values are read as ingress-nginx's decoder reads them: booleans as Go's
/// `strconv.ParseBool`, numbers as decimal integers.
pub fn from_configmap(data: &BTreeMap<String, String>) -> (CompressionSettings, Vec<String>) {
    let mut problems = Vec::new();
    let use_gzip = read_bool(data, "use-gzip", false, &mut problems);
    let use_brotli = read_bool(data, "enable-brotli", false, &mut problems);
    // Read (and so checked) even when the encoder is off, so a bad value is reported before
    // someone turns it on.
    let gzip = Codec {
        level: read_number(data, "gzip-level", DEFAULT_GZIP_LEVEL, 1..=9, &mut problems),
        min_length: read_number(
            data,
            "gzip-min-length",
            DEFAULT_GZIP_MIN_LENGTH,
            0..=u64::from(u32::MAX),
            &mut problems,
        ),
        types: read_types(data, "gzip-types", DEFAULT_GZIP_TYPES, &mut problems),
    };
    let brotli = Codec {
        level: read_number(
            data,
            "brotli-level",
            DEFAULT_BROTLI_LEVEL,
            0..=11,
            &mut problems,
        ),
        min_length: read_number(
            data,
            "brotli-min-length",
            DEFAULT_BROTLI_MIN_LENGTH,
            0..=u64::from(u32::MAX),
            &mut problems,
        ),
        types: read_types(data, "brotli-types", DEFAULT_BROTLI_TYPES, &mut problems),
    };
    let settings = CompressionSettings {
        gzip: use_gzip.then_some(gzip),
        brotli: use_brotli.then_some(brotli),
    };
    (settings, problems)
}

fn read_bool(
    data: &BTreeMap<String, String>,
    key: &str,
    default: bool,
    problems: &mut Vec<String>,
) -> bool {
    match data.get(key).map(|v| v.trim()) {
        None | Some("") => default,
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
        Some(other) => {
            problems.push(format!(
                "{key}: {} is not a boolean; using {default}",
                shown(other)
            ));
            default
        }
    }
}

fn read_number<T>(
    data: &BTreeMap<String, String>,
    key: &str,
    default: T,
    range: std::ops::RangeInclusive<T>,
    problems: &mut Vec<String>,
) -> T
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = data.get(key) else {
        return default;
    };
    match raw.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => n,
        _ => {
            problems.push(format!(
                "{key}: {} is not a number from {} to {}; using {default}",
                shown(raw),
                range.start(),
                range.end()
            ));
            default
        }
    }
}

fn read_types(
    data: &BTreeMap<String, String>,
    key: &str,
    default: &str,
    problems: &mut Vec<String>,
) -> Types {
    let fallback = || Types::parse(default).unwrap_or(Types::List(vec!["text/html".into()]));
    match data.get(key) {
        None => fallback(),
        Some(raw) if raw.trim().is_empty() => fallback(),
        Some(raw) => Types::parse(raw).unwrap_or_else(|reason| {
            problems.push(format!("{key}: {reason}; using the default list"));
            fallback()
        }),
    }
}
