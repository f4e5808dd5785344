//! Reads stored session data — a JSON object — straight from the row's bytes
//! into the record's values.
//!
//! Why not `serde_json::from_slice`: session data is many short strings, and
//! serde_json checks UTF-8 and scans for escapes string by string, through
//! the generic visitor machinery; here the input is checked as UTF-8 once
//! and every string without escapes is one scan and one copy. The result is
//! the same `serde_json::Value` tree serde_json builds (numbers follow its
//! rules: integers as `u64` / `i64`, `-0` and out-of-range integers as
//! floats; floats are read correctly rounded, so what serde_json wrote reads
//! back bit for bit, where serde_json's own default reader can be off in the
//! last bit), and the input it accepts is strict JSON, as serde_json's. Each
//! top-level member also comes with where its `"name":value` text sits in the
//! input, so a save can copy unchanged members instead of encoding them
//! again, and with its fingerprint ([`meta::fingerprint`]), written while
//! parsing rather than by walking the built value again.

use std::ops::Range;

use serde_json::{Map, Number, Value};

use super::meta;

/// Nesting deeper than this is refused, as serde_json refuses it, which also
/// bounds the recursion.
const MAX_DEPTH: usize = 128;

/// Why stored data is not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub(crate) struct JsonError {
    what: &'static str,
    at: usize,
}

/// One member of the top-level object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Member {
    /// The member's name, unescaped.
    pub(crate) name: String,
    /// Its value.
    pub(crate) value: Value,
    /// Its `"name":value` text in the input (from the name's opening quote to
    /// the value's last byte).
    pub(crate) span: Range<usize>,
    /// [`meta::fingerprint`] of the value.
    pub(crate) fingerprint: u64,
}

/// Parses `input` as one JSON object (whitespace around it allowed, nothing
/// else), handing its members to `each` in input order as they are read.
/// Returns the input as text, which the spans index. On an error, `each`
/// may have seen some members.
pub(crate) fn for_each_member(input: &[u8], mut each: impl FnMut(Member)) -> Result<&str, JsonError> {
    let text = std::str::from_utf8(input).map_err(|err| JsonError { what: "invalid utf-8", at: err.valid_up_to() })?;
    meta::with_scratch(|canon| {
        let mut parser = Parser { text, bytes: input, pos: 0, canon, canon_ok: true };
        parser.document(&mut each)
    })?;
    Ok(text)
}

/// Bytes that end the plain run of a string: the closing quote, an escape,
/// or a control character (which JSON does not allow raw).
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// The canonical form of the top-level value being parsed.
    canon: &'a mut Vec<u8>,
    /// Whether `canon` is that form: not when an object's names are out of
    /// order, as the built map iterates them in its own order.
    canon_ok: bool,
}

