//! Blob contents without holding blobs in memory: one pool of random bytes,
//! and each blob is the pool read cyclically from its own offset, so 32
//! different 256 MiB blobs cost one 64 MiB buffer. Bodies are zero-copy
//! slices of the pool; digests are computed before a timed phase starts.

use std::io;

use bytes::Bytes;
use futures_util::stream;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use sha2::{Digest as _, Sha256};

use crate::client::Body;

/// Largest body frame handed to the client.
const FRAME: usize = 256 * 1024;

/// The random bytes every blob is cut from.
#[derive(Clone)]
pub struct Pool {
    bytes: Bytes,
}

impl Pool {
    pub fn new(len: usize) -> Pool {
        let mut buf = vec![0u8; len];
        rand::fill(&mut buf[..]);
        Pool { bytes: buf.into() }
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// A blob of `len` bytes starting at `offset` (taken modulo the pool).
    pub fn blob(&self, offset: usize, len: u64) -> Blob {
        let mut b = Blob {
            pool: self.clone(),
            offset: offset % self.bytes.len(),
            len,
            digest: String::new(),
        };
        let mut h = Sha256::new();
        for piece in b.pieces(0, len) {
            h.update(&piece);
        }
        b.digest = format!("sha256:{}", hex::encode(h.finalize()));
        b
    }

    /// Blobs made on two threads (hashing gigabytes takes seconds).
    pub fn blobs(&self, offsets: &[usize], len: u64) -> Vec<Blob> {
        let half = offsets.len().div_ceil(2);
        let (a, b) = offsets.split_at(half);
        std::thread::scope(|s| {
            let other = s.spawn(|| b.iter().map(|&o| self.blob(o, len)).collect::<Vec<_>>());
            let mut out: Vec<Blob> = a.iter().map(|&o| self.blob(o, len)).collect();
            out.extend(other.join().unwrap_or_default());
            out
        })
    }
}

/// One blob's identity: where it starts in the pool, its size and digest.
#[derive(Clone)]
pub struct Blob {
    pool: Pool,
    offset: usize,
    pub len: u64,
    pub digest: String,
}

impl Blob {
    /// The bytes `[start, end)` of the blob as pool slices of at most
    /// `FRAME` bytes.
    pub fn pieces(&self, start: u64, end: u64) -> impl Iterator<Item = Bytes> + Send + 'static {
        let pool = self.pool.bytes.clone();
        let n = pool.len() as u64;
        let mut pos = start;
        let base = self.offset as u64;
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let at = ((base + pos) % n) as usize;
            let take = (end - pos).min(FRAME as u64).min((pool.len() - at) as u64) as usize;
            pos += take as u64;
            Some(pool.slice(at..at + take))
        })
    }

    /// A request body with the bytes `[start, end)`.
    pub fn body(&self, start: u64, end: u64) -> Body {
        let frames = self
            .pieces(start, end)
            .map(|b| Ok::<_, io::Error>(Frame::data(b)));
        StreamBody::new(stream::iter(frames)).boxed()
    }
}

/// SHA-256 of received frames, as `sha256:HEX`.
pub fn digest_of(frames: &[Bytes]) -> String {
    let mut h = Sha256::new();
    for f in frames {
        h.update(f);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}
