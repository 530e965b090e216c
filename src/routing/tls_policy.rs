//! TLS policy of the HTTPS listener (issue 15): the controller ConfigMap's `ssl-protocols`,
//! `ssl-ciphers`, `ssl-prefer-server-ciphers`, `ssl-session-cache`, `ssl-session-cache-size`,
//! `ssl-session-tickets`, `ssl-session-timeout` and `ssl-session-ticket-key`, parsed once at
//! translate time. `None` in `Global` when every key is absent or at ingress-nginx's default,
//! so a handshake pays one `Option` check and keeps the listener's own configuration. The
//! rustls configuration is built once per published policy (on the first handshake that
//! needs it) and cached here, never per handshake.
//!
//! [`HostTls`] is what one host (nginx `server`) changes in its handshake: client
//! certificates (`auth-tls-*`) and the `ssl-ciphers` / `ssl-prefer-server-ciphers`
//! annotations. A host with one gets its own configuration, chosen by SNI; the others keep the
//! shared one.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::client_auth::ClientAuth;
use super::tls_session::{KeyedTicketer, TimedSessions, TimedTickets, DEFAULT_TIMEOUT};

use rustls::server::{ProducesTickets, ServerConfig, StoresServerSessions};
use rustls::{CipherSuite, ProtocolVersion};
use serde::Serialize;

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
    /// `ssl-session-timeout` (default 10m): sessions older than this are not resumed.
    pub session_timeout: Duration,
    /// `ssl-session-ticket-key`: tickets sealed with a key derived from it; `None`: random
    /// keys (rustls's ticketer, rotated every 6 hours).
    pub ticket_key: Option<Arc<KeyedTicketer>>,
    config: OnceLock<Arc<ServerConfig>>,
    /// The session cache and ticketer every configuration of this policy shares (so a
    /// session made on one host's configuration is found from another's; rustls still
    /// checks the SNI and the suite before resuming).
    sessions: OnceLock<Sessions>,
    /// The configurations of hosts with their own handshake settings under this policy,
    /// built once each (bounded: cleared when full). Only handshakes of such hosts lock it.
    hosts: Mutex<Vec<(Arc<HostTls>, Arc<ServerConfig>)>>,
}

type Sessions = (
    Arc<dyn StoresServerSessions>,
    Option<Arc<dyn ProducesTickets>>,
);

/// How many host configurations one policy caches.
const MAX_HOST_CONFIGS: usize = 1024;

impl PartialEq for TlsPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.versions == other.versions
            && self.tls12_suites == other.tls12_suites
            && self.prefer_server_ciphers == other.prefer_server_ciphers
            && self.session_cache == other.session_cache
            && self.session_tickets == other.session_tickets
            && self.session_timeout == other.session_timeout
            && self.ticket_key.as_ref().map(|k| k.name())
                == other.ticket_key.as_ref().map(|k| k.name())
    }
}

impl TlsPolicy {
    /// What the listener does without any key (`tls::server_config`): TLS 1.3 and 1.2, every
    /// suite, the server's order, a 4096-session cache, tickets, 10 minutes.
    fn builtin() -> TlsPolicy {
        TlsPolicy {
            versions: vec![ProtocolVersion::TLSv1_3, ProtocolVersion::TLSv1_2],
            tls12_suites: None,
            prefer_server_ciphers: true,
            session_cache: DEFAULT_SESSION_CACHE,
            session_tickets: true,
            session_timeout: DEFAULT_TIMEOUT,
            ticket_key: None,
            config: OnceLock::new(),
            sessions: OnceLock::new(),
            hosts: Mutex::new(Vec::new()),
        }
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
    let mut policy = TlsPolicy::builtin();
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
    if let Some(v) = get("ssl-session-timeout") {
        match nginx_time(v) {
            Some(timeout) => policy.session_timeout = timeout,
            None => problems.push(format!(
                "ssl-session-timeout: {:?} is not a time (e.g. 10m, 1h, 600); the default 10m applies",
                v.chars().take(32).collect::<String>()
            )),
        }
    }
    if let Some(v) = get("ssl-session-ticket-key").filter(|v| !v.is_empty()) {
        // Never echo the value: it is a secret.
        match KeyedTicketer::from_base64(v) {
            Ok(key) => policy.ticket_key = Some(Arc::new(key)),
            Err(why) => problems.push(format!(
                "ssl-session-ticket-key: the value {why}; tickets use random keys"
            )),
        }
    }
    let builtin = TlsPolicy::builtin();
    // The listener's built-in configuration is already this: nothing to build unless a key
    // says otherwise.
    let any_key = [
        "ssl-protocols",
        "ssl-ciphers",
        "ssl-prefer-server-ciphers",
        "ssl-session-cache",
        "ssl-session-cache-size",
        "ssl-session-tickets",
        "ssl-session-timeout",
        "ssl-session-ticket-key",
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
/// list means exactly the suites it names. Also the `ssl-ciphers` and `proxy-ssl-ciphers`
/// annotations' mapping.
pub fn ciphers(v: &str) -> (Vec<CipherSuite>, Vec<String>) {
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

/// The OpenSSL name of a TLS 1.2 suite of the mapping.
pub fn openssl_name(suite: CipherSuite) -> Option<&'static str> {
    OPENSSL_NAMES
        .iter()
        .find(|(_, s)| *s == suite)
        .map(|(n, _)| *n)
}

/// The suite an OpenSSL name of the mapping stands for.
pub fn suite_named(name: &str) -> Option<CipherSuite> {
    OPENSSL_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
}

/// nginx times: `10m`, `1h`, `30s`, `1d`, `600` (seconds); at least one second.
fn nginx_time(v: &str) -> Option<Duration> {
    let (digits, unit) = match v.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_lowercase()),
        _ => (v, 's'),
    };
    let n: u64 = digits.parse().ok()?;
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(factor)
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
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
        let built = Arc::new(build(listener, Some(self), None)?);
        Some(self.config.get_or_init(|| built).clone())
    }

