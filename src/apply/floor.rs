//! A floor op applied (log/floors.rs): its floor placed in the histories held here, and the
//! rows of the ops held here that are behind it settled again, as the merge rule now reads
//! them.
//!
//! Invariant: every entry of a point held here names the history that holds the op its link
//! names, once this device holds that op: an entry learnt while it held its device's history
//! otherwise at that seq (a dep of the point was taken for the op held there, by a point
//! dropped since) waits in `_sync_unplaced` and is placed at the import that brings the op.

use super::import::{Import, Place};
use crate::db::{Conn, Result};
use crate::log::floors::{self, Floor};
use crate::log::row_key;
use crate::op::{DeviceId, Hash};
use crate::schema::{DeviceIdx, SELF};
use crate::value::Value;

/// After this device wrote a floor op (compact/mod.rs): the rows of the ops behind a floor
/// held before are settled again, as what they are taken to have seen grew by its floor
/// (log/floors.rs).
pub fn settle_behind_floors(conn: &Conn) -> Result<()> {
    let tables = crate::log::synced_tables(conn)?;
    let mut run = Import::new(conn, &tables)?;
    run.touch_behind(None)?;
    run.settle_and_finish()
}

impl Import<'_> {
    /// Learns floor op `op`, whose key values are `values`.
    pub(super) fn learn_floor(&mut self, op: (DeviceIdx, u64), values: &[Value]) -> Result<()> {
        let entries = floors::decode(values.first().unwrap_or(&Value::Null))?;
        self.reading.appender.flush()?; // (its entries' ops may be stored in this batch)
        let mut placed = Vec::with_capacity(entries.len());
        let mut retires = None;
        let mut each = Vec::new();
        let mut unplaced = false;
        for (id, seq, link) in entries {
            if id == floors::RETIRES {
                retires = Some(floors::Retires::UpTo(seq)); // (its writer's up to there)
                continue;
            }
            if id == floors::RETIRES_EACH {
                each.push(seq); // (and these of its writer's: log/floors.rs)
                continue;
            }
            // every op of a floor is in the floor op's causal past, so held here; an entry that
            // names a history this device cannot place lends nothing
            let Some(root) = self.known.devices.idx(&id) else {
                continue;
            };
            match self.resolve_entry(root, seq, &link)? {
                Some(history) => placed.push((history, seq)),
                // (a dep of the point taken for the op held here, by a point dropped since: the
                // op it names comes, and splits the history, later; placed then)
                None => unplaced = true,
            }
        }
        if unplaced && self.reading.removal {
            self.keep_unplaced(op)?;
        }
        self.write_applied()?;
        self.touch_behind(Some(op))?;
        if self.reading.removal {
            // (the histories it cuts, once the ops ready now are delivered: behind.rs)
            (self.reading.points).extend(placed.iter().map(|&(h, e)| (h, e, op)));
        }
        (self.known.floors).add(
            self.conn,
            Floor {
                op,
                entries: placed,
            },
        )?;
        if retires.is_none() && !each.is_empty() {
            retires = Some(floors::Retires::Each(each));
        }
        match retires {
            Some(retires) => self.known.floors.retire(self.conn, op, retires),
            None => Ok(()),
        }
    }

    /// Places again the entries of the compaction points whose entries named ops an import
    /// dropped (removed.rs `floors_without`), now that its ops are placed: each names the
    /// history holding the op its link names, as when it was learnt. The same for the points
    /// kept with an entry not placed (`_sync_unplaced`); one that still has one stays there.
    pub(super) fn place_entries_again(&mut self) -> Result<()> {
        let mut stale = std::mem::take(&mut self.reading.stale_points);
        let fresh: crate::hashed::HashSet<_> = stale.iter().copied().collect();
        let kept = self.has_unplaced()?;
        if kept {
            stale.extend(self.unplaced()?);
        }
        if stale.is_empty() {
            return Ok(());
        }
        stale.sort_unstable();
        stale.dedup();
        for (writer, seq) in stale {
            let Some((device, value)) = self.floor_held(&writer, seq)? else {
                if kept {
                    self.forget_unplaced(&writer, seq)?;
                }
                continue; // (the point itself went, or another op holds its seq now)
            };
            let mut unplaced = false;
            for (id, at, link) in floors::decode(&value)? {
                if id == floors::RETIRES || id == floors::RETIRES_EACH {
                    continue;
                }
                let Some(root) = self.known.devices.idx(&id) else {
                    continue;
                };
                let Some(history) = self.resolve_entry(root, at, &link)? else {
                    unplaced = true;
                    continue;
                };
                self.conn.exec(
                    "INSERT OR IGNORE INTO main._sync_floors(device, seq, of, of_seq)
                     VALUES (?1, ?2, ?3, ?4)",
                    &[
                        Value::from(device),
                        Value::Integer(seq as i64),
                        Value::from(history),
                        Value::Integer(at as i64),
                    ],
                )?;
                // (a point kept unplaced from before: its entries placed already cut then)
                if self.conn.changes() > 0 || fresh.contains(&(writer, seq)) {
                    self.reading.points.push((history, at, (device, seq)));
                }
            }
            match unplaced {
                true => self.keep_unplaced((device, seq))?,
                false if kept => self.forget_unplaced(&writer, seq)?,
                false => {}
            }
        }
        self.known.floors = floors::Floors::load(self.conn)?;
        Ok(())
    }

    /// Whether a point held here with an entry not placed (`_sync_unplaced`) names the device
    /// whose first history is `root` where `names` says (at its seq and link), at an op the
    /// histories here do not hold: its writer held another history of that device there,
    /// whose ops come now (each side of a fleet that decided a put-back device's history
    /// otherwise by its own points keeps the other's: behind.rs).
    pub(super) fn named_unplaced(
        &mut self,
        root: DeviceIdx,
        names: impl Fn(u64, &Hash) -> bool,
    ) -> Result<bool> {
        if !self.has_unplaced()? {
            return Ok(false);
        }
        let id = self.known.devices.wire_id(root);
        for (writer, point) in self.unplaced()? {
            let Some((_, value)) = self.floor_held(&writer, point)? else {
                continue;
            };
            for (of, at, link) in floors::decode(&value)? {
                if of == id && names(at, &link) && self.resolve_entry(root, at, &link)?.is_none() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Whether a compaction point the bundle carries or one held here names the history whose
    /// id is `history` (log/floors.rs `HISTORY`). (Asked only for an op a point would drop.)
    pub(super) fn names_history(&self, history: &DeviceId) -> Result<bool> {
        if self.reading.points_named.names_history(history) {
            return Ok(true);
        }
        for floor in self.known.floors.iter() {
            let (writer, seq) = floor.op;
            let mut value = None;
            self.history().each(writer, seq - 1, seq, |op| {
                if op.seq == seq && op.table == floors::TABLE {
                    value = op.key.into_iter().next().map(|(_, v)| v);
                }
                Ok(())
            })?;
            let Some(value) = value else {
                continue; // (removed: a retired point)
            };
            let named = floors::decode(&value)?;
            if named
                .iter()
                .any(|e| e.0 == floors::HISTORY && &e.2 == history)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Records point `op` as one with an entry not placed here (`_sync_unplaced`).
    fn keep_unplaced(&mut self, op: (DeviceIdx, u64)) -> Result<()> {
        self.conn.exec(crate::schema::UNPLACED, &[])?;
        let writer = self.known.devices.wire_id(op.0);
        self.conn.exec(
            "INSERT OR IGNORE INTO main._sync_unplaced(writer, seq) VALUES (?1, ?2)",
            &[Value::Blob(writer.to_vec()), Value::Integer(op.1 as i64)],
        )
    }

    /// Drops point (`writer`, `seq`) from `_sync_unplaced` (which exists).
    fn forget_unplaced(&mut self, writer: &DeviceId, seq: u64) -> Result<()> {
        self.conn.exec(
            "DELETE FROM main._sync_unplaced WHERE writer = ?1 AND seq = ?2",
            &[Value::Blob(writer.to_vec()), Value::Integer(seq as i64)],
        )
    }

    fn has_unplaced(&self) -> Result<bool> {
        let made = "SELECT 1 FROM main.sqlite_master WHERE name = '_sync_unplaced'";
        Ok(self.conn.query_value(made, &[])?.is_some())
    }

    /// The points recorded with an entry not placed here (`_sync_unplaced`, which exists).
    fn unplaced(&self) -> Result<Vec<(DeviceId, u64)>> {
        let mut out = Vec::new();
        let mut stmt = self
            .conn
            .prepare("SELECT writer, seq FROM main._sync_unplaced")?;
        while let Some(row) = stmt.step()? {
            let writer = row.column_blob(0)?.unwrap_or_default();
            if let Ok(writer) = writer.try_into() {
                out.push((writer, row.column_int(1) as u64));
            }
        }
        Ok(out)
    }

    /// The history holding floor op `seq` of the device whose ops travel under `writer`, and
    /// the op's value, where one holds it.
    fn floor_held(&self, writer: &DeviceId, seq: u64) -> Result<Option<(DeviceIdx, Value)>> {
        let devices = &self.known.devices;
        let Some(idx) = devices.idx(writer) else {
            return Ok(None);
        };
        for history in devices.histories(devices.root(idx)) {
            let mut value = None;
            self.history().each(history, seq - 1, seq, |op| {
                if op.table == floors::TABLE {
                    value = op.key.into_iter().next().map(|(_, v)| v);
                }
                Ok(())
            })?;
            if let Some(value) = value {
                return Ok(Some((history, value)));
            }
        }
        Ok(None)
    }

    /// Marks for settling the rows of the ops applied here that are not in floor op `new`'s
    /// causal past (those behind its floor are among them), and of the ops behind a floor held
    /// before (what they are taken to have seen grows by the new floor). (None: a floor op
    /// this device wrote, which no op held here is behind.) The ops are found per history from
    /// where the floors' contexts end, not by a pass over the row index: the cost follows the
    /// ops not in the floors' causal past (the ops of each history behind an older floor end at
    /// the first that reaches all its entries: a history's contexts only grow).
    fn touch_behind(&mut self, new: Option<(DeviceIdx, u64)>) -> Result<()> {
        let mut behind = Vec::new();
        let lowest = self.known.floors.lowest();
        for (idx, top) in self.held_histories()? {
            let below = lowest.get(&idx).copied().unwrap_or(0);
            let seqs = self.behind_in(idx, top, new, below)?;
            if !seqs.is_empty() {
                behind.push((idx, seqs));
            }
        }
        let mut rows = Vec::new();
        for (idx, seqs) in behind {
            rows.extend(self.indexed_rows_of(idx, &seqs)?);
        }
        for (table_id, key) in rows {
            self.rows.touched.behind(table_id, key);
        }
        Ok(())
    }

    /// Every history that holds ops here, with its highest seq held.
    fn held_histories(&self) -> Result<Vec<(DeviceIdx, u64)>> {
        let mut out = Vec::new();
        let mine = crate::log::last_local_seq(self.conn)? as u64;
        if mine > 0 {
            out.push((SELF, mine));
        }
        for idx in self.known.devices.indexes().filter(|&i| i != SELF) {
            let top = self.conn.query_row_kept(
                "SELECT max(seq) FROM main._sync_remote WHERE device = ?1",
                &[Value::from(idx)],
            )?;
            if let Some(top) = top.and_then(|row| row.first().and_then(Value::as_i64)) {
                out.push((idx, top as u64));
            }
        }
        Ok(out)
    }

    /// The seqs of the ops of history `idx` (held up to `top`) to settle again for floor op
    /// `new`: above what its context holds of `idx`, and those behind an older floor (above
    /// `below`, the lowest entry of `idx` in every floor: an op at or below it is below every
    /// floor).
    fn behind_in(
        &self,
        idx: DeviceIdx,
        top: u64,
        new: Option<(DeviceIdx, u64)>,
        below: u64,
    ) -> Result<std::collections::BTreeSet<u64>> {
        let contexts = &self.known.contexts;
        let seen = match new {
            None => top,
            Some(op) if idx == op.0 => op.1,
            Some(op) => contexts.entry(op.0, op.1, idx),
        };
        let mut out = std::collections::BTreeSet::new();
        self.held_seqs(idx, seen, |seq| {
            out.insert(seq);
            Ok(true)
        })?;
        let older = &self.known.floors;
        if older.is_empty() {
            return Ok(out);
        }
        let order = self.known.order();
        for floor in older.iter() {
            if floor.op.0 == idx {
                continue; // (its writer's later ops follow it, and so its entries)
            }
            let from = contexts.entry(floor.op.0, floor.op.1, idx).max(below);
            if from >= seen.min(top) {
                continue;
            }
            self.held_seqs(idx, from, |seq| {
                if seq > seen || floor.entries.iter().all(|&e| order.reaches((idx, seq), e)) {
                    return Ok(false);
                }
                if !order.reaches(floor.op, (idx, seq)) {
                    out.insert(seq);
                }
                Ok(true)
            })?;
        }
        Ok(out)
    }

    /// Calls `f` with each seq of history `idx` above `after` whose op is applied here, in
    /// order, while it returns true.
    fn held_seqs(
        &self,
        idx: DeviceIdx,
        after: u64,
        mut f: impl FnMut(u64) -> Result<bool>,
    ) -> Result<()> {
        let sql = match idx {
            SELF => "SELECT seq FROM main._sync_ops WHERE seq > ?2 AND ?1 = ?1 ORDER BY seq",
            _ => {
                "SELECT seq FROM main._sync_remote WHERE device = ?1 AND seq > ?2 AND applied = 1
                 ORDER BY seq"
            }
        };
        let mut stmt = self.conn.prepare(sql)?;
        stmt.bind_all(&[Value::from(idx), Value::Integer(after as i64)])?;
        while let Some(row) = stmt.step()? {
            if !f(row.column_int(0) as u64)? {
                break;
            }
        }
        Ok(())
    }

    /// The rows of the ops of history `idx` at `seqs` that the row index holds.
    fn indexed_rows_of(
        &mut self,
        idx: DeviceIdx,
        seqs: &std::collections::BTreeSet<u64>,
    ) -> Result<Vec<(i64, Vec<u8>)>> {
        let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
            return Ok(Vec::new());
        };
        let mut rows: Vec<(i64, Vec<u8>, u64)> = Vec::new();
        if idx == SELF {
            self.known.local.each(self.conn, first - 1, last, |op| {
                if seqs.contains(&op.seq) && op.table != floors::TABLE {
                    rows.push((op.table_id, row_key(op.key.iter().map(|(_, v)| v)), op.seq));
                }
                Ok(())
            })?;
        } else {
            let mut stmt = self.conn.prepare(&format!(
                "SELECT r.seq, {} FROM main._sync_remote r
                 WHERE r.device = ?1 AND r.seq >= ?2 AND r.seq <= ?3",
                crate::log::remote::columns("r")
            ))?;
            stmt.bind_all(&[
                Value::from(idx),
                Value::Integer(first as i64),
                Value::Integer(last as i64),
            ])?;
            let mut found = Vec::new();
            while let Some(row) = stmt.step()? {
                let seq = row.column_int(0) as u64;
                if !seqs.contains(&seq) {
                    continue;
                }
                let cols = [row.column(1)?, row.column(2)?, row.column(3)?];
                let stored = crate::log::remote::Stored::from_row(&cols)?;
                let (form, values) = self.known.forms.values(&stored)?;
                let key = row_key(values[..form.key.len()].iter());
                found.push((seq, stored.form, key));
            }
            drop(stmt);
            for (seq, form_id, key) in found {
                let table_id = match self.place_of(idx, form_id)? {
                    Place::Table(id) | Place::Kept(id, _) => id,
                    Place::Floor => continue,
                };
                rows.push((table_id, key, seq));
            }
        }
        let mut indexed = Vec::with_capacity(rows.len());
        for (table_id, key, seq) in rows {
            let entry = [
                Value::Integer(table_id),
                Value::Blob(key.clone()),
                Value::from(idx),
                Value::Integer(seq as i64),
            ];
            if self.conn.query_row_kept(INDEXED, &entry)?.is_some() {
                indexed.push((table_id, key));
            }
        }
        Ok(indexed)
    }
}

/// Whether the row index holds op (?3, ?4) on row (?1, ?2).
const INDEXED: &str = "SELECT 1 FROM main._sync_rows
     WHERE table_id = ?1 AND key = ?2 AND device = ?3 AND seq = ?4
     UNION ALL SELECT 1 FROM main._sync_row_ops
     WHERE table_id = ?1 AND key = ?2 AND device = ?3 AND seq = ?4";
