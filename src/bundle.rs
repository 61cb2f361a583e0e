//! Bundle files: the only thing that travels between devices.
//!
//! Invariant: a bundle is written to a temporary file beside its target and renamed into place
//! only when complete and synced, so the target path never holds a half-written bundle; and a
//! bundle is read only through a read-only connection that checks its whole schema before
//! reading a row, runs none of its SQL, and checks every hash before anything is applied.
//!
//! # Format (version 2): one SQLite database with exactly two tables and nothing else
//!
//! ```text
//! manifest(magic TEXT, format INTEGER, bundle_id BLOB, source BLOB, clock BLOB,
//!          op_count INTEGER, ops_hash BLOB)           one row
//!   magic     'sqlite-sync bundle'
//!   format    2; a reader refuses any other
//!   bundle_id 16 random bytes
//!   source    the writer's device id (16 bytes)
//!   clock     msgpack [[device id: bin(16), seq], …]: the writer's whole applied clock
//!   op_count  ops in the bundle
//!   ops_hash  SHA-256 over the concatenated SHA-256 of each op's canonical encoding (op.rs),
//!             in bundle order; the reader recomputes every op's hash from what it decodes
//! chunks(n INTEGER PRIMARY KEY, ops INTEGER, body BLOB)   n = 1, 2, …
//!   ops       ops in this chunk
//!   body      its ops, one after the other, compactly (below)
//! ```
//!
//! The chunks' bodies, in order, are one stream. Each op in it is, in msgpack items:
//!
//! ```text
//! head      uint, a set of flags:
//!             1  a device id follows (bin 16); otherwise the previous op's device
//!             2  a seq follows (uint); otherwise the previous op's seq + 1 (always set when
//!                the device changes)
//!             4  deps follow ([[device id: bin(16), seq], …]); otherwise none
//!             8  a new form follows (form.rs), numbered from 0 in order of appearance
//!            16  the number of an earlier form follows (uint)
//!                (neither 8 nor 16: the previous op's form)
//! lamport   int: the op's Lamport time minus the previous op's (minus 0 for the first op)
//! values    the op's values in its form (form.rs)
//! ```
//!
//! A bundle may be replaced (written over) only by a bundle from the same device: writing to a
//! path that holds anything else is refused.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use std::collections::HashMap;

use crate::db::{Error, OpenMode, OwnedConn, Result, Stmt};
use crate::form::{self, Form};
use crate::op::{self, Dep, DeviceId, Op};
use crate::value::Value;

pub const MAGIC: &str = "sqlite-sync bundle";
pub const FORMAT: i64 = 2;

/// A chunk is written once its body reaches this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;

const HAS_DEVICE: u8 = 1;
const HAS_SEQ: u8 = 2;
const HAS_DEPS: u8 = 4;
const NEW_FORM: u8 = 8;
const FORM_NUMBER: u8 = 16;

/// What a bundle's manifest says.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub bundle_id: [u8; 16],
    pub source: DeviceId,
    pub clock: Vec<(DeviceId, u64)>,
    pub op_count: u64,
    pub ops_hash: [u8; 32],
}

/// Writes a bundle op by op; nothing appears at the target path until `finish`.
pub struct Writer {
    target: PathBuf,
    temp: PathBuf,
    /// The temporary file, locked while this export lives (see `remove_abandoned_temps`)
    lock: std::fs::File,
    insert: Option<Stmt>,
    db: Option<OwnedConn>,
    hasher: Sha256,
    count: u64,
    stream: Stream,
    chunk: Vec<u8>,
    chunk_ops: u64,
    chunks: u64,
    forms: HashMap<Form, usize>,
}

/// Appends one msgpack item.
fn put<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, item: &T) {
    rmp_serde::encode::write(out, item).expect("a bundle item always encodes");
}

/// One op as a bundle carries it: its own fields, and its values in its form (form.rs).
pub struct Packed {
    pub device: DeviceId,
    pub seq: u64,
    pub lamport: u64,
    pub deps: Vec<Dep>,
    pub values: Vec<Value>,
}

/// What the stream's encoding of the next op refers back to, for the writer and the reader.
#[derive(Default)]
struct Stream {
    device: Option<DeviceId>,
    seq: u64,
    lamport: u64,
    form: Option<usize>,
}

