//! Catching up with a table that was not captured for a while (`sync_enable` after
//! `sync_disable`, or after the table was dropped and created again): what it holds now is
//! recorded as the ops that take the log's state of each row there.
//!
//! Invariant: after `catch_up`, for every row the log knows of and every row the table holds,
//! the log's state of the row (the merge rule over every op on it) is what the table holds: a
//! row it no longer holds gets a delete, a row the log does not know (or holds as deleted) an
//! insert, and a row whose cells differ an update of those cells. Each is an ordinary op of
//! this device, following every op it holds, so peers take the table's rows as they are now.

use crate::hashed::{HashMap, HashSet};

use crate::db::{Conn, Result, Stmt};
use crate::form::same_value;
use crate::log::{self, row_key, LogRow, SyncedTable};
use crate::merge::live::RowLive;
use crate::merge::RowState;
use crate::op::OpKind;
use crate::sql::quote_ident;
use crate::value::Value;

use super::checks::find_table;
use super::import::Import;

/// Records what table `name` (capturing again, with its current shape) holds that its log's
/// state does not; the caller holds a savepoint. A table `declared_otherwise` than before
/// first sorts the received ops its new declarations take from those they do not (kept.rs),
/// and compares its rows with the log's as the new declarations store them (peers learn of
/// the new declarations from this device's bundles: log/declared.rs).
pub fn catch_up(conn: &Conn, name: &str, declared_otherwise: bool) -> Result<()> {
    let tables = log::synced_tables(conn)?;
    let table = find_table(&tables, name)?;
    // the rows as the table holds them now, before anything below writes any
    let now = read_rows(conn, table)?;
    let mut run = Import::new(conn, &tables)?;
    run.fold_to_last()?;
    if declared_otherwise {
        run.sort_by_declarations(table)?;
    }
    let mut ops: Vec<(OpKind, Option<i64>, Vec<Value>)> = Vec::new();
    let mut known: HashSet<Vec<u8>> = HashSet::default();
    let defaults: Vec<Value> = (table.shape.columns.iter())
        .map(|c| crate::capture::default_of(conn, &table.name, c))
        .collect::<Result<_>>()?;
    // the rows as the log held them while the table was captured, before the kept ops (those
    // its declarations take) join the row index and their rows are written
    let mut base: HashMap<Vec<u8>, RowState> = HashMap::default();
    let held = "SELECT DISTINCT key FROM main._sync_kept k WHERE table_id = ?1 AND EXISTS (
                  SELECT 1 FROM main._sync_rows r WHERE r.table_id = ?1 AND r.key = k.key)";
    for key in keys_of(conn, held, table)? {
        base.insert(key.clone(), run.state_of(table, &key)?);
    }
    let never_held =
        "SELECT DISTINCT key FROM main._sync_kept k WHERE table_id = ?1 AND NOT EXISTS (
                        SELECT 1 FROM main._sync_rows r WHERE r.table_id = ?1 AND r.key = k.key)";
    for key in keys_of(conn, never_held, table)? {
        base.insert(key, RowState::Absent);
    }
    let kept = run.release(table)?;
    base.retain(|key, _| kept.contains_key(key));
    // declared otherwise: the log's rows as the new declarations store them, so that a value
    // only stored otherwise is no change made here
    let mut stored = match declared_otherwise {
        true => Some(StoredAs::new(conn, table)?),
        false => None,
    };
    if let Some(stored) = stored.as_mut() {
        for state in base.values_mut() {
            stored.convert(state)?;
        }
    }
    run.settle_touched()?;
    let all_keys = keys_of(conn, ROWS, table)?;
    let cell = |cells: &[(String, Value)], i: usize| -> Value {
        let column = &table.shape.columns[i];
        (cells.iter())
            .find(|(c, _)| c.eq_ignore_ascii_case(column))
            .map_or(&defaults[i], |(_, v)| v)
            .clone()
    };
    for key in &all_keys {
        let mut state = run.state_of(table, key)?;
        if let Some(stored) = stored.as_mut() {
            stored.convert(&mut state)?;
        }
        let held = now.get(key);
        known.insert(key.clone());
        // the row as this device held it while capturing: without the ops kept since
        let base = base.remove(key).unwrap_or_else(|| state.clone());
        let unchanged = |values: &[Value], cells: &[(String, Value)]| {
            (0..values.len()).all(|i| same_value(&values[i], &cell(cells, i)))
        };
        match (state, held) {
            (RowState::Absent, None) => {}
            (RowState::Absent, Some(values)) => match &base {
                // deleted elsewhere, and not changed here: the delete stands
                RowState::Present(was) if unchanged(values, was) => {}
                _ => ops.push((OpKind::Insert, None, values.clone())),
            },
            (RowState::Present(_), None) => {
                // a row this device never held (it came while the table was not captured)
                // is not deleted: the kept ops fill it below
                if base == RowState::Absent {
                    continue;
                }
                // the key's cells, as the log holds them, from the log's own state below
                if let Some(values) = run.key_values(table, key)? {
                    ops.push((OpKind::Delete, None, values));
                }
            }
            (RowState::Present(cells), Some(values)) => {
                let mut mask = 0i64;
                let mut changed = vec![Value::Null; values.len()];
                for i in 0..table.shape.columns.len() {
                    // a cell changed here since the base, and not to what the log holds
                    let ours = match &base {
                        RowState::Present(was) => !same_value(&cell(was, i), &values[i]),
                        RowState::Absent => true,
                    };
                    if table.shape.pk.contains(&i) {
                        changed[i] = values[i].clone();
                    } else if ours && !same_value(&cell(&cells, i), &values[i]) {
                        mask |= 1 << i;
                        changed[i] = values[i].clone();
                    }
                }
                if mask != 0 {
                    ops.push((OpKind::Update, Some(mask), changed));
                }
            }
        }
    }
    for (key, values) in &now {
        if !known.contains(key) {
            ops.push((OpKind::Insert, None, values.clone()));
        }
    }

    record(conn, table, &ops)?;
    // the new ops reach the row index; their rows, and the rows with kept ops, are settled
    // from every op, which writes them to the table (the fold above may have written a row
    // that the table held otherwise: this device's ops not folded before capture stopped)
    let recorded =
        (ops.iter()).map(|(_, _, values)| row_key(table.shape.pk.iter().map(|&i| &values[i])));
    for key in recorded.chain(kept.keys().cloned()) {
        run.rows.touched.all(table.id, key);
    }
    run.fold_to_last()?;
    if let Some(stored) = stored {
        stored.drop()?;
    }
    run.finish()
}

