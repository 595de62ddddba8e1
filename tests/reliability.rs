//! Reliability (SPEC §7, issue 7): `apply` against a reference portal that fails, loses answers,
//! rate-limits and is slow; `apply` killed mid-run; two `apply`s at once. Every run must end
//! converged, with exactly one invitation e-mail per invited member and no change made twice.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// How many `apply` rounds a faulty portal may need before the plan is empty.
const MAX_ROUNDS: usize = 10;

/// A GET that waits out the portal's rate limit (the tests share the operator's token):
/// asked again until it is answered, within a generous deadline.
fn get(server: &Server, path: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = server.client().call("GET", path, None);
        if status != 429 {
            assert!(status < 300, "GET {path}: {status} {body}");
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "GET {path}: still rate limited after 120 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every invitation e-mail the portal sent, lower-cased recipients, oldest first.
fn invitations(server: &Server) -> Vec<String> {
    let outbox = get(server, "/sandbox/outbox");
    outbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "invitation")
        .map(|m| m["to"].as_str().unwrap().to_lowercase())
        .collect()
}

/// Members holding a login role that have no user account: the ones that must be invited.
fn invited_members(server: &Server, accounts: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for cn in accounts {
        let page = get(server, &format!("/v1/accounts/{cn}/members?limit=1000"));
        for m in page["items"].as_array().unwrap() {
            let login = m["roles"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "cockpit-access");
            if login && m["userLinked"] == false {
                out.push(m["email"].as_str().unwrap().to_lowercase());
            }
        }
    }
    out.sort();
    out
}

/// Asserts exactly one invitation e-mail per invited member and none to anyone else.
fn assert_one_invitation_each(server: &Server, accounts: &[String]) {
    let mut sent = invitations(server);
    sent.sort();
    let expected = invited_members(server, accounts);
    assert!(!expected.is_empty());
    assert_eq!(sent, expected, "invitation e-mails vs invited members");
}

/// Asserts that the audit log of each account records no change twice: no entry repeated,
/// nothing created twice and no second invitation.
fn assert_no_change_twice(server: &Server, accounts: &[String]) {
    for cn in accounts {
        let page = get(server, &format!("/v1/accounts/{cn}/audit?limit=1000"));
        let entries = page["items"].as_array().unwrap();
        assert!(!entries.is_empty(), "account {cn} has no audit entries");
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for e in entries {
            let action = e["action"].as_str().unwrap_or("");
            let target = e["target"].as_str().unwrap_or("").to_lowercase();
            let detail = e["detail"].as_str().unwrap_or("");
            *seen
                .entry(format!("{action} {target} {detail}"))
                .or_default() += 1;
            if action.ends_with(".create") || action.starts_with("invitation.") {
                *seen.entry(format!("{action} {target}")).or_default() += 1;
            }
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "account {cn}: done twice: {twice:#?}");
    }
}

fn example_accounts() -> Vec<String> {
    ["10042", "20077", "30311"].map(String::from).to_vec()
}

/// Runs `apply` until a plan is empty; returns the number of rounds.
fn apply_until_converged(server: &Server, manifests: &str) -> usize {
    let mut log = String::new();
    for round in 1..=MAX_ROUNDS {
        let apply = server.rolecall(&["apply", "-f", manifests, "--auto-approve"]);
        log.push_str(&format!(
            "--- round {round}: exit {:?}\n{}{}",
            apply.status.code(),
            stdout(&apply),
            stderr(&apply)
        ));
        assert!(
            matches!(apply.status.code(), Some(0 | 1)),
            "apply crashed:\n{log}"
        );
        assert!(!stderr(&apply).contains("panicked"), "{log}");
        let plan = server.rolecall(&["plan", "-f", manifests, "--detailed-exitcode"]);
        match plan.status.code() {
            Some(0) => return round,
            Some(2) => {}
            // Reads are never faulted, but the rate limit applies to them too.
            _ => log.push_str(&format!("plan: {}", stderr(&plan))),
        }
    }
    panic!("no convergence after {MAX_ROUNDS} rounds:\n{log}");
}

fn converges_through(flags: &[&str]) {
    let server = Server::start_with(flags);
    apply_until_converged(&server, "examples/");
    let accounts = example_accounts();
    assert_one_invitation_each(&server, &accounts);
    assert_no_change_twice(&server, &accounts);
    // A last apply on the converged portal changes nothing at all.
    let before = get(&server, "/sandbox/outbox");
    let last = server.rolecall(&["apply", "-f", "examples/", "--auto-approve"]);
    assert_eq!(last.status.code(), Some(0), "{}", stderr(&last));
    assert_eq!(get(&server, "/sandbox/outbox"), before);
}

#[test]
fn converges_through_faults_before_the_write() {
    converges_through(&["--fault-rate", "0.3"]);
}

#[test]
fn converges_through_faults_after_the_commit() {
    converges_through(&["--fault-rate", "0.3", "--fault-after-commit"]);
}

#[test]
fn converges_through_latency() {
    converges_through(&["--latency", "150"]);
}

#[test]
fn converges_through_a_rate_limit() {
    converges_through(&["--rate-limit", "5"]);
}

#[test]
fn converges_through_every_fault_at_once() {
    converges_through(&[
        "--fault-rate",
        "0.3",
        "--fault-after-commit",
        "--rate-limit",
        "20",
        "--latency",
        "20",
    ]);
}

/// `accounts` customer accounts of `members` members each: the first is admin, every other
/// one but the last can log in, the last is a technical contact only (never invited).
fn write_fleet(dir: &Path, accounts: usize, members: usize) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let mut numbers = Vec::new();
    for i in 0..accounts {
        let cn = format!("{}", 700_000 + i);
        let mut text = format!(
            "apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: fleet-{i}}}\n\
             spec:\n  customerNumber: \"{cn}\"\n  displayName: Fleet {i}\n  timeZone: Europe/Zurich\n  members:\n"
        );
        for j in 0..members {
            let roles = if j == 0 {
                "[cockpit-access, customer-admin]"
            } else if j + 1 == members {
                "[technical-contact]"
            } else {
                "[cockpit-access]"
            };
            text.push_str(&format!(
                "    - email: person{j}@fleet{i}.example\n      roles: {roles}\n"
            ));
        }
        text.push_str(&format!(
            "  contacts:\n    - email: billing@fleet{i}.example\n      name: Billing\n      notifications: [invoices]\n"
        ));
        std::fs::write(dir.join(format!("fleet-{i}.yaml")), text).unwrap();
        numbers.push(cn);
    }
    numbers
}

