//! Leader election through a `coordination.k8s.io/v1` Lease: one process holds it and works;
//! the others wait until it is released or not renewed within its duration. Every write carries
//! the resourceVersion it was read at, so two candidates can never both win the same round.
//!
//! Whether a holder stopped renewing is decided as client-go's leaderelection does: never by
//! comparing the holder's `renewTime` (its clock) with ours, but by how long, on this process's
//! monotonic clock, the Lease has been seen unchanged (same resourceVersion). A holder whose
//! clock runs behind or ahead is neither robbed nor kept forever. The times written into the
//! Lease are real wall-clock times, never `ROLECALL_NOW`, and only for people to read.
//!
//! (kube-leader-election needs kube 4; kube-lease-manager 0.13, which fits kube 5, computes
//! expiry as the holder's `renewTime` plus the duration against the local clock — the very
//! comparison this module avoids.)

use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    /// The Lease's resourceVersion as last seen, and when (on the local clock) it was first
    /// seen so.
    observed: Mutex<Option<(String, Instant)>>,
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

impl Elector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Elector {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// One round: takes or renews the Lease. `Ok(true)` while this process holds it.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        self.try_acquire_at(Instant::now()).await
    }

    /// When the Lease at `version` was first seen, now that it is seen at `seen`.
    fn unchanged_since(&self, version: Option<&str>, seen: Instant) -> Instant {
        let Ok(mut observed) = self.observed.lock() else {
            return seen;
        };
        let version = version.unwrap_or_default();
        match observed.as_ref() {
            Some((v, since)) if v == version => *since,
            _ => {
                *observed = Some((version.to_string(), seen));
                seen
            }
        }
    }

    /// [`Elector::try_acquire`] with the local clock's reading given.
    async fn try_acquire_at(&self, seen: Instant) -> Result<bool, kube::Error> {
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
                    Ok(created) => {
                        self.unchanged_since(created.metadata.resource_version.as_deref(), seen);
                        Ok(true)
                    }
                    // Another candidate created it first.
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                };
            }
        };
        let since = self.unchanged_since(current.metadata.resource_version.as_deref(), seen);
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        let mine = holder == Some(self.config.identity.as_str());
        if !mine && holder.is_some() {
            let duration = Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(15)).unwrap_or(15),
            );
            // Taken over only once it has stood still for a whole duration on our clock.
            if seen.saturating_duration_since(since) <= duration {
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
            Ok(written) => {
                self.unchanged_since(written.metadata.resource_version.as_deref(), seen);
                Ok(true)
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};
    use tower_test::mock::Handle;

    type Server = Handle<Request<Body>, Response<Body>>;

    /// Answers the next request with `body` and returns its method, path and body.
    async fn answer(server: &mut Server, body: &Value) -> (String, String, Value) {
        let (request, reply) = server.next_request().await.expect("a request");
        let method = request.method().to_string();
        let path = request.uri().path().to_string();
        let bytes = request.into_body().collect_bytes().await.expect("a body");
        let sent = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let response = Response::builder()
            .status(200)
            .body(Body::from(serde_json::to_vec(body).expect("json")))
            .expect("a response");
        reply.send_response(response);
        (method, path, sent)
    }

    fn lease(version: &str, holder: &str, renewed: &str) -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "rolecall", "namespace": "ops", "resourceVersion": version},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": 3,
                "acquireTime": renewed,
                "renewTime": renewed,
                "leaseTransitions": 4
            }
        })
    }

    fn elector() -> (Elector, Server) {
        let (service, server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let config = LeaseConfig {
            name: "rolecall".into(),
            namespace: "ops".into(),
            identity: "me".into(),
            duration: Duration::from_secs(3),
        };
        (Elector::new(client, config), server)
    }

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/rolecall";

    /// Another holder's `renewTime` is never held against our clock: a Lease renewed "long
    /// ago" by a holder whose clock is off is left alone until it has stood still for a whole
    /// duration here; then it is taken, at the resourceVersion read.
    #[tokio::test]
    async fn a_foreign_lease_is_taken_only_after_standing_still_for_its_duration() {
        let (elector, mut server) = elector();
        let start = Instant::now();
        let stale = lease("7", "other", "2000-01-01T00:00:00.000000Z");

        let round = tokio::spawn(async move {
            let first = elector.try_acquire_at(start).await;
            let second = elector.try_acquire_at(start + Duration::from_secs(2)).await;
            let third = elector.try_acquire_at(start + Duration::from_secs(4)).await;
            (first.ok(), second.ok(), third.ok())
        });
        for _ in 0..3 {
            let (method, path, _) = answer(&mut server, &stale).await;
            assert_eq!((method.as_str(), path.as_str()), ("GET", PATH));
        }
        let mut taken = lease("8", "me", "2026-12-02T00:00:00.000000Z");
        taken["spec"]["leaseTransitions"] = json!(5);
        let (method, path, sent) = answer(&mut server, &taken).await;
        assert_eq!((method.as_str(), path.as_str()), ("PUT", PATH));
        assert_eq!(sent["metadata"]["resourceVersion"], "7");
        assert_eq!(sent["spec"]["holderIdentity"], "me");
        assert_eq!(sent["spec"]["leaseTransitions"], 5);
        let outcome = round.await.expect("the rounds ran");
        assert_eq!(outcome, (Some(false), Some(false), Some(true)));
    }

    /// A holder that keeps renewing (a new resourceVersion each time) keeps the Lease however
    /// long the candidate watches, whatever its `renewTime` says.
    #[tokio::test]
    async fn a_renewing_holder_keeps_the_lease() {
        let (elector, mut server) = elector();
        let start = Instant::now();
        let round = tokio::spawn(async move {
            let mut won = Vec::new();
            for i in 0..4 {
                let seen = start + Duration::from_secs(2 * i);
                won.push(elector.try_acquire_at(seen).await.ok());
            }
            won
        });
        for version in ["10", "11", "12", "13"] {
            let renewed = lease(version, "other", "1999-01-01T00:00:00.000000Z");
            let (method, _, _) = answer(&mut server, &renewed).await;
            assert_eq!(method, "GET");
        }
        assert_eq!(round.await.expect("the rounds ran"), vec![Some(false); 4]);
    }
}
