//! Parking: a row whose merged state breaks a constraint of this database is held out of its
//! table (parked), the same rows on every device that holds the same ops and declares the
//! tables alike (DESIGN 5.3; the README states the rule beside the merge rule). Over the rows
//! the merge rule shows (merge/):
//!
//! 1. a row whose values alone break a NOT NULL, a CHECK, a STRICT column's type or an app
//!    trigger's RAISE is held out (`ROW`);
//! 2. another row with a FOREIGN KEY that names a row that is not there, or is held out by 1
//!    or 2, is held out (`MISSING`); rows that name one another in a cycle stay when nothing
//!    they lead to is missing;
//! 3. of the other rows, in the order of the first op on each (its order key), a row that would
//!    take a UNIQUE value (a UNIQUE constraint, a unique index, a key equal under its
//!    collation) which an earlier row kept holds is held out (`UNIQUE`);
//! 4. a row that names a row held out by 3 or 4 is held out too (`HELD`): it keeps its UNIQUE
//!    values while it waits, as rule 3 counts it.
//!
//! A row is held out under the first rule that applies.
//!
//! How: the import writes rows as usual (foreign keys are not enforced while it writes:
//! references are judged here, from the declared schema); a write a constraint refuses leaves
//! its row `PENDING`. At the import's end (`place`), every held-out row, every row written to a
//! table with references and every row that named a row removed is judged, and judged again
//! whenever a row it depends on changes, until none changes: first its references (a row it
//! names that waits too is judged first, this one assumed to stay: a cycle; so is one held out
//! for a UNIQUE value, which a write's stale values may have decided; a row held out by one is
//! asked of SQLite by a trial write, for rule 1), then a write of it; when a UNIQUE value is
//! taken, the row that holds it is found (a trial upsert) and the one with the earlier first op
//! keeps it. `HELD` rows are in their tables while rows are judged (their values stay taken),
//! with triggers off, and taken out at the end.
//!
//! Invariant: after every import, a synced table holds the rows the rule places, each as the
//! merge rule shows it, and `_sync_parked` every other row that exists, with why and the row
//! that holds it out; the app's triggers see a row leave or come back as a delete or an insert.
//! Parking writes no op: every device derives it.

use sha2::{Digest, Sha256};

use crate::db::{Error, Result};
use crate::log::{self, SyncedTable};
use crate::merge::{RowOp, RowState};
use crate::op::DeviceId;
use crate::schema::{HELD, MISSING, PENDING, ROW, UNIQUE};
use crate::sql::{key_match, quote_ident};
use crate::value::{hex, Cells, JsonObject, Value};

use super::checks::table_by_id;
use super::import::Import;

use crate::hashed::HashMap;

use super::parking::RowAt;

/// Where a row a reference names stands.
enum Parent {
    There,
    /// Held out by rule 3 or 4: the row waits, keeping its values
    Held(RowAt),
    /// Not there, or held out by rule 1 or 2 (`None`: in a table not synced here)
    Missing(Option<RowAt>),
}

/// Why a row is held out, as its record says it.
struct Hold {
    why: i64,
    reason: String,
    columns: Vec<String>,
    by: Option<RowAt>,
    /// What holds it out, as JSON (`sync_conflicts.remote_values`)
    by_values: String,
}

impl<'a> Import<'a> {
    /// Makes row `key` of `table` hold `state`, as `write_row` does; a row a constraint refuses
    /// is left to `place` (PENDING).
    pub(super) fn place_row(
        &mut self,
        table: &SyncedTable,
        key: &Cells,
        state: &RowState,
    ) -> Result<()> {
        let result = match (state, self.write_row(table, key, state)) {
            // an app trigger that refuses a delete does not keep a row the merge removed
            (RowState::Absent, Err(e)) if e.is_constraint() => {
                let writers = &mut self.rows.writers;
                self.quiet.untriggered(|| writers.write(table, key, state))
            }
            (_, result) => result,
        };
        match result {
            Ok(()) if self.parking.concerns(table.id) => {
                let at = (table.id, row_key(key));
                self.drop_record(&at)?;
                self.wrote(table, &at, key, state)
            }
            Ok(()) => Ok(()),
            Err(e) if e.is_constraint() => self.pending(table, key, state),
            Err(e) => Err(e),
        }
    }

