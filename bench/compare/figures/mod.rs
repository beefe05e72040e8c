//! The figures in the order of the table. For each figure, each round
//! starts regproxy then Distribution on fresh data directories (A B A B),
//! measures, and stops them by pid; the report keeps every run and shows
//! the best.

mod requests;
mod transfers;
mod trickle;

use std::time::Duration;

use crate::client::{tls_config, Target};
use crate::data::Pool;
use crate::load::CpuUse;
use crate::ops::{bounded, push_small_image};
use crate::profile::Profile;
use crate::report::{Better, Figure, Report};
use crate::servers::{Kind, Mode, Server, Setup};
use crate::{skopeo, Ctx, Params, Res};

/// Where the run is, on stderr.
fn step(kind: Kind, round: usize, what: &str) {
    eprintln!("compare: round {} {:<12} {what}", round + 1, kind.name());
}

fn target(
    server: &Server,
    setup: &Setup,
    tls: &Option<std::sync::Arc<rustls::ClientConfig>>,
) -> Target {
    Target {
        addr: server.addr,
        tls: if server.tls() { tls.clone() } else { None },
        auth: server.tls().then(|| setup.basic()),
    }
}

pub fn run_all(
    rt: &tokio::runtime::Runtime,
    setup: &Setup,
    p: &Params,
    report: &mut Report,
) -> Res<()> {
    let tls = Some(tls_config(
        &std::fs::read(setup.certs.join("ca.crt")).ctx("read ca.crt")?,
        true,
    )?);
    let pool = Pool::new(if p.quick { 8 << 20 } else { 64 << 20 });
    eprintln!("compare: hashing the blobs (before any timed phase)");
    let offsets: Vec<usize> = (0..p.concurrent).map(|i| 1 + i * 4099).collect();
    let many = pool.blobs(&offsets, p.concurrent_size);
    let big = pool.blobs(&[7, 1_000_003], p.big_size);
    let (mono, chunked) = (&big[0], &big[1]);

    // Figure 1 over HTTP/1.1 (as `docker push`: one connection per
    // layer) and over HTTP/2 (as Go clients with the default transport).
    let tls_h1 = Some(tls_config(
        &std::fs::read(setup.certs.join("ca.crt")).ctx("read ca.crt")?,
        false,
    )?);
    let what = format!(
        "{} x {} MiB monolithic uploads at once",
        p.concurrent,
        p.concurrent_size >> 20
    );
    let mut rows = Vec::new();
    for (proto, key, cfg) in [("HTTP/1.1", "h1", &tls_h1), ("HTTP/2", "h2", &tls)] {
        let mut rss = Figure::new(
            &format!("rss_{key}"),
            &format!("1 peak RSS, {what}, {proto}"),
            "MiB",
            Better::Lower,
        );
        let mut mbps = Figure::new(
            &format!("concurrent_mbps_{key}"),
            &format!("1 upload throughput of that phase, {proto}"),
            "MB/s",
            Better::Higher,
        );
        for round in 0..p.rounds {
            for kind in Kind::BOTH {
                step(
                    kind,
                    round,
                    &format!("figure 1: concurrent uploads, {proto}"),
                );
                let mut server = Server::start(kind, Mode::Secure, setup)?;
                let t = target(&server, setup, cfg);
                let name = format!("1-concurrent-{key}");
                let prof = Profile::start(p, kind, round, server.pid(), &name)?;
                let c = transfers::concurrent(rt, &mut server, &t, &many)?;
                prof.finish()?;
                rss.push(kind, c.peak_rss_mib, c.cpu);
                mbps.push(kind, c.mbps, c.cpu);
                eprintln!(
                    "compare:   peak RSS {:.1} MiB (sampled {:.1}), {:.0} MB/s",
                    c.peak_rss_mib, c.sampled_rss_mib, c.mbps
                );
            }
        }
        rows.extend([rss, mbps]);
    }
    report.figures.extend(rows);

    let size = p.big_size >> 20;
    let mut mono_f = Figure::new(
        "mono_mbps",
        &format!("2 upload, one {size} MiB monolithic"),
        "MB/s",
        Better::Higher,
    );
    let mut chunk_f = Figure::new(
        "chunked_mbps",
        &format!("3 upload, {size} MiB in {} MiB PATCHes", p.chunk_size >> 20),
        "MB/s",
        Better::Higher,
    );
    let mut down_f = Figure::new(
        "download_mbps",
        &format!("4 download, {size} MiB blob, every byte checked"),
        "MB/s",
        Better::Higher,
    );
    for round in 0..p.rounds {
        for kind in Kind::BOTH {
            step(kind, round, "figures 2-4: upload, chunked upload, download");
            let server = Server::start(kind, Mode::Secure, setup)?;
            let t = target(&server, setup, &tls);
            let s = transfers::single(rt, &server, &t, mono, chunked, p, round)?;
            mono_f.push(kind, s.mono_mbps, s.mono_cpu);
            chunk_f.push(kind, s.chunked_mbps, s.chunked_cpu);
            down_f.push(kind, s.download_mbps, s.download_cpu);
            down_f.note = format!("TLS, {} (ALPN), one connection per transfer", s.protocol);
            eprintln!(
                "compare:   {:.0} / {:.0} / {:.0} MB/s",
                s.mono_mbps, s.chunked_mbps, s.download_mbps
            );
        }
    }
    report.figures.extend([mono_f, chunk_f]);
    report.derived(
        "chunked_vs_mono",
        "3 chunked as a fraction of monolithic",
        |r, k| Some(r.best("chunked_mbps", k)? / r.best("mono_mbps", k)?),
    );
    report.figures.push(down_f);

    if !p.s3 {
        figure5(rt, setup, p, &tls, report)?;
    }

    let mut man_f = Figure::new(
        "manifest_rps",
        "6 manifest GET by tag, no TLS, no auth",
        "req/s",
        Better::Higher,
    );
    let mut v2_f = Figure::new(
        "v2_plain_rps",
        "6 GET /v2/, no TLS, no auth",
        "req/s",
        Better::Higher,
    );
    for round in 0..p.rounds {
        for kind in Kind::BOTH {
            step(kind, round, "figure 6: manifest GET and GET /v2/ (wrk)");
            let server = Server::start(kind, Mode::Plain, setup)?;
            let t = target(&server, setup, &tls);
            let prof = Profile::start(p, kind, round, server.pid(), "6-manifest-and-v2")?;
            let m = requests::manifest(rt, &server, &t, p)?;
            prof.finish()?;
            man_f.push(kind, m.manifest.0, m.manifest.1);
            v2_f.push(kind, m.v2.0, m.v2.1);
            eprintln!(
                "compare:   manifest {:.0}, /v2/ {:.0} req/s",
                m.manifest.0, m.v2.0
            );
        }
    }
    report.figures.extend([man_f, v2_f]);
    report.derived("manifest_vs_v2", "6 manifest GET / GET /v2/", |r, k| {
        Some(r.best("manifest_rps", k)? / r.best("v2_plain_rps", k)?)
    });

    let image = setup.fresh_dir("image-")?;
    skopeo::write_image(image.path(), p.layers, p.layer_size)?;
    let label = format!(
        "{} x {} MiB layers",
        p.layers,
        p.layer_size as f64 / 1048576.0
    );
    let mut push_f = Figure::new(
        "skopeo_push_s",
        &format!("7 skopeo copy push, {label}, TLS + login"),
        "s",
        Better::Lower,
    );
    let mut pull_f = Figure::new(
        "skopeo_pull_s",
        "7 skopeo copy pull of the same, bytes compared",
        "s",
        Better::Lower,
    );
    // What bounds figure 7: the CPU skopeo itself burns on the same cores.
    let mut push_cpu_f = Figure::new(
        "skopeo_push_client_cpu_s",
        "7 ... push: skopeo's own CPU (user+sys)",
        "s",
        Better::Lower,
    );
    let mut pull_cpu_f = Figure::new(
        "skopeo_pull_client_cpu_s",
        "7 ... pull: skopeo's own CPU (user+sys)",
        "s",
        Better::Lower,
    );
    for round in 0..p.rounds {
        for kind in Kind::BOTH {
            step(kind, round, "figure 7: skopeo push and pull");
            let server = Server::start(kind, Mode::Secure, setup)?;
            let prof = Profile::start(p, kind, round, server.pid(), "7-skopeo")?;
            let (push, pull) = skopeo::push_pull(&server, setup, image.path(), round)?;
            prof.finish()?;
            push_f.push(kind, push.secs, push.server);
            pull_f.push(kind, pull.secs, pull.server);
            push_cpu_f.push(kind, push.client_cpu_secs, push.server);
            pull_cpu_f.push(kind, pull.client_cpu_secs, pull.server);
            eprintln!(
                "compare:   push {:.2} s (skopeo CPU {:.2} s, server {:.2} cores), pull {:.2} s (skopeo CPU {:.2} s, server {:.2} cores)",
                push.secs, push.client_cpu_secs, push.server.server_cores,
                pull.secs, pull.client_cpu_secs, pull.server.server_cores
            );
        }
    }
    report
        .figures
        .extend([push_f, push_cpu_f, pull_f, pull_cpu_f]);

    if !p.s3 {
        figure8(rt, setup, p, &tls, report)?;
    }
    report.notes.push(
        "figures 1-4: TLS with Basic logins for both (regproxy caches the bcrypt check, \
         Distribution runs bcrypt, cost 5, on every request); 5: wrk -t2 over TLS, HTTP/1.1 keep-alive; \
         6 and 8: plain HTTP without logins; 7: skopeo over TLS with the CA and --creds \
         (regproxy: token service; Distribution: Basic)"
            .into(),
    );
    if p.s3 {
        report.notes.push(
            "S3 mode: figures 5 (no storage involved) and 8 (a thousand open uploads on one \
             Garage node) are not run; sizes are smaller than on the filesystem"
                .into(),
        );
    }
    Ok(())
}

