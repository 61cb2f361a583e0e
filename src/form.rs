//! The compact form of an op, shared by bundles and by the store of received ops: the names an
//! op carries (its *form*) are written once, and each op is then only its values.
//!
//! Invariant: `Form::of(op)` and `form.values_of(op)` hold everything of an op but its device, seq,
//! Lamport time and deps, and `form.unpack` gives back the same key and cells (same names, same
//! storage classes, same bits), so an op rebuilt from its compact form has the same canonical
//! encoding (op.rs) and hash as the op that was packed.
//!
//! # Encoding
//!
//! ```text
//! form   msgpack [table: str, kind: uint, [key column: str, …], [cell column: str, …],
//!                 [alias: uint, …], [declared type: str, …]]
//!                                        one alias per cell: 0, or 1 + the position of the key
//!                                        column whose name and value the cell repeats (an
//!                                        insert writes its key columns as cells too); the
//!                                        declared types of the key columns, then the cells',
//!                                        as the op's writer declared them (none when unknown:
//!                                        the last item is left out by earlier builds)
//! values the key's values, then the values of the cells whose alias is 0, each one msgpack
//!        value (op.rs), back to back
//! ```

use serde::{Deserialize, Serialize};

use crate::db::{Error, Result};
use crate::op::{Bin, Decl, Dep, DeviceId, Hash, Op, OpKind};
use crate::value::{Cells, Value};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Form {
    pub table: String,
    pub kind: OpKind,
    pub key: Vec<String>,
    pub cells: Vec<String>,
    pub aliases: Vec<u32>,
    /// How the writer declared the key columns, then the cells (empty: unknown); not part of
    /// the op's canonical encoding
    #[serde(default, skip_serializing_if = "no_types")]
    pub decl: Decl,
}

/// By its names and kind: forms that differ only in their declared types are few, and the
/// writer of a bundle hashes one per op.
impl std::hash::Hash for Form {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (
            &self.table,
            self.kind,
            &self.key,
            &self.cells,
            &self.aliases,
        )
            .hash(state);
    }
}

fn no_types(decl: &Decl) -> bool {
    decl.is_empty()
}

/// The same value, bit for bit (a REAL's sign of zero and NaN payload count).
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

