//! Observe, plan and apply one account, or only report in Observe mode.

use super::*;

pub(super) async fn plan_and_apply(
    obj: &CustomerAccount,
    account: &DesiredAccount,
    portals: &[Arc<Portal>],
    ctx: &Context,
    now: Timestamp,
    ledger: &Ledger,
) -> Result<Report, Error> {
    let portal = portal_of(obj, portals)?;
    if let Some(owner) = claimed_elsewhere(ctx, obj, &portal.spec.url) {
        return Ok(conflict(ctx, obj, &portal.spec.url, &owner).await);
    }
    let connected = shared_connection(ctx, portal, ledger.store(), now).await?;
    let cn = &account.customer_number;
    let observed = observe_account(&connected.portal, cn)
        .await
        .map_err(|e| portal_error(&portal.spec.url, "reading the account", &e))?;
    let plan_id = crate::reconcile::new_plan_id(now);
    let plan = crate::reconcile::plan_account(
        account,
        &observed,
        &connected.principal,
        &connected.catalog,
        now,
        &plan_id,
    );
    let summary = summary_text(&plan);
    match without_writes(ctx, obj, plan, observed, &summary).await {
        Decision::Done(report) => Ok(*report),
        Decision::Apply(plan, observed) => {
            apply(ctx, obj, &connected, cn, *plan, *observed, &summary).await
        }
    }
}

/// Another CustomerAccount declares the same account on the same portal: this one changes
/// nothing, and says so.
async fn conflict(ctx: &Context, obj: &CustomerAccount, url: &str, owner: &str) -> Report {
    let message = if billmgr::is_billmgr(url) {
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
    Report::failed("Conflict", message, Outcome::Conflict)
}

/// What a plan leads to: a report without a write, or writes to apply.
enum Decision {
    Done(Box<Report>),
    Apply(Box<AccountPlan>, Box<ObservedAccount>),
}

/// The plans that write nothing: invalid, refused, in mode Observe, or already in sync.
async fn without_writes(
    ctx: &Context,
    obj: &CustomerAccount,
    plan: AccountPlan,
    observed: ObservedAccount,
    summary: &str,
) -> Decision {
    let done = |report: Report| Decision::Done(Box::new(report));
    if !plan.errors.is_empty() {
        let message = plan
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        warn(ctx, obj, "InvalidSpec", "Plan", &message).await;
        return done(Report {
            plan: Some(plan),
            ..Report::failed("InvalidSpec", message, Outcome::Invalid)
        });
    }
    if let Some(refusal) = &plan.refused {
        let message = format!("the plan was refused and nothing was changed: {refusal}");
        warn(ctx, obj, "Refused", "Plan", &message).await;
        return done(Report {
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
        return done(Report {
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
        return done(Report {
            ready: (true, "InSync", "the portal matches the declaration".into()),
            synced: (true, "InSync", "nothing to change".into()),
            observed: Some(observed),
            plan: Some(plan),
            outcome: Outcome::InSync,
        });
    }
    Decision::Apply(Box::new(plan), Box::new(observed))
}

/// Applies the plan's writes, announces them, and reports the account as it now is.
async fn apply(
    ctx: &Context,
    obj: &CustomerAccount,
    connected: &Connected,
    cn: &str,
    plan: AccountPlan,
    observed: ObservedAccount,
    summary: &str,
) -> Result<Report, Error> {
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
    // Counts for the status come from the portal as it now is. That read goes to the portal
    // and the events to the API server, so one does not wait for the other.
    let (_, after) = tokio::join!(
        announce(ctx, obj, &plan),
        observe_account(&connected.portal, cn)
    );
    let after = after.unwrap_or(observed);
    Ok(Report {
        ready: (true, "Applied", format!("applied {summary}")),
        synced: (true, "Applied", format!("applied {summary}")),
        observed: Some(after),
        plan: Some(plan),
        outcome: Outcome::Applied,
    })
}

/// `2 grant, 1 invite`.
pub(super) fn summary_text(plan: &AccountPlan) -> String {
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

pub(super) fn plan_summary(plan: &AccountPlan) -> PlanSummary {
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