    /// Row `at` was written as the merge shows it: judged at the end when it names rows, and
    /// the rows that name it when it went.
    pub(super) fn wrote(
        &mut self,
        table: &SyncedTable,
        at: &RowAt,
        key: &Cells,
        state: &RowState,
    ) -> Result<()> {
        let present = matches!(state, RowState::Present(_));
        if present && self.parking.references.of(table.id).next().is_some() {
            self.parking.push(at.clone());
        }
        self.parking.changed(table.id, &at.1);
        if let RowState::Present(cells) = state {
            // rows named by other columns than their key: by those values
            let named: Vec<Vec<Value>> = (self.parking.references.to(table.id))
                .filter(|r| !r.to_key)
                .filter_map(|r| {
                    (r.to.iter())
                        .map(|c| {
                            let found = cells.iter().find(|(n, _)| n.eq_ignore_ascii_case(c));
                            found.map(|(_, v)| v.clone())
                        })
                        .collect()
                })
                .collect();
            for values in named {
                self.parking.changed(table.id, &log::row_key(values.iter()));
            }
        }
        if self.parking.references.to(table.id).next().is_some() {
            if !present {
                let values: Vec<Value> = key.iter().map(|(_, v)| v.clone()).collect();
                self.queue_children(table, &values, true)?;
                self.parking.parents_written.insert(table.id);
            }
            let children: Vec<i64> = (self.parking.references.to(table.id))
                .filter(|r| !r.to_key)
                .map(|r| r.child)
                .collect();
            self.parking.written.extend(children);
        }
        Ok(())
    }

    /// Rows written at once (new rows of one form) that name other rows are judged at the end.
    pub(super) fn wrote_new(&mut self, table: &SyncedTable, keys: &[&[u8]]) {
        let names = self.parking.references.of(table.id).next().is_some();
        for key in keys {
            if names {
                self.parking.push((table.id, key.to_vec()));
            }
            self.parking.changed(table.id, key);
        }
    }

    /// A row a constraint refused: recorded with its state, judged at the end.
    fn pending(&mut self, table: &SyncedTable, key: &Cells, state: &RowState) -> Result<()> {
        let RowState::Present(cells) = state else {
            return Err(Error::new(format!(
                "a constraint of table {:?} refused the delete of a row, also with triggers off",
                table.name
            )));
        };
        let at = (table.id, row_key(key));
        let hold = Hold {
            why: PENDING,
            reason: String::new(),
            columns: Vec::new(),
            by: None,
            by_values: "null".into(),
        };
        self.record_hold(table, &at, key, cells, &hold)?;
        self.parking.tables.insert(table.id);
        self.parking.push(at);
        Ok(())
    }

    /// A row this device wrote itself since a record held it out: the record goes, and the row
    /// is judged again at the end.
    pub(super) fn written_here(&mut self, table: &SyncedTable, key: &[u8]) -> Result<()> {
        if self.parking.tables.contains(&table.id) {
            let at = (table.id, key.to_vec());
            self.drop_record(&at)?;
            self.parking.push(at);
        }
        if self.parking.references.to(table.id).next().is_some() {
            self.parking.parents_written.insert(table.id);
        }
        Ok(())
    }

    /// Queues the rows held out of the tables that name rows of a table whose rows went or were
    /// written here (`parents_written`), whatever holds them out: a row they name may have gone,
    /// and then they are held out for that (rule 2 comes before a UNIQUE value, rule 3). Once
    /// per import and table (rows held out are few).
    fn queue_held_children(&mut self) -> Result<()> {
        let parents = std::mem::take(&mut self.parking.parents_written);
        let mut children: Vec<i64> = (parents.iter())
            .flat_map(|&p| self.parking.references.to(p).map(|r| r.child))
            .collect();
        children.sort_unstable();
        children.dedup();
        for child in children {
            let held = self.rows_at(
                "SELECT table_id, key FROM main._sync_parked WHERE table_id = ?1",
                &[Value::Integer(child)],
            )?;
            for at in held {
                self.parking.push(at);
            }
        }
        Ok(())
    }

    /// Judges every row that may have to leave or come back, until none changes (see above):
    /// the rows written, those they hold out, those held out by rule 4 or by a table that is
    /// not synced (judged at every import), and those pending.
    pub(super) fn place_rows(&mut self) -> Result<()> {
        let mut held = Vec::new();
        if !self.parking.tables.is_empty() {
            let mut stmt = self.conn.prepare(
                "SELECT table_id, key, why FROM main._sync_parked WHERE why IN (?1, ?2)
                 UNION ALL
                 SELECT table_id, key, why FROM main._sync_parked
                 WHERE why = ?3 AND by_table IS NULL",
            )?;
            stmt.bind_all(&[
                Value::Integer(HELD),
                Value::Integer(PENDING),
                Value::Integer(MISSING),
            ])?;
            while let Some(row) = stmt.step()? {
                let at = (
                    row.column_int(0),
                    row.column_blob(1)?.unwrap_or_default().to_vec(),
                );
                if row.column_int(2) == HELD {
                    held.push(at.clone());
                }
                self.parking.push(at);
            }
            drop(stmt);
            for at in std::mem::take(&mut self.parking.changed) {
                self.queue_held_by(&at)?;
            }
        }
        // rows held by rule 4 keep their values taken while rows are judged
        for at in &held {
            let Some((table, key, cells)) = self.held_row(at)? else {
                continue;
            };
            let writers = &mut self.rows.writers;
            let state = RowState::Present(cells);
            match self
                .quiet
                .untriggered(|| writers.write(table, &key, &state))
            {
                Err(e) if e.is_constraint() => {} // judged below
                other => other?,
            }
        }
        self.queue_orphans_of_written()?;
        self.queue_held_children()?;
        // a row is judged again only when a row it depends on changed: a handful of times
        let mut times: HashMap<RowAt, u32> = HashMap::default();
        while let Some(at) = self.parking.queue.pop_front() {
            self.parking.queued.remove(&at);
            let n = times.entry(at.clone()).or_default();
            *n += 1;
            if *n > 1000 {
                return Err(Error::new(format!(
                    "holding rows out did not settle (row {:?} judged {n} times; a bug: please \
                     report it)",
                    key_cells(table_by_id(self.known.tables, at.0)?, &at.1)?
                )));
            }
            self.judge(at, &mut Vec::new())?;
        }
        // rows held by rule 4 leave their tables again
        let out = self.rows_at(
            "SELECT table_id, key FROM main._sync_parked WHERE why = ?1",
            &[Value::Integer(HELD)],
        )?;
        for at in out {
            let Some((table, key, _)) = self.held_row(&at)? else {
                continue;
            };
            let writers = &mut self.rows.writers;
            self.quiet
                .untriggered(|| writers.write(table, &key, &RowState::Absent))?;
        }
        Ok(())
    }

