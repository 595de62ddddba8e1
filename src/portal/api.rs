//! The wire types of the portal API v1 (SPEC §4), shared by the HTTP client, the reference
//! portal's server and its embedded (`sandbox:`) form. Field names are the API's own.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Who the token belongs to (`GET /v1/whoami`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Whoami {
    pub email: Option<String>,
    pub kind: PrincipalKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A person's own login: reaches only accounts where it holds roles.
    User,
    /// The provider's own principal: may do everything.
    Operator,
}

/// The portal's role catalog and capabilities (`GET /v1/catalog`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    pub roles: Vec<CatalogRole>,
    pub notification_kinds: Vec<String>,
    pub capabilities: Capabilities,
    pub invitation_ttl_days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogRole {
    pub name: String,
    pub description: String,
    pub grants_login: bool,
    #[serde(default)]
    pub requires: Vec<String>,
    /// A role the portal assigns itself (a WHMCS client's owner): rolecall never grants,
    /// revokes or changes it, leaves a member who holds it as the portal has it, and counts a
    /// linked holder as the account's admin.
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub scheduled_revocation: bool,
    pub service_scopes: bool,
    pub create_accounts: bool,
    /// Objects carry etags and writes honour `If-Match`. Without them (WHMCS) rolecall reads,
    /// compares and writes, and a change made on the portal between plan and apply is lost.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub etags: bool,
    /// The portal keeps e-mail-only notification contacts. Without them (BILLmanager) a
    /// declared contact is refused at plan time.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub contacts: bool,
    /// Members can be subscribed to notification kinds. Without it (BILLmanager) a member's
    /// declared `notifications` are refused at plan time.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub member_notifications: bool,
    /// A member's declared `services` are refused at plan time rather than left unmanaged
    /// (BILLmanager: its API offers no way to set them).
    #[serde(default, skip_serializing_if = "is_false")]
    pub refuse_services: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            scheduled_revocation: false,
            service_scopes: false,
            create_accounts: false,
            etags: true,
            contacts: true,
            member_notifications: true,
            refuse_services: false,
        }
    }
}

/// A customer account as the portal shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub customer_number: String,
    pub display_name: String,
    pub time_zone: String,
    pub etag: String,
}

/// Body of `POST /v1/accounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewAccount {
    pub customer_number: String,
    pub display_name: String,
    pub time_zone: String,
}

/// Body of `PATCH /v1/accounts/{cn}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// One role a member holds, with its scheduled revocation date if any.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct RoleGrant {
    pub name: String,
    /// Inclusive last day (`YYYY-MM-DD`) in the account's time zone.
    #[serde(default)]
    pub until: Option<String>,
}

pub use crate::domain::Services;

// `Services` lives in the domain (no serde there), so its wire form is described here by hand.
impl JsonSchema for Services {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Services".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Which of the account's services a member may use: \"all\", \"none\" or a list of service ids.",
            "oneOf": [
                {"type": "string", "enum": ["all", "none"]},
                {"type": "array", "items": {"type": "string"}}
            ]
        })
    }
}

impl Serialize for Services {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Services::All => s.serialize_str("all"),
            Services::None => s.serialize_str("none"),
            Services::Only(ids) => ids.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Services {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(Vec<String>),
        }
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "all" => Ok(Services::All),
            Raw::Word(w) if w == "none" => Ok(Services::None),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "services must be \"all\", \"none\" or a list of service ids, not {w:?}"
            ))),
            Raw::List(ids) => Ok(Services::Only(ids)),
        }
    }
}

/// A pending or expired invitation of a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    pub id: String,
    pub status: InvitationStatus,
    /// RFC 3339 instant.
    pub sent_at: String,
    /// RFC 3339 instant.
    pub expires_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InvitationStatus {
    Pending,
    Expired,
}

/// A person linked to a customer account by roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Present in the bulk form (`GET /v1/members`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_number: Option<String>,
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    pub user_linked: bool,
    pub roles: Vec<RoleGrant>,
    #[serde(default)]
    pub services: Services,
    #[serde(default)]
    pub notifications: Vec<String>,
    #[serde(default)]
    pub invitation: Option<Invitation>,
    pub etag: String,
}

/// Body of `PUT /v1/accounts/{cn}/members/{email}`: sets the member's roles to exactly this list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberPut {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub roles: Vec<RoleGrant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Services>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Vec<String>>,
}

/// An e-mail-only entity of an account that receives notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_number: Option<String>,
    pub email: String,
    pub name: String,
    pub notifications: Vec<String>,
    pub etag: String,
}

// --- wire → domain, where a portal's answer is read (and back, for the review's hash) -------

use crate::domain::{
    AccountSettings, InvitationState, ObservedContact, ObservedInvitation, ObservedMember,
    ObservedRole, ReportedDate, ReportedInstant,
};

impl From<Account> for AccountSettings {
    fn from(a: Account) -> Self {
        AccountSettings {
            customer_number: a.customer_number,
            display_name: a.display_name,
            time_zone: a.time_zone,
            etag: a.etag,
        }
    }
}

impl From<&AccountSettings> for Account {
    fn from(a: &AccountSettings) -> Self {
        Account {
            customer_number: a.customer_number.clone(),
            display_name: a.display_name.clone(),
            time_zone: a.time_zone.clone(),
            etag: a.etag.clone(),
        }
    }
}

