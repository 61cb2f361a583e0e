//! What people do with a synced database on their first day: export inside an open
//! transaction, import or resolve inside one and roll it back, resolve conflicts in every way the
//! API allows, keep derived data with their own triggers.

mod common;

use common::*;
use rusqlite::types::Value;

const T: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT); SELECT sync_enable('t');";

fn send(from: &Device, to: &Device) -> ImportResult {
    to.import(&from.bundle_for(Some(to)))
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn an_export_inside_a_transaction_with_uncommitted_writes_is_refused() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(a.conn(), "BEGIN; INSERT INTO t VALUES (1, 'uncommitted')");
    let path = a.db.dir.path().join("x1.bundle");
    let err = call(
        a.conn(),
        &format!("SELECT sync_bundle_out(NULL, '{}')", path.display()),
    )
    .unwrap_err();
    assert!(
        err.contains("sync_bundle_out") && err.contains("COMMIT (or ROLLBACK) first"),
        "{err}"
    );
    assert!(!path.exists(), "nothing written");
    exec(a.conn(), "ROLLBACK");
    exec(a.conn(), "INSERT INTO t VALUES (2, 'committed')");
    let r = send(&a, &b);
    assert_eq!((r.applied, r.duplicates), (1, 0));
    assert_eq!(b.dump("t"), vec![vec![Value::Integer(2), text("committed")]]);
    // the seq the rolled-back insert had is the committed insert's: it never left the device
    exec(b.conn(), "INSERT INTO t VALUES (3, 'from b')");
    send(&b, &a);
    assert_eq!(a.dump("t"), b.dump("t"));
}

#[test]
fn an_export_inside_a_read_transaction_works() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x')");
    exec(a.conn(), "BEGIN; SELECT count(*) FROM t");
    let path = a.bundle_for(Some(&b));
    exec(a.conn(), "COMMIT");
    assert_eq!(b.import(&path).applied, 1);
}

#[test]
fn an_export_after_an_uncommitted_import_is_refused() {
    // the manifest's clock would claim ops that may still roll back: the peer would then never
    // send them again
    let (a, b, c) = (Device::new("a", T), Device::new("b", T), Device::new("c", T));
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x')");
    let bundle = a.bundle_for(None);
    exec(b.conn(), "BEGIN");
    b.import(&bundle);
    let path = b.db.dir.path().join("b-in-txn.bundle");
    let err = call(
        b.conn(),
        &format!("SELECT sync_bundle_out(NULL, '{}')", path.display()),
    )
    .unwrap_err();
    assert!(err.contains("COMMIT (or ROLLBACK) first"), "{err}");
    exec(b.conn(), "ROLLBACK");
    assert_eq!(send(&b, &c).applied, 0);
}

#[test]
fn an_import_rolled_back_with_its_transaction_can_be_retried() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x')");
    send(&a, &b);
    exec(a.conn(), "UPDATE t SET a = 'from a' WHERE id = 1");
    exec(b.conn(), "UPDATE t SET a = 'from b' WHERE id = 1");
    let bundle = a.bundle_for(Some(&b));
    let (rows, conflicts, clock) = (b.dump("t"), b.conflicts(), b.clock());
    exec(b.conn(), "BEGIN");
    let r = b.import(&bundle);
    assert_eq!((r.applied, r.conflicts), (1, 1));
    exec(b.conn(), "ROLLBACK");
    assert_eq!((b.dump("t"), b.conflicts(), b.clock()), (rows, conflicts, clock));
    // b's knowledge of a rolled back too: a's next bundle for b carries the op again
    let again = a.bundle_for(Some(&b));
    let r = b.import(&again);
    assert_eq!((r.applied, r.conflicts, r.skipped), (1, 1, false));
    // the first bundle's import was rolled back: it is not "imported before", its op is here
    let r = b.import(&bundle);
    assert_eq!((r.skipped, r.applied, r.duplicates), (false, 0, 2));
    assert!(b.import(&bundle).skipped);
    send(&b, &a);
    assert_eq!(a.dump("t"), b.dump("t"));
    assert_eq!(a.conflicts(), b.conflicts());
}

#[test]
fn a_resolution_rolled_back_with_its_transaction_can_be_retried() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x')");
    send(&a, &b);
    exec(a.conn(), "UPDATE t SET a = 'from a' WHERE id = 1");
    exec(b.conn(), "UPDATE t SET a = 'from b' WHERE id = 1");
    send(&a, &b);
    let ops = op_count(b.conn());
    let (rows, conflicts) = (b.dump("t"), b.conflicts());
    exec(b.conn(), "BEGIN");
    exec(
        b.conn(),
        "SELECT sync_resolve(id, '{\"a\": \"merged\"}') FROM sync_conflicts",
    );
    exec(b.conn(), "ROLLBACK");
    assert_eq!((b.dump("t"), b.conflicts(), op_count(b.conn())), (rows, conflicts, ops));
    exec(
        b.conn(),
        "SELECT sync_resolve(id, '{\"a\": \"merged\"}') FROM sync_conflicts",
    );
    send(&b, &a);
    assert_eq!(a.dump("t"), vec![vec![Value::Integer(1), text("merged")]]);
    assert_eq!(a.conflicts(), b.conflicts());
    assert!(a.conflicts().iter().all(|c| c.7 == 1));
}
