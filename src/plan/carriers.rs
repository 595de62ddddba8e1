//! Which write carries which change: what `apply` needs to say, after a write failed, exactly
//! which changes happened and which did not.

use std::collections::HashMap;

use super::{Action, Change, Operation};

/// The kinds of write, for matching a change to the write that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Write {
    CreateAccount,
    UpdateAccount,
    PutMember,
    DeleteMember,
    Invite,
    CancelInvitation,
    PutContact,
    DeleteContact,
}

fn write_of(op: &Operation) -> Write {
    match op {
        Operation::CreateAccount { .. } => Write::CreateAccount,
        Operation::UpdateAccount { .. } => Write::UpdateAccount,
        Operation::PutMember { .. } => Write::PutMember,
        Operation::DeleteMember { .. } => Write::DeleteMember,
        Operation::Invite { .. } => Write::Invite,
        Operation::CancelInvitation { .. } => Write::CancelInvitation,
        Operation::PutContact { .. } => Write::PutContact,
        Operation::DeleteContact { .. } => Write::DeleteContact,
    }
}

/// For each change, the index of the operation that carries it out, as the planner lays them
/// out: a member's additions, grants and updates go with its first write, its revocations with
/// its last (grants first, revocations last: SPEC §3); an invitation, a contact or a removal
/// has a write of its own. `None` for a change that no operation carries.
pub fn carriers(changes: &[Change], operations: &[Operation]) -> Vec<Option<usize>> {
    // (kind, e-mail) → (first, last) index.
    let mut index: HashMap<(Write, String), (usize, usize)> = HashMap::new();
    for (i, op) in operations.iter().enumerate() {
        let email = crate::domain::email_key(op.email().unwrap_or(""));
        index
            .entry((write_of(op), email))
            .and_modify(|(_, last)| *last = i)
            .or_insert((i, i));
    }
    changes
        .iter()
        .map(|c| {
            let (write, last) = match c.action {
                Action::CreateAccount => (Write::CreateAccount, false),
                Action::UpdateAccount => (Write::UpdateAccount, false),
                Action::AddMember | Action::Grant | Action::ChangeWindow | Action::UpdateMember => {
                    (Write::PutMember, false)
                }
                Action::Revoke => (Write::PutMember, true),
                Action::RemoveMember => (Write::DeleteMember, false),
                Action::Invite | Action::ResendInvitation => (Write::Invite, false),
                Action::CancelInvitation => (Write::CancelInvitation, false),
                Action::AddContact | Action::UpdateContact => (Write::PutContact, false),
                Action::RemoveContact => (Write::DeleteContact, false),
            };
            let email = crate::domain::email_key(c.email.as_deref().unwrap_or(""));
            index
                .get(&(write, email))
                .map(|&(first, end)| if last { end } else { first })
        })
        .collect()
}
