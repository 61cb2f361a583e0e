//! Bundles over any transport: as a BLOB, through a folder shared by many devices, inspected
//! without importing; and `sync_status`, what sync is doing.

mod common;

use common::{exec, rows, tempdir::Dir, Device, Rng};
use rusqlite::types::Value;

const TODOS: &str = "CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT, n INTEGER, data BLOB);
                     SELECT sync_enable('todos');";

fn json(device: &Device, sql: &str) -> String {
    device
        .conn()
        .query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{}: {sql}: {e}", device.name))
}

fn blob_out(device: &Device, peer: Option<&Device>) -> Vec<u8> {
    device
        .conn()
        .query_row("SELECT sync_bundle_out(?1)", [peer.map(Device::id)], |r| {
            r.get(0)
        })
        .unwrap()
}

fn blob_in(device: &Device, blob: &[u8]) -> Result<String, String> {
    device
        .conn()
        .query_row("SELECT sync_bundle_in(?1)", [blob], |r| r.get(0))
        .map_err(|e| e.to_string())
}

#[test]
fn a_bundle_travels_as_a_blob_with_the_same_checks_as_a_file() {
    let a = Device::new("a", TODOS);
    let b = Device::new("b", TODOS);
    exec(
        a.conn(),
        "INSERT INTO todos VALUES ('1', 'milk', 1, x'00ff'), ('2', 'bread', NULL, zeroblob(70000));",
    );
    let blob = blob_out(&a, None);
    let report = blob_in(&b, &blob).unwrap();
    assert!(report.contains("\"applied_count\":2"), "{report}");
    assert_eq!(a.dump("todos"), b.dump("todos"));
    // the same bundle again: recognised, nothing applied twice
    assert!(blob_in(&b, &blob).unwrap().contains("\"skipped\":true"));
    // a BLOB bundle is a file bundle's bytes: written to a file, it imports as one
    let c = Device::new("c", TODOS);
    let path = c.db.path().with_file_name("from-blob.bundle");
    std::fs::write(&path, &blob).unwrap();
    assert_eq!(c.import(&path).applied, 2);

    // peer-aware: after b's bundle came back, a sends b only what b lacks
    b.import(&a.bundle_for(Some(&b)));
    a.import(&b.bundle_for(Some(&a)));
    exec(a.conn(), "UPDATE todos SET n = 2 WHERE id = '1'");
    let blob = blob_out(&a, Some(&b));
    assert!(blob_in(&b, &blob)
        .unwrap()
        .contains("\"total_operations\":1"));
    assert_eq!(a.dump("todos"), b.dump("todos"));
}

#[test]
fn a_bad_blob_is_refused_and_changes_nothing() {
    let a = Device::new("a", TODOS);
    let b = Device::new("b", TODOS);
    exec(
        a.conn(),
        "INSERT INTO todos(id, title) VALUES ('1', 'milk')",
    );
    let before = common::snapshot(b.conn());
    let e = blob_in(&b, b"not a bundle at all").unwrap_err();
    assert!(
        e.contains("sync_bundle_in: bundle (a BLOB of 19 bytes): not a readable bundle"),
        "{e}"
    );
    // a bundle cut short, and one with a byte changed in its ops
    let blob = blob_out(&a, None);
    let e = blob_in(&b, &blob[..blob.len() / 2]).unwrap_err();
    assert!(e.contains("a BLOB of"), "{e}");
    let mut edited = blob.clone();
    let at = edited
        .windows(4)
        .rposition(|w| w == b"milk")
        .expect("the value is in the bundle");
    edited[at] = b's';
    let e = blob_in(&b, &edited).unwrap_err();
    assert!(e.contains("hash"), "{e}");
    let e = common::refusal(b.conn(), "SELECT sync_bundle_in(42)", []);
    assert!(
        e.contains("expects the bundle's path as TEXT or the bundle itself as a BLOB"),
        "{e}"
    );
    assert_eq!(common::snapshot(b.conn()), before);
    assert!(b.conn().is_autocommit());
}

