//! Which portal each declared account goes to: `--portal` (or `ROLECALL_PORTAL`), else its
//! `portalRef`, else the only Portal of its namespace, else the embedded default.

use std::collections::BTreeMap;

use crate::domain::{DesiredAccount, DesiredState};
use crate::manifest;

/// Where the embedded portal lives when nothing else is said (SPEC §3).
pub const DEFAULT_PORTAL: &str = "sandbox:.rolecall/sandbox.db";
/// The environment variable holding the token unless a Portal names another.
pub const DEFAULT_TOKEN_ENV: &str = "ROLECALL_TOKEN";

/// Accounts that go to one portal.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub token_env: String,
    pub accounts: Vec<DesiredAccount>,
}

impl Target {
    /// The portal URL as messages and plan documents show it: without credentials.
    pub fn shown(&self) -> String {
        crate::domain::text::redact_url(&self.url).into_owned()
    }

    /// The portal and token variable, without the accounts.
    pub fn clone_address(&self) -> Target {
        Target {
            url: self.url.clone(),
            token_env: self.token_env.clone(),
            accounts: Vec::new(),
        }
    }
}

/// Why the accounts cannot be given their portals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// `--account` names a customer number no manifest declares.
    #[error(
        "--account {customer_number}: no CustomerAccount in the manifests has customer number {customer_number:?}"
    )]
    UnknownAccount { customer_number: String },
    /// An account names no `portalRef`, and its namespace declares several Portals.
    #[error(
        "{source_place}: CustomerAccount {name:?} names no portalRef and {portals} Portals are declared in namespace {namespace:?}; add spec.portalRef or pass --portal"
    )]
    AmbiguousPortal {
        source_place: String,
        name: String,
        portals: usize,
        namespace: String,
    },
    /// A second account on a BILLmanager portal, which serves one (SPEC §5a).
    #[error("{0}")]
    SecondBillmgrAccount(Box<SecondBillmgrAccount>),
}

/// A second CustomerAccount on a BILLmanager portal, which serves one client account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{source_place}: CustomerAccount {name:?} (customer number {customer_number}) is a second account on the BILLmanager portal {url}, which serves one client account, the one its login reaches (the first is CustomerAccount {first_name:?} at {first_place}); give it a Portal of its own"
)]
pub struct SecondBillmgrAccount {
    /// Where the second account is declared.
    pub source_place: String,
    pub name: String,
    pub customer_number: String,
    /// The portal URL, quoted and shortened.
    pub url: String,
    /// The first account on the portal, and where it is declared.
    pub first_name: String,
    pub first_place: String,
}

/// Chooses each account's portal: `flag` (`--portal` or `ROLECALL_PORTAL`), else its
/// `portalRef`, else the only Portal declared, else the embedded default. `only` keeps the
/// accounts with these customer numbers (all when empty).
pub fn targets(
    desired: DesiredState,
    flag: Option<&str>,
    only: &[String],
) -> Result<Vec<Target>, TargetError> {
    for cn in only {
        if !desired.accounts.iter().any(|a| &a.customer_number == cn) {
            return Err(TargetError::UnknownAccount {
                customer_number: cn.clone(),
            });
        }
    }
    let flag = flag.filter(|u| !u.is_empty());
    let single_env = match desired.portals.as_slice() {
        [p] => p.token_env.clone(),
        _ => None,
    };
    let mut groups: BTreeMap<(String, String), Vec<DesiredAccount>> = BTreeMap::new();
    // The accounts move into their targets: a large fleet is not copied.
    let accounts = desired
        .accounts
        .into_iter()
        .filter(|a| only.is_empty() || only.contains(&a.customer_number));
    for a in accounts {
        let (url, env) = match flag {
            Some(url) => (url.to_string(), single_env.clone()),
            None => declared_portal(&desired.portals, &a)?,
        };
        let env = env.unwrap_or_else(|| DEFAULT_TOKEN_ENV.to_string());
        groups.entry((url, env)).or_default().push(a);
    }
    for ((url, _), accounts) in &groups {
        one_account_per_billmgr_portal(url, accounts)?;
    }
    Ok(groups
        .into_iter()
        .map(|((url, token_env), accounts)| Target {
            url,
            token_env,
            accounts,
        })
        .collect())
}

