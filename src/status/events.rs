//! Events (spec §9): a Warning for each condition of a published configuration and a Normal
//! `Programmed` when an Ingress's programming changes, each once per appearance rather than once
//! per rebuild. Pushed by the publisher's `watch` channel and the leadership, like status; only
//! the leader sends, and it keeps track only of what it sent, so versions published before this
//! replica led are announced when it starts to lead (nothing is lost to a slow election).
//!
//! `Programmed` is not re-recorded on every start or takeover: an Ingress seen for the first
//! time in this process's life whose observed status already shows our addresses was
//! programmed by a previous replica (docs/decisions.md, "Events").

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;
use tokio::sync::watch;

use super::{current_addresses, Address};
use crate::publish::Published;
use crate::source::Snapshot;
use crate::translate::{Condition, ObjectRef};

/// What this process has announced (or seen announced) so far.
#[derive(Debug, Default)]
pub struct Announced {
    /// Conditions of the last processed version.
    emitted: HashSet<Condition>,
    /// Owned Ingresses of the last processed version.
    programmed: HashSet<ObjectRef>,
    /// Every Ingress this process has seen owned: only the first sight may be skipped as
    /// "programmed by a previous replica".
    ever_programmed: HashSet<ObjectRef>,
}

impl Announced {
    /// What to announce for `published`, and records it as seen. `desired` is the address list
    /// status writes (`None` while unknown or not configured).
    pub fn next(
        &mut self,
        published: &Published,
        desired: Option<&[Address]>,
    ) -> (Vec<Condition>, Vec<ObjectRef>) {
        let translation = &published.translation;
        let warnings = translation
            .conditions
            .iter()
            .filter(|c| !self.emitted.contains(*c))
            .cloned()
            .collect();
        let normals = translation
            .owned
            .iter()
            .filter(|o| !self.programmed.contains(*o))
            .filter(|o| {
                self.ever_programmed.contains(*o)
                    || !already_programmed(&published.snapshot, o, desired)
            })
            .cloned()
            .collect();
        // A condition that goes away and comes back is news again; one that stays is not.
        self.emitted = translation.conditions.iter().cloned().collect();
        self.programmed = translation.owned.iter().cloned().collect();
        self.ever_programmed
            .extend(translation.owned.iter().cloned());
        (warnings, normals)
    }
}

/// Whether the Ingress's observed status already shows our addresses (all of `desired`), or,
/// while those are unknown, any address: a previous replica programmed it and said so.
fn already_programmed(
    snapshot: &Snapshot,
    object: &ObjectRef,
    desired: Option<&[Address]>,
) -> bool {
    let Some(ingress) = snapshot
        .ingresses
        .iter()
        .find(|i| super::ingress_ref(i) == *object)
    else {
        return false;
    };
    let observed = current_addresses(ingress);
    match desired {
        Some(desired) => !desired.is_empty() && desired.iter().all(|a| observed.contains(a)),
        None => !observed.is_empty(),
    }
}

/// The object an Event is about, with its own apiVersion and kind (a Secret condition is about
/// the Secret, not an Ingress) and its uid when the snapshot has it.
pub fn reference(object: &ObjectRef, snapshot: &Snapshot) -> ObjectReference {
    fn find<'a, K: 'a>(
        list: impl IntoIterator<Item = &'a K>,
        object: &ObjectRef,
        meta: impl Fn(&K) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> Option<String> {
        list.into_iter()
            .map(meta)
            .find(|m| {
                m.name.as_deref() == Some(&object.name)
                    && m.namespace.as_deref().unwrap_or_default() == object.namespace
            })
            .and_then(|m| m.uid.clone())
    }
    use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
    use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
    let (api_version, uid) = match object.kind.as_str() {
        "Secret" => (
            Secret::API_VERSION,
            find(&snapshot.secrets, object, |s| &s.metadata),
        ),
        "Service" => (
            Service::API_VERSION,
            find(&snapshot.services, object, |s| &s.metadata),
        ),
        "ConfigMap" => (
            ConfigMap::API_VERSION,
            find(&snapshot.config_maps, object, |c| &c.metadata),
        ),
        "IngressClass" => (
            IngressClass::API_VERSION,
            find(&snapshot.ingress_classes, object, |c| &c.metadata),
        ),
        _ => (
            Ingress::API_VERSION,
            find(&snapshot.ingresses, object, |i| &i.metadata),
        ),
    };
    ObjectReference {
        api_version: Some(api_version.to_string()),
        kind: Some(object.kind.clone()),
        namespace: Some(object.namespace.clone()).filter(|ns| !ns.is_empty()),
        name: Some(object.name.clone()),
        uid,
        ..Default::default()
    }
}

pub async fn run(
    client: Client,
    identity: String,
    mut published_rx: watch::Receiver<Arc<Published>>,
    addresses: watch::Receiver<Option<Vec<Address>>>,
    mut leader: watch::Receiver<bool>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "portico".to_string(),
            instance: Some(identity),
        },
    );
    let mut announced = Announced::default();
    // The version last announced while leading (0: none).
    let mut version = 0;
    loop {
        let published = published_rx.borrow_and_update().clone();
        let leading = *leader.borrow_and_update();
        if leading && published.is_ready() && published.version != version {
            version = published.version;
            let desired = addresses.borrow().clone();
            let (warnings, normals) = announced.next(&published, desired.as_deref());
            if !(warnings.is_empty() && normals.is_empty()) {
                let snapshot = &published.snapshot;
                for condition in &warnings {
                    let event = Event {
                        type_: EventType::Warning,
                        reason: format!("{:?}", condition.reason),
                        note: Some(condition.message.chars().take(1000).collect()),
                        action: "Translate".to_string(),
                        secondary: None,
                    };
                    send(&recorder, &event, &reference(&condition.object, snapshot)).await;
                }
                for object in &normals {
                    let event = Event {
                        type_: EventType::Normal,
                        reason: "Programmed".to_string(),
                        note: Some(format!(
                            "routes served from configuration version {version}"
                        )),
                        action: "Publish".to_string(),
                        secondary: None,
                    };
                    send(&recorder, &event, &reference(object, snapshot)).await;
                }
            }
        }
        if !leading {
            // Whoever leads next announces from what it sees then.
            version = 0;
        }
        tokio::select! {
            changed = published_rx.changed() => {
                if changed.is_err() {
                    // The publisher is gone: nothing more to announce.
                    stop.await;
                    return;
                }
            }
            changed = leader.changed() => {
                if changed.is_err() {
                    stop.await;
                    return;
                }
            }
            _ = &mut stop => return,
        }
    }
}

