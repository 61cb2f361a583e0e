//! The metadata's layout: every `_sync_*` table, its creation, and the small facts every stage
//! reads (is this database a device, which layout, named counters).
//!
//! Invariant: this module owns the DDL of every `_sync_*` table and view the extension makes,
//! and `LAYOUT` names that layout: a database whose `_sync_device.format` differs is refused,
//! never misread. Each table names the module that describes it.
//!
//! # Layout (main schema; format 5)
//!
//! ```text
//! _sync_device(one = 1, id BLOB, format INTEGER)   this device: 16 random bytes; layout version
//! _sync_tables(id, name, enabled, shape)            every table ever enabled, and its current shape
//! _sync_shapes(id, table_id, columns, pk)           msgpack [name, …] in column order, and the
//!                                                   positions of the PK columns in PK order
//! _sync_ops(seq INTEGER PRIMARY KEY, shape, kind, mask, v0, v1, …)     local ops (log/local.rs)
//!
//! _sync_devices(idx, id, parent, base)   every device this one has heard of; idx 1 is itself.
//!                                        A second history of a device (apply/histories.rs)
//!                                        forks from history `parent` after its op `base`
//! _sync_remote(device, seq, lamport, applied, form, vals)  ops of other devices (log/remote.rs):
//!                                        their form and values (form.rs); applied = 0 while
//!                                        pending (indexed by _sync_remote_pending)
//! _sync_forms(id, form)                  the forms of received ops (form.rs)
//! _sync_clock(device, seq)               per other device: highest seq applied, none missing
//! _sync_deps(device, seq, dep, dep_seq, hash)  causal contexts, as change points: from op
//!                                        `seq` of `device` on, its clock holds `dep_seq` for
//!                                        `dep`, the op with `hash` (a negative `dep` waits for
//!                                        the history that holds it: apply/histories.rs)
//! _sync_hashes(device, seq, hash)        checkpoints of each device's hash chain (log/chain.rs)
//! _sync_twins(device, seq, deps)         the deps as written of received ops whose deps name
//!                                        two histories held here as one (apply/store.rs)
//! _sync_epochs(local_seq, lamport)       one row per import: the last local seq before it and
//!                                        the highest Lamport time known after it
//! _sync_rows(table_id, key, device, seq, live)  which ops touched which row (key: msgpack of
//! _sync_row_ops(table_id, key, device, seq)    the PK values), for ops applied or folded in
//!                                        (`folded`): the first op indexed on a row in
//!                                        _sync_rows, every later one in _sync_row_ops (a new
//!                                        row costs one write); `live`: the row's live ops
//!                                        (merge/live.rs), NULL while the first op is the only one
//! _sync_universes(id, names)             the column names of live sets, once each (msgpack
//!                                        [name, …]: merge/live.rs)
//! _sync_kept(table_id, key, device, seq, why)  received ops applied but not written: their
//!                                        table is not captured here (why NULL), or declared
//!                                        otherwise than where they were written (why says
//!                                        how); not in the row index (apply/kept.rs)
//! _sync_declared(device, name, version, decl)  how each device declares each table now
//!                                        (log/declared.rs); the highest version wins
//! _sync_peers(peer, device, seq, hash)   what each peer is known to have: the clock its last
//!                                        bundle carried, with the hash of each entry's op
//! _sync_relayed(peer, device, seq)       what a device this one hears of through others has,
//!                                        at least: the least seq of each history that a
//!                                        bundle's writer said every device it heard of has
//!                                        (log/stable.rs)
//! _sync_stable(device, seq, hash)        per device, what every device known here has, as
//!                                        bundles taught it while no other device became
//!                                        known (log/stable.rs)
//! _sync_floors(device, seq, of, of_seq)  per floor op applied here, its floor's entries
//!                                        (log/floors.rs)
//! _sync_removed(device, upto)            per history, the seq at or below which compaction
//!                                        may have removed ops (compact/remove.rs)
//! _sync_aside(root, upto, bundle)        ops set aside until a compaction point decides
//!                                        where they go (apply/behind.rs)
//! _sync_strays(device, seq, hash, prev) ops of another history than the one held at their
//!                                        seq, dropped here or named by a bundle: each one's
//!                                        link to the op before it (log/strays.rs)
//! _sync_lost(device, seq, hash, table_name, pk, kind, cell_values, certain, reason)
//!                                        writes a compaction point decided against, dropped
//!                                        here (apply/lost.rs); the view sync_lost shows them
//! _sync_forgotten(id)                    devices forgotten here (`sync_forget`): what they
//!                                        say they have no longer counts (log/forgotten.rs)
//! _sync_bundles(id, source)              bundles imported
//! _sync_conflicts(...)                   conflict records (conflicts.rs); sync_conflicts shows
//!                                        them (and view sync_conflict_records)
//! _sync_parked(table_id, key, why, cells, by_table, by_key, ...)  rows held out of their
//!                                        table by a constraint, why, and the row that holds
//!                                        them out (apply/park.rs); in sync_conflicts
//! _sync_state(name, value)               `file` (identity.rs), `layout_by` (the release that
//!                                        made this layout), `former <id>` (ids this device
//!                                        had before it forked), `confirmed <id>` (the
//!                                        highest seq of this device's id a peer said it has
//!                                        with the hash held here: apply/lost.rs), counters:
//!                                        `folded` (last
//!                                        local seq in _sync_rows),
//!                                        `lamport` (highest Lamport time applied; after an
//!                                        import that dropped ops, of the ops held); `format
//!                                        <device index>`: the format of the latest bundle
//!                                        from that device (bundle/out.rs); `stable devices`:
//!                                        a fingerprint of the devices known when
//!                                        _sync_stable was written (log/stable.rs); `read_lazily`
//!                                        = 1: contexts and epochs read as for an old database
//!                                        (log/contexts.rs), for the tests
//! ```
//!