/// The URL and token variable of the Portal the manifests give `a`: its `portalRef`, else the
/// only Portal of its namespace, else the embedded default.
fn declared_portal(
    portals: &[crate::domain::DesiredPortal],
    a: &DesiredAccount,
) -> Result<(String, Option<String>), TargetError> {
    let portal = match &a.portal_ref {
        Some(name) => portals
            .iter()
            .find(|p| p.name == *name && p.namespace == a.namespace),
        None => {
            let same_ns: Vec<_> = portals
                .iter()
                .filter(|p| p.namespace == a.namespace)
                .collect();
            match same_ns.as_slice() {
                [] => None,
                [p] => Some(*p),
                _ => {
                    return Err(TargetError::AmbiguousPortal {
                        source_place: a.source.to_string(),
                        name: a.name.clone(),
                        portals: same_ns.len(),
                        namespace: a.namespace.clone(),
                    });
                }
            }
        }
    };
    Ok(match portal {
        Some(p) => (p.url.clone(), p.token_env.clone()),
        None => (DEFAULT_PORTAL.to_string(), None),
    })
}

/// A BILLmanager portal serves the one client account its login reaches (SPEC §5a): a
/// second CustomerAccount on it is an error at the place it is declared.
fn one_account_per_billmgr_portal(
    url: &str,
    accounts: &[DesiredAccount],
) -> Result<(), TargetError> {
    if !url.starts_with("billmgr+") {
        return Ok(());
    }
    match accounts {
        [first, second, ..] => Err(TargetError::SecondBillmgrAccount(Box::new(
            SecondBillmgrAccount {
                source_place: second.source.to_string(),
                name: second.name.clone(),
                customer_number: second.customer_number.clone(),
                url: manifest::quote_short(url),
                first_name: first.name.clone(),
                first_place: first.source.to_string(),
            },
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{SourceFile, check_files};

    fn desired(yaml: &str) -> DesiredState {
        let now = "2026-11-26T09:00:00Z".parse().unwrap();
        let files = [SourceFile {
            name: "m.yaml".into(),
            text: yaml.into(),
        }];
        let checked = check_files(&files, now);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        checked.desired
    }

    fn account(name: &str, cn: &str) -> String {
        format!(
            "---\napiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: {name}}}\nspec:\n  customerNumber: \"{cn}\"\n  timeZone: Europe/Zurich\n"
        )
    }

    fn portal(name: &str, url: &str) -> String {
        format!(
            "---\napiVersion: rolecall.dev/v1alpha1\nkind: Portal\nmetadata: {{name: {name}}}\nspec:\n  url: {url}\n"
        )
    }

    #[test]
    fn accounts_go_to_the_flag_else_their_namespaces_only_portal_else_the_default() {
        let only_portal = desired(&(account("acme", "10042") + &portal("main", "sandbox:a.db")));
        let to = |d: DesiredState, flag| targets(d, flag, &[]).unwrap();
        let by_manifest = to(only_portal.clone(), None);
        assert_eq!(by_manifest.len(), 1);
        assert_eq!(by_manifest[0].url, "sandbox:a.db");
        assert_eq!(by_manifest[0].token_env, DEFAULT_TOKEN_ENV);
        assert_eq!(to(only_portal, Some("sandbox:b.db"))[0].url, "sandbox:b.db");
        let no_portal = desired(&account("acme", "10042"));
        assert_eq!(to(no_portal.clone(), Some(""))[0].url, DEFAULT_PORTAL);
        assert_eq!(to(no_portal, None)[0].url, DEFAULT_PORTAL);
    }

    #[test]
    fn the_errors_name_the_account_and_say_what_to_do() {
        let one = desired(&account("acme", "10042"));
        let err = targets(one, None, &["777".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--account 777: no CustomerAccount in the manifests has customer number \"777\""
        );

        let two_portals = desired(
            &(account("acme", "10042")
                + &portal("a", "sandbox:a.db")
                + &portal("b", "sandbox:b.db")),
        );
        let err = targets(two_portals, None, &[]).unwrap_err().to_string();
        assert!(
            err.ends_with(
                ": CustomerAccount \"acme\" names no portalRef and 2 Portals are declared in namespace \"default\"; add spec.portalRef or pass --portal"
            ),
            "{err}"
        );
        assert!(err.starts_with("m.yaml:"), "{err}");

        let billmgr = desired(
            &(account("acme", "10042")
                + &account("initech", "10043")
                + &portal("bm", "billmgr+https://billing.example.net")),
        );
        let err = targets(billmgr, None, &[]).unwrap_err().to_string();
        assert!(err.starts_with("m.yaml:"), "{err}");
        assert!(
            err.contains(
                ": CustomerAccount \"initech\" (customer number 10043) is a second account on the BILLmanager portal \"billmgr+https://billing.example.net\", which serves one client account, the one its login reaches (the first is CustomerAccount \"acme\" at m.yaml:"
            ),
            "{err}"
        );
        assert!(err.ends_with("); give it a Portal of its own"), "{err}");
    }
}
