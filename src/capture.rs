//! Capture: `sync_enable` / `sync_disable` and the triggers that turn row changes into ops.
//!
//! Invariant: while a table is enabled, every committed row change appends exactly one op (two
//! for an UPDATE that changes the PRIMARY KEY: a delete of the old key and an insert of the new
//! row), in the same transaction, and an UPDATE that changes nothing appends none. A column
//! changed when `OLD.c IS NOT NEW.c` or its storage class changed. The triggers are built-in SQL
//! only (no extension function, no subquery, one INSERT per op), so writes from connections that never
//! loaded the extension are captured too, and `trusted_schema=OFF` does not stop them.
//!
//! Names reach SQL only quoted by `quote_ident`, and only after they were read back from
//! SQLite's own schema; user input is bound, never spliced.

use crate::db::{Conn, Error, Result};
use crate::identity::Fork;
use crate::log::{self, LogRow, Shape, SyncedTable};
use crate::op::OpKind;
use crate::schema::INTERNAL_PREFIX;
use crate::sql::quote_ident;
use crate::value::Value;

/// At most this many columns per table: an update's changed-column mask is one 64-bit integer.
pub const MAX_COLUMNS: usize = 64;

/// A table as found in the schema, ready to enable.
struct Table {
    name: String,
    shape: Shape,
    columns: Columns,
}

/// What the change test of each column must take care of.
#[derive(Default)]
struct Columns {
    /// Can it hold an INTEGER and an equal REAL (`1` and `1.0`)? Only then does "changed" need
    /// `typeof()`, which costs as much as the rest of the test.
    mixed_numbers: Vec<bool>,
    /// Does it compare text by a collation other than BINARY (NOCASE, RTRIM, the app's own)?
    /// Such a collation calls `'Bob'` and `'bob'` equal; the test must not.
    collated: Vec<bool>,
}

/// Follows the columns added to every synced table and fills them from what received ops kept
/// (apply/follow.rs): what a sync call does first. Given by lib.rs to the stages before apply.
pub type Follow = fn(&Conn, Refuse) -> Result<()>;

/// Which synced tables a sync call refuses to go on with when they changed in a way sync does
/// not follow (`added_columns`): every one, all but the one being enabled, or none (they are
/// left to the next call).
#[derive(Clone, Copy)]
pub enum Refuse<'a> {
    All,
    AllBut(&'a str),
    None,
}

/// Records what a table enabled again holds that its log's state does not (apply/catch_up.rs);
/// the flag: the table is declared otherwise than before (another type affinity of a column,
/// or another PRIMARY KEY).
pub type CatchUp = fn(&Conn, &str, bool) -> Result<()>;

/// `sync_enable(table)`: installs capture on `table` and records its rows as insert ops (a
/// table enabled before: what it holds that the log's state does not, by `catch_up`);
/// `follow` first follows the columns added to every synced table.
pub fn sync_enable(
    conn: &Conn,
    args: &[Value],
    fork: Fork,
    (follow, catch_up): (Follow, CatchUp),
) -> Result<Value> {
    let name = table_name_arg(&args[0])?;
    crate::identity::require_device(conn, fork)?;
    let table = inspect(conn, name)?;
    conn.savepoint("sync_enable", || {
        follow(conn, Refuse::AllBut(&table.name))?;
        if let Some(declared_otherwise) = enable(conn, &table)? {
            catch_up(conn, &table.name, declared_otherwise)?;
        }
        first_in_line(conn)
    })?;
    Ok(Value::Integer(1))
}

/// `sync_disable(table)`: removes capture from `table`; the log keeps its history.
pub fn sync_disable(conn: &Conn, args: &[Value], fork: Fork) -> Result<Value> {
    let name = table_name_arg(&args[0])?;
    crate::identity::require_device(conn, fork)?;
    let id = conn
        .query_value(
            "SELECT id FROM main._sync_tables WHERE name = ?1 AND shape IS NOT NULL",
            &[Value::Text(name.into())],
        )?
        .and_then(|v| v.as_i64())
        .ok_or_else(|| Error::new(format!("table {} is not sync-enabled", quote_ident(name))))?;
    conn.savepoint("sync_disable", || {
        drop_triggers(conn, id)?;
        conn.exec(
            "UPDATE main._sync_tables SET enabled = 0 WHERE id = ?1",
            &[Value::Integer(id)],
        )
    })?;
    Ok(Value::Integer(1))
}

fn table_name_arg(arg: &Value) -> Result<&str> {
    match arg {
        Value::Text(s) => Ok(s),
        Value::Null => Err(Error::new("table name is NULL")),
        other => Err(Error::new(format!(
            "expects a table name as TEXT, got {}",
            other.type_name()
        ))),
    }
}

