//! Apply: `sync_bundle_in`, which validates a bundle whole, stores its ops, applies them in
//! causal order and brings every row they touch to the state the merge rule gives.
//!
//! Invariants: nothing is written before the whole bundle is validated; everything is written in
//! one savepoint, so an error leaves the database as it was; an op is applied only when every op
//! in its causal context is (others wait as pending); the importer's own writes to user tables
//! are made with triggers off, so they are never captured as local ops; and a touched row is
//! rewritten from the whole set of ops on it (merge.rs), so the order in which ops arrive does
//! not matter.

use std::collections::HashMap;

mod cascade;
mod delivery;
mod fork;
mod histories;
mod quiet;

pub use fork::{fork, sync_fork};
use histories::Placed;

use crate::bundle::{Packed, Prev, Reader};
use crate::chain::{self, History};
use crate::clock::{self, Clock, Contexts, Devices, Order};
use crate::conflicts;
use crate::db::{Conn, Error, Result, Statements, Stmt, BATCH};
use crate::form::Form;
use crate::live::{OpAt, RowLive, Touched};
use crate::log::{self, LocalOps, SyncedTable};
use crate::merge::{self, RowOp, RowState};
use crate::op::DELETE;
use crate::remote::{self, Appender, Forms};
use crate::row_index::{Entry, RowIndex, RowReader};
use crate::row_writer::RowWriters;
use crate::schema::SELF;
use crate::value::{hex, Cells, JsonObject, Value};
use cascade::ForeignKeys;
use quiet::Quiet;

/// What one import did, as `sync_bundle_in` reports it.
#[derive(Default)]
struct Outcome {
    applied: u64,
    conflicts: u64,
    duplicates: u64,
    discarded: u64,
    skipped: bool,
}

/// `sync_bundle_in(path)`.
pub fn sync_bundle_in(conn: &Conn, args: &[Value]) -> Result<Value> {
    let path = args[0]
        .as_text()
        .ok_or_else(|| Error::new("expects the bundle's path as TEXT"))?;
    crate::identity::require_device(conn, fork)?;
    let in_bundle = |e: Error| Error::new(format!("bundle {path:?}: {e}"));
    let mut reader = Reader::open(path).map_err(in_bundle)?;
    let tables = log::synced_tables(conn)?;
    let me = crate::schema::device_id(conn)?.ok_or_else(|| Error::new("device row missing"))?;
    let manifest = reader.manifest.clone();
    let skipped = Outcome {
        skipped: true,
        ..Outcome::default()
    };
    let outcome = if imported_before(conn, &manifest.bundle_id)? {
        skipped
    } else {
        let mut checked_forms = Vec::new();
        // what the bundle says of ops of this device's id, (seq, hash): its source's clock,
        // deps, and the last of each run of such ops in it (the hash of an op stands for the
        // ops before it). When the source knows ops of this id beyond this log, or other ops
        // than this log's under its seqs, this database was put back to an older backup (or
        // rolled back), or copied and written before the extension was loaded on it: it forks
        // before it imports (identity.rs), and its ops become a history of its old id.
        let mut claims: Vec<(u64, crate::op::Hash)> = (manifest.clock.iter())
            .filter(|(id, _, _)| id[..] == me[..])
            .map(|&(_, seq, hash)| (seq, hash))
            .collect();
        let mut own_run = false;
        reader
            .each_op(|op, number, form| {
                if checked_forms.len() <= number {
                    validate_form(form, &tables)?;
                    checked_forms.push(number);
                }
                let own = op.device[..] == me[..];
                if let (true, Some(hash)) = (own, op.hash) {
                    if own_run && op.prev == Prev::Follows {
                        claims.pop();
                    }
                    claims.push((op.seq, hash));
                }
                own_run = own;
                for dep in op.deps.iter().filter(|dep| dep.0[..] == me[..]) {
                    claims.push((dep.1, dep.2));
                }
                validate(&op)
            })
            .map_err(in_bundle)?;
        let outermost = conn.is_autocommit();
        conn.savepoint("sync_bundle_in", || {
            crate::schema::lock_for_writing(conn)?;
            // what was read before the lock may have changed since: another connection may
            // have imported the same bundle, or enabled or disabled a table
            if imported_before(conn, &manifest.bundle_id)? {
                return Ok(skipped);
            }
            let shapes = |tables: &[SyncedTable]| -> Vec<(i64, i64)> {
                tables.iter().map(|t| (t.id, t.shape_id)).collect()
            };
            if shapes(&log::synced_tables(conn)?) != shapes(&tables) {
                return Err(Error::new(
                    "the synced tables changed while the bundle was read; import it again",
                ));
            }
            crate::capture::first_in_line(conn)?;
            if outermost {
                // rows are written in key order, not in the order of their ops: foreign keys
                // are checked when the import commits (SQLite ends the pragma there)
                conn.exec("PRAGMA defer_foreign_keys = ON", &[])?;
            }
            import(conn, &mut reader, &tables, outermost, &claims)
        })
        .map_err(in_bundle)?
    };
    let mut json = JsonObject::new();
    json.field("bundle_id", &Value::Text(hex(&manifest.bundle_id)))
        .field("source_device_id", &Value::Text(hex(&manifest.source)))
        .field(
            "total_operations",
            &Value::Integer(manifest.op_count as i64),
        )
        .field("applied_count", &Value::Integer(outcome.applied as i64))
        .field("conflict_count", &Value::Integer(outcome.conflicts as i64))
        .field(
            "duplicate_count",
            &Value::Integer(outcome.duplicates as i64),
        )
        .raw("skipped", if outcome.skipped { "true" } else { "false" })
        .field(
            "pending_count",
            &Value::Integer(pending_count(conn)? as i64),
        )
        .field("discarded_count", &Value::Integer(outcome.discarded as i64));
    Ok(Value::Text(json.finish()))
}

