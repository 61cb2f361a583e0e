//! Ops held pending over a gap, displaced by another op that comes to it.
//!
//! An op stored where the op before it is not held waits, on trust, for that op. Where another
//! op comes to that place instead, following the op held below it, while the ops held above
//! do not follow it (their hashes chain from another op there: the device was put back to a
//! backup, or copied, and wrote that seq twice, and the op they follow is not here), the ops
//! above are ops whose place is not held here (histories.rs): they go, as the import would have
//! refused them had that op come first, and the op takes its place. A device that holds the
//! ops they follow sends them again once this device's clock tells it what is held here.
//!
//! Invariant: only ops held pending go (none applied: the op that comes is above the history's
//! applied seq), and only the run that follows the gap without a gap of its own; so a device
//! ends holding the same ops whichever of the two came first.

use super::import::Import;
use crate::db::Result;
use crate::schema::DeviceIdx;

impl Import<'_> {
    /// Drops the ops held pending in history `idx` from `seq + 1` on, up to the first seq not
    /// held, where an op that follows the op held at `seq - 1` comes to `seq`, which none of
    /// them follows (histories.rs `breaks_chain_above`); false, dropping nothing, where an op
    /// at `seq` or above is applied here.
    pub(super) fn displace_above(&mut self, idx: DeviceIdx, seq: u64) -> Result<bool> {
        if seq <= self.applied_seq(idx) {
            return Ok(false);
        }
        self.reading.appender.flush()?;
        let mut next = seq + 1;
        while self.pending_op(idx, next)?.is_some() {
            self.discard(idx, next)?;
            next += 1;
        }
        Ok(true)
    }
}
