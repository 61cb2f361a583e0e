//! Property: whatever values a row holds, its insert op holds the same values (same storage
//! class, same bits), and an update op holds exactly the columns that changed, with their new
//! values.

mod common;

use common::*;
use proptest::prelude::*;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

fn any_value() -> impl Strategy<Value = Value> {
    let numbers_as_text = prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        Just("1.0".to_string()),
        Just(" 12 ".to_string()),
    ];
    let special_real = prop::sample::select(vec![
        0.0,
        -0.0,
        0.1 + 0.2,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        1.0,
    ]);
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Integer),
        prop::sample::select(vec![i64::MIN, i64::MAX, 0, 1, -1]).prop_map(Value::Integer),
        any::<f64>()
            .prop_filter("SQLite stores NaN as NULL", |f| !f.is_nan())
            .prop_map(Value::Real),
        special_real.prop_map(Value::Real),
        ".{0,40}".prop_map(Value::Text),
        numbers_as_text.prop_map(Value::Text),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Value::Blob),
    ]
}

/// SQL's `OLD.c IS NOT NEW.c OR typeof(OLD.c) <> typeof(NEW.c)`.
fn changed(old: &Value, new: &Value) -> bool {
    match (old, new) {
        (Value::Real(a), Value::Real(b)) => a != b, // -0.0 = 0.0: the sign of zero is invisible
        (a, b) => std::mem::discriminant(a) != std::mem::discriminant(b) || a != b,
    }
}

fn key(i: usize, class: u8) -> Value {
    match class % 4 {
        0 => Value::Integer(i as i64 * 7 - 3),
        1 => Value::Text(format!("k{i}")),
        2 => Value::Blob(vec![i as u8, 0, 255]),
        _ => Value::Real(i as f64 + 0.5),
    }
}

/// Value columns of every affinity: none, INTEGER, TEXT, REAL, NUMERIC, BLOB, and (STRICT) ANY;
/// `g` compares text without case (NOCASE), which must not hide a change of case.
const COLUMNS: [&str; 7] = ["a", "b", "c", "d", "e", "f", "g"];

fn fresh(strict: bool) -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    load(&conn);
    let table = if strict {
        "CREATE TABLE t(k ANY PRIMARY KEY, a ANY, b ANY, c ANY, d ANY, e ANY, f ANY,
                        g TEXT COLLATE NOCASE) STRICT, WITHOUT ROWID;"
    } else {
        "CREATE TABLE t(k PRIMARY KEY, a, b INTEGER, c TEXT, d REAL, e NUMERIC, f BLOB,
                        g TEXT COLLATE NOCASE) WITHOUT ROWID;"
    };
    exec(
        &conn,
        &format!("SELECT sync_init(); {table} SELECT sync_enable('t');"),
    );
    conn
}

/// The row as SQLite stored it (after type affinity).
fn stored(conn: &Connection, k: &Value) -> Vec<Value> {
    conn.query_row(
        "SELECT k, a, b, c, d, e, f, g FROM t WHERE k = ?1",
        [k],
        |r| (0..8).map(|i| r.get::<_, Value>(i)).collect(),
    )
    .unwrap()
}

/// A row's values: any for `a`-`f`, text (or NULL) for the STRICT table's `g`.
fn seven_values() -> impl Strategy<Value = Vec<Value>> {
    let text = prop_oneof![Just(Value::Null), "[a-zA-Z ]{0,6}".prop_map(Value::Text)];
    (prop::collection::vec(any_value(), 6), text).prop_map(|(mut v, g)| {
        v.push(g);
        v
    })
}

/// The same text with the case of each letter swapped.
fn swap_case(v: &Value) -> Value {
    match v {
        Value::Text(s) => Value::Text(
            s.chars()
                .map(|c| match c.is_ascii_lowercase() {
                    true => c.to_ascii_uppercase(),
                    false => c.to_ascii_lowercase(),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn insert_and_update_ops_hold_exact_values(
        strict in any::<bool>(),
        rows in prop::collection::vec((seven_values(), seven_values(), any::<u8>(), any::<u8>()), 1..6)
    ) {
        let conn = fresh(strict);
        for (i, (before, after, touch, class)) in rows.iter().enumerate() {
            // half the time `g` changes only in case
            let mut after = after.clone();
            if class & 0x80 != 0 {
                after[6] = swap_case(&before[6]);
            }
            let k = key(i, *class);
            let row: Vec<Value> = std::iter::once(k.clone()).chain(before.iter().cloned()).collect();
            conn.execute("INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", params_from_iter(&row)).unwrap();
            let old = stored(&conn, &k);
            let insert = raw_ops(&conn).pop().unwrap();
            prop_assert_eq!(insert.kind, 0);
            for (c, v) in old.iter().enumerate() {
                prop_assert!(same_value(&insert.values[c], v), "insert col {}: {:?} captured as {:?}", c, v, insert.values[c]);
            }
            // update a random subset of the value columns
            let set: Vec<usize> = (0..7).filter(|j| touch & (1 << j) != 0).collect();
            if set.is_empty() { continue; }
            let assignments: Vec<String> = set.iter().map(|&j| format!("{} = ?{}", COLUMNS[j], j + 2)).collect();
            let mut params = vec![k.clone(); 1];
            params.extend(after.iter().cloned());
            params.truncate(set.last().unwrap() + 2); // bind exactly the parameters the SQL names
            let before_count = op_count(&conn);
            conn.execute(&format!("UPDATE t SET {} WHERE k = ?1", assignments.join(", ")), params_from_iter(&params)).unwrap();
            let new = stored(&conn, &k);
            let expected_mask: i64 = (1..8).filter(|&c| changed(&old[c], &new[c])).map(|c| 1 << c).sum();
            if expected_mask == 0 {
                prop_assert_eq!(op_count(&conn), before_count, "an update that changes nothing appends nothing");
                continue;
            }
            let update = raw_ops(&conn).pop().unwrap();
            prop_assert_eq!(update.seq, before_count + 1);
            prop_assert_eq!(update.kind, 1);
            prop_assert_eq!(update.mask, Some(expected_mask));
            prop_assert!(same_value(&update.values[0], &k));
            for (c, new_value) in new.iter().enumerate().skip(1) {
                let expected = if expected_mask & (1 << c) != 0 { new_value.clone() } else { Value::Null };
                prop_assert!(same_value(&update.values[c], &expected), "update col {}: {:?} vs {:?}", c, update.values[c], expected);
            }
        }
    }
}