fn apply_command(server: &Server, manifests: &str) -> Command {
    let mut command = Command::new(bin());
    command
        .args(["apply", "-f", manifests, "--auto-approve"])
        .env("ROLECALL_PORTAL", &server.url)
        .env("ROLECALL_TOKEN", OPERATOR_TOKEN)
        .env("ROLECALL_NOW", NOW)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// A point in a run, counted in requests the portal has answered since the run began (its
/// request log has one line per answer): the same point on any machine, however fast.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// After this many reads: `apply` is still observing and planning.
    Reads(usize),
    /// After this many writes: `apply` is carrying the plan out.
    Writes(usize),
}

/// Reads and writes in the portal's request log from line `from` on.
fn answered_since(server: &Server, from: usize) -> (usize, usize) {
    let log = server.log.lock().unwrap_or_else(|e| e.into_inner());
    let mut reads = 0;
    let mut writes = 0;
    for line in log.iter().skip(from) {
        match line.split_whitespace().next() {
            Some("GET") => reads += 1,
            Some("POST" | "PUT" | "PATCH" | "DELETE") => writes += 1,
            _ => {}
        }
    }
    (reads, writes)
}

/// Waits until the portal has answered up to `point` since log line `from`; `false` when
/// `gone` says the other side ended first. Panics after a generous deadline.
fn wait_for(
    server: &Server,
    from: usize,
    point: KillPoint,
    mut gone: impl FnMut() -> bool,
) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (reads, writes) = answered_since(server, from);
        let reached = match point {
            KillPoint::Reads(n) => reads >= n,
            KillPoint::Writes(n) => writes >= n,
        };
        if reached {
            return true;
        }
        if gone() {
            return false;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{point:?} not reached in 120 s ({reads} reads, {writes} writes)"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn apply_killed_at_many_points_converges_without_a_duplicate_invitation() {
    // 200 accounts need about 2,200 writes; the kill points below add up to a third of that,
    // so every run still has work left when its point comes.
    let server = Server::start_with(&["--latency", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet");
    let accounts = write_fleet(&fleet, 200, 5);
    let manifests = fleet.to_str().unwrap();

    // Kill points from planning (a few reads in) to deep into the writes; each run resumes
    // from what the previous one left. SIGKILL: no chance to finish a write or log a word.
    let mut points = Vec::new();
    for point in 0..24usize {
        points.push(if point % 4 == 0 {
            KillPoint::Reads(1 + point / 4 % 3)
        } else {
            KillPoint::Writes(1 + (point * 37) % 60)
        });
    }
    let mut finished = Vec::new();
    for (run, point) in points.iter().enumerate() {
        let from = server.log_lines().len();
        let mut child = apply_command(&server, manifests).spawn().unwrap();
        let reached = wait_for(&server, from, *point, || {
            child.try_wait().ok().flatten().is_some()
        });
        let _ = child.kill();
        let status = child.wait().unwrap();
        if !reached || status.code().is_some() {
            finished.push(format!("run {run} ({point:?}) ended first: {status:?}"));
        }
    }
    assert!(finished.is_empty(), "runs not killed: {finished:#?}");
    // The work was spread over the killed runs: something was written before the end.
    let written = get(&server, "/v1/accounts?limit=1000");
    assert!(!written["items"].as_array().unwrap().is_empty());

    apply_until_converged(&server, manifests);
    assert_one_invitation_each(&server, &accounts);
    assert_eq!(invitations(&server).len(), 200 * 4);
    assert_no_change_twice(&server, &accounts[..20]);
}

#[test]
fn two_applies_at_once_end_consistent_without_a_duplicate_invitation() {
    let server = Server::start_with(&["--latency", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet");
    let accounts = write_fleet(&fleet, 40, 5);
    let manifests = fleet.to_str().unwrap();
    for _ in 0..3 {
        let mut a = apply_command(&server, manifests).spawn().unwrap();
        let mut b = apply_command(&server, manifests).spawn().unwrap();
        let a = a.wait().unwrap();
        let b = b.wait().unwrap();
        // Either may lose a race (a 412 or an account created by the other): that ends the
        // account for this run with exit 1, never a crash.
        assert!(matches!(a.code(), Some(0 | 1)), "{a:?}");
        assert!(matches!(b.code(), Some(0 | 1)), "{b:?}");
    }
    apply_until_converged(&server, manifests);
    assert_one_invitation_each(&server, &accounts);
    assert_no_change_twice(&server, &accounts);
}

#[test]
fn expired_invitations_are_resent_once_each_through_lost_answers() {
    let server = Server::start_with(&["--fault-rate", "0.3", "--fault-after-commit"]);
    apply_until_converged(&server, "examples/");
    let accounts = example_accounts();
    let invited = invited_members(&server, &accounts);
    assert_eq!(invitations(&server).len(), invited.len());

    // Two months later every invitation has expired: apply resends each one, and only once,
    // though the portal loses the answer to a share of the resends.
    let (status, body) = server.client().post(
        "/sandbox/clock",
        serde_json::json!({"now": "2027-01-26T09:00:00Z"}),
    );
    assert!(status < 300, "{status} {body}");
    let plan = server.rolecall(&["plan", "-f", "examples/"]);
    assert!(
        stdout(&plan).contains("invitation expired"),
        "{}",
        stdout(&plan)
    );
    apply_until_converged(&server, "examples/");
    let mut sent = invitations(&server);
    sent.sort();
    let mut twice: Vec<String> = invited
        .iter()
        .flat_map(|e| [e.clone(), e.clone()])
        .collect();
    twice.sort();
    assert_eq!(
        sent, twice,
        "each invited member gets the first and one resent invitation"
    );
}

#[test]
fn a_lost_answer_to_an_update_is_not_taken_for_a_conflict() {
    let server = Server::start_with(&["--fault-rate", "0.6", "--fault-after-commit"]);
    let (_dir, examples) = examples_copy();
    let ex = examples.to_str().unwrap();
    apply_until_converged(&server, ex);
    // Rename every member and contact: conditional PUTs (If-Match). The portal commits each
    // and loses most answers; the retry then meets the new etag (412), which must be
    // recognised as this write's own success, not reported as someone else's change.
    for file in [
        "accounts/acme.yaml",
        "accounts/globex.yaml",
        "accounts/initech.yaml",
    ] {
        let path = examples.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("      name: ", "      name: Renamed ")).unwrap();
    }
    let apply = server.rolecall(&["apply", "-f", ex, "--auto-approve"]);
    assert_eq!(
        apply.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&apply),
        stderr(&apply)
    );
    let plan = server.rolecall(&["plan", "-f", ex, "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stdout(&plan));
    assert_no_change_twice(&server, &example_accounts());
}

/// The portal's accounts for the kill tests: writes spread over a few, as real load is.
const KILL_ACCOUNTS: [&str; 3] = ["810001", "810002", "810003"];

/// Writes one worker makes until the portal goes away (bounded so a missed kill ends too).
const MAX_WRITES_PER_WORKER: usize = 2_000;

/// One write the portal acknowledged: a contact or a member, in an account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Acked {
    account: String,
    kind: &'static str,
    email: String,
}

/// Sends PUTs (contacts and members, alternating) from `workers` concurrent tasks until the
/// portal stops answering, and returns every write it answered with a 2xx. Runs on a private
/// runtime so that the caller can kill the portal from another thread meanwhile.
fn write_until_gone(url: &str, round: usize, workers: usize) -> Vec<Acked> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut tasks = Vec::new();
        for w in 0..workers {
            let client = client.clone();
            let url = url.to_string();
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..MAX_WRITES_PER_WORKER {
                    let account = KILL_ACCOUNTS[(w + i) % KILL_ACCOUNTS.len()];
                    let email = format!("r{round}-w{w}-{i}@kill.example");
                    let (kind, body) = if i % 2 == 0 {
                        (
                            "contacts",
                            serde_json::json!({"name": format!("Contact {i}"), "notifications": ["invoices"]}),
                        )
                    } else {
                        (
                            "members",
                            serde_json::json!({"roles": [{"name": "technical-contact"}]}),
                        )
                    };
                    let answer = client
                        .put(format!("{url}/v1/accounts/{account}/{kind}/{email}"))
                        .bearer_auth(OPERATOR_TOKEN)
                        .json(&body)
                        .send()
                        .await;
                    match answer {
                        Ok(r) if r.status().is_success() => acked.push(Acked {
                            account: account.to_string(),
                            kind,
                            email,
                        }),
                        // No injected faults here: a refusal is a bug in the test or the portal.
                        Ok(r) => panic!("PUT {kind} {email}: {}", r.status()),
                        // The portal is gone (refused or reset): this worker's load ends.
                        Err(_) => break,
                    }
                }
                acked
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    })
}

/// Every contact or member e-mail (lower-cased) in `account`, following the cursor.
fn list_all(server: &Server, account: &str, kind: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = format!("/v1/accounts/{account}/{kind}?limit=1000");
    loop {
        let page = get(server, &path);
        for item in page["items"].as_array().unwrap() {
            out.push(item["email"].as_str().unwrap().to_lowercase());
        }
        match page["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/accounts/{account}/{kind}?limit=1000&cursor={c}"),
            None => return out,
        }
    }
}

