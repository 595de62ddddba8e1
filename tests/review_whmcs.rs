//! `rolecall review` and `explain` against WHMCS (issue 18 item 6): the built binary against
//! the WHMCS API emulator, with the manifests in a git repository. WHMCS lacks some of the
//! columns (docs/access-review.md says which and why): they are empty, and review and explain
//! send only read actions (`Get…`).

mod whmcs_support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use whmcs_support::{IDENTIFIER, SECRET, Whmcs};

const NOW: &str = "2026-11-26T09:00:00Z";

/// rolecall in `dir` against the emulator at `now`, git configured by nothing of the machine's.
fn run(whmcs: &Whmcs, dir: &Path, now: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rolecall"))
        .args(args)
        .args(["--portal", &whmcs.portal_url()])
        .current_dir(dir)
        .env_remove("ROLECALL_PORTAL")
        .env_remove("ROLECALL_WHMCS_STATE")
        .env_remove("ROLECALL_WHMCS_ACCESSKEY")
        .env("ROLECALL_NOW", now)
        .env("ROLECALL_WHMCS_IDENTIFIER", IDENTIFIER)
        .env("ROLECALL_WHMCS_SECRET", SECRET)
        .env("NO_COLOR", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CEILING_DIRECTORIES", dir.parent().unwrap_or(dir))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "{out}\n{err}");
    for secret in [IDENTIFIER, SECRET] {
        assert!(!out.contains(secret) && !err.contains(secret), "leaked");
    }
    out
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Ann Author")
        .env("GIT_AUTHOR_EMAIL", "ann@example.test")
        .env("GIT_AUTHOR_DATE", "2026-01-02T03:04:05Z")
        .env("GIT_COMMITTER_NAME", "Ann Author")
        .env("GIT_COMMITTER_EMAIL", "ann@example.test")
        .env("GIT_COMMITTER_DATE", "2026-01-02T03:04:05Z")
        .output()
        .unwrap();
    assert!(o.status.success(), "git {args:?}");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Acme's client as the manifests declare it (line numbers matter: `declaredAt`).
fn acme(client: u64) -> String {
    format!(
        r#"apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {{name: acme}}
spec:
  customerNumber: "{client}"
  timeZone: Europe/Zurich
  members:
    - email: alice@acme.example
      roles: [tickets, invoices]
    - email: bob@acme.example
      roles:
        - {{name: tickets, until: 2026-12-05}}
    - email: erin@acme.example
      roles: [tickets]
    - email: pat@acme.example
      roles: [quotes]
  contacts:
    - email: billing@acme.example
      name: Contact
      notifications: [invoices]
  policy:
    ignore: ["*@provider.example"]
"#
    )
}

/// A WHMCS holding a situation for each finding it can show, the manifests of Acme committed
/// in `dir`, and the record of the invitation rolecall sent to Pat (not accepted).
fn situation() -> (Whmcs, u64, u64, tempfile::TempDir) {
    let whmcs = Whmcs::start();
    let client = whmcs.add_client("Acme AG", "owner@acme.example");
    whmcs.add_user(client, "alice@acme.example", &["tickets", "invoices"]);
    whmcs.add_user(client, "bob@acme.example", &["tickets"]);
    // Erin holds a permission the manifests do not declare.
    whmcs.add_user(client, "erin@acme.example", &["tickets", "quotes"]);
    whmcs.add_user(client, "zed@acme.example", &["domains"]);
    whmcs.add_user(client, "ops@provider.example", &["tickets"]);
    whmcs.add_contact(
        client,
        "billing@acme.example",
        [false, false, false, true, false, false],
    );
    // A client the manifests do not declare at all.
    let other = whmcs.add_client("Initech", "owner@initech.example");
    whmcs.add_contact(
        other,
        "noc@initech.example",
        [true, false, true, false, false, false],
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("acme.yaml"), acme(client)).unwrap();
    git(dir.path(), &["init", "-q", "."]);
    git(dir.path(), &["add", "acme.yaml"]);
    git(dir.path(), &["commit", "-q", "-m", "Declare Acme"]);
    // The invitation rolecall sent to Pat three days ago (as `apply` records it).
    let state = dir.path().join(".rolecall");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("whmcs-invitations.json"),
        format!(
            r#"{{"formatVersion": 1, "invitations": [{{"clientId": "{client}", "email": "pat@acme.example", "permissions": ["quotes"], "sentAt": "2026-11-23T09:00:00Z", "expiresAt": "2026-11-30T09:00:00Z"}}]}}"#
        ),
    )
    .unwrap();
    (whmcs, client, other, dir)
}

fn review_json(whmcs: &Whmcs, dir: &Path, now: &str) -> Value {
    let out = ok(&run(
        whmcs,
        dir,
        now,
        &["review", "-f", "acme.yaml", "--output", "json"],
    ));
    serde_json::from_str(&out).unwrap()
}

fn row<'a>(doc: &'a Value, cn: u64, email: &str, role: &str) -> &'a Value {
    let cn_text = cn.to_string();
    doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["customerNumber"] == cn_text.as_str() && r["email"] == email && r["role"] == role
        })
        .unwrap_or_else(|| panic!("no row {cn} {email} {role} in {doc:#}"))
}

