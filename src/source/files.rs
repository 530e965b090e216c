//! Manifests-directory source: reads `*.yaml`, `*.yml` and `*.json` files into a `Snapshot`
//! and watches the directory, so local runs, demos and tests need no cluster.
//!
//! Manifests are untrusted input (issue 10 item 8, docs/security.md "Manifests"): only regular
//! files are opened, each is capped in size ([`Limits`]), and the YAML parser runs under depth,
//! node and alias-expansion budgets ([`yaml_options`]), so a hostile file is rejected in
//! milliseconds and costs only its own objects.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::Snapshot;

/// One document that could not be used. The rest of the directory still serves.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: cannot read: {message}")]
    Read { file: String, message: String },
    /// A file the source will not read: not a regular file (a FIFO would block the reload
    /// until someone opened it for writing), or over [`Limits::max_file_bytes`]. The manifests'
    /// problem, not the source's: the rest still loads and the sync counts as successful.
    #[error("{file}: skipped: {reason}")]
    Refused { file: String, reason: String },
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
///
/// Each document is parsed under the budgets of [`yaml_options`]: a document nested deeper
/// than [`MAX_DEPTH`] or expanding too many aliases is an error naming the file and document,
/// found in time linear in its size.
pub fn parse_documents(file: &str, text: &str, loaded: &mut Loaded) {
    for (index, document) in split_documents(text).into_iter().enumerate() {
        let index = index + 1;
        // Straight into JSON values: the typed objects are read from those, as from the API.
        let value = match serde_saphyr::from_str_with_options::<serde_json::Value>(
            document,
            yaml_options(),
        ) {
            Ok(serde_json::Value::Null) => continue, // `~`, or only a `...`
            Ok(value) => value,
            Err(e) => {
                loaded.errors.push(LoadError::Document {
                    file: file.to_string(),
                    index,
                    message: one_line(&e.to_string()),
                });
                continue;
            }
        };
        add_object(file, index, value, loaded);
    }
}

/// Deepest nesting of mappings and sequences a document may have. Kubernetes objects need
/// about 10 (an Ingress path's backend port sits at depth 9); the API server's own JSON
/// decoder stops at 10,000, but parsers' costs grow with depth (serde_yaml took 22–46 s on a
/// 100,000-level document), and nothing Portico reads is deeper than a few dozen.
pub const MAX_DEPTH: usize = 64;
/// Most nodes (scalars, mappings, sequences) and parser events in one document. A 16 MiB
/// `kind: List` has at most a few million; the budget is a backstop, the size cap the bound.
const MAX_NODES: usize = 4_000_000;
/// Most alias (`*name`) uses in one document, and most events they may replay in all. Real
/// manifests rarely use anchors at all; a "billion laughs" document needs millions of replays.
const MAX_ALIASES: usize = 10_000;
const MAX_REPLAYED_EVENTS: usize = 10_000;

/// The YAML parser's settings: serde-saphyr's budgets, enforced while parsing (before any
/// value is built), so a hostile document fails fast instead of being built and then refused.
/// Duplicate keys are an error (as with serde_yaml and `kubectl apply`); `<<` merge keys are
/// applied.
pub fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.flow_nesting_limit = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget.max_events = MAX_NODES;
    budget.max_aliases = MAX_ALIASES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    // Log lines and `portico check` name file and document; a source snippet would spread one
    // error over several lines.
    options.with_snippet = false;
    options
}

/// Errors go into log lines: newlines become `; `.
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Splits a YAML stream at its `---` document markers, so that a syntax error in one document
/// does not hide the documents after it. Blank documents are dropped; a `---` on the first
/// line does not start an extra document.
pub fn split_documents(text: &str) -> Vec<&str> {
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

/// A document's `apiVersion` and `kind`, or why it has none (also read by `portico migrate`).
pub fn type_of(value: &serde_json::Value) -> Result<(String, String), &'static str> {
    let map = value.as_object().ok_or("document is not a mapping")?;
    let text = |key: &str| {
        map.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    if kind.is_empty() || api_version.is_empty() {
        return Err("missing apiVersion or kind");
    }
    Ok((api_version, kind))
}

fn add_object(file: &str, index: usize, value: serde_json::Value, loaded: &mut Loaded) {
    let doc_error = |message: String| LoadError::Document {
        file: file.to_string(),
        index,
        message,
    };
    let (api_version, kind) = match type_of(&value) {
        Ok(found) => found,
        Err(why) => return loaded.errors.push(doc_error(why.to_string())),
    };
    let snapshot = &mut loaded.snapshot;
    let result = match (api_version.as_str(), kind.as_str()) {
        ("v1", "List") => {
            let items = value
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
        ("v1", "ConfigMap") => push(value, &mut snapshot.config_maps),
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
    k8s_openapi::api::core::v1::ConfigMap => true,
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

/// What one manifest file may cost (issue 10 item 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file read (`--manifests-max-file-size`); a larger one is skipped with a
    /// [`LoadError::Refused`] and only its objects are missing.
    pub max_file_bytes: u64,
}

/// 16 MiB: sixteen times the largest object the API server stores (etcd's 1.5 MiB request
/// limit, Secrets capped at 1 MiB), and enough for a `kubectl get -o yaml` List of thousands
/// of Ingresses; parsed in well under a second.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
        }
    }
}

/// Why a file was not read: refused (the manifests' problem) or unreadable (the source's).
enum ReadFailure {
    Refused(String),
    Io(std::io::Error),
}

/// Reads one manifest file, refusing what is not a regular file or is over the size limit.
///
/// The type is checked without opening (opening a FIFO blocks until a writer comes; opening a
/// device can have effects), and again on the opened descriptor, which is opened non-blocking
/// so that a FIFO swapped in between the two cannot block either. The read stops one byte past
/// the limit, so a file growing while it is read is refused too.
fn read_manifest(path: &Path, limits: &Limits) -> Result<(String, Option<Stamp>), ReadFailure> {
    use std::io::Read;
    let check = |meta: &std::fs::Metadata| {
        if !meta.is_file() {
            return Err(ReadFailure::Refused(format!(
                "not a regular file ({})",
                file_kind(&meta.file_type())
            )));
        }
        if meta.len() > limits.max_file_bytes {
            return Err(ReadFailure::Refused(too_large(limits)));
        }
        Ok(())
    };
    check(&std::fs::metadata(path).map_err(ReadFailure::Io)?)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path).map_err(ReadFailure::Io)?;
    let meta = file.metadata().map_err(ReadFailure::Io)?;
    check(&meta)?;
    // Taken before the read: a write that races the read changes the stamp after it, so the
    // next rescan reads the file again rather than trusting a stamp older than the text.
    let stamp = Stamp::settled(&meta);
    let mut bytes = Vec::new();
    file.take(limits.max_file_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadFailure::Io)?;
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(ReadFailure::Refused(too_large(limits)));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        ReadFailure::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })?;
    Ok((text, stamp))
}

