//! The stable clock: per device (history), the ops that every device known here has. A device
//! that has an op writes every later op after it, so no future op of a known device can be
//! concurrent with an op at or below the stable clock: what compaction may remove once no row
//! depends on it (DESIGN 5.4).
//!
//! Where it is learned: from what each device known here said it has (the clocks of its
//! bundles, `_sync_peers`; this device's own applied clock), the least of them per device, this
//! device's own ops no further than a peer confirmed them with the hashes they have here (a
//! database alone may be a backup put back, or a copy, whose next ops are another history of
//! ops its peers hold: apply/behind.rs; its compaction point must not name them), and a
//! peer's own ops no further than it said a peer confirmed them where its last bundle knew
//! nothing of this device (a device set up from the full bundle of such a backup must not
//! decide its ops alone: `said_confirmed`); and from bundles, whose manifest carries their writer's stable clock and the devices that writer
//! knew: when those are every device known here, its stable clock holds here too (so a star's
//! devices, which hear from each other only through the hub, learn what they all have). What
//! bundles taught is kept in `_sync_stable`; the rest is read when asked. Where few devices are
//! known, a bundle relays what each of them has as its writer knows it (`relayed`), kept in
//! `_sync_relayed` as what each has at least: so in a ring (A sends only to B, B to C, C to A)
//! what A said it has reaches C through B, and each device learns what all have. (A single
//! least of what they all have, relayed instead, stayed at what the stalest of them said, for
//! good, where a device heard from one only once, when it joined.)
//!
//! Invariant: each entry was, when learned, at most what every device then known here had. What
//! bundles taught grows until another device becomes known, and is then forgotten; the least of
//! what devices said (or a bundle relayed of them) goes down when a device becomes known that
//! has less (it may lack ops below what was stable before it was known: a late joiner, which
//! gets what it needs as one).

use crate::hashed::{HashMap, HashSet};

use crate::db::{Conn, Result};
use crate::log::chain::History;
use crate::log::clock::{self, Devices};
use crate::op::{DeviceId, Hash};
use crate::schema::{DeviceIdx, SELF};
use crate::value::Value;

/// Per history, the seq every device known here has, with the link of that op.
pub type Stable = HashMap<DeviceIdx, (u64, Hash)>;

/// The stable clock now: what bundles taught, or the least of what every device known here said
/// it has, whichever is more. The links of the latter are found by `link` (an export knows the
/// links of its clock's entries) or else hashed from the log.
pub fn now(
    conn: &Conn,
    history: &History,
    devices: &Devices,
    link: impl Fn(DeviceIdx, u64) -> Option<Hash>,
) -> Result<Stable> {
    let mut stable = taught(conn, devices)?;
    for (device, seq) in least(conn, devices)? {
        if seq > stable.get(&device).map_or(0, |e| e.0) {
            let hash = match link(device, seq) {
                Some(hash) => Some(hash),
                // (an op compaction removed, below a device known since: its hash is not kept)
                None if history.unhashable(device, seq)? => None,
                None => history.hash_at(device, seq)?,
            };
            if let Some(hash) = hash {
                stable.insert(device, (seq, hash));
            }
        }
    }
    Ok(stable)
}

/// The stable clock's seqs now (`now` without the links, which may need hashing).
pub fn seqs(conn: &Conn, devices: &Devices) -> Result<HashMap<DeviceIdx, u64>> {
    let mut stable: HashMap<DeviceIdx, u64> = (taught(conn, devices)?.into_iter())
        .map(|(d, (s, _))| (d, s))
        .collect();
    for (device, seq) in least(conn, devices)? {
        let e = stable.entry(device).or_default();
        *e = (*e).max(seq);
    }
    Ok(stable)
}

/// Per history, the least seq that every device known here said it has (this device: its
/// applied clock); this device's own ops no further than a peer confirmed them.
fn least(conn: &Conn, devices: &Devices) -> Result<HashMap<DeviceIdx, u64>> {
    let peers: Vec<DeviceIdx> = roots(devices).filter(|&d| d != SELF).collect();
    least_of(conn, devices, &peers)
}

