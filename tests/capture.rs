//! Capture: one op per committed row change, exact values, the right kind and columns.

mod common;

use common::*;
use rusqlite::params;
use rusqlite::types::Value;

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn insert_update_delete_each_append_one_op() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INTEGER);
                    SELECT sync_enable('t');
                    INSERT INTO t VALUES (1, 'x', 10);
                    UPDATE t SET b = 11 WHERE id = 1;
                    DELETE FROM t WHERE id = 1;",
    );
    let ops = raw_ops(&db.conn);
    assert_eq!(ops.iter().map(|o| o.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(ops.iter().map(|o| o.kind).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(
        ops[0].values,
        [Value::Integer(1), text("x"), Value::Integer(10)]
    );
    assert_eq!(ops[1].mask, Some(0b100));
    assert_eq!(
        ops[1].values,
        [Value::Integer(1), Value::Null, Value::Integer(11)]
    );
    assert_eq!(ops[2].values, [Value::Integer(1), Value::Null, Value::Null]);
    assert_eq!(
        log(&db.conn),
        [
            (
                "insert".into(),
                r#"{"id":1}"#.into(),
                Some(r#"{"id":1,"a":"x","b":10}"#.into())
            ),
            (
                "update".into(),
                r#"{"id":1}"#.into(),
                Some(r#"{"b":11}"#.into())
            ),
            ("delete".into(), r#"{"id":1}"#.into(), None),
        ]
    );
}

#[test]
fn multi_row_statement_appends_one_op_per_row() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, n);
                    SELECT sync_enable('t');
                    WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 500)
                    INSERT INTO t SELECT i, i * 2 FROM c;
                    UPDATE t SET n = n + 1 WHERE id % 2 = 0;
                    DELETE FROM t WHERE id > 400;",
    );
    assert_eq!(op_count(&db.conn), 500 + 250 + 100);
}

#[test]
fn rolled_back_transaction_appends_nothing_and_leaves_no_gap() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, n);
                    SELECT sync_enable('t');
                    INSERT INTO t VALUES (1, 1);
                    BEGIN; INSERT INTO t VALUES (2, 2); UPDATE t SET n = 5; DELETE FROM t; ROLLBACK;
                    INSERT INTO t VALUES (3, 3);",
    );
    let ops = raw_ops(&db.conn);
    assert_eq!(ops.iter().map(|o| o.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(ops[1].values[0], Value::Integer(3));
}

#[test]
fn rolled_back_savepoint_appends_nothing() {
    let db = device();
    exec(&db.conn, "CREATE TABLE t(id INTEGER PRIMARY KEY, n);
                    SELECT sync_enable('t');
                    BEGIN;
                    INSERT INTO t VALUES (1, 1);
                    SAVEPOINT s; INSERT INTO t VALUES (2, 2); UPDATE t SET n = 9; ROLLBACK TO s; RELEASE s;
                    INSERT INTO t VALUES (3, 3);
                    COMMIT;");
    let keys: Vec<Value> = raw_ops(&db.conn)
        .into_iter()
        .map(|o| o.values[0].clone())
        .collect();
    assert_eq!(keys, [Value::Integer(1), Value::Integer(3)]);
    assert_eq!(
        call(&db.conn, "SELECT max(seq) FROM _sync_ops"),
        Ok(Value::Integer(2))
    );
}

#[test]
fn update_that_changes_nothing_appends_nothing() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a, b);
                    INSERT INTO t VALUES (1, 'x', NULL);
                    SELECT sync_enable('t');
                    UPDATE t SET a = 'x', b = NULL;
                    UPDATE t SET a = a;
                    UPDATE t SET b = -0.0 WHERE 0;",
    );
    assert_eq!(op_count(&db.conn), 1); // the enable-time insert only
}

