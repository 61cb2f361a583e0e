//! SQL text built from names: the only place a name becomes SQL.
//!
//! Invariant: a table or column name reaches SQL only through `quote_ident` (a double-quoted
//! identifier, inner quotes doubled), and only after it was read back from the database's own
//! schema or checked against it; values never reach SQL text (they are bound).

/// `name` as a quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"a" IS ?1 AND "b" IS ?2 …` for the key columns `names`.
pub fn key_match<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let terms: Vec<String> = names
        .enumerate()
        .map(|(i, c)| format!("{} IS ?{}", quote_ident(c), i + 1))
        .collect();
    terms.join(" AND ")
}
