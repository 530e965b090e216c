//! Leader election over a `coordination.k8s.io/v1` Lease, the way client-go's leaderelection
//! does it: expiry is judged by how long the Lease has gone *unchanged on our clock*, never by
//! comparing the holder's timestamps with our clock. Every replica serves traffic; only the
//! leader writes status and Events.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::Api;
use tokio::sync::watch;

/// What a replica last saw of someone else's Lease, and when it saw it change.
struct Observed {
    record: (Option<String>, Option<MicroTime>, Option<i32>),
    at: Instant,
}

/// The election loop of one replica.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    observed: Option<Observed>,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Elector {
    pub fn new(api: Api<Lease>, name: String, identity: String, duration: Duration) -> Self {
        Elector {
            api,
            name,
            identity,
            duration,
            observed: None,
        }
    }

    fn seconds(&self) -> i32 {
        self.duration.as_secs().clamp(1, i32::MAX as u64) as i32
    }

    /// One round: acquire, renew or observe. `Ok(true)` when we hold the Lease afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.seconds()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        if holder.as_deref() != Some(self.identity.as_str()) {
            let record = (
                holder.clone(),
                spec.renew_time.clone(),
                spec.lease_transitions,
            );
            let changed = self.observed.as_ref().is_none_or(|o| o.record != record);
            if changed {
                self.observed = Some(Observed {
                    record,
                    at: Instant::now(),
                });
            }
            let duration = spec
                .lease_duration_seconds
                .map(|s| Duration::from_secs(s.max(1) as u64))
                .unwrap_or(self.duration);
            let expired = self
                .observed
                .as_ref()
                .is_some_and(|o| o.at.elapsed() >= duration);
            if holder.is_some() && !expired {
                return Ok(false);
            }
            tracing::info!(
                lease = %self.name,
                previous = holder.as_deref().unwrap_or(""),
                "taking over the leader Lease"
            );
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(self.seconds());
        spec.renew_time = Some(now);
        // The resourceVersion we read makes this a compare-and-swap: two replicas cannot both win.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up so the next replica need not wait for it to expire.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
}

/// Runs the election until `stop` resolves, then releases the Lease if we hold it. `leader`
/// says whether this replica may write.
pub async fn run(
    mut elector: Elector,
    leader: watch::Sender<bool>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    // Renew well inside the lease so one lost request does not cost the leadership.
    let period = elector.duration / 5;
    let renew_deadline = elector.duration * 2 / 3;
    let mut last_success: Option<Instant> = None;
    loop {
        let held = match elector.try_acquire_or_renew().await {
            Ok(held) => {
                if held {
                    last_success = Some(Instant::now());
                }
                held
            }
            Err(e) => {
                tracing::warn!(lease = %elector.name, error = %e, "leader election request failed");
                // Keep leading through short API outages, but stop before the Lease can expire
                // and someone else starts writing too.
                *leader.borrow() && last_success.is_some_and(|t| t.elapsed() < renew_deadline)
            }
        };
        leader.send_if_modified(|was| {
            if *was != held {
                tracing::info!(lease = %elector.name, identity = %elector.identity, leader = held, "leadership changed");
                *was = held;
                true
            } else {
                false
            }
        });
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = &mut stop => break,
        }
    }
    let _ = leader.send(false);
    if let Err(e) = elector.release().await {
        tracing::warn!(lease = %elector.name, error = %e, "cannot release the leader Lease");
    }
}
