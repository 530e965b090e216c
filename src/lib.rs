//! Portico: a Kubernetes Ingress controller.
//!
//! Data flows one way: a source (`source`) collects objects into a `Snapshot`, the pure
//! `translate` step turns it into a `Published` routing table and certificate store, `publish`
//! swaps it into one `ArcSwap`, the `proxy` reads it per request and the `tls` resolver per
//! handshake. See `../shared/style.md`.
// `deny`, not `forbid`: one measured exception, `proxy::h1client::parsed_value` (an upstream
// response's header values taken as httparse delimited them, docs/performance.md).
#![deny(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod app;
pub mod check;
pub mod config;
pub mod explain;
pub mod metrics;
pub mod migrate;
pub mod proxy;
pub mod publish;
pub mod routing;
pub mod sharded;
pub mod source;
pub mod status;
pub mod tls;
pub mod translate;