/// What `stat` says about a file, compared by the safety-net rescan instead of reading it
/// (issue 11: at 20,000 files reading and hashing every file took ~200 ms every 10 s).
/// Device, inode, size, modification and change times: an atomic save (rename) changes the
/// inode, a write the times, and the change time cannot be set back by any tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Files modified this recently get no stamp when read: timestamps are coarse (a kernel tick),
/// so a second write in the same tick with the same size would keep the stamp while the text
/// changed (git's "racily clean" entries). Such a file is read again by the next rescan, by
/// when its stamp has settled.
const RACY: std::time::Duration = std::time::Duration::from_secs(2);

impl Stamp {
    /// The stamp of `meta`; `None` (always read again) off Unix.
    #[cfg(unix)]
    pub fn of(meta: &std::fs::Metadata) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        Some(Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }

    #[cfg(not(unix))]
    pub fn of(_meta: &std::fs::Metadata) -> Option<Stamp> {
        None
    }

    /// [`Stamp::of`] a file being read, unless its inode changed within [`RACY`] (or in the
    /// future). The change time, not the modification time: any write, rename or `chmod`
    /// sets it to the present, and no tool can set it back.
    fn settled(meta: &std::fs::Metadata) -> Option<Stamp> {
        let stamp = Stamp::of(meta)?;
        let changed = std::time::UNIX_EPOCH.checked_add(std::time::Duration::new(
            u64::try_from(stamp.ctime.0).ok()?,
            u32::try_from(stamp.ctime.1).ok()?,
        ))?;
        let age = std::time::SystemTime::now().duration_since(changed).ok()?;
        (age >= RACY).then_some(stamp)
    }
}

/// One manifest file's text under `limits`, refused or failed as the source would report it;
/// for readers of manifests other than the source (`portico migrate`).
pub fn read_file(path: &Path, limits: &Limits) -> Result<String, LoadError> {
    let file = path.display().to_string();
    read_manifest(path, limits)
        .map(|(text, _)| text)
        .map_err(|failure| match failure {
            ReadFailure::Refused(reason) => LoadError::Refused { file, reason },
            ReadFailure::Io(e) => LoadError::Read {
                file,
                message: e.to_string(),
            },
        })
}

fn too_large(limits: &Limits) -> String {
    format!(
        "larger than {} bytes (--manifests-max-file-size)",
        limits.max_file_bytes
    )
}

