//! The CustomResourceDefinitions, generated from the types; `crds/` holds the same YAML and a
//! test fails when the two drift.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::{AccountMember, CustomerAccount, NotificationContact, Portal};

/// The four CRDs, in documentation order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        Portal::crd(),
        CustomerAccount::crd(),
        AccountMember::crd(),
        NotificationContact::crd(),
    ]
}

/// File name under `crds/` for each CRD.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("crd"))
}

/// One CRD as YAML.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> String {
    // Serialising a CRD we built ourselves cannot fail; an empty document would be caught by
    // the drift test.
    serde_saphyr::to_string(crd).unwrap_or_default()
}

/// Every CRD as one multi-document YAML stream.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|c| format!("---\n{}", crd_yaml(c)))
        .collect::<Vec<_>>()
        .join("")
}
