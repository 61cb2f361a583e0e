//! The sync loop between devices, scenario by scenario: bundles, causal delivery, relays,
//! idempotence, conflicts and their resolution.

mod common;

use common::bundle;
use common::*;
use rusqlite::types::Value;
use std::path::Path;

const TODOS: &str = "CREATE TABLE todos(id INTEGER PRIMARY KEY, title TEXT, done INTEGER, note);
                     SELECT sync_enable('todos');";

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// Sends `from`'s ops for `to` and imports them there.
fn ops_in_log(d: &Device) -> i64 {
    op_count(d.conn())
}

#[test]
fn edits_and_deletes_of_rows_a_device_holds_arrive_for_every_kind_of_key() {
    // most go to the table at once (each follows every write its row holds); the row the
    // receiver edited too is a conflict, a row both deleted stays deleted
    let schema = "CREATE TABLE i(id INTEGER PRIMARY KEY, a TEXT, n INTEGER);
                  CREATE TABLE s(id TEXT PRIMARY KEY, a TEXT, n INTEGER);
                  CREATE TABLE c(g TEXT, id INTEGER, a TEXT, n INTEGER, PRIMARY KEY (g, id))
                    WITHOUT ROWID;
                  SELECT sync_enable('i'), sync_enable('s'), sync_enable('c');";
    let (a, b) = (Device::new("a", schema), Device::new("b", schema));
    exec(
        a.conn(),
        "WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k WHERE x < 200)
         INSERT INTO i SELECT x, 'a' || x, x FROM k;
         INSERT INTO s SELECT 'k' || id, a, n FROM i;
         INSERT INTO c SELECT 'g' || (id % 3), id, a, n FROM i;",
    );
    send(&a, &b);
    send(&b, &a);
    for t in ["i", "s", "c"] {
        exec(
            a.conn(),
            &format!(
                "UPDATE {t} SET n = n + 1000 WHERE n % 3 = 0;
                 UPDATE {t} SET a = 'both', n = -n WHERE n % 10 = 1;
                 DELETE FROM {t} WHERE n % 5 = 2;"
            ),
        );
        exec(
            b.conn(),
            &format!(
                "UPDATE {t} SET n = 7000 WHERE n = 6;
                 DELETE FROM {t} WHERE n IN (4, 7);"
            ),
        );
    }
    let r = send(&a, &b);
    assert_eq!(r.conflicts, 3, "one row edited on both devices, per table");
    send(&b, &a);
    for t in ["i", "s", "c"] {
        assert_eq!(a.dump(t), b.dump(t), "table {t}");
        let left: i64 = b
            .conn()
            .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            left,
            200 - 40 - 1,
            "table {t}: 40 deleted on a, 2 on b, one of them on both"
        );
    }
    assert_eq!(a.conflicts().len(), b.conflicts().len());
}

#[test]
fn a_change_of_case_in_a_nocase_column_reaches_the_peer() {
    let schema = "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE);
                  SELECT sync_enable('people');";
    let (a, b) = (Device::new("a", schema), Device::new("b", schema));
    exec(a.conn(), "INSERT INTO people VALUES (1, 'Bob')");
    send(&a, &b);
    exec(a.conn(), "UPDATE people SET name = 'bob'");
    send(&a, &b);
    let name: String = b
        .conn()
        .query_row("SELECT name FROM people", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "bob");
}

#[test]
fn a_row_travels_and_the_importer_captures_nothing() {
    let a = Device::new("a", TODOS);
    let b = Device::new("b", &format!("PRAGMA recursive_triggers = ON; {TODOS}"));
    exec(
        a.conn(),
        "INSERT INTO todos VALUES (1, 'milk', 0, x'00ff'), (2, 'bread', 1, 0.1 + 0.2)",
    );
    let r = send(&a, &b);
    assert_eq!(
        (
            r.applied,
            r.conflicts,
            r.duplicates,
            r.skipped,
            r.pending,
            r.total
        ),
        (2, 0, 0, false, 0, 2)
    );
    assert_eq!(b.dump("todos"), a.dump("todos"));
    assert_eq!(ops_in_log(&b), 0, "imported writes are not local ops");
    assert_eq!(b.clock(), a.clock());
}