fn findings(doc: &Value, cn: u64, email: &str, role: &str) -> Vec<String> {
    row(doc, cn, email, role)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn review_on_whmcs_shows_members_contacts_findings_and_empty_columns() {
    let (whmcs, client, other, dir) = situation();
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    let doc = review_json(&whmcs, dir.path(), NOW);
    let f = |email: &str, role: &str| findings(&doc, client, email, role);
    // The owner is the client's one admin (WHMCS has no customer-admin / cockpit-access, so
    // admin-without-login and no-admin cannot occur): single-admin on each of its rows.
    assert_eq!(
        f("owner@acme.example", "owner"),
        ["undeclared", "single-admin"]
    );
    assert_eq!(
        f("owner@acme.example", "tickets"),
        ["undeclared", "single-admin"]
    );
    assert_eq!(f("alice@acme.example", "tickets"), Vec::<String>::new());
    assert_eq!(f("bob@acme.example", "tickets"), ["expiring"]);
    assert_eq!(f("erin@acme.example", "tickets"), Vec::<String>::new());
    assert!(f("erin@acme.example", "quotes").contains(&"undeclared".to_string()));
    assert_eq!(f("zed@acme.example", "domains"), ["undeclared"]);
    assert_eq!(f("ops@provider.example", "tickets"), ["ignored"]);
    assert_eq!(f("billing@acme.example", "invoices"), Vec::<String>::new());
    assert_eq!(f("pat@acme.example", "quotes"), Vec::<String>::new());
    // An undeclared client: its owner and its contact, every row undeclared.
    assert!(findings(&doc, other, "owner@initech.example", "owner").contains(&"undeclared".into()));
    assert_eq!(
        findings(&doc, other, "noc@initech.example", "general"),
        ["undeclared"]
    );
    assert_eq!(
        findings(&doc, other, "noc@initech.example", "domains"),
        ["undeclared"]
    );

    // The columns: `until` is the declared one (WHMCS keeps none), `from` never on a portal,
    // the invitation from rolecall's record, provenance from git.
    let bob = row(&doc, client, "bob@acme.example", "tickets");
    assert_eq!(bob["until"], "2026-12-05");
    assert_eq!(bob["userLinked"], true);
    assert_eq!(bob["invitation"], "none");
    assert!(bob["invitationSentAt"].is_null());
    assert_eq!(bob["declaredAt"], "acme.yaml:12");
    assert_eq!(bob["grantedBy"], "Ann Author <ann@example.test>");
    assert_eq!(bob["grantedCommit"], head.as_str());
    assert_eq!(bob["grantedAt"], "2026-01-02T03:04:05Z");
    let pat = row(&doc, client, "pat@acme.example", "quotes");
    assert_eq!(pat["userLinked"], false);
    assert_eq!(pat["invitation"], "pending");
    assert_eq!(pat["invitationSentAt"], "2026-11-23T09:00:00Z");
    let zed = row(&doc, client, "zed@acme.example", "domains");
    for empty in [
        "from",
        "until",
        "declaredAt",
        "grantedBy",
        "grantedCommit",
        "grantedAt",
    ] {
        assert!(zed[empty].is_null(), "{empty}: {zed:#}");
    }
    let billing = row(&doc, client, "billing@acme.example", "invoices");
    assert_eq!(billing["kind"], "contact");
    assert!(billing["userLinked"].is_null(), "{billing:#}");
    assert_eq!(billing["invitation"], "none");
    assert_eq!(billing["declaredAt"], "acme.yaml:18");
    assert_eq!(
        row(&doc, client, "alice@acme.example", "tickets")["account"],
        "Acme AG"
    );
    assert_eq!(doc["portal"], whmcs.portal_url());
    assert_eq!(doc["manifestsCommit"], head.as_str());

    // Ten days on: Bob's permission has ended but WHMCS (which revokes nothing by date) still
    // holds it, and Pat's invitation has passed WHMCS's 7 days. rolecall's record knows when
    // it ends, so it shows as expired, never as pending past its expiry: no stale-invitation
    // on WHMCS.
    let later = review_json(&whmcs, dir.path(), "2026-12-06T09:00:00Z");
    let g = |email: &str, role: &str| findings(&later, client, email, role);
    assert_eq!(g("bob@acme.example", "tickets"), ["expired"]);
    assert_eq!(g("pat@acme.example", "quotes"), Vec::<String>::new());
    let pat = row(&later, client, "pat@acme.example", "quotes");
    assert_eq!(pat["invitation"], "expired");
    assert_eq!(pat["invitationSentAt"], "2026-11-23T09:00:00Z");
}

#[test]
fn review_csv_on_whmcs_leaves_the_missing_columns_empty() {
    let (whmcs, client, _, dir) = situation();
    let out = ok(&run(
        &whmcs,
        dir.path(),
        NOW,
        &["review", "-f", "acme.yaml", "--output", "csv"],
    ));
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "customerNumber",
            "account",
            "email",
            "kind",
            "role",
            "from",
            "until",
            "userLinked",
            "invitation",
            "invitationSentAt",
            "declaredAt",
            "grantedBy",
            "grantedCommit",
            "grantedAt",
            "findings",
            "decision",
            "reviewer"
        ]
    );
    let zed = lines
        .clone()
        .find(|l| l.contains("zed@acme.example"))
        .unwrap();
    assert_eq!(
        zed,
        format!("{client},Acme AG,zed@acme.example,member,domains,,,true,none,,,,,,undeclared,,")
    );
    let billing = lines.find(|l| l.contains("billing@acme.example")).unwrap();
    assert!(
        billing.starts_with(&format!(
            "{client},Acme AG,billing@acme.example,contact,invoices,,,,none,,acme.yaml:18,Ann Author <ann@example.test>,"
        )),
        "{billing}"
    );
}

