//! Connections: one the host lends for a call (`Conn`), one this extension opens (`OwnedConn`),
//! and what is done on a whole connection: savepoints, the trigger switch, its state.
//!
//! Invariant: a savepoint opened here is released or rolled back before its call returns, also
//! when its body fails or panics; an `OwnedConn` is closed exactly once.

use crate::hashed::HashMap;
use sqlite_loadable::ext::{sqlite3, sqlite3_stmt};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::mem::ManuallyDrop;
use std::ptr;

use super::{Error, Result, Stmt, SQLITE_OK};
use crate::value::Value;

/// A connection handle borrowed from the host for the length of one call. It does not own (or
/// close) the connection.
pub struct Conn {
    pub(super) db: *mut sqlite3,
    /// The statements `exec_kept` prepared, by their static SQL text's address and length;
    /// finalized when the `Conn` drops (at the end of the call)
    kept: RefCell<HashMap<(usize, usize), *mut sqlite3_stmt>>,
    /// The statements `cached` prepared, by their SQL text, made at run time; finalized with
    /// the others
    cached: RefCell<HashMap<String, *mut sqlite3_stmt>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        let cached = self.cached.get_mut().drain().map(|(_, stmt)| stmt);
        for stmt in self
            .kept
            .get_mut()
            .drain()
            .map(|(_, stmt)| stmt)
            .chain(cached)
        {
            // SAFETY: each kept statement is live, not running, and finalized exactly once,
            // before the connection closes (an `OwnedConn` closes with close_v2, which waits
            // for its statements)
            unsafe { sqlite!(finalize(stmt)) };
        }
    }
}

impl Conn {
    /// The connection `db` (borrowed: it is not closed when the `Conn` drops).
    pub(super) fn of(db: *mut sqlite3) -> Conn {
        Conn {
            db,
            kept: RefCell::new(HashMap::default()),
            cached: RefCell::new(HashMap::default()),
        }
    }

    /// The error of the last failed call on this connection: its result code and message.
    pub(super) fn error(&self, doing: &str) -> Error {
        // SAFETY: `db` is the live handle SQLite gave us; errmsg returns a NUL-terminated string
        // owned by SQLite, copied before any other call.
        let (code, msg) = unsafe {
            (
                sqlite!(extended_errcode(self.db)),
                CStr::from_ptr(sqlite!(errmsg(self.db))),
            )
        };
        // (SQLITE_READONLY: which of the two it is, and what to do about it)
        let advice = match (code, code & 0xff == 8 && self.is_readonly()) {
            (_, true) => {
                " (the database is open read-only here: call it from a connection that can \
                 write)"
            }
            (8, false) => {
                // (the plain code: a moved or unrecoverable file has its own)
                " (PRAGMA query_only is ON on this connection: run PRAGMA query_only = OFF \
                 first, or call it from another connection)"
            }
            _ => "",
        };
        Error {
            code,
            message: format!("{doing}: {}{advice}", msg.to_string_lossy()).into_boxed_str(),
        }
    }

    /// Prepares one statement. `sql` must hold exactly one statement.
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>> {
        let mut stmt: *mut sqlite3_stmt = ptr::null_mut();
        let len = c_int::try_from(sql.len()).map_err(|_| Error::new("SQL text too long"))?;
        // SAFETY: the SQL buffer outlives the call; `stmt` receives an owned statement or NULL.
        let rc = unsafe {
            sqlite!(prepare_v2(
                self.db,
                sql.as_ptr() as *const c_char,
                len,
                &mut stmt,
                ptr::null_mut()
            ))
        };
        if rc != SQLITE_OK {
            return Err(self.error("SQL error"));
        }
        Ok(Stmt::new(self, stmt))
    }

    /// Runs a statement that returns no rows we need, binding `params` in order.
    pub fn exec(&self, sql: &str, params: &[Value]) -> Result<()> {
        self.prepare(sql)?.execute(params)
    }

