//! TLS session resumption of the HTTPS listener (issue 15), under the handshake: nginx's
//! `ssl_session_timeout` (ConfigMap `ssl-session-timeout`, default 10 minutes) enforced on the
//! session cache and on tickets, and `ssl_session_ticket_key` (ConfigMap
//! `ssl-session-ticket-key`): tickets sealed with a key derived from the operator's, so
//! replicas sharing the key resume each other's sessions.
//!
//! rustls 0.23 enforces neither: its memory cache keeps a session until it is evicted, and a
//! ticket's `lifetime()` is only a hint sent to the client (the server checks a TLS 1.3
//! ticket's age only to decide on early data). So both wrappers below stamp what they store
//! with the issue time (inside the ticket's encryption, so a client cannot change it) and
//! refuse, on the way back, what is older than the timeout: the client then gets a full
//! handshake, as from OpenSSL (`SSL_SESSION` expired when `time + timeout < now`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use ring::{aead, hkdf};
use rustls::server::{ProducesTickets, StoresServerSessions};
use rustls::time_provider::TimeProvider;

/// nginx's and ingress-nginx's `ssl_session_timeout` default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Bytes of the issue time in front of each stored session and ticket plaintext.
const STAMP: usize = 8;

fn now_secs(time: &dyn TimeProvider) -> Option<u64> {
    time.current_time().map(|t| t.as_secs())
}

/// `plain` behind the current time (seconds since the epoch, big-endian).
fn stamp(time: &dyn TimeProvider, plain: &[u8]) -> Option<Vec<u8>> {
    let now = now_secs(time)?;
    let mut out = Vec::with_capacity(STAMP + plain.len());
    out.extend_from_slice(&now.to_be_bytes());
    out.extend_from_slice(plain);
    Some(out)
}

/// What [`stamp`] wrapped, unless it is older than `timeout` seconds (OpenSSL's rule: expired
/// once `issued + timeout < now`). A clock that went back counts as age 0.
fn unstamp(time: &dyn TimeProvider, timeout: u64, mut stamped: Vec<u8>) -> Option<Vec<u8>> {
    let issued = u64::from_be_bytes(stamped.get(..STAMP)?.try_into().ok()?);
    let now = now_secs(time)?;
    if now.saturating_sub(issued) > timeout {
        return None;
    }
    stamped.drain(..STAMP);
    Some(stamped)
}

/// A session cache (session ids of TLS 1.2, stateful TLS 1.3 tickets) whose entries expire
/// after the timeout.
pub struct TimedSessions {
    inner: Arc<dyn StoresServerSessions>,
    timeout: u64,
    time: Arc<dyn TimeProvider>,
}

impl TimedSessions {
    pub fn new(
        inner: Arc<dyn StoresServerSessions>,
        timeout: Duration,
        time: Arc<dyn TimeProvider>,
    ) -> Self {
        TimedSessions {
            inner,
            timeout: timeout.as_secs(),
            time,
        }
    }
}

impl fmt::Debug for TimedSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimedSessions")
            .field("timeout_secs", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl StoresServerSessions for TimedSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        match stamp(&*self.time, &value) {
            Some(stamped) => self.inner.put(key, stamped),
            None => false,
        }
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let stamped = self.inner.get(key)?;
        let value = unstamp(&*self.time, self.timeout, stamped);
        if value.is_none() {
            // Expired: free the slot now rather than at eviction.
            self.inner.take(key);
        }
        value
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        unstamp(&*self.time, self.timeout, self.inner.take(key)?)
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

/// Tickets whose plaintext carries the issue time; refused after the timeout. The lifetime
/// hint sent to clients is the timeout (or the inner ticketer's, when shorter: rustls's own
/// rotates its keys every 6 hours and keeps the previous one, so its tickets last at most 12).
pub struct TimedTickets {
    inner: Arc<dyn ProducesTickets>,
    timeout: u64,
    time: Arc<dyn TimeProvider>,
}

impl TimedTickets {
    pub fn new(
        inner: Arc<dyn ProducesTickets>,
        timeout: Duration,
        time: Arc<dyn TimeProvider>,
    ) -> Self {
        TimedTickets {
            inner,
            timeout: timeout.as_secs(),
            time,
        }
    }
}

impl fmt::Debug for TimedTickets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimedTickets")
            .field("timeout_secs", &self.timeout)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl ProducesTickets for TimedTickets {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        let timeout = u32::try_from(self.timeout).unwrap_or(u32::MAX);
        self.inner.lifetime().min(timeout)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(&stamp(&*self.time, plain)?)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        unstamp(&*self.time, self.timeout, self.inner.decrypt(cipher)?)
    }
}

