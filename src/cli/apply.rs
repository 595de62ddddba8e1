//! `rolecall apply`: show the plan, confirm, carry it out account by account, report.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::plan::{all_plans, make_plans, print_plan_errors};
use super::{FileArgs, PortalArgs};
use crate::apply::{AccountOutcome, apply_all, check_preconditions, observe};
use crate::plan::{ModeWord, Operation, PlanDocument};
use crate::portal::connect::AnyPortal;
use crate::render;

pub struct ApplyArgs<'a> {
    pub files: &'a FileArgs,
    pub portal: &'a PortalArgs,
    pub auto_approve: bool,
    pub concurrency: usize,
}

pub async fn run(args: ApplyArgs<'_>) -> ExitCode {
    let planned = match make_plans(args.files, args.portal, &[]).await {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(1);
        }
    };
    if print_plan_errors(&planned) > 0 {
        eprintln!("nothing was applied: fix the errors above first");
        return ExitCode::from(1);
    }
    let all = all_plans(&planned);
    // Quiet still shows what a person is asked to approve.
    if !super::quiet() || !args.auto_approve {
        print!("{}", render::text(&all, render::Style::for_stdout()));
    }
    let refused = all.iter().filter(|p| p.refused.is_some()).count();
    let work_total: usize = all
        .iter()
        .filter(|p| p.applicable())
        .map(|p| p.operations.len())
        .sum();
    drop(all);
    if work_total == 0 {
        return if refused > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        };
    }
    if !args.auto_approve && !confirm() {
        eprintln!("Apply cancelled; nothing was changed.");
        return ExitCode::from(1);
    }
    let mut failed = false;
    let mut applied_changes = 0;
    for mut p in planned {
        let portal =
            match super::reconcile::connect(&p.target.url, &p.target.token_env, args.portal) {
                Ok(portal) => Arc::new(portal),
                Err(msg) => {
                    eprintln!("{msg}");
                    failed = true;
                    continue;
                }
            };
        // The operations move to the work (the plans keep their changes, for the count): a
        // large fleet's operations are not held twice.
        let work: Vec<(String, Vec<Operation>)> = p
            .plans
            .iter_mut()
            .filter(|a| a.applicable() && !a.operations.is_empty())
            .map(|a| (a.customer_number.clone(), std::mem::take(&mut a.operations)))
            .collect();
        let changes: std::collections::HashMap<&str, usize> = p
            .plans
            .iter()
            .map(|a| (a.customer_number.as_str(), a.changes.len()))
            .collect();
        let outcomes = run_work(portal, work, args.concurrency).await;
        for o in &outcomes {
            if o.error.is_none()
                && let Some(n) = changes.get(o.customer_number.as_str())
            {
                applied_changes += n;
            }
        }
        failed |= report(&outcomes);
    }
    super::unless_quiet(format_args!(
        "Apply {}: {applied_changes} {} applied.",
        if failed { "incomplete" } else { "complete" },
        if applied_changes == 1 {
            "change"
        } else {
            "changes"
        }
    ));
    if failed || refused > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `apply PLANFILE`: exactly the saved plan; an account whose preconditions no longer hold is
/// refused as stale.
pub async fn run_saved(path: &Path, portal_args: &PortalArgs, concurrency: usize) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: the plan cannot be read: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    let doc = match PlanDocument::from_json(&text) {
        Ok(d) => d,
        Err(msg) => {
            eprintln!("{}: {msg}", path.display());
            return ExitCode::from(1);
        }
    };
    let token_env = super::reconcile::DEFAULT_TOKEN_ENV;
    // The saved plan names its portal; `--ca-file` still says which CA to trust for it.
    let portal = match super::reconcile::connect(&doc.portal, token_env, portal_args) {
        Ok(p) => Arc::new(p),
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(1);
        }
    };
    let accounts: Vec<_> = doc
        .accounts
        .iter()
        .filter(|a| a.mode == ModeWord::Apply && !a.operations.is_empty())
        .collect();
    let cns: Vec<String> = accounts.iter().map(|a| a.customer_number.clone()).collect();
    let observed = match observe(portal.as_ref(), &cns).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}: cannot read the accounts: {e}", doc.portal);
            return ExitCode::from(1);
        }
    };
    let mut stale = 0;
    let mut work = Vec::new();
    for a in &accounts {
        match check_preconditions(&a.operations, observed.get(&a.customer_number)) {
            Ok(()) => work.push((a.customer_number.clone(), a.operations.clone())),
            Err(reason) => {
                eprintln!("customer account {}: refused: {reason}", a.customer_number);
                stale += 1;
            }
        }
    }
    for r in &doc.refused {
        eprintln!(
            "customer account {}: refused when planned: {}",
            r.customer_number, r.reason
        );
    }
    let outcomes = run_work(portal, work, concurrency).await;
    let failed = report(&outcomes);
    let applied: usize = outcomes
        .iter()
        .filter(|o| o.error.is_none())
        .filter_map(|o| {
            doc.accounts
                .iter()
                .find(|a| a.customer_number == o.customer_number)
        })
        .map(|a| a.changes.len())
        .sum();
    super::unless_quiet(format_args!(
        "Apply {}: {applied} {} applied.",
        if failed || stale > 0 {
            "incomplete"
        } else {
            "complete"
        },
        if applied == 1 { "change" } else { "changes" }
    ));
    if failed || stale > 0 || !doc.refused.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn run_work(
    portal: Arc<AnyPortal>,
    work: Vec<(String, Vec<Operation>)>,
    concurrency: usize,
) -> Vec<AccountOutcome> {
    let total: u64 = work.iter().map(|(_, ops)| ops.len() as u64).sum();
    let bar = if std::io::stderr().is_terminal() && work.len() > 1 && !super::quiet() {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} writes {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let tick = bar.clone();
    let outcomes = apply_all(portal, work, concurrency, move |o| {
        if let Some(b) = &tick {
            b.inc(o.total as u64);
        }
    })
    .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    outcomes
}

/// Prints failures; true when any account failed.
fn report(outcomes: &[AccountOutcome]) -> bool {
    let mut failed = false;
    for o in outcomes {
        if let Some(e) = &o.error {
            failed = true;
            eprintln!(
                "customer account {}: failed after {} of {} writes: {e}",
                o.customer_number, o.applied, o.total
            );
        }
    }
    failed
}

/// Asks on a terminal, as Terraform does; anything but "yes" cancels.
fn confirm() -> bool {
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "apply asks for confirmation on a terminal; pass --auto-approve to apply without one"
        );
        return false;
    }
    print!("\nApply these changes? Only 'yes' will be accepted: ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.trim() == "yes"
}