    /// Runs `exec`'s statement of static text, prepared once per call: for the small statements
    /// an import runs once per op or per device.
    pub fn exec_kept(&self, sql: &'static str, params: &[Value]) -> Result<()> {
        self.kept(sql)?.execute(params)
    }

    /// Runs `query_row`'s query of static text, prepared once per call (as `exec_kept`).
    pub fn query_row_kept(
        &self,
        sql: &'static str,
        params: &[Value],
    ) -> Result<Option<Vec<Value>>> {
        let mut stmt = self.kept(sql)?;
        stmt.bind_all(params)?;
        let row = stmt
            .step()
            .and_then(|row| row.map(|row| row.values()).transpose());
        stmt.reset();
        row
    }

    /// The statement of `sql`, text made at run time, prepared on its first use in this call
    /// and reset: for one run many times in a call (a local op read by seq). It stays kept, as
    /// `kept`'s do; a use must not overlap another use of the same text.
    pub fn cached(&self, sql: &str) -> Result<ManuallyDrop<Stmt<'_>>> {
        let found = self.cached.borrow().get(sql).copied();
        let raw = match found {
            Some(raw) => raw,
            None => {
                let raw = self.prepare(sql)?.into_raw();
                self.cached.borrow_mut().insert(sql.to_string(), raw);
                raw
            }
        };
        let mut stmt = ManuallyDrop::new(Stmt::new(self, raw));
        stmt.reset();
        Ok(stmt)
    }

    /// The statement of static text `sql`, prepared on its first use in this call. It stays
    /// kept: it is finalized with the `Conn`, never by the returned handle.
    fn kept(&self, sql: &'static str) -> Result<ManuallyDrop<Stmt<'_>>> {
        let key = (sql.as_ptr() as usize, sql.len());
        let found = self.kept.borrow().get(&key).copied();
        let raw = match found {
            Some(raw) => raw,
            None => {
                let raw = self.prepare(sql)?.into_raw();
                self.kept.borrow_mut().insert(key, raw);
                raw
            }
        };
        Ok(ManuallyDrop::new(Stmt::new(self, raw)))
    }

    /// Whether no transaction is open on this connection.
    pub fn is_autocommit(&self) -> bool {
        // SAFETY: `db` is the live handle SQLite gave us.
        unsafe { sqlite!(get_autocommit(self.db)) != 0 }
    }

    /// Whether this connection holds a write transaction on `main` (it has written, or began
    /// with BEGIN IMMEDIATE/EXCLUSIVE), so what it wrote is not committed yet.
    pub fn in_write_transaction(&self) -> bool {
        const SQLITE_TXN_WRITE: c_int = 2;
        // SAFETY: `db` is the live handle SQLite gave us; the schema name is NUL-terminated.
        unsafe { sqlite!(txn_state(self.db, c"main".as_ptr())) == SQLITE_TXN_WRITE }
    }

    /// How many rows this connection has inserted, updated or deleted since it opened: unchanged
    /// means it wrote nothing in between.
    pub fn total_changes(&self) -> i64 {
        // SAFETY: `db` is the live handle SQLite gave us.
        i64::from(unsafe { sqlite!(total_changes(self.db)) })
    }

    /// The longest string or BLOB this connection accepts (`SQLITE_LIMIT_LENGTH`), in bytes.
    pub fn length_limit(&self) -> usize {
        const SQLITE_LIMIT_LENGTH: c_int = 0;
        // SAFETY: `db` is the live handle SQLite gave us; -1 reads the limit without changing it.
        let limit = unsafe { sqlite!(limit(self.db, SQLITE_LIMIT_LENGTH, -1)) };
        usize::try_from(limit).unwrap_or(0)
    }

    /// Whether the main database is open read-only.
    pub fn is_readonly(&self) -> bool {
        // SAFETY: `db` is the live handle SQLite gave us; the schema name is NUL-terminated.
        unsafe { sqlite!(db_readonly(self.db, c"main".as_ptr())) == 1 }
    }

    /// The path of the file behind the main database; None for an in-memory or temporary one.
    pub fn main_file(&self) -> Option<String> {
        // SAFETY: `db` is the live handle SQLite gave us; the schema name is NUL-terminated and
        // the returned string (owned by SQLite, NULL or NUL-terminated) is copied at once.
        let name = unsafe { sqlite!(db_filename(self.db, c"main".as_ptr())) };
        if name.is_null() {
            return None;
        }
        // SAFETY: not NULL, so a NUL-terminated string owned by SQLite.
        let path = unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned();
        (!path.is_empty()).then_some(path)
    }

    /// The collating sequence a column of a `main` table compares text with (`BINARY` unless
    /// declared otherwise).
    pub fn column_collation(&self, table: &str, column: &str) -> Result<String> {
        let c = |s: &str| CString::new(s).map_err(|_| Error::new("name holds a NUL character"));
        let (table_c, column_c) = (c(table)?, c(column)?);
        let mut collation: *const c_char = ptr::null();
        // SAFETY: `db` is the live handle SQLite gave us; the names are NUL-terminated and
        // outlive the call; the out-pointers we do not need may be NULL; the collation name is
        // owned by SQLite and copied before any other call.
        let rc = unsafe {
            sqlite!(table_column_metadata(
                self.db,
                c"main".as_ptr(),
                table_c.as_ptr(),
                column_c.as_ptr(),
                ptr::null_mut(),
                &mut collation,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut()
            ))
        };
        if rc != SQLITE_OK {
            return Err(self.error("reading a column's collation"));
        }
        if collation.is_null() {
            return Ok("BINARY".into());
        }
        // SAFETY: not NULL, so a NUL-terminated string owned by SQLite.
        Ok(unsafe { CStr::from_ptr(collation) }
            .to_string_lossy()
            .into_owned())
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE on this connection.
    pub fn changes(&self) -> i64 {
        // SAFETY: `db` is the live handle SQLite gave us.
        unsafe { sqlite!(changes(self.db)) as i64 }
    }

    /// Runs an INSERT and returns the rowid of the row it inserted.
    pub fn insert(&self, sql: &str, params: &[Value]) -> Result<i64> {
        self.exec(sql, params)?;
        // SAFETY: `db` is the live handle SQLite gave us.
        Ok(unsafe { sqlite!(last_insert_rowid(self.db)) })
    }

    /// Runs a query and returns column 0 of its first row, or `None` when it returns no row.
    pub fn query_value(&self, sql: &str, params: &[Value]) -> Result<Option<Value>> {
        let mut stmt = self.prepare(sql)?;
        stmt.bind_all(params)?;
        stmt.step()?.map(|row| row.column(0)).transpose()
    }

    /// Runs a query and returns its first row, or `None` when it returns no row.
    pub fn query_row(&self, sql: &str, params: &[Value]) -> Result<Option<Vec<Value>>> {
        let mut stmt = self.prepare(sql)?;
        stmt.bind_all(params)?;
        stmt.step()?.map(|row| row.values()).transpose()
    }

    /// Runs `body` inside `SAVEPOINT name`: released when it succeeds, rolled back when it fails,
    /// so an error leaves the database as it was and no transaction open.
    pub fn savepoint<T>(&self, name: &str, body: impl FnOnce() -> Result<T>) -> Result<T> {
        self.exec(&format!("SAVEPOINT {name}"), &[])
            .map_err(in_a_statement_of_its_own_if)?;
        let mut undo = Undo {
            conn: self,
            name,
            armed: true,
        };
        // a RELEASE that fails (a commit refused as busy) must not leave the transaction open
        let result = body().and_then(|v| self.exec(&format!("RELEASE {name}"), &[]).map(|_| v));
        undo.armed = result.is_err();
        result
    }
}

/// SQLite refuses a savepoint while a statement of this connection writes (the function was
/// called from an INSERT or UPDATE, or from a trigger): say what to do instead.
fn in_a_statement_of_its_own_if(e: Error) -> Error {
    match e.message.contains("statements in progress") {
        true => in_a_statement_of_its_own(),
        false => e,
    }
}

/// The error of a call made inside a statement that writes, where it cannot run.
fn in_a_statement_of_its_own() -> Error {
    Error::new(
        "it cannot run inside a statement that writes (INSERT … SELECT, UPDATE … SET x = \
         sync_…(), a trigger): call it in a SELECT of its own, then write its result",
    )
}

impl Conn {
    /// Runs `body`, which only reads, on one snapshot of the database: inside `SAVEPOINT name`,
    /// or, when a statement of this connection that writes is running (the call is part of an
    /// `INSERT … SELECT`), inside that statement's transaction, which holds the snapshot until
    /// it ends.
    pub fn snapshot<T>(&self, name: &str, body: impl FnOnce() -> Result<T>) -> Result<T> {
        match self.exec(&format!("SAVEPOINT {name}"), &[]) {
            Ok(()) => {}
            Err(e) if e.message.contains("statements in progress") => return body(),
            Err(e) => return Err(e),
        }
        let _undo = Undo {
            conn: self,
            name,
            armed: true,
        };
        body()
    }

    /// Runs `body` inside `SAVEPOINT name` and rolls back what it wrote, whatever it returns:
    /// a trial write that only asks SQLite what it would do.
    pub fn trial<T>(&self, name: &str, body: impl FnOnce() -> Result<T>) -> Result<T> {
        self.exec(&format!("SAVEPOINT {name}"), &[])?;
        let _undo = Undo {
            conn: self,
            name,
            armed: true,
        };
        body()
    }
}

/// Rolls back and releases savepoint `name` when dropped armed: when its body failed, and when a
/// panic unwinds through it (so a caught panic leaves no transaction open either).
struct Undo<'a> {
    conn: &'a Conn,
    name: &'a str,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.conn.exec(&format!("ROLLBACK TO {}", self.name), &[]);
            let _ = self.conn.exec(&format!("RELEASE {}", self.name), &[]);
        }
    }
}

