//! Compaction points ("floors"): where a device let go of history, as an op that travels.
//!
//! `sync_compact()` writes a floor op: an op of its device on the reserved table `_sync_floor`
//! whose one value is the floor, the device's stable clock then (log/stable.rs: ops every device
//! it knew had). A floor op travels and is applied in causal order like any op, so devices that
//! hold the same ops hold the same floors, whether they compacted or not.
//!
//! An op is *behind* a floor when it is not in the floor op's causal past and its writer had not
//! seen every op of the floor: it was written against an older state (a backup put back, a
//! copy, a device that joined late or was forgotten, or an op still on its way). The merge rule
//! takes such an op, where it brings back a deleted row without writing a column, to have seen
//! the writes below every floor held too (merge/rule.rs `Causality::saw`: their ops other than
//! deletes); so what compaction removes below a floor, writes other writes there overwrote, is
//! never needed, on any device, whichever floors come later (an op behind an older floor sees
//! the overwriters below a newer one of what the older lends it).
//!
//! A device's floor op may retire its earlier ones (`RETIRES`, an entry naming no device):
//! where its entries reach theirs and no op its writer had applied is behind them, dropping
//! them changes no merge. An op behind an earlier floor and not in the later one's causal past
//! is behind the later one too (it does not reach an entry the later one's entries reach), and
//! what it is taken to have seen below them grows by nothing (the later entries reach the
//! earlier ones); the ops in the later one's causal past were its writer's, none behind them,
//! or ops it removed, overwritten by ops in that past on every device. Retired floors still
//! name their entries for the histories below them (apply/behind.rs), not for the merge.
//!
//! Invariant: `_sync_floors` holds, per floor op applied here, its entries placed in the
//! histories held here, and a row `of = -1, of_seq = n` per floor op that retires its writer's
//! up to seq `n` (those whose entries its own placed here reach); when a floor op is applied, the
//! rows of the ops held here that are not in its causal past, or are behind another floor (not
//! retired), are settled again.

use crate::db::{Conn, Error, Result};
use crate::op::{DeviceId, Hash};
use crate::schema::DeviceIdx;
use crate::value::Value;

/// The reserved table floor ops are written on, and its one column (its key).
pub const TABLE: &str = "_sync_floor";
pub const COLUMN: &str = "floor";

/// One entry of a floor as it travels: device id, seq as 8 bytes big-endian, link.
const ENTRY: usize = 16 + 8 + 16;

/// The device id of the entry by which a floor op retires its writer's floor ops up to the
/// entry's seq (no device has it: older builds place no history for it, and skip it).
pub const RETIRES: DeviceId = [0; 16];

/// The device id of an entry that names a history a floor's entries are about, where that
/// history is not its device's first (a backup put back, a copy): its link is the history's
/// id (apply/histories.rs `history_id`), its seq the entry's. Every device names a history
/// alike, so an op that starts one is known for that history's first op, in whatever order
/// ops and points arrive (apply/behind.rs). Older builds place no history for it, and skip it.
pub const HISTORY: DeviceId = [0xff; 16];

/// The device id of the entries by which a floor op retires one of its writer's floor ops each
/// (the entry's seq), where an earlier one stays in force (an op applied is behind it): builds
/// before it place no history for it and skip it, so retire none of them, which changes no
/// merge either (retiring never does).
pub const RETIRES_EACH: DeviceId = {
    let mut id = [0; 16];
    id[15] = 1;
    id
};

/// `_sync_floors.of` of the row by which a floor op retires its writer's earlier ones.
const RETIRED: i64 = -1;

/// `_sync_floors.of` of the rows by which a floor op retires one of its writer's earlier ones
/// each: this less that one's seq (`of_seq`), one row per floor op retired.
const RETIRED_EACH: i64 = -2;

/// Which of its writer's earlier floor ops a floor op retires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retires {
    /// those in force up to this seq
    UpTo(u64),
    /// these, each named (an earlier one stays in force)
    Each(Vec<u64>),
}

/// A floor's value as it travels.
pub fn encode(entries: &[(DeviceId, u64, Hash)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY);
    for (id, seq, link) in entries {
        out.extend_from_slice(id);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(link);
    }
    out
}