/// The attached database (not `main`, not `temp`) holding table `name`, spelt alone or as
/// `schema.table`, if any: for an error that says where it is.
fn attached_holding(conn: &Conn, name: &str) -> Result<Option<String>> {
    let mut schemas = Vec::new();
    let mut list = conn.prepare("SELECT name FROM pragma_database_list WHERE seq > 1")?;
    while let Some(row) = list.step()? {
        schemas.push(row.column(0)?.as_text().unwrap_or_default().to_string());
    }
    drop(list);
    for schema in schemas {
        let table = match name.split_once('.') {
            Some((s, t)) if s.eq_ignore_ascii_case(&schema) => t,
            _ => name,
        };
        let sql = format!(
            "SELECT 1 FROM {}.sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            quote_ident(&schema)
        );
        if conn
            .query_value(&sql, &[Value::Text(table.into())])?
            .is_some()
        {
            return Ok(Some(schema));
        }
    }
    Ok(None)
}

/// Reads `name` from the schema and checks it can be synced.
fn inspect(conn: &Conn, name: &str) -> Result<Table> {
    refuse_internal(name)?;
    let mut stmt = conn.prepare(
        "SELECT type, name, sql FROM main.sqlite_schema
         WHERE type IN ('table', 'view') AND name = ?1 COLLATE NOCASE",
    )?;
    stmt.bind(1, &Value::Text(name.into()))?;
    let Some(r) = stmt.step()? else {
        return Err(Error::new(match attached_holding(conn, name)? {
            Some(schema) => format!(
                "no such table in the main database: {} is in the attached database {} (only \
                 the main database's tables are synced)",
                quote_ident(name),
                quote_ident(&schema)
            ),
            None => format!("no such table: {}", quote_ident(name)),
        }));
    };
    let (kind, name, sql) = (r.column(0)?, r.column(1)?, r.column(2)?);
    let name = name.as_text().unwrap_or_default().to_string();
    let q = quote_ident(&name);
    if kind.as_text() == Some("view") {
        return Err(Error::new(format!(
            "{q} is a view; only tables can be synced"
        )));
    }
    let sql = sql.as_text().unwrap_or_default().to_ascii_uppercase();
    if sql.starts_with("CREATE VIRTUAL TABLE") {
        return Err(Error::new(format!(
            "{q} is a virtual table; only ordinary tables can be synced"
        )));
    }
    if let Some(index) = shadow_of(conn, &name)? {
        return Err(Error::new(format!(
            "{q} is a shadow table, part of {index} that SQLite keeps (a full-text or \
             R*Tree index, say); only ordinary tables can be synced: sync the table it is built \
             from, and let each device keep its own index with triggers (see \
             docs/sync-rules.md, Your own triggers)"
        )));
    }
    let (shape, columns) = shape_of(conn, &name)?;
    if shape.pk.is_empty() {
        return Err(Error::new(format!(
            "table {q} has no PRIMARY KEY (sync needs one to identify a row on every device)"
        )));
    }
    // the key's collation: the column's own, or one the PRIMARY KEY clause gives it
    let in_key_clause = conn.query_value(
        "SELECT x.name FROM pragma_index_list(?1, 'main') l, pragma_index_xinfo(l.name, 'main') x
         WHERE l.origin = 'pk' AND x.key = 1 AND x.coll IS NOT NULL
           AND x.coll <> 'BINARY' COLLATE NOCASE",
        &[Value::Text(name.clone())],
    )?;
    let collated_key = (shape.pk.iter().copied())
        .find(|&i| columns.collated[i])
        .or_else(|| {
            let column = in_key_clause.as_ref()?.as_text()?;
            shape
                .columns
                .iter()
                .position(|c| c.eq_ignore_ascii_case(column))
        });
    if let Some(i) = collated_key {
        return Err(Error::new(format!(
            "the PRIMARY KEY of table {q} compares column {} by a collation other than BINARY \
             (NOCASE, RTRIM, …): two devices could insert 'Work' and 'work' as two rows that \
             this table holds as one, and end up different; declare the key column without \
             COLLATE (sync identifies a row by its key's exact bytes)",
            quote_ident(&shape.columns[i])
        )));
    }
    if shape.columns.len() > MAX_COLUMNS {
        return Err(Error::new(format!(
            "table {q} has {} columns; at most {MAX_COLUMNS} can be synced",
            shape.columns.len()
        )));
    }
    Ok(Table {
        name,
        shape,
        columns,
    })
}

