//! `rolecall apply`: show the plan, confirm, carry it out account by account, report.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::plan::{Observations, observe_all, print_errors};
use super::tally::Tally;
use super::{FileArgs, PortalArgs};
use crate::domain::text::printable;
use crate::plan::{AccountPlan, Change, ModeWord, Operation, PlanDocument, check_saved_account};
use crate::reconcile::connect::AnyPortal;
use crate::reconcile::{
    self, AccountOutcome, DEFAULT_PORTAL, DEFAULT_TOKEN_ENV, apply_all, check_preconditions,
    observe,
};
use crate::render;

pub struct ApplyArgs<'a> {
    pub files: &'a FileArgs,
    pub portal: &'a PortalArgs,
    pub auto_approve: bool,
    pub concurrency: usize,
    /// Warn about roles whose last day is within this many days.
    pub expiring_within: u32,
}

/// Accounts are planned, shown and applied this many at a time: a large fleet's changes and
/// operations are never all held at once (issue 20: seeding 130,000 objects).
const BATCH_ACCOUNTS: usize = 1000;

/// The first pass keeps the plans while they hold at most this many changes and operations
/// (every plan of a small fleet, or of one with little drift), so that they are not made
/// again; beyond that each batch is planned again when it is shown and when it is applied.
const HELD_CHANGES: usize = 20_000;

/// How many accounts a batch holds, and how many changes the first pass keeps. The tests set
/// `ROLECALL_APPLY_BATCH` to see small batches planned again (not a setting for users: the
/// outcome is the same whatever the batch).
fn batching() -> (usize, usize) {
    match std::env::var("ROLECALL_APPLY_BATCH")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        Some(n) => (n, 0),
        None => (BATCH_ACCOUNTS, HELD_CHANGES),
    }
}

