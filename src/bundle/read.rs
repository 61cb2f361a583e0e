//! Reading a bundle: through a read-only connection that checks the file's whole schema before
//! reading a row, runs none of its SQL, and checks every op's hash against the manifest before
//! anything is applied.

use sha2::{Digest, Sha256};
use std::path::Path;

use crate::db::{Error, OpenMode, OwnedConn, Result};
use crate::form::{self, Form};
use crate::log::chain;
use crate::op::{self, Hash};
use crate::value::Value;

use super::{
    Base, Fixed, Gap, HashWriter, Manifest, Packed, Prev, Stream, FORMAT, FORM_NUMBER, HAS_DEPS,
    HAS_DEVICE, HAS_PREV, HAS_SEQ, MAGIC, NEW_FORM,
};
use crate::op::Dep;

/// The highest Lamport time an op may have: far above any a device reaches by writing (one
/// more per op), far enough below the integer's end that every later op's time is above it.
/// (Where compaction removed ops, an op's causal past is not all held and its time can only be
/// checked from below: apply/delivery.rs `clock_fault`.)
const MAX_LAMPORT: i64 = 1 << 62;

/// An open, schema-checked bundle, read in one read transaction (so it cannot change between
/// reads through SQLite).
pub struct Reader {
    db: OwnedConn,
    pub manifest: Manifest,
    /// SHA-256 of each chunk's body, once every op has been checked against the manifest: later
    /// reads check these instead of hashing every op again.
    chunk_hashes: Option<Vec<[u8; 32]>>,
    /// From the first reading: the hashes of the last op of each run of a device's ops in the
    /// stream and of every op that makes a checkpoint (log/chain.rs), by the op's ordinal in the
    /// bundle (from 1), ascending
    pub marks: Vec<(u64, Hash)>,
}

/// The error of a bundle SQLite cannot read (cut short, damaged, not a database).
fn damaged(e: Error) -> Error {
    Error::new(format!(
        "not a readable bundle ({e}): cut short or damaged (a copy still arriving?): get it again"
    ))
}

/// Opens the bundle an SQL argument names: a path (TEXT) or the bundle itself (a BLOB). Returns
/// how errors name it (`bundle "a.bundle"`, `bundle (a BLOB of 12288 bytes)`) beside the reader;
/// errors name it already.
pub fn open_argument(arg: &Value) -> Result<(String, Reader)> {
    let (label, reader) = match arg {
        // (a bundle's bytes passed as TEXT: no path is that long, or holds a NUL)
        Value::Text(path)
            if (path.len() > 300 || path.contains('\0')) && !Path::new(path).exists() =>
        {
            return Err(Error::new(format!(
                "bundle \"{}…\" ({} characters): no such file. A TEXT argument is a file's \
                 path; pass the bundle itself as a BLOB (bytes in Python, a Buffer in Node; \
                 decode base64 text first)",
                path.chars()
                    .take(40)
                    .flat_map(char::escape_debug)
                    .collect::<String>(),
                path.chars().count()
            )))
        }
        Value::Text(path) => (format!("bundle {path:?}"), Reader::open(path)),
        Value::Blob(bytes) => (
            format!("bundle (a BLOB of {} bytes)", bytes.len()),
            Reader::from_bytes(bytes),
        ),
        other => {
            return Err(Error::new(format!(
                "expects the bundle's path as TEXT or the bundle itself as a BLOB, got {}",
                other.type_name()
            )))
        }
    };
    match reader {
        Ok(reader) => Ok((label, reader)),
        Err(e) => Err(e.about(&label)),
    }
}

impl Reader {
    /// Opens `path` read-only and checks its schema and manifest (not yet its ops).
    pub fn open(path: &str) -> Result<Reader> {
        let p = Path::new(path);
        if !p.exists() {
            return Err(Error::new(
                "no such file (a TEXT argument is a file's path; pass a bundle's bytes as a BLOB)",
            ));
        }
        if !p.is_file() {
            return Err(Error::new("not a file"));
        }
        Reader::checked(OwnedConn::open(path, OpenMode::ReadOnly)?)
    }

    /// Reads a bundle from its bytes (a BLOB) and checks its schema and manifest.
    pub fn from_bytes(bytes: &[u8]) -> Result<Reader> {
        Reader::checked(OwnedConn::from_bytes(bytes).map_err(damaged)?)
    }

