//! The checked layer over SQLite's C API: the only module (with the entry point in `lib.rs`) that
//! holds `unsafe` code (the crate denies it everywhere else).
//!
//! - `conn.rs`: `Conn`, a connection borrowed from the host for one call; `OwnedConn`, one this
//!   extension opened (a bundle file); savepoints; the trigger switch.
//! - `stmt.rs`: `Stmt<'c>`, a prepared statement that cannot outlive its connection `'c`; `Row`,
//!   the current row of a stepping statement, the only place columns are read; `Statements`,
//!   statements kept for reuse by their SQL text; `padded.rs`: statements of many rows of
//!   parameters, prepared in a few sizes.
//! - `function.rs`: SQL functions registered with SQLite, and the entry point's result;
//!   `vtab.rs`: read-only eponymous virtual tables whose rows a Rust function gives.
//!
//! Invariants: every SQLite return code becomes a `Result` whose `Error` keeps SQLite's result
//! code and message; every prepared statement is finalized when its `Stmt` drops, and cannot be
//! used after its connection is gone; a column is read only from the row a step returned, and
//! not after the statement stepped again; every SQL function callback catches panics and reports
//! them as an SQL error, so nothing here can unwind into, or abort, the host process. Callers
//! above this module never see a raw pointer.

use sqlite_loadable::ext::sqlite3_api_routines;
use std::ffi::c_int;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

const SQLITE_OK: c_int = 0;
const SQLITE_ERROR: c_int = 1;
const SQLITE_CONSTRAINT: c_int = 19;
const SQLITE_ROW: c_int = 100;
const SQLITE_DONE: c_int = 101;
const SQLITE_INTEGER: c_int = 1;
const SQLITE_FLOAT: c_int = 2;
const SQLITE_TEXT: c_int = 3;
const SQLITE_BLOB: c_int = 4;
const SQLITE_UTF8: c_int = 1;

/// The routines table SQLite hands to the entry point. Loadable extensions must reach every API
/// routine through it (they are not linked against libsqlite3).
static API: AtomicPtr<sqlite3_api_routines> = AtomicPtr::new(ptr::null_mut());

/// Records the host's routines table. Called by the entry point before anything else. Returns
/// false, recording nothing, where another SQLite library of this process loaded the extension
/// first (apsw and sqlean.py, say, each with its own SQLite): one table serves every call, and
/// the first library's connections would call the second's routines with their handles.
///
/// # Safety
/// `api` must be the pointer SQLite passed to the extension entry point.
pub unsafe fn install_api(api: *mut sqlite3_api_routines) -> bool {
    if !api.is_null() {
        let first = API.compare_exchange(ptr::null_mut(), api, Ordering::AcqRel, Ordering::Acquire);
        if first.is_err_and(|held| held != api) {
            return false;
        }
        sqlite_loadable::ext::faux_sqlite_extension_init2(api);
    }
    function::quiet_panics();
    true
}

fn api() -> &'static sqlite3_api_routines {
    let p = API.load(Ordering::Acquire);
    assert!(!p.is_null(), "sqlite-sync: SQLite API table not installed");
    // SAFETY: the host keeps its routines table alive for as long as the extension is loaded.
    unsafe { &*p }
}

/// Calls one routine of the host's table; a routine the host lacks is a panic, which the callback
/// guard turns into an SQL error.
macro_rules! sqlite {
    ($name:ident ( $($arg:expr),* $(,)? )) => {
        (crate::db::api().$name.expect(concat!("host SQLite lacks sqlite3_", stringify!($name))))($($arg),*)
    };
}

mod conn;
mod function;
mod padded;
mod stmt;
mod vtab;

pub use conn::{Conn, ForeignKeysOff, OpenMode, OwnedConn, TriggersOff};
pub use function::{entry_conn, entry_result, refuse_second_library, register_function, SqlFn};
pub use function::{DETERMINISTIC, DIRECT_ONLY, INNOCUOUS};
pub use padded::{padded_rows, Padded};
pub use stmt::{Row, Statements, Stmt};
pub use vtab::{register_table, TableDef};

/// An error: SQLite's result code (`SQLITE_ERROR` for the extension's own errors) and a message
/// written for the person at the terminal. (The message is boxed so that an error is no larger
/// than a `Value`, and every `Result<Value>` stays as small as a `Value`.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: c_int,
    pub message: Box<str>,
}

impl Error {
    /// The extension's own error (`SQLITE_ERROR`).
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            code: SQLITE_ERROR,
            message: message.into().into_boxed_str(),
        }
    }

    /// The same error (and result code), its message after `what: `.
    pub fn about(self, what: &str) -> Error {
        Error {
            code: self.code,
            message: format!("{what}: {}", self.message).into_boxed_str(),
        }
    }

    /// Whether the error is of the database rather than of what was asked of it: busy or locked
    /// by another connection, read-only, full, out of memory, interrupted. Another call may
    /// succeed, but not another argument.
    pub fn is_of_the_database(&self) -> bool {
        const BUSY: c_int = 5;
        const LOCKED: c_int = 6;
        const NOMEM: c_int = 7;
        const READONLY: c_int = 8;
        const INTERRUPT: c_int = 9;
        const FULL: c_int = 13;
        matches!(
            self.code & 0xff,
            BUSY | LOCKED | NOMEM | READONLY | INTERRUPT | FULL
        )
    }

    /// Whether another connection held the database (busy or locked).
    pub fn is_busy(&self) -> bool {
        const BUSY: c_int = 5;
        const LOCKED: c_int = 6;
        matches!(self.code & 0xff, BUSY | LOCKED)
    }

    /// Whether SQLite refused a write on a constraint (UNIQUE, CHECK, NOT NULL, FOREIGN KEY,
    /// ...), whether or not extended result codes are on.
    pub fn is_constraint(&self) -> bool {
        self.code & 0xff == SQLITE_CONSTRAINT
    }

    /// Whether SQLite refused a write because another row holds its value under a UNIQUE
    /// constraint, a unique index or the PRIMARY KEY (extended result codes, which this
    /// extension's errors always carry).
    pub fn is_unique(&self) -> bool {
        const UNIQUE: c_int = SQLITE_CONSTRAINT | (8 << 8);
        const PRIMARY_KEY: c_int = SQLITE_CONSTRAINT | (6 << 8);
        self.code == UNIQUE || self.code == PRIMARY_KEY
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_is_no_larger_than_a_value() {
        use std::mem::size_of;
        assert!(size_of::<super::Error>() <= size_of::<crate::value::Value>());
        assert_eq!(
            size_of::<super::Result<crate::value::Value>>(),
            size_of::<crate::value::Value>()
        );
    }
}
