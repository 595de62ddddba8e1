//! `rolecall plan`: what apply would change, as text, Markdown or the JSON plan document.

use std::path::PathBuf;
use std::process::ExitCode;

use jiff::Timestamp;

use super::{FileArgs, OutputFormat, PortalArgs};
use crate::domain::DesiredState;
use crate::plan::{AccountPlan, PlanDocument};
use crate::reconcile::{self, Error, Loaded, Target};
use crate::render;

pub struct PlanArgs<'a> {
    pub files: &'a FileArgs,
    pub portal: &'a PortalArgs,
    pub output: OutputFormat,
    pub out: Option<&'a std::path::Path>,
    pub detailed_exitcode: bool,
    pub accounts: &'a [String],
    /// Warn about roles whose last day is within this many days.
    pub expiring_within: u32,
}

/// A finished plan of one portal.
pub struct Planned {
    pub target: Target,
    pub plans: Vec<AccountPlan>,
    pub document: PlanDocument,
}

/// Reads the clock and the manifests, and prints their diagnostics: the errors, and the
/// warnings too when `warnings_on_stderr` (with errors nothing is planned, so stderr is the only
/// place the warnings can show).
pub fn load(
    files: &[PathBuf],
    warnings_on_stderr: bool,
) -> Result<(DesiredState, Timestamp, Vec<String>), Error> {
    let now = reconcile::now()?;
    let (loaded, diagnostics) = reconcile::load(files, now);
    if warnings_on_stderr || matches!(loaded, Err(reconcile::LoadError::Invalid { .. })) {
        super::print_diagnostics(&diagnostics);
    }
    let Loaded { desired, warnings } = loaded?;
    Ok((desired, now, warnings))
}

/// Loads, observes and plans every target. The manifests' warnings, and a notice for every
/// planned account's role whose last day is within `expiring_within` days, go into every plan
/// document, and to stderr as well unless `warnings_shown` (the text plan on stdout lists
/// them).
pub async fn make_plans(
    files: &FileArgs,
    portal: &PortalArgs,
    accounts: &[String],
    warnings_shown: bool,
    expiring_within: u32,
) -> Result<Vec<Planned>, Error> {
    let (desired, now, mut warnings) = load(&files.files, !warnings_shown)?;
    let notices = expiry_notices(&desired, accounts, now, expiring_within);
    if !warnings_shown {
        for n in &notices {
            eprintln!("warning: {}", crate::domain::text::printable(n));
        }
    }
    warnings.extend(notices);
    let targets = reconcile::targets(desired, portal.portal.as_deref(), accounts)?;
    let plan_id = reconcile::new_plan_id(now);
    let options = portal.connect_options();
    let mut out = Vec::new();
    for target in targets {
        let portal = reconcile::connect(&target.url, &target.token_env, &options)?;
        let (plans, observed) = reconcile::plan_target(&portal, &target, now, &plan_id).await?;
        // A large fleet's observed state takes a tenth of a second to free: another core does
        // it while this one renders the plan.
        std::thread::spawn(move || drop(observed));
        let document = PlanDocument::new(&target.shown(), now, &plan_id, &plans, warnings.clone());
        out.push(Planned {
            target,
            plans,
            document,
        });
    }
    Ok(out)
}

/// The roles ending soon in the accounts this run plans (all, or those of `--account`).
fn expiry_notices(
    desired: &DesiredState,
    accounts: &[String],
    now: Timestamp,
    within_days: u32,
) -> Vec<String> {
    crate::domain::expiring_soon(&desired.accounts, now, within_days)
        .into_iter()
        .filter(|e| accounts.is_empty() || accounts.contains(&e.customer_number))
        .map(|e| e.to_string())
        .collect()
}

/// Every account plan of every portal, in order; borrowed when there is one portal (the usual
/// case), so a large plan is not copied to be printed.
pub fn all_plans(planned: &[Planned]) -> std::borrow::Cow<'_, [AccountPlan]> {
    match planned {
        [one] => std::borrow::Cow::Borrowed(&one.plans),
        many => many.iter().flat_map(|p| p.plans.clone()).collect(),
    }
}

/// The manifests' warnings (every plan document carries the same ones).
pub fn warnings(planned: &[Planned]) -> &[String] {
    planned
        .first()
        .map(|p| p.document.warnings.as_slice())
        .unwrap_or(&[])
}

/// Located errors of plans (unknown roles…), printed like validation errors.
pub fn print_plan_errors(planned: &[Planned]) -> usize {
    let mut n = 0;
    for p in planned {
        for a in &p.plans {
            for e in &a.errors {
                eprintln!("{e}");
                n += 1;
            }
        }
    }
    n
}

pub async fn run(args: PlanArgs<'_>) -> ExitCode {
    let text_output = args.output == OutputFormat::Text;
    let planned = match make_plans(
        args.files,
        args.portal,
        args.accounts,
        text_output,
        args.expiring_within,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return super::fail(&e),
    };
    let errors = print_plan_errors(&planned);
    if args.out.is_some() && planned.len() > 1 {
        eprintln!(
            "--out: a saved plan covers one portal, and these manifests use {}; pass --portal or plan each portal on its own",
            planned.len()
        );
        return ExitCode::from(1);
    }
    let all = all_plans(&planned);
    let stdout = match args.output {
        OutputFormat::Text => {
            render::text_with_warnings(&all, warnings(&planned), render::Style::for_stdout())
        }
        OutputFormat::Markdown => render::markdown_with_warnings(&all, warnings(&planned)),
        OutputFormat::Json => {
            let docs: Vec<&PlanDocument> = planned.iter().map(|p| &p.document).collect();
            let value = match docs.as_slice() {
                [one] => serde_json::to_value(one),
                many => serde_json::to_value(many),
            };
            value
                .and_then(|v| serde_json::to_string_pretty(&v))
                .map(|s| s + "\n")
                .unwrap_or_default()
        }
    };
    if !super::quiet() {
        print!("{stdout}");
    }
    if let (Some(path), Some(p)) = (args.out, planned.first()) {
        let text = serde_json::to_string_pretty(&p.document).unwrap_or_default() + "\n";
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("{}: the plan cannot be written: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    let refused = all.iter().any(|p| p.refused.is_some());
    let changes = all.iter().any(|p| p.has_changes());
    drop(all);
    // The process ends here: freeing a large fleet's plans object by object would take longer
    // than planning it, and the operating system takes the memory back at once.
    std::mem::forget(planned);
    if errors > 0 || refused {
        return ExitCode::from(1);
    }
    if args.detailed_exitcode && changes {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
