//! Ingress class selection (spec §2): which Ingresses this controller owns.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use super::Options;

/// The deprecated class annotation (spec §2 step 1).
pub const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// Marks the cluster default IngressClass (spec §1.3).
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// What translate needs to know about IngressClasses, computed once per snapshot.
#[derive(Debug, Default)]
pub struct Classes {
    /// Class name → whether it is one of ours. A name listed twice (not possible in a real
    /// cluster) counts as ours if any copy is, so the answer does not depend on order.
    ours: BTreeMap<String, bool>,
    /// One of our classes is marked as the cluster default.
    default_is_ours: bool,
}

impl Classes {
    pub fn new(classes: &[std::sync::Arc<IngressClass>], options: &Options) -> Self {
        let mut out = Classes::default();
        for class in classes {
            let Some(name) = class.metadata.name.as_deref() else {
                continue;
            };
            let ours = class
                .spec
                .as_ref()
                .and_then(|s| s.controller.as_deref())
                .is_some_and(|c| c == options.controller_name);
            *out.ours.entry(name.to_string()).or_insert(false) |= ours;
            let is_default = class
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .is_some_and(|v| v == "true");
            out.default_is_ours |= ours && is_default;
        }
        out
    }

    fn is_ours(&self, name: &str) -> bool {
        self.ours.get(name).copied().unwrap_or(false)
    }

    /// Whether this controller owns the Ingress (spec §2 decision procedure). Ingresses being
    /// deleted are treated as absent (spec §3.8).
    pub fn owns(&self, ingress: &Ingress, options: &Options) -> bool {
        if ingress.metadata.deletion_timestamp.is_some() {
            return false;
        }
        let annotation = ingress
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CLASS_ANNOTATION))
            .map(String::as_str)
            .unwrap_or_default();
        // spec §2 step 1: a non-empty annotation decides; the field is not consulted.
        if !annotation.is_empty() {
            return annotation == options.annotation_class || self.is_ours(annotation);
        }
        // spec §2 step 2: the field must name an existing class of ours.
        if let Some(name) = ingress
            .spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.as_deref())
            .filter(|n| !n.is_empty())
        {
            return self.is_ours(name);
        }
        // spec §2 step 3: no class information at all.
        self.default_is_ours || options.watch_without_class
    }
}
