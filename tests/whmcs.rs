//! The WHMCS adapter end to end: the built binary against the WHMCS API emulator.

mod whmcs_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use whmcs_support::{ACCESSKEY, IDENTIFIER, SECRET, Whmcs};

const NOW: &str = "2026-11-26T09:00:00Z";

struct Run<'a> {
    whmcs: &'a Whmcs,
    dir: &'a Path,
    now: &'a str,
}

impl<'a> Run<'a> {
    /// Runs in `dir` at the tests' fixed instant.
    fn at(whmcs: &'a Whmcs, dir: &'a Path) -> Run<'a> {
        Run {
            whmcs,
            dir,
            now: NOW,
        }
    }

    /// Replaces the manifests with one CustomerAccount for `client`.
    fn declare(&self, client: u64, body: &str) {
        write_manifest(self.dir, &account(client, body));
    }

    fn rolecall(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rolecall"))
            .args(args)
            .current_dir(self.dir)
            .env_remove("ROLECALL_PORTAL")
            .env_remove("ROLECALL_WHMCS_STATE")
            .env_remove("ROLECALL_RATE_LIMIT")
            .env("ROLECALL_NOW", self.now)
            .env("ROLECALL_WHMCS_IDENTIFIER", IDENTIFIER)
            .env("ROLECALL_WHMCS_SECRET", SECRET)
            .env("ROLECALL_WHMCS_ACCESSKEY", ACCESSKEY)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    fn plan(&self) -> Output {
        let portal = self.whmcs.portal_url();
        self.rolecall(&["plan", "-f", "manifests", "--portal", &portal])
    }

    /// `plan --out plan.json`.
    fn save_plan(&self) -> Output {
        let portal = self.whmcs.portal_url();
        self.rolecall(&[
            "plan",
            "-f",
            "manifests",
            "--portal",
            &portal,
            "--out",
            "plan.json",
        ])
    }

    /// `apply plan.json`, with the record the manifests' runs keep.
    fn apply_saved(&self) -> Output {
        // A plan file never chooses the portal: the same --portal as the plan's.
        let portal = self.whmcs.portal_url();
        self.rolecall(&[
            "apply",
            "plan.json",
            "--portal",
            &portal,
            "--auto-approve",
            "--whmcs-state",
            "manifests/.rolecall/whmcs-invitations.json",
        ])
    }

    fn apply(&self) -> Output {
        let portal = self.whmcs.portal_url();
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

fn ok(o: Output) -> String {
    let t = text(&o);
    assert!(o.status.success(), "exit {:?}:\n{t}", o.status.code());
    for secret in [IDENTIFIER, SECRET, ACCESSKEY] {
        assert!(!t.contains(secret), "a credential leaked:\n{t}");
    }
    t
}

/// An emulator with one client, Acme AG, owned by owner@acme.example, and a work directory.
fn acme() -> (Whmcs, u64, tempfile::TempDir) {
    let whmcs = Whmcs::start();
    let client = whmcs.add_client("Acme AG", "owner@acme.example");
    (whmcs, client, tempfile::tempdir().unwrap())
}

fn write_manifest(dir: &Path, yaml: &str) {
    let m = dir.join("manifests");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("account.yaml"), yaml).unwrap();
}

/// A CustomerAccount for the client, with a time zone WHMCS does not keep.
fn account(client: u64, body: &str) -> String {
    format!(
        "apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: c{client}}}\nspec:\n  customerNumber: \"{client}\"\n  timeZone: Europe/Zurich\n{body}"
    )
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join("manifests/.rolecall/whmcs-invitations.json")
}

fn no_changes(t: &str) -> bool {
    t.contains("No changes")
}

#[test]
fn plan_apply_replan_invites_once_and_an_accepted_invitation_ends_the_record() {
    let whmcs = Whmcs::start();
    whmcs.lock().accesskey = Some(ACCESSKEY.into());
    let client = whmcs.add_client("Acme AG", "owner@acme.example");
    // A user whose e-mail starts like Alice's, on another client: the prefix search finds
    // both; only the exact one is Alice.
    let other = whmcs.add_client("Other", "owner@other.example");
    whmcs.add_user(other, "alice@acme.example.net", &["tickets"]);
    whmcs.add_user(client, "bob@acme.example", &["tickets", "quotes"]);
    let dir = tempfile::tempdir().unwrap();
    let run = Run::at(&whmcs, dir.path());
    run.declare(client, "  members:\n    - email: alice@acme.example\n      name: Alice Example\n      roles: [invoices, tickets]\n    - email: bob@acme.example\n      roles: [tickets]\n  contacts:\n    - email: billing@acme.example\n      name: Billing Dept\n      notifications: [invoices, domains]\n");

    let plan = ok(run.plan());
    assert!(plan.contains("alice@acme.example"), "{plan}");
    assert!(plan.contains("no ETags"), "{plan}");
    assert!(
        !plan.contains("owner@acme.example") || plan.contains("read-only"),
        "{plan}"
    );
    assert_eq!(
        whmcs.invitations_to("alice@acme.example"),
        0,
        "plan sends nothing"
    );

    ok(run.apply());
    assert_eq!(whmcs.invitations_to("alice@acme.example"), 1);
    assert_eq!(
        whmcs.permissions(client, "bob@acme.example"),
        Some(vec!["tickets".to_string()])
    );
    let contact = whmcs.contact(client, "billing@acme.example").unwrap();
    assert_eq!(contact.prefs, [false, false, true, true, false, false]);
    assert_eq!(
        (contact.firstname.as_str(), contact.lastname.as_str()),
        ("Billing", "Dept")
    );
    let state = std::fs::read_to_string(state_file(dir.path())).unwrap();
    assert!(state.contains("alice@acme.example"), "{state}");

    // The invitation cannot be listed in WHMCS: only the record keeps a second run from
    // inviting again.
    let again = ok(run.plan());
    assert!(no_changes(&again), "{again}");
    ok(run.apply());
    ok(run.apply());
    assert_eq!(
        whmcs.invitations_to("alice@acme.example"),
        1,
        "invited once"
    );

    assert!(whmcs.accept(client, "alice@acme.example"));
    // She joined under a name of her own; the manifest declares another, which WHMCS can set.
    let after = ok(run.plan());
    assert!(after.contains("alice User"), "{after}");
    assert!(!after.contains("invite"), "{after}");
    ok(run.apply());
    assert!(no_changes(&ok(run.plan())));
    let name = {
        let d = whmcs.lock();
        let u = d
            .users
            .iter()
            .find(|u| u.email == "alice@acme.example")
            .unwrap();
        format!("{} {}", u.firstname, u.lastname)
    };
    assert_eq!(name, "Alice Example");
    let state = std::fs::read_to_string(state_file(dir.path())).unwrap();
    assert!(
        !state.contains("alice@acme.example"),
        "the record ended: {state}"
    );
    assert_eq!(
        whmcs.permissions(client, "alice@acme.example"),
        Some(vec!["invoices".to_string(), "tickets".to_string()])
    );
    // The look-alike on the other client was never touched.
    assert_eq!(
        whmcs.permissions(other, "alice@acme.example.net"),
        Some(vec!["tickets".to_string()])
    );

    // Changing a joined member's permissions sends the whole set.
    run.declare(client, "  members:\n    - email: alice@acme.example\n      roles: [invoices, domains]\n  contacts:\n    - email: billing@acme.example\n      name: Billing Dept\n      notifications: [invoices, domains]\n");
    let change = ok(run.plan());
    assert!(change.contains("bob@acme.example"), "{change}");
    ok(run.apply());
    assert_eq!(
        whmcs.permissions(client, "alice@acme.example"),
        Some(vec!["domains".to_string(), "invoices".to_string()])
    );
    assert_eq!(
        whmcs.permissions(client, "bob@acme.example"),
        None,
        "pruned"
    );
    assert!(
        whmcs.is_owner(client, "owner@acme.example"),
        "the owner stays"
    );
    assert!(no_changes(&ok(run.plan())));
    assert_eq!(whmcs.invitations_to("alice@acme.example"), 1);
}

#[test]
fn the_owner_is_never_changed_or_removed() {
    let whmcs = Whmcs::start();
    let client = whmcs.add_client("Acme AG", "owner@acme.example");
    whmcs.add_user(client, "admin@acme.example", &["profile"]);
    let dir = tempfile::tempdir().unwrap();
    let run = Run::at(&whmcs, dir.path());
    // Omitting the owner with prune on, then declaring it with fewer permissions: neither
    // revokes nor changes it.
    for members in [
        "  members:\n    - email: admin@acme.example\n      roles: [profile]\n",
        "  members:\n    - email: owner@acme.example\n      roles: [tickets]\n    - email: admin@acme.example\n      roles: [profile]\n",
    ] {
        run.declare(client, members);
        let plan = ok(run.plan());
        assert!(no_changes(&plan), "{plan}");
        ok(run.apply());
        assert!(whmcs.is_owner(client, "owner@acme.example"));
    }
    // Removing every other member leaves the owner as the admin: not a last-admin refusal.
    run.declare(client, "  policy: {maxRemovals: 5}\n");
    ok(run.apply());
    assert!(whmcs.is_owner(client, "owner@acme.example"));
    assert_eq!(whmcs.permissions(client, "admin@acme.example"), None);
    let actions = whmcs.actions();
    assert!(
        !actions.iter().any(|a| a == "UpdateUserPermissions"),
        "{actions:?}"
    );
    // Declaring the read-only role for someone else grants nothing.
    run.declare(
        client,
        "  members:\n    - email: new@acme.example\n      roles: [owner, tickets]\n",
    );
    let plan = ok(run.plan());
    assert!(plan.contains("read-only role"), "{plan}");
    ok(run.apply());
    let invite = whmcs.lock().invites.clone();
    assert_eq!(invite.len(), 1);
    assert_eq!(invite[0].permissions, ["tickets"]);
}

#[test]
fn an_expired_invitation_is_sent_again_only_when_the_policy_says_so() {
    let (whmcs, client, dir) = acme();
    let members = "  members:\n    - email: late@acme.example\n      roles: [tickets]\n";
    write_manifest(
        dir.path(),
        &account(
            client,
            &format!("{members}  policy: {{resendExpiredInvitations: false}}\n"),
        ),
    );
    let first = Run::at(&whmcs, dir.path());
    ok(first.apply());
    assert_eq!(whmcs.invitations_to("late@acme.example"), 1);
    let later = Run {
        whmcs: &whmcs,
        dir: dir.path(),
        now: "2026-12-04T09:00:00Z",
    };
    let plan = ok(later.plan());
    assert!(no_changes(&plan), "{plan}");
    ok(later.apply());
    assert_eq!(whmcs.invitations_to("late@acme.example"), 1);

    write_manifest(dir.path(), &account(client, members));
    let plan = ok(later.plan());
    assert!(plan.contains("invitation expired 2026-12-03"), "{plan}");
    ok(later.apply());
    ok(later.apply());
    assert_eq!(whmcs.invitations_to("late@acme.example"), 2);
}

#[test]
fn a_lost_record_means_one_more_invitation_and_joined_users_are_not_invited() {
    let (whmcs, client, dir) = acme();
    let run = Run::at(&whmcs, dir.path());
    run.declare(client, "  members:\n    - email: a@acme.example\n      roles: [tickets]\n    - email: b@acme.example\n      roles: [tickets]\n");
    ok(run.apply());
    assert!(whmcs.accept(client, "b@acme.example"));
    std::fs::remove_file(state_file(dir.path())).unwrap();
    ok(run.apply());
    // As documented: without the record, the pending one is invited again; the one who
    // joined shows as a member and is not.
    assert_eq!(whmcs.invitations_to("a@acme.example"), 2);
    assert_eq!(whmcs.invitations_to("b@acme.example"), 1);
}

#[test]
fn contact_preferences_map_to_notification_kinds_and_the_domain_rule_is_explained() {
    let whmcs = Whmcs::start();
    let client = whmcs.add_client("Acme AG", "owner@acme.example");
    whmcs.add_contact(
        client,
        "noc@acme.example",
        [true, true, true, true, true, true],
    );
    let dir = tempfile::tempdir().unwrap();
    let run = Run::at(&whmcs, dir.path());
    let kinds = [
        ("general", 0),
        ("products", 1),
        ("domains", 2),
        ("invoices", 3),
        ("support", 4),
        ("affiliates", 5),
    ];
    for (kind, index) in kinds {
        run.declare(client, &format!(
                    "  contacts:\n    - email: noc@acme.example\n      name: Contact\n      notifications: [{kind}]\n"
                ));
        ok(run.apply());
        let mut want = [false; 6];
        want[index] = true;
        assert_eq!(
            whmcs.contact(client, "noc@acme.example").unwrap().prefs,
            want,
            "{kind}"
        );
        assert!(no_changes(&ok(run.plan())), "{kind}");
    }
    // The client's own address stops receiving domain e-mails; the contact is the last
    // address that does, and the manifest turns it off.
    whmcs
        .lock()
        .clients
        .iter_mut()
        .for_each(|c| c.own_domain_emails = false);
    run.declare(client, "  contacts:\n    - email: noc@acme.example\n      name: Contact\n      notifications: [general, domains]\n");
    ok(run.apply());
    run.declare(client, "  contacts:\n    - email: noc@acme.example\n      name: Contact\n      notifications: [general]\n");
    let out = run.apply();
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("at least one address"), "{t}");
    assert!(t.contains("domains"), "{t}");
    assert!(whmcs.contact(client, "noc@acme.example").unwrap().prefs[2]);
}

