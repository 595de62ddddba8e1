//! The planner, tested without I/O: scenarios and properties over random states.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::domain::{
    AccountPolicy, DesiredAccount, DesiredContact, DesiredMember, DesiredRole, Email, RemovalLimit,
    Services, SourceRef, Window, parse_date, parse_time_zone,
};
use crate::portal::{
    Account, Contact, Invitation, InvitationStatus, Member, PrincipalKind, RoleGrant,
};

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

fn portal_account(tz: &str) -> Account {
    Account {
        customer_number: "10042".into(),
        display_name: "Acme".into(),
        time_zone: tz.into(),
        etag: "\"a1\"".into(),
    }
}

fn observed_member(email: &str, roles: &[&str], linked: bool) -> Member {
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
                o.account = Some(Account {
                    customer_number: account.customer_number.clone(),
                    display_name: account.display_name.clone(),
                    time_zone: account.time_zone.clone(),
                    etag: etag("acct"),
                })
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
                m.roles = member.roles.clone();
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
                m.invitation = Some(Invitation {
                    id: "inv".into(),
                    status: InvitationStatus::Pending,
                    sent_at: now.to_string(),
                    expires_at: (now + jiff::SignedDuration::from_hours(24 * 14)).to_string(),
                });
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
                o.contacts.push(Contact {
                    customer_number: Some("10042".into()),
                    email: email.clone(),
                    name: contact.name.clone(),
                    notifications: contact.notifications.clone(),
                    etag: e,
                });
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
                until: Some(parse_date(u).unwrap()),
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

// --- Scenarios -----------------------------------------------------------------------------

#[test]
fn new_member_is_added_granted_and_invited_in_order() {
    let d = account(
        "Europe/Zurich",
        vec![member(
            "Bob@acme.example",
            vec![
                role("cockpit-access", None, None),
                role("technical-contact", None, Some("2026-12-31")),
            ],
        )],
    );
    let o = ObservedAccount {
        account: Some(portal_account("Europe/Zurich")),
        ..Default::default()
    };
    let p = run(&d, &o, &operator(), ts("2026-11-26T09:00:00Z"));
    assert_eq!(
        actions(&p),
        [
            "add-member Bob@acme.example -",
            "grant Bob@acme.example cockpit-access",
            "grant Bob@acme.example technical-contact",
            "invite Bob@acme.example -"
        ]
    );
    // The e-mail goes to the portal as declared; `until` travels with the grant.
    match &p.operations[0] {
        Operation::PutMember {
            email,
            member,
            if_match,
        } => {
            assert_eq!(email, "Bob@acme.example");
            assert_eq!(*if_match, None);
            assert_eq!(member.roles[1].until.as_deref(), Some("2026-12-31"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p.operations[1],
        Operation::Invite { resend: false, .. }
    ));
    // The window closes at the end of 2026-12-31 in Zurich.
    assert_eq!(p.next_transition, Some(ts("2026-12-31T23:00:00Z")));
}

#[test]
fn a_role_before_its_from_is_not_granted_and_the_plan_says_when() {
    let d = account(
        "America/New_York",
        vec![member(
            "a@x.example",
            vec![
                role("cockpit-access", None, None),
                role("customer-admin", Some("2026-12-01"), None),
            ],
        )],
    );
    let o = ObservedAccount {
        account: Some(portal_account("America/New_York")),
        members: vec![observed_member("a@x.example", &["cockpit-access"], true)],
        ..Default::default()
    };
    let before = run(&d, &o, &operator(), ts("2026-12-01T04:59:59Z"));
    assert!(before.changes.is_empty(), "{:?}", actions(&before));
    assert_eq!(before.next_transition, Some(ts("2026-12-01T05:00:00Z")));
    assert!(before.notes[0].contains("customer-admin will be granted from 2026-12-01"));
    let at = run(&d, &o, &operator(), ts("2026-12-01T05:00:00Z"));
    assert_eq!(actions(&at), ["grant a@x.example customer-admin"]);
    assert_eq!(
        at.changes[0].reason.as_deref(),
        Some("window opened 2026-12-01")
    );
}

#[test]
fn an_expired_role_still_shown_is_revoked_with_its_reason() {
    let d = account(
        "UTC",
        vec![member(
            "a@x.example",
            vec![
                role("cockpit-access", None, None),
                role("technical-contact", None, Some("2026-11-01")),
            ],
        )],
    );
    let o = ObservedAccount {
        account: Some(portal_account("UTC")),
        members: vec![observed_member(
            "a@x.example",
            &["cockpit-access", "technical-contact"],
            true,
        )],
        ..Default::default()
    };
    let p = run(&d, &o, &operator(), ts("2026-11-26T00:00:00Z"));
    assert_eq!(actions(&p), ["revoke a@x.example technical-contact"]);
    assert_eq!(p.changes[0].reason.as_deref(), Some("expired 2026-11-01"));
}

#[test]
fn admin_handover_grants_before_it_revokes() {
    // Alice hands customer-admin to Carol; Alice also gains technical-contact.
    let d = account(
        "UTC",
        vec![
            member(
                "alice@x.example",
                vec![
                    role("cockpit-access", None, None),
                    role("technical-contact", None, None),
                ],
            ),
            member(
                "carol@x.example",
                vec![
                    role("cockpit-access", None, None),
                    role("customer-admin", None, None),
                ],
            ),
        ],
    );
    let o = ObservedAccount {
        account: Some(portal_account("UTC")),
        members: vec![
            observed_member(
                "alice@x.example",
                &["cockpit-access", "customer-admin"],
                true,
            ),
            observed_member("carol@x.example", &["cockpit-access"], true),
        ],
        ..Default::default()
    };
    let p = run(&d, &o, &operator(), ts("2026-11-26T00:00:00Z"));
    assert!(p.refused.is_none(), "{:?}", p.refused);
    let writes: Vec<String> = p
        .operations
        .iter()
        .map(|op| match op {
            Operation::PutMember { email, member, .. } => format!(
                "put {email} {}",
                member
                    .roles
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        writes,
        [
            "put alice@x.example cockpit-access,customer-admin,technical-contact",
            "put carol@x.example cockpit-access,customer-admin",
            "put alice@x.example cockpit-access,technical-contact",
        ]
    );
}

#[test]
fn removing_the_last_admin_is_refused_and_changes_nothing() {
    let d = account(
        "UTC",
        vec![member(
            "alice@x.example",
            vec![role("cockpit-access", None, None)],
        )],
    );
    let o = ObservedAccount {
        account: Some(portal_account("UTC")),
        members: vec![observed_member(
            "alice@x.example",
            &["cockpit-access", "customer-admin"],
            true,
        )],
        ..Default::default()
    };
    let p = run(&d, &o, &operator(), ts("2026-11-26T00:00:00Z"));
    assert_eq!(
        p.refused,
        Some(Refusal::LastAdmin {
            customer_number: d.customer_number.clone()
        })
    );
    assert!(p.operations.is_empty());
}

#[test]
fn an_unlinked_admin_does_not_count_so_handing_over_to_them_is_refused() {
    let d = account(
        "UTC",
        vec![
            member("alice@x.example", vec![role("cockpit-access", None, None)]),
            member(
                "carol@x.example",
                vec![
                    role("cockpit-access", None, None),
                    role("customer-admin", None, None),
                ],
            ),
        ],
    );
    let o = ObservedAccount {
        account: Some(portal_account("UTC")),
        members: vec![observed_member(
            "alice@x.example",
            &["cockpit-access", "customer-admin"],
            true,
        )],
        ..Default::default()
    };
    let p = run(&d, &o, &operator(), ts("2026-11-26T00:00:00Z"));
    assert!(p.refused.is_some());
}

#[test]
fn max_removals_counts_prunes_but_not_declared_expiries() {
    let mut d = account(
        "UTC",
        vec![member(
            "keep@x.example",
            vec![
                role("cockpit-access", None, None),
                role("customer-admin", None, None),
            ],
        )],
    );
    d.policy.max_removals = RemovalLimit::Default;
    let mut members = vec![observed_member(
        "keep@x.example",
        &["cockpit-access", "customer-admin"],
        true,
    )];
    for i in 0..4 {
        members.push(observed_member(
            &format!("old{i}@x.example"),
            &["technical-contact"],
            false,
        ));
    }
    let o = ObservedAccount {
        account: Some(portal_account("UTC")),
        members,
        ..Default::default()
    };
    let p = run(&d, &o, &operator(), ts("2026-11-26T00:00:00Z"));
    let reason = p.refused.expect("4 removals of 5 exceed 25% (floor 3)");
    assert!(
        matches!(
            reason,
            Refusal::MaxRemovals {
                removals: 4,
                current: 5,
                ..
            }
        ),
        "{reason}"
    );
    assert!(p.operations.is_empty());
    // Three are within the floor of 3.
    let mut o3 = o.clone();
    o3.members.truncate(4);
    assert!(
        run(&d, &o3, &operator(), ts("2026-11-26T00:00:00Z"))
            .refused
            .is_none()
    );
}

/// An account with one admin and `n` undeclared members that prune removes.
fn with_undeclared(n: usize) -> (DesiredAccount, ObservedAccount) {
    let d = account(
        "UTC",
        vec![member(
            "keep@x.example",
            vec![
                role("cockpit-access", None, None),
                role("customer-admin", None, None),
            ],
        )],
    );
    let mut members = vec![observed_member(
        "keep@x.example",
        &["cockpit-access", "customer-admin"],
        true,
    )];
    for i in 0..n {
        members.push(observed_member(
            &format!("old{i}@x.example"),
            &["technical-contact"],
            false,
        ));
    }
    let o = ObservedAccount {
        account: Some(portal_account("UTC")),
        members,
        ..Default::default()
    };
    (d, o)
}

#[test]
fn an_explicit_max_removals_count_is_the_limit_even_below_three() {
    let now = ts("2026-11-26T00:00:00Z");
    for (limit, removals, refused) in [
        (0, 1, true),
        (0, 0, false),
        (1, 2, true),
        (1, 1, false),
        (2, 3, true),
        (2, 2, false),
    ] {
        let (mut d, o) = with_undeclared(removals);
        d.policy.max_removals = RemovalLimit::Count(limit);
        let p = run(&d, &o, &operator(), now);
        assert_eq!(
            p.refused.is_some(),
            refused,
            "maxRemovals {limit}, {removals} removals: {:?}",
            p.refused
        );
        if refused {
            assert!(p.operations.is_empty());
            assert!(
                matches!(
                    p.refused,
                    Some(Refusal::MaxRemovals { limit: RemovalLimit::Count(l), allowed, .. })
                        if l == limit && allowed == limit
                ),
                "{:?}",
                p.refused
            );
        }
    }
}

#[test]
fn an_explicit_percentage_has_no_floor_but_the_default_has() {
    let now = ts("2026-11-26T00:00:00Z");
    // 3 removals of 4 members: 10% of 4 is 0, so an explicit 10% refuses them all …
    let (mut d, o) = with_undeclared(3);
    d.policy.max_removals = RemovalLimit::Percent(10);
    let reason = run(&d, &o, &operator(), now).refused;
    assert!(
        matches!(
            reason,
            Some(Refusal::MaxRemovals {
                limit: RemovalLimit::Percent(10),
                allowed: 0,
                ..
            })
        ),
        "{reason:?}"
    );
    // … while the default (25%, never less than 3) lets them through.
    d.policy.max_removals = RemovalLimit::Default;
    assert_eq!(run(&d, &o, &operator(), now).refused, None);
    assert_eq!(RemovalLimit::Default.allowed(100), 25);
    assert_eq!(RemovalLimit::Percent(100).allowed(7), 7);
}

#[test]
fn the_principal_may_not_revoke_its_own_admin_unless_allowed() {
    let me = Whoami {
        email: Some("Me@x.example".into()),
        kind: PrincipalKind::User,
    };
    let mut d = account(
        "UTC",
        vec![
            member("me@x.example", vec![role("cockpit-access", None, None)]),
            member(
                "boss@x.example",
                vec![
                    role("cockpit-access", None, None),
                    role("customer-admin", None, None),
                ],
            ),
        ],
    );
    let o = ObservedAccount {
        account: Some(portal_account("UTC")),
        members: vec![
            observed_member("me@x.example", &["cockpit-access", "customer-admin"], true),
            observed_member(
                "boss@x.example",
                &["cockpit-access", "customer-admin"],
                true,
            ),
        ],
        ..Default::default()
    };
    let p = run(&d, &o, &me, ts("2026-11-26T00:00:00Z"));
    assert!(
        matches!(
            &p.refused,
            Some(Refusal::SelfLockout {
                applying: false,
                ..
            })
        ),
        "{:?}",
        p.refused
    );
    d.policy.allow_self_revoke = true;
    assert!(
        run(&d, &o, &me, ts("2026-11-26T00:00:00Z"))
            .refused
            .is_none()
    );
}

#[test]
fn expired_invitations_are_sent_again_and_live_ones_left_alone() {
    let d = account(
        "UTC",
        vec![member(
            "new@x.example",
            vec![role("cockpit-access", None, None)],
        )],
    );
    let mut m = observed_member("new@x.example", &["cockpit-access"], false);
    m.invitation = Some(Invitation {
        id: "i1".into(),
        status: InvitationStatus::Pending,
        sent_at: "2026-11-01T00:00:00Z".into(),
        expires_at: "2026-11-15T00:00:00Z".into(),
    });
    let o = ObservedAccount {
        account: Some(portal_account("UTC")),
        members: vec![m],
        ..Default::default()
    };
    let later = run(&d, &o, &operator(), ts("2026-11-26T00:00:00Z"));
    assert_eq!(actions(&later), ["resend-invitation new@x.example -"]);
    assert_eq!(
        later.changes[0].reason.as_deref(),
        Some("invitation expired 2026-11-15")
    );
    let before = run(&d, &o, &operator(), ts("2026-11-14T00:00:00Z"));
    assert!(before.changes.is_empty());
    assert_eq!(before.next_transition, Some(ts("2026-11-15T00:00:00Z")));
}

#[test]
fn unknown_roles_are_errors_naming_the_catalog() {
    let d = account(
        "UTC",
        vec![member(
            "a@x.example",
            vec![role("cockpit-acess", None, None)],
        )],
    );
    let p = run(
        &d,
        &ObservedAccount::default(),
        &operator(),
        ts("2026-11-26T00:00:00Z"),
    );
    assert_eq!(p.errors.len(), 1);
    assert!(
        p.errors[0]
            .message
            .contains("unknown role \"cockpit-acess\"")
    );
    assert!(
        p.errors[0]
            .message
            .contains("cockpit-access, technical-contact, customer-admin")
    );
}

#[test]
fn a_missing_account_is_created_only_by_an_operator() {
    let d = account(
        "UTC",
        vec![member(
            "a@x.example",
            vec![role("cockpit-access", None, None)],
        )],
    );
    let p = run(
        &d,
        &ObservedAccount::default(),
        &operator(),
        ts("2026-11-26T00:00:00Z"),
    );
    assert_eq!(p.changes[0].action, Action::CreateAccount);
    let user = Whoami {
        email: Some("u@x.example".into()),
        kind: PrincipalKind::User,
    };
    let p = run(
        &d,
        &ObservedAccount::default(),
        &user,
        ts("2026-11-26T00:00:00Z"),
    );
    assert!(
        matches!(p.refused, Some(Refusal::MayNotCreate { .. })),
        "{:?}",
        p.refused
    );
}

#[test]
fn ignored_and_additive_accounts_keep_what_they_do_not_declare() {
    let mut d = account(
        "UTC",
        vec![member(
            "a@x.example",
            vec![
                role("cockpit-access", None, None),
                role("customer-admin", None, None),
            ],
        )],
    );
    d.policy.ignore = vec![crate::domain::EmailGlob::new("*@provider.example")];
    let o = ObservedAccount {
        account: Some(portal_account("UTC")),
        members: vec![
            observed_member("a@x.example", &["cockpit-access", "customer-admin"], true),
            observed_member(
                "ops@provider.example",
                &["cockpit-access", "customer-admin"],
                true,
            ),
        ],
        ..Default::default()
    };
    assert!(
        run(&d, &o, &operator(), ts("2026-11-26T00:00:00Z"))
            .changes
            .is_empty()
    );
    let mut o2 = o.clone();
    o2.members.push(observed_member(
        "extra@x.example",
        &["technical-contact"],
        false,
    ));
    assert_eq!(
        actions(&run(&d, &o2, &operator(), ts("2026-11-26T00:00:00Z"))),
        ["remove-member extra@x.example -"]
    );
    d.policy.prune = false;
    assert!(
        run(&d, &o2, &operator(), ts("2026-11-26T00:00:00Z"))
            .changes
            .is_empty()
    );
}

// --- Properties ----------------------------------------------------------------------------

const EMAILS: [&str; 5] = [
    "a@x.example",
    "B@x.example",
    "c@x.example",
    "d@x.example",
    "e@x.example",
];
const ROLES: [&str; 3] = ["cockpit-access", "technical-contact", "customer-admin"];
const DATES: [&str; 5] = [
    "2026-11-01",
    "2026-11-25",
    "2026-11-26",
    "2026-11-27",
    "2027-01-31",
];
const ZONES: [&str; 3] = ["UTC", "Europe/Zurich", "America/New_York"];

fn arb_window() -> impl Strategy<Value = (Option<usize>, Option<usize>)> {
    (
        proptest::option::of(0..DATES.len()),
        proptest::option::of(0..DATES.len()),
    )
        .prop_map(|(f, u)| match (f, u) {
            (Some(f), Some(u)) if f > u => (Some(u), Some(f)),
            other => other,
        })
}

fn arb_desired() -> impl Strategy<Value = DesiredAccount> {
    let roles = proptest::collection::btree_map(0..ROLES.len(), arb_window(), 1..=3);
    (
        0..ZONES.len(),
        proptest::collection::btree_map(0..EMAILS.len(), roles, 0..5),
        proptest::collection::btree_map(
            0..EMAILS.len(),
            proptest::collection::btree_set(0..3usize, 0..3),
            0..3,
        ),
        any::<bool>(),
    )
        .prop_map(|(z, members, contacts, prune)| {
            let members = members
                .into_iter()
                .map(|(e, roles)| {
                    let roles = roles
                        .into_iter()
                        .map(|(r, (f, u))| role(ROLES[r], f.map(|i| DATES[i]), u.map(|i| DATES[i])))
                        .collect();
                    member(EMAILS[e], roles)
                })
                .collect();
            let mut d = account(ZONES[z], members);
            d.contacts = contacts
                .into_iter()
                .map(|(e, kinds)| DesiredContact {
                    email: Email::parse(&format!("contact-{}", EMAILS[e])).unwrap(),
                    name: Some(format!("C{e}")),
                    notifications: kinds
                        .into_iter()
                        .map(|k| ["general", "invoices", "support"][k].to_string())
                        .collect(),
                    source: src(),
                })
                .collect();
            d.policy.prune = prune;
            d
        })
}

fn arb_observed() -> impl Strategy<Value = ObservedAccount> {
    let member = (
        proptest::collection::btree_set(0..ROLES.len(), 0..=3),
        any::<bool>(),
        any::<bool>(),
    );
    (
        proptest::collection::btree_map(0..EMAILS.len(), member, 0..5),
        proptest::collection::btree_set(0..EMAILS.len(), 0..3),
    )
        .prop_map(|(members, contacts)| ObservedAccount {
            account: Some(portal_account("UTC")),
            members: members
                .into_iter()
                .filter(|(_, (roles, _, _))| !roles.is_empty())
                .map(|(e, (roles, linked, invited))| {
                    let names: Vec<&str> = roles.iter().map(|r| ROLES[*r]).collect();
                    let mut m = observed_member(&EMAILS[e].to_lowercase(), &names, linked);
                    if invited && !linked {
                        m.invitation = Some(Invitation {
                            id: format!("i{e}"),
                            status: InvitationStatus::Pending,
                            sent_at: "2026-11-20T00:00:00Z".into(),
                            expires_at: "2026-12-04T00:00:00Z".into(),
                        });
                    }
                    m
                })
                .collect(),
            contacts: contacts
                .into_iter()
                .map(|e| Contact {
                    customer_number: Some("10042".into()),
                    email: format!("contact-{}", EMAILS[e]),
                    name: "Old".into(),
                    notifications: vec!["general".into()],
                    etag: format!("\"c{e}\""),
                })
                .collect(),
        })
}

fn arb_now() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        Just(ts("2026-11-26T00:00:00Z")),
        Just(ts("2026-11-25T23:00:00Z")),
        Just(ts("2026-11-27T04:59:59Z")),
        Just(ts("2026-11-27T05:00:00Z")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn applying_a_plan_converges_and_replanning_is_empty(d in arb_desired(), o in arb_observed(), now in arb_now()) {
        let p = run(&d, &o, &operator(), now);
        prop_assume!(p.refused.is_none());
        let after = simulate(&o, &p.operations, &d, now);
        let again = run(&d, &after, &operator(), now);
        prop_assert!(again.changes.is_empty(), "second plan not empty: {:?}", actions(&again));

        // The effective roles are exactly the declared roles whose windows hold now.
        for dm in &d.members {
            let want: BTreeSet<&str> = dm.roles.iter().filter(|r| r.window.is_active(now, &d.time_zone)).map(|r| r.name.as_str()).collect();
            let have: BTreeSet<&str> = after
                .members
                .iter()
                .find(|m| m.email.eq_ignore_ascii_case(dm.email.as_str()))
                .map(|m| m.roles.iter().map(|r| r.name.as_str()).collect())
                .unwrap_or_default();
            if d.policy.prune {
                prop_assert_eq!(&have, &want, "{}", dm.email);
            } else {
                prop_assert!(want.is_subset(&have), "{}", dm.email);
            }
        }
        if d.policy.prune {
            let declared: BTreeSet<String> = d.members.iter().map(|m| m.email.key().to_string()).collect();
            for m in &after.members {
                prop_assert!(declared.contains(&m.email.to_lowercase()), "undeclared member {} kept", m.email);
            }
            prop_assert_eq!(after.contacts.len(), d.contacts.len());
        }
    }

    #[test]
    fn no_applied_plan_leaves_an_account_without_its_admin(d in arb_desired(), o in arb_observed(), now in arb_now()) {
        let p = run(&d, &o, &operator(), now);
        let after = simulate(&o, &p.operations, &d, now);
        if admins(&o) > 0 {
            prop_assert!(admins(&after) > 0 || p.operations.is_empty());
        }
        // And every prefix of the writes keeps one too: the order is safe.
        if admins(&o) > 0 && p.refused.is_none() {
            for k in 0..=p.operations.len() {
                let mid = simulate(&o, &p.operations[..k], &d, now);
                prop_assert!(admins(&mid) > 0, "no admin after {} of {} writes", k, p.operations.len());
            }
        }
    }

    #[test]
    fn plans_are_deterministic_whatever_the_order_of_observation(d in arb_desired(), o in arb_observed(), now in arb_now()) {
        let p1 = run(&d, &o, &operator(), now);
        let mut shuffled = o.clone();
        shuffled.members.reverse();
        shuffled.contacts.reverse();
        let mut d2 = d.clone();
        d2.members.reverse();
        let p2 = run(&d2, &shuffled, &operator(), now);
        prop_assert_eq!(p1, p2);
    }

    #[test]
    fn a_user_principal_never_plans_away_its_own_access(d in arb_desired(), o in arb_observed(), now in arb_now()) {
        let me = Whoami { email: Some("A@x.example".into()), kind: PrincipalKind::User };
        let p = run(&d, &o, &me, now);
        if p.refused.is_none() {
            let after = simulate(&o, &p.operations, &d, now);
            let had: BTreeSet<String> = o.members.iter().filter(|m| m.email.eq_ignore_ascii_case("a@x.example")).flat_map(|m| m.roles.iter().map(|r| r.name.clone())).collect();
            let has: BTreeSet<String> = after.members.iter().filter(|m| m.email.eq_ignore_ascii_case("a@x.example")).flat_map(|m| m.roles.iter().map(|r| r.name.clone())).collect();
            for r in ["customer-admin", "cockpit-access"] {
                prop_assert!(!had.contains(r) || has.contains(r), "{r} revoked from the principal");
            }
        }
    }
}

#[test]
fn summary_counts_by_action() {
    let d = account(
        "UTC",
        vec![member(
            "a@x.example",
            vec![role("cockpit-access", None, None)],
        )],
    );
    let p = run(
        &d,
        &ObservedAccount {
            account: Some(portal_account("UTC")),
            ..Default::default()
        },
        &operator(),
        ts("2026-11-26T00:00:00Z"),
    );
    let s = summary([&p]);
    let want: BTreeMap<Action, usize> = [
        (Action::AddMember, 1),
        (Action::Grant, 1),
        (Action::Invite, 1),
    ]
    .into();
    assert_eq!(s, want);
}

/// A WHMCS-like catalog: permissions that all grant login, the read-only `owner`, no ETags.
fn owner_catalog() -> Catalog {
    let mut catalog = catalog();
    for name in ["tickets", "invoices"] {
        catalog.roles.push(crate::portal::CatalogRole {
            name: name.into(),
            description: String::new(),
            grants_login: true,
            requires: vec![],
            read_only: false,
        });
    }
    catalog.roles.push(crate::portal::CatalogRole {
        name: "owner".into(),
        description: String::new(),
        grants_login: true,
        requires: vec![],
        read_only: true,
    });
    catalog.capabilities.etags = false;
    catalog.capabilities.scheduled_revocation = false;
    catalog
}

fn run_with(d: &DesiredAccount, o: &ObservedAccount, catalog: &Catalog) -> AccountPlan {
    let principal = operator();
    let ctx = Context {
        catalog,
        principal: &principal,
        now: ts("2026-11-26T09:00:00Z"),
        plan_id: "test",
    };
    plan_account(d, o, &ctx)
}

#[test]
fn a_read_only_role_holder_is_never_changed_or_removed_and_counts_as_admin() {
    let catalog = owner_catalog();
    let observed = ObservedAccount {
        account: Some(portal_account("UTC")),
        members: vec![
            observed_member("owner@x.example", &["invoices", "owner", "tickets"], true),
            observed_member("staff@x.example", &["tickets"], true),
        ],
        contacts: vec![],
    };
    // Omitted with prune, declared with fewer roles, declared with none of its own: the owner
    // stays as it is; only the other member is removed. No last-admin refusal: the owner is
    // the admin after the plan as before.
    for members in [
        vec![],
        vec![member("owner@x.example", vec![role("tickets", None, None)])],
    ] {
        let p = run_with(&account("UTC", members), &observed, &catalog);
        assert_eq!(p.refused, None);
        assert_eq!(actions(&p), ["remove-member staff@x.example -"]);
        for op in &p.operations {
            assert_ne!(op.email(), Some("owner@x.example"), "{op:?}");
        }
    }
}

#[test]
fn a_read_only_role_is_never_granted() {
    let catalog = owner_catalog();
    let observed = ObservedAccount {
        account: Some(portal_account("UTC")),
        ..Default::default()
    };
    let d = account(
        "UTC",
        vec![member(
            "new@x.example",
            vec![role("owner", None, None), role("tickets", None, None)],
        )],
    );
    let p = run_with(&d, &observed, &catalog);
    assert_eq!(
        actions(&p),
        [
            "add-member new@x.example -",
            "grant new@x.example tickets",
            "invite new@x.example -"
        ]
    );
    assert!(
        p.notes.iter().any(|n| n.contains("read-only role")),
        "{:?}",
        p.notes
    );
}

#[test]
fn a_portal_without_etags_is_said_in_the_plan() {
    let observed = ObservedAccount {
        account: Some(portal_account("UTC")),
        ..Default::default()
    };
    let d = account(
        "UTC",
        vec![member("a@x.example", vec![role("tickets", None, None)])],
    );
    let p = run_with(&d, &observed, &owner_catalog());
    assert!(
        p.notes.iter().any(|n| n.contains("no ETags")),
        "{:?}",
        p.notes
    );
    let p = run_with(&account("UTC", vec![]), &observed, &owner_catalog());
    assert!(
        p.notes.is_empty(),
        "nothing to apply, nothing to warn about: {:?}",
        p.notes
    );
}

#[test]
fn a_portal_without_a_time_zone_is_not_asked_to_change_it() {
    let observed = ObservedAccount {
        account: Some(portal_account("")),
        ..Default::default()
    };
    let p = run_with(
        &account("Europe/Zurich", vec![]),
        &observed,
        &owner_catalog(),
    );
    assert!(actions(&p).is_empty(), "{:?}", actions(&p));
    let observed = ObservedAccount {
        account: Some(portal_account("UTC")),
        ..Default::default()
    };
    let p = run_with(&account("Europe/Zurich", vec![]), &observed, &catalog());
    assert_eq!(actions(&p), ["update-account - -"]);
}

// --- The last-admin rule over time (issue 16 §4 item 4) -----------------------------------

/// A linked admin of the portal whose declared `customer-admin` holds in `window`.
fn admin_with(email: &str, from: Option<&str>, until: Option<&str>) -> (DesiredMember, Member) {
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

fn with_admins(tz: &str, list: Vec<(DesiredMember, Member)>) -> (DesiredAccount, ObservedAccount) {
    let (desired, observed): (Vec<_>, Vec<_>) = list.into_iter().unzip();
    let d = account(tz, desired);
    let o = ObservedAccount {
        account: Some(portal_account(tz)),
        members: observed,
        ..Default::default()
    };
    (d, o)
}

#[test]
fn an_only_admin_with_an_until_is_refused_before_the_date() {
    let now = ts("2026-11-26T09:00:00Z");
    let (d, o) = with_admins(
        "Europe/Zurich",
        vec![admin_with("alice@x.example", None, Some("2026-11-30"))],
    );
    let p = run(&d, &o, &operator(), now);
    let reason = p
        .refused
        .expect("the account would have no admin from 2026-12-01");
    // Evaluated in the account's time zone: the role ends at midnight in Zurich.
    assert_eq!(
        reason,
        Refusal::LastAdminLater {
            customer_number: d.customer_number.clone(),
            local: "2026-12-01 00:00 Europe/Zurich".into(),
            at: ts("2026-11-30T23:00:00Z"),
        }
    );
    assert!(p.operations.is_empty());
}

#[test]
fn a_handover_with_an_overlap_or_a_second_admin_is_allowed() {
    let now = ts("2026-11-26T09:00:00Z");
    // Bob takes over the instant Alice's role ends (in the same zone): no gap.
    let (d, o) = with_admins(
        "Europe/Zurich",
        vec![
            admin_with("alice@x.example", None, Some("2026-11-30")),
            admin_with("bob@x.example", Some("2026-12-01"), None),
        ],
    );
    let p = run(&d, &o, &operator(), now);
    assert_eq!(p.refused, None);
    // A day's gap between them is refused.
    let (d, o) = with_admins(
        "Europe/Zurich",
        vec![
            admin_with("alice@x.example", None, Some("2026-11-30")),
            admin_with("bob@x.example", Some("2026-12-02"), None),
        ],
    );
    let reason = run(&d, &o, &operator(), now).refused;
    assert!(
        matches!(&reason, Some(Refusal::LastAdminLater { local, .. }) if local.starts_with("2026-12-01 00:00")),
        "{reason:?}"
    );
    // Bob's window opens later but he is no admin of the portal yet (not linked): refused.
    let (d, mut o) = with_admins(
        "Europe/Zurich",
        vec![
            admin_with("alice@x.example", None, Some("2026-11-30")),
            admin_with("bob@x.example", None, None),
        ],
    );
    o.members[1].user_linked = false;
    assert!(run(&d, &o, &operator(), now).refused.is_some());
}

#[test]
fn an_account_without_an_admin_today_is_not_refused_for_its_future() {
    // A new account: the first admin has not accepted yet, and their role has an end.
    let now = ts("2026-11-26T09:00:00Z");
    let d = account(
        "UTC",
        vec![member(
            "alice@x.example",
            vec![
                role("cockpit-access", None, None),
                role("customer-admin", None, Some("2026-11-30")),
            ],
        )],
    );
    let o = ObservedAccount {
        account: Some(portal_account("UTC")),
        ..Default::default()
    };
    assert_eq!(run(&d, &o, &operator(), now).refused, None);
}

fn arb_admin_window() -> impl Strategy<Value = (Option<i64>, Option<i64>)> {
    (prop::option::of(-3i64..10), prop::option::of(-3i64..10)).prop_filter(
        "from after until",
        |(f, u)| match (f, u) {
            (Some(f), Some(u)) => f <= u,
            _ => true,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Refused exactly when some instant from now on (every day's start in the account's zone
    /// covers every transition) finds no linked member holding both roles.
    #[test]
    fn the_last_admin_rule_sees_every_future_until(
        windows in prop::collection::vec(arb_admin_window(), 1..4),
        tz in prop_oneof![Just("Europe/Zurich"), Just("Pacific/Kiritimati"), Just("America/Los_Angeles")],
        now in arb_now(),
    ) {
        let day = |offset: i64| {
            let d = parse_date("2026-11-26").unwrap();
            d.checked_add(jiff::Span::new().days(offset)).unwrap().to_string()
        };
        let list: Vec<(DesiredMember, Member)> = windows
            .iter()
            .enumerate()
            .map(|(i, (f, u))| {
                let from = f.map(day);
                let until = u.map(day);
                admin_with(&format!("a{i}@x.example"), from.as_deref(), until.as_deref())
            })
            .collect();
        let (d, o) = with_admins(tz, list);
        let p = run(&d, &o, &operator(), now);
        let zone = &d.time_zone;
        let active_at = |t: Timestamp| {
            d.members.iter().any(|m| m.roles.iter().all(|r| r.window.is_active(t, zone)))
        };
        let mut gap = !active_at(now);
        for offset in -4..14 {
            let t = crate::domain::start_of_day(parse_date(&day(offset)).unwrap(), zone);
            if t > now && !active_at(t) {
                gap = true;
            }
        }
        prop_assert_eq!(p.refused.is_some(), gap, "{:?}", p.refused);
    }

    /// A saved plan's operations are exactly what its changes derive to (issue 16 §4 item 6),
    /// and an edit of them is caught.
    #[test]
    fn a_saved_plan_checks_out_against_its_changes(d in arb_desired(), o in arb_observed(), now in arb_now()) {
        let p = run(&d, &o, &operator(), now);
        prop_assume!(p.applicable() && p.has_changes());
        let doc = PlanDocument::new("sandbox:x.db", now, "test", std::slice::from_ref(&p), vec![]);
        let a = &doc.accounts[0];
        let catalog = catalog();
        let principal = operator();
        let ctx = Context { catalog: &catalog, principal: &principal, now, plan_id: "test" };
        prop_assert_eq!(check_saved_account(a, &o, &ctx), Ok(()));
        // Dropping the changes, or the last operation, is caught.
        let mut edited = a.clone();
        edited.changes.clear();
        prop_assert!(check_saved_account(&edited, &o, &ctx).is_err());
        let mut edited = a.clone();
        if edited.operations.pop().is_some() {
            prop_assert!(check_saved_account(&edited, &o, &ctx).is_err());
        }
        // A member's role list rewritten to make them an admin is caught.
        let mut edited = a.clone();
        let mut rewrote = false;
        for op in &mut edited.operations {
            if let Operation::PutMember { member, .. } = op
                && !member.roles.iter().any(|r| r.name == "customer-admin")
            {
                member.roles.push(RoleGrant { name: "customer-admin".into(), until: None });
                rewrote = true;
                break;
            }
        }
        if rewrote {
            prop_assert!(check_saved_account(&edited, &o, &ctx).is_err());
        }
    }
}

#[test]
fn a_saved_plan_is_checked_against_the_principal_that_applies() {
    let now = ts("2026-11-26T00:00:00Z");
    let d = account(
        "UTC",
        vec![
            member("me@x.example", vec![role("cockpit-access", None, None)]),
            member(
                "boss@x.example",
                vec![
                    role("cockpit-access", None, None),
                    role("customer-admin", None, None),
                ],
            ),
        ],
    );
    let o = ObservedAccount {
        account: Some(portal_account("UTC")),
        members: vec![
            observed_member("me@x.example", &["cockpit-access", "customer-admin"], true),
            observed_member(
                "boss@x.example",
                &["cockpit-access", "customer-admin"],
                true,
            ),
        ],
        ..Default::default()
    };
    // Planned by the operator: nothing to refuse.
    let p = run(&d, &o, &operator(), now);
    assert_eq!(p.refused, None);
    let doc = PlanDocument::new(
        "sandbox:x.db",
        now,
        "test",
        std::slice::from_ref(&p),
        vec![],
    );
    let catalog = catalog();
    let me = Whoami {
        email: Some("me@x.example".into()),
        kind: PrincipalKind::User,
    };
    let ctx = Context {
        catalog: &catalog,
        principal: &me,
        now,
        plan_id: "test",
    };
    let reason = check_saved_account(&doc.accounts[0], &o, &ctx).unwrap_err();
    assert_eq!(
        reason,
        SavedPlanError::Refused(Refusal::SelfLockout {
            role: "customer-admin".into(),
            email: "me@x.example".into(),
            applying: true,
        })
    );
    // A saved plan that would leave no admin, or remove more than it may, is refused too.
    let mut edited = doc.accounts[0].clone();
    edited.max_removals = Some("0".into());
    let boss = operator();
    let ctx = Context {
        principal: &boss,
        ..ctx
    };
    let reason = check_saved_account(&edited, &o, &ctx).unwrap_err();
    assert!(
        matches!(
            reason,
            SavedPlanError::Refused(Refusal::MaxRemovals {
                limit: RemovalLimit::Count(0),
                allowed: 0,
                ..
            })
        ),
        "{reason}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// `carriers` tells which write makes each change happen: after any prefix of the writes
    /// (an apply stopped by a failure), a change whose write was made is no longer planned,
    /// and a change whose write was not made still is.
    #[test]
    fn every_change_is_carried_by_the_write_that_makes_it_happen(d in arb_desired(), o in arb_observed(), now in arb_now()) {
        let p = run(&d, &o, &operator(), now);
        prop_assume!(p.refused.is_none());
        let carried = carriers(&p.changes, &p.operations);
        prop_assert_eq!(carried.len(), p.changes.len());
        for (c, at) in p.changes.iter().zip(&carried) {
            prop_assert!(at.is_some(), "no write carries {:?}", c);
        }
        let words = actions(&p);
        for k in 0..=p.operations.len() {
            let mid = simulate(&o, &p.operations[..k], &d, now);
            let left = actions(&run(&d, &mid, &operator(), now));
            for (word, at) in words.iter().zip(&carried) {
                let done = at.is_some_and(|i| i < k);
                prop_assert_eq!(
                    !left.contains(word),
                    done,
                    "{} after {} of {} writes (carried by write {:?}); still planned: {:?}",
                    word, k, p.operations.len(), at, left
                );
            }
        }
    }
}

#[test]
fn an_address_in_another_unicode_or_idna_spelling_is_the_same_member() {
    let d = account(
        "UTC",
        vec![
            member(
                "u@b\u{fc}cher.example",
                vec![role("cockpit-access", None, None)],
            ),
            member(
                "mu\u{308}ller@acme.example",
                vec![role("technical-contact", None, None)],
            ),
        ],
    );
    let o = ObservedAccount {
        account: Some(portal_account("UTC")),
        members: vec![
            observed_member("U@xn--bcher-kva.example", &["cockpit-access"], true),
            observed_member("m\u{fc}ller@ACME.example", &["technical-contact"], true),
        ],
        contacts: vec![],
    };
    let p = run(&d, &o, &operator(), ts("2026-11-26T09:00:00Z"));
    assert_eq!(actions(&p), Vec::<String>::new());
    assert!(p.operations.is_empty());
}

#[test]
fn ignore_patterns_and_allowed_domains_compare_domains_in_their_idna_form() {
    let mut d = account(
        "UTC",
        vec![member(
            "a@acme.example",
            vec![role("technical-contact", None, None)],
        )],
    );
    d.policy.ignore = vec![crate::domain::EmailGlob::new("*@B\u{dc}CHER.example")];
    let o = ObservedAccount {
        account: Some(portal_account("UTC")),
        members: vec![
            observed_member("a@acme.example", &["technical-contact"], true),
            observed_member("staff@xn--bcher-kva.example", &["cockpit-access"], true),
        ],
        contacts: vec![],
    };
    let p = run(&d, &o, &operator(), ts("2026-11-26T09:00:00Z"));
    assert_eq!(actions(&p), Vec::<String>::new());
    d.policy.allowed_email_domains = Some(vec!["b\u{fc}cher.example".into()]);
    assert!(
        d.policy
            .allows(&Email::parse("u@xn--bcher-kva.example").unwrap())
    );
    assert!(!d.policy.allows(&Email::parse("u@bucher.example").unwrap()));
}

/// A grant to an existing member writes its roles and nothing the manifests leave out: the
/// name (a WHMCS user's is the person's own), services and notifications stay the portal's.
#[test]
fn a_write_carries_only_the_fields_the_manifests_declare() {
    let d = account(
        "UTC",
        vec![member(
            "dana@acme.example",
            vec![
                role("cockpit-access", None, None),
                role("technical-contact", None, None),
            ],
        )],
    );
    let mut dana = observed_member("dana@acme.example", &["cockpit-access"], true);
    dana.name = Some("Dana's Own Name".into());
    dana.services = Services::Only(vec!["srv-1".into()]);
    dana.notifications = vec!["support".into()];
    let o = ObservedAccount {
        account: Some(portal_account("UTC")),
        members: vec![dana],
        contacts: vec![],
    };
    let p = run(&d, &o, &operator(), ts("2026-11-26T09:00:00Z"));
    assert_eq!(actions(&p), ["grant dana@acme.example technical-contact"]);
    let [Operation::PutMember { member, .. }] = p.operations.as_slice() else {
        panic!("{:?}", p.operations);
    };
    assert_eq!(member.name, None);
    assert_eq!(member.services, None);
    assert_eq!(member.notifications, None);
    assert_eq!(member.roles.len(), 2);
}
