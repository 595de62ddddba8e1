//! `rolecall review` and `rolecall review verify` (SPEC §3a): the access-review evidence pack
//! and the check of a filled-in review. Only reads the portal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use super::{FileArgs, PortalArgs};
use crate::domain::DesiredAccount;
use crate::plan::{AccountPlan, ObservedAccount};
use crate::portal::{Catalog, Portal};
use crate::review::{self, ReviewDocument, ReviewRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReviewOutput {
    Markdown,
    Csv,
    Json,
    Html,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReviewArgs {
    #[command(subcommand)]
    pub command: Option<ReviewCommand>,
    #[command(flatten)]
    pub files: FileArgs,
    #[command(flatten)]
    pub portal: PortalArgs,
    /// Only these customer numbers.
    #[arg(long = "account", value_name = "NUMBER")]
    pub accounts: Vec<String>,
    /// A grant that ends within this many days is `expiring`.
    #[arg(long, value_name = "DAYS", default_value_t = review::DEFAULT_EXPIRING_WITHIN_DAYS)]
    pub expiring_within: u32,
    /// `markdown` to post as an issue, `csv` the attestation form, `json` the document, `html`
    /// one self-contained page.
    #[arg(long, value_enum, default_value = "markdown")]
    pub output: ReviewOutput,
    /// Write the output to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Check a filled-in review: every row decided (keep|revoke) by a reviewer who did not
    /// grant it, and every revoke gone from the manifests and the portal. Exit 0 only then.
    Verify {
        /// The review's CSV with `decision` and `reviewer` filled in.
        #[arg(value_name = "DECISIONS.csv")]
        decisions: PathBuf,
        #[command(flatten)]
        files: FileArgs,
        #[command(flatten)]
        portal: PortalArgs,
    },
}

/// What one portal showed, with what the manifests declare for it and what the planner makes
/// of the two.
pub struct PortalRead {
    pub shown_url: String,
    pub declared: Vec<DesiredAccount>,
    pub observed: BTreeMap<String, ObservedAccount>,
    pub plans: Vec<AccountPlan>,
    pub catalog: Catalog,
}

/// Why the manifests or the portal could not be read for a review.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    /// The manifests, the choice of portal or a read of it failed; the sentence says where.
    #[error("{0}")]
    Read(String),
    #[error("--account {0}: the portal has no account {0:?} this token can reach")]
    UnknownAccount(String),
}

/// Everything `review`, `review verify` and `explain` read.
pub struct Read {
    pub now: jiff::Timestamp,
    pub portals: Vec<PortalRead>,
    pub declared_all: Vec<DesiredAccount>,
}

/// Reads the manifests and, with reads only, every account each of their portals shows (only
/// `only`, when given), and plans the declared ones. This is the one place these commands
/// reach the observe path of `plan`.
pub async fn read(files: &FileArgs, args: &PortalArgs, only: &[String]) -> Result<Read, ReadError> {
    use crate::reconcile;
    let (desired, now, _) =
        super::plan::load(&files.files, true).map_err(|e| ReadError::Read(super::chain(&e)))?;
    let declared_all = desired.accounts.clone();
    let mut targets = reconcile::targets(desired, args.portal.as_deref(), &[])
        .map_err(|e| ReadError::Read(super::chain(&e)))?;
    if targets.is_empty() {
        targets.push(reconcile::Target {
            url: args
                .portal
                .clone()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| reconcile::DEFAULT_PORTAL.to_string()),
            token_env: reconcile::DEFAULT_TOKEN_ENV.to_string(),
            accounts: Vec::new(),
        });
    }
    let plan_id = reconcile::new_plan_id(now);
    let mut portals = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for target in targets {
        let portal = reconcile::connect(&target.url, &target.token_env, &args.connect_options())
            .map_err(|e| ReadError::Read(super::chain(&e)))?;
        let facts = reconcile::facts(&portal, &target.url)
            .await
            .map_err(|e| ReadError::Read(super::chain(&e)))?;
        let mut bind: Vec<String> = target
            .accounts
            .iter()
            .map(|a| a.customer_number.clone())
            .collect();
        bind.extend(only.iter().cloned());
        portal.bind_accounts(&bind);
        let visible = portal.list_accounts().await.map_err(|e| {
            ReadError::Read(format!("{}: cannot list the accounts: {e}", target.shown()))
        })?;
        let cns: Vec<String> = visible
            .into_iter()
            .map(|a| a.customer_number)
            .filter(|cn| only.is_empty() || only.contains(cn))
            .collect();
        seen.extend(cns.iter().cloned());
        let observation = crate::reconcile::observe_for_plan(&portal, &cns, facts.principal.kind)
            .await
            .map_err(|e| {
                ReadError::Read(format!("{}: cannot read the accounts: {e}", target.shown()))
            })?;
        let declared: Vec<DesiredAccount> = target
            .accounts
            .iter()
            .filter(|a| only.is_empty() || only.contains(&a.customer_number))
            .cloned()
            .collect();
        let ctx = crate::plan::Context {
            catalog: &facts.catalog,
            principal: &facts.principal,
            now,
            plan_id: &plan_id,
        };
        let plans = crate::reconcile::plan_all(&declared, &observation.accounts, &ctx);
        portals.push(PortalRead {
            shown_url: target.shown(),
            declared,
            observed: observation.accounts,
            plans,
            catalog: facts.catalog,
        });
    }
    for cn in only {
        if !seen.contains(cn) {
            return Err(ReadError::UnknownAccount(cn.clone()));
        }
    }
    Ok(Read {
        now,
        portals,
        declared_all,
    })
}

