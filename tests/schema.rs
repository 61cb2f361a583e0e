//! Schemas change (DESIGN 5.2): columns added on a synced table, from any connection, reach
//! peers with every value written to them.

mod common;

use common::*;
use rusqlite::types::Value;

const T: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT); SELECT sync_enable('t');";

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn int(n: i64) -> Value {
    Value::Integer(n)
}

#[test]
fn a_column_added_by_a_connection_without_the_extension_reaches_peers_with_its_values() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x')");
    send(&a, &b);
    // the app's migration runs where the extension was never loaded, and writes at once
    exec(
        &b.db.plain_connection(),
        "ALTER TABLE t ADD COLUMN b INT DEFAULT 0",
    );
    exec(
        &a.db.plain_connection(),
        "ALTER TABLE t ADD COLUMN b INT DEFAULT 0;
         UPDATE t SET b = 5 WHERE id = 1;
         INSERT INTO t VALUES (2, 'z', 7);
         INSERT INTO t(id, a) VALUES (3, 'w');",
    );
    let r = send(&a, &b);
    assert_eq!(
        r.applied, 4,
        "two inserts, and the two rows whose b is not the default"
    );
    let rows = vec![
        vec![int(1), text("x"), int(5)],
        vec![int(2), text("z"), int(7)],
        vec![int(3), text("w"), int(0)],
    ];
    assert_eq!(b.dump("t"), rows);
    assert_eq!(a.dump("t"), rows);
    // the import brought b's capture up to date too: its writes of the new column travel
    exec(b.conn(), "UPDATE t SET b = 9 WHERE id = 3");
    send(&b, &a);
    assert_eq!(a.dump("t")[2], vec![int(3), text("w"), int(9)]);
    assert_eq!(a.dump("t"), b.dump("t"));
}

