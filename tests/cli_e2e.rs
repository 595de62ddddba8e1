//! Every command as a process against a real `rolecall portal serve` on loopback.

mod common;

use common::*;

fn invitations(server: &Server) -> Vec<String> {
    let outbox = server.client().get("/sandbox/outbox");
    outbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "invitation")
        .map(|m| m["to"].as_str().unwrap().to_lowercase())
        .collect()
}

#[test]
fn plan_apply_and_replan_converge_with_one_invitation_each() {
    let server = Server::start();
    let plan = server.rolecall(&["plan", "-f", "examples/", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "{}", stderr(&plan));
    let text = stdout(&plan);
    assert!(text.contains("+ create-account"), "{text}");
    assert!(
        text.contains("+ grant bob@acme.example technical-contact until 2027-12-31"),
        "{text}"
    );
    assert!(text.contains("Plan: "), "{text}");

    let apply = server.rolecall(&["apply", "-f", "examples/", "--auto-approve"]);
    assert_eq!(
        apply.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&apply),
        stderr(&apply)
    );
    assert!(
        stdout(&apply).contains("Apply complete"),
        "{}",
        stdout(&apply)
    );

    let again = server.rolecall(&["plan", "-f", "examples/", "--detailed-exitcode"]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&again),
        stderr(&again)
    );
    assert!(stdout(&again).contains("No changes."), "{}", stdout(&again));

    // A second apply changes nothing and sends no second invitation.
    let second = server.rolecall(&["apply", "-f", "examples/", "--auto-approve"]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let mut sent = invitations(&server);
    let total = sent.len();
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), total, "an invitation was sent twice: {sent:?}");
    // Members with a login role were invited; carol (technical-contact only) was not.
    assert!(sent.contains(&"alice@acme.example".to_string()));
    assert!(!sent.contains(&"carol@acme.example".to_string()));
}

#[test]
fn json_and_markdown_outputs_have_their_shapes() {
    let server = Server::start();
    let json = server.rolecall(&["plan", "-f", "examples/", "--output", "json"]);
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["formatVersion"], 1);
    assert_eq!(doc["portal"], server.url.as_str());
    assert!(doc["summary"]["invite"].as_u64().unwrap() >= 1);
    let first = &doc["accounts"][0];
    assert!(
        first["source"]
            .as_str()
            .unwrap()
            .starts_with("examples/accounts/")
    );
    assert!(first["changes"][0]["precondition"].is_string());

    let md = server.rolecall(&["plan", "-f", "examples/", "--output", "markdown"]);
    let md = stdout(&md);
    assert!(md.starts_with("### rolecall plan"), "{md}");
    assert!(
        md.contains("<details>") && md.contains("| account |"),
        "{md}"
    );
    assert!(!md.contains('\x1b'));
}

