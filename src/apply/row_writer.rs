//! Writing user rows for the importer: one prepared statement per table and set of columns.
//!
//! Invariant: a row is written with exactly the key and cells it is given (an upsert of those
//! columns, other columns left as they are) or deleted by its key; names reach SQL only quoted,
//! after they matched the table's own columns.

use crate::hashed::HashMap;
use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::collections::hash_map::Entry;
use std::hash::{Hash, Hasher};

use crate::db::{Conn, Error, Padded, Result, Stmt};
use crate::form::Form;
use crate::log::SyncedTable;
use crate::merge::RowState;
use crate::op::OpKind;
use crate::sql::BATCH;
use crate::value::{Cells, Value};

/// The statements that write rows whose only op has a given form (one row, and `BATCH` rows),
/// and the position in the op's values (form.rs) of each parameter of a row.
struct SingleWriter<'c> {
    stmt: Stmt<'c>,
    many: Option<Stmt<'c>>,
    params: Vec<usize>,
    sql: Box<dyn Fn(usize) -> String>,
}

/// What a statement of `RowWriters::cached` is for: a kind of write or read, a table, columns.
struct Slot {
    kind: &'static str,
    table: i64,
    columns: Vec<String>,
}

/// Prepared row writers, by shape of the write and by form of a single op.
pub struct RowWriters<'c> {
    conn: &'c Conn,
    /// Statements that write, update or read back a row, by kind, table and columns: found by
    /// a hash of those, then compared whole, so two keys with one hash never share a statement
    by_columns: HashMap<u64, Vec<(Slot, Stmt<'c>)>>,
    by_form: HashMap<i64, SingleWriter<'c>>,
    /// `change_many`'s statements by form, with the form's columns (`form_columns`)
    by_form_change: HashMap<i64, (Padded<'c>, FormColumns)>,
}

impl<'c> RowWriters<'c> {
    pub fn new(conn: &'c Conn) -> RowWriters<'c> {
        RowWriters {
            conn,
            by_columns: HashMap::default(),
            by_form: HashMap::default(),
            by_form_change: HashMap::default(),
        }
    }

    /// Makes the user row hold `state`: an upsert of its cells, or a delete. Names are the
    /// table's own spelling.
    pub fn write(
        &mut self,
        table: &SyncedTable,
        key: &[(String, Value)],
        state: &RowState,
    ) -> Result<()> {
        let state = &*known_state(table, state);
        let cells: &[(String, Value)] = match state {
            RowState::Absent => &[],
            RowState::Present(cells) => cells,
        };
        let others = || {
            cells
                .iter()
                .filter(|(c, _)| !key.iter().any(|(k, _)| k == c))
        };
        let absent = matches!(state, RowState::Absent);
        let kind = if absent { "delete" } else { "upsert" };
        let stmt = self.cached(kind, table, key.iter().chain(others()), || {
            let key_names: Vec<&str> = key.iter().map(|(c, _)| c.as_str()).collect();
            let other_names: Vec<&str> = others().map(|(c, _)| c.as_str()).collect();
            row_writer_sql(table, &key_names, absent, &other_names, 1)
        })?;
        let params: Vec<Value> = key.iter().chain(others()).map(|(_, v)| v.clone()).collect();
        stmt.execute(&params)
    }

    /// The statement for `kind` of write or read of `table` with these columns, prepared from
    /// `sql()` on first use.
    fn cached<'a>(
        &mut self,
        kind: &'static str,
        table: &SyncedTable,
        columns: impl Iterator<Item = &'a (String, Value)> + Clone,
        sql: impl FnOnce() -> String,
    ) -> Result<&mut Stmt<'c>> {
        let mut h = DefaultHasher::new();
        (table.id, kind).hash(&mut h);
        columns.clone().for_each(|(c, _)| c.hash(&mut h));
        let bucket = self.by_columns.entry(h.finish()).or_default();
        let same = |slot: &Slot| {
            slot.kind == kind
                && slot.table == table.id
                && slot.columns.iter().eq(columns.clone().map(|(c, _)| c))
        };
        let at = match bucket.iter().position(|(slot, _)| same(slot)) {
            Some(at) => at,
            None => {
                let slot = Slot {
                    kind,
                    table: table.id,
                    columns: columns.map(|(c, _)| c.clone()).collect(),
                };
                bucket.push((slot, self.conn.prepare(&sql())?));
                bucket.len() - 1
            }
        };
        Ok(&mut bucket[at].1)
    }

    /// Whether the user row holds `state` already: absent, or present with the same value and
    /// storage class (and bits, for a REAL) in each of the state's cells.
    pub fn holds(
        &mut self,
        table: &SyncedTable,
        key: &[(String, Value)],
        state: &RowState,
    ) -> Result<bool> {
        let state = &*known_state(table, state);
        self.read_back(table, key, state).map(|(_, holds)| holds)
    }

    /// Makes the user row hold `state` as the app's own write would: an UPDATE of the state's
    /// cells when the row is there (so the app's triggers see an update, not an insert), else
    /// `write`; nothing when it holds the state already. Returns whether it wrote.
    pub fn write_as_app(
        &mut self,
        table: &SyncedTable,
        key: &[(String, Value)],
        state: &RowState,
    ) -> Result<bool> {
        let state = &*known_state(table, state);
        let (present, holds) = self.read_back(table, key, state)?;
        match state {
            _ if holds => return Ok(false),
            RowState::Present(cells) if present => {
                self.update(table, key, cells)?;
            }
            _ => self.write(table, key, state)?,
        }
        Ok(true)
    }

    /// `UPDATE` of the non-key cells of an existing row; whether it changed a row (false when
    /// the row is not there, or no cell is outside the key).
    pub fn update(
        &mut self,
        table: &SyncedTable,
        key: &[(String, Value)],
        cells: &[(String, Value)],
    ) -> Result<bool> {
        let q = crate::sql::quote_ident;
        let others: Vec<&(String, Value)> = cells
            .iter()
            .filter(|(c, _)| !key.iter().any(|(k, _)| k == c))
            .collect();
        if others.is_empty() {
            return Ok(false);
        }
        let stmt = self.cached(
            "update",
            table,
            key.iter().chain(others.iter().copied()),
            || {
                let sets: Vec<String> = others
                    .iter()
                    .enumerate()
                    .map(|(i, (c, _))| format!("{} = ?{}", q(c), key.len() + i + 1))
                    .collect();
                format!(
                    "UPDATE main.{} SET {} WHERE {}",
                    q(&table.name),
                    sets.join(", "),
                    crate::sql::key_match(key.iter().map(|(c, _)| c.as_str()))
                )
            },
        )?;
        let params: Vec<Value> = key
            .iter()
            .chain(others.iter().copied())
            .map(|(_, v)| v.clone())
            .collect();
        stmt.execute(&params)?;
        Ok(self.conn.changes() == 1)
    }

    /// The user row with key `key` (every column of the table, as it spells them), if it is
    /// there.
    pub fn read(&mut self, table: &SyncedTable, key: &[(String, Value)]) -> Result<Option<Cells>> {
        let stmt = self.cached("read all", table, key.iter(), || {
            let list = table
                .shape
                .columns
                .iter()
                .map(|c| crate::sql::quote_ident(c));
            select_by_key(table, list, key)
        })?;
        let params: Vec<Value> = key.iter().map(|(_, v)| v.clone()).collect();
        stmt.bind_all(&params)?;
        let result = (|| {
            let Some(row) = stmt.step()? else {
                return Ok(None);
            };
            (table.shape.columns.iter().enumerate())
                .map(|(i, c)| Ok((c.clone(), row.column(i)?)))
                .collect::<Result<Cells>>()
                .map(Some)
        })();
        stmt.reset();
        result
    }

    /// Reads a user row back: whether it is there, and whether it holds `state`.
    fn read_back(
        &mut self,
        table: &SyncedTable,
        key: &[(String, Value)],
        state: &RowState,
    ) -> Result<(bool, bool)> {
        let cells: &[(String, Value)] = match state {
            RowState::Absent => &[],
            RowState::Present(cells) => cells,
        };
        let stmt = self.cached("read", table, key.iter().chain(cells), || {
            let list = std::iter::once("1".to_string())
                .chain(cells.iter().map(|(c, _)| crate::sql::quote_ident(c)));
            select_by_key(table, list, key)
        })?;
        let params: Vec<Value> = key.iter().map(|(_, v)| v.clone()).collect();
        stmt.bind_all(&params)?;
        let result = (|| {
            let row = stmt.step()?;
            let present = row.is_some();
            let (RowState::Present(_), Some(row)) = (state, row) else {
                return Ok((present, matches!(state, RowState::Absent) != present));
            };
            for (i, (_, want)) in cells.iter().enumerate() {
                let have = row.column(i + 1)?;
                // exact, -0.0 included: a skipped write must leave what a write would
                let same = match (&have, want) {
                    (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
                    _ => have == *want,
                };
                if !same {
                    return Ok((true, false));
                }
            }
            Ok((true, true))
        })();
        stmt.reset();
        result
    }

    /// Writes a row whose only op has form `form_id` (`form`) and `values`, on `table`.
    pub fn write_single(
        &mut self,
        table: &SyncedTable,
        form_id: i64,
        form: &Form,
        values: &[Value],
    ) -> Result<()> {
        let writer = self.single_writer(table, form_id, form)?;
        let params = writer.params.iter().map(|&slot| &values[slot]);
        writer.stmt.execute_borrowed(params)
    }

    /// `write_single` for several rows of one form: one statement for `BATCH` rows that are
    /// written, not deleted.
    pub fn write_many(
        &mut self,
        table: &SyncedTable,
        form_id: i64,
        form: &Form,
        rows: &[&[Value]],
    ) -> Result<()> {
        if rows.len() != BATCH || form.kind == OpKind::Delete {
            for values in rows {
                self.write_single(table, form_id, form, values)?;
            }
            return Ok(());
        }
        let conn = self.conn;
        let writer = self.single_writer(table, form_id, form)?;
        if writer.many.is_none() {
            writer.many = Some(conn.prepare(&(writer.sql)(BATCH))?);
        }
        let params = &writer.params;
        let values = rows
            .iter()
            .flat_map(|v| params.iter().map(|&slot| &v[slot]));
        writer
            .many
            .as_mut()
            .expect("just prepared")
            .execute_borrowed(values)
    }

    /// Writes up to `BATCH` ops of form `form_id` (`form`, an update or a delete), one row each,
    /// with `rows` their values, by one statement: an update's cells written, a delete's row
    /// deleted. Returns how many rows it changed (a row that is not there is not written, nor
    /// one whose key holds a NULL).
    pub fn change_many(
        &mut self,
        table: &SyncedTable,
        form_id: i64,
        form: &Form,
        rows: &[&[Value]],
    ) -> Result<usize> {
        let (padded, (key, others, params)) = match self.by_form_change.entry(form_id) {
            Entry::Occupied(cached) => cached.into_mut(),
            Entry::Vacant(slot) => slot.insert((Padded::default(), form_columns(table, form)?)),
        };
        let q = crate::sql::quote_ident;
        let delete = form.kind == OpKind::Delete;
        let sql = |rows: usize| {
            if delete {
                // an OR of whole keys: SQLite looks each up by the key's index (a row value IN
                // a list of VALUES would scan a table whose key has two columns)
                let width = key.len();
                let row = |r: usize| {
                    let terms: Vec<String> = (key.iter().enumerate())
                        .map(|(i, c)| format!("{} = ?{}", q(c), r * width + i + 1))
                        .collect();
                    format!("({})", terms.join(" AND "))
                };
                let rows: Vec<String> = (0..rows).map(row).collect();
                return format!(
                    "DELETE FROM main.{} WHERE {}",
                    q(&table.name),
                    rows.join(" OR ")
                );
            }
            let column = |i: usize| format!("v.column{}", i + 1);
            let mut sets: Vec<String> = (others.iter().enumerate())
                .map(|(i, c)| format!("{} = {}", q(c), column(key.len() + i)))
                .collect();
            if sets.is_empty() {
                // every cell is of a column this table does not have yet: the rows are only
                // matched (and counted), not changed
                sets.push(format!("{0} = {0}", q(&key[0])));
            }
            let matches: Vec<String> = (key.iter().enumerate())
                .map(|(i, c)| format!("{} = {}", q(c), column(i)))
                .collect();
            format!(
                "UPDATE main.{} SET {} FROM (VALUES {}) AS v WHERE {}",
                q(&table.name),
                sets.join(", "),
                crate::sql::value_rows(rows, params.len()),
                matches.join(" AND ")
            )
        };
        let (stmt, size) = padded.get(self.conn, rows.len(), sql)?;
        let mut values: Vec<&Value> = (rows.iter())
            .flat_map(|v| params.iter().map(|&slot| &v[slot]))
            .collect();
        values.resize(size * params.len(), &Value::Null); // rows of NULLs match no row
        stmt.execute_borrowed(values)?;
        Ok(self.conn.changes() as usize)
    }

    /// The writer of single-op rows of form `form_id`, prepared on first use.
    fn single_writer(
        &mut self,
        table: &SyncedTable,
        form_id: i64,
        form: &Form,
    ) -> Result<&mut SingleWriter<'c>> {
        if !self.by_form.contains_key(&form_id) {
            let writer = self.prepare_single(table, form)?;
            self.by_form.insert(form_id, writer);
        }
        Ok(self.by_form.get_mut(&form_id).expect("just cached"))
    }

    fn prepare_single(&self, table: &SyncedTable, form: &Form) -> Result<SingleWriter<'c>> {
        let (key, others, params) = form_columns(table, form)?;
        let (table, absent) = (table.clone(), form.kind == OpKind::Delete);
        let sql = move |rows: usize| row_writer_sql(&table, &key, absent, &others, rows);
        Ok(SingleWriter {
            stmt: self.conn.prepare(&sql(1))?,
            many: None,
            params,
            sql: Box::new(sql),
        })
    }
}

