//! The row index: which ops touched which row, so that a row can be settled from all its ops.
//!
//! Invariant: every applied or folded op is indexed on its row exactly once: the first op
//! indexed on a row in `_sync_rows`, every later one in `_sync_row_ops` (schema.rs), so a new row
//! costs one write, and whether a row had ops before is known from that write.

use std::collections::HashMap;

use crate::db::{Conn, Error, Result, Statements, Stmt};
use crate::log::clock::{Devices, Order};
use crate::log::remote::{Forms, Stored};
use crate::log::{LocalOps, SyncedTable};
use crate::merge::RowOp;
use crate::op::{DeviceId, OpKind};
use crate::schema::{DeviceIdx, SELF};
use crate::sql::BATCH;
use crate::value::{Cells, Value};

/// Every op indexed on row (?1, ?2), as (device, seq).
pub const ROW_HISTORY: &str =
    "SELECT device, seq FROM main._sync_rows WHERE table_id = ?1 AND key = ?2
     UNION ALL
     SELECT device, seq FROM main._sync_row_ops WHERE table_id = ?1 AND key = ?2";

/// One op to index: (table id, row key, device, seq).
pub type Entry = (i64, Vec<u8>, DeviceIdx, u64);

pub struct RowIndex<'c> {
    conn: &'c Conn,
    first: Stmt<'c>,
    first_many: Option<Stmt<'c>>,
    first_of: Stmt<'c>,
    later: Stmt<'c>,
}

const INSERT_FIRST: &str = "INSERT INTO main._sync_rows(table_id, key, device, seq) VALUES ";

impl<'c> RowIndex<'c> {
    pub fn new(conn: &'c Conn) -> Result<RowIndex<'c>> {
        Ok(RowIndex {
            conn,
            first: conn.prepare(&format!(
                "{INSERT_FIRST}(?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING"
            ))?,
            first_many: None,
            first_of: conn.prepare(
                "SELECT device, seq FROM main._sync_rows WHERE table_id = ?1 AND key = ?2",
            )?,
            later: conn.prepare(
                "INSERT OR IGNORE INTO main._sync_row_ops(table_id, key, device, seq)
                 VALUES (?1, ?2, ?3, ?4)",
            )?,
        })
    }

    fn params(entry: &Entry) -> [Value; 4] {
        let (table_id, key, device, seq) = entry;
        [
            Value::Integer(*table_id),
            Value::Blob(key.clone()),
            Value::from(*device),
            Value::Integer(*seq as i64),
        ]
    }

    /// Notes that op (`device`, `seq`) touched a row; true when the row had ops before.
    pub fn add(&mut self, entry: &Entry) -> Result<bool> {
        let params = Self::params(entry);
        self.first.execute(&params)?;
        if self.conn.changes() == 1 {
            return Ok(false);
        }
        self.later.execute(&params)?;
        Ok(true)
    }

    /// `add` for `BATCH` entries at once (one statement when every row is new).
    pub fn add_many(&mut self, entries: &[Entry]) -> Result<Vec<bool>> {
        if entries.len() != BATCH {
            return entries.iter().map(|e| self.add(e)).collect();
        }
        if self.first_many.is_none() {
            let rows = crate::sql::value_rows(BATCH, 4);
            let sql = format!("{INSERT_FIRST}{rows} ON CONFLICT DO NOTHING");
            self.first_many = Some(self.conn.prepare(&sql)?);
        }
        let params: Vec<Value> = entries.iter().flat_map(Self::params).collect();
        self.first_many
            .as_mut()
            .expect("just prepared")
            .execute_borrowed(&params)?;
        if self.conn.changes() == BATCH as i64 {
            return Ok(vec![false; BATCH]);
        }
        // some rows had ops before: an entry is a row's first exactly when the row names it
        let mut seen_before = Vec::with_capacity(BATCH);
        for entry in entries {
            let params = Self::params(entry);
            self.first_of.bind_all(&params[..2])?;
            let first = (self.first_of.step())
                .map(|row| row.map(|row| (row.column_int(0), row.column_int(1))));
            self.first_of.reset();
            let expected = (
                params[2].as_i64().unwrap_or(0),
                params[3].as_i64().unwrap_or(0),
            );
            let is_first = first? == Some(expected);
            if !is_first {
                self.later.execute(&params)?;
            }
            seen_before.push(!is_first);
        }
        Ok(seen_before)
    }
}

/// Reads the ops on one row back, from the row index, the log and the store of received ops.
pub struct RowReader<'a> {
    pub devices: &'a Devices,
    pub local: &'a LocalOps,
    pub forms: &'a Forms,
    /// Received ops an import applied and still holds in memory, read from here instead of
    /// from `_sync_remote` (`Recent`).
    pub recent: Option<&'a Recent>,
}

/// Received ops applied by the running import, by (device, seq): Lamport time, form id and
/// values, as `_sync_remote` holds them. An import keeps those of touched rows while there are
/// fewer than `Recent::LIMIT`, and forgets them all when ops are renamed (a split of histories).
#[derive(Default)]
pub struct Recent(HashMap<(DeviceIdx, u64), (u64, i64, Vec<Value>)>);

