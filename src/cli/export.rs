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
    let portal = reconcile::connect(&url, DEFAULT_TOKEN_ENV, &args.connect_options())
        .map_err(|e| super::chain(&e))?;
    let shown = crate::domain::text::redact_url(&url).into_owned();
    let facts = reconcile::facts(&portal, &url)
        .await
        .map_err(|e| super::chain(&e))?;
    // A BILLmanager portal learns its one account's customer number from `--account`.
    portal.bind_accounts(only);
    let visible = portal
        .list_accounts()
        .await
        .map_err(|e| format!("{shown}: cannot list the accounts: {e}"))?;
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
    let observed = reconcile::observe(&portal, &cns)
        .await
        .map_err(|e| format!("{shown}: cannot read the accounts: {e}"))?;

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
            return Err(format!(
                "customer accounts {other:?} and {cn:?} would both be exported as {name}; export them one at a time with --account"
            ));
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
