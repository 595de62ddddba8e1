//! One reconcile of a CustomerAccount (observe → plan → apply, or only report) and of a Portal
//! (`whoami` → `Ready`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as Finalized, finalizer};
use kube::{Resource, ResourceExt};

use super::billmgr;
use super::desired::{self, source_name};
use super::metrics::Outcome;
use super::status::{apply_status, condition, object_ready};
use super::whmcs;
use super::{Context, Error, FINALIZER, key_of};
use crate::apply::{FailureCause, apply_account, observe_account};
use crate::domain::{DesiredAccount, Mode, email_key};
use crate::model::{
    AccountMember, CustomerAccount, CustomerAccountStatus, NotificationContact, PlanSummary,
    Portal, PortalStatus, SecretKeyRef, WhmcsInvitation,
};
use crate::plan::{AccountPlan, Action, Context as PlanContext, ObservedAccount, plan_account};
use crate::portal::http::{AnswerHook, HttpOptions, Token};
use crate::portal::whmcs::{InvitationStore, MemoryInvitations, WhmcsOptions};
use crate::portal::{Catalog, InvitationStatus, Portal as _, Whoami};
use crate::reconcile::connect::{AnyPortal, connect_token, connect_whmcs};

/// The reconcile of one CustomerAccount, with the finalizer that carries out its
/// `deletionPolicy`.
pub async fn account(obj: Arc<CustomerAccount>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = Instant::now();
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<CustomerAccount> = Api::namespaced(ctx.client.clone(), &namespace);
    let key = key_of(obj.as_ref());
    // The finalizer helper hands back only the requeue; the outcome comes out beside it.
    let outcome = std::sync::Mutex::new(Outcome::InSync);
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        let done = match event {
            Finalized::Apply(a) => reconcile_account(&a, &ctx).await,
            Finalized::Cleanup(a) => cleanup_account(&a, &ctx).await,
        };
        done.map(|(requeue, o)| {
            if let Ok(mut slot) = outcome.lock() {
                *slot = o;
            }
            requeue
        })
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(requeue) => {
            let outcome = outcome.lock().map_or(Outcome::InSync, |o| *o);
            ctx.metrics.reconciled(outcome, seconds);
            ctx.succeeded(&key);
            Ok(requeue)
        }
        Err(e) => {
            ctx.metrics.reconciled(Outcome::Error, seconds);
            Err(match e {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
                other => Error::Finalizer(other.to_string()),
            })
        }
    }
}

/// Retries a failed account with per-object exponential backoff.
pub fn account_error(obj: Arc<CustomerAccount>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let key = key_of(obj.as_ref());
    let delay = ctx.backoff(&key);
    tracing::warn!(account = %key, error = %error, retry_in_s = delay.as_secs(), "reconcile failed");
    Requeue::requeue(delay)
}

/// What the portal and its facts are, once connected.
struct Connected {
    portal: AnyPortal,
    principal: Whoami,
    catalog: Catalog,
}

