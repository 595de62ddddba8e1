//! Scenarios of the safety rules: the last admin, maxRemovals, the principal's own access,
//! the last-admin rule over time, and a saved plan's re-check.

use super::*;

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

// --- The last-admin rule over time (issue 16 §4 item 4) -----------------------------------

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
