//! Reading `-f` arguments: files, directories (recursively, `*.yaml` / `*.yml`, sorted, hidden
//! entries skipped) and `-` for standard input.

use std::io::Read;
use std::path::{Path as FsPath, PathBuf};

use super::diagnostic::Diagnostic;
use super::yaml::{MAX_FILE_BYTES, Path, Pos};

/// A manifest file's text and the name diagnostics use for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    /// Shared with the positions of the file's documents, which read it again for a problem's
    /// place: one copy of a large fleet's text, not two.
    pub text: std::sync::Arc<str>,
}

/// Reads every manifest file named by `paths`. Problems (missing files, unreadable or
/// non-UTF-8 content, oversized files) come back as diagnostics; the other files still load.
pub fn read_paths(paths: &[PathBuf]) -> (Vec<SourceFile>, Vec<Diagnostic>) {
    let (files, diags) = read_paths_from(paths);
    (files.into_iter().map(|(file, _)| file).collect(), diags)
}

/// [`read_paths`], each file with the path it was read from (`None` for standard input).
pub(super) fn read_paths_from(
    paths: &[PathBuf],
) -> (Vec<(SourceFile, Option<PathBuf>)>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut diags = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            let limited = std::io::stdin()
                .lock()
                .take(MAX_FILE_BYTES as u64 + 1)
                .read_to_end(&mut bytes);
            match limited {
                Ok(_) => push_file("-".into(), None, bytes, &mut files, &mut diags),
                Err(e) => diags.push(file_error(
                    "-",
                    &format!("standard input cannot be read: {e}"),
                )),
            }
            continue;
        }
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                diags.push(file_error(&path.display().to_string(), &io_sentence(&e)));
                continue;
            }
        };
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found, &mut diags, 0);
            found.sort();
            for f in found {
                read_file(&f, &mut files, &mut diags);
            }
        } else {
            read_file(path, &mut files, &mut diags);
        }
    }
    (files, diags)
}

fn walk(dir: &FsPath, out: &mut Vec<PathBuf>, diags: &mut Vec<Diagnostic>, depth: usize) {
    if depth > 32 {
        diags.push(file_error(
            &dir.display().to_string(),
            "directories are nested more than 32 deep; rolecall stops here",
        ));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(file_error(&dir.display().to_string(), &io_sentence(&e)));
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Hidden entries (.git, .github, .rolecall) are never manifests.
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let is_dir = if kind.is_symlink() {
            std::fs::metadata(&path)
                .map(|m| m.is_dir())
                .unwrap_or(false)
        } else {
            kind.is_dir()
        };
        if is_dir {
            if !kind.is_symlink() {
                walk(&path, out, diags, depth + 1);
            }
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(path);
        }
    }
}

fn read_file(
    path: &FsPath,
    files: &mut Vec<(SourceFile, Option<PathBuf>)>,
    diags: &mut Vec<Diagnostic>,
) {
    let name = path.display().to_string();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            diags.push(file_error(&name, &io_sentence(&e)));
            return;
        }
    };
    // Sized from the file's length: grown while reading, the text held half as much again.
    let size = file
        .metadata()
        .map_or(0, |m| m.len().min(MAX_FILE_BYTES as u64 + 1));
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    if let Err(e) = file.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes) {
        diags.push(file_error(&name, &io_sentence(&e)));
        return;
    }
    push_file(name, Some(path.to_path_buf()), bytes, files, diags);
}

fn push_file(
    name: String,
    path: Option<PathBuf>,
    bytes: Vec<u8>,
    files: &mut Vec<(SourceFile, Option<PathBuf>)>,
    diags: &mut Vec<Diagnostic>,
) {
    if bytes.len() > MAX_FILE_BYTES {
        diags.push(file_error(
            &name,
            &format!(
                "the file is larger than {} MiB; manifests are split into smaller files",
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        ));
        return;
    }
    match String::from_utf8(bytes) {
        Ok(text) => files.push((
            SourceFile {
                name,
                text: text.into(),
            },
            path,
        )),
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let pos = position_after(valid);
            diags.push(Diagnostic::error(
                &name,
                pos,
                &Path::root(),
                "the file is not UTF-8 text: the byte here is not valid UTF-8",
            ));
        }
    }
}

/// Line and column just after `bytes` (which are valid UTF-8).
fn position_after(bytes: &[u8]) -> Pos {
    let text = String::from_utf8_lossy(bytes);
    let line = text.matches('\n').count() as u32 + 1;
    let column = text
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0) as u32
        + 1;
    Pos { line, column }
}

fn file_error(name: &str, sentence: &str) -> Diagnostic {
    Diagnostic::error(name, Pos { line: 1, column: 1 }, &Path::root(), sentence)
}

fn io_sentence(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => {
            "permission denied: the file cannot be read".to_string()
        }
        _ => format!("the file cannot be read: {e}"),
    }
}
