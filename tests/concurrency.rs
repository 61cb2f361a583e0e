//! Concurrency: while one connection imports a large bundle, another connection (a thread of this
//! process, with the extension loaded) and another process (this test binary again, running
//! `child_writer`, without the extension) keep writing to the synced table of the same database
//! file in WAL mode, each with a busy timeout. Afterwards every write is in the log exactly once,
//! every op of the bundle is applied, and after a final exchange both devices show the same rows
//! and the same conflicts.
//!
//! The thread updates rows that the bundle updates too (concurrent edits of one column, some
//! before the import and so in conflict, some after it and so causally later); the child inserts
//! rows of its own.
//!
//! And imports on three connections at once (two of the same bundle): each waits for the others,
//! the same bundle is applied once and skipped once.

mod common;

use common::*;
use rusqlite::Connection;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SCHEMA: &str = "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, n INTEGER);
                      SELECT sync_enable('items');";
/// Rows device a writes in its large bundle.
const ROWS: i64 = 200_000;
/// Rows b has from a before the large import, and that both devices update.
const SHARED: i64 = 1_000;
/// First id of the rows the child process inserts.
const CHILD_IDS: i64 = 10_000_000;
const BUSY_MS: u64 = 120_000;

/// A writer in another process, from its environment: `SYNC_WRITER_DB` (the database) and
/// `SYNC_WRITER_STOP` (a path: it stops once that exists). Inserts one row at a time, each in
/// its own transaction, and prints how many. Without the environment it does nothing.
#[test]
fn child_writer() {
    let (Ok(db), Ok(stop)) = (
        std::env::var("SYNC_WRITER_DB"),
        std::env::var("SYNC_WRITER_STOP"),
    ) else {
        return;
    };
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_millis(BUSY_MS)).unwrap();
    let mut written = 0;
    // stop also when the test that started this process is gone (it failed before saying so)
    let parent = std::os::unix::process::parent_id();
    let started = Instant::now();
    while !Path::new(&stop).exists()
        && std::os::unix::process::parent_id() == parent
        && started.elapsed() < Duration::from_secs(300)
    {
        conn.execute(
            "INSERT INTO items VALUES (?1, 'child', ?1)",
            [CHILD_IDS + written],
        )
        .unwrap();
        written += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("written {written}");
}

/// Rows of `items` whose id is at least `from`, as `conn` sees them.
fn rows_from(conn: &Connection, from: i64) -> i64 {
    conn.query_row("SELECT count(*) FROM items WHERE id >= ?1", [from], |r| {
        r.get(0)
    })
    .unwrap()
}

