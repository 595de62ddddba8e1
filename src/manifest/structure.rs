//! Structural checks of one document: apiVersion and kind, then the kind's schema (unknown
//! fields, types, required fields), each problem at the line and column it was written.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value as Json;

use super::Kept;
use super::diagnostic::{Diagnostic, closest};
use super::schema::Validators;
use super::yaml::{Node, Path, Positions, Seg, Value};
use super::{Body, DEFAULT_NAMESPACE, Document};
use crate::model::{API_VERSION, ContactSpec, GROUP, KINDS, MemberSpec};

/// The fast path for a document read without positions: when its apiVersion and kind are
/// right and the schema accepts all of it, [`check_document`] would report nothing, so the
/// document is taken as it is. `None`: it has something to report; read it with positions.
pub(super) fn plain_document(
    file: &str,
    mut instance: Json,
    positions: Positions,
    validators: &Validators,
) -> Option<Document> {
    if instance.get("apiVersion").and_then(Json::as_str) != Some(API_VERSION) {
        return None;
    }
    let kind = instance.get("kind").and_then(Json::as_str)?;
    let (_, validator) = validators.get(kind)?;
    if !validator.is_valid(&instance) {
        return None;
    }
    let kind = kind.to_string();
    let (name, namespace, body) = parts(&kind, &mut instance);
    let body = body.ok()?;
    Some(Document {
        file: file.into(),
        positions,
        name,
        namespace,
        body,
        complete: true,
        kept: Kept::default(),
    })
}

/// The name, namespace and typed spec of a document the schema accepted (or salvaged); the
/// spec is taken out of `instance`.
fn parts(kind: &str, instance: &mut Json) -> (String, String, Result<Body, serde_json::Error>) {
    let name = instance["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let namespace = instance["metadata"]["namespace"]
        .as_str()
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_string();
    let spec = instance
        .get_mut("spec")
        .map(Json::take)
        .unwrap_or(Json::Null);
    let body = match kind {
        "Portal" => serde_json::from_value(spec).map(Body::Portal),
        "CustomerAccount" => serde_json::from_value(spec).map(Body::Account),
        "AccountMember" => serde_json::from_value(spec).map(Body::Member),
        _ => serde_json::from_value(spec).map(Body::Contact),
    };
    (name, namespace, body)
}

pub(super) fn check_document(
    file: &str,
    root: Node,
    validators: &Validators,
    diags: &mut Vec<Diagnostic>,
) -> Option<Document> {
    let before = diags.len();
    if !matches!(root.value, Value::Map(_)) {
        report(
            diags,
            file,
            &root,
            &Path::root(),
            format!(
                "a manifest is a mapping with apiVersion, kind, metadata and spec, but this document is {}",
                root.describe()
            ),
        );
        return None;
    }
    // apiVersion and kind decide which schema applies; without them nothing else can be checked.
    check_api_version(file, &root, diags);
    let kind = check_kind(file, &root, diags)?;
    if diags.len() > before {
        return None;
    }
    check_schema(file, root, &kind, validators, diags)
}

fn report(diags: &mut Vec<Diagnostic>, file: &str, root: &Node, path: &Path, msg: String) {
    diags.push(Diagnostic::error(file, root.pos_of(path), path, msg));
}

fn check_api_version(file: &str, root: &Node, diags: &mut Vec<Diagnostic>) {
    let api_path = Path::root().key("apiVersion");
    let mut err = |path: &Path, msg: String| report(diags, file, root, path, msg);
    match root.get("apiVersion") {
        None => err(
            &Path::root(),
            format!(
                "missing apiVersion; rolecall documents start with \"apiVersion: {API_VERSION}\""
            ),
        ),
        Some(n) => match n.as_str() {
            Some(API_VERSION) => {}
            Some(v) if v.starts_with(&format!("{GROUP}/")) => err(
                &api_path,
                format!("unknown apiVersion {v:?}; this rolecall reads {API_VERSION:?}"),
            ),
            Some(v) => err(
                &api_path,
                format!(
                    "{} is not a rolecall apiVersion; rolecall documents use {API_VERSION:?}",
                    super::quote_short(v)
                ),
            ),
            None => err(
                &api_path,
                format!(
                    "expected the string {API_VERSION:?}, found {}",
                    n.describe()
                ),
            ),
        },
    }
}

fn check_kind(file: &str, root: &Node, diags: &mut Vec<Diagnostic>) -> Option<String> {
    let kind_path = Path::root().key("kind");
    let mut err = |path: &Path, msg: String| report(diags, file, root, path, msg);
    match root.get("kind") {
        None => {
            err(
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
                    &kind_path,
                    format!("unknown kind {}{hint}", super::quote_short(k)),
                );
                None
            }
            None => {
                err(
                    &kind_path,
                    format!("expected a kind name, found {}", n.describe()),
                );
                None
            }
        },
    }
}

