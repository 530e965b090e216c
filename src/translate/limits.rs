//! Issue 14: ingress-nginx's source ranges, rate and connection limits (annotations) and the
//! controller ConfigMap's block lists, status codes and default source ranges, typed once
//! here into `routing::limits` values. `proxy/limits.rs` enforces them per request.
//!
//! Source ranges are access control (`ingress-nginx.md` §3): a list with an entry that is no
//! address or network fails closed (the Ingress's paths answer 503). Limits are not: an invalid
//! value is an `InvalidAnnotation` condition and no limit applies.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;

use crate::routing::limits::{
    Access, Bandwidth, Blocklist, Patterns, Rate, RateLimits, SourceRanges,
};
use crate::routing::Cidr;

use super::annotations::{NGINX, PORTICO};

pub const ALLOWLIST_SOURCE_RANGE: &str = "allowlist-source-range";
/// ingress-nginx's older name of `allowlist-source-range` (an alias; the new name wins).
pub const WHITELIST_SOURCE_RANGE: &str = "whitelist-source-range";
pub const DENYLIST_SOURCE_RANGE: &str = "denylist-source-range";
pub const LIMIT_RPS: &str = "limit-rps";
pub const LIMIT_RPM: &str = "limit-rpm";
pub const LIMIT_BURST_MULTIPLIER: &str = "limit-burst-multiplier";
pub const LIMIT_CONNECTIONS: &str = "limit-connections";
pub const LIMIT_ALLOWLIST: &str = "limit-allowlist";
/// ingress-nginx's older name of `limit-allowlist`.
pub const LIMIT_WHITELIST: &str = "limit-whitelist";
/// Response bandwidth in KiB per second (also a ConfigMap key: the default).
pub const LIMIT_RATE: &str = "limit-rate";
/// KiB of a response sent before `limit-rate` applies (also a ConfigMap key).
pub const LIMIT_RATE_AFTER: &str = "limit-rate-after";

/// The annotations read here (registered in `annotations::IMPLEMENTED`).
pub const ANNOTATIONS: &[&str] = &[
    ALLOWLIST_SOURCE_RANGE,
    WHITELIST_SOURCE_RANGE,
    DENYLIST_SOURCE_RANGE,
    LIMIT_RPS,
    LIMIT_RPM,
    LIMIT_BURST_MULTIPLIER,
    LIMIT_CONNECTIONS,
    LIMIT_ALLOWLIST,
    LIMIT_WHITELIST,
    LIMIT_RATE,
    LIMIT_RATE_AFTER,
];

/// The controller ConfigMap's keys read here.
pub const BLOCK_CIDRS: &str = "block-cidrs";
pub const BLOCK_USER_AGENTS: &str = "block-user-agents";
pub const BLOCK_REFERERS: &str = "block-referers";
pub const LIMIT_REQ_STATUS_CODE: &str = "limit-req-status-code";
pub const LIMIT_CONN_STATUS_CODE: &str = "limit-conn-status-code";
/// `whitelist-source-range` and `denylist-source-range` are also ConfigMap keys: the source
/// ranges of every Ingress that does not set its own (ingress-nginx `ipallowlist.Parse` uses
/// the default backend's list when the annotation is missing).
pub const CONFIGMAP_KEYS: &[&str] = &[
    BLOCK_CIDRS,
    BLOCK_USER_AGENTS,
    BLOCK_REFERERS,
    LIMIT_REQ_STATUS_CODE,
    LIMIT_CONN_STATUS_CODE,
    WHITELIST_SOURCE_RANGE,
    DENYLIST_SOURCE_RANGE,
    LIMIT_RATE,
    LIMIT_RATE_AFTER,
];

/// ingress-nginx's `limit-burst-multiplier` default (`defBurst`).
pub const DEFAULT_BURST_MULTIPLIER: u64 = 5;
/// ingress-nginx's `limit-req-status-code` and `limit-conn-status-code` default.
pub const DEFAULT_STATUS: u16 = 503;