#[test]
fn paging_past_25_clients_and_users() {
    let whmcs = Whmcs::start();
    // An installation that answers at most 25 items a page, whatever rolecall asks for.
    whmcs.lock().page_cap = Some(25);
    let mut clients = Vec::new();
    for i in 0..60 {
        clients.push(whmcs.add_client(&format!("Client {i}"), &format!("owner{i}@c.example")));
    }
    let last = *clients.last().unwrap();
    let mut members = String::from("  members:\n");
    for i in 0..30 {
        let email = format!("user{i:02}@c.example");
        whmcs.add_user(last, &email, &["tickets"]);
        members.push_str(&format!("    - email: {email}\n      roles: [tickets]\n"));
    }
    for i in 0..30 {
        whmcs.add_contact(
            last,
            &format!("contact{i:02}@c.example"),
            [true, false, true, false, false, false],
        );
        members.push_str("");
    }
    let mut body = members;
    body.push_str("  contacts:\n");
    for i in 0..30 {
        body.push_str(&format!(
            "    - email: contact{i:02}@c.example\n      name: Contact\n      notifications: [general, domains]\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let run = Run::at(&whmcs, dir.path());
    run.declare(last, &body);
    let plan = ok(run.plan());
    assert!(no_changes(&plan), "{plan}");
    let pages = whmcs
        .actions()
        .iter()
        .filter(|a| *a == "GetClients")
        .count();
    assert_eq!(pages, 3, "60 clients in pages of 25");
    let contact_pages = whmcs
        .actions()
        .iter()
        .filter(|a| *a == "GetContacts")
        .count();
    assert_eq!(contact_pages, 2, "30 contacts in pages of 25");
}

/// Issue 20: a zero-drift plan of many clients reads users and contacts in bulk pages of 250
/// and costs one `GetUserPermissions` per (client, user) link that is not the owner's.
#[test]
fn a_zero_drift_plan_costs_one_call_per_link_plus_one_per_250_users_and_contacts() {
    let whmcs = Whmcs::start();
    let n = 300;
    let manifests = whmcs.fleet(n);
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), &manifests);
    let run = Run::at(&whmcs, dir.path());
    whmcs.clear_requests();
    let plan = ok(run.plan());
    assert!(no_changes(&plan), "{plan}");
    assert_eq!(whmcs.writes(), Vec::<String>::new());
    let pages = |items: usize| items.div_ceil(250);
    // Every client has its owner and 3 users (4 links) and a contact.
    let (links, users, contacts) = (4 * n, 4 * n, n);
    assert_eq!(
        whmcs.count("GetUserPermissions"),
        3 * n,
        "the owners' cost none"
    );
    assert_eq!(whmcs.count("GetUsers"), pages(users));
    assert_eq!(whmcs.count("GetContacts"), pages(contacts));
    assert_eq!(whmcs.count("GetClients"), pages(n));
    assert_eq!(whmcs.count("GetClientsDetails"), 0);
    // The constant: `GetPermissionsList` once, and one page more than a single list of
    // users and contacts would take, since they are two lists. The `GetClients` pages (one
    // per 250 clients) are paid for by the owners' links, which need no call of their own.
    let calls = whmcs.actions().len();
    assert!(
        calls <= links + pages(users + contacts) + 2,
        "{calls} calls for {n} clients"
    );
    assert_eq!(calls, 3 * n + pages(users) + pages(contacts) + pages(n) + 1);
}

#[test]
fn bad_credentials_are_named_and_never_printed() {
    let (whmcs, client, dir) = acme();
    write_manifest(dir.path(), &account(client, "  members: []\n"));
    let out = Command::new(env!("CARGO_BIN_EXE_rolecall"))
        .args(["plan", "-f", "manifests", "--portal", &whmcs.portal_url()])
        .current_dir(dir.path())
        .env("ROLECALL_NOW", NOW)
        .env("ROLECALL_WHMCS_IDENTIFIER", IDENTIFIER)
        .env("ROLECALL_WHMCS_SECRET", "wrong-secret-value-xyz")
        .env("RUST_LOG", "trace")
        .env_remove("ROLECALL_WHMCS_ACCESSKEY")
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("ROLECALL_WHMCS_SECRET"), "{t}");
    assert!(
        !t.contains("wrong-secret-value-xyz") && !t.contains(IDENTIFIER),
        "{t}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_rolecall"))
        .args(["plan", "-f", "manifests", "--portal", &whmcs.portal_url()])
        .current_dir(dir.path())
        .env("ROLECALL_NOW", NOW)
        .env_remove("ROLECALL_WHMCS_IDENTIFIER")
        .env_remove("ROLECALL_WHMCS_SECRET")
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("no WHMCS API credentials"), "{t}");

    // The root of the wrong path: no API there.
    let wrong = whmcs.portal_url().replace("/whmcs/", "/billing/");
    let run = Run::at(&whmcs, dir.path());
    let out = run.rolecall(&["plan", "-f", "manifests", "--portal", &wrong]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("no WHMCS API at this address"), "{t}");
}