use crate::db::{Conn, Error, Result};
use crate::value::Value;

/// Each device's change points by dep: a context is read from the points it needs
/// (log/contexts.rs), and a dep's point in force at an op in one index step (`dep_seq` in the
/// index: `entry_once`). Created by `upgrade` in databases made before it, which drops the
/// index without `dep_seq` that builds before it made.
const DEPS_BY_DEP: &str =
    "CREATE INDEX IF NOT EXISTS main._sync_deps_by_dep_seq ON _sync_deps(device, dep, seq, dep_seq)";

/// Brings a database of this layout made by an earlier build up to this one: indexes added
/// since (nothing when they are there). Run by every import.
pub fn upgrade(conn: &Conn) -> Result<()> {
    conn.exec(UNIVERSES, &[])?;
    // layout 4 (release 0.1.0, and this release before its live sets named their universes by
    // id) has every table of this one: it is this layout once `_sync_universes` is there, and
    // builds of layout 4 cannot read the live sets this build writes, so they are told to
    // upgrade (`require_initialized`)
    conn.exec(
        "UPDATE main._sync_device SET format = ?1 WHERE format = ?2",
        &[Value::Integer(LAYOUT), Value::Integer(LAYOUT_BEFORE)],
    )?;
    if conn.changes() > 0 {
        conn.exec(
            "INSERT OR REPLACE INTO main._sync_state(name, value) VALUES ('layout_by', ?1)",
            &[Value::Text(this_build())],
        )?;
    }
    conn.exec(DEPS_BY_DEP, &[])?;
    conn.exec("DROP INDEX IF EXISTS main._sync_deps_by_dep", &[])?;
    conn.exec(STABLE, &[])?;
    conn.exec(RELAYED, &[])?;
    conn.exec(KEPT, &[])?;
    conn.exec(DECLARED, &[])?;
    conn.exec(WAITING_VIEW, &[])?;
    conn.exec(PARKED, &[])?;
    conn.exec(PARKED_BY, &[])?;
    conn.exec(PARKED_WHY, &[])?;
    conn.exec(LOST, &[])?;
    conn.exec(LOST_VIEW, &[])?;
    // the release that made this layout, for the error of a build that cannot read it (a build
    // that changes the layout sets it to its own version)
    conn.exec(
        "INSERT OR IGNORE INTO main._sync_state(name, value) VALUES ('layout_by', ?1)",
        &[Value::Text(this_build())],
    )?;
    conflicts_view(conn)
}

/// Rows held out of their tables because they break a constraint here (apply/park.rs), with
/// what `sync_conflicts` shows of each. Created by `upgrade` in databases made before it.
const PARKED: &str = "CREATE TABLE IF NOT EXISTS main._sync_parked(
       table_id INTEGER NOT NULL,
       key BLOB NOT NULL,
       why INTEGER NOT NULL,
       cells BLOB NOT NULL,
       by_table INTEGER,
       by_key BLOB,
       id BLOB NOT NULL,
       pk TEXT NOT NULL,
       columns TEXT NOT NULL,
       op TEXT,
       row_values TEXT NOT NULL,
       by_op TEXT,
       by_values TEXT NOT NULL,
       reason TEXT NOT NULL,
       PRIMARY KEY (table_id, key)
     ) WITHOUT ROWID";

