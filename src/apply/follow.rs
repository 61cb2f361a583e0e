//! Following the app's schema at each sync call: columns added to a synced table are captured
//! from then on (capture.rs), and filled with the values that received ops kept for them while
//! this device did not have them (DESIGN 5.2).
//!
//! Invariant: after `follow_schema`, every row of a table that gained columns shows in them what
//! settling the row from every op on it gives: what a device that always had them shows.

use crate::capture::Refuse;
use crate::db::{Conn, Result};
use crate::log::{self, row_key};
use crate::schema::SELF;
use crate::value::Value;

use super::checks::find_table;
use super::import::Import;

/// Follows columns added to synced tables since the last call, in a savepoint of its own when
/// there are any (it only reads when there are none, the everyday case); `refuse`: the tables
/// whose other changes are an error (capture.rs `added_columns`).
pub fn follow_schema(conn: &Conn, refuse: Refuse) -> Result<()> {
    let grown = crate::capture::added_columns(conn, &log::synced_tables(conn)?, refuse)?;
    if !grown.is_empty() {
        conn.savepoint("sync_follow", || fill(conn, grown))?;
    }
    // ops kept for declarations this device now shares (kept.rs)
    super::kept::release_agreeing(conn)
}

/// Captures the added columns, and fills them from the values received ops kept for them.
fn fill(conn: &Conn, grown: Vec<(String, Vec<String>)>) -> Result<()> {
    let grown = crate::capture::follow_added_columns(conn, grown)?;
    let tables = log::synced_tables(conn)?;
    let mut run = Import::new(conn, &tables)?;
    // this device's ops first, the values the capture just recorded included: a value written
    // here after the column came follows the received ones it saw
    let last = run.clocks.clock.get(&SELF).copied().unwrap_or(0);
    run.fold_local_ops(last)?;
    let mut stmt =
        conn.prepare("SELECT vals FROM main._sync_remote WHERE form = ?1 AND applied")?;
    for (name, added) in &grown {
        let table = find_table(&tables, name)?;
        for form_id in run.known.forms.writing(&table.name, added) {
            let form = run.known.forms.get(form_id)?;
            stmt.bind_all(&[Value::Integer(form_id)])?;
            while let Some(row) = stmt.step()? {
                let vals = row.column(0)?;
                let values = form.unpack(&mut vals.as_blob().unwrap_or_default())?;
                let key = row_key(values[..form.key.len()].iter());
                run.rows.touched.all(table.id, key);
            }
            stmt.reset();
        }
        // the rows held out of it, whose records show every column: recorded again with the
        // new ones (as a device that had them when it held the row out shows them)
        for key in super::park::held_out_keys(conn, table.id)? {
            run.rows.touched.all(table.id, key);
        }
    }
    drop(stmt);
    run.settle_touched()?;
    run.place_rows()?;
    run.known.contexts.check()?;
    run.known.local.check()?;
    run.quiet.finish()
}
