//! The HTTP portal client against a scripted axum server on loopback: retries, backoff,
//! idempotency keys, preconditions, paging, chunked bulk reads, encoding, errors, secrecy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rolecall::portal::http::{HttpOptions, HttpPortal, Sleeper, Token};
use rolecall::portal::{
    AccountFilter, AccountPatch, ContactPut, ErrorCode, MemberPut, NewAccount, Portal, PortalError,
    RoleGrant,
};
use serde_json::{Value, json};

const SECRET: &str = "rc_live_5ecret-t0ken";

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
    /// The client's end of the connection: one per TCP connection.
    peer: std::net::SocketAddr,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn params(&self, key: &str) -> Vec<String> {
        url_pairs(&self.query)
            .into_iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v)
            .collect()
    }
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    let url = reqwest::Url::parse(&format!("http://x/?{query}")).unwrap();
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

type Script = Arc<dyn Fn(&Seen, usize) -> Response + Send + Sync>;

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Script,
}

struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    delays: Arc<Mutex<Vec<Duration>>>,
}

impl Server {
    /// Serves `script(request, index)` on 127.0.0.1 under `prefix` (the client's base path).
    async fn start(
        prefix: &str,
        script: impl Fn(&Seen, usize) -> Response + Send + Sync + 'static,
    ) -> Server {
        let shared = Shared {
            seen: Arc::default(),
            script: Arc::new(script),
        };
        let seen = shared.seen.clone();
        let app = Router::new().fallback(handle).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server {
            base: format!("http://{addr}{prefix}"),
            seen,
            delays: Arc::default(),
        }
    }

    fn options(&self) -> HttpOptions {
        HttpOptions {
            max_retries: 4,
            sleeper: recording_sleeper(&self.delays),
            ..HttpOptions::default()
        }
    }

    fn client(&self) -> HttpPortal {
        self.client_with(self.options())
    }

    fn client_with(&self, options: HttpOptions) -> HttpPortal {
        HttpPortal::new(&self.base, Token::new(SECRET, "T").unwrap(), options).unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn delays(&self) -> Vec<Duration> {
        self.delays.lock().unwrap().clone()
    }
}

/// A sleeper that records each delay and returns at once: no test waits on the clock.
fn recording_sleeper(delays: &Arc<Mutex<Vec<Duration>>>) -> Sleeper {
    let delays = delays.clone();
    Sleeper::new(move |d| {
        delays.lock().unwrap().push(d);
        std::future::ready(())
    })
}

/// A loopback address where nothing listens.
fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let axum::extract::ConnectInfo(peer) = *parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .unwrap();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts.headers,
        body: body.to_vec(),
        peer,
    };
    let index = {
        let mut all = shared.seen.lock().unwrap();
        all.push(seen.clone());
        all.len() - 1
    };
    let response = (shared.script)(&seen, index);
    if response.headers().contains_key(STALL) {
        // Never answer in time: the client's request timeout must fire.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    response
}

/// A response header that makes the test server hold its answer back.
const STALL: &str = "x-test-stall";

fn ok(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

fn status(code: u16) -> Response {
    (StatusCode::from_u16(code).unwrap(), "nope").into_response()
}

fn problem(code: u16, word: &str, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank", "title": "refused", "status": code, "detail": detail,
        "code": word, "errors": [{"field": "roles[0]", "message": "no such role"}],
    });
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/problem+json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn account(cn: &str) -> Value {
    json!({"customerNumber": cn, "displayName": format!("Account {cn}"),
           "timeZone": "Europe/Berlin", "etag": "\"a1\""})
}

fn member(cn: &str, email: &str) -> Value {
    json!({"customerNumber": cn, "email": email, "name": null, "userLinked": true,
           "roles": [{"name": "customer-admin", "until": null}], "services": "all",
           "notifications": [], "invitation": null, "etag": "\"m1\""})
}

