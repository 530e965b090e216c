//! One-command quickstart: `cargo run --example quickstart`.
//!
//! Starts an echo backend at every endpoint address the EndpointSlices in
//! `examples/quickstart/` name (127.0.0.x loopback addresses), then runs Portico on that
//! directory with `--http-addr 127.0.0.1:8080 --https-addr 127.0.0.1:8443 --admin-addr
//! 127.0.0.1:10254`. Any further
//! arguments are passed to Portico and override those (`-- --http-addr 127.0.0.1:9080`).

#[path = "support/echo.rs"]
mod echo;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use portico::config::Args;
use portico::source::files;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let mut argv: Vec<String> = vec![
        "portico".into(),
        "--manifests".into(),
        dir.display().to_string(),
        "--http-addr".into(),
        "127.0.0.1:8080".into(),
        "--https-addr".into(),
        "127.0.0.1:8443".into(),
        "--admin-addr".into(),
        "127.0.0.1:10254".into(),
    ];
    argv.extend(std::env::args().skip(1));
    let config = Args::parse_from(argv).validate()?;
    let log_level = portico::app::init_tracing(config.log_format, &config.log_level);

    for (name, addr) in backends(&dir) {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            format!("cannot start backend {name} on {addr}: {e} (the quickstart needs the whole 127.0.0.0/8 loopback range, as Linux has)")
        })?;
        tokio::spawn(echo::serve(listener, name));
    }

    let http = config.http_addr;
    let https_port = config.https_addr.port();
    println!(
        "\nPortico quickstart: try these in another terminal\n\
         \x20 curl -H 'Host: shop.example' http://{http}/cart          # cart\n\
         \x20 curl -H 'Host: shop.example' http://{http}/              # storefront (two endpoints, alternating)\n\
         \x20 curl -H 'Host: shop.example' http://{http}/api/v1/items  # api\n\
         \x20 curl -H 'Host: shop.example' http://{http}/gift-cards    # 503: its Service is missing\n\
         \x20 curl -H 'Host: en.docs.example' http://{http}/           # docs (wildcard host)\n\
         \x20 curl -H 'Host: unknown.example' http://{http}/           # fallback (the default backend)\n\
         \x20 curl --resolve secure.shop.example:{https_port}:127.0.0.1 --cacert {dir}/secure-shop-example.crt https://secure.shop.example:{https_port}/\n\
         \x20 curl -i -H 'Host: secure.shop.example' http://{http}/     # 308 to https://secure.shop.example/\n\
         \x20 curl http://{}/readyz\n\
         Edit a file in {} and the routing changes within a second. Ctrl-C stops.\n",
        config.admin_addr,
        dir.display(),
        dir = dir.display(),
    );
    portico::app::run(config, log_level, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

/// `(name, address)` of every endpoint in the directory's EndpointSlices, named after the
/// Service and the address.
fn backends(dir: &std::path::Path) -> Vec<(String, SocketAddr)> {
    let loaded = files::load(dir, &files::Limits::default());
    let mut out = Vec::new();
    for slice in &loaded.snapshot.endpoint_slices {
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .cloned()
            .unwrap_or_else(|| "backend".to_string());
        let Some(port) = slice
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .and_then(|p| p.port)
        else {
            continue;
        };
        for endpoint in slice.endpoints.iter().flatten() {
            let Some(ip) = endpoint.addresses.first().and_then(|a| a.parse().ok()) else {
                continue;
            };
            let addr = SocketAddr::new(ip, port as u16);
            out.push((format!("{service} at {addr}"), addr));
        }
    }
    out
}
