//! From a Portal object to a connected portal: the Portal an account names, its Secret and the adapter its URL selects.

use super::*;

/// The portal the account names, or the only one of its namespace.
pub(super) fn portal_of<'a>(
    obj: &CustomerAccount,
    portals: &'a [Arc<Portal>],
) -> Result<&'a Arc<Portal>, Error> {
    match &obj.spec.portal_ref {
        Some(r) => portals
            .iter()
            .find(|p| p.name_any() == r.name)
            .ok_or_else(|| {
                Error::reconcile(
                    "InvalidSpec",
                    format!(
                        "spec.portalRef.name: no Portal {:?} in this namespace",
                        r.name
                    ),
                )
            }),
        None => match portals {
            [p] => Ok(p),
            [] => Err(Error::reconcile(
                "InvalidSpec",
                "spec.portalRef: no Portal is declared in this namespace; declare one or name it",
            )),
            _ => Err(Error::reconcile(
                "InvalidSpec",
                format!(
                    "spec.portalRef: {} Portals are declared in this namespace; name one",
                    portals.len()
                ),
            )),
        },
    }
}

/// Another CustomerAccount that claims the same customer number on the same portal URL and
/// was there first (older, then by namespace and name): this one must not touch the account.
pub(super) fn claimed_elsewhere(ctx: &Context, obj: &CustomerAccount, url: &str) -> Option<String> {
    let rank = |a: &CustomerAccount| {
        (
            a.metadata.creation_timestamp.as_ref().map(|t| t.0),
            a.namespace(),
            a.name_any(),
        )
    };
    let mine = rank(obj);
    ctx.accounts
        .state()
        .into_iter()
        .filter(|other| {
            // A BILLmanager portal serves one client account, whatever its customer number.
            (other.spec.customer_number == obj.spec.customer_number || billmgr::is_billmgr(url))
                && other.metadata.uid != obj.metadata.uid
                && other.metadata.deletion_timestamp.is_none()
        })
        .filter(|other| {
            let ns = other.namespace().unwrap_or_default();
            let portals = portals_in(ctx, &ns);
            portal_of(other, &portals).is_ok_and(|p| p.spec.url == url)
        })
        .filter(|other| rank(other) < mine)
        .map(|other| key_of(other.as_ref()))
        .min()
}

/// The Secret the Portal names, in the Portal's own namespace, with the reference.
pub(super) async fn secret_of<'a>(
    ctx: &Context,
    portal: &'a Portal,
) -> Result<Option<(Secret, &'a SecretKeyRef)>, Error> {
    let Some(r) = &portal.spec.token_secret_ref else {
        return Ok(None);
    };
    let namespace = portal.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret = match secrets.get_opt(&r.name).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(Error::reconcile(
                "SecretNotFound",
                format!(
                    "Portal {:?}: the Secret {:?} named by spec.tokenSecretRef does not exist",
                    portal.name_any(),
                    r.name
                ),
            ));
        }
        Err(kube::Error::Api(e)) if e.code == 403 => {
            return Err(Error::reconcile(
                "Unauthorized",
                format!(
                    "Portal {:?}: the controller may not read the Secret {:?}",
                    portal.name_any(),
                    r.name
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Some((secret, r)))
}

/// The Portal's token from the Secret it names (as [`secret_of`] read it).
pub(super) fn token_in(
    portal: &Portal,
    secret: Option<(Secret, &SecretKeyRef)>,
) -> Result<Option<Token>, Error> {
    let Some((secret, r)) = secret else {
        return Ok(None);
    };
    let namespace = portal.namespace().unwrap_or_default();
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .map(|b| b.0.clone())
        .ok_or_else(|| {
            Error::reconcile(
                "SecretNotFound",
                format!("the Secret {:?} has no key {:?}", r.name, r.key),
            )
        })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::reconcile(
            "InvalidSpec",
            format!("the Secret {:?} key {:?} is not UTF-8 text", r.name, r.key),
        )
    })?;
    let source = format!("Secret {}/{} key {}", namespace, r.name, r.key);
    Token::new(text, &source)
        .map(Some)
        .map_err(|e| Error::reconcile("InvalidSpec", e.to_string()))
}