/// Everything an account's reconcile found, for its status.
struct Report {
    ready: (bool, &'static str, String),
    synced: (bool, &'static str, String),
    observed: Option<ObservedAccount>,
    plan: Option<AccountPlan>,
    outcome: Outcome,
}

type Reconciled = Result<(Requeue, Outcome), Error>;

async fn reconcile_account(obj: &CustomerAccount, ctx: &Context) -> Reconciled {
    let now =
        crate::reconcile::now().map_err(|e| Error::reconcile("InvalidClock", e.to_string()))?;
    let namespace = obj.namespace().unwrap_or_default();
    let members = members_of(ctx, obj);
    let contacts = contacts_of(ctx, obj);
    let portals = portals_in(ctx, &namespace);
    let declared = desired::declared(
        obj,
        &portals.iter().map(Arc::as_ref).collect::<Vec<_>>(),
        &members.iter().map(Arc::as_ref).collect::<Vec<_>>(),
        &contacts.iter().map(Arc::as_ref).collect::<Vec<_>>(),
        now,
    );
    let ledger = Ledger::load(ctx, obj, &portals).await?;
    let cn = obj.spec.customer_number.as_str();
    let report = match &declared.account {
        None => {
            let message = declared.error_text();
            warn(ctx, obj, "InvalidSpec", "Validate", &message).await;
            Report::failed("InvalidSpec", message, Outcome::Invalid)
        }
        Some(account) => match plan_and_apply(obj, account, &portals, ctx, now, &ledger).await {
            Ok(report) => report,
            Err(Error::Reconcile { reason, message }) => {
                warn(ctx, obj, reason, "Reconcile", &message).await;
                // An apply that failed half-way may have sent invitations: they are recorded
                // with the failure, or the retry would send them again.
                write_account_status(
                    ctx,
                    obj,
                    &Report::failed(reason, message.clone(), Outcome::Error),
                    now,
                    ledger.settle(ctx, cn, now),
                )
                .await?;
                write_object_statuses(
                    ctx, obj, &members, &contacts, &declared, false, reason, &message,
                )
                .await;
                ctx.metrics.drift(&key_of(obj), Some(true));
                return Err(Error::Reconcile { reason, message });
            }
            Err(e) => {
                ledger.settle(ctx, cn, now);
                return Err(e);
            }
        },
    };
    write_account_status(ctx, obj, &report, now, ledger.settle(ctx, cn, now)).await?;
    let (ok, reason, message) = &report.ready;
    write_object_statuses(
        ctx, obj, &members, &contacts, &declared, *ok, reason, message,
    )
    .await;
    let drifting = match (&report.plan, report.outcome) {
        (_, Outcome::Invalid | Outcome::Conflict | Outcome::Refused | Outcome::Error) => true,
        (Some(plan), Outcome::Observed) => plan.has_changes(),
        _ => false,
    };
    ctx.metrics.drift(&key_of(obj), Some(drifting));
    let mut requeue = ctx.config.resync;
    if let Some(next) = report.plan.as_ref().and_then(|p| p.next_transition) {
        let until = next.duration_since(now);
        let secs = until.as_secs().max(1) as u64;
        requeue = requeue.min(Duration::from_secs(secs));
    }
    Ok((Requeue::requeue(requeue), report.outcome))
}

impl Report {
    fn failed(reason: &'static str, message: String, outcome: Outcome) -> Report {
        Report {
            ready: (false, reason, message.clone()),
            synced: (false, reason, message),
            observed: None,
            plan: None,
            outcome,
        }
    }
}

/// The WHMCS invitation record one reconcile of an account works with: loaded before it,
/// handed to the adapter, written back to the status after it, whatever the outcome.
struct Ledger {
    uid: String,
    store: Arc<MemoryInvitations>,
    /// The account is on a WHMCS portal, or its status holds a record from one.
    whmcs: bool,
}

impl Ledger {
    async fn load(
        ctx: &Context,
        obj: &CustomerAccount,
        portals: &[Arc<Portal>],
    ) -> Result<Ledger, Error> {
        let uid = obj.metadata.uid.clone().unwrap_or_default();
        let key = key_of(obj);
        let cached = obj
            .status
            .as_ref()
            .map(|s| s.whmcs_invitations.as_slice())
            .unwrap_or_default();
        let whmcs = !cached.is_empty()
            || portal_of(obj, portals).is_ok_and(|p| whmcs::is_whmcs(&p.spec.url));
        let remembered = ctx
            .invitations
            .lock()
            .ok()
            .and_then(|m| m.get(&uid).cloned());
        let records = match remembered {
            Some(records) => records,
            None if whmcs => {
                // First reconcile of this account in this term: the status as the API server
                // holds it now, not as the cache last saw it, which may miss the record a
                // previous leader wrote just before it stopped.
                let api: Api<CustomerAccount> =
                    Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
                match api.get_opt(&obj.name_any()).await? {
                    Some(fresh) if fresh.metadata.uid == obj.metadata.uid => whmcs::records_of(
                        &key,
                        fresh
                            .status
                            .as_ref()
                            .map(|s| s.whmcs_invitations.as_slice())
                            .unwrap_or_default(),
                    ),
                    _ => whmcs::records_of(&key, cached),
                }
            }
            None => Vec::new(),
        };
        Ok(Ledger {
            uid,
            store: Arc::new(MemoryInvitations::new(records)),
            whmcs,
        })
    }

    fn store(&self) -> Arc<dyn InvitationStore> {
        self.store.clone()
    }

    /// The record as the reconcile left it, remembered for this term and returned for the
    /// status.
    fn settle(&self, ctx: &Context, client_id: &str, now: Timestamp) -> Vec<WhmcsInvitation> {
        let entries = whmcs::entries_of(&self.store.records(), client_id, now);
        if self.whmcs
            && let Ok(mut remembered) = ctx.invitations.lock()
        {
            remembered.insert(self.uid.clone(), whmcs::records_of(&self.uid, &entries));
        }
        entries
    }

    fn forget(ctx: &Context, obj: &CustomerAccount) {
        if let (Some(uid), Ok(mut remembered)) = (&obj.metadata.uid, ctx.invitations.lock()) {
            remembered.remove(uid);
        }
    }
}

/// The portal the account names, or the only one of its namespace.
fn portal_of<'a>(
    obj: &CustomerAccount,
    portals: &'a [Arc<Portal>],
) -> Result<&'a Arc<Portal>, Error> {
    match &obj.spec.portal_ref {
        Some(r) => portals
            .iter()
            .find(|p| p.name_any() == r.name)
            .ok_or_else(|| {
                Error::reconcile(
                    "InvalidSpec",
                    format!(
                        "spec.portalRef.name: no Portal {:?} in this namespace",
                        r.name
                    ),
                )
            }),
        None => match portals {
            [p] => Ok(p),
            [] => Err(Error::reconcile(
                "InvalidSpec",
                "spec.portalRef: no Portal is declared in this namespace; declare one or name it",
            )),
            _ => Err(Error::reconcile(
                "InvalidSpec",
                format!(
                    "spec.portalRef: {} Portals are declared in this namespace; name one",
                    portals.len()
                ),
            )),
        },
    }
}

