//! Bundle files: the only thing that travels between devices.
//!
//! Invariant: a bundle is written to a temporary file beside its target and renamed into place
//! only when complete and synced, so the target path never holds a half-written bundle; and a
//! bundle is read only through a read-only connection that checks its whole schema before
//! reading a row, runs none of its SQL, and checks every hash before anything is applied.
//!
//! # Format (version 3): one SQLite database with exactly two tables and nothing else
//!
//! ```text
//! manifest(magic TEXT, format INTEGER, bundle_id BLOB, source BLOB, clock BLOB,
//!          op_count INTEGER, ops_hash BLOB)           one row
//!   magic     'sqlite-sync bundle'
//!   format    3; a reader refuses any other
//!   bundle_id 16 random bytes
//!   source    the writer's device id (16 bytes)
//!   clock     msgpack [[device id: bin(16), seq, link: bin(16)], …]: the writer's whole
//!             applied clock, each entry with the link (op.rs) of the op it names
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
//!             4  deps follow ([[device id: bin(16), seq, link: bin(16)], …]); otherwise none
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
//! A bundle may be replaced (written over) only by a bundle from the same device: writing to a
//! path that holds anything else is refused.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use std::collections::HashMap;

use crate::chain;
use crate::db::{Error, OpenMode, OwnedConn, Result, Stmt};
use crate::form::{self, Form, Head};
use crate::op::{self, Dep, DeviceId, Hash, Op};
use crate::value::Value;

pub const MAGIC: &str = "sqlite-sync bundle";
pub const FORMAT: i64 = 3;

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
    pub bundle_id: [u8; 16],
    pub source: DeviceId,
    pub clock: Vec<(DeviceId, u64, Hash)>,
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
}

impl Stream {
    /// Whether op `seq` of `device` is the one after the previous op of the stream.
    fn follows(&self, device: &DeviceId, seq: u64) -> bool {
        self.device.as_ref() == Some(device) && seq == self.seq.wrapping_add(1)
    }
}

impl Writer {
    /// Starts a bundle for `path`, refusing a path that holds anything but a bundle of one of
    /// `mine()` (this device's id, and the ids it had before it forked).
    pub fn create(path: &str, mine: impl FnOnce() -> Result<Vec<DeviceId>>) -> Result<Writer> {
        let target = PathBuf::from(path);
        if target.exists() {
            match Reader::open(path) {
                Ok(existing) if mine()?.contains(&existing.manifest.source) => {}
                _ => {
                    return Err(Error::new(
                        "the file exists and is not a bundle of this device; refusing to \
                         overwrite it (remove it, or choose another path)",
                    ))
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

    /// Appends one op, whose prev is `prev` (the hash of op seq - 1 of its device); returns
    /// its hash.
    pub fn add(&mut self, mut op: Op, prev: Option<Hash>) -> Result<Hash> {
        let form = Form::of(&op);
        let (device, seq, lamport) = (op.device, op.seq, op.lamport);
        let deps = std::mem::take(&mut op.deps);
        let values = form.values_of(op);
        let mut op_hasher = HashWriter(Sha256::new());
        let head = Head {
            device: &device,
            seq,
            prev: prev.as_ref(),
            lamport,
            deps: &deps,
        };
        form.write_canonical(&mut op_hasher, &head, &values);
        let full: [u8; 32] = op_hasher.0.finalize().into();
        self.hasher.update(full);
        let hash = op::link(&full);
        if (seq == 1) != prev.is_none() {
            return Err(Error::new(format!(
                "op {seq} of device {}: a prev for op 1, or none above it (internal)",
                crate::value::hex(&device)
            )));
        }
        let follows = self.stream.follows(&device, seq) && prev == self.stream.hash;
        let out = &mut self.chunk;
        let mut head = 0u8;
        let same_device = self.stream.device == Some(device);
        if !same_device {
            head |= HAS_DEVICE | HAS_SEQ;
        } else if !self.stream.follows(&device, seq) {
            head |= HAS_SEQ;
        }
        if !follows && seq > 1 {
            head |= HAS_PREV;
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
            put(out, &Fixed(device));
        }
        if head & HAS_SEQ != 0 {
            put(out, &seq);
        }
        if let (true, Some(prev)) = (head & HAS_PREV != 0, &prev) {
            put(out, &op::Bin(prev));
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
            hash: Some(hash),
        };
        self.count += 1;
        self.chunk_ops += 1;
        if self.chunk.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(hash)
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
        clock: &[(DeviceId, u64, Hash)],
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
        clock: &[(DeviceId, u64, Hash)],
    ) -> Result<u64> {
        self.flush()?;
        self.insert = None;
        let ops_hash: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        let clock: Vec<(op::Bin, u64, op::Bin)> = clock
            .iter()
            .map(|(d, s, h)| (op::Bin(d), *s, op::Bin(h)))
            .collect();
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

/// A device id or a hash as msgpack bin.
#[derive(serde::Serialize, serde::Deserialize)]
struct Fixed<const N: usize>(#[serde(with = "crate::op::fixed_bytes")] [u8; N]);

/// An open, schema-checked bundle, read in one read transaction (so it cannot change between
/// reads through SQLite).
pub struct Reader {
    db: OwnedConn,
    pub manifest: Manifest,
    /// SHA-256 of each chunk's body, once every op has been checked against the manifest: later
    /// reads check these instead of hashing every op again.
    chunk_hashes: Option<Vec<[u8; 32]>>,
    /// From the first reading: the hashes of the last op of each run of a device's ops in the
    /// stream and of every op that makes a checkpoint (chain.rs), by the op's ordinal in the
    /// bundle (from 1), ascending
    pub marks: Vec<(u64, Hash)>,
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
        let manifest = read_manifest(&conn)?;
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
                let was = (stream.device, stream.seq, stream.hash);
                let (mut op, number) = next_op(&mut input, &mut stream, &mut forms).map_err(at)?;
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
    if head & !(HAS_DEVICE | HAS_SEQ | HAS_DEPS | NEW_FORM | FORM_NUMBER | HAS_PREV) != 0
        || head & NEW_FORM != 0 && head & FORM_NUMBER != 0
        || head & HAS_DEVICE != 0 && head & HAS_SEQ == 0
    {
        return Err(Error::new(format!("bad op head {head}")));
    }
    let device = if head & HAS_DEVICE != 0 {
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
    let values = forms[number].unpack(input)?;
    *stream = Stream {
        device: Some(device),
        seq,
        lamport: lamport as u64,
        form: Some(number),
        hash: None,
    };
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
    let clock: Vec<(Fixed<16>, u64, Fixed<16>)> = stmt
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
        clock: clock.into_iter().map(|(d, s, h)| (d.0, s, h.0)).collect(),
        op_count,
        ops_hash,
    })
}
