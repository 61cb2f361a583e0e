//! Two sides' compaction points that decide against each other (DESIGN 5.4, README "Writes
//! behind a compaction point"): a device put back to a backup writes a compaction point under
//! its old id, naming what its side of the fleet holds, while a point of the other side names
//! that id's other history at the same seqs; each point decides against the other. Neither saw
//! the other, and each decides its own side's writes: whichever a device held first would drop
//! the other, so devices that met them in other orders would end apart. Each stays, on every
//! device, with the writes after it in its history, as the two sides' points of a copy do: a
//! history of its own, in conflict with what it was concurrent with.
//!
//! Invariant: judged from the points held here and the arriving op alone (its entries, or the
//! point its history holds below it), so every device that holds the same points judges alike,
//! whatever order the points came in.

use super::import::Import;
use crate::bundle::Packed;
use crate::db::Result;
use crate::form::Form;
use crate::log::floors;
use crate::op::Hash;
use crate::schema::DeviceIdx;

impl Import<'_> {
    /// Whether `op` of the device whose first history is `root` (following the op whose hash
    /// is `prev`), at a seq that the compaction points held here decide otherwise, is, or
    /// follows in its history, a compaction point of that device that decides against each of
    /// those points.
    pub(super) fn against_its_deciders(
        &mut self,
        root: DeviceIdx,
        op: &Packed,
        form: &Form,
        prev: Option<&Hash>,
    ) -> Result<bool> {
        let deciders = self.known.floors.naming_from(root, op.seq);
        if deciders.is_empty() {
            return Ok(false);
        }
        let mut points: Vec<Vec<(DeviceIdx, u64)>> = Vec::new();
        if form.table == floors::TABLE {
            if let Some(Ok(entries)) = op.values.first().map(floors::decode) {
                let mut placed = Vec::with_capacity(entries.len());
                for (id, seq, link) in entries {
                    let Some(of) = self.known.devices.idx(&id) else {
                        continue; // (a history named by its id, or its writer's retired points)
                    };
                    if let Some(history) = self.resolve_entry(of, seq, &link)? {
                        placed.push((history, seq));
                    }
                }
                points.push(placed);
            }
        }
        if let Some(prev) = prev.filter(|_| op.seq > 1) {
            if let Some(held) = self.history().locate(root, op.seq - 1, prev)? {
                let own = |f: &&floors::Floor| f.op.0 == held && f.op.1 < op.seq;
                points.extend(
                    self.known
                        .floors
                        .all()
                        .filter(own)
                        .map(|f| f.entries.clone()),
                );
            }
        }
        let decides = |entries: &Vec<(DeviceIdx, u64)>| {
            (deciders.iter()).all(|&point| self.decides_against(entries, point))
        };
        Ok(points.iter().any(decides))
    }

    /// Whether history `history` holds a compaction point that decides against op `point`
    /// (a point that decides against it in turn: `cut_below` does not cut it).
    pub(super) fn holds_point_against(&self, history: DeviceIdx, point: (DeviceIdx, u64)) -> bool {
        (self.known.floors.all())
            .any(|f| f.op.0 == history && self.decides_against(&f.entries, point))
    }

    /// Whether a compaction point whose entries (history, seq) are `entries` decides against
    /// op `point` (history, seq): it names that device at `point`'s seq or above, at an op of
    /// another history there than `point`'s.
    fn decides_against(&self, entries: &[(DeviceIdx, u64)], point: (DeviceIdx, u64)) -> bool {
        let devices = &self.known.devices;
        let root = devices.root(point.0);
        entries.iter().any(|&(history, seq)| {
            if seq < point.1 || devices.root(history) != root {
                return false;
            }
            // (the history that holds the point's seq in the lineage of the op named)
            let mut at = history;
            while at != point.0 {
                match devices.fork(at) {
                    Some((parent, base)) if base >= point.1 => at = parent,
                    _ => break,
                }
            }
            at != point.0
        })
    }
}