fn file_kind(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// Reads every manifest file below `dir` (or the single file `dir`, if it is one).
pub fn load(dir: &Path, limits: &Limits) -> Loaded {
    load_cached(dir, limits, &mut Cache::default(), &Snapshot::default())
}

/// Where each file's objects sit in the snapshot the last reload produced, so that a file whose
/// text is unchanged is not parsed again: its objects are copied from that snapshot. YAML
/// parsing is most of a reload's cost (5,000 Ingresses with their Services and EndpointSlices
/// in 5,000 files: ~300 ms parsed, ~60 ms reused). The cache holds no objects of its own.
#[derive(Debug, Default)]
pub struct Cache {
    files: std::collections::HashMap<PathBuf, Entry>,
    /// Object counts of the snapshot the cache describes; another snapshot is not trusted.
    counts: [usize; 6],
    /// Every manifest file of the last load in path order, with the files that could not be
    /// read, so that a reload of only the paths inotify names ([`load_changed`]) knows the rest.
    listing: Option<Vec<PathBuf>>,
    failed: std::collections::HashMap<PathBuf, LoadError>,
    /// The last load had no errors: [`splice`] may run.
    clean: bool,
    /// Some file of the last load holds kinds Portico does not read.
    skipping: bool,
}

#[derive(Debug)]
struct Entry {
    hash: u64,
    /// The file as `stat` saw it just before the read that gave `hash`; `None`: read it again
    /// at the next rescan (see [`Stamp`]).
    stamp: Option<Stamp>,
    start: [usize; 6],
    len: [usize; 6],
    errors: Vec<LoadError>,
    skipped: Vec<Skipped>,
}

fn counts(s: &Snapshot) -> [usize; 6] {
    [
        s.ingresses.len(),
        s.ingress_classes.len(),
        s.services.len(),
        s.endpoint_slices.len(),
        s.secrets.len(),
        s.config_maps.len(),
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

/// A file of the directory, once read: its objects come from the cache, from a parse, or it
/// has none because it could not be read.
enum Slot {
    Cached(Entry),
    Parse {
        hash: u64,
        stamp: Option<Stamp>,
        text: String,
    },
    Failed(LoadError),
}

/// [`load`], copying the objects of every file whose text is what it was at the last call from
/// `previous`, which must be the snapshot that call returned (or one equal to it). The result is
/// the same as `load`'s: every file is still read, in the same order.
///
/// Files are read one after another, then the changed ones are parsed on all cores: each parse
/// is bounded by the size limit and the YAML budgets, and a slow one delays only the reload it
/// is part of by its own cost, not others' by being in front of them.
pub fn load_cached(dir: &Path, limits: &Limits, cache: &mut Cache, previous: &Snapshot) -> Loaded {
    let files = if dir.is_file() {
        Ok(vec![dir.to_path_buf()])
    } else {
        manifest_files(dir)
    };
    let files = match files {
        Ok(files) => files,
        Err(e) => {
            let mut loaded = Loaded::default();
            loaded.errors.push(LoadError::Read {
                file: dir.display().to_string(),
                message: e.to_string(),
            });
            *cache = Cache::default();
            return loaded;
        }
    };
    load_files(files, None, limits, cache, previous)
}

/// What a batch of filesystem events asks of a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Only these manifest paths may differ: each is re-read, or dropped if it is gone.
    Paths(std::collections::BTreeSet<PathBuf>),
    /// Something a path cannot say (a directory, a ConfigMap's `..data` swap, an overflow).
    Everything,
}

impl Changed {
    /// Adds what one event names. `dir` is the watched directory.
    pub fn add(&mut self, dir: &Path, paths: &[PathBuf]) {
        let Changed::Paths(set) = self else { return };
        if paths.is_empty() {
            *self = Changed::Everything;
            return;
        }
        for path in paths {
            match classify(dir, path) {
                PathChange::File => {
                    set.insert(path.clone());
                }
                PathChange::Ignore => {}
                PathChange::Rescan => {
                    *self = Changed::Everything;
                    return;
                }
            }
        }
    }
}

enum PathChange {
    /// A manifest file (or where one was): re-read just it.
    File,
    /// Nothing a load reads (an editor's hidden swap file, a `.txt`).
    Ignore,
    Rescan,
}

/// Which paths a targeted reload may handle alone; everything it cannot vouch for is a rescan.
fn classify(dir: &Path, path: &Path) -> PathChange {
    let Ok(relative) = path.strip_prefix(dir) else {
        return PathChange::Rescan;
    };
    // Follows symlinks, as the listing does.
    let meta = std::fs::metadata(path);
    let is_dir = meta.as_ref().is_ok_and(|m| m.is_dir());
    let hidden = relative
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
    if hidden {
        // A hidden directory appearing or a `..data` link swapped (a ConfigMap update) can
        // change what the visible links point at; a hidden file is never read.
        return if is_dir {
            PathChange::Rescan
        } else {
            PathChange::Ignore
        };
    }
    let name = relative
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match (is_manifest_name(&name), is_dir, meta.is_ok()) {
        (_, true, _) => PathChange::Rescan,
        (true, false, _) => PathChange::File,
        (false, false, true) => PathChange::Ignore,
        // Gone, and not a manifest name: perhaps a directory that held some.
        (false, false, false) => PathChange::Rescan,
    }
}

/// [`load_cached`] after events that name `changed` paths only: the other files are neither
/// listed nor read again, their objects are copied from `previous` (pointers). Falls back to a
/// full load when the cache cannot vouch for the rest (a first load, another snapshot, a single
/// manifest file). The result is the same as a full load's, if the events named every change.
pub fn load_changed(
    dir: &Path,
    limits: &Limits,
    cache: &mut Cache,
    previous: &Snapshot,
    changed: &Changed,
) -> Loaded {
    let trusted = cache.counts == counts(previous);
    let (Changed::Paths(paths), Some(_), true, false) =
        (changed, cache.listing.as_ref(), trusted, dir.is_file())
    else {
        return load_cached(dir, limits, cache, previous);
    };
    if let Some(loaded) = splice(limits, cache, previous, paths) {
        return loaded;
    }
    let Some(listing) = cache.listing.as_ref() else {
        return load_cached(dir, limits, cache, previous);
    };
    let mut files: std::collections::BTreeSet<PathBuf> = listing.iter().cloned().collect();
    for path in paths {
        // Listed as `manifest_files` would: symlinks followed, dangling ones left out.
        if std::fs::metadata(path).is_ok() {
            files.insert(path.clone());
        } else {
            files.remove(path);
        }
    }
    load_files(
        files.into_iter().collect(),
        Some(paths),
        limits,
        cache,
        previous,
    )
}

/// Loads `files` (in path order). With `fresh`, only those paths are read; every other file's
/// objects (or read error) come from the cache, which the caller has checked describes
/// `previous`.
fn load_files(
    files: Vec<PathBuf>,
    fresh: Option<&std::collections::BTreeSet<PathBuf>>,
    limits: &Limits,
    cache: &mut Cache,
    previous: &Snapshot,
) -> Loaded {
    let mut loaded = Loaded::default();
    let trusted = cache.counts == counts(previous);
    let mut failed = std::mem::take(&mut cache.failed);
    let slots: Vec<(PathBuf, Slot)> = files
        .into_iter()
        .map(|file| {
            let label = file.display().to_string();
            if fresh.is_some_and(|f| !f.contains(&file)) {
                if let Some(error) = failed.remove(&file) {
                    return (file, Slot::Failed(error));
                }
                if let Some(entry) = cache.files.remove(&file) {
                    return (file, Slot::Cached(entry));
                }
            }
            let slot = match read_manifest(&file, limits) {
                Err(ReadFailure::Refused(reason)) => Slot::Failed(LoadError::Refused {
                    file: label,
                    reason,
                }),
                Err(ReadFailure::Io(e)) => Slot::Failed(LoadError::Read {
                    file: label,
                    message: e.to_string(),
                }),
                Ok((text, stamp)) => {
                    let hash = digest(&text);
                    match cache.files.remove(&file) {
                        Some(entry) if trusted && entry.hash == hash => {
                            Slot::Cached(Entry { stamp, ..entry })
                        }
                        _ => Slot::Parse { hash, stamp, text },
                    }
                }
            };
            (file, slot)
        })
        .collect();
    let mut parsed = parse_all(&slots).into_iter();

    let mut seen = std::collections::HashMap::with_capacity(slots.len());
    let mut listing = Vec::with_capacity(slots.len());
    for (file, slot) in slots {
        listing.push(file.clone());
        let start = counts(&loaded.snapshot);
        let entry = match slot {
            Slot::Failed(error) => {
                loaded.errors.push(error.clone());
                cache.failed.insert(file, error);
                continue;
            }
            Slot::Cached(entry) => {
                let (to, from) = (&mut loaded.snapshot, previous);
                let range = |i: usize| entry.start[i]..entry.start[i] + entry.len[i];
                to.ingresses.extend_from_slice(&from.ingresses[range(0)]);
                to.ingress_classes
                    .extend_from_slice(&from.ingress_classes[range(1)]);
                to.services.extend_from_slice(&from.services[range(2)]);
                to.endpoint_slices
                    .extend_from_slice(&from.endpoint_slices[range(3)]);
                to.secrets.extend_from_slice(&from.secrets[range(4)]);
                to.config_maps
                    .extend_from_slice(&from.config_maps[range(5)]);
                loaded.errors.extend_from_slice(&entry.errors);
                loaded.skipped.extend_from_slice(&entry.skipped);
                Entry { start, ..entry }
            }
            Slot::Parse { hash, stamp, .. } => {
                // One result per `Parse` slot, in order.
                let parsed = parsed.next().unwrap_or_default();
                let len = counts(&parsed.snapshot);
                let (errors, skipped) = (parsed.errors.clone(), parsed.skipped.clone());
                let (to, from) = (&mut loaded.snapshot, parsed.snapshot);
                to.ingresses.extend(from.ingresses);
                to.ingress_classes.extend(from.ingress_classes);
                to.services.extend(from.services);
                to.endpoint_slices.extend(from.endpoint_slices);
                to.secrets.extend(from.secrets);
                to.config_maps.extend(from.config_maps);
                loaded.errors.extend(parsed.errors);
                loaded.skipped.extend(parsed.skipped);
                Entry {
                    hash,
                    stamp,
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
    cache.listing = Some(listing);
    cache.clean = loaded.errors.is_empty();
    cache.skipping = !loaded.skipped.is_empty();
    loaded
}

/// A named file's new objects, for [`splice`].
struct Spliced<'p> {
    path: &'p PathBuf,
    /// Its position in the listing: `Ok` where it was, `Err` where it goes.
    at: Result<usize, usize>,
    /// Its text's hash and stamp, objects and skipped documents; `None`: the file is gone.
    now: Option<(u64, Option<Stamp>, Snapshot, Vec<Skipped>)>,
}

/// [`load_changed`] in time proportional to the change, for the common case: the last load was
/// clean (nothing failed), and each named path is gone or is a manifest file that reads and
/// parses without errors. The new snapshot is the previous one with the named files' objects
/// spliced in or out (pointer copies), and no other file is looked at (at 20,000 files the full
/// bookkeeping of a targeted reload, a set and a map of every path, cost more than the change).
/// `None`, with the cache untouched: not that case; the caller does the full bookkeeping, which
/// reports what this declines.
fn splice(
    limits: &Limits,
    cache: &mut Cache,
    previous: &Snapshot,
    paths: &std::collections::BTreeSet<PathBuf>,
) -> Option<Loaded> {
    if !cache.clean || !cache.failed.is_empty() || cache.counts != counts(previous) {
        return None;
    }
    let listing = cache.listing.as_ref()?;
    let mut work: Vec<Spliced<'_>> = Vec::with_capacity(paths.len());
    for path in paths {
        let at = listing.binary_search(path);
        if std::fs::metadata(path).is_err() {
            if at.is_ok() {
                work.push(Spliced {
                    path,
                    at,
                    now: None,
                });
            }
            continue;
        }
        let (text, stamp) = read_manifest(path, limits).ok()?;
        let hash = digest(&text);
        if at.is_ok() {
            let entry = cache.files.get_mut(path)?;
            if entry.hash == hash {
                // The same text (a `touch`, or a rescan reading a racy file again): only the
                // stamp is new, and it describes this very text.
                entry.stamp = stamp;
                continue;
            }
        }
        let mut parsed = Loaded::default();
        parse_documents(&path.display().to_string(), &text, &mut parsed);
        if !parsed.errors.is_empty() {
            return None;
        }
        work.push(Spliced {
            path,
            at,
            now: Some((hash, stamp, parsed.snapshot, parsed.skipped)),
        });
    }
    // Where each named file's objects sit in `previous`: its own entry, or (a new file) where
    // the next listed file's begin.
    let mut places = Vec::with_capacity(work.len());
    for w in &work {
        let place = match w.at {
            Ok(_) => {
                let e = cache.files.get(w.path)?;
                (e.start, e.len)
            }
            Err(i) => match listing.get(i) {
                Some(next) => (cache.files.get(next)?.start, [0; 6]),
                None => (cache.counts, [0; 6]),
            },
        };
        places.push(place);
    }
    fn take<T>(to: &mut Vec<Arc<T>>, from: &[Arc<T>], range: std::ops::Range<usize>) {
        to.extend_from_slice(&from[range]);
    }
    use std::sync::Arc;
    let mut loaded = Loaded::default();
    let snapshot = &mut loaded.snapshot;
    let mut cursor = [0usize; 6];
    // (index in `work`, start, len, hash, stamp, skipped) of each file with objects now.
    type NewEntry = (
        usize,
        [usize; 6],
        [usize; 6],
        u64,
        Option<Stamp>,
        Vec<Skipped>,
    );
    let mut new_entries: Vec<NewEntry> = Vec::new();
    for (i, (w, (start, len))) in work.iter_mut().zip(&places).enumerate() {
        take(
            &mut snapshot.ingresses,
            &previous.ingresses,
            cursor[0]..start[0],
        );
        take(
            &mut snapshot.ingress_classes,
            &previous.ingress_classes,
            cursor[1]..start[1],
        );
        take(
            &mut snapshot.services,
            &previous.services,
            cursor[2]..start[2],
        );
        take(
            &mut snapshot.endpoint_slices,
            &previous.endpoint_slices,
            cursor[3]..start[3],
        );
        take(
            &mut snapshot.secrets,
            &previous.secrets,
            cursor[4]..start[4],
        );
        take(
            &mut snapshot.config_maps,
            &previous.config_maps,
            cursor[5]..start[5],
        );
        cursor = std::array::from_fn(|k| start[k] + len[k]);
        if let Some((hash, stamp, objects, skipped)) = w.now.take() {
            let at = counts(snapshot);
            let n = counts(&objects);
            snapshot.ingresses.extend(objects.ingresses);
            snapshot.ingress_classes.extend(objects.ingress_classes);
            snapshot.services.extend(objects.services);
            snapshot.endpoint_slices.extend(objects.endpoint_slices);
            snapshot.secrets.extend(objects.secrets);
            snapshot.config_maps.extend(objects.config_maps);
            new_entries.push((i, at, n, hash, stamp, skipped));
        }
    }
    take(
        &mut snapshot.ingresses,
        &previous.ingresses,
        cursor[0]..previous.ingresses.len(),
    );
    take(
        &mut snapshot.ingress_classes,
        &previous.ingress_classes,
        cursor[1]..previous.ingress_classes.len(),
    );
    take(
        &mut snapshot.services,
        &previous.services,
        cursor[2]..previous.services.len(),
    );
    take(
        &mut snapshot.endpoint_slices,
        &previous.endpoint_slices,
        cursor[3]..previous.endpoint_slices.len(),
    );
    take(
        &mut snapshot.secrets,
        &previous.secrets,
        cursor[4]..previous.secrets.len(),
    );
    take(
        &mut snapshot.config_maps,
        &previous.config_maps,
        cursor[5]..previous.config_maps.len(),
    );

    // The other files' objects moved by what the named files before them gained or lost.
    let growth: Vec<(&PathBuf, [isize; 6])> = work
        .iter()
        .zip(&places)
        .enumerate()
        .map(|(i, (w, (_, len)))| {
            let now = new_entries
                .iter()
                .find(|e| e.0 == i)
                .map_or([0; 6], |e| e.2);
            let d: [isize; 6] = std::array::from_fn(|k| now[k] as isize - len[k] as isize);
            (w.path, d)
        })
        .collect();
    for (path, entry) in cache.files.iter_mut() {
        for (changed, d) in &growth {
            if *changed < path {
                for (start, d) in entry.start.iter_mut().zip(d) {
                    *start = start.wrapping_add_signed(*d);
                }
            }
        }
    }
    let listing = cache.listing.get_or_insert_with(Vec::new);
    let mut skipping = cache.skipping;
    for (i, w) in work.iter().enumerate().rev() {
        let new = new_entries
            .iter()
            .position(|e| e.0 == i)
            .map(|p| new_entries.swap_remove(p));
        match (w.at, new) {
            (Ok(at), None) => {
                listing.remove(at);
                cache.files.remove(w.path);
            }
            (at, Some((_, start, len, hash, stamp, skipped))) => {
                if let Err(at) = at {
                    listing.insert(at, w.path.clone());
                }
                skipping |= !skipped.is_empty();
                cache.files.insert(
                    w.path.clone(),
                    Entry {
                        hash,
                        stamp,
                        start,
                        len,
                        errors: Vec::new(),
                        skipped,
                    },
                );
            }
            (Err(_), None) => {}
        }
    }
    // The skipped kinds, in file order as a full load lists them: only a directory that has
    // some pays this walk.
    if skipping {
        loaded.skipped = listing
            .iter()
            .filter_map(|path| cache.files.get(path))
            .flat_map(|entry| entry.skipped.iter().cloned())
            .collect();
        cache.skipping = !loaded.skipped.is_empty();
    }
    cache.counts = counts(&loaded.snapshot);
    Some(loaded)
}

/// Parses the text of every `Parse` slot, in slot order, on up to as many threads as there
/// are cores (scoped threads: a reload already runs on a blocking thread of its own).
fn parse_all(slots: &[(PathBuf, Slot)]) -> Vec<Loaded> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let work: Vec<(String, &str)> = slots
        .iter()
        .filter_map(|(file, slot)| match slot {
            Slot::Parse { text, .. } => Some((file.display().to_string(), text.as_str())),
            _ => None,
        })
        .collect();
    let parse = |(label, text): &(String, &str)| {
        let mut parsed = Loaded::default();
        parse_documents(label, text, &mut parsed);
        parsed
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(work.len());
    if threads <= 1 {
        return work.iter().map(parse).collect();
    }
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, Loaded)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = work.get(i) else { break };
                        done.push((i, parse(item)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            // The parser is built not to panic (and fuzzed: tests/fuzz.rs); should it, the
            // panic reaches the reload's task as before, which logs it and keeps the old table.
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, loaded)| loaded).collect()
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
/// that fail to parse and refused files are the manifests' problem, counted once per change as
/// `parse` and `refused` errors); unreadable files or directories count as `read` errors on
/// every attempt.
pub fn record_load(metrics: &crate::metrics::Metrics, loaded: &Loaded, changed: bool) {
    metrics.source_loaded(SOURCE);
    let mut read_failed = false;
    for error in &loaded.errors {
        match error {
            LoadError::Read { .. } => {
                read_failed = true;
                metrics.watch_error(SOURCE, "read");
            }
            LoadError::Document { .. } if changed => metrics.watch_error(SOURCE, "parse"),
            LoadError::Refused { .. } if changed => metrics.watch_error(SOURCE, "refused"),
            LoadError::Document { .. } | LoadError::Refused { .. } => {}
        }
    }
    if !read_failed {
        metrics.source_synced(SOURCE);
    }
}

/// How long the directory must stay quiet before a reload, so an editor's save (several events)
/// or a `cp -r` becomes one rebuild.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(2);
/// Longest a reload waits for quiet during a continuous stream of changes.
const SETTLE_MAX: std::time::Duration = std::time::Duration::from_millis(300);
/// A full rescan even without events: covers a directory that appears later, or filesystems
/// where inotify says nothing (network mounts).
const RESCAN: std::time::Duration = std::time::Duration::from_secs(10);

/// What the watch loop is woken by.
enum Event {
    /// The paths one filesystem event names; `None` asks for a full rescan (an overflow, or
    /// no paths given).
    Paths(Option<Vec<PathBuf>>),
    /// Every manifest file with its stamp, from the walk that starts the watch and then runs
    /// every [`RESCAN`]; an error (the directory is gone) asks for a full rescan.
    Walked(std::io::Result<Vec<(PathBuf, Option<Stamp>)>>),
}

/// Every manifest file below `dir` (as [`load_cached`] would list them), each with its stamp
/// (`None` when it could not be stat'ed: it is read, or found gone, by the reload).
pub fn stamped_files(dir: &Path) -> std::io::Result<Vec<(PathBuf, Option<Stamp>)>> {
    let files = if dir.is_file() {
        vec![dir.to_path_buf()]
    } else {
        manifest_files(dir)?
    };
    Ok(files
        .into_iter()
        .map(|file| {
            let stamp = std::fs::metadata(&file)
                .ok()
                .and_then(|meta| Stamp::of(&meta));
            (file, stamp)
        })
        .collect())
}

impl Cache {
    /// The paths a walk that found `files` (sorted, from [`stamped_files`]) says may differ
    /// from what the cache describes: new files, files gone, files whose stamp is not the one
    /// their text was read with (or that have none: racy, unreadable, refused). `None` when the
    /// cache describes no load yet.
    pub fn stale(
        &self,
        files: &[(PathBuf, Option<Stamp>)],
    ) -> Option<std::collections::BTreeSet<PathBuf>> {
        let listing = self.listing.as_ref()?;
        let mut stale = std::collections::BTreeSet::new();
        for (path, stamp) in files {
            let same = stamp.is_some() && self.files.get(path).is_some_and(|e| e.stamp == *stamp);
            if !same {
                stale.insert(path.clone());
            }
        }
        // Both in path order: what was listed and is not found now is gone.
        let mut found = files.iter().map(|(path, _)| path).peekable();
        for path in listing {
            while found.next_if(|f| *f < path).is_some() {}
            if found.peek() != Some(&path) {
                stale.insert(path.clone());
            }
        }
        Some(stale)
    }
}

/// Aborts a task when dropped: the rescan timer lives as long as the watch.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Watches `dir` and sends a new snapshot whenever what it loads changes. `initial` is the
/// snapshot already sent and `cache` the parse cache of the load that made it (or an empty
/// one). Returns when every receiver is gone.
///
/// Events name the files to read again. As a safety net (missed events, filesystems without
/// them) a walk stats every file right after the watch starts and then every [`RESCAN`], on a
/// task of its own, and only the files whose stamp differs are read: a walk that finds nothing
/// costs a `stat` per file and no reload, and a change arriving meanwhile is not held up by it
/// (issue 11: the rescan was a full reload, ~200 ms at 20,000 files, that delayed any change
/// behind it).
pub async fn watch(
    dir: PathBuf,
    limits: Limits,
    initial: std::sync::Arc<Snapshot>,
    cache: Cache,
    tx: tokio::sync::watch::Sender<std::sync::Arc<Snapshot>>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) {
    use notify::Watcher;

    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let walks_tx = events_tx.clone();
    let watch_metrics = metrics.clone();
    let handler = move |event: notify::Result<notify::Event>| match event {
        Err(_) => {
            watch_metrics.watch_error(SOURCE, "watch");
            let _ = events_tx.send(Event::Paths(None));
        }
        Ok(event) if changes_content(&event.kind) => {
            let paths = (!event.need_rescan()).then_some(event.paths);
            // The receiver only goes away when this task ends.
            let _ = events_tx.send(Event::Paths(paths));
        }
        Ok(_) => {}
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

    // The first walk runs now that the directory is watched, so a change made between the
    // first load and the watch is not missed until the next rescan; it reads only the files
    // that changed since (and those modified just before the first load, whose stamps were
    // too fresh to trust).
    let walk_dir = dir.clone();
    let _walks = AbortOnDrop(tokio::spawn(async move {
        loop {
            let dir = walk_dir.clone();
            let Ok(walked) = tokio::task::spawn_blocking(move || stamped_files(&dir)).await else {
                return;
            };
            if walks_tx.send(Event::Walked(walked)).is_err() {
                return;
            }
            tokio::time::sleep(RESCAN).await;
        }
    }));

    let mut cache = cache;
    let mut current = initial;
    // The problems the last load found; `None` before the first, whose problems the caller
    // has already logged with the first load.
    let mut problems: Option<Vec<LoadError>> = None;
    loop {
        let first = tokio::select! {
            event = events.recv() => match event {
                Some(event) => event,
                None => return,
            },
            _ = tx.closed() => return,
        };
        let mut changed = Changed::Paths(Default::default());
        let mut walked = None;
        let burst = matches!(first, Event::Paths(_));
        absorb(&mut changed, &mut walked, &dir, first);
        if burst {
            settle(&mut events, &mut changed, &mut walked, &dir).await;
        }
        let dir2 = dir.clone();
        let previous = current.clone();
        let reload = tokio::task::spawn_blocking(move || {
            let walk = walked.is_some();
            if let (Some(files), Changed::Paths(paths)) = (walked, &mut changed) {
                match cache.stale(&files) {
                    Some(stale) => paths.extend(stale),
                    None => changed = Changed::Everything,
                }
            }
            if changed == Changed::Paths(Default::default()) {
                // Nothing to read: a walk that found every stamp as it was, or events about
                // files no load reads.
                return (None, walk, cache);
            }
            let loaded = load_changed(&dir2, &limits, &mut cache, &previous, &changed);
            (Some(loaded), walk, cache)
        });
        let loaded = match reload.await {
            Ok((Some(loaded), _, kept)) => {
                cache = kept;
                loaded
            }
            Ok((None, walk, kept)) => {
                cache = kept;
                if walk {
                    // Every file was seen as it was read: a successful sync.
                    metrics.source_loaded(SOURCE);
                    metrics.source_synced(SOURCE);
                }
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "manifest load failed");
                cache = Cache::default();
                continue;
            }
        };
        let changed = loaded.snapshot != *current;
        // A file that breaks (or a FIFO that appears) changes no object, but is still worth
        // one warning.
        let new_problems = problems.as_ref().is_some_and(|p| *p != loaded.errors);
        problems = Some(loaded.errors.clone());
        record_load(&metrics, &loaded, changed || new_problems);
        if changed || new_problems {
            log_problems(&loaded);
        }
        if !changed {
            continue;
        }
        tracing::info!(objects = loaded.snapshot.len(), "manifests changed");
        current = std::sync::Arc::new(loaded.snapshot);
        if tx.send(current.clone()).is_err() {
            return;
        }
    }
}

/// Whether a filesystem event can change what a reload reads. Opens, reads and closes without
/// a write are not: the reload's own reading of every file comes back as such events (inotify
/// `IN_OPEN`, `IN_CLOSE_NOWRITE`), and reacting to them re-read an idle directory ~86 times a
/// second, forever (issue 10 item 7). A write shows as `Modify(Data)` and then
/// `Access(Close(Write))`; an atomic save or a ConfigMap update (`..data` swapped) as a rename;
/// `chmod` as `Modify(Metadata)` (it can make a file readable). `Any`/`Other` (a queue overflow
/// asking for a rescan, or a backend that cannot say) count as changes.
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Create(_)
        | EventKind::Modify(_)
        | EventKind::Remove(_)
        | EventKind::Any
        | EventKind::Other => true,
    }
}

/// Adds what one event asks for: paths to `changed`, a walk's stamps to `walked` (the latest
/// walk replaces an earlier one).
fn absorb(
    changed: &mut Changed,
    walked: &mut Option<Vec<(PathBuf, Option<Stamp>)>>,
    dir: &Path,
    event: Event,
) {
    match event {
        Event::Paths(Some(paths)) => changed.add(dir, &paths),
        Event::Paths(None) | Event::Walked(Err(_)) => *changed = Changed::Everything,
        Event::Walked(Ok(files)) => *walked = Some(files),
    }
}

/// Waits until no event has arrived for `SETTLE`, or `SETTLE_MAX` has passed, collecting what
/// the events ask for into `changed` and `walked`.
async fn settle(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    changed: &mut Changed,
    walked: &mut Option<Vec<(PathBuf, Option<Stamp>)>>,
    dir: &Path,
) {
    let deadline = tokio::time::Instant::now() + SETTLE_MAX;
    loop {
        let quiet = tokio::time::sleep(SETTLE);
        tokio::select! {
            _ = quiet => return,
            _ = tokio::time::sleep_until(deadline) => return,
            more = events.recv() => match more {
                Some(event) => absorb(changed, walked, dir, event),
                None => return,
            },
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
    fn config_maps_are_read_with_their_data_only() {
        let mut loaded = Loaded::default();
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: portico}\ndata: {hsts: \"false\"}\nbinaryData: {b: YQ==}\n";
        parse_documents("cm.yaml", text, &mut loaded);
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let map = loaded
            .snapshot
            .config_map("default", "portico")
            .expect("read, namespace defaulted");
        assert_eq!(map.data.as_ref().unwrap()["hsts"], "false");
        assert!(map.binary_data.is_none());
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
        let loaded = load(&dir, &Limits::default());
        assert_eq!(loaded.snapshot.services.len(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 10 item 7: the watcher's own reads came back as open/close events and re-read the
    /// directory in a loop. Over an idle window the directory is read once (the warm read that
    /// follows the watch starting) and no more; a write still reloads.
    #[tokio::test]
    async fn an_idle_watched_directory_is_not_read_again() {
        use std::sync::Arc;
        use std::time::Duration;
        let dir = std::env::temp_dir().join(format!("portico-idle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.yaml"), GOOD).unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let initial = Arc::new(load(&dir, &Limits::default()).snapshot);
        let (tx, mut rx) = tokio::sync::watch::channel(initial.clone());
        let task = tokio::spawn(watch(
            dir.clone(),
            Limits::default(),
            initial,
            Cache::default(),
            tx,
            metrics.clone(),
        ));
        for _ in 0..200 {
            if metrics.source_loads(SOURCE) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(metrics.source_loads(SOURCE), 1, "the warm read");
        // Far below the 10 s rescan; the loop read ~40 times in this window.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            metrics.source_loads(SOURCE),
            1,
            "an idle directory was read again"
        );

        std::fs::write(dir.join("b.yaml"), GOOD.replace("name: a", "name: b")).unwrap();
        let changed = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
        assert!(matches!(changed, Ok(Ok(()))), "a write must still reload");
        assert_eq!(rx.borrow().services.len(), 2);
        task.abort();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The safety-net rescan compares stamps: after a load it finds nothing to read, then
    /// exactly the files written, added, removed or unreadable, and a file read right after a
    /// write (a racy stamp) is read again.
    #[test]
    fn a_rescan_reads_only_files_whose_stamp_changed() {
        let dir = std::env::temp_dir().join(format!("portico-stamps-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let service = |name: &str| GOOD.replace("name: a", &format!("name: {name}"));
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        write("a.yaml", &service("a"));
        write("b.yaml", &service("b"));
        write("sub/c.yaml", &service("c"));
        write("notes.txt", "not a manifest");
        let limits = Limits::default();
        let mut cache = Cache::default();
        let loaded = load_cached(&dir, &limits, &mut cache, &Snapshot::default());
        assert_eq!(loaded.snapshot.services.len(), 3);
        let stale = |cache: &Cache| -> Vec<String> {
            let files = stamped_files(&dir).unwrap();
            let stale = cache.stale(&files).expect("the cache describes a load");
            stale
                .iter()
                .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
                .collect()
        };
        // Just written: too fresh to trust, so a rescan now reads all three again.
        assert_eq!(stale(&cache), ["a.yaml", "b.yaml", "sub/c.yaml"]);
        // As if they had been read once their stamps settled.
        let settle = |cache: &mut Cache| {
            for (path, entry) in cache.files.iter_mut() {
                entry.stamp = std::fs::metadata(path).ok().and_then(|m| Stamp::of(&m));
            }
        };
        settle(&mut cache);
        assert!(stale(&cache).is_empty(), "nothing changed, nothing to read");
        assert_eq!(
            Cache::default().stale(&stamped_files(&dir).unwrap()),
            None,
            "an empty cache vouches for nothing"
        );

        // Rewritten with the same size (a new inode or new times), added, removed.
        let tmp = dir.join(".b.yaml.tmp");
        std::fs::write(&tmp, service("B")).unwrap();
        std::fs::rename(&tmp, dir.join("b.yaml")).unwrap();
        write("aa.yaml", &service("aa"));
        std::fs::remove_file(dir.join("sub/c.yaml")).unwrap();
        assert_eq!(stale(&cache), ["aa.yaml", "b.yaml", "sub/c.yaml"]);
        let paths = Changed::Paths(
            ["aa.yaml", "b.yaml", "sub/c.yaml"]
                .into_iter()
                .map(|p| dir.join(p))
                .collect(),
        );
        let reloaded = load_changed(&dir, &limits, &mut cache, &loaded.snapshot, &paths);
        assert_eq!(
            reloaded,
            load(&dir, &limits),
            "the stale paths were the change"
        );
        settle(&mut cache);
        assert!(stale(&cache).is_empty());

        // A file that cannot be read is tried again by every rescan, as a full load would.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let secret = dir.join("a.yaml");
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
            if std::fs::read(&secret).is_err() {
                let again = load_changed(
                    &dir,
                    &limits,
                    &mut cache,
                    &reloaded.snapshot,
                    &Changed::Paths([secret.clone()].into_iter().collect()),
                );
                assert_eq!(again.errors.len(), 1);
                assert_eq!(stale(&cache), ["a.yaml"]);
            }
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A directory with `GOOD` in `good.yaml` and `text` in `bad.yaml`, loaded on a thread
    /// that must finish within 20 s (a failure, not a hang, if a file blocks the load).
    fn load_beside_good(name: &str, bad: impl FnOnce(&Path), limits: Limits) -> Loaded {
        let dir = std::env::temp_dir().join(format!("portico-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("good.yaml"), GOOD).unwrap();
        bad(&dir.join("bad.yaml"));
        let (tx, rx) = std::sync::mpsc::channel();
        let load_dir = dir.clone();
        std::thread::spawn(move || {
            let _ = tx.send(load(&load_dir, &limits));
        });
        let loaded = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the load is blocked");
        std::fs::remove_dir_all(&dir).unwrap();
        loaded
    }

    fn assert_only_bad_refused(loaded: &Loaded, expect: &str) {
        assert_eq!(loaded.snapshot.services.len(), 1, "good.yaml still loads");
        assert_eq!(loaded.errors.len(), 1, "{:?}", loaded.errors);
        let message = loaded.errors[0].to_string();
        assert!(message.contains("bad.yaml: "), "{message}");
        assert!(message.contains(expect), "{message}");
    }

    /// Issue 10 item 8: 100,000 levels of nesting (0.2 MiB) took serde_yaml 22–46 s to refuse,
    /// stalling every reload; the depth budget refuses it as it is read.
    #[test]
    fn a_document_nested_100000_levels_is_rejected_and_the_others_load() {
        let depth = 100_000;
        let flow = format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        let loaded = load_beside_good(
            "deep",
            |p| std::fs::write(p, &flow).unwrap(),
            Limits::default(),
        );
        assert_only_bad_refused(&loaded, "document 1: ");
        // Block style nests too: `- ` repeated, each one level deeper.
        let block: String = (0..depth)
            .map(|i| format!("{}- \n", " ".repeat(i % 200)))
            .collect();
        let mut parsed = Loaded::default();
        parse_documents(
            "block.yaml",
            &format!("{GOOD}---\n{}x\n", "- ".repeat(depth)),
            &mut parsed,
        );
        assert_eq!(parsed.snapshot.services.len(), 1);
        assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);
        assert!(parsed.errors[0]
            .to_string()
            .starts_with("block.yaml: document 2: "));
        let mut parsed = Loaded::default();
        parse_documents("indented.yaml", &block, &mut parsed);
        assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);
    }

    /// A "billion laughs": nine levels of ten aliases each would expand to 10^9 strings.
    #[test]
    fn an_alias_bomb_is_rejected_and_the_others_load() {
        let mut bomb = String::from("apiVersion: v1\nkind: Service\nmetadata:\n  name: lol\n");
        bomb.push_str("a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n");
        for i in 1..10 {
            let p = i - 1;
            let refs = vec![format!("*a{p}"); 10].join(", ");
            bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let loaded = load_beside_good(
            "bomb",
            |p| std::fs::write(p, &bomb).unwrap(),
            Limits::default(),
        );
        assert_only_bad_refused(&loaded, "document 1: ");
    }

    /// A FIFO named like a manifest blocked every reload until someone opened it for writing;
    /// it is skipped with an error naming it (so is a socket or device).
    #[test]
    fn a_fifo_in_the_directory_does_not_block_a_load() {
        let loaded = load_beside_good(
            "fifo",
            |p| {
                let made = std::process::Command::new("mkfifo").arg(p).status();
                assert!(matches!(made, Ok(s) if s.success()), "mkfifo: {made:?}");
            },
            Limits::default(),
        );
        assert_only_bad_refused(&loaded, "skipped: not a regular file (a FIFO)");
        assert!(matches!(loaded.errors[0], LoadError::Refused { .. }));
    }

    #[test]
    fn a_file_over_the_size_limit_is_skipped_and_the_others_load() {
        let big = GOOD.replace("name: a", "name: big") + &"# padding\n".repeat(100);
        let limits = Limits {
            max_file_bytes: GOOD.len() as u64 + 10,
        };
        let loaded = load_beside_good("big", |p| std::fs::write(p, &big).unwrap(), limits);
        assert_only_bad_refused(&loaded, "skipped: larger than");
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        let loaded = load(
            Path::new("/nonexistent/portico/manifests"),
            &Limits::default(),
        );
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
        let limits = Limits::default();
        let first = load_cached(&dir, &limits, &mut cache, &Snapshot::default());
        assert_eq!(first, load(&dir, &limits));
        let again = load_cached(&dir, &limits, &mut cache, &first.snapshot);
        assert_eq!(again, load(&dir, &limits));
        // A snapshot the cache does not describe is not trusted: everything is parsed.
        assert_eq!(
            load_cached(&dir, &limits, &mut cache, &Snapshot::default()),
            load(&dir, &limits)
        );

        std::fs::write(dir.join("b.yaml"), service("b2")).unwrap();
        std::fs::write(dir.join("c.yaml"), service("c")).unwrap();
        std::fs::remove_file(dir.join("a.yaml")).unwrap();
        let reloaded = load_cached(&dir, &limits, &mut cache, &again.snapshot);
        assert_eq!(reloaded, load(&dir, &limits));
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

    /// The splice of a clean directory (issue 11): after edits, additions, removals and a
    /// rewrite with the same text, one after another with one cache, each targeted reload
    /// equals a full load, and the files not named keep their objects' `Arc`s.
    #[test]
    fn targeted_reloads_in_a_row_equal_full_loads() {
        let dir = std::env::temp_dir().join(format!("portico-splice-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let service = |name: &str| GOOD.replace("name: a", &format!("name: {name}"));
        let class = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: c\nspec:\n  controller: x\n";
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        write("a.yaml", &service("a"));
        write(
            "b.yaml",
            &format!("{}---\n{class}---\n{}", service("b1"), service("b2")),
        );
        write("empty.yaml", "");
        write("m.yaml", &service("m"));
        write("sub/d.yaml", &service("d"));
        // A kind Portico does not read, beside the ones it does.
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n";
        write("k.yaml", &format!("{deployment}---\n{}", service("k")));
        let limits = Limits::default();
        let mut cache = Cache::default();
        let mut current = load_cached(&dir, &limits, &mut cache, &Snapshot::default());
        assert!(current.errors.is_empty());
        assert_eq!(current.skipped.len(), 1);
        type Step<'a> = (Vec<&'a str>, Box<dyn Fn() + 'a>);
        let steps: Vec<Step<'_>> = vec![
            (vec!["b.yaml"], Box::new(|| write("b.yaml", &service("b3")))),
            (
                vec!["aa.yaml", "m.yaml"],
                Box::new(|| {
                    write("aa.yaml", &format!("{}---\n{class}", service("aa")));
                    std::fs::remove_file(dir.join("m.yaml")).unwrap();
                }),
            ),
            (vec!["a.yaml"], Box::new(|| write("a.yaml", &service("a")))),
            (
                vec!["0.yaml", "empty.yaml", "sub/d.yaml"],
                Box::new(|| {
                    write("0.yaml", &service("zero"));
                    write("empty.yaml", &service("was-empty"));
                    write(
                        "sub/d.yaml",
                        &format!("{}---\n{}", service("d"), service("d2")),
                    );
                }),
            ),
            (
                vec!["b.yaml", "zz.yaml"],
                Box::new(|| {
                    std::fs::remove_file(dir.join("b.yaml")).unwrap();
                    write("zz.yaml", &service("zz"));
                }),
            ),
            (
                vec!["k.yaml", "j.yaml"],
                Box::new(|| {
                    write("k.yaml", &service("k"));
                    write("j.yaml", &format!("{deployment}---\n{deployment}"));
                }),
            ),
            (
                vec!["j.yaml"],
                Box::new(|| std::fs::remove_file(dir.join("j.yaml")).unwrap()),
            ),
        ];
        for (step, (names, edit)) in steps.into_iter().enumerate() {
            edit();
            let mut changed = Changed::Paths(Default::default());
            let named: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
            changed.add(&dir, &named);
            let reloaded = load_changed(&dir, &limits, &mut cache, &current.snapshot, &changed);
            assert_eq!(reloaded, load(&dir, &limits), "step {step}");
            assert_eq!(cache.counts, counts(&reloaded.snapshot), "step {step}");
            // An object of a file no step named is the very same one.
            let a = |s: &Snapshot| {
                s.services
                    .iter()
                    .find(|o| o.metadata.name.as_deref() == Some("a"))
                    .cloned()
                    .unwrap()
            };
            if step != 2 {
                assert!(
                    std::sync::Arc::ptr_eq(&a(&current.snapshot), &a(&reloaded.snapshot)),
                    "step {step}"
                );
            }
            current = reloaded;
        }
        // A full load with the cache the splices left agrees too.
        let again = load_cached(&dir, &limits, &mut cache, &current.snapshot);
        assert_eq!(again, load(&dir, &limits));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_targeted_reload_equals_a_full_load_and_rescans_what_a_path_cannot_say() {
        let dir = std::env::temp_dir().join(format!("portico-targeted-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let service = |name: &str| GOOD.replace("name: a", &format!("name: {name}"));
        for name in ["a", "b", "sub/d"] {
            std::fs::write(
                dir.join(format!("{name}.yaml")),
                service(&name.replace('/', "-")),
            )
            .unwrap();
        }
        std::fs::write(dir.join("bad.yaml"), "a: [unclosed").unwrap();
        let limits = Limits::default();
        let mut cache = Cache::default();
        let first = load_cached(&dir, &limits, &mut cache, &Snapshot::default());

        std::fs::write(dir.join("b.yaml"), service("b2")).unwrap();
        std::fs::write(dir.join("c.yaml"), service("c")).unwrap();
        std::fs::remove_file(dir.join("a.yaml")).unwrap();
        std::fs::write(dir.join(".b.yaml.swp"), "x").unwrap();
        let mut changed = Changed::Paths(Default::default());
        let named: Vec<PathBuf> = ["b.yaml", "c.yaml", "a.yaml", ".b.yaml.swp"]
            .iter()
            .map(|n| dir.join(n))
            .collect();
        changed.add(&dir, &named);
        let Changed::Paths(paths) = &changed else {
            panic!("a file change is not a rescan: {changed:?}");
        };
        assert_eq!(paths.len(), 3, "the hidden swap file is ignored: {paths:?}");
        let reloaded = load_changed(&dir, &limits, &mut cache, &first.snapshot, &changed);
        assert_eq!(reloaded, load(&dir, &limits));
        // Unchanged files' objects are the previous snapshot's, not copies.
        let d = |s: &Snapshot| {
            s.services
                .iter()
                .find(|o| o.metadata.name.as_deref() == Some("sub-d"))
                .cloned()
                .unwrap()
        };
        assert!(std::sync::Arc::ptr_eq(
            &d(&first.snapshot),
            &d(&reloaded.snapshot)
        ));
        assert_eq!(
            reloaded.errors.len(),
            1,
            "the unread bad file is still reported"
        );

        let mut changed = Changed::Paths(Default::default());
        changed.add(&dir, &[dir.join("sub")]);
        assert_eq!(changed, Changed::Everything, "a directory is rescanned");
        let mut changed = Changed::Paths(Default::default());
        changed.add(&dir, &[dir.join("gone")]);
        assert_eq!(
            changed,
            Changed::Everything,
            "a vanished non-manifest path may be a directory"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
