//! Column builders that can roll back a half-appended record.
//!
//! Arrow's builders cannot truncate, but a record that fails halfway (a wrong type in its 30th
//! field) must leave no trace in the batch. These builders keep plain vectors, remember nothing
//! but their length, and can be truncated back to the length before the record began.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, ListArray, MapArray, StringArray,
    StructArray, TimestampSecondArray,
};
use arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Fields};

use super::schema::{map_entries_field, struct_fields, Kind};

/// A growable string column: UTF-8 bytes, offsets, validity.
#[derive(Debug, Default)]
pub(crate) struct StrCol {
    pub data: Vec<u8>,
    pub offsets: Vec<i32>,
    pub valid: Vec<bool>,
}

impl StrCol {
    fn new() -> Self {
        StrCol {
            data: Vec::new(),
            offsets: vec![0],
            valid: Vec::new(),
        }
    }
    pub fn len(&self) -> usize {
        self.valid.len()
    }
    pub fn push(&mut self, s: &str) {
        self.data.extend_from_slice(s.as_bytes());
        let end =
            i32::try_from(self.data.len()).expect("a chunk's strings of one column exceed 2 GiB");
        self.offsets.push(end);
        self.valid.push(true);
    }
    pub fn push_null(&mut self) {
        self.offsets.push(self.data.len() as i32);
        self.valid.push(false);
    }
    fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.valid.truncate(len);
            self.offsets.truncate(len + 1);
            self.data.truncate(self.offsets[len] as usize);
        }
    }
    fn buffers(&self, f: &mut dyn FnMut(usize, usize)) {
        f(self.data.len(), self.data.capacity());
        f(self.offsets.len(), self.offsets.capacity());
        f(self.valid.len(), self.valid.capacity());
    }
    fn reserve(&mut self, hint: &mut Hint<'_>) {
        hint.reserve(&mut self.data);
        hint.reserve(&mut self.offsets);
        hint.reserve(&mut self.valid);
    }
    fn finish(&mut self) -> StringArray {
        let data = std::mem::take(&mut self.data);
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let valid = std::mem::take(&mut self.valid);
        // SAFETY: `push` appends whole `&str`s and records where each ends, `truncate` cuts at
        // one of those ends: the data is UTF-8, the offsets start at 0, never decrease, end at
        // the data's length and fall on character boundaries, one more than the rows in
        // `valid`. Checking it all again (Arrow's `new`) cost a pass over every string.
        unsafe {
            StringArray::new_unchecked(
                OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets)),
                data.into(),
                nulls(valid),
            )
        }
    }
}

fn nulls(valid: Vec<bool>) -> Option<NullBuffer> {
    if valid.iter().all(|v| *v) {
        None
    } else {
        Some(NullBuffer::new(BooleanBuffer::from(valid)))
    }
}

/// Capacities to reserve in fresh builders: the lengths another decoder's builders reached
/// ([`StructCol::buffers`], in the same order), scaled from its rows to the rows expected.
/// Reserving them up front spares each buffer its growth by doubling (a copy and page faults
/// on new memory each time, ~2 % of a run: BENCHMARKS.md §2m).
pub(crate) struct Hint<'a> {
    lengths: std::slice::Iter<'a, usize>,
    rows: usize,
    rows_then: usize,
}

impl<'a> Hint<'a> {
    /// `lengths` measured over `rows_then` records, for `rows` records.
    pub fn new(lengths: &'a [usize], rows_then: usize, rows: usize) -> Self {
        Hint {
            lengths: lengths.iter(),
            rows,
            rows_then: rows_then.max(1),
        }
    }

    /// Reserves the next length (scaled, with an eighth more) in `v`; nothing once the lengths
    /// run out (a hint of another shape reserves what it can).
    fn reserve<T>(&mut self, v: &mut Vec<T>) {
        if let Some(&then) = self.lengths.next() {
            let want = then.saturating_mul(self.rows) / self.rows_then;
            v.reserve(want.saturating_add(want / 8));
        }
    }
}

