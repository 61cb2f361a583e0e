//! Hostile bundles, a named corpus: every case is refused with an error that says what is wrong,
//! and leaves the importing database exactly as it was (the file's bytes, its dump and its log),
//! with no transaction open. A gap in a device's ops is not an error: those ops wait as pending;
//! nor is a column this database does not have (yet): its values wait with their ops.

mod common;

use common::bundle::{self, Bundle, M};
use common::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const TODOS: &str = "CREATE TABLE todos(id INTEGER PRIMARY KEY, title TEXT, done INTEGER, note);
                     SELECT sync_enable('todos');";

/// Device a with a few ops, device b to import, and a good bundle of a's ops at a path b can
/// be given (a copy the case may damage).
struct Case {
    a: Device,
    b: Device,
    path: PathBuf,
}

fn case() -> Case {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(
        a.conn(),
        "INSERT INTO todos VALUES (1, 'milk', 0, NULL), (2, 'tea', 0, x'00ff'), (3, 'rice', 1, 2.5);
         UPDATE todos SET done = 1 WHERE id = 1;
         DELETE FROM todos WHERE id = 2;",
    );
    let path = a.bundle_for(None);
    Case { a, b, path }
}

/// The database file's bytes, but for the two header fields every commit rewrites (the change
/// counter and the version it is valid for): an import that fails after writing rolls back
/// every page, and SQLite still counts the (empty) commit of its savepoint.
fn file_hash(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[24..28].fill(0);
    bytes[92..96].fill(0);
    Sha256::digest(bytes).to_vec()
}

impl Case {
    /// b refuses the bundle at `path` with an error containing `expected`, changing nothing.
    fn refused_at(&self, path: &Path, expected: &str) {
        let b = &self.b;
        exec(b.conn(), "PRAGMA wal_checkpoint"); // no-op in rollback mode; file bytes settle
        let before = (file_hash(&b.db.path()), b.dump("todos"), snapshot(b.conn()));
        let err = b.try_import(path).expect_err("a hostile bundle is refused");
        assert!(err.contains(expected), "got {err:?}, expected {expected:?}");
        assert!(
            err.starts_with("sync_bundle_in: "),
            "the error names the function: {err}"
        );
        assert!(b.conn().is_autocommit(), "no transaction left open");
        let after = (file_hash(&b.db.path()), b.dump("todos"), snapshot(b.conn()));
        assert_eq!(after, before, "a refused bundle changes nothing");
        // and the good bundle still imports afterwards
        let good = self.a.bundle_for(None);
        let ops = bundle::read(&good).ops.len() as i64;
        assert_eq!(b.import(&good).applied, ops);
    }

    fn refused(&self, expected: &str) {
        self.refused_at(&self.path, expected);
    }

    /// Runs SQL on the bundle file itself.
    fn edit_file(&self, sql: &str) {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        conn.execute_batch(sql).unwrap();
    }

    fn forge(&self, edit: impl FnOnce(&mut Bundle)) {
        bundle::forge(&self.path, edit);
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }

    fn write_bytes(&self, bytes: &[u8]) {
        std::fs::write(&self.path, bytes).unwrap();
    }
}

// --- not a bundle at all ---

#[test]
fn an_empty_file() {
    let c = case();
    c.write_bytes(b"");
    c.refused("not a sqlite-sync bundle: it is empty or holds no tables (cut short");
}

/// A device's database given instead of a bundle: the error says so, and what to do.
#[test]
fn a_device_database_instead_of_a_bundle() {
    let c = case();
    let err = c.b.try_import(&c.a.db.path()).unwrap_err();
    assert!(
        err.contains("not a sqlite-sync bundle: it is a device's database")
            && err.contains("export a bundle from it with sync_bundle_out(peer, path)"),
        "{err}"
    );
}

/// Another SQLite database given instead of a bundle: the error names a few of its objects,
/// not all of them.
#[test]
fn a_database_file_instead_of_a_bundle() {
    let c = case();
    std::fs::remove_file(&c.path).unwrap();
    for i in 0..6 {
        c.edit_file(&format!("CREATE TABLE notes{i}(x)"));
    }
    c.refused(
        "not a sqlite-sync bundle: expected exactly the tables chunks and manifest, found \
         [table notes0, table notes1, table notes2, table notes3, and 2 more]",
    );
}