/// A connection this extension opened itself (to a bundle file), closed on drop.
pub struct OwnedConn {
    conn: Conn,
}

/// How to open an [`OwnedConn`].
pub enum OpenMode {
    ReadOnly,
    Create,
}

impl OwnedConn {
    pub fn open(path: &str, mode: OpenMode) -> Result<OwnedConn> {
        let cpath = CString::new(path).map_err(|_| Error::new("path holds a NUL byte"))?;
        let flags = match mode {
            OpenMode::ReadOnly => 0x1,     // SQLITE_OPEN_READONLY
            OpenMode::Create => 0x2 | 0x4, // SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        } | 0x8000; // SQLITE_OPEN_NOMUTEX: used by one thread, inside one call
        let mut db: *mut sqlite3 = ptr::null_mut();
        // SAFETY: `cpath` outlives the call; `db` receives a handle (even on failure) that we
        // close exactly once, here or in Drop.
        let rc = unsafe { sqlite!(open_v2(cpath.as_ptr(), &mut db, flags, ptr::null())) };
        if rc != SQLITE_OK {
            let err = if db.is_null() {
                Error::new("out of memory")
            } else {
                let e = Conn::of(db).error("cannot open");
                unsafe { sqlite!(close_v2(db)) };
                e
            };
            return Err(err);
        }
        Ok(OwnedConn { conn: Conn::of(db) })
    }

    /// A read-only in-memory database holding a copy of `bytes` (a database file's image).
    pub fn from_bytes(bytes: &[u8]) -> Result<OwnedConn> {
        const SQLITE_DESERIALIZE_FREEONCLOSE: u32 = 1;
        const SQLITE_DESERIALIZE_READONLY: u32 = 4;
        let owned = OwnedConn::open(":memory:", OpenMode::Create)?;
        let len = bytes.len() as u64;
        // SAFETY: the buffer comes from sqlite3_malloc64 and is handed to SQLite with
        // FREEONCLOSE, which frees it (also when deserialize fails); `len` bytes are copied
        // into it before the call.
        let rc = unsafe {
            let buf = sqlite!(malloc64(len.max(1))) as *mut u8;
            if buf.is_null() {
                return Err(Error::new("out of memory"));
            }
            ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len());
            sqlite!(deserialize(
                owned.conn.db,
                c"main".as_ptr(),
                buf,
                len as i64,
                len as i64,
                SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_READONLY,
            ))
        };
        if rc != SQLITE_OK {
            return Err(owned.conn.error("cannot read the bytes as a database"));
        }
        Ok(owned)
    }

