//! The SQL surface: results, refusals of bad calls (with a clear error and no change), the
//! append-only log, and panics turned into SQL errors.

mod common;

use common::*;
use rusqlite::types::Value;

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn version_and_debug() {
    let db = raw_device();
    assert_eq!(
        call(&db.conn, "SELECT sync_version()"),
        Ok(text(env!("CARGO_PKG_VERSION")))
    );
    let Ok(Value::Text(debug)) = call(&db.conn, "SELECT sync_debug()") else {
        panic!()
    };
    assert!(
        debug.starts_with(&format!("sqlite-sync {} (git ", env!("CARGO_PKG_VERSION"))),
        "{debug}"
    );
    assert!(debug.ends_with("release build)"), "{debug}");
}

#[test]
fn init_is_idempotent_and_device_id_is_null_before_it() {
    let db = raw_device();
    assert_eq!(call(&db.conn, "SELECT sync_device_id()"), Ok(Value::Null));
    let Ok(Value::Text(id)) = call(&db.conn, "SELECT sync_init()") else {
        panic!()
    };
    assert_eq!(id.len(), 32);
    assert!(id
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(call(&db.conn, "SELECT sync_init()"), Ok(text(&id)));
    assert_eq!(call(&db.conn, "SELECT sync_device_id()"), Ok(text(&id)));
    // another device gets another id
    assert_ne!(
        call(&device().conn, "SELECT sync_device_id()"),
        Ok(text(&id))
    );
}

#[test]
fn clock_counts_local_ops() {
    let db = device();
    assert_eq!(call(&db.conn, "SELECT sync_clock()"), Ok(text("{}")));
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY); SELECT sync_enable('t');
                    INSERT INTO t VALUES (1), (2), (3);",
    );
    let Ok(Value::Text(id)) = call(&db.conn, "SELECT sync_device_id()") else {
        panic!()
    };
    assert_eq!(
        call(&db.conn, "SELECT sync_clock()"),
        Ok(text(&format!(r#"{{"{id}":3}}"#)))
    );
    assert_eq!(
        call(
            &db.conn,
            "SELECT sync_clock() ->> ('$.' || sync_device_id())"
        ),
        Ok(Value::Integer(3))
    );
}

#[test]
fn sync_log_names_device_op_id_and_order() {
    let db = device();
    exec(&db.conn, "CREATE TABLE t(id INTEGER PRIMARY KEY); SELECT sync_enable('t'); INSERT INTO t VALUES (1), (2);");
    let rows: Vec<(String, i64, String, i64)> = db
        .conn
        .prepare("SELECT device, seq, op_id, lamport FROM sync_log ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let Ok(Value::Text(id)) = call(&db.conn, "SELECT sync_device_id()") else {
        panic!()
    };
    assert!(rows.iter().all(|r| r.0 == id));
    assert_eq!(
        rows.iter().map(|r| (r.1, r.3)).collect::<Vec<_>>(),
        [(1, 1), (2, 2)]
    );
    assert_eq!(rows[0].2.len(), 32);
    assert_ne!(rows[0].2, rows[1].2);
    // the op id is derived from device and seq, so it is the same wherever it is computed
    assert_eq!(
        call(&db.conn, "SELECT sync_op_id(unhex(sync_device_id()), 1)"),
        Ok(text(&rows[0].2))
    );
}

/// Runs `sql`, expects an error containing `expected`, and checks nothing changed.
fn refused(db: &TestDb, sql: &str, expected: &str) {
    let before = snapshot(&db.conn);
    let err = call(&db.conn, sql).expect_err(sql);
    assert!(
        err.contains(expected),
        "{sql}: got {err:?}, expected {expected:?}"
    );
    assert_eq!(snapshot(&db.conn), before, "{sql} changed the database");
    assert!(db.conn.is_autocommit(), "{sql} left a transaction open");
}

#[test]
fn enable_refuses_what_it_cannot_sync() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE nopk(a, b);
                    CREATE TABLE x(id INTEGER PRIMARY KEY);
                    CREATE VIEW v AS SELECT 1 AS id;
                    CREATE VIRTUAL TABLE vt USING fts5(body);",
    );
    refused(
        &db,
        "SELECT sync_enable('missing')",
        r#"sync_enable: no such table: "missing""#,
    );
    let other = tempdir::Dir::new();
    let other = other.path().join("other.db");
    exec(
        &db.conn,
        &format!(
            "ATTACH '{}' AS o; CREATE TABLE o.t2(id INTEGER PRIMARY KEY)",
            other.display()
        ),
    );
    for name in ["t2", "o.t2"] {
        refused(
            &db,
            &format!("SELECT sync_enable('{name}')"),
            &format!(
                r#"sync_enable: no such table in the main database: "{name}" is in the attached database "o" (only the main database's tables are synced)"#
            ),
        );
    }
    refused(
        &db,
        "SELECT sync_enable('nopk')",
        r#"sync_enable: table "nopk" has no PRIMARY KEY"#,
    );
    refused(
        &db,
        "SELECT sync_enable('v')",
        r#"sync_enable: "v" is a view"#,
    );
    refused(
        &db,
        "SELECT sync_enable('vt')",
        r#"sync_enable: "vt" is a virtual table"#,
    );
    // the tables a full-text index keeps (triggers on two of them crashed SQLite at the next
    // insert: a new user looping over sqlite_master enabled them)
    for shadow in ["vt_data", "VT_IDX", "vt_content", "vt_docsize", "vt_config"] {
        refused(
            &db,
            &format!("SELECT sync_enable('{shadow}')"),
            r#"is a shadow table, part of the virtual table "vt""#,
        );
    }
    exec(&db.conn, "INSERT INTO vt(body) VALUES ('still indexed')");
    refused(
        &db,
        "SELECT sync_enable('_sync_ops')",
        "belongs to sqlite-sync itself",
    );
    refused(
        &db,
        "SELECT sync_enable('_SYNC_tables')",
        "belongs to sqlite-sync itself",
    );
    refused(
        &db,
        "SELECT sync_enable('sync_log')",
        "belongs to sqlite-sync itself",
    );
    refused(
        &db,
        "SELECT sync_enable('sqlite_schema')",
        "internal table of SQLite",
    );
    exec(
        &db.conn,
        "CREATE TABLE auto(id INTEGER PRIMARY KEY AUTOINCREMENT)",
    );
    refused(
        &db,
        "SELECT sync_enable('SQLITE_SEQUENCE')",
        "internal table of SQLite",
    );
    refused(
        &db,
        "SELECT sync_enable('x; DROP TABLE x')",
        r#"no such table: "x; DROP TABLE x""#,
    );
    refused(
        &db,
        "SELECT sync_enable('x\"; DROP TABLE x; --')",
        "no such table",
    );
    refused(
        &db,
        "SELECT sync_enable(NULL)",
        "sync_enable: table name is NULL",
    );
    refused(
        &db,
        "SELECT sync_enable(42)",
        "sync_enable: expects a table name as TEXT, got integer",
    );
    refused(&db, "SELECT sync_enable(x'78')", "got blob");
    refused(
        &db,
        "SELECT sync_enable()",
        "wrong number of arguments to function sync_enable()",
    );
    refused(
        &db,
        "SELECT sync_enable('x', 'y')",
        "wrong number of arguments",
    );
    refused(
        &db,
        "SELECT sync_disable('x')",
        r#"sync_disable: table "x" is not sync-enabled"#,
    );
    refused(
        &db,
        "SELECT sync_disable(NULL)",
        "sync_disable: table name is NULL",
    );
}

