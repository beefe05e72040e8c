//! Extra hosts on the same machine, for TLS tests that need real names and
//! real remote clients: network namespaces joined by a veth pair (a private
//! LAN), and a guarded line in /etc/hosts.
//!
//! Everything made here has a unique name (pid + counter) and is removed by a
//! guard's `Drop`, also when the test panics. Traffic only ever goes to
//! loopback or to addresses inside the namespaces a test created.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::process::{run, run_ok};
use super::require_tool;

const IP_TIMEOUT: Duration = Duration::from_secs(20);
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

fn next_id() -> usize {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// `ip ARGS`, panicking unless it succeeds.
fn ip(args: &[&str]) {
    let ip = require_tool("ip", "iproute2");
    run_ok(Command::new(ip).args(args), IP_TIMEOUT);
}

/// `ip ARGS` during cleanup: failures are reported, never a panic.
fn ip_quiet(args: &[&str]) {
    let Some(ip) = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        return;
    };
    let out = run(Command::new(ip).args(args), IP_TIMEOUT);
    if !out.status.success() {
        eprintln!(
            "cleanup: ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
}

/// Single-quotes `s` for `sh`.
pub fn sh_quote(s: impl AsRef<OsStr>) -> String {
    let s = s.as_ref().to_string_lossy();
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `PROGRAM ARGS` run through `prefix` (e.g. [`Netns::exec_prefix`]): the
/// first element of `prefix` becomes the program.
pub fn wrapped_command<S: AsRef<OsStr>>(prefix: &[S], program: impl AsRef<OsStr>) -> Command {
    match prefix.split_first() {
        Some((first, rest)) => {
            let mut cmd = Command::new(first);
            cmd.args(rest).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// A named network namespace (`ip netns add`), with its `/etc/netns/NAME`
/// directory for the host's own files. Dropping it deletes both.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `rp-ROLE-PID-N` with `lo` up.
    pub fn create(role: &str) -> Netns {
        let name = format!("rp-{role}-{}-{}", std::process::id(), next_id());
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        fs::create_dir_all(ns.etc_dir()).expect("create /etc/netns/NAME");
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/var/run/netns/NAME`, for `nsenter --net=`.
    pub fn path(&self) -> PathBuf {
        Path::new("/var/run/netns").join(&self.name)
    }

    /// `/etc/netns/NAME`: files here stand in for `/etc/<file>` on this host.
    pub fn etc_dir(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.name)
    }

    /// Writes `/etc/netns/NAME/<rel>`, creating parent directories.
    pub fn write_etc(&self, rel: &str, contents: &str) -> PathBuf {
        let path = self.etc_dir().join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create /etc/netns/NAME subdir");
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// `ip netns exec NAME`: enough for servers and simple clients. (It
    /// remounts /sys, which hides the cgroups a dockerd needs: use
    /// [`Netns::enter`] for an engine.)
    pub fn exec_prefix(&self) -> Vec<OsString> {
        let ip = require_tool("ip", "iproute2");
        vec![
            ip.into(),
            "netns".into(),
            "exec".into(),
            self.name.clone().into(),
        ]
    }

    /// The shell command that bind-mounts `/etc/netns/NAME/<entry>` over
    /// `/etc/<entry>` (what `ip netns exec` does for every entry).
    pub fn bind_etc(&self, entry: &str) -> String {
        format!(
            "mount --bind {} {}",
            sh_quote(self.etc_dir().join(entry)),
            sh_quote(Path::new("/etc").join(entry))
        )
    }

    /// A command prefix that enters only this network namespace, then a
    /// private mount namespace, runs the `setup` shell commands there (e.g.
    /// [`Netns::bind_etc`]) and execs the rest of the command line:
    /// `nsenter --net=PATH unshare --mount --propagation private
    ///  sh -c 'SETUP && exec "$@"' sh`. Every process in the chain execs the
    /// next, so the final program keeps the pid of the spawned process.
    pub fn enter(&self, setup: &[String]) -> Vec<OsString> {
        let nsenter = require_tool("nsenter", "util-linux");
        let unshare = require_tool("unshare", "util-linux");
        let mut script = setup.join(" && ");
        if !script.is_empty() {
            script.push_str(" && ");
        }
        script.push_str(r#"exec "$@""#);
        let net = format!("--net={}", self.path().display());
        [
            nsenter.into_os_string(),
            net.into(),
            unshare.into_os_string(),
            "--mount".into(),
            "--propagation".into(),
            "private".into(),
            "sh".into(),
            "-c".into(),
            script.into(),
            "sh".into(),
        ]
        .into()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        ip_quiet(&["netns", "del", &self.name]);
        let etc = self.etc_dir();
        if let Err(e) = fs::remove_dir_all(&etc) {
            if e.kind() != ErrorKind::NotFound {
                eprintln!("cleanup: remove {}: {e}", etc.display());
            }
        }
    }
}

/// Two hosts on a private LAN: a namespace for the server and one for the
/// client, joined by a veth pair with `10.251.X.1/30` (server) and
/// `10.251.X.2/30` (client). Nothing is added to the root namespace, so the
/// subnet can never clash with the machine's routes or with parallel runs.
/// Dropping it deletes the link, then both namespaces.
pub struct Lan {
    veth_server: String,
    veth_client: String,
    server_ip: String,
    client_ip: String,
    // Fields drop after `Drop::drop` has removed the link.
    pub server: Netns,
    pub client: Netns,
}

impl Lan {
    pub fn create() -> Lan {
        let id = next_id();
        let server = Netns::create("srv");
        let client = Netns::create("pi");
        // Interface names are limited to 15 bytes: "rp" + pid + id + side.
        let base = format!("rp{}{}", std::process::id() % 1_000_000, id % 1000);
        let veth_server = format!("{base}s");
        let veth_client = format!("{base}c");
        let x = 1 + (std::process::id() as usize + id) % 250;
        let lan = Lan {
            server_ip: format!("10.251.{x}.1"),
            client_ip: format!("10.251.{x}.2"),
            veth_server: veth_server.clone(),
            veth_client: veth_client.clone(),
            server,
            client,
        };
        ip(&[
            "link",
            "add",
            &veth_server,
            "netns",
            lan.server.name(),
            "type",
            "veth",
            "peer",
            "name",
            &veth_client,
            "netns",
            lan.client.name(),
        ]);
        for (ns, dev, addr) in [
            (&lan.server, &veth_server, &lan.server_ip),
            (&lan.client, &veth_client, &lan.client_ip),
        ] {
            ip(&[
                "-n",
                ns.name(),
                "addr",
                "add",
                &format!("{addr}/30"),
                "dev",
                dev,
            ]);
            ip(&["-n", ns.name(), "link", "set", dev, "up"]);
        }
        lan
    }

    /// The server's address on the LAN.
    pub fn server_ip(&self) -> &str {
        &self.server_ip
    }

    /// The client's address on the LAN.
    pub fn client_ip(&self) -> &str {
        &self.client_ip
    }

    /// The server's end of the veth pair (inside `server`), e.g. for `tc`.
    pub fn server_dev(&self) -> &str {
        &self.veth_server
    }

    /// The client's end of the veth pair (inside `client`), e.g. for `tc`.
    pub fn client_dev(&self) -> &str {
        &self.veth_client
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Deleting one end deletes the pair.
        ip_quiet(&["-n", self.server.name(), "link", "del", &self.veth_server]);
    }
}

const HOSTS: &str = "/etc/hosts";
/// Serialises every test process's edits of /etc/hosts (flock).
const HOSTS_LOCK: &str = "/tmp/regproxy-tests-etc-hosts.lock";
const HOSTS_MARKER: &str = "# regproxy-test pid=";
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// One line `IP NAME # regproxy-test pid=P id=N` appended to /etc/hosts.
/// Dropping it removes exactly that line and leaves every other line alone.
/// Edits hold an exclusive flock on a lock file, so parallel tests (also in
/// other processes) never lose each other's lines.
pub struct HostsEntry {
    marker: String,
}

impl HostsEntry {
    pub fn add(ip: &str, name: &str) -> HostsEntry {
        let marker = format!("{HOSTS_MARKER}{} id={}", std::process::id(), next_id());
        let line = format!("{ip} {name} {marker}");
        let _lock = HostsLock::acquire().unwrap_or_else(|e| panic!("{e}"));
        let text = fs::read_to_string(HOSTS).expect("read /etc/hosts");
        // Also drop lines left by test processes that were killed.
        let mut lines: Vec<&str> = text.lines().filter(|l| !is_stale(l)).collect();
        lines.push(&line);
        write_hosts(&lines).unwrap_or_else(|e| panic!("write /etc/hosts: {e}"));
        HostsEntry { marker }
    }
}

impl Drop for HostsEntry {
    fn drop(&mut self) {
        let lock = match HostsLock::acquire() {
            Ok(lock) => lock,
            Err(e) => {
                eprintln!(
                    "cleanup: {e}; /etc/hosts keeps the line `... {}`",
                    self.marker
                );
                return;
            }
        };
        let result = fs::read_to_string(HOSTS).and_then(|text| {
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.ends_with(&self.marker))
                .collect();
            write_hosts(&lines)
        });
        if let Err(e) = result {
            eprintln!(
                "cleanup: cannot remove `{}` from /etc/hosts: {e}",
                self.marker
            );
        }
        drop(lock);
    }
}

/// A line of ours whose process no longer exists.
fn is_stale(line: &str) -> bool {
    let Some((_, rest)) = line.split_once(HOSTS_MARKER) else {
        return false;
    };
    let pid = rest.split_whitespace().next().unwrap_or_default();
    pid.parse::<u32>()
        .map(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        .unwrap_or(false)
}

/// Rewrites /etc/hosts in place (same inode), under the hosts lock. Not a
/// rename: a rename would leave engines that bind-mount the old inode (in
/// their own mount namespace) resolving with a stale file.
fn write_hosts(lines: &[&str]) -> std::io::Result<()> {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(HOSTS, text)
}

/// An exclusive flock on [`HOSTS_LOCK`], released on drop (file closed).
struct HostsLock {
    _file: File,
}

impl HostsLock {
    fn acquire() -> Result<HostsLock, String> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(HOSTS_LOCK)
            .map_err(|e| format!("open {HOSTS_LOCK}: {e}"))?;
        let deadline = Instant::now() + LOCK_TIMEOUT;
        loop {
            // SAFETY: flock(2) on a descriptor owned by `file`, which lives
            // as long as the lock; it touches no memory.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(HostsLock { _file: file });
            }
            if Instant::now() >= deadline {
                return Err(format!("{HOSTS_LOCK} stayed locked for {LOCK_TIMEOUT:?}"));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}
