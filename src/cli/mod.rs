//! The command line (SPEC §3): argument parsing and dispatch to one module per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod apply;
mod controller;
mod diff;
mod explain;
mod export;
mod init;
mod plan;
mod portal;
pub mod review;
mod tally;
mod validate;

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

/// The version `--version` prints: the crate version and, when built from a git checkout, the
/// commit (set by `build.rs`), so a bug report names the exact build.
pub const VERSION: &str = env!("ROLECALL_VERSION");

/// How much the user asked to see, set once from `-q`/`-v` before any subcommand runs.
static VERBOSITY: std::sync::OnceLock<i8> = std::sync::OnceLock::new();

/// Whether `-q` was given: print errors only.
pub fn quiet() -> bool {
    VERBOSITY.get().is_some_and(|v| *v < 0)
}

/// Prints a line of standard output unless `-q` was given.
pub fn unless_quiet(line: std::fmt::Arguments<'_>) {
    if !quiet() {
        println!("{line}");
    }
}

/// Whether colour is allowed at all: `NO_COLOR` (<https://no-color.org>) set to anything
/// non-empty turns it off everywhere; callers still check for a terminal.
pub fn colour_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
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

/// Parses the arguments, runs the subcommand and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbosity = if cli.quiet {
        -1
    } else {
        i8::try_from(cli.verbose).unwrap_or(i8::MAX)
    };
    let _ = VERBOSITY.set(verbosity);
    // The controller sets up its own (JSON) logging.
    if !matches!(cli.command, Command::Controller(_)) {
        init_logging(verbosity);
    }
    run(cli.command)
}

/// Runs one subcommand.
fn run(command: Command) -> ExitCode {
    match command {
        Command::Validate { files, output } => validate::run(&files, output),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "rolecall",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Man { out_dir } => man(out_dir.as_deref()),
        Command::Init { dir } => init::run(&dir),
        Command::Crds => {
            print!("{}", crate::model::crd::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Schema { plan } => schema(plan),
        Command::Portal { command } => portal_command(command),
        Command::Plan {
            files,
            portal,
            output,
            out,
            detailed_exitcode,
            accounts,
            expiring_within,
        } => block_on(plan::run(plan::PlanArgs {
            files: &files,
            portal: &portal.beside(&files),
            output,
            out: out.as_deref(),
            detailed_exitcode,
            accounts: &accounts,
            expiring_within,
        })),
        Command::Apply {
            planfile: Some(planfile),
            files,
            portal,
            concurrency,
            ..
        } => block_on(apply::run_saved(
            &planfile,
            &files,
            &portal.beside(&files),
            concurrency,
        )),
        Command::Apply {
            planfile: None,
            files,
            portal,
            auto_approve,
            concurrency,
            expiring_within,
        } => block_on(apply::run(apply::ApplyArgs {
            files: &files,
            portal: &portal.beside(&files),
            auto_approve,
            concurrency,
            expiring_within,
        })),
        Command::Diff { files, portal } => block_on(diff::run(&files, &portal.beside(&files))),
        Command::Export {
            portal,
            accounts,
            out_dir,
        } => block_on(export::run(&portal, &accounts, out_dir.as_deref())),
        Command::Review(args) => block_on(review::run(args)),
        Command::Explain {
            email,
            files,
            portal,
        } => block_on(explain::run(&email, &files, &portal.beside(&files))),
        Command::Controller(args) => controller::run(args),
    }
}

/// `rolecall schema [--plan]`: the JSON Schema of the manifests or of the saved plan.
fn schema(plan: bool) -> ExitCode {
    let schema = if plan {
        crate::plan::plan_schema()
    } else {
        crate::manifest::schema::document_schema()
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&schema).unwrap_or_default()
    );
    ExitCode::SUCCESS
}

/// `rolecall portal …`: the reference portal.
fn portal_command(command: PortalCommand) -> ExitCode {
    match command {
        PortalCommand::Serve {
            db,
            listen,
            rate_limit,
            fault_rate,
            fault_after_commit,
            latency,
        } => portal::serve(
            &db,
            &listen,
            crate::reference::server::Config {
                rate_limit,
                fault_rate,
                fault_after_commit,
                latency_ms: latency,
            },
        ),
    }
}

/// Diagnostic logs on standard error, only when `RUST_LOG` (e.g. `RUST_LOG=rolecall=debug`)
/// or `-v` asks for them; they never carry a token. `RUST_LOG` wins, so one variable can tune
/// a CI job whatever flags its script passes.
fn init_logging(verbosity: i8) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => tracing_subscriber::EnvFilter::new(v),
        _ => match verbosity {
            ..=0 => return,
            1 => tracing_subscriber::EnvFilter::new("rolecall=debug"),
            _ => tracing_subscriber::EnvFilter::new("rolecall=trace"),
        },
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && colour_allowed())
        .try_init();
}

