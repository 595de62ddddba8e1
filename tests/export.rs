//! `rolecall export` against the reference portal: every account in a file and an object of
//! its own, under names that are unique and stable, and an export that plans "No changes" —
//! whatever the customer numbers look like, and for members with no role left in effect.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{Server, stderr, stdout};
use serde_json::{Value, json};

/// Customer numbers that one lower-cased, dash-for-anything name cannot tell apart.
const LOOK_ALIKES: [&str; 4] = ["K-100", "K_100", "AB", "ab"];

fn seed(server: &Server) {
    let api = server.client();
    for (i, cn) in LOOK_ALIKES.iter().enumerate() {
        let (status, body) = api.post(
            "/v1/accounts",
            json!({"customerNumber": cn, "displayName": format!("Look-alike {i}"), "timeZone": "UTC"}),
        );
        assert_eq!(status, 201, "{cn}: {body}");
        let (status, body) = api.call(
            "PUT",
            &format!("/v1/accounts/{cn}/members/m{i}@acme.example"),
            Some(json!({"roles": [{"name": "technical-contact"}]})),
        );
        assert!(status < 300, "{cn}: {status} {body}");
    }
    // A member whose only role ended on 2026-11-01: the portal lists it with no roles.
    let (status, body) = api.call(
        "PUT",
        "/v1/accounts/K-100/members/former@acme.example",
        Some(json!({"roles": [{"name": "technical-contact", "until": "2026-11-01"}]})),
    );
    assert!(status < 300, "{status} {body}");
    let listed = api.get("/v1/accounts/K-100/members");
    let former = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "former@acme.example")
        .unwrap();
    assert_eq!(former["roles"], json!([]), "{listed}");
}

fn files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

fn documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text).unwrap()
}

/// `validate` accepts the export and `plan` finds nothing to do.
fn round_trips(server: &Server, path: &str) {
    let validate = server.rolecall(&["validate", "-f", path]);
    assert!(
        validate.status.success(),
        "{}{}",
        stdout(&validate),
        stderr(&validate)
    );
    let plan = server.rolecall(&["plan", "-f", path, "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&plan),
        stderr(&plan)
    );
    assert!(stdout(&plan).contains("No changes."), "{}", stdout(&plan));
}

#[test]
fn look_alike_customer_numbers_get_files_and_names_of_their_own_on_every_run() {
    let server = Server::start();
    seed(&server);
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let out = server.rolecall(&["export", "--out-dir", first.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exported 4 accounts"),
        "{}",
        stderr(&out)
    );
    let written = files(&first);
    assert_eq!(written.len(), 5, "{:?}", written.keys());
    // Distinct even where the file system ignores case.
    let folded: BTreeSet<String> = written.keys().map(|f| f.to_lowercase()).collect();
    assert_eq!(folded.len(), 5, "{:?}", written.keys());
    let mut numbers = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (file, text) in &written {
        for doc in documents(text) {
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            assert!(names.insert(name.clone()));
            if doc["kind"] == "CustomerAccount" {
                assert_eq!(format!("{name}.yaml"), *file);
                numbers.insert(doc["spec"]["customerNumber"].as_str().unwrap().to_string());
            }
        }
    }
    let want: BTreeSet<String> = LOOK_ALIKES.iter().map(|s| s.to_string()).collect();
    assert_eq!(numbers, want);

    // Stable: the same names and contents on another run, and for one account on its own.
    let second = dir.path().join("second");
    let again = server.rolecall(&["export", "--out-dir", second.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(files(&second), written);
    let alone = dir.path().join("alone");
    let one = server.rolecall(&[
        "export",
        "--account",
        "K_100",
        "--out-dir",
        alone.to_str().unwrap(),
    ]);
    assert!(one.status.success(), "{}", stderr(&one));
    for (file, text) in files(&alone) {
        assert_eq!(written.get(&file), Some(&text), "{file}");
    }

    round_trips(&server, first.to_str().unwrap());
}

#[test]
fn the_export_on_standard_output_names_every_object_once_and_round_trips() {
    let server = Server::start();
    seed(&server);
    let out = server.rolecall(&["export"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let docs = documents(&text);
    assert_eq!(docs.len(), 5, "{text}");
    let names: BTreeSet<(String, String)> = docs
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(names.len(), 5, "{text}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.yaml");
    std::fs::write(&file, &text).unwrap();
    round_trips(&server, file.to_str().unwrap());
}

/// A member whose last role's `until` has passed is still on the portal (`roles: []`). A
/// member cannot be declared without a role, and one declared with its old role would be
/// removed; the export lists it under `policy.ignore`, so planning the export changes nothing.
#[test]
fn a_member_with_no_role_left_is_kept_by_the_export() {
    let server = Server::start();
    seed(&server);
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("exported");
    let out = server.rolecall(&[
        "export",
        "--account",
        "K-100",
        "--out-dir",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let account = files(&out_dir)
        .into_iter()
        .find(|(f, _)| f != "portal.yaml")
        .unwrap()
        .1;
    let doc = &documents(&account)[0];
    assert_eq!(
        doc["spec"]["policy"]["ignore"],
        json!(["former@acme.example"]),
        "{account}"
    );
    let members: Vec<&str> = doc["spec"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["m0@acme.example"], "{account}");
    round_trips(&server, out_dir.to_str().unwrap());
    let listed = server.client().get("/v1/accounts/K-100/members");
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");
}
