//! Figure 8: while N uploads trickle (N open PATCH requests, each on its own
//! HTTP/1.1 connection, each sending 1 KiB per second for a bounded
//! time), a manifest GET's latency, probed at a fixed pace, each probe on
//! a new connection. A probe that gets no answer within its timeout counts
//! as a timeout with the timeout as its latency. Plain HTTP, no logins.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream;
use http::Method;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use crate::client::{empty, expect, location, Conn, Target};
use crate::ops::OCI_MANIFEST;
use crate::Res;

#[derive(Debug, Default, Clone)]
pub struct Trickle {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub probes: usize,
    pub timeouts: usize,
    pub probe_errors: usize,
    /// Uploads whose POST succeeded and whose PATCH began sending.
    pub started: usize,
    /// PATCHes answered 202 after sending everything.
    pub completed: usize,
    pub failed: usize,
    pub first_error: String,
}

#[derive(Default)]
struct Counts {
    started: AtomicUsize,
    completed: AtomicUsize,
    failed: AtomicUsize,
}

/// One trickling upload: POST, then a PATCH of `secs` KiB sent 1 KiB per
/// second.
async fn one(t: Target, secs: u64, counts: Arc<Counts>) -> Res<()> {
    let mut c = Conn::open(&t).await?;
    let (st, h, body) = c
        .call(
            &t,
            Method::POST,
            "/v2/bench/trickle/blobs/uploads/",
            &[("content-length", "0".into())],
            empty(),
        )
        .await?;
    expect("POST trickle upload", st, 202, &body)?;
    let loc = location(&h)?;
    let started = counts.clone();
    let frames = stream::unfold(0u64, move |k| {
        let started = started.clone();
        async move {
            if k >= secs {
                return None;
            }
            if k == 0 {
                started.started.fetch_add(1, Ordering::Relaxed);
            } else {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let chunk = Bytes::from(vec![b'x'; 1024]);
            Some((Ok::<_, std::io::Error>(Frame::data(chunk)), k + 1))
        }
    });
    let headers = [
        ("content-type", "application/octet-stream".to_string()),
        ("content-length", (secs * 1024).to_string()),
    ];
    let (st, _, body) = c
        .call(
            &t,
            Method::PATCH,
            &loc,
            &headers,
            StreamBody::new(frames).boxed(),
        )
        .await?;
    expect("PATCH trickle upload", st, 202, &body)
}

pub async fn run(t: &Target, n: usize, secs: u64, probes: usize) -> Res<Trickle> {
    let counts = Arc::new(Counts::default());
    let first_error = Arc::new(std::sync::Mutex::new(String::new()));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (t, counts, first_error) = (t.clone(), counts.clone(), first_error.clone());
        tasks.push(tokio::spawn(async move {
            let result =
                tokio::time::timeout(Duration::from_secs(secs + 60), one(t, secs, counts.clone()))
                    .await
                    .unwrap_or_else(|_| Err("no answer to the PATCH in time".into()));
            match result {
                Ok(()) => counts.completed.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    if let Ok(mut first) = first_error.lock() {
                        if first.is_empty() {
                            *first = e;
                        }
                    }
                    counts.failed.fetch_add(1, Ordering::Relaxed)
                }
            };
        }));
    }
    // Wait (bounded) until every upload is sending, or a third of the time.
    let ramp_deadline = Instant::now() + Duration::from_secs(secs / 3 + 1);
    while counts.started.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed) < n
        && Instant::now() < ramp_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Probes at a fixed pace over what is left of the trickle, each on its
    // own connection, whether or not the earlier ones were answered (a
    // stalled server cannot slow the probing down and hide its stalls).
    let left = ramp_deadline.max(Instant::now()) + Duration::from_secs(secs * 2 / 3);
    let window = left.saturating_duration_since(Instant::now());
    let spacing = window / (probes as u32).max(1);
    let timeout = Duration::from_secs(if secs >= 10 { 5 } else { 1 });
    let mut out = Trickle {
        probes,
        ..Trickle::default()
    };
    let mut sent = Vec::with_capacity(probes);
    for _ in 0..probes {
        let t = t.clone();
        sent.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let path = "/v2/bench/small/manifests/v1";
            let answer = tokio::time::timeout(timeout, async {
                let mut c = Conn::open(&t).await?;
                let headers = [("accept", OCI_MANIFEST.to_string())];
                let (st, _, body) = c.call(&t, Method::GET, path, &headers, empty()).await?;
                expect(&format!("GET {path}"), st, 200, &body)
            })
            .await;
            (t0.elapsed(), answer)
        }));
        tokio::time::sleep(spacing).await;
    }
    let mut lat = Vec::with_capacity(probes);
    for probe in sent {
        // Each probe ends within its timeout.
        let Ok((took, answer)) = probe.await else {
            out.probe_errors += 1;
            continue;
        };
        match answer {
            Ok(Ok(())) => lat.push(took.as_secs_f64() * 1e3),
            Ok(Err(e)) => {
                out.probe_errors += 1;
                lat.push(took.as_secs_f64() * 1e3);
                if out.first_error.is_empty() {
                    out.first_error = format!("probe: {e}");
                }
            }
            Err(_) => {
                out.timeouts += 1;
                lat.push(timeout.as_secs_f64() * 1e3);
            }
        }
    }
    out.started = counts.started.load(Ordering::Relaxed);

    // The trickles end on their own (bounded by their timeouts); then stop.
    let end = Instant::now() + Duration::from_secs(secs + 10);
    while counts.completed.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed) < n
        && Instant::now() < end
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in &tasks {
        task.abort();
    }
    out.completed = counts.completed.load(Ordering::Relaxed);
    out.failed = n - out.completed;
    if out.first_error.is_empty() {
        if let Ok(first) = first_error.lock() {
            out.first_error = first.clone();
        }
    }
    lat.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    out.p50_ms = pct(0.5);
    out.p99_ms = pct(0.99);
    out.max_ms = lat.last().copied().unwrap_or(0.0);
    Ok(out)
}
