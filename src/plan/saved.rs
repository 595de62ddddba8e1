//! Checking a saved plan before `apply PLANFILE` writes anything (pure: no I/O, no clock).
//!
//! A plan file is data: it may have been edited, or be applied with another principal's token
//! than the one it was planned with. Before any write, each account's `operations` must be
//! exactly what its `changes` make of the portal's state as observed now, and the safety rules
//! (`maxRemovals`, last admin, self-lockout with the principal that applies) must hold for them.

use std::collections::{BTreeMap, BTreeSet};

use super::account::{ADMIN_ROLE, LOGIN_ROLE, grants, idempotency_key};
use super::{AccountDocument, Action, Change, Context, ObservedAccount, Operation, Refusal};
use crate::domain::{ObservedContact, ObservedMember};
use crate::domain::{RemovalLimit, Services};
use crate::portal::{AccountPatch, ContactPut, MemberPut, NewAccount, PrincipalKind};

/// Why an account of a saved plan is refused when it is applied; its `Display` is a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SavedPlanError {
    /// The operations are not what the changes make of the portal's state.
    #[error(
        "the plan's operations are not what its changes make of the portal's state ({0}); the plan file was edited or is damaged: make a new plan"
    )]
    Edited(String),
    /// A change that cannot be carried out on the portal's state.
    #[error(
        "the plan's change {action} {email} {why}; the plan file was edited or is damaged: make a new plan"
    )]
    Unfit {
        action: Action,
        /// Quoted and shortened.
        email: String,
        why: String,
    },
    /// `maxRemovals` is neither a count nor a percentage (quoted and shortened).
    #[error(
        "the plan's maxRemovals {0} is not a count or a percentage; the plan file was edited or is damaged: make a new plan"
    )]
    MaxRemovals(String),
    /// A safety rule, with the principal that applies.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// Checks one account of a saved plan against the portal's current state. The error is the
/// reason the account is refused, a sentence.
pub fn check_saved_account(
    a: &AccountDocument,
    o: &ObservedAccount,
    ctx: &Context,
) -> Result<(), SavedPlanError> {
    let derived = derive(a, o, ctx)?;
    let mut used = vec![false; derived.len()];
    let mut phase = 0;
    let edited = SavedPlanError::Edited;
    for (i, op) in a.operations.iter().enumerate() {
        let op = normalise(op);
        let found = derived
            .iter()
            .enumerate()
            .position(|(j, (_, d))| !used[j] && *d == op);
        let Some(j) = found else {
            return Err(edited(format!(
                "operation {} ({}) follows from no change",
                i + 1,
                describe(&op)
            )));
        };
        if derived[j].0 < phase {
            return Err(edited(format!(
                "operation {} ({}) is out of order: additions and grants come before revocations and removals",
                i + 1,
                describe(&op)
            )));
        }
        phase = derived[j].0;
        used[j] = true;
    }
    if let Some(j) = used.iter().position(|u| !u) {
        return Err(edited(format!(
            "no operation carries out {}",
            describe(&derived[j].1)
        )));
    }
    safety(a, o, ctx)
}

fn describe(op: &Operation) -> String {
    let word = match op {
        Operation::CreateAccount { .. } => "create-account",
        Operation::UpdateAccount { .. } => "update-account",
        Operation::PutMember { .. } => "put-member",
        Operation::DeleteMember { .. } => "delete-member",
        Operation::Invite { .. } => "invite",
        Operation::CancelInvitation { .. } => "cancel-invitation",
        Operation::PutContact { .. } => "put-contact",
        Operation::DeleteContact { .. } => "delete-contact",
    };
    match op.email() {
        Some(e) => format!("{word} {}", crate::manifest::quote_short(e)),
        None => word.to_string(),
    }
}

