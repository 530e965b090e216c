//! ingress-nginx's basic authentication annotations (`auth-type`, `auth-secret`,
//! `auth-secret-type`, `auth-realm`), typed at translate time into a
//! [`BasicAuth`](crate::routing::basic_auth::BasicAuth) that `incremental::derive` puts in the
//! Ingress's policy; `proxy/basic_auth.rs` checks requests against it.
//!
//! Source: ingress-nginx `internal/ingress/annotations/auth/main.go` (what is denied), the
//! template's `auth_basic` (`rootfs/etc/nginx/template/nginx.tmpl`) and e2e
//! `test/e2e/annotations/auth.go`. Fail closed (`ingress-nginx.md` §3): where ingress-nginx
//! denies the location (bad type, missing or foreign Secret, no `auth` key), or Portico cannot
//! enforce what is asked (`digest`), every path of the Ingress answers 503.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;

use super::annotations::annotation;
use crate::routing::basic_auth::{BasicAuth, Credential};

/// The annotation names, without prefix.
pub const AUTH_TYPE: &str = "auth-type";
pub const AUTH_SECRET: &str = "auth-secret";
pub const AUTH_SECRET_TYPE: &str = "auth-secret-type";
pub const AUTH_REALM: &str = "auth-realm";

/// Largest htpasswd content (or sum of `auth-map` values) read: a Kubernetes Secret holds at
/// most 1 MiB, so more can only come from a manifest, and is refused (fail closed).
pub const MAX_AUTH_BYTES: usize = 1 << 20;

/// What one Ingress's basic-auth annotations come to.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    /// The users to check requests against.
    pub auth: Option<Arc<BasicAuth>>,
    /// Why the Ingress's paths must answer 503 instead (fail closed).
    pub denied: Option<String>,
    /// Problems that leave the rest working (unusable lines of the htpasswd content).
    pub warnings: Vec<String>,
}

/// ingress-nginx's `CharsWithSpace` (`internal/ingress/annotations/parser/validators.go`),
/// the only characters `auth-realm` may hold: no quote or backslash can reach the header.
fn realm_ok(realm: &str) -> bool {
    realm
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~/: ".contains(&b))
}

