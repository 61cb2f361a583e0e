//! Vector clocks: which devices exist, what this device has applied, what each op had seen
//! (its causal context), and what each peer is known to have.
//!
//! Invariant: clocks only grow. An entry of the applied clock counts an op only when every op of
//! that device below it is applied too (pending ops do not count), and a peer's known clock only
//! takes what a bundle *from* that peer said it had.

use std::collections::{BTreeMap, HashMap};

use crate::db::{Conn, Error, Result};
use crate::log::{self, SELF};
use crate::merge::{Causality, RowOp};
use crate::op::DeviceId;
use crate::value::Value;

/// A vector clock keyed by device index.
pub type Clock = BTreeMap<i64, u64>;

/// Device ids and their small local indexes (`_sync_devices`).
pub struct Devices {
    by_id: HashMap<DeviceId, i64>,
    by_idx: HashMap<i64, DeviceId>,
}

impl Devices {
    pub fn load(conn: &Conn) -> Result<Devices> {
        let mut stmt = conn.prepare("SELECT idx, id FROM main._sync_devices")?;
        let mut devices = Devices {
            by_id: HashMap::new(),
            by_idx: HashMap::new(),
        };
        while stmt.step()? {
            let idx = stmt.column_int(0);
            let id = device_bytes(&stmt.column(1)?)?;
            devices.by_id.insert(id, idx);
            devices.by_idx.insert(idx, id);
        }
        Ok(devices)
    }

    pub fn idx(&self, id: &DeviceId) -> Option<i64> {
        self.by_id.get(id).copied()
    }

    /// The index of `id`, registering the device when it is new.
    pub fn idx_or_add(&mut self, conn: &Conn, id: &DeviceId) -> Result<i64> {
        if let Some(idx) = self.idx(id) {
            return Ok(idx);
        }
        let idx = conn.insert(
            "INSERT INTO main._sync_devices(id) VALUES (?1)",
            &[Value::Blob(id.to_vec())],
        )?;
        self.by_id.insert(*id, idx);
        self.by_idx.insert(idx, *id);
        Ok(idx)
    }

    pub fn id(&self, idx: i64) -> DeviceId {
        self.by_idx[&idx]
    }

    /// Every device index, ascending.
    pub fn indexes(&self) -> impl Iterator<Item = i64> {
        let mut v: Vec<i64> = self.by_idx.keys().copied().collect();
        v.sort();
        v.into_iter()
    }

    pub fn me(&self) -> DeviceId {
        self.id(SELF)
    }
}

pub fn device_bytes(v: &Value) -> Result<DeviceId> {
    v.as_blob()
        .and_then(|b| b.try_into().ok())
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
    while stmt.step()? {
        clock.insert(stmt.column_int(0), stmt.column_int(1) as u64);
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
        stmt.execute(&[Value::Integer(device), Value::Integer(seq as i64)])?;
    }
    Ok(())
}