/// An operation with its lists in one order, so that equal writes compare equal.
fn normalise(op: &Operation) -> Operation {
    let mut op = op.clone();
    match &mut op {
        Operation::PutMember { member, .. } => {
            member.roles.sort();
            if let Some(n) = &mut member.notifications {
                n.sort();
                n.dedup();
            }
            if let Some(Services::Only(ids)) = &mut member.services {
                ids.sort();
                ids.dedup();
            }
        }
        Operation::PutContact { contact, .. } => {
            contact.notifications.sort();
            contact.notifications.dedup();
        }
        _ => {}
    }
    op
}

fn text(v: Option<&serde_json::Value>) -> Option<String> {
    v.and_then(|v| v.as_str()).map(str::to_string)
}

fn strings(v: Option<&serde_json::Value>) -> Option<Vec<String>> {
    v.and_then(|v| v.as_array()).map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    })
}

fn services(v: Option<&serde_json::Value>) -> Result<Option<Services>, String> {
    match v {
        None => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|_| format!("{v} is not a service scope")),
    }
}

/// The operations (each with its phase of SPEC §3's order) that the changes make of `o`.
fn derive(
    a: &AccountDocument,
    o: &ObservedAccount,
    ctx: &Context,
) -> Result<Vec<(u8, Operation)>, SavedPlanError> {
    let cn = &a.customer_number;
    let scheduled = ctx.catalog.capabilities.scheduled_revocation;
    let key = |action: Action, email: &str| idempotency_key(ctx.plan_id, cn, action, email);
    let mut ops = Vec::new();
    let mut members: BTreeMap<String, Vec<&Change>> = BTreeMap::new();
    let mut contacts: BTreeMap<String, Vec<&Change>> = BTreeMap::new();
    for c in &a.changes {
        match c.action {
            Action::CreateAccount => {
                let after = c.after.as_ref();
                ops.push((
                    0,
                    Operation::CreateAccount {
                        account: NewAccount {
                            customer_number: cn.clone(),
                            display_name: text(after.and_then(|v| v.get("displayName")))
                                .unwrap_or_default(),
                            time_zone: text(after.and_then(|v| v.get("timeZone")))
                                .unwrap_or_default(),
                        },
                        idempotency_key: key(Action::CreateAccount, ""),
                    },
                ));
            }
            Action::UpdateAccount => {
                let after = c.after.as_ref();
                ops.push((
                    0,
                    Operation::UpdateAccount {
                        patch: AccountPatch {
                            display_name: text(after.and_then(|v| v.get("displayName"))),
                            time_zone: text(after.and_then(|v| v.get("timeZone"))),
                        },
                        if_match: o.account.as_ref().map(|a| a.etag.clone()),
                    },
                ));
            }
            Action::AddContact | Action::UpdateContact | Action::RemoveContact => {
                let email = c
                    .email
                    .as_deref()
                    .ok_or_else(|| unfit(c, "names no e-mail"))?;
                contacts
                    .entry(crate::domain::email_key(email))
                    .or_default()
                    .push(c);
            }
            _ => {
                let email = c
                    .email
                    .as_deref()
                    .ok_or_else(|| unfit(c, "names no e-mail"))?;
                members
                    .entry(crate::domain::email_key(email))
                    .or_default()
                    .push(c);
            }
        }
    }
    for (lower, cs) in &contacts {
        let oc = o
            .contacts
            .iter()
            .find(|c| crate::domain::email_key(&c.email) == *lower);
        for c in cs {
            ops.push(derive_contact(c, oc)?);
        }
    }
    for (lower, cs) in &members {
        let m = o
            .members
            .iter()
            .find(|m| crate::domain::email_key(&m.email) == *lower);
        derive_member(cs, m, scheduled, &key, &mut ops)?;
    }
    Ok(ops.into_iter().map(|(p, op)| (p, normalise(&op))).collect())
}

