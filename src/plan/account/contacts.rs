//! Planning an account's e-mail-only contacts.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::super::key::JoinKey;
use super::super::{ABSENT, Action, Change, ObservedAccount, Operation};
use super::{AccountPlanner, same_set, sorted};
use crate::domain::{DesiredContact, email_key};
use crate::portal::ContactPut;

impl<K: JoinKey> AccountPlanner<'_, K> {
    pub(super) fn contacts(&mut self, o: &ObservedAccount) {
        let observed: BTreeMap<K, &crate::domain::ObservedContact> = o
            .contacts
            .iter()
            .map(|c| (K::new(email_key(&c.email)), c))
            .collect();
        let desired: BTreeMap<K, &DesiredContact> = self
            .d
            .contacts
            .iter()
            .map(|c| (K::new(c.email.key().to_string()), c))
            .collect();
        let keys: BTreeSet<&K> = observed.keys().chain(desired.keys()).collect();
        for key in keys {
            let obs = observed.get(key).copied();
            let dc = desired.get(key).copied();
            let email = dc
                .map(|c| c.email.as_str().to_string())
                .or_else(|| obs.map(|c| c.email.clone()))
                .unwrap_or_default();
            if self.d.policy.ignores(&email) {
                continue;
            }
            match (dc, obs) {
                (Some(dc), None) => {
                    let body = ContactPut {
                        name: dc.name.clone().unwrap_or_default(),
                        notifications: dc.notifications.clone(),
                    };
                    let mut c = Change::new(Action::AddContact);
                    c.email = Some(email.clone());
                    c.after = Some(
                        json!({"name": body.name, "notifications": sorted(&body.notifications)}),
                    );
                    c.precondition = Some(ABSENT.into());
                    self.change(c, false);
                    self.step(
                        2,
                        key,
                        Operation::PutContact {
                            email,
                            contact: body,
                            if_match: None,
                        },
                    );
                }
                (Some(dc), Some(oc)) => {
                    let name = dc.name.clone().unwrap_or_else(|| oc.name.clone());
                    let same = name == oc.name && same_set(&dc.notifications, &oc.notifications);
                    if same {
                        continue;
                    }
                    let mut c = Change::new(Action::UpdateContact);
                    c.email = Some(email.clone());
                    c.before =
                        Some(json!({"name": oc.name, "notifications": sorted(&oc.notifications)}));
                    c.after =
                        Some(json!({"name": name, "notifications": sorted(&dc.notifications)}));
                    c.precondition = Some(oc.etag.clone());
                    self.change(c, false);
                    self.step(
                        2,
                        key,
                        Operation::PutContact {
                            email,
                            contact: ContactPut {
                                name,
                                notifications: dc.notifications.clone(),
                            },
                            if_match: Some(oc.etag.clone()),
                        },
                    );
                }
                (None, Some(oc)) if self.d.policy.prune => {
                    let mut c = Change::new(Action::RemoveContact);
                    c.email = Some(oc.email.clone());
                    c.before =
                        Some(json!({"name": oc.name, "notifications": sorted(&oc.notifications)}));
                    c.reason = Some("not declared (prune)".into());
                    c.precondition = Some(oc.etag.clone());
                    self.change(c, true);
                    self.step(
                        4,
                        key,
                        Operation::DeleteContact {
                            email: oc.email.clone(),
                            if_match: Some(oc.etag.clone()),
                        },
                    );
                }
                _ => {}
            }
        }
    }
}
