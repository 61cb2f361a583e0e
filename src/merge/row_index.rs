//! The row index: which ops touched which row, so that a row can be settled from all its ops.
//!
//! Invariant: every applied or folded op is indexed on its row exactly once: the first op
//! indexed on a row in `_sync_rows`, every later one in `_sync_row_ops` (schema.rs), so a new row
//! costs one write, and whether a row had ops before is known from that write.

use crate::hashed::HashMap;

use crate::db::{padded_rows, Conn, Error, Padded, Result, Statements};
use crate::log::clock::{Devices, Order};
use crate::log::remote::{Forms, Stored};
use crate::log::{LocalOps, SyncedTable};
use crate::merge::RowOp;
use crate::op::{DeviceId, OpKind};
use crate::schema::{DeviceIdx, SELF};
use crate::sql::BATCH;
use crate::value::{Cells, Value};

/// Every op indexed on row (?1, ?2), as (device, seq), with its `_sync_remote` row where it is
/// a received op.
const ROW_OPS: &str = "SELECT r.device, r.seq, o.lamport, o.form, o.vals FROM (
       SELECT device, seq FROM main._sync_rows WHERE table_id = ?1 AND key = ?2
       UNION ALL
       SELECT device, seq FROM main._sync_row_ops WHERE table_id = ?1 AND key = ?2) r
     LEFT JOIN main._sync_remote o ON o.device = r.device AND o.seq = r.seq";

/// One op to index: (table id, row key, device, seq).
pub type Entry = (i64, Vec<u8>, DeviceIdx, u64);

/// An entry as the parameters of its row (`table_id`, `key`, `device`, `seq`).
pub fn entry_values(entry: &Entry) -> [Value; 4] {
    let (table_id, key, device, seq) = entry;
    [
        Value::Integer(*table_id),
        Value::Blob(key.clone()),
        Value::from(*device),
        Value::Integer(*seq as i64),
    ]
}

/// A live set to store: (table id, row key, the row's first op, the set).
pub type LiveSet = (i64, Vec<u8>, (DeviceIdx, u64), Vec<u8>);

pub struct RowIndex<'c> {
    conn: &'c Conn,
    /// The statements for up to `BATCH` rows at once
    first_many: Padded<'c>,
    later_many: Padded<'c>,
    look_up: Padded<'c>,
    live_many: Padded<'c>,
    /// Whether the last batch found rows that had ops before: then the next looks its rows up
    /// before it inserts them (a batch of edits), else after (a batch of new rows)
    edits: bool,
}

const INSERT_FIRST: &str = "INSERT INTO main._sync_rows(table_id, key, device, seq)";
const INSERT_LATER: &str = "INSERT OR IGNORE INTO main._sync_row_ops(table_id, key, device, seq)";

impl<'c> RowIndex<'c> {
    pub fn new(conn: &'c Conn) -> RowIndex<'c> {
        RowIndex {
            conn,
            first_many: Padded::default(),
            later_many: Padded::default(),
            look_up: Padded::default(),
            live_many: Padded::default(),
            edits: false,
        }
    }

    /// Indexes up to `BATCH` ops, each on its row: per entry, None when it is its row's first
    /// op, else what the row index held of the row before (`Prior`).
    pub fn add_many(&mut self, entries: &[Entry]) -> Result<Vec<Option<Prior>>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let all: Vec<usize> = (0..entries.len()).collect();
        let priors = match self.edits {
            false => {
                if self.insert_first(entries, &all)? == entries.len() {
                    return Ok(entries.iter().map(|_| None).collect());
                }
                // an entry is its row's first op exactly when the row names it
                let mut priors = self.look_up(entries)?;
                for (entry, prior) in entries.iter().zip(&mut priors) {
                    if prior
                        .as_ref()
                        .is_some_and(|p| p.first == (entry.2, entry.3))
                    {
                        *prior = None;
                    }
                }
                priors
            }
            true => {
                let mut priors = self.look_up(entries)?;
                // a row first indexed in this batch: its first entry is its first op
                let mut firsts: HashMap<(i64, &[u8]), (DeviceIdx, u64)> = HashMap::default();
                let mut new = Vec::new();
                for (i, (entry, prior)) in entries.iter().zip(&mut priors).enumerate() {
                    if prior.is_some() {
                        continue;
                    }
                    let at = (entry.2, entry.3);
                    match firsts.get(&(entry.0, entry.1.as_slice())) {
                        Some(&first) => *prior = Some(Prior::unread(first)),
                        None => {
                            firsts.insert((entry.0, entry.1.as_slice()), at);
                            new.push(i);
                        }
                    }
                }
                self.insert_first(entries, &new)?;
                priors
            }
        };
        let later: Vec<usize> = (0..entries.len())
            .filter(|&i| priors[i].is_some())
            .collect();
        self.insert_later(entries, &later)?;
        self.edits = !later.is_empty();
        Ok(priors)
    }

    /// Inserts `entries[i]` for each `i` of `which` into `_sync_rows` (a row there already is
    /// left as it is); returns how many it inserted.
    fn insert_first(&mut self, entries: &[Entry], which: &[usize]) -> Result<usize> {
        if which.is_empty() {
            return Ok(0);
        }
        let rows: Vec<[Value; 4]> = which.iter().map(|&i| entry_values(&entries[i])).collect();
        self.first_many.execute(self.conn, &rows, |n| {
            format!(
                "{INSERT_FIRST} {} ON CONFLICT DO NOTHING",
                padded_rows(n, 4)
            )
        })?;
        Ok(self.conn.changes() as usize)
    }

