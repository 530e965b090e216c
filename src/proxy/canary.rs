//! Per request, for a route whose main backend has a canary attached (issue 14): the canary
//! backend or the main one, decided by `routing::canary` (ingress-nginx `balancer.lua`
//! `route_to_alternative_balancer`). Routes without a canary never get here.

use std::sync::Arc;

use http::HeaderMap;

use crate::routing::Backend;

/// The backend that serves: the canary's when its header, cookie or weight says so. The
/// canary backend carries the main route's policy, so every location setting stays the main
/// Ingress's, as in ingress-nginx (only the upstream changes).
pub(super) fn choose(main: Arc<Backend>, headers: &HeaderMap) -> Arc<Backend> {
    match &main.policy.canary {
        Some(canary) if canary.takes(headers) => canary.backend.clone(),
        _ => main,
    }
}