#[test]
fn a_blob_longer_than_the_connection_allows_is_refused_with_what_to_do() {
    let a = Device::new("a", TODOS);
    exec(
        a.conn(),
        "INSERT INTO todos(id, data) VALUES ('1', zeroblob(50000))",
    );
    a.conn()
        .set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, 60_000)
        .unwrap();
    let e = common::refusal(a.conn(), "SELECT sync_bundle_out(NULL)", []);
    assert!(
        e.contains("SQLITE_LIMIT_LENGTH") && e.contains("sync_bundle_out(peer, path)"),
        "{e}"
    );
}

#[test]
fn an_export_inside_a_statement_that_writes() {
    let a = Device::new("a", TODOS);
    exec(
        a.conn(),
        "INSERT INTO todos(id, title) VALUES ('1', 'milk')",
    );
    let outbox = Dir::new();
    let attached = outbox.path().join("outbox.db");
    a.conn()
        .execute("ATTACH ?1 AS outbox", [attached.to_str().unwrap()])
        .unwrap();
    // into another database of the connection: the export reads one snapshot of this one
    exec(
        a.conn(),
        "CREATE TABLE outbox.queue(bundle BLOB);
         INSERT INTO outbox.queue SELECT sync_bundle_out(NULL);",
    );
    let queued: Vec<(Vec<u8>,)> = rows(a.conn(), "SELECT bundle FROM outbox.queue");
    let b = Device::new("b", TODOS);
    blob_in(&b, &queued[0].0).unwrap();
    assert_eq!(a.dump("todos"), b.dump("todos"));
    // into this database too: the bundle commits or rolls back with the statement
    exec(
        a.conn(),
        "CREATE TABLE queue(bundle BLOB);
         INSERT INTO queue SELECT sync_bundle_out(NULL);",
    );
    let queued: Vec<(Vec<u8>,)> = rows(a.conn(), "SELECT bundle FROM queue");
    let c = Device::new("c", TODOS);
    // an import inside a statement that writes cannot run (it needs a savepoint of its own)
    let e = common::refusal(
        c.conn(),
        "CREATE TABLE log AS SELECT sync_bundle_in(?1) AS r",
        [&queued[0].0],
    );
    assert!(e.contains("call it in a SELECT of its own"), "{e}");
    blob_in(&c, &queued[0].0).unwrap();
    assert_eq!(a.dump("todos"), c.dump("todos"));
    // the same for a bundle imported before, which would write nothing
    let e = common::refusal(
        c.conn(),
        "CREATE TABLE log AS SELECT sync_bundle_in(?1) AS r",
        [&queued[0].0],
    );
    assert!(e.contains("call it in a SELECT of its own"), "{e}");
    // inside BEGIN, an export in a statement that writes is refused, saying why
    exec(c.conn(), "CREATE TABLE queue(bundle BLOB); BEGIN");
    let e = common::refusal(
        c.conn(),
        "INSERT INTO queue SELECT sync_bundle_out(NULL)",
        [],
    );
    assert!(e.contains("or this statement writes"), "{e}");
    exec(c.conn(), "ROLLBACK");
}

