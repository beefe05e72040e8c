//! Garage, the S3-compatible distributed object store (a test server only,
//! never linked into regproxy): one node on loopback in a temp dir
//! ([`Garage`]), with a bucket and an access key, stopped by pid when the
//! guard drops. [`GarageNode`] is one `garage server` process with its own
//! dirs and ports; `garage_cluster` builds three of them into one cluster.
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
/// The name of the access key every fixture creates.
pub const KEY_NAME: &str = "regproxy-test";

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

/// One `garage server` process: its temp dir (config, metadata, data,
/// log) and its loopback ports. Dropping it kills the process by pid.
pub struct GarageNode {
    proc: Proc,
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// `127.0.0.1:PORT` of the RPC listener.
    pub rpc_addr: String,
    /// The full node id (hex), known once the node answers.
    pub id: String,
}

impl GarageNode {
    /// Writes the config and starts the process; waits (bounded) until it
    /// answers `node id`. Free ports are probed (Garage's RPC address must
    /// be in its config), so a clash is an `Err` the caller retries.
    pub fn spawn(binary: &Path, replication: u8, rpc_secret: &str) -> Result<GarageNode, String> {
        let dir = temp_dir("garage-");
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let config = dir.path().join("garage.toml");
        let consistency = if replication > 1 {
            "consistency_mode = \"consistent\"\n"
        } else {
            ""
        };
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = {replication}\n{consistency}\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{rpc_secret}\"\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
                 root_domain = \".s3.garage.localhost\"\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n",
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
            ),
        )
        .map_err(|e| e.to_string())?;
        let log = dir.path().join("garage.log");
        let proc = Self::start_process(binary, &config, &log)?;
        let mut node = GarageNode {
            proc,
            binary: binary.to_path_buf(),
            config,
            log,
            dir,
            endpoint: format!("http://127.0.0.1:{s3}"),
            rpc_addr: format!("127.0.0.1:{rpc}"),
            id: String::new(),
        };
        node.id = node.wait_id()?;
        Ok(node)
    }

    fn start_process(binary: &Path, config: &Path, log: &Path) -> Result<Proc, String> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| e.to_string())?;
        let mut cmd = Command::new(binary);
        cmd.arg("-c")
            .arg(config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file);
        Ok(Proc::spawn("garage server", &mut cmd))
    }

    /// The node id, once the RPC layer answers (bounded).
    fn wait_id(&mut self) -> Result<String, String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.proc.try_exit_status().is_some() {
                return Err(format!("garage exited:\n{}", tail_file(&self.log, 30)));
            }
            let out = self.cli_out(&["node", "id", "-q"]);
            if out.status.success() {
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                if let Some(id) = text.trim().split('@').next().filter(|s| !s.is_empty()) {
                    return Ok(id.to_string());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "garage did not answer `node id` within {START_TIMEOUT:?}:\n{}\n{}",
                    output_text(&out),
                    tail_file(&self.log, 30)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts the process again on the same config, dirs and ports (after
    /// [`GarageNode::kill9`]); waits until it answers.
    pub fn restart(&mut self) {
        self.proc.kill9();
        self.proc = Self::start_process(&self.binary, &self.config, &self.log)
            .unwrap_or_else(|e| panic!("restart garage: {e}"));
        let id = self
            .wait_id()
            .unwrap_or_else(|e| panic!("restarted garage: {e}"));
        assert_eq!(id, self.id, "the restarted node kept its identity");
    }

    pub fn cli_out(&self, args: &[&str]) -> std::process::Output {
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

    /// Creates the access key [`KEY_NAME`]: (key id, secret).
    pub fn create_key(&self) -> Result<(String, String), String> {
        let out = self.cli(&["key", "create", KEY_NAME]);
        let (mut id, mut secret) = (String::new(), String::new());
        for line in out.lines() {
            if let Some(v) = line.trim().strip_prefix("Key ID:") {
                id = v.trim().to_string();
            }
            if let Some(v) = line.trim().strip_prefix("Secret key:") {
                secret = v.trim().to_string();
            }
        }
        if id.is_empty() || secret.is_empty() {
            return Err(format!(
                "cannot read the key from `garage key create`:\n{out}"
            ));
        }
        Ok((id, secret))
    }

    /// Creates a bucket the test key may read, write and own.
    pub fn create_bucket(&self, bucket: &str) {
        self.cli(&["bucket", "create", bucket]);
        self.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", bucket, "--key", KEY_NAME,
        ]);
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn alive(&mut self) -> bool {
        self.proc.try_exit_status().is_none()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn logs(&self) -> String {
        tail_file(&self.log, 50)
    }

    /// SIGKILL by pid.
    pub fn kill9(&mut self) {
        self.proc.kill9();
    }
}

/// A fresh `rpc_secret` (32 random bytes, hex).
pub fn rpc_secret() -> String {
    (0..32).map(|_| format!("{:02x}", rand_byte())).collect()
}

/// Writes an access key as an env file (`AWS_ACCESS_KEY_ID=...`) in `dir`.
pub fn write_credentials(dir: &Path, key_id: &str, secret: &str) -> PathBuf {
    let path = dir.join("s3.env");
    std::fs::write(
        &path,
        format!("AWS_ACCESS_KEY_ID={key_id}\nAWS_SECRET_ACCESS_KEY={secret}\n"),
    )
    .expect("write the S3 credentials file");
    path
}

/// A `storage:` block for `proxy.yaml` on `bucket` under `prefix`.
pub fn s3_storage_yaml(endpoint: &str, bucket: &str, prefix: &str, credentials: &Path) -> String {
    format!(
        "storage:\n  s3:\n    endpoint: {endpoint}\n    region: garage\n    bucket: {bucket}\n    \
         prefix: \"{prefix}\"\n    path_style: true\n    credentials_file: {}\n",
        credentials.display()
    )
}

/// A running single-node Garage with one key allowed on the buckets it makes.
pub struct Garage {
    node: GarageNode,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
}

impl Garage {
    /// Starts Garage and creates `bucket`; a port clash is retried.
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
        let node = GarageNode::spawn(binary, 1, &rpc_secret())?;
        node.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node.id]);
        node.cli(&["layout", "apply", "--version", "1"]);
        let (key_id, secret) = node.create_key()?;
        Ok(Garage {
            endpoint: node.endpoint.clone(),
            node,
            key_id,
            secret,
        })
    }

    /// Runs `garage -c CONFIG ARGS` (retried; panics if it keeps failing).
    pub fn cli(&self, args: &[&str]) -> String {
        self.node.cli(args)
    }

    /// Creates a bucket the test key may read, write and own.
    pub fn create_bucket(&self, bucket: &str) {
        self.node.create_bucket(bucket);
    }

    /// Writes the key as an env file (`AWS_ACCESS_KEY_ID=...`) in `dir`.
    pub fn credentials_file(&self, dir: &Path) -> PathBuf {
        write_credentials(dir, &self.key_id, &self.secret)
    }

    /// A `storage:` block for `proxy.yaml` on `bucket` under `prefix`.
    pub fn storage_yaml(&self, bucket: &str, prefix: &str, credentials: &Path) -> String {
        s3_storage_yaml(&self.endpoint, bucket, prefix, credentials)
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
        self.node.pid()
    }

    /// The node's temp dir (config, metadata, data, log).
    pub fn dir(&self) -> &Path {
        self.node.dir()
    }

    pub fn logs(&self) -> String {
        self.node.logs()
    }

    /// Stops the node (SIGKILL by pid), e.g. to see the store go away.
    pub fn kill9(&mut self) {
        self.node.kill9();
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
