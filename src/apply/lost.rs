//! Writes a compaction point decided against (behind.rs, removed.rs), told: an op dropped
//! because a compaction point settled its device's history at its seq otherwise, where it may
//! be on no device any more, is recorded in `_sync_lost` (the view `sync_lost`), so that
//! nothing goes without a word (DESIGN 5.4).
//!
//! Two cases, told apart by `certain`:
//! - certain: a compaction point held here holds another op of the device at that seq (behind.
//!   rs `Placed::Dropped`), or removed one there that the op is known not to be (it follows an
//!   op of another history: behind.rs `not_the_removed`), or a history set aside for a
//!   bundle's base held it where this device holds another op at its seq at the import's end
//!   (behind.rs `set_aside`): the op is
//!   another history's, a backup put back or a copy written on under the device's id, and
//!   every device that holds the point or the base drops it. (This device's own, too, where a
//!   peer had confirmed it: the peer that received it dropped it as well.)
//! - possible: an op of one of this device's own ids (its former ids: the ops it wrote before
//!   it forked) dropped for a bundle's base or a compaction point, at a seq its peers removed,
//!   above the highest seq a peer had confirmed with the same hash while the id was this
//!   device's (`confirmed <id>` in `_sync_state`), or at or below it where no op of that id is
//!   held at its seq at the import's end (a peer confirmed the write made after the backup
//!   was put back, then the ops of the old peers came, the one at that seq removed). A device
//!   cannot tell a write made after a backup was put back from the op its peers removed
//!   there; so it may be a write made before the backup (or the copy) that was overwritten
//!   since, and is shown all the same (another device's is not: it may be that op).
//!
//! Invariant: a record is written at the end of the import that dropped its op, only when no
//! history held here holds that op then (the ops a bundle carries again are not lost), and
//! goes where a later import keeps that op after all (a point that saw it, behind.rs); the
//! records are this device's own account (like closed conflict records), not the same on every
//! device, and are never written for ops of other devices that a peer removed as overwritten,
//! nor for compaction points (`_sync_floor` ops: no write of the app's).

use super::import::{Dropped, Import};
use crate::bundle::Packed;
use crate::db::Result;
use crate::form::Form;
use crate::op::{DeviceId, Hash};
use crate::schema::{DeviceIdx, SELF};
use crate::value::{JsonObject, Value};

/// Why a record was written, as the view shows it.
const CERTAIN: &str = "a compaction point settled the history of the device it was written \
    under with another op at this seq (a backup put back, or a copy, written on under that \
    id): the write is dropped on every device; write it again if it is still wanted";
const POSSIBLE: &str = "written under an id this database had before it forked, at a seq its \
    peers removed after a compaction point: a write made after a backup was put back (or on a \
    copy) is dropped; one made before the backup, since overwritten, is listed too, as no \
    device can tell them apart: check it against the row, write it again if it is still wanted";