/// Where `name` is a shadow table (FTS3/4/5's `_data`, `_content`, …, R*Tree's `_node`, …),
/// which SQLite writes itself and where triggers can crash it: the virtual table it belongs
/// to, as the error names it. Told by `PRAGMA table_list` (SQLite 3.37 and later: type
/// `shadow`), else by the names those modules give them.
fn shadow_of(conn: &Conn, name: &str) -> Result<Option<String>> {
    const SUFFIXES: [&str; 11] = [
        "data", "idx", "content", "docsize", "config", "segments", "segdir", "stat", "node",
        "parent", "rowid",
    ];
    let listed = conn
        .query_value(
            "SELECT 1 FROM pragma_table_list WHERE schema = 'main' AND name = ?1
               AND type = 'shadow'",
            &[Value::Text(name.into())],
        )
        .map(|found| found.is_some())
        .ok(); // (no table_list before 3.37: the names alone)
    if listed == Some(false) {
        return Ok(None);
    }
    let mut stmt = conn.prepare(
        "SELECT name FROM main.sqlite_schema
         WHERE type = 'table' AND upper(sql) LIKE 'CREATE VIRTUAL TABLE%'",
    )?;
    let lower = name.to_ascii_lowercase();
    while let Some(row) = stmt.step()? {
        let index = row.column(0)?.as_text().unwrap_or_default().to_string();
        let prefix = format!("{}_", index.to_ascii_lowercase());
        let Some(rest) = lower.strip_prefix(&prefix) else {
            continue;
        };
        if listed.is_some() || SUFFIXES.contains(&rest) {
            return Ok(Some(format!("the virtual table {}", quote_ident(&index))));
        }
    }
    Ok(listed.map(|_| "a virtual table".to_string()))
}

/// Refuses the extension's own tables and SQLite's.
fn refuse_internal(name: &str) -> Result<()> {
    let lower = name.to_ascii_lowercase();
    let q = quote_ident(name);
    if lower.starts_with(INTERNAL_PREFIX) || lower == log::LOG_VIEW {
        return Err(Error::new(format!(
            "{q} belongs to sqlite-sync itself and cannot be synced"
        )));
    }
    if lower.starts_with("sqlite_") {
        return Err(Error::new(format!(
            "{q} is an internal table of SQLite and cannot be synced"
        )));
    }
    Ok(())
}

/// The table's stored columns (generated columns are left out: every device computes them), and
/// what their change tests must take care of.
fn shape_of(conn: &Conn, name: &str) -> Result<(Shape, Columns)> {
    let strict = is_strict(conn, name)?;
    let mut stmt = conn.prepare(
        "SELECT name, pk, type FROM pragma_table_xinfo(?1, 'main') WHERE hidden = 0 ORDER BY cid",
    )?;
    stmt.bind(1, &Value::Text(name.into()))?;
    let mut columns = Vec::new();
    let mut types = Vec::new();
    let mut pk = Vec::new();
    let mut tests = Columns::default();
    while let Some(row) = stmt.step()? {
        let position = columns.len();
        columns.push(row.column(0)?.as_text().unwrap_or_default().to_string());
        types.push(row.column(2)?.as_text().unwrap_or_default().to_string());
        let rank = row.column_int(1);
        if rank > 0 {
            pk.push((rank, position));
        }
        tests.mixed_numbers.push(holds_mixed_numbers(
            row.column(2)?.as_text().unwrap_or_default(),
            strict,
        ));
    }
    drop(stmt);
    for column in &columns {
        let collation = conn.column_collation(name, column)?;
        tests
            .collated
            .push(!collation.eq_ignore_ascii_case("BINARY"));
    }
    pk.sort();
    let pk = pk.into_iter().map(|(_, p)| p).collect();
    Ok((Shape { columns, pk, types }, tests))
}

fn is_strict(conn: &Conn, name: &str) -> Result<bool> {
    // pragma_table_list exists from SQLite 3.37, as do STRICT tables
    let strict = conn.query_value(
        "SELECT strict FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
        &[Value::Text(name.into())],
    );
    Ok(matches!(strict, Ok(Some(Value::Integer(1)))))
}

/// Whether a column of this declared type stores `1` and `1.0` as given. Every other affinity
/// converts one into the other (INTEGER and NUMERIC store `1.0` as `1`, REAL reads `1` back as
/// `1.0`, TEXT turns both into text), so there `IS NOT` alone sees every change. The rules are
/// SQLite's (datatype3.html, "Determination Of Column Affinity"); in STRICT tables only ANY
/// keeps values as given.
fn holds_mixed_numbers(declared: &str, strict: bool) -> bool {
    let t = declared.to_ascii_uppercase();
    if strict {
        return t == "ANY";
    }
    let has = |s: &str| t.contains(s);
    if has("INT") || has("CHAR") || has("CLOB") || has("TEXT") {
        return false;
    }
    t.is_empty() || has("BLOB")
}

/// What the metadata says of a table: its id, and its current shape if it has one.
struct Registration {
    table_id: i64,
    shape: Option<(i64, Shape)>,
    /// enabled, and its triggers still there (DROP TABLE takes them along)
    capturing: bool,
}

