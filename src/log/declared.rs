//! Declarations: how each device declares each synced table now (its PRIMARY KEY and each
//! column's declared type), learned from the bundles it sends and passed on in every bundle.
//! An op waits on a device that declares its table otherwise than the op's writer does now
//! (apply/kept.rs): its values would be stored otherwise there.
//!
//! Invariant: per (device, table) the entry with the highest version wins, and a device raises
//! its own version whenever it declares a table otherwise; so once devices have exchanged
//! bundles, they all know the same current declaration of every device, and decide alike.

use crate::hashed::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::db::{Conn, Result};
use crate::op::DeviceId;
use crate::schema::{DeviceIdx, SELF};
use crate::value::Value;

use super::clock::Devices;
use super::Shape;

/// A table as one device declares it: its key columns and each column with its declared type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declared {
    pub key: Vec<String>,
    pub columns: Vec<(String, String)>,
}

impl Declared {
    /// The declaration a shape records (None: an earlier build stored the shape without types).
    pub fn of(shape: &Shape) -> Option<Declared> {
        if shape.types.is_empty() {
            return None;
        }
        Some(Declared {
            key: shape.pk.iter().map(|&i| shape.columns[i].clone()).collect(),
            columns: (shape.columns.iter().cloned())
                .zip(shape.types.iter().cloned())
                .collect(),
        })
    }

    /// Whether values written under `other` are stored alike under this declaration: the same
    /// key columns, and each column both name of the same type affinity.
    pub fn stores_alike(&self, other: &Declared) -> bool {
        let same = |a: &String, b: &String| a.eq_ignore_ascii_case(b);
        self.key.len() == other.key.len()
            && self.key.iter().zip(&other.key).all(|(a, b)| same(a, b))
            && (self.columns.iter()).all(|(c, t)| {
                other
                    .type_of(c)
                    .is_none_or(|theirs| super::stored_alike(t, theirs))
            })
    }

    /// The declared type of `column` (names compare without case).
    pub fn type_of(&self, column: &str) -> Option<&str> {
        (self.columns.iter())
            .find(|(c, _)| c.eq_ignore_ascii_case(column))
            .map(|(_, t)| t.as_str())
    }
}

/// A declaration as read in place from a bundle's manifest or `_sync_declared` (no copy).
#[derive(PartialEq, Deserialize)]
struct DeclaredRef<'a> {
    #[serde(borrow)]
    key: Vec<&'a str>,
    #[serde(borrow)]
    columns: Vec<(&'a str, &'a str)>,
}

impl DeclaredRef<'_> {
    fn to_owned(&self) -> Declared {
        Declared {
            key: self.key.iter().map(|k| k.to_string()).collect(),
            columns: (self.columns.iter())
                .map(|(c, t)| (c.to_string(), t.to_string()))
                .collect(),
        }
    }
}

/// One copy of each distinct declaration read (a fleet's devices mostly declare a table
/// alike: a bundle names every device's declaration of it).
#[derive(Default)]
struct Interned<'a>(Vec<(DeclaredRef<'a>, Rc<Declared>)>);

impl<'a> Interned<'a> {
    fn get(&mut self, read: DeclaredRef<'a>) -> Rc<Declared> {
        if let Some((_, d)) = self.0.iter().find(|(r, _)| *r == read) {
            return d.clone();
        }
        let d = Rc::new(read.to_owned());
        self.0.push((read, d.clone()));
        d
    }
}

/// What a bundle says of one device's declaration of a table: device id, table, version,
/// declaration (`Declarations::encode`).
pub type Said = (DeviceId, String, i64, Rc<Declared>);

/// A manifest's declarations (`encode`'s), each distinct one read once; None where unreadable.
pub fn decode(blob: &[u8]) -> Option<Vec<Said>> {
    let entries: Vec<(&[u8], &str, i64, DeclaredRef)> = rmp_serde::from_slice(blob).ok()?;
    let mut interned = Interned::default();
    (entries.into_iter())
        .map(|(id, name, version, read)| {
            Some((
                id.try_into().ok()?,
                name.to_string(),
                version,
                interned.get(read),
            ))
        })
        .collect()
}

/// Every device's declarations known here, by (device, table name in lower case).
#[derive(Default)]
pub struct Declarations(HashMap<(DeviceIdx, String), (i64, Rc<Declared>)>);

