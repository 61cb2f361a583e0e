//! One import: the bundle's ops stored, delivered in causal order, their rows written and
//! settled, and what was imported recorded; all inside the caller's savepoint.

use crate::db::{Conn, Result, Statements, Stmt};
use crate::hashed::HashMap;
use crate::log::clock::{self, Clock, Contexts, Devices};
use crate::log::remote::{self, Appender, Forms};
use crate::log::{self, LocalOps, SyncedTable};
use crate::merge::live::{Touched, Universes};
use crate::merge::row_index::{Entry, Recent, RowIndex, RowReader};
use crate::schema::{DeviceIdx, SELF};
use crate::sql::BATCH;
use crate::value::Value;

use super::parking::Parking;
use super::quiet::Quiet;
use super::row_writer::RowWriters;

/// What one import did, as `sync_bundle_in` reports it.
#[derive(Default)]
pub(super) struct Outcome {
    pub(super) applied: u64,
    pub(super) conflicts: u64,
    pub(super) duplicates: u64,
    pub(super) discarded: u64,
    /// writes this import listed in `sync_lost` (apply/lost.rs)
    pub(super) lost: u64,
    pub(super) skipped: bool,
    /// Why ops this import kept wait for their table to be declared alike (kept.rs)
    pub(super) otherwise: Vec<String>,
    /// What the automatic compaction at its end did (`After`), if it ran
    pub(super) compacted: Option<String>,
}

/// Everything one import reads and writes, kept for its length, by what it is.
pub(super) struct Import<'a> {
    pub(super) conn: &'a Conn,
    /// What the database held when the import began, kept up to date as it goes
    pub(super) known: Known<'a>,
    /// The clocks the import moves
    pub(super) clocks: Clocks,
    /// Where the reading of the bundle is
    pub(super) reading: Reading<'a>,
    /// The rows the import writes
    pub(super) rows: Rows<'a>,
    /// The import's writes kept out of the log (quiet.rs)
    pub(super) quiet: Quiet<'a>,
    /// Rows held out by a constraint (park.rs)
    pub(super) parking: Parking,
    /// Statements kept by their text
    pub(super) statements: Statements<'a>,
    /// The universes of the live sets read and written (merge/live.rs)
    pub(super) universes: Universes,
    pub(super) outcome: Outcome,
}

/// Loaded once per import: the synced tables, the devices, the causal
/// contexts, the local ops' shapes and epochs, and the forms of received ops.
pub(super) struct Known<'a> {
    pub(super) tables: &'a [SyncedTable],
    pub(super) devices: Devices,
    pub(super) contexts: Contexts<'a>,
    pub(super) local: LocalOps<'a>,
    pub(super) forms: Forms,
    /// Ids of the tables not captured here that received ops name, by name in lower case
    pub(super) kept_tables: HashMap<String, i64>,
    /// Where the ops of each form go, by writer (kept.rs)
    pub(super) places: HashMap<(DeviceIdx, i64), Place>,
    /// How each device declares each table now
    pub(super) declared: crate::log::declared::Declarations,
    /// The floor ops applied here (log/floors.rs)
    pub(super) floors: crate::log::floors::Floors,
}

impl<'a> Known<'a> {
    /// The causal order of ops, as the devices and contexts known here give it.
    pub(super) fn order(&self) -> clock::Order<'_, 'a> {
        clock::Order {
            devices: &self.devices,
            contexts: &self.contexts,
            floors: &self.floors,
        }
    }

    /// The reader of a row's ops, with the received ops an import still holds (`recent`).
    pub(super) fn reader<'r>(&'r self, recent: Option<&'r Recent>) -> RowReader<'r> {
        RowReader {
            devices: &self.devices,
            local: &self.local,
            forms: &self.forms,
            recent,
        }
    }
}

/// Where an applied op goes: to its table's row index, or kept (kept.rs; with why, None when
/// its table is not captured here).
#[derive(Clone)]
pub(super) enum Place {
    Table(i64),
    Kept(i64, Option<String>),
    /// a floor op (log/floors.rs)
    Floor,
}

/// The applied clock and Lamport time as the import moves them.
pub(super) struct Clocks {
    pub(super) clock: Clock,
    /// The clock as `_sync_clock` held it when the run began: what differs is written, and
    /// only its entries can have outgrown the next local op's context (`record_context`)
    pub(super) stored: Clock,
    pub(super) lamport: u64,
    /// Per device, the seq and Lamport time of its last op applied in this import
    pub(super) tips: HashMap<DeviceIdx, (u64, u64)>,
    /// Lamport times of applied ops read back in this import (deps name the same ops again and
    /// again: in a fleet, each device's first op after a sync names the others' last ones)
    pub(super) lamports: HashMap<(DeviceIdx, u64), u64>,
    /// Per device, the runs of seqs stored pending before this import
    pub(super) pending_before: HashMap<DeviceIdx, Vec<(u64, u64)>>,
    /// The histories whose applied clock rose as stored outside `record_context` (a history
    /// merged back into the one it forked from, behind.rs `set_applied`): the next local op may
    /// not have seen what they hold now
    pub(super) raised: crate::hashed::HashSet<DeviceIdx>,
}