/// The write (with its phase) that a contact's change makes of the contact the portal holds.
fn derive_contact(
    c: &Change,
    oc: Option<&ObservedContact>,
) -> Result<(u8, Operation), SavedPlanError> {
    let email = c.email.clone().unwrap_or_default();
    let after = c.after.as_ref();
    let body = || ContactPut {
        name: text(after.and_then(|v| v.get("name"))).unwrap_or_default(),
        notifications: strings(after.and_then(|v| v.get("notifications"))).unwrap_or_default(),
    };
    let op = match (c.action, oc) {
        (Action::AddContact, None) => Operation::PutContact {
            email,
            contact: body(),
            if_match: None,
        },
        (Action::UpdateContact, Some(oc)) => Operation::PutContact {
            email,
            contact: body(),
            if_match: Some(oc.etag.clone()),
        },
        (Action::RemoveContact, Some(oc)) => {
            return Ok((
                4,
                Operation::DeleteContact {
                    email: oc.email.clone(),
                    if_match: Some(oc.etag.clone()),
                },
            ));
        }
        _ => return Err(unfit(c, "does not fit the portal's contacts")),
    };
    Ok((2, op))
}

fn derive_member(
    cs: &[&Change],
    m: Option<&ObservedMember>,
    scheduled: bool,
    key: &dyn Fn(Action, &str) -> String,
    ops: &mut Vec<(u8, Operation)>,
) -> Result<(), SavedPlanError> {
    let email = cs[0].email.clone().unwrap_or_default();
    let sent = |c: &Change| if scheduled { c.until.clone() } else { None };
    if let Some(c) = cs.iter().find(|c| c.action == Action::RemoveMember) {
        let Some(m) = m else {
            return Err(unfit(c, "removes a member the portal does not hold"));
        };
        if cs.len() > 1 {
            return Err(unfit(c, "comes with other changes of the same member"));
        }
        ops.push((
            4,
            Operation::DeleteMember {
                email: m.email.clone(),
                if_match: Some(m.etag.clone()),
            },
        ));
        return Ok(());
    }
    if let Some(add) = cs.iter().find(|c| c.action == Action::AddMember) {
        derive_added_member(cs, add, m.is_some(), &email, &sent, ops)?;
    } else {
        derive_held_member(cs, m, &email, &sent, ops)?;
    }
    for c in cs {
        match c.action {
            Action::Invite => ops.push((
                3,
                Operation::Invite {
                    email: email.clone(),
                    resend: false,
                    idempotency_key: key(Action::Invite, &email),
                },
            )),
            Action::ResendInvitation => ops.push((
                3,
                Operation::Invite {
                    email: email.clone(),
                    resend: true,
                    idempotency_key: key(Action::ResendInvitation, &email),
                },
            )),
            Action::CancelInvitation => ops.push((
                4,
                Operation::CancelInvitation {
                    email: email.clone(),
                },
            )),
            _ => {}
        }
    }
    Ok(())
}

/// The write of a member the changes add.
fn derive_added_member(
    cs: &[&Change],
    add: &Change,
    held: bool,
    email: &str,
    sent: &dyn Fn(&Change) -> Option<String>,
    ops: &mut Vec<(u8, Operation)>,
) -> Result<(), SavedPlanError> {
    if held {
        return Err(unfit(add, "adds a member the portal already holds"));
    }
    let mut roles = BTreeMap::new();
    for c in cs {
        match c.action {
            Action::AddMember | Action::Invite => {}
            Action::Grant => {
                let role = c.role.clone().ok_or_else(|| unfit(c, "names no role"))?;
                roles.insert(role, sent(c));
            }
            _ => return Err(unfit(c, "does not fit a member being added")),
        }
    }
    let after = add.after.as_ref();
    let listed: BTreeSet<String> = strings(after.and_then(|v| v.get("roles")))
        .unwrap_or_default()
        .into_iter()
        .collect();
    if listed != roles.keys().cloned().collect::<BTreeSet<_>>() {
        return Err(unfit(add, "lists other roles than its grants"));
    }
    let member = MemberPut {
        name: text(after.and_then(|v| v.get("name"))),
        roles: grants(&roles),
        services: services(after.and_then(|v| v.get("services"))).map_err(|e| unfit(add, &e))?,
        notifications: strings(after.and_then(|v| v.get("notifications"))),
    };
    ops.push((
        1,
        Operation::PutMember {
            email: email.to_string(),
            member,
            if_match: None,
        },
    ));
    Ok(())
}

