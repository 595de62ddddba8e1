//! From files to a checked desired state: YAML with positions, the schema of each kind, then
//! the semantic checks (SPEC §2). Every problem is collected, located and sorted; nothing stops
//! at the first one.

pub(crate) mod check;
pub mod diagnostic;
pub mod load;
pub mod schema;
mod simple_yaml;
pub mod snippet;
mod structure;
pub mod yaml;

use std::path::PathBuf;

pub use diagnostic::{Diagnostic, Severity};
pub use load::SourceFile;
pub(crate) use simple_yaml::agrees_with_serde_saphyr;
pub use yaml::quote_short;

use crate::domain::DesiredState;
use crate::model::{AccountMemberSpec, CustomerAccountSpec, NotificationContactSpec, PortalSpec};

/// Namespace of objects read from files that do not name one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A document that passed the structural checks.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: std::sync::Arc<str>,
    /// Where each part was written; read again from the file only when a problem needs it.
    pub positions: yaml::Positions,
    pub name: String,
    pub namespace: String,
    pub body: Body,
    /// False when the schema rejected parts of the document and the rest was salvaged for
    /// the semantic checks; such a document never reaches the desired state.
    pub complete: bool,
    /// For a salvaged CustomerAccount: the original list indices of the members and contacts
    /// that could be read.
    pub kept: Kept,
}

/// Original indices of the list entries a salvaged document kept.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    pub members: Option<Vec<usize>>,
    pub contacts: Option<Vec<usize>>,
}

impl Kept {
    pub fn member(&self, i: usize) -> usize {
        self.members
            .as_ref()
            .and_then(|k| k.get(i).copied())
            .unwrap_or(i)
    }
    pub fn contact(&self, i: usize) -> usize {
        self.contacts
            .as_ref()
            .and_then(|k| k.get(i).copied())
            .unwrap_or(i)
    }
}

#[derive(Debug, Clone)]
pub enum Body {
    Portal(PortalSpec),
    Account(CustomerAccountSpec),
    Member(AccountMemberSpec),
    Contact(NotificationContactSpec),
}

impl Body {
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Portal(_) => "Portal",
            Body::Account(_) => "CustomerAccount",
            Body::Member(_) => "AccountMember",
            Body::Contact(_) => "NotificationContact",
        }
    }
}

/// The outcome of reading and checking manifests.
#[derive(Debug, Default)]
pub struct Checked {
    /// What the valid documents declare; complete only when there are no errors.
    pub desired: DesiredState,
    /// Errors and warnings, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// How many documents were read.
    pub documents: usize,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }
}

/// Reads the `-f` paths and checks everything in them. `now` decides which `until` dates are
/// already past (a warning).
pub fn load_and_check(paths: &[PathBuf], now: jiff::Timestamp) -> Checked {
    let (files, mut read_problems) = load::read_paths_from(paths);
    // Each file's text goes as soon as the file is read: a document with a problem to place
    // reads its file again (see `yaml::LaterFile`), so that a large fleet never holds its
    // text beside its documents and desired state.
    let read = read_files(files);
    let mut checked = check_read(read, now);
    checked.diagnostics.append(&mut read_problems);
    diagnostic::sort(&mut checked.diagnostics);
    checked
}

/// Checks already-read files.
pub fn check_files(files: &[SourceFile], now: jiff::Timestamp) -> Checked {
    let files = files.iter().map(|f| (f.clone(), None)).collect();
    check_read(read_files(files), now)
}

/// The files' documents that passed the structural checks, their problems, and how many
/// documents there were.
struct Read {
    documents: Vec<Document>,
    diagnostics: Vec<Diagnostic>,
    count: usize,
}

/// Reads the files, each with the path it can be read again from (`None`: its text is kept
/// for that).
fn read_files(files: Vec<(SourceFile, Option<PathBuf>)>) -> Read {
    let validators = schema::Validators::new();
    let mut read = Read {
        documents: Vec::new(),
        diagnostics: Vec::new(),
        count: 0,
    };
    // Parsing and the schema are per file and dominate large fleets: spread the files over
    // the cores, then merge in file order so that the outcome is the same as one by one.
    for (n, docs, mut diags) in read_files_parallel(files, &validators) {
        read.count += n;
        read.documents.extend(docs);
        read.diagnostics.append(&mut diags);
    }
    read
}

fn check_read(read: Read, now: jiff::Timestamp) -> Checked {
    let Read {
        documents,
        mut diagnostics,
        count,
    } = read;
    let desired = check::check_documents(documents, now, &mut diagnostics);
    diagnostic::sort(&mut diagnostics);
    Checked {
        desired,
        diagnostics,
        documents: count,
    }
}

