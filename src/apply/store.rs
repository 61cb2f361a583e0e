//! Storing a bundle's ops: each op placed in its device's history (histories.rs), checked against
//! the op held here under the same device and seq, and kept pending until delivery; then what
//! the import learned recorded: the change points of this device's next op, the bundle's id and
//! what its source has.

use crate::bundle::{Packed, Prev, Reader};
use crate::db::{Error, Result};
use crate::form::Form;
use crate::hashed::HashMap;
use crate::log;
use crate::log::chain::{self, History};
use crate::log::clock;
use crate::log::remote;
use crate::schema::{DeviceIdx, SELF};
use crate::value::Value;

use super::checks::{same_op, two_histories};
use super::histories::Placed;
use super::import::Import;

impl<'a> Import<'a> {
    /// Stores one op of the bundle (pending), unless it is here already.
    pub(super) fn store(&mut self, op: Packed, number: usize, form: &Form) -> Result<()> {
        let root = self.known.devices.idx_or_add(self.conn, &op.device)?;
        if root == SELF {
            if self.history().removed(SELF, op.seq)? {
                // removed here by compaction: taken to be the op that was (compact/remove.rs)
                self.outcome.duplicates += 1;
                return self.mark(None);
            }
            if let Prev::Stated(prev) = op.prev {
                self.check_prev(SELF, &op, &prev)?;
            }
            self.mark(Some((SELF, op.seq)))?;
            return self.own_duplicate(&op, form);
        }
        let placed = self.place(root, &op, form)?;
        if let (Some(seen), Placed::At(d) | Placed::Duplicate(d)) =
            (self.reading.seen.take(), &placed)
        {
            self.name_seen(*d, &seen)?;
        }
        if let (Placed::At(d) | Placed::Duplicate(d) | Placed::Below(d), false) =
            (&placed, self.reading.base.is_empty())
        {
            let prev = match op.prev {
                Prev::Stated(prev) => Some(prev),
                _ => None,
            };
            self.reading
                .carried
                .entry(*d)
                .or_default()
                .insert(op.seq, prev);
        }
        if let Placed::At(device) | Placed::Duplicate(device) = placed {
            if self
                .known
                .devices
                .is_forked(self.known.devices.root(device))
            {
                self.drop_misplaced(device, &op, form)?;
            }
        }
        let device = match placed {
            Placed::At(device) => device,
            Placed::Duplicate(device) | Placed::Below(device) => {
                self.reading.stream_at = Some((op.device, op.seq, device));
                self.outcome.duplicates += 1;
                // (the hash of an op taken for a removed one, unchecked, is not kept)
                let held = matches!(placed, Placed::Duplicate(_));
                self.mark(held.then_some((device, op.seq)))?;
                if held {
                    // (held, and maybe pending: the op before it may be one the base explains)
                    self.after_removed(device, &op)?;
                }
                return Ok(());
            }
            Placed::Dropped => {
                // another history's op where a compaction point decides (behind.rs)
                self.reading.stream_at = None;
                self.outcome.discarded += 1;
                return self.mark(None);
            }
            Placed::Unplaced => {
                // the op before it is not held here: the sender sends it again once this
                // device's clock tells it what is held here
                self.reading.stream_at = None;
                self.outcome.discarded += 1;
                return self.mark(None);
            }
        };
        self.reading.stream_at = Some((op.device, op.seq, device));
        self.mark(Some((device, op.seq)))?;
        self.after_removed(device, &op)?;
        let form_id = self.form_id(number, form)?;
        let mut vals = Vec::with_capacity(64);
        Form::pack(&op.values, &mut vals)?;
        let mut deps = Vec::with_capacity(op.deps.len());
        let mut taken = false;
        let mut rewritten = false;
        for dep in &op.deps {
            let root = self.known.devices.idx_or_add(self.conn, &dep.0)?;
            let (idx, unchecked) = self.resolve_dep_taken(root, dep.1, &dep.2)?;
            taken |= unchecked;
            if unchecked {
                if let Some(below) = self.dep_of_another_history(root, dep)? {
                    // (it saw the ops of the history held here before that op, not that op;
                    // the bundle's ops after it may tell where that op's history left the one
                    // held here: looked at again once they are stored, `relower`)
                    deps.extend(below.map(|(seq, hash)| (idx, seq, hash)));
                    (self.reading.lowered).push(super::import::Lowered {
                        op: (device, op.seq),
                        root,
                        idx,
                        dep: *dep,
                        stored: below,
                    });
                    rewritten = true;
                    continue;
                }
            }
            deps.push((idx, dep.1, dep.2));
        }
        // a dep taken for an op held here may name what the device's previous ops had seen:
        // no change point (a context only grows)
        let before = deps.len();
        if taken && op.seq > 1 {
            let contexts = &self.known.contexts;
            deps.retain(|&(d, s, _)| d.0 < 0 || contexts.entry(device, op.seq - 1, d) < s);
        }
        let plain: Vec<(DeviceIdx, u64)> = deps.iter().map(|&(d, s, _)| (d, s)).collect();
        if rewritten
            || deps.len() < before
            || super::histories::twin_deps(deps.iter().map(|&(d, _, _)| d))
        {
            // (deps stored as fewer: the op's deps and hash, as written, are kept for what
            // sends and hashes it)
            self.known.contexts.add_twins(device, op.seq, &op.deps)?;
            if let Some(hash) = self.wire_hash(device, &op, form)? {
                chain::remember(self.conn, device, op.seq, &hash)?;
            }
        }
        // in the usual case the op is next in line: apply it now, without reading it back
        let now = self.applied_seq(device) + 1 == op.seq
            && self.deliverable_after_previous(&plain)
            && self.fork_applied(device, op.seq);
        if !(self.reading.appender).store(device, op.seq, op.lamport, now, form_id, vals)? {
            self.outcome.duplicates += 1; // here already, pending (and the same: `place`)
            return Ok(());
        }
        for (dep, dep_seq, hash) in &deps {
            self.known
                .contexts
                .add(device, op.seq, *dep, *dep_seq, hash)?;
        }
        if now {
            if let Some(fault) = self.clock_fault(device, op.seq, op.lamport, &plain)? {
                return Err(Error::new(fault));
            }
            self.applied(device, op.seq, op.lamport, form_id, op.values)?;
        }
        Ok(())
    }

