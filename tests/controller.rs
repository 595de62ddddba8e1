//! The controller as a process, against a real kube-apiserver (tests/k8s/testenv.sh) and a
//! real reference portal (`rolecall portal serve`): convergence, edits, separate members,
//! dates passing, Observe mode, invalid and refused specs, deletion policies, namespace
//! boundaries, leader election and the Helm chart's RBAC.

mod common;
mod k8s_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{NOW, OPERATOR_TOKEN, Server};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams};
use kube::{Client, ResourceExt};
use rolecall::model::{AccountMember, CustomerAccount, NotificationContact, Portal};
use serde_json::{Value, json};

use k8s_support::{
    Controller, apply_yaml, cluster, condition, events, eventually, namespace, portal,
};

/// The portal's view, read over HTTP with the operator token.
async fn portal_get(url: &str, path: &str) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::Client::new()
        .get(format!("{url}{path}"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn portal_send(url: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{url}{path}"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// E-mail → role names, as the portal holds them for account `cn`.
async fn members(url: &str, cn: &str) -> Option<BTreeMap<String, Vec<String>>> {
    let (status, v) = portal_get(url, &format!("/v1/accounts/{cn}/members")).await;
    if status != 200 {
        return None;
    }
    Some(
        v["items"]
            .as_array()?
            .iter()
            .map(|m| {
                let mut roles: Vec<String> = m["roles"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["name"].as_str().unwrap().to_string())
                    .collect();
                roles.sort();
                (m["email"].as_str().unwrap().to_string(), roles)
            })
            .collect(),
    )
}

fn roles(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(e, r)| (e.to_string(), r.iter().map(|s| s.to_string()).collect()))
        .collect()
}

async fn account(client: &Client, ns: &str, name: &str) -> CustomerAccount {
    Api::<CustomerAccount>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap()
}

/// Waits until the account's `Ready` condition has `status` and `reason` for its current
/// generation, and returns the object.
async fn wait_ready(
    client: &Client,
    ns: &str,
    name: &str,
    status: &str,
    reason: &str,
) -> CustomerAccount {
    // A converged account says `Applied` once and `InSync` on every later reconcile.
    let reasons: &[&str] = if reason == "Applied" {
        &["Applied", "InSync"]
    } else {
        &[reason]
    };
    eventually(&format!("{name} Ready={status} ({reason})"), 60, || async {
        let a = account(client, ns, name).await;
        let s = a.status.as_ref()?;
        let (st, re, _) = condition(&s.conditions, "Ready")?;
        (st == status
            && reasons.contains(&re.as_str())
            && s.observed_generation == a.metadata.generation)
            .then_some(a)
    })
    .await
}

/// Waits until `identity` holds the controller's Lease.
async fn wait_for_leader(leases: &Api<Lease>, identity: &str) {
    eventually(&format!("{identity} holds the Lease"), 30, || async {
        let l = leases.get_opt("rolecall-controller").await.ok()??;
        (l.spec?.holder_identity? == identity).then_some(())
    })
    .await;
}

const ACME: &str = r#"
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: acme}
spec:
  customerNumber: "10042"
  displayName: Acme AG
  timeZone: Europe/Zurich
  members:
    - email: alice@acme.example
      roles: [cockpit-access, customer-admin]
    - email: bob@acme.example
      roles: [cockpit-access]
"#;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server: tests/k8s/testenv.sh up"]
async fn an_account_converges_follows_edits_and_takes_separate_members() {
    let k = cluster().await;
    let ns = namespace(&k.client, "converge").await;
    let server = Server::start();
    portal(&k.client, &ns, "main", &server.url).await;
    apply_yaml(&k.client, &ns, ACME).await;
    let ctl = Controller::start(&k.kubeconfig, &ns, &[], NOW);

    let a = wait_ready(&k.client, &ns, "acme", "True", "Applied").await;
    let url = &server.url;
    assert_first_sync(&k.client, &ns, url, &a).await;
    edit_changes_the_portal(&k.client, &ns, url).await;
    separate_objects_converge_and_prune(&k.client, &ns, url).await;
    assert_portal_metrics_and_logs(&k.client, &ns, &ctl).await;
}