#[test]
fn sync_enable_after_add_column_records_what_was_written_before_it() {
    let db = device();
    exec(
        &db.conn,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a);
         SELECT sync_enable('t');
         INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z');
         ALTER TABLE t ADD COLUMN b DEFAULT 'none';
         ALTER TABLE t ADD COLUMN c REAL;
         UPDATE t SET b = 'set' WHERE id = 1;
         UPDATE t SET c = 1 WHERE id = 2;
         UPDATE t SET b = 'none', c = NULL WHERE id = 3;
         SELECT sync_enable('t');",
    );
    let log = log(&db.conn);
    assert_eq!(
        log.len(),
        5,
        "three inserts, one update per row changed from its defaults"
    );
    assert_eq!(log[3].2.as_deref(), Some(r#"{"b":"set"}"#));
    assert_eq!(log[4].2.as_deref(), Some(r#"{"c":1.0}"#));
    exec(&db.conn, "SELECT sync_enable('t')");
    assert_eq!(
        op_count(&db.conn),
        5,
        "enabling again records nothing twice"
    );
}

#[test]
fn an_export_inside_a_read_transaction_leaves_added_columns_for_the_next_call() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(
        a.conn(),
        "INSERT INTO t VALUES (1, 'x');
         ALTER TABLE t ADD COLUMN b;
         UPDATE t SET b = 'new' WHERE id = 1;",
    );
    exec(b.conn(), "ALTER TABLE t ADD COLUMN b");
    exec(a.conn(), "BEGIN; SELECT count(*) FROM t");
    let path = a.bundle_for(Some(&b));
    exec(a.conn(), "COMMIT");
    b.import(&path);
    assert_eq!(b.dump("t"), vec![vec![int(1), text("x"), Value::Null]]);
    send(&a, &b);
    assert_eq!(b.dump("t"), vec![vec![int(1), text("x"), text("new")]]);
}

#[test]
fn a_device_without_the_column_imports_and_keeps_its_values_until_it_adds_it() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x'), (2, 'y')");
    send(&a, &b);
    // a upgrades first
    exec(
        a.conn(),
        "ALTER TABLE t ADD COLUMN n INTEGER DEFAULT 0;
         UPDATE t SET n = 5 WHERE id = 1;
         INSERT INTO t VALUES (3, 'z', 7);",
    );
    let r = send(&a, &b);
    // the insert of row 3, and the values of n that differ from its default (rows 1 and 3)
    assert_eq!((r.applied, r.waiting.as_str()), (3, r#"["t.n"]"#));
    assert_eq!(
        b.dump("t"),
        vec![
            vec![int(1), text("x")],
            vec![int(2), text("y")],
            vec![int(3), text("z")]
        ],
        "what b has columns for is applied"
    );
    // b writes meanwhile, and sends a bundle back that a imports
    exec(b.conn(), "UPDATE t SET a = 'b wrote' WHERE id = 2");
    send(&b, &a);
    // b upgrades (from a connection without the extension); its next sync call fills the
    // column from what it kept
    exec(
        &b.db.plain_connection(),
        "ALTER TABLE t ADD COLUMN n INTEGER DEFAULT 0",
    );
    send(&b, &a);
    let rows = vec![
        vec![int(1), text("x"), int(5)],
        vec![int(2), text("b wrote"), int(0)],
        vec![int(3), text("z"), int(7)],
    ];
    assert_eq!(b.dump("t"), rows);
    assert_eq!(a.dump("t"), rows);
    assert_eq!(send(&a, &b).waiting, "[]");
}

#[test]
fn a_value_written_after_the_column_came_follows_the_kept_ones() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x')");
    send(&a, &b);
    exec(
        a.conn(),
        "ALTER TABLE t ADD COLUMN n; UPDATE t SET n = 'from a'",
    );
    send(&a, &b);
    exec(
        &b.db.plain_connection(),
        "ALTER TABLE t ADD COLUMN n; UPDATE t SET n = 'from b'",
    );
    // b's write saw a's (b held it, kept): it wins on both, and no conflict
    let r = send(&b, &a);
    assert_eq!(r.conflicts, 0);
    let rows = vec![vec![int(1), text("x"), text("from b")]];
    assert_eq!(b.dump("t"), rows);
    assert_eq!(a.dump("t"), rows);
}

#[test]
fn a_device_without_the_column_relays_its_values() {
    let (a, b, c) = (
        Device::new("a", T),
        Device::new("b", T),
        Device::new("c", T),
    );
    let add = "ALTER TABLE t ADD COLUMN n";
    exec(a.conn(), add);
    exec(c.conn(), add);
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x', 'kept')");
    send(&a, &b);
    send(&b, &c);
    assert_eq!(c.dump("t"), vec![vec![int(1), text("x"), text("kept")]]);
    assert_eq!(b.dump("t"), vec![vec![int(1), text("x")]]);
}

#[test]
fn concurrent_writes_of_a_column_one_device_lacks_are_a_conflict_everywhere() {
    let (a, b, c) = (
        Device::new("a", T),
        Device::new("b", T),
        Device::new("c", T),
    );
    let add = "ALTER TABLE t ADD COLUMN n";
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x')");
    send(&a, &b);
    send(&a, &c);
    exec(a.conn(), &format!("{add}; UPDATE t SET n = 'a'"));
    exec(c.conn(), &format!("{add}; UPDATE t SET n = 'c'"));
    send(&a, &b);
    send(&c, &b);
    // b, which lacks the column, keeps the same conflict as the others
    send(&a, &c);
    send(&c, &a);
    assert_eq!(b.conflicts(), a.conflicts());
    assert_eq!(a.conflicts(), c.conflicts());
    assert_eq!(a.conflicts().len(), 1);
    let id = b.conflicts()[0].0.clone();
    let err = call(b.conn(), &format!("SELECT sync_resolve('{id}', 'local')")).unwrap_err();
    assert!(
        err.contains("sync_resolve") && err.contains("does not have on this device yet"),
        "{err}"
    );
    exec(b.conn(), add);
    send(&b, &a);
    assert_eq!(a.dump("t"), b.dump("t"));
    assert_eq!(a.dump("t"), c.dump("t"));
}

/// The error a sync call gives, which must name the function and say what to do.
fn refused(d: &Device, expected: &str) {
    let path = d.db.dir.path().join("refused.bundle");
    let sql = format!("SELECT sync_bundle_out(NULL, '{}')", path.display());
    let err = call(d.conn(), &sql).unwrap_err();
    assert!(
        err.starts_with("sync_bundle_out: ") && err.contains(expected),
        "{err}"
    );
    assert!(!path.exists());
}

#[test]
fn changes_sync_does_not_follow_are_refused_with_what_to_do() {
    // RENAME COLUMN: the capture triggers follow the new name, the ops would name the old one
    let a = Device::new("a", T);
    exec(
        &a.db.plain_connection(),
        "ALTER TABLE t RENAME COLUMN a TO title",
    );
    refused(&a, "it has (id, title), its ops name (id, a)");
    refused(&a, "call sync_disable('t'), then sync_enable('t')");
    exec(
        a.conn(),
        "SELECT sync_disable('t'); SELECT sync_enable('t')",
    );
    a.bundle_for(None);
    // DROP TABLE and CREATE again: the capture went with the table
    let b = Device::new("b", T);
    exec(
        &b.db.plain_connection(),
        "DROP TABLE t; CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t VALUES (1, 'x')",
    );
    refused(&b, "lost its capture");
    exec(b.conn(), "SELECT sync_enable('t')");
    assert_eq!(
        op_count(b.conn()),
        1,
        "the row is captured once enabled again"
    );
    b.bundle_for(None);
    // RENAME TO, or DROP TABLE alone
    let c = Device::new("c", T);
    exec(&c.db.plain_connection(), "ALTER TABLE t RENAME TO items");
    refused(&c, "synced table \"t\" is not in this database any more");
    exec(
        c.conn(),
        "SELECT sync_disable('t'); SELECT sync_enable('items')",
    );
    c.bundle_for(None);
}

#[test]
fn a_refused_call_does_not_record_the_added_column() {
    let a = Device::new("a", T);
    exec(
        a.conn(),
        "INSERT INTO t VALUES (1, 'x'); ALTER TABLE t ADD COLUMN n; UPDATE t SET n = 5",
    );
    let before = op_count(a.conn());
    assert!(call(a.conn(), "SELECT sync_bundle_in('no such file.bundle')").is_err());
    assert!(call(
        a.conn(),
        "SELECT sync_bundle_out('not a device id', 'x.bundle')"
    )
    .is_err());
    assert_eq!(op_count(a.conn()), before);
}

#[test]
fn enabling_again_records_exactly_what_changed_while_sync_was_off() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(
        a.conn(),
        "INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z')",
    );
    send(&a, &b);
    send(&b, &a);
    // b edits row 3 and has not sent it yet
    exec(b.conn(), "UPDATE t SET a = 'b edited' WHERE id = 3");
    let before = op_count(a.conn());
    exec(
        a.conn(),
        "SELECT sync_disable('t');
         UPDATE t SET a = 'changed' WHERE id = 1;
         DELETE FROM t WHERE id = 2;
         INSERT INTO t VALUES (4, 'new');
         SELECT sync_enable('t');",
    );
    let log = log(a.conn());
    assert_eq!(op_count(a.conn()) - before, 3, "{log:?}");
    let r = send(&a, &b);
    assert_eq!(r.conflicts, 0, "row 3 did not change on a: b's edit stands");
    send(&b, &a);
    let rows = vec![
        vec![int(1), text("changed")],
        vec![int(3), text("b edited")],
        vec![int(4), text("new")],
    ];
    assert_eq!(a.dump("t"), rows);
    assert_eq!(b.dump("t"), rows);
}

#[test]
fn a_table_dropped_and_created_again_is_caught_up_with_when_enabled() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x'), (2, 'y')");
    send(&a, &b);
    exec(
        &a.db.plain_connection(),
        "DROP TABLE t; CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT);
         INSERT INTO t VALUES (1, 'x'), (5, 'five');",
    );
    refused(&a, "lost its capture");
    exec(a.conn(), "SELECT sync_enable('t')");
    send(&a, &b);
    let rows = vec![vec![int(1), text("x")], vec![int(5), text("five")]];
    assert_eq!(b.dump("t"), rows);
    // a new device that takes everything a holds ends the same: row 2 is deleted in the log
    let c = Device::new("c", T);
    send(&a, &c);
    assert_eq!(c.dump("t"), rows);
}