#[test]
fn a_stale_saved_plan_is_refused_and_a_fresh_one_applied_exactly() {
    let server = Server::start();
    let (dir, examples) = examples_copy();
    let ex = examples.to_str().unwrap();
    let planfile = dir.path().join("plan.json");
    let planfile = planfile.to_str().unwrap();
    let out = server.rolecall(&["apply", "-f", ex, "--auto-approve"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The manifests now rename Alice; the plan is saved.
    let acme = examples.join("accounts/acme.yaml");
    let text = std::fs::read_to_string(&acme).unwrap();
    std::fs::write(
        &acme,
        text.replace("name: Alice Meier", "name: Alice Keller-Meier"),
    )
    .unwrap();
    let plan = server.rolecall(&["plan", "-f", ex, "--out", planfile]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let saved = std::fs::read_to_string(planfile).unwrap();
    assert!(saved.contains("Alice Keller-Meier"));

    // Someone changes Alice on the portal after the plan was made: the plan is stale.
    let (status, body) = server.client().call(
        "PUT",
        "/v1/accounts/10042/members/alice%40acme.example",
        Some(serde_json::json!({"name": "Alice", "roles": [{"name": "cockpit-access"}, {"name": "customer-admin"}], "notifications": ["general", "invoices"]})),
    );
    assert!(status < 300, "{status} {body}");
    let apply = server.rolecall(&["apply", planfile]);
    assert_eq!(apply.status.code(), Some(1), "{}", stdout(&apply));
    assert!(stderr(&apply).contains("stale"), "{}", stderr(&apply));
    let members = server.client().get("/v1/accounts/10042/members?limit=1000");
    let alice = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "alice@acme.example")
        .unwrap()
        .clone();
    assert_eq!(alice["name"], "Alice", "a stale plan changed the portal");

    // A fresh plan, saved and applied, converges.
    let plan = server.rolecall(&["plan", "-f", ex, "--out", planfile]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let apply = server.rolecall(&["apply", planfile]);
    assert_eq!(
        apply.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&apply),
        stderr(&apply)
    );
    let again = server.rolecall(&["plan", "-f", ex, "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}

#[test]
fn export_round_trips_to_no_changes() {
    let server = Server::start();
    let out = server.rolecall(&["apply", "-f", "examples/", "--auto-approve"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let export_dir = dir.path().join("exported");
    let export = server.rolecall(&["export", "--out-dir", export_dir.to_str().unwrap()]);
    assert!(export.status.success(), "{}", stderr(&export));
    let plan = server.rolecall(&[
        "plan",
        "-f",
        export_dir.to_str().unwrap(),
        "--detailed-exitcode",
    ]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&plan),
        stderr(&plan)
    );
    assert!(stdout(&plan).contains("No changes."));
    let validate = server.rolecall(&["validate", "-f", export_dir.to_str().unwrap()]);
    assert!(validate.status.success(), "{}", stderr(&validate));
}

#[test]
fn a_refused_account_changes_nothing_while_the_others_apply() {
    let server = Server::start();
    let (_dir, examples) = examples_copy();
    let ex = examples.to_str().unwrap();
    let out = server.rolecall(&["apply", "-f", ex, "--auto-approve"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Alice accepts: she is now Acme's effective admin.
    let (status, body) = server.client().post(
        "/sandbox/users",
        serde_json::json!({"email": "alice@acme.example"}),
    );
    assert!(status < 300, "{status} {body}");
    // Drop her admin role, and change Initech too.
    let acme = examples.join("accounts/acme.yaml");
    let text = std::fs::read_to_string(&acme).unwrap();
    std::fs::write(
        &acme,
        text.replace(
            "roles: [cockpit-access, customer-admin]",
            "roles: [cockpit-access]",
        ),
    )
    .unwrap();
    let initech = examples.join("accounts/initech.yaml");
    let text = std::fs::read_to_string(&initech).unwrap();
    std::fs::write(
        &initech,
        text.replace("displayName: Initech GmbH", "displayName: Initech AG"),
    )
    .unwrap();

    let apply = server.rolecall(&["apply", "-f", ex, "--auto-approve"]);
    assert_eq!(apply.status.code(), Some(1), "{}", stdout(&apply));
    let text = stdout(&apply);
    assert!(
        text.contains(
            "refused: the plan would leave customer account 10042 without an effective admin"
        ),
        "{text}"
    );
    let acme = server.client().get("/v1/accounts/10042/members?limit=1000");
    let alice = acme["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "alice@acme.example")
        .unwrap();
    assert!(
        alice["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "customer-admin")
    );
    let initech = server.client().get("/v1/accounts/30311");
    assert_eq!(initech["displayName"], "Initech AG");
}

#[test]
fn plan_and_diff_only_read() {
    let server = Server::start();
    let out = server.rolecall(&["apply", "-f", "examples/", "--auto-approve"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The apply's writes are all in the log before counting starts.
    server.sync_log();
    let before = server.log_lines().len();
    let (_dir, examples) = examples_copy();
    let globex = examples.join("accounts/globex.yaml");
    let text = std::fs::read_to_string(&globex).unwrap();
    std::fs::write(&globex, text.replace("name: Operations", "name: Ops team")).unwrap();
    let plan = server.rolecall(&["plan", "-f", examples.to_str().unwrap()]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let diff = server.rolecall(&["diff", "-f", examples.to_str().unwrap()]);
    assert!(diff.status.success(), "{}", stderr(&diff));
    let d = stdout(&diff);
    assert!(
        d.contains("--- observed/20077") && d.contains("+++ desired/20077"),
        "{d}"
    );
    assert!(
        d.contains("-    name: Operations") && d.contains("+    name: Ops team"),
        "{d}"
    );
    server.sync_log();
    let requests: Vec<String> = server.log_lines()[before..].to_vec();
    assert!(!requests.is_empty());
    for line in &requests {
        let method = line
            .split_whitespace()
            .find(|w| ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(w));
        if let Some(m) = method {
            assert_eq!(m, "GET", "plan or diff wrote: {line}");
        }
    }
}

#[test]
fn the_quickstart_works_on_the_embedded_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        std::path::Path::new("examples"),
        &dir.path().join("examples"),
    );
    let run = |args: &[&str]| {
        std::process::Command::new(bin())
            .args(args)
            .current_dir(dir.path())
            .env_remove("ROLECALL_PORTAL")
            .env_remove("ROLECALL_TOKEN")
            .env("ROLECALL_NOW", NOW)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let apply = run(&["apply", "-f", "examples/", "--auto-approve"]);
    assert_eq!(
        apply.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&apply),
        stderr(&apply)
    );
    assert!(dir.path().join(".rolecall/sandbox.db").exists());
    let again = run(&["plan", "-f", "examples/", "--detailed-exitcode"]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&again),
        stderr(&again)
    );
}

#[test]
fn a_missing_token_is_a_sentence_that_names_the_variable_not_a_secret() {
    let server = Server::start();
    let out = std::process::Command::new(bin())
        .args(["plan", "-f", "examples/", "--portal", &server.url])
        .env_remove("ROLECALL_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ROLECALL_TOKEN"), "{}", stderr(&out));
    let wrong = std::process::Command::new(bin())
        .args(["plan", "-f", "examples/", "--portal", &server.url])
        .env("ROLECALL_TOKEN", "wrong-token-value-123")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    let all = format!("{}{}", stdout(&wrong), stderr(&wrong));
    assert!(!all.contains("wrong-token-value-123"), "{all}");
    assert!(!all.contains(OPERATOR_TOKEN));
}