#[test]
fn a_plan_document_and_the_state_file_carry_no_credentials() {
    let (whmcs, client, dir) = acme();
    let run = Run::at(&whmcs, dir.path());
    run.declare(
        client,
        "  members:\n    - email: x@acme.example\n      roles: [tickets]\n",
    );
    ok(run.save_plan());
    ok(run.apply_saved());
    assert_eq!(whmcs.invitations_to("x@acme.example"), 1);
    for file in [dir.path().join("plan.json"), state_file(dir.path())] {
        let content = std::fs::read_to_string(&file).unwrap();
        for secret in [IDENTIFIER, SECRET, ACCESSKEY] {
            assert!(!content.contains(secret), "{}: {content}", file.display());
        }
    }
    // The saved plan went through the same record: a fresh plan invites nobody.
    assert!(no_changes(&ok(run.plan())));
}

#[test]
fn overloaded_answers_are_retried_and_the_rate_limit_spaces_requests() {
    let (whmcs, client, dir) = acme();
    let run = Run::at(&whmcs, dir.path());
    run.declare(
        client,
        "  members:\n    - email: r@acme.example\n      roles: [tickets]\n",
    );
    whmcs.lock().fail_next = 3;
    ok(run.apply());
    assert_eq!(whmcs.invitations_to("r@acme.example"), 1);
    assert_eq!(whmcs.lock().fail_next, 0);

    let before = whmcs.actions().len();
    let started = std::time::Instant::now();
    let portal = whmcs.portal_url();
    let plan = ok(run.rolecall(&[
        "plan",
        "-f",
        "manifests",
        "--portal",
        &portal,
        "--rate-limit",
        "10",
    ]));
    let elapsed = started.elapsed();
    assert!(no_changes(&plan), "{plan}");
    let sent = whmcs.actions().len() - before;
    assert!(sent >= 4, "{sent} requests");
    // n requests at 10/s take at least (n - 1) / 10 s.
    let least = std::time::Duration::from_millis(100 * (sent as u64 - 1));
    assert!(elapsed >= least, "{sent} requests in {elapsed:?}");

    let bad = run.rolecall(&[
        "plan",
        "-f",
        "manifests",
        "--portal",
        &portal,
        "--rate-limit",
        "0",
    ]);
    let t = text(&bad);
    assert!(!bad.status.success() && t.contains("not a rate"), "{t}");
}

