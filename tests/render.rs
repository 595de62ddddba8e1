//! Snapshots of how plans read: text (like terraform plan), Markdown for pull requests, and
//! the JSON plan document of SPEC §3.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rolecall::manifest;
use rolecall::plan::{self, Context, ObservedAccount, PlanDocument};
use rolecall::portal::{
    Account, Catalog, Contact, Member, PrincipalKind, RoleGrant, Services, Whoami,
};
use rolecall::render;

fn now() -> jiff::Timestamp {
    "2026-11-26T09:00:00Z".parse().unwrap()
}

fn catalog() -> Catalog {
    rolecall::reference::store::reference_catalog()
}

fn member(email: &str, roles: &[&str], linked: bool) -> Member {
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
        etag: format!("\"{}\"", email.len()),
    }
}

fn plans() -> Vec<plan::AccountPlan> {
    let checked = manifest::load_and_check(&[PathBuf::from("examples")], now());
    assert!(!checked.has_errors());
    let mut observed = BTreeMap::new();
    // Acme exists, with Alice linked as admin and a leftover contractor.
    let mut alice = member(
        "alice@acme.example",
        &["cockpit-access", "customer-admin"],
        true,
    );
    alice.name = Some("Alice Meier".into());
    alice.notifications = vec!["general".into()];
    observed.insert(
        "10042".to_string(),
        ObservedAccount {
            account: Some(
                Account {
                    customer_number: "10042".into(),
                    display_name: "Acme".into(),
                    time_zone: "Europe/Zurich".into(),
                    etag: "\"a7\"".into(),
                }
                .into(),
            ),
            members: vec![
                alice.into(),
                member("old-contractor@acme.example", &["technical-contact"], false).into(),
            ],
            contacts: vec![
                Contact {
                    customer_number: Some("10042".into()),
                    email: "billing@acme.example".into(),
                    name: "Billing".into(),
                    notifications: vec!["invoices".into()],
                    etag: "\"c1\"".into(),
                }
                .into(),
            ],
        },
    );
    // Globex exists but its only admin is not declared: refused.
    observed.insert(
        "20077".to_string(),
        ObservedAccount {
            account: Some(
                Account {
                    customer_number: "20077".into(),
                    display_name: "Globex Corporation".into(),
                    time_zone: "America/New_York".into(),
                    etag: "\"g1\"".into(),
                }
                .into(),
            ),
            members: vec![
                member(
                    "boss@globex.example",
                    &["cockpit-access", "customer-admin"],
                    true,
                )
                .into(),
            ],
            contacts: vec![],
        },
    );
    let principal = Whoami {
        email: None,
        kind: PrincipalKind::Operator,
    };
    let catalog = catalog();
    let ctx = Context {
        catalog: &catalog,
        principal: &principal,
        now: now(),
        plan_id: "snapshot",
    };
    plan::plan(&checked.desired.accounts, &observed, &ctx)
}

/// The manifests' warnings as the plan outputs list them: located sentences.
fn warnings() -> Vec<String> {
    let text = "apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: warned}
spec:
  customerNumber: \"90009\"
  members:
    - email: ben@acme.example
      roles:
        - customer-admin
        - {name: technical-contact, until: 2026-11-01}
";
    let file = manifest::SourceFile {
        name: "warned.yaml".into(),
        text: text.into(),
    };
    let checked = manifest::check_files(&[file], now());
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let warnings: Vec<String> = checked.warnings().map(|d| d.located()).collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    warnings
}

#[test]
fn text_plan() {
    insta::assert_snapshot!(render::text_with_warnings(
        &plans(),
        &warnings(),
        render::Style::Plain
    ));
}

#[test]
fn markdown_plan() {
    let md = render::markdown_with_warnings(&plans(), &warnings());
    assert!(!md.contains('\x1b'), "no terminal colours in Markdown");
    insta::assert_snapshot!(md);
}

