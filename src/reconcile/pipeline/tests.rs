//! The whole pipeline against the embedded reference portal (a `sandbox:` file in a temporary
//! directory): manifest text → load → targets → connect → observe and plan → apply, and then a
//! second plan finds nothing left to do.

use std::sync::Arc;

use jiff::Timestamp;

use crate::plan::{Action, Operation};
use crate::reconcile::{self, ConnectOptions, Target};

const MANIFEST: &str = r#"
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: acme}
spec:
  customerNumber: "10042"
  timeZone: Europe/Zurich
  members:
    - email: alice@acme.example
      roles: [cockpit-access, customer-admin]
    - email: bob@acme.example
      roles: [cockpit-access]
  contacts:
    - email: billing@acme.example
      notifications: [invoices]
"#;

/// Plans the target at `now` under `plan_id`: one plan per account, in order.
async fn plan_all(
    portal: &reconcile::connect::AnyPortal,
    target: &Target,
    now: Timestamp,
    plan_id: &str,
) -> Vec<crate::plan::AccountPlan> {
    match reconcile::plan_target(portal, target, now, plan_id).await {
        Ok((plans, _observed)) => plans,
        Err(e) => panic!("the sandbox portal cannot be planned: {e}"),
    }
}

/// The one target the manifest at `manifest` sends its accounts to, on the portal `url`.
fn load_target(manifest: &std::path::Path, url: &str, now: Timestamp) -> Target {
    let (loaded, diagnostics) = reconcile::load(std::slice::from_ref(&manifest.to_path_buf()), now);
    let loaded = loaded.unwrap_or_else(|e| panic!("{e}: {diagnostics:?}"));
    let mut targets = reconcile::targets(loaded.desired, Some(url), &[]).unwrap();
    assert_eq!(targets.len(), 1, "one portal expected");
    targets.remove(0)
}

/// Connects to the target's sandbox portal, its WHMCS state (unused) kept in `dir`.
fn connect(dir: &std::path::Path, target: &Target) -> Arc<reconcile::connect::AnyPortal> {
    let options = ConnectOptions {
        whmcs_state: dir.join("whmcs.json"),
        ..ConnectOptions::default()
    };
    Arc::new(reconcile::connect(&target.url, &target.token_env, &options).unwrap())
}

#[tokio::test]
async fn a_manifest_planned_and_applied_against_the_sandbox_then_plans_no_changes() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("acme.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let url = format!("sandbox:{}", dir.path().join("sandbox.db").display());
    let now = Timestamp::now();

    let target = &load_target(&manifest, &url, now);
    assert_eq!(target.url, url);
    let portal = connect(dir.path(), target);

    // First plan: everything declared is to be made.
    let first = plan_all(&portal, target, now, "first").await;
    let [plan] = first.as_slice() else {
        panic!("one account plan expected, got {}", first.len());
    };
    assert!(plan.applicable(), "{plan:?}");
    let actions: Vec<Action> = plan.changes.iter().map(|c| c.action).collect();
    assert_eq!(actions.first(), Some(&Action::CreateAccount), "{actions:?}");
    assert!(actions.contains(&Action::AddMember), "{actions:?}");
    assert!(actions.contains(&Action::Invite), "{actions:?}");
    assert!(
        plan.operations
            .iter()
            .any(|op| matches!(op, Operation::PutContact { .. })),
        "{:?}",
        plan.operations
    );

    let work = vec![(plan.customer_number.clone(), plan.operations.clone())];
    let outcomes = reconcile::apply_all(portal.clone(), work, 4, |_| {}).await;
    let [outcome] = outcomes.as_slice() else {
        panic!("one outcome expected, got {outcomes:?}");
    };
    assert_eq!(outcome.error, None, "{outcome:?}");
    assert_eq!(outcome.applied, plan.operations.len());

    // What was applied is what the portal now holds: nothing is left to change.
    let second = plan_all(&portal, target, now, "second").await;
    let [again] = second.as_slice() else {
        panic!("one account plan expected, got {}", second.len());
    };
    assert!(
        !again.has_changes(),
        "a second plan still changes {:?}",
        again.changes
    );
    assert!(again.operations.is_empty(), "{:?}", again.operations);
    assert!(again.refused.is_none() && again.errors.is_empty());
}

const FLEET: &str = r#"
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: one}
spec:
  customerNumber: "10001"
  timeZone: Europe/Zurich
  members:
    - email: alice@one.example
      roles: [cockpit-access, customer-admin]
    - email: bob@one.example
      roles: [cockpit-access]
---
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: two}
spec:
  customerNumber: "10002"
  timeZone: Europe/Zurich
  members:
    - email: carol@two.example
      roles: [cockpit-access, customer-admin]
  contacts:
    - email: billing@two.example
      notifications: [invoices]
