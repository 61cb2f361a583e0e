//! The op as it travels: one canonical encoding, and the SHA-256 that seals it.
//!
//! Invariant: an op's encoding is a pure function of its fields, so every device that encodes
//! the same op gets the same bytes and the same hash. Ops received from peers are stored as
//! their form and values (log/remote.rs) and encode again to the same bytes; local ops are
//! encoded from the log when a bundle is written.
//!
//! # Encoding (msgpack, one array)
//!
//! ```text
//! [ device: bin(16), seq: uint,
//!   prev:  bin(16) | nil,                       the link of op seq - 1 of the device (nil for
//!                                                op 1): each device's ops form a hash chain
//!   lamport: uint,
//!   deps:  [[device: bin(16), seq: uint, link: bin(16)], …]
//!                                                entries of the writer's vector clock that
//!                                                changed since its previous op (all of them
//!                                                for its first op), sorted by device, each
//!                                                with the link of the op it names
//!   table: str, kind: 0 insert | 1 update | 2 delete,
//!   key:   [[column: str, value], …],           the PRIMARY KEY, in key order
//!   cells: [[column: str, value], …] ]          the columns written: every column for an
//!                                                insert, the changed ones for an update, none
//!                                                for a delete
//! value: nil | int (i64) | float 64 (bits kept: -0.0, ±inf) | str | bin
//! ```
//!
//! The causal context of op `n` of a device is the merge of the `deps` of its ops `1..=n`, plus
//! the device's own ops `1..n-1`; its order key is `(lamport, device, seq)`.
//!
//! An op's hash is the SHA-256 of its encoding, its *link* the first 16 bytes of that (as
//! unlikely to collide by chance as device ids). Through `prev` it names the op's whole history
//! on its device, and through the deps' hashes the history it had seen: two databases that
//! wrote under one device id (a copied file, an older backup put back) write ops whose hashes
//! differ from the first op where they part, so every device can tell the two histories apart
//! (log/chain.rs).

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

#[cfg(test)]
use crate::db::{Error, Result};
use crate::value::Value;

pub type DeviceId = [u8; 16];

/// The device id these bytes spell: the one decoder of stored and typed ids (None unless they
/// are 16 bytes).
pub fn device_id(bytes: &[u8]) -> Option<DeviceId> {
    bytes.try_into().ok()
}

/// An op's link: the first 16 bytes of its SHA-256, what `prev`, deps and clocks name it by.
pub type Hash = [u8; 16];

/// The link of an op whose SHA-256 is `full`.
pub fn link(full: &[u8; 32]) -> Hash {
    full[..16].try_into().expect("16 of 32 bytes")
}

/// One op, decoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    #[serde(with = "fixed_bytes")]
    pub device: DeviceId,
    pub seq: u64,
    pub lamport: u64,
    pub deps: Vec<Dep>,
    pub table: String,
    pub kind: OpKind,
    pub key: Vec<(String, Value)>,
    pub cells: Vec<(String, Value)>,
    /// How its writer declared the key columns, then the cells' (form.rs); not part of the
    /// op's canonical encoding or hash
    #[serde(skip)]
    pub decl: Decl,
}

/// Declared types, shared by every op of one shape and kind (they travel with each op).
pub type Decl = std::sync::Arc<Vec<String>>;

/// A dep: (device, seq, hash of that op).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dep(
    #[serde(with = "fixed_bytes")] pub DeviceId,
    pub u64,
    #[serde(with = "fixed_bytes")] pub Hash,
);

/// What an op does to its row. Stored and encoded as its code: 0, 1, 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// writes every column of a new row
    Insert = 0,
    /// writes the columns it changed
    Update = 1,
    /// writes a tombstone to every column
    Delete = 2,
}

impl OpKind {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: i64) -> Option<OpKind> {
        match code {
            0 => Some(OpKind::Insert),
            1 => Some(OpKind::Update),
            2 => Some(OpKind::Delete),
            _ => None,
        }
    }

    /// As `sync_log` shows it.
    pub fn name(self) -> &'static str {
        ["insert", "update", "delete"][self as usize]
    }
}

impl Serialize for OpKind {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u8(self.code())
    }
}

impl<'de> Deserialize<'de> for OpKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<OpKind, D::Error> {
        let code = u8::deserialize(d)?;
        OpKind::from_code(code.into())
            .ok_or_else(|| de::Error::custom(format!("unknown op kind {code}")))
    }
}

impl Op {
    /// The canonical encoding with `prev` (the same bytes as `Form::write_canonical`).
    pub fn encode(&self, prev: Option<&Hash>) -> Vec<u8> {
        let whole = (
            Bin(&self.device),
            self.seq,
            prev.map(|p| Bin(p)),
            self.lamport,
            &self.deps,
            &self.table,
            self.kind,
            &self.key,
            &self.cells,
        );
        rmp_serde::to_vec(&whole).expect("an op always encodes")
    }

