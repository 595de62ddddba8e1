//! The manifest kinds of SPEC §2 (`rolecall.dev/v1alpha1`): the same types serve files in git
//! and Kubernetes custom resources. Doc comments here become the CRD field descriptions that
//! `kubectl explain` shows, so they are written for the people who write manifests.
//!
//! Values that need checking (e-mails, dates, time zones, `maxRemovals`) are kept as the text
//! the user wrote: `manifest` checks them with a location and resolves them into domain values.

// kube's derive takes repeated `printcolumn(...)` and `shortname` attributes by design.
#![allow(clippy::duplicated_attributes)]

pub mod crd;
mod schema_helpers;
mod status;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use status::*;

/// API group of every rolecall kind.
pub const GROUP: &str = "rolecall.dev";
/// API version of every rolecall kind.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "rolecall.dev/v1alpha1";

/// The four kinds, in the order they are documented.
pub const KINDS: [&str; 4] = [
    "Portal",
    "CustomerAccount",
    "AccountMember",
    "NotificationContact",
];

/// Where and as whom to connect: a customer portal's API.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rolecall.dev",
    version = "v1alpha1",
    kind = "Portal",
    namespaced,
    status = "PortalStatus",
    shortname = "rcportal",
    category = "rolecall",
    derive = "PartialEq",
    doc = "A customer portal rolecall manages: its API URL and where its token comes from.",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Principal", type_ = "string", json_path = ".status.principal"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortalSpec {
    /// Base URL of the portal API: `https://portal.example.net`, `whmcs+https://host/path/`
    /// for a WHMCS installation, or `sandbox:FILE` for the embedded reference portal (CLI
    /// only).
    pub url: String,
    /// Controller: the Secret (in the same namespace) and key holding the bearer token. For
    /// WHMCS the key holds the API secret; the same Secret holds the identifier under
    /// `identifier` and the optional access key under `accesskey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
    /// CLI: the environment variable holding the bearer token. Default `ROLECALL_TOKEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
}

/// A key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret's data.
    pub key: String,
}

/// A reference to another rolecall object in the same namespace, by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalRef {
    /// `metadata.name` of the referenced object; always in the same namespace.
    pub name: String,
    /// May only repeat the object's own namespace: references across namespaces are refused,
    /// so that one namespace can never reach another's accounts, portals or secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A customer account of the portal: its members, their roles and its notification contacts.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rolecall.dev",
    version = "v1alpha1",
    kind = "CustomerAccount",
    namespaced,
    status = "CustomerAccountStatus",
    shortname = "rcaccount",
    shortname = "custacct",
    category = "rolecall",
    derive = "PartialEq",
    doc = "A customer account of a portal: who may reach it, with which roles, until when, and who is notified.",
    printcolumn(
        name = "Customer",
        type_ = "string",
        json_path = ".spec.customerNumber"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Members", type_ = "integer", json_path = ".status.members"),
    printcolumn(
        name = "Pending",
        type_ = "integer",
        description = "pending invitations",
        json_path = ".status.pendingInvitations"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomerAccountSpec {
    /// The Portal this account lives in. May be omitted where only one Portal is declared
    /// or `--portal` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal_ref: Option<LocalRef>,
    /// The portal's customer number of the account, e.g. "10042".
    pub customer_number: String,
    /// The account's display name; enforced when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// IANA time zone every date of this account is read in, e.g. `Europe/Zurich`. Default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// People linked to the account by roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberSpec>,
    /// E-mail-only notification contacts; they cannot log in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<ContactSpec>,
    /// How rolecall may change this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
}

/// A person linked to the account by one or more roles.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberSpec {
    /// The person's e-mail; the invitation goes there. Compared case-insensitively.
    pub email: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Roles of the portal's catalog: a name, or `{name, from, until}` for a dated window.
    pub roles: Vec<RoleEntry>,
    /// Which services the member may use: `all`, `none` or a list of service ids.
    /// Omitted: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<ServiceScope>,
    /// Notification kinds the member receives. Omitted: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Vec<String>>,
}

/// A role: a plain name (`cockpit-access`) or a dated window.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum RoleEntry {
    /// A role held without dates.
    Name(String),
    /// A role held from and/or until a date.
    Window(RoleWindow),
}

/// A role held within a window of dates, both inclusive, in the account's time zone.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleWindow {
    /// Role name from the portal's catalog.
    pub name: String,
    /// First day (`YYYY-MM-DD`, inclusive) the role holds; not granted before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Last day (`YYYY-MM-DD`, inclusive) the role holds; revoked after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl RoleEntry {
    pub fn name(&self) -> &str {
        match self {
            RoleEntry::Name(n) => n,
            RoleEntry::Window(w) => &w.name,
        }
    }
    pub fn from(&self) -> Option<&str> {
        match self {
            RoleEntry::Name(_) => None,
            RoleEntry::Window(w) => w.from.as_deref(),
        }
    }
    pub fn until(&self) -> Option<&str> {
        match self {
            RoleEntry::Name(_) => None,
            RoleEntry::Window(w) => w.until.as_deref(),
        }
    }
}

