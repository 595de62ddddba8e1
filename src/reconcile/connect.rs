//! Choosing the portal implementation from a URL: `http(s)://` is the portal API over HTTP,
//! `sandbox:FILE` the embedded reference portal, `whmcs+https://` a WHMCS installation,
//! `billmgr+https://` a BILLmanager.

use std::sync::Arc;

use super::ClockError;
use crate::portal::billmgr::{BillmgrOptions, BillmgrPortal};
use crate::portal::http::{HttpOptions, HttpPortal, HttpSetupError, Token, TokenError};
use crate::portal::whmcs::{
    Credentials, FileInvitations, InvitationStore, WhmcsOptions, WhmcsPortal,
};
use crate::portal::*;
use crate::reference::sandbox::{SandboxError, SandboxPortal, SandboxUrl};

/// Every portal implementation rolecall can talk to.
pub enum AnyPortal {
    Http(Box<HttpPortal>),
    Sandbox(SandboxPortal),
    Whmcs(Box<WhmcsPortal>),
    Billmgr(Box<BillmgrPortal>),
}

/// The environment variables that hold the WHMCS API credentials (CLI).
pub const WHMCS_IDENTIFIER_ENV: &str = "ROLECALL_WHMCS_IDENTIFIER";
pub const WHMCS_SECRET_ENV: &str = "ROLECALL_WHMCS_SECRET";
pub const WHMCS_ACCESSKEY_ENV: &str = "ROLECALL_WHMCS_ACCESSKEY";
/// The environment variables that hold the BILLmanager login (CLI).
pub const BILLMGR_USERNAME_ENV: &str = "ROLECALL_BILLMGR_USERNAME";
pub const BILLMGR_PASSWORD_ENV: &str = "ROLECALL_BILLMGR_PASSWORD";
/// Where the CLI keeps the record of WHMCS invitations unless told otherwise.
pub const DEFAULT_WHMCS_STATE: &str = ".rolecall/whmcs-invitations.json";

/// What only some adapters need.
#[derive(Clone)]
pub struct AdapterSettings {
    /// Where sent WHMCS invitations are recorded.
    pub whmcs_invitations: Arc<dyn InvitationStore>,
    /// Requests per second at most, for portals that document no limit (WHMCS).
    pub rate_limit: Option<f64>,
}

impl Default for AdapterSettings {
    fn default() -> Self {
        AdapterSettings {
            whmcs_invitations: Arc::new(FileInvitations::new(DEFAULT_WHMCS_STATE)),
            rate_limit: None,
        }
    }
}

/// Why no adapter could be made for a portal URL. Each Display is the sentence without its
/// cause; the cause follows as the [`std::error::Error::source`] (`cli::chain` prints
/// `sentence: cause`, [`ConnectError::with_causes`] gives the same line). No variant holds a
/// secret: URLs are shown without userinfo, variables by name.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the environment variable {var} is not valid text")]
    NotText { var: &'static str },
    #[error(
        "no WHMCS API credentials: set {WHMCS_IDENTIFIER_ENV} and {WHMCS_SECRET_ENV} (and {WHMCS_ACCESSKEY_ENV} where the installation needs an access key)"
    )]
    NoWhmcsCredentials,
    #[error("no BILLmanager login: set {BILLMGR_USERNAME_ENV} and {BILLMGR_PASSWORD_ENV}")]
    NoBillmgrLogin,
    /// The credentials are there but not usable (the adapter's sentence).
    #[error("{0}")]
    Credentials(String),
    /// The credentials in the environment are missing or unusable, for the portal `shown`.
    #[error("{shown}")]
    Environment {
        shown: String,
        #[source]
        source: Box<ConnectError>,
    },
    #[error("{shown}: a BILLmanager portal URL is billmgr+https://host:1500/billmgr")]
    NotBillmgrUrl { shown: String },
    #[error("{shown}: a WHMCS portal URL is whmcs+https://host/path/")]
    NotWhmcsUrl { shown: String },
    /// The adapter cannot be set up for the portal `shown` (URL, CA file, HTTP client).
    #[error("{shown}")]
    Setup {
        shown: String,
        #[source]
        source: HttpSetupError,
    },
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// A `sandbox:` URL that names no file.
    #[error(transparent)]
    SandboxUrl(#[from] SandboxError),
    #[error("{shown}: the embedded portal cannot be opened")]
    Sandbox {
        shown: String,
        #[source]
        source: SandboxError,
    },
    #[error(
        "{shown}: no token: set the environment variable {token_env} to the portal's API token"
    )]
    NoToken { shown: String, token_env: String },
    #[error("{shown}")]
    Token {
        shown: String,
        #[source]
        source: TokenError,
    },
    #[error(
        "{shown} is not a portal URL: use https://host/…, http://host/…, sandbox:FILE, whmcs+https://host/… or billmgr+https://host:1500/billmgr"
    )]
    NotAPortalUrl { shown: String },
}

