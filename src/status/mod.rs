//! Status and Events (spec §7, §9): after a configuration is published, the elected leader
//! writes the balancer's addresses to every owned Ingress whose routes that configuration holds,
//! removes them from Ingresses we stopped owning, and records Events for conditions.
//!
//! Sits after `publish` in the flow and is pushed, never polls: it wakes on the publisher's
//! `watch` channel of `Arc<Published>` (what is live, hence what may get status), on the
//! publish Service's addresses, on the leadership and on its own timers. The observed status it
//! compares with is read, never awaited, from the source's latest snapshot: the kube source
//! refreshes that in place without waking anyone for changes translate cannot see (our own
//! status writes coming back), and a new leader must not rewrite what the old one wrote.
//! Writes only through the API, at most [`MAX_IN_FLIGHT`] at once.

pub mod events;
pub mod leader;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{Addresses, StatusConfig};
use crate::publish::Published;
use crate::routing::{RouteTable, Target, Unavailable};
use crate::source::Snapshot;
use crate::translate::ObjectRef;

/// Every request Portico makes to the API server, as (API group, resource, verb). The RBAC in
/// `deploy/` must allow each (tests/deploy.rs), and the fake API server tests check that Portico
/// makes no other (tests/kube.rs). Leases are namespaced (a Role); the rest cluster-wide.
pub const API_CALLS: &[(&str, &str, &str)] = &[
    ("networking.k8s.io", "ingresses", "list"),
    ("networking.k8s.io", "ingresses", "watch"),
    ("networking.k8s.io", "ingressclasses", "list"),
    ("networking.k8s.io", "ingressclasses", "watch"),
    ("", "services", "list"),
    ("", "services", "watch"),
    ("discovery.k8s.io", "endpointslices", "list"),
    ("discovery.k8s.io", "endpointslices", "watch"),
    ("", "secrets", "list"),
    ("", "secrets", "watch"),
    ("", "configmaps", "list"),
    ("", "configmaps", "watch"),
    ("networking.k8s.io", "ingresses/status", "patch"),
    ("events.k8s.io", "events", "create"),
    ("events.k8s.io", "events", "patch"),
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "update"),
];

/// Status patches in flight at once. A start with 20,000 Ingresses to write takes seconds, not
/// the minutes one-at-a-time took, while staying well inside the API server's default
/// `--max-mutating-requests-inflight` (200) and its priority-and-fairness share for one
/// client. Not a flag: no user has needed to tune it.
pub const MAX_IN_FLIGHT: usize = 32;
/// Wait before retrying after a failed write.
const RETRY: Duration = Duration::from_secs(1);
/// How long status waits for an owned Ingress whose routes still have no endpoints or no
/// Service. Services, EndpointSlices and Ingresses arrive on separate watches, so an Ingress
/// can be published a moment before the slices it needs; its status then waits for them
/// (spec §7: status only once the data plane has the routes *and their currently known
/// endpoints*), but not for ever: a Service that really is missing gets status after this.
const SETTLE_GRACE: Duration = Duration::from_secs(5);

/// One entry of `status.loadBalancer.ingress`. Ordered so the written list is sorted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    pub ip: Option<String>,
    pub hostname: Option<String>,
}

impl Address {
    /// spec §7: a value that parses as an IP goes to `ip`, anything else to `hostname`.
    pub fn parse(value: &str) -> Self {
        if value.parse::<IpAddr>().is_ok() {
            Address {
                ip: Some(value.to_string()),
                hostname: None,
            }
        } else {
            Address {
                ip: None,
                hostname: Some(value.to_string()),
            }
        }
    }
}

/// Sorted, de-duplicated; `None` when there is nothing to publish.
fn normalise(mut addresses: Vec<Address>) -> Option<Vec<Address>> {
    addresses.sort();
    addresses.dedup();
    (!addresses.is_empty()).then_some(addresses)
}

/// The addresses the publish Service advertises: `status.loadBalancer.ingress`, else
/// `spec.externalIPs` (spec §7 item 2). `None` while it has neither.
pub fn service_addresses(service: &Service) -> Option<Vec<Address>> {
    let balancer = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|list| {
            list.iter()
                .filter(|i| i.ip.is_some() || i.hostname.is_some())
                .map(|i| Address {
                    ip: i.ip.clone(),
                    hostname: i.hostname.clone(),
                })
                .collect::<Vec<_>>()
        })
        .and_then(normalise);
    balancer.or_else(|| {
        let external = service.spec.as_ref()?.external_ips.as_ref()?;
        normalise(external.iter().map(|ip| Address::parse(ip)).collect())
    })
}

