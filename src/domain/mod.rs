//! The domain: customer accounts, members, roles with windows, contacts and policies, as plain
//! values. Nothing here knows of YAML, HTTP or Kubernetes; the planner works on these types.

mod customer_number;
mod email;
mod expiry;
mod observed;
pub mod text;
mod window;

pub use customer_number::*;
pub use email::*;
pub use expiry::*;
pub use observed::*;
pub use window::*;

use jiff::tz::TimeZone;

/// Where a declaration came from: `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct SourceRef {
    pub file: std::sync::Arc<str>,
    pub line: u32,
    pub column: u32,
}

impl std::fmt::Display for SourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Which of the account's services a member may use: `all`, `none` or a list of service ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Services {
    #[default]
    All,
    None,
    Only(Vec<String>),
}

/// Everything the manifests declare, checked and resolved.
#[derive(Debug, Clone, Default)]
pub struct DesiredState {
    pub portals: Vec<DesiredPortal>,
    pub accounts: Vec<DesiredAccount>,
}

/// A declared Portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredPortal {
    pub name: String,
    pub namespace: String,
    pub url: String,
    /// Environment variable holding the token (CLI).
    pub token_env: Option<String>,
    pub source: SourceRef,
}

/// A declared customer account with every member and contact that points to it.
#[derive(Debug, Clone)]
pub struct DesiredAccount {
    pub name: String,
    pub namespace: String,
    pub portal_ref: Option<String>,
    pub customer_number: String,
    pub display_name: Option<String>,
    /// IANA name, as declared (default `UTC`).
    pub time_zone_name: String,
    /// Whether the manifest names the time zone (and so rolecall enforces it on the portal).
    pub time_zone_declared: bool,
    pub time_zone: TimeZone,
    pub members: Vec<DesiredMember>,
    pub contacts: Vec<DesiredContact>,
    pub policy: AccountPolicy,
    pub source: SourceRef,
}

/// A declared member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredMember {
    pub email: Email,
    pub name: Option<String>,
    pub roles: Vec<DesiredRole>,
    /// `None`: not managed.
    pub services: Option<Services>,
    /// `None`: not managed.
    pub notifications: Option<Vec<String>>,
    pub source: SourceRef,
}

/// A declared role and the window it holds in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRole {
    pub name: String,
    pub window: Window,
    pub source: SourceRef,
}

/// A declared notification contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredContact {
    pub email: Email,
    pub name: Option<String>,
    pub notifications: Vec<String>,
    pub source: SourceRef,
}

/// The most an account's plan may remove or revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalLimit {
    /// The default when `maxRemovals` is not declared: 25% of the current members and
    /// contacts, but never less than 3, so that small accounts can still be tidied.
    Default,
    /// An explicit count: the limit, however small (`0` forbids every removal).
    Count(u64),
    /// An explicit percent of current members and contacts, rounded down; no floor.
    Percent(u32),
}

impl RemovalLimit {
    /// The default never allows less than 3, so that small accounts can still be tidied.
    pub const FLOOR: u64 = 3;
    /// The default percentage.
    pub const DEFAULT_PERCENT: u32 = 25;

    /// The number of removals allowed for an account that has `current` members and contacts.
    /// Only the default has a floor: a declared limit is the limit (SPEC §2).
    pub fn allowed(self, current: u64) -> u64 {
        match self {
            RemovalLimit::Default => {
                (current.saturating_mul(u64::from(Self::DEFAULT_PERCENT)) / 100).max(Self::FLOOR)
            }
            RemovalLimit::Count(n) => n,
            RemovalLimit::Percent(p) => current.saturating_mul(u64::from(p)) / 100,
        }
    }
}

impl std::fmt::Display for RemovalLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemovalLimit::Default => write!(f, "{}%", Self::DEFAULT_PERCENT),
            RemovalLimit::Count(n) => write!(f, "{n}"),
            RemovalLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Apply,
    Observe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    #[default]
    Orphan,
    Revoke,
}

/// An account's policy with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPolicy {
    pub prune: bool,
    pub max_removals: RemovalLimit,
    pub ignore: Vec<EmailGlob>,
    pub allowed_email_domains: Option<Vec<String>>,
    pub allow_self_revoke: bool,
    pub resend_expired_invitations: bool,
    pub mode: Mode,
    pub deletion_policy: DeletionPolicy,
}

impl Default for AccountPolicy {
    fn default() -> Self {
        AccountPolicy {
            prune: true,
            max_removals: RemovalLimit::Default,
            ignore: Vec::new(),
            allowed_email_domains: None,
            allow_self_revoke: false,
            resend_expired_invitations: true,
            mode: Mode::Apply,
            deletion_policy: DeletionPolicy::Orphan,
        }
    }
}

impl AccountPolicy {
    /// Whether rolecall must leave this e-mail alone.
    pub fn ignores(&self, email: &str) -> bool {
        self.ignore.iter().any(|g| g.matches(email))
    }

    /// Whether `allowedEmailDomains` (if set) lets this address in; domains compare in their
    /// IDNA ASCII form, so `bücher.example` and `xn--bcher-kva.example` are one domain.
    pub fn allows(&self, email: &Email) -> bool {
        self.allowed_email_domains
            .as_ref()
            .is_none_or(|domains| domains.iter().any(|d| domain_key(d) == email.domain()))
    }
}