#[test]
fn a_text_file() {
    let c = case();
    c.write_bytes(
        b"Dear Bob, here are the groceries: milk, tea, rice.\n"
            .repeat(100)
            .as_slice(),
    );
    c.refused("not a readable bundle (SQL error: file is not a database)");
}

#[test]
fn a_directory() {
    let c = case();
    let dir = c.path.with_extension("dir");
    std::fs::create_dir(&dir).unwrap();
    c.refused_at(&dir, "not a file");
}

#[test]
fn a_missing_path() {
    let c = case();
    c.refused_at(&c.path.with_extension("gone"), "no such file");
}

// --- damaged files ---

#[test]
fn truncated_inside_the_header() {
    let c = case();
    let bytes = c.bytes();
    c.write_bytes(&bytes[..60]);
    c.refused("not a readable bundle");
}

#[test]
fn truncated_to_its_first_page() {
    let c = case();
    let bytes = c.bytes();
    c.write_bytes(&bytes[..4096]);
    c.refused("bundle");
}

#[test]
fn truncated_by_its_last_page() {
    let c = case();
    let bytes = c.bytes();
    c.write_bytes(&bytes[..bytes.len() - 4096]);
    c.refused("bundle");
}

#[test]
fn bytes_flipped_in_the_file_header() {
    let c = case();
    let mut bytes = c.bytes();
    for i in [0usize, 16, 18, 21] {
        bytes[i] ^= 0x5a;
    }
    c.write_bytes(&bytes);
    c.refused("not a readable bundle");
}

/// Flips one byte of the stored value `needle` wherever the file holds it.
fn flip_in_file(c: &Case, needle: &[u8]) {
    let mut bytes = c.bytes();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("bytes to flip");
    bytes[at + needle.len() - 1] ^= 0x01;
    c.write_bytes(&bytes);
}

#[test]
fn a_byte_flipped_in_the_ops() {
    let c = case();
    flip_in_file(&c, b"rice");
    c.refused("manifest hash does not match its ops (corrupted or edited)");
}

#[test]
fn a_byte_flipped_in_the_manifest() {
    let c = case();
    flip_in_file(&c, b"sqlite-sync bundle");
    c.refused("manifest: wrong magic");
}

// --- a well-formed file that lies ---

#[test]
fn wrong_magic() {
    let c = case();
    c.edit_file("UPDATE manifest SET magic = 'sqlite-sink bundle'");
    c.refused("manifest: wrong magic: not a sqlite-sync bundle");
}

#[test]
fn a_future_format_version() {
    let c = case();
    // (its `writer` says this build's release: not a release to upgrade to)
    c.edit_file("UPDATE manifest SET format = 6");
    c.refused(&format!(
        "manifest: unknown format version 6 (this build, {}, reads 3 to 5; a newer build",
        env!("CARGO_PKG_VERSION")
    ));
}

#[test]
fn two_manifest_rows() {
    let c = case();
    c.edit_file("INSERT INTO manifest SELECT * FROM manifest");
    c.refused("manifest: more than one row");
}

#[test]
fn an_op_count_too_high() {
    let c = case();
    c.edit_file("UPDATE manifest SET op_count = op_count + 1");
    c.refused("holds 5 ops but its manifest says 6 (truncated?)");
}

#[test]
fn an_op_count_too_low() {
    let c = case();
    c.edit_file("UPDATE manifest SET op_count = op_count - 1");
    c.refused("holds more ops than its manifest says (4)");
}

#[test]
fn a_chunk_that_claims_fewer_ops_than_it_holds() {
    let c = case();
    c.edit_file("UPDATE chunks SET ops = ops - 1; UPDATE manifest SET op_count = op_count - 1");
    c.refused("chunk 1: holds more than its 4 ops (damaged)");
}

#[test]
fn a_missing_first_chunk() {
    let c = case();
    c.edit_file("UPDATE chunks SET n = 2");
    c.refused("chunk 2 out of sequence (expected chunk 1): damaged, get it again");
}

#[test]
fn a_payload_edited_with_the_hash_left_as_is() {
    let c = case();
    c.forge(|_| {});
    let hash: Vec<u8> = rusqlite::Connection::open(&c.path)
        .unwrap()
        .query_row("SELECT ops_hash FROM manifest", [], |r| r.get(0))
        .unwrap();
    c.forge(|b| b.ops[0].cells[1].1 = M::Str("beer".into()));
    let conn = rusqlite::Connection::open(&c.path).unwrap();
    conn.execute("UPDATE manifest SET ops_hash = ?1", [hash])
        .unwrap();
    c.refused("manifest hash does not match its ops (corrupted or edited)");
}