/// The bundle's ops as they are read and stored.
pub(super) struct Reading<'a> {
    /// `_sync_forms` id of each form of the bundle, by its number there
    pub(super) bundle_forms: Vec<Option<i64>>,
    /// The bundle's last op stored or found here: (device id, seq, history)
    pub(super) stream_at: Option<(crate::op::DeviceId, u64, DeviceIdx)>,
    /// The bundle's ops read so far, and the hashes its first reading marked, by ordinal (the
    /// next one last)
    pub(super) ordinal: u64,
    pub(super) marks: Vec<(u64, crate::op::Hash)>,
    /// Hashes of ops deps and the bundle's clock named, found here, and whether each is a
    /// checkpoint (histories.rs `hash_of_held`)
    pub(super) dep_hashes: HashMap<(DeviceIdx, u64), (crate::op::Hash, bool)>,
    /// The store of received ops, written a batch at a time
    pub(super) appender: Appender<'a>,
    /// The bundle's base, by history id, for the histories it reaches above what is applied
    /// here (removed.rs)
    pub(super) base: HashMap<crate::op::DeviceId, crate::bundle::Base>,
    /// Where the base's histories that its writer forked, and removed ops of, start: their
    /// device's id and the seq of their first op (removed.rs `based_first`)
    pub(super) based_starts: crate::hashed::HashSet<(crate::op::DeviceId, u64)>,
    /// The bundle's contexts of removed ops that its ops follow (removed.rs)
    pub(super) gaps: Vec<crate::bundle::Gap>,
    /// The bundle's links of the ops its base's histories fork after, by history id
    /// (removed.rs `based_fork`)
    pub(super) forks: HashMap<crate::op::DeviceId, crate::op::Hash>,
    /// The bundle's writer's stable clock (device id, seq, link: behind.rs
    /// `named_by_another_point`)
    pub(super) writer_stable: Vec<(crate::op::DeviceId, u64, crate::op::Hash)>,
    /// The ops the bundle's compaction points name or saw (device id, seq, link:
    /// carried_points.rs)
    pub(super) points_named: super::carried_points::Named,
    /// While the bundle has a base: per history, the seqs of the bundle's ops placed in it,
    /// with the hash each states for the op before it, if it does
    pub(super) carried: HashMap<DeviceIdx, HashMap<u64, Option<crate::op::Hash>>>,
    /// Histories whose ops at seqs removed here, taken for the ops removed, were taken as
    /// missing instead (behind.rs `below_taken_for_removed`): their base is not taken in this
    /// import
    pub(super) retaken: crate::hashed::HashSet<DeviceIdx>,
    /// Whether compaction removes ops here (`_sync_state` `compact_removes`): bases are taken,
    /// and compaction points settle the histories below them (behind.rs)
    pub(super) removal: bool,
    /// The bundle's last op a compaction point decided (behind.rs): (device id, seq, its hash
    /// as the bundle has it, whether it is known to be another op than the point's history
    /// holds there), for the op that follows it in the stream
    pub(super) wire: Option<(crate::op::DeviceId, u64, crate::op::Hash, bool)>,
    /// The entries of the compaction points applied in this import, with the point's op, for
    /// the histories they cut (behind.rs)
    pub(super) points: Vec<(DeviceIdx, u64, (DeviceIdx, u64))>,
    /// Those of them `place_aside` is cutting now: each cut may merge, move or drop the
    /// histories the ones after it name, which they follow (behind.rs `points_moved`)
    pub(super) cutting: std::collections::VecDeque<(DeviceIdx, u64, (DeviceIdx, u64))>,
    /// Histories detached below a point's entry that a history placed in this import now
    /// holds the link of (behind.rs `adopt_detached`): (the history, its new parent, its base)
    pub(super) adopted: Vec<(DeviceIdx, DeviceIdx, u64)>,
    /// Whether this import dropped ops it held (removed.rs `drop_held`): the highest Lamport
    /// time known is then read again from the ops held (store.rs `record_context`)
    pub(super) dropped: bool,
    /// Compaction points whose entries named ops this import dropped (removed.rs
    /// `drop_held`), by the id their ops travel under and seq (histories may merge or go
    /// meanwhile): placed again once the import's ops are (floor.rs `place_entries_again`)
    pub(super) stale_points: Vec<(crate::op::DeviceId, u64)>,
    /// Ops dropped where a compaction point decided against them, told at the end (lost.rs)
    pub(super) lost: Vec<Dropped>,
    /// Links of ops dropped that may be the ops compaction removed at their seqs, with the
    /// device's first history: kept at the end where the chain does not show them to be
    /// (lost.rs `keep_strays`)
    pub(super) maybe_removed: Vec<(DeviceIdx, crate::log::strays::Stray)>,
    /// This device's ids, now and before it forked, once asked for (lost.rs)
    pub(super) mine: Option<Vec<crate::op::DeviceId>>,
    /// The ops of other histories known here, with their links (log/strays.rs), read on
    /// first use (`Import::strays`)
    pub(super) strays: Option<crate::log::strays::Strays>,
    /// The deps on another history's op lowered as the bundle's ops were stored (store.rs,
    /// behind.rs `dep_of_another_history`), looked at again after (histories.rs `relower`)
    pub(super) lowered: Vec<Lowered>,
    /// The op being placed, where a compaction point's writer saw it as another op than the
    /// one the point decided at its seq (behind.rs `seen_by_a_point`): its id, seq and hash
    pub(super) seen: Option<crate::op::Dep>,
}