fn invitation() -> Value {
    json!({"id": "inv-1", "status": "pending", "sentAt": "2026-11-01T10:00:00Z",
           "expiresAt": "2026-11-08T10:00:00Z"})
}

fn whoami() -> Value {
    json!({"email": "ops@provider.example", "kind": "operator"})
}

fn member_put() -> MemberPut {
    MemberPut {
        name: Some("Ann".into()),
        roles: vec![RoleGrant {
            name: "customer-admin".into(),
            until: None,
        }],
        services: None,
        notifications: None,
    }
}

#[tokio::test]
async fn retries_503_then_succeeds() {
    let server = Server::start("/", |_, i| if i < 2 { status(503) } else { ok(whoami()) }).await;
    let portal = server.client();
    let me = portal.whoami().await.unwrap();
    assert_eq!(me.email.as_deref(), Some("ops@provider.example"));
    assert_eq!(portal.requests(), 3);
    assert_eq!(server.seen().len(), 3);
    assert_eq!(server.delays().len(), 2);
}

#[tokio::test]
async fn retries_a_request_that_timed_out() {
    let server = Server::start("/", |_, i| {
        let mut response = ok(whoami());
        if i == 0 {
            response
                .headers_mut()
                .insert(STALL, HeaderValue::from_static("1"));
        }
        response
    })
    .await;
    let portal = server.client_with(HttpOptions {
        request_timeout: Duration::from_millis(500),
        ..server.options()
    });
    portal.whoami().await.unwrap();
    assert_eq!(portal.requests(), 2);

    let stalled = Server::start("/", |_, _| {
        let mut response = ok(whoami());
        response
            .headers_mut()
            .insert(STALL, HeaderValue::from_static("1"));
        response
    })
    .await;
    let portal = stalled.client_with(HttpOptions {
        request_timeout: Duration::from_millis(50),
        max_retries: 1,
        ..stalled.options()
    });
    let err = portal.whoami().await.unwrap_err();
    let PortalError::Unreachable(sentence) = &err else {
        panic!("{err:?}")
    };
    assert!(
        sentence.starts_with("GET /v1/whoami on http://127.0.0.1:"),
        "{sentence}"
    );
    assert!(
        sentence.ends_with("got no complete answer within 0.05 s"),
        "{sentence}"
    );
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let server = Server::start("/", |_, i| {
        if i == 0 {
            Response::builder()
                .status(429)
                .header(header::RETRY_AFTER, "1")
                .body(Body::from("slow down"))
                .unwrap()
        } else {
            ok(whoami())
        }
    })
    .await;
    let portal = server.client();
    portal.whoami().await.unwrap();
    assert_eq!(portal.requests(), 2);
    assert_eq!(server.delays(), vec![Duration::from_secs(1)]);
}

#[tokio::test]
async fn caps_retry_after() {
    let server = Server::start("/", |_, i| {
        if i == 0 {
            Response::builder()
                .status(503)
                .header(header::RETRY_AFTER, "86400")
                .body(Body::empty())
                .unwrap()
        } else {
            ok(whoami())
        }
    })
    .await;
    server.client().whoami().await.unwrap();
    assert_eq!(server.delays(), vec![Duration::from_secs(60)]);
}

#[tokio::test]
async fn gives_up_after_max_retries_with_unavailable() {
    let server = Server::start("/", |_, _| status(502)).await;
    let portal = server.client();
    let err = portal.catalog().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unavailable), "{err}");
    assert_eq!(portal.requests(), 5, "the first attempt and 4 retries");
    let text = err.to_string();
    assert!(
        text.contains("GET /v1/catalog") && text.contains("502"),
        "{text}"
    );
}

