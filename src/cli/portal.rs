//! `rolecall portal serve`: the reference portal over HTTP.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::portal::PrincipalKind;
use crate::reference::server::{self, App, Config};
use crate::reference::store::{Store, random_hex};

/// Opens the store, binds the address, prints where it listens (the first line of standard
/// output, which tests read) and serves until SIGTERM or ctrl-c.
pub fn serve(db: &Path, listen: &str, config: Config) -> ExitCode {
    if !(0.0..=1.0).contains(&config.fault_rate) {
        eprintln!(
            "rolecall portal serve: --fault-rate {} is not a share between 0 and 1",
            config.fault_rate
        );
        return ExitCode::from(2);
    }
    // The clock starts at ROLECALL_NOW only when it is set; otherwise the store decides
    // (a clock set earlier through /sandbox/clock, or the real time).
    let start = match std::env::var("ROLECALL_NOW") {
        Ok(text) if !text.trim().is_empty() => match super::clock_now() {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("rolecall portal serve: {e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let mut store = match Store::open(db, start) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rolecall portal serve: {}", super::chain(&e));
            return ExitCode::from(1);
        }
    };
    let (token, generated) = match std::env::var("ROLECALL_SANDBOX_TOKEN") {
        Ok(t) if !t.trim().is_empty() => (t.trim().to_string(), false),
        _ => (format!("rc_{}", random_hex(32)), true),
    };
    if let Err(e) = store.add_token(&token, PrincipalKind::Operator, None) {
        eprintln!("rolecall portal serve: cannot store the operator token: {e}");
        return ExitCode::from(1);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rolecall portal serve: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("rolecall portal serve: cannot listen on {listen}: {e}");
                return ExitCode::from(1);
            }
        };
        let address = match listener.local_addr() {
            Ok(a) => a.to_string(),
            Err(_) => listen.to_string(),
        };
        let app = match App::new(store, config) {
            Ok(app) => app,
            Err(e) => {
                eprintln!("rolecall portal serve: cannot start the store's thread: {e}");
                return ExitCode::from(1);
            }
        };
        {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let _ = writeln!(out, "rolecall portal listening on http://{address}");
            if generated {
                // Shown once; only its hash is stored.
                let _ = writeln!(out, "operator token: {token}");
            }
            let _ = out.flush();
        }
        match server::serve(listener, app).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rolecall portal serve: {e}");
                ExitCode::from(1)
            }
        }
    })
}
