//! Garage, the S3-compatible distributed object store (a test server only,
//! never linked into regproxy): one node on loopback in a temp dir, with a
//! bucket and an access key, stopped by pid when the guard drops.
//!
//! The binary is `/opt/regproxy-tools/garage-2.5.0/bin/garage` (installed
//! once per machine by `./scripts/test.sh`, about 14 minutes), or
//! `$REGPROXY_GARAGE`. Missing, the test fails with the command that
//! installs it; it never skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{free_port, output_text, run, Proc};
use super::{tail_file, temp_dir};

pub const GARAGE_DEFAULT: &str = "/opt/regproxy-tools/garage-2.5.0/bin/garage";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The garage binary, or a panic saying how to install it.
pub fn garage_binary() -> PathBuf {
    let path = std::env::var_os("REGPROXY_GARAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(GARAGE_DEFAULT));
    if !path.is_file() {
        panic!(
            "the Garage S3 server is missing at {}: install it with \
             `cargo install garage --version 2.5.0 --locked --root /opt/regproxy-tools/garage-2.5.0` \
             (about 14 minutes, once per machine; ./scripts/test.sh does it), \
             or point REGPROXY_GARAGE at a garage 2.x binary",
            path.display()
        );
    }
    path
}

/// A running single-node Garage with one key allowed on the buckets it makes.
pub struct Garage {
    proc: Proc,
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
}

impl Garage {
    /// Starts Garage and creates `bucket`. Free ports are probed (Garage's
    /// RPC address must be known in its config); a clash is retried.
    pub fn start(bucket: &str) -> Garage {
        let binary = garage_binary();
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(&binary) {
                Ok(g) => {
                    g.create_bucket(bucket);
                    return g;
                }
                Err(e) => last = e,
            }
        }
        panic!("Garage did not start (3 tries):\n{last}");
    }

    fn try_start(binary: &Path) -> Result<Garage, String> {
        let dir = temp_dir("garage-");
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let secret: String = (0..32).map(|_| format!("{:02x}", rand_byte())).collect();
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
                 root_domain = \".s3.garage.localhost\"\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n",
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
            ),
        )
        .map_err(|e| e.to_string())?;
        let log = dir.path().join("garage.log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(binary);
        cmd.arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file);
        let proc = Proc::spawn("garage server", &mut cmd);
        let mut g = Garage {
            proc,
            binary: binary.to_path_buf(),
            config,
            log,
            dir,
            endpoint: format!("http://127.0.0.1:{s3}"),
            key_id: String::new(),
            secret: String::new(),
        };
        // The node id, once the RPC layer answers.
        let deadline = Instant::now() + START_TIMEOUT;
        let node = loop {
            if g.proc.try_exit_status().is_some() {
                return Err(format!("garage exited:\n{}", tail_file(&g.log, 30)));
            }
            let out = g.cli_out(&["node", "id", "-q"]);
            if out.status.success() {
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                if let Some(id) = text.trim().split('@').next().filter(|s| !s.is_empty()) {
                    break id.to_string();
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "garage did not answer `node id` within {START_TIMEOUT:?}:\n{}\n{}",
                    output_text(&out),
                    tail_file(&g.log, 30)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        g.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        g.cli(&["layout", "apply", "--version", "1"]);
        let out = g.cli(&["key", "create", "regproxy-test"]);
        for line in out.lines() {
            if let Some(v) = line.trim().strip_prefix("Key ID:") {
                g.key_id = v.trim().to_string();
            }
            if let Some(v) = line.trim().strip_prefix("Secret key:") {
                g.secret = v.trim().to_string();
            }
        }
        if g.key_id.is_empty() || g.secret.is_empty() {
            return Err(format!(
                "cannot read the key from `garage key create`:\n{out}"
            ));
        }
        Ok(g)
    }

    fn cli_out(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-c").arg(&self.config).args(args);
        run(&mut cmd, Duration::from_secs(30))
    }

    /// Runs `garage -c CONFIG ARGS`, retried for a while (the layout takes
    /// a moment to settle); panics with its output if it keeps failing.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut last = None;
        for _ in 0..50 {
            let out = self.cli_out(args);
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).to_string();
            }
            last = Some(out);
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "garage {args:?} failed:\n{}\n--- garage log ---\n{}",
            last.map(|o| output_text(&o)).unwrap_or_default(),
            tail_file(&self.log, 30)
        );
    }

    /// Creates a bucket the test key may read, write and own.
    pub fn create_bucket(&self, bucket: &str) {
        self.cli(&["bucket", "create", bucket]);
        self.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket,
            "--key",
            "regproxy-test",
        ]);
    }

    /// Writes the key as an env file (`AWS_ACCESS_KEY_ID=...`) in `dir`.
    pub fn credentials_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("s3.env");
        std::fs::write(
            &path,
            format!(
                "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
                self.key_id, self.secret
            ),
        )
        .expect("write the S3 credentials file");
        path
    }

    /// A `storage:` block for `proxy.yaml` on `bucket` under `prefix`.
    pub fn storage_yaml(&self, bucket: &str, prefix: &str, credentials: &Path) -> String {
        format!(
            "storage:\n  s3:\n    endpoint: {}\n    region: garage\n    bucket: {bucket}\n    \
             prefix: \"{prefix}\"\n    path_style: true\n    credentials_file: {}\n",
            self.endpoint,
            credentials.display()
        )
    }

    /// Keys of the incomplete multipart uploads in `bucket`
    /// (ListMultipartUploads, signed by curl's `--aws-sigv4`).
    pub fn multipart_uploads(&self, bucket: &str) -> Vec<String> {
        super::require_tool("curl", "curl");
        let empty_sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let out = super::process::run_ok(
            Command::new("curl")
                .args([
                    "-sS",
                    "--fail-with-body",
                    "--aws-sigv4",
                    "aws:amz:garage:s3",
                    "--user",
                ])
                .arg(format!("{}:{}", self.key_id, self.secret))
                .arg("-H")
                .arg(format!("x-amz-content-sha256: {empty_sha}"))
                .arg(format!("{}/{bucket}/?uploads=", self.endpoint)),
            Duration::from_secs(30),
        );
        let xml = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            xml.contains("ListMultipartUploadsResult"),
            "ListMultipartUploads answered:\n{xml}"
        );
        xml.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The node's temp dir (config, metadata, data, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn logs(&self) -> String {
        tail_file(&self.log, 50)
    }

    /// Stops the node (SIGKILL by pid), e.g. to see the store go away.
    pub fn kill9(&mut self) {
        self.proc.kill9();
    }
}

fn rand_byte() -> u8 {
    use std::io::Read;
    let mut b = [0u8; 1];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("read /dev/urandom");
    b[0]
}
