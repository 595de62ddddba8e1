//! Status of the rolecall kinds as the controller reports it (SPEC §6).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Status of a Portal.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortalStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the portal answers and the token is valid.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Whom the token authenticates, as the portal's `whoami` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

/// Status of a CustomerAccount.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerAccountStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the portal matches the declaration) and `Synced` (the last reconcile ran),
    /// with reasons such as `Refused`, `PortalUnreachable`, `InvalidSpec`, `Conflict`.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Members the portal shows for the account.
    #[serde(default)]
    pub members: u32,
    /// Notification contacts the portal shows for the account.
    #[serde(default)]
    pub contacts: u32,
    /// Invitations sent and not yet accepted.
    #[serde(default)]
    pub pending_invitations: u32,
    /// Declared roles in force whose last day is within 14 days (SPEC §3a); each is
    /// announced once by a `RoleExpiringSoon` event.
    #[serde(default)]
    pub expiring_soon: u32,
    /// What the last plan held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_plan: Option<PlanSummary>,
    /// The next instant (RFC 3339) a role window opens or closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_transition: Option<String>,
    /// When the account was last reconciled (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// WHMCS portals only: the invitations rolecall sent and the person has not accepted yet.
    /// WHMCS cannot list, resend or cancel invitations, so this record is the only thing that
    /// keeps the controller from inviting the same person again on every reconcile. An entry
    /// ends when the person appears as a user of the client, or when the member is removed
    /// from the declaration. Written by the controller; if it is lost, each person still
    /// pending is invited once more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub whmcs_invitations: Vec<WhmcsInvitation>,
}

/// One invitation rolecall sent through WHMCS (`CreateClientInvite`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhmcsInvitation {
    /// The WHMCS client id the invitation is for (the customer number when it was sent).
    pub client_id: String,
    /// The invited address, as declared.
    pub email: String,
    /// The declared display name, kept so that the next plan sees it already applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The permissions the invitation grants; rolecall sets the declared ones once the
    /// person has joined.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// When it was sent (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub sent_at: String,
    /// When WHMCS stops accepting it, 7 days after sending (RFC 3339); after that rolecall
    /// invites again when `policy.resendExpiredInvitations` is true.
    #[schemars(extend("format" = "date-time"))]
    pub expires_at: String,
}

/// Counts of a plan's changes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    /// Additions and grants.
    #[serde(default)]
    pub add: u32,
    /// Changes to existing members, contacts and the account.
    #[serde(default)]
    pub change: u32,
    /// Revocations and removals.
    #[serde(default)]
    pub remove: u32,
    /// Invitations sent or sent again.
    #[serde(default)]
    pub invite: u32,
    /// Whether a safety rule refused the plan.
    #[serde(default)]
    pub refused: bool,
}

/// Status of an AccountMember or a NotificationContact.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the object's account has applied it.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
