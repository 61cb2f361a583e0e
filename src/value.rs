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

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Integer(v)
    }
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

    /// The bytes of a TEXT or BLOB.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Text(s) => Some(s.as_bytes()),
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

/// A copy of `bytes`, a value whose size comes from the data: when there is no memory for it,
/// an error (a failed allocation would otherwise abort the host process).
pub fn try_copy(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut copy = Vec::new();
    copy.try_reserve_exact(bytes.len())
        .map_err(|_| format!("out of memory for a value of {} bytes", bytes.len()))?;
    copy.extend_from_slice(bytes);
    Ok(copy)
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

/// `items` as a JSON list of strings.
pub fn json_string_list(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(item, &mut out);
    }
    out.push(']');
    out
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

/// Column names with values: an op's key or cells, a row.
pub type Cells = Vec<(String, Value)>;

/// The bytes spelled by `s` in hex (either case), or None.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
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

    /// The object of these cells, in order.
    pub fn of(cells: &[(String, Value)]) -> String {
        let mut obj = JsonObject::new();
        for (c, v) in cells {
            obj.field(c, v);
        }
        obj.finish()
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

    /// A field whose value is already JSON (`true`, a nested object).
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        write_json_string(key, &mut self.out);
        self.out.push(':');
        self.out.push_str(json);
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

/// Parses a flat JSON object of column values, spelled as `write_json` spells them:
/// numbers without `.` or exponent are INTEGERs, others REALs (`9e999` is +inf), `{"blob":"hex"}`
/// is a BLOB, `true`/`false` are 1/0.
pub fn parse_json_object(text: &str) -> Result<Vec<(String, Value)>, String> {
    Parser::whole(text, |p| {
        p.sequence(b'{', b'}', |p| {
            let key = p.string()?;
            p.expect(b':')?;
            Ok((key, p.value()?))
        })
    })
}

/// Parses a JSON array of strings.
pub fn parse_json_string_list(text: &str) -> Result<Vec<String>, String> {
    Parser::whole(text, |p| p.sequence(b'[', b']', Parser::string))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    /// Parses all of `text` with `f`.
    fn whole<T>(text: &str, f: impl FnOnce(&mut Parser) -> Result<T, String>) -> Result<T, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let out = f(&mut p)?;
        p.end()?;
        Ok(out)
    }

    /// `open item, item, … close`.
    fn sequence<T>(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        self.expect(open)?;
        let mut out = Vec::new();
        if self.eat(close) {
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            if self.eat(close) {
                return Ok(out);
            }
            self.expect(b',')?;
        }
    }

    fn skip_space(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_space();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    fn end(&mut self) -> Result<(), String> {
        self.skip_space();
        if self.i == self.s.len() {
            Ok(())
        } else {
            Err(format!("unexpected text at byte {}", self.i))
        }
    }

    fn word(&mut self, w: &str) -> bool {
        self.skip_space();
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_space();
        match self.s.get(self.i) {
            Some(b'"') => Ok(Value::Text(self.string()?)),
            Some(b'{') => {
                self.expect(b'{')?;
                if self.string()? != "blob" {
                    return Err("the only object value is {\"blob\":\"<hex>\"}".into());
                }
                self.expect(b':')?;
                let hex = self.string()?;
                self.expect(b'}')?;
                let bytes = unhex(&hex).ok_or("blob is not hex")?;
                Ok(Value::Blob(bytes))
            }
            _ if self.word("null") => Ok(Value::Null),
            _ if self.word("true") => Ok(Value::Integer(1)),
            _ if self.word("false") => Ok(Value::Integer(0)),
            _ => self.number(),
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        while self.i < self.s.len()
            && matches!(
                self.s[self.i],
                b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
            )
        {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
        if text.is_empty() {
            return Err(format!("expected a value at byte {start}"));
        }
        if !text.contains(['.', 'e', 'E']) {
            if let Ok(v) = text.parse::<i64>() {
                return Ok(Value::Integer(v));
            }
        }
        text.parse::<f64>()
            .map(Value::Real)
            .map_err(|_| format!("{text:?} is not a number"))
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = *self.s.get(self.i).ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("unterminated string")?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if !(self.eat(b'\\') && self.s.get(self.i) == Some(&b'u')) {
                                    return Err("lone surrogate".into());
                                }
                                self.i += 1;
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF)
                            } else {
                                hi
                            };
                            char::from_u32(code).ok_or("bad \\u escape")?
                        }
                        _ => return Err("bad escape".into()),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|e| e.to_string())
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(h).map_err(|e| e.to_string())?, 16)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_written_reads_back_exactly() {
        let values = vec![
            ("a".to_string(), Value::Integer(i64::MIN)),
            ("b \"q\"\n".to_string(), Value::Real(0.1 + 0.2)),
            ("c".to_string(), Value::Real(-0.0)),
            ("d".to_string(), Value::Real(f64::NEG_INFINITY)),
            ("e".to_string(), Value::Text("日本 \u{1}\u{1F600}".into())),
            ("f".to_string(), Value::Blob(vec![0, 255])),
            ("g".to_string(), Value::Null),
            ("h".to_string(), Value::Real(1e300)),
        ];
        let mut obj = JsonObject::new();
        for (k, v) in &values {
            obj.field(k, v);
        }
        let back = parse_json_object(&obj.finish()).unwrap();
        assert_eq!(back.len(), values.len());
        for ((k1, v1), (k2, v2)) in back.iter().zip(&values) {
            assert_eq!(k1, k2);
            match (v1, v2) {
                (Value::Real(x), Value::Real(y)) => assert_eq!(x.to_bits(), y.to_bits()),
                _ => assert_eq!(v1, v2),
            }
        }
        assert!(parse_json_object("{\"a\":1,}").is_err());
        assert!(parse_json_object("[1]").is_err());
    }
}
