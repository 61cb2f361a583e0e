//! Kept ops: received ops applied (in the causal sense: the clock moves past them, they are
//! relayed) but not written, because this device does not capture their table (not created or
//! enabled yet, or disabled), or gives it another PRIMARY KEY than the ops name their rows by.
//! They wait in `_sync_kept`, outside the row index, and are released (indexed, and their rows
//! settled from every op) when the table is enabled (catch_up.rs) or, for a table captured
//! already, at the first sync call after its key agrees (`release_agreeing`). A column declared
//! with another type affinity than where the ops were written is reported, not kept: the ops
//! apply, stored by this device's declaration (see `declared_otherwise`).
//!
//! Invariant: a received op is either in the row index or in `_sync_kept`, never both; and
//! whether an op waits depends only on the op and this device's schema (its key columns are
//! part of the op), so devices with the same schema keep and apply the same ops.

use crate::hashed::HashMap;

use crate::db::{Conn, Result};
use crate::form::Form;
use crate::log::declared::Declared;
use crate::log::{self, stored_alike, SyncedTable};
use crate::merge::live::OpAt;
use crate::merge::row_index::{entry_values, Entry};
use crate::schema::DeviceIdx;
use crate::sql::BATCH;
use crate::value::Value;

use super::checks::find_table;
use super::import::{Import, Place};

/// What to do about a table declared otherwise.
const AGREE: &str = ": they wait until the table is declared alike (create it again as the \
                     other devices have it, then call sync_enable)";

/// Why the ops of `form` that `writer` wrote wait on `table` as this device declares it
/// (None: they apply): another PRIMARY KEY, or a column of another type affinity as `writer`
/// declares it now (or, not known, as the op was written), naming the table, the column and
/// both declarations.
pub(super) fn declared_otherwise(
    form: &Form,
    writer: Option<&Declared>,
    table: &SyncedTable,
) -> Option<String> {
    let here: Vec<&str> = table.key_columns().collect();
    let same_key = form.key.len() == here.len()
        && (form.key.iter().zip(&here)).all(|(a, b)| a.eq_ignore_ascii_case(b));
    if !same_key {
        let alike = |key: &[String]| {
            key.len() == here.len()
                && (key.iter().zip(&here)).all(|(a, b)| a.eq_ignore_ascii_case(b))
        };
        let why = match writer.is_some_and(|w| alike(&w.key)) {
            // its writer declares the key as this device does now: ops of its earlier key
            true => format!(
                "table {:?}: ops written under PRIMARY KEY ({}), which their writer no longer \
                 declares (it has ({}) as this device does): they apply only where the table \
                 has that key; the writer recorded its rows again under the new key when it \
                 declared it",
                table.name,
                form.key.join(", "),
                here.join(", ")
            ),
            false => format!(
                "table {:?} has PRIMARY KEY ({}) here, ({}) where the ops were written{AGREE}",
                table.name,
                here.join(", "),
                form.key.join(", ")
            ),
        };
        return Some(why);
    }
    if table.shape.types.is_empty() {
        return None; // enabled by a build that did not record declarations
    }
    // each column the op names, as its writer declares it now (or, not known, declared it
    // when it wrote the op)
    let at_writing = |i: usize| form.decl.get(i).map(String::as_str);
    for (i, name) in form.key.iter().chain(&form.cells).enumerate() {
        let Some(there) = writer
            .and_then(|w| w.type_of(name))
            .or_else(|| at_writing(i))
        else {
            continue;
        };
        let Some(j) = (table.shape.columns.iter()).position(|c| c.eq_ignore_ascii_case(name))
        else {
            continue; // a column this device does not have yet: its values wait anyway
        };
        let here = &table.shape.types[j];
        if !stored_alike(here, there) {
            let why = format!(
                "column {}.{} is declared {here:?} here ({} affinity), {there:?} where the ops \
                 were written ({} affinity){AGREE}",
                table.name,
                table.shape.columns[j],
                log::affinity(here),
                log::affinity(there)
            );
            return Some(why);
        }
    }
    None
}