#[test]
fn a_manifest_hash_of_the_wrong_length() {
    let c = case();
    c.edit_file("UPDATE manifest SET ops_hash = x'00'");
    c.refused("manifest: ops_hash is not 32 bytes");
}

#[test]
fn strays_that_are_not_msgpack() {
    let c = case();
    c.edit_file("UPDATE manifest SET strays = x'c1ff'");
    c.refused("manifest: strays is unreadable");
}

/// Links of ops no device holds (log/strays.rs: facts of a history's hash chain, walked only
/// where the op held at their seq is known and differs) import and change nothing else.
#[test]
fn strays_that_name_no_op_held_import_as_links_only() {
    let c = case();
    let stray = M::Array(vec![
        M::Bin(hex_to_bytes(&c.a.id())),
        M::Int(7),
        M::Bin(vec![7; 16]),
        M::Bin(vec![6; 16]),
    ]);
    let bytes = rmp_serde::to_vec(&M::Array(vec![stray])).unwrap();
    let conn = rusqlite::Connection::open(&c.path).unwrap();
    conn.execute("UPDATE manifest SET strays = ?1", [bytes])
        .unwrap();
    drop(conn);
    let b = &c.b;
    b.import(&c.path);
    assert_eq!(b.dump("todos"), c.a.dump("todos"));
    let kept: Vec<(i64,)> = rows(b.conn(), "SELECT seq FROM _sync_strays");
    assert_eq!(kept, vec![(7,)]);
}

/// Two different ops under one device id and seq are two histories of that device (a copied
/// or restored database written on both sides): without signatures, a forged bundle cannot be
/// told from that. Both are kept, each a history of its own, and nothing is lost either way:
/// the device whose id it is forks when it hears of it, and both devices converge.
#[test]
fn the_same_op_twice_with_different_content_is_a_second_history() {
    let c = case();
    c.forge(|b| {
        let mut twin = b.ops[0].clone();
        twin.cells[1].1 = M::Str("beer".into());
        b.ops.insert(1, twin);
    });
    let r = c.b.import(&c.path);
    assert_eq!((r.applied, r.duplicates, r.pending), (6, 0, 0), "{r:?}");
    let a_id = c.a.id();
    for _ in 0..2 {
        c.a.import(&c.b.bundle_for(Some(&c.a)));
        c.b.import(&c.a.bundle_for(Some(&c.b)));
    }
    assert_ne!(
        c.a.id(),
        a_id,
        "a forked on hearing of another history of its id"
    );
    assert_eq!(c.a.dump("todos"), c.b.dump("todos"));
    assert_eq!(c.a.clock(), c.b.clock());
}

/// Ops under the importing device's id that it never wrote are what a database restored from
/// an older backup receives (DESIGN 5.1): it forks, and takes them as its old id's. Without
/// signatures, a forged bundle cannot be told from that; nothing is lost either way.
#[test]
fn ops_claiming_to_come_from_the_importing_device_make_it_fork() {
    let c = case();
    let me = c.b.id();
    let me_bytes = hex_to_bytes(&me);
    c.forge(|b| b.ops.iter_mut().for_each(|op| op.device = me_bytes.clone()));
    let r = c.b.import(&c.path);
    assert_eq!(r.applied, 5);
    assert_ne!(c.b.id(), me, "b forked");
    assert_eq!(c.b.dump("todos"), c.a.dump("todos"));
}

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn seq_zero() {
    let c = case();
    c.forge(|b| b.ops[0].seq = 0);
    c.refused("op 1: seq out of range");
}

#[test]
fn deps_out_of_order_or_on_the_op_itself() {
    let c = case();
    let own = c.a.id();
    c.forge(|b| {
        b.ops[0].deps = M::Array(vec![M::Array(vec![
            M::Bin(hex_to_bytes(&own)),
            M::Int(1),
            M::Bin(vec![0; 16]),
        ])]);
    });
    c.refused("its deps are not in order (by device, seq and hash), or name its own device");
}

// --- clocks ---

#[test]
fn a_lamport_time_that_goes_backwards() {
    let c = case();
    c.forge(|b| b.ops[2].lamport = 1);
    c.refused(&format!(
        "op 3 (seq 3 of device {}): its clock goes backwards: Lamport time 1, not above 2 of \
         its causal past",
        &c.a.id()[..8]
    ));
}

