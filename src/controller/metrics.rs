//! Prometheus metrics and the health endpoints. Every label takes its value from a fixed set of
//! words (a result, an action, a status class): never an object name or an error text, so the
//! number of series stays bounded however large the fleet.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a reconcile ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Changes were applied.
    Applied,
    /// Nothing to change.
    InSync,
    /// `mode: Observe`: planned and reported only.
    Observed,
    /// A safety rule refused the plan.
    Refused,
    /// The objects are not valid.
    Invalid,
    /// Another CustomerAccount claims the customer number.
    Conflict,
    /// The portal could not be reached or refused a write.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::InSync => "in_sync",
            Outcome::Observed => "observed",
            Outcome::Refused => "refused",
            Outcome::Invalid => "invalid",
            Outcome::Conflict => "conflict",
            Outcome::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

/// The controller's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabel, Counter>,
    changes: Family<ActionLabel, Counter>,
    portal_requests: Family<StatusLabel, Counter>,
    duration: Histogram,
    drifting: Gauge,
    leader: Gauge,
    expiring: Gauge,
    /// Roles ending soon, per account (by `namespace/name`); the gauge is their sum.
    expiring_by_account: Mutex<std::collections::HashMap<String, i64>>,
    /// Accounts whose last plan had changes not applied (refused, observed or failed).
    drifting_accounts: Mutex<HashSet<String>>,
    /// Whether the process has started its work (CRDs found, leader election running).
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rolecall");
        let reconciles = Family::<ResultLabel, Counter>::default();
        registry.register(
            "reconciles",
            "CustomerAccount reconciles by result",
            reconciles.clone(),
        );
        let changes = Family::<ActionLabel, Counter>::default();
        registry.register(
            "changes",
            "Changes applied to portals, by action",
            changes.clone(),
        );
        let portal_requests = Family::<StatusLabel, Counter>::default();
        registry.register(
            "portal_requests",
            "HTTP requests to portals by status class",
            portal_requests.clone(),
        );
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "reconcile_duration_seconds",
            "Time one CustomerAccount reconcile takes",
            duration.clone(),
        );
        let drifting = Gauge::default();
        registry.register(
            "accounts_drifting",
            "CustomerAccounts whose portal does not match the declaration",
            drifting.clone(),
        );
        let expiring = Gauge::default();
        registry.register(
            "roles_expiring_soon",
            "Declared roles in force whose last day is within 14 days",
            expiring.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this process holds the leader Lease",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            changes,
            portal_requests,
            duration,
            drifting,
            leader,
            expiring,
            expiring_by_account: Mutex::new(std::collections::HashMap::new()),
            drifting_accounts: Mutex::new(HashSet::new()),
            ready: AtomicBool::new(false),
        }
    }

    pub fn reconciled(&self, outcome: Outcome, seconds: f64) {
        self.reconciles
            .get_or_create(&ResultLabel {
                result: outcome.as_str(),
            })
            .inc();
        self.duration.observe(seconds);
    }

    pub fn changed(&self, action: crate::plan::Action, n: u64) {
        self.changes
            .get_or_create(&ActionLabel {
                action: action.as_str(),
            })
            .inc_by(n);
    }

    /// Counts one portal request by status class (`2xx` … `5xx`, `network`).
    pub fn portal_answer(&self, status: Option<u16>) {
        let status = match status {
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(400..=499) => "4xx",
            Some(_) => "5xx",
            None => "network",
        };
        self.portal_requests
            .get_or_create(&StatusLabel { status })
            .inc();
    }

    /// Records whether an account (by `namespace/name`) drifts; `None` forgets it (deleted).
    pub fn drift(&self, key: &str, drifting: Option<bool>) {
        let Ok(mut set) = self.drifting_accounts.lock() else {
            return;
        };
        match drifting {
            Some(true) => {
                set.insert(key.to_string());
            }
            _ => {
                set.remove(key);
            }
        }
        self.drifting
            .set(i64::try_from(set.len()).unwrap_or(i64::MAX));
    }

    /// Records how many of an account's roles end soon; `None` forgets the account (deleted).
    pub fn expiring(&self, key: &str, roles: Option<usize>) {
        let Ok(mut map) = self.expiring_by_account.lock() else {
            return;
        };
        match roles {
            Some(n) if n > 0 => {
                map.insert(key.to_string(), i64::try_from(n).unwrap_or(i64::MAX));
            }
            _ => {
                map.remove(key);
            }
        }
        self.expiring
            .set(map.values().fold(0i64, |a, n| a.saturating_add(*n)));
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

async fn render(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(m): State<Arc<Metrics>>) -> (StatusCode, &'static str) {
    if m.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

/// Why the metrics server could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("--metrics-addr {addr}: cannot listen: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the metrics server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let app = Router::new()
        .route("/metrics", get(render))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })?;
    if let Ok(local) = listener.local_addr() {
        tracing::info!(addr = %local, "serving /metrics, /healthz and /readyz");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_fixed_words() {
        let m = Metrics::new();
        m.reconciled(Outcome::Applied, 0.1);
        m.changed(crate::plan::Action::Grant, 2);
        m.portal_answer(Some(201));
        m.portal_answer(None);
        m.drift("team-a/acme", Some(true));
        m.drift("team-a/globex", Some(true));
        m.drift("team-a/acme", None);
        m.expiring("team-a/acme", Some(2));
        m.expiring("team-a/globex", Some(3));
        m.expiring("team-a/globex", Some(1));
        m.expiring("team-a/initech", Some(4));
        m.expiring("team-a/initech", None);
        let text = m.encode();
        assert!(text.contains("rolecall_roles_expiring_soon 3"), "{text}");
        assert!(
            text.contains("rolecall_reconciles_total{result=\"applied\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("rolecall_changes_total{action=\"grant\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("rolecall_portal_requests_total{status=\"2xx\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("rolecall_portal_requests_total{status=\"network\"} 1"),
            "{text}"
        );
        assert!(text.contains("rolecall_accounts_drifting 1"), "{text}");
        assert!(!text.contains("acme"), "no object names in metrics: {text}");
    }
}
