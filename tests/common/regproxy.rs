//! The regproxy binary under test: start it on port 0, learn the port from
//! its one stdout line, keep its stderr log in a file, stop it by pid.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::netns::wrapped_command;
use super::process::Proc;
use super::{tail_file, temp_dir};

const LISTENING_PREFIX: &str = "regproxy: listening on ";
const ADMIN_PREFIX: &str = "regproxy: admin endpoints on http://";
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `regproxy serve`. Dropping it kills the process (SIGKILL by pid).
pub struct Regproxy {
    proc: Proc,
    addr: SocketAddr,
    scheme: String,
    log_path: PathBuf,
    stdout_lines: mpsc::Receiver<String>,
    /// Lines printed to stdout before the listening line.
    startup_stdout: Vec<String>,
    _log_dir: tempfile::TempDir,
}

impl Regproxy {
    /// `regproxy serve --no-tls --no-auth --listen 127.0.0.1:0 --data DIR`
    /// followed by `extra_args`.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Regproxy {
        let mut args: Vec<OsString> = [
            "serve",
            "--no-tls",
            "--no-auth",
            "--listen",
            "127.0.0.1:0",
            "--data",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let data_dir = std::path::absolute(data_dir).expect("absolute data dir");
        args.push(data_dir.into_os_string());
        args.extend(extra_args.iter().map(OsString::from));
        Self::start_with_args(&args)
    }

    /// Runs the binary with exactly `args` (e.g. `serve --config FILE`). The
    /// arguments must make it listen on port 0 and print the listening line.
    /// The working directory is a fresh temp dir, so a `./proxy.yaml` in the
    /// repository is never picked up: pass absolute paths.
    pub fn start_with_args<S: AsRef<OsStr>>(args: &[S]) -> Regproxy {
        Self::start_wrapped::<&str, S>(&[], args)
    }

    /// Like [`Regproxy::start_with_args`], but runs `WRAPPER... regproxy
    /// ARGS`, e.g. `ip netns exec NAME` to serve inside a network namespace.
    /// The wrapper must exec regproxy, so that the pid this guard kills is
    /// the server's.
    pub fn start_wrapped<W: AsRef<OsStr>, S: AsRef<OsStr>>(wrapper: &[W], args: &[S]) -> Regproxy {
        Self::start_wrapped_in(None, wrapper, args)
    }

