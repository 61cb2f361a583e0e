//! The reference for open conflicts (DESIGN.md 3.6), computed in the test from the set of ops a
//! device holds, with none of the extension's code: every op from `sync_log`, each op's causal
//! context from the change points the device stores (`_sync_deps`, `_sync_devices`).
//!
//! The rule, as written there: a write of a cell is live when no op that causally follows it
//! writes that cell (a delete writes a tombstone to every column); a cell is in conflict when
//! its live writes differ (a tombstone differs from every value); the table shows, of an
//! existing row, the live non-tombstone write with the greatest order key, and of a deleted row
//! the deciding delete; each live write that differs from the shown one loses, and a record is
//! one losing op with the cells where it loses, beside the winner of those cells (the one with
//! the greatest order key when they differ), with id = SHA-256(loser op id ‖ winner op id ‖
//! columns as a JSON list).

use rusqlite::Connection;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// An open record as the reference computes it and as `_sync_conflicts` stores it: id, table,
/// pk, columns, loser op id, loser values, winner op id, winner values.
pub type Record = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

struct Op {
    idx: i64,
    seq: i64,
    id: Vec<u8>,
    op_id: String,
    lamport: i64,
    delete: bool,
    /// (column, JSON spelling of the value)
    cells: Vec<(String, String)>,
}

impl Op {
    fn order_key(&self) -> (i64, &[u8], i64) {
        (self.lamport, &self.id, self.seq)
    }

    /// None: does not write `column`; Some(None): a tombstone; Some(Some(v)): value `v`.
    fn writes(&self, column: &str) -> Option<Option<&str>> {
        if self.delete {
            return Some(None);
        }
        self.cells
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, v)| Some(v.as_str()))
    }
}

/// Causality from the device's change points.
struct Causal {
    /// (device, seq, dep) -> dep_seq, per change point
    points: HashMap<i64, Vec<(i64, i64, i64)>>,
    /// per history: its children (child, base)
    children: HashMap<i64, Vec<(i64, i64)>>,
}

impl Causal {
    fn load(conn: &Connection) -> Causal {
        let mut points: HashMap<i64, Vec<(i64, i64, i64)>> = HashMap::new();
        let mut stmt = conn
            .prepare("SELECT device, seq, dep, dep_seq FROM _sync_deps")
            .unwrap();
        for row in stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
        {
            let (device, seq, dep, dep_seq): (i64, i64, i64, i64) = row.unwrap();
            points.entry(device).or_default().push((seq, dep, dep_seq));
        }
        let mut children: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        let mut stmt = conn
            .prepare("SELECT idx, parent, base FROM _sync_devices WHERE parent IS NOT NULL")
            .unwrap();
        for row in stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
        {
            let (idx, parent, base): (i64, i64, i64) = row.unwrap();
            children.entry(parent).or_default().push((idx, base));
        }
        Causal { points, children }
    }

    /// The highest seq of `dep` in the context of op `seq` of `device`.
    fn context(&self, device: i64, seq: i64, dep: i64) -> i64 {
        self.points.get(&device).map_or(0, |points| {
            points
                .iter()
                .filter(|&&(s, d, _)| s <= seq && d == dep)
                .map(|&(_, _, ds)| ds)
                .max()
                .unwrap_or(0)
        })
    }

    /// Op (`device`, `seq`) saw op (`seen`, `seen_seq`): its context holds it, or an op of a
    /// history forked from `seen` after it whose first op's context holds `seen`'s op there (a
    /// history that left `seen`'s lineage at a compaction point follows an op of its own
    /// there: its ops saw none of `seen`'s but through their own deps).
    fn saw(&self, device: i64, seq: i64, seen: i64, seen_seq: i64) -> bool {
        if device == seen {
            return seq > seen_seq;
        }
        if self.context(device, seq, seen) >= seen_seq {
            return true;
        }
        self.children.get(&seen).is_some_and(|children| {
            children.iter().any(|&(child, base)| {
                base >= seen_seq
                    && self.context(child, base + 1, seen) >= base
                    && self.saw(device, seq, child, base + 1)
            })
        })
    }

