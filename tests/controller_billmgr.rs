//! The controller against a BILLmanager: the built binary as a process, a real kube-apiserver
//! (tests/k8s/testenv.sh) and the BILLmanager emulator. The login comes from the Portal's
//! Secret; the account converges, a restart and an edit send no second password e-mail, and
//! no credential, session id or generated password reaches a log, an event or a status.

mod billmgr_support;
mod common;
mod k8s_support;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, PostParams};
use rolecall::model::{CustomerAccount, Portal};

use billmgr_support::{Billmgr, OWNER_EMAIL, PASSWORD, USERNAME};
use common::NOW;
use k8s_support::{Controller, apply_yaml, cluster, condition, eventually, namespace};

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

fn declaration(members: &str) -> String {
    format!(
        "apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: acme}}\nspec:\n  portalRef: {{name: provider}}\n  customerNumber: \"10042\"\n  timeZone: Europe/Zurich\n  members:\n{members}"
    )
}

const ALICE: &str = "    - email: alice@acme.example\n      roles: [vds, clientticket]\n";
const ALICE2: &str = "    - email: alice@acme.example\n      roles: [vds]\n";
const BOB: &str = "    - email: bob@acme.example\n      roles: [full-access]\n";

async fn no_secrets_anywhere(client: &Client, ns: &str, ctl: &Controller, b: &Billmgr) {
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
    let mut secrets = vec![USERNAME.to_string(), PASSWORD.to_string()];
    secrets.extend(b.session_ids());
    secrets.extend(b.generated_passwords());
    for s in secrets {
        assert!(!seen.contains(&s), "a secret ({} chars) leaked", s.len());
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Kubernetes API server: tests/k8s/testenv.sh up"]
async fn a_billmgr_account_converges_with_the_login_from_the_secret() {
    let k = cluster().await;
    let ns = namespace(&k.client, "billmgr").await;
    let b = Billmgr::start();
    b.add_user("old@acme.example", &["payment"], false);

    let secret: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "billmgr-login"},
        "stringData": {"username": USERNAME, "password": PASSWORD},
    }))
    .unwrap();
    Api::<Secret>::namespaced(k.client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    apply_yaml(
        &k.client,
        &ns,
        &format!(
            "apiVersion: rolecall.dev/v1alpha1\nkind: Portal\nmetadata: {{name: provider}}\nspec:\n  url: {}\n  tokenSecretRef: {{name: billmgr-login, key: password}}\n",
            b.portal_url()
        ),
    )
    .await;
    apply_yaml(&k.client, &ns, &declaration(&format!("{ALICE}{BOB}"))).await;
    let mut ctl = Controller::start(&k.kubeconfig, &ns, &[], NOW);

    converged(&k.client, &ns).await;
    assert_eq!(b.rights("alice@acme.example"), ["clientticket", "vds"]);
    assert!(b.user("bob@acme.example").unwrap().full);
    assert!(
        b.user("old@acme.example").is_none(),
        "undeclared user removed"
    );
    assert!(b.user(OWNER_EMAIL).unwrap().full, "the main user untouched");
    assert_eq!(b.mails_to("alice@acme.example"), 1);
    assert_eq!(b.mails_to("bob@acme.example"), 1);

    // A new process and an edit: rights change, nobody is mailed again.
    ctl.kill();
    let ctl = Controller::start(&k.kubeconfig, &ns, &[], NOW);
    apply_yaml(&k.client, &ns, &declaration(&format!("{ALICE2}{BOB}"))).await;
    converged(&k.client, &ns).await;
    assert_eq!(b.rights("alice@acme.example"), ["vds"]);
    assert_eq!(b.lock().outbox.len(), 2, "no second password e-mail");
    assert_eq!(
        b.lock()
            .users
            .iter()
            .filter(|u| u.email == "alice@acme.example")
            .count(),
        1
    );
    no_secrets_anywhere(&k.client, &ns, &ctl, &b).await;
}
