//! The reconcile of one CustomerAccount against a mocked API server (tower-test) and the
//! embedded sandbox portal in a temporary file: every request it sends is answered here and
//! asserted (method, path, body).

use std::collections::HashMap;
use std::sync::Mutex;

use http::{Request, Response};
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use kube::runtime::watcher;
use serde_json::{Value, json};
use tower_test::mock::Handle;

use super::*;
use crate::controller::metrics::Metrics;
use crate::controller::{Config, FIELD_MANAGER};
use crate::portal::{MemberPut, NewAccount, RoleGrant};
use crate::reference::store::{Principal, Store};

type Server = Handle<Request<Body>, Response<Body>>;

const NS: &str = "team";
const STATUS_PATH: &str =
    "/apis/rolecall.dev/v1alpha1/namespaces/team/customeraccounts/acme/status";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/team/events";

/// One request the reconcile sent.
#[derive(Debug)]
struct Sent {
    method: String,
    path: String,
    body: Value,
}

fn account(members: Value) -> CustomerAccount {
    let obj = json!({
        "apiVersion": "rolecall.dev/v1alpha1",
        "kind": "CustomerAccount",
        "metadata": {"name": "acme", "namespace": NS, "uid": "u-1", "generation": 3},
        "spec": {"customerNumber": "10042", "members": members}
    });
    serde_json::from_value(obj).expect("a CustomerAccount")
}

fn portal(url: &str) -> Portal {
    let obj = json!({
        "apiVersion": "rolecall.dev/v1alpha1",
        "kind": "Portal",
        "metadata": {"name": "sandbox", "namespace": NS},
        "spec": {"url": url}
    });
    serde_json::from_value(obj).expect("a Portal")
}

/// A sandbox portal whose account 10042 has one linked admin, admin@x.example.
fn seeded_sandbox(path: &std::path::Path) {
    let mut store = Store::open(path, None).expect("the sandbox store");
    let op = Principal::operator("sandbox");
    let now = store.now();
    let new = NewAccount {
        customer_number: "10042".into(),
        display_name: "Acme".into(),
        time_zone: "UTC".into(),
    };
    store.create_account(&op, now, &new).expect("the account");
    store
        .create_user(&op, "admin@x.example")
        .expect("the admin's user");
    let roles = ["customer-admin", "cockpit-access"]
        .map(|r| serde_json::from_value::<RoleGrant>(json!({"name": r})).expect("a role"));
    let put = MemberPut {
        name: None,
        roles: roles.to_vec(),
        services: None,
        notifications: None,
    };
    store
        .put_member(&op, now, "10042", "admin@x.example", &put, None)
        .expect("the admin");
}

/// The members of account 10042 as the sandbox holds them: (e-mail, pending invitation).
fn sandbox_members(path: &std::path::Path) -> Vec<(String, bool)> {
    let store = Store::open(path, None).expect("the sandbox store");
    let op = Principal::operator("sandbox");
    let now = store.now();
    let members = store
        .list_account_members(&op, now, "10042", None, 100)
        .expect("the members");
    let mut out: Vec<(String, bool)> = members
        .items
        .iter()
        .map(|m| (m.email.clone(), m.invitation.is_some()))
        .collect();
    out.sort();
    out
}

fn context(client: kube::Client, account: &CustomerAccount, portal: &Portal) -> Context {
    let (accounts, mut accounts_writer) = reflector::store::<CustomerAccount>();
    accounts_writer.apply_watcher_event(&watcher::Event::Apply(account.clone()));
    let (portals, mut portals_writer) = reflector::store::<Portal>();
    portals_writer.apply_watcher_event(&watcher::Event::Apply(portal.clone()));
    let (members, _) = reflector::store::<AccountMember>();
    let (contacts, _) = reflector::store::<NotificationContact>();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some("test".into()),
        },
    );
    Context {
        client,
        config: Config {
            namespace: None,
            selector: None,
            metrics_addr: "127.0.0.1:0".parse().expect("an address"),
            resync: Duration::from_secs(300),
            lease_name: "rolecall".into(),
            lease_namespace: NS.into(),
            lease_duration: Duration::from_secs(15),
            identity: "test".into(),
            concurrency: 1,
            ca_file: None,
        },
        recorder,
        metrics: Arc::new(Metrics::new()),
        accounts,
        account_changes: Default::default(),
        members,
        contacts,
        portals,
        connections: crate::controller::connections::Connections::default(),
        failures: Mutex::new(HashMap::new()),
        invitations: Mutex::new(HashMap::new()),
        expiry_announced: Mutex::new(HashSet::new()),
    }
}