/// A dep lowered as its op was stored (`Reading::lowered`).
pub(super) struct Lowered {
    /// The op (its history and seq)
    pub(super) op: (DeviceIdx, u64),
    /// The first history of the dep's device, and the history the dep was stored in
    pub(super) root: DeviceIdx,
    pub(super) idx: DeviceIdx,
    /// The dep as written, and the change point stored for it (none: no point)
    pub(super) dep: crate::op::Dep,
    pub(super) stored: Option<(u64, crate::op::Hash)>,
}

/// An op dropped in this import where a compaction point decided against it, kept until the
/// import's end (lost.rs).
pub(super) struct Dropped {
    pub(super) id: crate::op::DeviceId,
    pub(super) seq: u64,
    pub(super) hash: crate::op::Hash,
    pub(super) op: crate::op::Op,
    pub(super) certain: bool,
    /// recorded only where a history held here holds another op at its seq at the import's
    /// end (the op it was dropped for is held)
    pub(super) if_replaced: bool,
}

/// The rows the import indexes, writes and settles.
pub(super) struct Rows<'a> {
    /// Rows with more than one op, to settle at the end. (A row whose only op is the one
    /// applied is written at once: the common case of a new row.)
    pub(super) touched: Touched,
    pub(super) index: RowIndex<'a>,
    /// Ops applied whose rows are not yet indexed and written (`write_applied`): their row
    /// index entries, and their form ids and values
    pub(super) batch: Vec<Entry>,
    pub(super) batch_ops: Vec<(i64, u64, Vec<Value>)>,
    /// The received ops of touched rows, kept for their settle
    pub(super) recent: Recent,
    pub(super) writers: RowWriters<'a>,
    /// Rows some of whose ops were dropped (kept.rs `unindex`): written whole when settled,
    /// the columns no op writes at their defaults, as a device that never held those ops
    /// shows them (settle.rs `whole`)
    pub(super) rewrite: crate::hashed::HashSet<(i64, Vec<u8>)>,
}

impl<'a> Import<'a> {
    pub(super) fn new(conn: &'a Conn, tables: &'a [SyncedTable]) -> Result<Import<'a>> {
        crate::schema::upgrade(conn)?;
        let pending_before = remote::pending_runs(conn)?;
        let clock = clock::applied(conn)?;
        let spans = pending_before
            .iter()
            .map(|(&device, runs)| (device, (runs[0].0, runs[runs.len() - 1].1)))
            .collect();
        Ok(Import {
            conn,
            known: Known {
                tables,
                devices: Devices::load(conn)?,
                contexts: Contexts::load(conn)?,
                local: LocalOps::load(conn)?,
                forms: Forms::load(conn)?,
                kept_tables: HashMap::default(),
                places: HashMap::default(),
                declared: crate::log::declared::Declarations::load(conn)?,
                floors: crate::log::floors::Floors::load(conn)?,
            },
            clocks: Clocks {
                clock: clock.clone(),
                stored: clock,
                lamport: crate::schema::state(conn, "lamport")?,
                tips: HashMap::default(),
                lamports: HashMap::default(),
                pending_before,
                raised: Default::default(),
            },
            reading: Reading {
                bundle_forms: Vec::new(),
                stream_at: None,
                ordinal: 0,
                marks: Vec::new(),
                dep_hashes: HashMap::default(),
                appender: Appender::new(conn, spans),
                base: HashMap::default(),
                based_starts: Default::default(),
                gaps: Vec::new(),
                forks: HashMap::default(),
                writer_stable: Vec::new(),
                points_named: Default::default(),
                carried: HashMap::default(),
                retaken: Default::default(),
                removal: crate::schema::removal_on(conn)?,
                wire: None,
                points: Vec::new(),
                cutting: Default::default(),
                adopted: Vec::new(),
                dropped: false,
                stale_points: Vec::new(),
                lost: Vec::new(),
                maybe_removed: Vec::new(),
                mine: None,
                strays: None,
                lowered: Vec::new(),
                seen: None,
            },
            rows: Rows {
                touched: Touched::new(),
                index: RowIndex::new(conn),
                batch: Vec::with_capacity(BATCH),
                batch_ops: Vec::with_capacity(BATCH),
                recent: Recent::default(),
                rewrite: Default::default(),
                writers: RowWriters::new(conn),
            },
            parking: Parking::load(conn, tables)?,
            quiet: Quiet::new(conn, tables)?,
            statements: Statements::new(conn),
            universes: Universes::new(),
            outcome: Outcome::default(),
        })
    }
}