/// A builder for one column, shaped by a [`Kind`].
#[derive(Debug)]
pub(crate) enum Col {
    Int(Vec<i64>, Vec<bool>),
    Float(Vec<f64>, Vec<bool>),
    Bool(Vec<bool>, Vec<bool>),
    Ts(Vec<i64>, Vec<bool>),
    /// Str, Id and Json all build strings.
    Str(StrCol),
    Map {
        offsets: Vec<i32>,
        keys: StrCol,
        values: StrCol,
        valid: Vec<bool>,
    },
    Struct(Box<StructCol>),
    List {
        offsets: Vec<i32>,
        child: Box<Col>,
        child_field: Arc<Field>,
        valid: Vec<bool>,
    },
}

/// A struct column: its children and its own validity. Also the builder of a whole record.
#[derive(Debug)]
pub(crate) struct StructCol {
    pub fields: Fields,
    pub kinds: &'static [(&'static str, Kind)],
    pub children: Vec<Col>,
    pub valid: Vec<bool>,
    /// Generation stamps: `seen[i] == stamp` when field `i` was set in the current object.
    pub seen: Vec<u64>,
    pub stamp: u64,
    /// The keys of the objects read so far in the order they came, each with its field index
    /// (`None` for a key outside the schema, which is skipped). Stripe sends the keys of an
    /// object type in a stable order, so a lookup is one comparison with the key expected next,
    /// whether the key is in the schema or not; a scan of the fields compared an unknown key
    /// with every name, for every record.
    order: Vec<(Box<str>, Option<usize>)>,
    /// The position in `order` of the key expected next.
    next: usize,
}

/// `a == b` for object keys, inline: the slice comparison calls `memcmp`, whose call and
/// dispatch cost more than comparing a key of a few words (it was 2 % of a run's time).
#[inline]
fn same_key(a: &[u8], b: &[u8]) -> bool {
    fn word(s: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"))
    }
    fn half(s: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(s[at..at + 4].try_into().expect("4 bytes"))
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        // Whole words, then the last word (overlapping the one before).
        let mut at = 0;
        while at + 8 < n {
            if word(a, at) != word(b, at) {
                return false;
            }
            at += 8;
        }
        word(a, n - 8) == word(b, n - 8)
    } else if n >= 4 {
        half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4)
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

/// Keys of one object that [`StructCol::order`] remembers; later keys are looked up by scanning.
const MAX_ORDER: usize = 512;

/// How many remembered keys a lookup may skip: keys absent from this object (the others keep
/// their order).
const SKIP: usize = 4;

impl StructCol {
    pub fn new(kinds: &'static [(&'static str, Kind)]) -> Self {
        StructCol {
            fields: struct_fields(kinds),
            kinds,
            children: kinds.iter().map(|(_, k)| Col::new(k)).collect(),
            valid: Vec::new(),
            seen: vec![0; kinds.len()],
            stamp: 0,
            order: Vec::new(),
            next: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.valid.len()
    }

    /// Starts an object: a new generation stamp (returned) and the key hint back at the start.
    pub fn begin_object(&mut self) -> u64 {
        self.stamp += 1;
        self.next = 0;
        self.stamp
    }

    /// The index of a field by name (`None` when the schema has no such field): the key expected
    /// next first, then the few after it, then a scan of the fields, whose result is remembered
    /// in place of the rest of the order.
    #[inline]
    pub fn index_of(&mut self, name: &str) -> Option<usize> {
        if let Some((key, index)) = self.order.get(self.next) {
            if same_key(key.as_bytes(), name.as_bytes()) {
                self.next += 1;
                return *index;
            }
        }
        self.index_of_unexpected(name)
    }

    #[cold]
    fn index_of_unexpected(&mut self, name: &str) -> Option<usize> {
        let ahead = self.order.iter().enumerate().skip(self.next + 1).take(SKIP);
        for (at, (key, index)) in ahead {
            if same_key(key.as_bytes(), name.as_bytes()) {
                self.next = at + 1;
                return *index;
            }
        }
        let found = self.kinds.iter().position(|(n, _)| *n == name);
        if self.next < MAX_ORDER {
            self.order.truncate(self.next);
            self.order.push((name.into(), found));
            self.next += 1;
        }
        found
    }

    pub fn push_null(&mut self) {
        for c in &mut self.children {
            c.push_null();
        }
        self.valid.push(false);
    }

    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.valid.truncate(len);
        }
        for c in &mut self.children {
            c.truncate(len);
        }
    }

    /// Calls `f` with the length and capacity of every buffer of this builder and its
    /// children, in a fixed order (the order [`Hint`] reserves in).
    pub fn buffers(&self, f: &mut dyn FnMut(usize, usize)) {
        f(self.valid.len(), self.valid.capacity());
        for c in &self.children {
            c.buffers(f);
        }
    }

    /// Reserves the capacities of `hint` in this builder and its children.
    pub fn reserve(&mut self, hint: &mut Hint<'_>) {
        hint.reserve(&mut self.valid);
        for c in &mut self.children {
            c.reserve(hint);
        }
    }

    pub fn finish(&mut self) -> StructArray {
        let arrays: Vec<ArrayRef> = self.children.iter_mut().map(|c| c.finish()).collect();
        let valid = std::mem::take(&mut self.valid);
        let len = valid.len();
        if self.fields.is_empty() {
            return StructArray::new_empty_fields(len, nulls(valid));
        }
        StructArray::new(self.fields.clone(), arrays, nulls(valid))
    }
}

