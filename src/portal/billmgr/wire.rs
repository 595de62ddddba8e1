//! Reading BILLmanager answers (`out=json`) as they come: every answer is a `doc` object;
//! values arrive wrapped as `{"$": v}` (attributes as `"$name"` keys beside it); a list of
//! one may arrive as the one object instead of an array; errors arrive with HTTP 200 as
//! `doc.error` with `$type`, `$object` and a localized `msg.$`.

use serde_json::Value;

/// The text of a value, whether wrapped (`{"$": "v"}`) or bare (`"v"`, a number).
pub fn value(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "on" } else { "off" }.to_owned()),
        Value::Object(map) => map.get("$").and_then(|inner| match inner {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }),
        _ => None,
    }
}

/// The text of `item[key]`, or `""`.
pub fn text(item: &Value, key: &str) -> String {
    value(item.get(key)).unwrap_or_default().trim().to_owned()
}

/// An attribute of a wrapped value (`{"$": "v", "$readonly": "yes"}` → `readonly`).
pub fn attribute(item: &Value, key: &str, attribute: &str) -> Option<String> {
    item.get(key)?
        .get(format!("${attribute}"))
        .and_then(|a| value(Some(a)))
}

/// A switch as BILLmanager writes them: `on` / `off` (also `yes`, `true`, `1`).
pub fn flag(item: &Value, key: &str) -> bool {
    matches!(
        text(item, key).to_ascii_lowercase().as_str(),
        "on" | "yes" | "true" | "1"
    )
}

/// The items of a list that may be an array, one object standing for a list of one, or
/// absent (an empty list).
pub fn list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    }
}

/// Group operations take their element ids joined by `", "`.
pub fn elids<S: AsRef<str>>(ids: &[S]) -> String {
    ids.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", ")
}

/// `doc.error` of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocError {
    /// `$type`: what kind of error (`access`, `auth`, `missed`, `value`, `exists`, ...).
    pub kind: String,
    /// `$object`: what it is about (a field, a function, an element).
    pub object: String,
    /// `msg.$`: a sentence in the session's language; never used to decide anything.
    pub message: String,
}

pub fn error(doc: &Value) -> Option<DocError> {
    let e = doc.get("error")?;
    let kind = e
        .get("$type")
        .and_then(|v| value(Some(v)))
        .unwrap_or_default();
    let object = e
        .get("$object")
        .and_then(|v| value(Some(v)))
        .unwrap_or_default();
    let message = e
        .get("msg")
        .and_then(|m| value(Some(m)))
        .unwrap_or_default();
    Some(DocError {
        kind: kind.trim().to_owned(),
        object: object.trim().to_owned(),
        message: message.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_lists_and_errors_read_as_they_come() {
        let doc = json!({"elem": {"id": {"$": "7"}, "email": "a@x.example", "enabled": {"$": "on"},
            "n": 3, "email2": {"$": "b@x.example", "$readonly": "yes"}}});
        let items = list(doc.get("elem"));
        assert_eq!(items.len(), 1, "a list of one sent as the object");
        assert_eq!(text(items[0], "id"), "7");
        assert_eq!(text(items[0], "email"), "a@x.example");
        assert_eq!(text(items[0], "n"), "3");
        assert!(flag(items[0], "enabled"));
        assert!(!flag(items[0], "missing"));
        assert_eq!(
            attribute(items[0], "email2", "readonly").as_deref(),
            Some("yes")
        );
        assert_eq!(list(Some(&json!([{"a": 1}, {"a": 2}]))).len(), 2);
        assert!(list(None).is_empty());
        assert_eq!(elids(&["1", "2", "3"]), "1, 2, 3");
        let e = error(&json!({"error": {"$type": "access", "$object": "user",
            "msg": {"$": "Доступ запрещён"}}}))
        .unwrap();
        assert_eq!((e.kind.as_str(), e.object.as_str()), ("access", "user"));
        assert!(error(&json!({"ok": {}})).is_none());
    }
}
