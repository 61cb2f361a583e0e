//! Cascade: the importing database's own foreign-key actions, carried out as this device's writes.
//!
//! Invariant: when an import deletes a row, or changes a column that rows of synced tables refer
//! to with ON DELETE / ON UPDATE CASCADE or SET NULL, those rows are changed first by statements
//! the capture triggers see (the import's own writes are not captured), so SQLite finds nothing
//! left to change unseen. The effect is then an op of this device, which every device receives:
//! no device keeps a row another removed, and no bundle is refused forever for a row whose
//! parent is gone here.

use crate::hashed::HashMap;

use super::quiet::Quiet;
use crate::db::{Conn, Result};
use crate::log::SyncedTable;
use crate::merge::RowState;
use crate::sql::key_match;
use crate::sql::quote_ident;
use crate::value::{Cells, Value};

#[derive(Clone, Copy, PartialEq)]
enum Action {
    Cascade,
    SetNull,
    /// NO ACTION, RESTRICT, SET DEFAULT: left to SQLite (checked when the import commits)
    Other,
}

impl Action {
    fn parse(text: &str) -> Action {
        match text.to_ascii_uppercase().as_str() {
            "CASCADE" => Action::Cascade,
            "SET NULL" => Action::SetNull,
            _ => Action::Other,
        }
    }
}

/// One foreign key of a synced table (the child).
struct ForeignKey {
    child: String,
    /// the child's columns, and the parent's columns they refer to, pairwise
    from: Vec<String>,
    to: Vec<String>,
    on_delete: Action,
    on_update: Action,
}

/// The foreign keys with actions that synced tables hold, by parent table (lower case); empty
/// when the connection does not enforce foreign keys.
pub struct ForeignKeys {
    by_parent: HashMap<String, Vec<ForeignKey>>,
}

impl ForeignKeys {
    pub fn load(conn: &Conn, tables: &[SyncedTable]) -> Result<ForeignKeys> {
        let mut by_parent: HashMap<String, Vec<ForeignKey>> = HashMap::default();
        let enforced = conn.query_value("PRAGMA foreign_keys", &[])? == Some(Value::Integer(1));
        if !enforced {
            return Ok(ForeignKeys { by_parent });
        }
        let mut stmt = conn.prepare(
            "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete
             FROM pragma_foreign_key_list(?1, 'main') ORDER BY id, seq",
        )?;
        for child in tables {
            stmt.bind_all(&[Value::Text(child.name.clone())])?;
            let mut keys: Vec<(i64, String, ForeignKey)> = Vec::new();
            while let Some(row) = stmt.step()? {
                let id = row.column_int(0);
                let text = |i| -> Result<String> {
                    Ok(row.column(i)?.as_text().unwrap_or_default().to_string())
                };
                let (parent, from, to) = (text(1)?, text(2)?, text(3)?);
                if keys.last().is_none_or(|k| k.0 != id) {
                    keys.push((
                        id,
                        parent.to_lowercase(),
                        ForeignKey {
                            child: child.name.clone(),
                            from: Vec::new(),
                            to: Vec::new(),
                            on_update: Action::parse(&text(4)?),
                            on_delete: Action::parse(&text(5)?),
                        },
                    ));
                }
                let key = &mut keys.last_mut().expect("just pushed").2;
                key.from.push(from);
                key.to.push(to); // empty: the parent's PRIMARY KEY, filled in below
            }
            stmt.reset();
            for (_, parent, mut key) in keys {
                if key.on_delete == Action::Other && key.on_update == Action::Other {
                    continue;
                }
                if key.to.iter().any(String::is_empty) {
                    match tables.iter().find(|t| t.name.eq_ignore_ascii_case(&parent)) {
                        Some(p) => key.to = p.key_columns().map(str::to_string).collect(),
                        None => continue, // a parent that is not synced: left to SQLite
                    }
                }
                by_parent.entry(parent).or_default().push(key);
            }
        }
        Ok(ForeignKeys { by_parent })
    }

