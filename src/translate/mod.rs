//! Translate: a pure function from a `Snapshot` to a routing table plus per-object conditions.
//!
//! No I/O, no clock, no randomness; the output does not depend on the order of objects in the
//! snapshot. Problems with an object are conditions in the output, never a failed build.

use serde::Serialize;

use crate::routing::RouteTable;
use crate::source::Snapshot;

/// Controller settings that change what translate produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Matched against `IngressClass.spec.controller` (spec §2).
    pub controller_name: String,
    /// Accepted value of the deprecated `kubernetes.io/ingress.class` annotation (spec §2).
    pub annotation_class: String,
    /// Own Ingresses that carry no class information (spec §2 step 3).
    pub watch_without_class: bool,
    /// Controller-configured default Service `namespace/name` (spec §3.7 step 2).
    pub default_backend_service: Option<(String, String)>,
    /// Route to ExternalName Services (spec §4.5); off refuses them all.
    pub external_name: bool,
    /// Use IPv6 endpoints (spec §4.2 step 2).
    pub ipv6: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            controller_name: "portico.dev/ingress-controller".to_string(),
            annotation_class: "portico".to_string(),
            watch_without_class: false,
            default_backend_service: None,
            external_name: true,
            ipv6: true,
        }
    }
}

/// A reference to the object a condition is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Why an object is only partly (or not) programmed. Each becomes a Warning Event (spec §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Reason {
    /// The Ingress has neither rules nor a default backend, or nothing usable in them.
    InvalidIngress,
    /// A rule host is not a valid DNS-1123 subdomain or `*.` wildcard of one (spec §1.1).
    InvalidHost,
    /// A path violates the syntax for its pathType (spec §1.1); the path is skipped.
    InvalidPath,
    /// A backend reference is malformed (neither or both of service/resource, bad port).
    InvalidBackend,
    ServiceNotFound,
    ServicePortNotFound,
    /// The Service port's protocol is not TCP (spec §4.1 step 2).
    ServicePortNotTcp,
    ResourceBackendUnsupported,
    ExternalNameRejected,
    ExternalNameDisabled,
    /// Another route with the same match set outranks this one (spec §3.6).
    PathShadowed,
    /// Another, older rule-less Ingress provides the global default backend (spec §3.7).
    DefaultBackendShadowed,
}

/// One problem with one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Condition {
    pub object: ObjectRef,
    pub reason: Reason,
    pub message: String,
}

/// What translate produces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Translation {
    pub table: RouteTable,
    /// Sorted by object, then reason, then message.
    pub conditions: Vec<Condition>,
    /// The Ingresses this controller owns (spec §2), sorted.
    pub owned: Vec<ObjectRef>,
}

/// Turns a snapshot into a routing table and conditions (spec §2–§4).
pub fn translate(snapshot: &Snapshot, options: &Options) -> Translation {
    let _ = (snapshot, options);
    todo!("implemented by the translate work")
}
