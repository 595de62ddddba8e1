//! `rolecall review`, `review verify` and `explain` (SPEC §3a), end to end: the built binary
//! against the reference portal over HTTP and `sandbox:`, with manifests in and out of git.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{NOW, OPERATOR_TOKEN, Server, bin, stderr, stdout};
use serde_json::{Value, json};

const ACME: &str = r#"apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: acme}
spec:
  customerNumber: "10042"
  displayName: Acme AG
  members:
    - email: alice@acme.example
      roles: [cockpit-access, customer-admin]
    - email: bob@acme.example
      roles:
        - {name: technical-contact, until: 2026-12-05}
    - email: dave@acme.example
      roles: [customer-admin]
    - email: erin@acme.example
      roles: [technical-contact]
    - email: frank@acme.example
      roles: [cockpit-access]
  contacts:
    - email: billing@acme.example
      name: Billing
      notifications: [invoices]
  policy:
    ignore: ["*@provider.example"]
"#;

const INITECH: &str = r#"apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: initech}
spec:
  customerNumber: "20001"
  displayName: Initech
  members:
    - email: peter@initech.example
      roles: [technical-contact]
"#;

/// Runs rolecall in `cwd` against `portal` at the instant `now`, git configured by nothing of
/// the machine's.
fn run_at(portal: &str, cwd: &Path, now: &str, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env("ROLECALL_PORTAL", portal)
        .env("ROLECALL_TOKEN", OPERATOR_TOKEN)
        .env("ROLECALL_NOW", now)
        .env("NO_COLOR", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CEILING_DIRECTORIES", cwd.parent().unwrap_or(cwd))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn run(portal: &str, cwd: &Path, args: &[&str]) -> Output {
    run_at(portal, cwd, NOW, args)
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}\n{}", stdout(o), stderr(o));
    stdout(o)
}

fn git(cwd: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Ann Author")
        .env("GIT_AUTHOR_EMAIL", "ann@example.test")
        .env("GIT_AUTHOR_DATE", "2026-01-02T03:04:05Z")
        .env("GIT_COMMITTER_NAME", "Ann Author")
        .env("GIT_COMMITTER_EMAIL", "ann@example.test")
        .env("GIT_COMMITTER_DATE", "2026-01-02T03:04:05Z")
        .output()
        .unwrap();
    assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
    stdout(&o).trim().to_string()
}

/// The review document as JSON.
fn review_json(portal: &str, cwd: &Path, now: &str) -> Value {
    let out = ok(&run_at(
        portal,
        cwd,
        now,
        &["review", "-f", "acme.yaml", "--output", "json"],
    ));
    serde_json::from_str(&out).unwrap()
}

fn row<'a>(doc: &'a Value, cn: &str, email: &str, role: &str) -> &'a Value {
    doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["customerNumber"] == cn && r["email"] == email && r["role"] == role)
        .unwrap_or_else(|| panic!("no row {cn} {email} {role} in {doc:#}"))
}

fn findings(doc: &Value, cn: &str, email: &str, role: &str) -> Vec<String> {
    row(doc, cn, email, role)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

/// A portal holding every situation a finding names, and the manifests of Acme in `dir`.
fn situation() -> (Server, tempfile::TempDir) {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("acme.yaml"), ACME).unwrap();
    std::fs::write(dir.path().join("initech.yaml"), INITECH).unwrap();
    ok(&run(
        &server.url,
        dir.path(),
        &["apply", "-f", ".", "--auto-approve"],
    ));
    let api = server.client();
    // Alice accepts: Acme's one effective admin.
    let (s, b) = api.post("/sandbox/users", json!({"email": "alice@acme.example"}));
    assert!(s < 300, "{s} {b}");
    for (email, body) in [
        (
            "zed@acme.example",
            json!({"roles": [{"name": "technical-contact"}]}),
        ),
        (
            "ops@provider.example",
            json!({"roles": [{"name": "technical-contact"}]}),
        ),
        (
            "erin@acme.example",
            json!({"roles": [{"name": "technical-contact", "until": "2026-12-20"}]}),
        ),
    ] {
        let (s, b) = api.call(
            "PUT",
            &format!("/v1/accounts/10042/members/{email}"),
            Some(body),
        );
        assert!(s < 300, "{s} {b}");
    }
    (server, dir)
}

