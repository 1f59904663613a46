//! Streaming JSON → column builders, driven by the resource's [`Kind`] tree.
//!
//! Each record is deserialized straight into the builders with serde's visitor API: no
//! `serde_json::Value` tree is ever built. Type mismatches are errors that name the field path.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::builder::{Col, StructCol};
use super::schema::Kind;

/// Deserializes one JSON value into `col`, shaped by `kind`.
pub(crate) struct Seed<'a> {
    pub col: &'a mut Col,
    pub kind: &'static Kind,
}

/// Deserializes one JSON object into a struct builder (also used for whole records).
pub(crate) struct StructSeed<'a> {
    pub col: &'a mut StructCol,
    /// Top-level records must be objects; nested objects may be null.
    pub nullable: bool,
}

/// Prefixes a nested error with the field (or `[index]`) it happened in, dropping the inner
/// position so serde_json adds exactly one at the end.
fn prefixed<E: de::Error>(at: impl fmt::Display, inner: impl fmt::Display) -> E {
    let msg = inner.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg);
    let nested_path = msg
        .split_once(": ")
        .is_some_and(|(path, _)| !path.contains(' '));
    if msg.starts_with('[') {
        E::custom(format_args!("{at}{msg}"))
    } else if nested_path {
        E::custom(format_args!("{at}.{msg}"))
    } else {
        E::custom(format_args!("{at}: {msg}"))
    }
}

fn err<E: de::Error>(expected: &str, got: impl fmt::Display) -> E {
    E::custom(format_args!("expected {expected}, found {got}"))
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match (self.kind, self.col) {
            (Kind::Json, Col::Str(s)) => {
                let raw: &RawValue = <&RawValue>::deserialize(d)?;
                let text = raw.get();
                if text == "null" {
                    s.push_null();
                } else {
                    s.push(text);
                }
                Ok(())
            }
            (Kind::Obj(_), Col::Struct(s)) => StructSeed {
                col: s,
                nullable: true,
            }
            .deserialize(d),
            (kind, col) => d.deserialize_any(ScalarVisitor { col, kind }),
        }
    }
}

use serde::Deserialize;

struct ScalarVisitor<'a> {
    col: &'a mut Col,
    kind: &'static Kind,
}

impl ScalarVisitor<'_> {
    fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Int => "an integer",
            Kind::Float => "a number",
            Kind::Bool => "a boolean",
            Kind::Str => "a string",
            Kind::Ts => "a unix timestamp (integer seconds)",
            Kind::Id => "an id string or an expanded object",
            Kind::Meta => "an object of string values",
            Kind::Json => "any JSON value",
            Kind::Obj(_) => "an object",
            Kind::List(_) => "an array",
        }
    }
}

