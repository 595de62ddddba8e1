//! The JSON Schema of the manifests (2020-12), generated from the Rust types: one branch per
//! kind. `rolecall schema` prints it for editors; validation uses the same branches, so what
//! the editor flags and what `validate` reports cannot disagree.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde_json::{Value, json};

use crate::model::{
    API_VERSION, AccountMemberSpec, CustomerAccountSpec, NotificationContactSpec, PortalSpec,
};

/// Where the schema says it lives (the `$id`).
pub const SCHEMA_ID: &str = "https://rolecall.dev/schemas/v1alpha1/manifest.json";

fn spec_schema<T: JsonSchema>() -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.inline_subschemas = true;
    });
    let mut generator = settings.into_generator();
    let schema: Schema = generator.root_schema_for::<T>();
    let mut value = schema.to_value();
    if let Some(obj) = value.as_object_mut() {
        obj.remove("$schema");
        obj.remove("title");
    }
    value
}

fn metadata_schema() -> Value {
    json!({
        "type": "object",
        "description": "Standard object metadata; files default `namespace` to `default`.",
        "required": ["name"],
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "minLength": 1, "description": "The object's name, unique per kind and namespace."},
            "namespace": {"type": "string", "minLength": 1, "description": "The object's namespace (default `default`)."},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}}
        }
    })
}

/// The schema of one kind's documents.
pub fn kind_schema(kind: &str) -> Option<Value> {
    let (spec, description) = match kind {
        "Portal" => (
            spec_schema::<PortalSpec>(),
            "Where and as whom to connect: a customer portal's API.",
        ),
        "CustomerAccount" => (
            spec_schema::<CustomerAccountSpec>(),
            "A customer account: its members, their roles, and its notification contacts.",
        ),
        "AccountMember" => (
            spec_schema::<AccountMemberSpec>(),
            "A member of a CustomerAccount declared on its own.",
        ),
        "NotificationContact" => (
            spec_schema::<NotificationContactSpec>(),
            "A notification contact of a CustomerAccount declared on its own.",
        ),
        _ => return None,
    };
    Some(json!({
        "title": kind,
        "description": description,
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": false,
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": kind},
            "metadata": metadata_schema(),
            "spec": spec,
            "status": {"type": "object", "description": "Written by the controller; ignored in files."}
        }
    }))
}

/// The whole document schema printed by `rolecall schema`.
pub fn document_schema() -> Value {
    let branches: Vec<Value> = crate::model::KINDS
        .iter()
        .filter_map(|k| kind_schema(k))
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "rolecall manifest",
        "description": "A rolecall.dev/v1alpha1 document: Portal, CustomerAccount, AccountMember or NotificationContact.",
        "type": "object",
        "required": ["apiVersion", "kind"],
        "oneOf": branches
    })
}

/// Compiled validators, one per kind.
pub struct Validators {
    kinds: Vec<(&'static str, Value, jsonschema::Validator)>,
}

impl Validators {
    pub fn new() -> Validators {
        let kinds = crate::model::KINDS
            .iter()
            .filter_map(|k| {
                let schema = kind_schema(k)?;
                // The schemas are generated from our own types; a failure here is a bug
                // that the unit tests catch, not something a user can cause.
                let validator = jsonschema::options()
                    .should_validate_formats(false)
                    .build(&schema)
                    .ok()?;
                Some((*k, schema, validator))
            })
            .collect();
        Validators { kinds }
    }

    pub fn get(&self, kind: &str) -> Option<(&Value, &jsonschema::Validator)> {
        self.kinds
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map(|(_, s, v)| (s, v))
    }
}

impl Default for Validators {
    fn default() -> Self {
        Validators::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_compiles() {
        let v = Validators::new();
        for kind in crate::model::KINDS {
            assert!(v.get(kind).is_some(), "{kind}");
        }
        assert!(jsonschema::options().build(&document_schema()).is_ok());
    }
}
