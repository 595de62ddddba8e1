//! The BILLmanager adapter end to end: the built binary against the BILLmanager emulator.

mod billmgr_support;

use std::path::Path;
use std::process::{Command, Output};

use billmgr_support::{Billmgr, OWNER_EMAIL, PASSWORD, USERNAME};

const NOW: &str = "2026-11-26T09:00:00Z";
const CN: &str = "10042";

struct Run<'a> {
    b: &'a Billmgr,
    dir: &'a Path,
    now: &'a str,
}

impl<'a> Run<'a> {
    fn new(b: &'a Billmgr, dir: &'a Path) -> Run<'a> {
        Run { b, dir, now: NOW }
    }

    /// Replaces the manifests with one CustomerAccount.
    fn declare(&self, body: &str) {
        write_manifest(self.dir, &account(CN, body));
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rolecall"));
        c.args(args)
            .current_dir(self.dir)
            .env_remove("ROLECALL_PORTAL")
            .env_remove("RUST_LOG")
            .env("ROLECALL_NOW", self.now)
            .env("ROLECALL_BILLMGR_USERNAME", USERNAME)
            .env("ROLECALL_BILLMGR_PASSWORD", PASSWORD)
            .env("NO_COLOR", "1");
        c
    }

    fn rolecall(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn plan(&self) -> Output {
        let portal = self.b.portal_url();
        self.rolecall(&["plan", "-f", "manifests", "--portal", &portal])
    }

    fn apply(&self) -> Output {
        let portal = self.b.portal_url();
        self.rolecall(&[
            "apply",
            "-f",
            "manifests",
            "--portal",
            &portal,
            "--auto-approve",
        ])
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// No login, session id or generated password in a text.
fn assert_no_secrets(b: &Billmgr, t: &str) {
    let mut secrets = vec![USERNAME.to_string(), PASSWORD.to_string()];
    secrets.extend(b.session_ids());
    secrets.extend(b.generated_passwords());
    for s in secrets {
        assert!(!t.contains(&s), "a secret ({} chars) leaked:\n{t}", s.len());
    }
}

fn ok(b: &Billmgr, o: Output) -> String {
    let t = text(&o);
    assert!(o.status.success(), "exit {:?}:\n{t}", o.status.code());
    assert_no_secrets(b, &t);
    t
}

fn write_manifest(dir: &Path, yaml: &str) {
    let m = dir.join("manifests");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("account.yaml"), yaml).unwrap();
}

fn account(cn: &str, body: &str) -> String {
    format!(
        "apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: c{cn}}}\nspec:\n  customerNumber: \"{cn}\"\n  timeZone: Europe/Zurich\n{body}"
    )
}

fn setup() -> (Billmgr, tempfile::TempDir) {
    (Billmgr::start(), tempfile::tempdir().unwrap())
}

#[test]
fn plan_apply_replan_mails_each_password_once_and_leaves_the_owner_alone() {
    let (b, dir) = setup();
    let run = Run::new(&b, dir.path());
    run.declare(
        "  members:\n    - email: alice@acme.example\n      name: Alice Example\n      roles: [vds, clientticket]\n    - email: bob@acme.example\n      roles: [full-access]\n    - email: carol@acme.example\n      name: Carol Contact\n      roles: [contact]\n",
    );
    let plan = ok(&b, run.plan());
    assert!(plan.contains("alice@acme.example"), "{plan}");
    assert!(plan.contains("invite"), "{plan}");
    assert!(plan.contains("no ETags"), "{plan}");
    assert!(b.lock().writes().is_empty(), "plan writes nothing");
    assert_eq!(b.lock().outbox.len(), 0);

    let applied = ok(&b, run.apply());
    assert_eq!(b.rights("alice@acme.example"), ["clientticket", "vds"]);
    assert_eq!(
        b.user("alice@acme.example").unwrap().realname,
        "Alice Example"
    );
    assert!(b.user("bob@acme.example").unwrap().full);
    let carol = b.user("carol@acme.example").unwrap();
    assert!(!carol.full && b.rights("carol@acme.example").is_empty());
    assert_eq!(b.mails_to("alice@acme.example"), 1);
    assert_eq!(b.mails_to("bob@acme.example"), 1);
    assert_eq!(
        b.mails_to("carol@acme.example"),
        0,
        "a contact gets no password"
    );
    // The passwords went in the creation forms, and nowhere else.
    let passwords = b.generated_passwords();
    assert_eq!(passwords.len(), 3);
    assert!(passwords.iter().all(|p| p.len() >= 20));
    assert_no_secrets(&b, &applied);

    let writes = b.lock().writes().len();
    let again = ok(&b, run.plan());
    assert!(again.contains("No changes"), "{again}");
    let again = ok(&b, run.apply());
    assert!(again.contains("No changes"), "{again}");
    assert_eq!(
        b.lock().writes().len(),
        writes,
        "a second apply writes nothing"
    );
    assert_eq!(b.lock().outbox.len(), 2, "no second password e-mail");

    // The owner was never written to.
    let owner = b.user(OWNER_EMAIL).unwrap();
    assert!(owner.full && owner.enabled);
    let owner_id = owner.id.to_string();
    let touched = b.lock().requests.iter().any(|(func, form)| {
        let on_owner = form.get("elid") == Some(&owner_id)
            || form
                .get("plid")
                .is_some_and(|p| p.starts_with(&format!("{owner_id}/")));
        let reads = func == "rights2.user" || (func == "user.edit" && !form.contains_key("sok"));
        on_owner && !reads
    });
    assert!(!touched, "the main user was written to");
}

#[test]
fn the_owner_is_reported_read_only_and_never_removed() {
    let (b, dir) = setup();
    let run = Run::new(&b, dir.path());
    // Not declared, with prune: still never removed; declared otherwise: left as it is.
    run.declare("  members: []\n");
    let plan = ok(&b, run.plan());
    assert!(plan.contains("No changes"), "{plan}");
    run.declare(&format!(
        "  members:\n    - email: {OWNER_EMAIL}\n      roles: [vds]\n"
    ));
    let plan = ok(&b, run.plan());
    assert!(plan.contains("No changes"), "{plan}");
    ok(&b, run.apply());
    assert!(b.lock().writes().is_empty());
    assert!(b.user(OWNER_EMAIL).unwrap().full);
}

#[test]
fn full_access_is_switched_off_before_rights_change_and_removal_deletes() {
    let (b, dir) = setup();
    let dave = b.add_user("dave@acme.example", &[], true);
    b.add_user("erin@acme.example", &["vds"], false);
    let run = Run::new(&b, dir.path());
    run.declare("  members:\n    - email: dave@acme.example\n      roles: [payment]\n");
    let plan = ok(&b, run.plan());
    assert!(
        plan.contains("full-access") && plan.contains("payment"),
        "{plan}"
    );
    assert!(plan.contains("erin@acme.example"), "{plan}");
    ok(&b, run.apply());
    let d = b.user("dave@acme.example").unwrap();
    assert!(!d.full, "full access is off");
    assert_eq!(b.rights("dave@acme.example"), ["payment"]);
    assert!(b.user("erin@acme.example").is_none(), "erin removed");
    let d = b.lock();
    let order: Vec<&str> = d
        .requests
        .iter()
        .filter(|(f, form)| {
            (f == "user.edit" && form.get("default_access_allow").is_some())
                || f == "rights2.user.resume"
        })
        .map(|(f, _)| f.as_str())
        .collect();
    // Off before the right changes; the planner's grant-then-revoke steps may switch it on
    // and off again after, never while a right changes (the emulator refuses that).
    assert_eq!(order[..2], ["user.edit", "rights2.user.resume"]);
    assert!(d.requests.iter().any(|(f, form)| f == "rights2.user.resume"
        && form.get("plid") == Some(&format!("{dave}/payment"))));
    assert_eq!(d.count("user.delete"), 1);
    drop(d);
    let again = ok(&b, run.plan());
    assert!(again.contains("No changes"), "{again}");
}

#[test]
fn a_suspended_declared_user_is_resumed() {
    let (b, dir) = setup();
    b.add_user("frank@acme.example", &["vds"], false);
    b.suspend("frank@acme.example");
    let run = Run::new(&b, dir.path());
    run.declare("  members:\n    - email: frank@acme.example\n      roles: [vds]\n");
    let plan = ok(&b, run.plan());
    assert!(plan.contains("frank@acme.example"), "{plan}");
    ok(&b, run.apply());
    assert!(b.user("frank@acme.example").unwrap().enabled);
    assert_eq!(b.lock().count("user.resume"), 1);
    let again = ok(&b, run.plan());
    assert!(again.contains("No changes"), "{again}");
}

#[test]
fn until_is_enforced_by_rolecall_on_the_date() {
    let (b, dir) = setup();
    let mut run = Run::new(&b, dir.path());
    run.declare(
        "  members:\n    - email: gina@acme.example\n      roles: [vds, {name: domain, until: 2026-11-30}]\n",
    );
    ok(&b, run.apply());
    assert_eq!(b.rights("gina@acme.example"), ["domain", "vds"]);
    assert!(
        b.lock()
            .requests
            .iter()
            .all(|(_, form)| form.values().all(|v| !v.contains("2026-11-30"))),
        "until is never sent"
    );
    // Still holds on its last day (Zurich time), gone the day after.
    run.now = "2026-11-30T22:00:00Z";
    let plan = ok(&b, run.plan());
    assert!(plan.contains("No changes"), "{plan}");
    run.now = "2026-11-30T23:00:00Z";
    let plan = ok(&b, run.plan());
    assert!(plan.contains("expired 2026-11-30"), "{plan}");
    ok(&b, run.apply());
    assert_eq!(b.rights("gina@acme.example"), ["vds"]);
}

#[test]
fn what_the_api_does_not_offer_is_refused_at_plan_time_and_nothing_changes() {
    let (b, dir) = setup();
    let run = Run::new(&b, dir.path());
    run.declare(
        "  members:\n    - email: hank@acme.example\n      roles: [vds]\n      services: [srv-1]\n    - email: ivy@acme.example\n      roles: [vds]\n      notifications: [support]\n  contacts:\n    - email: noc@acme.example\n      name: NOC\n      notifications: []\n",
    );
    for out in [run.plan(), run.apply()] {
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert_no_secrets(&b, &t);
        for what in [
            "does not offer setting a member's service access",
            "does not offer setting a member's notifications",
            "does not offer e-mail-only contacts",
        ] {
            assert!(t.contains(what), "{what}:\n{t}");
        }
        assert!(t.contains("account.yaml:"), "{t}");
    }
    assert!(b.lock().writes().is_empty());
    assert!(b.user("hank@acme.example").is_none());

    // Two CustomerAccounts on one BILLmanager portal: an error at the second one's place.
    write_manifest(
        dir.path(),
        &format!(
            "{}---\n{}",
            account("10042", "  members: []\n"),
            account("10043", "  members: []\n")
        ),
    );
    let out = run.plan();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("account.yaml:"), "{t}");
    assert!(
        t.contains("second account on the BILLmanager portal"),
        "{t}"
    );
}

