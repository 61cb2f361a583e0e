//! Fuzzing the bundle reader and importer on stable Rust: structure-aware mutations of valid
//! bundles, fed to `sync_bundle_in`.
//!
//! Each execution mutates a valid bundle in one of three ways: bytes of its op stream with the
//! hashes left as they are (the decoder's errors), ops edited through the independent codec
//! with every hash made right again (validation and the importer itself: pending ops, forged
//! duplicates, odd values, other devices), or the manifest. The properties: the call returns a
//! result or an SQL error (a panic caught by the extension says "panic", which fails the run),
//! no transaction is left open, and a refused bundle leaves every table as it was.
//!
//! `make test` runs it for SYNC_FUZZ_SECONDS (default 60). A long run:
//! `SYNC_FUZZ_SECONDS=0 SYNC_FUZZ_EXECS=1000000 cargo test --release --test fuzz -- --nocapture`.

mod common;

use common::bundle::{self, Bundle, Op, M};
use common::*;
use rusqlite::types::Value;
use rusqlite::Connection;
use std::time::{Duration, Instant};

const SCHEMA: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, a, b TEXT);
                      CREATE TABLE u(k TEXT, n INTEGER, v BLOB, PRIMARY KEY (k, n)) WITHOUT ROWID;
                      SELECT sync_enable('t'); SELECT sync_enable('u');";

/// Random parts of ops, with the edge cases.
trait Random {
    fn int(&mut self) -> i64;
    fn value(&mut self) -> M;
    fn name(&mut self) -> String;
}

impl Random for Rng {
    fn int(&mut self) -> i64 {
        [
            0,
            1,
            -1,
            2,
            127,
            128,
            255,
            256,
            65536,
            i64::MAX,
            i64::MIN,
            self.next() as i64,
        ][self.pick(12)]
    }

    fn value(&mut self) -> M {
        match self.pick(9) {
            0 => M::Nil,
            1 => M::Int(self.int()),
            2 => M::Float([0.0, -0.0, f64::INFINITY, f64::NAN, 0.1 + 0.2][self.pick(5)]),
            3 => M::Str(["", "x", "ü€", "a\"b';--"][self.pick(4)].into()),
            4 => M::Bin(vec![0xff; self.pick(40)]),
            5 => M::Array(vec![M::Int(1)]),
            6 => M::Str("long".repeat(self.pick(5000))),
            _ => M::Int(self.pick(50) as i64),
        }
    }

    fn name(&mut self) -> String {
        [
            "t",
            "u",
            "id",
            "a",
            "b",
            "k",
            "n",
            "v",
            "T",
            "_sync_ops",
            "sqlite_schema",
            "nope",
            "",
        ][self.pick(13)]
        .into()
    }
}

fn mutate_op(rng: &mut Rng, op: &mut Op, other: &[u8]) {
    match rng.pick(12) {
        0 => op.seq = [0, 1, op.seq + 1, op.seq - 1, i64::MAX, -1][rng.pick(6)],
        1 => op.lamport = [0, 1, op.lamport + 1, op.lamport - 1, i64::MAX][rng.pick(5)],
        2 => op.kind = rng.pick(4) as i64,
        3 => op.table = rng.name(),
        4 if !op.cells.is_empty() => {
            let i = rng.pick(op.cells.len());
            op.cells[i].1 = rng.value();
        }
        5 if !op.cells.is_empty() => {
            let i = rng.pick(op.cells.len());
            op.cells[i].0 = rng.name();
        }
        6 => op.key[0].1 = rng.value(),
        7 => op.key[0].0 = rng.name(),
        8 => op.device = other.to_vec(),
        9 => {
            op.deps = M::Array(vec![M::Array(vec![
                M::Bin(other.to_vec()),
                M::Int(rng.int()),
            ])])
        }
        10 => {
            op.cells.pop();
        }
        _ => op.cells.push((rng.name(), rng.value())),
    }
}

fn mutate_ops(rng: &mut Rng, bundle: &mut Bundle, other: &[u8]) {
    for _ in 0..1 + rng.pick(3) {
        let n = bundle.ops.len();
        match rng.pick(6) {
            0 if n > 0 => {
                bundle.ops.remove(rng.pick(n));
            }
            1 if n > 0 => {
                let op = bundle.ops[rng.pick(n)].clone();
                bundle.ops.insert(rng.pick(n + 1), op);
            }
            2 if n > 1 => bundle.ops.swap(rng.pick(n), rng.pick(n)),
            _ if n > 0 => {
                let i = rng.pick(n);
                mutate_op(rng, &mut bundle.ops[i], other);
            }
            _ => {}
        }
    }
}

fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>) {
    const INTERESTING: [u8; 10] = [0, 0xff, 0x7f, 0x80, 0xc0, 0xc1, 0xcc, 0xd3, 0xdb, 0xc6];
    for _ in 0..1 + rng.pick(4) {
        if bytes.is_empty() {
            return;
        }
        let at = rng.pick(bytes.len());
        match rng.pick(5) {
            0 => bytes[at] ^= 1 << rng.pick(8),
            1 => bytes[at] = INTERESTING[rng.pick(INTERESTING.len())],
            2 => bytes.insert(at, INTERESTING[rng.pick(INTERESTING.len())]),
            3 => {
                bytes.remove(at);
            }
            _ => bytes.truncate(at),
        }
    }
}

fn mutate_manifest(rng: &mut Rng, manifest: &mut [Value]) {
    let i = rng.pick(manifest.len());
    manifest[i] = match rng.pick(5) {
        0 => Value::Null,
        1 => Value::Integer(rng.int()),
        2 => Value::Blob(vec![0; rng.pick(40)]),
        3 => Value::Text("sqlite-sync bundle".into()),
        _ => Value::Integer(2),
    };
}

#[test]
fn mutated_bundles_are_refused_cleanly_or_imported() {
    let seconds: u64 = std::env::var("SYNC_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let execs: u64 = std::env::var("SYNC_FUZZ_EXECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    let seed: u64 = std::env::var("SYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut rng = Rng(seed);

    // a bundle of ops from two devices (c's relayed through a), over both tables
    let (a, c) = (Device::new("a", SCHEMA), Device::new("c", SCHEMA));
    exec(
        c.conn(),
        "INSERT INTO t VALUES (1, 0.5, 'c'), (2, NULL, 'two'); INSERT INTO u VALUES ('x', 1, x'00');",
    );
    a.import(&c.bundle_for(None));
    exec(
        a.conn(),
        "INSERT INTO t VALUES (3, -0.0, 'a'); UPDATE t SET a = 9 WHERE id = 1;
         DELETE FROM t WHERE id = 2; UPDATE t SET id = 4 WHERE id = 3;
         INSERT INTO u VALUES ('y', 2, x'ff'), ('z', -1, NULL); UPDATE u SET v = x'' WHERE k = 'x';",
    );
    let path = a.bundle_for(None);
    let original = bundle::read(&path);
    let (manifest, body): (Vec<Value>, Vec<u8>) = {
        let conn = Connection::open(&path).unwrap();
        let m = conn
            .query_row("SELECT * FROM manifest", [], |r| {
                (0..7).map(|i| r.get(i)).collect()
            })
            .unwrap();
        let b = conn
            .query_row("SELECT body FROM chunks", [], |r| r.get(0))
            .unwrap();
        (m, b)
    };
    let other = original.ops[0].device.clone();

    let mut b = Device::new("b", SCHEMA);
    let target = a.db.dir.path().join("fuzzed.bundle");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut n, mut accepted) = (0u64, 0u64);
    while n < execs && (seconds == 0 || Instant::now() < deadline) {
        n += 1;
        // a new bundle id each time: a bundle seen before is skipped unread
        let mut m = manifest.clone();
        m[2] = Value::Blob([rng.next().to_le_bytes(), rng.next().to_le_bytes()].concat());
        match rng.pick(10) {
            0..=3 => {
                let mut bytes = body.clone();
                mutate_bytes(&mut rng, &mut bytes);
                bundle::write_raw(&target, &m, original.ops.len() as i64, &bytes);
            }
            4..=8 => {
                let mut mutated = original.clone();
                mutated.manifest = m;
                mutate_ops(&mut rng, &mut mutated, &other);
                bundle::write(&target, &mutated);
            }
            _ => {
                mutate_manifest(&mut rng, &mut m);
                bundle::write_raw(&target, &m, original.ops.len() as i64, &body);
            }
        }
        let before = whole_state(b.conn());
        match b.try_import(&target) {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert!(!e.contains("panic"), "execution {n} (seed {seed}): {e}");
                assert!(e.starts_with("sync_bundle_in: "), "execution {n}: {e}");
                assert_eq!(
                    whole_state(b.conn()),
                    before,
                    "execution {n}: refused but changed"
                );
            }
        }
        assert!(
            b.conn().is_autocommit(),
            "execution {n}: transaction left open"
        );
        if n % 500 == 0 {
            b = Device::new("b", SCHEMA); // a fresh importer now and then
        }
    }
    println!("fuzz: {n} executions, {accepted} bundles accepted, seed {seed}");
    assert!(n > 100, "the run executed ({n})");
}
