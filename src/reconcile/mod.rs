//! The one pipeline both front ends (the command line and the controller) use around the
//! planner: load the manifests ([`load`]), choose each account's portal ([`targets`]), connect
//! ([`connect`]), observe ([`observe`]), plan ([`plan_target`], [`plan_account`]) and apply
//! ([`apply_account`], [`apply_all`]). The clock and the plan id are passed in: only the front
//! ends read [`now`] and make a [`new_plan_id`]. Nothing here prints; errors are [`Error`]s,
//! which the front ends show.

pub mod apply;
mod bulk;
pub mod connect;
pub mod load;
pub mod observe;
mod pipeline;
mod prefetch;
mod stream;
pub mod targets;

pub use apply::{
    AccountOutcome, FailureCause, Fate, StalePlan, apply_account, apply_all, check_preconditions,
    fates,
};
pub use load::{LoadError, Loaded, load};
pub use observe::{Observation, observe, observe_account, observe_for_plan};
pub use pipeline::{
    ConnectOptions, ObservedTarget, PortalFacts, connect, facts, observe_target, plan_account,
    plan_all, plan_target, plan_target_as_read, plan_target_prefetched,
};
pub use prefetch::{BulkRead, Prefetch, Prefetched};
pub use targets::{DEFAULT_PORTAL, DEFAULT_TOKEN_ENV, Target, TargetError, targets};

use crate::portal::PortalError;

/// Why the pipeline stopped before planning. Each Display is the sentence users read, without
/// its cause; the cause is the [`std::error::Error::source`], printed after it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Clock(#[from] ClockError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The portal URL or its credentials cannot make an adapter (the sentence names why).
    #[error(transparent)]
    Connect(#[from] connect::ConnectError),
    #[error("{url}: cannot tell who the token belongs to")]
    Whoami {
        url: String,
        #[source]
        source: PortalError,
    },
    #[error("{url}: cannot read the role catalog")]
    Catalog {
        url: String,
        #[source]
        source: PortalError,
    },
    #[error("{url}: cannot read the accounts")]
    Observe {
        url: String,
        #[source]
        source: PortalError,
    },
}

use jiff::Timestamp;

/// The environment variable that fixes the current instant (SPEC §3 "Time").
pub const NOW_ENV: &str = "ROLECALL_NOW";

/// `ROLECALL_NOW` holds something that is not an RFC 3339 instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{NOW_ENV}: {shown} is not an RFC 3339 instant (for example 2026-11-26T09:00:00Z)")]
pub struct ClockError {
    /// The value, quoted and shortened for display.
    shown: String,
}

/// The current instant: `ROLECALL_NOW` (RFC 3339) when set, so expiry is testable, else the
/// clock. The planner never calls this: its callers pass the instant in.
pub fn now() -> Result<Timestamp, ClockError> {
    match std::env::var(NOW_ENV) {
        Ok(text) if !text.trim().is_empty() => parse_now(&text),
        _ => Ok(Timestamp::now()),
    }
}

fn parse_now(text: &str) -> Result<Timestamp, ClockError> {
    text.trim().parse().map_err(|_| ClockError {
        shown: crate::manifest::quote_short(text),
    })
}

/// A plan id: distinct per run, so idempotency keys never collide across plans.
pub fn new_plan_id(now: Timestamp) -> String {
    let nanos = Timestamp::now().as_nanosecond();
    format!("{:x}-{:x}-{:x}", now.as_second(), nanos, std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_instant_is_read_and_a_bad_one_is_named() {
        let at = parse_now(" 2026-11-26T09:00:00Z ").unwrap();
        assert_eq!(at.to_string(), "2026-11-26T09:00:00Z");
        let err = parse_now("yesterday").unwrap_err().to_string();
        assert!(
            err.starts_with("ROLECALL_NOW: \"yesterday\" is not"),
            "{err}"
        );
    }
}
