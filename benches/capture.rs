//! Capture cost against plain SQLite, measured in one run on the same work: the extension is
//! loaded from dist/sync0.so into rusqlite's bundled SQLite, and every figure is the median of
//! several runs on a fresh database file. Run with `make bench`.

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ROWS: i64 = 100_000;
const RUNS: usize = 5;

fn extension() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dist/sync0.so")
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    /// plain, plus one AFTER trigger per write kind that does nothing (`WHEN 0`): the fixed price
    /// SQLite charges for any trigger, shown as the floor of trigger-based capture
    EmptyTriggers,
    Synced,
}

/// A fresh database with `t(id INTEGER PRIMARY KEY, title TEXT, n INTEGER)` holding `rows` rows.
fn fresh(dir: &Path, mode: Mode, rows: i64) -> Connection {
    let path = dir.join("bench.db");
    let _ = std::fs::remove_file(&path);
    let conn = Connection::open(&path).unwrap();
    unsafe {
        conn.load_extension_enable().unwrap();
        conn.load_extension(extension(), Some("sqlite3_sync_init"))
            .unwrap();
    }
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, title TEXT, n INTEGER)")
        .unwrap();
    match mode {
        Mode::Plain => {}
        Mode::EmptyTriggers => {
            for event in ["INSERT", "UPDATE", "DELETE"] {
                conn.execute_batch(&format!(
                    "CREATE TRIGGER empty_{event} AFTER {event} ON t WHEN 0 BEGIN SELECT 1; END"
                ))
                .unwrap();
            }
        }
        Mode::Synced => conn
            .execute_batch("SELECT sync_init(); SELECT sync_enable('t');")
            .unwrap(),
    }
    if rows > 0 {
        conn.execute_batch(&insert_all(rows)).unwrap();
    }
    conn
}

fn insert_all(rows: i64) -> String {
    format!(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {rows})
         INSERT INTO t SELECT i, 'title number ' || i, i * 7 FROM c"
    )
}

struct Work {
    name: &'static str,
    /// rows already in the table before the timed part
    preload: i64,
    run: fn(&Connection),
}

const WORK: &[Work] = &[
    Work {
        name: "100k inserts, one statement",
        preload: 0,
        run: |c| c.execute_batch(&insert_all(ROWS)).unwrap(),
    },
    Work {
        name: "100k single-row inserts, one transaction",
        preload: 0,
        run: |c| {
            c.execute_batch("BEGIN").unwrap();
            let mut stmt = c.prepare("INSERT INTO t VALUES (?1, ?2, ?3)").unwrap();
            for i in 1..=ROWS {
                stmt.execute(rusqlite::params![i, format!("title number {i}"), i * 7])
                    .unwrap();
            }
            drop(stmt);
            c.execute_batch("COMMIT").unwrap();
        },
    },
    Work {
        name: "100k updates of one column, one statement",
        preload: ROWS,
        run: |c| c.execute_batch("UPDATE t SET n = n + 1").unwrap(),
    },
    Work {
        name: "100k deletes, one statement",
        preload: ROWS,
        // a WHERE clause keeps plain SQLite from truncating the table wholesale
        run: |c| c.execute_batch("DELETE FROM t WHERE n >= 0").unwrap(),
    },
];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn measure(dir: &Path, work: &Work, mode: Mode) -> Duration {
    let times = (0..RUNS)
        .map(|_| {
            let conn = fresh(dir, mode, work.preload);
            let start = Instant::now();
            (work.run)(&conn);
            start.elapsed()
        })
        .collect();
    median(times)
}

fn main() {
    assert!(extension().exists(), "run `make` first");
    let dir = std::env::temp_dir().join(format!("sqlite-sync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "| work (3-column table) | plain | plain + empty triggers | sync-enabled | sync / plain |"
    );
    println!("|---|---:|---:|---:|---:|");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for work in WORK {
        let plain = measure(&dir, work, Mode::Plain);
        let empty = measure(&dir, work, Mode::EmptyTriggers);
        let synced = measure(&dir, work, Mode::Synced);
        println!(
            "| {} | {:.1} ms | {:.1} ms ({:.2}x) | {:.1} ms | {:.2}x |",
            work.name,
            ms(plain),
            ms(empty),
            ms(empty) / ms(plain),
            ms(synced),
            ms(synced) / ms(plain)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
