//! Table 14: the size of history with compaction. Three devices take turns writing updates of
//! random rows of a 1,000-row table, and after each turn the writer's updates go to the two
//! others and theirs come back; then each device compacts, removing what its floor made dead
//! (the "off" row keeps every op: `_sync_state` `compact_removes` = 0). At the end: each database's size against the plain table's
//! (the pages in use, and the file, which keeps the pages freed until VACUUM), and the ops
//! held, with and without compaction.

use super::*;

/// The table's rows: 1,000, or `SYNC_COMPACT_ROWS` (the same scenario over a larger table).
fn rows() -> i64 {
    (std::env::var("SYNC_COMPACT_ROWS").ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}
const TURN: u64 = 10_000;

impl Bench {
    pub(super) fn compaction_table(&self, updates: u64) {
        let rows = rows();
        println!(
            "\n### 14. History with compaction: {updates} updates of random rows of {rows}, \
             three devices, a sync after each {TURN}\n"
        );
        println!(
            "| compaction | ops held (a, b, c) | pages in use / plain (a, b, c) | file / plain (a, b, c) | seconds |\n\
             |---|---|---|---|---:|"
        );
        let plain = self.path("compaction-plain.db");
        let conn = open(&plain, &THREE, false);
        fill_range(&conn, &THREE, 1, rows);
        conn.execute_batch("VACUUM").unwrap();
        let plain_used = used_bytes(&conn);
        let plain_file = std::fs::metadata(&plain).unwrap().len() as f64;
        drop(conn);
        let mut parts = Vec::new();
        for removes in [false, true] {
            let (devices, seconds) = seconds(|| self.three_devices(rows, updates, removes));
            let each = |f: &dyn Fn(&Connection, &Path) -> String| -> String {
                (devices.iter())
                    .map(|(c, p)| f(c, p))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let ops = each(&|c, _| {
                c.query_row("SELECT count(*) FROM sync_log", [], |r| r.get::<_, i64>(0))
                    .unwrap()
                    .to_string()
            });
            let used = each(&|c, _| format!("{:.2}x", used_bytes(c) / plain_used));
            let file = each(&|_, p| {
                let len = std::fs::metadata(p).unwrap().len() as f64;
                format!("{:.2}x", len / plain_file)
            });
            let how = if removes { "on" } else { "off" };
            println!("| {how} | {ops} | {used} | {file} | {seconds:.1} |");
            parts.push(format!(
                "compaction {how}: {}",
                largest_parts(&devices[0].0)
            ));
        }
        println!("\nthe largest parts of device a, KiB:");
        for part in parts {
            println!("- {part}");
        }
        println!(
            "\nplain table: {rows} rows, {:.0} KiB in use, {:.0} KiB file",
            plain_used / 1024.0,
            plain_file / 1024.0
        );
    }

    /// Three devices at the end of the scenario, each with its file's path.
    fn three_devices(&self, rows: i64, updates: u64, removes: bool) -> Vec<(Connection, PathBuf)> {
        let names = ["compaction-a.db", "compaction-b.db", "compaction-c.db"];
        let devices: Vec<(Connection, PathBuf)> = (names.iter())
            .map(|n| {
                let path = self.path(n);
                let conn = open(&path, &THREE, true);
                let removes = i64::from(removes);
                conn.execute(
                    "INSERT INTO _sync_state(name, value) VALUES ('compact_removes', ?1)",
                    [removes],
                )
                .unwrap();
                (conn, path)
            })
            .collect();
        let ids: Vec<String> = devices.iter().map(|(c, _)| device_id(c)).collect();
        let bundle = self.path("compaction.bundle");
        let send = |from: usize, to: usize| {
            Self::send(&devices[from].0, &devices[to].0, &ids[to], &bundle);
        };
        fill_range(&devices[0].0, &THREE, 1, rows);
        let mut seed: u64 = 11;
        for turn in 0..updates.div_ceil(TURN) {
            let w = (turn % 3) as usize;
            let conn = &devices[w].0;
            conn.execute_batch("BEGIN").unwrap();
            let mut stmt = conn.prepare("UPDATE t SET n = ?2 WHERE id = ?1").unwrap();
            for _ in 0..TURN.min(updates - turn * TURN) {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                let id = 1 + ((seed >> 33) as i64) % rows;
                stmt.execute(rusqlite::params![id, (seed >> 40) as i64])
                    .unwrap();
            }
            drop(stmt);
            conn.execute_batch("COMMIT").unwrap();
            for other in (0..3).filter(|&o| o != w) {
                send(w, other);
                send(other, w);
            }
            for (c, _) in &devices {
                c.query_row("SELECT sync_compact()", [], |_| Ok(()))
                    .unwrap();
            }
        }
        // the end: a round in which every device hears from every other, and compacts, twice
        for _ in 0..2 {
            for from in 0..3 {
                for to in (0..3).filter(|&t| t != from) {
                    send(from, to);
                }
            }
            for (c, _) in &devices {
                c.query_row("SELECT sync_compact()", [], |_| Ok(()))
                    .unwrap();
            }
        }
        devices
    }
}

/// The tables and indexes that take the most pages, with their KiB (dbstat).
fn largest_parts(conn: &Connection) -> String {
    let mut stmt = conn
        .prepare(
            "SELECT name, sum(pgsize) / 1024 FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 6",
        )
        .unwrap();
    let parts: Vec<String> = (stmt.query_map([], |r| {
        Ok(format!(
            "{} {}",
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?
        ))
    }))
    .unwrap()
    .map(Result::unwrap)
    .collect();
    parts.join(", ")
}

/// The bytes of the database's pages in use (its file less the free pages).
fn used_bytes(conn: &Connection) -> f64 {
    let q = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    let pages = q("PRAGMA page_count") - q("PRAGMA freelist_count");
    (pages * q("PRAGMA page_size")) as f64
}