impl<'a> Import<'a> {
    /// The strays known here (log/strays.rs), read on first use: only where ops are dropped
    /// behind a compaction point, a bundle carries strays, or a dep names another history's op.
    pub(super) fn strays(&mut self) -> Result<&mut crate::log::strays::Strays> {
        if self.reading.strays.is_none() {
            self.reading.strays = Some(crate::log::strays::Strays::load(self.conn)?);
        }
        Ok(self.reading.strays.as_mut().expect("just read"))
    }

    /// Indexes local ops written since the last import (up to `last`) by row, and marks the
    /// rows that had ops before for settling (their live sets and conflicts may change).
    pub(super) fn fold_local_ops(&mut self, last: u64) -> Result<()> {
        let folded = crate::schema::state(self.conn, "folded")?;
        let conn = self.conn;
        let mut index = RowIndex::new(conn);
        let touched = &mut self.rows.touched;
        let mut batch: Vec<Entry> = Vec::with_capacity(BATCH);
        let mut fold = |batch: &mut Vec<Entry>| -> Result<()> {
            let priors = index.add_many(batch)?;
            for (entry, prior) in batch.iter().zip(priors) {
                if prior.is_some() {
                    touched.add(entry);
                }
            }
            batch.clear();
            Ok(())
        };
        let parking = &mut self.parking;
        let mut orphans = Vec::new();
        self.known.local.each(conn, folded, last, |op| {
            if op.table == crate::log::floors::TABLE {
                return Ok(()); // a floor op (log/floors.rs) touches no row
            }
            let key = log::row_key(op.key.iter().map(|(_, v)| v));
            // a row this device wrote is judged as an imported one (its connection may not
            // enforce foreign keys), and so are the rows that name one it deleted
            parking.wrote_here(op.table_id, &key, op.kind == crate::op::OpKind::Delete);
            if op.kind == crate::op::OpKind::Delete
                && parking.references.to(op.table_id).next().is_some()
            {
                orphans.push((
                    op.table_id,
                    op.key
                        .iter()
                        .map(|(_, v)| v.clone())
                        .collect::<Vec<Value>>(),
                ));
            }
            batch.push((op.table_id, key, SELF, op.seq));
            if batch.len() == BATCH {
                fold(&mut batch)?;
            }
            Ok(())
        })?;
        fold(&mut batch)?;
        for (table_id, key) in orphans {
            if let Some(table) = self.known.tables.iter().find(|t| t.id == table_id) {
                self.queue_children(table, &key, true)?;
            }
        }
        crate::schema::set_state(conn, "folded", last)
    }

    /// The cached statement for `sql`, with `params` bound.
    pub(super) fn cached(&mut self, sql: &'static str, params: &[Value]) -> Result<&mut Stmt<'a>> {
        let stmt = self.statements.get(sql)?;
        stmt.bind_all(params)?;
        Ok(stmt)
    }

    /// Runs a cached statement to completion.
    pub(super) fn run(&mut self, sql: &'static str, params: &[Value]) -> Result<()> {
        self.cached(sql, &[])?.execute(params)
    }

    /// The first row of a cached query.
    pub(super) fn query_row(
        &mut self,
        sql: &'static str,
        params: &[Value],
    ) -> Result<Option<Vec<Value>>> {
        let stmt = self.cached(sql, params)?;
        let result = stmt
            .step()
            .and_then(|row| row.map(|row| row.values()).transpose());
        stmt.reset();
        result
    }
}
