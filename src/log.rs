//! The op log and the metadata that gives it meaning.
//!
//! Invariant: the log only grows. Local op `n` (n = 1, 2, 3 … with no gaps) is row `seq = n` of
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

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::{Conn, Error, Result, Statements, Stmt};
use std::collections::HashMap;

use crate::value::{hex, Cells, JsonObject, Value};

/// The public view over the log.
pub const LOG_VIEW: &str = "sync_log";

/// Op kinds as stored in `_sync_ops.kind`.
pub const INSERT: i64 = 0;
pub const UPDATE: i64 = 1;
pub const DELETE: i64 = 2;

/// One row of `_sync_ops` as SQL: the only place its layout is written (the capture triggers,
/// the rows already in a table when it is enabled, a resolution appended by hand); `LocalOps`
/// reads it back. Each part is an SQL expression: the shape id, the kind, the changed-column
/// mask (NULL but for updates), and per column position `I` of the shape its value (`vI`).
pub struct LogRow {
    pub shape: String,
    pub kind: i64,
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
        let mut exprs = format!("{}, {}, {}", self.shape, self.kind, self.mask);
        for (i, e) in &self.values {
            cols.push_str(&format!(", v{i}"));
            exprs.push_str(&format!(", {e}"));
        }
        (cols, exprs)
    }
}

/// Whether a log row of `kind` with changed-column `mask` writes column `i` of its shape.
fn writes_column(kind: i64, mask: i64, i: usize) -> bool {
    match kind {
        INSERT => true,
        UPDATE => (mask >> i) & 1 == 1,
        _ => false,
    }
}

/// The columns of one enabled table at one point of its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Column names in table order.
    pub columns: Vec<String>,
    /// Positions (in `columns`) of the PRIMARY KEY columns, in PRIMARY KEY order.
    pub pk: Vec<usize>,
}

impl Shape {
    pub fn encode(&self) -> (Value, Value) {
        let cols = rmp_serde::to_vec(&self.columns).expect("names encode");
        let pk = rmp_serde::to_vec(&self.pk).expect("positions encode");
        (Value::Blob(cols), Value::Blob(pk))
    }

