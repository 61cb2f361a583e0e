//! Conflicts: the records of concurrent edits (`sync_conflicts`) and their resolution
//! (`sync_resolve`).
//!
//! Invariants: a row's conflict records are rewritten from the ops on the row every time the row
//! is settled (merge.rs finds them), so every device that holds the same ops holds the same
//! records; a record's id is derived from the two op ids, so every device names a conflict the
//! same way; and a resolution is an ordinary captured write that causally follows both sides, so
//! it reaches every device and clears the record there too.
//!
//! `_sync_conflicts` stores each conflict with its two sides ordered by order key (`earlier`,
//! `later`; the table shows `later`). The view `sync_conflicts` names them from this device's
//! point of view: `local` is the side this device wrote when exactly one side is its own, else
//! the earlier side; `remote` the other; `winner` is always the later side.

use sha2::{Digest, Sha256};

use crate::capture::quote_ident;
use crate::clock::{Contexts, Devices, Order};
use crate::db::{Conn, Error, Result};
use crate::log::{self, LocalOps, SyncedTable, SELF};
use crate::merge::{self, Causality, Conflict, RowOp, RowState};
use crate::op;
use crate::remote::Forms;
use crate::row_index::RowReader;
use crate::value::{hex, JsonObject, Value};

pub fn create(conn: &Conn) -> Result<()> {
    conn.exec(
        "CREATE TABLE IF NOT EXISTS main._sync_conflicts(
           id BLOB PRIMARY KEY,
           table_id INTEGER NOT NULL,
           key BLOB NOT NULL,
           pk TEXT NOT NULL,
           columns TEXT NOT NULL,
           earlier_device INTEGER NOT NULL,
           earlier_seq INTEGER NOT NULL,
           earlier_op TEXT NOT NULL,
           earlier_values TEXT NOT NULL,
           later_device INTEGER NOT NULL,
           later_seq INTEGER NOT NULL,
           later_op TEXT NOT NULL,
           later_values TEXT NOT NULL,
           resolved INTEGER NOT NULL
         )",
        &[],
    )?;
    conn.exec(
        "CREATE INDEX IF NOT EXISTS main._sync_conflicts_row ON _sync_conflicts(table_id, key)",
        &[],
    )?;
    // views name their tables unqualified: a view may not reach into `main` when its database
    // is ATTACHed under another name
    // the same rule as `later_is_local`
    let mine = format!("(c.later_device = {SELF} AND c.earlier_device <> {SELF})");
    conn.exec(
        &format!(
            "CREATE VIEW IF NOT EXISTS main.sync_conflicts(id, table_name, pk, columns, local_op_id,
                remote_op_id, winner_op_id, local_values, remote_values, resolved) AS
             SELECT lower(hex(c.id)), t.name, c.pk, c.columns,
                    CASE WHEN {mine} THEN c.later_op ELSE c.earlier_op END,
                    CASE WHEN {mine} THEN c.earlier_op ELSE c.later_op END,
                    c.later_op,
                    CASE WHEN {mine} THEN c.later_values ELSE c.earlier_values END,
                    CASE WHEN {mine} THEN c.earlier_values ELSE c.later_values END,
                    c.resolved
             FROM _sync_conflicts c JOIN _sync_tables t ON t.id = c.table_id"
        ),
        &[],
    )
}

/// Replaces the conflict records of one row with `found`; returns how many are new.
pub fn store(
    conn: &Conn,
    devices: &Devices,
    table: &SyncedTable,
    key: &[u8],
    key_values: &[(String, Value)],
    ops: &[RowOp],
    found: &[Conflict],
) -> Result<u64> {
    let row = [Value::Integer(table.id), Value::Blob(key.to_vec())];
    let mut before = Vec::new();
    let mut stmt =
        conn.prepare("SELECT id FROM main._sync_conflicts WHERE table_id = ?1 AND key = ?2")?;
    stmt.bind_all(&row)?;
    while stmt.step()? {
        before.push(stmt.column(0)?);
    }
    drop(stmt);
    if before.is_empty() && found.is_empty() {
        return Ok(0);
    }
    conn.exec(
        "DELETE FROM main._sync_conflicts WHERE table_id = ?1 AND key = ?2",
        &row,
    )?;
    let pk = JsonObject::of(key_values);
    let mut new = 0;
    for conflict in found {
        let (a, b) = (&ops[conflict.earlier], &ops[conflict.later]);
        let (a_id, b_id) = (
            log::op_id(&a.device, a.seq as i64),
            log::op_id(&b.device, b.seq as i64),
        );
        let id = conflict_id(&a_id, &b_id);
        if !before.contains(&Value::Blob(id.to_vec())) {
            new += 1;
        }
        let mut columns = String::from("[");
        for (i, c) in conflict.columns.iter().enumerate() {
            if i > 0 {
                columns.push(',');
            }
            crate::value::write_json_string(c, &mut columns);
        }
        columns.push(']');
        let idx = |op: &RowOp| devices.idx(&op.device).unwrap_or(0);
        conn.exec(
            "INSERT INTO main._sync_conflicts VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            &[
                Value::Blob(id.to_vec()),
                Value::Integer(table.id),
                Value::Blob(key.to_vec()),
                Value::Text(pk.clone()),
                Value::Text(columns),
                Value::Integer(idx(a)),
                Value::Integer(a.seq as i64),
                Value::Text(hex(&a_id)),
                Value::Text(side_values(a, &conflict.columns)),
                Value::Integer(idx(b)),
                Value::Integer(b.seq as i64),
                Value::Text(hex(&b_id)),
                Value::Text(side_values(b, &conflict.columns)),
                Value::Integer(conflict.resolved as i64),
            ],
        )?;
    }
    Ok(new)
}

