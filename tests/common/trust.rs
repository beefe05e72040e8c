//! What regproxy prints for clients (the CA fingerprint, the trust commands,
//! the `docker login` line), read back the way a person copies it, and a
//! client shell that runs those commands exactly as printed, as root with
//! no `sudo` anywhere on its PATH, in a private mount namespace whose
//! `/etc/docker`, `/etc/containers` and `/etc/containerd` are empty tmpfs
//! mounts, so this machine's own directories are never touched.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::netns::sh_quote;
use super::process::run;
use super::{require_tool, temp_dir};

/// The header line printed just before the trust commands.
pub const TRUST_HEADER: &str = "On each client (a Raspberry Pi too)";
/// What the trust commands print on stderr when the CA is not the expected one.
pub const MISMATCH: &str = "fingerprint mismatch, not trusting";
/// The client directories the trust commands install the CA into.
pub const CLIENT_CERT_DIRS: [&str; 3] = [
    "/etc/docker/certs.d",
    "/etc/containers/certs.d",
    "/etc/containerd/certs.d",
];
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The trust commands in `printed`: the indented block from the line `(`
/// to the line `)`, as printed (indentation kept).
pub fn trust_script(printed: &str) -> String {
    let lines: Vec<&str> = printed
        .lines()
        .skip_while(|l| !l.contains(TRUST_HEADER))
        .skip(1)
        .skip_while(|l| l.trim() != "(")
        .collect();
    let end = lines.iter().position(|l| l.trim() == ")");
    let Some(end) = end.filter(|_| !lines.is_empty()) else {
        panic!("no trust commands `(` ... `)` after {TRUST_HEADER:?} in:\n{printed}");
    };
    lines[..=end].join("\n")
}

/// The printed `CA fingerprint (SHA-256): AB:CD:...`, exactly as printed.
pub fn printed_fingerprint(printed: &str) -> String {
    let fp = printed
        .lines()
        .find_map(|l| l.split_once("CA fingerprint (SHA-256): ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no CA fingerprint in:\n{printed}"))
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        fp.len() == 95
            && fp
                .split(':')
                .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit())),
        "the fingerprint is not AB:CD:... ({fp:?})"
    );
    fp
}

/// The `HOST:PORT` of the printed `docker login HOST:PORT` line.
pub fn printed_login(printed: &str) -> String {
    printed
        .lines()
        .find_map(|l| l.split_once("docker login ").map(|(_, r)| r))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `docker login HOST:PORT` in:\n{printed}"))
        .to_string()
}

/// `script` with the printed fingerprint replaced by another one.
pub fn with_wrong_fingerprint(script: &str, fingerprint: &str) -> String {
    let first = if fingerprint.starts_with('0') {
        "1"
    } else {
        "0"
    };
    let wrong = format!("{first}{}", &fingerprint[1..]);
    assert!(script.contains(fingerprint), "{script}");
    script.replace(fingerprint, &wrong)
}

/// A shell on this machine standing in for a client host (see the module
/// comment). `etc` holds what the commands installed after each run.
pub struct ClientShell {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

/// The programs the trust commands may use, linked into the shell's PATH.
const CLIENT_TOOLS: &[&str] = &[
    "sh",
    "curl",
    "sed",
    "base64",
    "sha256sum",
    "cut",
    "tr",
    "install",
    "mktemp",
    "id",
    "rm",
    "cat",
    "echo",
    "printf",
    "mkdir",
    "ls",
    "cp",
];

/// Makes `dir` hold links to the programs the trust commands use (and no
/// `sudo`), for a PATH of exactly those; returns `dir`.
pub fn client_bin_dir(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).expect("create the client's bin dir");
    for tool in CLIENT_TOOLS {
        let path = require_tool(tool, "coreutils");
        symlink(&path, dir.join(tool)).expect("link a client tool");
    }
    dir.to_path_buf()
}

impl ClientShell {
    pub fn new() -> ClientShell {
        let dir = temp_dir("regproxy-client-");
        let bin = client_bin_dir(&dir.path().join("bin"));
        for d in ["/etc/docker", "/etc/containers", "/etc/containerd"] {
            // Mount points for the private tmpfs mounts; empty dirs if new.
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("create {d}: {e}"));
        }
        ClientShell { dir, bin }
    }

    /// Puts an executable script `name` first on the shell's PATH.
    pub fn add_program(&self, name: &str, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.bin.join(name);
        let _ = fs::remove_file(&path);
        fs::write(&path, text).expect("write program");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod program");
    }

    /// Where the last run's `/etc/<dir>` contents were copied to.
    pub fn etc_copy(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// Runs `script` with `sh -c`, as printed. Afterwards what the run left in
    /// its `/etc/{docker,containers,containerd}` is under [`Self::etc_copy`].
    pub fn run(&self, script: &str) -> Output {
        let unshare = require_tool("unshare", "util-linux");
        let mount = require_tool("mount", "mount");
        let cp = require_tool("cp", "coreutils");
        let copy = self.etc_copy();
        let _ = fs::remove_dir_all(&copy);
        fs::create_dir_all(&copy).expect("create the etc copy dir");
        let mut setup = Vec::new();
        for d in ["docker", "containers", "containerd"] {
            setup.push(format!("{} -t tmpfs client-{d} /etc/{d}", sh_quote(&mount)));
        }
        // Run the commands, keep their status, and copy what they installed.
        let wrapper = format!(
            "{setup} && {{ sh -c \"$1\"; rc=$?; {cp} -a /etc/docker /etc/containers /etc/containerd {copy}/; exit $rc; }}",
            setup = setup.join(" && "),
            cp = sh_quote(&cp),
            copy = sh_quote(&copy),
        );
        let mut cmd = Command::new(unshare);
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(wrapper)
            .arg("sh")
            .arg(script)
            .env_clear()
            .env("PATH", &self.bin)
            .env("HOME", self.dir.path());
        run(&mut cmd, SCRIPT_TIMEOUT)
    }

    /// The file the last run installed at `/etc/<rel>` (None if absent).
    pub fn installed(&self, rel: &str) -> Option<Vec<u8>> {
        fs::read(self.etc_copy().join(rel)).ok()
    }

    /// Every file the last run installed, as paths under `/etc`.
    pub fn installed_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.etc_copy(), &self.etc_copy(), &mut out);
        out.sort();
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(format!("/etc/{}", rel.display()));
        }
    }
}
