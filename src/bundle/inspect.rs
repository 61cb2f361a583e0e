//! `sync_bundle_info(path or BLOB)`: what a bundle holds, read without importing it.
//!
//! Invariant: it writes nothing, and checks the bundle as an import would (schema, manifest, every
//! op's hash), so a bundle it describes is one `sync_bundle_in` accepts as well formed.

use std::collections::BTreeMap;

use crate::db::{Conn, Result};
use crate::log::clock::{self, Devices};
use crate::op::DeviceId;
use crate::value::{hex, JsonObject, Value};

use super::open_argument;

/// `sync_bundle_info(bundle)`: a JSON object with `bundle_id`, `format`, `source_device_id`,
/// `ops`, `bytes`, `clock` (the writer's: per device id, the highest seq it holds of it),
/// `histories` (per device id the writer holds as more than one history: each one's seq and
/// link), `devices` (per device whose
/// ops it carries: how many, the lowest and the highest seq), `tables` (ops per table), and,
/// in a database that is a device, `imported_here` and `new_here` (its ops this device has not
/// applied yet).
pub fn sync_bundle_info(conn: &Conn, args: &[Value]) -> Result<Value> {
    let (label, mut reader) = open_argument(&args[0])?;
    let bytes = match &args[0] {
        Value::Blob(b) => b.len() as u64,
        Value::Text(path) => std::fs::metadata(path).map_or(0, |m| m.len()),
        _ => 0,
    };
    let mut devices: BTreeMap<DeviceId, (u64, u64, u64)> = BTreeMap::new();
    let mut tables: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen: Vec<(DeviceId, u64)> = Vec::new();
    reader
        .each_op(|op, _, form| {
            let entry = devices.entry(op.device).or_insert((0, u64::MAX, 0));
            *entry = (entry.0 + 1, entry.1.min(op.seq), entry.2.max(op.seq));
            *tables.entry(form.table.clone()).or_insert(0) += 1;
            seen.push((op.device, op.seq));
            Ok(())
        })
        .map_err(|e| crate::db::Error::new(format!("{label}: {e}")))?;
    let manifest = &reader.manifest;
    let mut json = JsonObject::new();
    json.field("bundle_id", &Value::Text(hex(&manifest.bundle_id)))
        .field("format", &Value::Integer(manifest.format))
        .field("source_device_id", &Value::Text(hex(&manifest.source)))
        .field("ops", &Value::Integer(manifest.op_count as i64))
        .field("bytes", &Value::Integer(bytes as i64));
    // (a device its writer holds as more than one history, a backup put back or a copy, has
    // an entry per history under one id: the clock shows the highest, `histories` each)
    let mut by_id: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for (device, seq, link) in &manifest.clock {
        by_id
            .entry(hex(device))
            .or_default()
            .push((*seq, hex(link)));
    }
    let mut clock_json = JsonObject::new();
    let mut histories = JsonObject::new();
    for (device, entries) in &mut by_id {
        entries.sort();
        let top = entries.last().map_or(0, |e| e.0);
        clock_json.field(device, &Value::Integer(top as i64));
        if entries.len() > 1 {
            let each: Vec<String> = (entries.iter())
                .map(|(seq, link)| {
                    let mut one = JsonObject::new();
                    one.field("seq", &Value::Integer(*seq as i64))
                        .field("link", &Value::Text(link.clone()));
                    one.finish()
                })
                .collect();
            histories.raw(device, &format!("[{}]", each.join(",")));
        }
    }
    json.raw("clock", &clock_json.finish())
        .raw("histories", &histories.finish());
    let mut by_device = JsonObject::new();
    for (device, (ops, from, to)) in &devices {
        let mut one = JsonObject::new();
        one.field("ops", &Value::Integer(*ops as i64))
            .field("from_seq", &Value::Integer(*from as i64))
            .field("to_seq", &Value::Integer(*to as i64));
        by_device.raw(&hex(device), &one.finish());
    }
    json.raw("devices", &by_device.finish());
    let mut by_table = JsonObject::new();
    for (table, ops) in &tables {
        by_table.field(table, &Value::Integer(*ops as i64));
    }
    json.raw("tables", &by_table.finish());
    if crate::schema::is_initialized(conn)? {
        crate::schema::require_initialized(conn)?;
        let imported = crate::schema::imported_before(conn, &manifest.bundle_id)?;
        let known = Devices::load(conn)?;
        let applied = clock::applied(conn)?;
        let new = (seen.iter())
            .filter(|(device, seq)| {
                let has = known.idx(device).and_then(|i| applied.get(&i)).copied();
                *seq > has.unwrap_or(0)
            })
            .count();
        json.raw("imported_here", if imported { "true" } else { "false" })
            .field("new_here", &Value::Integer(new as i64));
    }
    Ok(Value::Text(json.finish()))
}
