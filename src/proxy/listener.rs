//! The accept loop: TCP (within the connection caps), then (when enabled)
//! a TLS handshake with a timeout, then HTTP/1.1 or HTTP/2 on the
//! connection, with the timeouts of `limits:` (headers, idle, HTTP/2
//! keep-alive) and the unread-body rule of [`super::drain`].
//!
//! A plain-HTTP request on the TLS port gets a readable answer telling the
//! client to use https. Handshake failures are logged with the client
//! address and reason, rate-limited.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::drain;
use super::idle::{self, Activity};
use super::limits::{AcceptBackoff, Admitted, Caps};
use super::pipeline::Front;
use crate::config::Limits;
use crate::tls::{plain_http_answer, HandshakeLog, TlsServer};

/// The most hyper buffers per HTTP/1 connection while reading; also the
/// largest request head (hyper answers 431 past it). 32 KiB holds any
/// registry client's head (nginx allows 8 KiB per header line by default)
/// and, with the two 64 KiB batches of an upload, keeps an HTTP/1.1 upload
/// under 160 KiB in flight.
const HTTP1_READ_BUFFER: usize = 32 * 1024;
/// The largest request header list on HTTP/2: as much as an HTTP/1.1
/// request head may hold (hyper's HTTP/2 default is 16 KiB).
const MAX_HEADER_LIST: u32 = HTTP1_READ_BUFFER as u32;
/// HTTP/2 flow control for request bodies: a stream may have this much of
/// an upload in flight unread, so it bounds what an HTTP/2 upload buffers
/// (plus the two 64 KiB batches): 256 KiB per upload in all, issue 13's
/// bound. 128 KiB per round trip is ~1 Gbit/s at a 1 ms RTT. Downloads are
/// paced by the client's window, not this one.
const H2_STREAM_WINDOW: u32 = 128 * 1024;
/// The connection's window: several uploads on one connection (Go clients
/// multiplex) do not starve each other.
const H2_CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// Larger DATA frames than the 16 KiB default: fewer frames and wake-ups
/// per MiB in both directions.
const H2_MAX_FRAME: u32 = 64 * 1024;
/// What a download may queue per stream before hyper waits for the socket.
const H2_SEND_BUFFER: usize = 512 * 1024;
/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

pub async fn serve(
    listener: TcpListener,
    front: Arc<Front>,
    tls: Option<Arc<TlsServer>>,
    limits: Limits,
    fd_limit: Option<u64>,
    drain_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // Bounds hyper's per-connection read buffer (its default grows to
        // ~400 KiB); uploads copy out of it in 64 KiB batches anyway.
        .max_buf_size(HTTP1_READ_BUFFER)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.http2_keepalive_interval)
        .keep_alive_timeout(limits.http2_keepalive_timeout)
        .max_header_list_size(MAX_HEADER_LIST)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_frame_size(H2_MAX_FRAME)
        .max_send_buf_size(H2_SEND_BUFFER);
    let caps = Caps::new(&limits, fd_limit);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection holds a sender; all gone means all finished.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let handshake_log = Arc::new(HandshakeLog::new());
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut backoff = AcceptBackoff::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // E.g. out of file descriptors: pause, keep serving.
                        backoff.failed(&e).await;
                        continue;
                    }
                };
                backoff.succeeded();
                let Some(admitted) = caps.admit(peer.ip()) else {
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let conn = Connection {
                    front: front.clone(),
                    builder: builder.clone(),
                    stop: stop_rx.clone(),
                    idle_timeout: limits.idle_timeout,
                    _alive: alive_tx.clone(),
                    _admitted: admitted,
                    peer,
                };
                match &tls {
                    None => { tokio::spawn(conn.serve(stream)); }
                    Some(tls) => {
                        tokio::spawn(conn.serve_tls(stream, tls.clone(), handshake_log.clone(), port, limits.handshake_timeout));
                    }
                }
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    drop(alive_tx);
    tokio::select! {
        _ = alive_rx.recv() => {}
        _ = tokio::time::sleep(drain_timeout) => tracing::warn!(
            timeout_secs = drain_timeout.as_secs(),
            "some requests did not finish in time; stopping anyway (interrupted uploads can be resumed or retried after the restart)"
        ),
    }
}

struct Connection {
    front: Arc<Front>,
    builder: auto::Builder<TokioExecutor>,
    /// Turns true when the server shuts down.
    stop: watch::Receiver<bool>,
    idle_timeout: Duration,
    _alive: mpsc::Sender<()>,
    _admitted: Admitted,
    peer: SocketAddr,
}

impl Connection {
    async fn serve<I>(mut self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (front, peer) = (self.front.clone(), self.peer);
        let activity = Activity::new();
        let requests = activity.clone();
        let service =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let front = front.clone();
                let in_flight = requests.begin();
                async move {
                    let version = req.version();
                    let expects_continue = req
                        .headers()
                        .get(http::header::EXPECT)
                        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
                    let (parts, body) = req.into_parts();
                    let (body, mut unread) = drain::Tracked::new(body);
                    let mut resp = front
                        .handle(http::Request::from_parts(parts, body), peer)
                        .await;
                    if version < http::Version::HTTP_2 {
                        drain::settle(&mut resp, unread.try_recv().ok(), expects_continue).await;
                    }
                    Ok::<_, Infallible>(resp.map(|b| idle::hold(b, in_flight)))
                }
            });
        let conn = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut closing = false;
        // An idle connection asked to close gets this long to do so (an
        // HTTP/2 peer must acknowledge the GOAWAY's PING), then is dropped.
        let give_up = tokio::time::sleep(Duration::MAX);
        tokio::pin!(give_up);
        let mut giving_up = false;
        let stopped = *self.stop.borrow();
        if stopped {
            conn.as_mut().graceful_shutdown();
            closing = true;
        }
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = self.stop.changed(), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = activity.idle_for(self.idle_timeout), if !closing => {
                    tracing::debug!(%peer, "closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    giving_up = true;
                    give_up.as_mut().reset(tokio::time::Instant::now() + self.idle_timeout);
                }
                _ = &mut give_up, if giving_up => {
                    tracing::debug!(%peer, "dropping an idle connection that did not close");
                    return;
                }
            }
        }
    }

    async fn serve_tls(
        self,
        stream: TcpStream,
        tls: Arc<TlsServer>,
        log: Arc<HandshakeLog>,
        port: u16,
        handshake_timeout: Duration,
    ) {
        let peer = self.peer;
        let mut first = [0u8; 1];
        match tokio::time::timeout(handshake_timeout, stream.peek(&mut first)).await {
            Ok(Ok(1)) if first[0] == TLS_HANDSHAKE => {}
            Ok(Ok(1)) => {
                let mut stream = stream;
                let _ = stream.write_all(&plain_http_answer(port)).await;
                let _ = stream.shutdown().await;
                if let (true, suppressed) = log.admit() {
                    tracing::warn!(%peer, suppressed, "plain HTTP sent to the TLS port; answered with a hint to use https");
                }
                return;
            }
            _ => return, // closed or silent: nothing to say
        }
        match tokio::time::timeout(handshake_timeout, tls.acceptor.accept(stream)).await {
            Ok(Ok(tls_stream)) => self.serve(tls_stream).await,
            Ok(Err(e)) => {
                if let (true, suppressed) = log.admit() {
                    tracing::warn!(%peer, error = %e, suppressed, "TLS handshake failed");
                }
            }
            Err(_) => {
                if let (true, suppressed) = log.admit() {
                    tracing::warn!(%peer, suppressed, "TLS handshake timed out");
                }
            }
        }
    }
}