/// Whether the bundle with this id was imported here before.
fn imported_before(conn: &Conn, bundle_id: &[u8; 16]) -> Result<bool> {
    Ok(conn
        .query_value(
            "SELECT 1 FROM main._sync_bundles WHERE id = ?1",
            &[Value::Blob(bundle_id.to_vec())],
        )?
        .is_some())
}

fn pending_count(conn: &Conn) -> Result<u64> {
    Ok(conn
        .query_value(
            "SELECT count(*) FROM main._sync_remote WHERE applied = 0",
            &[],
        )?
        .and_then(|v| v.as_i64())
        .unwrap_or(0) as u64)
}

/// Checks that the deps of `op` are canonical.
fn validate(op: &Packed) -> Result<()> {
    // canonical deps: ascending by device, seq and hash, each at most once (a device that
    // wrote two histories may be named twice), none of the op's own device
    if op.deps.windows(2).any(|w| w[0] >= w[1]) || op.deps.iter().any(|d| d.0 == op.device) {
        return Err(Error::new(
            "its deps are not in order (by device, seq and hash), or name its own device",
        ));
    }
    Ok(())
}

/// Whether `op` (of bundle form `form`) is the op held here with `here_form`, `lamport`,
/// `values` and `deps`: the same canonical encoding (the compact forms may differ, as two
/// writers may alias differently).
fn same_op(
    op: &Packed,
    form: &Form,
    here_form: &Form,
    lamport: u64,
    values: &[Value],
    deps: &[crate::op::Dep],
) -> bool {
    // (the prevs are compared where a run of ops starts: `Import::check_prev`)
    let canonical = |form: &Form, lamport: u64, values: &[Value]| {
        let mut out = Vec::new();
        let head = crate::form::Head {
            lamport,
            ..op.head(None)
        };
        form.write_canonical(&mut out, &head, values);
        out
    };
    deps == op.deps
        && canonical(here_form, lamport, values) == canonical(form, op.lamport, &op.values)
}

/// The error for two different ops under one device id and seq.
fn two_histories(what: &str, seq: u64, device: &[u8]) -> String {
    format!(
        "{what} {seq} of device {} differs from the op with the same device and seq already \
         here: two databases wrote under one device id (a copy of a database file, or an \
         older backup put back, written before the extension was loaded on it), or the bundle \
         was forged. The two histories cannot be merged yet (README: Copies and backups)",
        hex(device)
    )
}

/// Checks that an op form names a table and columns this database syncs.
fn validate_form(form: &Form, tables: &[SyncedTable]) -> Result<()> {
    let table = find_table(tables, &form.table)?;
    let key: Vec<&str> = form.key.iter().map(String::as_str).collect();
    let expected: Vec<&str> = table.key_columns().collect();
    if key.len() != expected.len()
        || key
            .iter()
            .zip(&expected)
            .any(|(a, b)| !a.eq_ignore_ascii_case(b))
    {
        return Err(Error::new(format!(
            "its key columns {key:?} are not the PRIMARY KEY {expected:?} of table {:?}",
            table.name
        )));
    }
    for column in &form.cells {
        if table.column(column).is_none() {
            return Err(Error::new(format!(
                "names column {column:?}, which table {:?} does not have",
                table.name
            )));
        }
    }
    Ok(())
}