/// The rows of everything read, with their provenance from git.
pub fn rows(read: &Read, expiring_within_days: u32) -> Vec<ReviewRow> {
    let mut rows = rows_without_provenance(read, expiring_within_days);
    review::provenance::fill(&mut rows);
    rows
}

/// The rows of everything read, without asking git.
fn rows_without_provenance(read: &Read, expiring_within_days: u32) -> Vec<ReviewRow> {
    let mut rows = Vec::new();
    for p in &read.portals {
        rows.extend(review::build_rows(&review::findings::Inputs {
            declared: &p.declared,
            observed: &p.observed,
            plans: &p.plans,
            catalog: &p.catalog,
            now: read.now,
            expiring_within_days,
        }));
    }
    rows
}

pub async fn run(args: ReviewArgs) -> ExitCode {
    if let Some(ReviewCommand::Verify {
        decisions,
        files,
        portal,
    }) = &args.command
    {
        return verify(decisions, files, &portal.beside(files)).await;
    }
    let portal = args.portal.beside(&args.files);
    let read = match read(&args.files, &portal, &args.accounts).await {
        Ok(r) => r,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(1);
        }
    };
    let doc = document(&read, &args.files, args.expiring_within);
    let text = match args.output {
        ReviewOutput::Markdown => review::markdown::render(&doc),
        ReviewOutput::Csv => review::csv::render(&doc.rows),
        ReviewOutput::Json => serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n",
        ReviewOutput::Html => review::html::render(&doc),
    };
    write_out(args.out.as_deref(), &text)
}

/// The review document of what was read.
pub fn document(read: &Read, files: &FileArgs, expiring_within_days: u32) -> ReviewDocument {
    let observed: Vec<&BTreeMap<String, ObservedAccount>> =
        read.portals.iter().map(|p| &p.observed).collect();
    let urls: Vec<&str> = read.portals.iter().map(|p| p.shown_url.as_str()).collect();
    ReviewDocument {
        format_version: 1,
        generated_at: review::rfc3339(read.now),
        portal: urls.join(", "),
        manifests_commit: files
            .files
            .first()
            .filter(|p| p.as_os_str() != "-")
            .and_then(|p| review::provenance::manifests_commit(p)),
        population: review::population_hash(&observed),
        expiring_within_days,
        rows: rows(read, expiring_within_days),
    }
}

fn write_out(out: Option<&Path>, text: &str) -> ExitCode {
    match out {
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{}: the review cannot be written: {e}", path.display());
                ExitCode::from(1)
            }
        },
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
    }
}

async fn verify(decisions: &Path, files: &FileArgs, portal: &PortalArgs) -> ExitCode {
    let shown = decisions.display().to_string();
    let text = match std::fs::read_to_string(decisions) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{shown}: the decisions cannot be read: {e}");
            return ExitCode::from(2);
        }
    };
    let list = match review::verify::read(&shown, &text) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let read = match read(files, portal, &[]).await {
        Ok(r) => r,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(1);
        }
    };
    let current = review::verify::Current {
        declared: review::verify::declared_keys(&read.declared_all),
        observed: rows_without_provenance(&read, review::DEFAULT_EXPIRING_WITHIN_DAYS)
            .iter()
            .map(ReviewRow::key)
            .collect(),
    };
    let problems = review::verify::check(&shown, &list, &current);
    if problems.is_empty() {
        super::unless_quiet(format_args!(
            "{shown}: all {} rows are decided by someone other than their granter, and every revoke is carried out",
            list.len()
        ));
        return ExitCode::SUCCESS;
    }
    for p in &problems {
        eprintln!("{p}");
    }
    eprintln!(
        "{shown}: {} {} fall short",
        problems.len(),
        if problems.len() == 1 {
            "check"
        } else {
            "checks"
        }
    );
    ExitCode::from(1)
}