fn registration(conn: &Conn, name: &Value) -> Result<Registration> {
    let mut known = conn.prepare(
        "SELECT t.id, t.enabled, s.id, s.columns, s.pk
         FROM main._sync_tables t LEFT JOIN main._sync_shapes s ON s.id = t.shape
         WHERE t.name = ?1",
    )?;
    known.bind(1, name)?;
    let Some(row) = known.step()? else {
        let table_id = conn.insert(
            "INSERT INTO main._sync_tables(name, enabled) VALUES (?1, 0)",
            std::slice::from_ref(name),
        )?;
        return Ok(Registration {
            table_id,
            shape: None,
            capturing: false,
        });
    };
    let table_id = row.column_int(0);
    let enabled = row.column_int(1) == 1;
    let shape = match row.column(2)?.as_i64() {
        Some(id) => Some((id, Shape::decode(&row.column(3)?, &row.column(4)?)?)),
        None => None,
    };
    let has_triggers = conn
        .query_value(
            "SELECT 1 FROM main.sqlite_schema WHERE type = 'trigger' AND name IN (?1, ?2)",
            &[
                Value::Text(trigger_name(table_id, "insert")),
                Value::Text(old_trigger_name(table_id, "insert")),
            ],
        )?
        .is_some();
    Ok(Registration {
        table_id,
        shape,
        capturing: enabled && has_triggers,
    })
}

/// Installs capture on `table`; returns, when the table was enabled before and not captured
/// since (its rows are then to be caught up with, apply/catch_up.rs), whether it is declared
/// otherwise now.
fn enable(conn: &Conn, table: &Table) -> Result<Option<bool>> {
    let name = Value::Text(table.name.clone());
    let known = registration(conn, &name)?;
    let shape_id = match known.shape {
        Some((id, ref shape)) if known.capturing && shape.declared_alike(&table.shape) => {
            refresh(conn, &capture_of(table, known.table_id, id))?;
            return Ok(None);
        }
        Some((id, ref shape)) if shape.declared_alike(&table.shape) => id,
        _ => {
            let (columns, pk) = table.shape.encode();
            conn.insert(
                "INSERT INTO main._sync_shapes(table_id, columns, pk) VALUES (?1, ?2, ?3)",
                &[Value::Integer(known.table_id), columns, pk],
            )?
        }
    };
    log::widen(conn, table.shape.columns.len())?;
    // peers learn how this device declares the table from its bundles (log/declared.rs)
    log::declared::record_own(conn, &table.name, &table.shape)?;
    drop_triggers(conn, known.table_id)?;
    let capture = capture_of(table, known.table_id, shape_id);
    for sql in capture.triggers() {
        conn.exec(&sql, &[])?;
    }
    conn.exec(
        "UPDATE main._sync_tables SET enabled = 1, shape = ?2, name = ?3 WHERE id = ?1",
        &[
            Value::Integer(known.table_id),
            Value::Integer(shape_id),
            name,
        ],
    )?;
    let has_rows = || -> Result<bool> {
        crate::schema::upgrade(conn)?; // _sync_kept, in a database an earlier build made
        let sql = "SELECT 1 FROM main._sync_rows WHERE table_id = ?1
                   UNION ALL SELECT 1 FROM main._sync_kept WHERE table_id = ?1 LIMIT 1";
        Ok(conn
            .query_value(sql, &[Value::Integer(known.table_id)])?
            .is_some())
    };
    match known.shape {
        // a table enabled before, or one received ops name: what changed while capture was
        // off is caught up with, the kept ops fill it
        _ if !known.capturing && (known.shape.is_some() || has_rows()?) => {
            let before = known.shape.as_ref().map(|(_, shape)| shape);
            return Ok(Some(
                before.is_some_and(|b| declared_otherwise(b, &table.shape)),
            ));
        }
        // rows written before capture was ever on reach peers this way
        _ if !known.capturing => conn.exec(&capture.existing_rows(), &[])?,
        Some((_, ref old)) if grown(old, &table.shape) => {
            record_added_columns(conn, &capture, old.columns.len())?
        }
        _ => {}
    }
    Ok(None)
}

/// Whether `new` declares a column both shapes name with another type affinity, or another
/// PRIMARY KEY (shapes of earlier builds know no types).
fn declared_otherwise(old: &Shape, new: &Shape) -> bool {
    let key = |s: &Shape| -> Vec<String> {
        s.pk.iter()
            .map(|&i| s.columns[i].to_ascii_lowercase())
            .collect()
    };
    if key(old) != key(new) {
        return true;
    }
    if old.types.is_empty() || new.types.is_empty() {
        return false;
    }
    (old.columns.iter().zip(&old.types)).any(|(column, was)| {
        (new.columns.iter().zip(&new.types))
            .any(|(c, now)| c.eq_ignore_ascii_case(column) && !log::stored_alike(was, now))
    })
}

