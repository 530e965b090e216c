//! TLS policy of the HTTPS listener (issue 15): the controller ConfigMap's `ssl-protocols`,
//! `ssl-ciphers`, `ssl-prefer-server-ciphers`, `ssl-session-cache`, `ssl-session-cache-size`
//! and `ssl-session-tickets`, parsed once at translate time. `None` in `Global` when every key
//! is absent or at ingress-nginx's default, so a handshake pays one `Option` check and keeps
//! the listener's own configuration. The rustls configuration is built once per published
//! policy (on the first handshake that needs it) and cached here, never per handshake.

use std::sync::{Arc, Mutex, OnceLock};

use super::client_auth::ClientAuth;

use rustls::server::ServerConfig;
use rustls::{CipherSuite, ProtocolVersion};

/// ingress-nginx's `ssl-session-cache-size` default (`10m`, in nginx's shared-cache size): a
/// megabyte holds about 4000 sessions, so the listener's 4096-entry cache is the same order.
pub const DEFAULT_SESSION_CACHE: usize = 4096;

/// The parsed keys. Equality ignores the built configuration.
#[derive(Debug, Default)]
pub struct TlsPolicy {
    /// `ssl-protocols`: TLS 1.2 and/or 1.3 (nothing else exists in rustls).
    pub versions: Vec<ProtocolVersion>,
    /// `ssl-ciphers`: the TLS 1.2 suites allowed, in the listed order; `None`: all of the
    /// provider's. TLS 1.3 suites are never restricted (nginx's `ssl_ciphers` does not touch
    /// them either).
    pub tls12_suites: Option<Vec<CipherSuite>>,
    /// `ssl-prefer-server-ciphers` (default `true` in ingress-nginx): rustls `ignore_client_order`.
    pub prefer_server_ciphers: bool,
    /// `ssl-session-cache` / `ssl-session-cache-size`: entries of the session cache, `0` is off.
    pub session_cache: usize,
    /// `ssl-session-tickets` (default `false` in ingress-nginx; Portico keeps its listener's
    /// `true` unless the key says `false`: docs/decisions.md).
    pub session_tickets: bool,
    config: OnceLock<Arc<ServerConfig>>,
    /// The configurations of hosts with client certificates under this policy, built once
    /// each (bounded: cleared when full). Only handshakes of such hosts lock it.
    client_auth: Mutex<Vec<(Arc<ClientAuth>, Arc<ServerConfig>)>>,
}

/// How many host configurations with client certificates one policy caches.
const MAX_CLIENT_AUTH_CONFIGS: usize = 1024;

impl PartialEq for TlsPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.versions == other.versions
            && self.tls12_suites == other.tls12_suites
            && self.prefer_server_ciphers == other.prefer_server_ciphers
            && self.session_cache == other.session_cache
            && self.session_tickets == other.session_tickets
    }
}

