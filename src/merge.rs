//! The merge rule: a row's state and its conflicts as a pure function of the set of ops on it.
//!
//! Invariant (the proof obligation of convergence): `row_state` and `conflicts` read nothing but
//! the ops they are given and their causal order, and never depend on the order of the slice;
//! so two devices that hold the same ops on a row show the same row and the same conflicts. The
//! convergence property test (`tests/convergence.rs`) checks this end to end.
//!
//! The rule (DESIGN.md 3.6): an insert writes every column, an update the columns it changed, a
//! delete a tombstone to every column. A write of a cell is live when no op that causally
//! follows it writes that cell; an op is live for the row's existence when no op on the row
//! causally follows it. The row exists when its live op with the greatest order key is not a
//! delete. A cell shows its live non-tombstone write with the greatest order key; when its live
//! writes are all tombstones, the value the reviving op's writer saw (the same rule over that
//! op's causal past). Two concurrent ops conflict when they write a common cell with different
//! values (a tombstone differs from every value).

use crate::op::{DeviceId, DELETE, INSERT};
use crate::value::Value;

/// One op on the row, as the rule needs it.
#[derive(Debug, Clone)]
pub struct RowOp {
    pub device: DeviceId,
    pub seq: u64,
    pub lamport: u64,
    pub kind: u8,
    /// Columns written, with their values (none for a delete).
    pub cells: Vec<(String, Value)>,
}

impl RowOp {
    /// The total order every device agrees on, consistent with causality.
    pub fn order_key(&self) -> (u64, DeviceId, u64) {
        (self.lamport, self.device, self.seq)
    }

    fn writes(&self, column: &str) -> Option<Option<&Value>> {
        if self.kind == DELETE {
            return Some(None); // a tombstone
        }
        self.cells
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, v)| Some(v))
    }
}

/// `follows(later, earlier)`: `later` causally follows `earlier` (distinct ops).
pub trait Causality {
    fn follows(&self, later: &RowOp, earlier: &RowOp) -> bool;
}

/// What the table shows for a row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowState {
    Absent,
    /// The value of every column some op on the row wrote.
    Present(Vec<(String, Value)>),
}

/// The state of the row that holds exactly `ops`.
pub fn row_state(ops: &[RowOp], causality: &impl Causality) -> RowState {
    let all: Vec<usize> = (0..ops.len()).collect();
    state_of(ops, &all, causality)
}

fn state_of(ops: &[RowOp], members: &[usize], causality: &impl Causality) -> RowState {
    let live = maxima(ops, members, causality);
    let Some(top) = live.iter().copied().max_by_key(|&i| ops[i].order_key()) else {
        return RowState::Absent;
    };
    if ops[top].kind == DELETE {
        return RowState::Absent;
    }
    RowState::Present(cells_of(ops, members, top, causality))
}

/// The row as op `reviver` brings it back when it is chosen over the live delete `deleted`: the
/// row the rule shows without that delete, revived by `reviver`: every column's live
/// non-tombstone write with the greatest order key, else what `reviver`'s writer saw.
pub fn revived(
    ops: &[RowOp],
    reviver: usize,
    deleted: usize,
    causality: &impl Causality,
) -> Vec<(String, Value)> {
    let others: Vec<usize> = (0..ops.len()).filter(|&i| i != deleted).collect();
    cells_of(ops, &others, reviver, causality)
}

/// The cells of the row that holds `members`, revived (where it must be) by `top`.
fn cells_of(
    ops: &[RowOp],
    members: &[usize],
    top: usize,
    causality: &impl Causality,
) -> Vec<(String, Value)> {
    let mut cells = Vec::new();
    for column in columns(ops, members) {
        let writes: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| ops[i].writes(&column).is_some())
            .collect();
        let winner = maxima(ops, &writes, causality)
            .into_iter()
            .filter(|&i| ops[i].kind != DELETE)
            .max_by_key(|&i| ops[i].order_key());
        let value = match winner {
            Some(i) => ops[i].writes(&column).flatten().cloned(),
            None => {
                // revived by `top` without writing this column: what its writer saw
                let past: Vec<usize> = members
                    .iter()
                    .copied()
                    .filter(|&i| i != top && causality.follows(&ops[top], &ops[i]))
                    .collect();
                match state_of(ops, &past, causality) {
                    RowState::Present(seen) => {
                        seen.into_iter().find(|(c, _)| *c == column).map(|(_, v)| v)
                    }
                    RowState::Absent => None,
                }
            }
        };
        cells.push((column, value.unwrap_or(Value::Null)));
    }
    cells
}

/// The members that no other member causally follows.
fn maxima(ops: &[RowOp], members: &[usize], causality: &impl Causality) -> Vec<usize> {
    members
        .iter()
        .copied()
        .filter(|&i| {
            !members
                .iter()
                .any(|&j| j != i && causality.follows(&ops[j], &ops[i]))
        })
        .collect()
}