impl Col {
    pub fn new(kind: &Kind) -> Col {
        match kind {
            Kind::Int => Col::Int(Vec::new(), Vec::new()),
            Kind::Float => Col::Float(Vec::new(), Vec::new()),
            Kind::Bool => Col::Bool(Vec::new(), Vec::new()),
            Kind::Ts => Col::Ts(Vec::new(), Vec::new()),
            Kind::Str | Kind::Id | Kind::Json => Col::Str(StrCol::new()),
            Kind::Meta => Col::Map {
                offsets: vec![0],
                keys: StrCol::new(),
                values: StrCol::new(),
                valid: Vec::new(),
            },
            Kind::Obj(fields) => Col::Struct(Box::new(StructCol::new(fields))),
            Kind::List(item) => Col::List {
                offsets: vec![0],
                child: Box::new(Col::new(item)),
                child_field: Arc::new(Field::new("item", item.data_type(), true)),
                valid: Vec::new(),
            },
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Col::Int(_, v) | Col::Float(_, v) | Col::Bool(_, v) | Col::Ts(_, v) => v.len(),
            Col::Str(s) => s.len(),
            Col::Map { valid, .. } | Col::List { valid, .. } => valid.len(),
            Col::Struct(s) => s.len(),
        }
    }

    pub fn push_null(&mut self) {
        match self {
            Col::Int(d, v) | Col::Ts(d, v) => {
                d.push(0);
                v.push(false)
            }
            Col::Float(d, v) => {
                d.push(0.0);
                v.push(false)
            }
            Col::Bool(d, v) => {
                d.push(false);
                v.push(false)
            }
            Col::Str(s) => s.push_null(),
            Col::Map {
                offsets,
                keys,
                valid,
                ..
            } => {
                offsets.push(keys.len() as i32);
                valid.push(false);
            }
            Col::List {
                offsets,
                child,
                valid,
                ..
            } => {
                offsets.push(child.len() as i32);
                valid.push(false);
            }
            Col::Struct(s) => s.push_null(),
        }
    }

    pub fn truncate(&mut self, len: usize) {
        if len >= self.len() {
            return;
        }
        match self {
            Col::Int(d, v) | Col::Ts(d, v) => {
                d.truncate(len);
                v.truncate(len)
            }
            Col::Float(d, v) => {
                d.truncate(len);
                v.truncate(len)
            }
            Col::Bool(d, v) => {
                d.truncate(len);
                v.truncate(len)
            }
            Col::Str(s) => s.truncate(len),
            Col::Map {
                offsets,
                keys,
                values,
                valid,
            } => {
                valid.truncate(len);
                offsets.truncate(len + 1);
                let n = offsets[len] as usize;
                keys.truncate(n);
                values.truncate(n);
            }
            Col::List {
                offsets,
                child,
                valid,
                ..
            } => {
                valid.truncate(len);
                offsets.truncate(len + 1);
                child.truncate(offsets[len] as usize);
            }
            Col::Struct(s) => s.truncate(len),
        }
    }

