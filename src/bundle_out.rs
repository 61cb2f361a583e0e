//! `sync_bundle_out(peer, path)`: packs every op the peer is not known to have into a bundle.
//!
//! Invariant: an op is left out only when a bundle *from* the peer said the peer had it, so a
//! bundle lost on the way loses nothing (the next one carries the same ops again). Ops are read
//! by (device, seq) ranges through indexes and streamed into the file, so the cost follows the
//! ops written, not the size of the log, and memory does not grow with them.

use crate::bundle::Writer;
use crate::clock::{self, Clock, Contexts, Devices};
use crate::db::{Conn, Error, Result};
use crate::log::{self, LocalOps, SELF};
use crate::op::{DeviceId, Op};
use crate::remote::{self, Forms};
use crate::value::{hex, JsonObject, Value};

pub fn sync_bundle_out(conn: &Conn, args: &[Value]) -> Result<Value> {
    log::require_initialized(conn)?;
    if conn.in_write_transaction() {
        // its ops may still roll back, and so may ops and clocks an import in it brought: a
        // peer must never hold an op (or believe this device holds one) that does not exist
        return Err(Error::new(
            "this connection holds a write transaction (it has written, or began with BEGIN \
             IMMEDIATE): ops that are not committed must not leave the device; COMMIT (or \
             ROLLBACK) first, then export",
        ));
    }
    crate::identity::check_file(conn)?;
    let peer: Option<DeviceId> =
        match &args[0] {
            Value::Null => None,
            Value::Text(s) => Some(parse_device(s).ok_or_else(|| {
                Error::new(format!("peer {s:?} is not a device id (32 hex digits)"))
            })?),
            other => {
                return Err(Error::new(format!(
                    "expects the peer's device id as TEXT or NULL, got {}",
                    other.type_name()
                )))
            }
        };
    let path = args[1]
        .as_text()
        .ok_or_else(|| Error::new("expects the bundle's path as TEXT"))?;
    // one read transaction: the clock in the manifest and the ops agree
    conn.savepoint("sync_bundle_out", || write(conn, peer, path))
}

fn write(conn: &Conn, peer: Option<DeviceId>, path: &str) -> Result<Value> {
    let devices = Devices::load(conn)?;
    let known = match peer.and_then(|p| devices.idx(&p)) {
        Some(idx) => clock::known_by(conn, idx)?,
        None => Clock::new(),
    };
    let applied = clock::applied(conn)?;
    let contexts = Contexts::load(conn)?;
    let local = LocalOps::load(conn)?;
    let me = devices.me();
    let mut writer =
        Writer::create(path, &me).map_err(|e| Error::new(format!("bundle {path:?}: {e}")))?;

    let from = known.get(&SELF).copied().unwrap_or(0);
    let upto = applied.get(&SELF).copied().unwrap_or(0);
    local.each(conn, from, upto, |op| {
        let op = Op {
            device: me,
            seq: op.seq,
            lamport: local.lamport(op.seq),
            deps: remote::deps_of(&contexts, &devices, SELF, op.seq),
            table: op.table,
            kind: op.kind,
            key: op.key,
            cells: op.cells,
        };
        writer.add(op)
    })?;

    let forms = Forms::load(conn)?;
    let mut received = conn.prepare(&format!(
        "SELECT r.seq, {} FROM main._sync_remote r WHERE r.device = ?1 AND r.seq > ?2 ORDER BY r.seq",
        remote::columns("r")
    ))?;
    for device in devices.indexes().filter(|&d| d != SELF) {
        let from = known.get(&device).copied().unwrap_or(0);
        received.bind_all(&[Value::Integer(device), Value::Integer(from as i64)])?;
        let id = (device, devices.id(device));
        while received.step()? {
            let seq = received.column_int(0) as u64;
            let row = [
                received.column(1)?,
                received.column(2)?,
                received.column(3)?,
            ];
            writer.add(forms.op(id, seq, &row, Some((&contexts, &devices)))?)?;
        }
        received.reset();
    }
    drop(received);

    let bundle_id = *uuid::Uuid::new_v4().as_bytes();
    let clock: Vec<(DeviceId, u64)> = applied.iter().map(|(&d, &s)| (devices.id(d), s)).collect();
    let ops = writer.count();
    let bytes = writer
        .finish(bundle_id, &me, &clock)
        .map_err(|e| Error::new(format!("bundle {path:?}: {e}")))?;
    let mut json = JsonObject::new();
    json.field("bundle_id", &Value::Text(hex(&bundle_id)))
        .field("ops", &Value::Integer(ops as i64))
        .field("path", &Value::Text(path.into()))
        .field("bytes", &Value::Integer(bytes as i64));
    Ok(Value::Text(json.finish()))
}

fn parse_device(s: &str) -> Option<DeviceId> {
    crate::value::unhex(s)?.try_into().ok()
}
