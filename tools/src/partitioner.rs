//! Which partition a keyed record goes to: the rule of Kafka's default
//! partitioner (and of librdkafka's `murmur2_random`), so that `strata produce`
//! sends a key to the partition every Java client — and every librdkafka client
//! configured with `partitioner=murmur2_random` — sends it to:
//! `(murmur2(key) & 0x7fffffff) % partitions`.
//!
//! Keeping this rule matters for anything that relies on per-key ordering or on
//! co-partitioned topics: a record produced here for key K lands beside the
//! records other producers wrote for K.

/// The partition for `key` among `partitions` (which must be positive).
pub fn partition_for_key(key: &[u8], partitions: usize) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    let positive = murmur2(key) & 0x7fff_ffff;
    (positive as usize % partitions) as i32
}

/// 32-bit MurmurHash2 with the seed Kafka uses (0x9747b28c), reading the input
/// as little-endian 4-byte words.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut words = data.chunks_exact(4);
    for word in words.by_ref() {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, &byte) in tail.iter().enumerate() {
            h ^= u32::from(byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_in_range_and_stable() {
        for partitions in 1..20 {
            for key in ["", "a", "ab", "abc", "abcd", "abcde", "order-17"] {
                let partition = partition_for_key(key.as_bytes(), partitions);
                assert!((0..partitions as i32).contains(&partition));
                assert_eq!(partition, partition_for_key(key.as_bytes(), partitions));
            }
        }
    }

    #[test]
    fn every_tail_length_feeds_the_hash() {
        // Changing the last byte changes the hash whatever the tail length (0..=3).
        for length in 1..=8 {
            let a = vec![b'x'; length];
            let mut b = a.clone();
            b[length - 1] = b'y';
            assert_ne!(murmur2(&a), murmur2(&b), "length {length}");
        }
    }

    #[test]
    fn the_sign_bit_is_masked_not_negated() {
        // A hash with the top bit set must still map into range via the mask.
        let key = (0..1000u32)
            .map(|i| i.to_string())
            .find(|k| murmur2(k.as_bytes()) & 0x8000_0000 != 0)
            .expect("some key hashes with the top bit set");
        let masked = (murmur2(key.as_bytes()) & 0x7fff_ffff) as usize;
        assert_eq!(partition_for_key(key.as_bytes(), 7), (masked % 7) as i32);
    }
}