impl<'de> Visitor<'de> for ScalarVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.describe())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.col.push_null();
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.col.push_null();
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        match self.col {
            Col::Bool(d, valid) => {
                d.push(v);
                valid.push(true);
                Ok(())
            }
            _ => Err(err(self.describe(), format_args!("boolean `{v}`"))),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        match self.col {
            Col::Int(d, valid) | Col::Ts(d, valid) => {
                d.push(v);
                valid.push(true);
                Ok(())
            }
            Col::Float(d, valid) => {
                d.push(v as f64);
                valid.push(true);
                Ok(())
            }
            _ => Err(err(self.describe(), format_args!("number `{v}`"))),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        match i64::try_from(v) {
            Ok(i) => self.visit_i64(i),
            Err(_) => match self.col {
                Col::Float(d, valid) => {
                    d.push(v as f64);
                    valid.push(true);
                    Ok(())
                }
                _ => Err(err(
                    self.describe(),
                    format_args!("`{v}`, out of the 64-bit integer range"),
                )),
            },
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        match self.col {
            Col::Float(d, valid) => {
                d.push(v);
                valid.push(true);
                Ok(())
            }
            _ => Err(err(self.describe(), format_args!("number `{v}`"))),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match self.col {
            Col::Str(s) => {
                s.push(v);
                Ok(())
            }
            _ => {
                let shown: String = v.chars().take(60).collect();
                Err(err(self.describe(), format_args!("string {shown:?}")))
            }
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let expected = self.describe();
        match (self.kind, self.col) {
            (
                Kind::List(item),
                Col::List {
                    offsets,
                    child,
                    valid,
                    ..
                },
            ) => {
                let mut i = 0usize;
                while seq
                    .next_element_seed(Seed {
                        col: child,
                        kind: item,
                    })
                    .map_err(|e| prefixed(format_args!("[{i}]"), e))?
                    .is_some()
                {
                    i += 1;
                }
                offsets.push(child.len() as i32);
                valid.push(true);
                Ok(())
            }
            _ => Err(err(expected, "an array")),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let expected = self.describe();
        match self.col {
            // An expanded object (or a deleted stub): keep its id, skip the rest.
            Col::Str(s) if matches!(self.kind, Kind::Id) => {
                let mut id: Option<String> = None;
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    if &*key == "id" && id.is_none() {
                        id = map.next_value::<Option<String>>()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                match id {
                    Some(id) => s.push(&id),
                    None => return Err(de::Error::custom("expanded object has no `id`")),
                }
                Ok(())
            }
            Col::Map {
                offsets,
                keys,
                values,
                valid,
            } => {
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    let value = map.next_value::<MetaValue<'de>>()?;
                    keys.push(&key);
                    match value.0 {
                        Some(v) => values.push(&v),
                        None => values.push_null(),
                    }
                }
                offsets.push(keys.len() as i32);
                valid.push(true);
                Ok(())
            }
            _ => Err(err(expected, "an object")),
        }
    }
}

/// An object key, borrowed from the page when it has no escapes: serde's own `Cow<str>`
/// always allocates, once per key of every record.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl std::ops::Deref for Key<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(v.to_string().into()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
        }
        d.deserialize_str(V)
    }
}

/// A metadata value: Stripe sends strings; numbers and booleans are kept as their text.
/// Borrowed from the page when the string has no escapes (no allocation).
struct MetaValue<'de>(Option<std::borrow::Cow<'de, str>>);

impl<'de> Deserialize<'de> for MetaValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MetaValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a metadata string value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<MetaValue<'de>, E> {
                Ok(MetaValue(Some(v.into())))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MetaValue<'de>, E> {
                Ok(MetaValue(Some(v.to_string().into())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<MetaValue<'de>, E> {
                Ok(MetaValue(Some(v.into())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MetaValue<'de>, E> {
                Ok(MetaValue(Some(v.to_string().into())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MetaValue<'de>, E> {
                Ok(MetaValue(Some(v.to_string().into())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<MetaValue<'de>, E> {
                Ok(MetaValue(Some(v.to_string().into())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<MetaValue<'de>, E> {
                Ok(MetaValue(Some(v.to_string().into())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<MetaValue<'de>, E> {
                Ok(MetaValue(None))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> DeserializeSeed<'de> for StructSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StructSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if self.nullable {
            self.col.push_null();
            Ok(())
        } else {
            Err(E::custom("expected an object, found null"))
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let s = self.col;
        let stamp = s.begin_object();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match s.index_of(&key) {
                Some(i) => {
                    if s.seen[i] == stamp {
                        return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
                    }
                    s.seen[i] = stamp;
                    let kind = &s.kinds[i].1;
                    map.next_value_seed(Seed {
                        col: &mut s.children[i],
                        kind,
                    })
                    .map_err(|e| prefixed(&key, e))?;
                    // A nested struct bumps stamps only on its own builder; ours stays valid.
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        for i in 0..s.children.len() {
            if s.seen[i] != stamp {
                s.children[i].push_null();
            }
        }
        s.valid.push(true);
        Ok(())
    }
}