impl Recent {
    /// Enough for the everyday sync; a bundle of more touched rows reads the rest back.
    pub const LIMIT: usize = 100_000;

    pub fn keep(&mut self, at: (DeviceIdx, u64), lamport: u64, form_id: i64, values: Vec<Value>) {
        if self.0.len() < Self::LIMIT {
            self.0.insert(at, (lamport, form_id, values));
        }
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

impl RowReader<'_> {
    /// Every op indexed on a row, with names as the table spells them, and the row's key.
    pub fn ops(&self, conn: &Conn, table: &SyncedTable, key: &[u8]) -> Result<(Vec<RowOp>, Cells)> {
        let mut stmt = conn.prepare(&format!(
            "SELECT r.device, r.seq, o.lamport, o.form, o.vals FROM ({ROW_HISTORY}) r
             LEFT JOIN main._sync_remote o ON o.device = r.device AND o.seq = r.seq"
        ))?;
        stmt.bind_all(&[Value::Integer(table.id), Value::Blob(key.to_vec())])?;
        let mut ops = Vec::new();
        let mut key_values = Vec::new();
        while let Some(r) = stmt.step()? {
            let (device, seq) = (DeviceIdx(r.column_int(0)), r.column_int(1) as u64);
            let row = [r.column(2)?, r.column(3)?, r.column(4)?];
            let (op, op_key) = self.decode(Some(conn), table, device, seq, &row)?;
            if key_values.is_empty() {
                key_values = op_key;
            }
            ops.push(op);
        }
        Ok((ops, key_values))
    }

    /// One op (`device`, `seq`), applied or folded, and the key of its row.
    pub fn op(
        &self,
        statements: &mut Statements,
        table: &SyncedTable,
        device: DeviceIdx,
        seq: u64,
    ) -> Result<(RowOp, Cells)> {
        let at = [Value::from(device), Value::Integer(seq as i64)];
        if device == SELF {
            let op = self.local.get_with(statements, seq)?;
            return Ok(self.local_row_op(table, op, seq));
        }
        if let Some((lamport, form_id, values)) = self.recent.and_then(|r| r.0.get(&(device, seq)))
        {
            let form = self.forms.get(*form_id)?;
            let op = form.op_of(self.devices.id(device), seq, *lamport, Vec::new(), values);
            let head = (op.device, seq, op.lamport, op.kind);
            return Ok(row_op(table, head, op.key, op.cells));
        }
        let stmt = statements.get(
            "SELECT lamport, form, vals FROM main._sync_remote WHERE device = ?1 AND seq = ?2",
        )?;
        stmt.bind_all(&at)?;
        let Some(r) = stmt.step()? else {
            return Err(Error::new(format!(
                "op {seq} of device {device} is missing"
            )));
        };
        let row = [r.column(0)?, r.column(1)?, r.column(2)?];
        stmt.reset();
        self.decode(None, table, device, seq, &row)
    }

    fn local_row_op(
        &self,
        table: &SyncedTable,
        op: crate::log::LocalOp,
        seq: u64,
    ) -> (RowOp, Cells) {
        let head = (self.devices.me(), seq, self.local.lamport(seq), op.kind);
        row_op(table, head, op.key, op.cells)
    }

    /// An op from the log (a local one, read with `conn`) or from its `_sync_remote` row
    /// (lamport, form, vals).
    fn decode(
        &self,
        conn: Option<&Conn>,
        table: &SyncedTable,
        device: DeviceIdx,
        seq: u64,
        row: &[Value; 3],
    ) -> Result<(RowOp, Cells)> {
        if device == SELF {
            let conn = conn.ok_or_else(|| Error::new("local op read without a connection"))?;
            let op = self.local.get(conn, seq)?;
            return Ok(self.local_row_op(table, op, seq));
        }
        let stored = Stored::from_row(row)?;
        let op = (self.forms).op((device, self.devices.id(device)), seq, &stored, None)?;
        let head = (op.device, seq, op.lamport, op.kind);
        Ok(row_op(table, head, op.key, op.cells))
    }
}

/// An op as the merge rule takes it (`head`: device, seq, Lamport time, kind), with its key,
/// names as `table` spells them.
fn row_op(
    table: &SyncedTable,
    head: (DeviceId, u64, u64, OpKind),
    key: Cells,
    cells: Cells,
) -> (RowOp, Cells) {
    let (device, seq, lamport, kind) = head;
    let cells = match kind {
        OpKind::Delete => Vec::new(),
        _ => table.spell(cells),
    };
    let op = RowOp {
        device,
        seq,
        lamport,
        kind,
        cells,
    };
    (op, table.spell(key))
}

/// The merge rule's causal order between a row's ops is the clocks' (log/clock.rs).
impl super::Causality for Order<'_> {
    fn follows(&self, later: &RowOp, earlier: &RowOp) -> bool {
        self.op_follows((&later.device, later.seq), (&earlier.device, earlier.seq))
    }
}
