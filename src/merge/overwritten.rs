//! Rule 5 of `superseded`: an insert or update below the floor each of whose cells some later
//! write below the floor overwrote (not one write of them all: rows edited field by field),
//! and that no write which may bring the row back reads anything through.
//!
//! Invariant: removing such an op `o` changes nothing the rule computes for the row, now or
//! after any ops that can still arrive. The argument, in the rule's terms (rule.rs):
//! - A set of the row's ops is **saturated** when it holds every non-delete op below the floor:
//!   every op held (less a delete, for `revived`), and the causal past of an op that follows the
//!   floor or is behind it (it is lent the writes below the floor, `Causality::saw`), which every
//!   op still to arrive does. In a saturated set `o` is followed by its overwriters, so it is
//!   neither a top op nor a last writer of any of its columns: the set's state is the same
//!   without it, but for a column whose last writes are all deletes, which shows what the top
//!   op `t` saw: the same question for `t`'s past.
//! - The top op of a saturated set is followed by no non-delete op below the floor: a
//!   **reader** (and so is every live op: `revived` reads a live op's past too). A reader whose
//!   past is saturated needs nothing more. Another one (below the floor, or one this device saw
//!   before the floor's writer had it) that saw `o` must have seen, after each delete it saw,
//!   a write below the floor of every column outside the key, so that no column of its past
//!   (or of a part of it) has only deletes as last writes and shows through a further op (a
//!   key column never does: the rule shows the row's key there, rule.rs; so a row an update
//!   brought back, which no later write of its key follows, is no exception); each column `o`
//!   wrote that the reader did not write itself must be overwritten in its past, or by a write
//!   that follows the reader (while that write stands, the reader is the top op of no set that
//!   holds it, and a last write of that column that follows it is either a delete, which makes
//!   the reader live no more, or not one, and shows); and its past must hold some write below
//!   the floor but `o`, so that it reads the same row without `o`. (A column written first
//!   later is in no past it reads.)
//! - A live reader that a write below the floor follows, where every op held that saw the
//!   reader saw that write too (every op still to arrive does, being lent the writes below the
//!   floor), is the top op of no set: that write is in every set that holds it. Its past is
//!   read only where the rule brings the row back by it (`revived`), for a column whose last
//!   writes are all deletes there; neither a column it wrote nor one written by an op that
//!   follows it is one (no delete follows a live op, so none follows a write that follows
//!   it). For such a reader, the columns asked about after each delete it saw are the others.
//!
//! The witnesses are all ops below the floor, which every saturated set holds; an op a witness
//! overwrites later goes only where its own overwriters stand in for it (they follow `o` too),
//! and ops are taken in order key, so a removed op is never a witness of a later one.

use super::rule::{live_set, Causality, Key, RowOp};
use crate::hashed::HashMap;
use crate::op::{DeviceId, OpKind};

/// One row's ops, with what rule 5 asks of them.
pub(super) struct Overwritten<'a, C: Causality> {
    ops: &'a [RowOp],
    causality: &'a C,
    /// per device, its non-delete ops below the floor in seq order
    lines: Vec<Vec<usize>>,
    /// per device and column, those that write the column
    writers: HashMap<(DeviceId, &'a str), Vec<usize>>,
    /// the readers whose past is not saturated, each with whether it may show a column of
    /// its past through a further op (it saw a delete after which it saw no write of some
    /// column)
    readers: Vec<(usize, bool)>,
}

impl<'a, C: Causality> Overwritten<'a, C> {
    pub fn new(ops: &'a [RowOp], below: &[bool], key: Key, causality: &'a C) -> Self {
        let is_delete = |i: usize| ops[i].kind == OpKind::Delete;
        let mut by_device: HashMap<DeviceId, Vec<usize>> = HashMap::default();
        for i in (0..ops.len()).filter(|&i| below[i] && !is_delete(i)) {
            by_device.entry(ops[i].device).or_default().push(i);
        }
        let mut lines: Vec<Vec<usize>> = by_device.into_values().collect();
        let mut writers: HashMap<(DeviceId, &str), Vec<usize>> = HashMap::default();
        for line in &mut lines {
            line.sort_by_key(|&i| ops[i].seq);
            for &i in line.iter() {
                for (c, _) in &ops[i].cells {
                    writers.entry((ops[i].device, c)).or_default().push(i);
                }
            }
        }
        let mut this = Overwritten {
            ops,
            causality,
            lines,
            writers,
            readers: Vec::new(),
        };
        let (live, universe) = live_set(ops, causality);
        // (a key column never shows through a further op: rule.rs shows the row's key there)
        let mut shown: Vec<&String> = (universe.iter())
            .filter(|c| !key.iter().any(|(k, _)| k == *c))
            .collect();
        if shown.is_empty() {
            shown = universe.iter().collect(); // (a row of key columns only: a write of them)
        }
        let deletes: Vec<usize> = (0..ops.len()).filter(|&i| is_delete(i)).collect();
        let writes: Vec<usize> = (0..ops.len()).filter(|&i| !is_delete(i)).collect();
        for t in writes.iter().copied() {
            let reads = !this.lines.iter().any(|l| this.first_after(l, t).is_some())
                || live.iter().any(|e| e.op == t);
            if reads && (below[t] || !this.saturated(t)) {
                // (a live reader that is the top op of no set reads its past only as it brings
                // the row back, for a column no write that follows it wrote)
                let never_top = this.never_top(t, &writes);
                let shows_deleted = (deletes.iter()).any(|&d| {
                    causality.saw(&ops[t], &ops[d])
                        && !(shown.iter()).all(|c| {
                            this.written_after(c, d, Some(t))
                                || never_top
                                    && (ops[t].cells.iter().any(|(w, _)| w == *c)
                                        || this.written_after(c, t, None))
                        })
                });
                this.readers.push((t, shows_deleted));
            }
        }
        this
    }