#[test]
fn bad_credentials_are_named_and_never_printed_even_at_trace() {
    let (b, dir) = setup();
    let run = Run::new(&b, dir.path());
    run.declare("  members:\n    - email: jo@acme.example\n      roles: [vds]\n");
    let out = run
        .command(&["plan", "-f", "manifests", "--portal", &b.portal_url()])
        .env("ROLECALL_BILLMGR_PASSWORD", "wrong-password-xyz-42")
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("ROLECALL_BILLMGR_PASSWORD"), "{t}");
    assert!(
        !t.contains("wrong-password-xyz-42") && !t.contains(USERNAME),
        "{t}"
    );

    let out = run
        .command(&["plan", "-f", "manifests", "--portal", &b.portal_url()])
        .env_remove("ROLECALL_BILLMGR_PASSWORD")
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("no BILLmanager login"), "{t}");

    // Userinfo in the portal URL is redacted in that error too.
    let with_userinfo = b
        .portal_url()
        .replacen("://", "://admin:hunter2-userinfo@", 1);
    let out = run
        .command(&["plan", "-f", "manifests", "--portal", &with_userinfo])
        .env_remove("ROLECALL_BILLMGR_PASSWORD")
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("no BILLmanager login"), "{t}");
    assert!(!t.contains("hunter2-userinfo"), "{t}");

    // A good run at trace: no login, session id or generated password in any line.
    let out = run
        .command(&[
            "apply",
            "-f",
            "manifests",
            "--portal",
            &b.portal_url(),
            "--auto-approve",
        ])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    ok(&b, out);
    assert_eq!(b.generated_passwords().len(), 1);
    assert!(!b.session_ids().is_empty());
}

