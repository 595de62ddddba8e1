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

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::bulk::{Arrival, Bulk};
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
    /// The principal, catalog and account list, once read, and the pages of the bulk reads
    /// when the portal has enough accounts for a plan to read them all (see
    /// `observe::plan_reads_everything`).
    facts: oneshot::Receiver<Option<Facts>>,
    /// The reads: the facts, then the bulk reads.
    reading: Task<()>,
}

type Facts = (
    PortalFacts,
    Vec<Account>,
    Option<mpsc::UnboundedReceiver<Arrival>>,
);

/// The bulk reads of members and contacts under way: their pages, filed under their accounts,
/// as they arrive. Dropped, it cancels the reads.
pub struct BulkRead {
    arrivals: mpsc::UnboundedReceiver<Arrival>,
    _reading: Task<()>,
}

impl BulkRead {
    /// What arrived next; `None` once everything has, or when a read failed before its end
    /// (the caller tells the two apart by the ends it was sent).
    pub(crate) async fn next(&mut self) -> Option<Arrival> {
        self.arrivals.recv().await
    }

    /// Reads that someone else sends (a test's pages, in an order of its choosing).
    #[cfg(test)]
    pub(crate) fn from_arrivals(arrivals: mpsc::UnboundedReceiver<Arrival>) -> BulkRead {
        BulkRead {
            arrivals,
            _reading: Task(tokio::spawn(async { None })),
        }
    }

    /// What arrived already, without waiting.
    pub(crate) fn ready(&mut self) -> Option<Arrival> {
        self.arrivals.try_recv().ok()
    }

    /// Everything the reads give, gathered; `None` when one of them failed.
    pub(crate) async fn gather(mut self) -> Option<Bulk> {
        let mut bulk = Bulk::default();
        let (mut members, mut contacts) = (false, false);
        while !(members && contacts) {
            let arrival = self.next().await?;
            members |= matches!(arrival, Arrival::MembersDone);
            contacts |= matches!(arrival, Arrival::ContactsDone);
            bulk.take(arrival);
        }
        Some(bulk)
    }
}

/// What a prefetch read for a target: the principal and catalog, the account list and, when
/// the plan reads every account's members and contacts, those.
pub struct Prefetched {
    pub(crate) facts: PortalFacts,
    pub(crate) accounts: Vec<Account>,
    pub(crate) bulk: Option<BulkRead>,
}

impl Prefetch {
    /// Starts reading the portal `flag` names, when it is a portal API over HTTP(S) and its
    /// token variable is set; `None` otherwise. Needs a Tokio runtime.
    pub fn start(flag: Option<&str>, options: &ConnectOptions) -> Option<Prefetch> {
        let url = flag.filter(|u| u.starts_with("https://") || u.starts_with("http://"))?;
        let portal = Arc::new(connect(url, DEFAULT_TOKEN_ENV, options).ok()?);
        let (told, facts) = oneshot::channel();
        let reading = {
            let (portal, url) = (portal.clone(), url.to_string());
            Task(tokio::spawn(async move {
                let Some((read, accounts)) = facts_of(portal.as_ref(), &url).await else {
                    let _ = told.send(None);
                    return None;
                };
                // Only an operator's plan reads every account, and only of a portal with more
                // than a few hundred: otherwise the bulk reads would be wasted.
                let worth =
                    read.principal.kind == PrincipalKind::Operator && accounts.len() > BULK_FROM;
                if !worth {
                    let _ = told.send(Some((read, accounts, None)));
                    return None;
                }
                let (to, arrivals) = mpsc::unbounded_channel();
                let _ = told.send(Some((read, accounts, Some(arrivals))));
                Bulk::send(portal.as_ref(), &AccountFilter::All, to)
                    .await
                    .ok()
            }))
        };
        Some(Prefetch {
            url: url.to_string(),
            portal,
            facts,
            reading,
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
            reading,
            ..
        } = self;
        let (facts, accounts, arrivals) = facts.await.ok().flatten()?;
        let cns: Vec<String> = target
            .accounts
            .iter()
            .map(|a| a.customer_number.clone())
            .collect();
        // Not read everything: the reads are cancelled as `reading` is dropped.
        let bulk = arrivals
            .filter(|_| plan_reads_everything(&cns, facts.principal.kind, &accounts))
            .map(|arrivals| BulkRead {
                arrivals,
                _reading: reading,
            });
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

/// A spawned read, cancelled when dropped.
struct Task<T>(JoinHandle<Option<T>>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