#[test]
fn a_bundle_cut_short_or_passed_as_text_says_what_to_do() {
    let a = Device::new("a", TODOS);
    let b = Device::new("b", TODOS);
    exec(
        a.conn(),
        "INSERT INTO todos(id, data) VALUES ('1', zeroblob(20000))",
    );
    let blob = blob_out(&a, None);
    for cut in [0, 100, 4096, blob.len() / 2, blob.len() - 1] {
        let path = b.db.path().with_file_name(format!("cut-{cut}.bundle"));
        std::fs::write(&path, &blob[..cut]).unwrap();
        for got in [
            blob_in(&b, &blob[..cut]),
            b.try_import(&path).map(|_| String::new()),
        ] {
            match got {
                Err(e) => assert!(e.contains("cut short"), "{cut} bytes: {e}"),
                // a last page cut where it holds nothing: every op is there, and checked
                Ok(_) => assert_eq!(cut, blob.len() - 1),
            }
        }
    }
    // the bytes as text (base64, say): named as what they are, not echoed whole
    let text: String = "U1FMaXRlIGZvcm1hdCAz".repeat(100);
    let e = common::refusal(b.conn(), "SELECT sync_bundle_in(?1)", [&text]);
    assert!(
        e.contains("pass the bundle itself as a BLOB") && e.len() < 400,
        "{e}"
    );
    // the bundle's own bytes cast to TEXT (they hold NULs): named so, whole, not cut at a NUL
    let e = common::refusal(
        b.conn(),
        "SELECT sync_bundle_in(CAST(?1 AS TEXT))",
        [&blob[..]],
    );
    assert!(
        e.contains("\\0") && e.contains("pass the bundle itself as a BLOB") && e.len() < 400,
        "{e}"
    );
}

#[test]
fn an_import_counts_the_rows_held_out() {
    let schema = "CREATE TABLE people(id TEXT PRIMARY KEY, email TEXT UNIQUE);
                  SELECT sync_enable('people');";
    let a = Device::new("a", schema);
    let b = Device::new("b", schema);
    exec(
        a.conn(),
        "INSERT INTO people VALUES ('pa', 'same@example.com')",
    );
    exec(
        b.conn(),
        "INSERT INTO people VALUES ('pb', 'same@example.com')",
    );
    let got: i64 = b
        .conn()
        .query_row(
            "SELECT sync_bundle_in(?1) ->> 'held_out_count'",
            [a.bundle_for(None).to_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(got, 1);
    assert_eq!(status(&b, "$.held_out_rows"), Value::Text("1".into()));
}

#[test]
fn a_device_alone_in_a_folder_writes_each_of_its_ops_once() {
    let a = Device::new("a", TODOS);
    let folder = Dir::new();
    exec(a.conn(), "INSERT INTO todos(id) VALUES ('1')");
    folder_call(&a, "sync_folder_out", folder.path());
    assert!(folder_call(&a, "sync_folder_out", folder.path()).contains("\"path\":null"));
    exec(a.conn(), "INSERT INTO todos(id) VALUES ('2')");
    folder_call(&a, "sync_folder_out", folder.path());
    assert!(folder_call(&a, "sync_folder_out", folder.path()).contains("\"path\":null"));
    assert_eq!(std::fs::read_dir(folder.path()).unwrap().count(), 2);
    // a folder that is not there is refused alike by the three calls
    for f in ["sync_folder_in", "sync_folder_out", "sync_folder_prune"] {
        let e = common::refusal(a.conn(), &format!("SELECT {f}('no/such/folder')"), []);
        assert!(e.contains("is not a folder (create it"), "{f}: {e}");
    }
}

/// `sync_folder_in` reports, over the bundles it imported, what `sync_bundle_in` reports of
/// each: a column this device lacks (`waiting_for_schema`), duplicates, rows held out.
#[test]
fn a_folder_import_names_the_columns_this_device_lacks() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    let folder = Dir::new();
    exec(
        a.conn(),
        "ALTER TABLE todos ADD COLUMN due TEXT; INSERT INTO todos(id, due) VALUES ('1', 'monday')",
    );
    folder_call(&a, "sync_folder_out", folder.path());
    let first = folder_call(&b, "sync_folder_in", folder.path());
    for key in [
        "\"imported\":1",
        "\"held_out_count\":0",
        "\"duplicate_count\":0",
        "\"discarded_count\":0",
        "\"waiting_for_schema\":[\"todos.due\"]",
        "\"declared_otherwise\":[]",
    ] {
        assert!(first.contains(key), "{key} in {first}");
    }
    // a bundle imported before says nothing again
    let again = folder_call(&b, "sync_folder_in", folder.path());
    assert!(again.contains("\"imported_before\":1"), "{again}");
    assert!(again.contains("\"waiting_for_schema\":[]"), "{again}");
    exec(b.conn(), "ALTER TABLE todos ADD COLUMN due TEXT");
    folder_call(&b, "sync_folder_in", folder.path());
    assert_eq!(a.dump("todos"), b.dump("todos"));
}

/// A peer renames a row in three bundles while this device edits it offline: the folder import
/// reports one conflict (the one open at its end), not one per bundle.
#[test]
fn a_folder_import_counts_the_conflicts_it_leaves_open() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    let folder = Dir::new();
    exec(
        a.conn(),
        "INSERT INTO todos(id, title) VALUES ('1', 'milk')",
    );
    folder_call(&a, "sync_folder_out", folder.path());
    folder_call(&b, "sync_folder_in", folder.path());
    folder_call(&b, "sync_folder_out", folder.path());
    folder_call(&a, "sync_folder_in", folder.path());
    exec(
        a.conn(),
        "UPDATE todos SET title = 'oat milk' WHERE id = '1'",
    );
    for title in ["bread", "rye bread", "sourdough"] {
        exec(
            b.conn(),
            &format!("UPDATE todos SET title = '{title}' WHERE id = '1'"),
        );
        folder_call(&b, "sync_folder_out", folder.path());
    }
    let got = folder_call(&a, "sync_folder_in", folder.path());
    assert!(got.contains("\"conflict_count\":1,"), "{got}");
    assert_eq!(a.conflicts().len(), 1);
}

