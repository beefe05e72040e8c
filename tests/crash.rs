//! Crash durability of the storage layer: SIGKILL the server while many
//! clients push, restart it on the same data directory, and check that
//!
//! - every blob, manifest and tag the server acknowledged is still there,
//!   byte for byte;
//! - nothing half-written became visible (an unacknowledged blob is either
//!   absent or complete; no file under `blobs/` differs from its digest; no
//!   link points at missing content; every tag resolves);
//! - uploads in progress report an offset covering every acknowledged chunk
//!   and can be resumed from it to a correct blob;
//! - the restarted server removed the temp files of the crashed one.
//!
//! Some chunked uploads park before the kill (stop sending, or stall in the
//! middle of a PATCH body) so that resumable uploads exist in every cycle.
//! The kill/restart cycle runs [`CYCLES`] times on one directory; every cycle
//! re-checks everything acknowledged in the earlier ones.
//!
//! Long file: one scenario (kill -9 cycles during concurrent pushes) whose roles and checks belong together.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{random_bytes, sha256_hex, temp_dir, Regproxy, OCI_MANIFEST};
use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// Kill/restart cycles on one data directory.
const CYCLES: usize = 3;
/// Concurrent clients per cycle (roles: see [`Role::of`]).
const TASKS: usize = 24;
const CHUNK: usize = 256 * KIB;
/// Bytes a stalling client sends in its last PATCH before it stops sending.
const STALL_BYTES: usize = 6 * CHUNK;
const MIN_BLOB: usize = KIB;
const MAX_BLOB: usize = 8 * MIB;
/// Upper bound on the operations one client runs before the kill.
const MAX_OPS_PER_TASK: usize = 200;
/// The kill comes this long after the clients start (and after every
/// parking client has parked).
const KILL_AFTER_MS: (u64, u64) = (300, 800);
const PARK_TIMEOUT: Duration = Duration::from_secs(30);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const OCTET: &str = "application/octet-stream";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

#[test]
fn kill9_during_pushes_loses_no_acknowledged_write() {
    let seed = u64::from_le_bytes(random_bytes(8).try_into().expect("8 bytes"));
    eprintln!("crash test seed: {seed:#018x}");
    let mut rng = Rng(seed);
    let root = temp_dir("regproxy-crash-");
    let v2 = root.path().join("docker/registry/v2");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let mut ledger = Ledger::default();
    let mut server = Regproxy::start(root.path(), &[]);

    for cycle in 0..CYCLES {
        let delay =
            Duration::from_millis(KILL_AFTER_MS.0 + rng.below(KILL_AFTER_MS.1 - KILL_AFTER_MS.0));
        let logs = rt.block_on(storm(&mut server, cycle, delay, rng.next()));

        // The crashed state, before any recovery code runs.
        let mut problems = Vec::new();
        let before = scan_storage(&v2, &mut problems);
        let tmp = v2.join("_regproxy_tmp");
        std::fs::create_dir_all(tmp.join("planted-dir")).expect("plant a temp dir");
        std::fs::write(tmp.join("planted-dir/half-written"), b"x").expect("plant a temp file");
        std::fs::write(tmp.join(".planted"), b"x").expect("plant a temp file");

        server = Regproxy::start(root.path(), &[]);
        let leftovers = dir_entries(&tmp);
        if !leftovers.is_empty() {
            problems.push(format!(
                "the restarted server left temp files of the crashed one in {}: {leftovers:?}",
                tmp.display()
            ));
        }
        let stats = rt.block_on(verify(&server.url(), &mut ledger, logs, &mut problems));
        scan_storage(&v2, &mut problems);

        eprintln!(
            "cycle {cycle}: killed after {delay:?}; {} blob files on disk ({} temp files, \
             {} upload dirs at the crash); {stats}",
            before.blob_files, before.tmp_files, before.upload_dirs
        );
        assert!(
            problems.is_empty(),
            "cycle {cycle} (seed {seed:#018x}): {} problem(s) after kill -9 and restart:\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
        assert!(
            stats.resumed > 0,
            "cycle {cycle}: no upload in progress at the kill was resumed ({stats})"
        );
    }
    server.terminate(Duration::from_secs(10));
    eprintln!(
        "{CYCLES} kill/restart cycles in {:?}; {} blobs, {} manifests checked",
        started.elapsed(),
        ledger.blobs.len(),
        ledger.manifests.len()
    );
}

// ---------------------------------------------------------------------------
// Clients before the kill

/// What each client does; fixed per task index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// `POST ?digest=` with the whole blob, in a loop.
    Monolithic,
    /// `POST`, `PATCH` chunks, `PUT ?digest=`, in a loop.
    Chunked,
    /// Config and layer blobs, then an OCI manifest under a unique tag and
    /// under `latest`, in a loop.
    Manifests,
    /// One chunked upload that stops after a few chunks.
    Park,
    /// One chunked upload that stalls in the middle of a PATCH body.
    Stall,
}

impl Role {
    fn of(task: usize) -> Role {
        match task % 8 {
            0 | 1 => Role::Monolithic,
            2 | 3 => Role::Chunked,
            4 | 5 => Role::Manifests,
            6 => Role::Park,
            _ => Role::Stall,
        }
    }

    fn parks(self) -> bool {
        matches!(self, Role::Park | Role::Stall)
    }
}

