//! The dataset's arithmetic: hashing, a tiny deterministic RNG, reversible ids, the
//! `created` timeline and which records are corrupt. Nothing here allocates per object.

/// The SplitMix64 finaliser: a cheap, well-mixing bijection on `u64`.
pub(crate) const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hashes a few words into one.
pub(crate) fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x9e37_79b9_7f4a_7c15, |h, &p| {
        mix64(h ^ p).wrapping_add(0x9e37_79b9_7f4a_7c15)
    })
}

/// A uniform float in `[0, 1)` from a hash.
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Salts that separate the independent random streams of one object.
pub(crate) mod salt {
    pub const OBJECT: u64 = 1;
    pub const TIMELINE: u64 = 2;
    pub const CORRUPT: u64 = 3;
    pub const STATUS: u64 = 4;
    pub const REQUEST: u64 = 5;
}

/// SplitMix64: a small, fast, seedable generator; one per generated object.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(key: u64) -> Self {
        Rng(key)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    /// Uniform in `0..n` (`0` when `n == 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        unit(self.next_u64()) < p
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Picks by integer weights.
    pub(crate) fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        weighted(items, self.next_u64())
    }
}

/// Picks from `items` by integer weights, driven by one hash value.
pub(crate) fn weighted<T: Copy>(items: &[(T, u32)], h: u64) -> T {
    let total: u64 = items.iter().map(|&(_, w)| u64::from(w)).sum();
    let mut x = ((h as u128 * total as u128) >> 64) as u64;
    for &(item, w) in items {
        if x < u64::from(w) {
            return item;
        }
        x -= u64::from(w);
    }
    items[items.len() - 1].0
}

const B62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Base62 digits of the permuted value; 62^22 > 2^128.
const ID_DIGITS: usize = 22;
/// Length of the id body after the prefix: `1`, 22 digits, 1 check character.
pub(crate) const ID_BODY_LEN: usize = ID_DIGITS + 2;

/// Namespaces of generated ids. Listed resources use `1 + Resource as u64`; ids of objects
/// the simulator does not list (payment intents, products, …) use the values below.
pub(crate) mod ns {
    pub const PAYMENT_INTENT: u64 = 100;
    pub const PAYMENT_METHOD: u64 = 101;
    pub const CHARGE_TXN: u64 = 102;
    pub const INVOICE: u64 = 103;
    pub const PRODUCT: u64 = 104;
    pub const SUB_ITEM: u64 = 105;
    pub const PAYOUT: u64 = 106;
    pub const NESTED_REFUND: u64 = 107;
    pub const REFUND_TXN: u64 = 108;
    pub const TRANSFER: u64 = 109;
    pub const DISPUTE: u64 = 110;
    pub const DISCOUNT: u64 = 111;
    pub const MANDATE: u64 = 113;
    pub const ACCOUNT: u64 = 114;
    pub const EVENT: u64 = 115;
}

fn round_keys(seed: u64, namespace: u64) -> [u64; 4] {
    let k = hash(&[seed, namespace, 0x1d]);
    [mix64(k), mix64(k ^ 1), mix64(k ^ 2), mix64(k ^ 3)]
}

fn tag(seed: u64, namespace: u64) -> u64 {
    hash(&[seed, namespace, 0x7a6])
}

fn check_char(v: u128) -> u8 {
    B62[(mix64((v >> 64) as u64 ^ mix64(v as u64)) % 62) as usize]
}

/// Appends the 24-character id body of object `index` in `namespace`: `1`, then the 22
/// base62 digits (least significant first) of a keyed 4-round Feistel permutation of
/// `(index, tag)`, then a check character.
pub(crate) fn encode_id(seed: u64, namespace: u64, index: u64, out: &mut Vec<u8>) {
    let keys = round_keys(seed, namespace);
    let (mut l, mut r) = (index, tag(seed, namespace));
    for k in keys {
        (l, r) = (r, l ^ mix64(r ^ k));
    }
    let v = (u128::from(l) << 64) | u128::from(r);
    out.push(b'1');
    let mut x = v;
    for _ in 0..ID_DIGITS {
        out.push(B62[(x % 62) as usize]);
        x /= 62;
    }
    out.push(check_char(v));
}

/// The index encoded in an id body (without prefix), if it is one of ours for `namespace`.
pub(crate) fn decode_id(seed: u64, namespace: u64, body: &str) -> Option<u64> {
    let bytes = body.as_bytes();
    if bytes.len() != ID_BODY_LEN || bytes[0] != b'1' {
        return None;
    }
    let mut v: u128 = 0;
    for &c in bytes[1..=ID_DIGITS].iter().rev() {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'a'..=b'z' => c - b'a' + 36,
            _ => return None,
        };
        v = v.checked_mul(62)?.checked_add(u128::from(d))?;
    }
    if bytes[ID_BODY_LEN - 1] != check_char(v) {
        return None;
    }
    let (mut l, mut r) = ((v >> 64) as u64, v as u64);
    for k in round_keys(seed, namespace).into_iter().rev() {
        (l, r) = (r ^ mix64(l ^ k), l);
    }
    (r == tag(seed, namespace)).then_some(l)
}

/// Appends `n` pseudo-random base62 characters (fingerprints, receipt tokens, request ids).
pub(crate) fn push_base62(h: u64, n: usize, out: &mut Vec<u8>) {
    let mut rng = Rng::new(h);
    let mut x = rng.next_u64();
    for i in 0..n {
        if i % 10 == 9 {
            x = rng.next_u64();
        }
        out.push(B62[(x % 62) as usize]);
        x /= 62;
    }
}

