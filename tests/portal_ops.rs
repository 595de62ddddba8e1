//! Operations of `rolecall portal serve`: rate limits, injected faults, latency, the request
//! log, start-up and shutdown, and durability across `kill -9`.

mod portal_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use portal_support::{OP, Server, admin_roles};
use serde_json::json;

#[tokio::test]
async fn past_the_rate_limit_answers_429_with_retry_after_per_token() {
    let s = Server::start(&["--rate-limit", "2"]).await;
    let user = s.token("u@example.com").await;
    let mut limited = None;
    for _ in 0..20 {
        let r = s.op_get("/v1/whoami").await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 200);
    }
    let r = limited.expect("20 requests in a row never hit a limit of 2 per second");
    assert_eq!(r.code(), "rate_limited");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(wait >= 1);
    // Another token has its own bucket.
    assert_eq!(s.get("/v1/whoami", Some(&user)).await.status, 200);
}

#[tokio::test]
async fn a_fault_before_the_write_changes_nothing() {
    let s = Server::start(&["--fault-rate", "1"]).await;
    let r = s
        .op(
            "POST",
            "/v1/accounts",
            json!({"customerNumber": "100", "displayName": "A", "timeZone": "UTC"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (503, "unavailable"));
    assert_eq!(s.op_get("/v1/accounts/100").await.status, 404);
    // Reads are never faulted.
    assert_eq!(s.op_get("/v1/accounts").await.status, 200);
}

#[tokio::test]
async fn a_fault_after_the_commit_hides_a_change_that_happened() {
    let s = Server::start(&["--fault-rate", "1.0", "--fault-after-commit"]).await;
    let r = s
        .call(
            "POST",
            "/v1/accounts",
            Some(OP),
            Some(json!({"customerNumber": "100", "displayName": "A", "timeZone": "UTC"})),
            &[("idempotency-key", "create-100")],
        )
        .await;
    assert_eq!((r.status, r.code()), (503, "unavailable"));
    assert_eq!(
        s.op_get("/v1/accounts/100").await.status,
        200,
        "the change was made"
    );
    let r = s.put_member("100", "a@example.com", admin_roles()).await;
    assert_eq!(r.status, 503);
    let m = s.op_get("/v1/accounts/100/members/a%40example.com").await;
    assert_eq!(m.body["roles"].as_array().unwrap().len(), 2);
    // Refusals are not turned into faults: the client must hear them.
    let r = s
        .put_member("100", "a@example.com", json!([{"name": "nope"}]))
        .await;
    assert_eq!(r.code(), "unknown_role");
}

#[tokio::test]
async fn an_acknowledged_write_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let mut s = Server::start_on(&db, &[]).await;
    s.set_clock("2026-03-01T10:00:00Z").await;
    s.account("100", "Europe/Zurich").await;
    let member = s
        .put_member(
            "100",
            "a@example.com",
            json!([{"name": "cockpit-access", "until": "2026-12-31"}]),
        )
        .await;
    assert_eq!(member.status, 201);
    let contact = s
        .op(
            "PUT",
            "/v1/accounts/100/contacts/c%40example.com",
            json!({"name": "C", "notifications": ["general"]}),
        )
        .await;
    let inv = s
        .call(
            "POST",
            "/v1/accounts/100/members/a%40example.com/invitation",
            Some(OP),
            None,
            &[],
        )
        .await;
    let user = s.token("a@example.com").await;
    s.kill();

    let s = Server::start_on(&db, &[]).await;
    let m = s.op_get("/v1/accounts/100/members/a%40example.com").await;
    assert_eq!(m.status, 200);
    assert_eq!(m.body["roles"], member.body["roles"]);
    assert_eq!(m.body["invitation"]["id"], inv.body["id"]);
    let c = s.op_get("/v1/contacts").await;
    assert_eq!(c.body["items"][0]["etag"], contact.body["etag"]);
    assert_eq!(
        s.op_get("/sandbox/clock").await.body["now"],
        "2026-03-01T10:00:00Z"
    );
    assert_eq!(
        s.get("/v1/whoami", Some(&user)).await.body["email"],
        "a@example.com"
    );
    assert_eq!(s.outbox().await.len(), 1);
}

#[tokio::test]
async fn sigterm_shuts_the_portal_down_cleanly() {
    let mut s = Server::start(&[]).await;
    assert_eq!(s.op_get("/v1/whoami").await.status, 200);
    let status = Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(s.wait().success());
}

#[tokio::test]
async fn every_request_is_logged_without_tokens_or_query_strings() {
    let s = Server::start(&["--latency", "5"]).await;
    let user = s.token("u@example.com").await;
    s.get("/v1/whoami", Some(&user)).await;
    s.op_get("/v1/members?limit=5&cursor=zz").await;
    s.get("/v1/accounts", Some("wrong-token")).await;
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(
        log.lines()
            .any(|l| l.starts_with("GET /v1/whoami 200 ") && l.ends_with("ms")),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.starts_with("GET /v1/members 422 ")),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.starts_with("GET /v1/accounts 401 ")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with("POST /sandbox/tokens 201 ")),
        "{log}"
    );
    for secret in [OP, user.as_str(), "wrong-token", "cursor"] {
        assert!(!log.contains(secret), "the log shows {secret:?}");
    }
}

/// Starts the portal by hand, with the environment given, and returns its first stdout lines.
fn start_raw(
    db: &std::path::Path,
    envs: &[(&str, &str)],
    lines: usize,
) -> (std::process::Child, Vec<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rolecall"));
    cmd.args(["portal", "serve", "--db"])
        .arg(db)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("ROLECALL_SANDBOX_TOKEN")
        .env_remove("ROLECALL_NOW")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut got = Vec::new();
    for _ in 0..lines {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        got.push(line.trim().to_string());
    }
    (child, got)
}

#[tokio::test]
async fn without_a_configured_token_one_is_generated_and_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines) = start_raw(
        &dir.path().join("p.db"),
        &[("ROLECALL_NOW", "2026-05-01T08:00:00Z")],
        2,
    );
    let base = lines[0]
        .strip_prefix("rolecall portal listening on ")
        .unwrap()
        .to_string();
    let token = lines[1]
        .strip_prefix("operator token: ")
        .unwrap()
        .to_string();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let who: serde_json::Value = client
        .get(format!("{base}/v1/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["kind"], "operator");
    // The clock starts at ROLECALL_NOW.
    let clock: serde_json::Value = client
        .get(format!("{base}/sandbox/clock"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(clock["now"], "2026-05-01T08:00:00Z");
    let _ = child.kill();
    let _ = child.wait();
    // The token is stored only as a hash.
    let bytes = std::fs::read(dir.path().join("p.db")).unwrap_or_default();
    let wal = std::fs::read(dir.path().join("p.db-wal")).unwrap_or_default();
    let needle = token.as_bytes();
    for file in [bytes, wal] {
        assert!(!file.windows(needle.len()).any(|w| w == needle));
    }
}