/// The account's connection to its Portal: shared with the other accounts of the Portal for up
/// to a minute (`controller::connections`) where the adapter holds nothing of one account —
/// the portal API over HTTP and `sandbox:`. A WHMCS adapter carries the account's own
/// invitation record and a BILLmanager one serves one account, so those connect each time.
/// The Secret is read every time, as before: its resourceVersion is part of the key, so a
/// rotated token is used at once.
pub(super) async fn shared_connection(
    ctx: &Context,
    portal: &Portal,
    invitations: Arc<dyn InvitationStore>,
    now: Timestamp,
) -> Result<Arc<Connected>, Error> {
    let url = &portal.spec.url;
    if whmcs::is_whmcs(url) || billmgr::is_billmgr(url) {
        return connect(ctx, portal, invitations, now).await.map(Arc::new);
    }
    let secret = secret_of(ctx, portal).await?;
    let key = ConnectionKey {
        portal_uid: portal.metadata.uid.clone().unwrap_or_default(),
        generation: portal.metadata.generation,
        url: url.clone(),
        secret_version: secret
            .as_ref()
            .and_then(|(s, _)| s.metadata.resource_version.clone()),
    };
    // The age counts from before the portal is asked, so an entry never outlives its answers
    // by more than the maximum age.
    let made = Instant::now();
    if let Some(connected) = ctx.connections.get(&key, made) {
        return Ok(connected);
    }
    let any = http_portal(portal, secret, http_options(ctx))?;
    let connected = Arc::new(facts(any, url).await?);
    ctx.connections.insert(key, connected.clone(), made);
    Ok(connected)
}

/// How the controller talks HTTP to a portal.
fn http_options(ctx: &Context) -> HttpOptions {
    let metrics = ctx.metrics.clone();
    HttpOptions {
        ca_file: ctx.config.ca_file.clone(),
        // The controller retries the whole reconcile with backoff; a long retry chain inside
        // one request would only hold a worker.
        max_retries: 3,
        on_answer: AnswerHook::new(move |status| metrics.portal_answer(status)),
        ..Default::default()
    }
}

/// Who the token is and the catalog, read from a new adapter.
async fn facts(any: AnyPortal, url: &str) -> Result<Connected, Error> {
    let principal = any
        .whoami()
        .await
        .map_err(|e| portal_error(url, "whoami", &e))?;
    let catalog = any
        .catalog()
        .await
        .map_err(|e| portal_error(url, "reading the catalog", &e))?;
    Ok(Connected {
        portal: any,
        principal,
        catalog,
    })
}

/// Connects to the Portal and reads who the token is and the catalog, every time (the Portal's
/// own reconcile, which checks exactly that, and an account's deletion). A WHMCS adapter keeps
/// its invitation record in `invitations`.
pub(super) async fn connect(
    ctx: &Context,
    portal: &Portal,
    invitations: Arc<dyn InvitationStore>,
    now: Timestamp,
) -> Result<Connected, Error> {
    let url = &portal.spec.url;
    let options = http_options(ctx);
    let any = if whmcs::is_whmcs(url) {
        connect_whmcs_portal(ctx, portal, invitations, options, now).await?
    } else if billmgr::is_billmgr(url) {
        connect_billmgr_portal(ctx, portal, options, now).await?
    } else {
        http_portal(portal, secret_of(ctx, portal).await?, options)?
    };
    facts(any, url).await
}