/// Answers every request until the reconcile ends: a status patch with the account as the API
/// server would return it, anything else with the body it sent (an Event comes back as
/// created). Returns the reconcile's outcome and the requests in the order they came.
async fn serve(
    server: &mut Server,
    obj: &CustomerAccount,
    reconcile: tokio::task::JoinHandle<Result<Outcome, String>>,
) -> (Result<Outcome, String>, Vec<Sent>) {
    let mut sent = Vec::new();
    let mut reconcile = reconcile;
    loop {
        tokio::select! {
            done = &mut reconcile => {
                return (done.expect("the reconcile ran"), sent);
            }
            next = server.next_request() => {
                let Some((request, reply)) = next else {
                    return (reconcile.await.expect("the reconcile ran"), sent);
                };
                let method = request.method().to_string();
                let path = request.uri().path().to_string();
                let bytes = request.into_body().collect_bytes().await.expect("a body");
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let answer = if path.ends_with("/status") {
                    serde_json::to_value(obj).expect("json")
                } else {
                    body.clone()
                };
                let response = Response::builder()
                    .status(200)
                    .body(Body::from(serde_json::to_vec(&answer).expect("json")))
                    .expect("a response");
                reply.send_response(response);
                sent.push(Sent { method, path, body });
            }
        }
    }
}

/// Reconciles `obj` once against the sandbox at `db`, answering the API server's side.
async fn reconcile_once(
    obj: CustomerAccount,
    db: &std::path::Path,
) -> (Result<Outcome, String>, Vec<Sent>) {
    let (service, mut server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let url = format!("sandbox:{}", db.display());
    let ctx = Arc::new(context(client, &obj, &portal(&url)));
    reconcile_with(&ctx, &mut server, obj).await
}

/// Reconciles `obj` once with `ctx`, answering the API server's side.
async fn reconcile_with(
    ctx: &Arc<Context>,
    server: &mut Server,
    obj: CustomerAccount,
) -> (Result<Outcome, String>, Vec<Sent>) {
    let task_obj = obj.clone();
    let ctx = ctx.clone();
    let reconcile = tokio::spawn(async move {
        reconcile_account(&task_obj, &ctx)
            .await
            .map(|(_, outcome)| outcome)
            .map_err(|e| e.to_string())
    });
    serve(server, &obj, reconcile).await
}

fn condition<'a>(status: &'a Value, kind: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

/// A new member is invited on the portal, an event says so, and the status patch reports the
/// account Applied at the object's generation, with the counts the portal now has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_is_applied_and_its_status_patched() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("sandbox.db");
    seeded_sandbox(&db);
    let obj = account(json!([
        {"email": "admin@x.example", "roles": ["customer-admin", "cockpit-access"]},
        {"email": "bob@x.example", "roles": ["cockpit-access"]}
    ]));

    let (outcome, sent) = reconcile_once(obj, &db).await;

    assert_eq!(outcome, Ok(Outcome::Applied));
    let requests: Vec<(&str, &str)> = sent
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    assert_eq!(
        requests,
        [
            ("POST", EVENTS_PATH),
            ("POST", EVENTS_PATH),
            ("POST", EVENTS_PATH),
            ("PATCH", STATUS_PATH)
        ]
    );
    // One Normal event per kind of change, each naming what changed.
    let events: Vec<(&Value, &Value, &Value, &Value)> = sent[..3]
        .iter()
        .map(|s| {
            let b = &s.body;
            (
                &b["type"],
                &b["reason"],
                &b["regarding"]["name"],
                &b["note"],
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            (
                &json!("Normal"),
                &json!("MemberAdded"),
                &json!("acme"),
                &json!("add-member bob@x.example")
            ),
            (
                &json!("Normal"),
                &json!("Granted"),
                &json!("acme"),
                &json!("grant bob@x.example cockpit-access")
            ),
            (
                &json!("Normal"),
                &json!("Invited"),
                &json!("acme"),
                &json!("invite bob@x.example")
            ),
        ]
    );
    let patch = &sent[3].body;
    assert_eq!(patch["apiVersion"], "rolecall.dev/v1alpha1");
    assert_eq!(patch["kind"], "CustomerAccount");
    let status = &patch["status"];
    assert_eq!(status["observedGeneration"], 3);
    let ready = condition(status, "Ready");
    assert_eq!(ready["status"], "True", "{status}");
    assert_eq!(ready["reason"], "Applied");
    assert_eq!(ready["observedGeneration"], 3);
    assert_eq!(condition(status, "Synced")["reason"], "Applied");
    assert_eq!(status["members"], 2);
    assert_eq!(status["pendingInvitations"], 1);
    assert_eq!(
        sandbox_members(&db),
        [
            ("admin@x.example".to_string(), false),
            ("bob@x.example".to_string(), true)
        ]
    );
}

/// A plan that would leave the account without an admin is refused: the portal is left as it
/// was, a warning event says why, and the status reports the refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_plan_writes_nothing_and_reports_the_refusal() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("sandbox.db");
    seeded_sandbox(&db);
    let before = sandbox_members(&db);
    let obj = account(json!([
        {"email": "bob@x.example", "roles": ["cockpit-access"]}
    ]));

    let (outcome, sent) = reconcile_once(obj, &db).await;

    assert_eq!(outcome, Ok(Outcome::Refused));
    let requests: Vec<(&str, &str)> = sent
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    assert_eq!(requests, [("POST", EVENTS_PATH), ("PATCH", STATUS_PATH)]);
    let event = &sent[0].body;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "Refused");
    let status = &sent[1].body["status"];
    assert_eq!(status["observedGeneration"], 3);
    let ready = condition(status, "Ready");
    assert_eq!(ready["status"], "False", "{status}");
    assert_eq!(ready["reason"], "Refused");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("the plan was refused and nothing was changed: ")
            && message.contains("without an effective admin"),
        "{message}"
    );
    assert_eq!(condition(status, "Synced")["status"], "False");
    assert_eq!(status["members"], 1);
    assert_eq!(sandbox_members(&db), before);
}

