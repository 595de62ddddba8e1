//! The simple YAML that manifests are written in, read straight into JSON.
//!
//! Nearly every manifest is block mappings and sequences of one-line plain or quoted scalars,
//! with one-line flow collections (`roles: [cockpit-access]`). This reader takes exactly that
//! subset, line by line, many times faster than the general parser. Anything else — anchors,
//! tags, block or multi-line scalars, a scalar whose type is not obvious (`yes`, `0x1F`,
//! `1e3`), a duplicate key, an empty value, a tab, a directive — makes it decline, and the
//! file is read by serde-saphyr ([`super::yaml::parse_plain`]), which also reports every
//! problem. So this reader never decides that a file is wrong: it either reads each document
//! exactly as serde-saphyr does (the tests compare the two on every corpus of the repository
//! and on thousands of mutated files) or says `None`.

use serde_json::{Map, Value};

use super::yaml::{At, Marks, Pos};

/// Deeper documents are left to serde-saphyr, which enforces its own limit and says so.
const MAX_DEPTH: usize = 48;

/// serde-saphyr's budget refuses streams of more documents; leave those to it.
const MAX_DOCUMENTS: usize = 100_000;

/// One line with content (blank and comment-only lines are dropped).
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    /// 1-based line number.
    number: u32,
    /// The line without its trailing spaces.
    text: &'a str,
    /// Byte offset where the content starts: the indentation, or, for a mapping written on
    /// the line of its sequence dash (`- email: …`), the offset of its first key.
    indent: usize,
    /// A `---` document separator.
    separator: bool,
}

impl<'a> Line<'a> {
    fn content(&self) -> &'a str {
        &self.text[self.indent..]
    }

    fn is_item(&self) -> bool {
        let c = self.content();
        c == "-" || c.starts_with("- ")
    }

    /// For a sequence item, the offset of its value after the dash.
    fn item_offset(&self) -> usize {
        let after_dash = &self.text[self.indent + 1..];
        self.text.len() - after_dash.trim_start_matches(' ').len()
    }

    /// The 1-based column of byte `offset` (columns count characters).
    fn column(&self, offset: usize) -> u32 {
        let before = &self.text[..offset];
        let n = if before.is_ascii() {
            offset
        } else {
            before.chars().count()
        };
        n as u32 + 1
    }

    fn pos(&self, offset: usize) -> Pos {
        Pos {
            line: self.number,
            column: self.column(offset),
        }
    }
}

/// Every document of `text` as JSON with its root's position and its [`Marks`], as
/// [`super::yaml::parse_plain`] reads them; `None` when the text is not in the simple subset.
pub fn parse(text: &str) -> Option<Vec<(Pos, Marks, Value)>> {
    let lines = lines(text)?;
    let mut reader = Reader {
        lines,
        next: 0,
        depth: 0,
        marks: Marks::default(),
    };
    let mut documents = Vec::new();
    loop {
        let mut separators = 0;
        while reader.lines.get(reader.next).is_some_and(|l| l.separator) {
            reader.next += 1;
            separators += 1;
        }
        // An empty document (`---` followed by `---` or by the end) is a null in YAML, which
        // the loader skips: leave such streams to serde-saphyr, so that every stream this reader
        // takes reads as the YAML test suite says (tests/yaml_suite.rs).
        let Some(first) = reader.lines.get(reader.next).copied() else {
            if separators > 0 {
                return None;
            }
            break;
        };
        if separators > 1 {
            return None;
        }
        if first.indent != 0 || first.is_item() {
            return None;
        }
        let value = reader.block_map(0, At::Root)?;
        if reader.lines.get(reader.next).is_some_and(|l| !l.separator) {
            return None;
        }
        documents.push((first.pos(0), std::mem::take(&mut reader.marks), value));
        if documents.len() > MAX_DOCUMENTS {
            return None;
        }
    }
    Some(documents)
}

/// The lines with content, or `None` for text outside the subset at the character level.
fn lines(text: &str) -> Option<Vec<Line<'_>>> {
    // Tabs, carriage returns, other control characters, a byte order mark and the Unicode
    // line breaks all have rules of their own in YAML.
    if text.bytes().any(|b| (b < 0x20 && b != b'\n') || b == 0x7f) {
        return None;
    }
    if !text.is_ascii()
        && text.chars().any(|c| {
            c != '\n' && c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}')
        })
    {
        return None;
    }
    let mut lines = Vec::new();
    for (n, raw) in text.split('\n').enumerate() {
        let line = raw.trim_end_matches(' ');
        let content = line.trim_start_matches(' ');
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        let separator = indent == 0 && content == "---";
        if indent == 0
            && !separator
            && (content.starts_with("---")
                || content.starts_with("...")
                || content.starts_with('%'))
        {
            return None;
        }
        lines.push(Line {
            number: u32::try_from(n + 1).ok()?,
            text: line,
            indent,
            separator,
        });
    }
    Some(lines)
}

