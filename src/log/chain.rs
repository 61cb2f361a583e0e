//! Each device's history as a hash chain: op n of a device names the hash of its op n - 1
//! (`prev`, op.rs), so the hash of an op stands for everything its device wrote up to it, and two
//! histories written under one device id differ in every hash from the op where they part.
//!
//! Invariant: the hash of any op held here (written here, or received) can be had without
//! storing one per op: it is the hash of its re-encoding, with the hash of the op before it as
//! `prev`, starting from the nearest checkpoint below it. Checkpoints (`_sync_hashes`) are
//! written only with hashes of the ops held here, where they come for free or are needed
//! again: the last op of each device in a bundle, every `EVERY`th op, the entries of clocks.

use crate::db::{Conn, Result};
use crate::log::clock::{Contexts, Devices};
use crate::log::remote::{self, Forms, Stored};
use crate::log::{LocalOp, LocalOps};
use crate::op::{self, Hash, Op};
use crate::schema::{DeviceIdx, SELF};
use crate::value::Value;

/// A checkpoint is kept at least every this many ops of a device.
pub const EVERY: u64 = 256;

/// Whether op `seq` of a device gets a checkpoint as it passes.
pub fn is_milestone(seq: u64) -> bool {
    seq.is_multiple_of(EVERY)
}

/// What rebuilds ops held here, to hash them.
pub struct History<'a, 'c> {
    pub conn: &'a Conn,
    pub devices: &'a Devices,
    pub contexts: &'a Contexts<'c>,
    pub local: &'a LocalOps<'c>,
    pub forms: &'a Forms,
    /// Whether hashing ops records the checkpoints it passes (only in a write transaction)
    pub keep: bool,
}

/// Everything a `History` reads, loaded from the database.
pub struct Held<'c> {
    pub devices: Devices,
    pub contexts: Contexts<'c>,
    pub local: LocalOps<'c>,
    pub forms: Forms,
}

impl<'c> Held<'c> {
    pub fn load(conn: &'c Conn) -> Result<Held<'c>> {
        Ok(Held {
            devices: Devices::load(conn)?,
            contexts: Contexts::load(conn)?,
            local: LocalOps::load(conn)?,
            forms: Forms::load(conn)?,
        })
    }

    /// A `History` over these; `keep` as there.
    pub fn history<'a>(&'a self, conn: &'a Conn, keep: bool) -> History<'a, 'c> {
        History {
            conn,
            devices: &self.devices,
            contexts: &self.contexts,
            local: &self.local,
            forms: &self.forms,
            keep,
        }
    }
}

impl History<'_, '_> {
    /// A local op as it travels.
    pub fn local_op(&self, op: LocalOp) -> Op {
        Op {
            device: self.devices.me(),
            seq: op.seq,
            lamport: self.local.lamport(op.seq),
            deps: remote::deps_of(self.contexts, self.devices, SELF, op.seq),
            table: op.table,
            kind: op.kind,
            key: op.key,
            cells: op.cells,
            decl: op.decl,
        }
    }

    /// Calls `f` with every op of device `idx` held here with `after < seq <= upto`, in order.
    pub fn each(
        &self,
        idx: DeviceIdx,
        after: u64,
        upto: u64,
        mut f: impl FnMut(Op) -> Result<()>,
    ) -> Result<()> {
        if idx == SELF {
            return self
                .local
                .each(self.conn, after, upto, |op| f(self.local_op(op)));
        }
        let mut stmt = self.conn.prepare(&format!(
            "SELECT r.seq, {} FROM main._sync_remote r
             WHERE r.device = ?1 AND r.seq > ?2 AND r.seq <= ?3 ORDER BY r.seq",
            remote::columns("r")
        ))?;
        stmt.bind_all(&[
            Value::from(idx),
            Value::Integer(after as i64),
            Value::Integer(upto as i64),
        ])?;
        let id = (idx, self.devices.wire_id(idx));
        while let Some(r) = stmt.step()? {
            let seq = r.column_int(0) as u64;
            let row = [r.column(1)?, r.column(2)?, r.column(3)?];
            f(self.forms.op(
                id,
                seq,
                &Stored::from_row(&row)?,
                Some((self.contexts, self.devices)),
            )?)?;
        }
        Ok(())
    }

