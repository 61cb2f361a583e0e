//! This device's identity, and the checks that find a database became two (a copy, a backup
//! put back) and fork it.
//!
//! Invariant: one device id has one writer. A database file copied (`cp`, `.backup`, `VACUUM
//! INTO`) carries its device id inside; if both files went on writing under it, two different
//! ops would travel as "op n of device d". So a database that finds it is not the file its id
//! was made in becomes a new device before it writes again, and so does one that finds a peer
//! holding ops of its id beyond its own log (it was restored from an older backup, or rolled
//! back): it forks.
//!
//! The fork itself is apply/fork.rs (it folds this device's ops into the row index first,
//! the importer's work); the checks here are handed it by the SQL function that runs them.
//!
//! The file's identity is its inode number, kept in `_sync_state` as `file`. It is checked when
//! the extension loads into a connection and at the start of every call that writes sync
//! state. A file moved within its file system keeps it; one moved to another file system, or
//! restored by a rename, gets a new id, which costs nothing but one more device in clocks.

use crate::db::{Conn, Result};
use crate::op::DeviceId;
use crate::value::Value;

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

/// The fork (apply/fork.rs), handed down by the SQL function that checks: forking folds this
/// device's ops into the row index, which is the importer's work.
pub type Fork = fn(&Conn) -> Result<DeviceId>;

/// Forks when this database is not the file its device id was made in. Returns whether it did.
/// The caller holds no write transaction, or one it can extend.
pub fn check_file(conn: &Conn, fork: Fork) -> Result<bool> {
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

/// `crate::schema::require_initialized`, then `check_file`: what every call that writes sync state does
/// first.
pub fn require_device(conn: &Conn, fork: Fork) -> Result<()> {
    crate::schema::require_initialized(conn)?;
    check_file(conn, fork).map(|_| ())
}

/// When the extension loads into a connection to a device's file: the check above, best
/// effort (a read-only or busy database is checked again by the next call that writes).
pub fn on_load(conn: &Conn, fork: Fork) {
    if conn.is_autocommit() && crate::schema::require_initialized(conn).is_ok() {
        let _ = check_file(conn, fork);
    }
}

/// This device's id `me`, and the ids it had before it forked (its bundles may be written
/// over: `bundle::Writer::create`).
pub fn ids(conn: &Conn, me: &DeviceId) -> Result<Vec<DeviceId>> {
    let mut ids = vec![*me];
    let mut stmt = conn
        .prepare("SELECT value FROM main._sync_state WHERE name LIKE 'former %' ORDER BY name")?;
    while let Some(row) = stmt.step()? {
        if let Some(id) = row.column_blob(0)?.and_then(crate::op::device_id) {
            ids.push(id);
        }
    }
    Ok(ids)
}
