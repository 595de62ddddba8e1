//! The controller's end-to-end tests run against a real kube-apiserver started by
//! `tests/k8s/testenv.sh up` (see `.ci/run`), which exports `ROLECALL_TEST_KUBECONFIG`.
//! The tests are `#[ignore]`d (`cargo test -- --include-ignored` runs them); run without it,
//! they fail with a message instead of passing.
//! Each test works in a namespace of its own, with its own reference portal and controller.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::common::{OPERATOR_TOKEN, bin};

pub struct Cluster {
    pub client: Client,
    pub kubeconfig: PathBuf,
    /// A user that holds no permission until a test binds it (token-auth-file user
    /// `rolecall-controller`).
    pub controller_kubeconfig: PathBuf,
}

/// The test API server. The tests that need it are `#[ignore]`d, so they run only when asked
/// for (`--include-ignored`, as `.ci/run` does); asked for without a server, they fail loudly
/// rather than pass without having run.
pub async fn cluster() -> Cluster {
    let Some(path) = std::env::var_os("ROLECALL_TEST_KUBECONFIG") else {
        panic!(
            "this test needs a Kubernetes API server and ROLECALL_TEST_KUBECONFIG is not set: run tests/k8s/testenv.sh up and eval \"$(tests/k8s/testenv.sh env)\""
        );
    };
    let kubeconfig = PathBuf::from(path);
    let controller_kubeconfig = std::env::var_os("ROLECALL_TEST_KUBECONFIG_CONTROLLER")
        .map(PathBuf::from)
        .unwrap_or_else(|| kubeconfig.with_file_name("kubeconfig-controller"));
    let client = client_for(&kubeconfig).await;
    install_crds(&client).await;
    Cluster {
        client,
        kubeconfig,
        controller_kubeconfig,
    }
}

pub async fn client_for(path: &std::path::Path) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = Kubeconfig::read_from(path).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    Client::try_from(config).expect("kube client")
}

/// Applies `crds/` (server-side, idempotent) and waits until they are served.
async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).unwrap();
        let name = crd.metadata.name.clone().unwrap();
        api.patch(
            &name,
            &PatchParams::apply("rolecall-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
        names.push(name);
    }
    for name in names {
        eventually(&format!("CRD {name} established"), 30, || async {
            let crd = api.get(&name).await.ok()?;
            crd.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await;
    }
}

/// A fresh namespace `rc-<prefix>-<random>`.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let suffix = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            & 0xff_ffff
    );
    let name = format!("rc-{prefix}-{suffix}");
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    name
}

/// The Secret holding the operator token of the test portal, and a Portal pointing at it.
pub async fn portal(client: &Client, ns: &str, name: &str, url: &str) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("{name}-token")},
        "stringData": {"token": OPERATOR_TOKEN},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    apply_yaml(
        client,
        ns,
        &format!(
            "apiVersion: rolecall.dev/v1alpha1\nkind: Portal\nmetadata: {{name: {name}}}\nspec:\n  url: {url}\n  tokenSecretRef: {{name: {name}-token, key: token}}\n"
        ),
    )
    .await;
}

/// Applies rolecall objects written as YAML (several documents allowed), server-side.
pub async fn apply_yaml(client: &Client, ns: &str, yaml: &str) {
    use rolecall::model::{AccountMember, CustomerAccount, NotificationContact, Portal};
    for doc in serde_saphyr::from_multiple::<serde_json::Value>(yaml).unwrap() {
        let name = doc["metadata"]["name"].as_str().unwrap().to_string();
        let pp = PatchParams::apply("rolecall-tests").force();
        let patch = Patch::Apply(&doc);
        let result = match doc["kind"].as_str().unwrap() {
            "Portal" => Api::<Portal>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &patch)
                .await
                .map(|_| ()),
            "CustomerAccount" => Api::<CustomerAccount>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &patch)
                .await
                .map(|_| ()),
            "AccountMember" => Api::<AccountMember>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &patch)
                .await
                .map(|_| ()),
            "NotificationContact" => Api::<NotificationContact>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &patch)
                .await
                .map(|_| ()),
            other => panic!("apply_yaml: unexpected kind {other}"),
        };
        result.unwrap_or_else(|e| panic!("applying {name}: {e}"));
    }
}

/// Polls `check` every 200 ms until it answers `Some`, or panics after `secs` seconds.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A running `rolecall controller`; killed on drop.
pub struct Controller {
    pub child: Child,
    pub metrics: String,
    pub log: Arc<Mutex<Vec<String>>>,
    /// The thread that reads the controller's standard error into `log`.
    reader: Option<std::thread::JoinHandle<()>>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Controller {
    /// Starts the controller for one namespace, its Lease in that namespace too. The tests'
    /// short `--lease-duration` and `--resync` apply unless `extra` names its own.
    pub fn start(kubeconfig: &std::path::Path, ns: &str, extra: &[&str], now: &str) -> Controller {
        let port = free_port();
        let defaults = [("--lease-duration", "3s"), ("--resync", "30s")]
            .into_iter()
            .filter(|(flag, _)| !extra.contains(flag))
            .flat_map(|(flag, value)| [flag, value]);
        let mut child = Command::new(bin())
            .args([
                "controller",
                "--namespace",
                ns,
                "--lease-namespace",
                ns,
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
            ])
            .args(defaults)
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("ROLECALL_NOW", now)
            .env(
                "RUST_LOG",
                std::env::var("ROLECALL_TEST_CONTROLLER_LOG")
                    .unwrap_or_else(|_| "info,rolecall=debug".into()),
            )
            .env_remove("POD_NAMESPACE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Controller {
            child,
            metrics: format!("http://127.0.0.1:{port}"),
            log,
            reader: Some(reader),
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The whole log of a controller that has exited: waits until its standard error is read
    /// to the end.
    pub fn log_to_end(&mut self) -> String {
        assert!(
            self.child.try_wait().is_ok_and(|s| s.is_some()),
            "log_to_end: the controller is still running"
        );
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.log_text()
    }

    /// `GET /metrics`, or `None` while the server is not up.
    pub async fn scrape(&self) -> Option<String> {
        let r = reqwest::get(format!("{}/metrics", self.metrics))
            .await
            .ok()?;
        r.text().await.ok()
    }

    /// The value of one series (`name{labels}`) in `/metrics`, 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.scrape().await.unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the controller ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
        // A failing test shows what the controller said.
        if std::thread::panicking() {
            eprintln!("--- controller log ---\n{}", self.log_text());
        }
    }
}

/// The condition `type_` of an object's status, as (status, reason, message).
pub fn condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<(String, String, String)> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Events about the object named `name`, as (type, reason, note).
pub async fn events(client: &Client, ns: &str, name: &str) -> Vec<(String, String, String)> {
    use k8s_openapi::api::events::v1::Event;
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let list = api.list(&Default::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| {
            e.regarding
                .as_ref()
                .and_then(|r| r.name.as_deref())
                .is_some_and(|n| n == name)
        })
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}
