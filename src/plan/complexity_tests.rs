//! A regression guard that times nothing: planning compares join keys (customer numbers,
//! case-folded e-mails; see `key`) a number of times that grows at most like n·log n with the
//! fleet. The planner is generic over its join key; here it plans with [`Counted`], a key
//! that counts its comparisons, so that the planner's own code holds no counter. A quadratic step — a linear search of the observed members for each desired one —
//! makes the count grow like n², which no machine's speed hides and no slow CI runner fakes.
//!
//! Each dimension that can grow on its own is measured alone: accounts in a fleet, members in
//! an account, contacts in an account. Run with `--nocapture` to see the counts.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use jiff::Timestamp;
use jiff::civil::Date;

use super::key::JoinKey;
use super::*;
use crate::domain::{
    AccountPolicy, DesiredAccount, DesiredContact, DesiredMember, DesiredRole, Email, RemovalLimit,
    Services, SourceRef, Window, parse_date, parse_time_zone,
};
use crate::portal::{Account, Contact, Member, PrincipalKind, RoleGrant};
use crate::reference::store::{
    COCKPIT_ACCESS, CUSTOMER_ADMIN, TECHNICAL_CONTACT, reference_catalog,
};

/// Comparisons of [`Counted`] keys, on every thread: a fleet planned on several threads counts
/// exactly as one planned on one.
static COMPARISONS: AtomicU64 = AtomicU64::new(0);

/// Held while counting: the tests of this module run side by side, and each counts only its
/// own planning.
static COUNTING: Mutex<()> = Mutex::new(());

/// A join key that counts its comparisons in [`COMPARISONS`].
#[derive(Debug, Clone)]
struct Counted(String);

impl JoinKey for Counted {
    fn new(text: String) -> Self {
        Counted(text)
    }
}

impl PartialEq for Counted {
    fn eq(&self, other: &Self) -> bool {
        COMPARISONS.fetch_add(1, Relaxed);
        self.0 == other.0
    }
}

impl Eq for Counted {}

impl PartialOrd for Counted {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Counted {
    fn cmp(&self, other: &Self) -> Ordering {
        COMPARISONS.fetch_add(1, Relaxed);
        self.0.cmp(&other.0)
    }
}

/// Runs `f` and returns what it returns with the number of [`Counted`] comparisons it made.
fn comparisons_in<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let _alone = COUNTING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let before = COMPARISONS.load(Relaxed);
    let result = f();
    (result, COMPARISONS.load(Relaxed) - before)
}

/// [`plan`] joining on [`Counted`] keys.
fn plan_counted(
    desired: &[DesiredAccount],
    observed: &BTreeMap<String, ObservedAccount>,
    ctx: &Context,
) -> Vec<AccountPlan> {
    plan_keyed::<Counted>(desired, observed, ctx)
}

/// The sizes planned, each twice the one before: the smallest is large enough that fixed costs
/// do not hide the growth, the largest small enough for a debug build (well under a second).
const SIZES: [usize; 4] = [250, 500, 1000, 2000];

/// How much more than the fleet's own growth the count may grow. From 250 to 2000 objects,
/// n·log₂ n grows 8 × log 2000 / log 250 ≈ 11×, within 8 × 2 = 16×; n² grows 64×.
const LOG_FACTOR: f64 = 2.0;

/// How many members and contacts the dimension that is not measured has: a few, so that every
/// path of the planner runs.
const FEW: usize = 8;

#[test]
fn planning_a_fleet_of_many_accounts_compares_keys_no_more_than_n_log_n_times() {
    assert_linearithmic("accounts", "account", |n| comparisons(n, FEW, FEW));
}

#[test]
fn planning_an_account_of_many_members_compares_keys_no_more_than_n_log_n_times() {
    assert_linearithmic("members", "member", |n| comparisons(1, n, FEW));
}

#[test]
fn planning_an_account_of_many_contacts_compares_keys_no_more_than_n_log_n_times() {
    assert_linearithmic("contacts", "contact", |n| comparisons(1, FEW, n));
}

