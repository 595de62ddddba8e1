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
mod tests;