impl Form {
    /// The form of `op`.
    pub fn of(op: &Op) -> Form {
        let aliases = op
            .cells
            .iter()
            .map(|(name, value)| {
                op.key
                    .iter()
                    .position(|(k, v)| k == name && same_value(v, value))
                    .map_or(0, |i| i as u32 + 1)
            })
            .collect();
        Form {
            table: op.table.clone(),
            kind: op.kind,
            key: op.key.iter().map(|(c, _)| c.clone()).collect(),
            cells: op.cells.iter().map(|(c, _)| c.clone()).collect(),
            aliases,
            decl: op.decl.clone(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).expect("a form always encodes")
    }

    /// Reads a form, checking that it could describe an op.
    pub fn decode(bytes: &[u8]) -> Result<Form> {
        let form: Form =
            rmp_serde::from_slice(bytes).map_err(|e| Error::new(format!("bad op form ({e})")))?;
        form.check()?;
        Ok(form)
    }

    pub fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::new(format!("bad op form: {what}")));
        if self.key.is_empty() {
            return bad("no key columns");
        }
        if self.kind == OpKind::Delete && !self.cells.is_empty() {
            return bad("a delete writes no cells");
        }
        if self.aliases.len() != self.cells.len() {
            return bad("one alias per cell expected");
        }
        if !self.decl.is_empty() && self.decl.len() != self.key.len() + self.cells.len() {
            return bad("one declared type per key column and cell expected");
        }
        let repeats = |names: &[String]| {
            names
                .iter()
                .enumerate()
                .any(|(i, a)| names[..i].iter().any(|b| a.eq_ignore_ascii_case(b)))
        };
        if repeats(&self.key) || repeats(&self.cells) {
            return bad("a column named twice");
        }
        for (cell, &alias) in self.cells.iter().zip(&self.aliases) {
            if alias != 0 && self.key.get(alias as usize - 1) != Some(cell) {
                return bad("an alias names no key column of the same name");
            }
        }
        Ok(())
    }

    /// The values of `op` (whose form this is): the key's, then those of the cells that are
    /// not aliases.
    /// (Moved, not copied: a value may be large.)
    pub fn values_of(&self, op: Op) -> Vec<Value> {
        let stored = op
            .cells
            .into_iter()
            .zip(&self.aliases)
            .filter(|(_, &alias)| alias == 0)
            .map(|((_, v), _)| v);
        op.key.into_iter().map(|(_, v)| v).chain(stored).collect()
    }

    /// Appends the encoding of an op's values to `out`.
    pub fn pack(values: &[Value], out: &mut Vec<u8>) -> Result<()> {
        // values come from the data: no memory for them is an error, not an abort
        let size: usize = values
            .iter()
            .map(|v| 9 + v.as_bytes().map_or(0, <[u8]>::len))
            .sum();
        out.try_reserve(size)
            .map_err(|_| Error::new(format!("out of memory for values of {size} bytes")))?;
        for value in values {
            rmp_serde::encode::write(out, value).expect("a value always encodes");
        }
        Ok(())
    }

    /// Reads the values of one op of this form from the front of `input`, advancing it.
    pub fn unpack(&self, input: &mut &[u8]) -> Result<Vec<Value>> {
        let stored = self.aliases.iter().filter(|&&a| a == 0).count();
        (0..self.key.len() + stored)
            .map(|_| read_value(input))
            .collect()
    }

    /// Position in an op's values of the value of cell `i`.
    pub fn cell_slot(&self, i: usize) -> usize {
        match self.aliases[i] {
            0 => self.key.len() + self.aliases[..i].iter().filter(|&&a| a == 0).count(),
            alias => alias as usize - 1,
        }
    }

    /// The key of an op of this form, as (column, value) pairs.
    pub fn key_cells<'a>(
        &'a self,
        values: &'a [Value],
    ) -> impl Iterator<Item = (&'a String, &'a Value)> {
        self.key.iter().zip(values)
    }

    /// The cells of an op of this form, as (column, value) pairs.
    pub fn cells<'a>(
        &'a self,
        values: &'a [Value],
    ) -> impl Iterator<Item = (&'a String, &'a Value)> {
        let mut stored = self.key.len();
        self.cells
            .iter()
            .zip(&self.aliases)
            .map(move |(name, &alias)| {
                let slot = match alias {
                    0 => {
                        stored += 1;
                        stored - 1
                    }
                    alias => alias as usize - 1,
                };
                (name, &values[slot])
            })
    }

    /// Writes the canonical encoding (op.rs) of the op of this form with fields `head` and
    /// these values to `out`: the same bytes as `Op::encode` of the whole op, without building
    /// it.
    pub fn write_canonical(&self, out: &mut impl std::io::Write, head: &Head, values: &[Value]) {
        let op = Canonical {
            device: Bin(head.device),
            seq: head.seq,
            prev: head.prev.map(|p| Bin(p)),
            lamport: head.lamport,
            deps: head.deps,
            table: &self.table,
            kind: self.kind,
            key: Pairs(self, values, true),
            cells: Pairs(self, values, false),
        };
        rmp_serde::encode::write(out, &op).expect("an op always encodes");
    }

    /// Rebuilds a whole op of this form from its encoded values.
    pub fn op(
        &self,
        device: DeviceId,
        seq: u64,
        lamport: u64,
        deps: Vec<Dep>,
        mut encoded: &[u8],
    ) -> Result<Op> {
        let values = self.unpack(&mut encoded)?;
        if !encoded.is_empty() {
            return Err(Error::new("op values: trailing bytes"));
        }
        Ok(self.op_of(device, seq, lamport, deps, &values))
    }

    /// A whole op of this form from its values, unpacked.
    pub fn op_of(
        &self,
        device: DeviceId,
        seq: u64,
        lamport: u64,
        deps: Vec<Dep>,
        values: &[Value],
    ) -> Op {
        let owned = |(c, v): (&String, &Value)| (c.clone(), v.clone());
        let key: Cells = self.key_cells(values).map(owned).collect();
        let cells: Cells = self.cells(values).map(owned).collect();
        Op {
            device,
            seq,
            lamport,
            deps,
            table: self.table.clone(),
            kind: self.kind,
            key,
            cells,
            decl: self.decl.clone(),
        }
    }
}