#[test]
fn an_invitation_whose_answer_was_lost_is_not_sent_again() {
    let (whmcs, client, dir) = acme();
    let run = Run::at(&whmcs, dir.path());
    run.declare(client, "  members:\n    - email: lost@acme.example\n      roles: [tickets]\n  contacts:\n    - email: c@acme.example\n      name: C\n      notifications: [general]\n");
    whmcs.lock().fail_after_commit = Some("CreateClientInvite".into());
    let first = run.apply();
    assert!(!first.status.success(), "{}", text(&first));
    assert_eq!(whmcs.invitations_to("lost@acme.example"), 1, "not retried");
    ok(run.apply());
    assert_eq!(
        whmcs.invitations_to("lost@acme.example"),
        1,
        "recorded though unanswered"
    );

    run.declare(client, "  members:\n    - email: lost@acme.example\n      roles: [tickets]\n  contacts:\n    - email: c@acme.example\n      name: C\n      notifications: [general]\n    - email: d@acme.example\n      name: D\n      notifications: [general]\n");
    whmcs.lock().fail_after_commit = Some("AddContact".into());
    let lost = run.apply();
    assert!(!lost.status.success(), "{}", text(&lost));
    whmcs.lock().fail_after_commit = None;
    assert!(no_changes(&ok(run.plan())));
    let contacts = whmcs.lock().contacts.len();
    assert_eq!(contacts, 2, "each contact once");
}

