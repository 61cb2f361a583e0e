//! Causal contexts of ops, held as change points (`_sync_deps`): the context of op `seq` of
//! `device` holds, for every other device (dep), the last change point at or below `seq`. Each
//! change point keeps the hash of the op it names.
//!
//! Invariant: `Contexts` answers exactly as `_sync_deps` says, but reads only what it is asked
//! about: per device, the change points from some seq (its floor) on, and the one of each dep in
//! force at the floor, read when the device is first asked about, and read again further back
//! when asked about an op below the floor (while there are at most `WHOLE`, all of them at once).
//! So an import costs what its ops need, not one read of every change point ever recorded (they
//! grow with every import). Every change point goes
//! through `add` and `forget`, which write `_sync_deps` and keep what was read up to date. A
//! failed read is kept, answers as if nothing was recorded, and is returned by `check`, which
//! every writer calls before its work commits.

use crate::hashed::HashMap;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::db::{Conn, Error, Result, Row, Stmt};
use crate::op::{Dep, Hash};
use crate::schema::DeviceIdx;
use crate::value::Value;

/// A change point: from op `.0` on, the context holds op `.1` (with hash `.2`).
type Point = (u64, u64, Hash);

/// A device's change points by seq: (dep, dep seq, hash).
type BySeq = BTreeMap<u64, Vec<(DeviceIdx, u64, Hash)>>;

/// Per op (device, seq), the deps it was written with (`_sync_twins`).
type Twins = HashMap<(DeviceIdx, u64), Vec<Dep>>;

/// A device's change points from seq `.0` on.
type Deltas = (u64, BySeq);

/// What was read of one device's change points: per dep, the point in force at `floor` (when
/// there is one) and every later one, in seq order.
struct Read {
    floor: u64,
    deps: BTreeMap<DeviceIdx, Vec<Point>>,
}

/// The change points of every device, read as they are asked for.
pub struct Contexts<'c> {
    conn: &'c Conn,
    read: RefCell<HashMap<DeviceIdx, Read>>,
    /// Whether every change point was read at once (there were at most `whole_limit`): then a
    /// device not in `read` has none; None until the first question
    whole: Cell<Option<bool>>,
    whole_limit: usize,
    /// The two queries of `read_device`, prepared on first use
    queries: RefCell<Option<[Stmt<'c>; 2]>>,
    /// The statement of `add`, prepared on first use (an import may add a point per device per
    /// op)
    insert: Option<Stmt<'c>>,
    /// For `delta` of a device whose points in force were not read: its change points from
    /// some seq on, by seq (and the query that reads them, prepared on first use)
    deltas: RefCell<HashMap<DeviceIdx, Deltas>>,
    exact: RefCell<Option<Stmt<'c>>>,
    /// The query of `entry_once`, prepared on first use
    one: RefCell<Option<Stmt<'c>>>,
    /// The deps as written of the ops in `_sync_twins`, read on first use
    twins: RefCell<Option<Twins>>,
    failed: RefCell<Option<Error>>,
}

/// How far below a floor a device is read again when asked about an op below it.
const REACH: u64 = 1024;

/// Change points read at once when there are no more (a young database's, cheaper to read in
/// one query than device by device).
const WHOLE: usize = 64;

/// How many change points (or epochs, epochs.rs) are read at once when there are no more:
/// `WHOLE`, or none when `_sync_state` has `read_lazily` = 1 (so that the tests run the reads
/// of an old database's on young ones).
pub fn whole_limit(conn: &Conn) -> Result<usize> {
    Ok(match crate::schema::state(conn, "read_lazily")? {
        1 => 0,
        _ => WHOLE,
    })
}