impl Declarations {
    pub fn load(conn: &Conn) -> Result<Declarations> {
        let mut out = Declarations::default();
        let made = "SELECT 1 FROM main.sqlite_schema WHERE name = '_sync_declared'";
        if conn.query_value(made, &[])?.is_none() {
            return Ok(out); // a database an earlier build made, before its first import
        }
        let mut stmt =
            conn.prepare("SELECT device, name, version, decl FROM main._sync_declared")?;
        // (each distinct declaration read once: by its bytes)
        let mut read: HashMap<Vec<u8>, Option<Rc<Declared>>> = HashMap::default();
        while let Some(row) = stmt.step()? {
            let blob = row.column_blob(3)?.unwrap_or_default();
            let declared = match read.get(blob) {
                Some(declared) => declared.clone(),
                None => {
                    let declared = (rmp_serde::from_slice::<DeclaredRef>(blob).ok())
                        .map(|d| Rc::new(d.to_owned()));
                    read.insert(blob.to_vec(), declared.clone());
                    declared
                }
            };
            let Some(declared) = declared else {
                continue; // unreadable: as if unknown
            };
            let name = row
                .column(1)?
                .as_text()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let at = (DeviceIdx(row.column_int(0)), name);
            out.0.insert(at, (row.column_int(2), declared));
        }
        Ok(out)
    }

    /// How each device known declares table `name` now.
    pub fn all<'d>(&'d self, name: &str) -> impl Iterator<Item = &'d Declared> + 'd {
        let name = name.to_ascii_lowercase();
        (self.0.iter())
            .filter(move |((_, n), _)| *n == name)
            .map(|(_, (_, d))| &**d)
    }

    /// How `device` declares table `name` now, when known.
    pub fn of(&self, device: DeviceIdx, name: &str) -> Option<&Declared> {
        let at = (device, name.to_ascii_lowercase());
        self.0.get(&at).map(|(_, d)| &**d)
    }

    /// What a bundle says of them: [[device id, table, version, declaration], …].
    pub fn encode(&self, devices: &Devices) -> Vec<u8> {
        let ids: Vec<DeviceId> = (self.0.keys()).map(|(d, _)| devices.wire_id(*d)).collect();
        let entries: Vec<(crate::op::Bin, &str, i64, &Declared)> = (self.0.iter())
            .zip(&ids)
            .map(|(((_, name), (version, declared)), id)| {
                (crate::op::Bin(id), name.as_str(), *version, &**declared)
            })
            .collect();
        rmp_serde::to_vec(&entries).expect("declarations encode")
    }

    /// Takes what a bundle says (`entries`), where newer; returns the tables some device
    /// declares otherwise than this device knew (or first tells of).
    pub fn merge(
        &mut self,
        conn: &Conn,
        devices: &mut Devices,
        entries: Vec<Said>,
    ) -> Result<Vec<String>> {
        let mut changed = Vec::new();
        for (id, name, version, declared) in entries {
            let device = devices.idx_or_add(conn, &id)?;
            if device == SELF {
                continue; // this device knows its own
            }
            let at = (device, name.to_ascii_lowercase());
            if self.0.get(&at).is_some_and(|(v, _)| *v >= version) {
                continue;
            }
            let differs = self.0.get(&at).is_none_or(|(_, d)| *d != declared);
            store(conn, device, &name, version, &declared)?;
            if differs && !changed.contains(&at.1) {
                changed.push(at.1.clone());
            }
            self.0.insert(at, (version, declared));
        }
        Ok(changed)
    }
}

fn store(conn: &Conn, device: DeviceIdx, name: &str, version: i64, d: &Declared) -> Result<()> {
    conn.exec(
        "INSERT OR REPLACE INTO main._sync_declared(device, name, version, decl)
         VALUES (?1, ?2, ?3, ?4)",
        &[
            Value::from(device),
            Value::Text(name.to_ascii_lowercase()),
            Value::Integer(version),
            Value::Blob(rmp_serde::to_vec(d).expect("a declaration encodes")),
        ],
    )
}

/// Records how this device declares table `name` now (`shape`), in a new version when it
/// declares it otherwise than before.
pub fn record_own(conn: &Conn, name: &str, shape: &Shape) -> Result<()> {
    let Some(declared) = Declared::of(shape) else {
        return Ok(());
    };
    crate::schema::upgrade(conn)?;
    let known = Declarations::load(conn)?;
    let version = match known.0.get(&(SELF, name.to_ascii_lowercase())) {
        Some((_, d)) if **d == declared => return Ok(()),
        Some((v, _)) => v + 1,
        None => 1,
    };
    store(conn, SELF, name, version, &declared)
}
