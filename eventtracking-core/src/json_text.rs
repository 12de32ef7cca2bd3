//! Writing payload values as JSON text, for generated code: strings that
//! need no escaping (almost all) are copied as they are, after a scan that
//! the compiler vectorizes, instead of serde_json's byte-by-byte escaper.

use std::any::Any;

use serde::Serialize;

/// Appends `value` as JSON to `out`: `String` and `&str` through the fast
/// path, everything else through serde_json.
pub fn write_json_value<T: Serialize + Any>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), serde_json::Error> {
    // Resolved per type at compile time: no cost for the other types.
    let any = value as &dyn Any;
    if let Some(text) = any.downcast_ref::<String>() {
        write_json_str(out, text)
    } else if let Some(text) = any.downcast_ref::<&'static str>() {
        write_json_str(out, text)
    } else {
        serde_json::to_writer(out, value)
    }
}

/// Appends `text` as a JSON string, exactly as serde_json writes it.
pub(crate) fn write_json_str(out: &mut Vec<u8>, text: &str) -> Result<(), serde_json::Error> {
    if needs_escaping(text.as_bytes()) {
        return serde_json::to_writer(out, text);
    }
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
    Ok(())
}

/// Whether serde_json escapes any of these bytes: control characters, `"`
/// and `\`. (It writes every other byte, UTF-8 included, as it is.)
fn needs_escaping(bytes: &[u8]) -> bool {
    // No early exit inside a chunk, so each chunk is checked with SIMD.
    bytes.chunks(16).any(|chunk| {
        chunk.iter().fold(false, |found, &b| {
            found | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    })
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
            let mut fast = Vec::new();
            write_json_value(&mut fast, &case).unwrap();
            assert_eq!(fast, serde_json::to_vec(&case).unwrap(), "{case:?}");
            let mut borrowed = Vec::new();
            let text: &'static str = Box::leak(case.clone().into_boxed_str());
            write_json_value(&mut borrowed, &text).unwrap();
            assert_eq!(borrowed, fast);
        }
    }

    #[test]
    fn other_values_go_through_serde_json() {
        let mut out = Vec::new();
        write_json_value(&mut out, &vec![1u64, 2]).unwrap();
        write_json_value(&mut out, &Some("a\"b".to_string())).unwrap();
        assert_eq!(out, br#"[1,2]"a\"b""#);
    }
}
