//! Publish: the one owner of control-plane state. Sits between the sources and everything
//! that reads a configuration: a [`Publisher`] translates each new snapshot, swaps the result
//! into the one `ArcSwap` that the proxy and the TLS resolver read, and pushes it to its
//! subscribers (status, Events) through a `watch` channel, and to the metrics gauges.
//! Bursts coalesce; nothing is swapped or pushed when nothing changed.
//!
//! It owns the version counter, the translate [`Cache`] (parsed certificates) and the channel,
//! so there is no process-wide state elsewhere and nobody polls.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::source::Snapshot;
use crate::translate::{translate, Cache, Options, Translation};

/// One published configuration. Version 0 is the empty table served before the first publish.
#[derive(Debug)]
pub struct Published {
    pub version: u64,
    /// Behind an `Arc` so a value that only refreshes `snapshot` shares it (see below).
    pub translation: Arc<Translation>,
    /// The latest snapshot the source sent, as it saw the objects: status and Events read the
    /// observed status, resourceVersions and uids here, so they need no second channel to
    /// re-join. Shared with the source (an `Arc`), not a copy. In the value sent on the watch
    /// channel it is always the newest (a snapshot that translates to the same configuration
    /// is pushed with the same version and translation, without a swap); in the `ArcSwap` it
    /// may be older, and nothing that routes requests reads it.
    pub snapshot: Arc<Snapshot>,
}

impl Published {
    fn empty() -> Self {
        Published {
            version: 0,
            translation: Arc::default(),
            snapshot: Arc::default(),
        }
    }

    /// Whether a real configuration has been published (spec: publish nothing partial).
    pub fn is_ready(&self) -> bool {
        self.version > 0
    }
}

/// The shared, hot-swapped configuration.
pub type Shared = Arc<ArcSwap<Published>>;

/// A fresh handle holding the empty version 0. A [`Publisher`] makes its own; tests that build
/// tables by hand store into one of these directly.
pub fn shared() -> Shared {
    Arc::new(ArcSwap::from_pointee(Published::empty()))
}

/// The TLS resolver reads the certificate store of the published value through this, so
/// `tls` need not know `publish` (no import cycle; spec §5.3 one version per handshake).
impl crate::tls::PublishedTls for ArcSwap<Published> {
    fn with_tls(&self, f: &mut dyn FnMut(&crate::tls::TlsTable)) {
        f(&self.load().translation.tls);
    }
}

/// Owns the published configuration: version, translate cache, `ArcSwap`, watch channel and
/// metrics gauges. One per process (`app::run`); `&mut self` to publish, so there is one
/// writer.
#[derive(Debug)]
pub struct Publisher {
    shared: Shared,
    tx: watch::Sender<Arc<Published>>,
    metrics: Arc<Metrics>,
    /// Translate's reusable work (parsed certificates) from one version to the next.
    cache: Cache,
}

