//! The Kubernetes controller (SPEC §6): reconciles each CustomerAccount, with the AccountMembers
//! and NotificationContacts that point to it, against its Portal, with the same reader, planner,
//! safety rules and apply engine as the CLI.
//!
//! Only the holder of the leader Lease watches and writes; the others wait. Every object kind is
//! read through a reflector driven by its own task, so the caches an account is planned from are
//! complete before its first reconcile: a member declared in a separate object is never pruned
//! because its watch had not caught up.

mod billmgr;
pub mod connections;
pub mod desired;
pub mod lease;
pub mod metrics;
mod reconcile;
mod status;
mod watch;
mod whmcs;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::model::{AccountMember, CustomerAccount, NotificationContact, Portal};
use lease::{Elector, LeaseConfig};
use metrics::Metrics;
use watch::reflect;

/// The field manager of every status the controller writes (server-side apply).
pub const FIELD_MANAGER: &str = "rolecall-controller";
/// Keeps a CustomerAccount until its `deletionPolicy` has been carried out.
pub const FINALIZER: &str = "rolecall.dev/deletion-policy";

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Watch only this namespace (default: all).
    pub namespace: Option<String>,
    /// Reconcile only CustomerAccounts matching this label selector (sharding).
    pub selector: Option<String>,
    pub metrics_addr: SocketAddr,
    /// Reconcile every account at least this often, to catch drift made on the portal.
    pub resync: Duration,
    /// The Lease that elects the one active process.
    pub lease_name: String,
    pub lease_namespace: String,
    pub lease_duration: Duration,
    /// This process, as written in the Lease and in events.
    pub identity: String,
    /// Accounts reconciled at once.
    pub concurrency: u16,
    /// An extra CA (PEM) to trust for portals' TLS certificates.
    pub ca_file: Option<PathBuf>,
}

/// Why a reconcile did not finish; the account is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the Kubernetes API failed: {0}")]
    Kube(#[from] kube::Error),
    /// A failure with a condition reason (`PortalUnreachable`, `Unauthorized`, `Conflict`, ...).
    #[error("{message}")]
    Reconcile {
        reason: &'static str,
        message: String,
    },
    #[error("the finalizer could not be handled: {0}")]
    Finalizer(String),
}

impl Error {
    pub fn reconcile(reason: &'static str, message: impl Into<String>) -> Error {
        Error::Reconcile {
            reason,
            message: message.into(),
        }
    }
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot connect to the Kubernetes API (in-cluster or KUBECONFIG): {0}")]
    Connect(#[source] kube::Error),
    #[error(transparent)]
    Crds(#[from] CrdError),
    #[error(transparent)]
    Metrics(metrics::ServeError),
    #[error("the metrics server stopped: {0}")]
    MetricsTask(#[source] tokio::task::JoinError),
}

/// Why the rolecall.dev resources cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error(
        "the CustomResourceDefinition {plural}.rolecall.dev is not installed in this cluster: install them with `rolecall crds | kubectl apply -f -` or the Helm chart"
    )]
    NotInstalled { plural: String },
    #[error("the controller may not list {plural}.rolecall.dev: {message}; check its ClusterRole")]
    Forbidden { plural: String, message: String },
    #[error("cannot list {plural}.rolecall.dev: {source}")]
    List {
        plural: String,
        #[source]
        source: kube::Error,
    },
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub config: Config,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub accounts: Store<CustomerAccount>,
    /// What the CustomerAccount watch last saw of each account: a reconcile that adds the
    /// finalizer says so here, so that its own patch does not queue the account again.
    account_changes: watch::Changes,
    pub members: Store<AccountMember>,
    pub contacts: Store<NotificationContact>,
    pub portals: Store<Portal>,
    /// Each Portal's connection, shared by its accounts' reconciles for up to a minute.
    pub connections: connections::Connections,
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The WHMCS invitation record of each CustomerAccount (by uid) as its last reconcile in
    /// this term left it. The status holds it across processes; this copy covers a status
    /// write that failed after an invitation went out, and a reflector that has not seen our
    /// last write yet. It lives as long as the leadership term: another leader may have
    /// changed the status meanwhile.
    invitations: Mutex<HashMap<String, Vec<crate::portal::whmcs::InvitationRecord>>>,
    /// The (account uid, member, role, until) this process has announced with a
    /// `RoleExpiringSoon` event, so each is announced once however often it reconciles.
    expiry_announced: Mutex<std::collections::HashSet<String>>,
}

