//! Two histories under one device id, told apart and both kept.
//!
//! A database file copied, or put back from an older backup, and written on before it could
//! tell, writes ops under its device's id that another copy writes too: two different ops
//! "n of device d". Each op names the hash of the op before it on its device (op.rs), so an
//! op's place is its history, not only its seq. Where two ops follow the same op with
//! different content, the device's history forks: each branch becomes a history of its own, a
//! device of its own for everything else (clocks, order keys, conflicts), named by an id
//! derived from the device's id and the hash of the branch's first op. The ops they share stay
//! the device's; the branch the device held so far moves to its own history (its ops keep their
//! seqs and hashes), and the new branch gets another.
//!
//! Invariants: every device that holds the same ops holds the same histories with the same ids,
//! whichever branch it heard of first; an op's deps name ops by hash, so an op that followed
//! one branch waits for that branch, never for the other; nothing is dropped, except an op
//! whose place (the op before it) is not held here, which the sender sends again once this
//! device's clock tells it what is held here (also one held pending so, where another op
//! comes to that place: displaced.rs).

use super::import::Import;
use crate::bundle::{Packed, Prev};
use crate::db::{Error, Result};
use crate::form::Form;
use crate::log::clock::{waited_for, waiting};
use crate::log::remote::{self, Stored};
use crate::op::{Dep, DeviceId, Hash};
use crate::schema::{DeviceIdx, SELF};
use crate::value::Value;
use sha2::{Digest, Sha256};

/// Where an incoming op goes.
pub(super) enum Placed {
    /// stored in this history (applied now or pending)
    At(DeviceIdx),
    /// held here already, in this history
    Duplicate(DeviceIdx),
    /// the op before it is not held here
    Unplaced,
    /// an op compaction removed here: taken to be the op that was, unchecked (compact/remove.rs)
    Below(DeviceIdx),
    /// an op of another history than the one a compaction point decides (behind.rs)
    Dropped,
}

/// The id of the history of device `origin` whose first op has hash `first`.
pub(super) fn history_id(origin: &DeviceId, first: &Hash) -> DeviceId {
    let mut h = Sha256::new();
    h.update(b"sqlite-sync history");
    h.update(origin);
    h.update(first);
    h.finalize()[..16].try_into().expect("16 bytes")
}

