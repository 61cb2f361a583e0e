//! Vector clocks: which devices exist, what this device has applied, what each op had seen
//! (its causal context), and what each peer is known to have.
//!
//! Invariant: clocks only grow. An entry of the applied clock counts an op only when every op of
//! that device below it is applied too (pending ops do not count), and a peer's known clock only
//! takes what a bundle *from* that peer said it had.

use crate::hashed::HashMap;
use std::collections::BTreeMap;

use crate::db::{Conn, Error, Result};
use crate::log;
use crate::op::{DeviceId, Hash};
use crate::schema::{DeviceIdx, SELF};
use crate::value::Value;

pub use super::contexts::Contexts;

/// A vector clock keyed by device index.
pub type Clock = BTreeMap<DeviceIdx, u64>;

/// Device ids and their small local indexes (`_sync_devices`), and the histories of devices
/// that wrote two (apply/histories.rs): a device's id names its first history (its root); each later
/// history forks from the one it left (its parent) after that history's op `base`, and has an id
/// derived from the device's id and the hash of its first op, so every device names it alike.
pub struct Devices {
    by_id: HashMap<DeviceId, DeviceIdx>,
    by_idx: HashMap<DeviceIdx, DeviceId>,
    /// per history that forked from another: (parent, base)
    forks: HashMap<DeviceIdx, (DeviceIdx, u64)>,
    /// per history, the seq at or below which compaction may have removed ops (`_sync_removed`)
    removed: HashMap<DeviceIdx, u64>,
    /// the devices forgotten here (log/forgotten.rs)
    forgotten: crate::hashed::HashSet<DeviceIdx>,
}

impl Devices {
    pub fn load(conn: &Conn) -> Result<Devices> {
        let mut stmt = conn.prepare("SELECT idx, id, parent, base FROM main._sync_devices")?;
        let mut devices = Devices {
            by_id: HashMap::default(),
            by_idx: HashMap::default(),
            forks: HashMap::default(),
            removed: HashMap::default(),
            forgotten: Default::default(),
        };
        while let Some(row) = stmt.step()? {
            let idx = DeviceIdx(row.column_int(0));
            if row.column_int(3) < 0 {
                continue; // (a history forgotten: Devices::remove)
            }
            let id = device_bytes(&row.column(1)?)?;
            devices.by_id.insert(id, idx);
            devices.by_idx.insert(idx, id);
            if let Value::Integer(parent) = row.column(2)? {
                devices
                    .forks
                    .insert(idx, (DeviceIdx(parent), row.column_int(3) as u64));
            }
        }
        drop(stmt);
        for id in super::forgotten::load(conn)? {
            if let Some(&idx) = devices.by_id.get(&id) {
                devices.forgotten.insert(idx);
            }
        }
        let made = "SELECT 1 FROM main.sqlite_master WHERE name = '_sync_removed'";
        if conn.query_value(made, &[])?.is_some() {
            let mut stmt = conn.prepare("SELECT device, upto FROM main._sync_removed")?;
            while let Some(row) = stmt.step()? {
                (devices.removed).insert(DeviceIdx(row.column_int(0)), row.column_int(1) as u64);
            }
        }
        Ok(devices)
    }

    /// The seq of history `idx` at or below which compaction may have removed its ops here (0:
    /// none).
    pub fn removed_upto(&self, idx: DeviceIdx) -> u64 {
        self.removed.get(&idx).copied().unwrap_or(0)
    }

    /// Records that ops of history `idx` at or below `upto` may be missing (`_sync_removed`).
    pub fn set_removed(&mut self, conn: &Conn, idx: DeviceIdx, upto: u64) -> Result<()> {
        conn.exec(crate::schema::REMOVED, &[])?;
        conn.exec(
            "INSERT INTO main._sync_removed(device, upto) VALUES (?1, ?2)
             ON CONFLICT(device) DO UPDATE SET upto = max(upto, excluded.upto)",
            &[Value::from(idx), Value::Integer(upto as i64)],
        )?;
        let at = self.removed.entry(idx).or_default();
        *at = (*at).max(upto);
        Ok(())
    }

