//! Integration tests of the registry HTTP API: every endpoint and every error
//! code of the OCI distribution-spec v1.1 / Docker Registry HTTP API V2,
//! against the real server started in-process over TLS on port 0 with a
//! temporary storage directory (one server per test).
//!
//! Every test runs twice, over HTTP/1.1 and over HTTP/2 (ALPN), as
//! `NAME::http1` and `NAME::http2` ([`both_protocols!`]); every `GET` is
//! repeated as `HEAD` and must answer the same status and headers with no
//! body.
//!
//! Expectations follow the specification and what Docker / OCI clients need,
//! not the current implementation. Every response is checked for
//! `Docker-Distribution-Api-Version: registry/2.0`, and every error response
//! for the OCI error JSON.
//!
//! Layout: `fixture` (the server, raw requests) -> `exchange` (requests,
//! responses) -> `content` (push helpers) -> one module per endpoint family:
//! `base` (`/v2/`, Location headers, shutdown), `blobs`, `uploads` and
//! `upload_errors`, `mounts`, `manifests` and `manifest_errors`, `referrers`,
//! `listing` (tags, catalog), `errors` (names, methods, hostile input).

#[path = "../common/mod.rs"]
mod common;

mod base;
mod blobs;
mod content;
mod errors;
mod exchange;
mod fixture;
mod listing;
mod manifest_errors;
mod manifests;
mod mounts;
mod referrers;
mod upload_errors;
mod uploads;

use std::net::SocketAddr;
use std::time::Duration;

use common::Proto;
use content::*;
use exchange::*;
use fixture::*;
use regproxy::config::Config;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Runs each named test body (`async fn NAME(p: Proto)`) once per HTTP
/// version, as the tests `NAME::http1` and `NAME::http2`. A body left out of
/// the list is dead code, which clippy refuses.
macro_rules! both_protocols {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn http1() {
                super::$name(crate::Proto::Http1).await
            }
            #[tokio::test]
            async fn http2() {
                super::$name(crate::Proto::Http2).await
            }
        }
    )*};
}
use both_protocols;

/// Upper bound for any one request, and for the server to stop.
const TIMEOUT: Duration = Duration::from_secs(20);

const MIB: usize = 1024 * 1024;
/// The manifest size every registry must accept, and the server's limit.
const MANIFEST_LIMIT: usize = 4 * MIB;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// sha256 of `{}`, the OCI empty descriptor's content.
const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