impl Writer {
    /// Starts a bundle for `path`, refusing a path that holds anything but a bundle of `me`.
    pub fn create(path: &str, me: &DeviceId) -> Result<Writer> {
        let target = PathBuf::from(path);
        if target.exists() {
            match Reader::open(path) {
                Ok(existing) if existing.manifest.source == *me => {}
                _ => {
                    return Err(Error::new(format!(
                    "{path:?} exists and is not a bundle of this device; refusing to overwrite it"
                )))
                }
            }
        }
        let name = target
            .file_name()
            .ok_or_else(|| Error::new(format!("{path:?} is not a file path")))?;
        remove_abandoned_temps(&target);
        let mut temp_name = name.to_os_string();
        temp_name.push(format!("{TEMP_MARK}{}", uuid::Uuid::new_v4().simple()));
        let temp = target.with_file_name(temp_name);
        let temp_str = temp
            .to_str()
            .ok_or_else(|| Error::new("bundle path is not valid UTF-8"))?;
        let lock = std::fs::File::create_new(&temp)
            .and_then(|file| file.lock().map(|()| file))
            .map_err(|e| Error::new(format!("cannot create {path:?}: {e}")))?;
        let db = OwnedConn::open(temp_str, OpenMode::Create).map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            Error::new(format!("cannot create {path:?}: {e}"))
        })?;
        let mut writer = Writer {
            target,
            temp,
            lock,
            insert: None,
            db: Some(db),
            hasher: Sha256::new(),
            count: 0,
            stream: Stream::default(),
            chunk: Vec::with_capacity(CHUNK_BYTES + 4096),
            chunk_ops: 0,
            chunks: 0,
            forms: HashMap::new(),
        };
        let conn = *writer.db.as_ref().unwrap().conn();
        let setup = (|| {
            conn.exec("PRAGMA journal_mode = OFF", &[])?;
            conn.exec("PRAGMA synchronous = OFF", &[])?;
            conn.exec("BEGIN", &[])?;
            conn.exec(
                "CREATE TABLE manifest(magic TEXT, format INTEGER, bundle_id BLOB, source BLOB,
                                       clock BLOB, op_count INTEGER, ops_hash BLOB)",
                &[],
            )?;
            conn.exec(
                "CREATE TABLE chunks(n INTEGER PRIMARY KEY, ops INTEGER NOT NULL, body BLOB NOT NULL)",
                &[],
            )?;
            conn.prepare("INSERT INTO chunks(n, ops, body) VALUES (?1, ?2, ?3)")
        })();
        match setup {
            Ok(stmt) => writer.insert = Some(stmt),
            Err(e) => {
                writer.abandon();
                return Err(e);
            }
        }
        Ok(writer)
    }

    /// Appends one op.
    pub fn add(&mut self, mut op: Op) -> Result<()> {
        let form = Form::of(&op);
        let (device, seq, lamport) = (op.device, op.seq, op.lamport);
        let deps = std::mem::take(&mut op.deps);
        let values = form.values_of(op);
        let mut op_hasher = HashWriter(Sha256::new());
        form.write_canonical(&mut op_hasher, &device, seq, lamport, &deps, &values);
        self.hasher.update(op_hasher.0.finalize());
        let out = &mut self.chunk;
        let mut head = 0u8;
        let same_device = self.stream.device == Some(device);
        if !same_device {
            head |= HAS_DEVICE | HAS_SEQ;
        } else if seq != self.stream.seq.wrapping_add(1) {
            head |= HAS_SEQ;
        }
        if !deps.is_empty() {
            head |= HAS_DEPS;
        }
        let next = self.forms.len();
        let number = *self.forms.entry(form.clone()).or_insert(next);
        let new = number == next;
        if new {
            head |= NEW_FORM;
        } else if self.stream.form != Some(number) {
            head |= FORM_NUMBER;
        }
        put(out, &head);
        if head & HAS_DEVICE != 0 {
            put(out, &serde_bytes16(device));
        }
        if head & HAS_SEQ != 0 {
            put(out, &seq);
        }
        if head & HAS_DEPS != 0 {
            put(out, &deps);
        }
        if new {
            put(out, &form);
        } else if head & FORM_NUMBER != 0 {
            put(out, &(number as u64));
        }
        put(
            out,
            &(lamport as i64).wrapping_sub(self.stream.lamport as i64),
        );
        Form::pack(&values, out)?;
        self.stream = Stream {
            device: Some(device),
            seq,
            lamport,
            form: Some(number),
        };
        self.count += 1;
        self.chunk_ops += 1;
        if self.chunk.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the chunk gathered so far.
    fn flush(&mut self) -> Result<()> {
        if self.chunk_ops == 0 {
            return Ok(());
        }
        self.chunks += 1;
        let body = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_BYTES + 4096));
        // bound without a copy: a chunk holds at least one whole op, however large
        self.insert
            .as_mut()
            .expect("writer is open")
            .execute_borrowed(&[
                Value::Integer(self.chunks as i64),
                Value::Integer(self.chunk_ops as i64),
                Value::Blob(body),
            ])?;
        self.chunk_ops = 0;
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes the manifest, syncs the file and renames it into place. Returns its size in bytes.
    pub fn finish(
        mut self,
        bundle_id: [u8; 16],
        source: &DeviceId,
        clock: &[(DeviceId, u64)],
    ) -> Result<u64> {
        let result = self.seal(bundle_id, source, clock);
        if result.is_err() {
            self.abandon();
        }
        result
    }

    fn seal(
        &mut self,
        bundle_id: [u8; 16],
        source: &DeviceId,
        clock: &[(DeviceId, u64)],
    ) -> Result<u64> {
        self.flush()?;
        self.insert = None;
        let ops_hash: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        let clock: Vec<(serde_bytes16, u64)> =
            clock.iter().map(|(d, s)| (serde_bytes16(*d), *s)).collect();
        let clock = rmp_serde::to_vec(&clock).expect("a clock always encodes");
        let conn = *self.db.as_ref().expect("writer is open").conn();
        conn.exec(
            "INSERT INTO manifest VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            &[
                Value::Text(MAGIC.into()),
                Value::Integer(FORMAT),
                Value::Blob(bundle_id.to_vec()),
                Value::Blob(source.to_vec()),
                Value::Blob(clock),
                Value::Integer(self.count as i64),
                Value::Blob(ops_hash.to_vec()),
            ],
        )?;
        conn.exec("COMMIT", &[])?;
        self.db = None; // close
        let io = |e: std::io::Error| Error::new(format!("writing {:?}: {e}", self.target));
        self.lock.sync_all().map_err(io)?;
        std::fs::rename(&self.temp, &self.target).map_err(io)?;
        if let Some(dir) = self.target.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(std::fs::metadata(&self.target).map_err(io)?.len())
    }

    fn abandon(&mut self) {
        self.insert = None;
        self.db = None;
        let _ = std::fs::remove_file(&self.temp);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.db.is_some() {
            self.abandon();
        }
    }
}

