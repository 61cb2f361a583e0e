//! Property: whatever values a row holds, its insert op holds the same values (same storage
//! class, same bits), and an update op holds exactly the columns that changed, with their new
//! values.

mod common;

use common::*;
use proptest::prelude::*;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

fn any_value() -> impl Strategy<Value = Value> {
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

fn fresh() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    load(&conn);
    exec(
        &conn,
        "SELECT sync_init();
                 CREATE TABLE t(k PRIMARY KEY, a, b, c) WITHOUT ROWID;
                 SELECT sync_enable('t');",
    );
    conn
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn insert_and_update_ops_hold_exact_values(
        rows in prop::collection::vec((prop::collection::vec(any_value(), 3), prop::collection::vec(any_value(), 3), any::<u8>(), any::<u8>()), 1..8)
    ) {
        let conn = fresh();
        for (i, (before, after, touch, class)) in rows.iter().enumerate() {
            let k = key(i, *class);
            let row: Vec<Value> = std::iter::once(k.clone()).chain(before.iter().cloned()).collect();
            conn.execute("INSERT INTO t VALUES (?1, ?2, ?3, ?4)", params_from_iter(&row)).unwrap();
            // update a random subset of a, b, c
            let set: Vec<usize> = (0..3).filter(|j| touch & (1 << j) != 0).collect();
            if set.is_empty() { continue; }
            let assignments: Vec<String> = set.iter().map(|j| format!("{} = ?{}", ["a", "b", "c"][*j], j + 2)).collect();
            let mut params = vec![k.clone(), Value::Null, Value::Null, Value::Null];
            for &j in &set { params[j + 1] = after[j].clone(); }
            params.truncate(set.last().unwrap() + 2); // bind exactly the parameters the SQL names
            let before_count = op_count(&conn);
            conn.execute(&format!("UPDATE t SET {} WHERE k = ?1", assignments.join(", ")), params_from_iter(&params)).unwrap();
            let expected_mask: i64 = set.iter().filter(|&&j| changed(&before[j], &after[j])).map(|j| 1 << (j + 1)).sum();
            let ops = raw_ops(&conn);
            let insert = &ops[before_count as usize - 1];
            prop_assert_eq!(insert.kind, 0);
            for (c, v) in row.iter().enumerate() {
                prop_assert!(same_value(&insert.values[c], v), "insert col {}: {:?} captured as {:?}", c, v, insert.values[c]);
            }
            if expected_mask == 0 {
                prop_assert_eq!(op_count(&conn), before_count, "an update that changes nothing appends nothing");
                continue;
            }
            let update = ops.last().unwrap();
            prop_assert_eq!(update.kind, 1);
            prop_assert_eq!(update.mask, Some(expected_mask));
            prop_assert!(same_value(&update.values[0], &k));
            for (j, new) in after.iter().enumerate() {
                let expected = if expected_mask & (1 << (j + 1)) != 0 { new.clone() } else { Value::Null };
                prop_assert!(same_value(&update.values[j + 1], &expected), "update col {}: {:?} vs {:?}", j, update.values[j + 1], expected);
            }
        }
    }
}