#[test]
fn each_finding_comes_from_a_real_situation_on_the_portal() {
    let (server, dir) = situation();
    let doc = review_json(&server.url, dir.path(), NOW);
    let f = |cn: &str, email: &str, role: &str| findings(&doc, cn, email, role);
    assert_eq!(
        f("10042", "alice@acme.example", "customer-admin"),
        ["single-admin"]
    );
    assert_eq!(
        f("10042", "bob@acme.example", "technical-contact"),
        ["expiring"]
    );
    assert_eq!(
        f("10042", "dave@acme.example", "customer-admin"),
        ["admin-without-login"]
    );
    assert_eq!(
        f("10042", "erin@acme.example", "technical-contact"),
        ["drift"]
    );
    assert_eq!(
        f("10042", "zed@acme.example", "technical-contact"),
        ["undeclared"]
    );
    assert_eq!(
        f("10042", "ops@provider.example", "technical-contact"),
        ["ignored"]
    );
    assert_eq!(
        f("10042", "billing@acme.example", "invoices"),
        Vec::<String>::new()
    );
    // Initech is on the portal but not in these manifests: every row of it is undeclared,
    // and it has no admin.
    assert_eq!(
        f("20001", "peter@initech.example", "technical-contact"),
        ["undeclared", "no-admin"]
    );
    let frank = row(&doc, "10042", "frank@acme.example", "cockpit-access");
    assert_eq!(frank["invitation"], "pending");
    assert_eq!(frank["userLinked"], false);
    assert_eq!(
        row(&doc, "10042", "alice@acme.example", "cockpit-access")["userLinked"],
        true
    );
    assert_eq!(frank["declaredAt"], "acme.yaml:18");
    assert_eq!(doc["portal"], server.url);

    // Forty days on: Bob's role has ended but the portal (its clock stood still) still shows
    // it, and Frank's invitation is pending past its expiry.
    let later = review_json(&server.url, dir.path(), "2027-01-05T09:00:00Z");
    assert_eq!(
        findings(&later, "10042", "bob@acme.example", "technical-contact"),
        ["expired"]
    );
    assert!(
        findings(&later, "10042", "frank@acme.example", "cockpit-access")
            .contains(&"stale-invitation".to_string()),
        "{later:#}"
    );
}

#[test]
fn review_and_explain_only_read_the_portal() {
    let (server, dir) = situation();
    server.sync_log();
    let before = server.log_lines().len();
    for args in [
        &["review", "-f", "acme.yaml", "--output", "csv"][..],
        &["review", "-f", "acme.yaml", "--output", "html"][..],
        &["explain", "alice@acme.example", "-f", "acme.yaml"][..],
    ] {
        ok(&run(&server.url, dir.path(), args));
    }
    server.sync_log();
    let lines = server.log_lines();
    let requests: Vec<&String> = lines[before..]
        .iter()
        .filter(|l| l.contains(" /v1/") || l.contains(" /sandbox/"))
        .collect();
    assert!(!requests.is_empty(), "no request logged");
    let writes: Vec<&&String> = requests.iter().filter(|l| !l.starts_with("GET ")).collect();
    assert!(writes.is_empty(), "review or explain wrote: {writes:#?}");
}