    fn checked(db: OwnedConn) -> Result<Reader> {
        let conn = db.conn();
        let unreadable = damaged;
        conn.exec("PRAGMA trusted_schema = OFF", &[])
            .map_err(unreadable)?;
        conn.exec("PRAGMA query_only = ON", &[])
            .map_err(unreadable)?;
        conn.exec("BEGIN", &[]).map_err(unreadable)?;
        let mut schema = conn
            .prepare("SELECT type, name FROM sqlite_schema ORDER BY type, name")
            .map_err(unreadable)?;
        let mut objects = Vec::new();
        while let Some(row) = schema.step().map_err(unreadable)? {
            let t = row.column(0)?.as_text().unwrap_or_default().to_string();
            let n = row.column(1)?.as_text().unwrap_or_default().to_string();
            objects.push(format!("{t} {n}"));
        }
        drop(schema);
        if objects.is_empty() {
            return Err(Error::new(
                "not a sqlite-sync bundle: it is empty or holds no tables (cut short, or a copy \
                 still arriving? get it again)",
            ));
        }
        if objects.iter().any(|o| o == "table _sync_ops") {
            return Err(Error::new(
                "not a sqlite-sync bundle: it is a device's database (it holds sync metadata): \
                 export a bundle from it with sync_bundle_out(peer, path) and import that",
            ));
        }
        if objects != ["table chunks", "table manifest"] {
            // (a database imported by mistake has many: name a few)
            let shown = objects.len().min(4);
            let more = match objects.len() - shown {
                0 => String::new(),
                n => format!(", and {n} more"),
            };
            return Err(Error::new(format!(
                "not a sqlite-sync bundle: expected exactly the tables chunks and manifest, found [{}{more}]",
                objects[..shown].join(", ")
            )));
        }
        let manifest = read_manifest(conn)?;
        Ok(Reader {
            db,
            manifest,
            chunk_hashes: None,
            marks: Vec::new(),
        })
    }

    /// Decodes every op and checks the ops against the manifest, calling `f` with each op, the
    /// number of its form in the bundle and the form, in bundle order. Returns an error naming
    /// the op at fault. (The first call hashes every op; later ones compare whole chunks with
    /// what the first call read.)
    pub fn each_op(&mut self, mut f: impl FnMut(Packed, usize, &Form) -> Result<()>) -> Result<()> {
        let known = self.chunk_hashes.take();
        let mut chunk_hashes = Vec::new();
        let conn = self.db.conn();
        let mut stmt = conn.prepare("SELECT n, ops, body FROM chunks ORDER BY n")?;
        let mut hasher = Sha256::new();
        let format = self.manifest.format;
        let mut stream = Stream::default();
        let mut forms: Vec<Form> = Vec::new();
        let mut count = 0u64;
        let mut expected_chunk = 0i64;
        let mut marks = Vec::new();

        let too_many = || {
            Error::new(format!(
                "holds more ops than its manifest says ({})",
                self.manifest.op_count
            ))
        };
        while let Some(row) = stmt.step().map_err(damaged)? {
            expected_chunk += 1;
            let n = row.column_int(0);
            if n != expected_chunk {
                return Err(Error::new(format!(
                    "chunk {n} out of sequence (expected chunk {expected_chunk}): damaged, get it again"
                )));
            }
            let (Value::Integer(ops), Some(body)) = (row.column(1)?, row.column_blob(2)?) else {
                return Err(Error::new(format!("chunk {n}: damaged, get it again")));
            };
            if ops <= 0 || ops as u64 > self.manifest.op_count - count {
                return Err(too_many());
            }
            let chunk_hash = op::hash(body);
            match &known {
                Some(known) if known.get(n as usize - 1) != Some(&chunk_hash) => {
                    return Err(Error::new(format!("chunk {n} changed while being read")));
                }
                _ => chunk_hashes.push(chunk_hash),
            }
            let mut input = body;
            for _ in 0..ops {
                count += 1;
                let at = |e: Error| Error::new(format!("op {count}: {e}"));
                let was = (stream.device, stream.seq, stream.hash);
                let (mut op, number) =
                    next_op(&mut input, &mut stream, &mut forms, format).map_err(at)?;
                let form = &forms[number];
                if known.is_none() {
                    let prev = match op.prev {
                        Prev::First => None,
                        Prev::Stated(h) => Some(h),
                        Prev::Follows => was.2,
                    };
                    let mut op_hasher = HashWriter(Sha256::new());
                    form.write_canonical(&mut op_hasher, &op.head(prev.as_ref()), &op.values);
                    let full: [u8; 32] = op_hasher.0.finalize().into();
                    hasher.update(full);
                    let hash = op::link(&full);
                    stream.hash = Some(hash);
                    op.hash = Some(hash);
                    if let (Some(_), Some(hash)) = (was.0, was.2) {
                        if op.prev != Prev::Follows {
                            marks.push((count - 1, hash)); // it ended a run
                        }
                    }
                    if chain::is_milestone(op.seq) {
                        marks.push((count, hash));
                    }
                }
                let (seq, device) = (op.seq, op.device);
                f(op, number, form).map_err(|e| {
                    Error::new(format!(
                        "op {count} (seq {seq} of device {}): {e}",
                        &crate::value::hex(&device)[..8]
                    ))
                })?;
            }
            if !input.is_empty() {
                return Err(Error::new(format!(
                    "chunk {n}: holds more than its {ops} ops (damaged)"
                )));
            }
        }
        if count != self.manifest.op_count {
            return Err(Error::new(format!(
                "holds {count} ops but its manifest says {} (truncated?)",
                self.manifest.op_count
            )));
        }
        let ops_hash: [u8; 32] = hasher.finalize().into();
        if known.is_none() {
            if ops_hash != self.manifest.ops_hash {
                return Err(Error::new(
                    "manifest hash does not match its ops (corrupted or edited)",
                ));
            }
            if let Some(hash) = stream.hash {
                marks.push((count, hash));
            }
            self.marks = marks;
        }
        self.chunk_hashes = Some(chunk_hashes);
        Ok(())
    }
}