/// The rows held out because of a row: found when that row changes; and by why, for those
/// every import judges (apply/park.rs).
const PARKED_BY: &str = "CREATE INDEX IF NOT EXISTS main._sync_parked_by
       ON _sync_parked(by_table, by_key) WHERE by_key IS NOT NULL";
const PARKED_WHY: &str =
    "CREATE INDEX IF NOT EXISTS main._sync_parked_why ON _sync_parked(why, by_table)";

/// Per floor op held here (log/floors.rs), its entries placed in the histories held here.
pub const FLOORS: &str = "CREATE TABLE IF NOT EXISTS main._sync_floors(
       device INTEGER NOT NULL,
       seq INTEGER NOT NULL,
       of INTEGER NOT NULL,
       of_seq INTEGER NOT NULL,
       PRIMARY KEY (device, seq, of)
     ) WITHOUT ROWID";

/// The deps of received ops that name two histories of one device which this device holds as
/// one (apply/store.rs): their change points are stored as one, so the deps as written are kept
/// here, msgpack [[device id, seq, link], …], for the op to travel as it was written.
pub const TWINS: &str = "CREATE TABLE IF NOT EXISTS main._sync_twins(
       device INTEGER NOT NULL,
       seq INTEGER NOT NULL,
       deps BLOB NOT NULL,
       PRIMARY KEY (device, seq)
     ) WITHOUT ROWID";

/// Ops of another history than the one held at their seq (log/strays.rs): made on first use.
pub const STRAYS: &str = "CREATE TABLE IF NOT EXISTS main._sync_strays(
       device BLOB NOT NULL,
       seq INTEGER NOT NULL,
       hash BLOB NOT NULL,
       prev BLOB NOT NULL,
       PRIMARY KEY (device, seq, hash)
     ) WITHOUT ROWID";

/// Per history, the highest seq at or below which compaction may have removed its ops
/// (compact/remove.rs): their hashes are known here only where a checkpoint holds them.
pub const REMOVED: &str = "CREATE TABLE IF NOT EXISTS main._sync_removed(
       device INTEGER PRIMARY KEY,
       upto INTEGER NOT NULL
     )";

/// Ops of a history set aside until a compaction point decides where they go (apply/
/// behind.rs): per device (its first history), the seq above which they follow, and the ops
/// as a bundle.
pub const ASIDE: &str = "CREATE TABLE IF NOT EXISTS main._sync_aside(
       root INTEGER NOT NULL,
       upto INTEGER NOT NULL,
       bundle BLOB NOT NULL
     )";

/// Compaction points (by their writer's id and seq) with an entry that this device could not
/// place when it learnt them: the entry named an op of a history held here otherwise (apply/
/// floor.rs). Placed again at every import until they are.
pub const UNPLACED: &str = "CREATE TABLE IF NOT EXISTS main._sync_unplaced(
       writer BLOB NOT NULL,
       seq INTEGER NOT NULL,
       PRIMARY KEY (writer, seq)
     ) WITHOUT ROWID";

/// Writes a compaction point decided against, this device's account of them (apply/lost.rs).
/// Created by `upgrade` in databases made before it.
pub const LOST: &str = "CREATE TABLE IF NOT EXISTS main._sync_lost(
       device BLOB NOT NULL,
       seq INTEGER NOT NULL,
       hash BLOB NOT NULL,
       table_name TEXT NOT NULL,
       pk TEXT NOT NULL,
       kind TEXT NOT NULL,
       cell_values TEXT NOT NULL,
       certain INTEGER NOT NULL,
       reason TEXT NOT NULL,
       UNIQUE (device, seq, hash)
     )";

/// `sync_lost`: the records of `_sync_lost`, oldest first (delete them from `_sync_lost` once
/// seen to).
pub const LOST_VIEW: &str = "CREATE VIEW IF NOT EXISTS main.sync_lost(id, device, seq, table_name,
       pk, kind, cell_values, certain, reason) AS
     SELECT rowid, lower(hex(device)), seq, table_name, pk, kind, cell_values, certain, reason
     FROM _sync_lost ORDER BY rowid";

/// What bundles taught of the stable clock (log/stable.rs). Created by `upgrade` in databases
/// made before it.
const STABLE: &str = "CREATE TABLE IF NOT EXISTS main._sync_stable(
       device INTEGER PRIMARY KEY,
       seq INTEGER NOT NULL,
       hash BLOB NOT NULL
     )";

