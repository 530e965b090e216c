//! Echo backend: `cargo run --example echo -- --name NAME --listen 127.0.0.1:PORT`.
//!
//! Answers every request with JSON describing what it received; see `support/echo.rs`.

#[path = "support/echo.rs"]
mod echo;

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Name reported in every response.
    #[arg(long, default_value = "echo")]
    name: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("echo {} listening on {}", args.name, listener.local_addr()?);
    echo::serve(listener, args.name).await;
    Ok(())
}