#[test]
fn relay_reaches_a_third_device_with_the_edit() {
    let (a, b, c) = (
        Device::new("a", TODOS),
        Device::new("b", TODOS),
        Device::new("c", TODOS),
    );
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'milk', 0, NULL)");
    send(&a, &b);
    exec(b.conn(), "UPDATE todos SET done = 1 WHERE id = 1");
    let r = send(&b, &c); // c never hears from a directly
    assert_eq!((r.applied, r.pending), (2, 0));
    assert_eq!(
        c.dump("todos"),
        vec![vec![
            Value::Integer(1),
            text("milk"),
            Value::Integer(1),
            Value::Null
        ]]
    );
    assert_eq!(c.dump("todos"), b.dump("todos"));
}

#[test]
fn an_update_that_arrives_before_its_insert_waits() {
    let (a, b, c) = (
        Device::new("a", TODOS),
        Device::new("b", TODOS),
        Device::new("c", TODOS),
    );
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'milk', 0, NULL)");
    let from_a = a.bundle_for(None);
    b.import(&from_a);
    exec(b.conn(), "UPDATE todos SET title = 'oat milk' WHERE id = 1");
    // a bundle with b's ops only (b thinks c has a's op: made for a, who has it)
    let only_b = b.bundle_for(Some(&a));
    let r = c.import(&only_b);
    assert_eq!(
        (r.applied, r.pending),
        (0, 1),
        "the update waits for the insert it follows"
    );
    assert!(c.dump("todos").is_empty());
    let r = c.import(&from_a);
    assert_eq!(
        (r.applied, r.pending),
        (2, 0),
        "the insert arrives, and the update after it"
    );
    assert_eq!(c.dump("todos"), b.dump("todos"));
}

#[test]
fn writes_after_an_import_travel_cleanly() {
    // the Python library rejected its own bundles after this sequence
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'one', 0, NULL)");
    send(&a, &b);
    exec(b.conn(), "INSERT INTO todos VALUES (2, 'two', 0, NULL)");
    send(&b, &a);
    exec(
        a.conn(),
        "INSERT INTO todos VALUES (3, 'three', 0, NULL); UPDATE todos SET done = 1 WHERE id = 2;",
    );
    let r = send(&a, &b);
    assert_eq!((r.applied, r.pending), (2, 0));
    assert_eq!(a.dump("todos"), b.dump("todos"));
    assert_eq!(a.clock(), b.clock());
}

#[test]
fn interleaved_updates_converge() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'x', 0, NULL)");
    send(&a, &b);
    exec(a.conn(), "UPDATE todos SET title = 'A1'");
    exec(b.conn(), "UPDATE todos SET title = 'B1'");
    exec(b.conn(), "UPDATE todos SET title = 'B2'");
    send(&b, &a);
    exec(a.conn(), "UPDATE todos SET title = 'A2'");
    send(&a, &b);
    send(&b, &a);
    assert_eq!(a.dump("todos"), b.dump("todos"));
    assert_eq!(a.dump("todos")[0][1], text("A2"), "A2 follows everything");
    assert_eq!(a.conflicts(), b.conflicts());
}

