//! Sets `ROLECALL_VERSION` for `--version`: the crate version and, when built from a git
//! checkout, the short commit. Without git or a `.git` (a `cargo package` tarball, a vendored
//! copy) it is the crate version alone; the build never fails for want of git.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    println!("cargo:rerun-if-changed=build.rs");
    // Only ask git when this crate is itself the top of a checkout: a crate unpacked inside
    // someone else's repository must not report that repository's commit.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let top = git(&["-C", &manifest_dir, "rev-parse", "--show-toplevel"]);
    let own_checkout = top.as_deref().is_some_and(|t| {
        std::fs::canonicalize(t).ok() == std::fs::canonicalize(&manifest_dir).ok()
    });
    let commit = if own_checkout {
        git(&["-C", &manifest_dir, "rev-parse", "--short=10", "HEAD"])
    } else {
        None
    };
    match commit {
        Some(commit) => {
            println!("cargo:rustc-env=ROLECALL_VERSION={version} ({commit})");
            // Rebuild when HEAD moves: HEAD itself (branch switches) and the branch it names,
            // loose or packed. Only files that exist are named: cargo treats a missing one as
            // changed on every build, which rebuilt the whole crate for each cargo command.
            let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
            if let Some(branch) = git(&["-C", &manifest_dir, "symbolic-ref", "-q", "HEAD"]) {
                watched.push(branch);
            }
            for path in watched {
                if let Some(p) = git(&["-C", &manifest_dir, "rev-parse", "--git-path", &path]) {
                    let p = abs(&manifest_dir, &p);
                    if std::path::Path::new(&p).exists() {
                        println!("cargo:rerun-if-changed={p}");
                    }
                }
            }
        }
        None => println!("cargo:rustc-env=ROLECALL_VERSION={version}"),
    }
}

/// `git rev-parse --git-path` answers relative to the directory it ran in.
fn abs(dir: &str, path: &str) -> String {
    let p = std::path::Path::new(path);
    if p.is_absolute() {
        path.to_string()
    } else {
        std::path::Path::new(dir).join(p).display().to_string()
    }
}