/// The accounts of a Portal share one connection: asked twice, the same one comes back; an
/// edited Portal (a new generation) connects again; a reconcile that applies keeps the
/// connection and one that is refused drops it, so the next one connects afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_of_a_portal_share_its_connection_until_a_reconcile_ends_badly() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("sandbox.db");
    seeded_sandbox(&db);
    let (service, mut server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let mut sandbox = portal(&format!("sandbox:{}", db.display()));
    sandbox.metadata.uid = Some("p-1".into());
    sandbox.metadata.generation = Some(1);
    let applied = account(json!([
        {"email": "admin@x.example", "roles": ["customer-admin", "cockpit-access"]},
        {"email": "bob@x.example", "roles": ["cockpit-access"]}
    ]));
    let ctx = Arc::new(context(client, &applied, &sandbox));
    let now = crate::reconcile::now().expect("the clock");
    let scratch = || -> Arc<dyn InvitationStore> { Arc::new(MemoryInvitations::default()) };

    let first = shared_connection(&ctx, &sandbox, scratch(), now)
        .await
        .expect("a connection");
    let again = shared_connection(&ctx, &sandbox, scratch(), now)
        .await
        .expect("a connection");
    assert!(Arc::ptr_eq(&first, &again));
    let mut edited = sandbox.clone();
    edited.metadata.generation = Some(2);
    let after_edit = shared_connection(&ctx, &edited, scratch(), now)
        .await
        .expect("a connection");
    assert!(!Arc::ptr_eq(&first, &after_edit));
    let current = shared_connection(&ctx, &sandbox, scratch(), now)
        .await
        .expect("a connection");
    assert!(!Arc::ptr_eq(&first, &current));

    let (outcome, _) = reconcile_with(&ctx, &mut server, applied).await;
    assert_eq!(outcome, Ok(Outcome::Applied));
    let kept = shared_connection(&ctx, &sandbox, scratch(), now)
        .await
        .expect("a connection");
    assert!(
        Arc::ptr_eq(&current, &kept),
        "an applied reconcile keeps it"
    );

    let refused = account(json!([{"email": "bob@x.example", "roles": ["cockpit-access"]}]));
    let (outcome, _) = reconcile_with(&ctx, &mut server, refused).await;
    assert_eq!(outcome, Ok(Outcome::Refused));
    assert!(ctx.connections.is_empty(), "a refused reconcile drops it");
    let fresh = shared_connection(&ctx, &sandbox, scratch(), now)
        .await
        .expect("a connection");
    assert!(!Arc::ptr_eq(&current, &fresh));
}
