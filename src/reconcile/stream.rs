//! Planning a large fleet as its bulk pages arrive. The reference portal answers its bulk
//! reads in customer-number order, so once both the member and the contact pages have passed
//! an account, that account has been read whole: it is planned then, on the worker threads,
//! and what was observed of it is dropped. The plan's last step is then the last page's few
//! accounts, not the whole fleet, and the fleet's observed state is never held at once.
//!
//! SPEC does not promise that order. An account met again after it was planned is *late*: its
//! early plan is set aside and the caller reads and plans it again on its own, so every
//! account's safety rules still see the whole account, whatever order a portal answers in.
//! Once a list goes backwards, nothing more is planned before both lists have ended.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::bulk::{Arrival, FiledPage};
use super::prefetch::BulkRead;
use crate::domain::{DesiredAccount, ObservedAccount, ObservedContact, ObservedMember};
use crate::plan::{self, AccountPlan, Context};
use crate::portal::Account;

/// The plans of every declared account, in customer-number order, and the accounts met again
/// after they were planned, whose plans are to be made again from a read of their own.
#[derive(Debug)]
pub(crate) struct Streamed {
    pub plans: Vec<AccountPlan>,
    pub late: BTreeSet<String>,
}

/// Plans `declared` as `read` brings their members and contacts; the portal listed
/// `listed`. `None` when a read failed before its end: nothing of it is to be trusted, and
/// the caller reads the portal again.
pub(crate) async fn plan_as_read(
    mut read: BulkRead,
    declared: &[DesiredAccount],
    listed: &[Account],
    ctx: &Context<'_>,
) -> Option<Streamed> {
    let mut planner = Planner::new(declared, listed);
    loop {
        planner.take(read.next().await?);
        // Pages that queued up while the manifests were read are planned as one stretch, on
        // every worker.
        while let Some(more) = read.ready() {
            planner.take(more);
        }
        planner.plan_complete(ctx);
        if planner.done() {
            return Some(planner.finish());
        }
    }
}

/// How far one bulk list has come.
#[derive(Debug, Default)]
struct Progress {
    /// The account of its latest item: the accounts before it have been read whole.
    at: Option<String>,
    ended: bool,
    /// It went backwards: an account may come again any time.
    disordered: bool,
}

impl Progress {
    fn passed<T>(&mut self, page: &FiledPage<T>) {
        let Some((last, _)) = page.last() else {
            return;
        };
        let backwards = page.windows(2).any(|w| w[1].0 < w[0].0)
            || page
                .first()
                .zip(self.at.as_ref())
                .is_some_and(|((first, _), at)| first < at);
        self.disordered |= backwards;
        if self.at.as_ref().is_none_or(|at| last > at) {
            self.at = Some(last.clone());
        }
    }
}

/// Where the accounts read whole end.
#[derive(Debug, PartialEq, Eq)]
enum Complete<'a> {
    None,
    Below(&'a str),
    All,
}

struct Planner<'d> {
    /// The declared accounts in customer-number order (a stable sort: a number declared
    /// twice keeps the manifests' order, as `plan::plan` has it).
    order: Vec<&'d DesiredAccount>,
    /// How many of `order` are planned.
    next: usize,
    /// The listed accounts' settings, of the declared accounts not yet planned.
    settings: HashMap<String, crate::domain::AccountSettings>,
    wanted: HashSet<&'d str>,
    /// What was read of declared accounts not yet planned.
    pending: HashMap<String, (Vec<ObservedMember>, Vec<ObservedContact>)>,
    planned: HashSet<&'d str>,
    members: Progress,
    contacts: Progress,
    plans: Vec<AccountPlan>,
    late: BTreeSet<String>,
}