/// What an Ingress's status currently says.
pub fn current_addresses(ingress: &Ingress) -> Vec<Address> {
    ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|list| {
            list.iter()
                .map(|i| Address {
                    ip: i.ip.clone(),
                    hostname: i.hostname.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn ingress_ref(ingress: &Ingress) -> ObjectRef {
    ObjectRef {
        kind: "Ingress".to_string(),
        namespace: ingress.metadata.namespace.clone().unwrap_or_default(),
        name: ingress.metadata.name.clone().unwrap_or_default(),
    }
}

/// The status writes one pass needs. Pure: what to write given what is published and seen.
///
/// * `live`: owned Ingresses in the published configuration (their routes are being served).
/// * `ever_owned`: Ingresses this process has seen owned; only those may have addresses removed.
/// * `ours`: every address list this process has published, to recognise what to remove.
/// * `pending`: for each of our own writes, the resourceVersion observed before it and what
///   it wrote. While the snapshot still shows that resourceVersion, its status is older than
///   our write (the write is on its way back through the watch, or the source ignores
///   status-only changes), so what we wrote is taken as the current status.
pub fn plan(
    ingresses: &[Arc<Ingress>],
    live: &HashSet<&ObjectRef>,
    ever_owned: &HashSet<ObjectRef>,
    desired: &[Address],
    ours: &HashSet<Address>,
    pending: &HashMap<ObjectRef, (String, Vec<Address>)>,
) -> Vec<(ObjectRef, String, Vec<Address>)> {
    let mut writes = Vec::new();
    for ingress in ingresses {
        if ingress.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let object = ingress_ref(ingress);
        let rv = ingress
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let current = match pending.get(&object) {
            Some((written_at, written)) if *written_at == rv => written.clone(),
            _ => current_addresses(ingress),
        };
        if live.contains(&object) {
            if current != desired {
                writes.push((object, rv, desired.to_vec()));
            }
        } else if ever_owned.contains(&object) {
            // spec §2 effects / §7: ownership lost → remove what we wrote, keep anything else.
            let kept: Vec<Address> = current
                .iter()
                .filter(|a| !ours.contains(a))
                .cloned()
                .collect();
            if kept.len() != current.len() {
                writes.push((object, rv, kept));
            }
        }
        // Never owned: never touched (spec §2, §7).
    }
    writes
}

/// Patches `status.loadBalancer.ingress` through the status subresource.
async fn write(
    client: &Client,
    object: &ObjectRef,
    addresses: &[Address],
) -> Result<(), kube::Error> {
    let api: Api<Ingress> = Api::namespaced(client.clone(), &object.namespace);
    let list: Vec<_> = addresses
        .iter()
        .map(|a| {
            let mut entry = serde_json::Map::new();
            if let Some(ip) = &a.ip {
                entry.insert("ip".into(), json!(ip));
            }
            if let Some(hostname) = &a.hostname {
                entry.insert("hostname".into(), json!(hostname));
            }
            serde_json::Value::Object(entry)
        })
        .collect();
    let value = if list.is_empty() {
        json!(null)
    } else {
        json!(list)
    };
    let patch = json!({"status": {"loadBalancer": {"ingress": value}}});
    api.patch_status(&object.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// Follows the configured address source into `tx`.
async fn follow_addresses(
    client: Client,
    addresses: Addresses,
    tx: watch::Sender<Option<Vec<Address>>>,
) {
    match addresses {
        Addresses::None => {}
        Addresses::Static(list) => {
            let _ = tx.send(normalise(list.iter().map(|a| Address::parse(a)).collect()));
        }
        Addresses::Service(namespace, name) => {
            let api: Api<Service> = Api::namespaced(client, &namespace);
            let mut stream = watcher::watch_object(api, &name).default_backoff().boxed();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(service) => {
                        let addresses = service.as_ref().and_then(service_addresses);
                        if addresses.is_none() {
                            tracing::info!(service = %format!("{namespace}/{name}"), "publish Service has no address yet; writing no status");
                        }
                        tx.send_if_modified(|old| {
                            let changed = *old != addresses;
                            *old = addresses;
                            changed
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watching the publish Service failed; retrying")
                    }
                }
            }
        }
    }
}

/// This replica's name in the Lease and on Events: the pod name plus a random suffix, so two
/// processes never share one.
fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "portico".to_string());
    format!("{host}_{:08x}", fastrand::u32(..))
}

/// Runs election, status writing and Events until `stop` resolves. `published` is the
/// publisher's channel: every version, pushed. `observed` is the source's snapshot channel,
/// only read (`borrow`) for the objects' current status and resourceVersions.
pub async fn run(
    client: Client,
    config: StatusConfig,
    published: watch::Receiver<Arc<Published>>,
    observed: watch::Receiver<Arc<Snapshot>>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let namespace = config
        .election_namespace
        .clone()
        .or_else(|| {
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|ns| !ns.is_empty())
        })
        .unwrap_or_else(|| client.default_namespace().to_string());
    let identity = identity();
    tracing::info!(lease = %format!("{namespace}/{}", config.election_id), identity = %identity, "joining leader election");
    let elector = leader::Elector::new(
        Api::namespaced(client.clone(), &namespace),
        config.election_id.clone(),
        identity.clone(),
        config.lease_duration,
    );
    let (leader_tx, leader_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let election = tokio::spawn(leader::run(elector, leader_tx, stopped()));
    let (addresses_tx, addresses_rx) = watch::channel(None);
    let follow = tokio::spawn(follow_addresses(
        client.clone(),
        config.addresses.clone(),
        addresses_tx,
    ));
    let events = tokio::spawn(events::run(
        client.clone(),
        identity,
        published.clone(),
        addresses_rx.clone(),
        leader_rx.clone(),
        stopped(),
    ));
    let writer = tokio::spawn(write_loop(
        client,
        published,
        observed,
        addresses_rx,
        leader_rx,
        stopped(),
    ));
    stop.await;
    let _ = stop_tx.send(true);
    follow.abort();
    let _ = tokio::join!(election, events, writer);
}

/// Owned Ingresses with a route whose backend has no endpoints or no Service yet: the objects
/// that would make it serve may still be on their way (see [`SETTLE_GRACE`]).
fn unsettled(table: &RouteTable) -> HashSet<(&str, &str)> {
    table
        .vhosts()
        .iter()
        .flat_map(|v| v.routes.iter())
        .filter(|r| {
            matches!(
                r.backend.target,
                Target::Unavailable(Unavailable::NoEndpoints | Unavailable::ServiceNotFound)
            )
        })
        .map(|r| (r.origin.namespace.as_str(), r.origin.name.as_str()))
        .collect()
}

/// The owned Ingresses that may get status now: those whose backends all resolved, and those
/// first published at least `grace` ago. Also returns when the next held one is due.
fn ready_for_status<'a>(
    owned: &'a [ObjectRef],
    unsettled: &HashSet<(&str, &str)>,
    first_live: &HashMap<ObjectRef, Instant>,
    now: Instant,
    grace: Duration,
) -> (HashSet<&'a ObjectRef>, Option<Instant>) {
    let mut next: Option<Instant> = None;
    let ready = owned
        .iter()
        .filter(|o| {
            if !unsettled.contains(&(o.namespace.as_str(), o.name.as_str())) {
                return true;
            }
            let due = first_live.get(*o).map_or(now, |t| *t + grace);
            if due <= now {
                return true;
            }
            next = Some(next.map_or(due, |n| n.min(due)));
            false
        })
        .collect();
    (ready, next)
}

/// Waits for `rx` to change; pends for ever once its sender is gone (so a `select!` over
/// several channels does not spin on a closed one).
async fn changed<T>(rx: &mut watch::Receiver<T>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Writes status whenever the published version, the addresses or the leadership change, and
/// when a held Ingress's grace ends or a failed write is due again. Woken only by those: no
/// polling, so an idle controller uses no CPU.
async fn write_loop(
    client: Client,
    mut published_rx: watch::Receiver<Arc<Published>>,
    observed: watch::Receiver<Arc<Snapshot>>,
    mut addresses: watch::Receiver<Option<Vec<Address>>>,
    mut leader: watch::Receiver<bool>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut ever_owned: HashSet<ObjectRef> = HashSet::new();
    let mut ours: HashSet<Address> = HashSet::new();
    let mut pending: HashMap<ObjectRef, (String, Vec<Address>)> = HashMap::new();
    let mut seen_owned: Option<Arc<[ObjectRef]>> = None;
    let mut wake_at: Option<Instant> = None;
    // When each owned Ingress was first seen in a published configuration.
    let mut first_live: HashMap<ObjectRef, Instant> = HashMap::new();
    loop {
        let published = published_rx.borrow_and_update().clone();
        let desired = addresses.borrow_and_update().clone();
        let is_leader = *leader.borrow_and_update();
        // Every replica tracks ownership, so a new leader knows what the old one wrote.
        // The same `owned` list (translate shares it while no name comes or goes) changes
        // neither set: skip the pass over every Ingress.
        let same_owned = seen_owned
            .as_ref()
            .is_some_and(|o| Arc::ptr_eq(o, &published.translation.owned));
        if !same_owned {
            seen_owned = Some(published.translation.owned.clone());
            ever_owned.extend(published.translation.owned.iter().cloned());
            let now = Instant::now();
            let owned: HashSet<&ObjectRef> = published.translation.owned.iter().collect();
            first_live.retain(|o, _| owned.contains(o));
            for o in owned {
                first_live.entry(o.clone()).or_insert(now);
            }
        }
        // Every wake is a reason to look: a new version or newer observed objects, new
        // addresses, leadership, a held Ingress's grace or a retry coming due. A pass with
        // nothing to write costs one comparison per Ingress and no request.
        if is_leader && published.is_ready() {
            wake_at = None;
            if let Some(desired) = desired {
                ours.extend(desired.iter().cloned());
                let (live, held_until) = ready_for_status(
                    &published.translation.owned,
                    &unsettled(&published.translation.table),
                    &first_live,
                    Instant::now(),
                    SETTLE_GRACE,
                );
                if let Some(t) = held_until {
                    wake_at = Some(wake_at.map_or(t, |r| r.min(t)));
                }
                // The published version's snapshot came from this channel, so its current
                // value is as new or newer.
                let snapshot = observed.borrow().clone();
                // Forget writes the watch has since delivered (or that were overtaken).
                let versions: HashMap<ObjectRef, Option<&String>> = snapshot
                    .ingresses
                    .iter()
                    .map(|i| (ingress_ref(i), i.metadata.resource_version.as_ref()))
                    .collect();
                pending.retain(|object, (rv, _)| versions.get(object) == Some(&Some(&*rv)));
                let writes = plan(
                    &snapshot.ingresses,
                    &live,
                    &ever_owned,
                    &desired,
                    &ours,
                    &pending,
                );
                let batch = write_all(&client, writes);
                let results = tokio::select! {
                    results = batch => results,
                    _ = &mut stop => return,
                };
                let mut failed = false;
                for (object, rv, written, result) in results {
                    match result {
                        Ok(()) => {
                            pending.insert(object, (rv, written));
                        }
                        Err(kube::Error::Api(s)) if s.code == 404 => {}
                        Err(e) => {
                            tracing::warn!(ingress.namespace = %object.namespace, ingress.name = %object.name, error = %e, "cannot write Ingress status; will retry");
                            failed = true;
                        }
                    }
                }
                if failed {
                    let t = Instant::now() + RETRY;
                    wake_at = Some(wake_at.map_or(t, |r| r.min(t)));
                }
            }
        }
        let sleep = async {
            match wake_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = changed(&mut published_rx) => {}
            _ = changed(&mut addresses) => {}
            _ = changed(&mut leader) => {}
            _ = &mut stop => return,
        }
    }
}

/// Patches every planned Ingress, [`MAX_IN_FLIGHT`] at a time. Returns each write's outcome.
async fn write_all(
    client: &Client,
    writes: Vec<(ObjectRef, String, Vec<Address>)>,
) -> Vec<(ObjectRef, String, Vec<Address>, Result<(), kube::Error>)> {
    if writes.is_empty() {
        return Vec::new();
    }
    let total = writes.len();
    let results: Vec<_> = futures_util::stream::iter(writes)
        .map(|(object, rv, addresses)| async move {
            let result = write(client, &object, &addresses).await;
            if result.is_ok() {
                tracing::debug!(ingress.namespace = %object.namespace, ingress.name = %object.name, addresses = addresses.len(), "wrote Ingress status");
            }
            (object, rv, addresses, result)
        })
        .buffer_unordered(MAX_IN_FLIGHT)
        .collect()
        .await;
    let written = results.iter().filter(|r| r.3.is_ok()).count();
    tracing::info!(written, of = total, "wrote Ingress status");
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress(name: &str, rv: &str, addresses: &[&str]) -> Arc<Ingress> {
        let list: Vec<_> = addresses.iter().map(|a| json!({"ip": a})).collect();
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "n", "resourceVersion": rv},
            "status": {"loadBalancer": {"ingress": list}}
        }))
        .unwrap()
    }

    fn object(name: &str) -> ObjectRef {
        ObjectRef {
            kind: "Ingress".into(),
            namespace: "n".into(),
            name: name.into(),
        }
    }

    #[test]
    fn addresses_split_into_ip_and_hostname() {
        assert_eq!(Address::parse("10.0.0.1").ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(Address::parse("::1").ip.as_deref(), Some("::1"));
        assert_eq!(
            Address::parse("lb.example.com").hostname.as_deref(),
            Some("lb.example.com")
        );
    }

    #[test]
    fn the_publish_service_balancer_wins_over_external_ips() {
        let service: Service = serde_json::from_value(json!({
            "spec": {"externalIPs": ["192.0.2.9"]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.2"}, {"hostname": "a.example"}, {"ip": "192.0.2.2"}]}}
        }))
        .unwrap();
        let addresses = service_addresses(&service).unwrap();
        assert_eq!(addresses.len(), 2, "de-duplicated: {addresses:?}");
        let fallback: Service =
            serde_json::from_value(json!({"spec": {"externalIPs": ["192.0.2.9"]}})).unwrap();
        assert_eq!(
            service_addresses(&fallback).unwrap(),
            vec![Address::parse("192.0.2.9")]
        );
        assert_eq!(service_addresses(&Service::default()), None);
    }

    #[test]
    fn status_waits_for_endpoints_up_to_the_grace() {
        let owned = vec![object("ready"), object("waiting"), object("late")];
        let unsettled: HashSet<(&str, &str)> = [("n", "waiting"), ("n", "late")].into();
        let now = Instant::now();
        let first_live: HashMap<ObjectRef, Instant> = [
            (object("ready"), now),
            (object("waiting"), now - Duration::from_secs(1)),
            (object("late"), now - Duration::from_secs(6)),
        ]
        .into();
        let (ready, next) =
            ready_for_status(&owned, &unsettled, &first_live, now, Duration::from_secs(5));
        let mut names: Vec<&str> = ready.iter().map(|o| o.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["late", "ready"]);
        assert_eq!(next, Some(now + Duration::from_secs(4)));
    }

    #[test]
    fn only_live_ingresses_get_status_and_only_ever_owned_lose_it() {
        let desired = vec![Address::parse("192.0.2.1")];
        let ours: HashSet<_> = desired.iter().cloned().collect();
        let ingresses = vec![
            ingress("live", "1", &[]),
            ingress("done", "1", &["192.0.2.1"]),
            ingress("lost", "1", &["192.0.2.1", "198.51.100.7"]),
            ingress("foreign", "1", &["192.0.2.1"]),
            ingress("not-yet", "1", &[]),
        ];
        let (live_ref, done_ref) = (object("live"), object("done"));
        let live: HashSet<&ObjectRef> = [&live_ref, &done_ref].into_iter().collect();
        let ever: HashSet<ObjectRef> = [object("live"), object("done"), object("lost")].into();
        let writes = plan(&ingresses, &live, &ever, &desired, &ours, &HashMap::new());
        let names: Vec<_> = writes
            .iter()
            .map(|(o, _, a)| (o.name.as_str(), a.len()))
            .collect();
        assert_eq!(names, vec![("live", 1), ("lost", 1)]);
        // A write on its way back through the watch is not repeated...
        let pending = [(object("live"), ("1".to_string(), desired.clone()))].into();
        let writes = plan(&ingresses, &live, &ever, &desired, &ours, &pending);
        assert_eq!(writes.len(), 1);
        // ...but new addresses are written even before it has come back.
        let other = vec![Address::parse("192.0.2.2")];
        let ours: HashSet<_> = desired.iter().chain(&other).cloned().collect();
        let writes = plan(&ingresses, &live, &ever, &other, &ours, &pending);
        let names: Vec<_> = writes.iter().map(|(o, _, _)| o.name.as_str()).collect();
        assert_eq!(names, vec!["live", "done", "lost"]);
    }
}