#[test]
fn explain_on_whmcs_and_review_and_explain_only_read() {
    let (whmcs, client, _, dir) = situation();
    whmcs.clear_requests();
    let out = ok(&run(
        &whmcs,
        dir.path(),
        NOW,
        &["explain", "bob@acme.example", "-f", "acme.yaml"],
    ));
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    let short = &head[..12];
    assert_eq!(
        out,
        format!(
            "{client} (Acme AG): member bob@acme.example\n  role tickets until 2026-12-05, user linked, invitation none\n    declared at acme.yaml:12 by Ann Author <ann@example.test> in {short} on 2026-01-02T03:04:05Z\n    findings: expiring\n"
        )
    );
    let out = ok(&run(
        &whmcs,
        dir.path(),
        NOW,
        &["explain", "pat@acme.example", "-f", "acme.yaml"],
    ));
    assert!(out.contains("invitation pending"), "{out}");
    for output in ["json", "csv", "markdown", "html"] {
        ok(&run(
            &whmcs,
            dir.path(),
            NOW,
            &["review", "-f", "acme.yaml", "--output", output],
        ));
    }
    let actions = whmcs.actions();
    assert!(
        actions.iter().any(|a| a == "GetUserPermissions"),
        "{actions:?}"
    );
    assert_eq!(whmcs.writes(), Vec::<String>::new(), "{actions:?}");
    assert!(whmcs.lock().outbox.is_empty());
}
