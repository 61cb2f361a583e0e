//! A floor op applied (log/floors.rs): its floor placed in the histories held here, and the
//! rows of the ops held here that are behind it settled again, as the merge rule now reads
//! them.

use super::import::Import;
use crate::db::{Conn, Result};
use crate::log::floors::{self, Floor};
use crate::schema::DeviceIdx;
use crate::value::Value;
use std::collections::HashMap;

/// After this device wrote a floor op (compact/mod.rs): the rows of the ops behind a floor
/// held before are settled again, as what they are taken to have seen grew by its floor
/// (log/floors.rs).
pub fn settle_behind_floors(conn: &Conn) -> Result<()> {
    let tables = crate::log::synced_tables(conn)?;
    let mut run = Import::new(conn, &tables)?;
    run.touch_behind(None)?;
    run.settle_and_finish()
}

impl Import<'_> {
    /// Learns floor op `op`, whose key values are `values`.
    pub(super) fn learn_floor(&mut self, op: (DeviceIdx, u64), values: &[Value]) -> Result<()> {
        let entries = floors::decode(values.first().unwrap_or(&Value::Null))?;
        self.reading.appender.flush()?; // (its entries' ops may be stored in this batch)
        let mut placed = Vec::with_capacity(entries.len());
        for (id, seq, link) in entries {
            // every op of a floor is in the floor op's causal past, so held here; an entry that
            // names a history this device cannot place lends nothing
            let Some(root) = self.known.devices.idx(&id) else {
                continue;
            };
            if let Some(history) = self.resolve_entry(root, seq, &link)? {
                placed.push((history, seq));
            }
        }
        self.write_applied()?;
        self.touch_behind(Some(op))?;
        if self.reading.removal {
            // (the histories it cuts, once the ops ready now are delivered: behind.rs)
            (self.reading.points).extend(placed.iter().map(|&(h, e)| (h, e, op)));
        }
        (self.known.floors).add(
            self.conn,
            Floor {
                op,
                entries: placed,
            },
        )
    }

    /// Marks for settling the rows of the ops applied here that are not in floor op `new`'s
    /// causal past (those behind its floor are among them), and of the ops behind a floor held
    /// before (what they are taken to have seen grows by the new floor): one pass over the row
    /// index. (None: a floor op this device wrote, which no op held here is behind.)
    fn touch_behind(&mut self, new: Option<(DeviceIdx, u64)>) -> Result<()> {
        let mut seen: HashMap<DeviceIdx, u64> = HashMap::new();
        let order = self.known.order();
        let older = &self.known.floors;
        // an op below every older floor, or that follows every entry of every one, is behind
        // none of them (most ops: one look each)
        let (lowest, highest) = (older.lowest(), older.highest());
        let behind_older = |device: DeviceIdx, seq: u64| {
            !older.is_empty()
                && seq > lowest.get(&device).copied().unwrap_or(0)
                && !highest.iter().all(|&e| order.reaches((device, seq), e))
                && older.behind_any(|x, y| order.reaches(x, y), (device, seq))
        };
        let mut stmt = self.conn.prepare(
            "SELECT table_id, key, device, seq FROM main._sync_row_ops
             UNION ALL SELECT table_id, key, device, seq FROM main._sync_rows",
        )?;
        let mut rows = Vec::new();
        while let Some(row) = stmt.step()? {
            let (device, seq) = (DeviceIdx(row.column_int(2)), row.column_int(3) as u64);
            let seen = *seen.entry(device).or_insert_with(|| match new {
                None => u64::MAX,
                Some(op) if device == op.0 => op.1,
                Some(op) => self.known.contexts.entry(op.0, op.1, device),
            });
            if seq > seen || behind_older(device, seq) {
                let key = row.column_blob(1)?.unwrap_or_default().to_vec();
                rows.push((row.column_int(0), key));
            }
        }
        drop(stmt);
        for (table_id, key) in rows {
            self.rows.touched.all(table_id, key);
        }
        Ok(())
    }
}
