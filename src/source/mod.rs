//! Sources collect objects into a `Snapshot`; nothing downstream knows which source it came from.

pub mod files;
pub mod kube;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Every object the translate step reads, as the source last saw them.
///
/// Order carries no meaning: translate sorts what it needs (spec §0 age order).
///
/// Objects sit behind `Arc`, so a new snapshot after one change copies pointers, not objects:
/// the kube source hands on the reflector's own `Arc`s, the manifests source reuses the `Arc`s
/// of files that did not change.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub ingresses: Vec<Arc<Ingress>>,
    pub ingress_classes: Vec<Arc<IngressClass>>,
    pub services: Vec<Arc<Service>>,
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    pub secrets: Vec<Arc<Secret>>,
    /// The controller ConfigMap (`--configmap`) and the ConfigMaps annotations and its keys
    /// reference (`custom-headers`, `add-headers`, `proxy-set-headers`): `ingress-nginx.md` §4,
    /// §6. Only `data` is kept.
    pub config_maps: Vec<Arc<ConfigMap>>,
}

/// Equal objects, compared by pointer first: after one change, all but a few are the same `Arc`,
/// so comparing two snapshots costs pointers, not a walk through every object.
fn same<T: PartialEq>(a: &[Arc<T>], b: &[Arc<T>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y) || x == y)
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        same(&self.ingresses, &other.ingresses)
            && same(&self.ingress_classes, &other.ingress_classes)
            && same(&self.services, &other.services)
            && same(&self.endpoint_slices, &other.endpoint_slices)
            && same(&self.secrets, &other.secrets)
            && same(&self.config_maps, &other.config_maps)
    }
}

impl Snapshot {
    /// Number of objects of all kinds.
    pub fn len(&self) -> usize {
        self.ingresses.len()
            + self.ingress_classes.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.secrets.len()
            + self.config_maps.len()
    }

