//! Live sets: the ops of a row whose writes are still live (rule.rs `Live`), kept beside the
//! row index so that settling a row after new ops costs O(live ops + new ops), not O(past ops).
//!
//! Invariant: outside an import, `_sync_rows.live` of a row is NULL when the op `_sync_rows`
//! names is the row's only op; empty (`x''`) when the set must be computed again from every op
//! (its ops were renamed: a fork or a split of histories, `crate::schema::rename_ops`); otherwise exactly
//! the set `merge::live_set` computes from every op on the row, stored as each op's (device,
//! seq), whether it is top, and its columns, with the row's universe. Live sets only shrink as
//! ops arrive, but for a column no op on the row wrote before (a delete dropped from the set
//! may be live in it): that op makes the set computed again from every op. The universe is
//! stored by its id in `_sync_universes` (`Universes`: a row's column names once per database,
//! not once per row), or, in a set an earlier build stored, by its names.
//!
//! `Touched` is the other half: the rows an import settles at its end, each with its new ops
//! (or none known: computed again).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::db::{Conn, Error, Result, Statements};
use crate::hashed::HashMap;
use crate::log::clock::{Devices, Order};
use crate::log::SyncedTable;
use crate::merge::row_index::{Entry, RowReader};
use crate::merge::{self, Live, RowOp, RowState};
use crate::op::OpKind;
use crate::schema::{DeviceIdx, SELF};
use crate::value::{Cells, Value};

/// The stored form: the universe, and per live op (device, seq, mark, columns by position in
/// the universe).
#[derive(Deserialize)]
struct StoredSet(Universe, Vec<SetEntry>);

/// The same, borrowed, for writing it (the same msgpack).
#[derive(Serialize)]
struct StoredSetRef<'a>(&'a Universe, &'a [SetEntry]);

/// A stored set's universe: its id in `_sync_universes`, or its names (as sets stored by
/// builds before the universes were named by id hold it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Universe {
    Id(i64),
    Names(Vec<String>),
}

/// The universes named in `_sync_universes` (each a msgpack list of column names), read at
/// their first use and kept for the rest of the call; a universe new here is stored there.
#[derive(Default)]
pub struct Universes {
    by_id: HashMap<i64, Vec<String>>,
    ids: HashMap<Vec<String>, i64>,
    read: bool,
}

impl Universes {
    pub fn new() -> Universes {
        Universes::default()
    }

    fn read(&mut self, conn: &Conn) -> Result<()> {
        if self.read {
            return Ok(());
        }
        let mut stmt = conn.prepare("SELECT id, names FROM main._sync_universes")?;
        while let Some(row) = stmt.step()? {
            let names: Vec<String> = rmp_serde::from_slice(row.column_blob(1)?.unwrap_or_default())
                .map_err(|_| Error::new("damaged universe in _sync_universes"))?;
            self.ids.insert(names.clone(), row.column_int(0));
            self.by_id.insert(row.column_int(0), names);
        }
        self.read = true;
        Ok(())
    }

    /// The column names of `universe`.
    pub fn names(&mut self, conn: &Conn, universe: Universe) -> Result<Vec<String>> {
        let id = match universe {
            Universe::Names(names) => return Ok(names),
            Universe::Id(id) => id,
        };
        self.read(conn)?;
        (self.by_id.get(&id).cloned())
            .ok_or_else(|| Error::new("a live set in _sync_rows names an unknown universe"))
    }

    /// `names` as a stored set names it: by its id, stored here when it is new.
    pub fn id(&mut self, conn: &Conn, names: &[String]) -> Result<Universe> {
        self.read(conn)?;
        if let Some(&id) = self.ids.get(names) {
            return Ok(Universe::Id(id));
        }
        let blob = rmp_serde::to_vec(names).map_err(|e| Error::new(format!("universe: {e}")))?;
        let id = conn.insert(
            "INSERT INTO main._sync_universes(names) VALUES (?1)",
            &[Value::Blob(blob)],
        )?;
        self.ids.insert(names.to_vec(), id);
        self.by_id.insert(id, names.to_vec());
        Ok(Universe::Id(id))
    }

    /// A stored set, decoded, with its universe's names.
    pub fn decode(&mut self, conn: &Conn, blob: &[u8]) -> Result<(Vec<String>, Vec<SetEntry>)> {
        let (universe, entries) = decode_set(blob)?;
        Ok((self.names(conn, universe)?, entries))
    }

    /// A set as `_sync_rows.live` stores it, its universe named by id.
    pub fn encode(
        &mut self,
        conn: &Conn,
        names: &[String],
        entries: &[SetEntry],
    ) -> Result<Vec<u8>> {
        let universe = self.id(conn, names)?;
        encode_set(&universe, entries)
    }
}