    /// Records that ops of history `idx` above `upto` are no longer taken for removed ones:
    /// they are missing, to come again (apply/behind.rs `below_taken_for_removed`).
    pub fn lower_removed(&mut self, conn: &Conn, idx: DeviceIdx, upto: u64) -> Result<()> {
        if self.removed_upto(idx) <= upto {
            return Ok(());
        }
        conn.exec(
            "UPDATE main._sync_removed SET upto = ?2 WHERE device = ?1",
            &[Value::from(idx), Value::Integer(upto as i64)],
        )?;
        self.removed.insert(idx, upto);
        Ok(())
    }

    /// Whether device `idx` was forgotten here (log/forgotten.rs): it no longer counts among
    /// the devices known here.
    pub fn is_forgotten(&self, idx: DeviceIdx) -> bool {
        !self.forgotten.is_empty() && self.forgotten.contains(&idx)
    }

    /// The ids of the devices forgotten here, sorted.
    pub fn forgotten_ids(&self) -> Vec<DeviceId> {
        let mut ids: Vec<DeviceId> = self.forgotten.iter().map(|&i| self.id(i)).collect();
        ids.sort();
        ids
    }

    /// The ops of history `from` from `from_seq` on became history `to`'s
    /// (`crate::schema::rename_ops`, which does the same in `_sync_removed`).
    pub fn renamed(&mut self, from: DeviceIdx, to: DeviceIdx, from_seq: u64) {
        match self.removed.get(&from).copied() {
            Some(upto) if upto >= from_seq => {
                self.removed.insert(to, upto);
                if from_seq <= 1 {
                    self.removed.remove(&from);
                } else {
                    self.removed.insert(from, from_seq - 1);
                }
            }
            _ => {}
        }
    }

    /// Forgets history `idx`, which holds no op here any more and that nothing names
    /// (apply/behind.rs). Its row stays, nameless (base -1), so that its index is never given
    /// to another.
    pub fn remove(&mut self, conn: &Conn, idx: DeviceIdx) -> Result<()> {
        conn.exec(
            "UPDATE main._sync_devices SET id = randomblob(16), parent = NULL, base = -1
             WHERE idx = ?1",
            &[Value::from(idx)],
        )?;
        if let Some(id) = self.by_idx.remove(&idx) {
            self.by_id.remove(&id);
        }
        self.forks.remove(&idx);
        self.removed.remove(&idx);
        Ok(())
    }

    pub fn idx(&self, id: &DeviceId) -> Option<DeviceIdx> {
        self.by_id.get(id).copied()
    }

    /// The index of the device `id` (of its first history), registering it when it is new.
    pub fn idx_or_add(&mut self, conn: &Conn, id: &DeviceId) -> Result<DeviceIdx> {
        if let Some(idx) = self.idx(id) {
            if !self.forks.is_empty() && self.forks.contains_key(&idx) {
                return Err(Error::new(format!(
                    "names device {}, an id this database gives to a second history of a \
                     device (forged?)",
                    crate::value::hex(id)
                )));
            }
            return Ok(idx);
        }
        let idx = DeviceIdx(conn.insert(
            "INSERT INTO main._sync_devices(id) VALUES (?1)",
            &[Value::Blob(id.to_vec())],
        )?);
        self.by_id.insert(*id, idx);
        self.by_idx.insert(idx, *id);
        Ok(idx)
    }

    /// Registers a history that forks from `parent` after its op `base`, named `id`.
    pub fn add_history(
        &mut self,
        conn: &Conn,
        parent: DeviceIdx,
        base: u64,
        id: &DeviceId,
    ) -> Result<DeviceIdx> {
        let idx = DeviceIdx(conn.insert(
            "INSERT INTO main._sync_devices(id, parent, base) VALUES (?1, ?2, ?3)",
            &[
                Value::Blob(id.to_vec()),
                Value::from(parent),
                Value::Integer(base as i64),
            ],
        )?);
        self.by_id.insert(*id, idx);
        self.by_idx.insert(idx, *id);
        self.forks.insert(idx, (parent, base));
        Ok(idx)
    }

    /// Moves history `idx` under `parent`.
    pub fn set_parent(&mut self, conn: &Conn, idx: DeviceIdx, parent: DeviceIdx) -> Result<()> {
        conn.exec(
            "UPDATE main._sync_devices SET parent = ?1 WHERE idx = ?2",
            &[Value::from(parent), Value::from(idx)],
        )?;
        if let Some(fork) = self.forks.get_mut(&idx) {
            fork.0 = parent;
        }
        Ok(())
    }

    /// The local name of history `idx`: the device's id for its first history.
    pub fn id(&self, idx: DeviceIdx) -> DeviceId {
        self.by_idx[&idx]
    }