#[test]
fn remote_update_and_delete_hit_the_right_row_with_odd_keys() {
    let schema = "CREATE TABLE p(v TEXT, w INTEGER, id INTEGER PRIMARY KEY);
                  CREATE TABLE c(a TEXT, x INTEGER, y TEXT, PRIMARY KEY (y, x)) WITHOUT ROWID;
                  SELECT sync_enable('p'); SELECT sync_enable('c');";
    let (a, b) = (Device::new("a", schema), Device::new("b", schema));
    exec(
        a.conn(),
        "INSERT INTO p VALUES ('one', 1, 10), ('two', 2, 20);
                    INSERT INTO c VALUES ('r1', 1, 'k'), ('r2', 2, 'k'), ('r3', 1, 'j');",
    );
    send(&a, &b);
    exec(a.conn(), "UPDATE p SET v = 'TWO' WHERE id = 20; DELETE FROM p WHERE id = 10;
                    UPDATE c SET a = 'R2' WHERE x = 2 AND y = 'k'; DELETE FROM c WHERE x = 1 AND y = 'k';");
    send(&a, &b);
    assert_eq!(
        b.dump("p"),
        vec![vec![text("TWO"), Value::Integer(2), Value::Integer(20)]]
    );
    assert_eq!(b.dump("c"), a.dump("c"));
    assert_eq!(b.dump("c").len(), 2);
}

#[test]
fn blobs_and_reals_arrive_exact() {
    let schema = "CREATE TABLE v(id INTEGER PRIMARY KEY, x); SELECT sync_enable('v');";
    let (a, b) = (Device::new("a", schema), Device::new("b", schema));
    let values = [
        Value::Real(0.1 + 0.2),
        Value::Real(-0.0),
        Value::Real(f64::INFINITY),
        Value::Integer(i64::MIN),
        Value::Blob(vec![]),
        Value::Blob((0..=255).collect()),
        text(""),
        Value::Null,
    ];
    for (i, v) in values.iter().enumerate() {
        a.conn()
            .execute(
                "INSERT INTO v VALUES (?1, ?2)",
                rusqlite::params![i as i64, v],
            )
            .unwrap();
    }
    send(&a, &b);
    let got: Vec<Value> = b.dump("v").into_iter().map(|r| r[1].clone()).collect();
    assert_eq!(got.len(), values.len(), "every row arrived");
    for (g, v) in got.iter().zip(&values) {
        assert!(same_value(g, v), "{v:?} arrived as {g:?}");
    }
}

#[test]
fn primary_key_change_propagates() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'x', 0, NULL)");
    send(&a, &b);
    exec(a.conn(), "UPDATE todos SET id = 7 WHERE id = 1");
    send(&a, &b);
    assert_eq!(
        b.dump("todos"),
        vec![vec![
            Value::Integer(7),
            text("x"),
            Value::Integer(0),
            Value::Null
        ]]
    );
}

#[test]
fn quoted_names_travel() {
    let schema = r#"CREATE TABLE "order"(id INTEGER PRIMARY KEY, "due date" TEXT, "we""ird" BLOB);
                    SELECT sync_enable('order');"#;
    let (a, b) = (Device::new("a", schema), Device::new("b", schema));
    exec(
        a.conn(),
        r#"INSERT INTO "order" VALUES (1, 'today', x'01'); UPDATE "order" SET "due date" = 'later';"#,
    );
    send(&a, &b);
    assert_eq!(b.dump("order"), a.dump("order"));
}

#[test]
fn the_same_bundle_three_times_is_applied_once() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(
        a.conn(),
        "INSERT INTO todos VALUES (1, 'x', 0, NULL), (2, 'y', 0, NULL)",
    );
    let bundle = a.bundle_for(None);
    assert_eq!(b.import(&bundle).applied, 2);
    let snapshot_after_one = (b.dump("todos"), snapshot(b.conn()));
    for _ in 0..2 {
        let r = b.import(&bundle);
        assert!(r.skipped);
        assert_eq!((r.applied, r.conflicts, r.duplicates), (0, 0, 0));
    }
    assert_eq!((b.dump("todos"), snapshot(b.conn())), snapshot_after_one);
}

#[test]
fn overlapping_bundles_count_duplicates() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'x', 0, NULL)");
    let first = a.bundle_for(None);
    exec(a.conn(), "INSERT INTO todos VALUES (2, 'y', 0, NULL)");
    let second = a.bundle_for(None); // holds op 1 again
    assert_eq!(b.import(&first).applied, 1);
    let r = b.import(&second);
    assert_eq!((r.applied, r.duplicates, r.skipped), (1, 1, false));
    assert_eq!(b.dump("todos"), a.dump("todos"));
}

#[test]
fn a_bundle_from_a_device_to_itself_changes_nothing() {
    let a = Device::new("a", TODOS);
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'x', 0, NULL)");
    let before = (a.dump("todos"), snapshot(a.conn()).1);
    let r = a.import(&a.bundle_for(None));
    assert_eq!((r.applied, r.duplicates), (0, 1));
    assert_eq!((a.dump("todos"), snapshot(a.conn()).1), before);
}

#[test]
fn a_lost_bundle_loses_nothing_and_known_ops_are_not_sent_back() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'x', 0, NULL)");
    let _lost = a.bundle_for(Some(&b));
    exec(a.conn(), "INSERT INTO todos VALUES (2, 'y', 0, NULL)");
    let r = send(&a, &b);
    assert_eq!(r.total, 2, "the next bundle carries the lost ops again");
    assert_eq!(b.dump("todos"), a.dump("todos"));
    // a learns from b's bundle that b has a's ops: the next bundle for b holds none of them
    send(&b, &a);
    exec(a.conn(), "INSERT INTO todos VALUES (3, 'z', 0, NULL)");
    assert_eq!(send(&a, &b).total, 1);
    // and b sends a nothing of a's own
    assert_eq!(send(&b, &a).total, 0);
}