/// `least` over devices `peers` only (and this device): what each said it has, or what a
/// bundle relayed that it has (`_sync_relayed`), whichever is more.
fn least_of(
    conn: &Conn,
    devices: &Devices,
    peers: &[DeviceIdx],
) -> Result<HashMap<DeviceIdx, u64>> {
    let applied = clock::applied(conn)?;
    let mut least: HashMap<DeviceIdx, u64> = match peers.len() {
        0 => applied.iter().map(|(&d, &s)| (d, s)).collect(),
        _ => {
            // per history, the least seq that every one of them has (one query: a device that
            // said nothing of it has no row, so its count falls short)
            let list: Vec<String> = peers.iter().map(|d| d.0.to_string()).collect();
            let list = list.join(", ");
            let sql = match relayed_here(conn)? {
                false => format!(
                    "SELECT device, min(seq) FROM main._sync_peers WHERE peer IN ({list})
                     GROUP BY device HAVING count(*) = ?1"
                ),
                true => format!(
                    "WITH said(peer, device, seq) AS (
                       SELECT peer, device, seq FROM main._sync_peers WHERE peer IN ({list})
                       UNION ALL
                       SELECT peer, device, seq FROM main._sync_relayed WHERE peer IN ({list})),
                     best(device, seq) AS (
                       SELECT device, max(seq) FROM said GROUP BY peer, device)
                     SELECT device, min(seq) FROM best GROUP BY device HAVING count(*) = ?1"
                ),
            };
            let mut stmt = conn.prepare(&sql)?;
            stmt.bind_all(&[Value::Integer(peers.len() as i64)])?;
            let mut least = HashMap::default();
            while let Some(row) = stmt.step()? {
                let device = DeviceIdx(row.column_int(0));
                let has = applied.get(&device).copied().unwrap_or(0);
                least.insert(device, (row.column_int(1) as u64).min(has));
            }
            least
        }
    };
    // (this device's own ops, and those of the ids it had before it forked, no further than a
    // peer confirmed them: a backup put back, written on and then forked, holds under its
    // former id ops its peers hold another history of at those seqs)
    for (n, id) in crate::identity::ids(conn, &devices.id(SELF))?
        .iter()
        .enumerate()
    {
        let idx = match n {
            0 => Some(SELF),
            _ => devices.idx(id),
        };
        if let Some(has) = idx.and_then(|idx| least.get_mut(&idx)) {
            *has = (*has).min(confirmed(conn, id)?);
        }
    }
    let said = confirmed_by(conn)?;
    // (none in a fleet set up as usual: no id is hex-encoded then)
    for &peer in peers.iter().filter(|_| !said.is_empty()) {
        let cap = said.get(&crate::value::hex(&devices.id(peer)));
        if let (Some(has), Some(&cap)) = (least.get_mut(&peer), cap) {
            *has = (*has).min(cap);
        }
    }
    least.retain(|_, seq| *seq > 0);
    Ok(least)
}

/// Whether a bundle relayed here what a device has (`_sync_relayed` made and not empty).
fn relayed_here(conn: &Conn) -> Result<bool> {
    let made = "SELECT 1 FROM main.sqlite_schema WHERE name = '_sync_relayed'";
    if conn.query_value(made, &[])?.is_none() {
        return Ok(false); // a database an earlier build made, before its first import
    }
    Ok((conn.query_value("SELECT 1 FROM main._sync_relayed LIMIT 1", &[])?).is_some())
}

/// What a bundle relays: per device its writer heard of, what it has, as its writer knows it
/// (per history: device id, seq, link).
pub type Relayed = Vec<(DeviceId, Vec<(DeviceId, u64, Hash)>)>;

/// The most devices known for which a bundle relays what each has (the entries grow as the
/// square of them; a fleet larger than this learns what all have from devices that hear from
/// every other, as a star's hub does).
const RELAY_MOST: usize = 8;

/// What a bundle relays of what the devices this one knows have, where they are few
/// (`RELAY_MOST`): for each but this device and the one the bundle is for (`to`), the most it
/// said it has or a bundle relayed of it, per history, no further than this device has (so
/// that a ring of devices, each of which hears from one other only, learns what every device
/// has: DESIGN 5.4).
pub fn relayed(
    conn: &Conn,
    history: &History,
    devices: &Devices,
    to: Option<DeviceIdx>,
) -> Result<Relayed> {
    let peers: HashSet<DeviceIdx> = roots(devices)
        .filter(|&d| d != SELF && Some(d) != to)
        .collect();
    if peers.is_empty() || roots(devices).count() > RELAY_MOST {
        return Ok(Vec::new());
    }
    let sql = match relayed_here(conn)? {
        false => "SELECT peer, device, seq FROM main._sync_peers",
        true => {
            "SELECT peer, device, max(seq) FROM (
                   SELECT peer, device, seq FROM main._sync_peers
                   UNION ALL SELECT peer, device, seq FROM main._sync_relayed)
                 GROUP BY peer, device"
        }
    };
    let applied = clock::applied(conn)?;
    let said = confirmed_by(conn)?;
    let known: HashSet<DeviceIdx> = devices.indexes().collect();
    let mut has: std::collections::BTreeMap<DeviceIdx, Vec<(DeviceIdx, u64)>> = Default::default();
    let mut stmt = conn.prepare(sql)?;
    while let Some(row) = stmt.step()? {
        let (peer, device) = (DeviceIdx(row.column_int(0)), DeviceIdx(row.column_int(1)));
        let mut seq = (row.column_int(2) as u64).min(applied.get(&device).copied().unwrap_or(0));
        if device == peer && !said.is_empty() {
            // (its own ops no further than it said a peer confirmed them)
            if let Some(&cap) = said.get(&crate::value::hex(&devices.id(peer))) {
                seq = seq.min(cap);
            }
        }
        if peers.contains(&peer) && seq > 0 && known.contains(&device) {
            has.entry(peer).or_default().push((device, seq));
        }
    }
    drop(stmt);
    let mut links: HashMap<(DeviceIdx, u64), Option<Hash>> = HashMap::default();
    let mut out = Vec::new();
    for (peer, entries) in has {
        let mut placed = Vec::new();
        for (device, seq) in entries {
            let link = match links.get(&(device, seq)) {
                Some(&link) => link,
                None => {
                    // (an op compaction removed, below a device known since: not named)
                    let link = match history.unhashable(device, seq)? {
                        true => None,
                        false => history.hash_at(device, seq)?,
                    };
                    *links.entry((device, seq)).or_insert(link)
                }
            };
            if let Some(link) = link {
                placed.push((devices.wire_id(device), seq, link));
            }
        }
        if !placed.is_empty() {
            placed.sort();
            out.push((devices.id(peer), placed));
        }
    }
    out.sort();
    Ok(out)
}