    /// Op (`device`, `seq`) is op (`seen`, `seen_seq`) or saw it: a compaction point's entry
    /// holds the op it names (the stable clock counts it), as log/floors.rs reads it.
    fn reaches(&self, device: i64, seq: i64, seen: i64, seen_seq: i64) -> bool {
        (device == seen && seq >= seen_seq) || self.saw(device, seq, seen, seen_seq)
    }

    fn follows(&self, later: &Op, earlier: &Op) -> bool {
        if later.idx == earlier.idx {
            return later.seq > earlier.seq;
        }
        self.saw(later.idx, later.seq, earlier.idx, earlier.seq)
    }
}

/// A JSON object of our spelling (flat: values are null, numbers, strings or {"blob": hex})
/// split into (key, value spelling) pairs.
fn split_object(json: &str) -> Vec<(String, String)> {
    let b = json.as_bytes();
    let mut out = Vec::new();
    let mut i = 1; // after '{'
    let string_end = |mut j: usize| {
        j += 1;
        while b[j] != b'"' {
            j += if b[j] == b'\\' { 2 } else { 1 };
        }
        j + 1
    };
    while i < b.len() && b[i] != b'}' {
        let k_end = string_end(i);
        let key = json[i + 1..k_end - 1].to_string();
        let v_start = k_end + 1; // after ':'
        let v_end = match b[v_start] {
            b'"' => string_end(v_start),
            b'{' => json[v_start..].find('}').unwrap() + v_start + 1,
            _ => {
                let mut j = v_start;
                while b[j] != b',' && b[j] != b'}' {
                    j += 1;
                }
                j
            }
        };
        out.push((key, json[v_start..v_end].to_string()));
        i = if b[v_end] == b',' { v_end + 1 } else { v_end };
    }
    out
}

/// Same storage class and equal as SQL compares them (0.0 and -0.0 are the same).
fn same(a: &str, b: &str) -> bool {
    let real = |s: &str| {
        let number = s.starts_with(|c: char| c == '-' || c.is_ascii_digit());
        (number && s.contains(['.', 'e', 'E'])).then(|| s.parse::<f64>().unwrap())
    };
    match (real(a), real(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn object(cells: &[(&String, &str)]) -> String {
    let inner: Vec<String> = cells.iter().map(|(c, v)| format!("\"{c}\":{v}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// Every op `conn`'s device holds on a table's row and applied (not pending), by (table, pk),
/// with their causal order.
fn load_rows(conn: &Connection) -> (Causal, BTreeMap<(String, String), Vec<Op>>) {
    let causal = Causal::load(conn);
    let mut rows: BTreeMap<(String, String), Vec<Op>> = BTreeMap::new();
    let mut stmt = conn
        .prepare(
            "SELECT d.idx, l.seq, l.device, l.op_id, l.lamport, l.\"table\", l.kind, l.pk,
                    l.\"values\"
             FROM sync_log l JOIN _sync_devices d ON lower(hex(d.id)) = l.device
             WHERE l.\"table\" <> '_sync_floor' AND NOT EXISTS (SELECT 1 FROM _sync_remote r
               WHERE r.device = d.idx AND r.seq = l.seq AND NOT r.applied)",
        )
        .unwrap();
    let ops = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, Option<String>>(8)?,
            ))
        })
        .unwrap();
    for op in ops {
        let (idx, seq, device, op_id, lamport, table, kind, pk, values) = op.unwrap();
        rows.entry((table, pk)).or_default().push(Op {
            idx,
            seq,
            id: unhex(&device),
            op_id,
            lamport,
            delete: kind == "delete",
            cells: values.as_deref().map(split_object).unwrap_or_default(),
        });
    }
    (causal, rows)
}

/// The open records the rule gives for every op `conn`'s device holds, sorted by id.
pub fn open_conflicts(conn: &Connection) -> Vec<Record> {
    let (causal, rows) = load_rows(conn);
    let mut records = Vec::new();
    for ((table, pk), ops) in &rows {
        let order: Vec<String> = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
            ))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        records.extend(row_records(&causal, table, pk, ops, &order));
    }
    records.sort();
    records
}

