//! Status writing: the CustomerAccount's, and Ready on the members and contacts that shaped it.

use super::*;

pub(super) async fn write_account_status(
    ctx: &Context,
    obj: &CustomerAccount,
    report: &Report,
    now: Timestamp,
    whmcs_invitations: Vec<WhmcsInvitation>,
    expiring_soon: Option<usize>,
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
                        .is_some_and(|i| i.status == crate::domain::InvitationState::Pending)
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
        expiring_soon: expiring_soon.map_or(old.expiring_soon, n),
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
pub(super) fn portals_in(ctx: &Context, namespace: &str) -> Vec<Arc<Portal>> {
    ctx.portals
        .state_filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
}

pub(super) fn members_of(ctx: &Context, obj: &CustomerAccount) -> Vec<Arc<AccountMember>> {
    let ns = obj.namespace();
    let name = obj.name_any();
    let mut v = ctx
        .members
        .state_filter(|m| m.namespace() == ns && m.spec.account_ref.name == name);
    v.sort_by_key(|m| m.name_any());
    v
}

pub(super) fn contacts_of(ctx: &Context, obj: &CustomerAccount) -> Vec<Arc<NotificationContact>> {
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
pub(super) async fn write_object_statuses(
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
pub(super) async fn ready_each<K>(
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