    /// Judges row `at` by the rule; `stack`: the rows whose judging asked for this one (a
    /// reference back to one of them holds). Returns the row's `why`, or None when it is in its
    /// table (or does not exist).
    fn judge(&mut self, at: RowAt, stack: &mut Vec<RowAt>) -> Result<Option<i64>> {
        let tables = self.known.tables;
        let Ok(table) = table_by_id(tables, at.0) else {
            return Ok(None); // a table not synced now: judged when it is enabled again
        };
        self.parking.judged.insert(at.clone());
        let key = key_cells(table, &at.1)?;
        let record = self.load_record(&at)?;
        let physical = self.rows.writers.read(table, &key)?;
        let (cells, visible) = match (&record, &physical) {
            (Some((why, cells)), p) => (cells.clone(), p.is_some() && *why != HELD),
            (None, Some(p)) => (p.clone(), true),
            (None, None) => return Ok(None),
        };
        let before = record.as_ref().map(|(why, _)| *why);
        stack.push(at.clone());
        let mut held_by = None;
        let count = self.parking.references.of(table.id).count();
        let mut missing = None;
        for i in 0..count {
            let r = self
                .parking
                .references
                .of(table.id)
                .nth(i)
                .expect("counted");
            let Some(values) = r.named(&cells) else {
                continue;
            };
            let (text, from, to) = (r.text.clone(), r.from.clone(), r.to.clone());
            match self.parent(table.id, i, &values, stack)? {
                Parent::There => {}
                Parent::Held(by) => {
                    held_by.get_or_insert((by, text, from, to, values));
                }
                Parent::Missing(by) => {
                    missing = Some((by, text, from, to, values));
                    break;
                }
            }
        }
        let hold = match (missing, held_by) {
            // its own values come first (rule 1): asked of SQLite by a trial write
            (Some((by, text, from, to, values)), _) => match self.row_check(table, &key, &cells)? {
                Some(e) => Some(row_hold(&e)),
                None => Some(Hold {
                    why: MISSING,
                    reason: text,
                    columns: from,
                    by,
                    by_values: JsonObject::of(&to.into_iter().zip(values).collect::<Vec<_>>()),
                }),
            },
            (None, held) => {
                let outcome = self.contest(table, &at, &key, &cells, held.is_some(), visible)?;
                match (outcome, held) {
                    (Some(hold), _) => Some(hold),
                    (None, Some((by, text, from, to, values))) => Some(Hold {
                        why: HELD,
                        reason: text,
                        columns: from,
                        by: Some(by),
                        by_values: JsonObject::of(&to.into_iter().zip(values).collect::<Vec<_>>()),
                    }),
                    (None, None) => None,
                }
            }
        };
        stack.pop();
        let after = hold.as_ref().map(|h| h.why);
        match hold {
            Some(hold) => {
                if hold.why != HELD {
                    self.take_out(table, &key, physical.is_some(), visible)?;
                } else if visible {
                    // the app sees it leave; its values stay taken while rows are judged
                    self.take_out(table, &key, true, true)?;
                    let writers = &mut self.rows.writers;
                    let state = RowState::Present(cells.clone());
                    self.quiet
                        .untriggered(|| writers.write(table, &key, &state))?;
                }
                self.record_hold(table, &at, &key, &cells, &hold)?;
            }
            None => self.drop_record(&at)?,
        }
        // a row judged on the assumption that this one stays is judged again
        if after.is_some() {
            let (again, rest) = std::mem::take(&mut self.parking.assumed)
                .into_iter()
                .partition(|(assumed, _)| *assumed == at);
            self.parking.assumed = rest;
            for (_, assumer) in again {
                self.parking.push(assumer);
            }
        }
        // the rows this one holds out, or that name it, may change with it
        if before != after || (before.is_none() && physical.as_ref() != Some(&cells)) {
            self.queue_held_by(&at)?;
            let values: Vec<Value> = key.iter().map(|(_, v)| v.clone()).collect();
            self.queue_children(table, &values, false)?;
        }
        Ok(after)
    }

