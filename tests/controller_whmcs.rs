//! The controller against a WHMCS installation: the built binary as a process, a real
//! kube-apiserver (tests/k8s/testenv.sh) and the WHMCS API emulator. WHMCS cannot list its
//! invitations, so the CustomerAccount's status is the only record that keeps the controller
//! from inviting again: these tests count the emulator's outbox across restarts, edits, an
//! apply that fails half-way, an accepted invitation and a deletion with `Revoke`.

mod common;
mod k8s_support;
mod whmcs_support;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use rolecall::model::{CustomerAccount, Portal};

use common::NOW;
use k8s_support::{Controller, apply_yaml, cluster, condition, eventually, namespace};
use whmcs_support::{ACCESSKEY, IDENTIFIER, SECRET, Whmcs};

async fn account(client: &Client, ns: &str) -> CustomerAccount {
    Api::<CustomerAccount>::namespaced(client.clone(), ns)
        .get("acme")
        .await
        .unwrap()
}

/// Waits until `acme` is Ready (Applied or InSync) for its current generation.
async fn converged(client: &Client, ns: &str) -> CustomerAccount {
    eventually("acme Ready for its generation", 60, || async {
        let a = account(client, ns).await;
        let s = a.status.as_ref()?;
        let (st, re, _) = condition(&s.conditions, "Ready")?;
        (st == "True"
            && (re == "Applied" || re == "InSync")
            && s.observed_generation == a.metadata.generation)
            .then_some(a)
    })
    .await
}

/// The e-mails of the account's recorded invitations.
fn recorded(a: &CustomerAccount) -> Vec<String> {
    let mut v: Vec<String> = a
        .status
        .iter()
        .flat_map(|s| s.whmcs_invitations.iter().map(|i| i.email.clone()))
        .collect();
    v.sort();
    v
}

fn declaration(client: u64, members: &str, policy: &str) -> String {
    format!(
        "apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: acme}}\nspec:\n  portalRef: {{name: billing}}\n  customerNumber: \"{client}\"\n  timeZone: Europe/Zurich\n  members:\n{members}  contacts:\n    - email: billing@acme.example\n      name: Billing Dept\n      notifications: [invoices, domains]\n{policy}"
    )
}

const ALICE: &str = "    - email: alice@acme.example\n      name: Alice Example\n      roles: [invoices, tickets]\n";
const BOB: &str = "    - email: bob@acme.example\n      roles: [tickets]\n";
const BOB2: &str = "    - email: bob@acme.example\n      roles: [tickets, quotes]\n";
const ALICE3: &str = "    - email: alice@acme.example\n      name: Alice Example\n      roles: [invoices, tickets, quotes]\n";
const CAROL_DAN: &str = "    - email: carol@acme.example\n      roles: [domains]\n    - email: dan@acme.example\n      roles: [domains]\n";

/// Nothing the controller wrote anywhere carries a credential.
async fn no_credentials_anywhere(client: &Client, ns: &str, ctl: &Controller) {
    use k8s_openapi::api::events::v1::Event;
    let mut seen = ctl.log_text();
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    for e in events.list(&Default::default()).await.unwrap() {
        seen.push_str(&serde_json::to_string(&e).unwrap());
    }
    let accounts: Api<CustomerAccount> = Api::namespaced(client.clone(), ns);
    for a in accounts.list(&Default::default()).await.unwrap() {
        seen.push_str(&serde_json::to_string(&a.status).unwrap());
    }
    let portals: Api<Portal> = Api::namespaced(client.clone(), ns);
    for p in portals.list(&Default::default()).await.unwrap() {
        seen.push_str(&serde_json::to_string(&p.status).unwrap());
    }
    for secret in [IDENTIFIER, SECRET, ACCESSKEY] {
        assert!(!seen.contains(secret), "a WHMCS credential leaked");
    }
}

/// The credentials and the Portal `billing` that points at `whmcs`.
async fn whmcs_portal(kube: &Client, ns: &str, whmcs: &Whmcs) {
    // The credentials: the identifier and access key under fixed keys, the secret under the
    // key tokenSecretRef names.
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "whmcs-api"},
        "stringData": {"identifier": IDENTIFIER, "secret": SECRET, "accesskey": ACCESSKEY},
    }))
    .unwrap();
    Api::<Secret>::namespaced(kube.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    apply_yaml(
        kube,
        ns,
        &format!(
            "apiVersion: rolecall.dev/v1alpha1\nkind: Portal\nmetadata: {{name: billing}}\nspec:\n  url: {}\n  tokenSecretRef: {{name: whmcs-api, key: secret}}\n",
            whmcs.portal_url()
        ),
    )
    .await;
}

