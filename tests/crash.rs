//! Crashes: an import or an export killed with SIGKILL at random moments.
//!
//! `killed_imports_leave_the_database_before_or_after` runs `sync_bundle_in` in a child process
//! (this test binary again, running `child`) and kills it after a random delay, 25 times in
//! rollback-journal mode and 25 times in WAL mode (most kills land while it writes: a journal
//! or WAL with content is left behind, which the test counts). After each kill:
//! `PRAGMA integrity_check` is ok, every table equals its state before the import or after it,
//! and importing again gives the state after it.
//!
//! `killed_compactions_leave_the_database_before_or_after` does the same to a `sync_compact()`
//! that removes ops (below its floor, 6,000 updates other updates overwrote).
//!
//! `killed_exports_leave_no_bundle_or_a_whole_one` does the same to `sync_bundle_out`: the target
//! path then holds nothing or a bundle that imports whole; a killed export may leave its
//! temporary file beside the path, and the next export to that path removes it (but never the
//! locked temporary file of an export still running).

mod common;

use common::*;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KILLS_PER_MODE: u64 = 25;
const SCHEMA: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, title TEXT, n);
                      SELECT sync_enable('t');";

/// What the child does, from its environment: `SYNC_CRASH_DB`, `SYNC_CRASH_BUNDLE`,
/// `SYNC_CRASH_DO` (`in`, `out` or `compact`). Without them it does nothing.
#[test]
fn child() {
    let (Ok(db), Ok(bundle), Ok(what)) = (
        std::env::var("SYNC_CRASH_DB"),
        std::env::var("SYNC_CRASH_BUNDLE"),
        std::env::var("SYNC_CRASH_DO"),
    ) else {
        return;
    };
    let conn = Connection::open(db).unwrap();
    load(&conn);
    if what == "compact" {
        compact_removing(&conn);
        return;
    }
    let f = if what == "in" {
        "sync_bundle_in(?1)"
    } else {
        "sync_bundle_out(NULL, ?1)"
    };
    conn.query_row(&format!("SELECT {f}"), [bundle], |_| Ok(()))
        .unwrap();
}

/// `sync_compact()`: a floor op, and what it made dead removed (compact/mod.rs).
fn compact_removing(conn: &Connection) -> String {
    conn.query_row("SELECT sync_compact()", [], |r| r.get(0))
        .unwrap()
}

/// Runs `child` for `what` to its end, or kills it after `delay`.
fn run_child(db: &Path, bundle: &Path, what: &str, delay: Option<Duration>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--test-threads", "1"])
        .env("SYNC_CRASH_DB", db)
        .env("SYNC_CRASH_BUNDLE", bundle)
        .env("SYNC_CRASH_DO", what)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let Some(delay) = delay else {
        assert!(child.wait().unwrap().success());
        return;
    };
    std::thread::sleep(delay);
    let _ = child.kill(); // SIGKILL
    child.wait().unwrap();
}

fn open_checked(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    load(&conn);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    conn
}

/// Puts `from`'s content in `to`. The main file is written over in place: it keeps its inode,
/// so the database is still the file its device id lives in and does not fork when the
/// extension loads (a copy to a new file would: identity.rs).
fn copy_db(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let (f, t) = (with_suffix(from, suffix), with_suffix(to, suffix));
        if !suffix.is_empty() {
            let _ = std::fs::remove_file(&t);
        }
        if f.exists() {
            std::fs::copy(&f, &t).unwrap();
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

#[test]
fn killed_imports_leave_the_database_before_or_after() {
    let mut rng = Rng(7);
    for mode in ["DELETE", "WAL"] {
        let a = Device::new("a", SCHEMA);
        exec(
            a.conn(),
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 30000)
             INSERT INTO t SELECT i, 'title ' || i, i * 0.5 FROM c;
             UPDATE t SET n = -n WHERE id % 7 = 0;",
        );
        let bundle = a.bundle_for(None);
        // the importing device: its own rows, some of them the same as a's, in `mode`
        let b = Device::new("b", SCHEMA);
        exec(
            b.conn(),
            &format!(
                "PRAGMA journal_mode = {mode};
                 INSERT INTO t VALUES (1, 'b was here', 0), (40000, 'only on b', 1);"
            ),
        );
        let pristine = b.db.dir.path().join("pristine.db");
        exec(b.conn(), &format!("VACUUM INTO '{}'", pristine.display()));
        let work = b.db.dir.path().join("work.db");
        copy_db(&pristine, &work);
        // work.db is a copy: it forks when the extension first loads on it, and from then on
        // pristine.db holds its content (the pristine file itself is never opened with the
        // extension again)
        drop(open_checked(&work));
        if mode == "WAL" {
            exec(&open_checked(&work), "PRAGMA journal_mode = WAL");
        }
        copy_db(&work, &pristine);
        let before = whole_state(&open_checked(&work));
        // the whole import, timed, gives the state after it
        let start = Instant::now();
        run_child(&work, &bundle, "in", None);
        let full = start.elapsed();
        let after = whole_state(&open_checked(&work));
        assert_ne!(before, after);

        let kill = Kill {
            mode,
            work: &work,
            pristine: &pristine,
            bundle: &bundle,
            what: "in",
            full,
        };
        kill.until_mid_write(&mut rng, &before, &after, |conn, finished| {
            let retry = conn
                .query_row(
                    "SELECT sync_bundle_in(?1) ->> '$.skipped'",
                    [bundle.to_str().unwrap()],
                    |r| r.get::<_, bool>(0),
                )
                .unwrap();
            assert_eq!(retry, finished, "a finished import is skipped");
        });
    }
}

/// A child doing `what` on `work`, put back to `pristine` before each run; `full`: how long
/// the whole of it took.
struct Kill<'a> {
    mode: &'a str,
    work: &'a Path,
    pristine: &'a Path,
    bundle: &'a Path,
    what: &'a str,
    full: Duration,
}