/// Every column written by the members, in a fixed order: by order key of the first writer,
/// then position in its op.
fn columns(ops: &[RowOp], members: &[usize]) -> Vec<String> {
    let mut by_key: Vec<usize> = members.to_vec();
    by_key.sort_by_key(|&i| ops[i].order_key());
    let mut out: Vec<String> = Vec::new();
    for i in by_key {
        for (c, _) in &ops[i].cells {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
    }
    out
}

/// Two concurrent ops on the row that write a common cell with different values.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// Index of the side with the smaller order key.
    pub earlier: usize,
    /// Index of the side with the greater order key: the one the table shows.
    pub later: usize,
    /// The contested columns.
    pub columns: Vec<String>,
    /// Some op on the row causally follows both sides.
    pub resolved: bool,
}

/// Every conflict among `ops`, in a fixed order.
pub fn conflicts(ops: &[RowOp], causality: &impl Causality) -> Vec<Conflict> {
    let mut order: Vec<usize> = (0..ops.len())
        .filter(|&i| !absorbed(ops, i, causality))
        .collect();
    order.sort_by_key(|&i| ops[i].order_key());
    let mut out = Vec::new();
    for (n, &a) in order.iter().enumerate() {
        for &b in &order[n + 1..] {
            let (x, y) = (&ops[a], &ops[b]);
            if causality.follows(y, x) || causality.follows(x, y) {
                continue;
            }
            let columns = contested(x, y);
            if columns.is_empty() {
                continue;
            }
            let resolved = ops.iter().any(|k| {
                !std::ptr::eq(k, x)
                    && !std::ptr::eq(k, y)
                    && causality.follows(k, x)
                    && causality.follows(k, y)
            });
            out.push(Conflict {
                earlier: a,
                later: b,
                columns,
                resolved,
            });
        }
    }
    out
}

/// A delete directly followed, on the same device and with nothing on the row seen in between,
/// by an insert of the same row is one overwrite (what `INSERT OR REPLACE` writes with recursive
/// triggers on): the insert writes every column again, so the delete contests nothing on its
/// own. (An insert that followed other ops on the row too, such as a resolution that brings a
/// deleted row back, is a write of its own, and the delete stays a side.)
fn absorbed(ops: &[RowOp], i: usize, causality: &impl Causality) -> bool {
    let d = &ops[i];
    d.kind == DELETE
        && ops.iter().any(|o| {
            o.kind == INSERT
                && o.device == d.device
                && o.seq == d.seq + 1
                && !ops.iter().enumerate().any(|(k, x)| {
                    k != i
                        && !std::ptr::eq(x, o)
                        && causality.follows(o, x)
                        && !causality.follows(d, x)
                })
        })
}

fn contested(x: &RowOp, y: &RowOp) -> Vec<String> {
    match (x.kind == DELETE, y.kind == DELETE) {
        (true, true) => Vec::new(),
        (true, false) => y.cells.iter().map(|(c, _)| c.clone()).collect(),
        (false, true) => x.cells.iter().map(|(c, _)| c.clone()).collect(),
        (false, false) => x
            .cells
            .iter()
            .filter(|(c, v)| matches!(y.writes(c), Some(Some(w)) if !same(v, w)))
            .map(|(c, _)| c.clone())
            .collect(),
    }
}

