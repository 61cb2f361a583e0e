//! Conflicts: the records of live sides that lose (`sync_conflicts`) and their resolution
//! (`sync_resolve`).
//!
//! Invariants: a row's open records are rewritten from its live set (live.rs) every time the
//! row is settled, one per losing live op (merge.rs `losses`), so every device that holds the
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
//! `_sync_conflicts` stores each record with its loser and winner; the view `sync_conflicts`
//! names them from this device's point of view: `local` is the winner when only the winner is
//! this device's op, else the loser; `remote` the other; `winner` is always the winner.

use sha2::{Digest, Sha256};

use crate::clock::{Contexts, Devices, Order};
use crate::db::{Conn, Error, Result, Statements};
use crate::live::{OpAt, RowLive};
use crate::log::{self, LocalOps, SyncedTable, SELF};
use crate::merge::{self, Causality, Loss, RowOp, RowState};
use crate::op;
use crate::remote::Forms;
use crate::row_index::RowReader;
use crate::sql::quote_ident;
use crate::value::{hex, JsonObject, Value};

/// How many closed records (resolved or changed) a device keeps, the most recently closed.
pub const KEPT: i64 = 1000;

/// `_sync_conflicts.state`.
const OPEN: i64 = 0;
const RESOLVED: i64 = 1;
const CHANGED: i64 = 2;