/// Decodes the next op of the stream (see the module comment).
fn next_op(
    input: &mut &[u8],
    stream: &mut Stream,
    forms: &mut Vec<Form>,
    format: i64,
) -> Result<(Packed, usize)> {
    // format 5 names devices by number and states deps against the deps before them (names.rs)
    let short = format >= 5;
    let head: u8 = form::read(input, "op head")?;
    if head & !(HAS_DEVICE | HAS_SEQ | HAS_DEPS | NEW_FORM | FORM_NUMBER | HAS_PREV) != 0
        || head & NEW_FORM != 0 && head & FORM_NUMBER != 0
        || head & HAS_DEVICE != 0 && head & HAS_SEQ == 0
    {
        return Err(Error::new(format!("bad op head {head}")));
    }
    let device = if head & HAS_DEVICE != 0 && short {
        stream.names.read_device(input)?
    } else if head & HAS_DEVICE != 0 {
        form::read::<Fixed<16>>(input, "device id")?.0
    } else {
        stream
            .device
            .ok_or_else(|| Error::new("no device id (first op)"))?
    };
    let seq = if head & HAS_SEQ != 0 {
        form::read(input, "seq")?
    } else {
        stream.seq + 1
    };
    if seq == 0 || seq > i64::MAX as u64 {
        return Err(Error::new("seq out of range"));
    }
    let prev = match (head & HAS_PREV != 0, stream.follows(&device, seq)) {
        (true, _) if seq > 1 => Prev::Stated(form::read::<Fixed<16>>(input, "prev")?.0),
        (false, false) if seq == 1 => Prev::First,
        (false, true) => Prev::Follows,
        _ => {
            return Err(Error::new(format!(
                "op {seq}: its prev is stated for op 1, or missing"
            )))
        }
    };
    let deps: Vec<Dep> = if head & HAS_DEPS != 0 && short {
        stream.names.read_deps(input, &device)?
    } else if head & HAS_DEPS != 0 {
        form::read(input, "deps")?
    } else {
        Vec::new()
    };
    let number = if head & NEW_FORM != 0 {
        let form: Form = form::read(input, "form")?;
        form.check()?;
        forms.push(form);
        forms.len() - 1
    } else if head & FORM_NUMBER != 0 {
        let n: u64 = form::read(input, "form number")?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n < forms.len())
            .ok_or_else(|| Error::new(format!("names form {n}, which is not defined before it")))?
    } else {
        stream
            .form
            .ok_or_else(|| Error::new("no form (first op)"))?
    };
    let delta: i64 = form::read(input, "Lamport time")?;
    let lamport = (stream.lamport as i64)
        .checked_add(delta)
        .filter(|&l| l > 0 && l <= MAX_LAMPORT)
        .ok_or_else(|| Error::new("Lamport time out of range"))?;
    let values = forms[number].unpack(input)?;
    stream.device = Some(device);
    stream.seq = seq;
    stream.lamport = lamport as u64;
    stream.form = Some(number);
    stream.hash = None;
    let op = Packed {
        device,
        seq,
        prev,
        lamport: lamport as u64,
        deps,
        values,
        hash: None,
    };
    Ok((op, number))
}