impl Import<'_> {
    /// Where the ops of form `form_id` that `writer` wrote go (the answer kept for the import).
    pub(super) fn place_of(&mut self, writer: DeviceIdx, form_id: i64) -> Result<Place> {
        if let Some(place) = self.known.places.get(&(writer, form_id)) {
            return Ok(place.clone());
        }
        let form = self.known.forms.get(form_id)?;
        let place = match find_table(self.known.tables, &form.table) {
            _ if form.table == crate::log::floors::TABLE => Place::Floor,
            Ok(table) => match self.otherwise(form, writer, table) {
                Some(why) => Place::Kept(table.id, Some(why)),
                None => Place::Table(table.id),
            },
            Err(_) => {
                let name = form.table.clone();
                Place::Kept(self.kept_table(&name)?, None)
            }
        };
        self.known.places.insert((writer, form_id), place.clone());
        Ok(place)
    }

    /// `declared_otherwise` for an op of `form` that `writer` wrote.
    fn otherwise(&self, form: &Form, writer: DeviceIdx, table: &SyncedTable) -> Option<String> {
        let declared = self.known.declared.of(writer, &table.name);
        declared_otherwise(form, declared, table)
    }

    /// Keeps op (`device`, `seq`) of row `key` of table `table_id`.
    pub(super) fn keep(
        &mut self,
        (table_id, key, device, seq): Entry,
        why: Option<String>,
    ) -> Result<()> {
        self.run(
            "INSERT OR REPLACE INTO main._sync_kept VALUES (?1, ?2, ?3, ?4, ?5)",
            &[
                Value::Integer(table_id),
                Value::Blob(key),
                Value::from(device),
                Value::Integer(seq as i64),
                why.map_or(Value::Null, Value::Text),
            ],
        )
    }

    /// The id of table `name`, which this device does not capture: registered (not enabled)
    /// the first time a received op names it.
    pub(super) fn kept_table(&mut self, name: &str) -> Result<i64> {
        let lower = name.to_ascii_lowercase();
        if let Some(&id) = self.known.kept_tables.get(&lower) {
            return Ok(id);
        }
        let found = self.query_row(
            "SELECT id FROM main._sync_tables WHERE name = ?1",
            &[Value::Text(name.into())],
        )?;
        let id = match found.and_then(|row| row[0].as_i64()) {
            Some(id) => id,
            None => self.conn.insert(
                "INSERT INTO main._sync_tables(name, enabled) VALUES (?1, 0)",
                &[Value::Text(name.into())],
            )?,
        };
        self.known.kept_tables.insert(lower, id);
        Ok(id)
    }

    /// Moves the received ops of `table` that its declarations do not take (it was declared
    /// otherwise since they were applied, or their writer was) out of the row index, into
    /// `_sync_kept`; their rows are then settled from the ops they keep. Reads the table's row
    /// index once, and holds only the ops it moves.
    pub(super) fn sort_by_declarations(&mut self, table: &SyncedTable) -> Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT i.key, i.device, i.seq, r.form, i.first FROM (
               SELECT key, device, seq, 1 AS first FROM main._sync_rows WHERE table_id = ?1
               UNION ALL
               SELECT key, device, seq, 0 FROM main._sync_row_ops WHERE table_id = ?1) i
             JOIN main._sync_remote r ON r.device = i.device AND r.seq = i.seq",
        )?;
        stmt.bind_all(&[Value::Integer(table.id)])?;
        // this device's own ops (no received form) are never kept
        let mut out: Vec<(Entry, String, bool)> = Vec::new();
        while let Some(row) = stmt.step()? {
            let device = DeviceIdx(row.column_int(1));
            let form = self.known.forms.get(row.column_int(3))?;
            if let Some(why) = self.otherwise(form, device, table) {
                let key = row.column(0)?.as_blob().unwrap_or_default().to_vec();
                let entry = (table.id, key, device, row.column_int(2) as u64);
                out.push((entry, why, row.column_int(4) == 1));
            }
        }
        drop(stmt);
        let entries: Vec<(Entry, bool)> = (out.iter())
            .map(|(entry, _, first)| (entry.clone(), *first))
            .collect();
        self.unindex(Some(table), &entries)?;
        for (entry, why, _) in out {
            self.keep(entry, Some(why))?;
        }
        Ok(())
    }

    /// Takes ops of `table` out of its row index (`entries`: each with whether it is its row's
    /// first op there): another op of a row whose first op goes takes its place, a row with
    /// none left leaves the table or its record of being held out (and its open conflicts
    /// go), and the others are settled again from the ops they keep. (`table` None: a table
    /// not synced now, whose rows are settled when it is enabled again, catch_up.rs.)
    pub(super) fn unindex(
        &mut self,
        table: Option<&SyncedTable>,
        entries: &[(Entry, bool)],
    ) -> Result<()> {
        let params = |(table_id, key, device, seq): &Entry| {
            vec![
                Value::Integer(*table_id),
                Value::Blob(key.clone()),
                Value::from(*device),
                Value::Integer(*seq as i64),
            ]
        };
        for (entry, _) in entries.iter().filter(|(_, first)| !first) {
            self.run(
                "DELETE FROM main._sync_row_ops
                 WHERE table_id = ?1 AND key = ?2 AND device = ?3 AND seq = ?4",
                &params(entry),
            )?;
        }
        // a row's first op out: another of its ops takes its place
        for (entry, _) in entries.iter().filter(|(_, first)| *first) {
            let (table_id, key) = (Value::Integer(entry.0), Value::Blob(entry.1.clone()));
            let next = self.query_row(
                "SELECT device, seq FROM main._sync_row_ops WHERE table_id = ?1 AND key = ?2
                 LIMIT 1",
                &[table_id.clone(), key.clone()],
            )?;
            match next {
                Some(next) => {
                    self.run(
                        "UPDATE main._sync_rows SET device = ?3, seq = ?4
                         WHERE table_id = ?1 AND key = ?2",
                        &[
                            table_id.clone(),
                            key.clone(),
                            next[0].clone(),
                            next[1].clone(),
                        ],
                    )?;
                    self.run(
                        "DELETE FROM main._sync_row_ops
                         WHERE table_id = ?1 AND key = ?2 AND device = ?3 AND seq = ?4",
                        &[table_id, key, next[0].clone(), next[1].clone()],
                    )?;
                }
                None => {
                    self.run(
                        "DELETE FROM main._sync_rows WHERE table_id = ?1 AND key = ?2",
                        &[table_id.clone(), key.clone()],
                    )?;
                    // nor is it in the table (its key as the op names it), where the table is
                    // synced now (else `catch_up.rs` settles it when it is enabled again)
                    if let Some(table) = table {
                        let (_, cells) = (self.known.reader(None)).op(
                            &mut self.statements,
                            table,
                            entry.2,
                            entry.3,
                        )?;
                        let cells = table.spell(cells);
                        let keyed = cells.len() == table.shape.pk.len()
                            && (cells.iter()).all(|(c, _)| table.key_columns().any(|k| k == c));
                        if keyed {
                            // (through parking: a record that held it out goes, and rows it
                            // held out are judged again)
                            self.place_row(table, &cells, &crate::merge::RowState::Absent)?;
                        }
                    }
                    // a row with none of its ops left has no conflicts either
                    self.run(
                        "DELETE FROM main._sync_conflicts
                         WHERE table_id = ?1 AND key = ?2 AND state = 0",
                        &[table_id, key],
                    )?;
                }
            }
        }
        for (entry, _) in entries {
            // the row's set is computed again from the ops it keeps (merge/live.rs), if any
            let held = self.query_row(
                "SELECT 1 FROM main._sync_rows WHERE table_id = ?1 AND key = ?2",
                &[Value::Integer(entry.0), Value::Blob(entry.1.clone())],
            )?;
            if held.is_some() {
                self.run(
                    "UPDATE main._sync_rows SET live = x'' WHERE table_id = ?1 AND key = ?2",
                    &[Value::Integer(entry.0), Value::Blob(entry.1.clone())],
                )?;
                self.rows.touched.all(entry.0, entry.1.clone());
                self.rows.rewrite.insert((entry.0, entry.1.clone()));
            }
        }
        Ok(())
    }

    /// Whether a device is known to declare `table` otherwise than this device does.
    pub(super) fn declared_otherwise_somewhere(&self, table: &SyncedTable) -> bool {
        let mine = Declared::of(&table.shape);
        (self.known.declared.all(&table.name))
            .any(|theirs| mine.as_ref().is_some_and(|mine| !mine.stores_alike(theirs)))
    }

    /// Releases the kept ops of `table` (captured now) that its declarations take: indexes
    /// them in causal order (by Lamport time: a row's first op indexed is the first it had, as
    /// where they apply as they come; compaction keeps it) and marks their rows to be settled
    /// from every op; the others stay, with why. Returns the released ops by row.
    pub(super) fn release(&mut self, table: &SyncedTable) -> Result<HashMap<Vec<u8>, Vec<OpAt>>> {
        let mut stmt = self.conn.prepare(
            "SELECT k.key, k.device, k.seq, r.form FROM main._sync_kept k
             JOIN main._sync_remote r ON r.device = k.device AND r.seq = k.seq
             WHERE k.table_id = ?1 ORDER BY r.lamport, k.device, k.seq",
        )?;
        stmt.bind_all(&[Value::Integer(table.id)])?;
        let mut released: HashMap<Vec<u8>, Vec<OpAt>> = HashMap::default();
        let mut entries: Vec<Entry> = Vec::new();
        let mut waiting: Vec<(Entry, String)> = Vec::new();
        while let Some(row) = stmt.step()? {
            let key = row.column(0)?.as_blob().unwrap_or_default().to_vec();
            let (device, seq) = (DeviceIdx(row.column_int(1)), row.column_int(2) as u64);
            let form = self.known.forms.get(row.column_int(3))?;
            let entry = (table.id, key.clone(), device, seq);
            match self.otherwise(form, device, table) {
                Some(why) => waiting.push((entry, why)),
                None => {
                    released.entry(key).or_default().push((device, seq));
                    entries.push(entry);
                }
            }
        }
        drop(stmt);
        for (entry, why) in waiting {
            self.keep(entry, Some(why))?;
        }
        for batch in entries.chunks(BATCH) {
            self.rows.index.add_many(batch)?;
        }
        for entry in &entries {
            self.run(
                "DELETE FROM main._sync_kept
                 WHERE table_id = ?1 AND key = ?2 AND device = ?3 AND seq = ?4",
                &entry_values(entry),
            )?;
        }
        for key in released.keys() {
            self.rows.touched.all(table.id, key.clone());
        }
        Ok(released)
    }
}

/// Whether captured tables have kept ops (at most two small reads: the everyday case).
fn captured_tables_keep_ops(conn: &Conn) -> Result<bool> {
    let made = "SELECT 1 FROM main.sqlite_schema WHERE name = '_sync_kept'";
    if conn.query_value(made, &[])?.is_none() {
        return Ok(false);
    }
    let any = "SELECT 1 FROM main._sync_kept k JOIN main._sync_tables t ON t.id = k.table_id
               WHERE t.enabled LIMIT 1";
    Ok(conn.query_value(any, &[])?.is_some())
}

/// Releases the kept ops of captured tables whose declarations now agree with theirs (the
/// app declared the table again, and enabled it), and writes their rows; the caller holds a
/// savepoint.
pub fn release_agreeing(conn: &Conn) -> Result<()> {
    if !captured_tables_keep_ops(conn)? {
        return Ok(());
    }
    let tables = log::synced_tables(conn)?;
    let mut run = Import::new(conn, &tables)?;
    let last = log::last_local_seq(conn)? as u64;
    run.fold_local_ops(last)?;
    for table in &tables {
        run.release(table)?;
    }
    run.settle_and_finish()
}
