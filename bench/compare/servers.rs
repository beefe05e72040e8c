//! The servers under test and their shared setup: one certificate (made by
//! `regproxy gen-cert`) and one htpasswd file (bcrypt cost 5, Apache
//! `htpasswd -B`'s default) for both registries; regproxy and CNCF
//! Distribution with TLS and logins, or plain (no TLS, no logins), on a
//! fresh data directory or (`--s3`) a fresh bucket of one Garage node
//! (the nginx ceiling is in `nginx.rs`). Every process lives in a guard
//! that stops it by pid when dropped, also on error.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::common::{free_port, run, tail_file, Proc, Regproxy};
use crate::store::S3Store;
use crate::{Ctx, Res};

/// Debian packages the benchmark drives: (command, package).
const TOOLS: &[(&str, &str)] = &[
    ("/usr/bin/docker-registry", "docker-registry"),
    ("/usr/sbin/nginx", "nginx"),
    ("/usr/bin/wrk", "wrk"),
    ("/usr/bin/skopeo", "skopeo"),
    ("/usr/bin/openssl", "openssl"),
];
pub const DISTRIBUTION: &str = "/usr/bin/docker-registry";
pub const NGINX: &str = "/usr/sbin/nginx";
pub const WRK: &str = "/usr/bin/wrk";
pub const OPENSSL: &str = "/usr/bin/openssl";

pub const USER: &str = "bench";
/// Apache `htpasswd -B`'s default cost, what Distribution's docs produce.
const BCRYPT_COST: &str = "5";
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Fails, naming the Debian packages to install, when a tool is missing.
/// Installs nothing.
pub fn check_tools() -> Res<()> {
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "missing tools; install them with: apt-get install -y {}\n\
         hint: ./scripts/test.sh installs them when run as root",
        missing.join(" ")
    ))
}

/// Raises this process's open-file limit to the hard limit; the servers
/// inherit it (1,000 trickling uploads need thousands of descriptors).
pub fn raise_fd_limit() -> Res<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read only the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err("getrlimit(RLIMIT_NOFILE) failed".into());
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return Err("setrlimit(RLIMIT_NOFILE) failed".into());
        }
    }
    if lim.rlim_cur < 8192 {
        return Err(format!(
            "the open-file limit is {}; the trickle figure needs at least 8192\n\
             hint: raise the hard limit (ulimit -Hn) before running the benchmark",
            lim.rlim_cur
        ));
    }
    Ok(())
}

pub fn regproxy_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_regproxy"))
}

/// The run's temp directory with the certificate, the users file and a
/// fresh data directory per server instance.
pub struct Setup {
    dir: tempfile::TempDir,
    pub certs: PathBuf,
    pub ca_dir: PathBuf,
    pub htpasswd: PathBuf,
    pub password: String,
    /// `--s3`: the Garage node both registries store in.
    pub s3: Option<S3Store>,
}

