//! `sync_status()`: what sync is doing, as one JSON object an app can show (a "3 changes not
//! yet sent to laptop" badge) and a person can read.
//!
//! Invariant: it writes nothing and says only what the metadata holds: what a peer has is what
//! the last bundle *from* that peer said (an export is not proof of delivery), so `lacks` counts
//! the ops this device holds that the peer has not confirmed.

use crate::db::{Conn, Result};
use crate::log::clock::{self, Clock, Devices};
use crate::schema::{DeviceIdx, SELF};
use crate::value::{hex, JsonObject, Value};

/// `sync_status()`.
pub fn sync_status(conn: &Conn, _args: &[Value]) -> Result<Value> {
    crate::schema::require_initialized(conn)?;
    conn.snapshot("sync_status", || status(conn))
}

fn status(conn: &Conn) -> Result<Value> {
    let devices = Devices::load(conn)?;
    let applied = clock::applied(conn)?;
    let count = |sql: &str| -> Result<i64> {
        Ok(conn
            .query_value(sql, &[])?
            .and_then(|v| v.as_i64())
            .unwrap_or(0))
    };
    let mut json = JsonObject::new();
    let stable: Clock = crate::log::stable::seqs(conn, &devices)?
        .into_iter()
        .collect();
    // the ids this database had before it forked (a copy, a backup put back): no database
    // writes under them any more unless another copy does
    let me = devices.id(SELF);
    let former: Vec<String> = (crate::identity::ids(conn, &me)?.iter().skip(1))
        .map(|id| format!("\"{}\"", hex(id)))
        .collect();
    json.field("device_id", &Value::Text(hex(&me)))
        .raw("former_ids", &format!("[{}]", former.join(",")))
        .raw("clock", &clock::clock_json(&devices, &applied))
        .raw("stable", &clock::clock_json(&devices, &stable));

    let mut log = JsonObject::new();
    // (counted: compaction removes ops below the highest seq)
    let local = count("SELECT count(*) FROM main._sync_ops")?;
    let received = count("SELECT count(*) FROM main._sync_remote")?;
    log.field("ops", &Value::Integer(local + received))
        .field("local_ops", &Value::Integer(local))
        .field("received_ops", &Value::Integer(received))
        .field("bytes", &log_bytes(conn))
        .field(
            "database_bytes",
            &Value::Integer(count(
                "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size",
            )?),
        );
    json.raw("log", &log.finish());

    json.raw("peers", &peers(conn, &devices, &applied)?);
    json.raw("pending", &pending(conn, &devices, &applied)?);

    let mut waiting = Vec::new();
    let mut stmt = conn.prepare("SELECT table_name, ops, reason FROM main.sync_waiting")?;
    while let Some(row) = stmt.step()? {
        let mut one = JsonObject::new();
        one.field("table", &row.column(0)?)
            .field("ops", &row.column(1)?)
            .field("reason", &row.column(2)?);
        waiting.push(one.finish());
    }
    drop(stmt);
    json.raw("waiting_for_schema", &format!("[{}]", waiting.join(",")));

    let open = |kind: &str| {
        count(&format!(
            "SELECT count(*) FROM main.sync_conflicts WHERE NOT resolved AND kind = '{kind}'"
        ))
    };
    json.field("open_conflicts", &Value::Integer(open("concurrent")?))
        .field(
            "held_out_rows",
            &Value::Integer(crate::schema::held_out_count(conn)?),
        );
    // writes a compaction point decided against (apply/lost.rs; the table is made by the first
    // import of a build that has it)
    let made = "SELECT 1 FROM main.sqlite_master WHERE name = '_sync_lost'";
    let lost = match conn.query_value(made, &[])? {
        Some(_) => count("SELECT count(*) FROM main._sync_lost")?,
        None => 0,
    };
    json.field("lost_writes", &Value::Integer(lost));
    Ok(Value::Text(json.finish()))
}

/// Per device this one knows (but itself and its own earlier ids' later histories): whether it
/// was forgotten, whether a bundle from it was imported here, what it last said it has, and how
/// many ops this device holds beyond that (not counting its own).
fn peers(conn: &Conn, devices: &Devices, applied: &Clock) -> Result<String> {
    let mut out = Vec::new();
    for idx in devices.indexes() {
        if idx == SELF || devices.fork(idx).is_some() {
            continue;
        }
        let said: Option<Clock> = clock::heard_from(conn, idx)?
            .map(|said| said.into_iter().map(|(d, (seq, _))| (d, seq)).collect());
        let said = said.as_ref();
        // (a device has its own ops)
        let lacks: u64 = (applied.iter().filter(|(&d, _)| d != idx))
            .map(|(d, &seq)| {
                let has = said.and_then(|s| s.get(d)).copied().unwrap_or(0);
                seq.saturating_sub(has)
            })
            .sum();
        let mut one = JsonObject::new();
        one.field("device_id", &Value::Text(hex(&devices.id(idx))))
            // (sync_forget: it no longer holds back what every device has)
            .raw(
                "forgotten",
                ["false", "true"][usize::from(devices.is_forgotten(idx))],
            );
        // (a forgotten device is not waited for: what it lacks is not counted)
        let lacks = match devices.is_forgotten(idx) {
            true => Value::Null,
            false => Value::Integer(lacks as i64),
        };
        match said {
            Some(said) => one
                .raw("heard_from", "true")
                .raw("has", &clock::clock_json(devices, said))
                .field("lacks", &lacks),
            // known only through others: what it has is not known here
            None => one
                .raw("heard_from", "false")
                .raw("has", "null")
                .raw("lacks", "null"),
        };
        out.push(one.finish());
    }
    Ok(format!("[{}]", out.join(",")))
}

/// Ops received whose causal past has not all arrived: per device, how many, their seqs, and
/// the seqs of that device still missing below them (none: they wait for other devices' ops).
fn pending(conn: &Conn, devices: &Devices, applied: &Clock) -> Result<String> {
    let mut stmt = conn.prepare(
        "SELECT device, count(*), min(seq), max(seq) FROM main._sync_remote
         WHERE applied = 0 GROUP BY device",
    )?;
    let (mut total, mut by_device) = (0, JsonObject::new());
    while let Some(row) = stmt.step()? {
        let idx = DeviceIdx(row.column_int(0));
        let (ops, from, to) = (row.column_int(1), row.column_int(2), row.column_int(3));
        total += ops;
        let has = applied.get(&idx).copied().unwrap_or(0) as i64;
        let mut one = JsonObject::new();
        one.field("ops", &Value::Integer(ops))
            .field("from_seq", &Value::Integer(from))
            .field("to_seq", &Value::Integer(to));
        match from > has + 1 {
            true => one.raw("missing", &format!("[{}, {}]", has + 1, from - 1)),
            false => one.raw("missing", "null"),
        };
        by_device.raw(&hex(&devices.id(idx)), &one.finish());
    }
    let mut json = JsonObject::new();
    json.field("ops", &Value::Integer(total))
        .raw("devices", &by_device.finish());
    Ok(json.finish())
}

/// The bytes the sync metadata takes (tables and indexes named `_sync_*`), where SQLite was
/// built with the `dbstat` table; NULL where it was not.
fn log_bytes(conn: &Conn) -> Value {
    conn.query_value(
        "SELECT sum(pgsize) FROM dbstat('main') WHERE name LIKE '\\_sync\\_%' ESCAPE '\\'",
        &[],
    )
    .ok()
    .flatten()
    .unwrap_or(Value::Null)
}