/// Tickets sealed with a key derived from `ssl-session-ticket-key` (HKDF-SHA256 over the
/// operator's bytes). Each ticket is `name ‖ salt ‖ ChaCha20-Poly1305(plaintext)`: `name`
/// (16 bytes, derived) says which key sealed it, `salt` (16 random bytes) derives the
/// ticket's own AEAD key, so no nonce is ever reused under one key however many tickets a key
/// seals. Nothing rotates: the key is the operator's (nginx does the same with its file).
/// The format is Portico's, not nginx's: replicas share tickets with each other, not with
/// nginx.
pub struct KeyedTicketer {
    name: [u8; NAME],
    prk: hkdf::Prk,
    rng: SystemRandom,
}

const NAME: usize = 16;
const SALT: usize = 16;
/// The lifetime hint when nothing shorter applies (the timeout always does, see
/// [`TimedTickets`]).
const KEYED_LIFETIME: u32 = 24 * 60 * 60;

/// A byte length as an HKDF output type.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl KeyedTicketer {
    /// From the ConfigMap value: base64 of 48 or 80 bytes (`openssl rand 80 | openssl enc -A
    /// -base64`), the sizes nginx reads. The error is the reason (never the key).
    pub fn from_base64(value: &str) -> Result<Self, String> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| "is not base64".to_string())?;
        if bytes.len() != 48 && bytes.len() != 80 {
            return Err(format!(
                "decodes to {} bytes; nginx takes 48 or 80 (openssl rand 80 | openssl enc -A -base64)",
                bytes.len()
            ));
        }
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"portico ssl-session-ticket-key v1");
        let prk = salt.extract(&bytes);
        let mut name = [0u8; NAME];
        prk.expand(&[b"key name"], Len(NAME))
            .and_then(|okm| okm.fill(&mut name))
            .map_err(|_| "cannot derive a key from it".to_string())?;
        Ok(KeyedTicketer {
            name,
            prk,
            rng: SystemRandom::new(),
        })
    }

    /// Identifies the key (derived, so it reveals nothing of it): equal for equal values.
    pub fn name(&self) -> [u8; NAME] {
        self.name
    }

    fn key(&self, salt: &[u8]) -> Option<aead::LessSafeKey> {
        let info: [&[u8]; 2] = [b"ticket", salt];
        let okm = self.prk.expand(&info, &aead::CHACHA20_POLY1305).ok()?;
        Some(aead::LessSafeKey::new(aead::UnboundKey::from(okm)))
    }
}

impl fmt::Debug for KeyedTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedTicketer").finish_non_exhaustive()
    }
}

