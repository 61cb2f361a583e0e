//! The store of ops received from other devices: each op as its form and its values.
//!
//! Invariant: a received op is kept as (device, seq, Lamport time, form, values) in
//! `_sync_remote`, its deps as change points in `_sync_deps` (clock.rs) and its form once in
//! `_sync_forms`; from these it is rebuilt with the same canonical encoding, hence the same hash,
//! as the op that arrived, so it can be relayed to other devices unchanged.

use crate::hashed::HashMap;

use crate::db::{Conn, Error, Result, Stmt};
use crate::form::Form;
use crate::log::clock::{Contexts, Devices};
use crate::op::{Dep, DeviceId, Op};
use crate::schema::DeviceIdx;
use crate::sql::value_rows;
use crate::sql::BATCH;
use crate::value::Value;

/// The forms of received ops, by id and by content.
#[derive(Default)]
pub struct Forms {
    by_id: HashMap<i64, Form>,
    ids: HashMap<Form, i64>,
}

impl Forms {
    pub fn load(conn: &Conn) -> Result<Forms> {
        let mut forms = Forms::default();
        let mut stmt = conn.prepare("SELECT id, form FROM main._sync_forms")?;
        while let Some(row) = stmt.step()? {
            let id = row.column_int(0);
            let form = Form::decode(row.column(1)?.as_blob().unwrap_or_default())?;
            forms.ids.insert(form.clone(), id);
            forms.by_id.insert(id, form);
        }
        Ok(forms)
    }

    /// The id of `form`, storing it when it is new.
    pub fn id_of(&mut self, conn: &Conn, form: &Form) -> Result<i64> {
        if let Some(&id) = self.ids.get(form) {
            return Ok(id);
        }
        let id = conn.insert(
            "INSERT INTO main._sync_forms(form) VALUES (?1)",
            &[Value::Blob(form.encode())],
        )?;
        self.ids.insert(form.clone(), id);
        self.by_id.insert(id, form.clone());
        Ok(id)
    }

    /// The ids of the forms of `table` that write one of `columns` (names compare without
    /// case, as in SQL).
    pub fn writing(&self, table: &str, columns: &[String]) -> Vec<i64> {
        let named = |c: &String| columns.iter().any(|w| w.eq_ignore_ascii_case(c));
        let mut ids: Vec<i64> = (self.by_id.iter())
            .filter(|(_, f)| f.table.eq_ignore_ascii_case(table) && f.cells.iter().any(named))
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    pub fn get(&self, id: i64) -> Result<&Form> {
        self.by_id
            .get(&id)
            .ok_or_else(|| Error::new(format!("a received op names unknown form {id}")))
    }

    /// The form and values of a stored op.
    pub fn values(&self, stored: &Stored) -> Result<(&Form, Vec<Value>)> {
        let form = self.get(stored.form)?;
        let mut vals = stored.vals;
        let values = form.unpack(&mut vals)?;
        if !vals.is_empty() {
            return Err(Error::new(
                "damaged received op in _sync_remote: trailing bytes",
            ));
        }
        Ok((form, values))
    }

    /// Rebuilds a received op from its stored row; its `deps` stay empty unless `with_deps` is
    /// given.
    pub fn op(
        &self,
        device: (DeviceIdx, DeviceId),
        seq: u64,
        stored: &Stored,
        with_deps: Option<(&Contexts, &Devices)>,
    ) -> Result<Op> {
        let deps = with_deps.map_or_else(Vec::new, |(contexts, devices)| {
            deps_of(contexts, devices, device.0, seq)
        });
        self.get(stored.form)?
            .op(device.1, seq, stored.lamport, deps, stored.vals)
            .map_err(|e| Error::new(format!("received op: {e}")))
    }
}

/// A received op as its `_sync_remote` row holds it, read from the columns `columns` names:
/// the one reading of that row's layout.
pub struct Stored<'a> {
    pub lamport: u64,
    pub form: i64,
    pub vals: &'a [u8],
}