/// A WHMCS installation, with the credentials from the Portal's Secret (layout in
/// `controller::whmcs`).
pub(super) async fn connect_whmcs_portal(
    ctx: &Context,
    portal: &Portal,
    invitations: Arc<dyn InvitationStore>,
    http: HttpOptions,
    now: Timestamp,
) -> Result<AnyPortal, Error> {
    let url = &portal.spec.url;
    whmcs::check_transport(url).map_err(|e| Error::reconcile("InvalidSpec", e.to_string()))?;
    let Some((secret, r)) = secret_of(ctx, portal).await? else {
        return Err(Error::reconcile(
            "InvalidSpec",
            format!(
                "Portal {:?}: spec.tokenSecretRef is required for the controller: a Secret with the WHMCS API identifier and secret",
                portal.name_any()
            ),
        ));
    };
    let credentials = whmcs::credentials(&secret, r, &portal.namespace().unwrap_or_default())
        .map_err(|e| {
            Error::reconcile(
                "InvalidSpec",
                format!("Portal {:?}: {e}", portal.name_any()),
            )
        })?;
    let options = WhmcsOptions {
        http,
        now: Some(now),
        ..WhmcsOptions::default()
    };
    connect_whmcs(url, credentials, invitations, options)
        .map_err(|e| Error::reconcile("InvalidSpec", e.with_causes()))
}

/// A BILLmanager, with the login from the Portal's Secret (layout in `controller::billmgr`).
pub(super) async fn connect_billmgr_portal(
    ctx: &Context,
    portal: &Portal,
    http: HttpOptions,
    now: Timestamp,
) -> Result<AnyPortal, Error> {
    let url = &portal.spec.url;
    billmgr::check_transport(url).map_err(|e| Error::reconcile("InvalidSpec", e.to_string()))?;
    let Some((secret, r)) = secret_of(ctx, portal).await? else {
        return Err(Error::reconcile(
            "InvalidSpec",
            format!(
                "Portal {:?}: spec.tokenSecretRef is required for the controller: a Secret with the BILLmanager username and password",
                portal.name_any()
            ),
        ));
    };
    let credentials = billmgr::credentials(&secret, r, &portal.namespace().unwrap_or_default())
        .map_err(|e| {
            Error::reconcile(
                "InvalidSpec",
                format!("Portal {:?}: {e}", portal.name_any()),
            )
        })?;
    let options = crate::portal::billmgr::BillmgrOptions {
        http,
        now: Some(now),
    };
    crate::reconcile::connect::connect_billmgr(url, credentials, options)
        .map_err(|e| Error::reconcile("InvalidSpec", e.with_causes()))
}

/// A portal API (or the sandbox), with the token from the Portal's Secret.
pub(super) fn http_portal(
    portal: &Portal,
    secret: Option<(Secret, &SecretKeyRef)>,
    options: HttpOptions,
) -> Result<AnyPortal, Error> {
    let url = portal.spec.url.clone();
    let token = match token_in(portal, secret)? {
        Some(t) => t,
        None if url.starts_with("sandbox:") => Token::new("sandbox", "sandbox")
            .map_err(|e| Error::reconcile("InvalidSpec", e.to_string()))?,
        None => {
            return Err(Error::reconcile(
                "InvalidSpec",
                format!(
                    "Portal {:?}: spec.tokenSecretRef is required for the controller",
                    portal.name_any()
                ),
            ));
        }
    };
    connect_token(&url, token, options)
        .map_err(|e| Error::reconcile("PortalUnreachable", e.with_causes()))
}

pub(super) fn reason_of(cause: FailureCause) -> &'static str {
    match cause {
        FailureCause::Conflict => "Conflict",
        FailureCause::Unauthorized => "Unauthorized",
        FailureCause::Unreachable => "PortalUnreachable",
        FailureCause::Rejected => "ApplyFailed",
    }
}

pub(super) fn portal_error(url: &str, what: &str, e: &crate::portal::PortalError) -> Error {
    Error::reconcile(
        reason_of(FailureCause::of(e)),
        format!("{}: {what}: {e}", crate::domain::text::redact_url(url)),
    )
}
