//! `portico migrate`'s input: the Ingresses, IngressClasses and ConfigMaps of a manifests
//! directory, a file or standard input (`kubectl get ingress,configmap -A -o yaml`, a
//! `kind: List`). Read with the manifests source's hardening (`source::files`): regular files
//! only, the size cap, the YAML parser's depth, node and alias budgets. ConfigMaps are read
//! here rather than by the source, which keeps only what translate needs.

use std::path::Path;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde::de::DeserializeOwned;

use crate::source::files::{self, Limits, LoadError};

/// What the input holds for the report.
#[derive(Debug, Default)]
pub struct Inventory {
    pub ingresses: Vec<Ingress>,
    pub classes: Vec<IngressClass>,
    pub configmaps: Vec<ConfigMap>,
    /// Documents (or List items) that could not be used: each is named in the report and its
    /// object is missing from it; the rest is still reported.
    pub problems: Vec<LoadError>,
    /// Objects read (of any kind, List items counted one by one).
    pub objects: usize,
}

/// Reads `input` (a directory, a file, or `-` for standard input). `Err` when the input itself
/// cannot be read — a missing path, an I/O error, a file refused by the limits — since the
/// report would silently miss its objects (exit 2).
pub fn load(input: &Path, limits: &Limits) -> Result<Inventory, LoadError> {
    let mut inventory = Inventory::default();
    if input.as_os_str() == "-" {
        let text = read_stdin(limits)?;
        parse("<stdin>", &text, &mut inventory);
        return Ok(inventory);
    }
    let paths = if input.is_file() {
        vec![input.to_path_buf()]
    } else {
        files::manifest_files(input).map_err(|e| LoadError::Read {
            file: input.display().to_string(),
            message: e.to_string(),
        })?
    };
    for path in paths {
        let text = files::read_file(&path, limits)?;
        parse(&path.display().to_string(), &text, &mut inventory);
    }
    Ok(inventory)
}

fn read_stdin(limits: &Limits) -> Result<String, LoadError> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(limits.max_file_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| LoadError::Read {
            file: "<stdin>".to_string(),
            message: e.to_string(),
        })?;
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(LoadError::Refused {
            file: "<stdin>".to_string(),
            reason: format!(
                "larger than {} bytes (--manifests-max-file-size)",
                limits.max_file_bytes
            ),
        });
    }
    String::from_utf8(bytes).map_err(|_| LoadError::Read {
        file: "<stdin>".to_string(),
        message: "stream did not contain valid UTF-8".to_string(),
    })
}

/// Parses every document of one file's text into `inventory`; a document that does not parse
/// is a problem, and the documents after it are still read (`files::split_documents`).
pub fn parse(file: &str, text: &str, inventory: &mut Inventory) {
    for (index, document) in files::split_documents(text).into_iter().enumerate() {
        let index = index + 1;
        match serde_saphyr::from_str_with_options::<serde_json::Value>(
            document,
            files::yaml_options(),
        ) {
            Ok(serde_json::Value::Null) => {}
            Ok(value) => add(file, index, value, inventory),
            Err(e) => inventory.problems.push(LoadError::Document {
                file: file.to_string(),
                index,
                message: files::one_line(&e.to_string()),
            }),
        }
    }
}

fn add(file: &str, index: usize, value: serde_json::Value, inventory: &mut Inventory) {
    let problem = |message: String| LoadError::Document {
        file: file.to_string(),
        index,
        message,
    };
    let (api_version, kind) = match files::type_of(&value) {
        Ok(found) => found,
        Err(why) => return inventory.problems.push(problem(why.to_string())),
    };
    if kind != "List" {
        inventory.objects += 1;
    }
    let result = match (api_version.as_str(), kind.as_str()) {
        ("v1", "List") => {
            // `kubectl get -o yaml`. Nesting is bounded by the parser's depth budget.
            let items = match value {
                serde_json::Value::Object(mut map) => match map.remove("items") {
                    Some(serde_json::Value::Array(items)) => items,
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            };
            for item in items {
                add(file, index, item, inventory);
            }
            return;
        }
        ("networking.k8s.io/v1", "Ingress") => {
            typed::<Ingress>(value, true).map(|i| inventory.ingresses.push(i))
        }
        ("networking.k8s.io/v1", "IngressClass") => {
            typed::<IngressClass>(value, false).map(|c| inventory.classes.push(c))
        }
        ("v1", "ConfigMap") => {
            typed::<ConfigMap>(value, true).map(|c| inventory.configmaps.push(c))
        }
        // Services, Secrets, Deployments...: nothing to migrate in them.
        _ => return,
    };
    if let Err(message) = result {
        inventory
            .problems
            .push(problem(format!("{api_version} {kind}: {message}")));
    }
}

/// The object's metadata, for [`typed`].
trait Meta {
    fn meta(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
}

impl Meta for Ingress {
    fn meta(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &mut self.metadata
    }
}
impl Meta for IngressClass {
    fn meta(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &mut self.metadata
    }
}
impl Meta for ConfigMap {
    fn meta(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &mut self.metadata
    }
}

/// As the manifests source reads objects: a name is required; a missing namespace is
/// `default`, as `kubectl apply` would make it.
fn typed<T: DeserializeOwned + Meta>(
    value: serde_json::Value,
    namespaced: bool,
) -> Result<T, String> {
    let mut object: T = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let meta = object.meta();
    if meta.name.as_deref().unwrap_or_default().is_empty() {
        return Err("metadata.name is missing".to_string());
    }
    if namespaced && meta.namespace.as_deref().unwrap_or_default().is_empty() {
        meta.namespace = Some("default".to_string());
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_documents_are_read_and_garbage_is_a_problem() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.k8s.io/v1\n  kind: Ingress\n  metadata: {name: a, namespace: x}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c, namespace: cm}\n  data: {hsts: \"false\"}\n---\n{{{\n---\nkind: Ingress\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: b}\nspec: {rules: 7}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: c}\n";
        let mut inventory = Inventory::default();
        parse("f", text, &mut inventory);
        let names: Vec<_> = inventory
            .ingresses
            .iter()
            .map(|i| (i.metadata.namespace.clone(), i.metadata.name.clone()))
            .collect();
        assert_eq!(
            names,
            [
                (Some("x".into()), Some("a".into())),
                (Some("default".into()), Some("c".into()))
            ]
        );
        assert_eq!(inventory.configmaps.len(), 1, "{:?}", inventory.problems);
        // The broken flow mapping, the kind-only document, the Ingress whose rules are a number.
        assert_eq!(inventory.problems.len(), 3, "{:?}", inventory.problems);
    }

    #[test]
    fn hostile_yaml_is_refused_by_the_budgets() {
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        let mut inventory = Inventory::default();
        parse("deep", &deep, &mut inventory);
        assert_eq!(inventory.problems.len(), 1);
        let laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
        let mut inventory = Inventory::default();
        parse("laughs", laughs, &mut inventory);
        assert_eq!(inventory.problems.len(), 1);
    }
}