/// Another CustomerAccount that claims the same customer number on the same portal URL and
/// was there first (older, then by namespace and name): this one must not touch the account.
fn claimed_elsewhere(ctx: &Context, obj: &CustomerAccount, url: &str) -> Option<String> {
    let rank = |a: &CustomerAccount| {
        (
            a.metadata.creation_timestamp.as_ref().map(|t| t.0),
            a.namespace(),
            a.name_any(),
        )
    };
    let mine = rank(obj);
    ctx.accounts
        .state()
        .into_iter()
        .filter(|other| {
            // A BILLmanager portal serves one client account, whatever its customer number.
            (other.spec.customer_number == obj.spec.customer_number || billmgr::is_billmgr(url))
                && other.metadata.uid != obj.metadata.uid
                && other.metadata.deletion_timestamp.is_none()
        })
        .filter(|other| {
            let ns = other.namespace().unwrap_or_default();
            let portals = portals_in(ctx, &ns);
            portal_of(other, &portals).is_ok_and(|p| p.spec.url == url)
        })
        .filter(|other| rank(other) < mine)
        .map(|other| key_of(other.as_ref()))
        .min()
}

/// The Secret the Portal names, in the Portal's own namespace, with the reference.
async fn secret_of<'a>(
    ctx: &Context,
    portal: &'a Portal,
) -> Result<Option<(Secret, &'a SecretKeyRef)>, Error> {
    let Some(r) = &portal.spec.token_secret_ref else {
        return Ok(None);
    };
    let namespace = portal.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret = match secrets.get_opt(&r.name).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(Error::reconcile(
                "SecretNotFound",
                format!(
                    "Portal {:?}: the Secret {:?} named by spec.tokenSecretRef does not exist",
                    portal.name_any(),
                    r.name
                ),
            ));
        }
        Err(kube::Error::Api(e)) if e.code == 403 => {
            return Err(Error::reconcile(
                "Unauthorized",
                format!(
                    "Portal {:?}: the controller may not read the Secret {:?}",
                    portal.name_any(),
                    r.name
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Some((secret, r)))
}

/// Reads the Portal's token from the Secret it names.
async fn token_of(ctx: &Context, portal: &Portal) -> Result<Option<Token>, Error> {
    let Some((secret, r)) = secret_of(ctx, portal).await? else {
        return Ok(None);
    };
    let namespace = portal.namespace().unwrap_or_default();
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .map(|b| b.0.clone())
        .ok_or_else(|| {
            Error::reconcile(
                "SecretNotFound",
                format!("the Secret {:?} has no key {:?}", r.name, r.key),
            )
        })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::reconcile(
            "InvalidSpec",
            format!("the Secret {:?} key {:?} is not UTF-8 text", r.name, r.key),
        )
    })?;
    let source = format!("Secret {}/{} key {}", namespace, r.name, r.key);
    Token::new(text, &source)
        .map(Some)
        .map_err(|e| Error::reconcile("InvalidSpec", e.to_string()))
}

/// Connects to the Portal and reads who the token is and the catalog. A WHMCS adapter keeps
/// its invitation record in `invitations`.
async fn connect(
    ctx: &Context,
    portal: &Portal,
    invitations: Arc<dyn InvitationStore>,
    now: Timestamp,
) -> Result<Connected, Error> {
    let url = portal.spec.url.clone();
    let metrics = ctx.metrics.clone();
    let options = HttpOptions {
        ca_file: ctx.config.ca_file.clone(),
        // The controller retries the whole reconcile with backoff; a long retry chain inside
        // one request would only hold a worker.
        max_retries: 3,
        on_answer: AnswerHook::new(move |status| metrics.portal_answer(status)),
        ..Default::default()
    };
    let any = if whmcs::is_whmcs(&url) {
        connect_whmcs_portal(ctx, portal, invitations, options, now).await?
    } else if billmgr::is_billmgr(&url) {
        connect_billmgr_portal(ctx, portal, options, now).await?
    } else {
        connect_http(ctx, portal, options).await?
    };
    let principal = any
        .whoami()
        .await
        .map_err(|e| portal_error(&url, "whoami", &e))?;
    let catalog = any
        .catalog()
        .await
        .map_err(|e| portal_error(&url, "reading the catalog", &e))?;
    Ok(Connected {
        portal: any,
        principal,
        catalog,
    })
}

