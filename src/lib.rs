//! sqlite-sync: a SQLite extension that lets disconnected devices share one database.
//!
//! The data's way: a write on an enabled table fires a trigger (`capture`), which appends an op
//! to the log (`log/`); `sync_bundle_out` packs ops a peer lacks into a file (`bundle/`, `op`,
//! `form`); `sync_bundle_in` checks a file whole and applies its ops in causal order (`apply/`),
//! settling each touched row by the merge rule (`merge/`) and keeping concurrent edits as
//! records (`conflicts`), which `sync_resolve` closes (`resolve`). This file registers the SQL
//! functions (and holds the two that need no stage: `sync_version`, `sync_debug`, and the
//! wrappers that hand the fork to the stages below it); it reads like the SQL reference in the
//! README.
//!
//! # Words used across the modules
//!
//! - **op**: one row change of one device (an insert, update or delete: `op::OpKind`),
//!   numbered by `seq` (1, 2, 3 … per device); its **order key** (Lamport time, device id, seq)
//!   orders all ops the same on every device.
//! - **device index** (`schema::DeviceIdx`): the small integer a database gives each device id
//!   it knows (`_sync_devices.idx`; this device is `SELF` = 1), never to be confused with the
//!   16-byte **device id** (`op::DeviceId`) that names the device everywhere; a **history** is
//!   one line of ops under one id (a copied database makes a second, apply/histories.rs), with
//!   an index of its own.
//! - **shape**: a table's column names and key, as one local op names them (`_sync_shapes`);
//!   **form**: an op's table, kind and names as it travels in a bundle or sits in the store of
//!   received ops (form.rs): names once, then only values.
//! - **context**: the ops an op had seen when it was written (a vector clock); stored as
//!   **change points**: from op `seq` of a device on, its clock holds `dep_seq` of `dep`.
//! - **epoch**: one row per import, from which a local op's Lamport time is derived.
//! - **link**: the first 16 bytes of an op's SHA-256 (`op::Hash`; "hash" in the metadata's
//!   columns and in comments means the link); each op names the link of the op before it on its
//!   device (**prev**), which makes each device's ops a hash chain (log/chain.rs).
//! - **pending**: a received op whose context has not all arrived; **applied** otherwise.
//! - **fold**: indexing by row this device's ops not yet in the row index (`folded` in
//!   `_sync_state`), as an import, `sync_resolve` and a fork do first; **settle**: bring a row (its table row, live set and conflict records) up to
//!   date after new ops; **touched**: the rows an import settles.
//! - **live write**: a write of a cell no op that follows it wrote again; a row's **live set**
//!   (merge/live.rs) is its ops with a live write and its top ops (merge/mod.rs); a **side** of
//!   a conflict is one of a cell's differing live writes.
//! - **tips**: per device, the last op an import applied (seq and Lamport time).

#![deny(unsafe_code)]

mod apply;
mod bundle;
mod capture;
mod compact;
mod conflicts;
#[allow(unsafe_code)] // the checked layer over the C API
mod db;
mod form;
mod hashed;
mod identity;
mod init;
mod log;
mod merge;
mod op;
mod resolve;
mod schema;
mod sql;
mod status;
mod value;

use std::ffi::{c_char, c_int};

use db::{register_function, Conn, Result, DETERMINISTIC, DIRECT_ONLY, INNOCUOUS};
use sqlite_loadable::ext::{sqlite3, sqlite3_api_routines};
use value::Value;

/// `sync_version()`: the extension's semver.
fn sync_version(_: &Conn, _: &[Value]) -> Result<Value> {
    Ok(Value::Text(env!("CARGO_PKG_VERSION").into()))
}

/// `sync_debug()`: version, git commit and build profile. `sync_debug('panic')` panics on
/// purpose, to prove that a panic becomes an SQL error and never reaches the host;
/// `sync_debug('panic after a write')` panics inside a savepoint after writing, to prove that
/// the write is rolled back and no transaction is left open.
fn sync_debug(conn: &Conn, args: &[Value]) -> Result<Value> {
    match args.first().and_then(Value::as_text) {
        Some("panic") => panic!("sync_debug('panic') was asked to panic"),
        // a write inside a savepoint, then a panic: the unwinding savepoint rolls back
        Some("panic after a write") => conn.savepoint("sync_debug", || {
            conn.exec("UPDATE main._sync_device SET format = -1", &[])?;
            panic!("sync_debug('panic after a write') was asked to panic")
        })?,
        _ => {}
    }
    Ok(Value::Text(format!(
        "sqlite-sync {} (git {}, {} build)",
        env!("CARGO_PKG_VERSION"),
        env!("SQLITE_SYNC_GIT"),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    )))
}

/// The functions that may find this database is a copy, and fork it first (identity.rs), get
/// the fork from here: it is the importer's work (apply/fork.rs), above their modules.
fn sync_init(conn: &Conn, args: &[Value]) -> Result<Value> {
    init::sync_init(conn, args, apply::fork)
}

/// `sync_enable` follows the columns added to synced tables first, filling them from what
/// received ops kept (apply/follow.rs): the importer's work too.
fn sync_enable(conn: &Conn, args: &[Value]) -> Result<Value> {
    capture::sync_enable(
        conn,
        args,
        apply::fork,
        (apply::follow_schema, apply::catch_up),
    )
}

fn sync_disable(conn: &Conn, args: &[Value]) -> Result<Value> {
    capture::sync_disable(conn, args, apply::fork)
}

