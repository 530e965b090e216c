//! Per request: basic authentication of a route whose Ingress set `auth-type: basic` (nginx's
//! `auth_basic` / `auth_basic_user_file`, typed by `translate/basic_auth.rs`). Runs after the
//! redirects (nginx's access phase follows its rewrite phase) and before anything is sent
//! upstream; the `Authorization` header is passed on, as nginx does.
//!
//! Costly hashes (bcrypt, MD5, SHA-crypt) are checked on tokio's blocking pool, at most
//! [`hashing_permits`] at once, so a flood of wrong passwords queues there instead of stalling
//! the async workers that serve every other route (docs/security.md). A pair that verified is
//! remembered in the `BasicAuth`'s keyed cache and not hashed again.

use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{
    HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, DATE, SERVER, WWW_AUTHENTICATE,
};
use http::{HeaderMap, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use tokio::sync::Semaphore;

use super::error::{date_now, response_version};
use super::ProxyBody;
use crate::routing::basic_auth::BasicAuth;

/// Longest `Authorization` value looked at: bcrypt reads 72 bytes of a password, nginx's
/// header buffers bound the rest; anything longer is refused before decoding.
const MAX_CREDENTIALS: usize = 4096;

/// How many costly checks run at once: half the cores (at least one), so authentication can
/// never take all of them from the proxy.
pub fn hashing_permits() -> usize {
    std::thread::available_parallelism()
        .map(|n| (n.get() / 2).max(1))
        .unwrap_or(1)
}

fn hashing() -> &'static Semaphore {
    static HASHING: OnceLock<Semaphore> = OnceLock::new();
    HASHING.get_or_init(|| Semaphore::new(hashing_permits()))
}

/// `None` when the request carries credentials of a listed user; else the 401 to answer.
pub async fn check(
    auth: &Arc<BasicAuth>,
    headers: &HeaderMap,
    version: Version,
) -> Option<Response<ProxyBody>> {
    if verified(auth, headers).await {
        None
    } else {
        Some(unauthorized(auth, version))
    }
}

/// `user` and `password` of a `Basic` `Authorization` header (RFC 7617).
fn credentials(headers: &HeaderMap) -> Option<(String, Vec<u8>)> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    if value.len() > MAX_CREDENTIALS || value.len() < 6 {
        return None;
    }
    let (scheme, rest) = value.split_at(6);
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim_ascii())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = std::str::from_utf8(&decoded[..colon]).ok()?.to_string();
    Some((user, decoded[colon + 1..].to_vec()))
}

async fn verified(auth: &Arc<BasicAuth>, headers: &HeaderMap) -> bool {
    let Some((user, password)) = credentials(headers) else {
        return false;
    };
    let Some(credential) = auth.credential(&user) else {
        return false;
    };
    if !credential.is_costly() {
        return credential.verify(&password);
    }
    let tag = auth.verified.tag(&user, &password);
    if tag.is_some_and(|t| auth.verified.contains(&t)) {
        return true;
    }
    // The semaphore is never closed; without a permit nothing is checked (fail closed).
    let Ok(permit) = hashing().acquire().await else {
        return false;
    };
    let owned = auth.clone();
    // The permit moves into the blocking task: a client that goes away mid-check does not
    // free its slot before the hash is done, so disconnects cannot pile up hashing threads.
    let ok = tokio::task::spawn_blocking(move || {
        let ok = owned.credential(&user).is_some_and(|c| c.verify(&password));
        drop(permit);
        ok
    })
    .await
    .unwrap_or(false);
    if ok {
        if let Some(t) = tag {
            auth.verified.insert(t);
        }
    }
    ok
}

/// nginx's answer: 401 with `WWW-Authenticate: Basic realm="..."` (e2e auth.go expects the
/// body to contain "401 Authorization Required").
fn unauthorized(auth: &BasicAuth, version: Version) -> Response<ProxyBody> {
    const TEXT: &str = "401 Authorization Required\n";
    let mut response = Response::new(
        Full::new(Bytes::from_static(TEXT.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    *response.version_mut() = response_version(version);
    let headers = response.headers_mut();
    headers.insert(WWW_AUTHENTICATE, auth.challenge.clone());
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(TEXT.len()));
    headers.insert(DATE, date_now());
    headers.insert(SERVER, HeaderValue::from_static(super::SERVER));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::basic_auth::Credential;

    fn basic(user_pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(user_pass);
        h.insert(AUTHORIZATION, format!("Basic {v}").parse().unwrap());
        h
    }

    fn auth() -> Arc<BasicAuth> {
        Arc::new(BasicAuth::new(
            "default/s".into(),
            "test auth".into(),
            vec![
                (
                    "foo".into(),
                    Credential::parse(&bcrypt::hash("bar", 4).unwrap()).unwrap(),
                ),
                ("plain".into(), Credential::parse("{PLAIN}p:w").unwrap()),
            ],
        ))
    }

    #[tokio::test]
    async fn right_credentials_pass_and_are_remembered() {
        let a = auth();
        assert!(check(&a, &basic("foo:bar"), Version::HTTP_11)
            .await
            .is_none());
        let tag = a.verified.tag("foo", b"bar").unwrap();
        assert!(a.verified.contains(&tag));
        // Served from the cache the second time.
        assert!(check(&a, &basic("foo:bar"), Version::HTTP_11)
            .await
            .is_none());
        // The password may hold a colon; the user may not.
        assert!(check(&a, &basic("plain:p:w"), Version::HTTP_11)
            .await
            .is_none());
    }

    #[tokio::test]
    async fn anything_else_is_401_with_the_realm() {
        let a = auth();
        let mut lower = HeaderMap::new();
        lower.insert(
            AUTHORIZATION,
            format!(
                "basic {}",
                base64::engine::general_purpose::STANDARD.encode("foo:bar")
            )
            .parse()
            .unwrap(),
        );
        assert!(check(&a, &lower, Version::HTTP_11).await.is_none());
        for headers in [
            HeaderMap::new(),
            basic("foo:baz"),
            basic("Foo:bar"),
            basic("nobody:bar"),
            basic("foobar"),
        ] {
            let r = check(&a, &headers, Version::HTTP_11).await.expect("401");
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(r.headers()[WWW_AUTHENTICATE], "Basic realm=\"test auth\"");
        }
        let mut bearer = HeaderMap::new();
        bearer.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert!(check(&a, &bearer, Version::HTTP_11).await.is_some());
        // A wrong password is never cached.
        let tag = a.verified.tag("foo", b"baz").unwrap();
        assert!(!a.verified.contains(&tag));
    }
}