/// The kind's schema over the whole document, then its typed spec.
fn check_schema(
    file: &str,
    root: Node,
    kind: &str,
    validators: &Validators,
    diags: &mut Vec<Diagnostic>,
) -> Option<Document> {
    let before = diags.len();
    let (schema, validator) = validators.get(kind)?;
    let mut instance = root.to_json();
    let mut bad = Rejected::new();
    for error in validator.iter_errors(&instance) {
        translate(file, &root, schema, &error, &mut bad, diags);
    }
    let complete = diags.len() == before;
    let mut kept = Kept::default();
    if !complete {
        // Salvage what the schema accepted, so the semantic checks still report their
        // problems (a bad e-mail beside a misspelled field); the document stays invalid.
        salvage(&mut instance, bad);
        if kind == "CustomerAccount" {
            kept.members = keep_readable::<MemberSpec>(&mut instance, "members");
            kept.contacts = keep_readable::<ContactSpec>(&mut instance, "contacts");
        }
    }
    let (name, namespace, body) = parts(kind, &mut instance);
    match body {
        Ok(body) => Some(Document {
            file: file.into(),
            positions: Positions::Tree(Box::new(root)),
            name,
            namespace,
            body,
            complete,
            kept,
        }),
        Err(_) if !complete => None,
        Err(e) => {
            // The schema should have caught this; report it rather than lose it.
            report(
                diags,
                file,
                &root,
                &Path::root().key("spec"),
                format!("cannot be read: {e}"),
            );
            None
        }
    }
}

/// Turns one schema violation into located sentences.
/// What to do with a part the schema rejected when salvaging the rest of the document for the
/// semantic checks.
enum Fix {
    Remove,
    /// A misspelled key: move the value to the field it most likely meant.
    Rename(String),
    /// A number or boolean where text belongs: read it as text.
    Stringify,
}

type Rejected = Vec<(Path, Fix)>;

fn translate(
    file: &str,
    root: &Node,
    schema: &Json,
    error: &jsonschema::ValidationError,
    bad: &mut Rejected,
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
                let (fix, msg) = unknown_field(key, &known);
                bad.push((field.clone(), fix));
                push(&field, pos, msg);
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or("?");
            push(
                &path.key(name.to_string()),
                at(&path),
                format!("missing required field {name:?}"),
            );
        }
        ValidationErrorKind::Type { kind } => {
            let (fix, msg) = wrong_type(kind, node, &found);
            bad.push((path.clone(), fix));
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
            bad.push((path.clone(), Fix::Remove));
            push(&path, at(&path), not_one_of(node, &options));
        }
        ValidationErrorKind::Constant { expected_value } => {
            bad.push((path.clone(), Fix::Remove));
            push(
                &path,
                at(&path),
                format!("must be {expected_value}, found {found}"),
            );
        }
        ValidationErrorKind::MinLength { .. } => {
            bad.push((path.clone(), Fix::Remove));
            push(&path, at(&path), "must not be empty".into());
        }
        ValidationErrorKind::MinItems { limit } => {
            push(&path, at(&path), format!("needs at least {limit} entries"));
        }
        ValidationErrorKind::Minimum { limit } => {
            bad.push((path.clone(), Fix::Remove));
            push(
                &path,
                at(&path),
                format!("must be at least {limit}, found {found}"),
            );
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            let shapes = Shapes {
                file,
                root,
                schema,
                error,
                node,
                found: &found,
            };
            shapes.translate(context, bad, diags);
        }
        _ => {
            bad.push((path.clone(), Fix::Remove));
            push(&path, at(&path), error.to_string())
        }
    }
}

/// An unknown key: the sentence, with the field it most likely meant, and how to salvage it.
fn unknown_field(key: &str, known: &[String]) -> (Fix, String) {
    let hint = match closest(key, known.iter().map(String::as_str)) {
        Some(s) => format!("; did you mean {s:?}?"),
        None if !known.is_empty() => format!("; known fields are {}", known.join(", ")),
        None => String::new(),
    };
    let fix = match closest(key, known.iter().map(String::as_str)) {
        Some(meant) => Fix::Rename(meant.to_string()),
        None => Fix::Remove,
    };
    (
        fix,
        format!("unknown field {}{hint}", super::quote_short(key)),
    )
}

/// A value of the wrong type: the sentence, and how to salvage it.
fn wrong_type(kind: &TypeKind, node: Option<&Node>, found: &str) -> (Fix, String) {
    let expected = match kind {
        TypeKind::Single(t) => type_word(&t.to_string()),
        // `null` is how optional fields are typed; nobody means to write it.
        TypeKind::Multiple(set) => set
            .iter()
            .map(|t| t.to_string())
            .filter(|t| t != "null")
            .map(|t| type_word(&t))
            .collect::<Vec<_>>()
            .join(" or "),
    };
    let scalar = matches!(
        node.map(|n| &n.value),
        Some(Value::Int(_) | Value::Float(_) | Value::Bool(_))
    );
    let fix = if expected == "a string" && scalar {
        Fix::Stringify
    } else {
        Fix::Remove
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
    (fix, msg)
}

/// A value that fits none of the shapes an `anyOf` or `oneOf` allows.
struct Shapes<'a> {
    file: &'a str,
    root: &'a Node,
    schema: &'a Json,
    error: &'a jsonschema::ValidationError<'a>,
    node: Option<&'a Node>,
    found: &'a str,
}

