//! One SQLite value, owned, and its exact JSON spelling.
//!
//! Invariant: nothing is rounded or re-typed on the way through. REALs print in the shortest form
//! that reads back to the same bits (`0.30000000000000004`, `-0.0`; infinities as `9e999` and
//! `-9e999`, which JSON readers, SQLite's included, take as ±inf); BLOBs print as `{"blob":"<hex>"}`
//! so they can never be mistaken for TEXT.

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    /// The storage class name, as SQL's `typeof()` spells it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Integer(_) => "integer",
            Value::Real(_) => "real",
            Value::Text(_) => "text",
            Value::Blob(_) => "blob",
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_blob(&self) -> Option<&[u8]> {
        match self {
            Value::Blob(b) => Some(b),
            _ => None,
        }
    }

    /// Appends this value's exact JSON spelling to `out`.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Integer(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Real(v) => write_real(*v, out),
            Value::Text(s) => write_json_string(s, out),
            Value::Blob(b) => {
                out.push_str("{\"blob\":\"");
                out.push_str(&hex(b));
                out.push_str("\"}");
            }
        }
    }
}

fn write_real(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("null");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "9e999" } else { "-9e999" });
    } else {
        // `{:?}` is the shortest spelling that reads back to the same f64, and always marks the
        // value as real (`1.0`, `-0.0`, `1e300`).
        let _ = write!(out, "{v:?}");
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A JSON object built key by key, in the order the keys are given.
pub struct JsonObject {
    out: String,
}

impl JsonObject {
    pub fn new() -> JsonObject {
        JsonObject {
            out: String::from("{"),
        }
    }

    pub fn field(&mut self, key: &str, value: &Value) -> &mut Self {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        write_json_string(key, &mut self.out);
        self.out.push(':');
        value.write_json(&mut self.out);
        self
    }

    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

impl Default for JsonObject {
    fn default() -> Self {
        Self::new()
    }
}