#[test]
fn everything_but_init_refuses_before_init() {
    let db = raw_device();
    exec(&db.conn, "CREATE TABLE t(id INTEGER PRIMARY KEY)");
    // every function that needs the metadata (sync_init makes it; sync_device_id answers NULL;
    // sync_version, sync_debug and the sync_log helpers need none)
    for f in [
        "sync_enable('t')",
        "sync_disable('t')",
        "sync_clock()",
        "sync_bundle_out(NULL, 'x.bundle')",
        "sync_bundle_in('x.bundle')",
        "sync_resolve('00000000000000000000000000000000', 'local')",
        "sync_fork()",
    ] {
        refused(&db, &format!("SELECT {f}"), "run SELECT sync_init(); first");
    }
    assert_eq!(call(&db.conn, "SELECT sync_device_id()"), Ok(Value::Null));
}

#[test]
fn metadata_of_another_layout_is_refused_not_misread() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY); UPDATE _sync_device SET format = 3;",
    );
    for f in [
        "sync_enable('t')",
        "sync_clock()",
        "sync_bundle_in('x.bundle')",
    ] {
        refused(
            &db,
            &format!("SELECT {f}"),
            "sync metadata has layout 3, and this build reads layout 5 (and 4) only",
        );
    }
}

#[test]
fn state_changing_functions_cannot_run_from_triggers_or_views() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY);
                    CREATE TABLE u(id INTEGER PRIMARY KEY);
                    CREATE TRIGGER sneaky AFTER INSERT ON u BEGIN SELECT sync_enable('t'); END;",
    );
    let err = db
        .conn
        .execute("INSERT INTO u VALUES (1)", [])
        .unwrap_err()
        .to_string();
    assert!(err.contains("unsafe use of sync_enable()"), "{err}");
    assert_eq!(op_count(&db.conn), 0);
}

