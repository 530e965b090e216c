//! Publish: translate each new snapshot and swap the result into the one `ArcSwap` that the
//! proxy and the TLS resolver read. Bursts coalesce; nothing is swapped when nothing changed.

use std::collections::HashSet;
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
    pub translation: Translation,
}

impl Published {
    fn empty() -> Self {
        Published {
            version: 0,
            translation: Translation::default(),
        }
    }

    /// Whether a real configuration has been published (spec: publish nothing partial).
    pub fn is_ready(&self) -> bool {
        self.version > 0
    }
}

/// The shared, hot-swapped configuration.
pub type Shared = Arc<ArcSwap<Published>>;

/// A fresh handle holding the empty version 0.
pub fn shared() -> Shared {
    Arc::new(ArcSwap::from_pointee(Published::empty()))
}

/// Translates `snapshot` and swaps it in unless it equals what is published. Returns the new
/// version when it swapped. `cache` carries translate's reusable work from one call to the next.
pub fn apply(
    shared: &Shared,
    snapshot: &Snapshot,
    options: &Options,
    cache: &mut Cache,
) -> Option<u64> {
    let mut translation = translate(snapshot, options, cache);
    // Certificate validity needs a clock, so it is judged here rather than in translate.
    crate::translate::certificate_validity(&mut translation, std::time::SystemTime::now());
    let current = shared.load();
    if current.is_ready() && current.translation == translation {
        tracing::debug!(version = current.version, "configuration unchanged");
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
    let version = current.version + 1;
    tracing::info!(
        version,
        vhosts = translation.table.vhosts().len(),
        routes = translation.table.route_count(),
        tls_names = translation.tls.bindings().len(),
        conditions = translation.conditions.len(),
        "published configuration"
    );
    shared.store(Arc::new(Published {
        version,
        translation,
    }));
    Some(version)
}

/// [`apply`], counted in `portico_config_rebuilds_total` and its duration histogram.
pub fn apply_counted(
    shared: &Shared,
    snapshot: &Snapshot,
    options: &Options,
    cache: &mut Cache,
    metrics: &Metrics,
) -> Option<u64> {
    let start = std::time::Instant::now();
    let version = apply(shared, snapshot, options, cache);
    metrics.rebuild(version.is_some(), start.elapsed());
    version
}

/// Publishes every snapshot the source sends until the sender goes away. The watch channel
/// keeps only the latest value, so a burst of changes becomes one rebuild. `cache` is the
/// translate cache of any earlier [`apply`] (or a fresh one).
pub async fn run(
    shared: Shared,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    options: Arc<Options>,
    metrics: Arc<Metrics>,
    mut cache: Cache,
) {
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        let (shared2, options2, metrics2) = (shared.clone(), options.clone(), metrics.clone());
        // Translating thousands of Ingresses takes milliseconds: keep it off the runtime threads.
        // The cache travels with the work and comes back with it.
        let result = tokio::task::spawn_blocking(move || {
            apply_counted(&shared2, &snapshot, &options2, &mut cache, &metrics2);
            cache
        })
        .await;
        cache = match result {
            Ok(cache) => cache,
            Err(e) => {
                tracing::error!(error = %e, "translate panicked; keeping the last configuration");
                // Whatever the panic left half-updated is not reused.
                Cache::default()
            }
        };
        if snapshots.changed().await.is_err() {
            return;
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

    #[test]
    fn an_equal_translation_is_not_swapped() {
        let shared = shared();
        let options = Options {
            watch_without_class: true,
            ..Options::default()
        };
        let cache = &mut Cache::default();
        assert_eq!(apply(&shared, &snapshot(INGRESS), &options, cache), Some(1));
        let before = shared.load_full();
        assert_eq!(apply(&shared, &snapshot(INGRESS), &options, cache), None);
        assert!(Arc::ptr_eq(&before, &shared.load_full()), "no swap");
        // A change that does not change the translation (an unrelated kind) swaps nothing.
        let unrelated =
            format!("{INGRESS}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: x}}\n");
        assert_eq!(apply(&shared, &snapshot(&unrelated), &options, cache), None);
        assert_eq!(
            apply(&shared, &Snapshot::default(), &options, cache),
            Some(2)
        );
    }

    #[tokio::test]
    async fn a_burst_of_snapshots_ends_on_the_last() {
        let shared = shared();
        let options = Arc::new(Options {
            watch_without_class: true,
            ..Options::default()
        });
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let task = tokio::spawn(run(
            shared.clone(),
            rx,
            options,
            Arc::default(),
            Cache::default(),
        ));
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
