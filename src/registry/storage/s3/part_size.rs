//! How large each part of a multipart object is. S3 allows at most 10,000
//! parts, each of 5 MiB to 5 GiB (the last may be smaller), and objects up
//! to 5 TiB. Fixed 5 MiB parts would stop at about 48.8 GiB, and the size
//! of a body or a blob is not known while it streams, so the part size
//! grows with what was already sent: at least the minimum, and at least
//! `sent / (max_parts / 8)` (1/1250 of it on S3), rounded up to a MiB.
//! A 5 TiB object then takes about 9,550 parts of at most about 4.1 GiB;
//! a 1 GiB layer still goes in 5 MiB parts. The writer holds two parts (one
//! filling, one being sent), so memory per upload stays within
//! `2 × max(5 MiB, sent / 1250)`.

/// What the store accepts for one multipart object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartLimits {
    /// Bytes of every part but the last, at least.
    pub min_part: usize,
    /// Parts of one object, at most.
    pub max_parts: usize,
}

/// S3's limits (AWS, Garage, MinIO).
pub const S3_LIMITS: PartLimits = PartLimits {
    min_part: 5 << 20,
    max_parts: 10_000,
};

/// The largest part S3 accepts.
pub const MAX_PART: u64 = 5 << 30;

const MIB: u64 = 1 << 20;

/// The size of the next part, once `sent` bytes went out in earlier parts.
pub fn part_size(limits: PartLimits, sent: u64) -> usize {
    let divisor = (limits.max_parts / 8).max(1) as u64;
    let grown = sent.div_ceil(divisor).div_ceil(MIB) * MIB;
    let size = grown.max(limits.min_part as u64).min(MAX_PART);
    usize::try_from(size).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIB: u64 = 1 << 40;

    /// The parts `total` bytes go out in: (count, largest).
    fn plan(limits: PartLimits, total: u64) -> (usize, u64) {
        let (mut sent, mut count, mut largest) = (0u64, 0usize, 0u64);
        while sent < total {
            let p = part_size(limits, sent) as u64;
            largest = largest.max(p.min(total - sent));
            sent += p;
            count += 1;
        }
        (count, largest)
    }

    #[test]
    fn five_tib_fits_in_ten_thousand_parts_of_at_most_five_gib() {
        let (count, largest) = plan(S3_LIMITS, 5 * TIB);
        assert!(count <= 10_000, "{count} parts");
        assert!(largest <= MAX_PART, "a part of {largest} bytes");
        // Fixed 5 MiB parts would not do beyond 10,000 × 5 MiB.
        const { assert!(5 * TIB / (5 * MIB) > 10_000) };
    }

    #[test]
    fn every_part_is_at_least_the_minimum_and_small_blobs_keep_it() {
        for sent in [0, 1, 5 * MIB, 1 << 30, 50 << 30, TIB, 5 * TIB] {
            assert!(part_size(S3_LIMITS, sent) >= 5 << 20, "after {sent}");
        }
        // Up to ~6 GiB (the first 1,250 parts) nothing changes.
        assert_eq!(part_size(S3_LIMITS, 6 << 30), 5 << 20);
        assert_eq!(plan(S3_LIMITS, 1 << 30), (205, 5 * MIB));
    }

    #[test]
    fn memory_per_upload_stays_proportional_and_bounded() {
        // Two parts in memory at once: at most 2 × max(5 MiB, sent/1250)
        // rounded up, never over 2 × 5 GiB.
        let mut sent = 0u64;
        while sent < 5 * TIB {
            let p = part_size(S3_LIMITS, sent) as u64;
            assert!(p <= (5 * MIB).max(sent / 1250 + MIB), "after {sent}: {p}");
            assert!(p <= MAX_PART);
            sent += p;
        }
        assert!(part_size(S3_LIMITS, 100 << 30) as u64 <= 82 * MIB);
    }

    #[test]
    fn lowered_limits_still_fit() {
        // What the Garage test runs with.
        let small = PartLimits {
            min_part: 5 << 20,
            max_parts: 8,
        };
        assert!(plan(small, 60 * MIB).0 <= 8);
        const { assert!(60 * MIB / (5 * MIB) > 8, "fixed parts would overflow") };
    }
}