/// Object `i`'s `created` second: objects come in bursts of `per_second` that share one
/// second; burst `b` sits at `start + (b + jitter_b) * span / bursts`, which is strictly
/// increasing in `b`, so `created` is non-decreasing in the index.
///
/// With a skew `s > 0` the burst's fraction `f = (b + jitter_b) / bursts` of the range is
/// mapped to `f^(1/(1+s))` first: a monotone map that packs the objects towards the end of the
/// range (the last `q` of the range holds `1 - (1-q)^(1+s)` of them).
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    start: i64,
    span: u64,
    count: u64,
    per_second: u64,
    bursts: u64,
    salt: u64,
    /// `1 / (1 + skew)`; `None` for the uniform (integer-exact) timeline.
    skew_exponent: Option<f64>,
}

impl Timeline {
    pub(crate) fn new(
        seed: u64,
        namespace: u64,
        start: i64,
        end: i64,
        count: u64,
        per_second: u64,
    ) -> Self {
        let per_second = per_second.max(1);
        Timeline {
            start,
            span: end.saturating_sub(start).max(1) as u64,
            count,
            per_second,
            bursts: count.div_ceil(per_second).max(1),
            salt: hash(&[seed, namespace, salt::TIMELINE]),
            skew_exponent: None,
        }
    }

    /// Packs objects towards the end of the range (see the type's docs); `skew <= 0` (or not
    /// finite) keeps the uniform timeline unchanged.
    pub(crate) fn with_skew(mut self, skew: f64) -> Self {
        self.skew_exponent = (skew.is_finite() && skew > 0.0).then(|| 1.0 / (1.0 + skew));
        self
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The `created` second of object `i` (also defined past `count`, for references).
    pub(crate) fn created(&self, i: u64) -> i64 {
        let burst = i / self.per_second;
        let jitter = u128::from(mix64(self.salt ^ burst) & 0xffff);
        let pos = (u128::from(burst) << 16) | jitter;
        let offset = match self.skew_exponent {
            None => pos * u128::from(self.span) / (u128::from(self.bursts) << 16),
            // Consecutive positions differ by far more than an ulp of `f`, and `powf` and the
            // multiplication are monotone to within an ulp, so this stays non-decreasing.
            Some(e) => {
                let f = pos as f64 / (u128::from(self.bursts) << 16) as f64;
                (f.powf(e) * self.span as f64).floor() as u128
            }
        };
        self.start
            .saturating_add(i64::try_from(offset).unwrap_or(i64::MAX))
    }

    /// The first index whose `created` is `>= t` (`count` if none).
    pub(crate) fn lower_bound(&self, t: i64) -> u64 {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.created(mid) < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The index range `[lo, hi)` of objects with `gte <= created < lt`.
    pub(crate) fn window(&self, gte: Option<i64>, lt: Option<i64>) -> std::ops::Range<u64> {
        let lo = gte.map_or(0, |t| self.lower_bound(t));
        let hi = lt.map_or(self.count, |t| self.lower_bound(t));
        lo..hi.max(lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_foreign_ones() {
        for i in [0, 1, 2, 999, 5_000_000, u64::MAX] {
            let mut buf = Vec::new();
            encode_id(42, 1, i, &mut buf);
            let body = std::str::from_utf8(&buf).unwrap();
            assert_eq!(body.len(), ID_BODY_LEN);
            assert_eq!(decode_id(42, 1, body), Some(i));
            assert_eq!(decode_id(43, 1, body), None);
            assert_eq!(decode_id(42, 2, body), None);
        }
        assert_eq!(decode_id(42, 1, "x"), None);
        assert_eq!(decode_id(42, 1, "1zzzzzzzzzzzzzzzzzzzzzzz"), None);
    }

    #[test]
    fn timeline_is_monotone_within_range_and_bursty() {
        let t = Timeline::new(7, 1, 1_000, 2_000, 5_000, 4);
        let mut prev = i64::MIN;
        for i in 0..5_000 {
            let c = t.created(i);
            assert!(c >= prev && (1_000..2_000).contains(&c));
            prev = c;
        }
        assert_eq!(t.created(0), t.created(3));
        let w = t.window(Some(1_500), Some(1_600));
        assert!(w.clone().all(|i| (1_500..1_600).contains(&t.created(i))));
        assert!(t.created(w.start - 1) < 1_500 && t.created(w.end) >= 1_600);
    }

    #[test]
    fn skewed_timeline_is_monotone_and_packed_at_the_end() {
        let uniform = Timeline::new(7, 1, 1_000, 101_000, 50_000, 2);
        assert_eq!(
            (0..50_000).map(|i| uniform.created(i)).collect::<Vec<_>>(),
            (0..50_000)
                .map(|i| uniform.clone().with_skew(0.0).created(i))
                .collect::<Vec<_>>()
        );
        let t = Timeline::new(7, 1, 1_000, 101_000, 50_000, 2).with_skew(4.0);
        let mut prev = i64::MIN;
        for i in 0..50_000 {
            let c = t.created(i);
            assert!(c >= prev && (1_000..101_000).contains(&c), "{i}: {c}");
            prev = c;
        }
        // The last tenth of the range holds 1 - 0.9^5 ≈ 41% of the objects.
        let last_tenth = t.window(Some(91_000), None);
        let share = (last_tenth.end - last_tenth.start) as f64 / 50_000.0;
        assert!((0.38..0.44).contains(&share), "{share}");
        for gte in [1_000, 5_000, 60_000, 99_999] {
            let w = t.window(Some(gte), Some(gte + 700));
            assert!(w.clone().all(|i| (gte..gte + 700).contains(&t.created(i))));
            assert!(w.start == 0 || t.created(w.start - 1) < gte);
            assert!(w.end == 50_000 || t.created(w.end) >= gte + 700);
        }
    }
}
