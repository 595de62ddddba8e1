//! `rolecall controller`: argument parsing for the Kubernetes controller (the work is in
//! `crate::controller`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Args)]
pub struct ControllerArgs {
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = "ROLECALL_NAMESPACE", value_name = "NS")]
    namespace: Option<String>,
    /// Reconcile only the CustomerAccounts whose labels match (e.g. `shard=a`), so that several
    /// deployments can split a large fleet.
    #[arg(long, env = "ROLECALL_SELECTOR", value_name = "LABELS")]
    selector: Option<String>,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    metrics_addr: SocketAddr,
    /// Reconcile every account at least this often, to catch changes made on the portal.
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    resync: Duration,
    /// The leader-election Lease.
    #[arg(long, default_value = "rolecall-controller", value_name = "NAME")]
    lease_name: String,
    /// The Lease's namespace (default: `POD_NAMESPACE`, else `default`).
    #[arg(long, env = "POD_NAMESPACE", value_name = "NS")]
    lease_namespace: Option<String>,
    /// How long a leader that stops renewing keeps the Lease.
    #[arg(long, default_value = "15s", value_parser = parse_duration, value_name = "DURATION")]
    lease_duration: Duration,
    /// This process's name in the Lease and in events (default: `POD_NAME`, else the host name,
    /// with a random suffix).
    #[arg(long, value_name = "NAME")]
    identity: Option<String>,
    /// Accounts reconciled at once.
    #[arg(long, default_value_t = 16, value_name = "N")]
    concurrency: u16,
    /// An extra CA certificate (PEM) to trust for portals' TLS certificates.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

/// `30s`, `10m`, `1h`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30s, 10m or 1h"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?} is not a duration such as 30s, 10m or 1h")),
    };
    if secs == 0 {
        return Err("the duration must be more than zero".into());
    }
    Ok(Duration::from_secs(secs))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

fn identity(given: Option<String>) -> String {
    if let Some(id) = given.filter(|s| !s.trim().is_empty()) {
        return id;
    }
    let base = std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "rolecall".into());
    let nanos = jiff::Timestamp::now().as_nanosecond();
    format!(
        "{base}-{:x}",
        (nanos as u64) ^ u64::from(std::process::id())
    )
}

pub fn run(args: ControllerArgs) -> ExitCode {
    init_logging(args.log_format);
    let config = crate::controller::Config {
        namespace: args.namespace,
        selector: args.selector,
        metrics_addr: args.metrics_addr,
        resync: args.resync,
        lease_name: args.lease_name,
        lease_namespace: args
            .lease_namespace
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into()),
        lease_duration: args.lease_duration,
        identity: identity(args.identity),
        concurrency: args.concurrency.max(1),
        ca_file: args.ca_file,
    };
    super::block_on(async move {
        match crate::controller::run(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "the controller stopped");
                eprintln!("rolecall controller: {e}");
                ExitCode::from(1)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl_flags() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