    /// Where a run of a device's ops starts in the bundle: when op seq - 1 is here, the op's
    /// prev must be its hash, or the bundle holds another history of the device's id.
    pub(super) fn check_prev(
        &mut self,
        device: DeviceIdx,
        op: &Packed,
        prev: &crate::op::Hash,
    ) -> Result<()> {
        let below = op.seq - 1;
        let held = match device {
            SELF => self.local_last()?,
            _ => self.clocks.clock.get(&device).copied().unwrap_or(0),
        };
        if below > held {
            return Ok(()); // not here yet (it waits, pending, for the ops below it)
        }
        self.reading.appender.flush()?;
        if self.history().unhashable(device, below)? {
            return Ok(()); // removed by compaction: the op before it cannot be compared
        }
        if self.history().hash_at(device, below)?.as_ref() != Some(prev) {
            return Err(Error::new(two_histories("its op", op.seq, &op.device)));
        }
        Ok(())
    }

    /// The last op this device wrote.
    pub(super) fn local_last(&self) -> Result<u64> {
        Ok(log::last_local_seq(self.conn)? as u64)
    }

    /// What rebuilds the ops held here, to hash them (log/chain.rs).
    pub(super) fn history(&self) -> History<'_, 'a> {
        History {
            conn: self.conn,
            devices: &self.known.devices,
            contexts: &self.known.contexts,
            local: &self.known.local,
            forms: &self.known.forms,
            keep: true,
        }
    }

    /// The `_sync_forms` id of form `number` of the bundle.
    pub(super) fn form_id(&mut self, number: usize, form: &Form) -> Result<i64> {
        if let Some(Some(id)) = self.reading.bundle_forms.get(number) {
            return Ok(*id);
        }
        let id = self.known.forms.id_of(self.conn, form)?;
        if self.reading.bundle_forms.len() <= number {
            self.reading.bundle_forms.resize(number + 1, None);
        }
        self.reading.bundle_forms[number] = Some(id);
        Ok(id)
    }

    /// Counts one of this device's own ops coming back, after checking it is the op this
    /// device wrote (a fork before the import made sure this device wrote every seq it gets).
    pub(super) fn own_duplicate(&mut self, op: &Packed, form: &Form) -> Result<()> {
        let mine = self.known.local.get(self.conn, op.seq)?;
        let lamport = self.known.local.lamport(op.seq);
        let mine = crate::op::Op {
            device: op.device,
            seq: op.seq,
            lamport,
            deps: Vec::new(),
            table: mine.table,
            kind: mine.kind,
            key: mine.key,
            cells: mine.cells,
            decl: mine.decl,
        };
        let my_form = Form::of(&mine);
        let deps = remote::deps_of(&self.known.contexts, &self.known.devices, SELF, op.seq);
        let same = same_op(op, form, &my_form, lamport, &my_form.values_of(mine), &deps);
        self.count_duplicate(op, same)
    }