/// What the controller ConfigMap sets for the annotations of this module; part of the
/// translate [`super::Options`], so a change derives every Ingress again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub req_status: u16,
    pub conn_status: u16,
    /// `whitelist-source-range`: the allowlist of Ingresses without their own.
    pub allow: Vec<Cidr>,
    /// `denylist-source-range`: the denylist of Ingresses without their own.
    pub deny: Vec<Cidr>,
    /// The default lists with an entry that does not parse (their keys): the Ingresses that
    /// would use one fail closed.
    pub broken: Vec<&'static str>,
    /// `limit-rate` and `limit-rate-after` in KiB: the defaults of the annotations.
    pub rate: u64,
    pub rate_after: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            req_status: DEFAULT_STATUS,
            conn_status: DEFAULT_STATUS,
            allow: Vec::new(),
            deny: Vec::new(),
            broken: Vec::new(),
            rate: 0,
            rate_after: 0,
        }
    }
}

/// A comma-separated list of addresses and networks (ingress-nginx `net.ParseIPNets`; a bare
/// address is a /32 or /128). Empty entries are skipped; any other entry that does not parse
/// is the error, as is a list with no entry at all.
pub fn parse_cidrs(value: &str) -> Result<Vec<Cidr>, String> {
    let mut list = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        list.push(entry.parse::<Cidr>()?);
    }
    if list.is_empty() {
        return Err("lists no address or network".to_string());
    }
    Ok(list)
}

/// The ConfigMap's settings for this module and one message per invalid key.
pub fn from_configmap(data: &BTreeMap<String, String>) -> (Settings, Vec<String>) {
    let mut settings = Settings::default();
    let mut problems = Vec::new();
    for (key, slot) in [
        (LIMIT_REQ_STATUS_CODE, &mut settings.req_status),
        (LIMIT_CONN_STATUS_CODE, &mut settings.conn_status),
    ] {
        if let Some(value) = data.get(key) {
            // nginx's `limit_req_status` / `limit_conn_status` take 400 to 599.
            match value.trim().parse::<u16>() {
                Ok(code) if (400..=599).contains(&code) => *slot = code,
                _ => problems.push(format!(
                    "{key}: {value:?} is not a status code from 400 to 599; the default applies"
                )),
            }
        }
    }
    for (key, slot) in [
        (LIMIT_RATE, &mut settings.rate),
        (LIMIT_RATE_AFTER, &mut settings.rate_after),
    ] {
        if let Some(value) = data.get(key) {
            match value.trim().parse::<u64>() {
                Ok(n) => *slot = n,
                Err(_) => problems.push(format!(
                    "{key}: {value:?} is not a whole number of KiB; the default applies"
                )),
            }
        }
    }
    for (key, slot) in [
        (WHITELIST_SOURCE_RANGE, &mut settings.allow),
        (DENYLIST_SOURCE_RANGE, &mut settings.deny),
    ] {
        let Some(value) = data.get(key).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        match parse_cidrs(value) {
            Ok(list) => *slot = list,
            Err(why) => {
                settings.broken.push(key);
                problems.push(format!(
                    "{key}: {why}; every Ingress without its own source range answers 503 \
                     (fails closed)"
                ));
            }
        }
    }
    (settings, problems)
}

