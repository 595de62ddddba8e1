//! The record of invitations rolecall has sent through WHMCS. WHMCS cannot list, resend or
//! cancel a client invitation, so without this record every run would invite again. The CLI
//! keeps it in a JSON file beside the manifests ([`FileInvitations`]); the controller can keep
//! it in the CustomerAccount's status ([`MemoryInvitations`], seeded from and written back to
//! the status).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// How long WHMCS keeps a client invitation valid.
pub const INVITATION_TTL_DAYS: u32 = 7;

/// One invitation rolecall sent: to whom, for which client, with which permissions, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitationRecord {
    /// The WHMCS client id (the customer number).
    pub client_id: String,
    /// As declared; compared case-insensitively.
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The permissions the invitation grants, or that rolecall sets once the person joins.
    pub permissions: Vec<String>,
    pub sent_at: Timestamp,
    pub expires_at: Timestamp,
}

impl InvitationRecord {
    pub fn is_for(&self, client_id: &str, email: &str) -> bool {
        self.client_id == client_id && crate::domain::same_email(&self.email, email)
    }

    pub fn expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at
    }

    /// A stable id for the invitation, as the portal API shows invitations.
    pub fn id(&self) -> String {
        format!("whmcs-{}-{}", self.client_id, self.sent_at.as_second())
    }
}

/// Why the record could not be read or written. Names the place, never a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the WHMCS invitation record {place} {reason}")]
pub struct InvitationStoreError {
    pub place: String,
    pub reason: String,
}

/// Where the sent invitations are kept. Every call is one consistent read or write.
pub trait InvitationStore: Send + Sync {
    /// The records of one client.
    fn list(&self, client_id: &str) -> Result<Vec<InvitationRecord>, InvitationStoreError>;
    /// Adds the record, replacing one for the same client and e-mail.
    fn put(&self, record: InvitationRecord) -> Result<(), InvitationStoreError>;
    /// Ends the record of this client and e-mail, if any.
    fn remove(&self, client_id: &str, email: &str) -> Result<(), InvitationStoreError>;
}

fn upsert(records: &mut Vec<InvitationRecord>, record: InvitationRecord) {
    records.retain(|r| !r.is_for(&record.client_id, &record.email));
    records.push(record);
    records.sort_by(|a, b| {
        (&a.client_id, crate::domain::email_key(&a.email))
            .cmp(&(&b.client_id, crate::domain::email_key(&b.email)))
    });
}

/// Records in memory: for tests, and for the controller, which seeds it from the
/// CustomerAccount's status and writes [`MemoryInvitations::records`] back there.
#[derive(Debug, Default)]
pub struct MemoryInvitations {
    records: Mutex<Vec<InvitationRecord>>,
}

impl MemoryInvitations {
    pub fn new(records: Vec<InvitationRecord>) -> MemoryInvitations {
        MemoryInvitations {
            records: Mutex::new(records),
        }
    }

    /// Every record, to keep where it survives.
    pub fn records(&self) -> Vec<InvitationRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

fn poisoned(place: &str) -> InvitationStoreError {
    InvitationStoreError {
        place: place.to_owned(),
        reason: "is unusable: another thread failed while writing it".into(),
    }
}

impl InvitationStore for MemoryInvitations {
    fn list(&self, client_id: &str) -> Result<Vec<InvitationRecord>, InvitationStoreError> {
        let records = self.records.lock().map_err(|_| poisoned("in memory"))?;
        Ok(records
            .iter()
            .filter(|r| r.client_id == client_id)
            .cloned()
            .collect())
    }

    fn put(&self, record: InvitationRecord) -> Result<(), InvitationStoreError> {
        let mut records = self.records.lock().map_err(|_| poisoned("in memory"))?;
        upsert(&mut records, record);
        Ok(())
    }

    fn remove(&self, client_id: &str, email: &str) -> Result<(), InvitationStoreError> {
        let mut records = self.records.lock().map_err(|_| poisoned("in memory"))?;
        records.retain(|r| !r.is_for(client_id, email));
        Ok(())
    }
}

/// The file's content: versioned so a later rolecall can read an older file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvitationFile {
    format_version: u32,
    invitations: Vec<InvitationRecord>,
}

/// Records in a JSON file (the CLI's `.rolecall/whmcs-invitations.json`). Every change is
/// written to a temporary file in the same directory and renamed over the old one, so a crash
/// leaves the old record or the new one, never half of one.
#[derive(Debug)]
pub struct FileInvitations {
    path: PathBuf,
    // Accounts are applied concurrently; one read-modify-write at a time.
    lock: Mutex<()>,
}

