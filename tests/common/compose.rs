//! The deployment files under test with the real Docker engine: the
//! statically linked release binary built exactly as the README says
//! (reused between runs from its own target dir), a build context in a temp
//! dir holding the repository's own `Dockerfile` and `compose.yaml`, and a
//! `docker-compose` project whose guard runs `down` on drop (also when the
//! test panics), before the engine is stopped.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use super::process::{output_text, run};
use super::{require_tool, Dockerd};

/// The target the README builds for, and the static build's own target dir
/// (under the repository's `target/`, so a second run is incremental).
const TARGET: &str = "x86_64-unknown-linux-gnu";
const STATIC_TARGET_DIR: &str = "target/static";
/// A cold release build on 2 shared cores takes minutes.
const BUILD_TIMEOUT: Duration = Duration::from_secs(1800);
const COMPOSE_TIMEOUT: Duration = Duration::from_secs(300);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds `regproxy` with `RUSTFLAGS='-C target-feature=+crt-static' cargo
/// build --release --target x86_64-unknown-linux-gnu` and returns the
/// binary's path; panics unless it is a static executable.
pub fn build_static_binary() -> PathBuf {
    let root = repo_root();
    let target_dir = root.join(STATIC_TARGET_DIR);
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--bin",
            "regproxy",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET");
    let started = Instant::now();
    let out = run(&mut cmd, BUILD_TIMEOUT);
    assert!(
        out.status.success(),
        "the static release build failed:\n{}",
        output_text(&out)
    );
    eprintln!("static release build: {:?}", started.elapsed());
    let binary = target_dir.join(TARGET).join("release/regproxy");
    assert_static_executable(&binary);
    binary
}

/// Panics unless `path` is an ELF executable without a program interpreter
/// (no `PT_INTERP`: the kernel runs it without ld.so, as in a `FROM scratch`
/// image) and `ldd` calls it static.
pub fn assert_static_executable(path: &Path) {
    let elf = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        elf.len() > 64 && elf.starts_with(b"\x7fELF") && elf[4] == 2 && elf[5] == 1,
        "{} is not a 64-bit little-endian ELF file",
        path.display()
    );
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&elf[o..o + 8]);
        u64::from_le_bytes(b) as usize
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let p_type = u32::from_le_bytes([elf[at], elf[at + 1], elf[at + 2], elf[at + 3]]);
        assert_ne!(
            p_type,
            PT_INTERP,
            "{} has a program interpreter (dynamically linked): the crt-static build did not take",
            path.display()
        );
    }
    let ldd = run(
        Command::new(require_tool("ldd", "libc-bin")).arg(path),
        Duration::from_secs(30),
    );
    let text = output_text(&ldd);
    assert!(
        text.contains("not a dynamic executable") || text.contains("statically linked"),
        "ldd lists libraries for {}:\n{text}",
        path.display()
    );
}

/// A compose directory as the README sets it up: the repository's
/// `Dockerfile` and `compose.yaml`, the binary at `contrib/regproxy`, the
/// given `proxy.yaml`, an empty `htpasswd` and empty `data/` and `certs/`.
pub fn compose_dir(dir: &Path, binary: &Path, proxy_yaml: &str) {
    let root = repo_root();
    fs::create_dir_all(dir.join("contrib")).expect("create contrib/");
    for file in ["Dockerfile", "compose.yaml"] {
        fs::copy(root.join(file), dir.join(file)).unwrap_or_else(|e| panic!("copy {file}: {e}"));
    }
    fs::copy(binary, dir.join("contrib/regproxy")).expect("copy the binary");
    fs::write(dir.join("proxy.yaml"), proxy_yaml).expect("write proxy.yaml");
    fs::write(dir.join("htpasswd"), "").expect("touch htpasswd");
    fs::create_dir_all(dir.join("data")).expect("mkdir data");
    fs::create_dir_all(dir.join("certs")).expect("mkdir certs");
}

/// A `docker-compose -p NAME` project in `dir`, talking to `engine`.
/// Dropping it runs `down` (bounded).
pub struct Compose<'a> {
    engine: &'a Dockerd,
    dir: PathBuf,
    project: String,
    env: Vec<(String, String)>,
}

impl<'a> Compose<'a> {
    /// `env` is given to every `docker-compose` command (e.g. the ports).
    pub fn new(engine: &'a Dockerd, dir: &Path, env: &[(&str, &str)]) -> Compose<'a> {
        require_tool("docker-compose", "docker-compose");
        Compose {
            engine,
            dir: dir.to_path_buf(),
            project: format!("rpcompose{}", std::process::id()),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(require_tool("docker-compose", "docker-compose"));
        cmd.current_dir(&self.dir)
            .args(["--ansi", "never", "-p", &self.project])
            .args(args)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.engine.socket().display()),
            )
            .env("DOCKER_CONFIG", self.engine.cli_config_dir())
            // The classic builder through the engine API: no buildx, no pull.
            .env("COMPOSE_DOCKER_CLI_BUILD", "0")
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("DOCKER_CONTEXT");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `docker-compose ARGS` (bounded); the output whatever the status.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(&mut self.command(args), COMPOSE_TIMEOUT)
    }

    /// `docker-compose ARGS`; panics unless it succeeds; returns stdout and
    /// stderr together (compose reports progress on stderr).
    pub fn run_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(args);
        let what = format!("{cmd:?}");
        let out = run(&mut cmd, COMPOSE_TIMEOUT);
        assert!(
            out.status.success(),
            "{what} failed:\n{}\n--- service logs ---\n{}",
            output_text(&out),
            self.logs()
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Everything the services printed so far.
    pub fn logs(&self) -> String {
        let out = self.run(["logs", "--no-color"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (bounded) until the service logs contain `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            assert!(
                Instant::now() < deadline,
                "the services did not log {needle:?} within {timeout:?}:\n{logs}"
            );
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// The host port published for `SERVICE`'s `port` on IPv4 or on IPv6.
    /// With host port 0 the engine (20.10) may pick different ports for
    /// the two, and `docker-compose port` names only the IPv4 one, so this
    /// asks `docker port` for the service's container.
    pub fn host_port(&self, service: &str, port: u16, ipv6: bool) -> u16 {
        let ps = self.run_ok(["ps", "-q", service]);
        let id = ps
            .lines()
            .find(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_hexdigit()))
            .unwrap_or_else(|| panic!("no container for {service}: {ps:?}"));
        let out = self.engine.docker_ok(["port", id, &format!("{port}/tcp")]);
        out.lines()
            // `0.0.0.0:32768`, `127.0.0.1:32768`; `:::32769` or `[::]:32769`
            .filter(|l| (l.starts_with(':') || l.starts_with('[')) == ipv6)
            .find_map(|l| l.trim().rsplit(':').next()?.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "`docker port {id} {port}` names no IPv{} port: {out:?}",
                    if ipv6 { 6 } else { 4 }
                )
            })
    }
}

impl Drop for Compose<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("--- compose logs ---\n{}", self.logs());
        }
        let out = self.run(["down", "--remove-orphans", "--timeout", "20"]);
        if !out.status.success() {
            eprintln!(
                "cleanup: docker-compose down failed:\n{}",
                output_text(&out)
            );
        }
    }
}