/// `block-cidrs`, `block-user-agents`, `block-referers`; `None` when all are empty. An entry
/// that does not parse makes the list fail closed: every request answers 503.
pub fn blocklist(data: &BTreeMap<String, String>) -> (Option<Arc<Blocklist>>, Vec<String>) {
    let mut block = Blocklist::default();
    let mut problems = Vec::new();
    let listed = |key: &str| -> Vec<String> {
        data.get(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    for entry in listed(BLOCK_CIDRS) {
        match entry.parse::<Cidr>() {
            Ok(cidr) => block.cidrs.push(cidr),
            Err(why) => {
                block.broken = true;
                problems.push(format!(
                    "{BLOCK_CIDRS}: {why}; every request answers 503 (fails closed)"
                ));
            }
        }
    }
    for (key, slot) in [
        (BLOCK_USER_AGENTS, &mut block.user_agents),
        (BLOCK_REFERERS, &mut block.referers),
    ] {
        match patterns(listed(key)) {
            Ok(p) => *slot = p,
            Err(why) => {
                block.broken = true;
                problems.push(format!(
                    "{key}: {why}; every request answers 503 (fails closed)"
                ));
            }
        }
    }
    let empty = block.cidrs.is_empty()
        && block.user_agents.is_empty()
        && block.referers.is_empty()
        && !block.broken;
    ((!empty).then(|| Arc::new(block)), problems)
}

/// nginx `map` entries: `~regex`, `~*regex` (case-insensitive) or an exact string.
fn patterns(entries: Vec<String>) -> Result<Patterns, String> {
    let mut exact = Vec::new();
    let mut regexes = Vec::new();
    for entry in &entries {
        // A header value holds no control character (but tab): such an entry never matches.
        if entry.chars().any(|c| c.is_control() && c != '\t') {
            return Err(format!("{entry:?} holds a control character"));
        }
        let pattern = if let Some(re) = entry.strip_prefix("~*") {
            format!("(?i){re}")
        } else if let Some(re) = entry.strip_prefix('~') {
            re.to_string()
        } else {
            exact.push(entry.to_ascii_lowercase());
            continue;
        };
        crate::routing::compile_regex(&pattern).map_err(|why| format!("{entry:?}: {why}"))?;
        regexes.push(pattern);
    }
    let regexes = if regexes.is_empty() {
        None
    } else {
        Some(
            regex::RegexSetBuilder::new(&regexes)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("the regexes do not compile together: {e}"))?,
        )
    };
    Ok(Patterns {
        exact,
        regexes,
        source: entries,
    })
}

/// What [`access`] found on one Ingress.
#[derive(Debug, Default)]
pub struct Parsed {
    pub access: Option<Access>,
    /// One message per invalid annotation.
    pub invalid: Vec<String>,
    /// A source range is unusable: every path of the Ingress answers 503.
    pub fails_closed: bool,
}

/// The source ranges and limits of `ingress` (`settings`: the ConfigMap's defaults).
pub fn access(ingress: &Ingress, settings: &Settings) -> Parsed {
    let mut parsed = Parsed::default();
    let annotations = ingress.metadata.annotations.as_ref();
    let get = |names: &[&str]| -> Option<(String, &String)> {
        let annotations = annotations?;
        for prefix in [PORTICO, NGINX] {
            for name in names {
                let key = format!("{prefix}{name}");
                if let Some(v) = annotations.get(&key) {
                    return Some((key, v));
                }
            }
        }
        None
    };

    // Source ranges: the annotation replaces the ConfigMap's default list.
    let mut ranges = SourceRanges::default();
    for (names, slot, default) in [
        (
            &[DENYLIST_SOURCE_RANGE][..],
            &mut ranges.deny,
            &settings.deny,
        ),
        (
            &[ALLOWLIST_SOURCE_RANGE, WHITELIST_SOURCE_RANGE][..],
            &mut ranges.allow,
            &settings.allow,
        ),
    ] {
        // The ConfigMap spells the allowlist by its old name.
        let configmap_key = names[names.len() - 1];
        match get(names) {
            Some((key, value)) => match parse_cidrs(value) {
                Ok(list) => *slot = list,
                Err(why) => {
                    parsed.fails_closed = true;
                    parsed.invalid.push(format!(
                        "annotation {key}: {why}; every path of this Ingress answers 503 \
                         (fails closed)"
                    ));
                }
            },
            None if settings.broken.contains(&configmap_key) => {
                parsed.fails_closed = true;
                parsed.invalid.push(format!(
                    "the controller ConfigMap's {configmap_key} is invalid; every path of \
                     this Ingress answers 503 (fails closed)"
                ));
            }
            None => slot.clone_from(default),
        }
    }

    let mut invalid = |key: &str, value: &str, why: &str| {
        parsed.invalid.push(format!(
            "annotation {key}: {value:?} {why}; no limit applies"
        ));
    };
    // ingress-nginx reads them as integers; 0 (or absent) is no limit.
    let mut number = |names: &[&str]| -> Option<u64> {
        let (key, value) = get(names)?;
        match value.trim().parse::<u64>() {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => {
                invalid(&key, value, "is not a non-negative whole number");
                None
            }
        }
    };
    let rps = number(&[LIMIT_RPS]);
    let rpm = number(&[LIMIT_RPM]);
    let connections = number(&[LIMIT_CONNECTIONS]);
    let mut multiplier = DEFAULT_BURST_MULTIPLIER;
    if let Some((key, value)) = get(&[LIMIT_BURST_MULTIPLIER]) {
        match value.trim().parse::<u64>() {
            Ok(n) => multiplier = n,
            Err(_) => parsed.invalid.push(format!(
                "annotation {key}: {value:?} is not a non-negative whole number; using {DEFAULT_BURST_MULTIPLIER}"
            )),
        }
    }
    let mut allowlist = Vec::new();
    if let Some((key, value)) = get(&[LIMIT_ALLOWLIST, LIMIT_WHITELIST]) {
        // Not access control: a bad entry is reported and the others still exempt.
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry.parse::<Cidr>() {
                Ok(c) => allowlist.push(c),
                Err(why) => parsed.invalid.push(format!(
                    "annotation {key}: {why}; that entry is not exempt from the limits"
                )),
            }
        }
    }
    let limits = (rps.is_some() || rpm.is_some() || connections.is_some()).then(|| {
        // Large values saturate: such a limit never refuses anyone.
        let rate = |per_minute: u64, limit: u64| Rate {
            per_minute,
            burst: limit.saturating_mul(multiplier),
        };
        RateLimits {
            zone: zone(ingress),
            rps: rps.map(|n| rate(n.saturating_mul(60), n)),
            rpm: rpm.map(|n| rate(n, n)),
            connections: connections.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            allowlist,
            req_status: settings.req_status,
            conn_status: settings.conn_status,
        }
    });
    // ingress-nginx: an annotation that does not parse leaves the ConfigMap's value; 0 is off.
    let mut kib = |name: &str, default: u64| -> u64 {
        let Some((key, value)) = get(&[name]) else {
            return default;
        };
        value.trim().parse::<u64>().unwrap_or_else(|_| {
            parsed.invalid.push(format!(
                "annotation {key}: {value:?} is not a whole number of KiB; using the default"
            ));
            default
        })
    };
    let rate = kib(LIMIT_RATE, settings.rate);
    let after = kib(LIMIT_RATE_AFTER, settings.rate_after);
    let bandwidth = (rate > 0).then(|| Bandwidth {
        bytes_per_second: rate.saturating_mul(1024),
        after: after.saturating_mul(1024),
    });
    let ranges = (!ranges.deny.is_empty() || !ranges.allow.is_empty()).then_some(ranges);
    if ranges.is_some() || limits.is_some() || bandwidth.is_some() {
        parsed.access = Some(Access {
            ranges,
            limits,
            bandwidth,
        });
    }
    parsed
}