impl Import<'_> {
    /// Notes the ops of history `idx` at `seqs`, about to be dropped (another history's than
    /// the one a bundle's base or a compaction point decided): this device's own above what
    /// its peers confirmed (possible losses); the others from `other` on (known to be another
    /// history's), and below it where the op kept at their seq is held at the import's end
    /// (certain: a device that received them, or one whose peer confirmed them and then
    /// dropped them too).
    pub(super) fn note_dropping(&mut self, idx: DeviceIdx, seqs: &[u64], other: u64) -> Result<()> {
        if idx == SELF {
            return Ok(());
        }
        let id = self.known.devices.wire_id(idx);
        let confirmed = self.confirmed_mine(&id)?;
        for &seq in seqs {
            let possible = confirmed.is_some_and(|c| seq > c);
            let history = self.history();
            let mut found = None;
            history.each(idx, seq - 1, seq, |op| {
                found = Some(op);
                Ok(())
            })?;
            // (an op held pending over one not held, whose hash is not kept, is noted by its
            // own, from no op before it: it cannot be hashed as written)
            let chain_held = history.chain_held(idx, seq)?;
            let hash = match (chain_held, &found) {
                (true, _) => history.hash_at(idx, seq)?,
                (false, Some(op)) => Some(crate::log::chain::hash_of(op, None)),
                (false, None) => None,
            };
            // (its link, for the deps on it, where it is another history's: log/strays.rs)
            if let (true, Some(hash)) = (chain_held, hash) {
                if let Some(prev) = self.link_below(idx, seq)? {
                    let conn = self.conn;
                    self.strays()?.add(conn, (id, seq, hash, prev))?;
                }
            }
            if let (Some(op), Some(hash)) = (found, hash) {
                (self.reading.lost).push(Dropped {
                    id,
                    seq,
                    hash,
                    op,
                    certain: !possible,
                    if_replaced: !possible && seq < other,
                });
            }
        }
        Ok(())
    }

    /// The hash of the op before op `seq` of history `idx`, where op `seq` is another
    /// history's link (log/strays.rs): where the op before it is held, or its hash kept (a
    /// history held with a gap below a checkpoint has none; op 1 has no op before it).
    fn link_below(&mut self, idx: DeviceIdx, seq: u64) -> Result<Option<Hash>> {
        let history = self.history();
        Ok(match seq >= 2 && history.chain_held(idx, seq - 1)? {
            true => history.hash_at(idx, seq - 1)?,
            false => None,
        })
    }

    /// Knows the links of ops `seqs` of history `idx`, set aside to be placed again in this
    /// import (behind.rs `keep_aside`), for this import (log/strays.rs `hold`): a dep on one
    /// of them that waits meanwhile, where a compaction point decides that they are another
    /// history's, walks their links down to the op the writer had seen of the history held,
    /// as where they arrive dropped (without them it took the op held right below the dep
    /// for that op: a put-back device's edit, written having seen its own writes a peer's
    /// point then dropped, took the peer's op at that seq for one it had seen, and showed no
    /// conflict where its peers did: tests/trial/trial57 `repro_conflicts.py`).
    pub(super) fn hold_links(&mut self, idx: DeviceIdx, seqs: &[u64]) -> Result<()> {
        let id = self.known.devices.wire_id(idx);
        for &seq in seqs {
            let history = self.history();
            if !history.chain_held(idx, seq)? {
                continue;
            }
            let (Some(hash), Some(prev)) = (history.hash_at(idx, seq)?, self.link_below(idx, seq)?)
            else {
                continue;
            };
            self.strays()?.hold((id, seq, hash, prev));
        }
        Ok(())
    }

    /// Notes `op`, arriving with `hash` after the op whose hash is `prev`, dropped where a
    /// compaction point held here holds another op at its seq, or removed one there that it
    /// is known not to be (`certain`), or had removed the one there (possible, where it is
    /// this device's own above what its peers confirmed). Its link is kept, for the deps on
    /// it where it is another history's (log/strays.rs).
    pub(super) fn note_arriving(
        &mut self,
        (root, op): (DeviceIdx, &Packed),
        form: &Form,
        (hash, prev): (Hash, Option<Hash>),
        certain: bool,
    ) -> Result<()> {
        if let Some(prev) = prev {
            let (conn, stray) = (self.conn, (op.device, op.seq, hash, prev));
            match certain {
                true => self.strays()?.add(conn, stray)?,
                false => {
                    self.strays()?.hold(stray);
                    self.reading.maybe_removed.push((root, stray));
                }
            }
        }
        if !certain && self.confirmed_mine(&op.device)?.is_none_or(|c| op.seq <= c) {
            return Ok(());
        }
        let op_of = form.op_of(op.device, op.seq, op.lamport, Vec::new(), &op.values);
        let (id, seq) = (op.device, op.seq);
        (self.reading.lost).push(Dropped {
            id,
            seq,
            hash,
            op: op_of,
            certain,
            if_replaced: false,
        });
        Ok(())
    }

    /// Keeps the links of the ops dropped that may be the ops compaction removed at their seqs
    /// (`note_arriving`), but for those the chain shows to be: an op whose hash is the one
    /// kept here at its seq, or that the next such op of the stream follows (its link names
    /// the op's hash). A relay sends again the ops it does not know this device has; each
    /// would otherwise keep a link for good.
    pub(super) fn keep_strays(&mut self) -> Result<()> {
        let mut maybe = std::mem::take(&mut self.reading.maybe_removed);
        // per device, from the highest seq down: an op is the removed one where the next is
        maybe.sort_by_key(|&(_, (device, seq, _, _))| std::cmp::Reverse((device, seq)));
        let mut removed: crate::hashed::HashMap<(DeviceId, u64), (Hash, bool)> = Default::default();
        for (root, stray) in maybe {
            let (device, seq, hash, prev) = stray;
            let same = match removed.get(&(device, seq + 1)) {
                Some(&(named, same)) if named == hash => same,
                _ => {
                    // (removed with its hash kept: the last of a run removed, a checkpoint)
                    let history = self.history();
                    history.removed(root, seq)?
                        && !history.unhashable(root, seq)?
                        && history.hash_at(root, seq)? == Some(hash)
                }
            };
            removed.insert((device, seq), (prev, same));
            if !same {
                let conn = self.conn;
                self.strays()?.store(conn, stray)?;
            }
        }
        Ok(())
    }

    /// Where `id` is one of this device's ids (now or before it forked), the highest seq of it
    /// a peer confirmed; None for another device's. (This device's ids are read once per
    /// import: an op below a point is asked about as it arrives.)
    fn confirmed_mine(&mut self, id: &DeviceId) -> Result<Option<u64>> {
        if self.reading.mine.is_none() {
            let me = self.known.devices.id(SELF);
            self.reading.mine = Some(crate::identity::ids(self.conn, &me)?);
        }
        if !self
            .reading
            .mine
            .as_ref()
            .is_some_and(|ids| ids.contains(id))
        {
            return Ok(None);
        }
        crate::log::stable::confirmed(self.conn, id).map(Some)
    }

    /// Whether history `idx` of `id` holds this device's own ops: its own, or one of its ids
    /// before it forked held as one history (where the id has two, the other may be a copy's,
    /// whose ops a peer's word confirms nothing of this device's).
    pub(super) fn holds_only_mine(&mut self, idx: DeviceIdx, id: &DeviceId) -> Result<bool> {
        if idx == SELF {
            return Ok(true);
        }
        let devices = &self.known.devices;
        if devices.root(idx) != idx || devices.is_forked(idx) {
            return Ok(false);
        }
        Ok(self.confirmed_mine(id)?.is_some())
    }

    /// Op `seq` of device `id` with `hash`, dropped here before, is held again: no longer
    /// lost (it goes from `_sync_lost`, and from what this import noted).
    pub(super) fn found_again(&mut self, id: DeviceId, seq: u64, hash: &Hash) -> Result<()> {
        (self.reading.lost).retain(|l| l.id != id || l.seq != seq || l.hash != *hash);
        let made = "SELECT 1 FROM main.sqlite_master WHERE name = '_sync_lost'";
        if self.conn.query_value(made, &[])?.is_none() {
            return Ok(());
        }
        self.conn.exec(
            "DELETE FROM main._sync_lost WHERE device = ?1 AND seq = ?2 AND hash = ?3",
            &[
                Value::Blob(id.to_vec()),
                Value::Integer(seq as i64),
                Value::Blob(hash.to_vec()),
            ],
        )
    }

    /// At the import's end: records the ops noted as dropped that no history held here holds.
    pub(super) fn keep_lost(&mut self) -> Result<()> {
        let lost = std::mem::take(&mut self.reading.lost);
        self.found_held()?;
        if lost.is_empty() {
            return Ok(());
        }
        self.reading.appender.flush()?;
        for mut dropped in lost {
            // (a compaction point dropped is no write of the app's: nothing to write again)
            if dropped.op.table == crate::log::floors::TABLE || self.holds_op(&dropped)? {
                continue;
            }
            if dropped.if_replaced && !self.holds_other(&dropped)? {
                // (maybe the op its writer removed there, overwritten: not told of another
                // device's; this device's own is told as possible, as it cannot tell either)
                if self.confirmed_mine(&dropped.id)?.is_none() {
                    continue;
                }
                dropped.certain = false;
            }
            let op = &dropped.op;
            self.conn.exec(
                "INSERT OR IGNORE INTO main._sync_lost(device, seq, hash, table_name, pk, kind,
                   cell_values, certain, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                &[
                    Value::Blob(dropped.id.to_vec()),
                    Value::Integer(dropped.seq as i64),
                    Value::Blob(dropped.hash.to_vec()),
                    Value::Text(op.table.clone()),
                    Value::Text(JsonObject::of(&op.key)),
                    Value::Text(op.kind.name().into()),
                    Value::Text(JsonObject::of(&op.cells)),
                    Value::Integer(dropped.certain as i64),
                    Value::Text(if dropped.certain { CERTAIN } else { POSSIBLE }.into()),
                ],
            )?;
            self.outcome.lost += self.conn.changes() as u64;
        }
        Ok(())
    }

    /// The ops listed as lost that a history held here holds now (dropped before a point that
    /// saw one came, or placed by the histories where they go since): no longer lost. (One
    /// read of the schema per import: the table is made only where an op was dropped.)
    fn found_held(&mut self) -> Result<()> {
        let made = "SELECT 1 FROM main.sqlite_master WHERE name = '_sync_lost'";
        if self.conn.query_value(made, &[])?.is_none() {
            return Ok(());
        }
        self.reading.appender.flush()?;
        let mut listed = Vec::new();
        let mut stmt = self
            .conn
            .prepare("SELECT device, seq, hash FROM main._sync_lost")?;
        while let Some(row) = stmt.step()? {
            let id = crate::op::device_id(row.column_blob(0)?.unwrap_or_default());
            let hash: Option<Hash> = (row.column_blob(2)?.unwrap_or_default()).try_into().ok();
            if let (Some(id), Some(hash)) = (id, hash) {
                listed.push((id, row.column_int(1) as u64, hash));
            }
        }
        drop(stmt);
        for (id, seq, hash) in listed {
            if self.held_at(&id, seq)?.contains(&hash) {
                self.found_again(id, seq, &hash)?;
            }
        }
        Ok(())
    }

    /// Whether a history of the dropped op's device held here holds it.
    fn holds_op(&self, dropped: &Dropped) -> Result<bool> {
        Ok(self
            .held_at(&dropped.id, dropped.seq)?
            .contains(&dropped.hash))
    }

    /// Whether a history of the dropped op's device held here holds another op at its seq.
    fn holds_other(&self, dropped: &Dropped) -> Result<bool> {
        Ok((self.held_at(&dropped.id, dropped.seq)?.iter()).any(|h| h != &dropped.hash))
    }

    /// The hashes of the ops the histories of device `id` held here hold at `seq`.
    fn held_at(&self, id: &DeviceId, seq: u64) -> Result<Vec<Hash>> {
        let devices = &self.known.devices;
        let Some(root) = devices.idx(id) else {
            return Ok(Vec::new());
        };
        let history = self.history();
        let mut held = Vec::new();
        for idx in devices.histories(devices.root(root)) {
            if !history.holds(idx, seq)? || !history.chain_held(idx, seq)? {
                continue;
            }
            held.extend(history.hash_at(idx, seq)?);
        }
        Ok(held)
    }
}
