//! `sync_compact()`: where this device lets go of history that every device has (DESIGN 5.4).
//!
//! It writes a floor op (log/floors.rs): this device's stable clock (log/stable.rs), an op that
//! travels like any other, so every device knows which ops were written behind it and merges
//! them alike. It writes one only when an op other than a floor op became stable since its last
//! floor op (so floor ops do not beget floor ops).
//!
//! Imports compact too, in their own transaction, once `compact_every` ops were applied since
//! the last compaction (`after_import`).
//!
//! Removing the ops below a floor op that no row needs any more is `remove.rs` (`sync_compact`
//! says how many it removed), and a device that lacks removed ops takes them as applied from a
//! bundle's base (apply/removed.rs). An op of a second history of a device (a backup put back
//! and written on) that arrives where this device removed ops cannot be told from the op
//! removed, so a compaction point decides the device's history below it (apply/behind.rs),
//! alike on every device that holds it, and what that drops is told (apply/lost.rs). Where
//! `_sync_state` `compact_removes` is 0 (tests that merge with every op at hand), floor ops are
//! written and nothing is removed.
//!
//! Invariant: a floor op's floor is in its causal past (the stable clock never exceeds what
//! this device holds), and this device's floor ops only grow.

mod remove;
mod retire;
mod trim;

use crate::db::{Conn, Error, Result};
use crate::identity::Fork;
use crate::log::chain::Held;
use crate::log::floors::{self, Floor, Floors};
use crate::log::{self, stable};
use crate::schema::SELF;
use crate::value::Value;

/// `sync_compact()`: `{"floor": seq}`, the floor op written, or `{"floor": null}`.
pub fn sync_compact(conn: &Conn, _args: &[Value], fork: Fork) -> Result<Value> {
    crate::identity::require_device(conn, fork)?;
    if conn.is_readonly() {
        return Err(Error::new(
            "the database is open read-only: compact from a connection that can write",
        ));
    }
    // (inside a statement that writes, outside BEGIN, the savepoint below says what to do)
    if conn.in_write_transaction() && !conn.is_autocommit() {
        return Err(Error::new(
            "it writes a compaction point, which cannot join a transaction that has written \
             (or that began with BEGIN IMMEDIATE): COMMIT (or ROLLBACK) first, then call it",
        ));
    }
    let (floor, removed) = conn.savepoint("sync_compact", || {
        let (floor, removed) = compact(conn)?;
        // (where it wrote nothing, it still writes nothing: a BEGIN it ran in can export)
        if floor.is_some() || removed.is_some_and(|n| n > 0) {
            crate::schema::set_state(conn, "compacted_at", applied_total(conn)?)?;
        }
        Ok((floor, removed))
    })?;
    Ok(Value::Text(result_json(floor, removed)))
}

/// `{"floor": <seq or null>, "removed": <n>}` (no `removed` where removal is off).
fn result_json(floor: Option<u64>, removed: Option<u64>) -> String {
    let floor = floor.map_or("null".to_string(), |seq| seq.to_string());
    let removed = removed.map_or(String::new(), |n| format!(",\"removed\":{n}"));
    format!("{{\"floor\":{floor}{removed}}}")
}

/// The ops applied here after an import that start the next automatic compaction, unless
/// `_sync_state` `compact_every` says otherwise (0: never).
pub const COMPACT_EVERY: u64 = 10_000;

/// The automatic policy, at the end of `sync_bundle_in` or `sync_folder_in`, in the savepoint
/// of the import (one transaction with it): where at least `compact_every` ops were applied
/// here (own ones included) since the last compaction, compacts as `sync_compact()` does
/// (where that fails, the import stands).
/// Not where a device last heard of from release 0.1.0 would refuse the point (as
/// `sync_compact` is). Returns what it did, as `sync_compact()` says it, where it compacted.
pub fn after_import(conn: &Conn) -> Result<Option<String>> {
    // (a whole number, as INTEGER, REAL or TEXT; anything else, the default)
    let every = conn
        .query_value(
            "SELECT CAST(value AS INTEGER) FROM main._sync_state WHERE name = 'compact_every'
             AND CAST(value AS INTEGER) >= 0 AND CASE typeof(value)
               WHEN 'integer' THEN 1
               WHEN 'real' THEN value = CAST(value AS INTEGER)
               WHEN 'text' THEN trim(value) = CAST(CAST(value AS INTEGER) AS TEXT)
             END",
            &[],
        )?
        .and_then(|v| v.as_i64())
        .map_or(COMPACT_EVERY, |n| n as u64);
    let total = applied_total(conn)?;
    let mark = crate::schema::state(conn, "compacted_at")?;
    if every == 0 || total < mark.saturating_add(every) || refuse_old_readers(conn).is_err() {
        return Ok(None);
    }
    // (in a savepoint of its own: where it fails, the import stands, and sync never stops for
    // it; `sync_compact()` says why when called)
    let done = conn.savepoint("sync_compact_auto", || {
        let (floor, removed) = compact(conn)?;
        crate::schema::set_state(conn, "compacted_at", applied_total(conn)?)?;
        Ok(result_json(floor, removed))
    });
    Ok(done.ok())
}

/// How many ops were applied here, own ones included (the sum of the applied clock).
fn applied_total(conn: &Conn) -> Result<u64> {
    let remote = conn.query_value("SELECT coalesce(sum(seq), 0) FROM main._sync_clock", &[])?;
    let remote = remote.and_then(|v| v.as_i64()).unwrap_or(0).max(0) as u64;
    Ok(remote + log::last_local_seq(conn)?.max(0) as u64)
}

