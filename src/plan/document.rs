//! The plan document (`--output json`, `--out FILE`, `apply PLANFILE`), SPEC §3.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AccountPlan, Change, Operation, summary};
use crate::domain::Mode;

/// Where the plan schema says it lives (the `$id`).
pub const PLAN_SCHEMA_ID: &str = "https://rolecall.dev/schemas/plan-v1.json";

/// The JSON Schema (2020-12) of the plan document, generated from these types so that the
/// published schema (`rolecall schema --plan`, `schema/plan.schema.json`) cannot drift from
/// what `apply PLANFILE` reads.
pub fn plan_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut value = generator.into_root_schema_for::<PlanDocument>().to_value();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("$id".into(), PLAN_SCHEMA_ID.into());
        obj.insert(
            "description".into(),
            "A saved rolecall plan (`rolecall plan --out FILE`), applied exactly by `rolecall apply FILE`.".into(),
        );
    }
    value
}

/// The only format version this rolecall writes and reads.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanDocument {
    pub format_version: u32,
    pub portal: String,
    pub generated_at: String,
    /// Distinguishes this plan's idempotency keys from every other plan's.
    pub plan_id: String,
    pub summary: BTreeMap<String, usize>,
    pub accounts: Vec<AccountDocument>,
    pub warnings: Vec<String>,
    pub refused: Vec<RefusedAccount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountDocument {
    pub customer_number: String,
    pub source: String,
    /// `Observe` accounts are shown but never applied.
    #[serde(default, skip_serializing_if = "is_apply")]
    pub mode: ModeWord,
    pub changes: Vec<Change>,
    /// The portal writes that carry the changes out, in order, each with its precondition.
    pub operations: Vec<Operation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_transition: Option<String>,
    /// The account's `maxRemovals` when it is declared (absent: the default, 25% but never
    /// less than 3), checked again with the other safety rules when the plan is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_removals: Option<String>,
    /// The account's `allowSelfRevoke`, when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_self_revoke: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum ModeWord {
    #[default]
    Apply,
    Observe,
}

fn is_apply(m: &ModeWord) -> bool {
    *m == ModeWord::Apply
}

// An account the plan refused, with the reason in words (a `plan::Refusal` when planned). A
// plain comment, and the schema's old name: the published schema stays as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "Refusal")]
pub struct RefusedAccount {
    pub customer_number: String,
    pub reason: String,
}

impl PlanDocument {
    /// The document of a plan. Accounts without changes are left out; refused accounts appear
    /// under `refused` only.
    pub fn new(
        portal: &str,
        generated_at: jiff::Timestamp,
        plan_id: &str,
        plans: &[AccountPlan],
        warnings: Vec<String>,
    ) -> PlanDocument {
        let summary = summary(plans)
            .into_iter()
            .map(|(a, n)| (a.as_str().to_string(), n))
            .collect();
        let accounts = plans
            .iter()
            .filter(|p| p.refused.is_none() && p.errors.is_empty() && p.has_changes())
            .map(|p| AccountDocument {
                customer_number: p.customer_number.clone(),
                source: p.source.clone(),
                mode: match p.mode {
                    Mode::Apply => ModeWord::Apply,
                    Mode::Observe => ModeWord::Observe,
                },
                changes: p.changes.clone(),
                operations: p.operations.clone(),
                notes: p.notes.clone(),
                next_transition: p.next_transition.map(|t| t.to_string()),
                max_removals: match p.safety.max_removals {
                    crate::domain::RemovalLimit::Default => None,
                    limit => Some(limit.to_string()),
                },
                allow_self_revoke: p.safety.allow_self_revoke,
            })
            .collect();
        let refused = plans
            .iter()
            .filter_map(|p| {
                p.refused.as_ref().map(|r| RefusedAccount {
                    customer_number: p.customer_number.clone(),
                    reason: r.to_string(),
                })
            })
            .collect();
        PlanDocument {
            format_version: FORMAT_VERSION,
            portal: portal.to_string(),
            generated_at: generated_at.to_string(),
            plan_id: plan_id.to_string(),
            summary,
            accounts,
            warnings,
            refused,
        }
    }

    pub fn has_changes(&self) -> bool {
        self.accounts.iter().any(|a| !a.changes.is_empty())
    }

    /// Reads a saved plan; the error is a sentence.
    pub fn from_json(text: &str) -> Result<PlanDocument, PlanFileError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(PlanFileError::NotJson)?;
        match value.get("formatVersion").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(v) => return Err(PlanFileError::Version(v)),
            None => return Err(PlanFileError::NoVersion),
        }
        serde_json::from_value(value).map_err(PlanFileError::Invalid)
    }
}

/// Why a saved plan cannot be read; shown after the file's name.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("is not a rolecall plan: not JSON ({0})")]
    NotJson(#[source] serde_json::Error),
    #[error("has plan format version {0}; this rolecall reads version {FORMAT_VERSION}")]
    Version(u64),
    #[error("is not a rolecall plan: it has no formatVersion")]
    NoVersion,
    #[error("is not a valid rolecall plan: {0}")]
    Invalid(#[source] serde_json::Error),
}
