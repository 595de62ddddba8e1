//! The reconcile of one CustomerAccount: its finalizer, its declared state and the outcome it reports.

use super::*;

/// The reconcile of one CustomerAccount, with the finalizer that carries out its
/// `deletionPolicy`.
pub async fn account(obj: Arc<CustomerAccount>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = Instant::now();
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<CustomerAccount> = Api::namespaced(ctx.client.clone(), &namespace);
    let key = key_of(obj.as_ref());
    // A new account gets its finalizer and its first sync in the same reconcile.
    let obj = match add_finalizer(&api, obj, &ctx).await {
        Ok(obj) => obj,
        Err(e) => {
            ctx.metrics
                .reconciled(Outcome::Error, started.elapsed().as_secs_f64());
            return Err(e);
        }
    };
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

/// The account with the finalizer that carries out its `deletionPolicy`, added now if it is
/// not there yet (and the account is not being deleted), so that the first reconcile of a new
/// account applies it too: kube's finalizer helper only adds the finalizer and waits for the
/// patch to come back through the watch, which queues every new account twice. The watch is
/// told first that this patch is the reconcile's own, so its event wakes nothing.
async fn add_finalizer(
    api: &Api<CustomerAccount>,
    obj: Arc<CustomerAccount>,
    ctx: &Context,
) -> Result<Arc<CustomerAccount>, Error> {
    if obj.meta().deletion_timestamp.is_some() || obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(obj);
    }
    use json_patch::jsonptr::PointerBuf;
    use json_patch::{AddOperation, PatchOperation, TestOperation};
    // The same patch as kube's helper: the test fails it, rather than adding the finalizer
    // twice, when someone else changed the finalizers meanwhile.
    let finalizers = PointerBuf::from_tokens(["metadata", "finalizers"]);
    let (was, path, value) = if obj.finalizers().is_empty() {
        (
            serde_json::Value::Null,
            finalizers.clone(),
            serde_json::json!([FINALIZER]),
        )
    } else {
        (
            serde_json::json!(obj.finalizers()),
            PointerBuf::from_tokens(["metadata", "finalizers", "-"]),
            serde_json::json!(FINALIZER),
        )
    };
    let patch = json_patch::Patch(vec![
        PatchOperation::Test(TestOperation {
            path: finalizers,
            value: was,
        }),
        PatchOperation::Add(AddOperation { path, value }),
    ]);
    let mut expected = (*obj).clone();
    expected.finalizers_mut().push(FINALIZER.to_string());
    let before = ctx.account_changes.expect(&expected);
    match api
        .patch(
            &obj.name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Json::<()>(patch),
        )
        .await
    {
        Ok(mut patched) => {
            super::super::watch::slim(&mut patched);
            Ok(Arc::new(patched))
        }
        Err(e) => {
            ctx.account_changes.restore(&expected, before);
            Err(Error::Finalizer(format!(
                "adding the finalizer {FINALIZER} failed: {e}"
            )))
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

/// Everything an account's reconcile found, for its status.
pub(super) struct Report {
    pub(super) ready: (bool, &'static str, String),
    pub(super) synced: (bool, &'static str, String),
    pub(super) observed: Option<ObservedAccount>,
    pub(super) plan: Option<AccountPlan>,
    pub(super) outcome: Outcome,
}

pub(super) type Reconciled = Result<(Requeue, Outcome), Error>;

pub(super) async fn reconcile_account(obj: &CustomerAccount, ctx: &Context) -> Reconciled {
    let reconciled = reconcile_declared(obj, ctx).await;
    let ended_well = matches!(
        reconciled,
        Ok((_, Outcome::Applied | Outcome::InSync | Outcome::Observed))
    );
    if !ended_well {
        // Whatever went wrong may be the connection (a token revoked on the portal, a portal
        // that moved): the next reconcile of any account of this Portal connects again.
        let portals = portals_in(ctx, &obj.namespace().unwrap_or_default());
        if let Ok(portal) = portal_of(obj, &portals) {
            ctx.connections
                .forget(portal.metadata.uid.as_deref().unwrap_or_default());
        }
    }
    reconciled
}

async fn reconcile_declared(obj: &CustomerAccount, ctx: &Context) -> Reconciled {
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
    // Expiry notices come from the declaration alone, so they hold even when the portal is
    // unreachable or the plan is refused.
    let expiring = declared.account.as_ref().map(|a| {
        crate::domain::expiring_soon(
            std::slice::from_ref(a),
            now,
            crate::domain::DEFAULT_EXPIRING_WITHIN_DAYS,
        )
    });
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
                    expiring.as_ref().map(Vec::len),
                )
                .await?;
                notice_expiring(ctx, obj, expiring.as_deref()).await;
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
    write_account_status(
        ctx,
        obj,
        &report,
        now,
        ledger.settle(ctx, cn, now),
        expiring.as_ref().map(Vec::len),
    )
    .await?;
    notice_expiring(ctx, obj, expiring.as_deref()).await;
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

/// The expiry notices of an account whose declaration is valid: the events, and its share of
/// `rolecall_roles_expiring_soon`.
async fn notice_expiring(
    ctx: &Context,
    obj: &CustomerAccount,
    expiring: Option<&[crate::domain::Expiring]>,
) {
    if let Some(expiring) = expiring {
        ctx.metrics.expiring(&key_of(obj), Some(expiring.len()));
        announce_expiring(ctx, obj, expiring).await;
    }
}

impl Report {
    pub(super) fn failed(reason: &'static str, message: String, outcome: Outcome) -> Report {
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
pub(super) struct Ledger {
    pub(super) uid: String,
    pub(super) store: Arc<MemoryInvitations>,
    /// The account is on a WHMCS portal, or its status holds a record from one.
    pub(super) whmcs: bool,
}

impl Ledger {
    pub(super) async fn load(
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

    pub(super) fn store(&self) -> Arc<dyn InvitationStore> {
        self.store.clone()
    }

    /// The record as the reconcile left it, remembered for this term and returned for the
    /// status.
    pub(super) fn settle(
        &self,
        ctx: &Context,
        client_id: &str,
        now: Timestamp,
    ) -> Vec<WhmcsInvitation> {
        let entries = whmcs::entries_of(&self.store.records(), client_id, now);
        if self.whmcs
            && let Ok(mut remembered) = ctx.invitations.lock()
        {
            remembered.insert(self.uid.clone(), whmcs::records_of(&self.uid, &entries));
        }
        entries
    }

    pub(super) fn forget(ctx: &Context, obj: &CustomerAccount) {
        if let (Some(uid), Ok(mut remembered)) = (&obj.metadata.uid, ctx.invitations.lock()) {
            remembered.remove(uid);
        }
    }
}
