//! Bundle files: the only thing that travels between devices.
//!
//! Invariant: a bundle is written to a temporary file beside its target and renamed into place
//! only when complete and synced, so the target path never holds a half-written bundle; and a
//! bundle is read only through a read-only connection that checks its whole schema before
//! reading a row, runs none of its SQL, and checks every hash before anything is applied.
//!
//! # Format (version 1): one SQLite database with exactly two tables and nothing else
//!
//! ```text
//! manifest(magic TEXT, format INTEGER, bundle_id BLOB, source BLOB, clock BLOB,
//!          op_count INTEGER, ops_hash BLOB)           one row
//!   magic     'sqlite-sync bundle'
//!   format    1; a reader refuses any other
//!   bundle_id 16 random bytes
//!   source    the writer's device id (16 bytes)
//!   clock     msgpack [[device id: bin(16), seq], …]: the writer's whole applied clock
//!   op_count  rows in `ops`
//!   ops_hash  SHA-256 over the concatenated `hash` of ops 1..op_count
//! ops(n INTEGER PRIMARY KEY, body BLOB, hash BLOB)    n = 1..op_count
//!   body      one op's canonical encoding (op.rs)
//!   hash      SHA-256 of body
//! ```
//!
//! A bundle may be replaced (written over) only by a bundle from the same device: writing to a
//! path that holds anything else is refused.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use crate::db::{Error, OpenMode, OwnedConn, Result, Stmt};
use crate::op::{self, DeviceId, Op};
use crate::value::Value;

pub const MAGIC: &str = "sqlite-sync bundle";
pub const FORMAT: i64 = 1;

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
    insert: Option<Stmt>,
    db: Option<OwnedConn>,
    hasher: Sha256,
    count: u64,
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
        let mut temp_name = name.to_os_string();
        temp_name.push(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        let temp = target.with_file_name(temp_name);
        let temp_str = temp
            .to_str()
            .ok_or_else(|| Error::new("bundle path is not valid UTF-8"))?;
        let db = OwnedConn::open(temp_str, OpenMode::Create)
            .map_err(|e| Error::new(format!("cannot create {path:?}: {e}")))?;
        let mut writer = Writer {
            target,
            temp,
            insert: None,
            db: Some(db),
            hasher: Sha256::new(),
            count: 0,
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
                "CREATE TABLE ops(n INTEGER PRIMARY KEY, body BLOB NOT NULL, hash BLOB NOT NULL)",
                &[],
            )?;
            conn.prepare("INSERT INTO ops(n, body, hash) VALUES (?1, ?2, ?3)")
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

    /// Appends one encoded op.
    pub fn add(&mut self, body: &[u8]) -> Result<()> {
        let hash = op::hash(body);
        self.hasher.update(hash);
        self.count += 1;
        self.insert.as_mut().expect("writer is open").execute(&[
            Value::Integer(self.count as i64),
            Value::Blob(body.to_vec()),
            Value::Blob(hash.to_vec()),
        ])?;
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
        std::fs::File::open(&self.temp)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
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

/// A device id serialized as msgpack bin.
#[derive(serde::Serialize, serde::Deserialize)]
#[allow(non_camel_case_types)]
struct serde_bytes16(#[serde(with = "crate::op::device_bytes")] DeviceId);

/// An open, schema-checked bundle.
pub struct Reader {
    db: OwnedConn,
    pub manifest: Manifest,
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
        let mut schema = conn
            .prepare("SELECT type, name FROM sqlite_schema ORDER BY type, name")
            .map_err(unreadable)?;
        let mut objects = Vec::new();
        while schema.step().map_err(unreadable)? {
            let t = schema.column(0).as_text().unwrap_or_default().to_string();
            let n = schema.column(1).as_text().unwrap_or_default().to_string();
            objects.push(format!("{t} {n}"));
        }
        drop(schema);
        if objects != ["table manifest", "table ops"] {
            return Err(Error::new(format!(
                "not a sqlite-sync bundle: expected exactly the tables manifest and ops, found [{}]",
                objects.join(", ")
            )));
        }
        let manifest = read_manifest(&conn)?;
        Ok(Reader { db, manifest })
    }

    /// Checks every op against its hash and the manifest, calling `f` with each decoded op and
    /// its encoding, in bundle order. Returns an error naming the op at fault.
    pub fn each_op(&self, mut f: impl FnMut(&Op, &[u8]) -> Result<()>) -> Result<()> {
        let conn = self.db.conn();
        let mut stmt = conn.prepare("SELECT n, body, hash FROM ops ORDER BY n")?;
        let mut hasher = Sha256::new();
        let mut expected_n = 0u64;
        while stmt.step()? {
            expected_n += 1;
            let n = stmt.column(0).as_i64().unwrap_or(0);
            let at = |what: &str| Error::new(format!("op {n}: {what}"));
            if n as u64 != expected_n {
                return Err(at(&format!("out of sequence (expected op {expected_n})")));
            }
            if expected_n > self.manifest.op_count {
                return Err(Error::new(format!(
                    "holds more ops than its manifest says ({})",
                    self.manifest.op_count
                )));
            }
            let (Value::Blob(body), Value::Blob(hash)) = (stmt.column(1), stmt.column(2)) else {
                return Err(at("body or hash is not a BLOB"));
            };
            if op::hash(&body)[..] != hash[..] {
                return Err(at("hash mismatch (corrupted or edited)"));
            }
            hasher.update(&hash);
            let op = Op::decode(&body).map_err(|e| at(&e.0))?;
            f(&op, &body).map_err(|e| {
                Error::new(format!(
                    "op {n} (seq {} of device {}): {e}",
                    op.seq,
                    &crate::value::hex(&op.device)[..8]
                ))
            })?;
        }
        if expected_n != self.manifest.op_count {
            return Err(Error::new(format!(
                "holds {expected_n} ops but its manifest says {} (truncated?)",
                self.manifest.op_count
            )));
        }
        let ops_hash: [u8; 32] = hasher.finalize().into();
        if ops_hash != self.manifest.ops_hash {
            return Err(Error::new(
                "manifest hash does not match its ops (corrupted or edited)",
            ));
        }
        Ok(())
    }
}

fn read_manifest(conn: &crate::db::Conn) -> Result<Manifest> {
    let bad = |what: &str| Error::new(format!("manifest: {what}"));
    let mut stmt = conn.prepare(
        "SELECT magic, format, bundle_id, source, clock, op_count, ops_hash FROM manifest",
    )?;
    if !stmt.step()? {
        return Err(bad("empty"));
    }
    if stmt.column(0).as_text() != Some(MAGIC) {
        return Err(bad("wrong magic: not a sqlite-sync bundle"));
    }
    match stmt.column(1).as_i64() {
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
    let bundle_id = bytes16(stmt.column(2), "bundle_id")?;
    let source = bytes16(stmt.column(3), "source")?;
    let clock: Vec<(serde_bytes16, u64)> = stmt
        .column(4)
        .as_blob()
        .and_then(|b| rmp_serde::from_slice(b).ok())
        .ok_or_else(|| bad("clock is unreadable"))?;
    let op_count = stmt
        .column(5)
        .as_i64()
        .filter(|&n| n >= 0)
        .ok_or_else(|| bad("op_count is not a count"))? as u64;
    let ops_hash = stmt
        .column(6)
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
