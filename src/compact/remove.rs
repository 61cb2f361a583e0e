//! Removing what a compaction point made dead: the ops below this device's last floor op that
//! no row needs any more (merge/superseded.rs), with what keeps every op held here hashable.
//!
//! Kept whatever the rule says: a row's first indexed op (the row index names it), this
//! device's last op (the log's next seq follows it), the ops of rows held out by a constraint
//! and of tables with ops kept aside (apply/kept.rs). Floor ops go once a later one of their
//! writer retired them (log/floors.rs).
//!
//! Invariant: an op is removed only when it is below a floor op this device wrote (every device
//! known here had it: log/stable.rs) and the merge rule never reads it again; the hash of the
//! last op of each run removed is kept as a checkpoint (log/chain.rs), so the ops after it can
//! still be hashed, and so is that of each op a peer's last bundle named (a bundle for that
//! peer starts above it, and one from it that stops there is shown to be the ops removed);
//! `_sync_removed` says, per history, up to which seq ops may be missing, and an op that
//! arrives there again is taken to be the one that was (apply/histories.rs `Placed::Below`).

use crate::hashed::HashMap;
use std::collections::{BTreeMap, BTreeSet};

use crate::db::{Conn, Result};
use crate::log::chain::{self, Held};
use crate::log::clock::Order;
use crate::log::floors::Floor;
use crate::log::{last_local_seq, synced_tables};
use crate::merge::row_index::{entry_values, RowReader};
use crate::merge::superseded::superseded;
use crate::schema::{DeviceIdx, SELF};
use crate::value::Value;

/// Removes the ops below floor op `floor` (this device's) that no row needs; how many.
pub fn remove_below(conn: &Conn, floor: &Floor) -> Result<u64> {
    let held = Held::load(conn)?;
    let floors = crate::log::floors::Floors::load(conn)?;
    let order = Order {
        devices: &held.devices,
        contexts: &held.contexts,
        floors: &floors,
    };
    let reader = RowReader {
        devices: &held.devices,
        local: &held.local,
        forms: &held.forms,
        recent: None,
    };
    let tables: HashMap<i64, _> = (synced_tables(conn)?.into_iter())
        .map(|t| (t.id, t))
        .collect();
    let last_local = last_local_seq(conn)? as u64;
    // the rows with two or more ops besides their first, not held out
    let mut rows = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT o.table_id, o.key, r.device, r.seq FROM main._sync_row_ops o
         JOIN main._sync_rows r ON r.table_id = o.table_id AND r.key = o.key
         WHERE o.table_id NOT IN (SELECT table_id FROM main._sync_kept)
           AND NOT EXISTS (SELECT 1 FROM main._sync_parked p
                           WHERE p.table_id = o.table_id AND p.key = o.key)
         GROUP BY o.table_id, o.key HAVING count(*) >= 2",
    )?;
    while let Some(row) = stmt.step()? {
        let key = row.column_blob(1)?.unwrap_or_default().to_vec();
        let first = (DeviceIdx(row.column_int(2)), row.column_int(3) as u64);
        rows.push((row.column_int(0), key, first));
    }
    drop(stmt);
    let mut gone: BTreeMap<DeviceIdx, BTreeSet<u64>> = BTreeMap::new();
    let mut index = Vec::new();
    for (table_id, key, first) in rows {
        let Some(table) = tables.get(&table_id) else {
            continue; // (a table not captured now: its ops stay)
        };
        let (ops, key_cells) = reader.ops(conn, table, &key)?;
        let names: Vec<Option<(DeviceIdx, u64)>> = (ops.iter())
            .map(|op| held.devices.idx(&op.device).map(|d| (d, op.seq)))
            .collect();
        // below the floor: an op its floor's ops reach (every device known had it)
        let below: Vec<bool> = (names.iter())
            .map(|name| name.is_some_and(|at| floor.entries.iter().any(|&e| order.reaches(e, at))))
            .collect();
        let pinned: Vec<bool> = (names.iter())
            .map(|name| name.is_none_or(|at| at == first || at == (SELF, last_local)))
            .collect();
        for i in superseded(&ops, &below, &pinned, &key_cells, &order) {
            let Some((device, seq)) = names[i] else {
                continue;
            };
            gone.entry(device).or_default().insert(seq);
            index.push((table_id, key.clone(), device, seq));
        }
    }
    // the floor ops a later one of their writer retired (log/floors.rs): no merge reads them
    let mut points = 0;
    let history = held.history(conn, true);
    for op in floors.retired() {
        // (not of a device with two histories: a dep on it that a device set up from a full
        // bundle reads cannot tell it from an op another history may hold at its seq, as its
        // hash is not kept: log/chain.rs `taken`)
        if held.devices.histories(held.devices.root(op.0)).len() > 1 {
            continue;
        }
        let below = op != (SELF, last_local) && floor.entries.iter().any(|&e| order.reaches(e, op));
        if below && history.holds(op.0, op.1)? {
            gone.entry(op.0).or_default().insert(op.1);
            points += 1;
        }
    }
    if gone.is_empty() {
        return Ok(0); // (having written nothing: a BEGIN it ran in can still export)
    }
    // the last op of each run removed keeps its hash, hashed before anything goes; so does
    // one a peer's last bundle said it has (`_sync_peers`): an export to that peer compares it
    // and starts above it (bundle/out.rs `start`), where without it every op held here went
    let named = named_by_peers(conn)?;
    for (&device, seqs) in &gone {
        let peers_have = |seq: &u64| named.get(&device).is_some_and(|n| n.contains(seq));
        for &seq in seqs
            .iter()
            .filter(|&s| !seqs.contains(&(s + 1)) || peers_have(s))
        {
            if let Some(hash) = history.hash_at(device, seq)? {
                chain::remember(conn, device, seq, &hash)?;
            }
        }
    }
    for entry in &index {
        conn.exec_kept(
            "DELETE FROM main._sync_row_ops
             WHERE table_id = ?1 AND key = ?2 AND device = ?3 AND seq = ?4",
            &entry_values(entry),
        )?;
    }
    conn.exec("DROP TRIGGER main._sync_ops_no_delete", &[])?;
    for (&device, seqs) in &gone {
        for &seq in seqs {
            let at = [Value::from(device), Value::Integer(seq as i64)];
            match device {
                SELF => {
                    conn.exec_kept("DELETE FROM main._sync_ops WHERE seq = ?2 AND ?1 = ?1", &at)?
                }
                _ => conn.exec_kept(
                    "DELETE FROM main._sync_remote WHERE device = ?1 AND seq = ?2",
                    &at,
                )?,
            }
        }
    }
    conn.exec(crate::schema::OPS_NO_DELETE, &[])?;
    // (a history nothing was removed from keeps no horizon: its ops are all here; one the
    // floor names reaches its entry, one it reaches through another's context at least its
    // last op removed, every op below which is below the floor too)
    let mut devices = crate::log::clock::Devices::load(conn)?;
    for (&device, seqs) in &gone {
        let named = floor.entries.iter().filter(|e| e.0 == device);
        let upto = named.map(|e| e.1).chain(seqs.last().copied()).max();
        devices.set_removed(conn, device, upto.unwrap_or(0))?;
        forget_checkpoints(conn, device, devices.removed_upto(device))?;
    }
    for &device in gone.keys() {
        super::trim::trim(conn, &devices, &floors, device)?;
    }
    Ok(index.len() as u64 + points)
}

