//! The steps between the desired state and the plans of one portal: connecting, reading the
//! portal's facts (the principal and its catalog), observing the accounts and planning them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use jiff::Timestamp;

use super::Error;
use super::connect::{AdapterSettings, AnyPortal, connect_adapter};
use super::observe::{Observation, observe_for_plan, observe_for_plan_prefetched};
use super::prefetch::Prefetched;
use super::stream;
use super::targets::Target;
use crate::domain::DesiredAccount;
use crate::plan::{self, AccountPlan, Context, ObservedAccount};
use crate::portal::{Catalog, Portal, Whoami};

/// How the front end connects to portals: the command line's TLS and rate options.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// An extra CA certificate (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// Requests per second at most, for portals that document no rate limit.
    pub rate_limit: Option<f64>,
    /// Where a WHMCS adapter records the invitations it sent.
    pub whmcs_state: PathBuf,
}

/// Connects to a target's portal (`url`, the token in `token_env`) with `options`.
pub fn connect(url: &str, token_env: &str, options: &ConnectOptions) -> Result<AnyPortal, Error> {
    let http = crate::portal::http::HttpOptions {
        ca_file: options.ca_file.clone(),
        ..Default::default()
    };
    let settings = AdapterSettings {
        whmcs_invitations: std::sync::Arc::new(crate::portal::whmcs::FileInvitations::new(
            options.whmcs_state.clone(),
        )),
        rate_limit: options.rate_limit,
    };
    connect_adapter(url, token_env, http, settings).map_err(Error::Connect)
}

/// The portal's view of the principal and its catalog, read once per run.
pub struct PortalFacts {
    pub principal: Whoami,
    pub catalog: Catalog,
}

/// Reads who the token belongs to and the role catalog; `url` names the portal in errors
/// (without credentials).
pub async fn facts<P: Portal>(portal: &P, url: &str) -> Result<PortalFacts, Error> {
    let shown = || crate::domain::text::redact_url(url).into_owned();
    let principal = portal.whoami().await.map_err(|source| Error::Whoami {
        url: shown(),
        source,
    })?;
    let catalog = portal.catalog().await.map_err(|source| Error::Catalog {
        url: shown(),
        source,
    })?;
    Ok(PortalFacts { principal, catalog })
}

/// Observes the target's accounts and plans them as of `now` under `plan_id`; gives the plans
/// and what was observed.
pub async fn plan_target<P: Portal>(
    portal: &P,
    target: &Target,
    now: Timestamp,
    plan_id: &str,
) -> Result<(Vec<AccountPlan>, BTreeMap<String, ObservedAccount>), Error> {
    plan_target_prefetched(portal, target, now, plan_id, None).await
}

/// [`plan_target`] with what a [`super::Prefetch`] read already.
pub async fn plan_target_prefetched<P: Portal>(
    portal: &P,
    target: &Target,
    now: Timestamp,
    plan_id: &str,
    prefetched: Option<Prefetched>,
) -> Result<(Vec<AccountPlan>, BTreeMap<String, ObservedAccount>), Error> {
    let observed = observe_target(portal, target, prefetched).await?;
    let plans = observed.plan(&target.accounts, now, plan_id);
    Ok((plans, observed.observation.accounts))
}

/// Plans the target's accounts as of `now` under `plan_id`, as [`plan_target_prefetched`]
/// does; with the prefetch's bulk reads under way, each account as soon as its pages have
/// arrived (`stream`), holding only what was read of the accounts not yet planned. Gives only
/// the plans: what was observed is gone.
pub async fn plan_target_as_read<P: Portal>(
    portal: &P,
    target: &Target,
    now: Timestamp,
    plan_id: &str,
    prefetched: Option<Prefetched>,
) -> Result<Vec<AccountPlan>, Error> {
    let (facts, accounts, read) = match prefetched {
        Some(Prefetched {
            facts,
            accounts,
            bulk: Some(read),
        }) => (facts, accounts, read),
        other => {
            let observed = observe_target(portal, target, other).await?;
            return Ok(observed.plan(&target.accounts, now, plan_id));
        }
    };
    let cns: Vec<String> = target
        .accounts
        .iter()
        .map(|a| a.customer_number.clone())
        .collect();
    portal.bind_accounts(&cns);
    let PortalFacts { principal, catalog } = &facts;
    let ctx = Context {
        catalog,
        principal,
        now,
        plan_id,
    };
    let Some(streamed) = stream::plan_as_read(read, &target.accounts, &accounts, &ctx).await else {
        // A read failed on the way: forgotten, and the portal read again the usual way, which
        // reports a failure in its own words.
        let again = Prefetched {
            facts,
            accounts,
            bulk: None,
        };
        let observed = observe_target(portal, target, Some(again)).await?;
        return Ok(observed.plan(&target.accounts, now, plan_id));
    };
    let mut plans = streamed.plans;
    if !streamed.late.is_empty() {
        replan_late(portal, target, &streamed.late, &ctx, &mut plans).await?;
    }
    Ok(plans)
}