    /// Counts an op already here when it is the same op (`same`); refuses it otherwise.
    pub(super) fn count_duplicate(&mut self, op: &Packed, same: bool) -> Result<()> {
        if !same {
            return Err(Error::new(two_histories("its op", op.seq, &op.device)));
        }
        self.outcome.duplicates += 1;
        Ok(())
    }

    /// Stores the new clock, this device's next context and Lamport epoch, before rows are
    /// settled: a write the import makes as this device's own (a foreign-key action) follows
    /// every op it applied.
    pub(super) fn record_context(&mut self) -> Result<()> {
        let conn = self.conn;
        // (only what this run changed: the rest is stored, and the next local op has seen it)
        let grew: clock::Clock = (self.clocks.clock.iter())
            .filter(|&(d, s)| self.clocks.stored.get(d) != Some(s))
            .map(|(&d, &s)| (d, s))
            .collect();
        clock::store_applied(conn, &grew)?;
        let last_local = self.clocks.clock.get(&SELF).copied().unwrap_or(0);
        self.reading.appender.flush()?;
        // an entry this device's next op has not seen yet (the ops of a history that forked
        // from another are not new to it when it had seen them under that other history), and
        // one a history merged back raised (stored at once: `Clocks::raised`)
        let next = last_local + 1;
        let mut outgrown = grew;
        // a dep of this device's next op (not written yet) that waits for an op not held here,
        // which this import or an earlier one dropped, names what that op cannot have seen: it
        // goes, and that device's histories are named as far as they are applied here
        for root in self.unwritten_waits(next)? {
            for d in self.known.devices.histories(root) {
                if let Some(&seq) = self.clocks.clock.get(&d) {
                    outgrown.entry(d).or_insert(seq);
                }
            }
        }
        for d in std::mem::take(&mut self.clocks.raised) {
            if let Some(&seq) = self.clocks.clock.get(&d) {
                outgrown.entry(d).or_insert(seq);
            }
        }
        let changed: Vec<(DeviceIdx, u64)> = (outgrown.iter())
            .filter(|&(&d, _)| d != SELF && !self.known.devices.implied(&self.clocks.clock, d))
            .filter(|&(&d, &seq)| seq > self.known.contexts.entry_once(SELF, next, d))
            .map(|(&d, &seq)| (d, seq))
            .collect();
        for (device, seq) in changed {
            let hash = (self.history().hash_at(device, seq)?)
                .ok_or_else(|| Error::new("an applied clock entry names no op"))?;
            chain::remember(conn, device, seq, &hash)?;
            self.known
                .contexts
                .add(SELF, last_local + 1, device, seq, &hash)?;
        }
        // (where this import dropped ops, one of them may have had the highest Lamport time
        // known, which no op held here has seen now: the next local op's follows the ops
        // held, its causal past, as its peers compute it, delivery.rs `clock_fault`)
        let dropped = self.reading.dropped;
        if dropped {
            let held = conn.query_value(
                "SELECT max(lamport) FROM main._sync_remote WHERE applied = 1",
                &[],
            )?;
            self.clocks.lamport = held.and_then(|v| v.as_i64()).unwrap_or(0) as u64;
        }
        let lamport = self
            .clocks
            .lamport
            .max(self.known.local.lamport(last_local));
        crate::schema::set_state(conn, "lamport", self.clocks.lamport)?;
        conn.exec(
            match dropped {
                true => {
                    "INSERT INTO main._sync_epochs(local_seq, lamport) VALUES (?1, ?2)
                     ON CONFLICT(local_seq) DO UPDATE SET lamport = excluded.lamport"
                }
                false => {
                    "INSERT INTO main._sync_epochs(local_seq, lamport) VALUES (?1, ?2)
                     ON CONFLICT(local_seq) DO UPDATE SET lamport = max(lamport, excluded.lamport)"
                }
            },
            &[
                Value::Integer(last_local as i64),
                Value::Integer(lamport as i64),
            ],
        )?;
        match dropped {
            true => self.known.local.epochs_changed(),
            false => self.known.local.note_epoch(last_local, lamport),
        }
        self.clocks.stored = self.clocks.clock.clone();
        Ok(())
    }