/// The CLI definition as man pages see it: the plain crate version, so the checked-in pages in
/// `docs/man/` do not change with every commit.
pub fn man_command() -> clap::Command {
    <Cli as clap::CommandFactory>::command().version(env!("CARGO_PKG_VERSION"))
}

/// Every man page: `rolecall.1`, then `rolecall-SUBCOMMAND.1` for each command (and
/// `rolecall-portal-serve.1` for nested ones), as (file name, roff).
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>, std::io::Error> {
    // After `build`, clap names subcommands for man pages itself: display name
    // `rolecall-plan`, bin name `rolecall plan`.
    fn add(cmd: &clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), std::io::Error> {
        let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
        let mut roff = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut roff)?;
        out.push((format!("{name}.1"), roff));
        for sub in cmd.get_subcommands() {
            if sub.get_name() != "help" {
                add(sub, out)?;
            }
        }
        Ok(())
    }
    let mut cmd = man_command();
    cmd.build();
    let mut out = Vec::new();
    add(&cmd, &mut out)?;
    Ok(out)
}

fn man(out_dir: Option<&std::path::Path>) -> ExitCode {
    let pages = match man_pages() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rolecall man: the man page cannot be rendered: {e}");
            return ExitCode::from(1);
        }
    };
    let Some(dir) = out_dir else {
        use std::io::Write;
        let main = pages
            .first()
            .map(|(_, roff)| roff.as_slice())
            .unwrap_or(&[]);
        return match std::io::stdout().write_all(main) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        };
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("{}: the directory cannot be created: {e}", dir.display());
        return ExitCode::from(1);
    }
    for (name, roff) in &pages {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, roff) {
            eprintln!("{}: the man page cannot be written: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    if !quiet() {
        eprintln!("{} man pages written to {}", pages.len(), dir.display());
    }
    ExitCode::SUCCESS
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

/// The current instant: `ROLECALL_NOW` (RFC 3339) when set, so expiry is testable, else the
/// clock, as one sentence for the verbs that print it themselves.
pub(crate) fn clock_now() -> Result<jiff::Timestamp, String> {
    crate::reconcile::now().map_err(|e| e.to_string())
}

/// The one place an error of a command becomes output and an exit code (SPEC §3: errors go to
/// stderr, exit 1): the sentence, then each of its causes after a colon, on one line.
pub fn fail(error: &dyn std::error::Error) -> ExitCode {
    eprintln!("{}", chain(error));
    ExitCode::from(1)
}

/// An error and its causes as one line: `sentence: cause: cause of the cause`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        line.push_str(": ");
        line.push_str(&e.to_string());
        cause = e.source();
    }
    line
}

/// Writes diagnostics to standard error: one located sentence each, and on a terminal the
/// source line under it.
pub fn print_diagnostics(diags: &[crate::manifest::Diagnostic]) {
    use std::collections::HashMap;
    use std::io::{IsTerminal, Write};
    let stderr = std::io::stderr();
    let terminal = stderr.is_terminal();
    let colour = terminal && colour_allowed();
    let mut sources: HashMap<&str, Option<String>> = HashMap::new();
    let mut out = stderr.lock();
    for d in diags {
        if quiet() && !d.is_error() {
            continue;
        }
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

#[cfg(test)]
mod tests {
    use crate::portal::PortalError;
    use crate::reconcile::Error;

    #[test]
    fn an_error_prints_as_its_sentence_then_its_causes() {
        let source = PortalError::Unreachable("connection refused".into());
        let old = format!("https://portal.example: cannot read the accounts: {source}");
        let e = Error::Observe {
            url: "https://portal.example".into(),
            source,
        };
        assert_eq!(
            e.to_string(),
            "https://portal.example: cannot read the accounts"
        );
        assert_eq!(super::chain(&e), old);
        let clock = Error::from(crate::reconcile::LoadError::Invalid { errors: 1 });
        assert_eq!(
            super::chain(&clock),
            "the manifests have 1 error; nothing was planned"
        );
    }
}