impl Shapes<'_> {
    fn translate(
        &self,
        context: &[Vec<jsonschema::ValidationError<'static>>],
        bad: &mut Rejected,
        diags: &mut Vec<Diagnostic>,
    ) {
        let here = self.error.instance_path().as_str();
        let path = Path::from_pointer(here);
        let pos = self.root.pos_of(&path);
        // A closed list of words (an enum) arrives as one `const` per branch.
        let words: Option<Vec<String>> = context
            .iter()
            .map(|errs| match errs.as_slice() {
                [e] if e.instance_path().as_str() == here => match e.kind() {
                    ValidationErrorKind::Constant { expected_value } => {
                        expected_value.as_str().map(str::to_string)
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect();
        if let Some(words) = words.filter(|w| !w.is_empty()) {
            bad.push((path.clone(), Fix::Remove));
            let msg = not_one_of(self.node, &words);
            diags.push(Diagnostic::error(self.file, pos, &path, msg));
            return;
        }
        // The value may take several shapes (a role name or a window, for example). When
        // exactly one shape has the value's type, its problems are the useful ones.
        let fitting: Vec<&Vec<jsonschema::ValidationError<'static>>> = context
            .iter()
            .filter(|errs| {
                !errs.iter().any(|e| {
                    matches!(e.kind(), ValidationErrorKind::Type { .. })
                        && e.instance_path().as_str() == here
                })
            })
            .collect();
        if let [only] = fitting.as_slice() {
            for e in only.iter() {
                translate(self.file, self.root, self.schema, e, bad, diags);
            }
        } else {
            let what = schema_description(self.schema, self.error.schema_path().as_str())
                .unwrap_or_else(|| "another kind of value".into());
            bad.push((path.clone(), Fix::Remove));
            let msg = format!("expected {what}, found {}", self.found);
            diags.push(Diagnostic::error(self.file, pos, &path, msg));
        }
    }
}

/// `"Aply" is not one of Apply, Observe; did you mean "Apply"?`
fn not_one_of(node: Option<&Node>, words: &[String]) -> String {
    let hint = node
        .and_then(Node::as_str)
        .and_then(|s| closest(s, words.iter().map(String::as_str)))
        .map(|s| format!("; did you mean {s:?}?"))
        .unwrap_or_default();
    format!(
        "{} is not one of {}{hint}",
        value_text(node),
        words.join(", ")
    )
}

/// A scalar as the user wrote it (`"Aply"`, `5`), or its description for anything else.
fn value_text(node: Option<&Node>) -> String {
    match node.map(|n| &n.value) {
        Some(Value::Str(s)) => super::quote_short(s),
        Some(Value::Int(i)) => i.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(_) | None => node.map(Node::describe).unwrap_or_else(|| "nothing".into()),
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

/// Removes the rejected parts of a document; a misspelled key whose meaning is clear and free
/// is renamed instead. Parts inside lists are left alone, so list indices keep pointing at the
/// places the user wrote.
fn salvage(instance: &mut Json, mut bad: Rejected) {
    bad.sort_by_key(|(p, _)| std::cmp::Reverse(p.0.len()));
    for (path, fix) in bad {
        let Some((Seg::Key(last), parent)) = path.0.split_last() else {
            continue;
        };
        let Some(obj) = parent
            .iter()
            .try_fold(&mut *instance, |v, seg| match seg {
                Seg::Key(k) => v.get_mut(k.as_ref()),
                Seg::Index(i) => v.get_mut(*i),
            })
            .and_then(Json::as_object_mut)
        else {
            continue;
        };
        let Some(value) = obj.remove(last.as_ref()) else {
            continue;
        };
        match fix {
            Fix::Remove => {}
            Fix::Rename(meant) => {
                if !obj.contains_key(&meant) {
                    obj.insert(meant, value);
                }
            }
            Fix::Stringify => {
                let text = match value {
                    Json::String(s) => s,
                    other => other.to_string(),
                };
                obj.insert(last.to_string(), Json::String(text));
            }
        }
    }
}

/// Drops the entries of `spec.<list>` that cannot be read and returns the original indices of
/// those kept, so that diagnostics about them still point at the right entry.
fn keep_readable<T: serde::de::DeserializeOwned>(
    instance: &mut Json,
    list: &str,
) -> Option<Vec<usize>> {
    let items = instance.get_mut("spec")?.get_mut(list)?.as_array_mut()?;
    let mut kept = Vec::new();
    let mut index = 0;
    items.retain(|item| {
        let ok = serde_json::from_value::<T>(item.clone()).is_ok();
        if ok {
            kept.push(index);
        }
        index += 1;
        ok
    });
    Some(kept)
}