#[test]
fn a_lamport_time_that_jumps_to_the_end_of_time() {
    let c = case();
    c.forge(|b| b.ops[4].lamport = i64::MAX);
    c.refused("op 5: Lamport time out of range");
}

/// Where the whole causal past of an op is held, its Lamport time must be one more than the
/// greatest in it.
#[test]
fn a_lamport_time_that_jumps() {
    let c = case();
    c.forge(|b| b.ops[4].lamport = 1000);
    c.refused("its clock jumps: Lamport time 1000, where its causal past gives 5");
}

/// Device a writes after seeing op 1 of device c, then after seeing op 2; the forged bundle
/// says the later op saw only op 1 again.
#[test]
fn a_vector_clock_that_goes_backwards() {
    let c = case();
    let third = Device::new("c", TODOS);
    for id in [10, 11] {
        exec(
            third.conn(),
            &format!("INSERT INTO todos VALUES ({id}, 'c', 0, NULL)"),
        );
        c.a.import(&third.bundle_for(None));
        exec(
            c.a.conn(),
            &format!("UPDATE todos SET done = 1 WHERE id = {id}"),
        );
    }
    let good = c.a.bundle_for(None);
    std::fs::copy(&good, &c.path).unwrap();
    let a_id = hex_to_bytes(&c.a.id());
    c.forge(|b| {
        let mut with_deps = b
            .ops
            .iter_mut()
            .filter(|op| op.device == a_id && op.deps != M::Array(vec![]));
        let first = with_deps
            .next()
            .expect("an op after the first import")
            .deps
            .clone();
        with_deps.next().expect("an op after the second").deps = first;
    });
    c.refused(&format!(
        "its clock goes backwards: it names op 1 of device {} as new, while its previous op \
         had seen op 1",
        &third.id()[..8]
    ));
}

/// A forged copy of op 3 (a false Lamport time) waits as pending behind a gap. Once its
/// causal past arrives, it is dropped: a bundle holding op 2 alone leaves op 3 missing, and a
/// bundle with the true op 3 replaces it. Neither bundle is refused for the forged copy.
#[test]
fn a_false_clock_on_a_pending_op_is_dropped_once_its_past_arrives() {
    for true_copy_arrives_with_its_past in [false, true] {
        let c = case();
        let good = c.a.bundle_for(None);
        c.forge(|b| {
            b.ops.truncate(3);
            b.ops.remove(1);
            b.ops[1].lamport = 9;
        });
        let result = c.b.import(&c.path);
        assert_eq!((result.applied, result.pending), (1, 1));
        if !true_copy_arrives_with_its_past {
            let past = c.a.bundle_for(None);
            bundle::forge(&past, |b| b.ops.retain(|op| op.seq == 2));
            let result = c.b.import(&past);
            assert_eq!(
                (result.applied, result.pending, result.discarded),
                (1, 0, 1)
            );
        }
        let result = c.b.import(&good);
        let discarded = true_copy_arrives_with_its_past as i64;
        assert_eq!((result.pending, result.discarded), (0, discarded));
        assert_eq!(c.b.dump("todos"), c.a.dump("todos"));
        assert_eq!(c.b.import(&c.a.bundle_for(None)).duplicates, 5);
    }
}

// --- names that are not this database's ---

