//! Which of this device's compaction points the one it writes now retires (log/floors.rs):
//! all of them, where each of their entries is reached by an entry of the new one in the same
//! history and no op applied here is behind one of them; else none.
//!
//! Invariant: a point is retired only when every op in the new point's causal past that this
//! device holds follows all of its entries or is in its own causal past, so that dropping it
//! from the merge changes no row on any device (log/floors.rs says why).

use crate::db::{Conn, Result};
use crate::log::chain::Held;
use crate::log::clock::Order;
use crate::log::floors::{Floor, Floors};
use crate::schema::{DeviceIdx, SELF};
use crate::value::Value;

/// The seq of the last of this device's points held here, where the point of entries `next`
/// (history, seq) it writes now may retire them all.
pub fn retirable(
    conn: &Conn,
    held: &Held,
    floors: &Floors,
    next: &[(DeviceIdx, u64)],
) -> Result<Option<u64>> {
    let own: Vec<&Floor> = floors.iter().filter(|f| f.op.0 == SELF).collect();
    let Some(last) = own.iter().map(|f| f.op.1).max() else {
        return Ok(None);
    };
    let reached = |e: &(DeviceIdx, u64)| next.iter().any(|n| n.0 == e.0 && n.1 >= e.1);
    if !own.iter().all(|f| f.entries.iter().all(reached)) {
        return Ok(None);
    }
    let order = Order {
        devices: &held.devices,
        contexts: &held.contexts,
        floors,
    };
    // (this device's own ops follow its points, and so their entries)
    for idx in held.devices.indexes().filter(|&i| i != SELF) {
        for floor in &own {
            let from = held.contexts.entry(floor.op.0, floor.op.1, idx);
            if behind_one(conn, &order, floor, idx, from)? {
                return Ok(None);
            }
        }
    }
    Ok(Some(last))
}

/// Whether an op of history `idx` applied here above `from` (what point `floor` had seen of
/// it) is behind the point: not in its causal past, and not following all its entries (the
/// first that follows them all ends the walk: the ops after it follow them too).
fn behind_one(
    conn: &Conn,
    order: &Order,
    floor: &Floor,
    idx: DeviceIdx,
    from: u64,
) -> Result<bool> {
    let mut stmt = conn.prepare(
        "SELECT seq FROM main._sync_remote WHERE device = ?1 AND seq > ?2 AND applied = 1
         ORDER BY seq",
    )?;
    stmt.bind_all(&[Value::from(idx), Value::Integer(from as i64)])?;
    while let Some(row) = stmt.step()? {
        let at = (idx, row.column_int(0) as u64);
        if floor.entries.iter().all(|&e| order.reaches(at, e)) {
            return Ok(false);
        }
        if !order.reaches(floor.op, at) {
            return Ok(true);
        }
    }
    Ok(false)
}
