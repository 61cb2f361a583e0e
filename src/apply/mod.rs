//! Apply: `sync_bundle_in`, which validates a bundle whole, stores its ops, applies them in
//! causal order and brings every row they touch to the state the merge rule gives; and
//! `sync_fork` with the fork the identity checks run, and the fold `sync_resolve` runs first.
//!
//! - `bundle_in.rs`: `sync_bundle_in`: read and check the bundle whole, then import it in one
//!   savepoint, step by step (`import()`): fold this device's new ops (`settle.rs`); fork first
//!   if the bundle shows this database's history was put back (`fork.rs`); store the bundle's
//!   ops (`store.rs`); resolve deps that wait for a history (`histories.rs`); deliver them in
//!   causal order (`delivery.rs`); write applied rows (`settle.rs`: a new row at once, an update
//!   that follows every live op of its row at once too, `forward.rs`); record this device's next
//!   context (`store.rs`); settle the touched rows (`settle.rs`); hold out the rows that break a
//!   constraint here and bring back those that no longer do (`park.rs`); record the bundle
//!   (`store.rs`).
//! - `folder_in.rs`: `sync_folder_in`, every bundle of a shared folder imported in turn.
//! - `park.rs`: the rule that holds rows out of their tables, the same on every device;
//!   `parking.rs`: what an import knows of them; `references.rs`: the FOREIGN KEYs it judges.
//! - `checks.rs`: what a bundle's ops must be before anything is written (forms, deps).
//! - `follow.rs`: at each sync call, columns added to a synced table are captured, and filled
//!   with what received ops kept for them; `catch_up.rs`: a table enabled again records what it
//!   holds that the log's state does not.
//! - `floor.rs`: a floor op applied (log/floors.rs), and the rows behind it settled again.
//! - `kept.rs`: received ops kept out of the tables until this device captures their table, and
//!   declares it as their writer did.
//! - `import.rs`: `Import`, everything one import holds, by what it is.
//! - `histories.rs`: two histories under one device id, told apart; `fork.rs`: this database
//!   becomes a new device; `behind.rs`: where compaction removes ops, a compaction point
//!   decides a device's history below it; `removed.rs`: a bundle's base (ops its writer
//!   removed); `displaced.rs`: ops held pending over a gap that another op fills; `lost.rs`:
//!   the writes a compaction point decided against, told (`sync_lost`);
//!   `carried_points.rs`: what the points a bundle carries name and saw, read first.
//! - `row_writer.rs`, `quiet.rs`: how rows are written: by statements prepared per table and
//!   columns, out of the log but with the app's triggers (the database's foreign-key actions
//!   are not carried out: a row left naming a row that is gone is held out, park.rs).
//!
//! Words: an op is **stored** when it is in `_sync_remote`, **pending** until every op of its
//! context is applied, **applied** once its row was written; **touched** rows are those with
//! more than one op that the import settles at its end (a row whose only op is the new one is
//! written at once).
//!
//! Invariants: nothing is written before the whole bundle is validated; every well-formed
//! bundle imports (a row that would break a constraint is held out: park.rs); everything is written in
//! one savepoint, so an error leaves the database as it was; an op is applied only when every op
//! in its causal context is (others wait as pending); the importer's own writes to user tables
//! are never captured as local ops (quiet.rs: all triggers off, or only the capture triggers
//! dropped when the app has triggers of its own); and a touched row is rewritten from the whole set
//! of ops on it (merge/), so the order in which ops arrive does not matter.

mod behind;
mod bundle_in;
mod carried_points;
mod catch_up;
mod checks;
mod delivery;
mod displaced;
mod floor;
mod folder_in;
mod follow;
mod fork;
mod forward;
mod histories;
mod import;
mod kept;
mod lost;
mod park;
mod parking;
mod quiet;
mod references;
mod removed;
mod row_writer;
mod settle;
mod store;
mod two_sides;

pub use bundle_in::sync_bundle_in;

/// What an import does at its end, in its transaction (the automatic compaction:
/// compact/mod.rs `after_import`, which lib.rs hands in); what it did, as JSON, if anything.
pub type After = fn(&crate::db::Conn) -> crate::db::Result<Option<String>>;

/// Whether the caller has no transaction open (`BEGIN`) and the connection can write: where an
/// import runs its `After`. Asked before the import's savepoint opens.
fn outside_a_transaction(conn: &crate::db::Conn) -> bool {
    conn.is_autocommit() && !conn.is_readonly()
}
pub use catch_up::catch_up;
pub use floor::settle_behind_floors;
pub use folder_in::sync_folder_in;
pub use follow::follow_schema;
pub use fork::{fork, sync_fork};
pub use park::{held_out, held_out_reason};
pub use settle::fold_local;