/// What one client tried and what the server acknowledged. Updated before
/// and after every request, so it is complete whenever the kill comes.
#[derive(Default)]
struct TaskLog {
    blobs: Vec<BlobTry>,
    manifests: Vec<ManifestTry>,
    uploads: Vec<UploadTry>,
    /// Answers that a healthy server must not give (before the kill).
    unexpected: Vec<String>,
}

struct BlobTry {
    repo: String,
    digest: String,
    len: u64,
    acked: bool,
}

struct ManifestTry {
    repo: String,
    tag: String,
    digest: String,
    bytes: Arc<Vec<u8>>,
    acked: bool,
}

/// A chunked upload session (`POST` answered 202).
struct UploadTry {
    repo: String,
    /// Path (and query) of the session, from the last `Location`.
    path: String,
    data: Arc<Vec<u8>>,
    digest: String,
    /// Bytes the server acknowledged (its last `Range`, plus one).
    acked: u64,
    /// Bytes sent so far, acknowledged or not.
    sent: u64,
    put_sent: bool,
    done: bool,
}

type Log = Arc<Mutex<TaskLog>>;

struct Ctx {
    client: Client,
    base: String,
    cycle: usize,
    /// Parking clients that have parked (or given up).
    parked: AtomicUsize,
}

impl Ctx {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn signal_parked(&self, flag: &AtomicBool) {
        if !flag.swap(true, Ordering::SeqCst) {
            self.parked.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Why a client stopped.
enum Halt {
    /// The connection failed: the server is gone.
    Transport,
    /// The server answered something it must not.
    Unexpected(String),
}

/// Runs the clients against `server`, SIGKILLs it after `delay` (and after
/// every parking client parked), and returns what each client recorded.
async fn storm(server: &mut Regproxy, cycle: usize, delay: Duration, seed: u64) -> Vec<TaskLog> {
    let ctx = Arc::new(Ctx {
        client: client(),
        base: server.url(),
        cycle,
        parked: AtomicUsize::new(0),
    });
    let logs: Vec<Log> = (0..TASKS).map(|_| Log::default()).collect();
    let t0 = Instant::now();
    let handles: Vec<_> = logs
        .iter()
        .enumerate()
        .map(|(task, log)| {
            let seed = seed ^ (task as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            tokio::spawn(run_task(ctx.clone(), task, log.clone(), seed))
        })
        .collect();

    let parkers = (0..TASKS).filter(|&t| Role::of(t).parks()).count();
    while ctx.parked.load(Ordering::SeqCst) < parkers {
        if t0.elapsed() > PARK_TIMEOUT {
            server.kill9();
            panic!(
                "cycle {cycle}: only {} of {parkers} parking clients parked within \
                 {PARK_TIMEOUT:?}; unexpected answers: {:?}",
                ctx.parked.load(Ordering::SeqCst),
                logs.iter()
                    .flat_map(|l| l.lock().unwrap().unexpected.clone())
                    .collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Give stalled PATCH bodies a moment to reach the server's files.
    let parked_at = t0.elapsed() + Duration::from_millis(100);
    tokio::time::sleep(delay.max(parked_at).saturating_sub(t0.elapsed())).await;

    if let Some(status) = server.try_exit_status() {
        panic!("cycle {cycle}: the server exited on its own before the kill: {status}");
    }
    server.kill9();

    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    for (task, handle) in handles.into_iter().enumerate() {
        let abort = handle.abort_handle();
        match tokio::time::timeout_at(deadline, handle).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(_)) => {}
            Err(_) => {
                abort.abort();
                logs[task].lock().unwrap().unexpected.push(format!(
                    "task {task} did not stop within {DRAIN_TIMEOUT:?} of the kill"
                ));
            }
        }
    }
    logs.into_iter()
        .map(|l| std::mem::take(&mut *l.lock().unwrap()))
        .collect()
}

fn client() -> Client {
    // reqwest is built with rustls but no default crypto provider; plain
    // HTTP still needs one installed (a second install is a harmless error).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client")
}

async fn run_task(ctx: Arc<Ctx>, task: usize, log: Log, seed: u64) {
    let repo = format!("crash/t{task:02}");
    let mut rng = Rng(seed);
    let role = Role::of(task);
    let parked = Arc::new(AtomicBool::new(false));
    let result = match role {
        Role::Monolithic => monolithic_loop(&ctx, &log, &repo, &mut rng).await,
        Role::Chunked => chunked_loop(&ctx, &log, &repo, &mut rng).await,
        Role::Manifests => manifest_loop(&ctx, &log, &repo, &mut rng).await,
        Role::Park | Role::Stall => {
            let after_chunks = rng.below(4) as usize;
            let stall = role == Role::Stall;
            let len = after_chunks * CHUNK
                + if stall {
                    STALL_BYTES + CHUNK
                } else {
                    2 * CHUNK
                }
                + rng.below(MIB as u64) as usize;
            let park = Park {
                after_chunks,
                stall,
                parked: parked.clone(),
            };
            let data = Arc::new(random_bytes(len));
            chunked_upload(&ctx, &log, &repo, data, Some(park)).await
        }
    };
    if role.parks() {
        ctx.signal_parked(&parked);
    }
    if let Err(Halt::Unexpected(msg)) = result {
        log.lock()
            .unwrap()
            .unexpected
            .push(format!("task {task} ({role:?}, {repo}): {msg}"));
    }
}

async fn monolithic_loop(ctx: &Ctx, log: &Log, repo: &str, rng: &mut Rng) -> Result<(), Halt> {
    for _ in 0..MAX_OPS_PER_TASK {
        let len = rng.blob_len(MAX_BLOB);
        push_blob(ctx, log, repo, random_bytes(len)).await?;
    }
    Ok(())
}

async fn chunked_loop(ctx: &Arc<Ctx>, log: &Log, repo: &str, rng: &mut Rng) -> Result<(), Halt> {
    for _ in 0..MAX_OPS_PER_TASK {
        let len = rng.blob_len(MAX_BLOB);
        chunked_upload(ctx, log, repo, Arc::new(random_bytes(len)), None).await?;
    }
    Ok(())
}

async fn manifest_loop(ctx: &Ctx, log: &Log, repo: &str, rng: &mut Rng) -> Result<(), Halt> {
    for n in 0..MAX_OPS_PER_TASK {
        let mut layers = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let len = rng.blob_len(MIB);
            let digest = push_blob(ctx, log, repo, random_bytes(len)).await?;
            layers.push(json!({"mediaType": OCI_LAYER, "digest": digest, "size": len}));
        }
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"nonce": format!("{:016x}", rng.next())}},
            "rootfs": {"type": "layers", "diff_ids": []},
        }))
        .expect("config JSON");
        let config_len = config.len();
        let config_digest = push_blob(ctx, log, repo, config).await?;
        let manifest = Arc::new(
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_len},
                "layers": layers,
            }))
            .expect("manifest JSON"),
        );
        let digest = format!("sha256:{}", sha256_hex(&manifest));
        for tag in [format!("c{}-m{n}", ctx.cycle), "latest".to_string()] {
            let idx = {
                let mut l = log.lock().unwrap();
                l.manifests.push(ManifestTry {
                    repo: repo.to_string(),
                    tag: tag.clone(),
                    digest: digest.clone(),
                    bytes: manifest.clone(),
                    acked: false,
                });
                l.manifests.len() - 1
            };
            let what = format!("PUT manifest {repo}:{tag}");
            let req = ctx
                .client
                .put(ctx.url(&format!("/v2/{repo}/manifests/{tag}")))
                .header(CONTENT_TYPE, OCI_MANIFEST)
                .body(manifest.to_vec());
            let resp = expect(req, StatusCode::CREATED, &what).await?;
            check_digest_header(&resp, &digest, &what)?;
            log.lock().unwrap().manifests[idx].acked = true;
        }
    }
    Ok(())
}