    /// Whether op `o` can go by rule 5 (`removed`: the ops gone before it, in order key).
    pub fn can_go(&self, o: usize, removed: &[bool]) -> bool {
        let (ops, causality) = (self.ops, self.causality);
        let cells = &ops[o].cells;
        if cells.is_empty() || !cells.iter().all(|(c, _)| self.written_after(c, o, None)) {
            return false;
        }
        self.readers.iter().all(|&(t, shows_deleted)| {
            if t == o || !causality.saw(&ops[t], &ops[o]) {
                return true;
            }
            if shows_deleted {
                return false;
            }
            let unwritten = (cells.iter())
                .map(|(c, _)| c.as_str())
                .filter(|c| !ops[t].cells.iter().any(|(w, _)| w == c));
            // (an overwriter it saw is a write below the floor but o)
            let mut another = false;
            for c in unwritten {
                match self.written_after(c, o, Some(t)) {
                    true => another = true,
                    false if self.overwritten_after(o, c, t) => {}
                    false => return false,
                }
            }
            another || self.another_write(o, t, removed)
        })
    }

    /// Whether op `t` is the top op of no set the rule reads: a non-delete op below the floor
    /// follows it, and every non-delete op held that saw `t` saw that one too (as every op
    /// still to arrive does, being lent the writes below the floor), so it is in every set
    /// that holds `t`. Such a `t` is read from only where the rule brings the row back by it
    /// (`revived`: it is live, so no delete follows it, nor any write that follows it), and
    /// there a column written by an op that follows it has a last write that is no delete.
    fn never_top(&self, t: usize, writes: &[usize]) -> bool {
        let (ops, causality) = (self.ops, self.causality);
        (self.lines.iter())
            .filter_map(|line| self.first_after(line, t))
            .any(|w| {
                (writes.iter()).all(|&f| {
                    f == w || !causality.saw(&ops[f], &ops[t]) || causality.saw(&ops[f], &ops[w])
                })
            })
    }

    /// Per device, its non-delete ops below the floor that write `column`, in seq order.
    fn writers_of<'s>(&'s self, column: &'s str) -> impl Iterator<Item = &'s [usize]> + 's {
        (self.lines.iter())
            .filter_map(move |line| self.writers.get(&(self.ops[*line.first()?].device, column)))
            .map(|list| list.as_slice())
    }

    /// Whether a non-delete op below the floor that follows op `after` writes `column` (and
    /// reader `t` saw it): of each device, its first such op after `after` is asked.
    fn written_after(&self, column: &str, after: usize, t: Option<usize>) -> bool {
        let (ops, causality) = (self.ops, self.causality);
        self.writers_of(column).any(|list| {
            (self.first_after(list, after))
                .is_some_and(|y| t.is_none_or(|t| causality.saw(&ops[t], &ops[y])))
        })
    }

    /// Whether a non-delete op below the floor that follows both `o` and reader `t` writes
    /// `column`: `t` never shows that column of its past while that op is there (it is a top
    /// op of no set holding it; and a write that follows it is a delete, which makes `t`
    /// live no more, or is not, and shows), so what `o` wrote there is never read through `t`.
    fn overwritten_after(&self, o: usize, column: &str, t: usize) -> bool {
        let (ops, causality) = (self.ops, self.causality);
        self.writers_of(column).any(|list| {
            (self.first_after(list, t)).is_some_and(|y| causality.follows(&ops[y], &ops[o]))
        })
    }

    /// Whether reader `t` saw a non-delete op below the floor other than `o`, not removed.
    fn another_write(&self, o: usize, t: usize, removed: &[bool]) -> bool {
        let (ops, causality) = (self.ops, self.causality);
        self.lines.iter().any(|line| {
            (line.iter().rev())
                .filter(|&&x| x != o && !removed[x])
                .any(|&x| causality.saw(&ops[t], &ops[x]))
        })
    }

    /// The first op of `line` (one device's, in seq order) that follows op `o`.
    fn first_after(&self, line: &[usize], o: usize) -> Option<usize> {
        let (ops, causality) = (self.ops, self.causality);
        let at = line.partition_point(|&y| !causality.follows(&ops[y], &ops[o]));
        line.get(at).copied()
    }

    /// Whether op `t` (not below the floor: its past does not hold it) saw every non-delete op
    /// below the floor: the last of each device's.
    fn saturated(&self, t: usize) -> bool {
        let (ops, causality) = (self.ops, self.causality);
        (self.lines.iter())
            .filter_map(|line| line.last())
            .all(|&y| causality.saw(&ops[t], &ops[y]))
    }
}
