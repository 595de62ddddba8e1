//! Command-line conventions: annotations for CI, completions, man page, version, -q/-v,
//! "did you mean", `init` and the plan schema — each through the built binary.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{NOW, Server, bin, stderr, stdout};

fn rolecall_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("ROLECALL_NOW", NOW)
        .env("NO_COLOR", "1")
        .env_remove("ROLECALL_PORTAL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// One document with a bad e-mail, a misspelled field and a role that ended (a warning).
const BROKEN: &str = "\
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: acme}
spec:
  customerNumber: \"10042\"
  members:
    - email: bob@
      roles: [cockpit-access]
    - email: carol@acme.example
      rolse: [cockpit-access]
    - email: dave@acme.example
      roles: [customer-admin, cockpit-access, {name: technical-contact, until: 2020-01-01}]
";

#[test]
fn validate_github_output_is_annotations_on_the_right_lines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("acme.yaml"), BROKEN).unwrap();
    let out = rolecall_in(
        dir.path(),
        &["validate", "-f", "acme.yaml", "--output", "github"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("::error ") || l.starts_with("::warning ")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::error file=acme.yaml,line=7,col=")
                && l.contains("title=spec.members[0].email")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::error file=acme.yaml,line=10,") && l.contains("roles")),
        "did you mean missing: {text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::warning file=acme.yaml,line=12,")),
        "{text}"
    );
    // Quiet keeps the errors and drops the warnings.
    let quiet = rolecall_in(
        dir.path(),
        &["validate", "-q", "-f", "acme.yaml", "--output", "github"],
    );
    assert!(!stdout(&quiet).contains("::warning"), "{}", stdout(&quiet));
    assert!(stdout(&quiet).contains("::error"));
}