fn row_records(
    causal: &Causal,
    table: &str,
    pk: &str,
    ops: &[Op],
    table_order: &[String],
) -> Vec<Record> {
    let live_in = |i: usize, column: &str| {
        ops[i].writes(column).is_some()
            && !ops
                .iter()
                .enumerate()
                .any(|(j, o)| j != i && o.writes(column).is_some() && causal.follows(o, &ops[i]))
    };
    let mut universe: Vec<&String> = Vec::new();
    for op in ops {
        for (c, _) in &op.cells {
            if !universe.contains(&c) {
                universe.push(c);
            }
        }
    }
    let top = (0..ops.len())
        .filter(|&i| !ops.iter().any(|o| causal.follows(o, &ops[i])))
        .max_by(|&a, &b| ops[a].order_key().cmp(&ops[b].order_key()))
        .unwrap();
    let absent = ops[top].delete;
    // per losing op: its columns and the winners of them
    let mut lost: BTreeMap<usize, Vec<(&String, usize)>> = BTreeMap::new();
    for column in &universe {
        let live: Vec<usize> = (0..ops.len()).filter(|&i| live_in(i, column)).collect();
        let winner = if absent {
            top
        } else {
            match live
                .iter()
                .copied()
                .filter(|&i| !ops[i].delete)
                .max_by(|&a, &b| ops[a].order_key().cmp(&ops[b].order_key()))
            {
                Some(w) => w,
                None => continue,
            }
        };
        let value = |i: usize| ops[i].writes(column).unwrap();
        for &i in &live {
            let differs = match (value(i), value(winner)) {
                (Some(a), Some(b)) => !same(a, b),
                (None, None) => false,
                _ => true,
            };
            if i != winner && differs {
                lost.entry(i).or_default().push((column, winner));
            }
        }
    }
    let mut out = Vec::new();
    for (loser, mut columns) in lost {
        let position = |c: &String| table_order.iter().position(|x| x == c);
        columns.sort_by(|a, b| {
            (position(a.0).is_none(), position(a.0), a.0).cmp(&(
                position(b.0).is_none(),
                position(b.0),
                b.0,
            ))
        });
        let winner = columns
            .iter()
            .map(|&(_, w)| w)
            .max_by(|&a, &b| ops[a].order_key().cmp(&ops[b].order_key()))
            .unwrap();
        let names: Vec<String> = columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
        let loser_values = match ops[loser].delete {
            true => "null".to_string(),
            false => object(
                &columns
                    .iter()
                    .map(|&(c, _)| (c, ops[loser].writes(c).unwrap().unwrap()))
                    .collect::<Vec<_>>(),
            ),
        };
        let winner_values = match absent {
            true => "null".to_string(),
            false => object(
                &columns
                    .iter()
                    .map(|&(c, w)| (c, ops[w].writes(c).unwrap().unwrap()))
                    .collect::<Vec<_>>(),
            ),
        };
        let columns_json = format!("[{}]", names.join(","));
        let id = Sha256::new()
            .chain_update(unhex(&ops[loser].op_id))
            .chain_update(unhex(&ops[winner].op_id))
            .chain_update(&columns_json)
            .finalize();
        let id: String = id[..16].iter().map(|b| format!("{b:02x}")).collect();
        out.push((
            id,
            table.to_string(),
            pk.to_string(),
            format!("[{}]", names.join(",")),
            ops[loser].op_id.clone(),
            loser_values,
            ops[winner].op_id.clone(),
            winner_values,
        ));
    }
    out
}

