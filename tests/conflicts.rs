//! Conflicts stay few and meaningful (DESIGN.md 3.6): only live writes are sides, a row has at
//! most one open record per losing live op, a record follows a side written again, and a
//! resolution closes only the sides it saw.

mod common;

use common::*;
use rusqlite::types::Value;

const T: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, x, y);
                 SELECT sync_enable('t');";

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// Every device sends to every other.
fn mesh(devices: &[&Device]) {
    for from in devices {
        for to in devices {
            if from.name != to.name {
                send(from, to);
            }
        }
    }
}

/// Three devices that all hold row 1 of `t`.
fn three() -> (Device, Device, Device) {
    let (a, b, c) = (
        Device::new("a", T),
        Device::new("b", T),
        Device::new("c", T),
    );
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x0', 'y0')");
    send(&a, &b);
    send(&a, &c);
    (a, b, c)
}

/// The open records as `_sync_conflicts` stores them: (id, loser op, winner op, columns, loser
/// values, winner values), by id.
fn sides(d: &Device) -> Vec<(String, String, String, String, String, String)> {
    rows(
        d.conn(),
        "SELECT lower(hex(id)), loser_op, winner_op, columns, loser_values, winner_values
         FROM _sync_conflicts WHERE state = 0 ORDER BY id",
    )
}