#[test]
fn validate_json_output_lists_every_problem_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("acme.yaml"), BROKEN).unwrap();
    let out = rolecall_in(
        dir.path(),
        &["validate", "-f", "acme.yaml", "--output", "json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    // The misspelled `rolse` is two problems: an unknown field, and `roles` missing.
    assert_eq!(list.len(), 4, "{list:#?}");
    for d in &list {
        let keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["column", "field", "file", "line", "message", "severity"]
        );
        assert_eq!(d["file"], "acme.yaml");
    }
    assert_eq!(list[0]["line"], 7);
    assert_eq!(list[0]["field"], "spec.members[0].email");
    assert_eq!(list[2]["field"], "spec.members[1].rolse");
    assert_eq!(list[3]["severity"], "warning");
    // A valid set prints an empty list, exits 0, and keeps the summary off standard output.
    let ok = rolecall_in(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &["validate", "-f", "examples/", "--output", "json"],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert_eq!(stdout(&ok).trim(), "[]");
    assert!(stderr(&ok).contains("valid"));
}

#[test]
fn completions_exist_for_every_shell() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = rolecall_in(dir.path(), &["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let text = stdout(&out);
        for word in ["rolecall", "validate", "detailed-exitcode", "auto-approve"] {
            assert!(text.contains(word), "{shell} completion lacks {word}");
        }
    }
    let bad = rolecall_in(dir.path(), &["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn man_prints_the_page_and_writes_one_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = rolecall_in(dir.path(), &["man"]);
    assert_eq!(out.status.code(), Some(0));
    let roff = stdout(&out);
    assert!(roff.contains(".TH rolecall 1"), "{roff}");
    assert!(roff.contains("validate") && roff.contains("completions"));
    let written = rolecall_in(dir.path(), &["man", "--out-dir", "man"]);
    assert_eq!(written.status.code(), Some(0), "{}", stderr(&written));
    let plan = std::fs::read_to_string(dir.path().join("man/rolecall-plan.1")).unwrap();
    assert!(plan.contains("detailed\\-exitcode"), "{plan}");
    assert!(dir.path().join("man/rolecall-portal-serve.1").exists());
}

#[test]
fn version_names_the_commit_when_built_from_git() {
    let out = rolecall_in(Path::new("."), &["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("rolecall {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    // Both ways of building are checked, none skipped: from the crate's own git checkout the
    // version names the commit; without git or a checkout of its own (a `cargo package`
    // tarball), it is the crate version alone.
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(manifest_dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let own_checkout = git(&["rev-parse", "--show-toplevel"]).is_some_and(|top| {
        std::fs::canonicalize(top).ok() == std::fs::canonicalize(manifest_dir).ok()
    });
    match own_checkout
        .then(|| git(&["rev-parse", "--short=10", "HEAD"]))
        .flatten()
    {
        Some(head) => assert!(text.contains(&format!("({head})")), "{text} lacks {head}"),
        None => assert_eq!(
            text.trim_end(),
            format!("rolecall {}", env!("CARGO_PKG_VERSION")),
            "not built from a git checkout of its own"
        ),
    }
}

#[test]
fn mistyped_commands_and_flags_get_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let out = rolecall_in(dir.path(), &["valdate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("similar subcommand exists: 'validate'"),
        "{}",
        stderr(&out)
    );
    let out = rolecall_in(dir.path(), &["plan", "--detailed-exitcod"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("'--detailed-exitcode'"),
        "{}",
        stderr(&out)
    );
    let out = rolecall_in(dir.path(), &["apply", "--auto-aprove"]);
    assert!(
        stderr(&out).contains("'--auto-approve'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn init_writes_a_starter_that_validates_and_plans_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = rolecall_in(dir.path(), &["init", "access"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let account = std::fs::read_to_string(dir.path().join("access/account.yaml")).unwrap();
    let portal = std::fs::read_to_string(dir.path().join("access/portal.yaml")).unwrap();
    assert!(
        portal.contains("url: sandbox:") && portal.contains("# ") && portal.contains("https://")
    );
    assert!(account.contains("kind: CustomerAccount") && account.contains("# "));

    let valid = rolecall_in(dir.path(), &["validate", "-f", "access"]);
    assert_eq!(valid.status.code(), Some(0), "{}", stderr(&valid));
    assert!(stderr(&valid).is_empty(), "warnings: {}", stderr(&valid));
    let plan = rolecall_in(dir.path(), &["plan", "-f", "access", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "{}", stderr(&plan));
    assert!(
        stdout(&plan).contains("admin@example.com"),
        "{}",
        stdout(&plan)
    );
    let apply = rolecall_in(dir.path(), &["apply", "-f", "access", "--auto-approve"]);
    assert_eq!(apply.status.code(), Some(0), "{}", stderr(&apply));
    let again = rolecall_in(dir.path(), &["plan", "-f", "access", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));

    std::fs::write(dir.path().join("access/account.yaml"), "# mine\n").unwrap();
    let refused = rolecall_in(dir.path(), &["init", "access"]);
    assert_eq!(refused.status.code(), Some(1));
    let err = stderr(&refused);
    assert!(
        err.contains("already exists") && err.contains("account.yaml"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("access/account.yaml")).unwrap(),
        "# mine\n"
    );
}

#[test]
fn quiet_prints_nothing_but_errors_and_verbose_logs_requests() {
    let server = Server::start();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = server.rolecall_in(
        root,
        &["plan", "-q", "-f", "examples/", "--detailed-exitcode"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        stdout(&out)
    );
    let out = server.rolecall_in(root, &["validate", "--quiet", "-f", "examples/"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());

    let out = server.rolecall_in(root, &["plan", "-v", "-f", "examples/"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains("portal request") && log.contains("/v1/whoami"),
        "{log}"
    );
    assert!(!log.contains(common::OPERATOR_TOKEN));
    assert!(!log.contains('\x1b'), "NO_COLOR is set: {log}");

    let both = server.rolecall_in(root, &["plan", "-q", "-v"]);
    assert_eq!(both.status.code(), Some(2));
}

#[test]
fn the_plan_schema_accepts_a_saved_plan() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let plan_file = dir.path().join("plan.json");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = server.rolecall_in(
        root,
        &[
            "plan",
            "-f",
            "examples/",
            "--out",
            plan_file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let schema_out = rolecall_in(dir.path(), &["schema", "--plan"]);
    let schema: serde_json::Value = serde_json::from_slice(&schema_out.stdout).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&plan)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let mut wrong = plan.clone();
    wrong["accounts"][0]["changes"][0]["action"] = "grant-everything".into();
    assert!(!validator.is_valid(&wrong));
}
