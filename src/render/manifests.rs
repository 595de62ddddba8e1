//! Portal state as manifests: for `export` (round-trips to "No changes") and `diff`.

use serde::Serialize;

use crate::domain::{
    AccountSettings, DesiredAccount, ObservedMember, Services, email_key, same_email,
};
use crate::model::{
    API_VERSION, ContactSpec, CustomerAccountSpec, MemberSpec, RoleEntry, RoleWindow, ServiceScope,
};
use crate::plan::ObservedAccount;

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

/// The object name (and, with `.yaml`, the file name) of an exported account: `account-` and
/// the customer number, when it is already a valid lower-case name (`account-10042`).
/// Otherwise the customer number is made one — lower case, anything but letters and digits
/// turned into `-` — and, because that loses what told two numbers apart (`K-100`, `K_100`,
/// `k-100`; `AB`, `ab`), a short hash of the exact customer number is added:
/// `account-k-100-1a2b3c4d`. The name depends on the customer number alone, so it is the same
/// on every run and whatever other accounts the portal holds, and it differs even on a file
/// system that ignores case.
pub fn object_name(customer_number: &str) -> String {
    const MAX: usize = 200;
    let sanitised: String = customer_number
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut name = sanitised.trim_matches('-').to_string();
    name.truncate(MAX);
    let name = name.trim_end_matches('-');
    if name == customer_number {
        format!("account-{name}")
    } else {
        let name = if name.is_empty() { "unnamed" } else { name };
        format!("account-{name}-{:08x}", stable_hash(customer_number) as u32)
    }
}

/// FNV-1a, 64 bits: the same on every run and platform.
fn stable_hash(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    hash
}

/// The members the portal lists with no role in effect (their last role's `until` has passed,
/// or they were written with none). No manifest can declare such a member — a member has at
/// least one role — and declaring one with its old role would have the plan remove it, so an
/// export lists them under `policy.ignore` (as exact patterns): rolecall leaves them as the
/// portal holds them, and the export plans "No changes".
pub fn members_without_roles(o: &ObservedAccount) -> Vec<String> {
    let mut emails: Vec<&str> = o
        .members
        .iter()
        .filter(|m| m.roles.is_empty())
        .map(|m| m.email.as_str())
        .collect();
    emails.sort_by_key(|e| email_key(e));
    emails
        .into_iter()
        .map(crate::domain::EmailGlob::exact)
        .collect()
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

fn member_spec(m: &ObservedMember, service_scopes: bool) -> MemberSpec {
    let mut roles: Vec<RoleEntry> = m
        .roles
        .iter()
        .map(|r| match &r.until {
            None => RoleEntry::Name(r.name.clone()),
            Some(u) => RoleEntry::Window(RoleWindow {
                name: r.name.clone(),
                from: None,
                until: Some(u.to_string()),
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
    account: &AccountSettings,
    o: &ObservedAccount,
    service_scopes: bool,
) -> CustomerAccountSpec {
    let mut members: Vec<MemberSpec> = o
        .members
        .iter()
        .filter(|m| !m.roles.is_empty())
        .map(|m| member_spec(m, service_scopes))
        .collect();
    members.sort_by_key(|m| email_key(&m.email));
    let mut contacts: Vec<ContactSpec> = o
        .contacts
        .iter()
        .map(|c| ContactSpec {
            email: c.email.clone(),
            name: Some(c.name.clone()).filter(|n| !n.is_empty()),
            notifications: sorted(&c.notifications),
        })
        .collect();
    contacts.sort_by_key(|c| email_key(&c.email));
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
    let observed_member = |email: &str| o.members.iter().find(|m| same_email(&m.email, email));
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
    members.sort_by_key(|m| email_key(&m.email));
    let mut contacts: Vec<ContactSpec> = d
        .contacts
        .iter()
        .map(|c| {
            let obs = o
                .contacts
                .iter()
                .find(|oc| same_email(&oc.email, c.email.as_str()));
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
    contacts.sort_by_key(|c| email_key(&c.email));
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
