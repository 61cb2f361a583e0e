//! A bundle's base (bundle/mod.rs `Base`): per history, the seq at or below which its writer
//! removed ops by compaction that the bundle does not carry (compact/remove.rs), and where the
//! bundle's ops of it start. A device that lacks ops there (it joined late) takes them as
//! applied: what they wrote, ops the bundle carries overwrote, below a floor every device then
//! known had. One that holds ops there that the bundle does not carry removes them, as the
//! writer did (a writer that cannot check what a peer says it has there starts the base from
//! the first op: bundle/out.rs `start`): so a backup put back and written on under its old id
//! at seqs that its peers removed, which no device can tell from the ops removed, loses those
//! writes on every device alike.
//!
//! A base is taken where compaction removes ops (compact/mod.rs). Until bundles are signed it
//! cannot be checked: a forged one passes over a device's true ops, as a forged op already
//! wins over the true one (docs/limits.md).
//!
//! Invariant: the applied clock passes over an op only when it is not held here and is at or
//! below where ops of its history may be missing (`_sync_removed`: set from a base only when
//! the applied clock reached where the bundle's ops of that history start, so every op of it
//! its writer kept up to there is held); the op before the first
//! op after such a gap keeps the hash the bundle states for it, so the ops after it hash here
//! as where they were written.

use super::import::Import;
use crate::bundle::{Base, Packed, Prev};
use crate::db::Result;
use crate::form::Form;
use crate::hashed::HashMap;
use crate::log::chain;
use crate::log::clock::waited_for;
use crate::merge::row_index::Entry;
use crate::op::Hash;
use crate::schema::{DeviceIdx, SELF};
use crate::value::Value;

