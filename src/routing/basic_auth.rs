//! Basic authentication of one Ingress (`auth-type: basic`), typed at translate time
//! (`translate/basic_auth.rs`) and checked per request by `proxy/basic_auth.rs`: the users of
//! its Secret with their password hashes, parsed once, and the `WWW-Authenticate` challenge.
//!
//! The hash formats are those nginx's `auth_basic_user_file` accepts (nginx `ngx_crypt.c`
//! and the C library's `crypt()` of ingress-nginx's Alpine image): bcrypt (`$2a$`, `$2b$`,
//! `$2y$`), Apache's MD5 (`$apr1$`), MD5-crypt (`$1$`), SHA-crypt (`$5$`, `$6$`), `{SHA}`,
//! `{SSHA}` and `{PLAIN}`. DES `crypt` (13 characters, no prefix) is refused: it only reads
//! the first 8 bytes of a password (docs/decisions.md).

use std::sync::{Mutex, OnceLock};

use base64::Engine as _;
use serde::Serialize;
use subtle::ConstantTimeEq;

/// Highest bcrypt cost accepted: 16 is ~5 s of one core per check; more is a denial of
/// service waiting to happen (docs/security.md).
pub const MAX_BCRYPT_COST: u32 = 16;
/// Highest SHA-crypt `rounds=` accepted (glibc's default is 5000).
pub const MAX_SHA_CRYPT_ROUNDS: u32 = 1_000_000;
/// Verified credentials remembered per Secret (see [`Verified`]).
pub const VERIFIED_CAPACITY: usize = 1024;

/// One user's password hash, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    /// `$2a$`, `$2b$`, `$2y$`: checked by the `bcrypt` crate (slow by design).
    Bcrypt(String),
    /// `$apr1$` (Apache, `htpasswd -m`, its default) or `$1$` (MD5-crypt): the magic, the salt
    /// and the 22-character encoded digest.
    Md5 {
        magic: &'static str,
        salt: Vec<u8>,
        digest: String,
    },
    /// `$5$` / `$6$` (SHA-crypt, `htpasswd -2`/`-5` in Apache 2.5): the whole string.
    ShaCrypt(String),
    /// `{SHA}` + base64(SHA-1(password)) (`htpasswd -s`).
    Sha1([u8; 20]),
    /// `{SSHA}` + base64(SHA-1(password + salt) + salt).
    Ssha { digest: [u8; 20], salt: Vec<u8> },
    /// `{PLAIN}` + the password.
    Plain(Vec<u8>),
}

/// Why a hash is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashError {
    /// DES `crypt`: nginx's C library accepts it, Portico does not (8-byte passwords).
    Des,
    /// A bcrypt cost or SHA-crypt round count above the limits.
    TooCostly,
    /// Nothing nginx would accept either.
    Unknown,
}

impl std::fmt::Display for HashError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HashError::Des => "a DES crypt hash (refused: it only checks 8 characters)",
            HashError::TooCostly => {
                "a hash whose cost exceeds the limit (bcrypt 16, SHA-crypt 1000000 rounds)"
            }
            HashError::Unknown => "no password hash Portico recognises",
        })
    }
}

