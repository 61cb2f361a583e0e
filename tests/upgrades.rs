//! Upgrades: a database and a bundle made by each earlier release (tests/fixtures/release-*,
//! made by tests/fixtures/make.sh) open, import and sync with this build; and a build refuses a
//! newer bundle or database, naming the release to upgrade to.

mod common;

use common::{exec, refusal, rows, tempdir::Dir, Device};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// The tables of the releases' fixtures (tests/fixtures/make.sh), synced.
const TABLES: &str = "
    CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER DEFAULT 0,
                       due REAL, data BLOB);
    CREATE TABLE people(id TEXT PRIMARY KEY, email TEXT UNIQUE);
    SELECT sync_enable('todos'), sync_enable('people');";

fn releases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no release fixtures");
    found
}

/// What the release's database shows, as tests/fixtures/shows.sql reads it (shows.txt).
fn shows(conn: &Connection) -> String {
    let sql = include_str!("fixtures/shows.sql");
    let lines: Vec<(String,)> = rows(conn, sql.trim().trim_end_matches(';'));
    lines.into_iter().map(|l| l.0 + "\n").collect()
}

#[test]
fn a_database_and_a_bundle_of_every_earlier_release_open_and_sync() {
    for release in releases() {
        let expected = std::fs::read_to_string(release.join("shows.txt")).unwrap();
        // the release's database, copied (so it forks to a new id as it loads: a copy)
        let dir = Dir::new();
        let path = dir.path().join("old.db");
        std::fs::copy(release.join("device.db"), &path).unwrap();
        let old = Connection::open(&path).unwrap();
        common::load(&old);
        exec(&old, "PRAGMA foreign_keys = ON");
        assert_eq!(shows(&old), expected, "{release:?}");
        let held: i64 = old
            .query_row("SELECT sync_status() ->> 'held_out_rows'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(held, 1);
        // its bundle imports into a new device, which then shows the same
        let fresh = Device::new("fresh", &format!("PRAGMA foreign_keys = ON; {TABLES}"));
        let bundle = release.join("device.bundle");
        let imported = fresh.import(&bundle);
        assert_eq!(imported.pending, 0);
        assert_eq!(shows(fresh.conn()), expected, "{release:?}");
        // the old database writes on, and the new device takes it
        exec(
            &old,
            "UPDATE people SET email = 'other@example.com' WHERE id = 'p-a';",
        );
        let out = dir.path().join("next.bundle");
        old.query_row(
            "SELECT sync_bundle_out(NULL, ?1)",
            [out.to_str().unwrap()],
            |_| Ok(()),
        )
        .unwrap();
        fresh.import(&out);
        assert!(
            shows(fresh.conn()).contains("row|p-b|same@example.com")
                && !shows(fresh.conn()).contains("constraint"),
            "the held-out row came back"
        );
        // and the old database takes the new device's bundle (where its own write frees the row)
        let back = fresh.bundle_for(None);
        old.query_row(
            "SELECT sync_bundle_in(?1)",
            [back.to_str().unwrap()],
            |_| Ok(()),
        )
        .unwrap();
        assert_eq!(shows(fresh.conn()), shows(&old));
        // its imports moved it to this build's layout, and the live sets they settled name
        // their columns by id; those stored by the release are read as they are
        let (format, by): (i64, String) = old
            .query_row(
                "SELECT format, (SELECT value FROM _sync_state WHERE name = 'layout_by')
                 FROM _sync_device",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(format, 5);
        let this_build = format!("{} (git ", env!("CARGO_PKG_VERSION"));
        assert!(by.starts_with(&this_build), "{by}");
        let by_id: i64 = old
            .query_row(
                "SELECT count(*) FROM _sync_rows WHERE length(live) > 0
                   AND instr(live, CAST('email' AS BLOB)) = 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(by_id > 0, "no live set names its columns by id");
    }
}

/// A device whose latest bundle was of an older format (release 0.1.0 writes format 4) gets its
/// bundles in that format, which it reads; a device not heard from gets the current one.
#[test]
fn bundles_for_a_device_of_an_older_release_are_in_its_format() {
    let release = releases()
        .into_iter()
        .find(|r| r.ends_with("release-0.1.0"))
        .expect("release 0.1.0's fixtures");
    let fresh = Device::new("fresh", TABLES);
    let old_bundle = release.join("device.bundle");
    fresh.import(&old_bundle);
    exec(
        fresh.conn(),
        "INSERT INTO todos(id, title) VALUES ('t-new', 'new')",
    );
    let format = |path: &std::path::Path| -> i64 {
        let conn = Connection::open(path).unwrap();
        conn.query_row("SELECT format FROM manifest", [], |r| r.get(0))
            .unwrap()
    };
    let old_id: String = fresh
        .conn()
        .query_row(
            "SELECT sync_bundle_info(?1) ->> '$.source_device_id'",
            [old_bundle.to_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    let out = |peer: Option<&str>| {
        let path = fresh
            .db
            .dir
            .path()
            .join(format!("{}.bundle", peer.is_some()));
        let _ = std::fs::remove_file(&path);
        fresh
            .conn()
            .query_row(
                "SELECT sync_bundle_out(?1, ?2)",
                rusqlite::params![peer, path.to_str().unwrap()],
                |_| Ok(()),
            )
            .unwrap();
        path
    };
    assert_eq!(format(&out(Some(&old_id))), 4, "for the 0.1.0 device");
    assert_eq!(format(&out(None)), 5, "for a device not heard from");
    // the format 4 bundle imports as any other (after what it follows)
    let other = Device::new("other", TABLES);
    other.import(&old_bundle);
    let result = other.import(&out(Some(&old_id)));
    assert_eq!((result.applied, result.pending), (1, 0));
    assert_eq!(shows(other.conn()), shows(fresh.conn()));
    // release 0.1.0 refuses a bundle holding a compaction point: none is written
    let refused = refusal(fresh.conn(), "SELECT sync_compact()", []);
    assert!(
        refused.contains(&format!(
            "device {old_id} last sent a bundle of release 0.1.0"
        )),
        "{refused}"
    );
    assert!(refused.contains("upgrade it"), "{refused}");
}

#[test]
fn a_newer_bundle_is_refused_naming_the_release_to_upgrade_to() {
    let a = Device::new(
        "a",
        "CREATE TABLE t(id TEXT PRIMARY KEY); SELECT sync_enable('t');",
    );
    let b = Device::new(
        "b",
        "CREATE TABLE t(id TEXT PRIMARY KEY); SELECT sync_enable('t');",
    );
    exec(a.conn(), "INSERT INTO t VALUES ('x')");
    let path = a.bundle_for(None);
    // a later release's bundle: another format, and its version in `writer`
    let edit = Connection::open(&path).unwrap();
    exec(&edit, "UPDATE manifest SET format = 9, writer = '7.1.0'");
    drop(edit);
    let before = common::snapshot(b.conn());
    let e = b.try_import(&path).unwrap_err();
    assert!(
        e.contains("unknown format version 9")
            && e.contains("upgrade the extension on this device to 7.1.0 or later"),
        "{e}"
    );
    assert_eq!(common::snapshot(b.conn()), before);
    let e = common::refusal(
        b.conn(),
        "SELECT sync_bundle_info(?1)",
        [path.to_str().unwrap()],
    );
    assert!(e.contains("7.1.0"), "{e}");
}

#[test]
fn a_newer_database_is_refused_naming_the_release_to_upgrade_to() {
    let a = Device::new(
        "a",
        "CREATE TABLE t(id TEXT PRIMARY KEY); SELECT sync_enable('t');",
    );
    // what a later release that changed the layout leaves
    exec(
        a.conn(),
        "UPDATE _sync_device SET format = format + 1;
         UPDATE _sync_state SET value = '9.0.0' WHERE name = 'layout_by';",
    );
    let e = common::call(a.conn(), "SELECT sync_clock()").unwrap_err();
    assert!(
        e.contains("made by sqlite-sync 9.0.0") && e.contains("upgrade the extension to 9.0.0"),
        "{e}"
    );
}
