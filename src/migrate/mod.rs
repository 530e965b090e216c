//! `portico migrate`: an offline report for users of ingress-nginx, before they switch (spec
//! page `ingress-nginx.md` §7). It sits beside the controller's flow, not in it: manifests are
//! read with the manifests source's hardening ([`load`]), nothing is translated, served or
//! contacted. Each Ingress's `nginx.ingress.kubernetes.io/*` and `portico.dev/*` annotations and
//! the controller ConfigMap's keys get a verdict from the one [`catalog`], which the migration
//! guide's tables and translate's annotation lists are tested against.
//!
//! Exit code: 0 when nothing blocks, 1 when something does, 2 when the input cannot be read.

pub mod catalog;
pub mod load;
mod report;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde::Serialize;

pub use catalog::{Status, Verdict};
pub use load::Inventory;

const NGINX: &str = "nginx.ingress.kubernetes.io/";
const PORTICO: &str = "portico.dev/";
/// The deprecated class annotation; non-empty, it decides on its own (spec §2 step 1).
const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// Portico's class: the default of `--ingress-class` and the name of the IngressClass in
/// `deploy/base/ingressclass.yaml`.
pub const PORTICO_CLASS: &str = "portico";
/// The default of `--controller-name`: an IngressClass of the input with this controller is
/// Portico's too.
pub const PORTICO_CONTROLLER: &str = "portico.dev/ingress-controller";
/// The controller ConfigMap's name in ingress-nginx's static manifests (`--configmap
/// $(POD_NAMESPACE)/ingress-nginx-controller`) and, as a suffix, in its Helm chart
/// (`charts/ingress-nginx/templates/controller-configmap.yaml`: the controller's full name,
/// `RELEASE-ingress-nginx-controller` unless the release name holds `ingress-nginx`); used
/// when `--configmap` names none.
pub const DEFAULT_CONFIGMAP: &str = "ingress-nginx-controller";
/// The version of the JSON report's schema (docs/migrating-from-ingress-nginx.md).
pub const SCHEMA: &str = "portico.dev/migrate/v1";

/// The report, as `-o json` prints it (documented in docs/migrating-from-ingress-nginx.md).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub schema: &'static str,
    /// Documents that could not be read (`file: document N: why`); their objects are missing.
    pub skipped_documents: Vec<String>,
    /// Sorted by namespace, then name.
    pub ingresses: Vec<IngressReport>,
    /// The controller ConfigMap reported, if the input holds one.
    pub configmap: Option<ConfigMapReport>,
    pub totals: Totals,
    pub exit_code: u8,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressReport {
    pub namespace: String,
    pub name: String,
    pub class: ClassReport,
    /// Every annotation under either prefix, sorted by key.
    pub annotations: Vec<Item>,
    /// An annotation blocks: under Portico today every path of this Ingress answers 503.
    pub blocks: bool,
}

/// Whether Portico would serve the Ingress as its class stands, and what to change if not.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassReport {
    /// Where the class comes from: `annotation` (kubernetes.io/ingress.class), `field`
    /// (spec.ingressClassName) or `none`.
    pub source: &'static str,
    pub value: Option<String>,
    /// Portico serves it with its default `--ingress-class` / `--controller-name`.
    pub portico: bool,
    /// What to change when it is not Portico's.
    pub change: Option<String>,
}

/// One annotation or ConfigMap key and its verdict.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// The full annotation key, or the ConfigMap key.
    pub key: String,
    /// Without prefix: the catalogue's name.
    pub name: String,
    pub verdict: Verdict,
    /// The migration guide's status (`planned (issue 13)`...); `null` for a name ingress-nginx
    /// did not have.
    pub status: Option<String>,
    pub note: String,
    /// The annotation is also set under `portico.dev/`, whose value wins (spec page §2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden_by: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapReport {
    pub namespace: String,
    pub name: String,
    /// `flag` (`--configmap`) or `default-name` (named `ingress-nginx-controller`, or
    /// `...-ingress-nginx-controller` as the Helm chart names it).
    pub selected_by: &'static str,
    /// Other ConfigMaps with such a name in the input, not reported.
    pub others: Vec<String>,
    /// Every key of its `data`, sorted.
    pub keys: Vec<Item>,
}

/// How many of each verdict; the JSON keys are the verdicts' spellings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Counts {
    pub honoured: usize,
    pub honoured_with_difference: usize,
    pub ignored: usize,
    pub dropped: usize,
    pub blocks: usize,
}