impl Import<'_> {
    /// Keeps the bundle's base entries, before its ops are stored.
    pub(super) fn read_base(&mut self, base: &[Base]) -> Result<()> {
        // (taken where compaction removes ops: compact/mod.rs)
        if base.is_empty() || !self.reading.removal {
            return Ok(());
        }
        for entry in base {
            if entry.history == entry.device {
                // (a device the bundle carries no op of is known from here on all the same)
                self.known.devices.idx_or_add(self.conn, &entry.device)?;
            }
            self.reading.base.insert(entry.history, *entry);
            if entry.history != entry.device && entry.upto > entry.from {
                (self.reading.based_starts).insert((entry.device, entry.from + 1));
            }
            // a history held here that left the writer's at or below `upto` (behind.rs)
            if let Some(idx) = self.known.devices.idx(&entry.history) {
                if self.left_lineage(idx, entry)? {
                    self.set_aside(idx, entry.from, entry.upto, entry.upto)?;
                }
            }
        }
        Ok(())
    }

    /// An op stored in (or already held by) history `device` after a gap a base entry of its
    /// device explains: the op before it keeps the hash the op states for it, unless it is held.
    /// (Any entry of the device: the history the op is in here may split from another later
    /// in this import, when the bundle's second op under the same seq comes.)
    pub(super) fn after_removed(&mut self, device: DeviceIdx, op: &Packed) -> Result<()> {
        let (Prev::Stated(prev), false) = (&op.prev, self.reading.base.is_empty()) else {
            return Ok(());
        };
        let before = op.seq - 1;
        let explained = (self.reading.base.values())
            .any(|b| b.device == op.device && b.from < before && before <= b.upto);
        if !explained || before <= self.applied_seq(device) {
            return Ok(());
        }
        self.reading.appender.flush()?;
        if !self.history().holds(device, before)? {
            chain::remember(self.conn, device, before, prev)?;
        }
        Ok(())
    }

    /// Where `op` follows op seq - 1 of history `before`, which holds nothing at its seq, and is
    /// the first op of a history the bundle's base names that is not known here (its writer
    /// holds it forked there, and removed ops of it): that history, made now, as its writer
    /// holds it. Taken as `before`'s own next op, the ops after it that follow one its writer
    /// removed would find no history to go to (`across_removed`) until another op at its seq
    /// split it off.
    pub(super) fn based_first(
        &mut self,
        before: DeviceIdx,
        op: &Packed,
        form: &Form,
    ) -> Result<Option<DeviceIdx>> {
        // (a history's entry starts where it forks; one that names a history whose first op
        // follows an op its writer does not hold removes nothing: bundle/out.rs)
        let starts = &self.reading.based_starts;
        if starts.is_empty() || !starts.contains(&(op.device, op.seq)) {
            return Ok(None);
        }
        self.reading.appender.flush()?;
        let devices = &self.known.devices;
        let Some(prev) = self.prev_of(op)? else {
            return Ok(None);
        };
        let id = self.history_after(before, op, form, &prev);
        let based = (self.reading.base.get(&id)).filter(|b| b.upto > b.from);
        if based.is_none_or(|b| b.from + 1 != op.seq) || devices.idx(&id).is_some() {
            return Ok(None);
        }
        let history = self.history();
        if !history.chain_held(before, op.seq - 1)?
            || history.hash_at(before, op.seq - 1)? != Some(prev)
        {
            return Ok(None);
        }
        self.new_history(before, op, form, None).map(Some)
    }

    /// The history of a device with two that `op` follows, where the op before it is one its
    /// writer removed (so no history here holds it): the one whose base entry covers that op
    /// (or the branch that split off it here and took the bundle's ops before it), the one the
    /// bundle's previous op went to when several do.
    pub(super) fn across_removed(&self, op: &Packed) -> Option<DeviceIdx> {
        let before = op.seq - 1;
        let covering: Vec<(DeviceIdx, &Base)> = (self.reading.base.values())
            .filter(|b| b.device == op.device && b.from < before && before <= b.upto)
            .filter_map(|b| Some((self.known.devices.idx(&b.history)?, b)))
            .collect();
        match (covering.as_slice(), self.reading.stream_at) {
            // (the bundle's ops before it went to a branch that split off here)
            ([(only, entry)], Some((id, at, branch)))
                if id == op.device && at < before && self.took_over(*only, branch, entry, at) =>
            {
                Some(branch)
            }
            ([(only, _)], _) => Some(*only),
            (_, Some((id, at, idx)))
                if id == op.device && at < before && covering.iter().any(|c| c.0 == idx) =>
            {
                Some(idx)
            }
            _ => None,
        }
    }

    /// The history `op` goes to where the device is held here as one (`root`) and the op
    /// before it is one its writer removed in another history, the only one the bundle's base
    /// says it removed ops of there, not known here (a device that joins late, from a writer
    /// that holds the device as two histories, each forked where its base entry starts; or a
    /// backup put back that wrote past that fork, whose own ops there are the other history):
    /// that history, made now, forked from `root` there, as its writer holds it. (Were the op
    /// dropped instead, for lack of the op before it, the base would later take that history as
    /// applied past ops it never stored.)
    pub(super) fn based_branch(
        &mut self,
        root: DeviceIdx,
        op: &Packed,
    ) -> Result<Option<DeviceIdx>> {
        let before = op.seq - 1;
        let mut covering = (self.reading.base.values())
            .filter(|b| b.device == op.device && b.from < before && before <= b.upto);
        let (Some(&entry), None) = (covering.next(), covering.next()) else {
            return Ok(None);
        };
        let Prev::Stated(prev) = op.prev else {
            return Ok(None);
        };
        if entry.history == entry.device || self.known.devices.idx(&entry.history).is_some() {
            return Ok(None);
        }
        self.reading.appender.flush()?;
        // (the op it forks after keeps the link the base states for it, where the device's
        // own entry ends there: the ops of its other histories follow it)
        let own = (self.reading.base.get(&entry.device))
            .filter(|b| b.upto == entry.from)
            .map(|b| b.link);
        if let Some(link) = own {
            if !self.history().holds(root, entry.from)? {
                chain::remember(self.conn, root, entry.from, &link)?;
            }
        }
        let history = self.history();
        if history.chain_held(root, before)? && history.hash_at(root, before)? == Some(prev) {
            return Ok(None); // (the op before it is held here: it follows that one)
        }
        // (ops held here after the fork, of its other history, become a history of their own,
        // as where their writer holds both; where they are that history's own, its name says
        // so, and the op goes with them)
        let first = entry.from + 1;
        if history.holds(root, first)? {
            if !history.chain_held(root, first)? {
                return Ok(None);
            }
            let hash = (history.hash_at(root, first)?)
                .ok_or_else(|| crate::db::Error::new("a fork names no op"))?;
            let moved = self.move_from(root, first, &hash, None)?;
            if self.known.devices.idx(&entry.history) == Some(moved) {
                return Ok(Some(moved));
            }
        }
        let follows = self.applied_seq(root) == entry.from
            && self.history().hash_at(root, entry.from)?.is_some();
        self.branch(root, entry.from, &entry.history, follows)
            .map(Some)
    }

    /// The history `op` goes to where its device is held here as several histories and the op
    /// before it is the first op of a history the bundle's base names, not known here, whose
    /// writer removed that op: that history, made now, forked where its entry starts from the
    /// history here that holds the op it forks after (the bundle states that op's link), as its
    /// writer holds it. The ops held there above the fork become a history of their own, as
    /// where their writer holds both (a backup put back and written on, whose peers split its
    /// ops there and then removed the other history's first op).
    pub(super) fn based_fork(&mut self, root: DeviceIdx, op: &Packed) -> Result<Option<DeviceIdx>> {
        let before = op.seq - 1;
        let entry = (self.reading.base.values()).find(|b| {
            b.device == op.device
                && b.history != b.device
                && b.from + 1 == before
                && before <= b.upto
                && self.known.devices.idx(&b.history).is_none()
        });
        let Some((&entry, link)) =
            entry.and_then(|e| Some((e, *self.reading.forks.get(&e.history)?)))
        else {
            return Ok(None);
        };
        self.reading.appender.flush()?;
        let Some(parent) = self.history().locate(root, entry.from, &link)? else {
            return Ok(None);
        };
        let history = self.history();
        if history.holds(parent, before)? {
            if !history.chain_held(parent, before)? {
                return Ok(None);
            }
            let hash = (history.hash_at(parent, before)?)
                .ok_or_else(|| crate::db::Error::new("a fork names no op"))?;
            self.move_from(parent, before, &hash, None)?;
        }
        let follows = self.applied_seq(parent) == entry.from;
        self.branch(parent, entry.from, &entry.history, follows)
            .map(Some)
    }

    /// Takes the base's removed ops as applied, once the bundle's ops are stored: for each
    /// history known here whose applied clock reaches where the bundle's ops of it start (the
    /// ops between were not carried, and may be held by its writer). Then the deps on ops it
    /// removed name them (`resolve_waiting`).
    pub(super) fn take_base(&mut self) -> Result<()> {
        let base = std::mem::take(&mut self.reading.base);
        // (a history made before the op it forks after is taken as applied inherits that op's
        // context once it is: the ops that follow it see that op's past)
        let mut later = Vec::new();
        for entry in base.values() {
            if let Some(made) = self.removed_branch(entry, base.get(&entry.device))? {
                later.push(made);
            }
        }
        let mut taken = false;
        for entry in base.values() {
            taken |= self.take_entry(entry)?;
        }
        for (idx, root, at) in later {
            // (where the op it forked after was taken as applied just now, its hash kept)
            if self.known.devices.removed_upto(root) >= at {
                self.inherit(idx, root, at)?;
            }
        }
        if taken {
            self.take_gaps()?;
            self.resolve_waiting()?;
        }
        Ok(())
    }

    /// Takes the ops base entry `entry` says its writer removed as applied, where the history
    /// it is about is known here and its applied clock reaches where the entry starts; whether
    /// it did.
    fn take_entry(&mut self, entry: &Base) -> Result<bool> {
        let Some(idx) = self.known.devices.idx(&entry.history) else {
            return Ok(false); // (a second history the bundle carries no op of: not known here)
        };
        let idx = self.base_continued(idx, entry)?;
        let at = self.applied_seq(idx);
        if idx == SELF || at < entry.from || self.reading.retaken.contains(&idx) {
            return Ok(false);
        }
        if at >= entry.upto {
            return Ok(false);
        }
        // (pending ones too: an op held pending there, which the bundle does not carry,
        // waits for ops its writer removed, and cannot be hashed past them)
        self.drop_uncarried(idx, entry.from, entry.upto)?;
        self.known.devices.set_removed(self.conn, idx, entry.upto)?;
        if !self.history().holds(idx, entry.upto)? {
            chain::remember(self.conn, idx, entry.upto, &entry.link)?;
        }
        self.skip_removed(idx)?;
        Ok(true)
    }

    /// A second history not known here whose every op the bundle's writer removed: made here,
    /// forked from its device's first history where its base entry starts, where that history
    /// holds an op the bundle carried after it (the writer held that op in another history, as
    /// the entry's ops there are removed): so the ops that follow one of the removed ops find
    /// it taken as applied, as on the writer, and do not wait for it for ever. Where the
    /// first history takes the op it forked after as applied from this bundle's base too
    /// (`root_entry` ends there), returns (the history, the first history, that seq): it follows
    /// that op, and inherits its context once it is taken.
    fn removed_branch(
        &mut self,
        entry: &Base,
        root_entry: Option<&Base>,
    ) -> Result<Option<(DeviceIdx, DeviceIdx, u64)>> {
        let root = (entry.history != entry.device)
            .then(|| self.known.devices.idx(&entry.device))
            .flatten();
        let Some(root) = root.filter(|_| self.known.devices.idx(&entry.history).is_none()) else {
            return Ok(None);
        };
        let devices = &self.known.devices;
        let carried_after = (self.reading.carried.get(&root))
            .is_some_and(|seqs| seqs.contains_key(&(entry.from + 1)));
        if !carried_after
            || (devices.children(root).iter())
                .any(|&c| devices.fork(c).is_some_and(|(_, base)| base == entry.from))
        {
            return Ok(None);
        }
        self.reading.appender.flush()?;
        let (history, first) = (self.history(), entry.from + 1);
        let hash = match history.holds(root, first)? && history.chain_held(root, first)? {
            true => history.hash_at(root, first)?,
            false => None,
        };
        let Some(hash) = hash else {
            return Ok(None);
        };
        // (not where a compaction point held here decides the device's history past the
        // fork, but for a history a point names: the op held there is the one it names, and
        // another history forked below it goes, as its ops do as they arrive, behind.rs)
        if self.decided_upto(root).is_some_and(|upto| upto >= first)
            && !self.names_history(&entry.history)?
        {
            return Ok(None);
        }
        // (not where the op held there is that history's first, or another's known here)
        let held_as = super::histories::history_id(&entry.device, &hash);
        if held_as == entry.history || self.known.devices.idx(&held_as).is_some() {
            return Ok(None);
        }
        // (as its writer holds them, and a split would here: the ops after the fork are a
        // history of their own, and the removed one another)
        self.move_from(root, first, &hash, None)?;
        // (an entry that ends where it starts names a history whose first op follows another
        // op than its parent's there, its own link (bundle/out.rs `own_link`): it keeps that
        // link, as on the writer, so that its first op, once it comes, is hashed as written)
        if entry.upto == entry.from {
            let idx = self.branch(root, entry.from, &entry.history, false)?;
            chain::remember(self.conn, idx, entry.from, &entry.link)?;
            return Ok(None);
        }
        let follows = self.applied_seq(root) == entry.from
            && (entry.from == 0 || self.history().hash_at(root, entry.from)?.is_some());
        let idx = self.branch(root, entry.from, &entry.history, follows)?;
        let taken_later = root_entry.is_some_and(|r| {
            r.upto == entry.from && r.from < entry.from && self.applied_seq(root) >= r.from
        });
        Ok((!follows && taken_later).then_some((idx, root, entry.from)))
    }

    /// The history a base entry of history `idx` is about: where `idx` forked into histories
    /// of its own below the entry's seq, the one that holds the op the entry names (its
    /// writer held them as one; a device that forked them, holding another op there too,
    /// holds that lineage in the branch), else `idx`.
    fn base_continued(&mut self, idx: DeviceIdx, entry: &Base) -> Result<DeviceIdx> {
        let devices = &self.known.devices;
        if devices.children(idx).is_empty() || self.applied_seq(idx) >= entry.upto {
            return Ok(idx);
        }
        self.reading.appender.flush()?;
        let found = self.history().locate(idx, entry.upto, &entry.link)?;
        Ok(found.unwrap_or(idx))
    }

    /// Whether `branch` is a history that split off history `idx` here where its writer held
    /// them as one (this device held another op there too), below op `at` it holds, within the
    /// ops of `idx` that base entry `entry` says the bundle starts from: the writer's ops of
    /// `idx` from there on are `branch`'s here.
    fn took_over(&self, idx: DeviceIdx, branch: DeviceIdx, entry: &Base, at: u64) -> bool {
        (self.known.devices.fork(branch))
            .is_some_and(|(parent, base)| parent == idx && entry.from <= base && base < at)
    }

    /// The contexts of the removed ops that the bundle's ops follow, where this device took
    /// them as applied: an op states its deps as a change from the op before it, so what it
    /// had seen is that op's context and its own deps (else a device that joins late would take
    /// an op for concurrent with one it followed, and show a conflict no other device shows).
    fn take_gaps(&mut self) -> Result<()> {
        for gap in std::mem::take(&mut self.reading.gaps) {
            let Some(idx) = self.known.devices.idx(&gap.history) else {
                continue;
            };
            let removed = self.known.devices.removed_upto(idx);
            if idx == SELF || gap.seq > removed || self.history().holds(idx, gap.seq)? {
                continue; // (an op held here: its context is known)
            }
            // (and the histories forked at it or after it, which took its context as it was
            // known then)
            let forked = self.heirs(idx, gap.seq)?;
            for (id, seq, hash) in gap.points {
                let root = self.known.devices.idx_or_add(self.conn, &id)?;
                let dep = self.resolve_dep(root, seq, &hash)?;
                // (only what the ops held below it had not seen: a change point there is
                // what its op names as new, and the op may come after all, from a peer
                // that kept it)
                if gap.seq > 1 && self.seen_below(idx, gap.seq - 1, (dep, seq, &hash)) {
                    continue;
                }
                (self.known.contexts).add(idx, gap.seq, dep, seq, &hash)?;
                for &(child, at) in &forked {
                    if at == gap.seq || self.known.contexts.entry(child, at, dep) < seq {
                        (self.known.contexts).add(child, at, dep, seq, &hash)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The histories that took the context of op `seq` of history `idx` where they forked,
    /// with the seq they forked at: those forked from it there whose first op follows it (not
    /// one that left its lineage there, behind.rs, whose first op follows another op at its
    /// seq), and those forked from it later whose first op followed the op they forked after
    /// (branch: they hold that op in their context), and so on down the histories forked from
    /// them.
    fn heirs(&self, idx: DeviceIdx, seq: u64) -> Result<Vec<(DeviceIdx, u64)>> {
        let (devices, contexts) = (&self.known.devices, &self.known.contexts);
        let mut heirs = Vec::new();
        let mut from = vec![(idx, seq)];
        while let Some((parent, above)) = from.pop() {
            for child in devices.children(parent) {
                let Some((_, at)) = devices.fork(child).filter(|f| f.1 >= above) else {
                    continue;
                };
                let follows = match parent == idx && at == seq {
                    true => !self.history().detached(child)?,
                    false => contexts.entry(child, at, parent) >= at,
                };
                if follows {
                    heirs.push((child, at));
                    from.push((child, at + 1));
                }
            }
        }
        Ok(heirs)
    }

    /// Whether the context of op `at` of history `idx` holds op `point` (dep, seq, hash): its
    /// entry there reaches it, or a point in force names the same op, one of them by the
    /// placeholder of a dep still waiting for its op (log/clock.rs `waiting`), the other as
    /// held.
    fn seen_below(&self, idx: DeviceIdx, at: u64, point: (DeviceIdx, u64, &Hash)) -> bool {
        let (dep, seq, hash) = point;
        let contexts = &self.known.contexts;
        if contexts.entry(idx, at, dep) >= seq {
            return true;
        }
        let root = |d: DeviceIdx| match d.0 < 0 {
            true => waited_for(d),
            false => self.known.devices.root(d),
        };
        (contexts.points_at(idx, at).iter())
            .any(|(d, s, h)| *s == seq && h == hash && root(*d) == root(dep))
    }

    /// Drops the ops of history `device` held here at seqs in (`from`, `to`] that the bundle
    /// did not carry: its writer removed them below a compaction point, which every device
    /// then known had, so this device removes them as it did. (Where this device's ops there
    /// are not the ones its writer removed, a backup put back and written on under the old
    /// id, which no device can tell apart, they go on every device alike.) The ops it carried
    /// there are held here too (its writer sends every op it holds above `from`).
    fn drop_uncarried(&mut self, device: DeviceIdx, from: u64, to: u64) -> Result<()> {
        self.reading.appender.flush()?;
        let carried = self.reading.carried.remove(&device).unwrap_or_default();
        let mut stmt = self.conn.prepare(
            "SELECT seq FROM main._sync_remote WHERE device = ?1 AND seq > ?2 AND seq <= ?3",
        )?;
        stmt.bind_all(&[
            Value::from(device),
            Value::Integer(from as i64),
            Value::Integer(to as i64),
        ])?;
        let mut gone = Vec::new();
        while let Some(row) = stmt.step()? {
            let seq = row.column_int(0) as u64;
            if !carried.contains_key(&seq) {
                gone.push(seq);
            }
        }
        drop(stmt);
        if gone.is_empty() {
            return Ok(());
        }
        // (an op a history forked after keeps its hash: the history's first op follows it)
        let mut links = Vec::new();
        for child in self.known.devices.children(device) {
            let base = self.known.devices.fork(child).map_or(0, |f| f.1);
            if gone.contains(&base) {
                if let Some(hash) = self.history().hash_at(device, base)? {
                    links.push((base, hash));
                }
            }
        }
        self.note_dropping(device, &gone, u64::MAX)?;
        self.drop_held(device, &gone)?;
        let range = [
            Value::from(device),
            Value::Integer(from as i64),
            Value::Integer(to as i64),
        ];
        // (the hash kept of an op compaction removed here before, which an op still held
        // follows, stays: that op hashes from it)
        let mut stmt = self.conn.prepare(
            "SELECT h.seq, h.hash FROM main._sync_hashes h
             WHERE h.device = ?1 AND h.seq > ?2 AND h.seq <= ?3
               AND NOT EXISTS (SELECT 1 FROM main._sync_remote r
                               WHERE r.device = h.device AND r.seq = h.seq)
               AND EXISTS (SELECT 1 FROM main._sync_remote r
                           WHERE r.device = h.device AND r.seq = h.seq + 1)",
        )?;
        stmt.bind_all(&range)?;
        while let Some(row) = stmt.step()? {
            let hash: Option<crate::op::Hash> = row.column_blob(1)?.and_then(|h| h.try_into().ok());
            if let Some(hash) = hash {
                links.push((row.column_int(0) as u64, hash));
            }
        }
        drop(stmt);
        // (with the other checkpoints of the range: the ops it carried there hash as stated)
        self.run(
            "DELETE FROM main._sync_hashes WHERE device = ?1 AND seq > ?2 AND seq <= ?3",
            &range,
        )?;
        for (seq, hash) in links {
            chain::remember(self.conn, device, seq, &hash)?;
        }
        // an op it carried after one dropped hashes from the hash it states for that one
        for (&seq, prev) in &carried {
            if let (Some(prev), true) = (prev, gone.contains(&(seq - 1))) {
                chain::remember(self.conn, device, seq - 1, prev)?;
            }
        }
        Ok(())
    }

    /// Drops ops `gone` of history `device` held here: out of the row index (their rows
    /// settled again from the ops they keep), then out of the store, with the hashes kept of
    /// them.
    pub(super) fn drop_held(&mut self, device: DeviceIdx, gone: &[u64]) -> Result<()> {
        if gone.is_empty() {
            return Ok(());
        }
        self.reading.dropped = true;
        self.reading.appender.flush()?;
        self.write_applied()?;
        let mut by_table: HashMap<i64, Vec<(Entry, bool)>> = HashMap::default();
        let mut stmt = self.conn.prepare(
            "SELECT table_id, key, 1 FROM main._sync_rows WHERE device = ?1 AND seq = ?2
             UNION ALL
             SELECT table_id, key, 0 FROM main._sync_row_ops WHERE device = ?1 AND seq = ?2",
        )?;
        for &seq in gone {
            stmt.bind_all(&[Value::from(device), Value::Integer(seq as i64)])?;
            while let Some(row) = stmt.step()? {
                let key = row.column_blob(1)?.unwrap_or_default().to_vec();
                let entry = (row.column_int(0), key, device, seq);
                (by_table.entry(entry.0).or_default()).push((entry, row.column_int(2) == 1));
            }
            stmt.reset();
        }
        drop(stmt);
        for (table_id, entries) in by_table {
            // (a table not synced now: its rows are settled when it is enabled again)
            let table = self.known.tables.iter().find(|t| t.id == table_id);
            self.unindex(table, &entries)?;
        }
        for &seq in gone {
            let at = [Value::from(device), Value::Integer(seq as i64)];
            for sql in [
                "DELETE FROM main._sync_kept WHERE device = ?1 AND seq = ?2",
                "DELETE FROM main._sync_remote WHERE device = ?1 AND seq = ?2",
                "DELETE FROM main._sync_hashes WHERE device = ?1 AND seq = ?2",
            ] {
                self.run(sql, &at)?;
            }
        }
        if !self.known.floors.none_held() {
            self.floors_without(device, gone)?;
        }
        self.reading.dep_hashes.retain(|&(d, _), _| d != device);
        self.clocks.lamports.clear();
        Ok(())
    }

    /// The compaction points held here once ops `gone` of history `device` are dropped: one
    /// among them is no longer held (placed again, it is learnt again), and the entries of the
    /// others that named one of them are placed again once the import's ops are.
    fn floors_without(&mut self, device: DeviceIdx, gone: &[u64]) -> Result<()> {
        for &seq in gone {
            let at = [Value::from(device), Value::Integer(seq as i64)];
            self.run(
                "DELETE FROM main._sync_floors WHERE device = ?1 AND seq = ?2",
                &at,
            )?;
            let mut stmt = self.conn.prepare(
                "SELECT DISTINCT device, seq FROM main._sync_floors WHERE of = ?1 AND of_seq = ?2",
            )?;
            stmt.bind_all(&at)?;
            while let Some(row) = stmt.step()? {
                let writer = self.known.devices.wire_id(DeviceIdx(row.column_int(0)));
                self.reading
                    .stale_points
                    .push((writer, row.column_int(1) as u64));
            }
            drop(stmt);
            self.run(
                "DELETE FROM main._sync_floors WHERE of = ?1 AND of_seq = ?2",
                &at,
            )?;
        }
        self.known.floors = crate::log::floors::Floors::load(self.conn)?;
        Ok(())
    }

    /// Moves the applied clock of history `device` past the ops compaction removed (not held
    /// here, at or below where its ops may be missing), up to the next op held; whether it
    /// moved.
    pub(super) fn skip_removed(&mut self, device: DeviceIdx) -> Result<bool> {
        let (at, upto) = (
            self.applied_seq(device),
            self.known.devices.removed_upto(device),
        );
        if at >= upto {
            return Ok(false);
        }
        self.reading.appender.flush()?;
        let next = self.query_row(
            "SELECT min(seq) FROM main._sync_remote WHERE device = ?1 AND seq > ?2",
            &[Value::from(device), Value::Integer(at as i64)],
        )?;
        let to = match next.as_deref() {
            Some([Value::Integer(n)]) => (*n as u64 - 1).min(upto),
            _ => upto,
        };
        if to <= at {
            return Ok(false);
        }
        self.clocks.clock.insert(device, to);
        Ok(true)
    }
}
