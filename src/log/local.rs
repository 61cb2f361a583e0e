//! Local ops: the ops this device wrote, one `_sync_ops` row each.
//!
//! Invariant: the log only grows (but for a fork, apply/fork.rs, which moves its ops to the
//! store of received ops). Local op `n` (n = 1, 2, 3 … with no gaps) is row `seq = n` of
//! `_sync_ops`, appended by a capture trigger in the same transaction as the row change, so it
//! exists exactly when that change committed (a rollback takes back both, and with them the
//! rowid, so no gap opens). UPDATE and DELETE on `_sync_ops` are refused by triggers.
//!
//! The metadata's tables are listed in schema.rs.
//!
//! One `_sync_ops` row is one local op. `shape` names the table and its columns (ops name their
//! columns through it, so an ADD COLUMN makes a new shape and leaves old ops as they are). `kind`
//! is 0 insert, 1 update, 2 delete. `vI` holds column `I` of the shape; the `v` columns have no
//! type, hence no affinity, so SQLite stores each value with its own storage class and bits
//! (-0.0, ±inf and every i64 intact). An insert fills every `vI`; a delete only the PK columns; an
//! update the PK columns plus the columns whose bit `I` is set in `mask` (all others NULL). `mask`
//! is NULL except for updates. The log is as wide as the widest enabled table (`v` columns are
//! added with ALTER TABLE, which rewrites nothing).
//!
//! # Derived, not stored (the capture trigger stays one plain INSERT)
//!
//! - device: this device.
//! - op_id: the first 16 bytes of SHA-256(device id ‖ seq as 8 bytes big-endian).
//! - causal context and Lamport time: a device's clock only moves when it imports. Each import
//!   records, at `seq = last local seq + 1` of this device, the clock entries that grew
//!   (`_sync_deps`), and appends `_sync_epochs(local_seq = last local seq, lamport = highest
//!   Lamport time known)`. So local op `n`'s context is the merge of this device's change points
//!   up to `n`, and its Lamport time is `e.lamport + n - e.local_seq` for the epoch `e` with the
//!   greatest `local_seq < n` (just `n` before any import): strictly above every op in its
//!   context, so the order key (Lamport time, device id, seq) is consistent with causality.

use crate::hashed::HashMap;

use crate::db::{Conn, Error, Result, Row, Statements, Stmt};
use crate::op::{Decl, OpKind};
use crate::value::Value;

use super::epochs::Epochs;
use super::tables::Shape;

/// One row of `_sync_ops` as SQL: the only place its layout is written (the capture triggers,
/// the rows already in a table when it is enabled, a resolution appended by hand); `LocalOps`
/// reads it back. Each part is an SQL expression: the shape id, the kind, the changed-column
/// mask (NULL but for updates), and per column position `I` of the shape its value (`vI`).
pub struct LogRow {
    pub shape: String,
    pub kind: OpKind,
    pub mask: String,
    pub values: Vec<(usize, String)>,
}

impl LogRow {
    /// `INSERT INTO {table}(…) VALUES (…)`; `table` is `_sync_ops`, qualified or not (a trigger
    /// names it unqualified).
    pub fn insert(&self, table: &str) -> String {
        let (cols, exprs) = self.parts();
        format!("INSERT INTO {table}({cols}) VALUES ({exprs})")
    }

    /// `INSERT INTO {table}(…) SELECT … {from}`: one row per row `from` yields.
    pub fn insert_select(&self, table: &str, from: &str) -> String {
        let (cols, exprs) = self.parts();
        format!("INSERT INTO {table}({cols}) SELECT {exprs} {from}")
    }

    fn parts(&self) -> (String, String) {
        let mut cols = String::from("shape, kind, mask");
        let mut exprs = format!("{}, {}, {}", self.shape, self.kind.code(), self.mask);
        for (i, e) in &self.values {
            cols.push_str(&format!(", v{i}"));
            exprs.push_str(&format!(", {e}"));
        }
        (cols, exprs)
    }
}

/// Whether a log row of `kind` with changed-column `mask` writes column `i` of its shape.
pub fn writes_column(kind: OpKind, mask: i64, i: usize) -> bool {
    match kind {
        OpKind::Insert => true,
        OpKind::Update => (mask >> i) & 1 == 1,
        _ => false,
    }
}

/// The seq of the newest local op, 0 when there is none.
pub fn last_local_seq(conn: &Conn) -> Result<i64> {
    Ok(conn
        .query_value("SELECT max(seq) FROM main._sync_ops", &[])?
        .and_then(|v| v.as_i64())
        .unwrap_or(0))
}

/// Number of `v` columns the log has now.
pub fn log_width(conn: &Conn) -> Result<usize> {
    let n = conn
        .query_value(
            "SELECT count(*) FROM pragma_table_info('_sync_ops', 'main') WHERE name GLOB 'v[0-9]*'",
            &[],
        )?
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    Ok(n as usize)
}

/// One local op read back from the log, with names instead of positions.
pub struct LocalOp {
    pub seq: u64,
    pub table_id: i64,
    pub table: String,
    pub kind: OpKind,
    pub key: Vec<(String, Value)>,
    pub cells: Vec<(String, Value)>,
    /// The declared types of the key columns, then of the cells' (none when the shape an
    /// earlier build stored does not know them)
    pub decl: Decl,
}

/// Reads local ops; knows every shape and the Lamport epochs.
pub struct LocalOps<'c> {
    shapes: HashMap<i64, (i64, String, Shape)>,
    /// The declared types of the ops of each (shape, kind, mask), made once
    decls: std::cell::RefCell<HashMap<(i64, u8, i64), Decl>>,
    epochs: Epochs<'c>,
    width: usize,
}

