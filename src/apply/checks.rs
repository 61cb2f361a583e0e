//! What every op of a bundle must be before anything is written: its form names a synced
//! table, its key and columns; its deps are canonical; an op already held here is the same op.

use crate::bundle::Packed;
use crate::db::{Error, Result};
use crate::form::Form;
use crate::log::SyncedTable;
use crate::value::{hex, Value};

/// Checks that the deps of `op` are canonical.
pub(super) fn validate(op: &Packed) -> Result<()> {
    // canonical deps: ascending by device, seq and hash, each at most once (a device that
    // wrote two histories may be named twice), none of the op's own device
    if op.deps.windows(2).any(|w| w[0] >= w[1]) || op.deps.iter().any(|d| d.0 == op.device) {
        return Err(Error::new(
            "its deps are not in order (by device, seq and hash), or name its own device",
        ));
    }
    Ok(())
}

/// Whether `op` (of bundle form `form`) is the op held here with `here_form`, `lamport`,
/// `values` and `deps`: the same canonical encoding (the compact forms may differ, as two
/// writers may alias differently).
pub(super) fn same_op(
    op: &Packed,
    form: &Form,
    here_form: &Form,
    lamport: u64,
    values: &[Value],
    deps: &[crate::op::Dep],
) -> bool {
    // (the prevs are compared where a run of ops starts: `Import::check_prev`)
    let canonical = |form: &Form, lamport: u64, values: &[Value]| {
        let mut out = Vec::new();
        let head = crate::form::Head {
            lamport,
            ..op.head(None)
        };
        form.write_canonical(&mut out, &head, values);
        out
    };
    deps == op.deps
        && canonical(here_form, lamport, values) == canonical(form, op.lamport, &op.values)
}

/// The error for two different ops under one device id and seq.
pub(super) fn two_histories(what: &str, seq: u64, device: &[u8]) -> String {
    format!(
        "{what} {seq} of device {} differs from the op with the same device and seq already \
         here: two databases wrote under one device id (a copy of a database file, or an \
         older backup put back, written before the extension was loaded on it), or the bundle \
         was forged. The two histories cannot be merged yet (README: Adding a device, copies and backups)",
        hex(device)
    )
}

/// Checks that an op form names a table of the app's, never one of SQLite's or the
/// extension's. (A table this device does not capture, or declares otherwise, is no reason to
/// refuse: its ops are kept, kept.rs.)
pub(super) fn validate_form(form: &Form) -> Result<()> {
    use crate::log::floors;
    if form.table == floors::TABLE {
        // a floor op (log/floors.rs): an insert of its one value
        let one = [floors::COLUMN];
        if form.kind == crate::op::OpKind::Insert && form.key == one && form.cells == one {
            return Ok(());
        }
        return Err(Error::new(
            "names table \"_sync_floor\" but is not a floor op (an insert of column \"floor\" only)",
        ));
    }
    if internal(&form.table) {
        return Err(Error::new(format!(
            "names table {:?}, which is internal to SQLite or sqlite-sync and never synced",
            form.table
        )));
    }
    Ok(())
}

/// The columns `form` writes that its table does not have here (yet), as `table.column`, or
/// the table's name when this device does not capture it (none for a floor op).
pub(super) fn missing_columns(form: &Form, tables: &[SyncedTable]) -> Vec<String> {
    if form.table == crate::log::floors::TABLE {
        return Vec::new(); // a floor op (log/floors.rs) waits for no table
    }
    let Ok(table) = find_table(tables, &form.table) else {
        return vec![form.table.clone()];
    };
    (form.cells.iter())
        .filter(|c| table.column(c).is_none())
        .map(|c| format!("{}.{c}", table.name))
        .collect()
}

pub(super) fn table_by_id(tables: &[SyncedTable], id: i64) -> Result<&SyncedTable> {
    tables
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(|| Error::new(format!("table {id} is no longer synced")))
}

pub(super) fn find_table<'a>(tables: &'a [SyncedTable], name: &str) -> Result<&'a SyncedTable> {
    tables
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| Error::new(format!("table {name:?} is not synced on this device")))
}

/// Whether `name` is a table of SQLite's or of the extension's own.
fn internal(name: &str) -> bool {
    ["_sync_", "sqlite_"].iter().any(|p| {
        name.get(..p.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(p))
    })
}