/// Whether `new` is `old` with columns added at the end (what `ALTER TABLE … ADD COLUMN` does).
fn grown(old: &Shape, new: &Shape) -> bool {
    new.pk == old.pk
        && new.columns.len() > old.columns.len()
        && new.columns[..old.columns.len()] == old.columns[..]
}

/// Records, as one update op per row, the values of the columns from position `from` on that
/// differ from the column's default: written after `ALTER TABLE … ADD COLUMN` and before
/// capture knew of the column (the triggers of the old shape did not see them).
fn record_added_columns(conn: &Conn, capture: &Capture, from: usize) -> Result<()> {
    let added: Vec<usize> = (from..capture.shape.columns.len()).collect();
    let mut defaults = Vec::with_capacity(added.len());
    for &i in &added {
        defaults.push(default_of(
            conn,
            capture.table_name,
            &capture.shape.columns[i],
        )?);
    }
    // column i differs from its default, bound as ?(n + 1)
    let tests: Vec<String> = (added.iter().enumerate())
        .map(|(n, &i)| capture.differ(i, &capture.col(i), &format!("?{}", n + 1)))
        .collect();
    let mask: Vec<String> = (added.iter().zip(&tests))
        .map(|(i, test)| format!("({test} << {i})"))
        .collect();
    let mut values: Vec<(usize, String)> = (capture.shape.pk.iter())
        .map(|&i| (i, capture.col(i)))
        .collect();
    for (&i, test) in added.iter().zip(&tests) {
        values.push((i, format!("CASE WHEN {test} THEN {} END", capture.col(i))));
    }
    let row = LogRow {
        shape: capture.shape_id.to_string(),
        kind: OpKind::Update,
        mask: mask.join(" | "),
        values,
    };
    let order: Vec<String> = capture.shape.pk.iter().map(|&i| capture.col(i)).collect();
    let from = format!(
        "FROM main.{} WHERE {} ORDER BY {}",
        capture.table,
        tests.join(" OR "),
        order.join(", ")
    );
    conn.exec(&row.insert_select("main._sync_ops", &from), &defaults)
}

/// The value a row holds in column `column` of `table` when nothing wrote it: its DEFAULT (a
/// constant, as ADD COLUMN requires), or NULL.
pub fn default_of(conn: &Conn, table: &str, column: &str) -> Result<Value> {
    let default = conn.query_value(
        "SELECT dflt_value FROM pragma_table_xinfo(?1, 'main') WHERE name = ?2",
        &[Value::Text(table.into()), Value::Text(column.into())],
    )?;
    match default {
        // the expression as the table's own declaration spells it (SQLite's schema, not input)
        Some(Value::Text(expression)) => Ok(conn
            .query_value(&format!("SELECT {expression}"), &[])?
            .unwrap_or(Value::Null)),
        _ => Ok(Value::Null),
    }
}

/// The synced tables that gained columns since their capture was installed (`ALTER TABLE …
/// ADD COLUMN`, from whatever connection), each with the names of those columns. Reads only.
/// A synced table that changed in a way sync does not follow (gone or renamed, a column
/// renamed or dropped, its capture triggers gone with a DROP TABLE) is an error that says
/// what to do, for the tables `refuse` names: its writes would be lost, or name what peers
/// cannot place.
pub fn added_columns(
    conn: &Conn,
    tables: &[SyncedTable],
    refuse: Refuse,
) -> Result<Vec<(String, Vec<String>)>> {
    let mut lost = conn.prepare(
        "SELECT t.name FROM main._sync_tables t WHERE t.enabled AND NOT EXISTS (
           SELECT 1 FROM main.sqlite_schema s
           WHERE s.type = 'trigger'
             AND s.name LIKE '\\_sync\\_' || t.id || '\\_insert%' ESCAPE '\\')",
    )?;
    let mut uncaptured = Vec::new();
    while let Some(row) = lost.step()? {
        uncaptured.push(row.column(0)?.as_text().unwrap_or_default().to_string());
    }
    drop(lost);
    let mut names = conn
        .prepare("SELECT name FROM pragma_table_xinfo(?1, 'main') WHERE hidden = 0 ORDER BY cid")?;
    let mut grown = Vec::new();
    for synced in tables {
        names.bind_all(&[Value::Text(synced.name.clone())])?;
        let mut now = Vec::with_capacity(synced.shape.columns.len());
        while let Some(row) = names.step()? {
            now.push(row.column(0)?.as_text().unwrap_or_default().to_string());
        }
        names.reset();
        let old = &synced.shape.columns;
        let (q, call) = (quote_ident(&synced.name), quote_literal(&synced.name));
        let problem = if now.is_empty() {
            format!(
                "synced table {q} is not in this database any more (dropped, or renamed: \
                 ALTER TABLE … RENAME is not followed yet): create it again as it was, or \
                 call sync_disable({call}) (and sync_enable with its new name, if it was \
                 renamed; docs/limits.md)"
            )
        } else if now.len() > old.len() && now[..old.len()] == old[..] {
            grown.push((synced.name.clone(), now.split_off(old.len())));
            continue;
        } else if now != *old {
            format!(
                "the columns of synced table {q} changed in a way sync does not follow yet \
                 (RENAME COLUMN or DROP COLUMN; it follows ADD COLUMN): it has ({}), its ops \
                 name ({}). To go on, call sync_disable({call}), then sync_enable({call}), \
                 and make the same change on every device (docs/limits.md)",
                now.join(", "),
                old.join(", ")
            )
        } else if uncaptured.contains(&synced.name) {
            format!(
                "synced table {q} lost its capture (it was dropped and created again, or its \
                 triggers were dropped): its writes since then were not captured. Call \
                 sync_enable({call}) to capture it again (docs/limits.md)"
            )
        } else {
            continue;
        };
        match refuse {
            Refuse::All => return Err(Error::new(problem)),
            Refuse::AllBut(name) if !name.eq_ignore_ascii_case(&synced.name) => {
                return Err(Error::new(problem))
            }
            _ => {}
        }
    }
    Ok(grown)
}