fn sync_forget(conn: &Conn, args: &[Value]) -> Result<Value> {
    log::forgotten::sync_forget(conn, args, apply::fork)
}

fn sync_compact(conn: &Conn, args: &[Value]) -> Result<Value> {
    compact::sync_compact(conn, args, apply::fork)
}

fn sync_bundle_out(conn: &Conn, args: &[Value]) -> Result<Value> {
    bundle::out::sync_bundle_out(conn, args, apply::fork, apply::follow_schema)
}

/// `sync_folder_out(dir)`: a bundle of what any device a bundle came from lacks, as a new file
/// in a shared folder (bundle/folder.rs).
fn sync_folder_out(conn: &Conn, args: &[Value]) -> Result<Value> {
    let dir = bundle::folder::folder_arg(args)?;
    bundle::out::export(
        conn,
        apply::fork,
        apply::follow_schema,
        bundle::out::For::EveryPeer,
        bundle::out::To::Folder(dir),
    )
}

/// `sync_bundle_in`, which compacts at its end as the policy says (compact/mod.rs).
fn sync_bundle_in(conn: &Conn, args: &[Value]) -> Result<Value> {
    apply::sync_bundle_in(conn, args, compact::after_import)
}

/// `sync_folder_in`, likewise.
fn sync_folder_in(conn: &Conn, args: &[Value]) -> Result<Value> {
    apply::sync_folder_in(conn, args, compact::after_import)
}

/// Every SQL function: name, argument count, flags, implementation.
#[rustfmt::skip]
const FUNCTIONS: &[(&str, c_int, c_int, db::SqlFn)] = &[
    ("sync_version",    0, DETERMINISTIC | INNOCUOUS, sync_version),
    ("sync_debug",      0, INNOCUOUS,                 sync_debug),
    ("sync_debug",      1, DIRECT_ONLY,               sync_debug),
    ("sync_init",       0, DIRECT_ONLY,               sync_init),
    ("sync_device_id",  0, INNOCUOUS,                 init::sync_device_id),
    ("sync_enable",     1, DIRECT_ONLY,               sync_enable),
    ("sync_disable",    1, DIRECT_ONLY,               sync_disable),
    ("sync_clock",      0, INNOCUOUS,                 log::clock::sync_clock),
    ("sync_bundle_out", 1, DIRECT_ONLY,               sync_bundle_out),
    ("sync_bundle_out", 2, DIRECT_ONLY,               sync_bundle_out),
    ("sync_bundle_in",  1, DIRECT_ONLY,               sync_bundle_in),
    ("sync_bundle_info",1, DIRECT_ONLY,               bundle::inspect::sync_bundle_info),
    ("sync_folder_out", 1, DIRECT_ONLY,               sync_folder_out),
    ("sync_folder_in",  1, DIRECT_ONLY,               sync_folder_in),
    ("sync_folder_prune",1, DIRECT_ONLY,              bundle::folder::sync_folder_prune),
    ("sync_resolve",    2, DIRECT_ONLY,               resolve::sync_resolve),
    ("sync_fork",       0, DIRECT_ONLY,               apply::sync_fork),
    ("sync_compact",    0, DIRECT_ONLY,               sync_compact),
    ("sync_forget",     1, DIRECT_ONLY,               sync_forget),
    ("sync_status",     0, 0,                         status::sync_status),
    // helpers of the sync_log view
    ("sync_op_id",      2, DETERMINISTIC | INNOCUOUS, log::sync_op_id),
    ("sync_log_pk",    -1, DETERMINISTIC | INNOCUOUS, log::sync_log_pk),
    ("sync_log_values",-1, DETERMINISTIC | INNOCUOUS, log::sync_log_values),
    ("sync_log_op",     3, DETERMINISTIC | INNOCUOUS, log::sync_log_op),
];

#[allow(unsafe_code)]
fn register_all(db: *mut sqlite3) -> Result<()> {
    for &(name, n_args, flags, f) in FUNCTIONS {
        // SAFETY: `db` is the handle SQLite passed to the entry point.
        unsafe { register_function(db, name, n_args, flags, f)? };
    }
    // SAFETY: as above.
    unsafe { db::register_table(db, &conflicts::TABLE) }
}

/// The entry point SQLite finds for `.load ./dist/sync0`.
///
/// # Safety
/// Called by SQLite with a live connection and its API routines table.
#[allow(unsafe_code)]
#[no_mangle]
pub unsafe extern "C" fn sqlite3_sync_init(
    db: *mut sqlite3,
    err: *mut *mut c_char,
    api: *mut sqlite3_api_routines,
) -> c_int {
    if !db::install_api(api) {
        return db::refuse_second_library(api, err);
    }
    db::entry_result(
        || {
            register_all(db)?;
            // a copied database becomes a device of its own before anything writes to it
            identity::on_load(&db::entry_conn(db), apply::fork);
            Ok(())
        },
        err,
    )
}

/// The same entry point under the name SQLite derives from `libsqlite_sync.so`.
///
/// # Safety
/// As for [`sqlite3_sync_init`].
#[allow(unsafe_code)]
#[no_mangle]
pub unsafe extern "C" fn sqlite3_sqlitesync_init(
    db: *mut sqlite3,
    err: *mut *mut c_char,
    api: *mut sqlite3_api_routines,
) -> c_int {
    sqlite3_sync_init(db, err, api)
}
