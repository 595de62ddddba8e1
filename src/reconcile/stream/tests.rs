//! Planning as the pages arrive gives the plans of planning at once, whatever the pages' sizes
//! and however the two lists interleave; an account met again after its plan is late.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::domain::{
    AccountPolicy, DesiredMember, DesiredRole, Email, RemovalLimit, SourceRef, Window,
    parse_time_zone,
};
use crate::portal::{Catalog, Contact, Member, PrincipalKind, RoleGrant, Services, Whoami};
use crate::reconcile::bulk::filed;

fn src() -> SourceRef {
    SourceRef {
        file: "t.yaml".into(),
        line: 1,
        column: 1,
    }
}

/// Account `cn` declaring `members` (e-mails) as portal users and no contacts; prune on.
fn declared(cn: &str, members: &[&str]) -> DesiredAccount {
    DesiredAccount {
        name: format!("acct-{cn}"),
        namespace: "default".into(),
        portal_ref: None,
        customer_number: cn.into(),
        display_name: None,
        time_zone_name: "Europe/Zurich".into(),
        time_zone_declared: true,
        time_zone: parse_time_zone("Europe/Zurich").unwrap(),
        members: members
            .iter()
            .map(|e| DesiredMember {
                email: Email::parse(e).unwrap(),
                name: None,
                roles: vec![DesiredRole {
                    name: "cockpit-access".into(),
                    window: Window::default(),
                    source: src(),
                }],
                services: None,
                notifications: None,
                source: src(),
            })
            .collect(),
        contacts: vec![],
        policy: AccountPolicy {
            max_removals: RemovalLimit::Count(1000),
            ..AccountPolicy::default()
        },
        source: src(),
    }
}

fn listed(cn: &str) -> Account {
    Account {
        customer_number: cn.into(),
        display_name: format!("acct-{cn}"),
        time_zone: "Europe/Zurich".into(),
        etag: "\"a1\"".into(),
    }
}

fn member(cn: &str, email: &str) -> Member {
    Member {
        customer_number: Some(cn.into()),
        email: email.into(),
        name: None,
        user_linked: true,
        roles: vec![RoleGrant {
            name: "cockpit-access".into(),
            until: None,
        }],
        services: Services::All,
        notifications: vec![],
        invitation: None,
        etag: format!("\"{email}\""),
    }
}

fn contact(cn: &str, email: &str) -> Contact {
    Contact {
        customer_number: Some(cn.into()),
        email: email.into(),
        name: "Billing".into(),
        notifications: vec!["invoices".into()],
        etag: format!("\"{email}\""),
    }
}

struct Facts {
    catalog: Catalog,
    principal: Whoami,
}

fn facts() -> Facts {
    Facts {
        catalog: crate::reference::store::reference_catalog(),
        principal: Whoami {
            email: None,
            kind: PrincipalKind::Operator,
        },
    }
}

fn ctx(f: &Facts) -> Context<'_> {
    Context {
        catalog: &f.catalog,
        principal: &f.principal,
        now: "2026-11-26T09:00:00Z".parse().unwrap(),
        plan_id: "p1",
    }
}

/// The plans of planning everything at once from the same reads (`observe`'s way).
fn at_once(
    declared: &[DesiredAccount],
    listed: &[Account],
    members: &[Member],
    contacts: &[Contact],
    ctx: &Context<'_>,
) -> Vec<AccountPlan> {
    let mut observed: BTreeMap<String, ObservedAccount> = listed
        .iter()
        .map(|a| {
            let o = ObservedAccount {
                account: Some(a.clone().into()),
                ..Default::default()
            };
            (a.customer_number.clone(), o)
        })
        .collect();
    for m in members {
        if let Some(o) = observed.get_mut(m.customer_number.as_deref().unwrap()) {
            o.members.push(m.clone().into());
        }
    }
    for c in contacts {
        if let Some(o) = observed.get_mut(c.customer_number.as_deref().unwrap()) {
            o.contacts.push(c.clone().into());
        }
    }
    plan::plan(declared, &observed, ctx)
}

/// Pages of `size` items.
fn pages<T: Clone>(items: &[T], size: usize) -> Vec<Vec<T>> {
    items.chunks(size.max(1)).map(<[T]>::to_vec).collect()
}

fn fleet() -> (Vec<DesiredAccount>, Vec<Account>, Vec<Member>, Vec<Contact>) {
    // Declared out of order; "3" is declared but not listed (new); "9" is listed, not
    // declared; "5" has drift (a member to add and one to remove).
    let declared = vec![
        declared("4", &["a@x.example", "b@x.example"]),
        declared("1", &["a@x.example"]),
        declared("3", &["a@x.example"]),
        declared("5", &["a@x.example", "new@x.example"]),
        declared("2", &["a@x.example", "b@x.example", "c@x.example"]),
    ];
    let listed = ["1", "2", "4", "5", "9"].map(listed).to_vec();
    let members = vec![
        member("1", "a@x.example"),
        member("2", "a@x.example"),
        member("2", "b@x.example"),
        member("2", "c@x.example"),
        member("4", "a@x.example"),
        member("4", "b@x.example"),
        member("5", "a@x.example"),
        member("5", "old@x.example"),
        member("9", "z@x.example"),
    ];
    let contacts = vec![
        contact("2", "billing@x.example"),
        contact("9", "b@x.example"),
    ];
    (declared, listed, members, contacts)
}

