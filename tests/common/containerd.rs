//! A containerd daemon of its own for `ctr` tests (root, state and socket
//! in a temp dir, stopped by pid), and the `hosts.toml` directory that
//! tells `ctr` how to reach (and whether to trust) a registry.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{path_str, require_tool, run, tail_file, Proc};

const TIMEOUT: Duration = Duration::from_secs(60);

/// A containerd daemon of its own (root, state and socket in `dir`).
pub struct Containerd {
    _proc: Proc,
    socket: String,
}

impl Containerd {
    pub fn start(dir: &Path) -> Containerd {
        let containerd = require_tool("/usr/bin/containerd", "containerd");
        let socket = dir.join("c.sock");
        let log = std::fs::File::create(dir.join("containerd.log")).expect("log file");
        let proc = Proc::spawn(
            "containerd",
            Command::new(containerd)
                .arg("--root")
                .arg(dir.join("root"))
                .arg("--state")
                .arg(dir.join("state"))
                .arg("--address")
                .arg(&socket)
                .stdout(log.try_clone().expect("log file"))
                .stderr(log),
        );
        let c = Containerd {
            _proc: proc,
            socket: path_str(&socket).to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if run(&mut c.ctr(&["version"]), TIMEOUT).status.success() {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer within 20 s: {}",
                tail_file(&dir.join("containerd.log"), 40)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn ctr(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(require_tool("/usr/bin/ctr", "containerd"));
        cmd.args(["--address", &self.socket]).args(args);
        cmd
    }
}

/// `hosts/HOST/hosts.toml` for `host`, with the CA if `ca` is given.
pub fn hosts_dir(dir: &Path, host: &str, ca: Option<&Path>) -> String {
    let d = dir.join(host);
    std::fs::create_dir_all(&d).unwrap();
    let mut toml = format!(
        "server = \"https://{host}\"\n[host.\"https://{host}\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n"
    );
    if let Some(ca) = ca {
        std::fs::copy(ca, d.join("ca.crt")).unwrap();
        toml.push_str(&format!("  ca = \"{}\"\n", d.join("ca.crt").display()));
    }
    std::fs::write(d.join("hosts.toml"), toml).unwrap();
    path_str(dir).to_string()
}