/// `SELECT <list> FROM <table> WHERE <key columns> IS ?1 …`.
fn select_by_key(
    table: &SyncedTable,
    list: impl Iterator<Item = String>,
    key: &[(String, Value)],
) -> String {
    format!(
        "SELECT {} FROM main.{} WHERE {}",
        list.collect::<Vec<_>>().join(", "),
        crate::sql::quote_ident(&table.name),
        crate::sql::key_match(key.iter().map(|(c, _)| c.as_str()))
    )
}

/// The state with the cells of the columns the table has: an op may name a column this device
/// has not added yet (DESIGN 5.2), whose value stays with the op until the column comes.
fn known_state<'s>(table: &SyncedTable, state: &'s RowState) -> Cow<'s, RowState> {
    match state {
        RowState::Present(cells) if cells.iter().any(|(c, _)| table.column(c).is_none()) => {
            let known = cells.iter().filter(|(c, _)| table.column(c).is_some());
            Cow::Owned(RowState::Present(known.cloned().collect()))
        }
        _ => Cow::Borrowed(state),
    }
}

/// The key columns and the other columns an op of a form writes, as the table spells them, and
/// the position in the op's values of each (key first); columns the table does not have (yet)
/// are left out.
type FormColumns = (Vec<String>, Vec<String>, Vec<usize>);

