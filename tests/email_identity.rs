//! E-mail identity end to end: one address in its Unicode (composed or decomposed) and IDNA
//! spellings is one person — to `validate`, to the planner and to the reference portal — and
//! addresses with invisible or bidirectional characters are refused where they are declared.

mod common;

use std::path::Path;

use common::{Server, stderr, stdout};
use serde_json::json;

const BUECHER: &str = "u@b\u{fc}cher.example";
const BUECHER_ASCII: &str = "u@xn--bcher-kva.example";
const MUELLER_NFC: &str = "m\u{fc}ller@acme.example";
const MUELLER_NFD: &str = "mu\u{308}ller@acme.example";

fn account(members: &[(&str, &str)], policy: &str) -> String {
    let mut text = String::from(
        "apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {name: acme}\nspec:\n  customerNumber: \"10042\"\n",
    );
    text.push_str(policy);
    text.push_str("  members:\n");
    for (email, role) in members {
        text.push_str(&format!(
            "    - email: \"{email}\"\n      roles: [{role}]\n"
        ));
    }
    text
}

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("acme.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Every byte outside the unreserved set percent-encoded, as a client puts an e-mail in a path.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn validate(server: &Server, file: &str) -> std::process::Output {
    server.rolecall(&["validate", "-f", file])
}

#[test]
fn validate_takes_unicode_and_idna_spellings_of_one_address_for_one_person() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    for (a, b) in [(BUECHER, BUECHER_ASCII), (MUELLER_NFC, MUELLER_NFD)] {
        let file = write(
            dir.path(),
            &account(&[(a, "technical-contact"), (b, "technical-contact")], ""),
        );
        let out = validate(&server, &file);
        assert_eq!(out.status.code(), Some(1), "{a} / {b}: {}", stdout(&out));
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            text.contains("acme.yaml:9:")
                && text.contains("is declared twice")
                && text.contains("acme.yaml:7:"),
            "{text}"
        );
    }
}

#[test]
fn invisible_and_bidirectional_characters_are_refused_where_they_are_declared() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    for (email, code) in [
        ("ceo\u{200b}@acme.example", "U+200B"),
        ("ce\u{ad}o@acme.example", "U+00AD"),
        ("ceo\u{202e}@acme.example", "U+202E"),
    ] {
        let file = write(
            dir.path(),
            &account(
                &[
                    ("a@acme.example", "technical-contact"),
                    (email, "technical-contact"),
                ],
                "",
            ),
        );
        let out = validate(&server, &file);
        assert_eq!(out.status.code(), Some(1), "{email:?}: {}", stdout(&out));
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            text.contains("acme.yaml:9:14: spec.members[1].email:") && text.contains(code),
            "{email:?}: {text}"
        );
        assert!(!text.contains(email), "shown escaped: {text}");
    }
}

#[test]
fn allowed_domains_and_ignore_patterns_match_either_spelling_of_a_domain() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        &account(
            &[(BUECHER_ASCII, "technical-contact")],
            "  policy:\n    allowedEmailDomains: [\"b\u{fc}cher.example\"]\n    ignore: [\"*@XN--BCHER-KVA.example\"]\n",
        ),
    );
    let out = validate(&server, &file);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("matches policy.ignore"),
        "{}",
        stderr(&out)
    );
}

/// The reference portal keeps one member per person, whichever spelling a write uses, and
/// lets the invited person accept in another spelling of the same address.
#[test]
fn the_reference_portal_keeps_one_member_per_person_and_accepts_their_other_spelling() {
    let server = Server::start();
    let api = server.client();
    let (status, body) = api.post(
        "/v1/accounts",
        json!({"customerNumber": "10042", "displayName": "Acme", "timeZone": "UTC"}),
    );
    assert_eq!(status, 201, "{body}");
    let put = |email: &str| {
        api.call(
            "PUT",
            &format!("/v1/accounts/10042/members/{}", encode(email)),
            Some(json!({"roles": [{"name": "cockpit-access"}]})),
        )
    };
    for (first, second) in [(BUECHER, BUECHER_ASCII), (MUELLER_NFC, MUELLER_NFD)] {
        let (status, body) = put(first);
        assert_eq!(status, 201, "{first}: {body}");
        let (status, body) = put(second);
        assert_eq!(status, 200, "{second} is {first}: {body}");
    }
    let listed = api.get("/v1/accounts/10042/members");
    let emails: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails.len(), 2, "{listed}");
    assert!(
        emails.contains(&BUECHER) && emails.contains(&MUELLER_NFC),
        "{listed}"
    );

    let (status, invitation) = api.post(
        &format!(
            "/v1/accounts/10042/members/{}/invitation",
            encode(MUELLER_NFC)
        ),
        json!({}),
    );
    assert_eq!(status, 201, "{invitation}");
    let id = invitation["id"].as_str().unwrap();
    let (status, body) = api.post(
        &format!("/sandbox/invitations/{id}/accept"),
        json!({"email": "MU\u{308}LLER@acme.example"}),
    );
    assert!(status < 300, "{status} {body}");
    let (status, body) = api.post(
        "/sandbox/users",
        json!({"email": "u@xn--bcher-kva.example"}),
    );
    assert!(status < 300, "{status} {body}");
    let listed = api.get("/v1/accounts/10042/members");
    for m in listed["items"].as_array().unwrap() {
        assert_eq!(m["userLinked"], true, "{m}");
    }
}

/// Declared in one spelling, held by the portal in another: the plan has nothing to do.
#[test]
fn the_plan_matches_a_declared_address_to_the_portal_s_other_spelling() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        &account(
            &[
                (BUECHER, "technical-contact"),
                (MUELLER_NFD, "technical-contact"),
            ],
            "",
        ),
    );
    let apply = server.rolecall(&["apply", "-f", &file, "--auto-approve"]);
    assert!(
        apply.status.success(),
        "{}{}",
        stdout(&apply),
        stderr(&apply)
    );
    let file = write(
        dir.path(),
        &account(
            &[
                (BUECHER_ASCII, "technical-contact"),
                (MUELLER_NFC, "technical-contact"),
            ],
            "",
        ),
    );
    let plan = server.rolecall(&["plan", "-f", &file, "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}{}",
        stdout(&plan),
        stderr(&plan)
    );
    assert!(stdout(&plan).contains("No changes."), "{}", stdout(&plan));
}
