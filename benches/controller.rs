//! The controller at scale: N CustomerAccounts created at once converge against a real
//! kube-apiserver and the reference portal. Prints how long until every account is Ready, the
//! controller's peak memory and CPU time, and the portal requests it made.
//!
//!     tests/k8s/testenv.sh up && eval "$(tests/k8s/testenv.sh env)"
//!     cargo bench --bench controller -- --accounts 1000 --members 3
//!     cargo bench --bench controller -- --accounts 10000 --members 3 --replicas 2
//!
//! With `--replicas R` the accounts are labelled `shard=a`, `shard=b`, … in turn and R
//! controllers run side by side, each with `--selector shard=X` and a Lease of its own
//! (`--lease-name rolecall-shard-X`), as two Helm releases would; the figures are per replica.
//! Readiness is counted from a watch on the CustomerAccounts, not by listing them again and
//! again, so the bench adds little load to the API server it measures. The controllers run
//! with their default `--resync` (10 minutes) unless `--resync` is given.
//!
//! Nothing here asserts on time: it measures and prints.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/k8s_support/mod.rs"]
mod k8s_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use rolecall::model::CustomerAccount;

/// The value after `name` on the command line.
fn arg_text(name: &str) -> Option<String> {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == name)
        .and_then(|i| argv.get(i + 1))
        .cloned()
}