impl Kill<'_> {
    /// Kills at random times until KILLS_PER_MODE / 2 of them landed while the child wrote
    /// (the machine's load moves where they land: a busy machine takes more kills), every one
    /// checked: the database is whole, and `before` or `after`; `retry(conn, finished)` does
    /// the work again, which gives `after`.
    fn until_mid_write(
        &self,
        rng: &mut Rng,
        before: &[String],
        after: &[String],
        retry: impl Fn(&Connection, bool),
    ) {
        let (mode, work) = (self.mode, self.work);
        let (mut mid_write, mut kills) = (0, 0);
        while kills < KILLS_PER_MODE || mid_write < KILLS_PER_MODE / 2 && kills < 4 * KILLS_PER_MODE
        {
            kills += 1;
            copy_db(self.pristine, work);
            let delay = Duration::from_micros(rng.below(self.full.as_micros() as u64 * 11 / 10));
            run_child(work, self.bundle, self.what, Some(delay));
            // killed mid-write: a rollback journal or WAL with content is left behind
            let left = |suffix| std::fs::metadata(with_suffix(work, suffix)).map_or(0, |m| m.len());
            mid_write += (left("-journal") > 0 || left("-wal") > 0) as u64;
            let conn = open_checked(work);
            let now = whole_state(&conn);
            let diff = |than: &[String]| -> Vec<String> {
                (now.iter().filter(|r| !than.contains(r)))
                    .chain(than.iter().filter(|r| !now.contains(r)))
                    .take(6)
                    .map(|r| r.chars().take(160).collect())
                    .collect()
            };
            assert!(
                now == before || now == after,
                "{mode}: after a kill at {delay:?} the database is neither before nor after: \
                 against before {:?}, against after {:?}",
                diff(before),
                diff(after)
            );
            retry(&conn, now == after);
            assert_eq!(whole_state(&conn), after, "{mode}: the retry completes");
        }
        assert!(
            mid_write >= KILLS_PER_MODE / 2,
            "{mode}: {} kills must land while the child writes ({mid_write} of {kills} did)",
            KILLS_PER_MODE / 2
        );
    }
}