#[test]
fn storage_class_change_is_a_change_but_sign_of_zero_is_not() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a, z);
                    INSERT INTO t VALUES (1, 1, 0.0);
                    SELECT sync_enable('t');
                    UPDATE t SET a = 1.0;
                    UPDATE t SET z = -0.0;
                    UPDATE t SET a = '1.0';",
    );
    let ops = raw_ops(&db.conn);
    assert_eq!(ops.len(), 3);
    assert_eq!(ops[1].values[1], Value::Real(1.0));
    assert_eq!(ops[2].values[1], text("1.0"));
}

#[test]
fn a_change_a_collation_calls_equal_is_still_a_change() {
    // NOCASE sees 'Bob' and 'bob' as equal and RTRIM 'x' and 'x  ', but the rows differ: a peer
    // must get the new text
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id TEXT PRIMARY KEY, a TEXT COLLATE NOCASE, b COLLATE RTRIM, c TEXT);
                    INSERT INTO t VALUES ('k', 'Bob', 'x', 'same');
                    SELECT sync_enable('t');
                    UPDATE t SET a = 'bob';
                    UPDATE t SET b = 'x  ';
                    UPDATE t SET a = 'bob', b = 'x  ', c = 'same';",
    );
    let ops = raw_ops(&db.conn);
    assert_eq!(ops.iter().map(|o| o.kind).collect::<Vec<_>>(), [0, 1, 1]);
    assert_eq!(ops[1].mask, Some(0b0010));
    assert_eq!(ops[1].values[1], text("bob"));
    assert_eq!(ops[2].mask, Some(0b0100));
    assert_eq!(ops[2].values[2], text("x  "));
}

#[test]
fn a_key_compared_by_a_collation_is_refused() {
    // 'Work' and 'work' would be two rows to sync and one to the table: devices would differ
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE tags(name TEXT PRIMARY KEY COLLATE NOCASE, color TEXT);
         CREATE TABLE pairs(a TEXT, b TEXT COLLATE RTRIM, PRIMARY KEY (a, b)) WITHOUT ROWID;
         CREATE TABLE clause(name TEXT, v, PRIMARY KEY (name COLLATE NOCASE));
         CREATE TABLE clause2(a, name TEXT, PRIMARY KEY (a, name COLLATE RTRIM)) WITHOUT ROWID;",
    );
    for (table, column) in [
        ("tags", "name"),
        ("pairs", "b"),
        ("clause", "name"),
        ("clause2", "name"),
    ] {
        let err = call(&db.conn, &format!("SELECT sync_enable('{table}')")).unwrap_err();
        assert!(
            err.contains(&format!("compares column \"{column}\" by a collation"))
                && err.contains("declare the key column without COLLATE"),
            "{err}"
        );
    }
    assert_eq!(op_count(&db.conn), 0);
}

#[test]
fn triggers_of_an_earlier_build_are_written_again_by_sync_init() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT COLLATE NOCASE);
         INSERT INTO t VALUES (1, 'Bob');
         SELECT sync_enable('t');",
    );
    // the update trigger as a build before this one wrote it: no COLLATE BINARY, and named
    // without what to do before a DROP COLUMN
    let (name, old): (String, String) = db
        .conn
        .query_row(
            "SELECT name, replace(replace(sql, ' COLLATE BINARY', ''), '\"' || name || '\"',
                                  '_sync_1_update')
             FROM sqlite_schema WHERE name LIKE '\\_sync\\_1\\_update%' ESCAPE '\\'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        old.starts_with("CREATE TRIGGER _sync_1_update AFTER"),
        "{old}"
    );
    exec(&db.conn, &format!("DROP TRIGGER \"{name}\""));
    exec(&db.conn, &old);
    exec(&db.conn, "UPDATE t SET a = 'bob'");
    assert_eq!(op_count(&db.conn), 1, "the old trigger misses the change");
    exec(&db.conn, "SELECT sync_init(); UPDATE t SET a = 'BOB'");
    let ops = raw_ops(&db.conn);
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[1].values[1], text("BOB"));
    let old_names: i64 = db
        .conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = '_sync_1_update'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old_names, 0);
}

