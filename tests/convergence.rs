//! Convergence, the merge rule's proof obligation: 2 to 5 devices run random scripts of writes
//! and exchange bundles between random pairs at random times (some delivered twice, some late,
//! some out of order, some lost); after a final exchange until quiet, every device holds the
//! same tables (same storage class and value in every cell), the same conflicts, the same
//! clock, and nothing pending.
//!
//! `fixed_seed_schedules` runs SCHEDULES schedules from a fixed seed; `random_seed_schedules`
//! runs new seeds for RANDOM_SECONDS. A failure prints the seed that reproduces it:
//! `SYNC_SEED=<seed> cargo test --release --test convergence one_seed -- --nocapture`.

mod common;

use common::*;
use rusqlite::types::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SCHEDULES: u64 = 2000;
const RANDOM_SECONDS: u64 = 20;

const SCHEMA: &str = "
    CREATE TABLE t_int(id INTEGER PRIMARY KEY, a, b, c);
    CREATE TABLE t_text(k TEXT PRIMARY KEY, a, b REAL);
    CREATE TABLE t_comp(x INTEGER, y TEXT, v, w BLOB, PRIMARY KEY (x, y)) WITHOUT ROWID;
    SELECT sync_enable('t_int'); SELECT sync_enable('t_text'); SELECT sync_enable('t_comp');";
const TABLES: [&str; 3] = ["t_int", "t_text", "t_comp"];

/// A random value of every storage class, with the edge cases.
trait RandomValue {
    fn value(&mut self) -> Value;
}

impl RandomValue for Rng {
    fn value(&mut self) -> Value {
        match self.below(12) {
            0 => Value::Null,
            1 => Value::Integer(self.below(5) as i64),
            2 => Value::Integer(i64::MIN + self.below(2) as i64),
            3 => Value::Real(0.1 + 0.2),
            4 => Value::Real(-0.0),
            5 => Value::Real(if self.chance(50) {
                f64::INFINITY
            } else {
                f64::NEG_INFINITY
            }),
            6 => Value::Real(self.below(3) as f64 + 0.5),
            7 => Value::Text(["", "x", "ü€", "y"][self.below(4) as usize].to_string()),
            8 => Value::Blob(vec![]),
            9 => Value::Blob(vec![0, self.below(3) as u8, 255]),
            10 => Value::Integer(1),
            _ => Value::Real(1.0),
        }
    }
}

/// One random write on one device (it may change nothing, or fail on a constraint: both fine),
/// on a row among `keys` per table.
fn random_write(rng: &mut Rng, conn: &rusqlite::Connection, keys: u64) {
    let table = TABLES[rng.below(3) as usize];
    let (key_cols, cols): (&[&str], &[&str]) = match table {
        "t_int" => (&["id"], &["a", "b", "c"]),
        "t_text" => (&["k"], &["a", "b"]),
        _ => (&["x", "y"], &["v", "w"]),
    };
    let key = |rng: &mut Rng| -> Vec<Value> {
        match table {
            "t_int" => vec![Value::Integer(rng.below(keys) as i64)],
            "t_text" => vec![Value::Text(format!("k{}", rng.below(keys)))],
            _ => vec![
                Value::Integer(rng.below(keys / 2) as i64),
                Value::Text(format!("y{}", rng.below(2))),
            ],
        }
    };
    let where_key: Vec<String> = key_cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ?{}", i + 1))
        .collect();
    let where_key = where_key.join(" AND ");
    let k = key(rng);
    let sql;
    let mut params = k.clone();
    match rng.below(10) {
        0..=2 => {
            let verb = if rng.chance(25) {
                "INSERT OR REPLACE"
            } else {
                "INSERT OR IGNORE"
            };
            let all: Vec<&str> = key_cols.iter().chain(cols).copied().collect();
            let marks: Vec<String> = (1..=all.len()).map(|i| format!("?{i}")).collect();
            sql = format!(
                "{verb} INTO {table}({}) VALUES ({})",
                all.join(", "),
                marks.join(", ")
            );
            for _ in cols {
                params.push(rng.value());
            }
        }
        3..=6 => {
            let n = 1 + rng.below(cols.len() as u64) as usize;
            let start = rng.below(cols.len() as u64) as usize;
            let sets: Vec<String> = (0..n)
                .map(|j| format!("{} = ?{}", cols[(start + j) % cols.len()], k.len() + j + 1))
                .collect();
            sql = format!("UPDATE {table} SET {} WHERE {where_key}", sets.join(", "));
            for _ in 0..n {
                params.push(rng.value());
            }
        }
        7 => {
            // change the primary key
            let new_key = key(rng);
            let sets: Vec<String> = key_cols
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c} = ?{}", k.len() + i + 1))
                .collect();
            sql = format!(
                "UPDATE OR IGNORE {table} SET {} WHERE {where_key}",
                sets.join(", ")
            );
            params.extend(new_key);
        }
        _ => sql = format!("DELETE FROM {table} WHERE {where_key}"),
    }
    let _ = conn.execute(&sql, rusqlite::params_from_iter(params));
}