impl Counts {
    fn add(&mut self, verdict: Verdict) {
        *self.slot(verdict) += 1;
    }

    fn slot(&mut self, verdict: Verdict) -> &mut usize {
        match verdict {
            Verdict::Honoured => &mut self.honoured,
            Verdict::HonouredWithDifference => &mut self.honoured_with_difference,
            Verdict::Ignored => &mut self.ignored,
            Verdict::Dropped => &mut self.dropped,
            Verdict::Blocks => &mut self.blocks,
        }
    }

    pub fn get(&self, verdict: Verdict) -> usize {
        match verdict {
            Verdict::Honoured => self.honoured,
            Verdict::HonouredWithDifference => self.honoured_with_difference,
            Verdict::Ignored => self.ignored,
            Verdict::Dropped => self.dropped,
            Verdict::Blocks => self.blocks,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub ingresses: usize,
    /// Ingresses with an annotation that blocks.
    pub ingresses_blocked: usize,
    /// Ingresses whose class must change for Portico to serve them.
    pub class_changes: usize,
    pub annotations: Counts,
    pub configmap_keys: Counts,
}

/// Why the report could not be made (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Input(#[from] crate::source::files::LoadError),
    /// Documents were given and none of them could be read: there is nothing to report on.
    #[error("no document of the input could be read; first: {0}")]
    Unreadable(String),
    #[error("--configmap {0}: not NAMESPACE/NAME")]
    ConfigMapName(String),
    #[error("--configmap {0}: no such ConfigMap in the input")]
    ConfigMapMissing(String),
}

/// Builds the report for what was read; `configmap` is `--configmap`'s NAMESPACE/NAME.
pub fn report(inventory: &Inventory, configmap: Option<&str>) -> Result<Report, Error> {
    if let (0, Some(first)) = (inventory.objects, inventory.problems.first()) {
        return Err(Error::Unreadable(first.to_string()));
    }
    let mut totals = Totals::default();
    // An Ingress given twice (two files, two exports) is reported once, as the last copy:
    // what `kubectl apply` of the stream would leave. Reversed, then a stable sort, then the
    // first of equal names kept.
    let mut ingresses: Vec<IngressReport> = inventory
        .ingresses
        .iter()
        .rev()
        .map(|ingress| ingress_report(ingress, &inventory.classes))
        .collect();
    ingresses.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    ingresses.dedup_by(|b, a| (&a.namespace, &a.name) == (&b.namespace, &b.name));
    for ingress in &ingresses {
        totals.ingresses += 1;
        totals.ingresses_blocked += usize::from(ingress.blocks);
        totals.class_changes += usize::from(!ingress.class.portico);
        for item in &ingress.annotations {
            totals.annotations.add(item.verdict);
        }
    }
    let configmap = select_configmap(&inventory.configmaps, configmap)?.map(
        |(configmap, selected_by, others)| {
            let keys = configmap_items(configmap);
            for item in &keys {
                totals.configmap_keys.add(item.verdict);
            }
            ConfigMapReport {
                namespace: namespace_of(&configmap.metadata),
                name: configmap.metadata.name.clone().unwrap_or_default(),
                selected_by,
                others,
                keys,
            }
        },
    );
    let blocks = totals.annotations.blocks + totals.configmap_keys.blocks > 0;
    Ok(Report {
        schema: SCHEMA,
        skipped_documents: inventory.problems.iter().map(ToString::to_string).collect(),
        ingresses,
        configmap,
        totals,
        exit_code: u8::from(blocks),
    })
}

impl Report {
    /// The text for people.
    pub fn text(&self) -> String {
        report::text(self)
    }
}

fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace
        .clone()
        .unwrap_or_else(|| "default".to_string())
}

fn ingress_report(ingress: &Ingress, classes: &[IngressClass]) -> IngressReport {
    let empty = BTreeMap::new();
    let annotations = ingress.metadata.annotations.as_ref().unwrap_or(&empty);
    let items: Vec<Item> = annotations
        .keys()
        .filter_map(|key| {
            let (prefix, name) = if let Some(name) = key.strip_prefix(PORTICO) {
                (PORTICO, name)
            } else {
                (NGINX, key.strip_prefix(NGINX)?)
            };
            let mut item = annotation_item(key, name);
            let portico_key = format!("{PORTICO}{name}");
            if prefix == NGINX && annotations.contains_key(&portico_key) {
                item.overridden_by = Some(portico_key);
            }
            Some(item)
        })
        .collect();
    IngressReport {
        namespace: namespace_of(&ingress.metadata),
        name: ingress.metadata.name.clone().unwrap_or_default(),
        class: class_report(ingress, annotations, classes),
        blocks: items.iter().any(|i| i.verdict == Verdict::Blocks),
        annotations: items,
    }
}