#[test]
fn drop_column_of_a_captured_table_is_refused_with_what_to_do() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a, b); SELECT sync_enable('t');
         INSERT INTO t VALUES (1, 'x', 'y');",
    );
    let err = call(&db.conn, "ALTER TABLE t DROP COLUMN b").unwrap_err();
    assert!(
        err.contains(
            "to drop a column, call sync_disable on the table first and sync_enable after"
        ),
        "{err}"
    );
    exec(
        &db.conn,
        "SELECT sync_disable('t'); ALTER TABLE t DROP COLUMN b; SELECT sync_enable('t');
         UPDATE t SET a = 'z';",
    );
    let log = log(&db.conn);
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[1].2.as_deref(), Some(r#"{"a":"z"}"#));
}

#[test]
fn update_records_only_the_changed_columns() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(a, id PRIMARY KEY, b, c) WITHOUT ROWID;
                    INSERT INTO t VALUES (1, 'k', 2, 3);
                    SELECT sync_enable('t');
                    UPDATE t SET a = 10, c = 30;
                    UPDATE t SET b = NULL;",
    );
    let ops = raw_ops(&db.conn);
    assert_eq!(ops[1].kind, 1);
    assert_eq!(ops[1].mask, Some(0b1001));
    assert_eq!(
        ops[1].values,
        [
            Value::Integer(10),
            text("k"),
            Value::Null,
            Value::Integer(30)
        ]
    );
    assert_eq!(ops[2].mask, Some(0b0100));
    let log = log(&db.conn);
    assert_eq!(log[1].2.as_deref(), Some(r#"{"a":10,"c":30}"#));
    assert_eq!(log[2].2.as_deref(), Some(r#"{"b":null}"#));
}

#[test]
fn primary_key_change_is_a_delete_and_an_insert() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a);
                    INSERT INTO t VALUES (1, 'x');
                    SELECT sync_enable('t');
                    UPDATE t SET id = 2, a = 'y';",
    );
    let log = log(&db.conn);
    assert_eq!(log.len(), 3);
    assert_eq!(log[1], ("delete".into(), r#"{"id":1}"#.into(), None));
    assert_eq!(
        log[2],
        (
            "insert".into(),
            r#"{"id":2}"#.into(),
            Some(r#"{"id":2,"a":"y"}"#.into())
        )
    );
}

#[test]
fn setting_the_rowid_of_an_integer_primary_key_table_changes_its_key() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a);
         INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z');
         SELECT sync_enable('t');
         UPDATE t SET rowid = 10 WHERE id = 1;
         UPDATE t SET _rowid_ = 20 WHERE id = 2;
         UPDATE t SET oid = 30, a = 'w' WHERE id = 3;",
    );
    let kinds: Vec<(String, String)> = log(&db.conn)[3..]
        .iter()
        .map(|(kind, pk, _)| (kind.clone(), pk.clone()))
        .collect();
    let op = |k: &str, id: i64| (k.to_string(), format!(r#"{{"id":{id}}}"#));
    assert_eq!(
        kinds,
        vec![
            op("delete", 1),
            op("insert", 10),
            op("delete", 2),
            op("insert", 20),
            op("delete", 3),
            op("insert", 30),
        ]
    );
}

#[test]
fn composite_key_change_of_one_part_is_a_delete_and_an_insert() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(x, y, v, PRIMARY KEY (y, x));
                    INSERT INTO t VALUES (1, 'a', 0);
                    SELECT sync_enable('t');
                    UPDATE t SET x = 2;",
    );
    let log = log(&db.conn);
    assert_eq!(log[1], ("delete".into(), r#"{"y":"a","x":1}"#.into(), None));
    assert_eq!(log[2].1, r#"{"y":"a","x":2}"#);
}

#[test]
fn every_kind_of_primary_key_identifies_its_row() {
    let db = device();
    let cases = [
        (
            "CREATE TABLE t1(id INTEGER PRIMARY KEY, v)",
            "t1",
            "INSERT INTO t1 VALUES (7, 'v')",
            r#"{"id":7}"#,
        ),
        (
            "CREATE TABLE t2(id TEXT PRIMARY KEY, v)",
            "t2",
            "INSERT INTO t2 VALUES ('ké', 'v')",
            r#"{"id":"ké"}"#,
        ),
        (
            "CREATE TABLE t3(id BLOB PRIMARY KEY, v)",
            "t3",
            "INSERT INTO t3 VALUES (x'00ff', 'v')",
            r#"{"id":{"blob":"00ff"}}"#,
        ),
        (
            "CREATE TABLE t4(a, b, v, PRIMARY KEY (a, b))",
            "t4",
            "INSERT INTO t4 VALUES (1, 'b', 'v')",
            r#"{"a":1,"b":"b"}"#,
        ),
        (
            "CREATE TABLE t5(v, w, id INTEGER PRIMARY KEY)",
            "t5",
            "INSERT INTO t5 VALUES ('v', 1, 3)",
            r#"{"id":3}"#,
        ),
        (
            "CREATE TABLE t6(v, id TEXT PRIMARY KEY) WITHOUT ROWID",
            "t6",
            "INSERT INTO t6 VALUES ('v', 'k')",
            r#"{"id":"k"}"#,
        ),
    ];
    for (create, name, insert, pk) in cases {
        exec(&db.conn, create);
        call(&db.conn, &format!("SELECT sync_enable('{name}')")).unwrap();
        exec(&db.conn, insert);
        exec(
            &db.conn,
            &format!("UPDATE {name} SET v = 'w'; DELETE FROM {name};"),
        );
        let mut stmt = db
            .conn
            .prepare(r#"SELECT kind, pk FROM sync_log WHERE "table" = ?1 ORDER BY seq"#)
            .unwrap();
        let rows: Vec<(String, String)> = stmt
            .query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let kinds: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(kinds, ["insert", "update", "delete"], "{name}");
        assert!(rows.iter().all(|r| r.1 == pk), "{name}: {rows:?}");
    }
}

#[test]
fn names_that_need_quoting_work() {
    let db = device();
    exec(
        &db.conn,
        r#"CREATE TABLE "order"("due date" TEXT, "we""ird" INTEGER PRIMARY KEY, "select" BLOB);
                      SELECT sync_enable('order');
                      INSERT INTO "order" VALUES ('today', 1, x'01');
                      UPDATE "order" SET "due date" = 'tomorrow', "select" = NULL;
                      UPDATE "order" SET "we""ird" = 2;
                      DELETE FROM "order";"#,
    );
    let log = log(&db.conn);
    assert_eq!(log.len(), 5);
    assert_eq!(
        log[0].2.as_deref(),
        Some(r#"{"due date":"today","we\"ird":1,"select":{"blob":"01"}}"#)
    );
    assert_eq!(
        log[1].2.as_deref(),
        Some(r#"{"due date":"tomorrow","select":null}"#)
    );
    assert_eq!(log[4], ("delete".into(), r#"{"we\"ird":2}"#.into(), None));

    exec(
        &db.conn,
        r#"CREATE TABLE "it's ""quoted""; table"("a""b" TEXT PRIMARY KEY);
           SELECT sync_enable('it''s "quoted"; table');
           INSERT INTO "it's ""quoted""; table" VALUES ('x');"#,
    );
    let last = raw_ops(&db.conn).pop().unwrap();
    assert_eq!(last.table, r#"it's "quoted"; table"#);
    assert_eq!(last.values[0], text("x"));
}

#[test]
fn edge_values_are_captured_exactly() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v); SELECT sync_enable('t');",
    );
    let big_text: String = "ü€𝄞x".repeat(1 << 18); // over 1 MB of multi-byte text
    let values = vec![
        Value::Null,
        Value::Integer(i64::MIN),
        Value::Integer(i64::MAX),
        Value::Integer(0),
        Value::Real(0.1 + 0.2),
        Value::Real(-0.0),
        Value::Real(f64::INFINITY),
        Value::Real(f64::NEG_INFINITY),
        Value::Real(f64::MIN_POSITIVE),
        Value::Real(5e-324),
        text(""),
        text("日本語 ✓ \u{0} nul"),
        Value::Text(big_text),
        Value::Blob(vec![]),
        Value::Blob(vec![0; 16]),
        Value::Blob((0..(1 << 20)).map(|i| (i % 251) as u8).collect()),
    ];
    for (i, v) in values.iter().enumerate() {
        db.conn
            .execute("INSERT INTO t VALUES (?1, ?2)", params![i as i64, v])
            .unwrap();
    }
    let ops = raw_ops(&db.conn);
    assert_eq!(ops.len(), values.len());
    for (op, v) in ops.iter().zip(&values) {
        assert!(
            same_value(&op.values[1], v),
            "{:?} captured as {:?}",
            v,
            op.values[1]
        );
    }
    // and shown exactly by sync_log
    let raw: Vec<String> = log(&db.conn)[4..8]
        .iter()
        .map(|r| r.2.clone().unwrap())
        .collect();
    assert_eq!(
        raw,
        [
            r#"{"id":4,"v":0.30000000000000004}"#,
            r#"{"id":5,"v":-0.0}"#,
            r#"{"id":6,"v":9e999}"#,
            r#"{"id":7,"v":-9e999}"#
        ]
    );
}

#[test]
fn existing_rows_are_captured_as_inserts_once() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id TEXT PRIMARY KEY, n);
                    INSERT INTO t VALUES ('b', 2), ('a', 1), ('c', 3);",
    );
    assert_eq!(
        call(&db.conn, "SELECT sync_enable('t')"),
        Ok(Value::Integer(1))
    );
    let ops = raw_ops(&db.conn);
    assert!(ops.iter().all(|o| o.kind == 0));
    let keys: Vec<Value> = ops.iter().map(|o| o.values[0].clone()).collect();
    assert_eq!(keys, [text("a"), text("b"), text("c")]);
    let before = snapshot(&db.conn);
    assert_eq!(
        call(&db.conn, "SELECT sync_enable('t')"),
        Ok(Value::Integer(1))
    );
    assert_eq!(
        call(&db.conn, "SELECT sync_enable('T')"),
        Ok(Value::Integer(1))
    );
    assert_eq!(
        snapshot(&db.conn),
        before,
        "a second sync_enable changes nothing"
    );
}

#[test]
fn disable_stops_capture_and_keeps_history() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, n);
                    SELECT sync_enable('t');
                    INSERT INTO t VALUES (1, 1);",
    );
    assert_eq!(
        call(&db.conn, "SELECT sync_disable('t')"),
        Ok(Value::Integer(1))
    );
    exec(&db.conn, "INSERT INTO t VALUES (2, 2); UPDATE t SET n = 0;");
    assert_eq!(op_count(&db.conn), 1);
    assert_eq!(
        call(&db.conn, "SELECT sync_disable('t')"),
        Ok(Value::Integer(1))
    );
    // enabling again captures the rows as they are now, so peers learn what changed meanwhile
    call(&db.conn, "SELECT sync_enable('t')").unwrap();
    assert_eq!(op_count(&db.conn), 3);
    exec(&db.conn, "DELETE FROM t WHERE id = 1");
    assert_eq!(op_count(&db.conn), 4);
}

