//! `sync_resolve(conflict_id, choice)`: a conflict's resolution, written as this device's own
//! change.
//!
//! Invariant: a resolution is an ordinary captured write that follows every side of its
//! conflict and writes every column of it (an op of all of them is appended when capture left
//! one out), so it closes the conflict on every device it reaches; a conflict that is no longer
//! open is not written over (0: already resolved; refused: changed), so a resolution never
//! writes an old value over a later write.

use crate::conflicts::winner_is_local;
use crate::db::{Conn, Error, Result};
use crate::log::clock::{Contexts, Devices, Order};
use crate::log::remote::Forms;
use crate::log::{self, LocalOps, SyncedTable};
use crate::merge::row_index::RowReader;
use crate::merge::{self, RowState};
use crate::op::OpKind;
use crate::schema::{DeviceIdx, CHANGED, RESOLVED};
use crate::sql::quote_ident;
use crate::value::{hex, Value};

/// `sync_resolve(conflict_id, choice)`: writes the chosen values as an ordinary captured change
/// that follows every side. `choice` is 'local', 'remote' or a JSON object of column values.
/// 1 once written; 0 for a conflict a later write resolved, and a conflict a side of which was
/// written again is refused, so no later write is ever overwritten with an old value.
/// Choosing the side that kept a row the winner deleted brings the whole row back as the
/// merge rule shows it without that delete.
pub fn sync_resolve(conn: &Conn, args: &[Value]) -> Result<Value> {
    crate::identity::require_device(conn, crate::apply::fork)?;
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
    conn.savepoint("sync_resolve_records", || {
        crate::apply::follow_schema(conn, crate::capture::Refuse::All)?;
        crate::apply::fold_local(conn)
    })?;
    let mut stmt = conn.prepare(
        "SELECT table_id, key, columns, loser_device, loser_seq, winner_device, winner_seq, state
         FROM main._sync_conflicts WHERE id = ?1",
    )?;
    stmt.bind(1, &Value::Blob(id.clone()))?;
    let Some(r) = stmt.step()? else {
        drop(stmt);
        return resolve_held_out(conn, &id, choice);
    };
    let table_id = r.column_int(0);
    let key_blob = r.column(1)?.as_blob().unwrap_or_default().to_vec();
    let key: Vec<Value> =
        rmp_serde::from_slice(&key_blob).map_err(|_| Error::new("damaged conflict record"))?;
    let columns = parse_string_list(r.column(2)?.as_text().unwrap_or("[]"))?;
    let n = |i| r.column_int(i);
    let (loser, winner, state) = (
        (DeviceIdx(n(3)), n(4) as u64),
        (DeviceIdx(n(5)), n(6) as u64),
        n(7),
    );
    drop(stmt);
    match state {
        // (a write of its columns that saw every side was made here or arrived: nothing to
        // write, and a pass over every open conflict goes on; a choice that is no choice is
        // refused all the same)
        RESOLVED => {
            if !matches!(choice, "local" | "remote") {
                parse_choice(choice)?;
            }
            return Ok(Value::Integer(0));
        }
        CHANGED => {
            return Err(Error::new(format!(
                "conflict {} changed after it was read: a side of it was written again, or \
                 another write now wins; no resolution was written, and sync_conflicts now \
                 lists the row's records as they are (read it again for the row's open \
                 conflicts and their ids)",
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
        recent: None,
    };
    // every op on the row: fold_local above indexed the local ops written since the last import
    let (ops, key_cells) = reader.ops(conn, &table, &key_blob)?;
    let floors = crate::log::floors::Floors::load(conn)?;
    let order = Order {
        devices: &devices,
        contexts: &contexts,
        floors: &floors,
    };
    let position = |(device, seq): (DeviceIdx, u64)| {
        ops.iter()
            .position(|o| devices.idx(&o.device) == Some(device) && o.seq == seq)
            .ok_or_else(|| Error::new("damaged conflict record (a side's op is missing)"))
    };
    let (l, w) = (position(loser)?, position(winner)?);
    let (local_side, remote_side) = match winner_is_local(loser.0, winner.0) {
        true => (w, l),
        false => (l, w),
    };
    let state = merge::row_state(&ops, &key_cells, &order);
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
                (false, _) if ops[l].kind == OpKind::Delete => None,
                (false, true) => Some(merge::revived(&ops, l, w, &key_cells, &order)),
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
                let mut row = merge::revived(&ops, l, w, &key_cells, &order);
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
    contexts.check()?;
    local.check()?;
    let held = crate::apply::held_out_reason(conn, table_id, &key_blob)?.is_some();
    conn.savepoint("sync_resolve", || {
        if held {
            // a row held out of its table by a constraint (apply/park.rs): the resolution is
            // this device's op on the columns chosen, written to the log, not the table (an
            // insert there would write every other column anew); the row stays held out, as
            // the merge now shows it, until its constraint passes
            append_op(conn, &table, &key, target.as_deref())?;
            return crate::apply::fold_local(conn);
        }
        write_resolution(conn, &table, &key, target.as_deref()).map_err(|e| {
            match e.is_constraint() {
                true => Error::new(format!(
                    "the chosen values break a constraint of table {:?} ({e}); nothing was \
                 written: choose other values",
                    table.name
                )),
                false => e,
            }
        })?;
        // every record of the row: the resolution follows every side it saw
        crate::apply::fold_local(conn)
    })?;
    Ok(Value::Integer(1))
}

/// `sync_resolve` of a row held out of its table by a constraint (apply/park.rs): 'remote'
/// gives the row up (a delete of it, written as this device's op), a JSON object writes the
/// row again with those values (an insert, captured: it comes back on every device once the
/// values pass); 'local' is refused, as the row cannot come back as it is.
fn resolve_held_out(conn: &Conn, id: &[u8], choice: &str) -> Result<Value> {
    let Some((table_id, key, cells)) = crate::apply::held_out(conn, id)? else {
        return Err(Error::new(format!(
            "no conflict with id {} (sync_conflicts lists the open ones; a row held out by a \
             constraint that came back is no longer listed)",
            hex(id)
        )));
    };
    let Some(table) = log::synced_tables(conn)?
        .into_iter()
        .find(|t| t.id == table_id)
    else {
        return Err(Error::new(
            "the row's table is no longer synced: call sync_enable on it to resolve it",
        ));
    };
    let target = match choice {
        "local" => {
            return Err(Error::new(format!(
                "conflict {} holds a row out of table {:?} because it breaks a constraint \
                 there, so it cannot come back as it is: choose 'remote' to give the row up \
                 (it is deleted), or give new values as a JSON object (e.g. another value for \
                 the constraint's columns)",
                hex(id),
                table.name
            )))
        }
        "remote" => None,
        json => {
            let mut row = cells;
            for (c, v) in chosen_values(&table, json)? {
                match row.iter_mut().find(|(name, _)| *name == c) {
                    Some(cell) => cell.1 = v,
                    None => row.push((c, v)),
                }
            }
            Some(row)
        }
    };
    // (only a constraint's refusal is one: a column this device lacks says so itself)
    let refused = |e: Error| match e.is_constraint() {
        true => Error::new(format!(
            "the row with these values still breaks a constraint of table {:?} ({e}); nothing \
             was written: choose other values",
            table.name
        )),
        false => e,
    };
    conn.savepoint("sync_resolve", || {
        match &target {
            None => append_op(conn, &table, &key, None)?,
            Some(cells) => write_resolution(conn, &table, &key, Some(cells)).map_err(refused)?,
        }
        crate::apply::fold_local(conn)?;
        // (a connection with foreign keys off wrote the row all the same: judged here, as
        // every import judges it)
        let key_blob = log::row_key(key.iter());
        match crate::apply::held_out_reason(conn, table_id, &key_blob)? {
            Some(reason) if target.is_some() => Err(Error::new(format!(
                "the row with these values still breaks a constraint of table {:?} ({reason}); \
                 nothing was written: choose other values",
                table.name
            ))),
            _ => Ok(()),
        }
    })?;
    Ok(Value::Integer(1))
}

/// The columns and values of a JSON choice: at least one column, each one the table has and
/// none of its key (a resolution writes the row in conflict, it never moves it).
fn chosen_values(table: &SyncedTable, json: &str) -> Result<Vec<(String, Value)>> {
    let object = parse_choice(json)?;
    let key: Vec<&str> = table.key_columns().collect();
    let mut named: Vec<&str> = Vec::new();
    object
        .into_iter()
        .map(|(c, v)| {
            let name = table.column(&c).ok_or_else(|| {
                Error::new(format!(
                    "table {:?} has no column {c:?} on this device: check the name; where \
                         other devices added that column, add it here too (ALTER TABLE … ADD \
                         COLUMN) and resolve again, or choose 'local' or 'remote'",
                    table.name
                ))
            })?;
            if named.contains(&name) {
                return Err(Error::new(format!("choice names column {name:?} twice")));
            }
            named.push(name);
            if key.contains(&name) {
                return Err(Error::new(format!(
                    "choice names key column {name:?}: a resolution writes the row's other \
                     columns only, even where the conflict lists the key's (leave it out; to \
                     move the row to another key, delete it and insert the new one)"
                )));
            }
            Ok((name.to_string(), v))
        })
        .collect()
}

/// A JSON choice's columns and values, read without a table: a JSON object of one or more.
fn parse_choice(json: &str) -> Result<Vec<(String, Value)>> {
    if ["local", "remote"]
        .iter()
        .any(|c| json.trim().eq_ignore_ascii_case(c))
    {
        return Err(Error::new(format!(
            "choice {json:?}: the choices are written 'local' and 'remote', in lower case"
        )));
    }
    if !json.trim_start().starts_with('{') {
        return Err(Error::new(format!(
            "choice {:?} is not 'local', 'remote' or a JSON object of column values (such as \
             '{{\"title\": \"Buy oat milk\"}}')",
            json.chars().take(60).collect::<String>()
        )));
    }
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
    Ok(object)
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
    let missing = target.and_then(|cells| cells.iter().find(|(c, _)| table.column(c).is_none()));
    if let Some((column, _)) = missing {
        return Err(Error::new(format!(
            "the conflict's row has a value in column {column:?}, which table {:?} does not \
             have on this device yet: add the column as the other devices did (ALTER TABLE … \
             ADD COLUMN), then resolve",
            table.name
        )));
    }
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
        None => (OpKind::Delete, Value::Null),
        Some(_) => (OpKind::Update, Value::Integer(mask)),
    };
    let row = log::LogRow {
        shape: "?1".into(),
        kind,
        mask: "?2".into(),
        values: (values.iter().enumerate())
            .map(|(n, (i, _))| (*i, format!("?{}", n + 3)))
            .collect(),
    };
    let mut params = vec![Value::Integer(table.shape_id), mask];
    params.extend(values.into_iter().map(|(_, v)| v));
    conn.exec(&row.insert("main._sync_ops"), &params)
}

fn parse_string_list(json: &str) -> Result<Vec<String>> {
    crate::value::parse_json_string_list(json)
        .map_err(|e| Error::new(format!("damaged conflict record ({e})")))
}