/// What devices heard of through others have, at least (log/stable.rs). Created by `upgrade`
/// in databases made before it.
pub const RELAYED: &str = "CREATE TABLE IF NOT EXISTS main._sync_relayed(
       peer INTEGER NOT NULL,
       device INTEGER NOT NULL,
       seq INTEGER NOT NULL,
       PRIMARY KEY (peer, device)
     ) WITHOUT ROWID";

/// How each device declares each table now (log/declared.rs). Created by `upgrade` in
/// databases made before it.
const DECLARED: &str = "CREATE TABLE IF NOT EXISTS main._sync_declared(
       device INTEGER NOT NULL,
       name TEXT NOT NULL,
       version INTEGER NOT NULL,
       decl BLOB NOT NULL,
       PRIMARY KEY (device, name)
     ) WITHOUT ROWID";

/// What received ops wait for, by table (apply/kept.rs): the view `sync_waiting`.
const WAITING_VIEW: &str = "CREATE VIEW IF NOT EXISTS main.sync_waiting(table_name, ops, reason) AS
     SELECT t.name, count(*), coalesce(k.why, CASE WHEN t.enabled
              THEN 'the table was enabled since: the next sync call applies them'
              ELSE 'the table is not created, or not enabled, on this device: create it as the '
                   || 'other devices do and call sync_enable(' || quote(t.name) || ')' END)
     FROM _sync_kept k JOIN _sync_tables t ON t.id = k.table_id
     GROUP BY k.table_id, k.why";

/// Received ops of tables not captured here when they were applied (apply/catch_up.rs).
/// Created by `upgrade` in databases made before it.
const KEPT: &str = "CREATE TABLE IF NOT EXISTS main._sync_kept(
       table_id INTEGER NOT NULL,
       key BLOB NOT NULL,
       device INTEGER NOT NULL,
       seq INTEGER NOT NULL,
       why TEXT,
       PRIMARY KEY (table_id, key, device, seq)
     ) WITHOUT ROWID";

/// This build as `layout_by` names it: the release and the commit (builds of one release may
/// write different layouts).
fn this_build() -> String {
    format!(
        "{} (git {})",
        env!("CARGO_PKG_VERSION"),
        env!("SQLITE_SYNC_GIT")
    )
}

/// Layout version of the tables above.
pub const LAYOUT: i64 = 5;

/// The layout before this one, which this build reads and moves to its own at its first write
/// (`upgrade`).
const LAYOUT_BEFORE: i64 = 4;

/// The column names of live sets (merge/live.rs `Universes`). Created by `upgrade` in
/// databases made before it.
const UNIVERSES: &str = "CREATE TABLE IF NOT EXISTS main._sync_universes(
       id INTEGER PRIMARY KEY,
       names BLOB NOT NULL
     )";

