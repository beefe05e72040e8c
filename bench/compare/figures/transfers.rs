//! Figures 1-4, over TLS with Basic logins (both registries accept Basic;
//! regproxy caches the bcrypt check, Distribution runs bcrypt per request):
//! peak memory and throughput of concurrent monolithic uploads, one large
//! monolithic upload, the same size in chunked PATCHes, and the download
//! of the large blob with every byte checked.

use std::time::{Duration, Instant};

use crate::client::Target;
use crate::data::Blob;
use crate::load::{status_kib, CpuMark, CpuUse, RssSampler};
use crate::ops::{bounded, download_verified, head_blob, upload_chunked, upload_monolithic};
use crate::profile::Profile;
use crate::servers::Server;
use crate::{Params, Res};

const LIMIT: Duration = Duration::from_secs(1800);

pub struct Concurrent {
    pub peak_rss_mib: f64,
    pub sampled_rss_mib: f64,
    pub mbps: f64,
    pub cpu: CpuUse,
}

/// Figure 1: every blob uploaded at once, each on its own connection.
pub fn concurrent(
    rt: &tokio::runtime::Runtime,
    server: &mut Server,
    target: &Target,
    blobs: &[Blob],
) -> Res<Concurrent> {
    let pid = server.pid();
    let sampler = RssSampler::start(pid);
    let mark = CpuMark::now(pid);
    let started = Instant::now();
    let result = rt.block_on(bounded("concurrent uploads", LIMIT, async {
        let mut tasks = Vec::new();
        for (i, blob) in blobs.iter().enumerate() {
            let (t, b) = (target.clone(), blob.clone());
            let repo = format!("bench/concurrent{i}");
            tasks.push(tokio::spawn(async move {
                upload_monolithic(&t, &repo, &b).await
            }));
        }
        let mut errors = Vec::new();
        for task in tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(format!("upload task: {e}")),
            }
        }
        match errors.first() {
            None => Ok(()),
            Some(e) => Err(format!(
                "{} of {} uploads failed; first: {e}",
                errors.len(),
                blobs.len()
            )),
        }
    }));
    let secs = started.elapsed().as_secs_f64();
    let cpu = mark.since(pid);
    let sampled = sampler.finish();
    let hwm = status_kib(pid, "VmHWM").unwrap_or(0);
    result.map_err(|e| format!("{e}\n--- server log ---\n{}", server.log_tail(20)))?;
    // Every blob is there, with its size.
    rt.block_on(bounded("HEAD after uploads", LIMIT, async {
        for (i, blob) in blobs.iter().enumerate() {
            head_blob(target, &format!("bench/concurrent{i}"), blob).await?;
        }
        Ok(())
    }))?;
    let total: u64 = blobs.iter().map(|b| b.len).sum();
    Ok(Concurrent {
        peak_rss_mib: sampled.max(hwm) as f64 / 1024.0,
        sampled_rss_mib: sampled as f64 / 1024.0,
        mbps: total as f64 / secs / 1e6,
        cpu,
    })
}

pub struct Single {
    pub mono_mbps: f64,
    pub mono_cpu: CpuUse,
    pub chunked_mbps: f64,
    pub chunked_cpu: CpuUse,
    pub download_mbps: f64,
    pub download_cpu: CpuUse,
    pub protocol: &'static str,
}

/// Figures 2-4 on one server: monolithic upload of `mono`, chunked upload
/// of `chunked`, then the download of `mono`.
pub fn single(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    target: &Target,
    mono: &Blob,
    chunked: &Blob,
    p: &Params,
    round: usize,
) -> Res<Single> {
    let pid = server.pid();
    let fail = |e: String| format!("{e}\n--- server log ---\n{}", server.log_tail(20));
    let profile = |name| Profile::start(p, server.kind, round, pid, name);

    let prof = profile("2-monolithic")?;
    let mark = CpuMark::now(pid);
    let t0 = Instant::now();
    rt.block_on(bounded(
        "monolithic upload",
        LIMIT,
        upload_monolithic(target, "bench/mono", mono),
    ))
    .map_err(fail)?;
    let mono_mbps = mono.len as f64 / t0.elapsed().as_secs_f64() / 1e6;
    let mono_cpu = mark.since(pid);
    prof.finish()?;

    let prof = profile("3-chunked")?;
    let mark = CpuMark::now(pid);
    let t0 = Instant::now();
    rt.block_on(bounded(
        "chunked upload",
        LIMIT,
        upload_chunked(target, "bench/chunked", chunked, p.chunk_size),
    ))
    .map_err(fail)?;
    let chunked_mbps = chunked.len as f64 / t0.elapsed().as_secs_f64() / 1e6;
    let chunked_cpu = mark.since(pid);
    prof.finish()?;

    let prof = profile("4-download")?;
    let mark = CpuMark::now(pid);
    let path = format!("/v2/bench/mono/blobs/{}", mono.digest);
    let (secs, protocol) = rt
        .block_on(bounded(
            "download",
            LIMIT,
            download_verified(target, &path, &mono.digest, mono.len),
        ))
        .map_err(fail)?;
    let download_cpu = mark.since(pid);
    prof.finish()?;
    Ok(Single {
        mono_mbps,
        mono_cpu,
        chunked_mbps,
        chunked_cpu,
        download_mbps: mono.len as f64 / secs / 1e6,
        download_cpu,
        protocol,
    })
}