/// Resolves one open conflict, if the device has any: 'local', 'remote' or values of its own.
fn resolve_one(rng: &mut Rng, conn: &rusqlite::Connection) {
    let open: Vec<(String, String)> = conn
        .prepare("SELECT id, columns FROM sync_conflicts WHERE NOT resolved ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    if open.is_empty() {
        return;
    }
    let (id, columns) = &open[rng.below(open.len() as u64) as usize];
    let choice = match rng.below(3) {
        0 => "local".to_string(),
        1 => "remote".to_string(),
        _ => {
            let first: String = conn
                .query_row("SELECT ?1 ->> '$[0]'", [columns], |r| r.get(0))
                .unwrap();
            format!("{{\"{first}\": {}}}", rng.below(100))
        }
    };
    conn.query_row("SELECT sync_resolve(?1, ?2)", [id, &choice], |_| Ok(()))
        .unwrap_or_else(|e| panic!("sync_resolve({id}, {choice}): {e}"));
}

fn run_schedule(seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed);
    let n = 2 + rng.below(4) as usize;
    let devices: Vec<Device> = (0..n)
        .map(|i| Device::new(&format!("d{i}"), SCHEMA))
        .collect();
    if rng.chance(50) {
        exec(devices[0].conn(), "PRAGMA recursive_triggers = ON");
    }
    let mut mail: Vec<(usize, PathBuf)> = Vec::new();
    let steps = 20 + rng.below(40);
    for _ in 0..steps {
        let d = rng.below(n as u64) as usize;
        match rng.below(20) {
            0..=10 => random_write(&mut rng, devices[d].conn(), 4),
            // a burst of writes over more rows, many new and some written twice: bundles with
            // more ops than the importer handles in one batch
            16 if rng.chance(20) => {
                let conn = devices[d].conn();
                exec(conn, "BEGIN");
                for _ in 0..64 + rng.below(100) {
                    random_write(&mut rng, conn, 48);
                }
                exec(conn, "COMMIT");
            }
            11 => resolve_one(&mut rng, devices[d].conn()),
            12..=15 => {
                let to = rng.below(n as u64) as usize;
                let peer = if rng.chance(70) {
                    Some(&devices[to])
                } else {
                    None
                };
                mail.push((to, devices[d].bundle_for(peer)));
            }
            _ if !mail.is_empty() => {
                let i = rng.below(mail.len() as u64) as usize;
                let (to, path) = mail[i].clone();
                devices[to]
                    .try_import(&path)
                    .map_err(|e| format!("import: {e}"))?;
                match rng.below(10) {
                    0..=5 => {
                        mail.swap_remove(i); // delivered
                    }
                    6 => {
                        mail.swap_remove(i); // delivered, and its copy is gone
                    }
                    _ => {} // stays: delivered again later
                }
            }
            _ => {}
        }
        if rng.chance(5) && !mail.is_empty() {
            let i = rng.below(mail.len() as u64) as usize;
            mail.swap_remove(i); // lost in transport
        }
    }
    // exchange with everyone until nothing moves
    for round in 0.. {
        if round > 10 {
            return Err("exchange does not settle".into());
        }
        let mut moved = false;
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let r = devices[j].import(&devices[i].bundle_for(Some(&devices[j])));
                    moved |= r.applied > 0;
                    if r.pending > 0 && round > 3 {
                        return Err(format!(
                            "{} keeps {} ops pending",
                            devices[j].name, r.pending
                        ));
                    }
                }
            }
        }
        if !moved {
            break;
        }
    }
    for d in &devices {
        let pending: i64 = d
            .conn()
            .query_row(
                "SELECT count(*) FROM _sync_remote WHERE applied = 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if pending > 0 {
            return Err(format!("{} keeps {pending} ops pending", d.name));
        }
    }
    let first = &devices[0];
    if std::env::var("SYNC_STATS").is_ok() {
        let rows: usize = TABLES.iter().map(|t| first.dump(t).len()).sum();
        let c = first.conflicts();
        let resolved = c.iter().filter(|x| x.7 == 1).count();
        eprintln!(
            "seed {seed}: {n} devices, {rows} rows, {} conflicts ({resolved} resolved), clock {}",
            c.len(),
            first.clock()
        );
    }
    for other in &devices[1..] {
        for table in TABLES {
            if first.dump(table) != other.dump(table) {
                return Err(format!(
                    "table {table} differs:\n{}: {:?}\n{}: {:?}",
                    first.name,
                    first.dump(table),
                    other.name,
                    other.dump(table)
                ));
            }
        }
        if first.conflicts() != other.conflicts() {
            return Err(format!(
                "conflicts differ:\n{}: {:#?}\n{}: {:#?}",
                first.name,
                first.conflicts(),
                other.name,
                other.conflicts()
            ));
        }
        if first.clock() != other.clock() {
            return Err(format!(
                "clocks differ: {} vs {}",
                first.clock(),
                other.clock()
            ));
        }
    }
    Ok(())
}

fn check(seed: u64) {
    if let Err(e) = run_schedule(seed) {
        panic!("schedule with seed {seed} failed (SYNC_SEED={seed} to rerun): {e}");
    }
}

#[test]
fn fixed_seed_schedules() {
    for i in 0..SCHEDULES {
        check(0x5EED_0000 + i);
    }
}

#[test]
fn random_seed_schedules() {
    let start = Instant::now();
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut i: u64 = 0;
    while start.elapsed() < Duration::from_secs(RANDOM_SECONDS) {
        check(base.wrapping_add(i.wrapping_mul(0x9E3779B97F4A7C15)));
        i += 1;
    }
}

#[test]
fn one_seed() {
    if let Ok(seed) = std::env::var("SYNC_SEED") {
        check(seed.parse().expect("SYNC_SEED is a number"));
    }
}