    /// How a message names history `idx`: the first 8 hex digits of the id its ops travel
    /// under, as `sync_status()` shows ids, and whether it is a second history of that id.
    pub fn named(&self, idx: DeviceIdx) -> String {
        let idx = if idx.0 < 0 { waited_for(idx) } else { idx };
        let root = self.root(idx);
        let Some(id) = self.by_idx.get(&root) else {
            return format!("#{idx}");
        };
        let second = if root == idx {
            ""
        } else {
            " (a second history of it)"
        };
        format!("{}{second}", &crate::value::hex(id)[..8])
    }

    /// The id its ops travel under: the device's, for every history of it. (A negative index
    /// names a device whose history an op waits for: apply/histories.rs.)
    pub fn wire_id(&self, idx: DeviceIdx) -> DeviceId {
        let idx = if idx.0 < 0 { waited_for(idx) } else { idx };
        self.id(self.root(idx))
    }

    /// The first history of the device that wrote history `idx`.
    pub fn root(&self, mut idx: DeviceIdx) -> DeviceIdx {
        while let Some(&(parent, _)) = self.forks.get(&idx) {
            idx = parent;
        }
        idx
    }

    /// (parent, base) of a history that forked from another.
    pub fn fork(&self, idx: DeviceIdx) -> Option<(DeviceIdx, u64)> {
        self.forks.get(&idx).copied()
    }

    /// The histories that fork from history `idx`, in index order.
    pub fn children(&self, idx: DeviceIdx) -> Vec<DeviceIdx> {
        let mut v: Vec<DeviceIdx> = (self.forks.iter())
            .filter(|(_, &(p, _))| p == idx)
            .map(|(&c, _)| c)
            .collect();
        v.sort();
        v
    }

    /// Whether `clock`'s entry for history `idx` says nothing that its entries for the
    /// histories forked from it do not: it has no op of its own there (it ends where they
    /// fork), or one of them has an op in `clock`, which follows all of `idx` it holds. An op
    /// names such an entry in its deps only if it adds something (two deps of one op must name
    /// different histories wherever they arrive).
    pub fn implied(&self, clock: &Clock, idx: DeviceIdx) -> bool {
        let seq = clock.get(&idx).copied().unwrap_or(0);
        seq <= self.fork(idx).map_or(0, |f| f.1) || self.seen_beyond(clock, idx)
    }

    /// Whether `clock` holds an op of a history forked from `idx` (or from one of those).
    fn seen_beyond(&self, clock: &Clock, idx: DeviceIdx) -> bool {
        self.children(idx).into_iter().any(|child| {
            let base = self.fork(child).map_or(0, |f| f.1);
            clock.get(&child).copied().unwrap_or(0) > base || self.seen_beyond(clock, child)
        })
    }

    /// Whether the device whose first history is `root` wrote more than one.
    pub fn is_forked(&self, root: DeviceIdx) -> bool {
        !self.forks.is_empty() && self.forks.values().any(|&(p, _)| self.root(p) == root)
    }

    /// Every history of the device whose first history is `root`, parents before children.
    pub fn histories(&self, root: DeviceIdx) -> Vec<DeviceIdx> {
        let mut out = vec![root];
        let mut i = 0;
        while i < out.len() {
            out.extend(self.children(out[i]));
            i += 1;
        }
        out
    }

    /// Every device index, ascending, each history after the one it forked from.
    pub fn indexes(&self) -> impl Iterator<Item = DeviceIdx> {
        let mut roots: Vec<DeviceIdx> = (self.by_idx.keys().copied())
            .filter(|i| !self.forks.contains_key(i))
            .collect();
        roots.sort();
        let all: Vec<DeviceIdx> = roots.into_iter().flat_map(|r| self.histories(r)).collect();
        all.into_iter()
    }

    pub fn me(&self) -> DeviceId {
        self.id(SELF)
    }
}

/// Bits of a waiting dep's placeholder that hold the device's index (below them, 40 bits of
/// the hash of the op it waits for: two deps of one op waiting for ops of one device differ).
const ROOT_BITS: u32 = 20;

