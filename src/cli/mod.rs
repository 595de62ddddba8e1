//! The command line (SPEC §3): argument parsing and dispatch to one module per subcommand.

use std::process::ExitCode;

use clap::Parser;

mod apply;
mod args;
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

pub use args::{Cli, Command, FileArgs, OutputFormat, PortalArgs, PortalCommand, ValidateOutput};

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
