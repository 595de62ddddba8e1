//! Every example in `docs/` is exercised: each ```yaml block validates (or, marked
//! `yaml invalid`, fails validation), each ```json block of the plan format validates against
//! the plan schema, local links resolve, and the tutorial's commands run in order, in an empty
//! directory, on the embedded sandbox — as a new user would run them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{bin, stderr, stdout};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fenced code block: its info string words, its text and the line it starts on.
struct Block {
    file: String,
    line: usize,
    info: Vec<String>,
    text: String,
}

impl Block {
    fn lang(&self) -> &str {
        self.info.first().map(String::as_str).unwrap_or("")
    }
    fn has(&self, word: &str) -> bool {
        self.info.iter().skip(1).any(|w| w == word)
    }
    fn file_attr(&self) -> Option<&str> {
        self.info.iter().find_map(|w| w.strip_prefix("file="))
    }
    fn place(&self) -> String {
        format!("docs/{}:{}", self.file, self.line)
    }
}

fn blocks(file: &str) -> Vec<Block> {
    let text = std::fs::read_to_string(root().join("docs").join(file)).unwrap();
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => {
                current = Some(Block {
                    file: file.to_string(),
                    line: i + 1,
                    info: info.split_whitespace().map(str::to_string).collect(),
                    text: String::new(),
                });
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => out.extend(current.take()),
            (Some(b), _) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(current.is_none(), "docs/{file}: an unclosed code block");
    out
}

/// Every page under `docs/` (`ci/README.md` included), as a path relative to `docs/`.
fn doc_files() -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if path.is_dir() {
                walk(&path, &format!("{prefix}{name}/"), out);
            } else if name.ends_with(".md") {
                out.push(format!("{prefix}{name}"));
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("docs"), "", &mut files);
    files.sort();
    files
}

fn rolecall(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("ROLECALL_PORTAL")
        .env_remove("ROLECALL_TOKEN")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn every_docs_page_the_index_promises_exists() {
    for page in [
        "index.md",
        "concepts.md",
        "tutorial.md",
        "safety.md",
        "plan-format.md",
        "portal-api.md",
        "comparison.md",
    ] {
        assert!(
            root().join("docs").join(page).exists(),
            "docs/{page} is missing"
        );
    }
}

#[test]
fn every_yaml_example_in_the_docs_validates_unless_marked_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let mut valid = 0;
    let mut invalid = 0;
    for file in doc_files() {
        // Blocks saved with `file=` belong to the tutorial's directory and are checked there,
        // next to the CustomerAccount they refer to.
        let examples = blocks(&file)
            .into_iter()
            .filter(|b| b.lang() == "yaml" && b.file_attr().is_none());
        for b in examples {
            let path = dir.path().join("example.yaml");
            std::fs::write(&path, &b.text).unwrap();
            let out = rolecall(
                dir.path(),
                &["validate", "-f", "example.yaml", "--output", "json"],
            );
            let problems: Vec<serde_json::Value> =
                serde_json::from_slice(&out.stdout).unwrap_or_default();
            if b.has("invalid") {
                assert_eq!(
                    out.status.code(),
                    Some(1),
                    "{} is marked invalid but validates",
                    b.place()
                );
                // Each problem points inside the example, at a line the reader can see.
                let lines = b.text.lines().count() as u64;
                for p in problems.iter().filter(|p| p["severity"] == "error") {
                    let line = p["line"].as_u64().unwrap();
                    assert!((1..=lines).contains(&line), "{}: {p}", b.place());
                }
                invalid += 1;
            } else {
                assert_eq!(
                    out.status.code(),
                    Some(0),
                    "{}: {problems:#?}\n{}",
                    b.place(),
                    stderr(&out)
                );
                assert!(problems.is_empty(), "{}: warnings {problems:#?}", b.place());
                valid += 1;
            }
        }
    }
    assert!(
        valid >= 5 && invalid >= 2,
        "{valid} valid, {invalid} invalid examples"
    );
}

#[test]
fn the_plan_format_examples_match_the_plan_schema() {
    let schema = rolecall::plan::plan_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let examples: Vec<Block> = blocks("plan-format.md")
        .into_iter()
        .filter(|b| b.lang() == "json")
        .collect();
    assert!(!examples.is_empty());
    for b in examples {
        let value: serde_json::Value =
            serde_json::from_str(&b.text).unwrap_or_else(|e| panic!("{}: {e}", b.place()));
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", b.place());
        // And rolecall itself reads it as a plan.
        rolecall::plan::PlanDocument::from_json(&b.text)
            .unwrap_or_else(|e| panic!("{}: {e}", b.place()));
    }
}

#[test]
fn local_links_in_the_docs_resolve() {
    for file in doc_files() {
        let text = std::fs::read_to_string(root().join("docs").join(&file)).unwrap();
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") {
                continue;
            }
            let page = root().join("docs").join(&file);
            let path = page.parent().unwrap_or(&page).join(target);
            assert!(
                path.exists(),
                "docs/{file}: the link {target} leads nowhere"
            );
        }
    }
}

/// A tutorial shell line and the exit code the page promises for it: a trailing
/// `# exit code N`, otherwise 0.
fn promised_exit_code(line: &str) -> (&str, i32) {
    match line.split_once("# exit code ") {
        Some((c, code)) => {
            let n: i32 = code
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
            (c.trim(), n)
        }
        None => (line, 0),
    }
}

