//! What the fuzz targets (`fuzz/`, cargo-fuzz) and their regression test
//! (`tests/fuzz_regressions.rs`) call: one function per target, taking arbitrary bytes and
//! panicking only when it finds a bug — a panic of the code under test, or a broken property
//! (a differential mismatch, a 5xx answer, a secret in a message). Not an API: thin wrappers
//! over the library, hidden from its documentation. `docs/fuzzing.md` says how to run them.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::manifest::{self, SourceFile};
use crate::plan::{self, Context, ObservedAccount, Operation, PlanDocument};
use crate::portal::whmcs::{Credentials, MemoryInvitations, WhmcsOptions, WhmcsPortal};
use crate::portal::{
    Account, Member, MemberPut, NewAccount, PrincipalKind, RoleGrant, Services, Whoami,
};
use crate::reconcile::check_preconditions;
use crate::reference::server::handlers::{self as h, PathParams};
use crate::reference::server::{App, Config};
use crate::reference::store::{Principal, Store, reference_catalog};

/// The instant every target runs at: inputs decide everything else.
fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_795_683_600).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// `manifest`: a file of any bytes. The fast YAML reader either declines it or reads exactly
/// what serde-saphyr reads (values, roots and marked positions); then the whole loader —
/// structure, schema, semantic checks, diagnostics with snippets — and a plan of what it
/// declares against an empty portal, rendered, run without a panic. Whether the fast reader
/// took the text.
pub fn manifest(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data).into_owned();
    let taken = match manifest::agrees_with_serde_saphyr(&text) {
        Ok(taken) => taken,
        Err(difference) => panic!("the YAML readers disagree: {difference}"),
    };
    let files = [SourceFile {
        name: "fuzz.yaml".into(),
        text: text.into(),
    }];
    let checked = manifest::check_files(&files, now());
    for d in &checked.diagnostics {
        let line = d.to_string();
        assert!(!line.is_empty());
        let _ = manifest::snippet::render(d, &files[0].text, false);
    }
    if checked.has_errors() {
        return taken;
    }
    let catalog = reference_catalog();
    let principal = Whoami {
        email: None,
        kind: PrincipalKind::Operator,
    };
    let ctx = Context {
        catalog: &catalog,
        principal: &principal,
        now: now(),
        plan_id: "fuzz",
    };
    let plans = plan::plan(&checked.desired.accounts, &BTreeMap::new(), &ctx);
    let _ = crate::render::text(&plans, crate::render::Style::Plain);
    let _ = crate::render::markdown(&plans);
    let doc = PlanDocument::new("sandbox:fuzz.db", now(), "fuzz", &plans, Vec::new());
    let _ = serde_json::to_string(&doc);
    taken
}

/// `plan_file`: a saved plan of any bytes, read as `rolecall apply PLANFILE` reads it: the
/// document, then its preconditions against an empty portal and against the state each
/// account's operations were planned against. A plan that reads is written back to the same
/// plan.
pub fn plan_file(data: &[u8]) {
    // `apply` reads the file as UTF-8 text first; other bytes stop there with a sentence.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let doc = match PlanDocument::from_json(text) {
        Ok(doc) => doc,
        Err(sentence) => {
            assert!(!sentence.to_string().is_empty());
            return;
        }
    };
    for account in &doc.accounts {
        let _ = check_preconditions(&account.operations, None);
        let planned = planned_against(&account.operations);
        let _ = check_preconditions(&account.operations, Some(&planned));
    }
    let written = match serde_json::to_string(&doc) {
        Ok(w) => w,
        Err(e) => panic!("a plan that was read cannot be written again: {e}"),
    };
    match PlanDocument::from_json(&written) {
        Ok(again) => assert_eq!(again, doc, "the plan written again reads differently"),
        Err(e) => panic!("the plan written again does not read: {e}\n{written}"),
    }
}

/// The portal state that a list of operations' preconditions describe.
fn planned_against(operations: &[Operation]) -> ObservedAccount {
    let mut observed = ObservedAccount::default();
    let member = |email: &str, etag: &str| Member {
        customer_number: None,
        email: email.to_owned(),
        name: None,
        user_linked: false,
        roles: Vec::new(),
        services: Services::All,
        notifications: Vec::new(),
        invitation: None,
        etag: etag.to_owned(),
    };
    for op in operations {
        match op {
            Operation::UpdateAccount {
                if_match: Some(etag),
                ..
            } => {
                observed.account = Some(
                    Account {
                        customer_number: String::new(),
                        display_name: String::new(),
                        time_zone: String::new(),
                        etag: etag.clone(),
                    }
                    .into(),
                );
            }
            Operation::PutMember {
                email,
                if_match: Some(etag),
                ..
            }
            | Operation::DeleteMember {
                email,
                if_match: Some(etag),
            } => observed.members.push(member(email, etag).into()),
            Operation::PutContact {
                email,
                if_match: Some(etag),
                ..
            }
            | Operation::DeleteContact {
                email,
                if_match: Some(etag),
            } => observed.contacts.push(
                crate::portal::Contact {
                    customer_number: None,
                    email: email.clone(),
                    name: String::new(),
                    notifications: Vec::new(),
                    etag: etag.clone(),
                }
                .into(),
            ),
            _ => {}
        }
    }
    observed
}

