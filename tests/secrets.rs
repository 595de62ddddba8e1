//! Secrets (SPEC §3 and §7, issue 7): the token never leaves the process in any output, log,
//! plan file or `Debug` text; TLS certificates are verified unless a CA is named; the reference
//! portal keeps only hashes of tokens.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;

use common::*;

/// What must never be seen: the whole token and any long piece of it.
fn leaks(text: &str, token: &str) -> bool {
    let bytes = token.as_bytes();
    text.contains(token)
        || bytes
            .windows(12)
            .any(|w| text.contains(std::str::from_utf8(w).unwrap()))
}

/// Every file under `dir`, as text.
fn files_text(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.push_str(&files_text(&p));
        } else {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
        }
    }
    out
}

#[test]
fn the_token_never_appears_in_output_logs_or_plan_files() {
    let server = Server::start_in_with_env(
        tempfile::tempdir().unwrap(),
        &["--fault-rate", "0.2"],
        &[("RUST_LOG", "trace"), ("RUST_BACKTRACE", "1")],
    );
    let work = tempfile::tempdir().unwrap();
    let planfile = work.path().join("plan.json");
    let exported = work.path().join("exported");
    let run = |args: &[&str], token: &str| {
        std::process::Command::new(bin())
            .args(args)
            .env("ROLECALL_PORTAL", &server.url)
            .env("ROLECALL_TOKEN", token)
            .env("ROLECALL_NOW", NOW)
            .env("RUST_LOG", "trace")
            .env("RUST_BACKTRACE", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let mut seen = String::new();
    let mut record = |o: &std::process::Output| {
        seen.push_str(&stdout(o));
        seen.push_str(&stderr(o));
    };
    let p = planfile.to_str().unwrap();
    let e = exported.to_str().unwrap();
    for args in [
        &["validate", "-f", "examples/"][..],
        &["plan", "-f", "examples/", "--out", p],
        &["plan", "-f", "examples/", "--output", "json"],
        &["plan", "-f", "examples/", "--output", "markdown"],
        &["diff", "-f", "examples/"],
        &["apply", p],
        &["apply", "-f", "examples/", "--auto-approve"],
        &["apply", "-f", "examples/", "--auto-approve"],
        &["export", "--out-dir", e],
        &["plan", "-f", "examples/", "--detailed-exitcode"],
    ] {
        record(&run(args, OPERATOR_TOKEN));
    }
    // Errors: a portal that refuses the token, and one that is not there.
    let wrong = "wrong-token-0123456789abcdef";
    let refused = run(&["plan", "-f", "examples/"], wrong);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("401") || stderr(&refused).contains("token"));
    assert!(!leaks(&stdout(&refused), wrong) && !leaks(&stderr(&refused), wrong));
    record(&refused);
    let nowhere = run(
        &["plan", "-f", "examples/", "--portal", "http://127.0.0.1:9"],
        OPERATOR_TOKEN,
    );
    assert_eq!(nowhere.status.code(), Some(1));
    record(&nowhere);

    // The runs really did the work (so their outputs are worth searching).
    assert!(seen.contains("Apply complete"), "{seen}");
    assert!(
        std::fs::read_to_string(&planfile)
            .unwrap()
            .contains("formatVersion")
    );
    assert!(exported.is_dir());

    assert!(
        !leaks(&seen, OPERATOR_TOKEN),
        "the token is in the output:\n{seen}"
    );
    assert!(
        !leaks(&files_text(work.path()), OPERATOR_TOKEN),
        "the token is in a file"
    );
    drop(server.client().get("/v1/whoami"));
    let log = server.log_lines().join("\n");
    assert!(
        log.contains("/v1/accounts"),
        "the server logged nothing: {log}"
    );
    assert!(
        !leaks(&log, OPERATOR_TOKEN),
        "the token is in the server log:\n{log}"
    );
    assert!(!leaks(&log, wrong), "a refused token is in the server log");
}

#[test]
fn debug_output_hides_tokens() {
    let secret = "debug-secret-token-5b1e77";
    let token = rolecall::portal::http::Token::new(secret, "ROLECALL_TOKEN").unwrap();
    let text = format!("{token:?} {token:#?}");
    assert!(!leaks(&text, secret), "{text}");
}

#[test]
fn the_portal_stores_only_hashes_of_tokens() {
    let server = Server::start();
    let (status, issued) = server.client().post(
        "/sandbox/tokens",
        serde_json::json!({"email": "alice@acme.example"}),
    );
    assert!(status < 300, "{status} {issued}");
    let user_token = issued["token"].as_str().unwrap().to_string();
    let (status, _) = server
        .client()
        .post("/sandbox/tokens", serde_json::json!({"operator": true}));
    assert!(status < 300);
    // Both tokens work, so the portal knows them.
    assert_eq!(server.client().get("/v1/whoami")["kind"], "operator");
    let user = Api {
        base: server.url.clone(),
        token: user_token.clone(),
    };
    assert_eq!(user.get("/v1/whoami")["email"], "alice@acme.example");

    let db = server.dir.path().join("portal.db");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(tables.iter().any(|t| t.contains("token")), "{tables:?}");
    let mut cells = 0;
    for table in &tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..columns {
                let text = match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        String::from_utf8_lossy(b).into_owned()
                    }
                    _ => continue,
                };
                cells += 1;
                for secret in [OPERATOR_TOKEN, user_token.as_str()] {
                    assert!(
                        !leaks(&text, secret),
                        "{table} holds a token in clear: {text}"
                    );
                }
            }
        }
    }
    assert!(cells > 0);
    // Nor anywhere in the database files, free pages and write-ahead log included (the last
    // two exist only at times; the database itself always).
    assert!(server.dir.path().join("portal.db").exists());
    for name in ["portal.db", "portal.db-wal", "portal.db-journal"] {
        if let Ok(bytes) = std::fs::read(server.dir.path().join(name)) {
            let text = String::from_utf8_lossy(&bytes);
            for secret in [OPERATOR_TOKEN, user_token.as_str()] {
                assert!(!text.contains(secret), "{name} holds a token in clear");
            }
        }
    }
}

