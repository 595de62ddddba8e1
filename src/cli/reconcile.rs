//! What `plan`, `apply` and `diff` share: reading the manifests, choosing the portal of each
//! account, observing it and planning.

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::Timestamp;

use super::{clock_now, print_diagnostics};
use crate::domain::{DesiredAccount, DesiredState};
use crate::manifest;
use crate::plan::{self, AccountPlan, Context, ObservedAccount};
use crate::portal::{Catalog, Portal, Whoami};

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
}

/// Reads and checks the manifests; prints diagnostics. `None` when there are errors.
pub fn load(files: &[PathBuf]) -> Result<(DesiredState, Timestamp), String> {
    load_with_warnings(files, true).map(|(desired, now, _)| (desired, now))
}

/// Reads and checks the manifests; prints the errors, and the warnings too when
/// `warnings_on_stderr`. The warnings come back as located sentences, for the plan outputs.
pub fn load_with_warnings(
    files: &[PathBuf],
    warnings_on_stderr: bool,
) -> Result<(DesiredState, Timestamp, Vec<String>), String> {
    let now = clock_now()?;
    let checked = manifest::load_and_check(files, now);
    let errors = checked.errors().count();
    // With errors nothing is planned, so stderr is the only place the warnings can show.
    if warnings_on_stderr || errors > 0 {
        print_diagnostics(&checked.diagnostics);
    }
    let warnings: Vec<String> = checked.warnings().map(|d| d.located()).collect();
    if errors > 0 {
        return Err(format!(
            "the manifests have {errors} {}; nothing was planned",
            if errors == 1 { "error" } else { "errors" }
        ));
    }
    if checked.documents == 0 {
        let named: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        return Err(format!("no manifests found in {}", named.join(", ")));
    }
    Ok((checked.desired, now, warnings))
}

/// Chooses each account's portal: `--portal` (or `ROLECALL_PORTAL`), else its `portalRef`,
/// else the only Portal declared, else the embedded default.
pub fn targets(
    desired: DesiredState,
    flag: Option<&str>,
    only: &[String],
) -> Result<Vec<Target>, String> {
    for cn in only {
        if !desired.accounts.iter().any(|a| &a.customer_number == cn) {
            return Err(format!(
                "--account {cn}: no CustomerAccount in the manifests has customer number {cn:?}"
            ));
        }
    }
    // The accounts move into their targets: a large fleet is not copied.
    let accounts = desired
        .accounts
        .into_iter()
        .filter(|a| only.is_empty() || only.contains(&a.customer_number));
    let single_env = match desired.portals.as_slice() {
        [p] => p.token_env.clone(),
        _ => None,
    };
    let mut groups: BTreeMap<(String, String), Vec<DesiredAccount>> = BTreeMap::new();
    for a in accounts {
        let (url, env) = if let Some(url) = flag.filter(|u| !u.is_empty()) {
            (url.to_string(), single_env.clone())
        } else {
            let portal = match &a.portal_ref {
                Some(name) => desired
                    .portals
                    .iter()
                    .find(|p| p.name == *name && p.namespace == a.namespace),
                None => {
                    let same_ns: Vec<_> = desired
                        .portals
                        .iter()
                        .filter(|p| p.namespace == a.namespace)
                        .collect();
                    match same_ns.as_slice() {
                        [] => None,
                        [p] => Some(*p),
                        _ => {
                            return Err(format!(
                                "{}: CustomerAccount {:?} names no portalRef and {} Portals are declared in namespace {:?}; add spec.portalRef or pass --portal",
                                a.source,
                                a.name,
                                same_ns.len(),
                                a.namespace
                            ));
                        }
                    }
                }
            };
            match portal {
                Some(p) => (p.url.clone(), p.token_env.clone()),
                None => (DEFAULT_PORTAL.to_string(), None),
            }
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

/// A BILLmanager portal serves the one client account its login reaches (SPEC §5a): a
/// second CustomerAccount on it is an error at the place it is declared.
fn one_account_per_billmgr_portal(url: &str, accounts: &[DesiredAccount]) -> Result<(), String> {
    if !url.starts_with("billmgr+") {
        return Ok(());
    }
    match accounts {
        [first, second, ..] => Err(format!(
            "{}: CustomerAccount {:?} (customer number {}) is a second account on the BILLmanager portal {}, which serves one client account, the one its login reaches (the first is CustomerAccount {:?} at {}); give it a Portal of its own",
            second.source,
            second.name,
            second.customer_number,
            manifest::quote_short(url),
            first.name,
            first.source
        )),
        _ => Ok(()),
    }
}

/// The portal's view of the principal and its catalog, read once per run.
pub struct PortalFacts {
    pub principal: Whoami,
    pub catalog: Catalog,
}

pub async fn facts<P: Portal>(portal: &P, url: &str) -> Result<PortalFacts, String> {
    let url = crate::domain::text::redact_url(url);
    let principal = portal
        .whoami()
        .await
        .map_err(|e| format!("{url}: cannot tell who the token belongs to: {e}"))?;
    let catalog = portal
        .catalog()
        .await
        .map_err(|e| format!("{url}: cannot read the role catalog: {e}"))?;
    Ok(PortalFacts { principal, catalog })
}

/// Observes the target's accounts and plans them.
pub async fn plan_target<P: Portal>(
    portal: &P,
    target: &Target,
    now: Timestamp,
    plan_id: &str,
) -> Result<(Vec<AccountPlan>, BTreeMap<String, ObservedAccount>), String> {
    let PortalFacts { principal, catalog } = facts(portal, &target.url).await?;
    let cns: Vec<String> = target
        .accounts
        .iter()
        .map(|a| a.customer_number.clone())
        .collect();
    let crate::apply::Observation {
        accounts: observed,
        forbidden,
    } = crate::apply::observe_for_plan(portal, &cns, principal.kind)
        .await
        .map_err(|e| format!("{}: cannot read the accounts: {e}", target.shown()))?;
    let ctx = Context {
        catalog: &catalog,
        principal: &principal,
        now,
        plan_id,
    };
    let mut plans = plan::plan(&target.accounts, &observed, &ctx);
    if !forbidden.is_empty() {
        // The portal showed these accounts but refused their members: refused, like a safety
        // rule, while every other account is planned.
        let declared: std::collections::HashMap<&str, &DesiredAccount> = target
            .accounts
            .iter()
            .filter(|d| forbidden.contains(&d.customer_number))
            .map(|d| (d.customer_number.as_str(), d))
            .collect();
        for p in &mut plans {
            if let Some(d) = declared.get(p.customer_number.as_str()) {
                *p = AccountPlan::not_manageable(d, &principal);
            }
        }
    }
    Ok((plans, observed))
}

pub use crate::reconcile::new_plan_id;

/// Connects to a target's portal with the TLS options of the command line.
pub fn connect(
    url: &str,
    token_env: &str,
    args: &super::PortalArgs,
) -> Result<crate::reconcile::connect::AnyPortal, String> {
    let options = crate::portal::http::HttpOptions {
        ca_file: args.ca_file.clone(),
        ..Default::default()
    };
    let settings = crate::reconcile::connect::AdapterSettings {
        whmcs_invitations: std::sync::Arc::new(crate::portal::whmcs::FileInvitations::new(
            args.whmcs_state_file(),
        )),
        rate_limit: args.rate_limit,
    };
    crate::reconcile::connect::connect_adapter(url, token_env, options, settings)
}
