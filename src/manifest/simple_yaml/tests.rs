use super::*;
use crate::manifest::yaml::parse_plain;
use proptest::prelude::*;

/// Where this reader takes a text it reads exactly what serde-saphyr reads; whether it
/// took it.
fn agrees(text: &str) -> bool {
    let Some(simple) = parse(text) else {
        return false;
    };
    assert_eq!(Some(simple), parse_plain(text), "{text:?}");
    true
}

/// The YAML texts of the repository: examples, invalid fixtures, and the YAML blocks of
/// the documentation.
fn corpus() -> Vec<(String, String)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let path = e.path();
            let name = path.display().to_string();
            if path.is_dir() {
                walk(&path, out);
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                out.push((name, std::fs::read_to_string(&path).unwrap()));
            } else if name.ends_with(".md") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, block) in text.split("```yaml\n").skip(1).enumerate() {
                    let block = block.split("```").next().unwrap();
                    out.push((format!("{name} block {i}"), block.to_owned()));
                }
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["examples", "tests/fixtures", "docs"] {
        walk(&root.join(dir), &mut out);
    }
    out.push(("README.md".into(), String::new()));
    out
}

/// A fleet as the benchmark writes it.
fn fleet() -> String {
    let mut text = String::from("# generated\n");
    for a in 0..3 {
        text.push_str(&format!(
            "---\napiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: acct-{a}}}\nspec:\n  customerNumber: \"10{a}\"\n  displayName: Customer {a}\n  timeZone: Europe/Zurich\n  members:\n"
        ));
        for m in 0..3 {
            text.push_str(&format!(
                "    - email: person{m}@c{a}.example\n      name: Person {m} (renamed)\n      roles: [cockpit-access, {{name: technical-contact, until: 2027-12-31}}]\n"
            ));
        }
        text.push_str("  contacts:\n    - email: c@x.example\n      notifications: [invoices]\n");
    }
    text
}

#[test]
fn the_repository_examples_are_read_as_serde_saphyr_reads_them() {
    let mut taken = Vec::new();
    for (name, text) in corpus() {
        if agrees(&text) {
            taken.push(name);
        }
    }
    for example in [
        "accounts/acme.yaml",
        "accounts/globex.yaml",
        "delegated/acme-noc.yaml",
    ] {
        assert!(
            taken.iter().any(|n| n.ends_with(example)),
            "{example} is plain YAML and should be read here; taken: {taken:?}"
        );
    }
    assert!(
        agrees(&fleet()),
        "the benchmark's fleet should be read here"
    );
}

#[test]
fn the_subset_reads_what_serde_saphyr_reads() {
    let taken = [
        "a: b\n",
        "a:   b c   \n",
        "a: b # note\n",
        "a:\n- x\n- z\n",
        "a:\n  - x\n  - 'y'\n  - z\n",
        "a: 'it''s'\nb: \"x\\ny \\\"q\\\" \\\\ \\/\"\n",
        "a: [x, {b: c, d: [1, -2]}, 'q', \"r\"]\n",
        "a: [ x , z ]\nb: []\nc: {}\nd: [x,]\n",
        "a: 2027-01-01\nb: 12\nc: -3\nd: 0\n",
        "---\na: b\n---\nc: d\n",
        "a: b\n---\nc: d\n",
        "",
        "\n\n# c\n",
        "x:\n- a: b\n  c: d\n-   e: f\n    g: [h]\n",
        "x:\n  - roles:\n    - a\n  - b\n",
        "x:\n  - roles:\n    - a\n    - b\n",
        "name: Müller\nspec:\n  members:\n    - email: ü@x\n      roles: [aä, {name: ö}, 'é', Ärzte]\n",
        "spec:\n  members:\n  - email: x\n    roles:\n    - a\n    - {name: b, until: 2027-01-01}\n  contacts:\n  - {email: yz}\n",
        "spec: {members: [{email: x, roles: [a, b]}], roles: [c]}\n",
        "app.kubernetes.io/name: x\na-b_c: d\n",
        "a:\n    deeper: 1\nb: 2\n",
        "a: b c, d (e)\n",
        "a: true\nb: [false]\n",
        "a: [b]   # c\n",
    ];
    for text in taken {
        assert!(agrees(text), "should be read here: {text:?}");
    }
    let declined = [
        // Empty documents: YAML reads each as a null.
        "---\n---\na: b\n",
        "a: b\n---\n# only a comment\n---\nc: d\n",
        "a: b\n---\n",
        "---\n",
        "- a\n",
        "a: b\n  c\n",
        "a: b#c\n",
        "a: x: y\n",
        "a: |\n  x\n",
        "a: >\n  x\n",
        "a: &x b\nc: *x\n",
        "a: !!str b\n",
        "a: ~\n",
        "a:\nb: c\n",
        "a: yes\n",
        "a: Yes\n",
        "a: 007\n",
        "a: -0\n",
        "a: 0x1F\n",
        "a: 1e3\n",
        "a: 1.5\n",
        "a: .inf\n",
        "a: b\na: c\n",
        "a: {b: 1, b: 2}\n",
        "a: b\n\tc: d\n",
        "a: b\r\n",
        "a: [x\n  , y]\n",
        "a: \"open\n  end\"\n",
        "a: \"\\u0041\"\n",
        "on: x\n",
        "y: z\n",
        "a:\n  b: c\n d: e\n",
        "a: [x,,]\n",
        "a: [,]\n",
        "a: {b}\n",
        "a: {b:c}\n",
        "? a\n: b\n",
        "%YAML 1.2\n---\na: b\n",
        "a: b\n...\n",
        "--- a: b\n",
        "\u{feff}a: b\n",
        "a: \"x\"y\n",
        "a: 'x'#c\n",
        "- - a\n",
        "a:\n  -\n    b\n",
        "a:\n  - # c\n    b\n",
        "a: [b, c]]\n",
    ];
    for text in declined {
        assert!(
            parse(text).is_none(),
            "should be left to serde-saphyr: {text:?}"
        );
    }
}

