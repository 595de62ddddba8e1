//! The planner: desired × observed → Plan, as a pure function (no I/O, no clock reads).
//!
//! A plan lists *changes* (what a person reads: grant this role, remove that contact) and the
//! *operations* that carry them out (the portal writes, each with the precondition it was
//! planned against). Safety rules refuse an account's whole plan.

mod account;
mod carriers;
#[cfg(test)]
mod complexity_tests;
mod document;
mod key;
mod refusal;
mod saved;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use account::{ADMIN_ROLE, LOGIN_ROLE, plan_account};
pub use carriers::carriers;
pub use document::*;
use key::JoinKey;
pub use refusal::Refusal;
pub use saved::{SavedPlanError, check_saved_account};

/// What the portal holds for one account: the domain's type, which the planner reads.
pub use crate::domain::ObservedAccount;
use crate::domain::{DesiredAccount, Mode, SourceRef};
use crate::portal::{AccountPatch, Catalog, ContactPut, MemberPut, NewAccount, Whoami};

/// What one change does, in the words of the plan document.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    CreateAccount,
    UpdateAccount,
    AddMember,
    Grant,
    ChangeWindow,
    UpdateMember,
    AddContact,
    UpdateContact,
    Invite,
    ResendInvitation,
    Revoke,
    CancelInvitation,
    RemoveMember,
    RemoveContact,
}

impl Action {
    pub const ALL: [Action; 14] = [
        Action::CreateAccount,
        Action::UpdateAccount,
        Action::AddMember,
        Action::Grant,
        Action::ChangeWindow,
        Action::UpdateMember,
        Action::AddContact,
        Action::UpdateContact,
        Action::Invite,
        Action::ResendInvitation,
        Action::Revoke,
        Action::CancelInvitation,
        Action::RemoveMember,
        Action::RemoveContact,
    ];

    /// The word used in the plan document (`add-member`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::CreateAccount => "create-account",
            Action::UpdateAccount => "update-account",
            Action::AddMember => "add-member",
            Action::Grant => "grant",
            Action::ChangeWindow => "change-window",
            Action::UpdateMember => "update-member",
            Action::AddContact => "add-contact",
            Action::UpdateContact => "update-contact",
            Action::Invite => "invite",
            Action::ResendInvitation => "resend-invitation",
            Action::Revoke => "revoke",
            Action::CancelInvitation => "cancel-invitation",
            Action::RemoveMember => "remove-member",
            Action::RemoveContact => "remove-contact",
        }
    }

    /// `+` adds, `~` changes, `-` removes.
    pub fn sign(self) -> char {
        match self {
            Action::CreateAccount
            | Action::AddMember
            | Action::Grant
            | Action::AddContact
            | Action::Invite => '+',
            Action::UpdateAccount
            | Action::ChangeWindow
            | Action::UpdateMember
            | Action::UpdateContact
            | Action::ResendInvitation => '~',
            Action::Revoke
            | Action::CancelInvitation
            | Action::RemoveMember
            | Action::RemoveContact => '-',
        }
    }

    /// The order of SPEC §3: account updates, additions and grants, contact additions and
    /// updates, invitations, then revocations and removals.
    pub fn phase(self) -> u8 {
        match self {
            Action::CreateAccount | Action::UpdateAccount => 0,
            Action::AddMember | Action::Grant | Action::ChangeWindow | Action::UpdateMember => 1,
            Action::AddContact | Action::UpdateContact => 2,
            Action::Invite | Action::ResendInvitation => 3,
            Action::Revoke
            | Action::CancelInvitation
            | Action::RemoveMember
            | Action::RemoveContact => 4,
        }
    }

    /// Whether the change takes something away (counted against `maxRemovals`).
    pub fn removes(self) -> bool {
        matches!(
            self,
            Action::Revoke | Action::RemoveMember | Action::RemoveContact
        )
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change, as the plan document shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The etag the change was planned against (`absent` for something new).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precondition: Option<String>,
}

