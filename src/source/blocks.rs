//! Skipping a JSON container 64 bytes at a time: the list envelope's hot loop.
//!
//! Splitting a page into records means finding where each record's outermost `}` is, outside
//! strings. Byte by byte that is a branch per byte; here, as in simdjson's first stage, each
//! 64-byte block becomes three bit masks at once (quotes, backslashes, brackets: SSE2
//! compares on x86_64, part of its baseline), the backslash-escaped positions and the
//! inside-a-string mask (a prefix XOR of the unescaped quotes) follow with a few integer
//! operations, and only the brackets outside strings are then visited one by one.
//!
//! [`container_end`] answers only when it agrees with the byte-wise scanner of
//! [`super::envelope`] by construction: for well-formed JSON, and for broken JSON whose
//! brackets balance with no backslash outside a string. Anything else (a backslash outside a
//! string, where the byte-wise scanner ignores it; a mismatched bracket; a body that ends
//! first) is left to the byte-wise scanner, which reports it with its offset.

/// Bit masks of one 64-byte block: bit `i` stands for byte `i`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Masks {
    quote: u64,
    backslash: u64,
    /// `{`, `}`, `[` and `]`.
    bracket: u64,
}

/// The masks of a block, with SSE2 (four 16-byte lanes).
#[cfg(target_arch = "x86_64")]
fn masks(block: &[u8; 64]) -> Masks {
    // SAFETY: SSE2 is part of the x86_64 baseline: every x86_64 CPU has it.
    unsafe { masks_sse2(block) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn masks_sse2(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let quote = _mm_set1_epi8(b'"' as i8);
    let backslash = _mm_set1_epi8(b'\\' as i8);
    // `{` and `[` differ only in bit 5 (0x7B, 0x5B), as do `}` and `]` (0x7D, 0x5D).
    let bit5 = _mm_set1_epi8(0x20);
    let open = _mm_set1_epi8(b'{' as i8);
    let close = _mm_set1_epi8(b'}' as i8);
    let mut m = Masks::default();
    for lane in 0..4 {
        // SAFETY: reads bytes 16 * lane .. 16 * lane + 16 of a 64-byte array (an unaligned
        // load).
        let v = unsafe { _mm_loadu_si128(block.as_ptr().add(16 * lane).cast::<__m128i>()) };
        let folded = _mm_or_si128(v, bit5);
        let brackets = _mm_or_si128(_mm_cmpeq_epi8(folded, open), _mm_cmpeq_epi8(folded, close));
        let shift = 16 * lane;
        m.quote |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote)) as u16) << shift;
        m.backslash |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, backslash)) as u16) << shift;
        m.bracket |= u64::from(_mm_movemask_epi8(brackets) as u16) << shift;
    }
    m
}

/// The masks of a block, byte by byte (targets without the SSE2 path; the tests' reference).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn masks_bytewise(block: &[u8; 64]) -> Masks {
    let mut m = Masks::default();
    for (i, &c) in block.iter().enumerate() {
        let bit = 1u64 << i;
        match c {
            b'"' => m.quote |= bit,
            b'\\' => m.backslash |= bit,
            b'{' | b'}' | b'[' | b']' => m.bracket |= bit,
            _ => {}
        }
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
fn masks(block: &[u8; 64]) -> Masks {
    masks_bytewise(block)
}

/// Bit `i` set when byte `i` is escaped by an odd run of backslashes before it (simdjson's
/// escape scanner); `next_escaped` carries an escape across the block boundary.
fn escaped(backslash: u64, next_escaped: &mut u64) -> u64 {
    const ODD_BITS: u64 = 0xAAAA_AAAA_AAAA_AAAA;
    if backslash == 0 {
        return std::mem::take(next_escaped);
    }
    let potential = backslash & !*next_escaped;
    // Subtracting each run of backslashes from the odd bits shifted under it marks whether the
    // run ends on an even or odd position, i.e. whether its last backslash escapes.
    let maybe_escaped = potential << 1;
    let code = (maybe_escaped | ODD_BITS).wrapping_sub(potential) ^ ODD_BITS;
    let escaped = code ^ (backslash | *next_escaped);
    *next_escaped = (code & backslash) >> 63;
    escaped
}

/// Bit `i` set when an odd number of bits at or below `i` are set in `x`.
fn prefix_xor(mut x: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        x ^= x << shift;
    }
    x
}