/// Reads the Ingress's basic-auth annotations; `namespace` is the Ingress's.
pub(super) fn parse(ingress: &Ingress, namespace: &str, secrets: &[Arc<Secret>]) -> Parsed {
    let mut parsed = Parsed::default();
    let auth_type = annotation(ingress, AUTH_TYPE);
    let secret = annotation(ingress, AUTH_SECRET);
    let deny = |parsed: &mut Parsed, why: String| {
        parsed.denied = Some(format!(
            "{why}; every path of this Ingress answers 503 rather than serving without \
             authentication"
        ));
    };
    let (type_key, auth_type) = match (auth_type, &secret) {
        (None, None) => return parsed,
        // ingress-nginx ignores a lone `auth-secret` (no type, no auth); Portico does not
        // serve unprotected what names a password Secret (docs/decisions.md).
        (None, Some((key, _))) => {
            deny(
                &mut parsed,
                format!("annotation {key} is set without auth-type"),
            );
            return parsed;
        }
        (Some(t), _) => t,
    };
    match auth_type.trim() {
        "basic" => {}
        "digest" => {
            deny(
                &mut parsed,
                format!(
                    "annotation {type_key}: \"digest\" authentication is not implemented by \
                     Portico"
                ),
            );
            return parsed;
        }
        other => {
            deny(
                &mut parsed,
                format!("annotation {type_key}: {other:?} is neither \"basic\" nor \"digest\""),
            );
            return parsed;
        }
    }
    let Some((secret_key, secret_value)) = secret else {
        deny(
            &mut parsed,
            format!("annotation {type_key} is set without auth-secret"),
        );
        return parsed;
    };
    let map = match annotation(ingress, AUTH_SECRET_TYPE) {
        None => false,
        Some((_, v)) if v.trim() == "auth-file" => false,
        Some((_, v)) if v.trim() == "auth-map" => true,
        Some((key, v)) => {
            deny(
                &mut parsed,
                format!("annotation {key}: {v:?} is neither \"auth-file\" nor \"auth-map\""),
            );
            return parsed;
        }
    };
    let realm = match annotation(ingress, AUTH_REALM) {
        None => String::new(),
        Some((_, v)) if realm_ok(v) => v.to_string(),
        Some((key, v)) => {
            deny(
                &mut parsed,
                format!(
                    "annotation {key}: {v:?} holds characters other than letters, digits, \
                     space and -._~/:"
                ),
            );
            return parsed;
        }
    };
    // `namespace/name` or `name`; another namespace is refused, as ingress-nginx does unless
    // `allow-cross-namespace-resources` (default false) says otherwise.
    let value = secret_value.trim();
    let (ns, name) = value.split_once('/').unwrap_or((namespace, value));
    if ns != namespace {
        deny(
            &mut parsed,
            format!("annotation {secret_key}: {value:?} names a Secret in another namespace"),
        );
        return parsed;
    }
    let Some(found) = secrets.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name)
    }) else {
        deny(
            &mut parsed,
            format!("annotation {secret_key}: {value:?} names no Secret"),
        );
        return parsed;
    };
    let entries = if map {
        map_entries(found)
    } else {
        match file_entries(found) {
            Some(entries) => entries,
            None => {
                deny(
                    &mut parsed,
                    format!("annotation {secret_key}: Secret {ns}/{name} has no key \"auth\""),
                );
                return parsed;
            }
        }
    };
    let total: usize = entries.iter().map(|(u, h)| u.len() + h.len()).sum();
    if total > MAX_AUTH_BYTES {
        deny(
            &mut parsed,
            format!(
                "annotation {secret_key}: Secret {ns}/{name} holds more than {MAX_AUTH_BYTES} \
                 bytes of users"
            ),
        );
        return parsed;
    }
    let mut users = Vec::with_capacity(entries.len());
    for (what, (user, hash)) in entries.iter().enumerate() {
        // Never the hash in a message: the condition is visible to whoever reads Events.
        let at = if map {
            format!("user {user:?}")
        } else {
            format!("line {}", what + 1)
        };
        if user.is_empty() {
            parsed.warnings.push(format!(
                "annotation {secret_key}: Secret {ns}/{name} {at} has no user name; skipped"
            ));
            continue;
        }
        match Credential::parse(hash) {
            Ok(c) => users.push((user.clone(), c)),
            Err(e) => parsed.warnings.push(format!(
                "annotation {secret_key}: Secret {ns}/{name} {at} holds {e}; that user cannot \
                 log in"
            )),
        }
    }
    if users.is_empty() {
        // e2e auth.go "should return status code 401 when authentication is configured with
        // invalid content": nginx answers 401 to everyone, and so does Portico.
        parsed.warnings.push(format!(
            "annotation {secret_key}: Secret {ns}/{name} lists no usable user; every request \
             answers 401"
        ));
    }
    parsed.auth = Some(Arc::new(BasicAuth::new(
        format!("{ns}/{name}"),
        realm,
        users,
    )));
    parsed
}

/// The bytes of `key`, from `data` or `stringData` (manifests may use either).
fn value<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    if let Some(v) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
        return Some(v.as_bytes());
    }
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.0.as_slice())
}

/// `auth-file`: the htpasswd lines of key `auth` as (user, hash); `None` without the key.
/// As nginx reads `auth_basic_user_file`: blank lines and `#` comments are skipped, a line is
/// `user:hash[:comment]`.
fn file_entries(secret: &Secret) -> Option<Vec<(String, String)>> {
    let text = value(secret, "auth")?;
    let text = String::from_utf8_lossy(text);
    Some(
        text.lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|line| {
                let mut fields = line.splitn(3, ':');
                let user = fields.next().unwrap_or_default().to_string();
                let hash = fields.next().unwrap_or_default().to_string();
                (user, hash)
            })
            .collect(),
    )
}