/// `'name'`: a name as an SQL string literal, for an error to show the call to make.
fn quote_literal(name: &str) -> String {
    format!("'{}'", name.replace('\'', "''"))
}

/// `ALTER TABLE … ADD COLUMN` on a synced table needs no call: each sync call follows the
/// columns `added_columns` found, as `sync_enable` would (a new shape and triggers, and the
/// values written to the new columns before that recorded as ops). Other changes of a table's
/// columns are left to `sync_enable`. Returns the tables it followed (those capturing).
pub fn follow_added_columns(
    conn: &Conn,
    grown: Vec<(String, Vec<String>)>,
) -> Result<Vec<(String, Vec<String>)>> {
    let mut followed = Vec::new();
    for (name, added) in grown {
        let table = inspect(conn, &name)?;
        if registration(conn, &Value::Text(name.clone()))?.capturing {
            enable(conn, &table)?; // capturing: nothing to catch up with
            followed.push((name, added));
        }
    }
    Ok(followed)
}

fn capture_of(table: &Table, table_id: i64, shape_id: i64) -> Capture<'_> {
    Capture {
        table: quote_ident(&table.name),
        table_name: &table.name,
        table_id,
        shape_id,
        shape: &table.shape,
        columns: &table.columns,
    }
}

/// Creates a capturing table's triggers again when they are not the ones this build writes (an
/// earlier build's): called by `sync_enable` of an enabled table and by `sync_init`.
fn refresh(conn: &Conn, capture: &Capture) -> Result<()> {
    let mut stored =
        conn.prepare("SELECT sql FROM main.sqlite_schema WHERE type = 'trigger' AND name = ?1")?;
    let mut current = true;
    for (name, sql) in capture.named_triggers() {
        stored.bind_all(&[Value::Text(name)])?;
        let same = match stored.step()? {
            // SQLite keeps the text as written, less the schema name of the trigger
            Some(row) => row.column(0)?.as_text() == Some(&sql.replacen(" main.", " ", 1)),
            None => false,
        };
        stored.reset();
        current &= same;
    }
    drop(stored);
    if current {
        return Ok(());
    }
    drop_triggers(conn, capture.table_id)?;
    for sql in capture.triggers() {
        conn.exec(&sql, &[])?;
    }
    Ok(())
}

/// Brings every capturing table's triggers up to this build's (see `refresh`).
pub fn refresh_all(conn: &Conn) -> Result<()> {
    for synced in log::synced_tables(conn)? {
        let Ok(table) = inspect(conn, &synced.name) else {
            continue; // dropped or changed: sync_enable or the next import deals with it
        };
        if table.shape != synced.shape || !registration(conn, &Value::Text(synced.name))?.capturing
        {
            continue;
        }
        refresh(conn, &capture_of(&table, synced.id, synced.shape_id))?;
    }
    Ok(())
}

/// A synced table's capture triggers as SQLite stores them, to drop and create again.
pub struct Saved(Vec<(String, String)>);

impl Saved {
    /// The capture triggers of `tables`.
    pub fn of(conn: &Conn, tables: &[&str]) -> Result<Saved> {
        let mut stmt = conn.prepare(
            "SELECT name, sql FROM main.sqlite_schema WHERE type = 'trigger'
               AND tbl_name = ?1 COLLATE NOCASE AND name LIKE '\\_sync\\_%' ESCAPE '\\'
             ORDER BY rowid",
        )?;
        let mut out = Vec::new();
        for table in tables {
            stmt.bind_all(&[Value::Text(table.to_string())])?;
            while let Some(row) = stmt.step()? {
                let text = |v: Value| v.as_text().unwrap_or_default().to_string();
                out.push((text(row.column(0)?), text(row.column(1)?)));
            }
            stmt.reset();
        }
        Ok(Saved(out))
    }