impl Context {
    /// Whether this (account, member, role, until) is announced for the first time; it is
    /// remembered from then on.
    fn first_expiry_notice(&self, key: String) -> bool {
        self.expiry_announced
            .lock()
            .map(|mut seen| seen.insert(key))
            .unwrap_or(false)
    }

    /// The next retry delay of a failing object: 2 s, 4 s, 8 s … up to 5 minutes.
    fn backoff(&self, key: &str) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return Duration::from_secs(30);
        };
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let secs = 2u64.saturating_pow((*n).min(9)).min(300);
        Duration::from_secs(secs)
    }

    fn succeeded(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }
}

/// `namespace/name` of an object, for logs and the failure counts (never a metric label).
pub fn key_of<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// Runs the controller until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(RunError::Connect)?;
    check_crds(&client, config.namespace.as_deref()).await?;

    let metrics = Arc::new(Metrics::new());
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
    });
    let server = tokio::spawn(metrics::serve(
        config.metrics_addr,
        metrics.clone(),
        stopped(shutdown_rx.clone()),
    ));
    metrics.set_ready();

    let elector = Elector::new(
        client.clone(),
        LeaseConfig {
            name: config.lease_name.clone(),
            namespace: config.lease_namespace.clone(),
            identity: config.identity.clone(),
            duration: config.lease_duration,
        },
    );
    lead(&client, &config, &metrics, &elector, shutdown_rx).await;
    if let Err(e) = elector.release().await {
        tracing::warn!(error = %e, "could not release the leader Lease");
    }
    match server.await {
        Ok(Err(e)) => Err(RunError::Metrics(e)),
        Err(e) => Err(RunError::MetricsTask(e)),
        Ok(Ok(())) => Ok(()),
    }
}