#[test]
fn json_plan_document() {
    let doc = PlanDocument::new(
        "sandbox:.rolecall/sandbox.db",
        now(),
        "snapshot",
        &plans(),
        warnings(),
    );
    let value = serde_json::to_value(&doc).unwrap();
    for key in [
        "formatVersion",
        "portal",
        "generatedAt",
        "summary",
        "accounts",
        "warnings",
        "refused",
    ] {
        assert!(value.get(key).is_some(), "{key}");
    }
    assert_eq!(value["refused"][0]["customerNumber"], "20077");
    assert_eq!(value["warnings"], serde_json::json!(warnings()));
    let change = &value["accounts"][0]["changes"][0];
    assert!(change.get("action").is_some() && change.get("precondition").is_some());
    // The document reads back exactly.
    let text = serde_json::to_string_pretty(&doc).unwrap();
    assert_eq!(PlanDocument::from_json(&text).unwrap(), doc);
    insta::assert_snapshot!(text);
}

#[test]
fn no_changes_reads_plainly() {
    assert_eq!(
        render::text(&[], render::Style::Plain),
        "No changes. The portal matches the manifests.\n"
    );
}

#[test]
fn an_account_with_errors_is_not_reported_as_matching() {
    let mut with_error = plans();
    let first = &mut with_error[0];
    first.changes.clear();
    first.operations.clear();
    first.refused = None;
    first.errors.push(rolecall::plan::PlanError {
        source: rolecall::domain::SourceRef {
            file: "acme.yaml".into(),
            line: 9,
            column: 7,
        },
        field: "role".into(),
        message: "unknown role \"invoice\"".into(),
    });
    let only = &with_error[..1];
    let text = render::text(only, render::Style::Plain);
    assert!(!text.contains("matches"), "{text}");
    assert!(
        text.ends_with("No changes to apply. 1 account not planned: fix the errors shown.\n"),
        "{text}"
    );
}

#[test]
fn colour_only_when_asked() {
    let plain = render::text(&plans(), render::Style::Plain);
    assert!(!plain.contains('\x1b'));
    let colour = render::text(&plans(), render::Style::Colour);
    assert!(colour.contains("\x1b[32m  + add-member"));
}

#[test]
fn saved_plans_of_another_version_are_refused_in_a_sentence() {
    let err = PlanDocument::from_json(r#"{"formatVersion": 9}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("format version 9"), "{err}");
    let err = PlanDocument::from_json("not json").unwrap_err().to_string();
    assert!(err.contains("not JSON"), "{err}");
}

#[test]
fn control_characters_in_plan_strings_are_escaped_in_text() {
    // What the portal or a manifest could hold: an escape that erases the line, and a line
    // break that forges a change.
    let forged = "x@acme.example\r\x1b[2K  - remove-member ceo@acme.example\n";
    let mut change = plan::Change::new(plan::Action::UpdateMember);
    change.email = Some(forged.into());
    change.after = Some(serde_json::json!({"name": "Eve\u{202e}"}));
    let p = plan::AccountPlan {
        customer_number: "10042\x1b[1A".into(),
        source: "acme.yaml:1".into(),
        mode: rolecall::domain::Mode::Apply,
        changes: vec![change],
        operations: vec![],
        refused: None,
        errors: vec![],
        notes: vec![format!("{forged}: note")],
        next_transition: None,
        safety: plan::SafetyPolicy {
            max_removals: rolecall::domain::RemovalLimit::Default,
            allow_self_revoke: false,
        },
    };
    let mut refused = p.clone();
    refused.refused = Some(plan::Refusal::SelfLockout {
        role: "customer-admin".into(),
        email: forged.into(),
        applying: false,
    });
    let text = render::text(&[p, refused], render::Style::Plain);
    assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    assert!(!text.contains('\u{202e}'), "{text:?}");
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("- remove-member")),
        "{text}"
    );
    assert!(text.contains("\\u{1b}[2K"), "{text}");
}
