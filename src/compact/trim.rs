//! Trimming the change points of removed ops (`_sync_deps`): what compaction leaves of the
//! contexts of the ops it removed.
//!
//! A context is held as change points (log/contexts.rs): the context of op `x` of a history
//! holds, per dep, the last point at or below `x`. Once ops are removed, the contexts still
//! read are those of the ops held (the merge rule, exports: each op's own points), of the op
//! below each held op and of the last op removed (an export states them where the op is
//! removed, bundle/out.rs `gaps`; the next op of the history follows the last), of the ops
//! histories fork after (and their first ops), of the ops the entries of the floor ops in force
//! name (the floors' order, log/floors.rs: a retired floor's entries are read for their seqs
//! only) and of the floor ops themselves, retired and removed ones too (their rows stay in
//! `_sync_floors`: apply/behind.rs reads what they had seen), and of the removed ops whose
//! hash is kept (log/chain.rs: a history may fork after one). A point at a removed
//! op that is in force at none of those (a later point of the same dep comes first) is read by
//! nothing: it goes. (One reader asks for points themselves, not contexts: apply/behind.rs
//! `seen_by_a_point`, whether a compaction point's writer named an op of another history. A
//! point trimmed is one a later point of the same dep overrides, which a device that joined
//! from a full bundle never held either.)
//!
//! Invariant: for every op of the list above, every dep, the context answers as before; the
//! points of held ops, and those of deps still waiting for their op (`dep < 0`), all stay. So
//! a device holds about one point per dep per op held or named, not one per op ever applied.

use std::collections::BTreeSet;

use crate::db::{Conn, Result};
use crate::log::clock::Devices;
use crate::log::floors::Floors;
use crate::schema::{DeviceIdx, SELF};
use crate::value::Value;

/// Drops the change points of history `device`'s removed ops that no context still read
/// needs; how many.
pub fn trim(conn: &Conn, devices: &Devices, floors: &Floors, device: DeviceIdx) -> Result<u64> {
    let upto = devices.removed_upto(device);
    if upto == 0 {
        return Ok(0);
    }
    let mut read = read_contexts(devices, floors, device, upto);
    // (a removed op whose hash is kept can be named again: a history that forks after it
    // takes its context, apply/histories.rs `inherit`)
    let kept = "SELECT seq FROM main._sync_hashes WHERE device = ?1 AND seq <= ?2";
    read.extend(seqs(conn, kept, device, upto)?);
    // the points at or below `upto`, each with the seq of the next point of its dep, but those
    // in force at an op held or at the op below one (an op held from the point to the next);
    // asked of the held ops by seq, as a history may hold 100,000 of them
    let held = match device {
        SELF => "SELECT 1 FROM main._sync_ops o WHERE o.seq BETWEEN p.seq AND p.nxt",
        _ => "SELECT 1 FROM main._sync_remote o WHERE o.device = ?1 AND o.seq BETWEEN p.seq AND p.nxt",
    };
    let sql = format!(
        "SELECT dep, seq, nxt FROM (
           SELECT dep, seq, coalesce(lead(seq) OVER (PARTITION BY dep ORDER BY seq), {})
             AS nxt
           FROM main._sync_deps WHERE device = ?1 AND dep >= 0) p
         WHERE seq <= ?2 AND NOT EXISTS ({held})",
        i64::MAX
    );
    let mut stmt = conn.prepare(&sql)?;
    stmt.bind_all(&[Value::from(device), Value::Integer(upto as i64)])?;
    let mut gone = Vec::new();
    while let Some(row) = stmt.step()? {
        let (seq, next) = (row.column_int(1) as u64, row.column_int(2) as u64);
        if read.range(seq..next).next().is_none() {
            gone.push((row.column_int(0), seq));
        }
    }
    drop(stmt);
    let mut delete =
        conn.prepare("DELETE FROM main._sync_deps WHERE device = ?1 AND seq = ?2 AND dep = ?3")?;
    for &(dep, seq) in &gone {
        delete.execute(&[
            Value::from(device),
            Value::Integer(seq as i64),
            Value::Integer(dep),
        ])?;
    }
    Ok(gone.len() as u64)
}

/// The seqs query `sql` gives for history `device` (`?1`) up to `upto` (`?2`).
fn seqs(conn: &Conn, sql: &str, device: DeviceIdx, upto: u64) -> Result<BTreeSet<u64>> {
    let mut stmt = conn.prepare(sql)?;
    stmt.bind_all(&[Value::from(device), Value::Integer(upto as i64)])?;
    let mut out = BTreeSet::new();
    while let Some(row) = stmt.step()? {
        out.insert(row.column_int(0) as u64);
    }
    Ok(out)
}

/// The ops of history `device` at or below `upto` whose contexts are still read (the module's
/// list), but the ops held and those below them (`trim` asks for them by seq).
fn read_contexts(
    devices: &Devices,
    floors: &Floors,
    device: DeviceIdx,
    upto: u64,
) -> BTreeSet<u64> {
    let mut read = BTreeSet::from([upto]);
    for child in devices.children(device) {
        if let Some((_, base)) = devices.fork(child) {
            read.insert(base);
        }
    }
    if let Some((_, base)) = devices.fork(device) {
        read.extend([base, base + 1]);
    }
    for floor in floors.iter() {
        let named = floor.entries.iter().filter(|e| e.0 == device);
        read.extend(named.map(|e| e.1));
    }
    // (retired ones too: apply/behind.rs `spared_by_a_point`)
    read.extend(floors.all().filter(|f| f.op.0 == device).map(|f| f.op.1));
    read.remove(&0);
    read
}