pub async fn run(args: ApplyArgs<'_>) -> ExitCode {
    // The plan shown lists the warnings, unless nothing is shown.
    let plan_shown = !super::quiet() || !args.auto_approve;
    let mut observations = match observe_all(
        args.files,
        args.portal,
        &[],
        plan_shown,
        args.expiring_within,
    )
    .await
    {
        Ok(o) => o,
        Err(e) => return super::fail(&e),
    };
    // In customer-number order, as the planner orders its plans: batch after batch, the plans
    // come out as one plan of all the accounts would.
    for o in &mut observations.targets {
        o.target
            .accounts
            .sort_by(|a, b| a.customer_number.cmp(&b.customer_number));
    }
    // First pass: every account is planned before anything is shown or written, so that an
    // error anywhere stops the apply, and each account's safety rules see the whole account.
    let (batch, hold) = batching();
    let first = first_pass(&observations, batch, hold);
    if first.errors > 0 {
        eprintln!("nothing was applied: fix the errors above first");
        return ExitCode::from(1);
    }
    let mut batches = Batches {
        observations: &observations,
        batch,
        held: first.held,
    };
    // Quiet still shows what a person is asked to approve.
    if plan_shown {
        let mut writer = render::TextWriter::new(render::Style::for_stdout());
        let mut out = std::io::stdout().lock();
        for (t, b) in batches.indices() {
            let text = batches.with(t, b, |plans| writer.accounts(plans));
            let _ = out.write_all(text.as_bytes());
        }
        let _ = out.write_all(
            writer
                .finish(&observations.warnings, &first.summary)
                .as_bytes(),
        );
        let _ = out.flush();
    }
    if first.work == 0 {
        return if first.refused > 0 {
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
    let bar = progress_bar(first.work, first.accounts_with_work);
    for (t, b) in batches.indices() {
        let portal = observations.targets[t].portal.clone();
        let mut plans = batches.take(t, b);
        apply_batch(portal, &mut plans, args.concurrency, &bar, &mut tally).await;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    super::unless_quiet(format_args!("{}", tally.summary()));
    if tally.failed || first.refused > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// What the first pass over every account's plan found.
struct FirstPass {
    /// Located errors of plans (printed).
    errors: usize,
    refused: usize,
    /// Writes to send, and how many accounts have some.
    work: usize,
    accounts_with_work: usize,
    summary: render::Summary,
    /// Every batch's plans, `[target][batch]`, when they were small enough to keep.
    held: Option<Vec<Vec<Vec<AccountPlan>>>>,
}

fn first_pass(observations: &Observations, batch: usize, hold: usize) -> FirstPass {
    let mut first = FirstPass {
        errors: 0,
        refused: 0,
        work: 0,
        accounts_with_work: 0,
        summary: render::Summary::default(),
        held: Some(Vec::new()),
    };
    let mut held_size = 0;
    for o in &observations.targets {
        let mut kept = Vec::new();
        for chunk in o.target.accounts.chunks(batch) {
            let plans = observations.plan(o, chunk);
            first.errors += print_errors(&plans);
            first.summary.add(&plans);
            first.refused += plans.iter().filter(|p| p.refused.is_some()).count();
            for p in plans.iter().filter(|p| attempted(p)) {
                first.work += p.operations.len();
                first.accounts_with_work += 1;
            }
            held_size += plans
                .iter()
                .map(|p| p.changes.len() + p.operations.len())
                .sum::<usize>();
            if held_size <= hold {
                kept.push(plans);
            }
        }
        match &mut first.held {
            Some(held) if held_size <= hold => held.push(kept),
            _ => first.held = None,
        }
    }
    first
}

/// Each batch's plans: the first pass's when it kept them, else planned again (the planner
/// is a pure function of the same observation, instant and plan id: the same plans).
struct Batches<'a> {
    observations: &'a Observations,
    batch: usize,
    held: Option<Vec<Vec<Vec<AccountPlan>>>>,
}

impl Batches<'_> {
    /// `(target, batch)` of every batch, in order.
    fn indices(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (t, o) in self.observations.targets.iter().enumerate() {
            for b in 0..o.target.accounts.len().div_ceil(self.batch) {
                out.push((t, b));
            }
        }
        out
    }

    fn declared(&self, t: usize, b: usize) -> &[crate::domain::DesiredAccount] {
        let accounts = &self.observations.targets[t].target.accounts;
        let start = (b * self.batch).min(accounts.len());
        &accounts[start..(start + self.batch).min(accounts.len())]
    }

    fn with<R>(&self, t: usize, b: usize, f: impl FnOnce(&[AccountPlan]) -> R) -> R {
        match &self.held {
            Some(held) => f(&held[t][b]),
            None => f(&self
                .observations
                .plan(&self.observations.targets[t], self.declared(t, b))),
        }
    }

    fn take(&mut self, t: usize, b: usize) -> Vec<AccountPlan> {
        match &mut self.held {
            Some(held) => std::mem::take(&mut held[t][b]),
            None => self
                .observations
                .plan(&self.observations.targets[t], self.declared(t, b)),
        }
    }
}

/// Sends the writes of one batch's plans and settles them in the tally.
async fn apply_batch(
    portal: Arc<AnyPortal>,
    plans: &mut [AccountPlan],
    concurrency: usize,
    bar: &Option<indicatif::ProgressBar>,
    tally: &mut Tally,
) {
    // The operations move to the work (the plans keep their changes, for the count): a
    // batch's operations are not held twice. What each change's write is, is noted first, so
    // that a failure can name the changes that happened and those that did not.
    let mut carriers: HashMap<String, Vec<Option<usize>>> = HashMap::new();
    let work: Vec<(String, Vec<Operation>)> = plans
        .iter_mut()
        .filter(|a| attempted(a))
        .map(|a| {
            let carried = crate::plan::carriers(&a.changes, &a.operations);
            carriers.insert(a.customer_number.clone(), carried);
            (a.customer_number.clone(), std::mem::take(&mut a.operations))
        })
        .collect();
    if work.is_empty() {
        return;
    }
    let changes: HashMap<&str, &[Change]> = plans
        .iter()
        .map(|a| (a.customer_number.as_str(), a.changes.as_slice()))
        .collect();
    let outcomes = run_work(portal, work, concurrency, bar.clone()).await;
    for o in &outcomes {
        let cn = o.customer_number.as_str();
        let carried = carriers.get(cn).map(Vec::as_slice).unwrap_or(&[]);
        tally.settle(o, changes.get(cn).copied().unwrap_or(&[]), carried);
    }
}

/// Whether `apply` sends this account's writes.
fn attempted(a: &AccountPlan) -> bool {
    a.applicable() && !a.operations.is_empty()
}

/// `apply PLANFILE`: exactly the saved plan; an account whose preconditions no longer hold is
/// refused as stale.
pub async fn run_saved(
    path: &Path,
    files: &FileArgs,
    portal_args: &PortalArgs,
    concurrency: usize,
) -> ExitCode {
    let doc = match read_plan(path) {
        Ok(d) => d,
        Err(exit) => return exit,
    };
    // A plan file is data (from a pull request, say): it never chooses where the token goes.
    // The portal comes from where `plan` takes it, and must be the one the plan was made for.
    let chosen = match saved_plan_portal(&doc, files, portal_args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("{}: {msg}", path.display());
            return ExitCode::from(1);
        }
    };
    let shown = crate::domain::text::redact_url(&chosen.url).into_owned();
    if shown != doc.portal {
        eprintln!(
            "{}: the plan was made for the portal {}, but this apply goes to {} ({}); nothing was applied: pass --portal (or set ROLECALL_PORTAL) to the plan's portal to apply it there",
            path.display(),
            crate::manifest::quote_short(&crate::domain::text::redact_url(&doc.portal)),
            crate::manifest::quote_short(&shown),
            chosen.origin,
        );
        return ExitCode::from(1);
    }
    let options = portal_args.connect_options();
    let portal = match reconcile::connect(&chosen.url, &chosen.token_env, &options) {
        Ok(p) => Arc::new(p),
        Err(e) => return super::fail(&e),
    };
    // The principal that applies now, which may not be the one that planned.
    let facts = match reconcile::facts(portal.as_ref(), &shown).await {
        Ok(f) => f,
        Err(e) => return super::fail(&e),
    };
    let now = match reconcile::now() {
        Ok(n) => n,
        Err(e) => return super::fail(&e),
    };
    let ctx = crate::plan::Context {
        catalog: &facts.catalog,
        principal: &facts.principal,
        now,
        plan_id: &doc.plan_id,
    };
    let accounts: Vec<_> = doc
        .accounts
        .iter()
        .filter(|a| a.mode == ModeWord::Apply && !a.operations.is_empty())
        .collect();
    let cns: Vec<String> = accounts.iter().map(|a| a.customer_number.clone()).collect();
    let observed = match observe(portal.as_ref(), &cns).await {
        Ok(o) => o,
        Err(source) => {
            return super::fail(&reconcile::Error::Observe { url: shown, source });
        }
    };
    let Checked {
        work,
        stale,
        stale_changes,
    } = check_accounts(&accounts, &observed, &ctx);
    for r in &doc.refused {
        eprintln!(
            "customer account {}: refused when planned: {}",
            printable(&r.customer_number),
            printable(&r.reason)
        );
    }
    let writes = work.iter().map(|(_, ops)| ops.len()).sum();
    let bar = progress_bar(writes, work.len());
    let outcomes = run_work(portal, work, concurrency, bar.clone()).await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
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

/// Reads and parses the plan file; on failure, says why and gives the exit code.
fn read_plan(path: &Path) -> Result<PlanDocument, ExitCode> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("{}: the plan cannot be read: {e}", path.display());
        ExitCode::from(1)
    })?;
    PlanDocument::from_json(&text).map_err(|msg| {
        eprintln!("{}: {msg}", path.display());
        ExitCode::from(1)
    })
}

