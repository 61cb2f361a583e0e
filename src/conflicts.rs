//! Conflicts: the records of live sides that lose (`sync_conflicts`); resolve.rs writes their
//! resolution (`sync_resolve`).
//!
//! Invariants: a row's open records are rewritten from its live set (merge/live.rs) every time the
//! row is settled, one per losing live op (merge/rule.rs `losses`), so every device that holds the
//! same ops holds the same open records; a record's id is derived from its two ops (the loser
//! and the winner of its cells), so every device names a conflict the same way, and a conflict
//! whose side was written again gets a new id; and a resolution is an ordinary captured write
//! that follows every side, so it reaches every device and closes the record there too.
//!
//! A record that stops being open is kept as this device's history: `resolved` (an op that
//! follows both its sides arrived or was made here) or `changed` (a side was superseded: its
//! device wrote the cells again without seeing the other side, or another write now wins).
//! Devices keep different histories (one may never have seen a conflict another resolved), so
//! only open records are the same everywhere. The last `KEPT` closed records are kept.
//!
//! `_sync_conflicts` stores each record with its loser and winner; the virtual table
//! `sync_conflicts` (`TABLE`, below: the SQL of schema.rs `conflict_records_sql`, also the view
//! `sync_conflict_records`) names them from this device's point of view: `local` is the winner
//! when only the winner is this device's op, else the loser; `remote` the other; `winner` is
//! always the winner.

use sha2::{Digest, Sha256};

use crate::db::{Conn, Result, Statements, TableDef};
use crate::log::clock::Order;
use crate::log::SyncedTable;
use crate::merge::live::{OpAt, RowLive};
use crate::merge::{Causality, Loss, RowOp, RowState};
use crate::op::OpKind;
use crate::schema::{DeviceIdx, CHANGED, RESOLVED, SELF};
use crate::value::{hex, JsonObject, Value};

/// How many closed records (resolved or changed) a device keeps, the most recently closed.
pub const KEPT: i64 = 1000;

/// Rewrites the open records of one row from its losing sides (`lost`, over `row`'s ops, with
/// the row in `state`); closes the records that are no longer open. Returns how many are new.
pub fn store(
    statements: &mut Statements,
    order: &Order,
    table: &SyncedTable,
    key: &[u8],
    row: &RowLive,
    state: &RowState,
    lost: &[Loss],
) -> Result<u64> {
    let at_row = [Value::Integer(table.id), Value::Blob(key.to_vec())];
    let mut before: Vec<(Vec<u8>, OpAt, OpAt)> = Vec::new();
    let stmt = statements.get(
        "SELECT id, loser_device, loser_seq, winner_device, winner_seq FROM main._sync_conflicts
         WHERE table_id = ?1 AND key = ?2 AND state = 0",
    )?;
    stmt.bind_all(&at_row)?;
    while let Some(row) = stmt.step()? {
        let id = row.column_blob(0)?.unwrap_or_default().to_vec();
        let n = |i| row.column_int(i);
        before.push((
            id,
            (DeviceIdx(n(1)), n(2) as u64),
            (DeviceIdx(n(3)), n(4) as u64),
        ));
    }
    if before.is_empty() && lost.is_empty() {
        return Ok(0);
    }
    let ops = &row.ops;
    let records: Vec<([u8; 16], &Loss, Vec<String>)> = lost
        .iter()
        .map(|l| {
            let columns = in_table_order(table, &l.columns);
            (
                record_id(&ops[l.loser], &ops[l.winner], &columns),
                l,
                columns,
            )
        })
        .collect();
    // records no longer open: resolved when a live op follows both their sides
    let gone: Vec<_> = before
        .iter()
        .filter(|(id, _, _)| !records.iter().any(|(r, _, _)| r[..] == id[..]))
        .collect();
    if !gone.is_empty() {
        let closed = (statements.get("SELECT max(closed) FROM main._sync_conflicts")?)
            .query_value(&[])?
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let side = |(device, seq): OpAt| RowOp {
            device: order.devices.id(device),
            seq,
            lamport: 0,
            kind: OpKind::Update,
            cells: Vec::new(),
        };
        for (n, (id, loser_at, winner)) in gone.iter().enumerate() {
            let (loser, winner) = (side(*loser_at), side(*winner));
            // resolved: a write after both sides, and the loser loses nowhere now (else it is
            // still a side, in a record that changed: fewer columns, another winner)
            let still_loses = lost
                .iter()
                .any(|l| (row.devices[l.loser], ops[l.loser].seq) == *loser_at);
            let resolved = !still_loses
                && row.live.iter().any(|e| {
                    order.follows(&ops[e.op], &loser) && order.follows(&ops[e.op], &winner)
                });
            statements
                .get("UPDATE main._sync_conflicts SET state = ?2, closed = ?3 WHERE id = ?1")?
                .execute(&[
                    Value::Blob(id.clone()),
                    Value::Integer(if resolved { RESOLVED } else { CHANGED }),
                    Value::Integer(closed + 1 + n as i64),
                ])?;
        }
        statements
            .get("DELETE FROM main._sync_conflicts WHERE closed IS NOT NULL AND closed <= ?1")?
            .execute(&[Value::Integer(closed + gone.len() as i64 - KEPT)])?;
    }
    let pk = JsonObject::of(&row.key);
    let mut new = 0;
    for (id, loss, columns) in records {
        if !before.iter().any(|(b, _, _)| b[..] == id[..]) {
            new += 1;
        }
        let (loser, winner) = (&ops[loss.loser], &ops[loss.winner]);
        let names = crate::value::json_string_list(&columns);
        let shown = match state {
            RowState::Absent => "null".to_string(),
            RowState::Present(cells) => {
                let mut obj = JsonObject::new();
                for c in &columns {
                    if let Some((_, v)) = cells.iter().find(|(name, _)| name == c) {
                        obj.field(c, v);
                    }
                }
                obj.finish()
            }
        };
        statements
            .get(
                "INSERT OR REPLACE INTO main._sync_conflicts
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0, NULL)",
            )?
            .execute(&[
                Value::Blob(id.to_vec()),
                Value::Integer(table.id),
                Value::Blob(key.to_vec()),
                Value::Text(pk.clone()),
                Value::Text(names),
                Value::from(row.devices[loss.loser]),
                Value::Integer(loser.seq as i64),
                Value::Text(hex(&op_id(loser))),
                Value::Text(side_values(loser, &columns)),
                Value::from(row.devices[loss.winner]),
                Value::Integer(winner.seq as i64),
                Value::Text(hex(&op_id(winner))),
                Value::Text(shown),
            ])?;
    }
    Ok(new)
}

