//! Writing status the Kubernetes way: conditions as a list map keyed by `type`, whose
//! `lastTransitionTime` moves only when the status flips, written by server-side apply under
//! one field manager.

// k8s-openapi's times are its own jiff version's.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;

use super::FIELD_MANAGER;
use crate::model::ObjectStatus;

/// A condition of `type_`, keeping the previous transition time when the status is unchanged.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(
            || Time(Timestamp::now()),
            |c| c.last_transition_time.clone(),
        );
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: truncate(message.into(), 4000),
        observed_generation: generation,
        last_transition_time,
    }
}

/// Kubernetes caps a condition message at 32 kB; long lists of problems are cut well before.
pub fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Writes `status` on the object's status subresource by server-side apply.
pub async fn apply_status<K, S>(api: &Api<K>, obj: &K, status: &S) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
}

/// The `Ready` status of an AccountMember or NotificationContact, written only when it differs
/// from what the object shows (a large account would otherwise write every member each time).
pub async fn object_ready<K>(
    api: &Api<K>,
    obj: &K,
    current: Option<&ObjectStatus>,
    ok: bool,
    reason: &str,
    message: String,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let generation = obj.meta().generation;
    let previous = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let ready = condition(previous, "Ready", ok, reason, message, generation);
    let unchanged = current.is_some_and(|s| {
        s.observed_generation == generation
            && s.conditions.iter().any(|c| {
                c.type_ == ready.type_
                    && c.status == ready.status
                    && c.reason == ready.reason
                    && c.message == ready.message
            })
    });
    if unchanged {
        return Ok(());
    }
    let status = ObjectStatus {
        observed_generation: generation,
        conditions: vec![ready],
    };
    apply_status(api, obj, &status).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transition_time_stays_while_the_status_holds() {
        let first = condition(&[], "Ready", true, "InSync", "ok", Some(1));
        let again = condition(
            std::slice::from_ref(&first),
            "Ready",
            true,
            "Applied",
            "ok",
            Some(2),
        );
        assert_eq!(again.last_transition_time, first.last_transition_time);
        assert_eq!(again.observed_generation, Some(2));
        let flipped = condition(
            std::slice::from_ref(&first),
            "Ready",
            false,
            "Refused",
            "no",
            Some(2),
        );
        assert_eq!(flipped.status, "False");
        assert!(flipped.last_transition_time.0 >= first.last_transition_time.0);
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let text = "é".repeat(3000);
        let cut = truncate(text, 4001);
        assert!(cut.ends_with('…'));
        assert!(cut.len() <= 4001 + '…'.len_utf8());
    }
}
