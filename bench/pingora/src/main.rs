//! A minimal Pingora reverse proxy: the fourth peer in `bench/run`, beside nginx and HAProxy.
//!
//! It does what the nginx and HAProxy configurations in `bench/run` do and no more: every request
//! goes to the one bench upstream over a kept-alive HTTP/1.1 connection (Pingora's pool, 128 idle
//! connections like nginx's `keepalive 128`). `Host` passes through as the client sent it (the
//! upstream ignores it, as with HAProxy); `X-Forwarded-For` is set to the client's address, as an
//! ingress controller does.
//!
//! Usage (what `bench/run` does):
//!
//! ```text
//! BENCH_HTTP=127.0.0.1:18081 BENCH_UPSTREAM=127.0.0.1:18080 \
//!   [BENCH_HTTPS=127.0.0.1:18443 BENCH_CERT=tls.crt BENCH_KEY=tls.key] \
//!   pingora-bench -c pingora.yaml
//! ```
//!
//! `pingora.yaml` is Pingora's own server configuration (`threads`, `pid_file`, ...), written by
//! `bench/run` like nginx.conf and haproxy.cfg.

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::*;

struct Bench {
    /// Built once: the address is parsed here, not per request.
    upstream: HttpPeer,
}

#[async_trait]
impl ProxyHttp for Bench {
    type CTX = ();
    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.upstream.clone()))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        if let Some(addr) = session.client_addr().and_then(|a| a.as_inet()) {
            upstream_request.insert_header("X-Forwarded-For", addr.ip().to_string())?;
        }
        Ok(())
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn main() {
    let upstream =
        env("BENCH_UPSTREAM").expect("BENCH_UPSTREAM (host:port of the upstream) is required");
    let http = env("BENCH_HTTP").expect("BENCH_HTTP (listen address) is required");

    let mut server = Server::new(Some(Opt::parse_args())).expect("Pingora server configuration");
    server.bootstrap();

    let mut proxy = http_proxy_service(
        &server.configuration,
        Bench {
            upstream: HttpPeer::new(upstream.as_str(), false, String::new()),
        },
    );
    proxy.add_tcp(&http);
    if let (Some(https), Some(cert), Some(key)) =
        (env("BENCH_HTTPS"), env("BENCH_CERT"), env("BENCH_KEY"))
    {
        // ALPN h2 and http/1.1, like the others' TLS listeners (nginx `http2`, HAProxy `alpn`).
        let mut tls = TlsSettings::intermediate(&cert, &key).expect("TLS settings");
        tls.enable_h2();
        proxy.add_tls_with_settings(&https, None, tls);
    }
    server.add_service(proxy);
    server.run_forever();
}