/// `sync_clock()`: `{"<device hex>": seq, …}`, keys sorted.
pub fn sync_clock(conn: &Conn, _args: &[Value]) -> Result<Value> {
    log::require_initialized(conn)?;
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

/// What `peer` is known to have (from the clocks its bundles carried).
pub fn known_by(conn: &Conn, peer: i64) -> Result<Clock> {
    read_clock(
        conn,
        "SELECT device, seq FROM main._sync_peers WHERE peer = ?1",
        &[Value::Integer(peer)],
    )
}

/// Sets what `peer` is known to have to `clock`, the clock of its latest bundle here. Knowledge
/// may go down: an older bundle delivered late, or a peer put back to an older backup, which
/// lost ops it had received (it must get them again). Believing a peer has less than it has
/// only sends ops twice; believing it has more would never send them.
pub fn learn_peer(conn: &Conn, peer: i64, clock: &Clock) -> Result<()> {
    conn.exec(
        "DELETE FROM main._sync_peers WHERE peer = ?1",
        &[Value::Integer(peer)],
    )?;
    let mut stmt =
        conn.prepare("INSERT INTO main._sync_peers(peer, device, seq) VALUES (?1, ?2, ?3)")?;
    for (&device, &seq) in clock {
        stmt.execute(&[
            Value::Integer(peer),
            Value::Integer(device),
            Value::Integer(seq as i64),
        ])?;
    }
    Ok(())
}

/// Causal contexts of all ops, held as change points (`_sync_deps`): the context of op `seq` of
/// `device` holds, for every other device, the last change point at or below `seq`.
#[derive(Default)]
pub struct Contexts {
    points: HashMap<i64, BTreeMap<i64, Vec<(u64, u64)>>>,
}

impl Contexts {
    pub fn load(conn: &Conn) -> Result<Contexts> {
        let mut contexts = Contexts::default();
        let mut stmt = conn.prepare(
            "SELECT device, seq, dep, dep_seq FROM main._sync_deps ORDER BY device, dep, seq",
        )?;
        while stmt.step()? {
            let n = |i| stmt.column_int(i);
            contexts.remember(n(0), n(1) as u64, n(2), n(3) as u64);
        }
        Ok(contexts)
    }

    /// Notes a change point in memory (the caller stores it).
    fn remember(&mut self, device: i64, seq: u64, dep: i64, dep_seq: u64) {
        let list = self
            .points
            .entry(device)
            .or_default()
            .entry(dep)
            .or_default();
        match list.binary_search_by_key(&seq, |&(s, _)| s) {
            Ok(i) => list[i].1 = list[i].1.max(dep_seq),
            Err(i) => list.insert(i, (seq, dep_seq)),
        }
    }

    /// Records a change point, in memory and in `_sync_deps`.
    pub fn add(
        &mut self,
        conn: &Conn,
        device: i64,
        seq: u64,
        dep: i64,
        dep_seq: u64,
    ) -> Result<()> {
        self.remember(device, seq, dep, dep_seq);
        conn.exec(
            "INSERT INTO main._sync_deps(device, seq, dep, dep_seq) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(device, seq, dep) DO UPDATE SET dep_seq = max(dep_seq, excluded.dep_seq)",
            &[
                Value::Integer(device),
                Value::Integer(seq as i64),
                Value::Integer(dep),
                Value::Integer(dep_seq as i64),
            ],
        )
    }

    /// Forgets the change points of op `seq` of `device`, in memory and in `_sync_deps`.
    pub fn forget(&mut self, conn: &Conn, device: i64, seq: u64) -> Result<()> {
        if let Some(deps) = self.points.get_mut(&device) {
            for list in deps.values_mut() {
                list.retain(|&(s, _)| s != seq);
            }
        }
        conn.exec(
            "DELETE FROM main._sync_deps WHERE device = ?1 AND seq = ?2",
            &[Value::Integer(device), Value::Integer(seq as i64)],
        )
    }

    /// Entry `dep` of the context of op `seq` of `device`.
    pub fn entry(&self, device: i64, seq: u64, dep: i64) -> u64 {
        if dep == device {
            return seq - 1;
        }
        let Some(list) = self.points.get(&device).and_then(|m| m.get(&dep)) else {
            return 0;
        };
        match list.binary_search_by_key(&seq, |&(s, _)| s) {
            Ok(i) => list[i].1,
            Err(0) => 0,
            Err(i) => list[i - 1].1,
        }
    }

    /// The whole context of op `seq` of `device` (other devices only).
    pub fn context(&self, device: i64, seq: u64) -> Clock {
        let mut clock = Clock::new();
        if let Some(deps) = self.points.get(&device) {
            for &dep in deps.keys() {
                let v = self.entry(device, seq, dep);
                if v > 0 {
                    clock.insert(dep, v);
                }
            }
        }
        clock
    }

    /// The change points exactly at op `seq` of `device`: what its encoding carries as `deps`.
    pub fn delta(&self, device: i64, seq: u64) -> Vec<(i64, u64)> {
        let Some(deps) = self.points.get(&device) else {
            return Vec::new();
        };
        deps.iter()
            .filter_map(|(&dep, list)| {
                list.binary_search_by_key(&seq, |&(s, _)| s)
                    .ok()
                    .map(|i| (dep, list[i].1))
            })
            .collect()
    }
}

/// Causal order between ops, from their devices and contexts.
pub struct Order<'a> {
    pub devices: &'a Devices,
    pub contexts: &'a Contexts,
}

impl Causality for Order<'_> {
    fn follows(&self, later: &RowOp, earlier: &RowOp) -> bool {
        if later.device == earlier.device {
            return later.seq > earlier.seq;
        }
        match (
            self.devices.idx(&later.device),
            self.devices.idx(&earlier.device),
        ) {
            (Some(l), Some(e)) => self.contexts.entry(l, later.seq, e) >= earlier.seq,
            _ => false,
        }
    }
}