/// One live op of a stored set: (device, seq, mark, columns by position in the universe).
pub type SetEntry = (i64, u64, Mark, Vec<u32>);

/// Whether a live op is top, and whether it is a delete. Stored as an integer (bit 0: top,
/// bit 1: delete, bit 2: kind known); a set stored by an earlier build holds a bool (top) and
/// no kinds, which only the full settle reads (`forward.rs` leaves it alone).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mark {
    pub top: bool,
    pub delete: Option<bool>,
}

impl Serialize for Mark {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let kind = match self.delete {
            None => 0,
            Some(delete) => 4 | (delete as u8) << 1,
        };
        s.serialize_u8(kind | self.top as u8)
    }
}

impl<'de> Deserialize<'de> for Mark {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Mark, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Mark;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a live op's mark")
            }
            fn visit_bool<E>(self, top: bool) -> std::result::Result<Mark, E> {
                Ok(Mark { top, delete: None })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Mark, E> {
                match v {
                    0..=7 => Ok(Mark {
                        top: v & 1 == 1,
                        delete: (v & 4 == 4).then_some(v & 2 == 2),
                    }),
                    _ => Err(E::custom("unknown mark")),
                }
            }
        }
        d.deserialize_any(Visit)
    }
}

/// A stored set, decoded: its universe and entries.
fn decode_set(blob: &[u8]) -> Result<(Universe, Vec<SetEntry>)> {
    let StoredSet(universe, entries) =
        rmp_serde::from_slice(blob).map_err(|_| Error::new("damaged live set in _sync_rows"))?;
    Ok((universe, entries))
}

/// A set as `_sync_rows.live` stores it.
fn encode_set(universe: &Universe, entries: &[SetEntry]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(entries.len() * 16 + 8);
    rmp_serde::encode::write(&mut out, &StoredSetRef(universe, entries))
        .map_err(|e| Error::new(format!("live set: {e}")))?;
    Ok(out)
}

/// A row's live ops, with the ops themselves.
pub struct RowLive {
    /// The live ops (and, during `settle`, the new ones), and the device index of each.
    pub ops: Vec<RowOp>,
    pub devices: Vec<DeviceIdx>,
    pub live: Vec<Live>,
    pub universe: Vec<String>,
    /// The row's key, as the table spells it.
    pub key: Cells,
    /// Whether every live op before the new ones was this device's, and so are the new ones:
    /// then nothing but the set changes (this device's ops follow one another, and its table
    /// shows them already).
    pub only_local: bool,
    /// Whether the row is known to have had no open conflict record before the new ops: its
    /// stored set had no losing side (records are rewritten from the set at every settle), or
    /// it had one op. False when the set was computed again from every op.
    pub no_records_before: bool,
}

impl RowLive {
    /// The live set of a row after the ops `new` (applied or folded, in causal order), or from
    /// every op on the row when `new` is None or the stored set cannot be used.
    #[allow(clippy::too_many_arguments)]
    pub fn settle(
        conn: &Conn,
        statements: &mut Statements,
        universes: &mut Universes,
        reader: &RowReader,
        order: &Order,
        table: &SyncedTable,
        key: &[u8],
        new: Option<&[OpAt]>,
    ) -> Result<RowLive> {
        let Some(new) = new else {
            return Self::rebuild(conn, reader, order, table, key);
        };
        let mut row = RowLive {
            ops: Vec::new(),
            devices: Vec::new(),
            live: Vec::new(),
            universe: Vec::new(),
            key: Vec::new(),
            only_local: true,
            no_records_before: true,
        };
        let stored = load(statements, table.id, key)?
            .ok_or_else(|| Error::new("a settled row is missing from the row index"))?;
        match stored {
            Stored::Stale => return Self::rebuild(conn, reader, order, table, key),
            Stored::Single(device, seq) => {
                let cols = row.add(statements, reader, table, DeviceIdx(device), seq)?;
                row.universe = cols.clone();
                let cols = if row.ops[0].kind == OpKind::Delete {
                    Vec::new()
                } else {
                    cols
                };
                row.live.push(Live {
                    op: 0,
                    top: true,
                    cols,
                });
            }
            Stored::Set(blob) => {
                let (universe, entries) = universes.decode(conn, &blob)?;
                row.universe = universe;
                for (device, seq, Mark { top, .. }, cols) in entries {
                    row.add(statements, reader, table, DeviceIdx(device), seq)?;
                    let cols = cols
                        .into_iter()
                        .map(|i| row.universe.get(i as usize).cloned())
                        .collect::<Option<_>>()
                        .ok_or_else(|| Error::new("damaged live set in _sync_rows"))?;
                    let op = row.ops.len() - 1;
                    row.live.push(Live { op, top, cols });
                }
                row.no_records_before =
                    merge::losses(&row.ops, &row.live, &row.universe).is_empty();
            }
        }
        for &(device, seq) in new {
            if row
                .devices
                .iter()
                .zip(&row.ops)
                .any(|(&d, o)| d == device && o.seq == seq)
            {
                continue; // the row's first op, settled as a new one
            }
            let cols = row.add(statements, reader, table, device, seq)?;
            if cols.iter().any(|c| !row.universe.contains(c)) {
                return Self::rebuild(conn, reader, order, table, key);
            }
            let op = row.ops.len() - 1;
            merge::advance(&row.ops, &mut row.live, op, &row.universe, order);
        }
        Ok(row)
    }

