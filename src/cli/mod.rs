//! The command line (SPEC §3): argument parsing and dispatch to one module per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod portal;
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
        other => not_built(&other),
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

/// Writes diagnostics to standard error, one located sentence each.
pub fn print_diagnostics(diags: &[crate::manifest::Diagnostic]) {
    use std::io::Write;
    let stderr = std::io::stderr();
    let mut out = stderr.lock();
    for d in diags {
        let _ = writeln!(out, "{d}");
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