#[test]
fn a_portal_manifest_selects_whmcs_and_export_round_trips() {
    let whmcs = Whmcs::start();
    let client = whmcs.add_client("Acme AG", "owner@acme.example");
    whmcs.add_user(client, "staff@acme.example", &["tickets", "invoices"]);
    whmcs.add_contact(
        client,
        "noc@acme.example",
        [true, false, true, false, true, false],
    );
    let dir = tempfile::tempdir().unwrap();
    let run = Run::at(&whmcs, dir.path());
    let portal = format!(
        "apiVersion: rolecall.dev/v1alpha1\nkind: Portal\nmetadata: {{name: billing}}\nspec:\n  url: {}\n---\n",
        whmcs.portal_url()
    );
    write_manifest(
        dir.path(),
        &format!(
            "{portal}{}",
            account(
                client,
                "  members:\n    - email: new@acme.example\n      roles: [tickets]\n"
            )
        ),
    );
    let plan = ok(run.rolecall(&["plan", "-f", "manifests"]));
    assert!(plan.contains("new@acme.example"), "{plan}");
    ok(run.rolecall(&["apply", "-f", "manifests", "--auto-approve"]));
    assert_eq!(whmcs.invitations_to("new@acme.example"), 1);

    let out = run.rolecall(&[
        "export",
        "--portal",
        &whmcs.portal_url(),
        "--account",
        &client.to_string(),
        "--out-dir",
        "exported",
        "--whmcs-state",
        "manifests/.rolecall/whmcs-invitations.json",
    ]);
    ok(out);
    let exported = dir.path().join("exported");
    let back = ok(run.rolecall(&[
        "plan",
        "-f",
        exported.to_str().unwrap(),
        "--portal",
        &whmcs.portal_url(),
        "--whmcs-state",
        "manifests/.rolecall/whmcs-invitations.json",
    ]));
    assert!(no_changes(&back), "{back}");
    assert_eq!(whmcs.invitations_to("new@acme.example"), 1);
}

