//! An independent reader and writer of the bundle format (formats 3 to 5, documented in
//! src/bundle/ and src/form.rs), for tests that forge bundles: read every op, change what a
//! test wants, and write a bundle whose hashes are right again.

use rusqlite::Connection;
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::path::Path;

/// One msgpack item.
#[derive(Debug, Clone, PartialEq)]
pub enum M {
    Nil,
    Int(i64),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<M>),
}

impl M {
    pub fn int(&self) -> i64 {
        match self {
            M::Int(v) => *v,
            other => panic!("not an int: {other:?}"),
        }
    }

    pub fn array(&self) -> &[M] {
        match self {
            M::Array(v) => v,
            other => panic!("not an array: {other:?}"),
        }
    }

    pub fn str(&self) -> &str {
        match self {
            M::Str(v) => v,
            other => panic!("not a str: {other:?}"),
        }
    }
}

impl Serialize for M {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            M::Nil => s.serialize_unit(),
            M::Int(v) => s.serialize_i64(*v),
            M::Float(v) => s.serialize_f64(*v),
            M::Str(v) => s.serialize_str(v),
            M::Bin(v) => s.serialize_bytes(v),
            M::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for M {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<M, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = M;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("msgpack")
            }
            fn visit_unit<E: de::Error>(self) -> Result<M, E> {
                Ok(M::Nil)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<M, E> {
                Ok(M::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<M, E> {
                Ok(M::Int(v as i64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<M, E> {
                Ok(M::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<M, E> {
                Ok(M::Str(v.into()))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<M, E> {
                Ok(M::Bin(v.into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<M, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(M::Array(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// One op, as its canonical encoding lays it out.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub device: Vec<u8>,
    pub seq: i64,
    /// the link of op seq - 1 of the device (None for op 1)
    pub prev: Option<Vec<u8>>,
    pub lamport: i64,
    /// [[device id, seq, link], …]
    pub deps: M,
    pub table: String,
    pub kind: i64,
    pub key: Vec<(String, M)>,
    pub cells: Vec<(String, M)>,
}

impl Op {
    /// The SHA-256 of the op's canonical encoding.
    pub fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.canonical()).to_vec()
    }

    /// Its link: the first 16 bytes of its hash (what prevs, deps and clocks name it by).
    pub fn link(&self) -> Vec<u8> {
        self.hash()[..16].to_vec()
    }

    fn canonical(&self) -> Vec<u8> {
        let pairs = |cells: &[(String, M)]| {
            M::Array(
                cells
                    .iter()
                    .map(|(c, v)| M::Array(vec![M::Str(c.clone()), v.clone()]))
                    .collect(),
            )
        };
        let item = M::Array(vec![
            M::Bin(self.device.clone()),
            M::Int(self.seq),
            self.prev.clone().map_or(M::Nil, M::Bin),
            M::Int(self.lamport),
            self.deps.clone(),
            M::Str(self.table.clone()),
            M::Int(self.kind),
            pairs(&self.key),
            pairs(&self.cells),
        ]);
        rmp_serde::to_vec(&item).unwrap()
    }
}

/// A whole bundle: its manifest row (as SQL values) and its ops.
#[derive(Clone)]
pub struct Bundle {
    pub manifest: Vec<rusqlite::types::Value>,
    pub ops: Vec<Op>,
}

fn next(input: &mut &[u8]) -> M {
    rmp_serde::from_read(input).expect("a msgpack item")
}

/// Reads every op of the bundle at `path`.
pub fn read(path: &Path) -> Bundle {
    let conn = Connection::open(path).unwrap();
    let manifest: Vec<rusqlite::types::Value> = conn
        .query_row("SELECT * FROM manifest", [], |r| {
            (0..r.as_ref().column_count()).map(|i| r.get(i)).collect()
        })
        .unwrap();
    let bodies: Vec<Vec<u8>> = conn
        .prepare("SELECT body FROM chunks ORDER BY n")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let stream = bodies.concat();
    let mut input = &stream[..];
    let short = matches!(manifest.get(1), Some(rusqlite::types::Value::Integer(5)));
    let mut names = Names::default();
    let (mut device, mut seq, mut lamport) = (Vec::new(), 0, 0);
    let (mut forms, mut form) = (Vec::<Vec<M>>::new(), 0usize);
    let mut ops = Vec::new();
    while !input.is_empty() {
        let head = next(&mut input).int();
        if head & 1 != 0 && short {
            device = names.device(next(&mut input));
        } else if head & 1 != 0 {
            let M::Bin(d) = next(&mut input) else {
                panic!("device id")
            };
            device = d;
        }
        seq = if head & 2 != 0 {
            next(&mut input).int()
        } else {
            seq + 1
        };
        let prev = if head & 32 != 0 {
            let M::Bin(p) = next(&mut input) else {
                panic!("prev")
            };
            Some(p)
        } else if seq > 1 {
            Some(ops.last().map(Op::link).expect("the op before"))
        } else {
            None
        };
        let deps = if head & 4 != 0 && short {
            names.deps(&mut input, &device)
        } else if head & 4 != 0 {
            next(&mut input)
        } else {
            M::Array(vec![])
        };
        if head & 8 != 0 {
            forms.push(next(&mut input).array().to_vec());
            form = forms.len() - 1;
        } else if head & 16 != 0 {
            form = next(&mut input).int() as usize;
        }
        lamport += next(&mut input).int();
        let f = &forms[form];
        let names = |i: usize| -> Vec<String> {
            f[i].array().iter().map(|n| n.str().to_string()).collect()
        };
        let key: Vec<(String, M)> = names(2)
            .into_iter()
            .map(|c| (c, next(&mut input)))
            .collect();
        let aliases: Vec<i64> = f[4].array().iter().map(M::int).collect();
        let cells = names(3)
            .into_iter()
            .zip(aliases)
            .map(|(c, alias)| match alias {
                0 => (c, next(&mut input)),
                i => (c, key[i as usize - 1].1.clone()),
            })
            .collect();
        ops.push(Op {
            device: device.clone(),
            seq,
            prev,
            lamport,
            deps,
            table: f[0].str().to_string(),
            kind: f[1].int(),
            key,
            cells,
        });
    }
    Bundle { manifest, ops }
}

/// Writes a bundle file with exactly this manifest row and one chunk of `ops` ops holding
/// `body` (none when `body` is empty), whatever they say.
pub fn write_raw(path: &Path, manifest: &[rusqlite::types::Value], ops: i64, body: &[u8]) {
    let _ = std::fs::remove_file(path);
    let conn = Connection::open(path).unwrap();
    // format 4 adds `declared` (what the writer knew of each device's declarations), release
    // 0.1.0 `writer` (the release that wrote it), 0.2.0 `stable` and `knows`, then `base` (up
    // to where its writer removed ops it does not carry), `forgotten` (the devices it forgot)
    // and `gaps` (the contexts of removed ops its ops follow), then `forks` (the links of the
    // ops its base's histories fork after), `relayed` (what each device its writer knew
    // has), `confirmed` (how far a peer confirmed its writer's own ops), `addressee` (the
    // device it was written for) and `strays` (other histories' ops its ops' deps name)
    const LATER: [&str; 12] = [
        "declared BLOB",
        "writer TEXT",
        "stable BLOB",
        "knows BLOB",
        "base BLOB",
        "forgotten BLOB",
        "gaps BLOB",
        "forks BLOB",
        "relayed BLOB",
        "confirmed INTEGER",
        "addressee BLOB",
        "strays BLOB",
    ];
    let declared: String = (LATER.iter().take(manifest.len().saturating_sub(7)))
        .map(|c| format!(", {c}"))
        .collect();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
         CREATE TABLE manifest(magic TEXT, format INTEGER, bundle_id BLOB, source BLOB,
                               clock BLOB, op_count INTEGER, ops_hash BLOB{declared});
         CREATE TABLE chunks(n INTEGER PRIMARY KEY, ops INTEGER NOT NULL, body BLOB NOT NULL);"
    ))
    .unwrap();
    let marks: Vec<String> = (1..=manifest.len()).map(|i| format!("?{i}")).collect();
    conn.execute(
        &format!("INSERT INTO manifest VALUES ({})", marks.join(", ")),
        rusqlite::params_from_iter(manifest),
    )
    .unwrap();
    if !body.is_empty() {
        conn.execute(
            "INSERT INTO chunks VALUES (1, ?1, ?2)",
            rusqlite::params![ops, body],
        )
        .unwrap();
    }
}

/// Writes `bundle` to `path` (replacing it), every op spelled out in full, with the op count
/// and the manifest's hash made right for its ops.
pub fn write(path: &Path, bundle: &Bundle) {
    let mut body = Vec::new();
    let mut hashes: Vec<Vec<u8>> = Vec::new();
    let mut lamport = 0;
    let mut clock: Vec<M> = match &bundle.manifest[4] {
        rusqlite::types::Value::Blob(b) => match rmp_serde::from_slice(b) {
            Ok(M::Array(entries)) => entries,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let mut ops = bundle.ops.clone();
    // format 3 bundles (no `declared`) are written as format 3; others as format 5
    let short = bundle.manifest.len() >= 8;
    let mut names = Names::default();
    for i in 0..ops.len() {
        // the op before it on its device, if the bundle holds it, gives its prev
        let before = ops[..i]
            .iter()
            .rposition(|o| o.device == ops[i].device && o.seq + 1 == ops[i].seq);
        if let Some(j) = before {
            ops[i].prev = Some(hashes[j][..16].to_vec());
        }
        let op = &ops[i];
        let follows = i > 0 && before == Some(i - 1);
        let put = |out: &mut Vec<u8>, item: &M| rmp_serde::encode::write(out, item).unwrap();
        let stated = !follows && op.seq > 1;
        put(
            &mut body,
            &M::Int(1 | 2 | 4 | 8 | if stated { 32 } else { 0 }),
        );
        let device = match short {
            true => names.name(&op.device),
            false => M::Bin(op.device.clone()),
        };
        put(&mut body, &device);
        put(&mut body, &M::Int(op.seq));
        if stated {
            put(&mut body, &M::Bin(op.prev.clone().unwrap_or_default()));
        }
        match short {
            true => (names.state_deps(&op.device, &op.deps).iter()).for_each(|i| put(&mut body, i)),
            false => put(&mut body, &op.deps),
        }
        let names = |cells: &[(String, M)]| {
            M::Array(cells.iter().map(|(c, _)| M::Str(c.clone())).collect())
        };
        let form = M::Array(vec![
            M::Str(op.table.clone()),
            M::Int(op.kind),
            names(&op.key),
            names(&op.cells),
            M::Array(op.cells.iter().map(|_| M::Int(0)).collect()),
        ]);
        put(&mut body, &form);
        put(&mut body, &M::Int(op.lamport.wrapping_sub(lamport)));
        lamport = op.lamport;
        for (_, v) in op.key.iter().chain(&op.cells) {
            put(&mut body, v);
        }
        let hash = op.hash();
        // the manifest's clock names the op's link
        for entry in clock.iter_mut() {
            if let M::Array(e) = entry {
                if e[0] == M::Bin(op.device.clone()) && e[1] == M::Int(op.seq) {
                    e[2] = M::Bin(hash[..16].to_vec());
                }
            }
        }
        hashes.push(hash);
    }
    let mut manifest = bundle.manifest.clone();
    if short {
        manifest[1] = rusqlite::types::Value::Integer(5);
    }
    manifest[4] = rusqlite::types::Value::Blob(rmp_serde::to_vec(&M::Array(clock)).unwrap());
    manifest[5] = rusqlite::types::Value::Integer(bundle.ops.len() as i64);
    manifest[6] = rusqlite::types::Value::Blob(Sha256::digest(hashes.concat()).to_vec());
    write_raw(path, &manifest, bundle.ops.len() as i64, &body);
}

/// Reads the bundle at `path`, lets `edit` change it, and writes it back with its hashes right.
pub fn forge(path: &Path, edit: impl FnOnce(&mut Bundle)) {
    let mut bundle = read(path);
    edit(&mut bundle);
    write(path, &bundle);
}

/// Replaces the first `from` in the first chunk (the op stream) with `to`, leaving every hash as
/// it is.
pub fn replace_in_stream(path: &Path, from: &[u8], to: &[u8]) {
    let conn = Connection::open(path).unwrap();
    let mut body: Vec<u8> = conn
        .query_row("SELECT body FROM chunks WHERE n = 1", [], |r| r.get(0))
        .unwrap();
    let at = body
        .windows(from.len())
        .position(|w| w == from)
        .expect("bytes to replace");
    body.splice(at..at + from.len(), to.iter().copied());
    conn.execute("UPDATE chunks SET body = ?1 WHERE n = 1", [&body])
        .unwrap();
}

/// Format 5's short names (src/bundle/names.rs), written again here: devices by number in order
/// of first mention, each op's deps stated against the running context of the deps before.
#[derive(Default)]
struct Names {
    devices: Vec<Vec<u8>>,
    /// per device number, the last entry stated: [device, seq, link]
    context: std::collections::BTreeMap<usize, M>,
    /// every entry stated: (number, seq) -> link
    links: std::collections::HashMap<(usize, i64), M>,
}

impl Names {
    fn number(&mut self, device: &[u8]) -> usize {
        match self.devices.iter().position(|d| d == device) {
            Some(n) => n,
            None => {
                self.devices.push(device.to_vec());
                self.devices.len() - 1
            }
        }
    }

    /// A device as the stream names it: its id the first time, then its number.
    fn name(&mut self, device: &[u8]) -> M {
        match self.devices.iter().position(|d| d == device) {
            Some(n) => M::Int(n as i64),
            None => {
                self.number(device);
                M::Bin(device.to_vec())
            }
        }
    }

    fn device(&mut self, item: M) -> Vec<u8> {
        match item {
            M::Bin(d) => {
                self.number(&d);
                d
            }
            M::Int(n) => self.devices[n as usize].clone(),
            other => panic!("device: {other:?}"),
        }
    }

    /// Reads an op's deps: what it inherits but its own device, less the drops, with the changes.
    fn deps(&mut self, input: &mut &[u8], own: &[u8]) -> M {
        if input.first() == Some(&0xc0) {
            next(input);
            return next(input); // spelled out: a device named twice
        }
        let own = self.number(own);
        for _ in 0..next(input).int() {
            self.context.remove(&(next(input).int() as usize));
        }
        let mut deps: std::collections::BTreeMap<Vec<u8>, M> = (self.context.iter())
            .filter(|(&n, _)| n != own)
            .map(|(&n, e)| (self.devices[n].clone(), e.clone()))
            .collect();
        for _ in 0..next(input).int() {
            let device = self.device(next(input));
            let n = self.number(&device);
            let seq = next(input).int();
            let link = match next(input) {
                M::Nil => self.links[&(n, seq)].clone(),
                link => link,
            };
            let entry = M::Array(vec![M::Bin(device.clone()), M::Int(seq), link.clone()]);
            self.links.insert((n, seq), link);
            self.context.insert(n, entry.clone());
            deps.insert(device, entry);
        }
        M::Array(deps.into_values().collect())
    }

    /// An op's deps as the stream states them: every inherited entry dropped, every dep stated
    /// with its link (a valid, if long, spelling).
    fn state_deps(&mut self, own: &[u8], deps: &M) -> Vec<M> {
        let ids: Vec<&M> = deps.array().iter().map(|d| &d.array()[0]).collect();
        let sorted = ids.windows(2).all(|w| match (w[0], w[1]) {
            (M::Bin(a), M::Bin(b)) => a < b,
            _ => false,
        });
        if !sorted {
            return vec![M::Nil, deps.clone()]; // a device named twice: spelled out
        }
        let own = self.number(own);
        let drops: Vec<usize> = self.context.keys().copied().filter(|&n| n != own).collect();
        let mut items = vec![M::Int(drops.len() as i64)];
        for n in drops {
            self.context.remove(&n);
            items.push(M::Int(n as i64));
        }
        let deps = deps.array();
        items.push(M::Int(deps.len() as i64));
        for dep in deps {
            let e = dep.array();
            let M::Bin(device) = &e[0] else {
                panic!("dep device")
            };
            items.push(self.name(device));
            items.push(e[1].clone());
            items.push(e[2].clone());
            let n = self.number(device);
            self.links.insert((n, e[1].int()), e[2].clone());
            self.context.insert(n, dep.clone());
        }
        items
    }
}
