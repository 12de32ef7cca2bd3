//! Event ids as text: the lowercase hyphenated form events are written
//! with, read eight hex digits at a time (a digit at a time was a tenth of
//! a line's parse) and written two at a time (~86 instructions an id,
//! against ~120 through the uuid crate's encoder).

use uuid::Uuid;

/// Appends `id` in the lowercase hyphenated form
/// (`01a225b4-d94a-7000-b9f9-c37f702a909a`), as `Uuid`'s `hyphenated()`
/// writes it: each byte's two digits from one table entry, where the uuid
/// crate's encoder looks up each digit on its own.
pub(super) fn write_lower_hyphenated(out: &mut Vec<u8>, id: Uuid) {
    /// Where each byte's two digits go in the text.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let mut text = *b"00000000-0000-0000-0000-000000000000";
    for (&byte, at) in id.as_bytes().iter().zip(AT) {
        text[at..at + 2].copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    out.extend_from_slice(&text);
}

/// The two lowercase hex digits of each byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [DIGITS[byte >> 4], DIGITS[byte & 0xf]];
        byte += 1;
    }
    pairs
};

/// A UUID in the lowercase hyphenated form events are written with (which
/// `Uuid`'s parser reads to the same value), or `None`. Its 32 digits are
/// read eight at a time ([`lowercase_hex8`]): a digit at a time was a
/// tenth of the parse.
pub(super) fn lower_hyphenated_uuid(text: &[u8]) -> Option<Uuid> {
    if text.len() != 36 || [8, 13, 18, 23].iter().any(|&at| text[at] != b'-') {
        return None;
    }
    // Each group of eight digits as one word, loaded as one or two pieces.
    let word = |at: usize| {
        text[at..]
            .first_chunk()
            .map(|&bytes| u64::from_le_bytes(bytes))
    };
    let half = |at: usize| {
        text[at..]
            .first_chunk()
            .map(|&bytes| u64::from(u32::from_le_bytes(bytes)))
    };
    let groups = [
        word(0)?,
        half(9)? | half(14)? << 32,
        half(19)? | half(24)? << 32,
        word(28)?,
    ];
    let value = groups.into_iter().try_fold(0u128, |value, group| {
        Some(value << 32 | u128::from(lowercase_hex8(group.to_le_bytes())?))
    })?;
    Some(Uuid::from_u128(value))
}

