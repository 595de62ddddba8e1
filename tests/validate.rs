//! The offline checks: a corpus of invalid manifests, each with the exact place and the key
//! words of every error it must produce; snapshots of the rendered diagnostics; and
//! `rolecall validate` run as a process.

use std::path::{Path, PathBuf};
use std::process::Command;

use rolecall::manifest::{self, Diagnostic, SourceFile};

fn now() -> jiff::Timestamp {
    "2026-11-26T00:00:00Z".parse().unwrap()
}

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new("tests/fixtures/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// `# expect: LINE:COL PATH | words | more words`
struct Expect {
    place: String,
    path: String,
    words: Vec<String>,
}

fn expectations(text: &str) -> Vec<Expect> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|rest| {
            let mut parts = rest.split(" | ");
            let head = parts.next().unwrap();
            let (place, path) = head.split_once(' ').unwrap();
            Expect {
                place: place.to_string(),
                path: path.to_string(),
                words: parts.map(str::to_string).collect(),
            }
        })
        .collect()
}

fn check(path: &Path) -> Vec<Diagnostic> {
    let text = std::fs::read_to_string(path).unwrap();
    let file = SourceFile {
        name: path.display().to_string(),
        text: text.into(),
    };
    manifest::check_files(&[file], now()).diagnostics
}

#[test]
fn corpus_has_at_least_thirty_cases() {
    assert!(corpus().len() >= 30, "{}", corpus().len());
}

