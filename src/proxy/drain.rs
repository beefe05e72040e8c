//! Request bodies the handler did not read, on HTTP/1.x connections.
//!
//! regproxy often answers before reading a body (401 to an unauthenticated
//! `PUT`, 404 for an unknown upload, 403, 413). On HTTP/1.1 the unread body
//! is still on the wire in front of the client's next request, so the
//! connection can be kept only if that body is read first. As Go's net/http
//! does, we read and discard a bounded amount (up to [`DRAIN_LIMIT`] bytes,
//! within [`DRAIN_TIME`]); when the body is larger, slower, or the client
//! waits for `100 Continue`, the answer says `Connection: close` and the
//! connection is closed cleanly after it (TLS close_notify). Never both: a
//! connection is not left looking reusable and then dropped.
//!
//! HTTP/2 needs none of this: an unread stream is reset on its own.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION};
use http::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::oneshot;

use crate::oci::response::Body;

/// At most this much of an unread body is read and discarded.
pub const DRAIN_LIMIT: u64 = 256 * 1024;
/// Reading the rest of an unread body may take at most this long.
pub const DRAIN_TIME: Duration = Duration::from_secs(2);

/// A request body that, when dropped before its end, hands itself back so
/// the connection can drain it.
pub struct Tracked {
    inner: Option<Incoming>,
    back: Option<oneshot::Sender<Incoming>>,
}

impl Tracked {
    pub fn new(body: Incoming) -> (Tracked, oneshot::Receiver<Incoming>) {
        let (tx, rx) = oneshot::channel();
        (
            Tracked {
                inner: Some(body),
                back: Some(tx),
            },
            rx,
        )
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.inner = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(|b| b.size_hint())
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let (Some(body), Some(back)) = (self.inner.take(), self.back.take()) {
            if !body.is_end_stream() {
                let _ = back.send(body);
            }
        }
    }
}

/// Before `resp` goes out on an HTTP/1.x connection: drains what is left of
/// the request body, or marks the answer `Connection: close`.
pub async fn settle(resp: &mut Response<Body>, leftover: Option<Incoming>, expects_continue: bool) {
    let Some(body) = leftover else { return };
    // The client waits for `100 Continue` before sending the body: asking
    // for it now only to throw it away would be a waste.
    let too_big = body.size_hint().lower() > DRAIN_LIMIT;
    let drained = !expects_continue
        && !too_big
        && tokio::time::timeout(DRAIN_TIME, discard(body))
            .await
            .unwrap_or(false);
    if !drained {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
}

/// Reads `body` to its end, discarding it; `false` when it is longer than
/// [`DRAIN_LIMIT`] or broken.
async fn discard(mut body: Incoming) -> bool {
    let mut read = 0u64;
    loop {
        match body.frame().await {
            None => return true,
            Some(Ok(frame)) => {
                read += frame.data_ref().map_or(0, |d| d.len() as u64);
                if read > DRAIN_LIMIT {
                    return false;
                }
            }
            Some(Err(_)) => return false,
        }
    }
}
