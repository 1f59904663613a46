//! Hashing functions (§2.5 "Hashing"): lowercase hex of the hash of the input's bytes in
//! CHARSET (optional: UTF-8 (default), UTF-16 (Java: big-endian with a BOM), UTF-16BE,
//! UTF-16LE, ISO-8859-1, US-ASCII; unmappable chars become `?` as in Java; an unknown charset
//! gives null). SHA-256/512 and MD5 run through DataFusion's `digest`; SHA-1 and CRC-32 are
//! implemented here (no extra crate).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder};
use arrow::datatypes::{DataType, Field};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs};

use super::{strings, utf8, Args, Def};

pub(crate) fn defs() -> Vec<Def> {
    vec![
        Def::new("sha1", "sha1(INPUT, CHARSET)", "SHA-1 of INPUT's bytes in CHARSET (default UTF-8), lowercase hex", (1, 2), utf8, sha1),
        Def::new("sha256", "sha256(INPUT, CHARSET)",
            "[clash] SHA-256 as lowercase hex, optional CHARSET (DataFusion's `sha256` returns binary). SQL: dp_sha256",
            (1, 2), utf8, sha256).clash("dp_sha256"),
        Def::new("sha512", "sha512(INPUT, CHARSET)",
            "[clash] SHA-512 as lowercase hex, optional CHARSET (DataFusion's `sha512` returns binary). SQL: dp_sha512",
            (1, 2), utf8, sha512).clash("dp_sha512"),
        Def::new("md5", "md5(INPUT, CHARSET)",
            "[clash] MD5 as lowercase hex, optional CHARSET (DataFusion's `md5` is the same for UTF-8 but takes no charset). SQL: dp_md5",
            (1, 2), utf8, md5).clash("dp_md5"),
        Def::new("crc32", "crc32(INPUT, CHARSET)",
            "CRC-32 of INPUT's bytes in CHARSET, 8 hex digits in the byte order Data Prep shows (little-endian: \"my text\" → 8df92e80)",
            (1, 2), utf8, crc32),
    ]
}

/// INPUT's bytes in CHARSET, None for an unknown charset.
pub(crate) fn encode(s: &str, charset: &str) -> Option<Vec<u8>> {
    let cs = charset.trim().to_ascii_uppercase().replace('_', "-");
    let utf16 = |be: bool| {
        s.encode_utf16()
            .flat_map(move |u| if be { u.to_be_bytes() } else { u.to_le_bytes() })
    };
    Some(match cs.as_str() {
        "UTF-8" | "UTF8" => s.as_bytes().to_vec(),
        "UTF-16" | "UTF16" => [0xFE, 0xFF].into_iter().chain(utf16(true)).collect(),
        "UTF-16BE" => utf16(true).collect(),
        "UTF-16LE" => utf16(false).collect(),
        "ISO-8859-1" | "ISO8859-1" | "LATIN1" | "ISO-LATIN-1" => s
            .chars()
            .map(|c| if (c as u32) < 256 { c as u8 } else { b'?' })
            .collect(),
        "US-ASCII" | "ASCII" => s
            .chars()
            .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
            .collect(),
        _ => return None,
    })
}

/// Each row's bytes (None: null input or unknown charset).
fn bytes(a: &Args) -> Vec<Option<Vec<u8>>> {
    (0..a.n)
        .map(|r| {
            let s = a.str(0, r)?;
            if a.len() > 1 {
                encode(s, a.str(1, r)?)
            } else {
                Some(s.as_bytes().to_vec())
            }
        })
        .collect()
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Hashes through DataFusion's `digest(binary, algorithm)`.
fn df_digest(a: &Args, algorithm: &str) -> Result<ArrayRef> {
    let rows = bytes(a);
    let mut b = BinaryBuilder::new();
    for r in &rows {
        b.append_option(r.as_deref());
    }
    let input: ArrayRef = Arc::new(b.finish());
    let udf = datafusion::functions::crypto::digest();
    let out = udf.invoke_with_args(ScalarFunctionArgs {
        args: vec![
            ColumnarValue::Array(input),
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(algorithm.to_string()))),
        ],
        arg_fields: vec![
            Arc::new(Field::new("input", DataType::Binary, true)),
            Arc::new(Field::new("algorithm", DataType::Utf8, false)),
        ],
        number_rows: a.n,
        return_field: Arc::new(Field::new("digest", DataType::Binary, true)),
        config_options: Arc::new(ConfigOptions::default()),
    })?;
    let out = out.into_array(a.n)?;
    let out = arrow::compute::cast(&out, &DataType::Binary)?;
    let out = out.as_binary::<i32>();
    strings(a.n, |r| out.is_valid(r).then(|| hex(out.value(r))))
}

fn sha256(a: &Args) -> Result<ArrayRef> {
    df_digest(a, "sha256")
}

fn sha512(a: &Args) -> Result<ArrayRef> {
    df_digest(a, "sha512")
}

fn md5(a: &Args) -> Result<ArrayRef> {
    df_digest(a, "md5")
}

fn sha1(a: &Args) -> Result<ArrayRef> {
    let rows = bytes(a);
    strings(a.n, |r| rows[r].as_deref().map(|b| hex(&sha1_digest(b))))
}

fn crc32(a: &Args) -> Result<ArrayRef> {
    let rows = bytes(a);
    strings(a.n, |r| {
        rows[r]
            .as_deref()
            .map(|b| hex(&crc32_value(b).to_le_bytes()))
    })
}

/// SHA-1 (FIPS 180-4).
pub(crate) fn sha1_digest(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in chunk.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// CRC-32 (IEEE 802.3, as java.util.zip.CRC32).
pub(crate) fn crc32_value(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_and_crc32_known_values() {
        assert_eq!(
            hex(&sha1_digest(b"my text")),
            "c3599c11e47719df18a2448690840c5dfcce3c80"
        );
        assert_eq!(
            hex(&sha1_digest(b"")),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert_eq!(crc32_value(b"my text"), 0x802ef98d);
        assert_eq!(encode("é", "ISO-8859-1"), Some(vec![0xE9]));
        assert_eq!(encode("a", "UTF-16"), Some(vec![0xFE, 0xFF, 0, b'a']));
        assert_eq!(encode("a", "EBCDIC"), None);
    }
}
