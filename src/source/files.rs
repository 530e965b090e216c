//! Manifests-directory source: reads `*.yaml`, `*.yml` and `*.json` files into a `Snapshot`
//! and watches the directory, so local runs, demos and tests need no cluster.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::Snapshot;

/// One document that could not be used. The rest of the directory still serves.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: cannot read: {message}")]
    Read { file: String, message: String },
    #[error("{file}: document {index}: {message}")]
    Document {
        file: String,
        /// Position of the document within the file, counting from 1.
        index: usize,
        message: String,
    },
}

/// What a document was, when it was not kept: for the one log line per skipped kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub file: String,
    pub index: usize,
    pub api_version: String,
    pub kind: String,
}

/// The result of reading manifests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    pub snapshot: Snapshot,
    pub errors: Vec<LoadError>,
    pub skipped: Vec<Skipped>,
}

/// Parses every document of one file (multi-document YAML, or JSON) into `loaded`.
///
/// `kind: List` documents (what `kubectl get -o yaml` prints) are unpacked. Objects without
/// `metadata.namespace` are put in `default`, as `kubectl apply` would.
pub fn parse_documents(file: &str, text: &str, loaded: &mut Loaded) {
    for (index, document) in split_documents(text).into_iter().enumerate() {
        let index = index + 1;
        let value = match serde_yaml::from_str::<serde_yaml::Value>(document) {
            Ok(serde_yaml::Value::Null) => continue, // only comments
            Ok(value) => value,
            Err(e) => {
                loaded.errors.push(LoadError::Document {
                    file: file.to_string(),
                    index,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let value = match serde_json::to_value(value) {
            Ok(v) => v,
            Err(e) => {
                loaded.errors.push(LoadError::Document {
                    file: file.to_string(),
                    index,
                    message: format!("not representable as JSON: {e}"),
                });
                continue;
            }
        };
        add_object(file, index, value, loaded);
    }
}

/// Splits a YAML stream at its `---` document markers, so that a syntax error in one document
/// does not hide the documents after it. Blank documents are dropped; a `---` on the first
/// line does not start an extra document.
fn split_documents(text: &str) -> Vec<&str> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let is_marker =
            line.starts_with("---") && line[3..].chars().next().is_none_or(char::is_whitespace);
        if is_marker {
            documents.push(&text[start..offset]);
            // Content after the marker (`--- {a: 1}`) belongs to the new document.
            start = offset + 3;
        }
        offset += line.len();
    }
    documents.push(&text[start..]);
    documents.retain(|d| {
        d.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    documents
}

fn add_object(file: &str, index: usize, value: serde_json::Value, loaded: &mut Loaded) {
    let doc_error = |message: String| LoadError::Document {
        file: file.to_string(),
        index,
        message,
    };
    let Some(map) = value.as_object() else {
        loaded
            .errors
            .push(doc_error("document is not a mapping".to_string()));
        return;
    };
    let text = |key: &str| {
        map.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let api_version = text("apiVersion");
    let kind = text("kind");
    if kind.is_empty() || api_version.is_empty() {
        loaded
            .errors
            .push(doc_error("missing apiVersion or kind".to_string()));
        return;
    }
    let snapshot = &mut loaded.snapshot;
    let result = match (api_version.as_str(), kind.as_str()) {
        ("v1", "List") => {
            let items = map
                .get("items")
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default();
            for item in items {
                add_object(file, index, item, loaded);
            }
            return;
        }
        ("networking.k8s.io/v1", "Ingress") => push(value, &mut snapshot.ingresses),
        ("networking.k8s.io/v1", "IngressClass") => push(value, &mut snapshot.ingress_classes),
        ("v1", "Service") => push(value, &mut snapshot.services),
        ("discovery.k8s.io/v1", "EndpointSlice") => push(value, &mut snapshot.endpoint_slices),
        ("v1", "Secret") => push(value, &mut snapshot.secrets),
        _ => {
            loaded.skipped.push(Skipped {
                file: file.to_string(),
                index,
                api_version,
                kind,
            });
            return;
        }
    };
    if let Err(message) = result {
        loaded
            .errors
            .push(doc_error(format!("{api_version} {kind}: {message}")));
    }
}

/// Objects that carry `ObjectMeta`, so a missing namespace can be defaulted.
trait Namespaced {
    fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    /// Cluster-scoped kinds keep no namespace.
    const NAMESPACED: bool = true;
}

macro_rules! namespaced {
    ($($t:ty => $ns:expr),* $(,)?) => {$(
        impl Namespaced for $t {
            fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
            const NAMESPACED: bool = $ns;
        }
    )*};
}

namespaced!(
    k8s_openapi::api::networking::v1::Ingress => true,
    k8s_openapi::api::networking::v1::IngressClass => false,
    k8s_openapi::api::core::v1::Service => true,
    k8s_openapi::api::discovery::v1::EndpointSlice => true,
    k8s_openapi::api::core::v1::Secret => true,
);

fn push<T: DeserializeOwned + Namespaced + super::Trim>(
    value: serde_json::Value,
    into: &mut Vec<std::sync::Arc<T>>,
) -> Result<(), String> {
    let mut object: T = serde_json::from_value(value).map_err(|e| e.to_string())?;
    // The same bytes as the Kubernetes source keeps: only what translate reads.
    object.trim();
    let meta = object.meta_mut();
    if meta.name.as_deref().unwrap_or_default().is_empty() {
        return Err("metadata.name is missing".to_string());
    }
    if T::NAMESPACED {
        if meta.namespace.as_deref().unwrap_or_default().is_empty() {
            meta.namespace = Some("default".to_string());
        }
    } else {
        meta.namespace = None;
    }
    into.push(std::sync::Arc::new(object));
    Ok(())
}

/// The manifest files below `dir`, sorted by path so loading is deterministic.
///
/// Hidden entries (names starting with `.`) are skipped: editors' swap files, and the `..data`
/// links of a mounted ConfigMap, which would otherwise be read twice.
pub fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, std::io::Error> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            // Follow symlinks: ConfigMap mounts are links.
            // The entry's own type needs no system call; only a symlink is followed with stat.
            let is_dir = match entry.file_type() {
                Ok(t) if t.is_symlink() => match std::fs::metadata(&path) {
                    Ok(meta) => meta.is_dir(),
                    Err(_) => continue,
                },
                Ok(t) => t.is_dir(),
                Err(_) => continue,
            };
            if is_dir {
                pending.push(path);
            } else if is_manifest_name(&name) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Whether a file name is one the source reads.
pub fn is_manifest_name(name: &str) -> bool {
    [".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// Reads every manifest file below `dir` (or the single file `dir`, if it is one).
pub fn load(dir: &Path) -> Loaded {
    load_cached(dir, &mut Cache::default(), &Snapshot::default())
}

/// Where each file's objects sit in the snapshot the last reload produced, so that a file whose
/// text is unchanged is not parsed again: its objects are copied from that snapshot. YAML
/// parsing is most of a reload's cost (5,000 Ingresses with their Services and EndpointSlices
/// in 5,000 files: ~300 ms parsed, ~60 ms reused). The cache holds no objects of its own.
#[derive(Debug, Default)]
pub struct Cache {
    files: std::collections::HashMap<PathBuf, Entry>,
    /// Object counts of the snapshot the cache describes; another snapshot is not trusted.
    counts: [usize; 5],
}

#[derive(Debug)]
struct Entry {
    hash: u64,
    start: [usize; 5],
    len: [usize; 5],
    errors: Vec<LoadError>,
    skipped: Vec<Skipped>,
}

fn counts(s: &Snapshot) -> [usize; 5] {
    [
        s.ingresses.len(),
        s.ingress_classes.len(),
        s.services.len(),
        s.endpoint_slices.len(),
        s.secrets.len(),
    ]
}

/// A file's text, hashed: the cache keeps this rather than the text. A collision would keep a
/// stale parse until the file changes again; with 64 bits over a directory's files that risk
/// is far below that of a disk error.
fn digest(text: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // Fixed seed: the same text hashes the same for the life of the process.
    let mut h = foldhash::quality::FixedState::with_seed(0x5eed).build_hasher();
    h.write(text.as_bytes());
    h.finish()
}

/// [`load`], copying the objects of every file whose text is what it was at the last call from
/// `previous`, which must be the snapshot that call returned (or one equal to it). The result is
/// the same as `load`'s: every file is still read, in the same order.
pub fn load_cached(dir: &Path, cache: &mut Cache, previous: &Snapshot) -> Loaded {
    let mut loaded = Loaded::default();
    let files = if dir.is_file() {
        Ok(vec![dir.to_path_buf()])
    } else {
        manifest_files(dir)
    };
    let files = match files {
        Ok(files) => files,
        Err(e) => {
            loaded.errors.push(LoadError::Read {
                file: dir.display().to_string(),
                message: e.to_string(),
            });
            *cache = Cache::default();
            return loaded;
        }
    };
    let trusted = cache.counts == counts(previous);
    let mut seen = std::collections::HashMap::with_capacity(files.len());
    for file in files {
        let label = file.display().to_string();
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) => {
                loaded.errors.push(LoadError::Read {
                    file: label,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let hash = digest(&text);
        let start = counts(&loaded.snapshot);
        let entry = match cache.files.remove(&file) {
            Some(entry) if trusted && entry.hash == hash => {
                let (to, from) = (&mut loaded.snapshot, previous);
                let range = |i: usize| entry.start[i]..entry.start[i] + entry.len[i];
                to.ingresses.extend_from_slice(&from.ingresses[range(0)]);
                to.ingress_classes
                    .extend_from_slice(&from.ingress_classes[range(1)]);
                to.services.extend_from_slice(&from.services[range(2)]);
                to.endpoint_slices
                    .extend_from_slice(&from.endpoint_slices[range(3)]);
                to.secrets.extend_from_slice(&from.secrets[range(4)]);
                loaded.errors.extend_from_slice(&entry.errors);
                loaded.skipped.extend_from_slice(&entry.skipped);
                Entry { start, ..entry }
            }
            _ => {
                let mut parsed = Loaded::default();
                parse_documents(&label, &text, &mut parsed);
                let len = counts(&parsed.snapshot);
                let (errors, skipped) = (parsed.errors.clone(), parsed.skipped.clone());
                let (to, from) = (&mut loaded.snapshot, parsed.snapshot);
                to.ingresses.extend(from.ingresses);
                to.ingress_classes.extend(from.ingress_classes);
                to.services.extend(from.services);
                to.endpoint_slices.extend(from.endpoint_slices);
                to.secrets.extend(from.secrets);
                loaded.errors.extend(parsed.errors);
                loaded.skipped.extend(parsed.skipped);
                Entry {
                    hash,
                    start,
                    len,
                    errors,
                    skipped,
                }
            }
        };
        seen.insert(file, entry);
    }
    cache.files = seen;
    cache.counts = counts(&loaded.snapshot);
    loaded
}

/// Logs what a load could not use: one line per bad document, one per skipped kind.
pub fn log_problems(loaded: &Loaded) {
    for error in &loaded.errors {
        tracing::warn!("manifest skipped: {error}");
    }
    for s in &loaded.skipped {
        tracing::info!(
            file = %s.file,
            document = s.index,
            "skipping {} {}: not a kind Portico reads",
            s.api_version,
            s.kind
        );
    }
}

/// The `source` label of this source's metrics.
pub const SOURCE: &str = "files";

/// Feeds the source metrics: a load that could read every file is a successful sync (documents
/// that fail to parse are the manifests' problem, counted once per change as `parse` errors);
/// unreadable files or directories count as `read` errors on every attempt.
pub fn record_load(metrics: &crate::metrics::Metrics, loaded: &Loaded, changed: bool) {
    let mut read_failed = false;
    for error in &loaded.errors {
        match error {
            LoadError::Read { .. } => {
                read_failed = true;
                metrics.watch_error(SOURCE, "read");
            }
            LoadError::Document { .. } if changed => metrics.watch_error(SOURCE, "parse"),
            LoadError::Document { .. } => {}
        }
    }
    if !read_failed {
        metrics.source_synced(SOURCE);
    }
}

/// How long the directory must stay quiet before a reload, so an editor's save (several events)
/// or a `cp -r` becomes one rebuild.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(10);
/// Longest a reload waits for quiet during a continuous stream of changes.
const SETTLE_MAX: std::time::Duration = std::time::Duration::from_millis(300);
/// A full rescan even without events: covers a directory that appears later, or filesystems
/// where inotify says nothing (network mounts).
const RESCAN: std::time::Duration = std::time::Duration::from_secs(10);

/// Watches `dir` and sends a new snapshot whenever what it loads changes. `initial` is the
/// snapshot already sent. Returns when every receiver is gone.
pub async fn watch(
    dir: PathBuf,
    initial: std::sync::Arc<Snapshot>,
    tx: tokio::sync::watch::Sender<std::sync::Arc<Snapshot>>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) {
    use notify::Watcher;

    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<()>();
    let watch_metrics = metrics.clone();
    let handler = move |event: notify::Result<notify::Event>| {
        if event.is_err() {
            watch_metrics.watch_error(SOURCE, "watch");
        }
        if event.is_ok() {
            // The receiver only goes away when this task ends.
            let _ = events_tx.send(());
        }
    };
    // Keep the watcher alive for as long as this task runs.
    let _watcher = match notify::recommended_watcher(handler) {
        Ok(mut watcher) => match watcher.watch(&dir, notify::RecursiveMode::Recursive) {
            Ok(()) => Some(watcher),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch manifests; rescanning every {}s", RESCAN.as_secs());
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "no filesystem watcher; rescanning every {}s", RESCAN.as_secs());
            None
        }
    };

    // Parse the directory once more now that it is watched: it warms the cache (or the first
    // change would parse every file again), and a change made between the first load and the
    // watch is not missed until the next rescan.
    let mut cache = Cache::default();
    let mut current = initial;
    let mut warm = true;
    loop {
        if !std::mem::take(&mut warm) {
            tokio::select! {
                event = events.recv() => {
                    if event.is_none() {
                        return;
                    }
                    settle(&mut events).await;
                }
                _ = tokio::time::sleep(RESCAN) => {}
                _ = tx.closed() => return,
            }
        }
        let dir2 = dir.clone();
        let previous = current.clone();
        let reload = tokio::task::spawn_blocking(move || {
            let loaded = load_cached(&dir2, &mut cache, &previous);
            (loaded, cache)
        });
        let loaded = match reload.await {
            Ok((loaded, kept)) => {
                cache = kept;
                loaded
            }
            Err(e) => {
                tracing::error!(error = %e, "manifest load failed");
                cache = Cache::default();
                continue;
            }
        };
        let changed = loaded.snapshot != *current;
        record_load(&metrics, &loaded, changed);
        if !changed {
            continue;
        }
        log_problems(&loaded);
        tracing::info!(objects = loaded.snapshot.len(), "manifests changed");
        current = std::sync::Arc::new(loaded.snapshot);
        if tx.send(current.clone()).is_err() {
            return;
        }
    }
}

/// Waits until no event has arrived for `SETTLE`, or `SETTLE_MAX` has passed.
async fn settle(events: &mut tokio::sync::mpsc::UnboundedReceiver<()>) {
    let deadline = tokio::time::Instant::now() + SETTLE_MAX;
    loop {
        let quiet = tokio::time::sleep(SETTLE);
        tokio::select! {
            _ = quiet => return,
            _ = tokio::time::sleep_until(deadline) => return,
            more = events.recv() => if more.is_none() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  ports:\n  - port: 80\n";

    #[test]
    fn multi_document_files_are_split_and_defaulted() {
        let mut loaded = Loaded::default();
        let text = format!("{GOOD}---\n---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: portico\n  namespace: ignored\nspec:\n  controller: portico.dev/ingress-controller\n");
        parse_documents("f.yaml", &text, &mut loaded);
        assert_eq!(loaded.errors, vec![]);
        assert_eq!(loaded.snapshot.services.len(), 1);
        assert_eq!(
            loaded.snapshot.services[0].metadata.namespace.as_deref(),
            Some("default")
        );
        assert_eq!(loaded.snapshot.ingress_classes[0].metadata.namespace, None);
    }

    #[test]
    fn other_kinds_are_skipped_not_errors() {
        let mut loaded = Loaded::default();
        parse_documents(
            "f.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n",
            &mut loaded,
        );
        assert!(loaded.errors.is_empty());
        assert_eq!(loaded.skipped.len(), 1);
        assert_eq!(loaded.skipped[0].kind, "Deployment");
    }

    #[test]
    fn a_bad_document_names_file_and_index_and_spares_the_rest() {
        let mut loaded = Loaded::default();
        let text = format!("{GOOD}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\nspec:\n  ports: 7\n---\n{GOOD}");
        parse_documents("f.yaml", &text, &mut loaded);
        assert_eq!(loaded.snapshot.services.len(), 2);
        assert_eq!(loaded.errors.len(), 1);
        let message = loaded.errors[0].to_string();
        assert!(
            message.starts_with("f.yaml: document 2: v1 Service"),
            "{message}"
        );
    }

    #[test]
    fn syntax_errors_and_non_objects_are_reported() {
        for text in [
            "a: [unclosed",
            "- just\n- a list\n",
            "kind: Service\n",
            "42",
        ] {
            let mut loaded = Loaded::default();
            parse_documents("bad.yaml", text, &mut loaded);
            assert_eq!(loaded.errors.len(), 1, "{text:?}: {:?}", loaded.errors);
            assert!(loaded.snapshot.is_empty());
        }
    }

    #[test]
    fn a_syntax_error_spares_the_following_documents() {
        let mut loaded = Loaded::default();
        let text = format!("--- # first\na: [unclosed\n---\n{GOOD}...\n");
        parse_documents("f.yaml", &text, &mut loaded);
        assert_eq!(loaded.errors.len(), 1, "{:?}", loaded.errors);
        assert!(loaded.errors[0]
            .to_string()
            .starts_with("f.yaml: document 1:"));
        assert_eq!(loaded.snapshot.services.len(), 1);
    }

    #[test]
    fn missing_name_is_an_error() {
        let mut loaded = Loaded::default();
        parse_documents(
            "f.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {}\n",
            &mut loaded,
        );
        assert_eq!(loaded.errors.len(), 1);
    }

    #[test]
    fn lists_are_unpacked() {
        let mut loaded = Loaded::default();
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: a, namespace: x}\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: s}\n";
        parse_documents("list.json", text, &mut loaded);
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        assert_eq!(loaded.snapshot.services.len(), 1);
        assert_eq!(loaded.snapshot.secrets.len(), 1);
    }

    #[test]
    fn json_files_parse() {
        let mut loaded = Loaded::default();
        parse_documents(
            "svc.json",
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"j"}}"#,
            &mut loaded,
        );
        assert!(loaded.errors.is_empty());
        assert_eq!(loaded.snapshot.services.len(), 1);
    }

    #[test]
    fn only_manifest_names_and_no_hidden_entries_are_read() {
        let dir = std::env::temp_dir().join(format!("portico-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::create_dir_all(dir.join("..data")).unwrap();
        for name in [
            "a.yaml",
            "b.yml",
            "c.json",
            "sub/d.yaml",
            ".e.yaml",
            "..data/f.yaml",
            "g.txt",
            ".yaml",
        ] {
            std::fs::write(dir.join(name), GOOD).unwrap();
        }
        let names: Vec<String> = manifest_files(&dir)
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.yaml", "b.yml", "c.json", "sub/d.yaml"]);
        let loaded = load(&dir);
        assert_eq!(loaded.snapshot.services.len(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        let loaded = load(Path::new("/nonexistent/portico/manifests"));
        assert_eq!(loaded.errors.len(), 1);
    }

    #[test]
    fn a_cached_reload_equals_a_fresh_load_and_sees_changed_added_and_removed_files() {
        let dir = std::env::temp_dir().join(format!("portico-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let service = |name: &str| GOOD.replace("name: a", &format!("name: {name}"));
        std::fs::write(dir.join("a.yaml"), service("a")).unwrap();
        std::fs::write(dir.join("b.yaml"), service("b")).unwrap();
        std::fs::write(dir.join("bad.yaml"), "a: [unclosed").unwrap();
        let mut cache = Cache::default();
        let first = load_cached(&dir, &mut cache, &Snapshot::default());
        assert_eq!(first, load(&dir));
        let again = load_cached(&dir, &mut cache, &first.snapshot);
        assert_eq!(again, load(&dir));
        // A snapshot the cache does not describe is not trusted: everything is parsed.
        assert_eq!(
            load_cached(&dir, &mut cache, &Snapshot::default()),
            load(&dir)
        );

        std::fs::write(dir.join("b.yaml"), service("b2")).unwrap();
        std::fs::write(dir.join("c.yaml"), service("c")).unwrap();
        std::fs::remove_file(dir.join("a.yaml")).unwrap();
        let reloaded = load_cached(&dir, &mut cache, &again.snapshot);
        assert_eq!(reloaded, load(&dir));
        let names: Vec<_> = reloaded
            .snapshot
            .services
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["b2", "c"]);
        assert_eq!(reloaded.errors.len(), 1, "the bad file is still reported");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