/// The fields of an op that its form and values do not hold.
pub struct Head<'a> {
    pub device: &'a DeviceId,
    pub seq: u64,
    pub prev: Option<&'a Hash>,
    pub lamport: u64,
    pub deps: &'a [Dep],
}

/// An op's fields, borrowed, in the order of its canonical encoding (op.rs).
#[derive(Serialize)]
struct Canonical<'a> {
    device: Bin<'a>,
    seq: u64,
    prev: Option<Bin<'a>>,
    lamport: u64,
    deps: &'a [Dep],
    table: &'a str,
    kind: OpKind,
    key: Pairs<'a>,
    cells: Pairs<'a>,
}

/// The key (true) or the cells (false) of an op as (column, value) pairs, encoded as
/// `Vec<(String, Value)>` is.
struct Pairs<'a>(&'a Form, &'a [Value], bool);

impl Serialize for Pairs<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let Pairs(form, values, key) = *self;
        if key {
            s.collect_seq(form.key_cells(values))
        } else {
            s.collect_seq(form.cells(values))
        }
    }
}

/// Reads one msgpack value (op.rs: nil, int, float, str or bin) from the front of `input`,
/// advancing it. (Hand-written: this is the importer's innermost loop.)
pub fn read_value(input: &mut &[u8]) -> Result<Value> {
    let bad = |what: &str| Error::new(format!("unreadable value ({what})"));
    let mut take = |n: usize| -> Result<&[u8]> {
        if input.len() < n {
            return Err(bad("truncated"));
        }
        let (head, rest) = input.split_at(n);
        *input = rest;
        Ok(head)
    };
    let marker = take(1)?[0];
    let uint = |bytes: &[u8]| bytes.iter().fold(0u64, |n, &b| n << 8 | b as u64);
    Ok(match marker {
        0x00..=0x7f => Value::Integer(marker as i64),
        0xe0..=0xff => Value::Integer(marker as i8 as i64),
        0xc0 => Value::Null,
        0xcc..=0xcf => {
            let n = uint(take(1 << (marker - 0xcc))?);
            Value::Integer(i64::try_from(n).map_err(|_| bad("integer out of range"))?)
        }
        0xd0..=0xd3 => {
            let width = 1 << (marker - 0xd0);
            let n = uint(take(width)?);
            let shift = 64 - 8 * width as u32;
            Value::Integer(((n << shift) as i64) >> shift) // sign-extended
        }
        0xca => Value::Real(f32::from_bits(uint(take(4)?) as u32) as f64),
        0xcb => Value::Real(f64::from_bits(uint(take(8)?))),
        0xa0..=0xbf | 0xd9..=0xdb | 0xc4..=0xc6 => {
            let len = match marker {
                0xa0..=0xbf => (marker & 0x1f) as usize,
                0xd9 | 0xc4 => uint(take(1)?) as usize,
                0xda | 0xc5 => uint(take(2)?) as usize,
                _ => uint(take(4)?) as usize,
            };
            let bytes = crate::value::try_copy(take(len)?).map_err(Error::new)?;
            if matches!(marker, 0xc4..=0xc6) {
                Value::Blob(bytes)
            } else {
                Value::Text(String::from_utf8(bytes).map_err(|_| bad("TEXT is not UTF-8"))?)
            }
        }
        _ => return Err(bad("not an SQLite value")),
    })
}