impl ConnectError {
    /// The sentence and its causes as one line, for a message kept as text (a condition).
    pub fn with_causes(&self) -> String {
        crate::reference::store::with_causes(self)
    }
}

/// Connects to the portal at `url`; for HTTP the token comes from the environment variable
/// `token_env` and never from anywhere a shell history or a manifest would keep it.
pub fn connect(url: &str, token_env: &str) -> Result<AnyPortal, ConnectError> {
    connect_with(url, token_env, HttpOptions::default())
}

pub fn connect_with(
    url: &str,
    token_env: &str,
    options: HttpOptions,
) -> Result<AnyPortal, ConnectError> {
    connect_adapter(url, token_env, options, AdapterSettings::default())
}

/// The value of the environment variable `var`, `None` when unset or blank (`trim`: only
/// white space counts as blank).
fn env_value(var: &'static str, trim: bool) -> Result<Option<String>, ConnectError> {
    match std::env::var(var) {
        Ok(v) if !(if trim { v.trim() } else { v.as_str() }).is_empty() => Ok(Some(v)),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConnectError::NotText { var }),
    }
}

/// The WHMCS credentials from `ROLECALL_WHMCS_IDENTIFIER`, `ROLECALL_WHMCS_SECRET` and the
/// optional `ROLECALL_WHMCS_ACCESSKEY`. Errors name the variables, never their values.
pub fn whmcs_credentials_from_env() -> Result<Credentials, ConnectError> {
    let read = |var| env_value(var, true);
    let (Some(identifier), Some(secret)) = (read(WHMCS_IDENTIFIER_ENV)?, read(WHMCS_SECRET_ENV)?)
    else {
        return Err(ConnectError::NoWhmcsCredentials);
    };
    let accesskey = read(WHMCS_ACCESSKEY_ENV)?;
    Credentials::new(
        &identifier,
        &secret,
        accesskey.as_deref(),
        &format!("{WHMCS_IDENTIFIER_ENV} / {WHMCS_SECRET_ENV} / {WHMCS_ACCESSKEY_ENV}"),
    )
    .map_err(|e| ConnectError::Credentials(e.to_string()))
}

/// The BILLmanager login from `ROLECALL_BILLMGR_USERNAME` and `ROLECALL_BILLMGR_PASSWORD`.
/// Errors name the variables, never their values.
pub fn billmgr_credentials_from_env() -> Result<crate::portal::billmgr::Credentials, ConnectError> {
    let read = |var| env_value(var, false);
    let (Some(username), Some(password)) =
        (read(BILLMGR_USERNAME_ENV)?, read(BILLMGR_PASSWORD_ENV)?)
    else {
        return Err(ConnectError::NoBillmgrLogin);
    };
    crate::portal::billmgr::Credentials::new(
        &username,
        &password,
        &format!("{BILLMGR_USERNAME_ENV} / {BILLMGR_PASSWORD_ENV}"),
    )
    .map_err(|e| ConnectError::Credentials(e.to_string()))
}

/// Connects to the BILLmanager at `url` (`billmgr+https://host:1500/billmgr`) with a login
/// from wherever the caller keeps it (the controller: a Secret).
pub fn connect_billmgr(
    url: &str,
    credentials: crate::portal::billmgr::Credentials,
    options: BillmgrOptions,
) -> Result<AnyPortal, ConnectError> {
    let base = url
        .strip_prefix("billmgr+")
        .filter(|b| b.starts_with("https://") || b.starts_with("http://"))
        .ok_or_else(|| ConnectError::NotBillmgrUrl {
            shown: crate::manifest::quote_short(url),
        })?;
    BillmgrPortal::new(base, credentials, options)
        .map(|p| AnyPortal::Billmgr(Box::new(p)))
        .map_err(|source| ConnectError::Setup {
            shown: crate::manifest::quote_short(url),
            source,
        })
}