/// The share of mutated manifests (in percent) this reader must take, measured over the
/// fixed cases of `the_reader_takes_a_known_share_of_mutated_manifests` (it took 472 of 3000,
/// 15.7%, when this was written).
const MIN_TAKEN_PERCENT: usize = 12;

/// Edits that YAML reads in a special way, for the mutation test.
const EDITS: &[&str] = &[
    "-",
    " ",
    "  ",
    ":",
    ": ",
    "#",
    " #",
    "'",
    "\"",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\n",
    "\n  ",
    "\n- ",
    "a",
    "1",
    "0",
    "- ",
    "&a ",
    "*a",
    "!",
    "|",
    ">",
    "\t",
    "ü",
    "~",
    "---\n",
    "...",
    "yes",
    "0x",
    "\\",
    "?",
    "%",
    "@",
    "`",
    ".",
    "2027-01-01",
    "\r",
    "\u{2028}",
];

/// The texts the mutations start from.
fn bases() -> [String; 4] {
    [
        fleet(),
        include_str!("../../../examples/accounts/acme.yaml").to_owned(),
        include_str!("../../../examples/delegated/acme-noc.yaml").to_owned(),
        "a:\n  - b: [c, {d: e}]\n    f: 'g'\n  - h\n".to_owned(),
    ]
}

/// Replaces `removed` characters at byte `at` (moved back to a character boundary) with
/// `EDITS[edit]`.
fn mutate(text: &mut String, at: usize, edit: usize, removed: usize) {
    let mut i = at.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    let mut end = i;
    for _ in 0..removed {
        end = text[end..]
            .chars()
            .next()
            .map_or(end, |c| end + c.len_utf8());
    }
    text.replace_range(i..end, EDITS[edit]);
}

/// A fixed sequence of pseudo-random numbers (xorshift64*): the same cases on every run.
struct Fixed(u64);

impl Fixed {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

/// The mutation test below must not pass by this reader declining everything: over a
/// fixed set of the same mutations, it takes a known share (and agrees on each one).
#[test]
fn the_reader_takes_a_known_share_of_mutated_manifests() {
    let bases = bases();
    let mut rng = Fixed(0x5eed_0f1a_2b3c_4d5e);
    let cases = 3000;
    let mut taken = 0;
    for _ in 0..cases {
        let mut text = bases[rng.below(bases.len())].clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(text.len() + 1);
            let edit = rng.below(EDITS.len());
            let removed = rng.below(3);
            mutate(&mut text, at, edit, removed);
        }
        if agrees(&text) {
            taken += 1;
        }
    }
    assert!(
        taken * 100 >= cases * MIN_TAKEN_PERCENT,
        "the reader took {taken} of {cases} mutated manifests, fewer than {MIN_TAKEN_PERCENT}%"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// Whatever the text, this reader either declines or agrees with serde-saphyr, and
    /// never panics. (`agrees` asserts the agreement; that it takes a fair share of the
    /// cases at all is the test above.)
    #[test]
    fn mutated_manifests_are_read_as_serde_saphyr_reads_them_or_declined(
        base in 0usize..4,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..EDITS.len(), 0usize..3), 1..4),
    ) {
        let mut text = bases()[base].clone();
        for (at, edit, removed) in edits {
            let i = at.index(text.len() + 1);
            mutate(&mut text, i, edit, removed);
        }
        let _taken = agrees(&text);
    }
}
