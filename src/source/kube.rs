//! Kubernetes source: one kube-runtime watcher + reflector per kind, trimmed, coalesced into the
//! same `Snapshot` the manifests source produces. Nothing is sent before every kind has finished
//! its initial list (style: publish nothing partial).
//!
//! Each watch event is classified before the reflector stores it: only a change translate can
//! see (spec, labels, annotations, data, endpoints; not `resourceVersion`, managedFields or
//! status) sends a snapshot receivers are woken for. Anything else (Portico's own status writes
//! coming back, relists that find nothing new) only refreshes the snapshot in place, without
//! waking anyone, so `status/` sees current resourceVersions and the old objects are freed
//! (issue 11 item 6: quiet at rest).

use std::collections::HashSet;
use std::fmt::Debug;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{future, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{ApiResource, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{watch, Notify};

use crate::metrics::Metrics;
use crate::source::{Snapshot, Trim};

/// The `source` label of this source's metrics.
pub const SOURCE: &str = "kube";

use super::LAST_APPLIED;

/// TLS Secrets are watched (spec §5.1), and `Opaque` ones in a second watch: basic
/// authentication's `auth-secret` (issue 15); see docs/decisions.md for their memory.
pub const SECRET_FIELD_SELECTOR: &str = "type=kubernetes.io/tls";
pub const OPAQUE_SECRET_FIELD_SELECTOR: &str = "type=Opaque";

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("no Kubernetes configuration (no --manifests, no kubeconfig, not in a cluster): {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// A client from `--kubeconfig`, else `Config::infer` (KUBECONFIG, ~/.kube/config, in-cluster).
/// Does not contact the API server: an unreachable server is retried by the watchers.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, KubeError> {
    let config = match kubeconfig {
        Some(path) => {
            let error = |source| KubeError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let kc = Kubeconfig::read_from(path).map_err(error)?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(error)?
        }
        None => kube::Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
}

/// Drops what translate never reads, before it is stored: managedFields and the last-applied
/// annotation are often most of an object's bytes.
pub fn trim(object: &mut DynamicObject) {
    object.metadata.managed_fields = None;
    if let Some(annotations) = object.metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// One kind's reflector store and the task that keeps it current (stopped on drop).
struct Kind<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    task: tokio::task::JoinHandle<()>,
    /// The store changed since the snapshot last collected it.
    dirty: Arc<AtomicBool>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Drop for Kind<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the watcher + reflector for `K`. Objects that do not deserialise as `K` are skipped
/// (and dropped from the store if an earlier version was good), logged once per version.
///
/// Watch errors count in `portico_source_watch_errors_total{source="kube",kind=K}` and are
/// remembered in `health`.
fn watch_kind<K>(
    client: Client,
    namespace: Option<&str>,
    config: watcher::Config,
    wake: Wake,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Kind<K>
where
    K: Resource<DynamicType = ()>
        + Trim
        + Clone
        + Default
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client, ns, &resource),
        None => Api::all_with(client, &resource),
    };
    let (store, writer) = reflector::store::<K>();
    let mut logged: HashSet<String> = HashSet::new();
    let kind = K::kind(&()).to_string();
    let dirty = Arc::new(AtomicBool::new(false));
    // The verdict on the event in flight: set before the reflector stores it (while the store
    // still holds the previous version), acted on after (so a woken reader sees the change).
    let matters = Arc::new(AtomicBool::new(false));
    let (previous, verdict) = (store.clone(), matters.clone());
    let mut relist = Relist::default();
    let marked = dirty.clone();
    let stream = watcher(api, config)
        .default_backoff()
        .filter_map(move |event| {
            let event = event.map(|e| convert::<K>(e, &mut logged));
            future::ready(event.transpose())
        })
        .map(move |event| {
            if let Ok(event) = &event {
                verdict.store(relist.matters(&previous, event), Ordering::SeqCst);
            }
            event
        })
        .reflect(writer)
        .for_each(move |event| {
            match event {
                Ok(_) => {
                    marked.store(true, Ordering::SeqCst);
                    if matters.swap(false, Ordering::SeqCst) {
                        wake.changed.notify_one();
                    } else {
                        wake.touched.notify_one();
                    }
                }
                // The watcher backs off and resumes by itself; the store keeps the last state.
                Err(e) => {
                    health.error();
                    metrics.watch_error(SOURCE, &kind);
                    tracing::warn!(kind = %kind, error = %e, "watch failed; retrying");
                }
            }
            future::ready(())
        });
    let task = tokio::spawn(stream);
    Kind { store, task, dirty }
}

/// Classifies watch events by whether translate could see them. A relist (`Init` ..
/// `InitDone`, after a watch expired or the connection dropped) matters only if it found an
/// object new or changed, or fewer objects than the store holds.
#[derive(Debug, Default)]
struct Relist {
    seen: usize,
    changed: bool,
}

impl Relist {
    fn matters<K>(&mut self, store: &Store<K>, event: &Event<K>) -> bool
    where
        K: Resource<DynamicType = ()> + Trim + Clone + 'static,
    {
        let differs = |object: &K| {
            store
                .get(&reflector::ObjectRef::from_obj(object))
                .is_none_or(|old| !old.same_for_translate(object))
        };
        match event {
            Event::Apply(object) => differs(object),
            Event::Delete(object) => store.get(&reflector::ObjectRef::from_obj(object)).is_some(),
            Event::Init => {
                *self = Relist::default();
                false
            }
            Event::InitApply(object) => {
                self.seen += 1;
                self.changed |= differs(object);
                false
            }
            // The store is swapped for the relisted objects after this event: every object
            // listed was already there unchanged, and as many as there were, so none went.
            Event::InitDone => {
                let matters = self.changed || self.seen != store.len();
                *self = Relist::default();
                matters
            }
        }
    }
}

/// How watchers wake the loop that builds snapshots.
#[derive(Clone, Default)]
struct Wake {
    /// A change translate can see: send a snapshot and wake its receivers.
    changed: Arc<Notify>,
    /// A change nobody translates (status, resourceVersion): refresh the snapshot quietly.
    touched: Arc<Notify>,
}

/// How long quiet refreshes wait to coalesce: our own status writes at start come back as one
/// event per Ingress, and each refresh copies every pointer of the snapshot.
const TOUCH_SETTLE: Duration = Duration::from_millis(100);

/// Trims and types one watch event. `None` skips it.
fn convert<K>(event: Event<DynamicObject>, logged: &mut HashSet<String>) -> Option<Event<K>>
where
    K: Resource<DynamicType = ()> + Trim + Default + DeserializeOwned,
{
    let mut typed = |mut object: DynamicObject| -> Result<K, K> {
        trim(&mut object);
        // The fields other than the metadata are typed straight from the decoded value, which
        // is moved, not copied (issue 11 item 4: this used to serialise the whole object back
        // into a second value first, a deep copy of each of the 60,000 objects listed at start
        // at 20,000 Ingresses); the metadata is moved in afterwards. `apiVersion` and `kind`
        // are the watched kind's (list items often carry none), so they are not checked again.
        let metadata = std::mem::take(&mut object.metadata);
        let mut data = std::mem::take(&mut object.data);
        if let serde_json::Value::Object(fields) = &mut data {
            fields.remove("apiVersion");
            fields.remove("kind");
            fields.remove("metadata");
        }
        match serde_json::from_value::<K>(data) {
            Ok(mut k) => {
                *k.meta_mut() = metadata;
                k.trim();
                Ok(k)
            }
            Err(e) => {
                let id = format!(
                    "{}/{}@{}",
                    metadata.namespace.as_deref().unwrap_or_default(),
                    metadata.name.as_deref().unwrap_or_default(),
                    metadata.resource_version.as_deref().unwrap_or_default()
                );
                if logged.insert(id.clone()) {
                    tracing::warn!(kind = %K::kind(&()), object = %id, error = %e, "skipping object that does not deserialise");
                }
                let mut bare = K::default();
                *bare.meta_mut() = metadata;
                Err(bare)
            }
        }
    };
    match event {
        Event::Init => Some(Event::Init),
        Event::InitDone => Some(Event::InitDone),
        Event::InitApply(o) => typed(o).ok().map(Event::InitApply),
        // A bad new version removes the old one: serve nothing rather than something stale.
        Event::Apply(o) => Some(match typed(o) {
            Ok(k) => Event::Apply(k),
            Err(bare) => Event::Delete(bare),
        }),
        Event::Delete(o) => Some(Event::Delete(typed(o).unwrap_or_else(|bare| bare))),
    }
}

/// When a watcher last failed. kube-runtime's default backoff retries a failing watch at
/// least every 30 s, and each failed retry is an error again, so a source with no error for
/// [`QUIET`] has every watcher connected and its stores current.
#[derive(Debug, Default)]
struct Health {
    last_error: Mutex<Option<Instant>>,
}

/// See [`Health`]: longer than the watcher's longest backoff (30 s).
const QUIET: Duration = Duration::from_secs(35);

/// How often a healthy source refreshes its sync time while nothing changes.
const SYNC_TICK: Duration = Duration::from_secs(5);

impl Health {
    fn error(&self) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    fn current(&self) -> bool {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none_or(|at| at.elapsed() >= QUIET)
    }
}

/// What every watcher shares.
struct Shared {
    wake: Wake,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

fn namespaced<K>(
    client: &Client,
    namespace: Option<&str>,
    config: watcher::Config,
    shared: &Shared,
) -> Kind<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Trim
        + Clone
        + Default
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    watch_kind(
        client.clone(),
        namespace,
        config,
        shared.wake.clone(),
        shared.metrics.clone(),
        shared.health.clone(),
    )
}

/// The store's own `Arc`s: a snapshot shares every object with the reflector. A kind that has
/// not changed since `previous` is copied from it (pointers only).
fn objects<K: Resource<DynamicType = ()> + Clone>(
    kind: &Kind<K>,
    previous: &[Arc<K>],
) -> Vec<Arc<K>> {
    if kind.dirty.swap(false, Ordering::SeqCst) {
        kind.store.state()
    } else {
        previous.to_vec()
    }
}

/// The TLS Secrets and the `Opaque` ones (two field-selected watches).
fn all_secrets(
    tls: &Kind<Secret>,
    opaque: &Kind<Secret>,
    previous: &[Arc<Secret>],
) -> Vec<Arc<Secret>> {
    let dirty =
        tls.dirty.swap(false, Ordering::SeqCst) | opaque.dirty.swap(false, Ordering::SeqCst);
    if !dirty {
        return previous.to_vec();
    }
    let mut all = tls.store.state();
    all.extend(opaque.store.state());
    all
}

/// The ConfigMaps of `kind` and, when it is watched apart, of `controller`.
fn config_maps(
    kind: &Kind<ConfigMap>,
    controller: Option<&Kind<ConfigMap>>,
    previous: &[Arc<ConfigMap>],
) -> Vec<Arc<ConfigMap>> {
    let dirty = kind.dirty.swap(false, Ordering::SeqCst)
        | controller.is_some_and(|c| c.dirty.swap(false, Ordering::SeqCst));
    if !dirty {
        return previous.to_vec();
    }
    let mut all = kind.store.state();
    if let Some(c) = controller {
        all.extend(c.store.state());
    }
    all
}

/// Watches every kind translate reads and sends a `Snapshot` after each change, the first only
/// once every kind has listed. Runs until `stop` resolves or `snapshots` has no receivers.
///
/// ConfigMaps are watched where Services are (the watched namespace, or all): annotations
/// (`custom-headers`) and the controller ConfigMap's keys (`add-headers`,
/// `proxy-set-headers`) name them as `namespace/name`, as ingress-nginx does, which watches
/// them the same way. When the controller ConfigMap (`configmap`, `--configmap`) lies outside
/// the watched namespace, the ConfigMaps of its namespace are watched too (docs/decisions.md).
///
/// After the initial list, the source counts as synced
/// (`portico_source_last_sync_age_seconds{source="kube"}`) whenever it sends a snapshot, and
/// every few seconds while nothing changes, as long as no watcher has failed within [`QUIET`].
pub async fn run(
    client: Client,
    watch_namespace: Option<String>,
    configmap: Option<(String, String)>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let wake = Wake::default();
    let shared = Shared {
        wake: wake.clone(),
        metrics: metrics.clone(),
        health: Arc::new(Health::default()),
    };
    let ns = watch_namespace.as_deref();
    let config = watcher::Config::default;
    let ingresses = namespaced::<Ingress>(&client, ns, config(), &shared);
    let classes = watch_kind::<IngressClass>(
        client.clone(),
        None,
        config(),
        wake.clone(),
        metrics.clone(),
        shared.health.clone(),
    );
    let services = namespaced::<Service>(&client, ns, config(), &shared);
    let slices = namespaced::<EndpointSlice>(&client, ns, config(), &shared);
    let secrets =
        namespaced::<Secret>(&client, ns, config().fields(SECRET_FIELD_SELECTOR), &shared);
    let opaque = namespaced::<Secret>(
        &client,
        ns,
        config().fields(OPAQUE_SECRET_FIELD_SELECTOR),
        &shared,
    );
    let maps = namespaced::<ConfigMap>(&client, ns, config(), &shared);
    // The controller's own namespace, when it is not the watched one: its ConfigMap and the
    // ones its keys usually name (`add-headers: ingress-nginx/custom-headers`) live there.
    let controller_map = match (ns, &configmap) {
        (Some(watched), Some((cns, _))) if watched != cns => Some(namespaced::<ConfigMap>(
            &client,
            Some(cns),
            config(),
            &shared,
        )),
        _ => None,
    };

    let ready = async {
        tokio::try_join!(
            ingresses.store.wait_until_ready(),
            classes.store.wait_until_ready(),
            services.store.wait_until_ready(),
            slices.store.wait_until_ready(),
            secrets.store.wait_until_ready(),
            opaque.store.wait_until_ready(),
            maps.store.wait_until_ready(),
            async {
                match &controller_map {
                    Some(c) => c.store.wait_until_ready().await,
                    None => Ok(()),
                }
            },
        )
    };
    tokio::select! {
        result = ready => {
            if result.is_err() {
                tracing::error!("a watcher stopped before its initial list");
                return;
            }
        }
        _ = snapshots.closed() => return,
        _ = &mut stop => return,
    }
    tracing::info!("every watcher finished its initial list");
    let mut tick = tokio::time::interval(SYNC_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    // The initial list woke the loop already; the first snapshot below covers it.
    for kind in [&wake.changed, &wake.touched] {
        let _ = futures_util::FutureExt::now_or_never(kind.notified());
    }
    let mut current = Arc::new(Snapshot::default());
    let mut notify = true;
    for dirty in [
        &ingresses.dirty,
        &classes.dirty,
        &services.dirty,
        &slices.dirty,
        &secrets.dirty,
        &opaque.dirty,
        &maps.dirty,
    ] {
        dirty.store(true, Ordering::SeqCst);
    }
    loop {
        // Every event since the last build is in the stores; one build covers the burst.
        let snapshot = Snapshot {
            ingresses: objects(&ingresses, &current.ingresses),
            ingress_classes: objects(&classes, &current.ingress_classes),
            services: objects(&services, &current.services),
            endpoint_slices: objects(&slices, &current.endpoint_slices),
            secrets: all_secrets(&secrets, &opaque, &current.secrets),
            config_maps: config_maps(&maps, controller_map.as_ref(), &current.config_maps),
        };
        current = Arc::new(snapshot);
        tracing::debug!(objects = current.len(), notify, "kube snapshot");
        if notify {
            if snapshots.send(current.clone()).is_err() {
                return;
            }
        } else {
            // Replaced without waking anyone: no rebuild for a change translate cannot see.
            let quiet = current.clone();
            snapshots.send_if_modified(move |value| {
                *value = quiet;
                false
            });
        }
        if shared.health.current() {
            metrics.source_synced(SOURCE);
        }
        notify = loop {
            tokio::select! {
                _ = wake.changed.notified() => break true,
                _ = wake.touched.notified() => {
                    // Wait for the burst to end, unless a change that matters comes first.
                    tokio::select! {
                        _ = wake.changed.notified() => break true,
                        _ = tokio::time::sleep(TOUCH_SETTLE) => break false,
                        _ = snapshots.closed() => return,
                        _ = &mut stop => return,
                    }
                }
                _ = tick.tick() => {
                    if shared.health.current() {
                        metrics.source_synced(SOURCE);
                    }
                }
                _ = snapshots.closed() => return,
                _ = &mut stop => return,
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_drops_managed_fields_and_last_applied() {
        let mut object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "a",
                "annotations": {LAST_APPLIED: "{}", "keep": "me"},
                "managedFields": [{"manager": "kubectl"}]
            },
            "spec": {}
        }))
        .unwrap();
        trim(&mut object);
        assert!(object.metadata.managed_fields.is_none());
        let annotations = object.metadata.annotations.unwrap();
        assert_eq!(annotations.len(), 1);
        assert_eq!(annotations["keep"], "me");
    }

    #[test]
    fn an_object_that_does_not_deserialise_is_skipped_or_removed() {
        let bad: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "a", "namespace": "n", "resourceVersion": "5"},
            "spec": {"rules": "not a list"}
        }))
        .unwrap();
        let mut logged = HashSet::new();
        assert!(convert::<Ingress>(Event::InitApply(bad.clone()), &mut logged).is_none());
        match convert::<Ingress>(Event::Apply(bad), &mut logged) {
            Some(Event::Delete(i)) => assert_eq!(i.metadata.name.as_deref(), Some("a")),
            other => panic!("expected a delete, got {other:?}"),
        }
        assert_eq!(logged.len(), 1, "logged once per version");
    }
}