async fn send(recorder: &Recorder, event: &Event, regarding: &ObjectReference) {
    if let Err(e) = recorder.publish(event, regarding).await {
        tracing::warn!(
            object.kind = regarding.kind.as_deref().unwrap_or_default(),
            object.namespace = regarding.namespace.as_deref().unwrap_or_default(),
            object.name = regarding.name.as_deref().unwrap_or_default(),
            reason = %event.reason,
            error = %e,
            "cannot record Event"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::{Reason, Translation};
    use serde_json::json;

    fn object(kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            kind: kind.into(),
            namespace: "n".into(),
            name: name.into(),
        }
    }

    fn published(version: u64, owned: &[&str], status: &[(&str, &str)]) -> Published {
        let ingresses = owned
            .iter()
            .map(|name| {
                let list: Vec<_> = status
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, ip)| json!({"ip": ip}))
                    .collect();
                serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": "n", "uid": format!("uid-{name}")},
                    "status": {"loadBalancer": {"ingress": list}}
                }))
                .unwrap()
            })
            .collect();
        let secret = serde_json::from_value(json!({
            "metadata": {"name": "tls", "namespace": "n", "uid": "uid-secret"}
        }))
        .unwrap();
        Published {
            version,
            translation: Arc::new(Translation {
                owned: owned.iter().map(|n| object("Ingress", n)).collect(),
                conditions: vec![Condition {
                    object: object("Secret", "tls"),
                    reason: Reason::TlsSecretInvalid,
                    message: "bad".into(),
                }],
                ..Translation::default()
            }),
            snapshot: Arc::new(Snapshot {
                ingresses,
                secrets: vec![secret],
                ..Snapshot::default()
            }),
        }
    }

    #[test]
    fn programmed_is_skipped_for_ingresses_a_previous_replica_programmed() {
        let desired = [Address::parse("192.0.2.1")];
        let mut announced = Announced::default();
        // "old" already shows our address (written before a restart); "new" does not.
        let v1 = published(1, &["old", "new"], &[("old", "192.0.2.1")]);
        let (_, normals) = announced.next(&v1, Some(&desired));
        assert_eq!(normals, vec![object("Ingress", "new")]);
        // Not again while it stays programmed.
        let (warnings, normals) =
            announced.next(&published(2, &["old", "new"], &[]), Some(&desired));
        assert!(warnings.is_empty() && normals.is_empty());
        // Ownership lost and regained in this process's life: a real change, announced.
        announced.next(&published(3, &["new"], &[]), Some(&desired));
        let (_, normals) = announced.next(
            &published(4, &["old", "new"], &[("old", "192.0.2.1")]),
            Some(&desired),
        );
        assert_eq!(normals, vec![object("Ingress", "old")]);
    }

    #[test]
    fn addresses_not_known_yet_fall_back_to_any_observed_address() {
        let mut announced = Announced::default();
        let v1 = published(1, &["old", "new"], &[("old", "198.51.100.1")]);
        let (_, normals) = announced.next(&v1, None);
        assert_eq!(normals, vec![object("Ingress", "new")]);
    }

    #[test]
    fn a_secret_condition_refers_to_the_secret() {
        let v1 = published(1, &["a"], &[]);
        let r = reference(&v1.translation.conditions[0].object, &v1.snapshot);
        assert_eq!(r.api_version.as_deref(), Some("v1"));
        assert_eq!(r.kind.as_deref(), Some("Secret"));
        assert_eq!(r.uid.as_deref(), Some("uid-secret"));
        let r = reference(&object("Ingress", "a"), &v1.snapshot);
        assert_eq!(r.api_version.as_deref(), Some("networking.k8s.io/v1"));
        assert_eq!(r.uid.as_deref(), Some("uid-a"));
    }
}
