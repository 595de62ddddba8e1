//! The planner, tested without I/O: scenarios and properties over random states.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::domain::{
    AccountPolicy, AccountSettings, DesiredAccount, DesiredContact, DesiredMember, DesiredRole,
    Email, ObservedMember, RemovalLimit, Services, SourceRef, Window, parse_date, parse_time_zone,
};
use crate::portal::{
    Account, Contact, Invitation, InvitationStatus, Member, MemberPut, PrincipalKind, RoleGrant,
};

mod members;
mod properties;
mod safety;

fn catalog() -> Catalog {
    crate::reference::store::reference_catalog()
}

fn operator() -> Whoami {
    Whoami {
        email: None,
        kind: PrincipalKind::Operator,
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn src() -> SourceRef {
    SourceRef {
        file: "t.yaml".into(),
        line: 1,
        column: 1,
    }
}

fn role(name: &str, from: Option<&str>, until: Option<&str>) -> DesiredRole {
    DesiredRole {
        name: name.into(),
        window: Window {
            from: from.map(|d| parse_date(d).unwrap()),
            until: until.map(|d| parse_date(d).unwrap()),
        },
        source: src(),
    }
}

fn member(email: &str, roles: Vec<DesiredRole>) -> DesiredMember {
    DesiredMember {
        email: Email::parse(email).unwrap(),
        name: None,
        roles,
        services: None,
        notifications: None,
        source: src(),
    }
}

fn account(tz: &str, members: Vec<DesiredMember>) -> DesiredAccount {
    DesiredAccount {
        name: "acme".into(),
        namespace: "default".into(),
        portal_ref: None,
        customer_number: "10042".into(),
        display_name: None,
        time_zone_name: tz.into(),
        time_zone_declared: true,
        time_zone: parse_time_zone(tz).unwrap(),
        members,
        contacts: vec![],
        policy: AccountPolicy {
            max_removals: RemovalLimit::Count(1000),
            ..AccountPolicy::default()
        },
        source: src(),
    }
}

fn portal_account(tz: &str) -> AccountSettings {
    Account {
        customer_number: "10042".into(),
        display_name: "Acme".into(),
        time_zone: tz.into(),
        etag: "\"a1\"".into(),
    }
    .into()
}

fn observed_member(email: &str, roles: &[&str], linked: bool) -> ObservedMember {
    Member {
        customer_number: Some("10042".into()),
        email: email.into(),
        name: None,
        user_linked: linked,
        roles: roles
            .iter()
            .map(|r| RoleGrant {
                name: r.to_string(),
                until: None,
            })
            .collect(),
        services: Services::All,
        notifications: vec![],
        invitation: None,
        etag: format!("\"{email}-1\""),
    }
    .into()
}

fn run(d: &DesiredAccount, o: &ObservedAccount, principal: &Whoami, now: Timestamp) -> AccountPlan {
    let catalog = catalog();
    let ctx = Context {
        catalog: &catalog,
        principal,
        now,
        plan_id: "test",
    };
    plan_account(d, o, &ctx)
}

fn actions(p: &AccountPlan) -> Vec<String> {
    p.changes
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                c.action,
                c.email.as_deref().unwrap_or("-"),
                c.role.as_deref().unwrap_or("-")
            )
        })
        .collect()
}

// --- A simulated portal, to apply plans to ------------------------------------------------

