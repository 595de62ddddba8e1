//! Reading WHMCS API answers as they really come: IDs as numbers or strings, booleans as
//! `true`, `1`, `"1"` or `"on"`, lists bare or wrapped in an object named after their items
//! (`{"clients": {"client": [...]}}`), a single item where a list was expected, and an empty
//! string where a list is empty.

use serde_json::Value;

/// Whether an answer says it succeeded: `result` (most actions) or `status` (one action).
pub fn outcome(answer: &Value) -> Outcome<'_> {
    let word = answer
        .get("result")
        .or_else(|| answer.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if word.eq_ignore_ascii_case("success") {
        Outcome::Success
    } else {
        Outcome::Error(answer.get("message").and_then(Value::as_str).unwrap_or(""))
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    Success,
    Error(&'a str),
}

/// An ID, whether sent as a number or a string.
pub fn id(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A count (`totalresults`, `numreturned`), whether sent as a number or a string.
pub fn count(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean as WHMCS writes them: `true`, `1`, `"1"`, `"true"`, `"on"`, `"yes"`.
pub fn flag(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        Some(Value::String(s)) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "on" | "yes"
        ),
        _ => false,
    }
}

/// Text, or `""` when absent or not text.
pub fn text<'a>(item: &'a Value, key: &str) -> &'a str {
    item.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The items of a list that may be bare (`[..]`), wrapped (`{"client": [..]}`), a single
/// wrapped item (`{"client": {..}}`), or empty (`""`, `null`, `{}`).
pub fn list<'a>(value: Option<&'a Value>, item: &str) -> Vec<&'a Value> {
    match value {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Object(map)) => match map.get(item) {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// A user's owner flag: `isOwner` in `GetUsers`, `is_owner` in `GetClientsDetails`.
pub fn is_owner(item: &Value) -> bool {
    flag(item.get("isOwner")) || flag(item.get("is_owner"))
}

/// Permission names as a list or a comma-separated string.
pub fn permissions(value: Option<&Value>) -> Vec<String> {
    let mut names: Vec<String> = match value {
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_owned()).collect(),
        Some(v @ (Value::Array(_) | Value::Object(_))) => list(Some(v), "permission")
            .into_iter()
            .filter_map(Value::as_str)
            .map(|p| p.trim().to_owned())
            .collect(),
        _ => Vec::new(),
    };
    names.retain(|n| !n.is_empty());
    names.sort();
    names.dedup();
    names
}

/// "First Last", from whichever of `name`, `firstname`/`lastname` the answer carries.
pub fn person_name(item: &Value) -> String {
    let full = text(item, "name").trim();
    if !full.is_empty() {
        return full.to_owned();
    }
    format!(
        "{} {}",
        text(item, "firstname").trim(),
        text(item, "lastname").trim()
    )
    .trim()
    .to_owned()
}

/// A display name split into WHMCS's first and last name at the first space.
pub fn split_name(name: &str) -> (String, String) {
    let name = name.trim();
    match name.split_once(' ') {
        Some((first, last)) => (first.to_owned(), last.trim().to_owned()),
        None => (name.to_owned(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_and_counts_come_as_numbers_or_strings() {
        assert_eq!(id(Some(&json!(42))), Some("42".into()));
        assert_eq!(id(Some(&json!(" 42 "))), Some("42".into()));
        assert_eq!(id(Some(&json!(""))), None);
        assert_eq!(id(Some(&json!(null))), None);
        assert_eq!(id(None), None);
        assert_eq!(count(Some(&json!("60"))), Some(60));
        assert_eq!(count(Some(&json!(60))), Some(60));
        assert_eq!(count(Some(&json!("many"))), None);
        assert_eq!(count(Some(&json!(-1))), None);
    }

    #[test]
    fn booleans_in_every_spelling() {
        for yes in [
            json!(true),
            json!(1),
            json!("1"),
            json!("true"),
            json!("on"),
            json!("Yes"),
        ] {
            assert!(flag(Some(&yes)), "{yes}");
        }
        for no in [
            json!(false),
            json!(0),
            json!("0"),
            json!(""),
            json!("off"),
            json!(null),
        ] {
            assert!(!flag(Some(&no)), "{no}");
        }
        assert!(!flag(None));
    }

    #[test]
    fn lists_bare_wrapped_single_or_empty() {
        let bare = json!([{"id": 1}, {"id": 2}]);
        let wrapped = json!({"client": [{"id": 1}, {"id": 2}]});
        let single = json!({"client": {"id": 1}});
        assert_eq!(list(Some(&bare), "client").len(), 2);
        assert_eq!(list(Some(&wrapped), "client").len(), 2);
        assert_eq!(list(Some(&single), "client"), vec![&json!({"id": 1})]);
        for empty in [json!(""), json!(null), json!({}), json!({"client": ""})] {
            assert!(list(Some(&empty), "client").is_empty(), "{empty}");
        }
        assert!(list(None, "client").is_empty());
    }

    #[test]
    fn owner_flag_in_both_spellings() {
        assert!(is_owner(&json!({"isOwner": true})));
        assert!(is_owner(&json!({"is_owner": "1"})));
        assert!(is_owner(&json!({"is_owner": 1})));
        assert!(!is_owner(&json!({"isOwner": false, "is_owner": "0"})));
        assert!(!is_owner(&json!({})));
    }

    #[test]
    fn outcome_reads_result_or_status() {
        assert_eq!(outcome(&json!({"result": "success"})), Outcome::Success);
        assert_eq!(outcome(&json!({"status": "success"})), Outcome::Success);
        assert_eq!(
            outcome(&json!({"result": "error", "message": "Client Not Found"})),
            Outcome::Error("Client Not Found")
        );
        assert_eq!(outcome(&json!({"status": "error"})), Outcome::Error(""));
        assert_eq!(outcome(&json!("garbage")), Outcome::Error(""));
    }

    #[test]
    fn permissions_as_list_or_comma_string() {
        let want = vec!["domains".to_string(), "invoices".to_string()];
        assert_eq!(permissions(Some(&json!("invoices, domains,"))), want);
        assert_eq!(
            permissions(Some(&json!(["invoices", "domains", "domains"]))),
            want
        );
        assert_eq!(
            permissions(Some(&json!({"permission": ["invoices", "domains"]}))),
            want
        );
        assert!(permissions(Some(&json!(""))).is_empty());
        assert!(permissions(None).is_empty());
    }

    #[test]
    fn names_join_and_split() {
        assert_eq!(person_name(&json!({"name": " Ann Lee "})), "Ann Lee");
        assert_eq!(
            person_name(&json!({"firstname": "Ann", "lastname": "Lee"})),
            "Ann Lee"
        );
        assert_eq!(person_name(&json!({"firstname": "Ann"})), "Ann");
        assert_eq!(
            split_name("Billing department of Acme"),
            ("Billing".into(), "department of Acme".into())
        );
        assert_eq!(split_name("Billing"), ("Billing".into(), String::new()));
    }
}
