//! Properties over random states: convergence, the admin rule, determinism, carriers.

use super::*;

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
                        m.invitation = Some(
                            Invitation {
                                id: format!("i{e}"),
                                status: InvitationStatus::Pending,
                                sent_at: "2026-11-20T00:00:00Z".into(),
                                expires_at: "2026-12-04T00:00:00Z".into(),
                            }
                            .into(),
                        );
                    }
                    m
                })
                .collect(),
            contacts: contacts
                .into_iter()
                .map(|e| {
                    Contact {
                        customer_number: Some("10042".into()),
                        email: format!("contact-{}", EMAILS[e]),
                        name: "Old".into(),
                        notifications: vec!["general".into()],
                        etag: format!("\"c{e}\""),
                    }
                    .into()
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
        let list: Vec<(DesiredMember, ObservedMember)> = windows
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
