//! `rolecall export`: the portal's state as manifests, one file per account; fed back to
//! `plan`, they yield "No changes".

use std::path::Path;
use std::process::ExitCode;

use super::PortalArgs;
use super::reconcile::{self, DEFAULT_PORTAL, DEFAULT_TOKEN_ENV};
use crate::model::{API_VERSION, PortalSpec};
use crate::portal::Portal;
use crate::render::manifests::{Doc, Meta, account_yaml, object_name, observed_spec};

pub async fn run(portal: &PortalArgs, accounts: &[String], out_dir: Option<&Path>) -> ExitCode {
    match export(portal, accounts, out_dir).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("{msg}");
            ExitCode::from(1)
        }
    }
}

async fn export(args: &PortalArgs, only: &[String], out_dir: Option<&Path>) -> Result<(), String> {
    let url = args
        .portal
        .clone()
        .unwrap_or_else(|| DEFAULT_PORTAL.to_string());
    let portal = reconcile::connect(&url, DEFAULT_TOKEN_ENV, args)?;
    let facts = reconcile::facts(&portal, &url).await?;
    // A BILLmanager portal learns its one account's customer number from `--account`.
    portal.bind_accounts(only);
    let visible = portal
        .list_accounts()
        .await
        .map_err(|e| format!("{url}: cannot list the accounts: {e}"))?;
    for cn in only {
        if !visible.iter().any(|a| &a.customer_number == cn) {
            return Err(format!(
                "--account {cn}: the portal has no account {cn:?} this token can reach"
            ));
        }
    }
    let cns: Vec<String> = visible
        .iter()
        .map(|a| a.customer_number.clone())
        .filter(|cn| only.is_empty() || only.contains(cn))
        .collect();
    let observed = crate::apply::observe(&portal, &cns)
        .await
        .map_err(|e| format!("{url}: cannot read the accounts: {e}"))?;

    let portal_doc = Doc {
        api_version: API_VERSION,
        kind: "Portal",
        metadata: Meta {
            name: "main".into(),
        },
        spec: PortalSpec {
            url: url.clone(),
            token_secret_ref: None,
            token_env: None,
        },
    };
    let portal_yaml = serde_saphyr::to_string(&portal_doc).unwrap_or_default();
    let mut files: Vec<(String, String)> = vec![("portal.yaml".into(), portal_yaml)];
    for (cn, o) in &observed {
        let Some(account) = &o.account else { continue };
        let name = object_name(cn);
        let yaml = account_yaml(
            &name,
            &observed_spec(account, o, facts.catalog.capabilities.service_scopes),
        );
        files.push((format!("{name}.yaml"), yaml));
    }
    match out_dir {
        None => {
            for (_, yaml) in &files {
                print!("---\n{yaml}");
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("{}: the directory cannot be created: {e}", dir.display()))?;
            for (file, yaml) in &files {
                let path = dir.join(file);
                std::fs::write(&path, yaml)
                    .map_err(|e| format!("{}: cannot be written: {e}", path.display()))?;
            }
            eprintln!(
                "exported {} {} to {}",
                files.len() - 1,
                if files.len() == 2 {
                    "account"
                } else {
                    "accounts"
                },
                dir.display()
            );
        }
    }
    Ok(())
}
