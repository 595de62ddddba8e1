//! WHMCS records as the portal API's types: clients as accounts, contacts, permissions as
//! grants, notification kinds as e-mail preferences.

use super::*;

pub(super) fn grants(names: &[String]) -> Vec<RoleGrant> {
    names
        .iter()
        .map(|n| RoleGrant {
            name: n.clone(),
            until: None,
        })
        .collect()
}

pub(super) fn account_of(client: &Value) -> Option<Account> {
    let id = wire::id(client.get("id").or_else(|| client.get("userid")))?;
    let company = wire::text(client, "companyname").trim();
    let display_name = if company.is_empty() {
        wire::person_name(client)
    } else {
        company.to_owned()
    };
    Some(Account {
        customer_number: id,
        display_name,
        // WHMCS keeps no time zone per client: none is reported, and the planner reads the
        // account's dates in the declared one.
        time_zone: String::new(),
        etag: NO_ETAG.into(),
    })
}

pub(super) fn contact_of(client_id: &str, c: &Value) -> Contact {
    let notifications = NOTIFICATION_PREFERENCES
        .iter()
        .filter(|(_, pref)| wire::flag(c.get(format!("{pref}emails").as_str())))
        .map(|(kind, _)| kind.to_string())
        .collect();
    Contact {
        customer_number: Some(client_id.to_owned()),
        email: wire::text(c, "email").to_owned(),
        name: wire::person_name(c),
        notifications,
        etag: NO_ETAG.into(),
    }
}

pub(super) fn preferences(notifications: &[String]) -> PortalResult<Vec<(&'static str, String)>> {
    for n in notifications {
        if !NOTIFICATION_PREFERENCES.iter().any(|(kind, _)| kind == n) {
            return Err(PortalError::problem(
                422,
                ErrorCode::UnknownNotificationKind,
                format!(
                    "{n:?} is not a notification kind WHMCS has; it has {}",
                    NOTIFICATION_PREFERENCES.map(|(k, _)| k).join(", ")
                ),
            ));
        }
    }
    Ok(NOTIFICATION_PREFERENCES
        .iter()
        .map(|(kind, pref)| {
            let on = notifications.iter().any(|n| n == kind);
            (
                preference_field(pref),
                if on { "1" } else { "0" }.to_owned(),
            )
        })
        .collect())
}

pub(super) fn preference_field(pref: &str) -> &'static str {
    match pref {
        "general" => "email_preferences[general]",
        "product" => "email_preferences[product]",
        "domain" => "email_preferences[domain]",
        "invoice" => "email_preferences[invoice]",
        "support" => "email_preferences[support]",
        _ => "email_preferences[affiliate]",
    }
}

/// What WHMCS answers when no address of a client would keep domain e-mails.
pub(super) fn domain_rule(client_id: &str, e: PortalError) -> PortalError {
    match &e {
        PortalError::Problem { detail, .. } if detail.to_ascii_lowercase().contains("domain") => {
            PortalError::problem(
                422,
                ErrorCode::Invalid,
                format!(
                    "WHMCS requires at least one address of client {client_id} to receive domain e-mails; keep the notification kind domains on one of its contacts ({detail})"
                ),
            )
        }
        _ => e,
    }
}