/// How often the audit log of `account` holds each `action target` (target lower-cased).
fn audit_counts(server: &Server, account: &str) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    let mut path = format!("/v1/accounts/{account}/audit?limit=1000");
    loop {
        let page = get(server, &path);
        for e in page["items"].as_array().unwrap() {
            let key = format!(
                "{} {}",
                e["action"].as_str().unwrap_or(""),
                e["target"].as_str().unwrap_or("").to_lowercase()
            );
            *seen.entry(key).or_insert(0) += 1;
        }
        match page["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/accounts/{account}/audit?limit=1000&cursor={c}"),
            None => return seen,
        }
    }
}

#[test]
fn portal_killed_mid_load_loses_no_acknowledged_write() {
    let mut server = Server::start();
    for cn in KILL_ACCOUNTS {
        let (status, body) = server.client().post(
            "/v1/accounts",
            serde_json::json!({"customerNumber": cn, "displayName": format!("Kill {cn}"), "timeZone": "Europe/Zurich"}),
        );
        assert_eq!(status, 201, "{body}");
    }

    // Kill points from early in the load to deep into it; each round restarts the portal on
    // the database the previous SIGKILL left behind.
    let mut acked: Vec<Acked> = Vec::new();
    // Each of the 8 workers has one write in flight at most, so after N answered writes at
    // least N - 8 answers have reached the load: every round has acknowledged writes to check.
    for (round, writes) in [20usize, 100, 250, 500, 900].into_iter().enumerate() {
        let url = server.url.clone();
        let load = std::thread::spawn(move || write_until_gone(&url, round, 8));
        assert!(
            wait_for(&server, 0, KillPoint::Writes(writes), || load.is_finished()),
            "round {round}: the load ended before {writes} writes"
        );
        // `Child::kill` is SIGKILL: no shutdown, no flush, no chance to finish a transaction.
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        let this_round = load.join().unwrap();
        assert!(
            !this_round.is_empty(),
            "round {round}: the portal acknowledged nothing before the kill"
        );
        acked.extend(this_round);

        let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
        server = Server::start_in(dir, &[]);

        for cn in KILL_ACCOUNTS {
            let contacts = list_all(&server, cn, "contacts");
            let members = list_all(&server, cn, "members");
            let audit = audit_counts(&server, cn);
            for a in acked.iter().filter(|a| a.account == cn) {
                let (present, action) = match a.kind {
                    "contacts" => (contacts.contains(&a.email), "contact.create"),
                    _ => (members.contains(&a.email), "member.create"),
                };
                assert!(
                    present,
                    "round {round}: acknowledged {} {} in {cn} lost by the kill",
                    a.kind, a.email
                );
                assert_eq!(
                    audit.get(&format!("{action} {}", a.email)),
                    Some(&1),
                    "round {round}: audit entries for {action} {}",
                    a.email
                );
            }
        }
    }
    assert!(
        acked.len() > 100,
        "only {} writes acknowledged",
        acked.len()
    );
    let mut unique = acked.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), acked.len());
}

#[test]
fn apply_converges_after_the_portal_is_killed_mid_apply() {
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet");
    let accounts = write_fleet(&fleet, 60, 5);
    let manifests = fleet.to_str().unwrap();

    // The portal dies under a running apply at several points; apply gives up on what it can
    // no longer reach, and the next run against the restarted portal carries on from there.
    // 60 accounts need about 660 writes: each point leaves work for the next run.
    for point in [
        KillPoint::Reads(2),
        KillPoint::Writes(30),
        KillPoint::Writes(150),
    ] {
        let mut apply = apply_command(&server, manifests).spawn().unwrap();
        let reached = wait_for(&server, 0, point, || {
            apply.try_wait().ok().flatten().is_some()
        });
        assert!(reached, "apply ended before {point:?}");
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        // Without a portal the client's retries end; never wait on them forever.
        let _ = apply.kill();
        let _ = apply.wait();
        let db = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
        server = Server::start_in(db, &[]);
    }
    apply_until_converged(&server, manifests);
    assert_one_invitation_each(&server, &accounts);
    assert_eq!(invitations(&server).len(), 60 * 4);
    assert_no_change_twice(&server, &accounts);
}