    /// Takes out the deps of this device's next op, `next`, that wait for an op not held here
    /// (`resolve_waiting` has run: none is held); returns the devices (first histories) they
    /// waited for.
    fn unwritten_waits(&mut self, next: u64) -> Result<Vec<DeviceIdx>> {
        let params = [Value::from(SELF), Value::Integer(next as i64)];
        // (asked at every import: a statement of the import's cache)
        let stmt = self.cached(
            "SELECT DISTINCT dep FROM main._sync_deps WHERE device = ?1 AND seq = ?2 AND dep < 0",
            &params,
        )?;
        let mut roots = Vec::new();
        let read = (|| {
            while let Some(row) = stmt.step()? {
                roots.push(clock::waited_for(DeviceIdx(row.column_int(0))));
            }
            Ok(())
        })();
        stmt.reset();
        read?;
        if roots.is_empty() {
            return Ok(Vec::new());
        }
        self.run(
            "DELETE FROM main._sync_deps WHERE device = ?1 AND seq = ?2 AND dep < 0",
            &params,
        )?;
        self.known.contexts.reload()?;
        roots.sort_unstable();
        roots.dedup();
        Ok(roots)
    }

    /// Whether any of `claims` about ops of this device's id, (seq, hash), names an op this
    /// device did not write: one beyond its log, or another under one of its seqs. The claims
    /// found true are kept as checkpoints of its hash chain (the next export to that peer
    /// starts there).
    pub(super) fn own_history_differs(
        &mut self,
        claims: &[(u64, crate::op::Hash)],
    ) -> Result<bool> {
        if claims.is_empty() {
            return Ok(false);
        }
        let last = self.local_last()?;
        if claims.iter().any(|&(seq, _)| seq > last) {
            return Ok(true);
        }
        let mut seen = crate::hashed::HashSet::default();
        for &(seq, hash) in claims {
            if !seen.insert((seq, hash)) || self.history().unhashable(SELF, seq)? {
                continue; // (an op removed by compaction cannot be compared)
            }
            if self.history().hash_at(SELF, seq)? != Some(hash) {
                return Ok(true);
            }
            chain::remember(self.conn, SELF, seq, &hash)?;
        }
        Ok(false)
    }

    /// Counts one op of the bundle as read; records its hash as a checkpoint (log/chain.rs) if the
    /// bundle's first reading marked it, now that it is held in history `device`.
    pub(super) fn mark(&mut self, device: Option<(DeviceIdx, u64)>) -> Result<()> {
        self.reading.ordinal += 1;
        while self
            .reading
            .marks
            .last()
            .is_some_and(|m| m.0 < self.reading.ordinal)
        {
            self.reading.marks.pop();
        }
        if let (Some((device, seq)), Some(&(n, hash))) = (device, self.reading.marks.last()) {
            if n == self.reading.ordinal {
                chain::remember(self.conn, device, seq, &hash)?;
            }
        }
        Ok(())
    }

    /// Keeps what the bundle's writer said every device it knew has (log/stable.rs): each entry
    /// placed in the history it names here (one this device cannot place teaches nothing).
    fn learn_stable(&mut self, manifest: &crate::bundle::Manifest) -> Result<()> {
        use crate::log::stable;
        let mut knew: crate::hashed::HashSet<crate::op::DeviceId> =
            (manifest.clock.iter()).map(|e| e.0).collect();
        knew.extend(manifest.knows.iter().copied());
        knew.insert(manifest.source);
        if manifest.stable.is_empty() || !stable::knew_every_device(&self.known.devices, &knew) {
            return Ok(());
        }
        // only entries above what was taught before are placed (placing one may hash ops)
        let taught = stable::taught(self.conn, &self.known.devices)?;
        let mut placed = Vec::new();
        for (id, seq, hash) in &manifest.stable {
            let Some(root) = self.known.devices.idx(id) else {
                continue;
            };
            let before = (self.known.devices.histories(root).iter())
                .filter_map(|h| taught.get(h).map(|e| e.0))
                .max()
                .unwrap_or(0);
            if *seq <= before {
                continue;
            }
            if let Some(device) = self.resolve_held_entry(root, *seq, hash)? {
                placed.push((device, *seq, *hash));
            }
        }
        stable::learn(self.conn, &self.known.devices, &placed)
    }

