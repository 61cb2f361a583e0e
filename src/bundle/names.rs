//! Short names in a bundle's stream (format 5): each device by its number in order of first
//! mention, and each op's deps stated against the deps before them.
//!
//! An op's deps are the entries of its writer's clock that changed since its previous op: in a
//! fleet of many devices an op that follows a sync names most of them, and the ops of different
//! devices that synced with the same peer name the same entries. So the stream keeps a running
//! context (per device number, the last entry stated for it) and states each op's deps as the
//! difference from it: the devices to leave out, then the entries that differ. An op inherits
//! the running context but for its own device's entry; an entry's link is left out when the
//! same entry was stated before in the stream.
//!
//! ```text
//! device    uint: the number of a device named before | bin(16): a new device, numbered next
//! deps      drops: uint n, then n device numbers (left out of what the op inherits)
//!           changes: uint n, then n times: device, seq: uint, link: bin(16) | nil (nil: the
//!           entry (device, seq) was stated before in the stream, with its link)
//!         | nil, then the deps as the op's encoding has them (op.rs), the running context
//!           left as it is: for deps that name a device twice (two histories under one id
//!           that the op's writer had both seen)
//! ```
//!
//! Invariant: the writer and the reader make the same moves in the same order, so the deps the
//! reader rebuilds are exactly the writer's (sorted by device id, as an op's encoding has them).

use crate::hashed::HashMap;
use std::collections::BTreeMap;

use crate::db::{Error, Result};
use crate::form;
use crate::op::{self, Dep, DeviceId, Hash};

use super::{put, Fixed};

/// msgpack's marker of a bin of up to 255 bytes, and of nil.
const BIN8: u8 = 0xc4;
const NIL: u8 = 0xc0;

/// What the stream has named so far (one per reading of a bundle).
#[derive(Default)]
pub(super) struct Names {
    devices: Vec<DeviceId>,
    numbers: HashMap<DeviceId, u64>,
    /// per device number, the last entry stated (seq, link)
    context: BTreeMap<u64, (u64, Hash)>,
    /// every entry stated, with its link
    links: HashMap<(u64, u64), Hash>,
}

impl Names {
    /// The device's number, naming it when it is new.
    fn number(&mut self, device: &DeviceId) -> (u64, bool) {
        if let Some(&n) = self.numbers.get(device) {
            return (n, false);
        }
        let n = self.devices.len() as u64;
        self.devices.push(*device);
        self.numbers.insert(*device, n);
        (n, true)
    }

    /// Writes a device: its number, or its id when it is new.
    pub fn put_device(&mut self, out: &mut Vec<u8>, device: &DeviceId) {
        match self.number(device) {
            (_, true) => put(out, &Fixed(*device)),
            (n, false) => put(out, &n),
        }
    }

    /// Reads a device written by `put_device`.
    pub fn read_device(&mut self, input: &mut &[u8]) -> Result<DeviceId> {
        if input.first() == Some(&BIN8) {
            let id = form::read::<Fixed<16>>(input, "device id")?.0;
            if self.numbers.contains_key(&id) {
                return Err(Error::new("names a device twice"));
            }
            self.number(&id);
            return Ok(id);
        }
        let n: u64 = form::read(input, "device number")?;
        self.devices
            .get(n as usize)
            .copied()
            .ok_or_else(|| Error::new(format!("names device {n}, which is not named before it")))
    }

    /// Writes the deps of an op of `own` (sorted by device id, as the op has them).
    pub fn put_deps(&mut self, out: &mut Vec<u8>, own: &DeviceId, deps: &[Dep]) {
        if !deps.windows(2).all(|w| w[0].0 < w[1].0) {
            put(out, &());
            put(out, deps);
            return;
        }
        let own = self.number(own).0;
        let wanted: HashMap<&DeviceId, (u64, Hash)> =
            deps.iter().map(|d| (&d.0, (d.1, d.2))).collect();
        let drops: Vec<u64> = (self.context.keys())
            .filter(|&&n| n != own && !wanted.contains_key(&self.devices[n as usize]))
            .copied()
            .collect();
        let changes: Vec<&Dep> = (deps.iter())
            .filter(|d| match self.numbers.get(&d.0) {
                Some(&n) => n == own || self.context.get(&n) != Some(&(d.1, d.2)),
                None => true,
            })
            .collect();
        put(out, &(drops.len() as u64));
        for n in &drops {
            put(out, n);
            self.context.remove(n);
        }
        put(out, &(changes.len() as u64));
        for d in changes {
            self.put_device(out, &d.0);
            let n = self.numbers[&d.0];
            put(out, &d.1);
            match self.links.get(&(n, d.1)) {
                Some(link) if *link == d.2 => put(out, &()),
                _ => put(out, &op::Bin(&d.2)),
            }
            self.context.insert(n, (d.1, d.2));
            self.links.insert((n, d.1), d.2);
        }
    }

    /// Reads the deps of an op of `own` written by `put_deps`.
    pub fn read_deps(&mut self, input: &mut &[u8], own: &DeviceId) -> Result<Vec<Dep>> {
        if input.first() == Some(&NIL) {
            form::read::<()>(input, "deps")?;
            return form::read(input, "deps");
        }
        let own = self.number(own).0;
        let drops: u64 = form::read(input, "deps")?;
        for _ in 0..drops {
            let n: u64 = form::read(input, "deps")?;
            if n == own || self.context.remove(&n).is_none() {
                return Err(Error::new(format!(
                    "deps leave out device {n}, not inherited"
                )));
            }
        }
        let mut deps: BTreeMap<DeviceId, (u64, Hash)> = (self.context.iter())
            .filter(|(&n, _)| n != own)
            .map(|(&n, &entry)| (self.devices[n as usize], entry))
            .collect();
        let changes: u64 = form::read(input, "deps")?;
        for _ in 0..changes {
            let device = self.read_device(input)?;
            let n = self.numbers[&device];
            let seq: u64 = form::read(input, "deps")?;
            let link = if input.first() == Some(&NIL) {
                form::read::<()>(input, "deps")?;
                *self.links.get(&(n, seq)).ok_or_else(|| {
                    Error::new(format!("deps name op {seq} of device {n} without its link"))
                })?
            } else {
                form::read::<Fixed<16>>(input, "deps")?.0
            };
            deps.insert(device, (seq, link));
            self.context.insert(n, (seq, link));
            self.links.insert((n, seq), link);
        }
        Ok(deps.into_iter().map(|(d, (s, h))| Dep(d, s, h)).collect())
    }
}