#[test]
fn a_disabled_table_with_edits_in_its_log_does_not_stop_imports() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(
        a.conn(),
        "INSERT INTO t VALUES (1, 'one'); UPDATE t SET a = 'A1' WHERE id = 1;
         DELETE FROM t WHERE id = 1; INSERT INTO t VALUES (2, 'two');
         SELECT sync_disable('t');
         UPDATE t SET a = 'while off' WHERE id = 2;",
    );
    // b has nothing of t: a's import folds a's own ops of the disabled table, and goes on
    exec(
        b.conn(),
        "CREATE TABLE other(id INTEGER PRIMARY KEY); SELECT sync_enable('other')",
    );
    exec(b.conn(), "INSERT INTO other VALUES (1)");
    let r = a.import(&b.bundle_for(None));
    assert_eq!(r.waiting, r#"["other"]"#, "a does not have `other`: kept");
    let empty = Device::new("c", "");
    let r = a.import(&empty.bundle_for(None));
    assert_eq!(r.applied, 0);
    // enabled again, the table is caught up with from its ops, and peers get it as it is
    exec(a.conn(), "SELECT sync_enable('t')");
    let d = Device::new("d", T);
    send(&a, &d);
    assert_eq!(d.dump("t"), vec![vec![int(2), text("while off")]]);
    // dropped while disabled: imports go on too
    exec(a.conn(), "SELECT sync_disable('t'); DROP TABLE t;");
    a.import(&empty.bundle_for(None));
}