/// A WHMCS installation, with the credentials from the Portal's Secret (layout in
/// `controller::whmcs`).
async fn connect_whmcs_portal(
    ctx: &Context,
    portal: &Portal,
    invitations: Arc<dyn InvitationStore>,
    http: HttpOptions,
    now: Timestamp,
) -> Result<AnyPortal, Error> {
    let url = &portal.spec.url;
    whmcs::check_transport(url).map_err(|e| Error::reconcile("InvalidSpec", e.to_string()))?;
    let Some((secret, r)) = secret_of(ctx, portal).await? else {
        return Err(Error::reconcile(
            "InvalidSpec",
            format!(
                "Portal {:?}: spec.tokenSecretRef is required for the controller: a Secret with the WHMCS API identifier and secret",
                portal.name_any()
            ),
        ));
    };
    let credentials = whmcs::credentials(&secret, r, &portal.namespace().unwrap_or_default())
        .map_err(|e| {
            Error::reconcile(
                "InvalidSpec",
                format!("Portal {:?}: {e}", portal.name_any()),
            )
        })?;
    let options = WhmcsOptions {
        http,
        now: Some(now),
        ..WhmcsOptions::default()
    };
    connect_whmcs(url, credentials, invitations, options)
        .map_err(|e| Error::reconcile("InvalidSpec", e))
}

/// A BILLmanager, with the login from the Portal's Secret (layout in `controller::billmgr`).
async fn connect_billmgr_portal(
    ctx: &Context,
    portal: &Portal,
    http: HttpOptions,
    now: Timestamp,
) -> Result<AnyPortal, Error> {
    let url = &portal.spec.url;
    billmgr::check_transport(url).map_err(|e| Error::reconcile("InvalidSpec", e.to_string()))?;
    let Some((secret, r)) = secret_of(ctx, portal).await? else {
        return Err(Error::reconcile(
            "InvalidSpec",
            format!(
                "Portal {:?}: spec.tokenSecretRef is required for the controller: a Secret with the BILLmanager username and password",
                portal.name_any()
            ),
        ));
    };
    let credentials = billmgr::credentials(&secret, r, &portal.namespace().unwrap_or_default())
        .map_err(|e| {
            Error::reconcile(
                "InvalidSpec",
                format!("Portal {:?}: {e}", portal.name_any()),
            )
        })?;
    let options = crate::portal::billmgr::BillmgrOptions {
        http,
        now: Some(now),
    };
    crate::reconcile::connect::connect_billmgr(url, credentials, options)
        .map_err(|e| Error::reconcile("InvalidSpec", e))
}

/// A portal API (or the sandbox), with the token from the Portal's Secret.
async fn connect_http(
    ctx: &Context,
    portal: &Portal,
    options: HttpOptions,
) -> Result<AnyPortal, Error> {
    let url = portal.spec.url.clone();
    let token = token_of(ctx, portal).await?;
    let token = match token {
        Some(t) => t,
        None if url.starts_with("sandbox:") => Token::new("sandbox", "sandbox")
            .map_err(|e| Error::reconcile("InvalidSpec", e.to_string()))?,
        None => {
            return Err(Error::reconcile(
                "InvalidSpec",
                format!(
                    "Portal {:?}: spec.tokenSecretRef is required for the controller",
                    portal.name_any()
                ),
            ));
        }
    };
    connect_token(&url, token, options).map_err(|e| Error::reconcile("PortalUnreachable", e))
}

fn reason_of(cause: FailureCause) -> &'static str {
    match cause {
        FailureCause::Conflict => "Conflict",
        FailureCause::Unauthorized => "Unauthorized",
        FailureCause::Unreachable => "PortalUnreachable",
        FailureCause::Rejected => "ApplyFailed",
    }
}

fn portal_error(url: &str, what: &str, e: &crate::portal::PortalError) -> Error {
    Error::reconcile(
        reason_of(FailureCause::of(e)),
        format!("{}: {what}: {e}", crate::domain::text::redact_url(url)),
    )
}