#[test]
fn an_account_is_planned_once_both_lists_have_passed_it_and_its_reads_are_dropped() {
    let (declared, listed, members, _) = fleet();
    let f = facts();
    let ctx = ctx(&f);
    let mut planner = Planner::new(&declared, &listed);
    planner.take(Arrival::Members(filed(members[..5].to_vec())));
    planner.plan_complete(&ctx);
    assert!(planner.plans.is_empty(), "no contact page has come yet");

    planner.take(Arrival::Contacts(filed(vec![contact(
        "2",
        "billing@x.example",
    )])));
    planner.plan_complete(&ctx);
    let planned: Vec<&str> = planner
        .plans
        .iter()
        .map(|p| p.customer_number.as_str())
        .collect();
    assert_eq!(
        planned,
        ["1"],
        "accounts before the contacts' \"2\" are read whole"
    );
    assert!(!planner.pending.contains_key("1"));
    assert!(planner.pending.contains_key("2") && planner.pending.contains_key("4"));

    planner.take(Arrival::ContactsDone);
    planner.plan_complete(&ctx);
    let planned: Vec<&str> = planner
        .plans
        .iter()
        .map(|p| p.customer_number.as_str())
        .collect();
    assert_eq!(
        planned,
        ["1", "2", "3"],
        "members have come as far as \"4\""
    );
    assert!(!planner.done());
}

#[test]
fn what_is_not_declared_is_not_held() {
    let (declared, listed, members, contacts) = fleet();
    let mut planner = Planner::new(&declared, &listed);
    planner.take(Arrival::Members(filed(members)));
    planner.take(Arrival::Contacts(filed(contacts)));
    assert!(!planner.pending.contains_key("9"));
    assert!(!planner.settings.contains_key("9"));
}

#[test]
fn an_account_met_again_after_its_plan_is_late_and_nothing_more_is_planned_early() {
    let (declared, listed, _, _) = fleet();
    let f = facts();
    let ctx = ctx(&f);
    let mut planner = Planner::new(&declared, &listed);
    planner.take(Arrival::Members(filed(vec![
        member("1", "a@x.example"),
        member("4", "a@x.example"),
    ])));
    planner.take(Arrival::ContactsDone);
    planner.plan_complete(&ctx);
    assert_eq!(planner.plans.len(), 3, "1, 2 and 3 are before 4");

    // The portal goes back to "2" and "1": SPEC does not promise the order.
    planner.take(Arrival::Members(filed(vec![
        member("2", "a@x.example"),
        member("1", "b@x.example"),
        member("5", "a@x.example"),
    ])));
    planner.plan_complete(&ctx);
    assert_eq!(
        planner.plans.len(),
        3,
        "a list went backwards: nothing more early"
    );
    assert_eq!(
        planner.late.iter().map(String::as_str).collect::<Vec<_>>(),
        ["1", "2"]
    );
    planner.take(Arrival::MembersDone);
    planner.plan_complete(&ctx);
    assert!(planner.done());
    let streamed = planner.finish();
    let planned: Vec<&str> = streamed
        .plans
        .iter()
        .map(|p| p.customer_number.as_str())
        .collect();
    assert_eq!(planned, ["1", "2", "3", "4", "5"]);
}

proptest! {
    /// Pages of any size, interleaved in any way, plan as planning at once does.
    #[test]
    fn planned_as_read_equals_planned_at_once(
        member_page in 1usize..10,
        contact_page in 1usize..3,
        interleave in proptest::collection::vec(any::<bool>(), 0..16),
    ) {
        let (declared, listed, members, contacts) = fleet();
        let f = facts();
        let ctx = ctx(&f);
        let expected = at_once(&declared, &listed, &members, &contacts, &ctx);

        let mut arrivals_m: Vec<Arrival> = pages(&members, member_page)
            .into_iter()
            .map(|p| Arrival::Members(filed(p)))
            .collect();
        arrivals_m.push(Arrival::MembersDone);
        let mut arrivals_c: Vec<Arrival> = pages(&contacts, contact_page)
            .into_iter()
            .map(|p| Arrival::Contacts(filed(p)))
            .collect();
        arrivals_c.push(Arrival::ContactsDone);
        let (mut m, mut c) = (arrivals_m.into_iter().peekable(), arrivals_c.into_iter().peekable());
        let mut planner = Planner::new(&declared, &listed);
        let mut turn = interleave.into_iter();
        while m.peek().is_some() || c.peek().is_some() {
            let from_members = match (m.peek().is_some(), c.peek().is_some()) {
                (true, true) => turn.next().unwrap_or(true),
                (only_members, _) => only_members,
            };
            let next = if from_members { m.next() } else { c.next() };
            planner.take(next.unwrap());
            planner.plan_complete(&ctx);
        }
        prop_assert!(planner.done());
        let streamed = planner.finish();
        prop_assert!(streamed.late.is_empty());
        prop_assert_eq!(streamed.plans, expected);
    }
}
