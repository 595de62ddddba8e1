//! Why a safety rule (or the portal) stops a whole account: nothing of it is applied.

use jiff::Timestamp;

use super::account::{ADMIN_ROLE, LOGIN_ROLE};
use crate::domain::RemovalLimit;

/// The reason an account's whole plan is refused. Its `Display` is the sentence the plan
/// document, the text and markdown plans, `apply` and the controller's events show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The account is not on the portal, and rolecall may not create it.
    #[error(
        "customer account {customer_number} does not exist on the portal or this token cannot reach it; rolecall creates accounts only as an operator on a portal that allows it"
    )]
    MayNotCreate { customer_number: String },
    /// The principal can see the account but not its members and contacts.
    #[error(
        "{} may not manage customer account {customer_number}: the portal refuses to show its members and contacts (a user needs an effective customer-admin and cockpit-access there), so nothing of it was planned",
        principal_words(principal.as_deref())
    )]
    NotManageable {
        customer_number: String,
        /// The principal's e-mail, when the portal names one.
        principal: Option<String>,
    },
    /// More removals and revocations than `maxRemovals` allows.
    #[error(
        "the plan would remove or revoke {removals} of {current} members and contacts, more than maxRemovals {limit} allows ({allowed}); raise policy.maxRemovals if this is intended"
    )]
    MaxRemovals {
        removals: u64,
        current: u64,
        limit: RemovalLimit,
        allowed: u64,
    },
    /// The plan leaves the account without an effective admin.
    #[error(
        "the plan would leave customer account {customer_number} without an effective admin (a linked member holding both {ADMIN_ROLE} and {LOGIN_ROLE}); grant the role to a member who has accepted their invitation first"
    )]
    LastAdmin { customer_number: String },
    /// A declared `until` leaves the account without an effective admin later on.
    #[error(
        "the declared roles would leave customer account {customer_number} without an effective admin (a linked member holding both {ADMIN_ROLE} and {LOGIN_ROLE}) from {local} ({at}), when the last admin's role ends by its until date; declare an admin who stays past that date, or extend the until"
    )]
    LastAdminLater {
        customer_number: String,
        /// The instant in the account's time zone: `2026-12-01 00:00 Europe/Zurich`.
        local: String,
        at: Timestamp,
    },
    /// The plan revokes a role of the principal rolecall acts as.
    #[error(
        "the plan would revoke {role} from {email}, the principal {} acts as; set policy.allowSelfRevoke to allow it",
        if *applying { "this apply" } else { "rolecall" }
    )]
    SelfLockout {
        role: String,
        email: String,
        /// Found when a saved plan is applied (with the principal that applies), not planned.
        applying: bool,
    },
}

fn principal_words(email: Option<&str>) -> String {
    match email {
        Some(email) => format!("the principal rolecall acts as ({email})"),
        None => "the principal rolecall acts as".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sentences are the ones users, the e2e tests and the plan document have always seen.
    #[test]
    fn each_refusal_says_what_it_always_said() {
        let cases = [
            (
                Refusal::MayNotCreate {
                    customer_number: "10042".into(),
                },
                "customer account 10042 does not exist on the portal or this token cannot reach it; rolecall creates accounts only as an operator on a portal that allows it",
            ),
            (
                Refusal::NotManageable {
                    customer_number: "10042".into(),
                    principal: Some("me@x.example".into()),
                },
                "the principal rolecall acts as (me@x.example) may not manage customer account 10042: the portal refuses to show its members and contacts (a user needs an effective customer-admin and cockpit-access there), so nothing of it was planned",
            ),
            (
                Refusal::NotManageable {
                    customer_number: "10042".into(),
                    principal: None,
                },
                "the principal rolecall acts as may not manage customer account 10042: the portal refuses to show its members and contacts (a user needs an effective customer-admin and cockpit-access there), so nothing of it was planned",
            ),
            (
                Refusal::MaxRemovals {
                    removals: 4,
                    current: 5,
                    limit: RemovalLimit::Percent(25),
                    allowed: 3,
                },
                "the plan would remove or revoke 4 of 5 members and contacts, more than maxRemovals 25% allows (3); raise policy.maxRemovals if this is intended",
            ),
            (
                Refusal::LastAdmin {
                    customer_number: "10042".into(),
                },
                "the plan would leave customer account 10042 without an effective admin (a linked member holding both customer-admin and cockpit-access); grant the role to a member who has accepted their invitation first",
            ),
            (
                Refusal::LastAdminLater {
                    customer_number: "10042".into(),
                    local: "2026-12-01 00:00 Europe/Zurich".into(),
                    at: "2026-11-30T23:00:00Z".parse().unwrap(),
                },
                "the declared roles would leave customer account 10042 without an effective admin (a linked member holding both customer-admin and cockpit-access) from 2026-12-01 00:00 Europe/Zurich (2026-11-30T23:00:00Z), when the last admin's role ends by its until date; declare an admin who stays past that date, or extend the until",
            ),
            (
                Refusal::SelfLockout {
                    role: "customer-admin".into(),
                    email: "me@x.example".into(),
                    applying: false,
                },
                "the plan would revoke customer-admin from me@x.example, the principal rolecall acts as; set policy.allowSelfRevoke to allow it",
            ),
            (
                Refusal::SelfLockout {
                    role: "cockpit-access".into(),
                    email: "me@x.example".into(),
                    applying: true,
                },
                "the plan would revoke cockpit-access from me@x.example, the principal this apply acts as; set policy.allowSelfRevoke to allow it",
            ),
        ];
        for (refusal, words) in cases {
            assert_eq!(refusal.to_string(), words);
        }
    }
}