#[test]
fn the_population_hash_is_stable_and_changes_with_the_portal() {
    let (server, dir) = situation();
    let a = review_json(&server.url, dir.path(), NOW);
    let b = review_json(&server.url, dir.path(), NOW);
    assert_eq!(a["population"], b["population"]);
    assert_eq!(a["population"].as_str().unwrap().len(), 64);
    let (s, _) = server.client().call(
        "DELETE",
        "/v1/accounts/10042/members/zed@acme.example",
        None,
    );
    assert!(s < 300);
    let c = review_json(&server.url, dir.path(), NOW);
    assert_ne!(a["population"], c["population"]);
}

#[test]
fn the_json_document_validates_against_the_checked_in_schema() {
    let (server, dir) = situation();
    let doc = review_json(&server.url, dir.path(), NOW);
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string("schema/review.schema.json").unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn review_schema_file_matches_the_types() {
    let text = serde_json::to_string_pretty(&rolecall::review::review_schema()).unwrap() + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/review.schema.json");
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == text,
        "schema/review.schema.json is stale: run UPDATE_GENERATED=1 cargo test --test review"
    );
}

/// The provenance columns of a row of the CSV.
fn provenance(csv: &str, email: &str, role: &str) -> (String, String, String) {
    let records = rolecall::review::csv::parse(csv).unwrap();
    let header = &records[0].fields;
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let r = records
        .iter()
        .find(|r| r.fields[col("email")] == email && r.fields[col("role")] == role)
        .unwrap();
    (
        r.fields[col("grantedBy")].clone(),
        r.fields[col("grantedCommit")].clone(),
        r.fields[col("grantedAt")].clone(),
    )
}

#[test]
fn provenance_comes_from_git_blame_and_is_empty_outside_git_or_uncommitted() {
    let (server, dir) = situation();
    let csv_args = ["review", "-f", "acme.yaml", "--output", "csv"];
    // Not in a repository: empty.
    let csv = ok(&run(&server.url, dir.path(), &csv_args));
    assert_eq!(
        provenance(&csv, "bob@acme.example", "technical-contact"),
        (String::new(), String::new(), String::new())
    );
    git(dir.path(), &["init", "-q", "."]);
    git(dir.path(), &["add", "acme.yaml"]);
    git(dir.path(), &["commit", "-q", "-m", "Declare Acme"]);
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    // An uncommitted change of Erin's line: her row has no provenance.
    let text = ACME.replace(
        "      roles: [technical-contact]\n    - email: frank",
        "      roles: [technical-contact] # reviewed\n    - email: frank",
    );
    std::fs::write(dir.path().join("acme.yaml"), text).unwrap();
    let csv = ok(&run(&server.url, dir.path(), &csv_args));
    assert_eq!(
        provenance(&csv, "bob@acme.example", "technical-contact"),
        (
            "Ann Author <ann@example.test>".to_string(),
            head.clone(),
            "2026-01-02T03:04:05Z".to_string()
        )
    );
    assert_eq!(
        provenance(&csv, "erin@acme.example", "technical-contact"),
        (String::new(), String::new(), String::new())
    );
    // Undeclared: nothing to blame.
    assert_eq!(
        provenance(&csv, "zed@acme.example", "technical-contact").0,
        ""
    );
    let doc = review_json(&server.url, dir.path(), NOW);
    assert_eq!(doc["manifestsCommit"], head.as_str());
}

#[test]
fn csv_cells_that_a_spreadsheet_would_run_are_defused() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = INITECH.replace("Initech", "=HYPERLINK(\"http://x\",\"a,b\")");
    std::fs::write(dir.path().join("acme.yaml"), manifest).unwrap();
    ok(&run(
        &server.url,
        dir.path(),
        &["apply", "-f", "acme.yaml", "--auto-approve"],
    ));
    let csv = ok(&run(
        &server.url,
        dir.path(),
        &["review", "-f", "acme.yaml", "--output", "csv"],
    ));
    assert!(
        csv.contains(",\"'=HYPERLINK(\"\"http://x\"\",\"\"a,b\"\")\","),
        "{csv}"
    );
    assert!(csv.starts_with("customerNumber,account,email,kind,role,from,until,userLinked,invitation,invitationSentAt,declaredAt,grantedBy,grantedCommit,grantedAt,findings,decision,reviewer\r\n"));
}