/// A conflict's `local` side is the later one when only the later side is this device's (the
/// view `sync_conflicts` spells the same rule in SQL).
fn later_is_local(earlier_device: i64, later_device: i64) -> bool {
    later_device == SELF && earlier_device != SELF
}

fn conflict_id(a: &[u8; 16], b: &[u8; 16]) -> [u8; 16] {
    let digest = Sha256::new().chain_update(a).chain_update(b).finalize();
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
/// that causally follows both sides. `choice` is 'local', 'remote' or a JSON object of column
/// values. A conflict that a later write already resolved is refused, so no later write is ever
/// overwritten with an old value; choosing the side that kept a row the winner deleted brings
/// the whole row back as the merge rule shows it without that delete.
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
    // write that follows both sides of a conflict resolves it): they stay so, also when this
    // call is refused
    conn.savepoint("sync_resolve_records", || crate::apply::fold_local(conn))?;
    let mut stmt = conn.prepare(
        "SELECT table_id, key, columns, earlier_device, earlier_seq, later_device, later_seq
         FROM main._sync_conflicts WHERE id = ?1",
    )?;
    stmt.bind(1, &Value::Blob(id.clone()))?;
    if !stmt.step()? {
        return Err(Error::new(format!("no conflict with id {}", hex(&id))));
    }
    let table_id = stmt.column_int(0);
    let key_blob = stmt.column(1)?.as_blob().unwrap_or_default().to_vec();
    let key: Vec<Value> =
        rmp_serde::from_slice(&key_blob).map_err(|_| Error::new("damaged conflict record"))?;
    let columns = parse_string_list(stmt.column(2)?.as_text().unwrap_or("[]"))?;
    let n = |i| stmt.column_int(i);
    let (earlier, later) = ((n(3), n(4) as u64), (n(5), n(6) as u64));
    drop(stmt);
    let table = log::synced_tables(conn)?
        .into_iter()
        .find(|t| t.id == table_id)
        .ok_or_else(|| Error::new("the conflict's table is no longer synced"))?;
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
    let (e, l) = (position(earlier)?, position(later)?);
    if let Some(k) = (0..ops.len()).find(|&k| {
        k != e && k != l && order.follows(&ops[k], &ops[e]) && order.follows(&ops[k], &ops[l])
    }) {
        return Err(Error::new(format!(
            "conflict {} is already resolved: op {} of device {} wrote its row after seeing \
             both sides; nothing was written (to change the row now, write it as usual)",
            hex(&id),
            ops[k].seq,
            hex(&ops[k].device)
        )));
    }
    let (local_side, remote_side) = if later_is_local(earlier.0, later.0) {
        (l, e)
    } else {
        (e, l)
    };
    let absent = merge::row_state(&ops, &order) == RowState::Absent;
    let target: Option<Vec<(String, Value)>> = match choice {
        "local" | "remote" => {
            let side = if choice == "local" {
                local_side
            } else {
                remote_side
            };
            if ops[side].kind == op::DELETE {
                None
            } else if absent {
                let deleted = if side == e { l } else { e };
                Some(merge::revived(&ops, side, deleted, &order))
            } else {
                Some(
                    ops[side]
                        .cells
                        .iter()
                        .filter(|(c, _)| columns.contains(c))
                        .cloned()
                        .collect(),
                )
            }
        }
        json => {
            let chosen = chosen_values(&table, json)?;
            if absent {
                // the row comes back as the side that kept it shows it, with the chosen values
                let (keeper, deleted) = if ops[e].kind == op::DELETE {
                    (l, e)
                } else {
                    (e, l)
                };
                let mut row = merge::revived(&ops, keeper, deleted, &order);
                for (c, v) in chosen {
                    match row.iter_mut().find(|(name, _)| *name == c) {
                        Some(cell) => cell.1 = v,
                        None => row.push((c, v)),
                    }
                }
                Some(row)
            } else {
                Some(chosen)
            }
        }
    };
    conn.savepoint("sync_resolve", || {
        write_resolution(conn, &table, &key, target.as_deref())?;
        // every record of the row: the resolution follows the sides of this conflict, and of
        // any other conflict on the row it saw
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
    object
        .into_iter()
        .map(|(c, v)| {
            let name = table
                .column(&c)
                .ok_or_else(|| Error::new(format!("table {:?} has no column {c:?}", table.name)))?;
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

/// Writes the resolution through the capture triggers; when the table already holds it (no op
/// was captured), appends the op itself so that the resolution still reaches every device.
fn write_resolution(
    conn: &Conn,
    table: &SyncedTable,
    key: &[Value],
    target: Option<&[(String, Value)]>,
) -> Result<()> {
    let name = quote_ident(&table.name);
    let key_names: Vec<&str> = table.key_columns().collect();
    let key_match = log::key_match(key_names.iter().copied());
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
    if log::last_local_seq(conn)? == before {
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
