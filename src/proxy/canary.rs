//! Per request, for a route whose main backend has a canary attached (issue 14): the canary
//! backend or the main one, decided by `routing::canary` (ingress-nginx `balancer.lua`
//! `route_to_alternative_balancer`). Routes without a canary never get here.

use std::sync::Arc;

use http::HeaderMap;

use crate::routing::Backend;

/// The backend that serves: the canary's when its header, cookie or weight says so. The
/// canary backend carries the main route's policy, so every location setting stays the main
/// Ingress's, as in ingress-nginx (only the upstream changes).
///
/// Cookie affinity comes first (`balancer.lua` `route_to_alternative_balancer`): a request
/// whose affinity cookie names the main backend stays there, one whose cookie names the canary
/// (`affinity-canary-behavior: sticky`, translate gave the canary its own backend key) goes to
/// it; only a request with neither is shaped by header, cookie and weight.
pub(super) fn choose(main: Arc<Backend>, headers: &HeaderMap) -> Arc<Backend> {
    let Some(canary) = &main.policy.canary else {
        return main;
    };
    let pinned = |backend: &Backend| {
        backend
            .policy
            .traffic
            .as_deref()
            .is_some_and(|t| super::affinity::affinitized(t, headers))
    };
    if pinned(&main) {
        return main;
    }
    if pinned(&canary.backend) || canary.takes(headers) {
        return canary.backend.clone();
    }
    main
}
