//! What the compaction points a bundle carries name and saw, read with the bundle before any
//! of its ops is placed: an op a compaction point held here decides against (behind.rs) is
//! kept where one of them names it (an entry: its device id, seq and link) or saw it (the deps
//! as written of an op of the point's writer up to the point, where the point names its
//! device), as its writer kept it, however the bundle's ops fall in order (its points wait for
//! other devices' ops, and come after it).
//!
//! Invariant: only what the bundle's ops state, read once, in the bundle's order; the deps of
//! a writer's ops after its last point in the bundle are not kept (no point of it saw them).

use crate::bundle::Packed;
use crate::form::Form;
use crate::hashed::{HashMap, HashSet};
use crate::log::floors;
use crate::op::{Dep, DeviceId, Hash};

/// Ops, as (device id, seq, link), that the bundle's compaction points name or saw.
#[derive(Default)]
pub(super) struct CarriedPoints {
    named: HashSet<(DeviceId, u64, Hash)>,
    /// per writer, the deps of its ops after its last point read so far
    pending: HashMap<DeviceId, Vec<Dep>>,
}

impl CarriedPoints {
    /// Reads one op of the bundle, in its order.
    pub(super) fn read(&mut self, op: &Packed, form: &Form) {
        let deps = op.deps.iter().copied();
        if form.table != floors::TABLE {
            if !op.deps.is_empty() {
                self.pending.entry(op.device).or_default().extend(deps);
            }
            return;
        }
        let saw = self.pending.remove(&op.device).into_iter().flatten();
        // (a damaged floor is refused when its op is checked: nothing to read of it here)
        let Some(Ok(entries)) = op.values.first().map(floors::decode) else {
            return;
        };
        // (what it saw of the devices it names, as a point held here: behind.rs
        // `seen_by_a_point`)
        let saw: Vec<Dep> = (saw.chain(deps))
            .filter(|d| entries.iter().any(|e| e.0 == d.0))
            .collect();
        self.named.extend(entries);
        self.named.extend(saw.into_iter().map(|d| (d.0, d.1, d.2)));
    }

    /// What the bundle's points name or saw (the deps not followed by a point dropped).
    pub(super) fn finish(self) -> HashSet<(DeviceId, u64, Hash)> {
        self.named
    }
}
