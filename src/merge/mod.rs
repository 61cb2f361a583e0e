//! Merge: what a row shows and which of its writes conflict, from the set of ops on it.
//!
//! - `rule.rs`: the merge rule, a pure function of a row's ops and their causal order: the row's
//!   state, its live set (the ops with a write no later op overwrote) and the losing sides.
//! - `row_index.rs`: which ops touched which row (`_sync_rows`, `_sync_row_ops`), so a row is
//!   settled from its own ops only; `RowReader` reads a row's ops back.
//! - `live.rs`: each row's live set kept between imports, so settling a row after new ops costs
//!   O(live ops + new ops), not O(every op it ever had); `Touched`, the rows an import settles.
//! - `forward.rs`: a live set advanced by an update that follows all of it, from the stored set
//!   alone (the everyday sync of edits: no op read back).
//! - `superseded.rs`: which of a row's ops below a compaction point the rule never reads again
//!   (what `sync_compact` removes); `overwritten.rs`, its rule for ops overwritten cell by cell.
//!
//! Words: a **live write** is a write of a cell no op that follows it wrote again; a row's
//! **live set** is its ops with a live write, and its **top** ops (those no op on the row
//! follows, which decide whether the row exists); its **universe** is every column an op on it
//! wrote. A **side** of a conflict is one of a cell's differing live writes; a **losing side**
//! one that differs from what the row shows. To **settle** a row is to bring its table row, live
//! set and conflict records up to date after new ops.
//!
//! Invariant (the proof obligation of convergence): what a row shows and its open conflicts
//! depend only on the set of ops on it and their causal order, never on the order they arrived,
//! so two devices that hold the same ops show the same row and the same conflicts. The stored
//! live set is a cache of that function: settling from it gives what settling from every op gives.

pub mod forward;
pub mod live;
mod overwritten;
pub mod row_index;
mod rule;
pub mod superseded;
#[cfg(test)]
mod writers;

pub use rule::{
    advance, live_set, losses, revived, row_state, state_of_live, Causality, Live, Loss, RowOp,
    RowState,
};