    /// The configuration of a host with its own handshake settings under this policy: built
    /// on first use per (policy, host settings), then cached.
    pub fn host_config(
        &self,
        host: &Arc<HostTls>,
        listener: &ServerConfig,
    ) -> Option<Arc<ServerConfig>> {
        let mut cache = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = cache.iter().find(|(h, _)| Arc::ptr_eq(h, host)) {
            return Some(c.clone());
        }
        let built = Arc::new(build(listener, Some(self), Some(host))?);
        if cache.len() >= MAX_HOST_CONFIGS {
            cache.clear();
        }
        cache.push((host.clone(), built.clone()));
        Some(built)
    }

    /// The session cache and ticketer of this policy, made once (with the listener's clock).
    fn sessions(&self, listener: &ServerConfig) -> Sessions {
        self.sessions
            .get_or_init(|| {
                let time = listener.time_provider.clone();
                let storage: Arc<dyn StoresServerSessions> = if self.session_cache == 0 {
                    Arc::new(rustls::server::NoServerSessionStorage {})
                } else {
                    Arc::new(TimedSessions::new(
                        rustls::server::ServerSessionMemoryCache::new(self.session_cache),
                        self.session_timeout,
                        time.clone(),
                    ))
                };
                let ticketer = if self.session_tickets {
                    let inner: Option<Arc<dyn ProducesTickets>> = match &self.ticket_key {
                        Some(key) => Some(key.clone()),
                        None => rustls::crypto::ring::Ticketer::new().ok(),
                    };
                    inner.map(|inner| {
                        Arc::new(TimedTickets::new(inner, self.session_timeout, time))
                            as Arc<dyn ProducesTickets>
                    })
                } else {
                    None
                };
                (storage, ticketer)
            })
            .clone()
    }
}

/// A crypto provider with every TLS 1.3 suite and, of TLS 1.2, `tls12` in its order (`None`:
/// all of them).
pub fn provider_with(tls12: Option<&[CipherSuite]>) -> Arc<rustls::crypto::CryptoProvider> {
    let base = rustls::crypto::ring::default_provider();
    let cipher_suites = match tls12 {
        None => base.cipher_suites.clone(),
        Some(wanted) => {
            // TLS 1.3 suites first (the provider's order), then the listed TLS 1.2 ones in
            // the listed order.
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
    Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites,
        ..base
    })
}

/// One handshake configuration: the listener's certificates, ALPN and clock; the policy's
/// versions, suites, order and sessions (the listener's own without a policy); the host's
/// client certificates and suites over them.
fn build(
    listener: &ServerConfig,
    policy: Option<&TlsPolicy>,
    host: Option<&HostTls>,
) -> Option<ServerConfig> {
    let suites = host
        .and_then(|h| h.tls12_suites.as_deref())
        .or_else(|| policy.and_then(|p| p.tls12_suites.as_deref()));
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = match policy {
        None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
        Some(p) => p
            .versions
            .iter()
            .map(|v| match v {
                ProtocolVersion::TLSv1_2 => &rustls::version::TLS12,
                _ => &rustls::version::TLS13,
            })
            .collect(),
    };
    let builder =
        ServerConfig::builder_with_details(provider_with(suites), listener.time_provider.clone())
            .with_protocol_versions(&versions)
            .ok()?;
    let auth = host.and_then(|h| h.client_auth.as_ref());
    let mut config = match auth {
        Some(auth) => builder.with_client_cert_verifier(auth.handshake_verifier()),
        None => builder.with_no_client_auth(),
    }
    .with_cert_resolver(listener.cert_resolver.clone());
    config.alpn_protocols = listener.alpn_protocols.clone();
    config.ignore_client_order = host
        .and_then(|h| h.prefer_server_ciphers)
        .unwrap_or(policy.map_or(listener.ignore_client_order, |p| p.prefer_server_ciphers));
    if auth.is_some() {
        // No session resumption: a resumed session would skip the certificate (and sessions
        // are shared with hosts that never asked for one).
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    } else if let Some(p) = policy {
        let (storage, ticketer) = p.sessions(listener);
        config.session_storage = storage;
        if let Some(ticketer) = ticketer {
            config.ticketer = ticketer;
        }
    } else {
        config.session_storage = listener.session_storage.clone();
        config.ticketer = listener.ticketer.clone();
    }
    Some(config)
}

