//! `rolecall apply`: show the plan, confirm, carry it out account by account, report.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::plan::{all_plans, make_plans, print_plan_errors, warnings};
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

pub async fn run(args: ApplyArgs<'_>) -> ExitCode {
    // The plan shown lists the warnings, unless nothing is shown.
    let plan_shown = !super::quiet() || !args.auto_approve;
    let planned = match make_plans(
        args.files,
        args.portal,
        &[],
        plan_shown,
        args.expiring_within,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return super::fail(&e),
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
    let options = args.portal.connect_options();
    for mut p in planned {
        let portal = match reconcile::connect(&p.target.url, &p.target.token_env, &options) {
            Ok(portal) => Arc::new(portal),
            Err(e) => {
                eprintln!("{}", super::chain(&e));
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
