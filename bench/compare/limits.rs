//! The machine and its limits, measured in the same run as the figures:
//! SHA-256 speed (the sha2 crate regproxy uses), AES-128-GCM speed
//! (`openssl speed`), writing a large file with fsync in the work
//! directory's filesystem, and nginx serving a static file over TLS with
//! the registries' certificate to this program's client; with `--s3`, the
//! Garage node's own multipart PUT and GET speed.

use std::fs::File;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::client::{tls_config, Target};
use crate::common::run;
use crate::data::Pool;
use crate::nginx::Nginx;
use crate::ops::{bounded, download_verified};
use crate::servers::{Setup, DISTRIBUTION, OPENSSL};
use crate::{Ctx, Params, Res};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_gib: f64,
    pub kernel: String,
    pub loadavg: String,
    pub distribution_version: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Limits {
    pub sha256_mbps: f64,
    pub aes_gcm_mbps: f64,
    pub disk_fsync_mbps: f64,
    pub nginx_tls_mbps: f64,
    pub nginx_protocol: String,
    /// `--s3`: one multipart PUT / one GET of the large blob, straight to
    /// Garage with the `object_store` crate (0 on the filesystem).
    pub s3_put_mbps: f64,
    pub s3_get_mbps: f64,
}

pub fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let mem_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let version = Command::new(DISTRIBUTION)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model,
        mem_gib: mem_kib / 1024.0 / 1024.0,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        loadavg: read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        distribution_version: version
            .split_whitespace()
            .last()
            .unwrap_or("2.8.x")
            .to_string(),
    }
}

pub fn measure(rt: &tokio::runtime::Runtime, setup: &Setup, p: &Params) -> Res<Limits> {
    let mut l = Limits {
        sha256_mbps: sha256_speed(p),
        aes_gcm_mbps: aes_gcm_speed(p)?,
        disk_fsync_mbps: disk_speed(setup, p)?,
        ..Limits::default()
    };
    let (mbps, proto) = nginx_speed(rt, setup, p)?;
    l.nginx_tls_mbps = mbps;
    l.nginx_protocol = proto.into();
    if let Some(s3) = &setup.s3 {
        let blob = Pool::new(4 << 20).blob(777, p.big_size);
        (l.s3_put_mbps, l.s3_get_mbps) = s3.speed(rt, &blob)?;
    }
    eprintln!("compare: limits {l:?}");
    Ok(l)
}

impl Limits {
    /// The better of two measurements of each limit (the run measures them
    /// at its start and at its end: a busy machine only slows them down).
    pub fn best_of(&self, other: &Limits) -> Limits {
        let nginx = if other.nginx_tls_mbps > self.nginx_tls_mbps {
            other
        } else {
            self
        };
        Limits {
            sha256_mbps: self.sha256_mbps.max(other.sha256_mbps),
            aes_gcm_mbps: self.aes_gcm_mbps.max(other.aes_gcm_mbps),
            disk_fsync_mbps: self.disk_fsync_mbps.max(other.disk_fsync_mbps),
            nginx_tls_mbps: nginx.nginx_tls_mbps,
            nginx_protocol: nginx.nginx_protocol.clone(),
            s3_put_mbps: self.s3_put_mbps.max(other.s3_put_mbps),
            s3_get_mbps: self.s3_get_mbps.max(other.s3_get_mbps),
        }
    }
}

/// Hashes a 64 MiB (quick: 4 MiB) buffer for about a second.
fn sha256_speed(p: &Params) -> f64 {
    let pool = Pool::new(if p.quick { 4 << 20 } else { 64 << 20 });
    let data = pool.bytes();
    let started = Instant::now();
    let mut bytes = 0u64;
    // Bounded: at most 64 passes or one second.
    for _ in 0..64 {
        let d = Sha256::digest(data);
        std::hint::black_box(d);
        bytes += data.len() as u64;
        if started.elapsed() > Duration::from_secs(1) {
            break;
        }
    }
    bytes as f64 / started.elapsed().as_secs_f64() / 1e6
}

/// `openssl speed -evp aes-128-gcm -bytes 16384 -seconds N`: the last
/// column (thousands of bytes per second).
fn aes_gcm_speed(p: &Params) -> Res<f64> {
    let secs = if p.quick { "1" } else { "2" };
    let out = run(
        Command::new(OPENSSL).args([
            "speed",
            "-evp",
            "aes-128-gcm",
            "-bytes",
            "16384",
            "-seconds",
            secs,
        ]),
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .rev()
        .find_map(|l| {
            l.split_whitespace()
                .last()?
                .strip_suffix('k')?
                .parse::<f64>()
                .ok()
        })
        .map(|k| k * 1000.0 / 1e6)
        .ok_or_else(|| format!("openssl speed: no result in:\n{text}"))
}

/// Writes `big_size` bytes to a file in the work dir, then fsync.
fn disk_speed(setup: &Setup, p: &Params) -> Res<f64> {
    let path = setup.root().join("disk-test.bin");
    let pool = Pool::new(4 << 20);
    let blob = pool.blob(0, p.big_size);
    let started = Instant::now();
    let mut f = File::create(&path).ctx("create the disk test file")?;
    for piece in blob.pieces(0, blob.len) {
        f.write_all(&piece).ctx("write the disk test file")?;
    }
    f.sync_all().ctx("fsync the disk test file")?;
    let secs = started.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path).ctx("remove the disk test file")?;
    Ok(p.big_size as f64 / secs / 1e6)
}

/// nginx serves a `big_size` random file over TLS; this program's client
/// downloads it (best of two) and checks every byte.
fn nginx_speed(
    rt: &tokio::runtime::Runtime,
    setup: &Setup,
    p: &Params,
) -> Res<(f64, &'static str)> {
    let prefix = setup.fresh_dir("nginx-")?;
    let www = prefix.path().join("www");
    std::fs::create_dir_all(&www).ctx("create nginx www")?;
    let pool = Pool::new(4 << 20);
    let blob = pool.blob(12345, p.big_size);
    let mut f = File::create(www.join("blob.bin")).ctx("create the static file")?;
    for piece in blob.pieces(0, blob.len) {
        f.write_all(&piece).ctx("write the static file")?;
    }
    drop(f);
    let nginx = Nginx::start(setup, prefix.path())?;
    let target = Target {
        addr: nginx.addr,
        tls: Some(tls_config(
            &std::fs::read(setup.certs.join("ca.crt")).ctx("read ca.crt")?,
            true,
        )?),
        auth: None,
    };
    let mut best = 0.0f64;
    let mut proto = "";
    for _ in 0..2 {
        let (secs, pr) = rt.block_on(bounded(
            "nginx download",
            Duration::from_secs(300),
            download_verified(&target, "/blob.bin", &blob.digest, blob.len),
        ))?;
        best = best.max(blob.len as f64 / secs / 1e6);
        proto = pr;
    }
    drop(nginx);
    Ok((best, proto))
}