/// Name prefix reserved for the extension's own tables, triggers and views.
pub const INTERNAL_PREFIX: &str = "_sync_";

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS _sync_device(
       one INTEGER PRIMARY KEY CHECK (one = 1),
       id BLOB NOT NULL CHECK (typeof(id) = 'blob' AND length(id) = 16),
       format INTEGER NOT NULL
     )",
    "CREATE TABLE IF NOT EXISTS _sync_tables(
       id INTEGER PRIMARY KEY,
       name TEXT NOT NULL UNIQUE COLLATE NOCASE,
       enabled INTEGER NOT NULL,
       shape INTEGER
     )",
    "CREATE TABLE IF NOT EXISTS _sync_shapes(
       id INTEGER PRIMARY KEY,
       table_id INTEGER NOT NULL,
       columns BLOB NOT NULL,
       pk BLOB NOT NULL
     )",
    "CREATE TABLE IF NOT EXISTS _sync_epochs(
       local_seq INTEGER PRIMARY KEY,
       lamport INTEGER NOT NULL
     )",
    "CREATE TABLE IF NOT EXISTS _sync_devices(
       idx INTEGER PRIMARY KEY,
       id BLOB NOT NULL UNIQUE,
       parent INTEGER,
       base INTEGER
     )",
    "CREATE TABLE IF NOT EXISTS _sync_remote(
       device INTEGER NOT NULL,
       seq INTEGER NOT NULL,
       lamport INTEGER NOT NULL,
       applied INTEGER NOT NULL,
       form INTEGER NOT NULL,
       vals BLOB NOT NULL,
       PRIMARY KEY (device, seq)
     ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS _sync_forms(
       id INTEGER PRIMARY KEY,
       form BLOB NOT NULL UNIQUE
     )",
    // pending ops are few: finding and counting them must not scan every op ever received
    "CREATE INDEX IF NOT EXISTS _sync_remote_pending ON _sync_remote(device, seq) WHERE applied = 0",
    "CREATE TABLE IF NOT EXISTS _sync_clock(
       device INTEGER PRIMARY KEY,
       seq INTEGER NOT NULL
     )",
    "CREATE TABLE IF NOT EXISTS _sync_deps(
       device INTEGER NOT NULL,
       seq INTEGER NOT NULL,
       dep INTEGER NOT NULL,
       dep_seq INTEGER NOT NULL,
       hash BLOB NOT NULL,
       PRIMARY KEY (device, seq, dep)
     ) WITHOUT ROWID",
    DEPS_BY_DEP,
    // deps waiting for an op of a history not held here (apply/histories.rs) are few
    "CREATE INDEX IF NOT EXISTS _sync_deps_waiting ON _sync_deps(dep) WHERE dep < 0",
    "CREATE TABLE IF NOT EXISTS _sync_rows(
       table_id INTEGER NOT NULL,
       key BLOB NOT NULL,
       device INTEGER NOT NULL,
       seq INTEGER NOT NULL,
       live BLOB,
       PRIMARY KEY (table_id, key)
     ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS _sync_row_ops(
       table_id INTEGER NOT NULL,
       key BLOB NOT NULL,
       device INTEGER NOT NULL,
       seq INTEGER NOT NULL,
       PRIMARY KEY (table_id, key, device, seq)
     ) WITHOUT ROWID",
    KEPT,
    DECLARED,
    PARKED,
    PARKED_BY,
    PARKED_WHY,
    "CREATE TABLE IF NOT EXISTS _sync_peers(
       peer INTEGER NOT NULL,
       device INTEGER NOT NULL,
       seq INTEGER NOT NULL,
       hash BLOB,
       PRIMARY KEY (peer, device)
     ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS _sync_hashes(
       device INTEGER NOT NULL,
       seq INTEGER NOT NULL,
       hash BLOB NOT NULL,
       PRIMARY KEY (device, seq)
     ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS _sync_bundles(
       id BLOB PRIMARY KEY,
       source INTEGER NOT NULL
     )",
    "CREATE TABLE IF NOT EXISTS _sync_state(
       name TEXT PRIMARY KEY,
       value
     )",
    "CREATE TABLE IF NOT EXISTS _sync_ops(
       seq INTEGER PRIMARY KEY,
       shape INTEGER NOT NULL,
       kind INTEGER NOT NULL,
       mask INTEGER
     )",
    "CREATE TRIGGER IF NOT EXISTS _sync_ops_no_update BEFORE UPDATE ON _sync_ops
     BEGIN SELECT RAISE(ABORT, 'sqlite-sync: the op log is append-only (UPDATE refused)'); END",
    OPS_NO_DELETE,
];

/// The log refuses DELETE: only compaction removes ops, with this trigger dropped in its
/// savepoint (compact/remove.rs).
pub const OPS_NO_DELETE: &str = "CREATE TRIGGER IF NOT EXISTS _sync_ops_no_delete
     BEFORE DELETE ON _sync_ops
     BEGIN SELECT RAISE(ABORT, 'sqlite-sync: the op log is append-only (DELETE refused)'); END";

/// The view an app trigger reads to tell a change an import makes from a local one: it shows
/// one row while an import writes (apply/quiet.rs).
pub const IMPORTING_VIEW: &str = "CREATE VIEW IF NOT EXISTS main.sync_importing(importing) AS
     SELECT 1 FROM _sync_state WHERE name = 'importing'";

