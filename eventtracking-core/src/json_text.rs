//! Writing payload values as JSON text, for generated code: strings that
//! need no escaping (almost all) are copied as they are, after a scan of
//! eight bytes at a time, instead of serde_json's byte-by-byte escaper.
//! Nested values (structs, enums, sequences) go through [`JsonWriter`], a
//! serializer that writes what serde_json writes, with the same fast path
//! for their strings and field names.

use std::any::Any;

use serde::ser::{self, Serialize};

/// Appends `value` as JSON to `out`: `String` and `&str` through the fast
/// path, everything else through a serializer that writes what serde_json
/// writes (with the same fast path for strings and field names).
pub fn write_json_value<T: Serialize + Any>(
    out: &mut String,
    value: &T,
) -> Result<(), serde_json::Error> {
    // Resolved per type at compile time: no cost for the other types.
    let any = value as &dyn Any;
    if let Some(text) = any.downcast_ref::<String>() {
        write_json_string(out, text)
    } else if let Some(text) = any.downcast_ref::<&'static str>() {
        write_json_string(out, text)
    } else {
        value.serialize(JsonWriter(out))
    }
}

/// A serializer writing compact JSON exactly as `serde_json::to_writer`
/// does, into a `String` (so the text needs no UTF-8 check afterwards), with
/// strings and struct field names through [`write_json_string`].
/// Numbers, map keys that are not plain strings and serde_json's own
/// special types (raw values) are handed to serde_json itself.
pub(crate) struct JsonWriter<'a>(pub(crate) &'a mut String);

type Result<T = (), E = serde_json::Error> = std::result::Result<T, E>;

/// Writes one value through serde_json (numbers, and rare kinds).
fn by_serde_json<T: Serialize + ?Sized>(out: &mut String, value: &T) -> Result {
    // Numbers fit a buffer on the stack; anything longer gets its own.
    let mut buffer = [0u8; 64];
    let mut rest = &mut buffer[..];
    if serde_json::to_writer(&mut rest, value).is_ok() {
        let written = 64 - rest.len();
        if let Ok(text) = std::str::from_utf8(&buffer[..written]) {
            out.push_str(text);
            return Ok(());
        }
    }
    out.push_str(&serde_json::to_string(value)?);
    Ok(())
}

/// `serialize_bytes` as serde_json writes it: an array of numbers.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// A map holding one key (and `null`): serde_json writes `{KEY:null}`,
/// which is how the key of any type is turned into JSON as serde_json does.
struct OneKey<'a, K: ?Sized>(&'a K);

impl<K: Serialize + ?Sized> Serialize for OneKey<'_, K> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.0, &())?;
        map.end()
    }
}

/// A struct of serde_json's private kinds (`$serde_json::private::...`,
/// such as `RawValue`) as its own serializer sees it, one field at a time.
struct Private<'a, T: ?Sized> {
    name: &'static str,
    key: &'static str,
    value: &'a T,
}

impl<T: Serialize + ?Sized> Serialize for Private<'_, T> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use ser::SerializeStruct as _;
        let mut s = serializer.serialize_struct(self.name, 1)?;
        s.serialize_field(self.key, self.value)?;
        s.end()
    }
}

const SERDE_JSON_PRIVATE: &str = "$serde_json::private::";

macro_rules! by_serde_json {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method(self, value: $ty) -> Result {
            by_serde_json(self.0, &value)
        }
    )*};
}