#[test]
fn a_fleet_planned_on_several_threads_is_planned_as_one_account_after_another() {
    let (desired, observed) = fleet(4 * ACCOUNTS_PER_THREAD + 3, FEW, FEW);
    with_context(|ctx| {
        let (threaded, count) = comparisons_in(|| plan_counted(&desired, &observed, ctx));
        let empty = ObservedAccount::default();
        let mut in_order: Vec<&DesiredAccount> = desired.iter().collect();
        in_order.sort_by(|a, b| a.customer_number.cmp(&b.customer_number));
        let (one_by_one, count_one_by_one) = comparisons_in(|| {
            in_order
                .iter()
                .map(|d| {
                    let o = observed.get(&d.customer_number).unwrap_or(&empty);
                    account::plan_account_keyed::<Counted>(d, o, ctx)
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(threaded, one_by_one);
        // The workers' comparisons reach the caller's count; the merge join adds its own.
        assert!(
            count > count_one_by_one,
            "threads: {count}, one by one: {count_one_by_one}"
        );
    });
}

/// Plans `count(n)` for every size and checks that the count grows no faster than n·log n,
/// and at least as fast as n less fixed costs (else the counter no longer sees the joins).
fn assert_linearithmic(what: &str, each: &str, count: impl Fn(usize) -> u64) {
    let counts: Vec<(usize, u64)> = SIZES.iter().map(|&n| (n, count(n))).collect();
    let figures = counts
        .iter()
        .map(|(n, c)| format!("{n} {what}: {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    eprintln!("join-key comparisons planning {figures}");
    let (small, large) = (counts[0], counts[counts.len() - 1]);
    let fleet = large.0 as f64 / small.0 as f64;
    let growth = large.1 as f64 / small.1 as f64;
    let allowed = fleet * LOG_FACTOR;
    assert!(
        growth <= allowed,
        "planning {} {what} compared join keys {} times, {growth:.1}× the {} times for {} {what}; \
         n·log n allows at most {allowed:.0}× — is there a linear search per {each}? ({figures})",
        large.0,
        large.1,
        small.1,
        small.0,
    );
    assert!(
        growth >= fleet / 2.0,
        "planning {fleet:.0}× the {what} compared join keys only {growth:.1}× as often: the joins \
         no longer go through plan::key::JoinKey, so this guard sees nothing ({figures})"
    );
}

/// The join-key comparisons of planning `accounts` accounts of `members` members and
/// `contacts` contacts, after checking that the plan really joins (nothing refused).
fn comparisons(accounts: usize, members: usize, contacts: usize) -> u64 {
    let (desired, observed) = fleet(accounts, members, contacts);
    let (plans, count) =
        with_context(|ctx| comparisons_in(|| plan_counted(&desired, &observed, ctx)));
    assert_eq!(plans.len(), accounts);
    for p in &plans {
        assert!(
            p.refused.is_none() && p.errors.is_empty(),
            "{}: {:?} {:?}",
            p.customer_number,
            p.refused,
            p.errors
        );
    }
    let actions: std::collections::BTreeSet<Action> = plans
        .iter()
        .flat_map(|p| p.changes.iter().map(|c| c.action))
        .collect();
    if accounts > 2 {
        assert!(actions.contains(&Action::CreateAccount));
    }
    for action in [
        Action::UpdateAccount,
        Action::AddMember,
        Action::Grant,
        Action::Revoke,
        Action::RemoveMember,
        Action::Invite,
        Action::AddContact,
        Action::UpdateContact,
        Action::RemoveContact,
    ] {
        assert!(actions.contains(&action), "the fleet plans no {action}");
    }
    count
}

/// Runs `f` with the context of an operator planning against the reference catalog.
fn with_context<R>(f: impl FnOnce(&Context) -> R) -> R {
    let catalog = reference_catalog();
    let principal = Whoami {
        email: None,
        kind: PrincipalKind::Operator,
    };
    f(&Context {
        catalog: &catalog,
        principal: &principal,
        now: now(),
        plan_id: "complexity",
    })
}

fn now() -> Timestamp {
    "2026-11-26T09:00:00Z".parse().unwrap()
}

fn src() -> SourceRef {
    SourceRef {
        file: "fleet.yaml".into(),
        line: 1,
        column: 1,
    }
}

fn roles(names: &[&str]) -> Vec<RoleGrant> {
    names
        .iter()
        .map(|name| RoleGrant {
            name: name.to_string(),
            until: None,
        })
        .collect()
}

/// A fleet that exercises every join: declared accounts of even customer numbers, the first
/// two in every three on the portal (with another display name), and undeclared odd-numbered
/// accounts between them. In each account, a quarter of the members (and contacts) is declared only, a
/// quarter matches, a quarter differs and a quarter is on the portal only. The portal spells
/// e-mails in other case and lists them in the reverse order, so that no join gets its input
/// sorted for free.
fn fleet(
    accounts: usize,
    members: usize,
    contacts: usize,
) -> (Vec<DesiredAccount>, BTreeMap<String, ObservedAccount>) {
    let zurich = parse_time_zone("Europe/Zurich").unwrap();
    let until = parse_date("2027-12-31").unwrap();
    let mut desired = Vec::new();
    let mut observed = BTreeMap::new();
    for a in 0..accounts {
        let number = (300_000 + 2 * a).to_string();
        let mut d = DesiredAccount {
            name: format!("acct-{number}"),
            namespace: "default".into(),
            portal_ref: None,
            customer_number: number.clone(),
            display_name: Some(format!("Customer {number}")),
            time_zone_name: "Europe/Zurich".into(),
            time_zone_declared: true,
            time_zone: zurich.clone(),
            members: Vec::new(),
            contacts: Vec::new(),
            policy: AccountPolicy {
                max_removals: RemovalLimit::Count(u64::MAX),
                ..AccountPolicy::default()
            },
            source: src(),
        };
        let mut o = ObservedAccount {
            account: Some(
                Account {
                    customer_number: number.clone(),
                    display_name: format!("Old name {number}"),
                    time_zone: "Europe/Zurich".into(),
                    etag: "\"a1\"".into(),
                }
                .into(),
            ),
            ..ObservedAccount::default()
        };
        fleet_members(&mut d, &mut o, members, until);
        fleet_contacts(&mut d, &mut o, contacts);
        o.members.reverse();
        o.contacts.reverse();
        // One account in three is not on the portal yet: it is created, its members added.
        if a % 3 != 2 {
            observed.insert(number.clone(), o);
        }
        observed.insert(
            (300_000 + 2 * a + 1).to_string(),
            ObservedAccount::default(),
        );
        desired.push(d);
    }
    // Declared in no particular order: the planner sorts.
    desired.reverse();
    (desired, observed)
}

/// The members of one account of [`fleet`]: a quarter declared only, a quarter matching, a
/// quarter differing, a quarter on the portal only.
fn fleet_members(d: &mut DesiredAccount, o: &mut ObservedAccount, members: usize, until: Date) {
    let number = d.customer_number.clone();
    for i in 0..members {
        let email = format!("person{i}@c{number}.example");
        let declared = |names: &[&str]| DesiredMember {
            email: Email::parse(&email).unwrap(),
            name: Some(format!("Person {i}")),
            roles: names
                .iter()
                .map(|name| DesiredRole {
                    name: name.to_string(),
                    window: if *name == TECHNICAL_CONTACT {
                        Window {
                            from: None,
                            until: Some(until),
                        }
                    } else {
                        Window::always()
                    },
                    source: src(),
                })
                .collect(),
            services: None,
            notifications: None,
            source: src(),
        };
        let on_portal = |names: &[&str]| Member {
            customer_number: Some(number.clone()),
            email: email.to_uppercase(),
            name: Some(format!("Person {i}")),
            user_linked: true,
            roles: roles(names),
            services: Services::All,
            notifications: vec![],
            invitation: None,
            etag: format!("\"m{i}\""),
        };
        let admin = [COCKPIT_ACCESS, CUSTOMER_ADMIN];
        match i % 4 {
            0 => d.members.push(declared(&[COCKPIT_ACCESS])),
            1 => {
                d.members.push(declared(&admin));
                o.members.push(on_portal(&admin).into());
            }
            2 => {
                d.members
                    .push(declared(&[COCKPIT_ACCESS, TECHNICAL_CONTACT]));
                o.members.push(on_portal(&admin).into());
            }
            _ => o.members.push(on_portal(&[COCKPIT_ACCESS]).into()),
        }
    }
}

/// The contacts of one account of [`fleet`], split in quarters as its members are.
fn fleet_contacts(d: &mut DesiredAccount, o: &mut ObservedAccount, contacts: usize) {
    let number = d.customer_number.clone();
    for i in 0..contacts {
        let email = format!("contact{i}@c{number}.example");
        let declared = || DesiredContact {
            email: Email::parse(&email).unwrap(),
            name: Some(format!("Contact {i}.into()")),
            notifications: vec!["invoices".into()],
            source: src(),
        };
        let on_portal = |kind: &str| {
            Contact {
                customer_number: Some(number.clone()),
                email: email.to_uppercase(),
                name: format!("Contact {i}"),
                notifications: vec![kind.into()],
                etag: format!("\"c{i}\""),
            }
            .into()
        };
        match i % 4 {
            0 => d.contacts.push(declared()),
            1 => {
                d.contacts.push(declared());
                o.contacts.push(on_portal("invoices"));
            }
            2 => {
                d.contacts.push(declared());
                o.contacts.push(on_portal("general"));
            }
            _ => o.contacts.push(on_portal("invoices")),
        }
    }
}
