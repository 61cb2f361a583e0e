//! Bounded history: the stable clock (what every device known here has), learned from what
//! each device says it has and, through relays, from what bundles' writers knew.

mod common;

use common::{exec, Device};
use std::collections::BTreeMap;

const TODOS: &str = "CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT, n INTEGER);
                     SELECT sync_enable('todos');";

/// `sync_status()`'s stable clock: device id -> seq.
fn stable(device: &Device) -> BTreeMap<String, i64> {
    let json: String = device
        .conn()
        .query_row("SELECT sync_status() -> '$.stable'", [], |r| r.get(0))
        .unwrap();
    let mut out = BTreeMap::new();
    let body = json.trim_matches(|c| c == '{' || c == '}');
    for entry in body.split(',').filter(|e| !e.is_empty()) {
        let (id, seq) = entry.split_once(':').unwrap();
        out.insert(id.trim_matches('"').to_string(), seq.parse().unwrap());
    }
    out
}

fn send(from: &Device, to: &Device) {
    to.import(&from.bundle_for(Some(to)));
}

/// Each leaf writes `n` rows and sends the hub what it lacks; the hub imports them all, then
/// sends each leaf what it lacks.
fn round(hub: &Device, leaves: &[Device], round: usize, n: usize) {
    for leaf in leaves {
        for i in 0..n {
            exec(
                leaf.conn(),
                &format!(
                    "INSERT INTO todos VALUES ('{}-{round}-{i}', 'x', {i})",
                    leaf.name
                ),
            );
        }
        send(leaf, hub);
    }
    for leaf in leaves {
        send(hub, leaf);
    }
}

/// A device's own ops are stable only once a peer said it has them, with the hashes they have
/// here: a device alone might be a backup put back, whose next writes are another history of
/// ops its peers hold (and may have compacted).
#[test]
fn a_device_alone_holds_its_ops_as_stable_only_once_a_peer_has_them() {
    let (a, b) = (Device::new("a", TODOS), Device::new("b", TODOS));
    exec(
        a.conn(),
        "INSERT INTO todos VALUES ('1', 'x', 1), ('2', 'y', 2)",
    );
    assert_eq!(stable(&a), BTreeMap::new());
    send(&a, &b);
    assert_eq!(stable(&a), BTreeMap::new(), "b has not said so yet");
    send(&b, &a);
    assert_eq!(stable(&a), BTreeMap::from([(a.id(), 2)]));
}

/// In a star the devices hear from each other only through the hub: the hub learns what they
/// all have from their bundles' clocks, and they learn it from the hub's bundles.
#[test]
fn a_star_learns_what_every_device_has_through_the_hub() {
    let hub = Device::new("hub", TODOS);
    let leaves: Vec<Device> = ["l0", "l1", "l2"]
        .iter()
        .map(|n| Device::new(n, TODOS))
        .collect();
    round(&hub, &leaves, 1, 2);
    // each leaf told the hub only of its own ops: no op is known to be everywhere
    assert_eq!(stable(&hub), BTreeMap::new());
    round(&hub, &leaves, 2, 3);
    // every leaf had every first-round op when it sent its second round
    let first_round: BTreeMap<String, i64> = leaves.iter().map(|l| (l.id(), 2)).collect();
    assert_eq!(stable(&hub), first_round);
    for leaf in &leaves {
        assert_eq!(stable(leaf), first_round, "{}", leaf.name);
    }
    round(&hub, &leaves, 3, 1);
    let second_round: BTreeMap<String, i64> = leaves.iter().map(|l| (l.id(), 5)).collect();
    for leaf in &leaves {
        assert_eq!(stable(leaf), second_round, "{}", leaf.name);
    }

    // a device that joins: the hub does not know what it has, so the hub's stable clock waits;
    // what the leaves learned stays (the newcomer is a late joiner)
    let late = Device::new("late", TODOS);
    send(&hub, &late);
    exec(late.conn(), "INSERT INTO todos VALUES ('late', 'x', 0)");
    send(&late, &hub);
    for leaf in &leaves {
        send(&hub, leaf);
        assert_eq!(stable(leaf), second_round, "{}", leaf.name);
    }
}

/// A bundle's writer that did not know every device known here teaches nothing of what they
/// all have, and what was taught is forgotten once another device is known.
#[test]
fn a_writer_that_knew_fewer_devices_teaches_nothing() {
    let hub = Device::new("hub", TODOS);
    let leaves: Vec<Device> = ["l0", "l1"].iter().map(|n| Device::new(n, TODOS)).collect();
    round(&hub, &leaves, 1, 1);
    round(&hub, &leaves, 2, 1);
    // (l1's second-round op too: the hub relays that l1 has it, and l0 got it from the hub)
    let first_round = BTreeMap::from([(leaves[0].id(), 1), (leaves[1].id(), 2)]);
    assert_eq!(stable(&leaves[0]), first_round);
    // a third round reaches the hub; the hub then knows every leaf has the second round's ops
    for leaf in &leaves {
        exec(
            leaf.conn(),
            "INSERT INTO todos VALUES (hex(randomblob(4)), 'x', 3)",
        );
        send(leaf, &hub);
    }
    // meanwhile l0 meets x, which knows a device the hub never heard of
    let other = Device::new("other", TODOS);
    exec(other.conn(), "INSERT INTO todos VALUES ('other', 'x', 0)");
    let x = Device::new("x", TODOS);
    send(&other, &x);
    exec(x.conn(), "INSERT INTO todos VALUES ('x', 'x', 0)");
    send(&x, &leaves[0]);
    for leaf in &leaves {
        send(&hub, leaf);
    }
    // (and l0's third-round op, which the hub relays that l0 has, and l1 got from the hub)
    let second_round = BTreeMap::from([(leaves[0].id(), 3), (leaves[1].id(), 2)]);
    assert_eq!(
        stable(&leaves[1]),
        second_round,
        "l1 knows no device the hub does not"
    );
    // what l0 was taught spoke for the devices it knew then, not for x and other, which it
    // knows now; and the hub did not know them either
    assert_eq!(
        stable(&leaves[0]),
        BTreeMap::new(),
        "the hub did not know x or other"
    );
}