async fn plan_and_apply(
    obj: &CustomerAccount,
    account: &DesiredAccount,
    portals: &[Arc<Portal>],
    ctx: &Context,
    now: Timestamp,
    ledger: &Ledger,
) -> Result<Report, Error> {
    let portal = portal_of(obj, portals)?;
    if let Some(owner) = claimed_elsewhere(ctx, obj, &portal.spec.url) {
        let message = if billmgr::is_billmgr(&portal.spec.url) {
            format!(
                "the BILLmanager portal serves one client account, and CustomerAccount {owner} declares it already; this object changes nothing (give it a Portal of its own)"
            )
        } else {
            format!(
                "customer number {:?} is already claimed by CustomerAccount {owner} on the same portal; this object changes nothing",
                obj.spec.customer_number
            )
        };
        warn(ctx, obj, "Conflict", "Claim", &message).await;
        return Ok(Report::failed("Conflict", message, Outcome::Conflict));
    }
    let connected = connect(ctx, portal, ledger.store(), now).await?;
    let cn = &account.customer_number;
    let url = &portal.spec.url;
    let observed = observe_account(&connected.portal, cn)
        .await
        .map_err(|e| portal_error(url, "reading the account", &e))?;
    let plan_id = crate::reconcile::new_plan_id(now);
    let plan_ctx = PlanContext {
        catalog: &connected.catalog,
        principal: &connected.principal,
        now,
        plan_id: &plan_id,
    };
    let plan = plan_account(account, &observed, &plan_ctx);
    let summary = summary_text(&plan);
    if !plan.errors.is_empty() {
        let message = plan
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        warn(ctx, obj, "InvalidSpec", "Plan", &message).await;
        return Ok(Report {
            plan: Some(plan),
            ..Report::failed("InvalidSpec", message, Outcome::Invalid)
        });
    }
    if let Some(refusal) = &plan.refused {
        let message = format!("the plan was refused and nothing was changed: {refusal}");
        warn(ctx, obj, "Refused", "Plan", &message).await;
        return Ok(Report {
            observed: Some(observed),
            plan: Some(plan),
            ..Report::failed("Refused", message, Outcome::Refused)
        });
    }
    if plan.mode == Mode::Observe {
        let in_sync = !plan.has_changes();
        let message = if in_sync {
            "the portal matches the declaration (mode Observe)".to_string()
        } else {
            format!("mode Observe: {summary} pending, not applied")
        };
        return Ok(Report {
            ready: (
                in_sync,
                if in_sync { "InSync" } else { "Drift" },
                message.clone(),
            ),
            synced: (true, "Observed", message),
            observed: Some(observed),
            plan: Some(plan),
            outcome: Outcome::Observed,
        });
    }
    if !plan.has_changes() {
        return Ok(Report {
            ready: (true, "InSync", "the portal matches the declaration".into()),
            synced: (true, "InSync", "nothing to change".into()),
            observed: Some(observed),
            plan: Some(plan),
            outcome: Outcome::InSync,
        });
    }
    let outcome = apply_account(&connected.portal, cn, &plan.operations).await;
    if let Some(error) = &outcome.error {
        let reason = outcome.cause.map_or("ApplyFailed", reason_of);
        return Err(Error::reconcile(
            reason,
            format!(
                "{} of {} writes applied, then: {error}",
                outcome.applied, outcome.total
            ),
        ));
    }
    announce(ctx, obj, &plan).await;
    // Counts for the status come from the portal as it now is.
    let after = observe_account(&connected.portal, cn)
        .await
        .unwrap_or(observed);
    Ok(Report {
        ready: (true, "Applied", format!("applied {summary}")),
        synced: (true, "Applied", format!("applied {summary}")),
        observed: Some(after),
        plan: Some(plan),
        outcome: Outcome::Applied,
    })
}

/// `2 grant, 1 invite`.
fn summary_text(plan: &AccountPlan) -> String {
    let mut counts: BTreeMap<Action, usize> = BTreeMap::new();
    for c in &plan.changes {
        *counts.entry(c.action).or_default() += 1;
    }
    if counts.is_empty() {
        return "no changes".into();
    }
    counts
        .iter()
        .map(|(a, n)| format!("{n} {}", a.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plan_summary(plan: &AccountPlan) -> PlanSummary {
    let counts = crate::render::Counts::of(&plan.changes);
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    PlanSummary {
        add: n(counts.add),
        change: n(counts.change),
        remove: n(counts.remove),
        invite: n(counts.invite),
        refused: plan.refused.is_some(),
    }
}

/// One event per kind of change applied, listing each change (cut at the 1 kB events allow).
async fn announce(ctx: &Context, obj: &CustomerAccount, plan: &AccountPlan) {
    let mut by_action: BTreeMap<Action, Vec<String>> = BTreeMap::new();
    for c in &plan.changes {
        by_action
            .entry(c.action)
            .or_default()
            .push(crate::render::describe(c));
    }
    for (action, changes) in by_action {
        ctx.metrics.changed(action, changes.len() as u64);
        let note = super::status::truncate(changes.join("; "), 1000);
        publish(
            ctx,
            obj,
            EventType::Normal,
            reason_word(action),
            action.as_str(),
            note,
        )
        .await;
    }
}

/// The event reason of a change: a PascalCase verb.
fn reason_word(action: Action) -> &'static str {
    match action {
        Action::CreateAccount => "AccountCreated",
        Action::UpdateAccount => "AccountUpdated",
        Action::AddMember => "MemberAdded",
        Action::Grant => "Granted",
        Action::ChangeWindow => "WindowChanged",
        Action::UpdateMember => "MemberUpdated",
        Action::AddContact => "ContactAdded",
        Action::UpdateContact => "ContactUpdated",
        Action::Invite => "Invited",
        Action::ResendInvitation => "InvitationResent",
        Action::Revoke => "Revoked",
        Action::CancelInvitation => "InvitationCancelled",
        Action::RemoveMember => "MemberRemoved",
        Action::RemoveContact => "ContactRemoved",
    }
}

async fn warn(ctx: &Context, obj: &CustomerAccount, reason: &str, action: &str, note: &str) {
    publish(
        ctx,
        obj,
        EventType::Warning,
        reason,
        action,
        super::status::truncate(note.to_string(), 1000),
    )
    .await;
}

async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, object = %key_of(obj), "cannot publish an event");
    }
}