impl Change {
    pub fn new(action: Action) -> Change {
        Change {
            action,
            email: None,
            role: None,
            from: None,
            until: None,
            before: None,
            after: None,
            reason: None,
            precondition: None,
        }
    }
}

/// A precondition meaning "planned while this did not exist".
pub const ABSENT: &str = "absent";

/// One portal write. `if_match` is the etag observed at plan time; `None` on a member or
/// contact means it did not exist then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum Operation {
    CreateAccount {
        account: NewAccount,
        idempotency_key: String,
    },
    UpdateAccount {
        patch: AccountPatch,
        if_match: Option<String>,
    },
    PutMember {
        email: String,
        member: MemberPut,
        if_match: Option<String>,
    },
    DeleteMember {
        email: String,
        if_match: Option<String>,
    },
    Invite {
        email: String,
        resend: bool,
        idempotency_key: String,
    },
    CancelInvitation {
        email: String,
    },
    PutContact {
        email: String,
        contact: ContactPut,
        if_match: Option<String>,
    },
    DeleteContact {
        email: String,
        if_match: Option<String>,
    },
}

impl Operation {
    /// The member or contact e-mail the operation writes, if any.
    pub fn email(&self) -> Option<&str> {
        match self {
            Operation::CreateAccount { .. } | Operation::UpdateAccount { .. } => None,
            Operation::PutMember { email, .. }
            | Operation::DeleteMember { email, .. }
            | Operation::Invite { email, .. }
            | Operation::CancelInvitation { email }
            | Operation::PutContact { email, .. }
            | Operation::DeleteContact { email, .. } => Some(email),
        }
    }
}

/// A problem that stops the run (like a validation error), located in the manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub source: SourceRef,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::domain::text::printable;
        write!(
            f,
            "{}:{}:{}: {}: {}",
            printable(&self.source.file),
            self.source.line,
            self.source.column,
            printable(&self.field),
            printable(&self.message)
        )
    }
}

/// The plan of one customer account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPlan {
    pub customer_number: String,
    /// `file:line` of the CustomerAccount.
    pub source: String,
    pub mode: Mode,
    pub changes: Vec<Change>,
    pub operations: Vec<Operation>,
    /// Why a safety rule refused the whole account (nothing of it is applied).
    pub refused: Option<Refusal>,
    /// Manifest problems only the portal could reveal (unknown roles, for example).
    pub errors: Vec<PlanError>,
    /// Things worth knowing that are not changes ("granted from 2026-12-01").
    pub notes: Vec<String>,
    /// The next instant a role window opens or closes, or an invitation expires.
    pub next_transition: Option<Timestamp>,
    /// The safety policy the plan was made under, checked again when a saved plan is applied.
    pub safety: SafetyPolicy,
}

/// What of an account's policy `apply PLANFILE` needs to check the safety rules again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SafetyPolicy {
    pub max_removals: crate::domain::RemovalLimit,
    pub allow_self_revoke: bool,
}

impl AccountPlan {
    /// The plan of an account the principal can see but may not manage (the portal refused to
    /// show its members): refused, with nothing planned, so that the other accounts go on.
    pub fn not_manageable(d: &DesiredAccount, principal: &Whoami) -> AccountPlan {
        AccountPlan {
            customer_number: d.customer_number.clone(),
            source: d.source.to_string(),
            mode: d.policy.mode,
            changes: Vec::new(),
            operations: Vec::new(),
            refused: Some(Refusal::NotManageable {
                customer_number: d.customer_number.clone(),
                principal: principal.email.clone(),
            }),
            errors: Vec::new(),
            notes: Vec::new(),
            next_transition: None,
            safety: SafetyPolicy {
                max_removals: d.policy.max_removals,
                allow_self_revoke: d.policy.allow_self_revoke,
            },
        }
    }

    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }
    /// Whether `apply` may carry out this account's operations.
    pub fn applicable(&self) -> bool {
        self.refused.is_none() && self.errors.is_empty() && self.mode == Mode::Apply
    }
}

