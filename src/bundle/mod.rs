//! Bundle files: the only thing that travels between devices.
//!
//! - `write.rs`: `Writer`, which streams ops into a new bundle file and puts it in place whole.
//! - `read.rs`: `Reader`, which checks a bundle file whole and gives its ops back one by one.
//! - `out.rs`: `sync_bundle_out`, which chooses the ops a peer lacks and writes them.
//! - `folder.rs`: a folder shared by many devices: bundles' names there, `sync_folder_prune`.
//! - `inspect.rs`: `sync_bundle_info`, what a bundle holds, read without importing it.
//! - `names.rs`: format 5's short names: devices by number, deps stated against the deps before.
//!
//! Invariant: a bundle is written to a temporary file beside its target and renamed into place
//! only when complete and synced, so the target path never holds a half-written bundle; and a
//! bundle is read only through a read-only connection that checks its whole schema before
//! reading a row, runs none of its SQL, and checks every hash before anything is applied.
//!
//! # Format (version 5): one SQLite database with exactly two tables and nothing else
//!
//! ```text
//! manifest(magic TEXT, format INTEGER, bundle_id BLOB, source BLOB, clock BLOB,
//!          op_count INTEGER, ops_hash BLOB, declared BLOB, writer TEXT, stable BLOB,
//!          knows BLOB, base BLOB, forgotten BLOB)   one row
//!   magic     'sqlite-sync bundle'
//!   format    5; a reader also reads 4 (the same but for how the stream names devices and
//!             deps, below) and 3 (format 4 written by builds whose forms carry no declared
//!             types: form.rs), and refuses any other
//!   bundle_id 16 random bytes
//!   source    the writer's device id (16 bytes)
//!   clock     msgpack [[device id: bin(16), seq, link: bin(16)], …]: the writer's whole
//!             applied clock, each entry with the link (op.rs) of the op it names
//!   op_count  ops in the bundle
//!   ops_hash  SHA-256 over the concatenated SHA-256 of each op's canonical encoding (op.rs),
//!             in bundle order; the reader recomputes every op's hash from what it decodes
//!   declared  (format 4) msgpack [[device id: bin(16), table: str, version: int,
//!             [[key column: str, …], [[column: str, declared type: str], …]]], …]: how each
//!             device declares each table now, as the writer knows it (log/declared.rs)
//!   writer    the release that wrote it ('0.1.0'; absent in bundles of earlier builds): a
//!             reader that does not know the format names it as the release to upgrade to
//!   stable    (from 0.2.0, also in the format 4 bundles it writes) msgpack [[device id:
//!             bin(16), seq, link: bin(16)], …]: what every device its writer knew has
//!             (log/stable.rs)
//!   knows     (from 0.2.0) msgpack [device id: bin(16), …]: the devices its writer knew that
//!             `clock` does not name
//!   base      (absent, or empty, unless its writer removed ops by compaction) msgpack
//!             [[device id: bin(16), history id: bin(16), from, upto, link: bin(16)], …]: per
//!             history (the device's id for its first one: log/clock.rs `Devices`) whose ops
//!             at or below `upto` its writer may lack, the link of op `upto`, and `from`,
//!             the seq after which the bundle carries every op of it its writer holds
//!             (apply/removed.rs)
//!   forgotten msgpack [device id: bin(16), …]: the devices its writer forgot (sync_forget:
//!             log/forgotten.rs), which its reader forgets too
//!   strays    (absent in bundles of builds before it) msgpack [[device id: bin(16), seq,
//!             link: bin(16), prev: bin(16)], …]: ops of another history than the one its
//!             writer holds at their seq, which its ops' deps as written name, each with the
//!             link of the op before it (log/strays.rs)
//! chunks(n INTEGER PRIMARY KEY, ops INTEGER, body BLOB)   n = 1, 2, …
//!   ops       ops in this chunk
//!   body      its ops, one after the other, compactly (below)
//! ```
//!
//! The chunks' bodies, in order, are one stream. Each op in it is, in msgpack items:
//!
//! ```text
//! head      uint, a set of flags:
//!             1  a device follows (names.rs: its number, or its id the first time);
//!                otherwise the previous op's device
//!             2  a seq follows (uint); otherwise the previous op's seq + 1 (always set when
//!                the device changes)
//!             4  deps follow, stated against the deps before them (names.rs); otherwise
//!                none
//!             8  a new form follows (form.rs), numbered from 0 in order of appearance
//!            16  the number of an earlier form follows (uint)
//!                (neither 8 nor 16: the previous op's form)
//!            32  the op's prev follows (bin 16); otherwise, for an op above seq 1, the op
//!                before it in the stream must be op seq - 1 of its device, and its link is the
//!                prev (a writer states the prev there too when it follows another history of
//!                the device)
//! lamport   int: the op's Lamport time minus the previous op's (minus 0 for the first op)
//! values    the op's values in its form (form.rs)
//! ```
//!
//! Format 4 spells a device as its id (bin 16) and deps as the op's encoding has them
//! (`[[device id: bin(16), seq, link: bin(16)], …]`, op.rs).
//!
//! A bundle may be replaced (written over) only by a bundle from the same device: writing to a
//! path that holds anything else is refused.

pub mod folder;
pub mod inspect;
mod names;
pub mod out;
mod read;
mod write;

pub use read::{open_argument, Reader};
pub use write::{Peers, Writer, Written};

use sha2::{Digest, Sha256};

use crate::form::Head;
use crate::op::{Dep, DeviceId, Hash};
use crate::value::Value;

