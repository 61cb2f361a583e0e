//! Which of this device's compaction points the one it writes now retires (log/floors.rs):
//! each whose entries are reached by an entry of the new one in the same history and behind
//! which no op applied here is (where one stays in force, the others that may go are named
//! one by one: a point behind which an op written before it arrived stays for good, and must
//! not keep every later one).
//!
//! Invariant: a point is retired only when every op in the new point's causal past that this
//! device holds follows all of its entries or is in its own causal past, so that dropping it
//! from the merge changes no row on any device (log/floors.rs says why).

use crate::db::{Conn, Result};
use crate::log::chain::Held;
use crate::log::clock::Order;
use crate::log::floors::{Floor, Floors, Retires};
use crate::schema::{DeviceIdx, SELF};
use crate::value::Value;

/// Which of this device's points in force the point of entries `next` (history, seq) it writes
/// now retires: all of them up to the last (`UpTo`), where each may go; else those that may
/// (`Each`), where some stay; none where none may.
pub fn retirable(
    conn: &Conn,
    held: &Held,
    floors: &Floors,
    next: &[(DeviceIdx, u64)],
) -> Result<Option<Retires>> {
    let own: Vec<&Floor> = floors.iter().filter(|f| f.op.0 == SELF).collect();
    let Some(last) = own.iter().map(|f| f.op.1).max() else {
        return Ok(None);
    };
    let reached = |e: &(DeviceIdx, u64)| next.iter().any(|n| n.0 == e.0 && n.1 >= e.1);
    let order = Order {
        devices: &held.devices,
        contexts: &held.contexts,
        floors,
    };
    let mut each = Vec::new();
    for floor in &own {
        if !floor.entries.iter().all(reached) {
            continue;
        }
        // (this device's own ops follow its points, and so their entries)
        let mut behind = false;
        for idx in held.devices.indexes().filter(|&i| i != SELF) {
            let from = held.contexts.entry(floor.op.0, floor.op.1, idx);
            if behind_one(conn, &order, floor, idx, from)? {
                behind = true;
                break;
            }
        }
        if !behind {
            each.push(floor.op.1);
        }
    }
    each.sort_unstable();
    Ok(match (each.len(), each.len() == own.len()) {
        (0, _) => None,
        (_, true) => Some(Retires::UpTo(last)),
        (_, false) => Some(Retires::Each(each)),
    })
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