#[test]
fn a_session_that_ends_mid_apply_is_renewed_once() {
    let (b, dir) = setup();
    let run = Run::new(&b, dir.path());
    run.declare("  members:\n    - email: kim@acme.example\n      roles: [vds, payment]\n");
    // The logins of the same run without the session ending.
    let calm = Billmgr::start();
    ok(&calm, Run::new(&calm, dir.path()).apply());
    let logins = calm.lock().count("auth");
    b.lock().expire_on = Some("rights2.user.resume".into());
    ok(&b, run.apply());
    assert_eq!(b.rights("kim@acme.example"), ["payment", "vds"]);
    assert_eq!(b.lock().count("auth"), logins + 1, "one renewal");

    // A session refused even fresh: one renewal, then a clear error, not a loop.
    run.declare("  members:\n    - email: kim@acme.example\n      roles: [vds]\n");
    {
        let mut d = b.lock();
        d.refuse_sessions = true;
        d.requests.clear();
    }
    let out = run.apply();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert_no_secrets(&b, &t);
    assert!(
        b.lock().count("auth") <= 2,
        "renewed more than once: {}",
        b.lock().count("auth")
    );
}

#[test]
fn a_creation_whose_answer_was_lost_never_makes_a_second_user() {
    let (b, dir) = setup();
    let run = Run::new(&b, dir.path());
    run.declare("  members:\n    - email: lou@acme.example\n      roles: [vds]\n");
    b.lock().fail_after_commit = Some("user.edit".into());
    let out = run.apply();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    ok(&b, run.apply());
    let d = b.lock();
    assert_eq!(
        d.users
            .iter()
            .filter(|u| u.email == "lou@acme.example")
            .count(),
        1
    );
    assert_eq!(
        d.outbox.iter().filter(|t| *t == "lou@acme.example").count(),
        1
    );
    drop(d);
    assert_eq!(b.rights("lou@acme.example"), ["vds"]);
}

#[test]
fn export_round_trips() {
    let (b, dir) = setup();
    b.add_user("max@acme.example", &["vds", "domain"], false);
    b.add_user("nia@acme.example", &[], true);
    b.add_user("oli@acme.example", &[], false);
    let run = Run::new(&b, dir.path());
    let out = run.rolecall(&[
        "export",
        "--portal",
        &b.portal_url(),
        "--account",
        CN,
        "--out-dir",
        "exported",
    ]);
    ok(&b, out);
    let mut yaml = String::new();
    for e in std::fs::read_dir(dir.path().join("exported")).unwrap() {
        yaml.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    assert!(
        yaml.contains("max@acme.example") && yaml.contains("contact"),
        "{yaml}"
    );
    let back = ok(
        &b,
        run.rolecall(&["plan", "-f", "exported", "--portal", &b.portal_url()]),
    );
    assert!(back.contains("No changes"), "{back}");

    // Without --account there is no customer number to give the one account.
    let out = run.rolecall(&["export", "--portal", &b.portal_url()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("--account"), "{t}");
}
