//! Portal connections shared by the accounts that use the same Portal.
//!
//! Every account's reconcile used to build its own HTTP client and ask the portal `whoami` and
//! the catalog: at 10,000 accounts on one Portal that is 20,000 requests and 10,000 TLS-capable
//! clients for two answers that are the same for all of them. A connection is kept here for a
//! short time instead, keyed by everything that could make it another one: the Portal object
//! (uid and generation, so an edited spec connects again), its URL, and the resourceVersion of
//! the Secret its token comes from (so a rotated token is used at once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::portal::{Catalog, Whoami};
use crate::reconcile::connect::AnyPortal;

/// How long one connection serves: a principal or catalog changed on the portal itself (not
/// through the Portal object or its Secret) is seen within this time.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// A connected portal with its facts, as every reconcile of its accounts needs them.
pub struct Connected {
    pub portal: AnyPortal,
    pub principal: Whoami,
    pub catalog: Catalog,
}

/// What a connection was made from. Not `Debug`: the URL may carry userinfo.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionKey {
    pub portal_uid: String,
    pub generation: Option<i64>,
    pub url: String,
    /// `None` for a Portal without a Secret (a `sandbox:` URL).
    pub secret_version: Option<String>,
}

/// One entry per Portal (by uid): a new key replaces the old entry, so the cache never holds
/// more entries than there are Portals.
pub struct Connections<T = Connected> {
    entries: Mutex<HashMap<String, Entry<T>>>,
    max_age: Duration,
}

struct Entry<T> {
    key: ConnectionKey,
    made: Instant,
    connected: Arc<T>,
}

impl<T> Default for Connections<T> {
    fn default() -> Self {
        Connections::new(MAX_AGE)
    }
}

impl<T> Connections<T> {
    pub fn new(max_age: Duration) -> Self {
        Connections {
            entries: Mutex::new(HashMap::new()),
            max_age,
        }
    }

    /// The connection made from exactly `key`, if it is younger than the maximum age at `now`.
    pub fn get(&self, key: &ConnectionKey, now: Instant) -> Option<Arc<T>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(&key.portal_uid)
            .filter(|e| e.key == *key && now.saturating_duration_since(e.made) <= self.max_age)
            .map(|e| e.connected.clone())
    }

    /// Keeps `connected`, made at `made` from `key`, in place of the Portal's previous one.
    pub fn insert(&self, key: ConnectionKey, connected: Arc<T>, made: Instant) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                key.portal_uid.clone(),
                Entry {
                    key,
                    made,
                    connected,
                },
            );
        }
    }

    /// Drops the Portal's connection: the next reconcile connects again. Called when a
    /// reconcile did not end well, so that a broken connection (a token revoked on the portal,
    /// a portal moved behind the same URL) is not used for another minute.
    pub fn forget(&self, portal_uid: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(portal_uid);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uid: &str, generation: i64, secret: Option<&str>) -> ConnectionKey {
        ConnectionKey {
            portal_uid: uid.into(),
            generation: Some(generation),
            url: "https://portal.example.net".into(),
            secret_version: secret.map(Into::into),
        }
    }

    /// The same key within the maximum age gets the same connection; a new generation, URL or
    /// Secret version, or an old entry, gets none.
    #[test]
    fn a_connection_serves_its_own_key_until_it_is_too_old() {
        let cache: Connections<u32> = Connections::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let k = key("p-1", 1, Some("100"));
        assert!(cache.get(&k, t0).is_none());
        cache.insert(k.clone(), Arc::new(7), t0);
        assert_eq!(
            cache.get(&k, t0 + Duration::from_secs(60)).as_deref(),
            Some(&7)
        );
        assert!(cache.get(&k, t0 + Duration::from_secs(61)).is_none());
        assert!(cache.get(&key("p-1", 2, Some("100")), t0).is_none());
        assert!(cache.get(&key("p-1", 1, Some("101")), t0).is_none());
        assert!(cache.get(&key("p-1", 1, None), t0).is_none());
        let mut other_url = k.clone();
        other_url.url = "https://elsewhere.example.net".into();
        assert!(cache.get(&other_url, t0).is_none());
    }

    /// A Portal holds one entry: its new connection replaces the old one, another Portal's
    /// stays, and a forgotten Portal has none.
    #[test]
    fn one_entry_per_portal_and_forget_drops_it() {
        let cache: Connections<u32> = Connections::default();
        let t0 = Instant::now();
        cache.insert(key("p-1", 1, Some("100")), Arc::new(1), t0);
        cache.insert(key("p-2", 1, None), Arc::new(2), t0);
        cache.insert(key("p-1", 1, Some("101")), Arc::new(3), t0);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&key("p-1", 1, Some("100")), t0).is_none());
        assert_eq!(
            cache.get(&key("p-1", 1, Some("101")), t0).as_deref(),
            Some(&3)
        );
        cache.forget("p-1");
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&key("p-1", 1, Some("101")), t0).is_none());
        assert_eq!(cache.get(&key("p-2", 1, None), t0).as_deref(), Some(&2));
    }
}