pub fn create(conn: &Conn) -> Result<()> {
    conn.exec(
        "CREATE TABLE IF NOT EXISTS main._sync_conflicts(
           id BLOB PRIMARY KEY,
           table_id INTEGER NOT NULL,
           key BLOB NOT NULL,
           pk TEXT NOT NULL,
           columns TEXT NOT NULL,
           loser_device INTEGER NOT NULL,
           loser_seq INTEGER NOT NULL,
           loser_op TEXT NOT NULL,
           loser_values TEXT NOT NULL,
           winner_device INTEGER NOT NULL,
           winner_seq INTEGER NOT NULL,
           winner_op TEXT NOT NULL,
           winner_values TEXT NOT NULL,
           state INTEGER NOT NULL,
           closed INTEGER
         )",
        &[],
    )?;
    conn.exec(
        &format!(
            "CREATE INDEX IF NOT EXISTS main._sync_conflicts_row ON _sync_conflicts(table_id, key)
             WHERE state = {OPEN}"
        ),
        &[],
    )?;
    conn.exec(
        "CREATE INDEX IF NOT EXISTS main._sync_conflicts_closed ON _sync_conflicts(closed)
         WHERE closed IS NOT NULL",
        &[],
    )?;
    // views name their tables unqualified: a view may not reach into `main` when its database
    // is ATTACHed under another name
    // the same rule as `winner_is_local`
    let mine = format!("(c.winner_device = {SELF} AND c.loser_device <> {SELF})");
    conn.exec(
        &format!(
            "CREATE VIEW IF NOT EXISTS main.sync_conflicts(id, table_name, pk, columns, local_op_id,
                remote_op_id, winner_op_id, local_values, remote_values, resolved) AS
             SELECT lower(hex(c.id)), t.name, c.pk, c.columns,
                    CASE WHEN {mine} THEN c.winner_op ELSE c.loser_op END,
                    CASE WHEN {mine} THEN c.loser_op ELSE c.winner_op END,
                    c.winner_op,
                    CASE WHEN {mine} THEN c.winner_values ELSE c.loser_values END,
                    CASE WHEN {mine} THEN c.loser_values ELSE c.winner_values END,
                    c.state
             FROM _sync_conflicts c JOIN _sync_tables t ON t.id = c.table_id
             WHERE c.state <> {CHANGED}"
        ),
        &[],
    )
}

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
    let conn = statements.conn();
    let at_row = [Value::Integer(table.id), Value::Blob(key.to_vec())];
    let mut before: Vec<(Vec<u8>, OpAt, OpAt)> = Vec::new();
    let stmt = statements.get(
        "SELECT id, loser_device, loser_seq, winner_device, winner_seq FROM main._sync_conflicts
         WHERE table_id = ?1 AND key = ?2 AND state = 0",
    )?;
    stmt.bind_all(&at_row)?;
    while stmt.step()? {
        let id = stmt.column_blob(0)?.unwrap_or_default().to_vec();
        let n = |i| stmt.column_int(i);
        before.push((id, (n(1), n(2) as u64), (n(3), n(4) as u64)));
    }
    if before.is_empty() && lost.is_empty() {
        return Ok(0);
    }
    let ops = &row.ops;
    let records: Vec<([u8; 16], &Loss)> = lost
        .iter()
        .map(|l| (record_id(&ops[l.loser], &ops[l.winner]), l))
        .collect();
    // records no longer open: resolved when a live op follows both their sides
    let gone: Vec<_> = before
        .iter()
        .filter(|(id, _, _)| !records.iter().any(|(r, _)| r[..] == id[..]))
        .collect();
    if !gone.is_empty() {
        let closed = conn
            .query_value("SELECT max(closed) FROM main._sync_conflicts", &[])?
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let side = |(device, seq): OpAt| RowOp {
            device: order.devices.id(device),
            seq,
            lamport: 0,
            kind: op::UPDATE,
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
            conn.exec(
                "UPDATE main._sync_conflicts SET state = ?2, closed = ?3 WHERE id = ?1",
                &[
                    Value::Blob(id.clone()),
                    Value::Integer(if resolved { RESOLVED } else { CHANGED }),
                    Value::Integer(closed + 1 + n as i64),
                ],
            )?;
        }
        conn.exec(
            "DELETE FROM main._sync_conflicts WHERE closed IS NOT NULL AND closed <= ?1",
            &[Value::Integer(closed + gone.len() as i64 - KEPT)],
        )?;
    }
    let pk = JsonObject::of(&row.key);
    let mut new = 0;
    for (id, loss) in records {
        if !before.iter().any(|(b, _, _)| b[..] == id[..]) {
            new += 1;
        }
        let columns = in_table_order(table, &loss.columns);
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
        conn.exec(
            "INSERT OR REPLACE INTO main._sync_conflicts
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0, NULL)",
            &[
                Value::Blob(id.to_vec()),
                Value::Integer(table.id),
                Value::Blob(key.to_vec()),
                Value::Text(pk.clone()),
                Value::Text(names),
                Value::Integer(row.devices[loss.loser]),
                Value::Integer(loser.seq as i64),
                Value::Text(hex(&op_id(loser))),
                Value::Text(side_values(loser, &columns)),
                Value::Integer(row.devices[loss.winner]),
                Value::Integer(winner.seq as i64),
                Value::Text(hex(&op_id(winner))),
                Value::Text(shown),
            ],
        )?;
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
fn winner_is_local(loser_device: i64, winner_device: i64) -> bool {
    winner_device == SELF && loser_device != SELF
}

fn op_id(op: &RowOp) -> [u8; 16] {
    log::op_id(&op.device, op.seq as i64)
}

/// A record's id: from the op ids of its loser and its winner.
fn record_id(loser: &RowOp, winner: &RowOp) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(op_id(loser))
        .chain_update(op_id(winner))
        .finalize();
    digest[..16].try_into().expect("16 of 32 bytes")
}