/// Monolithic upload; returns the digest.
async fn push_blob(ctx: &Ctx, log: &Log, repo: &str, data: Vec<u8>) -> Result<String, Halt> {
    let digest = format!("sha256:{}", sha256_hex(&data));
    let idx = {
        let mut l = log.lock().unwrap();
        l.blobs.push(BlobTry {
            repo: repo.to_string(),
            digest: digest.clone(),
            len: data.len() as u64,
            acked: false,
        });
        l.blobs.len() - 1
    };
    let what = format!("monolithic POST of {digest} ({} bytes)", data.len());
    let req = ctx
        .client
        .post(ctx.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
        .header(CONTENT_TYPE, OCTET)
        .body(data);
    let resp = expect(req, StatusCode::CREATED, &what).await?;
    check_digest_header(&resp, &digest, &what)?;
    log.lock().unwrap().blobs[idx].acked = true;
    Ok(digest)
}

/// Where a parking client stops.
struct Park {
    after_chunks: usize,
    stall: bool,
    parked: Arc<AtomicBool>,
}

/// Chunked upload of `data`; with `park`, stops after some chunks (leaving
/// the session open) instead of finishing.
async fn chunked_upload(
    ctx: &Arc<Ctx>,
    log: &Log,
    repo: &str,
    data: Arc<Vec<u8>>,
    park: Option<Park>,
) -> Result<(), Halt> {
    let digest = format!("sha256:{}", sha256_hex(&data));
    let blob_idx = {
        let mut l = log.lock().unwrap();
        l.blobs.push(BlobTry {
            repo: repo.to_string(),
            digest: digest.clone(),
            len: data.len() as u64,
            acked: false,
        });
        l.blobs.len() - 1
    };
    let what = format!("POST start of a chunked upload in {repo}");
    let req = ctx
        .client
        .post(ctx.url(&format!("/v2/{repo}/blobs/uploads/")));
    let resp = expect(req, StatusCode::ACCEPTED, &what).await?;
    let mut path = location_path(&resp).map_err(|e| Halt::Unexpected(format!("{what}: {e}")))?;
    let up = {
        let mut l = log.lock().unwrap();
        l.uploads.push(UploadTry {
            repo: repo.to_string(),
            path: path.clone(),
            data: data.clone(),
            digest: digest.clone(),
            acked: 0,
            sent: 0,
            put_sent: false,
            done: false,
        });
        l.uploads.len() - 1
    };

    let mut offset = 0;
    let mut chunks = 0;
    while offset < data.len() {
        if let Some(park) = &park {
            if chunks == park.after_chunks {
                if park.stall {
                    return stalled_patch(ctx, log, up, &path, &data, offset, park).await;
                }
                ctx.signal_parked(&park.parked);
                return Ok(());
            }
        }
        let end = (offset + CHUNK).min(data.len());
        log.lock().unwrap().uploads[up].sent = end as u64;
        let what = format!("PATCH {path} bytes {offset}-{}", end - 1);
        let req = ctx
            .client
            .patch(ctx.url(&path))
            .header(CONTENT_RANGE, format!("{offset}-{}", end - 1))
            .header(CONTENT_TYPE, OCTET)
            .body(Bytes::copy_from_slice(&data[offset..end]));
        let resp = expect(req, StatusCode::ACCEPTED, &what).await?;
        if range_len(&resp) != Some(end as u64) {
            return Err(Halt::Unexpected(format!(
                "{what}: Range {:?}, expected 0-{}",
                resp.headers().get(RANGE),
                end - 1
            )));
        }
        path = location_path(&resp).map_err(|e| Halt::Unexpected(format!("{what}: {e}")))?;
        {
            let mut l = log.lock().unwrap();
            l.uploads[up].acked = end as u64;
            l.uploads[up].path = path.clone();
        }
        offset = end;
        chunks += 1;
    }

    log.lock().unwrap().uploads[up].put_sent = true;
    let what = format!("PUT {path} (finish {digest})");
    let req = ctx.client.put(ctx.url(&with_digest(&path, &digest)));
    let resp = expect(req, StatusCode::CREATED, &what).await?;
    check_digest_header(&resp, &digest, &what)?;
    let mut l = log.lock().unwrap();
    l.blobs[blob_idx].acked = true;
    l.uploads[up].done = true;
    Ok(())
}

/// Sends a PATCH whose body stops after [`STALL_BYTES`] and never ends: the
/// request is still in flight when the server is killed.
async fn stalled_patch(
    ctx: &Arc<Ctx>,
    log: &Log,
    up: usize,
    path: &str,
    data: &[u8],
    offset: usize,
    park: &Park,
) -> Result<(), Halt> {
    let stop = offset + STALL_BYTES;
    log.lock().unwrap().uploads[up].sent = stop as u64;
    let parts: Vec<io::Result<Bytes>> = data[offset..stop]
        .chunks(64 * KIB)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let (signal_ctx, parked) = (ctx.clone(), park.parked.clone());
    let tail = futures_util::stream::once(async move {
        signal_ctx.signal_parked(&parked);
        std::future::pending::<io::Result<Bytes>>().await
    });
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(parts).chain(tail));
    let sent = ctx
        .client
        .patch(ctx.url(path))
        .header(CONTENT_RANGE, format!("{offset}-{}", data.len() - 1))
        .header(CONTENT_TYPE, OCTET)
        .body(body)
        .send()
        .await;
    match sent {
        Err(_) => Err(Halt::Transport),
        Ok(resp) => Err(Halt::Unexpected(format!(
            "a PATCH whose body never ended was answered {} before the kill",
            resp.status()
        ))),
    }
}

