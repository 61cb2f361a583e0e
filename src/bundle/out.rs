//! `sync_bundle_out(peer, path)`: packs every op the peer is not known to have into a bundle.
//!
//! Invariant: an op is left out only when a bundle *from* the peer said the peer had it, so a
//! bundle lost on the way loses nothing (the next one carries the same ops again). Ops are read
//! by (device, seq) ranges through indexes and streamed into the file, so the cost follows the
//! ops written, not the size of the log, and memory does not grow with them.

use std::collections::HashMap;

use crate::bundle::Writer;
use crate::db::{Conn, Error, Result};
use crate::identity::Fork;
use crate::log::chain::{Held, History};
use crate::log::clock;
use crate::op::{DeviceId, Hash};
use crate::schema::{DeviceIdx, SELF};
use crate::value::{hex, JsonObject, Value};

pub fn sync_bundle_out(
    conn: &Conn,
    args: &[Value],
    fork: Fork,
    follow: crate::capture::Follow,
) -> Result<Value> {
    crate::schema::require_initialized(conn)?;
    if conn.in_write_transaction() {
        // its ops may still roll back, and so may ops and clocks an import in it brought: a
        // peer must never hold an op (or believe this device holds one) that does not exist
        return Err(Error::new(
            "this connection holds a write transaction (it has written, or began with BEGIN \
             IMMEDIATE): ops that are not committed must not leave the device; COMMIT (or \
             ROLLBACK) first, then export",
        ));
    }
    crate::identity::check_file(conn, fork)?;
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
    if conn.is_autocommit() {
        // columns added since the last call are captured first (once the arguments are
        // known good), and committed before any op leaves (inside the caller's read
        // transaction they wait for the next call)
        follow(conn, crate::capture::Refuse::All)?;
    }
    // one read transaction: the clock in the manifest and the ops agree (an export writes
    // nothing: the hashes of this device's ops that the next export starts from are kept when
    // the peer's bundle says it has them, apply/)
    conn.savepoint("sync_bundle_out", || write(conn, peer, path))
}

fn write(conn: &Conn, peer: Option<DeviceId>, path: &str) -> Result<Value> {
    let held = Held::load(conn)?;
    let devices = &held.devices;
    let known = match peer.and_then(|p| devices.idx(&p)) {
        Some(idx) => clock::known_by(conn, idx)?,
        None => HashMap::new(),
    };
    let applied = clock::applied(conn)?;
    let history = held.history(conn, false);
    let me = devices.me();
    let mut writer = Writer::create(path, || crate::identity::ids(conn, &me))
        .map_err(|e| Error::new(format!("bundle {path:?}: {e}")))?;
    let mut heads: HashMap<DeviceIdx, (u64, Hash)> = HashMap::new();
    for device in devices.indexes() {
        let held = match device {
            SELF => applied.get(&SELF).copied().unwrap_or(0),
            _ => i64::MAX as u64, // every op stored, applied or not, up to the first one missing
        };
        let has = applied.get(&device).copied().unwrap_or(0);
        let (mut from, mut prev) = start(&history, device, known.get(&device), has)?;
        if let Some((_, base)) = devices.fork(device) {
            if base > from {
                // a second history's own ops start after its fork
                (from, prev) = (base, None);
            }
        }
        let mut next = from + 1;
        let mut last = None;
        history.each(device, from, held, |op| {
            if op.seq == from + 1 && from > 0 && prev.is_none() {
                // op `from` not here (an error): nothing above it goes
                prev = history.hash_at(device, from).unwrap_or_default();
            }
            if op.seq != next || from > 0 && prev.is_none() {
                next = 0; // the ops above a missing one are not relayed
                return Ok(());
            }
            next += 1;
            let seq = op.seq;
            let hash = writer.add(op, prev)?;
            prev = Some(hash);
            last = Some((seq, hash));
            Ok(())
        })?;
        if let Some(head) = last {
            heads.insert(device, head);
        }
    }

    let bundle_id = *uuid::Uuid::new_v4().as_bytes();
    let mut clock = Vec::with_capacity(applied.len());
    for (&device, &seq) in &applied {
        let hash = match heads.get(&device) {
            Some(&(at, hash)) if at == seq => hash,
            _ => history
                .hash_at(device, seq)?
                .ok_or_else(|| Error::new("a clock entry names no op"))?,
        };
        clock.push((devices.wire_id(device), seq, hash));
    }
    held.contexts.check()?;
    held.local.check()?;
    let ops = writer.count();
    let declared = crate::log::declared::Declarations::load(conn)?.encode(devices);
    let bytes = writer
        .finish(bundle_id, &me, &clock, declared)
        .map_err(|e| Error::new(format!("bundle {path:?}: {e}")))?;
    let mut json = JsonObject::new();
    json.field("bundle_id", &Value::Text(hex(&bundle_id)))
        .field("ops", &Value::Integer(ops as i64))
        .field("path", &Value::Text(path.into()))
        .field("bytes", &Value::Integer(bytes as i64));
    Ok(Value::Text(json.finish()))
}

/// The seq after which the ops of `device` go to a peer known to have `known` of it, when this
/// device has applied its ops up to `has`: what the peer has, unless the op it has there is
/// not the one held here (two histories under one id: the peer then gets the whole history
/// held here, and tells the two apart as it imports them). With it, the link of the op at that
/// seq when it was found the same.
fn start(
    history: &History,
    device: DeviceIdx,
    known: Option<&(u64, Option<Hash>)>,
    has: u64,
) -> Result<(u64, Option<Hash>)> {
    let Some(&(seq, Some(hash))) = known else {
        return Ok((known.map_or(0, |k| k.0), None));
    };
    if seq > has {
        return Ok((seq, None));
    }
    Ok(match history.hash_at(device, seq)? == Some(hash) {
        true => (seq, Some(hash)),
        false => (0, None),
    })
}

fn parse_device(s: &str) -> Option<DeviceId> {
    crate::op::device_id(&crate::value::unhex(s)?)
}
