//! Leader election through a `coordination.k8s.io/v1` Lease: one process holds it and works;
//! the others wait until it is released or not renewed within its duration. Every write carries
//! the resourceVersion it was read at, so two candidates can never both win the same round.
//!
//! Lease times are real wall-clock times, never `ROLECALL_NOW`: that variable moves the
//! domain's clock for tests, not the cluster's.

use std::time::Duration;

// k8s-openapi's times are its own jiff version's.
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};

/// Who competes for which Lease.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This process: pod name and a random suffix.
    pub identity: String,
    /// How long a holder that stops renewing keeps the Lease.
    pub duration: Duration,
}

impl LeaseConfig {
    /// How often the holder renews, and how often a candidate asks.
    pub fn retry(&self) -> Duration {
        (self.duration / 3).max(Duration::from_millis(200))
    }
}

/// The Lease in the controller's namespace.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

impl Elector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Elector {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// One round: takes or renews the Lease. `Ok(true)` while this process holds it.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = match self.api.get_opt(&self.config.name).await? {
            Some(lease) => lease,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(self.held_spec(now, now, 0)),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    // Another candidate created it first.
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                };
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        let mine = holder == Some(self.config.identity.as_str());
        if !mine && holder.is_some() {
            let duration = Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(15)).unwrap_or(15),
            );
            let renewed = spec.renew_time.as_ref().map(|t| t.0);
            let expired =
                renewed.is_none_or(|t| now.duration_since(t).unsigned_abs() > duration && now > t);
            if !expired {
                return Ok(false);
            }
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        let new_spec = if mine {
            let acquired = spec.acquire_time.map_or(now, |t| t.0);
            self.held_spec(acquired, now, transitions)
        } else {
            self.held_spec(now, now, transitions.saturating_add(1))
        };
        let mut lease = current;
        lease.spec = Some(new_spec);
        // `replace` sends the resourceVersion read above: a 409 means someone else wrote first.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up at shutdown, so that a waiting process takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn held_spec(&self, acquired: Timestamp, now: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(seconds(self.config.duration)),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }
}