/// `all`, `none`, or a list of service ids.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum ServiceScope {
    /// `all` or `none`.
    Word(String),
    /// Service ids.
    List(Vec<String>),
}

/// An e-mail-only contact of the account.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactSpec {
    /// The contact's e-mail. Compared case-insensitively.
    pub email: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Notification kinds the contact receives, e.g. `invoices`, `maintenance`.
    #[serde(default)]
    pub notifications: Vec<String>,
}

/// How rolecall may change an account.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// Remove members, roles and contacts the manifests do not declare. Default true;
    /// false = additive only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<bool>,
    /// Refuse the account's plan when it would remove or revoke more than this: a count (`5`)
    /// or a percentage of current members and contacts (`"25%"`). Default "25%", never less than 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_removals: Option<MaxRemovals>,
    /// E-mail globs rolecall never touches (break-glass accounts, provider staff),
    /// e.g. `*@provider.example`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    /// Refuse members and contacts whose e-mail is outside these domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_email_domains: Option<Vec<String>>,
    /// Let rolecall revoke its own principal's `customer-admin` or `cockpit-access`. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_self_revoke: Option<bool>,
    /// Send expired invitations again. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend_expired_invitations: Option<bool>,
    /// `Apply` changes the portal; `Observe` only plans and reports. Default `Apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Kubernetes only: on deleting the object, `Orphan` leaves the portal as it is; `Revoke`
    /// removes what the object declared. Default `Orphan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// A count or a percentage (`"25%"`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum MaxRemovals {
    Count(u64),
    Text(String),
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Mode {
    /// Plan and change the portal.
    #[default]
    Apply,
    /// Plan and report only.
    Observe,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DeletionPolicy {
    /// Leave the portal as it is.
    #[default]
    Orphan,
    /// Remove what the object declared.
    Revoke,
}

/// A member declared on its own, one object per person, for delegation.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rolecall.dev",
    version = "v1alpha1",
    kind = "AccountMember",
    namespaced,
    status = "ObjectStatus",
    shortname = "rcmember",
    category = "rolecall",
    derive = "PartialEq",
    doc = "A member of a CustomerAccount declared on its own object (one file per person).",
    printcolumn(
        name = "Account",
        type_ = "string",
        json_path = ".spec.accountRef.name"
    ),
    printcolumn(name = "Email", type_ = "string", json_path = ".spec.email"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountMemberSpec {
    /// The CustomerAccount (same namespace) this member belongs to.
    pub account_ref: LocalRef,
    /// The person's e-mail; the invitation goes there. Compared case-insensitively.
    pub email: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Roles of the portal's catalog: a name, or `{name, from, until}` for a dated window.
    pub roles: Vec<RoleEntry>,
    /// Which services the member may use: `all`, `none` or a list of service ids.
    /// Omitted: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<ServiceScope>,
    /// Notification kinds the member receives. Omitted: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Vec<String>>,
}

impl AccountMemberSpec {
    /// The member as it would be declared inside its account.
    pub fn member(&self) -> MemberSpec {
        MemberSpec {
            email: self.email.clone(),
            name: self.name.clone(),
            roles: self.roles.clone(),
            services: self.services.clone(),
            notifications: self.notifications.clone(),
        }
    }
}

/// A notification contact declared on its own object.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rolecall.dev",
    version = "v1alpha1",
    kind = "NotificationContact",
    namespaced,
    status = "ObjectStatus",
    shortname = "rccontact",
    category = "rolecall",
    derive = "PartialEq",
    doc = "An e-mail-only notification contact of a CustomerAccount, declared on its own object.",
    printcolumn(
        name = "Account",
        type_ = "string",
        json_path = ".spec.accountRef.name"
    ),
    printcolumn(name = "Email", type_ = "string", json_path = ".spec.email"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationContactSpec {
    /// The CustomerAccount (same namespace) this contact belongs to.
    pub account_ref: LocalRef,
    /// The contact's e-mail. Compared case-insensitively.
    pub email: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Notification kinds the contact receives, e.g. `invoices`, `maintenance`.
    #[serde(default)]
    pub notifications: Vec<String>,
}

impl NotificationContactSpec {
    /// The contact as it would be declared inside its account.
    pub fn contact(&self) -> ContactSpec {
        ContactSpec {
            email: self.email.clone(),
            name: self.name.clone(),
            notifications: self.notifications.clone(),
        }
    }
}