    fn buffers(&self, f: &mut dyn FnMut(usize, usize)) {
        match self {
            Col::Int(d, v) | Col::Ts(d, v) => {
                f(d.len(), d.capacity());
                f(v.len(), v.capacity());
            }
            Col::Float(d, v) => {
                f(d.len(), d.capacity());
                f(v.len(), v.capacity());
            }
            Col::Bool(d, v) => {
                f(d.len(), d.capacity());
                f(v.len(), v.capacity());
            }
            Col::Str(s) => s.buffers(f),
            Col::Map {
                offsets,
                keys,
                values,
                valid,
            } => {
                f(offsets.len(), offsets.capacity());
                f(valid.len(), valid.capacity());
                keys.buffers(f);
                values.buffers(f);
            }
            Col::List {
                offsets,
                child,
                valid,
                ..
            } => {
                f(offsets.len(), offsets.capacity());
                f(valid.len(), valid.capacity());
                child.buffers(f);
            }
            Col::Struct(s) => s.buffers(f),
        }
    }

    fn reserve(&mut self, hint: &mut Hint<'_>) {
        match self {
            Col::Int(d, v) | Col::Ts(d, v) => {
                hint.reserve(d);
                hint.reserve(v);
            }
            Col::Float(d, v) => {
                hint.reserve(d);
                hint.reserve(v);
            }
            Col::Bool(d, v) => {
                hint.reserve(d);
                hint.reserve(v);
            }
            Col::Str(s) => s.reserve(hint),
            Col::Map {
                offsets,
                keys,
                values,
                valid,
            } => {
                hint.reserve(offsets);
                hint.reserve(valid);
                keys.reserve(hint);
                values.reserve(hint);
            }
            Col::List {
                offsets,
                child,
                valid,
                ..
            } => {
                hint.reserve(offsets);
                hint.reserve(valid);
                child.reserve(hint);
            }
            Col::Struct(s) => s.reserve(hint),
        }
    }

    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Int(d, v) => {
                let a = Int64Array::new(std::mem::take(d).into(), nulls(std::mem::take(v)));
                Arc::new(a)
            }
            Col::Ts(d, v) => {
                let a =
                    TimestampSecondArray::new(std::mem::take(d).into(), nulls(std::mem::take(v)))
                        .with_timezone("UTC");
                Arc::new(a)
            }
            Col::Float(d, v) => Arc::new(Float64Array::new(
                std::mem::take(d).into(),
                nulls(std::mem::take(v)),
            )),
            Col::Bool(d, v) => Arc::new(BooleanArray::new(
                BooleanBuffer::from(std::mem::take(d)),
                nulls(std::mem::take(v)),
            )),
            Col::Str(s) => Arc::new(s.finish()),
            Col::Map {
                offsets,
                keys,
                values,
                valid,
            } => {
                let entries_field = map_entries_field();
                let DataType::Struct(entry_fields) = entries_field.data_type().clone() else {
                    unreachable!("map entries are a struct")
                };
                let entries = StructArray::new(
                    entry_fields,
                    vec![Arc::new(keys.finish()), Arc::new(values.finish())],
                    None,
                );
                let offsets = std::mem::replace(offsets, vec![0]);
                Arc::new(MapArray::new(
                    Arc::new(entries_field),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    entries,
                    nulls(std::mem::take(valid)),
                    false,
                ))
            }
            Col::List {
                offsets,
                child,
                child_field,
                valid,
            } => {
                let values = child.finish();
                let offsets = std::mem::replace(offsets, vec![0]);
                Arc::new(ListArray::new(
                    child_field.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    values,
                    nulls(std::mem::take(valid)),
                ))
            }
            Col::Struct(s) => Arc::new(s.finish()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_key;

    #[test]
    fn same_key_agrees_with_slice_equality_for_every_length_and_difference() {
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..=base.len() {
            let a = &base[..n];
            assert!(same_key(a, a), "{n}");
            assert!(!same_key(a, &base[..n.saturating_sub(1)]) || n == 0, "{n}");
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_key(a, &b), "length {n}, byte {at}");
            }
        }
    }
}
