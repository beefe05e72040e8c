//! Test harness shared by every integration test binary.
//!
//! This module owns every process a test starts (regproxy, CNCF Distribution,
//! dockerd) and every client command it runs (docker, podman, skopeo). Each
//! started process lives in a guard whose `Drop` stops it by pid and waits for
//! it, also when the test panics, so no test leaks a process. Every wait is
//! bounded in count and time.
//!
//! Test images are made locally (no internet): a rootfs with the static
//! busybox plus random files, a multi-layer `docker build` context, and an OCI
//! image layout holding a multi-arch index (linux/amd64 + linux/arm/v6).
//!
//! A missing system tool is a test failure, never a skip: [`require_tool`]
//! panics and names the Debian package and `./scripts/test.sh`.

// Each test binary uses only some helpers (and re-exports).
#![allow(dead_code, unused_imports)]

mod auth_server;
mod certs;
mod clients;
mod compose;
mod containerd;
mod distribution;
mod dockerd;
mod garage;
mod garage_cluster;
mod http;
mod images;
mod inproc;
mod netns;
mod nginx;
mod oci;
mod process;
mod rawpush;
mod regproxy;
mod relay;
pub mod s3;
mod slapd;
mod trust;

pub use auth_server::{
    b64url, basic_value, claims_of, client_from, send, token_of, wait_until, Cred, Resp, Server,
};
pub use certs::CertsDir;
pub use clients::{curl, Podman, Skopeo};
pub use compose::{assert_static_executable, build_static_binary, compose_dir, Compose};
pub use containerd::{hosts_dir, Containerd};
pub use distribution::Distribution;
pub use dockerd::Dockerd;
pub use garage::{garage_binary, Garage, GarageNode, GARAGE_DEFAULT};
pub use garage_cluster::GarageCluster;
pub use http::{http_get, http_request, http_request_as, HttpResponse};
pub use images::{
    assert_same_file, gzip_stored, make_build_context, make_rootfs, random_bytes, sha256_hex,
    tar_archive, write_random_file, write_rootfs_tarball, BuildContext,
};
pub use inproc::{client_for, rustls_config, Proto, TlsServer, PROTOCOLS};
pub use netns::{sh_quote, wrapped_command, HostsEntry, Lan, Netns};
pub use nginx::NginxBalancer;
pub use oci::{
    assert_same_oci_image, oci_reachable_blobs, read_oci_ref, write_oci_multiarch,
    write_oci_single, OciImage, OCI_INDEX, OCI_MANIFEST,
};
pub use process::{free_port, output_text, run, run_ok, run_with_input, Proc};
pub use rawpush::{
    delete_manifest, digest_of, manifest_status, pull_and_verify, push_blob, push_image,
    put_manifest, RawImage, RAW_INDEX, RAW_MANIFEST,
};
pub use regproxy::{add_users, serve_config, serve_loopback, write_config, Regproxy};
pub use relay::{Relay, Rule, Traffic};
pub use slapd::*;
pub use trust::{
    client_bin_dir, printed_fingerprint, printed_login, trust_script, with_wrong_fingerprint,
    ClientShell, CLIENT_CERT_DIRS, MISMATCH, TRUST_HEADER,
};

use std::path::{Path, PathBuf};

/// The docker.io client. `/usr/local/bin/docker` may be a newer client that
/// does not speak to docker.io's 20.10 daemon, so tests never use PATH.
pub const DOCKER: &str = "/usr/bin/docker";
pub const DOCKERD: &str = "/usr/sbin/dockerd";
pub const PODMAN: &str = "/usr/bin/podman";
pub const SKOPEO: &str = "/usr/bin/skopeo";
pub const DISTRIBUTION: &str = "/usr/bin/docker-registry";
/// The static busybox from `busybox-static`; it runs in a `FROM scratch` image.
pub const BUSYBOX: &str = "/bin/busybox";
pub const TAR: &str = "/bin/tar";

/// Returns the path of a required system tool, or panics naming the Debian
/// package that provides it. `tool` is an absolute path or a command name
/// (looked up in PATH and the sbin directories). Tests never skip.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    if let Some(path) = find_tool(tool) {
        return path;
    }
    panic!(
        "required test tool `{tool}` is missing: install the Debian package `{package}` \
         (`apt-get install -y {package}`), or run ./scripts/test.sh, which installs every \
         test dependency"
    );
}

fn find_tool(tool: &str) -> Option<PathBuf> {
    if tool.contains('/') {
        return is_executable(Path::new(tool)).then(|| PathBuf::from(tool));
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(
            ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A fresh temporary directory under the system temp dir.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create a temporary directory")
}

/// A temporary directory with a short path directly under /tmp, for programs
/// that put unix sockets in it (a socket path must be < 108 bytes).
pub fn short_temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("create a temporary directory under /tmp")
}

/// `path` as `&str`, for command arguments; panics unless it is UTF-8.
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The last `max_lines` lines of a log file, for failure messages.
pub fn tail_file(path: &Path, max_lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    lines[start..].join("\n")
}
