//! The benchmark harness behind `make bench` (and `make bench-quick`, at a tenth of the sizes):
//! every figure next to its plain-SQLite baseline, measured in the same run on the same work.
//!
//! The extension is loaded from dist/sync0.so into rusqlite's bundled SQLite; every measurement
//! starts from fresh database files in the system temp directory. Small works are the median of
//! RUNS runs; the bundle figures are the median of BIG_RUNS runs per size.

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Instant;

const RUNS: usize = 5;
/// Runs of each size of the bundle figures (a million ops take seconds per run).
const BIG_RUNS: usize = 3;

#[path = "tables/compaction.rs"]
mod compaction;

fn extension() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dist/sync0.so")
}

/// A table shape under test.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    create: &'static str,
    /// SQL expression of row i's values, over `i`
    row: &'static str,
    /// the same over the parameter `?1`, for single-row inserts
    values: &'static str,
    /// SQL of a one-column update of every row
    update: &'static str,
}

const THREE: Shape = Shape {
    name: "3 columns, INTEGER key",
    create: "CREATE TABLE t(id INTEGER PRIMARY KEY, title TEXT, n INTEGER)",
    row: "i, 'title number ' || i, i * 7",
    values: "?1, 'title number ' || ?1, ?1 * 7",
    update: "UPDATE t SET n = n + 1",
};
const TEXT_KEY: Shape = Shape {
    name: "3 columns, TEXT key",
    create: "CREATE TABLE t(id TEXT PRIMARY KEY, title TEXT, n INTEGER)",
    row: "'key-' || i, 'title number ' || i, i * 7",
    values: "'key-' || ?1, 'title number ' || ?1, ?1 * 7",
    update: "UPDATE t SET n = n + 1",
};
const TEN: Shape = Shape {
    name: "10 columns, INTEGER key",
    create: "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INTEGER, c REAL, d TEXT, e INTEGER,
                           f REAL, g TEXT, h INTEGER, j BLOB)",
    row: "i, 'a' || i, i, i * 0.5, 'd' || i, i * 3, i / 7.0, 'g', i % 10, x'00ff00ff'",
    values: "?1, 'a' || ?1, ?1, ?1 * 0.5, 'd' || ?1, ?1 * 3, ?1 / 7.0, 'g', ?1 % 10, x'00ff00ff'",
    update: "UPDATE t SET e = e + 1",
};

fn open(path: &Path, shape: &Shape, synced: bool) -> Connection {
    let _ = std::fs::remove_file(path);
    let conn = load(path);
    conn.execute_batch(shape.create).unwrap();
    if synced {
        conn.execute_batch("SELECT sync_init(); SELECT sync_enable('t');")
            .unwrap();
    }
    conn
}

/// A connection to the database at `path` (created when missing), the extension loaded.
fn load(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    unsafe {
        conn.load_extension_enable().unwrap();
        conn.load_extension(extension(), Some("sqlite3_sync_init"))
            .unwrap();
    }
    conn
}

fn device_id(conn: &Connection) -> String {
    conn.query_row("SELECT sync_device_id()", [], |r| r.get(0))
        .unwrap()
}

fn fill(conn: &Connection, shape: &Shape, from: u64, to: u64) {
    fill_range(conn, shape, from as i64, to as i64)
}

fn fill_range(conn: &Connection, shape: &Shape, from: i64, to: i64) {
    conn.execute_batch(&format!(
        "WITH RECURSIVE c(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM c WHERE i < {to})
         INSERT INTO t SELECT {} FROM c",
        shape.row
    ))
    .unwrap();
}

/// Single-row inserts of rows 1..=n of THREE in one transaction, through one prepared INSERT.
fn insert_rows(conn: &Connection, n: u64) {
    conn.execute_batch("BEGIN").unwrap();
    let mut stmt = conn.prepare("INSERT INTO t VALUES (?1, ?2, ?3)").unwrap();
    for i in 1..=n as i64 {
        stmt.execute(rusqlite::params![i, format!("title number {i}"), i * 7])
            .unwrap();
    }
    drop(stmt);
    conn.execute_batch("COMMIT").unwrap();
}

fn seconds<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Peak resident memory of this process since the last reset, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct Bench {
    dir: PathBuf,
    rows: u64,
    big: u64,
}

impl Bench {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn row(&self, work: &str, plain: f64, synced: f64, unit: &str) {
        let (p, s) = match unit {
            "ms" => (
                format!("{:.1} ms", plain * 1e3),
                format!("{:.1} ms", synced * 1e3),
            ),
            _ => (format!("{plain:.0}"), format!("{synced:.0}")),
        };
        println!("| {work} | {p} | {s} | {:.2}x |", synced / plain);
    }

