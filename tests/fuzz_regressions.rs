//! Every input the fuzz targets (`fuzz/`) crashed on, kept under `fuzz/regressions/<target>/`,
//! and the seed corpus under `fuzz/corpus/<target>/`, fed to the same library function the
//! target calls: no panic, and the target's properties (the YAML readers agree, no 5xx from
//! the portal, no credential in a WHMCS error) hold. Runs with plain `cargo test`; see
//! docs/fuzzing.md for how a crash becomes a file here.

use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("manifest", |data| {
        rolecall::fuzzing::manifest(data);
    }),
    ("plan_file", rolecall::fuzzing::plan_file),
    ("portal_request", |data| {
        rolecall::fuzzing::portal_request(data);
    }),
    ("whmcs_response", rolecall::fuzzing::whmcs_response),
];

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn replay(kind: &str, min: usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind);
    for (target, run) in TARGETS {
        let files = inputs(&root.join(target));
        assert!(
            files.len() >= min,
            "{}: expected at least {min} inputs",
            root.join(target).display()
        );
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(
                outcome.is_ok(),
                "fuzz target {target} fails on {} (see the panic above)",
                file.display()
            );
        }
    }
}

/// The crashes fuzzing found stay fixed.
#[test]
fn every_kept_crash_input_passes_its_target() {
    replay("regressions", 0);
}

/// The seed corpus passes too, so that a target starts from inputs that work.
#[test]
fn every_seed_input_passes_its_target() {
    replay("corpus", 1);
}

/// The targets reach what they check: the fast YAML reader takes the examples (so the
/// differential compares something), and a portal request gets to the store's rules.
#[test]
fn the_targets_reach_the_code_they_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let acme = std::fs::read(root.join("examples/accounts/acme.yaml")).unwrap();
    assert!(rolecall::fuzzing::manifest(&acme));
    assert!(!rolecall::fuzzing::manifest(b"a: |\n  block\n"));
    let put = |head: &[u8], body: &str| {
        let mut input = head.to_vec();
        input.extend_from_slice(body.as_bytes());
        rolecall::fuzzing::portal_request(&input)
    };
    let roles = r#"{"roles":[{"name":"cockpit-access"}]}"#;
    // A new member: created.
    assert_eq!(
        put(b"\x00\x0010042\ncarol@acme.example\n", roles),
        Some(201)
    );
    // The seeded member with a stale If-Match: 412.
    assert_eq!(put(b"\x00\x0210042\nbob@acme.example\n", roles), Some(412));
    // Alice, the seeded admin, may not take her own last admin role away: 422.
    assert_eq!(
        put(b"\x00\x0110042\nalice@acme.example\n", roles),
        Some(422)
    );
    // A body that is not JSON: 422, a problem document.
    assert_eq!(put(b"\x00\x0010042\ncarol@acme.example\n", "{"), Some(422));
    for (_, run) in TARGETS {
        run(b"");
        run(b"\x00\x01\xff");
    }
}
