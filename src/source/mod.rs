//! Sources collect objects into a `Snapshot`; nothing downstream knows which source it came from.

pub mod files;
pub mod kube;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

/// Every object the translate step reads, as the source last saw them.
///
/// Order carries no meaning: translate sorts what it needs (spec §0 age order).
///
/// Objects sit behind `Arc`, so a new snapshot after one change copies pointers, not objects:
/// the kube source hands on the reflector's own `Arc`s, the manifests source reuses the `Arc`s
/// of files that did not change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub ingresses: Vec<Arc<Ingress>>,
    pub ingress_classes: Vec<Arc<IngressClass>>,
    pub services: Vec<Arc<Service>>,
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    pub secrets: Vec<Arc<Secret>>,
}

impl Snapshot {
    /// Number of objects of all kinds.
    pub fn len(&self) -> usize {
        self.ingresses.len()
            + self.ingress_classes.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
