//! The command line as clap reads it: the global flags, the subcommands and their arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::{VERSION, controller, review};

#[derive(Debug, Parser)]
#[command(
    name = "rolecall",
    version = VERSION,
    about = "Customer-portal access as code: plan and apply members, roles, invitations and contacts",
    long_about = None,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print only errors: no plan, summary, warnings or progress (the exit code tells the rest).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail on standard error: -v logs every portal request, -vv traces (RUST_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Args)]
pub struct FileArgs {
    /// Manifest files, directories (recursively, *.yaml / *.yml) or `-` for standard input.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "PATH",
        default_value = "."
    )]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct PortalArgs {
    /// The portal: `https://…` (portal API), `sandbox:FILE` (embedded reference portal).
    #[arg(long, env = "ROLECALL_PORTAL", value_name = "URL")]
    pub portal: Option<String>,
    /// An extra CA certificate (PEM) to trust for the portal's TLS certificate.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Requests per second at most, for portals that document no rate limit (WHMCS).
    #[arg(long, env = "ROLECALL_RATE_LIMIT", value_name = "N", value_parser = parse_rate)]
    pub rate_limit: Option<f64>,
    /// WHMCS: the record of sent invitations. Default `.rolecall/whmcs-invitations.json`
    /// beside the first `-f` path.
    #[arg(long, env = "ROLECALL_WHMCS_STATE", value_name = "FILE")]
    pub whmcs_state: Option<PathBuf>,
    /// The first manifest path, set by the command, for the default WHMCS state file.
    #[arg(skip)]
    pub manifests: Option<PathBuf>,
}

impl PortalArgs {
    /// These arguments, for a command that reads the manifests at `files`.
    pub fn beside(&self, files: &FileArgs) -> PortalArgs {
        PortalArgs {
            manifests: files.files.first().cloned(),
            ..self.clone()
        }
    }

    /// Where the WHMCS invitation record lives: `--whmcs-state`, else
    /// `.rolecall/whmcs-invitations.json` in the directory of the first manifest path.
    pub fn whmcs_state_file(&self) -> PathBuf {
        if let Some(file) = &self.whmcs_state {
            return file.clone();
        }
        let dir = match &self.manifests {
            Some(p) if p.as_os_str() == "-" => PathBuf::from("."),
            Some(p) if p.is_dir() => p.clone(),
            Some(p) => p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), PathBuf::from),
            None => PathBuf::from("."),
        };
        dir.join(crate::reconcile::connect::DEFAULT_WHMCS_STATE)
    }
}

impl PortalArgs {
    /// How the pipeline connects to the portals these arguments name.
    pub fn connect_options(&self) -> crate::reconcile::ConnectOptions {
        crate::reconcile::ConnectOptions {
            ca_file: self.ca_file.clone(),
            rate_limit: self.rate_limit,
            whmcs_state: self.whmcs_state_file(),
        }
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err(format!(
            "{text:?} is not a rate: give requests per second as a positive number, e.g. 5 or 0.5"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Markdown,
}

/// How `validate` reports problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValidateOutput {
    /// `file:line:column: field: sentence` on standard error (source snippets on a terminal).
    Text,
    /// GitHub Actions annotations (`::error file=…,line=…,col=…::…`) on standard output.
    Github,
    /// A JSON list of {file, line, column, field, message, severity} on standard output.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Offline checks of the manifests; exit 0 valid, 1 invalid.
    Validate {
        #[command(flatten)]
        files: FileArgs,
        /// `text` for people, `github` for workflow annotations, `json` for tools.
        #[arg(long, value_enum, default_value = "text")]
        output: ValidateOutput,
    },
    /// Show what apply would change.
    Plan {
        #[command(flatten)]
        files: FileArgs,
        #[command(flatten)]
        portal: PortalArgs,
        /// `text` reads like terraform plan, `markdown` is a pull-request comment, `json` the plan document.
        #[arg(long, value_enum, default_value = "text")]
        output: OutputFormat,
        /// Also write the plan document (JSON) to this file, for `apply PLANFILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 2 when changes are pending, 0 when there are none.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Only these customer numbers.
        #[arg(long = "account", value_name = "NUMBER")]
        accounts: Vec<String>,
        /// Warn about roles whose last day is within this many days (SPEC §3a).
        #[arg(long, value_name = "DAYS", default_value_t = crate::domain::DEFAULT_EXPIRING_WITHIN_DAYS)]
        expiring_within: u32,
    },
    /// Make the portal match the manifests, or apply a saved plan.
    Apply {
        /// A plan saved by `plan --out`; applied exactly, refused if stale. It goes to the portal
        /// of `--portal`, `ROLECALL_PORTAL` or the manifests of `-f`, never to the one it names.
        #[arg(value_name = "PLANFILE")]
        planfile: Option<PathBuf>,
        #[command(flatten)]
        files: FileArgs,
        #[command(flatten)]
        portal: PortalArgs,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// Accounts processed at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Warn about roles whose last day is within this many days (SPEC §3a).
        #[arg(long, value_name = "DAYS", default_value_t = crate::domain::DEFAULT_EXPIRING_WITHIN_DAYS)]
        expiring_within: u32,
    },
    /// Unified YAML diff, observed vs desired, per account.
    Diff {
        #[command(flatten)]
        files: FileArgs,
        #[command(flatten)]
        portal: PortalArgs,
    },
    /// Write the portal's state as manifests.
    Export {
        #[command(flatten)]
        portal: PortalArgs,
        #[arg(long = "account", value_name = "NUMBER")]
        accounts: Vec<String>,
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// The access-review evidence pack: who holds what, findings, who declared it when.
    Review(review::ReviewArgs),
    /// Every account where this e-mail is a member or a contact, and since when.
    Explain {
        /// The e-mail (compared case-insensitively, NFC and IDNA, like everywhere).
        #[arg(value_name = "EMAIL")]
        email: String,
        #[command(flatten)]
        files: FileArgs,
        #[command(flatten)]
        portal: PortalArgs,
    },
    /// Run the Kubernetes controller.
    Controller(controller::ControllerArgs),
    /// The reference portal.
    Portal {
        #[command(subcommand)]
        command: PortalCommand,
    },
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Print the JSON Schema of the manifests (or, with --plan, of the saved plan file).
    Schema {
        /// The schema of the plan document that `plan --out` writes and `apply PLANFILE` reads.
        #[arg(long)]
        plan: bool,
    },
    /// Print a shell completion script: `rolecall completions bash > /etc/bash_completion.d/rolecall`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a directory.
    Man {
        /// Write rolecall.1 and rolecall-SUBCOMMAND.1 pages here instead of printing rolecall.1.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Write a starter Portal and CustomerAccount, with comments, into DIR (never overwriting).
    Init {
        #[arg(value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum PortalCommand {
    /// Serve the reference portal over HTTP.
    Serve {
        #[arg(long, default_value = ".rolecall/sandbox.db")]
        db: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
        /// Requests per second per token before answering 429.
        #[arg(long)]
        rate_limit: Option<u32>,
        /// Share of write requests that fail with 503.
        #[arg(long, default_value_t = 0.0)]
        fault_rate: f64,
        /// Fail after the write committed instead of before.
        #[arg(long)]
        fault_after_commit: bool,
        /// Delay every answer by this many milliseconds.
        #[arg(long, default_value_t = 0)]
        latency: u64,
    },
}