/// What the first sync of Alice and Bob leaves in WHMCS and in the status of `a`.
fn assert_first_sync(whmcs: &Whmcs, client: u64, a: &CustomerAccount) {
    assert_eq!(whmcs.invitations_to("alice@acme.example"), 1);
    assert_eq!(
        whmcs.permissions(client, "bob@acme.example"),
        Some(vec!["tickets".to_string()])
    );
    assert!(whmcs.contact(client, "billing@acme.example").is_some());
    let status = a.status.clone().unwrap();
    assert_eq!(recorded(a), ["alice@acme.example"]);
    let entry = &status.whmcs_invitations[0];
    assert_eq!(entry.client_id, client.to_string());
    assert_eq!(entry.sent_at, NOW);
    assert_eq!(entry.expires_at, "2026-12-03T09:00:00Z");
    assert_eq!(entry.permissions, ["invoices", "tickets"]);
    assert_eq!(status.pending_invitations, 1);
}

/// An apply that fails half-way: the first invitation goes out but its answer is lost.
/// It must be recorded with the failure, or the retry would send it again.
async fn failed_apply_is_recorded(kube: &Client, ns: &str, whmcs: &Whmcs, client: u64) {
    whmcs.lock().fail_after_commit = Some("CreateClientInvite".into());
    apply_yaml(
        kube,
        ns,
        &declaration(client, &format!("{ALICE}{BOB2}{CAROL_DAN}"), ""),
    )
    .await;
    eventually("the failed apply is recorded", 60, || async {
        let a = account(kube, ns).await;
        let (st, _, _) = condition(&a.status.as_ref()?.conditions, "Ready")?;
        (st == "False" && recorded(&a).contains(&"carol@acme.example".to_string())).then_some(())
    })
    .await;
    whmcs.lock().fail_after_commit = None;
    let a = converged(kube, ns).await;
    assert_eq!(whmcs.invitations_to("carol@acme.example"), 1);
    assert_eq!(whmcs.invitations_to("dan@acme.example"), 1);
    assert_eq!(
        recorded(&a),
        [
            "alice@acme.example",
            "carol@acme.example",
            "dan@acme.example"
        ]
    );
}