#[test]
fn concurrent_edits_of_different_columns_merge_without_conflict() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'x', 0, NULL)");
    send(&a, &b);
    exec(a.conn(), "UPDATE todos SET title = 'from a'");
    exec(b.conn(), "UPDATE todos SET done = 1");
    assert_eq!(send(&a, &b).conflicts, 0);
    assert_eq!(send(&b, &a).conflicts, 0);
    let row = vec![
        Value::Integer(1),
        text("from a"),
        Value::Integer(1),
        Value::Null,
    ];
    assert_eq!(
        (a.dump("todos"), b.dump("todos")),
        (vec![row.clone()], vec![row])
    );
    assert!(a.conflicts().is_empty() && b.conflicts().is_empty());
}

#[test]
fn same_column_conflicts_alike_on_both_devices_and_resolving_clears_both() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'x', 0, NULL)");
    send(&a, &b);
    exec(a.conn(), "UPDATE todos SET title = 'from a'");
    exec(b.conn(), "UPDATE todos SET title = 'from b'");
    assert_eq!(send(&a, &b).conflicts, 1);
    assert_eq!(send(&b, &a).conflicts, 1);
    assert_eq!(
        a.dump("todos"),
        b.dump("todos"),
        "both show the same winner"
    );
    assert_eq!(a.conflicts(), b.conflicts(), "and the same conflict");
    let (id, local, remote, winner): (String, String, String, String) = a
        .conn()
        .query_row(
            "SELECT id, local_values, remote_values, winner_op_id FROM sync_conflicts",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (local.as_str(), remote.as_str()),
        (r#"{"title":"from a"}"#, r#"{"title":"from b"}"#)
    );
    assert_eq!(a.conflicts()[0].4, winner);
    // b's point of view is the mirror image
    let b_local: String = b
        .conn()
        .query_row("SELECT local_values FROM sync_conflicts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(b_local, r#"{"title":"from b"}"#);

    call(a.conn(), &format!("SELECT sync_resolve('{id}', 'local')")).unwrap();
    assert_eq!(a.dump("todos")[0][1], text("from a"));
    assert!(a.conflicts().is_empty());
    assert_eq!(a.resolved().len(), 1, "resolved where it was resolved");
    send(&a, &b);
    assert!(b.conflicts().is_empty());
    assert_eq!(b.resolved().len(), 1, "and where the resolution arrived");
    assert_eq!(a.dump("todos"), b.dump("todos"));
    send(&b, &a);
    assert_eq!(a.conflicts(), b.conflicts());
}

#[test]
fn resolve_with_values_and_with_a_choice_that_is_already_shown() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'x', 0, NULL)");
    send(&a, &b);
    exec(a.conn(), "UPDATE todos SET title = 'from a'");
    exec(b.conn(), "UPDATE todos SET title = 'from b'");
    send(&a, &b);
    send(&b, &a);
    let (id, winner_is_local): (String, bool) = a
        .conn()
        .query_row(
            "SELECT id, winner_op_id = local_op_id FROM sync_conflicts",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // choosing what the table already shows still writes an op, so the resolution travels
    let shown = if winner_is_local { "local" } else { "remote" };
    let before = ops_in_log(&a);
    call(a.conn(), &format!("SELECT sync_resolve('{id}', '{shown}')")).unwrap();
    assert_eq!(ops_in_log(&a), before + 1);
    send(&a, &b);
    assert!(b.conflicts().is_empty());
    assert_eq!(b.resolved().len(), 1);
    // values of one's own, exactly
    exec(b.conn(), "UPDATE todos SET note = 'b'");
    exec(a.conn(), "UPDATE todos SET note = 'a'");
    send(&a, &b);
    let id2: String = b
        .conn()
        .query_row(
            "SELECT id FROM sync_conflicts WHERE NOT resolved",
            [],
            |r| r.get(0),
        )
        .unwrap();
    call(
        b.conn(),
        &format!(r#"SELECT sync_resolve('{id2}', '{{"note": 0.30000000000000004}}')"#),
    )
    .unwrap();
    send(&b, &a);
    assert_eq!(a.dump("todos")[0][3], Value::Real(0.1 + 0.2));
    assert_eq!(a.dump("todos"), b.dump("todos"));
    assert_eq!(a.conflicts(), b.conflicts());
}

#[test]
fn update_against_delete_is_a_conflict() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'x', 0, NULL)");
    send(&a, &b);
    exec(a.conn(), "DELETE FROM todos");
    exec(b.conn(), "UPDATE todos SET done = 1");
    send(&a, &b);
    send(&b, &a);
    assert_eq!(a.dump("todos"), b.dump("todos"));
    let conflicts = a.conflicts();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].3, r#"["done"]"#);
    assert_eq!(conflicts, b.conflicts());
}