impl Import<'_> {
    /// The id of the history of history `at`'s device whose first op has hash `first`.
    pub(super) fn history_named(&self, at: DeviceIdx, first: &Hash) -> DeviceId {
        history_id(&self.known.devices.wire_id(at), first)
    }

    /// The id of the history of history `at`'s device that `op` starts where it follows the
    /// op whose hash is `prev`.
    pub(super) fn history_after(
        &self,
        at: DeviceIdx,
        op: &Packed,
        form: &Form,
        prev: &Hash,
    ) -> DeviceId {
        self.history_named(at, &op_hash(op, form, Some(prev)))
    }

    /// The history of the device whose first history is `root` that `op` belongs to.
    pub(super) fn place(&mut self, root: DeviceIdx, op: &Packed, form: &Form) -> Result<Placed> {
        if let Some(placed) = self.behind_point(root, op, form)? {
            return Ok(placed);
        }
        let forked = self.known.devices.is_forked(root);
        let seq = op.seq;
        if !forked
            && seq <= self.applied_seq(root)
            && self.flushed()?.history().removed(root, seq)?
        {
            return self.below_or_split(root, op, form);
        }
        if let (Prev::Stated(_), false) = (&op.prev, forked) {
            if let Some(idx) = self.based_branch(root, op)? {
                return Ok(Placed::At(idx));
            }
        }
        // the history that holds op seq - 1 (for op 1: the device's first)
        let before = match op.prev {
            Prev::First => root,
            Prev::Follows => match self.reading.stream_at {
                Some((id, at, idx)) if id == op.device && at + 1 == seq => idx,
                _ => return Ok(Placed::Unplaced),
            },
            Prev::Stated(prev) if !forked => {
                let below_applied = seq - 1 <= self.applied_seq(root);
                // (the op before it came just before it, and is held pending: it is checked now)
                let after_its_seq = matches!(self.reading.stream_at,
                    Some((id, at, idx)) if id == op.device && at + 1 == seq && idx == root);
                if !below_applied && !after_its_seq && !self.reading.appender.may_hold(root, seq) {
                    // (the first op of a history the bundle's base names, whose first op follows
                    // another op than its parent's there (bundle/out.rs `own_link`): that
                    // history's, as its writer holds it, not one waiting for the op below it
                    // here, which may never come: a compaction point decided against it)
                    let own = (self.reading.base.values()).any(|b| {
                        b.device == op.device
                            && b.from + 1 == seq
                            && b.upto == b.from
                            && b.link == prev
                    });
                    if own
                        && (self.reading.base)
                            .contains_key(&self.history_after(root, op, form, &prev))
                    {
                        return self.named_branch(root, op, form, prev);
                    }
                    // (pending: checked as the ops below it come)
                    return Ok(match self.breaks_chain_above(root, op, form)? {
                        true => Placed::Unplaced,
                        false => Placed::At(root),
                    });
                }
                self.reading.appender.flush()?;
                // an op held pending under this seq is compared below; where it differs, the
                // place of this one is checked against the op before it, if that is held
                let history = self.history();
                if !below_applied && !history.chain_held(root, seq - 1)? {
                    return Ok(match self.stored_same(root, op, form)? {
                        Some(true) => Placed::Duplicate(root),
                        Some(false) => Placed::Unplaced,
                        None => Placed::At(root),
                    });
                }
                if self.history().hash_at(root, seq - 1)? != Some(prev) {
                    if let Some(placed) = self.after_base_held_otherwise(root, op)? {
                        return Ok(placed);
                    }
                    return self.named_branch(root, op, form, prev);
                }
                root
            }
            Prev::Stated(prev) => match self.flushed()?.history().locate(root, seq - 1, &prev)? {
                Some(idx) => idx,
                None => match self.across_removed(op) {
                    Some(idx) => idx,
                    None => match self.based_fork(root, op)? {
                        Some(idx) => return Ok(Placed::At(idx)),
                        None => return self.named_branch(root, op, form, prev),
                    },
                },
            },
        };
        let children = if forked {
            self.reading.appender.flush()?;
            self.known.devices.children(before)
        } else {
            Vec::new()
        };
        let closed_at = children
            .first()
            .and_then(|&c| self.known.devices.fork(c))
            .map(|f| f.1);
        if closed_at.is_none_or(|end| seq <= end) {
            return Ok(match self.stored_same(before, op, form)? {
                Some(true) => Placed::Duplicate(before),
                // (the ops held there wait for ops before them that are not held: which history
                // they are cannot be told yet; the sender sends `op` again)
                Some(false) if !self.flushed()?.history().chain_held(before, seq - 1)? => {
                    Placed::Unplaced
                }
                Some(false) => match self.branch_held(before, op, form)? {
                    Some(placed) => placed,
                    None => Placed::At(self.split(before, op, form)?),
                },
                // (removed by compaction from a history of a forked device: the op that was)
                None if forked
                    && seq <= self.applied_seq(before)
                    && self.history().removed(before, seq)? =>
                {
                    self.below_or_split(before, op, form)?
                }
                None if self.breaks_chain_above(before, op, form)?
                    && !self.displace_above(before, seq)? =>
                {
                    Placed::Unplaced
                }
                None => Placed::At(self.based_first(before, op, form)?.unwrap_or(before)),
            });
        }
        // `before` ends below seq - 1 (its branches fork lower: the op is another op of one
        // of them, which it did not follow here): held already in one of them, a duplicate,
        // else not placed here (refused before, every bundle that carried it, for want of
        // the op seq - 1 of `before` to hash it)
        if closed_at.is_some_and(|end| end + 1 < seq) {
            for h in self.known.devices.histories(before) {
                if h != before && self.stored_same(h, op, form)? == Some(true) {
                    return Ok(Placed::Duplicate(h));
                }
            }
            return Ok(Placed::Unplaced);
        }
        // `before` ends at seq - 1: the op is the first of one of its branches, or of a new one
        let stated = match op.prev {
            Prev::Stated(prev) => Some(prev),
            _ => None,
        };
        for child in children {
            if self.stored_same(child, op, form)? == Some(true)
                && self.may_follow_as(child, stated.as_ref())?
            {
                return Ok(Placed::Duplicate(child));
            }
        }
        if let Some(placed) = self.branch_held(before, op, form)? {
            return Ok(placed);
        }
        // (an op it states that `before` is not known to hold there: a history of its own
        // there, named as where that op is held, behind.rs)
        let own = match stated {
            Some(prev) if self.history().hash_at(before, seq - 1)? != Some(prev) => Some(prev),
            _ => None,
        };
        if let Some(own) = own {
            let id = self.history_after(before, op, form, &own);
            if let Some(idx) = self.known.devices.idx(&id) {
                // (that history held here already, forked elsewhere: the op is its first)
                return Ok(match self.stored_same(idx, op, form)? {
                    Some(true) => Placed::Duplicate(idx),
                    None if self.known.devices.fork(idx).is_some_and(|f| f.1 + 1 == seq) => {
                        Placed::At(idx)
                    }
                    _ => Placed::Unplaced,
                });
            }
        }
        self.new_history(before, op, form, own).map(Placed::At)
    }

    /// Where `op` comes at a seq of history `idx` whose op compaction removed here: taken to be
    /// that op (`Placed::Below`), unchecked, unless its hash was kept and `op`'s differs (then
    /// `op` is another history's, as a copy's or a put-back backup's: the ops held there on
    /// become a history of their own, and `op` another, as where both were held; else a device
    /// that removed the op it held there would take every other op at its seq for that one,
    /// and never hold the other history its peers hold).
    fn below_or_split(&mut self, idx: DeviceIdx, op: &Packed, form: &Form) -> Result<Placed> {
        let kept = crate::log::chain::remembered(self.conn, idx, op.seq)?;
        let mine = match (kept, self.prev_of(op)?) {
            (Some(_), Some(prev)) => Some(op_hash(op, form, Some(&prev))),
            _ => None,
        };
        // (one a compaction point decides there, known to be another op than the one removed
        // though its hash was not kept, which a point's writer saw: behind.rs `behind_point`)
        let seen = (self.reading.seen.as_ref()).is_some_and(|d| d.0 == op.device && d.1 == op.seq);
        let other = seen || matches!((kept, mine), (Some(kept), Some(mine)) if kept != mine);
        if !other {
            return Ok(Placed::Below(idx));
        }
        // (one a point's writer saw, where the op before it was removed here too, its hash not
        // kept: that op is taken for the one `op` states, as a dep on it is, `History::taken`,
        // which `seen_by_a_point` asked; its hash is kept from now on)
        if seen && self.history().unhashable(idx, op.seq - 1)? {
            let Some(prev) = self.prev_of(op)? else {
                return Ok(Placed::Below(idx));
            };
            crate::log::chain::remember(self.conn, idx, op.seq - 1, &prev)?;
        }
        // (where the op removed cannot be hashed, its hash not kept, the ops held after it
        // cannot be moved: they stay, and `op` starts a history of its own)
        if kept.is_none() {
            return Ok(Placed::At(self.new_history(idx, op, form, None)?));
        }
        Ok(Placed::At(self.split(idx, op, form)?))
    }

    /// Whether `op`, not held at its seq in history `idx`, is not the op that the ops held
    /// pending there above it follow: hashed on from it, they do not give the hash kept for the
    /// nearest of them (a checkpoint). They follow another op at its seq, another history's,
    /// not held here yet: `op` waits to be sent again, once that one is held and has shown
    /// where the histories part (a device put back to a backup, and written on, whose first
    /// history's ops above came first). Where that cannot be told (no checkpoint above, an op
    /// between not held, `op`'s link not known), it is taken to be the op they follow.
    fn breaks_chain_above(&mut self, idx: DeviceIdx, op: &Packed, form: &Form) -> Result<bool> {
        let seq = op.seq;
        if !self.reading.appender.may_hold(idx, seq + 1) {
            return Ok(false);
        }
        self.reading.appender.flush()?;
        let kept = self.query_row(
            "SELECT seq, hash FROM main._sync_hashes WHERE device = ?1 AND seq > ?2
             ORDER BY seq LIMIT 1",
            &[Value::from(idx), Value::Integer(seq as i64)],
        )?;
        let Some([Value::Integer(at), Value::Blob(kept)]) = kept.as_deref() else {
            return Ok(false);
        };
        let (at, kept) = (*at as u64, kept.clone());
        let Some(mut hash) = self.wire_hash(idx, op, form)? else {
            return Ok(false);
        };
        let mut next = seq + 1;
        self.history().each(idx, seq, at, |held| {
            if held.seq == next {
                hash = crate::log::chain::hash_of(&held, Some(&hash));
                next += 1;
            }
            Ok(())
        })?;
        Ok(next == at + 1 && hash.as_slice() != kept.as_slice())
    }

    /// Whether the first op of branch `child` may follow the op whose hash is `stated` (where
    /// the op states one): no op it may follow is known here, or one is that one (its own
    /// link, or its parent's op where it forked: a device put back may write its ops again
    /// after either). Two branches may hold the same ops above where they fork, after two
    /// other ops there (the hashes of their ops differ): neither is the other's.
    fn may_follow_as(&mut self, child: DeviceIdx, stated: Option<&Hash>) -> Result<bool> {
        let (Some(stated), Some((parent, base))) = (stated, self.known.devices.fork(child)) else {
            return Ok(true);
        };
        self.reading.appender.flush()?;
        let history = self.history();
        let known = [
            history.own_link(child, base)?,
            history.hash_at(parent, base)?,
        ];
        Ok(known.iter().all(Option::is_none) || known.contains(&Some(*stated)))
    }

    /// Where `op`, which follows op seq - 1 of history `before`, is the first op of a branch
    /// held here already, forked there, that does not hold it now (compaction removed it, or
    /// it was set aside, or the branch was named before its first op came): that branch.
    fn branch_held(
        &mut self,
        before: DeviceIdx,
        op: &Packed,
        form: &Form,
    ) -> Result<Option<Placed>> {
        let seq = op.seq;
        let prev = self.flushed()?.history().hash_at(before, seq - 1)?;
        let id = self.history_named(before, &op_hash(op, form, prev.as_ref()));
        let Some(idx) = self.known.devices.idx(&id) else {
            return Ok(None);
        };
        if self.known.devices.fork(idx) != Some((before, seq - 1)) {
            return Ok(None);
        }
        // (a branch is named by the hash of its first op: the one held there is this op, though
        // its deps as stored may differ from those it was written with)
        Ok(match self.stored_same(idx, op, form)? {
            Some(_) => Some(Placed::Duplicate(idx)),
            // (the op that was, where compaction removed it)
            None if self.history().removed(idx, seq)? => Some(Placed::Below(idx)),
            None => Some(Placed::At(idx)),
        })
    }

    /// Where `op`, which follows an op `prev` not held here, goes: the first op of a history
    /// the bundle's base names, forked from the device's first history where a compaction
    /// point decided it below (behind.rs), goes to that history, as its writer holds it (a
    /// device that joins late holds the op the point kept, not the one `op` followed);
    /// anything else is unplaced.
    fn named_branch(
        &mut self,
        root: DeviceIdx,
        op: &Packed,
        form: &Form,
        prev: Hash,
    ) -> Result<Placed> {
        let id = self.history_after(root, op, form, &prev);
        if !self.reading.base.contains_key(&id) {
            return Ok(Placed::Unplaced);
        }
        if let Some(idx) = self.known.devices.idx(&id) {
            return Ok(match self.stored_same(idx, op, form)? {
                Some(true) => Placed::Duplicate(idx),
                _ => Placed::Unplaced,
            });
        }
        // (where the first history holds an op under its seq, that op's history splits off
        // there too, as where the writer held both; else it forks from the history that holds
        // the op before it, which is not the first where that one's ops moved to a history of
        // their own, forked below, when another history of the device came)
        let idx = match self.flushed()?.history().holds(root, op.seq)? {
            true => self.split_off(root, op, form, prev)?,
            false => {
                let parent = self.holder(root, op.seq - 1)?.unwrap_or(root);
                self.new_history(parent, op, form, Some(prev))?
            }
        };
        Ok(Placed::At(idx))
    }

    /// The history of the device whose first history is `root` that holds op `seq` itself.
    fn holder(&self, root: DeviceIdx, seq: u64) -> Result<Option<DeviceIdx>> {
        let history = self.history();
        for idx in self.known.devices.histories(root) {
            if history.holds(idx, seq)? {
                return Ok(Some(idx));
            }
        }
        Ok(None)
    }

    /// Highest seq of history `idx` applied here (for a branch, at least where it forked).
    pub(super) fn applied_seq(&self, idx: DeviceIdx) -> u64 {
        self.clocks.clock.get(&idx).copied().unwrap_or(0)
    }

    /// The highest seq of history `idx` held here (this device's: its last op written).
    fn held_seq(&self, idx: DeviceIdx) -> Result<u64> {
        match idx {
            SELF => self.local_last(),
            _ => Ok(self.applied_seq(idx)),
        }
    }

    /// Whether op `op.seq` of history `idx` is held here and is `op` (None: not held).
    pub(super) fn stored_same(
        &mut self,
        idx: DeviceIdx,
        op: &Packed,
        form: &Form,
    ) -> Result<Option<bool>> {
        let seq = op.seq;
        if seq > self.applied_seq(idx) {
            if !self.reading.appender.may_hold(idx, seq) {
                return Ok(None);
            }
            // a copy stored pending by an earlier import whose clock turned out false goes
            if self.applied_seq(idx) + 1 == seq && self.deliverable(idx, seq) {
                self.drop_false_copy(idx, seq)?;
            }
        }
        self.reading.appender.flush()?;
        let stored = self.query_row(
            "SELECT lamport, form, vals FROM main._sync_remote WHERE device = ?1 AND seq = ?2",
            &[Value::from(idx), Value::Integer(seq as i64)],
        )?;
        let Some(row) = stored else { return Ok(None) };
        let stored = Stored::from_row(&row)?;
        let (stored_form, values) = self.known.forms.values(&stored)?;
        let deps = remote::deps_of(&self.known.contexts, &self.known.devices, idx, seq);
        let same = super::checks::same_op(op, form, stored_form, stored.lamport, &values, &deps);
        if same {
            return Ok(Some(same));
        }
        // (deps a compaction point took for one, stored as one, or as fewer: the op's hash as
        // written was kept)
        let Some(kept) = crate::log::chain::remembered(self.conn, idx, seq)? else {
            return Ok(Some(false));
        };
        // (its hash needs the op before it: stated, or held here with every op below it)
        let stated = matches!(op.prev, Prev::First | Prev::Stated(_));
        if !stated && !self.history().chain_held(idx, seq - 1)? {
            return Ok(Some(false));
        }
        Ok(Some(self.wire_hash(idx, op, form)? == Some(kept)))
    }

    /// The hash of `op`, placed in history `idx`, as its writer made it (None: the op before
    /// it is neither stated nor hashable here, or an op below it is not held).
    pub(super) fn wire_hash(
        &mut self,
        idx: DeviceIdx,
        op: &Packed,
        form: &Form,
    ) -> Result<Option<Hash>> {
        let prev = match (op.prev, self.prev_of(op)?) {
            (Prev::First, _) => None,
            (_, Some(prev)) => Some(prev),
            _ if op.seq - 1 <= self.applied_seq(idx)
                && !self.history().unhashable(idx, op.seq - 1)?
                && self.flushed()?.history().chain_held(idx, op.seq - 1)? =>
            {
                self.flushed()?.history().hash_at(idx, op.seq - 1)?
            }
            _ => return Ok(None),
        };
        Ok(Some(op_hash(op, form, prev.as_ref())))
    }

    /// Makes a new history for `op`, which follows op seq - 1 of history `parent` (or, where
    /// `own` is given, the op whose hash that is: behind.rs) and differs from every op held
    /// after it.
    pub(super) fn new_history(
        &mut self,
        parent: DeviceIdx,
        op: &Packed,
        form: &Form,
        own: Option<Hash>,
    ) -> Result<DeviceIdx> {
        let prev = match own {
            Some(own) => Some(own),
            None => self.history().hash_at(parent, op.seq - 1)?,
        };
        let first = op_hash(op, form, prev.as_ref());
        let id = self.history_named(parent, &first);
        let idx = self.branch(parent, op.seq - 1, &id, own.is_none())?;
        if let Some(own) = own {
            crate::log::chain::remember(self.conn, idx, op.seq - 1, &own)?;
        }
        self.adopt_detached(idx, op.seq, &first)?;
        Ok(idx)
    }

    /// Registers a history forking from `parent` after its op `base`: where its first op
    /// `follows` op `base`, its ops' context holds everything op `base` had seen, and op `base`
    /// itself. Where it does not (a compaction point decided the history below, behind.rs), its
    /// ops' context is only what their own deps say: what its first op followed is not held, and
    /// lending it op `base`'s context would make it seem to have seen ops written after it.
    pub(super) fn branch(
        &mut self,
        parent: DeviceIdx,
        base: u64,
        id: &DeviceId,
        follows: bool,
    ) -> Result<DeviceIdx> {
        let conn = self.conn;
        let idx = self.known.devices.add_history(conn, parent, base, id)?;
        if base > 0 && follows {
            self.inherit(idx, parent, base)?;
        }
        self.clocks.clock.insert(idx, base);
        conn.exec(
            "INSERT INTO main._sync_clock(device, seq) VALUES (?1, ?2)",
            &[Value::from(idx), Value::Integer(base as i64)],
        )?;
        Ok(idx)
    }

    /// History `idx`, forked from `parent` after its op `base`, follows that op: its context
    /// holds it and that op's.
    pub(super) fn inherit(&mut self, idx: DeviceIdx, parent: DeviceIdx, base: u64) -> Result<()> {
        let hash = (self.history().hash_at(parent, base)?)
            .ok_or_else(|| Error::new("a fork names no op"))?;
        let mut points = self.known.contexts.points_at(parent, base);
        points.push((parent, base, hash));
        for (dep, dep_seq, hash) in points {
            self.known.contexts.add(idx, base, dep, dep_seq, &hash)?;
        }
        Ok(())
    }

    /// History `at` holds another op than `op` under its seq: the ops of `at` from there on
    /// move to a history of their own, and `op` starts another. Returns the latter.
    fn split(&mut self, at: DeviceIdx, op: &Packed, form: &Form) -> Result<DeviceIdx> {
        self.split_from(at, op, form, None)
    }

    /// The same, where `op` follows the op whose hash is `own` (behind.rs).
    pub(super) fn split_off(
        &mut self,
        at: DeviceIdx,
        op: &Packed,
        form: &Form,
        own: Hash,
    ) -> Result<DeviceIdx> {
        self.split_from(at, op, form, Some(own))
    }

    fn split_from(
        &mut self,
        at: DeviceIdx,
        op: &Packed,
        form: &Form,
        own: Option<Hash>,
    ) -> Result<DeviceIdx> {
        self.reading.appender.flush()?;
        let first = (self.history().hash_at(at, op.seq)?)
            .ok_or_else(|| Error::new("a fork names no op"))?;
        self.move_from(at, op.seq, &first, None)?;
        self.new_history(at, op, form, own)
    }

    /// Where history `at` holds `op` itself, which follows `prev`, not the op `at` holds before
    /// it (a compaction point's lineage left there, behind.rs): the ops from there on become a
    /// history of their own that follows `prev`, as their writer's does; returns it.
    pub(super) fn split_held(
        &mut self,
        at: DeviceIdx,
        op: &Packed,
        form: &Form,
        prev: Hash,
    ) -> Result<DeviceIdx> {
        let first = op_hash(op, form, Some(&prev));
        self.move_from(at, op.seq, &first, Some(prev))
    }

    /// Moves the ops of history `at` from `seq` on (the first of them hashing `first`) into a
    /// history forked from it after op `seq - 1`, or after another op `own` where given.
    pub(super) fn move_from(
        &mut self,
        at: DeviceIdx,
        seq: u64,
        first: &Hash,
        own: Option<Hash>,
    ) -> Result<DeviceIdx> {
        self.reading.appender.flush()?;
        self.write_applied()?;
        self.rows.recent.clear(); // ops are renamed below
        let conn = self.conn;
        let origin = self.known.devices.wire_id(at);
        let children = self.known.devices.children(at);
        let moved = self.branch(at, seq - 1, &history_id(&origin, first), own.is_none())?;
        if let Some(own) = own {
            crate::log::chain::remember(conn, moved, seq - 1, &own)?;
        }
        for child in children {
            self.known.devices.set_parent(conn, child, moved)?;
        }
        let params = [
            Value::from(moved),
            Value::from(at),
            Value::Integer(seq as i64),
        ];
        crate::schema::rename_ops(conn, at, moved, seq)?;
        self.known.devices.renamed(at, moved, seq);
        self.carried_moved(at, moved, seq);
        self.points_moved(at, moved, seq);
        self.known.floors = crate::log::floors::Floors::load(conn)?;
        for sql in [
            "UPDATE main._sync_remote SET device = ?1 WHERE device = ?2 AND seq >= ?3",
            // a peer known to have moved ops has them, and the ops before them
            "INSERT OR REPLACE INTO main._sync_peers(peer, device, seq, hash)
             SELECT peer, ?1, seq, hash FROM main._sync_peers WHERE device = ?2 AND seq >= ?3",
            "INSERT OR REPLACE INTO main._sync_relayed(peer, device, seq)
             SELECT peer, ?1, seq FROM main._sync_relayed WHERE device = ?2 AND seq >= ?3",
        ] {
            conn.exec(sql, &params)?;
        }
        let shared = self.history().hash_at(at, seq - 1)?;
        conn.exec(
            "UPDATE main._sync_peers SET seq = ?1, hash = ?2 WHERE device = ?3 AND seq > ?1",
            &[
                Value::Integer(seq as i64 - 1),
                shared.map_or(Value::Null, |h| Value::Blob(h.to_vec())),
                Value::from(at),
            ],
        )?;
        conn.exec(
            "UPDATE main._sync_relayed SET seq = ?1 WHERE device = ?2 AND seq > ?1",
            &[Value::Integer(seq as i64 - 1), Value::from(at)],
        )?;
        // the clock: `at` ends before the fork; the moved ops keep what was applied of them
        let applied = self.applied_seq(at);
        if applied >= seq {
            self.clocks.clock.insert(moved, applied);
            conn.exec(
                "UPDATE main._sync_clock SET seq = ?1 WHERE device = ?2",
                &[Value::Integer(applied as i64), Value::from(moved)],
            )?;
            self.clocks.clock.insert(at, seq - 1);
            conn.exec(
                "UPDATE main._sync_clock SET seq = ?1 WHERE device = ?2",
                &[Value::Integer(seq as i64 - 1), Value::from(at)],
            )?;
        }
        if let Some(tip) = self.clocks.tips.remove(&at) {
            if tip.0 >= seq {
                self.clocks.tips.insert(moved, tip);
            } else {
                self.clocks.tips.insert(at, tip);
            }
        }
        if let Some(runs) = self.clocks.pending_before.remove(&at) {
            let (kept, gone): (Vec<_>, Vec<_>) = runs.into_iter().partition(|r| r.1 < seq);
            self.clocks.pending_before.insert(at, kept);
            self.clocks.pending_before.insert(moved, gone);
        }
        self.reading.appender.copy_pending(at, moved);
        self.known.contexts.reload()?;
        self.clocks.lamports.clear(); // (they name ops by history)
                                      // deps that named ops of `at` from `seq` on name the moved ops only if their hashes
                                      // say so; the others wait for their history
        self.recheck_deps(moved, seq)?;
        // the moved ops changed name, hence order keys: their rows are settled again
        self.touch_from(moved, seq)?;
        Ok(moved)
    }

    /// The ops of history `from` from `seq` on, renamed to history `to`: what this bundle
    /// carried of them goes with them (its base drops the ops it did not carry: removed.rs).
    pub(super) fn carried_moved(&mut self, from: DeviceIdx, to: DeviceIdx, seq: u64) {
        // (the hashes found of ops by where they were held: `hash_of_held`)
        self.reading.dep_hashes.clear();
        let carried = &mut self.reading.carried;
        let Some(of) = carried.get_mut(&from) else {
            return;
        };
        let moved: Vec<_> = of.extract_if(|&s, _| s >= seq).collect();
        carried.entry(to).or_default().extend(moved);
    }

    /// Before the ops of history `from` from `seq` on become history `to`'s: the ops whose
    /// deps name both keep their deps as written (they are stored as one from then on).
    pub(super) fn twins_of_merge(
        &mut self,
        from: DeviceIdx,
        to: DeviceIdx,
        seq: u64,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT a.device, a.seq FROM main._sync_deps a JOIN main._sync_deps b
               ON b.device = a.device AND b.seq = a.seq AND b.dep = ?2
             WHERE a.dep = ?1 AND a.dep_seq >= ?3",
        )?;
        stmt.bind_all(&[
            Value::from(from),
            Value::from(to),
            Value::Integer(seq as i64),
        ])?;
        let mut ops = Vec::new();
        while let Some(row) = stmt.step()? {
            ops.push((DeviceIdx(row.column_int(0)), row.column_int(1) as u64));
        }
        drop(stmt);
        // (not this device's next op, not written yet: its context is what it holds when it
        // writes it, and a record made now would leave out what arrives before then)
        let next_local = crate::log::last_local_seq(self.conn)? as u64 + 1;
        for (device, seq) in ops {
            if device == SELF && seq >= next_local {
                continue;
            }
            let deps = remote::deps_of(&self.known.contexts, &self.known.devices, device, seq);
            self.known.contexts.add_twins(device, seq, &deps)?;
        }
        Ok(())
    }

    /// Marks for settling the rows of the ops of history `idx` from `seq` on (their names or
    /// causal contexts changed).
    pub(super) fn touch_from(&mut self, idx: DeviceIdx, seq: u64) -> Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT table_id, key FROM main._sync_rows WHERE device = ?1 AND seq >= ?2
             UNION SELECT table_id, key FROM main._sync_row_ops WHERE device = ?1 AND seq >= ?2",
        )?;
        stmt.bind_all(&[Value::from(idx), Value::Integer(seq as i64)])?;
        while let Some(row) = stmt.step()? {
            let key = row.column_blob(1)?.unwrap_or_default().to_vec();
            self.rows.touched.all(row.column_int(0), key);
        }
        Ok(())
    }

    /// Deps naming ops of history `idx` from `seq` on whose hash is not that op's there (or
    /// whose op is not held yet) wait for their history instead. An op whose deps as written
    /// name that device more than once there (`_sync_twins`: stored as one change point while
    /// the device was held here as one history) has each of them found again by its hash.
    pub(super) fn recheck_deps(&mut self, idx: DeviceIdx, seq: u64) -> Result<()> {
        let conn = self.conn;
        let mut stmt = conn.prepare(
            "SELECT device, seq, dep_seq, hash FROM main._sync_deps WHERE dep = ?1 AND dep_seq >= ?2",
        )?;
        stmt.bind_all(&[Value::from(idx), Value::Integer(seq as i64)])?;
        let mut wrong = Vec::new();
        let mut twins = Vec::new();
        let device_id = self.known.devices.wire_id(idx);
        while let Some(row) = stmt.step()? {
            let op = (DeviceIdx(row.column_int(0)), row.column_int(1) as u64);
            let named: Vec<Dep> = (self.known.contexts.twins(op.0, op.1).unwrap_or_default())
                .into_iter()
                .filter(|d| d.0 == device_id && d.1 >= seq)
                .collect();
            if named.len() > 1 {
                twins.push((op, named));
                continue;
            }
            let dep_seq = row.column_int(2) as u64;
            let hash = row.column_blob(3)?.unwrap_or_default().to_vec();
            let history = self.history();
            let right = history.holds(idx, dep_seq)?
                && history.hash_at(idx, dep_seq)?.map(|h| h.to_vec()).as_ref() == Some(&hash);
            if !right {
                let hash: Hash = hash
                    .try_into()
                    .map_err(|_| Error::new("damaged dep hash"))?;
                wrong.push((DeviceIdx(row.column_int(0)), row.column_int(1), hash));
            }
        }
        drop(stmt);
        let root = self.known.devices.root(idx);
        for &((device, op_seq), ref named) in &twins {
            self.touch_from(device, op_seq)?;
            conn.exec(
                "DELETE FROM main._sync_deps WHERE device = ?1 AND seq = ?2 AND dep = ?3",
                &[
                    Value::from(device),
                    Value::Integer(op_seq as i64),
                    Value::from(idx),
                ],
            )?;
            for Dep(_, dep_seq, hash) in named {
                let history = self.history();
                let right =
                    history.holds(idx, *dep_seq)? && history.hash_at(idx, *dep_seq)? == Some(*hash);
                let dep = if right { idx } else { waiting(root, hash) };
                (self.known.contexts).add(device, op_seq, dep, *dep_seq, hash)?;
            }
        }
        for (device, seq, hash) in &wrong {
            // an op applied already had its context wrong: its rows and its device's later
            // ops' rows are settled again
            self.touch_from(*device, *seq as u64)?;
            conn.exec(
                "UPDATE OR REPLACE main._sync_deps SET dep = ?1 WHERE device = ?2 AND seq = ?3 AND dep = ?4",
                &[
                    Value::from(waiting(root, hash)),
                    Value::from(*device),
                    Value::Integer(*seq),
                    Value::from(idx),
                ],
            )?;
        }
        if !wrong.is_empty() || !twins.is_empty() {
            self.known.contexts.reload()?;
        }
        Ok(())
    }

    /// The history a dep (`root`'s device, `seq`, `hash`) names: where that op is held; for an
    /// op not held yet, none (`waiting`) until it arrives.
    pub(super) fn resolve_dep(
        &mut self,
        root: DeviceIdx,
        seq: u64,
        hash: &Hash,
    ) -> Result<DeviceIdx> {
        Ok(self.resolve_dep_taken(root, seq, hash)?.0)
    }

    /// `resolve_dep`, and whether the op it names was taken for the one held there unchecked
    /// (a compaction point's, or one removed): then the dep may name what another dep of its op,
    /// or its device's previous ops, named already (two histories of a device, held here as one).
    pub(super) fn resolve_dep_taken(
        &mut self,
        root: DeviceIdx,
        seq: u64,
        hash: &Hash,
    ) -> Result<(DeviceIdx, bool)> {
        if root == crate::schema::SELF {
            return Ok((root, false));
        }
        if let Some(held) = self.dep_below_point(root, seq) {
            // (but an op a point saw, held here in a history of its own: behind.rs
            // `seen_by_a_point`)
            if self.known.devices.is_forked(root) {
                if let Some(found) = self.flushed()?.history().locate(root, seq, hash)? {
                    return Ok((found, false));
                }
            }
            return Ok((held, true));
        }
        if !self.known.devices.is_forked(root) {
            if seq > self.applied_seq(root) {
                // `resolve_waiting` finds it once the bundle's ops are stored
                return Ok((waiting(root, hash), false));
            }
            if self.history().unhashable(root, seq)? {
                return Ok((root, true)); // removed by compaction: taken to be the op that was
            }
            let here =
                (self.hash_of_held(root, seq)?).ok_or_else(|| Error::new("a dep names no op"))?;
            return Ok((
                if here == *hash {
                    root
                } else {
                    waiting(root, hash)
                },
                false,
            ));
        }
        let history = self.flushed()?.history();
        if let Some(found) = history.locate(root, seq, hash)? {
            return Ok((found, false));
        }
        // (removed by compaction: the op that was, as above, where one history had it)
        let removed = history.taken(root, seq, hash)?;
        Ok(match removed.filter(|&idx| seq <= self.applied_seq(idx)) {
            Some(removed) => (removed, true),
            None => (waiting(root, hash), false),
        })
    }

    /// Itself, with every op queued for storing stored (to be read back).
    fn flushed(&mut self) -> Result<&mut Self> {
        self.reading.appender.flush()?;
        Ok(self)
    }

    /// Points deps that wait for a history (`resolve_dep`) at it, where it is held now.
    /// Returns whether it pointed any.
    pub(super) fn resolve_waiting(&mut self) -> Result<bool> {
        let conn = self.conn;
        let mut stmt = conn
            .prepare("SELECT device, seq, dep, dep_seq, hash FROM main._sync_deps WHERE dep < 0")?;
        let mut waiting = Vec::new();
        while let Some(row) = stmt.step()? {
            let hash: Option<Hash> = row.column_blob(4)?.and_then(|h| h.try_into().ok());
            let n = |i| row.column_int(i);
            waiting.push((DeviceIdx(n(0)), n(1), DeviceIdx(n(2)), n(3) as u64, hash));
        }
        drop(stmt);
        let mut found = false;
        let next_local = crate::log::last_local_seq(conn)? as u64 + 1;
        for (device, seq, dep, dep_seq, hash) in waiting {
            let Some(hash) = hash else { continue };
            let root = waited_for(dep);
            // (an op a compaction point decided: the one held there, behind.rs)
            let decided = self.dep_below_point(root, dep_seq);
            let history = self.history();
            let (held, taken) = match decided {
                Some(held) => (Some(held), true),
                // (removed by compaction, as a base just said: the op that was, where its hash
                // is not kept, as `resolve_dep` takes it)
                None if !self.known.devices.is_forked(root)
                    && dep_seq <= self.applied_seq(root)
                    && history.removed(root, dep_seq)? =>
                {
                    let unhashable = history.unhashable(root, dep_seq)?;
                    let same = unhashable || history.hash_at(root, dep_seq)? == Some(hash);
                    (same.then_some(root), unhashable)
                }
                None => match history.locate(root, dep_seq, &hash)? {
                    Some(found) => (Some(found), false),
                    // (removed by compaction where its device has two histories, as above)
                    None if self.known.devices.is_forked(root) => {
                        let removed = (history.taken(root, dep_seq, &hash)?)
                            .filter(|&idx| dep_seq <= self.applied_seq(idx));
                        (removed, removed.is_some())
                    }
                    None => (None, false),
                },
            };
            if let Some(idx) = held {
                self.touch_from(device, seq as u64)?;
                found = true;
                // (a dep on another history's op there, dropped: the op before it, behind.rs
                // `dep_of_another_history`)
                let wire = Dep(self.known.devices.wire_id(root), dep_seq, hash);
                let below = match decided {
                    Some(_) => self.dep_of_another_history(root, &wire)?,
                    None => None,
                };
                // (or, taken for the op held there, one its device's previous ops had seen: no
                // change point; the dep as written is kept, `store`)
                let written = device != SELF || (seq as u64) < next_local;
                let op = (device, seq as u64);
                let stays = match below {
                    Some(below) => self.lower_dep(op, dep, idx, below, written)?,
                    None if taken && self.names_already(device, seq as u64, idx, dep_seq)? => {
                        self.lower_dep(op, dep, idx, None, written)?
                    }
                    None => true,
                };
                if !stays {
                    continue;
                }
                // (where the op names that history already, as a fork's first context may, with
                // another dep that waited: the higher of the two stays; where an op's deps as
                // written name both, they are kept for what sends and hashes it, and are found
                // again by their hashes where the history splits, `recheck_deps`)
                self.keep_twins(device, seq as u64, idx, next_local)?;
                let params = [
                    Value::from(idx),
                    Value::from(device),
                    Value::Integer(seq),
                    Value::from(dep),
                ];
                conn.exec(
                    "DELETE FROM main._sync_deps WHERE device = ?2 AND seq = ?3 AND dep = ?1
                       AND dep_seq < (SELECT dep_seq FROM main._sync_deps
                                      WHERE device = ?2 AND seq = ?3 AND dep = ?4)",
                    &params,
                )?;
                conn.exec(
                    "DELETE FROM main._sync_deps WHERE device = ?2 AND seq = ?3 AND dep = ?4
                       AND EXISTS (SELECT 1 FROM main._sync_deps
                                   WHERE device = ?2 AND seq = ?3 AND dep = ?1)",
                    &params,
                )?;
                conn.exec(
                    "UPDATE main._sync_deps SET dep = ?1 WHERE device = ?2 AND seq = ?3 AND dep = ?4",
                    &params,
                )?;
            }
        }
        if found {
            self.known.contexts.reload()?;
        }
        Ok(found)
    }

    /// Looks again at the deps lowered as the bundle's ops were stored (store.rs): where the
    /// ops stored since, dropped as another history's, tell that the op a dep names left the
    /// history held here further down (log/strays.rs), lowers it there, as a device that knew
    /// them first did.
    pub(super) fn relower(&mut self) -> Result<()> {
        let mut lowered = std::mem::take(&mut self.reading.lowered);
        let mut any = false;
        for super::import::Lowered {
            op: (device, seq),
            root,
            idx,
            dep,
            stored,
        } in &mut lowered
        {
            let Some(below) = self.dep_of_another_history(*root, dep)? else {
                continue;
            };
            let Some((was, _)) = *stored else {
                continue; // (no change point: none lower)
            };
            if below == *stored {
                continue;
            }
            // (the change point stored for it, unless another dep of the op named that history
            // higher; none where its device's previous op had seen as much: a context only grows)
            let key = [
                Value::from(*device),
                Value::Integer(*seq as i64),
                Value::from(*idx),
                Value::Integer(was as i64),
            ];
            let seen = (*seq > 1).then(|| self.known.contexts.entry(*device, *seq - 1, *idx));
            match below {
                Some((at, link)) if seen.is_none_or(|seen| seen < at) => self.conn.exec(
                    "UPDATE main._sync_deps SET dep_seq = ?5, hash = ?6
                     WHERE device = ?1 AND seq = ?2 AND dep = ?3 AND dep_seq = ?4",
                    &[
                        &key[..],
                        &[Value::Integer(at as i64), Value::Blob(link.to_vec())],
                    ]
                    .concat(),
                )?,
                _ => self.conn.exec(
                    "DELETE FROM main._sync_deps
                     WHERE device = ?1 AND seq = ?2 AND dep = ?3 AND dep_seq = ?4",
                    &key,
                )?,
            };
            (*stored, any) = (below, true);
        }
        self.reading.lowered = lowered;
        if any {
            self.known.contexts.reload()?;
        }
        Ok(())
    }

    /// The change point of op `op` that waited on `dep` (a history's id awaited), found in
    /// history `idx`: lowered to `below` where it names another history's op a compaction
    /// point decided against (behind.rs `dep_of_another_history`: the op before it there), or
    /// dropped (false) where there is none below (an op 1, or an op taken for the one held
    /// there) or the op's device had seen it already. The deps as written are kept for what
    /// sends and hashes it, where it is `written` (this device's next op has none yet).
    fn lower_dep(
        &mut self,
        op: (DeviceIdx, u64),
        dep: DeviceIdx,
        idx: DeviceIdx,
        below: Option<(u64, Hash)>,
        written: bool,
    ) -> Result<bool> {
        let conn = self.conn;
        if written {
            let devices = &self.known.devices;
            let deps = remote::deps_of(&self.known.contexts, devices, op.0, op.1);
            self.known.contexts.add_twins(op.0, op.1, &deps)?;
        }
        let key = [
            Value::from(op.0),
            Value::Integer(op.1 as i64),
            Value::from(dep),
        ];
        let lowered = match below {
            Some((at, link)) if !self.names_already(op.0, op.1, idx, at)? => (at, link),
            _ => {
                let sql = "DELETE FROM main._sync_deps WHERE device = ?1 AND seq = ?2 AND dep = ?3";
                return conn.exec(sql, &key).map(|_| false);
            }
        };
        conn.exec(
            "UPDATE main._sync_deps SET dep_seq = ?4, hash = ?5
             WHERE device = ?1 AND seq = ?2 AND dep = ?3",
            &[
                key[0].clone(),
                key[1].clone(),
                key[2].clone(),
                Value::Integer(lowered.0 as i64),
                Value::Blob(lowered.1.to_vec()),
            ],
        )?;
        Ok(true)
    }

    /// Where op `seq` of `device` names history `idx` already, and a dep of it that waited is
    /// found there too: its deps as written, kept before the two are stored as one (not for a
    /// fork's first context, which no op wrote, nor for this device's next op, not written yet).
    fn keep_twins(
        &mut self,
        device: DeviceIdx,
        seq: u64,
        idx: DeviceIdx,
        next_local: u64,
    ) -> Result<()> {
        let forked_at = self.known.devices.fork(device).map_or(0, |f| f.1);
        if seq <= forked_at
            || (device == SELF && seq >= next_local)
            || self.known.contexts.twins(device, seq).is_some()
        {
            return Ok(());
        }
        if self.names(device, seq, idx, 0)? {
            let deps =
                crate::log::remote::deps_of(&self.known.contexts, &self.known.devices, device, seq);
            self.known.contexts.add_twins(device, seq, &deps)?;
        }
        Ok(())
    }

    /// Whether op `seq` of `device` names history `idx` at `dep_seq` or above already: in
    /// another dep, or in its device's previous ops' context.
    fn names_already(
        &mut self,
        device: DeviceIdx,
        seq: u64,
        idx: DeviceIdx,
        dep_seq: u64,
    ) -> Result<bool> {
        // (a change point there below `dep_seq` is not one: a fork's first context, copied
        // from its parent's op before a bundle stated that removed op's context, may name the
        // history lower; the higher of the two stays, `resolve_waiting`)
        Ok(self.names(device, seq, idx, dep_seq)?
            || (seq > 1 && self.known.contexts.entry(device, seq - 1, idx) >= dep_seq))
    }

    /// Whether the stored change points of op `seq` of `device` name history `idx`, at `least`
    /// or above.
    fn names(&self, device: DeviceIdx, seq: u64, idx: DeviceIdx, least: u64) -> Result<bool> {
        let named = self.conn.query_value(
            "SELECT 1 FROM main._sync_deps WHERE device = ?1 AND seq = ?2 AND dep = ?3
               AND dep_seq >= ?4",
            &[
                Value::from(device),
                Value::Integer(seq as i64),
                Value::from(idx),
                Value::Integer(least as i64),
            ],
        )?;
        Ok(named.is_some())
    }

    /// The history (and seq) a peer's clock entry (`root`'s device, `seq`, `hash`) names, if
    /// it is held here or may be (an op beyond what is held of the device's only history).
    pub(super) fn resolve_entry(
        &mut self,
        root: DeviceIdx,
        seq: u64,
        hash: &Hash,
    ) -> Result<Option<DeviceIdx>> {
        let history = self.history();
        if !self.known.devices.is_forked(root) {
            if seq > self.held_seq(root)? || history.unhashable(root, seq)? {
                return Ok(Some(root)); // (an op removed by compaction: taken to be the op that was)
            }
            let held = match self.hash_of_held(root, seq) {
                Ok(held) => held,
                // (an op above one removed whose hash was not kept: the same)
                Err(_) if !self.history().chain_held(root, seq)? => return Ok(Some(root)),
                Err(e) => return Err(e),
            };
            return Ok((held.as_ref() == Some(hash)).then_some(root));
        }
        history.locate(root, seq, hash)
    }

    /// `resolve_entry` for what a device said (or a bundle said of one) it has, taken only where
    /// this device holds the op the entry names: an entry above that is not checked, and may be
    /// another history's (a backup put back writes other ops at its seqs).
    pub(super) fn resolve_held_entry(
        &mut self,
        root: DeviceIdx,
        seq: u64,
        hash: &Hash,
    ) -> Result<Option<DeviceIdx>> {
        let Some(idx) = self.resolve_entry(root, seq, hash)? else {
            return Ok(None);
        };
        Ok((seq <= self.held_seq(idx)?).then_some(idx))
    }

    /// The hash of op `seq` of history `root`, held here (`History::hash_at`), found once per
    /// import: an op's deps and its bundle's clock name the same ops. Whether it is kept as a
    /// checkpoint is noted for `record` (`kept_as`).
    fn hash_of_held(&mut self, root: DeviceIdx, seq: u64) -> Result<Option<Hash>> {
        if let Some(&(known, _)) = self.reading.dep_hashes.get(&(root, seq)) {
            return Ok(Some(known));
        }
        let found = self.flushed()?.history().hash_and_kept(root, seq)?;
        if let Some(found) = found {
            self.reading.dep_hashes.insert((root, seq), found);
        }
        Ok(found.map(|(hash, _)| hash))
    }

    /// Whether op `seq` of history `idx` is kept as a checkpoint with `hash` (as `hash_of_held`
    /// found it): `chain::remember` would write nothing.
    pub(super) fn kept_as(&self, idx: DeviceIdx, seq: u64, hash: &Hash) -> bool {
        self.reading.dep_hashes.get(&(idx, seq)) == Some(&(*hash, true))
    }
}

/// Whether two of an op's deps name one history (`deps`: the history each names, or its
/// device's id): they are stored as one (contexts are per history), so the op as stored no
/// longer hashes as written. Deps on two histories of a device that a compaction point took
/// for the one held there (behind.rs) are. (Most ops have one dep or none: no set is made.)
pub(super) fn twin_deps<D: Eq + std::hash::Hash>(deps: impl ExactSizeIterator<Item = D>) -> bool {
    if deps.len() < 2 {
        return false;
    }
    let mut seen = crate::hashed::HashSet::default();
    deps.into_iter().any(|d| !seen.insert(d))
}

/// The hash of `op` after the op whose hash is `prev`.
pub(super) fn op_hash(op: &Packed, form: &Form, prev: Option<&Hash>) -> Hash {
    let mut out = Vec::new();
    form.write_canonical(&mut out, &op.head(prev), &op.values);
    crate::op::link(&crate::op::hash(&out))
}