/// The value of eight lowercase hex digits, the first the most
/// significant, or `None` if any byte is not one (`0`-`9`, `a`-`f`).
/// All eight at once in one word (SWAR), one byte per lane, the first in
/// the lowest lane.
fn lowercase_hex8(digits: [u8; 8]) -> Option<u32> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const LOW7: u64 = u64::from_le_bytes([0x7f; 8]);
    /// The high bit of each lane whose byte is strictly between `low` and
    /// `high` (`high` <= 0x80). No carry or borrow crosses a lane: each
    /// lane's sum stays under 0x100 and its difference at or above 0.
    fn between(word: u64, low: u8, high: u8) -> u64 {
        let seven = word & LOW7;
        (ONES * (127 + u64::from(high)) - seven)
            & !word
            & (seven + ONES * (127 - u64::from(low)))
            & HIGHS
    }
    let word = u64::from_le_bytes(digits);
    let hex = between(word, b'0' - 1, b'9' + 1) | between(word, b'a' - 1, b'f' + 1);
    if hex != HIGHS {
        return None;
    }
    // `0`-`9` are 0x30-0x39, `a`-`f` 0x61-0x66: the low four bits, and 9
    // more where bit 6 is set (a letter).
    let nibbles = (word & (ONES * 0x0f)) + 9 * ((word >> 6) & ONES);
    // Pairs of lanes into bytes, pairs of bytes into halves, halves into
    // the value, the lower lane always the more significant.
    let bytes = ((nibbles << 4) | (nibbles >> 8)) & 0x00ff_00ff_00ff_00ff;
    let halves = ((bytes << 8) | (bytes >> 16)) & 0x0000_ffff_0000_ffff;
    Some(((halves << 16) | (halves >> 32)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_written_as_uuids_hyphenated_form_writes_them() {
        let mut ids = vec![
            Uuid::nil(),
            Uuid::max(),
            Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
        ];
        ids.extend((0..1000).map(|_| Uuid::from_u128(fastrand::u128(..))));
        for nibble in 0..16u128 {
            for at in 0..32 {
                ids.push(Uuid::from_u128(nibble << (4 * at)));
            }
        }
        for id in ids {
            let mut out = b"x".to_vec();
            write_lower_hyphenated(&mut out, id);
            assert_eq!(&out[1..], id.hyphenated().to_string().as_bytes());
            assert_eq!(lower_hyphenated_uuid(&out[1..]), Some(id));
        }
    }

    #[test]
    fn lowercase_hyphenated_uuids_read_as_uuid_reads_them() {
        for _ in 0..100 {
            let id = crate::Event::new_id();
            let text = id.hyphenated().to_string();
            assert_eq!(lower_hyphenated_uuid(text.as_bytes()), Some(id));
        }
        let text = "01a225b4-d94a-7000-b9f9-c37f702a909a";
        assert_eq!(
            lower_hyphenated_uuid(text.as_bytes()),
            Uuid::parse_str(text).ok()
        );
        for bad in [
            "01A225B4-D94A-7000-B9F9-C37F702A909A",
            "01a225b4d94a7000b9f9c37f702a909a",
            "01a225b4-d94a-7000-b9f9-c37f702a909",
            "01a225b4-d94a-7000-b9f9-c37f702a909ab",
            "01a225b4-d94a-7000-b9f9+c37f702a909a",
            "01a225b4-d94a-7000-b9f9-c37f702a909g",
            "01a225b4d-94a-7000-b9f9-c37f702a909a",
            "01a225b4-d94a-7000-b9f9-c37f702a909/",
            "01a225b4-d94a-7000-b9f9-c37f702a909:",
            "01a225b4-d94a-7000-b9f9-c37f702a909`",
            "01a225b4-d94a-7000-b9f9-c37f702a909\u{7f}",
            "01a225b4-d94a-7000-b9f9-c37f702a90\u{e9}",
            "-1a225b4-d94a-7000-b9f9-c37f702a909a",
        ] {
            assert_eq!(lower_hyphenated_uuid(bad.as_bytes()), None, "{bad}");
        }
    }

    /// Eight-digit words of digits, letters and the bytes around their
    /// ranges (and the high bit set), every lane every one of them in
    /// turn, read as a byte-by-byte parse reads them.
    #[test]
    fn eight_hex_digits_read_as_a_digit_by_digit_parse_reads_them() {
        let slow = |digits: [u8; 8]| {
            digits.iter().try_fold(0u32, |value, &b| {
                let digit = match b {
                    b'0'..=b'9' => b - b'0',
                    b'a'..=b'f' => b - b'a' + 10,
                    _ => return None,
                };
                Some(value << 4 | u32::from(digit))
            })
        };
        let edges = [
            b'/', b'0', b'5', b'9', b':', b'`', b'a', b'c', b'f', b'g', b'A', b'F', 0x00, 0x7f,
            0x80, 0xb0, 0xe1, 0xff,
        ];
        for fill in [*b"0123abcd", *b"ffffffff", *b"00000000", *b"9a8b7c6d"] {
            assert_eq!(lowercase_hex8(fill), slow(fill));
            for at in 0..8 {
                for byte in 0..=255u8 {
                    let mut digits = fill;
                    digits[at] = byte;
                    assert_eq!(lowercase_hex8(digits), slow(digits), "{digits:?}");
                    for &other in &edges {
                        digits[(at + 3) % 8] = other;
                        assert_eq!(lowercase_hex8(digits), slow(digits), "{digits:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_byte_at_every_position_reads_as_uuids_parser_reads_it() {
        let text = *b"01a225b4-d94a-7000-b9f9-c37f702a909a";
        for at in 0..text.len() {
            for byte in 0..=255u8 {
                let mut changed = text;
                changed[at] = byte;
                // What `Uuid` reads, limited to the lowercase hyphenated form.
                let expected = std::str::from_utf8(&changed)
                    .ok()
                    .filter(|s| !s.bytes().any(|b| b.is_ascii_uppercase()))
                    .filter(|s| [8, 13, 18, 23].iter().all(|&h| s.as_bytes()[h] == b'-'))
                    .and_then(|s| Uuid::parse_str(s).ok());
                assert_eq!(lower_hyphenated_uuid(&changed), expected, "{at} {byte}");
            }
        }
    }
}
