//! Showing plans to people: text like `terraform plan`, Markdown for pull-request comments,
//! and the JSON plan document.

pub mod manifests;
mod markdown;
mod text;

pub use markdown::{markdown, markdown_with_warnings};
pub use text::{Style, TextWriter, text, text_with_warnings};

use crate::plan::{AccountPlan, Action, Change};

/// Counts in the words of the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub add: usize,
    pub change: usize,
    pub remove: usize,
    pub invite: usize,
}

impl Counts {
    pub fn of<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Counts {
        let mut c = Counts::default();
        for ch in changes {
            match ch.action {
                Action::CreateAccount | Action::AddMember | Action::Grant | Action::AddContact => {
                    c.add += 1
                }
                Action::UpdateAccount
                | Action::ChangeWindow
                | Action::UpdateMember
                | Action::UpdateContact => c.change += 1,
                Action::Revoke
                | Action::RemoveMember
                | Action::RemoveContact
                | Action::CancelInvitation => c.remove += 1,
                Action::Invite | Action::ResendInvitation => c.invite += 1,
            }
        }
        c
    }

    pub fn total(&self) -> usize {
        self.add + self.change + self.remove + self.invite
    }
}

/// Accounts whose changes will be applied (not refused, no errors).
pub fn shown(plans: &[AccountPlan]) -> impl Iterator<Item = &AccountPlan> {
    plans
        .iter()
        .filter(|p| p.refused.is_none() && p.errors.is_empty())
}

/// The summary line: `Plan: 3 to add, 1 to change, 2 to remove, 1 invitation to send.`
pub fn summary_line(plans: &[AccountPlan]) -> String {
    let mut summary = Summary::default();
    summary.add(plans);
    summary.line()
}

/// What the summary line counts, added up batch by batch of account plans (`apply` plans a
/// large fleet a batch at a time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    counts: Counts,
    refused: usize,
    observe: usize,
    unplanned: usize,
}

impl Summary {
    /// Counts these plans too.
    pub fn add(&mut self, plans: &[AccountPlan]) {
        let c = Counts::of(shown(plans).flat_map(|p| p.changes.iter()));
        self.counts.add += c.add;
        self.counts.change += c.change;
        self.counts.remove += c.remove;
        self.counts.invite += c.invite;
        self.refused += plans.iter().filter(|p| p.refused.is_some()).count();
        self.observe += shown(plans)
            .filter(|p| p.mode == crate::domain::Mode::Observe && p.has_changes())
            .count();
        self.unplanned += plans.iter().filter(|p| !p.errors.is_empty()).count();
    }

    /// The summary line.
    pub fn line(&self) -> String {
        let Summary {
            counts,
            refused,
            observe,
            unplanned,
        } = *self;
        let mut line = if counts.total() == 0 && unplanned + refused > 0 {
            // Not "the portal matches": accounts with errors were never compared.
            "No changes to apply.".to_string()
        } else if counts.total() == 0 {
            "No changes. The portal matches the manifests.".to_string()
        } else {
            format!(
                "Plan: {} to add, {} to change, {} to remove, {} {} to send.",
                counts.add,
                counts.change,
                counts.remove,
                counts.invite,
                if counts.invite == 1 {
                    "invitation"
                } else {
                    "invitations"
                }
            )
        };
        let accounts = |n: usize| if n == 1 { "account" } else { "accounts" };
        if observe > 0 {
            line.push_str(&format!(
                " {observe} {} in Observe mode will not be changed.",
                accounts(observe)
            ));
        }
        if refused > 0 {
            line.push_str(&format!(" {refused} {} refused.", accounts(refused)));
        }
        if unplanned > 0 {
            line.push_str(&format!(
                " {unplanned} {} not planned: fix the errors shown.",
                accounts(unplanned)
            ));
        }
        line
    }
}

/// One change as a line of words, without its sign: `grant bob@x cockpit-access until 2026-12-31 (reason)`.
pub fn describe(c: &Change) -> String {
    let mut parts: Vec<String> = vec![c.action.as_str().to_string()];
    if let Some(e) = &c.email {
        parts.push(e.clone());
    }
    if let Some(r) = &c.role {
        parts.push(r.clone());
    }
    if let Some(f) = &c.from {
        parts.push(format!("from {f}"));
    }
    if let Some(u) = &c.until {
        parts.push(format!("until {u}"));
    }
    if matches!(
        c.action,
        Action::UpdateAccount
            | Action::UpdateMember
            | Action::UpdateContact
            | Action::ChangeWindow
            | Action::CreateAccount
            | Action::AddContact
    ) && let Some(after) = &c.after
    {
        let before = c.before.as_ref();
        parts.push(delta(before, after));
    }
    let mut line = parts.join(" ");
    if let Some(r) = &c.reason {
        line.push_str(&format!(" — {r}"));
    }
    line
}

/// `name: "Old" → "New", notifications: [..] → [..]`
fn delta(before: Option<&serde_json::Value>, after: &serde_json::Value) -> String {
    let Some(fields) = after.as_object() else {
        return after.to_string();
    };
    fields
        .iter()
        .map(|(k, v)| match before.and_then(|b| b.get(k)) {
            Some(old) => format!("{k}: {} → {}", compact(old), compact(v)),
            None => format!("{k}: {}", compact(v)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn compact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "none".into(),
        serde_json::Value::String(s) => format!("{s:?}"),
        serde_json::Value::Array(items) => format!(
            "[{}]",
            items.iter().map(compact).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}