impl Parser<'_> {
    fn document(&mut self, each: &mut impl FnMut(Member)) -> Result<(), JsonError> {
        self.skip_ws();
        self.expect(b'{', "expected a json object")?;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                let start = self.pos;
                self.expect(b'"', "expected a member name")?;
                let name = self.string()?;
                self.skip_ws();
                self.expect(b':', "expected ':'")?;
                self.skip_ws();
                self.canon.clear();
                self.canon_ok = true;
                let value = self.value(1)?;
                let fingerprint = if self.canon_ok {
                    xxhash_rust::xxh3::xxh3_64(self.canon)
                } else {
                    meta::fingerprint(&value, self.canon)
                };
                each(Member { name, value, span: start..self.pos, fingerprint });
                self.skip_ws();
                match self.next() {
                    Some(b',') => self.skip_ws(),
                    Some(b'}') => break,
                    _ => return Err(self.error("expected ',' or '}'")),
                }
            }
        }
        self.skip_ws();
        if self.pos != self.bytes.len() {
            return Err(self.error("trailing characters"));
        }
        Ok(())
    }

    fn error(&self, what: &'static str) -> JsonError {
        JsonError { what, at: self.pos }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        let value = match self.peek() {
            Some(b'{') => return self.object(depth + 1),
            Some(b'[') => return self.array(depth + 1),
            _ => self.scalar()?,
        };
        if self.canon_ok {
            meta::write_canonical(&value, self.canon);
        }
        Ok(value)
    }

    fn scalar(&mut self) -> Result<Value, JsonError> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                Ok(Value::String(self.string()?))
            }
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a value")),
            None => Err(self.error("unexpected end of input")),
        }
    }

    fn literal(&mut self, word: &'static str, value: Value) -> Result<Value, JsonError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("invalid literal"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.pos += 1;
        let mut map = Map::new();
        let count_at = meta::write_container(b'o', 0, self.canon);
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.expect(b'"', "expected a member name")?;
            let name = self.string()?;
            if self.canon_ok {
                // Names in increasing order are the map's own order (sorted
                // or insertion order alike), so the form written so far holds.
                if map.keys().next_back().is_some_and(|last| *last >= name) {
                    self.canon_ok = false;
                } else {
                    meta::write_name(&name, self.canon);
                }
            }
            self.skip_ws();
            self.expect(b':', "expected ':'")?;
            self.skip_ws();
            let value = self.value(depth)?;
            // A repeated name keeps its last value, as serde_json does.
            map.insert(name, value);
            self.skip_ws();
            match self.next() {
                Some(b',') => self.skip_ws(),
                Some(b'}') => {
                    meta::set_count(self.canon, count_at, map.len());
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.pos += 1;
        let mut items = Vec::new();
        let count_at = meta::write_container(b'a', 0, self.canon);
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.next() {
                Some(b',') => self.skip_ws(),
                Some(b']') => {
                    meta::set_count(self.canon, count_at, items.len());
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
    }

    /// A string's contents, after its opening quote; leaves `pos` after the closing one.
    fn string(&mut self) -> Result<String, JsonError> {
        let start = self.pos;
        let run = self.plain_run();
        if self.peek() == Some(b'"') {
            self.pos += 1;
            return self.slice(start..start + run).map(str::to_owned);
        }
        let mut out = String::with_capacity(run + 16);
        out.push_str(self.slice(start..start + run)?);
        loop {
            match self.next() {
                Some(b'"') => return Ok(out),
                Some(b'\\') => self.escape(&mut out)?,
                Some(_) => {
                    self.pos -= 1;
                    return Err(self.error("control character in string"));
                }
                None => return Err(self.error("unterminated string")),
            }
            let from = self.pos;
            let run = self.plain_run();
            out.push_str(self.slice(from..from + run)?);
        }
    }

    /// Advances over bytes that need no decoding; returns how many.
    fn plain_run(&mut self) -> usize {
        let rest = &self.bytes[self.pos..];
        let run = rest.iter().position(|&b| STRING_STOP[usize::from(b)]).unwrap_or(rest.len());
        self.pos += run;
        run
    }

    fn slice(&self, range: Range<usize>) -> Result<&str, JsonError> {
        // Runs end at ASCII bytes, so this always lands on character boundaries.
        self.text.get(range).ok_or_else(|| self.error("invalid utf-8"))
    }

    fn escape(&mut self, out: &mut String) -> Result<(), JsonError> {
        let c = match self.next() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let first = self.hex4()?;
                let code = match first {
                    0xD800..=0xDBFF => {
                        if !self.bytes[self.pos..].starts_with(b"\\u") {
                            return Err(self.error("lone leading surrogate in hex escape"));
                        }
                        self.pos += 2;
                        let second = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return Err(self.error("lone leading surrogate in hex escape"));
                        }
                        0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err(self.error("lone trailing surrogate in hex escape")),
                    other => u32::from(other),
                };
                char::from_u32(code).ok_or_else(|| self.error("invalid unicode escape"))?
            }
            _ => return Err(self.error("invalid escape")),
        };
        out.push(c);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u16, JsonError> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or_else(|| self.error("unterminated escape"))?;
        let mut code = 0u16;
        for &d in digits {
            let nibble = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(self.error("invalid hex escape")),
            };
            code = (code << 4) | u16::from(nibble);
        }
        self.pos += 4;
        Ok(code)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        let int_len = self.digits();
        if int_len == 0 {
            return Err(self.error("invalid number"));
        }
        if int_len > 1 && self.bytes[int_start] == b'0' {
            return Err(JsonError { what: "invalid number", at: int_start + 1 });
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
            float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
            float = true;
        }
        if !float {
            // At most 19 digits always fit a u64; longer ones are checked.
            let mut significand = 0u64;
            let mut fits = true;
            for &d in &self.bytes[int_start..self.pos] {
                match significand.checked_mul(10).and_then(|s| s.checked_add(u64::from(d - b'0'))) {
                    Some(s) => significand = s,
                    None => {
                        fits = false;
                        break;
                    }
                }
            }
            if fits {
                if !negative {
                    return Ok(Value::Number(Number::from(significand)));
                }
                // As serde_json: `-0` and integers below i64::MIN become floats.
                let negated = (significand as i64).wrapping_neg();
                if negated < 0 {
                    return Ok(Value::Number(Number::from(negated)));
                }
            }
        }
        let text = self.slice(start..self.pos)?;
        let parsed: f64 = text.parse().map_err(|_| JsonError { what: "invalid number", at: start })?;
        Number::from_f64(parsed).map(Value::Number).ok_or(JsonError { what: "number out of range", at: start })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse_object(input: &[u8]) -> Result<(&str, Vec<Member>), JsonError> {
        let mut members = Vec::new();
        let text = for_each_member(input, |member| members.push(member))?;
        Ok((text, members))
    }

    fn parse_value(text: &str) -> Result<Value, JsonError> {
        let (_, members) = parse_object(format!("{{\"k\":{text}}}").as_bytes())?;
        Ok(members.into_iter().next().map(|m| m.value).unwrap_or(Value::Null))
    }

    #[test]
    fn values_match_serde_json() {
        let cases = [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "7",
            "-7",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "1.5",
            "-0.0",
            "1e3",
            "1E-3",
            "2.5e+10",
            "123456789012345678901234567890",
            "\"\"",
            "\"plain\"",
            r#""esc \" \\ \/ \b \f \n \r \t end""#,
            r#""\u00e9\u20ac\ud83d\ude00 ü""#,
            "[]",
            "[1, [2, [3]], {\"a\": null}]",
            "{}",
            "{ \"b\" : 1 , \"a\" : [ true ] , \"b\" : 2 }",
            "\"x\u{7f}y\"",
        ];
        for case in cases {
            let ours = parse_value(case).unwrap_or_else(|err| panic!("{case}: {err}"));
            let theirs: Value = serde_json::from_str(case).unwrap_or_else(|err| panic!("{case}: {err}"));
            assert_eq!(ours, theirs, "{case}");
            if let (Value::Number(a), Value::Number(b)) = (&ours, &theirs) {
                assert_eq!((a.is_u64(), a.is_i64(), a.is_f64()), (b.is_u64(), b.is_i64(), b.is_f64()), "{case}");
                if let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) {
                    assert_eq!(x.to_bits(), y.to_bits(), "{case}");
                }
            }
        }
    }

    #[test]
    fn invalid_input_is_refused_as_serde_json_refuses_it() {
        let cases = [
            "",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "1e999",
            "nul",
            "tru",
            "[1,]",
            "[1 2]",
            "{\"a\" 1}",
            "{\"a\":1,}",
            "{a:1}",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"tab\there\"",
            "\"open",
            "[",
            "NaN",
            "Infinity",
        ];
        for case in cases {
            assert!(serde_json::from_str::<Value>(case).is_err(), "serde_json accepts {case:?}");
            assert!(parse_value(case).is_err(), "accepted {case:?}");
        }
        for doc in ["", "[]", "1", "{} x", "{\"a\":1}}", "{\"a\":1", "{,}"] {
            assert!(parse_object(doc.as_bytes()).is_err(), "accepted {doc:?}");
        }
        assert!(parse_object(b"{\"a\":\"\xff\"}").is_err(), "accepted invalid utf-8");
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse_value(&deep).is_err(), "accepted nesting deeper than serde_json does");
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(parse_value(&ok), serde_json::from_str::<Value>(&ok).map_err(|_| JsonError { what: "", at: 0 }));
    }

    /// A random value from a xorshift state: every JSON type, escapes,
    /// non-ASCII text, extreme numbers, nesting.
    fn random_value(state: &mut u64, depth: usize) -> Value {
        fn next(state: &mut u64) -> u64 {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state
        }
        let pick = next(state) % if depth > 3 { 6 } else { 8 };
        match pick {
            0 => Value::Null,
            1 => Value::Bool(next(state).is_multiple_of(2)),
            2 => json!(next(state)),
            3 => json!(next(state) as i64),
            4 => Number::from_f64(f64::from_bits(next(state))).map_or(json!(0.5), Value::Number),
            5 => {
                let pieces = ["a", "é", "\"", "\\", "\n", "\u{1}", "€", "😀", "/", " ", "\u{7f}"];
                let len = next(state) % 6;
                Value::String((0..len).map(|_| pieces[(next(state) % 11) as usize]).collect())
            }
            6 => {
                let len = next(state) % 4;
                Value::Array((0..len).map(|_| random_value(state, depth + 1)).collect())
            }
            _ => {
                let len = next(state) % 4;
                let mut map = Map::new();
                for i in 0..len {
                    let name = format!("k{}{i}", next(state) % 3);
                    map.insert(name, random_value(state, depth + 1));
                }
                Value::Object(map)
            }
        }
    }

    #[test]
    fn random_documents_read_as_serde_json_reads_them() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut scratch = Vec::new();
        for round in 0..300 {
            let doc: Map<String, Value> = (0..6).map(|i| (format!("key{i}"), random_value(&mut state, 0))).collect();
            let text = if round % 2 == 0 {
                serde_json::to_string(&doc).expect("encode")
            } else {
                serde_json::to_string_pretty(&doc).expect("encode")
            };
            let (read, members) = parse_object(text.as_bytes()).expect("parse");
            assert_eq!(members.len(), doc.len());
            for member in &members {
                let expected = &doc[&member.name];
                assert_eq!(&member.value, expected, "{text}");
                assert_eq!(member.fingerprint, meta::fingerprint(expected, &mut scratch), "{text}");
                // The member's text alone reads back as the same member
                // (compared with this reader: serde_json's own float parsing
                // is not correctly rounded, so it can differ in the last bit).
                let stored = format!("{{{}}}", &read[member.span.clone()]);
                let (_, alone) = parse_object(stored.as_bytes()).expect("member text");
                assert_eq!((&alone[0].name, &alone[0].value), (&member.name, expected), "{stored}");
            }
        }
    }

    /// Damaged documents (truncated, a byte replaced, removed or inserted)
    /// are accepted exactly when serde_json accepts them, and then read as
    /// the same members.
    #[test]
    fn damaged_documents_are_accepted_exactly_when_serde_json_accepts_them() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let bytes_to_try =
            [b'{', b'}', b'[', b']', b'"', b',', b':', b'\\', b'u', b'1', b'0', b' ', b'e', b'-', b'.', 0xff];
        let (mut accepted, mut refused) = (0, 0);
        for round in 0..3000_u64 {
            let doc: Map<String, Value> = (0..3).map(|i| (format!("key{i}"), random_value(&mut state, 1))).collect();
            let mut text = serde_json::to_vec(&doc).expect("encode");
            // A position spread over the document by a multiplicative hash of the round.
            let at = (round.wrapping_mul(0x9e37_79b9) >> 7) as usize % text.len();
            let byte = bytes_to_try[round as usize % bytes_to_try.len()];
            match round % 4 {
                0 => text.truncate(at),
                1 => text[at] = byte,
                2 => {
                    text.remove(at);
                }
                _ => text.insert(at, byte),
            }
            let theirs = serde_json::from_slice::<Map<String, Value>>(&text);
            let ours = parse_object(&text);
            assert_eq!(
                ours.is_ok(),
                theirs.is_ok(),
                "{:?}: ours {:?}, serde_json {:?}",
                String::from_utf8_lossy(&text),
                ours.as_ref().err(),
                theirs.as_ref().err()
            );
            if ours.is_ok() {
                accepted += 1;
            } else {
                refused += 1;
            }
            if let (Ok((_, members)), Ok(map)) = (ours, theirs) {
                let read: Map<String, Value> = members.into_iter().map(|m| (m.name, m.value)).collect();
                assert_eq!(read.len(), map.len(), "{:?}", String::from_utf8_lossy(&text));
            }
        }
        assert!(accepted > 300 && refused > 300, "both outcomes exercised: {accepted} accepted, {refused} refused");
    }

    #[test]
    fn fingerprints_written_while_parsing_match_those_of_the_values() {
        let doc = r#"{"a":[1,-2,3.5,"x",null,true,false,[],{}],"b":{"x":{"p":1,"q":[{"z":0}]},"y":"\u00e9"},
            "c":{"b":1,"a":2},"d":{"a":1,"a":2},"e":[{"b":1,"a":{"y":1,"x":2}},{"a":1}],"f":"","g":{}}"#;
        let (_, members) = parse_object(doc.as_bytes()).expect("parse");
        let mut scratch = Vec::new();
        assert_eq!(members.len(), 7);
        for member in &members {
            assert_eq!(member.fingerprint, meta::fingerprint(&member.value, &mut scratch), "{}", member.name);
        }
    }

    #[test]
    fn members_come_in_order_with_their_text() {
        let doc = " {\"a\" : 1, \"b\\u0062\":{\"x\":[1,2]} ,\"c\":\"s\"} \n";
        let (text, members) = parse_object(doc.as_bytes()).expect("parse");
        let got: Vec<(&str, &str, Value)> =
            members.iter().map(|m| (m.name.as_str(), &text[m.span.clone()], m.value.clone())).collect();
        let mut scratch = Vec::new();
        for member in &members {
            assert_eq!(member.fingerprint, meta::fingerprint(&member.value, &mut scratch), "{}", member.name);
        }
        assert_eq!(
            got,
            [
                ("a", "\"a\" : 1", json!(1)),
                ("bb", "\"b\\u0062\":{\"x\":[1,2]}", json!({"x": [1, 2]})),
                ("c", "\"c\":\"s\"", json!("s")),
            ]
        );
        let (_, empty) = parse_object(b" { } ").expect("empty object");
        assert!(empty.is_empty());
    }
}
