//! `rolecall diff`: a unified YAML diff per account, observed (portal) vs desired (manifests).

use std::process::ExitCode;

use super::{FileArgs, PortalArgs};
use crate::domain::text::printable;
use crate::reconcile::{self, Error};
use crate::render::manifests::{account_yaml, desired_spec, object_name, observed_spec};

pub async fn run(files: &FileArgs, portal: &PortalArgs) -> ExitCode {
    match diff(files, portal).await {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => super::fail(&e),
    }
}

async fn diff(files: &FileArgs, portal: &PortalArgs) -> Result<String, Error> {
    let (desired, now, _) = super::plan::load(&files.files, true)?;
    let targets = reconcile::targets(desired, portal.portal.as_deref(), &[])?;
    let options = portal.connect_options();
    let mut out = String::new();
    for target in targets {
        let portal = reconcile::connect(&target.url, &target.token_env, &options)?;
        let facts = reconcile::facts(&portal, &target.url).await?;
        let cns: Vec<String> = target
            .accounts
            .iter()
            .map(|a| a.customer_number.clone())
            .collect();
        let observed =
            reconcile::observe(&portal, &cns)
                .await
                .map_err(|source| Error::Observe {
                    url: target.shown(),
                    source,
                })?;
        let caps = facts.catalog.capabilities;
        let mut accounts = target.accounts.clone();
        accounts.sort_by(|a, b| a.customer_number.cmp(&b.customer_number));
        for d in &accounts {
            let o = observed
                .get(&d.customer_number)
                .cloned()
                .unwrap_or_default();
            let name = object_name(&d.customer_number);
            let before = match &o.account {
                Some(a) => account_yaml(&name, &observed_spec(a, &o, caps.service_scopes)),
                None => String::new(),
            };
            let after = account_yaml(
                &name,
                &desired_spec(d, &o, now, caps.scheduled_revocation, caps.service_scopes),
            );
            if before == after {
                continue;
            }
            let diff = similar::TextDiff::from_lines(&before, &after);
            out.push_str(
                &diff
                    .unified_diff()
                    .context_radius(3)
                    .header(
                        &format!("observed/{}", printable(&d.customer_number)),
                        &format!("desired/{}", printable(&d.customer_number)),
                    )
                    .to_string(),
            );
        }
    }
    Ok(out)
}
