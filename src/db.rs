//! The checked layer over SQLite's C API: the only module (with the entry point in `lib.rs`) that
//! holds `unsafe` code.
//!
//! Invariants: every SQLite return code becomes a `Result` carrying SQLite's own message; every
//! prepared statement is finalized when its `Stmt` drops; every SQL function callback catches panics
//! and reports them as an SQL error, so nothing here can unwind into, or abort, the host process.
//! Callers above this module never see a raw pointer.

use sqlite_loadable::ext::{
    sqlite3, sqlite3_api_routines, sqlite3_context, sqlite3_stmt, sqlite3_value,
};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::value::Value;

const SQLITE_OK: c_int = 0;
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

/// Records the host's routines table. Called by the entry point before anything else.
///
/// # Safety
/// `api` must be the pointer SQLite passed to the extension entry point.
pub unsafe fn install_api(api: *mut sqlite3_api_routines) {
    if !api.is_null() {
        API.store(api, Ordering::Release);
        sqlite_loadable::ext::faux_sqlite_extension_init2(api);
    }
    // a panic in the extension is reported as the SQL error of the call it ended, with where it
    // happened; nothing is printed to the host's stderr (the hook is the extension's own std's)
    static QUIET_PANICS: std::sync::Once = std::sync::Once::new();
    QUIET_PANICS.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let place = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()));
            PANIC_PLACE.with(|p| *p.borrow_mut() = place);
        }))
    });
}

thread_local! {
    /// Where the last panic of this thread happened, for the error that reports it.
    static PANIC_PLACE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
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
        (api().$name.expect(concat!("host SQLite lacks sqlite3_", stringify!($name))))($($arg),*)
    };
}

/// Rows a multi-row statement writes at once (the store of received ops, the row index, the
/// rows of new ops): one number, so that a batch of one is a batch of the others.
pub const BATCH: usize = 64;

/// `(?1, ?2), (?3, ?4)`: the VALUES rows of a multi-row INSERT of `rows` rows of `width`
/// numbered parameters.
pub fn value_rows(rows: usize, width: usize) -> String {
    let row = |r: usize| {
        let marks: Vec<String> = (1..=width).map(|c| format!("?{}", r * width + c)).collect();
        format!("({})", marks.join(", "))
    };
    let all: Vec<String> = (0..rows).map(row).collect();
    all.join(", ")
}

/// An error with a message written for the person at the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A connection handle borrowed from the host for the length of one call. It does not own (or
/// close) the connection.
#[derive(Clone, Copy)]
pub struct Conn {
    db: *mut sqlite3,
}

impl Conn {
    fn error(&self, doing: &str) -> Error {
        // SAFETY: `db` is the live handle SQLite gave us; errmsg returns a NUL-terminated string
        // owned by SQLite, copied before any other call.
        let msg = unsafe { CStr::from_ptr(sqlite!(errmsg(self.db))) };
        Error(format!("{doing}: {}", msg.to_string_lossy()))
    }

    /// Prepares one statement. `sql` must hold exactly one statement.
    pub fn prepare(&self, sql: &str) -> Result<Stmt> {
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
        Ok(Stmt { conn: *self, stmt })
    }

    /// Runs a statement that returns no rows we need, binding `params` in order.
    pub fn exec(&self, sql: &str, params: &[Value]) -> Result<()> {
        self.prepare(sql)?.execute(params)
    }