/// The open records `conn`'s device shows, in the reference's form, sorted by id.
pub fn stored_open_conflicts(conn: &Connection) -> Vec<Record> {
    super::rows(
        conn,
        "SELECT lower(hex(c.id)), t.name, c.pk, c.columns, c.loser_op, c.loser_values,
                c.winner_op, c.winner_values
         FROM _sync_conflicts c JOIN _sync_tables t ON t.id = c.table_id
         WHERE c.state = 0 ORDER BY 1",
    )
}

/// The floor ops `conn`'s device holds, read from `sync_log` (docs/conflicts.md: Compaction
/// points): per floor op (device idx, seq), its entries (device idx, seq); an entry naming a
/// device id not known here lends nothing.
type FloorOp = ((i64, i64), Vec<(i64, i64)>);

fn floors(conn: &Connection) -> Vec<FloorOp> {
    let known: HashMap<String, i64> =
        super::rows(conn, "SELECT lower(hex(id)), idx FROM _sync_devices")
            .into_iter()
            .collect();
    let held: Vec<(i64, i64, String)> = super::rows(
        conn,
        "SELECT d.idx, l.seq, l.pk FROM sync_log l JOIN _sync_devices d ON lower(hex(d.id)) = l.device
         WHERE l.\"table\" = '_sync_floor' AND NOT EXISTS (SELECT 1 FROM _sync_remote r
           WHERE r.device = d.idx AND r.seq = l.seq AND NOT r.applied)",
    );
    held.into_iter()
        .map(|(idx, seq, pk)| {
            let hex = pk
                .split("\"blob\":\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let bytes = unhex(hex);
            let entries = bytes
                .chunks(40)
                .filter_map(|e| {
                    let id: String = e[..16].iter().map(|b| format!("{b:02x}")).collect();
                    let seq = i64::from_be_bytes(e[16..24].try_into().unwrap());
                    known.get(&id).map(|&d| (d, seq))
                })
                .collect();
            ((idx, seq), entries)
        })
        .collect()
}

/// The merge rule's state of a row: its cells as (column, value spelling), None when absent.
struct Rule<'a> {
    causal: &'a Causal,
    floors: &'a [FloorOp],
}

impl Rule<'_> {
    /// Whether `top`'s writer is taken to have seen `op` when `top` revives a row: `op` is in
    /// its causal past, or `op` is not a delete and is at or below a floor's entry while `top`
    /// is behind a floor (not in the floor op's past, and not having seen all of the floor).
    fn sees(&self, top: &Op, op: &Op) -> bool {
        let c = self.causal;
        c.follows(top, op)
            || (!op.delete
                && (self.floors.iter())
                    .any(|(_, floor)| floor.iter().any(|&(h, s)| c.reaches(h, s, op.idx, op.seq)))
                && self.floors.iter().any(|(at, floor)| {
                    !c.reaches(at.0, at.1, top.idx, top.seq)
                        && !floor
                            .iter()
                            .all(|&(h, s)| c.reaches(top.idx, top.seq, h, s))
                }))
    }

    fn state(&self, ops: &[Op], members: &[usize]) -> Option<Vec<(String, String)>> {
        let c = self.causal;
        let top = (members.iter().copied())
            .filter(|&i| {
                !members
                    .iter()
                    .any(|&j| j != i && c.follows(&ops[j], &ops[i]))
            })
            .max_by(|&a, &b| ops[a].order_key().cmp(&ops[b].order_key()))?;
        if ops[top].delete {
            return None;
        }
        let mut universe: Vec<&String> = Vec::new();
        for &i in members {
            for (col, _) in &ops[i].cells {
                if !universe.contains(&col) {
                    universe.push(col);
                }
            }
        }
        let mut cells = Vec::new();
        for column in universe {
            let writes: Vec<usize> = (members.iter().copied())
                .filter(|&i| ops[i].writes(column).is_some())
                .collect();
            let winner = (writes.iter().copied())
                .filter(|&i| {
                    !writes
                        .iter()
                        .any(|&j| j != i && c.follows(&ops[j], &ops[i]))
                })
                .filter(|&i| !ops[i].delete)
                .max_by(|&a, &b| ops[a].order_key().cmp(&ops[b].order_key()));
            let value = match winner {
                Some(w) => ops[w].writes(column).unwrap().unwrap().to_string(),
                None => {
                    let past: Vec<usize> = (members.iter().copied())
                        .filter(|&i| i != top && self.sees(&ops[top], &ops[i]))
                        .collect();
                    let seen = self.state(ops, &past).unwrap_or_default();
                    (seen.into_iter().find(|(col, _)| col == column))
                        .map_or("null".to_string(), |(_, v)| v)
                }
            };
            cells.push((column.clone(), value));
        }
        Some(cells)
    }
}

