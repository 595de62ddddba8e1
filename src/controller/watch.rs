//! The watches: a reflector per kind driven by its own task, and which of its events wake the
//! controller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, Lookup, Store};
use kube::runtime::watcher;
use kube::runtime::{Predicate, WatchStreamExt, predicates};
use serde::de::DeserializeOwned;

use crate::model::Portal;

/// What of each object was last seen, by uid: its generation and finalizers, hashed by kube's
/// predicates. Shared by the watch and the reconciles: a reconcile that changes an object's
/// finalizers itself says so first ([`Changes::expect`]), so that its own write does not wake
/// the controller for that object a second time.
#[derive(Clone, Default)]
pub(super) struct Changes {
    seen: Arc<Mutex<HashMap<String, Option<u64>>>>,
}

impl Changes {
    fn hash<K: Resource>(obj: &K) -> Option<u64> {
        predicates::generation
            .combine(predicates::finalizers)
            .hash_property(obj)
    }

    fn uid<K: Resource>(obj: &K) -> String {
        obj.meta().uid.clone().unwrap_or_default()
    }

    /// Whether `obj` has a new generation or other finalizers than when last seen.
    fn changed<K: Resource>(&self, obj: &K) -> bool {
        let now = Self::hash(obj);
        match self.seen.lock() {
            Ok(mut seen) => seen.insert(Self::uid(obj), now) != Some(now),
            // A poisoned table cannot say: waking the controller is the safe side.
            Err(_) => true,
        }
    }

    /// Records `obj` as seen, as it will be once the caller's own write lands: its event then
    /// wakes nothing. Returns what was recorded before, for [`Changes::restore`] if the write
    /// fails.
    pub(super) fn expect<K: Resource>(&self, obj: &K) -> Option<Option<u64>> {
        self.seen
            .lock()
            .ok()
            .and_then(|mut seen| seen.insert(Self::uid(obj), Self::hash(obj)))
    }

    /// Undoes [`Changes::expect`] after a write that did not land.
    pub(super) fn restore<K: Resource>(&self, obj: &K, before: Option<Option<u64>>) {
        if let Ok(mut seen) = self.seen.lock() {
            match before {
                Some(hash) => seen.insert(Self::uid(obj), hash),
                None => seen.remove(&Self::uid(obj)),
            };
        }
    }

    fn forget<K: Resource>(&self, obj: &K) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(obj.meta().uid.as_deref().unwrap_or_default());
        }
    }
}

/// The annotation `kubectl apply` (client-side) leaves on every object: a whole copy of the
/// object as last applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what the controller never reads from an object before it is cached: `managedFields`
/// and the last-applied copy are often larger than the spec itself, and the caches hold every
/// object of the fleet (10,000 CustomerAccounts and their members) for as long as the process
/// leads. Status writes are server-side applies of the status alone and the finalizer is a
/// JSON patch, so nothing written back is built from these fields.
pub(super) fn slim<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// A reflector driven by its own task, and the stream of objects it saw change (by `changes`).
pub(super) fn reflect<K>(
    api: Api<K>,
    watch: watcher::Config,
    changes: Changes,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource + Lookup + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    <K as Lookup>::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
    <K as Resource>::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tasks.push(tokio::spawn(async move {
        // Only spec changes (a new generation), finalizer changes and deletions trigger: the
        // controller's own status writes would otherwise wake it again and again. kube's
        // predicates say what changed; they are asked per event rather than through
        // `predicate_filter` because objects of a (re)list are held back until the list is
        // complete and the store holds all of them, so that no reconcile looks an object up
        // before the store has it, and because a deletion always passes.
        let mut listed: Vec<K> = Vec::new();
        let mut events = std::pin::pin!(
            watcher(api, watch)
                .default_backoff()
                .modify(slim)
                .reflect(writer)
        );
        while let Some(event) = events.next().await {
            let changed = |obj: &K| changes.changed(obj);
            let ready: Vec<Result<K, watcher::Error>> = match event {
                Ok(watcher::Event::Apply(obj)) => {
                    if changed(&obj) {
                        vec![Ok(obj)]
                    } else {
                        vec![]
                    }
                }
                Ok(watcher::Event::InitApply(obj)) => {
                    if changed(&obj) {
                        listed.push(obj);
                    }
                    vec![]
                }
                Ok(watcher::Event::InitDone) => {
                    std::mem::take(&mut listed).into_iter().map(Ok).collect()
                }
                Ok(watcher::Event::Init) => {
                    listed.clear();
                    vec![]
                }
                Ok(watcher::Event::Delete(obj)) => {
                    changes.forget(&obj);
                    vec![Ok(obj)]
                }
                Err(e) => {
                    tracing::warn!(error = %e, "watch failed; retrying");
                    vec![Err(e)]
                }
            };
            for item in ready {
                if tx.send(item).is_err() {
                    return;
                }
            }
        }
    }));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (event, rx))
    });
    (reader, stream)
}

