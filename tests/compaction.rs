//! Compaction points: `sync_compact()` writes a floor op (this device's stable clock) that
//! travels like any op; an op written behind it (against an older state) that brings back a
//! deleted row shows the floor's values in the columns it did not write, on every device,
//! whichever it received first.

mod common;

use common::*;
use rusqlite::types::Value;

const T: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT, y TEXT); SELECT sync_enable('t');";

fn compact(d: &Device) -> Option<i64> {
    d.conn()
        .query_row("SELECT sync_compact() ->> '$.floor'", [], |r| r.get(0))
        .unwrap()
}

fn row(d: &Device, id: i64) -> Option<Vec<Value>> {
    d.dump("t").into_iter().find(|r| r[0] == Value::Integer(id))
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn a_floor_op_travels_and_changes_no_row_by_itself() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x', 'y')");
    assert_eq!(
        compact(&a),
        None,
        "alone, nothing is stable: no peer has a's op (a backup put back could write another)"
    );
    send(&a, &b);
    send(&b, &a);
    assert_eq!(compact(&a), Some(2), "b confirmed a's op");
    assert_eq!(compact(&a), None, "nothing new is stable");
    exec(b.conn(), "UPDATE t SET x = 'x2'");
    send(&b, &a);
    assert_eq!(
        compact(&a),
        Some(3),
        "b's update is stable now: b said it has a's ops"
    );
    let r = send(&a, &b);
    assert_eq!((r.applied, r.pending), (2, 0), "a's two floor ops: {r:?}");
    assert_eq!(r.waiting, "[]", "floor ops wait for no table");
    assert_eq!(a.dump("t"), b.dump("t"));
    assert_eq!(
        row(&b, 1),
        Some(vec![Value::Integer(1), text("x2"), text("y")])
    );
    assert_eq!(compact(&b), Some(2), "b's own floor");
    send(&b, &a);
    assert_eq!(a.dump("t"), b.dump("t"));
    assert_eq!(a.clock(), b.clock());
    let floors: i64 = (a.conn())
        .query_row(
            "SELECT count(*) FROM sync_log WHERE \"table\" = '_sync_floor'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(floors, 3, "in the log, as ops on table _sync_floor");
}

/// c gets the row, then writes nothing it syncs until a and b updated it, deleted it and a
/// compacted past both; c's update of another column then wins over the delete (its Lamport
/// time is higher) and brings the row back: its column x shows the floor's value, as the
/// compacted history holds it, not the older one c saw.
#[test]
fn an_op_behind_a_floor_that_brings_back_a_deleted_row_shows_the_floors_values() {
    let (a, b, c) = (
        Device::new("a", T),
        Device::new("b", T),
        Device::new("c", T),
    );
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x1', 'y1')");
    send(&a, &c);
    exec(a.conn(), "UPDATE t SET x = 'x2'");
    send(&a, &b);
    exec(b.conn(), "DELETE FROM t WHERE id = 1");
    send(&b, &a);
    assert_eq!(row(&a, 1), None);
    assert!(compact(&a).is_some());
    for n in 2..8 {
        exec(c.conn(), &format!("INSERT INTO t VALUES ({n}, 'c', 'c')"));
    }
    exec(c.conn(), "UPDATE t SET y = 'y late' WHERE id = 1");
    // b gets c's update before the floor, a after it
    send(&c, &b);
    assert_eq!(
        row(&b, 1),
        Some(vec![Value::Integer(1), text("x1"), text("y late")])
    );
    send(&c, &a);
    let revived = Some(vec![Value::Integer(1), text("x2"), text("y late")]);
    assert_eq!(row(&a, 1), revived);
    send(&a, &b);
    assert_eq!(row(&b, 1), revived, "the floor settles the row again");
    for _ in 0..2 {
        for (from, to) in [(&a, &b), (&b, &c), (&c, &a), (&a, &c), (&c, &b), (&b, &a)] {
            send(from, to);
        }
    }
    for d in [&b, &c] {
        assert_eq!(d.dump("t"), a.dump("t"), "{}", d.name);
        assert_eq!(d.conflicts(), a.conflicts(), "{}", d.name);
    }
    assert_eq!(row(&c, 1), revived);
}

/// A peer gets `a`'s ops and says so: they are stable (a device's own ops are stable only once
/// a peer confirmed them).
fn confirmed_by_a_peer(a: &Device) {
    let b = Device::new("b", T);
    send(a, &b);
    send(&b, a);
}

#[test]
fn compacting_inside_a_transaction_that_wrote_or_a_statement_that_writes_is_refused() {
    let a = Device::new("a", T);
    exec(a.conn(), "BEGIN; INSERT INTO t VALUES (1, 'x', 'y')");
    let refused = refusal(a.conn(), "SELECT sync_compact()", []);
    assert!(refused.starts_with("sync_compact: it writes"), "{refused}");
    assert!(refused.contains("COMMIT (or ROLLBACK) first"), "{refused}");
    exec(a.conn(), "COMMIT");
    exec(a.conn(), "CREATE TABLE outbox(r)");
    let refused = refusal(a.conn(), "INSERT INTO outbox SELECT sync_compact()", []);
    assert!(
        refused.contains("inside a statement that writes")
            && refused.contains("in a SELECT of its own"),
        "{refused}"
    );
    exec(a.conn(), "BEGIN IMMEDIATE");
    let refused = refusal(a.conn(), "SELECT sync_compact()", []);
    assert!(refused.contains("BEGIN IMMEDIATE"), "{refused}");
    exec(a.conn(), "ROLLBACK");
    assert_eq!(op_count(a.conn()), 1);
    confirmed_by_a_peer(&a);
    assert_eq!(compact(&a), Some(2));
    // with nothing new it writes nothing: the transaction it ran in can still export
    exec(a.conn(), "BEGIN");
    assert_eq!(compact(&a), None);
    a.bundle_for(None);
    exec(a.conn(), "COMMIT");
}

#[test]
fn compacting_from_a_read_only_connection_says_what_to_do() {
    let a = Device::new("a", T);
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x', 'y')");
    let ro = rusqlite::Connection::open_with_flags(
        a.db.path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    load(&ro);
    let refused = refusal(&ro, "SELECT sync_compact()", []);
    assert!(
        refused.contains("open read-only: compact from a connection that can write"),
        "{refused}"
    );
    confirmed_by_a_peer(&a);
    assert_eq!(compact(&a), Some(2));
}

// Compaction removes: the ops other ops overwrote below the floor go, the tables do not
// change, and sync goes on both ways, old bundles included.

fn ops_held(d: &Device) -> i64 {
    d.conn()
        .query_row("SELECT count(*) FROM sync_log", [], |r| r.get(0))
        .unwrap()
}

/// Devices a and b, a holding rows 1 and 2.
fn two_removing() -> (Device, Device) {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(
        a.conn(),
        "INSERT INTO t VALUES (1, 'x', 'y'), (2, 'x', 'y')",
    );
    (a, b)
}

#[test]
fn removing_overwritten_ops_keeps_tables_and_sync_going() {
    let (a, b) = two_removing();
    for i in 0..300 {
        exec(a.conn(), &format!("UPDATE t SET x = 'a{i}' WHERE id = 1"));
    }
    let old = a.bundle_for(None); // every op, before any went
    send(&a, &b);
    for i in 0..200 {
        exec(b.conn(), &format!("UPDATE t SET y = 'b{i}' WHERE id = 1"));
        exec(b.conn(), &format!("UPDATE t SET x = 'b{i}' WHERE id = 2"));
    }
    send(&b, &a);
    send(&a, &b); // b hears that a has its ops: b's are stable there too
    let (before_a, before_b) = (ops_held(&a), ops_held(&b));
    let (removed_a, removed_b) = (compact_removed(&a), compact_removed(&b));
    // of a's 302 ops and b's 400: each row keeps its insert and the last writes of its columns
    assert!(removed_a >= 690, "a removed {removed_a} of {before_a}");
    assert!(removed_b >= 690, "b removed {removed_b} of {before_b}");
    assert_eq!(
        ops_held(&a),
        before_a + 1 - removed_a,
        "(and the floor op came)"
    );
    assert_eq!(a.dump("t"), b.dump("t"));
    assert_eq!(
        row(&a, 1),
        Some(vec![Value::Integer(1), text("a299"), text("b199")])
    );
    assert_eq!(compact_removed(&a), 0, "nothing more to remove");
    // sync goes on: new writes both ways, then the old full bundle again (every op it holds
    // below the floor is taken to be the one removed)
    exec(a.conn(), "UPDATE t SET y = 'a-last' WHERE id = 2");
    exec(b.conn(), "UPDATE t SET x = 'b-last' WHERE id = 1");
    send(&a, &b);
    send(&b, &a);
    let r = b.import(&old);
    assert_eq!(r.applied, 0, "{r:?}");
    let r = a.import(&old);
    assert_eq!(r.applied, 0, "{r:?}");
    assert_eq!(a.dump("t"), b.dump("t"));
    assert_eq!(a.clock(), b.clock());
    assert_eq!(
        row(&b, 1),
        Some(vec![Value::Integer(1), text("b-last"), text("b199")])
    );
    assert_eq!(
        row(&b, 2),
        Some(vec![Value::Integer(2), text("b199"), text("a-last")])
    );
    // and the log still refuses DELETE
    let refused = a.conn().execute("DELETE FROM _sync_ops", []);
    assert!(refused.is_err());
}

/// A device that joins after compaction removed ops gets what they summarize: the ops kept,
/// and, in the bundle's manifest, up to where the ones it does not carry were removed (it
/// takes them as applied). It converges, relays to a later joiner, and syncs on both ways.
#[test]
fn a_device_that_joins_after_removal_converges_and_relays() {
    let (a, b) = two_removing();
    for i in 0..100 {
        exec(a.conn(), &format!("UPDATE t SET x = 'a{i}' WHERE id = 1"));
        exec(a.conn(), &format!("UPDATE t SET y = 'a{i}' WHERE id = 2"));
    }
    send(&a, &b);
    for i in 0..100 {
        exec(b.conn(), &format!("UPDATE t SET y = 'b{i}' WHERE id = 1"));
    }
    exec(b.conn(), "DELETE FROM t WHERE id = 2");
    send(&b, &a);
    send(&a, &b);
    assert!(compact_removed(&a) > 250);
    assert!(compact_removed(&b) > 250);
    // c joins from a full bundle of a; d from a bundle of c for it (c knows nothing of d)
    let c = Device::new("c", T);
    let r = c.import(&a.bundle_for(None));
    assert_eq!(r.pending, 0, "{r:?}");
    assert_eq!(c.dump("t"), a.dump("t"));
    assert!(
        ops_held(&c) < 20,
        "c holds only the ops kept: {}",
        ops_held(&c)
    );
    let d = Device::new("d", T);
    let r = d.import(&c.bundle_for(Some(&d)));
    assert_eq!(r.pending, 0, "{r:?}");
    assert_eq!(d.dump("t"), a.dump("t"));
    // b's bundle for c and d, which it never heard from, is taken too
    send(&b, &c);
    send(&b, &d);
    // and everyone writes on, and hears from everyone
    exec(c.conn(), "UPDATE t SET x = 'c' WHERE id = 1");
    exec(d.conn(), "INSERT INTO t VALUES (3, 'd', 'd')");
    exec(b.conn(), "UPDATE t SET y = 'b-last' WHERE id = 1");
    for _ in 0..2 {
        for (from, to) in [
            (&c, &a),
            (&d, &b),
            (&a, &b),
            (&b, &c),
            (&b, &d),
            (&c, &d),
            (&d, &a),
        ] {
            send(from, to);
        }
    }
    for x in [&b, &c, &d] {
        assert_eq!(x.dump("t"), a.dump("t"), "{}", x.name);
        assert_eq!(x.clock(), a.clock(), "{}", x.name);
    }
    assert_eq!(
        row(&a, 1),
        Some(vec![Value::Integer(1), text("c"), text("b-last")])
    );
    assert_eq!(row(&a, 2), None);
}

/// A device set up from a full bundle before it created the table (the import keeps the ops
/// aside; `sync_enable` releases them) compacts as its peers do: it indexes each row's ops in
/// the order they were written, so the op the row index names first (which compaction keeps)
/// is the row's insert, not an update that came first by device (a new user's trial: such a
/// device kept 7-16 overwritten updates for good).
#[test]
fn a_device_that_created_its_table_after_its_first_import_compacts_as_its_peers() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x', 'y')");
    exec(b.conn(), "INSERT INTO t VALUES (2, 'x', 'y')");
    send(&a, &b);
    send(&b, &a);
    // each row's updates are the other device's: whichever device comes first here, one
    // row's first op by device is an update
    for i in 0..3 {
        exec(a.conn(), &format!("UPDATE t SET x = 'a{i}' WHERE id = 2"));
        exec(b.conn(), &format!("UPDATE t SET x = 'b{i}' WHERE id = 1"));
    }
    send(&a, &b);
    send(&b, &a);
    let c = Device::new("c", "");
    let r = c.import(&a.bundle_for(None));
    assert_eq!((r.applied, r.pending), (8, 0), "{r:?}");
    exec(c.conn(), T);
    assert_eq!(c.dump("t"), a.dump("t"));
    let all = [&a, &b, &c];
    for _ in 0..3 {
        for from in all {
            for to in all.iter().filter(|to| to.name != from.name) {
                send(from, to);
            }
        }
        for d in all {
            compact(d);
        }
    }
    for d in [&b, &c] {
        assert_eq!(d.dump("t"), a.dump("t"), "{}", d.name);
        assert_eq!(d.clock(), a.clock(), "{}", d.name);
    }
    let held: Vec<i64> = all.iter().map(|d| ops_held(d)).collect();
    assert_eq!(held[2], held[0], "ops held by a, b, c: {held:?}");
}

/// Two devices that edit one row in turn, syncing and compacting every round: each one's
/// floor op follows the other's edit, which the other's compaction later removes. A device
/// that joins from one full bundle holds those floor ops waiting for removed ops until its
/// delivery passes over them: it takes them in the same import, and ends with the table.
#[test]
fn a_late_joiner_takes_ops_that_followed_ones_their_writer_removed_from_one_bundle() {
    let (a, b) = two_removing();
    send(&a, &b);
    for round in 0..6 {
        let writer = if round % 2 == 1 { &a } else { &b };
        exec(
            writer.conn(),
            &format!("UPDATE t SET x = 'r{round}' WHERE id = 1"),
        );
        send(&a, &b);
        send(&b, &a);
        compact(&a);
        compact(&b);
    }
    for _ in 0..2 {
        send(&a, &b);
        send(&b, &a);
        compact(&a);
        compact(&b);
    }
    let c = Device::new("c", T);
    let r = c.import(&a.bundle_for(None));
    assert_eq!(r.pending, 0, "{r:?}");
    assert_eq!(c.dump("t"), a.dump("t"));
    assert_eq!(
        row(&c, 1),
        Some(vec![Value::Integer(1), text("r5"), text("y")])
    );
    assert_eq!(c.clock(), a.clock());
}

/// A bundle for a shared folder starts where the least informed of the peers its writer knows
/// is; one of them may be behind where compaction removed ops (it was not known then). A
/// device that lacks ops below where the bundle starts does not take the removed ones as
/// applied (it would pass over ops never sent): they wait, and the next bundle, from where it
/// is, brings the rest.
#[test]
fn a_bundle_that_starts_above_a_late_joiner_does_not_pass_it_over_ops_never_sent() {
    let (a, b) = two_removing();
    let c = Device::new("c", T);
    c.import(&a.bundle_for(None)); // c holds a's first two ops, and is not known to a
    for i in 0..100 {
        exec(a.conn(), &format!("UPDATE t SET x = 'a{i}' WHERE id = 2"));
    }
    send(&a, &b);
    send(&b, &a);
    assert!(compact_removed(&a) > 90);
    send(&c, &a); // a knows c now, which lacks ops compaction removed
    let folder = tempdir::Dir::new();
    let out: String = (a.conn())
        .query_row(
            "SELECT sync_folder_out(?1) ->> '$.path'",
            [folder.path().to_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    let d = Device::new("d", T);
    let r = d.import(std::path::Path::new(&out)); // from c's clock: a's first ops not in it
    assert!(r.pending > 0, "{r:?}");
    assert!(d.dump("t").is_empty());
    send(&d, &a);
    let r = send(&a, &d);
    assert_eq!(r.pending, 0, "{r:?}");
    assert_eq!(d.dump("t"), a.dump("t"));
    assert_eq!(d.clock(), a.clock());
}

/// Ops a device holds pending after removed ones it could not take as applied (removal was
/// off there), then a base for them: the op before the first of them keeps its hash, so the
/// device relays them.
#[test]
fn ops_held_pending_after_removed_ones_are_relayed_once_the_base_comes() {
    let (a, b) = two_removing();
    for i in 0..50 {
        exec(a.conn(), &format!("UPDATE t SET x = 'a{i}' WHERE id = 1"));
    }
    exec(a.conn(), "UPDATE t SET y = 'last' WHERE id = 2");
    send(&a, &b);
    send(&b, &a);
    assert!(compact_removed(&a) > 40);
    let c = Device::new("c", T);
    keeping(c.conn());
    let r = c.import(&a.bundle_for(None));
    assert!(r.pending > 0, "removal off at c: {r:?}");
    removing(c.conn());
    let r = c.import(&a.bundle_for(None));
    assert_eq!(r.pending, 0, "{r:?}");
    assert_eq!(c.dump("t"), a.dump("t"));
    let d = Device::new("d", T);
    let r = d.import(&c.bundle_for(Some(&d)));
    assert_eq!(r.pending, 0, "{r:?}");
    assert_eq!(d.dump("t"), a.dump("t"));
    assert_eq!(d.clock(), a.clock());
}

/// What every device has of `of`'s ops, as `d` knows it (`sync_status() -> '$.stable'`).
fn stable_of(d: &Device, of: &Device) -> i64 {
    d.conn()
        .query_row(
            "SELECT coalesce((sync_status() -> '$.stable') ->> ?1, 0)",
            [of.id()],
            |r| r.get(0),
        )
        .unwrap()
}

/// What a bundle taught of the stable clock speaks for the devices known when it came: b learns
/// from a's bundle that a's ops are stable (a knew only a and b), then hears of c, which has
/// none of them, then forgets a. Before, b counted the devices known (two again) and took the
/// old clock for one that spoke for c too (a random schedule, seed 9360151933899845927).
#[test]
fn a_stable_clock_taught_before_a_device_was_forgotten_does_not_speak_for_a_later_one() {
    let (a, b, c) = (
        Device::new("a", T),
        Device::new("b", T),
        Device::new("c", T),
    );
    exec(
        a.conn(),
        "INSERT INTO t VALUES (1, 'a', 'a'), (2, 'a', 'a')",
    );
    for (from, to) in [(&a, &b), (&b, &a), (&a, &b)] {
        send(from, to);
    }
    assert_eq!(
        stable_of(&b, &a),
        2,
        "a's bundle taught b that both have a's ops"
    );
    send(&c, &b);
    assert_eq!(stable_of(&b, &a), 0, "c has none of them");
    (b.conn())
        .query_row("SELECT sync_forget(?1)", [a.id()], |r| {
            r.get::<_, String>(0)
        })
        .unwrap();
    assert_eq!(stable_of(&b, &a), 0, "c still has none of them");
}

/// A device that never syncs again holds back what every device has, until `sync_forget` says
/// so; the word travels in bundles. What it wrote still reaches everyone, from a bundle it wrote
/// before or after it was forgotten; it is told, when it hears of it, to become a new device,
/// and syncs on as one.
#[test]
fn a_peer_that_never_comes_back_is_forgotten_and_a_return_loses_nothing() {
    let (a, b, c) = (
        Device::new("a", T),
        Device::new("b", T),
        Device::new("c", T),
    );
    exec(a.conn(), "INSERT INTO t VALUES (1, 'a', 'a')");
    for (from, to) in [(&a, &b), (&a, &c), (&b, &a), (&c, &a), (&a, &b)] {
        send(from, to);
    }
    assert_eq!(stable_of(&a, &a), 1);
    // c goes away (it writes, but never syncs; a bundle it wrote is left behind); a and b go on
    exec(c.conn(), "INSERT INTO t VALUES (3, 'c, while away', '')");
    let left_behind = c.bundle_for(Some(&a));
    exec(a.conn(), "UPDATE t SET x = 'a again' WHERE id = 1");
    send(&a, &b);
    send(&b, &a);
    assert_eq!(stable_of(&a, &a), 1, "c has not said it has a's second op");
    let forgot: String = (a.conn())
        .query_row("SELECT sync_forget(?1)", [c.id()], |r| r.get(0))
        .unwrap();
    assert!(forgot.contains(&c.id()), "{forgot}");
    assert_eq!(stable_of(&a, &a), 2);
    assert_eq!(compact(&a), Some(3));
    // b learns it from a's next bundle
    assert_eq!(stable_of(&b, &a), 1);
    send(&a, &b);
    let status: String = (b.conn())
        .query_row("SELECT sync_status()", [], |r| r.get(0))
        .unwrap();
    assert!(status.contains("\"forgotten\":true"), "{status}");
    assert_eq!(stable_of(&b, &a), 3, "(the floor op too: b and a have it)");
    // what c wrote reaches a from the bundle it left, and c's word still does not count
    a.import(&left_behind);
    assert_eq!(
        row(&a, 3),
        Some(vec![Value::Integer(3), text("c, while away"), text("")])
    );
    assert_eq!(stable_of(&a, &a), 2, "c says it has 1: a and b have 2");
    // c comes back and hears it was forgotten: told what to do, and nothing changes
    exec(c.conn(), "INSERT INTO t VALUES (4, 'c, back', '')");
    let before = whole_state(c.conn());
    let refused = c.try_import(&b.bundle_for(Some(&c))).unwrap_err();
    assert!(
        refused.contains("holds this device as forgotten")
            && refused.contains("SELECT sync_fork()"),
        "{refused}"
    );
    assert_eq!(whole_state(c.conn()), before);
    // as told: a new device, whose bundles carry what it wrote as the old one
    let _: String = (c.conn())
        .query_row("SELECT sync_fork()", [], |r| r.get(0))
        .unwrap();
    for (from, to) in [(&b, &c), (&c, &a), (&a, &c), (&a, &b), (&b, &c)] {
        send(from, to);
    }
    for d in [&b, &c] {
        assert_eq!(d.dump("t"), a.dump("t"), "{}", d.name);
        assert_eq!(d.clock(), a.clock(), "{}", d.name);
    }
    assert_eq!(
        row(&b, 4),
        Some(vec![Value::Integer(4), text("c, back"), text("")])
    );
}

#[test]
fn forgetting_says_what_it_cannot_forget() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    send(&b, &a);
    for (arg, says) in [
        (a.id(), "this device's own id"),
        ("00112233445566778899aabbccddeeff".to_string(), "no device"),
        ("nonsense".to_string(), "expects a device id"),
    ] {
        let e = refusal(a.conn(), "SELECT sync_forget(?1)", [arg]);
        assert!(e.contains("sync_forget") && e.contains(says), "{e}");
    }
    let again = || -> i64 {
        (a.conn())
            .query_row("SELECT sync_forget(?1) ->> '$.new'", [b.id()], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(again(), 1);
    assert_eq!(again(), 0);
}

/// A copy of a device's file whose first writing call is `sync_forget` becomes a device of its
/// own first (as before any write): the forgetting is the copy's, not the original's.
#[test]
fn a_copy_that_forgets_a_device_first_becomes_a_device_of_its_own() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    send(&b, &a);
    let copy_path = a.db.dir.path().join("copy.db");
    std::fs::copy(a.db.path(), &copy_path).unwrap();
    let copy = rusqlite::Connection::open(&copy_path).unwrap();
    // (loaded inside a transaction: the check that runs when the extension loads waits)
    exec(&copy, "BEGIN");
    load(&copy);
    exec(&copy, "COMMIT");
    let id = |c: &rusqlite::Connection| -> String {
        c.query_row("SELECT sync_device_id()", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(id(&copy), a.id(), "not yet told it is a copy");
    let _: String = copy
        .query_row("SELECT sync_forget(?1)", [b.id()], |r| r.get(0))
        .unwrap();
    assert_ne!(id(&copy), a.id(), "it forked before it forgot");
    let forgotten = |c: &rusqlite::Connection| -> i64 {
        c.query_row(
            "SELECT count(*) FROM json_each(sync_status() -> '$.peers')
             WHERE value ->> 'forgotten'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(forgotten(&copy), 1);
    assert_eq!(forgotten(a.conn()), 0);
}

/// Two compaction points: c's update, written knowing only the row's insert, is behind the
/// older one (a's, which a wrote before it knew c) but in the newer one's past (b's, written
/// after b had it). Where it brings the deleted row back, its column x shows the newest value
/// below either point: the newer point's, on every device, whether it settled the row before
/// the newer point came (a) or wrote that point itself (b).
#[test]
fn an_op_behind_an_older_compaction_point_shows_the_newer_ones_values_too() {
    let (a, b, c) = (
        Device::new("a", T),
        Device::new("b", T),
        Device::new("c", T),
    );
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x1', 'y1')");
    send(&a, &c);
    exec(a.conn(), "UPDATE t SET x = 'x2'");
    send(&a, &b);
    send(&b, &a);
    assert!(compact(&a).is_some(), "the older point: a and b have x2");
    for n in 2..10 {
        exec(c.conn(), &format!("INSERT INTO t VALUES ({n}, 'c', 'c')"));
    }
    exec(c.conn(), "UPDATE t SET y = 'y late' WHERE id = 1"); // knowing only x1
    exec(a.conn(), "UPDATE t SET x = 'x3'");
    send(&a, &b);
    exec(b.conn(), "DELETE FROM t WHERE id = 1");
    send(&b, &a);
    send(&a, &c); // c has everything now, and says so to b
    send(&c, &b);
    send(&c, &a); // a settles c's update with the older point only
    assert_eq!(
        row(&a, 1),
        Some(vec![Value::Integer(1), text("x2"), text("y late")])
    );
    assert!(
        compact(&b).is_some(),
        "the newer point: every device has x3"
    );
    let revived = Some(vec![Value::Integer(1), text("x3"), text("y late")]);
    assert_eq!(
        row(&b, 1),
        revived,
        "b settles the row again as it writes its point"
    );
    send(&b, &a);
    assert_eq!(row(&a, 1), revived, "a settles it again as the point comes");
    send(&b, &c);
    assert_eq!(row(&c, 1), revived);
    for d in [&b, &c] {
        assert_eq!(d.dump("t"), a.dump("t"), "{}", d.name);
        assert_eq!(d.conflicts(), a.conflicts(), "{}", d.name);
    }
}

/// Through a shared folder: forgetting is news enough for a file, and a forgotten device's
/// visit is refused as a whole, saying what to do.
#[test]
fn forgetting_travels_through_a_shared_folder() {
    let (a, b, c) = (
        Device::new("a", T),
        Device::new("b", T),
        Device::new("c", T),
    );
    let folder = tempdir::Dir::new();
    let visit = |d: &Device, f: &str| -> Result<String, rusqlite::Error> {
        d.conn().query_row(
            &format!("SELECT {f}(?1)"),
            [folder.path().to_str().unwrap()],
            |r| r.get(0),
        )
    };
    exec(a.conn(), "INSERT INTO t VALUES (1, 'a', 'a')");
    for _ in 0..2 {
        for d in [&a, &b, &c] {
            visit(d, "sync_folder_in").unwrap();
            visit(d, "sync_folder_out").unwrap();
        }
    }
    assert!(visit(&a, "sync_folder_out")
        .unwrap()
        .contains("\"path\":null"));
    // b writes once more before a forgets c: a bundle c has not imported yet, before the one
    // that tells it was forgotten
    exec(b.conn(), "INSERT INTO t VALUES (2, 'b', 'b')");
    visit(&b, "sync_folder_out").unwrap();
    let _: String = (a.conn())
        .query_row("SELECT sync_forget(?1)", [c.id()], |r| r.get(0))
        .unwrap();
    assert!(!visit(&a, "sync_folder_out")
        .unwrap()
        .contains("\"path\":null"));
    visit(&b, "sync_folder_in").unwrap();
    let forgotten: i64 = (b.conn())
        .query_row(
            "SELECT value ->> '$.forgotten' FROM json_each(sync_status() -> '$.peers')
             WHERE value ->> '$.device_id' = ?1",
            [c.id()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(forgotten, 1);
    let before = whole_state(c.conn());
    let refused = visit(&c, "sync_folder_in").unwrap_err().to_string();
    assert!(
        refused.contains("as forgotten") && refused.contains("SELECT sync_fork()"),
        "{refused}"
    );
    assert_eq!(
        whole_state(c.conn()),
        before,
        "b's bundle is not kept either"
    );
}

/// A device gone for good no longer keeps bundles in a shared folder: pruning waits for what
/// every device heard from has, but a forgotten one's word no longer counts there either.
#[test]
fn pruning_a_shared_folder_does_not_wait_for_a_forgotten_device() {
    let (a, b, c) = (
        Device::new("a", T),
        Device::new("b", T),
        Device::new("c", T),
    );
    let folder = tempdir::Dir::new();
    let visit = |d: &Device, f: &str| -> String {
        (d.conn())
            .query_row(
                &format!("SELECT {f}(?1)"),
                [folder.path().to_str().unwrap()],
                |r| r.get(0),
            )
            .unwrap()
    };
    let files = || std::fs::read_dir(folder.path()).unwrap().count();
    for d in [&a, &b, &c, &a, &b, &c] {
        visit(d, "sync_folder_in");
        visit(d, "sync_folder_out");
    }
    // c goes away; a and b write and sync on
    for i in 1..=3 {
        exec(a.conn(), &format!("INSERT INTO t VALUES ({i}, 'a', '')"));
        for d in [&a, &b] {
            visit(d, "sync_folder_in");
            visit(d, "sync_folder_out");
        }
    }
    for d in [&a, &b] {
        visit(d, "sync_folder_prune");
    }
    let held_back = files();
    let _: String = (a.conn())
        .query_row("SELECT sync_forget(?1)", [c.id()], |r| r.get(0))
        .unwrap();
    for d in [&a, &b, &a] {
        visit(d, "sync_folder_in");
        visit(d, "sync_folder_out");
    }
    for d in [&a, &b] {
        visit(d, "sync_folder_prune");
    }
    assert_eq!(
        files(),
        3,
        "the newest of each device (before: {held_back})"
    );
}

/// A row one device inserted and another updated five times, compacted on both: a device that
/// joins from a bundle of the first sees the update follow the insert (the update's context
/// was stated by ops compaction removed), and shows no conflict the others do not.
#[test]
fn a_late_joiner_sees_what_a_kept_op_followed_across_removed_ones() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(a.conn(), "INSERT INTO t VALUES (1, 'v0', 'y')");
    send(&a, &b);
    for i in 1..=5 {
        exec(b.conn(), &format!("UPDATE t SET x = 'v{i}' WHERE id = 1"));
    }
    for _ in 0..3 {
        send(&a, &b);
        send(&b, &a);
        compact_removed(&a);
        compact_removed(&b);
    }
    assert_eq!(a.conflicts().len(), 0);
    let in_status: i64 = (a.conn())
        .query_row("SELECT sync_status() -> '$.log' ->> '$.ops'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(in_status, ops_held(&a), "sync_status counts the ops held");
    let e = Device::new("e", T);
    let r = e.import(&a.bundle_for(None));
    assert_eq!((r.pending, r.conflicts), (0, 0), "{r:?}");
    assert_eq!(e.dump("t"), a.dump("t"));
    assert_eq!(e.conflicts(), a.conflicts());
}

/// Imports compact by themselves once `compact_every` ops (10,000 unless set) were applied
/// since the last compaction, outside a transaction the caller opened; 0 turns it off.
#[test]
fn imports_compact_by_themselves_every_so_many_ops_applied() {
    let (a, b) = two_removing();
    compacting_every(b.conn(), Some(50));
    for i in 0..100 {
        exec(a.conn(), &format!("UPDATE t SET x = 'a{i}' WHERE id = 1"));
    }
    send(&a, &b);
    let held = ops_held(&b);
    assert!(
        held < 10,
        "b compacted by itself: it holds {held} of 102 ops"
    );
    for i in 0..30 {
        exec(a.conn(), &format!("UPDATE t SET y = 'a{i}' WHERE id = 2"));
    }
    send(&a, &b);
    assert_eq!(ops_held(&b), held + 30, "30 ops applied since: not yet");
    for i in 30..60 {
        exec(a.conn(), &format!("UPDATE t SET y = 'a{i}' WHERE id = 2"));
    }
    send(&a, &b);
    let now = ops_held(&b);
    assert!(now < held + 10, "60 since: compacted, {now} held");
    assert_eq!(compact(&b), None, "nothing new is stable since");
    assert_eq!(a.dump("t"), b.dump("t"));
    // not inside a transaction the caller opened, and never where set to 0
    let c = Device::new("c", T);
    compacting_every(c.conn(), Some(1));
    send(&b, &c);
    send(&c, &b);
    exec(c.conn(), "BEGIN");
    let before = ops_held(&c);
    for i in 0..5 {
        exec(b.conn(), &format!("UPDATE t SET x = 'b{i}' WHERE id = 2"));
    }
    send(&b, &c);
    assert_eq!(ops_held(&c), before + 5, "no compaction inside BEGIN");
    exec(c.conn(), "COMMIT");
    compacting_every(c.conn(), Some(0));
    for i in 5..10 {
        exec(b.conn(), &format!("UPDATE t SET x = 'b{i}' WHERE id = 2"));
    }
    send(&b, &c);
    assert_eq!(ops_held(&c), before + 10, "compact_every 0: never");
    assert_eq!(c.dump("t"), b.dump("t"));
    // a whole number written as text counts; anything else is the default (10,000), not 0
    let every = |value: &str| {
        exec(
            c.conn(),
            &format!(
                "INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_every', {value})"
            ),
        )
    };
    // (`compacted_at`: the ops applied here when an import last compacted)
    let compacted_at = || -> Option<i64> {
        (c.conn())
            .query_row(
                "SELECT value FROM _sync_state WHERE name = 'compacted_at'",
                [],
                |r| r.get(0),
            )
            .ok()
    };
    every("' 1 '");
    let was = compacted_at();
    exec(b.conn(), "UPDATE t SET x = 'b10' WHERE id = 2");
    let import = |c: &Device| -> Option<String> {
        (c.conn())
            .query_row(
                "SELECT sync_bundle_in(?1) -> '$.compacted'",
                [b.bundle_for(Some(c)).to_str().unwrap()],
                |r| r.get(0),
            )
            .unwrap()
    };
    let said = import(&c).unwrap();
    assert!(
        said.starts_with(r#"{"floor":"#),
        "the import says it compacted: {said}"
    );
    let now = compacted_at();
    assert!(
        now > was,
        "compact_every ' 1 ': compacted ({was:?}, {now:?})"
    );
    for value in ["'often'", "-1", "2.5"] {
        every(value);
        exec(b.conn(), &format!("UPDATE t SET x = {value} WHERE id = 2"));
        assert_eq!(import(&c).as_deref(), Some("null"), "it did not run");
        assert_eq!(
            compacted_at(),
            now,
            "compact_every {value}: the default, not yet"
        );
    }
}

/// A device removed an op itself, then a peer's bundle drops more of that device's ops for the
/// peer's base: the hash it kept of the op it removed first stays, because an op it still holds
/// follows it, and it goes on exporting (before, every export failed: "op 3 of device … is
/// missing (hashing it)"). Found by a new user's trial: three devices, no copy, no restore.
#[test]
fn ops_removed_here_and_then_by_a_peer_s_base_leave_every_export_working() {
    let (tablet, phone, laptop) = (
        Device::new("tablet", T),
        Device::new("phone", T),
        Device::new("laptop", T),
    );
    exec(
        tablet.conn(),
        "INSERT INTO t VALUES (1, 'x0', NULL); INSERT INTO t VALUES (2, 'v0', NULL);
         UPDATE t SET x = 'v1' WHERE id = 2; DELETE FROM t WHERE id = 1;
         UPDATE t SET x = 'v2' WHERE id = 2",
    );
    send(&tablet, &phone);
    assert!(compact(&phone).is_some());
    exec(
        tablet.conn(),
        "UPDATE t SET x = 'v3' WHERE id = 2; UPDATE t SET x = 'v4' WHERE id = 2",
    );
    send(&tablet, &laptop);
    assert!(compact(&laptop).is_some());
    send(&laptop, &phone);
    let _ = phone.bundle_for(Some(&tablet));
    let _ = phone.bundle_for(None);
    for (from, to) in [
        (&laptop, &phone),
        (&phone, &laptop),
        (&laptop, &tablet),
        (&tablet, &laptop),
    ] {
        send(from, to);
    }
    send(&phone, &tablet);
    for d in [&phone, &laptop] {
        assert_eq!(d.dump("t"), tablet.dump("t"), "{}", d.name);
        assert_eq!(d.clock(), tablet.clock(), "{}", d.name);
    }
}

/// A device forgotten while it wrote twice over one cell becomes a new device as it is told,
/// compacts (its first write goes, overwritten by its second), and hears from the peer that
/// forgot it: that peer's bundle carries the first write again, which the device takes for
/// the op it removed. A peer had confirmed both writes (the clock of its bundle named the
/// second with the hash held here), so no write of the old id is listed in `sync_lost` (it
/// listed the first as possibly lost: confirmations of an id counted only while it was the
/// device's own).
#[test]
fn a_forgotten_device_that_forks_as_told_lists_no_write_its_peers_confirmed_as_lost() {
    let (a, b, x) = (
        Device::new("a", T),
        Device::new("b", T),
        Device::new("x", T),
    );
    exec(a.conn(), "INSERT INTO t VALUES (1, 'o', '')");
    for (from, to) in [(&a, &b), (&a, &x), (&b, &x), (&b, &a), (&x, &a), (&x, &b)] {
        send(from, to);
    }
    exec(x.conn(), "UPDATE t SET x = 'w1' WHERE id = 1");
    exec(x.conn(), "UPDATE t SET x = 'w2' WHERE id = 1");
    call(b.conn(), &format!("SELECT sync_forget('{}')", x.id())).unwrap();
    let from_b = b.bundle_for(Some(&x));
    let refused = x.try_import(&from_b).unwrap_err();
    assert!(refused.contains("SELECT sync_fork()"), "{refused}");
    call(x.conn(), "SELECT sync_fork()").unwrap();
    x.import(&from_b);
    for (from, to) in [(&x, &a), (&a, &b), (&b, &a), (&a, &x)] {
        send(from, to);
    }
    let removed: i64 = (x.conn())
        .query_row("SELECT sync_compact() ->> '$.removed'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(removed, 1, "the first write, overwritten");
    send(&b, &x);
    let lost: i64 = (x.conn())
        .query_row("SELECT count(*) FROM sync_lost", [], |r| r.get(0))
        .unwrap();
    assert_eq!(lost, 0);
    for (from, to) in [(&a, &x), (&x, &a), (&b, &x), (&x, &b), (&a, &b), (&b, &a)] {
        send(from, to);
    }
    assert_eq!(
        row(&x, 1),
        Some(vec![Value::Integer(1), text("w2"), text("")])
    );
    assert_eq!(a.dump("t"), x.dump("t"));
    assert_eq!(b.dump("t"), x.dump("t"));
}

/// Two devices that edit, sync and both compact after every edit: each compaction point
/// retires its writer's earlier ones (every op either device applied follows them), which go
/// from the log once every device has them, so the log holds a point or two per device, not
/// one per compaction (before: 80 rounds left 159 points beside 2 row ops). The rows are the
/// same on both, and a device that joins at the end gets them from one bundle.
#[test]
fn compacting_after_every_sync_keeps_a_point_or_two_per_device() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x', '')");
    send(&a, &b);
    for round in 0..40 {
        exec(
            a.conn(),
            &format!("UPDATE t SET x = 'a{round}' WHERE id = 1"),
        );
        exec(
            b.conn(),
            &format!("UPDATE t SET y = 'b{round}' WHERE id = 1"),
        );
        send(&a, &b);
        send(&b, &a);
        compact(&a);
        compact(&b);
    }
    let points = |d: &Device| -> i64 {
        (d.conn())
            .query_row(
                "SELECT count(*) FROM sync_log WHERE \"table\" = '_sync_floor'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert!(points(&a) <= 4, "a holds {} points", points(&a));
    assert!(points(&b) <= 4, "b holds {} points", points(&b));
    assert_eq!(a.dump("t"), b.dump("t"));
    assert_eq!(
        row(&a, 1),
        Some(vec![Value::Integer(1), text("a39"), text("b39")])
    );
    let c = Device::new("c", T);
    c.import(&a.bundle_for(None));
    assert_eq!(c.dump("t"), a.dump("t"));
}

/// Ops a relay sends again, which this device held and compaction removed, keep nothing
/// behind (three devices taking turns, each writer's ops going to the two others directly and
/// through each other: every op arrives twice, often after it was removed). Before, each such
/// op kept its link for good (`_sync_strays`: 27,001 rows, 1.7 MB, on one of three devices
/// after 100,000 updates of a 1,000-row table, where the table takes 36 KB).
#[test]
fn ops_a_relay_sends_again_after_they_were_removed_leave_nothing_behind() {
    let devices = [
        Device::new("a", T),
        Device::new("b", T),
        Device::new("c", T),
    ];
    exec(
        devices[0].conn(),
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
         INSERT INTO t SELECT i, 'x', 'y' FROM n",
    );
    for turn in 0..9 {
        let w = turn % 3;
        for k in 0..30 {
            let sql = format!("UPDATE t SET x = 'w{turn}.{k}' WHERE id = {}", 1 + k % 20);
            exec(devices[w].conn(), &sql);
        }
        for o in (0..3).filter(|&o| o != w) {
            send(&devices[w], &devices[o]);
            send(&devices[o], &devices[w]);
        }
        for d in &devices {
            compact(d);
        }
    }
    for _ in 0..2 {
        for f in 0..3 {
            for t in (0..3).filter(|&t| t != f) {
                send(&devices[f], &devices[t]);
            }
        }
        for d in &devices {
            compact(d);
        }
    }
    for d in &devices {
        assert_eq!(d.dump("t"), devices[0].dump("t"));
        assert_eq!(strays_kept(d), 0, "{}", d.name);
        assert!(ops_held(d) < 100, "{} holds {} ops", d.name, ops_held(d));
    }
}

/// The links of other histories' ops `d` keeps (`_sync_strays`, made on first use).
fn strays_kept(d: &Device) -> i64 {
    let q = |sql: &str| -> i64 { d.conn().query_row(sql, [], |r| r.get(0)).unwrap() };
    match q("SELECT count(*) FROM sqlite_master WHERE name = '_sync_strays'") {
        0 => 0,
        _ => q("SELECT count(*) FROM _sync_strays"),
    }
}

/// A compaction point behind which an op arrived that was written before it stays in force
/// for good (in a ring of three, a sends only to b, b to c, c to a; c updates a row once while
/// b's first point is on its way round); b's later points, written after that op was applied,
/// still retire each other, each named, so the log holds that point and a last one or two,
/// not one per compaction (before: every point of b's stayed, on every device, as long as
/// nothing wrote that row again; a new user's trial). The tables and the points held are the
/// same on every device.
#[test]
fn a_point_an_op_is_behind_does_not_keep_its_writers_later_ones() {
    let ring = [
        Device::new("a", T),
        Device::new("b", T),
        Device::new("c", T),
    ];
    exec(
        ring[0].conn(),
        "INSERT INTO t VALUES (1, 'x', ''), (2, 'z', '')",
    );
    let setup = ring[0].bundle_for(None);
    ring[1].import(&setup);
    ring[2].import(&setup);
    let mut stick: Option<std::path::PathBuf> = None;
    for pass in 1..=22 {
        for (i, d) in ring.iter().enumerate() {
            if pass == 1 && i == 2 {
                exec(d.conn(), "UPDATE t SET y = 'c' WHERE id = 2");
            }
            if i == 0 && pass <= 18 {
                exec(
                    d.conn(),
                    &format!("UPDATE t SET x = 'a{pass}' WHERE id = 1"),
                );
            }
            if let Some(bundle) = &stick {
                d.import(bundle);
                compact(d);
            }
            stick = Some(d.bundle_for(Some(&ring[(i + 1) % 3])));
        }
    }
    let points = |d: &Device| -> Vec<(i64,)> {
        rows(
            d.conn(),
            &format!(
                "SELECT seq FROM sync_log WHERE \"table\" = '_sync_floor' AND device = '{}'
                 ORDER BY seq",
                ring[1].id()
            ),
        )
    };
    for d in &ring {
        assert!(
            points(d).len() <= 3,
            "{} holds b's points {:?}",
            d.name,
            points(d)
        );
        assert_eq!(d.dump("t"), ring[0].dump("t"), "{}", d.name);
    }
}

/// A row c inserted, d deleted while b (not having seen the delete) updated it twice; d then
/// wrote it again after seeing b's first update, not its second: d's write brings the row
/// back, with the value d saw in the column it did not write (the insert's). Compaction must
/// not remove b's first update while d's write may still read the row through it: every
/// device, and a device that joins from any of them, shows the insert's value there (a new
/// user's trial, 2026-12-05: a rule that let an op go where a follower wrote every column it
/// wrote showed NULL there on some devices, for good). Where d's id is below b's.
#[test]
fn compaction_keeps_what_a_write_that_brings_a_row_back_read_it_through() {
    let mut three = [
        Device::new("x", T),
        Device::new("y", T),
        Device::new("z", T),
    ];
    three.sort_by_key(|d| d.id());
    let (d, b, c) = (&three[0], &three[1], &three[2]);
    let compacting = |from: &Device, to: &Device| {
        send(from, to);
        compact(to);
    };
    exec(c.conn(), "INSERT INTO t VALUES (1, 'c0', 'keep me')");
    send(c, b);
    send(b, d);
    exec(d.conn(), "DELETE FROM t WHERE id = 1");
    send(d, c);
    exec(b.conn(), "UPDATE t SET x = 'b1' WHERE id = 1");
    send(b, c);
    compact(c);
    exec(b.conn(), "UPDATE t SET x = 'b2' WHERE id = 1");
    send(c, d);
    exec(d.conn(), "UPDATE t SET x = 'd1' WHERE id = 1");
    compacting(b, d);
    compacting(c, b);
    compacting(d, c);
    for _ in 0..3 {
        for from in [d, b, c] {
            for to in [d, b, c].into_iter().filter(|to| to.name != from.name) {
                compacting(from, to);
            }
        }
    }
    let shown = Some(vec![Value::Integer(1), text("d1"), text("keep me")]);
    for device in [d, b, c] {
        assert_eq!(row(device, 1), shown, "{}", device.name);
        let joined = Device::new(&format!("joined-{}", device.name), T);
        joined.import(&device.bundle_for(None));
        assert_eq!(row(&joined, 1), shown, "joined from {}", device.name);
    }
}

/// Rows edited field by field (each update sets one column) on two devices that sync and
/// compact every round: a write goes once each column it wrote is written again below the
/// floor and no write that may bring a row back reads through it, so the log holds about a
/// write per column and row and those of the last round or two, not yet stable (14 of the 93
/// writes after 30 rounds; 65 before this rule); every device, and one that joins from
/// either, shows the same rows.
#[test]
fn rows_edited_field_by_field_keep_about_a_write_per_column() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(
        a.conn(),
        "INSERT INTO t VALUES (1, 'x', 'y'), (2, 'x', 'y'), (3, 'x', 'y')",
    );
    send(&a, &b);
    for round in 0..30 {
        let id = 1 + round % 3;
        exec(
            a.conn(),
            &format!("UPDATE t SET x = 'a{round}' WHERE id = {id}"),
        );
        exec(
            b.conn(),
            &format!("UPDATE t SET y = 'b{round}' WHERE id = {id}"),
        );
        exec(
            a.conn(),
            &format!("UPDATE t SET y = 'a{round}' WHERE id = {}", 1 + id % 3),
        );
        send(&a, &b);
        send(&b, &a);
        compact(&a);
        compact(&b);
    }
    send(&a, &b);
    send(&b, &a);
    compact(&a);
    compact(&b);
    assert_eq!(a.dump("t"), b.dump("t"));
    assert_eq!(
        row(&a, 1),
        Some(vec![Value::Integer(1), text("a27"), text("a29")])
    );
    kept_at_most(&[&a, &b], "1", 3 * 6);
}

/// On each device, at most `most` ops of table t's rows that match `rows` (SQL over
/// `sync_log`) are kept, and a device joining from it shows the same table.
fn kept_at_most(devices: &[&Device], rows: &str, most: i64) {
    for d in devices {
        let sql = format!(r#"SELECT count(*) FROM sync_log WHERE "table" = 't' AND {rows}"#);
        let writes: i64 = d.conn().query_row(&sql, [], |r| r.get(0)).unwrap();
        assert!(writes <= most, "{}: {writes} writes kept", d.name);
        let joined = Device::new(&format!("joined-{}", d.name), T);
        joined.import(&d.bundle_for(None));
        assert_eq!(joined.dump("t"), d.dump("t"), "joined from {}", d.name);
    }
}

/// A row one device deleted while the other, not having seen it, edited it with the later
/// logical time: the edit brings the row back, and no write of its key ever follows the
/// delete. Edited field by field after that, it keeps about a write per column too (it kept
/// every edit while the key column counted as one only the delete wrote last).
#[test]
fn a_row_an_edit_brought_back_over_a_delete_keeps_about_a_write_per_column() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(
        a.conn(),
        "INSERT INTO t VALUES (1, 'x', 'y'), (2, 'x', 'y')",
    );
    send(&a, &b);
    exec(a.conn(), "DELETE FROM t WHERE id = 1");
    // (b wrote once more before its edit: the edit's logical time is the later one)
    exec(b.conn(), "UPDATE t SET x = 'b' WHERE id = 2");
    exec(b.conn(), "UPDATE t SET x = 'back' WHERE id = 1");
    send(&a, &b);
    send(&b, &a);
    assert_eq!(
        row(&a, 1),
        Some(vec![Value::Integer(1), text("back"), text("y")])
    );
    for round in 0..30 {
        let column = if round % 2 == 0 { "x" } else { "y" };
        let (from, to) = if round % 3 == 0 { (&a, &b) } else { (&b, &a) };
        exec(
            from.conn(),
            &format!("UPDATE t SET {column} = 'r{round}' WHERE id = 1"),
        );
        send(from, to);
        send(to, from);
        compact(&a);
        compact(&b);
    }
    assert_eq!(a.dump("t"), b.dump("t"));
    assert_eq!(
        row(&a, 1),
        Some(vec![Value::Integer(1), text("r28"), text("r29")])
    );
    kept_at_most(&[&a, &b], r#"pk = '{"id":1}'"#, 6);
}

/// A peer's last word of what it has names an op this device then removed (it learned
/// through a third device that the peer had more, and compacted before the peer spoke
/// again): the op's hash is kept, so the next bundle for the peer starts above that op, and
/// does not carry every op held here again with a base from the start (which the peer,
/// having removed some of them itself, could not all tell from another history's: each kept
/// a link for good, 4,782 of them, 464 KiB, on one of three devices after 100,000 updates of
/// a 20,000-row table).
#[test]
fn a_bundle_for_a_peer_whose_last_word_names_a_removed_op_starts_above_it() {
    let [a, b, c] = [
        Device::new("a", T),
        Device::new("b", T),
        Device::new("c", T),
    ];
    exec(
        a.conn(),
        "INSERT INTO t VALUES (1, 'x', 'y'), (2, 'x', 'y')",
    );
    for i in 0..20 {
        exec(a.conn(), &format!("UPDATE t SET x = 'a{i}' WHERE id = 1"));
    }
    send(&a, &b);
    send(&b, &a); // b's word: it has a's ops up to 22
    for i in 0..5 {
        exec(
            a.conn(),
            &format!("UPDATE t SET x = 'more{i}' WHERE id = 1"),
        );
    }
    send(&a, &b);
    send(&b, &c);
    send(&c, &a); // c's word: b has a's ops up to 27, so they are stable
    assert!(compact(&a).is_some());
    let q = |sql: &str| -> i64 { a.conn().query_row(sql, [], |r| r.get(0)).unwrap() };
    // (op 22 is removed here, and so is the op after it)
    let held = |seq: i64| q(&format!("SELECT count(*) FROM sync_log WHERE seq = {seq}"));
    assert_eq!((held(22), held(23)), (0, 0));
    exec(a.conn(), "UPDATE t SET y = 'last' WHERE id = 2");
    let above = q("SELECT count(*) FROM sync_log WHERE seq > 22");
    let bundle = a.bundle_for(Some(&b));
    let info = |key: &str| -> i64 {
        let sql = format!("SELECT sync_bundle_info(?1) ->> '{key}'");
        a.conn()
            .query_row(&sql, [bundle.to_str().unwrap()], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(info("$.ops"), above, "only the ops held above b's word");
    assert!(above < ops_held(&a));
    b.import(&bundle);
    assert_eq!(b.dump("t"), a.dump("t"));
    for d in [&a, &b] {
        assert_eq!(strays_kept(d), 0, "{}", d.name);
    }
}

/// Three devices that each edit a row every round, sync with each other, and compact every ten
/// rounds: the change points of the ops compaction removed go too, but those the contexts still
/// read need (compact/trim.rs), so a device holds a few points per op held and compaction point
/// (54 on a after 60 rounds), not about one per device per op ever applied (358 before).
#[test]
fn compaction_keeps_the_change_points_of_the_ops_held_not_of_every_op_applied() {
    let devices = [
        Device::new("a", T),
        Device::new("b", T),
        Device::new("c", T),
    ];
    exec(
        devices[0].conn(),
        "INSERT INTO t VALUES (1, '', ''), (2, '', '')",
    );
    let everyone = |devices: &[Device; 3]| {
        for from in devices {
            for to in devices {
                if from.name != to.name {
                    send(from, to);
                }
            }
        }
    };
    everyone(&devices);
    let points = |d: &Device| -> i64 {
        (d.conn())
            .query_row("SELECT count(*) FROM _sync_deps", [], |r| r.get(0))
            .unwrap()
    };
    for round in 0..60 {
        for (i, d) in devices.iter().enumerate() {
            let column = ["x", "y"][i % 2];
            let sql = format!(
                "UPDATE t SET {column} = '{}{round}' WHERE id = {}",
                d.name,
                i % 2 + 1
            );
            exec(d.conn(), &sql);
        }
        everyone(&devices);
        if round % 10 != 9 {
            continue;
        }
        for d in &devices {
            let kept = reference::compact_keeping_contexts(d.conn(), || Ok(compact(d)));
            if let Err(e) = kept {
                panic!("{}: sync_compact {e}", d.name);
            }
        }
    }
    for d in &devices {
        assert!(
            points(d) <= 80,
            "{} holds {} change points",
            d.name,
            points(d)
        );
        assert!(ops_held(d) <= 20, "{} holds {} ops", d.name, ops_held(d));
    }
    assert_eq!(devices[0].dump("t"), devices[2].dump("t"));
    let late = Device::new("late", T);
    late.import(&devices[1].bundle_for(None));
    assert_eq!(late.dump("t"), devices[0].dump("t"));
}
