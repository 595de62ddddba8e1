//! Deleting a CustomerAccount: its deletionPolicy carried out before the finalizer goes.

use super::*;

/// Deleting a CustomerAccount: `Orphan` leaves the portal as it is; `Revoke` removes from the
/// portal what the object (and its AccountMembers and NotificationContacts) declared, under
/// the same safety rules as any plan. A refused revocation keeps the finalizer and says why.
pub(super) async fn cleanup_account(obj: &CustomerAccount, ctx: &Context) -> Reconciled {
    ctx.metrics.drift(&key_of(obj), None);
    ctx.metrics.expiring(&key_of(obj), None);
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
pub(super) async fn keep_record(
    ctx: &Context,
    obj: &CustomerAccount,
    entries: Vec<WhmcsInvitation>,
) {
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

pub(super) async fn revoke_declared(
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
