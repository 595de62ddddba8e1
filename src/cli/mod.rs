//! The command line (SPEC §3): argument parsing and dispatch to one module per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod apply;
mod diff;
mod export;
mod plan;
mod portal;
mod reconcile;
mod validate;

#[derive(Debug, Parser)]
#[command(
    name = "rolecall",
    version,
    about = "Customer-portal access as code: plan and apply members, roles, invitations and contacts",
    long_about = None,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
        dir.join(crate::portal::connect::DEFAULT_WHMCS_STATE)
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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Offline checks of the manifests; exit 0 valid, 1 invalid.
    Validate {
        #[command(flatten)]
        files: FileArgs,
    },
    /// Show what apply would change.
    Plan {
        #[command(flatten)]
        files: FileArgs,
        #[command(flatten)]
        portal: PortalArgs,
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
    },
    /// Make the portal match the manifests, or apply a saved plan.
    Apply {
        /// A plan saved by `plan --out`; applied exactly, refused if stale.
        #[arg(value_name = "PLANFILE", conflicts_with = "files")]
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
    /// Run the Kubernetes controller.
    Controller {
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long)]
        selector: Option<String>,
        #[arg(long, default_value = "0.0.0.0:8080")]
        metrics_addr: String,
    },
    /// The reference portal.
    Portal {
        #[command(subcommand)]
        command: PortalCommand,
    },
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Print the JSON Schema of the manifests.
    Schema,
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

/// Parses the arguments, runs the subcommand and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Validate { files } => validate::run(&files),
        Command::Crds => {
            print!("{}", crate::model::crd::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Schema => {
            let schema = crate::manifest::schema::document_schema();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Portal {
            command:
                PortalCommand::Serve {
                    db,
                    listen,
                    rate_limit,
                    fault_rate,
                    fault_after_commit,
                    latency,
                },
        } => portal::serve(
            &db,
            &listen,
            crate::portal::server::Config {
                rate_limit,
                fault_rate,
                fault_after_commit,
                latency_ms: latency,
            },
        ),
        Command::Plan {
            files,
            portal,
            output,
            out,
            detailed_exitcode,
            accounts,
        } => block_on(plan::run(plan::PlanArgs {
            files: &files,
            portal: &portal.beside(&files),
            output,
            out: out.as_deref(),
            detailed_exitcode,
            accounts: &accounts,
        })),
        Command::Apply {
            planfile: Some(planfile),
            portal,
            concurrency,
            ..
        } => block_on(apply::run_saved(&planfile, &portal, concurrency)),
        Command::Apply {
            planfile: None,
            files,
            portal,
            auto_approve,
            concurrency,
        } => block_on(apply::run(apply::ApplyArgs {
            files: &files,
            portal: &portal.beside(&files),
            auto_approve,
            concurrency,
        })),
        Command::Diff { files, portal } => block_on(diff::run(&files, &portal.beside(&files))),
        Command::Export {
            portal,
            accounts,
            out_dir,
        } => block_on(export::run(&portal, &accounts, out_dir.as_deref())),
        other => not_built(&other),
    }
}

/// Diagnostic logs on standard error, only when `RUST_LOG` asks for them (e.g.
/// `RUST_LOG=rolecall=debug`); they never carry a token.
fn init_logging() {
    if std::env::var_os("RUST_LOG").is_none_or(|v| v.is_empty()) {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs an async command on a multi-threaded runtime.
fn block_on(f: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("rolecall cannot start its runtime: {e}");
            ExitCode::from(1)
        }
    }
}

/// The current instant: `ROLECALL_NOW` (RFC 3339) when set, so expiry is testable, else the clock.
pub fn clock_now() -> Result<jiff::Timestamp, String> {
    match std::env::var("ROLECALL_NOW") {
        Ok(text) if !text.trim().is_empty() => text.trim().parse().map_err(|_| {
            format!(
                "ROLECALL_NOW: {} is not an RFC 3339 instant (for example 2026-11-26T09:00:00Z)",
                crate::manifest::quote_short(&text)
            )
        }),
        _ => Ok(jiff::Timestamp::now()),
    }
}

/// Writes diagnostics to standard error: one located sentence each, and on a terminal the
/// source line under it.
pub fn print_diagnostics(diags: &[crate::manifest::Diagnostic]) {
    use std::collections::HashMap;
    use std::io::{IsTerminal, Write};
    let stderr = std::io::stderr();
    let terminal = stderr.is_terminal();
    let colour = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut sources: HashMap<&str, Option<String>> = HashMap::new();
    let mut out = stderr.lock();
    for d in diags {
        let snippet = if terminal && d.file != "-" {
            sources
                .entry(d.file.as_str())
                .or_insert_with(|| std::fs::read_to_string(&d.file).ok())
                .as_deref()
                .and_then(|text| crate::manifest::snippet::render(d, text, colour))
        } else {
            None
        };
        let _ = match snippet {
            Some(s) => writeln!(out, "{s}\n"),
            None => writeln!(out, "{d}"),
        };
    }
}

fn not_built(command: &Command) -> ExitCode {
    let name = format!("{command:?}");
    let name = name
        .split([' ', '{'])
        .next()
        .unwrap_or("this command")
        .to_lowercase();
    eprintln!("rolecall {name}: not built yet in this version");
    ExitCode::from(1)
}