/// The writes of a member the portal holds.
fn derive_held_member(
    cs: &[&Change],
    m: Option<&ObservedMember>,
    email: &str,
    sent: &dyn Fn(&Change) -> Option<String>,
    ops: &mut Vec<(u8, Operation)>,
) -> Result<(), SavedPlanError> {
    let Some(m) = m else {
        return Err(unfit(cs[0], "changes a member the portal does not hold"));
    };
    let observed: BTreeMap<String, Option<String>> = m
        .roles
        .iter()
        .map(|r| (r.name.clone(), r.until.as_ref().map(ToString::to_string)))
        .collect();
    let mut target = observed.clone();
    let (mut grew, mut shrank) = (false, false);
    // Only what the changes change is written (the planner's rule): the rest keeps its
    // value on the portal.
    let mut name = None;
    let mut scope = None;
    let mut kinds = None;
    for c in cs {
        let role = || c.role.clone().ok_or_else(|| unfit(c, "names no role"));
        match c.action {
            Action::Grant => {
                target.insert(role()?, sent(c));
                grew = true;
            }
            Action::ChangeWindow => {
                let r = role()?;
                if !observed.contains_key(&r) {
                    return Err(unfit(c, "changes a role the member does not hold"));
                }
                target.insert(r, c.until.clone());
                grew = true;
            }
            Action::Revoke => {
                if target.remove(&role()?).is_none() {
                    return Err(unfit(c, "revokes a role the member does not hold"));
                }
                shrank = true;
            }
            Action::UpdateMember => {
                let after = c.after.as_ref();
                if let Some(v) = after.and_then(|v| v.get("name")) {
                    name = v.as_str().map(str::to_string);
                }
                if let Some(s) =
                    services(after.and_then(|v| v.get("services"))).map_err(|e| unfit(c, &e))?
                {
                    scope = Some(s);
                }
                if let Some(k) = strings(after.and_then(|v| v.get("notifications"))) {
                    kinds = Some(k);
                }
                grew = true;
            }
            Action::Invite | Action::ResendInvitation | Action::CancelInvitation => {}
            _ => return Err(unfit(c, "does not fit a member the portal holds")),
        }
    }
    let body = |roles: &BTreeMap<String, Option<String>>| MemberPut {
        name: name.clone(),
        roles: grants(roles),
        services: scope.clone(),
        notifications: kinds.clone(),
    };
    let put = |roles: &BTreeMap<String, Option<String>>| Operation::PutMember {
        email: email.to_string(),
        member: body(roles),
        if_match: Some(m.etag.clone()),
    };
    if grew && shrank {
        let mut union = observed.clone();
        union.extend(target.iter().map(|(k, v)| (k.clone(), v.clone())));
        ops.push((1, put(&union)));
        ops.push((4, put(&target)));
    } else if grew || shrank {
        ops.push((if grew { 1 } else { 4 }, put(&target)));
    }
    Ok(())
}

/// The refusal of a change that cannot be carried out on the portal's state.
fn unfit(c: &Change, why: &str) -> SavedPlanError {
    SavedPlanError::Unfit {
        action: c.action,
        email: crate::manifest::quote_short(c.email.as_deref().unwrap_or("")),
        why: why.to_string(),
    }
}

/// Removals the manifests asked for by date do not count against `maxRemovals`.
fn counted(c: &Change) -> bool {
    let reason = c.reason.as_deref().unwrap_or("");
    match c.action {
        Action::Revoke => !reason.starts_with("expired "),
        Action::RemoveMember => reason != "every declared role has ended",
        Action::RemoveContact => true,
        _ => false,
    }
}

