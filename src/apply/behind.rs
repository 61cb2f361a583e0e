//! A history that leaves a compaction point's lineage below its point (DESIGN 5.4, where
//! compaction removes ops): a backup put back, or a copy, written on under its device's id
//! at seqs its peers have other ops under, some of them removed. A device that removed an op
//! cannot tell another op under its seq from it; so the compaction point decides, alike on
//! every device that holds it: the history of a device up to a compaction point's entry of it
//! is the one the point names (its link), and an op of another history there goes.
//!
//! - An op at or below the entry's seq that is not the one held there is dropped as it
//!   arrives (the same as an op taken for one removed: `Placed::Below`); a dep that names an
//!   op there names the one held (it was concurrent with nothing the point's writer did not
//!   see). But where a point's writer saw that op (its history's deps as written name it) and
//!   this device holds the op it follows, it goes where the histories put it, a history of
//!   its own: as on a device that held it before the point (`cut_below` keeps what a point
//!   saw).
//! - The op right above the entry's seq that does not follow the entry's op starts a history
//!   of its own, forked at the entry, whose link there is the one its first op names
//!   (`History::own_link`), named by that op alike on every device; the ops after it follow it.
//!   A peer that has that history does not have the device's history up to there.
//!
//! Invariant: every device that holds a compaction point and the same ops holds the same
//! histories below and above its entries; only where removal is on (compact/mod.rs).

use super::carried_points::Known;
use super::histories::{op_hash, Placed};
use super::import::Import;
use crate::bundle::{Base, Packed, Peers, Prev, Reader, Writer, Written};
use crate::db::{Error, Result};
use crate::form::Form;
use crate::op::Hash;
use crate::schema::DeviceIdx;
use crate::value::Value;

/// How many rounds of cutting and placing again `place_aside` takes at most.
const ROUNDS: usize = 1_000;

