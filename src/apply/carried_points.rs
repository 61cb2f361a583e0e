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

/// How many deps of ops not yet followed by a point of their writer are kept at most (about
/// 40 MiB): past it, what the points saw of later ops is not read (a bundle of millions of ops
/// after syncs of hundreds of devices), and those ops are decided as without it.
const PENDING_MOST: usize = 1 << 20;

/// How the bundle's compaction points know an op.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Known {
    /// the deps of an op of a point's writer, up to the point, name it
    Saw,
    /// a point's entry names it: every device its writer knew had it
    Entry,
}

/// Each point that knows an op (its writer's id and seq), with how.
type KnownBy = Vec<(DeviceId, u64, Known)>;

/// What the bundle's compaction points name or saw.
#[derive(Default)]
pub(super) struct Named {
    /// Ops, as (device id, seq, link), that the points name or saw, with how each point (its
    /// writer's id and seq) knows it; and the histories they name by id, as
    /// (`floors::HISTORY`, 0, the history's id).
    pub(super) ops: HashMap<(DeviceId, u64, Hash), KnownBy>,
    /// Per device id, the points' entries of it: (seq, link, the point's writer's id and seq).
    /// An entry's link covers every op of its history below it, which the bundle may carry
    /// before it (behind.rs `named_by_another_point`).
    pub(super) entries: HashMap<DeviceId, Vec<(u64, Hash, DeviceId, u64)>>,
}

impl Named {
    /// Whether the points name the history whose id is `history` (log/floors.rs `HISTORY`).
    pub(super) fn names_history(&self, history: &DeviceId) -> bool {
        self.ops.contains_key(&(floors::HISTORY, 0, *history))
    }
}

/// What the bundle's compaction points name or saw, as its ops are read.
#[derive(Default)]
pub(super) struct CarriedPoints {
    named: Named,
    /// per writer, the deps of its ops after its last point read so far (`pending_count` in all)
    pending: HashMap<DeviceId, Vec<Dep>>,
    pending_count: usize,
}

impl CarriedPoints {
    /// Reads one op of the bundle, in its order.
    pub(super) fn read(&mut self, op: &Packed, form: &Form) {
        let deps = op.deps.iter().copied();
        if form.table != floors::TABLE {
            if !op.deps.is_empty() && self.pending_count + op.deps.len() <= PENDING_MOST {
                self.pending_count += op.deps.len();
                self.pending.entry(op.device).or_default().extend(deps);
            }
            return;
        }
        let saw = self.pending.remove(&op.device).unwrap_or_default();
        self.pending_count -= saw.len();
        // (a damaged floor is refused when its op is checked: nothing to read of it here)
        let Some(Ok(entries)) = op.values.first().map(floors::decode) else {
            return;
        };
        // (what it saw of the devices it names, as a point held here: behind.rs
        // `seen_by_a_point`)
        let ids: HashSet<DeviceId> = entries.iter().map(|e| e.0).collect();
        let saw = (saw.into_iter().chain(deps)).filter(|d| ids.contains(&d.0));
        let mut add = |named: (DeviceId, u64, Hash), how| {
            let by = self.named.ops.entry(named).or_default();
            let known = (op.device, op.seq, how);
            // (an op many of the writer's ops depended on, once per point)
            if by.last() != Some(&known) {
                by.push(known);
            }
        };
        for d in saw {
            add((d.0, d.1, d.2), Known::Saw);
        }
        for (id, seq, link) in entries {
            // (a history named by its id: under seq 0, whatever its entry's: `names_history`)
            let seq = if id == floors::HISTORY { 0 } else { seq };
            add((id, seq, link), Known::Entry);
            if seq > 0 && id != floors::RETIRES && id != floors::RETIRES_EACH {
                let entry = (seq, link, op.device, op.seq);
                self.named.entries.entry(id).or_default().push(entry);
            }
        }
    }

    /// What the bundle's points name or saw (the deps not followed by a point dropped).
    pub(super) fn finish(self) -> Named {
        self.named
    }
}
