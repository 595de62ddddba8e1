//! `review verify`: is a filled-in review complete, decided by someone other than the granter,
//! and is every `revoke` carried out in the manifests and on the portal?

use std::collections::{BTreeMap, BTreeSet};

use super::csv::{CsvError, Record, uncell};
use super::provenance::same_person;
use super::{COLUMNS, RowKey, RowKind};

/// A decisions file that cannot be read as a review.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionsError {
    #[error("{file}:{source}")]
    Csv {
        file: String,
        #[source]
        source: CsvError,
    },
    #[error("{file}:1:1: the file is empty: it needs the review's header line ({})", COLUMNS.join(","))]
    Empty { file: String },
    #[error(
        "{file}:1:1: the header has no column {column:?}: use the CSV that `rolecall review --output csv` wrote"
    )]
    MissingColumn { file: String, column: &'static str },
    #[error("{file}:{line}:1: the row has {found} fields, the header {expected}")]
    Width {
        file: String,
        line: u32,
        found: usize,
        expected: usize,
    },
    #[error("{file}:{line}:1: kind {kind:?} is neither member nor contact")]
    Kind {
        file: String,
        line: u32,
        kind: String,
    },
}

/// One decided row of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub line: u32,
    pub key: RowKey,
    pub email: String,
    pub granted_by: String,
    pub decision: String,
    pub reviewer: String,
}

/// Reads a filled-in review: every row, by the header's column names.
pub fn read(file: &str, text: &str) -> Result<Vec<Decision>, DecisionsError> {
    let records = super::csv::parse(text).map_err(|source| DecisionsError::Csv {
        file: file.to_string(),
        source,
    })?;
    let mut records = records.into_iter();
    let Some(Record { fields: header, .. }) = records.next() else {
        return Err(DecisionsError::Empty { file: file.into() });
    };
    let header: Vec<&str> = header
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim())
        .collect();
    let mut at: BTreeMap<&'static str, usize> = BTreeMap::new();
    for column in COLUMNS {
        let Some(i) = header.iter().position(|h| *h == column) else {
            return Err(DecisionsError::MissingColumn {
                file: file.into(),
                column,
            });
        };
        at.insert(column, i);
    }
    let mut out = Vec::new();
    for r in records {
        if r.fields.len() != header.len() {
            return Err(DecisionsError::Width {
                file: file.into(),
                line: r.line,
                found: r.fields.len(),
                expected: header.len(),
            });
        }
        let get = |c: &str| {
            at.get(c)
                .and_then(|i| r.fields.get(*i))
                .map(|v| uncell(v.trim()).to_string())
                .unwrap_or_default()
        };
        let kind = match get("kind").as_str() {
            "member" => RowKind::Member,
            "contact" => RowKind::Contact,
            other => {
                return Err(DecisionsError::Kind {
                    file: file.into(),
                    line: r.line,
                    kind: other.to_string(),
                });
            }
        };
        let email = get("email");
        out.push(Decision {
            line: r.line,
            key: RowKey {
                customer_number: get("customerNumber"),
                kind,
                email: crate::domain::email_key(&email),
                role: get("role"),
            },
            email,
            granted_by: get("grantedBy"),
            decision: get("decision"),
            reviewer: get("reviewer"),
        });
    }
    Ok(out)
}

/// What is true now: the grants the manifests declare (with where) and the portal holds.
#[derive(Debug, Clone, Default)]
pub struct Current {
    pub declared: BTreeMap<RowKey, String>,
    pub observed: BTreeSet<RowKey>,
}

/// Every way the decisions fall short, as `file:line: what` sentences, in file order.
pub fn check(file: &str, decisions: &[Decision], now: &Current) -> Vec<String> {
    use crate::domain::text::printable;
    let mut problems = Vec::new();
    for d in decisions {
        let what = format!(
            "{file}:{}: {} {} {}{}",
            d.line,
            printable(&d.key.customer_number),
            printable(&d.email),
            d.key.kind.as_str(),
            if d.key.role.is_empty() {
                String::new()
            } else {
                format!(" {}", printable(&d.key.role))
            }
        );
        match d.decision.as_str() {
            "keep" | "revoke" => {}
            "" => problems.push(format!("{what}: no decision: write keep or revoke")),
            other => problems.push(format!(
                "{what}: the decision {:?} is neither keep nor revoke",
                printable(other)
            )),
        }
        if d.reviewer.is_empty() {
            problems.push(format!("{what}: no reviewer: write who decided"));
        } else if !d.granted_by.is_empty() && same_person(&d.reviewer, &d.granted_by) {
            problems.push(format!(
                "{what}: the reviewer {} granted it ({}): someone else must decide on it",
                printable(&d.reviewer),
                printable(&d.granted_by)
            ));
        }
        if d.decision == "revoke" {
            if let Some(at) = now.declared.get(&d.key) {
                problems.push(format!(
                    "{what}: revoked, but the manifests still declare it at {}",
                    printable(at)
                ));
            }
            if now.observed.contains(&d.key) {
                problems.push(format!("{what}: revoked, but the portal still holds it"));
            }
        }
    }
    problems
}

/// The grants a declared state declares, keyed like review rows.
pub fn declared_keys(accounts: &[crate::domain::DesiredAccount]) -> BTreeMap<RowKey, String> {
    let mut out = BTreeMap::new();
    for a in accounts {
        for m in &a.members {
            let key = |role: &str| RowKey {
                customer_number: a.customer_number.clone(),
                kind: RowKind::Member,
                email: m.email.key().to_string(),
                role: role.to_string(),
            };
            if m.roles.is_empty() {
                out.insert(key(""), m.source.to_string());
            }
            for r in &m.roles {
                out.insert(key(&r.name), r.source.to_string());
            }
        }
        for c in &a.contacts {
            let key = |kind: &str| RowKey {
                customer_number: a.customer_number.clone(),
                kind: RowKind::Contact,
                email: c.email.key().to_string(),
                role: kind.to_string(),
            };
            if c.notifications.is_empty() {
                out.insert(key(""), c.source.to_string());
            }
            for n in &c.notifications {
                out.insert(key(n), c.source.to_string());
            }
        }
    }
    out
}