impl Import<'_> {
    /// Where `op` of the device whose first history is `root` goes, when a compaction point
    /// held here decides it (None: where the histories put it).
    pub(super) fn behind_point(
        &mut self,
        root: DeviceIdx,
        op: &Packed,
        form: &Form,
    ) -> Result<Option<Placed>> {
        if !self.reading.removal {
            return Ok(None);
        }
        if let Some(placed) = self.against_base(root, op, form)? {
            return Ok(Some(placed));
        }
        let Some(entry) = self.decided_upto(root) else {
            return Ok(None);
        };
        let seq = op.seq;
        if seq > entry + 1 {
            return Ok(None);
        }
        self.reading.appender.flush()?;
        if seq <= entry {
            // (its hash as the bundle has it, for the op that follows it in the stream: for one
            // held here, the held op's, read when asked for, `prev_of`)
            let removed = self.history().removed(root, seq)?;
            let same = match removed {
                true => None,
                false => self.stored_same(root, op, form)?,
            };
            if same == Some(true) {
                // (the content of the op held there, after an op known to be another history's:
                // another op, written alike (a delete of the same row, say), whose link is kept
                // for the deps that name it, log/strays.rs; the ops after it in the stream
                // follow it, not the op held: one above the entry starts a history of its own,
                // named by its own hash alike on every device)
                let mut wire = None;
                if let Some((id, at, prev, true)) = self.reading.wire {
                    if id == op.device && at + 1 == seq {
                        let hash = op_hash(op, form, Some(&prev));
                        let conn = self.conn;
                        self.strays()?.add(conn, (op.device, seq, hash, prev))?;
                        wire = Some((op.device, seq, hash, true));
                    }
                }
                self.reading.wire = wire;
                return Ok(Some(Placed::Duplicate(root)));
            }
            let prev = self.prev_of(op)?;
            let hash = op_hash(op, form, prev.as_ref());
            if removed {
                // (taken for the op removed, which it may be; told where it is known not to be;
                // where it is not, and a point's writer saw it, as a history of its own below)
                let other = self.not_the_removed(root, op, hash, prev)?;
                if other
                    && (self.seen_by_a_point(root, op, prev.as_ref(), &hash)?
                        || self.named_by_another_point(root, op, prev.as_ref(), &hash, entry)?
                        || self.against_its_deciders(root, op, form, prev.as_ref())?)
                {
                    self.found_again(op.device, seq, &hash)?;
                    self.reading.seen = Some(crate::op::Dep(op.device, seq, hash));
                    return Ok(None);
                }
                // (the first op of a history a point names by its id: not the op removed, where
                // its hash was not kept to tell, log/floors.rs `HISTORY`; where it was kept and
                // is this op's, it is the op removed, though a point's writer held it as a
                // history of its own beside another history there)
                if let (false, Some(prev)) = (other, prev) {
                    if self.history().unhashable(root, seq)?
                        && self.names_history(&self.history_named(root, &hash))?
                    {
                        self.reading.wire = Some((op.device, seq, hash, true));
                        return self.own_history(root, op, form, prev).map(Some);
                    }
                }
                self.reading.wire = Some((op.device, seq, hash, other));
                self.note_arriving((root, op), form, (hash, prev), other)?;
                return Ok(Some(Placed::Below(root)));
            }
            // (another op there that a point's writer saw, as a history of its own: where the
            // histories put it, as on a device that held it before the point, `cut_below`;
            // no longer lost where it was dropped before that point came)
            if same == Some(false)
                && (self.seen_by_a_point(root, op, prev.as_ref(), &hash)?
                    || self.named_by_another_point(root, op, prev.as_ref(), &hash, entry)?
                    || self.against_its_deciders(root, op, form, prev.as_ref())?)
            {
                self.found_again(op.device, seq, &hash)?;
                self.reading.seen = Some(crate::op::Dep(op.device, seq, hash));
                return Ok(None);
            }
            // (the first op of a history a point names by its id, which left the lineage
            // here: its writer held it so, as its peers do, log/floors.rs `HISTORY`)
            if let (Some(false), Some(prev)) = (same, prev) {
                if self.names_history(&self.history_named(root, &hash))? {
                    self.reading.wire = Some((op.device, seq, hash, true));
                    return self.own_history(root, op, form, prev).map(Some);
                }
            }
            self.reading.wire = Some((op.device, seq, hash, same.is_some()));
            return Ok(match same {
                Some(_) => {
                    self.note_arriving((root, op), form, (hash, prev), true)?;
                    Some(Placed::Dropped)
                }
                None => None,
            });
        }
        let Some(prev) = self.prev_of(op)? else {
            return Ok(None);
        };
        let history = self.history();
        if history.unhashable(root, entry)? || history.hash_at(root, entry)? == Some(prev) {
            return Ok(None); // it follows the point's op: where the histories put it
        }
        // it left the lineage: its own history, forked at the entry
        self.own_history(root, op, form, prev).map(Some)
    }

    /// `op`, following the op whose hash is `prev` where history `root` holds another op (or
    /// none), as the first op of a history of its own, forked there and named by its hash.
    fn own_history(
        &mut self,
        root: DeviceIdx,
        op: &Packed,
        form: &Form,
        prev: Hash,
    ) -> Result<Placed> {
        let seq = op.seq;
        let id = self.history_after(root, op, form, &prev);
        if let Some(idx) = self.known.devices.idx(&id) {
            return Ok(match self.stored_same(idx, op, form)? {
                Some(true) => Placed::Duplicate(idx),
                // (the op that was, where compaction removed it: that history is named by it)
                None if self.history().removed(idx, seq)? => Placed::Below(idx),
                _ => Placed::At(idx),
            });
        }
        // (where the op held at its seq is this op, the ops held from there on are its
        // history: they follow the op it states, not the point's)
        let idx = match self.history().holds(root, seq)? {
            true if self.stored_same(root, op, form)? == Some(true) => {
                let idx = self.split_held(root, op, form, prev)?;
                return Ok(Placed::Duplicate(idx));
            }
            true => self.split_off(root, op, form, prev)?,
            false => self.new_history(root, op, form, Some(prev))?,
        };
        Ok(Placed::At(idx))
    }

    /// Where `op` goes when the bundle's base covers its seq and this device holds another op
    /// there (a backup put back, or a copy, written on under its device's id where the
    /// bundle's writer removed ops): the ops held here from there on are not the writer's
    /// history, which a compaction point every device then known had decided; they go (those
    /// above the base set aside until a point decides them), and `op` takes their place.
    fn against_base(
        &mut self,
        root: DeviceIdx,
        op: &Packed,
        form: &Form,
    ) -> Result<Option<Placed>> {
        if self.reading.base.is_empty() {
            return Ok(None);
        }
        let seq = op.seq;
        let Some(base) = self.base_of(root) else {
            return Ok(None);
        };
        let devices = &self.known.devices;
        let covered = base.from < seq && seq <= base.upto;
        if !covered || seq > self.applied_seq(root) || devices.is_forked(root) {
            return Ok(None);
        }
        self.reading.appender.flush()?;
        if self.history().removed(root, seq)? || self.stored_same(root, op, form)? != Some(false) {
            return Ok(None);
        }
        // (from the op before it, where that one is not the one it states either)
        let from = match self.prev_held_otherwise(root, op, &base)? {
            true => seq - 2,
            false => seq - 1,
        };
        let other = from + 1; // (the first op held known to be another history's)
        let from = self.below_taken_for_removed(root, from, &base)?;
        self.set_aside(root, from, base.upto, other)?;
        Ok(Some(Placed::At(root)))
    }

    /// Where the history of the device whose first history is `root` is the writer's, below
    /// `from`: the bundle's ops at seqs this device removed, just below, were taken for the
    /// ops removed (`Placed::Below`), which they may not be, as the writer's history differs
    /// from the one held here above them. They are taken as missing instead, from the last op
    /// held (or the base's start): this device's clock goes down to there, and the writer sends
    /// them again once it tells (the base is taken then, not in this import: removed.rs).
    fn below_taken_for_removed(&mut self, root: DeviceIdx, from: u64, base: &Base) -> Result<u64> {
        let carried = self.reading.carried.get(&root);
        let mut at = from;
        while at > base.from
            && carried.is_some_and(|c| c.contains_key(&at))
            && self.history().removed(root, at)?
        {
            at -= 1;
        }
        // (only down to an op held here, or to the start: the ops after it hash from it)
        if at == from || (at > 0 && !self.history().holds(root, at)?) {
            return Ok(from);
        }
        let id = self.known.devices.wire_id(root);
        (self.reading.lost).retain(|l| l.id != id || l.seq <= at || l.seq > from);
        self.known.devices.lower_removed(self.conn, root, at)?;
        self.reading.retaken.insert(root);
        Ok(at)
    }

    /// The bundle's base entry for the device whose first history is `root`, if it has one.
    fn base_of(&self, root: DeviceIdx) -> Option<Base> {
        let id = self.known.devices.wire_id(root);
        self.reading.base.get(&id).copied()
    }

    /// Whether `op` states another op before it than the one held here, inside `base` (its
    /// writer removed the one it states).
    fn prev_held_otherwise(&mut self, root: DeviceIdx, op: &Packed, base: &Base) -> Result<bool> {
        let (Prev::Stated(prev), before) = (&op.prev, op.seq - 1) else {
            return Ok(false);
        };
        if before <= base.from || !self.history().holds(root, before)? {
            return Ok(false);
        }
        Ok(self.history().hash_at(root, before)?.as_ref() != Some(prev))
    }

    /// The same where the op held here that differs is the one before `op`, which the bundle
    /// does not carry (its writer removed it): `op` states another op before it than the one
    /// held there, inside the base. The ops held from there on go as in `against_base`, and
    /// `op` waits for the base to be taken (removed.rs), which passes over the removed one.
    /// Also where the base starts at that op: its writer took this device to hold the op
    /// `op` follows, which this device had, and wrote another there since (put back to a
    /// backup from before it, and written on before it heard of its peers): the op held goes,
    /// this device's clock down below it, and the writer's next bundle starts its base there
    /// (kept instead, it ended apart from the peers that had dropped it: tests/copies.rs
    /// `a_write_after_a_put_back_behind_only_compaction_points_ends_alike`).
    pub(super) fn after_base_held_otherwise(
        &mut self,
        root: DeviceIdx,
        op: &Packed,
    ) -> Result<Option<Placed>> {
        let before = op.seq - 1;
        let Some(base) = self.base_of(root) else {
            return Ok(None);
        };
        let covered = base.from <= before && before <= base.upto;
        let devices = &self.known.devices;
        if !self.reading.removal
            || !covered
            || before > self.applied_seq(root)
            || devices.is_forked(root)
        {
            return Ok(None);
        }
        // (an op the bundle carries there, the one held: its writer holds it too, and `op`
        // is another history's, which does not follow it)
        let carried = self.reading.carried.get(&root);
        if carried.is_some_and(|c| c.contains_key(&before)) {
            return Ok(None);
        }
        self.reading.appender.flush()?;
        if !self.history().holds(root, before)? {
            return Ok(None);
        }
        self.set_aside(root, before - 1, base.upto, before)?;
        Ok(Some(Placed::At(root)))
    }

    /// The history a dep on op `seq` of the device whose first history is `root` names, when a
    /// compaction point held here decides it: the one held there.
    pub(super) fn dep_below_point(&self, root: DeviceIdx, seq: u64) -> Option<DeviceIdx> {
        let entry = self.reading.removal.then(|| self.decided_upto(root))??;
        (seq <= entry).then_some(root)
    }

    /// Where `dep` (of the device whose first history is `root`) names an op at a seq a
    /// compaction point held here decides, other than the one held there whose hash is kept
    /// (another history's, dropped: a copy's or a put-back backup's, whose writes after it
    /// never saw the op held there): Some, with the op held here where that history left it
    /// (its seq and hash; None for none, below an op 1), which is what its op is taken to have
    /// seen of the history held: found by the links of that history's ops known here
    /// (log/strays.rs: every device that holds the op with that dep was told them alike), or
    /// else the op right below it.
    pub(super) fn dep_of_another_history(
        &mut self,
        root: DeviceIdx,
        dep: &crate::op::Dep,
    ) -> Result<Option<Option<(u64, Hash)>>> {
        let seq = dep.1;
        if self.dep_below_point(root, seq).is_none() {
            return Ok(None);
        }
        self.reading.appender.flush()?;
        let history = self.history();
        if !history.chain_held(root, seq)? || history.hash_at(root, seq)? == Some(dep.2) {
            return Ok(None); // (the op held there, or one whose hash is not known here)
        }
        // (an op of that history, and the hash it states for the op below it, where known)
        let mut at = seq;
        self.strays()?;
        let strays = self.reading.strays.as_ref().expect("read above");
        let history = self.history();
        let mut prev = strays.prev(&dep.0, at, &dep.2);
        loop {
            if at == 1 {
                return Ok(Some(None));
            }
            at -= 1;
            let held = match history.chain_held(root, at)? {
                true => history.hash_at(root, at)?,
                false => None,
            };
            let Some(link) = prev else {
                return Ok(Some(Some((at, held.unwrap_or(dep.2)))));
            };
            if held.is_none_or(|held| held == link) {
                return Ok(Some(Some((at, held.unwrap_or(link)))));
            }
            prev = strays.prev(&dep.0, at, &link);
        }
    }

    /// The seq up to which a compaction point held here decides the history of the device
    /// whose first history is `root`: its highest entry of it, where no history of the device
    /// forked below that (a fork a compaction point saw is its writer's to name).
    pub(super) fn decided_upto(&self, root: DeviceIdx) -> Option<u64> {
        let entry = self.known.floors.entry_of(root)?;
        if self.applied_seq(root) < entry {
            return None; // (set aside in this import, below the point: the bundle's base decides)
        }
        let devices = &self.known.devices;
        let histories = devices.histories(root);
        let clean =
            (histories.iter().skip(1)).all(|&h| devices.fork(h).is_some_and(|f| f.1 >= entry));
        clean.then_some(entry)
    }

    /// Whether `op` (its hash `hash`, following `prev`), at a seq of the device whose first
    /// history is `root` where a compaction point decides the history and this device removed
    /// the op, is known to be another op than the one removed: that op's hash is kept here and
    /// differs, or `op` follows another op than the point's history holds at the seq before
    /// (the stream's last op, known to be another, or the op held there, which it does not
    /// follow). Each op's hash covers the one before it, so every op after one of another
    /// history is another history's too.
    fn not_the_removed(
        &self,
        root: DeviceIdx,
        op: &Packed,
        hash: Hash,
        prev: Option<Hash>,
    ) -> Result<bool> {
        let history = self.history();
        if !history.unhashable(root, op.seq)? {
            return Ok(history.hash_at(root, op.seq)? != Some(hash));
        }
        let Some(prev) = prev else {
            return Ok(false);
        };
        if let Some((id, at, last, other)) = self.reading.wire {
            if id == op.device && at + 1 == op.seq && last == prev {
                return Ok(other);
            }
        }
        let before = op.seq - 1;
        if before == 0 || history.unhashable(root, before)? {
            return Ok(false);
        }
        Ok(history.hash_at(root, before)? != Some(prev))
    }

    /// Whether a compaction point held here that decides the device whose first history is
    /// `root` saw `op` (its hash `hash`, following `prev`): the deps as written of an op of
    /// the point's history up to the point name it. Only where the op it follows is held here
    /// (an op after one of another history dropped is another history's too).
    fn seen_by_a_point(
        &self,
        root: DeviceIdx,
        op: &Packed,
        prev: Option<&Hash>,
        hash: &Hash,
    ) -> Result<bool> {
        let seq = op.seq;
        if !self.follows_held(root, seq, prev)? {
            return Ok(false);
        }
        let id = self.known.devices.wire_id(root);
        let dep = crate::op::Dep(id, seq, *hash);
        for (device, upto) in self.known.floors.naming(root) {
            let named = self.conn.query_value(
                "SELECT 1 FROM main._sync_deps WHERE device = ?1 AND seq <= ?2 AND dep = ?3
                   AND dep_seq = ?4 AND hash = ?5",
                &[
                    Value::from(device),
                    Value::Integer(upto as i64),
                    Value::from(root),
                    Value::Integer(seq as i64),
                    Value::Blob(hash.to_vec()),
                ],
            )?;
            if named.is_some() || self.known.contexts.twins_name(device, upto, &dep) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether a compaction point held here, or the stable clock of the bundle's writer, names
    /// the device whose first history is `root` at `op`'s seq or above at another op than the
    /// histories here hold there (a point's entry not placed: floor.rs): its writer held
    /// another history there, which `op` (its hash `hash`, following an op held here) may be
    /// of. Such an op is kept, as a history of its own, as the writer and its peers keep it,
    /// rather than dropped by the point held here that decided the history otherwise (a
    /// put-back device's writes that each side of a fleet decided by its own points: each keeps
    /// the other's too). A point the bundle carries whose entry names this very op (its hash
    /// covers every op before it) keeps it also where the op it follows was dropped here:
    /// every device its writer knew had it, as a history of its own that left the lineage
    /// there (a put-back device's write after one a point decided against); a point that only
    /// saw it (its writer held it) does not, for the op it follows was decided against, and
    /// it with it. An entry the bundle carries at a seq above `op`'s and no higher than the
    /// points held here decide (`decided`, their entry) names it as the stable clock does (the ops below the entry's on
    /// its history come before it: a point whose writer was put back later, which a peer
    /// carries, decides the same seqs otherwise). A first op follows nothing that
    /// tells it from the one held: only a
    /// point's entry that names it (its seq and its hash) keeps it, not a stable clock (a
    /// put-back device's own, which its peers that held the op before a point came taught it).
    fn named_by_another_point(
        &mut self,
        root: DeviceIdx,
        op: &Packed,
        prev: Option<&Hash>,
        hash: &Hash,
        decided: u64,
    ) -> Result<bool> {
        let id = self.known.devices.wire_id(root);
        let carried = self.carried_known(&(id, op.seq, *hash))?;
        if carried == Some(Known::Entry) {
            return Ok(true); // (a point the bundle carries names it: carried_points.rs)
        }
        if !self.follows_held(root, op.seq, prev)? {
            return Ok(false);
        }
        if carried == Some(Known::Saw) {
            return Ok(true); // (a point the bundle carries saw it)
        }
        let names = |at: u64, link: &Hash| match prev {
            Some(_) => at >= op.seq,
            None => at == op.seq && link == hash,
        };
        if prev.is_none() {
            return self.named_unplaced(root, names);
        }
        let mut named: Vec<(u64, Hash)> = (self.reading.writer_stable.iter())
            .filter(|e| e.0 == id && names(e.1, &e.2))
            .map(|e| (e.1, e.2))
            .collect();
        // (an entry of a point the bundle carries above it, at a seq the points held here
        // decide too: the two decide those seqs otherwise, and the ops below the entry's op on
        // its history, which the bundle carries before it, are kept with it. Above what the
        // points held here decide, the op after their entry starts a history of its own, and
        // the ops of that history below it go: `behind_point`)
        let carried = self.reading.points_named.entries.get(&id).cloned();
        for (at, link, writer, point) in carried.unwrap_or_default() {
            if names(at, &link) && at <= decided && !self.overruled_point(&writer, point)? {
                named.push((at, link));
            }
        }
        for (seq, link) in named {
            if self.resolve_entry(root, seq, &link)?.is_none() {
                return Ok(true);
            }
        }
        self.named_unplaced(root, names)
    }

    /// How the compaction points the bundle carries know op `named` (device id, seq, link),
    /// leaving out a point that is another history's op than the one a point held here decides
    /// at its seq: it is dropped as it arrives, and what it named goes with it (a put-back
    /// device's point from before it was put back, in an old bundle, names ops the point
    /// that decided its history did not keep).
    fn carried_known(&mut self, named: &(crate::op::DeviceId, u64, Hash)) -> Result<Option<Known>> {
        let Some(by) = self.reading.points_named.ops.get(named).cloned() else {
            return Ok(None);
        };
        let mut known = None;
        for (writer, seq, how) in by {
            if known == Some(Known::Entry) || known == Some(how) {
                continue;
            }
            if !self.overruled_point(&writer, seq)? {
                known = Some(how);
            }
        }
        Ok(known)
    }

    /// Whether op `seq` of device `writer`, a compaction point a bundle carries, is another
    /// op than the one held here at that seq where a point held here decides the history:
    /// the op held there is not a point (where it is removed, or a point, it is taken to be
    /// that one).
    fn overruled_point(&mut self, writer: &crate::op::DeviceId, seq: u64) -> Result<bool> {
        let Some(root) = self.known.devices.idx(writer) else {
            return Ok(false);
        };
        if root == crate::schema::SELF || self.decided_upto(root).is_none_or(|e| e < seq) {
            return Ok(false);
        }
        self.reading.appender.flush()?;
        for h in self.known.devices.histories(root) {
            let held = self.conn.query_value(
                "SELECT EXISTS (SELECT 1 FROM main._sync_floors WHERE device = ?1 AND seq = ?2)
                 FROM main._sync_remote WHERE device = ?1 AND seq = ?2",
                &[Value::from(h), Value::Integer(seq as i64)],
            )?;
            if let Some(point) = held {
                return Ok(matches!(point, Value::Integer(0)));
            }
        }
        Ok(false)
    }

    /// Whether an op at `seq` of the device whose first history is `root`, stating `prev` for
    /// the op before it, follows an op held here (or one removed here whose hash is not kept,
    /// taken for it as a dep on it is: `History::taken`). An op after one of another history,
    /// dropped, is another history's too.
    pub(super) fn follows_held(
        &self,
        root: DeviceIdx,
        seq: u64,
        prev: Option<&Hash>,
    ) -> Result<bool> {
        let Some(prev) = prev else {
            return Ok(true);
        };
        let history = self.history();
        Ok(history.locate(root, seq - 1, prev)?.is_some()
            || history.taken(root, seq - 1, prev)?.is_some())
    }

    /// An op a compaction point's writer saw (`seen_by_a_point`), held now in history `idx`:
    /// the ops whose deps as written name it, stored naming the op the point decided at its
    /// seq in its place (`resolve_dep_taken`, where they came before it), name it too.
    pub(super) fn name_seen(&mut self, idx: DeviceIdx, dep: &crate::op::Dep) -> Result<()> {
        let mut added = false;
        for (device, seq) in self.known.contexts.twins_naming(dep) {
            if self.known.contexts.entry(device, seq, idx) >= dep.1 {
                continue;
            }
            self.known.contexts.add(device, seq, idx, dep.1, &dep.2)?;
            self.touch_from(device, seq)?;
            added = true;
        }
        if added {
            self.known.contexts.reload()?;
        }
        Ok(())
    }

    /// The hash `op` states for the op before it, where the stream says it.
    pub(super) fn prev_of(&self, op: &Packed) -> Result<Option<Hash>> {
        Ok(match op.prev {
            Prev::First => None,
            Prev::Stated(prev) => Some(prev),
            Prev::Follows => match (self.reading.wire, self.reading.stream_at) {
                (Some((id, at, hash, _)), _) if id == op.device && at + 1 == op.seq => Some(hash),
                // (none where the ops below it are not held: it cannot be hashed here)
                (_, Some((id, at, idx))) if id == op.device && at + 1 == op.seq => {
                    let history = self.history();
                    match history.chain_held(idx, at)? {
                        true => history.hash_at(idx, at)?,
                        false => None,
                    }
                }
                _ => None,
            },
        })
    }
}

impl Import<'_> {
    /// Whether history `idx`, held here up to `base.upto` at least, holds another op there
    /// than the one the bundle's writer removed (its base's link): a backup put back, or a
    /// copy, written on under its device's id where its peers removed ops.
    pub(super) fn left_lineage(&mut self, idx: DeviceIdx, base: &Base) -> Result<bool> {
        let devices = &self.known.devices;
        let forked = devices.fork(idx).is_some() || devices.is_forked(idx);
        if !self.reading.removal || forked || self.applied_seq(idx) < base.upto {
            return Ok(false);
        }
        self.reading.appender.flush()?;
        let history = self.history();
        if !history.holds(idx, base.upto)? || !history.chain_held(idx, base.upto)? {
            return Ok(false);
        }
        Ok(history.hash_at(idx, base.upto)? != Some(base.link))
    }

    /// Sets the ops of history `idx` above `upto` aside, out of the store, until a compaction
    /// point decides where they go (`place_aside`): the ops below them are another history's
    /// than the one this device gets from its peers there. Drops those above `from` (the
    /// bundle carries every op its writer holds above there, the ones held here that it keeps
    /// among them). The ops held from `other` on are known to be another history's than the
    /// writer's (an op's hash covers the one before it): they are told lost where no history
    /// holds them at the import's end (lost.rs).
    pub(super) fn set_aside(
        &mut self,
        idx: DeviceIdx,
        from: u64,
        upto: u64,
        other: u64,
    ) -> Result<()> {
        self.reading.appender.flush()?;
        let conn = self.conn;
        let history = self.history();
        if history.holds(idx, upto + 1)? && history.chain_held(idx, upto)? {
            self.keep_aside(idx, upto)?;
        }
        let all: Vec<u64> = {
            let mut stmt =
                conn.prepare("SELECT seq FROM main._sync_remote WHERE device = ?1 AND seq > ?2")?;
            stmt.bind_all(&[Value::from(idx), Value::Integer(from as i64)])?;
            let mut all = Vec::new();
            while let Some(row) = stmt.step()? {
                all.push(row.column_int(0) as u64);
            }
            all
        };
        let (decided, aside): (Vec<u64>, Vec<u64>) = all.iter().partition(|&&s| s <= upto);
        self.note_dropping(idx, &decided, other)?;
        self.hold_links(idx, &aside)?;
        self.drop_held(idx, &all)?;
        for &seq in &all {
            self.known.contexts.forget(conn, idx, seq)?;
        }
        // (deps on the ops dropped wait for them by hash, wherever they are placed again)
        self.recheck_deps(idx, from + 1)?;
        self.run(
            "DELETE FROM main._sync_hashes WHERE device = ?1 AND seq > ?2",
            &[Value::from(idx), Value::Integer(from as i64)],
        )?;
        self.set_applied(idx, self.applied_seq(idx).min(from))?;
        // (nor is an op above there taken for one removed any more: they come again)
        self.known.devices.lower_removed(conn, idx, from)?;
        self.clocks.tips.remove(&idx);
        self.clocks.pending_before.remove(&idx);
        Ok(())
    }

    /// Sets the applied clock of history `idx` to `at`, here and as stored (it may go down; a
    /// history whose ops were all pending has no row yet).
    fn set_applied(&mut self, idx: DeviceIdx, at: u64) -> Result<()> {
        if self.clocks.stored.get(&idx).is_some_and(|&was| at > was) {
            self.clocks.raised.insert(idx);
        }
        self.clocks.clock.insert(idx, at);
        self.clocks.stored.insert(idx, at);
        self.conn.exec(
            "INSERT INTO main._sync_clock(device, seq) VALUES (?2, ?1)
             ON CONFLICT(device) DO UPDATE SET seq = excluded.seq",
            &[Value::Integer(at as i64), Value::from(idx)],
        )
    }

    /// Keeps the ops of history `idx` above `upto` as a bundle in `_sync_aside`.
    fn keep_aside(&mut self, idx: DeviceIdx, upto: u64) -> Result<()> {
        let conn = self.conn;
        let history = self.history();
        let mut prev = history.hash_at(idx, upto)?;
        let mut writer = Writer::in_memory()?;
        let mut next = upto + 1;
        history.each(idx, upto, i64::MAX as u64, |op| {
            if op.seq != next {
                return Ok(()); // (above a gap: no op follows it here)
            }
            next += 1;
            prev = Some(writer.add(op, prev)?);
            Ok(())
        })?;
        let source = self.known.devices.wire_id(idx);
        let declared = crate::log::declared::Declarations::load(conn)?;
        let peers = Peers {
            stable: Vec::new(),
            knows: Vec::new(),
            base: Vec::new(),
            forgotten: Vec::new(),
            gaps: Vec::new(),
            forks: Vec::new(),
            relayed: Vec::new(),
            confirmed: None,
            addressee: None,
            strays: Vec::new(), // (kept here: log/strays.rs)
        };
        let id = *uuid::Uuid::new_v4().as_bytes();
        let declared = declared.encode(&self.known.devices);
        let Written::Bytes(bundle) = writer.finish(id, &source, &[], declared, peers)? else {
            return Err(Error::new("a bundle set aside was not written in memory"));
        };
        conn.exec(crate::schema::ASIDE, &[])?;
        conn.exec(
            "INSERT INTO main._sync_aside(root, upto, bundle) VALUES (?1, ?2, ?3)",
            &[
                Value::from(self.known.devices.root(idx)),
                Value::Integer(upto as i64),
                Value::Blob(bundle),
            ],
        )?;
        Ok(())
    }

    /// Op `seq` of history `idx`, whose hash is `hash`, placed as its first op: a history of
    /// its device detached there (its first op follows an op of its own that no history held
    /// here, `History::own_link`) whose link is that op follows it from now on, as on a device
    /// that held the op first; the compaction points whose entries it holds cut again
    /// (`place_adopted`, once the op is stored).
    pub(super) fn adopt_detached(&mut self, idx: DeviceIdx, seq: u64, hash: &Hash) -> Result<()> {
        let devices = &self.known.devices;
        let histories = devices.histories(devices.root(idx));
        if !self.reading.removal || histories.len() < 3 {
            return Ok(());
        }
        let mut adopted = Vec::new();
        for d in histories {
            let Some((parent, base)) = devices.fork(d) else {
                continue;
            };
            if d == idx || parent == idx || base != seq {
                continue;
            }
            let history = self.history();
            if history.own_link(d, base)? == Some(*hash) && history.detached(d)? {
                adopted.push(d);
            }
        }
        for d in adopted {
            self.known.devices.set_parent(self.conn, d, idx)?;
            self.reading.adopted.push((d, idx, seq));
        }
        Ok(())
    }

    /// The histories adopted in this import (`adopt_detached`), their link's op stored now:
    /// they hold its context, their rows are settled again, and the compaction points whose
    /// entries are placed in them or below them cut again.
    fn place_adopted(&mut self) -> Result<()> {
        for (d, parent, base) in std::mem::take(&mut self.reading.adopted) {
            if self.known.devices.fork(d) != Some((parent, base)) {
                continue; // (merged, moved or cut since)
            }
            self.reading.appender.flush()?;
            self.write_applied()?;
            // (where its parent ends at the link, no other history forks there and no point
            // names it, it is the parent's own continuation: a device that held the link
            // first holds the ops after it in the parent's history, as no compaction point
            // decides a device below an entry where a history forks, `decided_upto`)
            let mut d = d;
            if self.continues(d, parent, base)? {
                self.merge_back(d, parent)?;
                self.known.contexts.reload()?;
                d = parent;
            } else if self.history().chain_held(parent, base)? {
                self.inherit(d, parent, base)?;
                self.known.contexts.reload()?;
            }
            self.touch_from(d, base + 1)?;
            let under = self.known.devices.histories(d);
            self.known.floors = crate::log::floors::Floors::load(self.conn)?;
            let points: Vec<_> = (self.known.floors.all())
                .flat_map(|f| f.entries.iter().map(move |e| (e.0, e.1, f.op)))
                .filter(|p| under.contains(&p.0))
                .collect();
            self.reading.points.extend(points);
        }
        Ok(())
    }

    /// Whether adopted history `d`, forked from `parent` after `base`, is `parent`'s own
    /// continuation (`place_adopted`).
    fn continues(&mut self, d: DeviceIdx, parent: DeviceIdx, base: u64) -> Result<bool> {
        let history = self.history();
        Ok(history.chain_held(parent, base)?
            && self.known.devices.children(parent) == [d]
            && !(self.known.floors.all()).any(|f| f.entries.iter().any(|e| e.0 == d))
            && self.applied_seq(parent) == base
            && !history.holds(parent, base + 1)?)
    }

    /// After the ops ready are delivered: the histories the compaction points applied cut
    /// (`cut_below`), then the ops set aside that a point now decides placed as if they
    /// arrived now (`behind_point`) and delivered, until no more are. (Each round settles a
    /// point or places ops set aside; rounds that never end would be a fault here: the import
    /// fails, changing nothing, rather than never return.)
    pub(super) fn place_aside(&mut self) -> Result<()> {
        if !self.reading.removal {
            return Ok(());
        }
        for _ in 0..ROUNDS {
            self.place_adopted()?;
            self.reading.cutting = std::mem::take(&mut self.reading.points).into();
            while let Some((history, entry, point)) = self.reading.cutting.pop_front() {
                self.cut_below(history, entry, point)?;
            }
            if !self.place_ready()? && self.reading.points.is_empty() {
                self.place_entries_again()?;
                if self.reading.points.is_empty() {
                    return Ok(());
                }
            }
        }
        Err(Error::new(format!(
            "the compaction points it carries did not settle where they decide histories after \
             {ROUNDS} rounds (a fault of sqlite-sync: nothing was imported; keep the bundle and \
             this database for a report, and import the sender's other bundles meanwhile)"
        )))
    }

    /// Places the ops set aside whose device a compaction point held here now decides;
    /// whether there were any.
    fn place_ready(&mut self) -> Result<bool> {
        let conn = self.conn;
        let made = "SELECT 1 FROM main.sqlite_master WHERE name = '_sync_aside'";
        if conn.query_value(made, &[])?.is_none() {
            return Ok(false);
        }
        let mut aside = Vec::new();
        let mut stmt = conn.prepare("SELECT rowid, root, upto, bundle FROM main._sync_aside")?;
        while let Some(row) = stmt.step()? {
            let root = DeviceIdx(row.column_int(1));
            let upto = row.column_int(2) as u64;
            let bundle = row.column_blob(3)?.unwrap_or_default().to_vec();
            aside.push((row.column_int(0), root, upto, bundle));
        }
        drop(stmt);
        let mut ready = Vec::new();
        for (rowid, root, upto, bundle) in aside {
            let mut reader = Reader::from_bytes(&bundle)?;
            // (or where the op they follow is held here now, in another history of the
            // device: they fork from it there, as on any device that gets them)
            if self.decided_upto(root).is_some_and(|e| e >= upto)
                || self.follows_held_op(root, upto, &mut reader)?
            {
                ready.push((rowid, reader));
            }
        }
        let any = !ready.is_empty();
        for (rowid, mut reader) in ready {
            let reading = &mut self.reading;
            reading.bundle_forms.clear();
            reading.marks.clear();
            (reading.stream_at, reading.wire) = (None, None);
            reading.base.clear();
            reading.carried.clear();
            reader.each_op(|op, number, form| self.store(op, number, form))?;
            self.reading.appender.flush()?;
            self.resolve_waiting()?;
            self.deliver_all()?;
            conn.exec(
                "DELETE FROM main._sync_aside WHERE rowid = ?1",
                &[Value::Integer(rowid)],
            )?;
        }
        Ok(any)
    }

    /// Whether the first op of `reader`, ops of the device whose first history is `root` set
    /// aside above seq `upto`, follows an op some history of that device holds at `upto`
    /// (`History::locate`). (The reader's first pass hashes its ops; placing them reads it
    /// again without.)
    fn follows_held_op(&mut self, root: DeviceIdx, upto: u64, reader: &mut Reader) -> Result<bool> {
        let mut first = None;
        reader.each_op(|op, _, _| {
            if first.is_none() {
                first = Some((op.seq, op.prev));
            }
            Ok(())
        })?;
        let Some((seq, Prev::Stated(prev))) = first else {
            return Ok(false);
        };
        if seq != upto + 1 {
            return Ok(false);
        }
        self.reading.appender.flush()?;
        let history = self.history();
        Ok(match history.locate(root, upto, &prev)? {
            Some(h) => history.holds(h, upto)?,
            None => false,
        })
    }

    /// A compaction point's entry `entry` of history `history`, applied here (the point is op
    /// `point`): the histories of its device held here that left the point's (`history` and
    /// the ones it forked from) below the entry, of which the point saw no op and no point held
    /// here names, were split from it before this device held the point. The point decides:
    /// their ops are set aside (placed as if they arrived now, by `place_ready`), and the
    /// point's history is its device's again (each history on its way merged back into the
    /// one it forked from). (A history the point saw is one its writer knew: the histories of
    /// that device stay as they are.)
    fn cut_below(&mut self, history: DeviceIdx, entry: u64, point: (DeviceIdx, u64)) -> Result<()> {
        let devices = &self.known.devices;
        let root = devices.root(history);
        let mut path = vec![history];
        while let Some((parent, _)) = devices.fork(path[path.len() - 1]) {
            path.push(parent);
        }
        let mut cut = Vec::new();
        for other in devices.histories(root) {
            let Some((parent, base)) = devices.fork(other) else {
                continue;
            };
            if path.contains(&other) || !path.contains(&parent) || base >= entry {
                continue;
            }
            let under = devices.histories(other);
            for &h in &under {
                if self.spared_by_a_point(h, point)? {
                    return Ok(()); // (a point saw it or names it: its writer's to name)
                }
            }
            cut.extend(under);
        }
        // (every history on the way forks below the entry: a point knows no other there)
        let forks_below = path
            .iter()
            .any(|&h| devices.fork(h).is_some_and(|f| f.1 < entry));
        if cut.is_empty() && !forks_below {
            return Ok(());
        }
        self.reading.appender.flush()?;
        self.write_applied()?;
        // (each kept aside before any is emptied: one forked from another cut follows an op
        // of that other's, which its bundle set aside links to)
        for &other in &cut {
            let base = self.known.devices.fork(other).map_or(0, |f| f.1);
            if self.history().holds(other, base + 1)? {
                self.keep_aside(other, base)?;
            }
        }
        for &other in &cut {
            self.set_aside_all(other, &cut)?;
        }
        for &other in cut.iter().rev() {
            self.forget_history(other)?;
        }
        if !cut.is_empty() {
            // (the contexts merging back reads must no longer name the histories gone)
            self.known.contexts.reload()?;
        }
        // the point's history back into the ones it forked from, from the root down (but one
        // that left its parent's lineage at a point's entry: its first op follows an op of its
        // own there, `History::detached`); a history merged back, the next one down forks
        // from the one it went into
        let mut parent = path[path.len() - 1];
        for &child in path.iter().rev().skip(1) {
            if self.known.devices.children(parent) == vec![child]
                && !self.history().detached(child)?
            {
                self.merge_back(child, parent)?;
            } else {
                parent = child;
            }
        }
        self.known.contexts.reload()?;
        self.known.floors = crate::log::floors::Floors::load(self.conn)?;
        self.clocks.lamports.clear();
        self.rows.recent.clear();
        Ok(())
    }

    /// Whether a cut by compaction point `point` spares history `h` (and the histories of its
    /// device with it): the point saw it, or the point itself or a point it had not seen names
    /// it (its writer held it), or a point the bundle carries (not placed yet) names it by its
    /// id, or names or saw its first op (its writer kept it; a device that joined from one full
    /// bundle of a writer holding two histories forked below the writer's own point, one
    /// received after that point, cut that one, merged the other back, and never settled with
    /// its source), or it starts with a point that decides against this one (the two sides',
    /// two_sides.rs). A history that starts with a device's first write only where
    /// a point names that very write, as on arrival (`named_by_another_point`): cut, its ops go
    /// where they would go as they arrive (the write dropped, a later op a point names a
    /// history of its own). (Asking the same of a history that left its parent's lineage,
    /// `History::detached`, fails tests/copies.rs
    /// `a_backup_written_on_in_a_fleet_compacting_after_every_import`.)
    fn spared_by_a_point(&self, h: DeviceIdx, point: (DeviceIdx, u64)) -> Result<bool> {
        let base = self.known.devices.fork(h).map_or(0, |f| f.1);
        if self.known.contexts.entry(point.0, point.1, h) > base {
            return Ok(true);
        }
        let first = base + 1;
        // (a point that had this one in its past named the history as this one left it)
        let saw_point = |op: (DeviceIdx, u64)| {
            op == point
                || (op.0 == point.0 && op.1 > point.1)
                || self.known.contexts.entry(op.0, op.1, point.0) >= point.1
        };
        let names = |f: &&crate::log::floors::Floor| {
            (f.entries.iter()).any(|e| e.0 == h && (first > 1 || e.1 == 1))
        };
        if (self.known.floors.all()).any(|f| names(&f) && (f.op == point || !saw_point(f.op))) {
            return Ok(true);
        }
        // (or a point the bundle carries names it, or names or saw its first op: as its
        // writer kept it, where that point decided, held there; carried_points.rs)
        let carried = &self.reading.points_named;
        let devices = &self.known.devices;
        if carried.names_history(&devices.id(h)) {
            return Ok(true);
        }
        if let Some(hash) = self.history().hash_at(h, first)? {
            if carried.ops.contains_key(&(devices.wire_id(h), first, hash)) {
                return Ok(true);
            }
        }
        self.starts_with_point_against(h, point)
    }

    /// Drops every op of history `idx` (set aside before), one of the histories `cut`; the
    /// deps that name them wait for them by their hash (`resolve_waiting` finds them again
    /// where they are placed).
    fn set_aside_all(&mut self, idx: DeviceIdx, cut: &[DeviceIdx]) -> Result<()> {
        let conn = self.conn;
        let base = self.known.devices.fork(idx).map_or(0, |f| f.1);
        let mut waits = Vec::new();
        let mut stmt =
            conn.prepare("SELECT device, seq, dep_seq, hash FROM main._sync_deps WHERE dep = ?1")?;
        stmt.bind_all(&[Value::from(idx)])?;
        while let Some(row) = stmt.step()? {
            let hash: Option<Hash> = row.column_blob(3)?.and_then(|h| h.try_into().ok());
            let n = |i| row.column_int(i);
            waits.push((DeviceIdx(n(0)), n(1), n(2), hash));
        }
        drop(stmt);
        let root = self.known.devices.root(idx);
        for (device, seq, dep_seq, hash) in waits {
            let Some(hash) = hash else { continue };
            if !cut.contains(&device) {
                self.touch_from(device, seq as u64)?; // (the ops cut go with their rows)
            }
            conn.exec(
                "UPDATE OR REPLACE main._sync_deps SET dep = ?1
                 WHERE device = ?2 AND seq = ?3 AND dep = ?4 AND dep_seq = ?5",
                &[
                    Value::from(crate::log::clock::waiting(root, &hash)),
                    Value::from(device),
                    Value::Integer(seq),
                    Value::from(idx),
                    Value::Integer(dep_seq),
                ],
            )?;
        }
        self.set_aside(idx, base, base, u64::MAX)
    }

    /// Forgets history `idx`, emptied (`set_aside_all`) or merged back, wherever it is named.
    fn forget_history(&mut self, idx: DeviceIdx) -> Result<()> {
        self.conn.exec(crate::schema::FLOORS, &[])?;
        self.conn.exec(crate::schema::REMOVED, &[])?;
        self.conn.exec(crate::schema::TWINS, &[])?;
        for sql in [
            "DELETE FROM main._sync_clock WHERE device = ?1",
            "DELETE FROM main._sync_peers WHERE device = ?1",
            "DELETE FROM main._sync_relayed WHERE device = ?1",
            "DELETE FROM main._sync_stable WHERE device = ?1",
            "DELETE FROM main._sync_removed WHERE device = ?1",
            "DELETE FROM main._sync_hashes WHERE device = ?1",
            "DELETE FROM main._sync_twins WHERE device = ?1",
            "DELETE FROM main._sync_deps WHERE device = ?1 OR dep = ?1",
            "DELETE FROM main._sync_floors WHERE device = ?1 OR of = ?1",
            "DELETE FROM main._sync_conflicts WHERE loser_device = ?1 OR winner_device = ?1",
        ] {
            self.run(sql, &[Value::from(idx)])?;
        }
        self.clocks.clock.remove(&idx);
        self.clocks.stored.remove(&idx);
        self.clocks.tips.remove(&idx);
        // (a point of it, or an entry naming it, cuts nothing any more)
        self.reading
            .points
            .retain(|&(h, _, p)| h != idx && p.0 != idx);
        self.reading
            .cutting
            .retain(|&(h, _, p)| h != idx && p.0 != idx);
        self.known.devices.remove(self.conn, idx)
    }

    /// The ops of history `from` from `seq` on became history `to`'s: the points still to
    /// cut that are among them, or name one of them, follow.
    pub(super) fn points_moved(&mut self, from: DeviceIdx, to: DeviceIdx, seq: u64) {
        let moved = |(h, e, p): &mut (DeviceIdx, u64, (DeviceIdx, u64))| {
            if *h == from && *e >= seq {
                *h = to;
            }
            if p.0 == from && p.1 >= seq {
                p.0 = to;
            }
        };
        self.reading.points.iter_mut().for_each(moved);
        self.reading.cutting.iter_mut().for_each(moved);
    }

    /// History `child`, the only one forked from `parent`, merged back into it: its ops
    /// become `parent`'s under the same seqs, wherever they are named.
    fn merge_back(&mut self, child: DeviceIdx, parent: DeviceIdx) -> Result<()> {
        let conn = self.conn;
        let base = self.known.devices.fork(child).map_or(0, |f| f.1);
        // (what was kept of `parent` above where it ended is the child's to say)
        conn.exec(
            "DELETE FROM main._sync_hashes WHERE device = ?1 AND seq > ?2",
            &[Value::from(parent), Value::Integer(base as i64)],
        )?;
        self.twins_of_merge(child, parent, base + 1)?;
        crate::schema::rename_ops(conn, child, parent, base + 1)?;
        self.known.devices.renamed(child, parent, base + 1);
        self.carried_moved(child, parent, base + 1);
        self.points_moved(child, parent, base + 1);
        let params = [Value::from(parent), Value::from(child)];
        for sql in [
            "UPDATE main._sync_remote SET device = ?1 WHERE device = ?2",
            "UPDATE OR REPLACE main._sync_peers SET device = ?1 WHERE device = ?2",
            "UPDATE OR REPLACE main._sync_relayed SET device = ?1 WHERE device = ?2",
        ] {
            conn.exec(sql, &params)?;
        }
        for grandchild in self.known.devices.children(child) {
            self.known.devices.set_parent(conn, grandchild, parent)?;
        }
        self.set_applied(
            parent,
            self.applied_seq(child).max(self.applied_seq(parent)),
        )?;
        if let Some(tip) = self.clocks.tips.remove(&child) {
            self.clocks.tips.insert(parent, tip);
        }
        self.reading.appender.copy_pending(child, parent);
        self.touch_from(parent, base + 1)?;
        self.forget_history(child)
    }
}
