//! Generated artefacts are checked in and must equal what the types generate.
//! Regenerate with `UPDATE_GENERATED=1 cargo test --test generated`.

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use rolecall::model::crd::{crd_file_name, crd_yaml, crds};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check_file(path: PathBuf, want: &str) {
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::write(&path, want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing; run UPDATE_GENERATED=1 cargo test --test generated",
            path.display()
        )
    });
    assert!(
        have == want,
        "{} differs from what the types generate; run UPDATE_GENERATED=1 cargo test --test generated",
        path.display()
    );
}

#[test]
fn crds_under_crds_dir_match_the_types() {
    let all = crds();
    assert_eq!(all.len(), 4);
    // The Helm chart installs the same CRDs from its own crds/ directory.
    for dir in ["crds", "charts/rolecall/crds"] {
        for crd in &all {
            check_file(root().join(dir).join(crd_file_name(crd)), &crd_yaml(crd));
        }
        let files = std::fs::read_dir(root().join(dir)).unwrap().count();
        assert_eq!(files, 4, "{dir}/ holds a file that no type generates");
    }
}

#[test]
fn schema_file_matches_the_types() {
    let schema = rolecall::manifest::schema::document_schema();
    let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    check_file(root().join("schema").join("rolecall.schema.json"), &text);
}

#[test]
fn crds_are_valid_kubernetes_objects_with_what_kubectl_shows() {
    for crd in crds() {
        let yaml = crd_yaml(&crd);
        let back: CustomResourceDefinition = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back.spec.group, "rolecall.dev");
        assert_eq!(back.spec.scope, "Namespaced");
        let names = &back.spec.names;
        assert!(
            names.short_names.as_ref().is_some_and(|s| !s.is_empty()),
            "{} has no short name",
            names.kind
        );
        let version = &back.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage);
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{} lacks the status subresource",
            names.kind
        );
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .unwrap();
        let spec = &schema.properties.as_ref().unwrap()["spec"];
        // kubectl explain shows descriptions of every field.
        for (field, prop) in spec.properties.as_ref().unwrap() {
            assert!(
                prop.description.as_ref().is_some_and(|d| !d.is_empty()),
                "{}.spec.{field} has no description",
                names.kind
            );
        }
        let columns: Vec<&str> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert!(
            columns.contains(&"Ready") && columns.contains(&"Age"),
            "{}: {columns:?}",
            names.kind
        );
    }
}

#[test]
fn customer_accounts_show_number_ready_members_pending_and_age() {
    let crd = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "CustomerAccount")
        .unwrap();
    let columns: Vec<(String, String)> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.json_path.clone()))
        .collect();
    let paths: Vec<&str> = columns.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            ".spec.customerNumber",
            ".status.conditions[?(@.type==\"Ready\")].status",
            ".status.members",
            ".status.pendingInvitations",
            ".metadata.creationTimestamp"
        ]
    );
    // Conditions are a list-map keyed by type, so server-side apply merges them.
    let yaml = crd_yaml(&crd);
    assert!(yaml.contains("x-kubernetes-list-type: map"));
    assert!(yaml.contains("x-kubernetes-list-map-keys"));
}

#[test]
fn the_editor_schema_accepts_every_example_and_rejects_a_typo() {
    let schema = rolecall::manifest::schema::document_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut seen = 0;
    for entry in walk(&root().join("examples")) {
        let text = std::fs::read_to_string(&entry).unwrap();
        for doc in serde_saphyr::from_multiple::<serde_json::Value>(&text).unwrap() {
            let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", entry.display());
            seen += 1;
        }
    }
    assert_eq!(seen, 6);
    let typo = serde_json::json!({
        "apiVersion": "rolecall.dev/v1alpha1", "kind": "AccountMember",
        "metadata": {"name": "x"},
        "spec": {"accountRef": {"name": "acme"}, "email": "a@b.example", "rolse": ["cockpit-access"]}
    });
    assert!(!validator.is_valid(&typo));
}

/// Every file `kubectl apply -R -f DIR` reads: `*.json`, `*.yaml` and `*.yml`, hidden
/// directories included (kubectl, unlike rolecall, does not skip them).
fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p
            .extension()
            .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// SPEC §2: the same files work with `kubectl apply -f`. `kubectl apply -R -f examples/`
/// applies every file it finds there, so each document of each one is a rolecall object.
#[test]
fn every_file_kubectl_reads_under_examples_is_a_rolecall_manifest() {
    let files = walk(&root().join("examples"));
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let docs = serde_saphyr::from_multiple::<serde_json::Value>(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(!docs.is_empty(), "{}: no document", file.display());
        for doc in docs {
            assert_eq!(
                doc["apiVersion"],
                "rolecall.dev/v1alpha1",
                "{}: not a rolecall manifest, so `kubectl apply -R -f examples/` fails on it",
                file.display()
            );
            assert!(
                doc["kind"].is_string() && doc["metadata"]["name"].is_string(),
                "{}: a document without kind or metadata.name",
                file.display()
            );
        }
    }
}

#[test]
fn plan_schema_file_matches_the_types() {
    let schema = rolecall::plan::plan_schema();
    let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    check_file(root().join("schema").join("plan.schema.json"), &text);
}

#[test]
fn man_pages_under_docs_man_match_the_cli() {
    let dir = root().join("docs").join("man");
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let pages = rolecall::cli::man_pages().unwrap();
    for (name, roff) in &pages {
        check_file(dir.join(name), &String::from_utf8(roff.clone()).unwrap());
    }
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        files,
        pages.len(),
        "docs/man/ holds a page that no command generates"
    );
}
