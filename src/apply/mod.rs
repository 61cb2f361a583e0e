//! Apply: `sync_bundle_in`, which validates a bundle whole, stores its ops, applies them in
//! causal order and brings every row they touch to the state the merge rule gives.
//!
//! Invariants: nothing is written before the whole bundle is validated; everything is written in
//! one savepoint, so an error leaves the database as it was; an op is applied only when every op
//! in its causal context is (others wait as pending); the importer's own writes to user tables
//! are made with triggers off, so they are never captured as local ops; and a touched row is
//! rewritten from the whole set of ops on it (merge/), so the order in which ops arrive does
//! not matter.

//!
//! - `bundle_in.rs`: `sync_bundle_in`: read and check the bundle whole, then import it in one
//!   savepoint.
//! - `checks.rs`: what a bundle's ops must be before anything is written (forms, deps).
//! - `import.rs`: `Import`, everything one import holds, by what it is; its steps, in order:
//!   store the bundle's ops (`store.rs`), deliver them in causal order (`delivery.rs`), write
//!   and settle the rows they touch (`settle.rs`), record what was imported (`store.rs`).
//! - `histories.rs`: two histories under one device id, told apart; `fork.rs`: this database
//!   becomes a new device.
//! - `row_writer.rs`, `quiet.rs`, `cascade.rs`: how rows are written: by statements prepared per
//!   table and columns, out of the log but with the app's triggers, and with the database's own
//!   foreign-key actions.

mod bundle_in;
mod cascade;
mod checks;
mod delivery;
mod fork;
mod histories;
mod import;
mod quiet;
pub mod row_writer;
mod settle;
mod store;

pub use bundle_in::sync_bundle_in;
pub use fork::{fork, sync_fork};
pub use settle::fold_local;
