//! Imports that cannot be carried out: a read-only database, a full disk, a value longer than
//! the database's length limit (a 100 MB value otherwise syncs whole). The rule: the whole
//! bundle is refused with SQLite's reason, the database is left as it was, no transaction
//! stays open, the host goes on, and the same bundle imports once the cause is gone. (A row
//! that breaks a constraint is held out, never a reason to refuse: tests/constraints.rs.)

mod common;

use common::*;

fn refused(to: &Device, bundle: &std::path::Path, table: &str, expected: &str) {
    let before = (to.dump(table), snapshot(to.conn()));
    let err = to.try_import(bundle).expect_err("the import is refused");
    assert!(err.contains(expected), "got {err:?}, expected {expected:?}");
    assert!(err.starts_with("sync_bundle_in: "), "{err}");
    assert_eq!((to.dump(table), snapshot(to.conn())), before);
    assert!(to.conn().is_autocommit(), "no transaction left open");
}

#[test]
fn a_read_only_database() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(a.conn(), "INSERT INTO todos VALUES (1, 'milk')");
    let bundle = a.bundle_for(None);
    let ro = rusqlite::Connection::open_with_flags(
        b.db.path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    load(&ro);
    let before = std::fs::read(b.db.path()).unwrap();
    let err = call(
        &ro,
        &format!("SELECT sync_bundle_in('{}')", bundle.display()),
    )
    .unwrap_err();
    assert!(
        err.contains("attempt to write a readonly database (the database is open read-only here"),
        "{err}"
    );
    assert!(ro.is_autocommit());
    assert_eq!(std::fs::read(b.db.path()).unwrap(), before);
    drop(ro);
    // a connection with PRAGMA query_only is told the same, and what to run
    exec(b.conn(), "PRAGMA query_only = ON");
    for sql in [
        format!("SELECT sync_bundle_in('{}')", bundle.display()),
        "SELECT sync_fork()".to_string(),
        "SELECT sync_init()".to_string(),
    ] {
        let err = call(b.conn(), &sql).unwrap_err();
        assert!(
            err.contains(
                "(PRAGMA query_only is ON on this connection: run PRAGMA query_only = OFF first"
            ),
            "{sql}: {err}"
        );
        assert!(b.conn().is_autocommit());
    }
    assert_eq!(std::fs::read(b.db.path()).unwrap(), before);
    exec(b.conn(), "PRAGMA query_only = OFF");
    b.import(&bundle);
    assert_eq!(b.dump("todos"), a.dump("todos"));
}

const TODOS: &str =
    "CREATE TABLE todos(id INTEGER PRIMARY KEY, title TEXT); SELECT sync_enable('todos');";

#[test]
fn a_full_disk() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(
        a.conn(),
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000)
         INSERT INTO todos SELECT i, printf('a title long enough to fill pages %d', i) FROM c",
    );
    let bundle = a.bundle_for(None);
    let pages: i64 = b
        .conn()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    exec(b.conn(), &format!("PRAGMA max_page_count = {}", pages + 20));
    refused(&b, &bundle, "todos", "database or disk is full");
    exec(b.conn(), "PRAGMA max_page_count = 1000000");
    assert_eq!(b.import(&bundle).applied, 20000);
    assert_eq!(b.dump("todos"), a.dump("todos"));
}

/// Two devices insert different rows with the same UNIQUE value: each refuses the other's
/// bundle, naming the constraint, until one of the rows is changed on its device; then both
/// import and agree.
/// A 100 MB value syncs whole; a database whose length limit is below it refuses the bundle
/// with SQLite's reason.
#[test]
fn a_100_mb_value() {
    let schema = "CREATE TABLE files(id INTEGER PRIMARY KEY, body BLOB);
                  SELECT sync_enable('files');";
    let (a, b, small) = (
        Device::new("a", schema),
        Device::new("b", schema),
        Device::new("small", schema),
    );
    exec(
        a.conn(),
        "INSERT INTO files VALUES (1, randomblob(100000000)), (2, 'small')",
    );
    let bundle = a.bundle_for(None);
    small
        .conn()
        .set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, 50_000_000)
        .unwrap();
    refused(&small, &bundle, "files", "string or blob too big");
    assert_eq!(b.import(&bundle).applied, 2);
    assert!(
        a.dump("files") == b.dump("files"),
        "the value arrives whole"
    );
    // and it travels on from b
    small
        .conn()
        .set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, 1_000_000_000)
        .unwrap();
    assert_eq!(small.import(&b.bundle_for(None)).applied, 2);
    assert!(a.dump("files") == small.dump("files"));
}

/// Foreign keys are checked when the import ends, not row by row: rows are written in key
/// order, not in the order of their ops, and a bundle that deletes an item and then its list
/// (the list's table enabled first) imports. `defer_foreign_keys` ends with the import.
#[test]
fn foreign_keys_hold_at_the_end_of_an_import() {
    let schema = "CREATE TABLE list(id INTEGER PRIMARY KEY, name TEXT);
                  CREATE TABLE item(id INTEGER PRIMARY KEY, list INTEGER REFERENCES list(id));
                  SELECT sync_enable('list'); SELECT sync_enable('item');";
    let (a, b) = enforcing(schema);
    exec(
        a.conn(),
        "INSERT INTO list VALUES (7, 'groceries'); INSERT INTO item VALUES (1, 7);",
    );
    b.import(&a.bundle_for(None));
    exec(
        a.conn(),
        "UPDATE list SET name = 'food' WHERE id = 7; DELETE FROM item; DELETE FROM list;",
    );
    let bundle = a.bundle_for(Some(&b));
    b.import(&bundle);
    assert_eq!(b.dump("list"), a.dump("list"));
    assert_eq!(b.dump("item"), a.dump("item"));
    assert!(b.conn().is_autocommit());
    let deferred: i64 = b
        .conn()
        .query_row("PRAGMA defer_foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(deferred, 0);
}