fn table_by_id(tables: &[SyncedTable], id: i64) -> Result<&SyncedTable> {
    tables
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(|| Error::new(format!("table {id} is no longer synced")))
}

fn find_table<'a>(tables: &'a [SyncedTable], name: &str) -> Result<&'a SyncedTable> {
    tables
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            let internal = ["_sync_", "sqlite_"].iter().any(|p| {
                name.get(..p.len())
                    .is_some_and(|start| start.eq_ignore_ascii_case(p))
            });
            let hint = match internal {
                true => "",
                false => {
                    " (create it and call sync_enable on it as on the device that wrote the \
                     bundle, then import again)"
                }
            };
            Error::new(format!(
                "names table {name:?}, which this database does not sync{hint}"
            ))
        })
}

/// Everything one import reads and writes, kept for its length.
struct Import<'a> {
    conn: Conn,
    tables: &'a [SyncedTable],
    /// The import's writes kept out of the log (quiet.rs)
    quiet: Quiet,
    foreign_keys: ForeignKeys,
    devices: Devices,
    contexts: Contexts,
    local: LocalOps,
    forms: Forms,
    /// `_sync_forms` id of each form of the bundle, by its number there
    bundle_forms: Vec<Option<i64>>,
    clock: Clock,
    lamport: u64,
    /// Per device, the seq and Lamport time of its last op applied in this import
    tips: HashMap<i64, (u64, u64)>,
    /// Per device, the runs of seqs stored pending before this import
    pending_before: HashMap<i64, Vec<(u64, u64)>>,
    /// Rows with more than one op, to settle at the end. (A row whose only op is the one
    /// applied is written at once: the common case of a new row.)
    touched: Touched,
    rows: RowIndex,
    /// Ops applied whose rows are not yet indexed and written (`write_applied`): their row
    /// index entries, and their form ids and values
    batch: Vec<Entry>,
    batch_ops: Vec<(i64, Vec<Value>)>,
    appender: Appender,
    writers: RowWriters,
    /// Statements kept by their text
    statements: Statements,
    /// The bundle's last op stored or found here: (device id, seq, history)
    stream_at: Option<(crate::op::DeviceId, u64, i64)>,
    /// The bundle's ops read so far, and the hashes its first reading marked, by ordinal (the
    /// next one last)
    ordinal: u64,
    marks: Vec<(u64, crate::op::Hash)>,
    /// Hashes of ops deps named, found here (histories.rs)
    dep_hashes: HashMap<(i64, u64), crate::op::Hash>,
    outcome: Outcome,
}

fn import(
    conn: &Conn,
    reader: &mut Reader,
    tables: &[SyncedTable],
    deferred_foreign_keys: bool,
    claims: &[(u64, crate::op::Hash)],
) -> Result<Outcome> {
    let mut run = Import::new(conn, tables)?;
    if run.own_history_differs(claims)? {
        run.quiet.finish()?; // capture as it was, for the fork
        drop(run);
        fork(conn)?;
        run = Import::new(conn, tables)?;
    }
    let before = run.clock.clone();
    run.fold_local_ops(before.get(&SELF).copied().unwrap_or(0))?;
    run.marks = std::mem::take(&mut reader.marks);
    run.marks.reverse();
    reader.each_op(|op, number, form| run.store(op, number, form))?;
    run.appender.flush()?;
    run.resolve_waiting()?;
    run.deliver()?;
    run.write_applied()?;
    run.record_context()?;
    run.settle_touched()?;
    run.record(reader)?;
    if deferred_foreign_keys {
        run.check_foreign_keys()?;
    }
    run.quiet.finish()?;
    Ok(run.outcome)
}

/// Indexes this device's ops written since the last import and settles the rows they share
/// with other devices' ops (their conflicts), as an import does first; for a fork, which then
/// moves them (identity.rs). The caller holds a savepoint.
pub fn fold_local(conn: &Conn) -> Result<()> {
    let tables = log::synced_tables(conn)?;
    let mut run = Import::new(conn, &tables)?;
    let last = run.clock.get(&SELF).copied().unwrap_or(0);
    run.fold_local_ops(last)?;
    run.settle_touched()?;
    run.quiet.finish()
}