/// The account, people and tokens every `portal_request` input starts from.
pub const PORTAL_ACCOUNT: &str = "10042";
const OPERATOR_TOKEN: &str = "fuzz-operator-token";
const USER_TOKEN: &str = "fuzz-alice-token";

/// The endpoints `portal_request` sends a body to, chosen by the input's first byte.
const ENDPOINTS: [&str; 10] = [
    "PUT /v1/accounts/{cn}/members/{email}",
    "PUT /v1/accounts/{cn}/contacts/{email}",
    "POST /v1/accounts",
    "PATCH /v1/accounts/{cn}",
    "POST /sandbox/tokens",
    "POST /sandbox/users",
    "POST /sandbox/invitations/{cn}/accept",
    "POST /sandbox/clock",
    "POST /sandbox/notifications",
    "POST /v1/accounts/{cn}/members/{email}/invitation",
];

/// `portal_request`: one request to the reference portal, against a fresh store holding one
/// account with a linked admin, a member with a pending invitation and a contact. The input
/// is `[endpoint][flags]` then `CN\nEMAIL\nBODY` (the path parameters, as axum hands them to
/// the handler after percent-decoding; both optional). Flags: bit 0 sends the user token
/// instead of the operator's, bit 1 an `If-Match`, bit 2 an `Idempotency-Key`, bit 3 sends
/// the request twice. Whatever the input, the answer is never a 5xx, and an error is a
/// problem document. The status of the last answer.
pub fn portal_request(data: &[u8]) -> Option<u16> {
    let [selector, flags, rest @ ..] = data else {
        return None;
    };
    let endpoint = usize::from(*selector) % ENDPOINTS.len();
    let mut parts = rest.splitn(3, |b| *b == b'\n');
    let (cn, email, body) = match (parts.next(), parts.next(), parts.next()) {
        (Some(cn), Some(email), Some(body)) => (
            String::from_utf8_lossy(cn).into_owned(),
            String::from_utf8_lossy(email).into_owned(),
            body,
        ),
        _ => (
            PORTAL_ACCOUNT.to_owned(),
            "bob@acme.example".to_owned(),
            rest,
        ),
    };
    let body = Bytes::copy_from_slice(body);
    let mut headers = HeaderMap::new();
    let token = if flags & 1 == 0 {
        OPERATOR_TOKEN
    } else {
        USER_TOKEN
    };
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        headers.insert(header::AUTHORIZATION, value);
    }
    if flags & 2 != 0 {
        headers.insert(header::IF_MATCH, HeaderValue::from_static("\"1\""));
    }
    if flags & 4 != 0 {
        headers.insert("idempotency-key", HeaderValue::from_static("fuzz-key"));
    }
    let times = if flags & 8 != 0 { 2 } else { 1 };
    let app = match seeded_portal() {
        Ok(app) => app,
        Err(e) => panic!("the fuzz portal cannot be set up: {e}"),
    };
    let runtime = runtime();
    let mut last = None;
    for _ in 0..times {
        let response = runtime.block_on(call(
            &app,
            endpoint,
            headers.clone(),
            cn.clone(),
            email.clone(),
            body.clone(),
        ));
        last = Some(check_answer(endpoint, response, &runtime));
    }
    last
}

fn runtime() -> Arc<tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Arc<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => Arc::new(rt),
                Err(e) => panic!("no tokio runtime for the fuzz target: {e}"),
            }
        })
        .clone()
}

/// A reference portal in memory with one account: alice (linked admin, the user token), bob
/// (invited, not linked) and a billing contact.
fn seeded_portal() -> Result<App, String> {
    let now = now();
    let mut store = Store::open_in_memory(Some(now)).map_err(|e| e.to_string())?;
    let seed = Principal::operator("fuzz-seed");
    let refused = |r: crate::reference::store::Rejection| r.detail;
    store
        .add_token(OPERATOR_TOKEN, PrincipalKind::Operator, None)
        .map_err(refused)?;
    store
        .add_token(USER_TOKEN, PrincipalKind::User, Some("alice@acme.example"))
        .map_err(refused)?;
    store
        .create_account(
            &seed,
            now,
            &NewAccount {
                customer_number: PORTAL_ACCOUNT.into(),
                display_name: "Acme AG".into(),
                time_zone: "Europe/Zurich".into(),
            },
        )
        .map_err(refused)?;
    let grant = |name: &str| RoleGrant {
        name: name.into(),
        until: None,
    };
    let put = |roles| MemberPut {
        name: None,
        roles,
        services: None,
        notifications: None,
    };
    store
        .put_member(
            &seed,
            now,
            PORTAL_ACCOUNT,
            "alice@acme.example",
            &put(vec![grant("cockpit-access"), grant("customer-admin")]),
            None,
        )
        .map_err(refused)?;
    store
        .create_user(&seed, "alice@acme.example")
        .map_err(refused)?;
    store
        .put_member(
            &seed,
            now,
            PORTAL_ACCOUNT,
            "bob@acme.example",
            &put(vec![grant("cockpit-access")]),
            None,
        )
        .map_err(refused)?;
    store
        .invite(&seed, now, PORTAL_ACCOUNT, "bob@acme.example", false)
        .map_err(refused)?;
    store
        .put_contact(
            &seed,
            now,
            PORTAL_ACCOUNT,
            "billing@acme.example",
            &crate::portal::ContactPut {
                name: "Billing".into(),
                notifications: vec!["invoices".into()],
            },
            None,
        )
        .map_err(refused)?;
    App::new(store, Config::default()).map_err(|e| e.to_string())
}