    /// The ConfigMap `namespace/name`, if the source holds it.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&Arc<ConfigMap>> {
        self.config_maps.iter().find(|c| {
            c.metadata.namespace.as_deref() == Some(namespace)
                && c.metadata.name.as_deref() == Some(name)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The annotation `kubectl apply` leaves behind: a full copy of the object nobody here reads.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The Secret keys translate reads (spec §5.1 `tls.crt`/`tls.key`; `ca.crt` for the backend CA
/// annotation, with `ca.crl` for client certificates; `auth` for basic authentication's htpasswd
/// content). Everything else in a
/// Secret is someone else's and is not kept in memory, except in `Opaque` Secrets (see
/// [`keeps_every_key`]).
pub const SECRET_KEYS: [&str; 5] = ["tls.crt", "tls.key", "ca.crt", "ca.crl", "auth"];

/// Whether a Secret keeps all its keys: `Opaque` ones (or untyped ones from a manifest) may be
/// an `auth-secret-type: auth-map`, whose keys are user names (issue 15). Helm releases,
/// service-account tokens and registry credentials have types of their own and stay trimmed;
/// the kube source watches only `kubernetes.io/tls` Secrets anyway (docs/decisions.md).
pub fn keeps_every_key(secret: &Secret) -> bool {
    matches!(secret.type_.as_deref(), None | Some("Opaque"))
}

/// What each kind keeps in memory, and which changes matter to translate.
///
/// Sources trim every object as it arrives (both sources, so both hold the same bytes), keeping
/// only what translate, status and events read: at 20,000 Ingresses the rest (managedFields,
/// Service status, EndpointSlice topology, foreign Secret keys) is most of the memory.
pub trait Trim {
    /// Drops what nobody downstream reads.
    fn trim(&mut self);
    /// Whether `self` and `other` translate the same: equal apart from `resourceVersion` and
    /// status. A watch event for which this holds (our own status write coming back, a
    /// managedFields-only update, a relist) costs no rebuild (issue 11 item 6).
    fn same_for_translate(&self, other: &Self) -> bool;
    /// Whether the parts `status/` reads differ (only Ingresses have any).
    fn status_differs(&self, _other: &Self) -> bool {
        false
    }
}

fn trim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    meta.owner_references = None;
    meta.finalizers = None;
    meta.generate_name = None;
    meta.generation = None;
    meta.self_link = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// Metadata equal apart from `resourceVersion` (which every write bumps).
fn same_meta(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    a.name == b.name
        && a.namespace == b.namespace
        && a.uid == b.uid
        && a.labels == b.labels
        && a.annotations == b.annotations
        && a.creation_timestamp == b.creation_timestamp
        && a.deletion_timestamp == b.deletion_timestamp
}

impl Trim for Ingress {
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
    }
    fn same_for_translate(&self, other: &Self) -> bool {
        same_meta(&self.metadata, &other.metadata) && self.spec == other.spec
    }
    fn status_differs(&self, other: &Self) -> bool {
        self.status != other.status
    }
}

impl Trim for IngressClass {
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
    }
    fn same_for_translate(&self, other: &Self) -> bool {
        same_meta(&self.metadata, &other.metadata) && self.spec == other.spec
    }
}

impl Trim for Service {
    /// Translate reads a Service's ports, type and externalName (spec §4.1), and its
    /// ClusterIP for `service-upstream` (an immutable field: it adds no churn); nobody reads
    /// its status, selector, other IPs or session settings.
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
        self.status = None;
        if let Some(spec) = self.spec.take() {
            self.spec = Some(ServiceSpec {
                ports: spec.ports,
                type_: spec.type_,
                external_name: spec.external_name,
                cluster_ip: spec.cluster_ip,
                ..ServiceSpec::default()
            });
        }
    }
    fn same_for_translate(&self, other: &Self) -> bool {
        same_meta(&self.metadata, &other.metadata) && self.spec == other.spec
    }
}

impl Trim for EndpointSlice {
    /// Translate reads each endpoint's first address and its conditions (spec §4.2); topology
    /// (zone, node, hints, targetRef) is dropped.
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
        for endpoint in self.endpoints.iter_mut().flatten() {
            endpoint.deprecated_topology = None;
            endpoint.hints = None;
            endpoint.hostname = None;
            endpoint.node_name = None;
            endpoint.target_ref = None;
            endpoint.zone = None;
        }
    }
    fn same_for_translate(&self, other: &Self) -> bool {
        same_meta(&self.metadata, &other.metadata)
            && self.address_type == other.address_type
            && self.endpoints == other.endpoints
            && self.ports == other.ports
    }
}

impl Trim for Secret {
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
        if keeps_every_key(self) {
            return;
        }
        if let Some(data) = self.data.as_mut() {
            data.retain(|k, _| SECRET_KEYS.contains(&k.as_str()));
        }
        if let Some(data) = self.string_data.as_mut() {
            data.retain(|k, _| SECRET_KEYS.contains(&k.as_str()));
        }
    }
    fn same_for_translate(&self, other: &Self) -> bool {
        same_meta(&self.metadata, &other.metadata)
            && self.type_ == other.type_
            && self.data == other.data
            && self.string_data == other.string_data
    }
}