/// Every row the ops `conn`'s device holds name, as the merge rule shows it (DESIGN 3.6 and
/// compaction points): by (table, pk), its cells as (column, value spelling), None when absent.
pub type RuleRows = BTreeMap<(String, String), Option<Vec<(String, String)>>>;

pub fn rows_by_rule(conn: &Connection) -> RuleRows {
    let (causal, rows) = load_rows(conn);
    let floors = floors(conn);
    let rule = Rule {
        causal: &causal,
        floors: &floors,
    };
    (rows.into_iter())
        .map(|(at, ops)| {
            let all: Vec<usize> = (0..ops.len()).collect();
            // a row's key columns show its key, whichever op wrote them last (a row brought
            // back by an update whose writer saw it deleted shows no other value in them)
            let state = rule.state(&ops, &all).map(|mut cells| {
                for (column, value) in split_object(&at.1) {
                    match cells.iter_mut().find(|(c, _)| *c == column) {
                        Some(cell) => cell.1 = value,
                        None => cells.push((column, value)),
                    }
                }
                cells
            });
            (at, state)
        })
        .collect()
}

/// Whether value spellings `a` and `b` are the same value.
pub fn same_spelling(a: &str, b: &str) -> bool {
    same(a, b)
}

/// A JSON object of our spelling as (key, value spelling) pairs.
pub fn fields(json: &str) -> Vec<(String, String)> {
    split_object(json)
}

/// Runs `compact` (a `sync_compact()` call) on `conn` and checks that it left the context of
/// every op whose context is still read as it was (`read_contexts`; compact/trim.rs drops only
/// points no such context reads): `compact`'s result, or the first context it changed.
pub fn compact_keeping_contexts<T>(
    conn: &Connection,
    compact: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    let before = read_contexts(conn);
    let done = compact()?;
    for (op, context) in read_contexts(conn) {
        if let Some(was) = before.get(&op).filter(|&was| *was != context) {
            return Err(format!(
                "changed the context of op {op:?} (history, seq): {was:?} -> {context:?}"
            ));
        }
    }
    Ok(done)
}

/// Contexts of ops, keyed by (history, seq): per dep, its seq.
pub type Contexts = BTreeMap<(i64, i64), BTreeMap<i64, i64>>;

