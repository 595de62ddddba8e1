//! What both front ends (the CLI and the controller) share around the planner: the current
//! instant and the plan id. The load → observe → plan → apply pipeline moves here from
//! `cli/reconcile.rs` (issue 17); until then this module holds the pieces the controller and
//! the portal adapters need, so that nothing below the CLI imports `cli`.

pub mod connect;

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
