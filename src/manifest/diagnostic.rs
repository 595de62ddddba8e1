//! Problems found in manifests: each names its file, line, column and field, in one sentence.

use std::fmt;

use super::yaml::{Path, Pos};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file as the user named it (`-` for standard input).
    pub file: String,
    pub pos: Pos,
    /// The field path (`spec.members[1].email`), or `(document)`.
    pub path: String,
    pub message: String,
}

impl Diagnostic {
    pub fn error(file: &str, pos: Pos, path: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.to_string(),
            pos,
            path: path.to_string(),
            message: message.into(),
        }
    }

    pub fn warning(file: &str, pos: Pos, path: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, pos, path, message)
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:column` of the problem.
    pub fn place(&self) -> String {
        format!("{}:{}:{}", self.file, self.pos.line, self.pos.column)
    }

    /// `file:line:column: path: sentence`, without the severity: a warning as the plan
    /// document and the plan outputs list it.
    pub fn located(&self) -> String {
        format!("{}: {}: {}", self.place(), self.path, self.message)
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: path: sentence` (warnings: `file:line:col: path: warning: sentence`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // File names, field paths and messages quote manifest text: control characters in it
        // are escaped, so that a diagnostic stays one line and cannot drive the terminal.
        use crate::domain::text::printable;
        let place = self.place();
        let (place, path, message) = (
            printable(&place),
            printable(&self.path),
            printable(&self.message),
        );
        match self.severity {
            Severity::Error => write!(f, "{place}: {path}: {message}"),
            Severity::Warning => write!(f, "{place}: {path}: warning: {message}"),
        }
    }
}

impl Diagnostic {
    /// A GitHub Actions workflow command (`::error file=…,line=…,col=…,title=…::sentence`), so
    /// the problem shows on its line of a pull request. Standard input has no file to point at,
    /// so its diagnostics carry no place.
    pub fn github_annotation(&self) -> String {
        let command = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut properties = Vec::new();
        if self.file != "-" {
            properties.push(format!("file={}", github_property(&self.file)));
            properties.push(format!("line={}", self.pos.line));
            properties.push(format!("col={}", self.pos.column));
        }
        properties.push(format!("title={}", github_property(&self.path)));
        format!(
            "::{command} {}::{}",
            properties.join(","),
            github_data(&self.message)
        )
    }

    /// The machine-readable form `validate --output json` lists.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "file": self.file,
            "line": self.pos.line,
            "column": self.pos.column,
            "field": self.path,
            "message": self.message,
            "severity": match self.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
        })
    }
}

/// Escapes a workflow command's message as the Actions runner unescapes it (`%`, CR, LF), so a
/// message can never end the command early or smuggle a second one onto its own line.
fn github_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value: as a message, plus `:` and `,`, which would
/// otherwise end the property list or the property.
fn github_property(text: &str) -> String {
    github_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Sorts diagnostics by file, position, then message, so output is stable.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.pos, a.severity, &a.path, &a.message)
            .cmp(&(&b.file, b.pos, b.severity, &b.path, &b.message))
    });
}

/// The edit distance (optimal string alignment: a swap of two neighbours is one edit)
/// between two words, ignoring ASCII case, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(&a.to_ascii_lowercase(), &b.to_ascii_lowercase())
}

/// The known word closest to `word`, when it is close enough to be a likely misspelling.
pub fn closest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    if word.chars().count() > 64 {
        return None;
    }
    let limit = (word.chars().count() / 3).max(1) + 1;
    known
        .into_iter()
        .map(|k| (edit_distance(word, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, k)| (*d, *k))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_transposed_and_misspelled_fields() {
        let fields = ["email", "name", "roles", "services", "notifications"];
        assert_eq!(closest("rolse", fields), Some("roles"));
        assert_eq!(closest("emial", fields), Some("email"));
        assert_eq!(closest("notification", fields), Some("notifications"));
        assert_eq!(closest("colour", fields), None);
    }

    #[test]
    fn suggestions_ignore_case_count_a_swap_as_one_edit_and_break_ties_by_name() {
        let fields = ["email", "name", "roles", "services", "notifications"];
        assert_eq!(closest("ROLSE", fields), Some("roles"));
        assert_eq!(closest("Emali", fields), Some("email"));
        // "sevrices": one swap; "servcies": one swap; "srevices": one swap.
        assert_eq!(closest("sevrices", fields), Some("services"));
        assert_eq!(closest("servcies", fields), Some("services"));
        // Two edits from "name" is too far for a four-letter word (limit 2 … 3 chars → 2).
        assert_eq!(closest("nm", fields), Some("name"));
        assert_eq!(closest("x", fields), None);
        // Equal distance: the alphabetically first known word wins.
        assert_eq!(closest("ab", ["ax", "aa", "ay"]), Some("aa"));
        // Non-ASCII letters are compared as characters, not bytes.
        assert_eq!(closest("nämé", fields), Some("name"));
        assert_eq!(closest(&"a".repeat(65), ["a"]), None);
        assert_eq!(edit_distance("ca", "abc"), 3);
        assert_eq!(edit_distance("Rolse", "roles"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    fn diag(file: &str, path: &str, message: &str) -> Diagnostic {
        Diagnostic {
            path: path.to_string(),
            ..Diagnostic::error(
                file,
                Pos {
                    line: 14,
                    column: 9,
                },
                &Path::root(),
                message,
            )
        }
    }

    #[test]
    fn github_annotations_escape_data_and_properties() {
        let d = diag(
            "a,b:c%.yaml",
            "spec.members[1].email",
            "100% wrong\r\nline two: yes, really",
        );
        assert_eq!(
            d.github_annotation(),
            "::error file=a%2Cb%3Ac%25.yaml,line=14,col=9,title=spec.members[1].email\
             ::100%25 wrong%0D%0Aline two: yes, really"
        );
        let w = Diagnostic {
            severity: Severity::Warning,
            ..diag("-", "spec", "x")
        };
        assert_eq!(w.github_annotation(), "::warning title=spec::x");
    }

    #[test]
    fn json_form_names_every_part() {
        let v = diag("acme.yaml", "spec.timeZone", "unknown").to_json();
        assert_eq!(
            v,
            serde_json::json!({"file": "acme.yaml", "line": 14, "column": 9,
                "field": "spec.timeZone", "message": "unknown", "severity": "error"})
        );
    }
}