    pub fn decode(columns: &Value, pk: &Value) -> Result<Shape> {
        let bad = || Error::new("damaged shape record in _sync_shapes");
        let columns: Vec<String> =
            rmp_serde::from_slice(columns.as_blob().ok_or_else(bad)?).map_err(|_| bad())?;
        let pk: Vec<usize> =
            rmp_serde::from_slice(pk.as_blob().ok_or_else(bad)?).map_err(|_| bad())?;
        if pk.iter().any(|&i| i >= columns.len()) {
            return Err(bad());
        }
        Ok(Shape { columns, pk })
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

/// Makes the log at least `width` values wide, and the `sync_log` view match it.
pub fn widen(conn: &Conn, width: usize) -> Result<()> {
    let have = log_width(conn)?;
    if have >= width {
        return Ok(());
    }
    for i in have..width {
        conn.exec(&format!("ALTER TABLE main._sync_ops ADD COLUMN v{i}"), &[])?;
    }
    rebuild_log_view(conn, width)
}

/// (Re)creates the `sync_log` view for a log `width` values wide.
pub fn rebuild_log_view(conn: &Conn, width: usize) -> Result<()> {
    let vs: String = (0..width).map(|i| format!(", o.v{i}")).collect();
    conn.exec(&format!("DROP VIEW IF EXISTS main.{LOG_VIEW}"), &[])?;
    conn.exec(
        &format!(
            "CREATE VIEW main.{LOG_VIEW}(device, seq, op_id, lamport, \"table\", kind, pk, \"values\") AS
             SELECT lower(hex(d.id)), o.seq, sync_op_id(d.id, o.seq),
                    o.seq + coalesce((SELECT e.lamport - e.local_seq FROM _sync_epochs e
                                      WHERE e.local_seq < o.seq ORDER BY e.local_seq DESC LIMIT 1), 0),
                    t.name,
                    CASE o.kind WHEN {INSERT} THEN 'insert' WHEN {UPDATE} THEN 'update' ELSE 'delete' END,
                    sync_log_pk(s.columns, s.pk{vs}),
                    sync_log_values(s.columns, s.pk, o.kind, o.mask{vs})
             FROM _sync_ops o JOIN _sync_shapes s ON s.id = o.shape
                  JOIN _sync_tables t ON t.id = s.table_id, _sync_device d
             UNION ALL
             SELECT lower(hex(d.id)), r.seq, sync_op_id(d.id, r.seq), r.lamport,
                    sync_log_op(f.form, r.vals, 'table'), sync_log_op(f.form, r.vals, 'kind'),
                    sync_log_op(f.form, r.vals, 'pk'), sync_log_op(f.form, r.vals, 'values')
             FROM _sync_remote r JOIN _sync_devices d ON d.idx = r.device
                  JOIN _sync_forms f ON f.id = r.form"
        ),
        &[],
    )
}

/// `sync_log_op(form, vals, part)`: one part of an op received from another device, for
/// `sync_log`: 'table', 'kind', 'pk' (JSON) or 'values' (JSON, NULL for a delete).
pub fn sync_log_op(_conn: &Conn, args: &[Value]) -> Result<Value> {
    let blob = |i: usize, what: &str| {
        args[i]
            .as_blob()
            .ok_or_else(|| Error::new(format!("{what} must be a BLOB")))
    };
    let form = crate::form::Form::decode(blob(0, "form")?)?;
    let op = form.op([0; 16], 1, 1, Vec::new(), blob(1, "vals")?)?;
    let json = |cells: &[(String, Value)]| Value::Text(JsonObject::of(cells));
    Ok(match args[2].as_text() {
        Some("table") => Value::Text(op.table),
        Some("kind") => Value::Text(["insert", "update", "delete"][op.kind as usize].into()),
        Some("pk") => json(&op.key),
        Some("values") if op.kind == crate::op::DELETE => Value::Null,
        Some("values") => json(&op.cells),
        _ => return Err(Error::new("part must be 'table', 'kind', 'pk' or 'values'")),
    })
}

/// `sync_op_id(device_id_blob, seq)`: the 16-byte op id, as hex.
pub fn sync_op_id(_conn: &Conn, args: &[Value]) -> Result<Value> {
    let device = args[0]
        .as_blob()
        .ok_or_else(|| Error::new("device id must be a BLOB"))?;
    let seq = args[1]
        .as_i64()
        .ok_or_else(|| Error::new("seq must be an INTEGER"))?;
    Ok(Value::Text(hex(&op_id(device, seq))))
}

/// The op id of op `seq` of `device`.
pub fn op_id(device: &[u8], seq: i64) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(device);
    h.update(seq.to_be_bytes());
    let digest = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// `sync_log_pk(columns, pk, v0, …)`: the op's PRIMARY KEY as a JSON object.
pub fn sync_log_pk(_conn: &Conn, args: &[Value]) -> Result<Value> {
    require_args(args, 2)?;
    let shape = Shape::decode(&args[0], &args[1])?;
    let values = &args[2..];
    let mut obj = JsonObject::new();
    for &i in &shape.pk {
        obj.field(&shape.columns[i], values.get(i).unwrap_or(&Value::Null));
    }
    Ok(Value::Text(obj.finish()))
}

/// `sync_log_values(columns, pk, kind, mask, v0, …)`: the values an op writes, as a JSON object
/// (every column for an insert, the changed ones for an update); NULL for a delete.
pub fn sync_log_values(_conn: &Conn, args: &[Value]) -> Result<Value> {
    require_args(args, 4)?;
    let shape = Shape::decode(&args[0], &args[1])?;
    let (kind, mask) = (args[2].as_i64(), args[3].as_i64().unwrap_or(0));
    let values = &args[4..];
    let written = |i: usize| kind.is_some_and(|k| writes_column(k, mask, i));
    if kind == Some(DELETE) {
        return Ok(Value::Null);
    }
    let mut obj = JsonObject::new();
    for (i, name) in shape
        .columns
        .iter()
        .enumerate()
        .filter(|(i, _)| written(*i))
    {
        obj.field(name, values.get(i).unwrap_or(&Value::Null));
    }
    Ok(Value::Text(obj.finish()))
}

fn require_args(args: &[Value], at_least: usize) -> Result<()> {
    if args.len() < at_least {
        return Err(Error::new(format!("expects at least {at_least} arguments")));
    }
    Ok(())
}

/// One local op read back from the log, with names instead of positions.
pub struct LocalOp {
    pub seq: u64,
    pub table_id: i64,
    pub table: String,
    pub kind: u8,
    pub key: Vec<(String, Value)>,
    pub cells: Vec<(String, Value)>,
}

/// Reads local ops; knows every shape and the Lamport epochs.
pub struct LocalOps {
    shapes: HashMap<i64, (i64, String, Shape)>,
    /// (local_seq, lamport) of every import, in order
    epochs: Vec<(u64, u64)>,
    width: usize,
}

impl LocalOps {
    pub fn load(conn: &Conn) -> Result<LocalOps> {
        let mut shapes = HashMap::new();
        let mut stmt = conn.prepare(
            "SELECT s.id, s.table_id, t.name, s.columns, s.pk
             FROM main._sync_shapes s JOIN main._sync_tables t ON t.id = s.table_id",
        )?;
        while stmt.step()? {
            let shape = Shape::decode(&stmt.column(3)?, &stmt.column(4)?)?;
            let name = stmt.column(2)?.as_text().unwrap_or_default().to_string();
            let id = stmt.column_int(0);
            shapes.insert(id, (stmt.column_int(1), name, shape));
        }
        let mut epochs = Vec::new();
        let mut stmt =
            conn.prepare("SELECT local_seq, lamport FROM main._sync_epochs ORDER BY local_seq")?;
        while stmt.step()? {
            let n = |i| stmt.column_int(i) as u64;
            epochs.push((n(0), n(1)));
        }
        Ok(LocalOps {
            shapes,
            epochs,
            width: log_width(conn)?,
        })
    }

    /// Notes an epoch stored meanwhile (as `_sync_epochs` does: the greater Lamport time wins).
    pub fn note_epoch(&mut self, local_seq: u64, lamport: u64) {
        match self.epochs.last_mut() {
            Some(last) if last.0 == local_seq => last.1 = last.1.max(lamport),
            _ => self.epochs.push((local_seq, lamport)),
        }
    }

    /// Lamport time of local op `seq` (see the module comment).
    pub fn lamport(&self, seq: u64) -> u64 {
        let i = self
            .epochs
            .partition_point(|&(local_seq, _)| local_seq < seq);
        match i {
            0 => seq,
            _ => {
                let (local_seq, lamport) = self.epochs[i - 1];
                lamport + seq - local_seq
            }
        }
    }

    /// Local op `seq`.
    pub fn get(&self, conn: &Conn, seq: u64) -> Result<LocalOp> {
        self.get_with(&mut Statements::new(conn), seq)
    }

    /// `get`, with a statement kept in `statements`.
    pub fn get_with(&self, statements: &mut Statements, seq: u64) -> Result<LocalOp> {
        let stmt = statements.get(&self.select("seq = ?1"))?;
        stmt.bind_all(&[Value::Integer(seq as i64)])?;
        if !stmt.step()? {
            return Err(Error::new(format!(
                "local op {seq} is missing from the log"
            )));
        }
        let op = self.decode(stmt);
        stmt.reset(); // no statement stays busy between calls
        op
    }

    /// The query of local ops `WHERE filter`, in seq order.
    fn select(&self, filter: &str) -> String {
        let vs: String = (0..self.width).map(|i| format!(", v{i}")).collect();
        format!("SELECT seq, shape, kind, mask{vs} FROM main._sync_ops WHERE {filter} ORDER BY seq")
    }

    /// The local op on `stmt`'s current row (a row of `select`).
    fn decode(&self, stmt: &Stmt) -> Result<LocalOp> {
        let shape_id = stmt.column_int(1);
        let (table_id, table, shape) = self
            .shapes
            .get(&shape_id)
            .ok_or_else(|| Error::new(format!("op log names unknown shape {shape_id}")))?;
        let kind = stmt.column_int(2);
        let mask = stmt.column_int(3);
        let value = |i: usize| Ok((shape.columns[i].clone(), stmt.column(4 + i)?));
        let written = |i: usize| writes_column(kind, mask, i);
        Ok(LocalOp {
            seq: stmt.column_int(0) as u64,
            table_id: *table_id,
            table: table.clone(),
            kind: kind as u8,
            key: shape.pk.iter().map(|&i| value(i)).collect::<Result<_>>()?,
            cells: (0..shape.columns.len())
                .filter(|&i| written(i))
                .map(value)
                .collect::<Result<_>>()?,
        })
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
        while stmt.step()? {
            f(self.decode(&stmt)?)?;
        }
        Ok(())
    }
}

/// A table this database syncs now, with its current shape.
#[derive(Debug, Clone)]
pub struct SyncedTable {
    pub id: i64,
    pub name: String,
    pub shape_id: i64,
    pub shape: Shape,
}

impl SyncedTable {
    /// The table's own spelling of column `name` (names compare without case, as in SQL).
    pub fn column(&self, name: &str) -> Option<&str> {
        self.shape
            .columns
            .iter()
            .find(|c| c.eq_ignore_ascii_case(name))
            .map(String::as_str)
    }

    pub fn key_columns(&self) -> impl Iterator<Item = &str> {
        self.shape
            .pk
            .iter()
            .map(|&i| self.shape.columns[i].as_str())
    }

    /// The same cells with column names as this table spells them.
    pub fn spell(&self, cells: Cells) -> Cells {
        cells
            .into_iter()
            .map(|(c, v)| (self.column(&c).map_or(c, str::to_string), v))
            .collect()
    }
}

/// Every enabled table, by id.
pub fn synced_tables(conn: &Conn) -> Result<Vec<SyncedTable>> {
    let mut stmt = conn.prepare(
        "SELECT t.id, t.name, s.id, s.columns, s.pk
         FROM main._sync_tables t JOIN main._sync_shapes s ON s.id = t.shape
         WHERE t.enabled = 1",
    )?;
    let mut out = Vec::new();
    while stmt.step()? {
        out.push(SyncedTable {
            id: stmt.column_int(0),
            name: stmt.column(1)?.as_text().unwrap_or_default().to_string(),
            shape_id: stmt.column_int(2),
            shape: Shape::decode(&stmt.column(3)?, &stmt.column(4)?)?,
        });
    }
    Ok(out)
}

/// The bytes that identify a row of a table: msgpack of its PRIMARY KEY values, in key order.
pub fn row_key<'a>(values: impl Iterator<Item = &'a Value>) -> Vec<u8> {
    let values: Vec<&Value> = values.collect();
    rmp_serde::to_vec(&values).expect("values always encode")
}
