//! What an import knows of the rows held out of their tables (park.rs) and of what it must
//! judge at its end: the tables with held-out rows, the references, the rows queued.

use crate::hashed::{HashMap, HashSet};
use std::collections::VecDeque;

use crate::db::Result;
use crate::log::SyncedTable;
use crate::op::DeviceId;

use super::references::References;

/// A row: its table's id and its key (msgpack of the key values, as the row index has it).
pub(super) type RowAt = (i64, Vec<u8>);

/// What the import knows of held-out rows and what it must judge at its end.
pub(super) struct Parking {
    pub(super) references: References,
    /// Tables that had rows held out when the import began
    pub(super) tables: HashSet<i64>,
    /// Rows to judge, once each until something they depend on changes
    pub(super) queue: VecDeque<RowAt>,
    pub(super) queued: HashSet<RowAt>,
    /// Rows judged since they last changed, in `place`
    pub(super) judged: HashSet<RowAt>,
    /// Tables with references to other columns than a key, whose parent table was written
    pub(super) written: HashSet<i64>,
    /// Tables named by references whose rows went or were written here (park.rs
    /// `queue_held_children`: the rows held out of the tables that name them are judged again)
    pub(super) parents_written: HashSet<i64>,
    pub(super) first_ops: HashMap<RowAt, (u64, DeviceId, u64)>,
    /// Rows judged on the assumption that a row they name (in a cycle) stays: (that row, the
    /// row judged)
    pub(super) assumed: Vec<(RowAt, RowAt)>,
    /// Rows written since the import began (and the values other rows name them by, when not
    /// their key), while rows are held out: the rows they hold out are judged at the end
    pub(super) changed: HashSet<RowAt>,
}

impl Parking {
    pub(super) fn load(conn: &crate::db::Conn, tables: &[SyncedTable]) -> Result<Parking> {
        // one seek per table, however many rows are held out
        let mut held = HashSet::default();
        let mut stmt = conn.prepare(
            "SELECT table_id FROM main._sync_parked WHERE table_id > ?1 ORDER BY table_id LIMIT 1",
        )?;
        let mut after = i64::MIN;
        loop {
            stmt.bind_all(&[crate::value::Value::Integer(after)])?;
            let next = stmt.step()?.map(|row| row.column_int(0));
            stmt.reset();
            let Some(id) = next else { break };
            held.insert(id);
            after = id;
        }
        Ok(Parking {
            references: References::load(conn, tables)?,
            tables: held,
            queue: VecDeque::new(),
            queued: HashSet::default(),
            judged: HashSet::default(),
            written: HashSet::default(),
            parents_written: HashSet::default(),
            first_ops: HashMap::default(),
            assumed: Vec::new(),
            changed: HashSet::default(),
        })
    }

    /// Whether rows of table `id` may be held out or hold others out through a reference, or
    /// some are: their writes go through the settle, never the fast paths.
    pub(super) fn concerns(&self, id: i64) -> bool {
        self.tables.contains(&id) || self.references.touch(id)
    }

    /// A row this device wrote: judged at the end when it names rows.
    pub(super) fn wrote_here(&mut self, table_id: i64, key: &[u8], delete: bool) {
        if !delete && self.references.of(table_id).next().is_some() {
            self.push((table_id, key.to_vec()));
        }
        self.changed(table_id, key);
    }

    /// Row `key` of table `id` was written: the rows it holds out are judged at the end.
    pub(super) fn changed(&mut self, id: i64, key: &[u8]) {
        if !self.tables.is_empty() {
            self.changed.insert((id, key.to_vec()));
        }
    }

    pub(super) fn push(&mut self, at: RowAt) {
        self.judged.remove(&at);
        if self.queued.insert(at.clone()) {
            self.queue.push_back(at);
        }
    }
}
