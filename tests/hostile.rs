//! Hostile input (SPEC §7, issue 7): malformed manifests of every kind are refused by `apply`
//! with a located error, exit 1, and change nothing on the portal; and a fuzz-style harness on
//! the stable toolchain (proptest) feeds arbitrary and mutated input to the manifest checks and
//! to the plan-file reader.

mod common;

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use common::*;
use rolecall::manifest::{self, SourceFile};
use rolecall::plan::PlanDocument;

const HEAD: &str = "apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {name: hostile}\nspec:\n  customerNumber: \"55555\"\n";

fn account_with(members: &str) -> Vec<u8> {
    format!("{HEAD}  members:\n{members}").into_bytes()
}

/// Malformed manifests made at test time (the big ones are never committed).
fn generated_cases() -> Vec<(&'static str, Vec<u8>)> {
    let mut cases: Vec<(&'static str, Vec<u8>)> = Vec::new();
    push_bombs_and_sizes(&mut cases);
    push_deep_and_non_text(&mut cases);
    push_wrong_shapes(&mut cases);
    cases
}

/// Alias bombs and oversized inputs.
fn push_bombs_and_sizes(cases: &mut Vec<(&'static str, Vec<u8>)>) {
    // Billion laughs: nine levels of nine aliases each.
    let mut bomb = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(", ");
        bomb.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
    }
    cases.push(("billion-laughs.yaml", bomb.clone().into_bytes()));
    // The same bomb inside an otherwise valid account.
    let mut inside = String::from(HEAD);
    inside.push_str("  x-bomb:\n");
    for line in bomb.lines() {
        inside.push_str(&format!("    {line}\n"));
    }
    cases.push(("bomb-in-account.yaml", inside.into_bytes()));
    // A quadratic blow-up through a single alias used many times.
    let mut wide = String::from("base: &b [");
    wide.push_str(&vec!["x"; 2000].join(","));
    wide.push_str("]\nuse: [");
    wide.push_str(&vec!["*b"; 2000].join(","));
    wide.push_str("]\n");
    cases.push(("alias-fan-out.yaml", wide.into_bytes()));

    // Ten megabytes in one string, in one key, and on one line without a newline.
    let ten_mb = "x".repeat(10 * 1024 * 1024);
    cases.push((
        "ten-mb-display-name.yaml",
        format!("{HEAD}  displayName: \"{ten_mb}\"\n").into_bytes(),
    ));
    cases.push(("ten-mb-key.yaml", format!("{ten_mb}: 1\n").into_bytes()));
    cases.push(("ten-mb-line.yaml", ten_mb.clone().into_bytes()));
    // Just under the byte limit but a huge number of documents.
    cases.push((
        "many-documents.yaml",
        "---\nkind: Nope\n".repeat(20_000).into_bytes(),
    ));
}

/// Deep nesting and bytes that are not text.
fn push_deep_and_non_text(cases: &mut Vec<(&'static str, Vec<u8>)>) {
    // Deep nesting: flow sequences, flow mappings, block mappings, block sequences.
    cases.push((
        "deep-flow-sequence.yaml",
        format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
    ));
    cases.push((
        "deep-flow-mapping.yaml",
        format!("{}{}\n", "{a: ".repeat(10_000), "}".repeat(10_000)).into_bytes(),
    ));
    let mut block = String::new();
    for depth in 0..500 {
        block.push_str(&format!("{}k{depth}:\n", "  ".repeat(depth)));
    }
    cases.push(("deep-block-mapping.yaml", block.into_bytes()));
    let mut seq = String::new();
    for depth in 0..500 {
        seq.push_str(&format!("{}-\n", "  ".repeat(depth)));
    }
    cases.push(("deep-block-sequence.yaml", seq.into_bytes()));
    cases.push((
        "deep-in-spec.yaml",
        format!("{HEAD}  members: {}{}\n", "[".repeat(200), "]".repeat(200)).into_bytes(),
    ));

    // Bytes that are not text.
    cases.push((
        "nul-in-email.yaml",
        account_with("    - email: \"alice\0@acme.example\"\n      roles: [cockpit-access]\n"),
    ));
    cases.push((
        "raw-nul.yaml",
        account_with("    - email: alice@acme.example\0\n      roles: [cockpit-access]\n"),
    ));
    let mut bad_utf8 =
        account_with("    - email: alice@acme.example\n      roles: [cockpit-access]\n");
    bad_utf8.extend_from_slice(
        b"    - email: b\xff\xfeob@acme.example\n      roles: [cockpit-access]\n",
    );
    cases.push(("invalid-utf8-in-email.yaml", bad_utf8));
    cases.push(("utf16-bom.yaml", b"\xff\xfea\0p\0i\0".to_vec()));
    cases.push((
        "random-bytes.yaml",
        (0..65_536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
    ));
    cases.push((
        "control-characters.yaml",
        account_with(
            "    - email: \"\u{1b}[31malice@acme.example\u{7}\"\n      roles: [cockpit-access]\n",
        ),
    ));
    cases.push((
        "bidi-override-email.yaml",
        account_with(
            "    - email: \"alice\u{202e}elpmaxe.emca@\"\n      roles: [cockpit-access]\n",
        ),
    ));
    cases.push((
        "lone-surrogate-escape.yaml",
        account_with("    - email: \"\\ud800@acme.example\"\n      roles: [cockpit-access]\n"),
    ));
}

/// Tabs, duplicate keys, wrong types, bad tags and dates.
fn push_wrong_shapes(cases: &mut Vec<(&'static str, Vec<u8>)>) {
    // Tabs, duplicate keys, wrong types.
    cases.push((
        "tab-in-members.yaml",
        account_with("\t- email: alice@acme.example\n\t  roles: [cockpit-access]\n"),
    ));
    cases.push((
        "duplicate-member-key.yaml",
        account_with(
            "    - email: alice@acme.example\n      roles: [cockpit-access]\n      roles: [customer-admin]\n",
        ),
    ));
    cases.push((
        "duplicate-top-level-key.yaml",
        format!("{HEAD}kind: Portal\n").into_bytes(),
    ));
    cases.push((
        "members-is-a-string.yaml",
        format!("{HEAD}  members: alice\n").into_bytes(),
    ));
    cases.push((
        "roles-is-a-number.yaml",
        account_with("    - email: alice@acme.example\n      roles: 42\n"),
    ));
    cases.push((
        "customer-number-is-a-map.yaml",
        b"apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {name: x}\nspec:\n  customerNumber: {a: 1}\n".to_vec(),
    ));
    cases.push((
        "customer-number-overflow.yaml",
        b"apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {name: x}\nspec:\n  customerNumber: 999999999999999999999999999999999999\n".to_vec(),
    ));
    cases.push((
        "email-is-null.yaml",
        account_with("    - email: ~\n      roles: [cockpit-access]\n"),
    ));
    cases.push((
        "binary-tag.yaml",
        account_with("    - email: !!binary aGVsbG8=\n      roles: [cockpit-access]\n"),
    ));
    cases.push((
        "foreign-tag.yaml",
        format!("{HEAD}  displayName: !!python/object:os.system [\"rm -rf /\"]\n").into_bytes(),
    ));
    cases.push(("undefined-alias.yaml", account_with("    - *nobody\n")));
    cases.push((
        "complex-key.yaml",
        format!("{HEAD}  ? [customerNumber, members]\n  : 1\n").into_bytes(),
    ));
    cases.push((
        "impossible-date.yaml",
        account_with(
            "    - email: alice@acme.example\n      roles: [{name: cockpit-access, until: 2026-02-30}]\n",
        ),
    ));
    cases.push((
        "huge-year.yaml",
        account_with(
            "    - email: alice@acme.example\n      roles: [{name: cockpit-access, from: 99999-01-01}]\n",
        ),
    ));
    cases.push((
        "document-is-a-scalar.yaml",
        b"just a string, not an object\n".to_vec(),
    ));
    cases.push((
        "crlf-and-unclosed-quote.yaml",
        b"apiVersion: rolecall.dev/v1alpha1\r\nkind: \"CustomerAccount\r\n".to_vec(),
    ));
}

/// The committed invalid corpus plus the generated cases, written to `dir`.
fn all_cases(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir("tests/fixtures/invalid")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    for (name, bytes) in generated_cases() {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        paths.push(path);
    }
    paths
}

/// `file:line:col: ` at the start of a line.
fn located_lines<'a>(stderr: &'a str, file: &str) -> Vec<&'a str> {
    stderr
        .lines()
        .filter(|l| {
            let Some(rest) = l.strip_prefix(file).and_then(|r| r.strip_prefix(':')) else {
                return false;
            };
            let mut parts = rest.splitn(3, ':');
            let line = parts.next().and_then(|n| n.parse::<u32>().ok());
            let col = parts.next().and_then(|n| n.parse::<u32>().ok());
            matches!((line, col), (Some(l), Some(c)) if l >= 1 && c >= 1)
        })
        .collect()
}

#[test]
fn every_hostile_manifest_is_refused_by_apply_and_changes_nothing() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cases = all_cases(dir.path());
    assert!(cases.len() >= 70, "only {} hostile cases", cases.len());
    let mut failures = Vec::new();
    for path in &cases {
        let file = path.to_str().unwrap();
        // Beside the valid examples: one bad file must stop the good ones too.
        let out = server.rolecall(&["apply", "-f", "examples/", "-f", file, "--auto-approve"]);
        let err = stderr(&out);
        if out.status.code() != Some(1) {
            failures.push(format!("{file}: exit {:?}", out.status.code()));
        }
        if located_lines(&err, file).is_empty() {
            failures.push(format!(
                "{file}: no located error in: {}",
                err.chars().take(500).collect::<String>()
            ));
        }
        if err.contains("panicked") {
            failures.push(format!("{file}: panicked"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing reached the portal.
    let accounts = server.client().get("/v1/accounts?limit=1000");
    assert_eq!(
        accounts["items"],
        serde_json::json!([]),
        "an account was created"
    );
    let outbox = server.client().get("/sandbox/outbox");
    assert_eq!(outbox["items"], serde_json::json!([]), "an e-mail was sent");
}

// --- the fuzz-style harness ------------------------------------------------------------------

/// Cases per property; CI may raise it with `ROLECALL_FUZZ_CASES`.
fn cases() -> u32 {
    std::env::var("ROLECALL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn now() -> jiff::Timestamp {
    "2026-11-26T00:00:00Z".parse().unwrap()
}

fn examples() -> Vec<String> {
    let mut texts = Vec::new();
    for dir in ["examples", "examples/accounts", "examples/delegated"] {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                texts.push(std::fs::read_to_string(p).unwrap());
            }
        }
    }
    texts.sort();
    texts
}

/// Checks `text` and asserts every diagnostic is placed inside the file.
fn check_manifest(text: String) -> Result<(), TestCaseError> {
    // YAML breaks lines at LF, CRLF and a lone CR.
    let lines = text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .split('\n')
        .count() as u32;
    let file = SourceFile {
        name: "fuzz.yaml".into(),
        text: text.into(),
    };
    let checked = manifest::check_files(&[file], now());
    for d in &checked.diagnostics {
        prop_assert!(d.pos.line >= 1 && d.pos.column >= 1, "{d}");
        prop_assert!(d.pos.line <= lines + 1, "{d} (the file has {lines} lines)");
        prop_assert!(!d.message.is_empty(), "{d}");
    }
    Ok(())
}

/// YAML's punctuation and the manifests' words, for mutations.
const TOKENS: &[&str] = &[
    "\n",
    " ",
    "  ",
    "\t",
    ":",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\"",
    "'",
    "&a ",
    "*a",
    "!!str ",
    "? ",
    "|",
    ">",
    "#",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "~",
    "null",
    "true",
    "0x1F",
    "1e999",
    "-1",
    "\0",
    "\u{feff}",
    "\\u0000",
    "members:",
    "roles:",
    "email:",
    "until: 2026-02-30",
    "from: 2027-01-01",
    "cockpit-access",
    "customer-admin",
    "kind: Portal",
    "<<: *a",
    "timeZone: Mars/Olympus",
    "customerNumber: 1",
    "@",
    "é",
    "\u{202e}",
];

fn mutate(mut text: String, edits: &[(usize, usize, usize)]) -> String {
    for &(at, len, token) in edits {
        let mut at = at % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + len % 24).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        match token % 4 {
            // delete a range
            0 => text.replace_range(at..end, ""),
            // replace it with a token
            1 => text.replace_range(at..end, TOKENS[token % TOKENS.len()]),
            // duplicate it
            2 => {
                let piece = text[at..end].to_string();
                text.insert_str(at, &piece);
            }
            // insert a token
            _ => text.insert_str(at, TOKENS[token % TOKENS.len()]),
        }
    }
    text
}

fn yamlish() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            proptest::sample::select(TOKENS).prop_map(str::to_string),
            "[a-z0-9@.]{1,8}",
        ],
        0..80,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_manifest_checks_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_manifest(String::from_utf8_lossy(&bytes).into_owned())?;
    }

    #[test]
    fn fuzz_manifest_checks_on_yaml_like_text(text in yamlish()) {
        check_manifest(text)?;
    }

    #[test]
    fn fuzz_manifest_checks_on_mutated_examples(
        which in any::<usize>(),
        edits in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<usize>()), 1..6),
    ) {
        let texts = examples();
        let text = texts[which % texts.len()].clone();
        check_manifest(mutate(text, &edits))?;
    }

    #[test]
    fn fuzz_plan_reader_on_arbitrary_text(text in ".{0,400}") {
        let _ = PlanDocument::from_json(&text);
    }

    #[test]
    fn fuzz_plan_reader_on_mutated_plans(
        edits in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<usize>()), 1..6),
    ) {
        let plan = include_str!("fixtures/plan.json").to_string();
        let _ = PlanDocument::from_json(&mutate(plan, &edits));
    }
}