impl Credential {
    /// Parses one hash as written after `user:` in an htpasswd line.
    pub fn parse(hash: &str) -> Result<Credential, HashError> {
        let hash = hash.trim_end_matches(['\r', '\n']);
        if let Some(rest) = hash.strip_prefix("{PLAIN}") {
            return Ok(Credential::Plain(rest.as_bytes().to_vec()));
        }
        if let Some(rest) = hash.strip_prefix("{SHA}") {
            let bytes = b64(rest)?;
            let digest: [u8; 20] = bytes.try_into().map_err(|_| HashError::Unknown)?;
            return Ok(Credential::Sha1(digest));
        }
        if let Some(rest) = hash.strip_prefix("{SSHA}") {
            let bytes = b64(rest)?;
            if bytes.len() <= 20 {
                return Err(HashError::Unknown);
            }
            let (digest, salt) = bytes.split_at(20);
            return Ok(Credential::Ssha {
                digest: digest.try_into().map_err(|_| HashError::Unknown)?,
                salt: salt.to_vec(),
            });
        }
        for magic in ["$apr1$", "$1$"] {
            if let Some(rest) = hash.strip_prefix(magic) {
                let (salt, digest) = rest.split_once('$').ok_or(HashError::Unknown)?;
                if salt.is_empty() || salt.len() > 8 || digest.len() != 22 {
                    return Err(HashError::Unknown);
                }
                let magic = if magic == "$1$" { "$1$" } else { "$apr1$" };
                return Ok(Credential::Md5 {
                    magic,
                    salt: salt.as_bytes().to_vec(),
                    digest: digest.to_string(),
                });
            }
        }
        if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
            let cost: u32 = hash
                .get(4..6)
                .and_then(|c| c.parse().ok())
                .ok_or(HashError::Unknown)?;
            if hash.len() != 60 || hash.as_bytes()[6] != b'$' || !(4..=31).contains(&cost) {
                return Err(HashError::Unknown);
            }
            if cost > MAX_BCRYPT_COST {
                return Err(HashError::TooCostly);
            }
            return Ok(Credential::Bcrypt(hash.to_string()));
        }
        if hash.starts_with("$5$") || hash.starts_with("$6$") {
            let rounds = hash[3..]
                .strip_prefix("rounds=")
                .map(|r| r.split('$').next().unwrap_or_default().parse::<u32>());
            match rounds {
                Some(Ok(n)) if n > MAX_SHA_CRYPT_ROUNDS => return Err(HashError::TooCostly),
                Some(Err(_)) => return Err(HashError::Unknown),
                _ => {}
            }
            // Checked as a whole when verifying; a malformed one never verifies, so parse it
            // now with an empty password to refuse it at translate time.
            if sha_crypt_check(b"", hash).is_none() {
                return Err(HashError::Unknown);
            }
            return Ok(Credential::ShaCrypt(hash.to_string()));
        }
        if hash.len() == 13
            && hash
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
        {
            return Err(HashError::Des);
        }
        Err(HashError::Unknown)
    }

    /// Whether checking costs enough to run off the async executor (bcrypt, MD5 and
    /// SHA-crypt iterate; the SHA-1 and plain forms are one hash or a compare).
    pub fn is_costly(&self) -> bool {
        matches!(
            self,
            Credential::Bcrypt(_) | Credential::Md5 { .. } | Credential::ShaCrypt(_)
        )
    }

    /// Whether `password` matches; every comparison of secret bytes is in constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Credential::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Credential::Md5 {
                magic,
                salt,
                digest,
            } => {
                let computed = md5_crypt(password, salt, magic.as_bytes());
                computed.as_bytes().ct_eq(digest.as_bytes()).into()
            }
            Credential::ShaCrypt(hash) => sha_crypt_check(password, hash).unwrap_or(false),
            Credential::Sha1(digest) => {
                use sha1::Digest as _;
                let computed = sha1::Sha1::digest(password);
                computed.as_slice().ct_eq(digest).into()
            }
            Credential::Ssha { digest, salt } => {
                use sha1::Digest as _;
                let mut h = sha1::Sha1::new();
                h.update(password);
                h.update(salt);
                h.finalize().as_slice().ct_eq(digest).into()
            }
            Credential::Plain(plain) => plain.as_slice().ct_eq(password).into(),
        }
    }
}

fn b64(text: &str) -> Result<Vec<u8>, HashError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| HashError::Unknown)
}

/// `Some(matches)` for a well-formed SHA-crypt string, `None` for a malformed one.
fn sha_crypt_check(password: &[u8], hash: &str) -> Option<bool> {
    use sha_crypt::{PasswordVerifier as _, ShaCrypt};
    match ShaCrypt::default().verify_password(password, hash) {
        Ok(()) => Some(true),
        Err(sha_crypt::password_hash::Error::PasswordInvalid) => Some(false),
        Err(_) => None,
    }
}

