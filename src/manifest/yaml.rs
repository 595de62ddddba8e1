//! YAML documents as trees of positioned nodes, read with serde-saphyr.
//!
//! Every node keeps the line and column it was written at, and every mapping key its own, so
//! that any check — structural or semantic — can point at the exact place in the file.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl From<&serde_saphyr::Location> for Pos {
    fn from(l: &serde_saphyr::Location) -> Self {
        Pos {
            line: l.line() as u32,
            column: l.column() as u32,
        }
    }
}

/// A YAML node and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One key of a mapping, with the key's own position.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

/// One segment of a field path: `spec`, `members`, `[1]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    /// Nearly every key is one of the schema's own names: borrowed, not allocated, since a
    /// path is made for every field of every member of a large fleet.
    Key(Cow<'static, str>),
    Index(usize),
}

/// A field path such as `spec.members[1].email`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Path(pub Vec<Seg>);

impl Path {
    pub fn root() -> Self {
        Path(Vec::new())
    }
    pub fn key(&self, k: impl Into<Cow<'static, str>>) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.into()));
        p
    }
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
    /// Parses a JSON pointer (`/spec/members/1/email`) into a path.
    pub fn from_pointer(pointer: &str) -> Self {
        let mut p = Path::root();
        for raw in pointer.split('/').skip(1) {
            let seg = raw.replace("~1", "/").replace("~0", "~");
            match seg.parse::<usize>() {
                Ok(i) => p.0.push(Seg::Index(i)),
                Err(_) => p.0.push(Seg::Key(Cow::Owned(seg))),
            }
        }
        p
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The node at `path`, if the document has it.
    pub fn at(&self, path: &Path) -> Option<&Node> {
        let mut node = self;
        for seg in &path.0 {
            node = match (seg, &node.value) {
                (Seg::Key(k), Value::Map(_)) => node.get(k)?,
                (Seg::Index(i), Value::Seq(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Where to point for `path`: the node itself, or the closest ancestor the document has.
    pub fn pos_of(&self, path: &Path) -> Pos {
        let mut node = self;
        for seg in &path.0 {
            let next = match (seg, &node.value) {
                (Seg::Key(k), Value::Map(_)) => node.get(k),
                (Seg::Index(i), Value::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.pos
    }

    /// Where the key of the last segment of `path` was written (for unknown fields).
    pub fn key_pos_of(&self, path: &Path) -> Option<Pos> {
        let (last, parent) = path.0.split_last()?;
        let parent = self.at(&Path(parent.to_vec()))?;
        match last {
            Seg::Key(k) => parent.entry(k).map(|e| e.key_pos),
            Seg::Index(_) => None,
        }
    }

    /// A short description for messages: `a string "abc"`, `a list`, `a mapping`.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "nothing (null)".into(),
            Value::Bool(b) => format!("a boolean ({b})"),
            Value::Int(i) => format!("a number ({i})"),
            Value::Float(x) => format!("a number ({x})"),
            Value::Str(s) => format!("a string ({})", quote_short(s)),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }

    /// The node as JSON, for schema validation and typed deserialisation.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(x) => serde_json::Number::from_f64(*x)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect())
            }
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

pub use crate::domain::text::quote_short;

mod plain;

pub(super) use plain::At;
pub use plain::{Marks, parse_plain};

// --- reading -------------------------------------------------------------------------------

/// The value part of a node; positions come from the `Spanned` wrapper around it.
struct RawValue(Value);

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<RawValue>::deserialize(d)?;
        Ok(Node {
            pos: Pos::from(&spanned.referenced),
            value: spanned.value.0,
        })
    }
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor).map(RawValue)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        match i64::try_from(v) {
            Ok(i) => Ok(Value::Int(i)),
            Err(_) => Ok(Value::Float(v as f64)),
        }
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v)
            .map(Value::Int)
            .unwrap_or(Value::Float(v as f64)))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(i64::try_from(v)
            .map(Value::Int)
            .unwrap_or(Value::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(node) = seq.next_element::<Node>()? {
            items.push(node);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries: Vec<Entry> = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Node>()?;
            entries.push(Entry {
                key: key.value.0,
                key_pos: Pos::from(&key.referenced),
                value,
            });
        }
        Ok(Value::Map(entries))
    }
}

/// A mapping key as text: YAML allows `1: x` or `true: x`, manifests only know string keys,
/// so other scalars become their text and the schema rejects them by name.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<KeyText, E> {
                Ok(KeyText(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".into()))
            }
            fn visit_none<E>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<KeyText, A::Error> {
                Err(de::Error::custom("a list cannot be a mapping key"))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<KeyText, A::Error> {
                Err(de::Error::custom("a mapping cannot be a mapping key"))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

/// Where the nodes of one document were written, read only when a position is asked for: a
/// document that passes every check never pays for the positioned tree.
#[derive(Debug, Clone)]
pub enum Positions {
    /// The tree is at hand (the document was read with positions).
    Tree(Box<Node>),
    /// The `index`-th document of a file, read again on the first question that its root and
    /// marks do not answer.
    Later {
        file: std::sync::Arc<LaterFile>,
        index: usize,
        root: Pos,
        marks: Box<Marks>,
    },
}

/// A file's text, or where to read it again, and, once asked for, its documents with
/// positions.
#[derive(Debug)]
pub struct LaterFile {
    text: LaterText,
    trees: std::sync::OnceLock<Vec<Node>>,
}

#[derive(Debug)]
enum LaterText {
    /// Kept: text that cannot be read again (standard input, a controller's objects).
    Held(std::sync::Arc<str>),
    /// Read again from the file when a position is asked for, and used only if it is still
    /// the text that was checked (the same length and hash): a fleet's text is not held while
    /// it is checked and planned, for the few documents with a problem to place.
    OnDisk {
        path: std::path::PathBuf,
        len: usize,
        hash: u64,
    },
}

fn text_hash(text: &str) -> u64 {
    use std::hash::Hasher;
    // The standard hasher's fixed keys: the same text hashes the same within a run.
    let mut h = std::hash::DefaultHasher::new();
    h.write(text.as_bytes());
    h.finish()
}

impl LaterFile {
    pub fn new(text: std::sync::Arc<str>) -> Self {
        LaterFile {
            text: LaterText::Held(text),
            trees: std::sync::OnceLock::new(),
        }
    }

    /// A file read from `path` as `text`, which is not kept.
    pub fn on_disk(path: std::path::PathBuf, text: &str) -> Self {
        LaterFile {
            text: LaterText::OnDisk {
                path,
                len: text.len(),
                hash: text_hash(text),
            },
            trees: std::sync::OnceLock::new(),
        }
    }

    /// The `index`-th document with positions; the file is read again once, on the first
    /// call (it parsed before, so it parses again; should it not, or should the file have
    /// changed since, there is no tree).
    pub fn tree(&self, index: usize) -> Option<&Node> {
        self.trees
            .get_or_init(|| {
                #[cfg(test)]
                REREADS.with(|n| n.set(n.get() + 1));
                match &self.text {
                    LaterText::Held(text) => parse_documents(text).unwrap_or_default(),
                    LaterText::OnDisk { path, len, hash } => std::fs::read(path)
                        .ok()
                        .filter(|bytes| bytes.len() == *len)
                        .and_then(|bytes| String::from_utf8(bytes).ok())
                        .filter(|text| text_hash(text) == *hash)
                        .and_then(|text| parse_documents(&text).ok())
                        .unwrap_or_default(),
                }
            })
            .get(index)
    }
}

#[cfg(test)]
thread_local! {
    /// How often this thread read a file again for positions.
    pub static REREADS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Positions {
    /// Where to point for `path` (see [`Node::pos_of`]); the document's start should the
    /// tree be missing.
    pub fn pos_of(&self, path: &Path) -> Pos {
        if let Positions::Later { root, marks, .. } = self {
            if path.0.is_empty() {
                return *root;
            }
            if let Some(pos) = marks.get(path) {
                return pos;
            }
        }
        match self {
            Positions::Tree(node) => node.pos_of(path),
            // Without the tree (a file changed since it was read), the document's start.
            Positions::Later {
                file, index, root, ..
            } => file.tree(*index).map_or(*root, |t| t.pos_of(path)),
        }
    }
}

/// A YAML syntax problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Largest manifest file read; larger ones are refused before parsing.
pub const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;

fn options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.strict_booleans = true;
    options.with_snippet = false;
    if let Some(budget) = options.budget.as_mut() {
        // Manifests are shallow; a deep document is an attack or a mistake, and the
        // tree is built recursively.
        budget.max_depth = 64;
        budget.max_documents = 100_000;
        // Big fleets live in big files: the byte limit (MAX_FILE_BYTES) bounds the work.
        budget.max_nodes = 4_000_000;
        budget.max_events = 8_000_000;
    }
    // Aliases are legitimate but rare in manifests; an alias bomb ("billion laughs") is not.
    options.alias_limits.max_total_replayed_events = 100_000;
    options
}

/// Parses every document of a YAML stream. Empty documents are skipped.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, SyntaxError> {
    serde_saphyr::from_multiple_with_options::<Node>(text, options()).map_err(|e| {
        let pos = e
            .location()
            .map(|l| Pos::from(&l))
            .unwrap_or(Pos { line: 1, column: 1 });
        SyntaxError {
            pos,
            message: syntax_message(&e),
        }
    })
}

/// serde-saphyr's message without its own location suffix (we print ours first).
fn syntax_message(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("").trim();
    let first = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    let first = first.trim_end_matches('.');
    if first.starts_with("duplicate mapping key") {
        let key = first
            .trim_start_matches("duplicate mapping key:")
            .split(',')
            .next()
            .unwrap_or("")
            .trim();
        return format!("invalid YAML: the key {key:?} appears twice in the same mapping");
    }
    if first.contains("recursion limit") || first.contains("depth") {
        return "invalid YAML: nested deeper than the 64 levels rolecall reads".to_string();
    }
    if first.contains("budget") || first.contains("alias") && first.contains("limit") {
        return "invalid YAML: the document expands to more than rolecall reads (too many nodes or aliases, as in an alias bomb)".to_string();
    }
    if first.is_empty() {
        "this is not valid YAML".to_string()
    } else {
        format!("invalid YAML: {first}")
    }
}