impl Publisher {
    /// A publisher serving the empty version 0, counting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let shared = shared();
        let (tx, _) = watch::channel(shared.load_full());
        Publisher {
            shared,
            tx,
            metrics,
            cache: Cache::default(),
        }
    }

    /// The `ArcSwap` the proxy and the TLS resolver read per request and per handshake.
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Every published version from now on. A slow subscriber skips to the latest (a `watch`
    /// channel keeps only the last value), which is what status and Events want.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    /// Translates `snapshot` and publishes it unless it equals what is published. Returns the
    /// new version when it published. Counted in `portico_config_rebuilds_total` and its
    /// duration histogram.
    pub fn publish(
        &mut self,
        snapshot: impl Into<Arc<Snapshot>>,
        options: &Options,
    ) -> Option<u64> {
        let start = std::time::Instant::now();
        let snapshot = snapshot.into();
        let mut translation = translate(&snapshot, options, &mut self.cache);
        // Certificate validity needs a clock, so it is judged here rather than in translate.
        crate::translate::certificate_validity(&mut translation, std::time::SystemTime::now());
        let version = self.swap(snapshot, translation);
        self.metrics.rebuild(version.is_some(), start.elapsed());
        version
    }

    fn swap(&mut self, snapshot: Arc<Snapshot>, translation: Translation) -> Option<u64> {
        let current = self.shared.load_full();
        if current.is_ready() && *current.translation == translation {
            tracing::debug!(version = current.version, "configuration unchanged");
            // No swap, no new version; subscribers still get the newer observed objects
            // (status compares with what the objects say now).
            let latest = self.tx.borrow().snapshot.clone();
            if !Arc::ptr_eq(&latest, &snapshot) {
                self.tx.send_replace(Arc::new(Published {
                    version: current.version,
                    translation: current.translation.clone(),
                    snapshot,
                }));
            }
            return None;
        }
        let before: HashSet<_> = current.translation.conditions.iter().collect();
        for condition in translation
            .conditions
            .iter()
            .filter(|c| !before.contains(c))
        {
            tracing::warn!(
                object = %condition.object,
                reason = ?condition.reason,
                "{}",
                condition.message
            );
        }
        drop(before);
        let version = current.version + 1;
        tracing::info!(
            version,
            vhosts = translation.table.vhosts().len(),
            routes = translation.table.route_count(),
            tls_names = translation.tls.bindings().len(),
            conditions = translation.conditions.len(),
            "published configuration"
        );
        let published = Arc::new(Published {
            version,
            translation: Arc::new(translation),
            snapshot,
        });
        // The proxy first: a subscriber (status) must never see a version before it serves.
        self.shared.store(published.clone());
        drop(current);
        let mut by_reason: HashMap<String, i64> = HashMap::new();
        for c in &published.translation.conditions {
            *by_reason.entry(format!("{:?}", c.reason)).or_default() += 1;
        }
        self.metrics.configuration(
            version,
            &published.translation.table,
            &published.translation.tls,
            by_reason,
        );
        self.tx.send_replace(published);
        Some(version)
    }

    /// Publishes every snapshot the source sends until the sender goes away. The watch channel
    /// keeps only the latest value, so a burst of changes becomes one rebuild.
    pub async fn run(self, mut snapshots: watch::Receiver<Arc<Snapshot>>, options: Arc<Options>) {
        let mut publisher = self;
        loop {
            let snapshot = snapshots.borrow_and_update().clone();
            let options2 = options.clone();
            // Translating thousands of Ingresses takes milliseconds: keep it off the runtime
            // threads. The publisher travels with the work, so there is still one writer.
            let result = tokio::task::spawn_blocking(move || {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    publisher.publish(snapshot, &options2);
                }));
                if outcome.is_err() {
                    // Whatever the panic left half-updated is not reused.
                    publisher.cache = Cache::default();
                }
                (publisher, outcome.is_ok())
            })
            .await;
            match result {
                Ok((owner, ok)) => {
                    if !ok {
                        tracing::error!("translate panicked; keeping the last configuration");
                    }
                    publisher = owner;
                }
                // Only if the runtime is shutting down: the blocking task was not run.
                Err(e) => {
                    tracing::error!(error = %e, "publisher stopped");
                    return;
                }
            }
            if snapshots.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::files::{parse_documents, Loaded};

    const INGRESS: &str = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a}\nspec:\n  defaultBackend: {service: {name: s, port: {number: 80}}}\n";

    fn snapshot(text: &str) -> Snapshot {
        let mut loaded = Loaded::default();
        parse_documents("t.yaml", text, &mut loaded);
        loaded.snapshot
    }

    fn options() -> Options {
        Options {
            watch_without_class: true,
            ..Options::default()
        }
    }

    #[test]
    fn an_equal_translation_is_not_swapped() {
        let mut publisher = Publisher::new(Arc::default());
        let mut rx = publisher.subscribe();
        let options = options();
        assert_eq!(publisher.publish(snapshot(INGRESS), &options), Some(1));
        assert!(rx.has_changed().unwrap(), "version 1 pushed");
        rx.mark_unchanged();
        let before = publisher.shared().load_full();
        assert_eq!(publisher.publish(snapshot(INGRESS), &options), None);
        assert!(
            Arc::ptr_eq(&before, &publisher.shared().load_full()),
            "no swap"
        );
        // A change that does not change the translation (an unrelated kind) swaps nothing.
        let unrelated =
            format!("{INGRESS}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: x}}\n");
        assert_eq!(publisher.publish(snapshot(&unrelated), &options), None);
        assert!(
            Arc::ptr_eq(&before, &publisher.shared().load_full()),
            "no swap"
        );
        // Subscribers see the newer objects under the same version and translation.
        let pushed = rx.borrow_and_update().clone();
        assert_eq!(pushed.version, 1);
        assert!(Arc::ptr_eq(&pushed.translation, &before.translation));
        assert_eq!(pushed.snapshot.secrets.len(), 1);
        assert_eq!(publisher.publish(Snapshot::default(), &options), Some(2));
        assert_eq!(rx.borrow_and_update().version, 2);
    }

    #[test]
    fn subscribers_get_the_latest_of_every_published_version() {
        let mut publisher = Publisher::new(Arc::default());
        let mut early = publisher.subscribe();
        let options = options();
        for (i, name) in ["s1", "s2", "s3"].into_iter().enumerate() {
            let text = INGRESS.replace("name: s,", &format!("name: {name},"));
            assert_eq!(
                publisher.publish(snapshot(&text), &options),
                Some(i as u64 + 1)
            );
        }
        // A subscriber that was slow sees the last version, with the snapshot it came from.
        let latest = early.borrow_and_update().clone();
        assert_eq!(latest.version, 3);
        assert!(Arc::ptr_eq(&latest, &publisher.shared().load_full()));
        assert_eq!(latest.snapshot.ingresses.len(), 1);
        // One that subscribes later starts from the current value.
        let late = publisher.subscribe();
        assert_eq!(late.borrow().version, 3);
    }

    #[test]
    fn publishing_sets_the_configuration_gauges() {
        let metrics = Arc::new(Metrics::new());
        let mut publisher = Publisher::new(metrics.clone());
        publisher.publish(snapshot(INGRESS), &options());
        let text = metrics.encode();
        assert!(text.contains("portico_config_version 1"), "{text}");
        assert!(
            text.contains("portico_config_conditions{reason=\"ServiceNotFound\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_burst_of_snapshots_ends_on_the_last() {
        let publisher = Publisher::new(Arc::default());
        let shared = publisher.shared().clone();
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let task = tokio::spawn(publisher.run(rx, Arc::new(options())));
        for name in ["s1", "s2", "s3"] {
            let text = INGRESS.replace("name: s,", &format!("name: {name},"));
            tx.send(Arc::new(snapshot(&text))).unwrap();
        }
        drop(tx);
        task.await.unwrap();
        let published = shared.load();
        let backend = published
            .translation
            .table
            .default_backend()
            .expect("default backend");
        assert_eq!(backend.reference.to_string(), "default/s3:80");
    }
}
