//! `rolecall export`: the portal's state as manifests, one file per account; fed back to
//! `plan`, they yield "No changes".

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use super::PortalArgs;
use crate::model::{API_VERSION, Policy, PortalSpec};
use crate::portal::Portal;
use crate::reconcile::{self, DEFAULT_PORTAL, DEFAULT_TOKEN_ENV};
use crate::render::manifests::{
    Doc, Meta, account_yaml, members_without_roles, object_name, observed_spec,
};

pub async fn run(portal: &PortalArgs, accounts: &[String], out_dir: Option<&Path>) -> ExitCode {
    match export(portal, accounts, out_dir).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail(&e),
    }
}

/// Why nothing (or not everything) was exported.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error(transparent)]
    Pipeline(#[from] reconcile::Error),
    #[error("{url}: cannot list the accounts")]
    List {
        url: String,
        #[source]
        source: crate::portal::PortalError,
    },
    #[error("--account {0}: the portal has no account {0:?} this token can reach")]
    Unreachable(String),
    #[error(
        "customer accounts {0:?} and {1:?} would both be exported as {2}; export them one at a time with --account"
    )]
    SameName(String, String, String),
    #[error("{0}: the directory cannot be created")]
    CreateDir(String, #[source] std::io::Error),
    #[error("{0}: cannot be written")]
    Write(String, #[source] std::io::Error),
}

async fn export(
    args: &PortalArgs,
    only: &[String],
    out_dir: Option<&Path>,
) -> Result<(), ExportError> {
    let url = args
        .portal
        .clone()
        .unwrap_or_else(|| DEFAULT_PORTAL.to_string());
    let portal = reconcile::connect(&url, DEFAULT_TOKEN_ENV, &args.connect_options())?;
    let shown = crate::domain::text::redact_url(&url).into_owned();
    let facts = reconcile::facts(&portal, &url).await?;
    // A BILLmanager portal learns its one account's customer number from `--account`.
    portal.bind_accounts(only);
    let visible = portal
        .list_accounts()
        .await
        .map_err(|source| ExportError::List {
            url: shown.clone(),
            source,
        })?;
    for cn in only {
        if !visible.iter().any(|a| &a.customer_number == cn) {
            return Err(ExportError::Unreachable(cn.clone()));
        }
    }
    let cns: Vec<String> = visible
        .iter()
        .map(|a| a.customer_number.clone())
        .filter(|cn| only.is_empty() || only.contains(cn))
        .collect();
    let observed =
        reconcile::observe(&portal, &cns)
            .await
            .map_err(|source| reconcile::Error::Observe {
                url: shown.clone(),
                source,
            })?;

    let portal_doc = Doc {
        api_version: API_VERSION,
        kind: "Portal",
        metadata: Meta {
            name: "main".into(),
        },
        spec: PortalSpec {
            url: shown.clone(),
            token_secret_ref: None,
            token_env: None,
        },
    };
    let portal_yaml = serde_saphyr::to_string(&portal_doc).unwrap_or_default();
    let mut files: Vec<(String, String)> = vec![("portal.yaml".into(), portal_yaml)];
    let mut names: BTreeMap<String, &str> = BTreeMap::new();
    for (cn, o) in &observed {
        let Some(account) = &o.account else { continue };
        let name = object_name(cn);
        // Names depend on the customer number alone and carry a hash wherever making one
        // lost a difference; should two still meet, nothing is written rather than one lost.
        if let Some(other) = names.insert(name.clone(), cn) {
            return Err(ExportError::SameName(other.to_string(), cn.clone(), name));
        }
        let mut spec = observed_spec(account, o, facts.catalog.capabilities.service_scopes);
        let roleless = members_without_roles(o);
        let mut yaml = String::new();
        if !roleless.is_empty() {
            yaml.push_str(
                "# policy.ignore lists the members the portal shows with no role in effect (a role's\n\
                 # until has passed): no manifest can declare a member without a role, so rolecall\n\
                 # leaves them as the portal holds them.\n",
            );
            spec.policy = Some(Policy {
                ignore: roleless,
                ..Policy::default()
            });
        }
        yaml.push_str(&account_yaml(&name, &spec));
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
                .map_err(|e| ExportError::CreateDir(dir.display().to_string(), e))?;
            for (file, yaml) in &files {
                let path = dir.join(file);
                std::fs::write(&path, yaml)
                    .map_err(|e| ExportError::Write(path.display().to_string(), e))?;
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
