//! Portal state as manifests: for `export` (round-trips to "No changes") and `diff`.

use serde::Serialize;

use crate::domain::{DesiredAccount, Services};
use crate::model::{
    API_VERSION, ContactSpec, CustomerAccountSpec, MemberSpec, RoleEntry, RoleWindow, ServiceScope,
};
use crate::plan::ObservedAccount;
use crate::portal::{Account, Member};

/// A manifest document with its keys in the usual order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc<S: Serialize> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Meta,
    pub spec: S,
}

#[derive(Debug, Serialize)]
pub struct Meta {
    pub name: String,
}

/// An object name from a customer number: `account-10042`.
pub fn object_name(customer_number: &str) -> String {
    let mut name: String = customer_number
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name = name.trim_matches('-').to_string();
    if name.is_empty() {
        name = "unnamed".into();
    }
    format!("account-{name}")
}

fn services(s: &Services) -> ServiceScope {
    match s {
        Services::All => ServiceScope::Word("all".into()),
        Services::None => ServiceScope::Word("none".into()),
        Services::Only(ids) => {
            let mut ids = ids.clone();
            ids.sort();
            ServiceScope::List(ids)
        }
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

fn member_spec(m: &Member, service_scopes: bool) -> MemberSpec {
    let mut roles: Vec<RoleEntry> = m
        .roles
        .iter()
        .map(|r| match &r.until {
            None => RoleEntry::Name(r.name.clone()),
            Some(u) => RoleEntry::Window(RoleWindow {
                name: r.name.clone(),
                from: None,
                until: Some(u.clone()),
            }),
        })
        .collect();
    roles.sort_by(|a, b| a.name().cmp(b.name()));
    MemberSpec {
        email: m.email.clone(),
        name: m.name.clone().filter(|n| !n.is_empty()),
        roles,
        services: service_scopes.then(|| services(&m.services)),
        notifications: Some(sorted(&m.notifications)),
    }
}

/// The account as the portal holds it, as a CustomerAccount spec.
pub fn observed_spec(
    account: &Account,
    o: &ObservedAccount,
    service_scopes: bool,
) -> CustomerAccountSpec {
    let mut members: Vec<MemberSpec> = o
        .members
        .iter()
        .filter(|m| !m.roles.is_empty())
        .map(|m| member_spec(m, service_scopes))
        .collect();
    members.sort_by_key(|m| m.email.to_lowercase());
    let mut contacts: Vec<ContactSpec> = o
        .contacts
        .iter()
        .map(|c| ContactSpec {
            email: c.email.clone(),
            name: Some(c.name.clone()).filter(|n| !n.is_empty()),
            notifications: sorted(&c.notifications),
        })
        .collect();
    contacts.sort_by_key(|c| c.email.to_lowercase());
    CustomerAccountSpec {
        portal_ref: None,
        customer_number: account.customer_number.clone(),
        display_name: Some(account.display_name.clone()),
        // A portal that keeps no time zone (WHMCS) reports none.
        time_zone: Some(account.time_zone.clone()).filter(|tz| !tz.is_empty()),
        members,
        contacts,
        policy: None,
    }
}

/// What the declaration asks the portal to hold at `now`, in the same shape as
/// [`observed_spec`], so that the two compare line by line. Fields the manifests leave
/// unmanaged take the portal's value.
pub fn desired_spec(
    d: &DesiredAccount,
    o: &ObservedAccount,
    now: jiff::Timestamp,
    scheduled_revocation: bool,
    service_scopes: bool,
) -> CustomerAccountSpec {
    let observed_member = |email: &str| {
        o.members
            .iter()
            .find(|m| m.email.eq_ignore_ascii_case(email))
    };
    let mut members: Vec<MemberSpec> = d
        .members
        .iter()
        .filter_map(|m| {
            let obs = observed_member(m.email.as_str());
            let mut roles: Vec<RoleEntry> = m
                .roles
                .iter()
                .filter(|r| r.window.is_active(now, &d.time_zone))
                .map(|r| match (r.window.until, scheduled_revocation) {
                    (Some(u), true) => RoleEntry::Window(RoleWindow {
                        name: r.name.clone(),
                        from: None,
                        until: Some(u.to_string()),
                    }),
                    _ => RoleEntry::Name(r.name.clone()),
                })
                .collect();
            if roles.is_empty() {
                return None;
            }
            roles.sort_by(|a, b| a.name().cmp(b.name()));
            let observed_services = obs.map(|o| o.services.clone()).unwrap_or_default();
            Some(MemberSpec {
                email: m.email.as_str().to_string(),
                name: m
                    .name
                    .clone()
                    .or_else(|| obs.and_then(|o| o.name.clone()))
                    .filter(|n| !n.is_empty()),
                roles,
                services: service_scopes
                    .then(|| services(m.services.as_ref().unwrap_or(&observed_services))),
                notifications: Some(sorted(
                    m.notifications
                        .as_deref()
                        .unwrap_or(obs.map(|o| o.notifications.as_slice()).unwrap_or(&[])),
                )),
            })
        })
        .collect();
    members.sort_by_key(|m| m.email.to_lowercase());
    let mut contacts: Vec<ContactSpec> = d
        .contacts
        .iter()
        .map(|c| {
            let obs = o
                .contacts
                .iter()
                .find(|oc| oc.email.eq_ignore_ascii_case(c.email.as_str()));
            ContactSpec {
                email: c.email.as_str().to_string(),
                name: c
                    .name
                    .clone()
                    .or_else(|| obs.map(|o| o.name.clone()))
                    .filter(|n| !n.is_empty()),
                notifications: sorted(&c.notifications),
            }
        })
        .collect();
    contacts.sort_by_key(|c| c.email.to_lowercase());
    CustomerAccountSpec {
        portal_ref: None,
        customer_number: d.customer_number.clone(),
        display_name: d
            .display_name
            .clone()
            .or_else(|| o.account.as_ref().map(|a| a.display_name.clone())),
        time_zone: if d.time_zone_declared {
            Some(d.time_zone_name.clone())
        } else {
            o.account
                .as_ref()
                .map(|a| a.time_zone.clone())
                .filter(|tz| !tz.is_empty())
        },
        members,
        contacts,
        policy: None,
    }
}

/// One CustomerAccount document as YAML.
pub fn account_yaml(name: &str, spec: &CustomerAccountSpec) -> String {
    let doc = Doc {
        api_version: API_VERSION,
        kind: "CustomerAccount",
        metadata: Meta {
            name: name.to_string(),
        },
        spec,
    };
    serde_saphyr::to_string(&doc).unwrap_or_default()
}