impl ProducesTickets for KeyedTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        KEYED_LIFETIME
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut salt = [0u8; SALT];
        self.rng.fill(&mut salt).ok()?;
        let key = self.key(&salt)?;
        let mut out = Vec::with_capacity(NAME + SALT + plain.len() + aead::MAX_TAG_LEN);
        out.extend_from_slice(&self.name);
        out.extend_from_slice(&salt);
        out.extend_from_slice(plain);
        let mut sealed = out.split_off(NAME + SALT);
        // One key per ticket: the all-zero nonce is used once per key.
        key.seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key([0; aead::NONCE_LEN]),
            aead::Aad::from(&self.name),
            &mut sealed,
        )
        .ok()?;
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < NAME + SALT + aead::MAX_TAG_LEN || cipher[..NAME] != self.name {
            return None;
        }
        let key = self.key(&cipher[NAME..NAME + SALT])?;
        let mut sealed = cipher[NAME + SALT..].to_vec();
        let plain_len = key
            .open_in_place(
                aead::Nonce::assume_unique_for_key([0; aead::NONCE_LEN]),
                aead::Aad::from(&self.name),
                &mut sealed,
            )
            .ok()?
            .len();
        sealed.truncate(plain_len);
        Some(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::UnixTime;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock the test moves.
    #[derive(Debug)]
    struct Clock(AtomicU64);

    impl TimeProvider for Clock {
        fn current_time(&self) -> Option<UnixTime> {
            Some(UnixTime::since_unix_epoch(Duration::from_secs(
                self.0.load(Ordering::SeqCst),
            )))
        }
    }

    // `openssl rand 80 | openssl enc -A -base64`, as ingress-nginx's e2e
    // settings/ssl_session_tickets.go uses.
    const KEY80: &str = "WW9gcPHgfcrw6DNqY5VE2NjM6gtgUhJ4Vn6ZwRGi/7+A9TNFa4Fvfe1cmlPec9bxDoenN70aMBeZBlcrKshnKT4WJxFNLCuTHhfn4loTOEo=";

    #[test]
    fn tickets_expire_after_the_timeout() {
        let clock = Arc::new(Clock(AtomicU64::new(1_000)));
        let inner = Arc::new(KeyedTicketer::from_base64(KEY80).unwrap());
        let t = TimedTickets::new(inner, Duration::from_secs(60), clock.clone());
        assert_eq!(t.lifetime(), 60);
        let ticket = t.encrypt(b"session").unwrap();
        clock.0.store(1_060, Ordering::SeqCst);
        assert_eq!(t.decrypt(&ticket).as_deref(), Some(&b"session"[..]));
        clock.0.store(1_061, Ordering::SeqCst);
        assert_eq!(t.decrypt(&ticket), None);
    }

    #[test]
    fn cached_sessions_expire_after_the_timeout() {
        let clock = Arc::new(Clock(AtomicU64::new(1_000)));
        let cache = TimedSessions::new(
            rustls::server::ServerSessionMemoryCache::new(16),
            Duration::from_secs(10),
            clock.clone(),
        );
        assert!(cache.put(b"id".to_vec(), b"value".to_vec()));
        clock.0.store(1_010, Ordering::SeqCst);
        assert_eq!(cache.get(b"id").as_deref(), Some(&b"value"[..]));
        clock.0.store(1_011, Ordering::SeqCst);
        assert_eq!(cache.get(b"id"), None);
        // Removed on the expired read.
        clock.0.store(1_000, Ordering::SeqCst);
        assert_eq!(cache.take(b"id"), None);
    }

    #[test]
    fn a_shared_key_opens_the_other_replicas_tickets() {
        let a = KeyedTicketer::from_base64(KEY80).unwrap();
        let b = KeyedTicketer::from_base64(KEY80).unwrap();
        let ticket = a.encrypt(b"state").unwrap();
        assert_eq!(b.decrypt(&ticket).as_deref(), Some(&b"state"[..]));
        // Two tickets of one plaintext differ (a fresh salt each).
        assert_ne!(ticket, a.encrypt(b"state").unwrap());
        let other = KeyedTicketer::from_base64(&KEY80.replace('W', "X")).unwrap();
        assert_eq!(other.decrypt(&ticket), None);
        let mut tampered = ticket.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(b.decrypt(&tampered), None);
        assert_eq!(b.decrypt(&ticket[..20]), None);
    }

    #[test]
    fn key_values_are_checked() {
        use base64::Engine as _;
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
        assert!(KeyedTicketer::from_base64(&b64(48)).is_ok());
        assert!(KeyedTicketer::from_base64(&b64(80)).is_ok());
        assert!(KeyedTicketer::from_base64(&b64(32))
            .unwrap_err()
            .contains("32 bytes"));
        assert!(KeyedTicketer::from_base64("not base64!")
            .unwrap_err()
            .contains("base64"));
    }
}