    /// The live set from every op on the row.
    fn rebuild(
        conn: &Conn,
        reader: &RowReader,
        order: &Order,
        table: &SyncedTable,
        key: &[u8],
    ) -> Result<RowLive> {
        let (ops, key_values) = reader.ops(conn, table, key)?;
        let devices = device_indexes(reader.devices, &ops)?;
        let (live, universe) = merge::live_set(&ops, order);
        Ok(RowLive {
            only_local: false,
            no_records_before: false,
            ops,
            devices,
            live,
            universe,
            key: key_values,
        })
    }

    /// Reads op (`device`, `seq`) in; returns the columns it writes.
    fn add(
        &mut self,
        statements: &mut Statements,
        reader: &RowReader,
        table: &SyncedTable,
        device: DeviceIdx,
        seq: u64,
    ) -> Result<Vec<String>> {
        let (op, key) = reader.op(statements, table, device, seq)?;
        if self.key.is_empty() {
            self.key = key;
        }
        self.only_local &= device == SELF;
        let cols = op.cells.iter().map(|(c, _)| c.clone()).collect();
        self.ops.push(op);
        self.devices.push(device);
        Ok(cols)
    }

    /// The row's state by the merge rule: from the live set, or from every op on the row when a
    /// revived cell needs the reviver's past.
    pub fn state(
        &self,
        conn: &Conn,
        reader: &RowReader,
        order: &Order,
        table: &SyncedTable,
        key: &[u8],
    ) -> Result<RowState> {
        let live = merge::state_of_live(&self.ops, &self.live, &self.universe, &self.key);
        if let Some(state) = live {
            return Ok(state);
        }
        let (ops, key) = reader.ops(conn, table, key)?;
        Ok(merge::row_state(&ops, &key, order))
    }

    /// Stores the live set in `_sync_rows`.
    pub fn save(
        &self,
        conn: &Conn,
        statements: &mut Statements,
        universes: &mut Universes,
        table_id: i64,
        key: &[u8],
    ) -> Result<()> {
        let position = |c: &String| self.universe.iter().position(|u| u == c).map(|i| i as u32);
        let entries: Vec<SetEntry> = self
            .live
            .iter()
            .map(|e| {
                let cols = e.cols.iter().filter_map(position).collect();
                let op = &self.ops[e.op];
                let mark = Mark {
                    top: e.top,
                    delete: Some(op.kind == OpKind::Delete),
                };
                (self.devices[e.op].0, op.seq, mark, cols)
            })
            .collect();
        let blob = universes.encode(conn, &self.universe, &entries)?;
        statements
            .get("UPDATE main._sync_rows SET live = ?3 WHERE table_id = ?1 AND key = ?2")?
            .execute(&[
                Value::Integer(table_id),
                Value::Blob(key.to_vec()),
                Value::Blob(blob),
            ])
    }
}

fn device_indexes(devices: &Devices, ops: &[RowOp]) -> Result<Vec<DeviceIdx>> {
    ops.iter()
        .map(|o| {
            devices
                .idx(&o.device)
                .ok_or_else(|| Error::new("an op on the row names an unknown device"))
        })
        .collect()
}

/// What `_sync_rows` holds of a row's live set.
enum Stored {
    Single(i64, u64),
    Stale,
    Set(Vec<u8>),
}

/// What `_sync_rows` holds of the row; None where the row is not in the index.
fn load(statements: &mut Statements, table_id: i64, key: &[u8]) -> Result<Option<Stored>> {
    let stmt = statements
        .get("SELECT device, seq, live FROM main._sync_rows WHERE table_id = ?1 AND key = ?2")?;
    stmt.bind_all(&[Value::Integer(table_id), Value::Blob(key.to_vec())])?;
    let stored = match stmt.step()? {
        None => None,
        Some(r) => Some(match r.column(2)? {
            Value::Null => Stored::Single(r.column_int(0), r.column_int(1) as u64),
            Value::Blob(b) if !b.is_empty() => Stored::Set(b),
            _ => Stored::Stale,
        }),
    };
    stmt.reset();
    Ok(stored)
}