#[test]
fn a_bundle_is_inspected_without_importing_it() {
    let a = Device::new("a", TODOS);
    let b = Device::new("b", TODOS);
    exec(
        a.conn(),
        "CREATE TABLE notes(id TEXT PRIMARY KEY, body TEXT); SELECT sync_enable('notes');
         INSERT INTO todos(id, title) VALUES ('1', 'milk'), ('2', 'bread');
         INSERT INTO notes VALUES ('n', 'hello');",
    );
    let path = a.bundle_for(None);
    let info = |device: &Device, arg: &str| -> Vec<(String, String, i64, String, String, String)> {
        rows(
            device.conn(),
            &format!(
                "SELECT i ->> 'source_device_id', i ->> 'clock', i ->> 'ops', i ->> 'tables',
                        i ->> 'devices', coalesce(i ->> 'imported_here', '-') || '/' ||
                        coalesce(i ->> 'new_here', '-')
                 FROM (SELECT sync_bundle_info({arg}) AS i)"
            ),
        )
    };
    let file_arg = format!("'{}'", path.to_str().unwrap());
    let before = common::snapshot(b.conn());
    let got = info(&b, &file_arg);
    assert_eq!(got[0].0, a.id());
    assert_eq!(got[0].1, format!("{{\"{}\":3}}", a.id()));
    assert_eq!(got[0].2, 3);
    assert_eq!(got[0].3, "{\"notes\":1,\"todos\":2}");
    assert_eq!(
        got[0].4,
        format!(
            "{{\"{}\":{{\"ops\":3,\"from_seq\":1,\"to_seq\":3}}}}",
            a.id()
        )
    );
    assert_eq!(got[0].5, "0/3");
    assert_eq!(
        common::snapshot(b.conn()),
        before,
        "inspecting writes nothing"
    );
    b.import(&path);
    assert_eq!(info(&b, &file_arg)[0].5, "1/0");
    // the same from a BLOB, and in a database that is no device (nothing of it is said)
    let plain = rusqlite::Connection::open_in_memory().unwrap();
    common::load(&plain);
    let blob_info: String = plain
        .query_row(
            "SELECT sync_bundle_info(readfile_or_blob) FROM (SELECT ?1 AS readfile_or_blob)",
            [std::fs::read(&path).unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(blob_info.contains("\"tables\":{\"notes\":1,\"todos\":2}"));
    assert!(!blob_info.contains("imported_here"), "{blob_info}");
    // a bundle with a changed op is refused by inspection as by import
    common::bundle::replace_in_stream(&path, b"hello", b"jello");
    let e = common::refusal(
        b.conn(),
        "SELECT sync_bundle_info(?1)",
        [path.to_str().unwrap()],
    );
    assert!(e.contains("sync_bundle_info: bundle"), "{e}");
}

/// `sync_status()`'s fields, read with SQLite's JSON operators.
fn status(device: &Device, path: &str) -> Value {
    device
        .conn()
        .query_row(&format!("SELECT sync_status() -> '{path}'"), [], |r| {
            r.get(0)
        })
        .unwrap()
}

fn lacks(device: &Device, peer: &Device) -> i64 {
    device
        .conn()
        .query_row(
            "SELECT p.value ->> 'lacks' FROM json_each(sync_status(), '$.peers') p
             WHERE p.value ->> 'device_id' = ?1",
            [peer.id()],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn status_shows_peers_pending_ops_waiting_tables_and_records() {
    let a = Device::new("a", TODOS);
    let b = Device::new("b", TODOS);
    exec(
        a.conn(),
        "INSERT INTO todos(id, n) VALUES ('1', 1), ('2', 2)",
    );
    assert_eq!(status(&a, "$.peers"), Value::Text("[]".into()));
    assert_eq!(status(&a, "$.log.local_ops"), Value::Text("2".into()));
    common::send(&a, &b);
    common::send(&b, &a); // b's bundle tells a what b has
    assert_eq!(lacks(&a, &b), 0);
    exec(
        a.conn(),
        "INSERT INTO todos(id, n) VALUES ('3', 3), ('4', 4), ('5', 5)",
    );
    assert_eq!(lacks(&a, &b), 3, "the badge: 3 changes not yet sent to b");
    common::send(&a, &b);
    assert_eq!(
        lacks(&a, &b),
        3,
        "sending is not knowing: b has not said so yet"
    );
    common::send(&b, &a);
    assert_eq!(lacks(&a, &b), 0);

    // pending: d gets a's later ops without the earlier ones
    let all = a.bundle_for(None);
    exec(a.conn(), "UPDATE todos SET n = 10 WHERE id = '1'");
    exec(a.conn(), "UPDATE todos SET n = 11 WHERE id = '1'");
    let later = a.bundle_for(Some(&b)); // ops 6 and 7
    let d = Device::new("d", TODOS);
    assert_eq!(d.import(&later).pending, 2);
    assert_eq!(
        status(&d, "$.pending"),
        Value::Text(format!(
            "{{\"ops\":2,\"devices\":{{\"{}\":{{\"ops\":2,\"from_seq\":6,\"to_seq\":7,\"missing\":[1,5]}}}}}}",
            a.id()
        ))
    );
    d.import(&all);
    assert_eq!(
        status(&d, "$.pending"),
        Value::Text("{\"ops\":0,\"devices\":{}}".into())
    );
    // a device known only through another: what it has is not known here
    let e = Device::new("e", TODOS);
    e.import(&b.bundle_for(None));
    let relayed: (i64, Option<i64>) = e
        .conn()
        .query_row(
            "SELECT p.value ->> 'heard_from', p.value ->> 'lacks'
             FROM json_each(sync_status(), '$.peers') p WHERE p.value ->> 'device_id' = ?1",
            [a.id()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(relayed, (0, None));
}

#[test]
fn status_counts_records_and_tables_waiting() {
    let a = Device::new("a", TODOS);
    let b = Device::new("b", TODOS);
    exec(a.conn(), "INSERT INTO todos(id, n) VALUES ('1', 1)");
    common::send(&a, &b);
    exec(a.conn(), "UPDATE todos SET n = 2 WHERE id = '1'");
    exec(b.conn(), "UPDATE todos SET n = 3 WHERE id = '1'");
    common::send(&b, &a);
    assert_eq!(status(&a, "$.open_conflicts"), Value::Text("1".into()));
    assert_eq!(status(&a, "$.held_out_rows"), Value::Text("0".into()));
    let c = Device::new("c", "SELECT 1");
    c.import(&a.bundle_for(None));
    let waiting = json(
        &c,
        "SELECT sync_status() -> '$.waiting_for_schema[0].table'",
    );
    assert_eq!(waiting, "\"todos\"");
}

/// One device of the folder star, with the keys it inserted.
struct Member {
    device: Device,
    inserted: Vec<String>,
}

fn folder_call(device: &Device, f: &str, dir: &std::path::Path) -> String {
    device
        .conn()
        .query_row(&format!("SELECT {f}(?1)"), [dir.to_str().unwrap()], |r| {
            r.get(0)
        })
        .unwrap_or_else(|e| panic!("{}: {f}: {e}", device.name))
}

/// Five devices that never meet, syncing only through one shared folder, visited in random
/// orders; some visits prune the folder, and the folder's sync tool leaves half-copied files
/// that complete later. In the end every device holds every row any of them wrote, the same
/// tables and the same records.
fn folder_star(seed: u64) {
    let mut rng = Rng(seed);
    let folder = Dir::new();
    let dir = folder.path();
    let mut members: Vec<Member> = (0..5)
        .map(|i| Member {
            device: Device::new(&format!("d{i}"), TODOS),
            inserted: Vec::new(),
        })
        .collect();
    let mut partial: Option<(std::path::PathBuf, Vec<u8>)> = None;
    for round in 0..12 {
        let mut order: Vec<usize> = (0..5).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.pick(i + 1));
        }
        for i in order {
            if !rng.chance(80) {
                continue;
            }
            let m = &mut members[i];
            folder_call(&m.device, "sync_folder_in", dir);
            for _ in 0..rng.below(4) {
                if rng.chance(60) || m.inserted.is_empty() {
                    let key = format!("{}-{}", m.device.name, m.inserted.len());
                    m.device
                        .conn()
                        .execute(
                            "INSERT INTO todos(id, n) VALUES (?1, ?2)",
                            rusqlite::params![key, round],
                        )
                        .unwrap();
                    m.inserted.push(key);
                } else {
                    // edits of rows any device made: concurrent ones become records
                    m.device
                        .conn()
                        .execute(
                            "UPDATE todos SET title = ?1 WHERE rowid IN
                             (SELECT rowid FROM todos ORDER BY id LIMIT 1 OFFSET ?2)",
                            rusqlite::params![m.device.name, rng.below(6) as i64],
                        )
                        .unwrap();
                }
            }
            let out = folder_call(&m.device, "sync_folder_out", dir);
            if rng.chance(15) {
                folder_call(&m.device, "sync_folder_prune", dir);
            }
            // the sync tool: a bundle shows up half copied, completed at a later visit
            if let Some((path, bytes)) = partial.take() {
                std::fs::write(path, bytes).unwrap();
            } else if rng.chance(20) && !out.contains("\"path\":null") {
                let written: String = out
                    .split("\"path\":\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .into();
                let bytes = std::fs::read(&written).unwrap();
                let copy = dir.join(format!("copy-{round}-{i}.bundle"));
                std::fs::write(&copy, &bytes[..bytes.len() / 3]).unwrap();
                partial = Some((copy, bytes));
            }
        }
    }
    if let Some((path, bytes)) = partial.take() {
        std::fs::write(path, bytes).unwrap();
    }
    // everyone visits until nothing moves: twice around is enough for the last writes
    for _ in 0..3 {
        for m in &members {
            folder_call(&m.device, "sync_folder_in", dir);
            folder_call(&m.device, "sync_folder_out", dir);
        }
    }
    let first = &members[0].device;
    let keys: Vec<(String,)> = rows(first.conn(), "SELECT id FROM todos");
    for m in &members {
        for key in &m.inserted {
            assert!(keys.contains(&(key.clone(),)), "seed {seed}: {key} lost");
        }
        assert_eq!(
            m.device.dump("todos"),
            first.dump("todos"),
            "seed {seed}: tables differ"
        );
        assert_eq!(
            m.device.conflicts(),
            first.conflicts(),
            "seed {seed}: records differ"
        );
        assert_eq!(status(&m.device, "$.pending.ops"), Value::Text("0".into()));
    }
    // the folder empties to one bundle per device once everyone has everything
    for m in &members {
        folder_call(&m.device, "sync_folder_prune", dir);
    }
    let left = std::fs::read_dir(dir).unwrap().count();
    assert!(
        left <= 5 + 1,
        "seed {seed}: {left} files left after pruning"
    );
}

#[test]
fn five_devices_converge_through_one_shared_folder() {
    let seeds: u64 = std::env::var("SYNC_FOLDER_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    for seed in 1..=seeds {
        folder_star(seed * 7919);
    }
}

#[test]
fn sync_conflicts_is_a_virtual_table_the_planner_filters() {
    let schema = "CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT);
                  CREATE TABLE people(id TEXT PRIMARY KEY, email TEXT UNIQUE);
                  SELECT sync_enable('todos'), sync_enable('people');";
    let a = Device::new("a", schema);
    let b = Device::new("b", schema);
    let c = Device::new("c", schema);
    exec(a.conn(), "INSERT INTO todos VALUES ('1', 'x'), ('2', 'y')");
    common::send(&a, &b);
    common::send(&a, &c);
    exec(
        a.conn(),
        "UPDATE todos SET title = 'a' WHERE id IN ('1', '2');",
    );
    exec(c.conn(), "UPDATE todos SET title = 'c' WHERE id = '1';");
    exec(
        b.conn(),
        "UPDATE todos SET title = 'b' WHERE id IN ('1', '2');
         INSERT INTO people VALUES ('pb', 'same@example.com');",
    );
    common::send(&c, &b);
    exec(
        a.conn(),
        "INSERT INTO people VALUES ('pa', 'same@example.com')",
    );
    common::send(&a, &b);
    let all: Vec<(String, String, String, i64)> = rows(
        b.conn(),
        "SELECT id, table_name, kind, resolved FROM sync_conflicts ORDER BY table_name, pk",
    );
    assert_eq!(all.len(), 4, "{all:?}");
    let count = |sql: &str| -> i64 {
        b.conn()
            .query_row(
                &format!("SELECT count(*) FROM sync_conflicts WHERE {sql}"),
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(count(&format!("id = '{}'", all[0].0)), 1);
    assert_eq!(count("id = 'not an id'"), 0);
    assert_eq!(count("table_name = 'todos'"), 3);
    assert_eq!(count("kind = 'constraint'"), 1);
    assert_eq!(count("resolved = 0 AND table_name = 'people'"), 1);
    assert_eq!(count("resolved = 1"), 0);
    // the planner hands the `=` to the table (idxNum: a bit per column)
    let plan: Vec<(i64, i64, i64, String)> = rows(
        b.conn(),
        &format!(
            "EXPLAIN QUERY PLAN SELECT * FROM sync_conflicts WHERE id = '{}'",
            all[0].0
        ),
    );
    assert!(plan[0].3.contains("VIRTUAL TABLE INDEX 1"), "{plan:?}");
    // resolving over the table as it reads it: row 1's title has three sides (two records);
    // the first resolution closes both, and the second record is not returned once gone
    let resolved: Vec<(i64,)> = rows(
        b.conn(),
        "SELECT sync_resolve(id, 'remote') FROM sync_conflicts
         WHERE NOT resolved AND kind = 'concurrent'",
    );
    assert_eq!(resolved.len(), 2);
    assert_eq!(count("resolved = 0 AND kind = 'concurrent'"), 0);
    // the same records without the extension: the view
    let plain = b.db.plain_connection();
    let n: i64 = plain
        .query_row("SELECT count(*) FROM sync_conflict_records", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 4, "three resolved, one held out");
    assert!(plain
        .query_row("SELECT count(*) FROM sync_conflicts", [], |r| r
            .get::<_, i64>(0))
        .is_err());
}
