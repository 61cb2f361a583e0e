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

/// Rows a multi-row statement writes at once (the store of received ops, the row index, the
/// rows of new ops): one number, so that a batch of one is a batch of the others.
pub const BATCH: usize = 64;

/// `(?1, ?2), (?3, ?4)`: the VALUES rows of a multi-row INSERT of `rows` rows of `width`
/// numbered parameters.
pub fn value_rows(rows: usize, width: usize) -> String {
    let row = |r: usize| {
        let marks: Vec<String> = (1..=width).map(|c| format!("?{}", r * width + c)).collect();
        format!("({})", marks.join(", "))
    };
    let all: Vec<String> = (0..rows).map(row).collect();
    all.join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn value_rows_number_parameters_row_by_row() {
        assert_eq!(super::value_rows(2, 3), "(?1, ?2, ?3), (?4, ?5, ?6)");
        assert_eq!(super::value_rows(1, 1), "(?1)");
    }
}