/// The portal, status, finalizer, field manager and events after the first sync of ACME.
async fn assert_first_sync(client: &Client, ns: &str, url: &str, a: &CustomerAccount) {
    assert_eq!(
        members(url, "10042").await.unwrap(),
        roles(&[
            ("alice@acme.example", &["cockpit-access", "customer-admin"]),
            ("bob@acme.example", &["cockpit-access"]),
        ])
    );
    let status = a.status.clone().unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.members, 2);
    assert_eq!(status.pending_invitations, 2, "both were invited");
    let (synced, _, _) = condition(&status.conditions, "Synced").unwrap();
    assert_eq!(synced, "True");
    assert!(status.last_plan.is_some());
    assert!(status.last_sync_time.is_some());
    assert!(
        a.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == "rolecall.dev/deletion-policy")),
        "the finalizer is set"
    );
    assert!(
        a.metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some("rolecall-controller")),
        "status is written by the controller's field manager"
    );
    let evs = events(client, ns, "acme").await;
    for reason in ["AccountCreated", "MemberAdded", "Granted", "Invited"] {
        assert!(
            evs.iter().any(|(t, r, _)| t == "Normal" && r == reason),
            "no {reason} event in {evs:?}"
        );
    }
    assert!(
        evs.iter().any(
            |(_, r, note)| r == "Granted" && note.contains("alice@acme.example customer-admin")
        ),
        "{evs:?}"
    );
}

/// Editing the spec changes the portal.
async fn edit_changes_the_portal(client: &Client, ns: &str, url: &str) {
    apply_yaml(
        client,
        ns,
        &ACME.replace(
            "roles: [cockpit-access]\n",
            "roles: [cockpit-access, technical-contact]\n",
        ),
    )
    .await;
    eventually("bob gains technical-contact", 60, || async {
        let m = members(url, "10042").await?;
        (m.get("bob@acme.example")?
            == &vec!["cockpit-access".to_string(), "technical-contact".into()])
            .then_some(())
    })
    .await;
    let a = wait_ready(client, ns, "acme", "True", "Applied").await;
    assert_eq!(a.status.unwrap().observed_generation, Some(2));
}

/// A member and a contact declared in objects of their own appear, and go when deleted.
async fn separate_objects_converge_and_prune(client: &Client, ns: &str, url: &str) {
    // A member declared in an object of its own appears, and its own status says so.
    apply_yaml(
        client,
        ns,
        r#"
apiVersion: rolecall.dev/v1alpha1
kind: AccountMember
metadata: {name: carol-acme}
spec:
  accountRef: {name: acme}
  email: carol@acme.example
  roles: [cockpit-access]
---
apiVersion: rolecall.dev/v1alpha1
kind: NotificationContact
metadata: {name: acme-noc}
spec:
  accountRef: {name: acme}
  email: noc@acme.example
  name: Network operations
  notifications: [maintenance]
"#,
    )
    .await;
    eventually("carol appears", 60, || async {
        members(url, "10042")
            .await?
            .contains_key("carol@acme.example")
            .then_some(())
    })
    .await;
    eventually("the contact appears", 60, || async {
        let (_, v) = portal_get(url, "/v1/accounts/10042/contacts").await;
        v["items"]
            .as_array()?
            .iter()
            .any(|c| c["email"] == "noc@acme.example")
            .then_some(())
    })
    .await;
    let members_api: Api<AccountMember> = Api::namespaced(client.clone(), ns);
    eventually("carol-acme Ready", 60, || async {
        let m = members_api.get("carol-acme").await.ok()?;
        let (st, reason, _) = condition(&m.status?.conditions, "Ready")?;
        (st == "True" && reason == "Applied").then_some(())
    })
    .await;
    let contacts_api: Api<NotificationContact> = Api::namespaced(client.clone(), ns);
    eventually("acme-noc Ready", 60, || async {
        let c = contacts_api.get("acme-noc").await.ok()?;
        let (st, _, _) = condition(&c.status?.conditions, "Ready")?;
        (st == "True").then_some(())
    })
    .await;

    // Removing the separate member removes it from the portal (prune).
    members_api
        .delete("carol-acme", &DeleteParams::default())
        .await
        .unwrap();
    eventually("carol is removed", 60, || async {
        (!members(url, "10042")
            .await?
            .contains_key("carol@acme.example"))
        .then_some(())
    })
    .await;
}

