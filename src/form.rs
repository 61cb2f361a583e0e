//! The compact form of an op, shared by bundles and by the store of received ops: the names an
//! op carries (its *form*) are written once, and each op is then only its values.
//!
//! Invariant: `Form::of(op)` and `form.pack(op)` hold everything of an op but its device, seq,
//! Lamport time and deps, and `form.unpack` gives back the same key and cells (same names, same
//! storage classes, same bits), so an op rebuilt from its compact form has the same canonical
//! encoding (op.rs) and hash as the op that was packed.
//!
//! # Encoding
//!
//! ```text
//! form   msgpack [table: str, kind: uint, [key column: str, …], [cell column: str, …],
//!                 [alias: uint, …]]      one alias per cell: 0, or 1 + the position of the key
//!                                        column whose name and value the cell repeats (an
//!                                        insert writes its key columns as cells too)
//! values the key's values, then the values of the cells whose alias is 0, each one msgpack
//!        value (op.rs), back to back
//! ```

use serde::{Deserialize, Serialize};

use crate::db::{Error, Result};
use crate::op::{Op, DELETE, INSERT, UPDATE};
use crate::value::{Cells, Value};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Form {
    pub table: String,
    pub kind: u8,
    pub key: Vec<String>,
    pub cells: Vec<String>,
    pub aliases: Vec<u32>,
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
        if !matches!(self.kind, INSERT | UPDATE | DELETE) {
            return bad("unknown kind");
        }
        if self.key.is_empty() {
            return bad("no key columns");
        }
        if self.kind == DELETE && !self.cells.is_empty() {
            return bad("a delete writes no cells");
        }
        if self.aliases.len() != self.cells.len() {
            return bad("one alias per cell expected");
        }
        for (cell, &alias) in self.cells.iter().zip(&self.aliases) {
            if alias != 0 && self.key.get(alias as usize - 1) != Some(cell) {
                return bad("an alias names no key column of the same name");
            }
        }
        Ok(())
    }

    /// Appends the values of `op` (whose form this is) to `out`.
    pub fn pack(&self, op: &Op, out: &mut Vec<u8>) {
        let stored = op
            .cells
            .iter()
            .zip(&self.aliases)
            .filter(|(_, &alias)| alias == 0)
            .map(|((_, v), _)| v);
        for value in op.key.iter().map(|(_, v)| v).chain(stored) {
            rmp_serde::encode::write(out, value).expect("a value always encodes");
        }
    }

    /// Reads the values of one op of this form from the front of `input`, advancing it.
    pub fn unpack(&self, input: &mut &[u8]) -> Result<(Cells, Cells)> {
        let mut key = Vec::with_capacity(self.key.len());
        for name in &self.key {
            key.push((name.clone(), read_value(input)?));
        }
        let mut cells = Vec::with_capacity(self.cells.len());
        for (name, &alias) in self.cells.iter().zip(&self.aliases) {
            let value = match alias {
                0 => read_value(input)?,
                i => key[i as usize - 1].1.clone(),
            };
            cells.push((name.clone(), value));
        }
        Ok((key, cells))
    }

    /// Rebuilds a whole op of this form.
    pub fn op(
        &self,
        device: crate::op::DeviceId,
        seq: u64,
        lamport: u64,
        deps: Vec<crate::op::Dep>,
        mut values: &[u8],
    ) -> Result<Op> {
        let (key, cells) = self.unpack(&mut values)?;
        if !values.is_empty() {
            return Err(Error::new("op values: trailing bytes"));
        }
        Ok(Op {
            device,
            seq,
            lamport,
            deps,
            table: self.table.clone(),
            kind: self.kind,
            key,
            cells,
        })
    }
}

/// Reads one msgpack value from the front of `input`, advancing it.
pub fn read_value(input: &mut &[u8]) -> Result<Value> {
    rmp_serde::from_read(input).map_err(|e| Error::new(format!("unreadable value ({e})")))
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
            deps: vec![Dep([1; 16], 2)],
            table: "t".into(),
            kind: INSERT,
            key: vec![("id".into(), Value::Real(-0.0))],
            cells: vec![
                ("id".into(), Value::Real(-0.0)),
                ("a".into(), Value::Blob(vec![])),
                ("b".into(), Value::Text("x".into())),
            ],
        }
    }

    #[test]
    fn pack_then_unpack_gives_the_same_encoding() {
        let mut op = insert();
        for cell_id in [Value::Real(-0.0), Value::Real(0.0)] {
            op.cells[0].1 = cell_id;
            let form = Form::of(&op);
            let mut values = Vec::new();
            form.pack(&op, &mut values);
            let form = Form::decode(&form.encode()).unwrap();
            let back = form
                .op(op.device, op.seq, op.lamport, op.deps.clone(), &values)
                .unwrap();
            assert_eq!(back.encode(), op.encode());
        }
    }

    #[test]
    fn a_key_repeated_as_a_cell_is_stored_once() {
        let op = insert();
        let form = Form::of(&op);
        assert_eq!(form.aliases, vec![1, 0, 0]);
        let mut values = Vec::new();
        form.pack(&op, &mut values);
        assert_eq!(values.len(), 9 + 2 + 2); // f64, empty bin, "x"
    }

    #[test]
    fn bad_forms_are_refused() {
        let mut form = Form::of(&insert());
        form.aliases[1] = 1; // "a" is not the key column "id"
        assert!(Form::decode(&form.encode()).is_err());
        assert!(Form::decode(b"\x91\x01").is_err());
        let values: &[u8] = b"\xc1";
        assert!(Form::of(&insert())
            .op([0; 16], 1, 1, vec![], values)
            .is_err());
    }
}
