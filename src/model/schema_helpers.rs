//! Hand-written schemas for the manifest values that take more than one shape.
//!
//! JSON Schema expresses "a string or an object" with `anyOf`; Kubernetes' structural schemas
//! cannot (every node needs one type), so the CRD form of these values preserves what the user
//! wrote and leaves the check to rolecall's own validation, which reports it with a location.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::{MaxRemovals, RoleEntry, RoleWindow, ServiceScope};

/// True when the generator writes an OpenAPI schema for a CRD rather than a JSON Schema.
fn for_kubernetes(generator: &SchemaGenerator) -> bool {
    generator
        .settings()
        .meta_schema
        .as_deref()
        .is_none_or(|m| m.contains("openapi"))
}

impl JsonSchema for RoleEntry {
    fn schema_name() -> Cow<'static, str> {
        "RoleEntry".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let description = "A role of the portal's catalog: a name (`cockpit-access`) or \
                           `{name, from, until}` with inclusive dates (YYYY-MM-DD) in the \
                           account's time zone.";
        if for_kubernetes(generator) {
            return json_schema!({
                "description": description,
                "x-kubernetes-preserve-unknown-fields": true
            });
        }
        let window = generator.subschema_for::<RoleWindow>();
        json_schema!({
            "description": description,
            "anyOf": [
                {"type": "string", "minLength": 1},
                window
            ]
        })
    }
}

impl JsonSchema for ServiceScope {
    fn schema_name() -> Cow<'static, str> {
        "ServiceScope".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let description = "`all`, `none`, or a list of service ids.";
        if for_kubernetes(generator) {
            return json_schema!({
                "description": description,
                "x-kubernetes-preserve-unknown-fields": true
            });
        }
        json_schema!({
            "description": description,
            "anyOf": [
                {"type": "string", "enum": ["all", "none"]},
                {"type": "array", "items": {"type": "string"}}
            ]
        })
    }
}

impl JsonSchema for MaxRemovals {
    fn schema_name() -> Cow<'static, str> {
        "MaxRemovals".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let description = "A count (5) or a percentage of current members and contacts (\"25%\").";
        if for_kubernetes(generator) {
            return json_schema!({
                "description": description,
                "x-kubernetes-int-or-string": true
            });
        }
        json_schema!({
            "description": description,
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string"}
            ]
        })
    }
}