    /// Median time of `work` on a fresh table holding `preload` rows: plain; with do-nothing
    /// triggers (the floor any trigger-based capture pays); with triggers that append an empty
    /// row to a log table (the floor of any capture that keeps one log row per change); synced.
    fn capture(&self, shape: &Shape, work: &str, preload: u64, run: impl Fn(&Connection)) {
        let time = |mode: u8| {
            median(
                (0..RUNS)
                    .map(|_| {
                        let conn = open(&self.path("capture.db"), shape, mode == 3);
                        let body = match mode {
                            1 => Some("SELECT 1 WHERE 0;"),
                            2 => Some("INSERT INTO floor_log VALUES (NULL);"),
                            _ => None,
                        };
                        if let Some(body) = body {
                            conn.execute_batch(&format!(
                                "CREATE TABLE floor_log(seq INTEGER PRIMARY KEY);
                                 CREATE TRIGGER fi AFTER INSERT ON t BEGIN {body} END;
                                 CREATE TRIGGER fu AFTER UPDATE ON t BEGIN {body} END;
                                 CREATE TRIGGER fd AFTER DELETE ON t BEGIN {body} END;",
                            ))
                            .unwrap();
                        }
                        if preload > 0 {
                            fill(&conn, shape, 1, preload);
                        }
                        seconds(|| run(&conn)).1
                    })
                    .collect(),
            )
        };
        let (plain, floor, append, synced) = (time(0), time(1), time(2), time(3));
        let ms = |s: f64| format!("{:.1} ms ({:.2}x)", s * 1e3, s / plain);
        println!(
            "| {work} ({}) | {:.1} ms | {} | {} | {:.1} ms | {:.2}x |",
            shape.name,
            plain * 1e3,
            ms(floor),
            ms(append),
            synced * 1e3,
            synced / plain
        );
    }

    fn capture_table(&self) {
        let n = self.rows;
        println!("\n### 1. Capture: {n} rows, median of {RUNS} (plain vs sync-enabled)\n");
        println!(
            "| work | plain | empty triggers (floor) | triggers appending an empty row | synced | ratio |\n|---|---:|---:|---:|---:|---:|"
        );
        for shape in [THREE, TEXT_KEY, TEN] {
            self.capture(&shape, "inserts, one statement", 0, |c| {
                fill(c, &shape, 1, n)
            });
            self.capture(&shape, "single-row inserts, one transaction", 0, |c| {
                c.execute_batch("BEGIN").unwrap();
                let mut stmt = c
                    .prepare(&format!("INSERT INTO t VALUES ({})", shape.values))
                    .unwrap();
                for i in 1..=n {
                    stmt.execute([i as i64]).unwrap();
                }
                drop(stmt);
                c.execute_batch("COMMIT").unwrap();
            });
            self.capture(&shape, "updates of one column", n, |c| {
                c.execute_batch(shape.update).unwrap()
            });
            // ad-hoc SQL (the shell, an ORM without a statement cache): every statement is
            // compiled, and with it the triggers it fires
            let each = n * 3 / 10;
            let work = format!("{each} one-row updates, each prepared anew, one transaction");
            self.capture(&shape, &work, n, |c| {
                c.execute_batch("BEGIN").unwrap();
                for i in 1..=each {
                    let sql = format!("{} WHERE rowid = {}", shape.update, i * 3);
                    c.execute(&sql, []).unwrap();
                }
                c.execute_batch("COMMIT").unwrap();
            });
            // a WHERE clause keeps plain SQLite from dropping the table's pages wholesale
            self.capture(&shape, "deletes", n, |c| {
                c.execute_batch("DELETE FROM t WHERE rowid > 0 OR rowid <= 0")
                    .unwrap()
            });
        }
    }