async fn expect(req: RequestBuilder, want: StatusCode, what: &str) -> Result<Response, Halt> {
    let resp = req.send().await.map_err(|_| Halt::Transport)?;
    if resp.status() == want {
        return Ok(resp);
    }
    let status = resp.status();
    let body = resp
        .text()
        .await
        .unwrap_or_else(|e| format!("<body unreadable: {e}>"));
    Err(Halt::Unexpected(format!(
        "{what}: expected {want}, got {status}: {body}"
    )))
}

fn check_digest_header(resp: &Response, digest: &str, what: &str) -> Result<(), Halt> {
    match header(resp, "Docker-Content-Digest") {
        Some(d) if d == digest => Ok(()),
        other => Err(Halt::Unexpected(format!(
            "{what}: Docker-Content-Digest {other:?}, expected {digest}"
        ))),
    }
}

// ---------------------------------------------------------------------------
// Checks after the restart

/// Everything known to be stored, across cycles.
#[derive(Default)]
struct Ledger {
    /// digest -> (repo, size) of blobs acknowledged (or seen complete).
    blobs: BTreeMap<String, (String, u64)>,
    /// digest -> (repo, bytes) of manifests acknowledged (or seen stored).
    manifests: BTreeMap<String, (String, Arc<Vec<u8>>)>,
    /// (repo, tag) -> manifest digest, for unique tags.
    tags: BTreeMap<(String, String), String>,
    /// repo -> digest `latest` points at.
    latest: BTreeMap<String, String>,
    /// Every manifest ever attempted: digest -> bytes.
    attempted: BTreeMap<String, Arc<Vec<u8>>>,
}

#[derive(Default)]
struct CycleStats {
    acked_blobs: usize,
    unacked_blobs: usize,
    unacked_visible: usize,
    acked_manifests: usize,
    open_uploads: usize,
    uploads_gone: usize,
    torn_tails: usize,
    resumed: usize,
    tags_checked: usize,
}

impl std::fmt::Display for CycleStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} blobs acknowledged, {} in flight ({} of them complete after restart), \
             {} manifest PUTs acknowledged, {} tags checked, {} uploads open \
             ({} kept unacknowledged bytes, {} gone after a final PUT, {} resumed)",
            self.acked_blobs,
            self.unacked_blobs,
            self.unacked_visible,
            self.acked_manifests,
            self.tags_checked,
            self.open_uploads,
            self.torn_tails,
            self.uploads_gone,
            self.resumed
        )
    }
}

struct Checker<'a> {
    client: Client,
    base: String,
    problems: &'a mut Vec<String>,
}

/// A response read whole.
struct Got {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Bytes,
}