---
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: three}
spec:
  customerNumber: "10003"
  timeZone: Europe/Zurich
  members:
    - email: dave@three.example
      roles: [cockpit-access, customer-admin]
"#;

/// A portal may answer its bulk pages in any order (SPEC promises none): pages that go
/// backwards, or a read that ends early, plan as reading everything first does; and an
/// account planned before the rest of its members came is read again on its own and planned
/// from that.
#[tokio::test]
async fn pages_out_of_order_plan_as_reading_everything_first_does() {
    use crate::portal::{AccountFilter, Portal};
    use crate::reconcile::bulk::{Arrival, filed};
    use crate::reconcile::{BulkRead, Prefetched};

    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("fleet.yaml");
    std::fs::write(&manifest, FLEET).unwrap();
    let url = format!("sandbox:{}", dir.path().join("sandbox.db").display());
    let now = Timestamp::now();
    let target = &load_target(&manifest, &url, now);
    let portal = connect(dir.path(), target);
    let seed = plan_all(&portal, target, now, "seed").await;
    let work = seed
        .iter()
        .map(|p| (p.customer_number.clone(), p.operations.clone()))
        .collect();
    let outcomes = reconcile::apply_all(portal.clone(), work, 4, |_| {}).await;
    assert!(outcomes.iter().all(|o| o.error.is_none()), "{outcomes:?}");

    // Drift in the account that will come late: bob is no longer declared.
    std::fs::write(
        &manifest,
        FLEET.replace(
            "    - email: bob@one.example\n      roles: [cockpit-access]\n",
            "",
        ),
    )
    .unwrap();
    let target = &load_target(&manifest, &url, now);
    let expected = plan_all(&portal, target, now, "p").await;
    assert!(expected[0].has_changes(), "{:?}", expected[0]);

    // "10002" first, then "10001" and "10003": the list goes backwards after "10001" was
    // planned with no members at all.
    let members = portal.list_members(&AccountFilter::All).await.unwrap();
    let of = |cn: &str| -> Vec<_> {
        members
            .iter()
            .filter(|m| m.customer_number.as_deref() == Some(cn))
            .cloned()
            .collect()
    };
    let contacts = portal.list_contacts(&AccountFilter::All).await.unwrap();
    let (to, arrivals) = tokio::sync::mpsc::unbounded_channel();
    to.send(Arrival::Contacts(filed(contacts))).unwrap();
    to.send(Arrival::ContactsDone).unwrap();
    to.send(Arrival::Members(filed(of("10002")))).unwrap();
    let mut rest = of("10001");
    rest.extend(of("10003"));
    to.send(Arrival::Members(filed(rest))).unwrap();
    to.send(Arrival::MembersDone).unwrap();
    let prefetched = Prefetched {
        facts: reconcile::facts(portal.as_ref(), &url).await.unwrap(),
        accounts: portal.list_accounts().await.unwrap(),
        bulk: Some(BulkRead::from_arrivals(arrivals)),
    };
    let plans = reconcile::plan_target_as_read(portal.as_ref(), target, now, "p", Some(prefetched))
        .await
        .unwrap();
    assert_eq!(plans, expected);

    // A read that ends before its end is forgotten: the portal is read again.
    let (to, arrivals) = tokio::sync::mpsc::unbounded_channel();
    to.send(Arrival::Members(filed(of("10001")))).unwrap();
    drop(to);
    let prefetched = Prefetched {
        facts: reconcile::facts(portal.as_ref(), &url).await.unwrap(),
        accounts: portal.list_accounts().await.unwrap(),
        bulk: Some(BulkRead::from_arrivals(arrivals)),
    };
    let plans = reconcile::plan_target_as_read(portal.as_ref(), target, now, "p", Some(prefetched))
        .await
        .unwrap();
    assert_eq!(plans, expected);

    // Planned early from nothing (as if "10001" had been passed before its members came),
    // then read again: only the late account's plan is made again, from the portal.
    let facts = reconcile::facts(portal.as_ref(), &url).await.unwrap();
    let ctx = crate::plan::Context {
        catalog: &facts.catalog,
        principal: &facts.principal,
        now,
        plan_id: "p",
    };
    let nothing = std::collections::BTreeMap::new();
    let mut plans = reconcile::plan_all(&target.accounts, &nothing, &ctx);
    let early = plans.clone();
    assert_ne!(plans[0], expected[0]);
    let late = std::collections::BTreeSet::from(["10001".to_string()]);
    super::replan_late(portal.as_ref(), target, &late, &ctx, &mut plans)
        .await
        .unwrap();
    assert_eq!(plans[0], expected[0]);
    assert_eq!(plans[1..], early[1..]);
}