/// Devices that hear from each other only in a ring (each sends only to the next: a USB stick
/// passed round) learn what every device has: each bundle relays what each device its writer
/// knows has, as the writer knows it, so what a device said reaches the devices after the next
/// one; compaction then removes ops on every device, and they end alike. Whatever came before
/// the ring: the devices set up along it, from one device's full bundle imported by all (as
/// the README adds a device), or after a meeting where every device heard from every other
/// (a word heard once and never again must not hold the others back).
#[test]
fn a_ring_learns_what_every_device_has_and_compacts() {
    for (size, setup) in [
        (3, "ring"),
        (4, "ring"),
        (4, "full"),
        (5, "full"),
        (3, "mesh"),
        (4, "mesh"),
    ] {
        let ring: Vec<Device> = (0..size)
            .map(|i| Device::new(&format!("r{i}"), TODOS))
            .collect();
        exec(ring[0].conn(), "INSERT INTO todos VALUES ('x', 'x', 0)");
        match setup {
            "full" => {
                let full = ring[0].bundle_for(None);
                for d in &ring[1..] {
                    d.import(&full);
                }
            }
            "mesh" => {
                for _ in 0..2 {
                    for a in &ring {
                        for b in ring.iter().filter(|b| b.name != a.name) {
                            send(a, b);
                        }
                    }
                }
            }
            _ => {}
        }
        let mut removed = vec![0; size];
        for pass in 0..(3 * size + 2) {
            for (i, d) in ring.iter().enumerate() {
                exec(
                    d.conn(),
                    &format!("UPDATE todos SET title = '{}-{pass}', n = n + 1", d.name),
                );
                send(d, &ring[(i + 1) % size]);
                removed[i] += common::compact_removed(d);
            }
        }
        let at = |d: &Device| -> i64 { stable(d).values().copied().min().unwrap_or(0) };
        for (i, d) in ring.iter().enumerate() {
            assert!(
                stable(d).len() == size && at(d) > 2 * size as i64,
                "{size} {setup}: {}'s stable clock names every device, past the first passes: {:?}",
                d.name,
                stable(d)
            );
            assert!(
                removed[i] > 0,
                "{size} {setup}: {} removed ops: {removed:?}",
                d.name
            );
        }
        // two quiet passes bring every device the last ops
        for _ in 0..2 {
            for (i, d) in ring.iter().enumerate() {
                send(d, &ring[(i + 1) % size]);
            }
        }
        for d in &ring[1..] {
            assert_eq!(
                d.dump("todos"),
                ring[0].dump("todos"),
                "{size} {setup}: {}",
                d.name
            );
            assert_eq!(d.clock(), ring[0].clock(), "{size} {setup}: {}", d.name);
        }
    }
}

/// A row's live set (the ops whose writes are still live) names the table's columns by an id
/// stored once per database, not by their names in every row: the row index of a table with
/// long column names grows by a few bytes per row.
#[test]
fn live_sets_name_their_columns_once_per_database() {
    let schema = "CREATE TABLE notes(id INTEGER PRIMARY KEY, a_rather_long_title TEXT,
                    a_rather_long_description TEXT, n INTEGER);
                  SELECT sync_enable('notes');";
    let a = Device::new("a", schema);
    let b = Device::new("b", schema);
    exec(
        a.conn(),
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200)
         INSERT INTO notes SELECT i, 'title ' || i, 'description ' || i, i FROM c;",
    );
    send(&a, &b);
    // an update of every row on each side, then a concurrent one of half of them
    exec(a.conn(), "UPDATE notes SET n = n + 1");
    send(&a, &b);
    exec(
        b.conn(),
        "UPDATE notes SET a_rather_long_title = 'b' WHERE id % 2 = 0",
    );
    exec(
        a.conn(),
        "UPDATE notes SET a_rather_long_title = 'a' WHERE id % 2 = 0",
    );
    send(&a, &b);
    send(&b, &a);
    for device in [&a, &b] {
        let q = |sql: &str| -> i64 { device.conn().query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(
            q("SELECT count(*) FROM sync_conflicts WHERE NOT resolved"),
            100
        );
        assert_eq!(
            q("SELECT count(*) FROM _sync_rows WHERE length(live) > 0"),
            200
        );
        let named = "SELECT count(*) FROM _sync_rows
                     WHERE instr(live, CAST('a_rather_long_description' AS BLOB)) > 0";
        assert_eq!(q(named), 0);
        assert_eq!(q("SELECT count(*) FROM _sync_universes"), 1);
        assert!(q("SELECT max(length(live)) FROM _sync_rows") < 40);
    }
}
