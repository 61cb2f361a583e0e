//! Strays: ops of another history than the one held here at their seq (a `cp` copy's or a
//! put-back backup's writes under its device's id, where a compaction point decided that
//! device's history otherwise: apply/behind.rs), each with its link to the op before it.
//!
//! An op written after such writes names the last of them in its deps. A device that holds
//! the device's history (not those writes) takes that dep for the op where the writes left
//! its history: the op the writer had seen of it. Only a device that held the writes can tell
//! where that is, by walking their links down to an op it holds; so the links are kept where
//! the writes are dropped, and a bundle carries the ones its ops' deps name (manifest column
//! `strays`), so that every device walks the same links and stores the same dep.
//!
//! Invariant: an entry states a fact of the op's hash chain (its hash covers `prev`), true
//! wherever it is read, so a walk passes an entry only where the op held at its seq is known
//! and differs (apply/behind.rs). Entries are written only for ops dropped where a compaction
//! point decided (most of them another history's; the others, the op it removed, are never
//! walked past, and are kept only where the chain does not show them to be that op: a relay
//! sends again the ops it does not know a device has, and each would keep a link for good:
//! apply/lost.rs `keep_strays`); the table is made on first use, never changed, and read whole.

use crate::db::{Conn, Result};
use crate::hashed::{HashMap, HashSet};
use crate::op::{Dep, DeviceId, Hash};
use crate::value::Value;

/// An op of another history: its device's id, seq and hash, and the hash of the op before it.
pub type Stray = (DeviceId, u64, Hash, Hash);

/// The strays known here, by (device id, seq, hash): the hash of the op before each.
#[derive(Default)]
pub struct Strays {
    links: HashMap<(DeviceId, u64, Hash), Hash>,
    /// Those of `links` known for the call only (`hold`), not (yet) kept
    held: HashSet<(DeviceId, u64, Hash)>,
    /// Whether `_sync_strays` is known to be made
    made: bool,
}

impl Strays {
    /// Every entry of `_sync_strays` (none where the table was never made).
    pub fn load(conn: &Conn) -> Result<Strays> {
        let mut strays = Strays::default();
        let made = conn.query_value(
            "SELECT 1 FROM main.sqlite_master WHERE name = '_sync_strays'",
            &[],
        )?;
        if made.is_none() {
            return Ok(strays);
        }
        strays.made = true;
        let mut stmt = conn.prepare("SELECT device, seq, hash, prev FROM main._sync_strays")?;
        while let Some(row) = stmt.step()? {
            let fixed = |i| -> Option<[u8; 16]> { row.column_blob(i).ok()??.try_into().ok() };
            if let (Some(device), Some(hash), Some(prev)) = (fixed(0), fixed(2), fixed(3)) {
                let seq = row.column_int(1) as u64;
                strays.links.insert((device, seq, hash), prev);
            }
        }
        Ok(strays)
    }

    /// The hash of the op before the stray op `seq` of `device` whose hash is `hash`, if known.
    pub fn prev(&self, device: &DeviceId, seq: u64, hash: &Hash) -> Option<Hash> {
        self.links.get(&(*device, seq, *hash)).copied()
    }

    /// Keeps `stray` (op 1 has no op before it: not kept).
    pub fn add(&mut self, conn: &Conn, stray: Stray) -> Result<()> {
        let key = (stray.0, stray.1, stray.2);
        if stray.1 < 2 || (self.links.contains_key(&key) && !self.held.contains(&key)) {
            return Ok(());
        }
        self.links.insert(key, stray.3);
        self.store(conn, stray)
    }

    /// Knows `stray` for the rest of the call, without keeping it (yet: `store`).
    pub fn hold(&mut self, (device, seq, hash, prev): Stray) {
        if seq >= 2 && !self.links.contains_key(&(device, seq, hash)) {
            self.links.insert((device, seq, hash), prev);
            self.held.insert((device, seq, hash));
        }
    }

    /// Keeps `stray` in `_sync_strays` (one held is kept from now on).
    pub fn store(&mut self, conn: &Conn, (device, seq, hash, prev): Stray) -> Result<()> {
        self.held.remove(&(device, seq, hash));
        if seq < 2 {
            return Ok(());
        }
        if !self.made {
            conn.exec(crate::schema::STRAYS, &[])?;
            self.made = true;
        }
        conn.exec(
            "INSERT OR IGNORE INTO main._sync_strays(device, seq, hash, prev) VALUES (?1, ?2, ?3, ?4)",
            &[
                Value::Blob(device.to_vec()),
                Value::Integer(seq as i64),
                Value::Blob(hash.to_vec()),
                Value::Blob(prev.to_vec()),
            ],
        )?;
        Ok(())
    }

    /// The strays `dep` names, itself and those below it that its links reach, added to `to`
    /// (what a bundle carries with an op that has `dep` as written).
    pub fn named_by(&self, dep: &Dep, to: &mut HashSet<Stray>) {
        let (mut seq, mut hash) = (dep.1, dep.2);
        while let Some(prev) = self.prev(&dep.0, seq, &hash) {
            if !to.insert((dep.0, seq, hash, prev)) {
                return; // (and the ones below it: added with it)
            }
            (seq, hash) = (seq - 1, prev);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }
}