#[test]
fn the_plan_fixture_is_a_valid_plan() {
    // Mutations start from a real plan, so the reader's deep paths are reached.
    let doc = PlanDocument::from_json(include_str!("fixtures/plan.json")).unwrap();
    assert!(!doc.accounts.is_empty());
    assert!(doc.accounts.iter().any(|a| !a.operations.is_empty()));
}

#[test]
fn deeply_nested_plans_are_refused_without_a_crash() {
    for depth in [100usize, 10_000, 1_000_000] {
        let text = format!(
            "{{\"formatVersion\": 1, \"accounts\": {}{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(PlanDocument::from_json(&text).is_err());
    }
}

/// One raw HTTP/1.1 request to the portal; answers the status and the content type.
fn raw_request(base: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {OPERATOR_TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(body).unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = text
        .lines()
        .find_map(|l| {
            let l = l.to_ascii_lowercase();
            l.strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, content_type)
}

#[test]
fn fuzz_portal_request_bodies_never_cause_a_server_error() {
    use proptest::test_runner::{Config, TestRunner};
    let server = Server::start();
    let (status, body) = server.client().post(
        "/v1/accounts",
        serde_json::json!({"customerNumber": "10042", "displayName": "Acme", "timeZone": "UTC"}),
    );
    assert!(status < 300, "{status} {body}");
    let targets: &[(&str, &str, &str)] = &[
        (
            "PUT",
            "/v1/accounts/10042/members/alice%40acme.example",
            r#"{"name": "Alice", "roles": [{"name": "cockpit-access", "until": "2027-01-31"}], "services": ["srv-1"], "notifications": ["general"]}"#,
        ),
        (
            "PUT",
            "/v1/accounts/10042/contacts/billing%40acme.example",
            r#"{"name": "Billing", "notifications": ["invoices", "renewals"]}"#,
        ),
        (
            "POST",
            "/v1/accounts",
            r#"{"customerNumber": "20077", "displayName": "Globex", "timeZone": "America/New_York"}"#,
        ),
        (
            "PATCH",
            "/v1/accounts/10042",
            r#"{"displayName": "Acme AG", "timeZone": "Europe/Zurich"}"#,
        ),
        (
            "POST",
            "/v1/accounts/10042/members/alice%40acme.example/invitation",
            "",
        ),
        ("POST", "/sandbox/users", r#"{"email": "bob@acme.example"}"#),
        (
            "POST",
            "/sandbox/clock",
            r#"{"now": "2026-11-27T00:00:00Z"}"#,
        ),
    ];
    let mut runner = TestRunner::new(Config {
        cases: cases() / 2,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        0..targets.len(),
        prop_oneof![
            proptest::collection::vec((any::<usize>(), any::<usize>(), any::<usize>()), 0..5)
                .prop_map(Ok),
            proptest::collection::vec(any::<u8>(), 0..200).prop_map(Err),
        ],
    );
    runner
        .run(&strategy, |(which, input)| {
            let (method, path, valid) = targets[which];
            let body = match input {
                Ok(edits) => mutate(valid.to_string(), &edits).into_bytes(),
                Err(bytes) => bytes,
            };
            let (status, content_type) = raw_request(&server.url, method, path, &body);
            prop_assert!(
                (200..500).contains(&status),
                "{method} {path} {:?}: {status}",
                String::from_utf8_lossy(&body)
            );
            if status >= 400 {
                prop_assert_eq!(content_type, "application/problem+json");
            }
            Ok(())
        })
        .unwrap();
    // The portal still answers.
    assert_eq!(server.client().get("/v1/whoami")["kind"], "operator");
}

#[test]
fn hostile_manifests_are_refused_in_bounded_memory() {
    // 256 MiB of address space: an alias bomb or deep recursion that ran unchecked would
    // abort instead of answering with a located error.
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in generated_cases() {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let file = path.to_str().unwrap();
        let out = std::process::Command::new("sh")
            .args(["-c", "ulimit -v 262144 && exec \"$0\" \"$@\""])
            .args([bin(), "validate", "-f", file])
            .env("ROLECALL_NOW", NOW)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(!located_lines(&stderr(&out), file).is_empty(), "{name}");
    }
}