    /// Decodes an encoding into the op and its `prev`.
    #[cfg(test)]
    pub fn decode(bytes: &[u8]) -> Result<(Op, Option<Hash>)> {
        type Whole = (
            serde_bytes_owned::Bytes,
            u64,
            Option<serde_bytes_owned::Bytes>,
            u64,
            Vec<Dep>,
            String,
            OpKind,
            Vec<(String, Value)>,
            Vec<(String, Value)>,
        );
        let bad = |e: String| Error::new(format!("undecodable op ({e})"));
        let w: Whole = rmp_serde::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let prev = match w.2 {
            Some(p) => Some(p.0.try_into().map_err(|_| bad("prev".into()))?),
            None => None,
        };
        let op = Op {
            device: w.0 .0.try_into().map_err(|_| bad("device".into()))?,
            seq: w.1,
            lamport: w.3,
            deps: w.4,
            table: w.5,
            kind: w.6,
            key: w.7,
            cells: w.8,
            decl: Decl::default(),
        };
        if op.seq == 0 || op.key.is_empty() {
            return Err(Error::new("malformed op"));
        }
        Ok((op, prev))
    }
}

/// Bytes serialized as msgpack bin.
pub struct Bin<'a>(pub &'a [u8]);

impl Serialize for Bin<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// SHA-256 of an op's encoding.
pub fn hash(encoded: &[u8]) -> [u8; 32] {
    Sha256::digest(encoded).into()
}

/// A fixed-size byte string (a device id, a hash) as msgpack bin.
pub(crate) mod fixed_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(id: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let bytes: super::serde_bytes_owned::Bytes = Deserialize::deserialize(d)?;
        bytes
            .0
            .try_into()
            .map_err(|_| serde::de::Error::custom(format!("not {N} bytes")))
    }
}

/// A byte string read from msgpack bin (or an array of bytes).
mod serde_bytes_owned {
    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    pub struct Bytes(pub Vec<u8>);

    impl<'de> Deserialize<'de> for Bytes {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Bytes;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
                fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                    Ok(Bytes(v))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Bytes, A::Error> {
                    let mut v = Vec::new();
                    while let Some(b) = a.next_element::<u8>()? {
                        v.push(b);
                    }
                    Ok(Bytes(v))
                }
            }
            d.deserialize_bytes(V)
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Integer(v) => s.serialize_i64(*v),
            Value::Real(v) => s.serialize_f64(*v),
            Value::Text(v) => s.serialize_str(v),
            Value::Blob(v) => s.serialize_bytes(v),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Value, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an SQLite value")
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E: de::Error>(self) -> std::result::Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Value, E> {
                Ok(Value::Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Value, E> {
                i64::try_from(v)
                    .map(Value::Integer)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Value, E> {
                Ok(Value::Real(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Value, E> {
                Ok(Value::Text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Value, E> {
                Ok(Value::Text(v))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<Value, E> {
                Ok(Value::Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> std::result::Result<Value, E> {
                Ok(Value::Blob(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> std::result::Result<Value, A::Error> {
                Err(de::Error::custom("an array is not an SQLite value"))
            }
        }
        d.deserialize_any(V)
    }
}

/// The op id of op `seq` of `device`.
pub fn op_id(device: &[u8], seq: i64) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(device);
    h.update(seq.to_be_bytes());
    let digest = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Op {
        Op {
            device: [7; 16],
            seq: 3,
            lamport: 9,
            deps: vec![Dep([1; 16], 4, [2; 16])],
            table: "t".into(),
            kind: OpKind::Update,
            key: vec![("id".into(), Value::Integer(i64::MIN))],
            cells: vec![
                ("a".into(), Value::Real(-0.0)),
                ("b".into(), Value::Real(f64::INFINITY)),
                ("c".into(), Value::Blob(vec![])),
                ("d".into(), Value::Text(String::new())),
                ("e".into(), Value::Null),
                ("f".into(), Value::Real(0.1 + 0.2)),
                ("g".into(), Value::Integer(u32::MAX as i64 + 1)),
            ],
            decl: Decl::default(),
        }
    }

    #[test]
    fn encoding_round_trips_exactly() {
        let op = sample();
        let bytes = op.encode(Some(&[5; 16]));
        let (back, prev) = Op::decode(&bytes).unwrap();
        assert_eq!(prev, Some([5; 16]));
        assert_eq!(back.encode(prev.as_ref()), bytes);
        assert_eq!(Op::decode(&op.encode(None)).unwrap().1, None);
        let Value::Real(z) = back.cells[0].1 else {
            panic!()
        };
        assert_eq!(z.to_bits(), (-0.0f64).to_bits());
        assert_eq!(back.cells[2].1, Value::Blob(vec![]));
        assert_eq!(back.cells[3].1, Value::Text(String::new()));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(Op::decode(b"\x93\x01\x02").is_err());
        assert!(Op::decode(&[]).is_err());
    }
}