struct Reader<'a> {
    lines: Vec<Line<'a>>,
    /// The next line to read.
    next: usize,
    depth: usize,
    marks: Marks,
}

impl<'a> Reader<'a> {
    /// The next line of the current document.
    fn peek(&self) -> Option<Line<'a>> {
        self.lines.get(self.next).copied().filter(|l| !l.separator)
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// A block mapping whose keys sit at byte offset `indent` of their lines.
    fn block_map(&mut self, indent: usize, at: At) -> Option<Value> {
        self.enter()?;
        let mut map = Map::new();
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let (key, after) = key(line.content())?;
            if map.contains_key(key) {
                return None;
            }
            let child = at.child(key);
            let rest = &line.text[indent + after..];
            let value_at = line.text.len() - rest.trim_start_matches(' ').len();
            let (value, pos) = if value_at == line.text.len() {
                // `key:` with the value on the lines below: deeper, or a sequence at the
                // key's own indentation.
                self.next += 1;
                let next = self.peek()?;
                // serde-saphyr places a block sequence at its first item.
                let pos = if next.is_item() {
                    next.pos(next.item_offset())
                } else {
                    next.pos(next.indent)
                };
                let value = if next.indent > indent && next.is_item() {
                    self.block_seq(next.indent, child)?
                } else if next.indent > indent {
                    self.block_map(next.indent, child)?
                } else if next.indent == indent && next.is_item() {
                    self.block_seq(indent, child)?
                } else {
                    return None;
                };
                (value, pos)
            } else {
                let value = self.inline(line, value_at, child)?;
                self.next += 1;
                self.no_continuation(indent)?;
                (value, line.pos(value_at))
            };
            if child == At::Spec {
                self.marks.record_spec(pos);
            }
            map.insert(key.to_owned(), value);
        }
        self.leave();
        Some(Value::Object(map))
    }

    /// A block sequence whose dashes sit at byte offset `indent`.
    fn block_seq(&mut self, indent: usize, at: At) -> Option<Value> {
        self.enter()?;
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent {
                return None;
            }
            if !line.is_item() {
                // A key at the indentation of the sequence: the mapping it is the value of
                // goes on (or, should there be none, the file is left to serde-saphyr).
                break;
            }
            let item_at = line.item_offset();
            let item = &line.text[item_at..];
            let i = items.len();
            let child = at.item(i);
            if item.is_empty() || item.starts_with('#') || item == "-" || item.starts_with("- ") {
                return None;
            }
            let value = if key(item).is_some() {
                // `- key: value`: a mapping whose keys sit at the column of this first one.
                self.lines[self.next].indent = item_at;
                self.block_map(item_at, child)?
            } else {
                let value = self.inline(line, item_at, child)?;
                self.next += 1;
                self.no_continuation(indent)?;
                value
            };
            self.marks.record_item(at, i, line.pos(item_at));
            items.push(value);
        }
        self.leave();
        Some(Value::Array(items))
    }

    /// After a one-line value in a collection at `indent`, a deeper line would continue it
    /// (a multi-line plain scalar): not in the subset.
    fn no_continuation(&self, indent: usize) -> Option<()> {
        match self.peek() {
            Some(next) if next.indent > indent => None,
            _ => Some(()),
        }
    }

    /// The value written from byte `offset` to the end of `line` (a comment may follow).
    fn inline(&mut self, line: Line<'a>, offset: usize, at: At) -> Option<Value> {
        let text = line.text;
        let (value, end) = match text.as_bytes()[offset] {
            b'[' | b'{' => {
                let mut p = offset;
                let v = self.flow(line, &mut p, at)?;
                (v, p)
            }
            b'"' => double_quoted(text, offset)?,
            b'\'' => single_quoted(text, offset)?,
            _ => {
                let end = text[offset..].find(" #").map_or(text.len(), |e| offset + e);
                (plain(text[offset..end].trim_end_matches(' '), false)?, end)
            }
        };
        let rest = &text[end..];
        let after = rest.trim_start_matches(' ');
        (after.is_empty() || after.starts_with('#') && after.len() < rest.len()).then_some(value)
    }

    /// A flow value starting at byte `*p` of `line`, which must also end on it.
    fn flow(&mut self, line: Line<'a>, p: &mut usize, at: At) -> Option<Value> {
        let text = line.text;
        skip_spaces(text, p);
        match *text.as_bytes().get(*p)? {
            b'[' => self.flow_seq(line, p, at),
            b'{' => self.flow_map(line, p, at),
            b'"' => {
                let (v, end) = double_quoted(text, *p)?;
                *p = end;
                Some(v)
            }
            b'\'' => {
                let (v, end) = single_quoted(text, *p)?;
                *p = end;
                Some(v)
            }
            _ => {
                let rest = &text[*p..];
                let len = rest
                    .find([',', ']', '}', '#', ':', '[', '{'])
                    .unwrap_or(rest.len());
                let value = plain(rest[..len].trim_end_matches(' '), true)?;
                *p += len;
                Some(value)
            }
        }
    }

    fn flow_seq(&mut self, line: Line<'a>, p: &mut usize, at: At) -> Option<Value> {
        self.enter()?;
        let text = line.text;
        *p += 1;
        let mut items = Vec::new();
        while !closes(text, p, b']')? {
            let i = items.len();
            let pos = line.pos(*p);
            let value = self.flow(line, p, at.item(i))?;
            self.marks.record_item(at, i, pos);
            items.push(value);
            if !next_flow_item(text, p, b']')? {
                break;
            }
        }
        self.leave();
        Some(Value::Array(items))
    }

    fn flow_map(&mut self, line: Line<'a>, p: &mut usize, at: At) -> Option<Value> {
        self.enter()?;
        let text = line.text;
        *p += 1;
        let mut map = Map::new();
        while !closes(text, p, b'}')? {
            let (key, after) = key(&text[*p..])?;
            if map.contains_key(key) {
                return None;
            }
            *p += after;
            skip_spaces(text, p);
            let child = at.child(key);
            let pos = line.pos(*p);
            let value = self.flow(line, p, child)?;
            if child == At::Spec {
                self.marks.record_spec(pos);
            }
            map.insert(key.to_owned(), value);
            if !next_flow_item(text, p, b'}')? {
                break;
            }
        }
        self.leave();
        Some(Value::Object(map))
    }
}