/// Connects to the WHMCS installation at `url` (`whmcs+https://host/path/`) with credentials
/// and an invitation record from wherever the caller keeps them (the controller: a Secret and
/// the CustomerAccount's status).
pub fn connect_whmcs(
    url: &str,
    credentials: Credentials,
    invitations: Arc<dyn InvitationStore>,
    options: WhmcsOptions,
) -> Result<AnyPortal, ConnectError> {
    // Userinfo never reaches an error message.
    let shown = crate::domain::text::redact_url(url);
    let base = url
        .strip_prefix("whmcs+")
        .filter(|b| b.starts_with("https://") || b.starts_with("http://"))
        .ok_or_else(|| ConnectError::NotWhmcsUrl {
            shown: crate::manifest::quote_short(&shown),
        })?;
    WhmcsPortal::new(base, credentials, invitations, options)
        .map(|p| AnyPortal::Whmcs(Box::new(p)))
        .map_err(|source| ConnectError::Setup {
            shown: shown.to_string(),
            source,
        })
}

pub fn connect_adapter(
    url: &str,
    token_env: &str,
    options: HttpOptions,
    settings: AdapterSettings,
) -> Result<AnyPortal, ConnectError> {
    // Userinfo never reaches an error message.
    let shown = crate::domain::text::redact_url(url);
    if url.starts_with("whmcs+") {
        let credentials = whmcs_credentials_from_env().map_err(|e| ConnectError::Environment {
            shown: shown.to_string(),
            source: Box::new(e),
        })?;
        let options = WhmcsOptions {
            http: options,
            rate_limit: settings.rate_limit,
            now: Some(crate::reconcile::now()?),
            ..WhmcsOptions::default()
        };
        return connect_whmcs(url, credentials, settings.whmcs_invitations, options);
    }
    if url.starts_with("billmgr+") {
        let credentials =
            billmgr_credentials_from_env().map_err(|e| ConnectError::Environment {
                shown: shown.to_string(),
                source: Box::new(e),
            })?;
        let options = BillmgrOptions {
            http: options,
            now: Some(crate::reconcile::now()?),
        };
        return connect_billmgr(url, credentials, options);
    }
    if url.starts_with("sandbox:") {
        let sandbox = SandboxUrl::parse(url)?;
        let now = crate::reconcile::now()?;
        return SandboxPortal::open(&sandbox.path, Some(now))
            .map(AnyPortal::Sandbox)
            .map_err(|source| ConnectError::Sandbox {
                shown: shown.to_string(),
                source,
            });
    }
    if is_http(url) {
        if std::env::var(token_env).map_or(true, |t| t.trim().is_empty()) {
            return Err(ConnectError::NoToken {
                shown: shown.to_string(),
                token_env: token_env.to_string(),
            });
        }
        let token = Token::from_env(token_env).map_err(|source| ConnectError::Token {
            shown: shown.to_string(),
            source,
        })?;
        return connect_token(url, token, options);
    }
    Err(not_a_portal_url(url))
}

/// Connects to the portal at `url` with a token already in hand (the controller reads it from
/// a Secret). `sandbox:` URLs need no token.
pub fn connect_token(
    url: &str,
    token: Token,
    options: HttpOptions,
) -> Result<AnyPortal, ConnectError> {
    // Userinfo never reaches an error message.
    let shown = crate::domain::text::redact_url(url);
    if url.starts_with("sandbox:") {
        return connect_with(url, "", options);
    }
    if !is_http(url) {
        return Err(not_a_portal_url(url));
    }
    HttpPortal::new(url, token, options)
        .map(|p| AnyPortal::Http(Box::new(p)))
        .map_err(|source| ConnectError::Setup {
            shown: shown.to_string(),
            source,
        })
}

fn is_http(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

fn not_a_portal_url(url: &str) -> ConnectError {
    ConnectError::NotAPortalUrl {
        shown: crate::manifest::quote_short(&crate::domain::text::redact_url(url)),
    }
}

macro_rules! both {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            AnyPortal::Http($p) => $e.await,
            AnyPortal::Sandbox($p) => $e.await,
            AnyPortal::Whmcs($p) => $e.await,
            AnyPortal::Billmgr($p) => $e.await,
        }
    };
}