#[tokio::test]
async fn keeps_the_idempotency_key_on_every_retry_of_a_post() {
    let server = Server::start("/", |_, i| match i {
        0 => status(503),
        1 => status(500),
        _ => (StatusCode::CREATED, axum::Json(account("1001"))).into_response(),
    })
    .await;
    let portal = server.client();
    let new = NewAccount {
        customer_number: "1001".into(),
        display_name: "Account 1001".into(),
        time_zone: "Europe/Berlin".into(),
    };
    let created = portal.create_account(&new, "key-7f3a").await.unwrap();
    assert_eq!(created.customer_number, "1001");
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.method, "POST");
        assert_eq!(s.path, "/v1/accounts");
        assert_eq!(s.header("idempotency-key"), Some("key-7f3a"));
        assert_eq!(s.header("content-type"), Some("application/json"));
        let body: Value = serde_json::from_slice(&s.body).unwrap();
        assert_eq!(body["customerNumber"], "1001");
    }
}

#[tokio::test]
async fn invites_with_a_key_and_accepts_200_and_201() {
    let server = Server::start("/", |_, i| {
        let code = if i == 0 {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        (code, axum::Json(invitation())).into_response()
    })
    .await;
    let portal = server.client();
    portal
        .invite("1001", "ann@x.example", false, "k1")
        .await
        .unwrap();
    portal
        .invite("1001", "ann@x.example", true, "k2")
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(
        seen[0].path,
        "/v1/accounts/1001/members/ann%40x.example/invitation"
    );
    assert_eq!(seen[0].query, "");
    assert_eq!(seen[0].header("idempotency-key"), Some("k1"));
    assert_eq!(seen[1].params("resend"), vec!["true"]);
    assert_eq!(seen[1].header("idempotency-key"), Some("k2"));
}

#[tokio::test]
async fn sends_if_match_verbatim_and_only_when_given() {
    let server = Server::start("/", |s, _| match s.method.as_str() {
        "PUT" => ok(member("1001", "ann@x.example")),
        "PATCH" => ok(account("1001")),
        _ => StatusCode::NO_CONTENT.into_response(),
    })
    .await;
    let portal = server.client();
    portal
        .put_member("1001", "ann@x.example", &member_put(), Some("W/\"m-41\""))
        .await
        .unwrap();
    portal
        .put_contact(
            "1001",
            "billing@x.example",
            &ContactPut {
                name: "Billing".into(),
                notifications: vec!["invoice".into()],
            },
            None,
        )
        .await
        .unwrap_err(); // 204 without a body is not a contact
    portal
        .update_account(
            "1001",
            &AccountPatch {
                display_name: Some("New".into()),
                time_zone: None,
            },
            Some("\"a1\""),
        )
        .await
        .unwrap();
    portal
        .delete_member("1001", "bob@x.example", Some("\"m9\""))
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].header("if-match"), Some("W/\"m-41\""));
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["roles"][0]["name"], "customer-admin");
    assert_eq!(seen[1].header("if-match"), None);
    assert_eq!(seen[2].method, "PATCH");
    assert_eq!(seen[2].header("if-match"), Some("\"a1\""));
    assert_eq!(seen[3].method, "DELETE");
    assert_eq!(seen[3].header("if-match"), Some("\"m9\""));
}

#[tokio::test]
async fn follows_pages_to_the_end() {
    let server = Server::start("/", |s, _| {
        let cursor = s.params("cursor");
        let (items, next) = match cursor.first().map(String::as_str) {
            None => (vec![account("1"), account("2")], json!("c1")),
            Some("c1") => (vec![account("3")], json!("c2")),
            Some("c2") => (vec![account("4")], Value::Null),
            Some(other) => panic!("unexpected cursor {other}"),
        };
        ok(json!({"items": items, "nextCursor": next}))
    })
    .await;
    let portal = server.client();
    let accounts = portal.list_accounts().await.unwrap();
    let numbers: Vec<_> = accounts
        .iter()
        .map(|a| a.customer_number.as_str())
        .collect();
    assert_eq!(numbers, ["1", "2", "3", "4"]);
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.path, "/v1/accounts");
        assert_eq!(s.params("limit"), vec!["1000"]);
    }
}