pub const MAGIC: &str = "sqlite-sync bundle";
pub const FORMAT: i64 = 5;

/// A chunk is written once its body reaches this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;

const HAS_DEVICE: u8 = 1;
const HAS_SEQ: u8 = 2;
const HAS_DEPS: u8 = 4;
const NEW_FORM: u8 = 8;
const FORM_NUMBER: u8 = 16;
const HAS_PREV: u8 = 32;

/// What a bundle's manifest says.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub format: i64,
    pub bundle_id: [u8; 16],
    pub source: DeviceId,
    pub clock: Vec<(DeviceId, u64, Hash)>,
    pub op_count: u64,
    pub ops_hash: [u8; 32],
    /// What its writer knew of each device's declarations (log/declared.rs; none in format 3)
    pub declared: Vec<crate::log::declared::Said>,
    /// Its writer's stable clock, and the devices it knew that `clock` does not name
    /// (log/stable.rs; none in bundles of builds before 0.2.0)
    pub stable: Vec<(DeviceId, u64, Hash)>,
    pub knows: Vec<DeviceId>,
    /// Per history whose ops its writer removed by compaction, what this bundle does not carry
    /// of them (compact/remove.rs; a reader takes them as applied: apply/removed.rs)
    pub base: Vec<Base>,
    /// The devices its writer forgot (log/forgotten.rs; none in bundles of builds before it)
    pub forgotten: Vec<DeviceId>,
    /// Where the bundle carries an op after ops its base says were removed: the context of
    /// the op before it (what it had seen), which the op's own deps state only as a change
    /// from it (none in bundles of builds before it)
    pub gaps: Vec<Gap>,
    /// Per history its base names that forks where the bundle's ops of it start: the link of
    /// the op it forks after, which tells a reader holding several histories there which one
    /// it forks from (none in bundles of builds before it)
    pub forks: Vec<(DeviceId, Hash)>,
    /// Per device its writer knew (a few: log/stable.rs `relayed`), what it has as the writer
    /// knew it (none in bundles of builds before it)
    pub relayed: crate::log::stable::Relayed,
    /// Up to which seq a peer confirmed its writer's own ops (log/stable.rs `confirmed`):
    /// beyond it they may be another history of ops its peers hold (a backup put back, a
    /// copy), and a reader its writer knew nothing of takes them as stable no further
    /// (log/stable.rs `said_confirmed`; none in bundles of builds before it)
    pub confirmed: Option<u64>,
    /// The device it was written for, where it was (none in bundles of builds before it)
    pub addressee: Option<DeviceId>,
    /// The ops of another history than the one its writer holds at their seq (a copy's, a
    /// backup's writes) that its ops' deps as written name, with the ones below them their
    /// links reach (log/strays.rs; none in bundles of builds before it)
    pub strays: Vec<crate::log::strays::Stray>,
}

/// The context of op `seq` of history `history`, removed by compaction, that a carried op
/// follows: per device history it had seen (device id, seq, link), as `Contexts::points_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub history: DeviceId,
    pub seq: u64,
    pub points: Vec<(DeviceId, u64, Hash)>,
}

/// An entry of a bundle's base: history `history` of device `device` (the same id for its
/// first history) may lack ops at or below `upto` (whose link is `link`) where its writer
/// removed them; the bundle carries the rest of its ops after `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Base {
    pub device: DeviceId,
    pub history: DeviceId,
    pub from: u64,
    pub upto: u64,
    pub link: Hash,
}

/// Appends one msgpack item.
fn put<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, item: &T) {
    rmp_serde::encode::write(out, item).expect("a bundle item always encodes");
}

/// One op as a bundle carries it: its own fields, and its values in its form (form.rs).
pub struct Packed {
    pub device: DeviceId,
    pub seq: u64,
    pub prev: Prev,
    pub lamport: u64,
    pub deps: Vec<Dep>,
    pub values: Vec<Value>,
    /// Its hash, on the first reading of a bundle (`Reader::each_op`)
    pub hash: Option<Hash>,
}

impl Packed {
    /// Its fields beside its form and values, with `prev`.
    pub fn head<'a>(&'a self, prev: Option<&'a Hash>) -> Head<'a> {
        Head {
            device: &self.device,
            seq: self.seq,
            prev,
            lamport: self.lamport,
            deps: &self.deps,
        }
    }
}

/// An op's prev as the stream gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Prev {
    /// op 1 of its device: none
    First,
    /// stated: the op starts a run of its device's ops in the stream
    Stated(Hash),
    /// the hash of the op before it in the stream, op seq - 1 of its device
    Follows,
}

/// What the stream's encoding of the next op refers back to, for the writer and the reader.
#[derive(Default)]
struct Stream {
    device: Option<DeviceId>,
    seq: u64,
    lamport: u64,
    form: Option<usize>,
    /// the previous op's hash, where known
    hash: Option<Hash>,
    /// devices and deps named so far (format 5)
    names: names::Names,
}

impl Stream {
    /// Whether op `seq` of `device` is the one after the previous op of the stream.
    fn follows(&self, device: &DeviceId, seq: u64) -> bool {
        self.device.as_ref() == Some(device) && seq == self.seq.wrapping_add(1)
    }
}

/// A device id or a hash as msgpack bin.
#[derive(serde::Serialize, serde::Deserialize)]
struct Fixed<const N: usize>(#[serde(with = "crate::op::fixed_bytes")] [u8; N]);

/// Feeds what is written to it into a SHA-256.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