    /// Where the row that reference `i` of table `child` names (`values`) stands; a row that
    /// waits and may come back is judged first.
    fn parent(
        &mut self,
        child: i64,
        i: usize,
        values: &[Value],
        stack: &mut Vec<RowAt>,
    ) -> Result<Parent> {
        let conn = self.conn;
        let r = self.parking.references.of(child).nth(i).expect("counted");
        let Some(parent_id) = r.parent_id else {
            return Ok(match r.in_unsynced_parent(conn, values)? {
                true => Parent::There,
                false => Parent::Missing(None),
            });
        };
        let parent = table_by_id(self.known.tables, parent_id)?;
        let key = match r.to_key {
            true => Some(values.to_vec()),
            false => r.parent_row(conn, parent, values)?,
        };
        let Some(key) = key else {
            return Ok(Parent::Missing(Some((
                parent_id,
                log::row_key(values.iter()),
            ))));
        };
        let at = (parent_id, log::row_key(key.iter()));
        if stack.contains(&at) {
            // a cycle: it stays if this row does; judged again if it does not
            let assumer = stack.last().expect("the row judged").clone();
            if assumer != at {
                self.parking.assumed.push((at, assumer)); // (a row that names itself stays)
            }
            return Ok(Parent::There);
        }
        let why = match self.load_record(&at)? {
            Some((why, _)) => Some(why),
            None => {
                let there = self.rows.writers.read(parent, &key_cells(parent, &at.1)?)?;
                return Ok(match there {
                    Some(_) => Parent::There,
                    None => Parent::Missing(Some(at)),
                });
            }
        };
        let why = match why {
            Some(w) if w != ROW && !self.parking.judged.contains(&at) => {
                self.judge(at.clone(), stack)?
            }
            other => other,
        };
        Ok(match why {
            None => Parent::There,
            Some(w) if w == UNIQUE || w == HELD => Parent::Held(at),
            Some(_) => Parent::Missing(Some(at)),
        })
    }

    /// Writes row `at` (`cells`) into its table, as the app's own write would (with triggers
    /// off when it is `held`), taking each UNIQUE value it needs from a row with a later first
    /// op. Returns why it is held out instead, or None when it is in its table.
    fn contest(
        &mut self,
        table: &SyncedTable,
        at: &RowAt,
        key: &Cells,
        cells: &Cells,
        held: bool,
        visible: bool,
    ) -> Result<Option<Hold>> {
        let state = RowState::Present(cells.clone());
        if !held && !visible {
            // in its table as a held row: the app sees it come
            let writers = &mut self.rows.writers;
            self.quiet
                .untriggered(|| writers.write(table, key, &RowState::Absent))?;
        }
        if held && self.quiet.app_triggers_fire() {
            // its triggers judge it as they would judge it in the table
            if let Some(e) = self.row_check(table, key, cells)? {
                return Ok(Some(row_hold(&e)));
            }
        }
        loop {
            let attempt = match held {
                true => {
                    let writers = &mut self.rows.writers;
                    self.quiet.untriggered(|| writers.write(table, key, &state))
                }
                false => self.write_row(table, key, &state),
            };
            let e = match attempt {
                Ok(()) => return Ok(None),
                Err(e) if e.is_unique() => e,
                Err(e) if e.is_constraint() => return Ok(Some(row_hold(&e))),
                Err(e) => return Err(e),
            };
            let Some(other) = self.clashing(table, key, cells)? else {
                return Ok(Some(row_hold(&e)));
            };
            let other_at = (table.id, log::row_key(other.iter()));
            let other_record = self.load_record(&other_at)?;
            if let Some((PENDING, _)) = other_record {
                // its own write was refused: the values in its table are old ones, not what
                // it holds now: they leave, and it is judged with those
                let other_key = key_cells(table, &other_at.1)?;
                self.take_out(table, &other_key, true, true)?;
                self.parking.push(other_at);
                continue;
            }
            let columns = unique_columns(&e);
            if self.first_op(table, &other_at)? < self.first_op(table, at)? {
                let by_values = self.holder_values(table, &other, &columns)?;
                return Ok(Some(Hold {
                    why: UNIQUE,
                    reason: reason_of(&e),
                    columns,
                    by: Some(other_at),
                    by_values,
                }));
            }
            // this row keeps the value: the other one leaves
            let other_key = key_cells(table, &other_at.1)?;
            let other_cells = match &other_record {
                Some((_, cells)) => cells.clone(),
                None => (self.rows.writers.read(table, &other_key)?).unwrap_or_default(),
            };
            let other_visible = other_record.as_ref().is_none_or(|(w, _)| *w != HELD);
            self.take_out(table, &other_key, true, other_visible)?;
            let mine: Vec<Value> = key.iter().map(|(_, v)| v.clone()).collect();
            let hold = Hold {
                why: UNIQUE,
                reason: reason_of(&e),
                by_values: self.holder_values(table, &mine, &columns)?,
                columns,
                by: Some(at.clone()),
            };
            self.record_hold(table, &other_at, &other_key, &other_cells, &hold)?;
            self.queue_held_by(&other_at)?;
            let values: Vec<Value> = other_key.iter().map(|(_, v)| v.clone()).collect();
            self.queue_children(table, &values, false)?;
            self.parking.push(other_at);
            // this row may name the one it took the value from, which was there when its
            // references were judged (rule 4): judged again (it is not in its table yet, so
            // the other's children above do not hold it)
            self.parking.push(at.clone());
        }
    }

