//! `sync_folder_in(dir)`: imports every bundle in a folder shared by many devices, in any order.
//!
//! Invariant: each bundle is imported as `sync_bundle_in` imports it (checked whole, in a
//! savepoint of its own); a file that is not a readable, well-formed bundle (a copy the folder's
//! sync tool is still writing, a stray file) changes nothing and is listed, and the others still
//! import; ops whose causal past is in a bundle not there yet wait as pending. An error of the
//! database itself (busy, full), or a refusal meant for the whole call (this device was
//! forgotten), stops the call, and then nothing it imported stays.

use crate::bundle::folder::{bundle_files, folder_arg, written_by};
use crate::db::{Conn, Error, Result};
use crate::value::{JsonObject, Value};

use super::bundle_in::{import_bundle, pending_count};
use super::fork::fork;

/// `sync_folder_in(dir)`; `after` runs once, after every bundle, as `sync_bundle_in`'s does.
pub fn sync_folder_in(conn: &Conn, args: &[Value], after: super::After) -> Result<Value> {
    let dir = folder_arg(args)?;
    crate::identity::require_device(conn, fork)?;
    let me = crate::schema::device_id(conn)?.ok_or_else(|| Error::new("device row missing"))?;
    let me: crate::op::DeviceId = me.try_into().map_err(|_| Error::new("device id"))?;
    // (in a savepoint of its own, so that a call that stops changes nothing: the bundles
    // imported before a refusal that is for the whole call are undone with it)
    let after = super::outside_a_transaction(conn).then_some(after);
    let (counts, compacted) = conn.savepoint("sync_folder_in", || {
        let open_before = open_records(conn)?;
        let mut counts = import_each(conn, dir, &me)?;
        // (a record that a later bundle of the call closed again is not counted: a cell a peer
        // renamed in six bundles, against an edit here, is one conflict open, not six)
        counts.conflicts = (open_records(conn)?.difference(&open_before)).count() as u64;
        let compacted = match after {
            Some(after) => after(conn)?,
            None => None,
        };
        Ok((counts, compacted))
    })?;
    let mut json = JsonObject::new();
    let list = crate::value::json_string_list;
    json.field("imported", &Value::Integer(counts.imported))
        .field("imported_before", &Value::Integer(counts.before))
        .field("own", &Value::Integer(counts.own))
        .raw("skipped", &format!("[{}]", counts.skipped.join(",")))
        .field("applied_count", &Value::Integer(counts.applied as i64))
        .field("conflict_count", &Value::Integer(counts.conflicts as i64))
        .field(
            "held_out_count",
            &Value::Integer(crate::schema::held_out_count(conn)?),
        )
        .field("duplicate_count", &Value::Integer(counts.duplicates as i64))
        .field(
            "pending_count",
            &Value::Integer(pending_count(conn)? as i64),
        )
        .field("discarded_count", &Value::Integer(counts.discarded as i64))
        .field("lost_count", &Value::Integer(counts.lost as i64))
        .raw("waiting_for_schema", &list(&counts.missing))
        .raw("declared_otherwise", &list(&counts.otherwise))
        .raw("compacted", compacted.as_deref().unwrap_or("null"));
    Ok(Value::Text(json.finish()))
}

/// The ids of the conflict records open now (kind `concurrent`).
fn open_records(conn: &Conn) -> Result<crate::hashed::HashSet<Vec<u8>>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT id FROM main._sync_conflicts WHERE state = {}",
        crate::schema::OPEN
    ))?;
    let mut open = crate::hashed::HashSet::default();
    while let Some(row) = stmt.step()? {
        open.insert(row.column_blob(0)?.unwrap_or_default().to_vec());
    }
    Ok(open)
}

/// What `sync_folder_in` counts over the bundles it imported (as `sync_bundle_in` reports each).
#[derive(Default)]
struct Counts {
    /// bundles imported, imported before, written by this device
    imported: i64,
    before: i64,
    own: i64,
    applied: u64,
    /// the conflict records open at the end that were not at the start
    conflicts: u64,
    duplicates: u64,
    discarded: u64,
    /// writes listed in `sync_lost`
    lost: u64,
    /// the tables and columns the bundles' ops name that this database lacks, each once
    missing: Vec<String>,
    /// the tables a device declares otherwise than this one, each once
    otherwise: Vec<String>,
    /// the files skipped, as JSON objects
    skipped: Vec<String>,
}

/// Imports every bundle of folder `dir` that device `me` did not write.
fn import_each(conn: &Conn, dir: &str, me: &crate::op::DeviceId) -> Result<Counts> {
    let mut counts = Counts::default();
    let once = |list: &mut Vec<String>, more: &[String]| {
        for name in more {
            if !list.contains(name) {
                list.push(name.clone());
            }
        }
    };
    for path in bundle_files(dir)? {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if written_by(&name, me) {
            counts.own += 1;
            continue;
        }
        let arg = Value::Text(path.to_string_lossy().into_owned());
        match import_bundle(conn, &arg, None) {
            Ok(report) if report.outcome.skipped => counts.before += 1,
            Ok(report) => {
                let outcome = &report.outcome;
                counts.imported += 1;
                counts.applied += outcome.applied;
                counts.duplicates += outcome.duplicates;
                counts.discarded += outcome.discarded;
                counts.lost += outcome.lost;
                once(&mut counts.missing, &report.missing);
                once(&mut counts.otherwise, &outcome.otherwise);
            }
            // (this device was forgotten: what to do is for the whole call)
            Err(e) if e.is_of_the_database() || e.code == crate::log::forgotten::TOLD => {
                return Err(e)
            }
            Err(e) => {
                let mut one = JsonObject::new();
                one.field("file", &Value::Text(name.into_owned()))
                    .field("error", &Value::Text(e.message.into()));
                counts.skipped.push(one.finish());
            }
        }
    }
    Ok(counts)
}