/// Per history, the seqs a peer's last bundle said it has of it.
fn named_by_peers(conn: &Conn) -> Result<HashMap<DeviceIdx, BTreeSet<u64>>> {
    let mut named: HashMap<DeviceIdx, BTreeSet<u64>> = HashMap::default();
    let mut stmt = conn.prepare("SELECT device, seq FROM main._sync_peers")?;
    while let Some(row) = stmt.step()? {
        (named.entry(DeviceIdx(row.column_int(0))).or_default()).insert(row.column_int(1) as u64);
    }
    Ok(named)
}

/// Drops the checkpoints of history `device` below `upto` that no op held here hashes from:
/// those of removed ops whose next op was removed too (the last op of each run keeps its own),
/// but for those a peer's last bundle named (an export to it compares them), and a forked
/// history's own link (the hash at its base: the op its first op follows, which tells where
/// it left its parent's lineage, log/chain.rs `detached`; without it, a point naming the
/// history merged it back into its parent on the devices that had compacted, and not on the
/// others).
fn forget_checkpoints(conn: &Conn, device: DeviceIdx, upto: u64) -> Result<()> {
    let held = |at: &str| match device {
        SELF => format!("SELECT 1 FROM main._sync_ops o WHERE o.seq = {at}"),
        _ => format!("SELECT 1 FROM main._sync_remote o WHERE o.device = ?1 AND o.seq = {at}"),
    };
    let sql = format!(
        "DELETE FROM main._sync_hashes WHERE device = ?1 AND seq < ?2
           AND NOT EXISTS ({}) AND NOT EXISTS ({})
           AND NOT EXISTS (SELECT 1 FROM main._sync_peers p
                           WHERE p.device = ?1 AND p.seq = main._sync_hashes.seq)
           AND NOT EXISTS (SELECT 1 FROM main._sync_devices d
                           WHERE d.idx = ?1 AND d.parent IS NOT NULL
                             AND d.base = main._sync_hashes.seq)",
        held("main._sync_hashes.seq"),
        held("main._sync_hashes.seq + 1"),
    );
    conn.exec(&sql, &[Value::from(device), Value::Integer(upto as i64)])
}
