//! When a connection is idle: no request in flight (its answer fully sent)
//! for `limits.idle_timeout`. Counted per request, not per byte, so HTTP/2
//! keep-alive PINGs do not keep an unused connection open forever, and a
//! long upload or download is never idle.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::oci::response::{Body, BoxError};

/// The requests in flight on one connection and when the last one ended.
#[derive(Clone)]
pub struct Activity(Arc<Shared>);

struct Shared {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

/// One request in flight; dropped when its answer has been sent (or
/// abandoned).
pub struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    pub fn new() -> Activity {
        Activity(Arc::new(Shared {
            in_flight: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }))
    }

    /// Marks a request as started.
    pub fn begin(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.0.clone())
    }

    /// Completes once the connection has been idle for `timeout`.
    pub async fn idle_for(&self, timeout: Duration) {
        loop {
            let since = self
                .0
                .last
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed();
            let busy = self.0.in_flight.load(Ordering::Acquire) > 0;
            if !busy && since >= timeout {
                return;
            }
            let wait = if busy {
                timeout
            } else {
                timeout.saturating_sub(since)
            };
            tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// An answer's body that keeps its request counted as in flight until it
/// has been sent.
pub fn hold(body: Body, in_flight: InFlight) -> Body {
    Held {
        body,
        _in_flight: in_flight,
    }
    .boxed_unsync()
}

struct Held {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
