//! Reading without positions: a valid document straight into JSON, with the few positions
//! its declarations point at ([`Marks`]).

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::*;

/// A document read straight into JSON: the fast path for the common case of a valid document.
/// It reads exactly what [`Node::to_json`] of the positioned tree would give, plus the few
/// positions every valid declaration carries ([`Marks`]); any other position (a problem to
/// report) comes from reading the file again with them all.
struct Plain(serde_json::Value);

/// Where a value being read sits, as far as [`Marks`] cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::manifest) enum At {
    Other,
    Root,
    Spec,
    Members,
    Member(usize),
    MemberRoles(usize),
    Contacts,
    SpecRoles,
}

impl At {
    pub(in crate::manifest) fn child(self, key: &str) -> At {
        match (self, key) {
            (At::Root, "spec") => At::Spec,
            (At::Spec, "members") => At::Members,
            (At::Spec, "contacts") => At::Contacts,
            (At::Spec, "roles") => At::SpecRoles,
            (At::Member(i), "roles") => At::MemberRoles(i),
            _ => At::Other,
        }
    }

    /// Where item `i` of the list at `self` sits.
    pub(in crate::manifest) fn item(self, i: usize) -> At {
        match self {
            At::Members => At::Member(i),
            _ => At::Other,
        }
    }
}

/// The positions of a document that its declarations point at: the spec, each member and
/// contact of a CustomerAccount, each role of a member or of an AccountMember.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Marks {
    spec: Option<Pos>,
    members: Vec<Pos>,
    member_roles: Vec<Vec<Pos>>,
    contacts: Vec<Pos>,
    spec_roles: Vec<Pos>,
}

impl Marks {
    pub(in crate::manifest) fn record_spec(&mut self, pos: Pos) {
        self.spec = Some(pos);
    }

    /// The position of item `i` of the list at `list`.
    pub(in crate::manifest) fn record_item(&mut self, list: At, i: usize, pos: Pos) {
        fn put(v: &mut Vec<Pos>, i: usize, pos: Pos) {
            if v.len() <= i {
                v.resize(i + 1, Pos::default());
            }
            v[i] = pos;
        }
        match list {
            At::Members => put(&mut self.members, i, pos),
            At::Contacts => put(&mut self.contacts, i, pos),
            At::SpecRoles => put(&mut self.spec_roles, i, pos),
            At::MemberRoles(m) => {
                if self.member_roles.len() <= m {
                    self.member_roles.resize(m + 1, Vec::new());
                }
                put(&mut self.member_roles[m], i, pos);
            }
            _ => {}
        }
    }

    /// The marks of a positioned document, as the readings without positions record them.
    pub(crate) fn of_tree(root: &Node) -> Marks {
        let mut marks = Marks::default();
        let items = |node: &Node| match &node.value {
            Value::Seq(items) => items.iter().map(|n| n.pos).collect(),
            _ => Vec::new(),
        };
        let Some(spec) = root.get("spec") else {
            return marks;
        };
        marks.spec = Some(spec.pos);
        if let Some(members) = spec.get("members") {
            marks.members = items(members);
            if let Value::Seq(list) = &members.value {
                for (i, member) in list.iter().enumerate() {
                    let roles: Vec<Pos> = member.get("roles").map(items).unwrap_or_default();
                    if !roles.is_empty() {
                        if marks.member_roles.len() <= i {
                            marks.member_roles.resize(i + 1, Vec::new());
                        }
                        marks.member_roles[i] = roles;
                    }
                }
            }
        }
        marks.contacts = spec.get("contacts").map(items).unwrap_or_default();
        marks.spec_roles = spec.get("roles").map(items).unwrap_or_default();
        marks
    }

