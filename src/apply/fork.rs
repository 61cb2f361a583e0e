//! A fork: this database becomes a new device, and its ops so far the ops of its old id
//! (identity.rs says when and why).
//!
//! Invariant: nothing about the old ops changes for any other device: each is moved to the
//! store of received ops with the same Lamport time, context, row index entries, conflict
//! records and what peers are known to have of it; the new device's first op follows every op
//! applied here.

use crate::db::{Conn, Error, Result, TriggersOff};
use crate::form::Form;
use crate::identity::remember_file;
use crate::log::chain::{self, Held};
use crate::log::clock;
use crate::log::remote::Forms;
use crate::log::LocalOps;
use crate::op::{DeviceId, Op};
use crate::schema::{DeviceIdx, SELF};
use crate::value::{hex, Value};

/// `sync_fork()`: makes this database a new device now; returns its new id. For a copy the
/// checks did not catch (made while no connection had the extension loaded).
pub fn sync_fork(conn: &Conn, _args: &[Value]) -> Result<Value> {
    crate::schema::require_initialized(conn)?;
    if conn.is_readonly() {
        return Err(Error::new(
            "the database is open read-only: fork from a connection that can write",
        ));
    }
    if conn.in_write_transaction() {
        return Err(Error::new("COMMIT (or ROLLBACK) first, then fork"));
    }
    let id = conn.savepoint("sync_fork", || fork(conn))?;
    Ok(Value::Text(hex(&id)))
}

/// Makes this database a new device (see the module comment); returns the new id.
pub fn fork(conn: &Conn) -> Result<DeviceId> {
    crate::schema::lock_for_writing(conn)?;
    super::settle::fold_local(conn)?;
    let old: DeviceId = crate::schema::device_id(conn)?
        .as_deref()
        .and_then(crate::op::device_id)
        .ok_or_else(|| Error::new("device row missing"))?;
    let new = *uuid::Uuid::new_v4().as_bytes();
    let applied = clock::applied(conn)?;
    let held = Held::load(conn)?;
    let local = &held.local;
    let last = applied.get(&SELF).copied().unwrap_or(0);
    // the hashes of the ops the new device's first op follows
    let heads = {
        let history = held.history(conn, true);
        let mut heads = Vec::with_capacity(applied.len());
        for (&device, &seq) in &applied {
            if held.devices.implied(&applied, device) {
                continue; // the entries of the histories forked from it say it all
            }
            let hash = (history.hash_at(device, seq)?)
                .ok_or_else(|| Error::new("an applied clock entry names no op"))?;
            heads.push((device, seq, hash));
        }
        heads
    };
    let lamport = crate::schema::state(conn, "lamport")?.max(local.lamport(last));

    conn.exec(
        "UPDATE main._sync_device SET id = ?1",
        &[Value::Blob(new.to_vec())],
    )?;
    conn.exec(
        "INSERT OR REPLACE INTO main._sync_state(name, value) VALUES (?1, ?2)",
        &[
            Value::Text(format!("former {}", hex(&old))),
            Value::Blob(old.to_vec()),
        ],
    )?;
    conn.exec(
        "UPDATE main._sync_devices SET id = ?1 WHERE idx = ?2",
        &[Value::Blob(new.to_vec()), Value::from(SELF)],
    )?;
    let was = DeviceIdx(conn.insert(
        "INSERT INTO main._sync_devices(id) VALUES (?1)",
        &[Value::Blob(old.to_vec())],
    )?);
    move_ops(conn, local, &old, was, last)?;
    // change points above the last op were recorded for this device's next op: the new
    // device's first op, whose context is written below
    conn.exec(
        "DELETE FROM main._sync_deps WHERE device = ?1 AND seq > ?2",
        &[Value::from(SELF), Value::Integer(last as i64)],
    )?;
    crate::schema::rename_ops(conn, SELF, was, 0)?;
    for sql in [
        "UPDATE main._sync_peers SET device = ?1 WHERE device = ?2",
        "UPDATE main._sync_relayed SET device = ?1 WHERE device = ?2",
    ] {
        conn.exec(sql, &[Value::from(was), Value::from(SELF)])?;
    }
    if last > 0 {
        conn.exec(
            "INSERT INTO main._sync_clock(device, seq) VALUES (?1, ?2)",
            &[Value::from(was), Value::Integer(last as i64)],
        )?;
    }
    // the new device's first op follows everything applied here
    for (device, seq, hash) in heads {
        let device = if device == SELF { was } else { device };
        chain::remember(conn, device, seq, &hash)?;
        conn.exec(
            "INSERT INTO main._sync_deps(device, seq, dep, dep_seq, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            &[
                Value::from(SELF),
                Value::Integer(1),
                Value::from(device),
                Value::Integer(seq as i64),
                Value::Blob(hash.to_vec()),
            ],
        )?;
    }
    conn.exec("DELETE FROM main._sync_epochs", &[])?;
    conn.exec(
        "INSERT INTO main._sync_epochs(local_seq, lamport) VALUES (0, ?1)",
        &[Value::Integer(lamport as i64)],
    )?;
    crate::schema::set_state(conn, "lamport", lamport)?;
    crate::schema::set_state(conn, "folded", 0)?;
    // the log is append-only for everyone else
    let quiet = TriggersOff::new(conn)?;
    conn.exec("DELETE FROM main._sync_ops", &[])?;
    drop(quiet);
    held.contexts.check()?;
    held.local.check()?;
    remember_file(conn)?;
    Ok(new)
}

/// Moves local ops 1..=`last` to the store of received ops, as ops of device `was` (`old`).
fn move_ops(
    conn: &Conn,
    local: &LocalOps,
    old: &DeviceId,
    was: DeviceIdx,
    last: u64,
) -> Result<()> {
    let mut forms = Forms::load(conn)?;
    let mut stmt = conn.prepare(
        "INSERT INTO main._sync_remote(device, seq, lamport, applied, form, vals)
         VALUES (?1, ?2, ?3, 1, ?4, ?5)",
    )?;
    local.each(conn, 0, last, |op| {
        let lamport = local.lamport(op.seq);
        let op = Op {
            device: *old,
            seq: op.seq,
            lamport,
            deps: Vec::new(),
            table: op.table,
            kind: op.kind,
            key: op.key,
            cells: op.cells,
            decl: op.decl,
        };
        let form = Form::of(&op);
        let form_id = forms.id_of(conn, &form)?;
        let seq = op.seq;
        let mut vals = Vec::new();
        Form::pack(&form.values_of(op), &mut vals)?;
        stmt.execute(&[
            Value::from(was),
            Value::Integer(seq as i64),
            Value::Integer(lamport as i64),
            Value::Integer(form_id),
            Value::Blob(vals),
        ])
    })
}