impl Got {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

impl Checker<'_> {
    async fn send(&mut self, req: RequestBuilder, what: &str) -> Option<Got> {
        let result = async {
            let resp = req.send().await?;
            let (status, headers) = (resp.status(), resp.headers().clone());
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>(Got {
                status,
                headers,
                body,
            })
        }
        .await;
        match result {
            Ok(got) => Some(got),
            Err(e) => {
                self.problems.push(format!(
                    "{what}: request to the restarted server failed: {e}"
                ));
                None
            }
        }
    }

    async fn get(&mut self, path: &str) -> Option<Got> {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req, &format!("GET {path}")).await
    }

    fn fail(&mut self, msg: String) {
        self.problems.push(msg);
    }

    /// GET a blob; checks status 200, size and sha256.
    async fn blob_intact(&mut self, repo: &str, digest: &str, len: u64, why: &str) -> bool {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let Some(got) = self.get(&path).await else {
            return false;
        };
        if got.status != StatusCode::OK {
            self.fail(format!(
                "{why} blob GET {path}: {} (expected 200)",
                got.status
            ));
            return false;
        }
        let actual = format!("sha256:{}", sha256_hex(&got.body));
        if got.body.len() as u64 != len || actual != digest {
            self.fail(format!(
                "{why} blob GET {path}: {} bytes hashing to {actual}, expected {len} bytes",
                got.body.len()
            ));
            return false;
        }
        true
    }

    /// GET a manifest by tag or digest; checks the exact bytes and headers.
    async fn manifest_is(&mut self, repo: &str, reference: &str, digest: &str, bytes: &[u8]) {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let req = self
            .client
            .get(format!("{}{path}", self.base))
            .header("Accept", OCI_MANIFEST);
        let Some(got) = self.send(req, &format!("GET {path}")).await else {
            return;
        };
        if got.status != StatusCode::OK {
            self.fail(format!(
                "GET {path}: {} (expected 200 with {digest})",
                got.status
            ));
        } else if got.body.as_ref() != bytes {
            self.fail(format!(
                "GET {path}: {} bytes (sha256:{}) differ from the {} bytes of {digest}",
                got.body.len(),
                sha256_hex(&got.body),
                bytes.len()
            ));
        } else if got.header("Docker-Content-Digest").as_deref() != Some(digest) {
            self.fail(format!(
                "GET {path}: Docker-Content-Digest {:?}, expected {digest}",
                got.header("Docker-Content-Digest")
            ));
        }
    }
}

async fn verify(
    base: &str,
    ledger: &mut Ledger,
    logs: Vec<TaskLog>,
    problems: &mut Vec<String>,
) -> CycleStats {
    let mut stats = CycleStats::default();
    let mut c = Checker {
        client: client(),
        base: base.to_string(),
        problems,
    };
    let mut blob_tries = Vec::new();
    let mut manifest_tries = Vec::new();
    let mut uploads = Vec::new();
    // `latest` per repo (one client per repo): the last acknowledged PUT
    // wins, and an unacknowledged one after it may or may not have landed.
    let mut latest: BTreeMap<String, (Option<String>, Option<String>)> = ledger
        .latest
        .keys()
        .map(|repo| (repo.clone(), (None, None)))
        .collect();
    for log in logs {
        c.problems.extend(log.unexpected);
        for m in &log.manifests {
            ledger.attempted.insert(m.digest.clone(), m.bytes.clone());
            if m.tag == "latest" {
                let entry = latest.entry(m.repo.clone()).or_default();
                if m.acked {
                    *entry = (Some(m.digest.clone()), None);
                } else {
                    entry.1 = Some(m.digest.clone());
                }
            }
        }
        blob_tries.extend(log.blobs);
        manifest_tries.extend(log.manifests);
        uploads.extend(log.uploads.into_iter().filter(|u| !u.done));
    }
    for (repo, (acked, in_flight)) in latest {
        check_latest(&mut c, ledger, &repo, acked, in_flight).await;
    }

    // Acknowledged writes of this cycle join the ledger; all are checked.
    for b in &blob_tries {
        if b.acked {
            stats.acked_blobs += 1;
            ledger
                .blobs
                .insert(b.digest.clone(), (b.repo.clone(), b.len));
        }
    }
    for m in &manifest_tries {
        if m.acked {
            stats.acked_manifests += 1;
            ledger
                .manifests
                .insert(m.digest.clone(), (m.repo.clone(), m.bytes.clone()));
            if m.tag != "latest" {
                ledger
                    .tags
                    .insert((m.repo.clone(), m.tag.clone()), m.digest.clone());
            }
        }
    }
    for (digest, (repo, len)) in ledger.blobs.clone() {
        c.blob_intact(&repo, &digest, len, "acknowledged").await;
    }
    for ((repo, tag), digest) in ledger.tags.clone() {
        let bytes = ledger.manifests[&digest].1.clone();
        c.manifest_is(&repo, &tag, &digest, &bytes).await;
    }
    for (digest, (repo, bytes)) in ledger.manifests.clone() {
        c.manifest_is(&repo, &digest, &digest, &bytes).await;
    }

    // Writes in flight at the kill: absent, or complete and correct.
    for b in blob_tries.iter().filter(|b| !b.acked) {
        stats.unacked_blobs += 1;
        let path = format!("/v2/{}/blobs/{}", b.repo, b.digest);
        let req = c.client.head(format!("{}{path}", c.base));
        let Some(got) = c.send(req, &format!("HEAD {path}")).await else {
            continue;
        };
        match got.status {
            StatusCode::NOT_FOUND => {}
            StatusCode::OK => {
                let len = got.header(CONTENT_LENGTH.as_str());
                if len != Some(b.len.to_string()) {
                    c.fail(format!(
                        "HEAD {path} of a blob in flight at the kill: Content-Length {len:?}, \
                         expected {} (a partial blob is visible)",
                        b.len
                    ));
                } else if c.blob_intact(&b.repo, &b.digest, b.len, "in-flight").await {
                    stats.unacked_visible += 1;
                    ledger
                        .blobs
                        .insert(b.digest.clone(), (b.repo.clone(), b.len));
                }
            }
            other => c.fail(format!(
                "HEAD {path} of a blob in flight at the kill: {other} (expected 200 or 404)"
            )),
        }
    }
    for m in manifest_tries.iter().filter(|m| !m.acked) {
        for reference in [m.tag.as_str(), m.digest.as_str()] {
            if reference == "latest" {
                continue; // checked against the PUT order above
            }
            let path = format!("/v2/{}/manifests/{reference}", m.repo);
            let Some(got) = c.get(&path).await else {
                continue;
            };
            match got.status {
                StatusCode::NOT_FOUND => {}
                StatusCode::OK if got.body.as_ref() == m.bytes.as_slice() => {
                    ledger
                        .manifests
                        .insert(m.digest.clone(), (m.repo.clone(), m.bytes.clone()));
                    if reference == m.tag {
                        ledger
                            .tags
                            .insert((m.repo.clone(), m.tag.clone()), m.digest.clone());
                    }
                }
                other => c.fail(format!(
                    "GET {path} of a manifest in flight at the kill: {other} with {} bytes \
                     (expected 404, or 200 with the {} bytes of {})",
                    got.body.len(),
                    m.bytes.len(),
                    m.digest
                )),
            }
        }
    }

    check_catalog(&mut c, ledger, &mut stats).await;

    // Uploads in progress: they resume from the offset the server reports.
    for up in &uploads {
        stats.open_uploads += 1;
        resume_upload(&mut c, ledger, up, &mut stats).await;
    }
    stats
}

