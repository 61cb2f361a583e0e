//! Prepared statements and the rows they return.
//!
//! Invariants: a `Stmt<'c>` borrows its connection, so it cannot outlive it, and is finalized
//! when it drops; columns are read only through the `Row` a step returned, which borrows the
//! statement, so no column is read before a step, after the last row, or after the statement
//! stepped again; a text or blob bound without a copy is unbound before the call returns.

use crate::hashed::HashMap;
use sqlite_loadable::ext::sqlite3_stmt;
use std::ffi::{c_char, c_int, c_void};

use super::{Conn, Error, Result};
use super::{SQLITE_BLOB, SQLITE_DONE, SQLITE_FLOAT, SQLITE_INTEGER, SQLITE_OK, SQLITE_ROW};
use super::{SQLITE_TEXT, SQLITE_UTF8};
use crate::value::Value;

/// Prepared statements kept for reuse, by their SQL text (the text is the key, so two texts
/// never share a statement).
pub struct Statements<'c> {
    conn: &'c Conn,
    by_sql: HashMap<String, Stmt<'c>>,
}

impl<'c> Statements<'c> {
    pub fn new(conn: &'c Conn) -> Statements<'c> {
        Statements {
            conn,
            by_sql: HashMap::default(),
        }
    }

    /// The statement for `sql`, reset, prepared on first use.
    pub fn get(&mut self, sql: &str) -> Result<&mut Stmt<'c>> {
        if !self.by_sql.contains_key(sql) {
            let stmt = self.conn.prepare(sql)?;
            self.by_sql.insert(sql.to_string(), stmt);
        }
        let stmt = self.by_sql.get_mut(sql).expect("just prepared");
        stmt.reset();
        Ok(stmt)
    }
}

/// A prepared statement of connection `'c`, finalized on drop.
pub struct Stmt<'c> {
    conn: &'c Conn,
    stmt: *mut sqlite3_stmt,
}

/// The current row of a stepping statement: it lives until the statement steps again, resets or
/// drops, and only through it are columns read.
pub struct Row<'s> {
    stmt: &'s *mut sqlite3_stmt,
}

impl<'c> Stmt<'c> {
    /// Takes ownership of `stmt`, prepared on `conn`.
    pub(super) fn new(conn: &'c Conn, stmt: *mut sqlite3_stmt) -> Stmt<'c> {
        Stmt { conn, stmt }
    }

    /// The statement itself, no longer finalized on drop (`Conn::exec_kept` keeps it).
    pub(super) fn into_raw(self) -> *mut sqlite3_stmt {
        let raw = self.stmt;
        std::mem::forget(self);
        raw
    }

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
                while self.step()?.is_some() {}
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

    /// Steps once: the row when one is ready, None when the statement is done.
    pub fn step(&mut self) -> Result<Option<Row<'_>>> {
        // SAFETY: the statement is live.
        match unsafe { sqlite!(step(self.stmt)) } {
            SQLITE_ROW => Ok(Some(Row { stmt: &self.stmt })),
            SQLITE_DONE => Ok(None),
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
            while self.step()?.is_some() {}
            Ok(())
        })();
        self.reset();
        result
    }

    /// Binds `params` and returns the first column of the first row (None when there is no
    /// row), leaving the statement reset.
    pub fn query_value(&mut self, params: &[Value]) -> Result<Option<Value>> {
        self.bind_all(params)?;
        let result = self
            .step()
            .and_then(|row| row.map(|row| row.column(0)).transpose());
        self.reset();
        result
    }

    /// Resets the statement so it can run again with new bindings.
    pub fn reset(&mut self) {
        // SAFETY: the statement is live; an error of the last step was already reported.
        unsafe { sqlite!(reset(self.stmt)) };
    }
}

impl Row<'_> {
    /// Number of columns in the row.
    pub fn column_count(&self) -> usize {
        // SAFETY: the statement is live for as long as `self`.
        unsafe { sqlite!(column_count(*self.stmt)) as usize }
    }

    /// Every column of the row, copied out exactly.
    pub fn values(&self) -> Result<Vec<Value>> {
        (0..self.column_count()).map(|i| self.column(i)).collect()
    }

    /// Column `i` (0-based) of the row, copied out exactly.
    pub fn column(&self, i: usize) -> Result<Value> {
        let i = i as c_int;
        // SAFETY: a `Row` exists only while its statement stands on a row; pointers are read before the next call
        // on this statement, and lengths come from SQLite.
        unsafe {
            Ok(match sqlite!(column_type(*self.stmt, i)) {
                SQLITE_INTEGER => Value::Integer(sqlite!(column_int64(*self.stmt, i))),
                SQLITE_FLOAT => Value::Real(sqlite!(column_double(*self.stmt, i))),
                SQLITE_TEXT => {
                    let p = sqlite!(column_text(*self.stmt, i));
                    owned(SQLITE_TEXT, p, sqlite!(column_bytes(*self.stmt, i)))?
                }
                SQLITE_BLOB => {
                    let p = sqlite!(column_blob(*self.stmt, i));
                    owned(
                        SQLITE_BLOB,
                        p as *const u8,
                        sqlite!(column_bytes(*self.stmt, i)),
                    )?
                }
                _ => Value::Null,
            })
        }
    }

    /// Column `i` of the row when it is a BLOB, borrowed from SQLite without a copy (the
    /// borrow ends before the statement can step again).
    pub fn column_blob(&self, i: usize) -> Result<Option<&[u8]>> {
        let i = i as c_int;
        // SAFETY: the statement stands on this row; the slice lives while `self` is borrowed,
        // and SQLite keeps the value in place until the statement steps, resets or is
        // finalized, all of which need the `&mut Stmt` this row borrows.
        unsafe {
            if sqlite!(column_type(*self.stmt, i)) != SQLITE_BLOB {
                return Ok(None);
            }
            let p = sqlite!(column_blob(*self.stmt, i)) as *const u8;
            bytes(p, sqlite!(column_bytes(*self.stmt, i))).map(Some)
        }
    }

    /// Column `i` of the row as an integer (0 for NULL).
    pub fn column_int(&self, i: usize) -> i64 {
        // SAFETY: the statement stands on this row.
        unsafe { sqlite!(column_int64(*self.stmt, i as c_int)) }
    }
}

impl Drop for Stmt<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalized exactly once.
        unsafe { sqlite!(finalize(self.stmt)) };
    }
}

/// `SQLITE_TRANSIENT`: SQLite copies the buffer before the call returns.
pub(super) fn transient() -> Option<unsafe extern "C" fn(*mut c_void)> {
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
pub(super) unsafe fn owned(kind: c_int, p: *const u8, n: c_int) -> Result<Value> {
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