/// The verdict on one annotation: the catalogue's; for a name ingress-nginx did not have, what
/// translate does with it (`translate/annotations.rs`): a snippet is dropped, anything else
/// ignored with an `UnsupportedAnnotation` warning.
fn annotation_item(key: &str, name: &str) -> Item {
    let (verdict, status, note) = match catalog::annotation(name) {
        Some(entry) => (
            entry.status.verdict(),
            Some(entry.status.guide()),
            entry.note.to_string(),
        ),
        None if crate::translate::IMPLEMENTED.contains(&name) => (
            Verdict::Honoured,
            None,
            "Portico's own annotation (docs/annotations.md).".to_string(),
        ),
        None if crate::translate::ACCESS_CONTROL.contains(&name) => (
            Verdict::Blocks,
            None,
            "Access control Portico does not enforce: the Ingress fails closed (503).".to_string(),
        ),
        None if name.ends_with("-snippet") => (
            Verdict::Dropped,
            None,
            "Not an ingress-nginx annotation; dropped like every snippet, never interpreted."
                .to_string(),
        ),
        None => (
            Verdict::Ignored,
            None,
            "Not an annotation of ingress-nginx's final release (a typo?): ignored with an UnsupportedAnnotation warning.".to_string(),
        ),
    };
    Item {
        key: key.to_string(),
        name: name.to_string(),
        verdict,
        status,
        note,
        overridden_by: None,
    }
}

/// The controller ConfigMap's keys. A key that restricts access for every Ingress but holds
/// nothing restricts nothing, so it does not block.
fn configmap_items(configmap: &ConfigMap) -> Vec<Item> {
    let Some(data) = configmap.data.as_ref() else {
        return Vec::new();
    };
    data.iter()
        .map(|(key, value)| {
            let (mut verdict, status, mut note) = match catalog::configmap_key(key) {
                Some(entry) => (
                    entry.status.verdict(),
                    Some(entry.status.guide()),
                    entry.note.to_string(),
                ),
                None if key.ends_with("-snippet") => (
                    Verdict::Dropped,
                    None,
                    "Not a key of ingress-nginx's final release; dropped like every snippet."
                        .to_string(),
                ),
                None => (
                    Verdict::Ignored,
                    None,
                    "Not a key of ingress-nginx's final release (a typo?): ignored.".to_string(),
                ),
            };
            if verdict == Verdict::Blocks {
                if value.trim().is_empty() {
                    verdict = Verdict::Ignored;
                    note = format!("Empty, so it restricts nothing. {note}");
                } else {
                    note = format!(
                        "Not enforced by Portico yet: switching now serves every Ingress without it. {note}"
                    );
                }
            }
            Item {
                key: key.clone(),
                name: key.clone(),
                verdict,
                status,
                note,
                overridden_by: None,
            }
        })
        .collect()
}

type Selected<'a> = (&'a ConfigMap, &'static str, Vec<String>);

/// `--configmap`'s ConfigMap, else the one named `ingress-nginx-controller`, else one named
/// `...-ingress-nginx-controller` (the first by namespace and name when several are; the
/// others are named in the report).
fn select_configmap<'a>(
    configmaps: &'a [ConfigMap],
    wanted: Option<&str>,
) -> Result<Option<Selected<'a>>, Error> {
    let id = |c: &ConfigMap| {
        (
            namespace_of(&c.metadata),
            c.metadata.name.clone().unwrap_or_default(),
        )
    };
    if let Some(wanted) = wanted {
        let (namespace, name) = wanted
            .split_once('/')
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
            .ok_or_else(|| Error::ConfigMapName(wanted.to_string()))?;
        // The last of duplicates, as `kubectl apply` of the stream would leave it.
        return configmaps
            .iter()
            .rev()
            .find(|c| id(c) == (namespace.to_string(), name.to_string()))
            .map(|c| Some((c, "flag", Vec::new())))
            .ok_or_else(|| Error::ConfigMapMissing(wanted.to_string()));
    }
    let suffix = format!("-{DEFAULT_CONFIGMAP}");
    let mut found: Vec<&ConfigMap> = configmaps
        .iter()
        .filter(|c| {
            c.metadata
                .name
                .as_deref()
                .is_some_and(|n| n == DEFAULT_CONFIGMAP || n.ends_with(&suffix))
        })
        .collect();
    // The exact name first.
    found.sort_by_key(|c| (c.metadata.name.as_deref() != Some(DEFAULT_CONFIGMAP), id(c)));
    found.dedup_by_key(|c| id(c));
    let Some(first) = found.first() else {
        return Ok(None);
    };
    let others = found[1..]
        .iter()
        .map(|c| {
            let (ns, name) = id(c);
            format!("{ns}/{name}")
        })
        .collect();
    Ok(Some((first, "default-name", others)))
}

