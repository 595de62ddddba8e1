//! The manifests against the portal's catalog: roles, notification kinds, and what its API
//! offers at all.

use super::super::{Context, PlanError};
use crate::domain::DesiredAccount;

/// Roles and notification kinds must be in the portal's catalog.
pub(super) fn check_catalog(d: &DesiredAccount, ctx: &Context) -> Vec<PlanError> {
    let roles: Vec<&str> = ctx.catalog.roles.iter().map(|r| r.name.as_str()).collect();
    let kinds: Vec<&str> = ctx
        .catalog
        .notification_kinds
        .iter()
        .map(String::as_str)
        .collect();
    let mut errors = Vec::new();
    let mut kind_check = |source: &crate::domain::SourceRef, list: &[String]| {
        for k in list {
            if !kinds.contains(&k.as_str()) {
                errors.push(PlanError {
                    source: source.clone(),
                    field: "notifications".into(),
                    message: format!(
                        "unknown notification kind {k:?}; the portal's catalog has {}",
                        kinds.join(", ")
                    ),
                });
            }
        }
    };
    let caps = &ctx.catalog.capabilities;
    for m in &d.members {
        if let Some(n) = &m.notifications
            && caps.member_notifications
        {
            kind_check(&m.source, n);
        }
    }
    if caps.contacts {
        for c in &d.contacts {
            kind_check(&c.source, &c.notifications);
        }
    }
    errors.extend(not_offered(d, caps));
    for m in &d.members {
        for r in &m.roles {
            if !roles.contains(&r.name.as_str()) {
                errors.push(PlanError {
                    source: r.source.clone(),
                    field: "role".into(),
                    message: format!(
                        "unknown role {:?}; the portal's catalog has {}",
                        r.name,
                        roles.join(", ")
                    ),
                });
            }
        }
    }
    errors.sort_by(|a, b| (&a.source, &a.message).cmp(&(&b.source, &b.message)));
    errors
}

/// What the portal's API does not offer at all (BILLmanager): refused at plan time, before
/// anything is written, with a sentence that says so.
fn not_offered(d: &DesiredAccount, caps: &crate::portal::Capabilities) -> Vec<PlanError> {
    let mut errors = Vec::new();
    let refuse = |source: &crate::domain::SourceRef, field: &str, message: &str| PlanError {
        source: source.clone(),
        field: field.into(),
        message: message.into(),
    };
    for m in &d.members {
        if !caps.member_notifications && m.notifications.as_ref().is_some_and(|n| !n.is_empty()) {
            errors.push(refuse(
                &m.source,
                "notifications",
                "the portal's API does not offer setting a member's notifications; remove notifications from this member",
            ));
        }
        if caps.refuse_services && m.services.is_some() {
            errors.push(refuse(
                &m.source,
                "services",
                "the portal's API does not offer setting a member's service access; remove services from this member",
            ));
        }
    }
    if !caps.contacts {
        for c in &d.contacts {
            errors.push(refuse(
                &c.source,
                "contacts",
                "the portal's API does not offer e-mail-only contacts; remove this contact (a member without login may stand in for it where the portal has such a role)",
            ));
        }
    }
    errors
}
