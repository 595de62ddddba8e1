//! Expiry notices (SPEC §3a): `plan` and `apply` warn about declared roles whose last day is
//! within `--expiring-within` days (default 14), in every output the plan's warnings reach.

mod common;

use common::*;
use serde_json::Value;

const MANIFEST: &str = "apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: expiry}
spec:
  customerNumber: \"40001\"
  timeZone: Europe/Zurich
  members:
    - email: ann@acme.example
      roles: [cockpit-access, customer-admin]
    - email: ben@acme.example
      roles:
        - {name: cockpit-access, until: 2026-12-03}
        - {name: technical-contact, until: 2027-01-31}
---
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: other}
spec:
  customerNumber: \"40002\"
  members:
    - email: cat@acme.example
      roles: [cockpit-access, customer-admin]
    - email: dan@acme.example
      roles:
        - {name: cockpit-access, until: 2026-11-30}
";

// NOW is 2026-11-26 09:00 UTC: 2026-12-03 is seven days on in Zurich.
const NOTICE: &str = "account 40001: ben@acme.example's role cockpit-access ends on 2026-12-03 (its last day is in 7 days)";

fn warnings(out: &std::process::Output) -> Vec<String> {
    let doc: Value = serde_json::from_slice(&out.stdout).expect("a JSON plan");
    doc["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w.as_str().map(str::to_string))
        .collect()
}

#[test]
fn plan_and_apply_warn_about_roles_ending_within_the_notice_period() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("expiry.yaml");
    std::fs::write(&file, MANIFEST).unwrap();
    let file = file.display().to_string();

    let text = server.rolecall(&["plan", "-f", &file, "--account", "40001"]);
    assert_eq!(text.status.code(), Some(0), "{}", show(&text));
    assert!(
        stdout(&text).contains(&format!("warning: {NOTICE}")),
        "{}",
        show(&text)
    );
    assert!(
        !stdout(&text).contains("technical-contact ends"),
        "{}",
        show(&text)
    );
    // Shown in the plan on stdout: not a second time on stderr.
    assert!(!stderr(&text).contains(NOTICE), "{}", show(&text));

    let json = server.rolecall(&[
        "plan",
        "-f",
        &file,
        "--output",
        "json",
        "--account",
        "40001",
    ]);
    assert_eq!(warnings(&json), [NOTICE]);
    // The JSON goes to a tool: stderr still tells the person.
    assert!(
        stderr(&json).contains(&format!("warning: {NOTICE}")),
        "{}",
        show(&json)
    );

    let md = server.rolecall(&[
        "plan",
        "-f",
        &file,
        "--output",
        "markdown",
        "--account",
        "40001",
    ]);
    assert!(stdout(&md).contains(NOTICE), "{}", show(&md));

    // A shorter notice period leaves ben's out (dan's 4 days stay); a longer one takes ben's
    // later role in too. Without --account every planned account's roles are announced.
    let dan = "account 40002: dan@acme.example's role cockpit-access ends on 2026-11-30 (its last day is in 4 days)";
    let short = [
        "plan",
        "-f",
        &file,
        "--output",
        "json",
        "--expiring-within",
        "6",
    ];
    let short = server.rolecall(&short);
    assert_eq!(warnings(&short), [dan], "{}", show(&short));
    let long = [
        "plan",
        "-f",
        &file,
        "--output",
        "json",
        "--expiring-within",
        "90",
    ];
    let long = warnings(&server.rolecall(&long));
    assert_eq!(long.len(), 3, "{long:#?}");
    assert_eq!(long[0], NOTICE);
    assert!(long[1].contains("technical-contact ends on 2027-01-31 (its last day is in 66 days)"));
    assert_eq!(long[2], dan);

    let apply = server.rolecall(&["apply", "-f", &file, "--auto-approve"]);
    assert_eq!(apply.status.code(), Some(0), "{}", show(&apply));
    assert!(
        stdout(&apply).contains(&format!("warning: {NOTICE}")),
        "{}",
        show(&apply)
    );

    let bad = server.rolecall(&["plan", "-f", &file, "--expiring-within", "soon"]);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
    assert!(stderr(&bad).contains("--expiring-within"), "{}", show(&bad));
}

fn show(o: &std::process::Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", stdout(o), stderr(o))
}