// --- TLS ---------------------------------------------------------------------------------------

/// A TLS front for the reference portal with the test certificate (signed by
/// `tests/fixtures/tls/ca.pem` for 127.0.0.1): one request per connection, passed on to the
/// plain-HTTP portal.
fn start_tls_front(backend: &str) -> SocketAddr {
    let backend = backend.trim_start_matches("http://").to_string();
    let cert =
        rustls::pki_types::CertificateDer::from(include_bytes!("fixtures/tls/server.der").to_vec());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
        include_bytes!("fixtures/tls/server.key.der")
            .to_vec()
            .into(),
    );
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let config = config.clone();
            let backend = backend.clone();
            std::thread::spawn(move || pass_one_request(tcp, config, &backend));
        }
    });
    addr
}

fn pass_one_request(tcp: TcpStream, config: Arc<rustls::ServerConfig>, backend: &str) {
    let Ok(connection) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => return, // e.g. the client refused the certificate
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let l = l.to_ascii_lowercase();
            l.strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let mut request: String = head
        .trim_end()
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    request.push_str("\r\nconnection: close\r\n\r\n");
    let Ok(mut upstream) = TcpStream::connect(backend) else {
        return;
    };
    let _ = upstream.write_all(request.as_bytes());
    let _ = upstream.write_all(&buf[head_end..]);
    let mut answer = Vec::new();
    let _ = upstream.read_to_end(&mut answer);
    let _ = tls.write_all(&answer);
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

#[test]
fn tls_is_verified_by_default_and_a_ca_file_is_trusted() {
    let server = Server::start();
    let front = start_tls_front(&server.url);
    let url = format!("https://{front}");

    // No CA named: the private certificate is refused, in a sentence that says what to do.
    let refused = server.rolecall(&["plan", "-f", "examples/", "--portal", &url]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    let err = stderr(&refused);
    assert!(err.contains(&format!("cannot connect to {url}")), "{err}");
    assert!(
        err.contains("TLS certificate could not be verified"),
        "{err}"
    );
    assert!(err.contains("--ca-file"), "{err}");
    assert!(stdout(&refused).is_empty(), "{}", stdout(&refused));

    // Another CA does not help.
    let other = server.rolecall(&[
        "plan",
        "-f",
        "examples/",
        "--portal",
        &url,
        "--ca-file",
        "tests/fixtures/tls/other-ca.pem",
    ]);
    assert_eq!(other.status.code(), Some(1));
    assert!(
        stderr(&other).contains("could not be verified"),
        "{}",
        stderr(&other)
    );

    // Nothing went through.
    let accounts = server.client().get("/v1/accounts");
    assert_eq!(accounts["items"], serde_json::json!([]));

    // The right CA: plan, apply of the saved plan and a replan work over TLS.
    let ca = ["--portal", &url, "--ca-file", "tests/fixtures/tls/ca.pem"];
    let dir = tempfile::tempdir().unwrap();
    let planfile = dir.path().join("plan.json");
    let planfile = planfile.to_str().unwrap();
    let plan = server.rolecall(
        &[
            &[
                "plan",
                "-f",
                "examples/",
                "--detailed-exitcode",
                "--out",
                planfile,
            ][..],
            &ca,
        ]
        .concat(),
    );
    assert_eq!(plan.status.code(), Some(2), "{}", stderr(&plan));
    // A saved plan names its portal, but not the CA: without --ca-file it is refused too.
    let unverified = server.rolecall(&["apply", planfile, "--portal", &url]);
    assert_eq!(unverified.status.code(), Some(1), "{}", stdout(&unverified));
    assert!(
        stderr(&unverified).contains("could not be verified"),
        "{}",
        stderr(&unverified)
    );
    let apply = server.rolecall(&[&["apply", planfile][..], &ca].concat());
    assert_eq!(
        apply.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&apply),
        stderr(&apply)
    );
    let again =
        server.rolecall(&[&["plan", "-f", "examples/", "--detailed-exitcode"][..], &ca].concat());
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}