#[test]
fn import_inside_a_transaction_is_part_of_it() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'x', 0, NULL)");
    let bundle = a.bundle_for(None);
    exec(b.conn(), "BEGIN");
    b.import(&bundle);
    exec(b.conn(), "ROLLBACK");
    assert!(b.dump("todos").is_empty());
    assert_eq!(
        b.import(&bundle).applied,
        1,
        "rolled back, so not seen: imported again"
    );
}

fn refused(to: &Device, bundle: &Path, expected: &str) {
    let before = (to.dump("todos"), snapshot(to.conn()));
    let err = to.try_import(bundle).expect_err("a bad bundle is refused");
    assert!(err.contains(expected), "got {err:?}, expected {expected:?}");
    assert_eq!(
        (to.dump("todos"), snapshot(to.conn())),
        before,
        "a refused bundle changes nothing"
    );
    assert!(to.conn().is_autocommit());
}

#[test]
fn an_edited_payload_is_refused() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'milk', 0, NULL)");
    let bundle = a.bundle_for(None);
    bundle::replace_in_stream(&bundle, b"milk", b"beer");
    refused(&b, &bundle, "manifest hash does not match its ops");
}

#[test]
fn an_independent_reader_of_the_format_agrees_with_the_manifest() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(
        a.conn(),
        "INSERT INTO todos VALUES (1, 'milk', 0, x'00'), (2, 'tea', 1, NULL);
         UPDATE todos SET done = 1 WHERE id = 1; DELETE FROM todos WHERE id = 2;",
    );
    let path = a.bundle_for(None);
    let original = bundle::read(&path);
    assert_eq!(original.ops.len(), 4);
    assert_eq!(
        original.ops[2].cells,
        vec![("done".into(), bundle::M::Int(1))]
    );
    let hash = original.manifest[6].clone();
    bundle::forge(&path, |_| {}); // rewritten in full, without aliases or shared forms
    assert_eq!(bundle::read(&path).manifest[6], hash, "same ops, same hash");
    b.import(&path);
    assert_eq!(b.dump("todos"), a.dump("todos"));
}

#[test]
fn ops_naming_internal_tables_or_the_wrong_key_are_refused() {
    let schema = "CREATE TABLE tbl_x(id INTEGER PRIMARY KEY, col_y); SELECT sync_enable('tbl_x');";
    let a = Device::new("a", schema);
    let b = Device::new("b", &format!("{schema} {TODOS}"));
    exec(a.conn(), "INSERT INTO tbl_x VALUES (1, 2)");
    type Edit = fn(&mut bundle::Op);
    // (a column or table this device does not have, or another key, is not refused: their
    // ops wait, tests/schema.rs)
    let cases: [(Edit, &str); 1] = [(
        |op| op.table = "_sync_ops".into(),
        r#"names table "_sync_ops", which is internal to SQLite or sqlite-sync"#,
    )];
    for (edit, expected) in cases {
        let path = a.bundle_for(None);
        bundle::forge(&path, |b| edit(&mut b.ops[0]));
        refused(&b, &path, expected);
    }
}

/// A directory given for the bundle's path says so (a new user gave `/tmp`, and was told the
/// file existed and was not a bundle of this device).
#[test]
fn bundle_out_to_a_directory_says_it_is_one() {
    let a = Device::new("a", TODOS);
    let dir = a.db.dir.path().display().to_string();
    let err = call(a.conn(), &format!("SELECT sync_bundle_out(NULL, '{dir}')")).unwrap_err();
    assert!(err.contains("sync_bundle_out"), "{err}");
    assert!(
        err.contains("is a directory: give the path of the bundle file"),
        "{err}"
    );
}

