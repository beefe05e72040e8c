//! CNCF Distribution (`/usr/bin/docker-registry`, Debian `docker-registry`),
//! the reference registry, serving a given storage root on 127.0.0.1.

use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::http::try_http_get;
use super::process::{free_port, Proc};
use super::{require_tool, tail_file, temp_dir, DISTRIBUTION};

const ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running Distribution. Dropping it kills the process by pid.
pub struct Distribution {
    proc: Proc,
    port: u16,
    dir: tempfile::TempDir,
}

impl Distribution {
    /// Serves `root` (filesystem driver, deletes enabled) on a free
    /// 127.0.0.1 port, and waits until `GET /v2/` answers 200.
    pub fn start(root: &Path) -> Distribution {
        let bin = require_tool(DISTRIBUTION, "docker-registry");
        let dir = temp_dir("distribution-");
        let config = dir.path().join("config.yml");
        let log_path = dir.path().join("distribution.log");
        let mut last_failure = String::new();
        // Distribution cannot bind port 0 and report it, so probe a free port
        // and retry if something else took it in the meantime.
        for _ in 0..ATTEMPTS {
            let port = free_port();
            fs::write(&config, config_yaml(root, port)).expect("write distribution config");
            let log = File::create(&log_path).expect("create distribution log");
            let log_err = log.try_clone().expect("clone log handle");
            let mut cmd = Command::new(&bin);
            cmd.arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err);
            // REGISTRY_* variables would override the config file.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("REGISTRY_") {
                    cmd.env_remove(key);
                }
            }
            let mut proc = Proc::spawn("docker-registry", &mut cmd);
            let deadline = Instant::now() + READY_TIMEOUT;
            let url = format!("http://127.0.0.1:{port}/v2/");
            loop {
                if let Some(status) = proc.try_exit_status() {
                    last_failure = format!("exited with {status}: {}", tail_file(&log_path, 40));
                    break;
                }
                if matches!(try_http_get(&url), Ok(resp) if resp.status == 200) {
                    return Distribution { proc, port, dir };
                }
                if Instant::now() >= deadline {
                    proc.kill9();
                    panic!(
                        "Distribution did not answer GET {url} within {READY_TIMEOUT:?}:\n{}",
                        tail_file(&log_path, 40)
                    );
                }
                thread::sleep(Duration::from_millis(100));
            }
            if !last_failure.contains("address already in use") {
                break;
            }
        }
        panic!("Distribution did not start: {last_failure}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as written in image names.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn logs(&self) -> String {
        tail_file(&self.dir.path().join("distribution.log"), usize::MAX)
    }

    /// Stops the registry now (SIGTERM, then SIGKILL), e.g. before another
    /// server takes over the same storage root.
    pub fn stop(mut self) {
        self.proc.terminate(Duration::from_secs(10));
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        self.proc.kill9();
        if thread::panicking() {
            eprintln!(
                "--- Distribution log (last 60 lines) ---\n{}",
                tail_file(&self.dir.path().join("distribution.log"), 60)
            );
        }
    }
}

fn config_yaml(root: &Path, port: u16) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  fields:\n    service: registry\n\
         storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        root = root.display()
    )
}