/// Reads the accounts met again after they were planned, each whole on its own, and puts
/// their new plans in place of the early ones.
async fn replan_late<P: Portal>(
    portal: &P,
    target: &Target,
    late: &std::collections::BTreeSet<String>,
    ctx: &Context<'_>,
    plans: &mut [AccountPlan],
) -> Result<(), Error> {
    let cns: Vec<String> = late.iter().cloned().collect();
    let observed = super::observe::observe(portal, &cns)
        .await
        .map_err(|source| Error::Observe {
            url: target.shown(),
            source,
        })?;
    let declared: Vec<DesiredAccount> = target
        .accounts
        .iter()
        .filter(|d| late.contains(&d.customer_number))
        .cloned()
        .collect();
    // Both in customer-number order, a number declared twice in the manifests' order.
    let mut again = plan_all(&declared, &observed, ctx).into_iter();
    for p in plans.iter_mut() {
        if late.contains(&p.customer_number)
            && let Some(new) = again.next()
        {
            *p = new;
        }
    }
    Ok(())
}

/// What a target's portal holds for its accounts, and the facts to plan them with: any of
/// the target's accounts can be planned from it, all at once or a batch at a time.
pub struct ObservedTarget {
    pub facts: PortalFacts,
    pub observation: Observation,
}

/// Reads the portal's facts (unless prefetched) and observes the target's accounts.
pub async fn observe_target<P: Portal>(
    portal: &P,
    target: &Target,
    prefetched: Option<Prefetched>,
) -> Result<ObservedTarget, Error> {
    let (facts, read) = match prefetched {
        Some(p) => {
            let bulk = match p.bulk {
                Some(read) => read.gather().await,
                None => None,
            };
            (p.facts, Some((p.accounts, bulk)))
        }
        None => (facts(portal, &target.url).await?, None),
    };
    let cns: Vec<String> = target
        .accounts
        .iter()
        .map(|a| a.customer_number.clone())
        .collect();
    let kind = facts.principal.kind;
    let observation = match read {
        Some(read) => observe_for_plan_prefetched(portal, &cns, kind, read).await,
        None => observe_for_plan(portal, &cns, kind).await,
    };
    let observation = observation.map_err(|source| Error::Observe {
        url: target.shown(),
        source,
    })?;
    Ok(ObservedTarget { facts, observation })
}

impl ObservedTarget {
    /// Plans `declared` (the target's accounts, or some of them) as of `now` under `plan_id`.
    /// The planner is a pure function: the same accounts planned twice give the same plans.
    pub fn plan(
        &self,
        declared: &[DesiredAccount],
        now: Timestamp,
        plan_id: &str,
    ) -> Vec<AccountPlan> {
        let PortalFacts { principal, catalog } = &self.facts;
        let ctx = Context {
            catalog,
            principal,
            now,
            plan_id,
        };
        let mut plans = plan_all(declared, &self.observation.accounts, &ctx);
        let forbidden = &self.observation.forbidden;
        if !forbidden.is_empty() {
            // The portal showed these accounts but refused their members: refused, like a
            // safety rule, while every other account is planned.
            let declared: HashMap<&str, &DesiredAccount> = declared
                .iter()
                .filter(|d| forbidden.contains(&d.customer_number))
                .map(|d| (d.customer_number.as_str(), d))
                .collect();
            for p in &mut plans {
                if let Some(d) = declared.get(p.customer_number.as_str()) {
                    *p = AccountPlan::not_manageable(d, principal);
                }
            }
        }
        plans
    }
}

/// [`plan::plan`] on the process's worker threads (see `crate::workers` for why not rayon's
/// global pool).
pub fn plan_all(
    declared: &[DesiredAccount],
    observed: &BTreeMap<String, ObservedAccount>,
    ctx: &Context,
) -> Vec<AccountPlan> {
    crate::workers::install(|| plan::plan(declared, observed, ctx))
}

/// Plans one observed account as of `now` under `plan_id` (the controller's reconcile, which
/// observes one account at a time).
pub fn plan_account(
    account: &DesiredAccount,
    observed: &ObservedAccount,
    principal: &Whoami,
    catalog: &Catalog,
    now: Timestamp,
    plan_id: &str,
) -> AccountPlan {
    let ctx = Context {
        catalog,
        principal,
        now,
        plan_id,
    };
    plan::plan_account(account, observed, &ctx)
}

#[cfg(test)]
mod tests;