impl<'d> Planner<'d> {
    fn new(declared: &'d [DesiredAccount], listed: &[Account]) -> Planner<'d> {
        let mut order: Vec<&DesiredAccount> = declared.iter().collect();
        order.sort_by(|a, b| a.customer_number.cmp(&b.customer_number));
        let wanted: HashSet<&str> = order.iter().map(|d| d.customer_number.as_str()).collect();
        let settings = listed
            .iter()
            .filter(|a| wanted.contains(a.customer_number.as_str()))
            .map(|a| (a.customer_number.clone(), a.clone().into()))
            .collect();
        Planner {
            plans: Vec::with_capacity(order.len()),
            order,
            next: 0,
            settings,
            wanted,
            pending: HashMap::new(),
            planned: HashSet::new(),
            members: Progress::default(),
            contacts: Progress::default(),
            late: BTreeSet::new(),
        }
    }

    fn take(&mut self, arrival: Arrival) {
        match arrival {
            Arrival::Members(page) => {
                self.members.passed(&page);
                for (cn, mut list) in page {
                    if let Some(entry) = self.entry(cn) {
                        entry.0.append(&mut list);
                    }
                }
            }
            Arrival::Contacts(page) => {
                self.contacts.passed(&page);
                for (cn, mut list) in page {
                    if let Some(entry) = self.entry(cn) {
                        entry.1.append(&mut list);
                    }
                }
            }
            Arrival::MembersDone => self.members.ended = true,
            Arrival::ContactsDone => self.contacts.ended = true,
        }
    }

    /// Where a declared account's items go while it waits to be planned; `None` for an
    /// account not declared, or one planned already (which is late).
    fn entry(&mut self, cn: String) -> Option<&mut (Vec<ObservedMember>, Vec<ObservedContact>)> {
        if self.planned.contains(cn.as_str()) {
            self.late.insert(cn);
            return None;
        }
        if !self.wanted.contains(cn.as_str()) {
            return None;
        }
        Some(self.pending.entry(cn).or_default())
    }

    fn done(&self) -> bool {
        self.members.ended && self.contacts.ended
    }

    fn complete(&self) -> Complete<'_> {
        if self.done() {
            return Complete::All;
        }
        if self.members.disordered || self.contacts.disordered {
            return Complete::None;
        }
        fn bound(p: &Progress) -> Complete<'_> {
            match (&p.at, p.ended) {
                (_, true) => Complete::All,
                (Some(at), false) => Complete::Below(at),
                (None, false) => Complete::None,
            }
        }
        match (bound(&self.members), bound(&self.contacts)) {
            (Complete::None, _) | (_, Complete::None) => Complete::None,
            (Complete::All, other) | (other, Complete::All) => other,
            (Complete::Below(a), Complete::Below(b)) => Complete::Below(a.min(b)),
        }
    }

    /// Plans the declared accounts read whole and not yet planned, and drops what was read of
    /// them.
    fn plan_complete(&mut self, ctx: &Context<'_>) {
        let rest = &self.order[self.next..];
        let end = self.next
            + match self.complete() {
                Complete::None => 0,
                Complete::Below(cn) => rest.partition_point(|d| d.customer_number.as_str() < cn),
                Complete::All => rest.len(),
            };
        if end == self.next {
            return;
        }
        let stretch = &self.order[self.next..end];
        let mut observed: Vec<ObservedAccount> = Vec::new();
        let mut index = Vec::with_capacity(stretch.len());
        for (i, &d) in stretch.iter().enumerate() {
            let cn = d.customer_number.as_str();
            // A number declared twice is planned twice against the one observation.
            if i > 0 && stretch[i - 1].customer_number == cn {
                index.push(observed.len() - 1);
                continue;
            }
            let (members, contacts) = self.pending.remove(cn).unwrap_or_default();
            // An account the portal did not list is new, whatever a bulk read raced it with
            // (as `observe` has it).
            observed.push(match self.settings.remove(cn) {
                Some(settings) => ObservedAccount {
                    account: Some(settings),
                    members,
                    contacts,
                },
                None => ObservedAccount::default(),
            });
            index.push(observed.len() - 1);
            self.planned.insert(cn);
        }
        let pairs: Vec<(&DesiredAccount, &ObservedAccount)> = stretch
            .iter()
            .zip(&index)
            .map(|(d, &i)| (*d, &observed[i]))
            .collect();
        let started = std::time::Instant::now();
        let plans = crate::workers::install(|| plan::plan_joined(&pairs, ctx));
        tracing::debug!(
            accounts = pairs.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "planned the accounts read whole"
        );
        self.plans.extend(plans);
        self.next = end;
    }

    fn finish(self) -> Streamed {
        Streamed {
            plans: self.plans,
            late: self.late,
        }
    }
}

#[cfg(test)]
mod tests;
