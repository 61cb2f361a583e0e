//! `sync_bundle_in(path or BLOB)`: a bundle checked whole, then imported in one savepoint, and
//! what the import did as JSON.

use crate::bundle::{open_argument, Prev, Reader};
use crate::db::{Conn, Error, Result};
use crate::log::{self, SyncedTable};
use crate::schema::SELF;
use crate::value::{hex, JsonObject, Value};

use super::carried_points::CarriedPoints;
use super::checks::{missing_columns, validate, validate_form};
use super::fork::fork;
use super::import::{Import, Outcome};

/// `sync_bundle_in(path or BLOB)`; `after` runs in the import's transaction at its end, where
/// the caller has no transaction open and the connection can write (`After`).
pub fn sync_bundle_in(conn: &Conn, args: &[Value], after: super::After) -> Result<Value> {
    if !matches!(args[0], Value::Text(_) | Value::Blob(_)) {
        open_argument(&args[0])?; // the error that names what it expects
    }
    crate::identity::require_device(conn, fork)?;
    // refused inside a statement that writes, also for a bundle imported before (which
    // writes nothing): the same call must not work only sometimes
    let after = super::outside_a_transaction(conn).then_some(after);
    conn.savepoint("sync_bundle_in", || Ok(()))?;
    let report = import_bundle(conn, &args[0], after)?;
    Ok(Value::Text(report.json(conn)?))
}

/// What one import did.
pub(super) struct Report {
    pub(super) manifest: crate::bundle::Manifest,
    pub(super) outcome: Outcome,
    /// the columns and tables its ops name that this database does not have or capture yet
    pub(super) missing: Vec<String>,
}

impl Report {
    /// The JSON object `sync_bundle_in` returns.
    fn json(&self, conn: &Conn) -> Result<String> {
        let (manifest, outcome) = (&self.manifest, &self.outcome);
        let mut json = JsonObject::new();
        json.field("bundle_id", &Value::Text(hex(&manifest.bundle_id)))
            .field("source_device_id", &Value::Text(hex(&manifest.source)))
            .field(
                "total_operations",
                &Value::Integer(manifest.op_count as i64),
            )
            .field("applied_count", &Value::Integer(outcome.applied as i64))
            .field("conflict_count", &Value::Integer(outcome.conflicts as i64))
            .field(
                "held_out_count",
                &Value::Integer(crate::schema::held_out_count(conn)?),
            )
            .field(
                "duplicate_count",
                &Value::Integer(outcome.duplicates as i64),
            )
            .raw("skipped", if outcome.skipped { "true" } else { "false" })
            .field(
                "pending_count",
                &Value::Integer(pending_count(conn)? as i64),
            )
            .field("discarded_count", &Value::Integer(outcome.discarded as i64))
            .field("lost_count", &Value::Integer(outcome.lost as i64))
            .raw(
                "waiting_for_schema",
                &crate::value::json_string_list(&self.missing),
            )
            .raw(
                "declared_otherwise",
                &crate::value::json_string_list(&outcome.otherwise),
            )
            .raw("compacted", outcome.compacted.as_deref().unwrap_or("null"));
        Ok(json.finish())
    }
}