/// Not a reason to refuse either (DESIGN 5.2): the op is kept, and fills the table when this
/// device creates and enables it; nothing is created meanwhile.
#[test]
fn a_table_this_database_does_not_have_waits_for_it() {
    let c = case();
    c.forge(|b| b.ops[0].table = "groceries".into());
    let r = c.b.import(&c.path);
    assert_eq!((r.applied, r.waiting.as_str()), (5, r#"["groceries"]"#));
    let tables: i64 = (c.b.conn())
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'groceries'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
}

#[test]
fn the_extensions_own_table() {
    let c = case();
    c.forge(|b| b.ops[0].table = "_sync_ops".into());
    c.refused(r#"names table "_sync_ops", which is internal to SQLite or sqlite-sync"#);
}

#[test]
fn sqlite_schema_as_a_table() {
    let c = case();
    c.forge(|b| b.ops[0].table = "sqlite_schema".into());
    c.refused(r#"names table "sqlite_schema", which is internal to SQLite or sqlite-sync"#);
}

/// Not a reason to refuse (DESIGN 3.8, 5.2): the columns the table has are written, the value
/// of the other waits with its op until the column is added.
#[test]
fn a_column_the_table_does_not_have_waits_for_it() {
    let c = case();
    c.forge(|b| b.ops[0].cells[3].0 = "due".into());
    let r = c.b.import(&c.path);
    assert_eq!((r.applied, r.waiting.as_str()), (5, r#"["todos.due"]"#));
    assert_eq!(c.b.dump("todos"), c.a.dump("todos"));
}

#[test]
fn names_with_quotes_semicolons_and_sql() {
    let c = case();
    c.forge(|b| b.ops[0].table = r#"todos"; DROP TABLE todos; --"#.into());
    let r = c.b.import(&c.path);
    assert_eq!(
        r.waiting, r#"["todos\"; DROP TABLE todos; --"]"#,
        "kept, never run"
    );
    assert_eq!(
        c.b.dump("todos")[1],
        c.a.dump("todos")[1],
        "todos is still there"
    );
    // a column name is never spliced into SQL: one the table does not have waits, as any
    let c = case();
    c.forge(|b| b.ops[0].cells[1].0 = r#"title" = 'x'; DELETE FROM todos; --"#.into());
    let r = c.b.import(&c.path);
    assert_eq!(
        r.waiting,
        r#"["todos.title\" = 'x'; DELETE FROM todos; --"]"#
    );
    let titles: Vec<Vec<rusqlite::types::Value>> = (c.b.dump("todos").into_iter())
        .map(|row| row[..2].to_vec())
        .collect();
    use rusqlite::types::Value::{Integer, Null, Text};
    assert_eq!(
        titles,
        [
            vec![Integer(1), Null],
            vec![Integer(3), Text("rice".into())]
        ]
    );
}

/// Not a reason to refuse (DESIGN 5.2): the op waits, named, until the table's key agrees
/// (its writer declares the key as this device does: the op is said to be of an earlier key).
#[test]
fn a_key_that_is_not_the_primary_key_waits() {
    let c = case();
    c.forge(|b| b.ops[0].key[0].0 = "title".into());
    let r = c.b.import(&c.path);
    assert!(
        r.otherwise.contains(
            r#"table \"todos\": ops written under PRIMARY KEY (title), which their writer no longer declares"#
        ),
        "{}",
        r.otherwise
    );
    let waiting: i64 = (c.b.conn())
        .query_row("SELECT ops FROM sync_waiting", [], |r| r.get(0))
        .unwrap();
    assert_eq!(waiting, 1);
}

#[test]
fn a_column_written_twice() {
    let c = case();
    c.forge(|b| {
        let again = b.ops[0].cells[1].clone();
        b.ops[0].cells.push(again);
    });
    c.refused("bad op form: a column named twice");
}

// --- values that are not SQLite values ---

#[test]
fn a_value_that_is_an_array() {
    let c = case();
    c.forge(|b| b.ops[0].cells[1].1 = M::Array(vec![M::Int(1)]));
    c.refused("unreadable value (not an SQLite value)");
}

/// Format 5 names devices by number and states deps against the deps before them: a stream
/// that names a device it never named, leaves out a device it did not inherit, or leaves out
/// the link of an entry it never stated is refused, naming what is wrong.
#[test]
fn short_names_that_name_nothing() {
    // a writes, b imports and writes one op whose deps name a's op 5; b's bundles then go to
    // a fresh device
    let setup = || {
        let first = case();
        first.b.import(&first.path);
        exec(
            first.b.conn(),
            "INSERT INTO todos VALUES (9, 'bread', 0, NULL)",
        );
        let c = Case {
            a: first.b,
            b: Device::new("c", TODOS),
            path: first.path,
        };
        let bundle = c.a.bundle_for(None);
        // b's op alone: b is device 0 of the stream; its deps name a (a new device, 1)
        let b_id: Vec<u8> = (0..32)
            .step_by(2)
            .map(|i| u8::from_str_radix(&c.a.id()[i..i + 2], 16).unwrap())
            .collect();
        bundle::forge(&bundle, |b| b.ops.retain(|op| op.device == b_id));
        (c, bundle)
    };
    type Edit = fn(&[u8], &[u8]) -> Vec<u8>;
    let edits: [(Edit, &str); 3] = [
        (
            |a, _| [&[0x00, 0x01][..], a, &[0x05, 0xc0]].concat(),
            "deps name op 5 of device 1 without its link",
        ),
        (
            |a, link| [&[0x01, 0x01, 0x01][..], a, &[0x05, 0xc4, 0x10], link].concat(),
            "deps leave out device 1, not inherited",
        ),
        (
            |_, link| [&[0x00, 0x01, 0x07, 0x05, 0xc4, 0x10][..], link].concat(),
            "names device 7, which is not named before it",
        ),
    ];
    for (edit, expected) in edits {
        let (c, bundle) = setup();
        let dep = bundle::read(&bundle).ops[0].deps.array()[0]
            .array()
            .to_vec();
        let (M::Bin(a_id), M::Bin(link)) = (&dep[0], &dep[2]) else {
            panic!("a dep: {dep:?}")
        };
        let a = [&[0xc4, 0x10][..], a_id].concat();
        let stated = [&[0x00, 0x01][..], &a, &[0x05, 0xc4, 0x10], link].concat();
        bundle::replace_in_stream(&bundle, &stated, &edit(&a, link));
        c.refused_at(&bundle, expected);
    }
}

/// A value whose header claims 4 GiB, followed by a few bytes: refused as truncated, without
/// making room for 4 GiB first.
#[test]
fn a_value_claiming_four_gigabytes() {
    let c = case();
    c.forge(|b| b.ops[0].cells[1].1 = M::Str("TITLE_MARK".into()));
    bundle::replace_in_stream(&c.path, b"\xaaTITLE_MARK", b"\xdb\xff\xff\xff\xff");
    c.refused("op 1: unreadable value (truncated)");
}

#[test]
fn text_that_is_not_utf8() {
    let c = case();
    c.forge(|b| b.ops[0].cells[1].1 = M::Str("milk".into()));
    // the forged stream spells "milk" as a str; make its bytes invalid UTF-8
    bundle::replace_in_stream(&c.path, b"\xa4milk", b"\xa4mil\xff");
    c.refused("unreadable value (TEXT is not UTF-8)");
}

#[test]
fn an_op_head_with_unknown_flags() {
    let c = case();
    c.forge(|_| {});
    // the first op starts the stream: head 15 (device, seq, deps, new form)
    let conn = rusqlite::Connection::open(&c.path).unwrap();
    conn.execute_batch(
        "UPDATE chunks SET body = CAST(x'4f' || substr(body, 2) AS BLOB) WHERE n = 1",
    )
    .unwrap();
    c.refused("op 1: bad op head 79");
}

// --- a file that holds more than a bundle ---

#[test]
fn a_bundle_with_a_view() {
    let c = case();
    c.edit_file("CREATE VIEW v AS SELECT * FROM manifest");
    c.refused("expected exactly the tables chunks and manifest, found [table chunks, table manifest, view v]");
}

#[test]
fn a_bundle_with_a_trigger_never_runs_it() {
    let c = case();
    c.edit_file(
        "CREATE TABLE ran(x);
         CREATE TRIGGER t AFTER UPDATE ON manifest BEGIN INSERT INTO ran VALUES (1); END;",
    );
    c.refused("found [table chunks, table manifest, table ran, trigger t]");
    let conn = rusqlite::Connection::open(&c.path).unwrap();
    let ran: i64 = conn
        .query_row("SELECT count(*) FROM ran", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ran, 0);
}

#[test]
fn a_bundle_with_an_extra_table_or_index() {
    let c = case();
    c.edit_file("CREATE TABLE extra(x)");
    c.refused("found [table chunks, table extra, table manifest]");
    let c = case();
    c.edit_file("CREATE INDEX chunks_ops ON chunks(ops)");
    c.refused("found [index chunks_ops, table chunks, table manifest]");
}

// --- not errors ---

/// Also: the forged copy spells its ops in another compact form (no aliases) than the original,
/// so the original's ops are duplicates by their canonical encoding, not their stored bytes.
#[test]
fn a_gap_in_a_devices_ops_waits_as_pending() {
    let c = case();
    c.forge(|b| {
        b.ops.remove(1);
    });
    let result = c.b.import(&c.path);
    assert_eq!((result.applied, result.pending), (1, 3));
    let full = c.a.bundle_for(None);
    let result = c.b.import(&full);
    assert_eq!((result.pending, result.duplicates), (0, 4));
    assert_eq!(c.b.dump("todos"), c.a.dump("todos"));
}