/// A floor op's entries, from its value.
pub fn decode(value: &Value) -> Result<Vec<(DeviceId, u64, Hash)>> {
    let bad = || Error::new("a floor op (table _sync_floor) is damaged: its value is not a floor");
    let bytes = value.as_blob().ok_or_else(bad)?;
    if bytes.len() % ENTRY != 0 {
        return Err(bad());
    }
    let entries = bytes.chunks(ENTRY).map(|e| {
        let id: DeviceId = e[..16].try_into().expect("16 bytes");
        let seq = u64::from_be_bytes(e[16..24].try_into().expect("8 bytes"));
        let link: Hash = e[24..].try_into().expect("16 bytes");
        (id, seq, link)
    });
    let entries: Vec<_> = entries.collect();
    if entries.iter().any(|e| e.1 == 0) {
        return Err(bad());
    }
    Ok(entries)
}

/// One floor op held here: its name, and per history the last op below its floor.
#[derive(Debug, Clone)]
pub struct Floor {
    pub op: (DeviceIdx, u64),
    pub entries: Vec<(DeviceIdx, u64)>,
}

/// Every floor op applied here, and per history its highest entry among them (asked for each
/// op an import places where removal is on: apply/behind.rs); the merge reads those not
/// retired.
#[derive(Debug, Default)]
pub struct Floors {
    all: Vec<Floor>,
    top: crate::hashed::HashMap<DeviceIdx, u64>,
    retired: crate::hashed::HashSet<(DeviceIdx, u64)>,
    /// Per floor op that retires others, which
    retiring: crate::hashed::HashMap<(DeviceIdx, u64), Retires>,
    /// The indexes in `all` of the floor ops not retired, which the merge reads (its cost
    /// follows them, not every point ever held)
    in_force: Vec<usize>,
}

impl Floors {
    pub fn load(conn: &Conn) -> Result<Floors> {
        let made = "SELECT 1 FROM main.sqlite_master WHERE name = '_sync_floors'";
        if conn.query_value(made, &[])?.is_none() {
            return Ok(Floors::default()); // (none written yet, or by an earlier build)
        }
        let mut stmt = conn.prepare(
            "SELECT device, seq, of, of_seq FROM main._sync_floors ORDER BY device, seq",
        )?;
        let mut floors: Vec<Floor> = Vec::new();
        let mut retiring = crate::hashed::HashMap::default();
        while let Some(row) = stmt.step()? {
            let op = (DeviceIdx(row.column_int(0)), row.column_int(1) as u64);
            let of_seq = row.column_int(3) as u64;
            if row.column_int(2) == RETIRED {
                retiring.insert(op, Retires::UpTo(of_seq));
                continue;
            }
            if row.column_int(2) <= RETIRED_EACH {
                match retiring.entry(op).or_insert(Retires::Each(Vec::new())) {
                    Retires::Each(each) => each.push(of_seq),
                    Retires::UpTo(_) => {}
                }
                continue;
            }
            let entry = (DeviceIdx(row.column_int(2)), row.column_int(3) as u64);
            match floors.last_mut() {
                Some(f) if f.op == op => f.entries.push(entry),
                _ => floors.push(Floor {
                    op,
                    entries: vec![entry],
                }),
            }
        }
        let mut out = Floors {
            retiring,
            ..Floors::default()
        };
        floors.into_iter().for_each(|f| out.keep(f));
        out.find_retired();
        out.count_in_force();
        Ok(out)
    }

