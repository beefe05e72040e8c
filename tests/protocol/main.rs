//! HTTP-level correctness on both protocol versions, against the real
//! server in-process over TLS (built-in CA): HEAD answers carry headers
//! only (checked with real `curl --http2 -I` and the h2 client), the token
//! realm names the port the client dialled, early answers to requests whose
//! body is still on the way leave the connection usable (or close it
//! cleanly), cross-repository mounts work with tokens, and the small
//! points of issue 11 (unparsable `Range`, methods on `/` and `/ca.crt`,
//! IP-address SNI not logged as a warning).
//!
//! Layout: shared helpers here -> `raw` (HTTP/1.1 over a socket) -> `head`
//! (HEAD, realm) -> `keepalive` -> `tokens` (mounts) -> `small` ->
//! `go_client` (an HTTP/2 client following challenges).

#[path = "../common/mod.rs"]
mod common;

mod go_client;
mod head;
mod keepalive;
mod raw;
mod small;
mod tokens;

use raw::*;
use tokens::challenge_param;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use common::{add_users, require_tool, Proto, TlsServer, PROTOCOLS};
use reqwest::Method;
use sha2::Digest as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_secs(20);
const ALICE: (&str, &str) = ("alice", "alice-Secret-1");
const ZERO_DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn basic((user, password): (&str, &str)) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

/// A TLS server with logins (`challenge`: `token` or `basic`) and alice.
async fn auth_server(challenge: &str) -> TlsServer {
    let dir = tempfile::tempdir().expect("temp dir");
    add_users(&dir.path().join("htpasswd"), &[ALICE]);
    TlsServer::start_in(
        dir,
        &format!("auth:\n  htpasswd: htpasswd\n  challenge: {challenge}\n"),
    )
    .await
}

async fn send(
    s: &TlsServer,
    proto: Proto,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> reqwest::Response {
    let mut req = s.client(proto).request(method.clone(), s.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let r = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{proto:?} {method} {path}: {e:?}"));
    assert_eq!(r.version(), proto.version(), "{method} {path}: protocol");
    r
}
