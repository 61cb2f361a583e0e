//! How the importer keeps its writes out of the log while the app's own triggers still fire.
//!
//! Invariants: no write the importer makes to a user table is captured as a local op; the app's
//! triggers on synced tables fire for the rows an import changes, as for a local write, so the
//! data they keep (a full-text index, an audit table) stays right for rows that arrive by sync.
//!
//! One of two ways, chosen per import:
//! - no synced table has a trigger of the app's (the usual case, and the fastest): the import
//!   writes with every trigger off (SQLITE_DBCONFIG_ENABLE_TRIGGER);
//! - otherwise triggers stay on, and the capture triggers of the synced tables are dropped for
//!   the length of the import and created again from their own SQL at its end. Both happen in
//!   the import's savepoint, so an import that fails gets them back with everything else (no
//!   connection ever sees a synced table without capture: the import holds the write lock).
//!   Meanwhile the view `sync_importing` shows one row, so that an app trigger can skip imported
//!   changes (`WHEN NOT EXISTS (SELECT 1 FROM sync_importing)`), as triggers that derive synced
//!   data should: what they derive arrives by sync from the device that wrote the change.

use crate::capture::Saved;
use crate::db::{Conn, ForeignKeysOff, Result, TriggersOff};
use crate::log::SyncedTable;
use crate::value::Value;

pub struct Quiet<'c> {
    conn: &'c Conn,
    mode: Mode<'c>,
    /// Foreign keys are not enforced while the import writes: it judges references itself
    /// (park.rs), so a row it writes before the row it names, or takes out while rows name
    /// it, sets off no check and no action of SQLite's
    foreign_keys: Option<ForeignKeysOff<'c>>,
}

enum Mode<'c> {
    TriggersOff(TriggersOff<'c>),
    /// The capture triggers dropped, to create them again.
    CaptureDropped(Saved),
    Done,
}

impl<'c> Quiet<'c> {
    pub fn new(conn: &'c Conn, tables: &[SyncedTable]) -> Result<Quiet<'c>> {
        let mode = if app_triggers(conn, tables)? {
            conn.exec(crate::schema::IMPORTING_VIEW, &[])?;
            let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
            let captures = Saved::of(conn, &names)?;
            captures.drop_all(conn)?;
            set_importing(conn, true)?;
            Mode::CaptureDropped(captures)
        } else {
            Mode::TriggersOff(TriggersOff::new(conn)?)
        };
        let foreign_keys = Some(ForeignKeysOff::new(conn)?);
        Ok(Quiet {
            conn,
            mode,
            foreign_keys,
        })
    }

    /// Whether the app's triggers fire for the import's writes.
    pub fn app_triggers_fire(&self) -> bool {
        matches!(self.mode, Mode::CaptureDropped(_))
    }

    /// Runs `f` with every trigger off: a write that puts back what an app trigger changed.
    pub fn untriggered<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        match &self.mode {
            Mode::CaptureDropped(_) => {
                let _off = TriggersOff::new(self.conn)?;
                f()
            }
            _ => f(),
        }
    }

    /// Ends the import's quiet: capture triggers back, `sync_importing` empty, triggers on.
    pub fn finish(&mut self) -> Result<()> {
        self.foreign_keys = None;
        match std::mem::replace(&mut self.mode, Mode::Done) {
            Mode::CaptureDropped(captures) => {
                captures.create_all(self.conn)?;
                set_importing(self.conn, false)
            }
            Mode::TriggersOff(off) => {
                drop(off);
                Ok(())
            }
            Mode::Done => Ok(()),
        }
    }
}

/// Whether any synced table has a trigger that is not the extension's (a temporary one too).
fn app_triggers(conn: &Conn, tables: &[SyncedTable]) -> Result<bool> {
    let mut stmt = conn.prepare(
        "SELECT 1 FROM main.sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1 COLLATE NOCASE
           AND name NOT LIKE '\\_sync\\_%' ESCAPE '\\'
         UNION ALL
         SELECT 1 FROM temp.sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1 COLLATE NOCASE",
    )?;
    for table in tables {
        stmt.bind_all(&[Value::Text(table.name.clone())])?;
        let found = stmt.step()?.is_some();
        stmt.reset();
        if found {
            return Ok(true);
        }
    }
    Ok(false)
}

fn set_importing(conn: &Conn, on: bool) -> Result<()> {
    if on {
        conn.exec(
            "INSERT OR REPLACE INTO main._sync_state(name, value) VALUES ('importing', 1)",
            &[],
        )
    } else {
        conn.exec("DELETE FROM main._sync_state WHERE name = 'importing'", &[])
    }
}