async fn check_latest(
    c: &mut Checker<'_>,
    ledger: &mut Ledger,
    repo: &str,
    acked: Option<String>,
    in_flight: Option<String>,
) {
    let known = acked.or_else(|| ledger.latest.get(repo).cloned());
    let allowed: BTreeSet<String> = known.iter().chain(in_flight.iter()).cloned().collect();
    let path = format!("/v2/{repo}/manifests/latest");
    let Some(got) = c.get(&path).await else {
        return;
    };
    let digest = got.header("Docker-Content-Digest").unwrap_or_default();
    match got.status {
        StatusCode::NOT_FOUND if known.is_none() => {}
        StatusCode::OK if allowed.contains(&digest) => {
            let stored = ledger.attempted.get(&digest).cloned().unwrap_or_default();
            if got.body.as_ref() != stored.as_slice() {
                c.fail(format!(
                    "GET {path}: the bytes differ from those pushed as {digest}"
                ));
            }
            ledger.latest.insert(repo.to_string(), digest.clone());
            ledger.manifests.insert(digest, (repo.to_string(), stored));
        }
        status => c.fail(format!(
            "GET {path}: {status} with digest {digest:?}; expected one of {allowed:?} \
             (last acknowledged, or in flight at the kill)"
        )),
    }
}

