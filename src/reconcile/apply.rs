//! Carrying plans out: per-account writes in order with their preconditions, accounts
//! concurrently, one account's failure never stopping another.

use std::collections::HashMap;
use std::sync::Arc;

use crate::domain::{email_key, same_email};
use crate::plan::{ObservedAccount, Operation};
use crate::portal::{
    AccountFilter, ContactPut, ErrorCode, MemberPut, Portal, PortalError, RoleGrant,
};

/// What happened to one account's operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountOutcome {
    pub customer_number: String,
    /// Operations carried out, in order.
    pub applied: usize,
    pub total: usize,
    /// Why the rest was not carried out.
    pub error: Option<String>,
    /// The kind of that failure, for conditions and metrics.
    pub cause: Option<FailureCause>,
}

/// What became of one planned change once its account's writes were done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Applied,
    /// The write that carries it failed; the sentence says why.
    Failed(String),
    /// An earlier write of the account failed, so its write was never sent.
    NotAttempted,
}

/// The fate of each change of an account, from the write that carries it
/// ([`crate::plan::carriers`]) and how far the account's writes got.
pub fn fates(carriers: &[Option<usize>], outcome: &AccountOutcome) -> Vec<Fate> {
    carriers
        .iter()
        .map(|carrier| match (&outcome.error, carrier) {
            (None, _) => Fate::Applied,
            (Some(_), Some(i)) if *i < outcome.applied => Fate::Applied,
            (Some(e), Some(i)) if *i == outcome.applied => Fate::Failed(e.clone()),
            (Some(_), _) => Fate::NotAttempted,
        })
        .collect()
}

/// What kind of failure stopped an account's writes: a fixed word, fit for a condition reason
/// or a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// The object changed on the portal since it was read (412).
    Conflict,
    /// The token is not accepted, or may not do this (401, 403).
    Unauthorized,
    /// No answer, or the portal is unavailable or overloaded.
    Unreachable,
    /// The portal refused the write for another reason (422, last admin, ...).
    Rejected,
}

impl FailureCause {
    pub fn of(e: &PortalError) -> FailureCause {
        match e.code() {
            Some(ErrorCode::VersionConflict) => FailureCause::Conflict,
            Some(ErrorCode::Unauthenticated | ErrorCode::Forbidden) => FailureCause::Unauthorized,
            Some(ErrorCode::Unavailable | ErrorCode::RateLimited) => FailureCause::Unreachable,
            Some(_) => FailureCause::Rejected,
            None => match e {
                PortalError::Unreachable(_) => FailureCause::Unreachable,
                _ => FailureCause::Rejected,
            },
        }
    }
}

/// Carries out one account's operations in order. The first failure stops the account (later
/// writes may depend on it); a second `apply` finishes the work.
pub async fn apply_account<P: Portal>(
    portal: &P,
    customer_number: &str,
    operations: &[Operation],
) -> AccountOutcome {
    let mut outcome = AccountOutcome {
        customer_number: customer_number.to_string(),
        applied: 0,
        total: operations.len(),
        error: None,
        cause: None,
    };
    // A member written twice in one plan (grants, then revocations) carries the etag of the
    // first write into the second.
    let mut etags: HashMap<String, String> = HashMap::new();
    for op in operations {
        match write(portal, customer_number, op, &mut etags).await {
            Ok(()) => outcome.applied += 1,
            Err(e) => {
                outcome.error = Some(explain(op, &e));
                outcome.cause = Some(FailureCause::of(&e));
                break;
            }
        }
    }
    outcome
}

