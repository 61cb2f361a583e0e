//! Statements that take many rows of parameters at once (a multi-row INSERT, a join with a
//! `VALUES` list), prepared in a few sizes and padded with rows of NULLs, so that a batch of any
//! size up to `BATCH` runs one statement, and a small batch (the everyday sync of a few rows)
//! compiles a small one.
//!
//! Invariant: the SQL a `Padded` runs must ignore a row whose parameters are all NULL (a
//! `WHERE column1 IS NOT NULL`, or an equality a NULL never meets).

use crate::sql::BATCH;
use crate::value::Value;

use super::{Conn, Result, Stmt};

/// The sizes (rows) statements are prepared in.
const SIZES: [usize; 3] = [1, 8, BATCH];

/// One statement per size, each prepared from the same SQL (given the size) on first use.
#[derive(Default)]
pub struct Padded<'c> {
    by_size: [Option<Stmt<'c>>; 3],
}

impl<'c> Padded<'c> {
    /// The statement for `rows` rows (at most `BATCH`): the smallest size that holds them, made
    /// by `sql(size)` on first use; and its size.
    pub fn get(
        &mut self,
        conn: &'c Conn,
        rows: usize,
        sql: impl FnOnce(usize) -> String,
    ) -> Result<(&mut Stmt<'c>, usize)> {
        let at = SIZES
            .iter()
            .position(|&s| rows <= s)
            .unwrap_or(SIZES.len() - 1);
        let slot = &mut self.by_size[at];
        if slot.is_none() {
            *slot = Some(conn.prepare(&sql(SIZES[at]))?);
        }
        Ok((slot.as_mut().expect("just prepared"), SIZES[at]))
    }

    /// Runs the statement for `rows.len()` rows of `W` parameters, the rest NULL.
    pub fn execute<const W: usize>(
        &mut self,
        conn: &'c Conn,
        rows: &[[Value; W]],
        sql: impl FnOnce(usize) -> String,
    ) -> Result<()> {
        let (stmt, size) = self.get(conn, rows.len(), sql)?;
        let mut params: Vec<&Value> = rows.iter().flatten().collect();
        params.resize(size * W, &Value::Null);
        stmt.execute_borrowed(params)
    }
}

/// `SELECT column1, … FROM (VALUES …) WHERE column1 IS NOT NULL` for `rows` rows of `width`: the
/// rows of a multi-row INSERT, of which rows of NULLs are left out.
pub fn padded_rows(rows: usize, width: usize) -> String {
    let columns: Vec<String> = (1..=width).map(|c| format!("column{c}")).collect();
    format!(
        "SELECT {} FROM (VALUES {}) WHERE column1 IS NOT NULL",
        columns.join(", "),
        crate::sql::value_rows(rows, width)
    )
}