impl Portal for AnyPortal {
    fn bind_accounts(&self, customer_numbers: &[String]) {
        if let AnyPortal::Billmgr(p) = self {
            p.bind_accounts(customer_numbers);
        }
    }
    async fn whoami(&self) -> PortalResult<Whoami> {
        both!(self, p => p.whoami())
    }
    async fn catalog(&self) -> PortalResult<Catalog> {
        both!(self, p => p.catalog())
    }
    async fn list_accounts(&self) -> PortalResult<Vec<Account>> {
        both!(self, p => p.list_accounts())
    }
    async fn get_account(&self, cn: &str) -> PortalResult<Account> {
        both!(self, p => p.get_account(cn))
    }
    async fn create_account(&self, account: &NewAccount, key: &str) -> PortalResult<Account> {
        both!(self, p => p.create_account(account, key))
    }
    async fn update_account(
        &self,
        cn: &str,
        patch: &AccountPatch,
        if_match: Option<&str>,
    ) -> PortalResult<Account> {
        both!(self, p => p.update_account(cn, patch, if_match))
    }
    async fn list_members(&self, accounts: &AccountFilter) -> PortalResult<Vec<Member>> {
        both!(self, p => p.list_members(accounts))
    }
    async fn list_members_by_page<F: FnMut(Vec<Member>) + Send>(
        &self,
        accounts: &AccountFilter,
        on_page: F,
    ) -> PortalResult<()> {
        both!(self, p => p.list_members_by_page(accounts, on_page))
    }
    async fn put_member(
        &self,
        cn: &str,
        email: &str,
        member: &MemberPut,
        if_match: Option<&str>,
    ) -> PortalResult<Member> {
        both!(self, p => p.put_member(cn, email, member, if_match))
    }
    async fn delete_member(
        &self,
        cn: &str,
        email: &str,
        if_match: Option<&str>,
    ) -> PortalResult<()> {
        both!(self, p => p.delete_member(cn, email, if_match))
    }
    async fn invite(
        &self,
        cn: &str,
        email: &str,
        resend: bool,
        key: &str,
    ) -> PortalResult<Invitation> {
        both!(self, p => p.invite(cn, email, resend, key))
    }
    async fn cancel_invitation(&self, cn: &str, email: &str) -> PortalResult<()> {
        both!(self, p => p.cancel_invitation(cn, email))
    }
    async fn list_contacts(&self, accounts: &AccountFilter) -> PortalResult<Vec<Contact>> {
        both!(self, p => p.list_contacts(accounts))
    }
    async fn list_contacts_by_page<F: FnMut(Vec<Contact>) + Send>(
        &self,
        accounts: &AccountFilter,
        on_page: F,
    ) -> PortalResult<()> {
        both!(self, p => p.list_contacts_by_page(accounts, on_page))
    }
    async fn put_contact(
        &self,
        cn: &str,
        email: &str,
        contact: &ContactPut,
        if_match: Option<&str>,
    ) -> PortalResult<Contact> {
        both!(self, p => p.put_contact(cn, email, contact, if_match))
    }
    async fn delete_contact(
        &self,
        cn: &str,
        email: &str,
        if_match: Option<&str>,
    ) -> PortalResult<()> {
        both!(self, p => p.delete_contact(cn, email, if_match))
    }
    async fn audit(&self, cn: &str) -> PortalResult<Vec<AuditEntry>> {
        both!(self, p => p.audit(cn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(url: &str) -> ConnectError {
        match connect_token(
            url,
            Token::new("t", "test").unwrap(),
            HttpOptions::default(),
        ) {
            Ok(_) => panic!("{url} connected"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_errors_read_as_before_with_their_causes_after_them() {
        // The sentences the command line printed when these were strings.
        assert_eq!(
            refusal("sandbox:").with_causes(),
            "sandbox: needs a file, for example sandbox:.rolecall/sandbox.db"
        );
        let e = refusal("sandbox://");
        assert_eq!(
            e.to_string(),
            "sandbox://: the embedded portal cannot be opened"
        );
        assert_eq!(
            e.with_causes(),
            "sandbox://: the embedded portal cannot be opened: cannot open the portal store //: unable to open database file: //"
        );
        assert_eq!(
            refusal("ftp://u:p@host/").with_causes(),
            "\"ftp://(redacted)@host/\" is not a portal URL: use https://host/…, http://host/…, sandbox:FILE, whmcs+https://host/… or billmgr+https://host:1500/billmgr"
        );
        let e = connect_billmgr(
            "billmgr+ftp://host",
            crate::portal::billmgr::Credentials::new("u", "p", "test").unwrap(),
            BillmgrOptions::default(),
        )
        .err()
        .map(|e| e.with_causes());
        assert_eq!(
            e.as_deref(),
            Some(
                "\"billmgr+ftp://host\": a BILLmanager portal URL is billmgr+https://host:1500/billmgr"
            )
        );
    }
}
