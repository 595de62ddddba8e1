//! `rolecall plan`: what apply would change, as text, Markdown or the JSON plan document.

use std::path::PathBuf;
use std::process::ExitCode;

use jiff::Timestamp;

use super::{FileArgs, OutputFormat, PortalArgs};
use std::sync::Arc;

use crate::domain::{DesiredAccount, DesiredState};
use crate::plan::{AccountPlan, PlanDocument};
use crate::reconcile::connect::AnyPortal;
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
    /// The manifests' warnings and the expiry notices.
    pub warnings: Vec<String>,
    now: Timestamp,
    plan_id: String,
}

impl Planned {
    /// The JSON plan document. Made when asked for: it copies every change and operation,
    /// which `apply` does not need to hold twice.
    pub fn document(&self) -> PlanDocument {
        PlanDocument::new(
            &self.target.shown(),
            self.now,
            &self.plan_id,
            &self.plans,
            self.warnings.clone(),
        )
    }
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

/// A target whose portal was read: its portal, and what that holds for its accounts.
pub struct ObservedPortal {
    pub target: Target,
    pub portal: Arc<AnyPortal>,
    pub read: reconcile::ObservedTarget,
}

/// Every target observed, and what their plans share.
pub struct Observations {
    pub targets: Vec<ObservedPortal>,
    pub now: Timestamp,
    pub plan_id: String,
    /// The manifests' warnings and the expiry notices.
    pub warnings: Vec<String>,
}

impl Observations {
    /// The plans of `declared`, some or all of the accounts of `target`.
    pub fn plan(&self, target: &ObservedPortal, declared: &[DesiredAccount]) -> Vec<AccountPlan> {
        target.read.plan(declared, self.now, &self.plan_id)
    }
}

/// Loads, observes and plans every target. The manifests' warnings, and a notice for every
/// planned account's role whose last day is within `expiring_within` days, go into every plan
/// document, and to stderr as well unless `warnings_shown` (the text plan on stdout lists
/// them). A target the prefetch reads is planned as its pages arrive.
pub async fn make_plans(
    files: &FileArgs,
    portal: &PortalArgs,
    accounts: &[String],
    warnings_shown: bool,
    expiring_within: u32,
) -> Result<Vec<Planned>, Error> {
    let Prepared {
        found,
        mut prefetch,
        options,
        now,
        warnings,
    } = prepare(files, portal, accounts, warnings_shown, expiring_within).await?;
    let plan_id = reconcile::new_plan_id(now);
    let mut out = Vec::new();
    for target in found {
        let (portal, prefetched) = connect_target(&target, &mut prefetch, &options).await?;
        let plans =
            reconcile::plan_target_as_read(portal.as_ref(), &target, now, &plan_id, prefetched)
                .await?;
        out.push(Planned {
            target: target.clone_address(),
            plans,
            warnings: warnings.clone(),
            now,
            plan_id: plan_id.clone(),
        });
        // A large fleet's declared state takes a while to free: another core does it while
        // this one goes on.
        std::thread::spawn(move || drop(target));
    }
    Ok(out)
}

/// Loads the manifests and observes every target they send accounts to (see [`make_plans`]
/// for the warnings).
pub async fn observe_all(
    files: &FileArgs,
    portal: &PortalArgs,
    accounts: &[String],
    warnings_shown: bool,
    expiring_within: u32,
) -> Result<Observations, Error> {
    let Prepared {
        found,
        mut prefetch,
        options,
        now,
        warnings,
    } = prepare(files, portal, accounts, warnings_shown, expiring_within).await?;
    let mut targets = Vec::new();
    for target in found {
        let (portal, prefetched) = connect_target(&target, &mut prefetch, &options).await?;
        let read = reconcile::observe_target(portal.as_ref(), &target, prefetched).await?;
        targets.push(ObservedPortal {
            target,
            portal,
            read,
        });
    }
    Ok(Observations {
        targets,
        now,
        plan_id: reconcile::new_plan_id(now),
        warnings,
    })
}

/// The manifests read, the portals they send accounts to, and the reads of `--portal` under
/// way since before the manifests were parsed.
struct Prepared {
    found: Vec<Target>,
    prefetch: Option<reconcile::Prefetch>,
    options: reconcile::ConnectOptions,
    now: Timestamp,
    warnings: Vec<String>,
}

async fn prepare(
    files: &FileArgs,
    portal: &PortalArgs,
    accounts: &[String],
    warnings_shown: bool,
    expiring_within: u32,
) -> Result<Prepared, Error> {
    let options = portal.connect_options();
    // The portal is read while the manifests are parsed (reconcile::Prefetch says when).
    let prefetch = reconcile::Prefetch::start(portal.portal.as_deref(), &options);
    let paths = files.files.clone();
    let loading = tokio::task::spawn_blocking(move || load(&paths, !warnings_shown));
    let (desired, now, mut warnings) = match loading.await {
        Ok(loaded) => loaded?,
        // Only a panic of the reader ends it early (this runtime is never shut down first).
        Err(e) => std::panic::resume_unwind(
            e.try_into_panic()
                .unwrap_or_else(|_| Box::new("the manifest reader was cancelled")),
        ),
    };
    tracing::debug!(accounts = desired.accounts.len(), "manifests read");
    let notices = expiry_notices(&desired, accounts, now, expiring_within);
    if !warnings_shown {
        for n in &notices {
            eprintln!("warning: {}", crate::domain::text::printable(n));
        }
    }
    warnings.extend(notices);
    let found = reconcile::targets(desired, portal.portal.as_deref(), accounts)?;
    Ok(Prepared {
        found,
        prefetch,
        options,
        now,
        warnings,
    })
}

/// The target's portal, and what the prefetch read of it when the target goes there (the
/// prefetch is used up by the first target that asks).
async fn connect_target(
    target: &Target,
    prefetch: &mut Option<reconcile::Prefetch>,
    options: &reconcile::ConnectOptions,
) -> Result<(Arc<AnyPortal>, Option<reconcile::Prefetched>), Error> {
    let early = match prefetch.take() {
        Some(p) => p.take(target).await,
        None => None,
    };
    Ok(match early {
        Some((portal, read)) => (portal, Some(read)),
        None => (
            Arc::new(reconcile::connect(&target.url, &target.token_env, options)?),
            None,
        ),
    })
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
        .map(|p| p.warnings.as_slice())
        .unwrap_or(&[])
}

/// Located errors of plans (unknown roles…), printed like validation errors.
pub fn print_plan_errors(planned: &[Planned]) -> usize {
    planned.iter().map(|p| print_errors(&p.plans)).sum()
}

/// Located errors of these account plans, printed; how many.
pub fn print_errors(plans: &[AccountPlan]) -> usize {
    let mut n = 0;
    for a in plans {
        for e in &a.errors {
            eprintln!("{e}");
            n += 1;
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
            let docs: Vec<PlanDocument> = planned.iter().map(Planned::document).collect();
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
        let text = serde_json::to_string_pretty(&p.document()).unwrap_or_default() + "\n";
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
