//! The controller at scale: N CustomerAccounts created at once converge against a real
//! kube-apiserver and the reference portal. Prints how long until every account is Ready, the
//! controller's peak memory and CPU time, and the portal requests it made.
//!
//!     tests/k8s/testenv.sh up && eval "$(tests/k8s/testenv.sh env)"
//!     cargo bench --bench controller -- --accounts 1000 --members 3
//!
//! Nothing here asserts on time: it measures and prints.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/k8s_support/mod.rs"]
mod k8s_support;

use std::time::{Duration, Instant};

use kube::api::{Api, ListParams, Patch, PatchParams};
use rolecall::model::CustomerAccount;

fn arg(name: &str, default: usize) -> usize {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == name)
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `VmHWM` (peak resident set) and user+system CPU seconds of a process, from /proc.
fn usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    (hwm_kib, cpu)
}

/// The CustomerAccount `c{i:05}` with `members` members.
fn account(i: usize, members: usize) -> serde_json::Value {
    let mut ms = Vec::new();
    for m in 0..members {
        let roles = if m == 0 {
            serde_json::json!(["cockpit-access", "customer-admin"])
        } else {
            serde_json::json!(["cockpit-access", {"name": "technical-contact", "until": "2027-06-30"}])
        };
        ms.push(serde_json::json!({"email": format!("m{m}@c{i}.example"), "roles": roles}));
    }
    serde_json::json!({
        "apiVersion": "rolecall.dev/v1alpha1",
        "kind": "CustomerAccount",
        "metadata": {"name": format!("c{i:05}")},
        "spec": {"customerNumber": format!("{}", 100000 + i), "members": ms},
    })
}

/// Creates the accounts, 32 requests at a time; returns how long that took.
async fn create_accounts(api: &Api<CustomerAccount>, accounts: usize, members: usize) -> Duration {
    let started = Instant::now();
    let mut pending = Vec::new();
    for i in 0..accounts {
        let api = api.clone();
        pending.push(tokio::spawn(async move {
            let doc = account(i, members);
            api.patch(
                &format!("c{i:05}"),
                &PatchParams::apply("rolecall-bench").force(),
                &Patch::Apply(&doc),
            )
            .await
            .map(|_| ())
        }));
        if pending.len() >= 32 {
            for p in pending.drain(..) {
                p.await.unwrap().unwrap();
            }
        }
    }
    for p in pending {
        p.await.unwrap().unwrap();
    }
    started.elapsed()
}

/// How many of the accounts have the condition Ready=True.
fn count_ready(items: &[CustomerAccount]) -> usize {
    items
        .iter()
        .filter(|a| {
            a.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .count()
}

/// What one run measured.
struct Figures {
    accounts: usize,
    members: usize,
    concurrency: String,
    created: Duration,
    ready: usize,
    converged: Duration,
    applied: f64,
    requests: f64,
    rss_kib: u64,
    cpu: f64,
}

fn report(f: &Figures) {
    let Figures {
        accounts,
        members,
        concurrency,
        created,
        ready,
        converged,
        applied,
        requests,
        rss_kib,
        cpu,
    } = f;
    println!();
    println!(
        "controller at scale: {accounts} CustomerAccounts x {members} members, concurrency {concurrency}"
    );
    println!(
        "  (2-core machine; API server kube-apiserver 1.20 with etcd on loopback; reference portal over loopback HTTP)"
    );
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| accounts created in the API server | {:.1} s |",
        created.as_secs_f64()
    );
    println!("| accounts Ready | {ready} of {accounts} |");
    println!(
        "| time until every account is Ready | {:.1} s |",
        converged.as_secs_f64()
    );
    println!("| reconciles that applied changes | {applied} |");
    println!("| portal requests (2xx) | {requests} |");
    println!(
        "| controller peak RSS | {:.0} MiB |",
        *rss_kib as f64 / 1024.0
    );
    println!("| controller CPU time | {cpu:.1} s |");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let accounts = arg("--accounts", 1000);
    let members = arg("--members", 3);
    let concurrency = arg("--concurrency", 16);
    // Without the test API server this stops with a message saying so.
    let k = k8s_support::cluster().await;
    let ns = k8s_support::namespace(&k.client, "bench").await;
    let server = common::Server::start();
    k8s_support::portal(&k.client, &ns, "main", &server.url).await;

    let api: Api<CustomerAccount> = Api::namespaced(k.client.clone(), &ns);
    let created = create_accounts(&api, accounts, members).await;

    let concurrency = concurrency.to_string();
    let mut ctl = k8s_support::Controller::start(
        &k.kubeconfig,
        &ns,
        &["--concurrency", &concurrency, "--log-format", "json"],
        common::NOW,
    );
    let pid = ctl.child.id();
    let started = Instant::now();
    let mut ready = 0;
    let mut peak = (0, 0.0);
    while started.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = usage(pid);
        let list = api.list(&ListParams::default()).await.unwrap();
        ready = count_ready(&list.items);
        if ready == accounts {
            break;
        }
    }
    let converged = started.elapsed();
    let requests = ctl
        .metric("rolecall_portal_requests_total{status=\"2xx\"} ")
        .await;
    let applied = ctl
        .metric("rolecall_reconciles_total{result=\"applied\"} ")
        .await;
    ctl.kill();
    let (rss_kib, cpu) = peak;
    report(&Figures {
        accounts,
        members,
        concurrency,
        created,
        ready,
        converged,
        applied,
        requests,
        rss_kib,
        cpu,
    });
    if ready != accounts {
        eprintln!("not every account converged within 600 s");
        std::process::exit(1);
    }
}
