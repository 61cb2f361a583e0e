//! The `sync_log` view: every op this database holds, local and received, in plain SQL values
//! and JSON, and the SQL functions it is built on.
//!
//! Invariant: the view shows what the log holds and computes nothing the log does not say: a
//! local op's Lamport time from its epoch (local.rs), a received op from its form and values.

use crate::db::{Conn, Error, Result};
use crate::value::{hex, JsonObject, Value};

use super::local::{log_width, writes_column};
use super::tables::Shape;
use crate::op::OpKind;

/// The public view over the log.
pub const LOG_VIEW: &str = "sync_log";

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
    let (insert, update) = (OpKind::Insert.code(), OpKind::Update.code());
    conn.exec(&format!("DROP VIEW IF EXISTS main.{LOG_VIEW}"), &[])?;
    conn.exec(
        &format!(
            "CREATE VIEW main.{LOG_VIEW}(device, seq, op_id, lamport, \"table\", kind, pk, \"values\") AS
             SELECT lower(hex(d.id)), o.seq, sync_op_id(d.id, o.seq),
                    o.seq + coalesce((SELECT e.lamport - e.local_seq FROM _sync_epochs e
                                      WHERE e.local_seq < o.seq ORDER BY e.local_seq DESC LIMIT 1), 0),
                    t.name,
                    CASE o.kind WHEN {insert} THEN 'insert' WHEN {update} THEN 'update' ELSE 'delete' END,
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
        Some("kind") => Value::Text(op.kind.name().into()),
        Some("pk") => json(&op.key),
        Some("values") if op.kind == OpKind::Delete => Value::Null,
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
    Ok(Value::Text(hex(&crate::op::op_id(device, seq))))
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
    let kind = args[2].as_i64().and_then(OpKind::from_code);
    let mask = args[3].as_i64().unwrap_or(0);
    let values = &args[4..];
    let written = |i: usize| kind.is_some_and(|k| writes_column(k, mask, i));
    if kind == Some(OpKind::Delete) {
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