#[test]
fn bundle_out_refuses_to_overwrite_what_is_not_its_own_bundle() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    let path = a.db.dir.path().join("precious.txt");
    std::fs::write(&path, "keep me").unwrap();
    let err = call(
        a.conn(),
        &format!("SELECT sync_bundle_out(NULL, '{}')", path.display()),
    )
    .unwrap_err();
    assert!(
        err.contains("exists and is not a bundle of this device"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    // b's bundle is not a's either; a's own bundle may be replaced
    let theirs = b.bundle_for(None);
    assert!(call(
        a.conn(),
        &format!("SELECT sync_bundle_out(NULL, '{}')", theirs.display())
    )
    .is_err());
    let mine = a.bundle_for(None);
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'x', 0, NULL)");
    call(
        a.conn(),
        &format!("SELECT sync_bundle_out(NULL, '{}')", mine.display()),
    )
    .unwrap();
    assert_eq!(b.import(&mine).applied, 1);
    // nothing is left beside it
    let leftovers = std::fs::read_dir(a.db.dir.path()).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp-")
    });
    assert_eq!(leftovers.count(), 0);
}

#[test]
fn bad_calls_are_refused_clearly() {
    let a = Device::new("a", TODOS);
    for (sql, expected) in [
        (
            "SELECT sync_bundle_in(NULL)",
            "sync_bundle_in: expects the bundle's path as TEXT",
        ),
        ("SELECT sync_bundle_in('/nonexistent/b.db')", "no such file"),
        ("SELECT sync_bundle_in('.')", "not a file"),
        (
            "SELECT sync_bundle_out('xyz', 'b.db')",
            "is not a device id",
        ),
        (
            "SELECT sync_bundle_out(NULL, NULL)",
            "expects the bundle's path as TEXT",
        ),
        (
            "SELECT sync_resolve('00', 'local')",
            "expects a conflict id",
        ),
        (
            "SELECT sync_resolve('00000000000000000000000000000000', 'local')",
            "no conflict with id",
        ),
    ] {
        let err = call(a.conn(), sql).expect_err(sql);
        assert!(err.contains(expected), "{sql}: {err}");
    }
    let not_sqlite = a.db.dir.path().join("not.db");
    std::fs::write(&not_sqlite, vec![7u8; 5000]).unwrap();
    let err = a.try_import(&not_sqlite).unwrap_err();
    assert!(err.contains("not a readable bundle"), "{err}");
}