#[test]
fn added_column_gets_a_new_shape_and_old_ops_keep_theirs() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a);
                    SELECT sync_enable('t');
                    INSERT INTO t VALUES (1, 'x');
                    ALTER TABLE t ADD COLUMN b DEFAULT 5;
                    SELECT sync_enable('t');
                    INSERT INTO t VALUES (2, 'y', 6);
                    UPDATE t SET b = 7 WHERE id = 1;",
    );
    let log = log(&db.conn);
    assert_eq!(
        log.len(),
        3,
        "re-enabling after ADD COLUMN does not re-capture rows"
    );
    assert_eq!(log[0].2.as_deref(), Some(r#"{"id":1,"a":"x"}"#));
    assert_eq!(log[1].2.as_deref(), Some(r#"{"id":2,"a":"y","b":6}"#));
    assert_eq!(log[2].2.as_deref(), Some(r#"{"b":7}"#));
}

#[test]
fn generated_columns_are_not_captured() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a, twice AS (a * 2), s AS (a + 1) STORED);
                    SELECT sync_enable('t');
                    INSERT INTO t(id, a) VALUES (1, 2);",
    );
    assert_eq!(log(&db.conn)[0].2.as_deref(), Some(r#"{"id":1,"a":2}"#));
}

#[test]
fn enable_inside_a_rolled_back_transaction_leaves_nothing() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, n); INSERT INTO t VALUES (1, 1);",
    );
    let before = snapshot(&db.conn);
    exec(&db.conn, "BEGIN; SELECT sync_enable('t'); ROLLBACK;");
    assert_eq!(snapshot(&db.conn), before);
    exec(&db.conn, "INSERT INTO t VALUES (2, 2)");
    assert_eq!(op_count(&db.conn), 0);
}

#[test]
fn wide_table_up_to_64_columns() {
    let db = device();
    let cols: Vec<String> = (1..64).map(|i| format!("c{i}")).collect();
    exec(
        &db.conn,
        &format!(
            "CREATE TABLE w(id INTEGER PRIMARY KEY, {}); SELECT sync_enable('w');",
            cols.join(", ")
        ),
    );
    exec(
        &db.conn,
        "INSERT INTO w(id) VALUES (1); UPDATE w SET c63 = 'last', c1 = 'first';",
    );
    let ops = raw_ops(&db.conn);
    assert_eq!(ops[1].mask, Some((1i64 << 63) | 0b10));
    assert_eq!(ops[1].values[63], text("last"));
    let too_wide: Vec<String> = (1..65).map(|i| format!("c{i}")).collect();
    exec(
        &db.conn,
        &format!(
            "CREATE TABLE w2(id INTEGER PRIMARY KEY, {})",
            too_wide.join(", ")
        ),
    );
    let err = call(&db.conn, "SELECT sync_enable('w2')").unwrap_err();
    assert!(err.contains("65 columns; at most 64"), "{err}");
}

#[test]
fn table_made_only_of_key_columns() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE tags(item INTEGER, tag TEXT, PRIMARY KEY (item, tag)) WITHOUT ROWID;
         SELECT sync_enable('tags');
         INSERT INTO tags VALUES (1, 'red');
         UPDATE tags SET tag = 'red';
         UPDATE tags SET tag = 'blue';",
    );
    let kinds: Vec<String> = log(&db.conn).into_iter().map(|r| r.0).collect();
    assert_eq!(kinds, ["insert", "delete", "insert"]);
}

#[test]
fn a_dropped_and_recreated_table_is_captured_again() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a);
         SELECT sync_enable('t');
         DROP TABLE t;
         CREATE TABLE t(id INTEGER PRIMARY KEY, a);
         INSERT INTO t VALUES (1, 'before enable');
         SELECT sync_enable('t');
         INSERT INTO t VALUES (2, 'after');",
    );
    let keys: Vec<String> = log(&db.conn).into_iter().map(|r| r.1).collect();
    assert_eq!(keys, [r#"{"id":1}"#, r#"{"id":2}"#]);
}