    pub fn drop_all(&self, conn: &Conn) -> Result<()> {
        for (name, _) in &self.0 {
            conn.exec(&format!("DROP TRIGGER main.{}", quote_ident(name)), &[])?;
        }
        Ok(())
    }

    pub fn create_all(&self, conn: &Conn) -> Result<()> {
        for (_, sql) in &self.0 {
            conn.exec(sql, &[])?;
        }
        Ok(())
    }
}

/// Keeps every synced table's capture triggers first in line: SQLite fires the triggers of a
/// table newest first, and an AFTER trigger of the app that writes the row again (an
/// `updated_at`) must run after capture has recorded the write it follows, or the log would
/// show the two writes in the wrong order. A table with a trigger of the app's newer than its
/// capture triggers gets them created again (they become the newest). Called by `sync_init`,
/// `sync_enable` and `sync_bundle_in`.
pub fn first_in_line(conn: &Conn) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT t.name FROM main._sync_tables t WHERE t.enabled AND EXISTS (
           SELECT 1 FROM main.sqlite_schema a
           WHERE a.type = 'trigger' AND a.tbl_name = t.name COLLATE NOCASE
             AND a.name NOT LIKE '\\_sync\\_%' ESCAPE '\\'
             AND a.rowid > (SELECT min(c.rowid) FROM main.sqlite_schema c
                            WHERE c.type = 'trigger' AND c.tbl_name = t.name COLLATE NOCASE
                              AND c.name LIKE '\\_sync\\_%' ESCAPE '\\'))",
    )?;
    let mut late = Vec::new();
    while let Some(row) = stmt.step()? {
        late.push(row.column(0)?.as_text().unwrap_or_default().to_string());
    }
    drop(stmt);
    if late.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = late.iter().map(String::as_str).collect();
    let saved = Saved::of(conn, &names)?;
    saved.drop_all(conn)?;
    saved.create_all(conn)
}

const TRIGGER_KINDS: [&str; 4] = ["insert", "update", "rekey", "delete"];

/// A capture trigger's name. SQLite names the trigger, and nothing else, when a change of the
/// table breaks it (`ALTER TABLE … DROP COLUMN` of a captured column), so the name says what
/// to do.
fn trigger_name(table_id: i64, kind: &str) -> String {
    format!(
        "{INTERNAL_PREFIX}{table_id}_{kind} (sqlite-sync capture: to drop a column, call \
         sync_disable on the table first and sync_enable after)"
    )
}

/// The name earlier builds gave it.
fn old_trigger_name(table_id: i64, kind: &str) -> String {
    format!("{INTERNAL_PREFIX}{table_id}_{kind}")
}

fn drop_triggers(conn: &Conn, table_id: i64) -> Result<()> {
    for kind in TRIGGER_KINDS {
        for name in [
            trigger_name(table_id, kind),
            old_trigger_name(table_id, kind),
        ] {
            let sql = format!("DROP TRIGGER IF EXISTS main.{}", quote_ident(&name));
            conn.exec(&sql, &[])?;
        }
    }
    Ok(())
}

/// Builds the SQL that captures one table.
struct Capture<'a> {
    table: String,
    /// the table's name as SQLite spells it
    table_name: &'a str,
    table_id: i64,
    shape_id: i64,
    shape: &'a Shape,
    columns: &'a Columns,
}