    /// The hash of op `seq` of device `idx` (None for seq 0, before its first op). The op and
    /// every op of the device below it down to a checkpoint must be held here.
    pub fn hash_at(&self, idx: DeviceIdx, seq: u64) -> Result<Option<Hash>> {
        Ok(self.hash_and_kept(idx, seq)?.map(|(hash, _)| hash))
    }

    /// `hash_at`, and whether that hash is the checkpoint of device `idx` at `seq` (so that
    /// `remember` would write nothing).
    pub fn hash_and_kept(&self, idx: DeviceIdx, seq: u64) -> Result<Option<(Hash, bool)>> {
        if seq == 0 {
            return Ok(None);
        }
        // a second history shares the ops of the one it forked from up to `base` (one that
        // left a compaction point's lineage has its own link there: `own_link`)
        let fork = self.devices.fork(idx);
        if let Some((parent, base)) = fork {
            if seq == base {
                if let Some(own) = self.own_link(idx, base)? {
                    return Ok(Some((own, true)));
                }
            }
            if seq <= base {
                return Ok(self.hash_at(parent, seq)?.map(|hash| (hash, false)));
            }
        }
        let found = self.conn.query_row_kept(
            "SELECT seq, hash FROM main._sync_hashes WHERE device = ?1 AND seq <= ?2
             ORDER BY seq DESC LIMIT 1",
            &[Value::from(idx), Value::Integer(seq as i64)],
        )?;
        let (mut at, mut hash) = match (found.as_deref(), fork) {
            (Some([Value::Integer(at), Value::Blob(h)]), _) => {
                (*at as u64, h.as_slice().try_into().ok())
            }
            (_, Some((parent, base))) => (base, self.hash_at(parent, base)?),
            _ => (0, None),
        };
        if at == seq {
            // (a checkpoint at `seq` itself: below a fork's base was answered above, and seq 0
            // is none)
            return Ok(hash.map(|hash| (hash, true)));
        }
        self.each(idx, at, seq, |op| {
            if op.seq != at + 1 {
                return Err(self.missing(idx, at + 1));
            }
            at = op.seq;
            let h = hash_of(&op, hash.as_ref());
            hash = Some(h);
            if self.keep && is_milestone(at) {
                remember(self.conn, idx, at, &h)?;
            }
            Ok(())
        })?;
        if at != seq {
            return Err(crate::db::Error::new(format!(
                "op {seq} of device {} is missing (hashing it)",
                self.devices.named(idx)
            )));
        }
        Ok(hash.map(|hash| (hash, self.keep && is_milestone(seq))))
    }
}

impl History<'_, '_> {
    /// Whether op `seq` of history `idx` was removed here by compaction (compact/remove.rs)
    /// and its hash is not kept: it cannot be hashed, nor compared with another.
    pub fn unhashable(&self, idx: DeviceIdx, seq: u64) -> Result<bool> {
        if !self.removed(idx, seq)? {
            return Ok(false);
        }
        let kept = self.conn.query_value(
            "SELECT 1 FROM main._sync_hashes WHERE device = ?1 AND seq = ?2",
            &[Value::from(idx), Value::Integer(seq as i64)],
        )?;
        Ok(kept.is_none())
    }

    /// The link a history keeps for the op it forked after, where that op is not its
    /// parent's: a history that left a compaction point's lineage at or below the point's seq,
    /// whose ops there are dropped (apply/behind.rs), follows the op its first op names.
    pub fn own_link(&self, idx: DeviceIdx, base: u64) -> Result<Option<Hash>> {
        let kept = self.conn.query_value(
            "SELECT hash FROM main._sync_hashes WHERE device = ?1 AND seq = ?2",
            &[Value::from(idx), Value::Integer(base as i64)],
        )?;
        Ok(kept.and_then(|h| h.as_blob().and_then(|b| b.try_into().ok())))
    }

