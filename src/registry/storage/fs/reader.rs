//! Streaming a blob (or a range of it) from disk: blocks of [`BLOCK`] bytes
//! read with `pread` on the blocking pool, the next one already being read
//! while the current one is sent. One blocking hop per block, one copy
//! (kernel to buffer), at most two blocks in memory per download.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, Stream};
use tokio::task::JoinHandle;

/// Bytes read from disk per blocking hop.
pub(super) const BLOCK: usize = 512 * 1024;

/// The bytes `start..end` of a file, as a stream of blocks.
pub(super) struct RangeReader {
    file: Arc<File>,
    /// Where the next read to start begins.
    next: u64,
    end: u64,
    pending: Option<JoinHandle<io::Result<Bytes>>>,
}

impl RangeReader {
    pub(super) fn new(file: File, start: u64, end: u64) -> RangeReader {
        let mut r = RangeReader {
            file: Arc::new(file),
            next: start,
            end,
            pending: None,
        };
        r.pending = r.start_read();
        r
    }

    /// Starts reading the next block, if any is left.
    fn start_read(&mut self) -> Option<JoinHandle<io::Result<Bytes>>> {
        if self.next >= self.end {
            return None;
        }
        let len = usize::try_from(self.end - self.next).map_or(BLOCK, |n| n.min(BLOCK));
        let (file, at) = (self.file.clone(), self.next);
        self.next += len as u64;
        Some(tokio::task::spawn_blocking(move || {
            let mut buf = BytesMut::zeroed(len);
            let mut filled = 0;
            while filled < len {
                match file.read_at(&mut buf[filled..], at + filled as u64) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "blob file is shorter than its size",
                        ))
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(buf.freeze())
        }))
    }
}

impl Stream for RangeReader {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(pending) = self.pending.as_mut() else {
            return Poll::Ready(None);
        };
        let result = match pending.poll_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(r)) => r,
            Poll::Ready(Err(join)) => Err(io::Error::other(join.to_string())),
        };
        self.pending = match &result {
            Ok(_) => self.start_read(),
            Err(_) => None,
        };
        Poll::Ready(Some(result))
    }
}

impl Drop for RangeReader {
    fn drop(&mut self) {
        // A client that went away: the read in flight is not waited for.
        if let Some(p) = self.pending.take() {
            p.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::io::Write;

    #[tokio::test]
    async fn reads_ranges_across_blocks_and_reports_a_short_file() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..(2 * BLOCK + 100)).map(|i| (i % 249) as u8).collect();
        f.write_all(&data).unwrap();
        for (start, end) in [
            (0, data.len()),
            (1, BLOCK + 1),
            (BLOCK, 2 * BLOCK + 100),
            (5, 5),
        ] {
            let r = RangeReader::new(f.reopen().unwrap(), start as u64, end as u64);
            let got: Vec<Bytes> = r.map(|b| b.unwrap()).collect().await;
            assert!(got.iter().all(|b| b.len() <= BLOCK));
            assert_eq!(got.concat(), &data[start..end], "{start}..{end}");
        }
        let mut r = RangeReader::new(f.reopen().unwrap(), 0, data.len() as u64 + 10);
        let mut last = None;
        while let Some(item) = r.next().await {
            last = Some(item);
        }
        assert_eq!(
            last.unwrap().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