#[tokio::test]
async fn reads_large_sets_in_pages_of_1000_over_one_connection() {
    const MEMBERS: usize = 3500;
    let server = Server::start("/", |s, _| {
        let limit: usize = s.params("limit")[0].parse().unwrap();
        let start: usize = s.params("cursor").first().map_or(0, |c| c.parse().unwrap());
        let end = (start + limit).min(MEMBERS);
        let items: Vec<Value> = (start..end)
            .map(|n| member(&format!("{:05}", n / 10), &format!("m{n}@x.example")))
            .collect();
        let next = (end < MEMBERS).then(|| end.to_string());
        ok(json!({"items": items, "nextCursor": next}))
    })
    .await;
    let portal = server.client();
    let members = portal.list_members(&AccountFilter::All).await.unwrap();
    assert_eq!(members.len(), MEMBERS);
    assert_eq!(
        members[MEMBERS - 1].email,
        format!("m{}@x.example", MEMBERS - 1)
    );
    assert_eq!(
        portal.requests(),
        4,
        "requests = objects / 1000, rounded up"
    );
    for _ in 0..10 {
        portal.list_members(&AccountFilter::All).await.unwrap();
    }
    let peers: std::collections::HashSet<_> = server.seen().iter().map(|s| s.peer).collect();
    assert_eq!(peers.len(), 1, "sequential requests reuse one connection");
}

#[tokio::test]
async fn chunks_account_parameters_of_bulk_reads() {
    let server = Server::start("/", |s, _| {
        let items: Vec<Value> = s
            .params("account")
            .iter()
            .map(|cn| member(cn, "ann@x.example"))
            .collect();
        ok(json!({"items": items, "nextCursor": null}))
    })
    .await;
    let portal = server.client();
    let numbers: Vec<String> = (0..450).map(|n| format!("{n:05}")).collect();
    let members = portal
        .list_members(&AccountFilter::Only(numbers.clone()))
        .await
        .unwrap();
    let got: Vec<String> = members
        .iter()
        .map(|m| m.customer_number.clone().unwrap())
        .collect();
    assert_eq!(got, numbers);
    let seen = server.seen();
    let sizes: Vec<usize> = seen.iter().map(|s| s.params("account").len()).collect();
    assert_eq!(sizes, [200, 200, 50]);
    assert!(seen.iter().all(|s| s.path == "/v1/members"));

    let contacts = portal.list_contacts(&AccountFilter::All).await.unwrap();
    assert!(contacts.is_empty());
    let all = &server.seen()[3];
    assert_eq!(all.path, "/v1/contacts");
    assert_eq!(all.query, "limit=1000");

    let before = portal.requests();
    let none = portal
        .list_members(&AccountFilter::Only(Vec::new()))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(portal.requests(), before, "no account, no request");
}

#[tokio::test]
async fn percent_encodes_path_segments_under_a_prefix() {
    let server = Server::start("/portal/", |_, _| ok(member("10/01", "a+b@x.example"))).await;
    let portal = server.client();
    portal
        .put_member("10/01", "a+b@x.example", &member_put(), None)
        .await
        .unwrap();
    portal.get_account("10 01").await.unwrap_err();
    let seen = server.seen();
    assert_eq!(
        seen[0].path,
        "/portal/v1/accounts/10%2F01/members/a%2Bb%40x.example"
    );
    assert_eq!(seen[1].path, "/portal/v1/accounts/10%2001");
}

#[tokio::test]
async fn parses_problem_documents_into_error_codes() {
    let server = Server::start("/", |s, _| {
        if s.path.ends_with("/invitation") {
            problem(409, "already_linked", "ann@x.example already has a login")
        } else {
            problem(
                422,
                "unknown_role",
                "the role \"root\" is not in the catalog",
            )
        }
    })
    .await;
    let portal = server.client();
    let err = portal
        .put_member("1001", "ann@x.example", &member_put(), None)
        .await
        .unwrap_err();
    match &err {
        PortalError::Problem {
            status,
            code,
            detail,
            errors,
        } => {
            assert_eq!(*status, 422);
            assert_eq!(*code, ErrorCode::UnknownRole);
            assert_eq!(detail, "the role \"root\" is not in the catalog");
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].field, "roles[0]");
        }
        other => panic!("{other:?}"),
    }
    let err = portal
        .invite("1001", "ann@x.example", false, "k")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AlreadyLinked));
    assert_eq!(portal.requests(), 2, "4xx answers are not retried");
}

