//! This device's identity, and a database that becomes two: `sync_fork()`, and the checks that
//! call it by themselves.
//!
//! Invariant: one device id has one writer. A database file copied (`cp`, `.backup`, `VACUUM
//! INTO`) carries its device id inside; if both files went on writing under it, two different
//! ops would travel as "op n of device d". So a database that finds it is not the file its id
//! was made in becomes a new device before it writes again, and so does one that finds a peer
//! holding ops of its id beyond its own log (it was restored from an older backup, or rolled
//! back): it forks.
//!
//! A fork gives this database a new random id and makes its ops so far the ops of its old id,
//! as if received from that device: each is moved to the store of received ops, with the same
//! Lamport time, context, row index entries, conflict records and what peers are known to have
//! of it. Nothing about them changes for any other device, so nothing needs to travel. The new
//! device's first op follows every op applied here (its context is the whole applied clock,
//! its Lamport time above all of them).
//!
//! The file's identity is its inode number, kept in `_sync_state` as `file`. It is checked when
//! the extension loads into a connection and at the start of every call that writes sync
//! state. A file moved within its file system keeps it; one moved to another file system, or
//! restored by a rename, gets a new id, which costs nothing but one more device in clocks.

use crate::chain::{self, Held};
use crate::clock;
use crate::db::{Conn, Error, Result, TriggersOff};
use crate::form::Form;
use crate::log::{self, LocalOps, SELF};
use crate::op::{DeviceId, Op};
use crate::remote::Forms;
use crate::value::{hex, Value};

/// `sync_fork()`: makes this database a new device now; returns its new id. For a copy the
/// checks did not catch (made while no connection had the extension loaded).
pub fn sync_fork(conn: &Conn, _args: &[Value]) -> Result<Value> {
    log::require_initialized(conn)?;
    if conn.in_write_transaction() {
        return Err(Error::new("COMMIT (or ROLLBACK) first, then fork"));
    }
    let id = conn.savepoint("sync_fork", || fork(conn))?;
    Ok(Value::Text(hex(&id)))
}

/// The file's identity as stored: its inode number; None for a database without a file (or on
/// a system without inodes).
fn file_identity(conn: &Conn) -> Option<String> {
    let path = conn.main_file()?;
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(meta.ino().to_string())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// Records the file this device lives in (by `sync_init`, and after a fork).
pub fn remember_file(conn: &Conn) -> Result<()> {
    match file_identity(conn) {
        Some(id) => conn.exec(
            "INSERT OR REPLACE INTO main._sync_state(name, value) VALUES ('file', ?1)",
            &[Value::Text(id)],
        ),
        None => Ok(()),
    }
}

/// Forks when this database is not the file its device id was made in. Returns whether it did.
/// The caller holds no write transaction, or one it can extend.
pub fn check_file(conn: &Conn) -> Result<bool> {
    let Some(now) = file_identity(conn) else {
        return Ok(false);
    };
    if conn.is_readonly() {
        return Ok(false); // it writes nothing, so it cannot write a second history either
    }
    let stored = conn.query_value(
        "SELECT value FROM main._sync_state WHERE name = 'file'",
        &[],
    )?;
    match stored {
        Some(Value::Text(t)) if t == now => Ok(false),
        // made by a build that did not record it: this file is the one from now on
        None => remember_file(conn).map(|_| false),
        _ => conn.savepoint("sync_fork", || fork(conn)).map(|_| true),
    }
}

/// `log::require_initialized`, then `check_file`: what every call that writes sync state does
/// first.
pub fn require_device(conn: &Conn) -> Result<()> {
    log::require_initialized(conn)?;
    check_file(conn).map(|_| ())
}

/// When the extension loads into a connection to a device's file: the check above, best
/// effort (a read-only or busy database is checked again by the next call that writes).
pub fn on_load(conn: &Conn) {
    if conn.is_autocommit() && log::require_initialized(conn).is_ok() {
        let _ = check_file(conn);
    }
}

/// This device's id `me`, and the ids it had before it forked (its bundles may be written
/// over: `bundle::Writer::create`).
pub fn ids(conn: &Conn, me: &DeviceId) -> Result<Vec<DeviceId>> {
    let mut ids = vec![*me];
    let mut stmt = conn
        .prepare("SELECT value FROM main._sync_state WHERE name LIKE 'former %' ORDER BY name")?;
    while stmt.step()? {
        if let Some(id) = stmt.column_blob(0)?.and_then(|b| b.try_into().ok()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Makes this database a new device (see the module comment); returns the new id.
pub fn fork(conn: &Conn) -> Result<DeviceId> {
    log::lock_for_writing(conn)?;
    crate::apply::fold_local(conn)?;
    let old: DeviceId = log::device_id(conn)?
        .and_then(|id| id.try_into().ok())
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
    let lamport = log::state(conn, "lamport")?.max(local.lamport(last));

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
        &[Value::Blob(new.to_vec()), Value::Integer(SELF)],
    )?;
    let was = conn.insert(
        "INSERT INTO main._sync_devices(id) VALUES (?1)",
        &[Value::Blob(old.to_vec())],
    )?;
    move_ops(conn, local, &old, was, last)?;
    // change points above the last op were recorded for this device's next op: the new
    // device's first op, whose context is written below
    conn.exec(
        "DELETE FROM main._sync_deps WHERE device = ?1 AND seq > ?2",
        &[Value::Integer(SELF), Value::Integer(last as i64)],
    )?;
    log::rename_ops(conn, SELF, was, 0)?;
    conn.exec(
        "UPDATE main._sync_peers SET device = ?1 WHERE device = ?2",
        &[Value::Integer(was), Value::Integer(SELF)],
    )?;
    if last > 0 {
        conn.exec(
            "INSERT INTO main._sync_clock(device, seq) VALUES (?1, ?2)",
            &[Value::Integer(was), Value::Integer(last as i64)],
        )?;
    }
    // the new device's first op follows everything applied here
    for (device, seq, hash) in heads {
        let device = if device == SELF { was } else { device };
        chain::remember(conn, device, seq, &hash)?;
        conn.exec(
            "INSERT INTO main._sync_deps(device, seq, dep, dep_seq, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            &[
                Value::Integer(SELF),
                Value::Integer(1),
                Value::Integer(device),
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
    log::set_state(conn, "lamport", lamport)?;
    log::set_state(conn, "folded", 0)?;
    // the log is append-only for everyone else
    let quiet = TriggersOff::new(conn)?;
    conn.exec("DELETE FROM main._sync_ops", &[])?;
    drop(quiet);
    remember_file(conn)?;
    Ok(new)
}

/// Moves local ops 1..=`last` to the store of received ops, as ops of device `was` (`old`).
fn move_ops(conn: &Conn, local: &LocalOps, old: &DeviceId, was: i64, last: u64) -> Result<()> {
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
        };
        let form = Form::of(&op);
        let form_id = forms.id_of(conn, &form)?;
        let seq = op.seq;
        let mut vals = Vec::new();
        Form::pack(&form.values_of(op), &mut vals)?;
        stmt.execute(&[
            Value::Integer(was),
            Value::Integer(seq as i64),
            Value::Integer(lamport as i64),
            Value::Integer(form_id),
            Value::Blob(vals),
        ])
    })
}