const T2: &str = "CREATE TABLE t2(id INTEGER PRIMARY KEY, n TEXT)";

#[test]
fn a_device_without_the_table_keeps_and_relays_its_ops_and_fills_it_when_enabled() {
    let (a, b, c) = (
        Device::new("a", T),
        Device::new("b", T),
        Device::new("c", T),
    );
    exec(
        a.conn(),
        &format!(
            "{T2}; SELECT sync_enable('t2');
             INSERT INTO t2 VALUES (1, 'one'), (2, 'two'), (3, 'three');
             UPDATE t2 SET n = 'TWO' WHERE id = 2; DELETE FROM t2 WHERE id = 1;
             INSERT INTO t VALUES (1, 'x')"
        ),
    );
    // b has no t2 yet: the bundle imports whole, t2's ops are kept and named
    let r = send(&a, &b);
    assert_eq!((r.applied, r.waiting.as_str()), (6, r#"["t2"]"#));
    assert_eq!(b.dump("t"), vec![vec![int(1), text("x")]]);
    // and relayed: c takes a's ops from b
    let r = send(&b, &c);
    assert_eq!(r.waiting, r#"["t2"]"#);
    // b's migration creates t2 and writes to it before enabling it: the kept ops fill it
    // first, b's rows are its writes after them, and a row b never held is not a delete
    exec(
        b.conn(),
        &format!("{T2}; INSERT INTO t2 VALUES (3, 'drei'), (4, 'vier'); SELECT sync_enable('t2')"),
    );
    let rows = vec![
        vec![int(2), text("TWO")],
        vec![int(3), text("drei")],
        vec![int(4), text("vier")],
    ];
    assert_eq!(b.dump("t2"), rows);
    exec(c.conn(), &format!("{T2}; SELECT sync_enable('t2')"));
    assert_eq!(
        c.dump("t2"),
        vec![vec![int(2), text("TWO")], vec![int(3), text("three")]]
    );
    for (from, to) in [(&b, &a), (&b, &c), (&c, &a), (&a, &c)] {
        send(from, to);
    }
    for d in [&a, &b, &c] {
        assert_eq!(d.dump("t2"), rows, "{}", d.name);
    }
    // from now on t2 syncs as any table: concurrent edits are a conflict everywhere
    exec(a.conn(), "UPDATE t2 SET n = 'a4' WHERE id = 4");
    exec(c.conn(), "UPDATE t2 SET n = 'c4' WHERE id = 4");
    for (from, to) in [(&a, &c), (&c, &a), (&a, &b)] {
        send(from, to);
    }
    assert_eq!(a.dump("t2"), c.dump("t2"));
    assert_eq!(a.dump("t2"), b.dump("t2"));
    assert_eq!(conflict_count(a.conn()), 1);
    assert_eq!(conflict_count(b.conn()), 1);
}

#[test]
fn a_disabled_table_keeps_received_ops_and_enable_takes_both_sides_changes() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(
        a.conn(),
        "INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z'), (4, 'w')",
    );
    send(&a, &b);
    exec(
        b.conn(),
        "SELECT sync_disable('t');
         UPDATE t SET a = 'B3' WHERE id = 3; DELETE FROM t WHERE id = 4;",
    );
    exec(
        a.conn(),
        "UPDATE t SET a = 'A1' WHERE id = 1; DELETE FROM t WHERE id = 2;
         INSERT INTO t VALUES (5, 'five');",
    );
    // while disabled, b imports a's edits of t: kept, the table is not written
    let r = send(&a, &b);
    assert_eq!((r.applied, r.waiting.as_str()), (3, r#"["t"]"#));
    assert_eq!(b.dump("t").len(), 3, "rows 1, 2, 3 as b left them");
    exec(b.conn(), "SELECT sync_enable('t')");
    // a's edits fill it where b did not change the row; b's edits are recorded
    let rows = vec![
        vec![int(1), text("A1")],
        vec![int(3), text("B3")],
        vec![int(5), text("five")],
    ];
    assert_eq!(b.dump("t"), rows);
    send(&b, &a);
    assert_eq!(a.dump("t"), rows);
    assert_eq!(conflict_count(a.conn()), 0);
    assert_eq!(conflict_count(b.conn()), 0);
}

#[test]
fn ops_naming_rows_by_another_primary_key_wait_until_the_keys_agree() {
    let (a, b) = (
        Device::new(
            "a",
            &format!("{T} CREATE TABLE m(uuid TEXT PRIMARY KEY, n); SELECT sync_enable('m');"),
        ),
        Device::new(
            "b",
            &format!(
                "{T} CREATE TABLE m(id INTEGER PRIMARY KEY, uuid TEXT, n); SELECT sync_enable('m');"
            ),
        ),
    );
    exec(
        a.conn(),
        "INSERT INTO m VALUES ('u1', 1), ('u2', 2); UPDATE m SET n = 20 WHERE uuid = 'u2';
         INSERT INTO t VALUES (1, 'x')",
    );
    // the rest of the bundle imports; m's ops wait, and say why
    let r = send(&a, &b);
    assert_eq!(b.dump("t"), vec![vec![int(1), text("x")]]);
    assert!(b.dump("m").is_empty());
    assert!(
        r.otherwise.contains(r#"table \"m\" has PRIMARY KEY (id) here, (uuid) where the ops were written: they wait until the table is declared alike"#),
        "{}",
        r.otherwise
    );
    let waiting: (String, i64, String) = b
        .conn()
        .query_row(
            "SELECT table_name, ops, reason FROM sync_waiting",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((waiting.0.as_str(), waiting.1), ("m", 3));
    assert!(waiting.2.contains("PRIMARY KEY (id) here"), "{}", waiting.2);
    // b declares m as a does (its migration moves its rows): the kept ops fill it
    exec(
        b.conn(),
        "INSERT INTO m VALUES (7, 'u7', 7);
         CREATE TABLE keep AS SELECT uuid, n FROM m; DROP TABLE m;
         CREATE TABLE m(uuid TEXT PRIMARY KEY, n); INSERT INTO m SELECT * FROM keep;
         DROP TABLE keep; SELECT sync_enable('m');",
    );
    let rows = vec![
        vec![text("u1"), int(1)],
        vec![text("u2"), int(20)],
        vec![text("u7"), int(7)],
    ];
    assert_eq!(b.dump("m"), rows);
    let waiting: i64 = (b.conn())
        .query_row("SELECT count(*) FROM sync_waiting", [], |r| r.get(0))
        .unwrap();
    assert_eq!(waiting, 0);
    send(&b, &a);
    assert_eq!(a.dump("m"), rows);
    // later changes on b go on from the new key: the rows of b's old key are not rows of the
    // table any more, and are never deleted from it
    exec(
        b.conn(),
        "SELECT sync_disable('m'); UPDATE m SET n = 70 WHERE uuid = 'u7';
         SELECT sync_enable('m'); SELECT sync_disable('m'); SELECT sync_enable('m');",
    );
    let rows = vec![
        vec![text("u1"), int(1)],
        vec![text("u2"), int(20)],
        vec![text("u7"), int(70)],
    ];
    assert_eq!(b.dump("m"), rows);
    send(&b, &a);
    assert_eq!(a.dump("m"), rows);
    // a keeps b's ops of its old key, and says they apply only under that key
    let reason: String = (a.conn())
        .query_row("SELECT reason FROM sync_waiting", [], |r| r.get(0))
        .unwrap();
    assert!(
        reason.contains("which their writer no longer declares"),
        "{reason}"
    );
}

#[test]
fn ops_of_a_column_declared_with_another_affinity_wait_until_it_is_declared_alike() {
    let (a, b) = (
        Device::new(
            "a",
            &format!(
                "{T} CREATE TABLE m(id INTEGER PRIMARY KEY, n INTEGER); SELECT sync_enable('m');"
            ),
        ),
        Device::new(
            "b",
            &format!(
                "{T} CREATE TABLE m(id INTEGER PRIMARY KEY, n TEXT); SELECT sync_enable('m');"
            ),
        ),
    );
    exec(
        a.conn(),
        "INSERT INTO m VALUES (1, '5'); INSERT INTO t VALUES (1, 'x')",
    );
    // b would store '5' where a stores 5: m's ops wait, the rest imports
    let r = send(&a, &b);
    assert!(
        r.otherwise.contains(r#"column m.n is declared \"TEXT\" here (TEXT affinity), \"INTEGER\" where the ops were written (INTEGER affinity): they wait until the table is declared alike"#),
        "{}",
        r.otherwise
    );
    assert!(b.dump("m").is_empty());
    assert_eq!(b.dump("t"), vec![vec![int(1), text("x")]]);
    // b's own writes wait on a likewise
    exec(b.conn(), "INSERT INTO m VALUES (2, '7')");
    send(&b, &a);
    assert_eq!(a.dump("m"), vec![vec![int(1), int(5)]]);
    assert_eq!(waiting(&a), 1);
    // b declares n as a does, moving its rows: the kept ops fill it, and b records its rows
    // again under the new declaration, which a takes
    exec(
        b.conn(),
        "CREATE TABLE keep AS SELECT * FROM m; DROP TABLE m;
         CREATE TABLE m(id INTEGER PRIMARY KEY, n INTEGER); INSERT INTO m SELECT * FROM keep;
         DROP TABLE keep; SELECT sync_enable('m');",
    );
    let rows = vec![vec![int(1), int(5)], vec![int(2), int(7)]];
    assert_eq!(b.dump("m"), rows);
    let r = send(&b, &a);
    assert_eq!(r.otherwise, "[]");
    assert_eq!(a.dump("m"), rows);
    send(&a, &b);
    assert_eq!(b.dump("m"), rows);
    // a device that declares it otherwise later sets aside what it applied before, and takes
    // it back when it declares it alike again
    let c = Device::new(
        "c",
        &format!("{T} CREATE TABLE m(id INTEGER PRIMARY KEY, n INTEGER); SELECT sync_enable('m');"),
    );
    send(&a, &c);
    assert_eq!(c.dump("m"), rows);
    let redeclare = |d: &Device, ty: &str| {
        exec(
            d.conn(),
            &format!(
                "CREATE TABLE keep AS SELECT * FROM m; DROP TABLE m;
                 CREATE TABLE m(id INTEGER PRIMARY KEY, n {ty}); INSERT INTO m SELECT * FROM keep;
                 DROP TABLE keep; SELECT sync_enable('m');"
            ),
        )
    };
    redeclare(&c, "TEXT");
    assert_eq!(
        c.dump("m"),
        vec![vec![int(1), text("5")], vec![int(2), text("7")]]
    );
    exec(a.conn(), "UPDATE m SET n = 50 WHERE id = 1");
    send(&a, &c);
    assert_eq!(
        c.dump("m")[0],
        vec![int(1), text("5")],
        "a's update waits on c"
    );
    redeclare(&c, "INTEGER");
    for (from, to) in [(&c, &a), (&a, &b), (&c, &b), (&a, &c)] {
        send(from, to);
    }
    // a's update and c's rows recorded under TEXT were concurrent: the merge rule picks one
    // the same way everywhere, and keeps the other as a conflict
    let rows = a.dump("m");
    assert!(rows[0] == vec![int(1), int(50)] || rows[0] == vec![int(1), int(5)]);
    assert_eq!(rows[1], vec![int(2), int(7)]);
    for d in [&b, &c] {
        assert_eq!(d.dump("m"), rows, "{}", d.name);
        assert_eq!(conflict_count(d.conn()), conflict_count(a.conn()));
    }
    assert_eq!(conflict_count(a.conn()), 1);
    for d in [&a, &b, &c] {
        assert_eq!(
            waiting(d),
            0,
            "{}: nothing waits once all declare m alike",
            d.name
        );
    }
}

fn waiting(d: &Device) -> i64 {
    (d.conn())
        .query_row("SELECT coalesce(sum(ops), 0) FROM sync_waiting", [], |r| {
            r.get(0)
        })
        .unwrap()
}

fn conflict_count(conn: &rusqlite::Connection) -> i64 {
    conn.query_row(
        "SELECT count(*) FROM sync_conflicts WHERE NOT resolved",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn a_column_dropped_on_one_device_keeps_the_others_values_waiting() {
    let schema = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b TEXT); SELECT sync_enable('t');";
    let (a, b) = (Device::new("a", schema), Device::new("b", schema));
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x', 'y')");
    send(&a, &b);
    // a's migration drops b: capture off around it, as SQLite's error says
    assert!(call(a.conn(), "ALTER TABLE t DROP COLUMN b")
        .unwrap_err()
        .contains("call sync_disable on the table first and sync_enable after"));
    exec(
        a.conn(),
        "SELECT sync_disable('t'); ALTER TABLE t DROP COLUMN b; SELECT sync_enable('t');
         UPDATE t SET a = 'a1' WHERE id = 1; INSERT INTO t VALUES (2, 'two')",
    );
    // b, not migrated yet, writes both columns; a takes what it has, b's column waits
    exec(b.conn(), "UPDATE t SET b = 'b1' WHERE id = 1");
    let r = send(&b, &a);
    assert_eq!(r.waiting, r#"["t.b"]"#);
    send(&a, &b);
    assert_eq!(
        a.dump("t"),
        vec![vec![int(1), text("a1")], vec![int(2), text("two")]]
    );
    assert_eq!(
        b.dump("t"),
        vec![
            vec![int(1), text("a1"), text("b1")],
            vec![int(2), text("two"), Value::Null]
        ]
    );
}
