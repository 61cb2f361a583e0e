//! Imports that cannot be carried out: a remote row that breaks one of this database's own
//! constraints (UNIQUE, CHECK, FOREIGN KEY), a read-only database, a full disk. The rule: the
//! whole bundle is refused with SQLite's reason, the database is left as it was, no transaction
//! stays open, the host goes on, and the same bundle imports once the cause is gone.

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
fn a_remote_row_that_fails_a_check_constraint() {
    let a = Device::new(
        "a",
        "CREATE TABLE p(id INTEGER PRIMARY KEY, qty INTEGER); SELECT sync_enable('p');",
    );
    let b = Device::new(
        "b",
        "CREATE TABLE p(id INTEGER PRIMARY KEY, qty INTEGER CHECK (qty >= 0));
         SELECT sync_enable('p');",
    );
    exec(a.conn(), "INSERT INTO p VALUES (1, 5), (2, -1)");
    let bundle = a.bundle_for(None);
    refused(&b, &bundle, "p", "CHECK constraint failed");
    exec(a.conn(), "UPDATE p SET qty = 0 WHERE id = 2");
    b.import(&a.bundle_for(None));
    assert_eq!(b.dump("p"), a.dump("p"));
}

#[test]
fn a_remote_row_that_fails_a_foreign_key() {
    let schema = "CREATE TABLE list(id INTEGER PRIMARY KEY);
                  CREATE TABLE item(id INTEGER PRIMARY KEY, list INTEGER REFERENCES list(id));
                  SELECT sync_enable('list'); SELECT sync_enable('item');";
    let (a, b) = (Device::new("a", schema), Device::new("b", schema));
    exec(a.conn(), "PRAGMA foreign_keys = OFF");
    exec(b.conn(), "PRAGMA foreign_keys = ON");
    // a, with foreign keys off, writes an item whose list does not exist
    exec(a.conn(), "INSERT INTO item VALUES (1, 7)");
    refused(
        &b,
        &a.bundle_for(None),
        "item",
        "FOREIGN KEY constraint failed",
    );
    exec(a.conn(), "INSERT INTO list VALUES (7)");
    b.import(&a.bundle_for(None));
    assert_eq!(b.dump("item"), a.dump("item"));
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
        err.contains("attempt to write a readonly database"),
        "{err}"
    );
    assert!(ro.is_autocommit());
    assert_eq!(std::fs::read(b.db.path()).unwrap(), before);
    drop(ro);
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