#[test]
fn a_person_who_joins_between_plan_and_apply_is_not_invited() {
    let (whmcs, client, dir) = acme();
    let run = Run::at(&whmcs, dir.path());
    run.declare(
        client,
        "  members:\n    - email: quick@acme.example\n      roles: [tickets, invoices]\n",
    );
    ok(run.save_plan());
    // Invited by someone else in the WHMCS admin area, and joined already.
    whmcs.add_user(client, "quick@acme.example", &["tickets"]);
    let out = run.apply_saved();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    // The member planned as absent is there now: the saved plan is stale, nothing is sent.
    assert!(
        t.contains("stale") && t.contains("quick@acme.example"),
        "{t}"
    );
    assert_eq!(whmcs.invitations_to("quick@acme.example"), 0);
    ok(run.apply());
    assert_eq!(
        whmcs.permissions(client, "quick@acme.example"),
        Some(vec!["invoices".to_string(), "tickets".to_string()])
    );
    assert!(no_changes(&ok(run.plan())));
    assert_eq!(whmcs.invitations_to("quick@acme.example"), 0);
}

/// Names and form fields of every request with one of these actions.
fn sent(whmcs: &Whmcs, actions: &[&str]) -> Vec<(String, Vec<String>)> {
    whmcs
        .lock()
        .requests
        .iter()
        .filter(|(a, _)| actions.contains(&a.as_str()))
        .map(|(a, form)| {
            let mut keys: Vec<String> = form.keys().cloned().collect();
            keys.sort();
            (a.clone(), keys)
        })
        .collect()
}

