//! What people do with a synced database on their first day: export inside an open
//! transaction, import or resolve inside one and roll it back, resolve conflicts in every way the
//! API allows, keep derived data with their own triggers.

mod common;

use common::*;
use rusqlite::types::Value;

const T: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT); SELECT sync_enable('t');";

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
    assert_eq!(
        b.dump("t"),
        vec![vec![Value::Integer(2), text("committed")]]
    );
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
    let (a, b, c) = (
        Device::new("a", T),
        Device::new("b", T),
        Device::new("c", T),
    );
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
    assert_eq!(
        (b.dump("t"), b.conflicts(), b.clock()),
        (rows, conflicts, clock)
    );
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

/// a and b edit row 1 of `t` concurrently; b has imported a's edit: one open conflict on b.
fn concurrent_edits() -> (Device, Device) {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x')");
    send(&a, &b);
    exec(a.conn(), "UPDATE t SET a = 'from a' WHERE id = 1");
    exec(b.conn(), "UPDATE t SET a = 'from b' WHERE id = 1");
    send(&a, &b);
    (a, b)
}

#[test]
fn a_resolution_rolled_back_with_its_transaction_can_be_retried() {
    let (a, b) = concurrent_edits();
    let ops = op_count(b.conn());
    let (rows, conflicts) = (b.dump("t"), b.conflicts());
    exec(b.conn(), "BEGIN");
    exec(
        b.conn(),
        "SELECT sync_resolve(id, '{\"a\": \"merged\"}') FROM sync_conflicts",
    );
    exec(b.conn(), "ROLLBACK");
    assert_eq!(
        (b.dump("t"), b.conflicts(), op_count(b.conn())),
        (rows, conflicts, ops)
    );
    exec(
        b.conn(),
        "SELECT sync_resolve(id, '{\"a\": \"merged\"}') FROM sync_conflicts",
    );
    send(&b, &a);
    assert_eq!(a.dump("t"), vec![vec![Value::Integer(1), text("merged")]]);
    assert!(a.conflicts().is_empty() && b.conflicts().is_empty());
    // b saw the conflict open and resolved it; a never saw it open (its history differs)
    assert_eq!(b.resolved().len(), 1);
    assert!(a.resolved().is_empty());
}

const L: &str = "CREATE TABLE l(id INTEGER PRIMARY KEY, inv INTEGER NOT NULL, q INTEGER NOT NULL);
                 SELECT sync_enable('l');";

fn int(n: i64) -> Value {
    Value::Integer(n)
}

