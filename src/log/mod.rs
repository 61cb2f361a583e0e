//! The log: every op this database holds, its own and received ones, with what gives them meaning.
//!
//! - `local.rs`: this device's ops (`_sync_ops`), one row per captured change; `LogRow` is the
//!   only writer of that row layout, `LocalOps` its reader; `epochs.rs`: their Lamport epochs.
//! - `remote.rs`: ops received from other devices, each as its form and values (`_sync_remote`).
//! - `tables.rs`: the catalog: each synced table's shapes (the columns an op names) and key.
//! - `clock.rs`: the devices known, vector clocks and the causal order; `contexts.rs`: each op's
//!   causal context, read as it is asked for.
//! - `chain.rs`: each device's ops as a hash chain, so two histories under one id are told apart.
//! - `declared.rs`: how each device declares each table now, passed on in bundles.
//! - `stable.rs`: the stable clock: what every device known here has; `floors.rs`: the
//!   compaction points, floor ops that travel, and the ops behind them.
//! - `strays.rs`: ops of another history than the one held at their seq (a copy's, a backup's),
//!   each one's link to the op before it, for the deps that name them.
//! - `view.rs`: the `sync_log` view over both stores.
//!
//! Words: an op is named by (device, seq); `seq` counts 1, 2, 3 … per device with no gaps. A
//! local op's device is this device, its Lamport time is derived from the epoch rows of imports
//! and its context from the change points recorded at them (local.rs); a received op carries
//! both.
//!
//! Invariant: the log only grows, and an op, once held, never changes its encoding (hence its
//! hash). The moves: a fork (apply/fork.rs) turns this device's ops into received ops of its old
//! id, and a split of histories (apply/histories.rs) renames ops to another history, both
//! without encoding them anew. The drops: a pending op whose clock proves false
//! (apply/delivery.rs), so its true copy can still arrive.

pub mod chain;
pub mod clock;
mod contexts;
pub mod declared;
mod epochs;
pub mod floors;
pub mod forgotten;
mod local;
pub mod remote;
pub mod stable;
pub mod strays;
mod tables;
mod view;

pub use local::{last_local_seq, LocalOp, LocalOps, LogRow};
pub use tables::{affinity, row_key, stored_alike, synced_tables, Shape, SyncedTable};
pub use view::{
    rebuild_log_view, sync_log_op, sync_log_pk, sync_log_values, sync_op_id, widen, LOG_VIEW,
};