/// Figure 5: `GET /v2/` with Bearer and Basic (storage plays no part:
/// not run with `--s3`).
fn figure5(
    rt: &tokio::runtime::Runtime,
    setup: &Setup,
    p: &Params,
    tls: &Option<std::sync::Arc<rustls::ClientConfig>>,
    report: &mut Report,
) -> Res<()> {
    let mut bearer_f = Figure::new(
        "v2_bearer_rps",
        "5 GET /v2/, TLS, Bearer (Distribution: Basic, no token service)",
        "req/s",
        Better::Higher,
    );
    let mut basic_f = Figure::new(
        "v2_basic_rps",
        "5 GET /v2/, TLS, Basic",
        "req/s",
        Better::Higher,
    );
    for round in 0..p.rounds {
        for kind in Kind::BOTH {
            step(
                kind,
                round,
                "figure 5: GET /v2/ with Bearer and Basic (wrk)",
            );
            let server = Server::start(kind, Mode::Secure, setup)?;
            let t = target(&server, setup, tls);
            let prof = Profile::start(p, kind, round, server.pid(), "5-bearer-and-basic")?;
            let a = requests::auth(rt, &server, &t, &setup.basic(), p)?;
            prof.finish()?;
            let (b, cpu) = a.bearer.unwrap_or(a.basic);
            bearer_f.push(kind, b, cpu);
            basic_f.push(kind, a.basic.0, a.basic.1);
            eprintln!("compare:   bearer {:.0}, basic {:.0} req/s", b, a.basic.0);
        }
    }
    report.figures.extend([bearer_f, basic_f]);
    report.derived("bearer_vs_basic", "5 Bearer / Basic", |r, k| {
        Some(r.best("v2_bearer_rps", k)? / r.best("v2_basic_rps", k)?)
    });
    Ok(())
}