    /// Whether the last failed call on this connection failed on a constraint (UNIQUE, CHECK,
    /// NOT NULL, FOREIGN KEY, ...), whether or not extended result codes are on.
    pub fn failed_on_constraint(&self) -> bool {
        const SQLITE_CONSTRAINT: c_int = 19;
        // SAFETY: `db` is the live handle SQLite gave us.
        unsafe { sqlite!(errcode(self.db)) & 0xff == SQLITE_CONSTRAINT }
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

    /// Whether a deferred foreign-key constraint of this connection's transaction is still
    /// broken (it would fail the commit).
    pub fn deferred_foreign_keys_broken(&self) -> bool {
        const SQLITE_DBSTATUS_DEFERRED_FKS: c_int = 10;
        let (mut current, mut highest) = (0, 0);
        // SAFETY: `db` is the live handle SQLite gave us; both out-pointers are valid.
        let rc = unsafe {
            sqlite!(db_status(
                self.db,
                SQLITE_DBSTATUS_DEFERRED_FKS,
                &mut current,
                &mut highest,
                0
            ))
        };
        rc == SQLITE_OK && current > 0
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
        Ok(if stmt.step()? {
            Some(stmt.column(0)?)
        } else {
            None
        })
    }

    /// Runs a query and returns its first row, or `None` when it returns no row.
    pub fn query_row(&self, sql: &str, params: &[Value]) -> Result<Option<Vec<Value>>> {
        let mut stmt = self.prepare(sql)?;
        stmt.bind_all(params)?;
        if !stmt.step()? {
            return Ok(None);
        }
        (0..stmt.column_count())
            .map(|i| stmt.column(i))
            .collect::<Result<_>>()
            .map(Some)
    }

    /// Runs `body` inside `SAVEPOINT name`: released when it succeeds, rolled back when it fails,
    /// so an error leaves the database as it was and no transaction open.
    pub fn savepoint<T>(&self, name: &str, body: impl FnOnce() -> Result<T>) -> Result<T> {
        self.exec(&format!("SAVEPOINT {name}"), &[])?;
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
                let e = Conn { db }.error("cannot open");
                unsafe { sqlite!(close_v2(db)) };
                e
            };
            return Err(err);
        }
        Ok(OwnedConn { conn: Conn { db } })
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
pub struct TriggersOff {
    conn: Conn,
    was_on: bool,
}

const SQLITE_DBCONFIG_ENABLE_TRIGGER: c_int = 1003;

impl TriggersOff {
    pub fn new(conn: &Conn) -> Result<TriggersOff> {
        let was_on = set_triggers(conn, -1)?;
        if was_on {
            set_triggers(conn, 0)?;
        }
        Ok(TriggersOff {
            conn: *conn,
            was_on,
        })
    }
}

impl TriggersOff {
    /// Runs `f` with triggers as they were before this guard (on), then switches them off again.
    pub fn paused<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if !self.was_on {
            return f();
        }
        set_triggers(&self.conn, 1)?;
        let result = f();
        set_triggers(&self.conn, 0)?;
        result
    }
}

impl Drop for TriggersOff {
    fn drop(&mut self) {
        if self.was_on {
            let _ = set_triggers(&self.conn, 1);
        }
    }
}

/// Sets (1, 0) or reads (-1) the trigger switch; returns whether triggers are on after the call.
fn set_triggers(conn: &Conn, onoff: c_int) -> Result<bool> {
    let mut now: c_int = 0;
    // SAFETY: db_config with this op takes (int, int*), as documented.
    let rc = unsafe {
        sqlite!(db_config(
            conn.db,
            SQLITE_DBCONFIG_ENABLE_TRIGGER,
            onoff,
            &mut now as *mut c_int
        ))
    };
    if rc != SQLITE_OK {
        return Err(conn.error("cannot switch triggers"));
    }
    Ok(now != 0)
}

/// Prepared statements kept for reuse, by their SQL text (the text is the key, so two texts
/// never share a statement).
pub struct Statements {
    conn: Conn,
    by_sql: std::collections::HashMap<String, Stmt>,
}

impl Statements {
    pub fn new(conn: &Conn) -> Statements {
        Statements {
            conn: *conn,
            by_sql: std::collections::HashMap::new(),
        }
    }

    pub fn conn(&self) -> Conn {
        self.conn
    }

    /// The statement for `sql`, reset, prepared on first use.
    pub fn get(&mut self, sql: &str) -> Result<&mut Stmt> {
        if !self.by_sql.contains_key(sql) {
            let stmt = self.conn.prepare(sql)?;
            self.by_sql.insert(sql.to_string(), stmt);
        }
        let stmt = self.by_sql.get_mut(sql).expect("just prepared");
        stmt.reset();
        Ok(stmt)
    }
}

/// A prepared statement, finalized on drop.
pub struct Stmt {
    conn: Conn,
    stmt: *mut sqlite3_stmt,
}

impl Stmt {
    fn check(&self, rc: c_int, doing: &str) -> Result<()> {
        if rc == SQLITE_OK {
            Ok(())
        } else {
            Err(self.conn.error(doing))
        }
    }

    /// Binds `value` to parameter `i` (1-based). Text and blobs are copied by SQLite.
    pub fn bind(&mut self, i: usize, value: &Value) -> Result<()> {
        // SAFETY: SQLITE_TRANSIENT makes SQLite copy the buffers before returning.
        unsafe { self.bind_with(i, value, transient()) }
    }

