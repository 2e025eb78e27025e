//! Blob bodies for pushes. K distinct blobs of one size share one buffer: every blob is the
//! same random bytes followed by a 16-byte tail unique to the run and the blob, so no
//! registry can dedupe one push against another, memory stays at one blob, and each digest
//! costs only the tail to compute (the hash state after the shared part is cloned).

use sha2::{Digest as _, Sha256};
use std::time::{Duration, Instant};

const TAIL: usize = 16;

/// `count` distinct blobs of `size` bytes with their digests precomputed.
pub struct Payload {
    common: Vec<u8>,
    tails: Vec<Vec<u8>>,
    digests: Vec<String>,
    size: u64,
    /// How long SHA-256 took over the shared bytes on this thread: the machine's one-core
    /// hashing rate, measured in the same run as the push it bounds.
    sha256_time: Duration,
}

impl Payload {
    /// `nonce` makes the blobs of one run differ from those of another.
    pub fn new(size: u64, count: usize, nonce: u64) -> Payload {
        let size_us = usize::try_from(size).unwrap_or(usize::MAX);
        let tail_len = size_us.min(TAIL);
        let mut common = vec![0u8; size_us - tail_len];
        fill_random(&mut common, nonce ^ 0x9e37_79b9_7f4a_7c15);
        let mut base = Sha256::new();
        let started = Instant::now();
        // In receive-buffer slices (the server's 1 MiB), as a server hashes an upload.
        for chunk in common.chunks(1 << 20) {
            base.update(chunk);
        }
        let sha256_time = started.elapsed();
        let mut tails = Vec::with_capacity(count);
        let mut digests = Vec::with_capacity(count);
        for i in 0..count {
            let mut t = [0u8; TAIL];
            t[..8].copy_from_slice(&nonce.to_le_bytes());
            t[8..].copy_from_slice(&(i as u64).to_le_bytes());
            let tail = t[..tail_len].to_vec();
            let mut h = base.clone();
            h.update(&tail);
            digests.push(format!("sha256:{}", hex::encode(h.finalize())));
            tails.push(tail);
        }
        Payload {
            common,
            tails,
            digests,
            size,
            sha256_time,
        }
    }

    /// One core's SHA-256 rate on the shared bytes (MB/s), `None` if they were too few to
    /// time (under 1 MiB).
    pub fn sha256_mb_per_s(&self) -> Option<f64> {
        let secs = self.sha256_time.as_secs_f64();
        (self.common.len() >= 1 << 20 && secs > 0.0).then(|| self.common.len() as f64 / 1e6 / secs)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn count(&self) -> usize {
        self.digests.len()
    }

    /// Blob `i` as the slices to write, in order.
    pub fn parts(&self, i: usize) -> [&[u8]; 2] {
        [&self.common, &self.tails[i]]
    }

    /// `sha256:<hex>` of blob `i`.
    pub fn digest(&self, i: usize) -> &str {
        &self.digests[i]
    }
}

/// Fills `buf` with incompressible bytes from a seeded splitmix64 stream: fast, and no
/// transport or filesystem can shrink it.
pub fn fill_random(buf: &mut [u8], seed: u64) {
    let mut x = seed;
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        c.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b = (x >> (8 * i)) as u8;
    }
}

pub use berth_client::oci::sha256_digest;

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(p: &Payload, i: usize) -> Vec<u8> {
        p.parts(i).concat()
    }

    #[test]
    fn each_blob_has_the_stated_size_and_digest() {
        let p = Payload::new(100_000, 3, 7);
        for i in 0..3 {
            let b = whole(&p, i);
            assert_eq!(b.len(), 100_000);
            assert_eq!(p.digest(i), sha256_digest(&b));
        }
    }

    #[test]
    fn blobs_of_one_run_and_of_two_runs_all_differ() {
        let a = Payload::new(4096, 2, 1);
        let b = Payload::new(4096, 1, 2);
        assert_ne!(a.digest(0), a.digest(1));
        assert_ne!(a.digest(0), b.digest(0));
    }

    #[test]
    fn tiny_and_empty_blobs_are_supported() {
        let p = Payload::new(5, 2, 9);
        assert_eq!(whole(&p, 0).len(), 5);
        assert_eq!(p.digest(0), sha256_digest(&whole(&p, 0)));
        let e = Payload::new(0, 1, 9);
        assert_eq!(
            e.digest(0),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