/// The fast reader's documents as JSON, or `None` where it declines (and serde-saphyr reads the
/// file). Only for `tests/yaml_suite.rs`, which holds it to the YAML test suite; not an API.
#[doc(hidden)]
pub fn simple_yaml_documents(text: &str) -> Option<Vec<serde_json::Value>> {
    simple_yaml::parse(text).map(|documents| documents.into_iter().map(|(_, _, v)| v).collect())
}

/// What one file holds: its number of documents, those that passed the structural checks,
/// and its problems.
type FileOutcome = (usize, Vec<Document>, Vec<Diagnostic>);

fn read_one_file(
    (file, path): (SourceFile, Option<PathBuf>),
    validators: &schema::Validators,
) -> FileOutcome {
    // Most documents are valid: read them without the positioned tree, which a large fleet
    // cannot afford to keep, and read the file again with positions only for a document with
    // something to report.
    let plain = simple_yaml::parse(&file.text).or_else(|| yaml::parse_plain(&file.text));
    let Some(plain) = plain else {
        return read_one_file_positioned(&file, validators);
    };
    let later = std::sync::Arc::new(match path {
        Some(path) => yaml::LaterFile::on_disk(path, &file.text),
        None => yaml::LaterFile::new(file.text.clone()),
    });
    let mut diagnostics = Vec::new();
    let mut documents = Vec::new();
    let count = plain.len();
    for (index, (root, marks, value)) in plain.into_iter().enumerate() {
        let positions = yaml::Positions::Later {
            file: later.clone(),
            index,
            root,
            marks: Box::new(marks),
        };
        if let Some(doc) = structure::plain_document(&file.name, value, positions, validators) {
            documents.push(doc);
            continue;
        }
        match later.tree(index) {
            Some(node) => {
                if let Some(doc) = structure::check_document(
                    &file.name,
                    node.clone(),
                    validators,
                    &mut diagnostics,
                ) {
                    documents.push(doc);
                }
            }
            // Read once without positions but not with them: not expected; the positioned
            // reading of the whole file says what it finds.
            None => return read_one_file_positioned(&file, validators),
        }
    }
    (count, documents, diagnostics)
}

/// [`read_one_file`] with positions throughout: for a file that is not valid YAML, whose
/// problem must be located.
fn read_one_file_positioned(file: &SourceFile, validators: &schema::Validators) -> FileOutcome {
    let mut diagnostics = Vec::new();
    let mut documents = Vec::new();
    match yaml::parse_documents(&file.text) {
        Ok(nodes) => {
            let count = nodes.len();
            for node in nodes {
                if let Some(doc) =
                    structure::check_document(&file.name, node, validators, &mut diagnostics)
                {
                    documents.push(doc);
                }
            }
            (count, documents, diagnostics)
        }
        Err(e) => {
            diagnostics.push(Diagnostic::error(
                &file.name,
                e.pos,
                &yaml::Path::root(),
                e.message,
            ));
            (0, documents, diagnostics)
        }
    }
}