    /// Whether history `idx` left its parent's history below where it forked (`own_link`):
    /// a peer that has its ops does not have its parent's up to there.
    pub fn detached(&self, idx: DeviceIdx) -> Result<bool> {
        let Some((parent, base)) = self.devices.fork(idx) else {
            return Ok(false);
        };
        match (base, self.own_link(idx, base)?) {
            (0, _) | (_, None) => Ok(false),
            // (its parent's op there not held, or not hashable: not the one its link names here)
            (_, Some(_)) if self.unhashable(parent, base)? || !self.chain_held(parent, base)? => {
                Ok(true)
            }
            (_, Some(own)) => Ok(self.hash_at(parent, base)? != Some(own)),
        }
    }

    /// Whether op `seq` of history `idx` was removed here by compaction (compact/remove.rs).
    pub fn removed(&self, idx: DeviceIdx, seq: u64) -> Result<bool> {
        if seq == 0 || seq > self.devices.removed_upto(idx) {
            return Ok(false);
        }
        let stored = match idx {
            SELF => "SELECT 1 FROM main._sync_ops WHERE seq = ?2 AND ?1 = ?1",
            _ => "SELECT 1 FROM main._sync_remote WHERE device = ?1 AND seq = ?2",
        };
        let held =
            (self.conn).query_value(stored, &[Value::from(idx), Value::Integer(seq as i64)])?;
        Ok(held.is_none())
    }

    /// The error of hashing op `seq` of history `idx`, which is not held here.
    fn missing(&self, idx: DeviceIdx, seq: u64) -> crate::db::Error {
        match self.removed(idx, seq) {
            Ok(true) => crate::db::Error::new(format!(
                "op {seq} of device {} was removed by compaction",
                self.devices.named(idx)
            )),
            _ => crate::db::Error::new(format!(
                "op {seq} of device {} is missing (hashing the ops after it)",
                self.devices.named(idx)
            )),
        }
    }

    /// Whether `hash_at(idx, seq)` can be had: the op and every op below it down to a
    /// checkpoint (or to where its history starts) are held here, pending or applied.
    pub fn chain_held(&self, idx: DeviceIdx, seq: u64) -> Result<bool> {
        if seq == 0 {
            return Ok(true);
        }
        let fork = self.devices.fork(idx);
        if let Some((parent, base)) = fork {
            if seq <= base {
                return self.chain_held(parent, seq);
            }
        }
        if idx == SELF {
            return Ok(seq <= crate::log::last_local_seq(self.conn)? as u64);
        }
        let checkpoint = self.conn.query_row_kept(
            "SELECT seq FROM main._sync_hashes WHERE device = ?1 AND seq <= ?2
             ORDER BY seq DESC LIMIT 1",
            &[Value::from(idx), Value::Integer(seq as i64)],
        )?;
        let from = match (checkpoint.as_deref(), fork) {
            (Some([Value::Integer(at)]), _) => *at as u64,
            (_, Some((parent, base))) if self.chain_held(parent, base)? => base,
            (_, Some(_)) => return Ok(false),
            _ => 0,
        };
        let held = self.conn.query_row_kept(
            "SELECT count(*) FROM main._sync_remote WHERE device = ?1 AND seq > ?2 AND seq <= ?3",
            &[
                Value::from(idx),
                Value::Integer(from as i64),
                Value::Integer(seq as i64),
            ],
        )?;
        Ok(matches!(held.as_deref(), Some([Value::Integer(n)]) if *n as u64 == seq - from))
    }

    /// Whether op `seq` of history `idx` is held here as an op of that history (not of the one
    /// it forked from).
    pub fn holds(&self, idx: DeviceIdx, seq: u64) -> Result<bool> {
        if seq == 0 || self.devices.fork(idx).is_some_and(|(_, base)| seq <= base) {
            return Ok(false);
        }
        if idx == SELF {
            let last = crate::log::last_local_seq(self.conn)? as u64;
            return Ok(seq <= last && !self.removed(idx, seq)?);
        }
        Ok(self
            .conn
            .query_value(
                "SELECT 1 FROM main._sync_remote WHERE device = ?1 AND seq = ?2",
                &[Value::from(idx), Value::Integer(seq as i64)],
            )?
            .is_some())
    }