    /// Puts what a device has of history `idx`, `entry` (seq, link), into `known`, with what
    /// it has of the histories it forked from: their ops up to where it forked.
    fn with_forked_from(
        &self,
        mut idx: DeviceIdx,
        mut entry: (u64, Option<crate::op::Hash>),
        known: &mut HashMap<DeviceIdx, (u64, Option<crate::op::Hash>)>,
    ) -> Result<()> {
        loop {
            let slot = known.entry(idx).or_insert(entry);
            if slot.0 < entry.0 {
                *slot = entry;
            }
            let Some((parent, base)) = self.known.devices.fork(idx) else {
                return Ok(());
            };
            if self.history().detached(idx)? {
                return Ok(()); // (it left its parent's history below there: apply/behind.rs)
            }
            entry = (base, self.history().hash_at(parent, base)?);
            idx = parent;
        }
    }

    /// Keeps what the bundle relayed that the devices its writer knew have (log/stable.rs
    /// `relayed`): for each of them known here but this device and the source (whose own word
    /// is its clock), each entry placed in the history it names here.
    fn learn_relayed(
        &mut self,
        manifest: &crate::bundle::Manifest,
        source: DeviceIdx,
    ) -> Result<()> {
        for (peer, has) in &manifest.relayed {
            let devices = &self.known.devices;
            let Some(peer) = devices.idx(peer) else {
                continue;
            };
            if peer == SELF || peer == source || devices.fork(peer).is_some() {
                continue;
            }
            if devices.is_forgotten(peer) {
                continue;
            }
            let mut placed = HashMap::default();
            for (id, seq, hash) in has {
                let Some(root) = self.known.devices.idx(id) else {
                    continue;
                };
                if let Some(idx) = self.resolve_held_entry(root, *seq, hash)? {
                    self.with_forked_from(idx, (*seq, Some(*hash)), &mut placed)?;
                }
            }
            let placed: Vec<(DeviceIdx, u64)> =
                placed.into_iter().map(|(d, (s, _))| (d, s)).collect();
            log::stable::learn_relayed(self.conn, peer, &placed)?;
        }
        Ok(())
    }

    /// Stores what the source is known to have, and the bundle's id.
    pub(super) fn record(&mut self, reader: &Reader) -> Result<()> {
        let conn = self.conn;
        let manifest = reader.manifest.clone();
        let source = self.known.devices.idx_or_add(conn, &manifest.source)?;
        // what the source has, per history held here: an entry whose op is not held here
        // names a history the source will send once it knows this device lacks it
        let mut known: HashMap<DeviceIdx, (u64, Option<crate::op::Hash>)> = HashMap::default();
        for (id, seq, hash) in &manifest.clock {
            let root = self.known.devices.idx_or_add(conn, id)?;
            let Some(idx) = self.resolve_entry(root, *seq, hash)? else {
                continue;
            };
            let entry = (*seq, Some(*hash));
            // (not for an op removed here whose hash is not kept: the source's cannot be
            // checked, and might be another history's)
            if *seq <= self.applied_seq(idx) && !self.history().unhashable(idx, *seq)? {
                if !self.kept_as(idx, *seq, hash) {
                    chain::remember(conn, idx, *seq, hash)?;
                }
                if source != SELF && self.holds_only_mine(idx, id)? {
                    // (`resolve_entry` found this device's own op there with that hash)
                    log::stable::confirm(conn, id, *seq)?;
                }
            }
            self.with_forked_from(idx, entry, &mut known)?;
        }
        if source != SELF {
            let known: Vec<(DeviceIdx, u64, Option<crate::op::Hash>)> =
                known.into_iter().map(|(d, (s, h))| (d, s, h)).collect();
            clock::learn_peer(conn, source, &known)?;
            // the format it writes, which it reads: bundles for it are written in it
            let format = format!("format {}", source.0);
            crate::schema::set_state(conn, &format, manifest.format as u64)?;
            let me = self.known.devices.id(SELF);
            let knew_me = manifest.clock.iter().any(|e| e.0 == me)
                || manifest.knows.contains(&me)
                || manifest.addressee == Some(me);
            log::stable::said_confirmed(conn, &manifest.source, manifest.confirmed, knew_me)?;
            self.learn_stable(&manifest)?;
            self.learn_relayed(&manifest, source)?;
        }
        conn.exec(
            "INSERT INTO main._sync_bundles(id, source) VALUES (?1, ?2)",
            &[
                Value::Blob(manifest.bundle_id.to_vec()),
                Value::from(source),
            ],
        )
    }
}
