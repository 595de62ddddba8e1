//! Reading the portal while the manifests are parsed. When `--portal` (or `ROLECALL_PORTAL`)
//! names a portal API over HTTP(S), its address and token are known before any manifest is
//! read: the principal, the catalog, the account list and the bulk reads of members and
//! contacts start at once, and the plan takes what they read if the manifests send their
//! accounts there. On a large fleet the two halves of a plan's work, parsing and the portal
//! answering, then overlap instead of following each other.
//!
//! Only reads are made early, and only to the portal and with the token the user named: the
//! manifests, read later, never choose where a credential goes. What turns out not to be
//! needed is dropped (a read still under way is cancelled), and a failed early read is
//! forgotten: the plan then reads as it would have, and reports the failure in its words.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::bulk::Bulk;
use super::connect::AnyPortal;
use super::observe::{BULK_FROM, plan_reads_everything};
use super::pipeline::{ConnectOptions, PortalFacts, connect, facts};
use super::targets::{DEFAULT_TOKEN_ENV, Target};
use crate::portal::{Account, AccountFilter, Portal, PrincipalKind};

/// Reads under way against the portal of `--portal`, started before the manifests are parsed.
/// Dropped, it cancels them.
pub struct Prefetch {
    url: String,
    portal: Arc<AnyPortal>,
    /// The principal, catalog and account list, once read.
    facts: oneshot::Receiver<Option<(PortalFacts, Vec<Account>)>>,
    /// After the facts, the bulk reads, when the portal has enough accounts for a plan to
    /// read them all (see `observe::plan_reads_everything`).
    bulk: Task<Bulk>,
}

/// What a prefetch read for a target: the principal and catalog, the account list and, when
/// the plan reads every account's members and contacts, those.
pub struct Prefetched {
    pub(crate) facts: PortalFacts,
    pub(crate) accounts: Vec<Account>,
    pub(crate) bulk: Option<Bulk>,
}

impl Prefetch {
    /// Starts reading the portal `flag` names, when it is a portal API over HTTP(S) and its
    /// token variable is set; `None` otherwise. Needs a Tokio runtime.
    pub fn start(flag: Option<&str>, options: &ConnectOptions) -> Option<Prefetch> {
        let url = flag.filter(|u| u.starts_with("https://") || u.starts_with("http://"))?;
        let portal = Arc::new(connect(url, DEFAULT_TOKEN_ENV, options).ok()?);
        let (told, facts) = oneshot::channel();
        let bulk = {
            let (portal, url) = (portal.clone(), url.to_string());
            Task(tokio::spawn(async move {
                let read = match facts_of(portal.as_ref(), &url).await {
                    Some(read) => read,
                    None => {
                        let _ = told.send(None);
                        return None;
                    }
                };
                // Only an operator's plan reads every account, and only of a portal with more
                // than a few hundred: otherwise the bulk reads would be wasted.
                let worth =
                    read.0.principal.kind == PrincipalKind::Operator && read.1.len() > BULK_FROM;
                let _ = told.send(Some(read));
                if !worth {
                    return None;
                }
                Bulk::read(portal.as_ref(), &AccountFilter::All).await.ok()
            }))
        };
        Some(Prefetch {
            url: url.to_string(),
            portal,
            facts,
            bulk,
        })
    }

    /// The portal and what was read of it, when `target` goes to the portal, with the token,
    /// of the prefetch; else `None`, and the reads are cancelled. The bulk reads are waited
    /// for only when the plan of `target` reads every account (else they are cancelled).
    pub async fn take(self, target: &Target) -> Option<(Arc<AnyPortal>, Prefetched)> {
        if target.url != self.url || target.token_env != DEFAULT_TOKEN_ENV {
            return None;
        }
        let Prefetch {
            portal,
            facts,
            bulk,
            ..
        } = self;
        let (facts, accounts) = facts.await.ok().flatten()?;
        let cns: Vec<String> = target
            .accounts
            .iter()
            .map(|a| a.customer_number.clone())
            .collect();
        let bulk = if plan_reads_everything(&cns, facts.principal.kind, &accounts) {
            bulk.join().await
        } else {
            None
        };
        Some((
            portal,
            Prefetched {
                facts,
                accounts,
                bulk,
            },
        ))
    }
}

async fn facts_of(portal: &AnyPortal, url: &str) -> Option<(PortalFacts, Vec<Account>)> {
    let read = facts(portal, url).await.ok()?;
    let accounts = portal.list_accounts().await.ok()?;
    Some((read, accounts))
}

/// A spawned read, cancelled when dropped; `None` when it failed.
struct Task<T>(JoinHandle<Option<T>>);

impl<T> Task<T> {
    async fn join(mut self) -> Option<T> {
        (&mut self.0).await.ok().flatten()
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
