//! Kubernetes Events about an account's plan.

use super::*;

/// One event per kind of change applied, listing each change (cut at the 1 kB events allow).
pub(super) async fn announce(ctx: &Context, obj: &CustomerAccount, plan: &AccountPlan) {
    let mut by_action: BTreeMap<Action, Vec<String>> = BTreeMap::new();
    for c in &plan.changes {
        by_action
            .entry(c.action)
            .or_default()
            .push(crate::render::describe(c));
    }
    for (action, changes) in by_action {
        ctx.metrics.changed(action, changes.len() as u64);
        let note = crate::controller::status::truncate(changes.join("; "), 1000);
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

/// A `RoleExpiringSoon` event for each declared role whose last day is near, once per
/// (account, member, role, until) in this process.
pub(super) async fn announce_expiring(
    ctx: &Context,
    obj: &CustomerAccount,
    expiring: &[crate::domain::Expiring],
) {
    let uid = obj.metadata.uid.clone().unwrap_or_else(|| key_of(obj));
    for e in expiring {
        let key = format!("{uid}\n{}\n{}\n{}", e.email.key(), e.role, e.until);
        if ctx.first_expiry_notice(key) {
            publish(
                ctx,
                obj,
                EventType::Normal,
                "RoleExpiringSoon",
                "Expire",
                crate::controller::status::truncate(e.to_string(), 1000),
            )
            .await;
        }
    }
}

/// The event reason of a change: a PascalCase verb.
pub(super) fn reason_word(action: Action) -> &'static str {
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

pub(super) async fn warn(
    ctx: &Context,
    obj: &CustomerAccount,
    reason: &str,
    action: &str,
    note: &str,
) {
    publish(
        ctx,
        obj,
        EventType::Warning,
        reason,
        action,
        crate::controller::status::truncate(note.to_string(), 1000),
    )
    .await;
}

pub(super) async fn publish<K: Resource<DynamicType = ()>>(
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