    /// Binds `params` without copying their text and blobs, runs the statement to the end, and
    /// resets it and clears its bindings (so SQLite keeps no pointer into `params`).
    pub fn execute_borrowed<'a>(
        &mut self,
        params: impl IntoIterator<Item = &'a Value>,
    ) -> Result<()> {
        let mut result = (|| {
            for (i, p) in params.into_iter().enumerate() {
                // SAFETY: `params` outlives this call, and the bindings are cleared before it
                // returns (SQLITE_STATIC is the destructor value 0).
                unsafe { self.bind_with(i + 1, p, None)? };
            }
            Ok(())
        })();
        if result.is_ok() {
            result = (|| {
                while self.step()? {}
                Ok(())
            })();
        }
        self.reset();
        // SAFETY: the statement is live.
        unsafe { sqlite!(clear_bindings(self.stmt)) };
        result
    }

    /// # Safety
    /// With `destructor` None (SQLITE_STATIC) the caller keeps `value` alive and unchanged until
    /// the parameter is bound again or the bindings are cleared.
    unsafe fn bind_with(
        &mut self,
        i: usize,
        value: &Value,
        destructor: Option<unsafe extern "C" fn(*mut c_void)>,
    ) -> Result<()> {
        let i = i as c_int;
        let rc = unsafe {
            match value {
                Value::Null => sqlite!(bind_null(self.stmt, i)),
                Value::Integer(v) => sqlite!(bind_int64(self.stmt, i, *v)),
                Value::Real(v) => sqlite!(bind_double(self.stmt, i, *v)),
                Value::Text(s) => sqlite!(bind_text64(
                    self.stmt,
                    i,
                    s.as_ptr() as *const c_char,
                    s.len() as u64,
                    destructor,
                    SQLITE_UTF8 as u8
                )),
                Value::Blob(b) => sqlite!(bind_blob64(
                    self.stmt,
                    i,
                    b.as_ptr() as *const c_void,
                    b.len() as u64,
                    destructor
                )),
            }
        };
        self.check(rc, "bind")
    }

    pub fn bind_all(&mut self, params: &[Value]) -> Result<()> {
        for (i, p) in params.iter().enumerate() {
            self.bind(i + 1, p)?;
        }
        Ok(())
    }

    /// Steps once: `true` when a row is ready, `false` when the statement is done.
    pub fn step(&mut self) -> Result<bool> {
        // SAFETY: the statement is live.
        match unsafe { sqlite!(step(self.stmt)) } {
            SQLITE_ROW => Ok(true),
            SQLITE_DONE => Ok(false),
            _ => {
                // reset to get the statement's own error code and message into the handle
                unsafe { sqlite!(reset(self.stmt)) };
                Err(self.conn.error("SQL error"))
            }
        }
    }

    /// Binds `params`, steps to the end, and resets the statement for its next use (also when a
    /// step fails).
    pub fn execute(&mut self, params: &[Value]) -> Result<()> {
        self.bind_all(params)?;
        let result = (|| {
            while self.step()? {}
            Ok(())
        })();
        self.reset();
        result
    }

    /// Resets the statement so it can run again with new bindings.
    pub fn reset(&mut self) {
        // SAFETY: the statement is live; an error of the last step was already reported.
        unsafe { sqlite!(reset(self.stmt)) };
    }

    /// Number of columns in the statement's result rows.
    pub fn column_count(&self) -> usize {
        // SAFETY: the statement is live for as long as `self`.
        unsafe { sqlite!(column_count(self.stmt)) as usize }
    }

    /// Column `i` (0-based) of the current row, copied out exactly.
    pub fn column(&self, i: usize) -> Result<Value> {
        let i = i as c_int;
        // SAFETY: called only after `step` returned a row; pointers are read before the next call
        // on this statement, and lengths come from SQLite.
        unsafe {
            Ok(match sqlite!(column_type(self.stmt, i)) {
                SQLITE_INTEGER => Value::Integer(sqlite!(column_int64(self.stmt, i))),
                SQLITE_FLOAT => Value::Real(sqlite!(column_double(self.stmt, i))),
                SQLITE_TEXT => {
                    let p = sqlite!(column_text(self.stmt, i));
                    owned(SQLITE_TEXT, p, sqlite!(column_bytes(self.stmt, i)))?
                }
                SQLITE_BLOB => {
                    let p = sqlite!(column_blob(self.stmt, i));
                    owned(
                        SQLITE_BLOB,
                        p as *const u8,
                        sqlite!(column_bytes(self.stmt, i)),
                    )?
                }
                _ => Value::Null,
            })
        }
    }

    /// Column `i` of the current row when it is a BLOB, borrowed from SQLite without a copy (the
    /// borrow ends before the statement can step again).
    pub fn column_blob(&self, i: usize) -> Result<Option<&[u8]>> {
        let i = i as c_int;
        // SAFETY: called only after `step` returned a row; the slice lives while `self` is
        // borrowed, and SQLite keeps the value in place until the statement steps, resets or
        // is finalized, all of which need `&mut self`.
        unsafe {
            if sqlite!(column_type(self.stmt, i)) != SQLITE_BLOB {
                return Ok(None);
            }
            let p = sqlite!(column_blob(self.stmt, i)) as *const u8;
            bytes(p, sqlite!(column_bytes(self.stmt, i))).map(Some)
        }
    }

    /// Column `i` of the current row as an integer (0 for NULL).
    pub fn column_int(&self, i: usize) -> i64 {
        // SAFETY: called only after `step` returned a row.
        unsafe { sqlite!(column_int64(self.stmt, i as c_int)) }
    }
}

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalized exactly once.
        unsafe { sqlite!(finalize(self.stmt)) };
    }
}

