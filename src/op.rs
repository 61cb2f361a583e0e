//! The op as it travels: one canonical encoding, and the SHA-256 that seals it.
//!
//! Invariant: an op's encoding is a pure function of its fields, so every device that encodes
//! the same op gets the same bytes and the same hash. Ops received from peers are stored and
//! relayed as the exact bytes that arrived; local ops are encoded from the log when a bundle is
//! written.
//!
//! # Encoding (msgpack, one array)
//!
//! ```text
//! [ device: bin(16), seq: uint, lamport: uint,
//!   deps:  [[device: bin(16), seq: uint], …],   entries of the writer's vector clock that
//!                                                changed since its previous op (all of them
//!                                                for its first op), sorted by device
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

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

#[cfg(test)]
use crate::db::{Error, Result};
use crate::value::Value;

pub type DeviceId = [u8; 16];

/// One op, decoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    #[serde(with = "device_bytes")]
    pub device: DeviceId,
    pub seq: u64,
    pub lamport: u64,
    pub deps: Vec<Dep>,
    pub table: String,
    pub kind: u8,
    pub key: Vec<(String, Value)>,
    pub cells: Vec<(String, Value)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dep(#[serde(with = "device_bytes")] pub DeviceId, pub u64);

pub const INSERT: u8 = 0;
pub const UPDATE: u8 = 1;
pub const DELETE: u8 = 2;

impl Op {
    /// The canonical encoding (what `Form::write_canonical` writes, which the extension uses).
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).expect("an op always encodes")
    }

    #[cfg(test)]
    pub fn decode(bytes: &[u8]) -> Result<Op> {
        let op: Op = rmp_serde::from_slice(bytes)
            .map_err(|e| Error::new(format!("undecodable op ({e})")))?;
        if !matches!(op.kind, INSERT | UPDATE | DELETE) || op.seq == 0 || op.key.is_empty() {
            return Err(Error::new("malformed op"));
        }
        Ok(op)
    }
}

/// SHA-256 of an op's encoding.
pub fn hash(encoded: &[u8]) -> [u8; 32] {
    Sha256::digest(encoded).into()
}

pub(crate) mod device_bytes {
    use super::DeviceId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &DeviceId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DeviceId, D::Error> {
        let bytes: super::serde_bytes_owned::Bytes = Deserialize::deserialize(d)?;
        bytes
            .0
            .try_into()
            .map_err(|_| serde::de::Error::custom("device id is not 16 bytes"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Op {
        Op {
            device: [7; 16],
            seq: 3,
            lamport: 9,
            deps: vec![Dep([1; 16], 4)],
            table: "t".into(),
            kind: UPDATE,
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
        }
    }

    #[test]
    fn encoding_round_trips_exactly() {
        let op = sample();
        let bytes = op.encode();
        let back = Op::decode(&bytes).unwrap();
        assert_eq!(back.encode(), bytes);
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