/// Where the container opening at `start` (`{` or `[`) closes: the index just after its
/// closing bracket, or `None` when the byte-wise scanner must decide (see the module docs).
pub(super) fn container_end(b: &[u8], start: usize) -> Option<usize> {
    debug_assert!(matches!(b.get(start), Some(b'{' | b'[')));
    // The open containers, innermost in the lowest bit (1: an object), and how many: no
    // allocation per record. Deeper than 64 levels is left to the byte-wise scanner.
    let (mut objects, mut depth) = (0u64, 0u32);
    // All ones when the previous block ended inside a string.
    let mut in_string = 0u64;
    let mut next_escaped = 0u64;
    let mut tail = [b' '; 64];
    let mut pos = start;
    while pos < b.len() {
        let block: &[u8; 64] = match b.get(pos..pos + 64) {
            Some(full) => full.try_into().expect("64 bytes"),
            None => {
                // The last, partial block, padded with spaces (which mean nothing here).
                tail[..b.len() - pos].copy_from_slice(&b[pos..]);
                &tail
            }
        };
        let m = masks(block);
        let quotes = m.quote & !escaped(m.backslash, &mut next_escaped);
        // Set from an opening quote up to (not including) its closing quote.
        let inside = prefix_xor(quotes) ^ in_string;
        in_string = ((inside as i64) >> 63) as u64;
        if m.backslash & !inside != 0 {
            return None;
        }
        let mut brackets = m.bracket & !inside;
        while brackets != 0 {
            let i = brackets.trailing_zeros() as usize;
            brackets &= brackets - 1;
            let c = block[i];
            if c == b'{' || c == b'[' {
                if depth == 64 {
                    return None;
                }
                objects = (objects << 1) | u64::from(c == b'{');
                depth += 1;
            } else {
                let object = objects & 1 == 1;
                if depth == 0 || object != (c == b'}') {
                    return None;
                }
                objects >>= 1;
                depth -= 1;
                if depth == 0 {
                    return Some(pos + i + 1);
                }
            }
        }
        pos += 64;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The envelope's own byte-wise scanner, the reference.
    fn bytewise_end(b: &[u8], start: usize) -> Option<usize> {
        super::super::envelope::container_end_bytewise(b, start)
    }

    /// A small deterministic generator (xorshift64*), so a failure replays.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn simd_masks_match_the_bytewise_masks() {
        // Every byte value once, then random blocks.
        for first in [0u8, 64, 128, 192] {
            let block: [u8; 64] = std::array::from_fn(|i| first + i as u8);
            assert_eq!(masks(&block), masks_bytewise(&block), "{block:?}");
        }
        let mut rng = Rng(7);
        let alphabet = b"\"\\{}[]{[\x5b\x5d\x7b\x7d;:, az\x00\xff\xdb\xfb\x3b";
        for _ in 0..2_000 {
            let mut block = [0u8; 64];
            for c in block.iter_mut() {
                *c = alphabet[rng.below(alphabet.len())];
            }
            assert_eq!(masks(&block), masks_bytewise(&block), "{block:?}");
        }
    }

    #[test]
    fn escapes_follow_odd_runs_of_backslashes_across_blocks() {
        // Runs of 1..=5 backslashes before a quote, placed across the 64-byte boundary.
        for run in 1..=5usize {
            for at in 56..70usize {
                let mut text = vec![b'x'; 140];
                text[0] = b'[';
                text[1] = b'"';
                text[at..at + run].fill(b'\\');
                text[at + run] = b'"';
                // An odd run escapes the quote: the string goes on to the next quote.
                text[120] = b'"';
                text[121] = b']';
                let expected = bytewise_end(&text, 0);
                assert_eq!(container_end(&text, 0), expected, "run {run} at {at}");
                // An even run ends the string early and the `"` at 120 opens one never closed.
                assert_eq!(expected.is_some(), run % 2 == 1, "run {run} at {at}");
            }
        }
    }

    /// A random container: nested objects and arrays whose strings hold quotes, backslashes
    /// and brackets, escaped or not, and bare words between them.
    fn container(rng: &mut Rng, depth: usize, out: &mut Vec<u8>) {
        let (open, close) = if rng.below(2) == 0 {
            (b'{', b'}')
        } else {
            (b'[', b']')
        };
        out.push(open);
        for _ in 0..rng.below(5) {
            match rng.below(if depth < 4 { 4 } else { 3 }) {
                0 => {
                    out.push(b'"');
                    for _ in 0..rng.below(40) {
                        let pieces: [&[u8]; 8] = [
                            b"a",
                            b"\\\"",
                            b"\\\\",
                            b"]",
                            b"{",
                            b"\xc3\xa9",
                            b"\\n",
                            b"xyz",
                        ];
                        out.extend_from_slice(pieces[rng.below(pieces.len())]);
                    }
                    out.push(b'"');
                }
                1 => out.extend_from_slice(b"123"),
                2 => out.extend_from_slice(b" , : "),
                _ => container(rng, depth + 1, out),
            }
        }
        out.push(close);
    }

    #[test]
    fn agrees_with_the_bytewise_scanner_whenever_it_answers() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        // Random bytes (rarely balanced) and random containers, some with one byte changed.
        let alphabet = b"{}[]\"\"\\\\ab ,:{[";
        let mut answered = 0;
        for n in 0..40_000 {
            let mut b = Vec::new();
            if n % 3 == 0 {
                let len = 1 + rng.below(200);
                b.extend((0..len).map(|_| alphabet[rng.below(alphabet.len())]));
                b[0] = if rng.below(2) == 0 { b'{' } else { b'[' };
            } else {
                container(&mut rng, 0, &mut b);
                if n % 3 == 1 && b.len() > 1 {
                    let at = 1 + rng.below(b.len() - 1);
                    b[at] = alphabet[rng.below(alphabet.len())];
                }
                b.extend_from_slice(b" ]}\"");
            }
            let fast = container_end(&b, 0);
            answered += usize::from(fast.is_some());
            if fast.is_some() || n % 3 == 2 {
                assert_eq!(fast, bytewise_end(&b, 0), "{}", String::from_utf8_lossy(&b));
            }
        }
        assert!(
            answered > 15_000,
            "the fast path answered only {answered} times"
        );
    }

    #[test]
    fn finds_the_end_of_well_formed_records_without_falling_back() {
        let record =
            r#"{"id":"ch_1","d":"quote \" and ] and } \\","n":[1,[2,{"x":"\\\\"}]],"m":{}}"#;
        for pad in 0..130 {
            let text = format!("{}{record} , {{\"next\":1}}", " ".repeat(pad));
            let end = container_end(text.as_bytes(), pad);
            assert_eq!(end, Some(pad + record.len()), "pad {pad}");
        }
    }

    #[test]
    fn nesting_deeper_than_64_levels_is_left_to_the_bytewise_scanner() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(container_end(nested(64).as_bytes(), 0), Some(128));
        assert_eq!(container_end(nested(65).as_bytes(), 0), None);
        // Objects and arrays alternating, 100 levels: the byte-wise scanner finds the end.
        let text = format!("{}1{}", "[{\"a\":".repeat(50), "}]".repeat(50));
        assert_eq!(container_end(text.as_bytes(), 0), None);
        assert_eq!(bytewise_end(text.as_bytes(), 0), Some(text.len()));
        let text = format!("{}1{}", "[{\"a\":".repeat(32), "}]".repeat(32));
        assert_eq!(container_end(text.as_bytes(), 0), Some(text.len()));
    }

    #[test]
    fn leaves_what_the_bytewise_scanner_must_report_to_it() {
        for text in [
            r#"{"a":[1,2}"#,          // mismatched bracket
            r#"{"a":"never closes}"#, // unterminated string
            r#"{"a":{"b":1}"#,        // the body ends first
            r#"{"a": \"x"}"#,         // a backslash outside a string
        ] {
            assert_eq!(container_end(text.as_bytes(), 0), None, "{text}");
        }
    }
}