/// What follows a bundle's file name in the name of its temporary file, before 32 hex digits.
const TEMP_MARK: &str = ".tmp-";

/// Removes the temporary files of earlier exports to `target` that never finished (the process
/// was killed, the machine lost power): those no export holds the lock on. An export creates
/// its temporary file locked (an advisory `flock`, released by the system when the process
/// dies) and holds the lock until the file is renamed or removed.
fn remove_abandoned_temps(target: &Path) {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}{TEMP_MARK}", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let is_temp = file_name
            .strip_prefix(&prefix)
            .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        let path = entry.path();
        if is_temp && !held_by_a_writer(&path) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Whether an export (of any process) still holds the lock on temporary file `path`; true
/// when that cannot be told.
fn held_by_a_writer(path: &Path) -> bool {
    match std::fs::File::open(path).map(|f| f.try_lock()) {
        Ok(Ok(())) => false, // released as the file closes
        _ => true,
    }
}

/// A device id serialized as msgpack bin.
#[derive(serde::Serialize, serde::Deserialize)]
#[allow(non_camel_case_types)]
struct serde_bytes16(#[serde(with = "crate::op::device_bytes")] DeviceId);

/// An open, schema-checked bundle, read in one read transaction (so it cannot change between
/// reads through SQLite).
pub struct Reader {
    db: OwnedConn,
    pub manifest: Manifest,
    /// SHA-256 of each chunk's body, once every op has been checked against the manifest: later
    /// reads check these instead of hashing every op again.
    chunk_hashes: Option<Vec<[u8; 32]>>,
}

impl Reader {
    /// Opens `path` read-only and checks its schema and manifest (not yet its ops).
    pub fn open(path: &str) -> Result<Reader> {
        let p = Path::new(path);
        if !p.exists() {
            return Err(Error::new("no such file"));
        }
        if !p.is_file() {
            return Err(Error::new("not a file"));
        }
        let db = OwnedConn::open(path, OpenMode::ReadOnly)?;
        let conn = *db.conn();
        let unreadable = |e: Error| Error::new(format!("not a readable bundle ({e})"));
        conn.exec("PRAGMA trusted_schema = OFF", &[])
            .map_err(unreadable)?;
        conn.exec("PRAGMA query_only = ON", &[])
            .map_err(unreadable)?;
        conn.exec("BEGIN", &[]).map_err(unreadable)?;
        let mut schema = conn
            .prepare("SELECT type, name FROM sqlite_schema ORDER BY type, name")
            .map_err(unreadable)?;
        let mut objects = Vec::new();
        while schema.step().map_err(unreadable)? {
            let t = schema.column(0)?.as_text().unwrap_or_default().to_string();
            let n = schema.column(1)?.as_text().unwrap_or_default().to_string();
            objects.push(format!("{t} {n}"));
        }
        drop(schema);
        if objects != ["table chunks", "table manifest"] {
            return Err(Error::new(format!(
                "not a sqlite-sync bundle: expected exactly the tables chunks and manifest, found [{}]",
                objects.join(", ")
            )));
        }
        let manifest = read_manifest(&conn)?;
        Ok(Reader {
            db,
            manifest,
            chunk_hashes: None,
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
        let mut stream = Stream::default();
        let mut forms: Vec<Form> = Vec::new();
        let mut count = 0u64;
        let mut expected_chunk = 0i64;
        let too_many = || {
            Error::new(format!(
                "holds more ops than its manifest says ({})",
                self.manifest.op_count
            ))
        };
        while stmt.step()? {
            expected_chunk += 1;
            let n = stmt.column_int(0);
            if n != expected_chunk {
                return Err(Error::new(format!(
                    "chunk {n} out of sequence (expected chunk {expected_chunk})"
                )));
            }
            let (Value::Integer(ops), Some(body)) = (stmt.column(1)?, stmt.column_blob(2)?) else {
                return Err(Error::new(format!("chunk {n}: damaged")));
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
                let (op, number) = next_op(&mut input, &mut stream, &mut forms).map_err(at)?;
                let form = &forms[number];
                if known.is_none() {
                    let mut op_hasher = HashWriter(Sha256::new());
                    let (device, deps, values) = (&op.device, &op.deps, &op.values);
                    form.write_canonical(&mut op_hasher, device, op.seq, op.lamport, deps, values);
                    hasher.update(op_hasher.0.finalize());
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
        if known.is_none() && ops_hash != self.manifest.ops_hash {
            return Err(Error::new(
                "manifest hash does not match its ops (corrupted or edited)",
            ));
        }
        self.chunk_hashes = Some(chunk_hashes);
        Ok(())
    }
}

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

/// Decodes the next op of the stream (see the module comment).
fn next_op(
    input: &mut &[u8],
    stream: &mut Stream,
    forms: &mut Vec<Form>,
) -> Result<(Packed, usize)> {
    let head: u8 = form::read(input, "op head")?;
    if head & !(HAS_DEVICE | HAS_SEQ | HAS_DEPS | NEW_FORM | FORM_NUMBER) != 0
        || head & NEW_FORM != 0 && head & FORM_NUMBER != 0
        || head & HAS_DEVICE != 0 && head & HAS_SEQ == 0
    {
        return Err(Error::new(format!("bad op head {head}")));
    }
    let device = if head & HAS_DEVICE != 0 {
        form::read::<serde_bytes16>(input, "device id")?.0
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
    let deps: Vec<Dep> = if head & HAS_DEPS != 0 {
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
        .filter(|&l| l > 0)
        .ok_or_else(|| Error::new("Lamport time out of range"))?;
    if seq == 0 || seq > i64::MAX as u64 {
        return Err(Error::new("seq out of range"));
    }
    let values = forms[number].unpack(input)?;
    *stream = Stream {
        device: Some(device),
        seq,
        lamport: lamport as u64,
        form: Some(number),
    };
    let op = Packed {
        device,
        seq,
        lamport: lamport as u64,
        deps,
        values,
    };
    Ok((op, number))
}

fn read_manifest(conn: &crate::db::Conn) -> Result<Manifest> {
    let bad = |what: &str| Error::new(format!("manifest: {what}"));
    let mut stmt = conn.prepare(
        "SELECT magic, format, bundle_id, source, clock, op_count, ops_hash FROM manifest",
    )?;
    if !stmt.step()? {
        return Err(bad("empty"));
    }
    if stmt.column(0)?.as_text() != Some(MAGIC) {
        return Err(bad("wrong magic: not a sqlite-sync bundle"));
    }
    match stmt.column(1)?.as_i64() {
        Some(FORMAT) => {}
        Some(v) => {
            return Err(bad(&format!(
                "unknown format version {v} (this build reads {FORMAT})"
            )))
        }
        None => return Err(bad("format version is not an integer")),
    }
    let bytes16 = |v: Value, what: &str| -> Result<[u8; 16]> {
        v.as_blob()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad(&format!("{what} is not 16 bytes")))
    };
    let bundle_id = bytes16(stmt.column(2)?, "bundle_id")?;
    let source = bytes16(stmt.column(3)?, "source")?;
    let clock: Vec<(serde_bytes16, u64)> = stmt
        .column(4)?
        .as_blob()
        .and_then(|b| rmp_serde::from_slice(b).ok())
        .ok_or_else(|| bad("clock is unreadable"))?;
    let op_count = stmt
        .column(5)?
        .as_i64()
        .filter(|&n| n >= 0)
        .ok_or_else(|| bad("op_count is not a count"))? as u64;
    let ops_hash = stmt
        .column(6)?
        .as_blob()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("ops_hash is not 32 bytes"))?;
    if stmt.step()? {
        return Err(bad("more than one row"));
    }
    Ok(Manifest {
        bundle_id,
        source,
        clock: clock.into_iter().map(|(d, s)| (d.0, s)).collect(),
        op_count,
        ops_hash,
    })
}
