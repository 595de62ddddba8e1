//! Shared by the end-to-end tests: a real reference portal (`rolecall portal serve`) on an
//! ephemeral loopback port with a temporary database, and the built binary to drive it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

pub const OPERATOR_TOKEN: &str = "op-secret-token-for-tests-7f3a9c";
pub const NOW: &str = "2026-11-26T09:00:00Z";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rolecall")
}

/// A running reference portal; killed on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
    /// Every line the server wrote to stderr (its request log).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        Server::start_in(dir, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Server {
        Server::start_in_with_env(dir, extra, &[])
    }

    /// Starts the portal with extra environment variables (`RUST_LOG=trace`, say).
    pub fn start_in_with_env(
        dir: tempfile::TempDir,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let db = dir.path().join("portal.db");
        let mut child = Command::new(bin())
            .args([
                "portal",
                "serve",
                "--db",
                db.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("ROLECALL_SANDBOX_TOKEN", OPERATOR_TOKEN)
            .env("ROLECALL_NOW", NOW)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .trim_end_matches('/')
            .to_string();
        std::thread::spawn(move || for _ in reader.lines() {});
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Server {
            child,
            url,
            dir,
            log,
        }
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the request log holds the line of every request answered so far. The
    /// portal writes a request's line before it sends the answer, and in order; so once the
    /// line of a request of our own is in, the lines of all answered before it are too.
    pub fn sync_log(&self) {
        static MARKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MARKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mark = format!("/log-sync-mark/{n}");
        // Whatever the answer (404, or 429 under a rate limit), the portal logs it.
        let _ = self.client().call("GET", &mark, None);
        let needle = format!("GET {mark} ");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !self
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with(&needle))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the portal's log has no line for GET {mark} after 60 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Runs `rolecall` against this portal with the operator token.
    pub fn rolecall(&self, args: &[&str]) -> Output {
        self.rolecall_in(&std::env::current_dir().unwrap(), args)
    }

    pub fn rolecall_in(&self, cwd: &Path, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .current_dir(cwd)
            .env("ROLECALL_PORTAL", &self.url)
            .env("ROLECALL_TOKEN", OPERATOR_TOKEN)
            .env("ROLECALL_NOW", NOW)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn client(&self) -> Api {
        Api {
            base: self.url.clone(),
            token: OPERATOR_TOKEN.to_string(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny blocking HTTP client for the tests, over `reqwest` on a private runtime.
pub struct Api {
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        rt.block_on(async {
            let client = reqwest::Client::new();
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut req = client
                .request(method, format!("{}{path}", self.base))
                .bearer_auth(&self.token);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.unwrap();
            let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            (status, value)
        })
    }

    pub fn get(&self, path: &str) -> serde_json::Value {
        let (status, v) = self.call("GET", path, None);
        assert!(status < 300, "GET {path}: {status} {v}");
        v
    }

    pub fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call("POST", path, Some(body))
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A copy of `examples/` in a temporary directory, for tests that edit manifests.
pub fn examples_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("examples");
    copy_dir(Path::new("examples"), &target);
    (dir, target)
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}