#[test]
fn sync_log_shows_ops_of_every_device() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'x', 0, x'ff')");
    send(&a, &b);
    exec(b.conn(), "DELETE FROM todos");
    let rows: Vec<(String, i64, String, String, Option<String>)> = b
        .conn()
        .prepare(r#"SELECT device, seq, kind, pk, "values" FROM sync_log ORDER BY lamport"#)
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [
            (
                a.id(),
                1,
                "insert".into(),
                r#"{"id":1}"#.into(),
                Some(r#"{"id":1,"title":"x","done":0,"note":{"blob":"ff"}}"#.into())
            ),
            (b.id(), 1, "delete".into(), r#"{"id":1}"#.into(), None),
        ]
    );
}

#[test]
fn a_synced_database_can_be_attached() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'x', 0, NULL)");
    send(&a, &b);
    let path = a.db.path();
    exec(b.conn(), &format!("ATTACH '{}' AS other", path.display()));
    let n: i64 = b
        .conn()
        .query_row(
            "SELECT count(*) FROM other.todos JOIN main.todos USING (id, title, done)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn replace_reaches_peers_as_the_same_overwrite_with_recursive_triggers_on_or_off() {
    let outcome = |recursive: &str| {
        let a = Device::new(
            "a",
            &format!("PRAGMA recursive_triggers = {recursive}; {TODOS}"),
        );
        let b = Device::new("b", TODOS);
        exec(a.conn(), "INSERT INTO todos VALUES (1, 'x', 0, NULL)");
        send(&a, &b);
        exec(
            a.conn(),
            "INSERT OR REPLACE INTO todos VALUES (1, 'replaced', 1, NULL)",
        );
        exec(b.conn(), "UPDATE todos SET title = 'edited'");
        send(&a, &b);
        send(&b, &a);
        assert_eq!(a.dump("todos"), b.dump("todos"));
        assert_eq!(a.conflicts(), b.conflicts());
        let columns: Vec<String> = a.conflicts().into_iter().map(|c| c.3).collect();
        (a.dump("todos")[0][2].clone(), columns)
    };
    let off = outcome("OFF");
    assert_eq!(
        off.1,
        [r#"["title"]"#],
        "one conflict, on the column both wrote"
    );
    assert_eq!(outcome("ON"), off);
}

#[test]
fn an_import_that_holds_a_row_out_leaves_capture_on() {
    let schema =
        "CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE); SELECT sync_enable('u');";
    let (a, b) = (Device::new("a", schema), Device::new("b", schema));
    exec(a.conn(), "INSERT INTO u VALUES (1, 'x@example.com')");
    exec(b.conn(), "INSERT INTO u VALUES (2, 'x@example.com')");
    b.import(&a.bundle_for(None));
    assert_eq!(b.dump("u").len(), 1);
    assert_eq!(b.held_out().len(), 1);
    assert!(b.conn().is_autocommit());
    exec(b.conn(), "INSERT INTO u VALUES (3, 'y@example.com')");
    assert_eq!(
        op_count(b.conn()),
        2,
        "triggers are back on after the failed import"
    );
}

/// An op that differs from the one held here under its device and seq is a second history of
/// that device (a copy or a restored backup wrote it; without signatures a forgery looks the
/// same): kept beside the first, as a concurrent write, here a conflict.
#[test]
fn an_op_that_differs_from_the_copy_already_here_is_a_second_history() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'milk', 0, NULL)");
    send(&a, &b);
    let forged = a.bundle_for(None);
    bundle::forge(&forged, |b| {
        b.ops[0].cells[1].1 = bundle::M::Str("beer".into())
    });
    let r = b.import(&forged);
    assert_eq!((r.applied, r.conflicts, r.duplicates), (1, 1, 0), "{r:?}");
    assert_eq!(b.conflicts().len(), 1);
    let ids: Vec<String> = b
        .conn()
        .prepare("SELECT DISTINCT device FROM sync_log WHERE seq = 1")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "two histories of a, each under its own id: {ids:?}"
    );
    assert!(
        !ids.contains(&a.id()),
        "a's id keeps only the ops they share: none"
    );
}

#[test]
fn large_bundles_mixing_new_and_known_rows_apply_like_small_ones() {
    let schema = "CREATE TABLE t(id INTEGER PRIMARY KEY, title TEXT, n);
                  CREATE TABLE u(k TEXT PRIMARY KEY, v);
                  SELECT sync_enable('t'); SELECT sync_enable('u');";
    let (a, b) = (Device::new("a", schema), Device::new("b", schema));
    // new rows only, in runs of one form and alternating between tables
    exec(
        a.conn(),
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300)
         INSERT INTO t SELECT i, 'title ' || i, i * 0.5 FROM c;",
    );
    for i in 0..150 {
        exec(
            a.conn(),
            &format!(
                "INSERT INTO t VALUES ({}, 'x', {i}); INSERT INTO u VALUES ('k{i}', {i});",
                1000 + i
            ),
        );
    }
    assert_eq!(send(&a, &b).applied, 600);
    assert_eq!((b.dump("t"), b.dump("u")), (a.dump("t"), a.dump("u")));
    // known rows and new ones in every batch, a row inserted and changed within one batch,
    // deletes, and concurrent writes on b to some of the same rows
    for i in 1..=200 {
        exec(
            a.conn(),
            &format!(
                "UPDATE t SET n = n + 1 WHERE id = {i};
                 INSERT INTO t VALUES ({0}, 'new', 0); UPDATE t SET title = 'changed' WHERE id = {0};
                 DELETE FROM u WHERE k = 'k{1}';",
                5000 + i,
                i % 150
            ),
        );
    }
    exec(
        b.conn(),
        "UPDATE t SET n = -1 WHERE id % 10 = 0; INSERT INTO t VALUES (5001, 'b was first', 9);",
    );
    send(&a, &b);
    send(&b, &a);
    assert_eq!((b.dump("t"), b.dump("u")), (a.dump("t"), a.dump("u")));
    assert_eq!(a.conflicts(), b.conflicts());
    assert!(a.conflicts().len() >= 20, "the concurrent writes conflict");
}
