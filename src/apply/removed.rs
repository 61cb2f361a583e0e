//! A bundle's base (bundle/mod.rs `Manifest::base`): per device, the seq at or below which its
//! writer removed ops by compaction that the bundle does not carry (compact/remove.rs). A
//! device that lacks ops there (it joined late) takes them as applied: what they wrote, ops
//! the bundle carries overwrote, below a floor every device then known had.
//!
//! Until bundles are signed, a base is taken only where the tests ask for removal (compact/
//! mod.rs): it cannot be checked, and a forged one would pass over a device's true ops.
//!
//! Invariant: the applied clock passes over an op only when it is not held here and is at or
//! below where ops of its history may be missing (`_sync_removed`); the op before the first
//! op after such a gap keeps the hash the bundle states for it, so the ops after it hash here
//! as where they were written.

use super::import::Import;
use crate::bundle::{Packed, Prev};
use crate::db::Result;
use crate::log::chain;
use crate::op::{DeviceId, Hash};
use crate::schema::DeviceIdx;
use crate::value::Value;

impl Import<'_> {
    /// Keeps the bundle's base entries for the histories it reaches below what is applied
    /// here, before its ops are stored.
    pub(super) fn read_base(&mut self, base: &[(DeviceId, u64, Hash)]) -> Result<()> {
        // (taken only where the tests ask for removal, as compaction removes only there: a
        // base cannot be checked, and one forged would pass over the true ops of a device)
        if base.is_empty() || crate::schema::state(self.conn, "compact_removes")? != 1 {
            return Ok(());
        }
        for &(id, upto, link) in base {
            let root = self.known.devices.idx_or_add(self.conn, &id)?;
            // (a device with two histories here: which one the base means is not known)
            if self.known.devices.is_forked(root) || upto <= self.applied_seq(root) {
                continue;
            }
            self.reading.base.insert(root, (upto, link));
        }
        Ok(())
    }

    /// An op stored in history `device` after a gap the base explains: the op before it keeps
    /// the hash the op states for it.
    pub(super) fn after_removed(&mut self, device: DeviceIdx, op: &Packed) -> Result<()> {
        let (Prev::Stated(prev), Some(&(upto, _))) = (&op.prev, self.reading.base.get(&device))
        else {
            return Ok(());
        };
        let before = op.seq - 1;
        if before == 0 || before > upto || before <= self.applied_seq(device) {
            return Ok(());
        }
        self.reading.appender.flush()?;
        if !self.history().holds(device, before)? {
            chain::remember(self.conn, device, before, prev)?;
        }
        Ok(())
    }

    /// Takes the base's removed ops as applied, once the bundle's ops are stored.
    pub(super) fn take_base(&mut self) -> Result<()> {
        let base = std::mem::take(&mut self.reading.base);
        for (root, (upto, link)) in base {
            self.known.devices.set_removed(self.conn, root, upto)?;
            if !self.history().holds(root, upto)? {
                chain::remember(self.conn, root, upto, &link)?;
            }
            self.skip_removed(root)?;
        }
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