async fn write_account_status(
    ctx: &Context,
    obj: &CustomerAccount,
    report: &Report,
    now: Timestamp,
    whmcs_invitations: Vec<WhmcsInvitation>,
) -> Result<(), Error> {
    let previous = obj
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let generation = obj.metadata.generation;
    let (ready_ok, ready_reason, ready_message) = &report.ready;
    let (synced_ok, synced_reason, synced_message) = &report.synced;
    let old = obj.status.clone().unwrap_or_default();
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    let (members, contacts, pending) = match &report.observed {
        Some(o) => (
            n(o.members.len()),
            n(o.contacts.len()),
            n(o.members
                .iter()
                .filter(|m| {
                    m.invitation
                        .as_ref()
                        .is_some_and(|i| i.status == InvitationStatus::Pending)
                })
                .count()),
        ),
        None => (old.members, old.contacts, old.pending_invitations),
    };
    let status = CustomerAccountStatus {
        observed_generation: generation,
        conditions: vec![
            condition(
                previous,
                "Ready",
                *ready_ok,
                ready_reason,
                ready_message.clone(),
                generation,
            ),
            condition(
                previous,
                "Synced",
                *synced_ok,
                synced_reason,
                synced_message.clone(),
                generation,
            ),
        ],
        members,
        contacts,
        pending_invitations: pending,
        last_plan: report.plan.as_ref().map(plan_summary).or(old.last_plan),
        next_transition: report
            .plan
            .as_ref()
            .and_then(|p| p.next_transition)
            .filter(|t| *t > now)
            .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string()),
        last_sync_time: Some(Timestamp::now().to_string()),
        whmcs_invitations,
    };
    let api: Api<CustomerAccount> =
        Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    apply_status(&api, obj, &status).await?;
    Ok(())
}

/// The Portals of a namespace, from the cache.
fn portals_in(ctx: &Context, namespace: &str) -> Vec<Arc<Portal>> {
    ctx.portals
        .state_filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
}

fn members_of(ctx: &Context, obj: &CustomerAccount) -> Vec<Arc<AccountMember>> {
    let ns = obj.namespace();
    let name = obj.name_any();
    let mut v = ctx
        .members
        .state_filter(|m| m.namespace() == ns && m.spec.account_ref.name == name);
    v.sort_by_key(|m| m.name_any());
    v
}

fn contacts_of(ctx: &Context, obj: &CustomerAccount) -> Vec<Arc<NotificationContact>> {
    let ns = obj.namespace();
    let name = obj.name_any();
    let mut v = ctx
        .contacts
        .state_filter(|c| c.namespace() == ns && c.spec.account_ref.name == name);
    v.sort_by_key(|c| c.name_any());
    v
}

/// `Ready` on each AccountMember and NotificationContact of the account: its own errors, or
/// the account's outcome.
#[allow(clippy::too_many_arguments)]
async fn write_object_statuses(
    ctx: &Context,
    obj: &CustomerAccount,
    members: &[Arc<AccountMember>],
    contacts: &[Arc<NotificationContact>],
    declared: &desired::Declared,
    ok: bool,
    reason: &str,
    message: &str,
) {
    let ns = obj.namespace().unwrap_or_default();
    let cn = &obj.spec.customer_number;
    let verdict = |own: Vec<String>| -> (bool, String, String) {
        if !own.is_empty() {
            (false, "InvalidSpec".into(), own.join("; "))
        } else if ok {
            (
                true,
                "Applied".into(),
                format!("applied to customer account {cn}"),
            )
        } else {
            (
                false,
                reason.to_string(),
                format!("customer account {cn}: {message}"),
            )
        }
    };
    ready_each(
        ctx,
        &ns,
        "AccountMember",
        members,
        |m| m.status.as_ref(),
        declared,
        &verdict,
    )
    .await;
    ready_each(
        ctx,
        &ns,
        "NotificationContact",
        contacts,
        |c| c.status.as_ref(),
        declared,
        &verdict,
    )
    .await;
}

