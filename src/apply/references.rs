//! References: every FOREIGN KEY of the synced tables, as the schema declares it, read once per
//! import, whatever the connection's `PRAGMA foreign_keys` says.
//!
//! Invariant: the importer judges a row's references from these alone (park.rs): a reference
//! is kept when one of its columns is NULL (as SQLite does), or when the row it names is in its
//! table and not held out; the columns it names in the parent are the parent's PRIMARY KEY when
//! the declaration names none.

use crate::db::{Conn, Result};
use crate::log::SyncedTable;
use crate::sql::{key_match, quote_ident};
use crate::value::{Cells, Value};

/// One FOREIGN KEY of a synced table (the child).
pub struct Reference {
    pub child: i64,
    /// The child's columns, and the parent's columns they name, pairwise
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub parent: String,
    /// The parent's id when it is synced here
    pub parent_id: Option<i64>,
    /// Whether `to` is the parent's PRIMARY KEY, in its order (then the values a child names
    /// are the parent's row key)
    pub to_key: bool,
    /// The declaration, for people: `FOREIGN KEY (a) REFERENCES p(id)`
    pub text: String,
}

impl Reference {
    /// The values the row `cells` names in the parent; None when one is NULL (or the row does
    /// not have the column): the reference holds.
    pub fn named(&self, cells: &Cells) -> Option<Vec<Value>> {
        (self.from.iter())
            .map(|c| {
                let found = cells.iter().find(|(n, _)| n.eq_ignore_ascii_case(c));
                found.map(|(_, v)| v.clone()).filter(|v| *v != Value::Null)
            })
            .collect()
    }

    /// The key of the parent row that holds `values` in `to`, when one is in its table.
    pub fn parent_row(
        &self,
        conn: &Conn,
        parent: &SyncedTable,
        values: &[Value],
    ) -> Result<Option<Vec<Value>>> {
        let names: Vec<String> = parent.key_columns().map(quote_ident).collect();
        let sql = format!(
            "SELECT {} FROM main.{} WHERE {}",
            names.join(", "),
            quote_ident(&self.parent),
            key_match(self.to.iter().map(String::as_str))
        );
        conn.query_row(&sql, values)
    }

    /// Whether a row holding `values` in `to` is in the parent table (one not synced here).
    pub fn in_unsynced_parent(&self, conn: &Conn, values: &[Value]) -> Result<bool> {
        let sql = format!(
            "SELECT 1 FROM main.{} WHERE {}",
            quote_ident(&self.parent),
            key_match(self.to.iter().map(String::as_str))
        );
        Ok(conn.query_value(&sql, values)?.is_some())
    }

    /// The keys of the rows of the child table (`child`) that name `values`.
    pub fn children(
        &self,
        conn: &Conn,
        child: &SyncedTable,
        values: &[Value],
    ) -> Result<Vec<Vec<Value>>> {
        let names: Vec<String> = child.key_columns().map(quote_ident).collect();
        let mut stmt = conn.prepare(&format!(
            "SELECT {} FROM main.{} WHERE {}",
            names.join(", "),
            quote_ident(&child.name),
            key_match(self.from.iter().map(String::as_str))
        ))?;
        stmt.bind_all(values)?;
        let mut keys = Vec::new();
        while let Some(row) = stmt.step()? {
            keys.push(row.values()?);
        }
        Ok(keys)
    }
}

/// The references of the synced tables.
#[derive(Default)]
pub struct References {
    all: Vec<Reference>,
}

impl References {
    pub fn load(conn: &Conn, tables: &[SyncedTable]) -> Result<References> {
        let mut all = Vec::new();
        let mut stmt = conn.prepare(
            "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1, 'main')
             ORDER BY id, seq",
        )?;
        for child in tables {
            stmt.bind_all(&[Value::Text(child.name.clone())])?;
            let mut keys: Vec<(i64, Reference)> = Vec::new();
            while let Some(row) = stmt.step()? {
                let id = row.column_int(0);
                let text = |i| -> Result<String> {
                    Ok(row.column(i)?.as_text().unwrap_or_default().to_string())
                };
                if keys.last().is_none_or(|k| k.0 != id) {
                    let parent = text(1)?;
                    let synced = tables.iter().find(|t| t.name.eq_ignore_ascii_case(&parent));
                    keys.push((
                        id,
                        Reference {
                            child: child.id,
                            from: Vec::new(),
                            to: Vec::new(),
                            parent_id: synced.map(|t| t.id),
                            parent: synced.map_or(parent, |t| t.name.clone()),
                            to_key: false,
                            text: String::new(),
                        },
                    ));
                }
                let key = &mut keys.last_mut().expect("just pushed").1;
                key.from.push(text(2)?);
                key.to.push(text(3)?); // NULL: the parent's PRIMARY KEY, filled in below
            }
            stmt.reset();
            for (_, mut key) in keys {
                let parent = tables.iter().find(|t| Some(t.id) == key.parent_id);
                if key.to.iter().any(String::is_empty) {
                    let pk = match parent {
                        Some(p) => p.key_columns().map(str::to_string).collect(),
                        None => primary_key(conn, &key.parent)?,
                    };
                    if pk.len() != key.from.len() {
                        continue; // SQLite refuses every write to such a table: nothing to judge
                    }
                    key.to = pk;
                }
                key.to_key = parent.is_some_and(|p| {
                    p.key_columns()
                        .map(str::to_ascii_lowercase)
                        .eq(key.to.iter().map(|c| c.to_ascii_lowercase()))
                });
                key.text = format!(
                    "FOREIGN KEY ({}) REFERENCES {}({})",
                    key.from.join(", "),
                    key.parent,
                    key.to.join(", ")
                );
                all.push(key);
            }
        }
        Ok(References { all })
    }

    /// The references of the rows of table `id`.
    pub fn of(&self, id: i64) -> impl Iterator<Item = &Reference> {
        self.all.iter().filter(move |r| r.child == id)
    }

    /// The references that name rows of table `id`.
    pub fn to(&self, id: i64) -> impl Iterator<Item = &Reference> {
        self.all.iter().filter(move |r| r.parent_id == Some(id))
    }

    /// Whether rows of table `id` refer to other rows, or are referred to.
    pub fn touch(&self, id: i64) -> bool {
        self.all
            .iter()
            .any(|r| r.child == id || r.parent_id == Some(id))
    }

    pub fn all(&self) -> impl Iterator<Item = &Reference> {
        self.all.iter()
    }
}

/// The PRIMARY KEY columns of a table that is not synced, in key order.
fn primary_key(conn: &Conn, table: &str) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare("SELECT name FROM pragma_table_info(?1, 'main') WHERE pk > 0 ORDER BY pk")?;
    stmt.bind_all(&[Value::Text(table.to_string())])?;
    let mut names = Vec::new();
    while let Some(row) = stmt.step()? {
        names.push(row.column(0)?.as_text().unwrap_or_default().to_string());
    }
    Ok(names)
}