/// Renames the ops of device `from` with seq `from_seq` or above as ops of device `to` wherever
/// they are named: their change points, the change points that name them, the row index, the
/// conflict records, the hash checkpoints, the stable clock and the floors (a fork: apply/fork.rs; a split
/// of histories: apply/histories.rs). The live sets that name them are computed again when
/// their rows are next settled.
pub fn rename_ops(conn: &Conn, from: DeviceIdx, to: DeviceIdx, from_seq: u64) -> Result<()> {
    conn.exec(FLOORS, &[])?;
    conn.exec(REMOVED, &[])?;
    conn.exec(TWINS, &[])?;
    conn.exec(STABLE, &[])?; // (a database an earlier build made may fork before an import)
    conn.exec(RELAYED, &[])?;
    // the live sets that name them (merge/live.rs) are marked to be computed again
    conn.exec(
        "UPDATE main._sync_rows SET live = x'' WHERE live IS NOT NULL AND (
           (device = ?1 AND seq >= ?2)
           OR (table_id, key) IN (SELECT table_id, key FROM main._sync_row_ops
                                  WHERE device = ?1 AND seq >= ?2))",
        &[Value::from(from), Value::Integer(from_seq as i64)],
    )?;
    for sql in [
        "UPDATE main._sync_deps SET device = ?1 WHERE device = ?2 AND seq >= ?3",
        // (an op that named both keeps the later, which is the renamed one: its deps as written
        // were kept first, apply/histories.rs `twins_of_merge`)
        "UPDATE OR REPLACE main._sync_deps SET dep = ?1 WHERE dep = ?2 AND dep_seq >= ?3",
        "UPDATE main._sync_rows SET device = ?1 WHERE device = ?2 AND seq >= ?3",
        "UPDATE main._sync_row_ops SET device = ?1 WHERE device = ?2 AND seq >= ?3",
        "UPDATE main._sync_kept SET device = ?1 WHERE device = ?2 AND seq >= ?3",
        "UPDATE main._sync_conflicts SET loser_device = ?1
         WHERE loser_device = ?2 AND loser_seq >= ?3",
        "UPDATE main._sync_conflicts SET winner_device = ?1
         WHERE winner_device = ?2 AND winner_seq >= ?3",
        "UPDATE main._sync_hashes SET device = ?1 WHERE device = ?2 AND seq >= ?3",
        "UPDATE main._sync_twins SET device = ?1 WHERE device = ?2 AND seq >= ?3",
        // (every device had the op: it is the same op in its new history)
        "UPDATE OR REPLACE main._sync_stable SET device = ?1 WHERE device = ?2 AND seq >= ?3",
        "UPDATE main._sync_floors SET device = ?1 WHERE device = ?2 AND seq >= ?3",
        "UPDATE OR REPLACE main._sync_floors SET of = ?1 WHERE of = ?2 AND of_seq >= ?3",
        // a removal horizon above where the renamed ops start holds for both: the renamed ops
        // may have gaps up to it, and the ops left may have gaps below where they end
        "INSERT OR REPLACE INTO main._sync_removed(device, upto)
         SELECT ?1, upto FROM main._sync_removed WHERE device = ?2 AND upto >= ?3",
        "DELETE FROM main._sync_removed WHERE device = ?2 AND upto >= ?3 AND ?3 <= 1",
        "UPDATE main._sync_removed SET upto = ?3 - 1 WHERE device = ?2 AND upto >= ?3",
    ] {
        conn.exec(
            sql,
            &[
                Value::from(to),
                Value::from(from),
                Value::Integer(from_seq as i64),
            ],
        )?;
    }
    Ok(())
}

/// A device's small index in this database (`_sync_devices.idx`, and every `device` column of
/// the metadata): local to this database, unlike the 16-byte device id (`op::DeviceId`), which
/// is the same everywhere. A second history of a device has an index of its own; a negative one
/// is a placeholder for a dep that waits (log/clock.rs `waiting`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceIdx(pub i64);

impl From<DeviceIdx> for Value {
    fn from(idx: DeviceIdx) -> Value {
        Value::Integer(idx.0)
    }
}

impl std::fmt::Display for DeviceIdx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The index of this device.
pub const SELF: DeviceIdx = DeviceIdx(1);

/// `_sync_conflicts.state`: open, resolved, changed (a side was superseded).
pub const OPEN: i64 = 0;
pub const RESOLVED: i64 = 1;
pub const CHANGED: i64 = 2;

/// Creates every table of the layout (sync_init, once).
pub fn create(conn: &Conn) -> Result<()> {
    for stmt in SCHEMA {
        conn.exec(stmt, &[])?;
    }
    conn.exec(STABLE, &[])?;
    conn.exec(RELAYED, &[])?;
    conn.exec(LOST, &[])?;
    conn.exec(LOST_VIEW, &[])?;
    create_conflicts(conn)
}

