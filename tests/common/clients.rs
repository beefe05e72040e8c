//! skopeo and podman with private state: their own policy, auth file,
//! storage root and temp dirs, so tests run in parallel and touch no global
//! state; and curl trusting one CA. Every command is bounded in time.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::process::{run, run_ok};
use super::{require_tool, temp_dir, PODMAN, SKOPEO};

/// Upper bound for one skopeo or podman command.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

/// Upper bound for one curl command (which itself gives up after 20 s).
const CURL_TIMEOUT: Duration = Duration::from_secs(60);

const POLICY: &str = r#"{"default":[{"type":"insecureAcceptAnything"}]}"#;

/// Writes the files both clients share: a permissive signature policy (test
/// images are unsigned) and an empty auth file.
fn private_config(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let policy = dir.join("policy.json");
    let auth = dir.join("auth.json");
    let tmp = dir.join("tmp");
    fs::write(&policy, POLICY).expect("write policy.json");
    fs::write(&auth, r#"{"auths":{}}"#).expect("write auth.json");
    fs::create_dir_all(&tmp).expect("create tmp dir");
    (policy, auth, tmp)
}

/// skopeo with a private policy and auth file.
pub struct Skopeo {
    dir: tempfile::TempDir,
    policy: PathBuf,
    auth: PathBuf,
    tmp: PathBuf,
}

impl Skopeo {
    pub fn new() -> Skopeo {
        require_tool(SKOPEO, "skopeo");
        let dir = temp_dir("skopeo-");
        let (policy, auth, tmp) = private_config(dir.path());
        Skopeo {
            dir,
            policy,
            auth,
            tmp,
        }
    }

    /// `skopeo --policy P ARGS`, ready for more options.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(SKOPEO);
        cmd.arg("--policy")
            .arg(&self.policy)
            .args(args)
            .env("REGISTRY_AUTH_FILE", &self.auth)
            .env("TMPDIR", &self.tmp);
        cmd
    }

    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(&mut self.command(args), CLIENT_TIMEOUT)
    }

    /// Runs skopeo, panicking unless it succeeds; returns stdout.
    pub fn run_ok<I, S>(&self, args: I) -> Vec<u8>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_ok(&mut self.command(args), CLIENT_TIMEOUT).stdout
    }

    /// `skopeo copy [--all] SRC DEST` with plain HTTP allowed on both sides
    /// (only ever used against 127.0.0.1 registries).
    /// An `oci:DIR:TAG` destination's parent directory is created first
    /// (skopeo requires it).
    pub fn copy(&self, src: &str, dest: &str, all: bool) {
        if let Some((dir, _tag)) = dest.strip_prefix("oci:").and_then(|r| r.rsplit_once(':')) {
            if let Some(parent) = Path::new(dir).parent() {
                fs::create_dir_all(parent).expect("create OCI layout parent dir");
            }
        }
        let mut args = vec!["copy", "--src-tls-verify=false", "--dest-tls-verify=false"];
        if all {
            args.push("--all");
        }
        args.extend([src, dest]);
        self.run_ok(args);
    }

    /// `skopeo inspect --raw docker://IMAGE`: the manifest bytes as served.
    pub fn inspect_raw(&self, image: &str) -> Vec<u8> {
        let reference = format!("docker://{image}");
        self.run_ok(["inspect", "--tls-verify=false", "--raw", &reference])
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for Skopeo {
    fn default() -> Self {
        Skopeo::new()
    }
}

/// podman with its own storage (vfs), run root and temp dirs. (It reads the
/// system signature policy, which Debian ships as accept-anything.)
pub struct Podman {
    dir: tempfile::TempDir,
    auth: PathBuf,
    tmp: PathBuf,
}

impl Podman {
    pub fn new() -> Podman {
        require_tool(PODMAN, "podman");
        let dir = temp_dir("podman-");
        let (_, auth, tmp) = private_config(dir.path());
        Podman { dir, auth, tmp }
    }

    /// `podman --root R --runroot RR --storage-driver vfs ... ARGS`.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let d = self.dir.path();
        let mut cmd = Command::new(PODMAN);
        cmd.arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("libpod-tmp"))
            .args(["--storage-driver", "vfs"])
            .args(["--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .args(args)
            .env("REGISTRY_AUTH_FILE", &self.auth)
            .env("TMPDIR", &self.tmp);
        cmd
    }

    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(&mut self.command(args), CLIENT_TIMEOUT)
    }

    /// Runs podman, panicking unless it succeeds; returns stdout as text.
    pub fn run_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        String::from_utf8_lossy(&run_ok(&mut self.command(args), CLIENT_TIMEOUT).stdout)
            .into_owned()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for Podman {
    fn default() -> Self {
        Podman::new()
    }
}

/// `curl ARGS` trusting only the registry's CA: the status and the body.
pub fn curl(ca: &Path, args: &[&str]) -> (u16, String) {
    let mut cmd = Command::new(require_tool("curl", "curl"));
    cmd.args([
        "-sS",
        "--max-time",
        "20",
        "--noproxy",
        "*",
        "-w",
        "\n%{http_code}",
    ])
    .arg("--cacert")
    .arg(ca)
    .args(args);
    let out = run_ok(&mut cmd, CURL_TIMEOUT);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status = status
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl printed no status: {text}"));
    (status, body.to_string())
}