/// One side's values for the contested columns, as JSON; `null` for a delete.
fn side_values(op: &RowOp, columns: &[String]) -> String {
    if op.kind == op::DELETE {
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

/// `sync_resolve(conflict_id, choice)`: writes the chosen values as an ordinary captured change
/// that follows every side. `choice` is 'local', 'remote' or a JSON object of column values. A
/// conflict that is no longer open is refused (a later write resolved it, or a side of it was
/// written again), so no later write is ever overwritten with an old value; choosing the side
/// that kept a row the winner deleted brings the whole row back as the merge rule shows it
/// without that delete.
pub fn sync_resolve(conn: &Conn, args: &[Value]) -> Result<Value> {
    crate::identity::require_device(conn)?;
    let id = args[0]
        .as_text()
        .and_then(|s| crate::value::unhex(s).filter(|b| b.len() == 16))
        .ok_or_else(|| Error::new("expects a conflict id (32 hex digits) as its first argument"))?;
    let choice = args[1].as_text().ok_or_else(|| {
        Error::new("expects 'local', 'remote' or a JSON object as its second argument")
    })?;
    // the records of rows written here since the last import are brought up to date first (a
    // write that follows every side of a conflict resolves it): they stay so, also when this
    // call is refused
    conn.savepoint("sync_resolve_records", || crate::apply::fold_local(conn))?;
    let mut stmt = conn.prepare(
        "SELECT table_id, key, columns, loser_device, loser_seq, winner_device, winner_seq, state
         FROM main._sync_conflicts WHERE id = ?1",
    )?;
    stmt.bind(1, &Value::Blob(id.clone()))?;
    if !stmt.step()? {
        return Err(Error::new(format!(
            "no conflict with id {} (sync_conflicts lists the open ones)",
            hex(&id)
        )));
    }
    let table_id = stmt.column_int(0);
    let key_blob = stmt.column(1)?.as_blob().unwrap_or_default().to_vec();
    let key: Vec<Value> =
        rmp_serde::from_slice(&key_blob).map_err(|_| Error::new("damaged conflict record"))?;
    let columns = parse_string_list(stmt.column(2)?.as_text().unwrap_or("[]"))?;
    let n = |i| stmt.column_int(i);
    let (loser, winner, state) = ((n(3), n(4) as u64), (n(5), n(6) as u64), n(7));
    drop(stmt);
    match state {
        RESOLVED => {
            return Err(Error::new(format!(
                "conflict {} is already resolved: a write of its columns that saw every side \
                 was made here or arrived; nothing was written (to change the row now, write it \
                 as usual)",
                hex(&id)
            )))
        }
        CHANGED => {
            return Err(Error::new(format!(
                "conflict {} changed after it was read: a side of it was written again, or \
                 another write now wins; nothing was written (read sync_conflicts again for \
                 the row's open conflicts)",
                hex(&id)
            )))
        }
        _ => {}
    }
    let table = match log::synced_tables(conn)?
        .into_iter()
        .find(|t| t.id == table_id)
    {
        Some(table) => table,
        None => {
            let name = conn
                .query_value(
                    "SELECT name FROM main._sync_tables WHERE id = ?1",
                    &[Value::Integer(table_id)],
                )?
                .and_then(|v| v.as_text().map(str::to_string))
                .unwrap_or_default();
            return Err(Error::new(format!(
                "the conflict's table {name:?} is no longer synced: call sync_enable({name:?}) \
                 to resolve it, or write the row as usual"
            )));
        }
    };
    let devices = Devices::load(conn)?;
    let contexts = Contexts::load(conn)?;
    let (local, forms) = (LocalOps::load(conn)?, Forms::load(conn)?);
    let reader = RowReader {
        devices: &devices,
        local: &local,
        forms: &forms,
    };
    // every op on the row: fold_local above indexed the local ops written since the last import
    let (ops, _) = reader.ops(conn, &table, &key_blob)?;
    let order = Order {
        devices: &devices,
        contexts: &contexts,
    };
    let position = |(device, seq): (i64, u64)| {
        ops.iter()
            .position(|o| devices.idx(&o.device) == Some(device) && o.seq == seq)
            .ok_or_else(|| Error::new("damaged conflict record (a side's op is missing)"))
    };
    let (l, w) = (position(loser)?, position(winner)?);
    let (local_side, remote_side) = match winner_is_local(loser.0, winner.0) {
        true => (w, l),
        false => (l, w),
    };
    let state = merge::row_state(&ops, &order);
    let absent = state == RowState::Absent;
    let target: Option<Vec<(String, Value)>> = match choice {
        "local" | "remote" => {
            let side = if choice == "local" {
                local_side
            } else {
                remote_side
            };
            match (side == w, absent) {
                // the winner's side: what the table shows
                (true, true) => None,
                (true, false) => match &state {
                    RowState::Present(cells) => Some(
                        cells
                            .iter()
                            .filter(|(c, _)| columns.contains(c))
                            .cloned()
                            .collect(),
                    ),
                    RowState::Absent => None,
                },
                (false, _) if ops[l].kind == op::DELETE => None,
                (false, true) => Some(merge::revived(&ops, l, w, &order)),
                (false, false) => Some(
                    ops[l]
                        .cells
                        .iter()
                        .filter(|(c, _)| columns.contains(c))
                        .cloned()
                        .collect(),
                ),
            }
        }
        json => {
            let mut chosen = chosen_values(&table, json)?;
            if !chosen.iter().any(|(c, _)| columns.contains(c)) {
                return Err(Error::new(format!(
                    "choice {json} names none of the conflict's columns {}: name one or more of \
                     them (those you leave out keep what the table shows)",
                    crate::value::json_string_list(&columns)
                )));
            }
            if absent {
                // the row comes back as the losing side shows it, with the chosen values
                let mut row = merge::revived(&ops, l, w, &order);
                for (c, v) in chosen {
                    match row.iter_mut().find(|(name, _)| *name == c) {
                        Some(cell) => cell.1 = v,
                        None => row.push((c, v)),
                    }
                }
                Some(row)
            } else {
                // the conflict's columns left out keep what the table shows: written again,
                // after every side, so that the resolution closes the conflict
                if let RowState::Present(cells) = &state {
                    for (c, v) in cells {
                        if columns.contains(c) && !chosen.iter().any(|(name, _)| name == c) {
                            chosen.push((c.clone(), v.clone()));
                        }
                    }
                }
                Some(chosen)
            }
        }
    };
    conn.savepoint("sync_resolve", || {
        write_resolution(conn, &table, &key, target.as_deref())?;
        // every record of the row: the resolution follows every side it saw
        crate::apply::fold_local(conn)
    })?;
    Ok(Value::Integer(1))
}

/// The columns and values of a JSON choice: at least one column, each one the table has and
/// none of its key (a resolution writes the row in conflict, it never moves it).
fn chosen_values(table: &SyncedTable, json: &str) -> Result<Vec<(String, Value)>> {
    let object = crate::value::parse_json_object(json).map_err(|e| {
        Error::new(format!(
            "choice is not 'local', 'remote' or a JSON object of column values: {e}"
        ))
    })?;
    if object.is_empty() {
        return Err(Error::new(
            "choice '{}' names no column: give the values of one or more columns of the row \
             (or 'local' or 'remote')",
        ));
    }
    let key: Vec<&str> = table.key_columns().collect();
    let mut named: Vec<&str> = Vec::new();
    object
        .into_iter()
        .map(|(c, v)| {
            let name = table
                .column(&c)
                .ok_or_else(|| Error::new(format!("table {:?} has no column {c:?}", table.name)))?;
            if named.contains(&name) {
                return Err(Error::new(format!("choice names column {name:?} twice")));
            }
            named.push(name);
            if key.contains(&name) {
                return Err(Error::new(format!(
                    "choice names key column {name:?}: a resolution cannot move the row to \
                     another key (to do that, delete the row and insert the new one)"
                )));
            }
            Ok((name.to_string(), v))
        })
        .collect()
}

/// Writes the resolution through the capture triggers; when the table already holds some of it
/// (the op captured, if any, does not write every chosen column), appends an op of all of it,
/// so that the resolution writes every chosen column and reaches every device.
fn write_resolution(
    conn: &Conn,
    table: &SyncedTable,
    key: &[Value],
    target: Option<&[(String, Value)]>,
) -> Result<()> {
    let name = quote_ident(&table.name);
    let key_names: Vec<&str> = table.key_columns().collect();
    let key_match = crate::sql::key_match(key_names.iter().copied());
    let before = log::last_local_seq(conn)?;
    let exists = conn
        .query_value(&format!("SELECT 1 FROM main.{name} WHERE {key_match}"), key)?
        .is_some();
    match target {
        None => conn.exec(&format!("DELETE FROM main.{name} WHERE {key_match}"), key)?,
        Some(cells) if exists => {
            if !cells.is_empty() {
                let sets: Vec<String> = cells
                    .iter()
                    .enumerate()
                    .map(|(i, (c, _))| format!("{} = ?{}", quote_ident(c), key.len() + i + 1))
                    .collect();
                let mut params = key.to_vec();
                params.extend(cells.iter().map(|(_, v)| v.clone()));
                conn.exec(
                    &format!(
                        "UPDATE main.{name} SET {} WHERE {key_match}",
                        sets.join(", ")
                    ),
                    &params,
                )?;
            }
        }
        Some(cells) => {
            let mut names: Vec<String> = key_names.iter().map(|c| quote_ident(c)).collect();
            let mut params = key.to_vec();
            for (c, v) in cells
                .iter()
                .filter(|(c, _)| !key_names.contains(&c.as_str()))
            {
                names.push(quote_ident(c));
                params.push(v.clone());
            }
            let marks: Vec<String> = (1..=params.len()).map(|i| format!("?{i}")).collect();
            conn.exec(
                &format!(
                    "INSERT INTO main.{name}({}) VALUES ({})",
                    names.join(", "),
                    marks.join(", ")
                ),
                &params,
            )?;
        }
    }
    // the captured op names only the columns whose value changed: one that already showed
    // the chosen value must be written too, or its losing side stays live
    let after = log::last_local_seq(conn)?;
    let covered = after > before && {
        let op = LocalOps::load(conn)?.get(conn, after as u64)?;
        target.is_none_or(|cells| {
            cells
                .iter()
                .all(|(c, _)| op.cells.iter().any(|(w, _)| w == c))
        })
    };
    if !covered {
        append_op(conn, table, key, target)?;
    }
    Ok(())
}

/// Appends a local op by hand: a delete, or an update of `cells`.
fn append_op(
    conn: &Conn,
    table: &SyncedTable,
    key: &[Value],
    target: Option<&[(String, Value)]>,
) -> Result<()> {
    let shape = &table.shape;
    let mut values: Vec<(usize, Value)> =
        shape.pk.iter().copied().zip(key.iter().cloned()).collect();
    let mut mask: i64 = 0;
    if let Some(cells) = target {
        for (c, v) in cells {
            let i = shape
                .columns
                .iter()
                .position(|x| x == c)
                .expect("column checked");
            mask |= 1 << i;
            if !shape.pk.contains(&i) {
                values.push((i, v.clone()));
            }
        }
    }
    let (kind, mask) = match target {
        None => (log::DELETE, Value::Null),
        Some(_) => (log::UPDATE, Value::Integer(mask)),
    };
    let cols: String = values.iter().map(|(i, _)| format!(", v{i}")).collect();
    let marks: String = (0..values.len()).map(|i| format!(", ?{}", i + 4)).collect();
    let mut params = vec![Value::Integer(table.shape_id), Value::Integer(kind), mask];
    params.extend(values.into_iter().map(|(_, v)| v));
    conn.exec(
        &format!("INSERT INTO main._sync_ops(shape, kind, mask{cols}) VALUES (?1, ?2, ?3{marks})"),
        &params,
    )
}

fn parse_string_list(json: &str) -> Result<Vec<String>> {
    crate::value::parse_json_string_list(json)
        .map_err(|e| Error::new(format!("damaged conflict record ({e})")))
}