#[tokio::test]
async fn get_account_404_is_not_found() {
    let server = Server::start("/", |_, _| status(404)).await;
    let portal = server.client();
    let err = portal.get_account("9999").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    assert!(err.to_string().contains("GET /v1/accounts/9999"), "{err}");
    assert_eq!(portal.requests(), 1);
}

#[tokio::test]
async fn deletes_are_idempotent_on_404() {
    let server = Server::start("/", |_, _| problem(404, "not_found", "no such member")).await;
    let portal = server.client();
    portal
        .delete_member("1001", "ann@x.example", Some("\"m1\""))
        .await
        .unwrap();
    portal
        .delete_contact("1001", "billing@x.example", None)
        .await
        .unwrap();
    portal
        .cancel_invitation("1001", "ann@x.example")
        .await
        .unwrap();
    let paths: Vec<_> = server
        .seen()
        .into_iter()
        .map(|s| s.method + " " + &s.path)
        .collect();
    assert_eq!(
        paths,
        [
            "DELETE /v1/accounts/1001/members/ann%40x.example",
            "DELETE /v1/accounts/1001/contacts/billing%40x.example",
            "DELETE /v1/accounts/1001/members/ann%40x.example/invitation",
        ]
    );
}

#[tokio::test]
async fn a_412_is_a_version_conflict_and_not_retried() {
    let server = Server::start("/", |s, _| {
        if s.path.contains("contacts") {
            status(412)
        } else {
            problem(412, "version_conflict", "the member changed")
        }
    })
    .await;
    let portal = server.client();
    let err = portal
        .delete_member("1001", "ann@x.example", Some("\"old\""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::VersionConflict));
    let err = portal
        .delete_contact("1001", "b@x.example", Some("\"old\""))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::VersionConflict),
        "a bare 412 too"
    );
    assert_eq!(portal.requests(), 2);
    assert!(server.delays().is_empty());
}