/// Applies operations the way the reference portal does (roles past `until` disappear).
fn simulate(
    o: &ObservedAccount,
    ops: &[Operation],
    d: &DesiredAccount,
    now: Timestamp,
) -> ObservedAccount {
    let mut o = o.clone();
    let mut n = 0;
    let mut etag = |what: &str| {
        n += 1;
        format!("\"{what}-s{n}\"")
    };
    for op in ops {
        match op {
            Operation::CreateAccount { account, .. } => {
                o.account = Some(
                    Account {
                        customer_number: account.customer_number.clone(),
                        display_name: account.display_name.clone(),
                        time_zone: account.time_zone.clone(),
                        etag: etag("acct"),
                    }
                    .into(),
                )
            }
            Operation::UpdateAccount { patch, .. } => {
                let a = o.account.as_mut().unwrap();
                if let Some(n) = &patch.display_name {
                    a.display_name = n.clone();
                }
                if let Some(t) = &patch.time_zone {
                    a.time_zone = t.clone();
                }
                a.etag = etag("acct");
            }
            Operation::PutMember { email, member, .. } => {
                let e = etag(email);
                simulate_put_member(&mut o, email, member, e);
            }
            Operation::DeleteMember { email, .. } => o
                .members
                .retain(|m| !crate::domain::same_email(&m.email, email)),
            Operation::Invite { email, .. } => {
                let m = o
                    .members
                    .iter_mut()
                    .find(|m| crate::domain::same_email(&m.email, email))
                    .unwrap();
                assert!(!m.user_linked, "invited a linked member");
                m.invitation = Some(
                    Invitation {
                        id: "inv".into(),
                        status: InvitationStatus::Pending,
                        sent_at: now.to_string(),
                        expires_at: (now + jiff::SignedDuration::from_hours(24 * 14)).to_string(),
                    }
                    .into(),
                );
            }
            Operation::CancelInvitation { email } => {
                if let Some(m) = o
                    .members
                    .iter_mut()
                    .find(|m| crate::domain::same_email(&m.email, email))
                {
                    m.invitation = None;
                }
            }
            Operation::PutContact { email, contact, .. } => {
                let e = etag(email);
                o.contacts
                    .retain(|c| !crate::domain::same_email(&c.email, email));
                o.contacts.push(
                    Contact {
                        customer_number: Some("10042".into()),
                        email: email.clone(),
                        name: contact.name.clone(),
                        notifications: contact.notifications.clone(),
                        etag: e,
                    }
                    .into(),
                );
            }
            Operation::DeleteContact { email, .. } => o
                .contacts
                .retain(|c| !crate::domain::same_email(&c.email, email)),
        }
    }
    // The portal lists no role whose `until` has passed.
    let tz = &d.time_zone;
    for m in &mut o.members {
        m.roles.retain(|r| match &r.until {
            Some(u) => Window {
                from: None,
                until: Some(u.date().unwrap()),
            }
            .is_active(now, tz),
            None => true,
        });
    }
    o
}

fn admins(o: &ObservedAccount) -> usize {
    o.members
        .iter()
        .filter(|m| {
            m.user_linked
                && m.roles.iter().any(|r| r.name == "customer-admin")
                && m.roles.iter().any(|r| r.name == "cockpit-access")
        })
        .count()
}

/// A linked admin of the portal whose declared `customer-admin` holds in `window`.
fn admin_with(
    email: &str,
    from: Option<&str>,
    until: Option<&str>,
) -> (DesiredMember, ObservedMember) {
    (
        member(
            email,
            vec![
                role("cockpit-access", None, None),
                role("customer-admin", from, until),
            ],
        ),
        observed_member(email, &["cockpit-access", "customer-admin"], true),
    )
}

fn with_admins(
    tz: &str,
    list: Vec<(DesiredMember, ObservedMember)>,
) -> (DesiredAccount, ObservedAccount) {
    let (desired, observed): (Vec<_>, Vec<_>) = list.into_iter().unzip();
    let d = account(tz, desired);
    let o = ObservedAccount {
        account: Some(portal_account(tz)),
        members: observed,
        ..Default::default()
    };
    (d, o)
}

/// A member write, as the reference portal takes it.
fn simulate_put_member(o: &mut ObservedAccount, email: &str, member: &MemberPut, e: String) {
    let pos = o
        .members
        .iter()
        .position(|m| crate::domain::same_email(&m.email, email));
    let m = match pos {
        Some(i) => &mut o.members[i],
        None => {
            o.members.push(observed_member(email, &[], false));
            o.members.last_mut().unwrap()
        }
    };
    m.roles = member.roles.iter().cloned().map(Into::into).collect();
    // As the reference portal: a field the write leaves out keeps its value.
    if let Some(n) = &member.name {
        m.name = Some(n.clone());
    }
    if let Some(s) = &member.services {
        m.services = s.clone();
    }
    if let Some(k) = &member.notifications {
        m.notifications = k.clone();
    }
    m.etag = e;
}
