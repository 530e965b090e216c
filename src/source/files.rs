//! Manifests-directory source: reads `*.yaml`, `*.yml` and `*.json` files into a `Snapshot`
//! and watches the directory, so local runs, demos and tests need no cluster.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::Snapshot;

/// One document that could not be used. The rest of the directory still serves.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: cannot read: {message}")]
    Read { file: String, message: String },
    #[error("{file}: document {index}: {message}")]
    Document {
        file: String,
        /// 0-based index of the document within the file.
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
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = match serde_yaml::Value::deserialize(document) {
            Ok(serde_yaml::Value::Null) => continue, // empty document, e.g. a trailing `---`
            Ok(value) => value,
            Err(e) => {
                loaded.errors.push(LoadError::Document {
                    file: file.to_string(),
                    index,
                    message: e.to_string(),
                });
                // A syntax error ends the YAML stream: serde_yaml yields no further documents.
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

fn push<T: DeserializeOwned + Namespaced>(
    value: serde_json::Value,
    into: &mut Vec<T>,
) -> Result<(), String> {
    let mut object: T = serde_json::from_value(value).map_err(|e| e.to_string())?;
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
    into.push(object);
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
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
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
            return loaded;
        }
    };
    for file in files {
        let label = file.display().to_string();
        match std::fs::read_to_string(&file) {
            Ok(text) => parse_documents(&label, &text, &mut loaded),
            Err(e) => loaded.errors.push(LoadError::Read {
                file: label,
                message: e.to_string(),
            }),
        }
    }
    loaded
}