/// The OpenSSL names of the TLS 1.2 suites rustls (ring) implements.
const OPENSSL_NAMES: &[(&str, CipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// The keys as a policy, and one message per refused value (each starts with its key).
/// `None` when nothing differs from the listener's built-in configuration.
pub fn from_configmap(
    data: &std::collections::BTreeMap<String, String>,
) -> (Option<Arc<TlsPolicy>>, Vec<String>) {
    let mut problems = Vec::new();
    let get = |k: &str| data.get(k).map(|v| v.trim());
    let mut policy = TlsPolicy {
        versions: vec![ProtocolVersion::TLSv1_3, ProtocolVersion::TLSv1_2],
        tls12_suites: None,
        prefer_server_ciphers: true,
        session_cache: DEFAULT_SESSION_CACHE,
        session_tickets: true,
        config: OnceLock::new(),
        client_auth: Mutex::new(Vec::new()),
    };
    if let Some(v) = get("ssl-protocols") {
        let (versions, refused) = protocols(v);
        if !refused.is_empty() {
            problems.push(format!(
                "ssl-protocols: {} refused (rustls implements only TLSv1.2 and TLSv1.3)",
                refused.join(", ")
            ));
        }
        if versions.is_empty() {
            problems.push(format!(
                "ssl-protocols: {v:?} names no supported protocol; the default TLSv1.2 TLSv1.3 applies"
            ));
        } else {
            policy.versions = versions;
        }
    }
    if let Some(v) = get("ssl-ciphers") {
        let (suites, refused) = ciphers(v);
        if !refused.is_empty() {
            problems.push(format!(
                "ssl-ciphers: {} refused (not implemented by rustls: only ECDHE with AES-GCM or CHACHA20-POLY1305)",
                refused.join(", ")
            ));
        }
        if suites.is_empty() {
            problems.push(format!(
                "ssl-ciphers: {:?} names no supported cipher; the secure default suites apply",
                v.chars().take(64).collect::<String>()
            ));
        } else {
            policy.tls12_suites = Some(suites);
        }
    }
    let boolean = |key: &str, into: &mut bool, problems: &mut Vec<String>| {
        if let Some(v) = get(key) {
            // Go's `strconv.ParseBool` spellings, as the other ConfigMap booleans.
            match v {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => *into = true,
                "0" | "f" | "F" | "false" | "FALSE" | "False" => *into = false,
                _ => problems.push(format!(
                    "{key}: {v:?} is not a boolean; the default applies"
                )),
            }
        }
    };
    boolean(
        "ssl-prefer-server-ciphers",
        &mut policy.prefer_server_ciphers,
        &mut problems,
    );
    boolean(
        "ssl-session-tickets",
        &mut policy.session_tickets,
        &mut problems,
    );
    let mut cache_on = true;
    boolean("ssl-session-cache", &mut cache_on, &mut problems);
    if let Some(v) = get("ssl-session-cache-size") {
        match nginx_size(v) {
            // About 4000 sessions per megabyte (nginx's ssl_session_cache documentation).
            Some(bytes) => policy.session_cache = (bytes / 256).clamp(1, 1 << 20) as usize,
            None => problems.push(format!(
                "ssl-session-cache-size: {v:?} is not a size (e.g. 10m); the default applies"
            )),
        }
    }
    if !cache_on {
        policy.session_cache = 0;
    }
    let builtin = TlsPolicy {
        versions: vec![ProtocolVersion::TLSv1_3, ProtocolVersion::TLSv1_2],
        tls12_suites: None,
        prefer_server_ciphers: true,
        session_cache: DEFAULT_SESSION_CACHE,
        session_tickets: true,
        config: OnceLock::new(),
        client_auth: Mutex::new(Vec::new()),
    };
    // The listener's built-in configuration is already this: nothing to build unless a key
    // says otherwise.
    let any_key = [
        "ssl-protocols",
        "ssl-ciphers",
        "ssl-prefer-server-ciphers",
        "ssl-session-cache",
        "ssl-session-cache-size",
        "ssl-session-tickets",
    ]
    .iter()
    .any(|k| data.contains_key(*k));
    if !any_key || policy == builtin {
        return (None, problems);
    }
    (Some(Arc::new(policy)), problems)
}

/// `ssl-protocols`: space-separated nginx names; the supported ones and the refused ones.
fn protocols(v: &str) -> (Vec<ProtocolVersion>, Vec<String>) {
    let mut versions = Vec::new();
    let mut refused = Vec::new();
    for name in v.split_whitespace() {
        let version = match name {
            "TLSv1.3" => ProtocolVersion::TLSv1_3,
            "TLSv1.2" => ProtocolVersion::TLSv1_2,
            other => {
                refused.push(other.chars().take(16).collect());
                continue;
            }
        };
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    (versions, refused)
}

/// `ssl-ciphers`: an OpenSSL cipher list (`:`, `,` or space separated). Names rustls lacks and
/// OpenSSL operators (`!aNULL`, `+X`, `@STRENGTH`, aliases such as `HIGH`) are refused: a
/// list means exactly the suites it names.
fn ciphers(v: &str) -> (Vec<CipherSuite>, Vec<String>) {
    let mut suites = Vec::new();
    let mut refused = Vec::new();
    for name in v.split([':', ',', ' ']).filter(|s| !s.is_empty()) {
        // Exclusions only ever remove: skipping them never makes the list weaker.
        if name.starts_with('!') || name.starts_with('-') {
            continue;
        }
        match OPENSSL_NAMES.iter().find(|(n, _)| *n == name) {
            Some((_, suite)) if !suites.contains(suite) => suites.push(*suite),
            Some(_) => {}
            None => {
                if refused.len() < 8 {
                    refused.push(name.chars().take(48).collect());
                }
            }
        }
    }
    (suites, refused)
}

/// nginx sizes: `10m`, `512k`, `1048576`.
fn nginx_size(v: &str) -> Option<u64> {
    let (digits, unit) = match v.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_lowercase()),
        _ => (v, ' '),
    };
    let n: u64 = digits.parse().ok()?;
    let factor = match unit {
        ' ' => 1,
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor).filter(|b| *b > 0)
}

impl TlsPolicy {
    /// The listener's configuration with this policy: built on first use, then shared by every
    /// handshake until the next published policy. `None`: rustls refused it (never expected:
    /// the values are checked at parse time); the caller keeps the listener's configuration.
    pub fn server_config(&self, listener: &ServerConfig) -> Option<Arc<ServerConfig>> {
        if let Some(c) = self.config.get() {
            return Some(c.clone());
        }
        let built = Arc::new(self.build(listener)?);
        Some(self.config.get_or_init(|| built).clone())
    }

    /// The configuration of a host with client certificates under this policy: built by
    /// `build` on first use per (policy, host settings), then cached.
    pub fn client_auth_config(
        &self,
        auth: &Arc<ClientAuth>,
        build: impl FnOnce() -> Option<ServerConfig>,
    ) -> Option<Arc<ServerConfig>> {
        let mut cache = self.client_auth.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = cache.iter().find(|(a, _)| Arc::ptr_eq(a, auth)) {
            return Some(c.clone());
        }
        let built = Arc::new(build()?);
        if cache.len() >= MAX_CLIENT_AUTH_CONFIGS {
            cache.clear();
        }
        cache.push((auth.clone(), built.clone()));
        Some(built)
    }

    /// The crypto provider (its cipher suites filtered by `ssl-ciphers`) and the versions.
    pub fn provider_and_versions(
        &self,
    ) -> (
        Arc<rustls::crypto::CryptoProvider>,
        Vec<&'static rustls::SupportedProtocolVersion>,
    ) {
        let base = rustls::crypto::ring::default_provider();
        let cipher_suites = match &self.tls12_suites {
            None => base.cipher_suites.clone(),
            Some(wanted) => {
                // TLS 1.3 suites first (the provider's order), then the listed TLS 1.2 ones
                // in the listed order.
                let mut suites: Vec<_> = base
                    .cipher_suites
                    .iter()
                    .filter(|s| s.version() == &rustls::version::TLS13)
                    .copied()
                    .collect();
                for w in wanted {
                    suites.extend(base.cipher_suites.iter().filter(|s| s.suite() == *w));
                }
                suites
            }
        };
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites,
            ..base
        };
        let versions = self
            .versions
            .iter()
            .map(|v| match v {
                ProtocolVersion::TLSv1_2 => &rustls::version::TLS12,
                _ => &rustls::version::TLS13,
            })
            .collect();
        (Arc::new(provider), versions)
    }

    fn build(&self, listener: &ServerConfig) -> Option<ServerConfig> {
        let (provider, versions) = self.provider_and_versions();
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .ok()?
            .with_no_client_auth()
            .with_cert_resolver(listener.cert_resolver.clone());
        config.alpn_protocols = listener.alpn_protocols.clone();
        config.ignore_client_order = self.prefer_server_ciphers;
        config.session_storage = if self.session_cache == 0 {
            Arc::new(rustls::server::NoServerSessionStorage {})
        } else {
            rustls::server::ServerSessionMemoryCache::new(self.session_cache)
        };
        if self.session_tickets {
            config.ticketer = rustls::crypto::ring::Ticketer::new().ok()?;
        }
        Some(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(pairs: &[(&str, &str)]) -> (Option<Arc<TlsPolicy>>, Vec<String>) {
        let data: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_configmap(&data)
    }

    #[test]
    fn absent_keys_cost_nothing() {
        let (p, problems) = parse(&[]);
        assert!(p.is_none());
        assert!(problems.is_empty());
    }

    #[test]
    fn ingress_nginx_default_cipher_list_maps_to_rustls_suites() {
        // ingress-nginx's default `ssl-ciphers` (configmap.md).
        let (p, problems) = parse(&[(
            "ssl-ciphers",
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384",
        )]);
        let p = p.unwrap();
        assert_eq!(p.tls12_suites.as_ref().unwrap().len(), 6);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("DHE-RSA-AES128-GCM-SHA256"),
            "{problems:?}"
        );
    }

    #[test]
    fn only_unsupported_ciphers_keep_the_secure_default() {
        let (p, problems) = parse(&[("ssl-ciphers", "AES128-SHA:DES-CBC3-SHA")]);
        assert!(p.is_none());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[1].contains("secure default"));
    }

    #[test]
    fn old_protocols_are_refused_and_tls13_only_is_kept() {
        let (p, problems) = parse(&[("ssl-protocols", "TLSv1 TLSv1.1 TLSv1.3")]);
        assert_eq!(p.unwrap().versions, vec![ProtocolVersion::TLSv1_3]);
        assert!(problems[0].contains("TLSv1, TLSv1.1"), "{problems:?}");
        let (p, problems) = parse(&[("ssl-protocols", "SSLv3")]);
        assert!(p.is_none());
        assert_eq!(problems.len(), 2);
    }

    #[test]
    fn session_keys() {
        let (p, problems) = parse(&[
            ("ssl-session-cache", "false"),
            ("ssl-session-tickets", "true"),
        ]);
        let p = p.unwrap();
        assert_eq!(p.session_cache, 0);
        assert!(p.session_tickets);
        assert!(problems.is_empty());
        let (p, _) = parse(&[("ssl-session-cache-size", "2m")]);
        assert_eq!(p.unwrap().session_cache, 8192);
        let (_, problems) = parse(&[("ssl-session-cache-size", "lots")]);
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn builds_a_config_once() {
        let (p, _) = parse(&[("ssl-protocols", "TLSv1.3")]);
        let p = p.unwrap();
        #[derive(Debug)]
        struct Empty;
        impl crate::tls::PublishedTls for Empty {
            fn with_tls(&self, _: &mut dyn FnMut(&crate::tls::TlsTable)) {}
        }
        let resolver = Arc::new(crate::tls::Resolver::new(
            Arc::new(Empty),
            crate::tls::generated_default().unwrap(),
        ));
        let listener = crate::tls::server_config(resolver).unwrap();
        let a = p.server_config(&listener).unwrap();
        let b = p.server_config(&listener).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(a.ignore_client_order);
    }
}