/// Writes `Ready` on each object of one kind, from its own errors or the account's outcome.
async fn ready_each<K>(
    ctx: &Context,
    ns: &str,
    kind: &str,
    objects: &[Arc<K>],
    status: impl Fn(&K) -> Option<&crate::model::ObjectStatus>,
    declared: &desired::Declared,
    verdict: &impl Fn(Vec<String>) -> (bool, String, String),
) where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    for obj in objects {
        let own = declared.errors_of(&source_name(kind, ns, &obj.name_any()));
        let (ok, reason, message) = verdict(own);
        if let Err(e) = object_ready(&api, obj.as_ref(), status(obj), ok, &reason, message).await {
            tracing::warn!(error = %e, object = %key_of(obj.as_ref()), "cannot write status");
        }
    }
}

/// Deleting a CustomerAccount: `Orphan` leaves the portal as it is; `Revoke` removes from the
/// portal what the object (and its AccountMembers and NotificationContacts) declared, under
/// the same safety rules as any plan. A refused revocation keeps the finalizer and says why.
async fn cleanup_account(obj: &CustomerAccount, ctx: &Context) -> Reconciled {
    ctx.metrics.drift(&key_of(obj), None);
    let policy = obj.spec.policy.clone().unwrap_or_default();
    let revoke = matches!(
        policy.deletion_policy,
        Some(crate::model::DeletionPolicy::Revoke)
    ) && !matches!(policy.mode, Some(crate::model::Mode::Observe));
    if !revoke {
        Ledger::forget(ctx, obj);
        return Ok((Requeue::await_change(), Outcome::InSync));
    }
    let now =
        crate::reconcile::now().map_err(|e| Error::reconcile("InvalidClock", e.to_string()))?;
    let namespace = obj.namespace().unwrap_or_default();
    let portals = portals_in(ctx, &namespace);
    // The record makes invitations still pending visible to the revocation (they end with
    // it, as WHMCS cannot cancel them) and people who have joined since removable.
    let ledger = Ledger::load(ctx, obj, &portals).await?;
    let result = revoke_declared(obj, ctx, &portals, now, &ledger).await;
    match &result {
        Ok(_) => Ledger::forget(ctx, obj),
        Err(e) => {
            if let Error::Reconcile { reason, message } = e {
                warn(ctx, obj, reason, "Revoke", message).await;
            }
            // The object stays until the revocation succeeds; its record must stay current.
            let entries = ledger.settle(ctx, &obj.spec.customer_number, now);
            keep_record(ctx, obj, entries).await;
        }
    }
    result
}

/// Writes the invitation record into the status of an account being deleted, the rest of its
/// status unchanged, when it differs from what the status holds.
async fn keep_record(ctx: &Context, obj: &CustomerAccount, entries: Vec<WhmcsInvitation>) {
    let old = obj.status.clone().unwrap_or_default();
    if old.whmcs_invitations == entries {
        return;
    }
    let status = CustomerAccountStatus {
        whmcs_invitations: entries,
        ..old
    };
    let api: Api<CustomerAccount> =
        Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    if let Err(e) = apply_status(&api, obj, &status).await {
        tracing::warn!(error = %e, account = %key_of(obj), "cannot write the WHMCS invitation record");
    }
}

