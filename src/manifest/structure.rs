//! Structural checks of one document: apiVersion and kind, then the kind's schema (unknown
//! fields, types, required fields), each problem at the line and column it was written.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value as Json;

use super::diagnostic::{Diagnostic, closest};
use super::schema::Validators;
use super::yaml::{Node, Path, Value};
use super::{Body, DEFAULT_NAMESPACE, Document};
use crate::model::{API_VERSION, GROUP, KINDS};

pub(super) fn check_document(
    file: &str,
    root: Node,
    validators: &Validators,
    diags: &mut Vec<Diagnostic>,
) -> Option<Document> {
    let before = diags.len();
    let err = |diags: &mut Vec<Diagnostic>, path: &Path, msg: String| {
        diags.push(Diagnostic::error(file, root.pos_of(path), path, msg));
    };
    if !matches!(root.value, Value::Map(_)) {
        err(
            diags,
            &Path::root(),
            format!(
                "a manifest is a mapping with apiVersion, kind, metadata and spec, but this document is {}",
                root.describe()
            ),
        );
        return None;
    }
    // apiVersion and kind decide which schema applies; without them nothing else can be checked.
    let api_path = Path::root().key("apiVersion");
    match root.get("apiVersion") {
        None => err(
            diags,
            &Path::root(),
            format!(
                "missing apiVersion; rolecall documents start with \"apiVersion: {API_VERSION}\""
            ),
        ),
        Some(n) => match n.as_str() {
            Some(API_VERSION) => {}
            Some(v) if v.starts_with(&format!("{GROUP}/")) => err(
                diags,
                &api_path,
                format!("unknown apiVersion {v:?}; this rolecall reads {API_VERSION:?}"),
            ),
            Some(v) => err(
                diags,
                &api_path,
                format!(
                    "{} is not a rolecall apiVersion; rolecall documents use {API_VERSION:?}",
                    super::quote_short(v)
                ),
            ),
            None => err(
                diags,
                &api_path,
                format!(
                    "expected the string {API_VERSION:?}, found {}",
                    n.describe()
                ),
            ),
        },
    }
    let kind_path = Path::root().key("kind");
    let kind = match root.get("kind") {
        None => {
            err(
                diags,
                &Path::root(),
                format!("missing kind; one of {} is expected", KINDS.join(", ")),
            );
            None
        }
        Some(n) => match n.as_str() {
            Some(k) if KINDS.contains(&k) => Some(k.to_string()),
            Some(k) => {
                let hint = match closest(k, KINDS) {
                    Some(s) => format!("; did you mean {s:?}?"),
                    None => format!("; rolecall knows {}", KINDS.join(", ")),
                };
                err(
                    diags,
                    &kind_path,
                    format!("unknown kind {}{hint}", super::quote_short(k)),
                );
                None
            }
            None => {
                err(
                    diags,
                    &kind_path,
                    format!("expected a kind name, found {}", n.describe()),
                );
                None
            }
        },
    };
    let kind = kind?;
    if diags.len() > before {
        return None;
    }
    let (schema, validator) = validators.get(&kind)?;
    let instance = root.to_json();
    for error in validator.iter_errors(&instance) {
        translate(file, &root, schema, &error, diags);
    }
    if diags.len() > before {
        return None;
    }
    let name = instance["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let namespace = instance["metadata"]["namespace"]
        .as_str()
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_string();
    let spec = instance.get("spec").cloned().unwrap_or(Json::Null);
    let body = match kind.as_str() {
        "Portal" => serde_json::from_value(spec).map(Body::Portal),
        "CustomerAccount" => serde_json::from_value(spec).map(Body::Account),
        "AccountMember" => serde_json::from_value(spec).map(Body::Member),
        _ => serde_json::from_value(spec).map(Body::Contact),
    };
    match body {
        Ok(body) => Some(Document {
            file: file.to_string(),
            root,
            name,
            namespace,
            body,
        }),
        Err(e) => {
            // The schema should have caught this; report it rather than lose it.
            err(
                diags,
                &Path::root().key("spec"),
                format!("cannot be read: {e}"),
            );
            None
        }
    }
}

/// Turns one schema violation into located sentences.
fn translate(
    file: &str,
    root: &Node,
    schema: &Json,
    error: &jsonschema::ValidationError,
    diags: &mut Vec<Diagnostic>,
) {
    let path = Path::from_pointer(error.instance_path().as_str());
    let node = root.at(&path);
    let found = node.map(Node::describe).unwrap_or_else(|| "nothing".into());
    let at = |p: &Path| root.pos_of(p);
    let mut push = |p: &Path, pos, msg: String| diags.push(Diagnostic::error(file, pos, p, msg));
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let known = known_fields(schema, error.schema_path().as_str());
            for key in unexpected {
                let field = path.key(key.clone());
                let pos = root.key_pos_of(&field).unwrap_or_else(|| at(&path));
                let hint = match closest(key, known.iter().map(String::as_str)) {
                    Some(s) => format!("; did you mean {s:?}?"),
                    None if !known.is_empty() => format!("; known fields are {}", known.join(", ")),
                    None => String::new(),
                };
                push(
                    &field,
                    pos,
                    format!("unknown field {}{hint}", super::quote_short(key)),
                );
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or("?");
            push(
                &path.key(name),
                at(&path),
                format!("missing required field {name:?}"),
            );
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => type_word(&t.to_string()),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| type_word(&t.to_string()))
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            let mut msg = format!("expected {expected}, found {found}");
            if expected == "a string"
                && let Some(Node {
                    value: Value::Int(i),
                    ..
                }) = node
            {
                msg.push_str(&format!("; quote it: \"{i}\""));
            }
            push(&path, at(&path), msg);
        }
        ValidationErrorKind::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let hint = node
                .and_then(Node::as_str)
                .and_then(|s| closest(s, options.iter().map(String::as_str)))
                .map(|s| format!("; did you mean {s:?}?"))
                .unwrap_or_default();
            push(
                &path,
                at(&path),
                format!("{found} is not one of {}{hint}", options.join(", ")),
            );
        }
        ValidationErrorKind::Constant { expected_value } => {
            push(
                &path,
                at(&path),
                format!("must be {expected_value}, found {found}"),
            );
        }
        ValidationErrorKind::MinLength { .. } => {
            push(&path, at(&path), "must not be empty".into());
        }
        ValidationErrorKind::MinItems { limit } => {
            push(&path, at(&path), format!("needs at least {limit} entries"));
        }
        ValidationErrorKind::Minimum { limit } => {
            push(
                &path,
                at(&path),
                format!("must be at least {limit}, found {found}"),
            );
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            // The value may take several shapes (a role name or a window, for example). When
            // exactly one shape has the value's type, its problems are the useful ones.
            let fitting: Vec<&Vec<jsonschema::ValidationError<'static>>> = context
                .iter()
                .filter(|errs| {
                    !errs.iter().any(|e| {
                        matches!(e.kind(), ValidationErrorKind::Type { .. })
                            && e.instance_path().as_str() == error.instance_path().as_str()
                    })
                })
                .collect();
            if let [only] = fitting.as_slice() {
                for e in only.iter() {
                    translate(file, root, schema, e, diags);
                }
            } else {
                let what = schema_description(schema, error.schema_path().as_str())
                    .unwrap_or_else(|| "another kind of value".into());
                push(&path, at(&path), format!("expected {what}, found {found}"));
            }
        }
        _ => push(&path, at(&path), error.to_string()),
    }
}