async fn call(
    app: &App,
    endpoint: usize,
    headers: HeaderMap,
    cn: String,
    email: String,
    body: Bytes,
) -> Response {
    let state = State(app.clone());
    let uri = |path: String| Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"));
    let answer = match endpoint {
        0 => h::put_member(state, headers, PathParams((cn, email)), body).await,
        1 => h::put_contact(state, headers, PathParams((cn, email)), body).await,
        2 => {
            let u = uri("/v1/accounts".into());
            h::create_account(state, headers, Method::POST, u, body).await
        }
        3 => h::update_account(state, headers, PathParams(cn), body).await,
        4 => {
            let u = uri("/sandbox/tokens".into());
            h::issue_token(state, headers, Method::POST, u, body).await
        }
        5 => {
            let u = uri("/sandbox/users".into());
            h::create_user(state, headers, Method::POST, u, body).await
        }
        6 => {
            let u = uri("/sandbox/invitations/x/accept".into());
            h::accept(state, headers, Method::POST, u, PathParams(cn), body).await
        }
        7 => h::set_clock(state, headers, body).await,
        8 => {
            let u = uri("/sandbox/notifications".into());
            h::send_notification(state, headers, Method::POST, u, body).await
        }
        _ => {
            // The body of an invitation is ignored; its query string is read instead.
            let u = uri("/v1/accounts/x/members/y/invitation".into());
            let query = Some(String::from_utf8_lossy(&body).into_owned());
            h::invite(
                state,
                headers,
                Method::POST,
                u,
                PathParams((cn, email)),
                axum::extract::RawQuery(query),
                body,
            )
            .await
        }
    };
    answer.into_response()
}

fn check_answer(endpoint: usize, response: Response, runtime: &tokio::runtime::Runtime) -> u16 {
    let status = response.status();
    let problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    let body = runtime
        .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    assert!(
        !status.is_server_error(),
        "{} answered {status}: {text}",
        ENDPOINTS[endpoint]
    );
    if status.is_client_error() {
        assert!(
            problem,
            "{} answered {status} without a problem document: {text}",
            ENDPOINTS[endpoint]
        );
    }
    if status != StatusCode::NO_CONTENT {
        assert!(
            serde_json::from_slice::<serde_json::Value>(&body).is_ok(),
            "{} answered {status} with a body that is not JSON: {text}",
            ENDPOINTS[endpoint]
        );
    }
    for secret in [OPERATOR_TOKEN, USER_TOKEN] {
        assert!(
            !text.contains(secret),
            "{} answered a token: {text}",
            ENDPOINTS[endpoint]
        );
    }
    status.as_u16()
}

/// The WHMCS credentials the decoder is set up with; no message may show them.
const WHMCS_IDENTIFIER: &str = "fuzzIdentifierX7";
const WHMCS_SECRET: &str = "fuzzSecretQ9";

/// `whmcs_response`: an answer of any bytes from a WHMCS installation (the first byte picks the
/// HTTP status), read as the adapter reads every action's answer. Never a panic, and no
/// sentence made of it shows the API credentials.
pub fn whmcs_response(data: &[u8]) {
    const STATUSES: [u16; 8] = [200, 200, 200, 200, 403, 404, 429, 500];
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let status = STATUSES[usize::from(*first) % STATUSES.len()];
    static PORTAL: OnceLock<WhmcsPortal> = OnceLock::new();
    let portal = PORTAL.get_or_init(|| {
        let portal = Credentials::new(WHMCS_IDENTIFIER, WHMCS_SECRET, None, "the fuzz target")
            .map_err(|e| e.to_string())
            .and_then(|credentials| {
                WhmcsPortal::new(
                    "http://127.0.0.1:9/",
                    credentials,
                    Arc::new(MemoryInvitations::default()),
                    WhmcsOptions::default(),
                )
                .map_err(|e| e.to_string())
            });
        match portal {
            Ok(p) => p,
            Err(e) => panic!("the fuzz target's WHMCS adapter cannot be set up: {e}"),
        }
    });
    // Values are the answer's own text; an error sentence must not show the credentials,
    // even when the installation echoes them.
    if let Err(sentence) = portal.read_for_fuzzing(status, body) {
        for secret in [WHMCS_IDENTIFIER, WHMCS_SECRET] {
            assert!(
                !sentence.contains(secret),
                "a credential shows in {sentence:?}"
            );
        }
    }
}