    /// Settling order of synced tables: a table after every synced table that refers to it (so
    /// a bundle's own deletes of child rows come before its delete of their parent).
    pub fn rank(&self, tables: &[SyncedTable]) -> HashMap<i64, usize> {
        let mut rank: HashMap<i64, usize> = tables.iter().map(|t| (t.id, 0)).collect();
        // longest chain of children below each table; at most one pass per table (cycles stop)
        for _ in 0..tables.len() {
            let mut changed = false;
            for parent in tables {
                let below = self
                    .by_parent
                    .get(&parent.name.to_lowercase())
                    .into_iter()
                    .flatten()
                    .filter_map(|k| tables.iter().find(|t| t.name == k.child))
                    .map(|child| rank[&child.id] + 1)
                    .max()
                    .unwrap_or(0);
                if below > rank[&parent.id] {
                    rank.insert(parent.id, below);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        rank
    }

    /// Whether writing `columns` of a row of `table` may call for an action (a foreign key with
    /// one refers to one of them).
    pub fn may_act(&self, table: &SyncedTable, columns: &[String]) -> bool {
        let Some(keys) = self.by_parent.get(&table.name.to_lowercase()) else {
            return false;
        };
        let written = |c: &String| columns.iter().any(|w| w.eq_ignore_ascii_case(c));
        keys.iter().any(|k| k.to.iter().any(written))
    }

    /// Whether deleting a row of `table` may call for an action (a foreign key with one refers
    /// to the table).
    pub fn is_parent(&self, table: &SyncedTable) -> bool {
        self.by_parent.contains_key(&table.name.to_lowercase())
    }

    /// Carries out, as captured writes, the actions that writing `state` over row `key` of
    /// `table` calls for. Returns whether any row changed.
    pub fn act(
        &self,
        conn: &Conn,
        quiet: &Quiet,
        table: &SyncedTable,
        key: &Cells,
        state: &RowState,
    ) -> Result<bool> {
        let Some(keys) = self.by_parent.get(&table.name.to_lowercase()) else {
            return Ok(false);
        };
        let mut changed = false;
        for fk in keys {
            let Some(old) = current(conn, table, key, &fk.to)? else {
                return Ok(changed); // no such row here (any more): nothing refers to it
            };
            let (action, new) = match state {
                RowState::Absent => (fk.on_delete, None),
                RowState::Present(cells) => {
                    let new: Vec<Value> = (fk.to.iter().zip(&old))
                        .map(|(c, v)| {
                            let written = cells.iter().find(|(n, _)| n.eq_ignore_ascii_case(c));
                            written.map_or(v, |(_, v)| v).clone()
                        })
                        .collect();
                    if new == old {
                        continue;
                    }
                    (fk.on_update, Some(new))
                }
            };
            if old.contains(&Value::Null) {
                continue; // a NULL refers to nothing
            }
            let child = quote_ident(&fk.child);
            let matches = key_match(fk.from.iter().map(String::as_str));
            let set = |values: &dyn Fn(usize) -> String| -> String {
                (fk.from.iter().enumerate())
                    .map(|(i, c)| format!("{} = {}", quote_ident(c), values(i)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let n = fk.from.len();
            let (sql, params) = match (action, new) {
                (Action::Cascade, None) => (format!("DELETE FROM {child} WHERE {matches}"), old),
                (Action::SetNull, _) => (
                    format!(
                        "UPDATE {child} SET {} WHERE {matches}",
                        set(&|_| "NULL".into())
                    ),
                    old,
                ),
                (Action::Cascade, Some(new)) => (
                    format!(
                        "UPDATE {child} SET {} WHERE {matches}",
                        set(&|i| format!("?{}", n + i + 1))
                    ),
                    old.into_iter().chain(new).collect(),
                ),
                (Action::Other, _) => continue,
            };
            quiet.captured(|| conn.exec(&sql, &params))?;
            changed |= conn.changes() > 0;
        }
        Ok(changed)
    }
}

/// The values of `columns` in row `key` of `table` as it is now; None when there is no such row.
fn current(
    conn: &Conn,
    table: &SyncedTable,
    key: &Cells,
    columns: &[String],
) -> Result<Option<Vec<Value>>> {
    let list: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let mut stmt = conn.prepare(&format!(
        "SELECT {} FROM {} WHERE {}",
        list.join(", "),
        quote_ident(&table.name),
        key_match(key.iter().map(|(c, _)| c.as_str()))
    ))?;
    let values: Vec<Value> = key.iter().map(|(_, v)| v.clone()).collect();
    stmt.bind_all(&values)?;
    let Some(row) = stmt.step()? else {
        return Ok(None);
    };
    (0..columns.len())
        .map(|i| row.column(i))
        .collect::<Result<_>>()
        .map(Some)
}