fn type_word(t: &str) -> String {
    match t {
        "string" => "a string",
        "array" => "a list",
        "object" => "a mapping",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "true or false",
        "null" => "nothing",
        other => other,
    }
    .to_string()
}

/// The schema node a keyword belongs to: the schema path without its last segment (the
/// keyword itself), resolved in the kind's schema.
fn schema_node<'a>(schema: &'a Json, schema_path: &str) -> Option<&'a Json> {
    let parent = match schema_path.rfind('/') {
        Some(i) => &schema_path[..i],
        None => "",
    };
    schema.pointer(parent)
}

fn known_fields(schema: &Json, schema_path: &str) -> Vec<String> {
    schema_node(schema, schema_path)
        .and_then(|n| n.get("properties"))
        .and_then(Json::as_object)
        .map(|props| props.keys().cloned().collect())
        .unwrap_or_default()
}

fn schema_description(schema: &Json, schema_path: &str) -> Option<String> {
    let text = schema_node(schema, schema_path)?
        .get("description")?
        .as_str()?;
    let first = text.split(['.', ';']).next()?.trim();
    (!first.is_empty()).then(|| lowercase_first(first))
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) if !s.starts_with("`") => f.to_lowercase().collect::<String>() + c.as_str(),
        Some(f) => f.to_string() + c.as_str(),
        None => String::new(),
    }
}