impl From<RoleGrant> for ObservedRole {
    fn from(r: RoleGrant) -> Self {
        ObservedRole {
            name: r.name,
            until: r.until.map(ReportedDate::from_text),
        }
    }
}

impl From<&ObservedRole> for RoleGrant {
    fn from(r: &ObservedRole) -> Self {
        RoleGrant {
            name: r.name.clone(),
            until: r.until.as_ref().map(ToString::to_string),
        }
    }
}

impl From<Invitation> for ObservedInvitation {
    fn from(i: Invitation) -> Self {
        ObservedInvitation {
            id: i.id,
            status: match i.status {
                InvitationStatus::Pending => InvitationState::Pending,
                InvitationStatus::Expired => InvitationState::Expired,
            },
            sent_at: ReportedInstant::from_text(i.sent_at),
            expires_at: ReportedInstant::from_text(i.expires_at),
        }
    }
}

impl From<&ObservedInvitation> for Invitation {
    fn from(i: &ObservedInvitation) -> Self {
        Invitation {
            id: i.id.clone(),
            status: match i.status {
                InvitationState::Pending => InvitationStatus::Pending,
                InvitationState::Expired => InvitationStatus::Expired,
            },
            sent_at: i.sent_at.text.clone(),
            expires_at: i.expires_at.text.clone(),
        }
    }
}

/// Moves the member's values (no copy); its `customerNumber` is the account it is filed under.
impl From<Member> for ObservedMember {
    fn from(m: Member) -> Self {
        ObservedMember {
            email: m.email,
            name: m.name,
            user_linked: m.user_linked,
            roles: m.roles.into_iter().map(ObservedRole::from).collect(),
            services: m.services,
            notifications: m.notifications,
            invitation: m.invitation.map(ObservedInvitation::from),
            etag: m.etag,
        }
    }
}

/// The wire form again, as the portal sent it (without `customerNumber`).
impl From<&ObservedMember> for Member {
    fn from(m: &ObservedMember) -> Self {
        Member {
            customer_number: None,
            email: m.email.clone(),
            name: m.name.clone(),
            user_linked: m.user_linked,
            roles: m.roles.iter().map(RoleGrant::from).collect(),
            services: m.services.clone(),
            notifications: m.notifications.clone(),
            invitation: m.invitation.as_ref().map(Invitation::from),
            etag: m.etag.clone(),
        }
    }
}

impl From<Contact> for ObservedContact {
    fn from(c: Contact) -> Self {
        ObservedContact {
            email: c.email,
            name: c.name,
            notifications: c.notifications,
            etag: c.etag,
        }
    }
}

impl From<&ObservedContact> for Contact {
    fn from(c: &ObservedContact) -> Self {
        Contact {
            customer_number: None,
            email: c.email.clone(),
            name: c.name.clone(),
            notifications: c.notifications.clone(),
            etag: c.etag.clone(),
        }
    }
}

/// Body of `PUT /v1/accounts/{cn}/contacts/{email}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactPut {
    pub name: String,
    pub notifications: Vec<String>,
}

/// One line of an account's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// A page of a list endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// Written first: a client can ask for the next page before it reads the items.
    pub next_cursor: Option<String>,
    pub items: Vec<T>,
}

/// Stable machine words of `application/problem+json` errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    NotFound,
    Forbidden,
    Unauthenticated,
    Invalid,
    UnknownRole,
    UnknownNotificationKind,
    VersionConflict,
    LastAdmin,
    AlreadyLinked,
    RateLimited,
    Unavailable,
    /// A code this client does not know (a newer portal).
    #[serde(other)]
    Other,
}

/// RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: ErrorCode,
    #[serde(default)]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

// --- the sandbox API of the reference portal (SPEC §5) --------------------------------------

/// Body of `POST /sandbox/tokens`: a token for a person (`email`) or for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default)]
    pub operator: bool,
}

/// Answer of `POST /sandbox/tokens`; the only time the token is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedToken {
    pub token: String,
}

/// Body of `POST /sandbox/users` and `POST /sandbox/invitations/{id}/accept`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailRequest {
    pub email: String,
}

/// A person's own login (`POST /sandbox/users`) and the customer accounts it is linked to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserAccount {
    pub email: String,
    pub created_at: String,
    /// Customer numbers of every account where a member with this e-mail is now linked.
    pub linked_accounts: Vec<String>,
}

/// Which e-mail the portal "sent".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutboxKind {
    Invitation,
    Password,
    Notification,
}

/// One e-mail of `GET /sandbox/outbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEntry {
    pub at: String,
    pub to: String,
    pub kind: OutboxKind,
    pub subject: String,
    pub customer_number: Option<String>,
}

/// Answer of `GET /sandbox/outbox`: every e-mail, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Outbox {
    pub items: Vec<OutboxEntry>,
}

/// Body of `POST /sandbox/notifications`: the provider sends a notification of one kind to
/// every contact and member of the account subscribed to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationRequest {
    pub customer_number: String,
    pub kind: String,
    pub subject: String,
}

/// Body and answer of `POST /sandbox/clock` (and answer of `GET /sandbox/clock`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClockSetting {
    /// RFC 3339 instant.
    pub now: String,
}
