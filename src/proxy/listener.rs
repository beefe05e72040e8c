//! The accept loop: TCP, then (when enabled) a TLS handshake with a
//! timeout, then HTTP/1.1 or HTTP/2 on the connection.
//!
//! A plain-HTTP request on the TLS port gets a readable answer telling the
//! client to use https. Handshake failures are logged with the client
//! address and reason, rate-limited.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::pipeline::Front;
use crate::tls::{plain_http_answer, HandshakeLog, TlsServer};

/// How long in-flight requests get to finish after shutdown is asked.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client gets to start and finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most hyper buffers per HTTP/1 connection while reading.
const HTTP1_READ_BUFFER: usize = 64 * 1024;
/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

pub async fn serve(
    listener: TcpListener,
    front: Arc<Front>,
    tls: Option<Arc<TlsServer>>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Bounds hyper's per-connection read buffer (its default grows to
    // ~400 KiB); uploads copy out of it in 128 KiB batches anyway.
    builder.http1().max_buf_size(HTTP1_READ_BUFFER);
    let graceful = GracefulShutdown::new();
    let handshake_log = Arc::new(HandshakeLog::new());
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // E.g. out of file descriptors: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = Connection {
                    front: front.clone(),
                    builder: builder.clone(),
                    watcher: graceful.watcher(),
                    peer,
                };
                match &tls {
                    None => { tokio::spawn(conn.serve(stream)); }
                    Some(tls) => {
                        tokio::spawn(conn.serve_tls(stream, tls.clone(), handshake_log.clone(), port));
                    }
                }
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("some requests did not finish in time"),
    }
}

struct Connection {
    front: Arc<Front>,
    builder: auto::Builder<TokioExecutor>,
    watcher: Watcher,
    peer: SocketAddr,
}

impl Connection {
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (front, peer) = (self.front, self.peer);
        let service = hyper::service::service_fn(move |req| {
            let front = front.clone();
            async move { Ok::<_, Infallible>(front.handle(req, peer).await) }
        });
        let conn = self.builder.serve_connection(TokioIo::new(io), service);
        if let Err(e) = self.watcher.watch(conn.into_owned()).await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }

    async fn serve_tls(
        self,
        stream: TcpStream,
        tls: Arc<TlsServer>,
        log: Arc<HandshakeLog>,
        port: u16,
    ) {
        let peer = self.peer;
        let mut first = [0u8; 1];
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
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
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await {
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
