//! Bundles against plain SQLite, measured in one run: writing a bundle of N ops, importing it
//! into an empty device, and plain inserts of the same rows; then re-importing a seen bundle.
//! Run with `make bench` (N = 100,000) or `cargo bench --bench import -- N`.

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn extension() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dist/sync0.so")
}

const SCHEMA: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, title TEXT, n INTEGER)";

fn open(path: &Path, synced: bool) -> Connection {
    let _ = std::fs::remove_file(path);
    let conn = Connection::open(path).unwrap();
    unsafe {
        conn.load_extension_enable().unwrap();
        conn.load_extension(extension(), Some("sqlite3_sync_init"))
            .unwrap();
    }
    conn.execute_batch(SCHEMA).unwrap();
    if synced {
        conn.execute_batch("SELECT sync_init(); SELECT sync_enable('t');")
            .unwrap();
    }
    conn
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}

fn main() {
    assert!(extension().exists(), "run `make` first");
    let n: i64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("sqlite-sync-bench-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = dir.join("b.bundle");

    let source = open(&dir.join("a.db"), true);
    source
        .execute_batch(&format!(
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {n})
             INSERT INTO t SELECT i, 'title number ' || i, i * 7 FROM c"
        ))
        .unwrap();
    let (bytes, out_s) = timed(|| {
        source
            .query_row(
                "SELECT sync_bundle_out(NULL, ?1) ->> '$.bytes'",
                [bundle.to_str().unwrap()],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
    });

    let plain = open(&dir.join("plain.db"), false);
    let (_, plain_s) = timed(|| {
        plain.execute_batch("BEGIN").unwrap();
        let mut stmt = plain.prepare("INSERT INTO t VALUES (?1, ?2, ?3)").unwrap();
        for i in 1..=n {
            stmt.execute(rusqlite::params![i, format!("title number {i}"), i * 7])
                .unwrap();
        }
        drop(stmt);
        plain.execute_batch("COMMIT").unwrap();
    });

    let target = open(&dir.join("b.db"), true);
    let import = |conn: &Connection| {
        conn.query_row(
            "SELECT sync_bundle_in(?1) ->> '$.applied_count'",
            [bundle.to_str().unwrap()],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
    };
    let (applied, in_s) = timed(|| import(&target));
    assert_eq!(applied, n);
    let (_, again_s) = timed(|| import(&target));

    let rate = |s: f64| n as f64 / s;
    println!("| work ({n} ops, 3-column rows) | time | ops/s | vs plain inserts |");
    println!("|---|---:|---:|---:|");
    println!(
        "| plain inserts, one transaction | {:.0} ms | {:.0} | 1.00x |",
        plain_s * 1e3,
        rate(plain_s)
    );
    println!(
        "| sync_bundle_out (bundle {:.1} MB, {:.1} bytes/op) | {:.0} ms | {:.0} | {:.2}x |",
        bytes as f64 / 1e6,
        bytes as f64 / n as f64,
        out_s * 1e3,
        rate(out_s),
        rate(out_s) / rate(plain_s)
    );
    println!(
        "| sync_bundle_in, empty device | {:.0} ms | {:.0} | {:.2}x |",
        in_s * 1e3,
        rate(in_s),
        rate(in_s) / rate(plain_s)
    );
    println!(
        "| sync_bundle_in, same bundle again (skipped) | {:.1} ms | | |",
        again_s * 1e3
    );
    let _ = std::fs::remove_dir_all(&dir);
}