/// What one host changes in its handshake (nginx `server`-level settings, issue 15): client
/// certificates when `auth-tls-verify-client` asks for one, and the `ssl-ciphers` /
/// `ssl-prefer-server-ciphers` annotations of its oldest Ingress that sets each. Equality
/// ignores the built configuration.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostTls {
    /// Shown under the vhost's `clientAuth`.
    #[serde(skip)]
    pub client_auth: Option<Arc<ClientAuth>>,
    /// `ssl-ciphers`: the TLS 1.2 suites (TLS 1.3 is never restricted, as nginx's).
    #[serde(
        rename = "sslCiphers",
        skip_serializing_if = "Option::is_none",
        serialize_with = "suite_names"
    )]
    pub tls12_suites: Option<Vec<CipherSuite>>,
    /// `ssl-prefer-server-ciphers`: rustls `ignore_client_order`.
    #[serde(
        rename = "sslPreferServerCiphers",
        skip_serializing_if = "Option::is_none"
    )]
    pub prefer_server_ciphers: Option<bool>,
    /// Without a ConfigMap policy: the configuration, built on the first handshake.
    #[serde(skip)]
    config: OnceLock<Arc<ServerConfig>>,
}

impl PartialEq for HostTls {
    fn eq(&self, other: &Self) -> bool {
        self.client_auth == other.client_auth
            && self.tls12_suites == other.tls12_suites
            && self.prefer_server_ciphers == other.prefer_server_ciphers
    }
}

fn suite_names<S: serde::Serializer>(
    suites: &Option<Vec<CipherSuite>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let names: Vec<&str> = suites
        .iter()
        .flatten()
        .filter_map(|suite| openssl_name(*suite))
        .collect();
    names.serialize(s)
}

impl HostTls {
    /// `None` when the host changes nothing (its handshakes keep the shared configuration).
    pub fn new(
        client_auth: Option<Arc<ClientAuth>>,
        tls12_suites: Option<Vec<CipherSuite>>,
        prefer_server_ciphers: Option<bool>,
    ) -> Option<Arc<HostTls>> {
        let client_auth = client_auth.filter(|a| a.verify.asks());
        if client_auth.is_none() && tls12_suites.is_none() && prefer_server_ciphers.is_none() {
            return None;
        }
        Some(Arc::new(HostTls {
            client_auth,
            tls12_suites,
            prefer_server_ciphers,
            config: OnceLock::new(),
        }))
    }

    /// Nothing to show beside the vhost's `clientAuth` (serialisation).
    pub fn unshown(tls: &Option<Arc<HostTls>>) -> bool {
        tls.as_ref()
            .is_none_or(|t| t.tls12_suites.is_none() && t.prefer_server_ciphers.is_none())
    }

    /// The host's configuration over the listener's (no ConfigMap policy): built once.
    pub fn server_config(&self, listener: &ServerConfig) -> Option<Arc<ServerConfig>> {
        if let Some(c) = self.config.get() {
            return Some(c.clone());
        }
        let built = Arc::new(build(listener, None, Some(self))?);
        Some(self.config.get_or_init(|| built).clone())
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
    fn session_timeout_and_ticket_key() {
        let (p, problems) = parse(&[("ssl-session-timeout", "1h")]);
        assert_eq!(p.unwrap().session_timeout, Duration::from_secs(3600));
        assert!(problems.is_empty());
        assert_eq!(nginx_time("600"), Some(Duration::from_secs(600)));
        assert_eq!(nginx_time("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(nginx_time("0"), None);
        assert_eq!(nginx_time("5x"), None);
        // The default value is the listener's: nothing to build.
        let (p, problems) = parse(&[("ssl-session-timeout", "10m")]);
        assert!(p.is_none() && problems.is_empty());
        let (p, problems) = parse(&[("ssl-session-timeout", "later")]);
        assert!(p.is_none());
        assert!(
            problems[0].contains("the default 10m applies"),
            "{problems:?}"
        );
        // ingress-nginx's e2e value (80 bytes).
        let key = "WW9gcPHgfcrw6DNqY5VE2NjM6gtgUhJ4Vn6ZwRGi/7+A9TNFa4Fvfe1cmlPec9bxDoenN70aMBeZBlcrKshnKT4WJxFNLCuTHhfn4loTOEo=";
        let (a, problems) = parse(&[("ssl-session-ticket-key", key)]);
        assert!(problems.is_empty());
        let (b, _) = parse(&[("ssl-session-ticket-key", key)]);
        // Equal values, equal policies (no republish); another value differs.
        assert!(a.as_ref().unwrap().ticket_key.is_some());
        assert!(a == b);
        let (c, _) = parse(&[("ssl-session-ticket-key", &key.replace('W', "X"))]);
        assert!(a != c);
        let (p, problems) = parse(&[("ssl-session-ticket-key", "c2VjcmV0")]);
        assert!(p.is_none());
        assert_eq!(problems.len(), 1);
        assert!(!problems[0].contains("c2VjcmV0"), "{problems:?}");
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
