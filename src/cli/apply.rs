//! `rolecall apply`: show the plan, confirm, carry it out account by account, report.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::plan::{all_plans, make_plans, print_plan_errors, warnings};
use super::tally::Tally;
use super::{FileArgs, PortalArgs};
use crate::apply::{AccountOutcome, apply_all, check_preconditions, observe};
use crate::plan::{AccountPlan, Change, ModeWord, Operation, PlanDocument};
use crate::portal::connect::AnyPortal;
use crate::render;

pub struct ApplyArgs<'a> {
    pub files: &'a FileArgs,
    pub portal: &'a PortalArgs,
    pub auto_approve: bool,
    pub concurrency: usize,
}

pub async fn run(args: ApplyArgs<'_>) -> ExitCode {
    // The plan shown lists the warnings, unless nothing is shown.
    let plan_shown = !super::quiet() || !args.auto_approve;
    let planned = match make_plans(args.files, args.portal, &[], plan_shown).await {
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
    if plan_shown {
        let style = render::Style::for_stdout();
        print!(
            "{}",
            render::text_with_warnings(&all, warnings(&planned), style)
        );
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
    let mut tally = Tally::default();
    for mut p in planned {
        let portal =
            match super::reconcile::connect(&p.target.url, &p.target.token_env, args.portal) {
                Ok(portal) => Arc::new(portal),
                Err(msg) => {
                    eprintln!("{msg}");
                    let changes = p.plans.iter().filter(|a| attempted(a));
                    tally.not_reached(changes.map(|a| a.changes.len()).sum());
                    continue;
                }
            };
        // The operations move to the work (the plans keep their changes, for the count): a
        // large fleet's operations are not held twice. What each change's write is, is noted
        // first, so that a failure can name the changes that happened and those that did not.
        let mut carriers: HashMap<String, Vec<Option<usize>>> = HashMap::new();
        let work: Vec<(String, Vec<Operation>)> = p
            .plans
            .iter_mut()
            .filter(|a| attempted(a))
            .map(|a| {
                let carried = crate::plan::carriers(&a.changes, &a.operations);
                carriers.insert(a.customer_number.clone(), carried);
                (a.customer_number.clone(), std::mem::take(&mut a.operations))
            })
            .collect();
        let changes: HashMap<&str, &[Change]> = p
            .plans
            .iter()
            .map(|a| (a.customer_number.as_str(), a.changes.as_slice()))
            .collect();
        let outcomes = run_work(portal, work, args.concurrency).await;
        for o in &outcomes {
            let cn = o.customer_number.as_str();
            let carried = carriers.get(cn).map(Vec::as_slice).unwrap_or(&[]);
            tally.settle(o, changes.get(cn).copied().unwrap_or(&[]), carried);
        }
    }
    super::unless_quiet(format_args!("{}", tally.summary()));
    if tally.failed || refused > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Whether `apply` sends this account's writes.
fn attempted(a: &AccountPlan) -> bool {
    a.applicable() && !a.operations.is_empty()
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
    let mut stale_changes = 0;
    let mut work = Vec::new();
    for a in &accounts {
        match check_preconditions(&a.operations, observed.get(&a.customer_number)) {
            Ok(()) => work.push((a.customer_number.clone(), a.operations.clone())),
            Err(reason) => {
                eprintln!("customer account {}: refused: {reason}", a.customer_number);
                stale += 1;
                stale_changes += a.changes.len();
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
    let mut tally = Tally::with_stale(stale_changes);
    let planned: HashMap<&str, _> = accounts
        .iter()
        .map(|a| (a.customer_number.as_str(), *a))
        .collect();
    for o in &outcomes {
        match planned.get(o.customer_number.as_str()) {
            Some(a) => {
                let carried = crate::plan::carriers(&a.changes, &a.operations);
                tally.settle(o, &a.changes, &carried);
            }
            None => tally.settle(o, &[], &[]),
        }
    }
    super::unless_quiet(format_args!("{}", tally.summary()));
    if tally.failed || stale > 0 || !doc.refused.is_empty() {
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
