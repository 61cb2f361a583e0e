//! Writing a bundle: ops streamed into chunks of a temporary database, which is synced and renamed
//! into place only when complete (or, for a BLOB, a database in memory whose image is returned).
//!
//! Invariant: the target path never holds a half-written bundle, and a path that holds anything
//! but a bundle of this device is never written over.

use crate::hashed::HashMap;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use crate::db::{Error, OpenMode, OwnedConn, Result};
use crate::form::Form;
use crate::op::{self, DeviceId, Hash, Op};
use crate::value::Value;

use super::read::Reader;
use super::{
    put, Fixed, HashWriter, Stream, CHUNK_BYTES, FORMAT, FORM_NUMBER, HAS_DEPS, HAS_DEVICE,
    HAS_PREV, HAS_SEQ, MAGIC, NEW_FORM,
};
use crate::form::Head;

/// What a manifest says of the devices its writer knows, beyond its clock: its stable clock
/// and the devices it knew that its clock does not name (log/stable.rs), its base (up to
/// where it removed ops the bundle does not carry, and the contexts of the ops removed before
/// the ops it carries: apply/removed.rs), and the devices it forgot (log/forgotten.rs).
pub struct Peers {
    pub stable: Vec<(DeviceId, u64, Hash)>,
    pub knows: Vec<DeviceId>,
    pub base: Vec<super::Base>,
    pub forgotten: Vec<DeviceId>,
    pub gaps: Vec<super::Gap>,
    pub forks: Vec<(DeviceId, Hash)>,
    pub relayed: crate::log::stable::Relayed,
    pub confirmed: Option<u64>,
    pub addressee: Option<DeviceId>,
    pub strays: Vec<crate::log::strays::Stray>,
}
/// Writes a bundle op by op; nothing appears at the target path until `finish`.
pub struct Writer {
    dest: Dest,
    db: Option<OwnedConn>,
    hasher: Sha256,
    count: u64,
    stream: Stream,
    chunk: Vec<u8>,
    chunk_ops: u64,
    chunks: u64,
    forms: HashMap<Form, usize>,
    /// The format written: `FORMAT`, or 4 for a reader of an older release (`for_format`)
    format: i64,
}

/// Where a bundle goes.
enum Dest {
    File {
        target: PathBuf,
        temp: PathBuf,
        /// The temporary file, locked while this export lives (see `remove_abandoned_temps`)
        lock: std::fs::File,
    },
    /// A database in memory, whose image `finish` returns
    Memory,
}

/// What `finish` made.
pub enum Written {
    /// a file of this many bytes at the target path
    File(u64),
    /// the bundle's bytes
    Bytes(Vec<u8>),
}

impl Writer {
    /// Starts a bundle for `path`, refusing a path that holds anything but a bundle of one of
    /// `mine()` (this device's id, and the ids it had before it forked).
    pub fn create(path: &str, mine: impl FnOnce() -> Result<Vec<DeviceId>>) -> Result<Writer> {
        let target = PathBuf::from(path);
        if target.is_dir() {
            return Err(Error::new(format!(
                "{path:?} is a directory: give the path of the bundle file to write (for a \
                 folder shared with other devices, sync_folder_out writes a file named for it)"
            )));
        }
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
        Writer::start(Dest::File { target, temp, lock }, db)
    }

    /// Starts a bundle written in memory, whose bytes `finish` returns.
    pub fn in_memory() -> Result<Writer> {
        Writer::start(Dest::Memory, OwnedConn::open(":memory:", OpenMode::Create)?)
    }