/// Everything the planner needs besides the declaration.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub catalog: &'a Catalog,
    pub principal: &'a Whoami,
    pub now: Timestamp,
    /// Distinguishes this plan's idempotency keys from every other plan's.
    pub plan_id: &'a str,
}

/// Plans every account. Accounts are sorted by customer number.
pub fn plan(
    desired: &[DesiredAccount],
    observed: &BTreeMap<String, ObservedAccount>,
    ctx: &Context,
) -> Vec<AccountPlan> {
    plan_keyed::<String>(desired, observed, ctx)
}

/// Plans each declared account against what was observed of it, in the order given: [`plan`]
/// for a caller that joined the two itself (a plan made as the portal's pages arrive, a
/// stretch of accounts at a time).
pub fn plan_joined(
    pairs: &[(&DesiredAccount, &ObservedAccount)],
    ctx: &Context,
) -> Vec<AccountPlan> {
    plan_accounts::<String>(pairs, ctx)
}

/// [`plan`], joining on `K` (see `key`).
fn plan_keyed<K: JoinKey>(
    desired: &[DesiredAccount],
    observed: &BTreeMap<String, ObservedAccount>,
    ctx: &Context,
) -> Vec<AccountPlan> {
    let empty = ObservedAccount::default();
    // A merge join: the declared accounts in customer-number order (a stable sort, so that a
    // number declared twice keeps the manifests' order), walked in step with the observed
    // ones, which a BTreeMap already holds in that order.
    let mut declared: Vec<(K, &DesiredAccount)> = desired
        .iter()
        .map(|d| (K::new(d.customer_number.clone()), d))
        .collect();
    declared.sort_by(|a, b| a.0.cmp(&b.0));
    let mut observed = observed
        .iter()
        .map(|(number, o)| (K::new(number.clone()), o))
        .peekable();
    let mut pairs = Vec::with_capacity(declared.len());
    for (number, d) in declared {
        while observed.next_if(|(o, _)| *o < number).is_some() {}
        let o = match observed.peek() {
            Some((o, account)) if *o == number => *account,
            _ => &empty,
        };
        pairs.push((d, o));
    }
    plan_accounts::<K>(&pairs, ctx)
}

/// Fewer accounts than this per piece of work cost more to hand to another thread than to
/// plan: below twice as many, all are planned on the calling thread.
const ACCOUNTS_PER_THREAD: usize = 256;

/// Plans each (declared, observed) account, on rayon's threads for a large fleet; plans in
/// the order of `pairs` either way. Accounts are independent, so the result is the same as
/// planning them one by one.
fn plan_accounts<K: JoinKey>(
    pairs: &[(&DesiredAccount, &ObservedAccount)],
    ctx: &Context,
) -> Vec<AccountPlan> {
    use rayon::prelude::*;
    let plan_one =
        |&(d, o): &(&DesiredAccount, &ObservedAccount)| account::plan_account_keyed::<K>(d, o, ctx);
    if pairs.len() < 2 * ACCOUNTS_PER_THREAD {
        return pairs.iter().map(plan_one).collect();
    }
    pairs
        .par_iter()
        .with_min_len(ACCOUNTS_PER_THREAD)
        .map(plan_one)
        .collect()
}

/// Counts of changes by action, over accounts that will be applied or shown.
pub fn summary<'a>(plans: impl IntoIterator<Item = &'a AccountPlan>) -> BTreeMap<Action, usize> {
    let mut counts = BTreeMap::new();
    for p in plans {
        if p.refused.is_some() || !p.errors.is_empty() {
            continue;
        }
        for c in &p.changes {
            *counts.entry(c.action).or_insert(0) += 1;
        }
    }
    counts
}