impl<'a> ser::Serializer for JsonWriter<'a> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    by_serde_json! {
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_i128(i128);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_u128(u128);
        serialize_f32(f32);
        serialize_f64(f64);
    }

    fn serialize_bool(self, value: bool) -> Result {
        self.0.push_str(if value { "true" } else { "false" });
        Ok(())
    }

    fn serialize_char(self, value: char) -> Result {
        write_json_string(self.0, value.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, value: &str) -> Result {
        write_json_string(self.0, value)
    }

    fn serialize_bytes(self, value: &[u8]) -> Result {
        by_serde_json(self.0, &Bytes(value))
    }

    fn serialize_none(self) -> Result {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result {
        self.0.push_str("null");
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result {
        write_json_string(self.0, variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result {
        self.0.push('{');
        write_json_string(self.0, variant)?;
        self.0.push(':');
        value.serialize(JsonWriter(&mut *self.0))?;
        self.0.push('}');
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>> {
        self.0.push('[');
        Ok(Compound::new(self.0, "]"))
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a>> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>> {
        self.0.push('{');
        write_json_string(self.0, variant)?;
        self.0.push_str(":[");
        Ok(Compound::new(self.0, "]}"))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>> {
        self.0.push('{');
        Ok(Compound::new(self.0, "}"))
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Compound<'a>> {
        let mut compound = self.serialize_map(Some(len))?;
        if name.starts_with(SERDE_JSON_PRIVATE) {
            // Not a map: serde_json's own kind, written by serde_json.
            compound.out.pop();
            compound.private = Some(name);
        }
        Ok(compound)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>> {
        self.0.push('{');
        write_json_string(self.0, variant)?;
        self.0.push_str(":{");
        Ok(Compound::new(self.0, "}}"))
    }

    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result {
        write_json_string(self.0, &value.to_string())
    }
}

/// A sequence, map or struct being written: `,` before every element but
/// the first, `close` at the end.
pub(crate) struct Compound<'a> {
    out: &'a mut String,
    first: bool,
    close: &'static str,
    /// The name of a serde_json private struct being written (see
    /// [`JsonWriter`]'s `serialize_struct`).
    private: Option<&'static str>,
}

impl<'a> Compound<'a> {
    fn new(out: &'a mut String, close: &'static str) -> Self {
        Compound {
            out,
            first: true,
            close,
            private: None,
        }
    }

    fn separate(&mut self) {
        if self.first {
            self.first = false;
        } else {
            self.out.push(',');
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.separate();
        value.serialize(JsonWriter(&mut *self.out))
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        if let Some(name) = self.private {
            return by_serde_json(self.out, &Private { name, key, value });
        }
        self.separate();
        write_json_string(self.out, key)?;
        self.out.push(':');
        value.serialize(JsonWriter(&mut *self.out))
    }

    fn end(self) -> Result {
        if self.private.is_none() {
            self.out.push_str(self.close);
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = serde_json::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }
    fn end(self) -> Result {
        Compound::end(self)
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = serde_json::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }
    fn end(self) -> Result {
        Compound::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = serde_json::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }
    fn end(self) -> Result {
        Compound::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = serde_json::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }
    fn end(self) -> Result {
        Compound::end(self)
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = serde_json::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result {
        self.separate();
        // The key as serde_json writes it (it quotes numbers and refuses
        // what cannot be a key): the inside of `{KEY:null}`.
        let start = self.out.len();
        by_serde_json(self.out, &OneKey(key))?;
        const END: &str = ":null}";
        let written = &self.out[start..];
        if !(written.starts_with('{') && written.ends_with(END) && written.len() > END.len()) {
            return Err(ser::Error::custom("unexpected JSON for a map key"));
        }
        self.out.truncate(self.out.len() - END.len());
        self.out.remove(start);
        self.out.push(':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        value.serialize(JsonWriter(&mut *self.out))
    }
    fn end(self) -> Result {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = serde_json::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        self.field(key, value)
    }
    fn end(self) -> Result {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = serde_json::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        self.field(key, value)
    }
    fn end(self) -> Result {
        Compound::end(self)
    }
}

/// Appends `text` as a JSON string, exactly as serde_json writes it.
pub(crate) fn write_json_string(out: &mut String, text: &str) -> Result {
    if needs_escaping(text.as_bytes()) {
        out.push_str(&serde_json::to_string(text)?);
        return Ok(());
    }
    out.reserve(text.len() + 2);
    out.push('"');
    out.push_str(text);
    out.push('"');
    Ok(())
}

/// [`write_json_string`] into bytes.
pub(crate) fn write_json_str(out: &mut Vec<u8>, text: &str) -> Result {
    if needs_escaping(text.as_bytes()) {
        return serde_json::to_writer(out, text);
    }
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
    Ok(())
}

/// Appends `value` as JSON, byte for byte what `serde_json::to_writer`
/// writes, walking the tree directly: strings and keys through
/// [`write_json_str`]'s eight-byte scan, only numbers through serde_json.
/// An emitted event's payload and contexts are `Value`s; this is their
/// writer on the emit path.
pub(crate) fn write_json_tree(out: &mut Vec<u8>, value: &serde_json::Value) -> Result {
    use serde_json::Value;
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => serde_json::to_writer(&mut *out, number)?,
        Value::String(text) => write_json_str(out, text)?,
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_json_tree(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => write_json_object(out, map)?,
    }
    Ok(())
}

/// [`write_json_tree`] of a map: `{"key":value,...}` in the map's order.
pub(crate) fn write_json_object(
    out: &mut Vec<u8>,
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result {
    out.push(b'{');
    for (index, (key, item)) in map.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_json_str(out, key)?;
        out.push(b':');
        write_json_tree(out, item)?;
    }
    out.push(b'}');
    Ok(())
}

/// The high bit of each lane (byte) of `lanes`, read as a little-endian
/// word, whose byte serde_json escapes: below 0x20, `"` or `\`. A borrow
/// can also flag a lane above one that really matches, never a lane below
/// the first match, nor any lane of a word without one.
fn escape_flags(lanes: [u8; 8]) -> u64 {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    /// Lanes of `word` below `n` (n <= 0x80).
    fn below(word: u64, n: u8) -> u64 {
        word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS
    }
    let word = u64::from_le_bytes(lanes);
    below(word, 0x20)
        | below(word ^ (ONES * u64::from(b'"')), 1)
        | below(word ^ (ONES * u64::from(b'\\')), 1)
}

/// Whether serde_json escapes any of these bytes: control characters, `"`
/// and `\`. (It writes every other byte, UTF-8 included, as it is.)
///
/// Eight bytes at a time (SWAR): a byte below 0x20, or equal to `"` or `\`,
/// sets the high bit of its lane in one of three masks. The masks can also
/// flag a lane above a lane that really matches (borrows), never a word
/// with no match, so "any lane flagged" is exact.
pub(crate) fn needs_escaping(bytes: &[u8]) -> bool {
    let flagged = |lanes: [u8; 8]| escape_flags(lanes) != 0;
    let len = bytes.len();
    if len < 8 {
        // Short strings (most field names, many values): one word made of
        // two overlapping four-byte halves, or the bytes one by one.
        let half = |at: usize| {
            let mut lanes = [0u8; 4];
            if let Some(four) = bytes.get(at..at + 4) {
                lanes.copy_from_slice(four);
            }
            u32::from_ne_bytes(lanes)
        };
        if len >= 4 {
            let word = u64::from(half(0)) | (u64::from(half(len - 4)) << 32);
            return flagged(word.to_ne_bytes());
        }
        return bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    }
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut lanes = [0u8; 8];
        lanes.copy_from_slice(chunk);
        if flagged(lanes) {
            return true;
        }
    }
    if words.remainder().is_empty() {
        return false;
    }
    // The last eight bytes as one more word (partly checked already).
    let mut lanes = [0u8; 8];
    if let Some(last) = bytes.get(len - 8..) {
        lanes.copy_from_slice(last);
    }
    flagged(lanes)
}

/// Where the first byte that serde_json escapes in a string (a control
/// character, `"` or `\`) is in `bytes`, or `None`: the end of a JSON
/// string's text when that byte is its closing `"`. Eight bytes at a time,
/// as [`needs_escaping`]: a borrow can only flag a lane above a lane that
/// really matches, so the lowest flagged lane is the first match.
pub(crate) fn first_escaped(bytes: &[u8]) -> Option<usize> {
    // Lane 0 is the lowest byte (little-endian): the first flagged lane's
    // byte is the first match.
    let first = |at: usize, flags: u64| at + (flags.trailing_zeros() / 8) as usize;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut words {
        let mut lanes = [0u8; 8];
        lanes.copy_from_slice(chunk);
        let flagged = escape_flags(lanes);
        if flagged != 0 {
            return Some(first(at, flagged));
        }
        at += 8;
    }
    // The tail, padded with a byte that is never escaped.
    let tail = words.remainder();
    let mut lanes = [b'a'; 8];
    lanes[..tail.len()].copy_from_slice(tail);
    let flagged = escape_flags(lanes);
    (flagged != 0).then(|| first(at, flagged))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut cases: Vec<String> = [
            "",
            "http://www.edx.org/some/path/1",
            "quote \" inside",
            "back\\slash",
            "tab\tand\nnewline",
            "\u{1}\u{1f}",
            "üñíçødé and emoji 🎉",
            "\u{7f} is not escaped",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        cases.push("x".repeat(40) + "\"" + &"y".repeat(40));
        for byte in 0u8..128 {
            cases.push(format!("{}{}", "a".repeat(17), byte as char));
        }
        for case in cases {
            let mut fast = String::new();
            write_json_value(&mut fast, &case).unwrap();
            assert_eq!(fast, serde_json::to_string(&case).unwrap(), "{case:?}");
            let mut bytes = Vec::new();
            write_json_str(&mut bytes, &case).unwrap();
            assert_eq!(bytes, fast.as_bytes());
            let mut borrowed = String::new();
            let text: &'static str = Box::leak(case.clone().into_boxed_str());
            write_json_value(&mut borrowed, &text).unwrap();
            assert_eq!(borrowed, fast);
        }
    }

    /// Every byte value at every position of words and tails, among
    /// neighbours that sit next to the borders of the checks: both
    /// eight-byte scans agree with a byte-by-byte search.
    #[test]
    fn the_escape_scans_match_a_byte_by_byte_search() {
        let first = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        };
        for len in 0..=19 {
            for position in 0..len {
                for fill in [b'a', 0x20, 0x21, 0x7f, 0x80, 0xff, b'"' + 1, b'\\' + 1] {
                    for byte in 0..=255u8 {
                        let mut bytes = vec![fill; len];
                        bytes[position] = byte;
                        assert_eq!(first_escaped(&bytes), first(&bytes), "{bytes:?}");
                        assert_eq!(needs_escaping(&bytes), first(&bytes).is_some(), "{bytes:?}");
                        // A second match after the first changes nothing.
                        if position + 3 < len {
                            bytes[position + 3] = b'"';
                            assert_eq!(first_escaped(&bytes), first(&bytes), "{bytes:?}");
                        }
                    }
                }
            }
        }
        assert_eq!(first_escaped(b""), None);
        assert!(!needs_escaping(b""));
    }

    /// `write_json_value` of `value` gives what serde_json gives.
    fn same_as_serde_json<T: Serialize + Any>(value: &T) {
        let mut ours = "[".to_string();
        let ours = write_json_value(&mut ours, value).map(|()| ours);
        let theirs = serde_json::to_string(value).map(|text| format!("[{text}"));
        match (ours, theirs) {
            (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs),
            (Err(ours), Err(theirs)) => assert_eq!(ours.to_string(), theirs.to_string()),
            (ours, theirs) => panic!("{ours:?} but serde_json: {theirs:?}"),
        }
    }

    #[test]
    fn nested_values_are_written_as_serde_json_writes_them() {
        use std::collections::BTreeMap;

        #[derive(serde::Serialize)]
        struct Unit;
        #[derive(serde::Serialize)]
        struct Newtype(String);
        #[derive(serde::Serialize)]
        struct Pair(u8, &'static str);
        #[derive(serde::Serialize)]
        enum Kind {
            Plain,
            Wrapped(i64),
            Tuple(u8, bool),
            Fields { a: Option<u8>, b: Vec<char> },
        }
        #[derive(serde::Serialize)]
        struct Empty {}
        #[derive(serde::Serialize)]
        #[serde(tag = "type")]
        enum Tagged {
            One { x: f32 },
        }
        #[derive(serde::Serialize)]
        struct Everything {
            text: String,
            #[serde(rename = "quoted \"key\"\n")]
            escaped: &'static str,
            unit: Unit,
            newtype: Newtype,
            pair: Pair,
            kinds: Vec<Kind>,
            empty: Empty,
            empty_list: Vec<u8>,
            tagged: Tagged,
            numbers: (i8, i16, i32, i64, i128, u8, u16, u32, u64, u128),
            floats: (f32, f64, f64, f64, f64),
            none: Option<String>,
            some: Option<String>,
            ch: char,
            #[serde(with = "as_bytes")]
            bytes: Vec<u8>,
            map: BTreeMap<String, u8>,
            int_keys: BTreeMap<i32, bool>,
            bool_keys: BTreeMap<bool, ()>,
            value: serde_json::Value,
            raw: Box<serde_json::value::RawValue>,
            #[serde(skip_serializing_if = "Option::is_none")]
            skipped: Option<u8>,
            #[serde(flatten)]
            flattened: BTreeMap<String, String>,
            displayed: Displayed,
        }
        mod as_bytes {
            pub(super) fn serialize<S: serde::Serializer>(
                v: &[u8],
                s: S,
            ) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(v)
            }
        }
        struct Displayed;
        impl Serialize for Displayed {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&format_args!("shown {}\t\"{}\"", 1, "é"))
            }
        }
        let everything = Everything {
            text: "plain text".into(),
            escaped: "line\nbreak \u{1} \\ \"",
            unit: Unit,
            newtype: Newtype("ünïcödé 🎉".into()),
            pair: Pair(7, "seven"),
            kinds: vec![
                Kind::Plain,
                Kind::Wrapped(-3),
                Kind::Tuple(1, false),
                Kind::Fields {
                    a: None,
                    b: vec!['x', '"', '\n'],
                },
                Kind::Fields {
                    a: Some(2),
                    b: vec![],
                },
            ],
            empty: Empty {},
            empty_list: vec![],
            tagged: Tagged::One { x: 1.5 },
            numbers: (
                -8,
                -16,
                -32,
                i64::MIN,
                i128::MIN,
                8,
                16,
                32,
                u64::MAX,
                u128::MAX,
            ),
            floats: (0.1, 1e300, f64::NAN, f64::NEG_INFINITY, -0.0),
            none: None,
            some: Some("some".into()),
            ch: '\u{7}',
            bytes: vec![0, 1, 255],
            map: [("b".to_string(), 2), ("a\"".to_string(), 1)].into(),
            int_keys: [(-1, true), (5, false)].into(),
            bool_keys: [(true, ())].into(),
            value: serde_json::json!({"z": [1, 2.5, null, {"k": "v\u{0}"}], "a": true}),
            raw: serde_json::value::RawValue::from_string(r#"{"kept" : [1, 2]}"#.into()).unwrap(),
            skipped: None,
            flattened: [("flat".to_string(), "yes".to_string())].into(),
            displayed: Displayed,
        };
        same_as_serde_json(&everything);
        same_as_serde_json(&vec![Some(1.25f32), None]);
        same_as_serde_json(&(Unit, Kind::Plain));
        same_as_serde_json(&serde_json::json!([]));
        same_as_serde_json(&serde_json::json!({}));
        // A key that cannot be a JSON key: the same error.
        same_as_serde_json(&BTreeMap::from([(vec![1u8], 1u8)]));
        same_as_serde_json(&BTreeMap::from([((), 1u8)]));
    }

    proptest::proptest! {
        /// Any `Value` tree (strings with escapes and non-ASCII text,
        /// integers of both signs, floats, nesting) is written byte for byte
        /// as serde_json writes it.
        #[test]
        fn value_trees_are_written_as_serde_json_writes_them(value in json_tree()) {
            let mut ours = b"[".to_vec();
            write_json_tree(&mut ours, &value).unwrap();
            let mut theirs = b"[".to_vec();
            serde_json::to_writer(&mut theirs, &value).unwrap();
            proptest::prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
        }
    }

    fn json_tree() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "(?s).{0,24}".prop_map(Value::String),
            r#"[a-z"\\\x00-\x1f]{0,12}"#.prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec(("(?s).{0,10}", inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn other_values_go_through_serde_json() {
        let mut out = String::new();
        write_json_value(&mut out, &vec![1u64, 2]).unwrap();
        write_json_value(&mut out, &Some("a\"b".to_string())).unwrap();
        assert_eq!(out, r#"[1,2]"a\"b""#);
    }
}
