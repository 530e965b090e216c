//! Events (spec §9): a Warning for each condition of a published configuration and a Normal
//! when an Ingress is first programmed, each once per appearance rather than once per rebuild.
//! Every replica tracks what it has seen; only the leader sends, so a new leader does not
//! repeat what the old one already said.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;
use tokio::sync::watch;

use crate::publish::{Published, Shared};
use crate::source::Snapshot;
use crate::translate::{Condition, ObjectRef};

const POLL: Duration = Duration::from_millis(20);

/// What to announce between two published versions.
pub fn diff(
    published: &Published,
    emitted: &HashSet<Condition>,
    programmed: &HashSet<ObjectRef>,
) -> (Vec<Condition>, Vec<ObjectRef>) {
    let warnings = published
        .translation
        .conditions
        .iter()
        .filter(|c| !emitted.contains(*c))
        .cloned()
        .collect();
    let normals = published
        .translation
        .owned
        .iter()
        .filter(|o| !programmed.contains(*o))
        .cloned()
        .collect();
    (warnings, normals)
}

fn reference(object: &ObjectRef, snapshot: &Snapshot) -> ObjectReference {
    let uid = snapshot
        .ingresses
        .iter()
        .find(|i| {
            i.metadata.name.as_deref() == Some(&object.name)
                && i.metadata.namespace.as_deref().unwrap_or_default() == object.namespace
        })
        .and_then(|i| i.metadata.uid.clone());
    ObjectReference {
        api_version: Some("networking.k8s.io/v1".to_string()),
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
    shared: Shared,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    leader: watch::Receiver<bool>,
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
    let mut emitted: HashSet<Condition> = HashSet::new();
    let mut programmed: HashSet<ObjectRef> = HashSet::new();
    let mut version = 0;
    loop {
        let published = shared.load_full();
        if published.is_ready() && published.version != version {
            version = published.version;
            let (warnings, normals) = diff(&published, &emitted, &programmed);
            if *leader.borrow() && !(warnings.is_empty() && normals.is_empty()) {
                let snapshot = snapshots.borrow().clone();
                for condition in &warnings {
                    let event = Event {
                        type_: EventType::Warning,
                        reason: format!("{:?}", condition.reason),
                        note: Some(condition.message.chars().take(1000).collect()),
                        action: "Translate".to_string(),
                        secondary: None,
                    };
                    send(&recorder, &event, &reference(&condition.object, &snapshot)).await;
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
                    send(&recorder, &event, &reference(object, &snapshot)).await;
                }
            }
            // A condition that goes away and comes back is news again; one that stays is not.
            emitted = published.translation.conditions.iter().cloned().collect();
            programmed = published.translation.owned.iter().cloned().collect();
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = &mut stop => return,
        }
    }
}

async fn send(recorder: &Recorder, event: &Event, regarding: &ObjectReference) {
    if let Err(e) = recorder.publish(event, regarding).await {
        tracing::warn!(
            ingress.namespace = regarding.namespace.as_deref().unwrap_or_default(),
            ingress.name = regarding.name.as_deref().unwrap_or_default(),
            reason = %event.reason,
            error = %e,
            "cannot record Event"
        );
    }
}
