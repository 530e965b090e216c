//! Client certificates on the proxy side (ingress-nginx `auth-tls-*`, issue 15): which rustls
//! configuration a handshake uses (its SNI decides, as nginx picks the `server` by SNI), and
//! the per-request check of a host with client certificates, in nginx's order: SNI and Host
//! must agree (421), the certificate must be there and verify (400, or a 302 to
//! `auth-tls-error-page`), its subject must match `auth-tls-match-cn` (403). Hosts without
//! `auth-tls-*` never get here: the handshake uses the listener's configuration and the
//! request pays one `Option` check on its vhost.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, DATE, LOCATION, SERVER};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use rustls::server::{ClientHello, ServerConfig};

use super::error::{date_now, response_version};
use super::ProxyBody;
use crate::publish::Shared;
use crate::routing::client_auth::{ClientAuth, PeerCert, Verified, VerifyClient};
use crate::routing::normalize;
use crate::tls::TlsInfo;

pub static SSL_CLIENT_CERT: HeaderName = HeaderName::from_static("ssl-client-cert");
pub static SSL_CLIENT_VERIFY: HeaderName = HeaderName::from_static("ssl-client-verify");
pub static SSL_CLIENT_SUBJECT_DN: HeaderName = HeaderName::from_static("ssl-client-subject-dn");
pub static SSL_CLIENT_ISSUER_DN: HeaderName = HeaderName::from_static("ssl-client-issuer-dn");

/// The configuration for a handshake: the listener's own (`default`, or the ConfigMap TLS
/// policy's), unless the SNI names a host with its own handshake settings (`auth-tls-*` asking
/// for a certificate, `ssl-ciphers`, `ssl-prefer-server-ciphers`: `routing::tls_policy::HostTls`);
/// then that host's (built once per published settings) and the client certificate settings
/// to verify the chain against afterwards. `None`: the host's configuration cannot be built
/// (never expected): refuse the handshake rather than serve it with weaker settings.
pub(crate) fn handshake_config(
    shared: &Shared,
    default: &Arc<ServerConfig>,
    hello: &ClientHello<'_>,
) -> Option<(Arc<ServerConfig>, Option<Arc<ClientAuth>>)> {
    let published = shared.load();
    // `ssl-protocols`, `ssl-ciphers`... (routing/tls_policy.rs): one `Option` when unset.
    let policy = published.translation.global.tls_policy.as_ref();
    let host = hello.server_name().and_then(|sni| {
        published
            .translation
            .table
            .select_vhost(&normalize::host(sni))
            .and_then(|v| v.tls.clone())
    });
    let Some(host) = host else {
        let config = match policy {
            None => default.clone(),
            Some(p) => p.server_config(default).unwrap_or_else(|| default.clone()),
        };
        return Some((config, None));
    };
    let config = match policy {
        // The TLS policy's versions and sessions apply to these hosts too (cached per policy).
        Some(p) => p.host_config(&host, default)?,
        None => host.server_config(default)?,
    };
    Some((config, host.client_auth.clone()))
}

/// Verifies what a finished handshake's client presented, when the handshake asked.
pub(crate) fn peer(auth: Arc<ClientAuth>, conn: &rustls::ServerConnection) -> Arc<PeerCert> {
    Arc::new(PeerCert::new(auth, conn.peer_certificates().unwrap_or(&[])))
}

/// What a request of a host with client certificates passes on to the upstream.
pub(crate) struct Checked {
    auth: Arc<ClientAuth>,
    peer: Option<Arc<PeerCert>>,
}

