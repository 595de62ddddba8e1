//! `apply_account` against an in-memory portal that checks `If-Match` as the reference portal
//! does: every write of a member gets a new etag, and a write carrying any other etag is
//! refused with 412.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;
use crate::portal::{
    Account, AccountPatch, AuditEntry, Catalog, Contact, Invitation, Member, NewAccount,
    PortalResult, Services, Whoami,
};

/// One account's members, with an etag counter: the etag changes on every write.
#[derive(Default)]
struct FakePortal {
    members: Mutex<BTreeMap<String, Member>>,
    writes: Mutex<Vec<String>>,
    next_etag: Mutex<u32>,
}

impl FakePortal {
    fn with_member(email: &str, roles: &[&str]) -> FakePortal {
        let portal = FakePortal::default();
        let member = Member {
            customer_number: Some(CN.into()),
            email: email.into(),
            name: None,
            user_linked: true,
            roles: grants(roles),
            services: Services::All,
            notifications: Vec::new(),
            invitation: None,
            etag: portal.etag(),
        };
        lock(&portal.members).insert(email.into(), member);
        portal
    }

    fn etag(&self) -> String {
        let mut n = lock(&self.next_etag);
        *n += 1;
        format!("\"m{n}\"")
    }

    fn member(&self, email: &str) -> Option<Member> {
        lock(&self.members).get(email).cloned()
    }