    /// The image of the main database, as a file of it would hold.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut size: i64 = 0;
        // SAFETY: serialize returns a buffer of `size` bytes from sqlite3_malloc64 (or NULL),
        // copied here and freed exactly once.
        unsafe {
            let buf = sqlite!(serialize(self.conn.db, c"main".as_ptr(), &mut size, 0));
            if buf.is_null() {
                return Err(Error::new("out of memory"));
            }
            let bytes = std::slice::from_raw_parts(buf, size as usize).to_vec();
            sqlite!(free(buf as *mut std::ffi::c_void));
            Ok(bytes)
        }
    }

    pub fn conn(&self) -> &Conn {
        &self.conn
    }
}

impl Drop for OwnedConn {
    fn drop(&mut self) {
        // SAFETY: the handle is live and closed exactly once; close_v2 waits for statements.
        unsafe { sqlite!(close_v2(self.conn.db)) };
    }
}

/// While alive, the triggers of the main schema do not fire for statements prepared on this
/// connection (SQLITE_DBCONFIG_ENABLE_TRIGGER); dropping it restores the previous setting.
/// The importer writes through it so that its writes are never captured as local ops.
pub struct TriggersOff<'c>(#[allow(dead_code)] Switch<'c>);

/// While alive, this connection does not enforce foreign keys (SQLITE_DBCONFIG_ENABLE_FKEY,
/// which, unlike `PRAGMA foreign_keys`, also works inside a transaction); dropping it restores
/// the previous setting. The importer judges references itself (apply/park.rs), so that a row
/// it holds out, or writes before the row it refers to, sets off no action and no check.
pub struct ForeignKeysOff<'c>(#[allow(dead_code)] Switch<'c>);