/// The saved plan's accounts that may still be applied, and how many were refused.
struct Checked {
    work: Vec<(String, Vec<Operation>)>,
    /// Accounts refused as stale, edited or against a safety rule.
    stale: usize,
    /// Their changes.
    stale_changes: usize,
}

/// Checks every account before anything is written: stale, edited, or against a safety rule
/// for the principal that applies. Each refusal is printed.
fn check_accounts(
    accounts: &[&crate::plan::AccountDocument],
    observed: &std::collections::BTreeMap<String, crate::plan::ObservedAccount>,
    ctx: &crate::plan::Context<'_>,
) -> Checked {
    let mut checked = Checked {
        work: Vec::new(),
        stale: 0,
        stale_changes: 0,
    };
    let empty = crate::plan::ObservedAccount::default();
    for a in accounts {
        let o = observed.get(&a.customer_number);
        let verdict = check_preconditions(&a.operations, o)
            .map_err(|stale| stale.to_string())
            .and_then(|()| {
                check_saved_account(a, o.unwrap_or(&empty), ctx).map_err(|e| e.to_string())
            });
        match verdict {
            Ok(()) => checked
                .work
                .push((a.customer_number.clone(), a.operations.clone())),
            Err(reason) => {
                eprintln!(
                    "customer account {}: refused: {}",
                    printable(&a.customer_number),
                    printable(&reason)
                );
                checked.stale += 1;
                checked.stale_changes += a.changes.len();
            }
        }
    }
    checked
}