/// Figure 8: manifest GETs while uploads trickle (not run with `--s3`:
/// a thousand open uploads on one Garage node measure Garage).
fn figure8(
    rt: &tokio::runtime::Runtime,
    setup: &Setup,
    p: &Params,
    tls: &Option<std::sync::Arc<rustls::ClientConfig>>,
    report: &mut Report,
) -> Res<()> {
    let what = format!(
        "8 manifest GET while {} uploads trickle at 1 KiB/s",
        p.trickles
    );
    let mut p50 = Figure::new(
        "trickle_p50_ms",
        &format!("{what}: p50"),
        "ms",
        Better::Lower,
    );
    let mut p99 = Figure::new("trickle_p99_ms", "8 ... p99", "ms", Better::Lower);
    let mut max = Figure::new("trickle_max_ms", "8 ... max", "ms", Better::Lower);
    let mut notes = Vec::new();
    for round in 0..p.rounds {
        for kind in Kind::BOTH {
            step(
                kind,
                round,
                "figure 8: manifest GET during trickling uploads",
            );
            let mut server = Server::start(kind, Mode::Plain, setup)?;
            let t = target(&server, setup, tls);
            rt.block_on(bounded(
                "push a small image",
                Duration::from_secs(120),
                push_small_image(&t, "bench/small", "v1"),
            ))?;
            let prof = Profile::start(p, kind, round, server.pid(), "8-trickle")?;
            let tr = rt.block_on(bounded(
                "trickle",
                Duration::from_secs(p.trickle_secs * 3 + 120),
                trickle::run(&t, p.trickles, p.trickle_secs, p.probes),
            ))?;
            prof.finish()?;
            let alive = server.alive();
            let line = format!(
                "{} round {}: {} probes, {} timed out, {} failed; uploads sending {}/{}, completed {}, failed {}{}{}",
                kind.name(), round + 1, tr.probes, tr.timeouts, tr.probe_errors,
                tr.started, p.trickles, tr.completed, tr.failed,
                if tr.first_error.is_empty() { String::new() } else { format!("; first error: {}", tr.first_error) },
                if alive { "" } else { "; THE SERVER EXITED" },
            );
            eprintln!(
                "compare:   p50 {:.1} p99 {:.1} max {:.1} ms; {line}",
                tr.p50_ms, tr.p99_ms, tr.max_ms
            );
            notes.push(line);
            p50.push(kind, tr.p50_ms, CpuUse::default());
            p99.push(kind, tr.p99_ms, CpuUse::default());
            max.push(kind, tr.max_ms, CpuUse::default());
        }
    }
    report.figures.extend([p50, p99, max]);
    report.notes.extend(notes);
    Ok(())
}