    /// 412 unless `if_match` is the member's current etag (or absent for a new member).
    fn check(&self, email: &str, if_match: Option<&str>) -> PortalResult<()> {
        let current = self.member(email).map(|m| m.etag);
        match (current.as_deref(), if_match) {
            (None, None) => Ok(()),
            (Some(now), Some(sent)) if now == sent => Ok(()),
            _ => Err(PortalError::problem(
                412,
                ErrorCode::VersionConflict,
                format!("member {email}: If-Match does not match"),
            )),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

const CN: &str = "10042";

fn grants(roles: &[&str]) -> Vec<RoleGrant> {
    roles
        .iter()
        .map(|r| RoleGrant {
            name: (*r).into(),
            until: None,
        })
        .collect()
}

fn not_here<T>() -> PortalResult<T> {
    Err(PortalError::Protocol(
        "not part of this test's portal".into(),
    ))
}

impl Portal for FakePortal {
    async fn whoami(&self) -> PortalResult<Whoami> {
        not_here()
    }
    async fn catalog(&self) -> PortalResult<Catalog> {
        not_here()
    }
    async fn list_accounts(&self) -> PortalResult<Vec<Account>> {
        not_here()
    }
    async fn get_account(&self, _: &str) -> PortalResult<Account> {
        not_here()
    }
    async fn create_account(&self, _: &NewAccount, _: &str) -> PortalResult<Account> {
        not_here()
    }
    async fn update_account(
        &self,
        _: &str,
        _: &AccountPatch,
        _: Option<&str>,
    ) -> PortalResult<Account> {
        not_here()
    }
    async fn list_members(&self, _: &AccountFilter) -> PortalResult<Vec<Member>> {
        Ok(lock(&self.members).values().cloned().collect())
    }
    async fn put_member(
        &self,
        _: &str,
        email: &str,
        put: &MemberPut,
        if_match: Option<&str>,
    ) -> PortalResult<Member> {
        self.check(email, if_match)?;
        let old = self.member(email);
        let member = Member {
            customer_number: Some(CN.into()),
            email: email.into(),
            name: put.name.clone(),
            user_linked: old.as_ref().is_some_and(|m| m.user_linked),
            roles: put.roles.clone(),
            services: put.services.clone().unwrap_or_default(),
            notifications: put.notifications.clone().unwrap_or_default(),
            invitation: None,
            etag: self.etag(),
        };
        lock(&self.members).insert(email.into(), member.clone());
        lock(&self.writes).push(format!("put {email}"));
        Ok(member)
    }
    async fn delete_member(
        &self,
        _: &str,
        email: &str,
        if_match: Option<&str>,
    ) -> PortalResult<()> {
        self.check(email, if_match)?;
        lock(&self.members).remove(email);
        lock(&self.writes).push(format!("delete {email}"));
        Ok(())
    }
    async fn invite(&self, _: &str, _: &str, _: bool, _: &str) -> PortalResult<Invitation> {
        not_here()
    }
    async fn cancel_invitation(&self, _: &str, _: &str) -> PortalResult<()> {
        not_here()
    }
    async fn list_contacts(&self, _: &AccountFilter) -> PortalResult<Vec<Contact>> {
        Ok(Vec::new())
    }
    async fn put_contact(
        &self,
        _: &str,
        _: &str,
        _: &ContactPut,
        _: Option<&str>,
    ) -> PortalResult<Contact> {
        not_here()
    }
    async fn delete_contact(&self, _: &str, _: &str, _: Option<&str>) -> PortalResult<()> {
        not_here()
    }
    async fn audit(&self, _: &str) -> PortalResult<Vec<AuditEntry>> {
        not_here()
    }
}

fn put(roles: &[&str]) -> MemberPut {
    MemberPut {
        name: None,
        roles: grants(roles),
        services: Some(Services::All),
        notifications: Some(Vec::new()),
    }
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map(|rt| rt.block_on(f))
        .unwrap_or_else(|e| panic!("a test runtime: {e}"))
}

/// An admin handover as the planner writes it: the member first gains `customer-admin`
/// (grants first), then loses `technical-contact` (revocations last). Both writes were planned
/// against the etag observed before the first; the second must carry the etag the first one
/// produced, or the portal refuses it as a conflict.
#[test]
fn a_member_written_twice_in_one_plan_carries_the_first_writes_etag_into_the_second() {
    let email = "bob@acme.example";
    let portal = FakePortal::with_member(email, &["cockpit-access", "technical-contact"]);
    let observed = portal.member(email).map(|m| m.etag);
    let operations = vec![
        Operation::PutMember {
            email: email.into(),
            member: put(&["cockpit-access", "customer-admin", "technical-contact"]),
            if_match: observed.clone(),
        },
        Operation::PutMember {
            email: email.into(),
            member: put(&["cockpit-access", "customer-admin"]),
            if_match: observed,
        },
    ];
    let outcome = run(apply_account(&portal, CN, &operations));
    assert_eq!(outcome.error, None, "{outcome:?}");
    assert_eq!((outcome.applied, outcome.total), (2, 2));
    assert_eq!(
        *lock(&portal.writes),
        [format!("put {email}"), format!("put {email}")]
    );
    let roles: Vec<String> = portal
        .member(email)
        .map(|m| m.roles.into_iter().map(|r| r.name).collect())
        .unwrap_or_default();
    assert_eq!(roles, ["cockpit-access", "customer-admin"]);
}

/// The same for a member written and then removed in one plan.
#[test]
fn a_member_written_then_removed_in_one_plan_carries_the_etag_into_the_removal() {
    let email = "carol@acme.example";
    let portal = FakePortal::with_member(email, &["technical-contact"]);
    let observed = portal.member(email).map(|m| m.etag);
    let operations = vec![
        Operation::PutMember {
            email: email.into(),
            member: put(&["technical-contact", "cockpit-access"]),
            if_match: observed.clone(),
        },
        Operation::DeleteMember {
            email: email.into(),
            if_match: observed,
        },
    ];
    let outcome = run(apply_account(&portal, CN, &operations));
    assert_eq!(outcome.error, None, "{outcome:?}");
    assert_eq!(outcome.applied, 2);
    assert!(portal.member(email).is_none());
}

/// A write planned against an etag that is no longer the member's is refused, and the
/// account stops there: the fake portal is as strict as the real one.
#[test]
fn a_write_against_a_stale_etag_is_refused_as_a_conflict() {
    let email = "dave@acme.example";
    let portal = FakePortal::with_member(email, &["technical-contact"]);
    let operations = vec![Operation::PutMember {
        email: email.into(),
        member: put(&["cockpit-access"]),
        if_match: Some("\"stale\"".into()),
    }];
    let outcome = run(apply_account(&portal, CN, &operations));
    assert_eq!(outcome.applied, 0);
    assert_eq!(outcome.cause, Some(FailureCause::Conflict));
    assert!(lock(&portal.writes).is_empty());
}