/// Imports the bundle `arg` names (a path) or holds (a BLOB), on a device.
pub(super) fn import_bundle(
    conn: &Conn,
    arg: &Value,
    after: Option<super::After>,
) -> Result<Report> {
    let (label, mut reader) = open_argument(arg)?;
    // (a database another connection holds is not the bundle's fault: said so, with what to do)
    let in_bundle = |e: Error| match e.is_busy() {
        true => e.about(&format!(
            "importing {label}: another connection holds the database (nothing was imported: \
             call it again once that connection commits; PRAGMA busy_timeout = 5000 on every \
             connection makes a call wait for it)"
        )),
        false => e.about(&label),
    };
    // columns added since the last call are captured first (follow.rs), once the file is
    // known to be a bundle: a call refused for its argument changes nothing
    super::follow_schema(conn, crate::capture::Refuse::All)?;
    let tables = log::synced_tables(conn)?;
    let me = crate::schema::device_id(conn)?.ok_or_else(|| Error::new("device row missing"))?;
    let manifest = reader.manifest.clone();
    let skipped = Outcome {
        skipped: true,
        ..Outcome::default()
    };
    // columns the bundle's ops write that this database does not have yet (their values are
    // kept with the ops until the column is added: follow.rs)
    let mut missing: Vec<String> = Vec::new();
    let outcome = if crate::schema::imported_before(conn, &manifest.bundle_id)? {
        skipped
    } else {
        let (source, forgot) = (&manifest.source, &manifest.forgotten);
        log::forgotten::check_import(&me, source, forgot).map_err(in_bundle)?;
        let mut checked_forms = Vec::new();
        // what the bundle says of ops of this device's id, (seq, hash): its source's clock,
        // deps, and the last of each run of such ops in it (the hash of an op stands for the
        // ops before it). When the source knows ops of this id beyond this log, or other ops
        // than this log's under its seqs, this database was put back to an older backup (or
        // rolled back), or copied and written before the extension was loaded on it: it forks
        // before it imports (identity.rs), and its ops become a history of its old id.
        let mut claims: Vec<(u64, crate::op::Hash)> = (manifest.clock.iter())
            .filter(|(id, _, _)| id[..] == me[..])
            .map(|&(_, seq, hash)| (seq, hash))
            .collect();
        let mut own_run = false;
        let mut points = CarriedPoints::default();
        reader
            .each_op(|op, number, form| {
                if checked_forms.len() <= number {
                    validate_form(form)?;
                    for column in missing_columns(form, &tables) {
                        if !missing.contains(&column) {
                            missing.push(column);
                        }
                    }

                    checked_forms.push(number);
                }
                let own = op.device[..] == me[..];
                if let (true, Some(hash)) = (own, op.hash) {
                    if own_run && op.prev == Prev::Follows {
                        claims.pop();
                    }
                    claims.push((op.seq, hash));
                }
                own_run = own;
                for dep in op.deps.iter().filter(|dep| dep.0[..] == me[..]) {
                    claims.push((dep.1, dep.2));
                }
                points.read(&op, form);
                validate(&op)
            })
            .map_err(in_bundle)?;
        conn.savepoint("sync_bundle_in", || {
            crate::schema::lock_for_writing(conn)?;
            // what was read before the lock may have changed since: another connection may
            // have imported the same bundle, or enabled or disabled a table
            if crate::schema::imported_before(conn, &manifest.bundle_id)? {
                return Ok(skipped);
            }
            let shapes = |tables: &[SyncedTable]| -> Vec<(i64, i64)> {
                tables.iter().map(|t| (t.id, t.shape_id)).collect()
            };
            if shapes(&log::synced_tables(conn)?) != shapes(&tables) {
                return Err(Error::new(
                    "the synced tables changed while the bundle was read; import it again",
                ));
            }
            crate::capture::first_in_line(conn)?;
            let mut outcome = import(conn, &mut reader, &tables, &claims, points.finish())?;
            if let Some(after) = after {
                outcome.compacted = after(conn)?;
            }
            Ok(outcome)
        })
        .map_err(in_bundle)?
    };
    Ok(Report {
        manifest,
        outcome,
        missing,
    })
}

pub(super) fn pending_count(conn: &Conn) -> Result<u64> {
    Ok(conn
        .query_value(
            "SELECT count(*) FROM main._sync_remote WHERE applied = 0",
            &[],
        )?
        .and_then(|v| v.as_i64())
        .unwrap_or(0) as u64)
}

fn import(
    conn: &Conn,
    reader: &mut Reader,
    tables: &[SyncedTable],
    claims: &[(u64, crate::op::Hash)],
    named: super::carried_points::Named,
) -> Result<Outcome> {
    // (the devices its writer forgot no longer count here either: log/forgotten.rs)
    crate::log::forgotten::add(conn, &reader.manifest.forgotten)?;
    super::park::name_records_by_op(conn)?;
    let mut run = Import::new(conn, tables)?;
    if run.own_history_differs(claims)? {
        run.quiet.finish()?; // capture as it was, for the fork
        drop(run);
        fork(conn)?;
        run = Import::new(conn, tables)?;
    }
    // how the devices declare their tables now, before any op is placed by it (kept.rs)
    let declared = std::mem::take(&mut reader.manifest.declared);
    let changed = (run.known.declared).merge(conn, &mut run.known.devices, declared)?;
    let before = run.clocks.clock.clone();
    run.fold_local_ops(before.get(&SELF).copied().unwrap_or(0))?;
    run.reading.marks = std::mem::take(&mut reader.marks);
    run.reading.marks.reverse();
    run.read_base(&reader.manifest.base)?;
    run.reading.gaps = std::mem::take(&mut reader.manifest.gaps);
    run.reading.forks = (reader.manifest.forks.iter().copied()).collect();
    run.reading.writer_stable = reader.manifest.stable.clone();
    run.reading.points_named = named;
    for &stray in &reader.manifest.strays {
        run.strays()?.add(conn, stray)?;
    }
    reader.each_op(|op, number, form| run.store(op, number, form))?;
    run.reading.appender.flush()?;
    run.relower()?;
    run.resolve_waiting()?;
    run.take_base()?;
    run.deliver_all()?;
    run.place_aside()?;
    run.relower()?;
    run.keep_strays()?;
    run.keep_lost()?;
    run.write_applied()?;
    // ops applied or kept before their writer declared their table as it does now are sorted
    // again: those it kept that fit now are released; the row index is read through only when
    // a device declares a table otherwise than this device does
    for table in tables
        .iter()
        .filter(|t| changed.contains(&t.name.to_ascii_lowercase()))
    {
        if run.declared_otherwise_somewhere(table) {
            run.sort_by_declarations(table)?;
        }
        run.release(table)?;
    }
    run.record_context()?;
    run.settle_touched()?;
    // rows a constraint holds out, and rows that come back (park.rs)
    run.place_rows()?;
    run.record(reader)?;
    run.known.contexts.check()?;
    run.known.local.check()?;
    run.quiet.finish()?;
    Ok(run.outcome)
}