    /// Like [`Regproxy::start_wrapped`], in the working directory `cwd`
    /// (default: the fresh directory that holds the stderr log), e.g. an
    /// empty directory for a first start with no arguments but `--listen`.
    pub fn start_wrapped_in<W: AsRef<OsStr>, S: AsRef<OsStr>>(
        cwd: Option<&Path>,
        wrapper: &[W],
        args: &[S],
    ) -> Regproxy {
        let log_dir = temp_dir("regproxy-log-");
        let log_path = log_dir.path().join("regproxy.stderr.log");
        let log = File::create(&log_path).expect("create regproxy log file");
        let mut cmd = wrapped_command(wrapper, env!("CARGO_BIN_EXE_regproxy"));
        cmd.args(args)
            .current_dir(cwd.unwrap_or(log_dir.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .env("RUST_BACKTRACE", "1")
            // Many servers run at once: the admin listener takes a free
            // port instead of the default 127.0.0.1:5001.
            .env("REGPROXY_ADMIN_LISTEN", "127.0.0.1:0");
        let mut proc = Proc::spawn("regproxy", &mut cmd);
        let stdout = proc
            .child_mut()
            .and_then(|c| c.stdout.take())
            .expect("piped stdout");

        // One thread reads stdout until EOF (the process exits), so the
        // server can never block on a full pipe.
        let (tx, stdout_lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });

        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen = Vec::new();
        let listening = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match stdout_lines.recv_timeout(left) {
                Ok(line) => match line.strip_prefix(LISTENING_PREFIX) {
                    Some(url) => break url.trim().to_string(),
                    None => seen.push(line),
                },
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = proc.kill9();
                    panic!(
                        "regproxy {:?} exited ({status:?}) before printing its listening \
                         line\n--- stdout ---\n{}\n--- stderr ---\n{}",
                        args.iter().map(AsRef::as_ref).collect::<Vec<_>>(),
                        seen.join("\n"),
                        tail_file(&log_path, 80)
                    );
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    proc.kill9();
                    panic!(
                        "regproxy did not print `{LISTENING_PREFIX}...` within \
                         {START_TIMEOUT:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                        seen.join("\n"),
                        tail_file(&log_path, 80)
                    );
                }
            }
        };
        let (scheme, rest) = listening
            .split_once("://")
            .unwrap_or_else(|| panic!("listening line has no URL: {listening:?}"));
        let addr: SocketAddr = rest
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|e| panic!("listening line {listening:?}: bad address: {e}"));
        Regproxy {
            proc,
            addr,
            scheme: scheme.to_string(),
            log_path,
            stdout_lines,
            startup_stdout: seen,
            _log_dir: log_dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The admin listener's address, from its startup line (`None` when
    /// the admin listener is off).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.startup_stdout.iter().find_map(|l| {
            l.strip_prefix(ADMIN_PREFIX)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    }

    /// `http://ADMIN/PATH` on the admin listener; panics when it is off.
    pub fn admin_url(&self, path: &str) -> String {
        let a = self.admin_addr().unwrap_or_else(|| {
            panic!(
                "no admin line in the startup output:\n{}",
                self.startup_stdout.join("\n")
            )
        });
        format!("http://{a}{path}")
    }

    /// `127.0.0.1:PORT`, the registry host as clients write it in image names.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT` (or https when started with TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything the server has written to stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits (bounded) until the log contains `needle`; returns whether it did.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.logs().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Lines the server printed to stdout before the listening line (e.g.
    /// the first-start `admin` password).
    pub fn startup_stdout(&self) -> &[String] {
        &self.startup_stdout
    }

    /// Lines the server printed to stdout after the listening line.
    pub fn extra_stdout(&self) -> Vec<String> {
        self.stdout_lines.try_iter().collect()
    }

    /// SIGKILL by pid and wait: a crash, no chance to clean up.
    pub fn kill9(&mut self) -> Option<ExitStatus> {
        self.proc.kill9()
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit status and
    /// whether the server exited on its own after SIGTERM.
    pub fn terminate(&mut self, grace: Duration) -> (Option<ExitStatus>, bool) {
        self.proc.terminate(grace)
    }

    /// The exit status if the server has exited.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.proc.try_exit_status()
    }
}

impl Drop for Regproxy {
    fn drop(&mut self) {
        self.proc.kill9();
        if thread::panicking() {
            eprintln!(
                "--- regproxy stderr (last 100 lines) ---\n{}",
                tail_file(&self.log_path, 100)
            );
        }
    }
}

/// Starts `regproxy serve --config CONFIG` on `127.0.0.1:0` with its data
/// in `data`.
pub fn serve_config(config: &Path, data: &Path) -> Regproxy {
    Regproxy::start_with_args(&[
        OsStr::new("serve"),
        OsStr::new("--config"),
        config.as_os_str(),
        OsStr::new("--listen"),
        OsStr::new("127.0.0.1:0"),
        OsStr::new("--data"),
        data.as_os_str(),
    ])
}

/// Starts `regproxy serve --config CONFIG` with its listener and admin
/// listener on `127.0.0.1:0` and its storage as the config says (several
/// instances on one bucket each start this way).
pub fn serve_loopback(config: &Path) -> Regproxy {
    Regproxy::start_with_args(&[
        OsStr::new("serve"),
        OsStr::new("--config"),
        config.as_os_str(),
        OsStr::new("--listen"),
        OsStr::new("127.0.0.1:0"),
        OsStr::new("--admin-listen"),
        OsStr::new("127.0.0.1:0"),
    ])
}

/// Writes `yaml` to `DIR/proxy.yaml` and returns that path.
pub fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("proxy.yaml");
    std::fs::write(&path, yaml).expect("write proxy.yaml");
    path
}

/// Adds (or replaces) users in an htpasswd file, with bcrypt cost 4 (the
/// minimum, for speed).
pub fn add_users(file: &Path, users: &[(&str, &str)]) {
    use ::regproxy::auth::{htpasswd, secret::Secret};
    for (user, password) in users {
        let hash = htpasswd::hash_password(&Secret::new(*password), 4).expect("hash");
        htpasswd::edit(file, |f| f.set(user, hash)).expect("edit htpasswd");
    }
}