/// A device that imported 18,000 ops of another, 6,000 of them updates that later updates
/// overwrote, removes those by compaction (every device it knows has them): killed at random
/// moments, it is left as before or after, and compacting again completes it.
#[test]
fn killed_compactions_leave_the_database_before_or_after() {
    let mut rng = Rng(13);
    let a = Device::new("a", SCHEMA);
    exec(
        a.conn(),
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 6000)
         INSERT INTO t SELECT i, 'title ' || i, i FROM c;
         UPDATE t SET n = n + 1;
         UPDATE t SET n = n + 1;",
    );
    // (in the default journal mode only: the import's test covers WAL, and CI's time is short)
    let mode = "DELETE";
    // b lives in work.db from the start (a copy would fork, and its former id, which says
    // nothing, would keep every op from being stable); pristine.db is its content, put
    // back over work.db in place before each run
    let work = a.db.dir.path().join(format!("work-{mode}.db"));
    let pristine = a.db.dir.path().join(format!("pristine-{mode}.db"));
    let b = Connection::open(&work).unwrap();
    load(&b);
    exec(
        &b,
        &format!("PRAGMA journal_mode = {mode}; SELECT sync_init(); {SCHEMA}"),
    );
    compacting_every(&b, Some(0)); // (the child compacts: the import must not have)
                                   // (written for b: a device takes the word of a writer that knew nothing of it on its own
                                   // ops no further than a peer confirmed them, log/stable.rs)
    let b_id: String = b
        .query_row("SELECT sync_device_id()", [], |r| r.get(0))
        .unwrap();
    let bundle = a.db.dir.path().join("for-b.bundle");
    a.conn()
        .query_row(
            "SELECT sync_bundle_out(?1, ?2)",
            [&b_id, bundle.to_str().unwrap()],
            |_| Ok(()),
        )
        .unwrap();
    b.query_row(
        "SELECT sync_bundle_in(?1)",
        [bundle.to_str().unwrap()],
        |_| Ok(()),
    )
    .unwrap();
    // (what the child sets first, set here: the state before is the state with it)
    exec(&b, &format!("VACUUM INTO '{}'", pristine.display()));
    drop(b);
    let before = whole_state(&open_checked(&work));
    let start = Instant::now();
    run_child(&work, &bundle, "compact", None);
    let full = start.elapsed();
    let conn = open_checked(&work);
    let after = whole_state(&conn);
    let again = compact_removing(&conn);
    assert_eq!(again, r#"{"floor":null,"removed":0}"#);
    let now = whole_state(&conn);
    let changed: Vec<&String> = (now.iter().filter(|r| !after.contains(r)))
        .chain(after.iter().filter(|r| !now.contains(r)))
        .collect();
    assert!(changed.is_empty(), "compacting again changed {changed:?}");
    let ops: i64 = conn
        .query_row("SELECT count(*) FROM sync_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ops, 12001, "the inserts, the last updates and the floor op");
    drop(conn);
    let kill = Kill {
        mode,
        work: &work,
        pristine: &pristine,
        bundle: &bundle,
        what: "compact",
        full,
    };
    kill.until_mid_write(&mut rng, &before, &after, |conn, _| {
        compact_removing(conn);
    });
}

#[test]
fn killed_exports_leave_no_bundle_or_a_whole_one() {
    let mut rng = Rng(11);
    let a = Device::new("a", SCHEMA);
    exec(
        a.conn(),
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 30000)
         INSERT INTO t SELECT i, 'title ' || i, i FROM c;",
    );
    let dir = a.db.dir.path().to_path_buf();
    let start = Instant::now();
    run_child(&a.db.path(), &dir.join("timed.bundle"), "out", None);
    let full = start.elapsed();
    let mut outcomes = [0; 2];
    for i in 0..KILLS_PER_MODE {
        let path = dir.join(format!("killed-{i}.bundle"));
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 * 11 / 10));
        run_child(&a.db.path(), &path, "out", Some(delay));
        if path.exists() {
            let b = Device::new("b", SCHEMA);
            assert_eq!(
                b.import(&path).applied,
                30000,
                "a bundle at the path is whole"
            );
            outcomes[1] += 1;
        } else {
            outcomes[0] += 1;
        }
    }
    assert!(
        outcomes[0] > 0,
        "some exports were killed before the rename: {outcomes:?}"
    );
    // the next export to a path removes the temporary files killed exports left beside it
    let temps = |i: u64| -> Vec<PathBuf> {
        let prefix = format!("killed-{i}.bundle.tmp-");
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            })
            .collect()
    };
    let left: Vec<u64> = (0..KILLS_PER_MODE)
        .filter(|&i| !temps(i).is_empty())
        .collect();
    assert!(
        !left.is_empty(),
        "some killed exports left a temporary file"
    );
    for &i in &left {
        a.bundle_to(&dir.join(format!("killed-{i}.bundle")));
        assert!(
            temps(i).is_empty(),
            "export {i}: its temporary file is gone"
        );
    }
}

/// The temporary file of an export still running (its lock held) is not taken for abandoned.
#[test]
fn a_running_exports_temporary_file_is_left_alone() {
    let a = Device::new("a", SCHEMA);
    exec(a.conn(), "INSERT INTO t VALUES (1, 'one', 1)");
    let target = a.db.dir.path().join("x.bundle");
    let running =
        a.db.dir
            .path()
            .join(format!("x.bundle.tmp-{}", "0123456789abcdef".repeat(2)));
    let abandoned =
        a.db.dir
            .path()
            .join(format!("x.bundle.tmp-{}", "fedcba9876543210".repeat(2)));
    let not_ours = a.db.dir.path().join("x.bundle.tmp-notes.txt");
    for p in [&running, &abandoned, &not_ours] {
        std::fs::write(p, b"").unwrap();
    }
    let lock = std::fs::File::open(&running).unwrap();
    lock.lock().unwrap();
    a.bundle_to(&target);
    assert!(running.exists() && not_ours.exists() && !abandoned.exists());
    drop(lock);
    a.bundle_to(&target);
    assert!(!running.exists() && not_ours.exists());
}