/// Every tag of every repository in the catalog resolves to a manifest we
/// pushed, whose blobs are all present.
async fn check_catalog(c: &mut Checker<'_>, ledger: &Ledger, stats: &mut CycleStats) {
    let Some(got) = c.get("/v2/_catalog?n=10000").await else {
        return;
    };
    let catalog: Value = serde_json::from_slice(&got.body).unwrap_or(Value::Null);
    let repos: BTreeSet<String> = catalog["repositories"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if got.status != StatusCode::OK {
        c.fail(format!("GET /v2/_catalog: {}", got.status));
    }
    let expected: BTreeSet<String> = ledger
        .blobs
        .values()
        .map(|(r, _)| r.clone())
        .chain(ledger.manifests.values().map(|(r, _)| r.clone()))
        .collect();
    for missing in expected.difference(&repos) {
        c.fail(format!(
            "repository {missing} holds acknowledged content but is not in the catalog {repos:?}"
        ));
    }
    for repo in &repos {
        let path = format!("/v2/{repo}/tags/list");
        let Some(got) = c.get(&path).await else {
            continue;
        };
        if got.status != StatusCode::OK {
            c.fail(format!("GET {path}: {}", got.status));
            continue;
        }
        let list: Value = serde_json::from_slice(&got.body).unwrap_or(Value::Null);
        let tags: Vec<String> = list["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for tag in tags {
            stats.tags_checked += 1;
            let path = format!("/v2/{repo}/manifests/{tag}");
            let Some(got) = c.get(&path).await else {
                continue;
            };
            let digest = got.header("Docker-Content-Digest").unwrap_or_default();
            let actual = format!("sha256:{}", sha256_hex(&got.body));
            if got.status != StatusCode::OK || actual != digest {
                c.fail(format!(
                    "listed tag {repo}:{tag}: GET gives {} with {} bytes hashing to {actual}, \
                     Docker-Content-Digest {digest:?}",
                    got.status,
                    got.body.len()
                ));
                continue;
            }
            if !ledger.attempted.contains_key(&digest) {
                c.fail(format!(
                    "listed tag {repo}:{tag} points at {digest}, which no client pushed"
                ));
            }
            check_manifest_blobs(c, repo, &tag, &got.body).await;
        }
    }
}

async fn check_manifest_blobs(c: &mut Checker<'_>, repo: &str, tag: &str, manifest: &[u8]) {
    let doc: Value = serde_json::from_slice(manifest).unwrap_or(Value::Null);
    let descriptors = std::iter::once(&doc["config"])
        .chain(doc["layers"].as_array().into_iter().flatten())
        .cloned()
        .collect::<Vec<_>>();
    for d in descriptors {
        let (Some(digest), Some(size)) = (d["digest"].as_str(), d["size"].as_u64()) else {
            c.fail(format!("{repo}:{tag}: malformed descriptor {d}"));
            continue;
        };
        let path = format!("/v2/{repo}/blobs/{digest}");
        let req = c.client.head(format!("{}{path}", c.base));
        let Some(got) = c.send(req, &format!("HEAD {path}")).await else {
            continue;
        };
        let len = got.header(CONTENT_LENGTH.as_str());
        if got.status != StatusCode::OK || len != Some(size.to_string()) {
            c.fail(format!(
                "{repo}:{tag} references {digest} ({size} bytes) but HEAD {path} gives {} \
                 with Content-Length {len:?}",
                got.status
            ));
        }
    }
}

async fn resume_upload(
    c: &mut Checker<'_>,
    ledger: &mut Ledger,
    up: &UploadTry,
    stats: &mut CycleStats,
) {
    let len = up.data.len() as u64;
    let Some(got) = c.get(&up.path).await else {
        return;
    };
    match got.status {
        // The final PUT may have committed the blob and removed the session.
        StatusCode::NOT_FOUND if up.put_sent => {
            stats.uploads_gone += 1;
            return;
        }
        StatusCode::NOT_FOUND => {
            c.fail(format!(
                "upload {} ({} of {len} bytes acknowledged, no final PUT sent) is gone after \
                 the restart (404)",
                up.path, up.acked
            ));
            return;
        }
        StatusCode::NO_CONTENT => {}
        other => {
            c.fail(format!(
                "GET {} of an upload in progress: {other} (expected 204 or 404): {}",
                up.path,
                String::from_utf8_lossy(&got.body)
            ));
            return;
        }
    }
    let Some(reported) = got
        .headers
        .get(RANGE)
        .and_then(|v| parse_range(v.to_str().ok()?))
    else {
        c.fail(format!(
            "GET {}: 204 without a valid Range header: {:?}",
            up.path,
            got.headers.get(RANGE)
        ));
        return;
    };
    // `0-0` means one byte or none (the spec has no form for empty).
    let offsets: Vec<u64> = if reported == 1 {
        vec![0, 1]
    } else {
        vec![reported]
    };
    let (lo, hi) = (offsets[0], offsets[offsets.len() - 1]);
    if hi < up.acked {
        c.fail(format!(
            "upload {}: the server reports {reported} bytes after the restart, but had \
             acknowledged {} (acknowledged chunks were lost)",
            up.path, up.acked
        ));
        return;
    }
    if lo > up.sent {
        c.fail(format!(
            "upload {}: the server reports {reported} bytes, but only {} were ever sent",
            up.path, up.sent
        ));
        return;
    }
    if lo > up.acked {
        stats.torn_tails += 1;
    }
    let path = got
        .header(LOCATION.as_str())
        .and_then(|l| path_of(&l))
        .unwrap_or_else(|| up.path.clone());

    for (i, &offset) in offsets.iter().enumerate() {
        let last = i + 1 == offsets.len();
        if offset < len {
            let req = c
                .client
                .patch(format!("{}{path}", c.base))
                .header(CONTENT_RANGE, format!("{offset}-{}", len - 1))
                .header(CONTENT_TYPE, OCTET)
                .body(Bytes::copy_from_slice(&up.data[offset as usize..]));
            let what = format!("resuming PATCH {path} from {offset}");
            let Some(got) = c.send(req, &what).await else {
                return;
            };
            if got.status == StatusCode::RANGE_NOT_SATISFIABLE && !last {
                continue; // `0-0` meant one byte
            }
            let range = got
                .headers
                .get(RANGE)
                .and_then(|v| parse_range(v.to_str().ok()?));
            if got.status != StatusCode::ACCEPTED || range != Some(len) {
                c.fail(format!(
                    "{what}: {} with Range {:?} (expected 202 with 0-{}): {}",
                    got.status,
                    got.headers.get(RANGE),
                    len - 1,
                    String::from_utf8_lossy(&got.body)
                ));
                return;
            }
        }
        let put_path = with_digest(&path, &up.digest);
        let req = c.client.put(format!("{}{put_path}", c.base));
        let what = format!("resuming PUT {put_path}");
        let Some(got) = c.send(req, &what).await else {
            return;
        };
        if got.status != StatusCode::CREATED {
            c.fail(format!(
                "{what}: {} (expected 201): {}",
                got.status,
                String::from_utf8_lossy(&got.body)
            ));
            return;
        }
        if c.blob_intact(&up.repo, &up.digest, len, "resumed").await {
            stats.resumed += 1;
            ledger
                .blobs
                .insert(up.digest.clone(), (up.repo.clone(), len));
        }
        return;
    }
}

// ---------------------------------------------------------------------------
// The storage directory itself

#[derive(Default)]
struct ScanStats {
    blob_files: usize,
    tmp_files: usize,
    upload_dirs: usize,
}

/// Checks the files under `v2` (Distribution's `docker/registry/v2`): every
/// blob file holds exactly the content its path names, and every layer,
/// revision and tag link points at content that exists.
fn scan_storage(v2: &Path, problems: &mut Vec<String>) -> ScanStats {
    let mut stats = ScanStats::default();
    let blobs = v2.join("blobs");
    for file in files_under(&blobs, 6) {
        stats.blob_files += 1;
        let rel = file.strip_prefix(&blobs).unwrap_or(&file);
        let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
        let [alg, prefix, hex, name] = parts[..] else {
            problems.push(format!("unexpected file in blobs/: {}", file.display()));
            continue;
        };
        if alg != "sha256" || name != "data" || !hex.starts_with(prefix) || prefix.len() != 2 {
            problems.push(format!("unexpected file in blobs/: {}", file.display()));
            continue;
        }
        match std::fs::read(&file) {
            Ok(content) if sha256_hex(&content) == hex => {}
            Ok(content) => problems.push(format!(
                "{} holds {} bytes hashing to sha256:{} (a partial or corrupt blob)",
                file.display(),
                content.len(),
                sha256_hex(&content)
            )),
            Err(e) => problems.push(format!("cannot read {}: {e}", file.display())),
        }
    }

    let blob_exists = |digest: &str| -> bool {
        digest
            .strip_prefix("sha256:")
            .filter(|hex| hex.len() == 64)
            .is_some_and(|hex| {
                blobs
                    .join("sha256")
                    .join(&hex[..2])
                    .join(hex)
                    .join("data")
                    .is_file()
            })
    };
    let repositories = v2.join("repositories");
    for file in files_under(&repositories, 40) {
        let rel = file.strip_prefix(&repositories).unwrap_or(&file);
        let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
        let Some(special) = parts.iter().position(|p| p.starts_with('_')) else {
            problems.push(format!(
                "unexpected file in repositories/: {}",
                file.display()
            ));
            continue;
        };
        let repo_dir = repositories.join(parts[..special].join("/"));
        let tail = &parts[special..];
        let link = || std::fs::read_to_string(&file).unwrap_or_default();
        match tail {
            ["_layers", "sha256", hex, "link"]
            | ["_manifests", "revisions", "sha256", hex, "link"] => {
                let target = link();
                if target.trim() != format!("sha256:{hex}") || !blob_exists(target.trim()) {
                    problems.push(format!(
                        "{} holds {target:?}, which is not its digest or has no blob",
                        file.display()
                    ));
                }
            }
            ["_manifests", "tags", _, "current", "link"] => {
                let target = link();
                let target = target.trim();
                let revision = target.strip_prefix("sha256:").map(|hex| {
                    repo_dir
                        .join("_manifests/revisions/sha256")
                        .join(hex)
                        .join("link")
                });
                if !revision.is_some_and(|r| r.is_file()) || !blob_exists(target) {
                    problems.push(format!(
                        "tag link {} points at {target:?}, which is not a stored manifest",
                        file.display()
                    ));
                }
            }
            ["_manifests", "tags", _, "index", "sha256", _, "link"] => {}
            ["_uploads", _, "data"] => stats.upload_dirs += 1,
            ["_uploads", _, "startedat"] => {}
            _ => problems.push(format!(
                "unexpected file in repositories/: {}",
                file.display()
            )),
        }
    }
    stats.tmp_files = files_under(&v2.join("_regproxy_tmp"), 4).len();
    stats
}

/// Regular files below `dir`, at most `depth` levels down.
fn files_under(dir: &Path, depth: usize) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, level)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() && level < depth => stack.push((path, level + 1)),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