    /// What SQLite says of the row `cells` on its own (a NOT NULL, a CHECK, a type, a trigger's
    /// RAISE), asked by a trial write as the app's, rolled back; None when it passes (a
    /// UNIQUE value taken is not the row's own fault).
    fn row_check(
        &mut self,
        table: &SyncedTable,
        key: &Cells,
        cells: &Cells,
    ) -> Result<Option<Error>> {
        let conn = self.conn;
        let state = RowState::Present(cells.clone());
        let trial = conn.trial("sync_trial", || {
            let writers = &mut self.rows.writers;
            (self.quiet).untriggered(|| writers.write(table, key, &RowState::Absent))?;
            self.write_row(table, key, &state)
        });
        match trial {
            Err(e) if e.is_constraint() && !e.is_unique() => Ok(Some(e)),
            Err(e) if !e.is_constraint() => Err(e),
            _ => Ok(None),
        }
    }

    /// The key of the row in `table` that keeps a UNIQUE value `cells` would take: a trial
    /// upsert of the row, rolled back, returns the row it met.
    fn clashing(
        &mut self,
        table: &SyncedTable,
        key: &Cells,
        cells: &Cells,
    ) -> Result<Option<Vec<Value>>> {
        let q = quote_ident;
        let known: Vec<&(String, Value)> = (cells.iter())
            .filter(|(c, _)| table.column(c).is_some())
            .collect();
        let names: Vec<String> = known.iter().map(|(c, _)| q(c)).collect();
        let marks: Vec<String> = (1..=known.len()).map(|i| format!("?{i}")).collect();
        let key_names: Vec<String> = table.key_columns().map(q).collect();
        let sets: Vec<String> = key_names.iter().map(|k| format!("{k} = {k}")).collect();
        let insert = format!(
            "INSERT INTO main.{}({}) VALUES ({}) ON CONFLICT DO UPDATE SET {} RETURNING {}",
            q(&table.name),
            names.join(", "),
            marks.join(", "),
            sets.join(", "),
            key_names.join(", ")
        );
        let delete = format!(
            "DELETE FROM main.{} WHERE {}",
            q(&table.name),
            key_match(key.iter().map(|(c, _)| c.as_str()))
        );
        let conn = self.conn;
        let params: Vec<Value> = known.iter().map(|(_, v)| v.clone()).collect();
        let key_values: Vec<Value> = key.iter().map(|(_, v)| v.clone()).collect();
        let found = conn.trial("sync_probe", || {
            self.quiet.untriggered(|| {
                conn.exec(&delete, &key_values)?;
                conn.query_row(&insert, &params)
            })
        });
        match found {
            Ok(Some(other)) if other != key_values => Ok(Some(other)),
            Ok(_) => Ok(None),
            Err(e) if e.is_constraint() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The order key of the first op on row `at`: the earlier row keeps a UNIQUE value.
    fn first_op(&mut self, table: &SyncedTable, at: &RowAt) -> Result<(u64, DeviceId, u64)> {
        if let Some(first) = self.parking.first_ops.get(at) {
            return Ok(*first);
        }
        let (ops, _) = self.known.reader(None).ops(self.conn, table, &at.1)?;
        let first =
            (ops.iter().map(RowOp::order_key).min()).unwrap_or((u64::MAX, [0xff; 16], u64::MAX));
        self.parking.first_ops.insert(at.clone(), first);
        Ok(first)
    }

    /// The row with key `key` as `sync_conflicts.remote_values` shows the holder of a value:
    /// its key and the constraint's columns.
    fn holder_values(
        &mut self,
        table: &SyncedTable,
        key: &[Value],
        columns: &[String],
    ) -> Result<String> {
        let key_cells: Cells = table
            .key_columns()
            .map(str::to_string)
            .zip(key.iter().cloned())
            .collect();
        let mut shown = key_cells.clone();
        if let Some(row) = self.rows.writers.read(table, &key_cells)? {
            for (c, v) in row {
                if columns.iter().any(|x| x.eq_ignore_ascii_case(&c))
                    && !shown.iter().any(|(n, _)| *n == c)
                {
                    shown.push((c, v));
                }
            }
        }
        Ok(JsonObject::of(&shown))
    }

    /// Takes a row out of its table: as a delete the app's triggers see when it was `visible`,
    /// with triggers off when it was in the table only as a held row.
    fn take_out(
        &mut self,
        table: &SyncedTable,
        key: &Cells,
        present: bool,
        visible: bool,
    ) -> Result<()> {
        if !present {
            return Ok(());
        }
        if visible {
            match self.write_row(table, key, &RowState::Absent) {
                Err(e) if e.is_constraint() => {} // an app trigger that refuses it: as below
                other => return other,
            }
        }
        let writers = &mut self.rows.writers;
        self.quiet
            .untriggered(|| writers.write(table, key, &RowState::Absent))
    }

    /// Queues the rows of `table` whose record names row `at` as what holds them out.
    fn queue_held_by(&mut self, at: &RowAt) -> Result<()> {
        let found = self.rows_at(
            "SELECT table_id, key FROM main._sync_parked WHERE by_table = ?1 AND by_key = ?2",
            &[Value::Integer(at.0), Value::Blob(at.1.clone())],
        )?;
        for at in found {
            self.parking.push(at);
        }
        Ok(())
    }

    /// The rows (table id, key) a cached query of `_sync_parked` returns.
    fn rows_at(&mut self, sql: &'static str, params: &[Value]) -> Result<Vec<RowAt>> {
        let stmt = self.cached(sql, params)?;
        let mut found = Vec::new();
        let result = (|| {
            while let Some(row) = stmt.step()? {
                found.push((
                    row.column_int(0),
                    row.column_blob(1)?.unwrap_or_default().to_vec(),
                ));
            }
            Ok(())
        })();
        stmt.reset();
        result.map(|()| found)
    }

    /// Queues the rows in their tables that name the row of `table` with key `key` (by
    /// references to the key; `key_only`: only those).
    pub(super) fn queue_children(
        &mut self,
        table: &SyncedTable,
        key: &[Value],
        key_only: bool,
    ) -> Result<()> {
        let conn = self.conn;
        let tables = self.known.tables;
        let mut found = Vec::new();
        let current = match key_only {
            true => None,
            false => {
                let cells: Cells = table
                    .key_columns()
                    .map(str::to_string)
                    .zip(key.iter().cloned())
                    .collect();
                self.rows.writers.read(table, &cells)?
            }
        };
        for r in self.parking.references.to(table.id) {
            let values: Vec<Value> = match (r.to_key, &current) {
                (true, _) => key.to_vec(),
                (false, Some(cells)) => match r
                    .to
                    .iter()
                    .map(|c| {
                        cells
                            .iter()
                            .find(|(n, _)| n.eq_ignore_ascii_case(c))
                            .map(|(_, v)| v.clone())
                    })
                    .collect::<Option<Vec<_>>>()
                {
                    Some(v) => v,
                    None => continue,
                },
                (false, None) => continue,
            };
            let child = table_by_id(tables, r.child)?;
            for k in r.children(conn, child, &values)? {
                found.push((child.id, log::row_key(k.iter())));
            }
        }
        for at in found {
            self.parking.push(at);
        }
        Ok(())
    }

    /// Queues the rows that name, by other columns than a key, a row that is not there, in
    /// tables whose parent was written (rare: such references are read whole).
    fn queue_orphans_of_written(&mut self) -> Result<()> {
        let conn = self.conn;
        let tables = self.known.tables;
        let mut found = Vec::new();
        for r in self
            .parking
            .references
            .all()
            .filter(|r| !r.to_key && self.parking.written.contains(&r.child))
        {
            let child = table_by_id(tables, r.child)?;
            let q = quote_ident;
            let names: Vec<String> = child.key_columns().map(|c| format!("c.{}", q(c))).collect();
            let matches: Vec<String> = (r.from.iter().zip(&r.to))
                .map(|(f, t)| format!("p.{} = c.{}", q(t), q(f)))
                .collect();
            let set: Vec<String> = r
                .from
                .iter()
                .map(|f| format!("c.{} IS NOT NULL", q(f)))
                .collect();
            let mut stmt = conn.prepare(&format!(
                "SELECT {} FROM main.{} c WHERE {} AND NOT EXISTS (SELECT 1 FROM main.{} p WHERE {})",
                names.join(", "),
                q(&child.name),
                set.join(" AND "),
                q(&r.parent),
                matches.join(" AND ")
            ))?;
            while let Some(row) = stmt.step()? {
                found.push((child.id, log::row_key(row.values()?.iter())));
            }
        }
        for at in found {
            self.parking.push(at);
        }
        Ok(())
    }

    /// A held row's table, key and cells (None when its table is not synced now).
    fn held_row(&mut self, at: &RowAt) -> Result<Option<(&'a SyncedTable, Cells, Cells)>> {
        let tables = self.known.tables;
        let Ok(table) = table_by_id(tables, at.0) else {
            return Ok(None);
        };
        let Some((_, cells)) = self.load_record(at)? else {
            return Ok(None);
        };
        Ok(Some((table, key_cells(table, &at.1)?, cells)))
    }

    /// The record of row `at`: why it is held out, and its cells.
    fn load_record(&mut self, at: &RowAt) -> Result<Option<(i64, Cells)>> {
        if !self.parking.tables.contains(&at.0) {
            return Ok(None);
        }
        let Some(row) = self.query_row(
            "SELECT why, cells FROM main._sync_parked WHERE table_id = ?1 AND key = ?2",
            &[Value::Integer(at.0), Value::Blob(at.1.clone())],
        )?
        else {
            return Ok(None);
        };
        let cells: Cells = rmp_serde::from_slice(row[1].as_blob().unwrap_or_default())
            .map_err(|_| Error::new("damaged record in _sync_parked"))?;
        Ok(Some((row[0].as_i64().unwrap_or(PENDING), cells)))
    }

    fn drop_record(&mut self, at: &RowAt) -> Result<()> {
        if !self.parking.tables.contains(&at.0) {
            return Ok(());
        }
        self.run(
            "DELETE FROM main._sync_parked WHERE table_id = ?1 AND key = ?2",
            &[Value::Integer(at.0), Value::Blob(at.1.clone())],
        )
    }

    /// Writes the record of row `at` held out (`hold`), as `sync_conflicts` shows it.
    fn record_hold(
        &mut self,
        table: &SyncedTable,
        at: &RowAt,
        key: &Cells,
        cells: &Cells,
        hold: &Hold,
    ) -> Result<()> {
        self.parking.tables.insert(table.id);
        let mut row: Cells = key.clone();
        row.extend(
            cells
                .iter()
                .filter(|(c, _)| !key.iter().any(|(k, _)| k == c))
                .cloned(),
        );
        // (every column, as the row would come back: one no op on it wrote, a column added
        // after them, at its default, as a device whose table row had it shows it)
        self.at_defaults(table, &mut row)?;
        let row_values = JsonObject::of(&row);
        let op = self.last_op(table, at)?;
        let by_op = match &hold.by {
            Some(by) => match table_by_id(self.known.tables, by.0) {
                Ok(t) => self.last_op(t, by)?,
                Err(_) => None,
            },
            None => None,
        };
        let by_key = hold.by.as_ref().map(|b| b.1.clone());
        let id = record_id(
            &table.name,
            &at.1,
            &hold.reason,
            by_key.as_deref(),
            op.as_deref(),
            &row_values,
        );
        let encoded = rmp_serde::to_vec(cells).map_err(|e| Error::new(format!("record: {e}")))?;
        let text = |s: Option<String>| s.map_or(Value::Null, Value::Text);
        self.run(
            "INSERT OR REPLACE INTO main._sync_parked(table_id, key, why, cells, by_table, by_key,
               id, pk, columns, op, row_values, by_op, by_values, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            &[
                Value::Integer(table.id),
                Value::Blob(at.1.clone()),
                Value::Integer(hold.why),
                Value::Blob(encoded),
                hold.by
                    .as_ref()
                    .map_or(Value::Null, |b| Value::Integer(b.0)),
                by_key.map_or(Value::Null, Value::Blob),
                Value::Blob(id.to_vec()),
                Value::Text(JsonObject::of(key)),
                Value::Text(crate::value::json_string_list(&hold.columns)),
                text(op),
                Value::Text(row_values),
                text(by_op),
                Value::Text(hold.by_values.clone()),
                Value::Text(hold.reason.clone()),
            ],
        )
    }

    /// The id of the op with the greatest order key on row `at`, in hex (None: no op).
    fn last_op(&mut self, table: &SyncedTable, at: &RowAt) -> Result<Option<String>> {
        let (ops, _) = self.known.reader(None).ops(self.conn, table, &at.1)?;
        Ok(ops
            .iter()
            .max_by_key(|o| o.order_key())
            .map(|o| hex(&crate::op::op_id(&o.device, o.seq as i64))))
    }
}

/// A record's id: from its table, row, reason, the row that holds it out and the last op
/// written to the row (the row's values where no op wrote it: a row of this device's written
/// before its table was enabled), so every device names it alike, whatever columns its table
/// has yet (docs/sync-rules.md), and a row held out otherwise is another record.
fn record_id(
    table: &str,
    key: &[u8],
    reason: &str,
    by: Option<&[u8]>,
    op: Option<&str>,
    values: &str,
) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(b"parked\0")
        .chain_update(table.to_lowercase())
        .chain_update([0])
        .chain_update(key)
        .chain_update(reason)
        .chain_update([0])
        .chain_update(by.unwrap_or_default())
        .chain_update(match op {
            Some(op) => [b"op\0", op.as_bytes()].concat(),
            None => values.as_bytes().to_vec(),
        })
        .finalize();
    digest[..16].try_into().expect("16 of 32 bytes")
}

/// Names again the records of rows held out that a build before `record_id` named by the row's
/// values (which differ between devices whose tables have other columns), once per database.
pub fn name_records_by_op(conn: &crate::db::Conn) -> Result<()> {
    const DONE: &str = "parked ids by op";
    if crate::schema::state(conn, DONE)? == 1 {
        return Ok(());
    }
    let mut renamed = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT p.table_id, p.key, t.name, p.reason, p.by_key, p.op, p.row_values
         FROM main._sync_parked p JOIN main._sync_tables t ON t.id = p.table_id",
    )?;
    while let Some(row) = stmt.step()? {
        let text = |i| row.column(i).map(|v| v.as_text().map(str::to_string));
        let key = row.column_blob(1)?.unwrap_or_default().to_vec();
        let id = record_id(
            &text(2)?.unwrap_or_default(),
            &key,
            &text(3)?.unwrap_or_default(),
            row.column_blob(4)?,
            text(5)?.as_deref(),
            &text(6)?.unwrap_or_default(),
        );
        renamed.push((row.column_int(0), key, id));
    }
    drop(stmt);
    for (table_id, key, id) in renamed {
        conn.exec(
            "UPDATE main._sync_parked SET id = ?3 WHERE table_id = ?1 AND key = ?2",
            &[
                Value::Integer(table_id),
                Value::Blob(key),
                Value::Blob(id.to_vec()),
            ],
        )?;
    }
    crate::schema::set_state(conn, DONE, 1)
}