/// The zone of an Ingress's limits: ingress-nginx names it `NAMESPACE_NAME_UID`.
fn zone(ingress: &Ingress) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    let meta = &ingress.metadata;
    meta.namespace.hash(&mut hasher);
    meta.name.hash(&mut hasher);
    meta.uid.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn ingress(pairs: &[(&str, &str)]) -> Ingress {
        let mut ing = super::super::annotations::annotated(pairs);
        ing.metadata.name = Some("web".into());
        ing
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    // ingress-nginx e2e `annotations/ipdenylist.go`, "should set valid ip denylist range when
    // whitelist is set": `deny 18.0.0.0/8; deny 56.0.0.0/8; allow 17.0.0.0/8; allow
    // 55.0.0.0/8; deny all;`.
    #[test]
    fn denylist_is_checked_before_the_allowlist() {
        let parsed = access(
            &ingress(&[
                (
                    "nginx.ingress.kubernetes.io/denylist-source-range",
                    "18.0.0.0/8, 56.0.0.0/8",
                ),
                (
                    "nginx.ingress.kubernetes.io/whitelist-source-range",
                    "17.0.0.0/8, 55.0.0.0/8, 18.1.0.0/16",
                ),
            ]),
            &Settings::default(),
        );
        assert!(!parsed.fails_closed);
        let ranges = parsed.access.unwrap().ranges.unwrap();
        assert!(ranges.permits(ip("17.1.2.3")));
        assert!(!ranges.permits(ip("18.1.2.3")), "denied first");
        assert!(!ranges.permits(ip("10.0.0.1")), "deny all");
        assert!(ranges.permits(ip("::ffff:55.0.0.1")), "IPv4-mapped");
    }

    #[test]
    fn one_bad_entry_fails_closed() {
        let parsed = access(
            &ingress(&[(
                "nginx.ingress.kubernetes.io/allowlist-source-range",
                "10.0.0.0/8, 10.0.0.300",
            )]),
            &Settings::default(),
        );
        assert!(parsed.fails_closed);
        assert_eq!(parsed.invalid.len(), 1, "{:?}", parsed.invalid);
        assert!(parsed.invalid[0].contains("allowlist-source-range"));
    }

    #[test]
    fn allowlist_wins_over_its_old_name_and_portico_over_nginx() {
        let parsed = access(
            &ingress(&[
                (
                    "nginx.ingress.kubernetes.io/allowlist-source-range",
                    "1.0.0.0/8",
                ),
                (
                    "nginx.ingress.kubernetes.io/whitelist-source-range",
                    "2.0.0.0/8",
                ),
                ("portico.dev/denylist-source-range", "1.2.0.0/16"),
                (
                    "nginx.ingress.kubernetes.io/denylist-source-range",
                    "1.3.0.0/16",
                ),
            ]),
            &Settings::default(),
        );
        let ranges = parsed.access.unwrap().ranges.unwrap();
        assert!(ranges.permits(ip("1.3.0.1")));
        assert!(!ranges.permits(ip("1.2.0.1")));
        assert!(!ranges.permits(ip("2.0.0.1")));
    }

    #[test]
    fn configmap_lists_apply_to_ingresses_without_their_own() {
        let data: BTreeMap<String, String> = [
            (WHITELIST_SOURCE_RANGE.to_string(), "10.0.0.0/8".to_string()),
            (LIMIT_REQ_STATUS_CODE.to_string(), "429".to_string()),
            (LIMIT_CONN_STATUS_CODE.to_string(), "200".to_string()),
        ]
        .into();
        let (settings, problems) = from_configmap(&data);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!((settings.req_status, settings.conn_status), (429, 503));
        let plain = access(&ingress(&[]), &settings);
        assert!(!plain
            .access
            .unwrap()
            .ranges
            .unwrap()
            .permits(ip("11.0.0.1")));
        let own = access(
            &ingress(&[(
                "nginx.ingress.kubernetes.io/whitelist-source-range",
                "11.0.0.0/8",
            )]),
            &settings,
        );
        assert!(own.access.unwrap().ranges.unwrap().permits(ip("11.0.0.1")));

        let broken: BTreeMap<String, String> =
            [(DENYLIST_SOURCE_RANGE.to_string(), "nope".to_string())].into();
        let (settings, problems) = from_configmap(&broken);
        assert_eq!(problems.len(), 1);
        assert!(access(&ingress(&[]), &settings).fails_closed);
        let own = access(
            &ingress(&[(
                "nginx.ingress.kubernetes.io/denylist-source-range",
                "1.1.1.1",
            )]),
            &settings,
        );
        assert!(
            !own.fails_closed,
            "its own denylist replaces the broken default"
        );
        let other = access(
            &ingress(&[(
                "nginx.ingress.kubernetes.io/allowlist-source-range",
                "1.1.1.1",
            )]),
            &settings,
        );
        assert!(
            other.fails_closed,
            "the broken default denylist still applies"
        );
    }

    #[test]
    fn limits_follow_ingress_nginx() {
        let parsed = access(
            &ingress(&[
                ("nginx.ingress.kubernetes.io/limit-rps", "10"),
                ("nginx.ingress.kubernetes.io/limit-rpm", "0"),
                ("nginx.ingress.kubernetes.io/limit-burst-multiplier", "3"),
                ("nginx.ingress.kubernetes.io/limit-connections", "-1"),
                (
                    "nginx.ingress.kubernetes.io/limit-whitelist",
                    "10.0.0.0/8, x",
                ),
            ]),
            &Settings::default(),
        );
        assert!(!parsed.fails_closed, "limits are not access control");
        assert_eq!(parsed.invalid.len(), 2, "{:?}", parsed.invalid);
        let limits = parsed.access.unwrap().limits.unwrap();
        assert_eq!(
            limits.rps,
            Some(Rate {
                per_minute: 600,
                burst: 30
            })
        );
        assert_eq!(limits.rpm, None);
        assert_eq!(limits.connections, None);
        assert_eq!(limits.allowlist.len(), 1);
        assert_eq!(limits.req_status, 503);
    }

    // ingress-nginx e2e `annotations/limitrate.go` "Check limit-rate annotation": `limit-rate:
    // 90` is `limit_rate 90k;`; the ConfigMap's value is the default (`settings/limit_rate.go`).
    #[test]
    fn limit_rate_is_kib_per_second_after_kib() {
        let parsed = access(
            &ingress(&[
                ("nginx.ingress.kubernetes.io/limit-rate", "90"),
                ("nginx.ingress.kubernetes.io/limit-rate-after", "x"),
            ]),
            &Settings {
                rate_after: 1,
                ..Settings::default()
            },
        );
        assert_eq!(parsed.invalid.len(), 1, "{:?}", parsed.invalid);
        assert_eq!(
            parsed.access.unwrap().bandwidth,
            Some(Bandwidth {
                bytes_per_second: 90 * 1024,
                after: 1024
            })
        );
        let data: BTreeMap<String, String> = [(LIMIT_RATE.to_string(), "5".to_string())].into();
        let (settings, problems) = from_configmap(&data);
        assert!(problems.is_empty());
        let plain = access(&ingress(&[]), &settings);
        assert_eq!(
            plain.access.unwrap().bandwidth.unwrap().bytes_per_second,
            5 * 1024
        );
        let off = access(
            &ingress(&[("nginx.ingress.kubernetes.io/limit-rate", "0")]),
            &settings,
        );
        assert!(off.access.is_none());
    }

    #[test]
    fn no_annotation_no_access() {
        let parsed = access(&ingress(&[]), &Settings::default());
        assert!(parsed.access.is_none() && parsed.invalid.is_empty() && !parsed.fails_closed);
    }

    // ingress-nginx e2e `settings/global_access_block.go`.
    #[test]
    fn block_lists_take_strings_and_regexes() {
        let data: BTreeMap<String, String> = [
            (
                BLOCK_USER_AGENTS.to_string(),
                r"~*chrome\/68\.0\.3440\.106\ safari\/537\.36,AlphaBot".to_string(),
            ),
            (
                BLOCK_REFERERS.to_string(),
                r"~*example\.com,qwerty".to_string(),
            ),
            (
                BLOCK_CIDRS.to_string(),
                "172.16.0.0/12,192.168.0.0/16,10.0.0.0/8".to_string(),
            ),
        ]
        .into();
        let (block, problems) = blocklist(&data);
        assert!(problems.is_empty(), "{problems:?}");
        let block = block.unwrap();
        assert!(!block.broken);
        assert!(block.user_agents.matches(b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/68.0.3440.106 Safari/537.36"));
        assert!(block.user_agents.matches(b"AlphaBot"));
        assert!(
            block.user_agents.matches(b"alphabot"),
            "nginx map: case-insensitive"
        );
        assert!(!block.user_agents.matches(b"Mozilla/5.0 (iPhone; CPU iPhone OS 11_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/11.0 Mobile/15E148 Safari/604.1"));
        assert!(block.referers.matches(b"example.com"));
        assert!(block.referers.matches(b"qwerty"));
        assert!(!block.referers.matches(b"qwerty123"));
        assert_eq!(block.cidrs.len(), 3);
    }

    #[test]
    fn pcre_only_block_patterns_fail_closed() {
        let data: BTreeMap<String, String> =
            [(BLOCK_USER_AGENTS.to_string(), "~bot(?!ty)".to_string())].into();
        let (block, problems) = blocklist(&data);
        assert!(block.unwrap().broken);
        assert!(problems[0].contains("look-around"), "{problems:?}");
        assert!(blocklist(&BTreeMap::new()).0.is_none());
    }
}