impl Setup {
    pub fn new(work: Option<&Path>, s3: bool) -> Res<Setup> {
        let mut b = tempfile::Builder::new();
        b.prefix("regproxy-bench-");
        let dir = match work {
            Some(w) => b.tempdir_in(w),
            None => b.tempdir(),
        }
        .ctx("create the work directory")?;
        let certs = dir.path().join("certs");
        let out = run(
            Command::new(regproxy_bin())
                .args([
                    "gen-cert",
                    "--host",
                    "localhost",
                    "--ip",
                    "127.0.0.1",
                    "--out",
                ])
                .arg(&certs),
            Duration::from_secs(60),
        );
        if !out.status.success() {
            return Err(format!(
                "regproxy gen-cert failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // A directory holding only the CA, for skopeo's --cert-dir.
        let ca_dir = dir.path().join("ca");
        fs::create_dir_all(&ca_dir).ctx("create the CA dir")?;
        fs::copy(certs.join("ca.crt"), ca_dir.join("ca.crt")).ctx("copy ca.crt")?;

        let password = hex::encode(rand::random::<[u8; 12]>());
        let htpasswd = dir.path().join("htpasswd");
        let out = crate::common::run_with_input(
            Command::new(regproxy_bin())
                .args(["htpasswd", "add", USER, "--cost", BCRYPT_COST])
                .args(["--password-stdin", "--file"])
                .arg(&htpasswd),
            format!("{password}\n").as_bytes(),
            Duration::from_secs(60),
        );
        if !out.status.success() {
            return Err(format!(
                "regproxy htpasswd add failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(Setup {
            dir,
            certs,
            ca_dir,
            htpasswd,
            password,
            s3: s3.then(S3Store::start),
        })
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `Basic base64(user:password)`.
    pub fn basic(&self) -> String {
        let raw = format!("{USER}:{}", self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    pub fn creds(&self) -> String {
        format!("{USER}:{}", self.password)
    }

    /// A fresh, empty directory under the work dir.
    pub fn fresh_dir(&self, prefix: &str) -> Res<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(self.dir.path())
            .ctx("create a data directory")
    }
}

/// Which registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Regproxy,
    Distribution,
}

impl Kind {
    pub const BOTH: [Kind; 2] = [Kind::Regproxy, Kind::Distribution];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Regproxy => "regproxy",
            Kind::Distribution => "distribution",
        }
    }
}

/// With TLS and logins, or plain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Secure,
    Plain,
}

enum Guard {
    Regproxy(Regproxy),
    Proc(Proc),
}

/// A running registry on a fresh data directory; dropping it stops the
/// process by pid (SIGKILL) and deletes the data.
pub struct Server {
    pub kind: Kind,
    pub mode: Mode,
    pub addr: SocketAddr,
    guard: Guard,
    log: PathBuf,
    // Dropped after the guard: the process is gone before its data.
    _data: tempfile::TempDir,
}

impl Server {
    pub fn start(kind: Kind, mode: Mode, setup: &Setup) -> Res<Server> {
        let data = setup.fresh_dir(&format!("{}-", kind.name()))?;
        match kind {
            Kind::Regproxy => start_regproxy(mode, setup, data),
            Kind::Distribution => start_distribution(mode, setup, data),
        }
    }

    pub fn pid(&self) -> u32 {
        match &self.guard {
            Guard::Regproxy(r) => r.pid(),
            Guard::Proc(p) => p.pid(),
        }
    }

    pub fn tls(&self) -> bool {
        self.mode == Mode::Secure
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log, lines)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        match &mut self.guard {
            Guard::Regproxy(r) => r.try_exit_status().is_none(),
            Guard::Proc(p) => p.try_exit_status().is_none(),
        }
    }
}

fn start_regproxy(mode: Mode, setup: &Setup, data: tempfile::TempDir) -> Res<Server> {
    let storage = match &setup.s3 {
        Some(s3) => s3.regproxy_yaml(&s3.fresh_bucket(Kind::Regproxy), data.path()),
        None => format!(
            "storage:\n  filesystem:\n    root: {}/root\n",
            data.path().display()
        ),
    };
    let proc = match (mode, &setup.s3) {
        (Mode::Plain, None) => Regproxy::start(data.path(), &[]),
        (Mode::Plain, Some(_)) => {
            let yaml = format!(
                "listen: 127.0.0.1:0\n{storage}tls:\n  enabled: false\nauth:\n  enabled: false\n"
            );
            start_regproxy_config(data.path(), &yaml)?
        }
        (Mode::Secure, _) => {
            let yaml = format!(
                "listen: 127.0.0.1:0\n{storage}\
                 tls:\n  enabled: true\n  dir: {certs}\n\
                 auth:\n  enabled: true\n  htpasswd: {htpasswd}\n  challenge: token\n  \
                 token:\n    key: {root}/token.key\n",
                certs = setup.certs.display(),
                htpasswd = setup.htpasswd.display(),
                root = setup.root().display(),
            );
            start_regproxy_config(data.path(), &yaml)?
        }
    };
    Ok(Server {
        kind: Kind::Regproxy,
        mode,
        addr: proc.addr(),
        log: proc.log_path().to_path_buf(),
        guard: Guard::Regproxy(proc),
        _data: data,
    })
}

/// `regproxy serve --config DIR/proxy.yaml` with `yaml`.
fn start_regproxy_config(dir: &Path, yaml: &str) -> Res<Regproxy> {
    let config = dir.join("proxy.yaml");
    fs::write(&config, yaml).ctx("write proxy.yaml")?;
    let args = ["serve".into(), "--config".into(), config.into_os_string()];
    Ok(Regproxy::start_with_args(&args))
}

fn start_distribution(mode: Mode, setup: &Setup, data: tempfile::TempDir) -> Res<Server> {
    let config = data.path().join("config.yml");
    let log = data.path().join("distribution.log");
    let storage = match &setup.s3 {
        Some(s3) => s3.distribution_yaml(&s3.fresh_bucket(Kind::Distribution)),
        None => format!(
            "storage:\n  cache:\n    blobdescriptor: inmemory\n  \
             filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n",
            data.path().join("root").display()
        ),
    };
    let mut last = String::new();
    // Distribution cannot bind port 0 and report it: probe a free port and
    // retry if another process took it meanwhile.
    for _ in 0..5 {
        let port = free_port();
        fs::write(&config, distribution_yaml(mode, setup, &storage, port))
            .ctx("write config.yml")?;
        let out = fs::File::create(&log).ctx("create the Distribution log")?;
        let err = out.try_clone().ctx("clone the log handle")?;
        let mut cmd = Command::new(DISTRIBUTION);
        cmd.arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // Its config is the file alone: no REGISTRY_* overrides, and no
        // AWS_* settings for its S3 driver (an AWS_CA_BUNDLE makes the AWS
        // SDK of Distribution 2.8 panic at start on a plain-HTTP endpoint).
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("REGISTRY_") || k.starts_with("AWS_") {
                cmd.env_remove(key);
            }
        }
        let mut proc = Proc::spawn("docker-registry", &mut cmd);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if proc.try_exit_status().is_some() {
                last = tail_file(&log, 20);
                break;
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(Server {
                    kind: Kind::Distribution,
                    mode,
                    addr,
                    guard: Guard::Proc(proc),
                    log,
                    _data: data,
                });
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "Distribution did not listen on {addr} within {READY_TIMEOUT:?}:\n{}",
                    tail_file(&log, 20)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !last.contains("address already in use") {
            break;
        }
    }
    Err(format!("Distribution did not start:\n{last}"))
}

/// registry:2's default configuration (in-memory blob descriptor cache,
/// info logs) on `storage`, on loopback, with TLS and htpasswd logins in
/// `Secure` mode.
fn distribution_yaml(mode: Mode, setup: &Setup, storage: &str, port: u16) -> String {
    let mut y = format!(
        "version: 0.1\n\
         log:\n  fields:\n    service: registry\n\
         {storage}\
         http:\n  addr: 127.0.0.1:{port}\n  secret: {secret}\n",
        secret = hex::encode(rand::random::<[u8; 16]>()),
    );
    if mode == Mode::Secure {
        y.push_str(&format!(
            "  tls:\n    certificate: {cert}\n    key: {key}\n\
             auth:\n  htpasswd:\n    realm: bench\n    path: {htpasswd}\n",
            cert = setup.certs.join("server.crt").display(),
            key = setup.certs.join("server.key").display(),
            htpasswd = setup.htpasswd.display(),
        ));
    }
    y
}