fn arg(name: &str, default: usize) -> usize {
    arg_text(name)
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

/// The shard label value of replica `r`: `a`, `b`, …
fn shard(r: usize) -> String {
    char::from(b'a' + (r % 26) as u8).to_string()
}

/// The CustomerAccount `c{i:05}` with `members` members, labelled with its shard when the
/// fleet is split.
fn account(i: usize, members: usize, replicas: usize) -> serde_json::Value {
    let mut ms = Vec::new();
    for m in 0..members {
        let roles = if m == 0 {
            serde_json::json!(["cockpit-access", "customer-admin"])
        } else {
            serde_json::json!(["cockpit-access", {"name": "technical-contact", "until": "2027-06-30"}])
        };
        ms.push(serde_json::json!({"email": format!("m{m}@c{i}.example"), "roles": roles}));
    }
    let mut metadata = serde_json::json!({"name": format!("c{i:05}")});
    if replicas > 1 {
        metadata["labels"] = serde_json::json!({"shard": shard(i % replicas)});
    }
    serde_json::json!({
        "apiVersion": "rolecall.dev/v1alpha1",
        "kind": "CustomerAccount",
        "metadata": metadata,
        "spec": {"customerNumber": format!("{}", 100000 + i), "members": ms},
    })
}

/// Creates the accounts, 32 requests at a time; returns how long that took.
async fn create_accounts(
    api: &Api<CustomerAccount>,
    accounts: usize,
    members: usize,
    replicas: usize,
) -> Duration {
    let started = Instant::now();
    let mut pending = Vec::new();
    for i in 0..accounts {
        let api = api.clone();
        pending.push(tokio::spawn(async move {
            let doc = account(i, members, replicas);
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

fn is_ready(a: &CustomerAccount) -> bool {
    a.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// The shard (replica index) of an account, from its label; 0 when the fleet is not split.
fn shard_of(a: &CustomerAccount, replicas: usize) -> usize {
    a.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("shard"))
        .and_then(|s| (0..replicas).find(|r| shard(*r) == *s))
        .unwrap_or(0)
}

/// Follows the accounts through one watch until every account is Ready or `limit` has passed:
/// how many are Ready per shard, and when each shard had all of its accounts Ready.
async fn watch_ready(
    api: &Api<CustomerAccount>,
    replicas: usize,
    per_shard: &[usize],
    started: Instant,
    limit: Duration,
) -> (Vec<usize>, Vec<Option<Duration>>) {
    let mut ready: HashMap<String, usize> = HashMap::new();
    let mut counts = vec![0; replicas];
    let mut done: Vec<Option<Duration>> = vec![None; replicas];
    let mut events = std::pin::pin!(watcher(api.clone(), watcher::Config::default()));
    let deadline = tokio::time::Instant::from_std(started + limit);
    while done.iter().any(Option::is_none) {
        let event = match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(event)) => event,
            Ok(None) | Err(_) => break,
        };
        let obj = match event {
            Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => obj,
            _ => continue,
        };
        let name = obj.metadata.name.clone().unwrap_or_default();
        let s = shard_of(&obj, replicas);
        match (is_ready(&obj), ready.contains_key(&name)) {
            (true, false) => {
                ready.insert(name, s);
                counts[s] += 1;
            }
            (false, true) => {
                ready.remove(&name);
                counts[s] -= 1;
            }
            _ => {}
        }
        if counts[s] == per_shard[s] && done[s].is_none() {
            done[s] = Some(started.elapsed());
        }
    }
    (counts, done)
}

/// What one controller process measured.
struct Replica {
    selector: Option<String>,
    accounts: usize,
    ready: usize,
    converged: Option<Duration>,
    applied: f64,
    reconciles: f64,
    requests: f64,
    rss_kib: u64,
    cpu: f64,
}

fn report(accounts: usize, members: usize, concurrency: usize, created: Duration, rs: &[Replica]) {
    println!();
    println!(
        "controller at scale: {accounts} CustomerAccounts x {members} members, {} replica(s), concurrency {concurrency}",
        rs.len()
    );
    println!(
        "  (2-core machine; API server kube-apiserver 1.20 with etcd on loopback; reference portal over loopback HTTP)"
    );
    println!(
        "accounts created in the API server: {:.1} s",
        created.as_secs_f64()
    );
    println!(
        "| replica | its accounts | Ready | time until all its accounts are Ready | reconciles (applied) | portal requests (2xx) | peak RSS | CPU time |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rs {
        let time = r.converged.map_or("not within the limit".to_string(), |d| {
            format!("{:.1} s", d.as_secs_f64())
        });
        println!(
            "| {} | {} | {} | {time} | {} ({}) | {} | {:.0} MiB | {:.1} s |",
            r.selector.as_deref().unwrap_or("all"),
            r.accounts,
            r.ready,
            r.reconciles,
            r.applied,
            r.requests,
            r.rss_kib as f64 / 1024.0,
            r.cpu
        );
    }
    let all = rs.iter().filter_map(|r| r.converged).max();
    if rs.iter().all(|r| r.converged.is_some())
        && let Some(all) = all
    {
        println!(
            "time until every account is Ready: {:.1} s",
            all.as_secs_f64()
        );
    }
}

/// The controllers, one per shard: `--selector shard=X` and a Lease of its own when the fleet
/// is split.
fn start_replicas(
    k: &k8s_support::Cluster,
    ns: &str,
    replicas: usize,
    concurrency: &str,
    resync: &str,
) -> Vec<(Option<String>, k8s_support::Controller)> {
    (0..replicas)
        .map(|r| {
            let mut extra = vec![
                "--concurrency".to_string(),
                concurrency.to_string(),
                "--resync".into(),
                resync.into(),
                "--log-format".into(),
                "json".into(),
            ];
            let selector = (replicas > 1).then(|| format!("shard={}", shard(r)));
            if let Some(selector) = &selector {
                extra.extend([
                    "--selector".to_string(),
                    selector.clone(),
                    "--lease-name".into(),
                    format!("rolecall-shard-{}", shard(r)),
                ]);
            }
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let ctl = k8s_support::Controller::start(&k.kubeconfig, ns, &extra, common::NOW);
            (selector, ctl)
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let accounts = arg("--accounts", 1000);
    let members = arg("--members", 3);
    let concurrency = arg("--concurrency", 16);
    let replicas = arg("--replicas", 1).clamp(1, 26);
    let resync = arg_text("--resync").unwrap_or_else(|| "10m".into());
    // Without the test API server this stops with a message saying so.
    let k = k8s_support::cluster().await;
    let ns = k8s_support::namespace(&k.client, "bench").await;
    let server = common::Server::start();
    k8s_support::portal(&k.client, &ns, "main", &server.url).await;

    let api: Api<CustomerAccount> = Api::namespaced(k.client.clone(), &ns);
    let created = create_accounts(&api, accounts, members, replicas).await;
    let per_shard: Vec<usize> = (0..replicas)
        .map(|r| (0..accounts).filter(|i| i % replicas == r).count())
        .collect();

    let mut controllers = start_replicas(&k, &ns, replicas, &concurrency.to_string(), &resync);
    let started = Instant::now();
    let limit = Duration::from_secs(600);
    let (ready, converged) = watch_ready(&api, replicas, &per_shard, started, limit).await;
    let mut figures = Vec::new();
    for (r, (selector, ctl)) in controllers.iter_mut().enumerate() {
        let (rss_kib, cpu) = usage(ctl.child.id());
        let series = |result: &str| format!("rolecall_reconciles_total{{result=\"{result}\"}} ");
        let applied = ctl.metric(&series("applied")).await;
        let mut reconciles = 0.0;
        for result in [
            "applied", "in_sync", "observed", "refused", "invalid", "conflict", "error",
        ] {
            reconciles += ctl.metric(&series(result)).await;
        }
        let requests = ctl
            .metric("rolecall_portal_requests_total{status=\"2xx\"} ")
            .await;
        ctl.kill();
        figures.push(Replica {
            selector: selector.clone(),
            accounts: per_shard[r],
            ready: ready[r],
            converged: converged[r],
            applied,
            reconciles,
            requests,
            rss_kib,
            cpu,
        });
    }
    report(accounts, members, concurrency, created, &figures);
    if figures.iter().any(|r| r.converged.is_none()) {
        eprintln!("not every account converged within {} s", limit.as_secs());
        std::process::exit(1);
    }
}