/// The portal a saved plan is applied to, and where that choice came from.
struct SavedPlanPortal {
    url: String,
    token_env: String,
    origin: &'static str,
}

/// Chooses the portal as `plan` does: `--portal` (or `ROLECALL_PORTAL`), else the Portal the
/// manifests of `-f` give the plan's accounts, else the embedded default.
fn saved_plan_portal(
    doc: &PlanDocument,
    files: &FileArgs,
    args: &PortalArgs,
) -> Result<SavedPlanPortal, String> {
    if let Some(url) = args.portal.as_deref().filter(|u| !u.is_empty()) {
        return Ok(SavedPlanPortal {
            url: url.to_string(),
            token_env: DEFAULT_TOKEN_ENV.to_string(),
            origin: "from --portal or ROLECALL_PORTAL",
        });
    }
    let now = reconcile::now().map_err(|e| e.to_string())?;
    let checked = crate::manifest::load_and_check(&files.files, now);
    if checked.documents == 0 {
        return Ok(SavedPlanPortal {
            url: DEFAULT_PORTAL.to_string(),
            token_env: DEFAULT_TOKEN_ENV.to_string(),
            origin: "the default, as no --portal, ROLECALL_PORTAL or manifests name one",
        });
    }
    let errors = checked.errors().count();
    if errors > 0 {
        super::print_diagnostics(&checked.diagnostics);
        return Err(format!(
            "the manifests that choose the portal have {errors} {}; nothing was applied",
            crate::reconcile::load::errors_word(errors)
        ));
    }
    let portals = checked.desired.portals.clone();
    let targets = reconcile::targets(checked.desired, None, &[]).map_err(|e| e.to_string())?;
    let planned: Vec<&str> = doc
        .accounts
        .iter()
        .map(|a| a.customer_number.as_str())
        .chain(doc.refused.iter().map(|r| r.customer_number.as_str()))
        .collect();
    let mut found: Vec<(&str, &str)> = targets
        .iter()
        .filter(|t| {
            planned.is_empty()
                || t.accounts
                    .iter()
                    .any(|a| planned.contains(&a.customer_number.as_str()))
        })
        .map(|t| (t.url.as_str(), t.token_env.as_str()))
        .collect();
    found.dedup();
    match found.as_slice() {
        [(url, env)] => Ok(SavedPlanPortal {
            url: url.to_string(),
            token_env: env.to_string(),
            origin: "from the manifests of -f",
        }),
        [] if planned.is_empty() => {
            let (url, env) = match portals.as_slice() {
                [p] => (p.url.clone(), p.token_env.clone()),
                _ => (DEFAULT_PORTAL.to_string(), None),
            };
            Ok(SavedPlanPortal {
                url,
                token_env: env.unwrap_or_else(|| DEFAULT_TOKEN_ENV.to_string()),
                origin: "from the manifests of -f",
            })
        }
        [] => Err(
            "no CustomerAccount of the manifests of -f has a customer number of the plan, so they name no portal for it; pass --portal (or set ROLECALL_PORTAL), or -f with the manifests the plan was made from; nothing was applied".into(),
        ),
        many => Err(format!(
            "the manifests of -f send the plan's accounts to {} portals, and a saved plan covers one; pass --portal (or set ROLECALL_PORTAL); nothing was applied",
            many.len()
        )),
    }
}

/// A progress bar of `writes` writes on a terminal, when more than one account has some.
fn progress_bar(writes: usize, accounts: usize) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() || accounts <= 1 || super::quiet() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(writes as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} writes {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

async fn run_work(
    portal: Arc<AnyPortal>,
    work: Vec<(String, Vec<Operation>)>,
    concurrency: usize,
    bar: Option<indicatif::ProgressBar>,
) -> Vec<AccountOutcome> {
    apply_all(portal, work, concurrency, move |o| {
        if let Some(b) = &bar {
            b.inc(o.total as u64);
        }
    })
    .await
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