/// Portal changes go both to the account controller (to the accounts that use the Portal)
/// and to the Portal controller (its own status): the events as they pass, and a copy.
#[allow(clippy::type_complexity)]
pub(super) fn fan_out(
    portal_events: impl Stream<Item = Result<Portal, watcher::Error>> + Send + 'static,
) -> (
    impl Stream<Item = Result<Portal, watcher::Error>> + Send + 'static,
    impl Stream<Item = Result<Portal, watcher::Error>> + Send + 'static,
) {
    let (portal_tx, portal_rx) =
        tokio::sync::mpsc::unbounded_channel::<Result<Portal, watcher::Error>>();
    let portal_events = portal_events.map(move |event| {
        if let Ok(p) = &event {
            let _ = portal_tx.send(Ok(p.clone()));
        }
        event
    });
    let portal_trigger = futures::stream::unfold(portal_rx, |mut rx| async move {
        rx.recv().await.map(|event| (event, rx))
    });
    (portal_events, portal_trigger)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::FINALIZER;
    use crate::model::{CustomerAccount, CustomerAccountSpec};

    fn object(generation: i64, finalizers: &[&str], resource_version: &str) -> CustomerAccount {
        let mut a = CustomerAccount::new(
            "acme",
            CustomerAccountSpec {
                portal_ref: None,
                customer_number: "10042".into(),
                display_name: None,
                time_zone: None,
                members: vec![],
                contacts: vec![],
                policy: None,
            },
        );
        a.metadata.uid = Some("uid-1".into());
        a.metadata.generation = Some(generation);
        a.metadata.resource_version = Some(resource_version.into());
        a.metadata.finalizers = Some(finalizers.iter().map(|f| (*f).to_string()).collect());
        a
    }

    /// A cached object keeps its labels, other annotations, spec and status, and loses its
    /// managedFields and the last-applied copy.
    #[test]
    fn slim_drops_managed_fields_and_the_last_applied_copy() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
        let mut a = object(1, &[FINALIZER], "10");
        a.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("kubectl".into()),
            ..Default::default()
        }]);
        a.metadata.labels = Some([("shard".to_string(), "a".to_string())].into());
        a.metadata.annotations = Some(
            [
                (LAST_APPLIED.to_string(), "{\"spec\":{}}".to_string()),
                ("team".to_string(), "billing".to_string()),
            ]
            .into(),
        );
        let before = a.clone();
        slim(&mut a);
        assert_eq!(a.metadata.managed_fields, None);
        assert_eq!(
            a.metadata.annotations,
            Some([("team".to_string(), "billing".to_string())].into())
        );
        assert_eq!(a.metadata.labels, before.metadata.labels);
        assert_eq!(a.metadata.finalizers, before.metadata.finalizers);
        assert_eq!(a.spec, before.spec);

        let mut only_last_applied = object(1, &[], "11");
        only_last_applied.metadata.annotations =
            Some([(LAST_APPLIED.to_string(), "{}".to_string())].into());
        slim(&mut only_last_applied);
        assert_eq!(only_last_applied.metadata.annotations, None);
    }

    /// A status write (a new resourceVersion, the same generation) does not wake the
    /// controller; a new generation or a finalizer change does, and a forgotten object is new.
    #[test]
    fn only_generation_and_finalizer_changes_trigger() {
        let changes = Changes::default();
        assert!(changes.changed(&object(1, &[], "10")));
        assert!(!changes.changed(&object(1, &[], "11")));
        assert!(changes.changed(&object(1, &[FINALIZER], "12")));
        assert!(!changes.changed(&object(1, &[FINALIZER], "13")));
        assert!(changes.changed(&object(2, &[FINALIZER], "14")));
        changes.forget(&object(2, &[FINALIZER], "15"));
        assert!(changes.changed(&object(2, &[FINALIZER], "16")));
    }

    /// The finalizer a reconcile adds itself, announced with `expect`, does not wake the
    /// controller again; one it failed to add is forgotten again, and someone else's finalizer
    /// change still wakes it.
    #[test]
    fn an_expected_finalizer_change_does_not_trigger() {
        let changes = Changes::default();
        assert!(changes.changed(&object(1, &[], "10")));
        changes.expect(&object(1, &[FINALIZER], "10"));
        assert!(!changes.changed(&object(1, &[FINALIZER], "11")));
        assert!(changes.changed(&object(1, &[FINALIZER, "other/x"], "12")));

        let fresh = Changes::default();
        assert!(fresh.changed(&object(1, &[], "10")));
        let before = fresh.expect(&object(1, &[FINALIZER], "10"));
        fresh.restore(&object(1, &[FINALIZER], "10"), before);
        assert!(
            !fresh.changed(&object(1, &[], "11")),
            "restored to what was seen"
        );
        assert!(fresh.changed(&object(1, &[FINALIZER], "12")));
    }
}
