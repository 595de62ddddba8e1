//! The CI examples under `docs/ci/` cannot rot: both files are parsed, their structure is
//! checked (sticky comment, saved-plan artifact, apply on the main branch), and the shell steps
//! that call rolecall run as the forge would run them — with `bash -eo pipefail`, the built
//! binary on PATH and the reference portal behind ROLECALL_PORTAL.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{NOW, OPERATOR_TOKEN, Server, bin, copy_dir, stderr, stdout};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn github() -> Value {
    load("docs/ci/.github/workflows/rolecall.yml")
}

fn gitlab() -> Value {
    load("docs/ci/.gitlab-ci.yml")
}

/// A repository as the examples expect it: the shipped manifests under `access/`.
struct Repo {
    dir: tempfile::TempDir,
    bin_dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let access = dir.path().join("access");
        std::fs::create_dir_all(&access).unwrap();
        std::fs::copy(
            root().join("examples/portal.yaml"),
            access.join("portal.yaml"),
        )
        .unwrap();
        copy_dir(&root().join("examples/accounts"), &access.join("accounts"));
        copy_dir(
            &root().join("examples/delegated"),
            &access.join("delegated"),
        );
        // `rolecall` on PATH is the binary under test, as `cargo install` would put it.
        let bin_dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(bin(), bin_dir.path().join("rolecall")).unwrap();
        Repo { dir, bin_dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Runs one CI script as GitHub (`bash -eo pipefail`) and GitLab (errexit) run it.
    fn run_script(&self, server: &Server, script: &str, env: &[(&str, &Path)]) -> Output {
        let path = format!(
            "{}:{}",
            self.bin_dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env("ROLECALL_PORTAL", &server.url)
            .env("ROLECALL_TOKEN", OPERATOR_TOKEN)
            .env("ROLECALL_NOW", NOW)
            .env("NO_COLOR", "1")
            .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// The `run:` scripts of a GitHub job's steps that call rolecall (installing it is the forge's
/// business, not the test's).
fn github_scripts(job: &str) -> Vec<String> {
    let wf = github();
    let steps = wf["jobs"][job]["steps"].as_array().unwrap().clone();
    let scripts: Vec<String> = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .filter(|r| r.lines().any(|l| l.trim_start().starts_with("rolecall ")))
        .map(str::to_string)
        .collect();
    assert!(!scripts.is_empty(), "job {job} runs no rolecall command");
    scripts
}

/// A GitLab job's `script:` lines, joined as the runner joins them.
fn gitlab_script(job: &str) -> String {
    let ci = gitlab();
    let lines: Vec<String> = ci[job]["script"]
        .as_array()
        .unwrap_or_else(|| panic!("job {job} has no script"))
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    lines.join("\n")
}

fn contains_command(script: &str, command: &str) -> bool {
    script.lines().any(|l| l.trim_start().starts_with(command))
}

#[test]
fn the_github_workflow_comments_once_uploads_the_plan_and_applies_on_main() {
    let wf = github();
    let on = &wf["on"];
    assert!(on.get("pull_request").is_some(), "{on}");
    assert_eq!(on["push"]["branches"], serde_json::json!(["main"]));
    let plan = &wf["jobs"]["plan"];
    assert_eq!(plan["if"], "github.event_name == 'pull_request'");
    let steps = plan["steps"].as_array().unwrap();
    let script = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/github-script@"))
        })
        .expect("a github-script step posts the comment");
    let js = script["with"]["script"].as_str().unwrap();
    for needle in [
        "<!-- rolecall-plan -->",
        "updateComment",
        "createComment",
        "plan.md",
    ] {
        assert!(js.contains(needle), "the comment script lacks {needle}");
    }
    let upload = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
        })
        .expect("the saved plan is uploaded");
    assert_eq!(upload["with"]["path"], "plan.json");
    assert_eq!(plan["permissions"]["pull-requests"], "write");

    let all_plan = github_scripts("plan").join("\n");
    assert!(contains_command(
        &all_plan,
        "rolecall validate -f access/ --output github"
    ));
    assert!(all_plan.contains(
        "rolecall plan -f access/ --output markdown --out plan.json --detailed-exitcode"
    ));
    let apply = &wf["jobs"]["apply"];
    assert_eq!(apply["if"], "github.event_name == 'push'");
    let downloads = apply["steps"].as_array().unwrap().iter().any(|s| {
        s["run"]
            .as_str()
            .is_some_and(|r| r.contains("gh run download") && r.contains("rolecall-plan"))
    });
    assert!(downloads, "the apply job downloads the reviewed plan");
    assert!(contains_command(
        &github_scripts("apply").join("\n"),
        "rolecall apply plan.json"
    ));
}

