//! Who declared a grant, and when: `git blame --porcelain` of the manifest lines, one blame per
//! file. Outside a repository, with git missing, for an untracked file or an uncommitted line,
//! the columns stay empty — nothing is guessed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};

use super::ReviewRow;

/// The commit that last changed a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blame {
    /// `Name <email>`, as git records the author.
    pub author: String,
    pub commit: String,
    /// The author date, RFC 3339 in UTC.
    pub date: String,
}

/// The commit git shows for lines not committed yet.
const NOT_COMMITTED: &str = "0000000000000000000000000000000000000000";

/// A `git` command that reads no system-wide configuration and no standard input.
fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// The directory a manifest path lives in (`.` for a bare file name).
fn dir_of(file: &Path) -> &Path {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Parses `git blame --porcelain` output: final line number → blame. Lines of commits that
/// are not committed yet are left out.
pub fn parse_porcelain(text: &str) -> BTreeMap<u32, Blame> {
    #[derive(Default, Clone)]
    struct Info {
        name: String,
        mail: String,
        time: Option<i64>,
        tz: String,
    }
    let mut commits: HashMap<String, Info> = HashMap::new();
    let mut out = BTreeMap::new();
    let mut current: Option<(String, u32)> = None;
    for line in text.lines() {
        if line.starts_with('\t') {
            // The line's content ends the entry of one line.
            if let Some((sha, n)) = current.take()
                && sha != NOT_COMMITTED
                && let Some(info) = commits.get(&sha)
                && let Some(date) = info.time.and_then(|t| format_date(t, &info.tz))
            {
                let author = if info.mail.is_empty() {
                    info.name.clone()
                } else {
                    format!("{} {}", info.name, info.mail)
                };
                out.insert(
                    n,
                    Blame {
                        author,
                        commit: sha,
                        date,
                    },
                );
            }
            continue;
        }
        let mut words = line.split(' ');
        let first = words.next().unwrap_or_default();
        if first.len() == 40 && first.bytes().all(|b| b.is_ascii_hexdigit()) {
            let final_line = words.nth(1).and_then(|n| n.parse::<u32>().ok());
            if let Some(n) = final_line {
                commits.entry(first.to_string()).or_default();
                current = Some((first.to_string(), n));
            }
            continue;
        }
        let Some((sha, _)) = &current else { continue };
        let Some(info) = commits.get_mut(sha) else {
            continue;
        };
        let rest = line.split_once(' ').map(|(_, r)| r).unwrap_or_default();
        match first {
            "author" => info.name = rest.to_string(),
            "author-mail" => info.mail = rest.to_string(),
            "author-time" => info.time = rest.parse().ok(),
            "author-tz" => info.tz = rest.to_string(),
            _ => {}
        }
    }
    out
}

fn format_date(seconds: i64, _tz: &str) -> Option<String> {
    jiff::Timestamp::from_second(seconds)
        .ok()
        .map(super::rfc3339)
}

/// Blames one file: `None` outside a repository, when git is missing or fails.
pub fn blame_file(file: &Path) -> Option<BTreeMap<u32, Blame>> {
    let name = file.file_name()?;
    let output = git(dir_of(file))
        .args(["blame", "--porcelain", "--"])
        .arg(name)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(parse_porcelain(&String::from_utf8_lossy(&output.stdout)))
}

/// Fills the provenance columns of every row whose declaring line git can blame: one blame per
/// manifest file.
pub fn fill(rows: &mut [ReviewRow]) {
    let files: BTreeSet<std::sync::Arc<str>> = rows
        .iter()
        .filter_map(|r| r.source.as_ref())
        .map(|s| s.file.clone())
        .filter(|f| &**f != "-")
        .collect();
    let blames: HashMap<std::sync::Arc<str>, BTreeMap<u32, Blame>> = files
        .into_iter()
        .filter_map(|f| blame_file(Path::new(&*f)).map(|b| (f, b)))
        .collect();
    for row in rows {
        let Some(source) = &row.source else { continue };
        if let Some(b) = blames.get(&source.file).and_then(|m| m.get(&source.line)) {
            row.granted_by = Some(b.author.clone());
            row.granted_commit = Some(b.commit.clone());
            row.granted_at = Some(b.date.clone());
        }
    }
}

/// The commit the manifests at `path` are at (`HEAD` of their repository), if any.
pub fn manifests_commit(path: &Path) -> Option<String> {
    let dir = if path.is_dir() { path } else { dir_of(path) };
    let output = git(dir)
        .args(["rev-parse", "--verify", "--quiet", "HEAD"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && text.len() == 40).then_some(text)
}

/// The e-mail of a `Name <email>` identity, if it has one.
pub fn identity_email(identity: &str) -> Option<&str> {
    let start = identity.rfind('<')?;
    let end = identity[start..].find('>')? + start;
    Some(identity[start + 1..end].trim())
}

/// The name of a `Name <email>` identity (the whole text when it has no e-mail).
pub fn identity_name(identity: &str) -> &str {
    match identity.rfind('<') {
        Some(i) => identity[..i].trim(),
        None => identity.trim(),
    }
}

/// Whether `reviewer` is the person `granted_by` names: the same e-mail (case-insensitively,
/// NFC/IDNA, as everywhere in rolecall), or — when either side has no e-mail — the same name.
pub fn same_person(reviewer: &str, granted_by: &str) -> bool {
    let reviewer_mail =
        identity_email(reviewer).or_else(|| reviewer.contains('@').then_some(reviewer.trim()));
    let granted_mail = identity_email(granted_by);
    if let (Some(a), Some(b)) = (reviewer_mail, granted_mail)
        && crate::domain::same_email(a, b)
    {
        return true;
    }
    let a = identity_name(reviewer);
    let b = identity_name(granted_by);
    !a.is_empty() && !a.contains('@') && a.to_lowercase() == b.to_lowercase()
}
