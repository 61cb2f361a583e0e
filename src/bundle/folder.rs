//! A folder shared by many devices (Syncthing, a network drive, mounted object storage) as a
//! relay: the names of the bundles written into it, the files read from it, and
//! `sync_folder_prune`, which removes the bundles every device has.
//!
//! Invariants: a device writes only files named `<its device id>-<bundle id>.bundle` (so no two
//! devices, and no two exports, ever write the same name; a file appears whole, by rename:
//! write.rs); a folder import reads only files named `*.bundle`, so a copy still arriving under a
//! sync tool's temporary name is never read, and one arriving under its own name fails its
//! checks and is skipped, never half applied; a bundle is removed only when this device and every
//! device a bundle was imported from are known to have every op it holds, and never the newest of
//! its writer.

use std::path::{Path, PathBuf};

use crate::db::{Conn, Error, Result};
use crate::log::clock::{self, Devices};
use crate::op::{DeviceId, Hash};
use crate::schema::SELF;
use crate::value::{hex, JsonObject, Value};

use super::Reader;

const SUFFIX: &str = ".bundle";

/// The path of a new bundle of `device` in folder `dir`.
pub fn new_path(dir: &str, device: &DeviceId, bundle_id: &[u8; 16]) -> String {
    let name = format!("{}-{}{SUFFIX}", hex(device), hex(bundle_id));
    Path::new(dir).join(name).to_string_lossy().into_owned()
}

/// The folder an SQL function's first argument names, which must exist.
pub fn folder_arg(args: &[Value]) -> Result<&str> {
    let dir = args[0]
        .as_text()
        .ok_or_else(|| Error::new("expects the folder's path as TEXT"))?;
    if !Path::new(dir).is_dir() {
        return Err(Error::new(format!(
            "{dir:?} is not a folder (create it, or mount the shared folder, first)"
        )));
    }
    Ok(dir)
}

/// The bundle files in `dir` (named `*.bundle`, not hidden), oldest first (by modification
/// time, then name).
pub fn bundle_files(dir: &str) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::new(format!("cannot read the folder {dir:?}: {e}")))?;
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(SUFFIX) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() {
            files.push((meta.modified().ok(), name, entry.path()));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, _, path)| path).collect())
}

/// Whether `name` is the name of a bundle `device` wrote into a folder.
pub fn written_by(name: &str, device: &DeviceId) -> bool {
    name.strip_prefix(&hex(device))
        .is_some_and(|rest| rest.starts_with('-') && rest.ends_with(SUFFIX))
}

/// What a new bundle of a device would say beside its ops: its clock, the devices it forgot,
/// how far a peer confirmed its own ops.
pub struct Says<'a> {
    pub clock: &'a [(DeviceId, u64, Hash)],
    pub forgotten: Vec<DeviceId>,
    pub confirmed: u64,
}

/// Whether a bundle of `device` in `dir` says already what a new one would (`says`) and holds
/// the ops `needs` (per device, the first and the last seq a new bundle would carry): then a
/// new bundle would tell the other devices nothing new.
pub fn covered(dir: &str, device: &DeviceId, says: Says, needs: &[(DeviceId, u64, u64)]) -> bool {
    let Says {
        clock,
        forgotten,
        confirmed,
    } = says;
    let Ok(files) = bundle_files(dir) else {
        return false;
    };
    let mut want: Vec<_> = clock.iter().map(|(d, s, _)| (*d, *s)).collect();
    want.sort();
    files.iter().rev().any(|path| {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !written_by(&name, device) {
            return false;
        }
        let Some(Ok(mut reader)) = path.to_str().map(Reader::open) else {
            return false;
        };
        let mut has: Vec<_> = (reader.manifest.clock.iter())
            .map(|(d, s, _)| (*d, *s))
            .collect();
        has.sort();
        if has != want
            || reader.manifest.forgotten != forgotten
            || reader.manifest.confirmed.is_some_and(|c| c < confirmed)
        {
            return false;
        }
        if needs.is_empty() {
            return true;
        }
        // the seqs it holds of each device needed (its ops come in runs by device)
        let mut holds: Vec<(DeviceId, u64, u64)> = Vec::new();
        let read = reader.each_op(|op, _, _| {
            match holds.iter_mut().find(|h| h.0 == op.device) {
                Some(h) => (h.1, h.2) = (h.1.min(op.seq), h.2.max(op.seq)),
                None => holds.push((op.device, op.seq, op.seq)),
            }
            Ok(())
        });
        read.is_ok()
            && needs.iter().all(|(d, from, to)| {
                holds
                    .iter()
                    .any(|h| h.0 == *d && h.1 <= *from && h.2 >= *to)
            })
    })
}

/// `sync_folder_prune(dir)`: removes the bundles in `dir` whose every op this device and every
/// device it imported a bundle from are known to have (by the clock in the bundle: it holds no op
/// above it), but the newest bundle of each device (it tells what that device has). Returns `{"removed": n, "kept": n, "unreadable": n}`; a file that is not a
/// readable bundle (a copy still arriving) is left alone.
pub fn sync_folder_prune(conn: &Conn, args: &[Value]) -> Result<Value> {
    let dir = folder_arg(args)?;
    crate::schema::require_initialized(conn)?;
    let files = bundle_files(dir)?;
    let devices = Devices::load(conn)?;
    let mut everyone = vec![clock::applied(conn)?];
    // (a forgotten device's word no longer counts: log/forgotten.rs)
    for peer in (devices.indexes()).filter(|&d| d != SELF && !devices.is_forgotten(d)) {
        if let Some(said) = clock::heard_from(conn, peer)? {
            everyone.push(said.into_iter().map(|(d, (s, _))| (d, s)).collect());
        }
    }
    let (mut removed, mut kept, mut unreadable) = (0, 0, 0);
    let mut readable = Vec::new();
    for path in files {
        match path.to_str().map(Reader::open) {
            Some(Ok(reader)) => readable.push((path, reader.manifest)),
            _ => unreadable += 1,
        }
    }
    for (i, (path, manifest)) in readable.iter().enumerate() {
        // the newest bundle of each device stays: it tells the others what that device has
        let newest = !readable[i + 1..]
            .iter()
            .any(|(_, m)| m.source == manifest.source);
        let had_by_all = manifest.clock.iter().all(|(id, seq, _)| {
            let idx = devices.idx(id);
            (everyone.iter()).all(|has| idx.and_then(|i| has.get(&i)).is_some_and(|h| h >= seq))
        });
        if !newest && had_by_all && std::fs::remove_file(path).is_ok() {
            removed += 1;
        } else {
            kept += 1;
        }
    }
    let mut json = JsonObject::new();
    json.field("removed", &Value::Integer(removed))
        .field("kept", &Value::Integer(kept))
        .field("unreadable", &Value::Integer(unreadable));
    Ok(Value::Text(json.finish()))
}