/// Whether a flow collection ends here, with `close` after optional spaces (taken if so).
fn closes(text: &str, p: &mut usize, close: u8) -> Option<bool> {
    skip_spaces(text, p);
    let closed = *text.as_bytes().get(*p)? == close;
    if closed {
        *p += 1;
    }
    Some(closed)
}

/// After an item of a flow collection: `,` (true, another item or the end may follow) or
/// `close` (false, taken); anything else is outside the subset.
fn next_flow_item(text: &str, p: &mut usize, close: u8) -> Option<bool> {
    skip_spaces(text, p);
    let c = *text.as_bytes().get(*p)?;
    if c != b',' && c != close {
        return None;
    }
    *p += 1;
    Some(c == b',')
}

fn skip_spaces(text: &str, p: &mut usize) {
    while text.as_bytes().get(*p) == Some(&b' ') {
        *p += 1;
    }
}

/// A mapping key at the start of `s` — a name such as `apiVersion` or
/// `app.kubernetes.io/name` followed by `:` and a space or the end — and the offset after
/// the colon.
fn key(s: &str) -> Option<(&str, usize)> {
    let b = s.as_bytes();
    if !b.first()?.is_ascii_alphabetic() {
        return None;
    }
    let len = b
        .iter()
        .position(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'/')))
        .unwrap_or(b.len());
    if b.get(len) != Some(&b':') || !matches!(b.get(len + 1), None | Some(b' ')) {
        return None;
    }
    let key = &s[..len];
    (!special_word(key)).then_some((key, len + 1))
}

/// Words some YAML schema reads as something other than a string.
fn special_word(s: &str) -> bool {
    const WORDS: [&str; 12] = [
        "true", "false", "null", "yes", "no", "on", "off", "y", "n", "nan", "inf", "infinity",
    ];
    s.len() <= 8 && WORDS.iter().any(|w| w.eq_ignore_ascii_case(s))
}