/// The Portal's status, the metrics, the health endpoints and the logs.
async fn assert_portal_metrics_and_logs(client: &Client, ns: &str, ctl: &Controller) {
    // The Portal reports whom its token authenticates.
    let portals: Api<Portal> = Api::namespaced(client.clone(), ns);
    let p = portals.get("main").await.unwrap();
    let ps = p.status.unwrap();
    assert_eq!(condition(&ps.conditions, "Ready").unwrap().0, "True");
    assert_eq!(ps.principal.as_deref(), Some("operator"));

    // Metrics: bounded labels only.
    let text = ctl.scrape().await.unwrap();
    assert!(
        text.contains("rolecall_reconciles_total{result=\"applied\"}"),
        "{text}"
    );
    assert!(
        text.contains("rolecall_changes_total{action=\"grant\"}"),
        "{text}"
    );
    assert!(
        text.contains("rolecall_portal_requests_total{status=\"2xx\"}"),
        "{text}"
    );
    assert!(
        text.contains("rolecall_reconcile_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("rolecall_leader 1"), "{text}");
    assert!(
        !text.contains("acme") && !text.contains(ns),
        "object names in metrics: {text}"
    );
    let health = reqwest::get(format!("{}/healthz", ctl.metrics))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("{}/readyz", ctl.metrics))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // JSON logs that never carry the token.
    let log = ctl.log_text();
    assert!(
        log.lines()
            .any(|l| l.starts_with('{') && l.contains("\"level\"")),
        "{log}"
    );
    assert!(
        !log.contains(OPERATOR_TOKEN),
        "the token leaked into the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server: tests/k8s/testenv.sh up"]
async fn a_passing_until_revokes_once_both_clocks_move() {
    let k = cluster().await;
    let ns = namespace(&k.client, "until").await;
    let server = Server::start();
    portal(&k.client, &ns, "main", &server.url).await;
    apply_yaml(
        &k.client,
        &ns,
        r#"
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: acme}
spec:
  customerNumber: "10042"
  timeZone: Europe/Zurich
  members:
    - email: alice@acme.example
      roles: [cockpit-access, customer-admin]
    - email: bob@acme.example
      roles: [cockpit-access, {name: technical-contact, until: 2026-12-31}, {name: customer-admin, from: 2027-01-01}]
"#,
    )
    .await;
    let mut ctl = Controller::start(&k.kubeconfig, &ns, &[], NOW);
    let a = wait_ready(&k.client, &ns, "acme", "True", "Applied").await;
    let next = a
        .status
        .unwrap()
        .next_transition
        .expect("nextTransition is reported");
    assert!(next.starts_with("2026-12-"), "{next}");
    let url = &server.url;
    assert_eq!(
        members(url, "10042").await.unwrap()["bob@acme.example"],
        vec!["cockpit-access".to_string(), "technical-contact".into()]
    );
    ctl.kill();

    // 2027-01-02 in Zurich: technical-contact has ended, customer-admin has begun.
    let later = "2027-01-02T09:00:00Z";
    let (status, _) = portal_send(url, "POST", "/sandbox/clock", json!({"now": later})).await;
    assert_eq!(status, 200);
    let _ctl = Controller::start(&k.kubeconfig, &ns, &[], later);
    eventually("bob's roles follow the dates", 60, || async {
        let m = members(url, "10042").await?;
        (m.get("bob@acme.example")?
            == &vec!["cockpit-access".to_string(), "customer-admin".to_string()])
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server: tests/k8s/testenv.sh up"]
async fn a_role_ending_soon_is_announced_once_and_counted_in_the_status() {
    let k = cluster().await;
    let ns = namespace(&k.client, "expiring").await;
    let server = Server::start();
    portal(&k.client, &ns, "main", &server.url).await;
    let spec = r#"
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: acme}
spec:
  customerNumber: "10042"
  timeZone: Europe/Zurich
  members:
    - email: alice@acme.example
      roles: [cockpit-access, customer-admin]
    - email: bob@acme.example
      roles: [cockpit-access, {name: technical-contact, until: 2026-12-03}, {name: customer-admin, until: 2027-06-30}]
"#;
    apply_yaml(&k.client, &ns, spec).await;
    let _ctl = Controller::start(&k.kubeconfig, &ns, &[], NOW);
    let a = wait_ready(&k.client, &ns, "acme", "True", "Applied").await;
    assert_eq!(
        a.status.unwrap().expiring_soon,
        1,
        "only technical-contact ends within 14 days"
    );
    let notice =
        "bob@acme.example's role technical-contact ends on 2026-12-03 (its last day is in 7 days)";
    let announced = |evs: &[(String, String, String)]| {
        evs.iter()
            .filter(|(t, r, note)| {
                t == "Normal" && r == "RoleExpiringSoon" && note.contains(notice)
            })
            .count()
    };
    eventually("the RoleExpiringSoon event", 60, || async {
        (announced(&events(&k.client, &ns, "acme").await) == 1).then_some(())
    })
    .await;

    // Another reconcile (a new generation) announces nothing again.
    apply_yaml(
        &k.client,
        &ns,
        &spec.replace(
            "    - email: bob@",
            "    - email: carol@acme.example\n      roles: [cockpit-access]\n    - email: bob@",
        ),
    )
    .await;
    eventually("generation 2 reconciled", 60, || async {
        let a = account(&k.client, &ns, "acme").await;
        let s = a.status.as_ref()?;
        (s.observed_generation == Some(2) && s.members == 3).then_some(())
    })
    .await;
    let evs = events(&k.client, &ns, "acme").await;
    assert_eq!(announced(&evs), 1, "announced once: {evs:?}");
    // kube's recorder folds a repeated event into the first one's `series`: it must have none.
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(k.client.clone(), &ns);
    let repeats: Vec<_> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("RoleExpiringSoon"))
        .map(|e| e.series.map_or(1, |s| s.count))
        .collect();
    assert_eq!(repeats, [1], "one event, never repeated");
    assert!(
        evs.iter()
            .all(|(_, r, note)| r != "RoleExpiringSoon" || !note.contains("customer-admin")),
        "a role ending in seven months is not announced: {evs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server: tests/k8s/testenv.sh up"]
async fn observe_mode_reports_the_plan_and_changes_nothing() {
    let k = cluster().await;
    let ns = namespace(&k.client, "observe").await;
    let server = Server::start();
    portal(&k.client, &ns, "main", &server.url).await;
    apply_yaml(
        &k.client,
        &ns,
        &ACME.replace("  members:\n", "  policy: {mode: Observe}\n  members:\n"),
    )
    .await;
    let _ctl = Controller::start(&k.kubeconfig, &ns, &[], NOW);
    let a = wait_ready(&k.client, &ns, "acme", "False", "Drift").await;
    let status = a.status.unwrap();
    let plan = status.last_plan.unwrap();
    assert!(plan.add >= 4 && plan.invite == 2, "{plan:?}");
    assert_eq!(
        condition(&status.conditions, "Synced").unwrap().1,
        "Observed"
    );
    let (code, _) = portal_get(&server.url, "/v1/accounts/10042").await;
    assert_eq!(code, 404, "Observe created the account");
    let (_, outbox) = portal_get(&server.url, "/sandbox/outbox").await;
    assert_eq!(
        outbox["items"].as_array().unwrap().len(),
        0,
        "Observe sent e-mail"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server: tests/k8s/testenv.sh up"]
async fn an_invalid_spec_and_a_refused_plan_show_conditions_and_events() {
    let k = cluster().await;
    let ns = namespace(&k.client, "refuse").await;
    let server = Server::start();
    let url = &server.url;
    portal(&k.client, &ns, "main", url).await;
    // The portal already holds an account with six members.
    let (s, _) = portal_send(
        url,
        "POST",
        "/v1/accounts",
        json!({"customerNumber": "20001", "displayName": "Globex", "timeZone": "UTC"}),
    )
    .await;
    assert_eq!(s, 201);
    for i in 0..6 {
        let roles = if i == 0 {
            json!([{"name": "cockpit-access"}, {"name": "customer-admin"}])
        } else {
            json!([{"name": "cockpit-access"}])
        };
        let (s, v) = portal_send(
            url,
            "PUT",
            &format!("/v1/accounts/20001/members/p{i}%40globex.example"),
            json!({"roles": roles}),
        )
        .await;
        assert!(s == 201 || s == 200, "{s} {v}");
    }
    apply_yaml(
        &k.client,
        &ns,
        r#"
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: globex}
spec:
  customerNumber: "20001"
  members:
    - email: p0@globex.example
      roles: [cockpit-access, customer-admin]
---
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: broken}
spec:
  customerNumber: "20002"
  members:
    - email: dave@broken.example
      roles: [cockpit-access, {name: customer-admin, from: 2027-02-01, until: 2027-01-01}]
"#,
    )
    .await;
    let _ctl = Controller::start(&k.kubeconfig, &ns, &[], NOW);

    let g = wait_ready(&k.client, &ns, "globex", "False", "Refused").await;
    let (_, _, message) = condition(&g.status.as_ref().unwrap().conditions, "Ready").unwrap();
    assert!(
        message.contains("maxRemovals") || message.contains("remove"),
        "{message}"
    );
    assert!(g.status.unwrap().last_plan.unwrap().refused);
    assert_eq!(
        members(url, "20001").await.unwrap().len(),
        6,
        "a refused plan changed the portal"
    );
    let evs = events(&k.client, &ns, "globex").await;
    assert!(
        evs.iter().any(|(t, r, _)| t == "Warning" && r == "Refused"),
        "{evs:?}"
    );

    let b = wait_ready(&k.client, &ns, "broken", "False", "InvalidSpec").await;
    let (_, _, message) = condition(&b.status.unwrap().conditions, "Ready").unwrap();
    assert!(
        message.contains("customeraccount/") && message.contains("spec.members[0].roles[1]"),
        "{message}"
    );
    let evs = events(&k.client, &ns, "broken").await;
    assert!(
        evs.iter()
            .any(|(t, r, _)| t == "Warning" && r == "InvalidSpec"),
        "{evs:?}"
    );
    let (code, _) = portal_get(url, "/v1/accounts/20002").await;
    assert_eq!(code, 404, "an invalid account reached the portal");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server: tests/k8s/testenv.sh up"]
async fn deletion_orphans_or_revokes_as_the_policy_says() {
    let k = cluster().await;
    let ns = namespace(&k.client, "delete").await;
    let server = Server::start();
    let url = &server.url;
    portal(&k.client, &ns, "main", url).await;
    apply_yaml(
        &k.client,
        &ns,
        r#"
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: kept}
spec:
  customerNumber: "30001"
  members:
    - {email: alice@kept.example, roles: [cockpit-access, customer-admin]}
---
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: revoked}
spec:
  customerNumber: "30002"
  policy:
    deletionPolicy: Revoke
    ignore: ["*@provider.example"]
  members:
    - {email: carol@revoked.example, roles: [cockpit-access, customer-admin]}
    - {email: dan@revoked.example, roles: [cockpit-access]}
  contacts:
    - {email: billing@revoked.example, notifications: [invoices]}
"#,
    )
    .await;
    let _ctl = Controller::start(&k.kubeconfig, &ns, &[], NOW);
    wait_ready(&k.client, &ns, "kept", "True", "Applied").await;
    wait_ready(&k.client, &ns, "revoked", "True", "Applied").await;
    // Provider staff keep an admin of their own, which rolecall ignores.
    let (s, _) = portal_send(
        url,
        "PUT",
        "/v1/accounts/30002/members/ops%40provider.example",
        json!({"roles": [{"name": "cockpit-access"}, {"name": "customer-admin"}]}),
    )
    .await;
    assert!(s < 300);

    let api: Api<CustomerAccount> = Api::namespaced(k.client.clone(), &ns);
    api.delete("kept", &DeleteParams::default()).await.unwrap();
    api.delete("revoked", &DeleteParams::default())
        .await
        .unwrap();
    for name in ["kept", "revoked"] {
        eventually(&format!("{name} is gone"), 60, || async {
            api.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
    }
    assert_eq!(
        members(url, "30001").await.unwrap(),
        roles(&[("alice@kept.example", &["cockpit-access", "customer-admin"])]),
        "Orphan left the portal as it was"
    );
    assert_eq!(
        members(url, "30002").await.unwrap(),
        roles(&[(
            "ops@provider.example",
            &["cockpit-access", "customer-admin"]
        )]),
        "Revoke removed what the object declared and nothing else"
    );
    let (_, contacts) = portal_get(url, "/v1/accounts/30002/contacts").await;
    assert_eq!(contacts["items"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server: tests/k8s/testenv.sh up"]
async fn a_revoke_that_would_remove_the_last_admin_keeps_the_object() {
    let k = cluster().await;
    let ns = namespace(&k.client, "lastadmin").await;
    let server = Server::start();
    let url = &server.url;
    portal(&k.client, &ns, "main", url).await;
    apply_yaml(
        &k.client,
        &ns,
        r#"
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: solo}
spec:
  customerNumber: "40001"
  policy: {deletionPolicy: Revoke}
  members:
    - {email: alice@solo.example, roles: [cockpit-access, customer-admin]}
"#,
    )
    .await;
    let _ctl = Controller::start(&k.kubeconfig, &ns, &[], NOW);
    wait_ready(&k.client, &ns, "solo", "True", "Applied").await;
    // Alice accepts: she is now the account's one effective admin.
    let (s, v) = portal_send(
        url,
        "POST",
        "/sandbox/users",
        json!({"email": "alice@solo.example"}),
    )
    .await;
    assert!(s < 300, "{s} {v}");
    let api: Api<CustomerAccount> = Api::namespaced(k.client.clone(), &ns);
    api.delete("solo", &DeleteParams::default()).await.unwrap();
    eventually("a Refused warning", 60, || async {
        events(&k.client, &ns, "solo")
            .await
            .iter()
            .any(|(t, r, n)| {
                t == "Warning" && r == "Refused" && n.contains("deletionPolicy Revoke")
            })
            .then_some(())
    })
    .await;
    assert!(
        api.get_opt("solo").await.unwrap().is_some(),
        "the finalizer was dropped"
    );
    assert_eq!(
        members(url, "40001").await.unwrap().len(),
        1,
        "the last admin was removed"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server: tests/k8s/testenv.sh up"]
async fn namespaces_cannot_reach_each_other_and_a_claimed_number_is_a_conflict() {
    let k = cluster().await;
    let ns = namespace(&k.client, "bounds").await;
    let server = Server::start();
    let url = &server.url;
    portal(&k.client, &ns, "main", url).await;
    apply_yaml(
        &k.client,
        &ns,
        r#"
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: first}
spec:
  customerNumber: "50001"
  members:
    - {email: alice@first.example, roles: [cockpit-access, customer-admin]}
"#,
    )
    .await;
    let _ctl = Controller::start(&k.kubeconfig, &ns, &[], NOW);
    wait_ready(&k.client, &ns, "first", "True", "Applied").await;
    apply_yaml(
        &k.client,
        &ns,
        r#"
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: second}
spec:
  customerNumber: "50001"
  members:
    - {email: mallory@second.example, roles: [cockpit-access, customer-admin]}
---
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata: {name: elsewhere}
spec:
  customerNumber: "50002"
  portalRef: {name: main, namespace: kube-system}
  members:
    - {email: eve@elsewhere.example, roles: [cockpit-access, customer-admin]}
---
apiVersion: rolecall.dev/v1alpha1
kind: AccountMember
metadata: {name: sneaky}
spec:
  accountRef: {name: first, namespace: other-team}
  email: eve@first.example
  roles: [customer-admin]
"#,
    )
    .await;
    let second = wait_ready(&k.client, &ns, "second", "False", "Conflict").await;
    let (_, _, message) = condition(&second.status.unwrap().conditions, "Ready").unwrap();
    assert!(message.contains("already claimed"), "{message}");
    let elsewhere = wait_ready(&k.client, &ns, "elsewhere", "False", "InvalidSpec").await;
    let (_, _, message) = condition(&elsewhere.status.unwrap().conditions, "Ready").unwrap();
    assert!(
        message.contains("across namespaces are refused"),
        "{message}"
    );
    // The member that points across namespaces says so on itself, and the account it names
    // by name changes nothing while it is there.
    let members_api: Api<AccountMember> = Api::namespaced(k.client.clone(), &ns);
    eventually("sneaky is refused", 60, || async {
        let m = members_api.get("sneaky").await.ok()?;
        let (st, reason, message) = condition(&m.status?.conditions, "Ready")?;
        (st == "False"
            && reason == "InvalidSpec"
            && message.contains("across namespaces are refused"))
        .then_some(())
    })
    .await;
    // Nothing of either reached the portal.
    let m = members(url, "50001").await.unwrap();
    assert!(!m.contains_key("mallory@second.example") && !m.contains_key("eve@first.example"));
    let (code, _) = portal_get(url, "/v1/accounts/50002").await;
    assert_eq!(code, 404);
    assert!(
        events(&k.client, &ns, "second")
            .await
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "Conflict")
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server: tests/k8s/testenv.sh up"]
async fn only_the_leader_acts_and_a_killed_leader_hands_over() {
    let k = cluster().await;
    let ns = namespace(&k.client, "leader").await;
    let server = Server::start();
    let url = &server.url;
    portal(&k.client, &ns, "main", url).await;
    let mut one = Controller::start(&k.kubeconfig, &ns, &["--identity", "one"], NOW);
    let leases: Api<Lease> = Api::namespaced(k.client.clone(), &ns);
    wait_for_leader(&leases, "one").await;
    let two = Controller::start(&k.kubeconfig, &ns, &["--identity", "two"], NOW);
    apply_yaml(&k.client, &ns, ACME).await;
    wait_ready(&k.client, &ns, "acme", "True", "Applied").await;
    eventually("two serves metrics", 30, || async { two.scrape().await }).await;
    assert_eq!(one.metric("rolecall_leader ").await, 1.0);
    assert_eq!(two.metric("rolecall_leader ").await, 0.0);
    assert_eq!(
        two.metric("rolecall_reconciles_total{result=\"applied\"} ")
            .await,
        0.0,
        "the standby reconciled"
    );

    one.kill();
    let killed = Instant::now();
    wait_for_leader(&leases, "two").await;
    let handover = killed.elapsed();
    apply_yaml(
        &k.client,
        &ns,
        &ACME.replace(
            "roles: [cockpit-access]\n",
            "roles: [cockpit-access, technical-contact]\n",
        ),
    )
    .await;
    eventually("two applies the edit", 60, || async {
        let m = members(url, "10042").await?;
        (m.get("bob@acme.example")?.len() == 2).then_some(())
    })
    .await;
    assert!(
        two.metric("rolecall_reconciles_total{result=\"applied\"} ")
            .await
            >= 1.0,
        "the new leader did the work"
    );
    // The Lease runs 3 s in these tests; the candidate asks every second.
    assert!(
        handover < Duration::from_secs(15),
        "handover took {handover:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server: tests/k8s/testenv.sh up"]
async fn sigterm_stops_the_controller_cleanly_and_releases_the_lease() {
    let k = cluster().await;
    let ns = namespace(&k.client, "sigterm").await;
    let mut ctl = Controller::start(&k.kubeconfig, &ns, &["--identity", "solo"], NOW);
    let leases: Api<Lease> = Api::namespaced(k.client.clone(), &ns);
    wait_for_leader(&leases, "solo").await;
    let status = ctl.terminate();
    assert!(
        status.success(),
        "exit status {status:?}: {}",
        ctl.log_text()
    );
    let l = leases.get("rolecall-controller").await.unwrap();
    assert_eq!(
        l.spec.unwrap().holder_identity,
        None,
        "the Lease was not released"
    );
}

/// The chart's RBAC, bound to a user that has nothing else, is all the controller needs.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server and helm: tests/k8s/testenv.sh up && tests/k8s/testenv.sh tools"]
async fn the_charts_rbac_is_enough() {
    let k = cluster().await;
    let Some(helm) = std::env::var_os("ROLECALL_TEST_HELM") else {
        panic!(
            "this test needs helm and ROLECALL_TEST_HELM is not set: run tests/k8s/testenv.sh tools, then eval \"$(tests/k8s/testenv.sh env)\""
        );
    };
    let ns = namespace(&k.client, "rbac").await;
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/rolecall");
    let out = std::process::Command::new(helm)
        .args(["template", "rc", chart, "--namespace", &ns])
        .args(["--set", &format!("controller.watchNamespace={ns}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).unwrap();
    // Create the chart's Roles as rendered; bind them to the test's controller user instead
    // of the ServiceAccount (the test runs the controller as a process, not a pod).
    let mut created = 0;
    for doc in serde_saphyr::from_multiple::<Value>(&rendered).unwrap() {
        if doc.is_null() || doc["kind"] != "Role" {
            continue;
        }
        let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(doc).unwrap();
        let name = role.name_any();
        let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(k.client.clone(), &ns);
        roles.create(&Default::default(), &role).await.unwrap();
        let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "rolecall-controller"}],
        }))
        .unwrap();
        Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(k.client.clone(), &ns)
            .create(&Default::default(), &binding)
            .await
            .unwrap();
        created += 1;
    }
    assert_eq!(
        created, 2,
        "the chart renders a Role for the work and one for the Lease"
    );

    let server = Server::start();
    let url = &server.url;
    portal(&k.client, &ns, "main", url).await;
    apply_yaml(&k.client, &ns, ACME).await;
    apply_yaml(
        &k.client,
        &ns,
        r#"
apiVersion: rolecall.dev/v1alpha1
kind: AccountMember
metadata: {name: carol-acme}
spec:
  accountRef: {name: acme}
  email: carol@acme.example
  roles: [cockpit-access]
"#,
    )
    .await;
    let ctl = Controller::start(&k.controller_kubeconfig, &ns, &[], NOW);
    wait_ready(&k.client, &ns, "acme", "True", "Applied").await;
    assert_eq!(members(url, "10042").await.unwrap().len(), 3);
    let members_api: Api<AccountMember> = Api::namespaced(k.client.clone(), &ns);
    eventually("carol-acme Ready", 60, || async {
        let m = members_api.get("carol-acme").await.ok()?;
        (condition(&m.status?.conditions, "Ready")?.0 == "True").then_some(())
    })
    .await;
    let portals: Api<Portal> = Api::namespaced(k.client.clone(), &ns);
    eventually("the Portal is Ready", 60, || async {
        let p = portals.get("main").await.ok()?;
        (condition(&p.status?.conditions, "Ready")?.0 == "True").then_some(())
    })
    .await;
    assert!(
        events(&k.client, &ns, "acme")
            .await
            .iter()
            .any(|(_, r, _)| r == "Granted"),
        "events could not be written"
    );
    // Deleting runs the finalizer, which needs patch on the object.
    let api: Api<CustomerAccount> = Api::namespaced(k.client.clone(), &ns);
    api.delete("acme", &DeleteParams::default()).await.unwrap();
    eventually("acme is gone", 60, || async {
        api.get_opt("acme").await.unwrap().is_none().then_some(())
    })
    .await;
    let log = ctl.log_text();
    assert!(
        !log.contains("forbidden") && !log.contains("Forbidden"),
        "{log}"
    );
}

/// A new account is reconciled once: its finalizer and its first sync in the same reconcile,
/// and the finalizer's own patch does not queue it again (it used to be two reconciles per
/// account, the first of which only added the finalizer).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server: tests/k8s/testenv.sh up"]
async fn a_new_account_is_reconciled_once() {
    let k = cluster().await;
    let ns = namespace(&k.client, "once").await;
    let server = Server::start();
    portal(&k.client, &ns, "main", &server.url).await;
    let args = ["--concurrency", "1", "--resync", "10m"];
    let ctl = Controller::start(&k.kubeconfig, &ns, &args, NOW);
    let log = &ctl;
    eventually("the caches filled", 30, || async move {
        log.log_text().contains("caches filled").then_some(())
    })
    .await;
    let account = |name: &str, cn: &str| {
        format!(
            "apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: {name}}}\nspec:\n  customerNumber: \"{cn}\"\n  displayName: {name}\n  members:\n    - email: admin@{name}.example\n      roles: [cockpit-access, customer-admin]\n"
        )
    };
    apply_yaml(&k.client, &ns, &account("first", "30001")).await;
    let first = wait_ready(&k.client, &ns, "first", "True", "Applied").await;
    assert!(
        first
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == "rolecall.dev/deletion-policy"),
        "the finalizer is set"
    );
    // One reconcile at a time (`--concurrency 1`): the second account is queued after
    // anything the first one's writes queued, so once both have applied, any second
    // reconcile of the first has run and been counted.
    apply_yaml(&k.client, &ns, &account("second", "30002")).await;
    wait_ready(&k.client, &ns, "second", "True", "Applied").await;
    let series = |result: &str| format!("rolecall_reconciles_total{{result=\"{result}\"}} ");
    let ctl = &ctl;
    let applied = series("applied");
    eventually("both accounts' reconciles counted", 30, || {
        let applied = applied.clone();
        async move { (ctl.metric(&applied).await == 2.0).then_some(()) }
    })
    .await;
    let text = ctl.scrape().await.unwrap_or_default();
    for result in ["in_sync", "observed", "error", "conflict"] {
        assert_eq!(
            ctl.metric(&series(result)).await,
            0.0,
            "a {result} reconcile besides the two that applied:\n{text}"
        );
    }
    assert_eq!(
        members(&server.url, "30001").await.map(|m| m.len()),
        Some(1)
    );
}

/// `--selector` shards the fleet: a controller reconciles only the CustomerAccounts whose
/// labels match, and leaves the others (status and portal) alone for the shard that owns them.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server: tests/k8s/testenv.sh up"]
async fn a_selector_shards_the_accounts() {
    let k = cluster().await;
    let ns = namespace(&k.client, "shard").await;
    let server = Server::start();
    let url = &server.url;
    portal(&k.client, &ns, "main", url).await;
    let account = |name: &str, cn: &str, shard: &str| {
        format!(
            "apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: {name}, labels: {{shard: {shard}}}}}\nspec:\n  customerNumber: \"{cn}\"\n  displayName: {name}\n  members:\n    - email: admin@{name}.example\n      roles: [cockpit-access, customer-admin]\n"
        )
    };
    apply_yaml(&k.client, &ns, &account("east", "20001", "a")).await;
    apply_yaml(&k.client, &ns, &account("west", "20002", "b")).await;
    let mut shard_a = Controller::start(&k.kubeconfig, &ns, &["--selector", "shard=a"], NOW);
    wait_ready(&k.client, &ns, "east", "True", "Applied").await;
    assert!(members(url, "20001").await.is_some());

    // The other shard's account is untouched: no status, nothing in the portal. Shard a's
    // cache, filled before its first reconcile, holds its own account only, and only what is
    // in the cache is ever reconciled; so once east is done, nothing can reach west.
    let log = &shard_a;
    let filled = eventually("shard a's caches filled", 30, || async move {
        log.log_text()
            .lines()
            .find(|l| l.contains("caches filled"))
            .map(str::to_owned)
    })
    .await;
    // The controller logs JSON off a terminal (`"accounts":1`), text on one (`accounts=1`).
    assert!(
        filled.contains("\"accounts\":1,") || filled.contains("accounts=1 "),
        "shard a's cache holds another shard's account: {filled}"
    );
    let accounts: Api<CustomerAccount> = Api::namespaced(k.client.clone(), &ns);
    let west = accounts.get("west").await.unwrap();
    assert!(
        west.status.is_none_or(|s| s.conditions.is_empty()),
        "shard a wrote the status of a shard-b account"
    );
    assert!(members(url, "20002").await.is_none());
    shard_a.terminate();

    // The owner of shard b takes its account.
    let lease = ["--selector", "shard=b", "--lease-name", "rolecall-shard-b"];
    let _shard_b = Controller::start(&k.kubeconfig, &ns, &lease, NOW);
    wait_ready(&k.client, &ns, "west", "True", "Applied").await;
    assert!(members(url, "20002").await.is_some());
}

/// A controller that may not read the rolecall resources stops at once with a sentence that
/// says what is missing, instead of retrying in silence.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server: tests/k8s/testenv.sh up"]
async fn without_permission_the_controller_stops_with_a_clear_error() {
    let k = cluster().await;
    let ns = namespace(&k.client, "noperm").await;
    // The token-file user `rolecall-controller` holds no binding in this namespace.
    let mut ctl = Controller::start(&k.controller_kubeconfig, &ns, &[], NOW);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = ctl.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the controller kept running without permission"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    // Every line the controller wrote: its log, read to the end.
    let log = ctl.log_to_end();
    assert!(
        log.contains("may not list customeraccounts.rolecall.dev"),
        "{log}"
    );
}