/// `SQLITE_TRANSIENT`: SQLite copies the buffer before the call returns.
fn transient() -> Option<unsafe extern "C" fn(*mut c_void)> {
    // SQLITE_TRANSIENT is the destructor value -1.
    // SAFETY: SQLite compares this value and never calls it.
    unsafe { std::mem::transmute::<isize, Option<unsafe extern "C" fn(*mut c_void)>>(-1) }
}

/// An owned copy of the TEXT or BLOB (`kind`) of `n` bytes SQLite holds at `p`. A value's size
/// comes from the data: no memory for the copy is an error, never an abort of the host. Invalid
/// UTF-8 is carried with replacement characters.
///
/// # Safety
/// As for [`bytes`].
unsafe fn owned(kind: c_int, p: *const u8, n: c_int) -> Result<Value> {
    let copy = crate::value::try_copy(bytes(p, n)?).map_err(Error::new)?;
    Ok(if kind == SQLITE_TEXT {
        Value::Text(
            String::from_utf8(copy)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        )
    } else {
        Value::Blob(copy)
    })
}

/// A byte slice over the `n` bytes of a TEXT or BLOB SQLite holds at `p`: empty for a
/// zero-length value (SQLite may give NULL for it); an error when SQLite gave NULL for a longer
/// one (it had no memory to produce it).
///
/// # Safety
/// `p` must be valid for `n` bytes while the slice lives (or be null).
unsafe fn bytes<'a>(p: *const u8, n: c_int) -> Result<&'a [u8]> {
    let n = n.max(0) as usize;
    match (p.is_null(), n) {
        (_, 0) => Ok(&[]),
        (true, _) => Err(Error::new(format!(
            "out of memory reading a value of {n} bytes"
        ))),
        (false, _) => Ok(std::slice::from_raw_parts(p, n)),
    }
}

/// Reads one SQL function argument exactly.
fn value_of(v: *mut sqlite3_value) -> Result<Value> {
    // SAFETY: `v` is an argument SQLite passed to the current callback.
    unsafe {
        Ok(match sqlite!(value_type(v)) {
            SQLITE_INTEGER => Value::Integer(sqlite!(value_int64(v))),
            SQLITE_FLOAT => Value::Real(sqlite!(value_double(v))),
            SQLITE_TEXT => owned(SQLITE_TEXT, sqlite!(value_text(v)), sqlite!(value_bytes(v)))?,
            SQLITE_BLOB => owned(
                SQLITE_BLOB,
                sqlite!(value_blob(v)) as *const u8,
                sqlite!(value_bytes(v)),
            )?,
            _ => Value::Null,
        })
    }
}

/// The Rust side of one SQL function.
pub type SqlFn = fn(&Conn, &[Value]) -> Result<Value>;

/// SQLITE_DETERMINISTIC: same arguments, same result, within one statement and across them.
pub const DETERMINISTIC: c_int = 0x800;
/// SQLITE_DIRECTONLY: callable only from top-level SQL, never from triggers, views or schema.
pub const DIRECT_ONLY: c_int = 0x80000;
/// SQLITE_INNOCUOUS: safe in views and triggers even with `trusted_schema=OFF`.
pub const INNOCUOUS: c_int = 0x200000;

struct Registered {
    name: CString,
    f: SqlFn,
}

unsafe extern "C" fn drop_registered(p: *mut c_void) {
    drop(Box::from_raw(p as *mut Registered));
}