/// The owner was never written to, and nobody was invited twice.
fn assert_owner_untouched_and_invited_once(whmcs: &Whmcs, client: u64) {
    assert!(whmcs.is_owner(client, "owner@acme.example"));
    let owner_id = {
        let d = whmcs.lock();
        d.users
            .iter()
            .find(|u| u.email == "owner@acme.example")
            .map(|u| u.id.to_string())
            .unwrap()
    };
    for (action, form) in whmcs.lock().requests.iter() {
        if matches!(
            action.as_str(),
            "UpdateUserPermissions" | "DeleteUserClient" | "UpdateUser"
        ) {
            assert_ne!(
                form.get("user_id"),
                Some(&owner_id),
                "{action} on the owner"
            );
        }
    }
    for who in ["alice", "carol", "dan"] {
        assert_eq!(
            whmcs.invitations_to(&format!("{who}@acme.example")),
            1,
            "{who}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server: tests/k8s/testenv.sh up"]
async fn a_whmcs_account_converges_and_its_status_keeps_invitations_from_being_sent_twice() {
    let k = cluster().await;
    let ns = namespace(&k.client, "whmcs").await;
    let whmcs = Whmcs::start();
    whmcs.lock().accesskey = Some(ACCESSKEY.into());
    let client = whmcs.add_client("Acme AG", "owner@acme.example");
    whmcs.add_user(client, "bob@acme.example", &["tickets", "quotes"]);

    whmcs_portal(&k.client, &ns, &whmcs).await;
    apply_yaml(
        &k.client,
        &ns,
        &declaration(client, &format!("{ALICE}{BOB}"), ""),
    )
    .await;
    let mut ctl = Controller::start(&k.kubeconfig, &ns, &[], NOW);

    let a = converged(&k.client, &ns).await;
    assert_first_sync(&whmcs, client, &a);
    let portals: Api<Portal> = Api::namespaced(k.client.clone(), &ns);
    eventually("the WHMCS Portal is Ready", 60, || async {
        let p = portals.get("billing").await.ok()?;
        (condition(&p.status?.conditions, "Ready")?.0 == "True").then_some(())
    })
    .await;

    // A new process (a new leader) and an unrelated edit: the record comes from the status,
    // so Alice is not invited again.
    ctl.kill();
    let mut ctl = Controller::start(&k.kubeconfig, &ns, &[], NOW);
    apply_yaml(
        &k.client,
        &ns,
        &declaration(client, &format!("{ALICE}{BOB2}"), ""),
    )
    .await;
    let a = converged(&k.client, &ns).await;
    assert_eq!(
        whmcs.permissions(client, "bob@acme.example"),
        Some(vec!["quotes".to_string(), "tickets".into()])
    );
    assert_eq!(
        whmcs.invitations_to("alice@acme.example"),
        1,
        "invited once"
    );
    assert_eq!(recorded(&a), ["alice@acme.example"]);

    failed_apply_is_recorded(&k.client, &ns, &whmcs, client).await;

    // Alice accepts: she is a user of the client now, which ends her record; the permissions
    // declared since are set on her.
    assert!(whmcs.accept(client, "alice@acme.example"));
    apply_yaml(
        &k.client,
        &ns,
        &declaration(client, &format!("{ALICE3}{BOB2}{CAROL_DAN}"), ""),
    )
    .await;
    let a = converged(&k.client, &ns).await;
    assert_eq!(
        whmcs.permissions(client, "alice@acme.example"),
        Some(vec![
            "invoices".to_string(),
            "quotes".into(),
            "tickets".into()
        ])
    );
    assert_eq!(recorded(&a), ["carol@acme.example", "dan@acme.example"]);
    assert_eq!(whmcs.invitations_to("alice@acme.example"), 1);

    // Deleting with Revoke removes what the object declared; the pending invitations end
    // with the object (WHMCS cannot cancel them) and the owner stays.
    apply_yaml(
        &k.client,
        &ns,
        &declaration(
            client,
            &format!("{ALICE3}{BOB2}{CAROL_DAN}"),
            "  policy:\n    deletionPolicy: Revoke\n    maxRemovals: \"100%\"\n",
        ),
    )
    .await;
    converged(&k.client, &ns).await;
    let api: Api<CustomerAccount> = Api::namespaced(k.client.clone(), &ns);
    api.delete("acme", &DeleteParams::default()).await.unwrap();
    eventually("acme is gone", 60, || async {
        api.get_opt("acme").await.unwrap().is_none().then_some(())
    })
    .await;
    assert_eq!(whmcs.permissions(client, "alice@acme.example"), None);
    assert_eq!(whmcs.permissions(client, "bob@acme.example"), None);
    assert!(whmcs.contact(client, "billing@acme.example").is_none());

    assert_owner_untouched_and_invited_once(&whmcs, client);
    no_credentials_anywhere(&k.client, &ns, &ctl).await;
    ctl.terminate();
    assert!(!ctl.log_text().contains(SECRET));
}

/// Credentials that WHMCS refuses, a Secret without the identifier, and plain HTTP to another
/// host: the Portal says why without printing a credential, and nothing is sent.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server: tests/k8s/testenv.sh up"]
async fn a_whmcs_portal_without_usable_credentials_is_not_ready_and_says_why() {
    let k = cluster().await;
    let ns = namespace(&k.client, "whmcs-bad").await;
    let whmcs = Whmcs::start();
    let secrets: Api<Secret> = Api::namespaced(k.client.clone(), &ns);
    for (name, data) in [
        (
            "wrong",
            serde_json::json!({"identifier": IDENTIFIER, "secret": "not-the-secret-0x51"}),
        ),
        ("partial", serde_json::json!({"secret": SECRET})),
    ] {
        let s: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name}, "stringData": data,
        }))
        .unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    apply_yaml(
        &k.client,
        &ns,
        &format!(
            "apiVersion: rolecall.dev/v1alpha1\nkind: Portal\nmetadata: {{name: wrong}}\nspec:\n  url: {url}\n  tokenSecretRef: {{name: wrong, key: secret}}\n---\napiVersion: rolecall.dev/v1alpha1\nkind: Portal\nmetadata: {{name: partial}}\nspec:\n  url: {url}\n  tokenSecretRef: {{name: partial, key: secret}}\n---\napiVersion: rolecall.dev/v1alpha1\nkind: Portal\nmetadata: {{name: remote}}\nspec:\n  url: whmcs+http://billing.example.net/\n  tokenSecretRef: {{name: wrong, key: secret}}\n",
            url = whmcs.portal_url()
        ),
    )
    .await;
    let ctl = Controller::start(&k.kubeconfig, &ns, &[], NOW);
    let portals: Api<Portal> = Api::namespaced(k.client.clone(), &ns);
    let not_ready = |name: &'static str| {
        let portals = portals.clone();
        async move {
            eventually(&format!("Portal {name} not Ready"), 60, || async {
                let p = portals.get(name).await.ok()?;
                let (st, reason, message) = condition(&p.status?.conditions, "Ready")?;
                (st == "False").then_some((reason, message))
            })
            .await
        }
    };
    let (reason, _) = not_ready("wrong").await;
    assert_eq!(reason, "Unauthorized");
    let (reason, message) = not_ready("partial").await;
    assert_eq!(reason, "InvalidSpec");
    assert!(message.contains("\"identifier\""), "{message}");
    let (reason, message) = not_ready("remote").await;
    assert_eq!(reason, "InvalidSpec");
    assert!(message.contains("whmcs+https://"), "{message}");
    assert!(whmcs.lock().outbox.is_empty());
    no_credentials_anywhere(&k.client, &ns, &ctl).await;
    assert!(!ctl.log_text().contains("not-the-secret-0x51"));
}
