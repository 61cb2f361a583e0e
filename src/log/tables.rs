//! The catalog of synced tables: each table's columns and key as one op names them (`Shape`),
//! the tables enabled now (`SyncedTable`), and the bytes that identify a row (`row_key`).
//!
//! Invariant: a shape, once written to `_sync_shapes`, never changes (an ADD COLUMN makes a new
//! one), so every op keeps naming the columns it was written with.

use crate::db::{Conn, Error, Result};
use crate::value::{Cells, Value};

/// The columns of one enabled table at one point of its history.
#[derive(Debug, Clone, Eq)]
pub struct Shape {
    /// Column names in table order.
    pub columns: Vec<String>,
    /// Positions (in `columns`) of the PRIMARY KEY columns, in PRIMARY KEY order.
    pub pk: Vec<usize>,
    /// Each column's declared type as written (`INTEGER`, `VARCHAR(10)`, ``); none in a shape
    /// an earlier build stored.
    pub types: Vec<String>,
}

/// Two shapes name the same columns and key (their types are compared by `declared_alike`).
impl PartialEq for Shape {
    fn eq(&self, other: &Shape) -> bool {
        self.columns == other.columns && self.pk == other.pk
    }
}

impl Shape {
    /// Stored as msgpack [name, …] by earlier builds, [[name, type], …] since.
    pub fn encode(&self) -> (Value, Value) {
        let named: Vec<(&String, &String)> = self.columns.iter().zip(&self.types).collect();
        let cols = rmp_serde::to_vec(&named).expect("names encode");
        let pk = rmp_serde::to_vec(&self.pk).expect("positions encode");
        (Value::Blob(cols), Value::Blob(pk))
    }

    pub fn decode(columns: &Value, pk: &Value) -> Result<Shape> {
        let bad = || Error::new("damaged shape record in _sync_shapes");
        let bytes = columns.as_blob().ok_or_else(bad)?;
        let (columns, types) = match rmp_serde::from_slice::<Vec<String>>(bytes) {
            Ok(names) => (names, Vec::new()),
            Err(_) => {
                let named: Vec<(String, String)> =
                    rmp_serde::from_slice(bytes).map_err(|_| bad())?;
                named.into_iter().unzip()
            }
        };
        let pk: Vec<usize> =
            rmp_serde::from_slice(pk.as_blob().ok_or_else(bad)?).map_err(|_| bad())?;
        if pk.iter().any(|&i| i >= columns.len()) {
            return Err(bad());
        }
        Ok(Shape { columns, pk, types })
    }

    /// The same shape, with the same declared types.
    pub fn declared_alike(&self, other: &Shape) -> bool {
        self == other && self.types == other.types
    }
}

/// How SQLite stores a value written to a column declared `declared` (its type affinity, by
/// SQLite's rules: the first that applies of INT, CHAR/CLOB/TEXT, BLOB or none, REAL/FLOA/DOUB,
/// else NUMERIC). INTEGER and NUMERIC store every value alike (they differ only in CAST).
pub fn affinity(declared: &str) -> &'static str {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        "INTEGER"
    } else if ["CHAR", "CLOB", "TEXT"].iter().any(|w| t.contains(w)) {
        "TEXT"
    } else if t.contains("BLOB") || t.trim().is_empty() {
        "BLOB"
    } else if ["REAL", "FLOA", "DOUB"].iter().any(|w| t.contains(w)) {
        "REAL"
    } else {
        "NUMERIC"
    }
}

/// Whether values written to columns declared `a` and `b` are stored alike.
pub fn stored_alike(a: &str, b: &str) -> bool {
    let class = |t: &str| match affinity(t) {
        "INTEGER" => "NUMERIC",
        other => other,
    };
    class(a) == class(b)
}

/// A table this database syncs now, with its current shape.
#[derive(Debug, Clone)]
pub struct SyncedTable {
    pub id: i64,
    pub name: String,
    pub shape_id: i64,
    pub shape: Shape,
}

impl SyncedTable {
    /// The table's own spelling of column `name` (names compare without case, as in SQL).
    pub fn column(&self, name: &str) -> Option<&str> {
        self.shape
            .columns
            .iter()
            .find(|c| c.eq_ignore_ascii_case(name))
            .map(String::as_str)
    }

    pub fn key_columns(&self) -> impl Iterator<Item = &str> {
        self.shape
            .pk
            .iter()
            .map(|&i| self.shape.columns[i].as_str())
    }

    /// The same cells with column names as this table spells them.
    pub fn spell(&self, cells: Cells) -> Cells {
        cells
            .into_iter()
            .map(|(c, v)| (self.spell_name(&c), v))
            .collect()
    }

    /// A column name as this table spells it (as given when the table has no such column).
    pub fn spell_name(&self, name: &str) -> String {
        self.column(name).unwrap_or(name).to_string()
    }
}

/// Every enabled table, by id.
pub fn synced_tables(conn: &Conn) -> Result<Vec<SyncedTable>> {
    let mut stmt = conn.prepare(
        "SELECT t.id, t.name, s.id, s.columns, s.pk
         FROM main._sync_tables t JOIN main._sync_shapes s ON s.id = t.shape
         WHERE t.enabled = 1",
    )?;
    let mut out = Vec::new();
    while let Some(row) = stmt.step()? {
        out.push(SyncedTable {
            id: row.column_int(0),
            name: row.column(1)?.as_text().unwrap_or_default().to_string(),
            shape_id: row.column_int(2),
            shape: Shape::decode(&row.column(3)?, &row.column(4)?)?,
        });
    }
    Ok(out)
}

/// The bytes that identify a row of a table: msgpack of its PRIMARY KEY values, in key order.
pub fn row_key<'a>(values: impl Iterator<Item = &'a Value>) -> Vec<u8> {
    let values: Vec<&Value> = values.collect();
    rmp_serde::to_vec(&values).expect("values always encode")
}