/// `columns` in the order of the table's columns (any it does not have last, by name), so that
/// every device lists a record's columns alike.
fn in_table_order(table: &SyncedTable, columns: &[String]) -> Vec<String> {
    let mut sorted = columns.to_vec();
    let position = |c: &String| table.shape.columns.iter().position(|x| x == c);
    sorted.sort_by(|a, b| {
        (position(a).is_none(), position(a), a).cmp(&(position(b).is_none(), position(b), b))
    });
    sorted
}

/// The winner is the local side when only the winner is this device's (the view
/// `sync_conflicts` spells the same rule in SQL).
pub fn winner_is_local(loser_device: DeviceIdx, winner_device: DeviceIdx) -> bool {
    winner_device == SELF && loser_device != SELF
}

fn op_id(op: &RowOp) -> [u8; 16] {
    crate::op::op_id(&op.device, op.seq as i64)
}

/// A record's id: from the op ids of its loser and its winner, and its columns (the JSON list
/// `sync_conflicts` shows), so that a record that lost a column to a later write is another
/// record, and a resolution read before it is refused as changed.
fn record_id(loser: &RowOp, winner: &RowOp, columns: &[String]) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(op_id(loser))
        .chain_update(op_id(winner))
        .chain_update(crate::value::json_string_list(columns))
        .finalize();
    digest[..16].try_into().expect("16 of 32 bytes")
}

/// One side's values for the contested columns, as JSON; `null` for a delete.
fn side_values(op: &RowOp, columns: &[String]) -> String {
    if op.kind == OpKind::Delete {
        return "null".into();
    }
    let mut obj = JsonObject::new();
    for c in columns {
        if let Some((_, v)) = op.cells.iter().find(|(name, _)| name == c) {
            obj.field(c, v);
        }
    }
    obj.finish()
}

/// The virtual table `sync_conflicts`: the planner's `=` on `id`, `table_name`, `resolved` and
/// `kind` become conditions on the stored records (the id through its primary key).
pub static TABLE: TableDef = TableDef {
    name: "sync_conflicts",
    columns: crate::schema::CONFLICT_COLUMNS,
    filterable: &[0, 1, 9, 10],
    rows: table_rows,
    still: still_there,
};

/// Whether record `row` (as `table_rows` read it) is still listed as it was: a resolution
/// closes every open record of the cells it writes.
fn still_there(conn: &Conn, row: &[Value]) -> Result<bool> {
    let filters = [(0, row[0].clone()), (9, row[9].clone())];
    Ok(!table_rows(conn, &filters)?.is_empty())
}

fn table_rows(conn: &Conn, filters: &[(usize, Value)]) -> Result<Vec<Vec<Value>>> {
    if !crate::schema::is_initialized(conn)? {
        return Ok(Vec::new()); // no device: no records
    }
    let (mut on_conflicts, mut on_parked, mut params) = (String::new(), String::new(), vec![]);
    for (column, value) in filters {
        let n = params.len() + 1;
        let (c, p) = match column {
            0 => {
                let id = value.as_text().and_then(crate::value::unhex);
                params.push(id.map_or(Value::Null, Value::Blob));
                (format!("c.id = ?{n}"), format!("p.id = ?{n}"))
            }
            1 => {
                params.push(value.clone());
                (format!("t.name = ?{n}"), format!("t.name = ?{n}"))
            }
            9 => {
                params.push(value.clone());
                (format!("c.state = ?{n}"), format!("0 = ?{n}"))
            }
            _ => {
                params.push(value.clone());
                (
                    format!("'concurrent' = ?{n}"),
                    format!("'constraint' = ?{n}"),
                )
            }
        };
        on_conflicts += &format!(" AND {c}");
        on_parked += &format!(" AND {p}");
    }
    let sql = format!(
        "SELECT * FROM ({}) ORDER BY 1",
        crate::schema::conflict_records_sql(&on_conflicts, &on_parked)
    )
    .replace("FROM _sync_", "FROM main._sync_")
    .replace("JOIN _sync_", "JOIN main._sync_");
    let mut stmt = conn.prepare(&sql)?;
    stmt.bind_all(&params)?;
    let mut rows = Vec::new();
    while let Some(row) = stmt.step()? {
        rows.push(
            (0..TABLE.columns.len())
                .map(|i| row.column(i))
                .collect::<Result<_>>()?,
        );
    }
    Ok(rows)
}
