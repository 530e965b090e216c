//! ingress-nginx's `ssl-ciphers` and `ssl-prefer-server-ciphers` annotations (issue 15):
//! `ssl_ciphers` / `ssl_prefer_server_ciphers` in the host's nginx `server`, so they act on
//! the handshake of every path of the host. ingress-nginx takes each from the first Ingress
//! of the host (oldest first) that sets it (`controller.go` `createServers`: "only add SSL
//! ciphers if the server does not have them previously configured"); the merge does the same
//! (`incremental::build_vhost`).
//!
//! The cipher list uses the ConfigMap key's OpenSSL-name mapping (`routing::tls_policy`):
//! names rustls does not implement are refused with an `InvalidAnnotation` condition, never
//! replaced by something weaker; a list naming none of its suites leaves the host on the
//! listener's suites. TLS 1.3 suites are never restricted (nginx's `ssl_ciphers` does not
//! touch them either).

use k8s_openapi::api::networking::v1::Ingress;
use rustls::CipherSuite;

use super::annotations::annotation;

pub const SSL_CIPHERS: &str = "ssl-ciphers";
pub const SSL_PREFER_SERVER_CIPHERS: &str = "ssl-prefer-server-ciphers";

/// What one Ingress asks of its hosts' handshakes.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Parsed {
    /// The TLS 1.2 suites, in the listed order.
    pub suites: Option<Vec<CipherSuite>>,
    pub prefer_server_ciphers: Option<bool>,
    /// `InvalidAnnotation` messages.
    pub invalid: Vec<String>,
}

pub(super) fn parse(ingress: &Ingress) -> Parsed {
    let mut parsed = Parsed::default();
    let get = |name: &str| annotation(ingress, name);
    if let Some((key, value)) = get(SSL_CIPHERS) {
        let (suites, refused) = crate::routing::tls_policy::ciphers(value);
        if !refused.is_empty() {
            parsed.invalid.push(format!(
                "annotation {key}: {} refused (not implemented by rustls: only ECDHE with \
                 AES-GCM or CHACHA20-POLY1305; OpenSSL aliases and operators are not read)",
                refused.join(", ")
            ));
        }
        if suites.is_empty() {
            parsed.invalid.push(format!(
                "annotation {key}: {:?} names no supported cipher; the host keeps the \
                 listener's suites",
                value.chars().take(64).collect::<String>()
            ));
        } else {
            parsed.suites = Some(suites);
        }
    }
    if let Some((key, value)) = get(SSL_PREFER_SERVER_CIPHERS) {
        // ingress-nginx `parser.GetBoolAnnotation` (Go's `strconv.ParseBool`).
        match super::configmap::parse_bool(value) {
            Some(prefer) => parsed.prefer_server_ciphers = Some(prefer),
            None => parsed.invalid.push(format!(
                "annotation {key}: {value:?} is not a boolean; ignored"
            )),
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress(pairs: &[(&str, &str)]) -> Ingress {
        super::super::annotations::annotated(pairs)
    }

    // ingress-nginx e2e annotations/sslciphers.go "should change ssl ciphers": an OpenSSL
    // expression of aliases and operators, none of which Portico maps: refused, the host
    // keeps the listener's suites (and still serves HTTPS, as the e2e test checks).
    #[test]
    fn openssl_expressions_are_refused_not_weakened() {
        let p = parse(&ingress(&[
            (
                "nginx.ingress.kubernetes.io/ssl-ciphers",
                "ALL:!aNULL:!EXPORT56:RC4+RSA:+HIGH:+MEDIUM:+LOW:+SSLv2:+EXP",
            ),
            (
                "nginx.ingress.kubernetes.io/ssl-prefer-server-ciphers",
                "false",
            ),
        ]));
        assert_eq!(p.suites, None);
        assert_eq!(p.prefer_server_ciphers, Some(false));
        assert_eq!(p.invalid.len(), 2, "{:?}", p.invalid);
        assert!(p.invalid[0].contains("ALL, RC4+RSA"), "{:?}", p.invalid);
    }

    #[test]
    fn listed_suites_keep_their_order_and_bad_booleans_are_reported() {
        let p = parse(&ingress(&[
            (
                "nginx.ingress.kubernetes.io/ssl-ciphers",
                "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:AES128-SHA",
            ),
            ("portico.dev/ssl-prefer-server-ciphers", "maybe"),
            (
                "nginx.ingress.kubernetes.io/ssl-prefer-server-ciphers",
                "true",
            ),
        ]));
        assert_eq!(
            p.suites,
            Some(vec![
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            ])
        );
        // Portico's spelling wins, even when invalid.
        assert_eq!(p.prefer_server_ciphers, None);
        assert_eq!(p.invalid.len(), 2, "{:?}", p.invalid);
        assert!(p.invalid[0].contains("AES128-SHA refused"));
    }
}
