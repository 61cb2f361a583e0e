//! Shared helpers: every test loads the built extension (`dist/sync0.so`, made by `make`) into a
//! real SQLite host, rusqlite's bundled one, and looks at the results through plain SQL.
#![allow(dead_code)]

use rusqlite::types::Value;
use rusqlite::Connection;
use std::path::PathBuf;

pub fn extension_path() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHECKED.get_or_init(checked_extension_path).clone()
}

/// dist/sync0.so, checked to be there and newer than every source it is built from.
fn checked_extension_path() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let p = root.join("dist/sync0.so");
    assert!(p.exists(), "{} is missing: run `make` first", p.display());
    // a test must not pass or fail on a library built from other sources
    let built = modified(&p);
    let mut sources = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            match path.is_dir() {
                true => dirs.push(path),
                false => sources.push(path),
            }
        }
    }
    if let Some(newer) = sources.iter().find(|s| modified(s) > built) {
        panic!(
            "{} is older than {}: run `make` (or `make check`, `make test`, which build it) first",
            p.display(),
            newer.display()
        );
    }
    p
}

fn modified(path: &std::path::Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// Loads the extension into `conn`.
pub fn load(conn: &Connection) {
    unsafe {
        conn.load_extension_enable().unwrap();
        conn.load_extension(extension_path(), Some("sqlite3_sync_init"))
            .unwrap();
        conn.load_extension_disable().unwrap();
    }
}

/// A fresh database file in a fresh temporary directory, kept alive with the connection.
pub struct TestDb {
    pub dir: tempdir::Dir,
    pub conn: Connection,
}

impl TestDb {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("test.db")
    }

    /// Another connection to the same file that has NOT loaded the extension.
    pub fn plain_connection(&self) -> Connection {
        Connection::open(self.path()).unwrap()
    }
}

/// A database file with the extension loaded and `sync_init()` run.
pub fn device() -> TestDb {
    let db = raw_device();
    db.conn
        .query_row("SELECT sync_init()", [], |_| Ok(()))
        .unwrap();
    db
}

/// A database file with the extension loaded, before `sync_init()`.
pub fn raw_device() -> TestDb {
    let dir = tempdir::Dir::new();
    let conn = Connection::open(dir.path().join("test.db")).unwrap();
    load(&conn);
    TestDb { dir, conn }
}

/// Runs one `SELECT f(...)` and returns its single value, or SQLite's error message.
pub fn call(conn: &Connection, sql: &str) -> Result<Value, String> {
    conn.query_row(sql, [], |r| r.get::<_, Value>(0))
        .map_err(|e| e.to_string())
}

/// The error of a statement that must fail (it runs once, with `params`), as text.
pub fn refusal<P: rusqlite::Params>(conn: &Connection, sql: &str, params: P) -> String {
    match conn.prepare(sql).and_then(|mut stmt| {
        stmt.query(params)
            .and_then(|mut rows| rows.next().map(|_| ()))
    }) {
        Ok(()) => panic!("{sql}: not refused"),
        Err(e) => e.to_string(),
    }
}