/// Runs the tutorial's blocks in `dir` with `path` as PATH; returns each command run and its
/// output.
fn run_tutorial(dir: &Path, path: &str) -> Vec<(String, std::process::Output)> {
    let mut ran = Vec::new();
    for b in blocks("tutorial.md") {
        if b.has("no-run") {
            continue;
        }
        match b.lang() {
            "yaml" => {
                if let Some(file) = b.file_attr() {
                    std::fs::write(dir.join(file), &b.text).unwrap();
                }
            }
            "sh" => {
                for line in b.text.lines().map(str::trim) {
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let (command, want) = promised_exit_code(line);
                    let out = Command::new("bash")
                        .args(["--noprofile", "--norc", "-c", command])
                        .current_dir(dir)
                        .env("PATH", path)
                        .env_remove("ROLECALL_PORTAL")
                        .env_remove("ROLECALL_TOKEN")
                        .env_remove("ROLECALL_NOW")
                        .env_remove("RUST_LOG")
                        .env("NO_COLOR", "1")
                        .stdin(Stdio::null())
                        .output()
                        .unwrap();
                    assert_eq!(
                        out.status.code(),
                        Some(want),
                        "{}: `{command}`\n{}\n{}",
                        b.place(),
                        stdout(&out),
                        stderr(&out)
                    );
                    ran.push((command.to_string(), out));
                }
            }
            _ => {}
        }
    }
    ran
}

/// The tutorial, followed literally: ```sh blocks run line by line (a trailing
/// `# exit code N` is the code the page promises; otherwise 0), ```yaml blocks with
/// `file=PATH` are saved where the page says, `no-run` blocks are only shown.
#[test]
fn the_tutorial_works_as_written_in_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(bin(), bin_dir.path().join("rolecall")).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let ran = run_tutorial(dir.path(), &path);
    // What the prose around the commands promises.
    let find = |prefix: &str| {
        ran.iter()
            .filter(|(c, _)| c.starts_with(prefix))
            .map(|(_, o)| format!("{}{}", stdout(o), stderr(o)))
            .collect::<Vec<_>>()
    };
    assert!(find("rolecall --version")[0].starts_with("rolecall "));
    let first_plan = &find("rolecall plan -f access")[0];
    assert!(
        first_plan.contains("admin@example.com") && first_plan.contains("invit"),
        "{first_plan}"
    );
    let dana = &find("rolecall plan -f access --detailed-exitcode")[1];
    assert!(
        dana.contains("dana@example.com") && dana.contains("2030-06-30"),
        "{dana}"
    );
    let oops = &find("rolecall validate -f access")[1];
    for promised in [
        "access/oops.yaml:6:",
        "has no dot",
        "did you mean \"roles\"?",
        "missing",
    ] {
        assert!(
            oops.contains(promised),
            "the tutorial promises {promised}: {oops}"
        );
    }
    let github = &find("rolecall validate -f access --output github")[0];
    assert!(
        github.contains("::error file=access/oops.yaml,line="),
        "{github}"
    );
    let stale = &find("rolecall apply plan.json")[1];
    assert!(stale.contains("stale"), "{stale}");
    let md = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    assert!(md.contains("<details>"), "{md}");
    // The sandbox lives where the tutorial says, and is not in the manifests' directory.
    assert!(dir.path().join(".rolecall/sandbox.db").exists());
}

/// The refusal that docs/safety.md shows is what `plan` prints: an account of 12 members whose
/// manifest drops 9 of them.
#[test]
fn the_safety_page_shows_the_refusal_plan_prints() {
    let shown: Vec<Block> = blocks("safety.md")
        .into_iter()
        .filter(|b| b.lang() == "text")
        .collect();
    assert_eq!(shown.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("accounts")).unwrap();
    let account = |members: usize| {
        let mut text = String::from(
            "apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {name: acme}\n\
             spec:\n  customerNumber: \"10042\"\n  members:\n",
        );
        for i in 0..members {
            text.push_str(&format!(
                "    - email: m{i}@acme.example\n      roles: [technical-contact]\n"
            ));
        }
        std::fs::write(dir.path().join("accounts/acme.yaml"), text).unwrap();
    };
    account(12);
    let seed = rolecall(dir.path(), &["apply", "-f", "accounts", "--auto-approve"]);
    assert_eq!(seed.status.code(), Some(0), "{}", stderr(&seed));
    account(3);
    let plan = rolecall(dir.path(), &["plan", "-f", "accounts"]);
    assert_eq!(plan.status.code(), Some(1), "{}", stdout(&plan));
    for line in shown[0].text.lines() {
        assert!(
            stdout(&plan).contains(line.trim()),
            "docs/safety.md shows {line:?}, plan prints:\n{}",
            stdout(&plan)
        );
    }
}

/// No code block escapes the checks above: each kind is checked somewhere, and shell lines
/// outside the tutorial must say they are only shown (`no-run`).
#[test]
fn every_code_block_is_of_a_kind_a_test_checks() {
    for file in doc_files() {
        for b in blocks(&file) {
            let checked = match (b.lang(), file.as_str()) {
                ("yaml", _) => true,
                ("json", "plan-format.md") => true,
                ("text", "safety.md") => true,
                ("sh", "tutorial.md") => true,
                ("sh", _) => b.has("no-run"),
                _ => false,
            };
            assert!(
                checked,
                "{}: a ```{} block no test checks; mark shell lines `no-run` or add a check",
                b.place(),
                b.info.join(" ")
            );
        }
    }
}