/// Sends one operation of an account. `etags` holds the etag each member written so far in
/// this plan now has, by e-mail key: it replaces the planned `If-Match` of a later write.
async fn write<P: Portal>(
    portal: &P,
    customer_number: &str,
    op: &Operation,
    etags: &mut HashMap<String, String>,
) -> Result<(), PortalError> {
    let fresh = |etags: &HashMap<String, String>, email: &str, planned: &Option<String>| {
        etags
            .get(&email_key(email))
            .cloned()
            .or_else(|| planned.clone())
    };
    match op {
        Operation::CreateAccount {
            account,
            idempotency_key,
        } => portal
            .create_account(account, idempotency_key)
            .await
            .map(|_| ()),
        Operation::UpdateAccount { patch, if_match } => portal
            .update_account(customer_number, patch, if_match.as_deref())
            .await
            .map(|_| ()),
        Operation::PutMember {
            email,
            member,
            if_match,
        } => {
            let tag = fresh(etags, email, if_match);
            let etag = put_member(portal, customer_number, email, member, tag.as_deref()).await?;
            etags.insert(email_key(email), etag);
            Ok(())
        }
        Operation::DeleteMember { email, if_match } => {
            let tag = fresh(etags, email, if_match);
            portal
                .delete_member(customer_number, email, tag.as_deref())
                .await
        }
        Operation::Invite {
            email,
            resend,
            idempotency_key,
        } => match portal
            .invite(customer_number, email, *resend, idempotency_key)
            .await
        {
            Ok(_) => Ok(()),
            // Linked is what an invitation is for: the person already had a user account
            // with this e-mail, and the portal linked it when the member was written.
            Err(e) if e.code() == Some(ErrorCode::AlreadyLinked) => Ok(()),
            Err(e) => Err(e),
        },
        Operation::CancelInvitation { email } => {
            portal.cancel_invitation(customer_number, email).await
        }
        Operation::PutContact {
            email,
            contact,
            if_match,
        } => match portal
            .put_contact(customer_number, email, contact, if_match.as_deref())
            .await
        {
            Ok(_) => Ok(()),
            // As for members: a 412 on the retry of a write whose answer was lost.
            Err(e) if e.code() == Some(ErrorCode::VersionConflict) => {
                if contact_as_written(portal, customer_number, email, contact).await {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        },
        Operation::DeleteContact { email, if_match } => {
            portal
                .delete_contact(customer_number, email, if_match.as_deref())
                .await
        }
    }
}

/// Writes a member with `if_match`; gives the etag the member has afterwards.
async fn put_member<P: Portal>(
    portal: &P,
    customer_number: &str,
    email: &str,
    member: &MemberPut,
    if_match: Option<&str>,
) -> Result<String, PortalError> {
    match portal
        .put_member(customer_number, email, member, if_match)
        .await
    {
        Ok(m) => Ok(m.etag),
        // When the answer to this very write was lost (a 503 after the commit), its retry
        // meets the new etag and answers 412. If the member already is what this write makes
        // it, the write went through.
        Err(e) if e.code() == Some(ErrorCode::VersionConflict) => {
            member_as_written(portal, customer_number, email, member)
                .await
                .ok_or(e)
        }
        Err(e) => Err(e),
    }
}

/// The etag of the member when the portal already holds exactly what `put` writes.
async fn member_as_written<P: Portal>(
    portal: &P,
    customer_number: &str,
    email: &str,
    put: &MemberPut,
) -> Option<String> {
    let members = portal
        .list_members(&AccountFilter::Only(vec![customer_number.to_string()]))
        .await
        .ok()?;
    let m = members.into_iter().find(|m| same_email(&m.email, email))?;
    let roles = |r: &[RoleGrant]| {
        let mut r = r.to_vec();
        r.sort_by(|a, b| a.name.cmp(&b.name));
        r
    };
    let same = roles(&m.roles) == roles(&put.roles)
        && put.name.as_ref().is_none_or(|n| m.name.as_ref() == Some(n))
        && put.services.as_ref().is_none_or(|s| *s == m.services)
        && put
            .notifications
            .as_ref()
            .is_none_or(|n| same_set(n, &m.notifications));
    same.then_some(m.etag)
}

/// Whether the portal already holds exactly what `put` writes for the contact.
async fn contact_as_written<P: Portal>(
    portal: &P,
    customer_number: &str,
    email: &str,
    put: &ContactPut,
) -> bool {
    let Ok(contacts) = portal
        .list_contacts(&AccountFilter::Only(vec![customer_number.to_string()]))
        .await
    else {
        return false;
    };
    contacts.iter().any(|c| {
        same_email(&c.email, email)
            && c.name == put.name
            && same_set(&c.notifications, &put.notifications)
    })
}

fn same_set(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

fn explain(op: &Operation, e: &PortalError) -> String {
    let what = match op.email() {
        Some(email) => format!("{} {email}", op_word(op)),
        None => op_word(op).to_string(),
    };
    match e.code() {
        Some(ErrorCode::VersionConflict) => {
            format!("{what}: changed on the portal since it was planned; run plan again")
        }
        Some(ErrorCode::LastAdmin) => {
            format!(
                "{what}: the portal refused it because it would leave the account without an admin"
            )
        }
        _ => format!("{what}: {e}"),
    }
}

fn op_word(op: &Operation) -> &'static str {
    match op {
        Operation::CreateAccount { .. } => "creating the account",
        Operation::UpdateAccount { .. } => "updating the account",
        Operation::PutMember { .. } => "writing member",
        Operation::DeleteMember { .. } => "removing member",
        Operation::Invite { resend: false, .. } => "inviting",
        Operation::Invite { resend: true, .. } => "re-inviting",
        Operation::CancelInvitation { .. } => "cancelling the invitation of",
        Operation::PutContact { .. } => "writing contact",
        Operation::DeleteContact { .. } => "removing contact",
    }
}

/// Applies many accounts, at most `concurrency` at a time; `progress` is called after each
/// account with the outcome.
pub async fn apply_all<P: Portal + 'static>(
    portal: Arc<P>,
    work: Vec<(String, Vec<Operation>)>,
    concurrency: usize,
    progress: impl Fn(&AccountOutcome) + Send + Sync + 'static,
) -> Vec<AccountOutcome> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let progress = Arc::new(progress);
    let mut set = tokio::task::JoinSet::new();
    for (cn, ops) in work {
        let portal = portal.clone();
        let semaphore = semaphore.clone();
        let progress = progress.clone();
        set.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let outcome = apply_account(portal.as_ref(), &cn, &ops).await;
            progress(&outcome);
            outcome
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(o) => outcomes.push(o),
            Err(e) => outcomes.push(AccountOutcome {
                customer_number: "?".into(),
                applied: 0,
                total: 0,
                error: Some(format!("an internal task failed: {e}")),
                cause: None,
            }),
        }
    }
    outcomes.sort_by(|a, b| a.customer_number.cmp(&b.customer_number));
    outcomes
}