/// `auth-map`: every key of the Secret is a user, its value the hash (ingress-nginx writes
/// them as `key:value` lines).
fn map_entries(secret: &Secret) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = Vec::new();
    for (k, v) in secret.data.iter().flatten() {
        entries.push((k.clone(), String::from_utf8_lossy(&v.0).trim().to_string()));
    }
    for (k, v) in secret.string_data.iter().flatten() {
        entries.retain(|(u, _)| u != k);
        entries.push((k.clone(), v.trim().to_string()));
    }
    entries.sort();
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn ingress(pairs: &[(&str, &str)]) -> Ingress {
        let mut ing = super::super::annotations::annotated(pairs);
        ing.metadata.name = Some("app".into());
        ing
    }

    fn secret(ns: &str, name: &str, data: &[(&str, &str)]) -> Arc<Secret> {
        let mut s = Secret::default();
        s.metadata.namespace = Some(ns.into());
        s.metadata.name = Some(name.into());
        s.data = Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        );
        Arc::new(s)
    }

    const N: &str = "nginx.ingress.kubernetes.io/";

    fn parse_with(pairs: &[(&str, &str)], secrets: &[Arc<Secret>]) -> Parsed {
        let pairs: Vec<(String, &str)> =
            pairs.iter().map(|(k, v)| (format!("{N}{k}"), *v)).collect();
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        parse(&ingress(&pairs), "default", secrets)
    }

    #[test]
    fn an_htpasswd_file_gives_its_users_and_realm() {
        let secrets = [secret(
            "default",
            "s",
            &[(
                "auth",
                "# comment\nfoo:{PLAIN}bar\n\nbad\nold:abJnggxhB/yWI\n",
            )],
        )];
        let p = parse_with(
            &[
                ("auth-type", "basic"),
                ("auth-secret", "s"),
                ("auth-realm", "test auth"),
            ],
            &secrets,
        );
        assert!(p.denied.is_none(), "{:?}", p.denied);
        let auth = p.auth.unwrap();
        assert_eq!(auth.challenge, "Basic realm=\"test auth\"");
        assert!(auth.credential("foo").unwrap().verify(b"bar"));
        // `bad` has no hash, `old` a DES one: reported, never printed.
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert!(p.warnings.iter().all(|w| !w.contains("abJngg")));
    }

    #[test]
    fn an_auth_map_takes_every_key_as_a_user() {
        let secrets = [secret(
            "default",
            "m",
            &[("foo", "{PLAIN}bar"), ("baz", "{PLAIN}q")],
        )];
        let p = parse_with(
            &[
                ("auth-type", "basic"),
                ("auth-secret", "default/m"),
                ("auth-secret-type", "auth-map"),
            ],
            &secrets,
        );
        let auth = p.auth.unwrap();
        assert!(auth.credential("foo").unwrap().verify(b"bar"));
        assert!(auth.credential("baz").unwrap().verify(b"q"));
        assert_eq!(auth.challenge, "Basic realm=\"\"");
    }

    #[test]
    fn what_ingress_nginx_denies_fails_closed() {
        let secrets = [
            secret("default", "s", &[("auth", "foo:{PLAIN}bar")]),
            secret("default", "noauth", &[("other", "x")]),
            secret("other", "s", &[("auth", "foo:{PLAIN}bar")]),
        ];
        for pairs in [
            vec![("auth-type", "basic"), ("auth-secret", "missing")],
            vec![("auth-type", "basic"), ("auth-secret", "noauth")],
            vec![("auth-type", "basic"), ("auth-secret", "other/s")],
            vec![("auth-type", "basic")],
            vec![("auth-type", "digest"), ("auth-secret", "s")],
            vec![("auth-type", "ntlm"), ("auth-secret", "s")],
            vec![("auth-secret", "s")],
            vec![
                ("auth-type", "basic"),
                ("auth-secret", "s"),
                ("auth-secret-type", "x"),
            ],
            vec![
                ("auth-type", "basic"),
                ("auth-secret", "s"),
                ("auth-realm", "a\"b"),
            ],
        ] {
            let p = parse_with(&pairs, &secrets);
            assert!(p.denied.is_some() && p.auth.is_none(), "{pairs:?}");
        }
        // Only tuning annotations: nothing to enforce.
        let p = parse_with(&[("auth-realm", "x")], &secrets);
        assert!(p.denied.is_none() && p.auth.is_none());
    }

    #[test]
    fn a_secret_without_usable_users_answers_401_not_serves() {
        // e2e auth.go: `auth: "foo:"` ("invalid content") answers 401.
        let secrets = [secret("default", "s", &[("auth", "foo:")])];
        let p = parse_with(&[("auth-type", "basic"), ("auth-secret", "s")], &secrets);
        assert!(p.denied.is_none());
        assert!(p.auth.unwrap().users.is_empty());
        assert!(!p.warnings.is_empty());
    }

    #[test]
    fn an_oversized_secret_fails_closed() {
        let big = format!("foo:{{PLAIN}}{}", "x".repeat(MAX_AUTH_BYTES));
        let secrets = [secret("default", "s", &[("auth", &big)])];
        let p = parse_with(&[("auth-type", "basic"), ("auth-secret", "s")], &secrets);
        assert!(p.denied.is_some());
    }
}