impl<'a> Import<'a> {
    fn new(conn: &Conn, tables: &'a [SyncedTable]) -> Result<Import<'a>> {
        let pending_before = delivery::pending_runs(conn)?;
        let spans = pending_before
            .iter()
            .map(|(&device, runs)| (device, (runs[0].0, runs[runs.len() - 1].1)))
            .collect();
        Ok(Import {
            conn: *conn,
            tables,
            quiet: Quiet::new(conn, tables)?,
            foreign_keys: ForeignKeys::load(conn, tables)?,
            devices: Devices::load(conn)?,
            contexts: Contexts::load(conn)?,
            local: LocalOps::load(conn)?,
            forms: Forms::load(conn)?,
            bundle_forms: Vec::new(),
            clock: clock::applied(conn)?,
            lamport: crate::schema::state(conn, "lamport")?,
            tips: HashMap::new(),
            pending_before,
            touched: Touched::new(),
            rows: RowIndex::new(conn)?,
            batch: Vec::with_capacity(BATCH),
            batch_ops: Vec::with_capacity(BATCH),
            appender: Appender::new(conn, spans),
            writers: RowWriters::new(conn),
            statements: Statements::new(conn),
            stream_at: None,
            ordinal: 0,
            marks: Vec::new(),
            dep_hashes: HashMap::new(),
            outcome: Outcome::default(),
        })
    }
}

impl Import<'_> {
    /// Indexes local ops written since the last import (up to `last`) by row, and marks the
    /// rows that had ops before for settling (their live sets and conflicts may change).
    fn fold_local_ops(&mut self, last: u64) -> Result<()> {
        let folded = crate::schema::state(&self.conn, "folded")?;
        let conn = self.conn;
        let mut index = RowIndex::new(&conn)?;
        let touched = &mut self.touched;
        self.local.each(&conn, folded, last, |op| {
            let key = log::row_key(op.key.iter().map(|(_, v)| v));
            let entry = (op.table_id, key, SELF, op.seq);
            if index.add(&entry)? {
                touched.add(&entry);
            }
            Ok(())
        })?;
        crate::schema::set_state(&conn, "folded", last)
    }

    /// The cached statement for `sql`, with `params` bound.
    fn cached(&mut self, sql: &'static str, params: &[Value]) -> Result<&mut Stmt> {
        let stmt = self.statements.get(sql)?;
        stmt.bind_all(params)?;
        Ok(stmt)
    }

    /// Runs a cached statement to completion.
    fn run(&mut self, sql: &'static str, params: &[Value]) -> Result<()> {
        self.cached(sql, &[])?.execute(params)
    }

    /// The first row of a cached query.
    fn query_row(&mut self, sql: &'static str, params: &[Value]) -> Result<Option<Vec<Value>>> {
        let stmt = self.cached(sql, params)?;
        let result = match stmt.step() {
            Ok(true) => (0..stmt.column_count())
                .map(|i| stmt.column(i))
                .collect::<Result<_>>()
                .map(Some),
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        };
        stmt.reset();
        result
    }

    /// Stores one op of the bundle (pending), unless it is here already.
    fn store(&mut self, op: Packed, number: usize, form: &Form) -> Result<()> {
        let root = self.devices.idx_or_add(&self.conn, &op.device)?;
        if root == SELF {
            if let Prev::Stated(prev) = op.prev {
                self.check_prev(SELF, &op, &prev)?;
            }
            self.mark(Some((SELF, op.seq)))?;
            return self.own_duplicate(&op, form);
        }
        let device = match self.place(root, &op, form)? {
            Placed::At(device) => device,
            Placed::Duplicate(device) => {
                self.stream_at = Some((op.device, op.seq, device));
                self.outcome.duplicates += 1;
                return self.mark(Some((device, op.seq)));
            }
            Placed::Unplaced => {
                // the op before it is not held here: the sender sends it again once this
                // device's clock tells it what is held here
                self.stream_at = None;
                self.outcome.discarded += 1;
                return self.mark(None);
            }
        };
        self.stream_at = Some((op.device, op.seq, device));
        self.mark(Some((device, op.seq)))?;
        let form_id = self.form_id(number, form)?;
        let mut vals = Vec::with_capacity(64);
        Form::pack(&op.values, &mut vals)?;
        let mut deps = Vec::with_capacity(op.deps.len());
        for dep in &op.deps {
            let root = self.devices.idx_or_add(&self.conn, &dep.0)?;
            deps.push((self.resolve_dep(root, dep.1, &dep.2)?, dep.1, dep.2));
        }
        let plain: Vec<(i64, u64)> = deps.iter().map(|&(d, s, _)| (d, s)).collect();
        // in the usual case the op is next in line: apply it now, without reading it back
        let now = self.applied_seq(device) + 1 == op.seq
            && self.deliverable_after(device, op.seq, &plain);
        if !(self.appender).store(device, op.seq, op.lamport, now, form_id, vals)? {
            self.outcome.duplicates += 1; // here already, pending (and the same: `place`)
            return Ok(());
        }
        for (dep, dep_seq, hash) in &deps {
            self.contexts
                .add(&self.conn, device, op.seq, *dep, *dep_seq, hash)?;
        }
        if now {
            if let Some(fault) = self.clock_fault(device, op.seq, op.lamport, &plain)? {
                return Err(Error::new(fault));
            }
            self.applied(device, op.seq, op.lamport, form_id, op.values)?;
        }
        Ok(())
    }