/// A saved plan's precondition no longer holds: what it writes changed on the portal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the saved plan is stale: {what} changed on the portal after the plan was made; run plan again"
)]
pub struct StalePlan {
    /// What changed: `the account`, `member EMAIL`, `contact EMAIL`.
    pub what: String,
}

/// Whether a saved plan's preconditions still hold for one account: every member, contact and
/// account it writes must still carry the etag it was planned against (or still be absent).
pub fn check_preconditions(
    operations: &[Operation],
    observed: Option<&ObservedAccount>,
) -> Result<(), StalePlan> {
    let empty = ObservedAccount::default();
    let o = observed.unwrap_or(&empty);
    let member = |email: &str| {
        o.members
            .iter()
            .find(|m| same_email(&m.email, email))
            .map(|m| m.etag.clone())
    };
    let contact = |email: &str| {
        o.contacts
            .iter()
            .find(|c| same_email(&c.email, email))
            .map(|c| c.etag.clone())
    };
    let mut checked_members: std::collections::HashSet<String> = Default::default();
    for op in operations {
        let (what, planned, now) = match op {
            Operation::CreateAccount { .. } => (
                "the account".to_string(),
                None,
                o.account.as_ref().map(|a| a.etag.clone()),
            ),
            Operation::UpdateAccount { if_match, .. } => (
                "the account".to_string(),
                if_match.clone(),
                o.account.as_ref().map(|a| a.etag.clone()),
            ),
            Operation::PutMember {
                email, if_match, ..
            }
            | Operation::DeleteMember { email, if_match } => {
                // Only the first write of a member was planned against the observation.
                if !checked_members.insert(email_key(email)) {
                    continue;
                }
                (format!("member {email}"), if_match.clone(), member(email))
            }
            Operation::PutContact {
                email, if_match, ..
            }
            | Operation::DeleteContact { email, if_match } => {
                (format!("contact {email}"), if_match.clone(), contact(email))
            }
            Operation::Invite { .. } | Operation::CancelInvitation { .. } => continue,
        };
        if planned != now {
            return Err(StalePlan { what });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