/// Rows to settle: per row, the ops new on it in the order they were applied (a causal
/// order), or None: from every op on it; and rows a floor op may change (`behind`), settled
/// from every op where their live set says it may.
#[derive(Default)]
pub struct Touched(BTreeMap<RowAt, Option<Vec<OpAt>>>, BTreeSet<RowAt>);

/// An op as a device names it: (device index, seq).
pub type OpAt = (DeviceIdx, u64);

/// A row as the row index names it: (table id, key).
pub type RowAt = (i64, Vec<u8>);

impl Touched {
    pub fn new() -> Touched {
        Touched::default()
    }

    /// Op (`device`, `seq`) is new on row (`table_id`, `key`).
    pub fn add(&mut self, entry: &Entry) {
        let (table_id, key, device, seq) = entry;
        if self.1.remove(&(*table_id, key.clone())) {
            // (a floor op may change it too: from every op)
            return self.all(*table_id, key.clone());
        }
        let new = self
            .0
            .entry((*table_id, key.clone()))
            .or_insert(Some(Vec::new()));
        if let Some(new) = new {
            new.push((*device, *seq));
        }
    }

    /// The row's ops changed names or causal contexts: it is settled from every op.
    pub fn all(&mut self, table_id: i64, key: Vec<u8>) {
        let row = (table_id, key);
        self.1.remove(&row);
        self.0.insert(row, None);
    }

    /// A floor op may change what the row shows: what an op on it behind a floor is taken to
    /// have seen grew (apply/floor.rs). Settled from every op where new ops touch it too.
    pub fn behind(&mut self, table_id: i64, key: Vec<u8>) {
        match self.0.get_mut(&(table_id, key.clone())) {
            Some(new) => *new = None,
            None => {
                self.1.insert((table_id, key));
            }
        }
    }

    /// Whether the row of `entry` is settled at the import's end: an op on it is new, or it is
    /// settled from every op; not one only a floor op touched (`behind`), which is settled
    /// only where the floor may change it (`floor_may_change`).
    pub fn settles(&self, entry: &Entry) -> bool {
        self.0.contains_key(&(entry.0, entry.1.clone()))
    }

    pub fn contains(&self, entry: &Entry) -> bool {
        let row = (entry.0, entry.1.clone());
        self.0.contains_key(&row) || self.1.contains(&row)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty() && self.1.is_empty()
    }

    pub fn take(&mut self) -> Vec<(RowAt, Option<Vec<OpAt>>)> {
        std::mem::take(&mut self.0).into_iter().collect()
    }

    /// The rows only a floor op touched (`behind`).
    pub fn take_behind(&mut self) -> Vec<RowAt> {
        std::mem::take(&mut self.1).into_iter().collect()
    }
}

/// Whether a floor op may change what row (`table_id`, `key`) shows, by its stored live set:
/// what an op behind a floor is taken to have seen is read only for a column whose live writes
/// are all deletes (rule.rs `cells_of`: the row it brings back), so not where no live op is a
/// delete, nor where the row has one op. True where the set is to be computed again, was
/// stored without kinds, or the row is not in the index.
pub fn floor_may_change(statements: &mut Statements, table_id: i64, key: &[u8]) -> Result<bool> {
    Ok(match load(statements, table_id, key)? {
        Some(Stored::Single(..)) => false,
        Some(Stored::Set(b)) => (decode_set(&b)?.1.iter()).any(|e| e.2.delete != Some(false)),
        Some(Stored::Stale) | None => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_stored_with_and_without_kinds_decode() {
        // as an earlier build stored it: top as a bool, no kinds
        type Earlier = (Vec<String>, Vec<(i64, u64, bool, Vec<u32>)>);
        let old: Earlier = (
            vec!["id".into(), "a".into()],
            vec![(2, 7, true, vec![0, 1])],
        );
        let (universe, entries) = decode_set(&rmp_serde::to_vec(&old).unwrap()).unwrap();
        assert_eq!(universe, Universe::Names(vec!["id".into(), "a".into()]));
        let unknown = Mark {
            top: true,
            delete: None,
        };
        assert_eq!(entries, [(2, 7, unknown, vec![0, 1])]);
        let marks = [(true, Some(true)), (false, Some(false)), (false, None)];
        let now: Vec<SetEntry> = (marks.iter())
            .map(|&(top, delete)| (3, 1, Mark { top, delete }, vec![1]))
            .collect();
        let blob = encode_set(&universe, &now).unwrap();
        assert_eq!(decode_set(&blob).unwrap(), (universe, now.clone()));
        // as this build stores it: the universe by its id
        let blob = encode_set(&Universe::Id(7), &now).unwrap();
        assert_eq!(decode_set(&blob).unwrap(), (Universe::Id(7), now));
    }
}