/// Reads one msgpack item of any deserializable type from the front of `input`.
pub fn read<T: serde::de::DeserializeOwned>(input: &mut &[u8], what: &str) -> Result<T> {
    rmp_serde::from_read(input).map_err(|e| Error::new(format!("unreadable {what} ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Dep;

    fn insert() -> Op {
        Op {
            device: [3; 16],
            seq: 5,
            lamport: 11,
            deps: vec![Dep([1; 16], 2, [9; 16])],
            table: "t".into(),
            kind: OpKind::Insert,
            key: vec![("id".into(), Value::Real(-0.0))],
            cells: vec![
                ("id".into(), Value::Real(-0.0)),
                ("a".into(), Value::Blob(vec![])),
                ("b".into(), Value::Text("x".into())),
            ],
            decl: Decl::new(vec![
                "REAL".into(),
                "REAL".into(),
                "BLOB".into(),
                "TEXT".into(),
            ]),
        }
    }

    #[test]
    fn declared_types_travel_in_the_form_and_earlier_forms_still_read() {
        let form = Form::of(&insert());
        assert_eq!(Form::decode(&form.encode()).unwrap(), form);
        // as an earlier build wrote it: five items, no declared types
        let old = Form {
            decl: Decl::default(),
            ..form.clone()
        };
        let bytes = old.encode();
        let five: (String, u8, Vec<String>, Vec<String>, Vec<u32>) =
            rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(five.0, "t");
        assert_eq!(Form::decode(&bytes).unwrap(), old);
        let short = Form {
            decl: Decl::new(vec!["TEXT".into()]),
            ..form
        };
        assert!(Form::decode(&short.encode()).is_err());
    }

    #[test]
    fn pack_then_unpack_gives_the_same_encoding() {
        let mut op = insert();
        for cell_id in [Value::Real(-0.0), Value::Real(0.0)] {
            op.cells[0].1 = cell_id;
            let form = Form::of(&op);
            let values = form.values_of(op.clone());
            let mut canonical = Vec::new();
            let head = Head {
                device: &op.device,
                seq: op.seq,
                prev: Some(&[4; 16]),
                lamport: op.lamport,
                deps: &op.deps,
            };
            form.write_canonical(&mut canonical, &head, &values);
            assert_eq!(canonical, op.encode(Some(&[4; 16])));
            let mut packed = Vec::new();
            Form::pack(&values, &mut packed).unwrap();
            let form = Form::decode(&form.encode()).unwrap();
            let back = form
                .op(op.device, op.seq, op.lamport, op.deps.clone(), &packed)
                .unwrap();
            assert_eq!(back.encode(None), op.encode(None));
        }
    }

    #[test]
    fn a_key_repeated_as_a_cell_is_stored_once() {
        let op = insert();
        let form = Form::of(&op);
        assert_eq!(form.aliases, vec![1, 0, 0]);
        assert_eq!((form.cell_slot(0), form.cell_slot(2)), (0, 2));
        let mut packed = Vec::new();
        Form::pack(&form.values_of(op.clone()), &mut packed).unwrap();
        assert_eq!(packed.len(), 9 + 2 + 2); // f64, empty bin, "x"
    }

    #[test]
    fn values_read_back_as_rmp_serde_writes_them() {
        let mut samples = vec![
            Value::Null,
            Value::Text(String::new()),
            Value::Text("ü€".repeat(100)),
            Value::Text("x".repeat(70_000)),
            Value::Blob(vec![]),
            Value::Blob(vec![7; 300]),
            Value::Blob(vec![1; 70_000]),
            Value::Real(-0.0),
            Value::Real(f64::NEG_INFINITY),
            Value::Real(0.1 + 0.2),
        ];
        for shift in 0..64 {
            for n in [
                1i64 << shift,
                (1i64 << shift) - 1,
                -(1i64 << shift),
                !(1i64 << shift),
            ] {
                samples.push(Value::Integer(n));
            }
        }
        samples.push(Value::Integer(i64::MIN));
        samples.push(Value::Integer(i64::MAX));
        let mut bytes = Vec::new();
        Form::pack(&samples, &mut bytes).unwrap();
        let mut input = &bytes[..];
        for expected in &samples {
            let got = read_value(&mut input).unwrap();
            assert!(same_value(&got, expected), "{got:?} != {expected:?}");
        }
        assert!(input.is_empty());
        for bad in [
            &b"\xc2"[..],
            b"\x91\x01",
            b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\xa3ab",
            b"\xa1\xff",
        ] {
            assert!(read_value(&mut &bad[..]).is_err(), "{bad:?}");
        }
        let f32_one = read_value(&mut &b"\xca\x3f\x80\x00\x00"[..]).unwrap();
        assert!(same_value(&f32_one, &Value::Real(1.0)));
    }

    #[test]
    fn bad_forms_are_refused() {
        let mut form = Form::of(&insert());
        form.aliases[1] = 1; // "a" is not the key column "id"
        assert!(Form::decode(&form.encode()).is_err());
        let mut form = Form::of(&insert());
        form.cells[2] = "A".into(); // "a" twice
        assert!(Form::decode(&form.encode()).is_err());
        assert!(Form::decode(b"\x91\x01").is_err());
        let values: &[u8] = b"\xc1";
        assert!(Form::of(&insert())
            .op([0; 16], 1, 1, vec![], values)
            .is_err());
    }
}
