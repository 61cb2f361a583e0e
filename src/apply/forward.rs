//! Writing an imported update or delete at once when it fast-forwards its row
//! (merge/forward.rs): its cells written to the table, or the row deleted, and the row's live
//! set advanced, with no op read back and no settle at the end (the everyday sync of edits).
//!
//! Invariant: an op written here leaves the row, its live set and its conflict records (none)
//! as settling the row after it would (settle.rs). Any other op is left to the settle: one on
//! a row the import settles anyway, one the app's triggers see, one whose columns a foreign key
//! acts on (a delete: of a row a foreign key with an action refers to), one a constraint
//! refuses.

use crate::db::Result;
use crate::log::SyncedTable;
use crate::merge::forward::{forward, Before, Writes};
use crate::merge::live::OpAt;
use crate::merge::row_index::{Entry, Prior};
use crate::op::OpKind;
use crate::value::Value;

use super::checks::find_table;
use super::import::Import;

/// An op that fast-forwards its row, waiting to be written with the others of its batch: its
/// row index entry, form id, Lamport time and values, and its row's first op and live set
/// after it.
pub(super) struct Forward {
    pub(super) entry: Entry,
    pub(super) form_id: i64,
    pub(super) lamport: u64,
    pub(super) values: Vec<Value>,
    /// The row's first op (`_sync_rows` names it)
    pub(super) first: OpAt,
    pub(super) live: Vec<u8>,
}

impl Import<'_> {
    /// The live set of the row of op `entry` (of form `form_id`) after it, when the op
    /// fast-forwards the row, which held `prior` before; None when the row is to be settled.
    pub(super) fn forward(
        &mut self,
        entry: &Entry,
        form_id: i64,
        prior: &Prior,
    ) -> Result<Option<Vec<u8>>> {
        if self.quiet.app_triggers_fire() || self.rows.touched.contains(entry) {
            return Ok(None);
        }
        let form = self.known.forms.get(form_id)?;
        let table = find_table(self.known.tables, &form.table)?;
        if self.parking.concerns(table.id) {
            return Ok(None); // rows held out, or references: judged by the settle (park.rs)
        }
        let cols = match form.kind {
            OpKind::Insert => return Ok(None),
            OpKind::Delete => None,
            OpKind::Update => {
                // a column this device does not have (yet) is in the row's live set all the
                // same; only the table's own columns are written
                let cols: Vec<String> = form.cells.iter().map(|c| table.spell_name(c)).collect();
                let key_only = cols.iter().all(|c| table.key_columns().any(|k| k == c));
                if key_only {
                    return Ok(None);
                }
                Some(cols)
            }
        };
        let before = match &prior.live {
            Value::Null => match self.only_op(table, prior)? {
                Some(before) => before,
                None => return Ok(None),
            },
            Value::Blob(blob) if !blob.is_empty() => {
                Before::Set(self.universes.decode(self.conn, blob)?)
            }
            _ => return Ok(None),
        };
        let (devices, order) = (&self.known.devices, self.known.order());
        let (device, seq) = (entry.2, entry.3);
        let id = devices.id(device);
        let follows = |(d, s): OpAt| order.op_follows((&id, seq), (&devices.id(d), s));
        let writes = match &cols {
            Some(cols) => Writes::Cells(cols),
            None => Writes::Tombstone,
        };
        let Some((universe, entries)) = forward(before, (device, seq), writes, follows) else {
            return Ok(None);
        };
        (self.universes.encode(self.conn, &universe, &entries)).map(Some)
    }

    /// Writes the ops of a batch that fast-forward their rows: each form's rows by one
    /// statement, then their live sets. A form's ops that a constraint refuses, or whose rows
    /// are not all there, are left to the settle with every op of theirs.
    pub(super) fn write_forwards(&mut self, mut forwards: Vec<Forward>) -> Result<()> {
        forwards.sort_by_key(|f| f.form_id); // stable: a form's ops stay in their order
        let mut sets = Vec::with_capacity(forwards.len());
        for run in forwards.chunk_by(|a, b| a.form_id == b.form_id) {
            let form = self.known.forms.get(run[0].form_id)?;
            let table = find_table(self.known.tables, &form.table)?;
            let rows: Vec<&[Value]> = run.iter().map(|f| f.values.as_slice()).collect();
            let written = match self
                .rows
                .writers
                .change_many(table, run[0].form_id, form, &rows)
            {
                Ok(changed) => changed == run.len(),
                Err(e) if e.is_constraint() => false, // the settle's error names the row
                Err(e) => return Err(e),
            };
            for f in run {
                match written {
                    true => sets.push((f.entry.0, f.entry.1.clone(), f.first, f.live.clone())),
                    false => {
                        self.rows.touched.add(&f.entry);
                        let at = (f.entry.2, f.entry.3);
                        (self.rows.recent).keep(at, f.lamport, f.form_id, f.values.clone());
                    }
                }
            }
        }
        self.rows.index.store_live(&sets)
    }

    /// The row's only op, as `forward` takes it, when the row index found its kind and columns.
    fn only_op(&self, table: &SyncedTable, prior: &Prior) -> Result<Option<Before>> {
        let (kind, cols) = match (prior.form, prior.local) {
            (Some(form_id), _) => {
                let form = self.known.forms.get(form_id)?;
                (form.kind, form.cells.clone())
            }
            (None, Some((shape, kind, mask))) => self.known.local.columns(shape, kind, mask)?,
            (None, None) => return Ok(None),
        };
        Ok(Some(Before::Only {
            at: prior.first,
            delete: kind == OpKind::Delete,
            cols: cols.iter().map(|c| table.spell_name(c)).collect(),
        }))
    }
}