fn dir_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_else(|e| vec![format!("<cannot read: {e}>")])
}

// ---------------------------------------------------------------------------
// Small helpers

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The path (and query) of an absolute or relative `Location`.
fn path_of(location: &str) -> Option<String> {
    location.find("/v2/").map(|i| location[i..].to_string())
}

fn location_path(resp: &Response) -> Result<String, String> {
    let loc = header(resp, LOCATION.as_str()).ok_or("no Location header")?;
    path_of(&loc).ok_or_else(|| format!("Location {loc:?} has no /v2/ path"))
}

/// Bytes an upload holds according to `Range: 0-<last>`.
fn parse_range(value: &str) -> Option<u64> {
    let (start, last) = value.trim().split_once('-')?;
    if start != "0" {
        return None;
    }
    last.parse::<u64>().ok().map(|l| l + 1)
}

fn range_len(resp: &Response) -> Option<u64> {
    parse_range(&header(resp, RANGE.as_str())?)
}

fn with_digest(path: &str, digest: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}digest={digest}")
}

/// splitmix64: sizes and timings vary per run; the seed is printed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Log-uniform between [`MIN_BLOB`] and `max`: mostly small, some large.
    fn blob_len(&mut self, max: usize) -> usize {
        let steps = (max / MIN_BLOB).ilog2() as u64;
        let base = MIN_BLOB << self.below(steps);
        (base + self.below(base as u64) as usize).min(max)
    }
}