#[test]
fn the_log_is_append_only() {
    let db = device();
    exec(&db.conn, "CREATE TABLE t(id INTEGER PRIMARY KEY); SELECT sync_enable('t'); INSERT INTO t VALUES (1);");
    let before = snapshot(&db.conn);
    for sql in [
        "UPDATE _sync_ops SET kind = 2",
        "DELETE FROM _sync_ops",
        "DELETE FROM _sync_ops WHERE seq = 1",
    ] {
        let err = db.conn.execute(sql, []).unwrap_err().to_string();
        assert!(err.contains("the op log is append-only"), "{sql}: {err}");
    }
    assert_eq!(snapshot(&db.conn), before);
}

#[test]
fn a_panic_becomes_an_sql_error_and_the_connection_lives_on() {
    let db = device();
    let err = call(&db.conn, "SELECT sync_debug('panic')").unwrap_err();
    assert!(err.contains("internal error (caught panic"), "{err}");
    assert!(
        err.contains(" at src/lib.rs:"),
        "the error says where: {err}"
    );
    assert!(db.conn.is_autocommit());
    assert!(matches!(
        call(&db.conn, "SELECT sync_device_id()"),
        Ok(Value::Text(_))
    ));
}

#[test]
fn a_panic_inside_a_savepoint_rolls_back_its_writes() {
    let db = device();
    let before = snapshot(&db.conn);
    let err = call(&db.conn, "SELECT sync_debug('panic after a write')").unwrap_err();
    assert!(err.contains("internal error (caught panic"), "{err}");
    assert!(db.conn.is_autocommit(), "no transaction left open");
    assert_eq!(snapshot(&db.conn), before);
    let format: i64 = db
        .conn
        .query_row("SELECT format FROM _sync_device", [], |r| r.get(0))
        .unwrap();
    assert!(format > 0, "the write was rolled back");
}

#[test]
fn results_are_json_that_sql_can_read() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v); SELECT sync_enable('t');
                    INSERT INTO t VALUES (1, 'a\"b\\c\nd'), (2, x'00');",
    );
    assert_eq!(
        call(
            &db.conn,
            "SELECT \"values\" ->> '$.v' FROM sync_log WHERE seq = 1"
        ),
        Ok(text("a\"b\\c\nd"))
    );
    assert_eq!(
        call(
            &db.conn,
            "SELECT \"values\" ->> '$.v.blob' FROM sync_log WHERE seq = 2"
        ),
        Ok(text("00"))
    );
    assert_eq!(
        call(
            &db.conn,
            "SELECT count(*) FROM sync_log WHERE json_valid(pk) AND json_valid(\"values\")"
        ),
        Ok(Value::Integer(2))
    );
}

#[test]
fn log_helpers_refuse_bad_arguments() {
    let db = device();
    for (sql, expected) in [
        (
            "SELECT sync_log_pk(1)",
            "sync_log_pk: expects at least 2 arguments",
        ),
        (
            "SELECT sync_log_values(1, 2)",
            "sync_log_values: expects at least 4 arguments",
        ),
        (
            "SELECT sync_log_pk(x'00', x'00')",
            "sync_log_pk: damaged shape record",
        ),
        (
            "SELECT sync_op_id('not a blob', 1)",
            "sync_op_id: device id must be a BLOB",
        ),
        // a shape of one column whose key is column 5
        (
            "SELECT sync_log_pk(x'91a161', x'9105')",
            "sync_log_pk: damaged shape record",
        ),
    ] {
        let err = call(&db.conn, sql).expect_err(sql);
        assert!(err.starts_with(expected), "{sql}: {err}");
        assert!(!err.contains("panic"), "{sql}: {err}");
    }
}

/// The functions the extension registers are exactly those the README names: the SQL
/// reference's rows, and the helpers of the `sync_log` view.
#[test]
fn registered_functions_are_the_readmes() {
    let db = device();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut registered: Vec<String> = db
        .conn
        .prepare("SELECT DISTINCT name FROM pragma_function_list WHERE name LIKE 'sync\\_%' ESCAPE '\\' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    registered.sort();
    let mut named: Vec<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `sync_"))
        .filter_map(|rest| rest.split_once('(').map(|(name, _)| format!("sync_{name}")))
        .filter(|name| !name.contains('`'))
        .collect();
    for helper in [
        "sync_op_id",
        "sync_log_pk",
        "sync_log_values",
        "sync_log_op",
    ] {
        assert!(
            readme.contains(&format!("`{helper}`")),
            "{helper} is not in the README"
        );
        named.push(helper.to_string());
    }
    named.sort();
    named.dedup();
    assert_eq!(registered, named);
}