pub fn exec(conn: &Connection, sql: &str) {
    conn.execute_batch(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// One captured op as stored: kind, mask and its `v` values (trailing NULLs of narrower shapes
/// included).
#[derive(Debug, Clone, PartialEq)]
pub struct RawOp {
    pub seq: i64,
    pub table: String,
    pub kind: i64,
    pub mask: Option<i64>,
    pub values: Vec<Value>,
}

pub fn raw_ops(conn: &Connection) -> Vec<RawOp> {
    let width: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('_sync_ops') WHERE name GLOB 'v[0-9]*'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let width = width as usize;
    let vs: String = (0..width).map(|i| format!(", o.v{i}")).collect();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT o.seq, t.name, o.kind, o.mask{vs} FROM _sync_ops o
             JOIN _sync_shapes s ON s.id = o.shape JOIN _sync_tables t ON t.id = s.table_id
             ORDER BY o.seq"
        ))
        .unwrap();
    stmt.query_map([], |r| {
        Ok(RawOp {
            seq: r.get(0)?,
            table: r.get(1)?,
            kind: r.get(2)?,
            mask: r.get(3)?,
            values: (0..width).map(|i| r.get(4 + i)).collect::<Result<_, _>>()?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// `sync_log` rows as (kind, pk JSON, values JSON).
pub fn log(conn: &Connection) -> Vec<(String, String, Option<String>)> {
    let mut stmt = conn
        .prepare("SELECT kind, pk, \"values\" FROM sync_log ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Removal of ops in `sync_compact()` on (as it is by default: says so where a test needs it).
pub fn removing(conn: &Connection) {
    exec(
        conn,
        "INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_removes', 1)",
    );
}

/// Removal of ops in `sync_compact()` off: compaction points are written, every op is kept
/// (schema.rs `removal_on`), for the tests that merge with every op at hand.
pub fn keeping(conn: &Connection) {
    exec(
        conn,
        "INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_removes', 0)",
    );
}

/// Automatic compaction every `ops` applied (None: as for users, every 10,000).
pub fn compacting_every(conn: &Connection, ops: Option<u64>) {
    if let Some(ops) = ops {
        exec(
            conn,
            &format!(
                "INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_every', {ops})"
            ),
        );
    }
}

/// `sync_compact()`, and how many ops it removed.
pub fn compact_removed(d: &Device) -> i64 {
    d.conn()
        .query_row("SELECT sync_compact() ->> '$.removed'", [], |r| r.get(0))
        .unwrap()
}

pub fn op_count(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM _sync_ops", [], |r| r.get(0))
        .unwrap()
}

/// Everything a failed call must leave untouched: the schema and the whole log.
pub fn snapshot(conn: &Connection) -> (Vec<String>, Vec<RawOp>) {
    let mut stmt = conn
        .prepare(
            "SELECT type || ' ' || name || ' ' || ifnull(sql, '') FROM sqlite_schema ORDER BY name",
        )
        .unwrap();
    let schema = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let ops = if schema_has(conn, "_sync_ops") {
        raw_ops(conn)
    } else {
        vec![]
    };
    (schema, ops)
}

fn schema_has(conn: &Connection, name: &str) -> bool {
    conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        > 0
}

/// Values compared exactly: same storage class, same bits.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

pub mod bundle;
pub mod reference;

/// SplitMix64: small, fast, and the same on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }

    /// A number in 0..n (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// An index into something of length n.
    pub fn pick(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Every table's rows (user and internal), sorted, as text: the whole state of a database.
pub fn whole_state(conn: &Connection) -> Vec<String> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = Vec::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let cells: Vec<String> = (0..n)
                    .map(|i| format!("{:?}", r.get::<_, Value>(i).unwrap()))
                    .collect();
                Ok(format!("{table}: {}", cells.join(" | ")))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        out.extend(rows);
    }
    out
}

pub mod tempdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory under the system temp dir, removed on drop.
    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "sqlite-sync-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// One device of a sync scenario: a database file with the extension, `sync_init()` run, and a
/// folder for the bundles it writes.
pub struct Device {
    pub db: TestDb,
    pub name: String,
}

impl Device {
    pub fn new(name: &str, schema: &str) -> Device {
        let db = device();
        exec(&db.conn, schema);
        Device {
            db,
            name: name.to_string(),
        }
    }

    /// A device made by copying `from`'s file with `copy` (which writes the new file at the
    /// path it is given), then opened with the extension loaded.
    pub fn copied(name: &str, from: &Device, copy: impl FnOnce(&std::path::Path)) -> Device {
        let dir = tempdir::Dir::new();
        let path = dir.path().join("test.db");
        copy(&path);
        let conn = Connection::open(&path).unwrap();
        load(&conn);
        let _ = from;
        Device {
            db: TestDb { dir, conn },
            name: name.to_string(),
        }
    }

    /// Closes the device's connection, runs `f` on its file, and opens it again with the
    /// extension loaded.
    pub fn reopen_after(&mut self, f: impl FnOnce(&std::path::Path)) {
        self.db.conn = Connection::open_in_memory().unwrap();
        f(&self.db.path());
        self.db.conn = Connection::open(self.db.path()).unwrap();
        load(&self.db.conn);
    }

    pub fn conn(&self) -> &Connection {
        &self.db.conn
    }

    pub fn id(&self) -> String {
        self.conn()
            .query_row("SELECT sync_device_id()", [], |r| r.get(0))
            .unwrap()
    }

    /// Writes a bundle for `peer` (None: every op) and returns its path.
    pub fn bundle_for(&self, peer: Option<&Device>) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = self.db.dir.path().join(format!("{}-{n}.bundle", self.name));
        let peer_id = peer.map(Device::id);
        self.conn()
            .query_row(
                "SELECT sync_bundle_out(?1, ?2)",
                rusqlite::params![peer_id, path.to_str().unwrap()],
                |_| Ok(()),
            )
            .unwrap_or_else(|e| panic!("{}: sync_bundle_out: {e}", self.name));
        path
    }

    /// Writes a bundle of every op to `path`.
    pub fn bundle_to(&self, path: &std::path::Path) {
        self.conn()
            .query_row(
                "SELECT sync_bundle_out(NULL, ?1)",
                [path.to_str().unwrap()],
                |_| Ok(()),
            )
            .unwrap_or_else(|e| panic!("{}: sync_bundle_out: {e}", self.name));
    }

    /// Imports a bundle; returns the result's fields.
    pub fn import(&self, path: &std::path::Path) -> ImportResult {
        self.try_import(path)
            .unwrap_or_else(|e| panic!("{}: sync_bundle_in: {e}", self.name))
    }

    pub fn try_import(&self, path: &std::path::Path) -> Result<ImportResult, String> {
        self.conn()
            .query_row(
                "SELECT r ->> '$.applied_count', r ->> '$.conflict_count', r ->> '$.duplicate_count',
                        r ->> '$.skipped', r ->> '$.pending_count', r ->> '$.total_operations',
                        r ->> '$.discarded_count', r -> '$.waiting_for_schema',
                        r -> '$.declared_otherwise', r ->> '$.lost_count'
                 FROM (SELECT sync_bundle_in(?1) AS r)",
                [path.to_str().unwrap()],
                |r| {
                    Ok(ImportResult {
                        applied: r.get(0)?,
                        conflicts: r.get(1)?,
                        duplicates: r.get(2)?,
                        skipped: r.get::<_, i64>(3)? != 0,
                        pending: r.get(4)?,
                        total: r.get(5)?,
                        discarded: r.get(6)?,
                        waiting: r.get(7)?,
                        otherwise: r.get(8)?,
                        lost: r.get(9)?,
                    })
                },
            )
            .map_err(|e| e.to_string())
    }

    /// Every row of `table`, ordered, exactly.
    pub fn dump(&self, table: &str) -> Vec<Vec<Value>> {
        let mut stmt = self
            .conn()
            .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY 1, 2"))
            .unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// The open conflicts, in the form every device must agree on (no local/remote
    /// perspective).
    pub fn conflicts(&self) -> Vec<ConflictRow> {
        self.conflict_rows("NOT resolved")
    }

    /// The conflicts this device saw resolved (its own history: devices may differ in it).
    pub fn resolved(&self) -> Vec<ConflictRow> {
        self.conflict_rows("resolved")
    }

    fn conflict_rows(&self, filter: &str) -> Vec<ConflictRow> {
        rows(
            self.conn(),
            &format!(
                "SELECT id, table_name, pk, columns || coalesce(' ' || reason, ''),
                        coalesce(winner_op_id, ''),
                        coalesce(min(local_op_id, remote_op_id), local_op_id, ''),
                        coalesce(max(local_op_id, remote_op_id), local_op_id, ''), resolved
                 FROM sync_conflicts WHERE {filter} GROUP BY id ORDER BY id"
            ),
        )
    }

    /// The rows held out of their tables by a constraint: table, key (JSON) and reason, in
    /// order.
    pub fn held_out(&self) -> Vec<(String, String, String)> {
        rows(
            self.conn(),
            "SELECT table_name, pk, reason FROM sync_conflicts WHERE kind = 'constraint'
             ORDER BY 1, 2",
        )
    }

    pub fn clock(&self) -> String {
        self.conn()
            .query_row("SELECT sync_clock()", [], |r| r.get(0))
            .unwrap()
    }
}

/// id, table, pk, columns, winner, smaller op id, greater op id, resolved
/// A result row as a tuple of its columns (`rows`).
pub trait FromRow: Sized {
    fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Self>;
}

macro_rules! tuple_from_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t: rusqlite::types::FromSql),+> FromRow for ($($t,)+) {
            fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Self> {
                Ok(($(r.get($i)?,)+))
            }
        }
    };
}
tuple_from_row!(A 0);
tuple_from_row!(A 0, B 1);
tuple_from_row!(A 0, B 1, C 2);
tuple_from_row!(A 0, B 1, C 2, D 3);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

/// Every row of `sql`, each as a tuple of its columns.
pub fn rows<T: FromRow>(conn: &Connection, sql: &str) -> Vec<T> {
    conn.prepare(sql)
        .unwrap()
        .query_map([], T::from_row)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Sends `to` a bundle of what `from` holds and `to` is not known to have; returns the import.
/// Devices a and b with `schema` and foreign keys enforced.
pub fn enforcing(schema: &str) -> (Device, Device) {
    let (a, b) = (Device::new("a", schema), Device::new("b", schema));
    for d in [&a, &b] {
        exec(d.conn(), "PRAGMA foreign_keys = ON");
    }
    (a, b)
}

pub fn send(from: &Device, to: &Device) -> ImportResult {
    to.import(&from.bundle_for(Some(to)))
}

pub type ConflictRow = (String, String, String, String, String, String, String, i64);

#[derive(Debug, Clone, PartialEq)]
pub struct ImportResult {
    pub applied: i64,
    pub conflicts: i64,
    pub duplicates: i64,
    pub skipped: bool,
    pub pending: i64,
    pub total: i64,
    pub discarded: i64,
    /// `waiting_for_schema`, as JSON
    pub waiting: String,
    /// `declared_otherwise`, as JSON
    pub otherwise: String,
    /// `lost_count`
    pub lost: i64,
}

/// The tables of the random convergence suite (tests/convergence.rs) as its last new device
/// declares them (with the column a later version adds to `t_int`, and `t_late`), every one
/// synced: for the bundles that suite found faults with, kept in tests/fixtures.
pub const SUITE_TABLES: &str = "
    CREATE TABLE t_int(id INTEGER PRIMARY KEY, a, b, c, d DEFAULT 7);
    CREATE TABLE t_text(k TEXT PRIMARY KEY, a, b REAL);
    CREATE TABLE t_comp(x INTEGER, y TEXT, v, w BLOB, PRIMARY KEY (x, y)) WITHOUT ROWID;
    CREATE TABLE t_ref(id INTEGER PRIMARY KEY, parent INTEGER REFERENCES t_ref(id),
                       u INTEGER UNIQUE, lo INTEGER, hi INTEGER, CHECK (lo <= hi));
    CREATE TABLE t_child(id INTEGER PRIMARY KEY,
                         ref INTEGER REFERENCES t_ref(id) ON DELETE CASCADE, w INTEGER UNIQUE);
    CREATE TABLE t_late(id INTEGER PRIMARY KEY, a, b);
    SELECT sync_enable('t_int'); SELECT sync_enable('t_text'); SELECT sync_enable('t_comp');
    SELECT sync_enable('t_ref'); SELECT sync_enable('t_child'); SELECT sync_enable('t_late');";

/// The path of `name` in tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