/// Creates `_sync_conflicts` and the view `sync_conflict_records` (conflicts.rs writes and reads
/// them).
fn create_conflicts(conn: &Conn) -> Result<()> {
    conn.exec(
        "CREATE TABLE IF NOT EXISTS main._sync_conflicts(
           id BLOB PRIMARY KEY,
           table_id INTEGER NOT NULL,
           key BLOB NOT NULL,
           pk TEXT NOT NULL,
           columns TEXT NOT NULL,
           loser_device INTEGER NOT NULL,
           loser_seq INTEGER NOT NULL,
           loser_op TEXT NOT NULL,
           loser_values TEXT NOT NULL,
           winner_device INTEGER NOT NULL,
           winner_seq INTEGER NOT NULL,
           winner_op TEXT NOT NULL,
           winner_values TEXT NOT NULL,
           state INTEGER NOT NULL,
           closed INTEGER
         )",
        &[],
    )?;
    conn.exec(
        &format!(
            "CREATE INDEX IF NOT EXISTS main._sync_conflicts_row ON _sync_conflicts(table_id, key)
             WHERE state = {OPEN}"
        ),
        &[],
    )?;
    conn.exec(
        "CREATE INDEX IF NOT EXISTS main._sync_conflicts_closed ON _sync_conflicts(closed)
         WHERE closed IS NOT NULL",
        &[],
    )?;
    conflicts_view(conn)
}

/// The records of concurrent edits (`_sync_conflicts`) and of rows held out by a constraint
/// (`_sync_parked`, apply/park.rs), by `kind`, as `sync_conflicts` shows them: the view
/// `sync_conflict_records`, readable without the extension, and the virtual table
/// `sync_conflicts` (conflicts.rs), which the same SQL serves with conditions `on_conflicts` (on
/// `c`, `_sync_conflicts`) and `on_parked` (on `p`, `_sync_parked`) and `t`, `_sync_tables`.
pub fn conflict_records_sql(on_conflicts: &str, on_parked: &str) -> String {
    // the same rule as `winner_is_local`
    let mine = format!("(c.winner_device = {SELF} AND c.loser_device <> {SELF})");
    // views name their tables unqualified: a view may not reach into `main` when its database
    // is ATTACHed under another name
    format!(
        "SELECT lower(hex(c.id)), t.name, c.pk, c.columns,
                CASE WHEN {mine} THEN c.winner_op ELSE c.loser_op END,
                CASE WHEN {mine} THEN c.loser_op ELSE c.winner_op END,
                c.winner_op,
                CASE WHEN {mine} THEN c.winner_values ELSE c.loser_values END,
                CASE WHEN {mine} THEN c.loser_values ELSE c.winner_values END,
                c.state, 'concurrent', NULL
         FROM _sync_conflicts c JOIN _sync_tables t ON t.id = c.table_id
         WHERE c.state <> {CHANGED} {on_conflicts}
         UNION ALL
         SELECT lower(hex(p.id)), t.name, p.pk, p.columns, p.op, p.by_op,
                CASE WHEN p.why = {UNIQUE} THEN p.by_op END, p.row_values, p.by_values, 0,
                'constraint', p.reason
         FROM _sync_parked p JOIN _sync_tables t ON t.id = p.table_id
         WHERE p.why <> {PENDING} {on_parked}"
    )
}

/// The columns of `sync_conflicts` and `sync_conflict_records`.
pub const CONFLICT_COLUMNS: &[&str] = &[
    "id",
    "table_name",
    "pk",
    "columns",
    "local_op_id",
    "remote_op_id",
    "winner_op_id",
    "local_values",
    "remote_values",
    "resolved",
    "kind",
    "reason",
];

/// The view `sync_conflict_records` (made when missing), and no view `sync_conflicts`: earlier
/// builds made one, which would hide the virtual table of that name.
fn conflicts_view(conn: &Conn) -> Result<()> {
    let views = |name: &str| {
        conn.query_value(
            "SELECT 1 FROM main.sqlite_schema WHERE type = 'view' AND name = ?1",
            &[Value::Text(name.into())],
        )
    };
    if views("sync_conflicts")?.is_some() {
        conn.exec("DROP VIEW main.sync_conflicts", &[])?;
    }
    if views("sync_conflict_records")?.is_some() {
        return Ok(());
    }
    conn.exec(
        &format!(
            "CREATE VIEW main.sync_conflict_records({}) AS {}",
            CONFLICT_COLUMNS.join(", "),
            conflict_records_sql("", "")
        ),
        &[],
    )
}

/// `_sync_parked.why` (apply/park.rs): why a row is held out of its table.
pub const PENDING: i64 = 0;
pub const ROW: i64 = 1;
pub const UNIQUE: i64 = 2;
pub const MISSING: i64 = 3;
pub const HELD: i64 = 4;