impl FileInvitations {
    pub fn new(path: impl Into<PathBuf>) -> FileInvitations {
        FileInvitations {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, reason: impl Into<String>) -> InvitationStoreError {
        InvitationStoreError {
            place: self.path.display().to_string(),
            reason: reason.into(),
        }
    }

    fn read(&self) -> Result<Vec<InvitationRecord>, InvitationStoreError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.error(format!("cannot be read: {e}"))),
        };
        let file: InvitationFile = serde_json::from_slice(&bytes).map_err(|e| {
            self.error(format!(
                "is not a rolecall invitation record ({e}); move it aside to start a new one"
            ))
        })?;
        if file.format_version != 1 {
            return Err(self.error(format!(
                "has format version {}, which this rolecall does not read",
                file.format_version
            )));
        }
        Ok(file.invitations)
    }

    fn write(&self, invitations: Vec<InvitationRecord>) -> Result<(), InvitationStoreError> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| self.error(format!("cannot be written: {}: {e}", dir.display())))?;
        let file = InvitationFile {
            format_version: 1,
            invitations,
        };
        let mut text = serde_json::to_vec_pretty(&file)
            .map_err(|e| self.error(format!("cannot be written: {e}")))?;
        text.push(b'\n');
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "whmcs-invitations.json".into());
        let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&temp, &text)
            .and_then(|()| std::fs::File::open(&temp)?.sync_all())
            .and_then(|()| std::fs::rename(&temp, &self.path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&temp);
                self.error(format!("cannot be written: {e}"))
            })
    }
}

impl InvitationStore for FileInvitations {
    fn list(&self, client_id: &str) -> Result<Vec<InvitationRecord>, InvitationStoreError> {
        let _guard = self
            .lock
            .lock()
            .map_err(|_| self.error("is locked by a failed thread"))?;
        Ok(self
            .read()?
            .into_iter()
            .filter(|r| r.client_id == client_id)
            .collect())
    }

    fn put(&self, record: InvitationRecord) -> Result<(), InvitationStoreError> {
        let _guard = self
            .lock
            .lock()
            .map_err(|_| self.error("is locked by a failed thread"))?;
        let mut records = self.read()?;
        upsert(&mut records, record);
        self.write(records)
    }

    fn remove(&self, client_id: &str, email: &str) -> Result<(), InvitationStoreError> {
        let _guard = self
            .lock
            .lock()
            .map_err(|_| self.error("is locked by a failed thread"))?;
        let mut records = self.read()?;
        let before = records.len();
        records.retain(|r| !r.is_for(client_id, email));
        if records.len() == before {
            return Ok(());
        }
        self.write(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(client: &str, email: &str) -> InvitationRecord {
        let sent_at: Timestamp = "2026-11-26T09:00:00Z".parse().unwrap();
        InvitationRecord {
            client_id: client.into(),
            email: email.into(),
            name: None,
            permissions: vec!["invoices".into()],
            sent_at,
            expires_at: sent_at + jiff::SignedDuration::from_hours(24 * 7),
        }
    }

    #[test]
    fn the_file_survives_and_replaces_records_by_client_and_email() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".rolecall/whmcs-invitations.json");
        let store = FileInvitations::new(&path);
        assert!(store.list("1").unwrap().is_empty());
        store.put(record("1", "Ann@x.example")).unwrap();
        store.put(record("1", "ann@x.example")).unwrap();
        store.put(record("2", "ann@x.example")).unwrap();
        let again = FileInvitations::new(&path);
        assert_eq!(again.list("1").unwrap().len(), 1);
        assert_eq!(again.list("2").unwrap().len(), 1);
        again.remove("1", "ANN@x.example").unwrap();
        assert!(again.list("1").unwrap().is_empty());
        assert_eq!(again.list("2").unwrap().len(), 1);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn a_damaged_file_is_named_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("whmcs-invitations.json");
        std::fs::write(&path, "{not json").unwrap();
        let store = FileInvitations::new(&path);
        let err = store
            .put(record("1", "a@x.example"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("whmcs-invitations.json"), "{err}");
        assert!(err.contains("move it aside"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
    }

    #[test]
    fn expiry_is_seven_days_after_sending() {
        let r = record("1", "a@x.example");
        assert!(!r.expired("2026-12-03T08:59:59Z".parse().unwrap()));
        assert!(r.expired("2026-12-03T09:00:00Z".parse().unwrap()));
    }

    #[test]
    fn memory_records_round_trip() {
        let store = MemoryInvitations::default();
        store.put(record("1", "a@x.example")).unwrap();
        assert_eq!(store.records().len(), 1);
        store.remove("1", "A@X.EXAMPLE").unwrap();
        assert!(store.records().is_empty());
    }
}