    fn start(dest: Dest, db: OwnedConn) -> Result<Writer> {
        let mut writer = Writer {
            dest,
            db: Some(db),
            hasher: Sha256::new(),
            count: 0,
            stream: Stream::default(),
            chunk: Vec::with_capacity(CHUNK_BYTES + 4096),
            chunk_ops: 0,
            chunks: 0,
            forms: HashMap::default(),
            format: FORMAT,
        };
        let setup = (|| {
            let conn = writer.db.as_ref().expect("just opened").conn();
            conn.exec("PRAGMA journal_mode = OFF", &[])?;
            conn.exec("PRAGMA synchronous = OFF", &[])?;
            conn.exec("BEGIN", &[])?;
            conn.exec(
                "CREATE TABLE manifest(magic TEXT, format INTEGER, bundle_id BLOB, source BLOB,
                                       clock BLOB, op_count INTEGER, ops_hash BLOB,
                                       declared BLOB, writer TEXT, stable BLOB, knows BLOB,
                                       base BLOB, forgotten BLOB, gaps BLOB, forks BLOB,
                                       relayed BLOB, confirmed INTEGER, addressee BLOB,
                                       strays BLOB)",
                &[],
            )?;
            conn.exec(
                "CREATE TABLE chunks(n INTEGER PRIMARY KEY, ops INTEGER NOT NULL, body BLOB NOT NULL)",
                &[],
            )
        })();
        if let Err(e) = setup {
            writer.abandon();
            return Err(e);
        }
        Ok(writer)
    }

    /// Writes format 4 (devices and deps spelled out) when `format`, the latest format the
    /// bundle's reader wrote, is older than 5: what releases before 0.2.0 read. Called before
    /// the first op.
    pub fn for_format(&mut self, format: i64) {
        if format < 5 {
            self.format = 4;
        }
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
        let short = self.format >= 5;
        if head & HAS_DEVICE != 0 && short {
            self.stream.names.put_device(out, &device);
        } else if head & HAS_DEVICE != 0 {
            put(out, &Fixed(device));
        }
        if head & HAS_SEQ != 0 {
            put(out, &seq);
        }
        if let (true, Some(prev)) = (head & HAS_PREV != 0, &prev) {
            put(out, &op::Bin(prev));
        }
        if head & HAS_DEPS != 0 && short {
            self.stream.names.put_deps(out, &device, &deps);
        } else if head & HAS_DEPS != 0 {
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
        self.stream.device = Some(device);
        self.stream.seq = seq;
        self.stream.lamport = lamport;
        self.stream.form = Some(number);
        self.stream.hash = Some(hash);
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
        // bound without a copy: a chunk holds at least one whole op, however large (a chunk is
        // 64 KiB or more, so a statement prepared per chunk costs nothing worth keeping it)
        let conn = self.db.as_ref().expect("writer is open").conn();
        conn.prepare("INSERT INTO chunks(n, ops, body) VALUES (?1, ?2, ?3)")?
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

    /// Writes the manifest, then syncs the file and renames it into place (returns its size in
    /// bytes), or returns the bytes of a bundle written in memory.
    pub fn finish(
        mut self,
        bundle_id: [u8; 16],
        source: &DeviceId,
        clock: &[(DeviceId, u64, Hash)],
        declared: Vec<u8>,
        peers: Peers,
    ) -> Result<Written> {
        let result = self.seal(bundle_id, source, clock, declared, peers);
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
        declared: Vec<u8>,
        Peers {
            stable,
            knows,
            base,
            forgotten,
            gaps,
            forks,
            relayed,
            confirmed,
            addressee,
            strays,
        }: Peers,
    ) -> Result<Written> {
        self.flush()?;
        let ops_hash: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        let encode = |clock: &[(DeviceId, u64, Hash)]| {
            let clock: Vec<(op::Bin, u64, op::Bin)> = clock
                .iter()
                .map(|(d, s, h)| (op::Bin(d), *s, op::Bin(h)))
                .collect();
            rmp_serde::to_vec(&clock).expect("a clock always encodes")
        };
        let (clock, stable) = (encode(clock), encode(&stable));
        let relayed: Vec<(op::Bin, Vec<u8>)> = (relayed.iter())
            .map(|(peer, has)| (op::Bin(peer), encode(has)))
            .collect();
        let relayed = rmp_serde::to_vec(&relayed).expect("clocks always encode");
        let base: Vec<(op::Bin, op::Bin, u64, u64, op::Bin)> = (base.iter())
            .map(|b| {
                (
                    op::Bin(&b.device),
                    op::Bin(&b.history),
                    b.from,
                    b.upto,
                    op::Bin(&b.link),
                )
            })
            .collect();
        let base = rmp_serde::to_vec(&base).expect("a base always encodes");
        let ids = |ids: &[DeviceId]| {
            let ids: Vec<op::Bin> = ids.iter().map(|d| op::Bin(d)).collect();
            rmp_serde::to_vec(&ids).expect("device ids always encode")
        };
        let (knows, forgotten) = (ids(&knows), ids(&forgotten));
        type Point<'a> = (op::Bin<'a>, u64, op::Bin<'a>);
        let gaps: Vec<(op::Bin, u64, Vec<Point>)> = (gaps.iter())
            .map(|g| {
                let points = (g.points.iter())
                    .map(|(d, s, h)| (op::Bin(d), *s, op::Bin(h)))
                    .collect();
                (op::Bin(&g.history), g.seq, points)
            })
            .collect();
        let gaps = rmp_serde::to_vec(&gaps).expect("contexts always encode");
        let forks: Vec<(op::Bin, op::Bin)> = (forks.iter())
            .map(|(history, link)| (op::Bin(history), op::Bin(link)))
            .collect();
        let forks = rmp_serde::to_vec(&forks).expect("links always encode");
        let strays: Vec<(op::Bin, u64, op::Bin, op::Bin)> = (strays.iter())
            .map(|(d, s, h, p)| (op::Bin(d), *s, op::Bin(h), op::Bin(p)))
            .collect();
        let strays = rmp_serde::to_vec(&strays).expect("links always encode");
        let conn = self.db.as_ref().expect("writer is open").conn();
        conn.exec(
            "INSERT INTO manifest
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                     ?17, ?18, ?19)",
            &[
                Value::Text(MAGIC.into()),
                Value::Integer(self.format),
                Value::Blob(bundle_id.to_vec()),
                Value::Blob(source.to_vec()),
                Value::Blob(clock),
                Value::Integer(self.count as i64),
                Value::Blob(ops_hash.to_vec()),
                Value::Blob(declared),
                Value::Text(env!("CARGO_PKG_VERSION").into()),
                Value::Blob(stable),
                Value::Blob(knows),
                Value::Blob(base),
                Value::Blob(forgotten),
                Value::Blob(gaps),
                Value::Blob(forks),
                Value::Blob(relayed),
                confirmed.map_or(Value::Null, |c| Value::Integer(c as i64)),
                addressee.map_or(Value::Null, |to| Value::Blob(to.to_vec())),
                Value::Blob(strays),
            ],
        )?;
        conn.exec("COMMIT", &[])?;
        let Dest::File { target, temp, lock } = &self.dest else {
            let bytes = self.db.as_ref().expect("writer is open").to_bytes()?;
            self.db = None;
            return Ok(Written::Bytes(bytes));
        };
        self.db = None; // close
        let io = |e: std::io::Error| Error::new(format!("writing {target:?}: {e}"));
        lock.sync_all().map_err(io)?;
        std::fs::rename(temp, target).map_err(io)?;
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(Written::File(std::fs::metadata(target).map_err(io)?.len()))
    }

    fn abandon(&mut self) {
        self.db = None;
        if let Dest::File { temp, .. } = &self.dest {
            let _ = std::fs::remove_file(temp);
        }
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