unsafe extern "C" fn call_registered(
    ctx: *mut sqlite3_context,
    argc: c_int,
    argv: *mut *mut sqlite3_value,
) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let reg = &*(sqlite!(user_data(ctx)) as *const Registered);
        let conn = Conn {
            db: sqlite!(context_db_handle(ctx)),
        };
        let name = reg.name.to_string_lossy();
        (0..argc as usize)
            .map(|i| value_of(*argv.add(i)))
            .collect::<Result<Vec<Value>>>()
            .and_then(|args| (reg.f)(&conn, &args))
            .map_err(|e| format!("{name}: {e}"))
    }));
    let outcome = outcome.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        let place = PANIC_PLACE.with(|p| p.borrow_mut().take());
        let at = place.map(|p| format!(" at {p}")).unwrap_or_default();
        Err(format!(
            "sqlite-sync: internal error (caught panic: {what}{at})"
        ))
    });
    // Reporting the result must not panic either; nothing below allocates except the error text.
    let _ = catch_unwind(AssertUnwindSafe(|| set_result(ctx, outcome)));
}

unsafe fn set_result(ctx: *mut sqlite3_context, outcome: std::result::Result<Value, String>) {
    match outcome {
        Ok(Value::Null) => sqlite!(result_null(ctx)),
        Ok(Value::Integer(v)) => sqlite!(result_int64(ctx, v)),
        Ok(Value::Real(v)) => sqlite!(result_double(ctx, v)),
        Ok(Value::Text(s)) => sqlite!(result_text64(
            ctx,
            s.as_ptr() as *const c_char,
            s.len() as u64,
            transient(),
            SQLITE_UTF8 as u8
        )),
        Ok(Value::Blob(b)) => sqlite!(result_blob64(
            ctx,
            b.as_ptr() as *const c_void,
            b.len() as u64,
            transient()
        )),
        Err(msg) => sqlite!(result_error(
            ctx,
            msg.as_ptr() as *const c_char,
            msg.len() as c_int
        )),
    }
}

/// Registers `f` as the SQL function `name` taking `n_args` arguments (-1: any number).
///
/// # Safety
/// `db` must be the live connection handle passed to the entry point.
pub unsafe fn register_function(
    db: *mut sqlite3,
    name: &str,
    n_args: c_int,
    flags: c_int,
    f: SqlFn,
) -> Result<()> {
    let cname = CString::new(name).map_err(|_| Error::new("function name holds NUL"))?;
    let reg = Box::into_raw(Box::new(Registered {
        name: cname.clone(),
        f,
    }));
    let rc = sqlite!(create_function_v2(
        db,
        cname.as_ptr(),
        n_args,
        SQLITE_UTF8 | flags,
        reg as *mut c_void,
        Some(call_registered),
        None,
        None,
        Some(drop_registered),
    ));
    if rc != SQLITE_OK {
        // SQLite calls the destructor itself when registration fails.
        return Err(Conn { db }.error(&format!("registering {name}")));
    }
    Ok(())
}

/// The connection the entry point was given, for the length of the entry point's call.
///
/// # Safety
/// `db` must be the live handle SQLite passed to the entry point.
pub unsafe fn entry_conn(db: *mut sqlite3) -> Conn {
    Conn { db }
}

/// Turns the outcome of the entry point into SQLite's return code, with the message in `*err`
/// (allocated with SQLite's allocator, as SQLite frees it). A panic is caught here too.
///
/// # Safety
/// `err` must be NULL or the error-message pointer SQLite passed to the entry point.
pub unsafe fn entry_result(run: impl FnOnce() -> Result<()>, err: *mut *mut c_char) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(run))
        .unwrap_or_else(|_| Err(Error::new("sqlite-sync: internal error while loading")));
    match outcome {
        Ok(()) => SQLITE_OK,
        Err(e) => {
            if !err.is_null() {
                let msg = e.0.as_bytes();
                let p = sqlite!(malloc(msg.len() as c_int + 1)) as *mut u8;
                if !p.is_null() {
                    ptr::copy_nonoverlapping(msg.as_ptr(), p, msg.len());
                    *p.add(msg.len()) = 0;
                    *err = p as *mut c_char;
                }
            }
            1 // SQLITE_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn value_rows_number_parameters_row_by_row() {
        assert_eq!(super::value_rows(2, 3), "(?1, ?2, ?3), (?4, ?5, ?6)");
        assert_eq!(super::value_rows(1, 1), "(?1)");
    }
}