/// The per-request check (nginx `ngx_http_set_virtual_server`, `ngx_http_process_request`,
/// then the `server`-level `if ($ssl_client_s_dn !~ ...)` of ingress-nginx's template).
/// `tls`: the connection's TLS side, `None` on plain HTTP (no certificate: ingress-nginx
/// would serve it unverified; Portico treats it as a missing certificate). `host`: the
/// normalised request host. `Err` is the answer (boxed: it is rare).
pub(crate) fn check(
    auth: &Arc<ClientAuth>,
    tls: Option<&TlsInfo>,
    host: &str,
    version: Version,
) -> Result<Checked, Box<Response<ProxyBody>>> {
    let mut peer = None;
    if let Some(info) = tls {
        if auth.verify.asks() {
            if let Some(sni) = &info.sni {
                // nginx: "client attempted to request the server name different from the
                // one that was negotiated" (421), for servers that verify clients.
                if !sni.eq_ignore_ascii_case(host) {
                    return Err(Box::new(answer(
                        StatusCode::MISDIRECTED_REQUEST,
                        None,
                        version,
                    )));
                }
                match &info.client_cert {
                    Some(p) if Arc::ptr_eq(&p.auth, auth) || *p.auth == **auth => {
                        peer = Some(p.clone());
                    }
                    // The handshake verified against other settings, or did not ask (the
                    // host's settings changed since): a new connection will.
                    _ => {
                        return Err(Box::new(answer(
                            StatusCode::MISDIRECTED_REQUEST,
                            None,
                            version,
                        )))
                    }
                }
            }
        }
    }
    let verified = peer.as_ref().map_or(Verified::None, |p| p.verified);
    let passes = match auth.verify {
        VerifyClient::Off | VerifyClient::OptionalNoCa => true,
        VerifyClient::On => verified == Verified::Success,
        VerifyClient::Optional => !matches!(verified, Verified::Failed(_)),
    };
    if !passes {
        // nginx 495/496, answered as 400 unless `error_page 495 496 = URL` redirects.
        let location = auth
            .error_page
            .as_deref()
            .and_then(|url| HeaderValue::from_str(url).ok());
        let status = match location {
            Some(_) => StatusCode::FOUND,
            None => StatusCode::BAD_REQUEST,
        };
        return Err(Box::new(answer(status, location, version)));
    }
    if let Some(cn) = &auth.match_cn {
        let dn = peer.as_ref().map_or("", |p| p.subject_dn.as_str());
        if !cn.is_match(dn) {
            return Err(Box::new(answer(StatusCode::FORBIDDEN, None, version)));
        }
    }
    Ok(Checked {
        auth: auth.clone(),
        peer,
    })
}

/// ingress-nginx's `proxy_set_header ssl-client-*` of a host with client certificates.
/// What the client sent under these names is dropped first, `ssl-client-cert` included even
/// when the host does not pass the certificate (ingress-nginx would forward the client's).
pub(crate) fn add_headers(headers: &mut HeaderMap, checked: &Checked) {
    for name in [
        &SSL_CLIENT_CERT,
        &SSL_CLIENT_VERIFY,
        &SSL_CLIENT_SUBJECT_DN,
        &SSL_CLIENT_ISSUER_DN,
    ] {
        headers.remove(name);
    }
    let Some(peer) = &checked.peer else {
        headers.insert(SSL_CLIENT_VERIFY.clone(), HeaderValue::from_static("NONE"));
        return;
    };
    headers.insert(SSL_CLIENT_VERIFY.clone(), peer.verify_header.clone());
    // nginx sends no header for an empty value.
    for (name, dn) in [
        (&SSL_CLIENT_SUBJECT_DN, &peer.subject_dn),
        (&SSL_CLIENT_ISSUER_DN, &peer.issuer_dn),
    ] {
        if let Ok(value) = HeaderValue::from_str(dn) {
            if !dn.is_empty() {
                headers.insert(name.clone(), value);
            }
        }
    }
    if checked.auth.pass_certificate {
        if let Some(cert) = &peer.escaped_cert {
            headers.insert(SSL_CLIENT_CERT.clone(), cert.clone());
        }
    }
}

fn answer(
    status: StatusCode,
    location: Option<HeaderValue>,
    version: Version,
) -> Response<ProxyBody> {
    let text = match status {
        // nginx's texts for 495/496 and ingress-nginx's for the CN check.
        StatusCode::BAD_REQUEST => "400 Bad Request: client certificate missing or not verified\n",
        StatusCode::FORBIDDEN => "403 Forbidden: client certificate unauthorized\n",
        StatusCode::MISDIRECTED_REQUEST => "421 Misdirected Request\n",
        _ => "302 Found\n",
    };
    let mut response = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    *response.version_mut() = response_version(version);
    let headers = response.headers_mut();
    if let Some(location) = location {
        headers.insert(LOCATION, location);
    }
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    headers.insert(DATE, date_now());
    headers.insert(SERVER, HeaderValue::from_static(super::SERVER));
    response
}