/// A plain scalar whose type is obvious: a string starting with a letter, `true` or `false`,
/// a decimal integer, or a date (read as a string); `None` for anything else.
fn plain(s: &str, flow: bool) -> Option<Value> {
    let b = s.as_bytes();
    let first = *b.first()?;
    if s.contains([':', '#']) || flow && s.contains([',', '[', ']', '{', '}']) {
        return None;
    }
    if first.is_ascii_alphabetic() || s.chars().next().is_some_and(char::is_alphabetic) {
        return match s {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => (!special_word(s)).then(|| Value::String(s.to_owned())),
        };
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty()
        && digits.len() <= 18
        && digits.bytes().all(|c| c.is_ascii_digit())
        && (digits == "0" && s == "0" || !digits.starts_with('0'))
    {
        return digits
            .parse::<i64>()
            .ok()
            .map(|n| Value::from(if s.starts_with('-') { -n } else { n }));
    }
    let date = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    date.then(|| Value::String(s.to_owned()))
}

/// A double-quoted scalar starting at byte `start` and closing on the same line, with the
/// common escapes only; the value and the offset after the closing quote.
fn double_quoted(text: &str, start: usize) -> Option<(Value, usize)> {
    let mut out = String::new();
    let mut from = start + 1;
    loop {
        let at = from + text[from..].find(['"', '\\'])?;
        out.push_str(&text[from..at]);
        if text.as_bytes()[at] == b'"' {
            return Some((Value::String(out), at + 1));
        }
        out.push(match *text.as_bytes().get(at + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'n' => '\n',
            b't' => '\t',
            _ => return None,
        });
        from = at + 2;
    }
}

/// A single-quoted scalar starting at byte `start` and closing on the same line.
fn single_quoted(text: &str, start: usize) -> Option<(Value, usize)> {
    let mut out = String::new();
    let mut from = start + 1;
    loop {
        let at = from + text[from..].find('\'')?;
        out.push_str(&text[from..at]);
        if text.as_bytes().get(at + 1) == Some(&b'\'') {
            out.push('\'');
            from = at + 2;
        } else {
            return Some((Value::String(out), at + 1));
        }
    }
}

/// How the simple reader and serde-saphyr read one text differently (texts are shown with
/// `{:?}`, so the sentence stays on one line).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Disagreement {
    #[error("the simple reader took {text:?}, which serde-saphyr refuses")]
    Refused { text: String },
    #[error("the simple reader read {text:?} as {simple:?}, serde-saphyr as {plain:?}")]
    Values {
        text: String,
        simple: Vec<(Pos, Marks, Value)>,
        plain: Vec<(Pos, Marks, Value)>,
    },
    #[error("serde-saphyr refuses {text:?} with positions: {message}")]
    RefusedWithPositions { text: String, message: String },
    #[error("{text:?}: {simple} documents read by the simple reader, {positioned} with positions")]
    Count {
        text: String,
        simple: usize,
        positioned: usize,
    },
    /// Each reading is shown as `{root:?} {marks:?} {value}`.
    #[error("{text:?}: document {index} read as {simple}, with positions as {positioned}")]
    Positions {
        text: String,
        index: usize,
        simple: String,
        positioned: String,
    },
}

/// Whether this reader takes `text`, checked against serde-saphyr: `Ok(true)` when it reads
/// each document exactly as [`super::yaml::parse_plain`] does, with the positions the
/// positioned tree ([`super::yaml::parse_documents`]) gives; `Ok(false)` when it declines;
/// `Err` saying how the readings differ. The fuzz target and its regression test call it.
pub(crate) fn agrees_with_serde_saphyr(text: &str) -> Result<bool, Box<Disagreement>> {
    let Some(simple) = parse(text) else {
        return Ok(false);
    };
    let owned = || text.to_string();
    let Some(plain) = super::yaml::parse_plain(text) else {
        return Err(Box::new(Disagreement::Refused { text: owned() }));
    };
    if simple != plain {
        return Err(Box::new(Disagreement::Values {
            text: owned(),
            simple,
            plain,
        }));
    }
    let trees = super::yaml::parse_documents(text).map_err(|e| {
        Box::new(Disagreement::RefusedWithPositions {
            text: owned(),
            message: e.message,
        })
    })?;
    if trees.len() != simple.len() {
        return Err(Box::new(Disagreement::Count {
            text: owned(),
            simple: simple.len(),
            positioned: trees.len(),
        }));
    }
    for (index, ((root, marks, value), tree)) in simple.into_iter().zip(&trees).enumerate() {
        let tree_marks = super::yaml::Marks::of_tree(tree);
        let tree_value = tree.to_json();
        if root != tree.pos || value != tree_value || marks != tree_marks {
            return Err(Box::new(Disagreement::Positions {
                text: owned(),
                index,
                simple: format!("{root:?} {marks:?} {value}"),
                positioned: format!("{:?} {tree_marks:?} {tree_value}", tree.pos),
            }));
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
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
            text.push_str(
                "  contacts:\n    - email: c@x.example\n      notifications: [invoices]\n",
            );
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
            include_str!("../../examples/accounts/acme.yaml").to_owned(),
            include_str!("../../examples/delegated/acme-noc.yaml").to_owned(),
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
}
