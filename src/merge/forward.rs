//! Fast-forward: a row's live set advanced by an update or a delete that follows every live op
//! of the row, from the stored set alone, without reading an op back (the everyday sync of
//! edits).
//!
//! Invariant: `forward` gives a set only when the row's live ops are inserts and updates whose
//! live columns never meet and together cover the universe (no cell has two live writes: no
//! conflict, and the table shows each cell's one live write), and the new op follows each of
//! them. The set it gives is the one the rule computes from every op (each live op loses the new
//! op's columns and its top, and goes when no column is left; a delete writes a tombstone to
//! every column, so it is left alone; a column no op on the row wrote before joins the
//! universe, its tombstones from ops before the set's all followed by the new op), so the row
//! still has no conflict, and it shows what it showed with the new op's cells written, or is
//! absent.
//! Otherwise it gives None, and the row is settled in full (apply/settle.rs).

use crate::schema::DeviceIdx;

use super::live::{Mark, OpAt, SetEntry};

/// A stored live set, decoded: the universe's names, and the entries.
pub type Set = (Vec<String>, Vec<SetEntry>);

/// What `_sync_rows` holds of a row before the new op.
pub enum Before {
    /// No set: the row's only op, whether it is a delete, and the columns it wrote (names as
    /// the table spells them).
    Only {
        at: OpAt,
        delete: bool,
        cols: Vec<String>,
    },
    /// A stored set (`_sync_rows.live`), decoded.
    Set(Set),
}

/// What the new op writes.
pub enum Writes<'a> {
    /// An update's columns (names as the table spells them, in the op's order).
    Cells(&'a [String]),
    /// A delete's tombstone, in every column.
    Tombstone,
}

const WRITE: Mark = Mark {
    top: false,
    delete: Some(false),
};