/// Writes a floor op where the stable clock grew, then removes what it can; the floor op's
/// seq, and how many ops went (None: removal is off). (The caller sets `compacted_at`, where
/// the next automatic compaction counts from.)
fn compact(conn: &Conn) -> Result<(Option<u64>, Option<u64>)> {
    let floor = write_floor(conn)?;
    let removed = match crate::schema::removal_on(conn)? {
        true => match Floors::load(conn)?.last_of(SELF) {
            Some(last) => Some(remove::remove_below(conn, last)?),
            None => Some(0),
        },
        false => None,
    };
    Ok((floor, removed))
}

/// Writes a floor op when the stable clock grew since this device's last one; its seq.
fn write_floor(conn: &Conn) -> Result<Option<u64>> {
    refuse_old_readers(conn)?;
    let held = Held::load(conn)?;
    let history = held.history(conn, true);
    let stable = stable::now(conn, &history, &held.devices, |_, _| None)?;
    let mut floors = Floors::load(conn)?;
    // new: an op that is not a floor op is stable now and was not below the last floor
    let last = floors.last_of(SELF);
    let mut grew = false;
    for (&d, &(s, _)) in &stable {
        let e = last.map_or(0, |f| {
            f.entries
                .iter()
                .filter(|e| e.0 == d)
                .map(|e| e.1)
                .max()
                .unwrap_or(0)
        });
        if s > e && s - e > floors.count_between(d, e, s) {
            grew = true;
            break;
        }
    }
    if !grew {
        return Ok(None); // (having written nothing: a BEGIN it ran in can still export)
    }
    crate::schema::lock_for_writing(conn)?;
    crate::apply::fold_local(conn)?;
    let mut entries: Vec<_> = (stable.iter())
        .map(|(&d, &(s, link))| (held.devices.wire_id(d), s, link))
        .collect();
    // (each history but its device's first named by its id too: log/floors.rs `HISTORY`)
    let histories = (stable.iter()).filter(|(&d, _)| held.devices.fork(d).is_some());
    entries.extend(histories.map(|(&d, &(s, _))| (floors::HISTORY, s, held.devices.id(d))));
    let next: Vec<_> = stable.iter().map(|(&d, &(s, _))| (d, s)).collect();
    let retires = retire::retirable(conn, &held, &floors, &next)?;
    match &retires {
        Some(floors::Retires::UpTo(upto)) => entries.push((floors::RETIRES, *upto, [0; 16])),
        Some(floors::Retires::Each(each)) => {
            entries.extend(each.iter().map(|&seq| (floors::RETIRES_EACH, seq, [0; 16])));
        }
        None => {}
    }
    entries.sort();
    let shape = floor_shape(conn)?;
    log::widen(conn, 1)?;
    conn.exec(
        "INSERT INTO main._sync_ops(shape, kind, mask, v0) VALUES (?1, 0, NULL, ?2)",
        &[Value::Integer(shape), Value::Blob(floors::encode(&entries))],
    )?;
    let seq = log::last_local_seq(conn)? as u64;
    // a floor op is on no row: the local ops before it were folded just now, so it is too
    if crate::schema::state(conn, "folded")? + 1 == seq {
        crate::schema::set_state(conn, "folded", seq)?;
    }
    floors.add(
        conn,
        Floor {
            op: (SELF, seq),
            entries: next,
        },
    )?;
    if let Some(retires) = retires {
        floors.retire(conn, (SELF, seq), retires)?;
    }
    if floors.len() > 1 {
        crate::apply::settle_behind_floors(conn)?;
    }
    Ok(Some(seq))
}

/// The shape floor ops are written in: table `_sync_floor`, never enabled, one BLOB column.
fn floor_shape(conn: &Conn) -> Result<i64> {
    let find = "SELECT s.id FROM main._sync_shapes s JOIN main._sync_tables t ON t.id = s.table_id
                WHERE t.name = ?1";
    let name = Value::Text(floors::TABLE.into());
    if let Some(id) = conn.query_value(find, std::slice::from_ref(&name))? {
        return id
            .as_i64()
            .ok_or_else(|| Error::new("damaged shape record in _sync_shapes"));
    }
    let table = conn.insert(
        "INSERT INTO main._sync_tables(name, enabled) VALUES (?1, 0)",
        std::slice::from_ref(&name),
    )?;
    let shape = log::Shape {
        columns: vec![floors::COLUMN.into()],
        pk: vec![0],
        types: vec!["BLOB".into()],
    };
    let (columns, pk) = shape.encode();
    conn.insert(
        "INSERT INTO main._sync_shapes(table_id, columns, pk) VALUES (?1, ?2, ?3)",
        &[Value::Integer(table), columns, pk],
    )
}

/// A device whose latest bundle here was written by release 0.1.0 (format 4) would refuse every
/// bundle holding a floor op: compaction waits until it upgrades.
fn refuse_old_readers(conn: &Conn) -> Result<()> {
    let old = conn.query_value(
        "SELECT substr(name, 8) FROM main._sync_state WHERE name LIKE 'format %' AND value < 5
         LIMIT 1",
        &[],
    )?;
    let Some(idx) = old.and_then(|v| v.as_text().and_then(|t| t.parse::<i64>().ok())) else {
        return Ok(());
    };
    let id = conn.query_value(
        "SELECT lower(hex(id)) FROM main._sync_devices WHERE idx = ?1",
        &[Value::Integer(idx)],
    )?;
    let id = id
        .and_then(|v| v.as_text().map(str::to_string))
        .unwrap_or_default();
    Err(Error::new(format!(
        "device {id} last sent a bundle of release 0.1.0, which refuses bundles \
         holding a compaction point: upgrade it (and import a bundle from it) first"
    )))
}
