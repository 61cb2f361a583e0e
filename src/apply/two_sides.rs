//! Two sides' compaction points that decide against each other (DESIGN 5.4, README "Writes
//! behind a compaction point"): a device written on under an id its peers hold other ops of
//! (put back to a backup, before it synced) writes a compaction point under that id, naming
//! what its side of the fleet holds, while a point of the other side names that side's point's
//! device at the seq of that point with another op; each decides against the other. Neither
//! saw the other, and each decides its own side's writes: whichever a device held first would
//! drop the other, so devices that met them in other orders would end apart. Each stays, on
//! every device, with the writes after it in its history, as the two sides' points of a copy
//! do: a history of its own, in conflict with what it was concurrent with.
//!
//! Invariant: judged from the points held here, the histories holding the ops their entries
//! name, and the arriving op (its entries, or the point its history holds below it), so every
//! device that holds the same points and ops judges alike, whatever order they came in.

use super::import::Import;
use crate::bundle::Packed;
use crate::db::Result;
use crate::form::Form;
use crate::log::floors;
use crate::op::Hash;
use crate::schema::DeviceIdx;

impl Import<'_> {
    /// Whether `op` of the device whose first history is `root` (following the op whose hash
    /// is `prev`, held here), at a seq that the compaction points held here decide otherwise,
    /// is, or follows in its history, a compaction point of that device that decides against
    /// each of those points.
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
        if !self.follows_held(root, op.seq, prev)? {
            return Ok(false); // (after an op dropped: that op's history's)
        }
        let held = match prev.filter(|_| op.seq > 1) {
            Some(prev) => self.history().locate(root, op.seq - 1, prev)?,
            None => None,
        };
        let mut points: Vec<Vec<(DeviceIdx, u64)>> = Vec::new();
        if form.table == floors::TABLE {
            if let Some(Ok(entries)) = op.values.first().map(floors::decode) {
                let mut placed = Vec::with_capacity(entries.len());
                for (id, seq, link) in entries {
                    if id == floors::RETIRES || id == floors::HISTORY {
                        continue;
                    }
                    let Some(of) = self.known.devices.idx(&id) else {
                        continue;
                    };
                    if let Some(history) = self.resolve_entry(of, seq, &link)? {
                        placed.push((history, seq));
                    }
                }
                points.push(placed);
            }
        }
        if let Some(held) = held {
            let own = |f: &&floors::Floor| f.op.0 == held && f.op.1 < op.seq;
            points.extend(
                self.known
                    .floors
                    .all()
                    .filter(own)
                    .map(|f| f.entries.clone()),
            );
        }
        for entries in &points {
            let mut all = true;
            for &point in &deciders {
                all &= self.decides_against(entries, point)?;
            }
            if all {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether history `h` starts with a compaction point that decides against op `point` (a
    /// point that decides against it in turn: `cut_below` spares it, as its arrival would).
    pub(super) fn starts_with_point_against(
        &self,
        h: DeviceIdx,
        point: (DeviceIdx, u64),
    ) -> Result<bool> {
        let first = self.known.devices.fork(h).map_or(0, |f| f.1) + 1;
        for f in self.known.floors.all() {
            if f.op == (h, first) && self.decides_against(&f.entries, point)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether a compaction point whose entries (history, seq) are `entries` decides against
    /// op `point` (history, seq): it names that device at `point`'s seq or above, at an op of
    /// another history there than `point`'s.
    fn decides_against(
        &self,
        entries: &[(DeviceIdx, u64)],
        point: (DeviceIdx, u64),
    ) -> Result<bool> {
        let devices = &self.known.devices;
        let root = devices.root(point.0);
        for &(history, seq) in entries {
            if seq < point.1 || devices.root(history) != root {
                continue;
            }
            // (the history that holds the point's seq in the lineage of the op named: a
            // history holds its parent's ops up to where it forked, but the op there where it
            // left its parent's lineage, `History::detached`)
            let mut at = history;
            while at != point.0 {
                match devices.fork(at) {
                    Some((parent, base))
                        if base > point.1 || base == point.1 && !self.history().detached(at)? =>
                    {
                        at = parent
                    }
                    _ => break,
                }
            }
            if at != point.0 {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