/// Keeps what a bundle relayed that device `peer` (known here) has, at least: each entry
/// placed in the history it names here (`placed`), raised where it is more than what was
/// relayed before.
pub fn learn_relayed(conn: &Conn, peer: DeviceIdx, placed: &[(DeviceIdx, u64)]) -> Result<()> {
    let mut upsert = conn.prepare(
        "INSERT INTO main._sync_relayed(peer, device, seq) VALUES (?1, ?2, ?3)
         ON CONFLICT (peer, device) DO UPDATE SET seq = excluded.seq WHERE excluded.seq > seq",
    )?;
    for &(device, seq) in placed {
        upsert.execute(&[
            Value::from(peer),
            Value::from(device),
            Value::Integer(seq as i64),
        ])?;
    }
    Ok(())
}

/// The name of the state that holds the highest seq of `id` (one of this device's ids) a peer
/// confirmed.
fn confirmed_name(id: &DeviceId) -> String {
    format!("confirmed {}", crate::value::hex(id))
}

/// The highest seq of `id`, one of this device's ids, that a peer confirmed with the hash it
/// has here (0: none).
pub fn confirmed(conn: &Conn, id: &DeviceId) -> Result<u64> {
    crate::schema::state(conn, &confirmed_name(id))
}

/// The name of the state that holds how far a peer confirmed the own ops of device `id` (one
/// of the devices known here), as its last bundle said, where that bundle knew nothing of this
/// device.
fn said_confirmed_name(id: &DeviceId) -> String {
    format!("said confirmed {}", crate::value::hex(id))
}

/// Keeps, from a bundle of device `id`, how far a peer confirmed its own ops (`confirmed`;
/// None from a build before it), where its writer knew nothing of this device (`knew_me`
/// false): such a device may be a backup put back, or a copy, whose ops beyond what a peer
/// confirmed are another history of ops its peers hold, which this device, knowing of no
/// other, must not decide alone (`least`). A writer that heard of this device is taken at its
/// word, as before (where it is such a backup, this device or a peer holds its other ops, and
/// tells them apart). The last bundle read says.
pub fn said_confirmed(
    conn: &Conn,
    id: &DeviceId,
    confirmed: Option<u64>,
    knew_me: bool,
) -> Result<()> {
    let name = said_confirmed_name(id);
    match (confirmed, knew_me) {
        (Some(seq), false) => crate::schema::set_state(conn, &name, seq),
        _ => conn.exec(
            "DELETE FROM main._sync_state WHERE name = ?1",
            &[Value::Text(name)],
        ),
    }
}

/// How far the devices known here whose last bundle knew nothing of this one said a peer
/// confirmed their own ops (by device id, hex): what is stable of them here goes no further
/// (`said_confirmed`). The others are not named: taken at their word.
fn confirmed_by(conn: &Conn) -> Result<HashMap<String, u64>> {
    let mut stmt = conn.prepare(
        "SELECT substr(name, 16), value FROM main._sync_state WHERE name LIKE 'said confirmed %'",
    )?;
    let mut said = HashMap::default();
    while let Some(row) = stmt.step()? {
        if let Value::Text(id) = row.column(0)? {
            said.insert(id, row.column_int(1).max(0) as u64);
        }
    }
    Ok(said)
}

