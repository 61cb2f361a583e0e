//! Writing what an import applied: each op's row indexed, a new row written at once, and every
//! row with more than one op settled from its live set by the merge rule, with its conflicts.

use crate::conflicts;
use crate::db::{Conn, Error, Result};
use crate::hashed::HashSet;
use crate::log::{self, SyncedTable};
use crate::merge::live::{OpAt, RowLive};
use crate::merge::row_index::Entry;
use crate::merge::{self, RowState};
use crate::op::OpKind;
use crate::schema::{DeviceIdx, SELF};
use crate::sql::BATCH;
use crate::value::{Cells, Value};

use super::checks::{find_table, table_by_id};
use super::forward::Forward;
use super::import::{Import, Place};

impl Import<'_> {
    /// Notes op `seq` of `device` (of form `form_id`, with `values`) as applied; its row is
    /// indexed and written (or marked for settling) by `write_applied`, a batch at a time.
    pub(super) fn applied(
        &mut self,
        device: DeviceIdx,
        seq: u64,
        lamport: u64,
        form_id: i64,
        values: Vec<Value>,
    ) -> Result<()> {
        let form = self.known.forms.get(form_id)?;
        let key = log::row_key(values[..form.key.len()].iter());
        match self.place_of(device, form_id)? {
            Place::Table(table_id) => {
                self.rows.batch.push((table_id, key, device, seq));
                self.rows.batch_ops.push((form_id, lamport, values));
            }
            // a table not captured here, or declared otherwise: kept (kept.rs)
            Place::Kept(table_id, why) => {
                if let Some(why) = why.as_ref().filter(|w| !self.outcome.otherwise.contains(w)) {
                    self.outcome.otherwise.push(why.clone());
                }
                self.keep((table_id, key, device, seq), why)?
            }
            Place::Floor => self.learn_floor((device, seq), &values)?,
        }
        self.clocks.clock.insert(device, seq);
        self.clocks.tips.insert(device, (seq, lamport));
        self.clocks.lamport = self.clocks.lamport.max(lamport);
        self.outcome.applied += 1;
        if self.rows.batch.len() == BATCH {
            self.write_applied()?;
        }
        Ok(())
    }

    /// Indexes the rows of the ops applied since the last call, writes each row whose only op
    /// is one of them, and marks the others for settling.
    pub(super) fn write_applied(&mut self) -> Result<()> {
        let entries = std::mem::take(&mut self.rows.batch);
        let ops = std::mem::take(&mut self.rows.batch_ops);
        let priors = self.rows.index.add_many(&entries)?;
        // a row with two ops in the batch is settled (its prior is from before both)
        let mut seen = HashSet::with_capacity_and_hasher(entries.len(), Default::default());
        let twice: HashSet<(i64, &[u8])> = (entries.iter())
            .map(|e| (e.0, e.1.as_slice()))
            .filter(|&row| !seen.insert(row))
            .collect();
        let mut new_rows: Vec<(i64, Vec<Value>, &Entry)> = Vec::with_capacity(entries.len());
        let mut forwards = Vec::new();
        for ((entry, (form_id, lamport, values)), prior) in entries.iter().zip(ops).zip(priors) {
            let Some(prior) = prior else {
                new_rows.push((form_id, values, entry));
                continue;
            };
            let once = !twice.contains(&(entry.0, entry.1.as_slice()));
            if let (true, Some(live)) = (once, self.forward(entry, form_id, &prior)?) {
                let entry = entry.clone();
                forwards.push(Forward {
                    entry,
                    form_id,
                    lamport,
                    values,
                    first: prior.first,
                    live,
                });
                continue;
            }
            self.rows.touched.add(entry);
            // its settle reads it from here (a local op never comes through here)
            (self.rows.recent).keep((entry.2, entry.3), lamport, form_id, values);
        }
        self.write_forwards(forwards)?;
        // runs of one form go to the table together; a row that breaks a constraint of this
        // database on its own is settled at the end instead, from all its ops and after the
        // other rows (a later op of the bundle may mend it, or the row it refers to may come)
        for run in new_rows.chunk_by(|a, b| a.0 == b.0) {
            let form_id = run[0].0;
            let form = self.known.forms.get(form_id)?;
            let table = find_table(self.known.tables, &form.table)?;
            let rows: Vec<&[Value]> = run.iter().map(|(_, v, _)| v.as_slice()).collect();
            match self.rows.writers.write_many(table, form_id, form, &rows) {
                Err(e) if e.is_constraint() => {
                    if self.conn.is_autocommit() {
                        return Err(self.rolled_back(table, e));
                    }
                    for (_, values, entry) in run {
                        match self.rows.writers.write_single(table, form_id, form, values) {
                            Err(e) if e.is_constraint() && !self.conn.is_autocommit() => {
                                self.rows.touched.add(entry);
                            }
                            Err(e) => return Err(self.rolled_back(table, e)),
                            Ok(()) => {}
                        }
                    }
                }
                other => other?,
            }
            if self.parking.concerns(table.id) {
                // (a row settled at the end is judged then; one only a floor op touched may
                // not be settled, and a row taken out earlier in this import may name a row
                // gone since: judged all the same)
                let keys: Vec<&[u8]> = (run.iter())
                    .filter(|(_, _, entry)| !self.rows.touched.settles(entry))
                    .map(|(_, _, entry)| entry.1.as_slice())
                    .collect();
                self.wrote_new(table, &keys);
            }
        }
        if self.quiet.app_triggers_fire() {
            self.put_back_new_rows(&new_rows)?;
        }
        Ok(())
    }

    /// After the app's triggers fired for new rows: a row one of them changed on the way is put
    /// back to what its op says (see `write_row`). Rows left for settling are settled later.
    pub(super) fn put_back_new_rows(&mut self, rows: &[(i64, Vec<Value>, &Entry)]) -> Result<()> {
        for &(form_id, ref values, entry) in rows {
            if self.rows.touched.settles(entry) {
                continue;
            }
            let form = self.known.forms.get(form_id)?;
            let table = find_table(self.known.tables, &form.table)?;
            let spell = |pairs: &mut dyn Iterator<Item = (&String, &Value)>| -> Cells {
                table.spell(pairs.map(|(c, v)| (c.clone(), v.clone())).collect())
            };
            let key = spell(&mut form.key_cells(values));
            let state = match form.kind {
                OpKind::Delete => RowState::Absent,
                _ => RowState::Present(spell(&mut form.cells(values))),
            };
            self.put_back(table, &key, &state)?;
        }
        Ok(())
    }

    /// Writes `state` again, with triggers off, when an app trigger changed the row on the way.
    pub(super) fn put_back(
        &mut self,
        table: &SyncedTable,
        key: &Cells,
        state: &RowState,
    ) -> Result<()> {
        if !self.rows.writers.holds(table, key, state)? {
            let writers = &mut self.rows.writers;
            self.quiet
                .untriggered(|| writers.write(table, key, state))?;
        }
        Ok(())
    }

    /// Settles every touched row.
    pub(super) fn settle_touched(&mut self) -> Result<()> {
        while !self.rows.touched.is_empty() {
            for (table_id, key) in self.rows.touched.take_behind() {
                if merge::live::floor_may_change(&mut self.statements, table_id, &key)? {
                    self.rows.touched.all(table_id, key);
                }
            }
            let rows = self.rows.touched.take();
            for ((table_id, key), new) in rows {
                if !self.known.tables.iter().any(|t| t.id == table_id) {
                    // a table not synced now (disabled, or gone): its row is settled when it is
                    // enabled again (catch_up.rs), from every op, its set marked to be computed
                    // again (log/ and merge/live.rs: an empty set)
                    self.run(
                        "UPDATE main._sync_rows SET live = x'' WHERE table_id = ?1 AND key = ?2",
                        &[Value::Integer(table_id), Value::Blob(key)],
                    )?;
                    continue;
                }
                self.settle_row(table_id, &key, new.as_deref())?;
            }
        }
        Ok(())
    }

    /// Settles one row after the ops `new` (or from every op on it: None): its live set, its
    /// user row and its conflict records.
    pub(super) fn settle_row(
        &mut self,
        table_id: i64,
        key: &[u8],
        new: Option<&[OpAt]>,
    ) -> Result<()> {
        let tables = self.known.tables;
        let table = table_by_id(tables, table_id)?;
        let conn = self.conn;
        let (row, state) = {
            let order = self.known.order();
            let reader = self.known.reader(Some(&self.rows.recent));
            let (statements, universes) = (&mut self.statements, &mut self.universes);
            let row = RowLive::settle(
                conn, statements, universes, &reader, &order, table, key, new,
            )?;
            if row.key.is_empty() {
                // every op of it went since it was touched (kept.rs `unindex` took it out of
                // its table then: apply/behind.rs, apply/removed.rs)
                return Ok(());
            }
            if row.only_local {
                // this device's own writes, which its table shows: no side of another device
                row.save(conn, statements, universes, table_id, key)?;
                return self.written_here(table, key);
            }
            let state = row.state(conn, &reader, &order, table, key)?;
            (row, state)
        };
        let state = self.whole(table, key, state)?;
        let lost = merge::losses(&row.ops, &row.live, &row.universe);
        self.place_row(table, &row.key, &state)?;
        let order = self.known.order();
        let statements = &mut self.statements;
        if !(row.no_records_before && lost.is_empty()) {
            self.outcome.conflicts +=
                conflicts::store(statements, &order, table, key, &row, &state, &lost)?;
        }
        row.save(conn, statements, &mut self.universes, table_id, key)
    }

    /// `state` of row `key` of `table`, with the columns no op on it writes at their defaults
    /// where some of its ops were dropped (`Rows::rewrite`): an op a compaction point decided
    /// against may have been the only one that wrote them.
    fn whole(&mut self, table: &SyncedTable, key: &[u8], state: RowState) -> Result<RowState> {
        let RowState::Present(mut cells) = state else {
            return Ok(state);
        };
        if !self.rows.rewrite.remove(&(table.id, key.to_vec())) {
            return Ok(RowState::Present(cells));
        }
        self.at_defaults(table, &mut cells)?;
        Ok(RowState::Present(cells))
    }

    /// Adds to `cells` the columns of `table` they lack, at their defaults: what an INSERT of
    /// the row without them writes here.
    pub(super) fn at_defaults(&mut self, table: &SyncedTable, cells: &mut Cells) -> Result<()> {
        // (the usual case, every column there: nothing to read; a held-out row's record is
        // written at every import that judges it)
        let has = |c: &String| cells.iter().any(|(n, _)| n.eq_ignore_ascii_case(c));
        if table.shape.columns.iter().all(has) {
            return Ok(());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT name, dflt_value FROM pragma_table_info(?1, 'main')")?;
        stmt.bind_all(&[Value::Text(table.name.clone())])?;
        let mut missing = Vec::new();
        while let Some(row) = stmt.step()? {
            let name = row.column(0)?.as_text().unwrap_or_default().to_string();
            if !cells.iter().any(|(c, _)| c.eq_ignore_ascii_case(&name)) {
                missing.push((name, row.column(1)?.as_text().map(str::to_string)));
            }
        }
        drop(stmt);
        for (name, default) in missing {
            // (the table's own declaration: what an INSERT without the column writes)
            let value = match default {
                Some(sql) => self.conn.query_value(&format!("SELECT {sql}"), &[])?,
                None => None,
            };
            cells.push((name, value.unwrap_or(Value::Null)));
        }
        Ok(())
    }

    /// Makes a user row hold `state`. When the app's triggers fire, a row that holds it already
    /// is not written (its triggers see no change), and one that an app trigger changed on the
    /// way is put back with triggers off: a synced table shows exactly what its ops say.
    pub(super) fn write_row(
        &mut self,
        table: &SyncedTable,
        key: &Cells,
        state: &RowState,
    ) -> Result<()> {
        if !self.quiet.app_triggers_fire() {
            return self.rows.writers.write(table, key, state);
        }
        match self.rows.writers.write_as_app(table, key, state) {
            Ok(false) => Ok(()),
            Ok(true) => self.put_back(table, key, state),
            Err(e) => Err(self.rolled_back(table, e)),
        }
    }

    /// The error of a write the app's triggers refused; when one of them rolled the whole
    /// transaction back (`RAISE(ROLLBACK)`), the import cannot go on: an error that is no
    /// constraint's, so nothing goes on writing outside the transaction that ended.
    pub(super) fn rolled_back(&self, table: &SyncedTable, e: Error) -> Error {
        if !e.is_constraint() || !self.conn.is_autocommit() {
            return e;
        }
        Error::new(format!(
            "a trigger of yours rolled the import's transaction back while it wrote a row of \
             table {:?} ({e}): nothing was imported (and a transaction of yours it ran in was \
             rolled back too); to refuse rows, use RAISE(ABORT, …) or RAISE(FAIL, …): such rows \
             are held out of the table instead",
            table.name
        ))
    }
}

impl Import<'_> {
    /// Settles the rows touched, places the rows a constraint holds out or lets back, checks
    /// what was read, and ends the quiet: the end of a run outside an import (a fold of local
    /// ops, a release of kept ops, a floor written here).
    pub(super) fn settle_and_finish(mut self) -> Result<()> {
        self.settle_touched()?;
        self.place_rows()?;
        self.known.contexts.check()?;
        self.known.local.check()?;
        self.quiet.finish()
    }
}

/// Indexes this device's ops not yet in the row index and settles the rows they share with
/// other devices' ops (their conflicts), as an import does first; for sync_resolve, and for a
/// fork, which then moves them (fork.rs). The caller holds a savepoint.
pub fn fold_local(conn: &Conn) -> Result<()> {
    let tables = log::synced_tables(conn)?;
    let mut run = Import::new(conn, &tables)?;
    let last = run.clocks.clock.get(&SELF).copied().unwrap_or(0);
    run.fold_local_ops(last)?;
    run.settle_and_finish()
}