    /// Floor op `by` retires earlier floor ops of its history (`RETIRES`: those up to a seq;
    /// `RETIRES_EACH`: those named) whose entries its own entries here reach; marker rows of
    /// `by` say so (they go with `by`'s rows, where `by` is dropped or moved).
    pub fn retire(&mut self, conn: &Conn, by: (DeviceIdx, u64), retires: Retires) -> Result<()> {
        let rows: Vec<(i64, u64)> = match &retires {
            Retires::UpTo(upto) => vec![(RETIRED, *upto)],
            Retires::Each(each) => (each.iter())
                .map(|&seq| (RETIRED_EACH - seq as i64, seq))
                .collect(),
        };
        for (of, of_seq) in rows {
            conn.exec(
                "INSERT OR REPLACE INTO main._sync_floors(device, seq, of, of_seq)
                 VALUES (?1, ?2, ?3, ?4)",
                &[
                    Value::from(by.0),
                    Value::Integer(by.1 as i64),
                    Value::Integer(of),
                    Value::Integer(of_seq as i64),
                ],
            )?;
        }
        if let Some(later) = self.all.iter().position(|f| f.op == by) {
            self.retire_below(later, &retires);
        }
        self.retiring.insert(by, retires);
        self.count_in_force();
        Ok(())
    }

    /// The floor ops retired, from the retiring ones held: per history in seq order (as the
    /// load reads them), each retiring op retires the earlier ones still in force that it
    /// reaches, as it did when it was applied (`retire`).
    fn find_retired(&mut self) {
        self.retired.clear();
        let mut in_force: Vec<usize> = Vec::new();
        for i in 0..self.all.len() {
            if i > 0 && self.all[i - 1].op.0 != self.all[i].op.0 {
                in_force.clear();
            }
            if let Some(retires) = self.retiring.get(&self.all[i].op) {
                let gone = self.reached_by(i, retires, &in_force);
                in_force.retain(|j| !gone.contains(j));
                self.retired.extend(gone.iter().map(|&j| self.all[j].op));
            }
            in_force.push(i);
        }
    }

    /// Retires, for `self.all[later]`, the floor ops of its history in force below it.
    fn retire_below(&mut self, later: usize, retires: &Retires) {
        let device = self.all[later].op.0;
        let in_force: Vec<usize> = (0..self.all.len())
            .filter(|&j| j != later && self.all[j].op.0 == device)
            .filter(|&j| !self.retired.contains(&self.all[j].op))
            .collect();
        let gone = self.reached_by(later, retires, &in_force);
        self.retired.extend(gone.iter().map(|&j| self.all[j].op));
    }

    /// Which of `candidates` (indexes of floor ops of its history) `self.all[later]` retires:
    /// below it, at or below the seq `retires` names (or one it names), each entry reached by
    /// one of its own in the same history.
    fn reached_by(&self, later: usize, retires: &Retires, candidates: &[usize]) -> Vec<usize> {
        let by = &self.all[later];
        let reached = |e: &(DeviceIdx, u64)| by.entries.iter().any(|n| n.0 == e.0 && n.1 >= e.1);
        let named = |seq: u64| match retires {
            Retires::UpTo(upto) => seq <= *upto,
            Retires::Each(each) => each.contains(&seq),
        };
        (candidates.iter().copied())
            .filter(|&j| {
                let f = &self.all[j];
                f.op.1 < by.op.1 && named(f.op.1) && f.entries.iter().all(reached)
            })
            .collect()
    }

    fn count_in_force(&mut self) {
        let retired = &self.retired;
        self.in_force = (0..self.all.len())
            .filter(|&i| !retired.contains(&self.all[i].op))
            .collect();
    }

