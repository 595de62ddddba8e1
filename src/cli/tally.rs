//! What `apply` reports at the end: every change counted, and for an account whose writes
//! stopped part way, each change named as applied or not, with why (SPEC §3).

use crate::domain::text::printable;
use crate::plan::Change;
use crate::reconcile::{AccountOutcome, Fate, fates};
use crate::render;

/// What an apply did, change by change.
#[derive(Debug, Default)]
pub struct Tally {
    applied: usize,
    total: usize,
    /// Changes of saved-plan accounts refused as stale: not applied, and not tried.
    stale: usize,
    pub failed: bool,
}

impl Tally {
    /// A saved plan's tally: `stale` changes were refused before any write.
    pub fn with_stale(stale: usize) -> Tally {
        Tally {
            stale,
            ..Tally::default()
        }
    }

    /// Counts one account's changes. When its writes stopped part way, names on stderr each
    /// change that was applied and each that was not, with why (SPEC §3: apply ends with what
    /// was applied and what failed).
    pub fn settle(&mut self, o: &AccountOutcome, changes: &[Change], carriers: &[Option<usize>]) {
        let fates = fates(carriers, o);
        let applied: Vec<&Change> = changes
            .iter()
            .zip(&fates)
            .filter(|(_, f)| **f == Fate::Applied)
            .map(|(c, _)| c)
            .collect();
        self.total += changes.len();
        self.applied += applied.len();
        let Some(e) = &o.error else {
            return;
        };
        self.failed = true;
        // Customer numbers, e-mails and the portal's error text may hold control characters.
        let cn = printable(&o.customer_number);
        eprintln!(
            "customer account {cn}: failed after {} of {} writes: {}",
            o.applied,
            o.total,
            printable(&e.to_string())
        );
        if changes.is_empty() {
            return;
        }
        eprintln!(
            "customer account {cn}: {} of {} {} applied{}",
            applied.len(),
            changes.len(),
            plural(changes.len()),
            if applied.is_empty() { "." } else { ":" }
        );
        for c in &applied {
            eprintln!("  {} {}", c.action.sign(), printable(&render::describe(c)));
        }
        let missed = changes.len() - applied.len();
        eprintln!("customer account {cn}: {missed} {} failed:", plural(missed));
        for (c, fate) in changes.iter().zip(&fates) {
            let why = match fate {
                Fate::Applied => continue,
                Fate::Failed(e) => format!("failed: {e}"),
                Fate::NotAttempted => {
                    "not attempted: an earlier write of this account failed".to_string()
                }
            };
            eprintln!(
                "  {} {} ({})",
                c.action.sign(),
                printable(&render::describe(c)),
                printable(&why)
            );
        }
    }

    /// `Apply complete: 5 changes applied.` or `Apply incomplete: 3 of 5 changes applied; 2 failed.`
    pub fn summary(&self) -> String {
        let total = self.total + self.stale;
        if self.failed || self.stale > 0 {
            format!(
                "Apply incomplete: {} of {total} {} applied; {} failed.",
                self.applied,
                plural(total),
                total - self.applied
            )
        } else {
            format!(
                "Apply complete: {} {} applied.",
                self.applied,
                plural(self.applied)
            )
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "change" } else { "changes" }
}