/// Whether release `a` (`1.2.3`) is newer than release `b`.
fn newer(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parts(a) > parts(b)
}

fn read_manifest(conn: &crate::db::Conn) -> Result<Manifest> {
    let bad = |what: &str| Error::new(format!("manifest: {what}"));
    let mut stmt = conn.prepare(
        "SELECT magic, format, bundle_id, source, clock, op_count, ops_hash FROM manifest",
    )?;

    let Some(r) = stmt.step()? else {
        return Err(bad("empty"));
    };
    if r.column(0)?.as_text() != Some(MAGIC) {
        return Err(bad("wrong magic: not a sqlite-sync bundle"));
    }
    let format = match r.column(1)?.as_i64() {
        // format 3 is format 4 without declared types in its forms and manifest
        Some(v @ (3 | 4 | FORMAT)) => v,
        Some(v) => {
            // a bundle names the release that wrote it (from 0.1.0 on)
            let writer = conn
                .query_value("SELECT writer FROM manifest", &[])
                .ok()
                .flatten()
                .and_then(|w| w.as_text().map(str::to_string));
            let upgrade = match writer.filter(|w| newer(w, env!("CARGO_PKG_VERSION"))) {
                Some(w) => format!(
                    "sqlite-sync {w} wrote it: upgrade the extension on this device to {w} or \
                     later"
                ),
                None => "a newer build of sqlite-sync wrote it: upgrade the extension on this \
                         device"
                    .into(),
            };
            return Err(bad(&format!(
                "unknown format version {v} (this build, {}, reads 3 to {FORMAT}; {upgrade})",
                env!("CARGO_PKG_VERSION")
            )));
        }
        None => return Err(bad("format version is not an integer")),
    };
    let bytes16 = |v: Value, what: &str| -> Result<[u8; 16]> {
        v.as_blob()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad(&format!("{what} is not 16 bytes")))
    };
    let bundle_id = bytes16(r.column(2)?, "bundle_id")?;
    let source = bytes16(r.column(3)?, "source")?;
    let clock: Vec<(Fixed<16>, u64, Fixed<16>)> = r
        .column(4)?
        .as_blob()
        .and_then(|b| rmp_serde::from_slice(b).ok())
        .ok_or_else(|| bad("clock is unreadable"))?;
    let op_count = r
        .column(5)?
        .as_i64()
        .filter(|&n| n >= 0)
        .ok_or_else(|| bad("op_count is not a count"))? as u64;
    let ops_hash = r
        .column(6)?
        .as_blob()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("ops_hash is not 32 bytes"))?;
    if stmt.step()?.is_some() {
        return Err(bad("more than one row"));
    }
    drop(stmt);
    let declared = match format {
        3 => Vec::new(),
        _ => conn
            .query_value("SELECT declared FROM manifest", &[])?
            .and_then(|v| v.as_blob().and_then(crate::log::declared::decode))
            .ok_or_else(|| bad("declared is unreadable"))?,
    };
    // (from 0.2.0; a bundle without them, or with them unreadable, teaches nothing of them)
    let optional = |column: &str| -> Option<Vec<u8>> {
        let sql = format!("SELECT {column} FROM manifest");
        conn.query_value(&sql, &[])
            .ok()
            .flatten()?
            .as_blob()
            .map(<[u8]>::to_vec)
    };
    let stable: Vec<(Fixed<16>, u64, Fixed<16>)> = optional("stable")
        .and_then(|b| rmp_serde::from_slice(&b).ok())
        .unwrap_or_default();
    let ids = |column| -> Vec<crate::op::DeviceId> {
        let ids: Vec<Fixed<16>> = optional(column)
            .and_then(|b| rmp_serde::from_slice(&b).ok())
            .unwrap_or_default();
        ids.into_iter().map(|d| d.0).collect()
    };
    let (knows, forgotten) = (ids("knows"), ids("forgotten"));
    // (per device, its clock as the writer knew it, each encoded as `clock` is)
    let relayed: Vec<(Fixed<16>, Vec<u8>)> = optional("relayed")
        .and_then(|b| rmp_serde::from_slice(&b).ok())
        .unwrap_or_default();
    let relayed = (relayed.into_iter())
        .filter_map(|(peer, has)| {
            let has: Vec<(Fixed<16>, u64, Fixed<16>)> = rmp_serde::from_slice(&has).ok()?;
            Some((
                peer.0,
                has.into_iter().map(|(d, s, h)| (d.0, s, h.0)).collect(),
            ))
        })
        .collect();
    // (a bundle of an earlier build has none; one whose base is unreadable is refused: its
    // ops above removed ones would wait for them)
    type BaseEntry = (Fixed<16>, Fixed<16>, u64, u64, Fixed<16>);
    let base: Vec<BaseEntry> = match optional("base") {
        None => Vec::new(),
        Some(b) => rmp_serde::from_slice(&b).map_err(|_| bad("base is unreadable"))?,
    };
    // (a bundle of an earlier build has none: its ops after removed ones are taken with what
    // their deps state)
    type GapEntry = (Fixed<16>, u64, Vec<(Fixed<16>, u64, Fixed<16>)>);
    let gaps: Vec<GapEntry> = match optional("gaps") {
        None => Vec::new(),
        Some(b) => rmp_serde::from_slice(&b).map_err(|_| bad("gaps is unreadable"))?,
    };
    // (a bundle of an earlier build has none: a history it names that forks from one of several
    // held here waits for its ops to be sent again once they can be placed)
    let forks: Vec<(Fixed<16>, Fixed<16>)> = match optional("forks") {
        None => Vec::new(),
        Some(b) => rmp_serde::from_slice(&b).map_err(|_| bad("forks is unreadable"))?,
    };
    // (a bundle of an earlier build has none: what its writer says it has of its own ops is
    // taken as it is)
    let confirmed = conn
        .query_value("SELECT confirmed FROM manifest", &[])
        .ok()
        .flatten()
        .and_then(|v| v.as_i64())
        .filter(|&c| c >= 0)
        .map(|c| c as u64);
    let addressee = optional("addressee").and_then(|b| b.try_into().ok());
    // (a bundle of an earlier build has none: a dep on a stray is taken for the op below it)
    type StrayEntry = (Fixed<16>, u64, Fixed<16>, Fixed<16>);
    let strays: Vec<StrayEntry> = match optional("strays") {
        None => Vec::new(),
        Some(b) => rmp_serde::from_slice(&b).map_err(|_| bad("strays is unreadable"))?,
    };
    Ok(Manifest {
        format,
        bundle_id,
        source,
        clock: clock.into_iter().map(|(d, s, h)| (d.0, s, h.0)).collect(),
        op_count,
        ops_hash,
        declared,
        stable: stable.into_iter().map(|(d, s, h)| (d.0, s, h.0)).collect(),
        knows,
        forgotten,
        base: (base.into_iter())
            .map(|(device, history, from, upto, link)| Base {
                device: device.0,
                history: history.0,
                from,
                upto,
                link: link.0,
            })
            .collect(),
        gaps: (gaps.into_iter())
            .map(|(history, seq, points)| Gap {
                history: history.0,
                seq,
                points: points.into_iter().map(|(d, s, h)| (d.0, s, h.0)).collect(),
            })
            .collect(),
        forks: (forks.into_iter()).map(|(h, l)| (h.0, l.0)).collect(),
        relayed,
        confirmed,
        addressee,
        strays: (strays.into_iter())
            .map(|(d, s, h, p)| (d.0, s, h.0, p.0))
            .collect(),
    })
}