fn conflict_id(d: &Device) -> String {
    d.conn()
        .query_row(
            "SELECT id FROM sync_conflicts WHERE NOT resolved",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// a deletes row 1 while b edits its q: the delete wins. a, b: the devices; c: a third device
/// that edited inv concurrently, when `with_third` is set.
fn delete_against_edit(with_third: bool) -> (Device, Device, Device) {
    let (a, b, c) = (
        Device::new("a", L),
        Device::new("b", L),
        Device::new("c", L),
    );
    exec(a.conn(), "INSERT INTO l VALUES (1, 10, 1)");
    send(&a, &b);
    send(&a, &c);
    exec(
        a.conn(),
        "INSERT INTO l VALUES (2, 20, 2); DELETE FROM l WHERE id = 1",
    );
    exec(b.conn(), "UPDATE l SET q = 3 WHERE id = 1");
    if with_third {
        exec(c.conn(), "UPDATE l SET inv = 11 WHERE id = 1");
        send(&c, &a);
        send(&c, &b);
    }
    send(&b, &a);
    assert_eq!(
        a.dump("l"),
        vec![vec![int(2), int(20), int(2)]],
        "the delete won"
    );
    (a, b, c)
}

#[test]
fn choosing_the_edit_over_a_winning_delete_brings_the_whole_row_back() {
    let (a, b, _) = delete_against_edit(false);
    let id = conflict_id(&a);
    exec(a.conn(), &format!("SELECT sync_resolve('{id}', 'remote')"));
    assert_eq!(
        a.dump("l"),
        vec![vec![int(1), int(10), int(3)], vec![int(2), int(20), int(2)]]
    );
    send(&a, &b);
    assert_eq!(b.dump("l"), a.dump("l"));
    assert_eq!(b.conflicts(), a.conflicts());
}

#[test]
fn the_editing_device_brings_the_row_back_by_choosing_its_own_side() {
    let (a, b, _) = delete_against_edit(false);
    send(&a, &b);
    assert_eq!(b.dump("l"), a.dump("l"));
    exec(
        b.conn(),
        &format!("SELECT sync_resolve('{}', 'local')", conflict_id(&b)),
    );
    assert_eq!(b.dump("l")[0], vec![int(1), int(10), int(3)]);
    send(&b, &a);
    assert_eq!(a.dump("l"), b.dump("l"));
}

#[test]
fn a_revived_row_keeps_a_third_devices_concurrent_edit_of_another_column() {
    let (a, b, c) = delete_against_edit(true);
    // two conflicts on row 1: the delete against b's edit and against c's; choose b's
    let id: String = a
        .conn()
        .query_row(
            "SELECT id FROM sync_conflicts WHERE columns = '[\"q\"]' AND NOT resolved",
            [],
            |r| r.get(0),
        )
        .unwrap();
    exec(a.conn(), &format!("SELECT sync_resolve('{id}', 'remote')"));
    assert_eq!(a.dump("l")[0], vec![int(1), int(11), int(3)]);
    // the resolution follows the sides of the other conflict on the row too
    assert!(a.conflicts().is_empty());
    assert_eq!(a.resolved().len(), 2);
    send(&a, &b);
    send(&a, &c);
    assert_eq!(b.dump("l"), a.dump("l"));
    assert_eq!(c.dump("l"), a.dump("l"));
}

#[test]
fn a_json_choice_over_a_winning_delete_brings_the_row_back_with_its_values() {
    let (a, _, _) = delete_against_edit(false);
    let id = conflict_id(&a);
    exec(
        a.conn(),
        &format!("SELECT sync_resolve('{id}', '{{\"q\": 7}}')"),
    );
    assert_eq!(a.dump("l")[0], vec![int(1), int(10), int(7)]);
}

/// `sync_resolve` of a conflict already resolved returns 0 and writes nothing.
fn resolved_already(d: &Device, id: &str, choice: &str) -> i64 {
    (d.conn())
        .query_row(
            &format!("SELECT sync_resolve('{id}', '{choice}')"),
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn resolving_a_conflict_already_resolved_writes_nothing_and_returns_0() {
    let (_, b) = concurrent_edits();
    let id = conflict_id(&b);
    exec(b.conn(), &format!("SELECT sync_resolve('{id}', 'local')"));
    // resolved by the resolution itself, and then by a later edit not yet seen by any import
    exec(b.conn(), "UPDATE t SET a = 'later' WHERE id = 1");
    let ops = op_count(b.conn());
    for choice in ["local", "remote", "{\"a\": \"old\"}"] {
        assert_eq!(resolved_already(&b, &id, choice), 0, "{choice}");
    }
    assert_eq!(b.dump("t"), vec![vec![int(1), text("later")]]);
    assert_eq!(op_count(b.conn()), ops);
    // a choice that is no choice is refused, resolved or not
    for choice in ["theirs", "{}", "[1]"] {
        let err = call(
            b.conn(),
            &format!("SELECT sync_resolve('{id}', '{choice}')"),
        )
        .unwrap_err();
        assert!(err.contains("choice"), "{choice}: {err}");
    }
}

/// Two open conflicts, the first of which an edit by hand resolved before any sync call: one
/// pass of the README's query over the open ones resolves the other (the first was still
/// listed open, and its refusal stopped the pass).
#[test]
fn one_pass_over_the_open_conflicts_goes_past_one_an_edit_resolved() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(a.conn(), "INSERT INTO t VALUES (1, 'x'), (2, 'x')");
    send(&a, &b);
    exec(a.conn(), "UPDATE t SET a = 'A' WHERE id IN (1, 2)");
    exec(b.conn(), "UPDATE t SET a = 'B' WHERE id IN (1, 2)");
    send(&a, &b);
    assert_eq!(b.conflicts().len(), 2);
    let first: i64 = (b.conn())
        .query_row(
            "SELECT pk ->> '$.id' FROM sync_conflicts WHERE NOT resolved ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    exec(
        b.conn(),
        &format!("UPDATE t SET a = 'by hand' WHERE id = {first}"),
    );
    let written: Vec<(i64,)> = rows(
        b.conn(),
        "SELECT sync_resolve(id, 'remote') FROM sync_conflicts WHERE NOT resolved ORDER BY id",
    );
    assert_eq!(written, vec![(0,), (1,)]);
    assert!(b.conflicts().is_empty());
    let other = 3 - first;
    assert_eq!(b.dump("t")[(other - 1) as usize][1], text("A"));
    assert_eq!(b.dump("t")[(first - 1) as usize][1], text("by hand"));
}

#[test]
fn a_later_edit_after_both_sides_counts_as_resolving_even_before_an_import() {
    let (_, b) = concurrent_edits();
    let id = conflict_id(&b);
    exec(b.conn(), "UPDATE t SET a = 'typed by hand' WHERE id = 1");
    assert_eq!(resolved_already(&b, &id, "remote"), 0);
    assert_eq!(b.dump("t"), vec![vec![int(1), text("typed by hand")]]);
    // the record says so from then on, though no import ran
    assert!(b.conflicts().is_empty());
    assert_eq!(b.resolved().len(), 1);
}

#[test]
fn a_json_choice_may_not_name_a_key_column_or_nothing() {
    let (_, b) = concurrent_edits();
    let id = conflict_id(&b);
    let before = (b.dump("t"), op_count(b.conn()));
    for (choice, expected) in [
        (
            "{\"id\": 2, \"a\": \"moved\"}",
            "choice names key column \"id\"",
        ),
        ("{}", "choice '{}' names no column"),
        ("{\"nope\": 1}", "table \"t\" has no column \"nope\""),
    ] {
        let err = call(
            b.conn(),
            &format!("SELECT sync_resolve('{id}', '{choice}')"),
        )
        .unwrap_err();
        assert!(
            err.starts_with("sync_resolve: ") && err.contains(expected),
            "{err}"
        );
    }
    assert_eq!((b.dump("t"), op_count(b.conn())), before);
}

const NOTES_FTS: &str = "
    CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body TEXT);
    CREATE VIRTUAL TABLE notes_fts USING fts5(title, body, content='notes', content_rowid='id');
    CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
      INSERT INTO notes_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
    END;
    CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN
      INSERT INTO notes_fts(notes_fts, rowid, title, body)
        VALUES ('delete', old.id, old.title, old.body);
    END;
    CREATE TRIGGER notes_au AFTER UPDATE ON notes BEGIN
      INSERT INTO notes_fts(notes_fts, rowid, title, body)
        VALUES ('delete', old.id, old.title, old.body);
      INSERT INTO notes_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
    END;
    SELECT sync_enable('notes');";

fn search(d: &Device, words: &str) -> Vec<i64> {
    d.conn()
        .prepare("SELECT rowid FROM notes_fts WHERE notes_fts MATCH ?1 ORDER BY rowid")
        .unwrap()
        .query_map([words], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn fts_intact(d: &Device) {
    exec(
        d.conn(),
        "INSERT INTO notes_fts(notes_fts, rank) VALUES ('integrity-check', 1)",
    );
}

#[test]
fn a_full_text_index_kept_by_triggers_finds_synced_rows() {
    let (a, b) = (Device::new("a", NOTES_FTS), Device::new("b", NOTES_FTS));
    exec(
        a.conn(),
        "INSERT INTO notes VALUES (1, 'n1', 'hello world')",
    );
    send(&a, &b);
    assert_eq!(
        (search(&a, "hello"), search(&b, "hello")),
        (vec![1], vec![1])
    );
    exec(
        a.conn(),
        "UPDATE notes SET body = 'goodbye moon' WHERE id = 1",
    );
    exec(
        a.conn(),
        "INSERT INTO notes VALUES (2, 'n2', 'hello again')",
    );
    send(&a, &b);
    assert_eq!(search(&b, "hello"), vec![2]);
    assert_eq!(search(&b, "goodbye"), vec![1]);
    // concurrent edits of one note: both indexes follow the row the merge shows
    exec(a.conn(), "UPDATE notes SET body = 'apples' WHERE id = 2");
    exec(b.conn(), "UPDATE notes SET body = 'pears' WHERE id = 2");
    send(&a, &b);
    send(&b, &a);
    assert_eq!(a.dump("notes"), b.dump("notes"));
    for word in ["apples", "pears", "hello", "goodbye"] {
        assert_eq!(search(&a, word), search(&b, word), "{word}");
    }
    exec(b.conn(), "DELETE FROM notes WHERE id = 1");
    send(&b, &a);
    assert_eq!(search(&a, "goodbye"), Vec::<i64>::new());
    for d in [&a, &b] {
        fts_intact(d);
    }
    // the importer's writes are still not captured: each device's log has its own writes only
    assert_eq!((op_count(a.conn()), op_count(b.conn())), (4, 2));
}

const NOTES_TOUCHED: &str = "
    CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT, updated_at TEXT);
    SELECT sync_enable('notes');";

/// The pattern the README gives: a trigger that writes a synced column skips imported changes
/// (what it would write arrives by sync from the device that made the change).
const TOUCH_GUARDED: &str = "
    CREATE TRIGGER notes_touch AFTER UPDATE OF body ON notes
    WHEN NOT EXISTS (SELECT 1 FROM sync_importing)
    BEGIN UPDATE notes SET updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') || ' ' || random()
          WHERE id = NEW.id; END;";

const TOUCH_UNGUARDED: &str = "
    CREATE TRIGGER notes_touch AFTER UPDATE OF body ON notes
    BEGIN UPDATE notes SET updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') || ' ' || random()
          WHERE id = NEW.id; END;";

fn updated_at_converges_and_goes_quiet(trigger: &str) {
    let schema = format!("{NOTES_TOUCHED} {trigger}");
    let (a, b) = (Device::new("a", &schema), Device::new("b", &schema));
    exec(
        a.conn(),
        "INSERT INTO notes VALUES (1, 'x', NULL), (2, 'y', NULL)",
    );
    send(&a, &b);
    exec(a.conn(), "UPDATE notes SET body = 'from a' WHERE id = 1");
    exec(b.conn(), "UPDATE notes SET body = 'from b' WHERE id = 1");
    exec(b.conn(), "UPDATE notes SET body = 'b only' WHERE id = 2");
    for _ in 0..2 {
        send(&a, &b);
        send(&b, &a);
    }
    assert_eq!(a.dump("notes"), b.dump("notes"));
    let ops = (op_count(a.conn()), op_count(b.conn()));
    for _ in 0..2 {
        assert_eq!(send(&a, &b).applied, 0);
        assert_eq!(send(&b, &a).applied, 0);
    }
    assert_eq!((op_count(a.conn()), op_count(b.conn())), ops, "no new ops");
    assert!(a.dump("notes").iter().all(|row| row[2] != Value::Null));
}

#[test]
fn an_updated_at_trigger_guarded_by_sync_importing_converges_and_goes_quiet() {
    updated_at_converges_and_goes_quiet(TOUCH_GUARDED);
}

#[test]
fn an_unguarded_updated_at_trigger_cannot_make_devices_diverge() {
    updated_at_converges_and_goes_quiet(TOUCH_UNGUARDED);
}

#[test]
fn an_audit_table_that_is_not_synced_records_imported_changes() {
    let schema = "
        CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
        CREATE TABLE audit(n INTEGER PRIMARY KEY, what TEXT, id INTEGER);
        CREATE TRIGGER notes_ins AFTER INSERT ON notes
          BEGIN INSERT INTO audit(what, id) VALUES ('insert', NEW.id); END;
        CREATE TRIGGER notes_upd AFTER UPDATE ON notes
          BEGIN INSERT INTO audit(what, id) VALUES ('update', NEW.id); END;
        CREATE TRIGGER notes_del AFTER DELETE ON notes
          BEGIN INSERT INTO audit(what, id) VALUES ('delete', OLD.id); END;
        SELECT sync_enable('notes');";
    let (a, b) = (Device::new("a", schema), Device::new("b", schema));
    exec(a.conn(), "INSERT INTO notes VALUES (1, 'x'), (2, 'y')");
    send(&a, &b);
    exec(
        a.conn(),
        "UPDATE notes SET body = 'z' WHERE id = 1; DELETE FROM notes WHERE id = 2",
    );
    send(&a, &b);
    // a bundle that changes nothing here fires nothing
    send(&a, &b);
    assert_eq!(b.dump("audit"), a.dump("audit"));
    assert_eq!(b.dump("audit").len(), 4);
}

#[test]
fn raise_ignore_does_not_keep_an_imported_row_out() {
    let (a, b) = (Device::new("a", T), Device::new("b", T));
    exec(
        b.conn(),
        "CREATE TRIGGER t_skip BEFORE INSERT ON t WHEN NEW.a = 'skip'
         BEGIN SELECT RAISE(IGNORE); END",
    );
    exec(a.conn(), "INSERT INTO t VALUES (1, 'skip')");
    send(&a, &b);
    assert_eq!(b.dump("t"), a.dump("t"));
    // a local insert is still skipped by it
    exec(b.conn(), "INSERT INTO t VALUES (2, 'skip')");
    assert_eq!(b.dump("t").len(), 1);
}

/// SQLite fires a table's triggers newest first. An `updated_at` trigger created after
/// `sync_enable` would run before capture recorded the write it follows, and the log would
/// show the two writes in the wrong order (the device's own table differing from its ops).
/// `sync_init()`, `sync_enable()` and every import put capture first in line again.
#[test]
fn capture_records_a_write_before_the_app_trigger_that_follows_it() {
    let schema = format!("{NOTES_TOUCHED} {TOUCH_GUARDED}");
    let (a, b) = (Device::new("a", &schema), Device::new("b", &schema));
    // created after sync_enable: first in line again once sync_init() runs
    exec(a.conn(), "SELECT sync_init()");
    exec(a.conn(), "INSERT INTO notes VALUES (1, 'x', NULL)");
    exec(
        a.conn(),
        "UPDATE notes SET body = 'y', updated_at = 'by hand' WHERE id = 1",
    );
    let (_, log) = snapshot(a.conn());
    assert_eq!(log.len(), 3, "the update, then the trigger's update");
    send(&a, &b);
    assert_eq!(b.dump("notes"), a.dump("notes"));
    assert_ne!(
        a.dump("notes")[0][2],
        text("by hand"),
        "the trigger ran last"
    );
}

/// The revived row is the row the merge shows without the winning delete: an edit the delete
/// had seen and overwritten (c's q = 3) comes back with it.
#[test]
fn a_revived_row_is_the_row_without_the_winning_delete() {
    let (a, b, c) = (
        Device::new("a", L),
        Device::new("b", L),
        Device::new("c", L),
    );
    exec(a.conn(), "INSERT INTO l VALUES (1, 1, 1)");
    send(&a, &b);
    send(&a, &c);
    exec(c.conn(), "UPDATE l SET q = 3 WHERE id = 1");
    send(&c, &b);
    exec(b.conn(), "DELETE FROM l WHERE id = 1");
    exec(a.conn(), "UPDATE l SET inv = 2 WHERE id = 1");
    send(&b, &a);
    assert_eq!(a.dump("l"), Vec::<Vec<Value>>::new(), "the delete won");
    exec(
        a.conn(),
        &format!("SELECT sync_resolve('{}', 'local')", conflict_id(&a)),
    );
    assert_eq!(a.dump("l"), vec![vec![int(1), int(2), int(3)]]);
    send(&a, &b);
    send(&a, &c);
    send(&b, &c);
    assert_eq!(b.dump("l"), a.dump("l"));
    assert_eq!(c.dump("l"), a.dump("l"));
}

/// An imported change of a row that is there reaches the app's triggers as an UPDATE (no
/// BEFORE INSERT trigger sees it), as the app's own UPDATE would.
#[test]
fn an_imported_update_fires_update_triggers_not_insert_triggers() {
    let schema = "
        CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
        CREATE TABLE audit(n INTEGER PRIMARY KEY, what TEXT);
        CREATE TRIGGER notes_bi BEFORE INSERT ON notes
          BEGIN INSERT INTO audit(what) VALUES ('before insert ' || NEW.id); END;
        CREATE TRIGGER notes_bu BEFORE UPDATE ON notes
          BEGIN INSERT INTO audit(what) VALUES ('before update ' || NEW.id); END;
        SELECT sync_enable('notes');";
    let (a, b) = (Device::new("a", schema), Device::new("b", schema));
    exec(a.conn(), "INSERT INTO notes VALUES (1, 'x')");
    send(&a, &b);
    exec(a.conn(), "UPDATE notes SET body = 'y' WHERE id = 1");
    send(&a, &b);
    assert_eq!(b.dump("audit"), a.dump("audit"));
    assert_eq!(
        b.dump("audit"),
        vec![
            vec![int(1), text("before insert 1")],
            vec![int(2), text("before update 1")]
        ]
    );
}

/// The README's statement that keeps what the table shows for every open conflict, run on
/// each of three devices in turn: three devices set the same cell (two records), and one
/// deletes a row another edits. The resolving device's table does not change, every record
/// closes, and the three devices end alike.
#[test]
fn the_readme_s_keep_what_the_table_shows_pass_changes_no_row_on_any_device() {
    for resolver in 0..3 {
        let devices = [
            Device::new("a", T),
            Device::new("b", T),
            Device::new("c", T),
        ];
        let mesh = || {
            for from in &devices {
                for to in &devices {
                    if from.name != to.name {
                        send(from, to);
                    }
                }
            }
        };
        exec(devices[0].conn(), "INSERT INTO t VALUES (1, 'x'), (2, 'x')");
        mesh();
        for d in &devices {
            exec(
                d.conn(),
                &format!("UPDATE t SET a = '{}' WHERE id = 1", d.name),
            );
        }
        exec(devices[0].conn(), "DELETE FROM t WHERE id = 2");
        exec(devices[1].conn(), "UPDATE t SET a = 'kept?' WHERE id = 2");
        mesh();
        let d = &devices[resolver];
        assert_eq!(d.conflicts().len(), 3, "on {}", d.name);
        let shown = d.dump("t");
        rows::<(i64,)>(
            d.conn(),
            "SELECT sync_resolve(id, CASE WHEN local_op_id = winner_op_id THEN 'local' \
             ELSE 'remote' END) FROM sync_conflicts WHERE NOT resolved",
        );
        assert_eq!(d.dump("t"), shown, "on {}", d.name);
        assert!(d.conflicts().is_empty(), "on {}", d.name);
        mesh();
        for other in &devices {
            assert_eq!(other.dump("t"), shown, "{} after {}", other.name, d.name);
            assert!(
                other.conflicts().is_empty(),
                "{} after {}",
                other.name,
                d.name
            );
        }
    }
}