    pub(super) fn get(&self, path: &Path) -> Option<Pos> {
        let spec = |s: &Seg| matches!(s, Seg::Key(k) if k == "spec");
        let key = |s: &Seg, name: &str| matches!(s, Seg::Key(k) if k == name);
        match path.0.as_slice() {
            [s] if spec(s) => self.spec,
            [s, l, Seg::Index(i)] if spec(s) && key(l, "members") => self.members.get(*i).copied(),
            [s, l, Seg::Index(i)] if spec(s) && key(l, "contacts") => {
                self.contacts.get(*i).copied()
            }
            [s, l, Seg::Index(i)] if spec(s) && key(l, "roles") => self.spec_roles.get(*i).copied(),
            [s, l, Seg::Index(i), r, Seg::Index(j)]
                if spec(s) && key(l, "members") && key(r, "roles") =>
            {
                self.member_roles.get(*i)?.get(*j).copied()
            }
            _ => None,
        }
    }
}

thread_local! {
    /// Where the value being read sits, and the marks of the document being read: serde
    /// gives a `Deserialize` impl no context, and documents are read one at a time per thread.
    static READING: std::cell::RefCell<(At, Marks)> = std::cell::RefCell::new((At::Other, Marks::default()));
}

fn reading_at() -> At {
    READING.with(|r| r.borrow().0)
}

fn set_reading_at(at: At) -> At {
    READING.with(|r| std::mem::replace(&mut r.borrow_mut().0, at))
}

impl<'de> Deserialize<'de> for Plain {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PlainVisitor { at: reading_at() })
            .map(Plain)
    }
}

/// A whole document: its root's position, its value and its marks.
struct PlainDocument {
    root: Pos,
    value: serde_json::Value,
    marks: Marks,
}

/// The root of a document; resets the marks.
struct PlainRoot(serde_json::Value, Marks);

impl<'de> Deserialize<'de> for PlainRoot {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        READING.with(|r| *r.borrow_mut() = (At::Root, Marks::default()));
        let value = d.deserialize_any(PlainVisitor { at: At::Root })?;
        let marks = READING.with(|r| std::mem::take(&mut r.borrow_mut().1));
        Ok(PlainRoot(value, marks))
    }
}

impl<'de> Deserialize<'de> for PlainDocument {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<PlainRoot>::deserialize(d)?;
        let PlainRoot(value, marks) = spanned.value;
        Ok(PlainDocument {
            root: Pos::from(&spanned.referenced),
            value,
            marks,
        })
    }
}

struct PlainVisitor {
    at: At,
}

fn record_spec(pos: Pos) {
    READING.with(|r| r.borrow_mut().1.record_spec(pos));
}

fn record_item(list: At, i: usize, pos: Pos) {
    READING.with(|r| r.borrow_mut().1.record_item(list, i, pos));
}