impl<'c> Contexts<'c> {
    /// Contexts read from `conn` as they are asked for (nothing is read yet).
    pub fn load(conn: &'c Conn) -> Result<Contexts<'c>> {
        Ok(Contexts {
            conn,
            whole_limit: whole_limit(conn)?,
            read: RefCell::new(HashMap::default()),
            whole: Cell::new(None),
            queries: RefCell::new(None),
            insert: None,
            deltas: RefCell::new(HashMap::default()),
            exact: RefCell::new(None),
            one: RefCell::new(None),
            twins: RefCell::new(None),
            failed: RefCell::new(None),
        })
    }

    /// The first read that failed, if one did (its answers were as if nothing was recorded).
    pub fn check(&self) -> Result<()> {
        match self.failed.borrow_mut().take() {
            Some(e) => Err(Error::new(format!("reading causal contexts: {e}"))),
            None => Ok(()),
        }
    }

    /// Forgets what was read (after change points were renamed in `_sync_deps`), once `check`
    /// found no failed read.
    pub fn reload(&mut self) -> Result<()> {
        self.check()?;
        self.read.get_mut().clear();
        self.deltas.get_mut().clear();
        self.whole.set(None);
        *self.twins.get_mut() = None;
        Ok(())
    }

    /// The deps op `seq` of `device` was written with, where they name two histories held
    /// here as one (`add_twins`); None for every other op.
    pub fn twins(&self, device: DeviceIdx, seq: u64) -> Option<Vec<Dep>> {
        self.with_twins(|t| t.get(&(device, seq)).cloned())
            .flatten()
    }

    /// Whether the deps as written of an op of `device` up to `upto` in `_sync_twins` name
    /// `dep` (a device's id, a seq, that op's hash).
    pub fn twins_name(&self, device: DeviceIdx, upto: u64, dep: &Dep) -> bool {
        self.with_twins(|t| {
            (t.iter()).any(|(&(d, s), deps)| d == device && s <= upto && deps.contains(dep))
        })
        .unwrap_or(false)
    }

    /// The ops whose deps as written in `_sync_twins` name `dep`.
    pub fn twins_naming(&self, dep: &Dep) -> Vec<(DeviceIdx, u64)> {
        self.with_twins(|t| {
            (t.iter())
                .filter(|(_, deps)| deps.contains(dep))
                .map(|(&op, _)| op)
                .collect()
        })
        .unwrap_or_default()
    }

    /// `f` over the deps as written of the ops in `_sync_twins`, read on first use (None where
    /// they could not be read: the error is kept for `check`).
    fn with_twins<T>(&self, f: impl FnOnce(&Twins) -> T) -> Option<T> {
        let mut twins = self.twins.borrow_mut();
        if twins.is_none() {
            match self.read_twins() {
                Ok(read) => *twins = Some(read),
                Err(e) => {
                    self.failed.borrow_mut().get_or_insert(e);
                    return None;
                }
            }
        }
        twins.as_ref().map(f)
    }

    /// Every op's deps in `_sync_twins` (none where the table was never made).
    fn read_twins(&self) -> Result<Twins> {
        let mut out = HashMap::default();
        let made = self.conn.query_value(
            "SELECT 1 FROM main.sqlite_master WHERE name = '_sync_twins'",
            &[],
        )?;
        if made.is_none() {
            return Ok(out);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT device, seq, deps FROM main._sync_twins")?;
        while let Some(row) = stmt.step()? {
            let deps: Vec<Dep> = rmp_serde::from_slice(row.column_blob(2)?.unwrap_or_default())
                .map_err(|_| Error::new("damaged deps in _sync_twins"))?;
            out.insert(
                (DeviceIdx(row.column_int(0)), row.column_int(1) as u64),
                deps,
            );
        }
        Ok(out)
    }

    /// Records the deps op `seq` of `device` was written with, whose change points are stored
    /// as fewer (two of them name histories held here as one).
    pub fn add_twins(&mut self, device: DeviceIdx, seq: u64, deps: &[Dep]) -> Result<()> {
        self.conn.exec(crate::schema::TWINS, &[])?;
        let blob = rmp_serde::to_vec(deps).map_err(|e| Error::new(e.to_string()))?;
        self.conn.exec(
            "INSERT OR REPLACE INTO main._sync_twins(device, seq, deps) VALUES (?1, ?2, ?3)",
            &[
                Value::from(device),
                Value::Integer(seq as i64),
                Value::Blob(blob),
            ],
        )?;
        if let Some(twins) = self.twins.get_mut() {
            twins.insert((device, seq), deps.to_vec());
        }
        Ok(())
    }

    /// `f` over what was read of `device`, read down to op `seq` first if it was not.
    fn with<T>(&self, device: DeviceIdx, seq: u64, f: impl FnOnce(&Read) -> T) -> T {
        if self.is_whole() {
            let mut read = self.read.borrow_mut();
            return f(read.entry(device).or_insert_with(Read::none));
        }
        let mut read = self.read.borrow_mut();
        let floor = match read.get(&device) {
            Some(r) if r.floor <= seq => return f(r),
            Some(r) => seq.min(r.floor.saturating_sub(REACH)),
            None => seq,
        };
        match self.read_device(device, floor) {
            Ok(r) => f(read.entry(device).insert_entry(r).get()),
            Err(e) => {
                read.remove(&device);
                self.failed.borrow_mut().get_or_insert(e);
                f(&Read {
                    floor,
                    deps: BTreeMap::new(),
                })
            }
        }
    }

    /// Whether every change point is read, reading them all first if there are at most `WHOLE`.
    fn is_whole(&self) -> bool {
        if let Some(whole) = self.whole.get() {
            return whole;
        }
        let whole = match self.read_whole() {
            Ok(whole) => whole,
            Err(e) => {
                self.failed.borrow_mut().get_or_insert(e);
                false
            }
        };
        self.whole.set(Some(whole));
        whole
    }

    /// Reads every change point when there are at most `whole_limit`; whether there were.
    fn read_whole(&self) -> Result<bool> {
        if self.whole_limit == 0 {
            return Ok(false);
        }
        let mut stmt = self.conn.prepare(&format!(
            "SELECT device, dep, seq, dep_seq, hash FROM main._sync_deps
             ORDER BY device, dep, seq LIMIT {}",
            self.whole_limit + 1
        ))?;
        let mut all: HashMap<DeviceIdx, Read> = HashMap::default();
        let mut n = 0;
        while let Some(row) = stmt.step()? {
            n += 1;
            if n > self.whole_limit {
                return Ok(false);
            }
            let device = DeviceIdx(row.column_int(0));
            let read = all.entry(device).or_insert_with(Read::none);
            let list = read.deps.entry(DeviceIdx(row.column_int(1))).or_default();
            list.push(point(&row, 2)?);
        }
        *self.read.borrow_mut() = all;
        Ok(true)
    }

    /// Reads `device`'s change points from `floor` on, and each dep's in force at `floor`.
    fn read_device(&self, device: DeviceIdx, floor: u64) -> Result<Read> {
        let mut deps: BTreeMap<DeviceIdx, Vec<Point>> = BTreeMap::new();
        let mut queries = self.queries.borrow_mut();
        let [in_force, later] = match &mut *queries {
            Some(queries) => queries,
            None => queries.insert(self.prepare()?),
        };
        let at = [Value::from(device), Value::Integer(floor as i64)];
        for stmt in [in_force, later] {
            stmt.bind_all(&at)?;
            let result = (|| {
                while let Some(row) = stmt.step()? {
                    deps.entry(DeviceIdx(row.column_int(0)))
                        .or_default()
                        .push(point(&row, 1)?);
                }
                Ok(())
            })();
            stmt.reset();
            result?;
        }
        Ok(Read { floor, deps })
    }

    /// The queries of `read_device`: each dep's last point at or below the floor (the deps
    /// found one index step each), and every point above it.
    fn prepare(&self) -> Result<[Stmt<'c>; 2]> {
        let in_force = self.conn.prepare(
            "WITH RECURSIVE d(dep) AS (
               SELECT (SELECT min(dep) FROM main._sync_deps WHERE device = ?1)
               UNION ALL
               SELECT (SELECT min(dep) FROM main._sync_deps WHERE device = ?1 AND dep > d.dep)
               FROM d WHERE d.dep IS NOT NULL)
             SELECT d.dep, p.seq, p.dep_seq, p.hash FROM d
             JOIN main._sync_deps p ON p.device = ?1 AND p.dep = d.dep AND p.seq = (
               SELECT max(seq) FROM main._sync_deps
               WHERE device = ?1 AND dep = d.dep AND seq <= ?2)",
        )?;
        let later = self.conn.prepare(
            "SELECT dep, seq, dep_seq, hash FROM main._sync_deps WHERE device = ?1 AND seq > ?2
             ORDER BY seq, dep",
        )?;
        Ok([in_force, later])
    }

    /// Records a change point, in `_sync_deps` and in what was read.
    pub fn add(
        &mut self,
        device: DeviceIdx,
        seq: u64,
        dep: DeviceIdx,
        dep_seq: u64,
        hash: &Hash,
    ) -> Result<()> {
        let insert = match &mut self.insert {
            Some(stmt) => stmt,
            None => self.insert.insert(self.conn.prepare(
                "INSERT INTO main._sync_deps(device, seq, dep, dep_seq, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(device, seq, dep) DO UPDATE SET dep_seq = excluded.dep_seq,
                   hash = excluded.hash WHERE excluded.dep_seq > dep_seq",
            )?),
        };
        self.deltas.get_mut().remove(&device);
        insert.execute(&[
            Value::from(device),
            Value::Integer(seq as i64),
            Value::from(dep),
            Value::Integer(dep_seq as i64),
            Value::Blob(hash.to_vec()),
        ])?;
        let whole = self.whole.get() == Some(true);
        let mut read = self.read.borrow_mut();
        if whole {
            read.entry(device).or_insert_with(Read::none);
        }
        let Some(r) = read.get_mut(&device) else {
            return Ok(()); // read from `_sync_deps` when asked for
        };
        // in order among the points read: one below the floor is in force there when it is the
        // latest of its dep at or below it, as it would have been read
        let list = r.deps.entry(dep).or_default();
        match list.binary_search_by_key(&seq, |&(s, _, _)| s) {
            Ok(i) if list[i].1 < dep_seq => list[i] = (seq, dep_seq, *hash),
            Ok(_) => {}
            Err(i) => list.insert(i, (seq, dep_seq, *hash)),
        }
        Ok(())
    }

    /// Forgets the change points of op `seq` of `device`, in `_sync_deps` and in what was read.
    pub fn forget(&mut self, conn: &Conn, device: DeviceIdx, seq: u64) -> Result<()> {
        self.deltas.get_mut().remove(&device);
        conn.exec(
            "DELETE FROM main._sync_deps WHERE device = ?1 AND seq = ?2",
            &[Value::from(device), Value::Integer(seq as i64)],
        )?;
        let mut read = self.read.borrow_mut();
        match read.get_mut(&device) {
            Some(r) if seq <= r.floor => {
                read.remove(&device);
            }
            Some(r) => r.deps.values_mut().for_each(|l| l.retain(|p| p.0 != seq)),
            None => {}
        }
        Ok(())
    }

    /// Entry `dep` of the context of op `seq` of `device`.
    pub fn entry(&self, device: DeviceIdx, seq: u64, dep: DeviceIdx) -> u64 {
        if dep == device {
            return seq - 1;
        }
        self.with(device, seq, |r| in_force(r, dep, seq).map_or(0, |p| p.1))
    }

    /// `entry`, for a caller that asks once per dep (an op's deps checked against its previous
    /// op's, the next local op's against the clock): where `device`'s points were not read, one
    /// indexed step instead of reading every dep of it (a step per device known).
    pub fn entry_once(&self, device: DeviceIdx, seq: u64, dep: DeviceIdx) -> u64 {
        if dep == device {
            return seq - 1;
        }
        let read =
            self.is_whole() || (self.read.borrow().get(&device)).is_some_and(|r| r.floor <= seq);
        if read {
            return self.entry(device, seq, dep);
        }
        match self.read_one(device, seq, dep) {
            Ok(found) => found,
            Err(e) => {
                self.failed.borrow_mut().get_or_insert(e);
                0
            }
        }
    }

    /// Dep `dep`'s change point in force at op `seq` of `device`, from `_sync_deps`.
    fn read_one(&self, device: DeviceIdx, seq: u64, dep: DeviceIdx) -> Result<u64> {
        let mut one = self.one.borrow_mut();
        let stmt = match &mut *one {
            Some(stmt) => stmt,
            None => one.insert(self.conn.prepare(
                "SELECT dep_seq FROM main._sync_deps WHERE device = ?1 AND dep = ?2 AND seq <= ?3
                 ORDER BY seq DESC LIMIT 1",
            )?),
        };
        stmt.bind_all(&[
            Value::from(device),
            Value::from(dep),
            Value::Integer(seq as i64),
        ])?;
        let found = stmt
            .step()
            .map(|row| row.map_or(0, |r| r.column_int(0) as u64));
        stmt.reset();
        found
    }

    /// The whole context of op `seq` of `device` (other devices only).
    pub fn context(&self, device: DeviceIdx, seq: u64) -> BTreeMap<DeviceIdx, u64> {
        self.points_at(device, seq)
            .into_iter()
            .filter(|&(_, v, _)| v > 0)
            .map(|(dep, v, _)| (dep, v))
            .collect()
    }

    /// The change points in force at op `seq` of `device`, with the hashes of the ops they name.
    pub fn points_at(&self, device: DeviceIdx, seq: u64) -> Vec<(DeviceIdx, u64, Hash)> {
        self.with(device, seq, |r| {
            (r.deps.keys())
                .filter_map(|&dep| in_force(r, dep, seq).map(|p| (dep, p.1, p.2)))
                .collect()
        })
    }

    /// The change points exactly at op `seq` of `device`: what its encoding carries as `deps`.
    /// When the device's points were not read, its points from `seq` on are read by themselves
    /// (an export asks for each op's own points only, in seq order: reading the points in force
    /// below them would cost one step per device known).
    pub fn delta(&self, device: DeviceIdx, seq: u64) -> Vec<(DeviceIdx, u64, Hash)> {
        let read =
            self.is_whole() || (self.read.borrow().get(&device)).is_some_and(|r| r.floor <= seq);
        if read {
            return self.with(device, seq, |r| {
                (r.deps.iter())
                    .filter_map(|(&dep, list)| {
                        list.binary_search_by_key(&seq, |&(s, _, _)| s)
                            .ok()
                            .map(|i| (dep, list[i].1, list[i].2))
                    })
                    .collect()
            });
        }
        let mut deltas = self.deltas.borrow_mut();
        if deltas.get(&device).is_none_or(|d| d.0 > seq) {
            match self.read_deltas(device, seq) {
                Ok(points) => {
                    deltas.insert(device, (seq, points));
                }
                Err(e) => {
                    self.failed.borrow_mut().get_or_insert(e);
                    return Vec::new();
                }
            }
        }
        (deltas[&device].1.get(&seq)).cloned().unwrap_or_default()
    }

    /// The change points of `device` from op `from` on, by seq.
    fn read_deltas(&self, device: DeviceIdx, from: u64) -> Result<BySeq> {
        let mut exact = self.exact.borrow_mut();
        let stmt = match &mut *exact {
            Some(stmt) => stmt,
            None => exact.insert(self.conn.prepare(
                "SELECT dep, seq, dep_seq, hash FROM main._sync_deps WHERE device = ?1 AND seq >= ?2",
            )?),
        };
        stmt.bind_all(&[Value::from(device), Value::Integer(from as i64)])?;
        let result = (|| {
            let mut points = BySeq::new();
            while let Some(row) = stmt.step()? {
                let (seq, dep_seq, hash) = point(&row, 1)?;
                (points.entry(seq).or_default()).push((
                    DeviceIdx(row.column_int(0)),
                    dep_seq,
                    hash,
                ));
            }
            Ok(points)
        })();
        stmt.reset();
        result
    }
}

/// The change point in columns `at` … `at + 2` of `row`: seq, dep_seq, hash.
fn point(row: &Row, at: usize) -> Result<Point> {
    let hash = (row.column_blob(at + 2)?)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| Error::new("damaged change point in _sync_deps"))?;
    Ok((
        row.column_int(at) as u64,
        row.column_int(at + 1) as u64,
        hash,
    ))
}

impl Read {
    /// A device with no change point.
    fn none() -> Read {
        Read {
            floor: 0,
            deps: BTreeMap::new(),
        }
    }
}

/// Dep `dep`'s change point in force at op `seq` (at or above the floor) in `read`.
fn in_force(read: &Read, dep: DeviceIdx, seq: u64) -> Option<&Point> {
    let list = read.deps.get(&dep)?;
    let i = list.partition_point(|&(s, _, _)| s <= seq);
    (i > 0).then(|| &list[i - 1])
}