/// MD5-crypt (Poul-Henning Kamp's, `$1$`) and Apache's variant of it (`$apr1$`, the same
/// algorithm with another magic): the 22-character encoded digest.
fn md5_crypt(password: &[u8], salt: &[u8], magic: &[u8]) -> String {
    use md5::{Digest as _, Md5};
    let mut alt = Md5::new();
    alt.update(password);
    alt.update(salt);
    alt.update(password);
    let alt = alt.finalize();

    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(magic);
    ctx.update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 != 0 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut fin: [u8; 16] = ctx.finalize().into();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 != 0 {
            c.update(password);
        } else {
            c.update(fin);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 != 0 {
            c.update(fin);
        } else {
            c.update(password);
        }
        fin = c.finalize().into();
    }
    const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(22);
    let mut to64 = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(ITOA64[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    let f = |i: usize| u32::from(fin[i]);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64((f(a) << 16) | (f(b) << 8) | f(c), 4);
    }
    to64(f(11), 2);
    out
}

/// The basic authentication of one Ingress's paths.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// The Secret the users came from, `namespace/name` (for /debug/routes).
    pub secret: String,
    pub realm: String,
    /// `Basic realm="<realm>"`, made once (the realm holds no `"` or `\`: translate checks).
    #[serde(skip)]
    pub challenge: http::HeaderValue,
    /// Users and their hashes, sorted by user name (first line wins for a repeated user, as
    /// nginx reads the file top down).
    #[serde(skip)]
    pub users: Vec<(String, Credential)>,
    /// Verified `user:password` pairs of this Secret version (see [`Verified`]); a new Secret
    /// is a new `BasicAuth`, with an empty cache.
    #[serde(skip)]
    pub verified: Verified,
}

impl BasicAuth {
    pub fn new(secret: String, realm: String, mut users: Vec<(String, Credential)>) -> Self {
        // Stable sort: the first line of a user stays first, then dedup keeps it.
        users.sort_by(|a, b| a.0.cmp(&b.0));
        users.dedup_by(|later, first| later.0 == first.0);
        let challenge = http::HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
            .unwrap_or_else(|_| http::HeaderValue::from_static("Basic realm=\"\""));
        BasicAuth {
            secret,
            realm,
            challenge,
            users,
            verified: Verified::default(),
        }
    }

    /// The hash of `user`, if the Secret lists them.
    pub fn credential(&self, user: &str) -> Option<&Credential> {
        self.users
            .binary_search_by(|(u, _)| u.as_str().cmp(user))
            .ok()
            .map(|i| &self.users[i].1)
    }
}

// Equality and hashing ignore the cache: two translations of the same Secret are equal.
impl PartialEq for BasicAuth {
    fn eq(&self, other: &Self) -> bool {
        self.secret == other.secret && self.realm == other.realm && self.users == other.users
    }
}

impl Eq for BasicAuth {}

impl std::hash::Hash for BasicAuth {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.secret.hash(state);
        self.realm.hash(state);
        self.users.hash(state);
    }
}

/// Remembers `user:password` pairs that verified against a costly hash, so a client sending
/// the same credentials on every request pays one bcrypt check, not one per request.
///
/// Safe because: the entries are HMAC-SHA256 tags of `user NUL password` under a key drawn
/// from the OS at first use (never the password, nor an unkeyed hash of it); only successful
/// checks are stored, so a wrong password is always checked in full; it is bounded
/// ([`VERIFIED_CAPACITY`]; when full it starts over); and it lives inside one `BasicAuth`,
/// which translate builds anew whenever the Secret (or the annotations) change, so a removed
/// user or changed password is never found in it.
#[derive(Default)]
pub struct Verified {
    inner: OnceLock<Option<VerifiedInner>>,
}

struct VerifiedInner {
    key: ring::hmac::Key,
    tags: Mutex<std::collections::HashSet<[u8; 32]>>,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verified")
    }
}

impl Verified {
    fn inner(&self) -> Option<&VerifiedInner> {
        self.inner
            .get_or_init(|| {
                let rng = ring::rand::SystemRandom::new();
                // Without randomness there is no cache: every check runs in full.
                ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
                    .ok()
                    .map(|key| VerifiedInner {
                        key,
                        tags: Mutex::new(std::collections::HashSet::new()),
                    })
            })
            .as_ref()
    }

    /// The keyed tag of one pair (`None` when the cache is unavailable).
    pub fn tag(&self, user: &str, password: &[u8]) -> Option<[u8; 32]> {
        let inner = self.inner()?;
        let mut ctx = ring::hmac::Context::with_key(&inner.key);
        ctx.update(user.as_bytes());
        ctx.update(&[0]);
        ctx.update(password);
        ctx.sign().as_ref().try_into().ok()
    }