/// Waits for the Lease, works while holding it, and waits again if it is lost.
async fn lead(
    client: &Client,
    config: &Config,
    metrics: &Arc<Metrics>,
    elector: &Elector,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let retry = elector.config().retry();
    loop {
        // Candidate: ask until the Lease is ours or we are told to stop.
        loop {
            if *shutdown.borrow() {
                return;
            }
            match elector.try_acquire().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the leader Lease"),
            }
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!(identity = %config.identity, lease = %config.lease_name, "became the leader");
        metrics.set_leader(true);

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let work = tokio::spawn(work(
            client.clone(),
            config.clone(),
            metrics.clone(),
            stop_rx,
        ));
        let lost = async {
            let mut last_renewal = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(retry).await;
                match elector.try_acquire().await {
                    Ok(true) => last_renewal = tokio::time::Instant::now(),
                    Ok(false) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot renew the leader Lease");
                        // Another process takes over once the Lease has run out: stop first.
                        if last_renewal.elapsed() + retry >= config.lease_duration {
                            return;
                        }
                    }
                }
            }
        };
        let stopping = tokio::select! {
            _ = lost => {
                tracing::warn!("lost the leader Lease; stopping work and waiting to lead again");
                false
            }
            _ = shutdown.changed() => true,
        };
        let _ = stop_tx.send(true);
        if let Err(e) = work.await {
            tracing::error!(error = %e, "the controller task failed");
        }
        metrics.set_leader(false);
        if stopping {
            return;
        }
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The leader's work: the CustomerAccount and Portal controllers, until `stop`.
async fn work(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let ns = config.namespace.clone();
    let mut tasks = Vec::new();
    let mut account_watch = watcher::Config::default();
    if let Some(selector) = &config.selector {
        account_watch = account_watch.labels(selector);
    }
    let account_changes = watch::Changes::default();
    let (accounts, account_events) = reflect::<CustomerAccount>(
        api(&client, ns.as_deref()),
        account_watch,
        account_changes.clone(),
        &mut tasks,
    );
    let (members, member_events) = reflect::<AccountMember>(
        api(&client, ns.as_deref()),
        watcher::Config::default(),
        watch::Changes::default(),
        &mut tasks,
    );
    let (contacts, contact_events) = reflect::<NotificationContact>(
        api(&client, ns.as_deref()),
        watcher::Config::default(),
        watch::Changes::default(),
        &mut tasks,
    );
    let (portals, portal_events) = reflect::<Portal>(
        api(&client, ns.as_deref()),
        watcher::Config::default(),
        watch::Changes::default(),
        &mut tasks,
    );
    if !caches_filled(&accounts, &members, &contacts, &portals, stop.clone()).await {
        for task in tasks {
            task.abort();
        }
        return;
    }
    let ctx = context(
        &client,
        &config,
        metrics,
        (&accounts, account_changes),
        &members,
        &contacts,
        &portals,
    );

    let by_account = |ns: Option<String>, name: &str| -> Option<ObjectRef<CustomerAccount>> {
        ns.map(|ns| ObjectRef::new(name).within(&ns))
    };
    let controller_config =
        kube::runtime::controller::Config::default().concurrency(config.concurrency);
    let portal_accounts = accounts.clone();
    let (portal_events, portal_trigger) = watch::fan_out(portal_events);
    let account_controller = Controller::for_stream(account_events, accounts.clone())
        .with_config(controller_config.clone())
        .watches_stream(member_events, move |m: AccountMember| {
            by_account(ResourceExt::namespace(&m), &m.spec.account_ref.name)
        })
        .watches_stream(contact_events, move |c: NotificationContact| {
            by_account(ResourceExt::namespace(&c), &c.spec.account_ref.name)
        })
        .watches_stream(portal_events, move |p: Portal| {
            let ns = ResourceExt::namespace(&p);
            let name = p.name_any();
            portal_accounts
                .state()
                .into_iter()
                .filter(|a| {
                    ResourceExt::namespace(a.as_ref()) == ns
                        && a.spec.portal_ref.as_ref().is_none_or(|r| r.name == name)
                })
                .map(|a| ObjectRef::from_obj(a.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(reconcile::account, reconcile::account_error, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "account reconcile ended with an error");
            }
        });
    let portal_controller = Controller::for_stream(portal_trigger, portals.clone())
        .with_config(controller_config)
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(reconcile::portal, reconcile::portal_retry, ctx.clone())
        .for_each(|_| async {});
    tokio::join!(account_controller, portal_controller);
    for task in tasks {
        task.abort();
    }
}

/// Whether every cache was filled before `stop`. The caches must be complete before the first
/// reconcile: a member declared in its own object and not yet seen would otherwise be pruned.
/// (Waited for here, once: a store's readiness wakes only one waiter at a time.)
async fn caches_filled(
    accounts: &Store<CustomerAccount>,
    members: &Store<AccountMember>,
    contacts: &Store<NotificationContact>,
    portals: &Store<Portal>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> bool {
    let caches = async {
        let _ = members.wait_until_ready().await;
        let _ = contacts.wait_until_ready().await;
        let _ = portals.wait_until_ready().await;
        let _ = accounts.wait_until_ready().await;
    };
    tokio::select! {
        () = caches => true,
        () = stopped(stop) => false,
    }
}

/// What every reconcile of this leadership term shares, once the caches are filled.
fn context(
    client: &Client,
    config: &Config,
    metrics: Arc<Metrics>,
    (accounts, account_changes): (&Store<CustomerAccount>, watch::Changes),
    members: &Store<AccountMember>,
    contacts: &Store<NotificationContact>,
    portals: &Store<Portal>,
) -> Arc<Context> {
    tracing::info!(
        accounts = accounts.len(),
        members = members.len(),
        contacts = contacts.len(),
        portals = portals.len(),
        "caches filled; reconciling"
    );
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(config.identity.clone()),
        },
    );
    Arc::new(Context {
        client: client.clone(),
        config: config.clone(),
        recorder,
        metrics,
        accounts: accounts.clone(),
        account_changes,
        members: members.clone(),
        contacts: contacts.clone(),
        portals: portals.clone(),
        connections: connections::Connections::default(),
        failures: Mutex::new(HashMap::new()),
        invitations: Mutex::new(HashMap::new()),
        expiry_announced: Mutex::new(std::collections::HashSet::new()),
    })
}

/// Completes when the flag turns true.
async fn stopped(mut flag: tokio::sync::watch::Receiver<bool>) {
    while !*flag.borrow() {
        if flag.changed().await.is_err() {
            return;
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Fails with a clear sentence when the rolecall CRDs are not installed.
async fn check_crds(client: &Client, namespace: Option<&str>) -> Result<(), CrdError> {
    async fn probe<K>(client: &Client, namespace: Option<&str>) -> Result<(), CrdError>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        let plural = K::plural(&Default::default()).to_string();
        match api::<K>(client, namespace)
            .list_metadata(&ListParams::default().limit(1))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Err(CrdError::NotInstalled { plural }),
            Err(kube::Error::Api(e)) if e.code == 403 => Err(CrdError::Forbidden {
                plural,
                message: e.message,
            }),
            Err(source) => Err(CrdError::List { plural, source }),
        }
    }
    probe::<CustomerAccount>(client, namespace).await?;
    probe::<AccountMember>(client, namespace).await?;
    probe::<NotificationContact>(client, namespace).await?;
    probe::<Portal>(client, namespace).await?;
    Ok(())
}
