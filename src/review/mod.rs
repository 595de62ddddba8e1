//! The access review (SPEC §3a): one row per (account, member, role) and per (account,
//! contact, notification kind) of every account read, with its findings, where it is declared
//! and who declared it when; the population hash; and the outputs (CSV, JSON, Markdown, HTML).
//!
//! Everything here but [`provenance`] is pure: the rows are made from the manifests' desired
//! state, the portal's observed state, the catalog and the planner's changes.

pub mod csv;
pub mod findings;
pub mod html;
pub mod markdown;
pub mod provenance;
pub mod verify;

use std::collections::BTreeMap;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use findings::{Finding, build_rows};

use crate::domain::SourceRef;
use crate::plan::ObservedAccount;

/// The default of `--expiring-within`: days before an `until` a grant is `expiring`.
pub const DEFAULT_EXPIRING_WITHIN_DAYS: u32 = 14;
/// The HTML timeline shows the grants that end within this many days.
pub const TIMELINE_DAYS: i64 = 90;

/// The columns of every output, in SPEC §3a's order (the CSV header).
pub const COLUMNS: [&str; 17] = [
    "customerNumber",
    "account",
    "email",
    "kind",
    "role",
    "from",
    "until",
    "userLinked",
    "invitation",
    "invitationSentAt",
    "declaredAt",
    "grantedBy",
    "grantedCommit",
    "grantedAt",
    "findings",
    "decision",
    "reviewer",
];

/// Whether a row is a member's role or a contact's notification kind.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RowKind {
    Member,
    Contact,
}

impl RowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RowKind::Member => "member",
            RowKind::Contact => "contact",
        }
    }
}

/// A member's invitation as the portal shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InvitationState {
    None,
    Pending,
    Expired,
}

impl InvitationState {
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationState::None => "none",
            InvitationState::Pending => "pending",
            InvitationState::Expired => "expired",
        }
    }
}

/// One grant of the population.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewRow {
    pub customer_number: String,
    /// The account's display name on the portal.
    pub account: String,
    /// The e-mail as the portal holds it.
    pub email: String,
    pub kind: RowKind,
    /// The role (member) or notification kind (contact); empty for a member without roles or a
    /// contact without notification kinds, so that nobody the portal shows is left out.
    pub role: String,
    /// The declared `from` (portals keep none).
    pub from: Option<String>,
    /// The `until` the portal holds, else the declared one.
    pub until: Option<String>,
    /// Members only.
    pub user_linked: Option<bool>,
    pub invitation: InvitationState,
    pub invitation_sent_at: Option<String>,
    /// `file:line` of the manifest line that declares the role, member or contact.
    pub declared_at: Option<String>,
    /// The author (`Name <email>`, as git records it) of the commit that last changed that line.
    pub granted_by: Option<String>,
    pub granted_commit: Option<String>,
    /// That commit's author date (RFC 3339, UTC).
    pub granted_at: Option<String>,
    pub findings: Vec<Finding>,
    /// Left empty for the reviewer: `keep` or `revoke`.
    pub decision: Option<String>,
    /// Left empty for the reviewer.
    pub reviewer: Option<String>,
    /// Where the row is declared, for provenance (not part of the outputs).
    #[serde(skip)]
    #[schemars(skip)]
    pub source: Option<SourceRef>,
}

impl ReviewRow {
    /// What identifies a grant across reviews: customer number, kind, e-mail key, role.
    pub fn key(&self) -> RowKey {
        RowKey {
            customer_number: self.customer_number.clone(),
            kind: self.kind,
            email: crate::domain::email_key(&self.email),
            role: self.role.clone(),
        }
    }