/// The review's CSV with decision and reviewer set on each row by `decide(email, role)`.
fn decided(csv: &str, decide: impl Fn(&str, &str) -> (&'static str, &'static str)) -> String {
    let records = rolecall::review::csv::parse(csv).unwrap();
    let header = &records[0].fields;
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut out = String::new();
    for (i, r) in records.iter().enumerate() {
        let mut fields = r.fields.clone();
        if i > 0 {
            let (d, who) = decide(&fields[col("email")], &fields[col("role")]);
            fields[col("decision")] = d.to_string();
            fields[col("reviewer")] = who.to_string();
        }
        let cells: Vec<String> = fields
            .iter()
            .map(|f| rolecall::review::csv::cell(rolecall::review::csv::uncell(f)))
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

#[test]
fn verify_passes_only_when_every_row_is_decided_by_another_and_revokes_are_done() {
    let (server, dir) = situation();
    git(dir.path(), &["init", "-q", "."]);
    git(dir.path(), &["add", "acme.yaml"]);
    git(dir.path(), &["commit", "-q", "-m", "Declare Acme"]);
    let verify = |file: &str| {
        run(
            &server.url,
            dir.path(),
            &["review", "verify", file, "-f", "acme.yaml"],
        )
    };
    let csv = ok(&run(
        &server.url,
        dir.path(),
        &["review", "-f", "acme.yaml", "--output", "csv"],
    ));
    let rita = "Rita Reviewer <rita@example.test>";
    // Undecided: each row falls short.
    std::fs::write(dir.path().join("undecided.csv"), &csv).unwrap();
    let o = verify("undecided.csv");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("undecided.csv:2: 10042 alice@acme.example member cockpit-access: no decision: write keep or revoke"), "{}", stderr(&o));
    assert!(stderr(&o).contains("no reviewer"), "{}", stderr(&o));

    // The granter decides on her own grant; a revoke not carried out anywhere.
    let mixed = decided(&csv, |email, _| match email {
        "alice@acme.example" => ("keep", "ANN@example.test"),
        "zed@acme.example" | "bob@acme.example" => ("revoke", rita),
        _ => ("keep", rita),
    });
    std::fs::write(dir.path().join("mixed.csv"), &mixed).unwrap();
    let o = verify("mixed.csv");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("alice@acme.example member customer-admin: the reviewer ANN@example.test granted it (Ann Author <ann@example.test>)"), "{err}");
    assert!(
        err.contains(
            "zed@acme.example member technical-contact: revoked, but the portal still holds it"
        ),
        "{err}"
    );
    assert!(err.contains("bob@acme.example member technical-contact: revoked, but the manifests still declare it at acme.yaml:12"), "{err}");
    assert!(
        err.contains(
            "bob@acme.example member technical-contact: revoked, but the portal still holds it"
        ),
        "{err}"
    );
    assert!(!err.contains("erin"), "{err}");

    // Carried out: Bob gone from the manifests, Bob and Zed from the portal.
    let done = decided(&csv, |email, _| match email {
        "zed@acme.example" | "bob@acme.example" => ("revoke", rita),
        _ => ("keep", rita),
    });
    std::fs::write(dir.path().join("done.csv"), &done).unwrap();
    let text = ACME.replace(
        "    - email: bob@acme.example\n      roles:\n        - {name: technical-contact, until: 2026-12-05}\n",
        "",
    );
    std::fs::write(dir.path().join("acme.yaml"), text).unwrap();
    for email in ["zed@acme.example", "bob@acme.example"] {
        let (s, _) = server.client().call(
            "DELETE",
            &format!("/v1/accounts/10042/members/{email}"),
            None,
        );
        assert!(s < 300);
    }
    let o = verify("done.csv");
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_malformed_decisions_file_is_a_located_usage_error() {
    let (server, dir) = situation();
    std::fs::write(
        dir.path().join("bad.csv"),
        "customerNumber,account\r\n\"10042,Acme\r\n",
    )
    .unwrap();
    let o = run(
        &server.url,
        dir.path(),
        &["review", "verify", "bad.csv", "-f", "acme.yaml"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o).trim(),
        "bad.csv:2:1: a quoted field is never closed"
    );
    std::fs::write(dir.path().join("short.csv"), "customerNumber,account\r\n").unwrap();
    let o = run(
        &server.url,
        dir.path(),
        &["review", "verify", "short.csv", "-f", "acme.yaml"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("short.csv:1:1: the header has no column \"email\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn explain_lists_every_account_and_who_declared_it_on_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let portal = format!("sandbox:{}", dir.path().join("sandbox.db").display());
    std::fs::write(dir.path().join("acme.yaml"), ACME).unwrap();
    let initech = format!(
        "{INITECH}  contacts:\n    - email: BOB@acme.example\n      name: Bob\n      notifications: [maintenance]\n"
    );
    std::fs::write(dir.path().join("initech.yaml"), initech).unwrap();
    ok(&run(
        &portal,
        dir.path(),
        &["apply", "-f", ".", "--auto-approve"],
    ));
    git(dir.path(), &["init", "-q", "."]);
    git(dir.path(), &["add", "acme.yaml", "initech.yaml"]);
    git(
        dir.path(),
        &["commit", "-q", "-m", "Declare Acme and Initech"],
    );
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    let out = ok(&run(
        &portal,
        dir.path(),
        &[
            "explain",
            "bob@ACME.example",
            "-f",
            "acme.yaml",
            "-f",
            "initech.yaml",
        ],
    ));
    let short = &head[..12];
    let want = format!(
        "10042 (Acme AG): member bob@acme.example\n  role technical-contact until 2026-12-05, no user linked, invitation none\n    declared at acme.yaml:12 by Ann Author <ann@example.test> in {short} on 2026-01-02T03:04:05Z\n    findings: expiring;no-admin\n20001 (Initech): contact BOB@acme.example\n  notification maintenance\n    declared at initech.yaml:11 by Ann Author <ann@example.test> in {short} on 2026-01-02T03:04:05Z\n"
    );
    assert_eq!(out, want);
    let out = ok(&run(
        &portal,
        dir.path(),
        &["explain", "nobody@acme.example", "-f", "acme.yaml"],
    ));
    assert_eq!(
        out,
        "nobody@acme.example is neither a member nor a contact of any account read\n"
    );
}

/// Chromium, if this machine has it.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[test]
#[ignore = "needs chromium (Debian's package; .ci/run installs it and runs ignored tests)"]
fn the_html_page_sorts_and_filters_in_a_real_browser_with_no_console_error() {
    let browser = chromium().expect("chromium is not installed: apt-get install chromium");
    let (server, dir) = situation();
    let page = dir.path().join("review.html");
    ok(&run(
        &server.url,
        dir.path(),
        &[
            "review",
            "-f",
            "acme.yaml",
            "--output",
            "html",
            "--out",
            page.to_str().unwrap(),
        ],
    ));
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new(browser)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}#selftest", page.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let dom = stdout(&o);
    let log = stderr(&o);
    let console: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("CONSOLE") || l.contains("Content Security Policy") || l.contains("Uncaught")
        })
        .collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    let start = dom
        .find("<pre id=\"selftest\">")
        .expect("no selftest output")
        + 19;
    let end = start + dom[start..].find("</pre>").unwrap();
    let selftest = &dom[start..end];
    let rows = dom.matches("<tr data-findings").count();
    assert_eq!(
        selftest,
        format!(
            "sort-ascending ok\nsort-descending-first zed@acme.example\nfilter undeclared 2 ok\nfilter drift 1 ok\nfilter expiring 1 ok\nfilter admin-without-login 1 ok\nfilter single-admin 2 ok\nfilter no-admin 1 ok\nfilter ignored 1 ok\nfilter-none {rows} of {rows}"
        ),
        "{dom}"
    );
}

/// A YAML file of the repository as JSON.
fn load_yaml(path: &str) -> Value {
    let text =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_scheduled_review_pipelines_run_monthly_post_the_markdown_and_keep_csv_and_html() {
    let github = load_yaml("docs/ci/.github/workflows/rolecall-review.yml");
    assert_eq!(github["on"]["schedule"][0]["cron"], "0 6 1 * *");
    let steps = github["jobs"]["review"]["steps"].as_array().unwrap();
    let text = serde_json::to_string(steps).unwrap();
    for needle in [
        "--output markdown --out review.md",
        "--output csv --out review.csv",
        "--output html --out review.html",
        "issues.create",
        "fetch-depth",
    ] {
        assert!(text.contains(needle), "the GitHub workflow lacks {needle}");
    }
    let gitlab = load_yaml("docs/ci/rolecall-review.gitlab-ci.yml");
    let job = &gitlab["review"];
    assert_eq!(job["rules"][0]["if"], "$CI_PIPELINE_SOURCE == \"schedule\"");
    let script = serde_json::to_string(&job["script"]).unwrap();
    for needle in ["review.md", "review.csv", "review.html", "/issues"] {
        assert!(script.contains(needle), "the GitLab job lacks {needle}");
    }
    assert_eq!(
        job["artifacts"]["paths"],
        json!(["review.md", "review.csv", "review.html"])
    );
    // The main pipeline includes it, and its apply jobs never run in a scheduled pipeline.
    let main = load_yaml("docs/ci/.gitlab-ci.yml");
    assert_eq!(main["include"][0]["local"], "rolecall-review.gitlab-ci.yml");
    for job in ["fetch-plan", "apply"] {
        let rule = main[job]["rules"][0]["if"].as_str().unwrap();
        assert!(rule.contains("!= \"schedule\""), "{job}: {rule}");
    }
}

/// `review` counts "ends soon" as `plan` does: the last day within N calendar days of today, so
/// at 09:00 a role whose last day is 24 days off is expiring under a 24-day notice although its
/// end is less than 24×24 hours away only on the next morning.
#[test]
fn expiring_is_the_same_calendar_rule_as_plans_notices() {
    let (server, dir) = situation();
    for (days, expected) in [("24", &["drift", "expiring"][..]), ("23", &["drift"][..])] {
        let out = ok(&run(
            &server.url,
            dir.path(),
            &[
                "review",
                "-f",
                "acme.yaml",
                "--output",
                "json",
                "--account",
                "10042",
                "--expiring-within",
                days,
            ],
        ));
        let doc: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            findings(&doc, "10042", "erin@acme.example", "technical-contact"),
            expected,
            "--expiring-within {days}"
        );
    }
}

#[test]
fn account_and_expiring_within_narrow_and_widen_the_review() {
    let (server, dir) = situation();
    let out = ok(&run(
        &server.url,
        dir.path(),
        &[
            "review",
            "-f",
            "acme.yaml",
            "--output",
            "json",
            "--account",
            "10042",
            "--expiring-within",
            "30",
        ],
    ));
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert!(
        doc["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["customerNumber"] == "10042")
    );
    assert_eq!(doc["expiringWithinDays"], 30);
    assert_eq!(
        findings(&doc, "10042", "erin@acme.example", "technical-contact"),
        ["drift", "expiring"]
    );
    let o = run(
        &server.url,
        dir.path(),
        &["review", "-f", "acme.yaml", "--account", "99999"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).lines().last(),
        Some("--account 99999: the portal has no account \"99999\" this token can reach")
    );
}
