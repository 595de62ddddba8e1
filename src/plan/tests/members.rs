//! Scenarios of members, invitations, contacts, catalogs and accounts.

use super::*;

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
fn expired_invitations_are_sent_again_and_live_ones_left_alone() {
    let d = account(
        "UTC",
        vec![member(
            "new@x.example",
            vec![role("cockpit-access", None, None)],
        )],
    );
    let mut m = observed_member("new@x.example", &["cockpit-access"], false);
    m.invitation = Some(
        Invitation {
            id: "i1".into(),
            status: InvitationStatus::Pending,
            sent_at: "2026-11-01T00:00:00Z".into(),
            expires_at: "2026-11-15T00:00:00Z".into(),
        }
        .into(),
    );
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

/// A portal's `until` or invitation expiry that is no date is kept as its text (the planner
/// reads domain types now, but does with such a value what it always did): a declared date
/// differs from it and the plan shows it, a role left alone is written back with it and
/// bounds nothing, and an expiry that does not read has not passed.
#[test]
fn a_portal_date_that_does_not_read_is_kept_as_its_text() {
    let now = ts("2026-11-26T00:00:00Z");
    let mut d = account(
        "UTC",
        vec![
            member(
                "a@x.example",
                vec![
                    role("cockpit-access", None, None),
                    role("technical-contact", None, Some("2026-12-31")),
                ],
            ),
            member("b@x.example", vec![role("cockpit-access", None, None)]),
            member("c@x.example", vec![role("cockpit-access", None, None)]),
        ],
    );
    d.policy.prune = false;
    let grant = |name: &str, until: Option<&str>| {
        RoleGrant {
            name: name.into(),
            until: until.map(Into::into),
        }
        .into()
    };
    let mut a = observed_member("a@x.example", &[], true);
    a.roles = vec![
        grant("cockpit-access", None),
        grant("technical-contact", Some("31.12.2026")),
        grant("customer-admin", Some("someday")),
    ];
    let invited = |email: &str, status| {
        let mut m = observed_member(email, &["cockpit-access"], false);
        m.invitation = Some(
            Invitation {
                id: format!("i-{email}"),
                status,
                sent_at: "2026-11-01T00:00:00Z".into(),
                expires_at: "soon".into(),
            }
            .into(),
        );
        m
    };
    let o = ObservedAccount {
        account: Some(portal_account("UTC")),
        members: vec![
            a,
            invited("b@x.example", InvitationStatus::Pending),
            invited("c@x.example", InvitationStatus::Expired),
        ],
        ..Default::default()
    };
    let p = run(&d, &o, &operator(), now);
    assert_eq!(p.refused, None);
    assert_eq!(
        actions(&p),
        [
            "change-window a@x.example technical-contact",
            "resend-invitation c@x.example -"
        ]
    );
    assert_eq!(
        p.changes[0].before,
        Some(serde_json::json!({"until": "31.12.2026"}))
    );
    assert_eq!(
        p.changes[1].reason.as_deref(),
        Some("invitation expired soon")
    );
    let Some(Operation::PutMember { member, .. }) = p.operations.first() else {
        panic!("no member write first: {:?}", p.operations);
    };
    let held: Vec<(&str, Option<&str>)> = member
        .roles
        .iter()
        .map(|r| (r.name.as_str(), r.until.as_deref()))
        .collect();
    assert_eq!(
        held,
        [
            ("cockpit-access", None),
            ("customer-admin", Some("someday")),
            ("technical-contact", Some("2026-12-31")),
        ]
    );
    // The declared window's end is the next transition: the pending invitation whose expiry
    // does not read sets none.
    assert_eq!(p.next_transition, Some(ts("2027-01-01T00:00:00Z")));
}
