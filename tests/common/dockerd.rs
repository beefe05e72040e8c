//! A private Docker engine (docker.io's dockerd 20.10) without systemd: its own
//! socket, data root, exec root and pidfile in a short temp dir under /tmp.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::netns::wrapped_command;
use super::process::{run, run_ok, Proc};
use super::{require_tool, short_temp_dir, tail_file, DOCKER, DOCKERD};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(20);
/// Upper bound for one docker CLI command (build, push, pull, ...).
pub const DOCKER_CMD_TIMEOUT: Duration = Duration::from_secs(180);

/// A running dockerd. Dropping it stops it by pid (SIGTERM, bounded wait,
/// SIGKILL) and removes its directories.
pub struct Dockerd {
    proc: Proc,
    dir: tempfile::TempDir,
    sock: PathBuf,
    cli_config: PathBuf,
    exec_root: PathBuf,
    log_path: PathBuf,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        Self::start_wrapped::<&str>(&[])
    }

    /// Like [`Dockerd::start`], but runs `WRAPPER... dockerd ARGS`, e.g. to
    /// start the engine of a second host inside a network namespace (see
    /// `netns::Netns::enter`). The wrapper must exec dockerd, so that the
    /// pid this guard stops is the engine's.
    pub fn start_wrapped<W: AsRef<OsStr>>(wrapper: &[W]) -> Dockerd {
        let dockerd = require_tool(DOCKERD, "docker.io");
        require_tool(DOCKER, "docker.io");
        // Short path: the socket path must stay under 108 bytes.
        let dir = short_temp_dir("rpd");
        let d = dir.path();
        let sock = d.join("d.sock");
        let exec_root = d.join("x");
        let cli_config = d.join("cli");
        let log_path = d.join("dockerd.log");
        fs::create_dir_all(&cli_config).expect("create docker CLI config dir");
        fs::write(cli_config.join("config.json"), "{}\n").expect("write CLI config");
        // An empty daemon config so /etc/docker/daemon.json cannot interfere.
        fs::write(d.join("daemon.json"), "{}\n").expect("write daemon.json");

        let log = File::create(&log_path).expect("create dockerd log");
        let log_err = log.try_clone().expect("clone log handle");
        let mut cmd = wrapped_command(wrapper, dockerd);
        cmd.arg("--iptables=false")
            .arg("--ip-masq=false")
            .arg("--bridge=none")
            .arg("--storage-driver=vfs")
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .arg("--data-root")
            .arg(d.join("root"))
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("--pidfile")
            .arg(d.join("d.pid"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let proc = Proc::spawn("dockerd", &mut cmd);
        let mut engine = Dockerd {
            proc,
            sock,
            cli_config,
            exec_root,
            log_path,
            dir,
        };
        engine.wait_ready();
        engine
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.proc.try_exit_status() {
                panic!(
                    "dockerd exited ({status}) during start:\n{}",
                    tail_file(&self.log_path, 60)
                );
            }
            let mut cmd = self.command(["info", "--format", "{{.ServerVersion}}"]);
            if run(&mut cmd, Duration::from_secs(10)).status.success() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "dockerd did not answer `docker info` within {READY_TIMEOUT:?}:\n{}",
                    tail_file(&self.log_path, 60)
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// `/usr/bin/docker ARGS` against this engine, with a private CLI config
    /// and the legacy builder; bounded by [`DOCKER_CMD_TIMEOUT`].
    pub fn docker<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(&mut self.command(args), DOCKER_CMD_TIMEOUT)
    }

    /// Like [`Dockerd::docker`] but panics unless the command succeeds;
    /// returns its stdout.
    pub fn docker_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = run_ok(&mut self.command(args), DOCKER_CMD_TIMEOUT);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The docker CLI command, ready to add more options or env to.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(DOCKER);
        cmd.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", &self.cli_config)
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH");
        cmd
    }

    /// `docker build` (legacy builder: each COPY is a layer); returns the
    /// image ID.
    pub fn build(&self, context: &Path, tag: &str) -> String {
        let ctx = context.to_str().expect("utf-8 path");
        self.docker_ok(["build", "-q", "-t", tag, ctx])
            .trim()
            .to_string()
    }

    /// `docker image inspect --format FORMAT IMAGE`, trimmed.
    pub fn inspect(&self, image: &str, format: &str) -> String {
        self.docker_ok(["image", "inspect", "--format", format, image])
            .trim()
            .to_string()
    }

    /// Directory for files the test wants next to the engine (short path).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> &Path {
        &self.sock
    }

    pub fn cli_config_dir(&self) -> &Path {
        &self.cli_config
    }

    pub fn logs(&self) -> String {
        tail_file(&self.log_path, usize::MAX)
    }

    /// Kills the containerd that dockerd started, if it is still running
    /// (only after dockerd itself had to be SIGKILLed). The pid is checked
    /// against its command line so a reused pid is never signalled.
    fn kill_leftover_containerd(&self) {
        let pidfile = self.exec_root.join("containerd").join("containerd.pid");
        let Some(pid) = fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<libc::pid_t>().ok())
        else {
            return;
        };
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let ours = String::from_utf8_lossy(&cmdline).contains(&*self.exec_root.to_string_lossy());
        if pid > 0 && ours {
            // SAFETY: kill(2) touches no memory; the pid was just checked to
            // be the containerd of this engine.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- dockerd log (last 40 lines) ---\n{}",
                tail_file(&self.log_path, 40)
            );
        }
        let (_, clean) = self.proc.terminate(STOP_GRACE);
        if !clean {
            self.kill_leftover_containerd();
        }
        // The TempDir removes the directories (best effort: vfs layers are
        // full copies and may be large).
    }
}