    /// The findings as the CSV and Markdown show them: `;`-separated words.
    pub fn findings_text(&self) -> String {
        self.findings
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The cells of the row, in [`COLUMNS`] order.
    pub fn cells(&self) -> [String; 17] {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        [
            self.customer_number.clone(),
            self.account.clone(),
            self.email.clone(),
            self.kind.as_str().to_string(),
            self.role.clone(),
            opt(&self.from),
            opt(&self.until),
            self.user_linked.map(|b| b.to_string()).unwrap_or_default(),
            self.invitation.as_str().to_string(),
            opt(&self.invitation_sent_at),
            opt(&self.declared_at),
            opt(&self.granted_by),
            opt(&self.granted_commit),
            opt(&self.granted_at),
            self.findings_text(),
            opt(&self.decision),
            opt(&self.reviewer),
        ]
    }
}

/// A grant's identity: the same (account, kind, e-mail, role) in two reviews is one grant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowKey {
    pub customer_number: String,
    pub kind: RowKind,
    /// [`crate::domain::email_key`] of the e-mail.
    pub email: String,
    pub role: String,
}

/// The review document (`--output json`; the other outputs show the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewDocument {
    pub format_version: u32,
    /// RFC 3339.
    pub generated_at: String,
    /// The portal URL(s) read, without credentials, `, `-separated when several.
    pub portal: String,
    /// The commit the manifests are at, when they are in a git repository.
    pub manifests_commit: Option<String>,
    /// SHA-256 (hex) of the canonical JSON of the observed state the rows were made from.
    pub population: String,
    pub expiring_within_days: u32,
    pub rows: Vec<ReviewRow>,
}

/// The JSON Schema of the review document (checked in as `schema/review.schema.json`).
pub fn review_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ReviewDocument)).unwrap_or_default()
}

/// The canonical JSON of an observed state: accounts by customer number, members and contacts
/// by e-mail key, lists sorted, object keys sorted, etags left out (they name versions, not
/// who holds what).
pub fn canonical_observed(observed: &[&BTreeMap<String, ObservedAccount>]) -> String {
    use serde_json::{Value, json};
    fn strip(mut v: Value) -> Value {
        if let Value::Object(map) = &mut v {
            map.remove("etag");
            map.remove("customerNumber");
            for (_, inner) in map.iter_mut() {
                if let Value::Array(items) = inner
                    && items.iter().all(Value::is_string)
                {
                    items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                }
            }
        }
        v
    }
    let mut accounts: BTreeMap<&str, Value> = BTreeMap::new();
    for map in observed {
        for (cn, o) in *map {
            let mut members: Vec<(String, Value)> = o
                .members
                .iter()
                .map(|m| {
                    // The wire form, as the portal sent it: the hash is of what it holds.
                    let mut m = crate::portal::Member::from(m);
                    m.roles.sort_by(|a, b| a.name.cmp(&b.name));
                    let value = serde_json::to_value(&m).unwrap_or_default();
                    (crate::domain::email_key(&m.email), strip(value))
                })
                .collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            let mut contacts: Vec<(String, Value)> = o
                .contacts
                .iter()
                .map(|c| {
                    let value =
                        serde_json::to_value(crate::portal::Contact::from(c)).unwrap_or_default();
                    (crate::domain::email_key(&c.email), strip(value))
                })
                .collect();
            contacts.sort_by(|a, b| a.0.cmp(&b.0));
            let account = o.account.as_ref().map(|a| {
                strip(serde_json::to_value(crate::portal::Account::from(a)).unwrap_or_default())
            });
            accounts.insert(
                cn.as_str(),
                json!({
                    "account": account,
                    "members": members.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
                    "contacts": contacts.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
                }),
            );
        }
    }
    // serde_json's maps are sorted by key, so this text is canonical.
    serde_json::to_string(&accounts).unwrap_or_default()
}

/// SHA-256 of [`canonical_observed`], in lower-case hex.
pub fn population_hash(observed: &[&BTreeMap<String, ObservedAccount>]) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        canonical_observed(observed).as_bytes(),
    );
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The time `generatedAt` shows.
pub fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests;