/// Waits until `done` holds (polling), failing after a minute.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited too long for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn writers_on_other_connections_and_processes_during_a_large_import() {
    let (a, b) = (Device::new("a", SCHEMA), Device::new("b", SCHEMA));
    compacting_every(b.conn(), Some(0)); // (b's log is counted whole below)
    exec(
        a.conn(),
        &format!(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {SHARED})
             INSERT INTO items SELECT i, 'a', 0 FROM k;"
        ),
    );
    b.import(&a.bundle_for(Some(&b)));
    exec(
        a.conn(),
        &format!(
            "UPDATE items SET n = -1;
             WITH RECURSIVE k(i) AS (SELECT {SHARED} + 1 UNION ALL SELECT i + 1 FROM k WHERE i < {ROWS})
             INSERT INTO items SELECT i, 'a', i FROM k;"
        ),
    );
    let large = a.bundle_for(Some(&b));
    let db = b.db.path();
    exec(b.conn(), "PRAGMA journal_mode = WAL");
    b.conn()
        .busy_timeout(Duration::from_millis(BUSY_MS))
        .unwrap();

    // the thread: updates shared rows one at a time, with the extension loaded
    let stop = Arc::new(AtomicBool::new(false));
    let updates = Arc::new(AtomicU64::new(0));
    let overlapping = Arc::new(AtomicU64::new(0));
    let import_span: Arc<std::sync::Mutex<Option<(Instant, Instant)>>> = Default::default();
    let thread = {
        let (db, stop, updates) = (db.clone(), stop.clone(), updates.clone());
        let (overlapping, import_span) = (overlapping.clone(), import_span.clone());
        std::thread::spawn(move || {
            let conn = Connection::open(&db).unwrap();
            load(&conn);
            conn.busy_timeout(Duration::from_millis(BUSY_MS)).unwrap();
            let mut spans = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let i = updates.load(Ordering::SeqCst) as i64;
                let start = Instant::now();
                conn.execute(
                    "UPDATE items SET n = ?1 WHERE id = ?2",
                    [1_000_000 + i, 1 + i % SHARED],
                )
                .unwrap();
                spans.push((start, Instant::now()));
                updates.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(1));
            }
            let (from, to) = import_span.lock().unwrap().expect("the import ran");
            let during = spans.iter().filter(|(s, e)| *s < to && *e > from).count();
            overlapping.store(during as u64, Ordering::SeqCst);
        })
    };

    // the other process: inserts rows of its own, without the extension
    let stop_file = b.db.dir.path().join("stop");
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_writer",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("SYNC_WRITER_DB", &db)
        .env("SYNC_WRITER_STOP", &stop_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // both write before the import starts, while it runs, and after it ends
    wait_for("writes before the import", || {
        updates.load(Ordering::SeqCst) >= 20 && rows_from(b.conn(), CHILD_IDS) >= 20
    });
    let start = Instant::now();
    let result = b.import(&large);
    *import_span.lock().unwrap() = Some((start, Instant::now()));
    let (updates_then, child_rows_then) = (
        updates.load(Ordering::SeqCst),
        rows_from(b.conn(), CHILD_IDS),
    );
    wait_for("writes after the import", || {
        updates.load(Ordering::SeqCst) >= updates_then + 20
            && rows_from(b.conn(), CHILD_IDS) >= child_rows_then + 20
    });
    stop.store(true, Ordering::SeqCst);
    std::fs::write(&stop_file, b"").unwrap();
    thread.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the writer process failed");
    let out = String::from_utf8_lossy(&out.stdout);
    // (the harness prints the test's name on the same line)
    let child_writes: i64 = out
        .split("written ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the writer process reports its writes")
        .parse()
        .unwrap();
    let thread_writes = updates.load(Ordering::SeqCst) as i64;
    eprintln!(
        "concurrency: {child_writes} writes of the other process, {thread_writes} of the thread, \
         {} of them waiting for the import, {} conflicts; import {:?}",
        overlapping.load(Ordering::SeqCst),
        result.conflicts,
        import_span.lock().unwrap().map(|(s, e)| e - s).unwrap()
    );
    assert!(
        overlapping.load(Ordering::SeqCst) >= 1,
        "a write of the thread waited for the import"
    );

    // every op of the bundle applied (an update of each shared row, an insert of each other
    // row), none waiting
    assert_eq!((result.applied, result.pending), (ROWS, 0), "{result:?}");
    // every write in b's log exactly once: the child's inserts one op per row, the thread's
    // updates one op each (each wrote a value no earlier write had)
    let b_id = b.id();
    let count = |sql: &str| -> i64 {
        b.conn()
            .query_row(sql, [&b_id], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    assert_eq!(rows_from(b.conn(), CHILD_IDS), child_writes);
    assert_eq!(
        count(&format!(
            "SELECT count(DISTINCT pk) FROM sync_log WHERE device = ?1 AND kind = 'insert'
             AND pk ->> '$.id' >= {CHILD_IDS}"
        )),
        child_writes
    );
    assert_eq!(
        count("SELECT count(*) FROM sync_log WHERE device = ?1 AND kind = 'insert'"),
        child_writes
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM sync_log WHERE device = ?1 AND kind = 'update'
             AND \"values\" ->> '$.n' >= 1000000"
        ),
        thread_writes
    );
    assert_eq!(
        count("SELECT count(*) FROM sync_log WHERE device = ?1"),
        child_writes + thread_writes
    );
    assert_eq!(
        count("SELECT count(DISTINCT seq) FROM sync_log WHERE device = ?1"),
        child_writes + thread_writes,
        "seqs are distinct"
    );

    // a final exchange: the same rows and the same conflicts on both devices
    a.import(&b.bundle_for(Some(&a)));
    b.import(&a.bundle_for(Some(&b)));
    assert_eq!(a.dump("items"), b.dump("items"));
    assert_eq!(a.conflicts(), b.conflicts());
    assert_eq!(a.clock(), b.clock());
    assert_eq!(
        a.dump("items").len() as i64,
        ROWS + child_writes,
        "every row of both"
    );
}

/// Three connections import at once: two the same bundle, one a bundle of another device. Each
/// import waits for the others' (busy timeout); the same bundle is applied once and skipped
/// once, and the database ends with every row of both devices.
#[test]
fn imports_on_three_connections_at_once() {
    let (a, c, b) = (
        Device::new("a", SCHEMA),
        Device::new("c", SCHEMA),
        Device::new("b", SCHEMA),
    );
    for (device, from) in [(&a, 1), (&c, 100_001)] {
        exec(
            device.conn(),
            &format!(
                "WITH RECURSIVE k(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM k
                                         WHERE i < {from} + 49999)
                 INSERT INTO items SELECT i, 'x', i FROM k;"
            ),
        );
    }
    let (from_a, from_c) = (a.bundle_for(None), c.bundle_for(None));
    exec(b.conn(), "PRAGMA journal_mode = WAL");
    let start = Arc::new(std::sync::Barrier::new(3));
    let imports: Vec<_> = [&from_a, &from_a, &from_c]
        .into_iter()
        .map(|bundle| {
            let (db, bundle, start) = (b.db.path(), bundle.clone(), start.clone());
            std::thread::spawn(move || {
                let conn = Connection::open(&db).unwrap();
                load(&conn);
                conn.busy_timeout(Duration::from_millis(BUSY_MS)).unwrap();
                start.wait();
                conn.query_row(
                    "SELECT r ->> '$.applied_count', r ->> '$.skipped'
                     FROM (SELECT sync_bundle_in(?1) AS r)",
                    [bundle.to_str().unwrap()],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?)),
                )
                .unwrap()
            })
        })
        .collect();
    let mut results: Vec<(i64, bool)> = imports.into_iter().map(|t| t.join().unwrap()).collect();
    results.sort();
    assert_eq!(results, [(0, true), (50_000, false), (50_000, false)]);
    assert_eq!(b.dump("items").len(), 100_000);
    let rows = |d: &Device| d.dump("items");
    assert_eq!(rows(&b)[..50_000], rows(&a)[..]);
    assert_eq!(rows(&b)[50_000..], rows(&c)[..]);
}

/// An import while another connection holds the database says so (not a fault of the bundle,
/// which it names), and what to do; it imports nothing, and the same call works once that
/// connection is done.
#[test]
fn an_import_while_another_connection_writes_says_so_and_works_again() {
    let (a, b) = (Device::new("a", SCHEMA), Device::new("b", SCHEMA));
    exec(a.conn(), "INSERT INTO items VALUES (1, 'one', 1)");
    let bundle = a.bundle_for(Some(&b));
    let other = Connection::open(b.db.path()).unwrap();
    exec(
        &other,
        "BEGIN IMMEDIATE; INSERT INTO items VALUES (2, 'two', 2)",
    );
    b.conn().busy_timeout(Duration::ZERO).unwrap();
    let e = b.try_import(&bundle).unwrap_err();
    assert!(
        e.contains("another connection holds the database (nothing was imported: call it again"),
        "{e}"
    );
    exec(&other, "ROLLBACK");
    assert_eq!(b.try_import(&bundle).unwrap().applied, 1);
    assert_eq!(b.dump("items"), a.dump("items"));
}