/// `maxRemovals` as the plan document writes it.
fn parse_limit(text: Option<&str>) -> Result<RemovalLimit, SavedPlanError> {
    let Some(t) = text else {
        return Ok(RemovalLimit::Default);
    };
    let bad = || SavedPlanError::MaxRemovals(crate::manifest::quote_short(t));
    match t.strip_suffix('%') {
        Some(p) => p
            .parse::<u32>()
            .ok()
            .filter(|p| *p <= 100)
            .map(RemovalLimit::Percent)
            .ok_or_else(bad),
        None => t.parse::<u64>().map(RemovalLimit::Count).map_err(|_| bad()),
    }
}

/// The safety rules of the planner, against the state the (checked) operations make of `o`,
/// with the principal that applies.
fn safety(a: &AccountDocument, o: &ObservedAccount, ctx: &Context) -> Result<(), SavedPlanError> {
    let removals = a
        .changes
        .iter()
        .filter(|c| c.action.removes() && counted(c))
        .count() as u64;
    let current = (o.members.len() + o.contacts.len()) as u64;
    let limit = parse_limit(a.max_removals.as_deref())?;
    let allowed = limit.allowed(current);
    if removals > allowed {
        return Err(Refusal::MaxRemovals {
            removals,
            current,
            limit,
            allowed,
        }
        .into());
    }
    // Each member as the operations leave it: (linked, roles).
    let mut after: BTreeMap<String, (bool, BTreeSet<String>)> = o
        .members
        .iter()
        .map(|m| {
            (
                crate::domain::email_key(&m.email),
                (
                    m.user_linked,
                    m.roles.iter().map(|r| r.name.clone()).collect(),
                ),
            )
        })
        .collect();
    for op in &a.operations {
        match op {
            Operation::PutMember { email, member, .. } => {
                let entry = after
                    .entry(crate::domain::email_key(email))
                    .or_insert((false, BTreeSet::new()));
                entry.1 = member.roles.iter().map(|r| r.name.clone()).collect();
            }
            Operation::DeleteMember { email, .. } => {
                after.remove(&crate::domain::email_key(email));
            }
            _ => {}
        }
    }
    let read_only = |r: &str| ctx.catalog.roles.iter().any(|c| c.read_only && c.name == r);
    let is_admin = |linked: bool, roles: &BTreeSet<String>| {
        linked
            && ((roles.contains(ADMIN_ROLE) && roles.contains(LOGIN_ROLE))
                || roles.iter().any(|r| read_only(r)))
    };
    let admins_before = o
        .members
        .iter()
        .filter(|m| {
            let roles: BTreeSet<String> = m.roles.iter().map(|r| r.name.clone()).collect();
            is_admin(m.user_linked, &roles)
        })
        .count();
    let admins_after = after.values().filter(|(l, r)| is_admin(*l, r)).count();
    if admins_before > 0 && admins_after == 0 {
        return Err(Refusal::LastAdmin {
            customer_number: a.customer_number.clone(),
        }
        .into());
    }
    let principal = ctx.principal;
    if principal.kind == PrincipalKind::User
        && !a.allow_self_revoke
        && let Some(me) = principal.email.as_deref().map(crate::domain::email_key)
        && let Some(m) = o
            .members
            .iter()
            .find(|m| crate::domain::email_key(&m.email) == me)
    {
        let keeps = after.get(&me).map(|(_, r)| r);
        for role in [ADMIN_ROLE, LOGIN_ROLE] {
            let had = m.roles.iter().any(|r| r.name == role);
            if had && !keeps.is_some_and(|r| r.contains(role)) {
                return Err(Refusal::SelfLockout {
                    role: role.to_string(),
                    email: m.email.clone(),
                    applying: true,
                }
                .into());
            }
        }
    }
    Ok(())
}