/// Values as a table's declarations store them (their type affinity), by a scratch table
/// declared alike.
struct StoredAs<'c> {
    conn: &'c Conn,
    name: String,
    columns: Vec<String>,
}

impl<'c> StoredAs<'c> {
    fn new(conn: &'c Conn, table: &SyncedTable) -> Result<StoredAs<'c>> {
        let name = format!(
            "temp.{}",
            quote_ident(&format!("_sync_stored_as_{}", table.id))
        );
        let declared: Vec<String> = (table.shape.columns.iter().zip(&table.shape.types))
            .map(|(c, t)| format!("{} {}", quote_ident(c), log::affinity(t)))
            .collect();
        conn.exec(&format!("DROP TABLE IF EXISTS {name}"), &[])?;
        conn.exec(
            &format!("CREATE TABLE {name}({})", declared.join(", ")),
            &[],
        )?;
        Ok(StoredAs {
            conn,
            name,
            columns: table.shape.columns.clone(),
        })
    }

    /// A row's cells as the table stores them.
    fn convert(&mut self, state: &mut RowState) -> Result<()> {
        let RowState::Present(cells) = state else {
            return Ok(());
        };
        for (column, value) in cells.iter_mut() {
            let Some(c) = self.columns.iter().find(|c| c.eq_ignore_ascii_case(column)) else {
                continue;
            };
            let c = quote_ident(c);
            self.conn.exec(&format!("DELETE FROM {}", self.name), &[])?;
            self.conn.exec(
                &format!("INSERT INTO {}({c}) VALUES (?1)", self.name),
                std::slice::from_ref(value),
            )?;
            *value = (self.conn)
                .query_value(&format!("SELECT {c} FROM {}", self.name), &[])?
                .unwrap_or(Value::Null);
        }
        Ok(())
    }

    fn drop(self) -> Result<()> {
        self.conn.exec(&format!("DROP TABLE {}", self.name), &[])
    }
}

/// The rows of the table the row index holds.
const ROWS: &str = "SELECT key FROM main._sync_rows WHERE table_id = ?1";

/// The row keys `sql` gives for the table.
fn keys_of(conn: &Conn, sql: &str, table: &SyncedTable) -> Result<Vec<Vec<u8>>> {
    let mut keys = conn.prepare(sql)?;
    keys.bind_all(&[Value::Integer(table.id)])?;
    let mut all = Vec::new();
    while let Some(row) = keys.step()? {
        all.push(row.column(0)?.as_blob().unwrap_or_default().to_vec());
    }
    Ok(all)
}

/// Every row of the table, by its row key, with its values in shape order.
fn read_rows(conn: &Conn, table: &SyncedTable) -> Result<HashMap<Vec<u8>, Vec<Value>>> {
    let columns: Vec<String> = table.shape.columns.iter().map(|c| quote_ident(c)).collect();
    let mut stmt = conn.prepare(&format!(
        "SELECT {} FROM main.{}",
        columns.join(", "),
        quote_ident(&table.name)
    ))?;
    let mut rows = HashMap::default();
    while let Some(row) = stmt.step()? {
        let values: Vec<Value> = (0..columns.len())
            .map(|i| row.column(i))
            .collect::<Result<_>>()?;
        let key = row_key(table.shape.pk.iter().map(|&i| &values[i]));
        rows.insert(key, values);
    }
    Ok(rows)
}

/// Appends `ops` to the log as this device's, in the table's shape.
fn record(
    conn: &Conn,
    table: &SyncedTable,
    ops: &[(OpKind, Option<i64>, Vec<Value>)],
) -> Result<()> {
    // the log row's layout is LogRow's (log/local.rs): one statement per kind, all bound
    let mut by_kind: [Option<Stmt>; 3] = [None, None, None];
    for (kind, mask, values) in ops {
        let slot = &mut by_kind[kind.code() as usize];
        if slot.is_none() {
            let row = LogRow {
                shape: "?1".into(),
                kind: *kind,
                mask: "?2".into(),
                values: (0..values.len())
                    .map(|i| (i, format!("?{}", i + 3)))
                    .collect(),
            };
            *slot = Some(conn.prepare(&row.insert("main._sync_ops"))?);
        }
        let mut params = vec![
            Value::Integer(table.shape_id),
            mask.map_or(Value::Null, Value::Integer),
        ];
        for (i, v) in values.iter().enumerate() {
            let kept = *kind != OpKind::Delete || table.shape.pk.contains(&i);
            params.push(if kept { v.clone() } else { Value::Null });
        }
        slot.as_mut().expect("just prepared").execute(&params)?;
    }
    Ok(())
}

impl Import<'_> {
    /// Folds this device's ops up to its last into the row index, settling the rows they share
    /// with other devices' ops.
    fn fold_to_last(&mut self) -> Result<()> {
        let last = log::last_local_seq(self.conn)? as u64;
        self.fold_local_ops(last)?;
        self.settle_touched()
    }

