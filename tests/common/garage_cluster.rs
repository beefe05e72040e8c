//! Three Garage nodes on loopback as one cluster (replication factor 3,
//! consistency mode "consistent", one zone per node): the store for the
//! failure test. Each node is its own process with its own dirs and ports;
//! they are joined with `garage node connect`, given one layout, and
//! awaited (bounded) until `GetClusterHealth` says every node and every
//! partition is up. Every process is stopped by pid when the guard drops.
//!
//! With three copies and quorum two, one node may be down; two down leave
//! no quorum, and the survivor answers every S3 request with an error.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::garage::{garage_binary, rpc_secret, s3_storage_yaml, write_credentials, GarageNode};

const HEALTHY_TIMEOUT: Duration = Duration::from_secs(60);
pub const NODES: usize = 3;

/// A running three-node cluster with a key allowed on the buckets it makes.
pub struct GarageCluster {
    pub nodes: Vec<GarageNode>,
    pub key_id: String,
    pub secret: String,
}

impl GarageCluster {
    /// Starts three nodes, connects them, applies the layout, waits until
    /// healthy, creates the key and `bucket`. A port clash is retried.
    pub fn start(bucket: &str) -> GarageCluster {
        let binary = garage_binary();
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(&binary) {
                Ok(c) => {
                    c.nodes[0].create_bucket(bucket);
                    return c;
                }
                Err(e) => last = e,
            }
        }
        panic!("the Garage cluster did not start (3 tries):\n{last}");
    }

    fn try_start(binary: &Path) -> Result<GarageCluster, String> {
        let secret = rpc_secret();
        let mut nodes = Vec::new();
        for _ in 0..NODES {
            nodes.push(GarageNode::spawn(binary, NODES as u8, &secret)?);
        }
        let first = &nodes[0];
        for other in &nodes[1..] {
            first.cli(&[
                "node",
                "connect",
                &format!("{}@{}", other.id, other.rpc_addr),
            ]);
        }
        for (i, n) in nodes.iter().enumerate() {
            let zone = format!("dc{}", i + 1);
            first.cli(&["layout", "assign", "-z", &zone, "-c", "1G", &n.id]);
        }
        first.cli(&["layout", "apply", "--version", "1"]);
        let mut cluster = GarageCluster {
            nodes,
            key_id: String::new(),
            secret: String::new(),
        };
        cluster.wait_healthy(NODES)?;
        let (id, key) = cluster.nodes[0].create_key()?;
        cluster.key_id = id;
        cluster.secret = key;
        Ok(cluster)
    }

    /// `GetClusterHealth` as seen by node `via`.
    pub fn health(&self, via: usize) -> Option<serde_json::Value> {
        let out = self.nodes[via].cli_out(&["json-api", "GetClusterHealth"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Waits (bounded) until every live node sees `up` storage nodes
    /// connected and every partition with all its copies (`up` = 3) or
    /// with quorum (`up` = 2). Every node is asked: a restarted node may
    /// be seen by the others before it has reconnected to them.
    pub fn wait_healthy(&mut self, up: usize) -> Result<(), String> {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive())
            .collect();
        let deadline = Instant::now() + HEALTHY_TIMEOUT;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            last = live.iter().map(|&i| (i, self.health(i))).collect();
            let ok = last.iter().all(|(_, h)| {
                let Some(h) = h else { return false };
                let n = |k: &str| h[k].as_u64().unwrap_or(0);
                let partitions_ok = if up == NODES {
                    n("partitionsAllOk")
                } else {
                    n("partitionsQuorum")
                };
                n("storageNodesUp") as usize == up
                    && n("partitions") > 0
                    && partitions_ok == n("partitions")
            });
            if ok {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let logs: Vec<String> = live
            .iter()
            .map(|&i| format!("--- node {i} log ---\n{}", self.nodes[i].logs()))
            .collect();
        Err(format!(
            "the Garage cluster did not reach {up} healthy node(s) within \
             {HEALTHY_TIMEOUT:?}; last health per node: {last:?}\n{}",
            logs.join("\n")
        ))
    }

    /// The S3 endpoint of node `i`.
    pub fn endpoint(&self, i: usize) -> &str {
        &self.nodes[i].endpoint
    }

    /// Writes the key as an env file (`AWS_ACCESS_KEY_ID=...`) in `dir`.
    pub fn credentials_file(&self, dir: &Path) -> PathBuf {
        write_credentials(dir, &self.key_id, &self.secret)
    }

    /// A `storage:` block for `proxy.yaml` through node `via`'s S3 API.
    pub fn storage_yaml(&self, via: usize, bucket: &str, credentials: &Path) -> String {
        s3_storage_yaml(self.endpoint(via), bucket, "", credentials)
    }

    /// SIGKILL node `i` by pid.
    pub fn kill9(&mut self, i: usize) {
        self.nodes[i].kill9();
    }

    /// Starts node `i` again on its dirs and ports.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
    }
}