impl<'de> Visitor<'de> for PlainVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        ValueVisitor.visit_u64(v).map(plain_scalar)
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
        ValueVisitor.visit_i128(v).map(plain_scalar)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
        ValueVisitor.visit_u128(v).map(plain_scalar)
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(plain_scalar(Value::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
        Ok(String::from_utf8_lossy(v).into_owned().into())
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        let list = self.at;
        let marked = matches!(
            list,
            At::Members | At::Contacts | At::SpecRoles | At::MemberRoles(_)
        );
        loop {
            let i = items.len();
            let before = set_reading_at(list.item(i));
            let next = if marked {
                seq.next_element::<Spanned<Plain>>().map(|o| {
                    o.map(|s| {
                        record_item(list, i, Pos::from(&s.referenced));
                        s.value.0
                    })
                })
            } else {
                seq.next_element::<Plain>().map(|o| o.map(|p| p.0))
            };
            set_reading_at(before);
            match next? {
                Some(v) => items.push(v),
                None => break,
            }
        }
        Ok(serde_json::Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = serde_json::Map::new();
        while let Some(KeyText(key)) = map.next_key::<KeyText>()? {
            let child = self.at.child(&key);
            let before = set_reading_at(child);
            let value = if child == At::Spec {
                map.next_value::<Spanned<Plain>>().map(|s| {
                    record_spec(Pos::from(&s.referenced));
                    s.value.0
                })
            } else {
                map.next_value::<Plain>().map(|p| p.0)
            };
            set_reading_at(before);
            entries.insert(key, value?);
        }
        Ok(serde_json::Value::Object(entries))
    }
}

/// A scalar as [`Node::to_json`] writes it.
fn plain_scalar(v: Value) -> serde_json::Value {
    Node {
        pos: Pos::default(),
        value: v,
    }
    .to_json()
}

/// Every document of a YAML stream as JSON with the position of its root and its [`Marks`],
/// or `None` when the stream is not valid YAML (then [`parse_documents`] says where). Empty
/// documents are skipped, as by [`parse_documents`], so the n-th value is the n-th node there.
pub fn parse_plain(text: &str) -> Option<Vec<(Pos, Marks, serde_json::Value)>> {
    serde_saphyr::from_multiple_with_options::<PlainDocument>(text, options())
        .ok()
        .map(|docs| {
            docs.into_iter()
                .map(|d| (d.root, d.marks, d.value))
                .collect()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The marks read without the tree are the positions the tree gives, and a path they do
    /// not hold is left to the tree.
    #[test]
    fn marks_are_the_positions_of_the_tree() {
        let text = "# fleet\n---\napiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {name: a}\nspec:\n  customerNumber: \"1\"\n  members:\n    - email: a@x.example\n      roles: [cockpit-access, {name: customer-admin, until: 2027-01-01}]\n    -   email: b@x.example\n        roles:\n          - technical-contact\n  contacts:\n    - {email: c@x.example, notifications: [invoices]}\n---\napiVersion: rolecall.dev/v1alpha1\nkind: AccountMember\nmetadata: {name: m}\nspec:\n  accountRef: {name: a}\n  email: d@x.example\n  roles:\n  - cockpit-access\n  - {name: technical-contact}\n";
        let plain = parse_plain(text).unwrap();
        let trees = parse_documents(text).unwrap();
        assert_eq!(plain.len(), 2);
        let spec = Path::root().key("spec");
        let paths = [
            spec.clone(),
            spec.key("members").index(0),
            spec.key("members").index(1),
            spec.key("members").index(0).key("roles").index(0),
            spec.key("members").index(0).key("roles").index(1),
            spec.key("members").index(1).key("roles").index(0),
            spec.key("contacts").index(0),
            spec.key("roles").index(0),
            spec.key("roles").index(1),
        ];
        for ((root, marks, value), tree) in plain.iter().zip(&trees) {
            assert_eq!(*root, tree.pos);
            assert_eq!(*value, tree.to_json());
            for path in &paths {
                if tree.at(path).is_some() {
                    assert_eq!(marks.get(path), Some(tree.pos_of(path)), "{path}");
                } else {
                    assert_eq!(marks.get(path), None, "{path}");
                }
            }
            assert_eq!(marks.get(&spec.key("members").index(0).key("email")), None);
        }
        assert_eq!(
            plain[0].1.get(&paths[2]),
            Some(Pos {
                line: 11,
                column: 9
            })
        );
    }

    /// Scalars read without positions are what the positioned reading gives, and what one
    /// reading refuses the other refuses too.
    #[test]
    fn plain_scalars_match_the_tree() {
        let scalars = [
            "1",
            "-2",
            "3.5",
            ".inf",
            "-.inf",
            ".nan",
            "true",
            "false",
            "True",
            "~",
            "null",
            "''",
            "\"x\"",
            "2027-01-01",
            "0x1F",
            "0o17",
            "1e3",
            "18446744073709551615",
            "99999999999999999999999",
            "yes",
            "No",
            "on",
            "!!str 12",
            "&a 5",
            "[]",
            "{}",
            "'",
            "- x",
            ":",
            "a: b: c",
            "\"\\u0000\"",
            "12:30",
        ];
        for s in scalars {
            for text in [format!("v: {s}\n"), format!("{s}: v\n"), format!("- {s}\n")] {
                let plain = parse_plain(&text);
                let trees = parse_documents(&text);
                match (plain, trees) {
                    (Some(p), Ok(t)) => {
                        assert_eq!(p.len(), t.len(), "{text:?}");
                        for (p, t) in p.iter().zip(&t) {
                            assert_eq!(p.2, t.to_json(), "{text:?}");
                        }
                    }
                    (None, Err(_)) => {}
                    (p, t) => panic!("{text:?}: plain {p:?}, tree {t:?}"),
                }
            }
        }
    }
}