/// True once `sync_init()` has run on this database.
pub fn is_initialized(conn: &Conn) -> Result<bool> {
    Ok(conn
        .query_value(
            "SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = '_sync_device'",
            &[],
        )?
        .is_some())
}

/// Fails with a message that says what to do when `sync_init()` has not run.
/// Fails as well when the metadata has another layout than this build's or the one before it
/// (which its first write moves to this one: `upgrade`).
pub fn require_initialized(conn: &Conn) -> Result<()> {
    if !is_initialized(conn)? {
        return Err(Error::new(
            "this database has no sync metadata: run SELECT sync_init(); first",
        ));
    }
    let format = conn
        .query_value("SELECT format FROM main._sync_device", &[])?
        .and_then(|v| v.as_i64());
    match format {
        Some(LAYOUT | LAYOUT_BEFORE) => Ok(()),
        Some(newer) if newer > LAYOUT => {
            let by = conn
                .query_value(
                    "SELECT value FROM main._sync_state WHERE name = 'layout_by'",
                    &[],
                )?
                .and_then(|v| v.as_text().map(str::to_string))
                .unwrap_or_else(|| "a newer release".into());
            Err(Error::new(format!(
                "this database's sync metadata has layout {newer}, made by sqlite-sync {by}; \
                 this build ({}) reads layout {LAYOUT}: upgrade the extension to {by} or later",
                this_build()
            )))
        }
        other => Err(Error::new(format!(
            "this database's sync metadata has layout {}, and this build reads layout {LAYOUT} \
             (and {LAYOUT_BEFORE}) only (to move its data: with the build that made it, write a bundle of every op, \
             sync_bundle_out(NULL, path), and import it into a new database with this build)",
            other.map_or("?".to_string(), |f| f.to_string())
        ))),
    }
}

/// This device's 16-byte id, or `None` before `sync_init()`.
pub fn device_id(conn: &Conn) -> Result<Option<Vec<u8>>> {
    if !is_initialized(conn)? {
        return Ok(None);
    }
    Ok(conn
        .query_value("SELECT id FROM main._sync_device", &[])?
        .and_then(|v| v.as_blob().map(<[u8]>::to_vec)))
}

/// Takes the database's write lock first thing in a transaction (waiting as the busy timeout
/// says), so that what the transaction reads is what it writes over: a transaction that reads
/// first fails at its first write, without waiting, when another connection wrote in between.
pub fn lock_for_writing(conn: &Conn) -> Result<()> {
    conn.exec("UPDATE main._sync_device SET format = format", &[])
}

/// Whether `sync_compact()` removes the ops its compaction point made dead (compact/remove.rs)
/// and imports take a bundle's base (apply/removed.rs): yes, but where `_sync_state`
/// `compact_removes` is 0 (set by the tests that keep every op, to compare).
pub fn removal_on(conn: &Conn) -> Result<bool> {
    let set = conn.query_value(
        "SELECT value FROM main._sync_state WHERE name = 'compact_removes'",
        &[],
    )?;
    Ok(set.and_then(|v| v.as_i64()) != Some(0))
}

/// Reads and writes the counters in `_sync_state`.
pub fn state(conn: &Conn, name: &str) -> Result<u64> {
    Ok(conn
        .query_value(
            "SELECT value FROM main._sync_state WHERE name = ?1",
            &[Value::Text(name.into())],
        )?
        .and_then(|v| v.as_i64())
        .unwrap_or(0) as u64)
}

pub fn set_state(conn: &Conn, name: &str, value: u64) -> Result<()> {
    conn.exec(
        "INSERT INTO main._sync_state(name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        &[Value::Text(name.into()), Value::Integer(value as i64)],
    )
}

/// How many rows a constraint holds out of their tables now (apply/park.rs).
pub fn held_out_count(conn: &Conn) -> Result<i64> {
    Ok(conn
        .query_value(
            &format!(
                "SELECT count(*) FROM main._sync_parked WHERE why <> {}",
                PENDING
            ),
            &[],
        )?
        .and_then(|v| v.as_i64())
        .unwrap_or(0))
}

/// Whether the bundle with this id was imported here before.
pub fn imported_before(conn: &Conn, bundle_id: &[u8; 16]) -> Result<bool> {
    Ok(conn
        .query_value(
            "SELECT 1 FROM main._sync_bundles WHERE id = ?1",
            &[Value::Blob(bundle_id.to_vec())],
        )?
        .is_some())
}
