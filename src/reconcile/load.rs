//! Reading and checking the manifests, for a plan: the desired state, or why there is none.

use std::path::PathBuf;

use jiff::Timestamp;

use crate::domain::DesiredState;
use crate::manifest::{self, Diagnostic};

/// The manifests read and checked: what they declare, and their warnings as located sentences
/// (for the plan outputs).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub desired: DesiredState,
    pub warnings: Vec<String>,
}

/// Why the manifests give nothing to plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Some manifest has an error; the diagnostics say which.
    #[error("the manifests have {errors} {}; nothing was planned", errors_word(*errors))]
    Invalid { errors: usize },
    /// The paths hold no manifest at all.
    #[error("no manifests found in {named}")]
    NoManifests {
        /// The paths given, comma-separated.
        named: String,
    },
}

/// `error` or `errors`.
pub(crate) fn errors_word(n: usize) -> &'static str {
    if n == 1 { "error" } else { "errors" }
}

/// Reads and checks the manifests at `files` as of `now`. The diagnostics (errors and
/// warnings, sorted by place) come back whatever the outcome, for the caller to show.
pub fn load(files: &[PathBuf], now: Timestamp) -> (Result<Loaded, LoadError>, Vec<Diagnostic>) {
    let checked = manifest::load_and_check(files, now);
    let errors = checked.errors().count();
    let result = if errors > 0 {
        Err(LoadError::Invalid { errors })
    } else if checked.documents == 0 {
        let named: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        Err(LoadError::NoManifests {
            named: named.join(", "),
        })
    } else {
        Ok(Loaded {
            warnings: checked.warnings().map(Diagnostic::located).collect(),
            desired: checked.desired,
        })
    };
    (result, checked.diagnostics)
}