    /// The history of the device whose first history is `root` that holds op `seq` with
    /// `hash`, if any (none while the ops before it there are not all held, or kept by hash),
    /// or held it until compaction removed it and kept its hash.
    pub fn locate(&self, root: DeviceIdx, seq: u64, hash: &Hash) -> Result<Option<DeviceIdx>> {
        for idx in self.devices.histories(root) {
            // (an op held above one not held yet cannot be hashed: not found until it is)
            let hashable = self.holds(idx, seq)? && self.chain_held(idx, seq)?;
            if hashable && self.hash_at(idx, seq)?.as_ref() == Some(hash) {
                return Ok(Some(idx));
            }
            // (an op compaction removed here, whose hash is kept: the op it was)
            if !hashable
                && self.removed(idx, seq)?
                && remembered(self.conn, idx, seq)?.as_ref() == Some(hash)
            {
                return Ok(Some(idx));
            }
        }
        Ok(None)
    }

    /// Where `locate` finds no history for a dep (`root`'s device, `seq`): the one history
    /// that had an op at `seq` removed by compaction without its hash kept, where every other
    /// history with an op of its own there holds it and hashes it otherwise. The dep is taken
    /// to name that op, as one of a device with one history is (apply/histories.rs
    /// `resolve_dep`): an op that histories forked above share is one op.
    pub fn taken(&self, root: DeviceIdx, seq: u64, hash: &Hash) -> Result<Option<DeviceIdx>> {
        let mut unchecked = None;
        for idx in self.devices.histories(root) {
            if self.devices.fork(idx).is_some_and(|(_, base)| seq <= base) {
                continue; // (its op there is its parent's)
            }
            // (a history split below `seq` holds none there: its ops from the split on are
            // its branches', each a history of its own here)
            let split_below = (self.devices.children(idx).iter())
                .any(|&c| self.devices.fork(c).is_some_and(|(_, base)| base < seq));
            if split_below && !self.holds(idx, seq)? {
                continue;
            }
            if self.unhashable(idx, seq)? {
                if unchecked.replace(idx).is_some() {
                    return Ok(None); // two such ops: the dep cannot tell which
                }
            } else if !(self.holds(idx, seq)? && self.chain_held(idx, seq)?)
                || self.hash_at(idx, seq)?.as_ref() == Some(hash)
            {
                return Ok(None); // an op not held yet (or found: `locate`'s)
            }
        }
        Ok(unchecked)
    }
}

/// The link (op.rs) of `op` with `prev`.
pub fn hash_of(op: &Op, prev: Option<&Hash>) -> Hash {
    op::link(&op::hash(&op.encode(prev)))
}

/// The hash recorded for op `seq` of device `idx` (`remember`), if one is.
pub fn remembered(conn: &Conn, idx: DeviceIdx, seq: u64) -> Result<Option<Hash>> {
    let kept = conn.query_value(
        "SELECT hash FROM main._sync_hashes WHERE device = ?1 AND seq = ?2",
        &[Value::from(idx), Value::Integer(seq as i64)],
    )?;
    Ok(kept.and_then(|v| v.as_blob().and_then(|b| b.try_into().ok())))
}

/// Records that op `seq` of device `idx` held here has `hash`.
pub fn remember(conn: &Conn, idx: DeviceIdx, seq: u64, hash: &Hash) -> Result<()> {
    // (written only when it changes: an import remembers every entry of its bundle's clock)
    conn.exec_kept(
        "INSERT INTO main._sync_hashes(device, seq, hash) VALUES (?1, ?2, ?3)
         ON CONFLICT(device, seq) DO UPDATE SET hash = excluded.hash WHERE hash IS NOT excluded.hash",
        &[
            Value::from(idx),
            Value::Integer(seq as i64),
            Value::Blob(hash.to_vec()),
        ],
    )
}
