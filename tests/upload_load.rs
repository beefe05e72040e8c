//! Uploads under load, as many real clients make them: hundreds of slow
//! (trickling) uploads must not stop anyone else from being served, and many
//! fast concurrent uploads must cost a bounded amount of memory each.
//!
//! The clients are raw HTTP/1.1 sockets (chunked bodies written a piece at a
//! time) so the test controls exactly how slow each one is. Every wait is
//! bounded; the server is stopped by its guard.

mod common;

use std::time::{Duration, Instant};

use common::{sha256_hex, temp_dir, Regproxy};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Slow uploads held open at once: more than tokio's default blocking pool
/// (512 threads), which one-thread-per-upload designs run out of.
const TRICKLING: usize = 600;
/// How long a request may take before the test calls it hung.
const HUNG: Duration = Duration::from_secs(30);

/// Lets this process (the clients) hold many sockets.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Sends one HTTP/1.1 request with a whole body and reads the answer's
/// status line and headers (and a small body, by Content-Length).
async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.expect("write head");
    s.write_all(body).await.expect("write body");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read answer");
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    answer.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Starts an upload session; returns its path.
async fn start_upload(addr: std::net::SocketAddr, repo: &str) -> String {
    let (status, answer) = request(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    header(&answer, "location").expect("Location").to_string()
}

/// Pushes a config blob and an image manifest; returns the manifest digest.
async fn push_small_image(addr: std::net::SocketAddr, repo: &str) -> String {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = format!("sha256:{}", sha256_hex(config));
    let (status, answer) = request(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={config_digest}"),
        &[],
        config,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": []
    })
    .to_string();
    let (status, answer) = request(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/v1"),
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        manifest.as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    format!("sha256:{}", sha256_hex(manifest.as_bytes()))
}

/// An upload whose body trickles in: the request head, then one chunk of
/// 1 KiB each time [`Trickle::send`] is called.
struct Trickle {
    stream: TcpStream,
}

impl Trickle {
    async fn open(addr: std::net::SocketAddr, location: &str) -> Trickle {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "PATCH {location} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("write head");
        Trickle { stream }
    }

    async fn send(&mut self) -> std::io::Result<()> {
        let mut chunk = b"400\r\n".to_vec();
        chunk.extend_from_slice(&[b'x'; 1024]);
        chunk.extend_from_slice(b"\r\n");
        self.stream.write_all(&chunk).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_uploads_do_not_stop_other_requests() {
    raise_fd_limit();
    let data = temp_dir("regproxy-trickle-");
    let server = Regproxy::start(data.path(), &[]);
    let addr = server.addr();
    let digest = push_small_image(addr, "team/app").await;

    let mut locations = Vec::with_capacity(TRICKLING);
    for _ in 0..TRICKLING {
        locations.push(start_upload(addr, "team/slow").await);
    }
    let mut trickles = Vec::with_capacity(TRICKLING);
    for l in &locations {
        let mut t = Trickle::open(addr, l).await;
        t.send().await.expect("first chunk");
        trickles.push(t);
    }
    // Every slow upload has reached the server and is waiting for more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for t in trickles.iter_mut() {
        t.send().await.expect("second chunk");
    }

    // Meanwhile, everything else is answered.
    let started = Instant::now();
    let checks = async {
        let (status, answer) = request(
            addr,
            "GET",
            "/v2/team/app/manifests/v1",
            &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
            b"",
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            header(&answer, "docker-content-digest"),
            Some(digest.as_str())
        );
        let (status, _) = request(
            addr,
            "HEAD",
            &format!("/v2/team/app/manifests/{digest}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(status, 200);
        let blob = vec![7u8; 1 << 20];
        let d = format!("sha256:{}", sha256_hex(&blob));
        let (status, answer) = request(
            addr,
            "POST",
            &format!("/v2/team/fast/blobs/uploads/?digest={d}"),
            &[],
            &blob,
        )
        .await;
        assert_eq!(status, 201, "{answer}");
        let (status, answer) = request(addr, "GET", "/v2/team/app/tags/list", &[], b"").await;
        assert_eq!(status, 200, "{answer}");
    };
    tokio::time::timeout(HUNG, checks)
        .await
        .unwrap_or_else(|_| {
            panic!(
            "requests hung for {HUNG:?} while {TRICKLING} uploads trickled (server log tail: {})",
            server.logs().lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        )
        });
    eprintln!(
        "other requests answered in {:?} while {TRICKLING} uploads trickled",
        started.elapsed()
    );

    // The slow uploads themselves are intact: finish one and check its size.
    let mut first = trickles.swap_remove(0);
    first
        .stream
        .write_all(b"0\r\n\r\n")
        .await
        .expect("end chunk");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(HUNG, first.stream.read(&mut answer))
        .await
        .expect("PATCH answer in time")
        .expect("read PATCH answer");
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    assert_eq!(header(&answer, "range"), Some("0-2047"), "{answer}");
    drop(trickles);
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_per_upload_stays_bounded() {
    const UPLOADS: usize = 32;
    const SIZE: usize = 16 << 20;
    const PIECE: usize = 256 << 10;
    let data = temp_dir("regproxy-memory-");
    let server = Regproxy::start(data.path(), &[]);
    let addr = server.addr();
    let pid = server.pid();
    // Warm up (first allocations, thread pools), then take the baseline.
    push_small_image(addr, "warm/up").await;
    let baseline = rss_kib(pid);

    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            // Bounded: at most 10 minutes of samples.
            for _ in 0..30_000 {
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for i in 0..UPLOADS {
        tasks.push(tokio::spawn(async move {
            // The blob is a pattern made on the fly: the client holds one piece.
            let piece: Vec<u8> = (0..PIECE).map(|j| ((i * 31 + j) % 253) as u8).collect();
            let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
            for _ in 0..SIZE / PIECE {
                sha2::Digest::update(&mut hasher, &piece);
            }
            let digest = format!("sha256:{}", hex::encode(sha2::Digest::finalize(hasher)));
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let head = format!(
                "POST /v2/load/{i}/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {SIZE}\r\nConnection: close\r\n\r\n"
            );
            s.write_all(head.as_bytes()).await.expect("head");
            for _ in 0..SIZE / PIECE {
                s.write_all(&piece).await.expect("body");
            }
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.expect("answer");
            let text = String::from_utf8_lossy(&out).to_string();
            assert!(text.starts_with("HTTP/1.1 201"), "upload {i}: {text}");
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(600), t)
            .await
            .expect("uploads finish in time")
            .expect("upload task");
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    sampler.await.expect("sampler");
    let grown = peak
        .load(std::sync::atomic::Ordering::SeqCst)
        .saturating_sub(baseline);
    eprintln!(
        "{UPLOADS} concurrent {} MiB uploads: server RSS grew by {} KiB ({} KiB per upload; baseline {baseline} KiB)",
        SIZE >> 20,
        grown,
        grown / UPLOADS as u64
    );
    // The design holds 256 KiB per upload; hyper's read buffer and the
    // allocator add some. 1 MiB per upload is a generous bound.
    assert!(
        grown <= (UPLOADS as u64) * 1024,
        "server RSS grew by {grown} KiB for {UPLOADS} uploads (> 1 MiB per upload)"
    );
}
