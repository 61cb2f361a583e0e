//! Causal delivery: which stored ops can be applied, and the check of their clocks.
//!
//! Invariant: an op is applied only when every op in its causal context is; and then only if its
//! clock is one a device writes (its Lamport time one above the greatest in its causal past, its
//! change points above its previous op's context). A false op in the bundle being imported
//! refuses the bundle; one stored pending by an earlier import is dropped, so that its true copy
//! can still arrive.

use super::import::Import;
use crate::db::{Error, Result};
use crate::log::clock::Clock;
use crate::log::remote::Stored;
use crate::schema::{DeviceIdx, SELF};
use crate::value::{hex, Value};

impl Import<'_> {
    /// The Lamport time, form id and values of pending op (`device`, `seq`).
    pub(super) fn pending_op(
        &mut self,
        device: DeviceIdx,
        seq: u64,
    ) -> Result<Option<(u64, i64, Vec<Value>)>> {
        let row = self.query_row(
            "SELECT lamport, form, vals FROM main._sync_remote
             WHERE device = ?1 AND seq = ?2 AND applied = 0",
            &[Value::from(device), Value::Integer(seq as i64)],
        )?;
        let Some(row) = row else { return Ok(None) };
        let stored = Stored::from_row(&row)?;
        let (_, values) = self.known.forms.values(&stored)?;
        Ok(Some((stored.lamport, stored.form, values)))
    }

    /// Applies every stored op that can be, deps on ops their writer removed included: such
    /// a dep is taken once delivery passes over the op (removed.rs `skip_removed`), so a
    /// device that joins late applies the ops after it from the same bundle.
    pub(super) fn deliver_all(&mut self) -> Result<()> {
        self.deliver()?;
        while self.resolve_waiting()? {
            self.deliver()?;
        }
        Ok(())
    }

    /// Applies every stored op whose causal context is applied, until none is left that can be.
    pub(super) fn deliver(&mut self) -> Result<()> {
        let conn = self.conn;
        let devices: Vec<DeviceIdx> = {
            let mut stmt = conn.prepare(
                "SELECT DISTINCT device FROM main._sync_remote WHERE applied = 0 ORDER BY device",
            )?;
            let mut v = Vec::new();
            while let Some(row) = stmt.step()? {
                v.push(DeviceIdx(row.column_int(0)));
            }
            v
        };
        loop {
            let mut progress = false;
            for &device in &devices {
                loop {
                    if self.skip_removed(device)? {
                        progress = true;
                    }
                    let seq = self.clocks.clock.get(&device).copied().unwrap_or(0) + 1;
                    if !self.deliverable(device, seq) {
                        break;
                    }
                    let Some((lamport, form_id, values)) = self.pending_op(device, seq)? else {
                        break;
                    };
                    let deps = self.known.contexts.delta(device, seq);
                    let deps: Vec<(DeviceIdx, u64)> =
                        deps.iter().map(|&(d, s, _)| (d, s)).collect();
                    if let Some(fault) = self.clock_fault(device, seq, lamport, &deps)? {
                        if !self.stored_before(device, seq) {
                            let id = hex(&self.known.devices.id(device));
                            return Err(Error::new(format!(
                                "op seq {seq} of device {}: {fault}",
                                &id[..8]
                            )));
                        }
                        self.discard(device, seq)?;
                        break;
                    }
                    self.run(
                        "UPDATE main._sync_remote SET applied = 1 WHERE device = ?1 AND seq = ?2",
                        &[Value::from(device), Value::Integer(seq as i64)],
                    )?;
                    self.applied(device, seq, lamport, form_id, values)?;
                    progress = true;
                }
            }
            if !progress {
                return Ok(());
            }
        }
    }

    /// Why op `seq` of `device` (with Lamport time `lamport` and change points `deps`) cannot be
    /// as its writer wrote it, judged when its whole causal past is applied. A writer's clock
    /// only moves forward: each change point is above the previous op's context, and the Lamport
    /// time is one more than the greatest in its causal past (its previous op's, and those of the
    /// ops its change points name), as every device assigns it.
    pub(super) fn clock_fault(
        &mut self,
        device: DeviceIdx,
        seq: u64,
        lamport: u64,
        deps: &[(DeviceIdx, u64)],
    ) -> Result<Option<String>> {
        // (an op compaction removed has no Lamport time here: a clock whose past holds one can
        // be found to go backwards, not to jump)
        let mut unknown = false;
        // (the first op of a history that left a compaction point's lineage, behind.rs, follows
        // its own op there, not the one held: its Lamport time is not known here)
        let left = self
            .known
            .devices
            .fork(device)
            .is_some_and(|f| f.1 + 1 == seq)
            && self.history().detached(device)?;
        // (an op whose deps are stored otherwise than written, `_sync_twins`: a dep on another
        // history's op that a compaction point decided against is stored as the op before it,
        // behind.rs `dep_of_another_history`, below what its writer had seen)
        unknown |= self.known.contexts.twins(device, seq).is_some();
        let mut past = if left {
            unknown = true;
            0
        } else if seq > 1 {
            let known = self.lamport_of(device, seq - 1)?;
            unknown |= known.is_none();
            known.unwrap_or(0)
        } else {
            0
        };
        for &(dep, dep_seq) in deps {
            let before = self.known.contexts.entry_once(device, seq - 1, dep);
            // (an op a compaction point took for the one held there, behind.rs: the dep may
            // say nothing new, and the op's Lamport time may be above or below what is held
            // there: the op it named may be another, written before the one held)
            let root = self.known.devices.root(dep);
            if self.dep_below_point(root, dep_seq).is_some() {
                unknown = true;
                continue;
            }
            let devices = &self.known.devices;
            let forked_there = || {
                (devices.children(dep).iter())
                    .any(|&c| devices.fork(c).is_some_and(|f| f.1 == dep_seq))
            };
            if dep_seq == before && forked_there() {
                // (the op a history of that device forks after, which the previous op saw as
                // that history's: its writer held the two otherwise, and named the first one
                // here as new; the change point says nothing new here)
                unknown = true;
                continue;
            }
            if dep_seq <= before {
                return Ok(Some(format!(
                    "its clock goes backwards: it names op {dep_seq} of device {} as new, \
                     while its previous op had seen op {before}",
                    self.known.devices.named(dep)
                )));
            }
            let known = self.lamport_of(dep, dep_seq)?;
            unknown |= known.is_none();
            past = past.max(known.unwrap_or(0));
        }
        Ok(match lamport.cmp(&(past + 1)) {
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Greater if unknown => None,
            std::cmp::Ordering::Less => Some(format!(
                "its clock goes backwards: Lamport time {lamport}, not above {past} of its causal past"
            )),
            std::cmp::Ordering::Greater => Some(format!(
                "its clock jumps: Lamport time {lamport}, where its causal past gives {}",
                past + 1
            )),
        })
    }

    /// The Lamport time of applied op `seq` of `device` (None: removed by compaction).
    fn lamport_of(&mut self, device: DeviceIdx, seq: u64) -> Result<Option<u64>> {
        // a second history shares the ops of the one it forked from up to its fork
        if let Some((parent, base)) = self.known.devices.fork(device) {
            if seq <= base {
                return self.lamport_of(parent, seq);
            }
        }
        if device == SELF {
            return Ok(Some(self.known.local.lamport(seq)));
        }
        if let Some(&(tip, lamport)) = self.clocks.tips.get(&device) {
            if tip == seq {
                return Ok(Some(lamport));
            }
        }
        if let Some(&lamport) = self.clocks.lamports.get(&(device, seq)) {
            return Ok(Some(lamport));
        }
        self.reading.appender.flush()?;
        let row = self.query_row(
            "SELECT lamport FROM main._sync_remote WHERE device = ?1 AND seq = ?2",
            &[Value::from(device), Value::Integer(seq as i64)],
        )?;
        match row.as_deref() {
            Some([Value::Integer(lamport)]) => {
                self.clocks.lamports.insert((device, seq), *lamport as u64);
                Ok(Some(*lamport as u64))
            }
            _ if self.history().removed(device, seq)? => Ok(None),
            // (removed by the bundle's writer, as its base says: taken as such once the
            // bundle's ops are stored, removed.rs `take_base`)
            _ if self.in_base(device, seq) => Ok(None),
            _ => Err(Error::new(format!(
                "received op {seq} of device {} is missing",
                self.known.devices.named(device)
            ))),
        }
    }

    /// Discards a pending copy of op `seq` of `device`, stored by an earlier import, whose
    /// clock is false now that its causal past is applied (a true copy is arriving).
    pub(super) fn drop_false_copy(&mut self, device: DeviceIdx, seq: u64) -> Result<()> {
        if !self.stored_before(device, seq) {
            return Ok(());
        }
        if let Some((lamport, _, _)) = self.pending_op(device, seq)? {
            let deps = self.known.contexts.delta(device, seq);
            let deps: Vec<(DeviceIdx, u64)> = deps.iter().map(|&(d, s, _)| (d, s)).collect();
            if self.clock_fault(device, seq, lamport, &deps)?.is_some() {
                self.discard(device, seq)?;
            }
        }
        Ok(())
    }

    /// Drops the copies of `op`, placed in history `device`, that another history of its device
    /// holds pending where it does not hold the op before it: stored there before the
    /// device's histories split (`split_from` moves the ops held pending with the history
    /// they were in, not knowing which one they follow), they would wait for good for an op
    /// that history does not have, and so would the ops that name them. The same op is one
    /// op: its place is `device`'s.
    pub(super) fn drop_misplaced(
        &mut self,
        device: DeviceIdx,
        op: &crate::bundle::Packed,
        form: &crate::form::Form,
    ) -> Result<()> {
        let devices = &self.known.devices;
        let others: Vec<DeviceIdx> = (devices.histories(devices.root(device)).into_iter())
            .filter(|&h| h != device && op.seq > self.applied_seq(h) + 1)
            .collect();
        for other in others {
            self.reading.appender.flush()?;
            if self.history().holds(other, op.seq - 1)? || self.pending_op(other, op.seq)?.is_none()
            {
                continue;
            }
            if self.stored_same(other, op, form)? == Some(true) {
                self.discard(other, op.seq)?;
                // (the ops that named the copy name the op where it is)
                self.run(
                    "UPDATE OR REPLACE main._sync_deps SET dep = ?1 WHERE dep = ?2 AND dep_seq = ?3",
                    &[Value::from(device), Value::from(other), Value::Integer(op.seq as i64)],
                )?;
                self.known.contexts.reload()?;
            }
        }
        Ok(())
    }

    /// Whether the bundle's base says its writer removed op `seq` of history `device`.
    fn in_base(&self, device: DeviceIdx, seq: u64) -> bool {
        let id = self.known.devices.wire_id(device);
        (self.reading.base.values()).any(|b| b.device == id && b.from < seq && seq <= b.upto)
    }

    /// Whether op `seq` of `device` was stored pending by an earlier import.
    fn stored_before(&self, device: DeviceIdx, seq: u64) -> bool {
        self.clocks
            .pending_before
            .get(&device)
            .is_some_and(|runs| runs.iter().any(|&(lo, hi)| lo <= seq && seq <= hi))
    }

    /// Drops a pending op stored by an earlier import whose clock turned out false once its
    /// causal past arrived: no device writes such an op, and keeping it would refuse every
    /// true copy of it as differing. The ops after it wait for a true copy.
    pub(super) fn discard(&mut self, device: DeviceIdx, seq: u64) -> Result<()> {
        self.run(
            "DELETE FROM main._sync_remote WHERE device = ?1 AND seq = ?2",
            &[Value::from(device), Value::Integer(seq as i64)],
        )?;
        // hashes learnt with it may belong to its false history
        self.run(
            "DELETE FROM main._sync_hashes WHERE device = ?1 AND seq >= ?2",
            &[Value::from(device), Value::Integer(seq as i64)],
        )?;
        self.known.contexts.forget(self.conn, device, seq)?;
        self.outcome.discarded += 1;
        Ok(())
    }

    /// Whether op `seq` of `device`, not yet stored, has its whole context applied here, when
    /// op `seq - 1` of its device is applied: then the rest of its context was applied with that
    /// op (clocks only grow), and its own change points (`deps`) are what is left to check. (So
    /// the check costs its deps, not the whole context: in a fleet of many devices the context
    /// names them all.)
    pub(super) fn deliverable_after_previous(&self, deps: &[(DeviceIdx, u64)]) -> bool {
        (deps.iter()).all(|(dep, need)| self.clocks.clock.get(dep).copied().unwrap_or(0) >= *need)
    }

    /// Where op `seq` is the first of history `device`, forked after op `seq - 1` of another:
    /// whether the context the history took there (that op, and what it had seen) is applied.
    /// (The history's own clock starts at the fork, so "op `seq - 1` is applied" says nothing
    /// of it: the op it forked after may still wait, pending, for its own deps.)
    pub(super) fn fork_applied(&self, device: DeviceIdx, seq: u64) -> bool {
        match self.known.devices.fork(device) {
            Some((_, base)) if base + 1 == seq => self.deliverable(device, base),
            _ => true,
        }
    }

    /// Every entry of op `seq` of `device`'s context is applied here.
    pub(super) fn deliverable(&self, device: DeviceIdx, seq: u64) -> bool {
        self.covers(&self.known.contexts.context(device, seq))
    }

    /// The applied clock covers `context`.
    fn covers(&self, context: &Clock) -> bool {
        context
            .iter()
            .all(|(dep, &need)| self.clocks.clock.get(dep).copied().unwrap_or(0) >= need)
    }
}
