//! Security and safety defects found from outside (issue 16 §4 items 1–7), end to end: the
//! built binary against a reference portal on loopback.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::{Value, json};

const ACCOUNT: &str = "apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {name: acme}\nspec:\n  customerNumber: \"10042\"\n  timeZone: Europe/Zurich\n";

/// Account 10042 with `members` (email, roles, linked) written straight to the portal.
fn seed(server: &Server, members: &[(&str, &[&str], bool)]) {
    let api = server.client();
    let (status, body) = api.post(
        "/v1/accounts",
        json!({"customerNumber": "10042", "displayName": "Acme", "timeZone": "Europe/Zurich"}),
    );
    assert!(status < 300, "{status} {body}");
    for (email, roles, linked) in members {
        let roles: Vec<Value> = roles.iter().map(|r| json!({"name": r})).collect();
        let (status, body) = api.call(
            "PUT",
            &format!("/v1/accounts/10042/members/{}", email.replace('@', "%40")),
            Some(json!({"roles": roles})),
        );
        assert!(status < 300, "{status} {body}");
        if *linked {
            let (status, body) = api.post("/sandbox/users", json!({"email": email}));
            assert!(status < 300, "{status} {body}");
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn members(server: &Server) -> Vec<Value> {
    server.client().get("/v1/accounts/10042/members?limit=1000")["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn roles_of(server: &Server, email: &str) -> Vec<String> {
    members(server)
        .iter()
        .find(|m| m["email"] == email)
        .map(|m| {
            m["roles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Changes the portal recorded in account 10042's audit log (read synchronously, no waiting
/// for a log line).
fn writes(server: &Server) -> usize {
    server.client().get("/v1/accounts/10042/audit?limit=1000")["items"]
        .as_array()
        .map_or(0, Vec::len)
}

/// Runs rolecall in `cwd` with exactly these environment variables besides the clock.
fn rolecall_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("ROLECALL_PORTAL")
        .env_remove("ROLECALL_TOKEN")
        .env("ROLECALL_NOW", NOW)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Whether anything connected to `listener` (a connection waits in the backlog until
/// accepted, so this needs no timing).
fn was_contacted(listener: &TcpListener) -> bool {
    listener.set_nonblocking(true).unwrap();
    listener.accept().is_ok()
}

/// A plan saved against the real portal: Carol is added.
fn saved_plan(server: &Server, dir: &Path) -> String {
    seed(
        server,
        &[(
            "alice@acme.example",
            &["cockpit-access", "customer-admin"],
            true,
        )],
    );
    let manifest = write(
        dir,
        "acme.yaml",
        &format!(
            "{ACCOUNT}  members:\n    - email: alice@acme.example\n      roles: [cockpit-access, customer-admin]\n    - email: carol@acme.example\n      roles: [technical-contact]\n"
        ),
    );
    let planfile = dir.join("plan.json").to_str().unwrap().to_string();
    let plan = server.rolecall(&["plan", "-f", &manifest, "--out", &planfile]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    planfile
}

fn edit_plan(planfile: &str, edit: impl FnOnce(&mut Value)) {
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(planfile).unwrap()).unwrap();
    edit(&mut doc);
    std::fs::write(planfile, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

// --- item 1: a plan file never chooses where the token goes --------------------------------

#[test]
fn a_saved_plan_naming_another_portal_is_refused_and_nothing_is_sent_there() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let planfile = saved_plan(&server, dir.path());
    let before = writes(&server);
    let attacker = TcpListener::bind("127.0.0.1:0").unwrap();
    let evil = format!("http://{}", attacker.local_addr().unwrap());
    edit_plan(&planfile, |doc| doc["portal"] = json!(evil));

    // ROLECALL_PORTAL names the real portal: the plan's portal differs, so it is refused.
    let apply = server.rolecall(&["apply", &planfile]);
    assert_eq!(apply.status.code(), Some(1), "{}", stdout(&apply));
    let err = stderr(&apply);
    assert!(err.contains("the plan was made for the portal"), "{err}");
    assert!(!err.contains(OPERATOR_TOKEN), "{err}");
    assert!(
        !was_contacted(&attacker),
        "the token went to the plan's portal"
    );
    assert_eq!(
        writes(&server),
        before,
        "a refused plan wrote to the portal"
    );
    assert!(roles_of(&server, "carol@acme.example").is_empty());

    // Nothing says where to go: the default portal is chosen, which is not the plan's either.
    let empty = tempfile::tempdir().unwrap();
    let apply = rolecall_env(
        empty.path(),
        &["apply", &planfile],
        &[("ROLECALL_TOKEN", OPERATOR_TOKEN)],
    );
    assert_eq!(apply.status.code(), Some(1), "{}", stderr(&apply));
    assert!(
        stderr(&apply).contains("sandbox:.rolecall/sandbox.db"),
        "{}",
        stderr(&apply)
    );
    assert!(
        !was_contacted(&attacker),
        "the token went to the plan's portal"
    );

    // The unedited plan, applied where it was made, goes through.
    edit_plan(&planfile, |doc| doc["portal"] = json!(server.url));
    let apply = server.rolecall(&["apply", &planfile]);
    assert_eq!(apply.status.code(), Some(0), "{}", stderr(&apply));
    assert_eq!(
        roles_of(&server, "carol@acme.example"),
        ["technical-contact"]
    );
}

#[test]
fn a_saved_plan_takes_its_portal_from_the_manifests_of_f() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let planfile = saved_plan(&server, dir.path());
    let portal = write(
        dir.path(),
        "portal.yaml",
        &format!(
            "apiVersion: rolecall.dev/v1alpha1\nkind: Portal\nmetadata: {{name: main}}\nspec:\n  url: {}\n",
            server.url
        ),
    );
    let manifests = dir.path().to_str().unwrap();
    let apply = rolecall_env(
        dir.path(),
        &["apply", &planfile, "-f", manifests],
        &[("ROLECALL_TOKEN", OPERATOR_TOKEN)],
    );
    assert_eq!(apply.status.code(), Some(0), "{}", stderr(&apply));
    assert_eq!(
        roles_of(&server, "carol@acme.example"),
        ["technical-contact"]
    );
    drop(portal);
}

// --- item 2: credentials in a portal URL are never shown ------------------------------------

#[test]
fn a_password_in_the_portal_url_is_never_printed() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let port = server.url.rsplit(':').next().unwrap().to_string();
    let url = format!("http://user:s3cr3tpw@127.0.0.1:{port}");
    let manifest = write(
        dir.path(),
        "acme.yaml",
        &format!(
            "{ACCOUNT}  members:\n    - email: alice@acme.example\n      roles: [cockpit-access]\n"
        ),
    );
    let by_flag = rolecall_env(
        dir.path(),
        &["plan", "-f", &manifest, "--portal", &url],
        &[("ROLECALL_TOKEN", OPERATOR_TOKEN)],
    );
    let by_env = rolecall_env(
        dir.path(),
        &["plan", "-f", &manifest],
        &[
            ("ROLECALL_TOKEN", OPERATOR_TOKEN),
            ("ROLECALL_PORTAL", &url),
        ],
    );
    for out in [&by_flag, &by_env] {
        assert_eq!(out.status.code(), Some(1), "{}", stdout(out));
        let all = format!("{}{}", stdout(out), stderr(out));
        assert!(!all.contains("s3cr3tpw"), "{all}");
        assert!(all.contains("(redacted)"), "{all}");
    }

    // In a Portal manifest, validate refuses credentials at their place.
    let portal = write(
        dir.path(),
        "portal.yaml",
        &format!(
            "apiVersion: rolecall.dev/v1alpha1\nkind: Portal\nmetadata: {{name: main}}\nspec:\n  url: {url}\n"
        ),
    );
    let validate = rolecall_env(dir.path(), &["validate", "-f", &portal], &[]);
    assert_eq!(validate.status.code(), Some(1), "{}", stderr(&validate));
    let err = stderr(&validate);
    assert!(err.contains("portal.yaml:5:8: spec.url:"), "{err}");
    assert!(err.contains("credentials"), "{err}");
    assert!(!err.contains("s3cr3tpw"), "{err}");
    let plan = rolecall_env(
        dir.path(),
        &["plan", "-f", dir.path().to_str().unwrap()],
        &[("ROLECALL_TOKEN", OPERATOR_TOKEN)],
    );
    assert_eq!(plan.status.code(), Some(1));
    assert!(!format!("{}{}", stdout(&plan), stderr(&plan)).contains("s3cr3tpw"));
}

// --- item 3: safety rules hold for the principal that applies -------------------------------

#[test]
fn a_saved_plan_applied_with_another_principals_token_cannot_lock_it_out() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    seed(
        &server,
        &[
            (
                "alice@acme.example",
                &["cockpit-access", "customer-admin"],
                true,
            ),
            (
                "bob@acme.example",
                &["cockpit-access", "customer-admin"],
                true,
            ),
        ],
    );
    // Planned by the operator (no self-lockout for it): Bob loses customer-admin.
    let manifest = write(
        dir.path(),
        "acme.yaml",
        &format!(
            "{ACCOUNT}  members:\n    - email: alice@acme.example\n      roles: [cockpit-access, customer-admin]\n    - email: bob@acme.example\n      roles: [cockpit-access]\n"
        ),
    );
    let planfile = dir.path().join("plan.json").to_str().unwrap().to_string();
    let plan = server.rolecall(&["plan", "-f", &manifest, "--out", &planfile]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let before = writes(&server);

    // Applied with Bob's own token: refused before any write.
    let (status, token) = server
        .client()
        .post("/sandbox/tokens", json!({"email": "bob@acme.example"}));
    assert!(status < 300, "{status} {token}");
    let bob = token["token"].as_str().unwrap();
    let apply = rolecall_env(
        dir.path(),
        &["apply", &planfile],
        &[("ROLECALL_TOKEN", bob), ("ROLECALL_PORTAL", &server.url)],
    );
    assert_eq!(apply.status.code(), Some(1), "{}", stdout(&apply));
    let err = stderr(&apply);
    assert!(
        err.contains(
            "would revoke customer-admin from bob@acme.example, the principal this apply acts as"
        ),
        "{err}"
    );
    assert_eq!(writes(&server), before);
    assert!(roles_of(&server, "bob@acme.example").contains(&"customer-admin".to_string()));

    // The operator may apply it.
    let apply = server.rolecall(&["apply", &planfile]);
    assert_eq!(apply.status.code(), Some(0), "{}", stderr(&apply));
    assert_eq!(roles_of(&server, "bob@acme.example"), ["cockpit-access"]);
}

// --- item 4: the last-admin rule sees windows -----------------------------------------------

#[test]
fn an_only_admin_whose_role_ends_in_four_days_is_refused() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    seed(
        &server,
        &[(
            "alice@acme.example",
            &["cockpit-access", "customer-admin"],
            true,
        )],
    );
    // NOW is 2026-11-26: the role holds until 2026-11-30 in Zurich and not an instant longer.
    let manifest = write(
        dir.path(),
        "acme.yaml",
        &format!(
            "{ACCOUNT}  members:\n    - email: alice@acme.example\n      roles: [cockpit-access, {{name: customer-admin, until: 2026-11-30}}]\n"
        ),
    );
    let plan = server.rolecall(&["plan", "-f", &manifest]);
    assert_eq!(plan.status.code(), Some(1), "{}", stdout(&plan));
    let out = stdout(&plan);
    assert!(out.contains("without an effective admin"), "{out}");
    assert!(out.contains("2026-12-01 00:00"), "{out}");
    let before = writes(&server);
    let apply = server.rolecall(&["apply", "-f", &manifest, "--auto-approve"]);
    assert_eq!(apply.status.code(), Some(1), "{}", stdout(&apply));
    assert_eq!(writes(&server), before);

    // A second admin who stays makes it a handover, which is allowed.
    let manifest = write(
        dir.path(),
        "acme.yaml",
        &format!(
            "{ACCOUNT}  members:\n    - email: alice@acme.example\n      roles: [cockpit-access, {{name: customer-admin, until: 2026-11-30}}]\n    - email: bob@acme.example\n      roles: [cockpit-access, customer-admin]\n"
        ),
    );
    seed_member_linked(&server, "bob@acme.example");
    let plan = server.rolecall(&["plan", "-f", &manifest]);
    assert!(plan.status.success(), "{}", stdout(&plan));
}

fn seed_member_linked(server: &Server, email: &str) {
    let (status, body) = server.client().call(
        "PUT",
        &format!("/v1/accounts/10042/members/{}", email.replace('@', "%40")),
        Some(json!({"roles": [{"name": "cockpit-access"}, {"name": "customer-admin"}]})),
    );
    assert!(status < 300, "{status} {body}");
    let (status, body) = server
        .client()
        .post("/sandbox/users", json!({"email": email}));
    assert!(status < 300, "{status} {body}");
}

// --- item 5: an explicit maxRemovals below 3 is the limit -----------------------------------

#[test]
fn max_removals_of_one_refuses_two_removals() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    seed(
        &server,
        &[
            (
                "alice@acme.example",
                &["cockpit-access", "customer-admin"],
                true,
            ),
            ("x1@acme.example", &["technical-contact"], false),
            ("x2@acme.example", &["technical-contact"], false),
        ],
    );
    let manifest = write(
        dir.path(),
        "acme.yaml",
        &format!(
            "{ACCOUNT}  members:\n    - email: alice@acme.example\n      roles: [cockpit-access, customer-admin]\n  policy: {{maxRemovals: \"1\"}}\n"
        ),
    );
    let apply = server.rolecall(&["apply", "-f", &manifest, "--auto-approve"]);
    assert_eq!(apply.status.code(), Some(1), "{}", stdout(&apply));
    assert!(
        stdout(&apply).contains("maxRemovals 1 allows (1)"),
        "{}",
        stdout(&apply)
    );
    assert_eq!(members(&server).len(), 3, "a removal went through");
}

// --- item 6: operations must be what the changes derive to ----------------------------------

/// One way of editing a saved plan.
type Edit = Box<dyn Fn(&mut Value)>;

#[test]
fn a_saved_plan_whose_operations_were_edited_is_refused_before_any_write() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let planfile = saved_plan(&server, dir.path());
    let pristine = std::fs::read_to_string(&planfile).unwrap();
    let before = writes(&server);
    let alice_etag = members(&server)
        .iter()
        .find(|m| m["email"] == "alice@acme.example")
        .map(|m| m["etag"].clone())
        .unwrap();
    let edits: Vec<(&str, Edit)> = vec![
        (
            "e-mail",
            Box::new(|doc: &mut Value| {
                doc["accounts"][0]["operations"][0]["email"] = json!("mallory@evil.example")
            }),
        ),
        (
            "roles",
            Box::new(|doc: &mut Value| {
                doc["accounts"][0]["operations"][0]["member"]["roles"] =
                    json!([{"name": "cockpit-access"}, {"name": "customer-admin"}])
            }),
        ),
        (
            "no changes",
            Box::new(|doc: &mut Value| doc["accounts"][0]["changes"] = json!([])),
        ),
        (
            "an extra write",
            Box::new(move |doc: &mut Value| {
                let ops = doc["accounts"][0]["operations"].as_array_mut().unwrap();
                ops.push(json!({"op": "delete-member", "email": "alice@acme.example", "ifMatch": alice_etag.clone()}));
            }),
        ),
    ];
    for (what, edit) in &edits {
        std::fs::write(&planfile, &pristine).unwrap();
        edit_plan(&planfile, |doc| edit(doc));
        let apply = server.rolecall(&["apply", &planfile]);
        assert_eq!(apply.status.code(), Some(1), "{what}: {}", stdout(&apply));
        assert!(
            stderr(&apply).contains("the plan file was edited or is damaged"),
            "{what}: {}",
            stderr(&apply)
        );
        assert_eq!(writes(&server), before, "{what}: an edited plan wrote");
    }
    assert_eq!(members(&server).len(), 1);
    std::fs::write(&planfile, &pristine).unwrap();
    let apply = server.rolecall(&["apply", &planfile]);
    assert_eq!(apply.status.code(), Some(0), "{}", stderr(&apply));
}

// --- item 7: manifest strings cannot drive the terminal -------------------------------------

#[test]
fn control_characters_in_names_are_refused_and_never_printed_raw() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = write(
        dir.path(),
        "acme.yaml",
        "apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {name: acme}\nspec:\n  customerNumber: \"10042\\r\\u001b[2K  - remove-member ceo@acme.example\"\n  displayName: \"Acme\\u001b[31m\"\n  members:\n    - email: alice@acme.example\n      name: \"Alice\\nMeier\"\n      roles: [cockpit-access]\n",
    );
    let validate = rolecall_env(dir.path(), &["validate", "-f", &manifest], &[]);
    assert_eq!(validate.status.code(), Some(1), "{}", stderr(&validate));
    let err = stderr(&validate);
    for field in [
        "spec.customerNumber",
        "spec.displayName",
        "spec.members[0].name",
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!(": {field}: ")) && l.contains("control character")),
            "{field}: {err}"
        );
    }
    let plan = server.rolecall(&["plan", "-f", &manifest]);
    assert_eq!(plan.status.code(), Some(1));
    for out in [&validate, &plan] {
        let all = format!("{}{}", stdout(out), stderr(out));
        assert!(!all.contains('\u{1b}') && !all.contains('\r'), "{all:?}");
    }
}
