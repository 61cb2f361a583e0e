//! SQL functions: registering them with SQLite, calling them, reporting what they return; and
//! the entry point's outcome.
//!
//! Invariant: a call never unwinds into the host: its panic is caught and reported as the SQL
//! error of the call, with where it happened; its error names the function.

use sqlite_loadable::ext::{sqlite3, sqlite3_api_routines, sqlite3_context, sqlite3_value};
use std::ffi::{c_char, c_int, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use super::stmt::{owned, transient};
use super::{Conn, Error, Result, SQLITE_BLOB, SQLITE_FLOAT, SQLITE_INTEGER, SQLITE_OK};
use super::{SQLITE_TEXT, SQLITE_UTF8};
use crate::value::Value;

/// Keeps panic messages off the host's stderr: a panic in the extension is reported as the SQL
/// error of the call it ended, with where it happened (the hook is the extension's own std's).
pub(super) fn quiet_panics() {
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

/// Reads one SQL function argument exactly.
pub(super) fn value_of(v: *mut sqlite3_value) -> Result<Value> {
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
        let conn = Conn::of(sqlite!(context_db_handle(ctx)));
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

pub(super) unsafe fn set_result(
    ctx: *mut sqlite3_context,
    outcome: std::result::Result<Value, String>,
) {
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
        return Err(Conn::of(db).error(&format!("registering {name}")));
    }
    Ok(())
}

/// The connection the entry point was given, for the length of the entry point's call.
///
/// # Safety
/// `db` must be the live handle SQLite passed to the entry point.
pub unsafe fn entry_conn(db: *mut sqlite3) -> Conn {
    Conn::of(db)
}

/// The entry point's refusal where another SQLite library of this process loaded the extension
/// first (`install_api`): the message is allocated with the loading library's own routines,
/// which free it.
///
/// # Safety
/// `api` and `err` are the pointers SQLite passed to the entry point.
pub unsafe fn refuse_second_library(
    api: *mut sqlite3_api_routines,
    err: *mut *mut c_char,
) -> c_int {
    let msg = "sqlite-sync: this process loaded the extension through another SQLite library \
               first (two SQLite libraries in one process, such as apsw's and sqlean.py's); \
               load it through one of them only, or use the other in a process of its own";
    set_message((*api).malloc, err, msg);
    1 // SQLITE_ERROR
}

/// Puts `msg` in `*err` (unless NULL), allocated with `malloc`, the routine of the SQLite
/// library that frees it.
///
/// # Safety
/// `err` is NULL or the error-message pointer SQLite passed to the entry point; `malloc` is
/// that SQLite's.
unsafe fn set_message(
    malloc: Option<unsafe extern "C" fn(c_int) -> *mut c_void>,
    err: *mut *mut c_char,
    msg: &str,
) {
    let (false, Some(malloc)) = (err.is_null(), malloc) else {
        return;
    };
    let p = malloc(msg.len() as c_int + 1) as *mut u8;
    if !p.is_null() {
        ptr::copy_nonoverlapping(msg.as_ptr(), p, msg.len());
        *p.add(msg.len()) = 0;
        *err = p as *mut c_char;
    }
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
            set_message(super::api().malloc, err, &e.message);
            1 // SQLITE_ERROR
        }
    }
}
