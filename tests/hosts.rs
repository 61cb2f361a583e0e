//! Capture does not depend on the writer: connections that never loaded the extension,
//! `trusted_schema=OFF`, recursive triggers on or off.

mod common;

use common::*;
use rusqlite::params;
use rusqlite::types::Value;

fn enabled_device() -> TestDb {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a, b); SELECT sync_enable('t');",
    );
    db
}

#[test]
fn writes_from_a_connection_without_the_extension_are_captured_exactly() {
    let db = enabled_device();
    let plain = db.plain_connection();
    exec(&plain, "PRAGMA trusted_schema = OFF");
    let values = [
        Value::Real(0.1 + 0.2),
        Value::Real(-0.0),
        Value::Real(f64::NEG_INFINITY),
        Value::Integer(i64::MIN),
        Value::Blob(vec![0, 1, 2]),
    ];
    for (i, v) in values.iter().enumerate() {
        plain
            .execute("INSERT INTO t VALUES (?1, ?2, 'x')", params![i as i64, v])
            .unwrap();
    }
    exec(
        &plain,
        "UPDATE t SET b = 'y' WHERE id = 0; DELETE FROM t WHERE id = 1;",
    );
    // the plain connection cannot call the extension, but its writes are in the log
    assert!(plain
        .query_row("SELECT sync_clock()", [], |_| Ok(()))
        .is_err());
    let ops = raw_ops(&db.conn);
    assert_eq!(ops.len(), values.len() + 2);
    for (op, v) in ops.iter().zip(&values) {
        assert!(
            same_value(&op.values[1], v),
            "{v:?} captured as {:?}",
            op.values[1]
        );
    }
    assert_eq!(ops[5].kind, 1);
    assert_eq!(ops[6].kind, 2);
}

#[test]
fn sync_log_reads_under_trusted_schema_off() {
    let db = enabled_device();
    exec(
        &db.conn,
        "PRAGMA trusted_schema = OFF; INSERT INTO t VALUES (1, 2, 3);",
    );
    assert_eq!(
        log(&db.conn)[0].2.as_deref(),
        Some(r#"{"id":1,"a":2,"b":3}"#)
    );
}

/// The ops a write produces, with recursive triggers on or off.
fn ops_of(recursive: bool, setup: &str, write: &str) -> Vec<(String, String, Option<String>)> {
    let db = device();
    exec(
        &db.conn,
        &format!(
            "PRAGMA recursive_triggers = {};",
            if recursive { "ON" } else { "OFF" }
        ),
    );
    exec(&db.conn, setup);
    let before = op_count(&db.conn) as usize;
    exec(&db.conn, write);
    log(&db.conn).split_off(before)
}

const SETUP: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, a, b UNIQUE);
                     INSERT INTO t VALUES (1, 'x', 'u');
                     SELECT sync_enable('t');";

#[test]
fn plain_writes_capture_the_same_with_recursive_triggers_on_or_off() {
    let write = "INSERT INTO t VALUES (2, 'y', 'v'); UPDATE t SET a = 'z'; UPDATE t SET id = 3 WHERE id = 2; DELETE FROM t WHERE id = 1;";
    let off = ops_of(false, SETUP, write);
    assert_eq!(off.len(), 6);
    assert_eq!(ops_of(true, SETUP, write), off);
}

#[test]
fn upsert_over_an_existing_row_is_the_same_update_either_way() {
    let write =
        "INSERT INTO t VALUES (1, 'new', 'u') ON CONFLICT(id) DO UPDATE SET a = excluded.a;";
    let off = ops_of(false, SETUP, write);
    assert_eq!(
        off,
        [(
            "update".into(),
            r#"{"id":1}"#.into(),
            Some(r#"{"a":"new"}"#.into())
        )]
    );
    assert_eq!(ops_of(true, SETUP, write), off);
}

#[test]
fn insert_or_replace_over_an_existing_row_captures_the_whole_new_row() {
    let write = "INSERT OR REPLACE INTO t VALUES (1, 'new', 'u');";
    let new_row = (
        "insert".to_string(),
        r#"{"id":1}"#.to_string(),
        Some(r#"{"id":1,"a":"new","b":"u"}"#.to_string()),
    );
    // recursive triggers off: SQLite fires no delete trigger, the insert op carries the overwrite
    assert_eq!(ops_of(false, SETUP, write), std::slice::from_ref(&new_row));
    // on: SQLite fires the delete trigger first; the delete and the insert of the same key are
    // adjacent ops of one device, and the insert still carries every column
    assert_eq!(
        ops_of(true, SETUP, write),
        [("delete".into(), r#"{"id":1}"#.into(), None), new_row]
    );
}

#[test]
fn foreign_key_cascades_are_captured_with_recursive_triggers_off() {
    let db = device();
    exec(
        &db.conn,
        "PRAGMA foreign_keys = ON; PRAGMA recursive_triggers = OFF;
         CREATE TABLE p(id INTEGER PRIMARY KEY);
         CREATE TABLE c(id INTEGER PRIMARY KEY, pid REFERENCES p(id) ON DELETE CASCADE ON UPDATE CASCADE);
         SELECT sync_enable('p'); SELECT sync_enable('c');
         INSERT INTO p VALUES (1), (2); INSERT INTO c VALUES (10, 1), (20, 2);
         DELETE FROM p WHERE id = 1;
         UPDATE p SET id = 3 WHERE id = 2;",
    );
    let ops: Vec<(String, i64)> = raw_ops(&db.conn)
        .into_iter()
        .map(|o| (o.table, o.kind))
        .collect();
    let expect = |t: &str, k: i64| (t.to_string(), k);
    // SQLite runs the cascade before the parent's own AFTER trigger
    assert_eq!(
        ops[4..],
        [
            expect("c", 2),
            expect("p", 2),
            expect("c", 1),
            expect("p", 2),
            expect("p", 0)
        ]
    );
}
