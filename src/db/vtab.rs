//! Read-only eponymous virtual tables whose rows a plain Rust function gives, from the equality
//! constraints the planner hands it (`sync_conflicts`, conflicts.rs).
//!
//! Invariant: a table's rows are read whole at `xFilter`, in calls that catch panics (a panic
//! becomes an SQL error); the cursor then only hands out values it owns, so nothing it returns
//! can outlive what it read; and before it hands out a row it asks whether the row is still
//! there (a statement may change the table while it reads it: `SELECT sync_resolve(id, …) FROM
//! sync_conflicts` closes records later rows name), so it never returns a row that is gone.

use sqlite_loadable::ext::{sqlite3, sqlite3_context, sqlite3_value, sqlite3_vtab};
use sqlite_loadable::table::{
    define_table_function, BestIndexError, ConstraintOperator, IndexInfo, VTab, VTabArguments,
    VTabCursor,
};
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::function::{set_result, value_of};
use super::{Conn, Result};
use crate::value::Value;

/// Rows of values, as a table's function gives them.
pub type Rows = Vec<Vec<Value>>;

/// The rows matching `(column, value)` pairs (each pair a condition).
pub type RowsFn = fn(&Conn, &[(usize, Value)]) -> Result<Rows>;

/// One table: its name, its columns, which of them the planner may filter on with `=`, and the
/// function that gives the rows matching `(column, value)` pairs (all of them: each pair is a
/// condition).
pub struct TableDef {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub filterable: &'static [usize],
    pub rows: RowsFn,
    /// Whether a row read before is still there as it was
    pub still: fn(&Conn, &[Value]) -> Result<bool>,
}

#[repr(C)]
struct Table {
    base: sqlite3_vtab,
    db: *mut sqlite3,
    def: &'static TableDef,
}

#[repr(C)]
struct Cursor {
    base: sqlite_loadable::ext::sqlite3_vtab_cursor,
    db: *mut sqlite3,
    def: &'static TableDef,
    rows: Rows,
    at: usize,
    /// The connection's count of changes when the rows were read
    changes: i64,
}

fn error(message: impl Into<String>) -> sqlite_loadable::Error {
    sqlite_loadable::Error::new_message(message.into())
}

impl<'vtab> VTab<'vtab> for Table {
    type Aux = &'static TableDef;
    type Cursor = Cursor;

    fn connect(
        db: *mut sqlite3,
        aux: Option<&Self::Aux>,
        _args: VTabArguments,
    ) -> sqlite_loadable::Result<(String, Table)> {
        let def = *aux.ok_or_else(|| error("virtual table without its definition"))?;
        const SQLITE_VTAB_INNOCUOUS: c_int = 2;
        // SAFETY: called from xConnect with its connection, as vtab_config requires; it may
        // be used in views and triggers: it only reads.
        unsafe { sqlite!(vtab_config(db, SQLITE_VTAB_INNOCUOUS)) };
        let schema = format!("CREATE TABLE x({})", def.columns.join(", "));
        let table = Table {
            base: sqlite3_vtab {
                pModule: std::ptr::null(),
                nRef: 0,
                zErrMsg: std::ptr::null_mut(),
            },
            db,
            def,
        };
        Ok((schema, table))
    }

    fn best_index(&self, mut info: IndexInfo) -> std::result::Result<(), BestIndexError> {
        // the usable `=` constraints on filterable columns, one per column, passed in column
        // order; idxNum says which columns they are
        let mut used = 0i32;
        let mut constraints = info.constraints();
        constraints.sort_by_key(|c| c.column_idx());
        let mut n = 0;
        for constraint in constraints.iter_mut() {
            let column = constraint.column_idx();
            let filterable = column >= 0 && self.def.filterable.contains(&(column as usize));
            if !filterable
                || !constraint.usable()
                || constraint.op() != Some(ConstraintOperator::EQ)
                || used & (1 << column) != 0
            {
                continue;
            }
            used |= 1 << column;
            n += 1;
            constraint.set_argv_index(n);
        }
        info.set_idxnum(used);
        info.set_estimated_cost(if used == 0 {
            1e6
        } else {
            1e6 / (10f64).powi(n + 1)
        });
        Ok(())
    }

    fn open(&'vtab mut self) -> sqlite_loadable::Result<Cursor> {
        Ok(Cursor {
            base: sqlite_loadable::ext::sqlite3_vtab_cursor {
                pVtab: std::ptr::null_mut(),
            },
            db: self.db,
            def: self.def,
            rows: Vec::new(),
            at: 0,
            changes: 0,
        })
    }
}

impl Cursor {
    /// Runs `f` on the cursor's connection, a panic in it becoming an error.
    fn guarded<T>(&self, f: impl FnOnce(&Conn) -> Result<T>) -> sqlite_loadable::Result<T> {
        // SAFETY: the cursor's connection is live while SQLite runs its statement.
        let conn = Conn::of(self.db);
        match catch_unwind(AssertUnwindSafe(|| f(&conn))) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(error(format!("{}: {e}", self.def.name))),
            Err(_) => Err(error(format!("{}: internal error (panic)", self.def.name))),
        }
    }

    /// Moves past the rows that are gone since they were read (only this connection can have
    /// removed them, while its statement reads: none when it wrote nothing since).
    fn skip_gone(&mut self) -> sqlite_loadable::Result<()> {
        if (Conn::of(self.db)).total_changes() == self.changes {
            return Ok(());
        }
        let still = self.def.still;
        while let Some(row) = self.rows.get(self.at) {
            if self.guarded(|conn| still(conn, row))? {
                break;
            }
            self.at += 1;
        }
        Ok(())
    }
}

impl VTabCursor for Cursor {
    fn filter(
        &mut self,
        idx_num: c_int,
        _idx_str: Option<&str>,
        values: &[*mut sqlite3_value],
    ) -> sqlite_loadable::Result<()> {
        let columns = (0..self.def.columns.len()).filter(|c| idx_num & (1 << c) != 0);
        let mut filters = Vec::new();
        for (column, &value) in columns.zip(values) {
            filters.push((column, value_of(value).map_err(|e| error(e.message))?));
        }
        let rows = self.def.rows;
        self.rows = self.guarded(|conn| rows(conn, &filters))?;
        self.changes = Conn::of(self.db).total_changes();
        self.at = 0;
        Ok(())
    }

    fn next(&mut self) -> sqlite_loadable::Result<()> {
        self.at += 1;
        self.skip_gone()
    }

    fn eof(&self) -> bool {
        self.at >= self.rows.len()
    }

    fn column(&self, ctx: *mut sqlite3_context, i: c_int) -> sqlite_loadable::Result<()> {
        let value = (self.rows.get(self.at))
            .and_then(|row| row.get(i as usize))
            .cloned()
            .unwrap_or(Value::Null);
        // SAFETY: `ctx` is the context SQLite passed to xColumn.
        unsafe { set_result(ctx, Ok(value)) };
        Ok(())
    }

    fn rowid(&self) -> sqlite_loadable::Result<i64> {
        Ok(self.at as i64)
    }
}

/// Registers `def` as an eponymous-only virtual table on connection `db`.
///
/// # Safety
/// `db` must be the live connection handle passed to the entry point.
pub unsafe fn register_table(db: *mut sqlite3, def: &'static TableDef) -> Result<()> {
    define_table_function::<Table>(db, def.name, Some(def))
        .map_err(|e| super::Error::new(format!("cannot register {}: {e:?}", def.name)))
}