#[test]
fn the_github_workflow_scripts_plan_apply_and_refuse_a_stale_plan() {
    let server = Server::start();
    let repo = Repo::new();
    let output = repo.path("github_output");
    let summary = repo.path("step_summary");
    let env = [
        ("GITHUB_OUTPUT", output.as_path()),
        ("GITHUB_STEP_SUMMARY", summary.as_path()),
    ];
    let run_job = |job: &str| -> Vec<Output> {
        github_scripts(job)
            .iter()
            .map(|s| repo.run_script(&server, s, &env))
            .collect()
    };

    // The pull request: changes pending (exit code 2) must not fail the job.
    for out in run_job("plan") {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            stdout(&out),
            stderr(&out)
        );
    }
    assert!(
        std::fs::read_to_string(&output)
            .unwrap()
            .contains("changes=true")
    );
    let md = std::fs::read_to_string(repo.path("plan.md")).unwrap();
    assert!(md.contains("| ") && md.contains("<details>"), "{md}");
    assert!(
        std::fs::read_to_string(&summary)
            .unwrap()
            .contains("<details>")
    );
    let saved = std::fs::read_to_string(repo.path("plan.json")).unwrap();
    assert!(saved.contains("\"formatVersion\": 1"));

    // The merge: the reviewed plan is applied exactly, and nothing is left to do.
    for out in run_job("apply") {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(!stdout(&out).contains(OPERATOR_TOKEN) && !stderr(&out).contains(OPERATOR_TOKEN));
    }
    std::fs::write(&output, "").unwrap();
    for out in run_job("plan") {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    assert!(
        std::fs::read_to_string(&output)
            .unwrap()
            .contains("changes=false")
    );

    // A pull request renames Alice; before it merges, someone changes Alice on the portal.
    let acme = repo.path("access/accounts/acme.yaml");
    let text = std::fs::read_to_string(&acme).unwrap();
    std::fs::write(
        &acme,
        text.replace("name: Alice Meier", "name: Alice Keller"),
    )
    .unwrap();
    for out in run_job("plan") {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let (status, body) = server.client().call(
        "PUT",
        "/v1/accounts/10042/members/alice%40acme.example",
        Some(serde_json::json!({"name": "Alice", "roles": [{"name": "cockpit-access"}, {"name": "customer-admin"}]})),
    );
    assert!(status < 300, "{status} {body}");
    let refused = run_job("apply");
    let out = refused.last().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a stale plan was applied: {}",
        stdout(out)
    );
    assert!(stderr(out).contains("stale"), "{}", stderr(out));

    // Invalid manifests fail the validate step, with an annotation on the right file.
    std::fs::write(
        repo.path("access/broken.yaml"),
        "apiVersion: rolecall.dev/v1alpha1\nkind: Portl\nmetadata: {name: x}\nspec: {}\n",
    )
    .unwrap();
    let validate = &github_scripts("plan")[0];
    let out = repo.run_script(&server, validate, &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("::error file=access/broken.yaml,line=2,"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_gitlab_pipeline_notes_once_keeps_the_plan_and_applies_on_the_default_branch() {
    let ci = gitlab();
    let plan = &ci["plan"];
    assert_eq!(
        plan["rules"][0]["if"],
        "$CI_PIPELINE_SOURCE == \"merge_request_event\""
    );
    let artifacts: Vec<&str> = plan["artifacts"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(artifacts.contains(&"plan.json") && artifacts.contains(&"plan.md"));
    let comment = gitlab_script("comment");
    for needle in [
        "<!-- rolecall-plan -->",
        "--request PUT",
        "--request POST",
        "plan.md",
        "notes",
    ] {
        assert!(comment.contains(needle), "the note script lacks {needle}");
    }
    assert_eq!(
        ci["apply"]["rules"][0]["if"],
        "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE != \"schedule\""
    );
    assert_eq!(ci["apply"]["needs"], serde_json::json!(["fetch-plan"]));
    assert!(gitlab_script("fetch-plan").contains("artifacts/plan.json"));
    assert!(contains_command(
        &gitlab_script("apply"),
        "rolecall apply plan.json"
    ));
}

#[test]
fn the_gitlab_scripts_plan_apply_and_refuse_a_stale_plan() {
    let server = Server::start();
    let repo = Repo::new();
    let plan = gitlab_script("plan");
    let apply = gitlab_script("apply");
    assert!(plan.contains(
        "rolecall plan -f access/ --output markdown --out plan.json --detailed-exitcode"
    ));

    let out = repo.run_script(&server, &plan, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        std::fs::read_to_string(repo.path("plan.md"))
            .unwrap()
            .contains("<details>")
    );
    assert!(repo.path("plan.json").exists());
    let out = repo.run_script(&server, &apply, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    // The same plan again is stale: everything it was planned against has changed.
    let out = repo.run_script(&server, &apply, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("stale"), "{}", stderr(&out));

    // A pipeline whose plan fails (here: the portal refuses the token) fails the job.
    let out = Command::new("bash")
        .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", &plan])
        .current_dir(repo.dir.path())
        .env(
            "PATH",
            format!(
                "{}:{}",
                repo.bin_dir.path().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("ROLECALL_PORTAL", &server.url)
        .env("ROLECALL_TOKEN", "not-the-token")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "a failed plan passed the job");
}

/// Steps the test cannot run (they talk to the forge's API) still parse as shell scripts:
/// `bash` for GitHub's default shell, POSIX `sh` for GitLab's alpine and rust images.
#[test]
fn every_script_in_both_files_is_valid_shell() {
    let syntax_ok = |shell: &str, script: &str| {
        let out = Command::new(shell)
            .args(["-n", "-c", script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{shell} -n: {}\n{script}",
            stderr(&out)
        );
    };
    let wf = github();
    let mut n = 0;
    for job in wf["jobs"].as_object().unwrap().values() {
        for step in job["steps"].as_array().unwrap() {
            if let Some(run) = step["run"].as_str() {
                syntax_ok("bash", run);
                n += 1;
            }
        }
    }
    let ci = gitlab();
    for (name, job) in ci.as_object().unwrap() {
        for key in ["before_script", "script"] {
            if let Some(lines) = job.get(key).and_then(Value::as_array) {
                let script: Vec<&str> = lines.iter().filter_map(Value::as_str).collect();
                assert_eq!(script.len(), lines.len(), "{name}.{key} holds a non-string");
                syntax_ok("sh", &script.join("\n"));
                n += 1;
            }
        }
    }
    assert!(n >= 10, "only {n} scripts found");
}