/// The key of a row as the row index has it.
fn row_key(key: &Cells) -> Vec<u8> {
    log::row_key(key.iter().map(|(_, v)| v))
}

/// The key cells of row `key` (msgpack) of `table`.
fn key_cells(table: &SyncedTable, key: &[u8]) -> Result<Cells> {
    let values: Vec<Value> =
        rmp_serde::from_slice(key).map_err(|_| Error::new("damaged row key in _sync_parked"))?;
    Ok(table
        .key_columns()
        .map(str::to_string)
        .zip(values)
        .collect())
}

/// SQLite's words for a refused write, without the extension's prefix.
fn reason_of(e: &Error) -> String {
    let m = e.message.as_ref();
    m.strip_prefix("SQL error: ").unwrap_or(m).to_string()
}

/// Why a row is held out by rule 1, from SQLite's error.
fn row_hold(e: &Error) -> Hold {
    Hold {
        why: ROW,
        reason: reason_of(e),
        columns: unique_columns(e),
        by: None,
        by_values: "null".into(),
    }
}

/// The columns SQLite names in `UNIQUE constraint failed: t.a, t.b` (or `NOT NULL …: t.a`);
/// none for an index on expressions, a CHECK or a trigger.
fn unique_columns(e: &Error) -> Vec<String> {
    let reason = reason_of(e);
    let Some((head, list)) = reason.split_once(" constraint failed: ") else {
        return Vec::new();
    };
    if !["UNIQUE", "NOT NULL"].contains(&head) || list.starts_with("index '") {
        return Vec::new();
    }
    list.split(", ")
        .map(|c| c.split_once('.').map_or(c, |(_, c)| c).to_string())
        .collect()
}