/// Same storage class and equal as SQL compares them.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Real(x), Value::Real(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::UPDATE;
    use std::collections::HashMap;

    /// Causality given as explicit vector clocks: (device byte, seq) -> context.
    struct Clocks(HashMap<(u8, u64), Vec<(u8, u64)>>);

    impl Causality for Clocks {
        fn follows(&self, later: &RowOp, earlier: &RowOp) -> bool {
            if later.device == earlier.device {
                return later.seq > earlier.seq;
            }
            self.0[&(later.device[0], later.seq)]
                .iter()
                .any(|&(d, s)| d == earlier.device[0] && s >= earlier.seq)
        }
    }

    fn op(dev: u8, seq: u64, lamport: u64, kind: u8, cells: &[(&str, i64)]) -> RowOp {
        RowOp {
            device: [dev; 16],
            seq,
            lamport,
            kind,
            cells: cells
                .iter()
                .map(|(c, v)| (c.to_string(), Value::Integer(*v)))
                .collect(),
        }
    }

    fn present(cells: &[(&str, i64)]) -> RowState {
        RowState::Present(
            cells
                .iter()
                .map(|(c, v)| (c.to_string(), Value::Integer(*v)))
                .collect(),
        )
    }

    #[test]
    fn concurrent_updates_of_different_columns_merge() {
        let ops = [
            op(1, 1, 1, INSERT, &[("id", 1), ("x", 0), ("y", 0)]),
            op(1, 2, 2, UPDATE, &[("x", 5)]),
            op(2, 1, 2, UPDATE, &[("y", 7)]),
        ];
        let c = Clocks(HashMap::from([
            ((1, 2), vec![]),
            ((2, 1), vec![(1, 1)]),
            ((1, 1), vec![]),
        ]));
        assert_eq!(
            row_state(&ops, &c),
            present(&[("id", 1), ("x", 5), ("y", 7)])
        );
        assert!(conflicts(&ops, &c).is_empty());
    }

    #[test]
    fn same_column_conflicts_and_greater_order_key_wins() {
        let ops = [
            op(1, 1, 1, INSERT, &[("id", 1), ("x", 0)]),
            op(1, 2, 2, UPDATE, &[("x", 5)]),
            op(2, 1, 2, UPDATE, &[("x", 7)]),
        ];
        let c = Clocks(HashMap::from([
            ((1, 2), vec![]),
            ((2, 1), vec![(1, 1)]),
            ((1, 1), vec![]),
        ]));
        assert_eq!(row_state(&ops, &c), present(&[("id", 1), ("x", 7)]));
        let found = conflicts(&ops, &c);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].earlier, found[0].later), (1, 2));
        assert_eq!(found[0].columns, ["x"]);
        assert!(!found[0].resolved);
    }

    #[test]
    fn revived_row_shows_what_the_reviver_saw_for_columns_it_did_not_write() {
        // device 1 inserts, device 2 (after it) deletes, device 3 (after it, concurrently)
        // updates y with the greater order key: the row lives, x shows the inserted value
        let ops = [
            op(1, 1, 1, INSERT, &[("id", 1), ("x", 10), ("y", 20)]),
            op(2, 1, 2, DELETE, &[]),
            op(3, 1, 3, UPDATE, &[("y", 21)]),
        ];
        let c = Clocks(HashMap::from([
            ((1, 1), vec![]),
            ((2, 1), vec![(1, 1)]),
            ((3, 1), vec![(1, 1)]),
        ]));
        assert_eq!(
            row_state(&ops, &c),
            present(&[("id", 1), ("x", 10), ("y", 21)])
        );
        assert_eq!(conflicts(&ops, &c).len(), 1);
        // with the delete ordered last, the row is gone
        let mut later_delete = ops.clone();
        later_delete[1].lamport = 4;
        assert_eq!(row_state(&later_delete, &c), RowState::Absent);
    }

    #[test]
    fn a_value_deleted_on_its_own_device_does_not_come_back() {
        // device 1 inserts then deletes; device 2 concurrently (after the insert) updates y
        // with a smaller order key: the delete wins
        let ops = [
            op(1, 1, 1, INSERT, &[("id", 1), ("x", 10), ("y", 20)]),
            op(1, 2, 3, DELETE, &[]),
            op(2, 1, 2, UPDATE, &[("y", 21)]),
        ];
        let c = Clocks(HashMap::from([
            ((1, 1), vec![]),
            ((1, 2), vec![]),
            ((2, 1), vec![(1, 1)]),
        ]));
        assert_eq!(row_state(&ops, &c), RowState::Absent);
    }

    #[test]
    fn state_does_not_depend_on_the_order_of_the_ops() {
        let ops = vec![
            op(1, 1, 1, INSERT, &[("id", 1), ("x", 0), ("y", 0)]),
            op(2, 1, 2, UPDATE, &[("x", 1)]),
            op(3, 1, 2, UPDATE, &[("x", 2), ("y", 3)]),
            op(2, 2, 3, DELETE, &[]),
        ];
        let c = Clocks(HashMap::from([
            ((1, 1), vec![]),
            ((2, 1), vec![(1, 1)]),
            ((3, 1), vec![(1, 1)]),
            ((2, 2), vec![(1, 1)]),
        ]));
        let mut reversed = ops.clone();
        reversed.reverse();
        assert_eq!(row_state(&ops, &c), row_state(&reversed, &c));
        let ids = |ops: &[RowOp], cs: Vec<Conflict>| -> Vec<_> {
            cs.into_iter()
                .map(|k| {
                    (
                        ops[k.earlier].order_key(),
                        ops[k.later].order_key(),
                        k.columns,
                    )
                })
                .collect()
        };
        assert_eq!(
            ids(&ops, conflicts(&ops, &c)),
            ids(&reversed, conflicts(&reversed, &c))
        );
    }

    #[test]
    fn an_op_after_both_sides_resolves_the_conflict() {
        let ops = [
            op(1, 1, 1, UPDATE, &[("x", 1)]),
            op(2, 1, 1, UPDATE, &[("x", 2)]),
            op(1, 2, 2, UPDATE, &[("x", 3)]),
        ];
        let c = Clocks(HashMap::from([
            ((1, 1), vec![]),
            ((2, 1), vec![]),
            ((1, 2), vec![(2, 1)]),
        ]));
        let found = conflicts(&ops, &c);
        assert_eq!(found.len(), 1);
        assert!(found[0].resolved);
    }

    #[test]
    fn replace_as_delete_and_insert_conflicts_once() {
        let ops = [
            op(1, 1, 1, INSERT, &[("id", 1), ("x", 0)]),
            op(1, 2, 2, DELETE, &[]),
            op(1, 3, 3, INSERT, &[("id", 1), ("x", 5)]),
            op(2, 1, 2, UPDATE, &[("x", 7)]),
        ];
        let c = Clocks(HashMap::from([
            ((1, 1), vec![]),
            ((1, 2), vec![]),
            ((1, 3), vec![]),
            ((2, 1), vec![(1, 1)]),
        ]));
        let found = conflicts(&ops, &c);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].earlier, found[0].later), (3, 2));
    }
}