/// The placeholder, a negative index, for a dep that waits for op `hash` of the device whose
/// first history is `root`: its op is pending until the importer finds that op held here (apply/histories.rs).
pub fn waiting(root: DeviceIdx, hash: &crate::op::Hash) -> DeviceIdx {
    let tag = u64::from_be_bytes([0, 0, 0, hash[0], hash[1], hash[2], hash[3], hash[4]]);
    DeviceIdx(-(((tag << ROOT_BITS) | root.0 as u64) as i64))
}

/// The first history of the device a waiting dep's placeholder names.
pub fn waited_for(placeholder: DeviceIdx) -> DeviceIdx {
    DeviceIdx((-placeholder.0) & ((1 << ROOT_BITS) - 1))
}

pub fn device_bytes(v: &Value) -> Result<DeviceId> {
    v.as_blob()
        .and_then(crate::op::device_id)
        .ok_or_else(|| Error::new("damaged device id"))
}

/// This device's applied clock: its own ops, and per other device the highest seq applied with
/// none missing below it.
pub fn applied(conn: &Conn) -> Result<Clock> {
    let mut clock = read_clock(
        conn,
        "SELECT device, seq FROM main._sync_clock WHERE seq > 0",
        &[],
    )?;
    let own = log::last_local_seq(conn)? as u64;
    if own > 0 {
        clock.insert(SELF, own);
    }
    Ok(clock)
}

/// A clock from a query of (device, seq) rows.
fn read_clock(conn: &Conn, sql: &str, params: &[Value]) -> Result<Clock> {
    let mut stmt = conn.prepare(sql)?;
    stmt.bind_all(params)?;
    let mut clock = Clock::new();
    while let Some(row) = stmt.step()? {
        clock.insert(DeviceIdx(row.column_int(0)), row.column_int(1) as u64);
    }
    Ok(clock)
}

/// Writes the applied clock's entries for other devices.
pub fn store_applied(conn: &Conn, clock: &Clock) -> Result<()> {
    let mut stmt = conn.prepare(
        "INSERT INTO main._sync_clock(device, seq) VALUES (?1, ?2)
         ON CONFLICT(device) DO UPDATE SET seq = max(seq, excluded.seq)",
    )?;
    for (&device, &seq) in clock.iter().filter(|(&d, _)| d != SELF) {
        stmt.execute(&[Value::from(device), Value::Integer(seq as i64)])?;
    }
    Ok(())
}

/// `sync_clock()`: `{"<device hex>": seq, …}`, keys sorted.
pub fn sync_clock(conn: &Conn, _args: &[Value]) -> Result<Value> {
    crate::schema::require_initialized(conn)?;
    let devices = Devices::load(conn)?;
    Ok(Value::Text(clock_json(&devices, &applied(conn)?)))
}

pub fn clock_json(devices: &Devices, clock: &Clock) -> String {
    let mut entries: Vec<(String, u64)> = clock
        .iter()
        .map(|(&d, &s)| (crate::value::hex(&devices.id(d)), s))
        .collect();
    entries.sort();
    let mut obj = crate::value::JsonObject::new();
    for (device, seq) in &entries {
        obj.field(device, &Value::Integer(*seq as i64));
    }
    obj.finish()
}

/// What a peer is known to have: per device, a seq and the hash of that op there.
pub type Known = HashMap<DeviceIdx, (u64, Option<Hash>)>;

/// What `peer` is known to have, as `known_by`, when a bundle from it was imported here; None
/// when none was (nothing is known of it).
pub fn heard_from(conn: &Conn, peer: DeviceIdx) -> Result<Option<Known>> {
    let heard = conn.query_value(
        "SELECT 1 FROM main._sync_bundles WHERE source = ?1 LIMIT 1",
        &[Value::from(peer)],
    )?;
    match heard {
        Some(_) => known_by(conn, peer).map(Some),
        None => Ok(None),
    }
}

/// What `peer` is known to have (from the clocks its bundles carried): per device, a seq and
/// the hash of that op there.
pub fn known_by(conn: &Conn, peer: DeviceIdx) -> Result<HashMap<DeviceIdx, (u64, Option<Hash>)>> {
    let mut stmt =
        conn.prepare("SELECT device, seq, hash FROM main._sync_peers WHERE peer = ?1")?;
    stmt.bind_all(&[Value::from(peer)])?;
    let mut known = HashMap::default();
    while let Some(row) = stmt.step()? {
        let hash = row.column_blob(2)?.and_then(|h| h.try_into().ok());
        known.insert(
            DeviceIdx(row.column_int(0)),
            (row.column_int(1) as u64, hash),
        );
    }
    Ok(known)
}