/// The row held out under record `id` (`sync_conflicts.id`): its table's id, key values and
/// cells; None when no row is held out under that id.
pub fn held_out(conn: &crate::db::Conn, id: &[u8]) -> Result<Option<(i64, Vec<Value>, Cells)>> {
    let Some(row) = conn.query_row(
        "SELECT table_id, key, cells FROM main._sync_parked WHERE id = ?1 AND why <> ?2",
        &[Value::Blob(id.to_vec()), Value::Integer(PENDING)],
    )?
    else {
        return Ok(None);
    };
    let damaged = || Error::new("damaged record in _sync_parked");
    let key: Vec<Value> =
        rmp_serde::from_slice(row[1].as_blob().unwrap_or_default()).map_err(|_| damaged())?;
    let cells: Cells =
        rmp_serde::from_slice(row[2].as_blob().unwrap_or_default()).map_err(|_| damaged())?;
    Ok(Some((row[0].as_i64().unwrap_or(0), key, cells)))
}

/// The keys (as the row index has them) of the rows of table `table_id` held out of it.
pub fn held_out_keys(conn: &crate::db::Conn, table_id: i64) -> Result<Vec<Vec<u8>>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT key FROM main._sync_parked WHERE table_id = ?1 AND why <> {PENDING}"
    ))?;
    stmt.bind_all(&[Value::Integer(table_id)])?;
    let mut keys = Vec::new();
    while let Some(row) = stmt.step()? {
        keys.push(row.column_blob(0)?.unwrap_or_default().to_vec());
    }
    Ok(keys)
}

/// Why row `key` (msgpack of its key values) of table `table_id` is held out of its table
/// (SQLite's words); None when it is not.
pub fn held_out_reason(
    conn: &crate::db::Conn,
    table_id: i64,
    key: &[u8],
) -> Result<Option<String>> {
    Ok(conn
        .query_value(
            "SELECT reason FROM main._sync_parked WHERE table_id = ?1 AND key = ?2 AND why <> ?3",
            &[
                Value::Integer(table_id),
                Value::Blob(key.to_vec()),
                Value::Integer(PENDING),
            ],
        )?
        .map(|v| v.as_text().unwrap_or_default().to_string()))
}