/// The op id of `d`'s last op.
fn last_op(d: &Device) -> String {
    d.conn()
        .query_row(
            "SELECT op_id FROM sync_log WHERE device = sync_device_id() ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

fn file_size(d: &Device) -> u64 {
    std::fs::metadata(d.db.path()).unwrap().len()
}

/// Two devices, 100 rows, five rounds of 2,000 updates on each (both columns, random rows)
/// between peer-aware exchanges: at most one open record per row, and each file within 4x of
/// a device's after the same 20,000 updates made on one device alone.
#[test]
fn many_edits_of_the_same_rows_on_two_devices_make_one_record_per_row() {
    let schema = "CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, s TEXT);
                  SELECT sync_enable('t');";
    let seed_rows = "WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < 100)
                     INSERT INTO t SELECT n, 0, 'row ' || n FROM i";
    let edit = |d: &Device, rng: &mut Rng, count: usize| {
        let tx = d.conn().unchecked_transaction().unwrap();
        let mut stmt = tx
            .prepare("UPDATE t SET n = ?2, s = ?3 WHERE id = ?1")
            .unwrap();
        for _ in 0..count {
            let (id, n) = (1 + rng.below(100) as i64, rng.below(1_000_000) as i64);
            stmt.execute(rusqlite::params![id, n, format!("{} {n}", d.name)])
                .unwrap();
        }
        drop(stmt);
        tx.commit().unwrap();
    };
    let mut rng = Rng(11);
    let (a, b) = (Device::new("a", schema), Device::new("b", schema));
    exec(a.conn(), seed_rows);
    send(&a, &b);
    for _ in 0..5 {
        edit(&a, &mut rng, 2000);
        edit(&b, &mut rng, 2000);
        send(&a, &b);
        send(&b, &a);
    }
    assert_eq!(a.dump("t"), b.dump("t"));
    let open = a.conflicts();
    assert!(!open.is_empty() && open.len() <= 100, "{} open", open.len());
    assert_eq!(open, b.conflicts());
    assert_eq!(sides(&a), sides(&b));
    let kept: i64 = a
        .conn()
        .query_row("SELECT count(*) FROM _sync_conflicts", [], |r| r.get(0))
        .unwrap();
    assert!(kept <= 100 + 1000, "{kept} records kept");

    // the same 20,000 updates on one device, sent to a second one each round
    let (alone, peer) = (Device::new("alone", schema), Device::new("peer", schema));
    exec(alone.conn(), seed_rows);
    send(&alone, &peer);
    for _ in 0..5 {
        edit(&alone, &mut rng, 4000);
        send(&alone, &peer);
    }
    let base = file_size(&alone).max(file_size(&peer));
    for d in [&a, &b] {
        assert!(
            file_size(d) <= 4 * base,
            "{}: {} bytes, against {base} for one device alone",
            d.name,
            file_size(d)
        );
    }
}

#[test]
fn three_devices_editing_one_cell_make_two_records_and_one_resolution_closes_both() {
    let (a, b, c) = three();
    exec(a.conn(), "UPDATE t SET x = 'a' WHERE id = 1");
    exec(b.conn(), "UPDATE t SET x = 'b' WHERE id = 1");
    exec(c.conn(), "UPDATE t SET x = 'c' WHERE id = 1");
    let ops = [last_op(&a), last_op(&b), last_op(&c)];
    mesh(&[&a, &b, &c]);
    let records = sides(&a);
    assert_eq!(records.len(), 2, "three live sides: two lose");
    assert_eq!(sides(&b), records);
    assert_eq!(sides(&c), records);
    // one winner beside both losers, which are the other two sides
    let winner = &records[0].2;
    assert!(records.iter().all(|r| &r.2 == winner && &r.1 != winner));
    let mut all: Vec<&String> = records.iter().map(|r| &r.1).chain([winner]).collect();
    all.sort();
    let mut expected: Vec<&String> = ops.iter().collect();
    expected.sort();
    assert_eq!(all, expected);
    let shown = &a.dump("t")[0][1];
    assert_eq!(
        &records[0].5,
        &format!("{{\"x\":\"{}\"}}", shown_text(shown))
    );

    // c takes its own value (from a record with its op as a side): the resolution follows all
    // three sides
    let c_op = &ops[2];
    let id = &records
        .iter()
        .find(|r| &r.1 == c_op || &r.2 == c_op)
        .unwrap()
        .0;
    call(c.conn(), &format!("SELECT sync_resolve('{id}', 'local')")).unwrap();
    assert!(c.conflicts().is_empty());
    assert_eq!(c.resolved().len(), 2);
    mesh(&[&a, &b, &c]);
    for d in [&a, &b, &c] {
        assert_eq!(
            d.dump("t"),
            vec![vec![Value::Integer(1), text("c"), text("y0")]]
        );
        assert!(d.conflicts().is_empty(), "{}", d.name);
    }
}

fn shown_text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_side_written_again_by_its_device_moves_the_record_and_the_old_id_is_refused() {
    let (a, b, c) = three();
    exec(a.conn(), "UPDATE t SET x = 'a1' WHERE id = 1");
    exec(b.conn(), "UPDATE t SET x = 'b1' WHERE id = 1");
    send(&a, &c);
    send(&b, &c);
    let before = sides(&c);
    assert_eq!(before.len(), 1);
    // a writes the cell again without having seen b's side
    exec(a.conn(), "UPDATE t SET x = 'a2' WHERE id = 1");
    let a2 = last_op(&a);
    send(&a, &c);
    let after = sides(&c);
    assert_eq!(after.len(), 1, "still one record on the row");
    assert_ne!(after[0].0, before[0].0, "a new id: a side changed");
    assert!(
        after[0].1 == a2 || after[0].2 == a2,
        "it follows a's live write"
    );
    assert!(
        after[0].4.contains("a2") || after[0].5.contains("a2"),
        "{after:?}"
    );
    let state = snapshot(c.conn());
    let err = call(
        c.conn(),
        &format!("SELECT sync_resolve('{}', 'remote')", before[0].0),
    )
    .unwrap_err();
    assert!(err.contains("changed after it was read"), "{err}");
    assert_eq!(snapshot(c.conn()), state, "the refusal wrote nothing");
    // the record of the old sides is not listed
    assert_eq!(c.conflicts().len() + c.resolved().len(), 1);
    call(
        c.conn(),
        &format!("SELECT sync_resolve('{}', 'remote')", after[0].0),
    )
    .unwrap();
    mesh(&[&a, &b, &c]);
    for d in [&a, &b, &c] {
        assert!(d.conflicts().is_empty(), "{}", d.name);
        assert_eq!(d.dump("t"), c.dump("t"));
    }
}

/// a deletes row 1 while b edits x and c edits y.
fn delete_against_two_edits(delete_last: bool) -> (Device, Device, Device) {
    let (a, b, c) = three();
    let busy = if delete_last { &a } else { &b };
    for n in 0..5 {
        // more ops before: a greater Lamport time, so this device's write wins
        exec(
            busy.conn(),
            &format!("INSERT INTO t VALUES ({}, 0, 0)", 100 + n),
        );
    }
    exec(a.conn(), "DELETE FROM t WHERE id = 1");
    exec(b.conn(), "UPDATE t SET x = 'b' WHERE id = 1");
    exec(c.conn(), "UPDATE t SET y = 'c' WHERE id = 1");
    mesh(&[&a, &b, &c]);
    mesh(&[&a, &b, &c]);
    (a, b, c)
}

#[test]
fn a_winning_delete_against_two_edits_makes_one_record_per_edit() {
    let (a, b, c) = delete_against_two_edits(true);
    assert_ne!(a.dump("t")[0][0], Value::Integer(1), "row 1 is gone");
    let records = sides(&a);
    assert_eq!((sides(&b), sides(&c)), (records.clone(), records.clone()));
    let mut found: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| (r.3.as_str(), r.4.as_str(), r.5.as_str()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            (r#"["x"]"#, r#"{"x":"b"}"#, "null"),
            (r#"["y"]"#, r#"{"y":"c"}"#, "null")
        ]
    );
}

#[test]
fn a_losing_delete_is_one_record_beside_the_edits_that_win() {
    let (a, b, c) = delete_against_two_edits(false);
    let row = vec![Value::Integer(1), text("b"), text("c")];
    assert_eq!(a.dump("t")[0], row);
    let records = sides(&a);
    assert_eq!((sides(&b), sides(&c)), (records.clone(), records.clone()));
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(
        (r.3.as_str(), r.4.as_str(), r.5.as_str()),
        (r#"["x","y"]"#, "null", r#"{"x":"b","y":"c"}"#)
    );
}

#[test]
fn a_resolution_does_not_close_a_side_it_did_not_see() {
    let (a, b, c) = three();
    exec(a.conn(), "UPDATE t SET x = 'a' WHERE id = 1");
    exec(b.conn(), "UPDATE t SET x = 'b' WHERE id = 1");
    exec(c.conn(), "UPDATE t SET x = 'c' WHERE id = 1");
    let c_op = last_op(&c);
    send(&a, &b);
    let id = &sides(&b)[0].0;
    call(
        b.conn(),
        &format!("SELECT sync_resolve('{id}', '{{\"x\": \"r\"}}')"),
    )
    .unwrap();
    let r_op = last_op(&b);
    // the resolution reaches c with the sides it saw: c's own edit is still a side
    send(&b, &c);
    let records = sides(&c);
    assert_eq!(records.len(), 1, "{records:?}");
    let mut pair = [records[0].1.clone(), records[0].2.clone()];
    pair.sort();
    let mut expected = [c_op, r_op];
    expected.sort();
    assert_eq!(pair, expected);
    mesh(&[&a, &b, &c]);
    assert_eq!((sides(&a), sides(&b)), (records.clone(), records));
}

#[test]
fn an_edit_of_other_columns_after_both_sides_leaves_the_conflict_open() {
    let (a, b, _) = three();
    exec(a.conn(), "UPDATE t SET x = 'a' WHERE id = 1");
    exec(b.conn(), "UPDATE t SET x = 'b' WHERE id = 1");
    send(&a, &b);
    send(&b, &a);
    let records = sides(&a);
    assert_eq!(records.len(), 1);
    exec(b.conn(), "UPDATE t SET y = 'after both' WHERE id = 1");
    send(&b, &a);
    assert_eq!(sides(&a), records, "x still has two live values");
    assert_eq!(sides(&b), records);
    // writing x after both closes it (here when the next import brings the records up to
    // date, there when the write arrives)
    exec(b.conn(), "UPDATE t SET x = 'after both' WHERE id = 1");
    send(&b, &a);
    send(&a, &b);
    assert!(a.conflicts().is_empty() && b.conflicts().is_empty());
    assert_eq!((a.resolved().len(), b.resolved().len()), (1, 1));
}

/// b's edit of x and y loses x to a's later edit and y to c's: one record, beside a's (the
/// greater order key).
fn one_loser_two_winners() -> (Device, Device, Device, String) {
    let (a, b, c) = three();
    for n in 0..6 {
        exec(
            a.conn(),
            &format!("INSERT INTO t VALUES ({}, 0, 0)", 100 + n),
        );
    }
    for n in 0..3 {
        exec(
            c.conn(),
            &format!("INSERT INTO t VALUES ({}, 0, 0)", 200 + n),
        );
    }
    exec(a.conn(), "UPDATE t SET x = 'a' WHERE id = 1");
    exec(b.conn(), "UPDATE t SET x = 'b', y = 'b' WHERE id = 1");
    exec(c.conn(), "UPDATE t SET y = 'c' WHERE id = 1");
    let a_op = last_op(&a);
    mesh(&[&a, &b, &c]);
    let records = sides(&b);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        (&records[0].2, records[0].3.as_str()),
        (&a_op, r#"["x","y"]"#)
    );
    assert_eq!(records[0].5, r#"{"x":"a","y":"c"}"#, "what the table shows");
    let id = records[0].0.clone();
    (a, b, c, id)
}

#[test]
fn a_write_of_some_of_the_columns_leaves_the_rest_open_under_a_new_id() {
    let (a, b, _c, id) = one_loser_two_winners();
    // a writes x after seeing every side: y is still contested, now against c's edit alone
    exec(a.conn(), "UPDATE t SET x = 'r' WHERE id = 1");
    send(&a, &b);
    let records = sides(&b);
    assert_eq!(records.len(), 1);
    assert_ne!(records[0].0, id);
    assert_eq!(
        (
            records[0].3.as_str(),
            records[0].4.as_str(),
            records[0].5.as_str()
        ),
        (r#"["y"]"#, r#"{"y":"b"}"#, r#"{"y":"c"}"#)
    );
    assert!(b.resolved().is_empty(), "changed, not resolved");
    let err = call(b.conn(), &format!("SELECT sync_resolve('{id}', 'local')")).unwrap_err();
    assert!(err.contains("changed after it was read"), "{err}");
}

#[test]
fn a_json_choice_closes_the_whole_conflict() {
    let (a, b, c, id) = one_loser_two_winners();
    // only y named: x keeps what the table shows, written again after every side
    call(
        b.conn(),
        &format!("SELECT sync_resolve('{id}', '{{\"y\": \"z\"}}')"),
    )
    .unwrap();
    assert!(b.conflicts().is_empty());
    assert_eq!(b.resolved().len(), 1);
    mesh(&[&a, &b, &c]);
    for d in [&a, &b, &c] {
        assert_eq!(
            d.dump("t")[0],
            vec![Value::Integer(1), text("a"), text("z")]
        );
        assert!(d.conflicts().is_empty(), "{}", d.name);
    }
}

#[test]
fn a_json_choice_must_name_a_column_of_the_conflict_once() {
    let (a, b, _) = three();
    exec(a.conn(), "UPDATE t SET x = 'a' WHERE id = 1");
    exec(b.conn(), "UPDATE t SET x = 'b' WHERE id = 1");
    send(&a, &b);
    let id = &sides(&b)[0].0;
    let state = snapshot(b.conn());
    for (choice, expected) in [
        (
            r#"{"y": 1}"#,
            r#"names none of the conflict's columns ["x"]"#,
        ),
        (r#"{"x": 1, "x": 2}"#, r#"names column "x" twice"#),
        ("LOCAL", "written 'local' and 'remote', in lower case"),
        (
            "both",
            r#"choice "both" is not 'local', 'remote' or a JSON object"#,
        ),
    ] {
        let err = call(
            b.conn(),
            &format!("SELECT sync_resolve('{id}', '{choice}')"),
        )
        .unwrap_err();
        assert!(err.contains(expected), "{choice}: {err}");
    }
    assert_eq!(snapshot(b.conn()), state, "nothing written");
}

#[test]
fn a_later_write_of_one_column_changes_the_record_so_an_old_choice_cannot_undo_it() {
    let (a, b, _) = three();
    exec(a.conn(), "UPDATE t SET x = 'a', y = 'a' WHERE id = 1");
    exec(b.conn(), "UPDATE t SET x = 'b', y = 'b' WHERE id = 1");
    send(&a, &b);
    send(&b, &a);
    let old = sides(&a);
    assert_eq!((old.len(), old[0].3.as_str()), (1, r#"["x","y"]"#));
    // b writes x after seeing both sides: y is still contested, by the same two ops
    exec(b.conn(), "UPDATE t SET x = 'later' WHERE id = 1");
    send(&b, &a);
    let now = sides(&a);
    assert_eq!((now.len(), now[0].3.as_str()), (1, r#"["y"]"#));
    assert_ne!(now[0].0, old[0].0, "another record: its columns changed");
    let state = snapshot(a.conn());
    let choice = r#"{"x": "mine", "y": "mine"}"#;
    let err = call(
        a.conn(),
        &format!("SELECT sync_resolve('{}', '{choice}')", old[0].0),
    )
    .unwrap_err();
    assert!(err.contains("changed after it was read"), "{err}");
    assert_eq!(snapshot(a.conn()), state, "b's later x stays");
    assert_eq!(a.dump("t")[0][1], text("later"));
}