/// The `FormColumns` of `form` on `table`.
fn form_columns(table: &SyncedTable, form: &Form) -> Result<FormColumns> {
    let spell = |name: &str| {
        table
            .column(name)
            .ok_or_else(|| Error::new(format!("column {name:?} of table {:?} is gone", table.name)))
    };
    let key: Vec<String> = form
        .key
        .iter()
        .map(|c| spell(c).map(str::to_string))
        .collect::<Result<_>>()?;
    let mut params: Vec<usize> = (0..key.len()).collect();
    let mut others = Vec::new();
    if form.kind != OpKind::Delete {
        for (i, cell) in form.cells.iter().enumerate() {
            let Some(name) = table.column(cell).map(str::to_string) else {
                continue; // kept with the op until the column is added
            };
            if !key.contains(&name) && !others.contains(&name) {
                others.push(name);
                params.push(form.cell_slot(i));
            }
        }
    }
    Ok((key, others, params))
}

/// `DELETE … WHERE key` for an absent row; otherwise `INSERT … ON CONFLICT(key) DO UPDATE` of
/// the key and `others`, bound in that order, for `rows` rows.
fn row_writer_sql<S: AsRef<str>>(
    table: &SyncedTable,
    key: &[S],
    absent: bool,
    others: &[S],
    rows: usize,
) -> String {
    let q = crate::sql::quote_ident;
    let name = q(&table.name);
    if absent {
        let key_match = crate::sql::key_match(key.iter().map(AsRef::as_ref));
        return format!("DELETE FROM main.{name} WHERE {key_match}");
    }
    let key_names: Vec<String> = key.iter().map(|c| q(c.as_ref())).collect();
    let other_names: Vec<String> = others.iter().map(|c| q(c.as_ref())).collect();
    let all: Vec<&str> = key_names
        .iter()
        .chain(&other_names)
        .map(String::as_str)
        .collect();
    let marks = crate::sql::value_rows(rows, all.len());
    let sets: Vec<String> = other_names
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    let action = if sets.is_empty() {
        "NOTHING".to_string()
    } else {
        format!("UPDATE SET {}", sets.join(", "))
    };
    format!(
        "INSERT INTO main.{name}({}) VALUES {marks} ON CONFLICT({}) DO {action}",
        all.join(", "),
        key_names.join(", ")
    )
}