/// Records that a peer has this device's op `seq` of `id` (the clock of its bundle named it
/// with the hash it has here: apply/store.rs `record`): no op of this device up to there can
/// be another history's.
pub fn confirm(conn: &Conn, id: &DeviceId, seq: u64) -> Result<()> {
    let name = confirmed_name(id);
    if seq > crate::schema::state(conn, &name)? {
        crate::schema::set_state(conn, &name, seq)?;
    }
    Ok(())
}

/// What bundles taught (`_sync_stable`), while no other device became known since.
pub fn taught(conn: &Conn, devices: &Devices) -> Result<Stable> {
    let made = "SELECT 1 FROM main.sqlite_schema WHERE name = '_sync_stable'";
    if conn.query_value(made, &[])?.is_none() {
        return Ok(Stable::default()); // a database an earlier build made, before its first import
    }
    if crate::schema::state(conn, KNOWN)? != known_now(devices) {
        return Ok(Stable::default());
    }
    let mut stmt = conn.prepare("SELECT device, seq, hash FROM main._sync_stable")?;
    let mut stable = Stable::default();
    while let Some(row) = stmt.step()? {
        if let Some(hash) = (row.column_blob(2)?).and_then(|h| h.try_into().ok()) {
            stable.insert(
                DeviceIdx(row.column_int(0)),
                (row.column_int(1) as u64, hash),
            );
        }
    }
    Ok(stable)
}

/// `_sync_state`: which devices were known when `_sync_stable` was written (`known_now`).
const KNOWN: &str = "stable devices";

/// A fingerprint of the devices known here now (`roots`): what bundles taught speaks for those
/// devices only. (A count would do where devices are only ever added; a device forgotten
/// since another became known brings the count back, not the devices.)
fn known_now(devices: &Devices) -> u64 {
    use sha2::{Digest, Sha256};
    let mut ids: Vec<DeviceId> = roots(devices).map(|d| devices.id(d)).collect();
    ids.sort_unstable();
    let mut h = Sha256::new();
    h.update(b"sqlite-sync known devices");
    ids.iter().for_each(|id| h.update(id));
    let bytes: [u8; 8] = h.finalize()[..8].try_into().expect("8 bytes");
    u64::from_be_bytes(bytes) >> 2 // (kept as a positive INTEGER)
}

/// Every device known here (first histories: a second history is ops of a device, not one),
/// but the ones forgotten (log/forgotten.rs).
fn roots(devices: &Devices) -> impl Iterator<Item = DeviceIdx> + '_ {
    (devices.indexes()).filter(|&d| devices.fork(d).is_none() && !devices.is_forgotten(d))
}

/// What a bundle's manifest says of it: the writer's stable clock, and the devices it knew that
/// its clock does not name.
pub fn for_bundle(
    stable: &Stable,
    devices: &Devices,
    clock: &[(DeviceId, u64, Hash)],
) -> (Vec<(DeviceId, u64, Hash)>, Vec<DeviceId>) {
    let mut entries: Vec<(DeviceId, u64, Hash)> = (stable.iter())
        .map(|(&d, &(seq, hash))| (devices.wire_id(d), seq, hash))
        .collect();
    entries.sort();
    let named: HashSet<DeviceId> = clock.iter().map(|e| e.0).collect();
    let mut knows: Vec<DeviceId> = roots(devices)
        .map(|d| devices.id(d))
        .filter(|id| !named.contains(id))
        .collect();
    knows.sort();
    (entries, knows)
}

/// Whether a bundle's writer knew every device known here (`knew`: the devices of its clock,
/// those it listed, and itself): then what it said every device it knew has holds here too.
pub fn knew_every_device(devices: &Devices, knew: &HashSet<DeviceId>) -> bool {
    roots(devices).all(|d| knew.contains(&devices.id(d)))
}

/// Keeps what a bundle's writer that knew every device known here said they all have
/// (`placed`: its entries above what was taught before, each in the history it names here and
/// no further than this device has).
pub fn learn(conn: &Conn, devices: &Devices, placed: &[(DeviceIdx, u64, Hash)]) -> Result<()> {
    if placed.is_empty() {
        return Ok(());
    }
    let known = known_now(devices);
    if crate::schema::state(conn, KNOWN)? != known {
        // what was taught before did not speak for the devices known since
        conn.exec("DELETE FROM main._sync_stable", &[])?;
        crate::schema::set_state(conn, KNOWN, known)?;
    }
    for &(device, seq, hash) in placed {
        conn.exec_kept(
            "INSERT OR REPLACE INTO main._sync_stable(device, seq, hash) VALUES (?1, ?2, ?3)",
            &[
                Value::from(device),
                Value::Integer(seq as i64),
                Value::Blob(hash.to_vec()),
            ],
        )?;
    }
    Ok(())
}