impl Trim for ConfigMap {
    /// ingress-nginx reads ConfigMaps' `data` only (its configmap.md keys, the header maps of
    /// `add-headers`, `proxy-set-headers` and `custom-headers`); `binaryData`, labels and
    /// annotations are nobody's here. Dropping annotations also keeps the source quiet for
    /// ConfigMaps other controllers rewrite every few seconds (ConfigMap-based leader election
    /// renews an annotation): such an update is no change translate can see.
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
        self.metadata.annotations = None;
        self.metadata.labels = None;
        self.binary_data = None;
    }
    fn same_for_translate(&self, other: &Self) -> bool {
        let (a, b) = (&self.metadata, &other.metadata);
        a.name == b.name
            && a.namespace == b.namespace
            && a.uid == b.uid
            && a.deletion_timestamp == b.deletion_timestamp
            && self.data == other.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_keeps_what_translate_reads_and_drops_the_rest() {
        let mut secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s", "namespace": "n", "managedFields": [{"manager": "x"}],
                         "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u"}],
                         "annotations": {LAST_APPLIED: "{}", "keep": "me"}},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "YQ==", "tls.key": "Yg==", "ca.crt": "Yw==", "other": "ZA=="}
        }))
        .unwrap();
        secret.trim();
        let data = secret.data.as_ref().unwrap();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            ["ca.crt", "tls.crt", "tls.key"]
        );
        assert!(secret.metadata.managed_fields.is_none());
        assert!(secret.metadata.owner_references.is_none());
        assert_eq!(secret.metadata.annotations.as_ref().unwrap().len(), 1);

        let mut service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a", "namespace": "n"},
            "spec": {"type": "ExternalName", "externalName": "x.test", "ports": [{"port": 80}],
                     "selector": {"app": "a"}, "clusterIP": "10.0.0.1"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
        }))
        .unwrap();
        service.trim();
        let spec = service.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ExternalName"));
        assert_eq!(spec.external_name.as_deref(), Some("x.test"));
        assert_eq!(spec.ports.as_ref().unwrap().len(), 1);
        assert!(spec.selector.is_none() && spec.cluster_ips.is_none());
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.0.0.1"));
        assert!(service.status.is_none());

        let mut slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a-1", "namespace": "n",
                         "labels": {"kubernetes.io/service-name": "a"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true},
                           "nodeName": "node-1", "zone": "z",
                           "targetRef": {"kind": "Pod", "name": "p"}}],
            "ports": [{"port": 8080}]
        }))
        .unwrap();
        slice.trim();
        let endpoint = &slice.endpoints.as_ref().unwrap()[0];
        assert_eq!(endpoint.addresses, ["10.0.0.1"]);
        assert_eq!(endpoint.conditions.as_ref().unwrap().ready, Some(true));
        assert!(endpoint.node_name.is_none() && endpoint.zone.is_none());
        assert!(endpoint.target_ref.is_none());
        assert_eq!(slice.metadata.labels.as_ref().unwrap().len(), 1);

        let mut config: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c", "namespace": "n", "managedFields": [{"manager": "x"}]},
            "data": {"hsts": "false"},
            "binaryData": {"blob": "YQ=="}
        }))
        .unwrap();
        let mut renewed = config.clone();
        config.trim();
        assert_eq!(config.data.as_ref().unwrap()["hsts"], "false");
        assert!(config.binary_data.is_none());
        assert!(config.metadata.managed_fields.is_none());
        // A leader-election renewal (an annotation, a new resourceVersion) changes nothing
        // translate reads.
        renewed.metadata.annotations = Some(
            [(
                "control-plane.alpha.kubernetes.io/leader".to_string(),
                "{}".to_string(),
            )]
            .into(),
        );
        renewed.metadata.resource_version = Some("2".into());
        renewed.trim();
        assert!(config.same_for_translate(&renewed));
        renewed.data = Some([("hsts".to_string(), "true".to_string())].into());
        assert!(!config.same_for_translate(&renewed));
    }

    #[test]
    fn opaque_secrets_keep_every_key_for_auth_maps() {
        let secret = |type_: &str| -> Secret {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "s", "namespace": "n"},
                "type": type_,
                "data": {"auth": "YQ==", "alice": "Yg==", "release": "Yw=="}
            }))
            .unwrap()
        };
        let mut opaque = secret("Opaque");
        opaque.trim();
        assert_eq!(opaque.data.as_ref().unwrap().len(), 3);
        let mut helm = secret("helm.sh/release.v1");
        helm.trim();
        assert_eq!(
            helm.data.as_ref().unwrap().keys().collect::<Vec<_>>(),
            ["auth"]
        );
    }

    #[test]
    fn status_and_resource_version_do_not_matter_to_translate() {
        let ingress = |rv: &str, ip: &str| -> Ingress {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "a", "namespace": "n", "resourceVersion": rv},
                "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}},
                "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}
            }))
            .unwrap()
        };
        let (before, after) = (ingress("1", "192.0.2.1"), ingress("2", "192.0.2.2"));
        assert!(before.same_for_translate(&after));
        assert!(before.status_differs(&after));
        let mut changed = after.clone();
        changed
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert("a".into(), "b".into());
        assert!(!before.same_for_translate(&changed));
    }
}