/// [`read_one_file`] for every file, on the reading pool (one thread per core); results in file
/// order. A single file is read on the calling thread: handing it over gains nothing.
fn read_files_parallel(
    files: Vec<(SourceFile, Option<PathBuf>)>,
    validators: &schema::Validators,
) -> Vec<FileOutcome> {
    use rayon::prelude::*;
    let read = |file| read_one_file(file, validators);
    // The pool is built only when it is used: its stacks are address space, which a process
    // under `ulimit -v` may not have to spare.
    let pool = if files.len() > 1 {
        crate::workers::pool()
    } else {
        None
    };
    match pool {
        Some(pool) => pool.install(|| files.into_par_iter().map(read).collect()),
        None => files.into_iter().map(read).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(cn: u32, member: &str) -> String {
        format!(
            "---\napiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: a{cn}}}\nspec:\n  customerNumber: \"{cn}\"\n  members:\n    - email: {member}\n      roles: [cockpit-access, customer-admin]\n  contacts:\n    - {{email: billing@c{cn}.example, notifications: [invoices]}}\n"
        )
    }

    fn check(text: String) -> (Checked, usize) {
        let now = "2026-11-26T09:00:00Z".parse().unwrap();
        let files = [SourceFile {
            name: "fleet.yaml".into(),
            text: text.into(),
        }];
        let before = yaml::REREADS.with(|n| n.get());
        let checked = check_files(&files, now);
        (checked, yaml::REREADS.with(|n| n.get()) - before)
    }

    /// Valid manifests are read once: their declarations point at the right lines without the
    /// positioned tree.
    #[test]
    fn a_valid_fleet_is_read_once_and_its_sources_are_exact() {
        let text: String = (1..=3)
            .map(|i| account(i, &format!("p@c{i}.example")))
            .collect();
        let (checked, rereads) = check(text);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        assert_eq!(rereads, 0);
        let second = &checked.desired.accounts[1];
        assert_eq!((second.source.line, second.source.column), (13, 1));
        assert_eq!(second.members[0].source.line, 19);
        assert_eq!(second.members[0].roles[1].source.line, 20);
        assert_eq!(second.contacts[0].source.line, 22);
    }

    /// Three accounts; the second one's member has an e-mail that is none (line 19, column 14).
    fn fleet_with_a_bad_email() -> String {
        (1..=3)
            .map(|i| {
                account(
                    i,
                    if i == 2 {
                        "not-an-email"
                    } else {
                        "p@x.example"
                    },
                )
            })
            .collect()
    }

    /// A problem the schema does not see still gets its exact place: the file is read again.
    #[test]
    fn a_semantic_problem_is_located_by_reading_the_file_again() {
        let text = fleet_with_a_bad_email();
        let (checked, rereads) = check(text);
        assert_eq!(rereads, 1);
        let errors: Vec<String> = checked.errors().map(|d| d.to_string()).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("fleet.yaml:19:14: spec.members[0].email:"),
            "{errors:?}"
        );
    }

    /// Read from disk, the text is not kept: the file is read again for the problem's place,
    /// exactly as from text that was kept.
    #[test]
    fn a_file_s_problem_is_located_by_reading_the_file_from_disk_again() {
        let text = fleet_with_a_bad_email();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.yaml");
        std::fs::write(&path, &text).unwrap();
        let before = yaml::REREADS.with(|n| n.get());
        let checked = load_and_check(
            std::slice::from_ref(&path),
            "2026-11-26T09:00:00Z".parse().unwrap(),
        );
        assert_eq!(yaml::REREADS.with(|n| n.get()) - before, 1);
        let errors: Vec<String> = checked.errors().map(|d| d.to_string()).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let place = format!("{}:19:14: spec.members[0].email:", path.display());
        assert!(errors[0].starts_with(&place), "{errors:?}");
    }

    /// A file changed after it was read is not trusted for places: the problem points at its
    /// document's start instead of wherever the new text happens to have something.
    #[test]
    fn a_file_changed_since_it_was_read_gives_no_tree() {
        let text = account(1, "p@x.example");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.yaml");
        std::fs::write(&path, &text).unwrap();
        let later = yaml::LaterFile::on_disk(path.clone(), &text);
        assert!(later.tree(0).is_some(), "the same text parses again");
        let changed = yaml::LaterFile::on_disk(path.clone(), &text);
        std::fs::write(&path, text.replace("p@x", "q@x")).unwrap();
        assert!(changed.tree(0).is_none(), "same length, other text");
        let shorter = yaml::LaterFile::on_disk(path.clone(), &text);
        std::fs::write(&path, &text[..text.len() - 1]).unwrap();
        assert!(shorter.tree(0).is_none(), "other length");
        let gone = yaml::LaterFile::on_disk(path.clone(), &text);
        std::fs::remove_file(&path).unwrap();
        assert!(gone.tree(0).is_none(), "no file");
    }

    /// The readers run on the reading pool's threads once there are several files: nesting far
    /// past the readers' limits is refused there in a sentence, without overflowing a stack
    /// (on rayon's default 2 MiB stacks, a debug build overflows on the deep block mapping).
    #[test]
    fn deeply_nested_files_are_read_on_the_worker_threads() {
        let mut block = String::new();
        for depth in 0..500 {
            block.push_str(&format!("{}k{depth}:\n", "  ".repeat(depth)));
        }
        let mut seq = String::new();
        for depth in 0..500 {
            seq.push_str(&format!("{}-\n", "  ".repeat(depth)));
        }
        let texts = [
            format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
            format!("{}{}\n", "{a: ".repeat(10_000), "}".repeat(10_000)),
            block,
            seq,
            format!(
                "apiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: deep}}\nspec:\n  customerNumber: \"1\"\n  members: {}{}\n",
                "[".repeat(200),
                "]".repeat(200)
            ),
        ];
        let files: Vec<SourceFile> = texts
            .into_iter()
            .enumerate()
            .map(|(i, text)| SourceFile {
                name: format!("deep{i}.yaml"),
                text: text.into(),
            })
            .collect();
        let now = "2026-11-26T09:00:00Z".parse().unwrap();
        let checked = check_files(&files, now);
        for file in &files {
            assert!(
                checked
                    .errors()
                    .any(|d| d.to_string().starts_with(&format!("{}:", file.name))),
                "{}: {:?}",
                file.name,
                checked.diagnostics
            );
        }
        assert!(
            checked
                .errors()
                .any(|d| d.to_string().contains("nested deeper than the 64 levels")),
            "{:?}",
            checked.diagnostics
        );
    }
}