    pub fn contains(&self, tag: &[u8; 32]) -> bool {
        self.inner()
            .and_then(|i| i.tags.lock().ok().map(|t| t.contains(tag)))
            .unwrap_or(false)
    }

    pub fn insert(&self, tag: [u8; 32]) {
        if let Some(mut tags) = self.inner().and_then(|i| i.tags.lock().ok()) {
            if tags.len() >= VERIFIED_CAPACITY {
                tags.clear();
            }
            tags.insert(tag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from `openssl passwd -apr1 / -1 / -5 / -6 -salt ... secret`.
    const APR1: &str = "$apr1$r31tn0Pa$EIV.F/v7BHPdZw91Lcw8E/";
    const MD5: &str = "$1$saltsalt$9xy1btjgzLYfb7hivXtC//";
    const SHA256: &str = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA";
    const SHA512: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";

    #[test]
    fn every_nginx_hash_form_verifies_its_password_only() {
        let bcrypt = bcrypt::hash("secret", 4).unwrap();
        let sha = format!(
            "{{SHA}}{}",
            base64::engine::general_purpose::STANDARD.encode({
                use sha1::Digest as _;
                sha1::Sha1::digest(b"secret")
            })
        );
        let ssha = format!(
            "{{SSHA}}{}",
            base64::engine::general_purpose::STANDARD.encode({
                use sha1::Digest as _;
                let mut h = sha1::Sha1::new();
                h.update(b"secret");
                h.update(b"salt");
                let mut v = h.finalize().to_vec();
                v.extend_from_slice(b"salt");
                v
            })
        );
        for hash in [
            APR1,
            MD5,
            SHA256,
            SHA512,
            bcrypt.as_str(),
            &bcrypt.replacen("$2b$", "$2y$", 1),
            &sha,
            &ssha,
            "{PLAIN}secret",
        ] {
            let c = Credential::parse(hash).unwrap_or_else(|e| panic!("{hash}: {e}"));
            assert!(c.verify(b"secret"), "{hash}");
            assert!(!c.verify(b"secreT"), "{hash}");
            assert!(!c.verify(b""), "{hash}");
        }
    }

    #[test]
    fn des_garbage_and_costly_hashes_are_refused() {
        assert_eq!(Credential::parse("abJnggxhB/yWI"), Err(HashError::Des));
        assert_eq!(Credential::parse(""), Err(HashError::Unknown));
        assert_eq!(Credential::parse("secret"), Err(HashError::Unknown));
        assert_eq!(Credential::parse("$apr1$x"), Err(HashError::Unknown));
        assert_eq!(Credential::parse("$6$broken"), Err(HashError::Unknown));
        let costly = "$2b$17$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyzabcde";
        assert_eq!(Credential::parse(costly), Err(HashError::TooCostly));
        assert_eq!(
            Credential::parse("$6$rounds=999999999$salt$abc"),
            Err(HashError::TooCostly)
        );
    }

    #[test]
    fn first_line_of_a_user_wins_and_lookup_is_exact() {
        let auth = BasicAuth::new(
            "ns/s".into(),
            "r".into(),
            vec![
                ("b".into(), Credential::Plain(b"1".to_vec())),
                ("a".into(), Credential::Plain(b"2".to_vec())),
                ("b".into(), Credential::Plain(b"3".to_vec())),
            ],
        );
        assert!(auth.credential("b").unwrap().verify(b"1"));
        assert!(auth.credential("a").unwrap().verify(b"2"));
        assert!(auth.credential("B").is_none());
        assert_eq!(auth.challenge, "Basic realm=\"r\"");
    }

    #[test]
    fn the_cache_is_keyed_and_bounded() {
        let v = Verified::default();
        let tag = v.tag("u", b"p").unwrap();
        assert_ne!(&tag[..], b"u\0p".as_slice());
        assert_ne!(Some(tag), v.tag("u", b"q"));
        assert!(!v.contains(&tag));
        v.insert(tag);
        assert!(v.contains(&tag));
        for i in 0..VERIFIED_CAPACITY {
            v.insert(v.tag("x", i.to_string().as_bytes()).unwrap());
        }
        let len = v.inner().unwrap().tags.lock().unwrap().len();
        assert!(len <= VERIFIED_CAPACITY, "{len}");
    }
}