#[test]
fn every_invalid_manifest_gets_exactly_its_located_errors() {
    let mut failures = Vec::new();
    for path in corpus() {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = expectations(&text);
        assert!(
            !expected.is_empty(),
            "{} has no # expect: line",
            path.display()
        );
        let diags = check(&path);
        let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
        for e in &expected {
            let found = errors.iter().any(|d| {
                d.place() == format!("{}:{}", path.display(), e.place)
                    && d.path == e.path
                    && e.words.iter().all(|w| d.message.contains(w.as_str()))
            });
            if !found {
                failures.push(format!(
                    "{}: expected {} {} {:?}\n  got:\n{}",
                    path.display(),
                    e.place,
                    e.path,
                    e.words,
                    errors
                        .iter()
                        .map(|d| format!("    {d}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ));
            }
        }
        if errors.len() != expected.len() {
            failures.push(format!(
                "{}: expected {} errors, got {}:\n{}",
                path.display(),
                expected.len(),
                errors.len(),
                errors
                    .iter()
                    .map(|d| format!("    {d}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rendered_diagnostics_of_the_corpus() {
    let mut out = String::new();
    for path in corpus() {
        for d in check(&path) {
            out.push_str(&format!("{d}\n"));
        }
    }
    insta::assert_snapshot!(out);
}

#[test]
fn examples_are_valid_without_warnings() {
    let checked = manifest::load_and_check(&[PathBuf::from("examples")], now());
    let all: Vec<String> = checked.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(all.is_empty(), "{all:#?}");
    assert_eq!(checked.desired.accounts.len(), 3);
    assert_eq!(checked.desired.portals.len(), 1);
    let acme = checked
        .desired
        .accounts
        .iter()
        .find(|a| a.customer_number == "10042")
        .unwrap();
    // The AccountMember and NotificationContact files join their account.
    assert!(
        acme.members
            .iter()
            .any(|m| m.email.as_str() == "carol@acme.example")
    );
    assert!(
        acme.contacts
            .iter()
            .any(|c| c.email.as_str() == "noc@acme.example")
    );
}

#[test]
fn warnings_do_not_fail_but_are_located() {
    let text = r#"apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: acme}
spec:
  customerNumber: "10042"
  timeZone: Europe/Zurich
  members:
    - email: alice@acme.example
      roles: [cockpit-access, customer-admin]
    - email: bob@acme.example
      roles:
        - customer-admin
        - {name: technical-contact, until: 2026-11-25}
"#;
    let file = SourceFile {
        name: "w.yaml".into(),
        text: text.into(),
    };
    let checked = manifest::check_files(&[file], now());
    assert!(!checked.has_errors());
    let warnings: Vec<String> = checked.warnings().map(|d| d.to_string()).collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings[0].starts_with("w.yaml:12:9: spec.members[1].roles: warning:"));
    assert!(warnings[0].contains("customer-admin without cockpit-access"));
    assert!(warnings[1].starts_with("w.yaml:13:44: spec.members[1].roles[1].until: warning:"));
    assert!(warnings[1].contains("ended on 2026-11-25"));
}

#[test]
fn until_today_in_the_accounts_zone_is_not_past_yet() {
    // 2026-11-26T00:00Z is 2026-11-25T19:00 in New York: the 25th is still running there.
    let text = r#"apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: globex}
spec:
  customerNumber: "20077"
  timeZone: America/New_York
  members:
    - email: ops@globex.example
      roles: [{name: cockpit-access, until: 2026-11-25}]
"#;
    let file = SourceFile {
        name: "ny.yaml".into(),
        text: text.into(),
    };
    let checked = manifest::check_files(&[file], now());
    assert_eq!(checked.diagnostics, vec![]);
}

fn rolecall(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rolecall"))
        .args(args)
        .env("ROLECALL_NOW", "2026-11-26T00:00:00Z")
        .output()
        .unwrap()
}

#[test]
fn validate_command_accepts_the_examples() {
    let out = rolecall(&["validate", "-f", "examples/"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("6 documents valid"), "{stdout}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn validate_command_reports_every_file_and_exits_1() {
    let out = rolecall(&[
        "validate",
        "-f",
        "tests/fixtures/invalid/10-invalid-email.yaml",
        "-f",
        "tests/fixtures/invalid/17-unknown-time-zone.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("tests/fixtures/invalid/10-invalid-email.yaml:8:14: spec.members[0].email:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tests/fixtures/invalid/17-unknown-time-zone.yaml:7:13: spec.timeZone:"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn validate_reads_standard_input() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rolecall"))
        .args(["validate", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"apiVersion: rolecall.dev/v1alpha1\nkind: Portal\nmetadata: {name: main}\nspec: {url: 'sandbox:x.db', tokn: x}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("-:4:29: spec.tokn: unknown field \"tokn\""),
        "{stderr}"
    );
}

#[test]
fn missing_file_is_named() {
    let out = rolecall(&["validate", "-f", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no/such/dir:1:1: (document): no such file or directory"),
        "{stderr}"
    );
}

#[test]
fn hostile_inputs_are_refused_with_a_place_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "garbage.yaml",
            (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
            "not UTF-8",
        ),
        (
            "deep.yaml",
            format!("a: {}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
            "nested deeper",
        ),
        ("nul.yaml", b"a: \"x\0y\"\n".to_vec(), "invalid YAML"),
    ];
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (i, c) in ["b", "c", "d", "e", "f", "g", "h", "i"].iter().enumerate() {
        let prev = ["a", "b", "c", "d", "e", "f", "g", "h"][i];
        bomb.push_str(&format!(
            "{c}: &{c} [{}]\n",
            vec![format!("*{prev}"); 9].join(",")
        ));
    }
    cases.push(("bomb.yaml", bomb.into_bytes(), "alias bomb"));
    let big = format!(
        "apiVersion: rolecall.dev/v1alpha1\nkind: Portal\nmetadata: {{name: x}}\nspec: {{url: \"{}\"}}\n",
        "x".repeat(9 * 1024 * 1024)
    );
    cases.push(("big.yaml", big.into_bytes(), "larger than"));
    for (name, bytes, words) in &cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = rolecall(&["validate", "-f", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("");
        assert!(
            first.starts_with(&format!("{}:", path.display())),
            "{name}: {first}"
        );
        assert!(first.contains(words), "{name}: {first}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(stderr.len() < 4096, "{name}: the message must stay short");
    }
}