    fn bundle_out(conn: &Connection, peer: Option<&str>, path: &Path) -> (i64, i64) {
        conn.query_row(
            "SELECT r ->> '$.ops', r ->> '$.bytes' FROM (SELECT sync_bundle_out(?1, ?2) AS r)",
            rusqlite::params![peer, path.to_str().unwrap()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    }

    /// A peer-aware bundle from `from` for `peer`, imported into `to`, through `bundle`;
    /// returns the seconds of the import.
    fn send(from: &Connection, to: &Connection, peer: &str, bundle: &Path) -> f64 {
        let _ = std::fs::remove_file(bundle);
        Self::bundle_out(from, Some(peer), bundle);
        seconds(|| Self::bundle_in(to, bundle)).1
    }

    fn bundle_in(conn: &Connection, path: &Path) -> i64 {
        conn.query_row(
            "SELECT sync_bundle_in(?1) ->> '$.applied_count'",
            [path.to_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// Plain single-row inserts of rows 1..=n of THREE in one transaction.
    fn plain_inserts(&self, n: u64) -> f64 {
        let conn = open(&self.path("plain.db"), &THREE, false);
        seconds(|| insert_rows(&conn, n)).1
    }

    fn bundles_table(&self) {
        println!("\n### 2, 3, 5, 6, 7. Bundles of a 3-column table, median of {BIG_RUNS} runs per size\n");
        println!("| ops | plain inserts | bundle_out | bytes/op (row bytes) | bundle_in, empty device | in / plain | bundle_in, half already present (bundle ops/s) | peak RSS out / in | db size / plain: writer, receiver |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for n in [self.big / 100, self.big / 10, self.big] {
            let runs: Vec<[f64; 10]> = (0..BIG_RUNS).map(|_| self.bundles_run(n)).collect();
            let m = |i: usize| median(runs.iter().map(|r| r[i]).collect());
            let rate = |s: f64| n as f64 / s;
            println!(
                "| {n} | {:.0} ops/s | {:.0} ops/s | {:.1} ({:.1}) | {:.0} ops/s | {:.2}x | {:.0} ops/s | {:.0} / {:.0} MiB | {:.2}x, {:.2}x |",
                rate(m(0)),
                rate(m(1)),
                m(2),
                m(3),
                rate(m(4)),
                median(runs.iter().map(|r| r[0] / r[4]).collect()),
                rate(m(5)),
                m(6),
                m(7),
                m(8),
                m(9),
            );
        }
    }

    /// One run of figures 2, 3, 5 and 6 at `n` ops: plain insert seconds, bundle_out seconds,
    /// bundle bytes per op, row bytes, bundle_in seconds (empty device), bundle_in seconds (half
    /// present), peak RSS out and in (MiB), writer and receiver size over plain.
    fn bundles_run(&self, n: u64) -> [f64; 10] {
        let (first, all) = (self.path("first.bundle"), self.path("all.bundle"));
        let _ = (std::fs::remove_file(&first), std::fs::remove_file(&all));
        let src = open(&self.path("source.db"), &THREE, true);
        fill(&src, &THREE, 1, n / 2);
        Self::bundle_out(&src, None, &first);
        fill(&src, &THREE, n / 2 + 1, n);
        let row_bytes: f64 = src
            .query_row("SELECT avg(8 + length(title) + 4) FROM t", [], |r| r.get(0))
            .unwrap();
        let writer_size = std::fs::metadata(self.path("source.db")).unwrap().len() as f64;
        reset_peak_rss();
        let ((ops, bytes), out_s) = seconds(|| Self::bundle_out(&src, None, &all));
        let rss_out = peak_rss_mib();
        assert_eq!(ops as u64, n);

        let plain_s = self.plain_inserts(n);
        let plain_size = std::fs::metadata(self.path("plain.db")).unwrap().len() as f64;

        let dst = open(&self.path("dst.db"), &THREE, true);
        reset_peak_rss();
        let (applied, in_s) = seconds(|| Self::bundle_in(&dst, &all));
        let rss_in = peak_rss_mib();
        assert_eq!(applied as u64, n);
        let synced_size = std::fs::metadata(self.path("dst.db")).unwrap().len() as f64;

        let half = open(&self.path("half.db"), &THREE, true);
        Self::bundle_in(&half, &first);
        let (applied, half_s) = seconds(|| Self::bundle_in(&half, &all));
        assert_eq!(applied as u64, n - n / 2);
        [
            plain_s,
            out_s,
            bytes as f64 / n as f64,
            row_bytes,
            in_s,
            half_s,
            rss_out,
            rss_in,
            writer_size / plain_size,
            synced_size / plain_size,
        ]
    }

    /// Figure 4: work that must not grow with the log.
    fn log_size_table(&self) {
        let n = self.big;
        println!(
            "\n### 4. Cost that must follow new ops, not the log ({n}-op log), median of {RUNS}\n"
        );
        println!("| work | empty log | {n}-op log | ratio |\n|---|---:|---:|---:|");
        let new_ops = |src: &Connection, dst: &Connection, from: u64| -> f64 {
            let (src_id, dst_id) = (device_id(src), device_id(dst));
            let runs = (0..RUNS as u64).map(|run| {
                // dst tells src what it has, then src writes 1,000 rows and bundles them for dst
                let back = self.path("back.bundle");
                let _ = std::fs::remove_file(&back);
                Self::bundle_out(dst, Some(&src_id), &back);
                Self::bundle_in(src, &back);
                let first = from + run * 1000 + 1;
                fill(src, &THREE, first, first + 999);
                let out = self.path("new.bundle");
                let _ = std::fs::remove_file(&out);
                let ((ops, _), s) = seconds(|| Self::bundle_out(src, Some(&dst_id), &out));
                assert_eq!(ops, 1000);
                Self::bundle_in(dst, &out);
                s
            });
            median(runs.collect())
        };
        // (no automatic compaction: its compaction point would be one op more in the bundle
        // of 1,000 the table measures)
        let device = |name: &str| {
            let conn = open(&self.path(name), &THREE, true);
            conn.execute_batch(
                "INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_every', 0)",
            )
            .unwrap();
            conn
        };
        let small_src = device("s-src.db");
        let small_dst = device("s-dst.db");
        let small = new_ops(&small_src, &small_dst, 0);

        let src = device("source.db");
        fill(&src, &THREE, 1, n);
        let all = self.path("all.bundle");
        let _ = std::fs::remove_file(&all);
        Self::bundle_out(&src, None, &all);
        let dst = device("dst.db");
        Self::bundle_in(&dst, &all);
        let large = new_ops(&src, &dst, n);
        self.row("sync_bundle_out of 1,000 new ops", small, large, "ms");
        let (_, again) = seconds(|| Self::bundle_in(&dst, &all));
        println!(
            "| sync_bundle_in of the {n}-op bundle again (skipped) | | {:.1} ms | |",
            again * 1e3
        );
    }
}

impl Bench {
    /// Figure 8: a device that has received ops from 100 devices, against one that has not.
    fn many_devices_table(&self) {
        let (devices, per_device, n) = (100, 100, self.rows);
        println!(
            "\n### 8. A device that has received ops from {devices} devices ({per_device} rows each), median of {RUNS}\n"
        );
        println!(
            "| work | single-device log | after {devices} devices | ratio |\n|---|---:|---:|---:|"
        );
        let sources: Vec<PathBuf> = (0..devices)
            .map(|d| {
                let src = open(&self.path("many-src.db"), &THREE, true);
                // keys below the new rows' (negative), so that those are appended in both cases
                let from = -1_000_000 + (d * per_device) as i64;
                fill_range(&src, &THREE, from, from + per_device as i64 - 1);
                let bundle = self.path(&format!("many-{d}.bundle"));
                let _ = std::fs::remove_file(&bundle);
                Self::bundle_out(&src, None, &bundle);
                bundle
            })
            .collect();
        // each run: a fresh device (after the imports, or not), then n single-row inserts
        let measure = |received: bool| {
            let runs: Vec<(f64, f64, f64)> = (0..RUNS)
                .map(|_| {
                    let conn = open(&self.path("many.db"), &THREE, true);
                    if received {
                        for bundle in &sources {
                            Self::bundle_in(&conn, bundle);
                        }
                    }
                    let size = |c: &Connection| -> f64 {
                        c.query_row(
                            "SELECT sum(pgsize) FROM dbstat WHERE name LIKE '_sync_ops%'",
                            [],
                            |r| r.get(0),
                        )
                        .unwrap()
                    };
                    let before = size(&conn);
                    let s = seconds(|| insert_rows(&conn, n)).1;
                    let log_bytes = (size(&conn) - before) / n as f64;
                    let peer: String = {
                        let other = open(&self.path("many-peer.db"), &THREE, true);
                        let id = device_id(&other);
                        // the peer says it has everything this device received: only the new ops go
                        let back = self.path("many-back.bundle");
                        let _ = std::fs::remove_file(&back);
                        for bundle in sources.iter().filter(|_| received) {
                            Self::bundle_in(&other, bundle);
                        }
                        Self::bundle_out(&other, None, &back);
                        Self::bundle_in(&conn, &back);
                        id
                    };
                    let out = self.path("many-out.bundle");
                    let _ = std::fs::remove_file(&out);
                    let (ops, bytes) = Self::bundle_out(&conn, Some(&peer), &out);
                    assert_eq!(ops as u64, n);
                    (s, log_bytes, bytes as f64 / n as f64)
                })
                .collect();
            let pick = |f: fn(&(f64, f64, f64)) -> f64| median(runs.iter().map(f).collect());
            (pick(|r| r.0), pick(|r| r.1), pick(|r| r.2))
        };
        let (alone, many) = (measure(false), measure(true));
        self.row(
            &format!("{n} single-row inserts, one transaction"),
            alone.0,
            many.0,
            "ms",
        );
        println!(
            "| log bytes per new op | {:.1} | {:.1} | {:.2}x |",
            alone.1,
            many.1,
            many.1 / alone.1
        );
        println!(
            "| bundle bytes per new op | {:.1} | {:.1} | {:.2}x |",
            alone.2,
            many.2,
            many.2 / alone.2
        );
    }

    /// The hot-rows scenario: two devices, 100 rows, five rounds of 2,000 single-row updates
    /// on each (both columns, random rows) between peer-aware exchanges, against the same
    /// 20,000 updates made on one device alone and sent to a peer each round.
    fn hot_rows_table(&self) {
        const HOT: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, s TEXT)";
        let hot = Shape {
            name: "hot rows",
            create: HOT,
            row: "",
            values: "",
            update: "",
        };
        println!("\n### 9. Hot rows: 100 rows, 20,000 updates in five rounds, median of {RUNS}\n");
        println!(
            "| work | one device alone | two devices, concurrently | ratio |\n|---|---:|---:|---:|"
        );
        let edit = |conn: &Connection, seed: &mut u64, count: usize| {
            conn.execute_batch("BEGIN").unwrap();
            let mut stmt = conn
                .prepare("UPDATE t SET n = ?2, s = ?3 WHERE id = ?1")
                .unwrap();
            for _ in 0..count {
                *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                let (id, n) = (1 + (*seed >> 33) % 100, (*seed >> 40) as i64);
                stmt.execute(rusqlite::params![id as i64, n, format!("text {n}")])
                    .unwrap();
            }
            drop(stmt);
            conn.execute_batch("COMMIT").unwrap();
        };
        let size = |p: &Path| std::fs::metadata(p).unwrap().len() as f64;
        // (seconds of the whole scenario, seconds importing, largest file, open records)
        let run = |concurrent: bool| -> (f64, f64, f64, f64) {
            let (pa, pb) = (self.path("hot-a.db"), self.path("hot-b.db"));
            let (a, b) = (open(&pa, &hot, true), open(&pb, &hot, true));
            a.execute_batch(
                "WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < 100)
                 INSERT INTO t SELECT n, 0, 'row ' || n FROM i",
            )
            .unwrap();
            let (ida, idb) = (device_id(&a), device_id(&b));
            let bundle = self.path("hot.bundle");
            let mut seed = 7;
            let mut importing = Self::send(&a, &b, &idb, &bundle);
            let start = Instant::now();
            for _ in 0..5 {
                if concurrent {
                    edit(&a, &mut seed, 2000);
                    edit(&b, &mut seed, 2000);
                    importing += Self::send(&a, &b, &idb, &bundle);
                    importing += Self::send(&b, &a, &ida, &bundle);
                } else {
                    edit(&a, &mut seed, 4000);
                    importing += Self::send(&a, &b, &idb, &bundle);
                }
            }
            let total = start.elapsed().as_secs_f64();
            let open: f64 = a
                .query_row(
                    "SELECT count(*) FROM sync_conflicts WHERE NOT resolved",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            (total, importing, size(&pa).max(size(&pb)), open)
        };
        let runs = |concurrent| -> Vec<(f64, f64, f64, f64)> {
            (0..RUNS).map(|_| run(concurrent)).collect()
        };
        let (alone, both) = (runs(false), runs(true));
        let pick = |v: &[(f64, f64, f64, f64)], f: fn(&(f64, f64, f64, f64)) -> f64| {
            median(v.iter().map(f).collect())
        };
        self.row(
            "edits and exchanges, in all",
            pick(&alone, |r| r.0),
            pick(&both, |r| r.0),
            "ms",
        );
        self.row(
            "of which importing",
            pick(&alone, |r| r.1),
            pick(&both, |r| r.1),
            "ms",
        );
        self.row(
            "largest file, KiB",
            pick(&alone, |r| r.2) / 1024.0,
            pick(&both, |r| r.2) / 1024.0,
            "",
        );
        println!(
            "| open conflict records at the end | {:.0} | {:.0} | |",
            pick(&alone, |r| r.3),
            pick(&both, |r| r.3)
        );
    }

    /// Edits imported into a device that holds the rows: a bundle of n one-column updates of
    /// rows it has, against a bundle of n new rows into the same device, and the same updates
    /// when the device changed each of those rows too (every op then a conflict). The devices
    /// hold `self.rows` rows and have exchanged peer-aware bundles, so each bundle holds only
    /// the new ops.
    fn edits_table(&self) {
        let rows = self.rows;
        println!(
            "\n### 10. Edits imported into a device holding {rows} rows, median of {BIG_RUNS}\n"
        );
        println!(
            "| ops | new rows (us/op) | updates (us/op) | updates / new rows | updates, each a conflict (us/op) | conflicts / new rows | deletes of the new rows (us/op) | deletes / new rows | plain UPDATE of the same rows, one statement (us/op) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let (pa, pb) = (self.path("edits-a.db"), self.path("edits-b.db"));
        let base = self.path("edits-b-base.db");
        let a = open(&pa, &THREE, true);
        fill(&a, &THREE, 1, rows);
        let b = open(&pb, &THREE, true);
        let (ida, idb) = (device_id(&a), device_id(&b));
        let bundle = self.path("edits.bundle");
        Self::send(&a, &b, &idb, &bundle);
        Self::send(&b, &a, &ida, &bundle);
        drop(b);
        std::fs::copy(&pb, &base).unwrap();
        let mut next_id = rows as i64;
        for n in [rows / 100, rows / 10, rows] {
            let every = rows / n;
            let edited = format!("id % {every} = 0");
            // one bundle of each kind from A; each import into a fresh copy of B
            let out = |name: &str| {
                let path = self.path(name);
                let _ = std::fs::remove_file(&path);
                Self::bundle_out(&a, Some(&idb), &path);
                path
            };
            let fresh_b = || {
                std::fs::copy(&base, &pb).unwrap();
                load(&pb)
            };
            let import = |bundle: &Path, conflicting: bool| {
                median(
                    (0..BIG_RUNS)
                        .map(|_| {
                            let b = fresh_b();
                            if conflicting {
                                b.execute_batch(&format!("UPDATE t SET n = n + 2 WHERE {edited}"))
                                    .unwrap();
                            }
                            seconds(|| Self::bundle_in(&b, bundle)).1
                        })
                        .collect(),
                )
            };
            // the base takes a bundle, and A learns it has it: the next bundle holds only what
            // A does after
            let absorb = |bundle_in: &Path| {
                let b = fresh_b();
                Self::bundle_in(&b, bundle_in);
                Self::send(&b, &a, &ida, &bundle);
                drop(b);
                std::fs::copy(&pb, &base).unwrap();
            };
            a.execute_batch(&format!("UPDATE t SET n = n + 1 WHERE {edited}"))
                .unwrap();
            let updates = out("edits-updates.bundle");
            let (upd, conf) = (import(&updates, false), import(&updates, true));
            absorb(&updates);
            fill_range(&a, &THREE, next_id + 1, next_id + n as i64);
            let inserts = out("edits-inserts.bundle");
            let new_rows = import(&inserts, false);
            absorb(&inserts);
            a.execute_batch(&format!("DELETE FROM t WHERE id > {next_id}"))
                .unwrap();
            next_id += n as i64;
            let deletes = out("edits-deletes.bundle");
            let del = import(&deletes, false);
            absorb(&deletes);
            let per_op = |secs: f64| secs * 1e6 / n as f64;
            let (new_rows, upd, conf, del) =
                (per_op(new_rows), per_op(upd), per_op(conf), per_op(del));
            let plain = {
                let p = open(&self.path("edits-plain.db"), &THREE, false);
                fill(&p, &THREE, 1, rows);
                per_op(
                    seconds(|| {
                        p.execute_batch(&format!("UPDATE t SET n = n + 1 WHERE {edited}"))
                            .unwrap()
                    })
                    .1,
                )
            };
            println!(
                "| {n} | {new_rows:.2} | {upd:.2} | {:.2}x | {conf:.2} | {:.2}x | {del:.2} | {:.2}x | {plain:.2} |",
                upd / new_rows,
                conf / new_rows,
                del / new_rows
            );
        }
    }

    /// The everyday small sync: two devices exchange one-row peer-aware bundles, `trips`
    /// round trips; the import time of the first rounds against the last.
    fn small_sync_table(&self, trips: usize) {
        println!(
            "\n### 11. Small syncs: {trips} round trips of one-row bundles between two devices\n"
        );
        println!(
            "| work | first 20 round trips | last 20 round trips | ratio |\n|---|---:|---:|---:|"
        );
        let (pa, pb) = (self.path("small-a.db"), self.path("small-b.db"));
        let (a, b) = (open(&pa, &THREE, true), open(&pb, &THREE, true));
        let (ida, idb) = (device_id(&a), device_id(&b));
        let bundle = self.path("small.bundle");
        let mut imports = Vec::with_capacity(trips);
        for i in 0..trips as i64 {
            a.execute("INSERT INTO t VALUES (?1, 'from a', ?1)", [2 * i + 1])
                .unwrap();
            let t1 = Self::send(&a, &b, &idb, &bundle);
            b.execute("INSERT INTO t VALUES (?1, 'from b', ?1)", [2 * i + 2])
                .unwrap();
            let t2 = Self::send(&b, &a, &ida, &bundle);
            imports.push((t1 + t2) / 2.0);
        }
        let first = median(imports[..20].to_vec());
        let last = median(imports[trips - 20..].to_vec());
        self.row("import of a one-row bundle (median)", first, last, "ms");
    }

    /// The same bundle as a file and as a BLOB, and a shared folder: what a transport costs.
    fn transports_table(&self) {
        let n = self.rows;
        println!(
            "\n### 12. Transports: a bundle of {n} ops as a file and as a BLOB, median of {RUNS}\n"
        );
        println!("| work | file | BLOB | BLOB / file |\n|---|---:|---:|---:|");
        let writer = open(&self.path("transport-a.db"), &THREE, true);
        fill(&writer, &THREE, 1, n);
        let bundle = self.path("transport.bundle");
        let (mut out_file, mut out_blob, mut in_file, mut in_blob) =
            (vec![], vec![], vec![], vec![]);
        for run in 0..RUNS {
            let _ = std::fs::remove_file(&bundle);
            out_file.push(seconds(|| Self::bundle_out(&writer, None, &bundle)).1);
            let (blob, t): (Vec<u8>, f64) = seconds(|| {
                writer
                    .query_row("SELECT sync_bundle_out(NULL)", [], |r| r.get(0))
                    .unwrap()
            });
            out_blob.push(t);
            let a = open(&self.path(&format!("transport-f{run}.db")), &THREE, true);
            in_file.push(seconds(|| Self::bundle_in(&a, &bundle)).1);
            let b = open(&self.path(&format!("transport-b{run}.db")), &THREE, true);
            in_blob.push(
                seconds(|| {
                    b.query_row(
                        "SELECT sync_bundle_in(?1) ->> '$.applied_count'",
                        [&blob],
                        |r| r.get::<_, i64>(0),
                    )
                    .unwrap()
                })
                .1,
            );
        }
        let row = |work: &str, file: Vec<f64>, blob: Vec<f64>| {
            let (f, b) = (median(file), median(blob));
            println!(
                "| {work} | {:.0} ms | {:.0} ms | {:.2}x |",
                f * 1e3,
                b * 1e3,
                b / f
            );
        };
        row("sync_bundle_out", out_file, out_blob);
        row("sync_bundle_in, empty device", in_file, in_blob);
    }

    /// A star: `n` devices that meet only through one hub. Each round every device writes 10
    /// rows and sends the hub a peer-aware bundle, which the hub imports; then the hub sends
    /// each device a peer-aware bundle, which it imports. The figures are round 3's (the hub
    /// then knows every device, and every device has heard of every other).
    fn star_table(&self, sizes: &[usize]) {
        println!("\n### 13. A star: devices that meet only through one hub, 10 rows each per round (round 3)\n");
        println!("| devices | hub's bundle to a device: ops, bytes per op | hub export + device import, per device | per imported op | hub's import of a device's 10-row bundle | per op | one device's bundle of as many ops, bytes per op | ratio |\n|---:|---:|---:|---:|---:|---:|---:|---:|");
        for &n in sizes {
            let hub = open(&self.path("star-hub.db"), &THREE, true);
            let hub_id = device_id(&hub);
            let leaves: Vec<(Connection, String)> = (0..n)
                .map(|k| {
                    let c = open(&self.path(&format!("star-{k}.db")), &THREE, true);
                    let id = device_id(&c);
                    (c, id)
                })
                .collect();
            let bundle = self.path("star.bundle");
            let (mut hub_in, mut out_in, mut ops, mut bytes) = (vec![], vec![], 0i64, 0i64);
            for round in 1..=3i64 {
                for (k, (leaf, _)) in leaves.iter().enumerate() {
                    let first = (round * n as i64 + k as i64) * 10;
                    fill_range(leaf, &THREE, first, first + 9);
                    let _ = std::fs::remove_file(&bundle);
                    Self::bundle_out(leaf, Some(&hub_id), &bundle);
                    let t = seconds(|| Self::bundle_in(&hub, &bundle)).1;
                    if round == 3 {
                        hub_in.push(t);
                    }
                }
                for (leaf, id) in &leaves {
                    let _ = std::fs::remove_file(&bundle);
                    let ((o, b), t) = seconds(|| {
                        let r = Self::bundle_out(&hub, Some(id), &bundle);
                        Self::bundle_in(leaf, &bundle);
                        r
                    });
                    if round == 3 {
                        out_in.push(t);
                        ops += o;
                        bytes += b;
                    }
                }
            }
            let per_device = median(out_in);
            let hub_import = median(hub_in);
            let mean_ops = ops as f64 / n as f64;
            // the same rows written on one device alone, in one bundle
            let alone = open(&self.path("star-alone.db"), &THREE, true);
            fill(&alone, &THREE, 1, mean_ops.round() as u64);
            let _ = std::fs::remove_file(&bundle);
            let (o, b) = Self::bundle_out(&alone, None, &bundle);
            let (star, single) = (bytes as f64 / ops as f64, b as f64 / o as f64);
            println!(
                "| {n} | {mean_ops:.0}, {star:.1} | {:.1} ms | {:.1} us | {:.2} ms | {:.1} us | {single:.1} | {:.2}x |",
                per_device * 1e3,
                per_device * 1e6 / mean_ops,
                hub_import * 1e3,
                hub_import * 1e6 / 10.0,
                star / single,
            );
        }
    }

    /// The SQLite session extension on the same work: the reference for capture and apply.
    fn session_table(&self) {
        use rusqlite::session::{ConflictAction, Session};
        let n = self.rows;
        println!("\n### Reference: SQLite's session extension, {n} rows, median of {RUNS}\n");
        println!("| work | plain | session | ratio |\n|---|---:|---:|---:|");
        let inserts = |conn: &Connection| insert_rows(conn, n);
        let mut plain = Vec::new();
        let mut capture = Vec::new();
        let mut apply = Vec::new();
        let mut bytes = 0;
        for _ in 0..RUNS {
            let conn = open(&self.path("plain.db"), &THREE, false);
            plain.push(seconds(|| inserts(&conn)).1);
            let conn = open(&self.path("session.db"), &THREE, false);
            let mut changeset = Vec::new();
            capture.push(
                seconds(|| {
                    let mut session = Session::new(&conn).unwrap();
                    session.attach(None::<&str>).unwrap();
                    inserts(&conn);
                    session.changeset_strm(&mut changeset).unwrap();
                })
                .1,
            );
            bytes = changeset.len();
            let dst = open(&self.path("session-dst.db"), &THREE, false);
            apply.push(
                seconds(|| {
                    dst.apply_strm(&mut &changeset[..], None::<fn(&str) -> bool>, |_, _| {
                        ConflictAction::SQLITE_CHANGESET_OMIT
                    })
                    .unwrap()
                })
                .1,
            );
        }
        let plain = median(plain);
        self.row(
            "single-row inserts, one transaction, changeset written at the end",
            plain,
            median(capture),
            "ms",
        );
        self.row(
            "changeset applied to an empty database",
            plain,
            median(apply),
            "ms",
        );
        println!(
            "| changeset bytes per op | | {:.1} | |",
            bytes as f64 / n as f64
        );
    }
}

fn main() {
    assert!(extension().exists(), "run `make` first");
    let quick = std::env::args().any(|a| a == "--quick");
    let dir = std::env::temp_dir().join(format!("sqlite-sync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bench = Bench {
        dir: dir.clone(),
        rows: if quick { 10_000 } else { 100_000 },
        big: if quick { 100_000 } else { 1_000_000 },
    };
    println!(
        "# sqlite-sync benchmarks{}",
        if quick { " (quick sizes)" } else { "" }
    );
    // SYNC_BENCH_ONLY=1,10 runs only those tables (the session reference is "session")
    let only = std::env::var("SYNC_BENCH_ONLY").ok();
    let runs = |table: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|t| t.trim() == table))
    };
    if runs("1") {
        bench.capture_table();
    }
    if runs("2") {
        bench.bundles_table();
    }
    if runs("4") {
        bench.log_size_table();
    }
    if runs("8") {
        bench.many_devices_table();
    }
    if runs("9") {
        bench.hot_rows_table();
    }
    if runs("10") {
        bench.edits_table();
    }
    if runs("11") {
        bench.small_sync_table(if quick { 200 } else { 2000 });
    }
    if runs("12") {
        bench.transports_table();
    }
    if runs("13") {
        // SYNC_STAR=10,100 chooses the sizes
        let sizes: Vec<usize> = match std::env::var("SYNC_STAR") {
            Ok(s) => s.split(',').map(|n| n.trim().parse().unwrap()).collect(),
            Err(_) if quick => vec![10, 50],
            Err(_) => vec![10, 100, 200],
        };
        bench.star_table(&sizes);
    }
    if runs("14") {
        bench.compaction_table(if quick { 100_000 } else { 1_000_000 });
    }
    if runs("session") {
        bench.session_table();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