impl Capture<'_> {
    fn col(&self, i: usize) -> String {
        quote_ident(&self.shape.columns[i])
    }

    fn all(&self) -> impl Iterator<Item = usize> {
        0..self.shape.columns.len()
    }

    /// `INSERT INTO _sync_ops …` for one op; `values` pairs a column position with the SQL
    /// expression of its value.
    fn append(&self, kind: OpKind, mask: Option<String>, values: Vec<(usize, String)>) -> String {
        let row = LogRow {
            shape: self.shape_id.to_string(),
            kind,
            mask: mask.unwrap_or_else(|| "NULL".into()),
            values,
        };
        row.insert("_sync_ops") + ";"
    }

    /// ` COLLATE BINARY` where column `i`'s own collation would call different text equal.
    fn binary(&self, i: usize) -> &'static str {
        if self.columns.collated[i] {
            " COLLATE BINARY"
        } else {
            ""
        }
    }

    /// Column `i` differs between OLD and NEW, in value, in storage class or in any byte.
    fn changed(&self, i: usize) -> String {
        let c = self.col(i);
        self.differ(i, &format!("OLD.{c}"), &format!("NEW.{c}"))
    }

    /// `a` and `b`, values of column `i`, differ in value, in storage class or in any byte.
    fn differ(&self, i: usize, a: &str, b: &str) -> String {
        let binary = self.binary(i);
        if self.columns.mixed_numbers[i] {
            format!("({a} IS NOT {b}{binary} OR typeof({a}) <> typeof({b}))")
        } else {
            format!("({a} IS NOT {b}{binary})")
        }
    }

    /// The columns an update can change without changing the key: every non-key column, and
    /// key columns whose storage class can change while the value compares equal.
    fn changeable(&self) -> impl Iterator<Item = usize> + '_ {
        self.all()
            .filter(|&i| !self.shape.pk.contains(&i) || self.columns.mixed_numbers[i])
    }

    /// OLD and NEW name the same row.
    fn same_key(&self) -> String {
        let terms: Vec<String> = self
            .shape
            .pk
            .iter()
            .map(|&i| format!("OLD.{0} IS NEW.{0}{1}", self.col(i), self.binary(i)))
            .collect();
        format!("({})", terms.join(" AND "))
    }

    /// `UPDATE OF` the key columns: SQLite skips the trigger, WHEN and all, for an UPDATE that
    /// sets none of them. The rowid's names are listed too, because setting the rowid of a table
    /// whose key is an INTEGER PRIMARY KEY changes its key.
    fn update_of_key(&self) -> String {
        let key: Vec<String> = self.shape.pk.iter().map(|&i| self.col(i)).collect();
        format!("UPDATE OF {}, rowid, _rowid_, oid", key.join(", "))
    }

    fn row_of(&self, row: &str) -> Vec<(usize, String)> {
        self.all()
            .map(|i| (i, format!("{row}.{}", self.col(i))))
            .collect()
    }

    fn key_of(&self, row: &str) -> Vec<(usize, String)> {
        self.shape
            .pk
            .iter()
            .map(|&i| (i, format!("{row}.{}", self.col(i))))
            .collect()
    }

    fn trigger(
        &self,
        kind: &str,
        event: &str,
        when: Option<String>,
        body: String,
    ) -> (String, String) {
        let when = when.map(|w| format!(" WHEN {w}")).unwrap_or_default();
        let name = trigger_name(self.table_id, kind);
        let sql = format!(
            "CREATE TRIGGER main.{} AFTER {event} ON {}{when} BEGIN {body} END",
            quote_ident(&name),
            self.table
        );
        (name, sql)
    }

    fn triggers(&self) -> Vec<String> {
        self.named_triggers()
            .into_iter()
            .map(|(_, sql)| sql)
            .collect()
    }

    /// Each capture trigger's name and SQL.
    fn named_triggers(&self) -> Vec<(String, String)> {
        let any_changed: Vec<String> = self.changeable().map(|i| self.changed(i)).collect();
        let mask: Vec<String> = self
            .changeable()
            .map(|i| format!("({} << {i})", self.changed(i)))
            .collect();
        let update_values = self
            .all()
            .map(|i| {
                let expr = if self.shape.pk.contains(&i) {
                    format!("NEW.{}", self.col(i))
                } else {
                    format!("CASE WHEN {} THEN NEW.{} END", self.changed(i), self.col(i))
                };
                (i, expr)
            })
            .collect();
        let mut triggers = vec![
            self.trigger(
                "insert",
                "INSERT",
                None,
                self.append(OpKind::Insert, None, self.row_of("NEW")),
            ),
            self.trigger(
                "rekey",
                &self.update_of_key(),
                Some(format!("NOT {}", self.same_key())),
                self.append(OpKind::Delete, None, self.key_of("OLD"))
                    + &self.append(OpKind::Insert, None, self.row_of("NEW")),
            ),
            self.trigger(
                "delete",
                "DELETE",
                None,
                self.append(OpKind::Delete, None, self.key_of("OLD")),
            ),
        ];
        // a table whose every column is part of a key that cannot change class has no update
        // that keeps its key: the rekey trigger sees them all
        if !any_changed.is_empty() {
            triggers.push(self.trigger(
                "update",
                "UPDATE",
                Some(format!(
                    "{} AND ({})",
                    self.same_key(),
                    any_changed.join(" OR ")
                )),
                self.append(OpKind::Update, Some(mask.join(" | ")), update_values),
            ));
        }
        triggers
    }

    /// Records every row already in the table as an insert op, in PRIMARY KEY order.
    fn existing_rows(&self) -> String {
        let row = LogRow {
            shape: self.shape_id.to_string(),
            kind: OpKind::Insert,
            mask: "NULL".into(),
            values: self.all().map(|i| (i, self.col(i))).collect(),
        };
        let order: Vec<String> = self.shape.pk.iter().map(|&i| self.col(i)).collect();
        let from = format!("FROM main.{} ORDER BY {}", self.table, order.join(", "));
        row.insert_select("main._sync_ops", &from)
    }
}