/// A person's WHMCS user is their own (seed 000): a grant sets permissions and nothing else.
/// The saved plan is applied after Dana renamed herself, as people do; no manifest declares
/// her name, so nothing the plan read of it may be written back.
#[test]
fn a_grant_never_writes_a_name_the_manifests_do_not_declare() {
    let (whmcs, client, dir) = acme();
    whmcs.add_user(client, "dana@acme.example", &["tickets"]);
    let run = Run::at(&whmcs, dir.path());
    run.declare(
        client,
        "  members:\n    - email: dana@acme.example\n      roles: [tickets, invoices]\n",
    );
    let plan = ok(run.save_plan());
    assert!(plan.contains("invoices"), "{plan}");
    {
        let mut d = whmcs.lock();
        let u = d
            .users
            .iter_mut()
            .find(|u| u.email == "dana@acme.example")
            .unwrap();
        u.firstname = "Dana Maria".into();
        u.lastname = "Scully".into();
    }
    whmcs.lock().requests.clear();
    ok(run.apply_saved());
    assert_eq!(
        whmcs.permissions(client, "dana@acme.example"),
        Some(vec!["invoices".to_string(), "tickets".to_string()])
    );
    let (first, last) = {
        let d = whmcs.lock();
        let u = d
            .users
            .iter()
            .find(|u| u.email == "dana@acme.example")
            .unwrap();
        (u.firstname.clone(), u.lastname.clone())
    };
    assert_eq!((first.as_str(), last.as_str()), ("Dana Maria", "Scully"));
    let writes = sent(&whmcs, &["UpdateUser", "UpdateUserPermissions"]);
    assert_eq!(writes.len(), 1, "one write, of the permissions: {writes:?}");
    assert_eq!(writes[0].0, "UpdateUserPermissions");
    assert!(
        !writes[0]
            .1
            .iter()
            .any(|k| k == "firstname" || k == "lastname"),
        "{writes:?}"
    );
    // And with plan and apply in one run, a further grant leaves the name alone too.
    run.declare(
        client,
        "  members:\n    - email: dana@acme.example\n      roles: [tickets, invoices, domains]\n",
    );
    ok(run.apply());
    let d = whmcs.lock();
    let u = d
        .users
        .iter()
        .find(|u| u.email == "dana@acme.example")
        .unwrap();
    assert_eq!(
        (u.firstname.as_str(), u.lastname.as_str()),
        ("Dana Maria", "Scully")
    );
    assert!(!d.requests.iter().any(|(a, _)| a == "UpdateUser"));
}

/// The same for a contact: changing its preferences leaves a name the manifests do not
/// declare as WHMCS has it — "Mary Ann" stays the first name.
#[test]
fn a_contact_update_never_rewrites_an_undeclared_name() {
    let (whmcs, client, dir) = acme();
    whmcs.add_contact(
        client,
        "mary@acme.example",
        [true, false, false, false, false, false],
    );
    {
        let mut d = whmcs.lock();
        let c = d
            .contacts
            .iter_mut()
            .find(|c| c.email == "mary@acme.example")
            .unwrap();
        c.firstname = "Mary Ann".into();
        c.lastname = "Smith".into();
    }
    let run = Run::at(&whmcs, dir.path());
    run.declare(
        client,
        "  contacts:\n    - email: mary@acme.example\n      notifications: [general, invoices]\n",
    );
    ok(run.apply());
    let c = whmcs.contact(client, "mary@acme.example").unwrap();
    assert_eq!(c.prefs, [true, false, false, true, false, false]);
    assert_eq!(
        (c.firstname.as_str(), c.lastname.as_str()),
        ("Mary Ann", "Smith")
    );
    let updates = sent(&whmcs, &["UpdateContact"]);
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert!(
        !updates[0]
            .1
            .iter()
            .any(|k| k == "firstname" || k == "lastname"),
        "{updates:?}"
    );
    assert!(no_changes(&ok(run.plan())));
}