impl<'c> LocalOps<'c> {
    pub fn load(conn: &'c Conn) -> Result<LocalOps<'c>> {
        let mut shapes = HashMap::default();
        let mut stmt = conn.prepare(
            "SELECT s.id, s.table_id, t.name, s.columns, s.pk
             FROM main._sync_shapes s JOIN main._sync_tables t ON t.id = s.table_id",
        )?;
        while let Some(row) = stmt.step()? {
            let shape = Shape::decode(&row.column(3)?, &row.column(4)?)?;
            let name = row.column(2)?.as_text().unwrap_or_default().to_string();
            let id = row.column_int(0);
            shapes.insert(id, (row.column_int(1), name, shape));
        }
        Ok(LocalOps {
            shapes,
            decls: Default::default(),
            epochs: Epochs::new(conn)?,
            width: log_width(conn)?,
        })
    }

    /// Notes an epoch stored meanwhile (as `_sync_epochs` does: the greater Lamport time wins).
    pub fn note_epoch(&mut self, local_seq: u64, lamport: u64) {
        self.epochs.note(local_seq, lamport);
    }

    /// `_sync_epochs` changed otherwise than by a greater Lamport time: read it again.
    pub fn epochs_changed(&mut self) {
        self.epochs.forget();
    }

    /// Lamport time of local op `seq` (see the module comment).
    pub fn lamport(&self, seq: u64) -> u64 {
        self.epochs.lamport(seq)
    }

    /// The first read of epochs that failed, if one did (epochs.rs).
    pub fn check(&self) -> Result<()> {
        self.epochs.check()
    }

    /// Local op `seq` (its statement kept for the call: `Conn::cached`).
    pub fn get(&self, conn: &Conn, seq: u64) -> Result<LocalOp> {
        let mut stmt = conn.cached(&self.select("seq = ?1"))?;
        self.read_one(&mut stmt, seq)
    }

    /// `get`, with a statement kept in `statements`.
    pub fn get_with(&self, statements: &mut Statements, seq: u64) -> Result<LocalOp> {
        self.read_one(statements.get(&self.select("seq = ?1"))?, seq)
    }

    /// Local op `seq`, read with `stmt`, the query `seq = ?1` of `select`.
    fn read_one(&self, stmt: &mut Stmt, seq: u64) -> Result<LocalOp> {
        stmt.bind_all(&[Value::Integer(seq as i64)])?;
        let Some(row) = stmt.step()? else {
            return Err(Error::new(format!(
                "local op {seq} is missing from the log"
            )));
        };
        let op = self.decode(&row);
        stmt.reset(); // no statement stays busy between calls
        op
    }

    /// The query of local ops `WHERE filter`, in seq order.
    fn select(&self, filter: &str) -> String {
        let vs: String = (0..self.width).map(|i| format!(", v{i}")).collect();
        format!("SELECT seq, shape, kind, mask{vs} FROM main._sync_ops WHERE {filter} ORDER BY seq")
    }

    /// The local op on a row of `select`.
    fn decode(&self, row: &Row) -> Result<LocalOp> {
        let shape_id = row.column_int(1);
        let (table_id, table, shape) = self
            .shapes
            .get(&shape_id)
            .ok_or_else(|| Error::new(format!("op log names unknown shape {shape_id}")))?;
        let kind = OpKind::from_code(row.column_int(2))
            .ok_or_else(|| Error::new("damaged op in _sync_ops: unknown kind"))?;
        let mask = row.column_int(3);
        let value = |i: usize| Ok((shape.columns[i].clone(), row.column(4 + i)?));
        let written = |i: usize| writes_column(kind, mask, i);
        let cells = || (0..shape.columns.len()).filter(move |&i| written(i));
        let decl = match shape.types.is_empty() {
            true => Decl::default(),
            false => {
                let mut decls = self.decls.borrow_mut();
                let at = (
                    shape_id,
                    kind.code(),
                    if kind == OpKind::Update { mask } else { 0 },
                );
                let types =
                    || (shape.pk.iter().copied().chain(cells())).map(|i| shape.types[i].clone());
                decls
                    .entry(at)
                    .or_insert_with(|| Decl::new(types().collect()))
                    .clone()
            }
        };
        Ok(LocalOp {
            seq: row.column_int(0) as u64,
            table_id: *table_id,
            table: table.clone(),
            kind,
            key: shape.pk.iter().map(|&i| value(i)).collect::<Result<_>>()?,
            cells: cells().map(value).collect::<Result<_>>()?,
            decl,
        })
    }

    /// The kind of a local op of shape `shape_id`, kind code `kind` and `mask`, and the
    /// columns it writes (as `get` gives its cells).
    pub fn columns(&self, shape_id: i64, kind: i64, mask: i64) -> Result<(OpKind, Vec<String>)> {
        let (_, _, shape) = self
            .shapes
            .get(&shape_id)
            .ok_or_else(|| Error::new(format!("op log names unknown shape {shape_id}")))?;
        let kind = OpKind::from_code(kind)
            .ok_or_else(|| Error::new("damaged op in _sync_ops: unknown kind"))?;
        let cols = (0..shape.columns.len())
            .filter(|&i| writes_column(kind, mask, i))
            .map(|i| shape.columns[i].clone())
            .collect();
        Ok((kind, cols))
    }

    /// Calls `f` for every local op with `after < seq <= upto`, in seq order.
    pub fn each(
        &self,
        conn: &Conn,
        after: u64,
        upto: u64,
        mut f: impl FnMut(LocalOp) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = conn.prepare(&self.select("seq > ?1 AND seq <= ?2"))?;
        stmt.bind_all(&[Value::Integer(after as i64), Value::Integer(upto as i64)])?;
        while let Some(row) = stmt.step()? {
            f(self.decode(&row)?)?;
        }
        Ok(())
    }
}