    /// Inserts `entries[i]` for each `i` of `which` into `_sync_row_ops`.
    fn insert_later(&mut self, entries: &[Entry], which: &[usize]) -> Result<()> {
        if which.is_empty() {
            return Ok(());
        }
        let rows: Vec<[Value; 4]> = which.iter().map(|&i| entry_values(&entries[i])).collect();
        (self.later_many).execute(self.conn, &rows, |n| {
            format!("{INSERT_LATER} {}", padded_rows(n, 4))
        })
    }

    /// What `_sync_rows` holds of the row of each entry.
    fn look_up(&mut self, entries: &[Entry]) -> Result<Vec<Option<Prior>>> {
        let mut priors: Vec<Option<Prior>> = entries.iter().map(|_| None).collect();
        let (stmt, size) = self.look_up.get(self.conn, entries.len(), look_up_sql)?;
        let mut params = Vec::with_capacity(size * 3);
        for (i, (table_id, key, _, _)) in entries.iter().enumerate() {
            params.extend([
                Value::Integer(i as i64),
                Value::Integer(*table_id),
                Value::Blob(key.clone()),
            ]);
        }
        params.resize(size * 3, Value::Null); // rows of NULLs find nothing
        stmt.bind_all(&params)?;
        let result = (|| {
            while let Some(r) = stmt.step()? {
                let int = |i| r.column(i).map(|v| v.as_i64());
                let prior = Prior {
                    first: (DeviceIdx(r.column_int(1)), r.column_int(2) as u64),
                    live: r.column(3)?,
                    form: int(4)?,
                    local: match (int(5)?, int(6)?, int(7)?) {
                        (Some(shape), Some(kind), mask) => Some((shape, kind, mask.unwrap_or(0))),
                        _ => None,
                    },
                };
                let at = r.column_int(0) as usize;
                priors[at] = Some(prior);
            }
            Ok(())
        })();
        stmt.reset();
        result.map(|()| priors)
    }

    /// Stores live sets (merge/live.rs).
    pub fn store_live(&mut self, sets: &[LiveSet]) -> Result<()> {
        for chunk in sets.chunks(BATCH) {
            // an upsert of rows that are there: cheaper than an UPDATE of them
            let rows: Vec<[Value; 5]> = (chunk.iter())
                .map(|(table_id, key, (device, seq), live)| {
                    [
                        Value::Integer(*table_id),
                        Value::Blob(key.clone()),
                        Value::from(*device),
                        Value::Integer(*seq as i64),
                        Value::Blob(live.clone()),
                    ]
                })
                .collect();
            self.live_many.execute(self.conn, &rows, |n| {
                format!(
                    "INSERT INTO main._sync_rows(table_id, key, device, seq, live) {}
                     ON CONFLICT(table_id, key) DO UPDATE SET live = excluded.live",
                    padded_rows(n, 5)
                )
            })?;
        }
        Ok(())
    }
}

/// What the row index held of a row before an op on it was indexed: the row's first op, its
/// live set (`_sync_rows.live`, merge/live.rs) and, while that is NULL, the first op's form (a
/// received op) or its shape, kind and mask (a local op, `_sync_ops`).
pub struct Prior {
    pub first: (DeviceIdx, u64),
    pub live: Value,
    pub form: Option<i64>,
    pub local: Option<(i64, i64, i64)>,
}

impl Prior {
    /// A row whose first op was indexed in the same batch: nothing known of it but that op.
    fn unread(first: (DeviceIdx, u64)) -> Prior {
        Prior {
            first,
            live: Value::Null,
            form: None,
            local: None,
        }
    }
}

/// The query of `look_up`: `rows` rows of (entry number, table id, key).
fn look_up_sql(rows: usize) -> String {
    let rows = crate::sql::value_rows(rows, 3);
    format!(
        "SELECT v.column1, r.device, r.seq, r.live, o.form, l.shape, l.kind, l.mask
         FROM (VALUES {rows}) AS v
         JOIN main._sync_rows r ON r.table_id = v.column2 AND r.key = v.column3
         LEFT JOIN main._sync_remote o
           ON r.live IS NULL AND r.device <> {me} AND o.device = r.device AND o.seq = r.seq
         LEFT JOIN main._sync_ops l ON r.live IS NULL AND r.device = {me} AND l.seq = r.seq",
        me = SELF.0
    )
}

/// Reads the ops on one row back, from the row index, the log and the store of received ops.
pub struct RowReader<'a> {
    pub devices: &'a Devices,
    pub local: &'a LocalOps<'a>,
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
        let mut stmt = conn.cached(ROW_OPS)?;
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
                "op {seq} of device {} is missing",
                self.devices.named(device)
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
impl super::Causality for Order<'_, '_> {
    fn follows(&self, later: &RowOp, earlier: &RowOp) -> bool {
        self.op_follows((&later.device, later.seq), (&earlier.device, earlier.seq))
    }

    fn saw(&self, later: &RowOp, earlier: &RowOp) -> bool {
        let deletes = earlier.kind == crate::op::OpKind::Delete;
        self.op_saw(
            (&later.device, later.seq),
            (&earlier.device, earlier.seq),
            deletes,
        )
    }
}