async fn revoke_declared(
    obj: &CustomerAccount,
    ctx: &Context,
    portals: &[Arc<Portal>],
    now: Timestamp,
    ledger: &Ledger,
) -> Reconciled {
    let portal = portal_of(obj, portals)?;
    let connected = connect(ctx, portal, ledger.store(), now).await?;
    let cn = &obj.spec.customer_number;
    let url = &portal.spec.url;
    let observed = observe_account(&connected.portal, cn)
        .await
        .map_err(|e| portal_error(url, "reading the account", &e))?;
    let Some(account) = &observed.account else {
        return Ok((Requeue::await_change(), Outcome::InSync));
    };
    let mut declared: HashSet<String> = HashSet::new();
    declared.extend(obj.spec.members.iter().map(|m| email_key(&m.email)));
    declared.extend(obj.spec.contacts.iter().map(|c| email_key(&c.email)));
    declared.extend(
        members_of(ctx, obj)
            .iter()
            .map(|m| email_key(&m.spec.email)),
    );
    declared.extend(
        contacts_of(ctx, obj)
            .iter()
            .map(|c| email_key(&c.spec.email)),
    );

    // What stays: the portal's state without what this object declared.
    let mut spec = crate::render::manifests::observed_spec(
        account,
        &observed,
        connected.catalog.capabilities.service_scopes,
    );
    spec.members
        .retain(|m| !declared.contains(&email_key(&m.email)));
    spec.contacts
        .retain(|c| !declared.contains(&email_key(&c.email)));
    let mut policy = obj.spec.policy.clone().unwrap_or_default();
    policy.prune = Some(true);
    policy.mode = None;
    policy.allowed_email_domains = None;
    policy.deletion_policy = None;
    spec.policy = Some(policy);
    let mut remaining = CustomerAccount::new(&obj.name_any(), spec);
    remaining.metadata.namespace = obj.namespace();
    let checked = desired::declared(&remaining, &[], &[], &[], now);
    let Some(desired) = checked.account else {
        return Err(Error::reconcile(
            "InvalidSpec",
            format!("cannot compute what to revoke: {}", checked.error_text()),
        ));
    };
    let plan_id = crate::reconcile::new_plan_id(now);
    let mut plan = plan_account(
        &desired,
        &observed,
        &PlanContext {
            catalog: &connected.catalog,
            principal: &connected.principal,
            now,
            plan_id: &plan_id,
        },
    );
    for change in &mut plan.changes {
        change.reason = Some("deletionPolicy Revoke".into());
    }
    if let Some(refusal) = &plan.refused {
        return Err(Error::reconcile(
            "Refused",
            format!(
                "deletionPolicy Revoke was refused and nothing was changed: {refusal}; the object stays until this is resolved"
            ),
        ));
    }
    if !plan.errors.is_empty() {
        return Err(Error::reconcile(
            "InvalidSpec",
            "deletionPolicy Revoke cannot be planned against the portal's catalog",
        ));
    }
    let outcome = apply_account(&connected.portal, cn, &plan.operations).await;
    if let Some(error) = &outcome.error {
        return Err(Error::reconcile(
            outcome.cause.map_or("ApplyFailed", reason_of),
            format!("revoking: {error}"),
        ));
    }
    announce(ctx, obj, &plan).await;
    Ok((Requeue::await_change(), Outcome::Applied))
}

/// The reconcile of a Portal: `Ready` when it answers and the token is accepted.
pub async fn portal(obj: Arc<Portal>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<Portal> = Api::namespaced(ctx.client.clone(), &namespace);
    let generation = obj.metadata.generation;
    let previous = obj
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let now =
        crate::reconcile::now().map_err(|e| Error::reconcile("InvalidClock", e.to_string()))?;
    // Checking the credentials sends no invitation: a record of its own, thrown away.
    let scratch: Arc<dyn InvitationStore> = Arc::new(MemoryInvitations::default());
    let (status, requeue) = match connect(&ctx, &obj, scratch, now).await {
        Ok(c) => {
            let who = c
                .principal
                .email
                .clone()
                .unwrap_or_else(|| format!("{:?}", c.principal.kind).to_lowercase());
            let message = if whmcs::is_whmcs(&obj.spec.url) {
                "WHMCS answers; the API credentials are accepted".to_string()
            } else {
                format!("the portal answers; the token authenticates {who}")
            };
            (
                PortalStatus {
                    observed_generation: generation,
                    conditions: vec![condition(
                        previous,
                        "Ready",
                        true,
                        "Authenticated",
                        message,
                        generation,
                    )],
                    principal: Some(who),
                },
                ctx.config.resync,
            )
        }
        Err(e) => {
            let reason = match &e {
                Error::Reconcile { reason, .. } => *reason,
                _ => "PortalUnreachable",
            };
            publish(
                &ctx,
                obj.as_ref(),
                EventType::Warning,
                reason,
                "Connect",
                super::status::truncate(e.to_string(), 1000),
            )
            .await;
            (
                PortalStatus {
                    observed_generation: generation,
                    conditions: vec![condition(
                        previous,
                        "Ready",
                        false,
                        reason,
                        e.to_string(),
                        generation,
                    )],
                    principal: None,
                },
                ctx.backoff(&key_of(obj.as_ref())),
            )
        }
    };
    if status
        .conditions
        .first()
        .is_some_and(|c| c.status == "True")
    {
        ctx.succeeded(&key_of(obj.as_ref()));
    }
    apply_status(&api, obj.as_ref(), &status).await?;
    Ok(Requeue::requeue(requeue))
}

pub fn portal_retry(obj: Arc<Portal>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let key = key_of(obj.as_ref());
    tracing::warn!(portal = %key, error = %error, "portal reconcile failed");
    Requeue::requeue(ctx.backoff(&key))
}