/// The live set of the row after `new`, which writes `writes`, to store; `follows(op)`: `new`
/// causally follows `op`.
pub fn forward(
    before: Before,
    new: OpAt,
    writes: Writes,
    follows: impl Fn(OpAt) -> bool,
) -> Option<Set> {
    let (universe, entries) = match before {
        Before::Only { delete: true, .. } => return None,
        Before::Only { at, cols, .. } => {
            let all = (0..cols.len() as u32).collect();
            let top = Mark { top: true, ..WRITE };
            (cols, vec![(at.0 .0, at.1, top, all)])
        }
        Before::Set(set) => set,
    };
    let mut universe = universe;
    let known = universe.len();
    let written = match writes {
        Writes::Cells(cols) => {
            // a column no op on the row wrote joins the universe: an op before that dropped
            // out of the set (a delete) wrote a tombstone to it, but the new op follows every
            // live op, and so every op before them, and writes it
            let mut written = Vec::with_capacity(cols.len());
            for c in cols {
                let at = match universe.iter().position(|u| u == c) {
                    Some(at) => at,
                    None => {
                        universe.push(c.clone());
                        universe.len() - 1
                    }
                };
                written.push(at as u32);
            }
            Some(written)
        }
        Writes::Tombstone => None,
    };
    let mut covered = vec![false; universe.len()];
    for &c in written.iter().flatten() {
        covered[c as usize] |= c as usize >= known; // the new columns: no live op writes them
    }
    for (device, seq, mark, live) in &entries {
        if mark.delete != Some(false) || !follows((DeviceIdx(*device), *seq)) {
            return None;
        }
        for &c in live {
            match covered.get_mut(c as usize) {
                Some(slot) if !*slot => *slot = true,
                _ => return None, // two live writes of a cell: a conflict
            }
        }
    }
    if covered.contains(&false) {
        return None;
    }
    let Some(written) = written else {
        // every live op loses every column to the tombstone, and goes
        let tombstone = Mark {
            top: true,
            delete: Some(true),
        };
        return Some((universe, vec![(new.0 .0, new.1, tombstone, Vec::new())]));
    };
    let mut after: Vec<SetEntry> = entries
        .into_iter()
        .filter_map(|(device, seq, _, mut live)| {
            live.retain(|c| !written.contains(c));
            (!live.is_empty()).then_some((device, seq, WRITE, live))
        })
        .collect();
    let top = Mark { top: true, ..WRITE };
    after.push((new.0 .0, new.1, top, written));
    Some((universe, after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashed::HashSet;
    use crate::merge::live::Mark;
    use crate::merge::{live_set, losses, Causality, Live, RowOp};
    use crate::op::OpKind::{self, Delete, Insert, Update};
    use crate::value::Value;
    use std::collections::BTreeSet;

    /// An op of the test, (device, seq).
    type At = (u8, u64);

    /// Causality as each op's whole past.
    struct Pasts(Vec<(At, HashSet<At>)>);

    impl Causality for Pasts {
        fn follows(&self, later: &RowOp, earlier: &RowOp) -> bool {
            let at = |op: &RowOp| (op.device[0], op.seq);
            let past = &self.0.iter().find(|(op, _)| *op == at(later)).unwrap().1;
            past.contains(&at(earlier))
        }
    }

    /// A live set as comparable entries: (device, seq, top, delete, columns).
    fn entries(ops: &[RowOp], live: &[Live]) -> BTreeSet<(u8, u64, bool, bool, BTreeSet<String>)> {
        (live.iter())
            .map(|e| {
                let op = &ops[e.op];
                let cols = e.cols.iter().cloned().collect();
                (op.device[0], op.seq, e.top, op.kind == Delete, cols)
            })
            .collect()
    }

    fn stored(ops: &[RowOp], live: &[Live], universe: &[String]) -> Set {
        let position = |c: &String| universe.iter().position(|u| u == c).unwrap() as u32;
        let set: Vec<SetEntry> = (live.iter())
            .map(|e| {
                let op = &ops[e.op];
                let delete = Some(op.kind == Delete);
                let mark = Mark { top: e.top, delete };
                let cols = e.cols.iter().map(position).collect();
                (op.device[0] as i64, op.seq, mark, cols)
            })
            .collect();
        (universe.to_vec(), set)
    }

    /// Random rows written by three devices that exchange what they know at random: at each op
    /// that is an update or a delete, `forward` from the set before it gives the set the rule
    /// computes from every op (or nothing), and only when the row has no conflict before or
    /// after; updates that write a column no op on the row wrote before (`d`) included.
    #[test]
    fn forward_gives_the_rules_set() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut forwarded, mut declined, mut deletes, mut grew) = (0, 0, 0, 0);
        for _ in 0..500 {
            let mut knows: Vec<HashSet<At>> = vec![HashSet::default(); 3];
            let mut ops: Vec<RowOp> = Vec::new();
            let mut pasts = Pasts(Vec::new());
            for step in 0..12 {
                let d = next(3) as usize;
                if step > 0 && next(2) == 0 {
                    let from = next(3) as usize;
                    let theirs = knows[from].clone();
                    knows[d].extend(theirs);
                    continue;
                }
                let seq = ops.iter().filter(|o| o.device[0] == d as u8 + 1).count() as u64 + 1;
                let past = knows[d].clone();
                let lamport = (ops.iter())
                    .filter(|o| past.contains(&(o.device[0], o.seq)))
                    .map(|o| o.lamport)
                    .max()
                    .unwrap_or(0)
                    + 1;
                let kind = match (ops.is_empty(), next(8)) {
                    (true, _) | (false, 0) => Insert,
                    (false, 1) => Delete,
                    _ => Update,
                };
                let cols: Vec<&str> = match kind {
                    Insert => vec!["a", "b", "c"],
                    Delete => vec![],
                    _ => ["a", "b", "c", "d"]
                        .into_iter()
                        .filter(|&c| next(if c == "d" { 8 } else { 2 }) == 0)
                        .collect(),
                };
                let cells = (cols.iter())
                    .map(|c| (c.to_string(), Value::Integer(next(3) as i64)))
                    .collect();
                let op = RowOp {
                    device: [d as u8 + 1; 16],
                    seq,
                    lamport,
                    kind,
                    cells,
                };
                let at = (d as u8 + 1, seq);
                pasts.0.push((at, past));
                knows[d].insert(at);
                let (live, universe) = live_set(&ops, &pasts);
                ops.push(op);
                let new = ops.last().unwrap();
                if ops.len() == 1 || kind == OpKind::Insert {
                    continue;
                }
                let set = stored(&ops, &live, &universe);
                let before = match ops.len() {
                    2 if next(2) == 0 => Before::Only {
                        at: (DeviceIdx(ops[0].device[0] as i64), ops[0].seq),
                        delete: ops[0].kind == Delete,
                        cols: ops[0].cells.iter().map(|(c, _)| c.clone()).collect(),
                    },
                    _ => Before::Set(set),
                };
                let cols: Vec<String> = new.cells.iter().map(|(c, _)| c.clone()).collect();
                let follows = |(d, s): OpAt| {
                    let earlier = ops.iter().find(|o| (o.device[0] as i64, o.seq) == (d.0, s));
                    pasts.follows(new, earlier.unwrap())
                };
                let writes = match kind {
                    Delete => Writes::Tombstone,
                    _ => Writes::Cells(&cols),
                };
                let after = forward(before, (DeviceIdx(at.0 as i64), seq), writes, follows);
                let Some((got_universe, got)) = after else {
                    declined += 1;
                    continue;
                };
                forwarded += 1;
                deletes += (kind == Delete) as usize;
                let (want, want_universe) = live_set(&ops, &pasts);
                assert!(losses(&ops[..ops.len() - 1], &live, &universe).is_empty());
                assert!(losses(&ops, &want, &want_universe).is_empty());
                assert_eq!(got_universe, want_universe);
                grew += (want_universe.len() > universe.len()) as usize;
                let got: BTreeSet<_> = (got.iter())
                    .map(|(d, s, mark, cols)| {
                        let cols = cols.iter().map(|&i| got_universe[i as usize].clone());
                        let delete = mark.delete.unwrap();
                        (*d as u8, *s, mark.top, delete, cols.collect())
                    })
                    .collect();
                assert_eq!(got, entries(&ops, &want));
            }
        }
        assert!(
            forwarded > 150 && declined > 150 && deletes > 30 && grew > 10,
            "{forwarded} {declined} {deletes} {grew}"
        );
    }
}