impl<'a> Stored<'a> {
    pub fn from_row(row: &'a [Value]) -> Result<Stored<'a>> {
        match row {
            [Value::Integer(lamport), Value::Integer(form), Value::Blob(vals), ..] => Ok(Stored {
                lamport: *lamport as u64,
                form: *form,
                vals,
            }),
            _ => Err(Error::new("damaged received op in _sync_remote")),
        }
    }
}

/// The deps op `seq` of `device` carried, in canonical order (by device id), each once: two
/// histories of a device held here may hold one op (the same seq and hash), named once.
pub fn deps_of(contexts: &Contexts, devices: &Devices, device: DeviceIdx, seq: u64) -> Vec<Dep> {
    if let Some(deps) = contexts.twins(device, seq) {
        return deps;
    }
    let mut deps: Vec<Dep> = contexts
        .delta(device, seq)
        .into_iter()
        .map(|(d, s, h)| Dep(devices.wire_id(d), s, h))
        .collect();
    deps.sort();
    deps.dedup();
    deps
}

/// The columns `Forms::op` reads, for a query over `_sync_remote` aliased `alias`.
pub fn columns(alias: &str) -> String {
    format!("{alias}.lamport, {alias}.form, {alias}.vals")
}

/// Rows queued before one multi-row INSERT.
const INTO_REMOTE: &str =
    "INTO main._sync_remote(device, seq, lamport, applied, form, vals) VALUES ";
const COLUMNS: usize = 6;

/// Appends new received ops to `_sync_remote`, `BATCH` rows per statement. Knows which seqs of
/// each device are stored pending, so that only an op that may be here already costs a lookup.
pub struct Appender<'c> {
    conn: &'c Conn,
    full: Option<Stmt<'c>>,
    rows: Vec<Value>,
    /// per device, the lowest and highest seq stored pending
    pending: HashMap<DeviceIdx, (u64, u64)>,
}

impl<'c> Appender<'c> {
    /// `pending`: per device, the lowest and highest seq stored pending so far.
    pub fn new(conn: &'c Conn, pending: HashMap<DeviceIdx, (u64, u64)>) -> Appender<'c> {
        Appender {
            conn,
            full: None,
            rows: Vec::with_capacity(BATCH * COLUMNS),
            pending,
        }
    }

    /// Whether op (`device`, `seq`) may be stored already, as a pending op.
    pub fn may_hold(&self, device: DeviceIdx, seq: u64) -> bool {
        self.pending
            .get(&device)
            .is_some_and(|&(lo, hi)| lo <= seq && seq <= hi)
    }

    /// Notes that `to` may hold pending ops where `from` may (ops moved between histories).
    pub fn copy_pending(&mut self, from: DeviceIdx, to: DeviceIdx) {
        if let Some(&range) = self.pending.get(&from) {
            self.pending.insert(to, range);
        }
    }

    /// Stores op (`device`, `seq`) unless it is stored already (as a pending op); false when it
    /// was. An op that cannot be here yet is queued; one that may be is looked for first.
    pub fn store(
        &mut self,
        device: DeviceIdx,
        seq: u64,
        lamport: u64,
        applied: bool,
        form: i64,
        vals: Vec<u8>,
    ) -> Result<bool> {
        let row = [
            Value::from(device),
            Value::Integer(seq as i64),
            Value::Integer(lamport as i64),
            Value::Integer(applied as i64),
            Value::Integer(form),
            Value::Blob(vals),
        ];
        if self.may_hold(device, seq) {
            self.flush()?;
            self.conn.exec(
                &format!("INSERT OR IGNORE {INTO_REMOTE}{}", value_rows(1, COLUMNS)),
                &row,
            )?;
            if self.conn.changes() == 0 {
                return Ok(false);
            }
        } else {
            self.rows.extend(row);
            if self.rows.len() == BATCH * COLUMNS {
                self.flush()?;
            }
        }
        if !applied {
            let range = self.pending.entry(device).or_insert((seq, seq));
            *range = (range.0.min(seq), range.1.max(seq));
        }
        Ok(true)
    }

    /// Inserts every queued op.
    pub fn flush(&mut self) -> Result<()> {
        let n = self.rows.len() / COLUMNS;
        if n == 0 {
            return Ok(());
        }
        let insert = |rows: usize| {
            self.conn.prepare(&format!(
                "INSERT {INTO_REMOTE}{}",
                value_rows(rows, COLUMNS)
            ))
        };
        let result = if n == BATCH {
            if self.full.is_none() {
                self.full = Some(insert(BATCH)?);
            }
            self.full
                .as_mut()
                .expect("just prepared")
                .execute_borrowed(&self.rows)
        } else {
            insert(n)?.execute_borrowed(&self.rows)
        };
        self.rows.clear();
        result
    }
}

/// Per device, the runs of consecutive seqs stored pending.
pub fn pending_runs(conn: &Conn) -> Result<HashMap<DeviceIdx, Vec<(u64, u64)>>> {
    let mut runs: HashMap<DeviceIdx, Vec<(u64, u64)>> = HashMap::default();
    let mut stmt = conn.prepare(
        "SELECT device, seq FROM main._sync_remote WHERE applied = 0 ORDER BY device, seq",
    )?;
    while let Some(row) = stmt.step()? {
        let device = DeviceIdx(row.column_int(0));
        let seq = row.column_int(1) as u64;
        let list = runs.entry(device).or_default();
        match list.last_mut() {
            Some(run) if run.1 + 1 == seq => run.1 = seq,
            _ => list.push((seq, seq)),
        }
    }
    Ok(runs)
}