    /// Where a run of a device's ops starts in the bundle: when op seq - 1 is here, the op's
    /// prev must be its hash, or the bundle holds another history of the device's id.
    fn check_prev(&mut self, device: i64, op: &Packed, prev: &crate::op::Hash) -> Result<()> {
        let below = op.seq - 1;
        let held = match device {
            SELF => self.local_last()?,
            _ => self.clock.get(&device).copied().unwrap_or(0),
        };
        if below > held {
            return Ok(()); // not here yet (it waits, pending, for the ops below it)
        }
        self.appender.flush()?;
        if self.history().hash_at(device, below)?.as_ref() != Some(prev) {
            return Err(Error::new(two_histories("its op", op.seq, &op.device)));
        }
        Ok(())
    }

    /// The last op this device wrote.
    fn local_last(&self) -> Result<u64> {
        Ok(log::last_local_seq(&self.conn)? as u64)
    }

    /// What rebuilds the ops held here, to hash them (chain.rs).
    fn history(&self) -> History<'_> {
        History {
            conn: self.conn,
            devices: &self.devices,
            contexts: &self.contexts,
            local: &self.local,
            forms: &self.forms,
            keep: true,
        }
    }

    /// The `_sync_forms` id of form `number` of the bundle.
    fn form_id(&mut self, number: usize, form: &Form) -> Result<i64> {
        if let Some(Some(id)) = self.bundle_forms.get(number) {
            return Ok(*id);
        }
        let id = self.forms.id_of(&self.conn, form)?;
        if self.bundle_forms.len() <= number {
            self.bundle_forms.resize(number + 1, None);
        }
        self.bundle_forms[number] = Some(id);
        Ok(id)
    }

    /// Counts one of this device's own ops coming back, after checking it is the op this
    /// device wrote (a fork before the import made sure this device wrote every seq it gets).
    fn own_duplicate(&mut self, op: &Packed, form: &Form) -> Result<()> {
        let mine = self.local.get(&self.conn, op.seq)?;
        let lamport = self.local.lamport(op.seq);
        let mine = crate::op::Op {
            device: op.device,
            seq: op.seq,
            lamport,
            deps: Vec::new(),
            table: mine.table,
            kind: mine.kind,
            key: mine.key,
            cells: mine.cells,
        };
        let my_form = Form::of(&mine);
        let deps = remote::deps_of(&self.contexts, &self.devices, SELF, op.seq);
        let same = same_op(op, form, &my_form, lamport, &my_form.values_of(mine), &deps);
        self.count_duplicate(op, same)
    }

    /// Counts an op already here when it is the same op (`same`); refuses it otherwise.
    fn count_duplicate(&mut self, op: &Packed, same: bool) -> Result<()> {
        if !same {
            return Err(Error::new(two_histories("its op", op.seq, &op.device)));
        }
        self.outcome.duplicates += 1;
        Ok(())
    }

    /// Notes op `seq` of `device` (of form `form_id`, with `values`) as applied; its row is
    /// indexed and written (or marked for settling) by `write_applied`, a batch at a time.
    fn applied(
        &mut self,
        device: i64,
        seq: u64,
        lamport: u64,
        form_id: i64,
        values: Vec<Value>,
    ) -> Result<()> {
        let form = self.forms.get(form_id)?;
        let table = find_table(self.tables, &form.table)?;
        let key = log::row_key(values[..form.key.len()].iter());
        self.batch.push((table.id, key, device, seq));
        self.batch_ops.push((form_id, values));
        self.clock.insert(device, seq);
        self.tips.insert(device, (seq, lamport));
        self.lamport = self.lamport.max(lamport);
        self.outcome.applied += 1;
        if self.batch.len() == BATCH {
            self.write_applied()?;
        }
        Ok(())
    }

    /// Indexes the rows of the ops applied since the last call, writes each row whose only op
    /// is one of them, and marks the others for settling.
    fn write_applied(&mut self) -> Result<()> {
        let entries = std::mem::take(&mut self.batch);
        let ops = std::mem::take(&mut self.batch_ops);
        let seen_before = self.rows.add_many(&entries)?;
        let mut new_rows: Vec<(i64, &[Value], &Entry)> = Vec::with_capacity(entries.len());
        for ((entry, (form_id, values)), seen) in entries.iter().zip(&ops).zip(seen_before) {
            if seen {
                self.touched.add(entry);
            } else {
                new_rows.push((*form_id, values, entry));
            }
        }
        // runs of one form go to the table together; a row that breaks a constraint of this
        // database on its own is settled at the end instead, from all its ops and after the
        // other rows (a later op of the bundle may mend it, or the row it refers to may come)
        for run in new_rows.chunk_by(|a, b| a.0 == b.0) {
            let form_id = run[0].0;
            let form = self.forms.get(form_id)?;
            let table = find_table(self.tables, &form.table)?;
            let rows: Vec<&[Value]> = run.iter().map(|(_, v, _)| *v).collect();
            match self.writers.write_many(table, form_id, form, &rows) {
                Err(_) if self.conn.failed_on_constraint() => {
                    for (_, values, entry) in run {
                        match self.writers.write_single(table, form_id, form, values) {
                            Err(_) if self.conn.failed_on_constraint() => {
                                self.touched.add(entry);
                            }
                            other => other?,
                        }
                    }
                }
                other => other?,
            }
        }
        if self.quiet.app_triggers_fire() {
            self.put_back_new_rows(&new_rows)?;
        }
        Ok(())
    }

    /// After the app's triggers fired for new rows: a row one of them changed on the way is put
    /// back to what its op says (see `write_row`). Rows left for settling are settled later.
    fn put_back_new_rows(&mut self, rows: &[(i64, &[Value], &Entry)]) -> Result<()> {
        for &(form_id, values, entry) in rows {
            if self.touched.contains(entry) {
                continue;
            }
            let form = self.forms.get(form_id)?;
            let table = find_table(self.tables, &form.table)?;
            let spell = |pairs: &mut dyn Iterator<Item = (&String, &Value)>| -> Cells {
                table.spell(pairs.map(|(c, v)| (c.clone(), v.clone())).collect())
            };
            let key = spell(&mut form.key_cells(values));
            let state = match form.kind {
                DELETE => RowState::Absent,
                _ => RowState::Present(spell(&mut form.cells(values))),
            };
            self.put_back(table, &key, &state)?;
        }
        Ok(())
    }

    /// Writes `state` again, with triggers off, when an app trigger changed the row on the way.
    fn put_back(&mut self, table: &SyncedTable, key: &Cells, state: &RowState) -> Result<()> {
        if !self.writers.holds(table, key, state)? {
            let writers = &mut self.writers;
            self.quiet
                .untriggered(|| writers.write(table, key, state))?;
        }
        Ok(())
    }

    /// Settles every touched row, a table's rows after those of the tables that refer to it;
    /// then the rows a foreign-key action of this device changed on the way, if others wrote
    /// them too.
    fn settle_touched(&mut self) -> Result<()> {
        let rank = self.foreign_keys.rank(self.tables);
        while !self.touched.is_empty() {
            let mut rows = self.touched.take();
            rows.sort_by_key(|((table_id, _), _)| rank.get(table_id).copied().unwrap_or(0));
            for ((table_id, key), new) in rows {
                self.settle_row(table_id, &key, new.as_deref())?;
            }
        }
        Ok(())
    }

    /// Settles one row after the ops `new` (or from every op on it: None): its live set, its
    /// user row and its conflict records.
    fn settle_row(&mut self, table_id: i64, key: &[u8], new: Option<&[OpAt]>) -> Result<()> {
        let tables = self.tables;
        let table = table_by_id(tables, table_id)?;
        let conn = self.conn;
        let (row, state) = {
            let order = Order {
                devices: &self.devices,
                contexts: &self.contexts,
            };
            let reader = RowReader {
                devices: &self.devices,
                local: &self.local,
                forms: &self.forms,
            };
            let statements = &mut self.statements;
            let row = RowLive::settle(&conn, statements, &reader, &order, table, key, new)?;
            if row.only_local {
                // this device's own writes, which its table shows: no side of another device
                return row.save(statements, table_id, key);
            }
            let state = row.state(&conn, &reader, &order, table, key)?;
            (row, state)
        };
        let lost = merge::losses(&row.ops, &row.live, &row.universe);
        if (self.foreign_keys).act(&conn, &self.quiet, table, &row.key, &state)? {
            self.fold_local_ops(log::last_local_seq(&conn)? as u64)?;
        }
        if let Err(e) = self.write_row(table, &row.key, &state) {
            return Err(match conn.failed_on_constraint() {
                true => Error::new(format!("{e} ({})", self.culprit(table, &row.key, &row.ops))),
                false => e,
            });
        }
        let order = Order {
            devices: &self.devices,
            contexts: &self.contexts,
        };
        let statements = &mut self.statements;
        self.outcome.conflicts +=
            conflicts::store(statements, &order, table, key, &row, &state, &lost)?;
        row.save(statements, table_id, key)
    }

    /// Makes a user row hold `state`. When the app's triggers fire, a row that holds it already
    /// is not written (its triggers see no change), and one that an app trigger changed on the
    /// way is put back with triggers off: a synced table shows exactly what its ops say.
    fn write_row(&mut self, table: &SyncedTable, key: &Cells, state: &RowState) -> Result<()> {
        if !self.quiet.app_triggers_fire() {
            return self.writers.write(table, key, state);
        }
        if !self.writers.write_as_app(table, key, state)? {
            return Ok(());
        }
        self.put_back(table, key, state)
    }

    /// Names a row and the op that decides its state, for an error about the row.
    fn culprit(&self, table: &SyncedTable, key_values: &Cells, ops: &[RowOp]) -> String {
        let last = ops.iter().max_by_key(|op| op.order_key());
        let op = last.map_or(String::new(), |op| {
            format!(
                ", last written by op {} of device {}",
                op.seq,
                hex(&op.device)
            )
        });
        format!(
            "row {} of table {:?}{op}",
            JsonObject::of(key_values),
            table.name
        )
    }

    /// Before an import that deferred its foreign keys commits: when a row still refers to a
    /// row that is not there, the error names it (SQLite's own only says that one does).
    fn check_foreign_keys(&mut self) -> Result<()> {
        if !self.conn.deferred_foreign_keys_broken() {
            return Ok(());
        }
        let conn = self.conn;
        let tables = self.tables;
        for table in tables {
            let found = conn.query_value(
                "SELECT rowid FROM pragma_foreign_key_check(?1, 'main') WHERE rowid IS NOT NULL
                 LIMIT 1",
                &[Value::Text(table.name.clone())],
            )?;
            let Some(rowid) = found else { continue };
            let names: Vec<String> = table.key_columns().map(crate::sql::quote_ident).collect();
            let mut stmt = conn.prepare(&format!(
                "SELECT {} FROM main.{} WHERE rowid = ?1",
                names.join(", "),
                crate::sql::quote_ident(&table.name)
            ))?;
            stmt.bind(1, &rowid)?;
            if !stmt.step()? {
                continue;
            }
            let key: Vec<Value> = (0..names.len())
                .map(|i| stmt.column(i))
                .collect::<Result<_>>()?;
            drop(stmt);
            let (ops, key_values) = self.row_ops(table, &log::row_key(key.iter()))?;
            return Err(Error::new(format!(
                "FOREIGN KEY constraint failed: {} refers to a row that is not there on this \
                 device; the bundle imports once the row it refers to arrives or this row \
                 changes on its device",
                self.culprit(table, &key_values, &ops)
            )));
        }
        Err(Error::new(
            "FOREIGN KEY constraint failed (a row of a table without rowid refers to a row \
             that is not there)",
        ))
    }

    /// Every applied op on a row, with names as the table spells them, and the row's key.
    fn row_ops(&mut self, table: &SyncedTable, key: &[u8]) -> Result<(Vec<RowOp>, Cells)> {
        let reader = RowReader {
            devices: &self.devices,
            local: &self.local,
            forms: &self.forms,
        };
        reader.ops(&self.conn, table, key)
    }

    /// Stores the new clock, this device's next context and Lamport epoch, before rows are
    /// settled: a write the import makes as this device's own (a foreign-key action) follows
    /// every op it applied.
    fn record_context(&mut self) -> Result<()> {
        let conn = self.conn;
        clock::store_applied(&conn, &self.clock)?;
        let last_local = self.clock.get(&SELF).copied().unwrap_or(0);
        self.appender.flush()?;
        // an entry this device's next op has not seen yet (the ops of a history that forked
        // from another are not new to it when it had seen them under that other history)
        let next = last_local + 1;
        let changed: Vec<(i64, u64)> = (self.clock.iter())
            .filter(|&(&d, _)| d != SELF && !self.devices.implied(&self.clock, d))
            .filter(|&(&d, &seq)| seq > self.contexts.entry(SELF, next, d))
            .map(|(&d, &seq)| (d, seq))
            .collect();
        for (device, seq) in changed {
            let hash = (self.history().hash_at(device, seq)?)
                .ok_or_else(|| Error::new("an applied clock entry names no op"))?;
            chain::remember(&conn, device, seq, &hash)?;
            self.contexts
                .add(&conn, SELF, last_local + 1, device, seq, &hash)?;
        }
        let lamport = self.lamport.max(self.local.lamport(last_local));
        crate::schema::set_state(&conn, "lamport", self.lamport)?;
        conn.exec(
            "INSERT INTO main._sync_epochs(local_seq, lamport) VALUES (?1, ?2)
             ON CONFLICT(local_seq) DO UPDATE SET lamport = max(lamport, excluded.lamport)",
            &[
                Value::Integer(last_local as i64),
                Value::Integer(lamport as i64),
            ],
        )?;
        self.local.note_epoch(last_local, lamport);
        Ok(())
    }

    /// Whether any of `claims` about ops of this device's id, (seq, hash), names an op this
    /// device did not write: one beyond its log, or another under one of its seqs. The claims
    /// found true are kept as checkpoints of its hash chain (the next export to that peer
    /// starts there).
    fn own_history_differs(&mut self, claims: &[(u64, crate::op::Hash)]) -> Result<bool> {
        if claims.is_empty() {
            return Ok(false);
        }
        let last = self.local_last()?;
        if claims.iter().any(|&(seq, _)| seq > last) {
            return Ok(true);
        }
        let mut seen = std::collections::HashSet::new();
        for &(seq, hash) in claims {
            if !seen.insert((seq, hash)) {
                continue;
            }
            if self.history().hash_at(SELF, seq)? != Some(hash) {
                return Ok(true);
            }
            chain::remember(&self.conn, SELF, seq, &hash)?;
        }
        Ok(false)
    }

    /// Counts one op of the bundle as read; records its hash as a checkpoint (chain.rs) if the
    /// bundle's first reading marked it, now that it is held in history `device`.
    fn mark(&mut self, device: Option<(i64, u64)>) -> Result<()> {
        self.ordinal += 1;
        while self.marks.last().is_some_and(|m| m.0 < self.ordinal) {
            self.marks.pop();
        }
        if let (Some((device, seq)), Some(&(n, hash))) = (device, self.marks.last()) {
            if n == self.ordinal {
                chain::remember(&self.conn, device, seq, &hash)?;
            }
        }
        Ok(())
    }

    /// Stores what the source is known to have, and the bundle's id.
    fn record(&mut self, reader: &Reader) -> Result<()> {
        let conn = self.conn;
        let manifest = reader.manifest.clone();
        let source = self.devices.idx_or_add(&conn, &manifest.source)?;
        // what the source has, per history held here: an entry whose op is not held here
        // names a history the source will send once it knows this device lacks it
        let mut known: HashMap<i64, (u64, Option<crate::op::Hash>)> = HashMap::new();
        for (id, seq, hash) in &manifest.clock {
            let root = self.devices.idx_or_add(&conn, id)?;
            let Some(mut idx) = self.resolve_entry(root, *seq, hash)? else {
                continue;
            };
            let mut entry = (*seq, Some(*hash));
            if *seq <= self.applied_seq(idx) {
                chain::remember(&conn, idx, *seq, hash)?;
            }
            loop {
                let slot = known.entry(idx).or_insert(entry);
                if slot.0 < entry.0 {
                    *slot = entry;
                }
                // it has the ops of the history this one forked from, up to the fork
                let Some((parent, base)) = self.devices.fork(idx) else {
                    break;
                };
                entry = (base, self.history().hash_at(parent, base)?);
                idx = parent;
            }
        }
        if source != SELF {
            let known: Vec<(i64, u64, Option<crate::op::Hash>)> =
                known.into_iter().map(|(d, (s, h))| (d, s, h)).collect();
            clock::learn_peer(&conn, source, &known)?;
        }
        conn.exec(
            "INSERT INTO main._sync_bundles(id, source) VALUES (?1, ?2)",
            &[
                Value::Blob(manifest.bundle_id.to_vec()),
                Value::Integer(source),
            ],
        )
    }
}
