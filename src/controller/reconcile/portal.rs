//! The reconcile of a Portal: `whoami` → `Ready`.

use super::*;

/// The reconcile of a Portal: `Ready` when it answers and the token is accepted.
pub async fn portal(obj: Arc<Portal>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<Portal> = Api::namespaced(ctx.client.clone(), &namespace);
    let generation = obj.metadata.generation;
    let previous = obj
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let now =
        crate::reconcile::now().map_err(|e| Error::reconcile("InvalidClock", e.to_string()))?;
    // Checking the credentials sends no invitation: a record of its own, thrown away.
    let scratch: Arc<dyn InvitationStore> = Arc::new(MemoryInvitations::default());
    let (status, requeue) = match connect(&ctx, &obj, scratch, now).await {
        Ok(c) => {
            let who = c
                .principal
                .email
                .clone()
                .unwrap_or_else(|| format!("{:?}", c.principal.kind).to_lowercase());
            let message = if whmcs::is_whmcs(&obj.spec.url) {
                "WHMCS answers; the API credentials are accepted".to_string()
            } else {
                format!("the portal answers; the token authenticates {who}")
            };
            (
                PortalStatus {
                    observed_generation: generation,
                    conditions: vec![condition(
                        previous,
                        "Ready",
                        true,
                        "Authenticated",
                        message,
                        generation,
                    )],
                    principal: Some(who),
                },
                ctx.config.resync,
            )
        }
        Err(e) => {
            let reason = match &e {
                Error::Reconcile { reason, .. } => *reason,
                _ => "PortalUnreachable",
            };
            publish(
                &ctx,
                obj.as_ref(),
                EventType::Warning,
                reason,
                "Connect",
                crate::controller::status::truncate(e.to_string(), 1000),
            )
            .await;
            (
                PortalStatus {
                    observed_generation: generation,
                    conditions: vec![condition(
                        previous,
                        "Ready",
                        false,
                        reason,
                        e.to_string(),
                        generation,
                    )],
                    principal: None,
                },
                ctx.backoff(&key_of(obj.as_ref())),
            )
        }
    };
    if status
        .conditions
        .first()
        .is_some_and(|c| c.status == "True")
    {
        ctx.succeeded(&key_of(obj.as_ref()));
    }
    apply_status(&api, obj.as_ref(), &status).await?;
    Ok(Requeue::requeue(requeue))
}

pub fn portal_retry(obj: Arc<Portal>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let key = key_of(obj.as_ref());
    tracing::warn!(portal = %key, error = %error, "portal reconcile failed");
    Requeue::requeue(ctx.backoff(&key))
}
