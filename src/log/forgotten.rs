//! Forgotten devices: `sync_forget(peer)` says a device will not sync again, so that what the
//! others have stops waiting for it (log/stable.rs).
//!
//! A forgotten device's ops stay what they were: held, applied, relayed, and taken from any
//! bundle that carries them. What changes: it no longer counts among the devices known here
//! (the stable clock is the least of what the others have), bundles say whom their writer
//! forgot, so a receiver forgets them too (one call frees a fleet, a star's leaves included).
//! Bundles a forgotten device wrote are taken as any (nothing it wrote is lost; ops it wrote
//! against an older state merge as ops behind a compaction point do); a forgotten device that
//! imports a bundle saying it was forgotten is refused, with what to do: `sync_fork()` makes it
//! a new device, which counts again, and whose bundles carry every op it holds.
//!
//! Invariant: `_sync_forgotten` only grows, and holds device ids other than this device's.

use crate::hashed::HashSet;

use crate::db::{Conn, Error, Result};
use crate::op::DeviceId;
use crate::value::{hex, unhex, JsonObject, Value};

const TABLE: &str = "CREATE TABLE IF NOT EXISTS main._sync_forgotten(id BLOB PRIMARY KEY)";

/// `sync_forget(peer)`: forgets the device whose id `peer` spells (hex, as `sync_device_id()`
/// and `sync_status()` show it).
pub fn sync_forget(conn: &Conn, args: &[Value], fork: crate::identity::Fork) -> Result<Value> {
    crate::schema::require_initialized(conn)?;
    let id = args
        .first()
        .and_then(Value::as_text)
        .and_then(unhex)
        .and_then(|b| crate::op::device_id(&b))
        .ok_or_else(|| {
            Error::new(
                "expects a device id as sync_status() shows it (32 hex digits): \
                 SELECT sync_forget('<device id>')",
            )
        })?;
    if conn.is_readonly() {
        return Err(Error::new(
            "the database is open read-only: forget from a connection that can write",
        ));
    }
    // (a copy not yet told it is one becomes a device of its own first, as before any write)
    crate::identity::check_file(conn, fork)?;
    if crate::schema::device_id(conn)?.as_deref() == Some(&id[..]) {
        return Err(Error::new(
            "that is this device's own id: forget a device from another one",
        ));
    }
    // (a device's first history: a second one is named by its device's id)
    let known = "SELECT 1 FROM main._sync_devices WHERE id = ?1 AND parent IS NULL";
    if conn
        .query_value(known, &[Value::Blob(id.to_vec())])?
        .is_none()
    {
        return Err(Error::new(format!(
            "no device {} is known here (sync_status() -> '$.peers' lists them)",
            hex(&id)
        )));
    }
    let added = conn.savepoint("sync_forget", || add(conn, &[id]))?;
    let mut json = JsonObject::new();
    json.field("forgotten", &Value::Text(hex(&id)))
        .field("new", &Value::Integer(i64::from(added > 0)));
    Ok(Value::Text(json.finish()))
}

/// The device ids forgotten here.
pub fn load(conn: &Conn) -> Result<HashSet<DeviceId>> {
    let mut ids = HashSet::default();
    let made = "SELECT 1 FROM main.sqlite_schema WHERE name = '_sync_forgotten'";
    if conn.query_value(made, &[])?.is_none() {
        return Ok(ids);
    }
    let mut stmt = conn.prepare("SELECT id FROM main._sync_forgotten")?;
    while let Some(row) = stmt.step()? {
        if let Some(id) = row.column_blob(0)?.and_then(crate::op::device_id) {
            ids.insert(id);
        }
    }
    Ok(ids)
}

/// Forgets `ids` (but never this device's); how many were not forgotten before.
pub fn add(conn: &Conn, ids: &[DeviceId]) -> Result<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let me = crate::schema::device_id(conn)?;
    conn.exec(TABLE, &[])?;
    let mut added = 0;
    for id in ids.iter().filter(|id| me.as_deref() != Some(&id[..])) {
        let id = Value::Blob(id.to_vec());
        let held = "SELECT 1 FROM main._sync_forgotten WHERE id = ?1";
        if conn.query_value(held, std::slice::from_ref(&id))?.is_none() {
            conn.exec("INSERT INTO main._sync_forgotten(id) VALUES (?1)", &[id])?;
            added += 1;
        }
    }
    Ok(added)
}

/// The result code of the refusal a forgotten device gets (SQLITE_ERROR, extended): a shared
/// folder's import stops at it rather than skipping the file (apply/folder_in.rs).
pub const TOLD: std::ffi::c_int = 1 | (0x46 << 8);

/// Refuses a bundle whose writer holds this device as forgotten, saying what to do. (A bundle
/// *written* by a device forgotten here is taken as any: its ops are ops, and nothing it
/// wrote is lost; its word no longer counts for the stable clock.)
pub fn check_import(me: &[u8], source: &DeviceId, forgot: &[DeviceId]) -> Result<()> {
    if forgot.iter().any(|id| id[..] == *me) {
        return Err(Error {
            code: TOLD,
            message: format!(
                "its writer, device {}, holds this device as forgotten (sync_forget, called \
                 there or on a device it heard from): its peers no longer wait for it. SELECT \
                 sync_fork() makes this database a new device that syncs on, with every op it \
                 holds; then import again",
                hex(source)
            )
            .into(),
        });
    }
    Ok(())
}