/// Whether Portico would serve the Ingress with its default class flags, following translate's
/// class rules (spec §2) with Portico's IngressClass assumed present as `portico`
/// (`kubectl get ingress,configmap` does not export IngressClasses).
fn class_report(
    ingress: &Ingress,
    annotations: &BTreeMap<String, String>,
    classes: &[IngressClass],
) -> ClassReport {
    let ours = |name: &str| {
        name == PORTICO_CLASS
            || classes.iter().any(|c| {
                c.metadata.name.as_deref() == Some(name)
                    && c.spec.as_ref().and_then(|s| s.controller.as_deref())
                        == Some(PORTICO_CONTROLLER)
            })
    };
    if let Some(value) = annotations.get(CLASS_ANNOTATION).filter(|v| !v.is_empty()) {
        let portico = value == PORTICO_CLASS;
        return ClassReport {
            source: "annotation",
            value: Some(value.clone()),
            portico,
            change: (!portico).then(|| {
                format!("change the annotation {CLASS_ANNOTATION} from {value:?} to \"{PORTICO_CLASS}\" (while it is set, spec.ingressClassName is not read)")
            }),
        };
    }
    let field = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.clone())
        .filter(|n| !n.is_empty());
    if let Some(value) = field {
        let portico = ours(&value);
        return ClassReport {
            source: "field",
            change: (!portico).then(|| {
                format!("change spec.ingressClassName from {value:?} to \"{PORTICO_CLASS}\"")
            }),
            value: Some(value),
            portico,
        };
    }
    let default_is_ours = classes.iter().any(|c| {
        c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(PORTICO_CONTROLLER)
            && c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .is_some_and(|v| v == "true")
    });
    ClassReport {
        source: "none",
        value: None,
        portico: default_is_ours,
        change: (!default_is_ours).then(|| {
            format!("set spec.ingressClassName: {PORTICO_CLASS} (without a class Portico serves it only with --watch-ingress-without-class)")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configmap(namespace: &str, name: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.namespace = Some(namespace.into());
        c.metadata.name = Some(name.into());
        c
    }

    fn ingress(annotations: &[(&str, &str)], class: Option<&str>) -> Ingress {
        let mut i = Ingress::default();
        i.metadata.namespace = Some("ns".into());
        i.metadata.name = Some("i".into());
        i.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        i.spec = Some(k8s_openapi::api::networking::v1::IngressSpec {
            ingress_class_name: class.map(Into::into),
            ..Default::default()
        });
        i
    }

    #[test]
    fn the_default_configmap_is_found_by_its_name_or_the_helm_charts() {
        let other = [configmap("a", "other")];
        assert!(select_configmap(&other, None).unwrap().is_none());
        let helm = [configmap("ingress", "edge-ingress-nginx-controller")];
        let (c, by, others) = select_configmap(&helm, None).unwrap().unwrap();
        assert_eq!(
            (c.metadata.name.as_deref(), by),
            (Some("edge-ingress-nginx-controller"), "default-name")
        );
        assert!(others.is_empty());
        // The exact name wins over the chart's; the rest are named, not mixed in.
        let several = [
            configmap("z", "ingress-nginx-controller"),
            configmap("a", "x-ingress-nginx-controller"),
            configmap("b", "ingress-nginx-controller"),
        ];
        let (c, _, others) = select_configmap(&several, None).unwrap().unwrap();
        assert_eq!(c.metadata.namespace.as_deref(), Some("b"));
        assert_eq!(
            others,
            ["z/ingress-nginx-controller", "a/x-ingress-nginx-controller"]
        );
        // The flag names exactly one, or the input is wrong.
        let (c, by, _) = select_configmap(&several, Some("a/x-ingress-nginx-controller"))
            .unwrap()
            .unwrap();
        assert_eq!((c.metadata.namespace.as_deref(), by), (Some("a"), "flag"));
        assert!(matches!(
            select_configmap(&several, Some("a/nope")),
            Err(Error::ConfigMapMissing(_))
        ));
        for bad in ["nope", "/x", "a/", "a/b/c"] {
            assert!(
                matches!(
                    select_configmap(&several, Some(bad)),
                    Err(Error::ConfigMapName(_))
                ),
                "{bad}"
            );
        }
    }

    /// A non-empty `kubernetes.io/ingress.class` decides on its own and the field is not read
    /// (spec §2 step 1, `translate/class.rs`): the report says which one to change.
    #[test]
    fn the_class_line_names_what_decides() {
        let annotated = ingress(&[(CLASS_ANNOTATION, "nginx")], Some("portico"));
        let class = class_report(
            &annotated,
            annotated.metadata.annotations.as_ref().unwrap(),
            &[],
        );
        assert_eq!((class.source, class.portico), ("annotation", false));
        let field = ingress(&[], Some("nginx"));
        let class = class_report(&field, &BTreeMap::new(), &[]);
        assert_eq!((class.source, class.portico), ("field", false));
        assert!(class.change.unwrap().contains("spec.ingressClassName"));
        let ours = ingress(&[], Some("portico"));
        assert!(class_report(&ours, &BTreeMap::new(), &[]).portico);

        // A class-less Ingress is Portico's when the input's default IngressClass is.
        let mut default = IngressClass::default();
        default.metadata.name = Some("edge".into());
        default.metadata.annotations =
            Some([(DEFAULT_CLASS_ANNOTATION.to_string(), "true".to_string())].into());
        default.spec = Some(k8s_openapi::api::networking::v1::IngressClassSpec {
            controller: Some(PORTICO_CONTROLLER.into()),
            ..Default::default()
        });
        let classless = ingress(&[], None);
        assert!(!class_report(&classless, &BTreeMap::new(), &[]).portico);
        assert!(class_report(&classless, &BTreeMap::new(), &[default]).portico);
    }

    #[test]
    fn an_ingress_given_twice_is_reported_once_as_the_last_copy() {
        let inventory = Inventory {
            ingresses: vec![
                ingress(&[("nginx.ingress.kubernetes.io/auth-type", "basic")], None),
                ingress(&[("nginx.ingress.kubernetes.io/use-regex", "true")], None),
            ],
            ..Default::default()
        };
        let report = report(&inventory, None).unwrap();
        assert_eq!(report.ingresses.len(), 1);
        assert_eq!(report.ingresses[0].annotations[0].name, "use-regex");
        assert_eq!(report.exit_code, 0);
    }

    #[test]
    fn both_prefixes_are_judged_and_portico_wins() {
        let i = ingress(
            &[
                ("nginx.ingress.kubernetes.io/load-balance", "ewma"),
                ("portico.dev/load-balance", "round_robin"),
                ("portico.dev/server-snippet", "x"),
                ("portico.dev/made-up-snippet", "x"),
                ("nginx.ingress.kubernetes.io/auth-type", "basic"),
                ("example.com/other", "x"),
            ],
            Some("portico"),
        );
        let report = ingress_report(&i, &[]);
        let got: Vec<_> = report
            .annotations
            .iter()
            .map(|a| (a.key.as_str(), a.verdict, a.overridden_by.is_some()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "nginx.ingress.kubernetes.io/auth-type",
                    Verdict::HonouredWithDifference,
                    false
                ),
                (
                    "nginx.ingress.kubernetes.io/load-balance",
                    Verdict::HonouredWithDifference,
                    true
                ),
                (
                    "portico.dev/load-balance",
                    Verdict::HonouredWithDifference,
                    false
                ),
                ("portico.dev/made-up-snippet", Verdict::Dropped, false),
                ("portico.dev/server-snippet", Verdict::Dropped, false),
            ]
        );
        // Every access-control annotation is enforced since issues 14 and 15: nothing blocks.
        assert!(!report.blocks);
    }
}