/// Per op whose context is still read once ops are removed (every op held, applied or not, the op
/// below each, the ops the entries of the floor ops in force name, the floor ops, retired and
/// removed ones too, the ops histories fork after, the last op removed of each history, and the
/// removed ops whose hash is kept), its context as the device's change points say (per dep, the
/// last point at or below it; deps still waiting for their op left out): what compaction must leave
/// as it was (its trimming of the points of removed ops).
pub fn read_contexts(conn: &Connection) -> Contexts {
    // (the tables made once needed: those a device has)
    let made = |table: &str| {
        let sql = format!("SELECT count(*) FROM sqlite_master WHERE name = '{table}'");
        conn.query_row(&sql, [], |r| r.get::<_, i64>(0)).unwrap() > 0
    };
    let held = "SELECT device, seq FROM _sync_remote UNION SELECT 1, seq FROM _sync_ops";
    let mut sql = format!(
        "{held} UNION SELECT device, seq - 1 FROM ({held}) WHERE seq > 1
         UNION SELECT parent, base FROM _sync_devices WHERE parent IS NOT NULL"
    );
    if made("_sync_floors") {
        sql += " UNION SELECT device, seq FROM _sync_floors";
    }
    if made("_sync_removed") {
        sql += " UNION SELECT device, upto FROM _sync_removed";
    }
    if made("_sync_hashes") {
        sql += " UNION SELECT device, seq FROM _sync_hashes";
    }
    let mut ops: Vec<(i64, i64)> = super::rows(conn, &sql);
    if made("_sync_floors") {
        ops.extend(in_force_entries(conn));
    }
    let points: Vec<(i64, i64, i64, i64)> = super::rows(
        conn,
        "SELECT device, dep, seq, dep_seq FROM _sync_deps WHERE dep >= 0 ORDER BY device, dep, seq",
    );
    let mut by_device: BTreeMap<i64, BTreeMap<i64, Vec<(i64, i64)>>> = BTreeMap::new();
    for (device, dep, seq, dep_seq) in points {
        (by_device.entry(device).or_default().entry(dep).or_default()).push((seq, dep_seq));
    }
    ops.into_iter()
        .map(|(device, seq)| {
            let context = (by_device.get(&device).into_iter().flatten())
                .filter_map(|(&dep, points)| {
                    let at = points.partition_point(|p| p.0 <= seq);
                    (at > 0).then(|| (dep, points[at - 1].1))
                })
                .collect();
            ((device, seq), context)
        })
        .collect()
}

/// The entries (history, seq) of the floor ops not retired (docs/conflicts.md: a device's
/// point retires its earlier ones): per writer's history in seq order, a point that names a
/// seq to retire up to (`of = -1`) or seqs each (`of <= -2`) retires those of its earlier
/// points still in force, so named, whose every entry one of its own reaches (the same
/// history, at that seq or above).
fn in_force_entries(conn: &Connection) -> Vec<(i64, i64)> {
    let rows: Vec<(i64, i64, i64, i64)> = super::rows(
        conn,
        "SELECT device, seq, of, of_seq FROM _sync_floors ORDER BY device, seq",
    );
    type Point = ((i64, i64), Vec<(i64, i64)>, Option<i64>, Vec<i64>);
    let mut points: Vec<Point> = Vec::new();
    for (device, seq, of, of_seq) in rows {
        if points.last().is_none_or(|p| p.0 != (device, seq)) {
            points.push(((device, seq), Vec::new(), None, Vec::new()));
        }
        let point = points.last_mut().unwrap();
        match of {
            -1 => point.2 = Some(of_seq),
            o if o <= -2 => point.3.push(of_seq),
            _ => point.1.push((of, of_seq)),
        }
    }
    let mut in_force: Vec<usize> = Vec::new();
    for i in 0..points.len() {
        if i > 0 && points[i - 1].0 .0 != points[i].0 .0 {
            in_force.retain(|&j| points[j].0 .0 == points[i].0 .0);
        }
        let (op, entries, upto, each) = &points[i];
        let named = |seq: i64| upto.is_some_and(|u| seq <= u) || each.contains(&seq);
        let reached = |e: &(i64, i64)| entries.iter().any(|n| n.0 == e.0 && n.1 >= e.1);
        in_force.retain(|&j| {
            let earlier = &points[j];
            earlier.0 .0 != op.0
                || !(earlier.0 .1 < op.1 && named(earlier.0 .1) && earlier.1.iter().all(reached))
        });
        in_force.push(i);
    }
    in_force
        .into_iter()
        .flat_map(|i| points[i].1.clone())
        .collect()
}
