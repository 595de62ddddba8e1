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

#[tokio::test]
async fn a_manifest_planned_and_applied_against_the_sandbox_then_plans_no_changes() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("acme.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let url = format!("sandbox:{}", dir.path().join("sandbox.db").display());
    let now = Timestamp::now();

    let (loaded, diagnostics) = reconcile::load(&[manifest], now);
    let loaded = loaded.unwrap_or_else(|e| panic!("{e}: {diagnostics:?}"));
    let targets = reconcile::targets(loaded.desired, Some(&url), &[]).unwrap();
    let [target] = targets.as_slice() else {
        panic!("one portal expected, got {}", targets.len());
    };
    assert_eq!(target.url, url);
    let options = ConnectOptions {
        whmcs_state: dir.path().join("whmcs.json"),
        ..ConnectOptions::default()
    };
    let portal = Arc::new(reconcile::connect(&target.url, &target.token_env, &options).unwrap());

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