/// Sets what `peer` is known to have to `clock`, the clock of its latest bundle here. Knowledge
/// may go down: an older bundle delivered late, or a peer put back to an older backup, which
/// lost ops it had received (it must get them again). Believing a peer has less than it has
/// only sends ops twice; believing it has more would never send them.
pub fn learn_peer(
    conn: &Conn,
    peer: DeviceIdx,
    clock: &[(DeviceIdx, u64, Option<Hash>)],
) -> Result<()> {
    // only what changed is written: a bundle's clock names every device its writer knows
    let mut before = known_by(conn, peer)?;
    let mut upsert = conn.prepare(
        "INSERT OR REPLACE INTO main._sync_peers(peer, device, seq, hash) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for &(device, seq, hash) in clock {
        if before.remove(&device) == Some((seq, hash)) {
            continue;
        }
        upsert.execute(&[
            Value::from(peer),
            Value::from(device),
            Value::Integer(seq as i64),
            hash.map_or(Value::Null, |h| Value::Blob(h.to_vec())),
        ])?;
    }
    let mut gone = conn.prepare("DELETE FROM main._sync_peers WHERE peer = ?1 AND device = ?2")?;
    for device in before.into_keys() {
        gone.execute(&[Value::from(peer), Value::from(device)])?;
    }
    Ok(())
}

/// Causal order between ops, from their devices and contexts.
pub struct Order<'a, 'c> {
    pub devices: &'a Devices,
    pub contexts: &'a Contexts<'c>,
    /// The floor ops applied here (an op behind one is taken to have seen it when it revives a
    /// row: log/floors.rs)
    pub floors: &'a super::floors::Floors,
}

impl Order<'_, '_> {
    /// Whether op `later` (device, seq) causally follows op `earlier` (distinct ops).
    pub fn op_follows(&self, later: (&DeviceId, u64), earlier: (&DeviceId, u64)) -> bool {
        if later.0 == earlier.0 {
            return later.1 > earlier.1;
        }
        match (self.devices.idx(later.0), self.devices.idx(earlier.0)) {
            (Some(l), Some(e)) => self.saw(l, later.1, e, earlier.1),
            _ => false,
        }
    }

    /// Whether op `later` (device, seq) is op `earlier` or follows it.
    pub fn reaches(&self, later: (DeviceIdx, u64), earlier: (DeviceIdx, u64)) -> bool {
        if later.0 == earlier.0 {
            return later.1 >= earlier.1;
        }
        self.saw(later.0, later.1, earlier.0, earlier.1)
    }

    /// Whether op `earlier` is among what op `later`'s writer is taken to have seen when
    /// `later` revives a row (merge/rule.rs `Causality::saw`): its causal past, and where
    /// `later` is behind a floor, the ops below every floor (log/floors.rs); `earlier_deletes` when
    /// `earlier` is a delete, which a floor does not lend.
    pub fn op_saw(
        &self,
        later: (&DeviceId, u64),
        earlier: (&DeviceId, u64),
        earlier_deletes: bool,
    ) -> bool {
        if self.op_follows(later, earlier) {
            return true;
        }
        if earlier_deletes || self.floors.is_empty() {
            return false;
        }
        match (self.devices.idx(later.0), self.devices.idx(earlier.0)) {
            (Some(l), Some(e)) => {
                let reaches = |x, y| self.reaches(x, y);
                self.floors
                    .seen_through(reaches, (l, later.1), (e, earlier.1))
            }
            _ => false,
        }
    }
}

impl Order<'_, '_> {
    /// Whether op `seq` of `device` had seen op `seen_seq` of history `seen`: its context
    /// holds it, or an op of a history forked from `seen` after it whose ops follow it (not
    /// one that left `seen`'s lineage at a compaction point, apply/behind.rs: its first op
    /// follows an op of its own there, and its context holds none of `seen`'s).
    fn saw(&self, device: DeviceIdx, seq: u64, seen: DeviceIdx, seen_seq: u64) -> bool {
        if self.contexts.entry(device, seq, seen) >= seen_seq {
            return true;
        }
        self.devices.children(seen).into_iter().any(|child| {
            let base = self.devices.fork(child).map_or(0, |f| f.1);
            base >= seen_seq
                && self.contexts.entry(child, base + 1, seen) >= base
                && self.saw(device, seq, child, base + 1)
        })
    }
}
