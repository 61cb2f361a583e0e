//! `sync_bundle_out(peer, path)`: packs every op the peer is not known to have into a bundle
//! file; `sync_bundle_out(peer)` returns the same bundle as a BLOB.
//!
//! Invariant: an op is left out only when a bundle *from* the peer said the peer had it, so a
//! bundle lost on the way loses nothing (the next one carries the same ops again). Ops are read
//! by (device, seq) ranges through indexes and streamed into the file, so the cost follows the
//! ops written, not the size of the log, and memory does not grow with them.

use crate::hashed::HashMap;

use crate::bundle::{Base, Gap, Writer, Written};
use crate::db::{Conn, Error, Result};
use crate::identity::Fork;
use crate::log::chain::{Held, History};
use crate::log::clock;
use crate::op::{DeviceId, Hash};
use crate::schema::{DeviceIdx, SELF};
use crate::value::{hex, JsonObject, Value};

/// Whom a bundle is for.
pub enum For {
    /// one peer (None: a device not known yet, which gets every op)
    Peer(Option<DeviceId>),
    /// every device a bundle was imported from (a shared folder): what the least informed of
    /// them lacks
    EveryPeer,
}

/// Where a bundle goes.
pub enum To<'a> {
    File(&'a str),
    Blob,
    /// a new file in this folder, named `<device id>-<bundle id>.bundle` (bundle/folder.rs);
    /// none when it would hold no op and this device's clock is in one of its bundles there
    Folder(&'a str),
}

pub fn sync_bundle_out(
    conn: &Conn,
    args: &[Value],
    fork: Fork,
    follow: crate::capture::Follow,
) -> Result<Value> {
    crate::schema::require_initialized(conn)?;
    let peer: Option<DeviceId> =
        match &args[0] {
            Value::Null => None,
            Value::Text(s) => Some(parse_device(s).ok_or_else(|| {
                Error::new(format!("peer {s:?} is not a device id (32 hex digits)"))
            })?),
            other => {
                return Err(Error::new(format!(
                    "expects the peer's device id as TEXT or NULL, got {}",
                    other.type_name()
                )))
            }
        };
    let to = match args.get(1) {
        None => To::Blob,
        Some(path) => To::File(
            path.as_text()
                .ok_or_else(|| Error::new("expects the bundle's path as TEXT"))?,
        ),
    };
    export(conn, fork, follow, For::Peer(peer), to)
}

/// Writes a bundle of what `whom` lacks `to` a file, a BLOB or a folder, once the caller
/// checked its arguments.
pub fn export(
    conn: &Conn,
    fork: Fork,
    follow: crate::capture::Follow,
    whom: For,
    to: To,
) -> Result<Value> {
    crate::schema::require_initialized(conn)?;
    // (without BEGIN, a write transaction is the statement this call is part of: INSERT INTO
    // outbox SELECT sync_bundle_out(…); the bundle commits or rolls back with what it wrote)
    if conn.in_write_transaction() && !conn.is_autocommit() {
        // its ops may still roll back, and so may ops and clocks an import in it brought: a
        // peer must never hold an op (or believe this device holds one) that does not exist
        return Err(Error::new(
            "this connection holds a write transaction (it has written, began with BEGIN \
             IMMEDIATE, or this statement writes, as INSERT … SELECT sync_bundle_out(…) does \
             inside BEGIN): ops that are not committed must not leave the device; COMMIT (or \
             ROLLBACK) first, then export (where a driver begins a transaction before every \
             INSERT, as Python's sqlite3 does by default, SELECT the bundle, then insert it)",
        ));
    }
    crate::identity::check_file(conn, fork)?;
    if conn.is_autocommit() {
        // columns added since the last call are captured first (once the arguments are
        // known good), and committed before any op leaves (inside the caller's read
        // transaction they wait for the next call)
        follow(conn, crate::capture::Refuse::All)?;
    }
    // one read transaction: the clock in the manifest and the ops agree (an export writes
    // nothing: the hashes of this device's ops that the next export starts from are kept when
    // the peer's bundle says it has them, apply/)
    conn.snapshot("sync_bundle_out", || write(conn, whom, to))
}

/// What every device a bundle came from is known to have: per device, the least of what they
/// said (absent when one of them said nothing of it).
fn known_by_every_peer(
    conn: &Conn,
    devices: &crate::log::clock::Devices,
) -> Result<HashMap<DeviceIdx, (u64, Option<Hash>)>> {
    let mut least: Option<HashMap<DeviceIdx, (u64, Option<Hash>)>> = None;
    for peer in devices.indexes().filter(|&d| d != SELF) {
        let Some(said) = clock::heard_from(conn, peer)? else {
            continue;
        };
        least = Some(match least {
            None => said,
            Some(mut least) => {
                least.retain(|device, entry| match said.get(device) {
                    Some(other) if other.0 < entry.0 => {
                        *entry = *other;
                        true
                    }
                    Some(_) => true,
                    None => false,
                });
                least
            }
        });
    }
    Ok(least.unwrap_or_default())
}

/// The oldest bundle format that the devices `whom` names wrote last (`FORMAT` for a device not
/// heard from): a bundle for them is written in a format they read.
fn reader_format(conn: &Conn, whom: For, devices: &crate::log::clock::Devices) -> Result<i64> {
    let wrote = |idx: DeviceIdx| -> Result<i64> {
        Ok(
            match crate::schema::state(conn, &format!("format {}", idx.0))? {
                0 => super::FORMAT,
                format => format as i64,
            },
        )
    };
    match whom {
        For::Peer(peer) => match peer.and_then(|p| devices.idx(&p)) {
            Some(idx) => wrote(idx),
            None => Ok(super::FORMAT),
        },
        For::EveryPeer => (devices.indexes().filter(|&d| d != SELF))
            .try_fold(super::FORMAT, |least, d| Ok(least.min(wrote(d)?))),
    }
}

/// Where the bundle carries history `device` from its start (`from`, where it forked), and its
/// first op follows another op than its parent's there (apply/behind.rs: a compaction point
/// decided against that op): the link its first op follows.
fn own_link(
    history: &History,
    devices: &clock::Devices,
    device: DeviceIdx,
    from: u64,
) -> Result<Option<Hash>> {
    let Some((parent, base)) = devices.fork(device) else {
        return Ok(None);
    };
    if base != from || base == 0 {
        return Ok(None);
    }
    let own = history.hash_at(device, base)?;
    // (its parent's op there not held here: not the one it follows, whatever it is)
    let parents = match history.chain_held(parent, base)? {
        true => history.hash_at(parent, base)?,
        false => None,
    };
    Ok(own.filter(|&own| Some(own) != parents))
}

/// Writes the bundle for `whom` `to` a file, a folder or a BLOB.
fn write(conn: &Conn, whom: For, to: To) -> Result<Value> {
    let held = Held::load(conn)?;
    let devices = &held.devices;
    let (addressee, to_id) = match &whom {
        For::Peer(peer) => (peer.and_then(|p| devices.idx(&p)), *peer),
        For::EveryPeer => (None, None),
    };
    let known = match (&whom, addressee) {
        (For::Peer(_), Some(idx)) => clock::known_by(conn, idx)?,
        (For::Peer(_), None) => HashMap::default(),
        (For::EveryPeer, _) => known_by_every_peer(conn, devices)?,
    };
    let applied = clock::applied(conn)?;
    let history = held.history(conn, false);
    let me = devices.me();
    let bundle_id = *uuid::Uuid::new_v4().as_bytes();
    let path = match to {
        To::File(path) => Some(path.to_string()),
        To::Folder(dir) => Some(super::folder::new_path(dir, &me, &bundle_id)),
        To::Blob => None,
    };
    let at = |e: Error| match &path {
        Some(path) => Error::new(format!("bundle {path:?}: {e}")),
        None => e,
    };
    let mut writer = match &path {
        Some(path) => Writer::create(path, || crate::identity::ids(conn, &me)),
        None => Writer::in_memory(),
    }
    .map_err(at)?;
    writer.for_format(reader_format(conn, whom, devices)?);
    let mut heads: HashMap<DeviceIdx, (u64, Hash)> = HashMap::default();
    // per device, the first and the last seq this bundle carries
    let mut needs: Vec<(DeviceId, u64, u64)> = Vec::new();
    // per device whose ops the peer lacks down where compaction removed some here: up to where
    // the ops this bundle does not carry were removed (the peer takes them as applied)
    let mut base: Vec<Base> = Vec::new();
    // the ops removed right before an op it carries, whose contexts it states
    let mut gaps: Vec<(DeviceIdx, u64)> = Vec::new();
    // the links of the ops the histories its base names fork after, where their entry starts
    let mut forks: Vec<(DeviceId, Hash)> = Vec::new();
    // the strays its ops' deps name (another history's ops: log/strays.rs)
    let known_strays = crate::log::strays::Strays::load(conn)?;
    let mut strays = crate::hashed::HashSet::default();
    for device in devices.indexes() {
        let held = match device {
            SELF => applied.get(&SELF).copied().unwrap_or(0),
            _ => i64::MAX as u64, // every op stored, applied or not, up to the first one missing
        };
        let has = applied.get(&device).copied().unwrap_or(0);
        let (mut from, mut prev) = start(&history, device, known.get(&device), has)?;
        if let Some((parent, base)) = devices.fork(device) {
            if base > from {
                // a second history's own ops start after its fork
                (from, prev) = (base, None);
            }
            // the op it forked after, removed here: its context, which the context of the
            // history's ops starts from (a peer that lacks that op learns it from here)
            if from == base && base > 0 && history.removed(parent, base)? {
                gaps.push((parent, base));
            }
        }
        let mut next = from + 1;
        let mut last = None;
        let mut first = None;
        let removed = devices.removed_upto(device);
        if from < removed {
            let link = (history.hash_at(device, removed)?)
                .ok_or_else(|| Error::new("compaction left no link where it removed ops"))?;
            base.push(Base {
                device: devices.wire_id(device),
                history: devices.id(device),
                from,
                upto: removed,
                link,
            });
            if let Some((parent, _)) = devices.fork(device).filter(|f| f.1 == from) {
                if let Some(link) = history.hash_at(parent, from)? {
                    forks.push((devices.id(device), link));
                }
            }
        } else if let Some(own) = own_link(&history, devices, device, from)? {
            // a history a compaction point forked off, whose first op follows an op not held
            // here: named, so that a peer that lacks it places that op there (apply/
            // histories.rs `named_branch`), though nothing of it was removed
            base.push(Base {
                device: devices.wire_id(device),
                history: devices.id(device),
                from,
                upto: from,
                link: own,
            });
        }
        history.each(device, from, held, |op| {
            if op.seq == from + 1 && from > 0 && prev.is_none() {
                // op `from` not here (an error): nothing above it goes
                prev = history.hash_at(device, from).unwrap_or_default();
            }
            if op.seq > next && next > 0 && op.seq - 1 <= removed {
                // the ops between were removed by compaction (the base says so): the one
                // before this op has its hash kept, as the last of its run
                prev = history.hash_at(device, op.seq - 1)?;
                next = op.seq;
                gaps.push((device, op.seq - 1));
            }
            if op.seq != next || from > 0 && prev.is_none() {
                next = 0; // the ops above a missing one are not relayed
                return Ok(());
            }
            next += 1;
            let seq = op.seq;
            first = first.or(Some((op.device, seq)));
            if !known_strays.is_empty() {
                for dep in &op.deps {
                    known_strays.named_by(dep, &mut strays);
                }
            }
            let hash = writer.add(op, prev)?;
            prev = Some(hash);
            last = Some((seq, hash));
            Ok(())
        })?;
        if let Some(head) = last {
            heads.insert(device, head);
        }
        if let (Some((id, from)), Some((to, _))) = (first, last) {
            needs.push((id, from, to));
        }
    }

    let mut clock = Vec::with_capacity(applied.len());
    let mut links: HashMap<DeviceIdx, (u64, Hash)> = HashMap::default();
    for (&device, &seq) in &applied {
        let hash = match heads.get(&device) {
            Some(&(at, hash)) if at == seq => hash,
            _ => history
                .hash_at(device, seq)?
                .ok_or_else(|| Error::new("a clock entry names no op"))?,
        };
        clock.push((devices.wire_id(device), seq, hash));
        links.insert(device, (seq, hash));
    }
    held.contexts.check()?;
    held.local.check()?;
    let ops = writer.count();
    let confirmed = crate::log::stable::confirmed(conn, &me)?;
    if let To::Folder(dir) = &to {
        let says = super::folder::Says {
            clock: &clock,
            forgotten: devices.forgotten_ids(),
            confirmed,
        };
        if super::folder::covered(dir, &me, says, &needs) {
            // a bundle of this device there holds these ops and says what it has now
            drop(writer);
            let mut json = JsonObject::new();
            json.raw("bundle_id", "null")
                .field("ops", &Value::Integer(0))
                .raw("path", "null")
                .field("bytes", &Value::Integer(0));
            return Ok(Value::Text(json.finish()));
        }
    }
    let declared = crate::log::declared::Declarations::load(conn)?.encode(devices);
    let link = |d: DeviceIdx, s: u64| links.get(&d).filter(|e| e.0 == s).map(|e| e.1);
    let stable = crate::log::stable::now(conn, &history, devices, link)?;
    let (stable, knows) = crate::log::stable::for_bundle(&stable, devices, &clock);
    let relayed = crate::log::stable::relayed(conn, &history, devices, addressee)?;
    gaps.sort();
    gaps.dedup();
    let gaps = (gaps.into_iter())
        .map(|(device, seq)| Gap {
            history: devices.id(device),
            seq,
            points: (held.contexts.points_at(device, seq).into_iter())
                .map(|(d, s, h)| (devices.wire_id(d), s, h))
                .collect(),
        })
        .collect();
    let peers = super::write::Peers {
        stable,
        knows,
        base,
        forgotten: devices.forgotten_ids(),
        gaps,
        forks,
        relayed,
        confirmed: Some(confirmed),
        addressee: to_id,
        strays: {
            let mut strays: Vec<_> = strays.into_iter().collect();
            strays.sort();
            strays
        },
    };
    let bytes = match writer
        .finish(bundle_id, &me, &clock, declared, peers)
        .map_err(at)?
    {
        Written::File(bytes) => bytes,
        Written::Bytes(bytes) => {
            let limit = conn.length_limit();
            if bytes.len() > limit {
                return Err(Error::new(format!(
                    "the bundle is {} bytes, more than this connection's longest BLOB \
                     (SQLITE_LIMIT_LENGTH, {limit} bytes): export it to a file with \
                     sync_bundle_out(peer, path) instead",
                    bytes.len()
                )));
            }
            return Ok(Value::Blob(bytes));
        }
    };
    let mut json = JsonObject::new();
    json.field("bundle_id", &Value::Text(hex(&bundle_id)))
        .field("ops", &Value::Integer(ops as i64))
        .field("path", &Value::Text(path.unwrap_or_default()))
        .field("bytes", &Value::Integer(bytes as i64));
    Ok(Value::Text(json.finish()))
}

/// The seq after which the ops of `device` go to a peer known to have `known` of it, when this
/// device has applied its ops up to `has`: what the peer has, unless the op it has there is
/// not the one held here (two histories under one id: the peer then gets the whole history
/// held here, and tells the two apart as it imports them). With it, the link of the op at that
/// seq when it was found the same.
fn start(
    history: &History,
    device: DeviceIdx,
    known: Option<&(u64, Option<Hash>)>,
    has: u64,
) -> Result<(u64, Option<Hash>)> {
    let Some(&(seq, Some(hash))) = known else {
        return Ok((known.map_or(0, |k| k.0), None));
    };
    if seq > has {
        return Ok((seq, None));
    }
    if history.unhashable(device, seq)? {
        // removed by compaction here: it cannot be compared, so the peer gets every op held
        // here, and a base from the start that tells it which ops were removed (it removes
        // those it holds: apply/removed.rs)
        return Ok((0, None));
    }
    Ok(match history.hash_at(device, seq)? == Some(hash) {
        true => (seq, Some(hash)),
        false => (0, None),
    })
}

fn parse_device(s: &str) -> Option<DeviceId> {
    crate::op::device_id(&crate::value::unhex(s)?)
}