#[tokio::test]
async fn an_undecodable_body_is_a_protocol_error() {
    let server = Server::start("/", |_, _| ok(json!({"items": "no"}))).await;
    let err = server.client().list_accounts().await.unwrap_err();
    assert!(matches!(err, PortalError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn sends_the_bearer_token() {
    let server = Server::start("/", |_, _| ok(whoami())).await;
    server.client().whoami().await.unwrap();
    let seen = server.seen();
    let expected = format!("Bearer {SECRET}");
    assert_eq!(seen[0].header("authorization"), Some(expected.as_str()));
    assert!(
        seen[0]
            .header("user-agent")
            .unwrap()
            .starts_with("rolecall/")
    );
}

#[tokio::test]
async fn an_unreachable_portal_is_named_and_retried() {
    let addr = closed_port();
    let delays = Arc::default();
    let options = HttpOptions {
        max_retries: 2,
        sleeper: recording_sleeper(&delays),
        ..HttpOptions::default()
    };
    let portal = HttpPortal::new(
        &format!("http://{addr}/"),
        Token::new(SECRET, "T").unwrap(),
        options,
    )
    .unwrap();
    let err = portal.whoami().await.unwrap_err();
    let PortalError::Unreachable(sentence) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        sentence,
        &format!("cannot connect to http://{addr}: connection refused")
    );
    assert_eq!(portal.requests(), 3);
    assert_eq!(delays.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn the_token_never_appears_in_errors_or_debug() {
    let server = Server::start("/", |s, _| match s.path.as_str() {
        "/v1/whoami" => status(401),
        "/v1/catalog" => status(500),
        "/v1/accounts" => ok(json!({"items": 3})),
        "/v1/accounts/1001" => problem(403, "forbidden", "not yours"),
        _ => Response::builder()
            .status(302)
            .header(
                header::LOCATION,
                HeaderValue::from_static("http://127.0.0.1:1/"),
            )
            .body(Body::empty())
            .unwrap(),
    })
    .await;
    let portal = server.client();
    let mut errors = vec![
        portal.whoami().await.unwrap_err(),
        portal.catalog().await.unwrap_err(),
        portal.list_accounts().await.unwrap_err(),
        portal.get_account("1001").await.unwrap_err(),
        portal.audit("1001").await.unwrap_err(),
    ];
    assert_eq!(errors[0].code(), Some(ErrorCode::Unauthenticated));
    assert!(
        errors[0].to_string().contains("ROLECALL_TOKEN"),
        "{}",
        errors[0]
    );
    assert_eq!(errors[3].code(), Some(ErrorCode::Forbidden));

    let addr = closed_port();
    let unreachable = HttpPortal::new(
        &format!("http://{addr}"),
        Token::new(SECRET, "T").unwrap(),
        HttpOptions {
            max_retries: 0,
            ..HttpOptions::default()
        },
    )
    .unwrap();
    errors.push(unreachable.whoami().await.unwrap_err());

    let setup = HttpPortal::new(
        "https://portal.example.net",
        Token::new(SECRET, "T").unwrap(),
        HttpOptions {
            ca_file: Some("tests/fixtures/tls/missing.pem".into()),
            ..HttpOptions::default()
        },
    )
    .unwrap_err();

    let mut text = format!("{portal:?}\n{portal:#?}\n{unreachable:?}\n{setup}\n{setup:?}\n");
    for err in &errors {
        text.push_str(&format!("{err}\n{err:?}\n{err:#?}\n"));
    }
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("Token(***)"));
}

/// A one-answer-per-connection HTTPS server on 127.0.0.1 with the test certificate; a plain
/// thread with rustls, so no TLS server stack is needed.
fn start_tls_server(connections: usize) -> std::net::SocketAddr {
    use std::io::{Read, Write};

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
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for tcp in listener.incoming().take(connections) {
            let Ok(tcp) = tcp else { continue };
            let connection = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut stream = rustls::StreamOwned::new(connection, tcp);
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            if request.is_empty() {
                continue; // the client refused the certificate
            }
            let body = whoami().to_string();
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
            let _ = stream.flush();
            stream.conn.send_close_notify();
            let _ = stream.flush();
        }
    });
    addr
}

fn tls_client(addr: std::net::SocketAddr, ca: &str) -> HttpPortal {
    let options = HttpOptions {
        ca_file: Some(format!("tests/fixtures/tls/{ca}").into()),
        max_retries: 3,
        sleeper: Sleeper::new(|_| std::future::ready(())),
        ..HttpOptions::default()
    };
    HttpPortal::new(
        &format!("https://{addr}/"),
        Token::new(SECRET, "T").unwrap(),
        options,
    )
    .unwrap()
}

#[tokio::test]
async fn trusts_the_ca_file_and_verifies_certificates() {
    let addr = start_tls_server(2);

    let trusted = tls_client(addr, "ca.pem");
    let me = trusted.whoami().await.unwrap();
    assert_eq!(me.email.as_deref(), Some("ops@provider.example"));

    let untrusted = tls_client(addr, "other-ca.pem");
    let err = untrusted.whoami().await.unwrap_err();
    let PortalError::Unreachable(sentence) = &err else {
        panic!("{err:?}")
    };
    assert!(
        sentence.starts_with(&format!(
            "cannot connect to https://{addr}: its TLS certificate could not be verified"
        )),
        "{sentence}"
    );
    assert!(sentence.contains("--ca-file"), "{sentence}");
    assert_eq!(
        untrusted.requests(),
        1,
        "a certificate failure is not retried"
    );
    assert!(!format!("{err:?}").contains(SECRET));
}