    /// The floor ops retired here.
    pub fn retired(&self) -> impl Iterator<Item = (DeviceIdx, u64)> + '_ {
        self.retired.iter().copied()
    }

    fn keep(&mut self, floor: Floor) {
        for &(device, seq) in &floor.entries {
            let at = self.top.entry(device).or_default();
            *at = (*at).max(seq);
        }
        if !self.retired.contains(&floor.op) {
            self.in_force.push(self.all.len());
        }
        self.all.push(floor);
    }

    /// Records floor op `floor`, applied here.
    pub fn add(&mut self, conn: &Conn, floor: Floor) -> Result<()> {
        conn.exec(crate::schema::FLOORS, &[])?;
        for &(of, of_seq) in &floor.entries {
            conn.exec(
                "INSERT OR REPLACE INTO main._sync_floors(device, seq, of, of_seq)
                 VALUES (?1, ?2, ?3, ?4)",
                &[
                    Value::from(floor.op.0),
                    Value::Integer(floor.op.1 as i64),
                    Value::from(of),
                    Value::Integer(of_seq as i64),
                ],
            )?;
        }
        self.keep(floor);
        Ok(())
    }

    /// Every floor op held here that the merge reads (not retired).
    pub fn iter(&self) -> impl Iterator<Item = &Floor> {
        self.in_force.iter().map(|&i| &self.all[i])
    }

    /// How many floor ops the merge reads.
    pub fn len(&self) -> usize {
        self.in_force.len()
    }

    /// Whether the merge reads no floor op.
    pub fn is_empty(&self) -> bool {
        self.in_force.is_empty()
    }

    /// Whether no floor op is held here, retired or not.
    pub fn none_held(&self) -> bool {
        self.all.is_empty()
    }

    /// The last floor op this device (`me`) wrote, if any.
    pub fn last_of(&self, me: DeviceIdx) -> Option<&Floor> {
        (self.all.iter())
            .filter(|f| f.op.0 == me)
            .max_by_key(|f| f.op.1)
    }

    /// The number of floor ops of history `device` with `after < seq <= upto`.
    pub fn count_between(&self, device: DeviceIdx, after: u64, upto: u64) -> u64 {
        let between = |f: &&Floor| f.op.0 == device && after < f.op.1 && f.op.1 <= upto;
        self.all.iter().filter(between).count() as u64
    }

    /// Whether op `earlier` is below a floor that op `later` is behind, by the causal order
    /// `reaches(x, y)`: op x is op y or follows it.
    pub fn seen_through(
        &self,
        reaches: impl Fn((DeviceIdx, u64), (DeviceIdx, u64)) -> bool,
        later: (DeviceIdx, u64),
        earlier: (DeviceIdx, u64),
    ) -> bool {
        self.iter()
            .any(|f| f.entries.iter().any(|&e| reaches(e, earlier)))
            && self.behind_any(&reaches, later)
    }

    /// Whether op `op` is behind a floor held here: not in the floor op's causal past, and not
    /// following every op of the floor.
    pub fn behind_any(
        &self,
        reaches: impl Fn((DeviceIdx, u64), (DeviceIdx, u64)) -> bool,
        op: (DeviceIdx, u64),
    ) -> bool {
        self.iter()
            .any(|f| !reaches(f.op, op) && !f.entries.iter().all(|&e| reaches(op, e)))
    }

    /// Per history, the lowest entry of every floor held here (none where a floor has no
    /// entry of it): an op at or below it is below every floor, so behind none.
    pub fn lowest(&self) -> crate::hashed::HashMap<DeviceIdx, u64> {
        let mut low: crate::hashed::HashMap<DeviceIdx, u64> = Default::default();
        for (i, f) in self.iter().enumerate() {
            for &(device, seq) in &f.entries {
                if i == 0 {
                    low.insert(device, seq);
                } else if let Some(at) = low.get_mut(&device) {
                    *at = (*at).min(seq);
                }
            }
            low.retain(|d, _| f.entries.iter().any(|e| e.0 == *d));
        }
        low
    }

    /// The floor ops held here that name history `device`.
    pub fn naming(&self, device: DeviceIdx) -> impl Iterator<Item = (DeviceIdx, u64)> + '_ {
        (self.all.iter())
            .filter(move |f| f.entries.iter().any(|e| e.0 == device))
            .map(|f| f.op)
    }

    /// The floor ops held here with an entry of history `device` at `seq` or above.
    pub fn naming_from(&self, device: DeviceIdx, seq: u64) -> Vec<(DeviceIdx, u64)> {
        (self.all.iter())
            .filter(|f| f.entries.iter().any(|e| e.0 == device && e.1 >= seq))
            .map(|f| f.op)
            .collect()
    }

    /// Every floor op held here, retired or not.
    pub fn all(&self) -> impl Iterator<Item = &Floor> {
        self.all.iter()
    }

    /// The highest entry of history `device` in a floor held here.
    pub fn entry_of(&self, device: DeviceIdx) -> Option<u64> {
        self.top.get(&device).copied()
    }
}