    /// The row's state by the merge rule over every op on it.
    fn state_of(&mut self, table: &SyncedTable, key: &[u8]) -> Result<RowState> {
        let (order, reader) = (self.known.order(), self.known.reader(None));
        // from the stored live set (current: every op was folded first), ops read by statements
        // kept for the run
        let statements = &mut self.statements;
        let row = RowLive::settle(
            self.conn,
            statements,
            &mut self.universes,
            &reader,
            &order,
            table,
            key,
            Some(&[]),
        )?;
        row.state(self.conn, &reader, &order, table, key)
    }

    /// The row's key values in shape order (the other columns NULL), as its ops name them;
    /// None when its ops name the row by other key columns than the table's PRIMARY KEY (ops
    /// written under an earlier declaration of it): the table's shape cannot name that row.
    fn key_values(&mut self, table: &SyncedTable, key: &[u8]) -> Result<Option<Vec<Value>>> {
        let (_, cells) = self.known.reader(None).ops(self.conn, table, key)?;
        if cells.len() != table.shape.pk.len() {
            return Ok(None);
        }
        let mut values = vec![Value::Null; table.shape.columns.len()];
        for &i in &table.shape.pk {
            let column = &table.shape.columns[i];
            match cells.iter().find(|(c, _)| c.eq_ignore_ascii_case(column)) {
                Some((_, v)) => values[i] = v.clone(),
                None => return Ok(None),
            }
        }
        Ok(Some(values))
    }

    /// What every run ends with (fold.rs, settle.rs): the reads it kept are checked, the
    /// importer's writes end.
    fn finish(mut self) -> Result<()> {
        self.place_rows()?;
        self.known.contexts.check()?;
        self.known.local.check()?;
        self.quiet.finish()
    }
}
