//! From files to a checked desired state: YAML with positions, the schema of each kind, then
//! the semantic checks (SPEC §2). Every problem is collected, located and sorted; nothing stops
//! at the first one.

mod check;
pub mod diagnostic;
pub mod load;
pub mod schema;
pub mod snippet;
mod structure;
pub mod yaml;

use std::path::PathBuf;

pub use diagnostic::{Diagnostic, Severity};
pub use load::SourceFile;
pub use yaml::quote_short;

use crate::domain::DesiredState;
use crate::model::{AccountMemberSpec, CustomerAccountSpec, NotificationContactSpec, PortalSpec};
use yaml::Node;

/// Namespace of objects read from files that do not name one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A document that passed the structural checks.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: String,
    pub root: Node,
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
    let (files, mut read_problems) = load::read_paths(paths);
    let mut checked = check_files(&files, now);
    checked.diagnostics.append(&mut read_problems);
    diagnostic::sort(&mut checked.diagnostics);
    checked
}

/// Checks already-read files.
pub fn check_files(files: &[SourceFile], now: jiff::Timestamp) -> Checked {
    let validators = schema::Validators::new();
    let mut diagnostics = Vec::new();
    let mut documents = Vec::new();
    let mut count = 0;
    for file in files {
        match yaml::parse_documents(&file.text) {
            Ok(nodes) => {
                count += nodes.len();
                for node in nodes {
                    if let Some(doc) =
                        structure::check_document(&file.name, node, &validators, &mut diagnostics)
                    {
                        documents.push(doc);
                    }
                }
            }
            Err(e) => diagnostics.push(Diagnostic::error(
                &file.name,
                e.pos,
                &yaml::Path::root(),
                e.message,
            )),
        }
    }
    let desired = check::check_documents(&documents, now, &mut diagnostics);
    diagnostic::sort(&mut diagnostics);
    Checked {
        desired,
        diagnostics,
        documents: count,
    }
}