const SQLITE_DBCONFIG_ENABLE_FKEY: c_int = 1002;
const SQLITE_DBCONFIG_ENABLE_TRIGGER: c_int = 1003;

impl<'c> TriggersOff<'c> {
    pub fn new(conn: &'c Conn) -> Result<TriggersOff<'c>> {
        Switch::off(conn, SQLITE_DBCONFIG_ENABLE_TRIGGER).map(TriggersOff)
    }
}

impl<'c> ForeignKeysOff<'c> {
    pub fn new(conn: &'c Conn) -> Result<ForeignKeysOff<'c>> {
        Switch::off(conn, SQLITE_DBCONFIG_ENABLE_FKEY).map(ForeignKeysOff)
    }
}

/// One of the connection's on/off settings (a `SQLITE_DBCONFIG_ENABLE_*` op), off while alive.
struct Switch<'c> {
    conn: &'c Conn,
    op: c_int,
    was_on: bool,
}

impl<'c> Switch<'c> {
    fn off(conn: &'c Conn, op: c_int) -> Result<Switch<'c>> {
        let was_on = set_switch(conn, op, -1)?;
        if was_on {
            set_switch(conn, op, 0)?;
        }
        Ok(Switch { conn, op, was_on })
    }
}

impl Drop for Switch<'_> {
    fn drop(&mut self) {
        if self.was_on {
            let _ = set_switch(self.conn, self.op, 1);
        }
    }
}

/// Sets (1, 0) or reads (-1) a switch; returns whether it is on after the call.
fn set_switch(conn: &Conn, op: c_int, onoff: c_int) -> Result<bool> {
    let mut now: c_int = 0;
    // SAFETY: db_config with an ENABLE_* op takes (int, int*), as documented.
    let rc = unsafe { sqlite!(db_config(conn.db, op, onoff, &mut now as *mut c_int)) };
    if rc != SQLITE_OK {
        return Err(conn.error("cannot switch a connection setting"));
    }
    Ok(now != 0)
}
