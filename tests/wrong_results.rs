//! Results that were wrong although nothing crashed (issue 16 §4, items 8, 9, 12, 13, 14): each
//! as a process against a real `rolecall portal serve` on loopback.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::{Value, json};

/// `rolecall ARGS` against the server with the given token.
fn rolecall_as(server: &Server, token: &str, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("ROLECALL_PORTAL", &server.url)
        .env("ROLECALL_TOKEN", token)
        .env("ROLECALL_NOW", NOW)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn account(cn: &str, members: &str) -> String {
    let name: String = cn
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: a-{name}-x}}\nspec:\n  customerNumber: \"{cn}\"\n  members:\n{members}"
    )
}

fn members(server: &Server, cn: &str) -> Vec<Value> {
    server
        .client()
        .get(&format!("/v1/accounts/{cn}/members?limit=1000"))["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn sent_invitations(server: &Server) -> Vec<String> {
    server.client().get("/sandbox/outbox")["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "invitation")
        .map(|m| m["to"].as_str().unwrap().to_string())
        .collect()
}

fn show(o: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", stdout(o), stderr(o))
}

// --- item 8 ------------------------------------------------------------------------------------

#[test]
fn inviting_someone_whose_user_account_already_exists_is_done_not_failed() {
    let server = Server::start();
    let (status, body) = server
        .client()
        .post("/sandbox/users", json!({"email": "dana@acme.example"}));
    assert!(status < 300, "{status} {body}");
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "k.yaml",
        &account(
            "K-8",
            "    - email: dana@acme.example\n      roles: [cockpit-access]\n",
        ),
    );

    // The plan invites (the portal shows no member yet); the member's write links the existing
    // user account, and the portal answers the invitation with 409 already_linked.
    let plan = server.rolecall(&["plan", "-f", &file]);
    assert!(
        stdout(&plan).contains("+ invite dana@acme.example"),
        "{}",
        show(&plan)
    );
    let apply = server.rolecall(&["apply", "-f", &file, "--auto-approve"]);
    assert_eq!(apply.status.code(), Some(0), "{}", show(&apply));
    assert!(
        stdout(&apply).contains("Apply complete: 4 changes applied."),
        "{}",
        show(&apply)
    );
    let dana = &members(&server, "K-8")[0];
    assert_eq!(dana["userLinked"], true, "{dana}");
    assert!(
        sent_invitations(&server).is_empty(),
        "nobody needed an invitation"
    );

    // The planner invites nobody who is linked already: nothing is left to do.
    let again = server.rolecall(&["plan", "-f", &file, "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", show(&again));
    assert!(!stdout(&again).contains("invite"), "{}", show(&again));
}

// --- item 9 ------------------------------------------------------------------------------------

/// What the reference portal says of a customer number, field and sentence.
fn portal_refusal(server: &Server, cn: &str) -> Option<(String, String)> {
    let (status, body) = server.client().post(
        "/v1/accounts",
        json!({"customerNumber": cn, "displayName": "X", "timeZone": "UTC"}),
    );
    if status < 300 {
        return None;
    }
    assert_eq!(status, 422, "{body}");
    let error = &body["errors"][0];
    Some((
        error["field"].as_str().unwrap().to_string(),
        error["message"].as_str().unwrap().to_string(),
    ))
}

#[test]
fn validate_refuses_exactly_the_customer_numbers_the_portal_refuses_with_a_place() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let long = "1".repeat(1000);
    let bad = [
        "..",
        ".",
        "a/b",
        " 10042",
        long.as_str(),
        "10\u{1b}42",
        "10\u{7}42",
    ];
    for cn in bad {
        // JSON strings are YAML strings: the control characters are written as escapes.
        let quoted = serde_json::to_string(cn).unwrap();
        let file = write(
            dir.path(),
            "bad.yaml",
            &format!(
                "apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: bad}}\nspec:\n  customerNumber: {quoted}\n"
            ),
        );
        let out = server.rolecall(&["validate", "-f", &file]);
        assert_eq!(out.status.code(), Some(1), "{cn:?}: {}", show(&out));
        let prefix = format!("{file}:5:19: spec.customerNumber: ");
        let errors = stderr(&out);
        let located: Vec<&str> = errors
            .lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect();
        assert!(
            !located.is_empty(),
            "{cn:?}: no located error in {}",
            show(&out)
        );
        for line in &located {
            assert!(
                !line.contains('\u{1b}') && !line.contains('\u{7}'),
                "{line:?}"
            );
            assert!(line.len() < 300, "the long value is not repeated: {line}");
        }
        // The portal refuses it too, with the same sentence: one rule.
        let (field, message) =
            portal_refusal(&server, cn).unwrap_or_else(|| panic!("the portal took {cn:?}"));
        assert_eq!(field, "customerNumber");
        assert!(
            located.contains(&message.as_str()),
            "{cn:?}: {message:?} not in {located:#?}"
        );
    }
    // What the one accepts, the other does too.
    for cn in ["K-9.1_a", "10042", "..."] {
        let file = write(
            dir.path(),
            "good.yaml",
            &account(
                cn,
                "    - email: a@x.example\n      roles: [cockpit-access]\n",
            ),
        );
        let out = server.rolecall(&["validate", "-f", &file]);
        assert_eq!(out.status.code(), Some(0), "{cn:?}: {}", show(&out));
        assert_eq!(portal_refusal(&server, cn), None, "{cn:?}");
    }
}

// --- item 12 -----------------------------------------------------------------------------------

#[test]
fn an_account_the_user_may_not_manage_is_refused_and_the_others_are_planned() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let admin_on_one = format!(
        "{}---\n{}",
        account(
            "20001",
            "    - email: alice@acme.example\n      roles: [cockpit-access, customer-admin]\n",
        ),
        account(
            "20002",
            "    - email: alice@acme.example\n      roles: [cockpit-access]\n    - email: boss@acme.example\n      roles: [cockpit-access, customer-admin]\n",
        ),
    );
    let file = write(dir.path(), "accounts.yaml", &admin_on_one);
    let seeded = server.rolecall(&["apply", "-f", &file, "--auto-approve"]);
    assert_eq!(seeded.status.code(), Some(0), "{}", show(&seeded));
    let (status, body) = server
        .client()
        .post("/sandbox/users", json!({"email": "alice@acme.example"}));
    assert!(status < 300, "{status} {body}");
    let (status, body) = server
        .client()
        .post("/sandbox/tokens", json!({"email": "alice@acme.example"}));
    assert!(status < 300, "{status} {body}");
    let alice = body["token"].as_str().unwrap().to_string();

    // Carol is declared on both accounts; alice may manage only the first.
    let carol = "    - email: carol@acme.example\n      roles: [technical-contact]\n";
    let both = admin_on_one.replace(
        "customer-admin]\n---",
        &format!("customer-admin]\n{carol}---"),
    ) + carol;
    write(dir.path(), "accounts.yaml", &both);

    let plan = rolecall_as(&server, &alice, &["plan", "-f", &file, "--output", "json"]);
    assert_eq!(
        plan.status.code(),
        Some(1),
        "refusals exit 1: {}",
        show(&plan)
    );
    let doc: Value = serde_json::from_slice(&plan.stdout)
        .unwrap_or_else(|e| panic!("no plan document ({e}): {}", show(&plan)));
    let planned: Vec<&str> = doc["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["customerNumber"].as_str().unwrap())
        .collect();
    assert_eq!(planned, ["20001"], "{doc:#}");
    let refused = doc["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{doc:#}");
    assert_eq!(refused[0]["customerNumber"], "20002");
    let reason = refused[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("alice@acme.example) may not manage customer account 20002"),
        "{reason}"
    );

    let apply = rolecall_as(&server, &alice, &["apply", "-f", &file, "--auto-approve"]);
    assert_eq!(apply.status.code(), Some(1), "{}", show(&apply));
    assert!(
        stdout(&apply).contains("refused: the principal"),
        "{}",
        show(&apply)
    );
    let emails = |cn: &str| -> Vec<String> {
        members(&server, cn)
            .iter()
            .map(|m| m["email"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(emails("20001").contains(&"carol@acme.example".to_string()));
    assert!(!emails("20002").contains(&"carol@acme.example".to_string()));
}

// --- item 13 -----------------------------------------------------------------------------------

#[test]
fn warnings_are_part_of_every_plan_output() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "w.yaml",
        &account(
            "30013",
            "    - email: ann@acme.example\n      roles: [cockpit-access]\n    - email: ben@acme.example\n      roles:\n        - customer-admin\n        - {name: technical-contact, until: 2026-11-01}\n",
        ),
    );
    let admin =
        format!("{file}:11:9: spec.members[1].roles: customer-admin without cockpit-access");
    let ended = format!(
        "{file}:12:44: spec.members[1].roles[1].until: role \"technical-contact\" ended on 2026-11-01"
    );

    let json = server.rolecall(&["plan", "-f", &file, "--output", "json"]);
    assert_eq!(json.status.code(), Some(0), "{}", show(&json));
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    let warnings: Vec<&str> = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings[0].starts_with(&admin), "{warnings:#?}");
    assert!(warnings[1].starts_with(&ended), "{warnings:#?}");
    // The JSON goes to a file or a tool: stderr still tells the person.
    let on_stderr = format!("{file}:11:9: spec.members[1].roles: warning: customer-admin without");
    assert!(stderr(&json).contains(&on_stderr), "{}", show(&json));

    let saved = dir.path().join("plan.json");
    let out = server.rolecall(&["plan", "-f", &file, "--out", saved.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(saved["warnings"], doc["warnings"]);

    let md = server.rolecall(&["plan", "-f", &file, "--output", "markdown"]);
    let md = stdout(&md);
    let section = md
        .split("#### Warnings\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{md}"));
    assert!(
        section.contains("customer-admin without cockpit-access"),
        "{md}"
    );
    assert!(section.contains("ended on 2026-11-01"), "{md}");

    // Text: in the plan, once (not again on stderr), before the summary line.
    let text = server.rolecall(&["plan", "-f", &file]);
    let shown = stdout(&text);
    assert!(
        shown.contains(&format!("warning: {admin}")),
        "{}",
        show(&text)
    );
    assert!(
        shown.contains(&format!("warning: {ended}")),
        "{}",
        show(&text)
    );
    assert!(
        shown
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("Plan: "),
        "{shown}"
    );
    assert!(
        !stderr(&text).contains("customer-admin without"),
        "{}",
        show(&text)
    );

    let apply = server.rolecall(&["apply", "-f", &file, "--auto-approve"]);
    assert_eq!(apply.status.code(), Some(0), "{}", show(&apply));
    assert!(
        stdout(&apply).contains(&format!("warning: {admin}")),
        "{}",
        show(&apply)
    );
}

// --- item 14 -----------------------------------------------------------------------------------

#[test]
fn a_partial_failure_counts_and_names_every_change() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "p.yaml",
        &account(
            "40001",
            "    - email: zed@acme.example\n      roles: [technical-contact]\n",
        ),
    );
    let seeded = server.rolecall(&["apply", "-f", &file, "--auto-approve"]);
    assert_eq!(seeded.status.code(), Some(0), "{}", show(&seeded));

    // Ann's login role ends on 2026-11-28. rolecall's clock says 2026-11-26; the portal's says
    // 2026-12-01, so it takes her write but refuses her invitation (she can no longer log in):
    // a failure in the middle of the account, the same on every run.
    let second = format!(
        "{}  contacts:\n    - email: noc@acme.example\n      notifications: [maintenance]\n---\n{}",
        account(
            "40001",
            "    - email: ann@acme.example\n      roles: [{name: cockpit-access, until: 2026-11-28}]\n",
        ),
        account(
            "40002",
            "    - email: yan@acme.example\n      roles: [technical-contact]\n"
        ),
    );
    write(dir.path(), "p.yaml", &second);
    let (status, body) = server
        .client()
        .post("/sandbox/clock", json!({"now": "2026-12-01T09:00:00Z"}));
    assert!(status < 300, "{status} {body}");

    let apply = server.rolecall(&["apply", "-f", &file, "--auto-approve"]);
    assert_eq!(apply.status.code(), Some(1), "{}", show(&apply));
    // 40001: add-member, grant, add-contact, invite, remove-member; 40002: create-account,
    // add-member, grant. The invitation failed and the removal after it was never sent.
    assert!(
        stdout(&apply).contains("Apply incomplete: 6 of 8 changes applied; 2 failed."),
        "{}",
        show(&apply)
    );
    let err = stderr(&apply);
    let applied = "customer account 40001: 3 of 5 changes applied:\n  + add-member ann@acme.example\n  + grant ann@acme.example cockpit-access until 2026-11-28\n  + add-contact noc@acme.example";
    assert!(err.contains(applied), "{}", show(&apply));
    assert!(
        err.contains("customer account 40001: 2 changes failed:\n  + invite ann@acme.example (failed: inviting ann@acme.example: "),
        "{}",
        show(&apply)
    );
    assert!(
        err.contains("  - remove-member zed@acme.example — not declared (prune) (not attempted: an earlier write of this account failed)"),
        "{}",
        show(&apply)
    );
    assert!(!err.contains("customer account 40002"), "{}", show(&apply));

    // What was said to have happened is what the portal holds.
    let emails: Vec<String> = members(&server, "40001")
        .iter()
        .map(|m| m["email"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(emails, ["ann@acme.example", "zed@acme.example"]);
    assert_eq!(members(&server, "40002").len(), 1);
}

/// A portal of another make (or one older than the rule) may already hold an account `..`:
/// reading it goes through the query string, and no write for it can reach another path.
#[tokio::test]
async fn a_dot_dot_customer_number_held_by_a_portal_never_reaches_another_path() {
    use axum::extract::Request;
    use axum::response::IntoResponse;
    use rolecall::plan::Operation;
    use rolecall::portal::http::{HttpOptions, HttpPortal, Token};
    use rolecall::portal::{MemberPut, RoleGrant};
    use std::sync::{Arc, Mutex};

    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |req: Request| {
        let log = log.clone();
        async move {
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or("").to_string();
            log.lock().unwrap().push(format!("{} {path}?{query}", req.method()));
            let page = |items: Value| axum::Json(json!({"items": items, "nextCursor": null}));
            match path.as_str() {
                "/v1/accounts" => page(json!([{"customerNumber": "..", "displayName": "Dots", "timeZone": "UTC", "etag": "\"1\""}])).into_response(),
                "/v1/members" | "/v1/contacts" => page(json!([])).into_response(),
                _ => (axum::http::StatusCode::NOT_FOUND, "no such path").into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let portal = HttpPortal::new(
        &base,
        Token::new("t0ken", "T").unwrap(),
        HttpOptions::default(),
    )
    .unwrap();

    let observed = rolecall::reconcile::observe(&portal, &["..".to_string()])
        .await
        .unwrap();
    assert!(observed.contains_key(".."), "{observed:?}");
    let write = Operation::PutMember {
        email: "a@x.example".into(),
        member: MemberPut {
            name: None,
            roles: vec![RoleGrant {
                name: "cockpit-access".into(),
                until: None,
            }],
            services: None,
            notifications: None,
        },
        if_match: None,
    };
    let outcome = rolecall::reconcile::apply_account(&portal, "..", &[write]).await;
    let error = outcome.error.unwrap_or_default();
    assert!(
        error.contains("writing member a@x.example: \"..\" cannot be sent as a part of a URL path"),
        "{error}"
    );
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|r| r.starts_with("GET ")),
        "only the reads were sent: {seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|r| r.starts_with("GET /v1/members?") && r.contains("account=..")),
        "{seen:#?}"
    );
}
