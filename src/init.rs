//! `sync_init` and `sync_device_id`: a database becomes a device.
//!
//! Invariant: `sync_init` creates the metadata once (schema.rs), in a savepoint, and is
//! idempotent: later calls return the same id and only bring an earlier build's database of
//! this layout up to date (the importing view, the capture triggers this build writes, first
//! in line).

use crate::db::{Conn, Error, Result};
use crate::identity::Fork;
use crate::log;
use crate::schema::{self, device_id, is_initialized, IMPORTING_VIEW, LAYOUT, SELF};
use crate::value::{hex, Value};

/// `sync_init()`: creates the metadata once and returns this device's id as hex.
pub fn sync_init(conn: &Conn, _args: &[Value], fork: Fork) -> Result<Value> {
    conn.savepoint("sync_init", || {
        if !is_initialized(conn)? {
            schema::create(conn)?;
            let id = uuid::Uuid::new_v4().as_bytes().to_vec();
            conn.exec(
                "INSERT INTO main._sync_device(one, id, format) VALUES (1, ?1, ?2)",
                &[Value::Blob(id.clone()), Value::Integer(LAYOUT)],
            )?;
            conn.exec(
                "INSERT INTO main._sync_devices(idx, id) VALUES (?1, ?2)",
                &[Value::from(SELF), Value::Blob(id)],
            )?;
            log::rebuild_log_view(conn, 0)?;
            crate::identity::remember_file(conn)?;
        } else {
            crate::identity::require_device(conn, fork)?;
        }
        // a database made by an earlier build of this layout may lack the view, or have the
        // capture triggers that build wrote
        conn.exec(IMPORTING_VIEW, &[])?;
        schema::upgrade(conn)?;
        crate::capture::refresh_all(conn)?;
        // a table changed in a way sync does not follow is left to the sync calls, which say
        // what to do: sync_init makes a device, and keeps doing so
        crate::apply::follow_schema(conn, crate::capture::Refuse::None)?;
        crate::capture::first_in_line(conn)?;
        let id = device_id(conn)?.ok_or_else(|| Error::new("device row missing"))?;
        Ok(Value::Text(hex(&id)))
    })
}

/// `sync_device_id()`: this device's id as hex, NULL before `sync_init()`.
pub fn sync_device_id(conn: &Conn, _args: &[Value]) -> Result<Value> {
    Ok(device_id(conn)?.map_or(Value::Null, |id| Value::Text(hex(&id))))
}
